/*-------------------------------------------------------------------------
 *
 * lease_wal.c
 *	  Durable leases (lockctl.lease_durability): the WAL records that let a
 *	  standby, or crash recovery, rebuild the table of exclusive leases, so
 *	  that live leases survive a switchover, a failover with synchronous
 *	  replication, and a crash.
 *
 * The resource manager
 * --------------------
 * lockctl registers a custom WAL resource manager (PostgreSQL 15 and
 * later), id LEASE_RMGR_ID = 201, in the extension range 128..255.  It is
 * not (yet) on the wiki's list of registered ids; 128 is the id every
 * experiment uses, so lockctl keeps away from it.  Every server that
 * replays WAL written with durability on (standbys, a restored backup)
 * must load lockctl through shared_preload_libraries, or its recovery
 * stops at the first lockctl record: PostgreSQL cannot replay a record of
 * a resource manager it does not know.  No record is ever written with
 * durability off, unless an earlier life of the server wrote some (the
 * marker file, below).
 *
 * The records (all idempotent, all of exclusive leases only)
 * ------------------------------------------------------------
 *	 SET		a lease with its holder: database, resource, owner, role,
 *				token, granted at, expires at (absolute, wall clock).
 *				Logged at a grant, a safe retry, renew, and fence's extend.
 *	 CLEAR		the lease of (database, resource, token) ended: release,
 *				force_release, expiry reclaimed, take-over, a bind to the
 *				session (bind => 'session' leases cannot survive: their
 *				session is gone), the release of a role's or a database's
 *				leases.
 *	 SNAPSHOT	the whole table of live exclusive leases, replacing what
 *				the replaying server had.  Redo starts at a checkpoint's
 *				redo point, so the records before it are never replayed:
 *				whenever the redo point moved since the last snapshot, the
 *				next lease record, or the next pass of an expiry worker,
 *				writes a snapshot first.  Also the first record of every
 *				life of the server and after a raised token floor.
 *	 OFF		durability was turned off: the replaying server forgets
 *				every lease it replayed, because changes that follow are
 *				no longer logged.
 * Expiry itself is not logged: the replaying server knows the wall-clock
 * expiry and drops what ran out.  Counted and shared holders are not
 * logged (their resources are never live exclusively at the same time, so
 * a CLEAR always precedes them): they are lost at a switchover, as today.
 *
 * Ordering and waiting
 * --------------------
 * Records are inserted under the lease lock, right after the change they
 * describe, so WAL order is the order of the changes.  The grant or renew
 * is not reported before its record is flushed and, under synchronous
 * replication, acknowledged by the synchronous standbys (XLogFlush and
 * SyncRepWaitForLSN, after the lease lock is released: LeaseWalWait).  A
 * lease call usually assigns no transaction id, so its commit would only
 * flush asynchronously and never wait for a standby: this module waits
 * itself.  Ends (CLEAR) are not waited for: the WAL writer flushes them
 * within wal_writer_delay, and any later grant's wait covers them (WAL is
 * flushed in order).  A lost end only keeps a lease until its expiry on
 * the server that replays, where its holder's retry of acquire (same owner,
 * same role) gets it back: never a second holder.
 *
 * On off: the setting is read by each backend (PGC_SIGHUP), but whether
 * the WAL describes the table is shared state (LeaseShared.wal_on),
 * changed only under the lease lock: the first change made by a backend
 * whose setting differs logs the transition (SNAPSHOT for on, OFF for
 * off, flushed before the change is reported).  The marker file
 * pg_lockctl_lease_wal exists while the WAL may hold SET records not
 * followed by an OFF, so that a later life started with durability off
 * logs its OFF first.
 *
 * Replay and promotion
 * --------------------
 * The startup process replays the records into the lease table itself
 * (shared memory), marking each entry carried.  In recovery nothing is
 * live (LeaseTokenLive), so a standby shows and grants nothing.  At the
 * end of recovery (rm_cleanup) the carried leases that have not run out
 * stay; from then on they are live though their token is of an older era
 * (lease_carried_live): the same lease, same holder, same token, carried
 * exactly by the history the new primary continues.  New grants get
 * tokens of the new era, above every carried one.  Carry-over happens only
 * where the replayed WAL is that history: a standby (standby.signal)
 * promoted, or crash recovery of a primary (no signal file, no
 * backup_label); archive recovery to a target and a restored backup
 * started as a primary (a copy, whose original may still grant) drop the
 * replayed leases, as they drop the shutdown dump.  A raised token floor
 * that moves the era ends carried leases too.
 *
 * Locking: the startup process takes the lease lock exclusively for each
 * record it replays; writers hold it exclusively while they log.
 *
 * Known gap: a checkpoint that starts and completes with no lease change
 * and no expiry worker pass in between (an immediate CHECKPOINT, then a
 * crash within lockctl.expiry_interval) leaves crash recovery without the
 * leases granted before it: they are lost, as with durability off, and
 * tokens still rise.  docs/ha.md has the design and the measured cost.
 *
 * src/lease_wal.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <sys/stat.h>
#include <unistd.h>

#include "access/xlog.h"
#include "access/xlog_internal.h"
#include "access/xloginsert.h"
#include "access/xlogreader.h"
#include "lib/stringinfo.h"
#include "miscadmin.h"
#include "replication/syncrep.h"
#include "storage/fd.h"
#include "storage/lwlock.h"
#include "utils/guc.h"
#include "utils/hsearch.h"
#include "utils/timestamp.h"

#include "lease.h"

/* see the header comment: the extension range, not the experimental id */
#define LEASE_RMGR_ID			201
#define LEASE_RMGR_NAME			"lockctl_lease"

