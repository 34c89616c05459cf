"""`ekuiper-plugin new`: a ready-to-run plugin folder."""

from __future__ import annotations

import json
import sys
from importlib.machinery import FrozenImporter
from pathlib import Path

from ekuiper._cli.validate import NAME_RE
from ekuiper._kinds import FUNCTION, KINDS, SINK, SOURCE

__all__ = ["check_names", "new_plugin"]

# The main program is <name>.py and Python puts its folder first on sys.path, so a plugin
# named after a module it imports (directly or through the SDK) would import itself.
# Built-in and frozen modules are found before sys.path, so cannot be hidden that way.
# Lower case: macOS file names ignore case.
_SHADOWED = {m.lower() for m in {*getattr(sys, "stdlib_module_names", ()), "ekuiper", "pynng",
                                 "symbols"} - set(sys.builtin_module_names)
             if FrozenImporter.find_spec(m) is None}


def _camel(name: str) -> str:
    return "".join(part[:1].upper() + part[1:] for part in name.split("_") if part)


def _write_json(path: Path, value: object) -> None:
    path.write_text(json.dumps(value, indent=2) + "\n")


def _about(description: str) -> dict[str, object]:
    return {"trial": True, "author": {"name": "", "email": "", "company": "", "website": ""},
            "description": {"en_US": description}, "helpUrl": {"en_US": ""}}


_MAIN = '''"""{name}: the plugin's main program; eKuiper starts it."""

from ekuiper import PluginConfig, plugin
from symbols import {imports}

if __name__ == "__main__":
    plugin.start(PluginConfig(
        "{name}",
        {{{sources}}},
        {{{sinks}}},
        {{{functions}}},
    ))
'''

_SOURCE = '''

class {cls}(Source):
    """Emits {{"seq": n, "datasource": ...}} every `interval` seconds."""

    def configure(self, datasource: str, conf: dict) -> None:
        self.datasource = datasource
        self.interval = float(conf.get("interval", 1.0))
        self.stopped = threading.Event()

    def open(self, ctx: Context) -> None:
        ctx.get_logger().info("%s open, datasource %r", "{symbol}", self.datasource)
        seq = 0
        while not self.stopped.is_set():
            seq += 1
            ctx.emit({{"seq": seq, "datasource": self.datasource}})
            self.stopped.wait(self.interval)

    def close(self, ctx: Context) -> None:
        self.stopped.set()
'''

_SINK = '''

class {cls}(Sink):
    """Logs every row it receives."""

    decode_rows = True  # collect() gets a list of dicts, whatever sendSingle is

    def collect(self, ctx: Context, data: Any) -> None:
        for row in data:
            ctx.get_logger().info("%s got %s", "{symbol}", row)
'''

_FUNCTION = '''

class {cls}(Function):
    """{symbol}(text) returns the text in upper case."""

    def validate(self, args: List[Any]) -> str:
        return "" if len(args) == 1 else "{symbol} takes one argument"

    def exec(self, args: List[Any], ctx: Context) -> Any:
        return str(args[0]).upper()
'''

_TEST = '''"""Tests of {name}, with ekuiper.testing (run: python -m pytest tests)."""

import sys
from pathlib import Path

from ekuiper.testing import PluginHost, call_function, run_sink, run_source

PLUGIN = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(PLUGIN))

from symbols import {imports}  # noqa: E402
{tests}

def test_plugin_process_starts() -> None:
    """The main program starts and serves its symbols as eKuiper would run it."""
    with PluginHost(PLUGIN) as host:
        assert host.log is not None
'''

_TEST_SOURCE = '''

def test_{symbol}_emits_rows() -> None:
    run = run_source({cls}(), datasource="demo", conf={{"interval": 0.01}}, count=2)
    assert run.rows[:2] == [{{"seq": 1, "datasource": "demo"}}, {{"seq": 2, "datasource": "demo"}}]
'''

_TEST_SINK = '''

def test_{symbol}_acks_rows() -> None:
    assert run_sink({cls}(), [{{"a": 1}}], require_ack=True).acks == [{{}}]
'''

_TEST_FUNCTION = '''

def test_{symbol}_upper_cases() -> None:
    assert call_function({cls}(), "abc") == "ABC"
'''


def check_names(name: str, sources: list[str], sinks: list[str], functions: list[str]) -> None:
    """Raise ValueError, saying what to change, unless the names make a working plugin."""
    if not NAME_RE.match(name):
        raise ValueError(f"plugin name {name!r} must be letters, digits and underscores")
    if name.lower() in _SHADOWED:
        raise ValueError(f"plugin name {name!r} is the name of a Python module, which the "
                         f"main program {name}.py would hide from the plugin and the SDK; "
                         f"pick another, e.g. {name}_plugin")
    for kind, symbols in zip(KINDS, (sources, sinks, functions)):
        classes: dict[str, str] = {}
        for symbol in symbols:
            if not NAME_RE.match(symbol):
                raise ValueError(f"symbol name {symbol!r} must be letters, digits and "
                                 "underscores")
            if symbol in classes.values():
                raise ValueError(f"{kind.noun} {symbol!r} is given twice; give it once")
            other = classes.setdefault(_camel(symbol), symbol)
            if other != symbol:
                raise ValueError(f"{kind.plural} {other!r} and {symbol!r} would get the same "
                                 "class name; rename one")


