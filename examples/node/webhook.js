#!/usr/bin/env node
// A payment webhook handled exactly once with lockctl's idempotent
// requests, with the pg driver: the provider delivers the same event several
// times at once (its retries crossed a slow answer), then once more later;
// the customer is charged once, and every copy gets the first one's answer.
//
//   npm ci
//   node webhook.js                           # server from PGHOST, PGPORT, ...
//   node webhook.js postgres://app@db/shop    # or a connection string
//
// Each delivery runs lockctl.runOnce (clients/node): in one transaction,
// lockctl.claim_request(event id), the charge, lockctl.complete_request(event
// id, answer).  The claim commits with the charge or not at all, so a copy
// that arrives while the first is in flight waits for it and replays its
// answer, and a copy whose payload differs (same event id, another amount)
// is refused (22023): the fingerprint is a hash of the payload.  Needs the
// lockctl extension, and the right to create (once) and write the table
// webhook_example_charges.
//
// Options: --event ID (evt_example_node_1), --amount CENTS (4200),
// --copies N (4): the deliveries at once.
// Exit status: 0 when the customer was charged exactly once and every copy
// got the same answer, 1 otherwise.

'use strict';

const crypto = require('node:crypto');
const { Pool } = require('pg');
let lockctl;
try {
  lockctl = require('lockctl');        // npm install (package.json: file:../../clients/node)
} catch (e) {
  lockctl = require('../../clients/node');   // straight from a checkout of lockctl
}

function option(name, fallback) {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 && i + 1 < process.argv.length ? process.argv[i + 1] : fallback;
}
const connectionString = process.argv[2] && !process.argv[2].startsWith('--') ? process.argv[2] : undefined;
const event = option('event', 'evt_example_node_1');
const amount = Number(option('amount', 4200));
const copies = Number(option('copies', 4));
if (!Number.isInteger(copies) || copies < 1 || !Number.isInteger(amount)) {
  console.error('--copies must be a positive integer, --amount an integer');
  process.exit(1);
}

// Every delivery its own connection, as the provider's retries reach
// different workers; every statement bounded.
const db = new Pool({
  connectionString,
  max: copies + 2,
  statement_timeout: 30000,
  connectionTimeoutMillis: 10000,
  application_name: 'lockctl-webhook-example',
});

// A hash of what the request asks, so that a key reused for another
// request is refused rather than answered with the first one's result.
function fingerprint(payload) {
  const canonical = JSON.stringify(Object.keys(payload).sort().reduce((o, k) => ({ ...o, [k]: payload[k] }), {}));
  return `sha256:${crypto.createHash('sha256').update(canonical).digest('hex')}`;
}

// One delivery: { result, replayed }, or { refused: SQLSTATE, message }.
async function deliver(payload) {
  try {
    return await lockctl.runOnce(db, `webhook:${payload.id}`, async (tx) => {
      // The effect: one charge row.  Its answer is what every copy replays.
      const [row] = await tx.query(
        'INSERT INTO webhook_example_charges (event, amount) VALUES ($1, $2) RETURNING id',
        [payload.id, payload.amount]);
      return { status: 201, charge: Number(row.id), amount: payload.amount };
    }, { fingerprint: fingerprint(payload), wait: '30 s' });
  } catch (e) {
    if (!e.code) throw e;
    return { refused: e.code, message: e.message };
  }
}

const sorted = (v) => JSON.stringify(v, Object.keys(v).sort());

async function main() {
  await db.query(`CREATE TABLE IF NOT EXISTS webhook_example_charges (
    id         bigserial PRIMARY KEY,
    event      text        NOT NULL,
    amount     int         NOT NULL,
    charged_at timestamptz NOT NULL DEFAULT now())`);
  const before = await db.query('SELECT count(*)::int AS n FROM webhook_example_charges WHERE event = $1', [event]);
  if (before.rows[0].n > 0) {
    console.error(`event ${event} was charged before this run: use another --event`);
    return 1;
  }

  const payload = { id: event, type: 'payment_intent.succeeded', amount };
  // The copies at once, then the late retry after all of them answered,
  // then a forged copy: the same event id with another amount.
  const answers = await Promise.all(Array.from({ length: copies }, () => deliver(payload)));
  answers.push(await deliver(payload));
  const forged = await deliver({ ...payload, amount: amount * 100 });

  let charged = 0;
  let replayed = 0;
  answers.forEach((a, i) => {
    const what = i >= copies ? 'late retry' : 'at once';
    if (a.refused) {
      console.log(`delivery ${i + 1} (${what}): refused ${a.refused}: ${a.message}`);
      return;
    }
    if (a.replayed) replayed += 1; else charged += 1;
    console.log(`delivery ${i + 1} (${what}): ${a.replayed ? 'replayed' : 'charged'}, answer ${sorted(a.result)}`);
  });
  const refused = forged.refused === '22023';
  console.log(`forged copy (amount ${amount * 100}): ` +
    (forged.refused ? `refused ${forged.refused}: ${forged.message}` : 'accepted'));

  const r = await db.query('SELECT count(*)::int AS n, coalesce(sum(amount), 0)::int AS total ' +
    'FROM webhook_example_charges WHERE event = $1', [event]);
  const same = new Set(answers.filter((a) => !a.refused).map((a) => sorted(a.result))).size === 1;
  const ok = charged === 1 && replayed === copies && same && refused &&
    r.rows[0].n === 1 && r.rows[0].total === amount;
  console.log(`summary: deliveries=${answers.length} charged=${charged} replayed=${replayed} ` +
    `forged_refused=${refused ? 'yes' : 'no'} charges=${r.rows[0].n} amount=${r.rows[0].total} ` +
    `same_answer=${same ? 'yes' : 'no'} ${ok ? 'ok' : 'WRONG'}`);
  return ok ? 0 : 1;
}

main()
  .then((code) => { process.exitCode = code; })
  .catch((e) => { console.error(e); process.exitCode = 1; })
  .finally(() => db.end());
