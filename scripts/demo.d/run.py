#!/usr/bin/python3
"""The lockctl demonstration: race conditions without lockctl, and with it.

    /usr/bin/python3 scripts/demo.d/run.py "host=127.0.0.1 port=5499 dbname=lockctl_demo"
    /usr/bin/python3 scripts/demo.d/run.py --check "..."   exit 1 unless every
                                       lockctl outcome is right, 3 if some
                                       could not run (functions missing)

scripts/demo runs it against the scratch server it starts; any database with
the lockctl extension will do (the role must be able to create schema demo,
pools and leases).  Every scenario runs twice, the way applications commonly
write it ("without lockctl") and with lockctl's functions ("with lockctl"),
with the same clients doing the same work: each client is a thread with its
own connection, all released at once by a barrier, and each waits a few
milliseconds between what it reads and what it writes, as an application
does while it computes.  The table shows what actually happened.

Every connection has a statement_timeout, every wait a bound: the demo never
hangs.  Its tables live in schema demo, dropped and made again at each run.
"""

import argparse
import select
import sys
import textwrap
import threading
import time

import psycopg
from psycopg import errors

CLIENTS = 16            # concurrent clients per scenario
THINK = 0.003           # seconds between a client's read and its write
JOIN_BOUND = 30.0       # no scenario side may run longer than this

OPTIONS = ("-c statement_timeout=10s -c lock_timeout=5s "
           "-c idle_in_transaction_session_timeout=30s")


class Unavailable(Exception):
    """lockctl's side of a scenario needs functions this build lacks."""


def connect(dsn):
    return psycopg.connect(dsn, autocommit=True, connect_timeout=10,
                           options=OPTIONS, application_name="lockctl-demo")


def run_clients(dsn, n, body):
    """Run body(conn, i) in n threads, each with its own connection, all
    started together.  Returns the list of results; raises the first error."""
    conns = [connect(dsn) for _ in range(n)]
    barrier = threading.Barrier(n, timeout=JOIN_BOUND)
    results = [None] * n
    failures = []

    def client(i):
        try:
            barrier.wait()
            results[i] = body(conns[i], i)
        except BaseException as e:  # reported by the main thread
            failures.append(e)
            barrier.abort()

    threads = [threading.Thread(target=client, args=(i,), daemon=True)
               for i in range(n)]
    for t in threads:
        t.start()
    deadline = time.monotonic() + JOIN_BOUND
    for t in threads:
        t.join(max(0.0, deadline - time.monotonic()))
    hung = any(t.is_alive() for t in threads)
    for c in conns:
        if not hung:
            c.close()
    if hung:
        raise RuntimeError(f"clients still running after {JOIN_BOUND:.0f} s")
    if failures:
        raise failures[0]
    return results


def one(conn, sql, params=None):
    row = conn.execute(sql, params).fetchone()
    return row[0] if row else None


