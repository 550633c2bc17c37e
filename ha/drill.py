#!/usr/bin/python3
"""ha/drill.py: lockctl's high-availability drill on a real Patroni cluster.

    drill.py --dir DIR --bindir PGBIN [--rounds sync,async]

Run through scripts/ha-drill, which installs what the drill needs, builds and
installs lockctl into PGBIN's installation, and runs this as the server user.

What it does, all on 127.0.0.1 and bounded in time:

  1. starts etcd and three PostgreSQL nodes managed by Patroni, lockctl in
     shared_preload_libraries through Patroni's cluster-wide configuration
     (bootstrap.dcs.postgresql.parameters: Patroni rewrites postgresql.conf);
  2. per round (sync: synchronous_mode with both replicas synchronous; async:
     synchronous_mode off), in a database of its own with lockctl: a steady
     load of chaos/chaos.py's clients (version-checked updates, short leases
     with fenced writes, hold/reserve/confirm/cancel) plus long lease holders
     that renew and fence, a write probe, and a monitor of every node; the
     clients reach the primary through libpq's multi-host connection string
     with target_session_attrs=read-write;
  3. the events: a planned switchover (patronictl switchover node1 -> node2),
     an unplanned failover (node2's postmaster killed with SIGKILL; Patroni's
     primary_start_timeout is 0 so that it fails over instead of restarting
     the crashed primary in place; node1 is tagged nofailover meanwhile, so
     that node3 is promoted and node1's own promotion below is a planned
     one), node2's return as a replica (pg_rewind through Patroni), and a
     switch back to node1, the node that was once shut down cleanly as
     primary;
  4. an independent check of the recorded history and the final tables:
     chaos/chaos.py's checker (no acknowledged write lost, no pool oversold,
     no lost update, tokens rise, one lease holder at a time, fencing), and
     the drill's own: tokens granted in a later primary term are above every
     token of an earlier term, no lease granted in an earlier term is fenced
     in a later one, no expiry worker (nor launcher) runs on a node in
     recovery, the expiry worker of every database with lockctl returns a due
     hold on each new primary within WORKER_BOUND seconds, and the figures:
     time without a writable primary, leases and holds kept.

Every check prints one line "ok" or "FAILED"; the last line reads
"ha drill: N passed, M failed".  The history, the logs and report.json stay
in DIR (scripts/ha-drill copies them to log/ha/).
"""

import argparse
import collections
import json
import os
import random
import re
import secrets
import signal
import subprocess
import sys
import threading
import time
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "chaos"))
import chaos  # noqa: E402  (the load and the checker are chaos.py's)
import psycopg  # noqa: E402

mono = time.monotonic
NODES = ("node1", "node2", "node3")

# The expiry worker of every database with lockctl must return a due hold on
# a new primary within this many seconds of that primary's first accepted
# write (the launcher starts at promotion, then one worker per database; the
# drill's lockctl.expiry_interval is 200 ms).
WORKER_BOUND = 5.0
# Every wait of the drill is bounded; a step that takes longer fails the run.
STEP_TIMEOUT = 90.0
# Invariants that asynchronous replication may legitimately break at a
# failover (an acknowledged commit that never reached the promoted replica):
# in the async round these are the measured cost, not a failure.
LOSS_INVARIANTS = ("durability", "holds", "versions")
# ... and, of the invariant "requests" (one effect per key, safety, always
# checked), the acknowledged effects that are gone: durability too.
LOSS_PATTERNS = (re.compile(r"^requests: acknowledged effect .* lost$"),)
LOST_EFFECT = re.compile(r"^requests: acknowledged effect (\S+) of .* lost$")
DUP_ANSWER = re.compile(r"^requests: duplicate \S+ of \S+ was answered '([^']*)', not the result")

# What each loss the checker reports means (the first pattern that matches).
LOSS_KINDS = (
    ("lost update", "versioned update (another was acknowledged from the same version)"),
    ("above the final version", "versioned update (its version is gone)"),
    ("fenced write", "fenced write"),
    ("was asked", "hold (its id was handed out again to another hold)"),
    ("reissued: ", "call on a hold id that had been handed out again"),
    ("acknowledged hold", "hold"),
    ("acknowledged confirmed", "confirm"),
    ("acknowledged cancelled", "cancel"),
    ("updates applied", "(accounts whose applied updates no longer match)"),
    ("answered lost: ", "duplicate answered with a lost request's result"),
    ("acknowledged effect", "idempotent request's effect"),
)
# Kinds above that are consequences of a loss, not acknowledged writes lost.
NOT_WRITES = ("call on a hold id that had been handed out again",
              "(accounts whose applied updates no longer match)",
              "duplicate answered with a lost request's result")

CHECKS = []


def log(*a):
    print("ha:", *a, file=sys.stderr, flush=True)


def check(name, ok, detail=""):
    CHECKS.append((name, bool(ok), detail))
    print("%-6s %s%s" % ("ok" if ok else "FAILED", name, (": " + detail) if detail else ""),
          flush=True)
    return ok


class DrillError(Exception):
    pass


def wait_for(what, cond, timeout=STEP_TIMEOUT, every=0.1):
    """Poll cond() until it returns something true; fail after timeout."""
    deadline = mono() + timeout
    last_exc = None
    while mono() < deadline:
        try:
            v = cond()
            if v:
                return v
        except Exception as e:  # a node down in the middle of a poll
            last_exc = e
        time.sleep(every)
    raise DrillError("timed out after %.0f s waiting for %s%s"
                     % (timeout, what, (" (last error: %s)" % last_exc) if last_exc else ""))


def token_parts(tok):
    """A token is (timeline << 48) | (epoch << 28) | counter (src/lease_token.c)."""
    return {"timeline": tok >> 48, "epoch": (tok >> 28) & 0xFFFFF, "counter": tok & 0xFFFFFFF}


def fmt_token(tok):
    p = token_parts(tok)
    return "%d (timeline %d, epoch %d, counter %d)" % (tok, p["timeline"], p["epoch"],
                                                        p["counter"])


# --------------------------------------------------------------------------
# The cluster: etcd, three Patroni nodes

