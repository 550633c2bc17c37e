#!/usr/bin/python3
"""Django (Debian's python3-django) against lockctl, mode 'strict'.

    /usr/bin/python3 examples/orm/django_check.py "host=... port=... dbname=... user=..."

Django has no optimistic locking of its own: its save() sends every field,
so a model with a version field sends the version it read, and lockctl
checks it (SET version = <read>: a stale one is 40001).  The row then holds
read + 1, which the model's save() below keeps in step.  QuerySet.update()
and delete() by key alone do not compare the version: refused, unless the
version read is among their filters.
"""

import sys
import threading

import django
from django.conf import settings

import matrixlib as m

DSN = sys.argv[1]
P = dict(p.split("=", 1) for p in DSN.split())
settings.configure(
    DATABASES={"default": {"ENGINE": "django.db.backends.postgresql", "NAME": P["dbname"],
                           "USER": P.get("user", ""), "PASSWORD": P.get("password", ""),
                           "HOST": P["host"], "PORT": P["port"]}},
    INSTALLED_APPS=[], USE_TZ=True, DEFAULT_AUTO_FIELD="django.db.models.AutoField")
django.setup()

from django.db import connection, models, transaction  # noqa: E402  (after setup)
from django.db.models import F  # noqa: E402

NAME = "Django (version field)"


class Versioned(models.Model):
    """The configuration lockctl asks of Django: a version field, and a save()
    that follows the version lockctl stored (the version sent plus one)."""
    version = models.BigIntegerField(default=1)

    class Meta:
        abstract = True

    def save(self, *args, **kwargs):
        updating = not self._state.adding
        super().save(*args, **kwargs)
        if updating:
            self.version += 1


class Doc(Versioned):
    body = models.TextField(null=True)
    n = models.IntegerField(default=0)

    class Meta:
        app_label = "lockctl_matrix"
        db_table = "dj_doc"


m.setup_sql(DSN, """
DROP TABLE IF EXISTS dj_doc;
CREATE TABLE dj_doc (id int PRIMARY KEY, body text, n int NOT NULL DEFAULT 0,
                     version bigint NOT NULL DEFAULT 1);
SELECT lockctl.enable_versioning('dj_doc');
INSERT INTO dj_doc (id, body) SELECT g, 'seed' FROM generate_series(1, 6) g;
""")
m.row(NAME, "strict", "a `version` field and a `save()` that adds one to it after an update "
      "(docs/versioning.md); `QuerySet.update()` and `delete()` with `version=read` in the filter")


def db_row(pk):
    d = Doc.objects.get(pk=pk)
    return (d.body, d.version)


def normal():
    d = Doc.objects.get(pk=1)
    d.body = "first"
    d.save()
    d.body = "second"
    d.save()
    return (db_row(1) == ("second", 3) and d.version == 3, "ok", str(db_row(1)))


def sequential():
    a, b = Doc.objects.get(pk=2), Doc.objects.get(pk=2)
    a.body = "A"
    a.save()
    b.body = "B"
    code = None
    try:
        b.save()
    except django.db.Error as e:
        code = f"{type(e).__name__} {m.sqlstate(e)}"
    return (code == "OperationalError 40001" and db_row(2)[0] == "A", "OperationalError (40001)", f"code {code}")


def concurrent():
    a, b = Doc.objects.get(pk=3), Doc.objects.get(pk=3)
    out = {}

    def writer_b():
        try:
            b.body = "B"
            b.save()
            out["b"] = "saved"
        except django.db.Error as e:
            out["b"] = f"{type(e).__name__} {m.sqlstate(e)}"
        finally:
            connection.close()      # this thread's connection
    with transaction.atomic():
        a.body = "A"
        a.save()                    # holds the row lock
        t = threading.Thread(target=writer_b)
        t.start()
        waited = m.wait_for_lock_wait(DSN, "dj_doc")
    t.join(m.BOUND)
    return (waited and out.get("b") == "OperationalError 40001" and db_row(3)[0] == "A",
            "OperationalError (40001)", f"waited={waited} b={out.get('b')}")


def bulk():
    code = None
    try:
        with transaction.atomic():
            Doc.objects.filter(pk=4).update(body="bulk")
    except django.db.Error as e:
        code = m.sqlstate(e)
    v = Doc.objects.get(pk=4).version
    n = Doc.objects.filter(pk=4, version=v).update(body="bulk")
    return (code == "09000" and n == 1 and db_row(4) == ("bulk", v + 1),
            "update(): refused (09000); with `version=read` in the filter: checked", f"code {code}")


def helper():
    d = Doc.objects.get(pk=5)
    d.n = F("n") + 1
    d.save()
    d.refresh_from_db()
    return (d.n == 1 and d.version == 2, "F() expressions in save(): checked", str(db_row(5)))


def delete():
    d = Doc.objects.get(pk=6)
    code = None
    try:
        with transaction.atomic():
            d.delete()
    except django.db.Error as e:
        code = m.sqlstate(e)
    stale = Doc.objects.filter(pk=6, version=d.version + 1).delete()[0]
    done = Doc.objects.filter(pk=6, version=d.version).delete()[0]
    return (code == "09000" and stale == 0 and done == 1,
            "delete(): refused (09000); `filter(version=read).delete()`: checked",
            f"code {code} stale {stale} done {done}")


m.check(NAME, "normal update", normal)
m.check(NAME, "sequential conflict", sequential)
m.check(NAME, "concurrent conflict", concurrent)
m.check(NAME, "bulk write", bulk)
m.check(NAME, "helper write", helper)
m.check(NAME, "delete", delete)
m.finish()
