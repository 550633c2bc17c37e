/*-------------------------------------------------------------------------
 *
 * version_stats.c
 *	  The counters of version-checked updates: lockctl.max_versioned_tables,
 *	  their table in shared memory, the function behind the view
 *	  lockctl.versioned_tables, and lockctl.reset_versioning_stats().
 *
 * Locking protocol
 * ----------------
 * A hash table of at most lockctl.max_versioned_tables entries, keyed by
 * (database oid, oid of the table versioning was enabled on), holds the
 * counters of each versioned table.  Counters live in shared memory so that
 * a conflict counts even though its transaction aborts.
 *
 *	- One LWLock (tranche "lockctl_version") protects the hash table's
 *	  structure: lookups take it shared; adding or removing an entry, and
 *	  setting stats_reset, take it exclusive.
 *	- The counters themselves are atomics, bumped without the lock.
 *	- Every removal of an entry adds one to "removals" (an atomic),
 *	  under the exclusive lock.  A backend keeps the entries it lately used
 *	  (stats_local) while removals stays what it was when it found them.
 *	- A backend may keep a pointer to its table's entry for the rest of a
 *	  statement.  That is safe because entries are removed only by
 *	  disable_versioning()/enable_versioning() of that table, which hold
 *	  AccessExclusiveLock / ShareRowExclusiveLock on it and on its
 *	  partitions (so no trigger of that table is running), and by
 *	  reset_versioning_stats() for tables that no longer exist.
 *	- When the table is full, new tables go uncounted (the view shows
 *	  NULL counters for them); writes are never refused for it.
 *	- Temporary tables are never counted (NULL counters): any role may make
 *	  as many as it likes, and they must not fill a table that every
 *	  database shares.  The entry of a table that is dropped (DROP TABLE,
 *	  DROP SCHEMA ... CASCADE, DROP OWNED, DROP DATABASE) is removed when
 *	  the dropping transaction commits (an object access hook notes the
 *	  drop, a transaction callback removes it), so dropped tables do not
 *	  hold entries either.
 *
 * src/version_stats.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/genam.h"
#include "access/htup_details.h"
#include "access/relation.h"
#include "access/table.h"
#include "access/xact.h"
#include "catalog/indexing.h"
#include "catalog/objectaccess.h"
#include "catalog/pg_class.h"
#include "catalog/pg_database.h"
#include "catalog/pg_trigger.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "port/atomics.h"
#include "storage/lwlock.h"
#include "storage/shmem.h"
#include "utils/builtins.h"
#include "utils/fmgroids.h"
#include "utils/guc.h"
#include "utils/hsearch.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/rel.h"
#include "utils/syscache.h"
#include "utils/timestamp.h"

#include "version.h"

typedef struct VersionStatsKey
{
	Oid			dbid;
	Oid			relid;			/* the table versioning was enabled on */
} VersionStatsKey;

struct VersionStatsEntry
{
	VersionStatsKey key;
	pg_atomic_uint64 counters[VSTAT_COUNT];
	TimestampTz stats_reset;	/* under the lock, exclusive to write */
};

typedef struct VersionShared
{
	LWLock	   *lock;
	pg_atomic_uint64 removals;	/* entries removed, ever */
} VersionShared;

#define VERSION_TRANCHE		"lockctl_version"

static VersionShared *vshared = NULL;
static HTAB *vstats = NULL;

static int	lockctl_max_versioned_tables = 1024;

/*
 * The entries this backend found lately, so that a statement's counters
 * are found without the lock and the hash: valid while vshared->removals
 * is stats_local_removals.
 */
#define VSTATS_LOCAL	4

typedef struct VersionStatsLocal
{
	Oid			relid;
	VersionStatsEntry *e;
} VersionStatsLocal;

static VersionStatsLocal stats_local[VSTATS_LOCAL];
static int	stats_local_n = 0;
static int	stats_local_next = 0;	/* the slot a new entry takes */
static uint64 stats_local_removals = 0;

