"""deploy/Dockerfile.plugins: the derived image puts plugins where the entrypoint installs
them from and keeps kuiperd started through the entrypoint, whoever starts it."""

from __future__ import annotations

import re

from tests.deploy import manifests as m


def _derived() -> str:
    return m.PLUGINS_DOCKERFILE.read_text()


def _moved() -> tuple[str, str]:
    """(kuiperd's path in the base image, where the derived image moves it)."""
    [moved] = re.findall(r"\bmv\s+(\S+)\s+(\S+)", _derived())
    return moved[0], moved[1]


def test_builds_from_the_slim_python_image() -> None:
    """The default base is the image compose.yaml runs."""
    assert m.build_args(_derived())["BASE_IMAGE"] == m.compose_image()


def test_plugins_go_to_the_dropin_folder() -> None:
    """The plugin folders are copied to the image's EKUIPER_DROPIN_PLUGINS, outside plugins/."""
    source = m.image_env(m.SLIM_DOCKERFILE.read_text())["EKUIPER_DROPIN_PLUGINS"]
    copies = [rest.split() for word, rest in m.instructions(_derived()) if word == "COPY"]
    assert [c[-1].rstrip("/") for c in copies if c[-2] == "${PLUGINS}/"] == [source]
    assert not m.under(source, "/kuiper/plugins")


def test_shim_replaces_kuiperd_of_the_base_image() -> None:
    """The shim takes kuiperd's path (the base image's CMD), kuiperd moves beside it."""
    original, _ = _moved()
    base_cmd = m.exec_form(m.last(m.SLIM_DOCKERFILE.read_text(), "CMD"))
    workdir = m.last(m.SLIM_DOCKERFILE.read_text(), "WORKDIR")
    assert original == f"{workdir}/{base_cmd[0].removeprefix('./')}"
    [installed] = re.findall(r"install\b[^&]*kuiperd-dropin\.sh\s+(\S+)", _derived())
    assert installed == original


def test_shim_starts_kuiperd_through_the_entrypoint() -> None:
    """The shim execs the image's entrypoint with the moved kuiperd and its own arguments."""
    _, moved = _moved()
    [entrypoint] = m.exec_form(m.last(m.SLIM_DOCKERFILE.read_text(), "ENTRYPOINT"))
    commands = [line for line in m.DROPIN_SHIM.read_text().splitlines()
                if line.strip() and not line.startswith("#")]
    assert commands == [f'exec {entrypoint} {moved} "$@"']


def test_default_command_is_the_moved_kuiperd() -> None:
    """Started by the image's own entrypoint, the drop-in plugins are installed once."""
    _, moved = _moved()
    assert m.exec_form(m.last(_derived(), "CMD")) == [moved]
