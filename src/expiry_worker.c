/*-------------------------------------------------------------------------
 *
 * expiry_worker.c
 *	  The expiry worker of one database: its settings, its loop, and the
 *	  batches that expire due holds and purge finished ones.
 *
 * An expiry worker connects to its database as the bootstrap superuser and
 * loops: a pass calls expire_holds(lockctl.expiry_batch_size) again
 * and again, each call in its own short transaction, while a batch comes
 * back full; then purge_holds(lockctl.retention, batch) the same
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
 * Both functions are in schema lockctl_internal since 1.1, in lockctl
 * under 1.0's SQL: the worker asks the catalog which (worker_schema), so
 * that a 1.1 library serves a database until ALTER EXTENSION lockctl
 * UPDATE has run there.
 *
 * Nobody can stall it.  It runs with session settings of its own, as
 * autovacuum does (worker_pin_settings): whatever ALTER DATABASE or ALTER
 * ROLE ... SET say for ordinary sessions (default_transaction_read_only,
 * a statement_timeout, a role, a search_path) does not apply to it.  Its
 * queries never wait for another transaction: expire_holds skips holds
 * whose row or slot row is locked (SKIP LOCKED), and so does the purge;
 * WORKER_LOCK_TIMEOUT_MS bounds any other lock wait.  After the expiry
 * batches of a pass it counts the due holds (and, since 1.1, carts) it had
 * to leave, and says in lockctl.workers (waiting_on) how many and which
 * sessions or prepared transactions hold them (worker_note_skipped).
 *
 * Errors: a batch that fails is caught (PG_TRY), reported to the server log,
 * recorded in shared memory for the lockctl.workers view, its transaction
 * aborted, and the worker carries on after a back-off (the interval,
 * doubling per consecutive failure, at most WORKER_ERROR_BACKOFF_MAX_MS;
 * worker_backoff_ms).
 *
 * src/expiry_worker.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <limits.h>

#include "access/heapam.h"
#include "access/htup_details.h"
#include "access/multixact.h"
#include "access/subtrans.h"
#include "access/table.h"
#include "access/xact.h"
#include "catalog/dependency.h"
#include "catalog/namespace.h"
#include "catalog/pg_extension.h"
#include "catalog/pg_namespace.h"
#include "catalog/pg_type.h"
#include "commands/extension.h"
#include "executor/spi.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "postmaster/bgworker.h"
#include "postmaster/interrupt.h"
#include "lib/stringinfo.h"
#include "storage/bufmgr.h"
#include "storage/ipc.h"
#include "storage/latch.h"
#include "storage/lmgr.h"
#include "storage/lwlock.h"
#include "storage/proc.h"
#include "storage/procarray.h"
#include "tcop/tcopprot.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/snapmgr.h"
#include "utils/timestamp.h"

#include "lease.h"
#include "worker.h"

/*
 * The schema of lockctl's internals since 1.1.  A database still at 1.0's
 * SQL objects has expire_holds and purge_holds in schema lockctl.
 */
#define EXPIRY_INTERNAL_SCHEMA	"lockctl_internal"

/* What one batch of the worker does */
typedef enum WorkerBatchKind
{
	BATCH_EXPIRE_HOLDS,
	BATCH_PURGE_HOLDS,
	BATCH_PURGE_REQUESTS
} WorkerBatchKind;

/* Settings */
static int	lockctl_expiry_interval = 1000; /* ms */
static int	lockctl_expiry_batch_size = 1000;
static int	lockctl_retention = 7 * 24 * 3600;	/* s, -1 keeps finished holds */

static void worker_pin_settings(void);
static void worker_note_skipped(int slotno, TimestampTz due_by);
static Oid	worker_relid(const char *relname);
static void worker_row_lockers(Relation rel, ItemPointer tid, List **xids);
static void worker_detach(int code, Datum arg);
static void worker_error_context(void *arg);
static ExpirySlot *worker_claim_slot(int slotno, const ExpiryWorkerArgs *args);
static void worker_exit(ExpirySlot *slot, ExpiryExitReason reason);
static void worker_record_error(ExpirySlot *slot, MemoryContext cxt);
static bool worker_pass(int slotno);
static bool worker_batches(int slotno, WorkerBatchKind kind,
						   TimestampTz *last_start, bool *held_back);
