"""The real postgres_exporter with monitoring/postgres_exporter.yaml against
a server with lockctl: put load on it, scrape /metrics, check the values.

    LOCKCTL_TEST_DSN="host=... dbname=... user=..."          (setup, a superuser)
    LOCKCTL_EXPORTER_DSN="postgresql://user:pw@127.0.0.1:port/db?sslmode=disable"
    /usr/bin/python3 -m unittest monitoring/test_exporter.py

The exporter is Debian's prometheus-postgres-exporter (scripts/lib.sh
installs it), started on a free port of 127.0.0.1 and stopped at the end.
"""

import os
import re
import shutil
import socket
import subprocess
import threading
import time
import unittest
import urllib.request
import uuid

import psycopg

HERE = os.path.dirname(os.path.abspath(__file__))
DSN = os.environ.get("LOCKCTL_TEST_DSN", "")
EXPORTER_DSN = os.environ.get("LOCKCTL_EXPORTER_DSN", "")
EXPORTER = shutil.which("prometheus-postgres-exporter") or "/usr/bin/prometheus-postgres-exporter"
LINE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$')
LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')


def parse_metrics(text):
    """{(name, frozenset(labels without "server")): float}"""
    out = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        m = LINE.match(line)
        if not m:
            continue
        labels = frozenset((k, v) for k, v in LABEL.findall(m.group(2) or "") if k != "server")
        out[(m.group(1), labels)] = float(m.group(3))
    return out


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def poll(cond, bound, what):
    deadline = time.monotonic() + bound
    while True:
        v = cond()
        if v:
            return v
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {bound} s waiting for {what}")
        time.sleep(0.05)


