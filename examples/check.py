#!/usr/bin/python3
"""Run the examples against a server and check what they do, so they cannot
rot.  scripts/test (phase "examples") runs it against a scratch server; it
works against any server with lockctl given by a connection string or the
PG* environment variables:

    /usr/bin/python3 examples/check.py "host=127.0.0.1 port=5499 dbname=lockctl_demo user=postgres"

Prints one "ok N - ..." or "not ok N - ..." line per check (TAP style),
then "N passed, M failed, K skipped".  Exit status 1 if any check failed.
Examples whose lockctl functions are missing from the build are skipped,
and said so.  Needs examples/node/node_modules (npm ci) for the Node.js one.
"""

import os
import subprocess
import sys
import threading

import psycopg

HERE = os.path.dirname(os.path.abspath(__file__))
PYTHON = "/usr/bin/python3"
BOUND = 60          # seconds any one example may run

results = {"passed": 0, "failed": 0, "skipped": 0}
n = 0


def report(ok, what, output=""):
    global n
    n += 1
    if ok is None:
        results["skipped"] += 1
        print(f"ok {n} - {what} # SKIP", flush=True)
        return
    results["passed" if ok else "failed"] += 1
    print(f"{'ok' if ok else 'not ok'} {n} - {what}", flush=True)
    if not ok and output:
        for line in output.rstrip().splitlines():
            print(f"#   {line}")


class Proc:
    """A child process whose output a thread collects line by line, so that
    one can wait for a given line with a bound, and never block on a pipe."""

    def __init__(self, args, cwd, env=None):
        self.proc = subprocess.Popen(args, cwd=cwd, env=env, stdout=subprocess.PIPE,
                                     stderr=subprocess.STDOUT, text=True)
        self.lines = []
        self.cond = threading.Condition()
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self):
        for line in self.proc.stdout:
            with self.cond:
                self.lines.append(line)
                self.cond.notify_all()
        with self.cond:
            self.lines.append(None)         # end of output
            self.cond.notify_all()

    def wait_for_line(self, needle, bound=15):
        """Wait until a line holds needle (or the output ends, or bound)."""
        with self.cond:
            self.cond.wait_for(lambda: any(l is None or needle in l for l in self.lines), bound)

    def finish(self, bound=BOUND):
        """Wait for the exit (killing it after bound); return (status, output)."""
        try:
            self.proc.wait(bound)
            killed = ""
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            killed = f"\n(killed after {bound} s)"
        self.reader.join(10)
        with self.cond:
            out = "".join(l for l in self.lines if l is not None)
        return self.proc.returncode, out + killed


def start(args, cwd, env=None):
    return Proc(args, cwd, env)


def finish(proc, bound=BOUND):
    return proc.finish(bound)


def worker(dsn, *opts):
    return [PYTHON, os.path.join(HERE, "python", "lease_worker.py"), dsn, *opts]


def check_python(dsn, conn):
    res = "example:check-lease"
    conn.execute("DROP TABLE IF EXISTS lease_example_output")

    # 1. One worker alone: takes the lease, writes every batch, releases.
    rc, out = finish(start(worker(dsn, "--resource", res, "--owner", "solo", "--ttl", "2",
                                  "--batches", "3", "--batch-seconds", "0.1"), HERE))
    report(rc == 0 and "acquired lease" in out and out.count("written under token") == 3
           and "released lease" in out,
           "python worker alone: acquires, 3 fenced batches, releases, exit 0", out)
    rows = conn.execute("SELECT count(*) FROM lease_example_output WHERE owner = 'solo'").fetchone()[0]
    report(rows == 3, f"python worker alone: its 3 rows are in the table (found {rows})")

    # 2. A second worker gives up at once while the first holds the lease
    # (wait 0), and a third waits and takes over when the first releases.
    first = start(worker(dsn, "--resource", res, "--owner", "first", "--ttl", "2",
                         "--batches", "4", "--batch-seconds", "0.3"), HERE)
    first.wait_for_line("acquired lease")
    rc2, out2 = finish(start(worker(dsn, "--resource", res, "--owner", "second"), HERE))
    report(rc2 == 2 and "not granted" in out2,
           "python worker: a second worker is refused the held lease (exit 2)", out2)
    third = start(worker(dsn, "--resource", res, "--owner", "third", "--ttl", "2", "--wait", "20",
                         "--batches", "2", "--batch-seconds", "0.1"), HERE)
    rc1, out1 = finish(first)
    rc3, out3 = finish(third)
    report(rc1 == 0 and rc3 == 0 and "released lease" in out1 and "acquired lease" in out3,
           "python worker: a waiting worker takes over after the release", out1 + out3)
    bad = conn.execute(
        "SELECT count(*) FROM lease_example_output AS f, lease_example_output AS t "
        "WHERE f.owner = 'first' AND t.owner = 'third' "
        "AND (t.token <= f.token OR t.written_at <= f.written_at)").fetchone()[0]
    report(bad == 0, "python worker: every write of the successor comes after, with a higher token")

    # 3. The stalled holder: its lease expires during a stall, another worker
    # takes over, and the stalled one's write is fenced out (exit 3).
    stalled = start(worker(dsn, "--resource", res, "--owner", "stalled", "--ttl", "1",
                           "--batches", "3", "--batch-seconds", "0.1",
                           "--stall-in", "2", "--stall", "3"), HERE)
    stalled.wait_for_line("stalling")
    rcn, outn = finish(start(worker(dsn, "--resource", res, "--owner", "next", "--ttl", "5",
                                    "--wait", "20", "--batches", "1", "--batch-seconds", "0.1"), HERE))
    rcs, outs = finish(stalled)
    report(rcn == 0 and "written under token" in outn,
           "python worker: the next worker gets the expired lease and writes", outn)
    report(rcs == 3 and "refused, the lease was lost" in outs,
           "python worker: the stalled worker's write is refused (lease lost), exit 3", outs)
    late = conn.execute("SELECT count(*) FROM lease_example_output "
                        "WHERE owner = 'stalled' AND batch >= 2").fetchone()[0]
    report(late == 0, f"python worker: no write of the stalled worker after its stall (found {late})")
    conn.execute("DROP TABLE lease_example_output")


