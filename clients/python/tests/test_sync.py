"""The sync library against a real server, once with psycopg 3 and once
with psycopg2 (the same tests, two driver classes at the bottom)."""

import datetime
import threading
import time
import unittest
import uuid

import lockctl
from support import Holder, admin, need_server, poll, unique


class SyncCases:
    driver = None           # "psycopg" or "psycopg2"

    def connect(self, autocommit=True):
        raise NotImplementedError

    @classmethod
    def setUpClass(cls):
        cls.admin = admin()

    @classmethod
    def tearDownClass(cls):
        cls.admin.close()

    def setUp(self):
        self.conn = self.connect()
        self.addCleanup(self.conn.close)

    def q(self, sql, params=()):
        cur = self.admin.execute(sql, params)
        return cur.fetchall() if cur.description is not None else []

    def one(self, sql, params=()):
        return self.q(sql, params)[0][0]

    def fenced_table(self):
        t = unique("fenced")
        self.q(f"CREATE TABLE {t} (token bigint, n int)")
        self.addCleanup(self.q, f"DROP TABLE {t}")
        return t

    # -- leases -------------------------------------------------------------

    def test_lease_grant_fenced_write_release(self):
        res, t = unique("res"), self.fenced_table()
        with lockctl.Lease(self.connect, res, owner="w1", ttl=10) as lease:
            self.assertIsInstance(lease.token, int)
            self.assertGreater(lease.token, 2 ** 48, "a token is timeline << 48 | ...: a bigint, kept whole")
            self.assertIsInstance(lease.expires_at, datetime.datetime)
            self.assertIsNotNone(lease.expires_at.tzinfo)
            with lease.fenced(self.conn) as c:
                with c.cursor() as cur:
                    cur.execute(f"INSERT INTO {t} VALUES (%s, 1)", (lease.token,))
            self.assertEqual(self.q(f"SELECT token, n FROM {t}"), [(lease.token, 1)])
            self.assertEqual(self.one("SELECT owner FROM lockctl.leases WHERE resource = %s", (res,)), "w1")
        self.assertEqual(self.one("SELECT count(*) FROM lockctl.leases WHERE resource = %s", (res,)), 0)
        with self.assertRaises(lockctl.LeaseLost):
            lease.check()

    def test_not_granted(self):
        res = unique("res")
        with lockctl.Lease(self.connect, res, ttl=10):
            other = lockctl.Lease(self.connect, res, ttl=10, wait=0.2)
            with self.assertRaises(lockctl.LeaseNotGranted):
                with other:
                    self.fail("granted a held lease")
            self.assertFalse(lockctl.Lease(self.connect, res, ttl=10).acquire())

    def test_heartbeat_keeps_the_lease(self):
        res = unique("res")
        with lockctl.Lease(self.connect, res, ttl=0.6) as lease:
            first = lease.expires_at
            # Three ttls: without renewals the lease would have expired twice.
            poll(lambda: lease.renewals >= 6, 10, "6 renewals")
            self.assertFalse(lease.lost.is_set(), lease.lost_reason)
            self.assertGreater(lease.expires_at, first)
            with lease.fenced(self.conn):
                pass
            self.assertEqual(self.one("SELECT token FROM lockctl.leases WHERE resource = %s", (res,)), lease.token)

    def test_takeover_stops_the_next_fenced_write(self):
        # The heartbeat will not renew for 20 s: the fenced write itself must
        # find out, from lockctl.fence.
        res, t = unique("res"), self.fenced_table()
        called = []
        lease = lockctl.Lease(self.connect, res, ttl=30, renew_every=20, on_lost=called.append)
        self.assertTrue(lease.acquire())
        try:
            self.assertTrue(self.one("SELECT lockctl.force_release(%s)", (res,)))
            newer = self.one("SELECT lockctl.acquire(%s, 'next', '30 s')", (res,))
            self.assertGreater(newer, lease.token)
            with self.assertRaises(lockctl.LeaseLost) as cm:
                with lease.fenced(self.conn) as c:
                    with c.cursor() as cur:
                        cur.execute(f"INSERT INTO {t} VALUES (%s, 1)", (lease.token,))
            self.assertIn("is stale", cm.exception.reason)
            self.assertTrue(lease.lost.is_set())
            self.assertEqual(called, [lease])
            self.assertEqual(self.one(f"SELECT count(*) FROM {t}"), 0)
            # Every later write is refused before it reaches the server.
            with self.assertRaises(lockctl.LeaseLost):
                with lease.fenced(self.conn):
                    self.fail("a fenced block ran after the loss")
        finally:
            self.assertFalse(lease.release(), "release of a lost lease reports False")
            self.q("SELECT lockctl.release(%s, %s)", (res, newer))

    def test_heartbeat_notices_a_takeover(self):
        res = unique("res")
        lost = threading.Event()
        lease = lockctl.Lease(self.connect, res, ttl=3, renew_every=0.2, on_lost=lambda l: lost.set())
        self.assertTrue(lease.acquire())
        self.q("SELECT lockctl.force_release(%s)", (res,))
        self.assertTrue(lost.wait(5), "the heartbeat did not report the loss")
        self.assertIn("no longer held", lease.lost_reason)
        self.assertFalse(lease.release())

    def test_paused_holder_cannot_write(self):
        res, t = unique("res"), self.fenced_table()
        h = Holder(self.driver, res, 1.0, t)
        try:
            token = int(h.expect("token ").split()[1])
            h.send("write 1")
            h.expect("written 1")
            h.pause()                       # its heartbeat stops with it
            poll(lambda: self.one("SELECT count(*) FROM lockctl.leases WHERE resource = %s", (res,)) == 0,
                 10, "the paused holder's lease to expire")
            newer = self.one("SELECT lockctl.acquire(%s, 'successor', '30 s')", (res,))
            self.assertGreater(newer, token)
            h.resume()
            h.send("write 2")
            line = h.expect("lost: ")
            self.assertTrue("expir" in line or "stale" in line or "no longer held" in line, line)
            self.assertEqual(self.q(f"SELECT token, n FROM {t}"), [(token, 1)],
                             "the paused holder wrote after losing its lease")
            self.q("SELECT lockctl.release(%s, %s)", (res, newer))
        finally:
            h.resume()
            self.assertEqual(h.finish(), 0)

    def test_killed_heartbeat_connection_reconnects(self):
        res = unique("res")
        with lockctl.Lease(self.connect, res, ttl=1.5) as lease:
            pid = poll(lambda: lease.heartbeat_pid, 5, "the heartbeat connection")
            self.assertTrue(self.one("SELECT pg_terminate_backend(%s)", (pid,)))
            before = lease.renewals
            poll(lambda: lease.reconnects >= 1 and lease.renewals >= before + 2, 10,
                 "a reconnection and two renewals on the new connection")
            self.assertNotEqual(lease.heartbeat_pid, pid)
            self.assertFalse(lease.lost.is_set(), lease.lost_reason)
            with lease.fenced(self.conn):
                pass
            self.assertEqual(self.one("SELECT token FROM lockctl.leases WHERE resource = %s", (res,)), lease.token)

    def test_killed_heartbeat_connection_without_reconnect_reports_loss(self):
        res = unique("res")
        allowed = [1]                       # the first connection only

        def connect():
            if not allowed:
                raise lockctl.LockctlError("simulated: the server cannot be reached")
            allowed.pop()
            return self.connect()
        lost = threading.Event()
        lease = lockctl.Lease(connect, res, ttl=1.0, on_lost=lambda l: lost.set())
        self.assertTrue(lease.acquire())
        t0 = time.monotonic()
        self.q("SELECT pg_terminate_backend(%s)", (lease.heartbeat_pid,))
        self.assertTrue(lost.wait(5), "loss not reported")
        self.assertLess(time.monotonic() - t0, 1.0 + 0.5, "loss reported later than the ttl")
        self.assertIn("not renewed", lease.lost_reason)
        with self.assertRaises(lockctl.LeaseLost):
            with lease.fenced(self.conn):
                self.fail("a fenced block ran after the loss")
        self.assertFalse(lease.release())

    # -- retries ------------------------------------------------------------

    def test_concurrent_increments_converge(self):
        t = unique("counter")
        self.q(f"CREATE TABLE {t} (id int PRIMARY KEY, n int NOT NULL, version bigint)")
        self.addCleanup(self.q, f"DROP TABLE {t}")
        self.q(f"SELECT lockctl.enable_versioning('{t}')")
        self.q(f"INSERT INTO {t} (id, n) VALUES (1, 0)")
        workers, each = 6, 15
        retries, errors = [], []

        def increment(conn):
            with conn.cursor() as cur:
                cur.execute(f"SELECT n, version FROM {t} WHERE id = 1")
                n, version = cur.fetchone()
            time.sleep(0.002)              # compute: others write meanwhile
            return lockctl.update_versioned(conn, t, 1, version, {"n": n + 1})

        def worker():
            conn = self.connect()
            try:
                for _ in range(each):
                    lockctl.run_in_transaction(conn, increment, attempts=200, max_delay=0.05,
                                               on_retry=lambda a, e, d: retries.append(a))
            except Exception as e:          # reported below
                errors.append(e)
            finally:
                conn.close()
        threads = [threading.Thread(target=worker) for _ in range(workers)]
        for th in threads:
            th.start()
        for th in threads:
            th.join(120)
        self.assertEqual(errors, [])
        self.assertEqual(self.q(f"SELECT n, version FROM {t}"), [(workers * each, workers * each + 1)])
        self.assertGreater(len(retries), 0, "no conflict happened: the retry path was not exercised")

    def test_retry_is_bounded_and_selective(self):
        calls = []

        class Conflict(Exception):
            sqlstate = "40001"

        def always():
            calls.append(1)
            raise Conflict("version conflict")
        with self.assertRaises(Conflict):
            lockctl.retry(always, attempts=4, base_delay=0.001)
        self.assertEqual(len(calls), 4)
        # Neither a lost lease nor a stale fencing token is retried.
        calls.clear()

        class Stale(Exception):
            sqlstate = "40001"

        def stale():
            calls.append(1)
            raise Stale('fencing token 5 for lease "x" is stale')
        with self.assertRaises(Stale):
            lockctl.retry(stale, attempts=4)
        self.assertEqual(len(calls), 1)
        # Another SQLSTATE is not retried.
        calls.clear()

        class Unique(Exception):
            sqlstate = "23505"

        def dup():
            calls.append(1)
            raise Unique("duplicate")
        with self.assertRaises(Unique):
            lockctl.retry(dup, attempts=4)
        self.assertEqual(len(calls), 1)

    # -- reservations and idempotency ---------------------------------------

    def pool(self, capacity):
        name = unique("pool")
        self.q("SELECT lockctl.create_pool(%s, %s)", (name, capacity))
        self.addCleanup(self.q, "SELECT lockctl.drop_pool(%s)", (name,))
        return name

    def test_reserve_confirm_cancel_extend(self):
        p = self.pool(2)
        a = lockctl.reserve(self.conn, p, 1, "alice", ttl=60)
        b = lockctl.reserve(self.conn, p, 1, "bob", ttl="1 min")
        self.assertIsInstance(a, int)
        self.assertIsNone(lockctl.reserve(self.conn, p, 1, "carol"), "sold out is None")
        self.assertEqual(lockctl.available(self.conn, p), 0)
        self.assertIs(lockctl.confirm(self.conn, a), True)
        self.assertIs(lockctl.confirm(self.conn, a), False)
        new_expiry = lockctl.extend(self.conn, b, datetime.timedelta(minutes=10))
        self.assertIsInstance(new_expiry, datetime.datetime)
        self.assertIs(lockctl.cancel(self.conn, b), True)
        self.assertEqual(lockctl.available(self.conn, p), 1)
        with self.assertRaises(Exception) as cm:
            lockctl.cancel(self.conn, a)
        self.assertEqual(lockctl.sqlstate(cm.exception), "55000")

    def test_idempotent_reserve_under_concurrent_duplicates(self):
        p = self.pool(10)
        key = lockctl.new_idempotency_key("order-")
        n = 8
        barrier = threading.Barrier(n)
        got, errors = [], []

        def duplicate():
            try:
                barrier.wait(10)
                got.append(lockctl.reserve_idempotent(self.connect, p, key, 2, "webhook", ttl=60))
            except Exception as e:
                errors.append(e)
        threads = [threading.Thread(target=duplicate) for _ in range(n)]
        for th in threads:
            th.start()
        for th in threads:
            th.join(60)
        self.assertEqual(errors, [])
        self.assertEqual(len(got), n)
        self.assertEqual(len(set(got)), 1, f"duplicates made several holds: {got}")
        self.assertEqual(self.q("SELECT count(*), sum(quantity) FROM lockctl.holds WHERE resource = %s", (p,)),
                         [(1, 2)])
        self.assertEqual(lockctl.available(self.conn, p), 8)

    def test_run_once_under_concurrent_duplicates(self):
        t = unique("effects")
        self.q(f"CREATE TABLE {t} (id serial PRIMARY KEY, key text)")
        self.addCleanup(self.q, f"DROP TABLE {t}")
        key = lockctl.new_idempotency_key("webhook-")

        def effect(conn, key):
            with conn.cursor() as cur:
                cur.execute(f"INSERT INTO {t} (key) VALUES (%s) RETURNING id", (key,))
                return {"effect": cur.fetchone()[0]}
        n = 8
        barrier = threading.Barrier(n)
        got, errors = [], []

        def duplicate():
            conn = self.connect()
            try:
                barrier.wait(10)
                got.append(lockctl.run_once(conn, key, effect, key, fingerprint="sha256:abc"))
            except Exception as e:
                errors.append(e)
            finally:
                conn.close()
        threads = [threading.Thread(target=duplicate) for _ in range(n)]
        for th in threads:
            th.start()
        for th in threads:
            th.join(60)
        self.assertEqual(errors, [])
        rows = self.q(f"SELECT id FROM {t}")
        self.assertEqual(len(rows), 1, "two duplicates took effect")
        self.assertEqual(sorted(r for _, r in got), [False] + [True] * (n - 1))
        self.assertEqual({r["effect"] for r, _ in got}, {rows[0][0]}, "a duplicate got another answer")
        # Another fingerprint for the same key is refused.
        with self.assertRaises(Exception) as cm:
            lockctl.run_once(self.conn, key, effect, key, fingerprint="sha256:other")
        self.assertEqual(lockctl.sqlstate(cm.exception), "22023")
        # An effect that fails takes its claim with it: the next copy runs.
        key2 = lockctl.new_idempotency_key()

        def failing(conn):
            effect(conn, key2)
            raise RuntimeError("the payment provider timed out")
        with self.assertRaises(RuntimeError):
            lockctl.run_once(self.conn, key2, failing)
        self.assertEqual(lockctl.run_once(self.conn, key2, effect, key2)[1], False)
        self.assertEqual(self.one(f"SELECT count(*) FROM {t} WHERE key = %s", (key2,)), 1)

    # -- the drivers' traps -------------------------------------------------

    def test_update_versioned_key_types(self):
        t = unique("items")
        self.q(f"CREATE TABLE {t} (id bigint PRIMARY KEY, v text, version bigint)")
        self.addCleanup(self.q, f"DROP TABLE {t}")
        self.q(f"SELECT lockctl.enable_versioning('{t}')")
        big = 2 ** 40 + 7                  # beyond int4
        self.q(f"INSERT INTO {t} (id, v) VALUES (1, 'a'), (%s, 'b')", (big,))
        self.assertEqual(lockctl.update_versioned(self.conn, t, 1, 1, {"v": "x"}), 2)
        self.assertEqual(lockctl.update_versioned(self.conn, t, big, 1, {"v": "y"}), 2)
        self.assertEqual(lockctl.update_versioned(self.conn, t, "1", 2, {"v": "z"}), 3)
        with self.assertRaises(Exception) as cm:
            lockctl.update_versioned(self.conn, t, 1, 1, {"v": "stale"})
        self.assertEqual(lockctl.sqlstate(cm.exception), "40001")
        self.assertEqual(self.q(f"SELECT id, v, version FROM {t} ORDER BY id"), [(1, "z", 3), (big, "y", 2)])
        with self.assertRaises(TypeError):
            lockctl.update_versioned(self.conn, t, True, 3)

    def test_update_versioned_composite_and_uuid_keys(self):
        t, u = unique("line"), unique("doc")
        self.q(f"CREATE TABLE {t} (order_id int, line_no int, qty int, version bigint, "
               "PRIMARY KEY (order_id, line_no))")
        self.q(f"CREATE TABLE {u} (id uuid PRIMARY KEY, body text, version bigint)")
        self.addCleanup(self.q, f"DROP TABLE {t}, {u}")
        self.q(f"SELECT lockctl.enable_versioning('{t}'), lockctl.enable_versioning('{u}')")
        self.q(f"INSERT INTO {t} (order_id, line_no, qty) VALUES (7, 2, 1), (7, 3, 1)")
        key = uuid.uuid4()
        self.q(f"INSERT INTO {u} (id, body) VALUES (%s, 'draft')", (key,))
        self.assertEqual(lockctl.update_versioned(self.conn, t, {"order_id": 7, "line_no": 2}, 1, {"qty": 3}), 2)
        self.assertEqual(lockctl.update_versioned(self.conn, u, key, 1, {"body": "final"}), 2)
        self.assertEqual(self.q(f"SELECT line_no, qty FROM {t} ORDER BY line_no"), [(2, 3), (3, 1)])
        self.assertEqual(self.one(f"SELECT body FROM {u}"), "final")

    def test_durations_are_unambiguous(self):
        p = self.pool(5)
        # A number is seconds: 1.5 means 1.5 s, neither 1.5 ms nor 1.5 days.
        h = lockctl.reserve(self.conn, p, 1, ttl=1.5)
        secs = self.one("SELECT extract(epoch FROM expires - created) FROM lockctl.holds WHERE id = %s", (h,))
        self.assertAlmostEqual(float(secs), 1.5, delta=0.1)
        h = lockctl.reserve(self.conn, p, 1, ttl="250 ms")
        secs = self.one("SELECT extract(epoch FROM expires - created) FROM lockctl.holds WHERE id = %s", (h,))
        self.assertAlmostEqual(float(secs), 0.25, delta=0.1)
        for bad in ("30", "soon", "5 fortnights", True, None):
            with self.assertRaises((TypeError, ValueError), msg=repr(bad)):
                lockctl.reserve(self.conn, p, 1, ttl=bad)
        with self.assertRaises(TypeError):
            lockctl.confirm(self.conn, "12")


@need_server
class TestPsycopg3(SyncCases, unittest.TestCase):
    driver = "psycopg"

    def connect(self, autocommit=True):
        import psycopg
        from support import DSN
        return psycopg.connect(DSN, autocommit=autocommit)


@need_server
class TestPsycopg2(SyncCases, unittest.TestCase):
    driver = "psycopg2"

    def connect(self, autocommit=False):
        # psycopg2's default: not autocommit.  The helpers leave no
        # transaction open behind them in either mode.
        import psycopg2
        from support import DSN
        return psycopg2.connect(DSN)

    def setUp(self):
        super().setUp()
        self.conn.autocommit = True


if __name__ == "__main__":
    unittest.main()
