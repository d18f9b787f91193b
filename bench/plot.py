"""Plots bench/run.sh's results: throughput and p99 latency against concurrency.

    python3 bench/plot.py --out_dir=/tmp/coalesce-bench-... [--title=...] [--output=bench.png]

Reads <out_dir>/summary.csv (one row per configuration and closed-loop level, written by
bench/run.sh) and writes a PNG with two panels sharing the concurrency axis (log scale):
requests/s (one sample each, so also samples/s) and p99 latency in ms. The model ceiling has no
request latency, so it appears only in the throughput panel, dashed; the open-loop row is noted in
the title of the latency panel. Needs matplotlib only (Debian python3-matplotlib, or pip).
"""

import argparse
import csv
import os
import sys

import matplotlib

matplotlib.use("Agg")  # no display on benchmark hosts
import matplotlib.pyplot as plt  # noqa: E402  (after choosing the backend)

# Drawing order and style; configurations not in the CSV are skipped.
STYLES = [
    ("coalesce", dict(color="tab:blue", marker="o", linewidth=2.2)),
    ("unbatched", dict(color="tab:orange", marker="s")),
    ("echo", dict(color="tab:gray", marker="^", linestyle=":")),
    ("model", dict(color="tab:green", marker="v", linestyle="--")),
    ("python", dict(color="tab:red", marker="D")),
    ("python-unbatched", dict(color="tab:purple", marker="x")),
]
LABELS = {
    "echo": "echo ceiling",
    "model": "model ceiling (at coalesce's batch)",
    "python": "python peer",
    "python-unbatched": "python peer, unbatched",
}


def number(text):
    try:
        return float(text)
    except (TypeError, ValueError):
        return None


def read_summary(path):
    """{config: [(level, req_s, p99_ms), ...] sorted by level} and the open-loop row or None."""
    series, open_loop = {}, None
    with open(path, newline="") as f:
        for row in csv.DictReader(f):
            if row["config"] == "coalesce-open":
                open_loop = row
                continue
            level, rate = number(row["level"]), number(row["requests_per_s"])
            if level is None or rate is None:
                continue
            series.setdefault(row["config"], []).append((level, rate, number(row["p99_ms"])))
    for points in series.values():
        points.sort()
    return series, open_loop


def plot(series, open_loop, title, output):
    fig, (ax_rate, ax_p99) = plt.subplots(1, 2, figsize=(13, 5))
    for config, style in STYLES:
        if config not in series:
            continue
        points = series[config]
        label = LABELS.get(config, config)
        ax_rate.plot([p[0] for p in points], [p[1] for p in points], label=label, **style)
        latency = [(p[0], p[2]) for p in points if p[2] is not None]
        if latency:
            ax_p99.plot([p[0] for p in latency], [p[1] for p in latency], label=label, **style)
    levels = sorted({p[0] for points in series.values() for p in points})
    for ax in (ax_rate, ax_p99):
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        ax.set_xticks(levels)
        ax.set_xticklabels(["%g" % level for level in levels])
        ax.set_xlabel("concurrency (outstanding single-sample requests)")
        ax.grid(True, which="both", alpha=0.3)
    ax_rate.set_ylabel("requests/s (= samples/s)")
    ax_rate.set_title("throughput")
    ax_p99.set_ylabel("p99 latency (ms)")
    latency_title = "p99 latency"
    if open_loop is not None and number(open_loop.get("p99_ms")) is not None:
        latency_title += " (coalesce open loop at %.0f req/s: p99 %.2f ms)" % (
            number(open_loop["level"]), number(open_loop["p99_ms"]))
    ax_p99.set_title(latency_title, fontsize=10)
    ax_rate.legend(fontsize=8)
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(output, dpi=120)


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--out_dir", required=True, help="bench/run.sh's output folder")
    p.add_argument("--title", default="coalesce bench", help="figure title")
    p.add_argument("--output", default="", help="PNG path (default <out_dir>/bench.png)")
    args = p.parse_args()
    summary = os.path.join(args.out_dir, "summary.csv")
    if not os.path.exists(summary):
        sys.exit("no %s: run bench/run.sh first" % summary)
    series, open_loop = read_summary(summary)
    if not series:
        sys.exit("%s has no closed-loop rows" % summary)
    output = args.output or os.path.join(args.out_dir, "bench.png")
    plot(series, open_loop, args.title, output)
    print(output)
    return 0


if __name__ == "__main__":
    sys.exit(main())
