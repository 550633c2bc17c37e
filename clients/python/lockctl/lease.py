"""A lockctl lease held by a heartbeat thread, for psycopg 3 and psycopg2.

The lease runs its own connection: acquire, every renew and the release go
through it, so a busy application connection never delays a renewal.  Loss
is noticed three ways, whichever comes first:

- the heartbeat's renew is refused (40001: expired, taken over,
  force-released);
- the heartbeat could not renew before the lease's expiry as this process
  measures it (a dead server, a broken network, a paused process): a
  watchdog thread declares the lease lost at that instant, without waiting
  for the network;
- a fenced write's lockctl.fence() is refused.

Then `lost` (a threading.Event) is set, `on_lost(lease)` is called once, and
every later fenced write raises LeaseLost before it touches the database.
"""

import contextlib
import threading
import time

from . import _db
from ._common import (SQL, LeaseLost, LeaseNotGranted, default_owner, interval,
                      is_connection_error, seconds, sqlstate)


class Lease:
    """lockctl.acquire / renew / release with a heartbeat.

        with lockctl.Lease(dsn, "nightly-report", ttl=30, wait=10) as lease:
            with lease.fenced(conn):
                conn.execute("UPDATE ...")

    connect: a libpq connection string, or a function returning a new
    connection (psycopg 3 or psycopg2); the lease opens its own with it, and
    opens it again when the server ends it.
    ttl, wait, renew_every: seconds (int or float), a timedelta, or a string
    with a unit ("30 s").  renew_every defaults to ttl / 3.
    on_lost: called once, from the thread that noticed, with the lease.
    """

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
        self.expires_at = None          # the server's expiry of the last grant or renewal
        self.renewals = 0
        self.reconnects = 0
        self.lost = threading.Event()
        self.lost_reason = None
        self._open = _db.opener(connect)
        self._conn = None
        self._cv = threading.Condition()
        self._deadline = 0.0            # time.monotonic() by which the lease has expired for sure
        self._stop = False
        self._threads = []

    # -- acquiring and releasing ------------------------------------------

    def acquire(self):
        """Take the lease (waiting up to `wait`).  True when granted, False
        when another owner kept it; the heartbeat starts on a grant."""
        if self.token is not None:
            raise RuntimeError("this Lease was acquired already; make a new one")
        self._conn = self._open()
        try:
            token = _db.value(self._conn, SQL["acquire"], (self.resource, self.owner, interval(self.ttl, "ttl"),
                                                           interval(self.wait, "wait")))
        except BaseException:
            _db.close_quietly(self._conn)
            self._conn = None
            raise
        if token is None:
            _db.close_quietly(self._conn)
            self._conn = None
            return False
        self.token = token
        # The grant happened somewhere between `sent` and now (acquire may
        # have waited): renew at once, so that the expiry this process
        # counts with starts before the server's, never after it.
        sent = time.monotonic()
        try:
            self.expires_at = _db.value(self._conn, SQL["renew"],
                                        (self.resource, token, interval(self.ttl, "ttl")))
        except Exception as e:
            if sqlstate(e) != "40001":
                # Granted, but not kept: give it back rather than leave it
                # held by nobody until its ttl runs out.
                try:
                    _db.value(self._conn, SQL["release"], (self.resource, token))
                except Exception:
                    pass
                _db.close_quietly(self._conn)
                self._conn, self.token = None, None
                raise
            self._mark_lost(str(e).strip().splitlines()[0])
            return True
        self._deadline = sent + self.ttl
        self._limit(self._conn)
        self._start_threads()
        return True

    def release(self):
        """Stop the heartbeat and release the lease.  True when it was still
        ours; False when it had been lost (nothing to release)."""
        self._stop_threads()
        conn, self._conn = self._conn, None
        if self.token is None or self.lost.is_set():
            _db.close_quietly(conn)
            return False
        try:
            for attempt in (1, 2):
                try:
                    if conn is None:
                        conn = self._open()
                    return bool(_db.value(conn, SQL["release"], (self.resource, self.token)))
                except Exception as e:
                    if attempt == 2 or not is_connection_error(e):
                        raise
                    _db.close_quietly(conn)
                    conn = None
        finally:
            # Whatever the outcome, this object holds the lease no more.
            self._mark_lost("released", notify=False)
            _db.close_quietly(conn)

    def __enter__(self):
        if not self.acquire():
            raise LeaseNotGranted(self.resource, self.wait)
        return self

    def __exit__(self, *exc):
        self.release()
        return False

    # -- fencing ----------------------------------------------------------

    def check(self):
        """Raise LeaseLost if the lease is lost, or if its expiry passed
        without a renewal (even if the heartbeat has not said so yet)."""
        if self.token is None:
            raise RuntimeError("the lease was never acquired")
        if not self.lost.is_set() and time.monotonic() >= self._deadline:
            self._mark_lost("not renewed before its expiry")
        if self.lost.is_set():
            raise LeaseLost(self.resource, self.token, self.lost_reason)

    @contextlib.contextmanager
    def fenced(self, conn):
        """A transaction on conn that starts with lockctl.fence(resource,
        token): the writes in the block commit only if this lease is live,
        and no one else can be granted it until the transaction ends.
        Raises LeaseLost (and rolls back) when the lease is lost."""
        self.check()
        with _db.transaction(conn):
            try:
                _db.execute(conn, SQL["fence"], (self.resource, self.token))
            except Exception as e:
                if sqlstate(e) == "40001":
                    reason = str(e).strip().splitlines()[0]
                    self._mark_lost(reason)
                    raise LeaseLost(self.resource, self.token, reason) from e
                raise
            yield conn

    def run_fenced(self, conn, fn, *args, **kwargs):
        """fn(conn, *args, **kwargs) inside fenced(conn); its result."""
        with self.fenced(conn):
            return fn(conn, *args, **kwargs)

    @property
    def heartbeat_pid(self):
        """The backend pid of the lease's own connection (None when it has
        none at the moment)."""
        conn = self._conn
        try:
            return _db.backend_pid(conn) if conn is not None else None
        except Exception:
            return None

    # -- the heartbeat and the watchdog -----------------------------------

    def _start_threads(self):
        for target, name in ((self._heartbeat, "heartbeat"), (self._watchdog, "watchdog")):
            t = threading.Thread(target=target, name=f"lockctl {name} {self.resource}", daemon=True)
            self._threads.append(t)
            t.start()

    def _stop_threads(self):
        with self._cv:
            self._stop = True
            self._cv.notify_all()
        for t in self._threads:
            if t is not threading.current_thread():
                # A renew in flight ends within its statement_timeout.
                t.join(self.ttl + 5)
        self._threads = []

    def _limit(self, conn):
        # A renew that hangs must not outlast the lease: the heartbeat tries
        # again (on a new connection if need be) before the expiry.
        _db.execute(conn, "SELECT pg_catalog.set_config('statement_timeout', %s, false), "
                    "pg_catalog.set_config('application_name', 'lockctl lease heartbeat', false)",
                    (f"{max(1, int(self.renew_every * 1000))}ms",))

    def _mark_lost(self, reason, notify=True):
        with self._cv:
            if self.lost.is_set():
                return
            self.lost_reason = reason
            self.lost.set()
            self._cv.notify_all()
        if notify and self.on_lost is not None:
            try:
                self.on_lost(self)
            except Exception:
                pass

    def _watchdog(self):
        with self._cv:
            while not self._stop and not self.lost.is_set():
                left = self._deadline - time.monotonic()
                if left <= 0:
                    break
                self._cv.wait(left)
            expired = not self._stop and not self.lost.is_set()
        if expired:
            self._mark_lost("not renewed before its expiry (heartbeat late or server unreachable)")

    def _heartbeat(self):
        delay = self.renew_every
        while True:
            with self._cv:
                if self._stop or self.lost.is_set():
                    return
                # Never sleep past the expiry: the renew must be sent before.
                self._cv.wait(max(0.0, min(delay, self._deadline - time.monotonic() - 0.001)))
                if self._stop or self.lost.is_set():
                    return
            sent = time.monotonic()
            try:
                if self._conn is None:
                    self._conn = self._open()
                    self.reconnects += 1
                    self._limit(self._conn)
                expires = _db.value(self._conn, SQL["renew"],
                                    (self.resource, self.token, interval(self.ttl, "ttl")))
            except Exception as e:
                if sqlstate(e) == "40001":
                    self._mark_lost(str(e).strip().splitlines()[0])
                    return
                # The connection broke or the call failed: open a new one and
                # try again soon; the watchdog declares the loss if the
                # expiry comes first.
                if is_connection_error(e) or self._conn is None or self._conn.closed:
                    _db.close_quietly(self._conn)
                    self._conn = None
                delay = min(self.renew_every, 0.1 + self.renew_every / 10)
                continue
            with self._cv:
                self._deadline = sent + self.ttl
                self.expires_at = expires
                self.renewals += 1
                self._cv.notify_all()
            delay = self.renew_every
