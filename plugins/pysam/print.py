"""The print sink: logs every message it receives."""

from typing import Any

from ekuiper import Context, Sink


class PrintSink(Sink):
    def configure(self, conf: dict) -> None:
        self.prefix = conf.get("prefix", "receive")

    def open(self, ctx: Context) -> None:
        ctx.get_logger().info("print sink opened")

    def collect(self, ctx: Context, data: Any) -> None:
        text = data.decode("utf-8", "replace") if isinstance(data, bytes) else str(data)
        print(f"{self.prefix}: {text}", flush=True)
        # Only sent when the rule action sets requireAck; harmless otherwise.
        ctx.ack_ok()

    def close(self, ctx: Context) -> None:
        ctx.get_logger().info("print sink closing")
