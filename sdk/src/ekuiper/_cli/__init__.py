"""`ekuiper-plugin`, the command line (entry point ``ekuiper._cli:main``).

The commands and their parser live in :mod:`ekuiper._cli.commands`; the work of each in
the modules beside it (scaffold, validate, package, wheels, install, rest).
"""

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
