"""Hypothesis strategies for malformed (and a few valid) eKuiper protocol frames.

Shared by the pure-layer fuzz tests and the live-plugin fuzz tests. Everything here
builds *bytes as eKuiper could put them on a socket*, or the JSON values inside them.
"""

from __future__ import annotations

import json
from typing import Any

from hypothesis import strategies as st

# -- JSON values ----------------------------------------------------------------------

json_scalars = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20)
)

json_values = st.recursive(
    json_scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner,
                                                                   max_size=4),
    max_leaves=12,
)


_BY_TYPE: tuple[tuple[type, st.SearchStrategy[Any]], ...] = (
    (type(None), st.none()),
    (bool, st.booleans()),
    (int, st.integers()),
    (float, st.floats(allow_nan=False, allow_infinity=False)),
    (str, st.text(max_size=20)),
    (list, st.lists(json_values, max_size=3)),
    (dict, st.dictionaries(st.text(max_size=8), json_values, max_size=3)),
)


def _not_a(*types: type) -> st.SearchStrategy[Any]:
    """A JSON value of none of ``types`` (bool is its own type here, not an int)."""
    return st.one_of([strategy for typ, strategy in _BY_TYPE if typ not in types])


# -- control commands -----------------------------------------------------------------

VALID_CMDS = ("start", "stop")
VALID_KINDS = ("source", "sink", "func")

symbol_names = st.text(min_size=1, max_size=12)
valid_meta = st.fixed_dictionaries(
    {},
    optional={"ruleId": st.text(max_size=8), "opId": st.text(max_size=8),
              "instanceId": st.integers(min_value=0, max_value=2**31)},
)
wrong_meta = st.one_of(
    _not_a(dict, type(None)),
    st.fixed_dictionaries({"ruleId": _not_a(str)}),
    st.fixed_dictionaries({"opId": _not_a(str)}),
    st.fixed_dictionaries({"instanceId": _not_a(int)}),
)
valid_config = st.dictionaries(st.text(max_size=8), json_values, max_size=4)


@st.composite
def valid_controls(draw: st.DrawFn, names: st.SearchStrategy[str] = symbol_names) -> dict[str, Any]:
    """A Control object eKuiper could send (v1 or v2 shape)."""
    ctrl: dict[str, Any] = {
        "symbolName": draw(names),
        "pluginType": draw(st.sampled_from(VALID_KINDS)),
        "meta": draw(valid_meta | st.none()),
    }
    if draw(st.booleans()):
        ctrl["dataSource"] = draw(st.text(max_size=8))
    if draw(st.booleans()):
        config = draw(valid_config)
        if draw(st.booleans()):
            config["datasource"] = draw(st.text(max_size=8))
        ctrl["config"] = config
    return ctrl


@st.composite
def wrong_controls(draw: st.DrawFn, names: st.SearchStrategy[str] = symbol_names) -> dict[str, Any]:
    """A Control with exactly one field missing, mistyped or out of range."""
    ctrl = draw(valid_controls(names))
    fault = draw(st.sampled_from([
        "no_symbol", "symbol_type", "empty_symbol", "no_kind", "kind_type", "kind_value",
        "meta", "config", "datasource", "config_datasource",
    ]))
    if fault == "no_symbol":
        del ctrl["symbolName"]
    elif fault == "symbol_type":
        ctrl["symbolName"] = draw(_not_a(str))
    elif fault == "empty_symbol":
        ctrl["symbolName"] = ""
    elif fault == "no_kind":
        del ctrl["pluginType"]
    elif fault == "kind_type":
        ctrl["pluginType"] = draw(_not_a(str))
    elif fault == "kind_value":
        ctrl["pluginType"] = draw(st.text(max_size=10).filter(lambda k: k not in VALID_KINDS))
    elif fault == "meta":
        ctrl["meta"] = draw(wrong_meta)
    elif fault == "config":
        ctrl["config"] = draw(_not_a(dict).filter(bool))
    elif fault == "datasource":
        ctrl["dataSource"] = draw(_not_a(str).filter(bool))
    else:
        ctrl.pop("dataSource", None)
        ctrl["config"] = {"datasource": draw(_not_a(str).filter(bool))}
    return ctrl


def encode_command(cmd: Any, control: Any, arg_as_string: bool = True) -> bytes:
    """The control frame as eKuiper builds it: ``arg`` is a string holding JSON."""
    arg = json.dumps(control) if arg_as_string else control
    return json.dumps({"cmd": cmd, "arg": arg}).encode()


@st.composite
def valid_commands(draw: st.DrawFn, names: st.SearchStrategy[str] = symbol_names) -> bytes:
    return encode_command(draw(st.sampled_from(VALID_CMDS)), draw(valid_controls(names)),
                          draw(st.booleans()))


