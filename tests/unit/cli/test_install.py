"""`ekuiper-plugin install`: upload, install from the stored path, remove the upload."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import pytest

from ekuiper._cli import main
from ekuiper._cli.install import server_file_url
from ekuiper._cli.rest import RestError
from tests.unit.cli.conftest import FakeServer

UPLOADS = "/kuiper/data/uploads/"


def _zip(folder: Path, name: str = "myplug") -> Path:
    archive = folder / f"{name}.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr(f"{name}.json", "{}")
    return archive


def _upload(body: bytes) -> tuple[int, str]:
    return 201, UPLOADS + body.split(b'filename="', 1)[1].split(b'"', 1)[0].decode()


def _serve(fake: FakeServer, installed: tuple[str, ...] = (),
           install_reply: tuple[int, str] = (201, "installed")) -> None:
    fake.routes.update({
        ("GET", "/plugins/portables"): (200, json.dumps([{"name": n} for n in installed])),
        ("POST", "/config/uploads"): _upload,
        ("DELETE", "/config/uploads/*"): (200, "ok"),
        ("POST", "/plugins/portables"): install_reply,
        ("PUT", "/plugins/portables/myplug"): install_reply,
        ("GET", "/plugins/portables/myplug/status"): (200, '{"status": "running"}'),
    })


def _install(fake: FakeServer, *args: str) -> int:
    return main(["install", *args, "--server", fake.url, "--wait", "1"])


def _install_body(fake: FakeServer, method: str = "POST") -> dict[str, object]:
    [body] = [json.loads(b) for m, p, _, b in fake.requests
              if m == method and p.startswith("/plugins/portables")]
    return body  # type: ignore[no-any-return]


def test_zip_is_uploaded_installed_from_its_stored_path_then_removed(
        fake: FakeServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The install names file:// + the path the upload answered; that upload is deleted."""
    _serve(fake)
    assert _install(fake, str(_zip(tmp_path))) == 0
    assert capsys.readouterr().out.strip() == "myplug: running"
    body = _install_body(fake)
    stored = str(body["file"]).removeprefix("file://" + UPLOADS)
    assert stored.startswith("myplug-") and stored.endswith(".zip")
    assert body == {"name": "myplug", "file": f"file://{UPLOADS}{stored}", "shellParas": []}
    assert ("DELETE", f"/config/uploads/{stored}") in fake.calls()


def test_upload_is_removed_when_the_install_fails(fake: FakeServer, tmp_path: Path,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    """A refused install still deletes the upload, and exits 1 with eKuiper's message."""
    _serve(fake, install_reply=(400, '{"message": "install.sh failed: exit 3"}'))
    assert _install(fake, str(_zip(tmp_path))) == 1
    assert "failed (400): install.sh failed: exit 3" in capsys.readouterr().err
    assert [c for c in fake.calls() if c[0] == "DELETE"]


def test_installed_plugin_without_replace_uploads_nothing(
        fake: FakeServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """An installed name without --replace stops before any upload, naming --replace."""
    _serve(fake, installed=("myplug",))
    assert _install(fake, str(_zip(tmp_path))) == 1
    assert "add --replace to update it in place" in capsys.readouterr().err
    assert ("POST", "/config/uploads") not in fake.calls()


def test_replace_puts_the_new_zip(fake: FakeServer, tmp_path: Path) -> None:
    """--replace on an installed plugin sends PUT /plugins/portables/NAME."""
    _serve(fake, installed=("myplug",))
    assert _install(fake, str(_zip(tmp_path)), "--replace") == 0
    assert str(_install_body(fake, "PUT")["file"]).startswith("file://" + UPLOADS + "myplug-")


def test_private_address_refusal_names_the_setting_and_the_fix(
        fake: FakeServer, capsys: pytest.CaptureFixture[str]) -> None:
    """eKuiper's 'in internal network' refusal explains basic.enablePrivateNet and the fix."""
    _serve(fake, install_reply=(400, '{"message": "fail to download file '
                                     'http://10.0.0.2/myplug.zip: ip 10.0.0.2 is in internal '
                                     'network"}'))
    assert _install(fake, "http://10.0.0.2/myplug.zip") == 1
    err = capsys.readouterr().err
    assert "basic.enablePrivateNet is false as shipped" in err
    assert "give the zip or the plugin folder instead of a URL" in err


def test_url_is_passed_to_the_server_as_it_is(fake: FakeServer) -> None:
    """An https URL is installed without an upload, named after its file."""
    _serve(fake)
    assert _install(fake, "https://example.org/dl/myplug.zip") == 0
    assert _install_body(fake)["file"] == "https://example.org/dl/myplug.zip"
    assert ("POST", "/config/uploads") not in fake.calls()


def test_url_not_naming_a_zip_is_refused(fake: FakeServer,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    """A URL that does not end in NAME.zip exits 1 before any request."""
    assert _install(fake, "https://example.org/dl/my-plug.tar") == 1
    assert "must end in NAME.zip" in capsys.readouterr().err
    assert fake.requests == []


def test_serve_option_says_it_is_gone(tmp_path: Path,
                                      capsys: pytest.CaptureFixture[str]) -> None:
    """--serve, from older instructions, explains that the upload replaced it."""
    assert main(["install", str(_zip(tmp_path)), "--serve", "172.17.0.1"]) == 1
    assert "--serve is gone" in capsys.readouterr().err


def test_zip_name_that_is_not_a_plugin_name_is_refused(
        fake: FakeServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A zip named my-plug.zip cannot name a plugin: exit 1, nothing uploaded."""
    assert _install(fake, str(_zip(tmp_path, "my-plug"))) == 1
    assert "must be letters, digits and underscores" in capsys.readouterr().err
    assert fake.requests == []


def test_stored_path_becomes_a_quoted_file_url() -> None:
    """A POSIX path is quoted into file://; a Windows path gets its drive after ///."""
    assert server_file_url("/k/data/uploads/a b.zip") == "file:///k/data/uploads/a%20b.zip"
    assert server_file_url("C:\\k\\uploads\\a.zip") == "file:///C%3A/k/uploads/a.zip"


def test_relative_stored_path_is_refused() -> None:
    """A relative upload path cannot make a file:// URL: the error says how to fix it."""
    with pytest.raises(RestError, match="absolute KuiperBaseKey"):
        server_file_url("data/uploads/a.zip")


def test_packaging_flags_with_a_zip_are_refused(fake: FakeServer, tmp_path: Path,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    """--bundle-wheels on an already made zip says to give the folder; nothing is sent."""
    assert _install(fake, str(_zip(tmp_path)), "--bundle-wheels") == 1
    assert "--bundle-wheels shape the zip made from a plugin folder" in capsys.readouterr().err
    assert fake.requests == []