class Cluster:
    def __init__(self, args):
        self.args = args
        self.base = args.dir
        self.pg_ports = {n: args.pg_port + i for i, n in enumerate(NODES)}
        self.rest_ports = {n: args.rest_port + i for i, n in enumerate(NODES)}
        self.procs = {}
        self.password = secrets.token_hex(16)
        self.pidfile = os.path.join(self.base, "pids")

    # -- process handling
    def _spawn(self, name, cmd):
        logf = open(os.path.join(self.base, "%s.log" % name), "ab")
        # Its own process group, so that the drill (and scripts/ha-drill's
        # trap) can stop it and everything it started, by id.
        p = subprocess.Popen(cmd, stdout=logf, stderr=subprocess.STDOUT,
                             stdin=subprocess.DEVNULL, start_new_session=True)
        logf.close()
        self.procs[name] = p
        with open(self.pidfile, "a") as fh:
            fh.write("%d %s\n" % (p.pid, name))
        return p

    def check_ports(self):
        ports = list(self.pg_ports.values()) + list(self.rest_ports.values()) + \
            [self.args.etcd_port, self.args.etcd_port + 1]
        import socket
        for port in ports:
            s = socket.socket()
            try:
                s.settimeout(0.5)
                if s.connect_ex(("127.0.0.1", port)) == 0:
                    raise DrillError("port %d on 127.0.0.1 is taken by another program" % port)
            finally:
                s.close()

    def start_etcd(self):
        e, p = self.args.etcd_port, self.args.etcd_port + 1
        self._spawn("etcd", [
            "etcd", "--name", "drill", "--data-dir", os.path.join(self.base, "etcd"),
            "--listen-client-urls", "http://127.0.0.1:%d" % e,
            "--advertise-client-urls", "http://127.0.0.1:%d" % e,
            "--listen-peer-urls", "http://127.0.0.1:%d" % p,
            "--initial-advertise-peer-urls", "http://127.0.0.1:%d" % p,
            "--initial-cluster", "drill=http://127.0.0.1:%d" % p,
            "--initial-cluster-state", "new", "--log-level", "warn"])
        wait_for("etcd to answer", lambda: urllib.request.urlopen(
            "http://127.0.0.1:%d/health" % e, timeout=1).status == 200, timeout=30)

    def config(self, name, nofailover=False):
        """The Patroni configuration of one node (YAML is a superset of JSON)."""
        d = os.path.join(self.base, name)
        sync = self.args.first_round == "sync"
        return {
            "scope": "lockctl-drill",
            "namespace": "/lockctl-drill/",
            "name": name,
            "log": {"level": "INFO", "format": "%(asctime)s %(levelname)s: %(message)s"},
            "restapi": {"listen": "127.0.0.1:%d" % self.rest_ports[name],
                        "connect_address": "127.0.0.1:%d" % self.rest_ports[name]},
            "etcd3": {"hosts": ["127.0.0.1:%d" % self.args.etcd_port]},
            "bootstrap": {
                "dcs": {
                    # Short timings so that the drill runs in a minute or two;
                    # Patroni requires loop_wait + 2 * retry_timeout <= ttl.
                    "ttl": 20, "loop_wait": 1, "retry_timeout": 5,
                    # Patroni's default is 1 MB; the drill's replication cut
                    # before the kill must not keep node3 from being promoted
                    "maximum_lag_on_failover": 16777216,
                    # A crashed primary is failed over at once rather than
                    # restarted in place for up to 300 s (the default).
                    "primary_start_timeout": 0,
                    "synchronous_mode": sync,
                    # Both replicas synchronous: a commit is acknowledged
                    # once both have it, so either can be promoted (and
                    # switched over to) without losing it.
                    "synchronous_node_count": 2,
                    "postgresql": {
                        "use_pg_rewind": True,
                        "use_slots": True,
                        # Cluster-wide: Patroni writes postgresql.conf from
                        # these on every node.
                        "parameters": {
                            "shared_preload_libraries": "lockctl",
                            "wal_log_hints": "on",
                            "max_worker_processes": 16,
                            "max_connections": 100,
                            "lockctl.expiry_interval": "200ms",
                            # Leases carried across every switch (issue 23):
                            # the figure "leases kept" measures it.
                            "lockctl.lease_durability": "on",
                            "wal_keep_size": "128MB",
                        },
                    },
                },
                "initdb": [{"encoding": "UTF8"}, "no-locale"],
            },
            "postgresql": {
                "listen": "127.0.0.1:%d" % self.pg_ports[name],
                "connect_address": "127.0.0.1:%d" % self.pg_ports[name],
                "data_dir": os.path.join(d, "data"),
                "bin_dir": self.args.bindir,
                "pgpass": os.path.join(d, "pgpass"),
                "authentication": {
                    "superuser": {"username": self.args.superuser, "password": self.password},
                    "replication": {"username": "replicator", "password": self.password},
                    "rewind": {"username": "rewinder", "password": self.password},
                },
                "parameters": {
                    "unix_socket_directories": d,
                    # The drill kills processes, never the machine: the
                    # page cache survives, so fsync buys nothing here.
                    "fsync": "off",
                    "log_line_prefix": "%m [%p] %a ",
                    "log_timezone": "UTC",
                    "logging_collector": "on",
                    "log_directory": os.path.join(d, "pglog"),
                    "log_min_messages": "info",
                },
                "pg_hba": [
                    "local all all trust",
                    "host all all 127.0.0.1/32 scram-sha-256",
                    "host replication replicator 127.0.0.1/32 scram-sha-256",
                ],
            },
            "tags": {"nofailover": nofailover, "noloadbalance": False,
                     "clonefrom": False, "nosync": False},
        }

    def write_config(self, name, nofailover=False):
        path = os.path.join(self.base, name, "patroni.yml")
        tmp = path + ".tmp"
        with open(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "w") as fh:
            json.dump(self.config(name, nofailover), fh, indent=1)
        os.rename(tmp, path)
        return path

    def start_node(self, name):
        os.makedirs(os.path.join(self.base, name), mode=0o700, exist_ok=True)
        path = self.write_config(name)
        self._spawn(name, ["patroni", path])

    def start(self):
        self.check_ports()
        self.start_etcd()
        # node1 first, so that it bootstraps the cluster and is the first primary
        self.start_node("node1")
        wait_for("node1 to bootstrap as primary",
                 lambda: self.leader() == "node1" and self.writable("node1"), timeout=60)
        for n in NODES[1:]:
            self.start_node(n)
        self.wait_healthy("the replicas to stream")

    def stop(self):
        """Stop Patroni (which stops its PostgreSQL), then etcd; by process id."""
        for name in NODES:
            p = self.procs.get(name)
            if p and p.poll() is None:
                p.send_signal(signal.SIGTERM)
        deadline = mono() + 40
        for name in NODES:
            p = self.procs.get(name)
            if p:
                try:
                    p.wait(max(0.1, deadline - mono()))
                except subprocess.TimeoutExpired:
                    log("patroni %s did not stop; killing it" % name)
                    os.killpg(p.pid, signal.SIGKILL)
            self.kill_postmaster(name, signal.SIGQUIT, quiet=True)
        p = self.procs.get("etcd")
        if p and p.poll() is None:
            p.terminate()
            try:
                p.wait(10)
            except subprocess.TimeoutExpired:
                p.kill()
        # everything stopped: scripts/ha-drill's trap has nothing left to do
        if all(p.poll() is not None for p in self.procs.values()) and \
                not any(self.postmaster_alive(n) for n in NODES):
            os.remove(self.pidfile)

    def postmaster_alive(self, name):
        pid = self.postmaster_pid(name)
        try:
            with open("/proc/%d/cmdline" % pid, "rb") as fh:
                return os.path.join(self.base, name, "data").encode() in fh.read()
        except (OSError, TypeError):
            return False

    # -- state
    def rest(self, name, path, method="GET", body=None, timeout=2):
        req = urllib.request.Request("http://127.0.0.1:%d%s" % (self.rest_ports[name], path),
                                     method=method,
                                     data=json.dumps(body).encode() if body else None)
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return json.load(r)

    def members(self):
        """Patroni's view of the cluster, from any node that answers."""
        for n in NODES:
            try:
                return {m["name"]: m for m in self.rest(n, "/cluster")["members"]}
            except Exception:
                continue
        return {}

    def leader(self):
        return next((n for n, m in self.members().items()
                     if m["role"] == "leader" and m.get("state") == "running"), None)

    def dsn(self, name=None, dbname="postgres"):
        """One node, or all three with target_session_attrs=read-write."""
        names = [name] if name else list(NODES)
        return ("host=%s port=%s user=%s password=%s dbname=%s"
                % (",".join("127.0.0.1" for _ in names),
                   ",".join(str(self.pg_ports[n]) for n in names),
                   self.args.superuser, self.password, dbname)
                + ("" if name else " target_session_attrs=read-write"))

    def writable(self, name):
        with psycopg.connect(self.dsn(name), connect_timeout=1, autocommit=True) as c:
            return not c.execute("SELECT pg_is_in_recovery()").fetchone()[0]

    def wait_healthy(self, what, leader=None, timeout=STEP_TIMEOUT):
        """Every node running, one leader, every replica streaming and close behind."""
        def ok():
            ms = self.members()
            # a replica's state is "running" in Patroni 3 (Debian 12),
            # "streaming" from 3.0.4 on (Debian 13 and later)
            if len(ms) != 3 or any(m.get("state") not in ("running", "streaming")
                                   for m in ms.values()):
                return False
            leaders = [n for n, m in ms.items() if m["role"] == "leader"]
            if len(leaders) != 1 or (leader and leaders[0] != leader):
                return False
            tl = ms[leaders[0]].get("timeline")
            for n, m in ms.items():
                # Patroni's lag compares positions reported at different
                # moments: under load it is rarely 0
                lag = m.get("lag")
                if n != leaders[0] and (not isinstance(lag, int) or lag > 1048576
                                        or m.get("timeline") != tl):
                    return False
            # and each replica's walreceiver is streaming
            with psycopg.connect(self.dsn(leaders[0]), connect_timeout=1,
                                 autocommit=True) as c:
                n = c.execute("SELECT count(*) FROM pg_stat_replication "
                              "WHERE state = 'streaming'").fetchone()[0]
            return n == 2 and ms
        return wait_for(what, ok, timeout=timeout, every=0.2)

    def patroni_major(self):
        """The major version of the installed Patroni (its options differ)."""
        if not hasattr(self, "_patroni_major"):
            out = subprocess.run(["patronictl", "version"], capture_output=True,
                                 text=True, timeout=60).stdout
            m = re.search(r"(\d+)\.\d+", out)
            self._patroni_major = int(m.group(1)) if m else 3
        return self._patroni_major

    def patronictl(self, *a):
        cmd = ["patronictl", "-c", os.path.join(self.base, "node1", "patroni.yml")] + list(a)
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
        with open(os.path.join(self.base, "patronictl.log"), "a") as fh:
            fh.write("$ %s\n%s%s\n" % (" ".join(cmd[3:]), r.stdout, r.stderr))
        if r.returncode != 0:
            raise DrillError("patronictl %s failed: %s" % (" ".join(a), r.stderr.strip()))
        return r.stdout

    def postmaster_pid(self, name):
        try:
            with open(os.path.join(self.base, name, "data", "postmaster.pid")) as fh:
                return int(fh.readline())
        except (OSError, ValueError):
            return None

    def kill_postmaster(self, name, sig=signal.SIGKILL, quiet=False):
        pid = self.postmaster_pid(name)
        if pid is None:
            return None
        try:
            # only a postgres process of this node's data directory
            with open("/proc/%d/cmdline" % pid, "rb") as fh:
                cmd = fh.read().split(b"\0")
            if not any(os.path.join(self.base, name, "data").encode() in a for a in cmd):
                return None
            os.kill(pid, sig)
            return pid
        except OSError:
            if not quiet:
                raise
            return None

    def set_nofailover(self, name, value):
        self.write_config(name, nofailover=value)
        self.procs[name].send_signal(signal.SIGHUP)    # Patroni reloads its file
        wait_for("%s's nofailover tag to be %s" % (name, value),
                 lambda: bool(self.members().get(name, {}).get("tags", {}).get("nofailover"))
                 == value, timeout=30)

    def log_has(self, name, text, since_offset):
        with open(os.path.join(self.base, "%s.log" % name), "rb") as fh:
            fh.seek(since_offset)
            return text.encode() in fh.read()

    def log_size(self, name):
        return os.path.getsize(os.path.join(self.base, "%s.log" % name))

    def diagnose(self, probe=None, lines=25):
        """Print what a failed wait needs to be understood from a CI log
        alone (the drill's directory is gone with the CI machine): Patroni's
        view, each node's own (recovery, synchronous standbys, WAL senders,
        the probe's session and what it waits for), the probe's last write
        and error, and the tail of each node's Patroni and server logs."""
        def out(line):
            print("diag: %s" % line, flush=True)
        for n, m in sorted(self.members().items()):
            out("member %s: role %s, state %s, timeline %s, lag %s, tags %s"
                % (n, m.get("role"), m.get("state"), m.get("timeline"), m.get("lag"),
                   m.get("tags")))
        for n in NODES:
            try:
                with psycopg.connect(self.dsn(n), connect_timeout=2, autocommit=True) as c:
                    c.execute("SET statement_timeout = '5s'")
                    r = c.execute("SELECT pg_is_in_recovery(), "
                                  "current_setting('synchronous_standby_names'), "
                                  "current_setting('synchronous_commit')").fetchone()
                    out("%s: in recovery %s, synchronous_standby_names '%s', "
                        "synchronous_commit %s" % (n, r[0], r[1], r[2]))
                    for r in c.execute("SELECT application_name, state, sync_state, "
                                       "replay_lsn::text FROM pg_stat_replication"):
                        out("%s: WAL sender to %s: %s, %s, replayed %s" % ((n,) + tuple(r)))
                    for r in c.execute("SELECT state, wait_event_type, wait_event, "
                                       "round(extract(epoch FROM now() - query_start)::numeric, 1),"
                                       " left(query, 60) FROM pg_stat_activity "
                                       "WHERE application_name = 'ha-probe'"):
                        out("%s: probe session: %s, waits for %s/%s, for %s s: %s"
                            % ((n,) + tuple(r)))
            except psycopg.Error as e:
                out("%s: %s" % (n, str(e).strip().splitlines()[0] if str(e) else e))
        if probe is not None:
            out("probe: thread %s, %d samples" % ("alive" if probe.is_alive() else "ended",
                                                  len(probe.samples)))
            ok = [s for s in probe.samples if s[2]]
            if ok:
                out("probe: last write %.1f s ago, on port %s"
                    % (time.time() - ok[-1][1], ok[-1][3]))
            if probe.last_error:
                out("probe: last error %.1f s ago: %s"
                    % (time.time() - probe.last_error[0], probe.last_error[1]))
        logs = [("%s.log" % n) for n in NODES]
        for n in NODES:
            pglog = os.path.join(self.base, n, "pglog")
            if os.path.isdir(pglog):
                logs += [os.path.join(n, "pglog", f) for f in sorted(os.listdir(pglog))[-1:]]
        for f in logs:
            try:
                with open(os.path.join(self.base, f), "rb") as fh:
                    fh.seek(max(0, os.path.getsize(fh.name) - 64 * 1024))
                    tail = fh.read().decode(errors="replace").splitlines()[-lines:]
            except OSError:
                continue
            out("--- the last %d lines of %s" % (len(tail), f))
            for line in tail:
                out("  " + line)


