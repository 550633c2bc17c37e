#!/usr/bin/python3
"""lockctl.update_versioned() through Python's drivers: psycopg 3 (Debian's
python3-psycopg) and asyncpg (python3-asyncpg).  Which overload each driver
binds (anyelement or text), with an integer key, a uuid key, a composite key
given as an object, and a stale version.

    /usr/bin/python3 examples/orm/drivers_check.py "host=... port=... dbname=... user=..."
"""

import asyncio
import json
import sys
import uuid

import asyncpg
import psycopg
from psycopg.types.json import Jsonb

import matrixlib as m

DSN = sys.argv[1]
P = dict(p.split("=", 1) for p in DSN.split())
U = "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11"
CALL = "SELECT lockctl.update_versioned({tbl}, {key}, {v}, {ch})"

m.setup_sql(DSN, f"""
DROP TABLE IF EXISTS dv_int, dv_uuid, dv_ck;
CREATE TABLE dv_int (id int PRIMARY KEY, body text, version int);
CREATE TABLE dv_uuid (id uuid PRIMARY KEY, body text, version int);
CREATE TABLE dv_ck (a int, b text, body text, version int, PRIMARY KEY (a, b));
SELECT lockctl.enable_versioning(t) FROM unnest(ARRAY['dv_int', 'dv_uuid', 'dv_ck']) t;
INSERT INTO dv_int VALUES (1, 'seed', NULL), (2, 'seed', NULL);
INSERT INTO dv_uuid VALUES ('{U}', 'seed', NULL);
INSERT INTO dv_ck VALUES (1, 'x y', 'seed', NULL), (2, 'x y', 'seed', NULL);
""")


def psycopg_checks():
    name = "psycopg 3"
    m.row(name, "driver", "")
    with psycopg.connect(DSN, autocommit=True) as c:
        q = CALL.format(tbl="%s", key="%s", v="%s", ch="%s")
        m.check(name, "integer key", lambda: (
            c.execute(q, ("dv_int", 1, 1, Jsonb({"body": "p"}))).fetchone()[0] == 2,
            "works (a Python int binds the anyelement form)"))
        m.check(name, "uuid key", lambda: (
            c.execute(q, ("dv_uuid", uuid.UUID(U), 1, Jsonb({"body": "p"}))).fetchone()[0] == 2
            and c.execute(q, ("dv_uuid", U, 2, Jsonb({"body": "p"}))).fetchone()[0] == 3,
            "works (uuid.UUID or str)"))

        def composite():
            ok = c.execute(q, ("dv_ck", Jsonb({"a": 1, "b": "x y"}), 1, Jsonb({}))).fetchone()[0] == 2
            try:
                c.execute(q, ("dv_ck", {"a": 1, "b": "x y"}, 2, Jsonb({})))
                plain = "works"
            except psycopg.ProgrammingError as e:
                plain = "cannot adapt" if "cannot adapt type 'dict'" in str(e) else str(e)
            return (ok and plain == "cannot adapt",
                    "`Jsonb(dict)` works; a bare dict: psycopg cannot adapt it (client error)",
                    plain)
        m.check(name, "composite key as object", composite)

        def stale():
            try:
                c.execute(q, ("dv_int", 1, 1, Jsonb({"body": "stale"})))
                return (False, "a stale version went through")
            except psycopg.errors.SerializationFailure:
                return (True, "40001 (SerializationFailure)")
        m.check(name, "stale version", stale)


async def asyncpg_checks():
    name = "asyncpg"
    m.row(name, "driver", "")
    c = await asyncpg.connect(host=P["host"], port=int(P["port"]), database=P["dbname"],
                              user=P.get("user"), password=P.get("password"))
    q = CALL.format(tbl="$1", key="$2", v="$3", ch="$4")
    qcast = CALL.format(tbl="$1", key="$2::integer", v="$3", ch="$4")
    results = {}
    try:
        # The server types an untyped $2 as text (the text form): asyncpg
        # then wants a str, and says so naming the argument.
        try:
            await c.fetchval(q, "dv_int", 2, 1, json.dumps({"body": "a"}))
            results["int"] = "works"
        except asyncpg.exceptions.DataError as e:
            results["int"] = "refused naming $2" if "$2" in str(e) else str(e)
        results["int_str"] = await c.fetchval(q, "dv_int", "2", 1, json.dumps({"body": "a"}))
        results["int_cast"] = await c.fetchval(qcast, "dv_int", 2, 2, json.dumps({"body": "a"}))
        results["uuid"] = await c.fetchval(q, "dv_uuid", U, 3, json.dumps({"body": "a"}))
        results["ck"] = await c.fetchval(q, "dv_ck", json.dumps({"a": 2, "b": "x y"}), 1, "{}")
        try:
            await c.fetchval(q, "dv_ck", {"a": 2, "b": "x y"}, 2, "{}")
            results["ck_dict"] = "works"
        except asyncpg.exceptions.DataError as e:
            results["ck_dict"] = "refused naming $2" if "$2" in str(e) else str(e)
        try:
            await c.fetchval(q, "dv_int", "2", 1, "{}")
            results["stale"] = "went through"
        except asyncpg.exceptions.SerializationError:
            results["stale"] = "40001"
    finally:
        await c.close()
    m.cell(name, "integer key",
           "the text form is bound: pass `str(key)` or write `$2::integer`; an int is refused "
           "by asyncpg naming $2",
           results["int"] == "refused naming $2" and results["int_str"] == 2
           and results["int_cast"] == 3, str(results))
    m.cell(name, "uuid key", "works (str)", results["uuid"] == 4, str(results))
    m.cell(name, "composite key as object", "`json.dumps(obj)` works; a dict is refused by "
           "asyncpg naming $2", results["ck"] == 2 and results["ck_dict"] == "refused naming $2",
           str(results))
    m.cell(name, "stale version", "40001 (SerializationError)", results["stale"] == "40001",
           str(results))


psycopg_checks()
asyncio.run(asyncpg_checks())
m.finish()
