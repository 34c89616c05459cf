"""pytest fixtures of ekuiper.testing, registered when the SDK is installed."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from ekuiper.testing import PluginHost


@pytest.fixture
def ekuiper_plugin() -> Iterator[Callable[..., PluginHost]]:
    """Start plugin folders as eKuiper would; every one is stopped after the test.

    ``host = ekuiper_plugin("plugins/pysam")`` takes PluginHost's keyword arguments.
    """
    hosts: list[PluginHost] = []

    def start(folder: str | Path, **kwargs: Any) -> PluginHost:
        host = PluginHost(folder, **kwargs)
        hosts.append(host)
        return host

    yield start
    for host in hosts:
        host.close()
