/*-------------------------------------------------------------------------
 *
 * request.c
 *	  Idempotent requests: the lock that makes duplicates of one request
 *	  key wait for each other, and the counters behind lockctl.request_stats.
 *
 * The claim itself is a row (src/request.sql): it commits or rolls back
 * with the transaction that has the effect.  What a row cannot do is make a
 * duplicate wait for a claim that is not committed yet and tell whether it
 * waited, so that part is here.  claim_request first takes a
 * transaction-level ExclusiveLock in PostgreSQL's lock manager on (database,
 * 64-bit hash of scope and key, field4 = REQUEST_LOCK_FIELD4); a duplicate
 * queues behind it until the first transaction ends, then finds its row (or
 * none, if it rolled back).  Being a heavyweight lock, the wait shows in
 * pg_locks, is seen by the deadlock detector, and honours lock_timeout,
 * statement_timeout and cancel.  Two different keys whose hashes collide
 * only share a queue, never a claim.
 *
 * Shared memory: one hash entry per database (at most REQUEST_STATS_DBS;
 * databases beyond that count in the entry of InvalidOid), with atomic
 * counters.  Protocol:
 *  - the LWLock guards the hash's shape: shared to find an entry, exclusive
 *    to enter one;
 *  - counters are pg_atomic_uint64, incremented with the lock held shared
 *    or not at all (after the entry is found), read without it.
 * Counters are not transactional: a claim counts when it is made, whether
 * or not its transaction commits; they reset at server restart.
 *
 * src/request.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/xact.h"
#include "catalog/pg_authid.h"
#include "common/hashfn.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "port/atomics.h"
#include "storage/ipc.h"
#include "storage/lmgr.h"
#include "storage/lock.h"
#include "storage/lwlock.h"
#include "storage/proc.h"
#include "storage/shmem.h"
#include "utils/acl.h"
#include "utils/builtins.h"
#include "utils/hsearch.h"
#include "utils/resowner.h"
#include "utils/syscache.h"

#include "lockctl.h"

/* "LR": a field4 that no SQL-level advisory lock uses (they use 1 and 2) */
#define REQUEST_LOCK_FIELD4		0x4C52
#define REQUEST_STATS_DBS		1024
#define REQUEST_TRANCHE_NAME	"lockctl requests"

typedef enum RequestCounter
{
	REQUEST_CLAIMS,				/* first use of a key: the caller goes ahead */
	REQUEST_REPEATS,			/* a duplicate that got the stored result */
	REQUEST_WAITS,				/* a duplicate that waited for one in flight */
	REQUEST_TIMEOUTS,			/* a duplicate that gave up waiting */
	REQUEST_CONFLICTS,			/* a key reused with another fingerprint */
	REQUEST_NCOUNTERS
} RequestCounter;

typedef struct RequestStats
{
	Oid			dbid;			/* hash key; InvalidOid: overflow */
	pg_atomic_uint64 counters[REQUEST_NCOUNTERS];
} RequestStats;

typedef struct RequestShared
{
	LWLock	   *lock;
} RequestShared;

static RequestShared *request_shared = NULL;
static HTAB *request_stats = NULL;

static shmem_request_hook_type prev_shmem_request_hook = NULL;
static shmem_startup_hook_type prev_shmem_startup_hook = NULL;

static void request_shmem_request(void);
static void request_shmem_startup(void);
static RequestStats *request_stats_entry(Oid dbid);
static void request_count(RequestCounter c);
static Oid	request_scope(FunctionCallInfo fcinfo, int argno);
static void request_lock(Oid scope, const char *key, int64 wait_us);

/*
 * Called from _PG_init: chain this module's shared-memory hooks.
 */
void
RequestInit(void)
{
	prev_shmem_request_hook = shmem_request_hook;
	shmem_request_hook = request_shmem_request;
	prev_shmem_startup_hook = shmem_startup_hook;
	shmem_startup_hook = request_shmem_startup;
}

static void
request_shmem_request(void)
{
	if (prev_shmem_request_hook)
		prev_shmem_request_hook();
	RequestAddinShmemSpace(add_size(MAXALIGN(sizeof(RequestShared)),
									hash_estimate_size(REQUEST_STATS_DBS + 1,
													   sizeof(RequestStats))));
	RequestNamedLWLockTranche(REQUEST_TRANCHE_NAME, 1);
}