static const char *worker_schema(Oid extoid);
static Oid	worker_begin(bool *busy);
static int	worker_batch(int slotno, WorkerBatchKind kind, int batch_size,
						 bool *absent, bool *busy);

/*
 * Define the settings of the expiry workers.
 */
void
ExpiryWorkerInit(void)
{
	DefineCustomIntVariable("lockctl.expiry_interval",
							gettext_noop("How often the background worker looks for expired holds."),
							NULL,
							&lockctl_expiry_interval,
							1000, 10, 3600 * 1000,
							PGC_SIGHUP,
							GUC_UNIT_MS,
							NULL, NULL, NULL);

	DefineCustomIntVariable("lockctl.expiry_batch_size",
							gettext_noop("Maximum number of holds the background worker expires in one transaction."),
							NULL,
							&lockctl_expiry_batch_size,
							1000, 1, 1000000,
							PGC_SIGHUP,
							0,
							NULL, NULL, NULL);

	DefineCustomIntVariable("lockctl.retention",
							gettext_noop("How long finished holds are kept before the background worker purges them."),
							gettext_noop("Confirmed holds are never purged. -1 keeps finished holds forever."),
							&lockctl_retention,
							7 * 24 * 3600, -1, INT_MAX,
							PGC_SIGHUP,
							GUC_UNIT_S,
							NULL, NULL, NULL);
}

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
 * Claim slot slotno for this process, unless another worker or a newer
 * start has it; NULL then.
 */
static ExpirySlot *
worker_claim_slot(int slotno, const ExpiryWorkerArgs *args)
{
	ExpirySlot *slot;
	bool		claimed = false;

	if (slotno < 0 || slotno >= expiry_shared->nslots)
		return NULL;
	slot = &expiry_shared->slots[slotno];

	LWLockAcquire(expiry_shared->lock, LW_EXCLUSIVE);
	if (slot->state == SLOT_STARTING && slot->dboid == args->dboid &&
		slot->generation == args->generation && slot->pid == 0)
	{
		slot->pid = MyProcPid;
		slot->latch = MyLatch;
		slot->state = SLOT_RUNNING;
		slot->started_at = GetCurrentTimestamp();
		slot->exit_reason = EXIT_UNKNOWN;
		claimed = true;
	}
	LWLockRelease(expiry_shared->lock);
	return claimed ? slot : NULL;
}

/*
 * The worker's own session settings, as autovacuum has: connecting applied
 * the database's and the bootstrap superuser's settings (ALTER DATABASE /
 * ALTER ROLE ... SET), meant for ordinary sessions, and a database owner
 * may set some of them.  PGC_S_OVERRIDE outranks those, postgresql.conf
 * and any reload, so none of these can stop expiry:
 *	- search_path: run as a superuser, resolve nothing through it;
 *	- role: act as the bootstrap superuser, never as a role set for the
 *	  database (which may not call lockctl_internal);
 *	- default_transaction_read_only, default_transaction_isolation: the
 *	  batches write, in READ COMMITTED (what SKIP LOCKED is made for);
 *	- statement_timeout 0: a batch is short, and one cut short would be
 *	  tried again and cut short again; lock_timeout: waits are bounded
 *	  (WORKER_LOCK_TIMEOUT_MS), the queries themselves skip locked rows;
 *	- idle_in_transaction_session_timeout 0: it never idles in one.
 */
