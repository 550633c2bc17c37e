/*-------------------------------------------------------------------------
 *
 * worker.c
 *	  The expiry worker's shared state: the slots of the workers, the queue
 *	  of wake-ups, lockctl.wake_expiry_worker(), the function behind the
 *	  view lockctl.workers, and the back-off every retry uses.
 *
 * Design
 * ------
 * One static background worker, the *launcher*, is registered by the
 * preload.  It connects to no database (it only reads the shared catalog
 * pg_database) and starts one dynamic *expiry worker* per database that
 * accepts connections, is not a template, and passes the optional
 * lockctl.worker_databases filter.  So every database where the extension
 * is installed is served without configuration, and a database costs a
 * worker only while the extension is in it.
 *
 * The launcher is in launcher.c, an expiry worker in expiry_worker.c, the
 * hook that keeps workers out of the way of DROP DATABASE in
 * worker_utility.c; docs/worker.md tells the whole story.
 *
 * Shared state and locking protocol
 * ---------------------------------
 * ExpiryShared holds the launcher's pid and latch, a small queue of wake
 * requests, and one ExpirySlot per database being served (as many slots as
 * max_worker_processes, since each served database needs a worker slot).
 * Everything is protected by one LWLock, ExpiryShared->lock:
 *	- the launcher allocates and frees slots and writes dboid, dbname,
 *	  generation and state STARTING, under the lock in exclusive mode;
 *	- a worker claims its slot (pid, latch, state RUNNING) only if dboid and
 *	  generation still match what it was started with, and on exit (a
 *	  before_shmem_exit callback) clears pid and latch and wakes the launcher;
 *	- a worker adds to its counters, and the utility hook sets paused_until,
 *	  under the lock in exclusive mode;
 *	- a worker sets waiting_on after each pass, under the lock in exclusive
 *	  mode;
 *	- the lockctl.workers view copies slots under the lock in shared mode.
 * The lock is never held across anything that can error or wait, and a
 * signal is sent to a worker's pid only while the lock is held, when the
 * pid is known to be live (a worker clears it under the lock before it
 * exits).
 *
 * The counters live only in shared memory: they restart from zero with the
 * server, which is what pg_stat_activity-like views do.
 *
 * src/worker.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/xact.h"
#include "catalog/pg_authid.h"
#include "catalog/pg_type.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "storage/ipc.h"
#include "storage/lwlock.h"
#include "storage/proc.h"
#include "storage/procarray.h"
#include "storage/shmem.h"
#include "utils/acl.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/syscache.h"
#include "utils/wait_event.h"

#include "worker.h"

#define WORKER_TRANCHE_NAME		"lockctl_worker"

ExpiryShared *expiry_shared = NULL;

/* Backend-local: wakes to send when the current transaction commits. */
static bool wake_pending_db = false;
static bool wake_pending_rescan = false;
static bool wake_callback_registered = false;

static int	expiry_nslots(void);
static Size worker_shmem_size(void);
static void worker_shmem_startup(void);
static void expiry_xact_callback(XactEvent event, void *arg);
static bool worker_may_see(Oid dboid, bool all_stats);

static const LockctlShmemPart worker_shmem_part = {
	worker_shmem_size, WORKER_TRANCHE_NAME, worker_shmem_startup
};

/*
 * The expiry worker's part of _PG_init: its shared state, then each file's
 * settings and registrations.
 */
void
WorkerInit(void)
{
	lockctl_shmem_register(&worker_shmem_part);
	LauncherInit();
	ExpiryWorkerInit();
	WorkerUtilityInit();
}

/*
 * One slot per possible background worker: a served database needs one.
 */
static int
expiry_nslots(void)
{
	return Max(max_worker_processes, 1);
}

static Size
worker_shmem_size(void)
{
	return add_size(offsetof(ExpiryShared, slots),
					mul_size(expiry_nslots(), sizeof(ExpirySlot)));
}

static void
worker_shmem_startup(void)
{
	bool		found;

	LWLockAcquire(AddinShmemInitLock, LW_EXCLUSIVE);
	expiry_shared = ShmemInitStruct("lockctl expiry workers",
									worker_shmem_size(), &found);
	if (!found)
	{
		memset(expiry_shared, 0, worker_shmem_size());
		expiry_shared->lock = &(GetNamedLWLockTranche(WORKER_TRANCHE_NAME))->lock;
		expiry_shared->nslots = expiry_nslots();
	}
	LWLockRelease(AddinShmemInitLock);
}

/*
 * The one back-off of the worker: after failures consecutive failures (0
 * for the first), wait min_ms doubled that many times, at most max_ms.
 * The launcher uses it to restart a worker that keeps dying and to probe
 * a database that lacks the extension; a worker, to retry failed passes.
 */
