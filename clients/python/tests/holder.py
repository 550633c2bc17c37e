"""A lease holder in a process of its own, driven by the tests through its
stdin, so that a test can pause it (SIGSTOP: its heartbeat stops too, as in
a GC pause or a frozen VM) and then ask it to write.

    holder.py DSN DRIVER RESOURCE TTL TABLE      DRIVER: psycopg, psycopg2, async

Prints "token N" once the lease is held; then for each line on stdin:
"write N" makes a fenced INSERT of N into TABLE and prints "written N" or
"lost: REASON"; "exit" releases the lease and exits.
"""

import asyncio
import sys

import lockctl
import lockctl.aio

dsn, driver, resource, ttl, table = sys.argv[1:6]
ttl = float(ttl)


def say(msg):
    print(msg, flush=True)


def sync_main():
    if driver == "psycopg2":
        import psycopg2
        conn = psycopg2.connect(dsn)
        connect = lambda: psycopg2.connect(dsn)       # noqa: E731
    else:
        import psycopg
        conn = psycopg.connect(dsn)
        connect = lambda: psycopg.connect(dsn)        # noqa: E731
    with lockctl.Lease(connect, resource, owner="paused-holder", ttl=ttl) as lease:
        say(f"token {lease.token}")
        for line in sys.stdin:
            cmd = line.split()
            if cmd[0] == "exit":
                break
            try:
                with lease.fenced(conn) as c:
                    with c.cursor() as cur:
                        cur.execute(f"INSERT INTO {table} (token, n) VALUES (%s, %s)", (lease.token, int(cmd[1])))
                say(f"written {cmd[1]}")
            except lockctl.LeaseLost as e:
                say(f"lost: {e.reason}")


async def async_main():
    import psycopg
    conn = await psycopg.AsyncConnection.connect(dsn)
    loop = asyncio.get_running_loop()
    async with lockctl.aio.Lease(dsn, resource, owner="paused-holder", ttl=ttl) as lease:
        say(f"token {lease.token}")
        while True:
            line = await loop.run_in_executor(None, sys.stdin.readline)
            cmd = line.split()
            if not cmd or cmd[0] == "exit":
                break
            try:
                async with lease.fenced(conn) as c:
                    await c.execute(f"INSERT INTO {table} (token, n) VALUES (%s, %s)", (lease.token, int(cmd[1])))
                say(f"written {cmd[1]}")
            except lockctl.LeaseLost as e:
                say(f"lost: {e.reason}")
    await conn.close()


if driver == "async":
    asyncio.run(async_main())
else:
    sync_main()