@unittest.skipUnless(DSN and EXPORTER_DSN, "LOCKCTL_TEST_DSN and LOCKCTL_EXPORTER_DSN are not set")
@unittest.skipUnless(os.path.exists(EXPORTER), "prometheus-postgres-exporter is not installed")
class TestExporter(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.conn = psycopg.connect(DSN, autocommit=True)
        cls.db = cls.conn.info.dbname
        cls.log = open(os.path.join(os.environ.get("LOCKCTL_EXPORTER_LOG_DIR", "/tmp"),
                                    f"exporter-{os.getpid()}.log"), "w+")
        # A port taken between the look and the start: try another.
        for _ in range(5):
            cls.port = free_port()
            cls.proc = subprocess.Popen(
                [EXPORTER, f"--web.listen-address=127.0.0.1:{cls.port}",
                 f"--extend.query-path={os.path.join(HERE, 'postgres_exporter.yaml')}",
                 "--disable-default-metrics", "--disable-settings-metrics", "--log.level=info"],
                env={"DATA_SOURCE_NAME": EXPORTER_DSN, "PATH": "/usr/bin:/bin"},
                stdout=cls.log, stderr=subprocess.STDOUT)
            try:
                # Its landing page: a scrape of /metrics now would fill the
                # cache of lockctl_holds (cache_seconds) before the load.
                poll(lambda: cls.proc.poll() is not None or cls._get("/") is not None, 15,
                     "the exporter to listen")
            except AssertionError:
                pass
            if cls.proc.poll() is None:
                break
        else:
            raise AssertionError(f"the exporter did not start: {cls.exporter_log()}")

    @classmethod
    def tearDownClass(cls):
        cls.proc.terminate()
        try:
            cls.proc.wait(10)
        except subprocess.TimeoutExpired:
            cls.proc.kill()
            cls.proc.wait()
        cls.log.close()
        cls.conn.close()

    @classmethod
    def exporter_log(cls):
        cls.log.flush()
        cls.log.seek(0)
        return cls.log.read()

    @classmethod
    def _get(cls, path="/metrics"):
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{cls.port}{path}", timeout=10) as r:
                return r.read().decode()
        except OSError:
            return None

    def scrape(self):
        text = self._get()
        self.assertIsNotNone(text, "no answer from /metrics")
        return parse_metrics(text)

    def q(self, sql, params=()):
        cur = self.conn.execute(sql, params)
        return cur.fetchall() if cur.description is not None else []

    def value(self, metrics, name, **labels):
        key = (name, frozenset(labels.items()))
        self.assertIn(key, metrics, f"{name}{labels} missing; have: "
                      f"{sorted(k for k in metrics if k[0].startswith(name.rsplit('_', 1)[0]))[:20]}")
        return metrics[key]

    def test_exports_lockctl_from_every_view(self):
        tag = uuid.uuid4().hex[:8]
        pool, table = f"mon_pool_{tag}", f"mon_versioned_{tag}"
        res = [f"mon_lease_{tag}_{i}" for i in range(3)]

        # Leases: three live ones, a conflict, a stale fence, a waiter.
        tokens = [self.q("SELECT lockctl.acquire(%s, 'exporter-test', '60 s')", (r,))[0][0] for r in res]
        self.assertIsNone(self.q("SELECT lockctl.acquire(%s, 'other', '60 s')", (res[0],))[0][0])
        self.q("SELECT lockctl.release(%s, %s)", (res[2], tokens[2]))
        with self.assertRaises(psycopg.errors.SerializationFailure):
            with self.conn.transaction():
                self.q("SELECT lockctl.fence(%s, %s)", (res[2], tokens[2]))
        def wait_for_lease():
            with psycopg.connect(DSN, autocommit=True) as c:
                c.execute("SELECT lockctl.acquire(%s, 'waiter', '1 s', '30 s')", (res[0],))
        waiter = threading.Thread(target=wait_for_lease, daemon=True)
        waiter.start()
        poll(lambda: self.q("SELECT count(*) FROM lockctl.lease_waiters WHERE resource = %s", (res[0],))[0][0] == 1,
             10, "the waiter to queue")

        # A pool: 5 holds, 2 confirmed, 1 cancelled, 1 held, 1 expired by the worker.
        self.q("SELECT lockctl.create_pool(%s, 10)", (pool,))
        self.addCleanup(self.q, "SELECT lockctl.drop_pool(%s)", (pool,))
        holds = [self.q("SELECT lockctl.reserve(%s, 1, 'mon', '10 min')", (pool,))[0][0] for _ in range(4)]
        self.q("SELECT lockctl.confirm(%s), lockctl.confirm(%s), lockctl.cancel(%s)", (holds[0], holds[1], holds[2]))
        short = self.q("SELECT lockctl.reserve(%s, 1, 'mon', '50 ms')", (pool,))[0][0]
        poll(lambda: self.q("SELECT status FROM lockctl.holds WHERE id = %s", (short,))[0][0] == "expired",
             15, "the worker to expire the short hold")
        # A hold the worker cannot expire: its row is locked by an open
        # transaction (the worker skips locked holds), so it is overdue.
        stuck = self.q("SELECT lockctl.reserve(%s, 1, 'mon', '50 ms')", (pool,))[0][0]
        locker = psycopg.connect(DSN)
        self.addCleanup(locker.close)
        locker.execute("SELECT 1 FROM lockctl.reservations WHERE id = %s FOR UPDATE", (stuck,))
        time.sleep(0.3)             # the hold is now at least 0.25 s overdue

        # A versioned table: 2 updates accepted, 1 conflict, 1 blind write.
        self.q(f"CREATE TABLE {table} (id int PRIMARY KEY, n int, version bigint)")
        self.addCleanup(self.q, f"DROP TABLE {table}")
        self.q(f"SELECT lockctl.enable_versioning('{table}')")
        self.q(f"INSERT INTO {table} (id, n) VALUES (1, 0)")
        self.q(f"UPDATE {table} SET n = 1, version = 1 WHERE id = 1")
        self.q(f"UPDATE {table} SET n = 2, version = 2 WHERE id = 1")
        with self.assertRaises(psycopg.errors.SerializationFailure):
            self.q(f"UPDATE {table} SET n = 3, version = 1 WHERE id = 1")
        with self.assertRaises(psycopg.Error):
            self.q(f"UPDATE {table} SET n = 4 WHERE id = 1")

        # Idempotent requests: a first copy, then a duplicate.
        for _ in range(2):
            with self.conn.transaction():
                if self.q("SELECT lockctl.claim_request(%s)", (f"mon_req_{tag}",))[0][0] is None:
                    self.q("SELECT lockctl.complete_request(%s, '{\"ok\": true}')", (f"mon_req_{tag}",))
        requests = self.q("SELECT claims, repeats, waits, timeouts, conflicts FROM lockctl.request_stats")[0]

        stats = self.q("SELECT live, waiting, slots_used, max_leases, grants, conflicts, fence_failures, "
                       "expiries, releases FROM lockctl.lease_stats")[0]
        worker = self.q("SELECT holds_expired, errors FROM lockctl.workers WHERE datname = current_database()")[0]
        # The histograms: the waiter is still waiting, so its wait is not in
        # the first; the holds are all finished or locked.
        waits = {(o, le): (n, total) for o, le, n, total in
                 self.q("SELECT outcome, le, waits, sum_seconds FROM lockctl.lease_wait_histogram")}
        lifetimes = {(st, le): (n, total) for st, le, n, total in
                     self.q("SELECT status, le, holds, sum_seconds FROM lockctl.hold_lifetime_histogram")}
        m = self.scrape()
        locker.rollback()

        # Leases: the gauges are this moment's; nothing else runs meanwhile.
        live, waiting, used, max_leases, grants, conflicts, fence_failures, expiries, releases = stats
        self.assertEqual(self.value(m, "lockctl_leases_live"), live)
        self.assertGreaterEqual(live, 2)
        self.assertEqual(self.value(m, "lockctl_leases_waiting"), waiting)
        self.assertGreaterEqual(waiting, 1)
        self.assertEqual(self.value(m, "lockctl_leases_slots_used"), used)
        self.assertEqual(self.value(m, "lockctl_leases_max_leases"), max_leases)
        self.assertAlmostEqual(self.value(m, "lockctl_leases_slots_used_ratio"), used / max_leases)
        for name, v in (("grants", grants), ("conflicts", conflicts), ("fence_failures", fence_failures),
                        ("expiries", expiries), ("releases", releases)):
            self.assertEqual(self.value(m, f"lockctl_leases_{name}_total"), v, name)
        self.assertGreaterEqual(grants, 3)
        self.assertGreaterEqual(conflicts, 1)
        self.assertGreaterEqual(fence_failures, 1)
        self.assertGreaterEqual(self.value(m, "lockctl_leases_by_database_live", database=self.db), 2)
        self.assertGreaterEqual(self.value(m, "lockctl_leases_by_database_waiters", database=self.db), 1)

        # The pool.
        p = dict(datname=self.db, resource=pool)
        for name, want in (("capacity", 10), ("held", 2), ("confirmed", 2), ("available", 6),
                           ("kept_for_waitlist", 0),
                           ("holds_taken_total", 6), ("holds_confirmed_total", 2),
                           ("holds_cancelled_total", 1), ("holds_expired_total", 1)):
            self.assertEqual(self.value(m, f"lockctl_pool_{name}", **p), want, name)

        # Expiry lateness: the locked hold is overdue.
        self.assertEqual(self.value(m, "lockctl_holds_overdue", datname=self.db), 1)
        self.assertGreaterEqual(self.value(m, "lockctl_holds_overdue_max_seconds", datname=self.db), 0.25)
        self.assertEqual(self.value(m, "lockctl_holds_live", datname=self.db), 2)

        # The worker.
        w = dict(datname=self.db)
        self.assertEqual(self.value(m, "lockctl_worker_running", **w), 1)
        self.assertLess(self.value(m, "lockctl_worker_last_pass_age_seconds", **w), 5)
        self.assertEqual(self.value(m, "lockctl_worker_holds_expired_total", **w), worker[0])
        self.assertGreaterEqual(worker[0], 1)
        self.assertEqual(self.value(m, "lockctl_worker_errors_total", **w), worker[1])

        # The versioned table.
        v = dict(datname=self.db, table_name=table, mode="strict")
        self.assertEqual(self.value(m, "lockctl_versioned_table_enabled", **v), 1)
        self.assertEqual(self.value(m, "lockctl_versioned_table_checked_updates_total", **v), 2)
        self.assertEqual(self.value(m, "lockctl_versioned_table_conflicts_total", **v), 1)
        self.assertEqual(self.value(m, "lockctl_versioned_table_blind_writes_total", **v), 1)
        self.assertEqual(self.value(m, "lockctl_versioned_table_inserts_total", **v), 1)

        # Idempotent requests.
        for name, v in zip(("claims", "repeats", "waits", "timeouts", "conflicts"), requests):
            self.assertEqual(self.value(m, f"lockctl_requests_{name}_total", datname=self.db), v, name)
        self.assertGreaterEqual(requests[0], 1)
        self.assertGreaterEqual(requests[1], 1)

        # Lease waits and hold lifetimes, as Prometheus histograms: the
        # buckets are the views' (cumulative, le="+Inf" is _count), in
        # order, and the pool's finished holds are in them.
        def buckets(metrics, name, by, **labels):
            out = {}
            for (n, ls), v in metrics.items():
                d = dict(ls)
                if n == name and all(d.get(k) == v2 for k, v2 in labels.items()):
                    out[(d[by], float(d["le"]))] = v
            return out

        for name, by, view, labels in (("lockctl_lease_wait", "outcome", waits, {}),
                                       ("lockctl_hold_lifetime", "status", lifetimes, {"datname": self.db})):
            got = buckets(m, f"{name}_seconds_bucket", by, **labels)
            self.assertEqual(got, {k: float(n) for k, (n, _) in view.items()}, name)
            for group in {g for g, _ in view}:
                les = sorted(le for g, le in got if g == group)
                self.assertEqual(les[-1], float("inf"), name)
                counts = [got[(group, le)] for le in les]
                self.assertEqual(counts, sorted(counts), f"{name} {group}: buckets not cumulative")
                self.assertEqual(self.value(m, f"{name}_seconds_count", **labels, **{by: group}), counts[-1])
                self.assertAlmostEqual(self.value(m, f"{name}_seconds_sum", **labels, **{by: group}),
                                       view[(group, float("inf"))][1], places=6)
        self.assertGreaterEqual(lifetimes[("confirmed", 1.0)][0], 2)
        self.assertGreaterEqual(lifetimes[("cancelled", float("inf"))][0], 1)
        self.assertGreaterEqual(lifetimes[("expired", float("inf"))][0], 1)
        granted = waits[("granted", float("inf"))][0]

        # Every query of the file ran without an error.
        log = self.exporter_log()
        self.assertNotRegex(log, r"level=(error|warn).*lockctl|Missing column|Unparseable|pq: ", log)

        # The counters move: the stuck hold, once unlocked, is expired and
        # counted; the waiter times out... and the exporter shows it.
        poll(lambda: self.scrape().get(("lockctl_pool_holds_expired_total",
                                        frozenset(p.items()))) == 2, 15, "the second expiry in /metrics")
        for r, t in zip(res[:2], tokens[:2]):
            self.q("SELECT lockctl.release(%s, %s)", (r, t))
        waiter.join(35)
        self.q("SELECT lockctl.force_release(%s)", (res[0],))
        # The waiter's wait, of several seconds, is now a granted one.
        g = dict(outcome="granted")
        m = poll(lambda: (lambda m: m if m.get(("lockctl_lease_wait_seconds_count", frozenset(g.items())))
                          == granted + 1 else None)(self.scrape()), 15, "the granted wait in /metrics")
        b = buckets(m, "lockctl_lease_wait_seconds_bucket", "outcome", **g)
        self.assertEqual(b[("granted", float("inf"))], granted + 1)
        self.assertEqual(b[("granted", 0.1)], waits[("granted", 0.1)][0], "the wait lasted more than 0.1 s")


if __name__ == "__main__":
    unittest.main()
