"""The edit-and-see loop: ``ekuiper-plugin run --reload`` and ``ekuiper-plugin dev``.

``run ... --reload`` reruns the same ``run`` command in a fresh Python process each time a
file of the plugin changes (a fresh process, so changed modules are imported anew).

``dev PLUGIN --server URL`` validates, packages and installs the plugin, then on each
change packages it again and replaces it (PUT). A change that does not validate or
package is reported and not sent: the version installed keeps running.

What eKuiper does on that PUT (read in its portable plugin manager at v2.4.2 and
v1.14.7, and seen on a real kuiperd):

- 2.x deletes the plugin, SIGKILLing its process, installs the new zip and starts the
  new process at once; the start commands it remembers for running rules are replayed
  into it. So running rules' sources and sinks carry on in the new code without a rule
  restart, within a second or two of the save. Functions: eKuiper keeps one function
  object (and channel) per symbol for its whole life and remembers their start
  commands under one empty key, so it replays the start of only the function started
  last; this SDK then serves the plugin's other functions whose channel eKuiper has open
  (``PluginRuntime._serve_open_functions``), so every function's rules carry on too.
- 1.14 kills the process too, but starts the new one only if the old one has been
  reaped by then, which it has not: running rules stop getting rows and function
  answers, and restarting them fails or stops them. Restart kuiperd to run the new
  code; `dev` says so (it knows 1.x by its missing plugin status endpoint).

Threads: everything runs on the command's main thread; SIGTERM is turned into the same
KeyboardInterrupt as Ctrl-C, so both end the loop the same orderly way.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from types import FrameType
from typing import Any

from ekuiper._cli.commands import CliError, _await_running, progress
from ekuiper._cli.install import install_archive
from ekuiper._cli.package import PackageError, package_plugin
from ekuiper._cli.rest import RestError, Server, segment
from ekuiper._cli.validate import NAME_RE, validate_plugin
from ekuiper._cli.watch import Changes, Watcher

__all__ = ["CHILD_ENV", "add_dev_command", "add_reload_arguments", "cmd_dev", "reloading",
           "run_reloading"]

# Set in the process `run --reload` starts, so that one runs the symbol instead of
# watching again.
CHILD_ENV = "EKUIPER_PLUGIN_RELOAD_CHILD"
# How long a stopped `run` gets to close its plugin before its process group is killed.
STOP_GRACE_S = 5.0

Command = Callable[[argparse.Namespace], int]


@contextlib.contextmanager
def _sigterm_as_interrupt() -> Iterator[None]:
    """SIGTERM raises KeyboardInterrupt on the main thread while the block runs."""
    def interrupt(_signum: int, _frame: FrameType | None) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _watcher(folder: Path, args: argparse.Namespace, include_hidden: bool = False) -> Watcher:
    try:
        return Watcher(folder, include_hidden=include_hidden, interval=args.interval,
                       quiet=args.settle,
                       on_unreadable=lambda exc: progress(f"cannot read {folder} ({exc}); "
                                                          "waiting for it to come back"))
    except ValueError as exc:
        raise CliError(str(exc)) from None


def _plugin_folder(path: str) -> Path:
    folder = Path(path)
    if not folder.is_dir():
        raise CliError(f"{path} is not a folder: give the plugin folder (the one holding "
                       "<name>.json) so its files can be watched")
    return folder


# -- run --reload -------------------------------------------------------------------------

def reloading(run: Command) -> Command:
    """``run`` as it is, or with ``--reload`` the watching loop that reruns it."""
    def command(args: argparse.Namespace) -> int:
        if not getattr(args, "reload", False) or os.environ.get(CHILD_ENV):
            return run(args)
        return run_reloading(args)
    return command


def _spawn(argv: Sequence[str]) -> subprocess.Popen[bytes]:
    # A session of its own: the terminal's Ctrl-C reaches only this loop, which then
    # stops the child in order, and the whole group (the plugin too) can be killed.
    return subprocess.Popen([sys.executable, "-m", "ekuiper._cli", *argv],
                            env={**os.environ, CHILD_ENV: "1"}, start_new_session=True)


def _kill_group(pgid: int) -> None:
    try:
        os.killpg(pgid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def stop_child(child: subprocess.Popen[bytes], grace: float = STOP_GRACE_S) -> int:
    """Stop a ``run`` started by :func:`_spawn`; its exit code. Leaves no process behind.

    SIGINT first (the child closes its plugin as on Ctrl-C), then after ``grace``
    seconds SIGKILL for the whole process group; what is left of the group is killed
    either way (a plugin process orphaned by a child that died badly).
    """
    if child.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            child.send_signal(signal.SIGINT)
        try:
            child.wait(grace)
        except subprocess.TimeoutExpired:
            _kill_group(child.pid)
            child.wait()
    _kill_group(child.pid)
    return child.returncode


def run_reloading(args: argparse.Namespace) -> int:
    """Run ``args.argv`` (this same command) anew whenever the plugin's files change."""
    folder = _plugin_folder(args.dir)
    watcher = _watcher(folder, args)
    argv: list[str] = list(args.argv)
    child: subprocess.Popen[bytes] | None = None
    with _sigterm_as_interrupt():
        try:
            child = _spawn(argv)
            while True:
                if child is not None and child.poll() is not None:
                    progress(f"exit {child.returncode}; watching {folder} for changes "
                             "(Ctrl-C to stop)")
                    stop_child(child)
                    child = None
                found = watcher.poll()
                if found:
                    progress(f"{found.describe()}: running again")
                    if child is not None:
                        stop_child(child)
                    child = _spawn(argv)
                time.sleep(watcher.interval)
        except KeyboardInterrupt:
            if child is not None:
                stop_child(child)
            progress("stopped watching")
            return 0


