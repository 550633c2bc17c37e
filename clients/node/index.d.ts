// Type declarations of lockctl for Node.js (index.js).
//
// Tokens, versions, hold ids and unit counts are BigInt.  A Duration is a
// number of MILLISECONDS, or a string with a unit ('500 ms', '30 s',
// '5 min'); a string without a unit is refused.

import { EventEmitter } from 'node:events';

/** A node-postgres Pool or Client, or a postgres.js `sql` function: any
 * object with the methods lockctl calls on them. */
export type Db =
  | { query(text: string, params?: unknown[]): Promise<{ rows: any[] }> }
  | ((...args: any[]) => any) & { unsafe(text: string, params?: unknown[]): Promise<any> };

/** Milliseconds, or a string with a unit: '250 ms', '30 s', '1 min 30 s'. */
export type Duration = number | string;

/** A 64-bit integer argument: a BigInt, or its decimal string. */
export type Int8 = bigint | string;

/** What a transaction callback receives. */
export interface Tx {
  /** The driver's own client (pg) or transaction `sql` (postgres.js). */
  raw: any;
  /** One statement with $1.. parameters; its rows as objects. */
  query(text: string, params?: unknown[]): Promise<any[]>;
}

export class LockctlError extends Error {}

export class LeaseNotGrantedError extends LockctlError {
  resource: string;
}

export class LeaseLostError extends LockctlError {
  code: 'LOCKCTL_LEASE_LOST';
  resource: string;
  token: bigint;
  reason: string;
}

/** '40001' and '40P01'. */
export const RETRYABLE: Set<string>;

export interface LeaseOptions {
  /** Who holds it (shown in lockctl.leases); the same owner asking again
   * gets the same token.  Default: host-pid-random. */
  owner?: string;
  /** Default '30 s'. */
  ttl?: Duration;
  /** How long acquire waits for the lease (default 0: not at all). */
  wait?: Duration;
  /** Default ttl / 3. */
  renewEvery?: Duration;
  /** Called once when the lease is lost. */
  onLost?: (lease: Lease) => void;
  /** The handle the lease takes its own connection from (default: db). */
  heartbeat?: Db;
}

export class Lease extends EventEmitter {
  readonly resource: string;
  readonly owner: string;
  readonly token: bigint;
  readonly ttlMs: number;
  readonly renewEveryMs: number;
  /** The server's expiry after the last renewal. */
  expiresAt: Date | null;
  renewals: number;
  reconnects: number;
  lost: boolean;
  lostReason: string | null;
  /** Aborted (with a LeaseLostError) when the lease is lost or released. */
  readonly signal: AbortSignal;
  /** Throws LeaseLostError when the lease is lost or past its expiry. */
  check(): void;
  /** fn(tx) in a transaction that begins with lockctl.fence(resource,
   * token); throws LeaseLostError (rolled back) when the lease is lost. */
  fenced<T>(db: Db, fn: (tx: Tx) => Promise<T>): Promise<T>;
  /** Stops the heartbeat and releases: true when the lease was still ours. */
  release(): Promise<boolean>;
  heartbeatPid(): Promise<number>;
  on(event: 'lost' | 'renewed', listener: (lease: Lease) => void): this;
  once(event: 'lost' | 'renewed', listener: (lease: Lease) => void): this;
}

export function acquireLease(db: Db, resource: string, options?: LeaseOptions): Promise<Lease | null>;
export function withLease<T>(db: Db, resource: string, options: LeaseOptions,
                             fn: (lease: Lease) => Promise<T>): Promise<T>;

export function transaction<T>(db: Db, fn: (tx: Tx) => Promise<T>): Promise<T>;

export interface RetryOptions {
  /** Tries in all (default 10). */
  attempts?: number;
  /** Back-off: a random delay up to baseMs * 2^n, at most maxMs (10, 1000). */
  baseMs?: number;
  maxMs?: number;
  retryOn?: Set<string>;
  onRetry?: (attempt: number, error: unknown, delayMs: number) => void;
}
export function retry<T>(fn: () => Promise<T>, options?: RetryOptions): Promise<T>;
export function runInTransaction<T>(db: Db, fn: (tx: Tx) => Promise<T>, options?: RetryOptions): Promise<T>;

/** A composite key: an object naming every primary key column. */
export type CompositeKey = { [column: string]: unknown };
export function updateVersioned(db: Db | Tx, table: string, key: bigint | number | string | CompositeKey,
                                expectedVersion: bigint | number, changes?: { [column: string]: unknown }): Promise<bigint>;

export interface ReserveOptions {
  quantity?: bigint | number;
  holder?: string | null;
  /** Default '5 min'. */
  ttl?: Duration;
  idempotencyKey?: string | null;
}
/** A hold id, or null when sold out. */
export function reserve(db: Db | Tx, resource: string, options?: ReserveOptions): Promise<bigint | null>;
export function confirm(db: Db | Tx, id: Int8): Promise<boolean>;
export function cancel(db: Db | Tx, id: Int8): Promise<boolean>;
export function extend(db: Db | Tx, id: Int8, ttl: Duration): Promise<Date>;
export function available(db: Db | Tx, resource: string): Promise<bigint>;
export function reserveIdempotent(db: Db, resource: string,
                                  options: ReserveOptions & { idempotencyKey: string; attempts?: number;
                                                              baseMs?: number; maxMs?: number }): Promise<bigint | null>;
export function newIdempotencyKey(prefix?: string): string;

export interface RunOnceOptions extends RetryOptions {
  /** How long the key lives (default '24 h'). */
  ttl?: Duration;
  /** A hash of the request's parameters. */
  fingerprint?: string | null;
  /** How long a duplicate waits for the first copy (default: no bound). */
  wait?: Duration | null;
  /** Use the request keys of this role. */
  scope?: string | null;
}
/** fn(tx) once per key, in the transaction that claims it; duplicates get
 * the stored result (replayed: true). */
export function runOnce<T>(db: Db, key: string, fn: (tx: Tx) => Promise<T>,
                           options?: RunOnceOptions): Promise<{ result: T; replayed: boolean }>;

/** A Duration in milliseconds (throws on a string without a unit). */
export function durationMs(value: Duration, what?: string): number;
export function isFenceFailure(error: unknown): boolean;
export function isConnectionError(error: unknown): boolean;
