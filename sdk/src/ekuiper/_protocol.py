"""eKuiper's portable-plugin wire protocol, as pure functions.

No sockets and no threads live here: every function maps bytes to values or values to
bytes, so the whole protocol can be unit-tested and fuzzed without eKuiper.

Facts encoded here (read from eKuiper's Go runtime, v1.14 and v2.x):

* Commands arrive on the control channel as ``{"cmd": "start"|"stop", "arg": "<json>"}``
  where ``arg`` is a *string* holding the Control JSON.
* eKuiper 1.x sends the stream's DATASOURCE as ``dataSource``; 2.x omits it and puts it
  in ``config["datasource"]``.
* Every control reply other than ``ok`` is an error; eKuiper 2.2+ treats a reply that
  starts with ``h`` as a repeated handshake, so error replies never start with ``h``.
* Source frames are single JSON objects ``{"message": {...}, "meta": {...}|null}``.
* Function requests are ``{"func": "Exec"|"Validate"|"IsAggregate", "arg": ...}``; an
  ``Exec`` arg list ends with a string holding the FuncMeta JSON.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from types import MappingProxyType
from typing import Any, Final, Literal, NamedTuple

from ekuiper import _encoding, _kinds
from ekuiper.errors import ProtocolError

__all__ = [
    "ACK_OK",
    "CONTROL_OK",
    "HANDSHAKE",
    "Command",
    "Control",
    "ExecCaller",
    "FuncRequest",
    "Meta",
    "PluginArgs",
    "SymbolKind",
    "control_error_reply",
    "control_url",
    "decode_sink_rows",
    "encode_ack_error",
    "encode_func_reply",
    "encode_func_result",
    "encode_source_error_frame",
    "encode_source_frame",
    "function_url",
    "ipc_path",
    "parse_command",
    "parse_exec",
    "parse_func_request",
    "parse_other_func_request",
    "parse_plugin_args",
    "sink_ack_url",
    "symbol_data_url",
]

# eKuiper's pluginType names (see _kinds, the table of kinds).
SymbolKind = _kinds.Wire

HANDSHAKE: Final = b"handshake"
CONTROL_OK: Final = b"ok"
ACK_OK: Final = b"{}"


_NO_CONFIG: Mapping[str, Any] = MappingProxyType({})


# NamedTuples rather than dataclasses: `import dataclasses` (and the inspect module it
# pulls in) is a measurable part of a plugin's start-up time.
class Meta(NamedTuple):
    """Identifies one running instance of a symbol inside a rule."""

    rule_id: str
    op_id: str
    instance_id: int

    @property
    def is_empty(self) -> bool:
        """True for functions, whose start command carries no rule."""
        return not self.rule_id and not self.op_id


class Control(NamedTuple):
    """The payload of a start/stop command."""

    symbol_name: str
    kind: SymbolKind
    meta: Meta
    datasource: str = ""
    config: Mapping[str, Any] = _NO_CONFIG

    @property
    def key(self) -> tuple[str, str, int, str]:
        """Registry key: the same key for a symbol's start and its stop."""
        return (self.meta.rule_id, self.meta.op_id, self.meta.instance_id, self.symbol_name)

    @property
    def noun(self) -> str:
        """The kind as users say it: source, sink or function."""
        return _kinds.noun(self.kind)

    @property
    def label(self) -> str:
        """Human-readable name for logs and error messages."""
        if self.meta.is_empty:
            return f"{self.noun} {self.symbol_name!r}"
        return (
            f"{self.noun} {self.symbol_name!r} (rule {self.meta.rule_id!r}, "
            f"op {self.meta.op_id!r}, instance {self.meta.instance_id})"
        )


class Command(NamedTuple):
    """A control command: start or stop one symbol."""

    cmd: Literal["start", "stop"]
    control: Control