static void
worker_pin_settings(void)
{
	SetConfigOption("search_path", "pg_catalog, pg_temp",
					PGC_SUSET, PGC_S_OVERRIDE);
	SetConfigOption("role", "none", PGC_SUSET, PGC_S_OVERRIDE);
	SetConfigOption("default_transaction_read_only", "off",
					PGC_SUSET, PGC_S_OVERRIDE);
	SetConfigOption("default_transaction_isolation", "read committed",
					PGC_SUSET, PGC_S_OVERRIDE);
	SetConfigOption("statement_timeout", "0", PGC_SUSET, PGC_S_OVERRIDE);
	SetConfigOption("lock_timeout", psprintf("%d", WORKER_LOCK_TIMEOUT_MS),
					PGC_SUSET, PGC_S_OVERRIDE);
	SetConfigOption("idle_in_transaction_session_timeout", "0",
					PGC_SUSET, PGC_S_OVERRIDE);
}

/*
 * Exit, telling the launcher why (it decides when to start the next one).
 */
static void
worker_exit(ExpirySlot *slot, ExpiryExitReason reason)
{
	LWLockAcquire(expiry_shared->lock, LW_EXCLUSIVE);
	slot->exit_reason = reason;
	LWLockRelease(expiry_shared->lock);
	if (reason == EXIT_NO_EXTENSION)
		ereport(DEBUG1,
				(errmsg("lockctl expiry worker for database \"%s\" exits: extension \"lockctl\" is not installed",
						NameStr(slot->dbname))));
	proc_exit(0);
}

/*
 * A pass failed: log it, roll back, and keep it for lockctl.workers.
 * Called in PG_CATCH; cxt is the worker's memory context.
 */
static void
worker_record_error(ExpirySlot *slot, MemoryContext cxt)
{
	ErrorData  *edata;

	MemoryContextSwitchTo(cxt);
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
}

/*
 * Main of an expiry worker.
 */
void
lockctl_expiry_worker_main(Datum main_arg)
{
	static uint32 wait_event = 0;	/* see lockctl_wait_event */
	int			slotno = DatumGetInt32(main_arg);
	ExpiryWorkerArgs args;
	ExpirySlot *slot;
	MemoryContext worker_cxt;
	volatile int consecutive_errors = 0;
	ErrorContextCallback errcallback;
	volatile int rc = 0;		/* how the last sleep ended */
	volatile TimestampTz last_pass = 0;

	memcpy(&args, MyBgworkerEntry->bgw_extra, sizeof(args));

	pqsignal(SIGHUP, SignalHandlerForConfigReload);
	pqsignal(SIGTERM, die);
	BackgroundWorkerUnblockSignals();

	slot = worker_claim_slot(slotno, &args);
	if (slot == NULL)
		proc_exit(0);
	before_shmem_exit(worker_detach, Int32GetDatum(slotno));

	errcallback.callback = worker_error_context;
	errcallback.arg = MemoryContextStrdup(TopMemoryContext, NameStr(slot->dbname));
	errcallback.previous = error_context_stack;
	error_context_stack = &errcallback;

	BackgroundWorkerInitializeConnectionByOid(args.dboid, InvalidOid, 0);
	worker_pin_settings();
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
		volatile long notify_due_ms = -1;
		volatile bool run_pass;
		long		since_pass_ms;
		bool		notify_wake;

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
			worker_exit(slot, EXIT_STOP_REQUESTED);

		/*
		 * First the NOTIFYs of lease ends (lease_notify.c): a listener waits
		 * for them.  Its latch wakes this worker at each end, and it sleeps
		 * no longer than until the next lease with a channel runs out.
		 */
		PG_TRY();
		{
			long		due_ms;

			/* a checkpoint began: the lease table into WAL (lease_wal.c) */
			LeaseWalCheckpointed();
			(void) lease_notify_worker_pass(args.dboid, &due_ms);
			notify_due_ms = due_ms;
		}
		PG_CATCH();
		{
			worker_record_error(slot, worker_cxt);
		}
		PG_END_TRY();

		/*
		 * The pass of holds runs every interval, and whenever something
		 * else than a lease end notice woke the worker (wake_expiry_worker,
		 * the launcher): not at each lease end.
		 */
		since_pass_ms = (long) Min((GetCurrentTimestamp() - last_pass) / 1000,
								   (TimestampTz) LONG_MAX);
		notify_wake = lease_notify_woken(slotno);
		run_pass = since_pass_ms >= lockctl_expiry_interval ||
			((rc & WL_LATCH_SET) && !notify_wake);
		if (run_pass)
			last_pass = GetCurrentTimestamp();
		PG_TRY();
		{
			if (run_pass)
				present = worker_pass(slotno);
		}
		PG_CATCH();
		{
			worker_record_error(slot, worker_cxt);
			failed = true;
		}
		PG_END_TRY();
		MemoryContextReset(worker_cxt);

		if (!present)
			worker_exit(slot, EXIT_NO_EXTENSION);

		/* after failures, the interval doubled per failure in a row */
		if (failed)
			sleep_ms = worker_backoff_ms(lockctl_expiry_interval,
										 WORKER_ERROR_BACKOFF_MAX_MS,
										 consecutive_errors++);
		else
		{
			sleep_ms = lockctl_expiry_interval;
			consecutive_errors = 0;
		}
		if (notify_due_ms >= 0)
			sleep_ms = Min(sleep_ms, notify_due_ms);
		if (!failed && !run_pass)
			sleep_ms = Max(Min(sleep_ms, lockctl_expiry_interval - since_pass_ms), 1);

		rc = WaitLatch(MyLatch,
					   WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
					   sleep_ms,
					   lockctl_wait_event(&wait_event, "LockctlExpiryWorkerMain"));
		ResetLatch(MyLatch);
	}
}