# --------------------------------------------------------------------------
# Load: chaos.py's clients, long lease holders, a write probe, a monitor

def conn_term(conn):
    """The node (port) and timeline of a connection to a primary."""
    return conn.execute(
        "SELECT inet_server_port(), "
        "('x' || substr(pg_walfile_name(pg_current_wal_lsn()), 1, 8))::bit(32)::int"
    ).fetchone()


class HAClient(chaos.Client):
    """chaos.py's client, each record tagged with the node and the timeline
    (the primary's term) of the connection it ran on."""

    term = (None, None)

    def ensure_conn(self):
        before = self.conn
        ok = chaos.Client.ensure_conn(self)
        if ok and self.conn is not before:
            try:
                self.term = tuple(conn_term(self.conn))
            except psycopg.Error:
                self.term = (None, None)
        return ok

    def record(self, rec):
        rec["node"], rec["tl"] = self.term
        chaos.Client.record(self, rec)


class LongHolder(HAClient):
    """A lease held for minutes, renewed and used for fenced writes every few
    tenths of a second: what a leader-election or a batch-job lease looks
    like.  On a lost connection it keeps its token and tries again (as a
    client should: the lease may well be alive); it re-acquires only once the
    server says the lease is gone (renew false, or an error)."""

    last_r = None
    last_err = None

    def record(self, rec):
        self.last_r = rec["r"]
        self.last_err = rec.get("err")
        HAClient.record(self, rec)

    def told_nothing(self):
        """Did the last call end without a verdict on the lease: the
        connection went (info), or the client's own random statement
        timeout cancelled it (57014; its transaction rolled back, the lease
        is as it was)?"""
        return self.last_r == "info" or self.last_err == "57014"

    TTL = 120.0

    def __init__(self, cid, args, feats, stop_at):
        HAClient.__init__(self, cid, args, feats, stop_at)
        self.kinds = ["lease"]
        self.res = "ha-long-%d" % cid

    def op_lease(self):
        time.sleep(0.2 + self.rng.random() * 0.2)
        if self.lease is None:
            res = self.res
            r, v = self.call({"op": "acquire", "res": res, "owner": self.owner,
                              "ttl": self.TTL, "wait": 0},
                             lambda cur, rec: cur.execute(
                                 "SELECT lockctl.acquire(%s, %s, %s, '0')",
                                 (res, self.owner, chaos.td(self.TTL))).fetchone()[0])
            if r == "ok" and v is not None:
                self.lease = {"res": res, "tok": v}
            return
        res, tok = self.lease["res"], self.lease["tok"]
        if self.rng.random() < 0.5:
            lease = self.lease
            self.fenced_write(res, tok, 0)
            if self.told_nothing():
                self.lease = lease
        else:
            r, v = self.call({"op": "renew", "res": res, "tok": tok, "owner": self.owner,
                              "ttl": self.TTL},
                             lambda cur, rec: chaos._scalar(cur.execute(
                                 "SELECT lockctl.renew(%s, %s, %s)",
                                 (res, tok, chaos.td(self.TTL)))))
            if (r == "fail" and not self.told_nothing()) or v is False:
                self.lease = None

    def release_now(self, dsn):
        if self.lease:
            try:
                with chaos.connect(dsn, "ha-release") as c:
                    c.execute("SELECT lockctl.release(%s, %s)",
                              (self.lease["res"], self.lease["tok"]))
            except psycopg.Error:
                pass