#define XLOG_LEASE_SET			0x00
#define XLOG_LEASE_CLEAR		0x10
#define XLOG_LEASE_SNAPSHOT		0x20
#define XLOG_LEASE_OFF			0x30

/* exists while the WAL may hold lease records not followed by an OFF */
#define LEASE_WAL_MARKER		"pg_lockctl_lease_wal"

bool		lockctl_lease_durability = false;

/* a SET record, and each lease of a SNAPSHOT: then resource, then owner */
typedef struct xl_lease_set
{
	Oid			dbid;
	Oid			roleid;
	int64		token;
	TimestampTz acquired_at;
	TimestampTz expires_at;		/* wall clock */
	int64		remaining_us;	/* time it had left when logged */
	uint16		reslen;
	uint16		ownerlen;
} xl_lease_set;

/* a CLEAR record: then resource */
typedef struct xl_lease_clear
{
	Oid			dbid;
	int64		token;
	uint16		reslen;
} xl_lease_clear;

/* the end of this backend's last record not yet waited for */
static XLogRecPtr lease_wal_pending = InvalidXLogRecPtr;

static void lease_wal_redo(XLogReaderState *record);
static void lease_wal_desc(StringInfo buf, XLogReaderState *record);
static const char *lease_wal_identify(uint8 info);
static void lease_wal_cleanup(void);
static bool lease_wal_durable(void);
static void lease_wal_snapshot(void);
static void lease_wal_marker(bool on, int elevel);
static void lease_redo_set(const xl_lease_set *x, const char *res,
						   const char *owner, int64 now_mono,
						   TimestampTz now_wall);
static void lease_redo_forget_all(void);
static void lease_redo_unhold(LeaseEntry *e);

static RmgrData lease_rmgr = {
	.rm_name = LEASE_RMGR_NAME,
	.rm_redo = lease_wal_redo,
	.rm_desc = lease_wal_desc,
	.rm_identify = lease_wal_identify,
	.rm_startup = NULL,
	.rm_cleanup = lease_wal_cleanup,
	.rm_mask = NULL,
	.rm_decode = NULL
};

