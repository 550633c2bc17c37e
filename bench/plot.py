#!/usr/bin/env python3
"""Plot a bench/run CSV: one PNG per group, throughput against clients.

    python3 bench/plot.py RESULTS.csv [PREFIX]

writes PREFIX-<group>.png (PREFIX defaults to the CSV's name without .csv):
one line per case (median TPS over the rounds; the legend gives each case's
largest spread, as the CSV keeps no per-round figures), and the two floors of the same run drawn dashed: SELECT 1
(a round trip) and a one-row INSERT transaction (one durable commit).
Needs Debian's python3-matplotlib (scripts/lib.sh installs it).
"""
import csv
import os
import sys

import matplotlib
matplotlib.use("Agg")  # no display: files only
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.ticker import FuncFormatter, LogLocator  # noqa: E402

FLOORS = [("00-select1", "floor: SELECT 1"),
          ("20-write_floor", "floor: one-row INSERT transaction")]


def main():
    if len(sys.argv) not in (2, 3):
        sys.exit(__doc__)
    path = sys.argv[1]
    prefix = sys.argv[2] if len(sys.argv) == 3 else path[:-4] if path.endswith(".csv") else path
    with open(path) as f:
        rows = [r for r in csv.DictReader(f) if r["median_tps"] != ""]
    groups = []
    for r in rows:
        if r["group"] not in groups:
            groups.append(r["group"])
    floors = {name: {int(r["clients"]): float(r["median_tps"]) for r in rows
                     if r["group"] == "peers" and r["case"] == name}
              for name, _ in FLOORS}
    for g in groups:
        fig, ax = plt.subplots(figsize=(8, 5))
        cases = []
        for r in rows:
            if r["group"] == g and r["case"] not in cases:
                cases.append(r["case"])
        clients_seen = set()
        for case in cases:
            pts = sorted((int(r["clients"]), float(r["median_tps"]), r["label"], r["spread_pct"])
                         for r in rows if r["group"] == g and r["case"] == case)
            if g == "peers" and case in floors:
                continue  # drawn below as floors
            xs = [p[0] for p in pts]
            clients_seen.update(xs)
            spread = max(float(p[3] or 0) for p in pts)
            ax.plot(xs, [p[1] for p in pts], marker="o",
                    label="%s (spread up to %.0f%%)" % (pts[0][2], spread))
        for name, label in FLOORS:
            pts = sorted(floors[name].items())
            if g != "peers":
                pts = [p for p in pts if p[0] in clients_seen] or pts
            if pts:
                ax.plot([p[0] for p in pts], [p[1] for p in pts], linestyle="--",
                        color="grey" if name == "00-select1" else "black", label=label)
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        # Plain numbers at 1, 2 and 5 of each decade: a log axis with only
        # powers of ten labelled is unreadable over the range a bench spans.
        ax.yaxis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
        ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: "%g" % v))
        ax.yaxis.set_minor_formatter(FuncFormatter(lambda v, _: ""))
        ax.set_xlabel("clients")
        ax.set_ylabel("transactions per second (median of rounds)")
        ax.set_title("lockctl bench: %s" % g)
        ticks = sorted(clients_seen | {c for f in floors.values() for c in f} if g == "peers" else clients_seen)
        ax.set_xticks(ticks)
        ax.set_xticklabels([str(t) for t in ticks])
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=8, loc="best")
        fig.tight_layout()
        out = "%s-%s.png" % (prefix, g)
        fig.savefig(out, dpi=80)
        plt.close(fig)
        print(out)


if __name__ == "__main__":
    main()