/*
 * Drops noted by the object access hook, removed from the table when the
 * top-level transaction commits: a table (relid, in this database) or a
 * whole database (dbid, relid invalid).  nestlevel: the subtransaction that
 * dropped it, so that a rolled-back subtransaction forgets its drops.
 */
typedef struct VersionDrop
{
	Oid			dbid;
	Oid			relid;
	int			nestlevel;
} VersionDrop;

static List *version_drops = NIL;	/* of VersionDrop, in TopMemoryContext */
static object_access_hook_type prev_object_access_hook = NULL;

static Size version_shmem_size(void);
static void version_shmem_startup(void);
static bool version_has_trigger(Oid relid);
static bool version_rel_is_temp(Oid relid);
static void version_object_access(ObjectAccessType access, Oid classId,
								  Oid objectId, int subId, void *arg);
static void version_xact_callback(XactEvent event, void *arg);
static void version_subxact_callback(SubXactEvent event,
									 SubTransactionId mySubid,
									 SubTransactionId parentSubid, void *arg);
static void version_forget_drops(void);

static const LockctlShmemPart version_shmem_part = {
	version_shmem_size, VERSION_TRANCHE, version_shmem_startup
};

/*
 * Define lockctl.max_versioned_tables and ask for the counters' table.
 */
void
VersionInit(void)
{
	DefineCustomIntVariable("lockctl.max_versioned_tables",
							gettext_noop("Maximum number of versioned tables whose counters are kept, across all databases."),
							gettext_noop("Each takes a small entry in shared memory; tables beyond the limit are still checked, but not counted."),
							&lockctl_max_versioned_tables,
							1024, 16, 1024 * 1024,
							PGC_POSTMASTER,
							0,
							NULL, NULL, NULL);
	lockctl_shmem_register(&version_shmem_part);

	prev_object_access_hook = object_access_hook;
	object_access_hook = version_object_access;
	RegisterXactCallback(version_xact_callback, NULL);
	RegisterSubXactCallback(version_subxact_callback, NULL);
	VersionStatementInit();
}

static Size
version_shmem_size(void)
{
	return add_size(MAXALIGN(sizeof(VersionShared)),
					hash_estimate_size(lockctl_max_versioned_tables,
									   sizeof(VersionStatsEntry)));
}

static void
version_shmem_startup(void)
{
	bool		found;
	HASHCTL		info;

	LWLockAcquire(AddinShmemInitLock, LW_EXCLUSIVE);

	vshared = ShmemInitStruct("lockctl version", sizeof(VersionShared), &found);
	if (!found)
	{
		vshared->lock = &(GetNamedLWLockTranche(VERSION_TRANCHE))->lock;
		pg_atomic_init_u64(&vshared->removals, 0);
	}

	memset(&info, 0, sizeof(info));
	info.keysize = sizeof(VersionStatsKey);
	info.entrysize = sizeof(VersionStatsEntry);
	vstats = ShmemInitHash("lockctl version stats",
						   lockctl_max_versioned_tables,
						   lockctl_max_versioned_tables,
						   &info, HASH_ELEM | HASH_BLOBS);

	LWLockRelease(AddinShmemInitLock);
}

/* ---------------------------------------------------------------------
 * Counters
 * ---------------------------------------------------------------------
 */

void
version_stats_bump(VersionStatsEntry *e, VersionCounter c)
{
	if (e != NULL)
		pg_atomic_fetch_add_u64(&e->counters[c], 1);
}

/* Add n to counter c of e (a statement's rows, counted at its end). */
void
version_stats_add(VersionStatsEntry *e, VersionCounter c, uint64 n)
{
	if (e != NULL)
		pg_atomic_fetch_add_u64(&e->counters[c], n);
}

/*
 * The counters of relid in this database; with create, make them when
 * missing, unless the table is full (then NULL).
 */
/*
 * Keep entry e of relid in stats_local, if nothing was removed since
 * removals was read (before e was looked up).
 */
