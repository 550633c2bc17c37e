/*-------------------------------------------------------------------------
 *
 * fence_table_stats.c
 *	  The counters of fenced tables, in shared memory, and the function
 *	  behind the view lockctl.fenced_tables.
 *
 * Shared memory and its locking protocol
 * --------------------------------------
 * A hash table of at most lockctl.max_fenced_tables entries, keyed by
 * (database oid, oid of the table fencing was enabled on), holds the
 * counters of each fenced table, so that a refusal counts although its
 * transaction aborts.
 *
 *	- One LWLock (tranche "lockctl_fence_tables") protects the hash table's
 *	  structure: lookups take it shared; adding or removing an entry and
 *	  setting stats_reset take it exclusive.
 *	- The counters are atomics, bumped without the lock.
 *	- A backend keeps a pointer to its table's entry until the table's
 *	  relcache entry is invalidated.  Entries are removed by
 *	  enable_fencing()/disable_fencing() of that table, which hold locks that
 *	  no running trigger of it can coexist with and invalidate the relcache
 *	  entry, and, when the table is full, for tables that no longer exist.
 *	- When it is full even so, new tables go uncounted (NULL counters in
 *	  the view); writes are checked all the same.
 *
 * src/fence_table_stats.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/genam.h"
#include "access/htup_details.h"
#include "access/table.h"
#include "catalog/pg_trigger.h"
#include "commands/trigger.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "port/atomics.h"
#include "storage/lwlock.h"
#include "storage/shmem.h"
#include "utils/builtins.h"
#include "utils/hsearch.h"
#include "utils/rel.h"
#include "utils/syscache.h"
#include "utils/timestamp.h"

#include "fence_table.h"
#include "lockctl.h"

/* ---------------------------------------------------------------------
 * Shared memory
 * ---------------------------------------------------------------------
 */

typedef struct FenceStatsKey
{
	Oid			dbid;
	Oid			relid;			/* the table fencing was enabled on */
} FenceStatsKey;

struct FenceStatsEntry
{
	FenceStatsKey key;
	pg_atomic_uint64 counters[FSTAT_COUNT];
	TimestampTz stats_reset;	/* under the lock, exclusive to write */
};

typedef struct FenceShared
{
	LWLock	   *lock;
} FenceShared;

#define FENCE_TRANCHE		"lockctl_fence_tables"

static FenceShared *fshared = NULL;
static HTAB *fstats = NULL;

/*
 * Shared memory for the counters: see the header.
 */
Size
FenceTableShmemSize(void)
{
	return add_size(MAXALIGN(sizeof(FenceShared)),
					hash_estimate_size(lockctl_max_fenced_tables,
									   sizeof(FenceStatsEntry)));
}

static const LockctlShmemPart fence_shmem_part = {
	FenceTableShmemSize, FENCE_TRANCHE, FenceTableShmemStartup
};

/*
 * Called by FenceTableInit: ask for the counters' table (shmem.c).
 */
void
FenceTableShmemRegister(void)
{
	lockctl_shmem_register(&fence_shmem_part);
}

void
FenceTableShmemStartup(void)
{
	bool		found;
	HASHCTL		info;

	LWLockAcquire(AddinShmemInitLock, LW_EXCLUSIVE);

	fshared = ShmemInitStruct("lockctl fenced tables", sizeof(FenceShared),
							  &found);
	if (!found)
		fshared->lock = &(GetNamedLWLockTranche(FENCE_TRANCHE))->lock;

	memset(&info, 0, sizeof(info));
	info.keysize = sizeof(FenceStatsKey);
	info.entrysize = sizeof(FenceStatsEntry);
	fstats = ShmemInitHash("lockctl fenced table stats",
						   lockctl_max_fenced_tables,
						   lockctl_max_fenced_tables,
						   &info, HASH_ELEM | HASH_BLOBS);

	LWLockRelease(AddinShmemInitLock);
}

/* ---------------------------------------------------------------------
 * Counters
 * ---------------------------------------------------------------------
 */
/* Count one event of c on the table of e (NULL: not counted). */
void
fence_stats_bump(FenceStatsEntry *e, FenceCounter c)
{
	if (e != NULL)
		pg_atomic_fetch_add_u64(&e->counters[c], 1);
}

/*
 * The counters of relid in this database; with create, make them when
 * missing.  A full table is first rid of the entries of this database's
 * tables that no longer exist; if it is still full, NULL.
 */
