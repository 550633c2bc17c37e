"""The asyncio half, for psycopg 3's AsyncConnection: the same API as the
sync one, with coroutines, an asyncio task as heartbeat and an asyncio.Event
for loss.

    async with lockctl.aio.Lease(dsn, "nightly-report", ttl=30) as lease:
        async with lease.fenced(conn):
            await conn.execute("UPDATE ...")
"""

import asyncio
import contextlib
import time

from ._common import (RETRYABLE, SQL, LeaseLost, LeaseNotGranted, backoff, claim_params, default_owner,
                      id_param, interval, is_connection_error, is_fence_failure, seconds,
                      sqlstate, to_json, versioned_sql)


async def execute(conn, sql, params=()):
    async with conn.cursor() as cur:
        await cur.execute(sql, params)
        return await cur.fetchall() if cur.description is not None else []


async def _value(conn, sql, params=()):
    rows = await execute(conn, sql, params)
    return rows[0][0] if rows else None


def _opener(connect):
    if isinstance(connect, str):
        async def open_dsn():
            import psycopg
            return await psycopg.AsyncConnection.connect(connect, autocommit=True)
        return open_dsn
    if callable(connect):
        async def open_fn():
            conn = await connect()
            await conn.set_autocommit(True)
            return conn
        return open_fn
    raise TypeError("connect must be a libpq connection string or an async function that returns a new connection")


async def _close(conn):
    if conn is not None:
        try:
            await conn.close()
        except Exception:
            pass


@contextlib.asynccontextmanager
async def transaction(conn):
    """BEGIN ... COMMIT around the block (a savepoint inside a transaction),
    ROLLBACK when it raises."""
    async with conn.transaction():
        yield conn


async def retry(fn, *args, attempts=10, base_delay=0.01, max_delay=1.0, retry_on=RETRYABLE,
                on_retry=None, **kwargs):
    """await fn(*args, **kwargs), again after 40001 / 40P01 with jittered
    back-off, as lockctl.retry; a lost lease is never retried."""
    if attempts < 1:
        raise ValueError("attempts must be at least 1")
    for attempt in range(attempts):
        try:
            return await fn(*args, **kwargs)
        except LeaseLost:
            raise
        except Exception as e:
            if sqlstate(e) not in retry_on or is_fence_failure(e) or attempt == attempts - 1:
                raise
            delay = backoff(attempt, base_delay, max_delay)
            if on_retry is not None:
                on_retry(attempt + 1, e, delay)
            await asyncio.sleep(delay)


async def run_in_transaction(conn, fn, *args, attempts=10, base_delay=0.01, max_delay=1.0,
                             on_retry=None, **kwargs):
    """await fn(conn, ...) in a transaction, retried whole on 40001 / 40P01."""
    async def once():
        async with conn.transaction():
            return await fn(conn, *args, **kwargs)
    return await retry(once, attempts=attempts, base_delay=base_delay, max_delay=max_delay,
                       on_retry=on_retry)


async def update_versioned(conn, table, key, expected_version, changes=None):
    sql, sent = versioned_sql(key)
    return await _value(conn, sql, (table, sent, id_param(expected_version), to_json(changes or {})))


async def reserve(conn, resource, quantity=1, holder=None, ttl=300, idempotency_key=None):
    return await _value(conn, SQL["reserve"], (resource, id_param(quantity), holder, interval(ttl, "ttl"),
                                               idempotency_key))


async def confirm(conn, hold_id):
    return await _value(conn, SQL["confirm"], (id_param(hold_id),))


async def cancel(conn, hold_id):
    return await _value(conn, SQL["cancel"], (id_param(hold_id),))


async def extend(conn, hold_id, ttl):
    return await _value(conn, SQL["extend"], (id_param(hold_id), interval(ttl, "ttl")))


async def available(conn, resource):
    return await _value(conn, SQL["available"], (resource,))


