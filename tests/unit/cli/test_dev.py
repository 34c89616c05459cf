"""`ekuiper-plugin dev` against a scripted server, and `run --reload` with real processes."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable
from pathlib import Path
from typing import ClassVar

import pytest

from ekuiper._cli import dev, main
from ekuiper._cli.scaffold import new_plugin
from ekuiper._cli.watch import Changes
from tests.protocol.events import wait_for
from tests.unit.cli.conftest import FakeServer

UPLOADS = "/kuiper/data/uploads/"


def _upload(body: bytes) -> tuple[int, str]:
    return 201, UPLOADS + body.split(b'filename="', 1)[1].split(b'"', 1)[0].decode()


def _serve(fake: FakeServer, installed: list[str]) -> None:
    """Routes of an eKuiper 2.x; POST adds devplug to ``installed``."""
    def post(_body: bytes) -> tuple[int, str]:
        installed.append("devplug")
        return 201, "installed"

    fake.routes.update({
        ("GET", "/plugins/portables"): lambda _b: (200, json.dumps(
            [{"name": n} for n in installed])),
        ("POST", "/config/uploads"): _upload,
        ("DELETE", "/config/uploads/*"): (200, "ok"),
        ("POST", "/plugins/portables"): post,
        ("PUT", "/plugins/portables/devplug"): (200, "updated"),
        ("DELETE", "/plugins/portables/devplug"): (200, "deleted"),
        ("GET", "/plugins/portables/devplug/status"):
            (200, '{"status": "running", "refCount": {"r1": 1}}'),
    })


def _plugin(tmp_path: Path, functions: tuple[str, ...] = ("tag",)) -> Path:
    return new_plugin(tmp_path, "devplug", [], [], list(functions))


class ScriptedWatcher:
    """Stands in for Watcher: each wait() runs the next edit and reports it; then Ctrl-C."""

    edits: ClassVar[list[Callable[[], None]]] = []

    def __init__(self, folder: Path, **_kwargs: object) -> None:
        self.folder = folder

    def wait(self, idle: Callable[[], None] = lambda: None) -> Changes:
        if not self.edits:
            raise KeyboardInterrupt
        self.edits.pop(0)()
        return Changes(modified=("symbols.py",))


def _dev(fake: FakeServer, folder: Path, monkeypatch: pytest.MonkeyPatch,
         edits: list[Callable[[], None]], *extra: str) -> int:
    monkeypatch.setattr(ScriptedWatcher, "edits", list(edits))
    monkeypatch.setattr(dev, "Watcher", ScriptedWatcher)
    return main(["dev", str(folder), "--server", fake.url, "--wait", "1", *extra])


def _methods(fake: FakeServer) -> list[str]:
    return [f"{m} {p}" for m, p in fake.calls()
            if p.startswith("/plugins/portables") and m != "GET"]


def test_dev_installs_then_replaces_on_each_change(
        fake: FakeServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    """The first round POSTs, every change PUTs; each says how long it took."""
    _serve(fake, installed := [])
    folder = _plugin(tmp_path)
    symbols = folder / "symbols.py"
    edit = lambda: symbols.write_text(symbols.read_text() + "\n")  # noqa: E731
    assert _dev(fake, folder, monkeypatch, [edit, edit]) == 0
    assert installed == ["devplug"]
    assert _methods(fake) == ["POST /plugins/portables", "PUT /plugins/portables/devplug",
                              "PUT /plugins/portables/devplug"]
    captured = capsys.readouterr()
    assert "==> installed devplug in " in captured.err
    assert captured.err.count("==> reinstalled devplug in ") == 2
    assert "symbols.py changed: reinstalling devplug" in captured.err
    assert "rules using its sources and sinks run the new code now: r1" in captured.err


def test_dev_does_not_send_a_change_that_fails_validation(
        fake: FakeServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    """A broken save prints the error and sends nothing: the installed version stays."""
    _serve(fake, [])
    folder = _plugin(tmp_path)
    symbols = folder / "symbols.py"
    assert _dev(fake, folder, monkeypatch,
                [lambda: symbols.write_text("def broken(:\n")]) == 0
    assert _methods(fake) == ["POST /plugins/portables"]
    err = capsys.readouterr().err
    assert "SyntaxError" in err
    assert "not sent: the version installed before keeps running" in err


def test_dev_keeps_watching_after_the_server_refuses_a_version(
        fake: FakeServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    """A refused PUT is reported, with the fact that eKuiper dropped the old version."""
    _serve(fake, installed := [])

    def refuse(_body: bytes) -> tuple[int, str]:
        installed.clear()  # eKuiper's PUT deletes before it installs
        return 400, '{"message": "install script failed"}'

    fake.routes[("PUT", "/plugins/portables/devplug")] = refuse
    folder = _plugin(tmp_path)
    symbols = folder / "symbols.py"
    edit = lambda: symbols.write_text(symbols.read_text() + "\n")  # noqa: E731
    assert _dev(fake, folder, monkeypatch, [edit, edit]) == 0
    err = capsys.readouterr().err
    assert "install script failed" in err
    assert "eKuiper removed the previous version when it refused this one" in err
    assert _methods(fake)[-1] == "POST /plugins/portables"  # the next save installs anew


def test_dev_leaves_the_plugin_installed_on_ctrl_c(
        fake: FakeServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    """Stopping says the plugin stays, and how to remove it; nothing is deleted."""
    _serve(fake, [])
    assert _dev(fake, _plugin(tmp_path), monkeypatch, []) == 0
    assert "devplug stays installed on " in capsys.readouterr().out
    assert "DELETE /plugins/portables/devplug" not in _methods(fake)


def test_dev_removes_the_plugin_on_exit_when_asked(
        fake: FakeServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    """--remove-on-exit deletes the plugin when watching stops."""
    _serve(fake, [])
    assert _dev(fake, _plugin(tmp_path), monkeypatch, [], "--remove-on-exit") == 0
    assert _methods(fake)[-1] == "DELETE /plugins/portables/devplug"
    assert f"devplug: removed from {fake.url}" in capsys.readouterr().out


def test_dev_tells_a_1x_user_to_restart_kuiperd(
        fake: FakeServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    """eKuiper 1.x (no status endpoint) does not restart running rules' plugin: say so."""
    _serve(fake, [])
    del fake.routes[("GET", "/plugins/portables/devplug/status")]
    folder = _plugin(tmp_path)
    symbols = folder / "symbols.py"
    assert _dev(fake, folder, monkeypatch,
                [lambda: symbols.write_text(symbols.read_text() + "\n")]) == 0
    assert "eKuiper 1.x does not start the new version for rules already running on " \
        "devplug; restart kuiperd" in capsys.readouterr().err