FenceStatsEntry *
fence_stats_entry(Oid relid, bool create)
{
	FenceStatsKey key;
	FenceStatsEntry *e;
	bool		found;

	if (fstats == NULL)
		return NULL;

	memset(&key, 0, sizeof(key));
	key.dbid = MyDatabaseId;
	key.relid = relid;

	LWLockAcquire(fshared->lock, LW_SHARED);
	e = hash_search(fstats, &key, HASH_FIND, NULL);
	LWLockRelease(fshared->lock);
	if (e != NULL || !create)
		return e;

	for (int attempt = 0; attempt < 2; attempt++)
	{
		LWLockAcquire(fshared->lock, LW_EXCLUSIVE);
		e = hash_search(fstats, &key, HASH_FIND, NULL);
		if (e == NULL &&
			hash_get_num_entries(fstats) < lockctl_max_fenced_tables)
		{
			e = hash_search(fstats, &key, HASH_ENTER_NULL, &found);
			if (e != NULL && !found)
			{
				for (int i = 0; i < FSTAT_COUNT; i++)
					pg_atomic_init_u64(&e->counters[i], 0);
				e->stats_reset = GetCurrentTimestamp();
			}
		}
		LWLockRelease(fshared->lock);
		if (e != NULL || attempt > 0)
			break;

		/*
		 * Full: forget the tables of this database that were dropped.  The
		 * catalog is read without the lock held.
		 */
		{
			HASH_SEQ_STATUS seq;
			FenceStatsEntry *s;
			List	   *gone = NIL;
			ListCell   *lc;

			LWLockAcquire(fshared->lock, LW_SHARED);
			hash_seq_init(&seq, fstats);
			while ((s = hash_seq_search(&seq)) != NULL)
				if (s->key.dbid == MyDatabaseId)
					gone = lappend_oid(gone, s->key.relid);
			LWLockRelease(fshared->lock);
			foreach(lc, gone)
			{
				if (SearchSysCacheExists1(RELOID,
										  ObjectIdGetDatum(lfirst_oid(lc))))
					continue;
				fence_stats_remove(lfirst_oid(lc));
			}
		}
	}
	return e;
}

/* Forget the counters of relid in this database. */
void
fence_stats_remove(Oid relid)
{
	FenceStatsKey key;

	if (fstats == NULL)
		return;
	memset(&key, 0, sizeof(key));
	key.dbid = MyDatabaseId;
	key.relid = relid;
	LWLockAcquire(fshared->lock, LW_EXCLUSIVE);
	hash_search(fstats, &key, HASH_REMOVE, NULL);
	LWLockRelease(fshared->lock);
}

/* ---------------------------------------------------------------------
 * The view
 * ---------------------------------------------------------------------
 */

/*
 * lockctl_internal.fenced_tables(): one row per table fencing is enabled on
 * in this database, with its configuration and counters.
 */
PG_FUNCTION_INFO_V1(lockctl_fenced_tables);
Datum
lockctl_fenced_tables(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	Oid			fnoid;
	Relation	tgrel;
	SysScanDesc scan;
	HeapTuple	tup;

	InitMaterializedSRF(fcinfo, 0);

	fnoid = fence_trigger_fn(true);
	if (!OidIsValid(fnoid))
		return (Datum) 0;

	tgrel = table_open(TriggerRelationId, AccessShareLock);
	scan = systable_beginscan(tgrel, InvalidOid, false, NULL, 0, NULL);
	while ((tup = systable_getnext(scan)) != NULL)
	{
		Form_pg_trigger tg = (Form_pg_trigger) GETSTRUCT(tup);
		Datum		values[10];
		bool		nulls[10];
		char	  **argv;
		int			nargs;
		FenceArgs	args;
		FenceStatsEntry *e;

		if (tg->tgfoid != fnoid || OidIsValid(tg->tgparentid))
			continue;

		memset(nulls, 0, sizeof(nulls));
		argv = fence_tuple_args(tup, RelationGetDescr(tgrel), &nargs);
		if (!fence_parse_args(nargs, argv, &args))
			memset(&args, 0, sizeof(args));

		values[0] = ObjectIdGetDatum(tg->tgrelid);
		if (args.resource)
			values[1] = CStringGetTextDatum(args.resource);
		else
			nulls[1] = true;
		if (args.expression)
			values[2] = CStringGetTextDatum(args.expression);
		else
			nulls[2] = true;
		if (args.token_column)
			values[3] = DirectFunctionCall1(namein,
											CStringGetDatum(args.token_column));
		else
			nulls[3] = true;
		values[4] = BoolGetDatum(tg->tgenabled != TRIGGER_DISABLED);

		LWLockAcquire(fshared->lock, LW_SHARED);
		{
			FenceStatsKey key;

			memset(&key, 0, sizeof(key));
			key.dbid = MyDatabaseId;
			key.relid = tg->tgrelid;
			e = hash_search(fstats, &key, HASH_FIND, NULL);
			if (e != NULL)
			{
				for (int i = 0; i < FSTAT_COUNT; i++)
					values[5 + i] = Int64GetDatum((int64) pg_atomic_read_u64(&e->counters[i]));
				values[9] = TimestampTzGetDatum(e->stats_reset);
			}
		}
		LWLockRelease(fshared->lock);

		/* Never written yet: nothing to count.  Untracked: unknown. */
		if (e == NULL)
		{
			bool		full;

			LWLockAcquire(fshared->lock, LW_SHARED);
			full = hash_get_num_entries(fstats) >= lockctl_max_fenced_tables;
			LWLockRelease(fshared->lock);
			for (int i = 0; i < FSTAT_COUNT; i++)
			{
				values[5 + i] = Int64GetDatum(0);
				nulls[5 + i] = full;
			}
			nulls[9] = true;
		}

		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values,
							 nulls);
	}
	systable_endscan(scan);
	table_close(tgrel, AccessShareLock);

	return (Datum) 0;
}