class Demo:
    def __init__(self, dsn):
        self.dsn = dsn
        self.admin = connect(dsn)
        self.functions = {r[0] for r in self.admin.execute(
            "SELECT p.proname FROM pg_catalog.pg_proc AS p "
            "WHERE p.pronamespace = 'lockctl'::regnamespace")}

    def need(self, *names):
        missing = [n for n in names if n not in self.functions]
        if missing:
            raise Unavailable("not in this build: " +
                              ", ".join(f"lockctl.{n}()" for n in missing))

    def fresh_pool(self, name, capacity):
        """A pool of that capacity, made anew."""
        self.need("create_pool", "drop_pool")
        try:
            self.admin.execute("SELECT lockctl.drop_pool(%s)", (name,))
        except errors.UndefinedObject:
            pass
        self.admin.execute("SELECT lockctl.create_pool(%s, %s)", (name, capacity))

    def setup(self):
        a = self.admin
        a.execute("SET client_min_messages = warning")
        if "disable_versioning" in self.functions:
            # Take the trigger off the last run's table before dropping it.
            try:
                a.execute("SELECT lockctl.disable_versioning('demo.account')")
            except psycopg.Error:
                pass        # no such table, or not versioned: nothing to undo
        a.execute("DROP SCHEMA IF EXISTS demo CASCADE")
        a.execute("CREATE SCHEMA demo")

    # -- 1. the lost update ---------------------------------------------------
    DEPOSITS = 10

    def lost_update_naive(self):
        a = self.admin
        a.execute("CREATE TABLE demo.account_naive (id int PRIMARY KEY, balance bigint NOT NULL)")
        a.execute("INSERT INTO demo.account_naive VALUES (1, 1000)")

        def client(conn, i):
            for _ in range(self.DEPOSITS):
                balance = one(conn, "SELECT balance FROM demo.account_naive WHERE id = 1")
                time.sleep(THINK)
                conn.execute("UPDATE demo.account_naive SET balance = %s WHERE id = 1",
                             (balance + 10,))

        run_clients(self.dsn, CLIENTS, client)
        want = 1000 + CLIENTS * self.DEPOSITS * 10
        got = one(a, "SELECT balance FROM demo.account_naive WHERE id = 1")
        return (f"balance {got}, expected {want}: {want - got} lost "
                f"({(want - got) // 10} of {CLIENTS * self.DEPOSITS} deposits vanished)",
                None)

    def lost_update_lockctl(self):
        self.need("enable_versioning")
        a = self.admin
        a.execute("CREATE TABLE demo.account (id int PRIMARY KEY, balance bigint NOT NULL, "
                  "version bigint NOT NULL)")
        a.execute("SELECT lockctl.enable_versioning('demo.account')")
        a.execute("INSERT INTO demo.account (id, balance) VALUES (1, 1000)")
        retries = [0] * CLIENTS

        def client(conn, i):
            for _ in range(self.DEPOSITS):
                for attempt in range(500):
                    balance, version = conn.execute(
                        "SELECT balance, version FROM demo.account WHERE id = 1").fetchone()
                    time.sleep(THINK)
                    try:
                        # Send back the version that was read: the database
                        # refuses the write if someone wrote in between.
                        conn.execute("UPDATE demo.account SET balance = %s, version = %s "
                                     "WHERE id = 1", (balance + 10, version))
                        break
                    except errors.SerializationFailure:
                        retries[i] += 1
                else:
                    raise RuntimeError("a deposit was refused 500 times in a row")

        run_clients(self.dsn, CLIENTS, client)
        want = 1000 + CLIENTS * self.DEPOSITS * 10
        got, version = a.execute("SELECT balance, version FROM demo.account WHERE id = 1").fetchone()
        ok = got == want
        return (f"balance {got}, expected {want}: "
                + ("exact" if ok else f"WRONG by {want - got}")
                + f"; {sum(retries)} stale writes refused (40001) and retried; version {version}",
                ok)

    # -- 2. the last seat -----------------------------------------------------
    def last_seat_naive(self):
        a = self.admin
        a.execute("CREATE TABLE demo.flight_naive (flight text PRIMARY KEY, seats_left int NOT NULL)")
        a.execute("INSERT INTO demo.flight_naive VALUES ('LC42', 1)")
        a.execute("CREATE TABLE demo.booking_naive (passenger int PRIMARY KEY)")

        def client(conn, i):
            with conn.transaction():
                left = one(conn, "SELECT seats_left FROM demo.flight_naive WHERE flight = 'LC42'")
                if left < 1:
                    return False
                time.sleep(THINK)
                conn.execute("INSERT INTO demo.booking_naive VALUES (%s)", (i,))
                conn.execute("UPDATE demo.flight_naive SET seats_left = seats_left - 1 "
                             "WHERE flight = 'LC42'")
            return True

        run_clients(self.dsn, CLIENTS, client)
        booked = one(a, "SELECT count(*) FROM demo.booking_naive")
        left = one(a, "SELECT seats_left FROM demo.flight_naive")
        return (f"{booked} passengers hold the 1 seat; seats_left = {left}", None)

    def last_seat_lockctl(self):
        self.need("reserve", "confirm")
        a = self.admin
        self.fresh_pool("demo:flight LC42", 1)
        a.execute("CREATE TABLE demo.booking (passenger int PRIMARY KEY, hold bigint NOT NULL)")

        def client(conn, i):
            with conn.transaction():
                hold = one(conn, "SELECT lockctl.reserve('demo:flight LC42', 1, %s, '1 minute')",
                           (f"passenger {i}",))
                if hold is None:
                    return False            # sold out: a normal answer
                time.sleep(THINK)
                conn.execute("SELECT lockctl.confirm(%s)", (hold,))
                conn.execute("INSERT INTO demo.booking VALUES (%s, %s)", (i, hold))
            return True

        results = run_clients(self.dsn, CLIENTS, client)
        booked = one(a, "SELECT count(*) FROM demo.booking")
        avail = one(a, "SELECT lockctl.available('demo:flight LC42')")
        ok = booked == 1 and avail == 0 and sum(results) == 1
        return (f"{booked} booking, {results.count(False)} told sold out (NULL); "
                f"available = {avail}", ok)

    # -- 3. the flash-sale oversell ---------------------------------------------
    STOCK = 40
    TRIES = 5               # each buyer tries to buy this many units

    def flash_sale_naive(self):
        a = self.admin
        a.execute("CREATE TABLE demo.product_naive (sku text PRIMARY KEY, stock int NOT NULL)")
        a.execute("INSERT INTO demo.product_naive VALUES ('phone', %s)", (self.STOCK,))
        a.execute("CREATE TABLE demo.order_naive (id serial PRIMARY KEY, buyer int NOT NULL)")

        def client(conn, i):
            for _ in range(self.TRIES):
                with conn.transaction():
                    stock = one(conn, "SELECT stock FROM demo.product_naive WHERE sku = 'phone'")
                    if stock < 1:
                        return
                    time.sleep(THINK)
                    conn.execute("UPDATE demo.product_naive SET stock = stock - 1 "
                                 "WHERE sku = 'phone'")
                    conn.execute("INSERT INTO demo.order_naive (buyer) VALUES (%s)", (i,))

        run_clients(self.dsn, CLIENTS, client)
        sold = one(a, "SELECT count(*) FROM demo.order_naive")
        stock = one(a, "SELECT stock FROM demo.product_naive")
        return (f"{sold} sold of {self.STOCK}: oversold by {sold - self.STOCK}, "
                f"stock = {stock}", None)

    def flash_sale_lockctl(self):
        self.need("reserve", "confirm", "available")
        a = self.admin
        pool = "demo:phone"
        self.fresh_pool(pool, self.STOCK)
        a.execute("CREATE TABLE demo.orders (hold bigint PRIMARY KEY, buyer int NOT NULL)")
        abandoned = [0] * CLIENTS
        deadline = time.monotonic() + 20

        def client(conn, i):
            bought = 0
            n = 0
            while bought < self.TRIES and time.monotonic() < deadline:
                # Every fourth checkout is abandoned: its hold (1 s) is left to
                # expire, and the worker puts the unit back on sale.
                n += 1
                walks_away = (i + n) % 4 == 0
                hold = one(conn, "SELECT lockctl.reserve(%s, 1, %s, %s)",
                           (pool, f"buyer {i}", "1 s" if walks_away else "30 s"))
                if hold is None:
                    # Nothing free now.  Over when everything is paid for;
                    # otherwise abandoned holds may still come back.
                    if one(conn, "SELECT count(*) FROM demo.orders") >= self.STOCK:
                        return
                    time.sleep(0.05)
                    continue
                if walks_away:
                    abandoned[i] += 1
                    continue
                time.sleep(THINK)           # the payment
                with conn.transaction():
                    conn.execute("SELECT lockctl.confirm(%s)", (hold,))
                    conn.execute("INSERT INTO demo.orders VALUES (%s, %s)", (hold, i))
                bought += 1

        run_clients(self.dsn, CLIENTS, client)
        sold = one(a, "SELECT count(*) FROM demo.orders")
        avail = one(a, "SELECT lockctl.available(%s)", (pool,))
        ok = sold == self.STOCK and avail == 0
        if ok:
            return (f"{sold} sold of {self.STOCK}: sold out exactly, 0 oversold; "
                    f"{sum(abandoned)} abandoned holds expired and went back on sale", ok)
        return (f"{sold} sold of {self.STOCK} after 20 s, available {avail}, "
                f"{self.STOCK - sold - avail} units still held (WRONG); "
                f"{sum(abandoned)} checkouts abandoned", ok)

    # -- 4. the paused lock holder -----------------------------------------------
    TTL_MS = 500

    def paused_holder(self, take, write):
        """Holder A takes the lock, pauses (a GC pause, a stalled VM) past
        its expiry; B takes the lock and writes; then A wakes and writes.
        take(conn, who) -> token; write(conn, who, token) -> error or None."""
        a_has_it = threading.Event()
        b_done = threading.Event()
        out = {}

        def holder_a(conn, _):
            out["A token"] = take(conn, "A")
            a_has_it.set()
            if not b_done.wait(10):
                raise RuntimeError("B never wrote")
            out["A"] = write(conn, "A", out["A token"])

        def holder_b(conn, _):
            if not a_has_it.wait(10):
                raise RuntimeError("A never took the lock")
            t0 = time.monotonic()
            out["B token"] = take(conn, "B")
            out["B waited"] = time.monotonic() - t0
            out["B"] = write(conn, "B", out["B token"])
            b_done.set()

        run_clients(self.dsn, 2, lambda conn, i: (holder_a, holder_b)[i](conn, i))
        return out

    def paused_holder_naive(self):
        a = self.admin
        a.execute("CREATE TABLE demo.lock_naive (resource text PRIMARY KEY, owner text NOT NULL, "
                  "expires_at timestamptz NOT NULL)")
        a.execute("CREATE TABLE demo.report_naive (id int PRIMARY KEY, written_by text)")
        a.execute("INSERT INTO demo.report_naive VALUES (1, NULL)")

        def take(conn, who):
            # SET report <who> NX PX 500, in SQL: take it if free or expired.
            for _ in range(200):
                if one(conn, "INSERT INTO demo.lock_naive VALUES ('report', %s, "
                             "clock_timestamp() + %s * interval '1 ms') "
                             "ON CONFLICT (resource) DO UPDATE "
                             "SET owner = excluded.owner, expires_at = excluded.expires_at "
                             "WHERE demo.lock_naive.expires_at < clock_timestamp() "
                             "RETURNING owner", (who, self.TTL_MS)) == who:
                    return None
                time.sleep(0.05)
            raise RuntimeError(f"{who} never got the lock")

        def write(conn, who, token):
            conn.execute("UPDATE demo.report_naive SET written_by = %s WHERE id = 1", (who,))

        self.paused_holder(take, write)
        final = one(a, "SELECT written_by FROM demo.report_naive")
        return (f"A's lock expired, B took it and wrote; A woke and wrote too: "
                f"the report is {final}'s, B's work is lost" if final == "A" else
                f"the report is {final}'s (the race did not show this time)", None)

    def paused_holder_lockctl(self):
        self.need("acquire", "fence", "release")
        a = self.admin
        a.execute("CREATE TABLE demo.report (id int PRIMARY KEY, written_by text, token bigint)")
        a.execute("INSERT INTO demo.report VALUES (1, NULL, NULL)")
        resource = "demo:report"
        # Where the build has fenced tables, the table checks the token
        # itself: then even a write that forgets fence() is refused.
        table_fenced = "enable_fencing" in self.functions
        if table_fenced:
            a.execute("SELECT lockctl.enable_fencing('demo.report', %s, 'token')", (resource,))
        forgot = {}

        def take(conn, who):
            # B waits (without polling) until A's lease expires.
            token = one(conn, "SELECT lockctl.acquire(%s, %s, %s * interval '1 ms', '5 s')",
                        (resource, f"worker {who}", self.TTL_MS))
            if token is None:
                raise RuntimeError(f"{who} was not granted the lease within 5 s")
            return token

        def write(conn, who, token):
            if who == "A" and table_fenced:
                # A code path (an admin script, another service) that
                # forgets to fence: the table refuses it by itself.
                try:
                    conn.execute("UPDATE demo.report SET written_by = %s WHERE id = 1", (who,))
                    forgot["A"] = None
                except errors.SerializationFailure as e:
                    forgot["A"] = e
            try:
                with conn.transaction():
                    conn.execute("SELECT lockctl.fence(%s, %s)", (resource, token))
                    conn.execute("UPDATE demo.report SET written_by = %s, token = %s "
                                 "WHERE id = 1", (who, token))
            except errors.SerializationFailure as e:
                return e
            if who == "B":
                conn.execute("SELECT lockctl.release(%s, %s)", (resource, token))
            return None

        out = self.paused_holder(take, write)
        final, ftoken = a.execute("SELECT written_by, token FROM demo.report").fetchone()
        ok = (final == "B" and out["B"] is None and out["A"] is not None
              and out["B token"] > out["A token"] and ftoken == out["B token"]
              and (not table_fenced or forgot.get("A") is not None))
        if out["A"] is not None:
            detail = (f"A's stale write refused with {out['A'].sqlstate}: its token "
                      f"{out['A token']}, B's {out['B token']}; ")
        else:
            detail = "A's stale write went through (WRONG); "
        if table_fenced:
            detail += ("A's write without fence() refused by the table itself "
                       f"({forgot['A'].sqlstate}); " if forgot.get("A") is not None else
                       "A's write without fence() went through (WRONG); ")
        return (detail + f"B's report kept; B was handed the lease at A's expiry, "
                f"after {out['B waited']:.1f} s", ok)

    # -- 5. the abandoned checkout -------------------------------------------------
    CARTS = 10
    PAYERS = 4
    HOLD_TTL = 2.0

    def abandoned_naive(self):
        a = self.admin
        a.execute("CREATE TABLE demo.ticket_naive (event text PRIMARY KEY, available int NOT NULL "
                  "CHECK (available >= 0))")
        a.execute("INSERT INTO demo.ticket_naive VALUES ('concert', %s)", (self.CARTS,))

        def client(conn, i):
            # Into the cart: the ticket is taken off sale until checkout ends.
            conn.execute("UPDATE demo.ticket_naive SET available = available - 1 "
                         "WHERE event = 'concert' AND available > 0")
            # The first PAYERS pay; the others close the tab.
            return i < self.PAYERS

        run_clients(self.dsn, self.CARTS, client)
        self.naive_abandoned_at = time.monotonic()
        return None

    def abandoned_naive_after(self, waited):
        avail = one(self.admin, "SELECT available FROM demo.ticket_naive")
        return (f"{self.CARTS - self.PAYERS - avail} tickets stuck in abandoned carts: "
                f"{avail} available {waited:.1f} s later, and forever, "
                f"unless someone writes a cleanup job", None)

    def abandoned_lockctl(self):
        self.need("reserve", "confirm", "available")
        a = self.admin
        pool = "demo:concert"
        self.fresh_pool(pool, self.CARTS)

        def client(conn, i):
            hold = one(conn, "SELECT lockctl.reserve(%s, 1, %s, %s * interval '1 s')",
                       (pool, f"shopper {i}", self.HOLD_TTL))
            if hold is None:
                raise RuntimeError("a shopper found no ticket in a pool of enough")
            if i < self.PAYERS:
                conn.execute("SELECT lockctl.confirm(%s)", (hold,))
            # The others close the tab: their connection ends, nothing more.

        t0 = time.monotonic()
        run_clients(self.dsn, self.CARTS, client)
        right_after = one(a, "SELECT lockctl.available(%s)", (pool,))
        want = self.CARTS - self.PAYERS
        avail = right_after
        deadline = t0 + self.HOLD_TTL + 10
        while avail < want and time.monotonic() < deadline:
            time.sleep(0.1)
            avail = one(a, "SELECT lockctl.available(%s)", (pool,))
        waited = time.monotonic() - t0
        ok = right_after == 0 and avail == want
        return ((f"{want} unpaid holds ({self.HOLD_TTL:.0f} s ttl) came back by themselves: "
                 f"available {right_after} -> {avail} after {waited:.1f} s, no client call")
                if ok else
                (f"available {right_after} -> {avail} after {waited:.1f} s, "
                 f"expected {want} (WRONG)"), ok)


    # -- 6. the duplicate webhook --------------------------------------------
    COPIES = 4              # deliveries of one webhook at the same instant

    def webhook_naive(self):
        """The usual advice: look the event up in a processed-ids table,
        charge, record the id.  A check-then-act race between copies."""
        a = self.admin
        a.execute("CREATE TABLE demo.charges_naive (event text, copy int)")
        a.execute("CREATE TABLE demo.processed_naive (event text PRIMARY KEY)")

        def deliver(conn, i):
            with conn.transaction():
                if one(conn, "SELECT count(*) FROM demo.processed_naive "
                             "WHERE event = 'evt_1'"):
                    return "200 (already processed)"
                time.sleep(THINK)
                conn.execute("INSERT INTO demo.charges_naive VALUES ('evt_1', %s)", (i,))
                conn.execute("INSERT INTO demo.processed_naive VALUES ('evt_1') "
                             "ON CONFLICT DO NOTHING")
            return f"201 charge by copy {i}"

        run_clients(self.dsn, self.COPIES, deliver)
        late = deliver(self.admin, self.COPIES)
        charged = one(a, "SELECT count(*) FROM demo.charges_naive")
        return (f"customer charged {charged} times for one payment; "
                f"the late retry got '{late}', not the original answer", None)

    def webhook_lockctl(self):
        """Claim the event id in the transaction that charges: duplicates
        wait for it, then replay its answer."""
        self.need("claim_request", "complete_request")
        a = self.admin
        a.execute("CREATE TABLE demo.charges (event text, copy int)")
        key = f"evt_1-{time.time_ns()}"     # a fresh event at every run

        def deliver(conn, i):
            with conn.transaction():
                earlier = one(conn, "SELECT lockctl.claim_request(%s)", (key,))
                if earlier is not None:
                    return earlier["answer"]
                time.sleep(THINK)
                conn.execute("INSERT INTO demo.charges VALUES ('evt_1', %s)", (i,))
                answer = f"201 charge by copy {i}"
                conn.execute("SELECT lockctl.complete_request(%s, "
                             "jsonb_build_object('answer', %s::text))", (key, answer))
            return answer

        answers = run_clients(self.dsn, self.COPIES, deliver)
        late = deliver(self.admin, self.COPIES)
        charged = one(a, "SELECT count(*) FROM demo.charges")
        ok = charged == 1 and len(set(answers + [late])) == 1
        return ((f"charged once; all {self.COPIES} copies and the late retry got "
                 f"the same answer ('{late}')") if ok else
                f"charged {charged} times, answers {sorted(set(answers + [late]))} (WRONG)",
                ok)

    # -- 7. the cache stampede ------------------------------------------------
    COMPUTE = 0.2           # seconds the expensive value takes to compute

    def stampede(self, table, fetch):
        """CLIENTS requests for one key that is not cached; fetch(conn, i)
        returns (value, how) with how 'computed', 'waited' or 'hit'.
        Returns (computations, answers)."""
        a = self.admin
        a.execute(f"CREATE TABLE demo.{table} (key text PRIMARY KEY, value text NOT NULL)")
        a.execute(f"CREATE TABLE demo.{table}_computed (request int NOT NULL)")
        answers = run_clients(self.dsn, CLIENTS, fetch)
        computed = one(a, f"SELECT count(*) FROM demo.{table}_computed")
        return computed, answers

    def compute(self, conn, table, i):
        """The expensive computation, counted; its value goes in the cache."""
        time.sleep(self.COMPUTE)
        value = f"report built by request {i}"
        conn.execute(f"INSERT INTO demo.{table}_computed VALUES (%s)", (i,))
        conn.execute(f"INSERT INTO demo.{table} VALUES ('report', %s) "
                     "ON CONFLICT (key) DO UPDATE SET value = excluded.value", (value,))
        return value

    def stampede_naive(self):
        def fetch(conn, i):
            value = one(conn, "SELECT value FROM demo.cache_naive WHERE key = 'report'")
            if value is not None:
                return value, "hit"
            return self.compute(conn, "cache_naive", i), "computed"

        computed, answers = self.stampede("cache_naive", fetch)
        return (f"the report was computed {computed} times for {CLIENTS} requests "
                f"({computed * self.COMPUTE:.1f} s of work for one value); "
                f"{len({v for v, _ in answers})} different values served", None)

    def stampede_lockctl(self):
        self.need("acquire", "release")
        resource = "demo:cache report"

        def fetch(conn, i):
            value = one(conn, "SELECT value FROM demo.cache WHERE key = 'report'")
            if value is not None:
                return value, "hit"
            # A miss: one request computes under the lease, the others wait
            # for it (no polling) and then find the value in the cache.
            token = one(conn, "SELECT lockctl.acquire(%s, %s, '30 s', '10 s')",
                        (resource, f"request {i}"))
            if token is None:
                raise RuntimeError(f"request {i} was not granted the lease within 10 s")
            try:
                value = one(conn, "SELECT value FROM demo.cache WHERE key = 'report'")
                if value is not None:
                    return value, "waited"
                return self.compute(conn, "cache", i), "computed"
            finally:
                conn.execute("SELECT lockctl.release(%s, %s)", (resource, token))

        computed, answers = self.stampede("cache", fetch)
        values = {v for v, _ in answers}
        waited = sum(1 for _, how in answers if how == "waited")
        hits = sum(1 for _, how in answers if how == "hit")
        ok = computed == 1 and len(values) == 1 and waited + hits == CLIENTS - 1
        return ((f"computed once for {CLIENTS} requests; {waited} waited for the lease "
                 f"and read the cached value, {hits} hit the cache; 1 value served")
                if ok else
                (f"computed {computed} times for {CLIENTS} requests, "
                 f"{len(values)} different values served (WRONG)"), ok)

    # -- 8. the waitlist walk-in -----------------------------------------------
    WALKINS = 4             # customers who keep trying the sold-out show
    REACT = 0.05            # seconds alice takes from the notice to her click

    def walkin(self, cancel, queue, notified, book, walk_in):
        """A sold-out show (1 seat, bob's), alice first on its waitlist, and
        WALKINS walk-ins trying every 5 ms.  Bob cancels; alice is told,
        takes REACT seconds and books.  cancel(conn) gives bob's seat back;
        queue(conn) puts alice in line; notified(conn, ctx) waits for her
        notice and returns what book needs; book(conn, ctx) -> True if she
        got the seat; walk_in(conn, i) -> True if walk-in i got a seat."""
        queued = threading.Event()
        alice_done = threading.Event()
        out = {"walk-ins": {}, "attempts": 0}
        count = threading.Lock()
        deadline = time.monotonic() + 10

        def bob(conn, _):
            if not queued.wait(10):
                raise RuntimeError("alice never joined the waitlist")
            time.sleep(0.05)            # the walk-ins are at it already
            out["freed at"] = time.monotonic()
            cancel(conn)

        def alice(conn, _):
            try:
                ctx = queue(conn)
                queued.set()
                ctx = notified(conn, ctx, deadline)
                out["notified at"] = time.monotonic()
                time.sleep(self.REACT)  # opening the mail, clicking the link
                out["clicked at"] = time.monotonic()
                out["alice"] = book(conn, ctx)
            finally:
                queued.set()
                alice_done.set()

        def walker(conn, i):
            while not alice_done.is_set() and time.monotonic() < deadline:
                with count:
                    out["attempts"] += 1
                if walk_in(conn, i):
                    out["walk-ins"][i] = time.monotonic()
                    return
                time.sleep(0.005)

        run_clients(self.dsn, 2 + self.WALKINS,
                    lambda conn, i: bob(conn, i) if i == 0 else
                    alice(conn, i) if i == 1 else walker(conn, i - 1))
        return out

    def walkin_naive(self):
        a = self.admin
        a.execute("CREATE TABLE demo.show_naive (show text PRIMARY KEY, seats_left int NOT NULL)")
        a.execute("INSERT INTO demo.show_naive VALUES ('premiere', 0)")
        a.execute("CREATE TABLE demo.seat_naive (customer text PRIMARY KEY)")
        a.execute("INSERT INTO demo.seat_naive VALUES ('bob')")
        a.execute("CREATE TABLE demo.waitlist_naive (id serial PRIMARY KEY, customer text NOT NULL)")
        a.execute("CREATE TABLE demo.mail_naive (customer text NOT NULL)")

        def try_book(conn, who):
            with conn.transaction():
                if one(conn, "SELECT seats_left FROM demo.show_naive") < 1:
                    return False
                time.sleep(THINK)
                if one(conn, "UPDATE demo.show_naive SET seats_left = seats_left - 1 "
                             "WHERE seats_left > 0 RETURNING seats_left") is None:
                    return False
                conn.execute("INSERT INTO demo.seat_naive VALUES (%s)", (who,))
            return True

        def cancel(conn):
            # Give the seat back, then mail the head of the waitlist.
            with conn.transaction():
                conn.execute("DELETE FROM demo.seat_naive WHERE customer = 'bob'")
                conn.execute("UPDATE demo.show_naive SET seats_left = seats_left + 1")
            conn.execute("INSERT INTO demo.mail_naive "
                         "SELECT customer FROM demo.waitlist_naive ORDER BY id LIMIT 1")

        def queue(conn):
            conn.execute("INSERT INTO demo.waitlist_naive (customer) VALUES ('alice')")

        def notified(conn, ctx, deadline):
            while not one(conn, "SELECT count(*) FROM demo.mail_naive WHERE customer = 'alice'"):
                if time.monotonic() > deadline:
                    raise RuntimeError("alice was never mailed")
                time.sleep(0.005)

        out = self.walkin(cancel, queue, notified, lambda conn, ctx: try_book(conn, "alice"),
                          lambda conn, i: try_book(conn, f"walk-in {i}"))
        if out.get("alice") is False and out["walk-ins"]:
            i, at = min(out["walk-ins"].items(), key=lambda kv: kv[1])
            return (f"bob cancelled; walk-in {i} took the seat "
                    f"{(at - out['freed at']) * 1000:.0f} ms later; alice, first in line, "
                    f"was mailed and clicked at {(out['clicked at'] - out['freed at']) * 1000:.0f} ms: "
                    f"sold out", None)
        return ("alice got the seat (the race did not show this time)", None)

    def walkin_lockctl(self):
        self.need("reserve", "cancel", "confirm", "wait_for", "available")
        a = self.admin
        pool = "demo:premiere"
        self.fresh_pool(pool, 1)
        bobs = one(a, "SELECT lockctl.reserve(%s, 1, 'bob', '10 min')", (pool,))

        def cancel(conn):
            # The seat comes back and, in this same transaction, becomes an
            # offer (a hold) for the head of the waitlist.
            conn.execute("SELECT lockctl.cancel(%s)", (bobs,))

        def queue(conn):
            conn.execute("LISTEN lockctl_offer")
            return one(conn, "SELECT lockctl.wait_for(%s, 1, 'alice', '1 min')", (pool,))

        def notified(conn, entry, deadline):
            # NOTIFY lockctl_offer (with the offer's hold id) wakes her
            # (the socket turns readable); the view lockctl.waitlist names
            # her entry's offer.
            while True:
                hold = one(conn, "SELECT offer_hold_id FROM lockctl.waitlist "
                                 "WHERE id = %s AND status = 'offered'", (entry,))
                if hold is not None:
                    return hold
                if time.monotonic() > deadline:
                    raise RuntimeError("alice was never offered the seat")
                select.select([conn.fileno()], [], [], 0.1)

        def book(conn, hold):
            return one(conn, "SELECT lockctl.confirm(%s)", (hold,)) is True

        def walk_in(conn, i):
            return one(conn, "SELECT lockctl.reserve(%s, 1, %s, '1 min')",
                       (pool, f"walk-in {i}")) is not None

        out = self.walkin(cancel, queue, notified, book, walk_in)
        avail = one(a, "SELECT lockctl.available(%s)", (pool,))
        ok = out.get("alice") is True and not out["walk-ins"] and avail == 0
        if ok:
            return (f"bob cancelled: the seat became alice's offer in the same transaction "
                    f"(NOTIFY lockctl_offer); {out['attempts']} walk-in attempts got NULL "
                    f"(sold out); alice confirmed at "
                    f"{(out['clicked at'] - out['freed at']) * 1000:.0f} ms; available = {avail}", ok)
        return (f"alice {'got' if out.get('alice') else 'lost'} the seat, "
                f"{len(out['walk-ins'])} walk-ins got one, available = {avail} (WRONG)", ok)