/*
 * Called by LeaseInit: the setting and the resource manager.
 */
void
lease_wal_init(void)
{
	/*
	 * PGC_SIGHUP: one value for the whole server (a per-session choice would
	 * let one session's unlogged grant slip between another's logged ones
	 * and make the carried table wrong; the transition records cover the
	 * moment backends disagree).  Off by default: a grant then costs a WAL
	 * flush, and with synchronous replication a round trip (bench/README.md).
	 */
	DefineCustomBoolVariable("lockctl.lease_durability",
							 gettext_noop("Writes every change of an exclusive lease to WAL, so that live leases survive a switchover, a failover with synchronous replication, and a crash."),
							 gettext_noop("A grant or renew then waits for its WAL record to be flushed (and replicated, under synchronous replication). Standbys must load lockctl through shared_preload_libraries."),
							 &lockctl_lease_durability,
							 false,
							 PGC_SIGHUP,
							 0,
							 NULL, NULL, NULL);
	RegisterCustomRmgr(LEASE_RMGR_ID, &lease_rmgr);
}

/*
 * At postmaster start (LeaseEpochStartup): may leases replayed from WAL be
 * carried over at the end of recovery, and may the WAL already hold lease
 * records (the marker file)?  Caller is the postmaster; lease_shared is
 * new.
 */
void
lease_wal_startup(bool carry_ok)
{
	struct stat sb;

	lease_shared->wal_carry_ok = carry_ok;
	lease_shared->wal_on = (stat(LEASE_WAL_MARKER, &sb) == 0);
	lease_shared->wal_snap_redo = InvalidXLogRecPtr;
}

/*
 * Is a carried lease (replayed from WAL, or restored from the dump of a
 * server that carried it) live as far as its era goes?  After recovery,
 * always: see the header.
 */
bool
lease_carried_live(LeaseEntry *e)
{
	return e->carried && !RecoveryInProgress();
}

/*
 * Should a change of the lease table be logged?  Logs the transition
 * records when this backend's setting differs from the shared state, and
 * a snapshot when the redo point moved since the last one.  Caller holds
 * the lease lock exclusively.
 */
static bool
lease_wal_durable(void)
{
	if (lease_shared == NULL || RecoveryInProgress())
		return false;
	if (!lockctl_lease_durability)
	{
		if (lease_shared->wal_on)
		{
			int32		dummy = 0;
			XLogRecPtr	lsn;

			XLogBeginInsert();
			XLogRegisterData((char *) &dummy, sizeof(dummy));
			lsn = XLogInsert(LEASE_RMGR_ID, XLOG_LEASE_OFF);
			/* before any unlogged change is reported */
			XLogFlush(lsn);
			lease_wal_pending = Max(lease_wal_pending, lsn);
			lease_shared->wal_on = false;
			lease_shared->wal_snap_redo = InvalidXLogRecPtr;
			lease_wal_marker(false, LOG);
		}
		return false;
	}
	if (!lease_shared->wal_on ||
		lease_shared->wal_snap_redo != GetRedoRecPtr())
		lease_wal_snapshot();
	return true;
}

/*
 * Create (durably, before the first record) or remove the marker file.
 * The startup process passes LOG: a replay must not stop for it.
 */
static void
lease_wal_marker(bool on, int elevel)
{
	if (on)
	{
		const char *tmp = LEASE_WAL_MARKER ".tmp";
		FILE	   *f = AllocateFile(tmp, PG_BINARY_W);

		if (f == NULL || FreeFile(f) != 0)
		{
			ereport(elevel,
					(errcode_for_file_access(),
					 errmsg("could not create file \"%s\": %m", tmp)));
			return;
		}
		(void) durable_rename(tmp, LEASE_WAL_MARKER, elevel);
	}
	else if (unlink(LEASE_WAL_MARKER) != 0 && errno != ENOENT)
		ereport(LOG,
				(errcode_for_file_access(),
				 errmsg("could not remove file \"%s\": %m", LEASE_WAL_MARKER)));
}