long
worker_backoff_ms(int min_ms, int max_ms, int failures)
{
	int64		ms = (int64) min_ms << Min(Max(failures, 0), 16);

	return (long) Min(ms, (int64) Max(min_ms, max_ms));
}

/* ----------------------------------------------------------------
 * Waking the launcher (from any backend)
 * ----------------------------------------------------------------
 */

/*
 * Ask for a wake of the launcher when the current transaction commits:
 * for this database (start its worker, or make it run a pass now), and/or
 * to re-read pg_database.  Nothing happens if the transaction aborts.
 */
void
expiry_request_wake(bool this_db, bool rescan)
{
	if (!wake_callback_registered)
	{
		RegisterXactCallback(expiry_xact_callback, NULL);
		wake_callback_registered = true;
	}
	wake_pending_db |= this_db;
	wake_pending_rescan |= rescan;
}

static void
expiry_xact_callback(XactEvent event, void *arg)
{
	Latch	   *latch = NULL;

	switch (event)
	{
		case XACT_EVENT_COMMIT:
			if (!(wake_pending_db || wake_pending_rescan) || expiry_shared == NULL)
				break;
			LWLockAcquire(expiry_shared->lock, LW_EXCLUSIVE);
			if (wake_pending_db && OidIsValid(MyDatabaseId))
			{
				int			i;

				for (i = 0; i < expiry_shared->nwake; i++)
					if (expiry_shared->wake[i] == MyDatabaseId)
						break;
				if (i == expiry_shared->nwake)
				{
					if (expiry_shared->nwake < WAKE_QUEUE_LEN)
						expiry_shared->wake[expiry_shared->nwake++] = MyDatabaseId;
					else
						expiry_shared->wake_rescan = true;
				}
			}
			if (wake_pending_rescan)
				expiry_shared->wake_rescan = true;
			latch = expiry_shared->launcher_latch;
			if (latch)
				SetLatch(latch);
			LWLockRelease(expiry_shared->lock);
			break;
		case XACT_EVENT_ABORT:
		case XACT_EVENT_PREPARE:
			break;
		default:
			return;
	}
	wake_pending_db = false;
	wake_pending_rescan = false;
}

/*
 * lockctl.wake_expiry_worker(): when this transaction commits, run this
 * database's expiry worker now (starting it if none runs).  The install
 * script calls it so that CREATE EXTENSION is picked up at once.
 */
PG_FUNCTION_INFO_V1(lockctl_wake_expiry_worker);
Datum
lockctl_wake_expiry_worker(PG_FUNCTION_ARGS)
{
	expiry_request_wake(true, false);
	PG_RETURN_VOID();
}

/* ----------------------------------------------------------------
 * lockctl.workers
 * ----------------------------------------------------------------
 */

/*
 * lockctl_internal.workers() (worker_status in 1.0's SQL), behind the view
 * lockctl.workers: one row per database served (or being tried) by an
 * expiry worker, across the cluster.  The C symbols keep their 1.0 names,
 * which 1.0's SQL objects name.
 */
PG_FUNCTION_INFO_V1(lockctl_worker_status);
Datum
lockctl_worker_status(PG_FUNCTION_ARGS)
{
#define WORKER_STATUS_COLS 11
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	ExpirySlot *copy;
	int			nslots;
	int			i;
	bool		all_stats;
	TimestampTz now = GetCurrentTimestamp();

	InitMaterializedSRF(fcinfo, 0);
	if (expiry_shared == NULL)
		return (Datum) 0;

	all_stats = has_privs_of_role(GetUserId(), ROLE_PG_READ_ALL_STATS);

	nslots = expiry_shared->nslots;
	copy = palloc(sizeof(ExpirySlot) * nslots);
	LWLockAcquire(expiry_shared->lock, LW_SHARED);
	memcpy(copy, expiry_shared->slots, sizeof(ExpirySlot) * nslots);
	LWLockRelease(expiry_shared->lock);

	for (i = 0; i < nslots; i++)
	{
		ExpirySlot *slot = &copy[i];
		Datum		values[WORKER_STATUS_COLS];
		bool		nulls[WORKER_STATUS_COLS];
		const char *state;
		bool		may_see_error;

		if (slot->state == SLOT_FREE)
			continue;
		memset(nulls, 0, sizeof(nulls));

		if (slot->paused_until > now && slot->pid == 0)
			state = "paused";
		else if (slot->state == SLOT_RUNNING && slot->has_extension)
			state = "running";
		else if (slot->state == SLOT_RUNNING)
			state = "starting";	/* not yet sure the extension is there */
		else if (slot->state == SLOT_STARTING)
			state = "starting";
		else
			state = "stopped";

		values[0] = ObjectIdGetDatum(slot->dboid);
		values[1] = NameGetDatum(&slot->dbname);
		values[2] = Int32GetDatum((int32) slot->pid);
		nulls[2] = (slot->pid == 0);
		values[3] = CStringGetTextDatum(state);
		values[4] = TimestampTzGetDatum(slot->started_at);
		nulls[4] = (slot->started_at == 0);
		values[5] = TimestampTzGetDatum(slot->last_run);
		nulls[5] = (slot->last_run == 0);
		values[6] = Int64GetDatum(slot->expired);
		values[7] = Int64GetDatum(slot->purged);
		values[8] = Int64GetDatum(slot->errors);

		may_see_error = worker_may_see(slot->dboid, all_stats);
		values[9] = CStringGetTextDatum(slot->last_error);
		nulls[9] = (slot->last_error[0] == '\0' || !may_see_error);
		values[10] = TimestampTzGetDatum(slot->last_error_at);
		nulls[10] = (slot->last_error_at == 0);

		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
	}
	return (Datum) 0;
}

