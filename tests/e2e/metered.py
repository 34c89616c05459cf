"""A kuiperd whose plugins export metrics and health, and reading them where they run.

Native: kuiperd runs with EKUIPER_PLUGIN_METRICS_DIR, testplug inherits it. Compose:
compose.yaml sets it; reads go through the container, as an operator's would.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from prometheus_client.parser import text_string_to_metric_families

from ekuiper._cli.health import HealthUnavailable, fetch
from tests.conftest import REPO
from tests.e2e.kuiper import KuiperREST

# compose.yaml's EKUIPER_PLUGIN_METRICS_DIR inside the container.
CONTAINER_DIR = "/kuiper/metrics"
# The health limits both targets run with (stuck and blocked), in seconds: short, so a
# test sees a symbol turn unhealthy without waiting the shipped 30 s.
HEALTH_LIMIT_S = "2"


@dataclass
class Metered:
    """An eKuiper whose plugins export metrics, and how to read them where they run."""

    kuiper: KuiperREST
    directory: str
    container: Any = None

    def get(self, target: str) -> tuple[int, bytes]:
        if self.container is None:
            return fetch(Path(self.directory) / "testplug.sock", target)
        code = ("import sys; from pathlib import Path; from ekuiper._cli.health import fetch; "
                f"s, b = fetch(Path({self.directory!r}) / 'testplug.sock', {target!r}); "
                "sys.stdout.write(str(s) + '\\n' + b.decode())")
        # A docker exec now and then hands back empty output though the command ran (seen
        # under load while a test polls health): ask again rather than fail on it.
        for _attempt in range(3):
            exit_code, (out, err) = self.container.exec_run(
                ["/opt/venv/bin/python", "-c", code], demux=True)
            assert exit_code == 0, (out, err)
            status, _, body = (out or b"").decode().partition("\n")
            if status.isdigit():
                return int(status), body.encode()
        raise AssertionError(f"no status from {target} in the container: {out!r} {err!r}")

    def status_cli(self) -> subprocess.CompletedProcess[str]:
        if self.container is None:
            return subprocess.run(
                [sys.executable, "-m", "ekuiper._cli", "status", "testplug", "--server",
                 self.kuiper.base_url, "--metrics-dir", self.directory],
                capture_output=True, text=True, timeout=60)
        exit_code, output = self.container.exec_run(["ekuiper-plugin", "status", "testplug"])
        return subprocess.CompletedProcess([], exit_code, output.decode(), "")

    def healthcheck(self) -> subprocess.CompletedProcess[str]:
        """The image's healthcheck, plugins included (EKUIPER_HEALTHCHECK_PLUGINS=1)."""
        if self.container is None:
            return subprocess.run(
                [sys.executable, str(REPO / "images" / "healthcheck.py"),
                 f"{self.kuiper.base_url}/"], capture_output=True, text=True, timeout=60,
                env={**os.environ, "EKUIPER_PLUGIN_METRICS_DIR": self.directory,
                     "EKUIPER_HEALTHCHECK_PLUGINS": "1"})
        exit_code, output = self.container.exec_run(
            ["/opt/venv/bin/python", "/usr/local/lib/ekuiper/healthcheck.py",
             "http://127.0.0.1:9081/"], environment={"EKUIPER_HEALTHCHECK_PLUGINS": "1"})
        return subprocess.CompletedProcess([], exit_code, "", output.decode())


def samples(metered: Metered) -> list[Any]:
    status, body = metered.get("/metrics")
    assert status == 200
    return [s for family in text_string_to_metric_families(body.decode())
            for s in family.samples]


def value(metered: Metered, name: str, **labels: str) -> float:
    found = [s.value for s in samples(metered)
             if s.name == name and labels.items() <= s.labels.items()]
    assert len(found) == 1, (name, labels, found)
    return float(found[0])


def health(metered: Metered) -> tuple[int, dict[str, Any]]:
    status, body = metered.get("/health")
    return status, json.loads(body)


def symbol_health(metered: Metered, symbol: str, rule: str) -> dict[str, Any] | None:
    """The symbol's /health entry, or None while the plugin (started on first use) has no
    socket or does not run the symbol for that rule."""
    try:
        document = health(metered)[1]
    except HealthUnavailable:
        return None
    for item in document["symbols"]:
        if item["symbol"] == symbol and item.get("rule") == rule:
            return dict(item)
    return None


def state_of(metered: Metered, symbol: str, rule: str) -> str | None:
    """The symbol's state, or None (see symbol_health)."""
    item = symbol_health(metered, symbol, rule)
    return None if item is None else str(item["state"])


def in_state(metered: Metered, symbol: str, rule: str, state: str) -> dict[str, Any] | None:
    """The symbol's /health entry while it is in ``state``, else None (for wait_for)."""
    item = symbol_health(metered, symbol, rule)
    return item if item is not None and item["state"] == state else None


def write_source_conf(metered: Metered, key: str, body: str,
                      source: str = "counter") -> None:
    """Give testplug's ``source`` the conf section ``key`` (yaml ``body``) where kuiperd
    reads it."""
    text = f"default:\n  interval: 0.05\n{key}:\n  {body}\n"
    if metered.container is None:
        home: Path = metered.kuiper.home  # type: ignore[attr-defined]
        (home / "etc" / "sources" / f"{source}.yaml").write_text(text)
        return
    # A running eKuiper keeps the source yaml it has read (an earlier test in the shared
    # stack may have used the source): give it the section through its REST API instead.
    # eKuiper turns an `interval` sent that way into a duration text ("0s"), which the
    # counter does not read: that one stays at the stack's default.
    conf: dict[str, Any] = {}
    for line in body.splitlines():
        name, _, raw = line.strip().partition(":")
        if name != "interval":
            conf[name] = json.loads(raw)
    resp = metered.kuiper.put(f"/metadata/sources/{source}/confKeys/{key}", conf)
    assert resp.status == 200, resp
