'use strict';
// lockctl for Node.js: leases that keep themselves alive and stop your
// writes when they are lost, retries of 40001, version-checked updates,
// reservations and idempotency keys, over node-postgres (a pg.Pool or
// pg.Client) or postgres.js (the sql function).
//
// Conventions, the same in every function:
// - tokens, versions, hold ids and unit counts come back as BigInt, never as
//   Number (a token is a 64-bit number: timeline << 48 | ...);
// - a duration is a number of MILLISECONDS (as setTimeout takes them) or a
//   string with a unit ('500 ms', '30 s', '5 min'); a string without a unit
//   ('30') is refused, because the server would read it as seconds;
// - every value is sent as text with an explicit cast in the SQL, so that no
//   driver picks a wrong overload or sends an object as '[object Object]'.

const { EventEmitter } = require('node:events');
const { performance } = require('node:perf_hooks');
const crypto = require('node:crypto');

// ---------------------------------------------------------------------------
// Errors

class LockctlError extends Error {}

class LeaseNotGrantedError extends LockctlError {
  constructor(resource, waitMs) {
    super(`lease "${resource}" was not granted within ${waitMs} ms`);
    this.name = 'LeaseNotGrantedError';
    this.resource = resource;
  }
}

class LeaseLostError extends LockctlError {
  constructor(resource, token, reason) {
    super(`lease "${resource}" (token ${token}) was lost: ${reason}`);
    this.name = 'LeaseLostError';
    this.code = 'LOCKCTL_LEASE_LOST';
    this.resource = resource;
    this.token = token;
    this.reason = reason;
  }
}

// SQLSTATEs a transaction is retried on: serialization failure (a version
// conflict included) and deadlock.
const RETRYABLE = new Set(['40001', '40P01']);

function isFenceFailure(e) {
  if (!e || e.code !== '40001') return false;
  const m = String(e.message);
  return (m.includes('fencing token') && m.includes('is stale')) || m.includes('is no longer held by token');
}

// The connection broke or the server ended the session: the outcome of the
// statement is unknown and the connection is unusable.
function isConnectionError(e) {
  if (!e) return false;
  const code = e.code;
  if (typeof code === 'string') {
    if (/^08/.test(code) || ['57P01', '57P02', '57P03'].includes(code)) return true;
    if (/^(CONNECTION_|ECONN|EPIPE|ETIMEDOUT|EHOSTUNREACH|ENOTCONN)/.test(code)) return true;
  }
  const m = String(e.message || '');
  return /Connection terminated|connection (is )?(closed|ended)|Client has encountered a connection error|Client was closed|write after end|not queryable/i.test(m);
}

// ---------------------------------------------------------------------------
// Values

const UNITS = {
  us: 1e-3, usec: 1e-3, microsecond: 1e-3, microseconds: 1e-3,
  ms: 1, msec: 1, millisecond: 1, milliseconds: 1,
  s: 1e3, sec: 1e3, secs: 1e3, second: 1e3, seconds: 1e3,
  m: 6e4, min: 6e4, mins: 6e4, minute: 6e4, minutes: 6e4,
  h: 36e5, hour: 36e5, hours: 36e5,
  d: 864e5, day: 864e5, days: 864e5,
};

// A duration in milliseconds: a number is milliseconds; a string needs a unit.
function durationMs(value, what = 'duration') {
  if (typeof value === 'number') {
    if (!Number.isFinite(value)) throw new RangeError(`${what} must be a finite number of milliseconds`);
    return value;
  }
  if (typeof value === 'string') {
    const re = /\s*([0-9]+(?:\.[0-9]+)?)\s*([a-zA-Z]+)\s*/y;
    let total = 0; let parts = 0; let m;
    while (re.lastIndex < value.length && (m = re.exec(value)) !== null) {
      const unit = UNITS[m[2].toLowerCase()];
      if (unit === undefined) throw new RangeError(`${what} "${value}": unknown unit "${m[2]}" (us, ms, s, min, h, d)`);
      total += Number(m[1]) * unit;
      parts += 1;
    }
    if (parts === 0 || re.lastIndex !== value.length) {
      throw new RangeError(`${what} "${value}" is not a number with a unit such as "500 ms" or "30 s" ` +
        '(a bare number, not a string, means milliseconds)');
    }
    return total;
  }
  throw new TypeError(`${what} must be milliseconds (a number) or a string with a unit, not ${typeof value}`);
}

