#!/usr/bin/env node
// A checkout flow on lockctl's reservations, with the pg driver.
//
//   npm ci
//   node checkout.js                          # server from PGHOST, PGPORT, ...
//   node checkout.js postgres://app@db/shop   # or a connection string
//
// Customers put a ticket in their cart at the same moment: each gets a hold
// on the pool (or "sold out"), with an idempotency key so that a retried
// request never takes a second ticket.  Those who pay confirm their hold;
// those who walk away just leave: lockctl's background worker gives their
// tickets back when the hold's time is up, and announces it (NOTIFY
// lockctl_expired, which the example LISTENs to).  A payment that arrives after the
// hold expired is refused, so the shop never charges for a ticket it no
// longer holds.
//
// It uses lockctl's Node.js library (clients/node: ids come back as BigInt,
// durations are milliseconds or strings with a unit).  Needs the lockctl
// extension, and the right to create and drop the pool (an administrative
// act: see lockctl's README, "Privileges").
//
// Options: --pool NAME (example:concert), --capacity N (5), --customers N (8),
// --ttl SECONDS (2): the time a customer has to pay.
// Exit status: 0 when every number adds up, 1 otherwise.

'use strict';

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
const poolName = option('pool', 'example:concert');
const capacity = Number(option('capacity', 5));
const customers = Number(option('customers', 8));
const ttl = Number(option('ttl', 2));

// Every statement is bounded; the driver's own pool gives each customer a
// connection of its own.
const db = new Pool({
  connectionString,
  max: customers + 2,
  statement_timeout: 10000,
  connectionTimeoutMillis: 10000,
  application_name: 'lockctl-checkout-example',
});

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

// Of the customers who get a ticket, every second one walks away.
let holdsTaken = 0;
const abandoned = [];                       // their hold ids

// One customer: reserve (retried once, as a flaky network makes clients do),
// then pay or walk away.
async function customer(i) {
  const client = await db.connect();
  try {
    // ttl in milliseconds; the key makes a retried request return the same hold.
    const reserve = () => lockctl.reserve(client, poolName,
      { quantity: 1, holder: `customer-${i}`, ttl: ttl * 1000, idempotencyKey: `order-${i}` });
    const hold = await reserve();
    if (hold === null) {
      console.log(`customer ${i}: sold out`);
      return 'sold out';
    }
    const again = await reserve();          // the retry: same key, same hold
    if (again !== hold) throw new Error(`retry of order-${i} took a second hold ${again}`);
    holdsTaken += 1;
    if (holdsTaken % 2 === 0) {
      abandoned.push(String(hold));
      console.log(`customer ${i}: hold ${hold}, walked away without paying`);
      return 'walked away';
    }
    await sleep(50);                        // the payment provider
    await lockctl.confirm(client, hold);
    console.log(`customer ${i}: hold ${hold} (retried: same hold), paid and confirmed`);
    return 'paid';
  } finally {
    client.release();
  }
}

// A customer whose payment arrives after the hold's time is up.
async function latePayer() {
  const client = await db.connect();
  try {
    const hold = await lockctl.reserve(client, poolName,
      { holder: 'late payer', ttl: '1 s', idempotencyKey: 'order-late' });
    if (hold === null) return 'sold out';
    await sleep(1500);
    try {
      await lockctl.confirm(client, hold);
      console.log(`late payer: hold ${hold} confirmed after its expiry (WRONG)`);
      return 'confirmed late';
    } catch (e) {
      console.log(`late payer: payment refused, hold ${hold} had expired (${e.code}: ${e.message})`);
      return 'refused';
    }
  } finally {
    client.release();
  }
}

async function available(client) {
  return Number(await lockctl.available(client, poolName));   // a BigInt: small here
}

// Poll available() until it reaches want, for at most bound seconds.
async function waitAvailable(client, want, bound) {
  const deadline = Date.now() + bound * 1000;
  let now = await available(client);
  while (now < want && Date.now() < deadline) {
    await sleep(200);
    now = await available(client);
  }
  return now;
}

async function main() {
  const admin = await db.connect();
  // The expiry worker announces every hold it expires: NOTIFY
  // lockctl_expired, with the hold's id as payload.
  const listener = await db.connect();
  const notified = new Set();
  listener.on('notification', (msg) => {
    if (msg.channel === 'lockctl_expired') notified.add(msg.payload);
  });
  await listener.query('LISTEN lockctl_expired');
  try {
    // A fresh pool for the example.
    try {
      await admin.query('SELECT lockctl.drop_pool($1)', [poolName]);
    } catch (e) {
      if (e.code !== '42704') throw e;       // undefined_object: not there yet
    }
    await admin.query('SELECT lockctl.create_pool($1, $2)', [poolName, capacity]);
    console.log(`pool ${poolName}: ${capacity} tickets, ${customers} customers, ${ttl} s to pay`);

    // Everyone at once.
    const outcomes = await Promise.all(
      Array.from({ length: customers }, (_, i) => customer(i + 1)));
    const count = (what) => outcomes.filter((o) => o === what).length;
    const paid = count('paid');
    const walkedAway = count('walked away');
    const soldOut = count('sold out');
    const afterRush = await available(admin);
    console.log(`after the rush: ${paid} paid, ${walkedAway} holds unpaid, ${soldOut} sold out, ${afterRush} available`);

    // Nobody cancels the unpaid holds: the worker returns them when their
    // time is up.  Wait for that, with a bound.
    const want = capacity - paid;
    const now = await waitAvailable(admin, want, ttl + 10);
    console.log(`${now - afterRush} unpaid tickets came back by themselves: ${now} available`);
    const deadlineNotify = Date.now() + 5000;
    while (abandoned.some((id) => !notified.has(id)) && Date.now() < deadlineNotify) {
      await sleep(100);
    }
    const announced = abandoned.filter((id) => notified.has(id));
    console.log(`the worker announced them: NOTIFY lockctl_expired for hold ${announced.join(', ') || '(none)'}`);

    const late = await latePayer();
    const final = await waitAvailable(admin, want, 10);

    const ok = paid + walkedAway === Math.min(capacity, customers) &&
      announced.length === abandoned.length &&
      soldOut === Math.max(0, customers - capacity) &&
      now === want && late === 'refused' && final === want;
    console.log(`summary: capacity=${capacity} paid=${paid} sold_out=${soldOut} ` +
      `expired=${now - afterRush} notified=${announced.length} late_payment=${late} ` +
      `available=${final} ${ok ? 'ok' : 'WRONG'}`);
    return ok ? 0 : 1;
  } finally {
    await listener.query('UNLISTEN *').catch(() => {});
    listener.release();
    admin.release();
  }
}

main()
  .then((status) => { process.exitCode = status; })
  .catch((e) => {
    console.error(`error: ${e.code ? e.code + ' ' : ''}${e.message}`);
    process.exitCode = 1;
  })
  .finally(() => db.end());