class ExecCaller(NamedTuple):
    """The SQL expression an Exec comes from; one object for all its calls (cached)."""

    meta: Meta  # rule_id, op_id, instance_id
    func_id: int
    # The context string all of the expression's calls send alike: a key hashed once.
    key: str


class FuncRequest(NamedTuple):
    """One request on a function channel."""

    func: Literal["Exec", "Validate", "IsAggregate"]
    args: list[Any]
    caller: ExecCaller | None = None  # Exec only


class PluginArgs(NamedTuple):
    """What eKuiper passes as the plugin's single command-line argument."""

    send_timeout_ms: int = 1000


def _loads(raw: bytes | str, what: str) -> Any:
    try:
        return _encoding.decode(raw)
    except RecursionError:
        raise ProtocolError(f"{what} is nested too deeply to decode") from None
    except (ValueError, UnicodeDecodeError) as exc:
        shown = raw[:200] if isinstance(raw, str) else raw[:200].decode("utf-8", "replace")
        raise ProtocolError(f"{what} is not valid JSON ({exc}): {shown!r}") from None


def _require(obj: Mapping[str, Any], key: str, typ: type | tuple[type, ...], what: str) -> Any:
    if key not in obj:
        raise ProtocolError(f"{what} lacks the {key!r} field: {dict(obj)!r:.200}")
    value = obj[key]
    # bool is an int subclass; a JSON true is never a valid instance id.
    if not isinstance(value, typ) or (typ is int and isinstance(value, bool)):
        raise ProtocolError(
            f"{what} field {key!r} must be {_type_name(typ)}, got {type(value).__name__}"
        )
    return value


def _type_name(typ: type | tuple[type, ...]) -> str:
    if isinstance(typ, tuple):
        return " or ".join(t.__name__ for t in typ)
    return typ.__name__


def _parse_meta(raw: Any, what: str) -> Meta:
    if raw is None:
        return Meta("", "", 0)
    if not isinstance(raw, dict):
        raise ProtocolError(f"{what} must be an object, got {type(raw).__name__}")
    rule_id = raw.get("ruleId", "")
    op_id = raw.get("opId", "")
    instance_id = raw.get("instanceId", 0)
    if not isinstance(rule_id, str) or not isinstance(op_id, str):
        raise ProtocolError(f"{what} ruleId and opId must be strings: {raw!r:.200}")
    if isinstance(instance_id, bool) or not isinstance(instance_id, int):
        raise ProtocolError(f"{what} instanceId must be an integer: {raw!r:.200}")
    return Meta(rule_id, op_id, instance_id)


def parse_command(raw: bytes) -> Command:
    """Parse one control-channel frame into a Command, or raise ProtocolError."""
    outer = _loads(raw, "control command")
    if not isinstance(outer, dict):
        raise ProtocolError(f"control command must be a JSON object, got {type(outer).__name__}")
    cmd = _require(outer, "cmd", str, "control command")
    if cmd not in ("start", "stop"):
        raise ProtocolError(f"unknown control command {cmd!r:.200}: expected 'start' or 'stop'")
    arg = _require(outer, "arg", (str, dict), "control command")
    inner = _loads(arg, "control command arg") if isinstance(arg, str) else arg
    if not isinstance(inner, dict):
        raise ProtocolError(f"control arg must be a JSON object, got {type(inner).__name__}")
    symbol = _require(inner, "symbolName", str, "control arg")
    if not symbol:
        raise ProtocolError("control arg has an empty symbolName")
    kind = _require(inner, "pluginType", str, "control arg")
    if kind not in _kinds.BY_WIRE:
        raise ProtocolError(
            f"unknown pluginType {kind!r:.200} for symbol {symbol!r:.200}: "
            f"expected one of {', '.join(_kinds.BY_WIRE)}"
        )
    meta = _parse_meta(inner.get("meta"), "control arg meta")
    config = inner.get("config") or {}
    if not isinstance(config, dict):
        raise ProtocolError(f"control arg config must be an object, got {type(config).__name__}")
    datasource = inner.get("dataSource") or config.get("datasource") or ""
    if not isinstance(datasource, str):
        raise ProtocolError(f"datasource must be a string, got {type(datasource).__name__}")
    control = Control(symbol, kind, meta, datasource, config)  # type: ignore[arg-type]
    return Command(cmd, control)  # type: ignore[arg-type]


