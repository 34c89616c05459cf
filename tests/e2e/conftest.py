"""Fixtures that run a real kuiperd (built from the pinned eKuiper version, cached)."""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.conftest import skip_or_fail
from tests.e2e.kuiper import DEFAULT_VERSION, Kuiperd, KuiperdUnavailable, kuiperd_dist

_dists: dict[str, Path] = {}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "tests/e2e/" in str(item.path):
            item.add_marker(pytest.mark.e2e)


def dist_for(version: str) -> Path:
    """The kuiperd build for ``version``; skip (fail under CI) if none can be had."""
    if version not in _dists:
        if not shutil.which("go") and not shutil.which("docker"):
            cache = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache"))
            if not (cache / "ekuiper-sdk" / "kuiperd" / version / "bin" / "kuiperd").exists():
                skip_or_fail(f"no kuiperd {version}: install Go (or Docker) so "
                             "scripts/kuiperd.sh can build it")
        try:
            _dists[version] = kuiperd_dist(version)
        except KuiperdUnavailable as exc:
            skip_or_fail(str(exc))
    return _dists[version]


BootKuiperd = Callable[..., Kuiperd]


@pytest.fixture
def boot_kuiperd(request: pytest.FixtureRequest) -> Iterator[BootKuiperd]:
    """Boot a kuiperd in a fresh home; on teardown stop it and check nothing is left.

    ``boot_kuiperd(version=..., drop_in=[plugin dirs], env={...})`` returns a running
    Kuiperd. Teardown asserts that no plugin process of its home survives and that no
    socket file a plugin sink listened on remains in /tmp (the source and ack sockets are
    eKuiper's own; 1.x leaves them behind); kuiperd's log is printed when the test failed.
    """
    started: list[Kuiperd] = []
    homes: list[str] = []

    def boot(version: str = DEFAULT_VERSION, drop_in: tuple[Path, ...] = (),
             env: dict[str, str] | None = None) -> Kuiperd:
        dist = dist_for(version)
        home = tempfile.mkdtemp(prefix="kuiper-home-")
        homes.append(home)
        kuiperd = Kuiperd(version, Path(home), dist, env=dict(env or {}))
        kuiperd.lay_out()
        for plugin_dir in drop_in:
            kuiperd.drop_in(plugin_dir)
        started.append(kuiperd)
        kuiperd.start()
        return kuiperd

    yield boot

    failures = []
    for kuiperd in started:
        kuiperd.stop()
        deadline = time.monotonic() + 3
        while kuiperd.plugin_pids() and time.monotonic() < deadline:
            time.sleep(0.1)
        if kuiperd.plugin_pids():
            failures.append(f"plugin processes left behind: {kuiperd.plugin_pids()}")
        left = [p.name for p in kuiperd.sink_sockets if p.exists()]
        if left:
            failures.append(f"sink socket files left behind: {left}")
    report = getattr(request.node, "rep_call", None)
    if (report is not None and report.failed) or failures:
        for kuiperd in started:
            print(f"--- kuiperd {kuiperd.version} log ({kuiperd.log_path}) ---")
            print(kuiperd.log()[-20000:])
    for kuiperd in started:
        for pid in kuiperd.plugin_pids():
            os.kill(pid, 9)
    for home in homes:
        shutil.rmtree(home, ignore_errors=True)
    assert not failures, failures
