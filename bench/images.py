"""Image figures: size per architecture and time from `docker compose up` to the first demo row.

``make bench-images`` (= ``.venv/bin/python -m bench.images``) builds the image for each
platform (``make image PLATFORM=...``; the native one is the baseline, a foreign one runs
under qemu-user-static), then, ``--reps`` times per platform, interleaved, brings the
compose stack up on a fresh volume and times until the demo rule's first reversed row
is in eKuiper's log. Figures are reported as ratios to the native image of the same run.
Writes ``bench/results/<date>-images.json``. Not part of ``make test``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import statistics
import subprocess
import sys
import time
from typing import Any

from bench.env import REPO, log
from bench.report import series, without_urls
from tests.e2e.kuiper import DEFAULT_VERSION, free_port

RESULTS = REPO / "bench" / "results"
DEMO_ROW = '"reversed":"nosjyp"'


def native_platform() -> str:
    return subprocess.run([str(REPO / "scripts" / "platform.sh")], check=True,
                          capture_output=True, text=True).stdout.strip()


def image_tag(platform: str) -> str:
    return f"ekuiper-slim-python:bench-{platform.split('/')[1]}"


def build(platform: str) -> dict[str, Any]:
    """Build the image for ``platform``; its tag, build seconds and size in bytes."""
    tag = image_tag(platform)
    started = time.monotonic()
    subprocess.run(["make", "--no-print-directory", "image", f"PLATFORM={platform}",
                    f"IMAGE={tag}"], cwd=REPO, check=True, capture_output=True, text=True)
    seconds = time.monotonic() - started
    size = int(subprocess.run(["docker", "image", "inspect", "-f", "{{.Size}}", tag],
                              check=True, capture_output=True, text=True).stdout)
    return {"image": tag, "build_s": seconds, "size_bytes": size}


def time_to_first_row(platform: str, timeout_s: float = 600.0) -> float:
    """Seconds from `docker compose up -d` to the first demo row in the log."""
    project = f"ekuiperbenchimg{os.getpid()}"
    compose = ["docker", "compose", "-f", str(REPO / "compose.yaml"), "-p", project]
    env = {**os.environ, "SLIM_PYTHON_IMAGE": image_tag(platform),
           "EKUIPER_REST_PORT": str(free_port()), "EKUIPER_PLUGINS_DIR": str(REPO / "plugins")}
    started = time.monotonic()
    try:
        subprocess.run([*compose, "up", "-d"], check=True, capture_output=True, env=env)
        while time.monotonic() - started < timeout_s:
            logs = subprocess.run([*compose, "logs", "ekuiper"], capture_output=True,
                                  text=True, env=env).stdout
            if DEMO_ROW in logs:
                return time.monotonic() - started
            time.sleep(0.25)
        raise TimeoutError(f"no demo row from the {platform} image within {timeout_s:.0f} s")
    finally:
        subprocess.run([*compose, "down", "-v"], capture_output=True, env=env)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--platforms", default=f"{native_platform()},linux/arm64",
                        help="comma-separated; the first is the baseline")
    parser.add_argument("--reps", type=int, default=3)
    args = parser.parse_args(argv)
    platforms = args.platforms.split(",")
    results: dict[str, Any] = {"date": dt.date.today().isoformat(), "kuiperd": DEFAULT_VERSION,
                               "baseline": platforms[0], "platforms": {}}
    for platform in platforms:
        log(f"building the {platform} image")
        results["platforms"][platform] = build(platform)
    for rep in range(args.reps):
        for platform in platforms:
            seconds = time_to_first_row(platform)
            log(f"rep {rep + 1}: {platform} first demo row after {seconds:.1f} s")
            results["platforms"][platform].setdefault("first_row_s", []).append(seconds)
    base = results["platforms"][platforms[0]]
    base_first = statistics.median(base["first_row_s"])
    for figures in results["platforms"].values():
        figures["first_row_s"] = series(figures["first_row_s"])
        figures["size_vs_baseline"] = figures["size_bytes"] / base["size_bytes"]
        figures["first_row_vs_baseline"] = figures["first_row_s"]["median"] / base_first
        subprocess.run(["docker", "image", "rm", figures["image"]], capture_output=True)
    RESULTS.mkdir(parents=True, exist_ok=True)
    out = RESULTS / f"{results['date']}-images.json"
    out.write_text(json.dumps(without_urls(results), indent=1) + "\n")
    log(f"wrote {out.relative_to(REPO)}")
    for platform, figures in results["platforms"].items():
        log(f"{platform}: {figures['size_bytes'] / 1e6:.0f} MB "
            f"({figures['size_vs_baseline']:.2f}x), first row "
            f"{figures['first_row_s']['median']:.1f} s "
            f"({figures['first_row_vs_baseline']:.2f}x)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