static void
request_shmem_startup(void)
{
	bool		found;
	HASHCTL		info;

	if (prev_shmem_startup_hook)
		prev_shmem_startup_hook();

	LWLockAcquire(AddinShmemInitLock, LW_EXCLUSIVE);
	request_shared = ShmemInitStruct("lockctl requests", sizeof(RequestShared),
									 &found);
	if (!found)
		request_shared->lock = &(GetNamedLWLockTranche(REQUEST_TRANCHE_NAME))->lock;

	memset(&info, 0, sizeof(info));
	info.keysize = sizeof(Oid);
	info.entrysize = sizeof(RequestStats);
	/* one more than the limit: the overflow entry always fits */
	request_stats = ShmemInitHash("lockctl request stats",
								  REQUEST_STATS_DBS + 1, REQUEST_STATS_DBS + 1,
								  &info, HASH_ELEM | HASH_BLOBS | HASH_FIXED_SIZE);
	LWLockRelease(AddinShmemInitLock);
}

/*
 * The counters of database dbid, entered on first use; those of the
 * overflow entry once REQUEST_STATS_DBS databases have entries.
 */
static RequestStats *
request_stats_entry(Oid dbid)
{
	RequestStats *e;
	bool		found;
	int			i;

	LWLockAcquire(request_shared->lock, LW_SHARED);
	e = hash_search(request_stats, &dbid, HASH_FIND, NULL);
	LWLockRelease(request_shared->lock);
	if (e != NULL)
		return e;

	LWLockAcquire(request_shared->lock, LW_EXCLUSIVE);
	if (hash_get_num_entries(request_stats) >= REQUEST_STATS_DBS)
		dbid = InvalidOid;
	e = hash_search(request_stats, &dbid, HASH_ENTER, &found);
	if (!found)
		for (i = 0; i < REQUEST_NCOUNTERS; i++)
			pg_atomic_init_u64(&e->counters[i], 0);
	LWLockRelease(request_shared->lock);
	return e;
}

static void
request_count(RequestCounter c)
{
	/* entries are never removed, so the pointer stays valid */
	pg_atomic_fetch_add_u64(&request_stats_entry(MyDatabaseId)->counters[c], 1);
}

static void
request_check_shmem(void)
{
	if (request_shared == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("lockctl must be loaded via \"shared_preload_libraries\"")));
}

/*
 * The role whose keys the call uses: argument argno if given (the caller
 * must have that role's privileges), else the session's role (SET ROLE's,
 * else the session user; SECURITY DEFINER does not hide it).
 */
static Oid
request_scope(FunctionCallInfo fcinfo, int argno)
{
	Oid			self = OidIsValid(GetCurrentRoleId()) ? GetCurrentRoleId() : GetSessionUserId();
	Oid			scope;

	if (PG_ARGISNULL(argno))
		return self;
	scope = get_role_oid(NameStr(*PG_GETARG_NAME(argno)), false);
	if (scope != self && !has_privs_of_role(self, scope))
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("permission denied to use the request keys of role \"%s\"",
						NameStr(*PG_GETARG_NAME(argno))),
				 errdetail("Only roles with the privileges of role \"%s\" may use its keys.",
						   NameStr(*PG_GETARG_NAME(argno)))));
	return scope;
}

/*
 * Take the transaction-level lock of (scope, key), waiting at most wait_us
 * (-1: as long as lock_timeout and statement_timeout allow).  A wait is
 * counted; giving up raises 55P03.
 */
static void
request_lock(Oid scope, const char *key, int64 wait_us)
{
	LOCKTAG		tag;
	uint64		h;
	int			save_timeout = LockTimeout;

	h = hash_bytes_extended((const unsigned char *) key, strlen(key), scope);
	SET_LOCKTAG_ADVISORY(tag, MyDatabaseId, (uint32) (h >> 32), (uint32) h,
						 REQUEST_LOCK_FIELD4);

	if (LockAcquire(&tag, ExclusiveLock, false, true) != LOCKACQUIRE_NOT_AVAIL)
		return;

	/* another transaction is working on this key: wait for its outcome */
	request_count(REQUEST_WAITS);
	if (wait_us == 0)
		goto gave_up;
	if (wait_us < 0)
	{
		(void) LockAcquire(&tag, ExclusiveLock, false, false);
		return;
	}

	/*
	 * A bounded wait is the lock manager's own lock_timeout for this one
	 * acquisition (the tighter of the caller's wait and its lock_timeout),
	 * in a subtransaction: giving up must leave the lock queue and the
	 * resource owners as an aborted wait leaves them, and only a
	 * subtransaction's abort does that.  The lock, once granted, passes to
	 * the parent at the subtransaction's commit.
	 */
	{
		MemoryContext oldcontext = CurrentMemoryContext;
		ResourceOwner oldowner = CurrentResourceOwner;
		volatile int wait_ms = (int) Min((wait_us + 999) / 1000, (int64) INT_MAX);
		volatile bool timed_out = false;

		BeginInternalSubTransaction(NULL);
		MemoryContextSwitchTo(oldcontext);
		PG_TRY();
		{
			if (LockTimeout <= 0 || wait_ms < LockTimeout)
				LockTimeout = wait_ms;
			(void) LockAcquire(&tag, ExclusiveLock, false, false);
			LockTimeout = save_timeout;
			ReleaseCurrentSubTransaction();
			MemoryContextSwitchTo(oldcontext);
			CurrentResourceOwner = oldowner;
		}
		PG_CATCH();
		{
			ErrorData  *edata;

			LockTimeout = save_timeout;
			MemoryContextSwitchTo(oldcontext);
			edata = CopyErrorData();
			FlushErrorState();
			RollbackAndReleaseCurrentSubTransaction();
			MemoryContextSwitchTo(oldcontext);
			CurrentResourceOwner = oldowner;
			if (edata->sqlerrcode != ERRCODE_LOCK_NOT_AVAILABLE)
				ReThrowError(edata);
			timed_out = true;
		}
		PG_END_TRY();
		if (!timed_out)
			return;
	}

gave_up:
	request_count(REQUEST_TIMEOUTS);
	ereport(ERROR,
			(errcode(ERRCODE_LOCK_NOT_AVAILABLE),
			 errmsg("request \"%s\" is still being processed by another transaction", key),
			 errhint("Retry later: the other transaction's outcome decides whether this request was done.")));
}

