"""ekuiper-plugin metadata, and validate's check that typed symbols' files are current."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ekuiper._cli import main
from ekuiper._cli.metadata import diff_paths
from ekuiper._cli.scaffold import new_plugin
from ekuiper._cli.validate import validate_plugin

TYPED_SYMBOLS = '''"""Typed symbols."""

from dataclasses import dataclass
from typing import Any, List

from ekuiper import Context, Function, Sink, Source


@dataclass
class TicksConfig:
    interval: float = INTERVAL


class TicksSource(Source):
    """Emits ticks."""

    config_type = TicksConfig

    def configure(self, datasource: str, conf: TicksConfig) -> None:
        self.conf = conf

    def open(self, ctx: Context) -> None:
        pass


class OutSink(Sink):
    def collect(self, ctx: Context, data: Any) -> None:
        pass


class ShoutFunction(Function):
    def call(self, text: str) -> str:
        """Upper-cases text."""
        return text.upper()
'''


@pytest.fixture
def typed(tmp_path: Path) -> Path:
    folder = new_plugin(tmp_path, "tp", ["ticks"], ["out"], ["shout"])
    for kind, name in (("sources", "ticks"), ("functions", "shout")):
        (folder / kind / f"{name}.json").unlink()
    _set_interval(folder, "1.0")
    return folder


def _set_interval(folder: Path, value: str) -> None:
    (folder / "symbols.py").write_text(TYPED_SYMBOLS.replace("INTERVAL", value))


def test_check_reports_missing_files_and_exits_1(typed: Path,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    """Without --write, missing files are listed with the command that writes them."""
    assert main(["metadata", str(typed)]) == 1
    out = capsys.readouterr().out
    assert "tp/functions/shout.json: missing" in out and "tp/sources/ticks.json: missing" in out
    assert f"ekuiper-plugin metadata {typed} --write" in out


def test_write_then_check_is_up_to_date(typed: Path,
                                        capsys: pytest.CaptureFixture[str]) -> None:
    """--write creates the files; a second check finds them current and validate is clean."""
    assert main(["metadata", str(typed), "--write"]) == 0
    assert main(["metadata", str(typed)]) == 0
    assert "tp/sources/ticks.json: up to date" in capsys.readouterr().out
    doc = json.loads((typed / "sources" / "ticks.json").read_text())
    assert doc["properties"]["default"][0]["name"] == "interval"
    assert validate_plugin(typed).problems == []


def test_validate_reports_a_stale_file_with_the_fix(typed: Path) -> None:
    """After the code changes, validate warns that the file is out of date, and where."""
    assert main(["metadata", str(typed), "--write"]) == 0
    _set_interval(typed, "2.5")
    problems = [p for p in validate_plugin(typed).problems if "ticks.json" in p.file]
    assert [(p.severity, p.message) for p in problems] == [
        ("warning", "out of date with the code: properties.default[interval].default")]
    assert problems[0].fix == "run `ekuiper-plugin metadata tp --write`"


def test_unusable_declaration_is_a_validate_error(typed: Path) -> None:
    """A typed call SQL cannot pass arguments to is an error naming the symbol."""
    text = (typed / "symbols.py").read_text()
    (typed / "symbols.py").write_text(text.replace("def call(self, text: str)",
                                                   "def call(self, text: str, *, n: int)"))
    errors = [p for p in validate_plugin(typed).problems if p.severity == "error"]
    assert len(errors) == 1 and "function 'shout' cannot be used" in errors[0].message
    assert "parameter 'n' cannot be passed from SQL" in errors[0].message


def test_untyped_plugin_has_nothing_to_generate(tmp_path: Path,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    """A plugin without typed symbols: nothing to do, exit 0."""
    folder = new_plugin(tmp_path, "up", ["src"], [], [])
    assert main(["metadata", str(folder)]) == 0
    assert "nothing to generate" in capsys.readouterr().out


def test_diff_paths_names_entries_by_name() -> None:
    """Lists of named entries are compared by name; other values by path."""
    old = {"a": [{"name": "x", "type": "int"}], "b": 1}
    new = {"a": [{"name": "x", "type": "float"}, {"name": "y"}], "b": 1}
    assert diff_paths(old, new) == ["a[x].type", "a[y]"]
    assert diff_paths(1, 2) == ["(whole file)"]


def test_non_record_config_type_is_a_validate_warning(typed: Path) -> None:
    """A config_type that is the plugin's own string is a warning, not an error."""
    text = (typed / "symbols.py").read_text()
    (typed / "symbols.py").write_text(text.replace("config_type = TicksConfig",
                                                   'config_type = "json"'))
    problems = [(p.severity, p.message) for p in validate_plugin(typed).problems
                if "config_type" in p.message]
    assert [s for s, _ in problems] == ["warning"]
    assert "source 'ticks'" in problems[0][1] and "not a dataclass" in problems[0][1]


def test_lambda_factory_is_named_by_metadata(typed: Path,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    """metadata names a symbol registered with a non-class factory and says to register
    the class."""
    main_py = typed / "tp.py"
    main_py.write_text(main_py.read_text().replace('{"shout": ShoutFunction}',
                                                   '{"shout": lambda: ShoutFunction()}'))
    main(["metadata", str(typed)])
    out = capsys.readouterr().out
    assert "warning: function 'shout' is registered with a factory that is not a class" in out
    assert "register the class itself" in out


def test_symbol_name_that_is_no_identifier_is_never_a_path(tmp_path: Path) -> None:
    """A generated entry whose symbol name could leave the folder is an error, not a file."""
    from ekuiper._cli.metadata import metadata_files

    described = {"metadata": {"sources": {"../../escape": {"about": {}, "properties": {}}}}}
    (entry,) = metadata_files(tmp_path / "p", described)
    assert "not a valid symbol name" in entry.error and not entry.exists
