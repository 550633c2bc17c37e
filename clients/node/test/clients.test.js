'use strict';
// lockctl for Node.js against a real server (PG* environment variables, a
// superuser on a server with lockctl), once with node-postgres and once with
// postgres.js.  Run: node --test test/

const { describe, it, before, after } = require('node:test');
const assert = require('node:assert/strict');
const { spawn } = require('node:child_process');
const path = require('node:path');
const crypto = require('node:crypto');
const lockctl = require('..');
const { drivers } = require('./drivers');

const haveServer = Boolean(process.env.PGHOST || process.env.PGDATABASE);
const unique = (p) => `${p}_${crypto.randomBytes(5).toString('hex')}`;
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// Wait until cond() is truthy, every 20 ms, at most boundMs.
async function poll(cond, boundMs, what) {
  const deadline = Date.now() + boundMs;
  for (;;) {
    const v = await cond();
    if (v) return v;
    if (Date.now() > deadline) throw new Error(`timed out after ${boundMs} ms waiting for ${what}`);
    await sleep(20);
  }
}

// A child process (test/holder.js) read line by line.
class Holder {
  constructor(driver, resource, ttlMs, table) {
    this.proc = spawn(process.execPath, [path.join(__dirname, 'holder.js'), driver, resource, String(ttlMs), table],
      { stdio: ['pipe', 'pipe', 'inherit'] });
    this.lines = [];
    this.ended = false;
    let buf = '';
    this.proc.stdout.on('data', (chunk) => {
      buf += chunk;
      let i;
      while ((i = buf.indexOf('\n')) >= 0) {
        this.lines.push(buf.slice(0, i));
        buf = buf.slice(i + 1);
      }
    });
    this.exited = new Promise((r) => this.proc.on('exit', (code) => { this.ended = true; r(code); }));
  }

  async expect(prefix, boundMs = 20000) {
    return poll(() => {
      const i = this.lines.findIndex((l) => l.startsWith(prefix));
      if (i >= 0) return this.lines.splice(0, i + 1)[i];
      if (this.ended) throw new Error(`holder exited before printing "${prefix}": ${this.lines}`);
      return null;
    }, boundMs, `the holder to print "${prefix}"`);
  }

  send(line) { this.proc.stdin.write(`${line}\n`); }
  pause() { this.proc.kill('SIGSTOP'); }
  resume() { this.proc.kill('SIGCONT'); }

  async finish() {
    this.resume();
    if (!this.ended) this.send('exit');
    const t = setTimeout(() => this.proc.kill('SIGKILL'), 20000);
    const code = await this.exited;
    clearTimeout(t);
    return code;
  }
}

describe('durations, retries and values without a server', () => {
  it('a number is milliseconds, a string needs a unit', () => {
    assert.equal(lockctl.durationMs(1500), 1500);
    assert.equal(lockctl.durationMs('1.5 s'), 1500);
    assert.equal(lockctl.durationMs('1 min 30 s'), 90000);
    assert.equal(lockctl.durationMs('250ms'), 250);
    for (const bad of ['30', 'soon', '5 fortnights', '', '1 s x']) {
      assert.throws(() => lockctl.durationMs(bad), RangeError, bad);
    }
    for (const bad of [null, undefined, 30n, {}, true]) {
      assert.throws(() => lockctl.durationMs(bad), TypeError, String(bad));
    }
    assert.throws(() => lockctl.durationMs(Infinity), RangeError);
  });

  it('retry is bounded, and never retries a lost lease or another SQLSTATE', async () => {
    let calls = 0;
    const conflict = Object.assign(new Error('version conflict'), { code: '40001' });
    await assert.rejects(lockctl.retry(async () => { calls += 1; throw conflict; }, { attempts: 4, baseMs: 1 }),
      (e) => e === conflict);
    assert.equal(calls, 4);
    calls = 0;
    const stale = Object.assign(new Error('fencing token 5 for lease "x" is stale'), { code: '40001' });
    await assert.rejects(lockctl.retry(async () => { calls += 1; throw stale; }, { attempts: 4 }));
    assert.equal(calls, 1);
    calls = 0;
    await assert.rejects(lockctl.retry(async () => {
      calls += 1; throw new lockctl.LeaseLostError('x', 5n, 'gone');
    }, { attempts: 4 }), lockctl.LeaseLostError);
    assert.equal(calls, 1);
    calls = 0;
    const dup = Object.assign(new Error('duplicate'), { code: '23505' });
    await assert.rejects(lockctl.retry(async () => { calls += 1; throw dup; }, { attempts: 4 }));
    assert.equal(calls, 1);
    calls = 0;
    assert.equal(await lockctl.retry(async () => { calls += 1; if (calls < 3) throw conflict; return 'ok'; },
      { attempts: 4, baseMs: 1 }), 'ok');
    assert.equal(calls, 3);
  });
});