def add_reload_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--reload", action="store_true",
                   help="run again, in a fresh process, each time a file of the plugin "
                        "changes (Ctrl-C to stop)")
    _add_watch_arguments(p)


def _add_watch_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--interval", type=float, default=0.3, metavar="S",
                   help="seconds between looks at the plugin's files (default 0.3)")
    p.add_argument("--settle", type=float, default=0.25, metavar="S",
                   help="seconds the files must stay unchanged before a change counts, so "
                        "an editor's burst of writes counts once (default 0.25)")


# -- dev ----------------------------------------------------------------------------------

def _installed(server: Server, name: str) -> bool | None:
    """Is plugin ``name`` installed on the server now? None: the server cannot tell."""
    try:
        return name in {p["name"] for p in server.plugins()}
    except RestError:
        return None


class _Round:
    """One install or reinstall of the plugin under development."""

    def __init__(self, server: Server, folder: Path, args: argparse.Namespace) -> None:
        self.server, self.folder, self.args = server, folder, args
        self.name = folder.resolve().name

    def package(self, target: Path) -> bool:
        """Validate and zip into ``target``; False (problems printed) if it cannot be."""
        report = validate_plugin(self.folder, self.args.python, self.args.include_hidden)
        for problem in report.problems:
            print(problem, file=sys.stderr)
        if not report.ok:
            progress(f"{self.name} is not valid; fix the errors above and save again")
            return False
        try:
            members = package_plugin(report.folder, report.descriptor, target,
                                     self.args.include_hidden, None, progress)
        except PackageError as exc:
            print(f"ERROR {exc}", file=sys.stderr)
            return False
        progress(f"packaged {len(members)} files")
        return True

    def run(self, first: bool) -> bool:
        """Package and (re)install; True when the server runs the new version."""
        began = time.monotonic()
        with tempfile.TemporaryDirectory(prefix="ekuiper-dev-") as tmp:
            archive = Path(tmp) / f"{self.name}.zip"
            if not self.package(archive):
                if not first:
                    progress("not sent: the version installed before keeps running")
                return False
            try:
                install_archive(self.server, self.name, archive, True,
                                self.args.shell_para or [], progress)
            except RestError as exc:
                print(f"ERROR {exc}", file=sys.stderr)
                if not first and _installed(self.server, self.name) is False:
                    progress(f"eKuiper removed the previous version when it refused this one "
                             f"(its PUT uninstalls first): fix and save again to install "
                             f"{self.name}")
                return False
        if _await_running(self.server, self.name, self.args.wait) != 0:
            return False
        took = time.monotonic() - began
        progress(f"{'installed' if first else 'reinstalled'} {self.name} in {took:.1f} s")
        if not first:
            self._tell_rules()
        return True

    def _tell_rules(self) -> None:
        try:
            status = self.server.status(self.name)
        except RestError:
            return
        if status is None:
            progress("note: eKuiper 1.x does not start the new version for rules already "
                     f"running on {self.name}; restart kuiperd to run the new code")
            return
        rules = sorted(status.get("refCount") or {})
        if rules:
            progress(f"rules using its sources and sinks run the new code now: "
                     f"{', '.join(rules)}")