class Probe(threading.Thread):
    """A small durable write every 50 ms through the multi-host connection
    string: when the cluster had a writable primary, and which."""

    def __init__(self, dsn):
        super().__init__(daemon=True)
        self.dsn = dsn
        self.samples = []       # (mono, wall, ok, port)
        self.stopped = False
        self.last_error = None  # (wall, first line of the message)

    def run(self):
        conn = None
        while not self.stopped:
            t = mono()
            try:
                if conn is None or conn.closed or conn.broken:
                    conn = psycopg.connect(self.dsn, connect_timeout=1, autocommit=True,
                                           application_name="ha-probe")
                port = conn.execute("INSERT INTO ha_probe (at) VALUES (clock_timestamp()) "
                                    "RETURNING inet_server_port()").fetchone()[0]
                self.samples.append((t, time.time(), True, port))
            except Exception as e:
                # Any exception, not only psycopg's: a probe thread that died
                # of one would leave every later wait for a write to time out
                # with the cluster writable.
                self.samples.append((t, time.time(), False, None))
                self.last_error = (time.time(), "%s: %s" % (
                    type(e).__name__, str(e).strip().splitlines()[0] if str(e).strip() else ""))
                try:
                    if conn is not None:
                        conn.close()
                except Exception:
                    pass
                conn = None
            time.sleep(max(0, 0.05 - (mono() - t)))
        if conn is not None:
            conn.close()

    def first_write_on(self, port, after):
        return next((s for s in self.samples if s[2] and s[3] == port and s[0] >= after), None)

    def last_write_before(self, t, not_port):
        return next((s for s in reversed(self.samples)
                     if s[2] and s[0] < t and s[3] != not_port), None)


class Monitor(threading.Thread):
    """Every 250 ms, on every node directly: is it in recovery, and does any
    lockctl process (launcher, expiry worker) run there."""

    def __init__(self, cluster):
        super().__init__(daemon=True)
        self.cluster = cluster
        self.stopped = False
        self.samples = 0
        self.replica_samples = 0
        self.violations = []

    def run(self):
        conns = {}
        while not self.stopped:
            for n in NODES:
                try:
                    c = conns.get(n)
                    if c is None or c.closed or c.broken:
                        c = conns[n] = psycopg.connect(self.cluster.dsn(n), connect_timeout=1,
                                                       autocommit=True,
                                                       application_name="ha-monitor")
                    # in recovery before and after the look: the node was a
                    # replica the whole time
                    a, procs, b = c.execute("""
                        SELECT pg_is_in_recovery(),
                               (SELECT coalesce(string_agg(backend_type || ' ' || pid, ', '), '')
                                  FROM pg_stat_activity WHERE backend_type ILIKE '%lockctl%'),
                               pg_is_in_recovery()""").fetchone()
                    self.samples += 1
                    if a and b:
                        self.replica_samples += 1
                        if procs:
                            self.violations.append((mono(), n, procs))
                except psycopg.Error:
                    conns[n] = None
            time.sleep(0.25)
        for c in conns.values():
            if c is not None:
                c.close()


# --------------------------------------------------------------------------
# One round: load, events, checks

