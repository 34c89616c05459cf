"""Async symbols: the one event loop of a plugin process, and the adapters that run an
async symbol's methods on it for the (thread-based) runtimes.

Imported only when a symbol with an ``async def`` method starts (``asyncness`` finds it
without importing anything), so a plugin of sync symbols never imports asyncio.

Threads:

- The loop runs on one daemon thread, ``ekuiper-aio``, started on first use and stopped
  by ``stop`` at plugin shutdown. It serves every async method of every symbol of the
  process. Only coroutines of async symbols and the SDK's own callbacks run on it, never
  a sync method of a symbol: those stay on the symbol's own thread, as without asyncio.
- A runtime's threads hand coroutines over with ``run`` (wait for the result) or
  ``submit`` (do not); ``run`` from the loop thread itself is refused (it would wait
  for itself forever).
- A coroutine that blocks (``time.sleep``, a sync client, the sync ``ctx.emit``) holds
  up every other async symbol of the process until it returns: that is the author's
  choice to make, e.g. with ``await asyncio.to_thread(...)``.
- An exception in a coroutine ends that call only; it reaches the runtime that handed
  the coroutine over, which treats it as it treats a sync method's exception. The loop
  and the other symbols go on.

Every task a symbol instance starts, directly or through tasks it created
(``asyncio.create_task`` inside ``open``, ``collect`` or ``exec``), belongs to its
:class:`Owner`; stopping the symbol cancels them and waits a bounded time. Ownership
follows the context, not the code: a task a shared client (used by several symbols)
creates while one symbol's coroutine calls it belongs to that symbol too, and dies with
it. A task started in an empty context (``contextvars.Context().run(asyncio.ensure_future,
coro)``) belongs to no symbol: the README's pattern for a shared client's background work.

Blocking calls symbols make from the loop hold up every async symbol: ``ctx.get_state`` /
``put_state`` (SQLite, up to its busy timeout), and ``ctx.ack_ok``/``ack_error`` from an
async collect (the ack is sent from the loop, waiting while eKuiper does not read it).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextvars
import logging
import threading
import weakref
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from typing import Any, TypeVar

from ekuiper._runtime.asyncness import (
    ASYNC_GENERATOR,
    FUNCTION_METHODS,
    SINK_METHODS,
    SOURCE_METHODS,
    AsyncKind,
    async_methods,
)
from ekuiper._runtime.base import CLOSE_TIMEOUT_S, call_bounded
from ekuiper._runtime.context import SymbolContext
from ekuiper.context import Context
from ekuiper.errors import SymbolError
from ekuiper.function import Function
from ekuiper.sink import Sink
from ekuiper.source import Source

__all__ = [
    "AsyncFunction",
    "AsyncSink",
    "AsyncSource",
    "Owner",
    "run",
    "run_bounded",
    "stop",
    "submit",
]

T = TypeVar("T")

LOOP_THREAD_NAME = "ekuiper-aio"

_lock = threading.Lock()
_loop: asyncio.AbstractEventLoop | None = None
_thread: threading.Thread | None = None
_logger = logging.getLogger("ekuiper.aio")
# The Owner of the task running now; a task inherits its creator's value, so every task
# a symbol's coroutine starts is registered with that symbol's Owner by _task_factory.
_owner: contextvars.ContextVar[Owner | None] = contextvars.ContextVar("ekuiper_owner",
                                                                      default=None)


# -- the loop -----------------------------------------------------------------------------


def _task_factory(loop: asyncio.AbstractEventLoop, coro: Any, **kwargs: Any) -> asyncio.Task[Any]:
    task: asyncio.Task[Any] = asyncio.Task(coro, loop=loop, **kwargs)
    context = kwargs.get("context")
    owner = context.get(_owner) if context is not None else _owner.get()
    if owner is not None:
        owner.tasks.add(task)
    return task


def _unhandled(loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
    # e.g. a task a symbol started and never awaited failed: log it, the loop goes on.
    exc = context.get("exception")
    _logger.error("async symbol code: %s", context.get("message", "unhandled error"),
                  exc_info=exc if isinstance(exc, BaseException) else None)


def _serve(loop: asyncio.AbstractEventLoop) -> None:
    asyncio.set_event_loop(loop)
    try:
        loop.run_forever()
    finally:
        asyncio.set_event_loop(None)


def loop() -> asyncio.AbstractEventLoop:
    """The process's event loop, started (with its thread) on first use."""
    global _loop, _thread
    current, thread = _loop, _thread
    if current is not None and thread is not None and thread.is_alive():
        return current
    with _lock:
        if _loop is not None and _thread is not None and _thread.is_alive():
            return _loop
        new = asyncio.new_event_loop()
        new.set_task_factory(_task_factory)  # type: ignore[arg-type]
        new.set_exception_handler(_unhandled)
        thread = threading.Thread(target=_serve, args=(new,), name=LOOP_THREAD_NAME,
                                  daemon=True)
        thread.start()
        _loop, _thread = new, thread
        return new


