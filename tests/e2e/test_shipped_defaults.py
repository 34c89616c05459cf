"""The e2e harness runs eKuiper as it ships: its own etc/kuiper.yaml, no relaxed setting."""

from __future__ import annotations

import pytest

from tests.e2e.conftest import V1_VERSION, BootKuiperd, dist_for
from tests.e2e.kuiper import DEFAULT_VERSION

# What the harness may set: ports (tests run side by side), the console log, the Python
# that runs plugins, and 1.x's plugin start timeout. Nothing about security.
ALLOWED = {"KUIPER__BASIC__RESTPORT", "KUIPER__BASIC__PORT", "KUIPER__BASIC__CONSOLELOG",
           "KUIPER__BASIC__PPROF", "KUIPER__SOURCE__HTTPSERVERPORT",
           "KUIPER__PORTABLE__PYTHONBIN", "KUIPER__PORTABLE__INITTIMEOUT"}


@pytest.mark.parametrize("version", [DEFAULT_VERSION, V1_VERSION])
def test_kuiperd_boots_with_the_shipped_config(boot_kuiperd: BootKuiperd, version: str,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    """The home holds the release's etc/kuiper.yaml unchanged; the env moves only ports."""
    monkeypatch.setenv("KUIPER__BASIC__ENABLEPRIVATENET", "true")  # a developer's shell
    kuiperd = boot_kuiperd(version)
    shipped = dist_for(version) / "etc" / "kuiper.yaml"
    assert (kuiperd.home / "etc" / "kuiper.yaml").read_bytes() == shipped.read_bytes()
    assert {k for k in kuiperd.boot_env if k.startswith("KUIPER__")} <= ALLOWED
    assert b"enablePrivateNet: false" in shipped.read_bytes() or version.startswith("v1.")