/*
 * Batches of one kind, each in its own transaction, while they come back
 * full.  Returns false when the extension is not installed.  *last_start:
 * when the last batch began.  Sets *held_back when DDL on the extension
 * kept a batch from running (worker_begin).
 */
static bool
worker_batches(int slotno, WorkerBatchKind kind, TimestampTz *last_start,
			   bool *held_back)
{
	bool		absent = false;
	bool		busy = false;
	int			n;

	do
	{
		int			batch = lockctl_expiry_batch_size;

		*last_start = GetCurrentTimestamp();
		n = worker_batch(slotno, kind, batch, &absent, &busy);
		if (absent)
			return false;
		if (busy)
			*held_back = true;
		CHECK_FOR_INTERRUPTS();
		if (n < batch)
			break;
	} while (true);
	return true;
}

/*
 * One pass: expire every due hold, then purge old finished ones (unless
 * retention is -1) and request keys past their ttl (lockctl.retention is
 * for holds), in batches.  Returns false when the extension is not
 * installed.
 */
static bool
worker_pass(int slotno)
{
	ExpirySlot *slot = &expiry_shared->slots[slotno];
	TimestampTz expire_start;
	TimestampTz start;
	bool		held_back = false;

	if (!worker_batches(slotno, BATCH_EXPIRE_HOLDS, &expire_start, &held_back))
		return false;
	/* every hold due before the last batch began and still live was skipped */
	worker_note_skipped(slotno, expire_start);
	if (lockctl_retention >= 0 &&
		!worker_batches(slotno, BATCH_PURGE_HOLDS, &start, &held_back))
		return false;
	if (!worker_batches(slotno, BATCH_PURGE_REQUESTS, &start, &held_back))
		return false;

	/*
	 * A pass that DDL held back is not complete: passes and last_run say
	 * when holds were last expired, and waiting_on says why not now.
	 */
	if (held_back)
		return true;
	LWLockAcquire(expiry_shared->lock, LW_EXCLUSIVE);
	slot->passes++;
	slot->last_run = GetCurrentTimestamp();
	LWLockRelease(expiry_shared->lock);
	return true;
}

/*
 * The schema of expire_holds() and purge_holds() in this database:
 * lockctl_internal when the installed extension has it (1.1 and later),
 * else lockctl (1.0's SQL objects, until ALTER EXTENSION lockctl UPDATE).
 * The schema must belong to the extension: a schema of that name that a
 * user made is not ours.
 */