def on_loop_thread() -> bool:
    return _thread is not None and threading.current_thread() is _thread


def submit(coro: Coroutine[Any, Any, T]) -> concurrent.futures.Future[T]:
    """Schedule ``coro`` on the loop; the future completes when it does."""
    return asyncio.run_coroutine_threadsafe(coro, loop())


class _Waiter:
    """The outcome of one ``run``: a lock the loop releases when the coroutine is done.

    Cheaper than run_coroutine_threadsafe's chained futures: the coroutine's own task
    signals the waiting thread as it ends, one pass of the loop earlier.
    """

    __slots__ = ("done", "error", "result")

    def __init__(self) -> None:
        self.done = threading.Lock()
        self.done.acquire()
        self.result: Any = None
        self.error: BaseException | None = None


async def _signalling(waiter: _Waiter, coro: Coroutine[Any, Any, Any],
                      owner: Owner | None) -> None:
    if owner is not None:
        _owner.set(owner)
        task = asyncio.current_task()
        if task is not None:
            owner.tasks.add(task)
    try:
        waiter.result = await coro
    except BaseException as exc:  # every outcome, cancellation too, goes to the waiter
        waiter.error = exc
    finally:
        waiter.done.release()


def run(coro: Coroutine[Any, Any, T], owner: Owner | None = None) -> T:
    """Run ``coro`` on the loop and block this thread until it returns (or raises).

    With ``owner``, the coroutine's task and the tasks it creates are that owner's.
    A coroutine cancelled on the loop raises concurrent.futures.CancelledError here.
    """
    if on_loop_thread():
        coro.close()
        raise RuntimeError("a sync call into an async symbol method was made on the event "
                           "loop's thread; await it instead")
    waiter = _Waiter()
    current = loop()
    current.call_soon_threadsafe(current.create_task, _signalling(waiter, coro, owner))
    waiter.done.acquire()
    error = waiter.error
    if error is None:
        result: T = waiter.result
        return result
    waiter.error = None  # no cycle through the traceback
    if isinstance(error, asyncio.CancelledError):
        raise concurrent.futures.CancelledError() from error
    raise error


def run_bounded(coro: Coroutine[Any, Any, Any], what: str, logger: logging.Logger,
                timeout: float = CLOSE_TIMEOUT_S) -> None:
    """``call_bounded`` for a coroutine: wait at most ``timeout``, then cancel it.

    An exception is logged with its traceback, never raised.
    """
    future = submit(coro)
    try:
        future.result(timeout)
    except concurrent.futures.TimeoutError:
        future.cancel()
        logger.error("%s did not return within %g s; cancelled", what, timeout)
    except concurrent.futures.CancelledError:
        logger.debug("%s was cancelled", what)
    except Exception:
        logger.exception("%s raised", what)


def stop(logger: logging.Logger | None = None, timeout: float = CLOSE_TIMEOUT_S) -> None:
    """Cancel every task left on the loop, wait (bounded), end the loop and its thread.

    Called at plugin shutdown, after every symbol stopped; a later ``loop()`` starts a
    fresh loop (ekuiper.testing runs many plugins' symbols in one process).
    """
    global _loop, _thread
    with _lock:
        current, thread = _loop, _thread
        _loop = _thread = None
    if current is None or thread is None:
        return
    log = logger or _logger

    async def cancel_all() -> int:
        me = asyncio.current_task()
        tasks = [t for t in asyncio.all_tasks() if t is not me]
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.wait(tasks, timeout=timeout)
        await current.shutdown_default_executor()
        return sum(not t.done() for t in tasks)

    try:
        left = asyncio.run_coroutine_threadsafe(cancel_all(), current).result(timeout + 1)
        if left:
            log.error("%d async task(s) ignored cancellation at shutdown", left)
    except Exception as exc:  # a loop that cannot even cancel must not stop shutdown
        log.error("cancelling async tasks at shutdown failed: %s", exc)
    current.call_soon_threadsafe(current.stop)
    thread.join(timeout)
    if thread.is_alive():
        log.error("the event loop did not stop within %g s; its thread is left", timeout)
        return
    current.close()


