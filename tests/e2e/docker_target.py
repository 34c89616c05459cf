"""The compose stack as an e2e target: the same scenarios, eKuiper in a container."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.e2e.kuiper import DEFAULT_VERSION, KuiperREST


@dataclass
class DockerKuiperd(KuiperREST):
    """eKuiper running as the compose service ``ekuiper``, reached on a published port."""

    container: Any  # docker.models.containers.Container
    rest_port: int
    plugins_dir: Path
    version: str = DEFAULT_VERSION
    sink_sockets: list[Path] = field(default_factory=list)

    @property
    def base_url(self) -> str:  # type: ignore[override]
        return f"http://127.0.0.1:{self.rest_port}"

    def plugin_pids(self, name: str | None = None) -> list[int]:
        self.container.reload()
        if self.container.status != "running":
            return []
        top = self.container.top(ps_args="-eo pid,args")
        marker = "/kuiper/plugins/portable/" + (f"{name}/" if name else "")
        pid_col = top["Titles"].index("PID")
        return [int(row[pid_col]) for row in top["Processes"] if marker in " ".join(row)]

    def log(self) -> str:
        return str(self.container.logs().decode(errors="replace"))

    def out_path(self, name: str) -> str:
        return f"/kuiper/data/{name}"

    def read_text(self, path: str) -> str | None:
        code, output = self.container.exec_run(["cat", path])
        return output.decode(errors="replace") if code == 0 else None

    def wait_healthy(self, timeout: float = 90.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.container.reload()
            health = self.container.attrs.get("State", {}).get("Health", {}).get("Status")
            if health == "healthy":
                return
            time.sleep(0.5)
        raise AssertionError(f"container not healthy within {timeout} s:\n{self.log()[-5000:]}")