def control_error_reply(message: str) -> bytes:
    """Encode an error reply for the control channel.

    eKuiper 2.2+ reads a reply starting with ``h`` as a repeated handshake (and resends
    the command), and any empty reply as an anonymous error, so neither is ever sent.
    """
    text = message.strip() or "unknown error in the plugin"
    if text[0] in "hH":
        text = "error: " + text
    return text.encode("utf-8", "replace")


def dumps(value: Any) -> bytes:
    """Encode a value as eKuiper expects JSON (UTF-8, no NaN/Infinity): see _encoding."""
    return _encoding.encode(value)


def encode_source_frame(message: Mapping[str, Any], meta: Mapping[str, Any] | None) -> bytes:
    """Encode one row for the source channel.

    A NamedTuple or dataclass instance is a row too (an object of its fields). Raises
    TypeError for any other message that is not a mapping (eKuiper rejects arrays and
    scalars) and ValueError/TypeError for values JSON cannot carry (see _encoding).
    """
    # `type() is dict` first: an ABC isinstance check costs more than the rest of the call.
    if type(message) is not dict and not isinstance(message, Mapping):
        record = _encoding.as_record(message)
        if record is None:
            raise TypeError(
                f"emit() takes a dict (one row) or a list of dicts, got {type(message).__name__}"
            )
        message = record
    if meta is not None and type(meta) is not dict and not isinstance(meta, Mapping):
        raise TypeError(f"emit() meta must be a dict or None, got {type(meta).__name__}")
    # An empty meta is the one null the frame is known to hold (see _encoding.encode).
    return _encoding.encode({"message": message, "meta": meta}, 1 if meta is None else 0)


# How a source error frame starts; ekuiper.testing tells such frames from rows by it.
SOURCE_ERROR_PREFIX = b"source error: "


def encode_source_error_frame(text: str) -> bytes:
    """Encode a frame that eKuiper counts as a source exception carrying ``text``.

    eKuiper 2.x decodes each frame into ``{message, meta}``; a frame that fails to decode
    is counted in the source's ``exceptions_total`` and shown as its ``last_exception``
    (the frame's text included), while ``{"error": ...}`` would become an empty row. So
    the error travels as a plain-text frame. eKuiper 1.x logs it and drops it.
    """
    return SOURCE_ERROR_PREFIX + text.encode("utf-8", "replace")


def encode_ack_error(text: str) -> bytes:
    """Encode a negative sink ack; eKuiper raises it as an IO error on the sink."""
    # Exception texts may hold lone surrogates, which strict UTF-8 cannot encode.
    clean = text.encode("utf-8", "replace").decode("utf-8")
    return _encoding.encode({"error": clean or "sink reported an error without a message"})


def decode_sink_rows(raw: bytes) -> list[dict[str, Any]]:
    """Decode a sink frame into rows, whatever ``sendSingle`` was.

    ``sendSingle: false`` (the default) gives a JSON array of rows, ``true`` one object.
    """
    value = _loads(raw, "sink data")
    if isinstance(value, dict):
        return [value]
    if isinstance(value, list) and all(isinstance(row, dict) for row in value):
        return value
    raise ProtocolError(
        "sink data is JSON but not a row or a list of rows; with a custom dataTemplate "
        "or format, leave decode_rows off and decode the bytes in collect()"
    )