SCENARIOS = [
    ("lost update",
     f"{CLIENTS} clients add 10 to one balance, "
     f"{Demo.DEPOSITS} times each (read, compute, write)"),
    ("last seat", f"{CLIENTS} passengers book the last seat at once"),
    ("flash-sale oversell",
     f"{CLIENTS} buyers, {Demo.STOCK} phones in stock, up to {Demo.TRIES} each; "
     "every 4th checkout abandoned"),
    ("paused lock holder",
     f"A holds a {Demo.TTL_MS} ms lock, pauses past it; B takes over and writes; A wakes and writes"),
    ("abandoned checkout",
     f"{Demo.CARTS} shoppers put a ticket in their cart, {Demo.PAYERS} pay, the rest walk away"),
    ("duplicate webhook",
     f"a payment webhook delivered {Demo.COPIES} times at once, then retried later"),
    ("cache stampede",
     f"{CLIENTS} requests at once for one report that is not cached "
     f"({Demo.COMPUTE * 1000:.0f} ms to compute)"),
    ("waitlist walk-in",
     f"a sold-out show, alice first on the waitlist, {Demo.WALKINS} walk-ins trying "
     "every 5 ms; bob cancels"),
]


def cell(fn):
    """Run one side; return (text, ok) with ok None for the naive side,
    'unavailable' when lockctl lacks the functions."""
    try:
        return fn()
    except Unavailable as e:
        return (f"unavailable: {e}", "unavailable")
    except psycopg.Error as e:
        state = getattr(e, "sqlstate", None) or "?"
        return (f"error {state}: {str(e).strip().splitlines()[0]}", False)
    except Exception as e:  # a bug in the demo itself; show it, do not hang
        return (f"error: {e}", False)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("dsn", nargs="?", default="",
                    help="libpq connection string (default: the PG* environment variables)")
    ap.add_argument("--check", action="store_true",
                    help="exit 1 unless every lockctl outcome is right")
    args = ap.parse_args()

    try:
        demo = Demo(args.dsn)
        demo.setup()
    except psycopg.Error as e:
        print(f"error: cannot prepare the demo database: {str(e).strip()}", file=sys.stderr)
        sys.exit(2)
    rows = []
    started = time.monotonic()

    def step(i, naive, locked):
        name, what = SCENARIOS[i]
        t0 = time.monotonic()
        print(f"  {i + 1}. {name}: {what} ...", end="", flush=True)
        n = cell(naive) if naive else None
        l = cell(locked)
        print(f" {time.monotonic() - t0:.1f} s", flush=True)
        return n, l

    n, l = step(0, demo.lost_update_naive, demo.lost_update_lockctl)
    rows.append((0, n, l))
    n, l = step(1, demo.last_seat_naive, demo.last_seat_lockctl)
    rows.append((1, n, l))
    n, l = step(2, demo.flash_sale_naive, demo.flash_sale_lockctl)
    rows.append((2, n, l))
    n, l = step(3, demo.paused_holder_naive, demo.paused_holder_lockctl)
    rows.append((3, n, l))

    # 5: both sides abandon carts; the naive side is looked at again once
    # lockctl's units are back (or after the holds' ttl and a second, if
    # lockctl's side could not run).
    name, what = SCENARIOS[4]
    t0 = time.monotonic()
    print(f"  5. {name}: {what} ...", end="", flush=True)
    n = cell(demo.abandoned_naive)
    l = cell(demo.abandoned_lockctl)
    if n is None:
        since = time.monotonic() - demo.naive_abandoned_at
        if since < demo.HOLD_TTL + 1:
            time.sleep(demo.HOLD_TTL + 1 - since)
        n = cell(lambda: demo.abandoned_naive_after(time.monotonic() - demo.naive_abandoned_at))
    print(f" {time.monotonic() - t0:.1f} s", flush=True)
    rows.append((4, n, l[:2]))
    n, l = step(5, demo.webhook_naive, demo.webhook_lockctl)
    rows.append((5, n, l))
    n, l = step(6, demo.stampede_naive, demo.stampede_lockctl)
    rows.append((6, n, l))
    n, l = step(7, demo.walkin_naive, demo.walkin_lockctl)
    rows.append((7, n, l))

    total = time.monotonic() - started
    print_table(rows)
    print(f"\n{len(rows)} scenarios in {total:.1f} s; each client had its own connection, "
          f"and waited {THINK * 1000:.0f} ms between its read and its write.")

    wrong = [SCENARIOS[i][0] for i, _, l in rows if l[1] is False]
    unavailable = [SCENARIOS[i][0] for i, _, l in rows if l[1] == "unavailable"]
    if unavailable:
        print("lockctl's side not shown (this build lacks the functions): " + ", ".join(unavailable))
    if wrong:
        print("WRONG with lockctl: " + ", ".join(wrong))
    if args.check and wrong:
        sys.exit(1)
    if args.check and unavailable:
        sys.exit(3)


def print_table(rows):
    w0, w1, w2 = 20, 34, 40
    line = "+" + "-" * (w0 + 2) + "+" + "-" * (w1 + 2) + "+" + "-" * (w2 + 2) + "+"

    def out(a, b, c):
        a = textwrap.wrap(a, w0) or [""]
        b = textwrap.wrap(b, w1) or [""]
        c = textwrap.wrap(c, w2) or [""]
        for k in range(max(len(a), len(b), len(c))):
            print(f"| {(a[k] if k < len(a) else ''):<{w0}} | {(b[k] if k < len(b) else ''):<{w1}} "
                  f"| {(c[k] if k < len(c) else ''):<{w2}} |")

    print()
    print(line)
    out("scenario", "without lockctl (the usual code)", "with lockctl")
    print(line.replace("-", "="))
    for i, n, l in rows:
        mark = {True: "ok: ", False: "FAIL: ", "unavailable": ""}.get(l[1], "")
        out(f"{i + 1}. {SCENARIOS[i][0]}", n[0], mark + l[0])
        print(line)


if __name__ == "__main__":
    main()