/*
 * Append the SET image of e to buf.
 */
static void
lease_wal_image(StringInfo buf, LeaseEntry *e, int64 now_mono,
				TimestampTz now_wall)
{
	xl_lease_set x;

	memset(&x, 0, sizeof(x));
	x.dbid = e->key.dbid;
	x.roleid = e->roleid;
	x.token = e->token;
	x.acquired_at = e->acquired_at;
	x.remaining_us = e->expires_mono - now_mono;
	x.expires_at = now_wall + x.remaining_us;
	x.reslen = (uint16) strlen(e->key.resource);
	x.ownerlen = (uint16) strlen(e->owner);
	appendBinaryStringInfo(buf, (char *) &x, sizeof(x));
	appendBinaryStringInfo(buf, e->key.resource, x.reslen);
	appendBinaryStringInfo(buf, e->owner, x.ownerlen);
}

/*
 * Would e be carried: a held, live exclusive lease with an expiry (not
 * bound to its session).
 */
static bool
lease_wal_carries(LeaseEntry *e, int64 now)
{
	return e->held && e->permits == 1 && e->nholders == 0 &&
		e->expires_mono < LEASE_EXPIRES_NEVER && lease_is_live(e, now);
}

/*
 * Log the whole table of live exclusive leases.  Caller holds the lease
 * lock exclusively and checked that the server is not in recovery.
 */
static void
lease_wal_snapshot(void)
{
	StringInfoData buf;
	HASH_SEQ_STATUS seq;
	LeaseEntry *e;
	int64		now_mono = lease_now_mono();
	TimestampTz now_wall = GetCurrentTimestamp();
	int32		count = 0;
	XLogRecPtr	redo = GetRedoRecPtr();
	XLogRecPtr	lsn;

	if (!lease_shared->wal_on)
		lease_wal_marker(true, ERROR);

	initStringInfo(&buf);
	appendBinaryStringInfo(&buf, (char *) &count, sizeof(count));
	hash_seq_init(&seq, lease_hash);
	while ((e = hash_seq_search(&seq)) != NULL)
	{
		if (!lease_wal_carries(e, now_mono))
			continue;
		lease_wal_image(&buf, e, now_mono, now_wall);
		count++;
	}
	memcpy(buf.data, &count, sizeof(count));

	XLogBeginInsert();
	XLogRegisterData(buf.data, buf.len);
	lsn = XLogInsert(LEASE_RMGR_ID, XLOG_LEASE_SNAPSHOT);
	pfree(buf.data);

	lease_wal_pending = Max(lease_wal_pending, lsn);
	lease_shared->wal_on = true;
	lease_shared->wal_snap_redo = redo;
}

/*
 * Log e's lease as it is now (a grant, or a new expiry), if durability is
 * on.  Caller holds the lease lock exclusively.
 */
void
lease_wal_set(LeaseEntry *e, int64 now)
{
	StringInfoData buf;
	XLogRecPtr	lsn;

	if (!lease_wal_durable() || e->expires_mono >= LEASE_EXPIRES_NEVER)
		return;
	initStringInfo(&buf);
	lease_wal_image(&buf, e, now, GetCurrentTimestamp());
	XLogBeginInsert();
	XLogRegisterData(buf.data, buf.len);
	lsn = XLogInsert(LEASE_RMGR_ID, XLOG_LEASE_SET);
	pfree(buf.data);
	lease_wal_pending = Max(lease_wal_pending, lsn);
}

/*
 * Log the end of e's lease (held by token), if durability is on and the
 * WAL describes the table.  A session-bound lease was never logged, or was
 * cleared when it was bound.  No transition record here: ends happen in
 * commit callbacks too (a dropped role's leases), where nothing may fail,
 * and an end the WAL misses only keeps a lease until its expiry on the
 * server that replays (a grant, always logged or preceded by OFF, would
 * replace it).  Caller holds the lease lock exclusively.
 */