# Every call from one SQL expression carries the same context string: it is read once.
# A dict, not functools.lru_cache, whose hit costs twice a get: each nanosecond before a
# reply costs the round trip several. Past the cap (context strings a hostile or broken
# peer made up) it starts over.
_callers: dict[str, ExecCaller] = {}
MAX_CALLERS: Final = 1024
# A context string longer than this (eKuiper's are some 80 characters) is read at each
# call and kept nowhere: neither here nor as a key of a function's contexts or metrics,
# so made-up megabyte-long ones cannot pin a gigabyte in caches of a thousand entries.
MAX_KEPT_CONTEXT_CHARS: Final = 4096


def _read_caller(text: str) -> ExecCaller:
    fmeta = _loads(text, "Exec function context")
    if not isinstance(fmeta, dict):
        raise ProtocolError("Exec function context must be a JSON object")
    meta = _parse_meta(fmeta, "Exec function context")
    func_id = fmeta.get("funcId", 0)
    if isinstance(func_id, bool) or not isinstance(func_id, int):
        raise ProtocolError("Exec function context funcId must be an integer")
    caller = ExecCaller(meta, func_id, text)
    if len(text) <= MAX_KEPT_CONTEXT_CHARS:
        if len(_callers) >= MAX_CALLERS:
            _callers.clear()
        _callers[text] = caller
    return caller


# Arguments no integer orjson rounded can be in (see _encoding.decode_loose).
_EXACT_ARG_TYPES: Final = frozenset({str, int, bool, type(None)})


def parse_exec(raw: bytes) -> tuple[list[Any], ExecCaller] | None:
    """A well-formed Exec's args and caller; None for any other request (which
    :func:`parse_func_request` reads); ProtocolError for a request that is no JSON or
    an Exec whose context is bad.

    Every call of a running rule comes this way, so it takes as few steps as it can,
    and gives a plain tuple (a FuncRequest would cost a tenth of the parse).
    """
    try:
        req = _encoding.decode_loose(raw)
    except (RecursionError, ValueError):
        req = _loads(raw, "function request")  # raises, naming what is wrong
    if type(req) is dict and req.get("func") == "Exec":
        arg = req.get("arg")
        if type(arg) is list and arg and type(arg[-1]) is str:
            for value in arg:
                # A float or a container may be an integer orjson rounded: scan for one.
                if type(value) not in _EXACT_ARG_TYPES:
                    if _encoding.loose_may_round(raw):
                        arg = _loads(raw, "function request")["arg"]  # read exactly
                    break
            text = arg.pop()
            return arg, _callers.get(text) or _read_caller(text)
    return None


def parse_func_request(raw: bytes) -> FuncRequest:
    """Parse one function-channel request, or raise ProtocolError."""
    call = parse_exec(raw)
    if call is not None:
        return FuncRequest("Exec", *call)
    return parse_other_func_request(raw)


def parse_other_func_request(raw: bytes) -> FuncRequest:
    """A request :func:`parse_exec` gave None for: Validate, IsAggregate, or ProtocolError
    saying what is wrong with it (read exactly: Validate's args keep their big ints)."""
    req = _loads(raw, "function request")
    if not isinstance(req, dict):
        raise ProtocolError(f"function request must be a JSON object, got {type(req).__name__}")
    func = _require(req, "func", str, "function request")
    arg = req.get("arg")
    if func == "Exec":
        if type(arg) is not list or not arg:
            raise ProtocolError(
                "Exec arg must be a list ending with the function context string"
            )
        raise ProtocolError(
            f"Exec arg must end with the function context string, got {type(arg[-1]).__name__}"
        )
    if func == "IsAggregate":
        return FuncRequest("IsAggregate", [])
    if func == "Validate":
        if arg is None:
            arg = []
        if not isinstance(arg, list):
            raise ProtocolError(f"Validate arg must be a list, got {type(arg).__name__}")
        return FuncRequest("Validate", arg)
    raise ProtocolError(
        f"unknown function call {func!r:.200}: expected Exec, Validate or IsAggregate"
    )


