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
idempotent requests (claim, effect, complete; some rolled back), while
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
        if f["requests"]:
            conn.execute("DELETE FROM lockctl.request_keys WHERE key LIKE 'chaos-req-%'")
        if f["reserve"]:
            for p, cap in POOLS.items():
                conn.execute("SELECT lockctl.create_pool(%s, %s)", (p, cap))
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
        self.holds = []            # ids of own holds believed live
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
    stop_at = args.started + args.seconds
    clients = [Client(i, args, f, stop_at) for i in range(args.clients)]
    if not clients[0].kinds:
        log("no lockctl feature to exercise")
        return
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
                "SELECT p, lockctl.available(p) FROM unnest(%s::text[]) p", (list(POOLS),)))
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
    return hist, faults, snap


def pick(row, *names):
    for n in names:
        if n in row:
            return row[n]
    raise KeyError("none of %s in %s" % (names, sorted(row)))


class Checker:
    def __init__(self, hist, faults, snap):
        self.hist = hist
        self.faults = faults
        self.snap = snap
        self.errors = []
        self.stats = collections.OrderedDict()
        self.restarts = sorted([f for f in faults if f["kind"] in ("crash", "restart")],
                               key=lambda f: f["t0"])
        # How late (beyond lockctl.expiry_interval) a hold may be expired
        # when no fault was near it.  The HA drill, three nodes, etcd and
        # Patroni on the same two cores, allows more (ha/drill.py).
        self.calm_slack = 1.0

    def bad(self, invariant, msg):
        self.errors.append("%s: %s" % (invariant, msg))

    def by_op(self, *ops):
        return [h for h in self.hist if h["op"] in ops and "t1" in h]

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
        for h in self.by_op("reserve"):
            if h["r"] != "ok" or h.get("v") is None:
                continue
            # one request: the same idempotency key on the same pool
            req = ("key", h.get("pool"), h["key"]) if h.get("key") is not None else h["opid"]
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
        for op, what in need:
            if not any(h["op"] == op and h["r"] == "ok" and h.get("v", 0) is not None
                       for h in self.hist):
                self.bad("coverage", "no %s acknowledged: the run proves nothing" % what)

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

    def check_lease_grants(self):
        grants = [h for h in self.by_op("acquire") if h["r"] == "ok" and h["v"] is not None]
        self.stats["lease grants acknowledged"] = len(grants)
        self.stats["lease acquires that timed out (NULL)"] = sum(
            1 for h in self.by_op("acquire") if h["r"] == "ok" and h["v"] is None)
        self.stats["lease calls with errors"] = sum(
            1 for h in self.by_op("acquire", "renew", "release") if h["r"] != "ok")
        owner_of = {}
        per_res = collections.defaultdict(list)
        for g in grants:
            k = (g["res"], g["v"])
            if k in owner_of and owner_of[k] != g["owner"]:
                self.bad("tokens", "resource %s: token %s granted to both %s and %s"
                         % (g["res"], g["v"], owner_of[k], g["owner"]))
            owner_of[k] = g["owner"]
            per_res[g["res"]].append(g)
        # tokens rise in real time: a grant that began after another was
        # acknowledged has a larger token (or is the same owner's live lease)
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
                if g["v"] < best["v"] or (g["v"] == best["v"] and g["owner"] != best["owner"]):
                    self.bad("tokens", "resource %s: token %s [%s] granted after token %s [%s] "
                             "was acknowledged" % (res, g["v"], g["opid"], best["v"],
                                                   best["opid"]))
        # one holder at a time: while a lease is certainly live, nobody else
        # is granted the resource
        rel = collections.defaultdict(list)
        for h in self.by_op("release"):
            rel[(h["res"], h["tok"])].append(h["t0"])
        attempts = collections.defaultdict(list)  # (res, owner) -> every acquire/renew
        for h in self.by_op("acquire", "renew"):
            attempts[(h["res"], h["owner"])].append(h)
        acked = collections.defaultdict(list)     # (res, tok) -> acked extensions
        for h in self.by_op("renew"):
            if h["r"] == "ok" and h["v"] is not False:
                acked[(h["res"], h["tok"])].append(h)
        for g in grants:
            acked[(g["res"], g["v"])].append(g)
        for res, gs in per_res.items():
            live = []
            for (r, tok), es in acked.items():
                if r != res or not any(e["op"] == "acquire" for e in es):
                    continue
                owner = owner_of.get((res, tok))
                first = min((e for e in es if e["op"] == "acquire"), key=lambda e: e["t1"])
                start = first["t1"]
                # the last acknowledged grant or renewal set the expiry, and
                # any later call of the owner may have moved it (even closer)
                last = max(es, key=lambda e: e["t0"])
                end = min(e["t0"] + e["ttl"] for e in attempts[(res, owner)]
                          if e["t0"] >= last["t0"])
                for t in rel.get((res, tok), []):
                    if t >= start:
                        end = min(end, t)
                # a restart under way at any moment since the grant was
                # asked for may have ended the lease (a crash always does)
                f = self.restart_between(first["t0"], end)
                if f:
                    end = min(end, f["t0"])
                if end - start > MARGIN:
                    live.append((start, end - MARGIN, tok, owner))
            for g in gs:
                for start, end, tok, owner in live:
                    if tok != g["v"] and g["t0"] >= start and g["t1"] <= end:
                        self.bad("mutual exclusion", "resource %s: token %s [%s] granted at "
                                 "%.3f-%.3f while token %s of %s was certainly live until %.3f"
                                 % (res, g["v"], g["opid"], g["t0"], g["t1"], tok, owner,
                                    end + MARGIN))

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
            if crash:
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
        sums = collections.defaultdict(collections.Counter)
        for sl in snap["slots"]:
            k = (sl["pool_id"], sl["slot"])
            c = per_slot.pop(k, collections.Counter())
            name = pool_by_id.get(sl["pool_id"], "?%s" % sl["pool_id"])
            if sl["held"] != c["held"] or sl["confirmed"] != c["confirmed"]:
                self.bad("pool counters", "pool %s slot %s: counters held=%s confirmed=%s, its "
                         "holds sum to held=%s confirmed=%s" % (name, sl["slot"], sl["held"],
                                                                sl["confirmed"], c["held"],
                                                                c["confirmed"]))
            if sl["held"] < 0 or sl["confirmed"] < 0 or \
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
            if h["op"] == "confirm" and exts.get(h["id"]):
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