// The text of a PostgreSQL interval, exact to the microsecond.
function intervalText(value, what) {
  return `${Math.round(durationMs(value, what) * 1000)} microseconds`;
}

// A 64-bit integer argument (token, version, id): BigInt, or its decimal
// string; a Number only where allowNumber (counts), and only a safe integer.
function int8Text(value, what, allowNumber = false) {
  if (typeof value === 'bigint') return value.toString();
  if (typeof value === 'string' && /^-?[0-9]+$/.test(value)) return value;
  if (allowNumber && typeof value === 'number' && Number.isSafeInteger(value)) return String(value);
  throw new TypeError(`${what} must be a BigInt${allowNumber ? ' or a safe integer' : ''}, not ${typeof value} ${String(value)}`);
}

function toBigInt(v) {
  if (v === null || v === undefined) return null;
  return typeof v === 'bigint' ? v : BigInt(v);
}

// JSON with BigInt values written as JSON numbers (JSON.stringify refuses
// BigInt).
function toJson(value) {
  const marks = [];
  const text = JSON.stringify(value, (k, v) => {
    if (typeof v === 'bigint') {
      marks.push(v.toString());
      return `\u0000bigint${marks.length - 1}\u0000`;
    }
    return v;
  });
  return text.replace(/"\\u0000bigint([0-9]+)\\u0000"/g, (_, i) => marks[Number(i)]);
}

function newIdempotencyKey(prefix = '') {
  return `${prefix}${crypto.randomUUID()}`;
}

function defaultOwner() {
  return `${require('node:os').hostname()}-${process.pid}-${crypto.randomBytes(4).toString('hex')}`;
}

// ---------------------------------------------------------------------------
// Drivers: what the library does with a handle.  node-postgres: a Pool
// (pool.query, pool.connect) or a Client; postgres.js: the sql function
// (sql.unsafe, sql.begin, sql.reserve).

function isPostgresJs(db) {
  return typeof db === 'function' && typeof db.unsafe === 'function';
}
function isPgPool(db) {
  return db && typeof db.connect === 'function' && typeof db.query === 'function' && 'totalCount' in db;
}

// Rows of one statement, as objects.
async function rows(db, text, params = []) {
  if (db && db.raw && typeof db.query === 'function') return rows(db.raw, text, params);   // a Tx
  if (isPostgresJs(db)) return Array.from(await db.unsafe(text, params));
  if (db && typeof db.query === 'function') return (await db.query(text, params)).rows;
  throw new TypeError('db must be a pg.Pool, a pg.Client, or a postgres.js sql function');
}

async function value(db, text, params) {
  const r = await rows(db, text, params);
  return r.length ? r[0].v : null;
}

// fn(tx) between BEGIN and COMMIT (ROLLBACK when it throws).  tx has
// query(text, params) -> rows and raw (the driver's own client or
// transaction, to use its API).
async function transaction(db, fn) {
  if (isPostgresJs(db)) {
    return db.begin((tx) => fn(wrapTx(tx)));
  }
  const client = isPgPool(db) ? await db.connect() : db;
  let broken = null;
  try {
    await client.query('BEGIN');
    let result;
    try {
      result = await fn(wrapTx(client));
    } catch (e) {
      await client.query('ROLLBACK').catch((e2) => { broken = e2; });
      if (isConnectionError(e)) broken = e;
      throw e;
    }
    try {
      await client.query('COMMIT');
    } catch (e) {
      if (isConnectionError(e)) broken = e;
      throw e;
    }
    return result;
  } finally {
    // A broken client goes back to the pool to be destroyed, not reused.
    if (client !== db) client.release(broken || undefined);
  }
}

function wrapTx(raw) {
  return { raw, query: (text, params) => rows(raw, text, params) };
}

// ---------------------------------------------------------------------------
// Retries

