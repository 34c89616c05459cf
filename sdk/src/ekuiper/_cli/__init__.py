"""`ekuiper-plugin`, the command line (entry point ``ekuiper._cli:main``).

The commands and their parser live in :mod:`ekuiper._cli.commands`; the work of each in
the modules beside it (scaffold, validate, package, wheels, install, rest, health).
The names below load :mod:`ekuiper._cli.commands` on first use, so importing a light
module of this package (the image's healthcheck imports ``ekuiper._cli.health`` every few
seconds) does not import every command.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ekuiper._cli.commands import (
        DEFAULT_SERVER,
        CliError,
        build_parser,
        cmd_install,
        cmd_list,
        cmd_metadata,
        cmd_new,
        cmd_package,
        cmd_remove,
        cmd_run,
        cmd_state,
        cmd_status,
        cmd_validate,
        main,
        progress,
    )

__all__ = [
    "DEFAULT_SERVER",
    "CliError",
    "build_parser",
    "cmd_install",
    "cmd_list",
    "cmd_metadata",
    "cmd_new",
    "cmd_package",
    "cmd_remove",
    "cmd_run",
    "cmd_state",
    "cmd_status",
    "cmd_validate",
    "main",
    "progress",
]


def __getattr__(name: str) -> Any:
    if name in __all__:
        return getattr(importlib.import_module("ekuiper._cli.commands"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
