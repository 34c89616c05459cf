"""How ``ekuiper-plugin install`` gets a zip into an eKuiper it can only reach over REST.

The route works with eKuiper as it ships, wherever it runs (the compose stack, another
host, this machine), on 1.14 and 2.x:

1. ``POST /config/uploads`` (multipart, field ``uploadFile``) stores the zip under the
   server's ``data/uploads`` and answers with the path it stored it at;
2. ``POST /plugins/portables`` (or ``PUT .../NAME`` to replace) with ``file://`` + that
   path: eKuiper 2.4 reads ``file://`` URLs under ``data/uploads`` whatever
   ``basic.allowExternalFileAccess`` says, and no HTTP download is involved, so
   ``basic.enablePrivateNet`` (false as shipped) does not matter;
3. ``DELETE /config/uploads/NAME`` removes the upload again, whatever step 2 said.

A URL given instead of a zip (``http(s)://`` or ``file://`` on the server) is passed to
eKuiper as it is.
"""

from __future__ import annotations

import secrets
import urllib.parse
from collections.abc import Callable, Sequence
from pathlib import Path, PurePosixPath

from ekuiper._cli.rest import RestError, Server, segment

__all__ = ["explain_refusal", "install_archive", "install_url", "server_file_url"]

# eKuiper's own words for a refusal -> what to do about it.
_REFUSALS = (
    ("in internal network",
     "eKuiper refuses downloads from loopback and private addresses "
     "(basic.enablePrivateNet is false as shipped): give the zip or the plugin folder "
     "instead of a URL, and ekuiper-plugin uploads it through the REST API"),
    ("file access denied",
     "this eKuiper reads file:// URLs only under its data/uploads "
     "(basic.allowExternalFileAccess is false): give the zip or the plugin folder instead "
     "of a URL, and ekuiper-plugin uploads it there"),
    ("no such file or directory",
     "a file:// URL names a file on the server's machine (inside its container, if it "
     "runs in one): give the zip or the plugin folder instead, and ekuiper-plugin "
     "uploads it"),
    ("already exist",
     "add --replace to update the installed plugin in place"),
)


def explain_refusal(error: RestError) -> RestError:
    """``error`` with the fix appended where eKuiper's message is a known refusal."""
    text = str(error)
    for marker, fix in _REFUSALS:
        if marker in text.lower():
            return RestError(f"{text}\n  fix: {fix}")
    return error


def server_file_url(stored: str) -> str:
    """The ``file://`` URL of a path on the server, as eKuiper's install parses it."""
    if len(stored) > 2 and stored[1] == ":" and stored[0].isalpha():  # a Windows server
        return "file:///" + urllib.parse.quote(stored.replace("\\", "/"))
    if not PurePosixPath(stored).is_absolute():
        raise RestError(f"the server stored the upload at a relative path ({stored!r}); "
                        "start kuiperd with an absolute KuiperBaseKey (its home) and retry")
    return "file://" + urllib.parse.quote(stored)


def _install_request(server: Server, name: str, replace: bool) -> tuple[str, str]:
    """The method and path that install ``name``: POST, or PUT where it is installed."""
    if name not in {p["name"] for p in server.plugins()}:
        return "POST", "/plugins/portables"
    if not replace:
        raise RestError(f"{name!r} is already installed on {server.url}; add --replace to "
                        "update it in place")
    return "PUT", f"/plugins/portables/{segment(name)}"


def _send_install(server: Server, request: tuple[str, str], name: str, url: str,
                  shell_paras: Sequence[str], progress: Callable[[str], None]) -> None:
    method, path = request
    progress(f"{'updating' if method == 'PUT' else 'installing'} {name} on {server.url}")
    try:
        server.checked(method, path, {"name": name, "file": url,
                                      "shellParas": list(shell_paras)})
    except RestError as exc:
        raise explain_refusal(exc) from None


def install_url(server: Server, name: str, url: str, replace: bool,
                shell_paras: Sequence[str], progress: Callable[[str], None]) -> None:
    """Install (or, with ``replace``, update) plugin ``name`` from a URL eKuiper reads."""
    _send_install(server, _install_request(server, name, replace), name, url, shell_paras,
                  progress)


def install_archive(server: Server, name: str, archive: Path, replace: bool,
                    shell_paras: Sequence[str], progress: Callable[[str], None]) -> None:
    """Upload ``archive`` to the server, install plugin ``name`` from it, drop the upload."""
    request = _install_request(server, name, replace)
    # Unique, so an upload of the user's own with this name is neither used nor deleted.
    stored_name = f"{name}-{secrets.token_hex(8)}.zip"
    progress(f"uploading {archive.name} ({archive.stat().st_size} bytes) to {server.url}")
    stored = server.upload(archive, stored_name)
    try:
        _send_install(server, request, name, server_file_url(stored), shell_paras, progress)
    finally:
        try:
            server.delete_upload(stored_name)
        except RestError as exc:
            progress(f"warning: could not remove the upload {stored}: {exc}")