# -- ownership: what a symbol instance started ----------------------------------------------


class Owner:
    """The tasks of one symbol instance, so stopping it can cancel what it started.

    ``tasks`` is filled on the loop thread (by the task factory) and read there too.
    """

    def __init__(self, label: str, logger: logging.Logger) -> None:
        self.label = label
        self.logger = logger
        self.tasks: weakref.WeakSet[asyncio.Task[Any]] = weakref.WeakSet()

    async def _run(self, aw: Awaitable[T]) -> T:
        _owner.set(self)
        current = asyncio.current_task()
        if current is not None:
            self.tasks.add(current)
        return await aw

    def own(self, aw: Awaitable[T]) -> Coroutine[Any, Any, T]:
        """``aw`` wrapped so that its task, and every task it creates, is this owner's."""
        return self._run(aw)

    def cancel(self, timeout: float = CLOSE_TIMEOUT_S) -> int:
        """Cancel every live task of this owner and wait up to ``timeout`` for them to
        end; blocks the calling thread (never the loop's). Returns how many are left."""
        if _loop is None:
            return 0

        async def cancel_mine() -> int:
            me = asyncio.current_task()
            tasks = [t for t in list(self.tasks) if t is not me and not t.done()]
            for task in tasks:
                task.cancel()
            if tasks:
                await asyncio.wait(tasks, timeout=timeout)
            return sum(not t.done() for t in tasks)

        try:
            left = run(cancel_mine())
        except Exception as exc:
            self.logger.error("cancelling the tasks of %s failed: %s", self.label, exc)
            return 0
        if left:
            self.logger.error("%d task(s) of %s ignored cancellation for %g s; left running",
                              left, self.label, timeout)
        return left


def _call(fn: Callable[..., Any], kind: AsyncKind | None, owner: Owner, *args: Any) -> Any:
    """A method call from a symbol's thread: a sync one here, an async one on the loop."""
    if kind is None:
        return fn(*args)
    return run(fn(*args), owner)


def _close(fn: Callable[..., Any], kind: AsyncKind | None, ctx: Context,
           what: str, logger: logging.Logger) -> None:
    if kind is None:
        call_bounded(lambda: fn(ctx), what, logger)
    else:
        run_bounded(fn(ctx), what, logger)


# -- sources ------------------------------------------------------------------------------