def mutations(hist, snap, faults=()):
    """Yield (name, expected invariant, hist, snap) corrupted copies."""
    def first(pred):
        return next((i for i, h in enumerate(hist) if pred(h)), None)

    by_res = collections.defaultdict(list)
    for o in sorted((o for o in hist if o.get("res") is not None), key=lambda o: o["t0"]):
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
    i = first(lambda h: h["op"] == "acquire" and h["r"] == "ok" and h["v"] is not None
              and lease_certainly_live(h, 4 * MARGIN))
    if i is not None:
        h2, s2 = copy.deepcopy(hist), copy.deepcopy(snap)
        g = dict(h2[i]); g["opid"] += "-y"; g["owner"] = "someone-else"
        g["v"] = h2[i]["v"] + 10 ** 6
        g["t0"] = h2[i]["t1"] + 0.001; g["t1"] = g["t0"] + 0.001
        h2[i]["ttl"] = max(h2[i]["ttl"], 1.0)
        h2.append(g)
        yield "two holders at once", "mutual exclusion", h2, s2
    elif first(lambda h: h["op"] == "acquire" and h["r"] == "ok" and h["v"] is not None) is not None:
        print("  %-60s %s" % ("two holders at once",
                              "not tried: no grant in this run stayed certainly live"))
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
    n, missed = 0, []
    for name, inv, h2, s2 in mutations(hist, snap, faults):
        n += 1
        errs = Checker(h2, faults, s2).run()
        caught = [e for e in errs if e.startswith(inv + ":")]
        print("  %-60s %s" % (name, ("caught: " + caught[0][:90]) if caught else "MISSED"))
        if not caught:
            missed.append(name)
    if n == 0:
        print("selftest: nothing to corrupt (empty history)")
        return 1
    if missed:
        print("selftest: %d of %d corruptions missed" % (len(missed), n))
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
