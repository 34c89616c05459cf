"""Where the IPC sockets live: eKuiper fixes them under /tmp. What that means for two
eKuiper homes on one machine and for a read-only /tmp, and what makes both work."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator

import pytest

from tests.conftest import PLUGINS, REPO, skip_or_fail
from tests.e2e.conftest import BootKuiperd
from tests.e2e.scenarios import run_pysam_rule
from tests.protocol.events import wait_for

PYSAM = PLUGINS / "pysam"
# Homes outside /tmp, so a private /tmp does not hide them.
HOME_PARENT = "/var/tmp"
# A fresh tmpfs on /tmp; the checkout (and so the venv and the SDK), when it lives under
# /tmp itself, is bound back in so the plugin's Python still finds them.
PRIVATE_TMP_SCRIPT = (
    'old="$OLD_TMP" && mount --bind /tmp "$old" && '
    "mount -t tmpfs tmpfs /tmp && "
    'for keep in $KEEP_UNDER_TMP; do mkdir -p "$keep" && '
    'mount --bind "$old/${keep#/tmp/}" "$keep"; done && exec "$0"'
)
PRIVATE_TMP = ["unshare", "--mount", "--propagation", "private", "sh", "-c", PRIVATE_TMP_SCRIPT]
READ_ONLY_TMP = ["unshare", "--mount", "--propagation", "private", "sh", "-c",
                 'mount --bind /tmp /tmp && mount -o remount,bind,ro /tmp && exec "$0"']


@pytest.fixture
def namespaces() -> None:
    if os.geteuid() != 0 or not shutil.which("unshare"):
        skip_or_fail("needs root and unshare(1) to give kuiperd a private /tmp")


def test_second_home_collides_on_shared_tmp(boot_kuiperd: BootKuiperd) -> None:
    """Two kuiperds sharing /tmp: the second cannot load a plugin of the same name."""
    first = boot_kuiperd(drop_in=(PYSAM,), home_parent=HOME_PARENT)
    wait_for(lambda: first.plugin_status("pysam")["status"] == "running", what="first pysam")
    second = boot_kuiperd(drop_in=(PYSAM,), home_parent=HOME_PARENT)
    status = wait_for(lambda: (s := second.plugin_status("pysam"))["status"] != "initializing"
                      and s, what="second pysam status")
    assert status["status"] == "error"
    assert "address in use" in status["errMsg"]
    _, _, rows = run_pysam_rule(first, first.out_path("first.txt"))
    assert {row["r"] for row in rows} == {"nosjyp"}


@pytest.fixture
def old_tmp() -> Iterator[str]:
    """Where the private-/tmp namespace keeps the real /tmp reachable (a mount point)."""
    path = tempfile.mkdtemp(prefix="ekp-oldtmp-", dir=HOME_PARENT)
    yield path
    os.rmdir(path)


def test_private_tmp_lets_two_homes_run(boot_kuiperd: BootKuiperd, namespaces: None,
                                        old_tmp: str) -> None:
    """With its own /tmp (a mount namespace, as a container or PrivateTmp gives), a second
    kuiperd runs the same plugin beside the first."""
    first = boot_kuiperd(drop_in=(PYSAM,), home_parent=HOME_PARENT)
    keep = str(REPO) if str(REPO).startswith("/tmp/") else ""
    second = boot_kuiperd(drop_in=(PYSAM,), home_parent=HOME_PARENT, wrapper=PRIVATE_TMP,
                          env={"KEEP_UNDER_TMP": keep, "OLD_TMP": old_tmp})
    for kuiperd, name in ((first, "a.txt"), (second, "b.txt")):
        wait_for(lambda k=kuiperd: k.plugin_status("pysam")["status"] == "running",
                 what="pysam running")
        _, status, rows = run_pysam_rule(kuiperd, kuiperd.out_path(name))
        assert {(row["r"], row["datasource"]) for row in rows} == {("nosjyp",
                                                                     status["datasource"])}


def test_read_only_tmp_fails_with_clear_status(boot_kuiperd: BootKuiperd,
                                               namespaces: None) -> None:
    """With a read-only /tmp, eKuiper cannot create the control socket: the plugin's
    status says so (nothing in the SDK can move eKuiper's sockets)."""
    kuiperd = boot_kuiperd(drop_in=(PYSAM,), home_parent=HOME_PARENT, wrapper=READ_ONLY_TMP)
    status = wait_for(lambda: (s := kuiperd.plugin_status("pysam"))["status"] != "initializing"
                      and s, what="pysam status")
    assert status["status"] == "error"
    # eKuiper's text: "read-only file system", or "address in use" when a stale socket
    # file from an earlier run is there and cannot be removed.
    assert status["errMsg"].startswith("can't listen on rep socket: ")
