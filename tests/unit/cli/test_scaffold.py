"""ekuiper-plugin new: names that would not make a working plugin are refused."""

from __future__ import annotations

from pathlib import Path

import pytest

from ekuiper._cli import main
from ekuiper._cli.scaffold import new_plugin


def test_new_refuses_name_with_trailing_newline(tmp_path: Path,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    """`new "abc\\n" --source s` exits 1 and creates nothing (a trailing newline is no name)."""
    assert main(["new", "abc\n", "--source", "s", "--dir", str(tmp_path)]) == 1
    assert "must be letters, digits and underscores" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []


def test_new_refuses_symbol_with_trailing_newline(tmp_path: Path) -> None:
    """`new ok --source "s\\n"` exits 1 and creates nothing."""
    assert main(["new", "ok", "--source", "s\n", "--dir", str(tmp_path)]) == 1
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("name", ["abc\n", "a-b", ""])
def test_new_plugin_refuses_bad_plugin_name(tmp_path: Path, name: str) -> None:
    """new_plugin itself refuses a name that is not a whole identifier."""
    with pytest.raises(ValueError, match="must be letters, digits and underscores"):
        new_plugin(tmp_path, name, ["s"], [], [])
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("name", ["symbols", "json", "threading", "ekuiper"])
def test_new_plugin_refuses_module_names(tmp_path: Path, name: str) -> None:
    """A plugin named like a module it imports (or its own symbols.py) is refused."""
    with pytest.raises(ValueError, match="is the name of a Python module"):
        new_plugin(tmp_path, name, ["s"], [], [])
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(("sources", "message"), [
    (["s", "s"], "given twice"), (["a_b", "a__b"], "would get the same class name"),
    (["ok", "x\n"], "must be letters, digits and underscores")])
def test_new_plugin_refuses_clashing_symbols(tmp_path: Path, sources: list[str],
                                             message: str) -> None:
    """Symbols given twice, or whose class names would clash, are refused."""
    with pytest.raises(ValueError, match=message):
        new_plugin(tmp_path, "clash", sources, [], [])
    assert list(tmp_path.iterdir()) == []


def test_new_plugin_allows_builtin_module_names(tmp_path: Path) -> None:
    """A built-in module such as time cannot be hidden by time.py, so the name is allowed."""
    assert new_plugin(tmp_path, "time", ["s"], [], []).is_dir()
