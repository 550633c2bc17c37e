#!/usr/bin/env python3
"""Run lockctl's pgbench cases side by side and report medians and ratios.

Called by bench/run, which starts the server and sets PGHOST/PGPORT/...;
see bench/README.md for the layout of bench/cases/.
"""
import argparse
import csv
import os
import re
import statistics
import subprocess
import sys
import time


def cases_of(group_dir):
    """The pgbench scripts of a group, baseline (first by name) first."""
    out = []
    for name in sorted(os.listdir(group_dir)):
        if not name.endswith(".sql") or name == "setup.sql":
            continue
        path = os.path.join(group_dir, name)
        with open(path) as f:
            first = f.readline().strip()
        m = re.match(r"--\s*label:\s*(.+)", first)
        out.append((name[:-4], m.group(1) if m else name[:-4], path))
    return out


def server_settings(path):
    """The "-- server: name = value" lines at the top of a case: settings of
    the server (ALTER SYSTEM) that the case runs with and then resets."""
    out = []
    with open(path) as f:
        for line in f:
            if not line.startswith("--"):
                break
            m = re.match(r"--\s*server:\s*([a-z_.]+)\s*=\s*(\S+)", line)
            if m:
                out.append((m.group(1), m.group(2)))
    return out


def psql_c(pgbin, sql):
    r = subprocess.run([os.path.join(pgbin, "psql"), "-X", "-q", "-At", "-c", sql],
                       check=True, capture_output=True, text=True)
    return r.stdout.strip()


def apply_settings(pgbin, settings, reset=False):
    """ALTER SYSTEM SET (or RESET) each setting, reload, and wait until a new
    session sees the value (the postmaster reloads asynchronously)."""
    for name, value in settings:
        psql_c(pgbin, "ALTER SYSTEM %s %s%s" % ("RESET" if reset else "SET", name,
                                                 "" if reset else " = '%s'" % value))
    if not settings:
        return
    psql_c(pgbin, "SELECT pg_reload_conf()")
    for name, value in settings:
        want = None if reset else value
        for _ in range(100):
            got = psql_c(pgbin, "SELECT current_setting('%s') = coalesce(%s, "
                         "(SELECT boot_val FROM pg_settings WHERE name = '%s'))"
                         % (name, "'%s'" % want if want else "NULL", name))
            if got == "t":
                break
            time.sleep(0.05)
        else:
            sys.exit("the server did not take %s = %s" % (name, want))


def clients_of(group_dir, override):
    if override:
        return [int(c) for c in override.split()]
    path = os.path.join(group_dir, "clients")
    if os.path.exists(path):
        with open(path) as f:
            return [int(c) for c in f.read().split()]
    return [1, 8, 32]


def psql_file(pgbin, path):
    subprocess.run([os.path.join(pgbin, "psql"), "-X", "-q", "-v", "ON_ERROR_STOP=1",
                    "-f", path], check=True, stdout=subprocess.DEVNULL)