static void
version_stats_remember(Oid relid, VersionStatsEntry *e, uint64 removals)
{
	if (e == NULL || removals != stats_local_removals)
		return;
	stats_local[stats_local_next].relid = relid;
	stats_local[stats_local_next].e = e;
	stats_local_next = (stats_local_next + 1) % VSTATS_LOCAL;
	if (stats_local_n < VSTATS_LOCAL)
		stats_local_n++;
}

VersionStatsEntry *
version_stats_entry(Oid relid, bool create)
{
	VersionStatsKey key;
	VersionStatsEntry *e;
	bool		found;
	uint64		removals;

	if (vstats == NULL)
		return NULL;

	/* lately found, and nothing removed since */
	removals = pg_atomic_read_u64(&vshared->removals);
	if (removals != stats_local_removals)
	{
		stats_local_n = 0;
		stats_local_next = 0;
		stats_local_removals = removals;
	}
	for (int i = 0; i < stats_local_n; i++)
	{
		if (stats_local[i].relid == relid)
			return stats_local[i].e;
	}

	memset(&key, 0, sizeof(key));
	key.dbid = MyDatabaseId;
	key.relid = relid;

	LWLockAcquire(vshared->lock, LW_SHARED);
	e = hash_search(vstats, &key, HASH_FIND, NULL);
	LWLockRelease(vshared->lock);
	if (e != NULL || !create)
	{
		version_stats_remember(relid, e, removals);
		return e;
	}

	LWLockAcquire(vshared->lock, LW_EXCLUSIVE);
	e = hash_search(vstats, &key, HASH_FIND, NULL);
	if (e == NULL &&
		hash_get_num_entries(vstats) < lockctl_max_versioned_tables)
	{
		e = hash_search(vstats, &key, HASH_ENTER_NULL, &found);
		if (e != NULL && !found)
		{
			for (int i = 0; i < VSTAT_COUNT; i++)
				pg_atomic_init_u64(&e->counters[i], 0);
			e->stats_reset = GetCurrentTimestamp();
		}
	}
	LWLockRelease(vshared->lock);
	version_stats_remember(relid, e, removals);
	return e;
}

/* Forget the counters of relid in this database. */
void
version_stats_remove(Oid relid)
{
	VersionStatsKey key;

	if (vstats == NULL)
		return;
	memset(&key, 0, sizeof(key));
	key.dbid = MyDatabaseId;
	key.relid = relid;
	LWLockAcquire(vshared->lock, LW_EXCLUSIVE);
	if (hash_search(vstats, &key, HASH_REMOVE, NULL) != NULL)
		pg_atomic_fetch_add_u64(&vshared->removals, 1);
	LWLockRelease(vshared->lock);
}

/* ---------------------------------------------------------------------
 * Dropped tables and databases give their entries back
 * ---------------------------------------------------------------------
 */

/*
 * Object access hook: note the drop of a table that has counters, or of a
 * database, for removal at commit.  A drop that rolls back keeps them.
 */
static void
version_object_access(ObjectAccessType access, Oid classId, Oid objectId,
					  int subId, void *arg)
{
	if (prev_object_access_hook)
		prev_object_access_hook(access, classId, objectId, subId, arg);

	if (access != OAT_DROP || subId != 0 || vstats == NULL)
		return;
	if (classId == RelationRelationId)
	{
		VersionStatsKey key;
		bool		counted;
		VersionDrop *d;
		MemoryContext old;

		memset(&key, 0, sizeof(key));
		key.dbid = MyDatabaseId;
		key.relid = objectId;
		LWLockAcquire(vshared->lock, LW_SHARED);
		counted = hash_search(vstats, &key, HASH_FIND, NULL) != NULL;
		LWLockRelease(vshared->lock);
		if (!counted)
			return;
		old = MemoryContextSwitchTo(TopMemoryContext);
		d = palloc(sizeof(VersionDrop));
		d->dbid = MyDatabaseId;
		d->relid = objectId;
		d->nestlevel = GetCurrentTransactionNestLevel();
		version_drops = lappend(version_drops, d);
		MemoryContextSwitchTo(old);
	}
	else if (classId == DatabaseRelationId)
	{
		VersionDrop *d;
		MemoryContext old;

		old = MemoryContextSwitchTo(TopMemoryContext);
		d = palloc(sizeof(VersionDrop));
		d->dbid = objectId;
		d->relid = InvalidOid;
		d->nestlevel = GetCurrentTransactionNestLevel();
		version_drops = lappend(version_drops, d);
		MemoryContextSwitchTo(old);
	}
}