class Round:
    def __init__(self, cluster, args, mode):
        self.cl = cluster
        self.args = args
        self.mode = mode
        self.db = "drill_%s" % mode
        self.dir = os.path.join(args.dir, "round-%s" % mode)
        os.makedirs(self.dir, exist_ok=True)
        self.dsn = cluster.dsn(dbname=self.db)
        self.events = []
        self.figures = collections.OrderedDict()

    def sql(self, q, params=None, db=None, name=None):
        with psycopg.connect(self.cl.dsn(name, dbname=db or self.db), connect_timeout=2,
                             autocommit=True) as c:
            cur = c.execute(q, params)
            return cur.fetchall() if cur.description else None

    def lockctl_dbs(self):
        return [r[0] for r in self.sql(
            "SELECT datname FROM pg_database WHERE datname LIKE 'drill_%' ORDER BY 1",
            db="postgres")]

    def setup(self):
        if self.mode == "async":
            self.cl.patronictl("edit-config", "--force", "-s", "synchronous_mode=false")
        else:
            self.cl.patronictl("edit-config", "--force", "-s", "synchronous_mode=true")
        want = self.mode == "sync"
        wait_for("synchronous_mode to be %s" % want,
                 lambda: bool(self.cl.rest(self.cl.leader() or "node1", "/config")
                              .get("synchronous_mode")) == want, timeout=30)
        if want:
            wait_for("both replicas to be synchronous", lambda: sorted(
                m["role"] for m in self.cl.members().values()) ==
                ["leader", "sync_standby", "sync_standby"], timeout=30)
        self.sql("CREATE DATABASE %s" % self.db, db="postgres")
        self.sql("CREATE EXTENSION lockctl")
        self.sql("SELECT lockctl.create_pool('ha-due', 1000000)")
        a = argparse.Namespace(dsn=self.dsn, dir=self.dir)
        chaos.cmd_setup(a)
        with open(os.path.join(self.dir, "features.json")) as fh:
            self.feats = json.load(fh)
        self.long_ids = list(range(100, 100 + self.args.long_holders))
        self.sql("INSERT INTO chaos.fence_last SELECT 'ha-long-' || g, 0 FROM unnest(%s::int[]) g",
                 (self.long_ids,))

    # -- the events
    def event(self, kind, name, fn, new_leader):
        """Run one event; note when the new primary took its first write."""
        old = self.cl.leader()
        ev = {"kind": kind, "name": name, "old": old, "new": new_leader}
        if old:
            with psycopg.connect(self.cl.dsn(old), connect_timeout=2, autocommit=True) as c:
                ev["old_tl"] = conn_term(c)[1]
        log("%s round: %s (%s -> %s)" % (self.mode, name, old, new_leader))
        ev["t0"], ev["wall0"] = mono(), time.time()
        fn(ev)
        if new_leader:
            port = self.cl.pg_ports[new_leader]
            s = wait_for("the first write on %s" % new_leader,
                         lambda: self.probe.first_write_on(port, ev["t0"]))
            ev["t1"], ev["wall1"] = s[0], s[1]
            prev = self.probe.last_write_before(s[0], port)
            ev["last_old_write"] = prev[0] if prev else None
            ev["unwritable"] = s[0] - prev[0] if prev else None
            with psycopg.connect(self.cl.dsn(new_leader), connect_timeout=2,
                                 autocommit=True) as c:
                ev["new_tl"] = conn_term(c)[1]
            self.measure_worker(ev)
        else:
            ev["t1"] = mono()
        self.events.append(ev)
        log("%s round: %s done in %.1f s%s" % (
            self.mode, name, ev["t1"] - ev["t0"],
            (", no writable primary for %.2f s" % ev["unwritable"])
            if ev.get("unwritable") is not None else ""))
        return ev

    def measure_worker(self, ev):
        """On the new primary, in every database with lockctl: a hold that is
        due at once must be returned by that database's expiry worker."""
        ev["worker"] = {}
        for db in self.lockctl_dbs():
            dsn = self.cl.dsn(ev["new"], dbname=db)
            with psycopg.connect(dsn, connect_timeout=2, autocommit=True) as c:
                hid = c.execute("SELECT lockctl.reserve('ha-due', 1, 'ha-drill', '1 ms')"
                                ).fetchone()[0]
                exp = c.execute("SELECT extract(epoch FROM expires)::float8 FROM "
                                "lockctl.reservations WHERE id = %s", (hid,)).fetchone()[0]

                def done():
                    r = c.execute("SELECT status::text, extract(epoch FROM finished)::float8 "
                                  "FROM lockctl.reservations WHERE id = %s", (hid,)).fetchone()
                    return r if r and r[0] == "expired" else None
                st, fin = wait_for("the expiry worker of %s on %s" % (db, ev["new"]), done,
                                   timeout=60, every=0.02)
                w = c.execute("SELECT extract(epoch FROM started)::float8 FROM lockctl.workers "
                              "WHERE datname = current_database()").fetchone()
            ev["worker"][db] = {
                # from the new primary's first accepted write to the return
                # of a hold due then
                "returned_after_writable": fin - max(exp, ev["wall1"]),
                "returned_after_event": fin - ev["wall0"],
                "worker_started_after_writable": (w[0] - ev["wall1"]) if w and w[0] else None,
                "worker_started_after_event": (w[0] - ev["wall0"]) if w and w[0] else None,
            }

    def switchover(self, old, new):
        def fn(ev):
            # Patroni 4 (Debian 13 and later) names the current leader with
            # --primary; 3.0 (Debian 12) with --leader.
            opt = "--primary" if self.cl.patroni_major() >= 4 else "--leader"
            self.cl.patronictl("switchover", "lockctl-drill", opt, old,
                               "--candidate", new, "--force")
            wait_for("%s to lead" % new, lambda: self.cl.leader() == new)
        return self.event("switchover", "switchover %s -> %s" % (old, new), fn, new)

    def failover(self, old, new):
        def fn(ev):
            # A primary that dies has often written WAL that its replicas
            # never received (a machine crash, a network cut): freeze its
            # WAL senders for a moment before the kill, so that its return
            # needs pg_rewind, and so that an asynchronous cluster shows
            # what it loses.  Synchronous commits wait meanwhile and are
            # never acknowledged.
            senders = [r[0] for r in self.sql(
                "SELECT pid FROM pg_stat_replication", db="postgres", name=old)]
            for pid in senders:
                os.kill(pid, signal.SIGSTOP)
            ev["replication_cut"] = self.args.cut
            time.sleep(self.args.cut)
            ev["killed_pid"] = self.cl.kill_postmaster(old, signal.SIGKILL)
            for pid in senders:
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            if ev["killed_pid"] is None:
                raise DrillError("no postmaster of %s to kill" % old)
            wait_for("%s to lead" % new, lambda: self.cl.leader() == new)
        return self.event("failover", "failover: %s's postmaster killed, %s promoted"
                          % (old, new), fn, new)

    def rejoin(self, name, leader, log_from):
        def fn(ev):
            self.cl.wait_healthy("%s to stream from %s" % (name, leader), leader=leader)
            ev["rewound"] = self.cl.log_has(name, "running pg_rewind from", log_from) and \
                self.cl.log_has(name, "pg_rewind exit code=0", log_from)
        return self.event("rejoin", "%s back as a replica of %s" % (name, leader), fn, None)

    def replica_refuses(self, name):
        """On a replica, lease and hold calls are refused (25006), the views work."""
        got = {}
        with psycopg.connect(self.cl.dsn(name, dbname=self.db), connect_timeout=2,
                             autocommit=True) as c:
            for what, q in (("acquire", "SELECT lockctl.acquire('ha-replica', 'drill')"),
                            ("reserve", "SELECT lockctl.reserve('ha-due', 1, 'drill')")):
                try:
                    c.execute(q)
                    got[what] = "accepted"
                except psycopg.Error as e:
                    got[what] = e.sqlstate
            c.execute("SELECT count(*) FROM lockctl.leases").fetchone()
            got["workers"] = c.execute("SELECT count(*) FROM lockctl.workers").fetchone()[0]
        check("%s: on replica %s, acquire and reserve give 25006, lockctl.workers is empty"
              % (self.mode, name), got == {"acquire": "25006", "reserve": "25006", "workers": 0},
              str(got))

    # -- the round
    def run(self):
        self.started_wall = time.time()
        self.setup()
        args = self.args
        cargs = argparse.Namespace(dsn=self.dsn, dir=self.dir, seed=args.seed, kinds="",
                                   started=mono())
        far = mono() + 3600
        clients = [HAClient(i, cargs, self.feats, far) for i in range(args.clients)]
        longs = [LongHolder(i, cargs, self.feats, far) for i in self.long_ids]
        self.probe = Probe(self.cl.dsn())
        self.monitor = Monitor(self.cl)
        for t in clients + longs + [self.probe, self.monitor]:
            t.start()
        try:
            time.sleep(args.settle)         # the load runs on node1 first
            self.cl.wait_healthy("a healthy cluster before the switchover", leader="node1")
            self.switchover("node1", "node2")
            self.cl.wait_healthy("node1 back as a replica", leader="node2")
            time.sleep(args.settle)
            # node3, not node1, is to be promoted at the failover: node1's own
            # promotion is the planned switch back below
            self.cl.set_nofailover("node1", True)
            log_from = self.cl.log_size("node2")
            self.failover("node2", "node3")
            self.rejoin("node2", "node3", log_from)
            self.cl.set_nofailover("node1", False)
            time.sleep(args.settle)
            self.switchover("node3", "node1")
            self.cl.wait_healthy("everyone back after the switch back", leader="node1")
            self.replica_refuses("node2")
            time.sleep(args.settle)
        finally:
            for c in clients + longs:
                c.stop_at = 0
            for c in clients + longs:
                c.join(30)
            self.probe.stopped = self.monitor.stopped = True
            self.probe.join(10)
            self.monitor.join(10)
        for lh in longs:
            lh.release_now(self.dsn)
        # as t/090_chaos.pl: let every hold fall due and the worker reach it
        wait_for("every hold to be due and the worker's bound to pass", lambda: self.sql(
            "SELECT clock_timestamp() > coalesce((SELECT max(expires) FROM "
            "lockctl.reservations), 'epoch') + interval '1.4 s'")[0][0], timeout=30)
        chaos.cmd_snapshot(argparse.Namespace(dsn=self.dsn, dir=self.dir))
        with open(os.path.join(self.dir, "faults.jsonl"), "w") as fh:
            for ev in self.events:
                if ev["kind"] in ("switchover", "failover"):
                    fh.write(json.dumps({"kind": "restart" if ev["kind"] == "switchover"
                                         else "crash", "t0": ev["t0"], "t1": ev["t1"],
                                         "ha": ev["name"]}) + "\n")
        with open(os.path.join(self.dir, "events.json"), "w") as fh:
            json.dump(self.events, fh, indent=1)
        self.verify()

    # -- checks
    def verify(self):
        m = self.mode
        hist, faults, snap = chaos.load_dir(self.dir)
        ck = chaos.Checker(hist, faults, snap)
        # Three PostgreSQL nodes, etcd, Patroni, pg_rewind and the load share
        # the machine: a calm hold may be expired up to 2.5 s late (the
        # chaos test's own bound, on one server, is 1 s).  What each switch
        # costs the worker is checked apart ("returns a due hold within").
        ck.calm_slack = 2.5
        # leases are carried across every switch (lockctl.lease_durability)
        ck.leases_durable = True
        errors = ck.run()
        with open(os.path.join(self.dir, "check.txt"), "w") as fh:
            for k, v in ck.stats.items():
                fh.write("%-55s %s\n" % (k, v))
            for e in errors:
                fh.write(e + "\n")
        loss = [e for e in errors if e.split(":")[0] in LOSS_INVARIANTS
                or any(p.match(e) for p in LOSS_PATTERNS)]
        rest = [e for e in errors if e not in loss]
        if m == "async":
            # A duplicate answered, before the failover, with the result of
            # a copy whose commit the failover lost: a consequence of that
            # loss (the retry after it took effect again, once).
            lost_effects = {mm.group(1) for mm in (LOST_EFFECT.match(e) for e in loss) if mm}
            answered = [e for e in rest if (lambda mm: mm and mm.group(1) in lost_effects)(
                DUP_ANSWER.match(e))]
            loss += ["answered lost: " + e for e in answered]
            rest = [e for e in rest if e not in answered]
            # A hold lost with its commit leaves its id to be handed out
            # again; a call the first taker makes on it then acts on the
            # other hold (issue 22): a consequence of the loss too.
            takers = collections.defaultdict(set)
            for h in hist:
                if h["op"] == "reserve" and h["r"] == "ok" and h.get("v") is not None:
                    takers[h["v"]].add((h["holder"], h["key"] or h["opid"]))
            again = {hid for hid, t in takers.items() if len(t) > 1}
            moved = [e for e in rest if any(re.search(r"\bhold %d\b" % i, e) for i in again)]
            loss += ["reissued: " + e for e in moved]
            rest = [e for e in rest if e not in moved]
        # Tokens of an earlier timeline handed out again in a later term
        # (a lease that should not have survived a promotion): issue 22.
        stale = {str(h["v"]) for h in hist if h["op"] == "acquire" and h["r"] == "ok"
                 and h.get("v") is not None and h.get("tl") is not None
                 and token_parts(h["v"])["timeline"] < h["tl"]}

        def why(errs):
            n = sum(1 for e in errs if any(t in e for t in stale))
            return ("%d broken, %d of them involving a token of an earlier timeline handed "
                    "out again in a later term (issue 22): %s"
                    % (len(errs), n, "; ".join(errs[:3])))
        if m == "async":
            kinds = collections.Counter(
                next((label for pat, label in LOSS_KINDS if pat in e), "other: " + e[:60])
                for e in loss)
            self.figures["acknowledged writes lost, by kind"] = dict(kinds)
            self.figures["acknowledged writes lost (async cost)"] = sum(
                n for k, n in kinds.items()
                if k not in NOT_WRITES)
            check("%s: chaos invariants but durability (capacity, counters, tokens, fencing, "
                  "mutual exclusion)" % m, not rest,
                  "%d operations; %d acknowledged writes lost (the cost of asynchronous "
                  "replication)" % (len(hist), len(loss)) if not rest else why(rest))
        else:
            check("%s: chaos invariants (nothing acknowledged lost, no pool oversold, no lost "
                  "update, tokens, fencing, mutual exclusion)" % m, not errors,
                  "%d operations" % len(hist) if not errors else why(errors))
        self.figures["checker"] = dict(ck.stats)

        self.check_events()
        self.check_holds_kept(hist, snap)
        self.check_terms(hist, snap)
        self.check_leases_kept(hist)
        check("%s: no lockctl process on a node in recovery" % m, not self.monitor.violations,
              "%d samples of replicas" % self.monitor.replica_samples
              if not self.monitor.violations else
              "; ".join("%s: %s" % (n, p) for _, n, p in self.monitor.violations[:5]))
        check("%s: the monitor saw replicas" % m, self.monitor.replica_samples > 20,
              "%d samples" % self.monitor.replica_samples)

    def check_events(self):
        m = self.mode
        for ev in self.events:
            if ev["kind"] == "rejoin":
                check("%s: %s, through pg_rewind" % (m, ev["name"]),
                      ev.get("rewound"), "%.1f s" % (ev["t1"] - ev["t0"]))
                continue
            check("%s: %s: a writable primary again" % (m, ev["name"]),
                  ev.get("unwritable") is not None,
                  "no writable primary for %.2f s, timeline %s -> %s"
                  % (ev["unwritable"], ev["old_tl"], ev["new_tl"]))
            for db, w in sorted(ev["worker"].items()):
                check("%s: %s: the expiry worker of %s returns a due hold within %.0f s"
                      % (m, ev["name"], db, WORKER_BOUND),
                      w["returned_after_writable"] <= WORKER_BOUND,
                      "%.2f s after the first write, %.2f s after the event began"
                      % (w["returned_after_writable"], w["returned_after_event"]))

    def check_holds_kept(self, hist, snap):
        """Every hold acknowledged (reserved, or confirmed) before an event
        ended is in the final table (confirmed, for a confirm).  The figures
        count, per event, those acknowledged since the previous event."""
        rows = {x["row"]["id"]: x["row"] for x in snap.get("holds", [])}
        conf_all = [h for h in hist if h["op"] == "confirm" and h["r"] == "ok" and h.get("v")]
        made_all = [h for h in hist if h["op"] == "reserve" and h["r"] == "ok"
                    and h.get("v") is not None]

        def conf_kept(h):
            return rows.get(h["id"], {}).get("status") == "confirmed"

        def made_kept(h):
            # the hold is there, and it is the one asked for (after a lost
            # commit its id can be handed out again to another hold)
            r = rows.get(h["v"])
            return r is not None and r["quantity"] == h["qty"] and r["holder"] == h["holder"]
        prev = 0
        for ev in self.events:
            if ev["kind"] == "rejoin":
                continue
            conf = [h for h in conf_all if h["t1"] <= ev["t1"]]
            made = [h for h in made_all if h["t1"] <= ev["t1"]]
            lost_c = [h for h in conf if not conf_kept(h)]
            lost_m = [h for h in made if not made_kept(h)]
            ev["holds_confirmed_before"] = sum(1 for h in conf if h["t1"] > prev)
            ev["holds_confirmed_lost"] = sum(1 for h in lost_c if h["t1"] > prev)
            ev["holds_before"] = sum(1 for h in made if h["t1"] > prev)
            ev["holds_lost"] = sum(1 for h in lost_m if h["t1"] > prev)
            prev = ev["t1"]
            detail = ("%d of %d confirmed holds and %d of %d holds acknowledged since the "
                      "previous event are there" % (
                          ev["holds_confirmed_before"] - ev["holds_confirmed_lost"],
                          ev["holds_confirmed_before"], ev["holds_before"] - ev["holds_lost"],
                          ev["holds_before"]))
            if self.mode == "async":
                if ev["holds_confirmed_lost"] or ev["holds_lost"]:
                    self.figures.setdefault("holds lost (async cost)", []).append(
                        "%s: %s" % (ev["name"], detail))
                continue
            check("%s: %s: every hold acknowledged or confirmed before it is kept"
                  % (self.mode, ev["name"]), conf and not lost_c and not lost_m,
                  "%d confirmed holds, %d holds in all; %s" % (len(conf), len(made), detail))

    def check_terms(self, hist, snap):
        """Tokens granted on a later timeline (primary term) are above every
        token granted on an earlier one; a lease of an earlier term is never
        fenced on a later one unless it was carried over by WAL replay
        (lockctl.lease_durability): then it is the same lease, and no other
        grant of its resource was acknowledged between its grant and the
        fence."""
        m = self.mode
        grants = [h for h in hist if h["op"] == "acquire" and h["r"] == "ok"
                  and h.get("v") is not None and h.get("tl") is not None]
        by_tl = collections.defaultdict(list)
        for g in grants:
            by_tl[g["tl"]].append(g)
        tls = sorted(by_tl)
        bad = []
        retries = 0
        for i, b in enumerate(tls):
            earlier = [g for a in tls[:i] for g in by_tl[a]]
            if not earlier:
                continue
            top = max(earlier, key=lambda g: g["v"])
            for g in sorted(by_tl[b], key=lambda g: g["v"]):
                if g["v"] > top["v"]:
                    continue
                # a safe retry of a lease carried over (lease_durability):
                # the same lease, granted to the same owner in an earlier
                # term, with no other grant of its resource in between
                first = [e for e in earlier if e["res"] == g["res"] and e["v"] == g["v"]
                         and e["owner"] == g["owner"]]
                if first and not [e for e in grants if e["res"] == g["res"]
                                  and e["v"] != g["v"]
                                  and first[0]["t1"] < e["t1"] < g["t0"]]:
                    retries += 1
                    continue
                # name the same resource's highest earlier grant where it is
                # above this one: that is the holder this grant can overwrite
                same = [e for e in earlier if e["res"] == g["res"] and e["v"] >= g["v"]]
                t = max(same, key=lambda e: e["v"]) if same else top
                bad.append("token %s granted to %s for %s on node port %s in term (timeline) "
                           "%d is not above token %s granted to %s for %s in the earlier "
                           "term %d" % (fmt_token(g["v"]), g["owner"], g["res"], g["node"], b,
                                        fmt_token(t["v"]), t["owner"], t["res"], t["tl"]))
        check("%s: every token granted in a later primary term is above every token of an "
              "earlier term" % m, not bad and len(tls) >= 4,
              ("%d terms, %d grants (%d safe retries of carried leases)"
               % (len(tls), len(grants), retries)) if not bad else
              "%d violations (a lease of an earlier timeline was live on a promoted node: "
              "issue 22; %s): %s" % (len(bad), self.restored_dumps() or "no dump restored",
                                     "; ".join(bad[:3])))
        self.figures["token terms"] = {str(tl): [min(g["v"] for g in by_tl[tl]),
                                                 max(g["v"] for g in by_tl[tl])] for tl in tls}
        # fenced writes: the token was first granted in the same term
        granted_tl = {}
        for g in grants:
            k = (g["res"], g["v"])
            granted_tl[k] = min(granted_tl.get(k, g["tl"]), g["tl"])
        stale = []
        fenced = [h for h in hist if h["op"] == "fence" and h["r"] == "ok"
                  and h.get("tl") is not None]
        grant_t = {}
        for g in grants:
            k = (g["res"], g["v"])
            grant_t[k] = min(grant_t.get(k, g["t1"]), g["t1"])
        by_res = collections.defaultdict(list)
        for g in grants:
            by_res[g["res"]].append(g)
        carried = 0
        for h in fenced:
            gtl = granted_tl.get((h["res"], h["tok"]))
            if gtl is not None and gtl < h["tl"]:
                # carried over: no other grant of the resource acknowledged
                # after this token's grant and before the fence began
                t_grant = grant_t[(h["res"], h["tok"])]
                other = [g for g in by_res[h["res"]] if g["v"] != h["tok"]
                         and t_grant < g["t1"] < h["t0"]]
                if not other:
                    carried += 1
                    continue
                stale.append("fenced write %s on %s with token %s granted in term %d, accepted "
                             "in term %d" % (h["opid"], h["res"], fmt_token(h["tok"]), gtl,
                                             h["tl"]))
        self.figures["fences of carried leases"] = carried
        check("%s: no lease of an earlier primary term is fenced in a later one, unless "
              "carried over" % m,
              not stale, "%d fenced writes, %d of carried leases" % (len(fenced), carried)
              if not stale else
              "%d violations (issue 22): %s" % (len(stale), "; ".join(stale[:3])))
        # a lower token accepted after a higher one was used, by commit order
        lower = []
        for rid, res, tok, prev, opid in snap["fenced"]:
            if tok < prev:
                lower.append("%s on %s: token %s after %s" % (opid, res, fmt_token(tok),
                                                               fmt_token(prev)))
        check("%s: no fenced write accepted with a token lower than one already used" % m,
              not lower, "%d fenced writes committed" % len(snap["fenced"]) if not lower else
              "%d violations: %s" % (len(lower), "; ".join(lower[:3])))

    def restored_dumps(self):
        """Where lockctl restored a lease dump at a start during this round:
        the evidence for issue 22 (a clean shutdown as primary, a start as a
        replica, the leases of the old timeline live again)."""
        lo = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(self.started_wall))
        found = []
        for n in NODES:
            with open(os.path.join(self.args.dir, "%s.log" % n), errors="replace") as fh:
                for line in fh:
                    if "lockctl restored" in line and line[:19] >= lo:
                        found.append("%s at %s: %s" % (n, line[11:19],
                                                       line.split("LOG:", 1)[-1].strip()))
        return "; ".join(found)

    def check_leases_kept(self, hist):
        """Per event, of the long leases live just before it, how many could
        still be renewed or fenced after it with the same token.  The drill
        runs with lockctl.lease_durability = on: all of them, at every
        switchover, and at a failover with synchronous replication
        (docs/ha.md)."""
        for ev in self.events:
            if ev["kind"] == "rejoin":
                continue
            kept = lost = 0
            why_lost = []
            for cid in self.long_ids:
                mine = [h for h in hist if h["c"] == cid and h["op"] in ("acquire", "renew",
                                                                          "fence")]
                before = [h for h in mine if h["t1"] < ev["t0"] and h["r"] == "ok"
                          and h.get("v") is not None and h.get("v") is not False]
                if not before:
                    continue
                last = before[-1]
                tok = last["v"] if last["op"] == "acquire" else last["tok"]
                # its first call after the event: with the same token, and
                # the server still knew the lease?  (A holder that learned
                # between the two that its lease was gone acquires instead.)
                # (A call cancelled by the client's own statement timeout,
                # 57014, says nothing either: the holder keeps its lease.)
                h = next((h for h in mine if h["t0"] > ev["t1"] and h["r"] != "info"
                          and h.get("err") != "57014"), None)
                if h is None:
                    continue
                if h["op"] != "acquire" and h.get("tok") == tok and h["r"] == "ok" \
                        and h.get("v") is not False:
                    kept += 1
                else:
                    lost += 1
                    # what the holder saw, from its last call before the
                    # event to its first after it: a loss must be explained
                    seen = [x for x in mine if x["t1"] >= last["t1"] and x["t0"] <= h["t0"]]
                    why_lost.append("%s (token %s): %s" % (
                        "ha-long-%d" % cid, tok,
                        ", ".join("%s%s %s%s" % (
                            x["op"], " of %s" % x["tok"] if x.get("tok") else "",
                            x["r"], " (%s)" % x.get("msg", "")[:120] if x["r"] != "ok"
                            else " -> %s" % x.get("v")) for x in seen[-6:])))
            ev["leases_kept"], ev["leases_lost"] = kept, lost
            ev["leases_lost_how"] = why_lost
            # With lease_durability on, a lease lives on in the WAL: every
            # switchover keeps it, and with synchronous replication so does
            # a failover (asynchronous, a grant or renew acknowledged in the
            # replication cut may be missing: then its holder is told).
            if self.mode == "sync" or ev["kind"] == "switchover":
                check("%s: %s: every long lease live before it can be renewed and fenced "
                      "with its token after it (lockctl.lease_durability)" % (self.mode, ev["name"]),
                      lost == 0, "%d of %d kept" % (kept, kept + lost) if not lost
                      else "%d of %d kept; %s" % (kept, kept + lost, "; ".join(why_lost)))
        self.figures["leases kept / lost per event"] = {
            ev["name"]: [ev["leases_kept"], ev["leases_lost"]]
            for ev in self.events if ev["kind"] != "rejoin"}


