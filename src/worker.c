/*-------------------------------------------------------------------------
 *
 * worker.c
 *	  The background workers that expire holds and purge finished ones.
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
 * An expiry worker connects to its database as the bootstrap superuser and
 * loops: a pass calls lockctl.expire_holds(lockctl.expiry_batch_size) again
 * and again, each call in its own short transaction, while a batch comes
 * back full; then lockctl.purge_holds(lockctl.retention, batch) the same
 * way (unless retention is -1); then it sleeps lockctl.expiry_interval on
 * its latch.  The work of a pass is therefore proportional to the number of
 * due holds (the SQL functions use an index on the expiry time), never to
 * the number of holds.  Before each batch it checks, in the batch's own
 * transaction, that the extension exists; when it does not, the worker
 * records that and exits, and the launcher tries that database again only
 * at a slow cadence (LAUNCHER_ABSENT_RETRY_MIN_MS doubling up to
 * LAUNCHER_ABSENT_RETRY_MAX_MS).  At most LAUNCHER_MAX_PROBES workers that
 * have not yet found the extension run at once, so that a cluster with many
 * databases is probed a few at a time.
 *
 * Prompt pick-up: the install script ends with lockctl.wake_expiry_worker(),
 * which arranges for the launcher to be woken when the creating transaction
 * COMMITS (an XactCallback), naming the database; a wake for a database
 * without a worker starts one at once, a wake for a database with a worker
 * makes it run a pass at once.  Waking at commit, not at the call, matters:
 * a worker started before the commit would not see the extension yet.
 * CREATE DATABASE (which can copy a template that has the extension) and
 * the ALTER DATABASE forms that change what the launcher serves wake it the
 * same way, so new databases do not wait for the LAUNCHER_RESCAN_MS rescan,
 * which remains only as a safety net.
 *
 * Errors: a batch that fails is caught (PG_TRY), reported to the server log,
 * recorded in shared memory for the lockctl.workers view, its transaction
 * aborted, and the worker carries on after a back-off (the interval,
 * doubling per consecutive failure, at most WORKER_ERROR_BACKOFF_MAX_MS).
 * A worker that exits anyway (pg_terminate_backend, FATAL, failure to
 * connect) is started again by the launcher after WORKER_RESTART_MIN_MS,
 * doubling when it keeps dying young.  A crash of any process restarts the
 * whole server; the launcher, which has a bgw_restart_time, comes back with
 * it and starts the workers afresh.  The holds themselves are ordinary
 * tables and need nothing from us to survive.
 *
 * Recovery: both kinds use BgWorkerStart_RecoveryFinished, so nothing runs
 * on a hot standby; the launcher starts at promotion.
 *
 * DROP DATABASE: in PostgreSQL 15, DROP DATABASE (and CREATE DATABASE ...
 * TEMPLATE, ALTER DATABASE ... RENAME / SET TABLESPACE) refuse to run while
 * any other process is connected to the database; CountOtherDBBackends
 * only terminates autovacuum workers, not ours.  So a ProcessUtility hook
 * sees those commands coming, pauses the database's worker (the launcher
 * does not restart a paused one) and terminates it before the command
 * checks for other users.  It only does so for a role that owns the
 * database, i.e. one that may run the command anyway.
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

#include <signal.h>
#include <unistd.h>

#include "access/heapam.h"
#include "access/htup_details.h"
#include "access/table.h"
#include "access/tableam.h"
#include "access/xact.h"
#include "catalog/pg_authid.h"
#include "catalog/pg_database.h"
#include "catalog/pg_type.h"
#include "commands/dbcommands.h"
#include "commands/defrem.h"
#include "commands/extension.h"
#include "executor/spi.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "nodes/parsenodes.h"
#include "parser/parse_func.h"
#include "pgstat.h"
#include "postmaster/bgworker.h"
#include "postmaster/interrupt.h"
#include "storage/ipc.h"
#include "storage/latch.h"
#include "storage/lwlock.h"
#include "storage/proc.h"
#include "storage/shmem.h"
#include "tcop/utility.h"
#include "utils/acl.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/hsearch.h"
#include "utils/memutils.h"
#include "utils/snapmgr.h"
#include "utils/syscache.h"
#include "utils/timestamp.h"
#include "utils/varlena.h"

#include "lockctl.h"

/* How often the launcher re-reads pg_database even when nobody woke it. */
#define LAUNCHER_RESCAN_MS				(30 * 1000)
/* Retry cadence for a database where the extension was absent. */
#define LAUNCHER_ABSENT_RETRY_MIN_MS	(60 * 1000)
#define LAUNCHER_ABSENT_RETRY_MAX_MS	(10 * 60 * 1000)
/* Restart delay for a worker that exited for any other reason. */
#define WORKER_RESTART_MIN_MS			1000
#define WORKER_RESTART_MAX_MS			(60 * 1000)
/* A worker that ran at least this long resets the restart back-off. */
#define WORKER_HEALTHY_MS				(60 * 1000)
/* At most this many workers probing databases not known to have it. */
#define LAUNCHER_MAX_PROBES				4
/* Retry delay when no background worker slot was free. */
#define WORKER_NO_SLOT_RETRY_MS			(10 * 1000)
/* Longest pause after consecutive failed passes. */
#define WORKER_ERROR_BACKOFF_MAX_MS		(60 * 1000)
/* How long a database's worker stays paused around DROP DATABASE & co. */
#define WORKER_PAUSE_MS					(60 * 1000)
#define WORKER_PAUSE_AFTER_MS			(5 * 1000)

#define WAKE_QUEUE_LEN					32
#define WORKER_ERRMSG_LEN				256

typedef enum ExpirySlotState
{
	SLOT_FREE = 0,
	SLOT_STARTING,				/* registered, not attached yet */
	SLOT_RUNNING,				/* attached, serving */
	SLOT_STOPPED				/* no process; counters kept */
} ExpirySlotState;

