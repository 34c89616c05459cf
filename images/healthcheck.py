"""The image's HEALTHCHECK: eKuiper's REST answers and, opted in, every plugin is healthy.

    healthcheck.py URL

Exit 0 when ``URL`` (eKuiper's REST root) answers. With EKUIPER_PLUGIN_METRICS_DIR set
(plugins export their health there) and EKUIPER_HEALTHCHECK_PLUGINS=1, each plugin whose
socket answers must also answer /health with 200; a socket nobody listens on any more is
skipped (its plugin was killed and eKuiper restarts it on next use), while one that takes
the connection but does not answer in time is a failure (the plugin is frozen). Exit 1
otherwise, with one line per failure on stderr (Docker keeps it in the container's health
log). All checks share one DEADLINE_S, under the image's HEALTHCHECK --timeout=3s.
"""

from __future__ import annotations

import os
import sys
import time
import urllib.request
from pathlib import Path

DIR_ENV = "EKUIPER_PLUGIN_METRICS_DIR"
PLUGINS_ENV = "EKUIPER_HEALTHCHECK_PLUGINS"
# Every check together, REST and plugins: Docker kills the check at 3 s.
DEADLINE_S = 2.5


def plugin_failures(directory: Path, deadline: float | None = None) -> list[str]:
    """One line per live plugin whose /health is not 200 by ``deadline`` (monotonic)."""
    from ekuiper._cli.health import HealthUnavailable, NotAnswering, fetch

    if deadline is None:
        deadline = time.monotonic() + DEADLINE_S
    failures = []
    for sock in sorted(directory.glob("*.sock")):
        left = deadline - time.monotonic()
        if left <= 0:
            failures.append(f"plugin {sock.stem} not checked: the healthcheck ran out of "
                            f"its {DEADLINE_S:g} s")
            continue
        try:
            status, body = fetch(sock, "/health", timeout=left)
        except NotAnswering as exc:
            failures.append(f"plugin {sock.stem} is unhealthy: {exc}")
            continue
        except HealthUnavailable:
            continue
        if status != 200:
            failures.append(f"plugin {sock.stem} is unhealthy: {body.decode()[:300]}")
    return failures


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print("usage: healthcheck.py URL", file=sys.stderr)
        return 2
    deadline = time.monotonic() + DEADLINE_S
    try:
        urllib.request.urlopen(argv[1], timeout=2).close()
    except OSError as exc:
        print(f"eKuiper REST {argv[1]} does not answer: {exc}", file=sys.stderr)
        return 1
    directory = os.environ.get(DIR_ENV, "").strip()
    wanted = os.environ.get(PLUGINS_ENV, "0").strip().lower()
    if wanted not in ("0", "1", "false", "true", ""):
        print(f"{PLUGINS_ENV}={wanted!r} must be 0 or 1; checking eKuiper alone",
              file=sys.stderr)
        return 0
    if not directory or wanted not in ("1", "true"):
        return 0
    failures = plugin_failures(Path(directory), deadline)
    for failure in failures:
        print(failure, file=sys.stderr)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