for (const [name, d] of Object.entries(drivers)) {
  const skip = !haveServer ? 'no server: set PGHOST, PGPORT, PGDATABASE, PGUSER'
    : !d ? `the ${name} driver is not installed (npm ci in clients/node)` : false;

  describe(`with ${name}`, { skip }, () => {
    let db; let admin;
    const q = async (text, params = []) => (await admin.query(text, params)).rows;
    const one = async (text, params) => Object.values((await q(text, params))[0])[0];
    const cleanups = [];

    before(() => {
      db = d.open();
      admin = drivers.pg ? drivers.pg.open({ max: 3 }) : null;
      if (!admin) throw new Error('the tests need node-postgres for their own setup queries');
    });
    after(async () => {
      for (const c of cleanups.reverse()) await c().catch(() => {});
      await d.close(db);
      await admin.end();
    });

    async function table(ddl) {
      const t = unique('t');
      await q(ddl.replace('{t}', t));
      cleanups.push(() => q(`DROP TABLE ${t}`));
      return t;
    }
    async function pool(capacity) {
      const p = unique('pool');
      await q('SELECT lockctl.create_pool($1, $2)', [p, capacity]);
      cleanups.push(() => q('SELECT lockctl.drop_pool($1)', [p]));
      return p;
    }
    const leaseCount = async (res) => Number(await one('SELECT count(*) FROM lockctl.leases WHERE resource = $1', [res]));

    it('grants a lease with a BigInt token, fences a write, releases', async () => {
      const res = unique('res');
      const t = await table('CREATE TABLE {t} (token bigint)');
      const lease = await lockctl.acquireLease(db, res, { owner: 'w1', ttl: '10 s' });
      assert.equal(typeof lease.token, 'bigint');
      assert.ok(lease.token > 2n ** 48n);
      assert.ok(lease.expiresAt instanceof Date);
      await lease.fenced(db, (tx) => tx.query(`INSERT INTO ${t} VALUES ($1::text::bigint)`, [lease.token.toString()]));
      assert.equal(BigInt(await one(`SELECT token FROM ${t}`)), lease.token);
      assert.equal(await one('SELECT owner FROM lockctl.leases WHERE resource = $1', [res]), 'w1');
      assert.equal(await lease.release(), true);
      assert.equal(await leaseCount(res), 0);
      assert.ok(lease.signal.aborted);
      assert.throws(() => lease.check(), lockctl.LeaseLostError);
    });

    it('answers null (withLease: LeaseNotGrantedError) while another owner holds it', async () => {
      const res = unique('res');
      await lockctl.withLease(db, res, { ttl: 10000 }, async () => {
        assert.equal(await lockctl.acquireLease(db, res, { ttl: 10000, wait: 100 }), null);
        await assert.rejects(lockctl.withLease(db, res, { ttl: 10000 }, async () => assert.fail('granted')),
          lockctl.LeaseNotGrantedError);
      });
    });

    it('keeps the lease alive with its heartbeat (ttl as a number of ms)', async () => {
      const res = unique('res');
      const lease = await lockctl.acquireLease(db, res, { ttl: 600 });
      try {
        const first = lease.expiresAt;
        await poll(() => lease.renewals >= 6, 10000, '6 renewals');
        assert.equal(lease.lost, false, lease.lostReason);
        assert.ok(lease.expiresAt > first);
        const left = Number(await one(
          'SELECT extract(epoch FROM expires_at - clock_timestamp()) FROM lockctl.leases WHERE resource = $1', [res]));
        assert.ok(left > 0 && left <= 0.7, `600 means 600 ms: ${left} s left`);
        await lease.fenced(db, async () => {});
      } finally {
        await lease.release();
      }
    });

    it('stops the next fenced write after a takeover', async () => {
      const res = unique('res');
      const t = await table('CREATE TABLE {t} (token bigint)');
      const events = [];
      const lease = await lockctl.acquireLease(db, res, { ttl: '30 s', renewEvery: '20 s', onLost: (l) => events.push(l) });
      assert.equal(await one('SELECT lockctl.force_release($1)', [res]), true);
      const newer = BigInt(await one("SELECT lockctl.acquire($1, 'next', '30 s')", [res]));
      assert.ok(newer > lease.token);
      await assert.rejects(
        lease.fenced(db, (tx) => tx.query(`INSERT INTO ${t} VALUES ($1::text::bigint)`, [lease.token.toString()])),
        (e) => e instanceof lockctl.LeaseLostError && /is stale/.test(e.reason));
      assert.deepEqual(events, [lease]);
      assert.ok(lease.signal.aborted);
      assert.equal(Number(await one(`SELECT count(*) FROM ${t}`)), 0);
      let ran = false;
      await assert.rejects(lease.fenced(db, async () => { ran = true; }), lockctl.LeaseLostError);
      assert.equal(ran, false);
      assert.equal(await lease.release(), false);
      await q('SELECT lockctl.release($1, $2)', [res, newer.toString()]);
    });

    it('its heartbeat notices a takeover', async () => {
      const res = unique('res');
      const lease = await lockctl.acquireLease(db, res, { ttl: '3 s', renewEvery: 200 });
      const lost = new Promise((r) => lease.once('lost', r));
      await q('SELECT lockctl.force_release($1)', [res]);
      await Promise.race([lost, sleep(5000).then(() => assert.fail('loss not reported'))]);
      assert.match(lease.lostReason, /no longer held/);
      await lease.release();
    });

    it('stops a paused holder from writing after its lease expired', async () => {
      const res = unique('res');
      const t = await table('CREATE TABLE {t} (token bigint, n int)');
      const h = new Holder(name, res, 1000, t);
      try {
        const token = BigInt((await h.expect('token ')).split(' ')[1]);
        h.send('write 1');
        await h.expect('written 1');
        h.pause();
        await poll(async () => (await leaseCount(res)) === 0, 10000, 'the paused holder\'s lease to expire');
        const newer = BigInt(await one("SELECT lockctl.acquire($1, 'successor', '30 s')", [res]));
        assert.ok(newer > token);
        h.resume();
        h.send('write 2');
        await h.expect('lost: ');
        assert.deepEqual((await q(`SELECT token::text, n FROM ${t}`)).map((r) => [BigInt(r.token), r.n]), [[token, 1]]);
        await q('SELECT lockctl.release($1, $2)', [res, newer.toString()]);
      } finally {
        assert.equal(await h.finish(), 0);
      }
    });

    it('reconnects when its heartbeat connection is killed', async () => {
      const res = unique('res');
      const lease = await lockctl.acquireLease(db, res, { ttl: 1500 });
      try {
        const pid = await lease.heartbeatPid();
        assert.equal(await one('SELECT pg_terminate_backend($1)', [pid]), true);
        const before = lease.renewals;
        await poll(() => lease.renewals >= before + 2, 10000, 'two renewals after the kill');
        assert.equal(lease.lost, false, lease.lostReason);
        assert.notEqual(await lease.heartbeatPid(), pid);
        await lease.fenced(db, async () => {});
        assert.equal(BigInt(await one('SELECT token FROM lockctl.leases WHERE resource = $1', [res])), lease.token);
      } finally {
        await lease.release();
      }
    });

    it('reports the loss by the expiry when it cannot reconnect', async () => {
      // The heartbeat logs in as a role that is then refused logins: after
      // its connection is killed it cannot open another.
      const res = unique('res');
      const role = unique('hb');
      await q(`CREATE ROLE ${role} LOGIN`);
      cleanups.push(() => q(`DROP ROLE ${role}`));
      const hb = d.open({ user: role, max: 1, ...(name === 'postgres' ? { username: role } : {}) });
      const lease = await lockctl.acquireLease(db, res, { ttl: 1000, heartbeat: hb });
      await q(`ALTER ROLE ${role} NOLOGIN`);
      const t0 = Date.now();
      const lost = new Promise((r) => lease.once('lost', r));
      await q('SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = $1', [role]);
      await Promise.race([lost, sleep(5000).then(() => assert.fail('loss not reported'))]);
      assert.ok(Date.now() - t0 < 1500, `reported after ${Date.now() - t0} ms, ttl 1000`);
      assert.match(lease.lostReason, /not renewed/);
      await assert.rejects(lease.fenced(db, async () => assert.fail('ran')), lockctl.LeaseLostError);
      await lease.release();
      await d.close(hb);
      await q('SELECT lockctl.force_release($1)', [res]);
    });

    it('converges under concurrent read-modify-write increments (40001 retried)', async () => {
      const t = await table('CREATE TABLE {t} (id int PRIMARY KEY, n int NOT NULL, version bigint)');
      await q(`SELECT lockctl.enable_versioning('${t}')`);
      await q(`INSERT INTO ${t} (id, n) VALUES (1, 0)`);
      const workers = 6; const each = 12;
      let retries = 0;
      const worker = async () => {
        for (let i = 0; i < each; i += 1) {
          await lockctl.runInTransaction(db, async (tx) => {
            const [row] = await tx.query(`SELECT n, version::text AS version FROM ${t} WHERE id = 1`);
            await sleep(2);
            // A Number key: sent as bigint, the anyelement overload.
            return lockctl.updateVersioned(tx, t, 1, BigInt(row.version), { n: row.n + 1 });
          }, { attempts: 200, maxMs: 50, onRetry: () => { retries += 1; } });
        }
      };
      await Promise.all(Array.from({ length: workers }, worker));
      const [row] = await q(`SELECT n, version::text AS v FROM ${t}`);
      assert.deepEqual([row.n, BigInt(row.v)], [workers * each, BigInt(workers * each + 1)]);
      assert.ok(retries > 0, 'no conflict happened: the retry path was not exercised');
    });

    it('makes one hold for concurrent duplicates of an idempotent reserve', async () => {
      const p = await pool(10);
      const key = lockctl.newIdempotencyKey('order-');
      const got = await Promise.all(Array.from({ length: 8 },
        () => lockctl.reserveIdempotent(db, p, { idempotencyKey: key, quantity: 2, holder: 'webhook', ttl: '1 min' })));
      assert.equal(typeof got[0], 'bigint');
      assert.equal(new Set(got.map(String)).size, 1, got.join(','));
      const [row] = await q('SELECT count(*)::int AS n, sum(quantity)::int AS q FROM lockctl.holds WHERE resource = $1', [p]);
      assert.deepEqual([row.n, row.q], [1, 2]);
      assert.equal(await lockctl.available(db, p), 8n);
    });

    it('runs a request once under concurrent duplicates (claim_request)', async () => {
      const t = await table('CREATE TABLE {t} (id serial PRIMARY KEY, key text)');
      const key = lockctl.newIdempotencyKey('webhook-');
      const effect = async (tx) => {
        const [row] = await tx.query(`INSERT INTO ${t} (key) VALUES ($1) RETURNING id`, [key]);
        return { effect: row.id };
      };
      const got = await Promise.all(Array.from({ length: 8 },
        () => lockctl.runOnce(db, key, effect, { fingerprint: 'sha256:abc' })));
      const ids = (await q(`SELECT id FROM ${t}`)).map((r) => r.id);
      assert.equal(ids.length, 1, 'two duplicates took effect');
      assert.deepEqual(got.map((g) => g.replayed).sort(), [false, true, true, true, true, true, true, true]);
      assert.deepEqual([...new Set(got.map((g) => g.result.effect))], ids);
      await assert.rejects(lockctl.runOnce(db, key, effect, { fingerprint: 'sha256:other' }), (e) => e.code === '22023');
      // An effect that fails takes its claim with it: the next copy runs.
      const key2 = lockctl.newIdempotencyKey();
      await assert.rejects(lockctl.runOnce(db, key2, async (tx) => { await effect(tx); throw new Error('provider'); }),
        /provider/);
      assert.equal((await lockctl.runOnce(db, key2, effect)).replayed, false);
    });

    it('reserves, confirms, cancels and extends with typed results', async () => {
      const p = await pool(2);
      const a = await lockctl.reserve(db, p, { holder: 'alice', ttl: '1 min' });
      const b = await lockctl.reserve(db, p, { holder: 'bob', ttl: 60000 });
      assert.equal(typeof a, 'bigint');
      assert.equal(await lockctl.reserve(db, p, { holder: 'carol' }), null);
      assert.equal(await lockctl.confirm(db, a), true);
      assert.equal(await lockctl.confirm(db, a), false);
      assert.ok((await lockctl.extend(db, b, '10 min')) instanceof Date);
      assert.equal(await lockctl.cancel(db, b), true);
      assert.equal(await lockctl.available(db, p), 1n);
      await assert.rejects(lockctl.cancel(db, a), (e) => e.code === '55000');
      await assert.rejects(lockctl.confirm(db, 5), TypeError);        // ids are BigInt, never Number
    });

    it('absorbs the drivers\' traps: keys, composite keys, bigints, numeric ttl', async () => {
      const t = await table('CREATE TABLE {t} (id bigint PRIMARY KEY, v text, version bigint)');
      const c = await table('CREATE TABLE {t} (order_id int, line_no int, qty int, version bigint, PRIMARY KEY (order_id, line_no))');
      await q(`SELECT lockctl.enable_versioning('${t}'), lockctl.enable_versioning('${c}')`);
      const big = 2n ** 60n + 3n;                    // beyond Number's precision
      await q(`INSERT INTO ${t} (id, v) VALUES (42, 'a'), ($1::text::bigint, 'b')`, [big.toString()]);
      await q(`INSERT INTO ${c} (order_id, line_no, qty) VALUES (7, 2, 1), (7, 3, 1)`);
      assert.equal(await lockctl.updateVersioned(db, t, 42, 1, { v: 'x' }), 2n);
      assert.equal(await lockctl.updateVersioned(db, t, 42n, 2n, { v: 'y' }), 3n);
      assert.equal(await lockctl.updateVersioned(db, t, '42', 3, { v: 'z' }), 4n);
      assert.equal(await lockctl.updateVersioned(db, t, big, 1, { v: 'big' }), 2n);
      await assert.rejects(lockctl.updateVersioned(db, t, 42, 1, { v: 'stale' }), (e) => e.code === '40001');
      assert.deepEqual((await q(`SELECT id::text AS k, v FROM ${t} ORDER BY ${t}.id`)).map((r) => [r.k, r.v]),
        [['42', 'z'], [big.toString(), 'big']]);
      // An object is a composite key, never '[object Object]'.
      assert.equal(await lockctl.updateVersioned(db, c, { order_id: 7, line_no: 2 }, 1, { qty: 3 }), 2n);
      assert.deepEqual((await q(`SELECT line_no, qty FROM ${c} ORDER BY line_no`)).map((r) => [r.line_no, r.qty]),
        [[2, 3], [3, 1]]);
      await assert.rejects(lockctl.updateVersioned(db, t, 1.5, 1), TypeError);
      await assert.rejects(lockctl.updateVersioned(db, t, [42], 1), TypeError);
      // A number ttl is milliseconds: 1500 is 1.5 s, not 25 minutes.
      const p = await pool(3);
      const h = await lockctl.reserve(db, p, { ttl: 1500 });
      const secs = Number(await one('SELECT extract(epoch FROM expires - created) FROM lockctl.holds WHERE id = $1',
        [h.toString()]));
      assert.ok(Math.abs(secs - 1.5) < 0.1, `${secs} s`);
      await assert.rejects(lockctl.reserve(db, p, { ttl: '30' }), RangeError);
    });
  });
}
