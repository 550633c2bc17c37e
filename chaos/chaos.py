#!/usr/bin/python3
"""chaos/chaos.py: lockctl's Jepsen-style chaos load, fault injector and checker.

    chaos.py setup    --dsn DSN --dir DIR        create the test objects
    chaos.py load     --dsn DSN --dir DIR --seconds N [--clients N] [--seed N]
    chaos.py snapshot --dsn DSN --dir DIR        dump the tables the checker reads
    chaos.py check    --dir DIR                  verify every invariant; exit 1 if broken
    chaos.py selftest --dir DIR                  corrupt a copy of the history and the
                                                 snapshot in known ways; every corruption
                                                 must be caught (exit 1 otherwise)
    chaos.py leakcheck --dsn DSN                 no shared-memory lease slot leaked
    chaos.py tokens   --dir DIR                  only the invariants that need no
                                                 snapshot (tokens rise, one holder at
                                                 a time, hold ids unique), over a
                                                 history another test recorded (the
                                                 failover tests t/060-t/065)

Many client threads, each on its own connection, mix version-checked updates,
lease acquire/renew/release/fenced writes, reserve/confirm/cancel/extend and
idempotent requests (claim, effect, complete; some rolled back), and (in
`load` only, not in the HA drill's clients) counted and shared leases, carts,
per-holder limits, waitlists, sets of leases (acquire_all, fence_all,
release_all) and calendars (reserve_range and its confirm/cancel/extend), while
a nemesis thread cancels queries, terminates client backends and the expiry
worker, and clients set tiny statement timeouts on some calls.  The driver (the
TAP test t/090_chaos.pl) adds crash and clean restarts and records them in
DIR/faults.jsonl.

Every client appends each operation it attempted to DIR/history-<client>.jsonl:
{"op", "c" (client), "t0", "t1" (CLOCK_MONOTONIC, seconds), "r": "ok" | "fail" |
"info", "err" (SQLSTATE), arguments and the value returned}.  "ok" means the
server acknowledged it; "fail" means the server reported an error on a live
connection, so the statement's transaction was rolled back; "info" means the
outcome is unknown (the connection broke).  Shared-memory effects (leases) are
not transactional, so the checker treats any lease call that was not "ok" as
one that may have taken effect.

The checker reads only DIR: the history, the faults and snapshot.json.  It does
not trust the extension's own views for anything but what it checks.

Only Debian's python3 with python3-psycopg (psycopg 3) is needed.
"""

import argparse
import bisect
import collections
import copy
import datetime
import glob
import json
import os
import random
import shutil
import sys
import tempfile
import threading
import time

try:
    import psycopg
except ImportError:  # pragma: no cover - only for the checker run elsewhere
    psycopg = None

mono = time.monotonic

N_ACCOUNTS = 8
N_RESOURCES = 6
N_REQUESTS = 10       # request keys at a time, each sent by every client again and again
POOLS = {"chaos-pool-0": 10, "chaos-pool-1": 12, "chaos-pool-2": 200, "chaos-pool-3": 1000000}
# The newer kinds (issues 17 and 18).  Counted leases: permits per resource
# (fixed, as the server demands while a resource is held or waited for).
# Shared leases: acquire_shared and exclusive acquire on the same resources.
COUNTED = {"chaos-cnt-0": 2, "chaos-cnt-1": 3}
SHARED = ["chaos-sh-0", "chaos-sh-1"]
# Pools of carts, per-holder limits and the waitlist: capacity, max_per_holder.
# Confirmed units never come back, so whoever confirms restocks what it
# confirmed (set_capacity), and the pools keep selling out and coming back.
# chaos-lim has several slots (automatic: 3 and more); chaos-wait one, always.
NEW_POOLS = {"chaos-cart-a": (12, None), "chaos-cart-b": (8, None),
             "chaos-lim": (100, 4), "chaos-wait": (6, None)}
CART_POOLS = ["chaos-cart-a", "chaos-cart-b", "chaos-lim"]
N_HOLDERS = 4         # holders of chaos-lim at a time, shared by every client
# Sets of leases (acquire_all, issue 17): sets of 2-4 of these, in random
# orders, so that sets overlap and queue behind each other and behind
# single acquires of the same resources.
SET_RES = ["chaos-set-%d" % i for i in range(5)]
# Calendars (issue 18): capacity of each.  Ranges are whole minutes in a
# window of CAL_MINUTES minutes of one day, a new day every CAL_DAY_SECONDS
# seconds of the run (confirmed ranges are taken for good): short ranges in
# a small window, so that they collide.
CALENDARS = {"chaos-cal-1": 1, "chaos-cal-2": 2}
CAL_BASE = 1893456000         # 2030-01-01 00:00 UTC, in epoch seconds
CAL_MINUTES = 12
CAL_DAY_SECONDS = 5

# Slack for comparing the clients' clock with the server's (same host, same
# CLOCK_MONOTONIC; the server may measure with a different clock source).
MARGIN = 0.15


def td(seconds):
    return datetime.timedelta(seconds=seconds)


def log(*a):
    print("chaos:", *a, file=sys.stderr, flush=True)


# --------------------------------------------------------------------------
# Connections and errors

def connect(dsn, appname, timeout=2):
    return psycopg.connect(dsn, autocommit=True, application_name=appname,
                           connect_timeout=timeout)


def classify(exc, conn):
    """ok/fail/info for an exception raised by a call on conn."""
    st = getattr(exc, "sqlstate", None)
    if conn is None or conn.closed or conn.broken:
        return "info", st
    if st is None or st.startswith("08") or st in ("57P01", "57P02", "57P03"):
        return "info", st
    return "fail", st


def features(conn):
    """Which lockctl functions and tables exist, with their signatures."""
    cur = conn.execute("""
        SELECT p.proname, pg_catalog.pg_get_function_identity_arguments(p.oid)
          FROM pg_catalog.pg_proc p JOIN pg_catalog.pg_namespace n ON n.oid = p.pronamespace
         WHERE n.nspname = 'lockctl'""")
    funcs = collections.defaultdict(list)
    for name, args in cur.fetchall():
        funcs[name].append(args)
    cur = conn.execute("""
        SELECT c.relname FROM pg_catalog.pg_class c
          JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
         WHERE n.nspname = 'lockctl' AND c.relkind IN ('r', 'v', 'p')""")
    rels = [r[0] for r in cur.fetchall()]
    f = {
        "versioning": "enable_versioning" in funcs,
        "update_versioned": "update_versioned" in funcs,
        "lease": all(n in funcs for n in ("acquire", "renew", "release", "fence")),
        "reserve": all(n in funcs for n in ("create_pool", "reserve", "confirm",
                                            "cancel", "extend", "available")),
        "requests": all(n in funcs for n in ("claim_request", "complete_request")),
        "counted": any("permits" in a for a in funcs.get("acquire", [])),
        "shared": "acquire_shared" in funcs,
        "carts": all(n in funcs for n in ("reserve_cart", "confirm_cart", "cancel_cart",
                                          "extend_cart")),
        "limits": "set_max_per_holder" in funcs,
        "waitlist": all(n in funcs for n in ("wait_for", "leave_waitlist")),
        "sets": all(n in funcs for n in ("acquire_all", "release_all", "fence_all")),
        "calendars": all(n in funcs for n in ("create_calendar", "drop_calendar",
                                              "reserve_range")) and "range_reservations" in rels,
        "funcs": funcs,
        "rels": rels,
    }
    return f


# --------------------------------------------------------------------------
# setup

def cmd_setup(args):
    os.makedirs(args.dir, exist_ok=True)
    with connect(args.dsn, "chaos-setup") as conn:
        f = features(conn)
        conn.execute("DROP SCHEMA IF EXISTS chaos CASCADE")
        conn.execute("CREATE SCHEMA chaos")
        conn.execute("""CREATE TABLE chaos.accounts (
                          id int PRIMARY KEY, val bigint NOT NULL, version bigint NOT NULL)""")
        conn.execute("INSERT INTO chaos.accounts SELECT g, 0, 1 FROM generate_series(1, %s) g",
                     (N_ACCOUNTS,))
        if f["versioning"]:
            conn.execute("SELECT lockctl.enable_versioning('chaos.accounts'::regclass)")
        # Fenced writes: every one goes through the row of its resource in
        # fence_last (row-locked), so prev_token records commit order.
        conn.execute("""CREATE TABLE chaos.fence_last (
                          resource text PRIMARY KEY, token bigint NOT NULL)""")
        conn.execute("""CREATE TABLE chaos.fenced (
                          id bigserial PRIMARY KEY, resource text NOT NULL,
                          token bigint NOT NULL, prev_token bigint NOT NULL,
                          opid text NOT NULL UNIQUE)""")
        conn.execute("INSERT INTO chaos.fence_last SELECT 'chaos-res-' || g, 0 "
                     "FROM generate_series(0, %s) g", (N_RESOURCES - 1,))
        # One row per effect of an idempotent request: no unique key on
        # purpose, so that an effect taken twice shows as two rows.
        conn.execute("""CREATE TABLE chaos.effects (
                          id bigserial PRIMARY KEY, key text NOT NULL,
                          opid text NOT NULL UNIQUE)""")
        if f["sets"]:
            conn.execute("INSERT INTO chaos.fence_last SELECT unnest(%s::text[]), 0", (SET_RES,))
        if f["calendars"]:
            conn.execute("SELECT lockctl.drop_calendar(c.resource) FROM lockctl.calendars c "
                         " WHERE c.resource = ANY (%s::text[])", (list(CALENDARS),))
            for cal, cap in CALENDARS.items():
                conn.execute("SELECT lockctl.create_calendar(%s, %s)", (cal, cap))
        if f["requests"]:
            conn.execute("DELETE FROM lockctl.request_keys WHERE key LIKE 'chaos-req-%'")
        if f["reserve"]:
            for p, cap in POOLS.items():
                conn.execute("SELECT lockctl.create_pool(%s, %s)", (p, cap))
        if f["reserve"] and (f["carts"] or f["waitlist"] or f["limits"]):
            for p, (cap, lim) in NEW_POOLS.items():
                slots = 1 if p == "chaos-wait" else None
                if f["limits"]:
                    conn.execute("SELECT lockctl.create_pool(%s, %s, %s, %s)",
                                 (p, cap, slots, lim))
                elif lim is None:
                    conn.execute("SELECT lockctl.create_pool(%s, %s, %s)", (p, cap, slots or 1))
    f["setup_at"] = mono()
    with open(os.path.join(args.dir, "features.json"), "w") as fh:
        json.dump(f, fh, indent=1)
    log("features:", {k: v for k, v in f.items() if isinstance(v, bool)})


# --------------------------------------------------------------------------
# load