typedef enum ExpiryExitReason
{
	EXIT_UNKNOWN = 0,			/* died (terminated, FATAL, ...) */
	EXIT_NO_EXTENSION,			/* the extension is not installed */
	EXIT_STOP_REQUESTED			/* the launcher asked it to stop */
} ExpiryExitReason;

typedef struct ExpirySlot
{
	ExpirySlotState state;
	Oid			dboid;
	NameData	dbname;
	uint32		generation;		/* bumped at each start */
	pid_t		pid;			/* 0 when no process runs */
	Latch	   *latch;			/* the worker's latch, NULL when none */
	bool		stop_requested;
	bool		has_extension;	/* the worker found the extension */
	ExpiryExitReason exit_reason;
	TimestampTz paused_until;	/* set by the utility hook */
	TimestampTz started_at;
	TimestampTz last_run;		/* end of the last complete pass */
	int64		passes;
	int64		expired;
	int64		purged;
	int64		errors;
	TimestampTz last_error_at;
	char		last_error[WORKER_ERRMSG_LEN];
} ExpirySlot;

typedef struct ExpiryShared
{
	LWLock	   *lock;
	pid_t		launcher_pid;
	Latch	   *launcher_latch;
	int			nwake;
	bool		wake_rescan;	/* re-read pg_database */
	Oid			wake[WAKE_QUEUE_LEN];
	int			nslots;
	ExpirySlot	slots[FLEXIBLE_ARRAY_MEMBER];
} ExpiryShared;

/* What the launcher passes to a worker besides the slot number. */
typedef struct ExpiryWorkerArgs
{
	Oid			dboid;
	uint32		generation;
} ExpiryWorkerArgs;

/* The launcher's private view of one database. */
typedef struct LauncherDb
{
	Oid			dboid;			/* hash key */
	NameData	dbname;
	bool		seen;			/* in the latest scan, and wanted */
	int			slotno;			/* -1 when it has no slot */
	BackgroundWorkerHandle *handle; /* NULL when adopted or none */
	bool		running;		/* a worker was started or adopted */
	TimestampTz next_start;		/* do not start before */
	int			backoff_ms;		/* next restart delay */
	bool		absent;			/* last worker found no extension */
	bool		present;		/* the current worker found it */
	bool		woken;			/* a wake came while a worker ran */
} LauncherDb;

static ExpiryShared *expiry_shared = NULL;
static ProcessUtility_hook_type prev_process_utility = NULL;

/* Backend-local: wakes to send when the current transaction commits. */
static bool wake_pending_db = false;
static bool wake_pending_rescan = false;
static bool wake_callback_registered = false;

/* Launcher-local */
static HTAB *launcher_dbs = NULL;
static bool launcher_out_of_slots = false;

PGDLLEXPORT void lockctl_launcher_main(Datum main_arg);
PGDLLEXPORT void lockctl_expiry_worker_main(Datum main_arg);

static int	expiry_nslots(void);
static void expiry_process_utility(PlannedStmt *pstmt, const char *queryString,
								   bool readOnlyTree,
								   ProcessUtilityContext context,
								   ParamListInfo params,
								   QueryEnvironment *queryEnv,
								   DestReceiver *dest, QueryCompletion *qc);
static void expiry_request_wake(bool this_db, bool rescan);
static void expiry_xact_callback(XactEvent event, void *arg);
static void expiry_pause_database(Oid dboid, int ms, bool terminate);

static void launcher_adopt_slots(void);
static void launcher_scan_databases(void);
static void launcher_take_wakes(bool *rescan);
static void launcher_reap(LauncherDb *db, TimestampTz now);
static void launcher_start_worker(LauncherDb *db, TimestampTz now);
static void launcher_forget(LauncherDb *db);
static bool launcher_db_wanted(const char *name);
static long launcher_ms_until(TimestampTz now, TimestampTz when);

static void launcher_detach(int code, Datum arg);
static void worker_detach(int code, Datum arg);
static void worker_error_context(void *arg);
static bool worker_pass(int slotno);
/* What one batch of the worker does */
typedef enum WorkerBatchKind
{
	BATCH_EXPIRE_HOLDS,
	BATCH_PURGE_HOLDS,
	BATCH_PURGE_REQUESTS
} WorkerBatchKind;

static int	worker_batch(int slotno, WorkerBatchKind kind, int batch_size,
						 bool *absent);

/* ----------------------------------------------------------------
 * Registration and shared memory
 * ----------------------------------------------------------------
 */

/*
 * Register the launcher and the utility hook; called by _PG_init.
 */
void
ExpiryWorkerInit(void)
{
	BackgroundWorker worker;

	if (!process_shared_preload_libraries_in_progress)
		return;

	memset(&worker, 0, sizeof(worker));
	worker.bgw_flags = BGWORKER_SHMEM_ACCESS |
		BGWORKER_BACKEND_DATABASE_CONNECTION;
	worker.bgw_start_time = BgWorkerStart_RecoveryFinished;
	worker.bgw_restart_time = 5;
	snprintf(worker.bgw_library_name, BGW_MAXLEN, "lockctl");
	snprintf(worker.bgw_function_name, BGW_MAXLEN, "lockctl_launcher_main");
	snprintf(worker.bgw_name, BGW_MAXLEN, "lockctl launcher");
	snprintf(worker.bgw_type, BGW_MAXLEN, "lockctl launcher");
	worker.bgw_main_arg = (Datum) 0;
	worker.bgw_notify_pid = 0;
	RegisterBackgroundWorker(&worker);

	prev_process_utility = ProcessUtility_hook;
	ProcessUtility_hook = expiry_process_utility;
}

/*
 * One slot per possible background worker: a served database needs one.
 */
static int
expiry_nslots(void)
{
	return Max(max_worker_processes, 1);
}

Size
ExpiryWorkerShmemSize(void)
{
	return add_size(offsetof(ExpiryShared, slots),
					mul_size(expiry_nslots(), sizeof(ExpirySlot)));
}