/* Forget the noted drops (at the end of the top-level transaction). */
static void
version_forget_drops(void)
{
	list_free_deep(version_drops);
	version_drops = NIL;
}

/*
 * Transaction callback: at commit, remove the entries of what was dropped.
 * (A prepared transaction commits elsewhere: its drops are left to
 * reset_versioning_stats(), which forgets the entries of tables that are
 * gone.)
 */
static void
version_xact_callback(XactEvent event, void *arg)
{
	ListCell   *lc;

	if (version_drops == NIL)
		return;
	if (event == XACT_EVENT_COMMIT && vstats != NULL)
	{
		LWLockAcquire(vshared->lock, LW_EXCLUSIVE);
		foreach(lc, version_drops)
		{
			VersionDrop *d = (VersionDrop *) lfirst(lc);

			if (OidIsValid(d->relid))
			{
				VersionStatsKey key;

				memset(&key, 0, sizeof(key));
				key.dbid = d->dbid;
				key.relid = d->relid;
				if (hash_search(vstats, &key, HASH_REMOVE, NULL) != NULL)
					pg_atomic_fetch_add_u64(&vshared->removals, 1);
			}
			else
			{
				HASH_SEQ_STATUS seq;
				VersionStatsEntry *e;

				/* removing the entry just returned is allowed */
				hash_seq_init(&seq, vstats);
				while ((e = hash_seq_search(&seq)) != NULL)
					if (e->key.dbid == d->dbid)
					{
						hash_search(vstats, &e->key, HASH_REMOVE, NULL);
						pg_atomic_fetch_add_u64(&vshared->removals, 1);
					}
			}
		}
		LWLockRelease(vshared->lock);
	}
	if (event == XACT_EVENT_COMMIT || event == XACT_EVENT_ABORT ||
		event == XACT_EVENT_PREPARE)
		version_forget_drops();
}

/*
 * Subtransaction callback: a subtransaction that rolls back forgets its
 * drops; one that commits hands them to its parent.
 */
static void
version_subxact_callback(SubXactEvent event, SubTransactionId mySubid,
						 SubTransactionId parentSubid, void *arg)
{
	int			level = GetCurrentTransactionNestLevel();
	ListCell   *lc;

	if (version_drops == NIL)
		return;
	if (event == SUBXACT_EVENT_ABORT_SUB)
	{
		foreach(lc, version_drops)
		{
			VersionDrop *d = (VersionDrop *) lfirst(lc);

			if (d->nestlevel >= level)
			{
				version_drops = foreach_delete_current(version_drops, lc);
				pfree(d);
			}
		}
	}
	else if (event == SUBXACT_EVENT_COMMIT_SUB)
	{
		foreach(lc, version_drops)
		{
			VersionDrop *d = (VersionDrop *) lfirst(lc);

			if (d->nestlevel >= level)
				d->nestlevel = level - 1;
		}
	}
}

/* Is relid a temporary table?  (false if it is gone) */
static bool
version_rel_is_temp(Oid relid)
{
	HeapTuple	tup = SearchSysCache1(RELOID, ObjectIdGetDatum(relid));
	bool		temp = false;

	if (HeapTupleIsValid(tup))
	{
		temp = ((Form_pg_class) GETSTRUCT(tup))->relpersistence == RELPERSISTENCE_TEMP;
		ReleaseSysCache(tup);
	}
	return temp;
}

/*
 * Has relid a trigger of lockctl.version_trigger (its own or cloned)?
 * Reads pg_trigger; takes no lock on relid.
 */
