"""`ekuiper-plugin state`: find a plugin's state file, list it, drop by rule, age, prune."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ekuiper._cli import main
from ekuiper._cli.package import select_files
from ekuiper._cli.state import locate_state_file, parse_age, server_rule_ids
from ekuiper._state import STATE_DIR_ENV, Scope, SqliteStore
from tests.unit.cli.conftest import FakeServer


@pytest.fixture
def plugin(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An installed plugin folder in an eKuiper home, with state kept for rules r1, r2."""
    monkeypatch.delenv(STATE_DIR_ENV, raising=False)
    folder = tmp_path / "plugins" / "portable" / "myplug"
    folder.mkdir(parents=True)
    (tmp_path / "data").mkdir()
    (folder / "myplug.json").write_text(json.dumps({"executable": "myplug.py"}))
    store = SqliteStore(tmp_path / "data" / "plugin_state" / "myplug" / "state.sqlite3")
    store.put(Scope("source", "ticks", "r1", "s1", 0), "n", 5)
    store.put(Scope("function", "count", "r2", "", 0), "calls", {"total": 2})
    store.close()
    return folder


def _kept_rules(plugin: Path) -> set[str]:
    store = SqliteStore(locate_state_file(plugin), create=False)
    try:
        return {e.scope.rule for e in store.entries()}
    finally:
        store.close()


def test_a_plugin_folder_resolves_as_the_plugin_would(plugin: Path) -> None:
    """The installed folder leads to <home>/data/plugin_state/<name>/state.sqlite3."""
    home = plugin.parent.parent.parent
    assert locate_state_file(plugin) == home / "data" / "plugin_state" / "myplug" / \
        "state.sqlite3"


def test_a_state_folder_or_file_is_taken_as_it_is(tmp_path: Path) -> None:
    """A folder without a descriptor holds state.sqlite3; a file is the file."""
    (tmp_path / "f.sqlite3").write_text("")
    assert locate_state_file(tmp_path) == tmp_path / "state.sqlite3"
    assert locate_state_file(tmp_path / "f.sqlite3") == tmp_path / "f.sqlite3"


