"""Serves a plugin's metrics and health: a unix socket and a node_exporter textfile.

With ``EKUIPER_PLUGIN_METRICS_DIR=DIR`` in kuiperd's environment (its plugins inherit
it), each plugin process serves HTTP on ``DIR/<plugin>.sock`` (mode 0660):
``GET /metrics`` (Prometheus text), ``GET /health`` (JSON; 200 healthy, 503 not) and
``GET /ready`` (200 while the control channel is connected), and rewrites
``DIR/<plugin>.prom`` atomically every interval for node_exporter's textfile collector.
A socket per plugin name: several plugins in one container never collide on a port.

Lifecycle: ``start`` (main thread, before the control loop) binds the socket and starts
the daemon thread ``ekuiper-metrics``; it raises MetricsError (nothing left behind) when
the directory or socket cannot be used. That thread alone accepts requests (one at a
time, each given REQUEST_TIMEOUT_S in all, however slowly its client sends), samples each
symbol's activity every TICK_S and writes the textfile: no symbol thread ever renders or
waits for a scrape; a request or tick that fails is logged and the thread goes on. On
its way out the thread closes the listener and removes the socket, if it is still the
one this process bound, and the textfile. ``stop`` (main thread, at shutdown) ends the
thread (bounded) and does the same, in case the thread is still busy. A SIGKILLed
process (eKuiper 2.x stops plugins that way) leaves both behind: the next start of the
plugin replaces a stale socket (after waiting up to BIND_WAIT_S for the old process to
let go of it), and ``ekuiper-plugin status`` says a socket nobody listens on is stale.
"""

from __future__ import annotations

import logging
import os
import selectors
import socket
import stat
import threading
import time
from pathlib import Path
from typing import Any

from ekuiper import _metrics
from ekuiper._metrics import Health, MetricsSettings, SymbolFacts, SymbolStats
from ekuiper._runtime import instrument
from ekuiper._runtime.function import KEEPALIVE_MS
from ekuiper._runtime.instrument import function_rules, settle, sync_sink
from ekuiper._runtime.plugin import PluginRuntime
from ekuiper._transport.socket import BIND_WAIT_S
from ekuiper.errors import MetricsError

__all__ = ["REQUEST_TIMEOUT_S", "TICK_S", "MetricsExporter", "socket_path", "start_exporter",
           "textfile_path"]

TICK_S = 1.0
REQUEST_TIMEOUT_S = 2.0
# The request line and headers; a body is never read.
_MAX_REQUEST = 8192
# sockaddr_un.sun_path holds 108 bytes, the terminating NUL included.
_MAX_SOCKET_PATH = 107


def socket_path(directory: str, plugin: str) -> Path:
    return Path(directory) / f"{plugin}.sock"


def textfile_path(directory: str, plugin: str) -> Path:
    return Path(directory) / f"{plugin}.prom"