def test_dev_stops_before_watching_when_the_server_is_unreachable(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """No server: exit 1 with the reason, instead of watching in vain."""
    assert main(["dev", str(_plugin(tmp_path)), "--server", "http://127.0.0.1:9"]) == 1
    assert "cannot reach eKuiper at http://127.0.0.1:9" in capsys.readouterr().err


def test_dev_refuses_a_zip(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """dev watches a folder; a zip is refused with what to give instead."""
    (tmp_path / "devplug.zip").write_bytes(b"PK")
    assert main(["dev", str(tmp_path / "devplug.zip")]) == 1
    assert "give the plugin folder" in capsys.readouterr().err


def test_bad_interval_is_refused(fake: FakeServer, tmp_path: Path,
                                 capsys: pytest.CaptureFixture[str]) -> None:
    """--interval 0 exits 1 naming the poll interval."""
    _serve(fake, [])
    assert main(["dev", str(_plugin(tmp_path)), "--server", fake.url, "--interval", "0"]) == 1
    assert "poll interval" in capsys.readouterr().err


# -- run --reload ----------------------------------------------------------------------

def _live(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().split()[2]
    except OSError:
        return False
    return state != "Z"


def _descendants_marker(folder: Path) -> list[int]:
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
            except OSError:
                continue
            if str(folder) in cmdline and _live(int(entry.name)):
                pids.append(int(entry.name))
    return pids


def test_run_reload_reruns_the_symbol_with_the_new_code(tmp_path: Path) -> None:
    """After a save the function runs again in a fresh process; Ctrl-C leaves nothing."""
    folder = _plugin(tmp_path)
    symbols = folder / "symbols.py"
    out = tmp_path / "out.txt"
    with open(out, "wb") as sink:
        loop = subprocess.Popen([sys.executable, "-m", "ekuiper._cli", "run", str(folder),
                                 "--function", "tag", "--args", '["ab"]', "--reload",
                                 "--interval", "0.1"],
                                stdout=sink, stderr=subprocess.STDOUT)
    try:
        wait_for(lambda: '"AB"' in out.read_text(), timeout=60, what="the first run")
        wait_for(lambda: "watching" in out.read_text(), timeout=10, what="the first exit")
        symbols.write_text(symbols.read_text().replace(".upper()", ".upper() + '!'"))
        wait_for(lambda: '"AB!"' in out.read_text(), timeout=60, what="the rerun")
        assert "symbols.py changed: running again" in out.read_text()
    finally:
        loop.send_signal(signal.SIGINT)
        code = loop.wait(30)
    assert code == 0, out.read_text()
    assert "stopped watching" in out.read_text()
    assert _descendants_marker(folder) == []


def test_stop_child_kills_a_child_that_ignores_ctrl_c(tmp_path: Path) -> None:
    """A child that ignores SIGINT is killed with its process group after the grace time."""
    script = tmp_path / "stubborn.py"
    grandchild = tmp_path / "grandchild.pid"
    script.write_text(textwrap.dedent(f"""
        import signal, subprocess, sys, time
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        p = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
        open({str(grandchild)!r}, "w").write(str(p.pid))
        time.sleep(60)
    """))
    child = subprocess.Popen([sys.executable, str(script)], start_new_session=True)
    wait_for(grandchild.exists, timeout=30, what="the grandchild")
    wait_for(grandchild.read_text, timeout=5, what="its pid")
    began = time.monotonic()
    assert dev.stop_child(child, grace=0.5) == -signal.SIGKILL
    assert time.monotonic() - began < 10
    wait_for(lambda: not _live(int(grandchild.read_text())), timeout=5,
             what="the grandchild's end")


def test_reload_child_runs_the_symbol_instead_of_watching(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """In the process --reload starts, the wrapped command runs as it is."""
    ran: list[bool] = []
    command = dev.reloading(lambda args: ran.append(args.reload) or 0)
    monkeypatch.setenv(dev.CHILD_ENV, "1")
    import argparse
    assert command(argparse.Namespace(reload=True)) == 0
    assert ran == [True]
    monkeypatch.delenv(dev.CHILD_ENV)
    assert command(argparse.Namespace(reload=False)) == 0
    assert ran == [True, False]
    assert os.environ.get(dev.CHILD_ENV) is None


def test_dev_stopped_before_anything_was_installed_says_so(
        fake: FakeServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    """A first version that never validated leaves nothing installed, and that is said."""
    _serve(fake, [])
    folder = _plugin(tmp_path)
    (folder / "symbols.py").write_text("def broken(:\n")
    assert _dev(fake, folder, monkeypatch, []) == 0
    assert _methods(fake) == []
    assert f"devplug is not installed on {fake.url}" in capsys.readouterr().out