def test_list_shows_one_line_per_value(plugin: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Each kept value is a line: rule, kind and symbol, op/instance, key, JSON value."""
    assert main(["state", str(plugin)]) == 0
    lines = [line.split("\t")[:5] for line in capsys.readouterr().out.splitlines()]
    assert lines == [["r1", "source ticks", "s1/0", "n", "5"],
                     ["r2", "function count", "-", "calls", '{"total":2}']]


def test_list_of_one_rule(plugin: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """--rule lists that rule's values only."""
    assert main(["state", str(plugin), "--rule", "r2"]) == 0
    assert [line.split("\t")[0] for line in capsys.readouterr().out.splitlines()] == ["r2"]


def test_no_file_is_no_state_not_an_error(tmp_path: Path,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    """A plugin that never kept state: exit 0, saying where it looked, and no file made."""
    assert main(["state", str(tmp_path)]) == 0
    assert f"no file at {tmp_path / 'state.sqlite3'}" in capsys.readouterr().out
    assert not (tmp_path / "state.sqlite3").exists()


def test_drop_rule_deletes_that_rule_only(plugin: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """--drop-rule r1 removes r1's values and says how many."""
    assert main(["state", str(plugin), "--drop-rule", "r1"]) == 0
    assert "dropped 1 value(s) of rule r1" in capsys.readouterr().out
    assert _kept_rules(plugin) == {"r2"}


def test_drop_older_than_takes_an_age(plugin: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """--drop-older-than 1d keeps values written just now."""
    assert main(["state", str(plugin), "--drop-older-than", "1d"]) == 0
    assert "dropped 0 value(s)" in capsys.readouterr().out
    assert _kept_rules(plugin) == {"r1", "r2"}


def test_a_bad_age_exits_1_naming_the_forms(plugin: Path,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    """--drop-older-than soon is refused with examples of ages."""
    assert main(["state", str(plugin), "--drop-older-than", "soon"]) == 1
    assert "such as 90s, 15m, 12h or 7d" in capsys.readouterr().err


def test_prune_drops_rules_the_server_does_not_have(plugin: Path, fake: FakeServer,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    """--prune asks GET /rules and drops the state of every rule missing there."""
    fake.routes[("GET", "/rules")] = (200, json.dumps([{"id": "r2", "status": "running"}]))
    assert main(["state", str(plugin), "--prune", "--server", fake.url]) == 0
    assert "dropped 1 value(s) of rule r1" in capsys.readouterr().out
    assert _kept_rules(plugin) == {"r2"}


def test_prune_drops_nothing_when_the_server_answers_wrong(
        plugin: Path, fake: FakeServer, capsys: pytest.CaptureFixture[str]) -> None:
    """An answer that is not a rule list exits 1 and keeps every value."""
    fake.routes[("GET", "/rules")] = (200, '{"not": "rules"}')
    assert main(["state", str(plugin), "--prune", "--server", fake.url]) == 1
    assert "expected a list of rules" in capsys.readouterr().err
    assert _kept_rules(plugin) == {"r1", "r2"}


def test_a_file_that_is_not_state_exits_1(tmp_path: Path,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    """Garbage given as the state file is a one-line error naming it."""
    (tmp_path / "state.sqlite3").write_bytes(b"x" * 4096)
    assert main(["state", str(tmp_path)]) == 1
    assert str(tmp_path / "state.sqlite3") in capsys.readouterr().err


@pytest.mark.parametrize(("text", "seconds"), [("90s", 90), ("15m", 900), ("1.5h", 5400),
                                               ("7d", 604800)])
def test_ages(text: str, seconds: float) -> None:
    """Ages are a number and one of s, m, h, d."""
    assert parse_age(text) == seconds


def test_server_rule_ids_refuses_other_shapes() -> None:
    """A rule list needs an id string in every entry."""
    assert server_rule_ids([{"id": "a"}, {"id": "b"}]) == {"a", "b"}
    with pytest.raises(ValueError):
        server_rule_ids([{"name": "a"}])


def test_package_never_packs_the_local_state_folder(tmp_path: Path) -> None:
    """The .state folder `ekuiper-plugin run` fills is left out silently, even with
    --include-hidden."""
    (tmp_path / ".state").mkdir()
    (tmp_path / ".state" / "state.sqlite3").write_text("x")
    (tmp_path / "main.py").write_text("")
    for include_hidden in (False, True):
        selection = select_files(tmp_path, include_hidden)
        assert [p.name for p in selection.files] == ["main.py"]
        assert selection.hidden == []


def test_the_readme_stateful_ticks_goes_on_from_run_to_run(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    """The tutorial's ticks with the README's two state lines: a second `run` goes on
    from the first, and `state` lists the kept seq."""
    monkeypatch.delenv(STATE_DIR_ENV, raising=False)
    assert main(["new", "myplug", "--source", "ticks", "--dir", str(tmp_path)]) == 0
    symbols = tmp_path / "myplug" / "symbols.py"
    text = symbols.read_text()
    for old, new in (("        seq = 0\n", '        seq = ctx.get_state("seq", 0)\n'),
                     ("            self.stopped.wait(self.interval)\n",
                      '            ctx.put_state("seq", seq)\n'
                      "            self.stopped.wait(self.interval)\n")):
        assert old in text
        text = text.replace(old, new)
    symbols.write_text(text)
    capsys.readouterr()
    run = ["run", str(tmp_path / "myplug"), "--source", "ticks", "--count", "3",
           "--conf", '{"interval": 0.5}']
    assert main(run) == 0
    assert main(run) == 0
    seqs = [json.loads(line)["seq"] for line in capsys.readouterr().out.splitlines()]
    assert seqs == [1, 2, 3, 4, 5, 6]
    assert main(["state", str(tmp_path / "myplug")]) == 0
    assert capsys.readouterr().out.split("\t")[1:5] == ["source ticks", "op1/0", "seq", "6"]
    assert (tmp_path / "myplug" / ".state" / "state.sqlite3").is_file()