class MetricsExporter:
    """See the module docstring for what it serves and its lifecycle."""

    def __init__(self, runtime: PluginRuntime, settings: MetricsSettings,
                 logger: logging.Logger) -> None:
        self.runtime = runtime
        self.settings = settings
        self.logger = logger
        self.plugin = runtime.config.name
        self.socket_path = socket_path(settings.directory, self.plugin)
        self.textfile = textfile_path(settings.directory, self.plugin)
        self._listener: socket.socket | None = None
        self._bound: tuple[int, int] | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._wrote_textfile = False

    # -- lifecycle ----------------------------------------------------------------------

    def start(self) -> None:
        directory = Path(self.settings.directory)
        try:
            directory.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise MetricsError(f"cannot create {_metrics.DIR_ENV}={directory}: "
                               f"{exc.strerror or exc}; create it writable for the user "
                               "kuiperd runs as") from None
        if not directory.is_dir():
            raise MetricsError(f"{_metrics.DIR_ENV}={directory} is not a directory")
        self._listener = self._bind()
        self._write_textfile()  # there from the start, for node_exporter and tests alike
        self._thread = threading.Thread(target=self._serve, name="ekuiper-metrics",
                                        daemon=True)
        self._thread.start()
        self.logger.info("metrics and health on %s, textfile %s", self.socket_path,
                         self.textfile)

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(REQUEST_TIMEOUT_S + TICK_S)
        self._clean_up()

    def _clean_up(self) -> None:
        """Close the listener, remove the socket (if still ours) and the textfile; twice is fine."""
        listener, self._listener = self._listener, None
        if listener is not None:
            listener.close()
            self._unlink_own_socket()
        if self._wrote_textfile:
            self.textfile.unlink(missing_ok=True)

    def _bind(self) -> socket.socket:
        path = self.socket_path
        if len(os.fsencode(str(path))) > _MAX_SOCKET_PATH:
            raise MetricsError(f"{path} is longer than the {_MAX_SOCKET_PATH} bytes a unix "
                               f"socket path may have; choose a shorter {_metrics.DIR_ENV}")
        try:
            info = os.lstat(path)
        except FileNotFoundError:
            pass
        else:
            if not stat.S_ISSOCK(info.st_mode):
                raise MetricsError(f"{path} exists and is not a socket; remove it or choose "
                                   f"another {_metrics.DIR_ENV}")
            self._replace_stale(path)
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        old_umask = os.umask(0o117)
        try:
            listener.bind(str(path))  # 0660 by the umask; chmod would follow a symlink
            listener.listen(8)
        except OSError as exc:
            listener.close()
            raise MetricsError(f"cannot serve metrics on {path}: {exc.strerror or exc}") from None
        finally:
            os.umask(old_umask)
        info = os.lstat(path)
        self._bound = (info.st_dev, info.st_ino)
        return listener

    def _replace_stale(self, path: Path) -> None:
        # Probed until BIND_WAIT_S: eKuiper replaces a plugin by SIGKILLing the old
        # process without waiting for it, so its socket may still answer for a moment.
        deadline = time.monotonic() + BIND_WAIT_S
        while True:
            probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            probe.settimeout(1.0)
            try:
                probe.connect(str(path))
            except (ConnectionRefusedError, FileNotFoundError):
                self.logger.info("replacing %s, left by a process that is gone", path)
                path.unlink(missing_ok=True)
                return
            except (BlockingIOError, TimeoutError):
                pass  # its backlog is full: someone still listens (and does not accept)
            except OSError as exc:
                raise MetricsError(f"cannot check {path}: {exc.strerror or exc}") from None
            finally:
                probe.close()
            if time.monotonic() >= deadline:
                break
            time.sleep(0.05)
        raise MetricsError(f"{path} is served by a running process (another eKuiper "
                           f"running this plugin with the same {_metrics.DIR_ENV}?); give "
                           "each eKuiper its own directory")

    def _unlink_own_socket(self) -> None:
        try:
            info = os.lstat(self.socket_path)
        except FileNotFoundError:
            return
        if (info.st_dev, info.st_ino) == self._bound:
            self.socket_path.unlink(missing_ok=True)

    # -- the thread ---------------------------------------------------------------------

    def _serve(self) -> None:
        assert self._listener is not None
        listener = self._listener
        selector = selectors.DefaultSelector()
        selector.register(listener, selectors.EVENT_READ)
        next_tick = 0.0
        next_write = time.monotonic() + self.settings.interval_s
        last_failure = ""
        try:
            while not self._stop.is_set():
                now = time.monotonic()
                try:
                    if now >= next_tick:
                        next_tick = now + TICK_S
                        self.sample()
                    if now >= next_write:
                        next_write = now + self.settings.interval_s
                        self._write_textfile()
                    if selector.select(timeout=max(0.0, min(next_tick, next_write) - now)):
                        try:
                            conn, _ = listener.accept()
                        except OSError:
                            continue
                        with conn:
                            self._answer(conn)
                except Exception as exc:  # one bad request or tick never ends metrics
                    if self._stop.is_set():
                        break
                    if repr(exc) != last_failure:  # a failure every tick is logged once
                        last_failure = repr(exc)
                        self.logger.exception("metrics: a request or tick failed; going on")
        finally:
            selector.close()
            self._clean_up()

    def _answer(self, conn: socket.socket) -> None:
        # One deadline for the whole request: a client sending a byte a second must not
        # hold the only thread (settimeout alone bounds each recv, not their sum).
        deadline = time.monotonic() + REQUEST_TIMEOUT_S
        try:
            request = b""
            while b"\r\n\r\n" not in request and b"\n\n" not in request:
                left = deadline - time.monotonic()
                if left <= 0:
                    return  # too slow: nothing to tell it
                conn.settimeout(left)
                chunk = conn.recv(1024)
                if not chunk:
                    break
                request += chunk
                if len(request) > _MAX_REQUEST:
                    conn.settimeout(max(0.01, deadline - time.monotonic()))
                    conn.sendall(_response(431, b"request too large\n"))
                    return
            reply = self.respond(request.split(b"\n", 1)[0])
            conn.settimeout(max(0.01, deadline - time.monotonic()))
            conn.sendall(reply)
        except OSError:
            return  # the client went away or was too slow: nothing to tell it

    def respond(self, request_line: bytes) -> bytes:
        """The whole HTTP response to one request line (``GET /health HTTP/1.1``)."""
        parts = request_line.decode("latin-1").strip().split()
        if len(parts) != 3 or not parts[2].startswith("HTTP/"):
            return _response(400, b"bad request\n")
        method, target = parts[0], parts[1].split("?", 1)[0]
        if method not in ("GET", "HEAD"):
            return _response(405, b"only GET\n")
        if target == "/metrics":
            body = self.render_metrics().encode()
            reply = _response(200, body, "text/plain; version=0.0.4; charset=utf-8")
        elif target == "/health":
            document = self.health()
            reply = _response(200 if document["healthy"] else 503,
                              _metrics.encode_health(document), "application/json")
        elif target == "/ready":
            ready = self.runtime.connected
            reply = _response(200 if ready else 503, b"ready\n" if ready else
                              b"control channel to eKuiper not connected\n")
        else:
            reply = _response(404, b"not found: try /metrics, /health or /ready\n")
        if method == "HEAD":
            reply = reply.split(b"\r\n\r\n", 1)[0] + b"\r\n\r\n"
        return reply

    # -- what it serves -----------------------------------------------------------------

    def entries(self, now: float | None = None) -> list[tuple[SymbolStats, Health]]:
        """Every running symbol's counters with its health verdict (``now``: time.time())."""
        now_ns = time.perf_counter_ns()
        now = time.time() if now is None else now
        # Sampled first: a collect() that began after a long idle spell is not stuck.
        self.sample(now)
        out: list[tuple[SymbolStats, Health]] = []
        for runtime in self.runtime.running():
            stats = runtime.stats
            if stats is None:
                continue
            thread = runtime.thread
            facts = SymbolFacts(
                kind=runtime.control.noun,
                thread_alive=thread is not None and thread.is_alive(),
                stopping=runtime.stopping,
                open_raised=getattr(runtime, "failure", None) is not None,
                hears_within_s=KEEPALIVE_MS / 1000 if runtime.control.noun == "function"
                else 0.0)
            if facts.kind != "function":
                out.append((stats, _metrics.evaluate(stats, facts, now_ns, now,
                                                     self.settings)))
                continue
            # A call whose reply is out is counted just after: wait for that first.
            settle(function_rules(runtime)[""])
            # A snapshot: the function's thread adds rules, the control thread drops them.
            rules = dict(function_rules(runtime))
            base = rules[""]
            health = _metrics.evaluate(base, facts, now_ns, now, self.settings)
            if health.state == "starting" and any(s.activity() for s in rules.values()):
                health = Health("running", "")
            # rule="" holds requests naming no rule (validate); shown once it has any, or
            # while no rule has called yet, so every started function is listed.
            shown = [s for key, s in rules.items() if key or len(rules) == 1 or s.calls]
            out.extend((s, health) for s in shown)
        return out

    def sample(self, now: float | None = None) -> None:
        """Note each symbol's activity; every rule of a function, its rule="" base too.

        The base is sampled even while not shown: a function's health is judged on it
        (its ``heard`` moves with every request and keepalive).
        """
        now = time.time() if now is None else now
        for runtime in self.runtime.running():
            if runtime.stats is None:
                continue
            if runtime.control.noun == "function":
                for stats in list(function_rules(runtime).values()):
                    stats.sample(now)
                continue
            if runtime.control.noun == "sink":
                sync_sink(runtime)  # its rows and in_call, which its thread does not write
            runtime.stats.sample(now)

    def render_metrics(self) -> str:
        return _metrics.render_prometheus(self.plugin, self.entries(), self.runtime.connected)

    def health(self) -> dict[str, Any]:
        return _metrics.health_document(self.plugin, os.getpid(), self.entries(),
                                        self.runtime.connected, time.time())

    def _write_textfile(self) -> None:
        tmp = self.textfile.with_name(f".{self.textfile.name}.{os.getpid()}.tmp")
        try:
            tmp.write_text(self.render_metrics(), encoding="utf-8")
            if self._stop.is_set():  # stop may have removed the textfile meanwhile
                tmp.unlink(missing_ok=True)
                return
            os.replace(tmp, self.textfile)
            self._wrote_textfile = True
        except OSError as exc:
            tmp.unlink(missing_ok=True)
            self.logger.warning("cannot write %s: %s", self.textfile, exc.strerror or exc)


_REASONS = {200: "OK", 400: "Bad Request", 404: "Not Found", 405: "Method Not Allowed",
            431: "Request Header Fields Too Large", 503: "Service Unavailable"}


def _response(status: int, body: bytes, content_type: str = "text/plain") -> bytes:
    head = (f"HTTP/1.1 {status} {_REASONS[status]}\r\nContent-Type: {content_type}\r\n"
            f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n")
    return head.encode("latin-1") + body


def start_exporter(runtime: PluginRuntime, logger: logging.Logger) -> MetricsExporter | None:
    """Turn metrics on for ``runtime`` when the environment asks; None when off or broken.

    A bad setting never stops the plugin: it is logged, naming the variable, and the
    plugin serves its rules without metrics.
    """
    try:
        settings = _metrics.settings_from_env()
    except ValueError as exc:
        logger.error("metrics off: %s", exc)
        return None
    if settings is None:
        return None
    for problem in settings.problems:
        logger.error("%s", problem)
    exporter = MetricsExporter(runtime, settings, logger)
    try:
        exporter.start()
    except MetricsError as exc:
        logger.error("metrics off: %s", exc)
        return None
    instrument.latency_every = settings.latency_every
    runtime.metrics_on = True
    return exporter