static const char *
worker_schema(Oid extoid)
{
	Oid			nsp = get_namespace_oid(EXPIRY_INTERNAL_SCHEMA, true);

	if (OidIsValid(nsp) &&
		getExtensionOfObject(NamespaceRelationId, nsp) == extoid)
		return EXPIRY_INTERNAL_SCHEMA;
	return "lockctl";
}

/*
 * Start a transaction of the worker, with the extension locked in
 * AccessShareLock until it ends; returns the extension's oid, with a
 * snapshot pushed.  Returns InvalidOid, with no transaction open, when
 * the extension is not installed (*busy false) or is being dropped or
 * updated right now (*busy true: try again next pass).
 *
 * Why the lock: DROP EXTENSION locks the extension, then each of its
 * tables as it drops them, in its own order, while a batch opens the
 * tables it reads in the order of its queries: the two deadlocked, and
 * the deadlock detector could pick the DROP EXTENSION as its victim.
 * Taking the extension's lock first puts the worker in line behind the
 * DROP EXTENSION (and ALTER EXTENSION ... UPDATE, which the utility hook
 * makes take it too), and never waiting for it keeps the worker from
 * holding anything the DDL needs.  This is what objects locked for
 * dependency checks (LockDatabaseObject) are for.
 */
static Oid
worker_begin(bool *busy)
{
	Oid			extoid;

	*busy = false;
	SetCurrentStatementStartTimestamp();
	StartTransactionCommand();
	extoid = get_extension_oid("lockctl", true);
	if (OidIsValid(extoid))
	{
		if (!ConditionalLockDatabaseObject(ExtensionRelationId, extoid, 0,
										   AccessShareLock))
		{
			*busy = true;
			extoid = InvalidOid;
		}
		/* dropped (or dropped and made again) before we had the lock? */
		else if (get_extension_oid("lockctl", true) != extoid)
			extoid = InvalidOid;
	}
	if (!OidIsValid(extoid))
	{
		CommitTransactionCommand();
		return InvalidOid;
	}
	PushActiveSnapshot(GetTransactionSnapshot());
	return extoid;
}

/*
 * One batch in its own transaction: expire_holds(batch),
 * purge_holds(retention, batch) or purge_requests(batch), in the schema
 * worker_schema() says (request keys exist only from 1.1 on).  Returns how
 * many holds it expired or purged; sets *absent when the extension is not
 * installed, *busy when DDL on it kept the batch from running.
 */