@st.composite
def wrong_commands(draw: st.DrawFn, names: st.SearchStrategy[str] = symbol_names) -> bytes:
    """Structured but wrong: bad outer fields, bad arg, or a Control with one fault."""
    fault = draw(st.sampled_from(["control", "cmd_value", "cmd_type", "no_cmd", "no_arg",
                                  "arg_type", "arg_not_json", "arg_not_object"]))
    cmd = draw(st.sampled_from(VALID_CMDS))
    control = draw(valid_controls(names))
    outer: dict[str, Any] = {"cmd": cmd, "arg": json.dumps(control)}
    if fault == "control":
        outer["arg"] = json.dumps(draw(wrong_controls(names)))
    elif fault == "cmd_value":
        outer["cmd"] = draw(st.text(max_size=12).filter(lambda c: c not in VALID_CMDS))
    elif fault == "cmd_type":
        outer["cmd"] = draw(_not_a(str))
    elif fault == "no_cmd":
        del outer["cmd"]
    elif fault == "no_arg":
        del outer["arg"]
    elif fault == "arg_type":
        outer["arg"] = draw(_not_a(str, dict))
    elif fault == "arg_not_json":
        outer["arg"] = draw(st.text(max_size=30).filter(_not_json))
    else:
        outer["arg"] = json.dumps(draw(_not_a(dict)))
    return json.dumps(outer).encode()


def _not_json(text: str) -> bool:
    try:
        json.loads(text)
    except ValueError:
        return True
    return False


@st.composite
def truncated(draw: st.DrawFn, frames: st.SearchStrategy[bytes], min_size: int = 0) -> bytes:
    """A proper prefix of a frame that is one JSON object: never valid JSON."""
    frame = draw(frames)
    return frame[:draw(st.integers(min_value=min_size, max_value=len(frame) - 1))]


# -- function requests ----------------------------------------------------------------

FUNC_NAMES = ("Exec", "Validate", "IsAggregate")
func_meta = st.fixed_dictionaries(
    {},
    optional={"ruleId": st.text(max_size=8), "opId": st.text(max_size=8),
              "instanceId": st.integers(min_value=0, max_value=2**31),
              "funcId": st.integers(min_value=0, max_value=2**31)},
)


@st.composite
def valid_func_requests(draw: st.DrawFn) -> bytes:
    func = draw(st.sampled_from(FUNC_NAMES))
    if func == "Exec":
        args = draw(st.lists(json_values, max_size=3))
        arg: Any = [*args, json.dumps(draw(func_meta))]
    elif func == "Validate":
        arg = draw(st.lists(json_values, max_size=3) | st.none())
    else:
        arg = draw(json_values)  # eKuiper sends null; anything is ignored
    return json.dumps({"func": func, "arg": arg}).encode()


@st.composite
def wrong_func_requests(draw: st.DrawFn) -> bytes:
    """Structured but wrong FuncData: bad func, bad arg list, bad function context."""
    fault = draw(st.sampled_from([
        "no_func", "func_type", "func_value", "exec_arg_type", "exec_empty",
        "exec_meta_type", "exec_meta_not_json", "exec_meta_not_object", "exec_meta_fields",
        "exec_func_id", "validate_arg",
    ]))
    req: dict[str, Any] = {"func": "Exec"}
    if fault == "no_func":
        req = {"arg": draw(json_values)}
    elif fault == "func_type":
        req = {"func": draw(_not_a(str)), "arg": draw(json_values)}
    elif fault == "func_value":
        req = {"func": draw(st.text(max_size=12).filter(lambda f: f not in FUNC_NAMES)),
               "arg": draw(json_values)}
    elif fault == "exec_arg_type":
        req["arg"] = draw(_not_a(list))
    elif fault == "exec_empty":
        req["arg"] = []
    elif fault == "exec_meta_type":
        req["arg"] = [*draw(st.lists(json_values, max_size=2)), draw(_not_a(str))]
    elif fault == "exec_meta_not_json":
        req["arg"] = [draw(json_values), draw(st.text(max_size=30).filter(_not_json))]
    elif fault == "exec_meta_not_object":
        req["arg"] = [draw(json_values), json.dumps(draw(_not_a(dict)))]
    elif fault == "exec_meta_fields":
        key = draw(st.sampled_from(["ruleId", "opId", "instanceId"]))
        bad = draw(_not_a(int) if key == "instanceId" else _not_a(str))
        req["arg"] = [draw(json_values), json.dumps({key: bad})]
    elif fault == "exec_func_id":
        req["arg"] = [draw(json_values), json.dumps({"funcId": draw(_not_a(int))})]
    else:
        req = {"func": "Validate", "arg": draw(_not_a(list, type(None)))}
    return json.dumps(req).encode()


# -- huge values ----------------------------------------------------------------------

def huge_text(min_size: int, max_size: int) -> st.SearchStrategy[str]:
    """A long string built from a short drawn pattern (Hypothesis cannot draw MBs)."""
    def build(pattern: str, size: int) -> str:
        return (pattern * (size // len(pattern) + 1))[:size]
    return st.builds(build, st.text(min_size=1, max_size=4),
                     st.integers(min_value=min_size, max_value=max_size))
