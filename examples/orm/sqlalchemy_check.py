#!/usr/bin/python3
"""SQLAlchemy (Debian's python3-sqlalchemy) against lockctl: version_id_col
counted by the client (mode 'strict') and by the database
(version_id_generator=False, mode 'server').

    /usr/bin/python3 examples/orm/sqlalchemy_check.py "host=... dbname=..."
"""

import sys
import threading

import sqlalchemy as sa
from sqlalchemy.orm import Session, declarative_base
from sqlalchemy.orm.exc import StaleDataError

import matrixlib as m

DSN = sys.argv[1]
PARAMS = dict(p.split("=", 1) for p in DSN.split())
URL = sa.engine.URL.create(
    "postgresql+psycopg2", username=PARAMS.get("user"), password=PARAMS.get("password"),
    database=PARAMS["dbname"], query={"host": PARAMS["host"], "port": PARAMS["port"]})
engine = sa.create_engine(URL, future=True)
Base = declarative_base()


class Doc(Base):
    """The documented client-side counter: UPDATE ... SET version = :new
    WHERE id = :id AND version = :read."""
    __tablename__ = "sa_doc"
    id = sa.Column(sa.Integer, primary_key=True)
    body = sa.Column(sa.Text)
    version = sa.Column(sa.BigInteger, nullable=False)
    __mapper_args__ = {"version_id_col": version}


class ServerDoc(Base):
    """The documented server-side counter: the UPDATE compares the version
    and does not set it; lockctl bumps it; SQLAlchemy reads it back with
    RETURNING."""
    __tablename__ = "sa_sdoc"
    id = sa.Column(sa.Integer, primary_key=True)
    body = sa.Column(sa.Text)
    version = sa.Column(sa.BigInteger, nullable=False, server_default=sa.FetchedValue(),
                        server_onupdate=sa.FetchedValue())
    __mapper_args__ = {"version_id_col": version, "version_id_generator": False}


m.setup_sql(DSN, """
DROP TABLE IF EXISTS sa_doc, sa_sdoc;
CREATE TABLE sa_doc (id int PRIMARY KEY, body text, version bigint NOT NULL);
SELECT lockctl.enable_versioning('sa_doc');
CREATE TABLE sa_sdoc (id int PRIMARY KEY, body text, version bigint NOT NULL DEFAULT 1);
SELECT lockctl.enable_versioning('sa_sdoc', 'version', 'server');
""")

CONFIGS = [
    ("SQLAlchemy (version_id_col)", Doc, "sa_doc", "strict",
     "`__mapper_args__ = {\"version_id_col\": version}`"),
    ("SQLAlchemy (server side)", ServerDoc, "sa_sdoc", "server",
     "`version_id_col` with `version_id_generator=False`; the column "
     "`server_default=FetchedValue(), server_onupdate=FetchedValue()`"),
]


def db_row(model, key):
    with Session(engine) as s:
        d = s.get(model, key)
        return (d.body, d.version)


for name, model, table, mode, config in CONFIGS:
    m.row(name, mode, config)
    with Session(engine) as s:
        s.add_all([model(id=i, body="seed") for i in range(1, 6)])
        s.commit()

    def normal():
        with Session(engine) as s:
            d = s.get(model, 1)
            before = d.version
            d.body = "first"
            s.commit()
            d.body = "second"       # the same object again: its version followed
            s.commit()
            after = d.version
        return (db_row(model, 1) == ("second", before + 2) and after == before + 2,
                "ok", f"before {before}, after {after}, row {db_row(model, 1)}")
    m.check(name, "normal update", normal)

    def sequential():
        a, b = Session(engine), Session(engine)
        da, db = a.get(model, 2), b.get(model, 2)
        da.body = "A"
        a.commit()
        db.body = "B"
        try:
            b.commit()
            return (False, "B's stale write went through", str(db_row(model, 2)))
        except StaleDataError:
            b.rollback()
        finally:
            a.close()
            b.close()
        return (db_row(model, 2)[0] == "A", "StaleDataError")
    m.check(name, "sequential conflict", sequential)

    def concurrent():
        a, b = Session(engine), Session(engine)
        da, db = a.get(model, 3), b.get(model, 3)
        b.commit()                  # B read, and ends its read transaction
        da.body = "A"
        a.flush()                   # A holds the row lock
        out = {}

        def writer_b():
            try:
                db.body = "B"
                b.commit()
                out["b"] = "committed"
            except StaleDataError:
                b.rollback()
                out["b"] = "StaleDataError"
            except Exception as e:  # reported below
                b.rollback()
                out["b"] = repr(e)
        t = threading.Thread(target=writer_b)
        t.start()
        waited = m.wait_for_lock_wait(DSN, table)
        a.commit()
        t.join(m.BOUND)
        a.close()
        b.close()
        return (waited and out.get("b") == "StaleDataError" and db_row(model, 3)[0] == "A",
                "StaleDataError", f"waited={waited} b={out.get('b')} row={db_row(model, 3)}")
    m.check(name, "concurrent conflict", concurrent)

    def bulk():
        with Session(engine) as s:
            try:
                s.execute(sa.update(model).where(model.id == 4).values(body="bulk"))
                s.commit()
                return (False, "a bulk UPDATE without the version went through")
            except sa.exc.DBAPIError as e:
                s.rollback()
                if m.sqlstate(e) != "09000":
                    return (False, f"refused with {m.sqlstate(e)}", str(e))
            v = s.get(model, 4).version
            r = s.execute(sa.update(model).where(model.id == 4, model.version == v)
                          .values(body="bulk"))
            s.commit()
        return (r.rowcount == 1 and db_row(model, 4) == ("bulk", v + 1),
                "refused (09000); with the version in WHERE: checked")
    m.check(name, "bulk write", bulk)
    m.cell(name, "helper write", "n/a (none)", True)

    def delete():
        a, b = Session(engine), Session(engine)
        da, db = a.get(model, 5), b.get(model, 5)
        da.body = "A"
        a.commit()
        b.delete(db)
        try:
            b.commit()
            return (False, "a stale delete went through")
        except StaleDataError:
            b.rollback()
        a.delete(da)
        a.commit()
        a.close()
        b.close()
        with Session(engine) as s:
            gone = s.get(model, 5) is None
        return (gone, "checked (stale: StaleDataError)")
    m.check(name, "delete", delete)

m.finish()