def pgbench(pgbin, script, clients, duration):
    """TPS of one pgbench run, or None if it failed."""
    cmd = [os.path.join(pgbin, "pgbench"), "-n", "-M", "prepared",
           "-c", str(clients), "-j", str(min(clients, 4)),
           "-T", str(duration), "-f", script]
    r = subprocess.run(cmd, capture_output=True, text=True)
    m = re.search(r"tps = ([0-9.]+) \(without initial connection time\)", r.stdout)
    if r.returncode != 0 or not m:
        sys.stderr.write("pgbench failed: %s\n%s%s" % (" ".join(cmd), r.stdout[-2000:], r.stderr[-2000:]))
        return None
    failed = re.search(r"number of failed transactions: ([0-9]+)", r.stdout)
    if failed and int(failed.group(1)) > 0:
        sys.stderr.write("note: %s had %s failed transactions\n" % (script, failed.group(1)))
    return float(m.group(1))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--cases", required=True)
    ap.add_argument("--pgbin", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--groups", default="")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--duration", type=int, default=10)
    ap.add_argument("--clients", default="")
    args = ap.parse_args()

    groups = sorted(g for g in os.listdir(args.cases)
                    if os.path.isdir(os.path.join(args.cases, g)))
    if args.groups:
        wanted = args.groups.split(",")
        unknown = set(wanted) - set(groups)
        if unknown:
            sys.exit("unknown groups: %s (have: %s)" % (", ".join(sorted(unknown)), ", ".join(groups)))
        groups = [g for g in groups if g in wanted]
    # The floor is measured whatever else is chosen, to give every row a scale.
    if "peers" not in groups:
        groups.insert(0, "peers")

    tps = {}   # (group, case, clients) -> [tps per round]
    plan = {g: (cases_of(os.path.join(args.cases, g)),
                clients_of(os.path.join(args.cases, g), args.clients)) for g in groups}
    cells = sum(len(c) * len(n) for c, n in plan.values())
    print("%d groups, %d cells, %d rounds of %d s: about %d minutes"
          % (len(groups), cells, args.rounds, args.duration,
             cells * args.rounds * (args.duration + 1) // 60 + 1), flush=True)

    for rnd in range(1, args.rounds + 1):
        for g in groups:
            cases, clients = plan[g]
            setup = os.path.join(args.cases, g, "setup.sql")
            if os.path.exists(setup):
                psql_file(args.pgbin, setup)
            subprocess.run([os.path.join(args.pgbin, "psql"), "-X", "-q", "-c", "CHECKPOINT"],
                           check=True, stdout=subprocess.DEVNULL)
            # Odd rounds run a cell's cases in their order, even rounds in
            # the reverse one: whatever one case leaves behind for the next
            # (autovacuum of the table it just wrote, a checkpoint it
            # started, a warmer cache) falls on each side of every pair in
            # turn instead of always on the case that follows the baseline.
            order = cases if rnd % 2 == 1 else list(reversed(cases))
            for c in clients:
                for name, label, path in order:
                    settings = server_settings(path)
                    apply_settings(args.pgbin, settings)
                    t = pgbench(args.pgbin, path, c, args.duration)
                    apply_settings(args.pgbin, settings, reset=True)
                    tps.setdefault((g, name, c), []).append(t)
                    print("round %d  %-10s %-28s c=%-3d %s"
                          % (rnd, g, name, c, "%.0f tps" % t if t is not None else "FAILED"),
                          flush=True)

    def paired(key, against):
        """The ratios of key to against round by round (both measured in
        the round): each pair ran minutes apart at most, with the same
        machine's noise, where medians of each side may come from
        different rounds.  Their median, and their spread."""
        a, b = tps.get(key, []), tps.get(against, [])
        rs = [x / y for x, y in zip(a, b) if x is not None and y]
        if not rs:
            return None, None
        m = statistics.median(rs)
        return m, (max(rs) - min(rs)) / m if len(rs) > 1 else 0.0

    def med(key):
        vals = [v for v in tps.get(key, []) if v is not None]
        return statistics.median(vals) if vals else None

    # Two floors at each client count: SELECT 1 (a round trip) and a one-row
    # INSERT transaction (a round trip plus one durable commit).  Cases that
    # commit a write are judged against the second; shared-memory-only cases
    # (acquire + release) against the first.
    all_clients = sorted({c for _, cl in plan.values() for c in cl})
    floor = {c: med(("peers", "00-select1", c)) for c in all_clients}
    wfloor = {c: med(("peers", "20-write_floor", c)) for c in all_clients}
    rows = []
    for g in groups:
        cases, clients = plan[g]
        base = cases[0][0]
        # A group may measure the write floor itself, beside its cases, so
        # that their ratio to it is paired within the group's own minutes.
        own_wf = [n for n, _, _ in cases if n.endswith("write_floor")]
        for name, label, _ in cases:
            for c in clients:
                vals = [v for v in tps[(g, name, c)] if v is not None]
                m = med((g, name, c))
                b = med((g, base, c))
                f = floor.get(c)
                wf = wfloor.get(c)
                spread = (max(vals) - min(vals)) / m if m and len(vals) > 1 else 0.0
                pb, pbs = paired((g, name, c), (g, base, c))
                pw, pws = paired((g, name, c), (g, own_wf[0], c) if own_wf
                               else ("peers", "20-write_floor", c))
                rows.append(dict(group=g, case=name, label=label, clients=c,
                                 runs=len(vals), failed=len(tps[(g, name, c)]) - len(vals),
                                 median_tps=round(m, 1) if m else "",
                                 spread_pct=round(100 * spread, 1) if m else "",
                                 vs_baseline=round(m / b, 2) if m and b else "",
                                 baseline=base,
                                 vs_floor=round(m / f, 3) if m and f else "",
                                 vs_write_floor=round(m / wf, 2) if m and wf else "",
                                 paired_vs_baseline=round(pb, 3) if pb else "",
                                 paired_spread_pct=round(100 * pbs, 1) if pb else "",
                                 paired_vs_write_floor=round(pw, 3) if pw else "",
                                 paired_write_spread_pct=round(100 * pws, 1) if pw else "",
                                 round_tps=";".join("%.1f" % v if v is not None else ""
                                                    for v in tps[(g, name, c)])))

    print()
    hdr = "%-10s %-50s %4s %11s %7s %8s %14s %8s %8s" % (
        "group", "case", "cl", "median tps", "spread", "vs base", "paired (spr.)",
        "vs floor", "vs write")
    print(hdr)
    print("-" * len(hdr))
    last = None
    for r in rows:
        if last and r["group"] != last[0]:
            print()
        last = (r["group"], r["case"])
        mark = " (base)" if r["case"] == r["baseline"] else ""
        print("%-10s %-50s %4d %11s %6s%% %8s %14s %8s %8s%s" % (
            r["group"], (r["label"] + mark)[:50], r["clients"],
            "%.0f" % r["median_tps"] if r["median_tps"] != "" else "FAILED",
            r["spread_pct"], r["vs_baseline"],
            "%.2f (%.0f%%)" % (r["paired_vs_baseline"], r["paired_spread_pct"])
            if r["paired_vs_baseline"] != "" and not mark else "",
            r["vs_floor"], r["vs_write_floor"],
            "  (%d failed runs)" % r["failed"] if r["failed"] else ""))
    print("\nmedian of %d rounds of %d s each; spread = (max - min) / median over the rounds;"
          "\nvs base = median over median; paired = the median of the ratios to the baseline"
          "\nround by round (its spread: that of those ratios); cases run in reverse order in"
          "\neven rounds; vs floor = to SELECT 1, vs write = to a one-row INSERT transaction,"
          "\nat the same client count"
          % (args.rounds, args.duration))

    with open(args.out, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0].keys()))
        w.writeheader()
        w.writerows(rows)
    if any(r["failed"] for r in rows):
        sys.exit(1)


if __name__ == "__main__":
    main()