static bool
version_has_trigger(Oid relid)
{
	Oid			fnoid = version_trigger_fn(false);
	Relation	tgrel;
	ScanKeyData skey;
	SysScanDesc scan;
	HeapTuple	tup;
	bool		found = false;

	ScanKeyInit(&skey, Anum_pg_trigger_tgrelid, BTEqualStrategyNumber,
				F_OIDEQ, ObjectIdGetDatum(relid));
	tgrel = table_open(TriggerRelationId, AccessShareLock);
	scan = systable_beginscan(tgrel, TriggerRelidNameIndexId, true, NULL,
							  1, &skey);
	while (!found && (tup = systable_getnext(scan)) != NULL)
		found = ((Form_pg_trigger) GETSTRUCT(tup))->tgfoid == fnoid;
	systable_endscan(scan);
	table_close(tgrel, AccessShareLock);
	return found;
}

/* ---------------------------------------------------------------------
 * The view and the reset
 * ---------------------------------------------------------------------
 */

/*
 * The column of each counter in the function's result: stats_reset is
 * column 8 since 1.0, and the counters 1.1 added come after it, so that
 * the function of 1.0's SQL (nine columns) is served by the same code.
 */
#define VSTAT_NATTS		11
static const int version_stats_column[VSTAT_COUNT] = {4, 5, 6, 7, 9, 10};

/*
 * lockctl_internal.versioned_tables(), behind the view
 * lockctl.versioned_tables: one row per table versioning is
 * enabled on in this database, with its configuration and counters.
 */
PG_FUNCTION_INFO_V1(lockctl_versioned_tables);
Datum
lockctl_versioned_tables(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	Oid			fnoid;
	Relation	tgrel;
	SysScanDesc scan;
	HeapTuple	tup;

	InitMaterializedSRF(fcinfo, 0);

	fnoid = version_trigger_fn(true);
	if (!OidIsValid(fnoid))
		return (Datum) 0;

	tgrel = table_open(TriggerRelationId, AccessShareLock);
	scan = systable_beginscan(tgrel, InvalidOid, false, NULL, 0, NULL);
	while ((tup = systable_getnext(scan)) != NULL)
	{
		Form_pg_trigger tg = (Form_pg_trigger) GETSTRUCT(tup);
		Datum		values[VSTAT_NATTS];
		bool		nulls[VSTAT_NATTS];
		Datum		argsd;
		bool		argsnull;
		char	   *col = NULL;
		char	   *mode = NULL;
		VersionStatsEntry *e;

		if (tg->tgfoid != fnoid || OidIsValid(tg->tgparentid))
			continue;

		memset(nulls, 0, sizeof(nulls));
		argsd = heap_getattr(tup, Anum_pg_trigger_tgargs,
							 RelationGetDescr(tgrel), &argsnull);
		if (!argsnull && tg->tgnargs >= 2)
		{
			bytea	   *args = DatumGetByteaPP(argsd);
			char	   *p = VARDATA_ANY(args);
			char	   *end = p + VARSIZE_ANY_EXHDR(args);

			col = pnstrdup(p, strnlen(p, end - p));
			p += strlen(col) + 1;
			if (p < end)
				mode = pnstrdup(p, strnlen(p, end - p));
		}

		values[0] = ObjectIdGetDatum(tg->tgrelid);
		if (col)
			values[1] = DirectFunctionCall1(namein, CStringGetDatum(col));
		else
			nulls[1] = true;
		if (mode)
			values[2] = CStringGetTextDatum(mode);
		else
			nulls[2] = true;
		values[3] = BoolGetDatum(tg->tgenabled != TRIGGER_DISABLED);

		LWLockAcquire(vshared->lock, LW_SHARED);
		{
			VersionStatsKey key;

			memset(&key, 0, sizeof(key));
			key.dbid = MyDatabaseId;
			key.relid = tg->tgrelid;
			e = hash_search(vstats, &key, HASH_FIND, NULL);
			if (e != NULL)
			{
				for (int i = 0; i < VSTAT_COUNT; i++)
					values[version_stats_column[i]] = Int64GetDatum((int64) pg_atomic_read_u64(&e->counters[i]));
				values[8] = TimestampTzGetDatum(e->stats_reset);
			}
		}
		LWLockRelease(vshared->lock);

		/*
		 * Never fired yet: nothing to count.  Untracked (the table is full,
		 * or a temporary table): unknown.
		 */
		if (e == NULL)
		{
			bool		unknown;

			LWLockAcquire(vshared->lock, LW_SHARED);
			unknown = hash_get_num_entries(vstats) >= lockctl_max_versioned_tables;
			LWLockRelease(vshared->lock);
			unknown |= version_rel_is_temp(tg->tgrelid);
			for (int i = 0; i < VSTAT_COUNT; i++)
			{
				values[version_stats_column[i]] = Int64GetDatum(0);
				nulls[version_stats_column[i]] = unknown;
			}
			nulls[8] = true;
		}

		/* 1.0's function has the first nine columns only */
		Assert(rsinfo->setDesc->natts <= VSTAT_NATTS);
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
	}
	systable_endscan(scan);
	table_close(tgrel, AccessShareLock);

	return (Datum) 0;
}

