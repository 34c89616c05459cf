"""`ekuiper-plugin validate`: is a folder a plugin eKuiper will install and run?"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ekuiper._runtime.lifecycle import DESCRIBE_ENV, DESCRIBE_MARK

__all__ = ["KINDS", "NAME_RE", "Problem", "Report", "validate_plugin"]

KINDS = ("sources", "sinks", "functions")
# Plugin and symbol names end up in SQL and in IPC socket file names.
NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_SINGULAR = {"sources": "source", "sinks": "sink", "functions": "function"}


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

    @property
    def ok(self) -> bool:
        return not any(p.severity == "error" for p in self.problems)

    @property
    def name(self) -> str:
        return self.folder.name


def _read_descriptor(folder: Path, out: list[Problem]) -> dict[str, Any]:
    name = folder.name
    path = folder / f"{name}.json"
    rel = f"{name}/{name}.json"
    if not path.is_file():
        others = sorted(p.name for p in folder.glob("*.json"))
        hint = f" (found {', '.join(others)}: the descriptor is named after the folder)" \
            if others else ""
        out.append(Problem("error", rel, f"the plugin descriptor is missing{hint}",
                           f"create {rel} with language, executable and the symbol lists"))
        return {}
    try:
        descriptor = json.loads(path.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError) as exc:
        out.append(Problem("error", rel, f"not valid JSON: {exc}", "fix the JSON syntax"))
        return {}
    if not isinstance(descriptor, dict):
        out.append(Problem("error", rel, "must be a JSON object", 'e.g. {"version": "v1.0.0", '
                           '"language": "python", "executable": "main.py", "sources": []}'))
        return {}
    return descriptor


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
    executable = d.get("executable")
    if not isinstance(executable, str) or not executable:
        out.append(Problem("error", rel, '"executable" is missing',
                           f'name the main program, e.g. "executable": "{name}.py"'))
    elif not (folder / executable).is_file():
        out.append(Problem("error", rel, f'"executable" {executable!r} is not in the folder',
                           f"create {name}/{executable} or fix the name"))
    elif not executable.endswith(".py"):
        out.append(Problem("warning", rel, f'"executable" {executable!r} is not a .py file',
                           "eKuiper runs it with Python; make sure that is intended"))
    for kind in KINDS:
        symbols = d.get(kind, [])
        if not isinstance(symbols, list) or not all(isinstance(s, str) for s in symbols):
            out.append(Problem("error", rel, f'"{kind}" must be a list of names',
                               f'e.g. "{kind}": ["my{_SINGULAR[kind]}"]'))
            continue
        for symbol in symbols:
            if not NAME_RE.match(symbol):
                out.append(Problem("error", rel, f"{_SINGULAR[kind]} name {symbol!r} is not an "
                                   "identifier", "use letters, digits and underscores"))
        if len(set(symbols)) != len(symbols):
            out.append(Problem("error", rel, f'"{kind}" lists a name twice', "remove the copy"))
    if d.get("virtualEnvType") not in (None, "conda"):
        out.append(Problem("error", rel, f'"virtualEnvType" {d["virtualEnvType"]!r} is not '
                           'supported', 'use "conda" (with "env") or leave it out'))
    if d.get("virtualEnvType") == "conda" and not isinstance(d.get("env"), str):
        out.append(Problem("error", rel, '"virtualEnvType": "conda" needs "env"',
                           'add "env": "<conda environment name>"'))


def describe_main(folder: Path, executable: str, python: str,
                  timeout: float = 60.0) -> tuple[dict[str, Any] | None, str]:
    """Run the main program in describe mode; (its PluginConfig, or None, and output)."""
    env = {**os.environ, DESCRIBE_ENV: "1"}
    try:
        done = subprocess.run([python, executable, "{}"], cwd=folder, env=env,
                              capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return None, f"did not finish within {timeout:.0f} s"
    for line in done.stdout.splitlines():
        if line.startswith(DESCRIBE_MARK):
            return json.loads(line[len(DESCRIBE_MARK):]), ""
    return None, (done.stderr or done.stdout).strip()[-2000:] or f"exit code {done.returncode}"


def _check_main(folder: Path, d: dict[str, Any], python: str, out: list[Problem]) -> None:
    executable = d.get("executable")
    if not isinstance(executable, str) or not (folder / executable).is_file():
        return
    rel = f"{folder.name}/{executable}"
    described, output = describe_main(folder, executable, python)
    if described is None:
        out.append(Problem("error", rel, "running it did not reach plugin.start(PluginConfig("
                           f"...)):\n{_indent(output)}",
                           "make it import cleanly and call plugin.start(config) under "
                           "if __name__ == '__main__'"))
        return
    if described["name"] != folder.name:
        out.append(Problem("error", rel, f"PluginConfig name is {described['name']!r} but the "
                           f"plugin is {folder.name!r}",
                           f'use PluginConfig("{folder.name}", ...)'))
    for kind in KINDS:
        listed = set(d.get(kind) or []) if isinstance(d.get(kind), list) else set()
        registered = set(described[kind])
        for missing in sorted(listed - registered):
            out.append(Problem("error", rel, f"{_SINGULAR[kind]} {missing!r} is in the "
                               "descriptor but not in PluginConfig",
                               f"register it in PluginConfig {kind} or drop it from "
                               f"{folder.name}.json"))
        for extra in sorted(registered - listed):
            out.append(Problem("error", f"{folder.name}/{folder.name}.json",
                               f"{_SINGULAR[kind]} {extra!r} is registered in PluginConfig "
                               "but not listed", f'add it to "{kind}"'))


def _check_metadata(folder: Path, d: dict[str, Any], out: list[Problem]) -> None:
    name = folder.name
    for kind in KINDS:
        listed = d.get(kind)
        for symbol in listed if isinstance(listed, list) else []:
            if kind == "sources":
                yaml = folder / "sources" / f"{symbol}.yaml"
                rel = f"{name}/sources/{symbol}.yaml"
                if not yaml.is_file():
                    out.append(Problem("error", rel, "missing; eKuiper's install requires "
                                       "one per source", "create it with a `default:` section"))
                elif not re.search(r"^default\s*:", yaml.read_text(errors="replace"), re.M):
                    out.append(Problem("warning", rel, "has no top-level `default:` section",
                                       "put the default configuration under `default:`"))
            meta = folder / kind / f"{symbol}.json"
            rel = f"{name}/{kind}/{symbol}.json"
            if not meta.is_file():
                out.append(Problem("warning", rel, "missing; eKuiper's UI uses it to describe "
                                   f"the {_SINGULAR[kind]}", "add the metadata file"))
                continue
            try:
                json.loads(meta.read_text(encoding="utf-8"))
            except (ValueError, UnicodeDecodeError) as exc:
                out.append(Problem("error", rel, f"not valid JSON: {exc}", "fix the JSON syntax"))


def _indent(text: str) -> str:
    return "\n".join("      " + line for line in text.splitlines())


def validate_plugin(folder: Path, python: str | None = None) -> Report:
    """Check a plugin folder; problems are ordered as found."""
    folder = folder.resolve()
    out: list[Problem] = []
    if not folder.is_dir():
        out.append(Problem("error", str(folder), "not a folder",
                           "give the plugin folder (the one holding <name>.json)"))
        return Report(folder, out, {})
    descriptor = _read_descriptor(folder, out)
    if descriptor:
        _check_descriptor(folder, descriptor, out)
        _check_main(folder, descriptor, python or sys.executable, out)
        _check_metadata(folder, descriptor, out)
    return Report(folder, out, descriptor)
