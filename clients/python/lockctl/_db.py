"""The few things the package does with a connection, for psycopg 3 and
psycopg2 alike: run a statement, take a transaction, open a connection of
its own."""

import contextlib

from ._common import LockctlError


def is_psycopg2(conn):
    return type(conn).__module__.split(".")[0] == "psycopg2"


def execute(conn, sql, params=()):
    """Run one statement; its rows (a list of tuples, empty without a
    result).  The statement runs in the connection's current mode: in the
    caller's transaction, or on its own under autocommit."""
    with conn.cursor() as cur:
        cur.execute(sql, params)
        return cur.fetchall() if cur.description is not None else []


def value(conn, sql, params=()):
    rows = execute(conn, sql, params)
    return rows[0][0] if rows else None


def backend_pid(conn):
    return conn.get_backend_pid() if is_psycopg2(conn) else conn.info.backend_pid


@contextlib.contextmanager
def transaction(conn):
    """BEGIN ... COMMIT around the block, ROLLBACK when it raises.

    psycopg 3: conn.transaction() (a savepoint when a transaction is already
    open).  psycopg2: the connection must be idle (not inside a transaction
    of the caller's): the block is its transaction, whatever the
    connection's autocommit setting, which is restored afterwards."""
    if not is_psycopg2(conn):
        with conn.transaction():
            yield conn
        return
    import psycopg2.extensions as ext
    if conn.get_transaction_status() != ext.TRANSACTION_STATUS_IDLE:
        raise LockctlError("lockctl.transaction: the psycopg2 connection is inside a transaction already; "
                           "commit or roll back first")
    was_autocommit = conn.autocommit
    conn.autocommit = False
    try:
        try:
            yield conn
        except BaseException:
            if not conn.closed:
                conn.rollback()
            raise
        conn.commit()
    finally:
        if not conn.closed:
            if conn.get_transaction_status() != ext.TRANSACTION_STATUS_IDLE:
                conn.rollback()
            conn.autocommit = was_autocommit


def opener(connect):
    """A function that opens a new autocommit connection: from a libpq
    connection string (psycopg 3 when installed, else psycopg2), or from the
    caller's own zero-argument function."""
    if isinstance(connect, str):
        dsn = connect

        def open_dsn():
            try:
                import psycopg
            except ImportError:
                import psycopg2
                conn = psycopg2.connect(dsn)
                conn.autocommit = True
                return conn
            return psycopg.connect(dsn, autocommit=True)
        return open_dsn
    if callable(connect):
        def open_fn():
            conn = connect()
            conn.autocommit = True
            return conn
        return open_fn
    raise TypeError("connect must be a libpq connection string or a function that returns a new connection")


def close_quietly(conn):
    if conn is None:
        return
    try:
        conn.close()
    except Exception:
        pass
