/*-------------------------------------------------------------------------
 *
 * worker.h
 *	  Declarations shared by the files of the expiry worker: worker.c (the
 *	  shared state, the wake-up queue, the status view, the back-off),
 *	  launcher.c, expiry_worker.c and worker_utility.c.
 *
 * src/worker.h
 *
 *-------------------------------------------------------------------------
 */
#ifndef LOCKCTL_WORKER_H
#define LOCKCTL_WORKER_H

#include "postgres.h"

#include "storage/latch.h"
#include "storage/lwlock.h"
#include "utils/timestamp.h"

#include "lockctl.h"

/*
 * The worker's timings, all in one place (milliseconds).  Every delay that
 * grows after a failure grows the same way: worker_backoff_ms().
 */
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
/* Retry delay when no background worker slot was free. */
#define WORKER_NO_SLOT_RETRY_MS			(10 * 1000)
/* Longest pause after consecutive failed passes (at least the interval). */
#define WORKER_ERROR_BACKOFF_MAX_MS		(60 * 1000)
/* How long a database's worker stays paused around DROP DATABASE & co. */
#define WORKER_PAUSE_MS					(60 * 1000)
#define WORKER_PAUSE_AFTER_MS			(5 * 1000)
/* How long the postmaster waits before it restarts a dead launcher (s). */
#define LAUNCHER_RESTART_S				5
/*
 * The longest an expiry worker waits for a lock (its lock_timeout).  Its
 * queries skip locked rows, so this bounds only waits on whole tables (a
 * DBA's ALTER TABLE or LOCK on lockctl's tables, ALTER EXTENSION UPDATE):
 * the batch fails, is logged, and is tried again after the back-off.
 */
#define WORKER_LOCK_TIMEOUT_MS			1000

/* At most this many workers probing databases not known to have it. */
#define LAUNCHER_MAX_PROBES				4

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
	/* what held the last pass back: due holds others have locked ('' none) */
	char		waiting_on[WORKER_ERRMSG_LEN];
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

/* worker.c */
extern ExpiryShared *expiry_shared;
extern long worker_backoff_ms(int min_ms, int max_ms, int failures);
extern void expiry_request_wake(bool this_db, bool rescan);

/* Each file's part of WorkerInit */
extern void LauncherInit(void);		/* launcher.c */
extern void ExpiryWorkerInit(void);	/* expiry_worker.c */
extern void WorkerUtilityInit(void);	/* worker_utility.c */

/* Entry points of the background workers, named in bgw_function_name. */
extern PGDLLEXPORT void lockctl_launcher_main(Datum main_arg);
extern PGDLLEXPORT void lockctl_expiry_worker_main(Datum main_arg);

#endif							/* LOCKCTL_WORKER_H */
