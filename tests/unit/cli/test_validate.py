"""ekuiper-plugin validate: each kind of problem, with the file and the fix."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ekuiper._cli.scaffold import new_plugin
from ekuiper._cli.validate import validate_plugin


@pytest.fixture
def plugin(tmp_path: Path) -> Path:
    return new_plugin(tmp_path, "vp", ["src"], ["snk"], ["fn"])


def _edit(folder: Path, **changes: object) -> None:
    path = folder / f"{folder.name}.json"
    path.write_text(json.dumps({**json.loads(path.read_text()), **changes}))


def _messages(folder: Path) -> list[str]:
    return [f"{p.severity} {p.file}: {p.message}" for p in validate_plugin(folder).problems]


def test_scaffold_is_valid(plugin: Path) -> None:
    """A freshly scaffolded plugin has no problems at all."""
    assert validate_plugin(plugin).problems == []


def test_missing_descriptor(tmp_path: Path) -> None:
    """A folder without <name>.json is an error naming the expected file."""
    (tmp_path / "empty").mkdir()
    assert _messages(tmp_path / "empty") == [
        "error empty/empty.json: the plugin descriptor is missing"]


def test_wrong_language(plugin: Path) -> None:
    """A language other than python is an error."""
    _edit(plugin, language="java")
    assert "error vp/vp.json: \"language\" is 'java'" in _messages(plugin)


def test_missing_executable(plugin: Path) -> None:
    """An executable that is not in the folder is an error."""
    _edit(plugin, executable="main.py")
    assert "error vp/vp.json: \"executable\" 'main.py' is not in the folder" in _messages(plugin)


def test_registered_but_not_listed(plugin: Path) -> None:
    """A symbol in PluginConfig but not in the descriptor is an error."""
    _edit(plugin, sinks=[])
    assert ("error vp/vp.json: sink 'snk' is registered in PluginConfig but not listed"
            in _messages(plugin))


def test_plugin_config_name_must_match_folder(plugin: Path) -> None:
    """PluginConfig's name differing from the folder is an error with the fix."""
    main = plugin / "vp.py"
    main.write_text(main.read_text().replace('"vp",', '"other",'))
    problems = validate_plugin(plugin).problems
    assert [p.fix for p in problems] == ['use PluginConfig("vp", ...)']


def test_main_program_that_crashes(plugin: Path) -> None:
    """A main program that fails on import is reported with its error output."""
    (plugin / "symbols.py").write_text("raise ImportError('numpy is not installed')\n")
    [problem] = validate_plugin(plugin).problems
    assert problem.file == "vp/vp.py"
    assert "numpy is not installed" in problem.message


def test_source_without_yaml(plugin: Path) -> None:
    """A source without sources/<name>.yaml is an error (REST install requires it)."""
    (plugin / "sources" / "src.yaml").unlink()
    assert any(m.startswith("error vp/sources/src.yaml: missing") for m in _messages(plugin))


def test_bad_metadata_json(plugin: Path) -> None:
    """A metadata file that is not JSON is an error."""
    (plugin / "sinks" / "snk.json").write_text("{")
    assert any(m.startswith("error vp/sinks/snk.json: not valid JSON") for m in _messages(plugin))


def test_missing_metadata_is_a_warning(plugin: Path) -> None:
    """A missing UI metadata file only warns."""
    (plugin / "functions" / "fn.json").unlink()
    report = validate_plugin(plugin)
    assert report.ok
    assert [p.severity for p in report.problems] == ["warning"]
