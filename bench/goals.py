#!/usr/bin/env python3
"""bench/goals.py: the issues' speed goals, read off one bench/run CSV.

    python3 bench/goals.py RESULTS.csv [OUT.md]

Each goal is a ratio of two cases' throughputs at one client count,
measured side by side in the same run: a case against its group's baseline
or against the write floor (the one-row durable INSERT, measured in the
case's own group where it has one, else in group peers).  The ratio judged
is the paired one (paired_vs_baseline, paired_vs_write_floor): the median
over the rounds of the ratio within each round, where both cases ran
minutes apart at most; the ratio of the two medians (vs_baseline,
vs_write_floor) is shown beside it, and is the one judged for a CSV
written before bench.py paired its rounds.  Prints a Markdown table (and
writes it to OUT.md when given): the goal, the clients, both ratios, the
target, whether it is met, and the spreads, which say how far the ratio
can be trusted: that of the paired ratios, and those of both cases'
throughputs.  A goal whose cases the run did not measure (a run of some
groups only) is left out, not counted as met.

After the goals, the bounds (BOUNDS): cases that are not product paths but
the least a product path writes, against the write floor, so that a goal
out of reach on the machine shows as such in the same run.

Exits 0 whatever the figures say: the goals are what the issues ask for,
reported, not a test (speed is never judged by a timed test here).
"""

import csv
import sys

# (issue, what, group, case, against, clients, target)
#   against: "baseline" (the group's first case) or "write" (the write floor)
GOALS = [
    (21, "hot pool reserve + confirm vs write floor", "hotpool",
     "10-lockctl_reserve_confirm", "write", (32, 64), 0.8),
    (21, "hot pool reserve + confirm vs single-row UPDATE", "hotpool",
     "10-lockctl_reserve_confirm", "baseline", (1,), 1.0),
    (21, "1000 pools reserve + confirm vs single-row UPDATE", "reserve",
     "10-lockctl_reserve_confirm", "baseline", (1, 8, 32), 1.0),
    (21, "waiting acquire hand-over vs advisory lock", "lease_handover",
     "10-lockctl_handover", "baseline", (8, 32), 0.9),
    (21, "update_versioned vs read-then-UPDATE", "version",
     "20-update_versioned", "baseline", (1, 8, 32), 0.95),
    (16, "UPDATE checked in WHERE vs plain UPDATE", "version_orm",
     "10-where_checked", "baseline", (1, 8, 32), 0.95),
    (16, "ORM-shaped SET version = $m vs plain UPDATE", "version_orm",
     "20-orm_shaped", "baseline", (1, 8, 32), 0.95),
    (16, "UPDATE through the version trigger vs plain", "version_statement",
     "10-trigger_update", "baseline", (1, 8, 32), 0.95),
    (18, "reserve_cart + confirm_cart vs three reserves", "cart",
     "10-reserve_cart", "baseline", (1, 8, 32), 0.8),
    (18, "reserve_range vs plain EXCLUDE insert", "calendar",
     "10-lockctl_reserve_range", "baseline", (1, 8, 32), 0.8),
    (18, "pool with max_per_holder vs without", "limits",
     "10-limited", "baseline", (1, 8, 32), 0.9),
    (19, "claim_request + complete_request vs ON CONFLICT", "requests",
     "10-lockctl_claim_complete", "baseline", (1, 8, 32), 0.8),
    (0, "fenced table UPDATE vs plain table", "fenced",
     "10-fenced_table_update", "baseline", (1, 8, 32), 0.9),
    (0, "acquire_all of four vs four advisory locks", "lease_all",
     "10-acquire_all", "baseline", (1, 8, 32), 0.5),
]

# Bounds, not goals: what bounds the product path while it writes
# lockctl's hold rows, measured beside it (same shape as GOALS, without a
# target).  A live hold's row alone is the one write every reserve makes;
# one confirmed row is a sale at the cost of one row of that shape
# (bench/README.md, "What bounds a sale").
BOUNDS = [
    (21, "the hold row alone (a live hold's INSERT) vs write floor", "hotpool",
     "30-hold_row_insert", "write", (32, 64), None),
    (21, "one confirmed row (INSERT) vs write floor", "hotpool",
     "40-confirmed_row_insert", "write", (32, 64), None),
]


