"""A sink's collect under a retry policy (ekuiper._policy): imported by sinks that use one.

Runs on the sink's thread, one message at a time, so the next message waits until this
one is delivered or given up. A backoff is a wait on the runtime's wakeup event, which
stop sets: a stopping rule is never slept through.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from ekuiper import _protocol
from ekuiper._policy import ErrorPolicy
from ekuiper._runtime.base import exception_text
from ekuiper.errors import ChannelClosedError

if TYPE_CHECKING:
    from ekuiper._runtime.sink import SinkRuntime

__all__ = ["collect_with_retry"]


def collect_with_retry(runtime: SinkRuntime, data: Any, policy: ErrorPolicy) -> None:
    """Call ``collect`` until it returns, the retries run out or the rule stops.

    With requireAck the acks ``collect`` makes are held per attempt and the last
    attempt's (or the automatic ok/error) is sent once, after it.
    """
    retry = 0
    attempts = policy.retries + 1
    while True:
        runtime.hold_acks()
        try:
            runtime.sink.collect(runtime.ctx, data)
        except ChannelClosedError:
            runtime.release_acks()
            if not runtime.stopping:
                runtime.logger.error("ack channel closed while the rule still runs")
            return
        except Exception as exc:
            if retry < policy.retries and not runtime.stopping:
                delay = policy.delay(retry)
                retry += 1
                runtime.retries += 1
                if runtime.stats is not None:
                    runtime.stats.retries += 1
                runtime._failures.report(
                    f"collect() (attempt {retry} of {attempts})", exc, logging.WARNING,
                    f"; retrying in {delay:g} s")
                if runtime.wakeup.wait(delay):
                    runtime.release_acks()
                    runtime.logger.warning("the rule stopped while collect() was being "
                                           "retried; the message is not delivered")
                    return
                continue
            runtime.release_acks()
            if retry == policy.retries:
                runtime.retry_exhausted += 1
                if runtime.stats is not None:
                    runtime.stats.retries_exhausted += 1
            runtime._failed(exc, f"{exception_text(exc)} (gave up after {retry + 1} "
                                 f"attempts)")
            return
        runtime.release_acks()
        runtime._auto_ack(_protocol.ACK_OK)
        return