void
lease_wal_clear(LeaseEntry *e, int64 token)
{
	xl_lease_clear x;
	XLogRecPtr	lsn;

	if (e->expires_mono >= LEASE_EXPIRES_NEVER || !lockctl_lease_durability ||
		lease_shared == NULL || !lease_shared->wal_on || RecoveryInProgress())
		return;
	memset(&x, 0, sizeof(x));
	x.dbid = e->key.dbid;
	x.token = token;
	x.reslen = (uint16) strlen(e->key.resource);
	XLogBeginInsert();
	XLogRegisterData((char *) &x, sizeof(x));
	XLogRegisterData(e->key.resource, x.reslen);
	lsn = XLogInsert(LEASE_RMGR_ID, XLOG_LEASE_CLEAR);
	lease_wal_pending = Max(lease_wal_pending, lsn);
}

/*
 * A raised token floor moved the era: log the table as it is now (the
 * leases of the era left are no longer live, so not in it).  Caller holds
 * the lease lock exclusively.
 */
void
lease_wal_era_moved(void)
{
	if (lease_wal_durable())
		lease_wal_snapshot();
}

/*
 * An expiry worker's pass: if the redo point moved since the last
 * snapshot, log one now, so that a checkpoint without lease changes still
 * ends up covered.  Cheap when there is nothing to do (no lock).
 */
void
LeaseWalCheckpointed(void)
{
	if (!lockctl_lease_durability || lease_shared == NULL ||
		RecoveryInProgress())
		return;
	if (lease_shared->wal_on && lease_shared->wal_snap_redo == GetRedoRecPtr())
		return;
	LWLockAcquire(lease_shared->lock, LW_EXCLUSIVE);
	(void) lease_wal_durable();
	lease_unlock();
	/* nobody waits for this one: the WAL writer flushes it */
	lease_wal_pending = InvalidXLogRecPtr;
}

/*
 * Before a grant or renew is reported: wait until this backend's records
 * are flushed, and acknowledged by the synchronous standbys if synchronous
 * replication is on.  Caller holds no LWLock.  A cancel during the
 * standby wait ends it with PostgreSQL's warning, as for a commit.
 */
void
LeaseWalWait(void)
{
	XLogRecPtr	lsn = lease_wal_pending;

	if (XLogRecPtrIsInvalid(lsn))
		return;
	lease_wal_pending = InvalidXLogRecPtr;
	XLogFlush(lsn);
	/* SyncRepWaitForLSN expects interrupts held, as at a commit */
	HOLD_INTERRUPTS();
	SyncRepWaitForLSN(lsn, false);
	RESUME_INTERRUPTS();
}

/*
 * Redo: apply one record to the lease table (startup process).
 */