async def reserve_idempotent(connect, resource, idempotency_key, quantity=1, holder=None, ttl=300, *,
                             attempts=5, base_delay=0.05, max_delay=2.0):
    """As lockctl.reserve_idempotent: a new connection per attempt, the same
    key every time."""
    if not idempotency_key:
        raise ValueError("reserve_idempotent needs an idempotency_key (lockctl.new_idempotency_key())")
    open_conn = _opener(connect)
    for attempt in range(attempts):
        conn = None
        try:
            conn = await open_conn()
            return await reserve(conn, resource, quantity, holder, ttl, idempotency_key)
        except Exception as e:
            if not (is_connection_error(e) or sqlstate(e) in RETRYABLE) or attempt == attempts - 1:
                raise
            await asyncio.sleep(backoff(attempt, base_delay, max_delay))
        finally:
            await _close(conn)


async def run_once(conn, key, fn, *args, ttl=86400, fingerprint=None, wait=None, scope=None,
                   attempts=10, base_delay=0.01, max_delay=1.0, **kwargs):
    """As lockctl.run_once: (await fn(conn, ...), False) once per key, the
    stored result and True for every duplicate."""
    params = claim_params(key, ttl, fingerprint, wait, scope)

    async def once(conn):
        stored = await _value(conn, SQL["claim"], params)
        if stored is not None:
            return stored, True
        result = await fn(conn, *args, **kwargs)
        await execute(conn, SQL["complete"], (key, to_json({} if result is None else result), scope))
        return result, False
    return await run_in_transaction(conn, once, attempts=attempts, base_delay=base_delay, max_delay=max_delay)


