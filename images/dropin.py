"""Install the drop-in plugins mounted at $EKUIPER_DROPIN_PLUGINS before eKuiper boots.

Every folder ``<name>/`` holding ``<name>.json`` (language, executable present) is copied
to ``$KUIPER_HOME/plugins/portable/<name>`` and its ``sources/ sinks/ functions/`` files
into ``etc/``, as eKuiper's REST install would; anything else is reported and skipped.
Plugins this script installed earlier whose folder is gone are removed again.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
from pathlib import Path

SOURCE = Path(os.environ.get("EKUIPER_DROPIN_PLUGINS", "/opt/ekuiper/plugins"))
HOME = Path(os.environ.get("KUIPER_HOME", "/kuiper"))
PORTABLE = HOME / "plugins" / "portable"
# Beside portable/, not in it: eKuiper warns about anything there that is not a folder.
MANIFEST = HOME / "plugins" / ".dropin-installed.json"
KINDS = ("sources", "sinks", "functions")


def say(message: str) -> None:
    print(f"dropin: {message}", file=sys.stderr, flush=True)


def problems(folder: Path) -> tuple[dict, list[str]]:
    """The descriptor and what is wrong with the folder as a plugin (empty: nothing)."""
    name = folder.name
    descriptor_path = folder / f"{name}.json"
    if not descriptor_path.is_file():
        return {}, [f"no {name}/{name}.json; a plugin folder holds a descriptor named after it"]
    try:
        descriptor = json.loads(descriptor_path.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError) as exc:
        return {}, [f"{name}.json is not valid JSON ({exc})"]
    if not isinstance(descriptor, dict):
        return {}, [f"{name}.json must hold a JSON object"]
    found = []
    language = descriptor.get("language")
    if language not in ("python", "go"):
        found.append(f'"language" is {language!r}; use "python" (or "go")')
    executable = descriptor.get("executable")
    if not isinstance(executable, str) or not executable:
        found.append('"executable" is missing; name the main program, e.g. "main.py"')
    elif not (folder / executable).is_file():
        found.append(f'"executable" {executable!r} is not in the folder')
    for kind in KINDS:
        symbols = descriptor.get(kind, [])
        if not isinstance(symbols, list) or not all(isinstance(s, str) for s in symbols):
            found.append(f'"{kind}" must be a list of symbol names')
    return descriptor, found


def install(folder: Path, descriptor: dict) -> None:
    target = PORTABLE / folder.name
    shutil.rmtree(target, ignore_errors=True)
    shutil.copytree(folder, target, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    for kind in KINDS:
        meta = folder / kind
        if meta.is_dir():
            (HOME / "etc" / kind).mkdir(parents=True, exist_ok=True)
            for item in meta.iterdir():
                if item.is_file():
                    shutil.copy2(item, HOME / "etc" / kind / item.name)
    summary = ", ".join(f"{kind}: {', '.join(descriptor.get(kind) or []) or '-'}" for kind in KINDS)
    say(f"installed plugin {folder.name!r} ({descriptor['language']}; {summary})")


def main() -> int:
    PORTABLE.mkdir(parents=True, exist_ok=True)
    try:
        previous = set(json.loads(MANIFEST.read_text()))
    except (OSError, ValueError):
        previous = set()
    installed: list[str] = []
    try:
        folders = sorted(p for p in SOURCE.iterdir() if p.is_dir()) if SOURCE.is_dir() else None
    except PermissionError:
        say(f"cannot read {SOURCE} as uid {os.getuid()}; make the mounted folder readable "
            "(chmod -R a+rX plugins) — starting without drop-in plugins")
        return 0
    if folders is not None:
        for folder in folders:
            if folder.name.startswith((".", "_")):
                continue
            descriptor, found = problems(folder)
            if found:
                say(f"skipped {folder.name!r}: " + "; ".join(found))
                continue
            install(folder, descriptor)
            installed.append(folder.name)
    else:
        say(f"{SOURCE} is not mounted; no drop-in plugins to install")
    for gone in sorted(previous - set(installed)):
        shutil.rmtree(PORTABLE / gone, ignore_errors=True)
        say(f"removed plugin {gone!r}: its folder is no longer in {SOURCE}")
    MANIFEST.write_text(json.dumps(sorted(installed)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