void
ExpiryWorkerShmemRequest(void)
{
	RequestNamedLWLockTranche("lockctl_worker", 1);
}

void
ExpiryWorkerShmemStartup(void)
{
	bool		found;

	LWLockAcquire(AddinShmemInitLock, LW_EXCLUSIVE);
	expiry_shared = ShmemInitStruct("lockctl expiry workers",
									ExpiryWorkerShmemSize(), &found);
	if (!found)
	{
		memset(expiry_shared, 0, ExpiryWorkerShmemSize());
		expiry_shared->lock = &(GetNamedLWLockTranche("lockctl_worker"))->lock;
		expiry_shared->nslots = expiry_nslots();
	}
	LWLockRelease(AddinShmemInitLock);
}

/*
 * Check hook of lockctl.worker_databases: a comma-separated list of
 * database names (double-quote a name that has a comma or spaces).
 */
bool
lockctl_check_worker_databases(char **newval, void **extra, GucSource source)
{
	char	   *copy;
	List	   *names;

	if (*newval == NULL)
		return true;
	copy = pstrdup(*newval);
	if (!SplitGUCList(copy, ',', &names))
	{
		GUC_check_errdetail("List syntax is invalid.");
		pfree(copy);
		list_free(names);
		return false;
	}
	pfree(copy);
	list_free(names);
	return true;
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
static void
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
 * Keeping our workers out of the way of DROP DATABASE & co.
 * ----------------------------------------------------------------
 */

/*
 * Pause the worker of a database for ms milliseconds (0 resumes it), and
 * if terminate, end its process now.
 */
static void
expiry_pause_database(Oid dboid, int ms, bool terminate)
{
	int			i;

	if (expiry_shared == NULL)
		return;
	LWLockAcquire(expiry_shared->lock, LW_EXCLUSIVE);
	for (i = 0; i < expiry_shared->nslots; i++)
	{
		ExpirySlot *slot = &expiry_shared->slots[i];

		if (slot->state == SLOT_FREE || slot->dboid != dboid)
			continue;
		slot->paused_until = ms > 0 ?
			TimestampTzPlusMilliseconds(GetCurrentTimestamp(), ms) : 0;
		if (terminate && slot->pid != 0)
			kill(slot->pid, SIGTERM);
	}
	if (ms == 0 && expiry_shared->launcher_latch)
		SetLatch(expiry_shared->launcher_latch);
	LWLockRelease(expiry_shared->lock);
}

/*
 * The name of the database a utility statement needs free of other
 * connections, if any, and whether it changes which databases exist or
 * may be served.
 */
static const char *
expiry_utility_target(Node *parsetree, bool *rescan)
{
	ListCell   *lc;

	*rescan = false;
	switch (nodeTag(parsetree))
	{
		case T_DropdbStmt:
			*rescan = true;
			return ((DropdbStmt *) parsetree)->dbname;
		case T_CreatedbStmt:
			*rescan = true;
			foreach(lc, ((CreatedbStmt *) parsetree)->options)
			{
				DefElem    *opt = lfirst_node(DefElem, lc);

				if (strcmp(opt->defname, "template") == 0 && opt->arg)
					return defGetString(opt);
			}
			return NULL;
		case T_RenameStmt:
			if (((RenameStmt *) parsetree)->renameType != OBJECT_DATABASE)
				return NULL;
			*rescan = true;
			return ((RenameStmt *) parsetree)->subname;
		case T_AlterDatabaseStmt:
			*rescan = true;
			foreach(lc, ((AlterDatabaseStmt *) parsetree)->options)
			{
				DefElem    *opt = lfirst_node(DefElem, lc);

				if (strcmp(opt->defname, "tablespace") == 0)
					return ((AlterDatabaseStmt *) parsetree)->dbname;
			}
			return NULL;
		default:
			return NULL;
	}
}

/*
 * ProcessUtility hook: terminate and pause our worker of a database that
 * the statement needs free of other connections, and wake the launcher
 * when the set of databases may have changed.
 */
static void
expiry_process_utility(PlannedStmt *pstmt, const char *queryString,
					   bool readOnlyTree, ProcessUtilityContext context,
					   ParamListInfo params, QueryEnvironment *queryEnv,
					   DestReceiver *dest, QueryCompletion *qc)
{
	bool		rescan_flag = false;
	volatile bool rescan;
	const char *target = NULL;
	volatile Oid dboid = InvalidOid;

	if (expiry_shared != NULL && pstmt->utilityStmt != NULL)
		target = expiry_utility_target(pstmt->utilityStmt, &rescan_flag);
	rescan = rescan_flag;
	if (target != NULL)
	{
		dboid = get_database_oid(target, true);
		if (OidIsValid(dboid) && dboid != MyDatabaseId &&
			pg_database_ownercheck(dboid, GetUserId()))
			expiry_pause_database(dboid, WORKER_PAUSE_MS, true);
		else
			dboid = InvalidOid;
	}

	PG_TRY();
	{
		if (prev_process_utility)
			prev_process_utility(pstmt, queryString, readOnlyTree, context,
								 params, queryEnv, dest, qc);
		else
			standard_ProcessUtility(pstmt, queryString, readOnlyTree, context,
									params, queryEnv, dest, qc);
	}
	PG_CATCH();
	{
		if (OidIsValid(dboid))
			expiry_pause_database(dboid, 0, false);
		PG_RE_THROW();
	}
	PG_END_TRY();

	/*
	 * Success: keep the worker off a little longer, so that the launcher
	 * sees the committed catalog before it starts one again.
	 */
	if (OidIsValid(dboid))
		expiry_pause_database(dboid, WORKER_PAUSE_AFTER_MS, false);
	if (rescan)
		expiry_request_wake(false, true);
}

/* ----------------------------------------------------------------
 * The launcher
 * ----------------------------------------------------------------
 */

/*
 * Main of the launcher: keep one expiry worker per database that is
 * wanted and has the extension.
 */
void
lockctl_launcher_main(Datum main_arg)
{
	HASHCTL		ctl;
	TimestampTz next_scan = 0;

	pqsignal(SIGHUP, SignalHandlerForConfigReload);
	pqsignal(SIGTERM, die);
	BackgroundWorkerUnblockSignals();

	/* Connected to no database: pg_database (a shared catalog) only. */
	BackgroundWorkerInitializeConnection(NULL, NULL, 0);

	memset(&ctl, 0, sizeof(ctl));
	ctl.keysize = sizeof(Oid);
	ctl.entrysize = sizeof(LauncherDb);
	launcher_dbs = hash_create("lockctl launcher databases", 64, &ctl,
							   HASH_ELEM | HASH_BLOBS);

	LWLockAcquire(expiry_shared->lock, LW_EXCLUSIVE);
	expiry_shared->launcher_pid = MyProcPid;
	expiry_shared->launcher_latch = MyLatch;
	LWLockRelease(expiry_shared->lock);
	before_shmem_exit(launcher_detach, (Datum) 0);

	launcher_adopt_slots();

	ereport(LOG,
			(errmsg("lockctl launcher started")));

	for (;;)
	{
		HASH_SEQ_STATUS seq;
		LauncherDb *db;
		TimestampTz now;
		long		timeout;
		bool		rescan = false;
		int			nprobes;

		CHECK_FOR_INTERRUPTS();

		if (ConfigReloadPending)
		{
			ConfigReloadPending = false;
			ProcessConfigFile(PGC_SIGHUP);
			rescan = true;
		}

		launcher_take_wakes(&rescan);

		now = GetCurrentTimestamp();
		if (rescan || now >= next_scan)
		{
			launcher_scan_databases();
			now = GetCurrentTimestamp();
			next_scan = TimestampTzPlusMilliseconds(now, LAUNCHER_RESCAN_MS);
		}

		timeout = launcher_ms_until(now, next_scan);

		/*
		 * Count the workers still finding out whether their database has
		 * the extension, so that a cluster with many databases is probed a
		 * few at a time rather than all at once.
		 */
		nprobes = 0;
		hash_seq_init(&seq, launcher_dbs);
		while ((db = (LauncherDb *) hash_seq_search(&seq)) != NULL)
		{
			if (db->running && !db->present && db->slotno >= 0)
			{
				LWLockAcquire(expiry_shared->lock, LW_SHARED);
				db->present = expiry_shared->slots[db->slotno].has_extension;
				LWLockRelease(expiry_shared->lock);
				if (!db->present)
					nprobes++;
			}
		}

		hash_seq_init(&seq, launcher_dbs);
		while ((db = (LauncherDb *) hash_seq_search(&seq)) != NULL)
		{
			launcher_reap(db, now);
			if (!db->seen)
			{
				/* Dropped, filtered out, or no longer connectable. */
				if (!db->running)
					launcher_forget(db);
				continue;
			}
			if (!db->running)
			{
				TimestampTz paused_until = 0;

				if (db->slotno >= 0)
				{
					LWLockAcquire(expiry_shared->lock, LW_SHARED);
					paused_until = expiry_shared->slots[db->slotno].paused_until;
					LWLockRelease(expiry_shared->lock);
				}
				if (paused_until > now)
					timeout = Min(timeout, launcher_ms_until(now, paused_until));
				else if (db->next_start <= now)
				{
					if (nprobes >= LAUNCHER_MAX_PROBES)
						continue;	/* a probe's exit wakes us */
					launcher_start_worker(db, now);
					if (db->running)
						nprobes++;
				}
				else
					timeout = Min(timeout, launcher_ms_until(now, db->next_start));
			}
		}

		(void) WaitLatch(MyLatch,
						 WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
						 Max(timeout, 10L), PG_WAIT_EXTENSION);
		ResetLatch(MyLatch);
	}
}

/*
 * before_shmem_exit callback of the launcher: nobody should set our latch
 * any more (the PGPROC will belong to another process).
 */
static void
launcher_detach(int code, Datum arg)
{
	LWLockAcquire(expiry_shared->lock, LW_EXCLUSIVE);
	if (expiry_shared->launcher_pid == MyProcPid)
	{
		expiry_shared->launcher_pid = 0;
		expiry_shared->launcher_latch = NULL;
	}
	LWLockRelease(expiry_shared->lock);
}

static long
launcher_ms_until(TimestampTz now, TimestampTz when)
{
	if (when <= now)
		return 0;
	return (long) Min((when - now + 999) / 1000, (TimestampTz) LAUNCHER_RESCAN_MS);
}

/*
 * A new launcher (after the previous one was terminated) takes over the
 * workers that are still running, so that none is started twice.
 */
static void
launcher_adopt_slots(void)
{
	int			i;

	LWLockAcquire(expiry_shared->lock, LW_EXCLUSIVE);
	for (i = 0; i < expiry_shared->nslots; i++)
	{
		ExpirySlot *slot = &expiry_shared->slots[i];
		LauncherDb *db;
		bool		found;

		if (slot->state == SLOT_FREE)
			continue;
		db = (LauncherDb *) hash_search(launcher_dbs, &slot->dboid,
										HASH_ENTER, &found);
		if (!found)
		{
			memset(((char *) db) + sizeof(Oid), 0, sizeof(LauncherDb) - sizeof(Oid));
			db->dbname = slot->dbname;
			db->backoff_ms = WORKER_RESTART_MIN_MS;
		}
		db->slotno = i;
		db->handle = NULL;
		db->seen = true;
		db->running = (slot->pid != 0);
		db->present = slot->has_extension;
		if (!db->running)
			slot->state = SLOT_STOPPED;
	}
	LWLockRelease(expiry_shared->lock);
}

/*
 * Is this database wanted by lockctl.worker_databases?
 */
static bool
launcher_db_wanted(const char *name)
{
	char	   *copy;
	List	   *names;
	ListCell   *lc;
	bool		wanted = false;

	if (lockctl_worker_databases == NULL || lockctl_worker_databases[0] == '\0')
		return true;
	copy = pstrdup(lockctl_worker_databases);
	if (SplitGUCList(copy, ',', &names))
	{
		foreach(lc, names)
		{
			if (strcmp((char *) lfirst(lc), name) == 0)
			{
				wanted = true;
				break;
			}
		}
	}
	list_free(names);
	pfree(copy);
	return wanted;
}

/*
 * Re-read pg_database: mark every database we should serve as seen, add
 * new ones, update names.
 */
static void
launcher_scan_databases(void)
{
	HASH_SEQ_STATUS seq;
	LauncherDb *db;
	Relation	rel;
	TableScanDesc scan;
	HeapTuple	tup;

	hash_seq_init(&seq, launcher_dbs);
	while ((db = (LauncherDb *) hash_seq_search(&seq)) != NULL)
		db->seen = false;

	SetCurrentStatementStartTimestamp();
	StartTransactionCommand();
	(void) GetTransactionSnapshot();
	pgstat_report_activity(STATE_RUNNING, "reading pg_database");

	rel = table_open(DatabaseRelationId, AccessShareLock);
	scan = table_beginscan_catalog(rel, 0, NULL);
	while (HeapTupleIsValid(tup = heap_getnext(scan, ForwardScanDirection)))
	{
		Form_pg_database pgdb = (Form_pg_database) GETSTRUCT(tup);
		bool		found;

		if (!pgdb->datallowconn || pgdb->datistemplate ||
			pgdb->datconnlimit == DATCONNLIMIT_INVALID_DB)
			continue;
		if (!launcher_db_wanted(NameStr(pgdb->datname)))
			continue;

		db = (LauncherDb *) hash_search(launcher_dbs, &pgdb->oid,
										HASH_ENTER, &found);
		if (!found)
		{
			memset(((char *) db) + sizeof(Oid), 0, sizeof(LauncherDb) - sizeof(Oid));
			db->slotno = -1;
			db->backoff_ms = WORKER_RESTART_MIN_MS;
			db->next_start = 0;
		}
		db->dbname = pgdb->datname;
		db->seen = true;
	}
	table_endscan(scan);
	table_close(rel, AccessShareLock);

	CommitTransactionCommand();
	pgstat_report_activity(STATE_IDLE, NULL);
}

/*
 * Take the wakes queued by committing backends: a wake for a database with
 * a worker makes it run a pass now; one for a database without starts it.
 */
static void
launcher_take_wakes(bool *rescan)
{
	Oid			wake[WAKE_QUEUE_LEN];
	int			nwake;
	int			i;

	LWLockAcquire(expiry_shared->lock, LW_EXCLUSIVE);
	nwake = expiry_shared->nwake;
	memcpy(wake, expiry_shared->wake, nwake * sizeof(Oid));
	expiry_shared->nwake = 0;
	if (expiry_shared->wake_rescan)
		*rescan = true;
	expiry_shared->wake_rescan = false;
	LWLockRelease(expiry_shared->lock);

	for (i = 0; i < nwake; i++)
	{
		LauncherDb *db = hash_search(launcher_dbs, &wake[i], HASH_FIND, NULL);

		if (db == NULL)
		{
			*rescan = true;		/* a database we have not seen yet */
			continue;
		}
		if (db->running && db->slotno >= 0)
		{
			/*
			 * If this worker is a probe that is just leaving because it
			 * saw no extension, start the next one at once, not later.
			 */
			db->woken = true;
			LWLockAcquire(expiry_shared->lock, LW_SHARED);
			if (expiry_shared->slots[db->slotno].latch)
				SetLatch(expiry_shared->slots[db->slotno].latch);
			LWLockRelease(expiry_shared->lock);
		}
		else
		{
			db->next_start = 0;
			db->absent = false;
			db->backoff_ms = WORKER_RESTART_MIN_MS;
		}
	}
}

/*
 * Notice a worker that has exited, and decide when to start the next one
 * for its database.  Also asks the worker of an unwanted database to stop.
 */
static void
launcher_reap(LauncherDb *db, TimestampTz now)
{
	ExpirySlot *slot;
	bool		gone;
	ExpiryExitReason reason;
	TimestampTz started_at;

	if (!db->running || db->slotno < 0)
		return;
	slot = &expiry_shared->slots[db->slotno];

	if (db->handle != NULL)
	{
		pid_t		pid;

		gone = (GetBackgroundWorkerPid(db->handle, &pid) == BGWH_STOPPED);
	}
	else
	{
		LWLockAcquire(expiry_shared->lock, LW_SHARED);
		gone = (slot->pid == 0 && slot->state != SLOT_STARTING);
		LWLockRelease(expiry_shared->lock);
	}

	if (!gone)
	{
		if (!db->seen)
		{
			LWLockAcquire(expiry_shared->lock, LW_EXCLUSIVE);
			slot->stop_requested = true;
			if (slot->latch)
				SetLatch(slot->latch);
			LWLockRelease(expiry_shared->lock);
		}
		return;
	}

	LWLockAcquire(expiry_shared->lock, LW_EXCLUSIVE);
	reason = slot->exit_reason;
	started_at = slot->started_at;
	if (slot->pid == 0)
		slot->state = SLOT_STOPPED;
	LWLockRelease(expiry_shared->lock);

	if (db->handle)
		pfree(db->handle);
	db->handle = NULL;
	db->running = false;
	db->present = false;

	switch (reason)
	{
		case EXIT_NO_EXTENSION:
			/* Try again at a slow cadence; CREATE EXTENSION wakes us. */
			if (db->woken)
			{
				/* ... and did, while this worker was looking. */
				db->absent = false;
				db->backoff_ms = WORKER_RESTART_MIN_MS;
				db->next_start = now;
				launcher_forget(db);
				break;
			}
			if (!db->absent)
				db->backoff_ms = LAUNCHER_ABSENT_RETRY_MIN_MS;
			else
				db->backoff_ms = Min(db->backoff_ms * 2, LAUNCHER_ABSENT_RETRY_MAX_MS);
			db->absent = true;
			db->next_start = TimestampTzPlusMilliseconds(now, db->backoff_ms);
			launcher_forget(db);	/* frees the slot; keeps the entry */
			break;
		case EXIT_STOP_REQUESTED:
			db->next_start = now;
			break;
		default:
			/* Terminated, FATAL, failed to connect: start again. */
			if (started_at != 0 &&
				TimestampDifferenceExceeds(started_at, now, WORKER_HEALTHY_MS))
				db->backoff_ms = WORKER_RESTART_MIN_MS;
			db->next_start = TimestampTzPlusMilliseconds(now, db->backoff_ms);
			db->backoff_ms = Min(db->backoff_ms * 2, WORKER_RESTART_MAX_MS);
			/* The database may be gone: look again soon. */
			LWLockAcquire(expiry_shared->lock, LW_EXCLUSIVE);
			expiry_shared->wake_rescan = true;
			SetLatch(MyLatch);
			LWLockRelease(expiry_shared->lock);
			break;
	}
}

/*
 * Free a database's slot; drop its entry too unless it is still wanted.
 */
static void
launcher_forget(LauncherDb *db)
{
	if (db->slotno >= 0)
	{
		ExpirySlot *slot = &expiry_shared->slots[db->slotno];

		LWLockAcquire(expiry_shared->lock, LW_EXCLUSIVE);
		if (slot->pid == 0 && slot->dboid == db->dboid)
		{
			uint32		generation = slot->generation;

			memset(slot, 0, sizeof(ExpirySlot));
			slot->generation = generation;
		}
		LWLockRelease(expiry_shared->lock);
		db->slotno = -1;
	}
	if (!db->seen)
		(void) hash_search(launcher_dbs, &db->dboid, HASH_REMOVE, NULL);
}

/*
 * Start the expiry worker of one database.
 */
static void
launcher_start_worker(LauncherDb *db, TimestampTz now)
{
	BackgroundWorker worker;
	BackgroundWorkerHandle *handle;
	ExpiryWorkerArgs args;
	ExpirySlot *slot = NULL;
	int			slotno = db->slotno;
	int			i;

	LWLockAcquire(expiry_shared->lock, LW_EXCLUSIVE);
	if (slotno < 0)
	{
		for (i = 0; i < expiry_shared->nslots; i++)
		{
			if (expiry_shared->slots[i].state == SLOT_FREE)
			{
				/* generation keeps rising, so a stale worker never fits */
				uint32		generation = expiry_shared->slots[i].generation;

				slotno = i;
				memset(&expiry_shared->slots[i], 0, sizeof(ExpirySlot));
				expiry_shared->slots[i].generation = generation;
				break;
			}
		}
	}
	if (slotno >= 0)
	{
		slot = &expiry_shared->slots[slotno];
		slot->dboid = db->dboid;
		slot->dbname = db->dbname;
		slot->generation++;
		slot->state = SLOT_STARTING;
		slot->pid = 0;
		slot->latch = NULL;
		slot->stop_requested = false;
		slot->has_extension = false;
		slot->exit_reason = EXIT_UNKNOWN;
		slot->started_at = 0;
		args.dboid = db->dboid;
		args.generation = slot->generation;
	}
	LWLockRelease(expiry_shared->lock);

	if (slot == NULL)
	{
		if (!launcher_out_of_slots)
			ereport(LOG,
					(errmsg("lockctl launcher has no free slot for the expiry worker of database \"%s\"",
							NameStr(db->dbname)),
					 errhint("Increase \"max_worker_processes\": each database served by lockctl takes one background worker.")));
		launcher_out_of_slots = true;
		db->next_start = TimestampTzPlusMilliseconds(now, WORKER_NO_SLOT_RETRY_MS);
		return;
	}
	db->slotno = slotno;

	memset(&worker, 0, sizeof(worker));
	worker.bgw_flags = BGWORKER_SHMEM_ACCESS |
		BGWORKER_BACKEND_DATABASE_CONNECTION;
	worker.bgw_start_time = BgWorkerStart_RecoveryFinished;
	worker.bgw_restart_time = BGW_NEVER_RESTART;
	snprintf(worker.bgw_library_name, BGW_MAXLEN, "lockctl");
	snprintf(worker.bgw_function_name, BGW_MAXLEN, "lockctl_expiry_worker_main");
	snprintf(worker.bgw_name, BGW_MAXLEN, "lockctl expiry worker for %s",
			 NameStr(db->dbname));
	snprintf(worker.bgw_type, BGW_MAXLEN, "lockctl expiry worker");
	worker.bgw_main_arg = Int32GetDatum(slotno);
	StaticAssertStmt(sizeof(ExpiryWorkerArgs) <= BGW_EXTRALEN,
					 "worker arguments do not fit in bgw_extra");
	memcpy(worker.bgw_extra, &args, sizeof(args));
	worker.bgw_notify_pid = MyProcPid;

	if (!RegisterDynamicBackgroundWorker(&worker, &handle))
	{
		LWLockAcquire(expiry_shared->lock, LW_EXCLUSIVE);
		slot->state = SLOT_STOPPED;
		LWLockRelease(expiry_shared->lock);
		if (!launcher_out_of_slots)
			ereport(LOG,
					(errmsg("lockctl launcher could not start the expiry worker of database \"%s\": no free background worker slot",
							NameStr(db->dbname)),
					 errdetail("It will try again every %d seconds.",
							   WORKER_NO_SLOT_RETRY_MS / 1000),
					 errhint("Increase \"max_worker_processes\": each database served by lockctl takes one background worker.")));
		launcher_out_of_slots = true;
		db->next_start = TimestampTzPlusMilliseconds(now, WORKER_NO_SLOT_RETRY_MS);
		return;
	}
	if (launcher_out_of_slots)
		ereport(LOG,
				(errmsg("lockctl launcher could start an expiry worker again")));
	launcher_out_of_slots = false;
	db->handle = handle;
	db->running = true;
	db->present = false;
	db->woken = false;
}

/* ----------------------------------------------------------------
 * The expiry worker of one database
 * ----------------------------------------------------------------
 */

/*
 * before_shmem_exit callback: give up the slot and tell the launcher.
 */
static void
worker_detach(int code, Datum arg)
{
	ExpirySlot *slot = &expiry_shared->slots[DatumGetInt32(arg)];

	LWLockAcquire(expiry_shared->lock, LW_EXCLUSIVE);
	if (slot->pid == MyProcPid)
	{
		slot->pid = 0;
		slot->latch = NULL;
		slot->state = SLOT_STOPPED;
	}
	if (expiry_shared->launcher_latch)
		SetLatch(expiry_shared->launcher_latch);
	LWLockRelease(expiry_shared->lock);
}

/*
 * Error context of the worker: every message it logs names its database.
 */
static void
worker_error_context(void *arg)
{
	errcontext("lockctl expiry worker for database \"%s\"", (const char *) arg);
}

/*
 * Main of an expiry worker.
 */
void
lockctl_expiry_worker_main(Datum main_arg)
{
	int			slotno = DatumGetInt32(main_arg);
	ExpiryWorkerArgs args;
	ExpirySlot *slot;
	bool		claimed = false;
	MemoryContext worker_cxt;
	volatile int consecutive_errors = 0;
	ErrorContextCallback errcallback;

	memcpy(&args, MyBgworkerEntry->bgw_extra, sizeof(args));

	pqsignal(SIGHUP, SignalHandlerForConfigReload);
	pqsignal(SIGTERM, die);
	BackgroundWorkerUnblockSignals();

	if (slotno < 0 || slotno >= expiry_shared->nslots)
		proc_exit(0);
	slot = &expiry_shared->slots[slotno];

	/* Claim the slot, unless another worker or a newer start has it. */
	LWLockAcquire(expiry_shared->lock, LW_EXCLUSIVE);
	if (slot->state == SLOT_STARTING && slot->dboid == args.dboid &&
		slot->generation == args.generation && slot->pid == 0)
	{
		slot->pid = MyProcPid;
		slot->latch = MyLatch;
		slot->state = SLOT_RUNNING;
		slot->started_at = GetCurrentTimestamp();
		slot->exit_reason = EXIT_UNKNOWN;
		claimed = true;
	}
	LWLockRelease(expiry_shared->lock);
	if (!claimed)
		proc_exit(0);
	before_shmem_exit(worker_detach, Int32GetDatum(slotno));

	errcallback.callback = worker_error_context;
	errcallback.arg = MemoryContextStrdup(TopMemoryContext, NameStr(slot->dbname));
	errcallback.previous = error_context_stack;
	error_context_stack = &errcallback;

	BackgroundWorkerInitializeConnectionByOid(args.dboid, InvalidOid, 0);

	/* Run as the bootstrap superuser: resolve nothing through search_path. */
	SetConfigOption("search_path", "pg_catalog, pg_temp",
					PGC_SUSET, PGC_S_OVERRIDE);
	pgstat_report_appname(MyBgworkerEntry->bgw_name);

	worker_cxt = AllocSetContextCreate(TopMemoryContext,
									   "lockctl expiry worker",
									   ALLOCSET_DEFAULT_SIZES);
	MemoryContextSwitchTo(worker_cxt);

	for (;;)
	{
		bool		present = true;
		bool		failed = false;
		long		sleep_ms;
		bool		stop;

		MemoryContextSwitchTo(worker_cxt);
		CHECK_FOR_INTERRUPTS();

		if (ConfigReloadPending)
		{
			ConfigReloadPending = false;
			ProcessConfigFile(PGC_SIGHUP);
		}

		LWLockAcquire(expiry_shared->lock, LW_SHARED);
		stop = slot->stop_requested;
		LWLockRelease(expiry_shared->lock);
		if (stop)
		{
			LWLockAcquire(expiry_shared->lock, LW_EXCLUSIVE);
			slot->exit_reason = EXIT_STOP_REQUESTED;
			LWLockRelease(expiry_shared->lock);
			proc_exit(0);
		}

		PG_TRY();
		{
			present = worker_pass(slotno);
		}
		PG_CATCH();
		{
			ErrorData  *edata;

			MemoryContextSwitchTo(worker_cxt);
			EmitErrorReport();
			edata = CopyErrorData();
			FlushErrorState();
			AbortCurrentTransaction();
			pgstat_report_activity(STATE_IDLE, NULL);

			LWLockAcquire(expiry_shared->lock, LW_EXCLUSIVE);
			slot->errors++;
			slot->last_error_at = GetCurrentTimestamp();
			strlcpy(slot->last_error, edata->message ? edata->message : "?",
					WORKER_ERRMSG_LEN);
			LWLockRelease(expiry_shared->lock);
			FreeErrorData(edata);
			failed = true;
		}
		PG_END_TRY();
		MemoryContextReset(worker_cxt);

		if (!present)
		{
			LWLockAcquire(expiry_shared->lock, LW_EXCLUSIVE);
			slot->exit_reason = EXIT_NO_EXTENSION;
			LWLockRelease(expiry_shared->lock);
			ereport(DEBUG1,
					(errmsg("lockctl expiry worker for database \"%s\" exits: extension \"lockctl\" is not installed",
							NameStr(slot->dbname))));
			proc_exit(0);
		}

		sleep_ms = lockctl_expiry_interval;
		if (failed)
		{
			int			shift = Min(consecutive_errors, 16);

			consecutive_errors++;
			sleep_ms = Min((int64) lockctl_expiry_interval << shift,
						   (int64) Max(WORKER_ERROR_BACKOFF_MAX_MS, lockctl_expiry_interval));
		}
		else
			consecutive_errors = 0;

		(void) WaitLatch(MyLatch,
						 WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
						 sleep_ms, PG_WAIT_EXTENSION);
		ResetLatch(MyLatch);
	}
}

/*
 * One pass: expire every due hold, then purge old finished ones, in
 * batches.  Returns false when the extension is not installed.
 */
static bool
worker_pass(int slotno)
{
	ExpirySlot *slot = &expiry_shared->slots[slotno];
	bool		absent = false;
	int			n;

	do
	{
		int			batch = lockctl_expiry_batch_size;

		n = worker_batch(slotno, BATCH_EXPIRE_HOLDS, batch, &absent);
		if (absent)
			return false;
		CHECK_FOR_INTERRUPTS();
		if (n < batch)
			break;
	} while (true);

	while (lockctl_retention >= 0)
	{
		int			batch = lockctl_expiry_batch_size;

		n = worker_batch(slotno, BATCH_PURGE_HOLDS, batch, &absent);
		if (absent)
			return false;
		CHECK_FOR_INTERRUPTS();
		if (n < batch)
			break;
	}

	/* request keys past their own ttl (lockctl.retention is for holds) */
	do
	{
		int			batch = lockctl_expiry_batch_size;

		n = worker_batch(slotno, BATCH_PURGE_REQUESTS, batch, &absent);
		if (absent)
			return false;
		CHECK_FOR_INTERRUPTS();
		if (n < batch)
			break;
	} while (true);

	LWLockAcquire(expiry_shared->lock, LW_EXCLUSIVE);
	slot->passes++;
	slot->last_run = GetCurrentTimestamp();
	LWLockRelease(expiry_shared->lock);
	return true;
}

/*
 * One batch in its own transaction: lockctl.expire_holds(batch),
 * lockctl.purge_holds(retention, batch) or lockctl.purge_requests(batch).
 * Returns how many holds or keys it expired or purged; sets *absent when
 * the extension is not installed.
 */
static int
worker_batch(int slotno, WorkerBatchKind kind, int batch_size, bool *absent)
{
	ExpirySlot *slot = &expiry_shared->slots[slotno];
	const char *sql;
	Oid			argtypes[2];
	Datum		values[2];
	int			nargs;
	int			ret;
	int			count = 0;
	bool		isnull;

	SetCurrentStatementStartTimestamp();
	StartTransactionCommand();
	PushActiveSnapshot(GetTransactionSnapshot());

	if (!OidIsValid(get_extension_oid("lockctl", true)))
	{
		*absent = true;
		PopActiveSnapshot();
		CommitTransactionCommand();
		return 0;
	}
	if (!slot->has_extension)
	{
		LWLockAcquire(expiry_shared->lock, LW_EXCLUSIVE);
		slot->has_extension = true;
		if (expiry_shared->launcher_latch)
			SetLatch(expiry_shared->launcher_latch);
		LWLockRelease(expiry_shared->lock);
	}

	if (kind == BATCH_PURGE_REQUESTS)
	{
		Oid			int4 = INT4OID;

		/*
		 * Until ALTER EXTENSION lockctl UPDATE has brought a 1.0 database to
		 * 1.1, there are no request keys to purge.
		 */
		if (!OidIsValid(LookupFuncName(list_make2(makeString("lockctl"),
												  makeString("purge_requests")),
									   1, &int4, true)))
		{
			PopActiveSnapshot();
			CommitTransactionCommand();
			return 0;
		}
		sql = "SELECT lockctl.purge_requests($1)";
		argtypes[0] = INT4OID;
		values[0] = Int32GetDatum(batch_size);
		nargs = 1;
	}
	else if (kind == BATCH_PURGE_HOLDS)
	{
		sql = "SELECT lockctl.purge_holds($1, $2)";
		argtypes[0] = INTERVALOID;
		values[0] = IntervalPGetDatum(lockctl_us_to_interval((int64) lockctl_retention * USECS_PER_SEC));
		argtypes[1] = INT4OID;
		values[1] = Int32GetDatum(batch_size);
		nargs = 2;
	}
	else
	{
		sql = "SELECT lockctl.expire_holds($1)";
		argtypes[0] = INT4OID;
		values[0] = Int32GetDatum(batch_size);
		nargs = 1;
	}

	pgstat_report_activity(STATE_RUNNING, sql);
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	ret = SPI_execute_with_args(sql, nargs, argtypes, values, NULL, false, 1);
	if (ret != SPI_OK_SELECT || SPI_processed != 1)
		elog(ERROR, "%s failed: SPI result %d", sql, ret);
	count = DatumGetInt32(SPI_getbinval(SPI_tuptable->vals[0],
										SPI_tuptable->tupdesc, 1, &isnull));
	if (isnull)
		count = 0;
	SPI_finish();
	PopActiveSnapshot();
	CommitTransactionCommand();
	pgstat_report_stat(true);
	pgstat_report_activity(STATE_IDLE, NULL);

	if (count > 0 && kind != BATCH_PURGE_REQUESTS)
	{
		LWLockAcquire(expiry_shared->lock, LW_EXCLUSIVE);
		if (kind == BATCH_PURGE_HOLDS)
			slot->purged += count;
		else
			slot->expired += count;
		LWLockRelease(expiry_shared->lock);
	}
	return count;
}

/* ----------------------------------------------------------------
 * lockctl.workers
 * ----------------------------------------------------------------
 */

/*
 * lockctl.worker_status(): one row per database served (or being tried)
 * by an expiry worker, across the cluster.
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

		/* An error text may say something about another database. */
		may_see_error = all_stats ||
			(SearchSysCacheExists1(DATABASEOID, ObjectIdGetDatum(slot->dboid)) &&
			 pg_database_aclcheck(slot->dboid, GetUserId(), ACL_CONNECT) == ACLCHECK_OK);
		values[9] = CStringGetTextDatum(slot->last_error);
		nulls[9] = (slot->last_error[0] == '\0' || !may_see_error);
		values[10] = TimestampTzGetDatum(slot->last_error_at);
		nulls[10] = (slot->last_error_at == 0);

		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
	}
	return (Datum) 0;
}
