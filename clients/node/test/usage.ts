// Compiled (never run) by test/types.test.js: the declarations in
// index.d.ts must accept the README's usage and refuse a Number token.
import { Pool } from 'pg';
import postgres from 'postgres';
import * as lockctl from '..';

async function usage(pool: Pool, sql: ReturnType<typeof postgres>): Promise<bigint | null> {
  const lease = await lockctl.acquireLease(pool, 'report', { ttl: '30 s', wait: 5000, onLost: (l) => l.lostReason });
  if (lease === null) return null;
  const token: bigint = lease.token;
  await lease.fenced(pool, async (tx) => tx.query('UPDATE t SET x = 1 WHERE token < $1', [token.toString()]));
  lease.signal.addEventListener('abort', () => undefined);
  await lease.release();
  const version: bigint = await lockctl.runInTransaction(sql, (tx) =>
    lockctl.updateVersioned(tx, 'account', 1n, 5n, { balance: 10 }), { attempts: 5 });
  await lockctl.updateVersioned(pool, 'line', { order_id: 7, line_no: 2 }, 4, { qty: 3 });
  const hold = await lockctl.reserve(sql, 'concert', { quantity: 2, ttl: 60000, idempotencyKey: lockctl.newIdempotencyKey() });
  if (hold !== null) {
    const ok: boolean = await lockctl.confirm(pool, hold);
    const free: bigint = await lockctl.available(pool, 'concert');
    void ok; void free;
  }
  const once: { result: { id: number }; replayed: boolean } =
    await lockctl.runOnce(pool, 'webhook-1', async () => ({ id: 1 }), { fingerprint: 'sha256:abc', wait: '2 s' });
  void once;
  // @ts-expect-error: a token or hold id is never a Number
  await lockctl.confirm(pool, 5);
  return version;
}
void usage;
