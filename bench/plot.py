"""Plot a results JSON as a PNG; run with the tools venv (it has matplotlib).

    bench/.work/tools/bin/python -m bench.plot bench/results/<date>.json bench/results/<date>.png
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import matplotlib  # type: ignore[import-not-found]

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # type: ignore[import-not-found]

COLORS = {"py": "#1f77b4", "official": "#ff7f0e", "go": "#2ca02c"}
SHORT = {
    "source": "source\n-> nop",
    "function": "function\nrevert()",
    "sink_single_ack": "sink\nsingle, ack",
    "sink_single_noack": "sink\nsingle, no ack",
    "sink_array_ack": "sink\narray, ack",
    "sink_array_noack": "sink\narray, no ack",
}


def _bars(ax: Any, groups: list[str], series: dict[str, dict[str, Any]],
          labels: dict[str, str]) -> None:
    tags = [t for t in ("py", "official", "go") if any(t in series[g] for g in groups)]
    width = 0.8 / max(len(tags), 1)
    for i, tag in enumerate(tags):
        xs, ys, lo, hi = [], [], [], []
        for j, group in enumerate(groups):
            s = series[group].get(tag)
            if not s:
                continue
            xs.append(j + (i - (len(tags) - 1) / 2) * width)
            ys.append(s["median"])
            lo.append(s["median"] - s["min"])
            hi.append(s["max"] - s["median"])
        ax.bar(xs, ys, width, yerr=[lo, hi], capsize=3, label=labels.get(tag, tag),
               color=COLORS.get(tag))
    ax.set_xticks(range(len(groups)))


def main(src: str, dest: str) -> int:
    results = json.loads(Path(src).read_text())
    labels = {tag: info["label"] for tag, info in results["sdks"].items()}
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(11, 9),
                                      gridspec_kw={"height_ratios": [3, 2]})
    groups = [g for g in SHORT if g in results["rates"]]
    _bars(top, groups, results["rates"], labels)
    top.set_xticklabels([SHORT[g] for g in groups])
    top.set_ylabel("per second (median; bars: min to max)")
    top.set_yscale("log")
    kuiperd = results.get("kuiperd", "v2.4.0")  # runs before 2026-12-01 did not record it
    top.set_title(f"eKuiper {kuiperd} portable plugins: rates by SDK ({results['date']}, "
                  f"{results['config']['reps']} reps)")
    top.legend(loc="upper center", ncol=3)
    top.set_ylim(top=top.get_ylim()[1] * 2.5)  # room for the legend
    top.grid(axis="y", alpha=0.3, which="both")

    micro = results.get("micro", {})
    shown = {"raw": ("raw Push0.send\n(pynng of this venv)", "#7f7f7f"),
             "sdk": ("this SDK\nctx.emit", COLORS["py"]),
             "raw_official": ("raw Push0.send\n(pynng of the official venv)", "#bbbbbb"),
             "official": ("official SDK\nctx.emit", COLORS["official"])}
    names = [v for v in shown if v in micro]
    ys = [micro[v]["median"] for v in names]
    err = [[micro[v]["median"] - micro[v]["min"] for v in names],
           [micro[v]["max"] - micro[v]["median"] for v in names]]
    bottom.bar(range(len(names)), ys, yerr=err, capsize=3, color=[shown[v][1] for v in names])
    bottom.set_xticks(range(len(names)))
    bottom.set_xticklabels([shown[v][0] for v in names])
    bottom.set_ylabel("emits/s")
    bottom.set_title("emit microbench without kuiperd (pynng Push0 -> Pull0 over IPC)")
    bottom.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    # No "Software" text chunk: it names matplotlib's web address.
    fig.savefig(dest, dpi=110, metadata={"Software": None})
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], sys.argv[2]))
