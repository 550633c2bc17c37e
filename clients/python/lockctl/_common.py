"""What the sync and asyncio halves share: errors, durations, the SQL each
helper sends (with the casts that keep drivers out of lockctl's overload
traps), and the classification of server errors."""

import datetime
import decimal
import json
import math
import os
import random
import re
import socket
import uuid

# --------------------------------------------------------------------------
# Errors


class LockctlError(Exception):
    """Base class of the errors this package raises itself."""


class LeaseNotGranted(LockctlError):
    """acquire() returned NULL: another owner held the lease for longer than
    the wait."""

    def __init__(self, resource, wait):
        super().__init__(f"lease {resource!r} was not granted within {wait:g} s")
        self.resource = resource


class LeaseLost(LockctlError):
    """The lease is gone (expired, taken over, force-released, or not renewed
    in time): stop writing.  Raised by the next fenced write, and by
    Lease.check()."""

    def __init__(self, resource, token, reason):
        super().__init__(f"lease {resource!r} (token {token}) was lost: {reason}")
        self.resource = resource
        self.token = token
        self.reason = reason


# SQLSTATEs a transaction is retried on: a version conflict or a
# serialization failure, and a deadlock.
RETRYABLE = frozenset({"40001", "40P01"})


def sqlstate(exc):
    """The SQLSTATE of a driver error (psycopg 3: sqlstate, psycopg2:
    pgcode), or None."""
    return getattr(exc, "sqlstate", None) or getattr(exc, "pgcode", None)


def is_fence_failure(exc):
    """A 40001 from lockctl.fence or lockctl.renew: the lease is lost, and
    retrying the transaction cannot help."""
    if sqlstate(exc) != "40001":
        return False
    text = str(exc)
    return ("fencing token" in text and "is stale" in text) or "is no longer held by token" in text


def is_connection_error(exc):
    """The connection broke (or the server ended the session): the outcome
    of the statement is unknown and the connection is unusable."""
    st = sqlstate(exc)
    if st is not None:
        # 08: connection exception; 57P01..57P03: admin shutdown, crash
        # shutdown, cannot connect now.
        return st.startswith("08") or st in ("57P01", "57P02", "57P03")
    name = type(exc).__name__
    return name in ("OperationalError", "InterfaceError")


def backoff(attempt, base, cap):
    """Full jitter: a random delay up to base * 2**attempt, at most cap."""
    return random.uniform(0, min(cap, base * (2 ** attempt)))


# --------------------------------------------------------------------------
# Durations: a number is seconds (as time.sleep takes them), a timedelta is
# itself, a string must carry its unit ("500 ms", "30 s", "1 min 30 s").  A
# bare number in a string is refused: "30" would mean 30 seconds to the
# server and 30 milliseconds to the Node.js library.

_UNITS = {
    "us": 1e-6, "usec": 1e-6, "microsecond": 1e-6, "microseconds": 1e-6,
    "ms": 1e-3, "msec": 1e-3, "millisecond": 1e-3, "milliseconds": 1e-3,
    "s": 1.0, "sec": 1.0, "secs": 1.0, "second": 1.0, "seconds": 1.0,
    "m": 60.0, "min": 60.0, "mins": 60.0, "minute": 60.0, "minutes": 60.0,
    "h": 3600.0, "hour": 3600.0, "hours": 3600.0,
    "d": 86400.0, "day": 86400.0, "days": 86400.0,
}
_PART = re.compile(r"\s*([0-9]+(?:\.[0-9]+)?)\s*([a-zA-Z]+)\s*")


def seconds(value, what="duration"):
    """A duration as float seconds; TypeError/ValueError when ambiguous or
    not a duration."""
    if isinstance(value, bool) or value is None:
        raise TypeError(f"{what} must be seconds (int or float), a timedelta or a string with a unit, not {value!r}")
    if isinstance(value, datetime.timedelta):
        return value.total_seconds()
    if isinstance(value, (int, float, decimal.Decimal)):
        s = float(value)
        if not math.isfinite(s):
            raise ValueError(f"{what} must be finite, not {value!r}")
        return s
    if isinstance(value, str):
        pos, total, parts = 0, 0.0, 0
        while pos < len(value):
            m = _PART.match(value, pos)
            if not m or m.end() == pos:
                break
            unit = _UNITS.get(m.group(2).lower())
            if unit is None:
                raise ValueError(f"{what} {value!r}: unknown unit {m.group(2)!r} (us, ms, s, min, h, d)")
            total += float(m.group(1)) * unit
            pos, parts = m.end(), parts + 1
        if parts == 0 or pos != len(value):
            raise ValueError(f"{what} {value!r} is not a number with a unit such as '500 ms' or '30 s'")
        return total
    raise TypeError(f"{what} must be seconds (int or float), a timedelta or a string with a unit, not {type(value).__name__}")


