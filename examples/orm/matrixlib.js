// What the Node.js checks of the ORM matrix share (examples/orm/): the
// same output as matrixlib.py (TAP-style lines, ROW and CELL lines for
// matrix.py), the connection parameters, and the wait for a second writer
// to be blocked on the first one's row lock.
'use strict';

const { Client } = require('pg');

const BOUND_MS = 15000;
let failed = 0;

// "host=/path port=5432 dbname=db user=u [password=p]" -> pg's options
function connParams(dsn) {
  const p = Object.fromEntries(dsn.trim().split(/\s+/).map((kv) => {
    const i = kv.indexOf('=');
    return [kv.slice(0, i), kv.slice(i + 1)];
  }));
  return { host: p.host, port: Number(p.port), database: p.dbname, user: p.user,
           password: p.password };
}

function row(name, mode, config) {
  console.log(`ROW\t${name}\t${mode}\t${config}`);
}

function cell(name, column, outcome, ok, detail) {
  if (!ok) failed += 1;
  console.log(`${ok ? 'ok' : 'not ok'} - ${name}: ${column}: ${outcome}`);
  if (!ok && detail) {
    for (const line of String(detail).split('\n')) console.log(`#   ${line}`);
  }
  console.log(`CELL\t${name}\t${column}\t${ok ? outcome : 'FAILED: ' + outcome}`);
}

// fn() -> [ok, outcome, detail]; a throw is a failed check
async function check(name, column, fn) {
  try {
    const [ok, outcome, detail] = await fn();
    cell(name, column, outcome, ok, detail);
  } catch (e) {
    cell(name, column, 'error', false, e && e.stack ? e.stack : String(e));
  }
}

// The SQLSTATE of a driver or ORM error (pg's code, wrapped by the ORMs).
function sqlstate(e) {
  for (let x = e, i = 0; x && i < 5; x = x.parent || x.original || x.driverError || x.cause, i++) {
    if (typeof x.code === 'string' && x.code.length === 5) return x.code;
  }
  return null;
}

async function waitForLockWait(params, table) {
  const mon = new Client(params);
  await mon.connect();
  try {
    const deadline = Date.now() + BOUND_MS;
    while (Date.now() < deadline) {
      const r = await mon.query(
        "SELECT count(*)::int AS n FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND query ILIKE $1",
        [`%${table}%`]);
      if (r.rows[0].n > 0) return true;
      await new Promise((res) => setTimeout(res, 20));
    }
    return false;
  } finally {
    await mon.end();
  }
}

async function setupSql(params, sql) {
  const c = new Client(params);
  await c.connect();
  try { await c.query(sql); } finally { await c.end(); }
}

function finish() {
  process.exitCode = failed ? 1 : 0;
}

module.exports = { connParams, row, cell, check, sqlstate, waitForLockWait, setupSql, finish };
