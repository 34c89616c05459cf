"""`ekuiper-plugin metadata`: the metadata JSON of typed symbols, checked or written.

The generation runs in the plugin's own process (``validate``'s describe mode prints it,
see ``ekuiper._metadata``); here the result is laid over the committed files and
compared, or written.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ekuiper._cli.validate import NAME_RE
from ekuiper._metadata import merge

__all__ = ["MetadataFile", "diff_paths", "metadata_files", "write_file"]


@dataclass(frozen=True)
class MetadataFile:
    """One typed symbol's metadata file: where, what it should hold, how it stands."""

    kind: str  # the KINDS plural: sources, sinks, functions
    symbol: str
    path: Path
    rel: str  # as messages show it: <plugin>/<kind>/<symbol>.json
    error: str  # the declaration could not be read (then `wanted` is empty)
    exists: bool
    unreadable: str  # the committed file is not JSON (then it is regenerated whole)
    wanted: dict[str, Any]
    changes: tuple[str, ...]  # JSON paths where the committed file differs

    @property
    def up_to_date(self) -> bool:
        return not self.error and self.exists and not self.unreadable and not self.changes


def diff_paths(old: Any, new: Any, prefix: str = "", limit: int = 8) -> list[str]:
    """Where two JSON values differ, as paths such as ``properties.default[period].type``."""
    out: list[str] = []

    def walk(a: Any, b: Any, path: str) -> None:
        if len(out) >= limit or a == b:
            return
        if isinstance(a, dict) and isinstance(b, dict):
            for key in [*b, *(k for k in a if k not in b)]:
                walk(a.get(key), b.get(key), f"{path}.{key}" if path else str(key))
            return
        if (isinstance(a, list) and isinstance(b, list) and
                all(isinstance(e, dict) and "name" in e for e in [*a, *b])):
            a_by = {e["name"]: e for e in a}
            b_by = {e["name"]: e for e in b}
            if list(a_by) != list(b_by) and set(a_by) == set(b_by):
                out.append(f"{path} (order)")
            for name in [*b_by, *(n for n in a_by if n not in b_by)]:
                walk(a_by.get(name), b_by.get(name), f"{path}[{name}]")
            return
        out.append(path or "(whole file)")

    walk(old, new, prefix)
    return out


def metadata_files(folder: Path, described: dict[str, Any]) -> list[MetadataFile]:
    """Each typed symbol's file, compared with what the code generates. Never raises."""
    files = []
    generated = described.get("metadata")
    if not isinstance(generated, dict):
        return []
    for kind in ("sources", "sinks", "functions"):
        symbols = generated.get(kind)
        if not isinstance(symbols, dict):
            continue
        for symbol, parts in sorted(symbols.items()):
            path = folder / kind / f"{symbol}.json"
            rel = f"{folder.name}/{kind}/{symbol}.json"
            if not NAME_RE.match(symbol):  # it would become a path outside kind/
                files.append(MetadataFile(
                    kind, symbol, path, f"{folder.name}/{kind}/{symbol!r}",
                    f"{symbol!r} is not a valid symbol name (letters, digits and _, not "
                    "starting with a digit); rename it in PluginConfig", False, "", {}, ()))
                continue
            if not isinstance(parts, dict) or "error" in parts:
                why = parts.get("error") if isinstance(parts, dict) else repr(parts)
                files.append(MetadataFile(kind, symbol, path, rel, str(why), path.is_file(),
                                          "", {}, ()))
                continue
            existing: Any = None
            unreadable = ""
            if path.is_file():
                try:
                    existing = json.loads(path.read_text(encoding="utf-8"))
                except (ValueError, UnicodeDecodeError, OSError, RecursionError) as exc:
                    unreadable = f"{type(exc).__name__}: {exc}"
            wanted = merge(kind, symbol, existing, parts)
            changes = tuple(diff_paths(existing, wanted)) if existing is not None else ()
            files.append(MetadataFile(kind, symbol, path, rel, "", path.is_file(), unreadable,
                                      wanted, changes))
    return files


def write_file(entry: MetadataFile) -> None:
    """Write the generated file (atomically: a reader never sees half of it)."""
    entry.path.parent.mkdir(parents=True, exist_ok=True)
    tmp = entry.path.with_name(f".{entry.path.name}.tmp")
    tmp.write_text(json.dumps(entry.wanted, indent=2, ensure_ascii=False) + "\n",
                   encoding="utf-8")
    tmp.replace(entry.path)
