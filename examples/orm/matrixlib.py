"""What the Python checks of the ORM matrix share (examples/orm/).

Each check prints TAP-style lines ("ok - ..." / "not ok - ...") and, for the
table that docs/orm-matrix.md and the README show, one machine-readable
line per configuration and per verified cell:

    ROW <tab> name <tab> mode <tab> configuration
    CELL <tab> name <tab> column <tab> outcome

matrix.py collects them.  A cell is printed only with what the check
verified; a failed check prints "not ok" and a cell marked FAILED.
"""

import sys
import time
import traceback

import psycopg

BOUND = 15          # seconds any one wait may take

failed = 0


def row(name, mode, config):
    print(f"ROW\t{name}\t{mode}\t{config}", flush=True)


def cell(name, column, outcome, ok, detail=""):
    global failed
    if not ok:
        failed += 1
    print(f"{'ok' if ok else 'not ok'} - {name}: {column}: {outcome}", flush=True)
    if not ok and detail:
        for line in str(detail).rstrip().splitlines():
            print(f"#   {line}", flush=True)
    print(f"CELL\t{name}\t{column}\t{outcome if ok else 'FAILED: ' + outcome}", flush=True)


def check(name, column, fn):
    """Run fn() -> (ok, outcome[, detail]); an exception is a failure."""
    try:
        res = fn()
    except Exception:               # a check that broke is a failed check
        cell(name, column, "error", False, traceback.format_exc())
        return
    cell(name, column, res[1], res[0], res[2] if len(res) > 2 else "")


def sqlstate(exc):
    """The SQLSTATE of a driver error, following __cause__ / .orig."""
    seen = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        for attr in ("sqlstate", "pgcode"):
            v = getattr(exc, attr, None)
            if isinstance(v, str) and len(v) == 5:
                return v
        exc = getattr(exc, "orig", None) or exc.__cause__
    return None


def wait_for_lock_wait(dsn, table, bound=BOUND):
    """Wait until some backend waits on a lock while writing table (the
    second writer of a concurrent pair); False after bound seconds."""
    deadline = time.monotonic() + bound
    with psycopg.connect(dsn, autocommit=True) as mon:
        while time.monotonic() < deadline:
            n = mon.execute(
                "SELECT count(*) FROM pg_stat_activity"
                " WHERE wait_event_type = 'Lock' AND query ILIKE %s",
                (f"%{table}%",)).fetchone()[0]
            if n > 0:
                return True
            time.sleep(0.02)
    return False


def setup_sql(dsn, sql):
    with psycopg.connect(dsn, autocommit=True) as c:
        c.execute(sql)


def finish():
    sys.exit(1 if failed else 0)
