"""ekuiper-plugin validate: each kind of problem, with the file and the fix."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ekuiper._cli.scaffold import new_plugin
from ekuiper._cli.validate import NAME_RE, Problem, validate_plugin
from ekuiper._runtime.lifecycle import DESCRIBE_MARK


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


# -- the executable must stay inside the folder --------------------------------------------

def _outside_program(tmp_path: Path) -> tuple[Path, Path]:
    """A program outside the plugin that leaves a mark when it runs; (program, mark)."""
    mark = tmp_path / "ran"
    program = tmp_path / "outside.py"
    program.write_text(f"open({str(mark)!r}, 'w').close()\n")
    return program, mark


def test_executable_outside_folder_is_refused_unrun(plugin: Path, tmp_path: Path) -> None:
    """An executable reaching out with ../ is an error, and it is not run."""
    _, mark = _outside_program(tmp_path)
    _edit(plugin, executable="../outside.py")
    assert any(m.startswith("error vp/vp.json: \"executable\" '../outside.py' leads outside "
                            "the plugin folder") for m in _messages(plugin))
    assert not mark.exists()


def test_absolute_executable_is_refused(plugin: Path) -> None:
    """An absolute executable is an error even when it names the folder's own program."""
    _edit(plugin, executable=str(plugin / "vp.py"))
    assert any("is an absolute path" in m for m in _messages(plugin))


def test_executable_symlink_leaving_folder_is_refused_unrun(plugin: Path,
                                                            tmp_path: Path) -> None:
    """An executable that is a symlink to a program outside is an error, and not run."""
    program, mark = _outside_program(tmp_path)
    (plugin / "link.py").symlink_to(program)
    _edit(plugin, executable="link.py")
    assert any("'link.py' leads outside the plugin folder" in m for m in _messages(plugin))
    assert not mark.exists()


def test_executable_left_out_of_the_package_is_an_error(plugin: Path) -> None:
    """An executable that `package` would not ship (here: hidden) is an error."""
    (plugin / "vp.py").rename(plugin / ".vp.py")
    _edit(plugin, executable=".vp.py")
    assert any("'.vp.py' would not be packaged" in m for m in _messages(plugin))


# -- names are matched whole ---------------------------------------------------------------

def test_name_re_refuses_trailing_newline() -> None:
    """NAME_RE.match accepts a name only as a whole: "abc\\n" is refused."""
    assert NAME_RE.match("abc") and not NAME_RE.match("abc\n")


def test_symbol_with_trailing_newline_is_an_error(plugin: Path) -> None:
    """A descriptor symbol ending in a newline is reported as not an identifier."""
    _edit(plugin, sources=["src\n"])
    assert "error vp/vp.json: source name 'src\\n' is not an identifier" in _messages(plugin)


def test_metadata_not_looked_up_for_bad_names(plugin: Path) -> None:
    """A symbol name that is a path is reported once, never used to look up a file."""
    _edit(plugin, sinks=["../../x"])
    assert not [m for m in _messages(plugin) if "x.json" in m or "x.yaml" in m]


# -- the conda environment name ------------------------------------------------------------

def test_conda_env_that_is_shell_code_is_an_error(plugin: Path) -> None:
    """A conda "env" that is not a plain name is an error naming it."""
    _edit(plugin, virtualEnvType="conda", env="base$(touch x)")
    assert ("error vp/vp.json: \"env\" 'base$(touch x)' is not a conda environment name"
            in _messages(plugin))


# -- hostile descriptors -------------------------------------------------------------------

@pytest.mark.parametrize(("text", "message"), [
    ("{", "not valid JSON"),
    ("[1, 2]", "must be a JSON object"),
    ("[" * 100_000 + "]" * 100_000, "nested too deeply to read"),
    ('"\\ud800"', "must be a JSON object"),
    ("\xff", "not valid JSON"),
])
def test_unreadable_descriptor_is_one_error(plugin: Path, text: str, message: str) -> None:
    """A descriptor that is not a JSON object gives one error, not a traceback."""
    (plugin / "vp.json").write_bytes(text.encode("latin-1"))
    [problem] = validate_plugin(plugin).problems
    assert (problem.severity, problem.file) == ("error", "vp/vp.json")
    assert problem.message.startswith(message)


def test_empty_object_descriptor_is_checked(plugin: Path) -> None:
    """An empty descriptor object is checked like any other, not passed as ok."""
    (plugin / "vp.json").write_text("{}")
    assert "error vp/vp.json: \"executable\" is missing" in _messages(plugin)


