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
 * lockctl.claim_request and lockctl.complete_request are C functions too
 * (no PL/pgSQL frame, no SET clauses to save and restore on every call):
 * they check their arguments, take the lock, and run their SQL through SPI
 * with plans prepared once per backend, as the owner of the function (the
 * extension's owner), which is what SECURITY DEFINER would do; callers
 * have no rights on lockctl.request_keys.  The common cases skip the SQL:
 * the claim of a key that has no row inserts it directly
 * (request_claim_fast), that of a key whose row is done reads the row
 * directly (request_find_fast), and the completion of the key just
 * claimed updates its row directly (request_complete_fast).  The SQL
 * names every object with its schema and writes every operator as
 * OPERATOR(pg_catalog.x): a plan is analysed again under the caller's
 * search_path when that changes or the table's definition does, and
 * nothing the caller plants in public or pg_temp may be picked then.
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

#include "access/detoast.h"
#include "access/genam.h"
#include "access/heapam.h"
#include "access/stratnum.h"
#include "access/table.h"
#include "access/tableam.h"
#include "access/transam.h"
#include "access/xact.h"
#include "catalog/index.h"
#include "catalog/namespace.h"
#include "catalog/pg_authid.h"
#include "catalog/pg_collation.h"
#include "catalog/pg_type.h"
#include "common/hashfn.h"
#include "executor/spi.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "port/atomics.h"
#include "storage/bufmgr.h"
#include "storage/ipc.h"
#include "storage/lmgr.h"
#include "storage/lock.h"
#include "storage/lwlock.h"
#include "storage/proc.h"
#include "storage/shmem.h"
#include "utils/acl.h"
#include "utils/builtins.h"
#include "utils/datum.h"
#include "utils/fmgroids.h"
#include "utils/inval.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/hsearch.h"
#include "utils/resowner.h"
#include "utils/jsonb.h"
#include "utils/rel.h"
#include "utils/snapmgr.h"
#include "utils/syscache.h"
#include "utils/timestamp.h"
#include "utils/xid8.h"

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

static Size request_shmem_size(void);
static void request_shmem_startup(void);
static RequestStats *request_stats_entry(Oid dbid);
static void request_count(RequestCounter c);
static Oid	request_scope(FunctionCallInfo fcinfo, int argno);
static void request_lock(Oid scope, const char *key, int64 wait_us);

static const LockctlShmemPart request_shmem_part = {
	request_shmem_size, REQUEST_TRANCHE_NAME, request_shmem_startup
};

/*
 * Called from _PG_init: ask for the counters' table.
 */
void
RequestInit(void)
{
	lockctl_shmem_register(&request_shmem_part);
}

static Size
request_shmem_size(void)
{
	return add_size(MAXALIGN(sizeof(RequestShared)),
					hash_estimate_size(REQUEST_STATS_DBS + 1,
									   sizeof(RequestStats)));
}

static void
request_shmem_startup(void)
{
	bool		found;
	HASHCTL		info;

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
	/* entries are never removed, so the pointer stays valid: found once */
	static RequestStats *mine = NULL;
	static Oid	mine_db = InvalidOid;

	if (mine == NULL || mine_db != MyDatabaseId)
	{
		mine = request_stats_entry(MyDatabaseId);
		mine_db = MyDatabaseId;
	}
	pg_atomic_fetch_add_u64(&mine->counters[c], 1);
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
 * The name of role scope as lockctl.request_keys stores it.  The name of
 * the last role asked for is kept until pg_authid changes (a rename, a
 * drop: request_scope_name_inval), rather than looked up on every call; a
 * role that does not exist raises GetUserNameFromId's error.  The string
 * returned is valid until the next call.
 */
static Oid	request_scope_name_oid = InvalidOid;
static char request_scope_name[NAMEDATALEN];

static void
request_scope_name_inval(Datum arg, int cacheid, uint32 hashvalue)
{
	request_scope_name_oid = InvalidOid;
}

static const char *
request_scope_cstring(Oid scope)
{
	static bool registered = false;

	if (!registered)
	{
		CacheRegisterSyscacheCallback(AUTHOID, request_scope_name_inval, (Datum) 0);
		registered = true;
	}
	if (request_scope_name_oid != scope)
	{
		/* a role's name fits NAMEDATALEN: it is a name */
		strlcpy(request_scope_name, GetUserNameFromId(scope, false),
				sizeof(request_scope_name));
		request_scope_name_oid = scope;
	}
	return request_scope_name;
}

/* The same, as text in the caller's memory context. */
static Datum
request_scope_text(Oid scope)
{
	return CStringGetTextDatum(request_scope_cstring(scope));
}

/*
 * The same, as text in *buf, a caller's local variable (no palloc): for
 * claim_request, which uses it only while it runs.
 */
typedef union RequestScopeBuf
{
	int32		align;			/* a varlena's header is an int32 */
	char		data[VARHDRSZ + NAMEDATALEN];
} RequestScopeBuf;

static Datum
request_scope_text_in(Oid scope, RequestScopeBuf *buf)
{
	const char *name = request_scope_cstring(scope);
	size_t		len = strlen(name);

	memcpy(buf->data + VARHDRSZ, name, len);
	SET_VARSIZE(buf->data, len + VARHDRSZ);
	return PointerGetDatum(buf->data);
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

/*
 * The SQL of claim_request and complete_request, prepared once per backend
 * (SPI_keepplan).  Every name has its schema and every operator is
 * OPERATOR(pg_catalog.x): the plan cache analyses a query again under the
 * search_path in force when the path or the table changed, and that path
 * is the caller's.
 */
typedef enum RequestPlan
{
	REQUEST_PLAN_CLAIM,			/* claim: insert, or take over an expired key */
	REQUEST_PLAN_FIND,			/* claim of a key in use: its row */
	REQUEST_PLAN_COMPLETE,		/* complete: store the result */
	REQUEST_NPLANS
} RequestPlan;

static const char *const request_plan_sql[REQUEST_NPLANS] = {
	/* $1 scope, $2 key, $3 fingerprint, $4 now, $5 expires */
	"INSERT INTO lockctl.request_keys AS k"
	"       (scope, key, fingerprint, claimed, expires, claim_xact)"
	" VALUES ($1, $2, $3, $4, $5, pg_catalog.pg_current_xact_id())"
	" ON CONFLICT ON CONSTRAINT request_keys_pkey DO UPDATE"
	"    SET fingerprint = excluded.fingerprint, result = NULL,"
	"        claimed = excluded.claimed, completed = NULL,"
	"        expires = excluded.expires, claim_xact = excluded.claim_xact"
	"  WHERE k.expires OPERATOR(pg_catalog.<=) $4"
	" RETURNING k.tableoid, k.ctid",
	/* $1 scope, $2 key */
	"SELECT k.fingerprint, k.result, k.claim_xact"
	"  FROM lockctl.request_keys AS k"
	" WHERE k.scope OPERATOR(pg_catalog.=) $1"
	"   AND k.key OPERATOR(pg_catalog.=) $2",
	/* $1 scope, $2 key, $3 result */
	"UPDATE lockctl.request_keys AS k"
	"   SET result = $3, completed = pg_catalog.clock_timestamp()"
	" WHERE k.scope OPERATOR(pg_catalog.=) $1"
	"   AND k.key OPERATOR(pg_catalog.=) $2"
	"   AND k.claim_xact OPERATOR(pg_catalog.=) pg_catalog.pg_current_xact_id_if_assigned()"
};

static const int request_plan_nargs[REQUEST_NPLANS] = {5, 2, 3};
static const Oid request_plan_argtypes[REQUEST_NPLANS][5] = {
	{TEXTOID, TEXTOID, TEXTOID, TIMESTAMPTZOID, TIMESTAMPTZOID},
	{TEXTOID, TEXTOID},
	{TEXTOID, TEXTOID, JSONBOID},
};

static SPIPlanPtr request_plans[REQUEST_NPLANS];

/* Call between SPI_connect and SPI_finish. */
static SPIPlanPtr
request_plan(RequestPlan which)
{
	SPIPlanPtr	plan;

	if (request_plans[which] != NULL)
		return request_plans[which];
	/* a generic plan from the start: the parameters never change its shape */
	plan = SPI_prepare_cursor(request_plan_sql[which], request_plan_nargs[which],
							  (Oid *) request_plan_argtypes[which],
							  CURSOR_OPT_GENERIC_PLAN);
	if (plan == NULL)
		elog(ERROR, "SPI_prepare failed for \"%s\": %s",
			 request_plan_sql[which], SPI_result_code_string(SPI_result));
	if (SPI_keepplan(plan) != 0)
		elog(ERROR, "SPI_keepplan failed");
	request_plans[which] = plan;
	return plan;
}

/*
 * The role that SECURITY DEFINER would run the called function as: its
 * owner (the extension's owner, who owns lockctl.request_keys), looked up
 * once per call site as fmgr does for SECURITY DEFINER functions.
 */
static Oid
request_definer(FunctionCallInfo fcinfo)
{
	Oid		   *owner = (Oid *) fcinfo->flinfo->fn_extra;

	if (owner == NULL)
	{
		owner = MemoryContextAlloc(fcinfo->flinfo->fn_mcxt, sizeof(Oid));
		*owner = lockctl_fn_owner(fcinfo);
		fcinfo->flinfo->fn_extra = owner;
	}
	return *owner;
}

/*
 * Run plan which with the given parameters as the function's owner, in a
 * restricted security context (as a SECURITY DEFINER function, and no
 * more: nothing of the caller's may run with the owner's rights).  Returns
 * SPI_processed; with a row wanted, *row gets its columns' values, copied
 * to the caller's memory context.  The caller's identity comes back on
 * error too.
 */
static uint64
request_run(FunctionCallInfo fcinfo, RequestPlan which, Datum *args,
			const char *argnulls, int ncols, Datum *row, bool *rownulls)
{
	Oid			save_userid;
	int			save_sec_context;
	volatile uint64 processed = 0;

	GetUserIdAndSecContext(&save_userid, &save_sec_context);
	SetUserIdAndSecContext(request_definer(fcinfo),
						   save_sec_context | SECURITY_LOCAL_USERID_CHANGE |
						   SECURITY_RESTRICTED_OPERATION);
	PG_TRY();
	{
		int			rc;

		if (SPI_connect() != SPI_OK_CONNECT)
			elog(ERROR, "SPI_connect failed");
		rc = SPI_execute_plan(request_plan(which), args, argnulls, false,
							  ncols > 0 ? 1 : 0);
		if (rc < 0)
			elog(ERROR, "SPI_execute_plan failed for \"%s\": %s",
				 request_plan_sql[which], SPI_result_code_string(rc));
		processed = SPI_processed;
		if (ncols > 0 && processed > 0)
		{
			int			i;

			for (i = 0; i < ncols; i++)
			{
				Form_pg_attribute att = TupleDescAttr(SPI_tuptable->tupdesc, i);

				row[i] = SPI_getbinval(SPI_tuptable->vals[0],
									   SPI_tuptable->tupdesc, i + 1, &rownulls[i]);
				if (!rownulls[i])
					row[i] = SPI_datumTransfer(row[i], att->attbyval, att->attlen);
			}
		}
		if (SPI_finish() != SPI_OK_FINISH)
			elog(ERROR, "SPI_finish failed");
	}
	PG_FINALLY();
	{
		SetUserIdAndSecContext(save_userid, save_sec_context);
	}
	PG_END_TRY();
	return processed;
}


/*
 * The claim this backend made last: complete_request of that key in the
 * same transaction, the usual case, updates its row directly (see
 * request_complete_fast) instead of through the executor.  Only a hint: a
 * claim whose subtransaction rolled back, a row updated since, anything
 * that does not match, and the SQL path is taken.
 */
typedef struct RequestMemo
{
	FullTransactionId fxid;		/* top transaction of the claim */
	Oid			scope;
	Oid			relid;			/* lockctl.request_keys */
	Oid			relfilenode;	/* its storage when the row was written */
	ItemPointerData tid;		/* the row's latest version */
	CommandId	cid;			/* the command that wrote it */
	char		key[LOCKCTL_NAME_MAXLEN + 1];
} RequestMemo;

static RequestMemo request_memo;

/* relfilenode: the table's storage, or InvalidOid to look it up */
static void
request_memo_set(Oid scope, const char *key, Oid relid, Oid relfilenode,
				 ItemPointer tid)
{
	if (!OidIsValid(relfilenode))
	{
		Relation	rel = table_open(relid, AccessShareLock);

		relfilenode = rel->rd_rel->relfilenode;
		table_close(rel, NoLock);
	}
	request_memo.relfilenode = relfilenode;
	request_memo.fxid = GetTopFullTransactionId();
	request_memo.scope = scope;
	request_memo.relid = relid;
	ItemPointerCopy(tid, &request_memo.tid);
	request_memo.cid = GetCurrentCommandId(false);
	strlcpy(request_memo.key, key, sizeof(request_memo.key));
}

/*
 * What the direct paths (request_claim_fast, request_complete_fast) need to
 * know of lockctl.request_keys: whether it is as installed, and so may be
 * written without the executor; where its columns are; its indexes.  Worked
 * out from the relcache entry at first use and again after each
 * invalidation of it (request_shape_inval: a change of the table, its
 * columns, indexes, triggers or policies, its drop), not on every call.
 * As installed means: an ordinary table without triggers, row security,
 * check constraints or generated columns; exactly the known columns, of the
 * known types; plain btree indexes (no expressions, no predicate, not
 * deferrable, valid and ready: one being built concurrently sends the
 * calls to the SQL path until it is done), of which only the primary key,
 * on scope and key (in either order: its check is the same), is unique.
 * Anything else, and the SQL path does the work: the executor handles what
 * these paths do not.
 */
typedef enum RequestColumn
{
	RK_SCOPE,
	RK_KEY,
	RK_FINGERPRINT,
	RK_RESULT,
	RK_CLAIMED,
	RK_COMPLETED,
	RK_EXPIRES,
	RK_CLAIM_XACT,
	RK_NCOLS
} RequestColumn;

static const LockctlDirectColumn request_columns[RK_NCOLS] = {
	{"scope", TEXTOID}, {"key", TEXTOID}, {"fingerprint", TEXTOID},
	{"result", JSONBOID}, {"claimed", TIMESTAMPTZOID},
	{"completed", TIMESTAMPTZOID}, {"expires", TIMESTAMPTZOID},
	{"claim_xact", XID8OID}
};

/* as installed there are two: the primary key and the one on expires */
#define REQUEST_MAX_INDEXES 4
/*
 * as installed there are RK_NCOLS columns; room for a few dropped ones, so
 * that the direct paths' column arrays live on the stack, not in palloc'd
 * memory on every call
 */
#define REQUEST_MAX_NATTS	(2 * RK_NCOLS)

typedef struct RequestShape
{
	bool		valid;			/* worked out since the last invalidation */
	Oid			relid;			/* of the table it was worked out for */
	bool		direct;			/* as installed: the direct paths may write */
	int			attnum[RK_NCOLS];	/* 0-based, in the tuple descriptor */
	int			nindexes;
	/* the primary key first: its unique check decides a claim */
	Oid			indexoid[REQUEST_MAX_INDEXES];
	IndexInfo  *indexinfo[REQUEST_MAX_INDEXES];
	MemoryContext cxt;			/* the IndexInfos */
} RequestShape;

static RequestShape request_shape;

static void
request_shape_inval(Datum arg, Oid relid)
{
	if (!OidIsValid(relid) || relid == request_shape.relid)
		request_shape.valid = false;
}

static void
request_shape_build(Relation rel)
{
	RequestShape *s = &request_shape;
	List	   *indexes;
	ListCell   *lc;
	bool		pk_seen = false;

	if (s->cxt == NULL)
	{
		CacheRegisterRelcacheCallback(request_shape_inval, (Datum) 0);
		s->cxt = AllocSetContextCreate(CacheMemoryContext,
									   "lockctl request_keys shape",
									   ALLOCSET_SMALL_SIZES);
	}
	else
		MemoryContextReset(s->cxt);

	/*
	 * Valid from here: an invalidation that arrives while the indexes are
	 * opened below makes the next call work it out again.
	 */
	s->valid = true;
	s->relid = RelationGetRelid(rel);
	s->direct = false;
	s->nindexes = 0;

	if (!lockctl_direct_plain(rel, REQUEST_MAX_NATTS))
		return;

	/* exactly the known columns, of the known types */
	if (!lockctl_direct_columns(rel, request_columns, RK_NCOLS, s->attnum))
		return;

	indexes = RelationGetIndexList(rel);
	if (list_length(indexes) > REQUEST_MAX_INDEXES)
		return;
	foreach(lc, indexes)
	{
		Relation	idx = index_open(lfirst_oid(lc), RowExclusiveLock);
		Form_pg_index index = idx->rd_index;
		MemoryContext old = MemoryContextSwitchTo(s->cxt);
		IndexInfo  *ii = BuildIndexInfo(idx);
		bool		is_pk;
		bool		plain;

		MemoryContextSwitchTo(old);
		is_pk = index->indisprimary && index->indnatts == 2 &&
			((index->indkey.values[0] == s->attnum[RK_SCOPE] + 1 &&
			  index->indkey.values[1] == s->attnum[RK_KEY] + 1) ||
			 (index->indkey.values[0] == s->attnum[RK_KEY] + 1 &&
			  index->indkey.values[1] == s->attnum[RK_SCOPE] + 1));
		plain = lockctl_direct_index_plain(idx->rd_indextuple, false) &&
			ii->ii_ExclusionOps == NULL && index->indimmediate &&
			(!index->indisunique || is_pk);
		index_close(idx, NoLock);
		if (!plain)
			return;
		if (is_pk)
		{
			/* the primary key goes first */
			s->indexoid[s->nindexes] = s->indexoid[0];
			s->indexinfo[s->nindexes] = s->indexinfo[0];
			s->indexoid[0] = lfirst_oid(lc);
			s->indexinfo[0] = ii;
			pk_seen = true;
		}
		else
		{
			s->indexoid[s->nindexes] = lfirst_oid(lc);
			s->indexinfo[s->nindexes] = ii;
		}
		s->nindexes++;
	}
	list_free(indexes);
	s->direct = pk_seen;
}

/* The shape of rel, lockctl.request_keys, opened by the caller. */
static const RequestShape *
request_shape_of(Relation rel)
{
	if (!request_shape.valid || request_shape.relid != RelationGetRelid(rel))
		request_shape_build(rel);
	return &request_shape;
}

/*
 * Enter heap tuple tid, whose columns are values/isnull, into the indexes
 * of the shape, as CatalogIndexInsert does (plain columns only): the
 * primary key first, with pk_check.  Returns false, having entered it into
 * no other index, when pk_check is UNIQUE_CHECK_PARTIAL and the primary
 * key holds a row of the same (scope, key), live or written by a
 * transaction in progress (this one included).
 */
static bool
request_index_insert(Relation rel, const RequestShape *s, ItemPointer tid,
					 Datum *values, bool *isnull, IndexUniqueCheck pk_check)
{
	int			i;

	for (i = 0; i < s->nindexes; i++)
	{
		IndexInfo  *ii = s->indexinfo[i];
		Relation	idx = index_open(s->indexoid[i], RowExclusiveLock);
		Datum		ivalues[INDEX_MAX_KEYS];
		bool		inulls[INDEX_MAX_KEYS];
		bool		unique;
		int			k;

		for (k = 0; k < ii->ii_NumIndexAttrs; k++)
		{
			ivalues[k] = values[ii->ii_IndexAttrNumbers[k] - 1];
			inulls[k] = isnull[ii->ii_IndexAttrNumbers[k] - 1];
		}
		unique = index_insert(idx, ivalues, inulls, tid, rel,
							  i == 0 ? pk_check : UNIQUE_CHECK_NO, false, ii);
		/* the lock stays to the end of the transaction, as the executor's */
		index_close(idx, NoLock);
		if (i == 0 && !unique)
			return false;
	}
	return true;
}

/*
 * Whether text datum t (of a row, so perhaps short-headed; never toasted
 * in a row of the direct paths' keys, but detoasted if it is) holds
 * exactly the len bytes at s.
 */
static bool
request_text_is(Datum t, const char *s, Size len)
{
	struct varlena *v = pg_detoast_datum_packed((struct varlena *) DatumGetPointer(t));

	return VARSIZE_ANY_EXHDR(v) == len && memcmp(VARDATA_ANY(v), s, len) == 0;
}

/*
 * complete_request of the key this transaction claimed last in this
 * backend: store result in its row with heap_update and, when the update
 * is not HOT, new entries in the table's indexes (opened only then), as
 * catalog updates do.  The row is the one the memo names if it is visible
 * to this transaction as its own (SnapshotSelf: written by it, by no
 * subtransaction since rolled back, and not updated since) and is (scope,
 * key) claimed by this transaction, and was written by an earlier command
 * than this one: heap_update refuses a row its own command wrote (claimed
 * and completed in one statement), and the SQL path's command, after
 * SPI's CommandCounterIncrement, sees it.  Returns false, having changed
 * nothing, when the SQL path must do it.
 */
static bool
request_complete_fast(Oid scope, Datum key, Datum result)
{
	Relation	rel;
	const RequestShape *s;
	HeapTupleData oldtup;
	ItemPointerData otid;
	HeapTuple	newtup;
	Buffer		buf;
	TupleDesc	desc;
	Datum		values[REQUEST_MAX_NATTS];
	bool		nulls[REQUEST_MAX_NATTS];
	TU_UpdateIndexes update_indexes;
	bool		ok;

	key = PointerGetDatum(pg_detoast_datum_packed((struct varlena *) DatumGetPointer(key)));
	if (!FullTransactionIdIsValid(request_memo.fxid) ||
		!FullTransactionIdEquals(request_memo.fxid, GetTopFullTransactionIdIfAny()) ||
		request_memo.scope != scope ||
		!request_text_is(key, request_memo.key, strlen(request_memo.key)) ||
		request_memo.cid >= GetCurrentCommandId(false) ||
		XactReadOnly || RecoveryInProgress() || IsolationIsSerializable())
		return false;

	rel = lockctl_direct_open(request_memo.relid, RowExclusiveLock);
	if (rel == NULL)
		return false;
	s = request_shape_of(rel);
	if (rel->rd_rel->relfilenode != request_memo.relfilenode || !s->direct)
	{
		table_close(rel, NoLock);
		return false;
	}
	desc = RelationGetDescr(rel);

	/* the row: this transaction's own, live, (scope, key) claimed by it */
	oldtup.t_self = request_memo.tid;
	if (!heap_fetch(rel, SnapshotSelf, &oldtup, &buf, false))
	{
		table_close(rel, NoLock);
		return false;
	}
	/* its columns, taken apart once: to check, then to form the new row */
	heap_deform_tuple(&oldtup, desc, values, nulls);
	ok = !nulls[s->attnum[RK_SCOPE]] && !nulls[s->attnum[RK_KEY]] &&
		!nulls[s->attnum[RK_CLAIM_XACT]] &&
		FullTransactionIdEquals(DatumGetFullTransactionId(values[s->attnum[RK_CLAIM_XACT]]),
								request_memo.fxid) &&
		request_text_is(values[s->attnum[RK_KEY]], VARDATA_ANY(DatumGetPointer(key)),
						VARSIZE_ANY_EXHDR(DatumGetPointer(key)));
	if (ok)
	{
		const char *scope_name = request_scope_cstring(scope);

		ok = request_text_is(values[s->attnum[RK_SCOPE]], scope_name,
							 strlen(scope_name));
	}
	if (!ok)
	{
		ReleaseBuffer(buf);
		table_close(rel, NoLock);
		return false;
	}

	/* the new row, formed while the old one's buffer is still pinned */
	values[s->attnum[RK_RESULT]] = PointerGetDatum(pg_detoast_datum_packed((struct varlena *) DatumGetPointer(result)));
	nulls[s->attnum[RK_RESULT]] = false;
	values[s->attnum[RK_COMPLETED]] = TimestampTzGetDatum(GetCurrentTimestamp());
	nulls[s->attnum[RK_COMPLETED]] = false;
	newtup = heap_form_tuple(desc, values, nulls);
	ReleaseBuffer(buf);

	otid = oldtup.t_self;
	simple_heap_update(rel, &otid, newtup, &update_indexes);
	/* only btree indexes: an update needs entries in all or in none */
	if (update_indexes == TU_All)
	{
		heap_deform_tuple(newtup, desc, values, nulls);
		(void) request_index_insert(rel, s, &newtup->t_self, values,
									nulls, UNIQUE_CHECK_YES);
	}
	ItemPointerCopy(&newtup->t_self, &request_memo.tid);
	request_memo.cid = GetCurrentCommandId(false);
	/* the lock stays to the end of the transaction, as the executor's */
	table_close(rel, NoLock);
	heap_freetuple(newtup);
	return true;
}

/* What the direct claim did (request_claim_fast). */
typedef enum RequestFast
{
	REQUEST_FAST_SQL,			/* nothing: the SQL path must do it */
	REQUEST_FAST_CLAIMED,		/* the key had no row: claimed */
	REQUEST_FAST_FOUND			/* the key's row, in use: read */
} RequestFast;

/*
 * The row of a key in use, read directly, for a duplicate: the usual case
 * of an existing key, a request done and committed by another transaction
 * (or claimed earlier by this one).  Under READ COMMITTED, with the key's
 * lock held, the SQL path would find that row with a new snapshot, lock it
 * (ON CONFLICT DO UPDATE, its WHERE false) and read it with another
 * statement; here one look into the primary key with a dirty snapshot
 * reads it.  The key's lock is what keeps another claim of the key off
 * until this transaction ends, not the row's.  Found, and the row is
 * committed (its writer ended before this transaction got the key's lock,
 * so a new snapshot would see it) or this transaction's own: *row gets its
 * fingerprint, result and claim_xact, as REQUEST_PLAN_FIND returns them.
 * Anything else goes to the SQL path: a row past its ttl (to take over),
 * one written or being deleted by a transaction in progress (only a writer
 * that bypasses claim_request, or the purge of a row that just expired),
 * more than one row.
 */
static RequestFast
request_find_fast(Relation rel, const RequestShape *s, Datum key,
				  Datum scope_text, TimestampTz now, Datum *row,
				  bool *rownulls)
{
	TupleDesc	desc = RelationGetDescr(rel);
	Relation	pk = index_open(s->indexoid[0], RowExclusiveLock);
	SnapshotData dirty;
	ScanKeyData skey[2];
	SysScanDesc scan;
	HeapTuple	tup;
	RequestFast found = REQUEST_FAST_SQL;
	int			k;

	/* keyed by the table's column numbers, as systable_beginscan wants */
	for (k = 0; k < 2; k++)
	{
		AttrNumber	attnum = pk->rd_index->indkey.values[k];

		ScanKeyEntryInitialize(&skey[k], 0, attnum, BTEqualStrategyNumber,
							   InvalidOid, pk->rd_indcollation[k], F_TEXTEQ,
							   attnum == s->attnum[RK_KEY] + 1 ? key : scope_text);
	}
	InitDirtySnapshot(dirty);
	scan = systable_beginscan(rel, s->indexoid[0], true, &dirty, 2, skey);
	tup = systable_getnext(scan);
	if (HeapTupleIsValid(tup) &&
		!TransactionIdIsValid(dirty.xmin) && !TransactionIdIsValid(dirty.xmax))
	{
		bool		isnull;
		Datum		value;

		value = heap_getattr(tup, s->attnum[RK_EXPIRES] + 1, desc, &isnull);
		if (!isnull && DatumGetTimestampTz(value) > now)
		{
			static const RequestColumn cols[3] = {RK_FINGERPRINT, RK_RESULT,
			RK_CLAIM_XACT};

			for (k = 0; k < 3; k++)
			{
				Form_pg_attribute att = TupleDescAttr(desc, s->attnum[cols[k]]);

				row[k] = heap_getattr(tup, s->attnum[cols[k]] + 1, desc,
									  &rownulls[k]);
				/* out of the buffer, and out of TOAST */
				if (!rownulls[k])
					row[k] = att->attlen == -1 ?
						PointerGetDatum(pg_detoast_datum_copy((struct varlena *) DatumGetPointer(row[k]))) :
						datumCopy(row[k], att->attbyval, att->attlen);
			}
			found = REQUEST_FAST_FOUND;
		}
		/* a second row of the key: the SQL path sorts it out */
		if (found == REQUEST_FAST_FOUND && HeapTupleIsValid(systable_getnext(scan)))
			found = REQUEST_FAST_SQL;
	}
	systable_endscan(scan);
	index_close(pk, NoLock);
	return found;
}

/*
 * The claim of a key that has no row: the common case, a new request.
 * Under READ COMMITTED the claim's INSERT ... ON CONFLICT through SPI costs
 * more than all the rest of the call (executor start-up, the speculative
 * insertion and its second pass over the primary key); with the key's lock
 * held it is not needed when no row of (scope, key) exists.  So: insert the
 * row with heap_insert, then its primary-key entry with the unique check of
 * UNIQUE_CHECK_PARTIAL, which does not raise an error but says whether a
 * row of the same key exists, live or written by a transaction in progress
 * (this one included): the one descent into the primary key both looks for
 * the key and enters it.  No such row: the entries of the other indexes
 * follow, and the claim is made.  One found (a duplicate, an expired key to
 * take over, the same key claimed again in this transaction): the new row
 * is deleted again (after CommandCounterIncrement: a command cannot delete
 * what it inserted), its primary-key entry left to point at a dead row as
 * any rolled-back insert leaves one, and request_find_fast reads the row
 * found, or the SQL path decides.  The SQL path is also taken for what the
 * direct insert does not handle:
 * REPEATABLE READ and SERIALIZABLE (their snapshot rules, 40001 and
 * predicate locks are the executor's), a read-only transaction (its error
 * is the SQL's), and a table that is not as installed (RequestShape).
 * Only a writer that bypasses claim_request (and so the key's lock) can
 * race the direct insert; the primary key's check sees its row as it sees
 * any other.  Returns REQUEST_FAST_SQL, having changed nothing visible,
 * when the SQL path must do it; REQUEST_FAST_CLAIMED, with *relid,
 * *relfilenode and *tid set to the new row; REQUEST_FAST_FOUND, with *row
 * and *rownulls set as request_find_fast sets them.
 *
 * Why the row is written here and not only at complete_request (one
 * insert instead of an insert and an update): a claim that does not
 * insert must still look for the key, and that look costs about what the
 * update saves, since here the insert's unique check is the look.  See
 * docs/requests.md, "Cost", for the figures.
 */
static Oid	request_keys_relid = InvalidOid;
static Oid	request_keys_nsp = InvalidOid;

static Relation
request_keys_open(void)
{
	return lockctl_direct_open_named("request_keys", &request_keys_relid,
									 &request_keys_nsp, RowExclusiveLock);
}

static RequestFast
request_claim_fast(Datum scope_text, Datum key, Datum fingerprint,
				   bool fingerprint_null, TimestampTz now, Datum expires,
				   Oid *relid, Oid *relfilenode, ItemPointer tid,
				   Datum *row, bool *rownulls)
{
	Relation	rel;
	const RequestShape *s;
	TupleDesc	desc;
	Datum		values[REQUEST_MAX_NATTS] = {0};
	bool		nulls[REQUEST_MAX_NATTS];
	HeapTuple	tup;

	if (XactReadOnly || RecoveryInProgress() || IsolationUsesXactSnapshot())
		return REQUEST_FAST_SQL;
	rel = request_keys_open();
	if (rel == NULL)
		return REQUEST_FAST_SQL;
	s = request_shape_of(rel);
	if (!s->direct)
	{
		table_close(rel, NoLock);
		return REQUEST_FAST_SQL;
	}
	desc = RelationGetDescr(rel);

	memset(nulls, true, desc->natts * sizeof(bool));
	values[s->attnum[RK_SCOPE]] = scope_text;
	values[s->attnum[RK_KEY]] = PointerGetDatum(pg_detoast_datum_packed((struct varlena *) DatumGetPointer(key)));
	if (!fingerprint_null)
		values[s->attnum[RK_FINGERPRINT]] = PointerGetDatum(pg_detoast_datum_packed((struct varlena *) DatumGetPointer(fingerprint)));
	values[s->attnum[RK_CLAIMED]] = TimestampTzGetDatum(now);
	values[s->attnum[RK_EXPIRES]] = expires;
	values[s->attnum[RK_CLAIM_XACT]] = FullTransactionIdGetDatum(GetTopFullTransactionId());
	nulls[s->attnum[RK_SCOPE]] = nulls[s->attnum[RK_KEY]] = false;
	nulls[s->attnum[RK_CLAIMED]] = nulls[s->attnum[RK_EXPIRES]] = false;
	nulls[s->attnum[RK_CLAIM_XACT]] = false;
	nulls[s->attnum[RK_FINGERPRINT]] = fingerprint_null;
	tup = heap_form_tuple(desc, values, nulls);

	simple_heap_insert(rel, tup);
	if (!request_index_insert(rel, s, &tup->t_self, values, nulls,
							  UNIQUE_CHECK_PARTIAL))
	{
		RequestFast found;

		/* the key has a row: take ours back, then read that row */
		CommandCounterIncrement();
		simple_heap_delete(rel, &tup->t_self);
		found = request_find_fast(rel, s, key, scope_text, now, row, rownulls);
		table_close(rel, NoLock);
		heap_freetuple(tup);
		return found;
	}
	*relid = RelationGetRelid(rel);
	*relfilenode = rel->rd_rel->relfilenode;
	ItemPointerCopy(&tup->t_self, tid);
	/* the lock stays to the end of the transaction, as the executor's */
	table_close(rel, NoLock);
	heap_freetuple(tup);
	return REQUEST_FAST_CLAIMED;
}

/* an interval of the given days and microseconds */
static Datum
request_interval(int32 days, int64 us)
{
	Interval   *iv = palloc0(sizeof(Interval));

	iv->day = days;
	iv->time = us;
	return IntervalPGetDatum(iv);
}

/*
 * Whether ttl is within claim_request's range, 1 millisecond to 3650 days.
 * The answer depends on the interval's value alone (intervals compare as
 * spans, not on a calendar), and nearly every call passes the same one
 * (the default): the last interval that passed is kept, compared field by
 * field, and only another one is compared with the bounds.  What depends
 * on the call (ttl added to the transaction's start) is checked by the
 * caller every time.
 */
static bool
request_ttl_in_range(Datum ttl)
{
	static Interval passed;
	static bool passed_valid = false;
	const Interval *iv = DatumGetIntervalP(ttl);

	if (passed_valid && iv->time == passed.time && iv->day == passed.day &&
		iv->month == passed.month)
		return true;
	if (DatumGetBool(DirectFunctionCall2(interval_lt, ttl, request_interval(0, 1000))) ||
		DatumGetBool(DirectFunctionCall2(interval_gt, ttl, request_interval(3650, 0))))
		return false;
	passed = *iv;
	passed_valid = true;
	return true;
}

/*
 * lockctl.claim_request(key text, ttl interval, fingerprint text,
 * wait interval, scope name) returns jsonb: NULL when this transaction
 * holds the claim (go ahead), else the result stored by the request that
 * did the work ('{}' if none).
 */
PG_FUNCTION_INFO_V1(lockctl_claim_request);
Datum
lockctl_claim_request(PG_FUNCTION_ARGS)
{
	TimestampTz now = GetCurrentTransactionStartTimestamp();
	Datum		ttl;
	Datum		expires = (Datum) 0;
	Datum		fingerprint = (Datum) 0;
	char	   *key;
	int64		wait_us = -1;
	Oid			scope;
	RequestScopeBuf scope_buf;
	Datum		scope_text;
	Datum		args[5];
	char		argnulls[5] = {' ', ' ', ' ', ' ', ' '};
	Datum		row[3];
	bool		rownulls[3];

	/* the ttl first, then the fingerprint, the key, wait and scope */
	if (PG_ARGISNULL(1))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("ttl of lockctl.claim_request must not be null")));
	ttl = PG_GETARG_DATUM(1);
	if (!request_ttl_in_range(ttl) ||
		(expires = DirectFunctionCall2(timestamptz_pl_interval,
									   TimestampTzGetDatum(now), ttl),
		 DatumGetTimestampTz(expires) <= now))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("ttl of lockctl.claim_request is out of range: \"%s\"",
						DatumGetCString(DirectFunctionCall1(interval_out, ttl))),
				 errdetail("It must be between 1 millisecond and 3650 days.")));
	if (!PG_ARGISNULL(2))
	{
		Size		len;

		fingerprint = PG_GETARG_DATUM(2);
		len = toast_raw_datum_size(fingerprint) - VARHDRSZ;
		if (len > LOCKCTL_NAME_MAXLEN)
			ereport(ERROR,
					(errcode(ERRCODE_NAME_TOO_LONG),
					 errmsg("fingerprint of lockctl.claim_request is too long"),
					 errdetail("It is %zu bytes long; the limit is %d bytes.",
							   len, LOCKCTL_NAME_MAXLEN),
					 errhint("Pass a hash of the request's parameters, not the parameters.")));
	}

	/* Check key, wait and scope, then wait for any transaction on the key. */
	key = lockctl_arg_name(fcinfo, 0, "key", false);
	if (!PG_ARGISNULL(3))
		wait_us = lockctl_arg_interval_us(fcinfo, 3, "wait", 0,
										  (int64) INT_MAX * 1000);
	scope = request_scope(fcinfo, 4);
	request_check_shmem();
	PreventCommandDuringRecovery("lockctl.claim_request()");
	request_lock(scope, key, wait_us);
	scope_text = request_scope_text_in(scope, &scope_buf);

	/* A key with no row at all: a new request (see request_claim_fast). */
	{
		Oid			relid;
		Oid			relfilenode;
		ItemPointerData tid;

		switch (request_claim_fast(scope_text, PG_GETARG_DATUM(0), fingerprint,
								   PG_ARGISNULL(2), now, expires, &relid,
								   &relfilenode, &tid, row, rownulls))
		{
			case REQUEST_FAST_CLAIMED:
				request_memo_set(scope, key, relid, relfilenode, &tid);
				request_count(REQUEST_CLAIMS);
				PG_RETURN_NULL();
			case REQUEST_FAST_FOUND:
				goto in_use;
			case REQUEST_FAST_SQL:
				break;
		}
	}

	/* A key past its ttl is free again, purged or not. */
	args[0] = scope_text;
	args[1] = PG_GETARG_DATUM(0);
	args[2] = fingerprint;
	if (PG_ARGISNULL(2))
		argnulls[2] = 'n';
	args[3] = TimestampTzGetDatum(now);
	args[4] = expires;
	if (request_run(fcinfo, REQUEST_PLAN_CLAIM, args, argnulls, 2, row, rownulls) > 0)
	{
		request_memo_set(scope, key, DatumGetObjectId(row[0]), InvalidOid,
						 (ItemPointer) DatumGetPointer(row[1]));
		request_count(REQUEST_CLAIMS);
		PG_RETURN_NULL();
	}

	/* in use: claimed earlier in this transaction, or done by another */
	if (request_run(fcinfo, REQUEST_PLAN_FIND, args, argnulls, 3, row, rownulls) == 0)
		elog(ERROR, "lockctl.claim_request: the row of request \"%s\" vanished", key);