class AsyncSource(Source):
    """A source with at least one async method, wrapped as the sync Source that
    SourceRuntime drives.

    ``configure`` (control thread) and ``open`` (the source's thread) block their thread
    while an async method runs on the loop. An async ``open`` emits with
    ``await ctx.emit_async(...)``; an async generator ``open`` has each value it yields
    emitted that way. Either way the frames go out on a sender thread of this source's
    own, one at a time and in order, with ``emit``'s backpressure, so the loop never
    waits for eKuiper. ``close`` (control thread): cancel the open coroutine and every
    task the source started, wait at most CLOSE_TIMEOUT_S, then the source's ``close``;
    ``finish`` (control thread, once the channel is closed): wait for the sender thread.
    """

    def __init__(self, source: Any, ctx: SymbolContext, label: str,
                 logger: logging.Logger) -> None:
        self.source = source
        self.label = label
        self.logger = logger
        self.kinds = async_methods(source, SOURCE_METHODS)
        self.owner = Owner(f"source {label}", logger)
        self.sender: concurrent.futures.ThreadPoolExecutor | None = None
        if self.kinds.get("open") is not None:
            # One worker: emit_async calls of this source are sent in the order they
            # were made, and one blocked by backpressure holds up only this source.
            self.sender = concurrent.futures.ThreadPoolExecutor(
                1, thread_name_prefix=f"{label} sender")
            ctx.attach_sender(self.sender)
        self._lock = threading.Lock()
        self._closed = False
        self._future: concurrent.futures.Future[None] | None = None

    def configure(self, datasource: str, conf: dict[str, Any]) -> None:
        _call(self.source.configure, self.kinds.get("configure"), self.owner, datasource,
              conf)

    def open(self, ctx: Context) -> None:
        kind = self.kinds.get("open")
        if kind is None:
            self.source.open(ctx)
            return
        coro = self._generate(ctx) if kind == ASYNC_GENERATOR else self.source.open(ctx)
        with self._lock:
            if self._closed:
                coro.close()
                return
            self._future = future = submit(self.owner.own(coro))
        try:
            future.result()
        except concurrent.futures.CancelledError:
            if not self._closed:
                raise

    async def _generate(self, ctx: Context) -> None:
        rows: AsyncIterator[Any] = self.source.open(ctx)
        try:
            async for item in rows:
                await ctx.emit_async(item)
        finally:
            aclose = getattr(rows, "aclose", None)
            if aclose is not None:
                await aclose()

    def close(self, ctx: Context) -> None:
        with self._lock:
            self._closed = True
        self.owner.cancel()
        _close(self.source.close, self.kinds.get("close"), ctx,
               f"close() of {self.label}", self.logger)
        if self.sender is not None:
            self.sender.shutdown(wait=False, cancel_futures=True)

    def finish(self) -> None:
        """After the source channel is closed (which ends a send in progress at once):
        wait, bounded, for the sender thread, so none is left when the stop is answered."""
        sender = self.sender
        if sender is not None:
            call_bounded(lambda: sender.shutdown(wait=True), f"sender of {self.label}",
                         self.logger)


# -- sinks --------------------------------------------------------------------------------


def in_flight_limit(sink: Any, label: str) -> int:
    """The sink class's ``max_in_flight``, checked."""
    limit = getattr(sink, "max_in_flight", 1)
    if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
        raise SymbolError(f"sink {label}: max_in_flight must be an integer >= 1, got "
                          f"{limit!r}")
    return limit