@pytest.mark.parametrize("changes", [
    {"sources": "src"}, {"sources": [1]}, {"sinks": [["snk"]]}, {"functions": [{"f": 1}]},
    {"executable": 5}, {"executable": ["vp.py"]}, {"executable": "a\0b"},
    {"language": {"python": True}}, {"virtualEnvType": ["conda"]},
    {"virtualEnvType": "conda", "env": {"name": "base"}},
])
def test_wrongly_typed_fields_are_errors(plugin: Path, changes: dict[str, object]) -> None:
    """A field of the wrong type is an error naming the field, not a traceback."""
    _edit(plugin, **changes)
    report = validate_plugin(plugin)
    assert not report.ok
    field = next(iter(changes)) if len(changes) == 1 else "env"
    assert any(f'"{field}"' in p.message for p in report.problems if p.severity == "error")


def test_deeply_nested_metadata_is_an_error(plugin: Path) -> None:
    """A metadata file nested 100k deep is an error, not a RecursionError."""
    (plugin / "sinks" / "snk.json").write_text("[" * 100_000 + "]" * 100_000)
    assert "error vp/sinks/snk.json: nested too deeply to read" in _messages(plugin)


@pytest.mark.parametrize("printed", ["{bad", "[]", '{"name": "vp", "sources": 1}'])
def test_unreadable_description_is_an_error(plugin: Path, printed: str) -> None:
    """A main program printing a malformed description is an error about it."""
    (plugin / "vp.py").write_text(f"print({DESCRIBE_MARK + printed!r})\n")
    [problem] = validate_plugin(plugin).problems
    assert (problem.severity, problem.file) == ("error", "vp/vp.py")
    assert "printed an unreadable description" in problem.message


def test_missing_python_is_an_error(plugin: Path, tmp_path: Path) -> None:
    """A --python that cannot be started is an error naming it."""
    python = str(tmp_path / "no-python")
    [problem] = validate_plugin(plugin, python=python).problems
    assert f"cannot start {python}" in problem.message


_JSON = st.recursive(st.none() | st.booleans() | st.integers() | st.floats() | st.text(),
                     lambda inner: st.lists(inner) | st.dictionaries(st.text(), inner),
                     max_leaves=20)
_FIELDS = st.sampled_from(["version", "language", "executable", "sources", "sinks",
                           "functions", "virtualEnvType", "env"])


@settings(max_examples=150, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(descriptor=_JSON | st.dictionaries(_FIELDS, _JSON))
def test_any_json_descriptor_gives_a_report(tmp_path: Path, descriptor: object) -> None:
    """Whatever JSON the descriptor holds, validate returns a report and never raises."""
    folder = tmp_path / "fz"
    folder.mkdir(exist_ok=True)
    (folder / "fz.json").write_text(json.dumps(descriptor))
    report = validate_plugin(folder, python=str(tmp_path / "no-python"))
    assert all(isinstance(p, Problem) for p in report.problems)


# -- what `package` would refuse or leave out ------------------------------------------------

def test_symlink_leaving_folder_is_an_error(plugin: Path, tmp_path: Path) -> None:
    """A symlink to a file outside is an error naming the link and its target."""
    (tmp_path / "secret").write_text("key")
    (plugin / "sources" / "leak.txt").symlink_to(tmp_path / "secret")
    assert (f"error vp/sources/leak.txt: symlink to {tmp_path / 'secret'}, outside the plugin "
            "folder; `package` refuses it") in _messages(plugin)


def test_hidden_file_is_a_warning(plugin: Path) -> None:
    """A .env file is named in a warning: package leaves it out."""
    (plugin / ".env").write_text("TOKEN=x\n")
    report = validate_plugin(plugin)
    assert report.ok
    assert [(p.severity, p.file) for p in report.problems] == [("warning", "vp/.env")]


def test_usual_tool_files_are_not_warned_about(plugin: Path) -> None:
    """.git, .venv, caches and .gitignore are left out without a word."""
    for sub in (".git", ".venv", ".pytest_cache", "__pycache__"):
        (plugin / sub).mkdir()
    (plugin / ".gitignore").write_text("*.pyc\n")
    assert validate_plugin(plugin).problems == []


def test_symlinked_folder_is_a_warning(plugin: Path) -> None:
    """A symlinked folder inside the plugin is named: package does not follow it."""
    (plugin / "more").symlink_to(plugin / "sources", target_is_directory=True)
    assert any(m.startswith("warning vp/more/: a symlinked folder") for m in _messages(plugin))