function backoffMs(attempt, baseMs, maxMs) {
  return Math.random() * Math.min(maxMs, baseMs * 2 ** attempt);
}
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// await fn(), again after a 40001 or 40P01, at most `attempts` times, with
// a random delay up to baseMs * 2^n (at most maxMs) between tries; the last
// error is thrown.  A lost lease is never retried.
async function retry(fn, { attempts = 10, baseMs = 10, maxMs = 1000, retryOn = RETRYABLE, onRetry } = {}) {
  if (!(attempts >= 1)) throw new RangeError('attempts must be at least 1');
  for (let attempt = 0; ; attempt += 1) {
    try {
      return await fn();
    } catch (e) {
      if (e instanceof LeaseLostError || !retryOn.has(e && e.code) || isFenceFailure(e) ||
          attempt === attempts - 1) throw e;
      const delay = backoffMs(attempt, baseMs, maxMs);
      if (onRetry) onRetry(attempt + 1, e, delay);
      await sleep(delay);
    }
  }
}

// fn(tx) in a transaction, the whole transaction retried as retry() does.
function runInTransaction(db, fn, options) {
  return retry(() => transaction(db, fn), options);
}

// ---------------------------------------------------------------------------
// Version-checked updates

// lockctl.update_versioned: a BigInt key or a safe-integer Number goes as
// bigint (the anyelement overload, never the text one); a string as text; a
// plain object is a composite key (jsonb).  Returns the new version.
async function updateVersioned(db, table, key, expectedVersion, changes = {}) {
  let cast; let sent;
  if (typeof key === 'bigint' || (typeof key === 'number' && Number.isSafeInteger(key))) {
    cast = 'bigint'; sent = String(key);
  } else if (typeof key === 'string') {
    cast = 'text'; sent = key;
  } else if (key !== null && typeof key === 'object' && Object.getPrototypeOf(key) === Object.prototype) {
    cast = 'jsonb'; sent = toJson(key);
  } else {
    throw new TypeError('updateVersioned key must be a BigInt, a safe integer, a string, or a plain object ' +
      `naming every column of a composite key, not ${typeof key} ${String(key)}`);
  }
  if (changes === null || typeof changes !== 'object' || Array.isArray(changes)) {
    throw new TypeError('updateVersioned changes must be an object of column: value');
  }
  return toBigInt(await value(db,
    `SELECT lockctl.update_versioned($1::text::regclass, $2::text::${cast}, $3::text::bigint, $4::text::jsonb) AS v`,
    [String(table), sent, int8Text(expectedVersion, 'expectedVersion', true), toJson(changes)]));
}

// ---------------------------------------------------------------------------
// Reservations

async function reserve(db, resource, { quantity = 1, holder = null, ttl = '5 min', idempotencyKey = null } = {}) {
  return toBigInt(await value(db,
    'SELECT lockctl.reserve($1::text, $2::text::bigint, $3::text, $4::text::interval, $5::text) AS v',
    [resource, int8Text(quantity, 'quantity', true), holder, intervalText(ttl, 'ttl'), idempotencyKey]));
}

async function confirm(db, id) {
  return value(db, 'SELECT lockctl.confirm($1::text::bigint) AS v', [int8Text(id, 'hold id')]);
}

async function cancel(db, id) {
  return value(db, 'SELECT lockctl.cancel($1::text::bigint) AS v', [int8Text(id, 'hold id')]);
}

async function extend(db, id, ttl) {
  return value(db, 'SELECT lockctl.extend($1::text::bigint, $2::text::interval) AS v',
    [int8Text(id, 'hold id'), intervalText(ttl, 'ttl')]);
}

async function available(db, resource) {
  return toBigInt(await value(db, 'SELECT lockctl.available($1::text) AS v', [resource]));
}

// reserve() that survives a lost answer: after a broken connection (outcome
// unknown), a 40001 or a deadlock, the same request with the same key is
// sent again (a pool gives it a new connection), which returns the hold the
// first attempt made, if it made one.
async function reserveIdempotent(db, resource, options = {}) {
  const { idempotencyKey, attempts = 5, baseMs = 50, maxMs = 2000 } = options;
  if (!idempotencyKey) throw new TypeError('reserveIdempotent needs an idempotencyKey (newIdempotencyKey())');
  for (let attempt = 0; ; attempt += 1) {
    try {
      return await reserve(db, resource, options);
    } catch (e) {
      if (!(isConnectionError(e) || RETRYABLE.has(e && e.code)) || attempt === attempts - 1) throw e;
      await sleep(backoffMs(attempt, baseMs, maxMs));
    }
  }
}