/*
 * lockctl_internal.request_begin(key text, wait interval, scope name)
 * returns name: check the arguments, lock (scope, key) for this
 * transaction, and return the scope's role name.  Called by
 * lockctl.claim_request before it looks at the key's row.
 */
PG_FUNCTION_INFO_V1(lockctl_request_begin);
Datum
lockctl_request_begin(PG_FUNCTION_ARGS)
{
	char	   *key = lockctl_arg_name(fcinfo, 0, "key", false);
	int64		wait_us = -1;
	Oid			scope;

	if (!PG_ARGISNULL(1))
		wait_us = lockctl_arg_interval_us(fcinfo, 1, "wait", 0,
										  (int64) INT_MAX * 1000);
	scope = request_scope(fcinfo, 2);
	request_check_shmem();
	PreventCommandDuringRecovery("lockctl.claim_request()");
	request_lock(scope, key, wait_us);
	PG_RETURN_DATUM(DirectFunctionCall1(namein,
										CStringGetDatum(GetUserNameFromId(scope, false))));
}

/*
 * lockctl_internal.request_scope(scope name) returns name: the role whose
 * keys a call without the lock uses (complete_request), checked as above.
 */
PG_FUNCTION_INFO_V1(lockctl_request_scope);
Datum
lockctl_request_scope(PG_FUNCTION_ARGS)
{
	Oid			scope = request_scope(fcinfo, 0);

	PG_RETURN_DATUM(DirectFunctionCall1(namein,
										CStringGetDatum(GetUserNameFromId(scope, false))));
}

/*
 * lockctl_internal.request_note(what text): count a claim ('claim'), a
 * replayed duplicate ('repeat') or a fingerprint conflict ('conflict').
 */
PG_FUNCTION_INFO_V1(lockctl_request_note);
Datum
lockctl_request_note(PG_FUNCTION_ARGS)
{
	char	   *what = text_to_cstring(PG_GETARG_TEXT_PP(0));

	request_check_shmem();
	if (strcmp(what, "claim") == 0)
		request_count(REQUEST_CLAIMS);
	else if (strcmp(what, "repeat") == 0)
		request_count(REQUEST_REPEATS);
	else if (strcmp(what, "conflict") == 0)
		request_count(REQUEST_CONFLICTS);
	else
		elog(ERROR, "unknown request counter \"%s\"", what);
	PG_RETURN_VOID();
}

/*
 * lockctl_internal.request_stats(): this database's counters, one row.
 */
PG_FUNCTION_INFO_V1(lockctl_request_stats);
Datum
lockctl_request_stats(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	Datum		values[REQUEST_NCOUNTERS];
	bool		nulls[REQUEST_NCOUNTERS] = {0};
	RequestStats *e;
	int			i;

	InitMaterializedSRF(fcinfo, 0);
	if (request_shared == NULL)
		return (Datum) 0;

	LWLockAcquire(request_shared->lock, LW_SHARED);
	e = hash_search(request_stats, &MyDatabaseId, HASH_FIND, NULL);
	LWLockRelease(request_shared->lock);
	for (i = 0; i < REQUEST_NCOUNTERS; i++)
		values[i] = Int64GetDatum(e ? (int64) pg_atomic_read_u64(&e->counters[i]) : 0);
	tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
	return (Datum) 0;
}
