#!/usr/bin/python3
"""A payment webhook handled exactly once with lockctl's idempotent
requests: the provider delivers the same event several times at once (its
retries crossed a slow answer), then once more later; the customer is
charged once, and every copy gets the first one's answer.

    /usr/bin/python3 webhook.py [--event ID] [--amount CENTS] [--copies N]
    /usr/bin/python3 webhook.py "host=db.example port=5432 dbname=app"

The server comes from the connection string if one is given, otherwise from
the standard libpq environment variables (PGHOST, PGPORT, ...).  It needs
the lockctl extension, and the right to create (once) and write the table
webhook_example_charges.

Each delivery runs lockctl.run_once (clients/python): in one transaction,
lockctl.claim_request(event id), the charge, lockctl.complete_request(event
id, answer).  The claim commits with the charge or not at all, so a copy
that arrives while the first is in flight waits for it and replays its
answer, and a copy whose payload differs (same event id, another amount) is
refused: the fingerprint is a hash of the payload.

Prints one line per delivery and a summary line; exit status 0 when the
customer was charged exactly once and every copy got the same answer, 1
otherwise.
"""

import argparse
import hashlib
import json
import os
import sys
import threading

import psycopg

try:
    import lockctl                   # pip install ./clients/python
except ImportError:                  # or straight from a checkout of lockctl
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "clients", "python"))
    import lockctl

TABLE_DDL = """
CREATE TABLE IF NOT EXISTS webhook_example_charges (
    id         bigserial PRIMARY KEY,
    event      text        NOT NULL,
    amount     int         NOT NULL,
    charged_at timestamptz NOT NULL DEFAULT now()
)"""


def fingerprint(payload):
    """A hash of what the request asks, so that a key reused for another
    request is refused rather than answered with the first one's result."""
    canonical = json.dumps(payload, sort_keys=True, separators=(",", ":"))
    return "sha256:" + hashlib.sha256(canonical.encode()).hexdigest()


def charge(conn, payload):
    """The effect: one charge row.  Its answer is what every copy replays."""
    charge_id = conn.execute(
        "INSERT INTO webhook_example_charges (event, amount) VALUES (%s, %s) RETURNING id",
        (payload["id"], payload["amount"])).fetchone()[0]
    return {"status": 201, "charge": charge_id, "amount": payload["amount"]}


def deliver(dsn, payload):
    """One delivery of the webhook, on its own connection, as the provider's
    retries reach different workers: (answer, replayed) or the refusal."""
    with psycopg.connect(dsn) as conn:
        try:
            return lockctl.run_once(conn, "webhook:" + payload["id"], charge, payload,
                                    fingerprint=fingerprint(payload), wait=30)
        except psycopg.Error as e:
            return ("refused", e.sqlstate, str(e).splitlines()[0]), None


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("dsn", nargs="?", default="")
    ap.add_argument("--event", default="evt_example_1")
    ap.add_argument("--amount", type=int, default=4200)
    ap.add_argument("--copies", type=int, default=4, help="deliveries at once")
    a = ap.parse_args()
    if a.copies < 1:
        ap.error("--copies must be at least 1")

    with psycopg.connect(a.dsn, autocommit=True) as conn:
        conn.execute(TABLE_DDL)
        before = conn.execute("SELECT count(*) FROM webhook_example_charges WHERE event = %s",
                              (a.event,)).fetchone()[0]
    if before:
        print(f"event {a.event} was charged before this run: use another --event", file=sys.stderr)
        return 1

    payload = {"id": a.event, "type": "payment_intent.succeeded", "amount": a.amount}
    answers = [None] * a.copies
    # The copies at once: each its own connection and thread, started together.
    start = threading.Barrier(a.copies)

    def copy(i):
        start.wait()
        answers[i] = deliver(a.dsn, payload)
    threads = [threading.Thread(target=copy, args=(i,)) for i in range(a.copies)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    # The late retry, after all of them answered; then a forged copy: the
    # same event id with another amount.
    answers.append(deliver(a.dsn, payload))
    forged = deliver(a.dsn, dict(payload, amount=a.amount * 100))

    charged = replayed = 0
    for i, (answer, was_replayed) in enumerate(answers, 1):
        what = "late retry" if i > a.copies else "at once"
        if was_replayed is None:
            print(f"delivery {i} ({what}): refused {answer[1]}: {answer[2]}")
            continue
        charged += not was_replayed
        replayed += bool(was_replayed)
        print(f"delivery {i} ({what}): {'replayed' if was_replayed else 'charged'}, "
              f"answer {json.dumps(answer, sort_keys=True)}")
    refused = forged[1] is None and forged[0][1] == "22023"
    print(f"forged copy (amount {a.amount * 100}): "
          + (f"refused {forged[0][1]}: {forged[0][2]}" if forged[1] is None else "accepted"))

    with psycopg.connect(a.dsn, autocommit=True) as conn:
        rows = conn.execute("SELECT count(*), coalesce(sum(amount), 0) FROM webhook_example_charges "
                            "WHERE event = %s", (a.event,)).fetchone()
    same = len({json.dumps(ans, sort_keys=True) for ans, r in answers if r is not None}) == 1
    ok = (charged == 1 and replayed == a.copies and same and refused
          and rows[0] == 1 and rows[1] == a.amount)
    print(f"summary: deliveries={len(answers)} charged={charged} replayed={replayed} "
          f"forged_refused={'yes' if refused else 'no'} charges={rows[0]} amount={rows[1]} "
          f"same_answer={'yes' if same else 'no'} {'ok' if ok else 'WRONG'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
