#!/usr/bin/env python3
"""Hand-over latency: how long the first waiter waits after the holder lets go.

Two sessions pass one key back and forth: the holder releases while the
other session is known to be waiting (a third session watches for it), and
the latency is the waiter's grant time minus the time the holder's release
began, both read from the server's clock (clock_timestamp() evaluated right
after the waiter's call, and right before the holder's, in the same
statement), so client scheduling is not counted and the release's own work
is.  (Read after the release instead, the time could run backwards: the
waiter it wakes may be scheduled, and take the clock, first.)  Measured
for pg_advisory_lock and for a waiting lockctl.acquire, side by side.

Called by bench/run with PGHOST/PGPORT/PGDATABASE set; prints one line per
kind (median, p90, p99 in microseconds) and writes them to --out as CSV.
"""
import argparse
import csv
import statistics
import threading
import time

import psycopg

KINDS = {
    # kind: (take, give back, is-the-other-session-waiting query)
    "pg_advisory_lock": (
        "SELECT pg_advisory_lock(4242), clock_timestamp()",
        "SELECT clock_timestamp(), pg_advisory_unlock(4242)",
        "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' "
        "AND objid = 4242 AND NOT granted",
    ),
    "lockctl.acquire": (
        "SELECT lockctl.acquire('handover-latency', %(owner)s, '30 s', '60 s'), "
        "clock_timestamp()",
        "SELECT clock_timestamp(), "
        "lockctl.release('handover-latency', %(token)s)",
        "SELECT count(*) FROM lockctl.lease_waiters "
        "WHERE resource = 'handover-latency'",
    ),
}


def measure(kind, count):
    take, give, waiting = KINDS[kind]
    conns = [psycopg.connect(autocommit=True) for _ in range(2)]
    watch = psycopg.connect(autocommit=True)
    tokens = [None, None]
    granted_at = [None, None]
    samples = []

    def take_in(i):
        row = conns[i].execute(take, {"owner": "s%d" % i}).fetchone()
        tokens[i], granted_at[i] = row

    take_in(0)
    holder = 0
    for _ in range(count):
        waiter = 1 - holder
        t = threading.Thread(target=take_in, args=(waiter,))
        t.start()
        # Release only once the waiter is in line: otherwise it would be
        # an uncontended acquire, not a hand-over.
        deadline = time.monotonic() + 10
        while watch.execute(waiting).fetchone()[0] == 0:
            if time.monotonic() > deadline:
                raise RuntimeError("%s: the waiter never queued" % kind)
            time.sleep(0.0005)
        released_at = conns[holder].execute(
            give, {"token": tokens[holder]}).fetchone()[0]
        t.join()
        samples.append((granted_at[waiter] - released_at).total_seconds() * 1e6)
        holder = waiter
    conns[holder].execute(give, {"token": tokens[holder]})
    for c in conns + [watch]:
        c.close()
    return samples


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--count", type=int, default=300)
    ap.add_argument("--out")
    args = ap.parse_args()
    rows = []
    print("\nhand-over latency to the first waiter (server clock, %d hand-overs each)"
          % args.count)
    for kind in KINDS:
        s = sorted(measure(kind, args.count))
        q = statistics.quantiles(s, n=100)
        row = {"kind": kind, "count": len(s), "median_us": round(statistics.median(s)),
               "p90_us": round(q[89]), "p99_us": round(q[98])}
        rows.append(row)
        print("  %-18s median %6d us   p90 %6d us   p99 %6d us"
              % (kind, row["median_us"], row["p90_us"], row["p99_us"]))
    base = rows[0]["median_us"] or 1
    print("  lockctl / advisory median: %.2f" % (rows[1]["median_us"] / base))
    if args.out:
        with open(args.out, "w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=list(rows[0]))
            w.writeheader()
            w.writerows(rows)


if __name__ == "__main__":
    main()
