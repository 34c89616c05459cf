"""The REST client: answers that are not eKuiper's, uploads, quoting and timeouts."""

from __future__ import annotations

import email.parser
import email.policy
import json
import socket
from pathlib import Path

import pytest

from ekuiper._cli.rest import RestError, Server
from tests.unit.cli.conftest import FakeServer


def test_bad_server_url_is_refused() -> None:
    """A --server that is not an http(s) URL names the expected form."""
    with pytest.raises(RestError,
                       match=r"must look like http://127.0.0.1:9081, not 'localhost:9081'"):
        Server("localhost:9081")


def test_html_instead_of_plugin_list_is_a_clear_error(fake: FakeServer) -> None:
    """A proxy's HTML page where the plugin list belongs asks whether it is an eKuiper."""
    fake.routes[("GET", "/plugins/portables")] = (200, "<html>login</html>")
    with pytest.raises(RestError, match=r"expected a list of plugins, got <html>login</html>; "
                                        r"is http://127.0.0.1:\d+ an eKuiper\?"):
        Server(fake.url).plugins()


def test_plugin_entries_without_names_are_refused(fake: FakeServer) -> None:
    """A list whose entries lack a string name is not taken for a plugin list."""
    fake.routes[("GET", "/plugins/portables")] = (200, json.dumps([{"name": 3}]))
    with pytest.raises(RestError, match="expected a list of plugins"):
        Server(fake.url).plugins()


def test_status_that_is_not_an_object_is_refused(fake: FakeServer) -> None:
    """A status answer that is a list, not an object, is a RestError."""
    fake.routes[("GET", "/plugins/portables/p/status")] = (200, "[1, 2]")
    with pytest.raises(RestError, match=r"expected a status object, got \[1, 2\]"):
        Server(fake.url).status("p")


def test_status_of_a_1x_server_is_none(fake: FakeServer) -> None:
    """A plain-text 404 (eKuiper 1.x has no status endpoint) means no status."""
    assert Server(fake.url).status("p") is None


def test_names_are_quoted_as_one_path_segment(fake: FakeServer) -> None:
    """A name holding / ? or .. stays inside its path segment."""
    fake.routes[("GET", "/plugins/portables/a%2F..%3Fx/status")] = (200, "{}")
    assert Server(fake.url).status("a/..?x") == {}


def test_deeply_nested_json_answer_is_text(fake: FakeServer) -> None:
    """An answer nested too deep to decode is kept as text, not a RecursionError."""
    fake.routes[("GET", "/plugins/portables")] = (200, "[" * 100_000)
    with pytest.raises(RestError, match="expected a list of plugins"):
        Server(fake.url).plugins()


def test_authentication_refusal_names_the_setting(fake: FakeServer) -> None:
    """A 401 says the server wants a token (basic.authentication)."""
    fake.routes[("GET", "/plugins/portables")] = (401, "unauthorized")
    with pytest.raises(RestError, match=r"basic.authentication is on"):
        Server(fake.url).plugins()


def test_slow_server_gives_a_timeout_error() -> None:
    """A server that accepts but never answers ends in a RestError naming --timeout."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        port = listener.getsockname()[1]
        with pytest.raises(RestError, match=r"did not answer within 0.3 s \(raise --timeout"):
            Server(f"http://127.0.0.1:{port}", timeout=0.3).plugins()


def test_unreachable_server_says_how_to_point_at_one() -> None:
    """Nothing listening gives 'cannot reach', with --server/EKUIPER_URL."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with pytest.raises(RestError, match=r"cannot reach eKuiper .* \(set --server or EKUIPER_URL\)"):
        Server(f"http://127.0.0.1:{port}").plugins()


def test_upload_sends_the_file_as_multipart_field_uploadFile(fake: FakeServer,
                                                             tmp_path: Path) -> None:
    """The zip arrives whole, as field uploadFile, under the name asked for."""
    payload = bytes(range(256)) * 1000
    archive = tmp_path / "p.zip"
    archive.write_bytes(payload)
    fake.routes[("POST", "/config/uploads")] = (201, "/kuiper/data/uploads/p-1.zip")
    assert Server(fake.url).upload(archive, "p-1.zip") == "/kuiper/data/uploads/p-1.zip"
    [(_, _, headers, body)] = fake.requests
    message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(
        b"Content-Type: " + headers["Content-Type"].encode() + b"\r\n\r\n" + body)
    [part] = list(message.iter_parts())  # type: ignore[attr-defined]
    assert part.get_param("name", header="content-disposition") == "uploadFile"
    assert part.get_filename() == "p-1.zip"
    assert part.get_payload(decode=True) == payload
    assert int(headers["Content-Length"]) == len(body)


def test_upload_path_is_html_unescaped(fake: FakeServer, tmp_path: Path) -> None:
    """eKuiper 2.4 HTML-escapes the stored path; the client gives it back plain."""
    archive = tmp_path / "p.zip"
    archive.write_bytes(b"zip")
    fake.routes[("POST", "/config/uploads")] = (201, "/srv/a&amp;b/data/uploads/p-1.zip")
    assert Server(fake.url).upload(archive, "p-1.zip") == "/srv/a&b/data/uploads/p-1.zip"


def test_upload_answer_that_is_not_a_path_is_refused(fake: FakeServer, tmp_path: Path) -> None:
    """An upload answered with something other than the stored path is a RestError."""
    archive = tmp_path / "p.zip"
    archive.write_bytes(b"zip")
    fake.routes[("POST", "/config/uploads")] = (201, '{"ok": true}')
    with pytest.raises(RestError, match="expected the stored file's path"):
        Server(fake.url).upload(archive, "p-1.zip")


def test_server_without_upload_api_says_what_to_do(fake: FakeServer, tmp_path: Path) -> None:
    """A 404 on /config/uploads points at installing from a file:// URL on the server."""
    archive = tmp_path / "p.zip"
    archive.write_bytes(b"zip")
    with pytest.raises(RestError, match=r"no upload API; copy the zip to the server"):
        Server(fake.url).upload(archive, "p-1.zip")
