"""`ekuiper-plugin validate`: is a folder a plugin eKuiper will install and run?"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Set as AbstractSet
from dataclasses import dataclass
from pathlib import Path, PurePosixPath, PureWindowsPath
from typing import Any

from ekuiper._cli.package import CONDA_ENV_RE, FileSelection, select_files
from ekuiper._kinds import KINDS, SOURCE
from ekuiper._runtime.lifecycle import DESCRIBE_ENV, DESCRIBE_MARK

__all__ = ["NAME_RE", "Problem", "Report", "validate_plugin"]

# Plugin and symbol names end up in SQL and in IPC socket file names.
# Whole-string: with "$", a trailing newline would pass (and break the generated code).
NAME_RE = re.compile(r"\A[A-Za-z_][A-Za-z0-9_]*\Z")


@dataclass(frozen=True)
class Problem:
    """One finding: where, what, and how to fix it."""

    severity: str  # "error" or "warning"
    file: str
    message: str
    fix: str = ""

    def __str__(self) -> str:
        text = f"{self.severity.upper()} {self.file}: {self.message}"
        return f"{text}\n    fix: {self.fix}" if self.fix else text


@dataclass
class Report:
    folder: Path
    problems: list[Problem]
    descriptor: dict[str, Any]
    # What the main program described in describe mode (None if it did not get there).
    described: dict[str, Any] | None = None

    @property
    def ok(self) -> bool:
        return not any(p.severity == "error" for p in self.problems)

    @property
    def name(self) -> str:
        return self.folder.name


def _read_json(path: Path) -> tuple[Any, str]:
    """(the parsed value, "") or (None, why it cannot be read); never raises."""
    try:
        return json.loads(path.read_text(encoding="utf-8")), ""
    except RecursionError:
        return None, "nested too deeply to read"
    except (ValueError, UnicodeDecodeError) as exc:  # JSONDecodeError is a ValueError
        return None, f"not valid JSON: {exc}"
    except OSError as exc:
        return None, f"cannot be read: {exc.strerror or exc}"


def _read_descriptor(folder: Path, out: list[Problem]) -> dict[str, Any] | None:
    name = folder.name
    path = folder / f"{name}.json"
    rel = f"{name}/{name}.json"
    if not path.is_file():
        others = sorted(p.name for p in folder.glob("*.json"))
        hint = f" (found {', '.join(others)}: the descriptor is named after the folder)" \
            if others else ""
        out.append(Problem("error", rel, f"the plugin descriptor is missing{hint}",
                           f"create {rel} with language, executable and the symbol lists"))
        return None
    descriptor, why = _read_json(path)
    if why:
        out.append(Problem("error", rel, why, "fix the JSON syntax"))
        return None
    if not isinstance(descriptor, dict):
        out.append(Problem("error", rel, "must be a JSON object", 'e.g. {"version": "v1.0.0", '
                           '"language": "python", "executable": "main.py", "sources": []}'))
        return None
    return descriptor


def _symbols(d: dict[str, Any], key: str) -> list[str] | None:
    """The names the descriptor lists under ``key``, or None if that is not a list of names."""
    symbols = d.get(key, [])
    if isinstance(symbols, list) and all(isinstance(s, str) for s in symbols):
        return symbols
    return None


def _check_descriptor(folder: Path, d: dict[str, Any], out: list[Problem]) -> None:
    name = folder.name
    rel = f"{name}/{name}.json"
    if not NAME_RE.match(name):
        out.append(Problem("error", f"{name}/", f"plugin name {name!r} is not an identifier",
                           "rename the folder to letters, digits and underscores"))
    if not isinstance(d.get("version"), str):
        out.append(Problem("warning", rel, '"version" is missing', 'add e.g. "version": "v1.0.0"'))
    if d.get("language") != "python":
        out.append(Problem("error", rel, f'"language" is {d.get("language")!r}',
                           'set "language": "python"'))
    for kind in KINDS:
        symbols = _symbols(d, kind.plural)
        if symbols is None:
            out.append(Problem("error", rel, f'"{kind.plural}" must be a list of names',
                               f'e.g. "{kind.plural}": ["my{kind.noun}"]'))
            continue
        for symbol in symbols:
            if not NAME_RE.match(symbol):
                out.append(Problem("error", rel, f"{kind.noun} name {symbol!r} is not an "
                                   "identifier", "use letters, digits and underscores"))
        if len(set(symbols)) != len(symbols):
            out.append(Problem("error", rel, f'"{kind.plural}" lists a name twice',
                               "remove the copy"))
    env_type = d.get("virtualEnvType")
    if env_type is not None and env_type != "conda":
        out.append(Problem("error", rel, f'"virtualEnvType" {env_type!r} is not '
                           'supported', 'use "conda" (with "env") or leave it out'))
    if env_type == "conda":
        env = d.get("env")
        if not isinstance(env, str):
            out.append(Problem("error", rel, '"virtualEnvType": "conda" needs "env"',
                               'add "env": "<conda environment name>"'))
        elif not CONDA_ENV_RE.match(env):
            out.append(Problem("error", rel, f'"env" {env!r} is not a conda environment name',
                               "use letters, digits, '_', '.' and '-', not starting with '.' "
                               "or '-'"))


def _check_executable(folder: Path, d: dict[str, Any], packed: set[Path] | None,
                      out: list[Problem]) -> str | None:
    """The executable if it is safe to run: a file inside the folder that is packaged.

    ``packed`` is what `package` would ship (None if the folder could not be listed).
    """
    name = folder.name
    rel = f"{name}/{name}.json"
    executable = d.get("executable")
    if not isinstance(executable, str) or not executable:
        out.append(Problem("error", rel, '"executable" is missing',
                           f'name the main program, e.g. "executable": "{name}.py"'))
        return None
    relative_fix = f'name it relative to the plugin folder, e.g. "executable": "{name}.py"'
    if "\0" in executable:
        out.append(Problem("error", rel, f'"executable" {executable!r} contains a NUL '
                           "character", relative_fix))
        return None
    if PurePosixPath(executable).is_absolute() or PureWindowsPath(executable).anchor:
        out.append(Problem("error", rel, f'"executable" {executable!r} is an absolute path; '
                           "eKuiper runs it from the installed plugin folder", relative_fix))
        return None
    path = folder / executable
    target = Path(os.path.realpath(path))
    if not _inside(target, folder):
        out.append(Problem("error", rel, f'"executable" {executable!r} leads outside the '
                           f"plugin folder (to {target})",
                           f"move the program into {name}/ and " + relative_fix))
        return None
    if not target.is_file():
        out.append(Problem("error", rel, f'"executable" {executable!r} is not in the folder',
                           f"create {name}/{executable} or fix the name"))
        return None
    if packed is not None and Path(os.path.normpath(path)) not in packed:
        out.append(Problem("error", rel, f'"executable" {executable!r} would not be packaged '
                           "(hidden files, tests/, caches and .pyc/.zip files are left out)",
                           f"move it to the top of {name}/"))
        return None
    if not executable.endswith(".py"):
        out.append(Problem("warning", rel, f'"executable" {executable!r} is not a .py file',
                           "eKuiper runs it with Python; make sure that is intended"))
    return executable


def _inside(path: Path, root: Path) -> bool:
    return path == root or root in path.parents


def _described(text: str) -> dict[str, Any] | None:
    """The description the runtime prints in describe mode, if it has the expected shape."""
    try:
        value = json.loads(text)
    except (ValueError, RecursionError):
        return None
    if not isinstance(value, dict) or not isinstance(value.get("name"), str):
        return None
    for kind in KINDS:
        names = value.get(kind.plural)
        if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
            return None
    return value


def describe_main(folder: Path, executable: str, python: str,
                  timeout: float = 60.0) -> tuple[dict[str, Any] | None, str]:
    """Run the main program in describe mode; (its PluginConfig, or None, and output).

    Blocks until the program exits or ``timeout`` passes (then it is killed).
    """
    env = {**os.environ, DESCRIBE_ENV: "1"}
    # A name starting with "-" would be read as an option of Python.
    program = os.path.join(".", executable) if executable.startswith("-") else executable
    try:
        done = subprocess.run([python, program, "{}"], cwd=folder, env=env,
                              capture_output=True, text=True, errors="replace",
                              timeout=timeout)
    except subprocess.TimeoutExpired:
        return None, f"did not finish within {timeout:.0f} s"
    except OSError as exc:
        return None, f"cannot start {python}: {exc.strerror or exc}"
    for line in done.stdout.splitlines():
        if line.startswith(DESCRIBE_MARK):
            described = _described(line[len(DESCRIBE_MARK):])
            if described is None:
                return None, f"printed an unreadable description: {line[:200]!r}"
            return described, ""
    return None, (done.stderr or done.stdout).strip()[-2000:] or f"exit code {done.returncode}"


def _check_main(folder: Path, executable: str, d: dict[str, Any], python: str,
                out: list[Problem]) -> dict[str, Any] | None:
    """Run the main program in describe mode; the description, if it got that far."""
    rel = f"{folder.name}/{executable}"
    described, output = describe_main(folder, executable, python)
    if described is None:
        out.append(Problem("error", rel, "running it did not reach plugin.start(PluginConfig("
                           f"...)):\n{_indent(output)}",
                           "make it import cleanly and call plugin.start(config) under "
                           "if __name__ == '__main__'"))
        return None
    for warning in described.get("warnings") or []:
        if isinstance(warning, list) and len(warning) == 2 \
                and all(isinstance(part, str) for part in warning):
            out.append(Problem("warning", rel, warning[0], warning[1]))
    if described["name"] != folder.name:
        out.append(Problem("error", rel, f"PluginConfig name is {described['name']!r} but the "
                           f"plugin is {folder.name!r}",
                           f'use PluginConfig("{folder.name}", ...)'))
    for kind in KINDS:
        symbols = _symbols(d, kind.plural)
        if symbols is None:  # already reported; comparing would only add noise
            continue
        listed, registered = set(symbols), set(described[kind.plural])
        for missing in sorted(listed - registered):
            out.append(Problem("error", rel, f"{kind.noun} {missing!r} is in the "
                               "descriptor but not in PluginConfig",
                               f"register it in PluginConfig {kind.plural} or drop it from "
                               f"{folder.name}.json"))
        for extra in sorted(registered - listed):
            out.append(Problem("error", f"{folder.name}/{folder.name}.json",
                               f"{kind.noun} {extra!r} is registered in PluginConfig "
                               "but not listed", f'add it to "{kind.plural}"'))
    return described


def _check_generated(folder: Path, described: dict[str, Any] | None,
                     out: list[Problem]) -> set[str]:
    """Typed symbols' metadata against the code; the files it has spoken for."""
    from ekuiper._cli.metadata import metadata_files

    if described is None:
        return set()
    fix = f"run `ekuiper-plugin metadata {folder.name} --write`"
    covered = set()
    for entry in metadata_files(folder, described):
        covered.add(entry.rel)
        if entry.error:
            out.append(Problem("error", entry.rel, f"the typed declaration of {entry.kind[:-1]} "
                               f"{entry.symbol!r} cannot be used: {entry.error}",
                               "use the types the SDK converts (see ekuiper._typed)"))
        elif not entry.exists:
            out.append(Problem("warning", entry.rel, "missing; eKuiper's UI uses it to describe "
                               f"the {entry.kind[:-1]}", fix + " to generate it from the code"))
        elif entry.unreadable:
            out.append(Problem("error", entry.rel, f"not valid JSON: {entry.unreadable}",
                               fix + " to generate it afresh"))
        elif entry.changes:
            out.append(Problem("warning", entry.rel, "out of date with the code: "
                               f"{', '.join(entry.changes)}", fix))
    return covered