# A reply is ``{"state": <bool>, "result": <result>}``: the result is encoded alone
# between these (a third cheaper than encoding the dict).
_REPLY_TRUE: Final = b'{"state":true,"result":'
_REPLY_FALSE: Final = b'{"state":false,"result":'


def encode_func_result(result: Any) -> bytes:
    """Encode a successful function reply; raise TypeError/ValueError for a result JSON
    cannot carry (see encode_func_reply)."""
    return _REPLY_TRUE + _encoding.encode(result) + b"}"


def encode_func_reply(state: bool, result: Any) -> bytes:
    """Encode a function reply; a result JSON cannot carry becomes an error reply."""
    try:
        return (_REPLY_TRUE if state else _REPLY_FALSE) + _encoding.encode(result) + b"}"
    except (TypeError, ValueError) as exc:
        message = f"function result cannot be sent to eKuiper: {exc}"
        return _encoding.encode({"state": False, "result": message})


def parse_plugin_args(argv: list[str]) -> PluginArgs:
    """Read the JSON argument eKuiper passes to the plugin process (tolerates none)."""
    for arg in argv:
        try:
            value = json.loads(arg)
        except ValueError:
            continue
        if isinstance(value, dict):
            timeout = value.get("sendTimeout", 1000)
            if isinstance(timeout, (int, float)) and not isinstance(timeout, bool) and timeout > 0 \
                    and math.isfinite(timeout):
                return PluginArgs(max(1, math.ceil(timeout)))
    return PluginArgs()


_IPC_SCHEME: Final = "ipc://"
# What could take a socket path out of the IPC directory (or cut it short, for NUL).
_PATH_HAZARDS: Final = (("/", "'/'"), ("\x00", "a NUL character"), ("..", "'..'"))


def _name_part(field: str, value: str) -> str:
    """``value`` as one piece of a socket file name, or ProtocolError naming ``field``.

    eKuiper builds the paths from ids it is sent (rule and operator ids, symbol names);
    one holding ``/`` or ``..`` would bind, dial or replace a socket elsewhere.
    """
    for hazard, shown in _PATH_HAZARDS:
        if hazard in value:
            raise ProtocolError(
                f"{field} {value!r:.200} cannot name a socket file: it contains {shown}, "
                f"which could put the socket outside the IPC directory; use an id "
                f"without '/', '..' or NUL characters"
            )
    return value


def _ipc(ipc_dir: str, name: str) -> str:
    return f"{_IPC_SCHEME}{ipc_dir.rstrip('/') or ''}/{name}.ipc"


def _data_name(meta: Meta) -> str:
    rule = _name_part("rule id", meta.rule_id)
    op = _name_part("operator id", meta.op_id)
    return f"{rule}_{op}_{meta.instance_id}"


def control_url(ipc_dir: str, plugin_name: str) -> str:
    """Control channel: eKuiper's REP listens, the plugin dials."""
    return _ipc(ipc_dir, f"plugin_{_name_part('plugin name', plugin_name)}")


def function_url(ipc_dir: str, symbol_name: str) -> str:
    """Function channel: eKuiper's REP listens, the plugin dials."""
    return _ipc(ipc_dir, f"func_{_name_part('function name', symbol_name)}")


def symbol_data_url(ipc_dir: str, meta: Meta) -> str:
    """Source data (eKuiper listens) or sink data (the plugin listens)."""
    return _ipc(ipc_dir, _data_name(meta))


def sink_ack_url(ipc_dir: str, meta: Meta) -> str:
    """Sink acks: eKuiper's PULL listens, the plugin dials."""
    return _ipc(ipc_dir, _data_name(meta) + "_ack")


def ipc_path(url: str) -> str:
    """The socket file of an ``ipc://`` URL made by the helpers above."""
    if not url.startswith(_IPC_SCHEME):
        raise ValueError(f"{url!r} is not an ipc:// URL")
    return url[len(_IPC_SCHEME):]