// ---------------------------------------------------------------------------
// Idempotent requests

// One request, once: in one transaction, lockctl.claim_request(key), then
// fn(tx) and lockctl.complete_request(key, its result), so that the claim
// commits or rolls back with the effect.  Resolves to { result, replayed }:
// fn's result, or for a duplicate of a request that committed, the result
// it stored (fn is not called).  A concurrent duplicate waits for the first
// copy (at most `wait`, then 55P03) and replays its result.  The result
// must be JSON (null is stored as {}); the transaction is retried on 40001
// and 40P01.  fingerprint: a hash of the request's parameters (a key reused
// with another is refused, 22023).
async function runOnce(db, key, fn, options = {}) {
  const { ttl = '24 h', fingerprint = null, wait = null, scope = null, ...retryOptions } = options;
  if (typeof key !== 'string' || key === '') throw new TypeError('a request key is a non-empty string');
  const params = [key, intervalText(ttl, 'ttl'), fingerprint, wait === null ? null : intervalText(wait, 'wait'), scope];
  return runInTransaction(db, async (tx) => {
    const stored = await value(tx,
      'SELECT lockctl.claim_request($1::text, $2::text::interval, $3::text, $4::text::interval, $5::text::name) AS v',
      params);
    if (stored !== null) return { result: stored, replayed: true };
    const result = await fn(tx);
    await rows(tx, 'SELECT lockctl.complete_request($1::text, $2::text::jsonb, $3::text::name)',
      [key, toJson(result === null || result === undefined ? {} : result), scope]);
    return { result, replayed: false };
  }, retryOptions);
}

// ---------------------------------------------------------------------------
// Leases

// postgres.js itself, from this package's or the application's modules.
function loadPostgresJs() {
  const tries = [() => require('postgres')];
  if (require.main && require.main.filename) {
    tries.push(() => require('node:module').createRequire(require.main.filename)('postgres'));
  }
  tries.push(() => require('node:module').createRequire(`${process.cwd()}/`)('postgres'));
  for (const t of tries) {
    try { return t(); } catch (e) { /* next */ }
  }
  throw new TypeError('cannot load postgres.js for the lease\'s own connection: pass options.heartbeat ' +
    '(postgres(url, { max: 1 }))');
}

// The lease's own connection: every acquire, renew and release goes through
// it, so a busy application pool never delays a renewal.  From a pg.Pool: a
// pool of one connection with the same settings; from postgres.js: an sql
// of one connection with the same settings.  A broken one is replaced.
class OwnConnection {
  constructor(db) {
    this.db = db;
    this.handle = null;
    this.opened = 0;
  }

  async get() {
    if (this.handle) return this.handle;
    const db = this.db;
    if (isPostgresJs(db)) {
      // Not sql.reserve(): a reserved connection whose socket the server
      // closed crashes postgres.js 3.4 on its next query.  A second sql of
      // one connection, with the same (already parsed) options, reconnects
      // by itself.
      const postgres = loadPostgresJs();
      this.handle = postgres({ ...db.options, max: 1, onnotice: () => {},
        shared: { retries: 0, typeArrayMap: {} } });
    } else if (isPgPool(db)) {
      const Pool = db.constructor;
      const pool = new Pool({ ...db.options, max: 1, idleTimeoutMillis: 0, allowExitOnIdle: true });
      // A connection the server ends while idle is reported here: the next
      // query opens a new one.
      pool.on('error', () => {});
      this.handle = pool;
    } else {
      throw new TypeError('a lease needs a pg.Pool or a postgres.js sql function (or options.heartbeat)');
    }
    this.opened += 1;
    return this.handle;
  }

  async drop() {
    const h = this.handle;
    this.handle = null;
    if (!h) return;
    try {
      if (isPostgresJs(h)) await h.end({ timeout: 1 });
      else await h.end();
    } catch (e) { /* it is broken already */ }
  }

  async query(text, params) {
    const h = await this.get();
    return value(h, text, params);
  }
}

