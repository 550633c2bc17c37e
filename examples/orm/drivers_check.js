// lockctl.update_versioned() through Node.js drivers: node-postgres (pg) and
// postgres.js (postgres).  Which overload each binds, with an integer key, a
// uuid key, a composite key given as an object, and a stale version.
//
//   node examples/orm/drivers_check.js "host=... port=... dbname=... user=..."
//
// Run after drivers_check.py, which makes the tables; each driver uses
// rows of its own.
'use strict';

const { Client } = require('pg');
const postgres = require('postgres');
const m = require('./matrixlib');

const params = m.connParams(process.argv[2]);
const U = 'b0eebc99-9c0b-4ef8-bb6d-6bb9bd380a12';

async function main() {
  await m.setupSql(params, `
    INSERT INTO dv_int VALUES (11, 'seed', NULL), (12, 'seed', NULL) ON CONFLICT DO NOTHING;
    INSERT INTO dv_uuid VALUES ('${U}', 'seed', NULL) ON CONFLICT DO NOTHING;
    INSERT INTO dv_ck VALUES (11, 'x y', 'seed', NULL), (12, 'x y', 'seed', NULL) ON CONFLICT DO NOTHING;`);

  // node-postgres sends every parameter untyped: the text form is bound,
  // and the key is converted to the key column's type.
  const name = 'node-postgres';
  m.row(name, 'driver', '');
  const c = new Client(params);
  await c.connect();
  const q = 'SELECT lockctl.update_versioned($1, $2, $3, $4) AS v';
  await m.check(name, 'integer key', async () => {
    const r = await c.query(q, ['dv_int', 11, 1, { body: 'pg' }]);
    return [Number(r.rows[0].v) === 2, 'works (the text form, converted)'];
  });
  await m.check(name, 'uuid key', async () => {
    const r = await c.query(q, ['dv_uuid', U, 1, { body: 'pg' }]);
    return [Number(r.rows[0].v) === 2, 'works'];
  });
  await m.check(name, 'composite key as object', async () => {
    const r = await c.query(q, ['dv_ck', { a: 11, b: 'x y' }, 1, {}]);
    let msg = null;
    try { await c.query(q, ['dv_ck', { a: 11 }, 2, {}]); } catch (e) { msg = e.message; }
    return [Number(r.rows[0].v) === 2 && /^key of lockctl.update_versioned\(\) must be a JSON object/.test(msg),
            'works (sent as JSON); a wrong object: an error naming the argument', msg];
  });
  await m.check(name, 'stale version', async () => {
    let code = null;
    try { await c.query(q, ['dv_int', 11, 1, {}]); } catch (e) { code = e.code; }
    return [code === '40001', '40001', code];
  });
  await c.end();

  // postgres.js asks the server for the parameter types: the text form,
  // to which it sends a number as its text.  An object for a text
  // parameter is not JSON unless sql.json() says so.
  const pname = 'postgres.js';
  m.row(pname, 'driver', '');
  const sql = postgres({ host: params.host, port: params.port, database: params.database,
                         username: params.user, password: params.password, max: 1,
                         onnotice: () => {} });
  await m.check(pname, 'integer key', async () => {
    const [r] = await sql`SELECT lockctl.update_versioned(${'dv_int'}, ${12}, ${1}, ${sql.json({ body: 'pjs' })}) AS v`;
    return [Number(r.v) === 2, 'works (the text form, converted)'];
  });
  await m.check(pname, 'uuid key', async () => {
    const [r] = await sql`SELECT lockctl.update_versioned(${'dv_uuid'}, ${U}, ${2}, ${sql.json({ body: 'pjs' })}) AS v`;
    return [Number(r.v) === 3, 'works'];
  });
  await m.check(pname, 'composite key as object', async () => {
    const [r] = await sql`SELECT lockctl.update_versioned(${'dv_ck'}, ${sql.json({ a: 12, b: 'x y' })}, ${1}, ${sql.json({})}) AS v`;
    let msg = null;
    try {
      await sql`SELECT lockctl.update_versioned(${'dv_ck'}, ${{ a: 12, b: 'x y' }}, ${2}, ${sql.json({})}) AS v`;
    } catch (e) { msg = e.message; }
    return [Number(r.v) === 2 && /^key of lockctl.update_versioned\(\) must be a JSON object/.test(msg || ''),
            '`sql.json(obj)` works; a bare object (sent as text): an error naming the argument', msg];
  });
  await m.check(pname, 'stale version', async () => {
    let code = null;
    try { await sql`SELECT lockctl.update_versioned(${'dv_int'}, ${12}, ${1}, ${sql.json({})})`; } catch (e) { code = e.code; }
    return [code === '40001', '40001', code];
  });
  await sql.end();
}

main().then(m.finish, (e) => { console.log(`not ok - drivers: ${e.stack}`); process.exitCode = 1; });
