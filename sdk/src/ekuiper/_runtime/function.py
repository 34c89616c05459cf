"""Runtime of one function symbol: serves every rule that calls it."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from ekuiper import _logging, _protocol
from ekuiper._kinds import FUNCTION
from ekuiper._protocol import Control, ExecCaller, FuncRequest
from ekuiper._runtime.asyncness import FUNCTION_METHODS, async_methods
from ekuiper._runtime.base import FailureLog, SymbolRuntime, exception_text
from ekuiper._runtime.context import SymbolContext
from ekuiper._transport import Channel, ChannelTimeout, Transport
from ekuiper.errors import ChannelClosedError
from ekuiper.function import Function, _call_exec

if TYPE_CHECKING:
    from ekuiper._runtime.aio import AsyncFunction
    from ekuiper._state import Store

__all__ = ["FunctionRuntime"]

# eKuiper's REP gives up on a request after recvTimeout (5 s); resending the handshake
# at that pace keeps the idle REQ in a state where the next call is received.
KEEPALIVE_MS = 5000
# Contexts are per calling expression; rules that only use the function never send a
# stop, so the number kept is bounded as well as dropped on the rule's stop.
MAX_CONTEXTS = 1024

# The Function method each request calls, as failures name it.
_USER_METHOD = {"Exec": f"{FUNCTION.method}()", "Validate": "validate()",
                "IsAggregate": "is_aggregate()"}


class FunctionRuntime(SymbolRuntime):
    """Answers eKuiper's function requests on one thread.

    start (control thread): dial the function channel, spawn the request loop. A second
    start of the same function (eKuiper restarted its side) keeps the running loop.
    Loop: send ``handshake``, then answer each request as the next REQ send; an idle
    receive times out every KEEPALIVE_MS and the handshake is resent.

    A function whose ``exec`` is async is wrapped in ``aio.AsyncFunction``, which awaits
    each call on the plugin's event loop while this thread waits for the answer.
    """

    def __init__(self, control: Control, function: Function, plugin_name: str,
                 transport: Transport, logger: logging.Logger) -> None:
        super().__init__(control, logger)
        self.function = function
        self.plugin_name = plugin_name
        self.transport = transport
        self.channel: Channel | None = None
        # By the calling expression's context string (ExecCaller.key).
        self.contexts: dict[str, SymbolContext] = {}
        self._contexts_lock = threading.Lock()
        self._failures = FailureLog(logger)
        # What the last failing call raised (ekuiper.testing re-raises it).
        self.last_failure: BaseException | None = None
        self.log_level = control.config.get("logLevel")
        self._async: AsyncFunction | None = None  # wrapping an async exec
        if async_methods(function, FUNCTION_METHODS):
            from ekuiper._runtime.aio import AsyncFunction

            self.function = self._async = AsyncFunction(function, control.label, logger)
        # Bound once: a typed call() gets its precomputed binder and signature check.
        self._call: Callable[[list[Any], Any], Any] = self.function.exec
        self._validate: Callable[[list[Any]], Any] = self.function.validate
        if getattr(type(function), "exec", None) is _call_exec:
            from ekuiper._runtime.typed import typed_function

            self._call, self._validate = typed_function(function, control.symbol_name)
        # Rows whose failure the function's on_error policy turned into a value.
        self.errors_replaced = 0
        self._replacement = b""
        self._replaced_outcome = ""
        self._exec: Callable[[list[Any], ExecCaller], bytes] = self._exec_plain
        on_error = getattr(function, "on_error", None)
        if on_error is not None:
            self._use_policy(on_error)
        # Where the contexts keep state; None: the process's store (ekuiper.testing sets it).
        self.state_store: Store | None = None

    @classmethod
    def for_plugin(cls, control: Control, symbol: Any, plugin_name: str,
                   transport: Transport, send_timeout_ms: int,
                   logger: logging.Logger) -> FunctionRuntime:
        return cls(control, symbol, plugin_name, transport, logger)

    def start(self) -> None:
        self.channel = self.transport.function(self.control.symbol_name, KEEPALIVE_MS)
        self._instrument()
        self._spawn(self._run)

    def _run(self) -> None:
        assert self.channel is not None
        channel = self.channel
        try:
            channel.send(_protocol.HANDSHAKE)
            self._serve(channel)
        except ChannelClosedError:
            if not self.stopping:
                self.logger.error("function channel closed unexpectedly")
        except (ConnectionError, ChannelTimeout) as exc:
            # eKuiper's end went away and did not come back while redialling.
            self.logger.error("function channel to eKuiper lost: %s; the function is "
                              "unavailable until the plugin restarts", exc)

    def _serve(self, channel: Channel) -> None:
        """Answer requests until the channel raises (this loop's thread).

        With metrics on, ``_runtime.instrument`` replaces it with a loop that counts each
        call once its reply is out: eKuiper's side of the round trip waits for the reply,
        and every nanosecond before it costs the call several.
        """
        handle = self.handle
        while True:
            try:
                raw = channel.recv()
            except ChannelTimeout:
                channel.send(_protocol.HANDSHAKE)  # keeps the idle REQ receivable
                continue
            channel.send(handle(raw))

    def handle(self, raw: bytes) -> bytes:
        """Answer one request; never raises.

        A request eKuiper sent wrong is answered with what is wrong with it; an exception
        from the function's code with its type and message (``ValueError: ...``).
        """
        try:
            call = _protocol.parse_exec(raw)  # every call of a running rule
            request = None if call is not None else _protocol.parse_other_func_request(raw)
        except Exception as exc:  # whatever eKuiper sent, the function must go on
            self.logger.error("bad function request: %s", exc)
            return _protocol.encode_func_reply(False, str(exc))
        try:
            if call is not None:
                return self._exec(call[0], call[1])
            assert request is not None
            return self._answer(request)
        except Exception as exc:
            self.last_failure = exc
            self._failures.report(_USER_METHOD[request.func if request else "Exec"], exc)
            return _protocol.encode_func_reply(False, exception_text(exc))

    def _answer(self, request: FuncRequest) -> bytes:
        """Validate or IsAggregate."""
        if request.func == "Validate":
            verdict = self._validate(request.args)
            if verdict:
                return _protocol.encode_func_reply(False, str(verdict))
            return _protocol.encode_func_reply(True, "")
        return _protocol.encode_func_reply(True, bool(self.function.is_aggregate()))

    def _exec_plain(self, args: list[Any], caller: ExecCaller) -> bytes:
        # context_for's hit, inline: this is before the reply.
        ctx = self.contexts.get(caller.key) or self.context_for(caller)
        return _protocol.encode_func_reply(True, self._call(args, ctx))

    def _use_policy(self, on_error: Any) -> None:
        """Serve Exec through the on_error policy; a bad policy raises PolicyError."""
        from ekuiper import _policy  # only functions that declare a policy load it

        policy = _policy.function_policy(self.control.symbol_name, on_error)
        if policy is None:
            return
        self._replacement = _policy.replacement_reply(self.control.symbol_name, policy)
        self._replaced_outcome = f"; the row's result is {policy.describe()} (on_error)"
        self._exec = self._exec_replacing

    def _exec_replacing(self, args: list[Any], caller: ExecCaller) -> bytes:
        ctx = self.context_for(caller)
        try:
            return _protocol.encode_func_result(self._call(args, ctx))
        except Exception as exc:  # exec's exceptions and results JSON cannot carry
            self.last_failure = exc
            self.errors_replaced += 1
            if self.stats is not None:
                self.stats.replaced += 1
            self._failures.report(_USER_METHOD["Exec"], exc, logging.WARNING,
                                  self._replaced_outcome)
            return self._replacement

    def context_for(self, caller: ExecCaller) -> SymbolContext:
        """The context of the expression an Exec comes from (made at its first call; at
        each call for a context string over _protocol.MAX_KEPT_CONTEXT_CHARS)."""
        # Lock-free on a hit (dict.get is atomic); the control thread's forget_rule and
        # inserts take the lock. Eviction is oldest-first: an evicted live caller simply
        # gets a fresh context, which holds nothing but its ids and logger.
        meta, func_id, key = caller
        ctx = self.contexts.get(key)
        if ctx is not None:
            return ctx
        with self._contexts_lock:
            label = (f"{self.plugin_name}/{self.control.symbol_name} rule={meta.rule_id} "
                     f"op={meta.op_id}/{meta.instance_id} fn={func_id}")
            ctx = SymbolContext(FUNCTION.noun, self.control.symbol_name, meta,
                                _logging.symbol_logger(label, self.log_level))
            ctx.state_store = self.state_store
            if len(key) > _protocol.MAX_KEPT_CONTEXT_CHARS:
                return ctx  # made up or broken: a context per call (state is in the store)
            self.contexts[key] = ctx
            while len(self.contexts) > MAX_CONTEXTS:
                del self.contexts[next(iter(self.contexts))]
            return ctx

    def forget_rule(self, rule_id: str) -> None:
        """Drop the contexts of a rule that has stopped."""
        with self._contexts_lock:
            for key in [k for k, ctx in self.contexts.items()
                        if ctx.get_rule_id() == rule_id]:
                del self.contexts[key]

    def _shutdown(self) -> None:
        if self.channel is not None:
            self.channel.close()
        if self._async is not None:
            # Cancel first: the thread is waiting for the running exec's coroutine.
            self._async.close()
        self._join(f"exec() of {self.control.label}")


