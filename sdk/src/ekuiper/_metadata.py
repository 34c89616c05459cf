"""eKuiper's metadata JSON (what eKuiper Manager reads) from typed declarations.

Pure: no I/O. ``generate`` builds the parts of ``sources/<name>.json``,
``sinks/<name>.json`` or ``functions/<name>.json`` that the code determines (the
properties from a ``config_type``; a function's arguments, return type, example and hint
from its typed ``call``), and ``merge`` lays them over a committed file, keeping what
people wrote by hand there (other languages, icons, help URLs, a hint the code has none
for). A committed file is up to date when merging changes nothing.

Runs in the plugin's own process (``ekuiper-plugin validate``'s describe mode), which
has the plugin's imports; the CLI only compares and writes the result.
"""

from __future__ import annotations

import copy
import dataclasses
import enum
import json
import typing
from datetime import timedelta
from typing import Any

from ekuiper import _typed

__all__ = ["describe_metadata", "generate", "merge", "property_type"]

_NAMES = {str: "string", int: "int", float: "float", bool: "bool", timedelta: "string"}


def _choices(tp: Any) -> list[Any] | None:
    tp = _typed._strip_annotated(tp)
    if typing.get_origin(tp) is typing.Literal:
        return list(typing.get_args(tp))
    if isinstance(tp, type) and issubclass(tp, enum.Enum):
        return [m.value for m in tp]
    return None


def _unwrap_optional(tp: Any) -> Any:
    tp = _typed._strip_annotated(tp)
    if _typed._is_union(typing.get_origin(tp)):
        members = [a for a in typing.get_args(tp) if a is not type(None)]
        if len(members) == 1:
            return _typed._strip_annotated(members[0])
    return tp


def _is_record(tp: Any) -> bool:
    return isinstance(tp, type) and (dataclasses.is_dataclass(tp) or _typed._is_typeddict(tp))


def property_type(tp: Any) -> tuple[str, str]:
    """(eKuiper metadata ``type``, ``control``) for a Python annotation."""
    tp = _unwrap_optional(tp)
    choices = _choices(tp)
    if choices is not None:
        kinds = {type(c) for c in choices}
        name = _NAMES.get(kinds.pop(), "any") if len(kinds) == 1 else "any"
        return name, "select"
    if tp in _NAMES:
        return _NAMES[tp], "radio" if tp is bool else "text"
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if tp in (list, tuple) or origin in (list, tuple):
        item = _unwrap_optional(args[0]) if args else Any
        if item is str:
            return "list_string", "list"
        if item is int:
            return "list_int", "list"
        if _is_record(item) or item is dict or typing.get_origin(item) is dict:
            return "list_object", "list"
        return "array", "list"
    if tp is dict or origin is dict or _is_record(tp):
        return "object", "text"
    return "any", "text"


def _json_default(value: Any) -> tuple[bool, Any]:
    """(True, the default as JSON shows it) or (False, None) when JSON cannot hold it."""
    if isinstance(value, enum.Enum):
        value = value.value
    if isinstance(value, timedelta):
        value = f"{value.total_seconds():g}s"
    elif dataclasses.is_dataclass(value) and not isinstance(value, type):
        value = dataclasses.asdict(value)
    try:
        json.dumps(value, allow_nan=False)
    except (TypeError, ValueError):
        return False, None
    return True, value


def _field_default(field: _typed.Field, cls: type) -> tuple[bool, Any]:
    if field.default is not dataclasses.MISSING:
        return _json_default(field.default)
    if dataclasses.is_dataclass(cls):
        for f in dataclasses.fields(cls):
            factory: Any = f.default_factory
            if f.name == field.name and factory is not dataclasses.MISSING:
                try:
                    return _json_default(factory())
                except Exception:  # a factory that needs more than describe mode has
                    return False, None
    return False, None


def _first_paragraph(doc: str) -> str:
    return " ".join(doc.strip().split("\n\n")[0].split())


def _property(field: _typed.Field, cls: type) -> dict[str, Any]:
    type_name, control = property_type(field.type)
    entry: dict[str, Any] = {"name": field.name}
    has_default, default = _field_default(field, cls)
    if has_default:
        entry["default"] = default
    entry.update(optional=not field.required, control=control, type=type_name)
    choices = _choices(_unwrap_optional(field.type))
    if choices is not None:
        entry["values"] = choices
    entry["hint"] = {"en_US": field.hint} if field.hint else {}
    entry["label"] = {"en_US": field.label} if field.label else {}
    return entry


def _about(doc: str) -> dict[str, Any]:
    text = _first_paragraph(doc)
    return {"description": {"en_US": text}} if text else {}


def generate(kind: str, symbol: str, cls: type) -> dict[str, Any]:
    """The code-determined parts of a symbol's metadata (``kind``: a KINDS plural).

    Raises TypeError (naming it) when the declaration cannot be read.
    """
    if kind == "functions":
        spec = _typed.call_spec(cls, symbol)
        args = []
        for p in [*spec.params, *([spec.variadic] if spec.variadic else [])]:
            type_name, _ = property_type(p.type)
            args.append({"name": p.name, "optional": not p.required, "control": "field",
                         "type": type_name, "hint": {}, "label": {"en_US": p.name}})
        shown = [p.name for p in spec.params if p.required]
        optional = [p.name for p in spec.params if not p.required]
        if spec.variadic is not None:
            optional.append(f"{spec.variadic.name}...")
        example = f"{symbol}({', '.join(shown)}{''.join(f'[, {o}]' for o in optional)})"
        if not shown and optional:
            example = example.replace("([, ", "([", 1)
        ret_type, _ = property_type(spec.returns)
        return {"about": {} if _own_doc_missing(cls) else _about(cls.__doc__ or ""),
                "functions": [{"name": symbol, "example": example,
                               "hint": ({"en_US": _first_paragraph(spec.doc)}
                                        if spec.doc else {}),
                               "args": args, "return": {"type": ret_type}}]}
    config = _typed.config_spec(cls.config_type)  # type: ignore[attr-defined]
    properties = [_property(f, config.cls) for f in config.fields]
    doc = config.doc if _own_doc_missing(cls) else (cls.__doc__ or "")
    return {"about": _about(doc),
            "properties": {"default": properties} if kind == "sources" else properties}