def _check_metadata(folder: Path, d: dict[str, Any], out: list[Problem],
                    covered: AbstractSet[str] = frozenset()) -> None:
    name = folder.name
    for kind in KINDS:
        # Names that are not identifiers are reported already, and must not become paths.
        for symbol in [s for s in _symbols(d, kind.plural) or [] if NAME_RE.match(s)]:
            if kind is SOURCE:
                yaml = folder / kind.plural / f"{symbol}.yaml"
                rel = f"{name}/{kind.plural}/{symbol}.yaml"
                if not yaml.is_file():
                    out.append(Problem("error", rel, "missing; eKuiper's install requires "
                                       "one per source", "create it with a `default:` section"))
                else:
                    try:
                        text = yaml.read_text(errors="replace")
                    except OSError as exc:
                        out.append(Problem("error", rel, f"cannot be read: {exc.strerror}",
                                           "make it readable"))
                    else:
                        if not re.search(r"^default\s*:", text, re.M):
                            out.append(Problem("warning", rel, "has no top-level `default:` "
                                               "section", "put the default configuration "
                                               "under `default:`"))
            meta = folder / kind.plural / f"{symbol}.json"
            rel = f"{name}/{kind.plural}/{symbol}.json"
            if rel in covered:  # generated from a typed declaration: checked already
                continue
            if not meta.is_file():
                out.append(Problem("warning", rel, "missing; eKuiper's UI uses it to describe "
                                   f"the {kind.noun}", "add the metadata file"))
                continue
            _, why = _read_json(meta)
            if why:
                out.append(Problem("error", rel, why, "fix the JSON syntax"))