class Client(threading.Thread):
    def __init__(self, cid, args, feats, stop_at):
        super().__init__(daemon=True)
        self.cid = cid
        self.args = args
        self.f = feats
        self.stop_at = stop_at
        self.rng = random.Random(args.seed * 1000 + cid)
        self.conn = None
        self.seq = 0
        self.owner = "chaos-c%d" % cid
        self.lease = None          # {"res", "tok"}
        self.clease = None         # a counted lease: {"res", "tok", "permits"}
        self.slease = None         # a shared or exclusive lease of SHARED
        self.holds = []            # ids of own holds believed live
        self.lholds = []           # ids of own holds of chaos-lim
        self.carts = []            # ids of own carts believed live
        self.whold = []            # ids of own holds of chaos-wait (walk-ins, offers)
        self.entries = []          # ids of own waitlist entries believed waiting
        self.units = {}            # hold, cart or entry id -> [(pool, quantity)]
        self.lset = None           # a set of leases: {"rs", "toks", "owner"}
        self.ranges = []           # ids of own range holds believed live
        self.hist = open(os.path.join(args.dir, "history-%03d.jsonl" % cid), "a")
        self.counts = collections.Counter()
        kinds = []
        if feats["versioning"]:
            kinds += ["vupdate"] * 4
        if feats["lease"]:
            kinds += ["lease"] * 4
        if feats["reserve"]:
            kinds += ["reserve"] * 4
        if feats.get("requests"):
            kinds += ["request"] * 2
        # The newer kinds run in the chaos test's load only (cmd_load): the
        # HA drill (ha/drill.py) makes Clients of its own, with the kinds
        # its checks classify across a failover.
        newer = getattr(args, "newer_kinds", False)
        if newer and feats.get("counted"):
            kinds += ["counted"] * 2
        if newer and feats.get("shared"):
            kinds += ["shared"] * 2
        if newer and feats["reserve"] and feats.get("carts"):
            kinds += ["cart"] * 2
        if newer and feats["reserve"] and feats.get("limits"):
            kinds += ["limit"] * 2
        if newer and feats["reserve"] and feats.get("waitlist"):
            kinds += ["waitlist"] * 3
        if newer and feats.get("sets"):
            kinds += ["set"] * 3
        if newer and feats.get("calendars"):
            kinds += ["calendar"] * 3
        if args.kinds:
            kinds = [k for k in kinds if k in args.kinds.split(",")]
        self.kinds = kinds

    def record(self, rec):
        rec["c"] = self.cid
        self.hist.write(json.dumps(rec) + "\n")
        self.hist.flush()
        self.counts[(rec["op"], rec["r"])] += 1

    def ensure_conn(self):
        while self.conn is None or self.conn.closed or self.conn.broken:
            if mono() > self.stop_at:
                return False
            try:
                self.conn = connect(self.args.dsn, "chaos-client-%d" % self.cid)
            except psycopg.Error:
                self.conn = None
                time.sleep(0.1 + self.rng.random() * 0.2)
        return True

    def call(self, rec, fn):
        """Run fn(cur) as one operation, record it; return (result, value)."""
        conn = self.conn
        self.seq += 1
        rec["opid"] = "c%d-%d" % (self.cid, self.seq)
        timeout = None
        if self.rng.random() < 0.08:
            timeout = self.rng.choice([1, 2, 5, 10, 30, 100])
        rec["t0"] = mono()
        try:
            if timeout:
                conn.execute("SET statement_timeout = %d" % timeout)
                rec["timeout_ms"] = timeout
            with conn.cursor() as cur:
                v = fn(cur, rec)
            rec["r"] = "ok"
            rec["v"] = v
        except psycopg.Error as e:
            rec["r"], rec["err"] = classify(e, conn)
            rec["msg"] = str(e).split("\n")[0][:200]
        rec["t1"] = mono()
        if not (conn.closed or conn.broken):
            try:
                # A statement timeout can also cut short the ROLLBACK that
                # ends a failed transaction block: end it, or every later
                # call on this connection fails with 25P02.
                if conn.info.transaction_status != psycopg.pq.TransactionStatus.IDLE:
                    self.counts[("rollback", "forced")] += 1
                    conn.execute("ROLLBACK")
                if timeout:
                    conn.execute("SET statement_timeout = 0")
            except psycopg.Error:
                try:
                    conn.close()     # reconnect rather than carry a bad state
                except Exception:
                    pass
        self.record(rec)
        return rec["r"], rec.get("v")

    # -- version-checked updates
    def op_vupdate(self):
        a = self.rng.randint(1, N_ACCOUNTS)
        pause = self.rng.random() < 0.3
        via_fn = self.f["update_versioned"] and self.rng.random() < 0.5

        def fn(cur, rec):
            cur.execute("SELECT val, version FROM chaos.accounts WHERE id = %s", (a,))
            val, ver = cur.fetchone()
            rec["rval"], rec["rver"] = val, ver
            if pause:
                time.sleep(self.rng.random() * 0.02)
            if via_fn:
                cur.execute("SELECT lockctl.update_versioned('chaos.accounts', %s::int, %s, "
                            "jsonb_build_object('val', %s::bigint))", (a, ver, val + 1))
                return cur.fetchone()[0]
            cur.execute("UPDATE chaos.accounts SET val = %s, version = %s WHERE id = %s "
                        "RETURNING val, version", (val + 1, ver, a))
            nval, nver = cur.fetchone()
            rec["nval"] = nval
            return nver
        self.call({"op": "vupdate", "acct": a, "fn": via_fn}, fn)

    # -- leases
    def op_lease(self):
        rng = self.rng
        if self.lease is None:
            res = "chaos-res-%d" % rng.randrange(N_RESOURCES)
            ttl = rng.choice([0.3, 0.5, 1.0, 1.5, 2.0])
            wait = rng.choice([0, 0, 0.05, 0.3, 1.0])
            r, v = self.call({"op": "acquire", "res": res, "owner": self.owner,
                              "ttl": ttl, "wait": wait},
                             lambda cur, rec: cur.execute(
                                 "SELECT lockctl.acquire(%s, %s, %s, %s)",
                                 (res, self.owner, td(ttl), td(wait))).fetchone()[0])
            if r == "ok" and v is not None:
                self.lease = {"res": res, "tok": v}
            return
        res, tok = self.lease["res"], self.lease["tok"]
        x = rng.random()
        if x < 0.45:
            self.fenced_write(res, tok, 0)
        elif x < 0.52:
            # the seed's paused holder: sleep past the ttl, then write
            self.fenced_write(res, tok, rng.choice([0.5, 1.0, 2.2]))
        elif x < 0.67:
            ttl = rng.choice([0.3, 1.0, 2.0])
            r, v = self.call({"op": "renew", "res": res, "tok": tok, "owner": self.owner,
                              "ttl": ttl},
                             lambda cur, rec: _scalar(cur.execute(
                                 "SELECT lockctl.renew(%s, %s, %s)", (res, tok, td(ttl)))))
            if r != "ok" or v is False:
                self.lease = None
        elif x < 0.9:
            self.call({"op": "release", "res": res, "tok": tok, "owner": self.owner},
                      lambda cur, rec: cur.execute(
                          "SELECT lockctl.release(%s, %s)", (res, tok)).fetchone()[0])
            self.lease = None
        else:
            self.lease = None      # abandon it: it must expire on its own

    def fenced_write(self, res, tok, pause):
        rng = self.rng

        def fn(cur, rec):
            conn = self.conn
            if pause:
                time.sleep(pause)
            with conn.transaction():
                rec["tf"] = mono()
                cur.execute("SELECT lockctl.fence(%s, %s)", (res, tok))
                cur.execute("SELECT token FROM chaos.fence_last WHERE resource = %s FOR UPDATE",
                            (res,))
                prev = cur.fetchone()[0]
                rec["prev"] = prev
                if rng.random() < 0.2:
                    time.sleep(rng.random() * 0.05)
                cur.execute("INSERT INTO chaos.fenced (resource, token, prev_token, opid) "
                            "VALUES (%s, %s, %s, %s)", (res, tok, prev, rec["opid"]))
                cur.execute("UPDATE chaos.fence_last SET token = %s WHERE resource = %s",
                            (tok, res))
            return prev
        r, v = self.call({"op": "fence", "res": res, "tok": tok, "owner": self.owner,
                          "pause": pause}, fn)
        if r != "ok":
            self.lease = None

    # -- reservations
    def op_reserve(self):
        rng = self.rng
        x = rng.random()
        if x < 0.02:
            pool = rng.choice(["chaos-pool-0", "chaos-pool-1"])
            cap = rng.randint(10, 10 + int(3 * (mono() - self.args.started)))
            self.call({"op": "set_capacity", "pool": pool, "cap": cap},
                      lambda cur, rec: _scalar(cur.execute(
                          "SELECT lockctl.set_capacity(%s, %s)", (pool, cap))))
            return
        if not self.holds or (len(self.holds) < 3 and x < 0.45):
            pool = rng.choice(list(POOLS))
            qty = rng.randint(1, 3)
            ttl = rng.choice([0.3, 0.6, 1.0, 2.0, 3.0])
            key = None
            if rng.random() < 0.4:
                key = "%s-k%d" % (self.owner, self.seq + 1)
            for attempt in range(3):
                r, v = self.call({"op": "reserve", "pool": pool, "qty": qty, "ttl": ttl,
                                  "key": key, "holder": self.owner},
                                 lambda cur, rec: cur.execute(
                                     "SELECT lockctl.reserve(%s, %s, %s, %s, %s)",
                                     (pool, qty, self.owner, td(ttl), key)).fetchone()[0])
                if r == "ok" and v is not None:
                    self.holds.append(v)
                # an unknown outcome with a key: retry with the same key,
                # which must give back the same hold if the first one took
                if r == "info" and key is not None and self.ensure_conn():
                    continue
                break
            return
        hid = rng.choice(self.holds)
        if x < 0.75:
            r, v = self.call({"op": "confirm", "id": hid},
                             lambda cur, rec: _scalar(cur.execute(
                                 "SELECT lockctl.confirm(%s)", (hid,))))
            self.holds.remove(hid)
        elif x < 0.87:
            r, v = self.call({"op": "cancel", "id": hid},
                             lambda cur, rec: _scalar(cur.execute(
                                 "SELECT lockctl.cancel(%s)", (hid,))))
            self.holds.remove(hid)
        elif x < 0.95:
            ttl = rng.choice([0.3, 1.0, 2.0])
            r, v = self.call({"op": "extend", "id": hid, "ttl": ttl},
                             lambda cur, rec: _scalar(cur.execute(
                                 "SELECT lockctl.extend(%s, %s)", (hid, td(ttl)))))
            if r == "fail":
                self.holds.remove(hid)
        else:
            self.holds.remove(hid)   # forget it: the worker must expire it

    # -- idempotent requests: copies of N_REQUESTS requests from every client
    def op_request(self):
        rng = self.rng
        # A new set of keys every few seconds, so that first copies, copies
        # in flight and takeovers after a rollback keep happening.
        key = "chaos-req-%d-%d" % ((mono() - self.args.started) // 4, rng.randrange(N_REQUESTS))
        pause = rng.random() < 0.3
        rollback = rng.random() < 0.1

        def fn(cur, rec):
            cur.execute("BEGIN")
            cur.execute("SELECT lockctl.claim_request(%s, '1 hour', 'same-params')", (key,))
            earlier = cur.fetchone()[0]
            rec["went"] = earlier is None
            if earlier is not None:
                cur.execute("COMMIT")
                return earlier.get("opid")
            cur.execute("INSERT INTO chaos.effects (key, opid) VALUES (%s, %s)",
                        (key, rec["opid"]))
            if pause:
                time.sleep(rng.random() * 0.02)
            cur.execute("SELECT lockctl.complete_request(%s, jsonb_build_object('opid', %s::text))",
                        (key, rec["opid"]))
            if rollback:
                # a failure after the effect: the claim must go with it
                rec["rolled_back"] = True
                cur.execute("ROLLBACK")
                return None
            cur.execute("COMMIT")
            return rec["opid"]
        self.call({"op": "request", "key": key}, fn)

    # -- counted and shared leases (issue 17): acquire, then renew, release
    # or abandon; no fenced writes (a holder's fence locks its own permit)
    def lease_step(self, lease):
        """One call on a held counted or shared lease; the lease after it."""
        rng = self.rng
        res, tok = lease["res"], lease["tok"]
        x = rng.random()
        if x < 0.4:
            ttl = rng.choice([0.3, 1.0, 2.0])
            r, v = self.call({"op": "renew", "res": res, "tok": tok, "owner": self.owner,
                              "ttl": ttl},
                             lambda cur, rec: _scalar(cur.execute(
                                 "SELECT lockctl.renew(%s, %s, %s)", (res, tok, td(ttl)))))
            return lease if r == "ok" and v is not False else None
        if x < 0.85:
            self.call({"op": "release", "res": res, "tok": tok, "owner": self.owner},
                      lambda cur, rec: cur.execute(
                          "SELECT lockctl.release(%s, %s)", (res, tok)).fetchone()[0])
        return None                # released, or abandoned: it must expire

    def op_counted(self):
        rng = self.rng
        if self.clease is not None:
            self.clease = self.lease_step(self.clease)
            return
        res = rng.choice(sorted(COUNTED))
        n = COUNTED[res]
        ttl = rng.choice([0.3, 0.5, 1.0, 2.0])
        wait = rng.choice([0, 0, 0.05, 0.3, 1.0])
        r, v = self.call({"op": "acquire", "res": res, "owner": self.owner, "ttl": ttl,
                          "wait": wait, "permits": n},
                         lambda cur, rec: cur.execute(
                             "SELECT lockctl.acquire(%s, %s, %s, %s, permits => %s)",
                             (res, self.owner, td(ttl), td(wait), n)).fetchone()[0])
        if r == "ok" and v is not None:
            self.clease = {"res": res, "tok": v}

    def op_shared(self):
        rng = self.rng
        if self.slease is not None:
            self.slease = self.lease_step(self.slease)
            return
        res = rng.choice(SHARED)
        ttl = rng.choice([0.3, 0.5, 1.0, 2.0])
        wait = rng.choice([0, 0, 0.05, 0.3, 1.0])
        fn = "acquire" if rng.random() < 0.3 else "acquire_shared"
        r, v = self.call({"op": fn, "res": res, "owner": self.owner, "ttl": ttl, "wait": wait},
                         lambda cur, rec: cur.execute(
                             "SELECT lockctl.%s(%%s, %%s, %%s, %%s)" % fn,
                             (res, self.owner, td(ttl), td(wait))).fetchone()[0])
        if r == "ok" and v is not None:
            self.slease = {"res": res, "tok": v}

    # -- carts, per-holder limits, waitlists (issue 18)
    def lim_holder(self):
        """A holder of chaos-lim: N_HOLDERS names shared by every client, new
        ones every 3 s (confirmed units count against a holder for good)."""
        return "chaos-h%d-%d" % ((mono() - self.args.started) // 3,
                                 self.rng.randrange(N_HOLDERS))

    def hold_step(self, lst, read_queue=None):
        """confirm, cancel, extend or forget one of the holds in lst.  With
        read_queue (a pool), a cancel reads the pool's free units and the head
        of its waitlist in its own transaction, after giving the units back."""
        rng = self.rng
        hid = rng.choice(lst)
        x = rng.random()
        if x < 0.45:
            r, v = self.call({"op": "confirm", "id": hid},
                             lambda cur, rec: _scalar(cur.execute("SELECT lockctl.confirm(%s)",
                                                                  (hid,))))
            lst.remove(hid)
            if r == "ok" and v is True:
                self.restock(self.units.get(hid, []))
        elif x < 0.75:
            def fn(cur, rec):
                with self.conn.transaction():
                    v = _scalar(cur.execute("SELECT lockctl.cancel(%s)", (hid,)))
                    if read_queue:
                        rec["after"] = _queue_state(cur, read_queue)
                return v
            self.call({"op": "cancel", "id": hid, "pool": read_queue}, fn)
            lst.remove(hid)
        elif x < 0.92:
            ttl = rng.choice([0.3, 1.0, 2.0])
            r, v = self.call({"op": "extend", "id": hid, "ttl": ttl},
                             lambda cur, rec: _scalar(cur.execute(
                                 "SELECT lockctl.extend(%s, %s)", (hid, td(ttl)))))
            if r == "fail":
                lst.remove(hid)
        else:
            lst.remove(hid)        # forget it: the worker must expire it

    def take_hold(self, pool, qty, holder, lst):
        ttl = self.rng.choice([0.3, 0.6, 1.0, 2.0])
        r, v = self.call({"op": "reserve", "pool": pool, "qty": qty, "ttl": ttl, "key": None,
                          "holder": holder},
                         lambda cur, rec: cur.execute(
                             "SELECT lockctl.reserve(%s, %s, %s, %s)",
                             (pool, qty, holder, td(ttl))).fetchone()[0])
        if r == "ok" and v is not None:
            lst.append(v)
            self.units[v] = [(pool, qty)]

    def restock(self, parts):
        """The shop restocks what it sold: capacity + the units confirmed,
        read and set in one transaction (with the queue read back on the
        waitlist's pool: units added go to the queue first)."""
        for pool, q in parts:
            def fn(cur, rec):
                with self.conn.transaction():
                    cap = cur.execute("SELECT capacity FROM lockctl.pools WHERE resource = %s "
                                      "FOR UPDATE", (pool,)).fetchone()[0]
                    rec["cap"] = cap + q
                    cur.execute("SELECT lockctl.set_capacity(%s, %s)", (pool, cap + q))
                    if pool == "chaos-wait":
                        rec["after"] = _queue_state(cur, pool)
            self.call({"op": "set_capacity", "pool": pool, "restock": q}, fn)

    def op_limit(self):
        if not self.lholds or (len(self.lholds) < 3 and self.rng.random() < 0.5):
            self.take_hold("chaos-lim", self.rng.randint(1, 3), self.lim_holder(), self.lholds)
        else:
            self.hold_step(self.lholds)

    def op_cart(self):
        rng = self.rng
        x = rng.random()
        if not self.carts or (len(self.carts) < 2 and x < 0.5):
            items = [{"resource": rng.choice(CART_POOLS), "quantity": rng.randint(1, 3)}
                     for _ in range(rng.randint(1, 3))]
            merged = collections.Counter()
            for it in items:
                merged[it["resource"]] += it["quantity"]
            holder = self.lim_holder()
            ttl = rng.choice([0.3, 0.6, 1.0, 2.0, 3.0])
            # every cart has its own key, so that the checker can tell which
            # call made each cart of the table (and which call made none)
            key = "chaos-cart-c%d-%d" % (self.cid, self.seq + 1)
            for attempt in range(3):
                r, v = self.call({"op": "cart", "items": dict(merged), "holder": holder,
                                  "ttl": ttl, "key": key},
                                 lambda cur, rec: cur.execute(
                                     "SELECT lockctl.reserve_cart(%s::jsonb, %s, %s, %s)",
                                     (json.dumps(items), holder, td(ttl), key)).fetchone()[0])
                if r == "ok" and v is not None:
                    self.carts.append(v)
                    self.units[v] = sorted(merged.items())
                if r == "info" and self.ensure_conn():
                    continue       # the same key again: the same cart or none
                break
            return
        cid = rng.choice(self.carts)
        if x < 0.7:
            r, v = self.call({"op": "confirm_cart", "id": cid},
                             lambda cur, rec: _scalar(cur.execute(
                                 "SELECT lockctl.confirm_cart(%s)", (cid,))))
            self.carts.remove(cid)
            if r == "ok" and v is True:
                self.restock(self.units.get(cid, []))
        elif x < 0.85:
            self.call({"op": "cancel_cart", "id": cid},
                      lambda cur, rec: _scalar(cur.execute("SELECT lockctl.cancel_cart(%s)",
                                                           (cid,))))
            self.carts.remove(cid)
        elif x < 0.95:
            ttl = rng.choice([0.3, 1.0, 2.0])
            r, v = self.call({"op": "extend_cart", "id": cid, "ttl": ttl},
                             lambda cur, rec: _scalar(cur.execute(
                                 "SELECT lockctl.extend_cart(%s, %s)", (cid, td(ttl)))))
            if r == "fail":
                self.carts.remove(cid)
        else:
            self.carts.remove(cid)

    def op_waitlist(self):
        rng = self.rng
        pool = "chaos-wait"
        x = rng.random()
        if x < 0.3 or (x < 0.5 and len(self.entries) >= 2):
            # a walk-in
            self.take_hold(pool, rng.randint(1, 2), self.owner, self.whold)
        elif x < 0.5:
            qty = rng.randint(1, 3)
            ttl = rng.choice([0.3, 0.6, 1.0, 2.0])

            def fn(cur, rec):
                with self.conn.transaction():
                    v = cur.execute("SELECT lockctl.wait_for(%s, %s, %s, %s)",
                                    (pool, qty, self.owner, td(ttl))).fetchone()[0]
                    rec["after"] = _queue_state(cur, pool)
                return v
            r, v = self.call({"op": "wait_for", "pool": pool, "qty": qty, "ttl": ttl,
                              "holder": self.owner}, fn)
            if r == "ok":
                self.entries.append(v)
                self.units[v] = [(pool, qty)]
        elif x < 0.7 and self.entries:
            eid = rng.choice(self.entries)
            if rng.random() < 0.15:
                self.call({"op": "leave_waitlist", "id": eid},
                          lambda cur, rec: _scalar(cur.execute(
                              "SELECT lockctl.leave_waitlist(%s)", (eid,))))
                self.entries.remove(eid)
                return
            r, v = self.call({"op": "wl_look", "id": eid},
                             lambda cur, rec: cur.execute(
                                 "SELECT status, offer_hold_id FROM lockctl.waitlist "
                                 "WHERE id = %s", (eid,)).fetchone())
            if r == "ok" and (v is None or v[0] != "waiting"):
                self.entries.remove(eid)
                if v is not None and v[1] is not None:
                    self.whold.append(v[1])
                    self.units[v[1]] = self.units.get(eid, [])
        elif self.whold:
            self.hold_step(self.whold, read_queue=pool)

    # -- sets of leases (issue 17): acquire_all of 2-4 resources of SET_RES
    # in random orders, or a single acquire of one of them; then fenced
    # writes with fence_all, release_all, a release of one member, or
    # abandon it.  Each call of acquire_all has an owner of its own, so that
    # a look at lockctl.leases right after it shows exactly what that call
    # (and its retries, with the same owner: a safe retry) was granted.
    def op_set(self):
        rng = self.rng
        if self.lset is not None:
            self.set_step()
            return
        owner = "%s-s%d" % (self.owner, self.seq + 1)
        # a held set sits through the client's other kinds of calls, so
        # mostly short ttls and waits in line, or few sets would be granted
        ttl = rng.choice([0.3, 0.5, 1.0, 1.5])
        wait = rng.choice([0, 0.05, 0.3, 1.0, 1.0])
        if rng.random() < 0.2:
            # a single acquire in the lines of the sets
            res = rng.choice(SET_RES)
            r, v = self.call({"op": "acquire", "res": res, "owner": owner, "ttl": ttl,
                              "wait": wait},
                             lambda cur, rec: cur.execute(
                                 "SELECT lockctl.acquire(%s, %s, %s, %s)",
                                 (res, owner, td(ttl), td(wait))).fetchone()[0])
            if r == "ok" and v is not None:
                self.lset = {"rs": [res], "toks": [v], "owner": owner}
            return
        rs = rng.sample(SET_RES, rng.randint(2, 4))
        for attempt in range(3):
            r, v = self.call({"op": "acquire_all", "rs": rs, "owner": owner, "ttl": ttl,
                              "wait": wait},
                             lambda cur, rec: cur.execute(
                                 "SELECT lockctl.acquire_all(%s::text[], %s, %s, %s)",
                                 (rs, owner, td(ttl), td(wait))).fetchone()[0])
            # what the owner holds now: the whole set or none of it (looked
            # at after every call that was not a grant, and some that were)
            if (r != "ok" or v is None or rng.random() < 0.5) and self.ensure_conn():
                self.call({"op": "set_look", "rs": rs, "owner": owner},
                          lambda cur, rec: [list(x) for x in cur.execute(
                              "SELECT resource, token, set_id FROM lockctl.leases "
                              " WHERE owner = %s ORDER BY resource", (owner,)).fetchall()])
            if r == "ok" and isinstance(v, list) and v and None not in v:
                self.lset = {"rs": rs, "toks": v, "owner": owner}
            # an unknown outcome: the same call again, a safe retry that
            # must give back the same tokens if the first one was granted
            if r == "info" and self.ensure_conn():
                continue
            break

    def set_step(self):
        rng = self.rng
        s = self.lset
        rs, toks, owner = s["rs"], s["toks"], s["owner"]
        x = rng.random()
        if x < 0.45:
            self.set_fenced_write(0)
        elif x < 0.52:
            # a paused holder: sleep past the ttl, then write
            self.set_fenced_write(rng.choice([0.5, 1.0, 2.2]))
        elif x < 0.6 and len(rs) > 1:
            # each lease of a set is on its own once granted
            i = rng.randrange(len(rs))
            res, tok = rs[i], toks[i]
            self.call({"op": "release", "res": res, "tok": tok, "owner": owner},
                      lambda cur, rec: cur.execute(
                          "SELECT lockctl.release(%s, %s)", (res, tok)).fetchone()[0])
            s["rs"], s["toks"] = rs[:i] + rs[i + 1:], toks[:i] + toks[i + 1:]
        elif x < 0.9:
            self.call({"op": "release_all", "rs": rs, "toks": toks, "owner": owner},
                      lambda cur, rec: cur.execute(
                          "SELECT lockctl.release_all(%s::text[], %s::bigint[])",
                          (rs, toks)).fetchone()[0])
            self.lset = None
        else:
            self.lset = None       # abandon it: every lease must expire on its own

    def set_fenced_write(self, pause):
        """fence_all, then one row per member in chaos.fenced, each under its
        resource's row of chaos.fence_last (locked in one order), in one
        transaction.  The rows' opids are <opid>:<resource>."""
        rng = self.rng
        s = self.lset
        rs, toks = list(s["rs"]), list(s["toks"])

        def fn(cur, rec):
            if pause:
                time.sleep(pause)
            with self.conn.transaction():
                rec["tf"] = mono()
                cur.execute("SELECT lockctl.fence_all(%s::text[], %s::bigint[])", (rs, toks))
                prev = dict(cur.execute(
                    "SELECT resource, token FROM chaos.fence_last WHERE resource = ANY (%s) "
                    " ORDER BY resource FOR UPDATE", (rs,)).fetchall())
                rec["prev"] = prev
                if rng.random() < 0.2:
                    time.sleep(rng.random() * 0.05)
                for res, tok in zip(rs, toks):
                    cur.execute("INSERT INTO chaos.fenced (resource, token, prev_token, opid) "
                                "VALUES (%s, %s, %s, %s)",
                                (res, tok, prev[res], "%s:%s" % (rec["opid"], res)))
                    cur.execute("UPDATE chaos.fence_last SET token = %s WHERE resource = %s",
                                (tok, res))
            return True
        r, v = self.call({"op": "fence_all", "rs": rs, "toks": toks, "owner": s["owner"],
                          "pause": pause}, fn)
        if r != "ok":
            self.lset = None

    # -- calendars (issue 18): reserve_range of short ranges in a small
    # window of one day (a new day every CAL_DAY_SECONDS), on a calendar of
    # capacity 1 and one of capacity 2; confirm, cancel, extend or forget
    # them (lockctl.confirm, cancel and extend, recorded as *_range); now
    # and then a look at every live range of the day, in one snapshot.
    def cal_day(self):
        return CAL_BASE + 86400 * int((mono() - self.args.started) // CAL_DAY_SECONDS)

    def op_calendar(self):
        rng = self.rng
        x = rng.random()
        if x < 0.08:
            day = self.cal_day()
            self.call({"op": "cal_look", "day": day},
                      lambda cur, rec: [list(r) for r in cur.execute(
                          "SELECT c.resource, extract(epoch FROM lower(r.during))::float8, "
                          "       extract(epoch FROM upper(r.during))::float8, r.id "
                          "  FROM lockctl.range_reservations r "
                          "  JOIN lockctl.calendars c ON c.id = r.calendar_id "
                          " WHERE r.status IN ('held', 'confirmed') "
                          "   AND r.during && tstzrange(to_timestamp(%s), to_timestamp(%s))",
                          (day, day + 86400)).fetchall()])
            return
        if not self.ranges or (len(self.ranges) < 3 and x < 0.45):
            cal = rng.choice(sorted(CALENDARS))
            a = rng.randrange(CAL_MINUTES - 2)
            b = min(CAL_MINUTES, a + rng.randint(1, 3))
            day = self.cal_day()
            lo, hi = day + 60 * a, day + 60 * b
            ttl = rng.choice([0.3, 0.6, 1.0, 2.0, 3.0])
            key = "%s-r%d" % (self.owner, self.seq + 1) if rng.random() < 0.4 else None
            for attempt in range(3):
                r, v = self.call({"op": "reserve_range", "cal": cal, "lo": lo, "hi": hi,
                                  "ttl": ttl, "key": key, "holder": self.owner},
                                 lambda cur, rec: cur.execute(
                                     "SELECT lockctl.reserve_range(%s, tstzrange(to_timestamp(%s), "
                                     "to_timestamp(%s)), %s, %s, %s)",
                                     (cal, lo, hi, self.owner, td(ttl), key)).fetchone()[0])
                if r == "ok" and v is not None:
                    self.ranges.append(v)
                if r == "info" and key is not None and self.ensure_conn():
                    continue       # the same key: the same hold, if the first took
                break
            return
        hid = rng.choice(self.ranges)
        x = rng.random()
        if x < 0.45:
            self.call({"op": "confirm_range", "id": hid},
                      lambda cur, rec: _scalar(cur.execute("SELECT lockctl.confirm(%s)", (hid,))))
            self.ranges.remove(hid)
        elif x < 0.72:
            self.call({"op": "cancel_range", "id": hid},
                      lambda cur, rec: _scalar(cur.execute("SELECT lockctl.cancel(%s)", (hid,))))
            self.ranges.remove(hid)
        elif x < 0.92:
            ttl = rng.choice([0.3, 1.0, 2.0])
            r, v = self.call({"op": "extend_range", "id": hid, "ttl": ttl},
                             lambda cur, rec: _scalar(cur.execute(
                                 "SELECT lockctl.extend(%s, %s)", (hid, td(ttl)))))
            if r == "fail":
                self.ranges.remove(hid)
        else:
            self.ranges.remove(hid)    # forget it: the worker must expire it

    def run(self):
        try:
            while mono() < self.stop_at:
                if not self.ensure_conn():
                    break
                kind = self.rng.choice(self.kinds)
                try:
                    getattr(self, "op_" + kind)()
                except psycopg.Error as e:   # outside a recorded call: reconnect
                    log("client", self.cid, "unexpected", type(e).__name__, e)
                    try:
                        self.conn.close()
                    except Exception:
                        pass
        finally:
            self.hist.close()
            if self.conn is not None:
                self.conn.close()


def _queue_state(cur, pool):
    """The pool's free units and the head of its waitlist, as this
    transaction sees them."""
    free, head, head_qty = cur.execute(
        "SELECT (SELECT sum(s.capacity - s.held - s.confirmed)::bigint FROM lockctl.pool_slots s "
        "         WHERE s.pool_id = p.id), w.id, w.quantity "
        "  FROM lockctl.pools p LEFT JOIN LATERAL ("
        "       SELECT w.id, w.quantity FROM lockctl.waitlist_entries w "
        "        WHERE w.pool_id = p.id AND w.status = 'waiting' ORDER BY w.id LIMIT 1) w ON true "
        " WHERE p.resource = %s", (pool,)).fetchone()
    return {"free": free, "head": head, "head_qty": head_qty}


def _scalar(cur):
    row = cur.fetchone()
    if row is None:
        return None
    v = row[0]
    if isinstance(v, (datetime.datetime, datetime.timedelta)):
        return str(v)
    return v


class Nemesis(threading.Thread):
    """Cancels queries; terminates client backends, the expiry worker and,
    rarely, the launcher with its workers."""

    def __init__(self, args, stop_at):
        super().__init__(daemon=True)
        self.args = args
        self.stop_at = stop_at
        self.rng = random.Random(args.seed)
        self.out = open(os.path.join(args.dir, "nemesis.jsonl"), "a")
        self.counts = collections.Counter()

    def run(self):
        conn = None
        while mono() < self.stop_at:
            time.sleep(0.2 + self.rng.random() * 0.6)
            try:
                if conn is None or conn.closed or conn.broken:
                    conn = connect(self.args.dsn, "chaos-nemesis")
                x = self.rng.random()
                # the last 8 s kill no worker: the launcher takes 5 s to come
                # back, and the final check wants the worker up
                if mono() > self.stop_at - 8:
                    x *= 0.8
                t0 = mono()
                if x < 0.45:
                    kind, q = "cancel", """
                        SELECT pid, pg_cancel_backend(pid) FROM pg_stat_activity
                         WHERE application_name LIKE 'chaos-client-%%' AND state = 'active'
                         ORDER BY random() LIMIT 1"""
                elif x < 0.8:
                    kind, q = "terminate", """
                        SELECT pid, pg_terminate_backend(pid) FROM pg_stat_activity
                         WHERE application_name LIKE 'chaos-client-%%'
                         ORDER BY random() LIMIT 1"""
                elif x < 0.95:
                    kind, q = "kill_worker", """
                        SELECT pid, pg_terminate_backend(pid) FROM pg_stat_activity
                         WHERE backend_type = 'lockctl expiry worker'"""
                else:
                    kind, q = "kill_launcher", """
                        SELECT pid, pg_terminate_backend(pid) FROM pg_stat_activity
                         WHERE backend_type <> 'client backend'
                           AND backend_type ILIKE '%%lockctl%%'"""
                rows = conn.execute(q).fetchall()
                self.counts[kind] += len(rows)
                self.out.write(json.dumps({"kind": kind, "t0": t0, "t1": mono(),
                                           "pids": [r[0] for r in rows]}) + "\n")
                self.out.flush()
            except psycopg.Error:
                conn = None
        self.out.close()


def cmd_load(args):
    with open(os.path.join(args.dir, "features.json")) as fh:
        f = json.load(fh)
    args.started = mono()
    args.newer_kinds = True
    stop_at = args.started + args.seconds
    clients = [Client(i, args, f, stop_at) for i in range(args.clients)]
    if not clients[0].kinds:
        log("no lockctl feature to exercise")
        return
    # what ran, for the checker's coverage
    with open(os.path.join(args.dir, "kinds.json"), "w") as fh:
        json.dump(sorted(set(clients[0].kinds)), fh)
    nem = Nemesis(args, stop_at)
    for c in clients:
        c.start()
    if not args.no_nemesis:
        nem.start()
    for c in clients:
        c.join(args.seconds + 60)
    if not args.no_nemesis:
        nem.join(30)
    total = collections.Counter()
    for c in clients:
        total.update(c.counts)
    summary = {"%s/%s" % k: v for k, v in sorted(total.items())}
    summary.update({"nemesis/" + k: v for k, v in nem.counts.items()})
    with open(os.path.join(args.dir, "load-summary.json"), "w") as fh:
        json.dump(summary, fh, indent=1, sort_keys=True)
    log("load done:", json.dumps(summary, sort_keys=True))


# --------------------------------------------------------------------------
# snapshot

def cmd_snapshot(args):
    with connect(args.dsn, "chaos-snapshot") as conn:
        f = features(conn)
        s = {"features": {k: v for k, v in f.items() if isinstance(v, bool)}}
        m0 = mono()
        now = conn.execute("SELECT extract(epoch FROM clock_timestamp())::float8").fetchone()[0]
        m1 = mono()
        s["server_epoch"] = now
        s["mono"] = (m0 + m1) / 2
        s["accounts"] = conn.execute(
            "SELECT id, val, version FROM chaos.accounts ORDER BY id").fetchall()
        s["fenced"] = [list(r) for r in conn.execute(
            "SELECT id, resource, token, prev_token, opid FROM chaos.fenced ORDER BY id")]
        s["fence_last"] = dict(conn.execute(
            "SELECT resource, token FROM chaos.fence_last").fetchall())
        if f["reserve"]:
            s["pools"] = [r[0] for r in conn.execute(
                "SELECT row_to_json(p) FROM lockctl.pools p")]
            s["slots"] = [r[0] for r in conn.execute(
                "SELECT row_to_json(s) FROM lockctl.pool_slots s")]
            s["holds"] = [r[0] for r in conn.execute(
                "SELECT json_build_object('row', row_to_json(h), "
                "'expires_epoch', extract(epoch FROM h.expires)::float8, "
                "'finished_epoch', extract(epoch FROM h.finished)::float8) "
                "FROM lockctl.reservations h")]
            s["available"] = dict(conn.execute(
                "SELECT p.resource, lockctl.available(p.resource) FROM lockctl.pools p "
                " WHERE p.resource = ANY (%s::text[])", (list(POOLS) + list(NEW_POOLS),)))
        if f["reserve"] and f["carts"]:
            s["carts"] = [r[0] for r in conn.execute(
                "SELECT json_build_object('row', row_to_json(c), "
                "'expires_epoch', extract(epoch FROM c.expires)::float8, "
                "'finished_epoch', extract(epoch FROM c.finished)::float8) "
                "FROM lockctl.carts c")]
            s["cart_items"] = [r[0] for r in conn.execute(
                "SELECT row_to_json(i) FROM lockctl.cart_items i")]
        if f["reserve"] and f["limits"]:
            s["holder_units"] = [r[0] for r in conn.execute(
                "SELECT row_to_json(u) FROM lockctl.holder_units u")]
        if f["reserve"] and f["waitlist"]:
            s["waitlist"] = [r[0] for r in conn.execute(
                "SELECT json_build_object('row', row_to_json(w), "
                "'created_epoch', extract(epoch FROM w.created)::float8, "
                "'finished_epoch', extract(epoch FROM w.finished)::float8) "
                "FROM lockctl.waitlist_entries w")]
        if f["calendars"]:
            s["calendars"] = [r[0] for r in conn.execute(
                "SELECT row_to_json(c) FROM lockctl.calendars c")]
            # ranges and times as epoch seconds, as the history has them
            s["ranges"] = [r[0] for r in conn.execute(
                "SELECT json_build_object('id', r.id, 'cal', c.resource, "
                "'status', r.status, 'holder', r.holder, 'key', r.idempotency_key, "
                "'lo', extract(epoch FROM lower(r.during))::float8, "
                "'hi', extract(epoch FROM upper(r.during))::float8, "
                "'expires_epoch', extract(epoch FROM r.expires)::float8, "
                "'finished_epoch', extract(epoch FROM r.finished)::float8) "
                "FROM lockctl.range_reservations r "
                "LEFT JOIN lockctl.calendars c ON c.id = r.calendar_id")]
        s["effects"] = [list(r) for r in conn.execute(
            "SELECT key, opid FROM chaos.effects ORDER BY id")]
        s["settings"] = dict(conn.execute(
            "SELECT name, setting FROM pg_settings WHERE name LIKE 'lockctl.%%'").fetchall())
    with open(os.path.join(args.dir, "snapshot.json"), "w") as fh:
        json.dump(s, fh, indent=1, default=str)


# --------------------------------------------------------------------------
# check

def load_dir(d):
    hist = []
    for p in sorted(glob.glob(os.path.join(d, "history-*.jsonl"))):
        with open(p) as fh:
            for line in fh:
                line = line.strip()
                if line:
                    try:
                        hist.append(json.loads(line))
                    except ValueError:
                        pass    # a line cut by a kill: the op is unknown
    faults = []
    for name in ("faults.jsonl", "nemesis.jsonl"):
        p = os.path.join(d, name)
        if os.path.exists(p):
            with open(p) as fh:
                faults += [json.loads(l) for l in fh if l.strip()]
    snap = {}
    p = os.path.join(d, "snapshot.json")
    if os.path.exists(p):
        with open(p) as fh:
            snap = json.load(fh)
    p = os.path.join(d, "kinds.json")
    if os.path.exists(p):
        with open(p) as fh:
            snap["kinds"] = json.load(fh)     # the kinds the load ran
    return hist, faults, snap


def pick(row, *names):
    for n in names:
        if n in row:
            return row[n]
    raise KeyError("none of %s in %s" % (names, sorted(row)))


class _Spans(list):
    """A list of certain spans (start, end, ...) sorted by start (see
    Checker.covering)."""


class Checker:
    def __init__(self, hist, faults, snap):
        # the calls on sets of leases also as calls on each lease
        self.hist = hist + _expand_sets(hist)
        self.faults = faults
        self.snap = snap
        self.errors = []
        self.stats = collections.OrderedDict()
        self.restarts = sorted([f for f in faults if f["kind"] in ("crash", "restart")],
                               key=lambda f: f["t0"])
        # lockctl.lease_durability = on (the HA drill): a crash or failover
        # carries exclusive leases over from WAL, so a fence after it with
        # the same token is the same lease, not a stale one.
        self.leases_durable = False
        # How late (beyond lockctl.expiry_interval) a hold may be expired
        # when no fault was near it.  The HA drill, three nodes, etcd and
        # Patroni on the same two cores, allows more (ha/drill.py).
        self.calm_slack = 1.0

    def bad(self, invariant, msg):
        self.errors.append("%s: %s" % (invariant, msg))

    def by_op(self, *ops):
        """The complete records of these operations, in history order."""
        if not hasattr(self, "_by_op"):
            self._by_op = collections.defaultdict(list)
            for i, h in enumerate(self.hist):
                if "t1" in h:
                    self._by_op[h["op"]].append((i, h))
        if len(ops) == 1:
            return [h for _, h in self._by_op.get(ops[0], [])]
        return [h for _, h in sorted(x for op in set(ops) for x in self._by_op.get(op, []))]

    def run(self):
        self.check_coverage()
        self.check_versions()
        self.check_lease_grants()
        self.check_fences()
        self.check_hold_ids()
        if "pools" in self.snap:
            self.check_reservations()
        if self.snap.get("features", {}).get("requests"):
            self.check_requests()
        if "carts" in self.snap:
            self.check_carts()
        if "holder_units" in self.snap:
            self.check_limits()
        if "waitlist" in self.snap:
            self.check_waitlist()
        self.check_units_over_time()
        if "ranges" in self.snap or self.by_op("reserve_range"):
            self.check_calendars()
        if self.by_op("acquire_all", "set_look"):
            self.check_sets()
        return self.errors

    def run_tokens(self):
        """The invariants a history alone decides (cmd_tokens)."""
        self.check_lease_grants()
        self.check_hold_ids()
        return self.errors

    # -- hold ids: an acknowledged id belongs to one request only, so a
    # retried confirm(id) can never reach another buyer's hold
    def check_hold_ids(self):
        first = {}
        # holds, carts and waitlist entries take their ids from one sequence
        for h in self.by_op("reserve", "cart", "wait_for", "reserve_range"):
            if h["r"] != "ok" or h.get("v") is None:
                continue
            # one request: the same idempotency key on the same pool (a
            # cart's key, per role: every chaos client is one role)
            if h["op"] == "cart":
                req = ("cart", h["key"])
            elif h["op"] == "reserve_range":
                req = ("range", h["cal"], h["key"]) if h.get("key") is not None else h["opid"]
            else:
                req = ("key", h.get("pool"), h["key"]) if h.get("key") is not None \
                    else h["opid"]
            if h["v"] in first and first[h["v"]][0] != req:
                self.bad("hold ids", "hold id %s handed out to %s [%s] and again to %s [%s]"
                         % (h["v"], first[h["v"]][2], first[h["v"]][1], h.get("holder"),
                            h["opid"]))
            first.setdefault(h["v"], (req, h["opid"], h.get("holder")))
        self.stats["hold ids acknowledged"] = len(first)

    # -- a run that exercised nothing proves nothing
    def check_coverage(self):
        f = self.snap.get("features", {})
        need = []
        if f.get("versioning"):
            need.append(("vupdate", "versioned writes"))
        if f.get("lease"):
            need += [("acquire", "lease grants"), ("fence", "fenced writes")]
        if f.get("reserve"):
            need += [("reserve", "holds"), ("confirm", "confirms")]
        if f.get("requests"):
            need.append(("request", "idempotent requests"))
        # the newer kinds, where the load ran them (chaos.py load, not the
        # HA drill's clients)
        ran = set(self.snap.get("kinds", ()))
        if "counted" in ran:
            need.append(("acquire", "counted lease grants", lambda h: h.get("permits", 1) > 1))
        if "shared" in ran:
            need.append(("acquire_shared", "shared lease grants"))
        if "cart" in ran:
            need += [("cart", "carts"), ("confirm_cart", "cart confirms")]
        if "limit" in ran:
            need.append(("reserve", "holds of a limited pool", lambda h: h["pool"] == "chaos-lim"))
        if "waitlist" in ran:
            need.append(("wait_for", "waitlist entries"))
        if "set" in ran:
            need += [("acquire_all", "set grants"), ("fence_all", "fenced writes under sets"),
                     ("set_look", "looks at a set's leases")]
        if "calendar" in ran:
            need += [("reserve_range", "range holds"),
                     ("confirm_range", "range confirms", lambda h: h.get("v") is True),
                     ("cal_look", "looks at a calendar")]
        for op, what, *pred in need:
            if not any(h["op"] == op and h["r"] == "ok" and h.get("v", 0) is not None
                       and (not pred or pred[0](h)) for h in self.hist):
                self.bad("coverage", "no %s acknowledged: the run proves nothing" % what)
        # contention: sets that found a member taken, ranges that collided
        for kind, op, what in (("set", "acquire_all", "set"), ("calendar", "reserve_range",
                                                               "range hold")):
            if kind in ran and not any(h["op"] == op and h["r"] == "ok" and h["v"] is None
                                       for h in self.hist):
                self.bad("coverage", "no %s answered NULL (taken): nothing collided" % what)
        if "calendar" in ran and "ranges" in self.snap and \
                not any(x["status"] == "expired" for x in self.snap["ranges"]):
            self.bad("coverage", "no range hold expired by the worker: the run proves nothing")
        if "waitlist" in ran and "waitlist" in self.snap and \
                not any(x["row"]["status"] == "offered" for x in self.snap["waitlist"]):
            self.bad("coverage", "no waitlist offer made: the run proves nothing")

    # -- no lost update among acknowledged versioned writes
    def check_versions(self):
        acks = collections.defaultdict(list)
        infos = collections.Counter()
        for h in self.by_op("vupdate"):
            if h["r"] == "ok":
                acks[h["acct"]].append(h)
            elif h["r"] == "info":
                infos[h["acct"]] += 1
        n_ok = 0
        for acct, val, version in self.snap["accounts"]:
            a = acks.get(acct, [])
            n_ok += len(a)
            seen = {}
            for h in a:
                if h["v"] != h["rver"] + 1:
                    self.bad("versions", "account %s: write read version %s, stored %s "
                             "(expected %s) [%s]" % (acct, h["rver"], h["v"], h["rver"] + 1,
                                                     h["opid"]))
                if h["v"] in seen:
                    self.bad("versions", "account %s: lost update: writes %s and %s were both "
                             "acknowledged from version %s" % (acct, seen[h["v"]], h["opid"],
                                                                h["rver"]))
                seen[h["v"]] = h["opid"]
                if h["v"] > version:
                    self.bad("versions", "account %s: acknowledged version %s is above the "
                             "final version %s [%s]" % (acct, h["v"], version, h["opid"]))
            applied = version - 1
            if val != applied:
                self.bad("versions", "account %s: value %s but %s versions applied "
                         "(an increment was lost or doubled)" % (acct, val, applied))
            if not (len(a) <= applied <= len(a) + infos[acct]):
                self.bad("versions", "account %s: %s updates applied, but %s were acknowledged "
                         "and %s had an unknown outcome" % (acct, applied, len(a), infos[acct]))
        self.stats["versioned writes acknowledged"] = n_ok
        self.stats["versioned writes unknown outcome"] = sum(infos.values())
        self.stats["versioned conflicts (40001)"] = sum(
            1 for h in self.by_op("vupdate") if h.get("err") == "40001")

    # -- lease grants: tokens rise, one holder at a time
    def lease_events(self):
        """Per (resource, owner): every call that may have granted or extended."""
        ev = collections.defaultdict(list)
        for h in self.by_op("acquire", "renew"):
            if h["op"] == "acquire" and h["r"] == "ok" and h["v"] is None:
                continue
            ev[(h["res"], h["owner"])].append(h)
        return ev

    def restart_between(self, t_from, t_to):
        """The first restart that was under way at some moment in [t_from, t_to]."""
        return next((f for f in self.restarts if f["t1"] >= t_from and f["t0"] <= t_to), None)

    @staticmethod
    def lease_mode(h):
        """exclusive, counted (permits > 1) or shared, of a grant."""
        if h["op"] == "acquire_shared":
            return "shared"
        return "counted" if (h.get("permits") or 1) > 1 else "exclusive"

    def check_lease_grants(self):
        grants = [h for h in self.by_op("acquire", "acquire_shared")
                  if h["r"] == "ok" and h["v"] is not None]
        self.stats["lease grants acknowledged"] = len(grants)
        modes = collections.Counter(self.lease_mode(g) for g in grants)
        if modes["counted"] or modes["shared"]:
            self.stats["  of which counted / shared"] = "%d / %d" % (modes["counted"],
                                                                    modes["shared"])
        self.stats["lease acquires that timed out (NULL)"] = sum(
            1 for h in self.by_op("acquire", "acquire_shared") if h["r"] == "ok" and h["v"] is None)
        self.stats["lease calls with errors"] = sum(
            1 for h in self.by_op("acquire", "acquire_shared", "renew", "release")
            if h["r"] != "ok")
        owner_of = {}
        mode_of = {}
        per_res = collections.defaultdict(list)
        for g in grants:
            k = (g["res"], g["v"])
            if k in owner_of and owner_of[k] != g["owner"]:
                self.bad("tokens", "resource %s: token %s granted to both %s and %s"
                         % (g["res"], g["v"], owner_of[k], g["owner"]))
            owner_of[k] = g["owner"]
            mode_of.setdefault(k, self.lease_mode(g))
            per_res[g["res"]].append(g)
        # tokens rise in real time: a grant that began after another was
        # acknowledged has a larger token (or is the same owner's live lease),
        # whatever the kind: every kind takes its tokens from one sequence
        first_grant = {}
        for g in sorted(grants, key=lambda g: g["t0"]):
            first_grant.setdefault((g["res"], g["v"]), g)
        # Calls whose outcome the client never learned (an error such as a
        # statement timeout that fired as the grant was made, or no answer
        # at all): each may have granted a token that only a later safe
        # retry of the same owner reports.
        unanswered = collections.defaultdict(list)
        for h in self.hist:
            if h.get("op") in ("acquire", "acquire_shared") and h.get("r") != "ok":
                unanswered[(h["res"], h["owner"])].append(h["t0"])
        for res, gs in per_res.items():
            by_ack = sorted(gs, key=lambda g: g["t1"])
            by_start = sorted(gs, key=lambda g: g["t0"])
            i, best = 0, None
            for g in by_start:
                while i < len(by_ack) and by_ack[i]["t1"] < g["t0"]:
                    if best is None or by_ack[i]["v"] > best["v"]:
                        best = by_ack[i]
                    i += 1
                if best is None:
                    continue
                # a safe retry: the same owner given back its own token of
                # a counted or shared lease, while others got larger ones
                # (of an exclusive lease, that would be two live leases)
                fg = first_grant[(res, g["v"])]
                if g["v"] < best["v"] and fg is not g and fg["owner"] == g["owner"] \
                        and mode_of[(res, g["v"])] != "exclusive":
                    continue
                # the same, when the first grant of that token was a call of
                # the owner's whose answer was lost, begun before the larger
                # token was acknowledged
                if g["v"] < best["v"] and fg is g and mode_of[(res, g["v"])] != "exclusive" \
                        and any(t0 < best["t1"] and t0 < g["t0"]
                                for t0 in unanswered[(res, g["owner"])]):
                    continue
                if g["v"] < best["v"] or (g["v"] == best["v"] and g["owner"] != best["owner"]):
                    self.bad("tokens", "resource %s: token %s [%s] granted after token %s [%s] "
                             "was acknowledged" % (res, g["v"], g["opid"], best["v"],
                                                   best["opid"]))
        # The time each token was certainly live: from its acknowledgement
        # to the start of its last acknowledged renewal plus ttl, cut short
        # by any later call of its owner (which may have shortened it), any
        # release attempt and any restart (a crash ends every lease; a clean
        # restart ends counted and shared holders, and this checker does not
        # lean on the exclusive ones it keeps).
        rel = collections.defaultdict(list)
        for h in self.by_op("release"):
            rel[(h["res"], h["tok"])].append(h["t0"])
        attempts = collections.defaultdict(list)  # (res, owner) -> every acquire/renew
        for h in self.by_op("acquire", "acquire_shared", "renew"):
            attempts[(h["res"], h["owner"])].append(h)
        # per (res, owner): the starts in order, and from each on the
        # earliest start + ttl of that call or a later one
        soonest = {}
        for k, es in attempts.items():
            es.sort(key=lambda e: e["t0"])
            ends = [e["t0"] + e["ttl"] for e in es]
            for j in range(len(ends) - 2, -1, -1):
                ends[j] = min(ends[j], ends[j + 1])
            soonest[k] = ([e["t0"] for e in es], ends)
        acked = collections.defaultdict(list)     # (res, tok) -> acked extensions
        for h in self.by_op("renew"):
            if h["r"] == "ok" and h["v"] is not False:
                acked[(h["res"], h["tok"])].append(h)
        for g in grants:
            acked[(g["res"], g["v"])].append(g)
        live_of = collections.defaultdict(list)   # res -> (start, end, tok, owner, mode)
        for (res, tok), es in acked.items():
            if not any(e["op"] != "renew" for e in es):
                continue
            owner = owner_of.get((res, tok))
            first = min((e for e in es if e["op"] != "renew"), key=lambda e: e["t1"])
            start = first["t1"]
            # the last acknowledged grant or renewal set the expiry, and
            # any later call of the owner may have moved it (even closer)
            last = max(es, key=lambda e: e["t0"])
            t0s, ends = soonest[(res, owner)]
            end = ends[bisect.bisect_left(t0s, last["t0"])]
            for t in rel.get((res, tok), []):
                if t >= start:
                    end = min(end, t)
            # a restart under way at any moment since the grant was
            # asked for may have ended the lease (a crash always does)
            f = self.restart_between(first["t0"], end)
            if f:
                end = min(end, f["t0"])
            if end - start > MARGIN:
                live_of[res].append((start, end - MARGIN, tok, owner, mode_of[(res, tok)]))
        for res, gs in per_res.items():
            live = _Spans(sorted(live_of.get(res, [])))
            kinds = {mode_of[(res, g["v"])] for g in gs}
            if "shared" in kinds:
                self.check_shared(res, gs, live, mode_of)
            elif "counted" in kinds:
                self.check_counted(res, gs, live)
            else:
                for g in gs:
                    for start, end, tok, owner, _ in self.covering(live, g["t0"], g["t1"]):
                        if tok != g["v"]:
                            self.bad("mutual exclusion", "resource %s: token %s [%s] granted "
                                     "at %.3f-%.3f while token %s of %s was certainly live "
                                     "until %.3f" % (res, g["v"], g["opid"], g["t0"], g["t1"],
                                                     tok, owner, end + MARGIN))

    @staticmethod
    def covering(live, t0, t1):
        """The spans of live (sorted by start) that cover [t0, t1]."""
        if not live:
            return []
        if not hasattr(live, "starts"):
            live.starts = [x[0] for x in live]
            live.longest = max(x[1] - x[0] for x in live)
        lo = bisect.bisect_left(live.starts, t0 - live.longest)
        hi = bisect.bisect_right(live.starts, t0)
        return [x for x in live[lo:hi] if x[1] >= t1]

    def check_counted(self, res, gs, live):
        """Counted leases: never more than permits holders at once."""
        n = max(g.get("permits") or 1 for g in gs)
        # no grant while n other tokens were certainly live all along
        for g in gs:
            others = sorted({tok for start, end, tok, _, _ in self.covering(live, g["t0"], g["t1"])
                             if tok != g["v"]})
            if len(others) >= n:
                self.bad("permits", "resource %s (permits %d): token %s [%s] granted at "
                         "%.3f-%.3f while %d others were certainly live (%s)"
                         % (res, n, g["v"], g["opid"], g["t0"], g["t1"], len(others),
                            ", ".join(map(str, others))))
        # and at no instant more than n tokens certainly live
        ev = sorted([(s, 1, tok) for s, e, tok, _, _ in live] +
                    [(e, -1, tok) for s, e, tok, _, _ in live])
        now = set()
        reported = 0
        for t, d, tok in ev:
            if d < 0:
                now.discard(tok)
                continue
            now.add(tok)
            if len(now) > n and reported < 3:
                reported += 1
                self.bad("permits", "resource %s (permits %d): %d holders certainly live at "
                         "%.3f (tokens %s)" % (res, n, len(now), t,
                                              ", ".join(map(str, sorted(now)))))

    def check_shared(self, res, gs, live, mode_of):
        """Shared leases: never a shared and an exclusive holder (nor two
        exclusive ones) at once."""
        for g in gs:
            gm = mode_of[(res, g["v"])]
            for start, end, tok, owner, m in self.covering(live, g["t0"], g["t1"]):
                if tok != g["v"] and "exclusive" in (gm, m):
                    self.bad("shared exclusion", "resource %s: %s token %s [%s] granted at "
                             "%.3f-%.3f while %s token %s of %s was certainly live until %.3f"
                             % (res, gm, g["v"], g["opid"], g["t0"], g["t1"], m, tok, owner,
                                end + MARGIN))
        srt = sorted(live)
        for i, (s1, e1, t1, o1, m1) in enumerate(srt):
            for s2, e2, t2, o2, m2 in srt[i + 1:]:
                if s2 >= e1:
                    break
                if t1 != t2 and "exclusive" in (m1, m2):
                    self.bad("shared exclusion", "resource %s: %s token %s of %s and %s token "
                             "%s of %s both certainly live at %.3f-%.3f"
                             % (res, m1, t1, o1, m2, t2, o2, s2, min(e1, e2)))

    # -- fenced writes
    def check_fences(self):
        ops = {h["opid"]: h for h in self.by_op("fence")}
        rows = self.snap["fenced"]
        self.stats["fenced writes acknowledged"] = sum(1 for h in ops.values() if h["r"] == "ok")
        self.stats["fenced writes refused (40001)"] = sum(
            1 for h in ops.values() if h.get("err") == "40001")
        self.stats["fenced writes accepted after a pause of 0.5-2.2 s"] = sum(
            1 for h in ops.values() if h["r"] == "ok" and h.get("pause", 0) > 0)
        in_table = {}
        per_res = collections.defaultdict(list)
        for rid, res, tok, prev, opid in rows:
            in_table[opid] = (res, tok, prev)
            per_res[res].append((rid, tok, prev, opid))
            # commit order: every fenced write saw (under the row lock) the
            # token of the one committed before it
            if tok < prev:
                self.bad("fencing", "resource %s: write %s with token %s committed after a "
                         "write with the larger token %s" % (res, opid, tok, prev))
            h = ops.get(opid)
            if h is None:
                self.bad("fencing", "write %s is in the table but not in the history" % opid)
            elif h["r"] == "fail":
                self.bad("fencing", "write %s failed (%s) yet is in the table" % (opid, h["err"]))
        for res, rs in per_res.items():
            # the chain of prev tokens is consistent: tokens never go down
            toks = collections.Counter(t for _, t, _, _ in rs)
            for rid, tok, prev, opid in rs:
                if prev != 0 and prev not in toks:
                    self.bad("fencing", "resource %s: write %s saw token %s which never wrote"
                             % (res, opid, prev))
            top = max(t for _, t, _, _ in rs)
            if self.snap["fence_last"].get(res, 0) != top:
                self.bad("fencing", "resource %s: last token %s but the largest written is %s"
                         % (res, self.snap["fence_last"].get(res), top))
        for opid, h in ops.items():
            if h["r"] == "ok" and opid not in in_table:
                self.bad("durability", "acknowledged fenced write %s is missing" % opid)
        # real time: a write whose fence began after a larger token was
        # granted, or after its own lease had certainly expired, or after a
        # crash lost its lease, must have been refused
        grants = collections.defaultdict(list)
        for h in self.by_op("acquire"):
            if h["r"] == "ok" and h["v"] is not None:
                grants[h["res"]].append(h)
        events = self.lease_events()
        for opid, (res, tok, prev) in in_table.items():
            h = ops.get(opid)
            if h is None or "tf" not in h:
                continue
            tf = h["tf"]
            for g in grants[res]:
                if g["v"] > tok and g["t1"] < tf - MARGIN / 3:
                    self.bad("fencing", "write %s with token %s fenced at %.3f, after token %s "
                             "[%s] was granted at %.3f" % (opid, tok, tf, g["v"], g["opid"],
                                                          g["t1"]))
                    break
            ev = [e for e in events[(res, h["owner"])] if e["t0"] < tf]
            if not ev:
                continue
            bound = max(e["t1"] + e["ttl"] for e in ev)
            if tf > bound + MARGIN:
                self.bad("fencing", "write %s with token %s fenced at %.3f, %.3f s after its "
                         "lease had certainly expired" % (opid, tok, tf, tf - bound))
            last = max(e["t1"] for e in ev)
            crash = next((f for f in self.restarts if f["kind"] == "crash"
                          and f["t0"] > last and f["t1"] < tf), None)
            if crash and not self.leases_durable:
                self.bad("fencing", "write %s with token %s fenced at %.3f after the crash at "
                         "%.3f lost its lease" % (opid, tok, tf, crash["t0"]))

    # -- reservations
    def check_reservations(self):
        snap = self.snap
        pools = {}
        pool_by_id = {}
        for p in snap["pools"]:
            pools[p["resource"]] = p
            pool_by_id[p["id"]] = p["resource"]
        holds = {}
        per_slot = collections.defaultdict(collections.Counter)
        for x in snap["holds"]:
            h = x["row"]
            h["_expires"] = x["expires_epoch"]
            h["_finished"] = x.get("finished_epoch")
            h["_pool"] = pool_by_id.get(h["pool_id"], "?%s" % h["pool_id"])
            holds[h["id"]] = h
            per_slot[(h["pool_id"], h["slot"])][h["status"]] += h["quantity"]
            per_slot[(h["pool_id"], h["slot"])]["n_" + h["status"]] += 1
        # a cart's items take their units from the slots like holds, in the
        # cart's state, and each counts as one hold in the holds_* counters
        carts = {x["row"]["id"]: x["row"] for x in snap.get("carts", [])}
        for it in snap.get("cart_items", []):
            st = carts[it["cart_id"]]["status"] if it["cart_id"] in carts else "no cart"
            per_slot[(it["pool_id"], it["slot"])][st] += it["quantity"]
            per_slot[(it["pool_id"], it["slot"])]["n_" + st] += 1
        sums = collections.defaultdict(collections.Counter)
        for sl in snap["slots"]:
            k = (sl["pool_id"], sl["slot"])
            c = per_slot.pop(k, collections.Counter())
            name = pool_by_id.get(sl["pool_id"], "?%s" % sl["pool_id"])
            # held counts the units kept for the pool's waitlist (kept, 1.1),
            # which no hold has
            kept = sl.get("kept", 0)
            if sl["held"] - kept != c["held"] or sl["confirmed"] != c["confirmed"]:
                self.bad("pool counters", "pool %s slot %s: counters held=%s (kept %s) "
                         "confirmed=%s, its holds sum to held=%s confirmed=%s"
                         % (name, sl["slot"], sl["held"], kept, sl["confirmed"], c["held"],
                            c["confirmed"]))
            if sl["held"] < 0 or sl["confirmed"] < 0 or kept < 0 or kept > sl["held"] or \
                    sl["held"] + sl["confirmed"] > sl["capacity"]:
                self.bad("capacity", "pool %s slot %s: held %s + confirmed %s > capacity %s"
                         % (name, sl["slot"], sl["held"], sl["confirmed"], sl["capacity"]))
            for f in ("capacity", "held", "confirmed"):
                sums[name][f] += sl[f]
            sums[name]["holds_confirmed"] += sl.get("holds_confirmed", 0)
            sums[name]["n_confirmed"] += c["n_confirmed"]
        for k, c in per_slot.items():
            self.bad("holds", "%d holds point at pool %s slot %s, which does not exist"
                     % (sum(v for n, v in c.items() if n.startswith("n_")), k[0], k[1]))
        for name, p in pools.items():
            t = sums[name]
            cap, held, conf = p["capacity"], t["held"], t["confirmed"]
            if t["capacity"] != cap:
                self.bad("units", "pool %s: capacity %s, its slots' capacities sum to %s"
                         % (name, cap, t["capacity"]))
            if held + conf > cap:
                self.bad("capacity", "pool %s: held %s + confirmed %s > capacity %s"
                         % (name, held, conf, cap))
            if t["holds_confirmed"] != t["n_confirmed"]:
                self.bad("pool counters", "pool %s: holds_confirmed counts %s, %s holds are "
                         "confirmed" % (name, t["holds_confirmed"], t["n_confirmed"]))
            av = snap.get("available", {}).get(name)
            if av is not None and av != cap - held - conf:
                self.bad("units", "pool %s: available() is %s, capacity - held - confirmed is %s"
                         % (name, av, cap - held - conf))
        # the history against the table
        keyed = {}
        reserves = self.by_op("reserve")
        self.stats["holds acknowledged"] = sum(1 for h in reserves
                                               if h["r"] == "ok" and h["v"] is not None)
        self.stats["reserves sold out (NULL)"] = sum(1 for h in reserves
                                                     if h["r"] == "ok" and h["v"] is None)
        for h in reserves:
            if h["r"] != "ok" or h["v"] is None:
                continue
            row = holds.get(h["v"])
            if row is None:
                self.bad("durability", "acknowledged hold %s [%s] is missing" % (h["v"], h["opid"]))
                continue
            if row["_pool"] != h["pool"] or row["quantity"] != h["qty"]:
                self.bad("holds", "hold %s is %s x %s, was asked %s x %s"
                         % (h["v"], row["_pool"], row["quantity"], h["pool"], h["qty"]))
            if h["key"] is not None:
                k = (h["pool"], h["key"])
                if keyed.setdefault(k, h["v"]) != h["v"]:
                    self.bad("idempotency", "key %s of pool %s gave holds %s and %s"
                             % (h["key"], h["pool"], keyed[k], h["v"]))
        keys = collections.Counter()
        for row in holds.values():
            k = row["idempotency_key"]
            if k is not None:
                keys[(row["_pool"], k)] += 1
        for k, n in keys.items():
            if n > 1:
                self.bad("idempotency", "key %s of pool %s has %d holds" % (k[1], k[0], n))
        # acknowledged confirms and cancels stuck; no confirm after expiry
        exts = collections.defaultdict(list)
        for h in self.by_op("reserve", "extend"):
            hid = h.get("v") if h["op"] == "reserve" else h["id"]
            if hid is not None:
                exts[hid].append(h)
        for h in self.by_op("confirm", "cancel"):
            if h["r"] != "ok":
                continue
            row = holds.get(h["id"])
            want = "confirmed" if h["op"] == "confirm" else "cancelled"
            # cancel answers false for a hold already cancelled or expired
            ok = (want,) if h["v"] is not False or want == "confirmed" \
                else ("cancelled", "expired")
            if row is None:
                self.bad("durability", "hold %s acknowledged %s is missing" % (h["id"], want))
            elif row["status"] not in ok:
                self.bad("holds", "hold %s was acknowledged %s but is %s"
                         % (h["id"], want, row["status"]))
            # (only for holds made by a recorded reserve: a waitlist's
            # offer is made by whoever served the queue, at a time the
            # history does not show)
            if h["op"] == "confirm" and any(e["op"] == "reserve" for e in exts.get(h["id"], [])):
                bound = max(e["t1"] + e["ttl"] for e in exts[h["id"]])
                if h["t0"] > bound + MARGIN:
                    self.bad("expiry", "hold %s confirmed at %.3f, %.3f s after it had "
                             "certainly expired" % (h["id"], h["t0"], h["t0"] - bound))
        # the worker: nothing due is left once the server is up
        offset = snap["server_epoch"] - snap["mono"]
        interval = float(snap["settings"].get("lockctl.expiry_interval", 1000)) / 1000
        bound = interval + 2.0
        late = []
        for row in holds.values():
            if row["status"] == "held" and row["_expires"] < snap["server_epoch"] - bound:
                self.bad("expiry", "hold %s expired %.1f s before the snapshot and is still held"
                         % (row["id"], snap["server_epoch"] - row["_expires"]))
            if row["status"] == "expired" and row["_finished"] is not None:
                late.append(row["_finished"] - row["_expires"])
            if row["status"] == "confirmed" and row["_finished"] is not None \
                    and row["_finished"] > row["_expires"] + 0.001:
                self.bad("expiry", "hold %s was confirmed %.3f s after it expired"
                         % (row["id"], row["_finished"] - row["_expires"]))
        # lateness of holds that fell due while nothing disturbed the worker
        # (no worker kill, crash or restart from 7 s before until the expiry)
        order = ("crash", "restart", "kill_launcher", "kill_worker")
        disturb = sorted((f["t0"], f["kind"]) for f in self.faults if f["kind"] in order)
        calm = []
        by_fault = collections.defaultdict(list)
        for row in holds.values():
            if row["status"] != "expired" or row["_finished"] is None:
                continue
            t_e = row["_expires"] - offset
            t_f = row["_finished"] - offset
            near = {k for t, k in disturb if t_e - 7 <= t <= t_f}
            if near:
                worst = next(k for k in order if k in near)
                by_fault[worst].append(row["_finished"] - row["_expires"])
            else:
                calm.append(row["_finished"] - row["_expires"])
                if calm[-1] > interval + self.calm_slack:
                    self.bad("expiry", "hold %s expired %.3f s late with no fault near it "
                             "(bound %.1f s)" % (row["id"], calm[-1], interval + self.calm_slack))
        if calm:
            calm.sort()
            self.stats["expiry lateness away from faults: n, median / p99 / max (s)"] = \
                "%d, %.3f / %.3f / %.3f" % (len(calm), calm[len(calm) // 2],
                                            calm[int(len(calm) * 0.99)], calm[-1])
        for k in order:
            if by_fault.get(k):
                v = sorted(by_fault[k])
                self.stats["expiry lateness near a %s: n, median / max (s)" % k] = \
                    "%d, %.3f / %.3f" % (len(v), v[len(v) // 2], v[-1])
        if late:
            late.sort()
            self.stats["expiry lateness, all: median / p99 / max (s)"] = "%.3f / %.3f / %.3f" % (
                late[len(late) // 2], late[int(len(late) * 0.99)], late[-1])
        st = collections.Counter(r["status"] for r in holds.values())
        for s, n in sorted(st.items()):
            self.stats["holds %s" % s] = n
        self.stats["expiry bound checked (s)"] = bound


def _check_requests(self):
    """At most one effect per request key; every acknowledged effect kept;
    every duplicate answered with the result of the copy that took effect;
    no effect from a copy whose transaction did not commit."""
    effects = collections.defaultdict(list)
    for key, opid in self.snap.get("effects", []):
        effects[key].append(opid)
    for key, opids in sorted(effects.items()):
        if len(opids) > 1:
            self.bad("requests", "request %s took effect %d times (%s)"
                     % (key, len(opids), ", ".join(opids)))
    ops = {h["opid"]: h for h in self.by_op("request")}
    went = dup = 0
    for key, opids in effects.items():
        for opid in opids:
            h = ops.get(opid)
            if h is None:
                self.bad("requests", "effect %s of %s by no recorded request" % (opid, key))
            elif h["r"] == "fail" or h.get("rolled_back"):
                self.bad("requests", "effect %s of %s kept although its transaction %s"
                         % (opid, key, "rolled back" if h.get("rolled_back") else
                            "failed (%s)" % h.get("err")))
    for h in ops.values():
        if h["r"] != "ok" or h.get("rolled_back"):
            continue
        have = effects.get(h["key"], [])
        if h.get("went"):
            went += 1
            if h["opid"] not in have:
                self.bad("requests", "acknowledged effect %s of %s lost" % (h["opid"], h["key"]))
        else:
            dup += 1
            if h.get("v") not in have:
                self.bad("requests", "duplicate %s of %s was answered %r, not the result of "
                         "the copy that took effect (%s)" % (h["opid"], h["key"], h.get("v"),
                                                             ", ".join(have) or "none"))
    self.stats["requests: effects acknowledged / duplicates replayed"] = "%d / %d" % (went, dup)


Checker.check_requests = _check_requests


# Slack for the waitlist's order: an entry is taken as visible to whoever
# serves the queue once its wait_for was acknowledged plus this much (the
# worker picks the head in one statement and stamps the offer a few
# statements later; an entry committed in between is rightly not served).
WAIT_MARGIN = 1.0


def _expiry_end(first, later, cut):
    """The earliest moment a hold or cart may have ended: first (the call
    that made it, with its t0 and ttl), later (every extend call that was
    not refused), cut (times of cancel calls that were not refused).  The
    last acknowledged call set the expiry to at least its t0 + ttl, and any
    later call that may have taken effect may have moved it, even closer."""
    acked = [first] + [e for e in later if e["r"] == "ok"]
    last = max(acked, key=lambda e: e["t0"])
    end = min(e["t0"] + e["ttl"] for e in [first] + later if e["t0"] >= last["t0"])
    for t in cut:
        if t >= first["t0"]:
            end = min(end, t)
    return end


def _check_carts(self):
    """Carts: every cart of the table was made by one recorded call (each
    call has its own key), holds exactly the items asked (all or nothing),
    and is answered consistently; acknowledged carts, confirms and cancels
    stick; no confirm after the cart had certainly expired; nothing due is
    left held."""
    snap = self.snap
    pool_name = {p["id"]: p["resource"] for p in snap.get("pools", [])}
    carts = {}
    for x in snap["carts"]:
        c = dict(x["row"])
        c["_expires"] = x["expires_epoch"]
        carts[c["id"]] = c
    items = collections.defaultdict(collections.Counter)
    for it in snap.get("cart_items", []):
        if it["cart_id"] not in carts:
            self.bad("carts", "an item of %s units of pool %s belongs to no cart (%s)"
                     % (it["quantity"], it["pool_id"], it["cart_id"]))
            continue
        items[it["cart_id"]][pool_name.get(it["pool_id"], "?%s" % it["pool_id"])] += \
            it["quantity"]
    by_key = {c["idempotency_key"]: c for c in carts.values() if c["idempotency_key"]}
    calls = collections.defaultdict(list)
    for h in self.by_op("cart"):
        calls[h["key"]].append(h)
    n_ok = n_null = 0
    for key, cs in calls.items():
        row = by_key.get(key)
        want = collections.Counter(cs[0]["items"])
        acked = [h for h in cs if h["r"] == "ok"]
        n_ok += sum(1 for h in acked if h["v"] is not None)
        n_null += sum(1 for h in acked if h["v"] is None)
        if row is None:
            for h in acked:
                if h["v"] is not None:
                    self.bad("durability", "acknowledged cart %s [%s] is missing"
                             % (h["v"], h["opid"]))
            continue
        if all(h["r"] == "fail" for h in cs):
            self.bad("carts", "cart %s exists, yet every call with its key failed (%s)"
                     % (row["id"], ", ".join("%s %s" % (h["opid"], h.get("err")) for h in cs)))
        for h in acked:
            if h["v"] is None:
                self.bad("carts", "cart %s exists, yet its call [%s] answered NULL (not "
                         "reserved)" % (row["id"], h["opid"]))
            elif h["v"] != row["id"]:
                self.bad("carts", "call [%s] was answered cart %s, its key's cart is %s"
                         % (h["opid"], h["v"], row["id"]))
        got = items.get(row["id"], collections.Counter())
        if got != want:
            self.bad("carts", "cart %s holds %s, its call asked %s: not all or nothing"
                     % (row["id"], dict(sorted(got.items())), dict(sorted(want.items()))))
        if row["holder"] != cs[0]["holder"]:
            self.bad("carts", "cart %s is %s's, its call was %s's"
                     % (row["id"], row["holder"], cs[0]["holder"]))
    for c in carts.values():
        if c["idempotency_key"] not in calls:
            self.bad("carts", "cart %s (key %s) was made by no recorded call"
                     % (c["id"], c["idempotency_key"]))
    self.stats["carts acknowledged / not reserved (NULL)"] = "%d / %d" % (n_ok, n_null)
    # acknowledged confirms and cancels stick; no confirm after expiry
    made = {}
    for key, cs in calls.items():
        row = by_key.get(key)
        if row is not None:
            made[row["id"]] = [h for h in cs if h["r"] != "fail"]
    exts = collections.defaultdict(list)
    for h in self.by_op("extend_cart"):
        exts[h["id"]].append(h)
    for h in self.by_op("confirm_cart", "cancel_cart"):
        if h["r"] != "ok":
            continue
        row = carts.get(h["id"])
        want = "confirmed" if h["op"] == "confirm_cart" else "cancelled"
        ok = (want,) if h["v"] is not False or want == "confirmed" else ("cancelled", "expired")
        if row is None:
            self.bad("durability", "cart %s acknowledged %s is missing" % (h["id"], want))
            continue
        if row["status"] not in ok:
            self.bad("carts", "cart %s was acknowledged %s but is %s"
                     % (h["id"], want, row["status"]))
        if h["op"] == "confirm_cart" and made.get(h["id"]):
            bound = max(e["t1"] + e["ttl"] for e in made[h["id"]] + exts[h["id"]])
            if h["t0"] > bound + MARGIN:
                self.bad("expiry", "cart %s confirmed at %.3f, %.3f s after it had certainly "
                         "expired" % (h["id"], h["t0"], h["t0"] - bound))
    interval = float(snap["settings"].get("lockctl.expiry_interval", 1000)) / 1000
    for c in carts.values():
        if c["status"] == "held" and c["_expires"] < snap["server_epoch"] - interval - 2.0:
            self.bad("expiry", "cart %s expired %.1f s before the snapshot and is still held"
                     % (c["id"], snap["server_epoch"] - c["_expires"]))
    st = collections.Counter(c["status"] for c in carts.values())
    self.stats["carts by state"] = dict(sorted(st.items()))


def _check_limits(self):
    """Per-holder limits, in the snapshot: each holder's held + confirmed
    units of a limited pool (holds and cart items) are within the limit and
    equal its count in lockctl.holder_units."""
    snap = self.snap
    limited = {p["id"]: p for p in snap.get("pools", []) if p.get("max_per_holder") is not None}
    units = collections.Counter()
    for x in snap.get("holds", []):
        h = x["row"]
        if h["pool_id"] in limited and h["status"] in ("held", "confirmed"):
            units[(h["pool_id"], h["holder"])] += h["quantity"]
    carts = {x["row"]["id"]: x["row"] for x in snap.get("carts", [])}
    for it in snap.get("cart_items", []):
        c = carts.get(it["cart_id"])
        if it["pool_id"] in limited and c and c["status"] in ("held", "confirmed"):
            units[(it["pool_id"], c["holder"])] += it["quantity"]
    counts = {(u["pool_id"], u["holder"]): u["units"] for u in snap["holder_units"]}
    for k in sorted(set(units) | set(counts), key=str):
        p = limited.get(k[0])
        if p is None:
            continue
        n, cnt = units.get(k, 0), counts.get(k, 0)
        if n > p["max_per_holder"]:
            self.bad("holder limits", "pool %s: holder %s has %d units held and confirmed, "
                     "the limit is %d" % (p["resource"], k[1], n, p["max_per_holder"]))
        if n != cnt:
            self.bad("holder limits", "pool %s: holder %s is counted %d units, its holds and "
                     "carts sum to %d" % (p["resource"], k[1], cnt, n))
    self.stats["holders of limited pools"] = len([k for k in units if units[k]])
    self.stats["reserves refused over a holder's limit (53400)"] = sum(
        1 for h in self.by_op("reserve", "cart") if h.get("err") == "53400")


def _check_waitlist(self):
    """Waitlists: strict FIFO (no entry offered while an earlier, committed
    entry still waited), every offer a hold of the entry's quantity and
    holder, and after every transaction that gave units back (a cancel that
    returned true) or joined the queue (wait_for, which serves it), read in
    that same transaction: no waiting head that the free units would fit,
    so no walk-in can take units while someone waits for them.  A
    set_capacity (a restock) serves the queue too, and is read back the
    same way."""
    snap = self.snap
    offset = snap["server_epoch"] - snap["mono"]
    holds = {x["row"]["id"]: x["row"] for x in snap.get("holds", [])}
    acks = {h["v"]: h for h in self.by_op("wait_for") if h["r"] == "ok"}
    per_pool = collections.defaultdict(list)
    for x in snap["waitlist"]:
        e = dict(x["row"])
        e["_created"], e["_finished"] = x["created_epoch"], x["finished_epoch"]
        per_pool[e["pool_id"]].append(e)
    for es in per_pool.values():
        es.sort(key=lambda e: e["id"])
        for b in es:
            if b["status"] != "offered":
                continue
            hold = holds.get(b["hold_id"])
            if hold is None:
                self.bad("waitlist", "entry %s was offered hold %s, which does not exist"
                         % (b["id"], b["hold_id"]))
            elif hold["quantity"] != b["quantity"] or hold["holder"] != b["holder"] \
                    or hold["pool_id"] != b["pool_id"]:
                self.bad("waitlist", "entry %s (%s x %s of %s) was offered hold %s (%s x %s of "
                         "%s)" % (b["id"], b["quantity"], b["pool_id"], b["holder"], hold["id"],
                                  hold["quantity"], hold["pool_id"], hold["holder"]))
            fb = b["_finished"]
            for a in es:
                if a["id"] >= b["id"]:
                    break
                h = acks.get(a["id"])
                if h is None or h["t1"] + WAIT_MARGIN >= fb - offset:
                    continue
                if a["_finished"] is None or a["_finished"] > fb:
                    self.bad("waitlist", "entry %s was offered at %.3f while the earlier entry "
                             "%s, acknowledged at %.3f, still waited (FIFO skipped)"
                             % (b["id"], fb - offset, a["id"], h["t1"]))
                    break
    n = 0
    for h in self.by_op("cancel", "wait_for", "set_capacity"):
        a = h.get("after")
        if h["r"] != "ok" or a is None or (h["op"] == "cancel" and h["v"] is not True):
            continue
        n += 1
        if a["head"] is not None and a["head_qty"] <= a["free"]:
            self.bad("waitlist", "after %s [%s], %s units were free while entry %s waited for "
                     "%s: left to walk-ins" % (h["op"], h["opid"], a["free"], a["head"],
                                               a["head_qty"]))
    st = collections.Counter(e["status"] for es in per_pool.values() for e in es)
    self.stats["waitlist entries by state"] = dict(sorted(st.items()))
    self.stats["waitlist: returns and joins read back in their transaction"] = n


def _check_units_over_time(self):
    """Over the whole run, not only in the final tables: on the pools whose
    capacity never changes, the units certainly held or confirmed at any
    instant (by acknowledged reserves and carts, from their acknowledgement
    until they may have expired or been cancelled, or for good once a
    confirm was acknowledged) never exceed the capacity, nor a holder's
    limit.  Offers made to waitlists are not in the history: left out, which
    only makes the sums smaller."""
    pools = {p["resource"]: p for p in self.snap.get("pools", [])}
    # the capacity at any instant is the pool's first or one that a
    # set_capacity (a restock) which was not refused and had begun set:
    # at most the largest of those
    raised = collections.defaultdict(list)
    for h in self.by_op("set_capacity"):
        if h["r"] != "fail" and h.get("cap") is not None:
            raised[h["pool"]].append((h["t0"], h["cap"]))
    caps = {}
    for name, (cap, lim) in NEW_POOLS.items():
        p = pools.get(name)
        if p is not None:
            caps[name] = (cap, p.get("max_per_holder"))
        elif not pools:
            caps[name] = (cap, lim)
    confirmed, cancels, exts = set(), collections.defaultdict(list), collections.defaultdict(list)
    for h in self.by_op("confirm", "confirm_cart"):
        if h["r"] == "ok":
            confirmed.add(h["id"])
    for h in self.by_op("cancel", "cancel_cart"):
        if h["r"] != "fail":
            cancels[h["id"]].append(h["t0"])
    for h in self.by_op("extend", "extend_cart"):
        if h["r"] != "fail":
            exts[h["id"]].append(h)
    spans = []          # (pool, holder, quantity, start, end)

    def add(hid, first, start, parts, holder):
        end = float("inf") if hid in confirmed else \
            _expiry_end(first, exts.get(hid, []), cancels.get(hid, [])) - MARGIN
        if end > start:
            for pool, q in parts:
                if pool in caps:
                    spans.append((pool, holder, q, start, end))
    for h in self.by_op("reserve"):
        if h["r"] == "ok" and h["v"] is not None and h["pool"] in caps:
            add(h["v"], h, h["t1"], [(h["pool"], h["qty"])], h.get("holder"))
    keyed = collections.defaultdict(list)
    for h in self.by_op("cart"):
        keyed[h["key"]].append(h)
    for cs in keyed.values():
        ok = [h for h in cs if h["r"] == "ok" and h["v"] is not None]
        if not ok:
            continue
        # made by one of the calls with its key: expiry at least the
        # earliest such call's start plus ttl
        maker = dict(min((h for h in cs if h["r"] != "fail"), key=lambda h: h["t0"]))
        maker["r"] = "ok"
        add(ok[0]["v"], maker, min(h["t1"] for h in ok), sorted(cs[0]["items"].items()),
            cs[0].get("holder"))
    per_pool = collections.defaultdict(list)
    per_holder = collections.defaultdict(list)
    for pool, holder, q, s, e in spans:
        per_pool[pool].append((s, e, q))
        if caps[pool][1] is not None:
            per_holder[(pool, holder)].append((s, e, q))

    def peak(spans_, cap0, raised_=()):
        """The units taken at the instant they came closest to (or went
        furthest above) the capacity bound: (units, bound, when)."""
        ev = sorted([(s, 1, q) for s, e, q in spans_] + [(e, -1, q) for s, e, q in spans_])
        rs = sorted(raised_)
        cur, cap, i, top = 0, cap0, 0, (0, cap0, None)
        for t, d, q in ev:
            while i < len(rs) and rs[i][0] <= t:
                cap = max(cap, rs[i][1])
                i += 1
            cur += d * q
            if cur - cap > top[0] - top[1]:
                top = (cur, cap, t)
        return top
    for pool, sp in sorted(per_pool.items()):
        top, cap, at = peak(sp, caps[pool][0], raised.get(pool, ()))
        self.stats["%s: closest to capacity (units certainly taken - bound)" % pool] = \
            "%d - %d" % (top, cap)
        if top > cap:
            self.bad("capacity", "pool %s: %d units certainly held or confirmed at %.3f, "
                     "capacity at most %d" % (pool, top, at, cap))
    worst = 0
    for (pool, holder), sp in sorted(per_holder.items(), key=str):
        top, _, at = peak(sp, caps[pool][1])
        worst = max(worst, top)
        if top > caps[pool][1]:
            self.bad("holder limits", "pool %s: holder %s certainly had %d units at %.3f, the "
                     "limit is %d" % (pool, holder, top, at, caps[pool][1]))
    if per_holder:
        self.stats["most units a holder certainly had at once"] = worst


Checker.check_carts = _check_carts
Checker.check_limits = _check_limits
Checker.check_waitlist = _check_waitlist
Checker.check_units_over_time = _check_units_over_time


# --------------------------------------------------------------------------
# Sets of leases (issue 17) and calendars (issue 18)

def _expand_sets(hist):
    """The calls on sets of leases, as the calls on single leases the lease
    checks read: an acquire_all is an acquire of each of its resources (its
    token at its place in the answer), a release_all a release of each, a
    fence_all a fenced write of each (opid <opid>:<resource>, as the rows of
    chaos.fenced).  So every lease check (tokens rise, one exclusive holder
    at a time, fencing, durability of the writes) covers every member."""
    out = []
    for h in hist:
        op = h["op"]
        if op not in ("acquire_all", "release_all", "fence_all") or "t1" not in h:
            continue
        v = h.get("v")
        for i, res in enumerate(h.get("rs") or []):
            g = {k: h[k] for k in ("t0", "t1", "r", "c", "owner", "err") if k in h}
            g["res"], g["set"] = res, h["opid"]
            if op == "acquire_all":
                g.update(op="acquire", ttl=h["ttl"], wait=h["wait"], opid=h["opid"])
            elif op == "release_all":
                g.update(op="release", tok=h["toks"][i], opid=h["opid"])
            else:
                g.update(op="fence", tok=h["toks"][i], opid="%s:%s" % (h["opid"], res),
                         pause=h.get("pause", 0))
                if "tf" in h:
                    g["tf"] = h["tf"]
            if h["r"] == "ok":
                g["v"] = v[i] if isinstance(v, list) and i < len(v) else \
                    (True if op == "fence_all" else None)
            out.append(g)
    return out


def _check_sets(self):
    """A set is granted whole or not at all: every answer of acquire_all is
    NULL or one token per resource, and a look at lockctl.leases right after
    the calls of one owner (each set has its own) shows all of the set or
    none of it, with the answered tokens and one set id, as long as none of
    them can have expired and no restart came between (a restart ends sets;
    an expired member may be taken by another before the rest).  That no
    other holder has a member while the set is held, and that a fenced
    write under a superseded token is refused, are the lease checks' (the
    set's calls expanded, _expand_sets)."""
    by_owner = collections.defaultdict(list)
    n_ok = n_null = 0
    for h in self.by_op("acquire_all"):
        by_owner[h["owner"]].append(h)
        if h["r"] != "ok":
            continue
        v, rs = h.get("v"), h["rs"]
        if v is None:
            n_null += 1
            continue
        if not isinstance(v, list) or len(v) != len(rs) or any(t is None for t in v):
            self.bad("sets", "acquire_all of %s [%s] answered %r: not one token for each of its "
                     "%d resources (part of a set)" % (",".join(rs), h["opid"], v, len(rs)))
        elif len(set(v)) != len(v):
            self.bad("sets", "acquire_all of %s [%s] answered %r: one token for two resources"
                     % (",".join(rs), h["opid"], v))
        else:
            n_ok += 1
    rel = collections.defaultdict(list)
    for h in self.by_op("release", "release_all"):
        rel[h["owner"]].append(h["t0"])
    n_looks = n_whole = 0
    self.whole_looks = []      # checked and seen whole (for the selftest)
    for lk in self.by_op("set_look"):
        if lk["r"] != "ok" or not isinstance(lk.get("v"), list):
            continue
        rs, owner = lk["rs"], lk["owner"]
        calls = [a for a in by_owner.get(owner, []) if a["t0"] < lk["t0"]]
        seen = {row[0]: row for row in lk["v"]}
        extra = sorted(set(seen) - set(rs))
        if extra:
            self.bad("sets", "owner %s of the set %s holds %s too [%s]"
                     % (owner, ",".join(rs), ",".join(extra), lk["opid"]))
        maybe = [a for a in calls if a["r"] != "ok" or a.get("v") is not None]
        if not maybe:
            # every call answered NULL: nothing of the set was ever granted
            if seen:
                self.bad("sets", "owner %s holds %s at %.3f, yet every acquire_all it made "
                         "answered NULL (%s)" % (owner, ",".join(sorted(seen)), lk["t1"],
                                                 ", ".join(a["opid"] for a in calls)))
            n_looks += 1
            continue
        first = min(a["t0"] for a in maybe)
        if lk["t1"] > min(a["t0"] + a["ttl"] for a in maybe) - MARGIN \
                or self.restart_between(first, lk["t1"]) \
                or any(first <= t <= lk["t1"] for t in rel.get(owner, ())):
            continue
        n_looks += 1
        held = [r for r in rs if r in seen]
        if held and len(held) < len(rs):
            self.bad("sets", "set %s of owner %s: only %s held at %.3f, %.3f s after its "
                     "acquire_all [%s] (part of a set)"
                     % (",".join(rs), owner, ",".join(held), lk["t1"], lk["t1"] - first,
                        ", ".join(a["opid"] for a in maybe)))
            continue
        if not held:
            continue
        n_whole += 1
        self.whole_looks.append(lk["opid"])
        for a in maybe:
            if a["r"] == "ok" and isinstance(a.get("v"), list) and \
                    [seen[r][1] for r in rs] != a["v"]:
                self.bad("sets", "set %s of owner %s holds tokens %s, its acquire_all [%s] "
                         "answered %s" % (",".join(rs), owner, [seen[r][1] for r in rs],
                                          a["opid"], a["v"]))
        ids = {seen[r][2] for r in rs}
        if len(ids) != 1 or None in ids:
            self.bad("sets", "set %s of owner %s: its leases have set ids %s, not one set's"
                     % (",".join(rs), owner, sorted(ids, key=str)))
    self.stats["sets granted / answered NULL"] = "%d / %d" % (n_ok, n_null)
    self.stats["looks at sets checked (whole / none)"] = "%d / %d" % (n_whole, n_looks - n_whole)


def _range_peak(ranges):
    """The most of ranges [lo, hi) (tuples, lo and hi first) that cover one
    instant, and that instant (ranges that meet do not overlap)."""
    ev = sorted([(r[0], 1) for r in ranges] + [(r[1], -1) for r in ranges])
    cur, top, at = 0, 0, None
    for t, d in ev:
        cur += d
        if cur > top:
            top, at = cur, t
    return top, at


def _cal_when(t):
    """A calendar instant (epoch seconds) as 'day D +M min' of the run's days."""
    d = (t - CAL_BASE) // 86400
    return "day %d +%g min" % (d, (t - CAL_BASE - 86400 * d) / 60.0)


def _check_calendars(self):
    """Calendars: held and confirmed range holds never cover an instant of a
    calendar more than its capacity times: in the final tables, in every
    look of a client during the run (one snapshot), and over the whole run
    from the history (the holds certainly live at each moment: from their
    acknowledgement until they may have expired or been cancelled, for
    good once a confirm was acknowledged), across expiry by the worker,
    crashes and restarts.  Acknowledged holds, confirms and cancels are
    never lost; no hold is confirmed after it had certainly expired; the
    worker leaves nothing due held."""
    snap = self.snap
    caps = dict(CALENDARS)
    caps.update({c["resource"]: c["capacity"] for c in snap.get("calendars", [])})
    have = "ranges" in snap
    rows = {x["id"]: x for x in snap.get("ranges", [])}

    def over(what, cal, ranges):
        top, at = _range_peak(ranges)
        if top > caps.get(cal, 1):
            ids = sorted(r[2] for r in ranges if r[0] <= at < r[1])
            self.bad("calendar capacity", "calendar %s (capacity %d): %d ranges cover %s %s "
                     "(holds %s)" % (cal, caps.get(cal, 1), top, _cal_when(at), what,
                                     ", ".join(map(str, ids))))
            return True
        return False
    # the tables at the end
    per = collections.defaultdict(list)
    for x in rows.values():
        if x["status"] in ("held", "confirmed"):
            per[x["cal"]].append((x["lo"], x["hi"], x["id"]))
    for cal, rg in sorted(per.items()):
        over("in the tables at the end", cal, rg)
    # what clients saw during the run
    n_looks = 0
    for lk in self.by_op("cal_look"):
        if lk["r"] != "ok" or not isinstance(lk.get("v"), list):
            continue
        n_looks += 1
        per = collections.defaultdict(list)
        for cal, lo, hi, hid in lk["v"]:
            per[cal].append((lo, hi, hid))
        for cal, rg in sorted(per.items()):
            over("in a look at %.3f [%s]" % (lk["t1"], lk["opid"]), cal, rg)
    # the history against the tables
    calls = self.by_op("reserve_range")
    keyed = collections.defaultdict(list)
    for h in calls:
        if h.get("key") is not None:
            keyed[(h["cal"], h["key"])].append(h)
    made, first_ack, acked_of = {}, {}, {}
    infos = collections.Counter()
    for h in calls:
        if h["r"] == "info":
            infos[h["cal"]] += 1
        if h["r"] != "ok" or h.get("v") is None:
            continue
        hid = h["v"]
        acked_of[hid] = h
        first_ack[hid] = min(first_ack.get(hid, h["t1"]), h["t1"])
        same = keyed[(h["cal"], h["key"])] if h.get("key") is not None else [h]
        made[hid] = [c for c in same if c["r"] != "fail"]
        if h.get("key") is not None:
            other = next((c for c in same if c["r"] == "ok" and c.get("v") not in (None, hid)),
                         None)
            if other is not None:
                self.bad("idempotency", "key %s of calendar %s gave range holds %s [%s] and %s "
                         "[%s]" % (h["key"], h["cal"], hid, h["opid"], other["v"],
                                   other["opid"]))
        if not have:
            continue
        row = rows.get(hid)
        if row is None:
            self.bad("durability", "acknowledged range hold %s [%s] is missing" % (hid, h["opid"]))
        elif (row["cal"], row["lo"], row["hi"]) != (h["cal"], h["lo"], h["hi"]):
            self.bad("calendars", "range hold %s is %s %s-%s, was asked %s %s-%s [%s]"
                     % (hid, row["cal"], _cal_when(row["lo"]), _cal_when(row["hi"]),
                        h["cal"], _cal_when(h["lo"]), _cal_when(h["hi"]), h["opid"]))
    if have:
        # a hold no call acknowledged can only come from a call whose
        # outcome is unknown
        unacked = collections.Counter(x["cal"] for x in rows.values() if x["id"] not in made)
        for cal, n in sorted(unacked.items()):
            if n > infos[cal]:
                self.bad("calendars", "calendar %s has %d range holds no call acknowledged, "
                         "but only %d calls had an unknown outcome" % (cal, n, infos[cal]))
    exts, cancels, confirmed = collections.defaultdict(list), collections.defaultdict(list), set()
    for h in self.by_op("extend_range"):
        if h["r"] != "fail":
            exts[h["id"]].append(h)
    for h in self.by_op("cancel_range"):
        if h["r"] != "fail":
            cancels[h["id"]].append(h["t0"])
    n_conf = 0
    for h in self.by_op("confirm_range", "cancel_range"):
        if h["r"] != "ok":
            continue
        conf = h["op"] == "confirm_range"
        if conf:
            confirmed.add(h["id"])
            n_conf += h.get("v") is True
        want = ("confirmed",) if conf else \
            ("cancelled",) if h.get("v") is True else ("cancelled", "expired")
        if have:
            row = rows.get(h["id"])
            if row is None:
                self.bad("durability", "range hold %s acknowledged %s is missing"
                         % (h["id"], want[0]))
            elif row["status"] not in want:
                self.bad("calendars", "range hold %s was acknowledged %s [%s] but is %s"
                         % (h["id"], want[0], h["opid"], row["status"]))
        if conf and h.get("v") is True and made.get(h["id"]):
            bound = max(e["t1"] + e["ttl"] for e in made[h["id"]] + exts[h["id"]])
            if h["t0"] > bound + MARGIN:
                self.bad("expiry", "range hold %s confirmed at %.3f [%s], %.3f s after it had "
                         "certainly expired" % (h["id"], h["t0"], h["opid"], h["t0"] - bound))
    if have:
        interval = float(snap.get("settings", {}).get("lockctl.expiry_interval", 1000)) / 1000
        for x in rows.values():
            if x["status"] == "confirmed" and x["finished_epoch"] is not None \
                    and x["finished_epoch"] > x["expires_epoch"] + 0.001:
                self.bad("expiry", "range hold %s was confirmed %.3f s after it expired"
                         % (x["id"], x["finished_epoch"] - x["expires_epoch"]))
            if x["status"] == "held" and \
                    x["expires_epoch"] < snap["server_epoch"] - interval - 2.0:
                self.bad("expiry", "range hold %s expired %.1f s before the snapshot and is "
                         "still held" % (x["id"], snap["server_epoch"] - x["expires_epoch"]))
    # over the whole run: at each acknowledgement, the holds certainly live
    # then (on the same calendar and day) never cover an instant more than
    # capacity times
    groups = collections.defaultdict(list)
    for hid, h in acked_of.items():
        start = first_ack[hid]
        if hid in confirmed:
            end = float("inf")
        else:
            maker = dict(min(made[hid], key=lambda c: c["t0"]))
            maker["r"] = "ok"
            end = _expiry_end(maker, exts.get(hid, []), cancels.get(hid, [])) - MARGIN
        if end > start:
            groups[(h["cal"], (h["lo"] - CAL_BASE) // 86400)].append(
                (start, end, h["lo"], h["hi"], hid))
    worst = collections.Counter()
    reported = collections.Counter()
    for (cal, day), sp in sorted(groups.items(), key=str):
        for t in sorted({s for s, _, _, _, _ in sp}):
            live = [(lo, hi, hid) for s, e, lo, hi, hid in sp if s <= t < e]
            worst[cal] = max(worst[cal], _range_peak(live)[0])
            if reported[cal] < 3 and over("certainly held or confirmed at %.3f" % t, cal, live):
                reported[cal] += 1
    ranges = [x for x in rows.values()]
    self.stats["range holds acknowledged / answered NULL (taken)"] = "%d / %d" % (
        len(acked_of), sum(1 for h in calls if h["r"] == "ok" and h.get("v") is None))
    self.stats["range confirms acknowledged"] = n_conf
    self.stats["range holds by state"] = dict(sorted(collections.Counter(
        x["status"] for x in ranges).items()))
    self.stats["calendar looks checked"] = n_looks
    for cal in sorted(worst):
        self.stats["%s: most ranges certainly live over one instant / capacity" % cal] = \
            "%d / %d" % (worst[cal], caps.get(cal, 1))


Checker.check_sets = _check_sets
Checker.check_calendars = _check_calendars


def cmd_check(args):
    hist, faults, snap = load_dir(args.dir)
    ck = Checker(hist, faults, snap)
    errors = ck.run()
    for k, v in ck.stats.items():
        print("  %-55s %s" % (k, v))
    errs = collections.Counter((h["op"], h.get("err") or "-") for h in hist if h["r"] != "ok")
    print("  errors seen by clients (op: SQLSTATE x count):")
    for op in sorted({k[0] for k in errs}):
        print("    %-14s %s" % (op, ", ".join("%s x %d" % (e, n) for (o, e), n in
                                             sorted(errs.items()) if o == op)))
    kinds = collections.Counter(f["kind"] for f in faults)
    print("  faults: %s" % dict(kinds))
    if errors:
        print("INVARIANTS BROKEN (%d):" % len(errors))
        per = collections.Counter(e.split(":")[0] for e in errors)
        for inv, n in sorted(per.items()):
            print("  %-20s %d violations" % (inv, n))
        shown = collections.Counter()
        for e in errors:
            inv = e.split(":")[0]
            shown[inv] += 1
            if shown[inv] <= 20:
                print("  " + e)
        return 1
    print("all invariants hold (%d operations checked)" % len(hist))
    return 0


# --------------------------------------------------------------------------
# selftest: the checker must catch known corruptions

class _Copy:
    """copy.deepcopy for mutations(), faster on a big run: the history's
    records are flat (what a corruption changes in one is replaced whole),
    and the snapshot is plain JSON."""
    @staticmethod
    def deepcopy(x):
        if isinstance(x, list) and x and isinstance(x[0], dict) and "op" in x[0]:
            return [dict(h) for h in x]
        return json.loads(json.dumps(x))


def mutations(hist, snap, faults=()):
    """Yield (name, expected invariant, hist, snap) corrupted copies."""
    copy = _Copy
    def first(pred):
        return next((i for i, h in enumerate(hist) if pred(h)), None)

    by_res = collections.defaultdict(list)
    # (the calls on sets as calls on each lease: a release_all ends a lease)
    for o in sorted((o for o in hist + _expand_sets(hist) if o.get("res") is not None),
                    key=lambda o: o["t0"]):
        by_res[o["res"]].append(o)
    by_res = collections.defaultdict(lambda: ([], []), {
        r: (os_, [o["t0"] for o in os_]) for r, os_ in by_res.items()})

    def lease_certainly_live(h, span):
        """True if nothing in the run ends grant h early: for span seconds after
        its acknowledgement its owner neither released it nor called again on
        the resource, and no restart was under way.  A corruption placed in
        that time must be caught; one placed in a lease its owner gave up at
        once is no corruption at all."""
        t_from, t_to = h["t0"], h["t1"] + span
        ops, starts = by_res[h["res"]]
        for o in ops[bisect.bisect_left(starts, t_from):bisect.bisect_right(starts, t_to)]:
            if o is h:
                continue
            if o["op"] == "release" and o.get("tok") == h["v"]:
                return False
            if o["op"] in ("acquire", "renew") and o.get("owner") == h["owner"]:
                return False
        return not any(f["kind"] in ("crash", "restart") and f["t1"] >= t_from and f["t0"] <= t_to
                       for f in faults)

    def live_ttl(h):
        """A ttl that leaves grant h certainly live for a second after its
        acknowledgement.  The checker counts a ttl from the call's start (the
        grant may have been made at once), so a call that waited needs its
        wait on top: 1.0 alone left a grant that had waited a second live
        for no time at all, and a corruption placed after it was no
        corruption (seen in CI)."""
        return max(h["ttl"], h["t1"] - h["t0"] + 1.0)

    i = first(lambda h: h["op"] == "vupdate" and h["r"] == "ok")
    if i is not None:
        h2, s2 = copy.deepcopy(hist), copy.deepcopy(snap)
        dup = dict(h2[i]); dup["opid"] += "-dup"
        h2.append(dup)
        yield "a lost update (two acknowledged writes from one version)", "versions", h2, s2
        h2, s2 = copy.deepcopy(hist), copy.deepcopy(snap)
        for a in s2["accounts"]:
            if a[0] == hist[i]["acct"]:
                a[1] -= 1
        yield "an increment lost in the table", "versions", h2, s2
    i = first(lambda h: h["op"] == "acquire" and h["r"] == "ok" and h["v"] is not None)
    if i is not None:
        h2, s2 = copy.deepcopy(hist), copy.deepcopy(snap)
        g = dict(h2[i]); g["opid"] += "-x"; g["owner"] = "someone-else"
        g["t0"] = h2[i]["t1"] + 0.01; g["t1"] = g["t0"] + 0.001; g["v"] = h2[i]["v"] - 1
        h2.append(g)
        yield "a token that went down", "tokens", h2, s2
    # Two holders: another owner granted the resource just after a grant
    # whose lease nothing in the run cut short (see lease_certainly_live).
    # An exclusive lease of a resource that is never counted nor shared:
    # those are the permits' and shared exclusion's.
    i = first(lambda h: h["op"] == "acquire" and h["r"] == "ok" and h["v"] is not None
              and h.get("permits", 1) == 1 and h["res"] not in SHARED
              and lease_certainly_live(h, 4 * MARGIN))
    if i is not None:
        h2, s2 = copy.deepcopy(hist), copy.deepcopy(snap)
        g = dict(h2[i]); g["opid"] += "-y"; g["owner"] = "someone-else"
        g["v"] = h2[i]["v"] + 10 ** 6
        g["t0"] = h2[i]["t1"] + 0.001; g["t1"] = g["t0"] + 0.001
        h2[i]["ttl"] = live_ttl(h2[i])
        h2.append(g)
        yield "two holders at once", "mutual exclusion", h2, s2
    elif first(lambda h: h["op"] == "acquire" and h["r"] == "ok" and h["v"] is not None) is not None:
        print("  %-60s %s" % ("two holders at once",
                              "not tried: no grant in this run stayed certainly live"))
    # Counted: permits others granted just after a counted grant that
    # nothing cut short.
    i = first(lambda h: h["op"] == "acquire" and h["r"] == "ok" and h["v"] is not None
              and h.get("permits", 1) > 1 and lease_certainly_live(h, 4 * MARGIN))
    if i is not None:
        h2, s2 = copy.deepcopy(hist), copy.deepcopy(snap)
        h2[i]["ttl"] = live_ttl(h2[i])
        for k in range(hist[i]["permits"]):
            g = dict(h2[i]); g["opid"] += "-n%d" % k; g["owner"] = "someone-else-%d" % k
            g["v"] = h2[i]["v"] + 10 ** 6 + k
            g["t0"] = h2[i]["t1"] + 0.001 * (k + 1); g["t1"] = g["t0"] + 0.0005
            h2.append(g)
        yield "a counted lease with one holder too many", "permits", h2, s2
    # Shared: an exclusive grant just after a shared one that nothing cut short.
    i = first(lambda h: h["op"] == "acquire_shared" and h["r"] == "ok" and h["v"] is not None
              and lease_certainly_live(h, 4 * MARGIN))
    if i is not None:
        h2, s2 = copy.deepcopy(hist), copy.deepcopy(snap)
        h2[i]["ttl"] = live_ttl(h2[i])
        g = dict(h2[i]); g["op"] = "acquire"; g["opid"] += "-x"; g["owner"] = "someone-else"
        g["v"] = h2[i]["v"] + 10 ** 6
        g["t0"] = h2[i]["t1"] + 0.001; g["t1"] = g["t0"] + 0.001
        h2.append(g)
        yield "an exclusive holder beside a shared one", "shared exclusion", h2, s2
    if snap.get("cart_items"):
        h2, s2 = copy.deepcopy(hist), copy.deepcopy(snap)
        it = s2["cart_items"][0]
        n = sum(1 for x in s2["cart_items"] if x["cart_id"] == it["cart_id"])
        if n > 1:
            s2["cart_items"].remove(it)
        else:
            it["quantity"] += 1
        yield "a cart with part of its items", "carts", h2, s2
    lim = next((p for p in snap.get("pools", []) if p.get("max_per_holder") is not None), None)
    if lim is not None:
        j = next((k for k, x in enumerate(snap["holds"]) if x["row"]["pool_id"] == lim["id"]
                  and x["row"]["status"] in ("held", "confirmed")), None)
        if j is not None:
            h2, s2 = copy.deepcopy(hist), copy.deepcopy(snap)
            s2["holds"][j]["row"]["quantity"] = lim["max_per_holder"] + 1
            yield "a holder above its limit in the tables", "holder limits", h2, s2
        i = first(lambda h: h["op"] == "reserve" and h["r"] == "ok" and h["v"] is not None
                  and h["pool"] == lim["resource"])
        if i is not None:
            h2, s2 = copy.deepcopy(hist), copy.deepcopy(snap)
            g = dict(h2[i]); g["opid"] += "-l"; g["v"] = -1
            g["qty"] = lim["max_per_holder"] + 1
            g["t1"] = g["t0"] + 0.01; g["ttl"] = max(g["ttl"], 1.0)
            h2.append(g)
            yield "a holder above its limit during the run", "holder limits", h2, s2
    i = first(lambda h: h["op"] == "reserve" and h["r"] == "ok" and h["v"] is not None
              and h["pool"] == "chaos-cart-b")
    if i is not None:
        h2, s2 = copy.deepcopy(hist), copy.deepcopy(snap)
        g = dict(h2[i]); g["opid"] += "-o"; g["v"] = -2; g["qty"] = NEW_POOLS["chaos-cart-b"][0] + 1
        g["t1"] = g["t0"] + 0.01; g["ttl"] = max(g["ttl"], 1.0)
        h2.append(g)
        yield "a pool oversold during the run", "capacity", h2, s2
    if snap.get("waitlist"):
        offset = snap["server_epoch"] - snap["mono"]
        acks = {h["v"]: h for h in hist if h["op"] == "wait_for" and h["r"] == "ok"}
        found = None
        for b in snap["waitlist"]:
            if b["row"]["status"] != "offered":
                continue
            for k, a in enumerate(snap["waitlist"]):
                h = acks.get(a["row"]["id"])
                if a["row"]["pool_id"] == b["row"]["pool_id"] and a["row"]["id"] < b["row"]["id"] \
                        and h is not None \
                        and h["t1"] + WAIT_MARGIN < b["finished_epoch"] - offset:
                    found = k
                    break
            if found is not None:
                break
        if found is not None:
            h2, s2 = copy.deepcopy(hist), copy.deepcopy(snap)
            a = s2["waitlist"][found]
            a["row"]["status"], a["row"]["hold_id"], a["finished_epoch"] = "waiting", None, None
            yield "a waitlist entry skipped", "waitlist", h2, s2
    i = first(lambda h: h["op"] == "wait_for" and h["r"] == "ok" and h.get("after"))
    if i is not None:
        h2, s2 = copy.deepcopy(hist), copy.deepcopy(snap)
        h2[i]["after"] = {"free": 2, "head": h2[i]["v"], "head_qty": 1}
        yield "units left free while the head waited", "waitlist", h2, s2
    fenced_ok = [r for r in snap["fenced"]]
    if fenced_ok:
        h2, s2 = copy.deepcopy(hist), copy.deepcopy(snap)
        r = s2["fenced"][-1]
        r[3] = r[2] + 1
        yield "a fenced write committed after a larger token", "fencing", h2, s2
        h2, s2 = copy.deepcopy(hist), copy.deepcopy(snap)
        opid = s2["fenced"][0][4]
        j = first(lambda h: h.get("opid") == opid)
        if j is not None:
            h = h2[j]
            g = {"op": "acquire", "r": "ok", "res": h["res"], "owner": "someone-else",
                 "v": h["tok"] + 10 ** 6, "ttl": 1, "wait": 0, "opid": "fake",
                 "t0": h["tf"] - 1.0, "t1": h["tf"] - 0.5, "c": -1}
            h2.append(g)
            yield "a fenced write accepted from a stale token", "fencing", h2, s2
        h2, s2 = copy.deepcopy(hist), copy.deepcopy(snap)
        del s2["fenced"][0]
        if any(h.get("opid") == opid and h["r"] == "ok" for h in h2):
            yield "an acknowledged fenced write lost", "durability", h2, s2
    if snap.get("effects"):
        h2, s2 = copy.deepcopy(hist), copy.deepcopy(snap)
        key, opid = s2["effects"][0]
        s2["effects"].append([key, opid + "-again"])
        yield "a request that took effect twice", "requests", h2, s2
        i = first(lambda h: h["op"] == "request" and h["r"] == "ok" and h.get("went")
                  and not h.get("rolled_back"))
        if i is not None:
            h2, s2 = copy.deepcopy(hist), copy.deepcopy(snap)
            s2["effects"] = [e for e in s2["effects"] if e[1] != hist[i]["opid"]]
            yield "an acknowledged request effect lost", "requests", h2, s2
        i = first(lambda h: h["op"] == "request" and h["r"] == "ok" and not h.get("went"))
        if i is not None:
            h2, s2 = copy.deepcopy(hist), copy.deepcopy(snap)
            h2[i]["v"] = "c-1-1"
            yield "a duplicate answered with a result nobody stored", "requests", h2, s2
    if snap.get("pools"):
        h2, s2 = copy.deepcopy(hist), copy.deepcopy(snap)
        s2["slots"][0]["held"] += 1
        yield "a pool counter off by one", "pool counters", h2, s2
        h2, s2 = copy.deepcopy(hist), copy.deepcopy(snap)
        sl = max(s2["slots"], key=lambda x: x["confirmed"])
        sl["capacity"] = sl["held"] + sl["confirmed"] - 1
        yield "held + confirmed above capacity", "capacity", h2, s2
        h2, s2 = copy.deepcopy(hist), copy.deepcopy(snap)
        s2["pools"][0]["capacity"] += 1
        yield "a unit created out of nothing", "units", h2, s2
        if snap["holds"]:
            h2, s2 = copy.deepcopy(hist), copy.deepcopy(snap)
            x = s2["holds"][0]
            x["row"]["status"] = "held"
            x["expires_epoch"] = s2["server_epoch"] - 60
            yield "an expired hold left unreclaimed", "expiry", h2, s2
        i = first(lambda h: h["op"] == "confirm" and h["r"] == "ok" and h["v"])
        if i is not None:
            h2, s2 = copy.deepcopy(hist), copy.deepcopy(snap)
            for x in s2["holds"]:
                if x["row"]["id"] == hist[i]["id"]:
                    x["row"]["status"] = "expired"
            yield "an acknowledged confirm undone", "holds", h2, s2
        oks = [j for j, h in enumerate(hist) if h["op"] == "reserve" and h["r"] == "ok"
               and h["v"] is not None and h.get("key") is None]
        if len(oks) >= 2:
            h2 = copy.deepcopy(hist)
            h2[oks[1]]["v"] = hist[oks[0]]["v"]
            yield "a hold id handed out twice", "hold ids", h2, snap
        i = first(lambda h: h["op"] == "reserve" and h["r"] == "ok" and h["v"] is not None)
        if i is not None:
            h2, s2 = copy.deepcopy(hist), copy.deepcopy(snap)
            s2["holds"] = [x for x in s2["holds"] if x["row"]["id"] != hist[i]["v"]]
            yield "an acknowledged hold lost", "durability", h2, s2

    # -- sets of leases
    i = first(lambda h: h["op"] == "acquire_all" and h["r"] == "ok"
              and isinstance(h.get("v"), list) and len(h["v"]) >= 2)
    if i is not None:
        h2, s2 = copy.deepcopy(hist), copy.deepcopy(snap)
        h2[i]["v"] = h2[i]["v"][:-1]
        yield "a set answered in part", "sets", h2, s2
    ck = Checker(hist, faults, snap)
    ck.check_sets()
    if ck.whole_looks:
        i = first(lambda h: h.get("opid") == ck.whole_looks[0])
        h2, s2 = copy.deepcopy(hist), copy.deepcopy(snap)
        h2[i]["v"] = h2[i]["v"][:-1]
        yield "a set seen held in part", "sets", h2, s2
    n_calls = collections.Counter(h["owner"] for h in hist if h["op"] == "acquire_all")
    restarts = [f for f in faults if f["kind"] in ("crash", "restart")]

    def set_certainly_live(h):
        return n_calls[h["owner"]] == 1 and h["t1"] - h["t0"] < 0.5 and \
            not any(o["op"] in ("release", "release_all") and o.get("owner") == h["owner"]
                    and o["t0"] < h["t1"] + 0.5 for o in hist) and \
            not any(f["t1"] >= h["t0"] and f["t0"] <= h["t1"] + 0.5 for f in restarts)
    i = first(lambda h: h["op"] == "acquire_all" and h["r"] == "ok"
              and isinstance(h.get("v"), list) and set_certainly_live(h))
    if i is not None:
        h2, s2 = copy.deepcopy(hist), copy.deepcopy(snap)
        h2[i]["ttl"] = live_ttl(h2[i])
        g = {"op": "acquire", "r": "ok", "res": hist[i]["rs"][0], "owner": "someone-else",
             "v": hist[i]["v"][0] + 10 ** 6, "ttl": 1.0, "wait": 0, "opid": "fake-m",
             "t0": hist[i]["t1"] + 0.001, "t1": hist[i]["t1"] + 0.002, "c": -1}
        h2.append(g)
        yield "a member of a set granted to another holder", "mutual exclusion", h2, s2
    i = first(lambda h: h["op"] == "fence_all" and h["r"] == "ok" and "tf" in h)
    if i is not None:
        h = hist[i]
        h2, s2 = copy.deepcopy(hist), copy.deepcopy(snap)
        h2.append({"op": "acquire", "r": "ok", "res": h["rs"][-1], "owner": "someone-else",
                   "v": h["toks"][-1] + 10 ** 6, "ttl": 1, "wait": 0, "opid": "fake-f",
                   "t0": h["tf"] - 1.0, "t1": h["tf"] - 0.5, "c": -1})
        yield "a fenced write under a superseded set token", "fencing", h2, s2
        h2, s2 = copy.deepcopy(hist), copy.deepcopy(snap)
        gone = "%s:%s" % (h["opid"], h["rs"][0])
        s2["fenced"] = [r for r in s2["fenced"] if r[4] != gone]
        yield "a fenced write of a set committed in part", "durability", h2, s2
    # -- calendars
    live = [x for x in snap.get("ranges", []) if x["status"] in ("held", "confirmed")]
    if live:
        h2, s2 = copy.deepcopy(hist), copy.deepcopy(snap)
        x = live[0]
        for k in range(CALENDARS.get(x["cal"], 1)):
            y = dict(x)
            y["id"] = -1 - k
            s2["ranges"].append(y)
        yield "ranges over a calendar's capacity in the tables", "calendar capacity", h2, s2
    conf = {h["id"] for h in hist if h["op"] == "confirm_range" and h["r"] == "ok"
            and h.get("v") is True}
    i = first(lambda h: h["op"] == "confirm_range" and h["r"] == "ok" and h.get("v") is True)
    if i is not None:
        h2, s2 = copy.deepcopy(hist), copy.deepcopy(snap)
        s2["ranges"] = [x for x in s2["ranges"] if x["id"] != hist[i]["id"]]
        yield "a confirmed range lost", "durability", h2, s2
        h2, s2 = copy.deepcopy(hist), copy.deepcopy(snap)
        h2[i]["t0"] += 100
        h2[i]["t1"] += 100
        yield "a range hold confirmed after it had expired", "expiry", h2, s2
    i = first(lambda h: h["op"] == "reserve_range" and h["r"] == "ok" and h.get("v") in conf)
    if i is not None:
        h2, s2 = copy.deepcopy(hist), copy.deepcopy(snap)
        for k in range(CALENDARS.get(hist[i]["cal"], 1)):
            g = dict(hist[i])
            g.update(opid="fake-r%d" % k, v=-10 - k, key=None, ttl=2.0,
                     t0=hist[i]["t1"] + 0.01 * (k + 1), t1=hist[i]["t1"] + 0.01 * (k + 1) + 0.001)
            h2.append(g)
        yield "a range taken over a confirmed one during the run", "calendar capacity", h2, s2
    if snap.get("ranges"):
        h2, s2 = copy.deepcopy(hist), copy.deepcopy(snap)
        x = s2["ranges"][0]
        x["status"], x["finished_epoch"] = "held", None
        x["expires_epoch"] = s2["server_epoch"] - 60
        yield "an expired range hold left held", "expiry", h2, s2

def cmd_tokens(args):
    hist, faults, snap = load_dir(args.dir)
    ck = Checker(hist, faults, snap)
    errors = ck.run_tokens()
    for k, v in ck.stats.items():
        print("  %-55s %s" % (k, v))
    print("  faults: %s" % dict(collections.Counter(f["kind"] for f in faults)))
    if not any(h["op"] == "acquire" and h["r"] == "ok" and h.get("v") is not None
               for h in hist):
        errors.append("coverage: no lease grant acknowledged: the history proves nothing")
    if errors:
        print("INVARIANTS BROKEN (%d):" % len(errors))
        for e in errors[:40]:
            print("  " + e)
        return 1
    print("token invariants hold (%d operations checked)" % len(hist))
    return 0


def cmd_selftest(args):
    hist, faults, snap = load_dir(args.dir)
    base = Checker(hist, faults, snap).run()
    if base:
        print("selftest: the uncorrupted run already fails; fix that first")
        return 1
    n, missed, lines = 0, [], []
    for name, inv, h2, s2 in mutations(hist, snap, faults):
        n += 1
        errs = Checker(h2, faults, s2).run()
        caught = [e for e in errs if e.startswith(inv + ":")]
        if caught:
            lines.append("  %-60s caught: %s" % (name, caught[0][:90]))
        else:
            # what it found instead, if anything: a corruption reported as
            # another invariant's is still missed by the one it names
            lines.append("  %-60s MISSED (expected %s; found: %s)"
                         % (name, inv, "; ".join(e[:120] for e in errs[:2]) or "nothing"))
            missed.append(name)
    if n == 0:
        print("selftest: nothing to corrupt (empty history)")
        return 1
    # what was missed first, so that a CI log cut to its first lines still
    # names it (and again at the end)
    if missed:
        print("selftest: %d of %d corruptions missed: %s" % (len(missed), n, "; ".join(missed)))
    for l in [l for l in lines if " MISSED " in l] + [l for l in lines if " MISSED " not in l]:
        print(l)
    if missed:
        # and again last, for a log cut to its last lines
        print("selftest: %d of %d corruptions missed: %s" % (len(missed), n, "; ".join(missed)))
        return 1
    print("selftest: all %d corruptions caught" % n)
    return 0


# --------------------------------------------------------------------------
# leakcheck: every lease slot can be taken again

def cmd_leakcheck(args):
    with connect(args.dsn, "chaos-leakcheck", timeout=10) as conn:
        n = int(conn.execute("SHOW lockctl.max_leases").fetchone()[0])
        deadline = mono() + args.timeout
        while True:
            live = conn.execute("SELECT count(*) FROM lockctl.leases").fetchone()[0]
            if live == 0:
                break
            if mono() > deadline:
                print("leakcheck: %d leases still live after %ss" % (live, args.timeout))
                return 1
            time.sleep(0.2)
        # every one of the max_leases slots can be taken, and one more cannot
        got = conn.execute(
            "SELECT count(lockctl.acquire('chaos-leak-' || g, 'chaos-leak', '5 min')) "
            "FROM generate_series(1, %s) g", (n,)).fetchone()[0]
        if got != n:
            print("leakcheck: only %d of %d slots could be taken" % (got, n))
            return 1
        try:
            conn.execute("SELECT lockctl.acquire('chaos-leak-over', 'chaos-leak', '5 min')")
            print("leakcheck: lease %d granted beyond lockctl.max_leases = %d" % (n + 1, n))
            return 1
        except psycopg.Error as e:
            if e.sqlstate != "53400":
                print("leakcheck: beyond capacity: %s %s, expected 53400" % (e.sqlstate, e))
                return 1
        rel = conn.execute(
            "SELECT count(*) FILTER (WHERE lockctl.release(l.resource, l.token)) "
            "FROM lockctl.leases l WHERE l.owner = 'chaos-leak'").fetchone()[0]
        live = conn.execute("SELECT count(*) FROM lockctl.leases").fetchone()[0]
        if rel != n or live != 0:
            print("leakcheck: released %d of %d, %d still live" % (rel, n, live))
            return 1
    print("leakcheck: all %d slots taken, one more refused (53400), all released" % n)
    return 0


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("command", choices=["setup", "load", "snapshot", "check", "selftest",
                                        "leakcheck", "tokens"])
    ap.add_argument("--dsn", default="")
    ap.add_argument("--dir", default="chaos-run")
    ap.add_argument("--seconds", type=float, default=60)
    ap.add_argument("--clients", type=int, default=10)
    ap.add_argument("--seed", type=int, default=int(os.environ.get("LOCKCTL_CHAOS_SEED", "1")))
    ap.add_argument("--no-nemesis", action="store_true")
    ap.add_argument("--kinds", default="", help="load: only these (vupdate,lease,reserve)")
    ap.add_argument("--timeout", type=float, default=30)
    args = ap.parse_args()
    rc = globals()["cmd_" + args.command](args)
    sys.exit(rc or 0)


if __name__ == "__main__":
    main()