in_use:
	if (!rownulls[2] &&
		FullTransactionIdEquals(DatumGetFullTransactionId(row[2]),
								GetTopFullTransactionId()))
		PG_RETURN_NULL();
	if (rownulls[0] != PG_ARGISNULL(2) ||
		(!rownulls[0] &&
		 !DatumGetBool(DirectFunctionCall2Coll(texteq, DEFAULT_COLLATION_OID,
												   row[0], fingerprint))))
	{
		request_count(REQUEST_CONFLICTS);
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("request \"%s\" was first made with other parameters", key),
				 errdetail("Its first use had fingerprint %s; this call has %s.",
						   rownulls[0] ? "NULL" : quote_literal_cstr(TextDatumGetCString(row[0])),
						   PG_ARGISNULL(2) ? "NULL" : quote_literal_cstr(TextDatumGetCString(fingerprint))),
				 errhint("A key names one request: use a new key for a different request.")));
	}
	request_count(REQUEST_REPEATS);
	if (rownulls[1])
		PG_RETURN_DATUM(DirectFunctionCall1(jsonb_in, CStringGetDatum("{}")));
	PG_RETURN_DATUM(row[1]);
}

/*
 * lockctl.complete_request(key text, result jsonb, scope name): store the
 * result that duplicates of the request get, in the transaction that
 * claimed it.
 */
PG_FUNCTION_INFO_V1(lockctl_complete_request);
Datum
lockctl_complete_request(PG_FUNCTION_ARGS)
{
	Oid			scope = request_scope(fcinfo, 2);
	Datum		args[3];

	if (PG_ARGISNULL(0))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("key of lockctl.complete_request must not be null")));
	if (PG_ARGISNULL(1))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("result of lockctl.complete_request must not be null"),
				 errhint("Pass '{}' for a request with nothing to replay.")));
	if (request_complete_fast(scope, PG_GETARG_DATUM(0), PG_GETARG_DATUM(1)))
		PG_RETURN_VOID();
	args[0] = request_scope_text(scope);
	args[1] = PG_GETARG_DATUM(0);
	args[2] = PG_GETARG_DATUM(1);
	if (request_run(fcinfo, REQUEST_PLAN_COMPLETE, args, NULL, 0, NULL, NULL) == 0)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("request \"%s\" was not claimed in this transaction",
						TextDatumGetCString(PG_GETARG_DATUM(0))),
				 errhint("Call lockctl.claim_request(key) first, in the same transaction, and complete the request only when it returned NULL.")));
	PG_RETURN_VOID();
}
