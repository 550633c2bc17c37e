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
import sys
import threading
import time

import psycopg
from psycopg import errors

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


class Heartbeat(threading.Thread):
    """Renews the lease every ttl/3 on its own connection, so a slow batch
    does not let it lapse.  Sets `lost` when the lease is gone."""

    def __init__(self, dsn, resource, token, ttl):
        super().__init__(daemon=True)
        self.conn = connect(dsn)
        self.resource, self.token, self.ttl = resource, token, ttl
        self.stop = threading.Event()
        self.paused = threading.Event()
        self.lost = threading.Event()
        self.reason = None

    def run(self):
        while not self.stop.wait(self.ttl / 3):
            if self.paused.is_set():
                continue
            try:
                ok = self.conn.execute(
                    "SELECT lockctl.renew(%s, %s, %s * interval '1 s')",
                    (self.resource, self.token, self.ttl)).fetchone()[0]
                if ok is False:
                    self.reason = "renew returned false"
            except psycopg.Error as e:
                self.reason = f"{e.sqlstate}: {str(e).strip().splitlines()[0]}"
            if self.reason:
                log(f"heartbeat: lease lost ({self.reason})")
                self.lost.set()
                return

    def close(self):
        self.stop.set()
        self.join(5)
        self.conn.close()


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

    token = conn.execute(
        "SELECT lockctl.acquire(%s, %s, %s * interval '1 s', %s * interval '1 s')",
        (args.resource, args.owner, args.ttl, args.wait)).fetchone()[0]
    if token is None:
        log(f"lease {args.resource!r} is held by another worker; not granted within {args.wait:g} s")
        return 2
    log(f"acquired lease {args.resource!r} as {args.owner}: token {token}")

    heartbeat = Heartbeat(args.dsn, args.resource, token, args.ttl)
    heartbeat.start()
    status = 0
    try:
        for batch in range(1, args.batches + 1):
            if stopping.is_set():
                log("stop requested: no more batches")
                break
            if heartbeat.lost.is_set():
                status = 3
                break
            time.sleep(args.batch_seconds)          # the work itself
            if batch == args.stall_in and args.stall > 0:
                log(f"stalling for {args.stall:g} s in batch {batch} (heartbeat too)")
                heartbeat.paused.set()
                time.sleep(args.stall)
                heartbeat.paused.clear()
            try:
                with conn.transaction():
                    # Fence first: refused (40001) unless our token is the live
                    # holder's; on success nobody else can be granted the
                    # lease until this transaction ends.
                    conn.execute("SELECT lockctl.fence(%s, %s)", (args.resource, token))
                    conn.execute("INSERT INTO lease_example_output (resource, owner, token, batch) "
                                 "VALUES (%s, %s, %s, %s)", (args.resource, args.owner, token, batch))
            except errors.SerializationFailure as e:
                log(f"batch {batch} refused, the lease was lost: {str(e).strip().splitlines()[0]}")
                status = 3
                break
            log(f"batch {batch} written under token {token}")
        if status == 0 and heartbeat.lost.is_set():
            status = 3
    finally:
        heartbeat.close()
        if status == 0:
            released = conn.execute("SELECT lockctl.release(%s, %s)", (args.resource, token)).fetchone()[0]
            log(f"released lease {args.resource!r} (token {token})" if released
                else f"lease {args.resource!r} had already ended (token {token})")
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
