"""`ekuiper-plugin`: create, check, try, package and install eKuiper Python plugins.

    ekuiper-plugin new myplug                 a ready-to-run plugin folder
    ekuiper-plugin validate myplug            what eKuiper would refuse, and how to fix it
    ekuiper-plugin run myplug --source S      try a symbol without eKuiper
    ekuiper-plugin package myplug             the zip eKuiper's REST install takes
    ekuiper-plugin install myplug --server URL, status NAME, remove NAME, list
    ekuiper-plugin state myplug               what the plugin keeps with ctx.put_state
    ekuiper-plugin dev myplug --server URL    install, then reinstall on every change
    ekuiper-plugin metrics --listen :9400     every plugin's metrics and health on one port

Exit codes: 0 success, 1 the plugin or the server said no, 2 bad usage.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
import urllib.parse
from collections.abc import Sequence
from pathlib import Path, PurePosixPath
from typing import Any

from ekuiper import __version__
from ekuiper._cli.health import (
    HealthUnavailable,
    NotAnswering,
    aggregate_health,
    aggregate_metrics,
    plugin_health,
)
from ekuiper._cli.install import install_archive, install_url
from ekuiper._cli.package import PackageError, package_plugin
from ekuiper._cli.rest import RestError, Server, segment
from ekuiper._cli.scaffold import new_plugin
from ekuiper._cli.state import (
    locate_state_file,
    open_store,
    parse_age,
    server_rule_ids,
    show_entries,
)
from ekuiper._cli.validate import NAME_RE, Report, validate_plugin
from ekuiper._cli.wheels import WheelTarget, add_wheel_arguments, target_from_args
from ekuiper._kinds import FUNCTION, KINDS, SOURCE, Kind
from ekuiper.errors import PluginProcessError, StateError

__all__ = [
    "DEFAULT_SERVER",
    "CliError",
    "build_parser",
    "cmd_install",
    "cmd_list",
    "cmd_metrics",
    "cmd_new",
    "cmd_package",
    "cmd_remove",
    "cmd_run",
    "cmd_state",
    "cmd_status",
    "cmd_validate",
    "main",
    "progress",
]

DEFAULT_SERVER = "http://127.0.0.1:9081"
# The plugins' metrics directory (_metrics.DIR_ENV; the CLI does not import the runtime).
METRICS_DIR_ENV = "EKUIPER_PLUGIN_METRICS_DIR"


class CliError(Exception):
    """A failure to report in one line, with exit code 1."""


def progress(message: str) -> None:
    print(f"==> {message}", file=sys.stderr, flush=True)


def _json_arg(text: str, what: str) -> Any:
    try:
        return json.loads(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"{what} is not valid JSON ({exc}): {text!r}") from None


# -- commands -----------------------------------------------------------------------------

def cmd_new(args: argparse.Namespace) -> int:
    name = args.name
    if not NAME_RE.match(name):
        raise CliError(f"plugin name {name!r} must be letters, digits and underscores")
    sources, sinks, functions = args.source or [], args.sink or [], args.function or []
    if not (sources or sinks or functions):
        sources, sinks, functions = [f"{name}_source"], [f"{name}_sink"], [f"{name}_func"]
    for symbol in [*sources, *sinks, *functions]:
        if not NAME_RE.match(symbol):
            raise CliError(f"symbol name {symbol!r} must be letters, digits and underscores")
    try:
        folder = new_plugin(Path(args.dir), name, sources, sinks, functions)
    except (FileExistsError, ValueError) as exc:
        raise CliError(str(exc)) from None
    print(f"created {folder}")
    print(f"  sources: {', '.join(sources) or '-'}; sinks: {', '.join(sinks) or '-'}; "
          f"functions: {', '.join(functions) or '-'}")
    print(f"next: ekuiper-plugin validate {folder} && ekuiper-plugin run {folder} "
          f"{'--source ' + sources[0] if sources else ''}".rstrip())
    return 0


def _validated(folder: str, python: str | None, quiet: bool = False,
               include_hidden: bool = False) -> Report:
    if not quiet:
        progress(f"validating {folder}")
    report = validate_plugin(Path(folder), python, include_hidden)
    for problem in report.problems:
        print(problem, file=sys.stderr)
    return report


def cmd_validate(args: argparse.Namespace) -> int:
    report = _validated(args.dir, args.python, quiet=True)
    errors = sum(p.severity == "error" for p in report.problems)
    warnings = len(report.problems) - errors
    if errors or (args.strict and warnings):
        print(f"{report.name}: {errors} error(s), {warnings} warning(s)")
        return 1
    print(f"{report.name}: ok" + (f" ({warnings} warning(s))" if warnings else ""))
    return 0


def cmd_metadata(args: argparse.Namespace) -> int:
    from ekuiper._cli.metadata import metadata_files, write_file

    folder = Path(args.dir).resolve()
    report = validate_plugin(folder, args.python)
    if report.described is None:
        for problem in report.problems:
            if problem.severity == "error":
                print(problem, file=sys.stderr)
        raise CliError("cannot read the plugin's symbols; fix the errors above first")
    files = metadata_files(folder, report.described)
    for note in report.described.get("unseen") or []:
        if isinstance(note, str):
            print(f"{report.name}: warning: {note}")
    if not files:
        print(f"{report.name}: no symbol declares a config_type or a typed call(); "
              "nothing to generate")
        return 0
    stale = 0
    for entry in files:
        if entry.error:
            stale += 1
            print(f"{entry.rel}: cannot generate: {entry.error}")
        elif entry.up_to_date:
            print(f"{entry.rel}: up to date")
        elif args.write:
            write_file(entry)
            print(f"{entry.rel}: written")
        else:
            stale += 1
            what = ("missing" if not entry.exists else "not valid JSON" if entry.unreadable
                    else "out of date: " + ", ".join(entry.changes))
            print(f"{entry.rel}: {what}")
    if stale and not args.write:
        print(f"run `ekuiper-plugin metadata {args.dir} --write` to update them")
    return 1 if stale else 0


def cmd_run(args: argparse.Namespace) -> int:
    from ekuiper.testing import PluginHost

    # --source, --sink and --function are named after the kinds' nouns.
    chosen = [kind for kind in KINDS if getattr(args, kind.noun)]
    if len(chosen) != 1:
        raise CliError("give exactly one of --source, --sink or --function")
    progress(f"starting {args.dir}")
    try:
        # The plugin's own state location: a stateful symbol goes on from the last run.
        with PluginHost(args.dir, python=args.python, own_state=True) as host:
            try:
                return _run_symbol(host, chosen[0], args)
            finally:
                if args.show_log:
                    print(host.log, file=sys.stderr)
    except PluginProcessError as exc:
        raise CliError(str(exc)) from None


def _run_symbol(host: Any, kind: Kind, args: argparse.Namespace) -> int:
    if kind is SOURCE:
        progress(f"reading {args.count} row(s) from source {args.source}")
        for row in host.source(args.source, datasource=args.datasource, conf=args.conf,
                               count=args.count, timeout=args.timeout):
            print(json.dumps(row, ensure_ascii=False))
    elif kind is FUNCTION:
        call_args = args.args if isinstance(args.args, list) else [args.args]
        print(json.dumps(host.function(args.function, *call_args), ensure_ascii=False))
    else:
        # One message: a row, or a list of rows (split into one frame each with sendSingle).
        acks = host.sink(args.sink, [args.data], conf=args.conf,
                         send_single=args.send_single, require_ack=args.require_ack,
                         timeout=args.timeout)
        for ack in acks:
            print(json.dumps(ack))
        time.sleep(0.2)  # let the sink's own output reach the log before it is shown
        output = [line for line in host.log.splitlines() if line.strip()]
        print("\n".join(output[-20:]), file=sys.stderr)
        if any("error" in ack for ack in acks):
            return 1
    return 0


def _build_package(folder: str, output: str | None, python: str | None,
                   include_hidden: bool = False, wheels: WheelTarget | None = None) -> Path:
    report = _validated(folder, python, include_hidden=include_hidden)
    if not report.ok:
        raise CliError(f"{report.name} is not valid; fix the errors above first")
    target = Path(output) if output else Path.cwd() / f"{report.name}.zip"
    if target.stem != report.name:
        raise CliError(f"the zip must be named {report.name}.zip: eKuiper takes the plugin "
                       "name from it")
    try:
        members = package_plugin(report.folder, report.descriptor, target, include_hidden,
                                 wheels, progress)
    except PackageError as exc:
        raise CliError(str(exc)) from None
    progress(f"packaged {len(members)} files into {target}")
    for member in members:
        print(f"  {member}", file=sys.stderr)
    return target


def _wheel_target(args: argparse.Namespace) -> WheelTarget | None:
    try:
        return target_from_args(args)
    except ValueError as exc:
        raise CliError(str(exc)) from None


def cmd_package(args: argparse.Namespace) -> int:
    print(_build_package(args.dir, args.output, args.python, args.include_hidden,
                         _wheel_target(args)))
    return 0


def _server(args: argparse.Namespace) -> Server:
    return Server(args.server, timeout=args.timeout)


def cmd_install(args: argparse.Namespace) -> int:
    if args.serve is not None:
        raise CliError("--serve is gone: install now uploads the zip through eKuiper's REST "
                       "API, which works with eKuiper as it ships; drop --serve")
    server = _server(args)
    source = Path(args.plugin)
    packaging_flags = [flag for flag, given in (
        ("--bundle-wheels", args.bundle_wheels), ("--platform", args.wheel_platforms),
        ("--python-version", args.wheel_python), ("--include-hidden", args.include_hidden))
        if given]
    if packaging_flags and not source.is_dir():
        raise CliError(f"{', '.join(packaging_flags)} shape the zip made from a plugin folder; "
                       f"{args.plugin} is already packaged: give the folder instead")
    if urllib.parse.urlsplit(args.plugin).scheme in ("http", "https", "file"):
        name = PurePosixPath(urllib.parse.urlsplit(args.plugin).path).stem
        if not NAME_RE.match(name) or not args.plugin.endswith(".zip"):
            raise CliError(f"a plugin URL must end in NAME.zip, NAME letters, digits and "
                           f"underscores: {args.plugin}")
        install_url(server, name, args.plugin, args.replace, args.shell_para or [], progress)
        return _await_running(server, name, args.wait)
    with tempfile.TemporaryDirectory() as tmp:
        if source.is_dir():
            archive = _build_package(str(source), str(Path(tmp) / f"{source.resolve().name}.zip"),
                                     args.python, args.include_hidden, _wheel_target(args))
        elif source.suffix == ".zip" and source.is_file():
            archive = source.resolve()
        else:
            raise CliError(f"{source} is neither a plugin folder, a .zip file nor a URL")
        if not NAME_RE.match(archive.stem):
            raise CliError(f"{archive.name}: eKuiper takes the plugin name from the zip's "
                           "name, which must be letters, digits and underscores")
        install_archive(server, archive.stem, archive, args.replace, args.shell_para or [],
                        progress)
    return _await_running(server, archive.stem, args.wait)


def _await_running(server: Server, name: str, wait: float) -> int:
    progress(f"waiting up to {wait:.0f} s for {name} to run")
    deadline = time.monotonic() + wait
    while True:
        status = server.status(name)
        if status is None:
            print(f"{name}: installed (this eKuiper starts plugins on first use)")
            return 0
        if status.get("status") == "running":
            print(f"{name}: running")
            return 0
        if status.get("status") == "error" or time.monotonic() > deadline:
            print(f"{name}: {status.get('status')} {status.get('errMsg', '')}".rstrip())
            return 1
        time.sleep(0.5)


def cmd_status(args: argparse.Namespace) -> int:
    server = _server(args)
    info = {str(p.get("name")): p for p in server.plugins()}
    if args.name not in info:
        raise CliError(f"no plugin {args.name!r} on {server.url} (installed: "
                       f"{', '.join(sorted(info)) or 'none'})")
    plugin = info[args.name]
    status = server.status(args.name)
    state = status.get("status", "?") if status else "installed"
    print(f"{args.name} {plugin.get('version', '')}: {state}")
    for kind in KINDS:
        print(f"  {kind.plural}: {', '.join(plugin.get(kind.plural) or []) or '-'}")
    if status:
        refs = status.get("refCount") or {}
        print(f"  rules: {', '.join(f'{r} ({n})' for r, n in sorted(refs.items())) or '-'}")
        if status.get("errMsg"):
            print(f"  error: {status['errMsg']}")
    healthy = _print_plugin_health(args.name, args.metrics_dir)
    return 0 if state in ("running", "installed") and healthy is not False else 1


def _print_plugin_health(name: str, metrics_dir: str | None) -> bool | None:
    """The plugin's own view beside eKuiper's: its /health, if its socket answers."""
    if not metrics_dir:
        print(f"  plugin health: not enabled (set {METRICS_DIR_ENV} in kuiperd's "
              "environment, then give the same directory with --metrics-dir or the variable)")
        return None
    try:
        document = plugin_health(Path(metrics_dir), name)
    except NotAnswering as exc:  # its process is there but does not answer: frozen
        print(f"  plugin health: UNHEALTHY: {exc}")
        return False
    except HealthUnavailable as exc:
        print(f"  plugin health: unavailable: {exc}")
        return None
    verdict = "healthy" if document.get("healthy") else "UNHEALTHY"
    print(f"  plugin health: {verdict}, pid {document.get('pid')}, control channel "
          f"{document.get('control')}")
    for item in document.get("symbols") or []:
        where = " ".join(f"{key}={item[key]}" for key in ("rule", "op", "instance")
                         if item.get(key) not in (None, ""))
        line = f"    {item.get('kind')} {item.get('symbol')} {where}".rstrip()
        line += f": {item.get('state')}"
        if item.get("detail"):
            line += f" ({item['detail']})"
        line += f", last activity {item.get('last_activity_s_ago')} s ago"
        if item.get("last_error") and item["last_error"] != item.get("detail"):
            line += (f"; last error {item.get('last_error_s_ago')} s ago: "
                     f"{item['last_error']}")
        print(line)
    return bool(document.get("healthy"))


def cmd_remove(args: argparse.Namespace) -> int:
    server = _server(args)
    message = server.checked("DELETE", f"/plugins/portables/{segment(args.name)}")
    print(message if isinstance(message, str) and message else f"{args.name}: removed")
    return 0


def cmd_list(args: argparse.Namespace) -> int:
    server = _server(args)
    plugins = server.plugins()
    if not plugins:
        print(f"no portable plugins on {server.url}")
        return 0
    for plugin in sorted(plugins, key=lambda p: str(p.get("name"))):
        status = server.status(str(plugin.get("name")))
        state = status.get("status", "?") if status else "installed"
        symbols = "; ".join(f"{k.plural}: {', '.join(plugin.get(k.plural) or [])}"
                            for k in KINDS if plugin.get(k.plural))
        print(f"{plugin.get('name')}\t{plugin.get('version', '')}\t{state}\t{symbols}")
    return 0


def cmd_state(args: argparse.Namespace) -> int:
    path = locate_state_file(Path(args.plugin))
    if not path.is_file():
        print(f"no state kept: no file at {path}")
        return 0
    progress(f"state file {path}")
    try:
        age = parse_age(args.drop_older_than) if args.drop_older_than else None
    except ValueError as exc:
        raise CliError(f"--drop-older-than: {exc}") from None
    known: set[str] | None = None
    if args.prune:
        # Ask the server first: a server that cannot answer must not drop anything.
        try:
            known = server_rule_ids(_server(args).checked("GET", "/rules"))
        except ValueError as exc:
            raise CliError(str(exc)) from None
    store = open_store(path)
    try:
        gone = set() if known is None else {e.scope.rule for e in store.entries()} - known
        dropped = 0
        for rule in sorted({*(args.drop_rule or []), *gone}):
            count = store.drop_rule(rule)
            dropped += count
            print(f"dropped {count} value(s) of rule {rule}")
        if age is not None:
            count = store.drop_older(age)
            dropped += count
            print(f"dropped {count} value(s) not written for {args.drop_older_than}")
        if not (args.drop_rule or args.prune or age is not None):
            entries = list(store.entries(args.rule))
            show_entries(entries, print)
            if not entries:
                print("no state kept" + (f" for rule {args.rule}" if args.rule else ""))
    except StateError as exc:
        raise CliError(str(exc)) from None
    finally:
        store.close()
    return 0


def _listen_address(text: str) -> tuple[str, int]:
    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit() or not 0 < int(port) < 65536:
        raise CliError(f"--listen {text!r} must be [HOST]:PORT, e.g. :9400 or 127.0.0.1:9400")
    return host.strip("[]"), int(port)


# Seconds `ekuiper-plugin metrics` gives one client to send its request.
METRICS_CLIENT_TIMEOUT_S = 5.0


def cmd_metrics(args: argparse.Namespace) -> int:
    import http.server

    if not args.dir:
        raise CliError(f"give --dir or set {METRICS_DIR_ENV}: the directory the plugins "
                       "serve their metrics in")
    directory = Path(args.dir)
    if not directory.is_dir():
        raise CliError(f"{directory} is not a directory (is {METRICS_DIR_ENV} set in "
                       "kuiperd's environment?)")
    host, port = _listen_address(args.listen)

    class Handler(http.server.BaseHTTPRequestHandler):
        # A client that sends nothing must not hold a thread (and its socket) for ever.
        timeout = METRICS_CLIENT_TIMEOUT_S

        def do_GET(self) -> None:
            path = self.path.split("?", 1)[0]
            if path == "/metrics":
                status, body = 200, aggregate_metrics(directory).encode()
                kind = "text/plain; version=0.0.4; charset=utf-8"
            elif path == "/health":
                document = aggregate_health(directory)
                status = 200 if document["healthy"] else 503
                body, kind = (json.dumps(document, indent=1) + "\n").encode(), "application/json"
            else:
                status, body, kind = 404, b"not found: try /metrics or /health\n", "text/plain"
            self.send_response(status)
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    try:
        server = http.server.ThreadingHTTPServer((host, port), Handler)
    except OSError as exc:
        raise CliError(f"cannot listen on {args.listen}: {exc.strerror or exc}") from None
    progress(f"serving the metrics and health of every plugin in {directory} on "
             f"http://{host or '0.0.0.0'}:{server.server_port}/metrics")
    try:
        server.serve_forever()
    finally:
        server.server_close()
    return 0


# -- parser -------------------------------------------------------------------------------

def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="ekuiper-plugin", description=__doc__.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="Run `ekuiper-plugin COMMAND --help` for each command's options.")
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    from ekuiper._cli import dev  # imports this module: it must be loaded first

    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    server_default = os.environ.get("EKUIPER_URL", DEFAULT_SERVER)

    def with_server(p: argparse.ArgumentParser) -> None:
        p.add_argument("--server", default=server_default,
                       help=f"eKuiper REST URL (default: $EKUIPER_URL or {DEFAULT_SERVER})")
        p.add_argument("--timeout", type=float, default=120.0,
                       help="seconds to wait for each REST answer (default 120)")

    def with_python(p: argparse.ArgumentParser) -> None:
        p.add_argument("--python", help="Python to run the plugin with (default: this one)")

    def with_hidden(p: argparse.ArgumentParser) -> None:
        p.add_argument("--include-hidden", action="store_true",
                       help="also pack hidden files such as .env (left out by default: they "
                            "often hold secrets)")

    p = sub.add_parser("new", help="create a ready-to-run plugin folder")
    p.add_argument("name", help="plugin name (letters, digits, underscores)")
    p.add_argument("--source", action="append", metavar="S", help="add a source (repeatable)")
    p.add_argument("--sink", action="append", metavar="K", help="add a sink (repeatable)")
    p.add_argument("--function", action="append", metavar="F", help="add a function")
    p.add_argument("--dir", default=".", help="where to create it (default: here)")
    p.set_defaults(func=cmd_new)

    p = sub.add_parser("validate", help="check a plugin folder; exit 1 on errors")
    p.add_argument("dir", help="the plugin folder (holding <name>.json)")
    p.add_argument("--strict", action="store_true", help="warnings fail too")
    with_python(p)
    p.set_defaults(func=cmd_validate)

    p = sub.add_parser("metadata", help="check (or --write) the metadata JSON of typed "
                                        "symbols; exit 1 when one is out of date",
                       description="Generate sources/sinks/functions/<name>.json from each "
                                   "symbol's config_type or typed call(); hand-written "
                                   "parts of a committed file (other languages, icons, "
                                   "hints the code lacks) are kept.")
    p.add_argument("dir", help="the plugin folder")
    p.add_argument("--write", action="store_true", help="write the files that differ")
    with_python(p)
    p.set_defaults(func=cmd_metadata)

    p = sub.add_parser("run", help="try one symbol of a plugin without eKuiper")
    p.add_argument("dir", help="the plugin folder")
    p.add_argument("--source", metavar="NAME", help="print rows of this source")
    p.add_argument("--datasource", default="", help="the stream's DATASOURCE")
    p.add_argument("--count", type=int, default=5, help="rows to read (default 5)")
    p.add_argument("--function", metavar="NAME", help="call this function")
    p.add_argument("--args", type=lambda t: _json_arg(t, "--args"), default=[],
                   help='its arguments as a JSON list, e.g. \'["abc"]\'')
    p.add_argument("--sink", metavar="NAME", help="send data to this sink")
    p.add_argument("--data", type=lambda t: _json_arg(t, "--data"), default={},
                   help="a JSON row or list of rows")
    p.add_argument("--send-single", action="store_true", help="one object per row")
    p.add_argument("--require-ack", action="store_true", help="print the sink's acks")
    p.add_argument("--conf", type=lambda t: _json_arg(t, "--conf"), default=None,
                   help="the symbol's configuration as a JSON object")
    p.add_argument("--timeout", type=float, default=10.0, help="seconds to wait (default 10)")
    p.add_argument("--show-log", action="store_true", help="print the plugin's output after")
    with_python(p)
    dev.add_reload_arguments(p)
    p.set_defaults(func=dev.reloading(cmd_run))

    p = sub.add_parser("package", help="validate, then zip for eKuiper's REST install")
    p.add_argument("dir", help="the plugin folder")
    p.add_argument("-o", "--output", help="the zip to write (default: ./<name>.zip)")
    with_python(p)
    with_hidden(p)
    add_wheel_arguments(p)
    p.set_defaults(func=cmd_package)

    p = sub.add_parser("install", help="install a plugin folder or zip on an eKuiper",
                       description="Upload the plugin through eKuiper's REST API and install "
                                   "it; works with eKuiper as it ships, local or remote.")
    p.add_argument("plugin", help="plugin folder (packaged first), <name>.zip, or a URL "
                                  "eKuiper downloads itself (http(s):// or file:// on the server)")
    p.add_argument("--replace", action="store_true", help="update it if already installed")
    p.add_argument("--serve", help=argparse.SUPPRESS)  # gone; says so when given
    p.add_argument("--shell-para", action="append", metavar="ARG",
                   help="argument for install.sh (repeatable)")
    p.add_argument("--wait", type=float, default=30.0, help="seconds to wait for it to run")
    with_server(p)
    with_python(p)
    with_hidden(p)
    add_wheel_arguments(p)
    p.set_defaults(func=cmd_install)

    for command, helptext, func in (("status", "show a plugin's state", cmd_status),
                                    ("remove", "uninstall a plugin", cmd_remove)):
        p = sub.add_parser(command, help=helptext)
        p.add_argument("name", help="plugin name")
        with_server(p)
        if command == "status":
            p.add_argument("--metrics-dir", default=os.environ.get(METRICS_DIR_ENV),
                           help="the plugins' metrics directory, to show the plugin's own "
                                f"health too (default: ${METRICS_DIR_ENV})")
        p.set_defaults(func=func)

    p = sub.add_parser("list", help="list the portable plugins of an eKuiper")
    with_server(p)
    p.set_defaults(func=cmd_list)

    p = sub.add_parser(
        "state", help="list or drop the state a plugin keeps (ctx.put_state)",
        description="List or drop what a plugin keeps with ctx.put_state. eKuiper does not "
                    "tell a plugin that a rule was deleted, so its state stays until "
                    "dropped here. Run it where the plugin runs (docker exec ...).")
    p.add_argument("plugin", help="the plugin folder (as installed: plugins/portable/NAME), "
                                  "its state folder or the state file")
    p.add_argument("--rule", help="list only this rule's values")
    p.add_argument("--drop-rule", action="append", metavar="RULE",
                   help="delete every value kept for this rule (repeatable)")
    p.add_argument("--drop-older-than", metavar="AGE",
                   help="delete values not written for AGE (90s, 15m, 12h, 7d)")
    p.add_argument("--prune", action="store_true",
                   help="delete the values of every rule the server (--server) does not have")
    with_server(p)
    p.set_defaults(func=cmd_state)
    dev.add_dev_command(sub, with_server, with_python, with_hidden)

    p = sub.add_parser("metrics", help="serve every plugin's metrics and health on one port",
                       description="Scrape each plugin's socket in the metrics directory "
                                   "and serve them together: /metrics (labelled by plugin) "
                                   "and /health (503 while any plugin is unhealthy).")
    p.add_argument("--dir", default=os.environ.get(METRICS_DIR_ENV),
                   help=f"the plugins' metrics directory (default: ${METRICS_DIR_ENV})")
    p.add_argument("--listen", default="127.0.0.1:9400",
                   help="[HOST]:PORT to serve on (default 127.0.0.1:9400; :9400 for all)")
    p.set_defaults(func=cmd_metrics)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    args.argv = list(sys.argv[1:] if argv is None else argv)  # `run --reload` reruns it
    try:
        return int(args.func(args))
    except (CliError, RestError) as exc:
        print(f"ekuiper-plugin {args.command}: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
