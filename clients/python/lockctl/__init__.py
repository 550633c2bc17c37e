"""lockctl for Python: leases that keep themselves alive and stop your
writes when they are lost, retries of 40001, version-checked updates,
reservations and idempotency keys, over psycopg 3 (sync: this module;
asyncio: lockctl.aio) or psycopg2.

Durations are seconds (int or float), a datetime.timedelta, or a string
with a unit ("500 ms", "30 s"); tokens, versions and hold ids are ints;
times are datetimes.  See clients/python/README.md.
"""

from ._common import (LeaseLost, LeaseNotGranted, LockctlError, RETRYABLE, is_connection_error,
                      is_fence_failure, new_idempotency_key, sqlstate)
from .helpers import (available, cancel, confirm, extend, fence, reserve, reserve_idempotent,
                      retry, run_in_transaction, run_once, transaction, update_versioned)
from .lease import Lease

__version__ = "1.1.0"

__all__ = [
    "Lease", "LeaseLost", "LeaseNotGranted", "LockctlError", "RETRYABLE",
    "available", "cancel", "confirm", "extend", "fence", "is_connection_error",
    "is_fence_failure", "new_idempotency_key", "reserve", "reserve_idempotent", "retry",
    "run_in_transaction", "run_once", "sqlstate", "transaction", "update_versioned",
]
