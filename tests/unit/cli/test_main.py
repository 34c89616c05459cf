"""ekuiper-plugin's command line: help, exit codes, messages."""

from __future__ import annotations

from pathlib import Path

import pytest

from ekuiper._cli import build_parser, main
from tests.conftest import PLUGINS

COMMANDS = ["new", "validate", "run", "package", "install", "status", "remove", "list",
            "metadata", "state", "dev", "metrics"]


@pytest.mark.parametrize("command", COMMANDS)
def test_every_command_has_help(command: str, capsys: pytest.CaptureFixture[str]) -> None:
    """`ekuiper-plugin COMMAND --help` prints usage and exits 0."""
    with pytest.raises(SystemExit) as info:
        build_parser().parse_args([command, "--help"])
    assert info.value.code == 0
    assert capsys.readouterr().out.startswith(f"usage: ekuiper-plugin {command}")


def test_new_refuses_bad_name(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A plugin name that is not an identifier exits 1 with the reason."""
    assert main(["new", "my-plug", "--dir", str(tmp_path)]) == 1
    assert "must be letters, digits and underscores" in capsys.readouterr().err


def test_new_refuses_existing_folder(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Creating over an existing folder exits 1 instead of overwriting."""
    (tmp_path / "dup").mkdir()
    assert main(["new", "dup", "--dir", str(tmp_path)]) == 1
    assert "already exists" in capsys.readouterr().err


def test_validate_reference_plugin_is_ok(capsys: pytest.CaptureFixture[str]) -> None:
    """plugins/pysam passes validation."""
    assert main(["validate", str(PLUGINS / "pysam")]) == 0
    assert capsys.readouterr().out.strip() == "pysam: ok"


def test_package_refuses_invalid_plugin(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """package validates first and exits 1 without writing a zip."""
    (tmp_path / "bad").mkdir()
    assert main(["package", str(tmp_path / "bad"), "-o", str(tmp_path / "bad.zip")]) == 1
    assert not (tmp_path / "bad.zip").exists()
    assert "bad is not valid" in capsys.readouterr().err


def test_run_needs_one_symbol(capsys: pytest.CaptureFixture[str]) -> None:
    """run without --source/--sink/--function exits 1 saying what to give."""
    assert main(["run", str(PLUGINS / "pysam")]) == 1
    assert "give exactly one of --source, --sink or --function" in capsys.readouterr().err


def test_unreachable_server_is_explained(capsys: pytest.CaptureFixture[str]) -> None:
    """A server that does not answer gives a one-line hint and exit 1."""
    assert main(["list", "--server", "http://127.0.0.1:9"]) == 1
    assert "cannot reach eKuiper at http://127.0.0.1:9" in capsys.readouterr().err


def test_run_function_prints_result(capsys: pytest.CaptureFixture[str]) -> None:
    """run --function prints the JSON result."""
    assert main(["run", str(PLUGINS / "pysam"), "--function", "revert",
                 "--args", '["abc"]']) == 0
    assert capsys.readouterr().out.strip() == '"cba"'


def test_new_refuses_a_name_that_hides_a_module(tmp_path: Path,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    """`new json` exits 1 with the reason instead of a traceback."""
    assert main(["new", "json", "--dir", str(tmp_path)]) == 1
    assert "ekuiper-plugin new:" in capsys.readouterr().err
    assert not (tmp_path / "json").exists()


def test_package_into_an_unwritable_place_is_one_line(tmp_path: Path,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    """A zip that cannot be written exits 1 naming it, not with a traceback."""
    target = tmp_path / "missing" / "pysam.zip"
    assert main(["package", str(PLUGINS / "pysam"), "-o", str(target)]) == 1
    err = capsys.readouterr().err
    assert "ekuiper-plugin package: cannot write" in err
    assert "Traceback" not in err
