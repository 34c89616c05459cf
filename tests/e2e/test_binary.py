"""A binary payload (a PNG image in a stream with FORMAT="binary") in a real kuiperd: what
a function and a sink receive, and ekuiper.to_bytes getting the image back from it.

The sources that carry bytes differ by eKuiper major: 2.x's ``httppush`` decodes with the
stream's format (its 1.x version takes JSON only), 1.x's ``httppull`` does (2.x's decodes
JSON only). The payload is the row's ``self`` field either way.
"""

from __future__ import annotations

import base64
import hashlib
import http.server
import json
import struct
import threading
import urllib.error
import urllib.request
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from ekuiper import to_bytes
from tests.e2e.conftest import V1_VERSION, BootKuiperd
from tests.e2e.kuiper import DEFAULT_VERSION, Kuiperd
from tests.e2e.scenarios import uid
from tests.protocol.events import wait_for

BINPLUG_PY = '''\
"""binplug: a function and a sink that report what eKuiper hands them."""
import hashlib
import json
import os

from ekuiper import Function, PluginConfig, Sink, plugin, to_bytes


class Describe(Function):
    def exec(self, args, ctx):
        payload = to_bytes(args[0])
        return {"type": type(args[0]).__name__, "sha256": hashlib.sha256(payload).hexdigest()}


class Keep(Sink):
    def collect(self, ctx, data):
        path = os.path.join(os.environ["BINPLUG_OUT"], ctx.get_rule_id() + ".jsonl")
        with open(path, "a") as fh:
            fh.write(json.dumps({"type": type(data).__name__, "hex": bytes(data).hex()}) + "\\n")


plugin.start(PluginConfig("binplug", {}, {"keep": Keep}, {"describe": Describe}))
'''


def png(width: int = 2, height: int = 2) -> bytes:
    """A small valid RGB PNG: bytes that are not UTF-8 (the signature alone is not)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return (struct.pack(">I", len(data)) + kind + data
                + struct.pack(">I", zlib.crc32(kind + data)))
    rows = b"".join(b"\x00" + bytes([255, 0, 128] * width) for _ in range(height))
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2,
                                                              0, 0, 0))
            + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b""))


IMAGE = png()
IMAGE_SHA = hashlib.sha256(IMAGE).hexdigest()


@pytest.fixture
def binplug(tmp_path: Path) -> Path:
    """The binplug plugin folder."""
    folder = tmp_path / "binplug"
    folder.mkdir()
    (folder / "binplug.py").write_text(BINPLUG_PY)
    (folder / "binplug.json").write_text(json.dumps(
        {"version": "v1.0.0", "language": "python", "executable": "binplug.py",
         "sources": [], "sinks": ["keep"], "functions": ["describe"]}))
    return folder


@pytest.fixture
def image_server() -> Iterator[str]:
    """An HTTP server on loopback serving IMAGE at /img (for 1.x's httppull)."""
    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "image/png")
            self.send_header("Content-Length", str(len(IMAGE)))
            self.end_headers()
            self.wfile.write(IMAGE)

        def log_message(self, *args: Any) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()
    thread.join(5)


def _binary_stream(kuiperd: Kuiperd, url: str) -> str:
    """A FORMAT="binary" stream fed IMAGE: httppush (2.x) or httppull from ``url`` (1.x)."""
    stream = uid("img_")
    if kuiperd.major >= 2:
        props = f'TYPE="httppush", DATASOURCE="/{stream}"'
    else:
        resp = kuiperd.put(f"/metadata/sources/httppull/confKeys/{stream}",
                           {"url": url, "method": "get", "interval": 500})
        assert resp.status == 200, resp
        props = f'TYPE="httppull", DATASOURCE="/img", CONF_KEY="{stream}"'
    resp = kuiperd.post("/streams",
                        {"sql": f'CREATE STREAM {stream} () WITH ({props}, FORMAT="binary")'})
    assert resp.status in (200, 201), resp
    return stream


def _push(kuiperd: Kuiperd, stream: str) -> bool:
    """POST IMAGE to the httppush endpoint; False while eKuiper has not opened it."""
    port = kuiperd.boot_env["KUIPER__SOURCE__HTTPSERVERPORT"]
    request = urllib.request.Request(f"http://127.0.0.1:{port}/{stream}", data=IMAGE,
                                     method="POST",
                                     headers={"Content-Type": "application/octet-stream"})
    try:
        with urllib.request.urlopen(request, timeout=5) as resp:
            return bool(resp.status == 200)
    except (urllib.error.URLError, ConnectionError):
        return False


def _received(kuiperd: Kuiperd, out: Path, rules: list[str], stream: str) -> list[Any]:
    """The first thing the keep sink received in each rule, as {"type", "data"}."""
    def first(rule: str) -> Any:
        path = out / f"{rule}.jsonl"
        if not path.exists() or not path.read_text():
            return None
        return json.loads(path.read_text().splitlines()[0])

    def all_in() -> list[Any] | None:
        if kuiperd.major >= 2:
            _push(kuiperd, stream)
        got = [first(rule) for rule in rules]
        return got if all(got) else None

    received: list[Any] = wait_for(all_in, timeout=60, what="the keep sink's first messages")
    return [{"type": r["type"], "data": bytes.fromhex(r["hex"])} for r in received]


@pytest.mark.parametrize("version", [DEFAULT_VERSION, V1_VERSION])
def test_binary_payload_reaches_function_and_sink(boot_kuiperd: BootKuiperd, binplug: Path,
                                                  image_server: str, tmp_path: Path,
                                                  version: str) -> None:
    """A function gets the image as base64 text; a sink gets JSON {"self": base64} (and,
    on 2.x with format binary, the raw image); to_bytes gives back the image's bytes."""
    out = tmp_path / "out"
    out.mkdir()
    kuiperd = boot_kuiperd(version, drop_in=(binplug,),
                           env={"BINPLUG_OUT": str(out),
                                "KUIPER__SOURCE__HTTPSERVERIP": "127.0.0.1"})
    stream = _binary_stream(kuiperd, image_server)
    single = {"keep": {"sendSingle": True}}
    cases = {uid("fn_"): (f"SELECT describe(self) AS d FROM {stream}", single),
             uid("json_"): (f"SELECT * FROM {stream}", single)}
    if kuiperd.major >= 2:
        cases[uid("raw_")] = (f"SELECT * FROM {stream}",
                              {"keep": {"sendSingle": True, "format": "binary"}})
    for rule, (sql, action) in cases.items():
        resp = kuiperd.create_rule(rule, sql, [action])
        assert resp.status in (200, 201), resp
    received = _received(kuiperd, out, list(cases), stream)

    function_row, json_row, *raw = received
    assert function_row["type"] == "bytes"
    assert json.loads(function_row["data"]) == {"d": {"type": "str", "sha256": IMAGE_SHA}}
    assert json.loads(json_row["data"]) == {"self": base64.b64encode(IMAGE).decode()}
    assert to_bytes(json.loads(json_row["data"])["self"]) == IMAGE
    if kuiperd.major >= 2:
        assert raw[0]["data"] == IMAGE
        assert to_bytes(raw[0]["data"]) == IMAGE
