"""Counting points of each runtime, installed only when metrics are on.

Imported only when ``EKUIPER_PLUGIN_METRICS_DIR`` is set: with metrics off, no runtime
runs a line of this module, and the row paths are the very code they are without it.
With metrics on, ``instrument`` (called by a runtime's ``start`` on the control thread,
before the symbol's thread is spawned) wraps the one channel or method each row goes
through, so the counting happens on the symbol's own thread (mostly: an async sink's
failures count on its event loop's thread, a ``ctx.ack_*`` on whichever thread calls it;
see ``_metrics`` for what that means for exactness):

- source: the context's ``_send_blocking`` (rows, bytes; emit blocked by backpressure)
  and ``send_error_frame`` (error frames: errors, bytes);
- sink: ``_receive``, its message loop (bytes, collect latency; rows and busy are the
  exporter's reading of the loop's two counts, see ``sync_sink``) and the ack channel
  (acks ok/error); its errors count in ``SinkRuntime._failed`` itself;
- function: ``_serve``, its request loop (latency, calls, rows, errors, busy; an idle
  timeout, which shows its channel is still connected), counted after each reply is
  sent (see ``settle`` for what a scrape does meanwhile), and ``_exec`` (or, under an
  ``on_error`` policy, ``context_for``), which points ``runtime.stats`` at the calling
  rule's SymbolStats for the request in progress (so an increment in ``handle`` counts
  for that rule).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from time import perf_counter_ns
from typing import Any

from ekuiper import _metrics, _protocol
from ekuiper._metrics import SymbolStats
from ekuiper._protocol import ExecCaller, Meta
from ekuiper._runtime.base import SymbolRuntime
from ekuiper._runtime.context import SymbolContext
from ekuiper._transport import Channel, ChannelTimeout
from ekuiper.errors import ChannelClosedError

__all__ = ["MAX_RULES", "function_rules", "instrument", "labels_for", "latency_every",
           "settle", "sync_sink"]

# A function keeps per-rule counters for at most this many rules; beyond, they count
# under rule="" (eKuiper drops per-rule contexts the same way, see function.MAX_CONTEXTS).
MAX_RULES = 1024
# Time one call in this many (MetricsSettings.latency_every; the exporter sets it before
# any symbol starts).
latency_every = _metrics.DEFAULT_LATENCY_EVERY
_STATE_AT = len(b'{"state":')
_TRUE_BYTE = ord("t")


def labels_for(plugin: str, runtime: SymbolRuntime) -> dict[str, str]:
    control = runtime.control
    labels = {"plugin": plugin, "kind": control.noun, "symbol": control.symbol_name}
    if control.noun == "function":
        labels["rule"] = ""  # until a request names its rule (see rule_context)
    else:
        labels.update(rule=control.meta.rule_id, op=control.meta.op_id,
                      instance=str(control.meta.instance_id))
    return labels


def _count_source_sends(ctx: SymbolContext, stats: SymbolStats) -> None:
    """Count what the source context sends, in a frame that replaces its ``_send_blocking``.

    Why replace rather than wrap the channel: a wrapper is one Python frame more per row,
    which was most of what metrics cost a source. The usual send (running, eKuiper
    reading) is done here; anything else (stopped, backpressure, closed) goes through the
    context's own loop, which waits, raises or names the stop exactly as without metrics.
    """
    send_blocking = ctx._send_blocking  # the class's loop, bound before it is shadowed
    assert ctx._emitter is not None
    send = ctx._emitter.send

    def counted_send_blocking(frame: bytes) -> None:
        if ctx._stopped:
            send_blocking(frame)  # raises the stopped source's ChannelClosedError
        try:
            send(frame)
        except ChannelTimeout:
            # eKuiper is not reading: blocked from now until the loop gets the frame out.
            stats.blocked_since_ns = perf_counter_ns()
            try:
                send_blocking(frame)
            finally:
                stats.blocked_since_ns = 0
        except ChannelClosedError:
            send_blocking(frame)  # words the stop as the context does
        stats.bytes += len(frame)
        stats.rows += 1

    send_error_frame = ctx.send_error_frame  # the class's, which sends by the class's loop

    def counted_send_error_frame(text: str) -> int:
        # Marked blocked from the start (cleared at once unless eKuiper is not reading).
        stats.blocked_since_ns = perf_counter_ns()
        try:
            sent = send_error_frame(text)
        finally:
            stats.blocked_since_ns = 0
        stats.bytes += sent
        stats.fail(text, time.time())
        return sent

    ctx._send_blocking = counted_send_blocking  # type: ignore[method-assign]
    ctx.send_error_frame = counted_send_error_frame  # type: ignore[method-assign]


class _CountingAcks:
    __slots__ = ("_channel", "_stats")

    def __init__(self, channel: Channel, stats: SymbolStats) -> None:
        self._channel = channel
        self._stats = stats

    def send(self, data: bytes) -> None:
        self._channel.send(data)
        if data == _protocol.ACK_OK:
            self._stats.acks_ok += 1
        else:
            self._stats.acks_error += 1

    def recv(self) -> bytes:
        return self._channel.recv()

    def close(self) -> None:
        self._channel.close()


def instrument(runtime: Any) -> None:
    """Install the counting points of ``runtime`` (whose ``stats`` is set); see above."""
    stats: SymbolStats = runtime.stats
    kind = runtime.control.noun
    if kind == "source":
        stats.calls += 1  # open() is about to be called
        _count_source_sends(runtime.ctx, stats)
    elif kind == "sink":
        _instrument_sink(runtime, stats)
    else:
        _instrument_function(runtime, stats)


def _instrument_sink(runtime: Any, stats: SymbolStats) -> None:
    # Replaces the loop rather than wrapping _deliver: a frame more per message was a
    # fifth of what metrics cost a sink. So it does what SinkRuntime._receive does.
    # Nothing else goes on the runtime: with a 30th attribute in its dict CPython stops
    # specialising the attribute and method lookups of every message (some 400
    # instructions more per message; see
    # test_instrumented_runtimes_keep_a_shared_key_instance_dict).
    deliver: Callable[[bytes, str | None], None] = runtime._deliver
    every = latency_every

    def counted_receive(open_error: str | None) -> None:
        recv = runtime.data.recv
        untimed_left = every  # a countdown of small ints costs less than a modulo
        while True:
            try:
                raw = recv()
            except ChannelClosedError:
                return
            # Taken before deliver, so the ack (sent inside it) never overtakes the count.
            # A message is one collect() call: rows_total is a sink's calls. Storing an
            # int that exists costs a fraction of `stats.rows += 1`, which makes one.
            stats.last_taken = runtime.delivered
            stats.bytes += len(raw)
            untimed_left -= 1
            try:
                if untimed_left:
                    deliver(raw, open_error)
                else:
                    untimed_left = every
                    start = perf_counter_ns()
                    deliver(raw, open_error)
                    stats.observe(perf_counter_ns() - start)
            finally:
                runtime.delivered += 1

    runtime._receive = counted_receive
    if runtime.acks is not None:
        runtime.acks = _CountingAcks(runtime.acks, stats)


def sync_sink(runtime: Any) -> None:
    """Set an instrumented sink's ``rows`` and ``in_call`` from its loop's two counts.

    For the exporter's thread, before it reads the sink's counters: the sink's thread
    writes neither. ``last_taken`` is read first; ``delivered`` only grows, so a race
    reads a moment between the two reads, never a count ahead of the sink.
    """
    stats: SymbolStats = runtime.stats
    taken = stats.last_taken
    delivered: int = runtime.delivered
    stats.rows = max(delivered, taken + 1)
    stats.in_call = taken >= delivered


def function_rules(runtime: Any) -> dict[str, SymbolStats]:
    """The per-rule counters of an instrumented function runtime (rule "" included)."""
    rules: dict[str, SymbolStats] = runtime.metrics_rules
    return rules


def _instrument_function(runtime: Any, base: SymbolStats) -> None:
    if getattr(runtime, "metrics_rules", None) is not None:
        return  # a second start of a running function keeps its counters
    rules: dict[str, SymbolStats] = {"": base}
    runtime.metrics_rules = rules
    handle: Callable[[bytes], bytes] = runtime.handle
    context_for: Callable[[ExecCaller], Any] = runtime.context_for
    contexts: dict[str, Any] = runtime.contexts
    forget_rule: Callable[[str], None] = runtime.forget_rule
    every = latency_every
    # The rule the Exec in progress is for (counted_exec), None for any other request.
    exec_meta: Meta | None = None

    def counted_serve(channel: Channel) -> None:
        nonlocal exec_meta
        # FunctionRuntime._serve, counting. Before the reply only in_call is written (and
        # the clock read, one call in `every`): eKuiper's side of the round trip sleeps
        # sooner the longer a reply takes, so 400 ns more before each reply cost a
        # busy function 13% of its rate on kuiperd. The rest is counted once the reply
        # is out; in_call stays True until then, and a scrape waits for it to clear
        # (settle), so one right after eKuiper got the reply still sees the call.
        recv, send = channel.recv, channel.send
        timed = False
        elapsed = 0
        while True:
            try:
                raw = recv()
            except ChannelTimeout:
                base.heard += 1  # an idle keepalive: the channel is up (health)
                send(_protocol.HANDSHAKE)
                continue
            base.in_call = True
            if timed:
                start = perf_counter_ns()
                reply = handle(raw)
                elapsed = perf_counter_ns() - start
            else:
                reply = handle(raw)
            try:
                send(reply)
            finally:
                stats: SymbolStats
                if exec_meta is not None:
                    stats = rules.get(exec_meta.rule_id) or rule_stats(exec_meta.rule_id)
                    exec_meta = None
                else:
                    # The calling rule's under an on_error policy (rule_context), else
                    # the base's (Validate, or a request that did not parse).
                    stats = runtime.stats
                    runtime.stats = base
                if timed:
                    stats.observe(elapsed)
                stats.calls += 1
                stats.bytes += len(raw)
                # A reply is {"state":true,... or {"state":false,...: its 10th byte tells
                # which, for less than startswith costs.
                if reply[_STATE_AT] == _TRUE_BYTE:
                    stats.rows += 1
                else:
                    stats.fail(_reply_text(reply), time.time())
                base.heard += 1  # heard: this symbol's requests and idle timeouts
                timed = not base.heard % every
                base.in_call = False

    def rule_stats(rule_id: str) -> SymbolStats:
        """A rule's first call: its counters (or the base's, past MAX_RULES or for a rule
        id over _protocol.MAX_KEPT_CONTEXT_CHARS, whose contexts are not kept either)."""
        if len(rules) >= MAX_RULES or len(rule_id) > _protocol.MAX_KEPT_CONTEXT_CHARS:
            return base
        stats = rules[rule_id] = SymbolStats({**base.labels, "rule": rule_id}, time.time())
        return stats

    call: Callable[[list[Any], Any], Any] = runtime._call
    encode_reply = _protocol.encode_func_reply

    def counted_exec(args: list[Any], caller: ExecCaller) -> bytes:
        # FunctionRuntime._exec_plain, noting the calling rule for counted_serve on the
        # way, rather than a frame around context_for: this is before the reply.
        nonlocal exec_meta
        exec_meta = caller.meta
        ctx = contexts.get(caller.key) or context_for(caller)
        return encode_reply(True, call(args, ctx))

    def rule_context(caller: ExecCaller) -> Any:
        rule_id = caller.meta.rule_id
        runtime.stats = rules.get(rule_id) or rule_stats(rule_id)
        return context_for(caller)

    def forget(rule_id: str) -> None:
        if rule_id:
            rules.pop(rule_id, None)
        forget_rule(rule_id)

    runtime._serve = counted_serve
    if runtime._exec == runtime._exec_plain:
        runtime._exec = counted_exec
    else:  # an on_error policy's exec: the rule is named where it gets its context
        runtime.context_for = rule_context
    runtime.forget_rule = forget


def settle(stats: SymbolStats, max_wait_s: float = 0.005) -> None:
    """Wait (up to ``max_wait_s``) for a function's call in progress to be counted.

    For the exporter's thread, before it reads a function's counters: a call whose reply
    is out is counted just after (counted_serve), so a scrape in between would miss it.
    A call still in ``exec`` after the wait is left uncounted, as its reply is not out.
    """
    if not stats.in_call:
        return
    deadline = time.monotonic() + max_wait_s
    while stats.in_call and time.monotonic() < deadline:
        time.sleep(0.00005)  # lets the function's thread take the GIL and count


def _reply_text(reply: bytes) -> str:
    try:
        result = json.loads(reply).get("result")
    except (ValueError, AttributeError):
        return reply[:200].decode("utf-8", "replace")
    return str(result)
