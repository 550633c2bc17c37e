// TypeORM (npm, 0.3) against lockctl, mode 'strict'.
//
//   node examples/orm/typeorm_check.js "host=... port=... dbname=... user=..."
//
// TypeORM's save() sends SET version = version + 1 WHERE id = $n: it never
// compares the version, so lockctl refuses it (09000) and it cannot lose a
// write.  The write that works is update() with the version read among its
// criteria (TypeORM adds version = version + 1); a result that affected no
// row is the conflict, raised as TypeORM's OptimisticLockVersionMismatchError.
'use strict';

require('reflect-metadata');
const { DataSource, EntitySchema, OptimisticLockVersionMismatchError } = require('typeorm');
const m = require('./matrixlib');

const params = m.connParams(process.argv[2]);
const NAME = 'TypeORM (@VersionColumn)';

const Doc = new EntitySchema({
  name: 'Doc',
  tableName: 'to_doc',
  columns: {
    id: { type: 'int', primary: true },
    body: { type: 'text', nullable: true },
    n: { type: 'int', default: 0 },
    version: { type: 'int', version: true },
  },
});

// The write lockctl asks of TypeORM: the version read in the criteria.
async function saveVersioned(manager, doc, changes) {
  const r = await manager.update(Doc, { id: doc.id, version: doc.version }, changes);
  if (r.affected !== 1) {
    throw new OptimisticLockVersionMismatchError('Doc', doc.version, undefined);
  }
  Object.assign(doc, changes);
  doc.version += 1;
}

async function main() {
  await m.setupSql(params, `
    DROP TABLE IF EXISTS to_doc;
    CREATE TABLE to_doc (id int PRIMARY KEY, body text, n int NOT NULL DEFAULT 0, version int NOT NULL);
    SELECT lockctl.enable_versioning('to_doc');
    INSERT INTO to_doc (id, body) SELECT g, 'seed' FROM generate_series(1, 6) g;`);
  const ds = new DataSource({ type: 'postgres', ...params, username: params.user,
                              entities: [Doc], poolSize: 4, logging: false });
  await ds.initialize();
  const repo = ds.getRepository(Doc);
  const dbRow = (id) => repo.findOneByOrFail({ id });
  m.row(NAME, 'strict', '`@VersionColumn()` (`version: true`); write with ' +
        '`repository.update({ id, version: read }, changes)`, `affected === 0` is ' +
        '`OptimisticLockVersionMismatchError`; `save()` of a loaded entity is refused');

  await m.check(NAME, 'normal update', async () => {
    const d = await dbRow(1);
    await saveVersioned(ds.manager, d, { body: 'first' });
    await saveVersioned(ds.manager, d, { body: 'second' });
    const r = await dbRow(1);
    // save(): refused, the row unchanged
    d.body = 'by save()';
    let code = null;
    try { await repo.save(d); } catch (e) { code = m.sqlstate(e); }
    const after = await dbRow(1);
    return [r.body === 'second' && r.version === 3 && d.version === 3 && code === '09000' &&
            after.body === 'second',
            'update() with the version: ok; save(): refused (09000)',
            `row ${JSON.stringify(r)}, save() ${code}`];
  });

  await m.check(NAME, 'sequential conflict', async () => {
    const a = await dbRow(2);
    const b = await dbRow(2);
    await saveVersioned(ds.manager, a, { body: 'A' });
    let err = null;
    try { await saveVersioned(ds.manager, b, { body: 'B' }); } catch (e) { err = e; }
    const r = await dbRow(2);
    return [err instanceof OptimisticLockVersionMismatchError && r.body === 'A',
            'OptimisticLockVersionMismatchError', `${err} row ${JSON.stringify(r)}`];
  });

  await m.check(NAME, 'concurrent conflict', async () => {
    const a = await dbRow(3);
    const b = await dbRow(3);
    const qr = ds.createQueryRunner();
    await qr.connect();
    await qr.startTransaction();
    await saveVersioned(qr.manager, a, { body: 'A' });     // holds the row lock
    const pb = saveVersioned(ds.manager, b, { body: 'B' }).then(() => null, (e) => e);
    const waited = await m.waitForLockWait(params, 'to_doc');
    await qr.commitTransaction();
    await qr.release();
    const err = await pb;
    const r = await dbRow(3);
    return [waited && err instanceof OptimisticLockVersionMismatchError && r.body === 'A',
            'OptimisticLockVersionMismatchError', `waited=${waited} ${err} row ${JSON.stringify(r)}`];
  });

  await m.check(NAME, 'bulk write', async () => {
    let code = null;
    try { await repo.update({ id: 4 }, { body: 'bulk' }); } catch (e) { code = m.sqlstate(e); }
    const r = await dbRow(4);
    return [code === '09000' && r.body === 'seed', 'update() without the version: refused (09000)',
            `code ${code}`];
  });

  await m.check(NAME, 'helper write', async () => {
    let code = null;
    try { await repo.increment({ id: 5 }, 'n', 1); } catch (e) { code = m.sqlstate(e); }
    const r = await dbRow(5);
    return [code === '09000' && r.n === 0, 'increment(): refused (09000)', `code ${code}`];
  });

  await m.check(NAME, 'delete', async () => {
    const d = await dbRow(6);
    let code = null;
    try { await repo.delete(6); } catch (e) { code = m.sqlstate(e); }
    const stale = await repo.delete({ id: 6, version: d.version + 1 });
    const ok = await repo.delete({ id: 6, version: d.version });
    return [code === '09000' && stale.affected === 0 && ok.affected === 1,
            'delete({ id, version }): checked; delete(id): refused (09000)',
            `code ${code} stale ${stale.affected} ok ${ok.affected}`];
  });

  await ds.destroy();
}

main().then(m.finish, (e) => { console.log(`not ok - ${NAME}: ${e.stack}`); process.exitCode = 1; });