def load(path):
    rows = {}
    with open(path, newline="") as f:
        for r in csv.DictReader(f):
            rows[(r["group"], r["case"], int(r["clients"]))] = r
    return rows


def fnum(value):
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def evaluate(rows, goals=GOALS):
    """The measured goals (or bounds), as dicts, in their list's order."""
    out = []
    for issue, what, group, case, against, clients, target in goals:
        for c in clients:
            r = rows.get((group, case, c))
            if r is None:
                continue
            if against == "write":
                medians = fnum(r["vs_write_floor"])
                paired = fnum(r.get("paired_vs_write_floor"))
                base = next((b for k, b in rows.items()
                             if k[0] == group and k[1].endswith("write_floor") and k[2] == c),
                            rows.get(("peers", "20-write_floor", c)))
                paired_spread = fnum(r.get("paired_write_spread_pct"))
            else:
                medians = fnum(r["vs_baseline"])
                paired = fnum(r.get("paired_vs_baseline"))
                base = rows.get((group, r["baseline"], c))
                paired_spread = fnum(r.get("paired_spread_pct"))
            ratio = paired if paired is not None else medians
            if ratio is None or int(r.get("failed") or 0) > 0:
                ratio = None
            out.append({
                "issue": issue, "what": what, "clients": c, "ratio": ratio,
                "medians": medians, "paired_spread": paired_spread,
                "target": target,
                "met": (ratio is not None and target is not None
                        and ratio >= target),
                "spread": fnum(r["spread_pct"]),
                "base_spread": fnum(base["spread_pct"]) if base else None,
            })
    return out


def markdown(results, bounds=()):
    lines = [
        "| Issue | Goal | Clients | Ratio (paired) | Of medians | Target | Met "
        "| Spreads (paired / case / against) |",
        "|---|---|---:|---:|---:|---:|---|---|",
    ]

    def pct(v):
        return "-" if v is None else "%.0f%%" % v

    for g in results:
        ratio = "failed" if g["ratio"] is None else "%.2f" % g["ratio"]
        spreads = "%s / %s / %s" % (pct(g["paired_spread"]), pct(g["spread"]),
                                    pct(g["base_spread"]))
        lines.append("| %s | %s | %d | %s | %s | %.2f | %s | %s |" % (
            "#%d" % g["issue"] if g["issue"] else "-", g["what"], g["clients"],
            ratio, "-" if g["medians"] is None else "%.2f" % g["medians"],
            g["target"], "yes" if g["met"] else "**no**", spreads))
    met = sum(1 for g in results if g["met"])
    lines.append("")
    lines.append("%d of %d goals met." % (met, len(results)))
    if bounds:
        lines += [
            "",
            "Bounds, not goals (what a sale cannot beat, in the same run):",
            "",
            "| Issue | Bound | Clients | Ratio (paired) | Of medians "
            "| Spreads (paired / case / against) |",
            "|---|---|---:|---:|---:|---|",
        ]
        for g in bounds:
            ratio = "failed" if g["ratio"] is None else "%.2f" % g["ratio"]
            lines.append("| #%d | %s | %d | %s | %s | %s / %s / %s |" % (
                g["issue"], g["what"], g["clients"], ratio,
                "-" if g["medians"] is None else "%.2f" % g["medians"],
                pct(g["paired_spread"]), pct(g["spread"]), pct(g["base_spread"])))
    return "\n".join(lines) + "\n"


def main(argv):
    if len(argv) not in (2, 3):
        sys.stderr.write("usage: bench/goals.py RESULTS.csv [OUT.md]\n")
        return 2
    rows = load(argv[1])
    text = markdown(evaluate(rows), evaluate(rows, BOUNDS))
    sys.stdout.write(text)
    if len(argv) == 3:
        with open(argv[2], "w") as f:
            f.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
