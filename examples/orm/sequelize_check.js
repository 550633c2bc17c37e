// Sequelize (npm, 6) against lockctl.
//
//   node examples/orm/sequelize_check.js "host=... port=... dbname=... user=..."
//
// With version: true, instance.save() sends SET ..., version = read + 1
// WHERE id = $n AND version = read: checked in every mode, and a stale one
// matches no row, which Sequelize raises as OptimisticLockError.
// Model.update() and instance.increment() do not compare the version:
// refused.  destroy() deletes by key alone: mode 'orm' lets it.
'use strict';

const { Sequelize, DataTypes, OptimisticLockError } = require('sequelize');
const m = require('./matrixlib');

const params = m.connParams(process.argv[2]);
const NAME = 'Sequelize (version: true)';

async function main() {
  await m.setupSql(params, `
    DROP TABLE IF EXISTS sq_doc;
    CREATE TABLE sq_doc (id int PRIMARY KEY, body text, n int NOT NULL DEFAULT 0, version int NOT NULL DEFAULT 0);
    SELECT lockctl.enable_versioning('sq_doc', 'version', 'orm');
    INSERT INTO sq_doc (id, body) SELECT g, 'seed' FROM generate_series(1, 6) g;`);
  const seq = new Sequelize(params.database, params.user, params.password || null, {
    host: params.host, port: params.port, dialect: 'postgres', logging: false,
    pool: { max: 4 } });
  const Doc = seq.define('Doc', {
    id: { type: DataTypes.INTEGER, primaryKey: true },
    body: DataTypes.TEXT,
    n: DataTypes.INTEGER,
  }, { tableName: 'sq_doc', timestamps: false, version: true });
  const dbRow = async (id) => (await Doc.findByPk(id)).get({ plain: true });
  m.row(NAME, 'orm', '`version: true` in the model options; mode `orm` for `destroy()`, ' +
        'which deletes by key alone (mode `strict` refuses it)');

  await m.check(NAME, 'normal update', async () => {
    const d = await Doc.findByPk(1);
    d.body = 'first';
    await d.save();
    d.body = 'second';
    await d.save();
    const r = await dbRow(1);
    return [r.body === 'second' && r.version === 2 && d.version === 2, 'ok', JSON.stringify(r)];
  });

  await m.check(NAME, 'sequential conflict', async () => {
    const a = await Doc.findByPk(2);
    const b = await Doc.findByPk(2);
    a.body = 'A';
    await a.save();
    b.body = 'B';
    let err = null;
    try { await b.save(); } catch (e) { err = e; }
    const r = await dbRow(2);
    return [err instanceof OptimisticLockError && r.body === 'A', 'OptimisticLockError',
            `${err} ${JSON.stringify(r)}`];
  });

  await m.check(NAME, 'concurrent conflict', async () => {
    const a = await Doc.findByPk(3);
    const b = await Doc.findByPk(3);
    const t = await seq.transaction();
    a.body = 'A';
    await a.save({ transaction: t });                      // holds the row lock
    b.body = 'B';
    const pb = b.save().then(() => null, (e) => e);
    const waited = await m.waitForLockWait(params, 'sq_doc');
    await t.commit();
    const err = await pb;
    const r = await dbRow(3);
    return [waited && err instanceof OptimisticLockError && r.body === 'A', 'OptimisticLockError',
            `waited=${waited} ${err} ${JSON.stringify(r)}`];
  });

  await m.check(NAME, 'bulk write', async () => {
    let code = null;
    try { await Doc.update({ body: 'bulk' }, { where: { id: 4 } }); } catch (e) { code = m.sqlstate(e); }
    const v = (await dbRow(4)).version;
    const [n] = await Doc.update({ body: 'bulk' }, { where: { id: 4, version: v } });
    const r = await dbRow(4);
    return [code === '09000' && n === 1 && r.body === 'bulk' && r.version === v + 1,
            'Model.update(): refused (09000); with the version in where: checked', `code ${code}`];
  });

  await m.check(NAME, 'helper write', async () => {
    const d = await Doc.findByPk(5);
    let code = null;
    try { await d.increment('n'); } catch (e) { code = m.sqlstate(e); }
    const r = await dbRow(5);
    return [code === '09000' && r.n === 0, 'increment(): refused (09000)', `code ${code}`];
  });

  await m.check(NAME, 'delete', async () => {
    const d = await Doc.findByPk(6);
    await d.destroy();
    const gone = (await Doc.findByPk(6)) === null;
    return [gone, 'destroy(): by key (mode orm)'];
  });

  await seq.close();
}

main().then(m.finish, (e) => { console.log(`not ok - ${NAME}: ${e.stack}`); process.exitCode = 1; });