static void
lease_wal_redo(XLogReaderState *record)
{
	uint8		info = XLogRecGetInfo(record) & ~XLR_INFO_MASK;
	char	   *data = XLogRecGetData(record);
	Size		len = XLogRecGetDataLen(record);
	int64		now_mono = lease_now_mono();
	TimestampTz now_wall = GetCurrentTimestamp();

	if (lease_shared == NULL || lease_hash == NULL)
		elog(PANIC, "lockctl lease table is not available for WAL replay");

	LWLockAcquire(lease_shared->lock, LW_EXCLUSIVE);

	/*
	 * This server's WAL now holds lease records (or no longer does): a
	 * later life of it, promoted with durability off, must log OFF first.
	 */
	if (info != XLOG_LEASE_OFF && info != XLOG_LEASE_CLEAR &&
		!lease_shared->wal_on)
	{
		lease_wal_marker(true, LOG);
		lease_shared->wal_on = true;
	}
	else if (info == XLOG_LEASE_OFF && lease_shared->wal_on)
	{
		lease_wal_marker(false, LOG);
		lease_shared->wal_on = false;
	}

	switch (info)
	{
		case XLOG_LEASE_SET:
			{
				xl_lease_set x;

				memcpy(&x, data, sizeof(x));
				lease_redo_set(&x, data + sizeof(x),
							   data + sizeof(x) + x.reslen,
							   now_mono, now_wall);
				break;
			}
		case XLOG_LEASE_CLEAR:
			{
				xl_lease_clear x;
				LeaseKey	key;
				LeaseEntry *e;

				memcpy(&x, data, sizeof(x));
				memset(&key, 0, sizeof(key));
				key.dbid = x.dbid;
				memcpy(key.resource, data + sizeof(x),
					   Min(x.reslen, LOCKCTL_NAME_MAXLEN));
				e = hash_search(lease_hash, &key, HASH_FIND, NULL);
				if (e != NULL && e->held && e->token == x.token)
					lease_redo_unhold(e);
				break;
			}
		case XLOG_LEASE_SNAPSHOT:
			{
				int32		count;
				Size		off = sizeof(count);

				memcpy(&count, data, sizeof(count));
				lease_redo_forget_all();
				for (int i = 0; i < count && off < len; i++)
				{
					xl_lease_set x;

					memcpy(&x, data + off, sizeof(x));
					lease_redo_set(&x, data + off + sizeof(x),
								   data + off + sizeof(x) + x.reslen,
								   now_mono, now_wall);
					off += sizeof(x) + x.reslen + x.ownerlen;
				}
				break;
			}
		case XLOG_LEASE_OFF:
			lease_redo_forget_all();
			break;
		default:
			lease_unlock();
			elog(PANIC, "lockctl lease redo: unknown record type %u", info);
	}
	lease_unlock();
}

/*
 * Replay one lease: the entry of its resource gets it, replacing a lease
 * of another token.  Caller holds the lease lock exclusively.
 */
static void
lease_redo_set(const xl_lease_set *x, const char *res, const char *owner,
			   int64 now_mono, TimestampTz now_wall)
{
	LeaseKey	key;
	LeaseEntry *e;
	bool		found;

	memset(&key, 0, sizeof(key));
	key.dbid = x->dbid;
	memcpy(key.resource, res, Min(x->reslen, LOCKCTL_NAME_MAXLEN));
	e = hash_search(lease_hash, &key, HASH_FIND, NULL);
	if (e == NULL)
	{
		if (lease_shared->nentries >= lockctl_max_leases)
			e = NULL;
		else
			e = hash_search(lease_hash, &key, HASH_ENTER_NULL, &found);
		if (e == NULL)
		{
			ereport(LOG,
					(errmsg("lockctl: no room in the lease table to replay the lease on \"%s\"; it is dropped",
							key.resource),
					 errhint("Give this server at least the \"lockctl.max_leases\" of its primary.")));
			return;
		}
		lease_shared->nentries++;
		memset(((char *) e) + sizeof(LeaseKey), 0,
			   sizeof(LeaseEntry) - sizeof(LeaseKey));
		dlist_init(&e->waiters);
		dlist_init(&e->holders);
		e->permits = 1;
	}
	else if (e->held && e->token != x->token)
		lease_redo_unhold(e);
	if (!e->held)
		lease_role_add(x->roleid, 1);
	e->held = true;
	e->carried = true;
	e->token = x->token;
	e->roleid = x->roleid;
	memset(e->owner, 0, sizeof(e->owner));
	memcpy(e->owner, owner, Min(x->ownerlen, LOCKCTL_NAME_MAXLEN));
	e->acquired_at = x->acquired_at;
	/*
	 * The wall-clock expiry, never more than the time it had left when it
	 * was logged: a replaying machine whose clock is behind the primary's
	 * does not stretch it.  (The monotonic clocks of two machines cannot be
	 * compared.)
	 */
	e->expires_mono = now_mono + Min(x->expires_at - now_wall, x->remaining_us);
	e->set_id = 0;
}