class Lease extends EventEmitter {
  constructor(resource, owner, token, options, own) {
    super();
    this.resource = resource;
    this.owner = owner;
    this.token = token;                 // BigInt
    this.ttlMs = options.ttlMs;
    this.renewEveryMs = options.renewEveryMs;
    this.expiresAt = null;              // Date: the server's expiry of the last renewal
    this.renewals = 0;
    this.reconnects = 0;
    this.lost = false;
    this.lostReason = null;
    this._abort = new AbortController();
    this.signal = this._abort.signal;   // aborted when the lease is lost or released
    this._own = own;
    this._deadline = 0;                 // performance.now() by which the lease has expired for sure
    this._timer = null;
    this._watchdog = null;
    this._stopped = false;
    if (options.onLost) this.once('lost', options.onLost);
  }

  // Throws LeaseLostError when the lease is lost, or its expiry passed
  // without a renewal (even if the heartbeat has not said so yet).
  check() {
    if (!this.lost && performance.now() >= this._deadline) this._markLost('not renewed before its expiry');
    if (this.lost) throw new LeaseLostError(this.resource, this.token, this.lostReason);
  }

  // fn(tx) in a transaction on db that starts with lockctl.fence(resource,
  // token): its writes commit only while this lease is live, and nobody
  // else is granted it until the transaction ends.  Throws LeaseLostError
  // (and rolls back) when the lease is lost.
  async fenced(db, fn) {
    this.check();
    return transaction(db, async (tx) => {
      try {
        await tx.query('SELECT lockctl.fence($1::text, $2::text::bigint)', [this.resource, this.token.toString()]);
      } catch (e) {
        if (e && e.code === '40001') {
          const reason = String(e.message).split('\n')[0];
          this._markLost(reason);
          throw new LeaseLostError(this.resource, this.token, reason);
        }
        throw e;
      }
      return fn(tx);
    });
  }

  // Stop the heartbeat and release the lease: true when it was still ours.
  async release() {
    this._stopHeartbeat();
    try {
      if (this.lost) return false;
      for (let attempt = 1; ; attempt += 1) {
        try {
          return Boolean(await this._own.query('SELECT lockctl.release($1::text, $2::text::bigint) AS v',
            [this.resource, this.token.toString()]));
        } catch (e) {
          if (attempt === 2 || !isConnectionError(e)) throw e;
          await this._own.drop();
        }
      }
    } finally {
      this._markLost('released', false);
      await this._own.drop();
    }
  }

  // The backend pid of the lease's own connection (for tests and ops).
  async heartbeatPid() {
    return Number(await this._own.query('SELECT pg_backend_pid() AS v', []));
  }

  _markLost(reason, notify = true) {
    if (this.lost) return;
    this.lost = true;
    this.lostReason = reason;
    this._stopHeartbeat();
    this._abort.abort(new LeaseLostError(this.resource, this.token, reason));
    if (notify) this.emit('lost', this);
  }

  _stopHeartbeat() {
    this._stopped = true;
    clearTimeout(this._timer);
    clearTimeout(this._watchdog);
  }

  _armWatchdog() {
    clearTimeout(this._watchdog);
    this._watchdog = setTimeout(() => {
      if (this.lost || this._stopped) return;
      if (performance.now() >= this._deadline - 1) {
        this._markLost('not renewed before its expiry (heartbeat late or server unreachable)');
      } else {
        // Timers run against the event loop's cached clock, which lags on
        // a busy machine, so a timer can fire early: look again then.
        this._armWatchdog();
      }
    }, Math.max(0, this._deadline - performance.now()));
    this._watchdog.unref();
  }

  _schedule(delayMs) {
    if (this._stopped) return;
    const left = this._deadline - performance.now();
    this._timer = setTimeout(() => this._beat(), Math.max(0, Math.min(delayMs, left - 1)));
    this._timer.unref();
  }

