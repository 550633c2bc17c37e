/*-------------------------------------------------------------------------
 *
 * launcher.c
 *	  The launcher: one static background worker that starts, restarts and
 *	  stops one expiry worker per database that has the extension.
 *
 * One static background worker, the *launcher*, is registered by the
 * preload.  It connects to no database (it only reads the shared catalog
 * pg_database) and starts one dynamic *expiry worker* per database that
 * accepts connections, is not a template, and passes the optional
 * lockctl.worker_databases filter.  So every database where the extension
 * is installed is served without configuration, and a database costs a
 * worker only while the extension is in it. *
 * Prompt pick-up: the install script ends with lockctl.wake_expiry_worker(),
 * which arranges for the launcher to be woken when the creating transaction
 * COMMITS (an XactCallback), naming the database; a wake for a database
 * without a worker starts one at once, a wake for a database with a worker
 * makes it run a pass at once.  Waking at commit, not at the call, matters:
 * a worker started before the commit would not see the extension yet.
 * CREATE DATABASE (which can copy a template that has the extension) and
 * the ALTER DATABASE forms that change what the launcher serves wake it the
 * same way, so new databases do not wait for the LAUNCHER_RESCAN_MS rescan,
 * which remains only as a safety net. *
 * Retries: a worker that exits for another reason (pg_terminate_backend,
 * FATAL, failure to connect) is started again after WORKER_RESTART_MIN_MS,
 * doubling while it keeps dying young (worker_backoff_ms); a database
 * where the extension was absent is probed again after
 * LAUNCHER_ABSENT_RETRY_MIN_MS, doubling up to LAUNCHER_ABSENT_RETRY_MAX_MS.
 * At most LAUNCHER_MAX_PROBES workers that have not yet found the
 * extension run at once.  The launcher itself has a bgw_restart_time: the
 * postmaster starts it again after LAUNCHER_RESTART_S, and it adopts the
 * workers still running. *
 * The launcher's own state (which databases it knows, their workers, when
 * to start each again) is private to it; what it shares with the workers
 * is in worker.c, under that file's locking protocol.
 *
 * src/launcher.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <signal.h>

#include "access/heapam.h"
#include "access/htup_details.h"
#include "access/table.h"
#include "access/tableam.h"
#include "access/xact.h"
#include "catalog/pg_database.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "postmaster/bgworker.h"
#include "postmaster/interrupt.h"
#include "storage/ipc.h"
#include "storage/latch.h"
#include "storage/lwlock.h"
#include "storage/proc.h"
#include "tcop/tcopprot.h"
#include "utils/guc.h"
#include "utils/hsearch.h"
#include "utils/memutils.h"
#include "utils/snapmgr.h"
#include "utils/timestamp.h"
#include "utils/varlena.h"

#include "worker.h"

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
	int			failures;		/* in a row, for worker_backoff_ms() */
	bool		absent;			/* last worker found no extension */
	bool		present;		/* the current worker found it */
	bool		woken;			/* a wake came while a worker ran */
} LauncherDb;

/* lockctl.worker_databases: '' serves every database */
static char *lockctl_worker_databases = NULL;

/* Launcher-local */
static HTAB *launcher_dbs = NULL;
static bool launcher_out_of_slots = false;

static bool launcher_check_databases(char **newval, void **extra,
									 GucSource source);
static void launcher_fill_worker(BackgroundWorker *worker,
								 const char *function, const char *name,
								 const char *type);
static void launcher_adopt_slots(void);
static void launcher_scan_databases(void);
static void launcher_take_wakes(bool *rescan);
static int	launcher_count_probes(void);
static long launcher_start_due(TimestampTz now, long timeout);
static void launcher_reap(LauncherDb *db, TimestampTz now);
static void launcher_start_worker(LauncherDb *db, TimestampTz now);
static void launcher_forget(LauncherDb *db);
static void launcher_retry_later(LauncherDb *db, TimestampTz now,
								 int min_ms, int max_ms);
static bool launcher_db_wanted(const char *name);
static long launcher_ms_until(TimestampTz now, TimestampTz when);
static void launcher_detach(int code, Datum arg);

/*
 * Define lockctl.worker_databases and register the launcher.
 */