def new_plugin(parent: Path, name: str, sources: list[str], sinks: list[str],
               functions: list[str]) -> Path:
    """Create ``parent/name`` with descriptor, main program, symbols, metadata and a test.

    Raises ValueError for names that would not make a working plugin (see check_names),
    FileExistsError if the folder exists.
    """
    check_names(name, sources, sinks, functions)
    folder = parent / name
    if folder.exists():
        raise FileExistsError(f"{folder} already exists; pick another name or remove it")
    by_kind = dict(zip(KINDS, (sources, sinks, functions)))
    # Each class is named after the base class it extends: PyjsonSource(Source).
    src_cls = {s: f"{_camel(s)}{SOURCE.base.__name__}" for s in sources}
    sink_cls = {s: f"{_camel(s)}{SINK.base.__name__}" for s in sinks}
    fn_cls = {s: f"{_camel(s)}{FUNCTION.base.__name__}" for s in functions}
    imports = ", ".join(sorted({*src_cls.values(), *sink_cls.values(), *fn_cls.values()}))

    for sub in ("", *(kind.plural for kind in KINDS), "tests"):
        (folder / sub).mkdir(parents=True, exist_ok=True)

    descriptor = {"version": "v0.1.0", "language": "python", "executable": f"{name}.py",
                  **{kind.plural: symbols for kind, symbols in by_kind.items()}}
    (folder / f"{name}.json").write_text(json.dumps(descriptor, indent=2) + "\n")

    def entries(mapping: dict[str, str]) -> str:
        return ", ".join(f'"{s}": {c}' for s, c in mapping.items())

    (folder / f"{name}.py").write_text(_MAIN.format(
        name=name, imports=imports, sources=entries(src_cls), sinks=entries(sink_cls),
        functions=entries(fn_cls)))

    base = sorted({"Context", *(kind.base.__name__ for kind, symbols in by_kind.items()
                                if symbols)})
    header = f'"""The symbols of {name}."""\n\n'
    header += "import threading\n" if sources else ""
    header += "from typing import Any, List\n\n" if (sinks or functions) else "\n"
    header += f"from ekuiper import {', '.join(base)}\n"
    body = "".join(_SOURCE.format(cls=c, symbol=s) for s, c in src_cls.items())
    body += "".join(_SINK.format(cls=c, symbol=s) for s, c in sink_cls.items())
    body += "".join(_FUNCTION.format(cls=c, symbol=s) for s, c in fn_cls.items())
    (folder / "symbols.py").write_text(header + body)

    for s in sources:
        (folder / SOURCE.plural / f"{s}.yaml").write_text("default:\n  interval: 1.0\n")
        meta: dict[str, object] = {"about": _about(f"The {s} source."), "libs": [],
                "properties": {"default": [{"name": "interval", "default": 1.0,
                                            "optional": True, "control": "text",
                                            "type": "float",
                                            "hint": {"en_US": "Seconds between rows."},
                                            "label": {"en_US": "Interval"}}]},
                "node": {"category": "source", "icon": "iconPath", "label": {"en_US": s}}}
        _write_json(folder / SOURCE.plural / f"{s}.json", meta)
    for s in sinks:
        meta = {"about": _about(f"The {s} sink."), "libs": [], "properties": [],
                "node": {"category": "sink", "icon": "iconPath", "label": {"en_US": s}}}
        _write_json(folder / SINK.plural / f"{s}.json", meta)
    for s in functions:
        _write_json(folder / FUNCTION.plural / f"{s}.json", {
                "about": _about(f"The {s} function."), "libs": [],
                "functions": [{"name": s, "example": f"{s}(col)",
                               "hint": {"en_US": "Upper-cases its argument."},
                               "args": [{"name": "value", "optional": False,
                                         "control": "field", "type": "string",
                                         "hint": {"en_US": "Text"},
                                         "label": {"en_US": "Value"}}],
                               "return": {"type": "string", "hint": {"en_US": "Upper case"}},
                               "node": {"category": "function", "icon": "iconPath",
                                        "label": {"en_US": s}}}]})

    tests = "".join(_TEST_SOURCE.format(symbol=s, cls=c) for s, c in src_cls.items())
    tests += "".join(_TEST_SINK.format(symbol=s, cls=c) for s, c in sink_cls.items())
    tests += "".join(_TEST_FUNCTION.format(symbol=s, cls=c) for s, c in fn_cls.items())
    (folder / "tests" / f"test_{name}.py").write_text(
        _TEST.format(name=name, imports=imports, tests=tests))
    (folder / "requirements.txt").write_text(
        "# Python packages this plugin needs, one per line (installed by install.sh,\n"
        "# which `ekuiper-plugin package` generates when this file lists any).\n")
    return folder
