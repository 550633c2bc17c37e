"""lockctl.aio with psycopg 3's AsyncConnection, against a real server."""

import asyncio
import datetime
import time
import unittest

import psycopg

import lockctl
import lockctl.aio
from support import DSN, Holder, admin, need_server, unique


async def apoll(cond, bound, what):
    deadline = time.monotonic() + bound
    while True:
        v = cond()
        if v:
            return v
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {bound} s waiting for {what}")
        await asyncio.sleep(0.02)


@need_server
class TestAsync(unittest.IsolatedAsyncioTestCase):
    @classmethod
    def setUpClass(cls):
        cls.admin = admin()

    @classmethod
    def tearDownClass(cls):
        cls.admin.close()

    def q(self, sql, params=()):
        cur = self.admin.execute(sql, params)
        return cur.fetchall() if cur.description is not None else []

    def one(self, sql, params=()):
        return self.q(sql, params)[0][0]

    async def asyncSetUp(self):
        self.conn = await psycopg.AsyncConnection.connect(DSN, autocommit=True)

    async def asyncTearDown(self):
        await self.conn.close()

    def table(self, ddl):
        t = unique("t")
        self.q(ddl.format(t=t))
        self.addCleanup(self.q, f"DROP TABLE {t}")
        return t

    async def test_lease_fenced_write_and_release(self):
        res = unique("res")
        t = self.table("CREATE TABLE {t} (token bigint)")
        async with lockctl.aio.Lease(DSN, res, ttl=0.6) as lease:
            self.assertIsInstance(lease.token, int)
            self.assertIsInstance(lease.expires_at, datetime.datetime)
            await apoll(lambda: lease.renewals >= 4, 10, "4 renewals")
            async with lease.fenced(self.conn) as c:
                await c.execute(f"INSERT INTO {t} VALUES (%s)", (lease.token,))
            self.assertFalse(lease.lost.is_set(), lease.lost_reason)
        self.assertEqual(self.q(f"SELECT token FROM {t}"), [(lease.token,)])
        self.assertEqual(self.one("SELECT count(*) FROM lockctl.leases WHERE resource = %s", (res,)), 0)

    async def test_not_granted(self):
        res = unique("res")
        async with lockctl.aio.Lease(DSN, res, ttl=10):
            with self.assertRaises(lockctl.LeaseNotGranted):
                async with lockctl.aio.Lease(DSN, res, ttl=10, wait=0.1):
                    self.fail("granted a held lease")

    async def test_takeover_stops_the_next_fenced_write(self):
        res = unique("res")
        t = self.table("CREATE TABLE {t} (token bigint)")
        seen = []

        async def on_lost(lease):
            seen.append(lease.lost_reason)
        lease = lockctl.aio.Lease(DSN, res, ttl=30, renew_every=20, on_lost=on_lost)
        self.assertTrue(await lease.acquire())
        self.q("SELECT lockctl.force_release(%s)", (res,))
        newer = self.one("SELECT lockctl.acquire(%s, 'next', '30 s')", (res,))
        with self.assertRaises(lockctl.LeaseLost):
            async with lease.fenced(self.conn) as c:
                await c.execute(f"INSERT INTO {t} VALUES (%s)", (lease.token,))
        await apoll(lambda: seen, 5, "the on_lost coroutine")
        self.assertTrue(lease.lost.is_set())
        self.assertEqual(self.one(f"SELECT count(*) FROM {t}"), 0)
        self.assertFalse(await lease.release())
        self.q("SELECT lockctl.release(%s, %s)", (res, newer))

    async def test_heartbeat_notices_a_takeover(self):
        res = unique("res")
        lease = lockctl.aio.Lease(DSN, res, ttl=3, renew_every=0.2)
        self.assertTrue(await lease.acquire())
        self.q("SELECT lockctl.force_release(%s)", (res,))
        await asyncio.wait_for(lease.lost.wait(), 5)
        self.assertIn("no longer held", lease.lost_reason)
        await lease.release()

    async def test_killed_heartbeat_connection_reconnects(self):
        res = unique("res")
        async with lockctl.aio.Lease(DSN, res, ttl=1.5) as lease:
            pid = lease.heartbeat_pid
            self.assertTrue(self.one("SELECT pg_terminate_backend(%s)", (pid,)))
            before = lease.renewals
            await apoll(lambda: lease.reconnects >= 1 and lease.renewals >= before + 2, 10,
                        "a reconnection and two renewals")
            self.assertFalse(lease.lost.is_set(), lease.lost_reason)
            self.assertNotEqual(lease.heartbeat_pid, pid)
            async with lease.fenced(self.conn):
                pass

    async def test_unreachable_server_reports_loss_at_expiry(self):
        res = unique("res")
        opened = []

        async def connect():
            if opened:
                raise lockctl.LockctlError("simulated: the server cannot be reached")
            opened.append(1)
            return await psycopg.AsyncConnection.connect(DSN)
        lease = lockctl.aio.Lease(connect, res, ttl=1.0)
        self.assertTrue(await lease.acquire())
        t0 = time.monotonic()
        self.q("SELECT pg_terminate_backend(%s)", (lease.heartbeat_pid,))
        await asyncio.wait_for(lease.lost.wait(), 5)
        self.assertLess(time.monotonic() - t0, 1.5)
        with self.assertRaises(lockctl.LeaseLost):
            async with lease.fenced(self.conn):
                self.fail("a fenced block ran after the loss")
        await lease.release()

    async def test_paused_holder_cannot_write(self):
        res = unique("res")
        t = self.table("CREATE TABLE {t} (token bigint, n int)")
        h = Holder("async", res, 1.0, t)
        try:
            token = int((await asyncio.to_thread(h.expect, "token ")).split()[1])
            h.pause()
            deadline = time.monotonic() + 10
            while self.one("SELECT count(*) FROM lockctl.leases WHERE resource = %s", (res,)):
                self.assertLess(time.monotonic(), deadline, "the paused holder's lease did not expire")
                await asyncio.sleep(0.05)
            newer = self.one("SELECT lockctl.acquire(%s, 'successor', '30 s')", (res,))
            self.assertGreater(newer, token)
            h.resume()
            h.send("write 1")
            await asyncio.to_thread(h.expect, "lost: ")
            self.assertEqual(self.one(f"SELECT count(*) FROM {t}"), 0)
            self.q("SELECT lockctl.release(%s, %s)", (res, newer))
        finally:
            h.resume()
            self.assertEqual(h.finish(), 0)

    async def test_concurrent_increments_converge(self):
        t = self.table("CREATE TABLE {t} (id int PRIMARY KEY, n int NOT NULL, version bigint)")
        self.q(f"SELECT lockctl.enable_versioning('{t}')")
        self.q(f"INSERT INTO {t} (id, n) VALUES (1, 0)")
        workers, each = 5, 12
        retries = []

        async def increment(conn):
            cur = await conn.execute(f"SELECT n, version FROM {t} WHERE id = 1")
            n, version = await cur.fetchone()
            await asyncio.sleep(0.002)
            return await lockctl.aio.update_versioned(conn, t, 1, version, {"n": n + 1})

        async def worker():
            async with await psycopg.AsyncConnection.connect(DSN, autocommit=True) as conn:
                for _ in range(each):
                    await lockctl.aio.run_in_transaction(conn, increment, attempts=200, max_delay=0.05,
                                                         on_retry=lambda a, e, d: retries.append(a))
        await asyncio.wait_for(asyncio.gather(*(worker() for _ in range(workers))), 120)
        self.assertEqual(self.q(f"SELECT n, version FROM {t}"), [(workers * each, workers * each + 1)])
        self.assertGreater(len(retries), 0, "no conflict happened: the retry path was not exercised")

    async def test_idempotent_reserve_under_concurrent_duplicates(self):
        p = unique("pool")
        self.q("SELECT lockctl.create_pool(%s, 5)", (p,))
        self.addCleanup(self.q, "SELECT lockctl.drop_pool(%s)", (p,))
        key = lockctl.new_idempotency_key()
        got = await asyncio.wait_for(asyncio.gather(
            *(lockctl.aio.reserve_idempotent(DSN, p, key, 1, "dup", ttl="1 min") for _ in range(8))), 60)
        self.assertEqual(len(set(got)), 1, got)
        self.assertEqual(self.one("SELECT count(*) FROM lockctl.holds WHERE resource = %s", (p,)), 1)
        self.assertEqual(await lockctl.aio.available(self.conn, p), 4)
        self.assertIs(await lockctl.aio.confirm(self.conn, got[0]), True)
        self.assertIsInstance(await lockctl.aio.extend(self.conn, await lockctl.aio.reserve(self.conn, p), 5),
                              datetime.datetime)

    async def test_run_once_under_concurrent_duplicates(self):
        t = self.table("CREATE TABLE {t} (id serial PRIMARY KEY)")
        key = lockctl.new_idempotency_key()

        async def effect(conn):
            cur = await conn.execute(f"INSERT INTO {t} DEFAULT VALUES RETURNING id")
            return {"effect": (await cur.fetchone())[0]}

        async def duplicate():
            async with await psycopg.AsyncConnection.connect(DSN, autocommit=True) as conn:
                return await lockctl.aio.run_once(conn, key, effect)
        got = await asyncio.wait_for(asyncio.gather(*(duplicate() for _ in range(6))), 60)
        self.assertEqual(self.one(f"SELECT count(*) FROM {t}"), 1)
        self.assertEqual(sorted(r for _, r in got), [False] + [True] * 5)
        self.assertEqual(len({r["effect"] for r, _ in got}), 1)

    async def test_update_versioned_traps(self):
        t = self.table("CREATE TABLE {t} (id int PRIMARY KEY, v text, version bigint)")
        c = self.table("CREATE TABLE {t} (a int, b text, version bigint, PRIMARY KEY (a, b))")
        self.q(f"SELECT lockctl.enable_versioning('{t}'), lockctl.enable_versioning('{c}')")
        self.q(f"INSERT INTO {t} (id, v) VALUES (42, 'a')")
        self.q(f"INSERT INTO {c} (a, b) VALUES (1, 'x')")
        self.assertEqual(await lockctl.aio.update_versioned(self.conn, t, 42, 1, {"v": "b"}), 2)
        self.assertEqual(await lockctl.aio.update_versioned(self.conn, c, {"a": 1, "b": "x"}, 1), 2)
        with self.assertRaises(psycopg.errors.SerializationFailure):
            await lockctl.aio.update_versioned(self.conn, t, 42, 1, {"v": "stale"})


if __name__ == "__main__":
    unittest.main()