/*
 * lockctl.reset_versioning_stats(tbl regclass default null): zero the
 * counters of one table, or of every table of this database (and forget
 * those of tables that no longer exist).
 */
PG_FUNCTION_INFO_V1(lockctl_reset_versioning_stats);
Datum
lockctl_reset_versioning_stats(PG_FUNCTION_ARGS)
{
	HASH_SEQ_STATUS seq;
	VersionStatsEntry *e;
	List	   *gone = NIL;
	List	   *all = NIL;
	ListCell   *lc;
	TimestampTz now = GetCurrentTimestamp();
	bool		one = !PG_ARGISNULL(0);
	Oid			only = one ? PG_GETARG_OID(0) : InvalidOid;

	/*
	 * NULL means every table; any other oid must name a relation (0 or a
	 * dropped table's oid is 42P01, like version_open_owned) on which
	 * versioning is enabled (42704 otherwise).  Read from the catalog
	 * without locking the table: counters need no lock, and a caller
	 * granted this function needs no right on the table to queue one.
	 */
	if (one)
	{
		char	   *relname = get_rel_name(only);

		if (relname == NULL)
			ereport(ERROR,
					(errcode(ERRCODE_UNDEFINED_TABLE),
					 errmsg("relation with OID %u does not exist", only)));
		if (!version_has_trigger(only))
			ereport(ERROR,
					(errcode(ERRCODE_UNDEFINED_OBJECT),
					 errmsg("versioning is not enabled on table \"%s\"",
							relname)));
	}

	/* Which entries of this database belong to tables that are gone. */
	LWLockAcquire(vshared->lock, LW_SHARED);
	hash_seq_init(&seq, vstats);
	while ((e = hash_seq_search(&seq)) != NULL)
	{
		if (e->key.dbid == MyDatabaseId)
			all = lappend_oid(all, e->key.relid);
	}
	LWLockRelease(vshared->lock);
	foreach(lc, all)
	{
		if (!SearchSysCacheExists1(RELOID, ObjectIdGetDatum(lfirst_oid(lc))))
			gone = lappend_oid(gone, lfirst_oid(lc));
	}

	LWLockAcquire(vshared->lock, LW_EXCLUSIVE);
	hash_seq_init(&seq, vstats);
	while ((e = hash_seq_search(&seq)) != NULL)
	{
		if (e->key.dbid != MyDatabaseId)
			continue;
		if (one && e->key.relid != only)
			continue;
		if (!one && list_member_oid(gone, e->key.relid))
		{
			hash_search(vstats, &e->key, HASH_REMOVE, NULL);
			pg_atomic_fetch_add_u64(&vshared->removals, 1);
			continue;
		}
		for (int i = 0; i < VSTAT_COUNT; i++)
			pg_atomic_write_u64(&e->counters[i], 0);
		e->stats_reset = now;
	}
	LWLockRelease(vshared->lock);

	PG_RETURN_VOID();
}