static int
worker_batch(int slotno, WorkerBatchKind kind, int batch_size, bool *absent,
			 bool *busy)
{
	ExpirySlot *slot = &expiry_shared->slots[slotno];
	const char *sql;
	Oid			argtypes[2];
	Datum		values[2];
	int			nargs;
	int			ret;
	int			count = 0;
	bool		isnull;
	Oid			extoid;
	const char *schema;

	extoid = worker_begin(busy);
	*absent = !OidIsValid(extoid) && !*busy;
	if (!OidIsValid(extoid))
		return 0;
	schema = worker_schema(extoid);
	/* nothing to do: no request keys before 1.1 */
	if (kind == BATCH_PURGE_REQUESTS && strcmp(schema, "lockctl") == 0)
	{
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
		sql = psprintf("SELECT %s.purge_requests($1)", schema);
		argtypes[0] = INT4OID;
		values[0] = Int32GetDatum(batch_size);
		nargs = 1;
	}
	else if (kind == BATCH_PURGE_HOLDS)
	{
		sql = psprintf("SELECT %s.purge_holds($1, $2)", schema);
		argtypes[0] = INTERVALOID;
		values[0] = IntervalPGetDatum(lockctl_us_to_interval((int64) lockctl_retention * USECS_PER_SEC));
		argtypes[1] = INT4OID;
		values[1] = Int32GetDatum(batch_size);
		nargs = 2;
	}
	else
	{
		sql = psprintf("SELECT %s.expire_holds($1)", schema);
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

/* The oid of lockctl's table relname (schema lockctl at every version). */
static Oid
worker_relid(const char *relname)
{
	Oid			relid = get_relname_relid(relname, get_namespace_oid("lockctl", false));

	if (!OidIsValid(relid))
		elog(ERROR, "table lockctl.%s does not exist", relname);
	return relid;
}

/*
 * The transactions that hold tuple tid of rel locked (its xmax: one
 * transaction, or the members of a multixact), added to *xids as the
 * top-level transactions of those still running.  (A row's xmax as SQL
 * shows it cannot tell a multixact from a transaction, nor a
 * subtransaction, which is what reserve's paths lock in, from its
 * top-level transaction: hence the tuple header and pg_subtrans.)
 */
static void
worker_row_lockers(Relation rel, ItemPointer tid, List **xids)
{
	HeapTupleData tuple;
	Buffer		buf;
	uint16		infomask;
	TransactionId xmax;
	TransactionId *lockers = NULL;
	int			nlockers = 0;

	tuple.t_self = *tid;
	if (!heap_fetch(rel, SnapshotAny, &tuple, &buf, false))
		return;
	LockBuffer(buf, BUFFER_LOCK_SHARE);
	infomask = tuple.t_data->t_infomask;
	xmax = HeapTupleHeaderGetRawXmax(tuple.t_data);
	LockBuffer(buf, BUFFER_LOCK_UNLOCK);
	ReleaseBuffer(buf);

	if (infomask & HEAP_XMAX_INVALID)
		return;
	if (infomask & HEAP_XMAX_IS_MULTI)
	{
		MultiXactMember *members;
		int			n = GetMultiXactIdMembers(xmax, &members, true,
											  HEAP_XMAX_IS_LOCKED_ONLY(infomask));

		lockers = palloc(sizeof(TransactionId) * Max(n, 1));
		for (int i = 0; i < n; i++)
			lockers[nlockers++] = members[i].xid;
	}
	else
	{
		lockers = palloc(sizeof(TransactionId));
		lockers[nlockers++] = xmax;
	}
	for (int i = 0; i < nlockers; i++)
	{
		TransactionId top;

		/* a running xid is at least our TransactionXmin: pg_subtrans has it */
		if (!TransactionIdIsValid(lockers[i]) ||
			TransactionIdIsCurrentTransactionId(lockers[i]) ||
			!TransactionIdIsInProgress(lockers[i]))
			continue;
		top = SubTransGetTopmostTransaction(lockers[i]);
		/* xids in an oid list: both are uint32 (no xid lists before 16) */
		if (!list_member_oid(*xids, (Oid) top))
			*xids = lappend_oid(*xids, (Oid) top);
	}
}

/*
 * After the expiry batches of a pass: the holds due by due_by (when the
 * last batch began, which expired every due hold it could lock) that are
 * still live were left because another transaction has them or their slot
 * locked.  Say in the slot (lockctl.workers.waiting_on) how many, and which
 * sessions (pids) or prepared transactions (gids) hold them, or clear it.
 * The holds are found through the worker's index of live holds by expiry,
 * so this costs what is left, nothing in the common case; the lockers are
 * looked up for the first WORKER_SKIPPED_NAMED of them.
 */
#define WORKER_SKIPPED_NAMED	64
static void
worker_note_skipped(int slotno, TimestampTz due_by)
{
	ExpirySlot *slot = &expiry_shared->slots[slotno];
	Oid			argtypes[1] = {TIMESTAMPTZOID};
	Datum		values[1];
	StringInfoData msg;
	int64		nleft = 0;
	int64		ncarts = 0;
	List	   *xids = NIL;
	StringInfoData pids;
	char	   *gids = NULL;
	int			ret;
	bool		busy;

	initStringInfo(&msg);
	initStringInfo(&pids);
	values[0] = TimestampTzGetDatum(due_by);

	if (!OidIsValid(worker_begin(&busy)))
	{
		/* gone: the next pass ends the worker; being dropped: say so */
		if (busy)
		{
			LWLockAcquire(expiry_shared->lock, LW_EXCLUSIVE);
			strlcpy(slot->waiting_on,
					"extension lockctl, locked by a DROP EXTENSION or ALTER EXTENSION UPDATE in progress",
					WORKER_ERRMSG_LEN);
			LWLockRelease(expiry_shared->lock);
		}
		return;
	}
	pgstat_report_activity(STATE_RUNNING, "lockctl: due holds left by the last batch");
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");

	ret = SPI_execute_with_args(
		"SELECT r.ctid, s.ctid, pg_catalog.count(*) OVER ()"
		"  FROM lockctl.reservations AS r"
		"  JOIN lockctl.pool_slots AS s ON s.pool_id = r.pool_id AND s.slot = r.slot"
		" WHERE r.status = 'held' AND r.expires <= $1"
		" LIMIT " CppAsString2(WORKER_SKIPPED_NAMED),
		1, argtypes, values, NULL, true, 0);
	if (ret != SPI_OK_SELECT)
		elog(ERROR, "looking for the due holds left failed: SPI result %d", ret);
	if (SPI_processed > 0)
	{
		Relation	holds = table_open(worker_relid("reservations"), AccessShareLock);
		Relation	slots = table_open(worker_relid("pool_slots"), AccessShareLock);
		SPITupleTable *tt = SPI_tuptable;
		bool		isnull;

		nleft = DatumGetInt64(SPI_getbinval(tt->vals[0], tt->tupdesc, 3, &isnull));
		for (uint64 i = 0; i < SPI_processed; i++)
		{
			worker_row_lockers(holds, (ItemPointer) DatumGetPointer(SPI_getbinval(tt->vals[i], tt->tupdesc, 1, &isnull)), &xids);
			worker_row_lockers(slots, (ItemPointer) DatumGetPointer(SPI_getbinval(tt->vals[i], tt->tupdesc, 2, &isnull)), &xids);
		}
		table_close(holds, AccessShareLock);
		table_close(slots, AccessShareLock);
	}

	/*
	 * Since 1.1 (a database still at 1.0 has no lockctl.carts): due carts
	 * left, and the rows that may hold them or holds back besides a hold's
	 * own two: a cart's row and its items' slot rows, and the holder count
	 * rows of pools with a per-holder limit (src/reserve_cart.sql,
	 * src/reserve_limits.sql).
	 */
	if (OidIsValid(get_relname_relid("carts", get_namespace_oid("lockctl", false))))
	{
		bool		isnull;

		ret = SPI_execute_with_args(
			"SELECT pg_catalog.count(*) FROM lockctl.carts AS c"
			" WHERE c.status = 'held' AND c.expires <= $1",
			1, argtypes, values, NULL, true, 0);
		if (ret != SPI_OK_SELECT || SPI_processed != 1)
			elog(ERROR, "looking for the due carts left failed: SPI result %d", ret);
		ncarts = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));

		ret = SPI_execute_with_args(
			"(SELECT 'c'::pg_catalog.text, c.ctid FROM lockctl.carts AS c"
			"  WHERE c.status = 'held' AND c.expires <= $1"
			"  LIMIT " CppAsString2(WORKER_SKIPPED_NAMED) ")"
			" UNION ALL "
			"(SELECT 's', s.ctid FROM lockctl.carts AS c"
			"   JOIN lockctl.cart_items AS i ON i.cart_id = c.id"
			"   JOIN lockctl.pool_slots AS s ON s.pool_id = i.pool_id AND s.slot = i.slot"
			"  WHERE c.status = 'held' AND c.expires <= $1"
			"  LIMIT " CppAsString2(WORKER_SKIPPED_NAMED) ")"
			" UNION ALL "
			"(SELECT 'h', h.ctid FROM lockctl.carts AS c"
			"   JOIN lockctl.cart_items AS i ON i.cart_id = c.id"
			"   JOIN lockctl.holder_units AS h ON h.pool_id = i.pool_id AND h.holder = c.holder"
			"  WHERE c.status = 'held' AND c.expires <= $1"
			"  LIMIT " CppAsString2(WORKER_SKIPPED_NAMED) ")"
			" UNION ALL "
			"(SELECT 'h', h.ctid FROM lockctl.reservations AS r"
			"   JOIN lockctl.holder_units AS h ON h.pool_id = r.pool_id AND h.holder = r.holder"
			"  WHERE r.status = 'held' AND r.expires <= $1"
			"  LIMIT " CppAsString2(WORKER_SKIPPED_NAMED) ")",
			1, argtypes, values, NULL, true, 0);
		if (ret != SPI_OK_SELECT)
			elog(ERROR, "looking for the rows of due carts left failed: SPI result %d", ret);
		if (SPI_processed > 0)
		{
			Relation	carts = table_open(worker_relid("carts"), AccessShareLock);
			Relation	slots = table_open(worker_relid("pool_slots"), AccessShareLock);
			Relation	counts = table_open(worker_relid("holder_units"), AccessShareLock);
			SPITupleTable *tt = SPI_tuptable;

			for (uint64 i = 0; i < SPI_processed; i++)
			{
				char	   *kind = TextDatumGetCString(SPI_getbinval(tt->vals[i], tt->tupdesc, 1, &isnull));
				ItemPointer tid = (ItemPointer) DatumGetPointer(SPI_getbinval(tt->vals[i], tt->tupdesc, 2, &isnull));

				worker_row_lockers(kind[0] == 'c' ? carts : kind[0] == 's' ? slots : counts,
								   tid, &xids);
			}
			table_close(carts, AccessShareLock);
			table_close(slots, AccessShareLock);
			table_close(counts, AccessShareLock);
		}
	}

	/* running in a session (a pid), or prepared (a gid) */
	if (xids != NIL)
	{
		ListCell   *lc;
		StringInfoData prepared;

		initStringInfo(&prepared);
		foreach(lc, xids)
		{
			TransactionId xid = (TransactionId) lfirst_oid(lc);
			int			pid = BackendXidGetPid(xid);

			if (pid != 0)
				appendStringInfo(&pids, "%s%d", pids.len > 0 ? ", " : "", pid);
			else
				appendStringInfo(&prepared, "%s%u", prepared.len > 0 ? "," : "", xid);
		}
		if (prepared.len > 0)
		{
			Oid			gidtypes[1] = {TEXTOID};
			Datum		gidvalues[1];

			gidvalues[0] = CStringGetTextDatum(prepared.data);
			ret = SPI_execute_with_args(
				"SELECT pg_catalog.string_agg(pg_catalog.quote_literal(p.gid), ', ' ORDER BY p.gid)"
				"  FROM pg_catalog.pg_prepared_xacts AS p"
				" WHERE p.transaction::text = ANY (pg_catalog.string_to_array($1, ','))",
				1, gidtypes, gidvalues, NULL, true, 1);
			if (ret == SPI_OK_SELECT && SPI_processed == 1)
				gids = SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1);
		}
	}

	if (nleft > 0 || ncarts > 0)
	{
		if (nleft > 0)
			appendStringInfo(&msg, INT64_FORMAT " due hold%s", nleft, nleft == 1 ? "" : "s");
		if (ncarts > 0)
			appendStringInfo(&msg, "%s" INT64_FORMAT " due cart%s", nleft > 0 ? " and " : "",
							 ncarts, ncarts == 1 ? "" : "s");
		appendStringInfoString(&msg, " locked by other transactions");
		if (pids.len > 0 || gids != NULL)
			appendStringInfo(&msg, " (%s%s%s%s%s)",
							 pids.len > 0 ? "pid " : "", pids.data,
							 pids.len > 0 && gids ? "; " : "",
							 gids ? "prepared " : "", gids ? gids : "");
	}
	SPI_finish();
	PopActiveSnapshot();
	CommitTransactionCommand();
	pgstat_report_activity(STATE_IDLE, NULL);

	LWLockAcquire(expiry_shared->lock, LW_EXCLUSIVE);
	strlcpy(slot->waiting_on, msg.data, WORKER_ERRMSG_LEN);
	LWLockRelease(expiry_shared->lock);
}