def _check_files(folder: Path, selection: FileSelection, out: list[Problem]) -> None:
    """What `package` would refuse or leave out, named before it gets that far."""
    name = folder.name
    for link, target in selection.escaping:
        out.append(Problem("error", f"{name}/{link}", f"symlink to {target}, outside the "
                           "plugin folder; `package` refuses it",
                           "copy the file into the folder, or remove the link"))
    for hidden in selection.hidden:
        out.append(Problem("warning", f"{name}/{hidden}", "hidden, so `package` leaves it out "
                           "(hidden files often hold secrets, such as .env)",
                           "if the plugin needs it, rename it without the leading dot"))
    for linked in selection.linked_dirs:
        out.append(Problem("warning", f"{name}/{linked}", "a symlinked folder; `package` does "
                           "not follow it, so its files are left out",
                           "if the plugin needs them, replace the link with a real folder"))


def _indent(text: str) -> str:
    return "\n".join("      " + line for line in text.splitlines())


def validate_plugin(folder: Path, python: str | None = None,
                    include_hidden: bool = False) -> Report:
    """Check a plugin folder; problems are ordered as found. Never raises for bad input.

    Runs the main program once (in describe mode, with ``python``) if the descriptor names
    one that is safe to run; blocks until it exits.
    """
    folder = folder.resolve()
    out: list[Problem] = []
    if not folder.is_dir():
        out.append(Problem("error", str(folder), "not a folder",
                           "give the plugin folder (the one holding <name>.json)"))
        return Report(folder, out, {})
    descriptor = _read_descriptor(folder, out)
    if descriptor is None:
        return Report(folder, out, {})
    try:
        selection: FileSelection | None = select_files(folder, include_hidden)
    except OSError as exc:
        selection = None
        out.append(Problem("error", f"{folder.name}/", f"cannot list the folder: {exc}",
                           "make every folder in it readable"))
    _check_descriptor(folder, descriptor, out)
    packed = set(selection.files) if selection is not None else None
    executable = _check_executable(folder, descriptor, packed, out)
    covered: set[str] = set()
    described = None
    if executable is not None:
        described = _check_main(folder, executable, descriptor, python or sys.executable, out)
        covered = _check_generated(folder, described, out)
    _check_metadata(folder, descriptor, out, covered)
    if selection is not None:
        _check_files(folder, selection, out)
    return Report(folder, out, descriptor, described)
