#!/usr/bin/python3
"""A worker that does a job only one process may do at a time, under a
lockctl lease: a heartbeat keeps the lease alive, and every write of the
job is fenced, so that a worker that stalls past its lease can never
overwrite the work of the one that took over.

    /usr/bin/python3 lease_worker.py [--resource NAME] [--batches N] ...
    /usr/bin/python3 lease_worker.py "host=db.example port=5432 dbname=app"

The server comes from the connection string if one is given, otherwise from
the standard libpq environment variables (PGHOST, PGPORT, PGDATABASE,
PGUSER, PGPASSWORD...).  It needs the lockctl extension, and the right to
create (once) and write the table lease_example_output.

Exit status: 0 done (or stopped by SIGINT/SIGTERM after finishing the batch
at hand), 2 the lease was not granted within --wait, 3 the lease was lost
(a fenced write was refused), 1 anything else.
"""

import argparse
import os
import signal
import subprocess
import sys
import threading
import time

import psycopg

try:
    import lockctl                   # pip install ./clients/python
except ImportError:                  # or straight from a checkout of lockctl
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "clients", "python"))
    import lockctl

TABLE_DDL = """
CREATE TABLE IF NOT EXISTS lease_example_output (
    id         bigserial PRIMARY KEY,
    resource   text        NOT NULL,
    owner      text        NOT NULL,
    token      bigint      NOT NULL,
    batch      int         NOT NULL,
    written_at timestamptz NOT NULL DEFAULT clock_timestamp()
)"""


def log(msg):
    print(msg, flush=True)


def connect(dsn):
    # A statement_timeout bounds everything but the wait for the lease,
    # which lockctl bounds itself (the wait argument); keep it above --wait.
    return psycopg.connect(dsn, autocommit=True, connect_timeout=10,
                           application_name="lockctl-lease-worker",
                           options="-c statement_timeout=60s")


def stall(seconds):
    """Freeze the whole process, heartbeat thread included, as a long GC
    pause or a frozen VM would: SIGSTOP ourselves, and have a child send
    SIGCONT when the time is up."""
    subprocess.Popen(["sh", "-c", f"sleep {seconds}; kill -CONT {os.getpid()}"])
    os.kill(os.getpid(), signal.SIGSTOP)


def main():
    ap = argparse.ArgumentParser(description="Hold a lockctl lease with a heartbeat and do fenced writes.")
    ap.add_argument("dsn", nargs="?", default="", help="libpq connection string (default: PG* variables)")
    ap.add_argument("--resource", default="example:nightly-report", help="the lease's name")
    ap.add_argument("--owner", default=f"worker-{os.getpid()}", help="who holds it (default: worker-PID)")
    ap.add_argument("--ttl", type=float, default=5.0, help="lease time to live in seconds (default 5)")
    ap.add_argument("--wait", type=float, default=0.0,
                    help="seconds to wait for the lease if another worker holds it (default 0)")
    ap.add_argument("--batches", type=int, default=5, help="batches of work to do (default 5)")
    ap.add_argument("--batch-seconds", type=float, default=0.5, help="time one batch takes (default 0.5)")
    ap.add_argument("--stall-in", type=int, default=0, metavar="K",
                    help="simulate a stall (GC pause, frozen VM; the heartbeat stops too) "
                         "in batch K, between its work and its write")
    ap.add_argument("--stall", type=float, default=0.0, help="how long the stall lasts, in seconds")
    args = ap.parse_args()

    stopping = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stopping.set())

    conn = connect(args.dsn)
    conn.execute(TABLE_DDL)

    # The lease keeps itself alive: a heartbeat thread renews it every
    # ttl/3 on a connection of its own, and marks it lost the moment a
    # renewal is refused or the expiry passes without one.
    lease = lockctl.Lease(lambda: connect(args.dsn), args.resource, owner=args.owner,
                          ttl=args.ttl, wait=args.wait,
                          on_lost=lambda l: log(f"heartbeat: lease lost ({l.lost_reason})"))
    if not lease.acquire():
        log(f"lease {args.resource!r} is held by another worker; not granted within {args.wait:g} s")
        return 2
    log(f"acquired lease {args.resource!r} as {args.owner}: token {lease.token}")

    status = 0
    try:
        for batch in range(1, args.batches + 1):
            if stopping.is_set():
                log("stop requested: no more batches")
                break
            if lease.lost.is_set():
                status = 3
                break
            time.sleep(args.batch_seconds)          # the work itself
            if batch == args.stall_in and args.stall > 0:
                log(f"stalling for {args.stall:g} s in batch {batch} (heartbeat too)")
                stall(args.stall)
            try:
                # fenced(): a transaction that starts with lockctl.fence, so
                # the write commits only under the live lease; raises
                # LeaseLost (before sending anything, when the loss is known
                # already) otherwise.
                with lease.fenced(conn):
                    conn.execute("INSERT INTO lease_example_output (resource, owner, token, batch) "
                                 "VALUES (%s, %s, %s, %s)", (args.resource, args.owner, lease.token, batch))
            except lockctl.LeaseLost as e:
                log(f"batch {batch} refused, the lease was lost: {e.reason}")
                status = 3
                break
            log(f"batch {batch} written under token {lease.token}")
    finally:
        token = lease.token
        if lease.release():
            log(f"released lease {args.resource!r} (token {token})")
        else:
            log(f"lease {args.resource!r} lost: token {token} stopped writing")
        conn.close()
    return status


if __name__ == "__main__":
    try:
        sys.exit(main())
    except psycopg.Error as e:
        print(f"error: {e.sqlstate or ''} {e}".strip(), file=sys.stderr)
        sys.exit(1)