def summary(rounds, args):
    out = {"rounds": {}}
    for r in rounds:
        evs = []
        for ev in r.events:
            e = {k: v for k, v in ev.items() if not k.startswith(("t0", "t1", "last_"))}
            e["duration"] = ev["t1"] - ev["t0"]
            evs.append(e)
        out["rounds"][r.mode] = {"events": evs, "figures": r.figures,
                                 "monitor": {"samples": r.monitor.samples,
                                             "replica_samples": r.monitor.replica_samples}}
    with open(os.path.join(args.dir, "report.json"), "w") as fh:
        json.dump(out, fh, indent=1, default=str)
    print("\nfigures (report.json has all; times in seconds, one figure per database "
          "with lockctl where there are several):")
    for r in rounds:
        print("  %s round:" % r.mode)
        for ev in r.events:
            if ev["kind"] == "rejoin":
                print("    %s: %.1f%s" % (ev["name"], ev["t1"] - ev["t0"],
                                          ", through pg_rewind" if ev.get("rewound") else ""))
                continue
            w = list(ev.get("worker", {}).values())

            def fig(key):
                return "/".join("%.2f" % x[key] if x.get(key) is not None else "?" for x in w)
            print("    %s: no writable primary %.2f; expiry worker started %s after the "
                  "event began (%s after the first write); a due hold returned %s after "
                  "its expiry; holds kept %d/%d, confirmed %d/%d; long leases kept %s/%s"
                  % (ev["name"], ev["unwritable"], fig("worker_started_after_event"),
                     fig("worker_started_after_writable"), fig("returned_after_writable"),
                     ev["holds_before"] - ev["holds_lost"], ev["holds_before"],
                     ev["holds_confirmed_before"] - ev["holds_confirmed_lost"],
                     ev["holds_confirmed_before"],
                     ev.get("leases_kept"), ev.get("leases_kept", 0) + ev.get("leases_lost", 0)))
        for k in ("acknowledged writes lost (async cost)", "acknowledged writes lost, by kind"):
            if k in r.figures:
                print("    %s: %s" % (k, r.figures[k]))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--dir", required=True)
    ap.add_argument("--bindir", required=True)
    ap.add_argument("--rounds", default="sync,async")
    ap.add_argument("--pg-port", type=int, default=5561)
    ap.add_argument("--rest-port", type=int, default=8561)
    ap.add_argument("--etcd-port", type=int, default=2391)
    ap.add_argument("--superuser", default=os.environ.get("USER") or "postgres")
    ap.add_argument("--clients", type=int, default=6)
    ap.add_argument("--long-holders", type=int, default=3)
    ap.add_argument("--settle", type=float, default=3.0)
    ap.add_argument("--cut", type=float, default=0.5,
                    help="seconds the failing primary's WAL senders are frozen before the kill")
    ap.add_argument("--seed", type=int, default=int(os.environ.get("LOCKCTL_CHAOS_SEED", "1")))
    args = ap.parse_args()
    args.rounds = [r for r in args.rounds.split(",") if r]
    if any(r not in ("sync", "async") for r in args.rounds) or not args.rounds:
        ap.error("--rounds: sync, async or both")
    args.first_round = args.rounds[0]
    random.seed(args.seed)
    os.makedirs(args.dir, exist_ok=True)
    cl = Cluster(args)
    rounds = []
    started = mono()
    try:
        cl.start()
        with psycopg.connect(cl.dsn(), autocommit=True) as c:
            c.execute("CREATE TABLE ha_probe (at timestamptz NOT NULL)")
        check("the cluster is up: etcd, node1 primary, node2 and node3 streaming", True,
              "%.1f s" % (mono() - started))
        for mode in args.rounds:
            r = Round(cl, args, mode)
            rounds.append(r)
            r.run()
        summary(rounds, args)
    except DrillError as e:
        check("the drill ran to its end", False, str(e))
        try:
            cl.diagnose(rounds[-1].probe if rounds and hasattr(rounds[-1], "probe") else None)
        except Exception as d:     # the diagnosis must not hide the failure
            print("diag: failed: %s" % d)
    finally:
        cl.stop()
    passed = sum(1 for c in CHECKS if c[1])
    failed = len(CHECKS) - passed
    print("ha drill took %.0f s" % (mono() - started))
    print("ha: %d passed, %d failed" % (passed, failed))
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