def cmd_dev(args: argparse.Namespace) -> int:
    folder = _plugin_folder(args.dir)
    name = folder.resolve().name
    if not NAME_RE.match(name):
        raise CliError(f"plugin name {name!r} (the folder's name) must be letters, digits "
                       "and underscores")
    server = Server(args.server, timeout=args.timeout)
    server.plugins()  # an unreachable or wrong server ends here, before any watching
    watcher = _watcher(folder, args, args.include_hidden)
    rounds = _Round(server, folder, args)
    with _sigterm_as_interrupt():
        try:
            rounds.run(first=True)
            while True:
                progress(f"watching {folder} (Ctrl-C to stop)")
                found: Changes = watcher.wait()
                progress(f"{found.describe()}: reinstalling {name}")
                try:
                    rounds.run(first=False)
                except RestError as exc:  # the server went away for a while
                    print(f"ERROR {exc}", file=sys.stderr)
        except KeyboardInterrupt:
            progress("stopped watching")
            return _leave(server, name, args.remove_on_exit)


def _leave(server: Server, name: str, remove: bool) -> int:
    if _installed(server, name) is False:
        print(f"{name} is not installed on {server.url}")
        return 0
    if not remove:
        print(f"{name} stays installed on {server.url} (remove it with: ekuiper-plugin "
              f"remove {name} --server {server.url})")
        return 0
    try:
        server.checked("DELETE", f"/plugins/portables/{segment(name)}")
    except RestError as exc:
        print(f"ERROR could not remove {name}: {exc}", file=sys.stderr)
        return 1
    print(f"{name}: removed from {server.url}")
    return 0


def add_dev_command(sub: Any, with_server: Callable[[argparse.ArgumentParser], None],
                    with_python: Callable[[argparse.ArgumentParser], None],
                    with_hidden: Callable[[argparse.ArgumentParser], None]) -> None:
    """Register ``dev`` on the subparsers ``sub`` (build_parser's option helpers given)."""
    p = sub.add_parser("dev", help="install a plugin and reinstall it on every change",
                       description="Validate, package and install the plugin folder on an "
                                   "eKuiper, then watch it: each change is packaged and "
                                   "replaces the installed plugin (running rules' sources "
                                   "and sinks pick it up). Ctrl-C stops watching.")
    p.add_argument("dir", help="the plugin folder")
    p.add_argument("--remove-on-exit", action="store_true",
                   help="uninstall the plugin when watching stops (default: leave it)")
    p.add_argument("--shell-para", action="append", metavar="ARG",
                   help="argument for install.sh (repeatable)")
    p.add_argument("--wait", type=float, default=30.0,
                   help="seconds to wait for each install to run (default 30)")
    _add_watch_arguments(p)
    with_server(p)
    with_python(p)
    with_hidden(p)
    p.set_defaults(func=cmd_dev)