def interval(value, what="duration"):
    """A duration as the text of a PostgreSQL interval, exact to the
    microsecond (sent with an ::interval cast)."""
    return f"{round(seconds(value, what) * 1e6)} microseconds"


# --------------------------------------------------------------------------
# Values sent to the server.  Every parameter gets an explicit cast, so that
# the server never has to guess its type from an untyped literal, and
# lockctl's overloads are chosen by the value's Python type.


def token_param(token):
    if isinstance(token, bool) or not isinstance(token, int):
        raise TypeError(f"a fencing token is an int, not {type(token).__name__}")
    return token


def id_param(hold_id):
    if isinstance(hold_id, bool) or not isinstance(hold_id, int):
        raise TypeError(f"a hold id is an int, not {type(hold_id).__name__}")
    return hold_id


def _json_default(v):
    if isinstance(v, (decimal.Decimal, uuid.UUID)):
        return str(v)
    if isinstance(v, (datetime.datetime, datetime.date, datetime.time)):
        return v.isoformat()
    raise TypeError(f"{type(v).__name__} cannot be sent in a lockctl JSON argument")


def to_json(value):
    return json.dumps(value, default=_json_default)


def versioned_sql(key):
    """The update_versioned call for a key of this Python type, and the key
    as sent.  An int goes to the anyelement overload as bigint (an untyped
    or text-typed parameter would pick the text overload); a dict is a
    composite key (jsonb); a str goes to the text overload."""
    if isinstance(key, bool):
        raise TypeError("a key is not a bool")
    if isinstance(key, int):
        cast, sent = "bigint", key
    elif isinstance(key, dict):
        cast, sent = "jsonb", to_json(key)
    elif isinstance(key, str):
        cast, sent = "text", key
    elif isinstance(key, uuid.UUID):
        cast, sent = "uuid", str(key)
    elif isinstance(key, decimal.Decimal):
        cast, sent = "numeric", key
    else:
        raise TypeError(f"update_versioned key of type {type(key).__name__}: use int, str, uuid.UUID, "
                        "Decimal, or a dict naming every column of a composite key")
    sql = (f"SELECT lockctl.update_versioned(%s::regclass, %s::{cast}, %s::bigint, %s::jsonb)")
    return sql, sent


def default_owner():
    """host-pid-random: unique per Lease object, readable in lockctl.leases."""
    return f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:8]}"


def new_idempotency_key(prefix=""):
    """A fresh key for one logical request: make it once, before the first
    attempt, and send the same key with every retry."""
    return f"{prefix}{uuid.uuid4()}"


SQL = {
    "acquire": "SELECT lockctl.acquire(%s::text, %s::text, %s::interval, %s::interval)",
    "renew": "SELECT lockctl.renew(%s::text, %s::bigint, %s::interval)",
    "release": "SELECT lockctl.release(%s::text, %s::bigint)",
    "fence": "SELECT lockctl.fence(%s::text, %s::bigint)",
    "lease": "SELECT owner, token, acquired_at, expires_at, waiters, acquired_by, fenced "
             "FROM lockctl.lease(%s::text)",
    "reserve": "SELECT lockctl.reserve(%s::text, %s::bigint, %s::text, %s::interval, %s::text)",
    "confirm": "SELECT lockctl.confirm(%s::bigint)",
    "cancel": "SELECT lockctl.cancel(%s::bigint)",
    "extend": "SELECT lockctl.extend(%s::bigint, %s::interval)",
    "available": "SELECT lockctl.available(%s::text)",
    "claim": "SELECT lockctl.claim_request(%s::text, %s::interval, %s::text, %s::interval, %s::name)",
    "complete": "SELECT lockctl.complete_request(%s::text, %s::jsonb, %s::name)",
}


def claim_params(key, ttl, fingerprint, wait, scope):
    if not key:
        raise ValueError("a request key is a non-empty string (lockctl.new_idempotency_key())")
    return (key, interval(ttl, "ttl"), fingerprint, None if wait is None else interval(wait, "wait"), scope)