/*
 * The lease on e ended in the replayed history.  Caller holds the lease
 * lock exclusively.
 */
static void
lease_redo_unhold(LeaseEntry *e)
{
	e->held = false;
	e->carried = false;
	lease_role_add(e->roleid, -1);
	lease_maybe_remove(e);
}

/*
 * Forget every held exclusive lease (a snapshot follows, or durability was
 * turned off).  In recovery nobody else uses the table.  Caller holds the
 * lease lock exclusively.
 */
static void
lease_redo_forget_all(void)
{
	HASH_SEQ_STATUS seq;
	LeaseEntry *e;

	hash_seq_init(&seq, lease_hash);
	while ((e = hash_seq_search(&seq)) != NULL)
		if (e->held && e->nholders == 0)
			lease_redo_unhold(e);
}

/*
 * End of recovery (startup process, before the server accepts writes):
 * keep the replayed leases that have not run out if this history may
 * carry them (lease_wal_startup), else forget them.
 */
static void
lease_wal_cleanup(void)
{
	HASH_SEQ_STATUS seq;
	LeaseEntry *e;
	int64		now = lease_now_mono();
	int			kept = 0;
	int			dropped = 0;

	if (lease_shared == NULL)
		return;
	LWLockAcquire(lease_shared->lock, LW_EXCLUSIVE);
	hash_seq_init(&seq, lease_hash);
	while ((e = hash_seq_search(&seq)) != NULL)
	{
		if (!e->held || !e->carried)
			continue;
		if (!lease_shared->wal_carry_ok)
		{
			lease_redo_unhold(e);
			dropped++;
		}
		else if (now >= e->expires_mono)
			lease_redo_unhold(e);
		else
			kept++;
	}
	lease_shared->wal_carried = kept;
	/* the first change after recovery logs a snapshot of its own */
	lease_shared->wal_snap_redo = InvalidXLogRecPtr;
	lease_unlock();

	if (kept > 0)
		ereport(LOG,
				(errmsg("lockctl carried %d live lease(s) over from WAL", kept)));
	if (dropped > 0)
		ereport(LOG,
				(errmsg("lockctl dropped %d lease(s) replayed from WAL: this server does not continue the history that granted them",
						dropped),
				 errdetail("Archive recovery and a restored backup started as a primary do not carry leases.")));
}

static const char *
lease_wal_identify(uint8 info)
{
	switch (info & ~XLR_INFO_MASK)
	{
		case XLOG_LEASE_SET:
			return "SET";
		case XLOG_LEASE_CLEAR:
			return "CLEAR";
		case XLOG_LEASE_SNAPSHOT:
			return "SNAPSHOT";
		case XLOG_LEASE_OFF:
			return "OFF";
	}
	return NULL;
}

static void
lease_wal_desc(StringInfo buf, XLogReaderState *record)
{
	uint8		info = XLogRecGetInfo(record) & ~XLR_INFO_MASK;
	char	   *data = XLogRecGetData(record);

	if (info == XLOG_LEASE_SET)
	{
		xl_lease_set x;

		memcpy(&x, data, sizeof(x));
		appendStringInfo(buf, "db %u resource \"%.*s\" token " INT64_FORMAT " role %u",
						 x.dbid, (int) x.reslen, data + sizeof(x), x.token,
						 x.roleid);
	}
	else if (info == XLOG_LEASE_CLEAR)
	{
		xl_lease_clear x;

		memcpy(&x, data, sizeof(x));
		appendStringInfo(buf, "db %u resource \"%.*s\" token " INT64_FORMAT,
						 x.dbid, (int) x.reslen, data + sizeof(x), x.token);
	}
	else if (info == XLOG_LEASE_SNAPSHOT)
	{
		int32		count;

		memcpy(&count, data, sizeof(count));
		appendStringInfo(buf, "%d lease(s)", count);
	}
}