class AsyncSink(Sink):
    """A sink with at least one async method, wrapped as the sync Sink that SinkRuntime
    drives.

    ``configure`` (control thread) and ``open`` (the sink's thread) block their thread
    while an async method runs. ``collect`` is called on the sink's thread per message:

    - in flight 1 (the default, and always with requireAck or a retry policy): the
      thread waits for the coroutine, exactly as for a sync collect (acks, errors, order unchanged);
    - in flight N > 1 (``max_in_flight`` on the class, requireAck off): the coroutine is
      scheduled and the thread goes on to the next message, waiting only while N are
      unfinished (backpressure to eKuiper). Coroutines start in arrival order: each runs
      to its first ``await`` before the next message's starts. They may finish in any
      order; none is skipped; a failure is reported through ``on_failure`` (on the loop
      thread), as a sync collect's exception would be.

    ``begin_stop`` (control thread, first thing at stop, before the data channel closes):
    a message waiting for a free slot is dropped at once, so the sink's thread ends.
    ``close`` (control thread, after that thread ended or was waited for): wait at most
    CLOSE_TIMEOUT_S for the collects in flight, cancel what is left and every task the
    sink started, then the sink's ``close``.
    """

    def __init__(self, sink: Any, label: str, logger: logging.Logger, require_ack: bool,
                 on_failure: Callable[[Exception], None], retrying: bool = False) -> None:
        self.sink = sink
        self.label = label
        self.logger = logger
        self.kinds = async_methods(sink, SINK_METHODS)
        self.owner = Owner(f"sink {label}", logger)
        self.in_flight = in_flight_limit(sink, label)
        if self.in_flight > 1 and require_ack:
            logger.warning("max_in_flight=%d ignored: with requireAck each message is "
                           "acknowledged before the next one is read", self.in_flight)
            self.in_flight = 1
        elif self.in_flight > 1 and retrying:
            logger.warning("max_in_flight=%d ignored: a retry policy retries each message "
                           "before the next one is read", self.in_flight)
            self.in_flight = 1
        elif self.in_flight > 1 and "collect" not in self.kinds:
            logger.warning("max_in_flight=%d ignored: collect() is not async",
                           self.in_flight)
            self.in_flight = 1
        self.on_failure = on_failure
        self._slots = threading.BoundedSemaphore(self.in_flight)
        self._pending: set[concurrent.futures.Future[None]] = set()
        self._pending_lock = threading.Lock()
        self._closed = False
        self._stopping = threading.Event()
        self._collect: Callable[[Context, Any], None]
        if "collect" not in self.kinds:
            self._collect = sink.collect
        elif self.in_flight == 1:
            self._collect = self._collect_one
        else:
            self._collect = self._collect_many

    def configure(self, conf: dict[str, Any]) -> None:
        _call(self.sink.configure, self.kinds.get("configure"), self.owner, conf)

    def open(self, ctx: Context) -> None:
        _call(self.sink.open, self.kinds.get("open"), self.owner, ctx)

    def collect(self, ctx: Context, data: Any) -> None:
        self._collect(ctx, data)

    def begin_stop(self) -> None:
        """The rule is stopping: no message waits for a slot any more (control thread)."""
        self._stopping.set()

    def _collect_one(self, ctx: Context, data: Any) -> None:
        try:
            run(self.sink.collect(ctx, data), self.owner)
        except concurrent.futures.CancelledError:
            if not (self._closed or self._stopping.is_set()):
                raise

    def _collect_many(self, ctx: Context, data: Any) -> None:
        while not self._slots.acquire(timeout=0.05):
            if self._stopping.is_set() or self._closed:
                self.logger.error("sink stopped while a message waited for a free slot; "
                                  "the message is dropped")
                return
        if self._stopping.is_set() or self._closed:
            self._slots.release()
            self.logger.error("sink stopped before a message's collect() started; the "
                              "message is dropped")
            return
        future = submit(self.owner.own(self.sink.collect(ctx, data)))
        with self._pending_lock:
            self._pending.add(future)
        future.add_done_callback(self._finished)

    def _finished(self, future: concurrent.futures.Future[None]) -> None:
        with self._pending_lock:
            self._pending.discard(future)
        self._slots.release()
        if future.cancelled():
            return
        exc = future.exception()
        if isinstance(exc, Exception):
            self.on_failure(exc)

    def close(self, ctx: Context) -> None:
        self._closed = True
        with self._pending_lock:
            pending = list(self._pending)
        if pending:
            _, late = concurrent.futures.wait(pending, CLOSE_TIMEOUT_S)
            if late:
                self.logger.error("%d collect() call(s) of %s still running after %g s; "
                                  "cancelled", len(late), self.label, CLOSE_TIMEOUT_S)
        self.owner.cancel()
        _close(self.sink.close, self.kinds.get("close"), ctx, f"close() of {self.label}",
               self.logger)


# -- functions ----------------------------------------------------------------------------


class AsyncFunction(Function):
    """A function whose ``exec`` is async, wrapped as the sync Function that
    FunctionRuntime drives: each call waits on the function's thread for the coroutine
    on the loop.

    eKuiper sends a function symbol one call at a time, so this buys no concurrency of
    calls; it lets ``exec`` await clients that live on the loop (an HTTP session, a
    database pool) shared with the plugin's async sources and sinks. The hop to the loop
    and back costs tens of microseconds per call (README, "Async symbols").
    ``validate`` and ``is_aggregate`` must stay sync: an async one fails the start.
    """

    def __init__(self, function: Any, label: str, logger: logging.Logger) -> None:
        kinds = async_methods(function, FUNCTION_METHODS)
        for name in ("validate", "is_aggregate"):
            if name in kinds:
                raise SymbolError(f"{label}: {name}() is async; only exec() may be "
                                  f"(eKuiper asks {name} while it creates a rule); make "
                                  "it a plain def")
        self.function = function
        self.owner = Owner(f"function {label}", logger)

    def validate(self, args: list[Any]) -> str | None:
        result: str | None = self.function.validate(args)
        return result

    def is_aggregate(self) -> bool:
        return bool(self.function.is_aggregate())

    def exec(self, args: list[Any], ctx: Context) -> Any:
        return run(self.function.exec(args, ctx), self.owner)

    def close(self) -> None:
        self.owner.cancel()