  async _beat() {
    if (this._stopped || this.lost) return;
    const sent = performance.now();
    try {
      const opened = this._own.opened;
      const expires = await this._own.query(
        'SELECT lockctl.renew($1::text, $2::text::bigint, $3::text::interval) AS v',
        [this.resource, this.token.toString(), `${Math.round(this.ttlMs * 1000)} microseconds`]);
      if (this._own.opened > opened) this.reconnects += 1;
      if (this._stopped || this.lost) return;
      this._deadline = sent + this.ttlMs;
      this.expiresAt = expires;
      this.renewals += 1;
      this._armWatchdog();
      this.emit('renewed', this);
      this._schedule(this.renewEveryMs);
    } catch (e) {
      if (this._stopped || this.lost) return;
      if (e && e.code === '40001') {
        this._markLost(String(e.message).split('\n')[0]);
        return;
      }
      // A broken connection or a failed call: a new connection (the
      // drivers do not all say clearly that theirs broke), and again soon;
      // the watchdog declares the loss if the expiry comes first.
      await this._own.drop();
      this._schedule(Math.min(this.renewEveryMs, 100 + this.renewEveryMs / 10));
    }
  }
}

// Take the lease: a Lease (its heartbeat running), or null when another
// owner kept it past `wait`.
//   db: a pg.Pool or a postgres.js sql (the lease opens its own connection
//       from it), or options.heartbeat for that connection;
//   options: owner, ttl (default '30 s'), wait (default 0), renewEvery
//       (default ttl / 3), onLost(lease).
async function acquireLease(db, resource, options = {}) {
  const ttlMs = durationMs(options.ttl === undefined ? '30 s' : options.ttl, 'ttl');
  const waitMs = durationMs(options.wait === undefined ? 0 : options.wait, 'wait');
  const renewEveryMs = options.renewEvery === undefined ? ttlMs / 3 : durationMs(options.renewEvery, 'renewEvery');
  if (!(renewEveryMs > 0 && renewEveryMs < ttlMs)) throw new RangeError('renewEvery must be above 0 and below ttl');
  const owner = options.owner || defaultOwner();
  const own = new OwnConnection(options.heartbeat || db);
  let token;
  try {
    token = toBigInt(await own.query(
      'SELECT lockctl.acquire($1::text, $2::text, $3::text::interval, $4::text::interval) AS v',
      [resource, owner, `${Math.round(ttlMs * 1000)} microseconds`, `${Math.round(waitMs * 1000)} microseconds`]));
  } catch (e) {
    await own.drop();
    throw e;
  }
  if (token === null) {
    await own.drop();
    return null;
  }
  const lease = new Lease(resource, owner, token, { ttlMs, renewEveryMs, onLost: options.onLost }, own);
  // The grant happened between the call and now (acquire may have waited):
  // renew at once, so that the expiry counted here starts before the
  // server's, never after it.
  const sent = performance.now();
  try {
    lease.expiresAt = await own.query('SELECT lockctl.renew($1::text, $2::text::bigint, $3::text::interval) AS v',
      [resource, token.toString(), `${Math.round(ttlMs * 1000)} microseconds`]);
  } catch (e) {
    if (e && e.code === '40001') {
      lease._markLost(String(e.message).split('\n')[0]);
      return lease;
    }
    // Granted, but not kept: give it back rather than leave it held by
    // nobody until its ttl runs out.
    await own.query('SELECT lockctl.release($1::text, $2::text::bigint) AS v', [resource, token.toString()])
      .catch(() => {});
    lease._stopHeartbeat();
    await own.drop();
    throw e;
  }
  lease._deadline = sent + ttlMs;
  lease._armWatchdog();
  lease._schedule(renewEveryMs);
  return lease;
}

// fn(lease) under the lease, released afterwards whatever happens; throws
// LeaseNotGrantedError when it is not granted.
async function withLease(db, resource, options, fn) {
  const lease = await acquireLease(db, resource, options);
  if (lease === null) {
    throw new LeaseNotGrantedError(resource, durationMs(options.wait === undefined ? 0 : options.wait, 'wait'));
  }
  try {
    return await fn(lease);
  } finally {
    await lease.release();
  }
}

module.exports = {
  LockctlError,
  LeaseLostError,
  LeaseNotGrantedError,
  RETRYABLE,
  Lease,
  acquireLease,
  withLease,
  transaction,
  retry,
  runInTransaction,
  updateVersioned,
  reserve,
  confirm,
  cancel,
  extend,
  available,
  reserveIdempotent,
  runOnce,
  newIdempotencyKey,
  durationMs,
  isFenceFailure,
  isConnectionError,
};