void
LauncherInit(void)
{
	BackgroundWorker worker;

	DefineCustomStringVariable("lockctl.worker_databases",
							   gettext_noop("Databases the expiry worker serves; empty serves every database that has the extension."),
							   gettext_noop("A comma-separated list of database names, as written (double-quote a name with a comma)."),
							   &lockctl_worker_databases,
							   "",
							   PGC_SIGHUP,
							   GUC_LIST_INPUT,
							   launcher_check_databases, NULL, NULL);

	launcher_fill_worker(&worker, "lockctl_launcher_main", "lockctl launcher",
						 "lockctl launcher");
	worker.bgw_restart_time = LAUNCHER_RESTART_S;
	worker.bgw_main_arg = (Datum) 0;
	worker.bgw_notify_pid = 0;
	RegisterBackgroundWorker(&worker);
}

/*
 * What the launcher and the expiry workers have in common: shared memory,
 * a database connection, nothing during recovery, lockctl's library.
 */
static void
launcher_fill_worker(BackgroundWorker *worker, const char *function,
					 const char *name, const char *type)
{
	memset(worker, 0, sizeof(*worker));
	worker->bgw_flags = BGWORKER_SHMEM_ACCESS |
		BGWORKER_BACKEND_DATABASE_CONNECTION;
	worker->bgw_start_time = BgWorkerStart_RecoveryFinished;
	snprintf(worker->bgw_library_name, BGW_MAXLEN, "lockctl");
	snprintf(worker->bgw_function_name, BGW_MAXLEN, "%s", function);
	snprintf(worker->bgw_name, BGW_MAXLEN, "%s", name);
	snprintf(worker->bgw_type, BGW_MAXLEN, "%s", type);
}

/*
 * Check hook of lockctl.worker_databases: a comma-separated list of
 * database names (double-quote a name that has a comma or spaces).
 */
static bool
launcher_check_databases(char **newval, void **extra, GucSource source)
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
	static uint32 wait_event = 0;	/* see lockctl_wait_event */
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
		TimestampTz now;
		long		timeout;
		bool		rescan = false;

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

		timeout = launcher_start_due(now, launcher_ms_until(now, next_scan));

		(void) WaitLatch(MyLatch,
						 WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
						 Max(timeout, 10L),
						 lockctl_wait_event(&wait_event, "LockctlLauncherMain"));
		ResetLatch(MyLatch);
	}
}

/*
 * Count the workers still finding out whether their database has the
 * extension, so that a cluster with many databases is probed a few at a
 * time rather than all at once.
 */
static int
launcher_count_probes(void)
{
	HASH_SEQ_STATUS seq;
	LauncherDb *db;
	int			nprobes = 0;

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
	return nprobes;
}

/*
 * Reap the workers that exited and start those that are due; returns the
 * time until the launcher must look again, at most timeout.
 */
static long
launcher_start_due(TimestampTz now, long timeout)
{
	HASH_SEQ_STATUS seq;
	LauncherDb *db;
	int			nprobes = launcher_count_probes();

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

	return timeout;
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
			db->failures = 0;
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
			db->failures = 0;
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
			db->failures = 0;
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
				db->failures = 0;
				db->next_start = now;
				launcher_forget(db);
				break;
			}
			if (!db->absent)
				db->failures = 0;
			db->absent = true;
			launcher_retry_later(db, now, LAUNCHER_ABSENT_RETRY_MIN_MS,
								 LAUNCHER_ABSENT_RETRY_MAX_MS);
			launcher_forget(db);	/* frees the slot; keeps the entry */
			break;
		case EXIT_STOP_REQUESTED:
			db->next_start = now;
			break;
		default:
			/* Terminated, FATAL, failed to connect: start again. */
			if (db->absent ||
				(started_at != 0 &&
				 TimestampDifferenceExceeds(started_at, now, WORKER_HEALTHY_MS)))
				db->failures = 0;
			db->absent = false;
			launcher_retry_later(db, now, WORKER_RESTART_MIN_MS,
								 WORKER_RESTART_MAX_MS);
			/* The database may be gone: look again soon. */
			LWLockAcquire(expiry_shared->lock, LW_EXCLUSIVE);
			expiry_shared->wake_rescan = true;
			SetLatch(MyLatch);
			LWLockRelease(expiry_shared->lock);
			break;
	}
}

/*
 * Start db's worker again after the back-off of one more failure in a row.
 */
static void
launcher_retry_later(LauncherDb *db, TimestampTz now, int min_ms, int max_ms)
{
	db->next_start = TimestampTzPlusMilliseconds(now,
												 worker_backoff_ms(min_ms, max_ms,
																   db->failures++));
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

	launcher_fill_worker(&worker, "lockctl_expiry_worker_main",
						 psprintf("lockctl expiry worker for %s",
								  NameStr(db->dbname)),
						 "lockctl expiry worker");
	worker.bgw_restart_time = BGW_NEVER_RESTART;
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