def _own_doc_missing(cls: type) -> bool:
    return "__doc__" not in cls.__dict__ or not cls.__dict__["__doc__"]


def _skeleton(kind: str, symbol: str) -> dict[str, Any]:
    category = {"sources": "source", "sinks": "sink", "functions": "function"}[kind]
    doc: dict[str, Any] = {
        "about": {"trial": True, "author": {"name": "", "email": "", "company": "",
                                            "website": ""},
                  "helpUrl": {"en_US": ""},
                  "description": {"en_US": f"The {symbol} {category}."}},
        "libs": [],
    }
    if kind != "functions":
        doc["properties"] = {"default": []} if kind == "sources" else []
        doc["node"] = {"category": category, "icon": "iconPath", "label": {"en_US": symbol}}
    else:
        doc["functions"] = []
    return doc


def _texts(old: Any, new: dict[str, str], fallback: str = "") -> dict[str, Any]:
    """A {language: text} map: the code's en_US wins, hand-written ones stay."""
    merged = dict(old) if isinstance(old, dict) else {}
    if new.get("en_US"):
        merged["en_US"] = new["en_US"]
    elif "en_US" not in merged:
        merged["en_US"] = fallback
    return merged


def _merge_entries(old: Any, new: list[dict[str, Any]], keys: tuple[str, ...],
                   label_fallback: bool) -> list[dict[str, Any]]:
    """The generated entries in code order, each over the committed entry of its name."""
    by_name = {e.get("name"): e for e in old if isinstance(e, dict)} \
        if isinstance(old, list) else {}
    out = []
    for entry in new:
        merged = dict(by_name.get(entry["name"], {}))
        merged["name"] = entry["name"]
        for key in keys:
            if key in entry:
                merged[key] = entry[key]
            else:
                merged.pop(key, None)
        merged["hint"] = _texts(merged.get("hint"), entry.get("hint", {}))
        merged["label"] = _texts(merged.get("label"), entry.get("label", {}),
                                 entry["name"] if label_fallback else "")
        out.append(merged)
    return out


def merge(kind: str, symbol: str, existing: Any, generated: dict[str, Any]) -> dict[str, Any]:
    """The committed metadata (or a fresh skeleton) with the generated parts laid over it."""
    doc = copy.deepcopy(existing) if isinstance(existing, dict) else _skeleton(kind, symbol)
    skeleton = _skeleton(kind, symbol)
    for key, value in skeleton.items():
        doc.setdefault(key, value)
    about = doc["about"] if isinstance(doc["about"], dict) else skeleton["about"]
    doc["about"] = about
    description = generated.get("about", {}).get("description", {})
    about["description"] = _texts(about.get("description"), description,
                                  skeleton["about"]["description"]["en_US"])
    if kind == "functions":
        listed = doc.get("functions")
        old: list[Any] = listed if isinstance(listed, list) else []
        others = [f for f in old if not (isinstance(f, dict) and f.get("name") == symbol)]
        mine = next((f for f in old if isinstance(f, dict) and f.get("name") == symbol), {})
        gen = generated["functions"][0]
        entry = dict(mine)
        entry.update(name=symbol, example=gen["example"])
        entry["hint"] = _texts(mine.get("hint"), gen["hint"])
        entry["args"] = _merge_entries(mine.get("args"), gen["args"],
                                       ("optional", "control", "type"), label_fallback=True)
        committed = mine.get("return")
        ret: dict[str, Any] = dict(committed) if isinstance(committed, dict) else {}
        ret["type"] = gen["return"]["type"]
        ret["hint"] = _texts(ret.get("hint"), {})
        entry["return"] = ret
        entry.setdefault("node", {"category": "function", "icon": "iconPath",
                                  "label": {"en_US": symbol}})
        doc["functions"] = [entry, *others]
        return doc
    keys = ("default", "optional", "control", "type", "values")
    if kind == "sources":
        committed_props = doc.get("properties")
        props: dict[str, Any] = (dict(committed_props) if isinstance(committed_props, dict)
                                 else {})
        props["default"] = _merge_entries(props.get("default"),
                                          generated["properties"]["default"], keys, True)
        doc["properties"] = props
    else:
        doc["properties"] = _merge_entries(doc.get("properties"), generated["properties"],
                                           keys, True)
    return doc


def describe_metadata(symbols: list[tuple[str, str, type]]) -> dict[str, Any]:
    """For describe mode: {plural: {symbol: generated parts, or {"error": why}}}."""
    out: dict[str, Any] = {}
    for kind, symbol, cls in symbols:
        try:
            out.setdefault(kind, {})[symbol] = generate(kind, symbol, cls)
        except Exception as exc:  # a plugin bug; validate reports it, naming the symbol
            out.setdefault(kind, {})[symbol] = {"error": f"{type(exc).__name__}: {exc}"}
    return out