/*
 * May the caller read what a worker says about database dboid (an error
 * text, what it waits for)?  It may name another database's objects or
 * sessions: members of pg_read_all_stats, and roles that may connect to
 * that database.
 */
static bool
worker_may_see(Oid dboid, bool all_stats)
{
	return all_stats ||
		(SearchSysCacheExists1(DATABASEOID, ObjectIdGetDatum(dboid)) &&
		 object_aclcheck(DatabaseRelationId, dboid, GetUserId(), ACL_CONNECT) == ACLCHECK_OK);
}

/*
 * lockctl_internal.worker_waiting_on(datid oid) returns text, behind the
 * column waiting_on of the view lockctl.workers: what holds back the expiry
 * worker of database datid.  While it waits for a lock (something skipped
 * SKIP LOCKED: a whole-table lock), the lock and the pids that block it;
 * else what its last pass had to leave (due holds other transactions have
 * locked, and whose: ExpirySlot.waiting_on); else NULL.  NULL too for a
 * caller that may not read about that database.
 */
PG_FUNCTION_INFO_V1(lockctl_worker_waiting_on);
Datum
lockctl_worker_waiting_on(PG_FUNCTION_ARGS)
{
	Oid			dboid = PG_GETARG_OID(0);
	pid_t		pid = 0;
	bool		found = false;
	char		waiting[WORKER_ERRMSG_LEN];
	PGPROC	   *proc;

	if (expiry_shared == NULL)
		PG_RETURN_NULL();
	LWLockAcquire(expiry_shared->lock, LW_SHARED);
	for (int i = 0; i < expiry_shared->nslots; i++)
	{
		ExpirySlot *slot = &expiry_shared->slots[i];

		if (slot->state == SLOT_FREE || slot->dboid != dboid)
			continue;
		found = true;
		pid = slot->pid;
		strlcpy(waiting, slot->waiting_on, sizeof(waiting));
		break;
	}
	LWLockRelease(expiry_shared->lock);
	if (!found ||
		!worker_may_see(dboid, has_privs_of_role(GetUserId(), ROLE_PG_READ_ALL_STATS)))
		PG_RETURN_NULL();

	/* Waiting in the lock manager right now (read as pg_stat_activity does) */
	proc = pid != 0 ? BackendPidGetProc(pid) : NULL;
	if (proc != NULL)
	{
		uint32		info = *((volatile uint32 *) &proc->wait_event_info);

		if ((info & 0xFF000000) == PG_WAIT_LOCK)
		{
			ArrayType  *blockers;
			Datum	   *pids;
			int			n;
			StringInfoData buf;

			blockers = DatumGetArrayTypeP(DirectFunctionCall1(pg_blocking_pids,
															  Int32GetDatum(pid)));
			deconstruct_array(blockers, INT4OID, sizeof(int32), true,
							  TYPALIGN_INT, &pids, NULL, &n);
			initStringInfo(&buf);
			appendStringInfo(&buf, "lock on %s", pgstat_get_wait_event(info));
			for (int i = 0; i < n; i++)
				appendStringInfo(&buf, "%s%d", i == 0 ? " (blocked by pid " : ", ",
								 DatumGetInt32(pids[i]));
			if (n > 0)
				appendStringInfoChar(&buf, ')');
			PG_RETURN_TEXT_P(cstring_to_text(buf.data));
		}
	}
	if (waiting[0] == '\0')
		PG_RETURN_NULL();
	PG_RETURN_TEXT_P(cstring_to_text(waiting));
}
