"""An in-memory Transport, so the runtime can be driven without sockets."""

from __future__ import annotations

import queue

from ekuiper._protocol import Meta
from ekuiper._transport import Channel, ChannelTimeout
from ekuiper.errors import ChannelClosedError


class MemoryChannel:
    """A channel whose sends are recorded and whose receives come from a queue."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.sent: list[bytes] = []
        self.inbox: queue.Queue[bytes | None] = queue.Queue()
        self.closed = False

    def send(self, data: bytes) -> None:
        if self.closed:
            raise ChannelClosedError(f"{self.name} is closed")
        self.sent.append(data)

    def recv(self) -> bytes:
        while True:
            if self.closed:
                raise ChannelClosedError(f"{self.name} is closed")
            try:
                item = self.inbox.get(timeout=0.05)
            except queue.Empty:
                continue
            if item is None:
                raise ChannelTimeout(self.name)
            return item

    def close(self) -> None:
        self.closed = True


class MemoryTransport:
    """Hands out MemoryChannels and remembers them by name."""

    def __init__(self) -> None:
        self.channels: dict[str, MemoryChannel] = {}

    def _make(self, name: str) -> Channel:
        channel = MemoryChannel(name)
        self.channels[name] = channel
        return channel

    def control(self, plugin_name: str) -> Channel:
        return self._make(f"control:{plugin_name}")

    def function(self, symbol_name: str, keepalive_ms: int) -> Channel:
        return self._make(f"function:{symbol_name}")

    def source(self, meta: Meta, send_timeout_ms: int) -> Channel:
        return self._make(f"source:{meta.rule_id}")

    def sink(self, meta: Meta, acked: bool = False) -> Channel:
        return self._make(f"sink:{meta.rule_id}")

    def sink_ack(self, meta: Meta, send_timeout_ms: int) -> Channel:
        return self._make(f"ack:{meta.rule_id}")