def node_env(dsn, what):
    """The environment for an example of examples/node, or None (reported
    as a failure of what) when the pg driver cannot be found."""
    env = dict(os.environ)
    # pg from examples/node/node_modules (npm ci), or from NODE_PATH (Debian's
    # node-pg in /usr/share/nodejs).
    found = subprocess.run(["node", "-e", "require.resolve('pg')"], cwd=os.path.join(HERE, "node"),
                           env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL).returncode == 0
    if not found:
        report(False, f"{what}: the pg driver is missing (run npm ci in examples/node, "
                      "or install Debian's node-pg and set NODE_PATH=/usr/share/nodejs)")
        return None
    # pg reads the PG* variables; a libpq keyword string becomes them.
    for item in dsn.split():
        k, _, v = item.partition("=")
        key = {"host": "PGHOST", "port": "PGPORT", "dbname": "PGDATABASE",
               "user": "PGUSER", "password": "PGPASSWORD"}.get(k)
        if key:
            env[key] = v
    return env


def check_node(dsn):
    nodedir = os.path.join(HERE, "node")
    env = node_env(dsn, "node checkout")
    if env is None:
        return
    rc, out = finish(start(["node", "checkout.js", "--pool", "example:check-concert",
                            "--capacity", "5", "--customers", "8", "--ttl", "3"], nodedir, env))
    report(rc == 0, "node checkout: exits 0", out)
    report("summary: capacity=5 paid=3 sold_out=3 expired=2 notified=2 late_payment=refused available=2 ok" in out,
           "node checkout: 3 paid, 3 sold out, 2 unpaid holds expired, announced by NOTIFY "
           "and came back, late payment refused", out)
    report(out.count("(retried: same hold)") == 3,
           "node checkout: a retried reserve with the same idempotency key returns the same hold",
           out)


def check_webhooks(dsn, conn):
    """examples/python/webhook.py and examples/node/webhook.js: 4 copies of a
    webhook at once, a late retry and a forged copy; one charge."""
    # A new event id each run: the charges table and the request keys stay.
    run = conn.execute("SELECT to_char(clock_timestamp(), 'YYYYMMDDHH24MISSUS')").fetchone()[0]
    want = "deliveries=5 charged=1 replayed=4 forged_refused=yes charges=1 amount=4200 same_answer=yes ok"
    rc, out = finish(start([PYTHON, "webhook.py", dsn, "--event", f"evt_py_{run}"],
                           os.path.join(HERE, "python")))
    report(rc == 0 and f"summary: {want}" in out,
           "python webhook: 4 copies at once and a late retry charge once and get one answer; "
           "a forged copy is refused (22023)", out)
    env = node_env(dsn, "node webhook")
    if env is None:
        return
    rc, out = finish(start(["node", "webhook.js", "--event", f"evt_node_{run}"],
                           os.path.join(HERE, "node"), env))
    report(rc == 0 and f"summary: {want}" in out,
           "node webhook: 4 copies at once and a late retry charge once and get one answer; "
           "a forged copy is refused (22023)", out)


def main():
    dsn = sys.argv[1] if len(sys.argv) > 1 else ""
    with psycopg.connect(dsn, autocommit=True, connect_timeout=10) as conn:
        have = {r[0] for r in conn.execute(
            "SELECT proname FROM pg_proc WHERE pronamespace = 'lockctl'::regnamespace")}
        if {"acquire", "renew", "release", "fence"} <= have:
            check_python(dsn, conn)
        else:
            report(None, "python lease worker: this build has no leases (lockctl.acquire, renew, fence)")
        if {"create_pool", "drop_pool", "reserve", "confirm", "available"} <= have:
            check_node(dsn)
        else:
            report(None, "node checkout: this build has no reservations (lockctl.reserve, confirm)")
        if {"claim_request", "complete_request"} <= have:
            check_webhooks(dsn, conn)
        else:
            report(None, "webhooks: this build has no idempotent requests (lockctl.claim_request)")
    print(f"{results['passed']} passed, {results['failed']} failed, {results['skipped']} skipped")
    sys.exit(1 if results["failed"] else 0)


if __name__ == "__main__":
    main()