class Lease:
    """The asyncio lease: the heartbeat is a task on the running loop, with
    its own AsyncConnection; each renew is bounded by the time left before
    the expiry (asyncio.wait_for), so loss is declared at the expiry at the
    latest, even when the server does not answer.  `lost` is an
    asyncio.Event; on_lost(lease) is called once (a coroutine function is
    awaited in a task)."""

    def __init__(self, connect, resource, owner=None, ttl=30.0, wait=0.0, *,
                 renew_every=None, on_lost=None):
        self.resource = resource
        self.owner = owner or default_owner()
        self.ttl = seconds(ttl, "ttl")
        self.wait = seconds(wait, "wait")
        self.renew_every = seconds(renew_every, "renew_every") if renew_every is not None else self.ttl / 3
        if not 0 < self.renew_every < self.ttl:
            raise ValueError("renew_every must be above 0 and below ttl")
        self.on_lost = on_lost
        self.token = None
        self.expires_at = None
        self.renewals = 0
        self.reconnects = 0
        self.lost = asyncio.Event()
        self.lost_reason = None
        self._open = _opener(connect)
        self._conn = None
        self._deadline = 0.0
        self._task = None

    async def acquire(self):
        if self.token is not None:
            raise RuntimeError("this Lease was acquired already; make a new one")
        self._conn = await self._open()
        try:
            token = await _value(self._conn, SQL["acquire"], (self.resource, self.owner,
                                                               interval(self.ttl, "ttl"),
                                                               interval(self.wait, "wait")))
        except BaseException:
            await _close(self._conn)
            self._conn = None
            raise
        if token is None:
            await _close(self._conn)
            self._conn = None
            return False
        self.token = token
        # Renew at once: the expiry counted here then starts before the
        # server's (acquire may have waited).
        sent = time.monotonic()
        try:
            self.expires_at = await _value(self._conn, SQL["renew"],
                                           (self.resource, token, interval(self.ttl, "ttl")))
        except Exception as e:
            if sqlstate(e) != "40001":
                # Granted, but not kept: give it back.
                with contextlib.suppress(Exception):
                    await _value(self._conn, SQL["release"], (self.resource, token))
                await _close(self._conn)
                self._conn, self.token = None, None
                raise
            self._mark_lost(str(e).strip().splitlines()[0])
            return True
        self._deadline = sent + self.ttl
        await self._limit(self._conn)
        self._task = asyncio.get_running_loop().create_task(self._heartbeat())
        return True

    async def release(self):
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task
            self._task = None
        conn, self._conn = self._conn, None
        if self.token is None or self.lost.is_set():
            await _close(conn)
            return False
        try:
            for attempt in (1, 2):
                try:
                    if conn is None or conn.closed:
                        conn = await self._open()
                    return bool(await _value(conn, SQL["release"], (self.resource, self.token)))
                except Exception as e:
                    if attempt == 2 or not is_connection_error(e):
                        raise
                    await _close(conn)
                    conn = None
        finally:
            self._mark_lost("released", notify=False)
            await _close(conn)

    async def __aenter__(self):
        if not await self.acquire():
            raise LeaseNotGranted(self.resource, self.wait)
        return self

    async def __aexit__(self, *exc):
        await self.release()
        return False

    def check(self):
        if self.token is None:
            raise RuntimeError("the lease was never acquired")
        if not self.lost.is_set() and time.monotonic() >= self._deadline:
            self._mark_lost("not renewed before its expiry")
        if self.lost.is_set():
            raise LeaseLost(self.resource, self.token, self.lost_reason)

    @contextlib.asynccontextmanager
    async def fenced(self, conn):
        self.check()
        async with conn.transaction():
            try:
                await execute(conn, SQL["fence"], (self.resource, self.token))
            except Exception as e:
                if sqlstate(e) == "40001":
                    reason = str(e).strip().splitlines()[0]
                    self._mark_lost(reason)
                    raise LeaseLost(self.resource, self.token, reason) from e
                raise
            yield conn

    async def run_fenced(self, conn, fn, *args, **kwargs):
        async with self.fenced(conn):
            return await fn(conn, *args, **kwargs)

    @property
    def heartbeat_pid(self):
        conn = self._conn
        return conn.info.backend_pid if conn is not None and not conn.closed else None

    async def _limit(self, conn):
        await execute(conn, "SELECT pg_catalog.set_config('statement_timeout', %s, false), "
                      "pg_catalog.set_config('application_name', 'lockctl lease heartbeat', false)",
                      (f"{max(1, int(self.renew_every * 1000))}ms",))

    def _mark_lost(self, reason, notify=True):
        if self.lost.is_set():
            return
        self.lost_reason = reason
        self.lost.set()
        if notify and self.on_lost is not None:
            try:
                r = self.on_lost(self)
                if asyncio.iscoroutine(r):
                    asyncio.get_running_loop().create_task(r)
            except Exception:
                pass

    async def _renew_once(self):
        if self._conn is None or self._conn.closed:
            await _close(self._conn)
            self._conn = await self._open()
            self.reconnects += 1
            await self._limit(self._conn)
        return await _value(self._conn, SQL["renew"], (self.resource, self.token, interval(self.ttl, "ttl")))

    async def _heartbeat(self):
        delay = self.renew_every
        while not self.lost.is_set():
            left = self._deadline - time.monotonic()
            await asyncio.sleep(max(0.0, min(delay, left - 0.001)))
            left = self._deadline - time.monotonic()
            if left <= 0:
                self._mark_lost("not renewed before its expiry (heartbeat late or server unreachable)")
                return
            sent = time.monotonic()
            try:
                expires = await asyncio.wait_for(self._renew_once(), left)
            except asyncio.TimeoutError:
                await _close(self._conn)
                self._conn = None
                self._mark_lost("not renewed before its expiry (server did not answer)")
                return
            except Exception as e:
                if sqlstate(e) == "40001":
                    self._mark_lost(str(e).strip().splitlines()[0])
                    return
                if is_connection_error(e) or self._conn is None or self._conn.closed:
                    await _close(self._conn)
                    self._conn = None
                delay = min(self.renew_every, 0.1 + self.renew_every / 10)
                continue
            self._deadline = sent + self.ttl
            self.expires_at = expires
            self.renewals += 1
            delay = self.renew_every
