"""Transactions with retries, version-checked updates, reservations and
idempotency keys, for psycopg 3 and psycopg2 connections (sync)."""

import time

from . import _db
from ._common import (RETRYABLE, SQL, LeaseLost, backoff, claim_params, id_param, interval,
                      is_connection_error, is_fence_failure, sqlstate, to_json,
                      versioned_sql)

transaction = _db.transaction


def retry(fn, *args, attempts=10, base_delay=0.01, max_delay=1.0, retry_on=RETRYABLE,
          on_retry=None, **kwargs):
    """fn(*args, **kwargs), called again after a 40001 (version conflict,
    serialization failure) or 40P01 (deadlock), at most `attempts` times in
    all, sleeping a random delay up to base_delay * 2**n (at most max_delay)
    between tries.  The last error is raised when all attempts failed.

    A lost lease (LeaseLost, or a 40001 from lockctl.fence / renew) is never
    retried: the same token would be refused again.  fn must redo the whole
    transaction, reads included (see run_in_transaction)."""
    if attempts < 1:
        raise ValueError("attempts must be at least 1")
    for attempt in range(attempts):
        try:
            return fn(*args, **kwargs)
        except LeaseLost:
            raise
        except Exception as e:
            if sqlstate(e) not in retry_on or is_fence_failure(e) or attempt == attempts - 1:
                raise
            delay = backoff(attempt, base_delay, max_delay)
            if on_retry is not None:
                on_retry(attempt + 1, e, delay)
            time.sleep(delay)


def run_in_transaction(conn, fn, *args, attempts=10, base_delay=0.01, max_delay=1.0,
                       on_retry=None, **kwargs):
    """fn(conn, *args, **kwargs) in a transaction on conn, the whole
    transaction retried on 40001 / 40P01 as retry() does; fn's result."""
    def once():
        with _db.transaction(conn):
            return fn(conn, *args, **kwargs)
    return retry(once, attempts=attempts, base_delay=base_delay, max_delay=max_delay,
                 on_retry=on_retry)


def fence(conn, resource, token):
    """lockctl.fence in the caller's transaction (see Lease.fenced for the
    whole pattern)."""
    _db.execute(conn, SQL["fence"], (resource, id_param(token)))


def update_versioned(conn, table, key, expected_version, changes=None):
    """lockctl.update_versioned: the row of `table` whose primary key is
    `key`, updated with `changes` (a dict) if its version is
    expected_version; returns the new version (int).  40001 when stale.

    key: an int (sent as bigint, so the anyelement overload is used, whatever
    the driver), a str, a uuid.UUID, a Decimal, or a dict naming every
    column of a composite primary key."""
    sql, sent = versioned_sql(key)
    return _db.value(conn, sql, (table, sent, id_param(expected_version), to_json(changes or {})))


def reserve(conn, resource, quantity=1, holder=None, ttl=300, idempotency_key=None):
    """lockctl.reserve: a hold id (int), or None when sold out.  ttl in
    seconds, a timedelta, or a string with a unit."""
    return _db.value(conn, SQL["reserve"], (resource, id_param(quantity), holder, interval(ttl, "ttl"),
                                            idempotency_key))


def confirm(conn, hold_id):
    """lockctl.confirm: True, or False when it was confirmed already."""
    return _db.value(conn, SQL["confirm"], (id_param(hold_id),))


def cancel(conn, hold_id):
    """lockctl.cancel: True, or False when it was over already."""
    return _db.value(conn, SQL["cancel"], (id_param(hold_id),))


def extend(conn, hold_id, ttl):
    """lockctl.extend: the hold's new expiry (a datetime)."""
    return _db.value(conn, SQL["extend"], (id_param(hold_id), interval(ttl, "ttl")))


def available(conn, resource):
    """lockctl.available: units free (int)."""
    return _db.value(conn, SQL["available"], (resource,))


def reserve_idempotent(connect, resource, idempotency_key, quantity=1, holder=None, ttl=300, *,
                       attempts=5, base_delay=0.05, max_delay=2.0):
    """reserve() that survives a lost answer: on a broken connection (the
    outcome unknown), a 40001 or a deadlock it opens a new connection and
    sends the same request with the same idempotency key again, which
    returns the hold the first attempt made, if it made one.  connect: a
    libpq connection string or a function returning a new connection.
    The hold id, or None when sold out."""
    if not idempotency_key:
        raise ValueError("reserve_idempotent needs an idempotency_key (lockctl.new_idempotency_key())")
    open_conn = _db.opener(connect)
    for attempt in range(attempts):
        conn = None
        try:
            conn = open_conn()
            return reserve(conn, resource, quantity, holder, ttl, idempotency_key)
        except Exception as e:
            retryable = is_connection_error(e) or sqlstate(e) in RETRYABLE
            if not retryable or attempt == attempts - 1:
                raise
            time.sleep(backoff(attempt, base_delay, max_delay))
        finally:
            _db.close_quietly(conn)


def run_once(conn, key, fn, *args, ttl=86400, fingerprint=None, wait=None, scope=None,
             attempts=10, base_delay=0.01, max_delay=1.0, **kwargs):
    """An idempotent request: in one transaction, lockctl.claim_request(key),
    then fn(conn, *args, **kwargs) and lockctl.complete_request(key, its
    result), so that the claim commits or rolls back with the effect.
    Returns (result, replayed): fn's result, or, for a duplicate of a
    request that committed, the result it stored (decoded from JSON) and
    replayed=True; fn is then not called.  A concurrent duplicate waits for
    the first copy (at most `wait`, then 55P03) and replays its result.
    fn's result must be JSON-serializable (None is stored as {}).  The
    transaction is retried on 40001/40P01, as run_in_transaction does
    (under REPEATABLE READ a late duplicate gets 40001, then replays).
    fingerprint: a hash of the request's parameters; a key reused with
    another one is refused (22023)."""
    params = claim_params(key, ttl, fingerprint, wait, scope)

    def once(conn):
        stored = _db.value(conn, SQL["claim"], params)
        if stored is not None:
            return stored, True
        result = fn(conn, *args, **kwargs)
        _db.execute(conn, SQL["complete"], (key, to_json({} if result is None else result), scope))
        return result, False
    return run_in_transaction(conn, once, attempts=attempts, base_delay=base_delay, max_delay=max_delay)
