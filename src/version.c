/*-------------------------------------------------------------------------
 *
 * version.c
 *	  Version-checked updates (optimistic concurrency) enforced by the
 *	  database: the C trigger, enable_versioning()/disable_versioning(),
 *	  update_versioned(), and per-table counters in shared memory.
 *
 * The trigger (lockctl.version_trigger, BEFORE INSERT OR UPDATE FOR EACH
 * ROW) takes two arguments: the name of the version column and the mode
 * ('strict' or 'orm').  Keeping the configuration in the trigger's own
 * arguments means pg_dump restores it with the trigger, partitions get it
 * when the trigger is cloned to them, and there is no second catalog that
 * could disagree with pg_trigger.
 *
 *	INSERT	a NULL version becomes 1; a version given (or a column default)
 *			is kept.
 *	UPDATE	the UPDATE must assign the version column (tg_updatedcols tells
 *			which columns it assigns), else it is a blind write and is
 *			refused.  The value assigned must be the row's current version
 *			(in mode 'orm' also current + 1); the row then stores
 *			current + 1.  Anything else is a conflict: SQLSTATE 40001.
 *
 * Because the check compares against the row version the trigger is fired
 * on, it is right under every isolation level: in READ COMMITTED an UPDATE
 * that waited for a concurrent writer is fired on the newest row version
 * (EvalPlanQual), so a stale version fails there too.
 *
 * update_versioned() builds one UPDATE per (table, set of columns), with
 * every identifier quoted, prepares it once per backend (the plan is
 * forgotten when the table's relcache entry is invalidated) and runs it
 * with the caller's privileges; the trigger does the check.
 *
 * Shared memory and its locking protocol
 * --------------------------------------
 * A hash table of at most lockctl.max_versioned_tables entries, keyed by
 * (database oid, oid of the table versioning was enabled on), holds the
 * counters of each versioned table.  Counters live in shared memory so that
 * a conflict counts even though its transaction aborts.
 *
 *	- One LWLock (tranche "lockctl_version") protects the hash table's
 *	  structure: lookups take it shared; adding or removing an entry, and
 *	  setting stats_reset, take it exclusive.
 *	- The counters themselves are atomics, bumped without the lock.
 *	- A backend may keep a pointer to its table's entry for the rest of a
 *	  statement.  That is safe because entries are removed only by
 *	  disable_versioning()/enable_versioning() of that table, which hold
 *	  AccessExclusiveLock / ShareRowExclusiveLock on it and on its
 *	  partitions (so no trigger of that table is running), and by
 *	  reset_versioning_stats() for tables that no longer exist.
 *	- When the table is full, new tables go uncounted (the view shows
 *	  NULL counters for them); writes are never refused for it.
 *
 * src/version.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/genam.h"
#include "access/htup_details.h"
#include "access/relation.h"
#include "access/stratnum.h"
#include "access/sysattr.h"
#include "access/table.h"
#include "catalog/catalog.h"
#include "catalog/pg_class.h"
#include "catalog/pg_inherits.h"
#include "catalog/pg_operator.h"
#include "catalog/pg_trigger.h"
#include "catalog/pg_type.h"
#include "commands/trigger.h"
#include "common/hashfn.h"
#include "executor/spi.h"
#include "funcapi.h"
#include "lib/stringinfo.h"
#include "miscadmin.h"
#include "nodes/makefuncs.h"
#include "parser/parse_func.h"
#include "port/atomics.h"
#include "storage/lmgr.h"
#include "storage/lwlock.h"
#include "storage/shmem.h"
#include "utils/acl.h"
#include "utils/builtins.h"
#include "utils/fmgroids.h"
#include "utils/hsearch.h"
#include "utils/inval.h"
#include "utils/jsonb.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/rel.h"
#include "utils/syscache.h"
#include "utils/timestamp.h"

#include "lockctl.h"
#include "version.h"

/* ---------------------------------------------------------------------
 * Shared memory
 * ---------------------------------------------------------------------
 */

typedef enum VersionCounter
{
	VSTAT_CHECKED,				/* UPDATEs whose version check passed */
	VSTAT_CONFLICTS,			/* UPDATEs refused with 40001 */
	VSTAT_BLIND,				/* UPDATEs refused as blind writes */
	VSTAT_INSERTS,				/* INSERTs seen by the trigger */
	VSTAT_COUNT
} VersionCounter;

typedef struct VersionStatsKey
{
	Oid			dbid;
	Oid			relid;			/* the table versioning was enabled on */
} VersionStatsKey;

typedef struct VersionStatsEntry
{
	VersionStatsKey key;
	pg_atomic_uint64 counters[VSTAT_COUNT];
	TimestampTz stats_reset;	/* under the lock, exclusive to write */
} VersionStatsEntry;

typedef struct VersionShared
{
	LWLock	   *lock;
} VersionShared;

#define VERSION_TRANCHE		"lockctl_version"

static VersionShared *vshared = NULL;
static HTAB *vstats = NULL;

/* ---------------------------------------------------------------------
 * Backend-local state
 * ---------------------------------------------------------------------
 */

/* What the trigger keeps in fn_extra for the rest of a statement. */
typedef struct VersionTrigState
{
	Oid			tgoid;
	Oid			relid;
	AttrNumber	attnum;
	Oid			typid;
	VersionMode mode;
	VersionStatsEntry *stats;	/* NULL: not counted (table full) */
} VersionTrigState;

/* update_versioned()'s prepared statements, per (table, columns). */
typedef struct UVCacheKey
{
	Oid			relid;
	uint32		colhash;
} UVCacheKey;

typedef struct UVCacheEntry
{
	UVCacheKey	key;
	bool		valid;
	char	   *cols;			/* column names, each NUL-terminated */
	int			colslen;
	SPIPlanPtr	plan;
	int			nkeycols;		/* primary key columns */
	Oid			pktypes[INDEX_MAX_KEYS];
	int32		pktypmods[INDEX_MAX_KEYS];
	char	   *pknames;		/* their names, each NUL-terminated */
	Oid			vtype;
	int			busy;			/* executions under way (nested calls) */
} UVCacheEntry;

#define UV_CACHE_MAX	1024

static HTAB *uv_cache = NULL;

/* Cloned trigger oid -> the table versioning was enabled on. */
typedef struct RootCacheEntry
{
	Oid			tgoid;
	Oid			rootrelid;
} RootCacheEntry;

static HTAB *root_cache = NULL;
static Oid	version_fn_oid = InvalidOid;
static bool callbacks_registered = false;

static void version_stats_bump(VersionStatsEntry *e, VersionCounter c);
static VersionStatsEntry *version_stats_entry(Oid relid, bool create);
static void version_stats_remove(Oid relid);
static Oid	version_trigger_fn(bool missing_ok);
static void version_register_callbacks(void);
static Trigger *version_find_trigger(Relation rel, Oid fnoid);
static VersionMode version_parse_mode(const char *mode);
static const char *version_mode_name(VersionMode mode);
static AttrNumber version_check_column(Relation rel, const char *colname,
									   Oid *typid, bool enabling);
static Oid	version_root_relid(Trigger *trigger, Oid relid);
static int64 version_from_datum(Datum d, Oid typid);
static Datum version_to_datum(int64 v, Oid typid);
static int64 version_type_max(Oid typid);
static int64 version_type_min(Oid typid);
static char *version_row_key(Relation rel, HeapTuple tuple);
static char *version_show(bool isnull, int64 v);
static VersionTrigState *version_trig_setup(FunctionCallInfo fcinfo,
											TriggerData *td);

/* ---------------------------------------------------------------------
 * Module hooks, called from lockctl.c
 * ---------------------------------------------------------------------
 */

void
VersionInit(void)
{
}

Size
VersionShmemSize(void)
{
	return add_size(MAXALIGN(sizeof(VersionShared)),
					hash_estimate_size(lockctl_max_versioned_tables,
									   sizeof(VersionStatsEntry)));
}

void
VersionShmemRequest(void)
{
	RequestNamedLWLockTranche(VERSION_TRANCHE, 1);
}

void
VersionShmemStartup(void)
{
	bool		found;
	HASHCTL		info;

	LWLockAcquire(AddinShmemInitLock, LW_EXCLUSIVE);

	vshared = ShmemInitStruct("lockctl version", sizeof(VersionShared), &found);
	if (!found)
		vshared->lock = &(GetNamedLWLockTranche(VERSION_TRANCHE))->lock;

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

static void
version_stats_bump(VersionStatsEntry *e, VersionCounter c)
{
	if (e != NULL)
		pg_atomic_fetch_add_u64(&e->counters[c], 1);
}

/*
 * The counters of relid in this database; with create, make them when
 * missing, unless the table is full (then NULL).
 */
static VersionStatsEntry *
version_stats_entry(Oid relid, bool create)
{
	VersionStatsKey key;
	VersionStatsEntry *e;
	bool		found;

	if (vstats == NULL)
		return NULL;

	memset(&key, 0, sizeof(key));
	key.dbid = MyDatabaseId;
	key.relid = relid;

	LWLockAcquire(vshared->lock, LW_SHARED);
	e = hash_search(vstats, &key, HASH_FIND, NULL);
	LWLockRelease(vshared->lock);
	if (e != NULL || !create)
		return e;

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
	return e;
}

/* Forget the counters of relid in this database. */
static void
version_stats_remove(Oid relid)
{
	VersionStatsKey key;

	if (vstats == NULL)
		return;
	memset(&key, 0, sizeof(key));
	key.dbid = MyDatabaseId;
	key.relid = relid;
	LWLockAcquire(vshared->lock, LW_EXCLUSIVE);
	hash_search(vstats, &key, HASH_REMOVE, NULL);
	LWLockRelease(vshared->lock);
}

/* ---------------------------------------------------------------------
 * Helpers
 * ---------------------------------------------------------------------
 */

static void
version_invalidate_fn(Datum arg, int cacheid, uint32 hashvalue)
{
	version_fn_oid = InvalidOid;
}

static void
version_invalidate_rel(Datum arg, Oid relid)
{
	HASH_SEQ_STATUS seq;
	UVCacheEntry *e;

	/* Trigger oids can be reused after a drop: forget them all. */
	if (root_cache != NULL && hash_get_num_entries(root_cache) > 0)
	{
		RootCacheEntry *r;

		hash_seq_init(&seq, root_cache);
		while ((r = hash_seq_search(&seq)) != NULL)
			hash_search(root_cache, &r->tgoid, HASH_REMOVE, NULL);
	}

	if (uv_cache == NULL)
		return;
	hash_seq_init(&seq, uv_cache);
	while ((e = hash_seq_search(&seq)) != NULL)
	{
		if (!OidIsValid(relid) || e->key.relid == relid)
			e->valid = false;
	}
}

static void
version_register_callbacks(void)
{
	if (callbacks_registered)
		return;
	CacheRegisterSyscacheCallback(PROCOID, version_invalidate_fn, (Datum) 0);
	CacheRegisterRelcacheCallback(version_invalidate_rel, (Datum) 0);
	callbacks_registered = true;
}

/*
 * The oid of lockctl.version_trigger(), cached until pg_proc changes.
 */
static Oid
version_trigger_fn(bool missing_ok)
{
	version_register_callbacks();
	if (!OidIsValid(version_fn_oid))
		version_fn_oid = LookupFuncName(list_make2(makeString("lockctl"),
												   makeString(VERSION_TRIGGER_FUNC)),
										0, NULL, missing_ok);
	return version_fn_oid;
}

/* The lockctl version trigger of rel, or NULL. */
static Trigger *
version_find_trigger(Relation rel, Oid fnoid)
{
	TriggerDesc *trigdesc = rel->trigdesc;

	if (trigdesc == NULL || !OidIsValid(fnoid))
		return NULL;
	for (int i = 0; i < trigdesc->numtriggers; i++)
	{
		if (trigdesc->triggers[i].tgfoid == fnoid)
			return &trigdesc->triggers[i];
	}
	return NULL;
}

static VersionMode
version_parse_mode(const char *mode)
{
	if (pg_strcasecmp(mode, "strict") == 0)
		return VERSION_MODE_STRICT;
	if (pg_strcasecmp(mode, "orm") == 0)
		return VERSION_MODE_ORM;
	ereport(ERROR,
			(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
			 errmsg("invalid versioning mode \"%s\"", mode),
			 errhint("The mode is 'strict' (UPDATE sets the version it read) or 'orm' (it may also set the version read plus one).")));
	return VERSION_MODE_STRICT;	/* keep compiler quiet */
}

static const char *
version_mode_name(VersionMode mode)
{
	return mode == VERSION_MODE_ORM ? "orm" : "strict";
}

/*
 * Check that colname can be rel's version column: an ordinary column of
 * type smallint, integer or bigint.  Returns its number and type.
 */
static AttrNumber
version_check_column(Relation rel, const char *colname, Oid *typid,
					 bool enabling)
{
	HeapTuple	atttup;
	Form_pg_attribute att;
	AttrNumber	attnum;

	atttup = SearchSysCacheAttName(RelationGetRelid(rel), colname);
	if (!HeapTupleIsValid(atttup) && enabling)
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_COLUMN),
				 errmsg("column \"%s\" of relation \"%s\" does not exist",
						colname, RelationGetRelationName(rel)),
				 errhint("The version column must exist before versioning is enabled, e.g. ALTER TABLE ... ADD COLUMN %s bigint NOT NULL DEFAULT 1.",
						 quote_identifier(colname))));
	if (!HeapTupleIsValid(atttup))
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_COLUMN),
				 errmsg("version column \"%s\" of relation \"%s\" does not exist",
						colname, RelationGetRelationName(rel)),
				 errdetail("The column was renamed or dropped after versioning was enabled on the table."),
				 errhint("Call lockctl.disable_versioning() and lockctl.enable_versioning() again with the column's name.")));
	att = (Form_pg_attribute) GETSTRUCT(atttup);
	attnum = att->attnum;
	*typid = att->atttypid;

	if (attnum <= 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_COLUMN_DEFINITION),
				 errmsg("system column \"%s\" cannot be a version column",
						colname)));
	if (att->attgenerated != '\0')
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_COLUMN_DEFINITION),
				 errmsg("generated column \"%s\" of relation \"%s\" cannot be a version column",
						colname, RelationGetRelationName(rel)),
				 errdetail("An UPDATE cannot assign a generated column.")));
	if (att->attidentity != '\0')
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_COLUMN_DEFINITION),
				 errmsg("identity column \"%s\" of relation \"%s\" cannot be a version column",
						colname, RelationGetRelationName(rel)),
				 errdetail("An identity column numbers rows; a version column counts the updates of one row.")));
	if (*typid != INT2OID && *typid != INT4OID && *typid != INT8OID)
		ereport(ERROR,
				(errcode(ERRCODE_DATATYPE_MISMATCH),
				 errmsg("version column \"%s\" of relation \"%s\" has type %s",
						colname, RelationGetRelationName(rel),
						format_type_be(*typid)),
				 errdetail("A version column must be of type smallint, integer or bigint.")));
	ReleaseSysCache(atttup);
	return attnum;
}

/*
 * The table versioning was enabled on: the relation itself, or for a
 * trigger cloned onto a partition, the partitioned table at the top.
 */
static Oid
version_root_relid(Trigger *trigger, Oid relid)
{
	Oid			tgoid = trigger->tgoid;
	Relation	tgrel;
	RootCacheEntry *r;
	bool		found;

	if (!trigger->tgisclone)
		return relid;

	version_register_callbacks();
	if (root_cache == NULL)
	{
		HASHCTL		info;

		memset(&info, 0, sizeof(info));
		info.keysize = sizeof(Oid);
		info.entrysize = sizeof(RootCacheEntry);
		root_cache = hash_create("lockctl version trigger roots", 64, &info,
								 HASH_ELEM | HASH_BLOBS);
	}
	r = hash_search(root_cache, &trigger->tgoid, HASH_FIND, NULL);
	if (r != NULL)
		return r->rootrelid;

	tgrel = table_open(TriggerRelationId, AccessShareLock);
	for (;;)
	{
		ScanKeyData skey;
		SysScanDesc scan;
		HeapTuple	tup;
		Form_pg_trigger tg;
		Oid			parent;

		ScanKeyInit(&skey, Anum_pg_trigger_oid, BTEqualStrategyNumber,
					F_OIDEQ, ObjectIdGetDatum(tgoid));
		scan = systable_beginscan(tgrel, TriggerOidIndexId, true, NULL, 1, &skey);
		tup = systable_getnext(scan);
		if (!HeapTupleIsValid(tup))
		{
			systable_endscan(scan);
			break;
		}
		tg = (Form_pg_trigger) GETSTRUCT(tup);
		relid = tg->tgrelid;
		parent = tg->tgparentid;
		systable_endscan(scan);
		if (!OidIsValid(parent))
			break;
		tgoid = parent;
	}
	table_close(tgrel, AccessShareLock);

	r = hash_search(root_cache, &trigger->tgoid, HASH_ENTER, &found);
	r->rootrelid = relid;
	return relid;
}

static int64
version_from_datum(Datum d, Oid typid)
{
	switch (typid)
	{
		case INT2OID:
			return DatumGetInt16(d);
		case INT4OID:
			return DatumGetInt32(d);
		default:
			return DatumGetInt64(d);
	}
}

static Datum
version_to_datum(int64 v, Oid typid)
{
	switch (typid)
	{
		case INT2OID:
			return Int16GetDatum((int16) v);
		case INT4OID:
			return Int32GetDatum((int32) v);
		default:
			return Int64GetDatum(v);
	}
}

static int64
version_type_max(Oid typid)
{
	switch (typid)
	{
		case INT2OID:
			return PG_INT16_MAX;
		case INT4OID:
			return PG_INT32_MAX;
		default:
			return PG_INT64_MAX;
	}
}

static int64
version_type_min(Oid typid)
{
	switch (typid)
	{
		case INT2OID:
			return PG_INT16_MIN;
		case INT4OID:
			return PG_INT32_MIN;
		default:
			return PG_INT64_MIN;
	}
}

static char *
version_show(bool isnull, int64 v)
{
	return isnull ? pstrdup("NULL") : psprintf(INT64_FORMAT, v);
}

/*
 * "(id)=(42)" for the row tuple of rel, from its primary key, as unique
 * violations show it; "(ctid)=(0,1)" when rel has no primary key or the
 * user may not see the key's columns.  Only used on error paths.
 */
static char *
version_row_key(Relation rel, HeapTuple tuple)
{
	Oid			pkoid = RelationGetPrimaryKeyIndex(rel, false);
	char	   *desc = NULL;

	if (OidIsValid(pkoid))
	{
		Relation	idx = index_open(pkoid, AccessShareLock);
		int			nkeys = IndexRelationGetNumberOfKeyAttributes(idx);
		Datum		values[INDEX_MAX_KEYS];
		bool		isnull[INDEX_MAX_KEYS];

		for (int i = 0; i < nkeys; i++)
			values[i] = heap_getattr(tuple, idx->rd_index->indkey.values[i],
									 RelationGetDescr(rel), &isnull[i]);
		desc = BuildIndexValueDescription(idx, values, isnull);
		index_close(idx, AccessShareLock);
	}
	if (desc == NULL)
		desc = psprintf("(ctid)=(%u,%u)",
						ItemPointerGetBlockNumber(&tuple->t_self),
						ItemPointerGetOffsetNumber(&tuple->t_self));
	return desc;
}

/* ---------------------------------------------------------------------
 * The trigger
 * ---------------------------------------------------------------------
 */

/*
 * Validate the trigger's definition and arguments once per statement and
 * keep what each row needs.
 */
static VersionTrigState *
version_trig_setup(FunctionCallInfo fcinfo, TriggerData *td)
{
	Trigger    *trigger = td->tg_trigger;
	Relation	rel = td->tg_relation;
	VersionTrigState *st;
	Oid			typid;
	AttrNumber	attnum;
	VersionMode mode;

	if (!TRIGGER_FIRED_BEFORE(td->tg_event) ||
		!TRIGGER_FIRED_FOR_ROW(td->tg_event) ||
		!(TRIGGER_FIRED_BY_INSERT(td->tg_event) ||
		  TRIGGER_FIRED_BY_UPDATE(td->tg_event)))
		ereport(ERROR,
				(errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
				 errmsg("trigger \"%s\" on table \"%s\" must be BEFORE INSERT OR UPDATE FOR EACH ROW",
						trigger->tgname, RelationGetRelationName(rel)),
				 errhint("Create it with lockctl.enable_versioning().")));
	if (trigger->tgnargs != 2)
		ereport(ERROR,
				(errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
				 errmsg("trigger \"%s\" on table \"%s\" must have two arguments, the version column and the mode",
						trigger->tgname, RelationGetRelationName(rel)),
				 errhint("Create it with lockctl.enable_versioning().")));

	attnum = version_check_column(rel, trigger->tgargs[0], &typid, false);
	mode = version_parse_mode(trigger->tgargs[1]);

	st = (VersionTrigState *) fcinfo->flinfo->fn_extra;
	if (st == NULL)
	{
		st = MemoryContextAllocZero(fcinfo->flinfo->fn_mcxt,
									sizeof(VersionTrigState));
		fcinfo->flinfo->fn_extra = st;
	}
	st->tgoid = trigger->tgoid;
	st->relid = RelationGetRelid(rel);
	st->attnum = attnum;
	st->typid = typid;
	st->mode = mode;
	st->stats = version_stats_entry(version_root_relid(trigger, st->relid),
									true);
	return st;
}

/*
 * lockctl.version_trigger(): BEFORE INSERT OR UPDATE FOR EACH ROW.
 */
PG_FUNCTION_INFO_V1(lockctl_version_trigger);
Datum
lockctl_version_trigger(PG_FUNCTION_ARGS)
{
	TriggerData *td;
	VersionTrigState *st;
	Relation	rel;
	TupleDesc	tupdesc;
	HeapTuple	oldtuple;
	HeapTuple	newtuple;
	Datum		d;
	bool		oldnull;
	bool		newnull;
	int64		oldv = 0;
	int64		newv = 0;
	int64		storev;
	bool		match;
	int			replcol;
	Datum		replval;
	bool		replnull = false;

	if (!CALLED_AS_TRIGGER(fcinfo))
		ereport(ERROR,
				(errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
				 errmsg("lockctl.version_trigger() was not called by the trigger manager"),
				 errhint("Use lockctl.enable_versioning() to put it on a table.")));
	td = (TriggerData *) fcinfo->context;
	rel = td->tg_relation;
	tupdesc = RelationGetDescr(rel);

	st = (VersionTrigState *) fcinfo->flinfo->fn_extra;
	if (st == NULL || st->tgoid != td->tg_trigger->tgoid ||
		st->relid != RelationGetRelid(rel))
		st = version_trig_setup(fcinfo, td);

	replcol = st->attnum;

	if (TRIGGER_FIRED_BY_INSERT(td->tg_event))
	{
		newtuple = td->tg_trigtuple;
		version_stats_bump(st->stats, VSTAT_INSERTS);
		(void) heap_getattr(newtuple, st->attnum, tupdesc, &newnull);
		if (!newnull)
			return PointerGetDatum(newtuple);
		replval = version_to_datum(1, st->typid);
		return PointerGetDatum(heap_modify_tuple_by_cols(newtuple, tupdesc, 1,
														 &replcol, &replval,
														 &replnull));
	}

	oldtuple = td->tg_trigtuple;
	newtuple = td->tg_newtuple;

	/* A blind write: the UPDATE does not say which version it read. */
	if (!bms_is_member(st->attnum - FirstLowInvalidHeapAttributeNumber,
					   td->tg_updatedcols))
	{
		const char *colname = NameStr(TupleDescAttr(tupdesc, st->attnum - 1)->attname);

		version_stats_bump(st->stats, VSTAT_BLIND);
		ereport(ERROR,
				(errcode(ERRCODE_TRIGGERED_ACTION_EXCEPTION),
				 errmsg("blind write refused on table \"%s\", row %s: the UPDATE does not assign version column \"%s\"",
						RelationGetRelationName(rel),
						version_row_key(rel, oldtuple), colname),
				 errdetail("Versioning is enabled on this table: an UPDATE must set \"%s\" to the version it read, so that a write computed from a stale read is refused.",
						   colname),
				 errhint("Add %s = <version read> to the SET list; to overwrite the row whatever its version, write %s = %s.",
						 quote_identifier(colname), quote_identifier(colname),
						 quote_identifier(colname)),
				 errtable(rel)));
	}

	d = heap_getattr(oldtuple, st->attnum, tupdesc, &oldnull);
	if (!oldnull)
		oldv = version_from_datum(d, st->typid);
	d = heap_getattr(newtuple, st->attnum, tupdesc, &newnull);
	if (!newnull)
		newv = version_from_datum(d, st->typid);

	/*
	 * A NULL version (a row that was there before versioning was enabled,
	 * in a nullable column) is matched by NULL and becomes 1.
	 */
	if (oldnull || newnull)
		match = (oldnull && newnull);
	else
		match = (newv == oldv ||
				 (st->mode == VERSION_MODE_ORM && oldv < PG_INT64_MAX &&
				  newv == oldv + 1));

	if (!match)
	{
		const char *colname = NameStr(TupleDescAttr(tupdesc, st->attnum - 1)->attname);
		char	   *sent = version_show(newnull, newv);
		char	   *cur = version_show(oldnull, oldv);
		bool		orm_style = (st->mode == VERSION_MODE_STRICT &&
								 !oldnull && !newnull && oldv < PG_INT64_MAX &&
								 newv == oldv + 1);

		version_stats_bump(st->stats, VSTAT_CONFLICTS);
		ereport(ERROR,
				(errcode(ERRCODE_T_R_SERIALIZATION_FAILURE),
				 errmsg("version conflict on table \"%s\", row %s: version sent %s, current version %s",
						RelationGetRelationName(rel),
						version_row_key(rel, oldtuple), sent, cur),
				 errdetail("The UPDATE set \"%s\" to %s; the row's current version is %s.",
						   colname, sent, cur),
				 orm_style ?
				 errhint("The version sent is the current version plus one, as ORMs send it; enable versioning with mode 'orm' to accept that form.") :
				 errhint("Read the row again, recompute the change and retry."),
				 errtable(rel)));
	}

	storev = oldnull ? 1 : oldv;
	if (!oldnull)
	{
		if (oldv >= version_type_max(st->typid))
			ereport(ERROR,
					(errcode(ERRCODE_NUMERIC_VALUE_OUT_OF_RANGE),
					 errmsg("version of row %s of table \"%s\" cannot go past " INT64_FORMAT,
							version_row_key(rel, oldtuple),
							RelationGetRelationName(rel), oldv),
					 errhint("Widen the version column, e.g. ALTER TABLE ... ALTER COLUMN ... TYPE bigint."),
					 errtable(rel)));
		storev = oldv + 1;
	}

	version_stats_bump(st->stats, VSTAT_CHECKED);

	/* An ORM already sent the next version: nothing to change. */
	if (!newnull && newv == storev)
		return PointerGetDatum(newtuple);

	replval = version_to_datum(storev, st->typid);
	return PointerGetDatum(heap_modify_tuple_by_cols(newtuple, tupdesc, 1,
													 &replcol, &replval,
													 &replnull));
}

/* ---------------------------------------------------------------------
 * enable_versioning / disable_versioning
 * ---------------------------------------------------------------------
 */

/*
 * Open relid for a change of its versioning, with lockmode, after checking
 * that it exists, is a table and belongs to the caller.
 */
static Relation
version_open_owned(Oid relid, LOCKMODE lockmode, const char *fname)
{
	Relation	rel;
	char		relkind;

	LockRelationOid(relid, lockmode);
	rel = try_relation_open(relid, NoLock);
	if (rel == NULL)
	{
		UnlockRelationOid(relid, lockmode);
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_TABLE),
				 errmsg("relation with OID %u does not exist", relid)));
	}
	relkind = rel->rd_rel->relkind;
	if (relkind != RELKIND_RELATION && relkind != RELKIND_PARTITIONED_TABLE)
		ereport(ERROR,
				(errcode(ERRCODE_WRONG_OBJECT_TYPE),
				 errmsg("cannot use %s on relation \"%s\"",
						fname, RelationGetRelationName(rel)),
				 errdetail_relkind_not_supported(relkind),
				 errhint("Versioning works on ordinary and partitioned tables.")));
	if (IsSystemRelation(rel))
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("cannot use %s on system catalog \"%s\"",
						fname, RelationGetRelationName(rel))));
	if (!object_ownercheck(RelationRelationId, relid, GetUserId()))
		aclcheck_error(ACLCHECK_NOT_OWNER, get_relkind_objtype(relkind),
					   RelationGetRelationName(rel));
	return rel;
}

/* Run one utility statement through SPI. */
static void
version_run_utility(const char *sql)
{
	int			rc;

	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	rc = SPI_execute(sql, false, 0);
	if (rc != SPI_OK_UTILITY)
		elog(ERROR, "SPI_execute failed for \"%s\": %s", sql,
			 SPI_result_code_string(rc));
	SPI_finish();
}

/*
 * lockctl.enable_versioning(tbl regclass, version_column name, mode text)
 */
PG_FUNCTION_INFO_V1(lockctl_enable_versioning);
Datum
lockctl_enable_versioning(PG_FUNCTION_ARGS)
{
	Oid			relid;
	char	   *colname;
	char	   *modestr;
	VersionMode mode;
	Relation	rel;
	Trigger    *existing;
	Oid			fnoid;
	Oid			typid;
	char	   *qualname;

	lockctl_arg_not_null(fcinfo, 0, "tbl");
	lockctl_arg_not_null(fcinfo, 1, "version_column");
	lockctl_arg_not_null(fcinfo, 2, "mode");
	relid = PG_GETARG_OID(0);
	colname = pstrdup(NameStr(*PG_GETARG_NAME(1)));
	modestr = text_to_cstring(PG_GETARG_TEXT_PP(2));
	mode = version_parse_mode(modestr);

	PreventCommandDuringRecovery("lockctl.enable_versioning()");

	fnoid = version_trigger_fn(false);
	rel = version_open_owned(relid, ShareRowExclusiveLock,
							 "lockctl.enable_versioning()");

	existing = version_find_trigger(rel, fnoid);
	if (existing != NULL)
		ereport(ERROR,
				(errcode(ERRCODE_DUPLICATE_OBJECT),
				 errmsg("versioning is already enabled on table \"%s\"",
						RelationGetRelationName(rel)),
				 existing->tgisclone ?
				 errdetail("The table is a partition of a versioned table.") :
				 errdetail("Trigger \"%s\" checks version column \"%s\" in mode %s.",
						   existing->tgname,
						   existing->tgnargs > 0 ? existing->tgargs[0] : "?",
						   existing->tgnargs > 1 ? existing->tgargs[1] : "?"),
				 errhint("To change the column or the mode, call lockctl.disable_versioning() first.")));

	(void) version_check_column(rel, colname, &typid, true);

	/* No partition may be versioned on its own already. */
	if (rel->rd_rel->relkind == RELKIND_PARTITIONED_TABLE)
	{
		List	   *children = find_all_inheritors(relid, ShareRowExclusiveLock, NULL);
		ListCell   *lc;

		foreach(lc, children)
		{
			Oid			child = lfirst_oid(lc);
			Relation	crel;

			if (child == relid)
				continue;
			crel = relation_open(child, NoLock);
			if (version_find_trigger(crel, fnoid) != NULL)
				ereport(ERROR,
						(errcode(ERRCODE_DUPLICATE_OBJECT),
						 errmsg("versioning is already enabled on partition \"%s\" of table \"%s\"",
								RelationGetRelationName(crel),
								RelationGetRelationName(rel)),
						 errhint("Disable it on the partition first.")));
			relation_close(crel, NoLock);
		}
	}

	qualname = quote_qualified_identifier(get_namespace_name(RelationGetNamespace(rel)),
										  RelationGetRelationName(rel));
	relation_close(rel, NoLock);

	version_run_utility(psprintf("CREATE TRIGGER %s BEFORE INSERT OR UPDATE ON %s "
								 "FOR EACH ROW EXECUTE FUNCTION lockctl.%s(%s, %s)",
								 quote_identifier(VERSION_TRIGGER_NAME),
								 qualname,
								 quote_identifier(VERSION_TRIGGER_FUNC),
								 quote_literal_cstr(colname),
								 quote_literal_cstr(version_mode_name(mode))));

	/* Counters start over (a stale entry of an earlier table with this oid). */
	version_stats_remove(relid);

	PG_RETURN_VOID();
}

/*
 * lockctl.disable_versioning(tbl regclass)
 */
PG_FUNCTION_INFO_V1(lockctl_disable_versioning);
Datum
lockctl_disable_versioning(PG_FUNCTION_ARGS)
{
	Oid			relid;
	Relation	rel;
	Trigger    *trigger;
	char	   *sql;

	lockctl_arg_not_null(fcinfo, 0, "tbl");
	relid = PG_GETARG_OID(0);

	PreventCommandDuringRecovery("lockctl.disable_versioning()");

	rel = version_open_owned(relid, AccessExclusiveLock,
							 "lockctl.disable_versioning()");
	trigger = version_find_trigger(rel, version_trigger_fn(false));
	if (trigger == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_OBJECT),
				 errmsg("versioning is not enabled on table \"%s\"",
						RelationGetRelationName(rel))));
	if (trigger->tgisclone)
		ereport(ERROR,
				(errcode(ERRCODE_DEPENDENT_OBJECTS_STILL_EXIST),
				 errmsg("versioning of partition \"%s\" is inherited from its partitioned table",
						RelationGetRelationName(rel)),
				 errhint("Call lockctl.disable_versioning() on the partitioned table.")));

	sql = psprintf("DROP TRIGGER %s ON %s",
				   quote_identifier(trigger->tgname),
				   quote_qualified_identifier(get_namespace_name(RelationGetNamespace(rel)),
											  RelationGetRelationName(rel)));
	relation_close(rel, NoLock);
	version_run_utility(sql);
	version_stats_remove(relid);

	PG_RETURN_VOID();
}

/* ---------------------------------------------------------------------
 * update_versioned
 * ---------------------------------------------------------------------
 */

/*
 * Prepare the UPDATE for rel and the given columns into entry e.
 *
 * Parameters: $1 the expected version, $2 the changes (jsonb), then one per
 * primary key column, then (unless use_record) one per column to set, of
 * that column's type.
 */
static void
version_uv_prepare(UVCacheEntry *e, Relation rel, Oid pkoid,
				   AttrNumber vattnum, List *colnames, bool keep,
				   bool use_record)
{
	TupleDesc	tupdesc = RelationGetDescr(rel);
	MemoryContext cxt = keep ? TopMemoryContext : CurrentMemoryContext;
	Relation	idx;
	int			nk;
	char	   *qualname;
	const char *vname = NameStr(TupleDescAttr(tupdesc, vattnum - 1)->attname);
	StringInfoData sql;
	StringInfoData rec;
	StringInfoData where;
	StringInfoData names;
	ListCell   *lc;
	Oid		   *argtypes;
	int			nargs = 2;
	SPIPlanPtr	plan;

	argtypes = palloc(sizeof(Oid) * (2 + INDEX_MAX_KEYS + list_length(colnames)));
	argtypes[0] = INT8OID;
	argtypes[1] = JSONBOID;

	/* WHERE: each key column, with its index's equality operator. */
	initStringInfo(&where);
	initStringInfo(&names);
	idx = index_open(pkoid, AccessShareLock);
	nk = IndexRelationGetNumberOfKeyAttributes(idx);
	for (int i = 0; i < nk; i++)
	{
		AttrNumber	attno = idx->rd_index->indkey.values[i];
		Form_pg_attribute att = TupleDescAttr(tupdesc, attno - 1);
		Oid			eqop;
		HeapTuple	optup;
		Form_pg_operator opform;

		eqop = get_opfamily_member(idx->rd_opfamily[i], idx->rd_opcintype[i],
								   idx->rd_opcintype[i], BTEqualStrategyNumber);
		if (!OidIsValid(eqop))
			elog(ERROR, "no equality operator for the primary key of \"%s\"",
				 RelationGetRelationName(rel));
		optup = SearchSysCache1(OPEROID, ObjectIdGetDatum(eqop));
		if (!HeapTupleIsValid(optup))
			elog(ERROR, "cache lookup failed for operator %u", eqop);
		opform = (Form_pg_operator) GETSTRUCT(optup);

		argtypes[nargs++] = att->atttypid;
		appendStringInfo(&where, "%st.%s OPERATOR(%s.%s) $%d",
						 i > 0 ? " AND " : "",
						 quote_identifier(NameStr(att->attname)),
						 quote_identifier(get_namespace_name(opform->oprnamespace)),
						 NameStr(opform->oprname), nargs);
		ReleaseSysCache(optup);

		e->pktypes[i] = att->atttypid;
		e->pktypmods[i] = att->atttypmod;
		appendBinaryStringInfo(&names, NameStr(att->attname),
							   strlen(NameStr(att->attname)) + 1);
	}
	index_close(idx, AccessShareLock);

	qualname = quote_qualified_identifier(get_namespace_name(RelationGetNamespace(rel)),
										  RelationGetRelationName(rel));

	initStringInfo(&sql);
	initStringInfo(&rec);
	appendStringInfo(&sql, "UPDATE %s%s AS t SET ",
					 rel->rd_rel->relkind == RELKIND_RELATION ? "ONLY " : "",
					 qualname);
	foreach(lc, colnames)
	{
		const char *col = (const char *) lfirst(lc);
		AttrNumber	attnum = get_attnum(RelationGetRelid(rel), col);
		Form_pg_attribute att = TupleDescAttr(tupdesc, attnum - 1);

		if (use_record)
		{
			appendStringInfo(&sql, "%s = r.%s, ", quote_identifier(col),
							 quote_identifier(col));
			appendStringInfo(&rec, "%s%s %s", rec.len > 0 ? ", " : "",
							 quote_identifier(col),
							 format_type_extended(att->atttypid, att->atttypmod,
												  FORMAT_TYPE_TYPEMOD_GIVEN |
												  FORMAT_TYPE_FORCE_QUALIFY));
		}
		else
		{
			/* the value comes converted to the column's type */
			argtypes[nargs++] = att->atttypid;
			appendStringInfo(&sql, "%s = $%d, ", quote_identifier(col), nargs);
		}
	}
	appendStringInfo(&sql, "%s = $1", quote_identifier(vname));
	if (use_record && colnames != NIL)
		appendStringInfo(&sql, " FROM pg_catalog.jsonb_to_record($2) AS r(%s)",
						 rec.data);
	appendStringInfo(&sql, " WHERE %s RETURNING t.%s", where.data,
					 quote_identifier(vname));

	plan = SPI_prepare(sql.data, nargs, argtypes);
	if (plan == NULL)
		elog(ERROR, "SPI_prepare failed for \"%s\": %s", sql.data,
			 SPI_result_code_string(SPI_result));
	if (keep && SPI_keepplan(plan) != 0)
		elog(ERROR, "SPI_keepplan failed");

	e->plan = plan;
	e->nkeycols = nk;
	e->pknames = MemoryContextAlloc(cxt, names.len);
	memcpy(e->pknames, names.data, names.len);
	e->vtype = TupleDescAttr(tupdesc, vattnum - 1)->atttypid;
	e->valid = true;
}

/*
 * A scalar JSON value as a value of type typid, as jsonb_to_record makes
 * it: json and jsonb take the JSON value; other types take the text of a
 * string, number or boolean through their input function.
 */
static Datum
version_json_to_datum(JsonbValue *v, Oid typid, int32 typmod)
{
	Oid			base;
	char	   *str;
	Oid			typin;
	Oid			typioparam;

	if (typid == JSONBOID)
		return JsonbPGetDatum(JsonbValueToJsonb(v));
	base = getBaseType(typid);
	if (base == JSONOID || base == JSONBOID)
	{
		Jsonb	   *j = JsonbValueToJsonb(v);

		str = JsonbToCString(NULL, &j->root, VARSIZE(j));
	}
	else if (v->type == jbvString)
		str = pnstrdup(v->val.string.val, v->val.string.len);
	else if (v->type == jbvNumeric)
		str = DatumGetCString(DirectFunctionCall1(numeric_out,
												  NumericGetDatum(v->val.numeric)));
	else if (v->type == jbvBool)
		str = pstrdup(v->val.boolean ? "true" : "false");
	else
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("cannot convert a JSON array or object to type %s",
						format_type_be(typid))));
	getTypeInputInfo(typid, &typin, &typioparam);
	return OidInputFunctionCall(typin, str, typioparam, typmod);
}

/*
 * "(a, b)=(1, x)": the key columns and the values in keys[], for messages.
 */
static char *
version_uv_key_shown(UVCacheEntry *e, Datum *keys)
{
	StringInfoData names;
	StringInfoData shown;
	const char *name = e->pknames;

	initStringInfo(&names);
	initStringInfo(&shown);
	for (int i = 0; i < e->nkeycols; i++, name += strlen(name) + 1)
	{
		Oid			typout;
		bool		typvarlena;

		getTypeOutputInfo(e->pktypes[i], &typout, &typvarlena);
		appendStringInfo(&names, "%s%s", i > 0 ? ", " : "",
						 quote_identifier(name));
		appendStringInfo(&shown, "%s%s", i > 0 ? ", " : "",
						 OidOutputFunctionCall(typout, keys[i]));
	}
	return psprintf("(%s)=(%s)", names.data, shown.data);
}

/*
 * The key argument as values of the primary key columns, into keys[]: any
 * value for a one-column key (converted through text when its type
 * differs), a JSON object naming every column for a composite key.
 */
static void
version_uv_keys(UVCacheEntry *e, Datum keyval, Oid keytype, Datum *keys)
{
	StringInfoData names;
	const char *name = e->pknames;

	if (e->nkeycols == 1)
	{
		if (keytype != e->pktypes[0])
		{
			Oid			typout;
			bool		typvarlena;
			Oid			typin;
			Oid			typioparam;

			getTypeOutputInfo(keytype, &typout, &typvarlena);
			getTypeInputInfo(e->pktypes[0], &typin, &typioparam);
			keyval = OidInputFunctionCall(typin,
										  OidOutputFunctionCall(typout, keyval),
										  typioparam, e->pktypmods[0]);
		}
		keys[0] = keyval;
		return;
	}
	else
	{
		Jsonb	   *j;

		initStringInfo(&names);
		if (keytype == JSONBOID)
			j = DatumGetJsonbP(keyval);
		else if (keytype == TEXTOID || keytype == JSONOID ||
				 keytype == VARCHAROID)
		{
			Oid			typout;
			bool		typvarlena;

			getTypeOutputInfo(keytype, &typout, &typvarlena);
			j = DatumGetJsonbP(DirectFunctionCall1(jsonb_in,
												   CStringGetDatum(OidOutputFunctionCall(typout, keyval))));
		}
		else
			j = NULL;

		for (int i = 0; i < e->nkeycols; i++, name += strlen(name) + 1)
			appendStringInfo(&names, "%s%s", i > 0 ? ", " : "",
							 quote_identifier(name));
		if (j == NULL || !JB_ROOT_IS_OBJECT(j) || JB_ROOT_IS_SCALAR(j) ||
			JsonContainerSize(&j->root) != e->nkeycols)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("key of lockctl.update_versioned() must be a JSON object with the %d primary key columns (%s)",
							e->nkeycols, names.data)));

		name = e->pknames;
		for (int i = 0; i < e->nkeycols; i++, name += strlen(name) + 1)
		{
			JsonbValue	k;
			JsonbValue *v;

			k.type = jbvString;
			k.val.string.val = (char *) name;
			k.val.string.len = strlen(name);
			v = findJsonbValueFromContainer(&j->root, JB_FOBJECT, &k);
			if (v == NULL)
				ereport(ERROR,
						(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
						 errmsg("key of lockctl.update_versioned() has no value for primary key column \"%s\"",
								name),
						 errdetail("The primary key columns are %s.", names.data)));
			if (v->type == jbvNull)
				ereport(ERROR,
						(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
						 errmsg("key of lockctl.update_versioned() has a null value for primary key column \"%s\"",
								name)));
			keys[i] = version_json_to_datum(v, e->pktypes[i], e->pktypmods[i]);
		}
	}
}

/*
 * lockctl.update_versioned(tbl regclass, key anyelement,
 *							expected_version bigint, changes jsonb)
 *
 * Update the row of tbl whose primary key is key, if and only if its
 * version is expected_version; return the new version.
 */
PG_FUNCTION_INFO_V1(lockctl_update_versioned);
Datum
lockctl_update_versioned(PG_FUNCTION_ARGS)
{
	Oid			relid;
	Datum		keyval;
	Oid			keytype;
	int64		expected;
	Jsonb	   *changes;
	Relation	rel;
	Trigger    *trigger;
	AttrNumber	vattnum;
	Oid			vtype;
	Oid			pkoid;
	bool		fires;
	List	   *colnames = NIL;
	StringInfoData cols;
	int			ncols = 0;
	UVCacheKey	ckey;
	UVCacheEntry *volatile e = NULL;
	UVCacheEntry tmp;
	bool		found;
	bool		cached;
	bool		use_record = false;
	Datum	   *values;
	char	   *nulls;
	JsonbValue *jvals;
	AttrNumber *attnums;
	int			nkeys;
	TupleDesc	tupdesc;
	volatile int rc = 0;
	int64		result;
	bool		isnull;
	Oid			vtype_ret;
	int			nk;
	SPIPlanPtr	plan;

	lockctl_arg_not_null(fcinfo, 0, "tbl");
	lockctl_arg_not_null(fcinfo, 1, "key");
	lockctl_arg_not_null(fcinfo, 2, "expected_version");
	lockctl_arg_not_null(fcinfo, 3, "changes");
	relid = PG_GETARG_OID(0);
	keyval = PG_GETARG_DATUM(1);
	keytype = get_fn_expr_argtype(fcinfo->flinfo, 1);
	expected = PG_GETARG_INT64(2);
	changes = PG_GETARG_JSONB_P(3);

	if (!JB_ROOT_IS_OBJECT(changes) || JB_ROOT_IS_SCALAR(changes))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("changes of lockctl.update_versioned() must be a JSON object"),
				 errhint("Pass the new values as {\"column\": value, ...}.")));

	/* The caller must be allowed to update the table before we lock it. */
	if (pg_class_aclcheck(relid, GetUserId(), ACL_UPDATE) != ACLCHECK_OK &&
		pg_attribute_aclcheck_all(relid, GetUserId(), ACL_UPDATE,
								  ACLMASK_ANY) != ACLCHECK_OK)
		aclcheck_error(ACLCHECK_NO_PRIV, OBJECT_TABLE, get_rel_name(relid));

	rel = relation_open(relid, RowExclusiveLock);
	if (rel->rd_rel->relkind != RELKIND_RELATION &&
		rel->rd_rel->relkind != RELKIND_PARTITIONED_TABLE)
		ereport(ERROR,
				(errcode(ERRCODE_WRONG_OBJECT_TYPE),
				 errmsg("cannot use lockctl.update_versioned() on relation \"%s\"",
						RelationGetRelationName(rel)),
				 errdetail_relkind_not_supported(rel->rd_rel->relkind)));

	trigger = version_find_trigger(rel, version_trigger_fn(false));
	if (trigger == NULL || trigger->tgnargs != 2)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("versioning is not enabled on table \"%s\"",
						RelationGetRelationName(rel)),
				 errhint("Call lockctl.enable_versioning() first.")));

	/* Without the trigger firing, nothing would check the version. */
	switch (trigger->tgenabled)
	{
		case TRIGGER_FIRES_ALWAYS:
			fires = true;
			break;
		case TRIGGER_FIRES_ON_ORIGIN:
			fires = (SessionReplicationRole != SESSION_REPLICATION_ROLE_REPLICA);
			break;
		case TRIGGER_FIRES_ON_REPLICA:
			fires = (SessionReplicationRole == SESSION_REPLICATION_ROLE_REPLICA);
			break;
		default:
			fires = false;
			break;
	}
	if (!fires)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("versioning trigger \"%s\" on table \"%s\" does not fire in this session",
						trigger->tgname, RelationGetRelationName(rel)),
				 errdetail("The trigger is disabled, or session_replication_role keeps it from firing."),
				 errhint("Enable the trigger with ALTER TABLE ... ENABLE TRIGGER, or reset session_replication_role.")));

	vattnum = version_check_column(rel, trigger->tgargs[0], &vtype, false);
	if (expected < version_type_min(vtype) || expected > version_type_max(vtype))
		ereport(ERROR,
				(errcode(ERRCODE_NUMERIC_VALUE_OUT_OF_RANGE),
				 errmsg("expected_version " INT64_FORMAT " is out of range for version column \"%s\" of type %s",
						expected, trigger->tgargs[0], format_type_be(vtype))));

	pkoid = RelationGetPrimaryKeyIndex(rel, false);
	if (!OidIsValid(pkoid))
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("table \"%s\" has no primary key",
						RelationGetRelationName(rel)),
				 errdetail("lockctl.update_versioned() finds the row by its primary key.")));

	/*
	 * The columns to set, checked, in the order jsonb keeps its keys, and
	 * their values.
	 */
	tupdesc = RelationGetDescr(rel);
	nkeys = JsonContainerSize(&changes->root);
	jvals = palloc(sizeof(JsonbValue) * (nkeys + 1));
	attnums = palloc(sizeof(AttrNumber) * (nkeys + 1));
	initStringInfo(&cols);
	{
		JsonbIterator *it = JsonbIteratorInit(&changes->root);
		JsonbValue	v;
		JsonbIteratorToken tok;

		while ((tok = JsonbIteratorNext(&it, &v, true)) != WJB_DONE)
		{
			char	   *col;
			AttrNumber	attnum;

			if (tok == WJB_VALUE && ncols > 0)
			{
				Oid			base = getBaseType(TupleDescAttr(tupdesc, attnums[ncols - 1] - 1)->atttypid);

				/*
				 * Arrays and objects for columns other than json and jsonb
				 * are converted as jsonb_to_record converts them.
				 */
				jvals[ncols - 1] = v;
				if (v.type == jbvBinary && base != JSONOID && base != JSONBOID)
					use_record = true;
				continue;
			}
			if (tok != WJB_KEY)
				continue;
			col = pnstrdup(v.val.string.val, v.val.string.len);
			attnum = get_attnum(relid, col);
			if (attnum == InvalidAttrNumber)
				ereport(ERROR,
						(errcode(ERRCODE_UNDEFINED_COLUMN),
						 errmsg("column \"%s\" of relation \"%s\" does not exist",
								col, RelationGetRelationName(rel))));
			if (attnum < 0)
				ereport(ERROR,
						(errcode(ERRCODE_INVALID_COLUMN_REFERENCE),
						 errmsg("cannot assign to system column \"%s\"", col)));
			if (attnum == vattnum)
				ereport(ERROR,
						(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
						 errmsg("changes of lockctl.update_versioned() must not set version column \"%s\"",
								col),
						 errdetail("The new version is the expected version plus one.")));
			colnames = lappend(colnames, col);
			appendBinaryStringInfo(&cols, col, strlen(col) + 1);
			attnums[ncols] = attnum;
			ncols++;
		}
	}
	/* The plan's form is part of what identifies it. */
	appendStringInfoChar(&cols, use_record ? 'r' : 'p');

	/* The prepared UPDATE for these columns. */
	version_register_callbacks();
	if (uv_cache == NULL)
	{
		HASHCTL		info;

		memset(&info, 0, sizeof(info));
		info.keysize = sizeof(UVCacheKey);
		info.entrysize = sizeof(UVCacheEntry);
		uv_cache = hash_create("lockctl update_versioned plans", 64, &info,
							   HASH_ELEM | HASH_BLOBS);
	}
	memset(&ckey, 0, sizeof(ckey));
	ckey.relid = relid;
	ckey.colhash = hash_bytes((const unsigned char *) cols.data, cols.len) ^ (uint32) ncols;

	/*
	 * A stale entry (the table changed), or another column set with the
	 * same hash, is replaced, unless an outer call is still executing its
	 * plan: then this call uses a plan of its own.
	 */
	cached = true;
	e = hash_search(uv_cache, &ckey, HASH_FIND, NULL);
	if (e != NULL &&
		!(e->valid && e->colslen == cols.len &&
		  memcmp(e->cols, cols.data, cols.len) == 0))
	{
		if (e->busy == 0)
		{
			if (e->plan)
				SPI_freeplan(e->plan);
			if (e->cols)
				pfree(e->cols);
			if (e->pknames)
				pfree(e->pknames);
			hash_search(uv_cache, &ckey, HASH_REMOVE, NULL);
		}
		else
			cached = false;
		e = NULL;
	}
	if (e == NULL && hash_get_num_entries(uv_cache) >= UV_CACHE_MAX)
		cached = false;

	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");

	if (e == NULL)
	{
		/* Not kept: freed with the SPI context, on error too. */
		memset(&tmp, 0, sizeof(tmp));
		version_uv_prepare(&tmp, rel, pkoid, vattnum, colnames, cached,
						   use_record);
		if (cached)
		{
			e = hash_search(uv_cache, &ckey, HASH_ENTER, &found);
			*e = tmp;
			e->key = ckey;
			e->cols = MemoryContextAlloc(TopMemoryContext, Max(cols.len, 1));
			memcpy(e->cols, cols.data, cols.len);
			e->colslen = cols.len;
		}
		else
			e = &tmp;
	}
	vtype_ret = e->vtype;
	plan = e->plan;
	nk = e->nkeycols;

	/* $1 the version, $2 the changes, the key, the values. */
	values = palloc(sizeof(Datum) * (2 + nk + ncols));
	nulls = palloc(2 + nk + ncols + 1);
	memset(nulls, ' ', 2 + nk + ncols);
	nulls[2 + nk + ncols] = '\0';
	values[0] = Int64GetDatum(expected);
	values[1] = JsonbPGetDatum(changes);
	version_uv_keys(e, keyval, keytype, &values[2]);
	if (!use_record)
	{
		for (int i = 0; i < ncols; i++)
		{
			Form_pg_attribute att = TupleDescAttr(tupdesc, attnums[i] - 1);

			if (jvals[i].type == jbvNull)
			{
				nulls[2 + nk + i] = 'n';
				values[2 + nk + i] = (Datum) 0;
			}
			else
				values[2 + nk + i] = version_json_to_datum(&jvals[i],
														   att->atttypid,
														   att->atttypmod);
		}
	}
	if (cached)
		e->busy++;
	PG_TRY();
	{
		rc = SPI_execute_plan(plan, values, nulls, false, 0);
	}
	PG_FINALLY();
	{
		if (cached)
			e->busy--;
	}
	PG_END_TRY();
	if (rc != SPI_OK_UPDATE_RETURNING)
		elog(ERROR, "SPI_execute_plan failed: %s", SPI_result_code_string(rc));

	if (SPI_processed == 0)
		ereport(ERROR,
				(errcode(ERRCODE_NO_DATA_FOUND),
				 errmsg("row %s of table \"%s\" does not exist",
						version_uv_key_shown(e, &values[2]),
						RelationGetRelationName(rel)),
				 errtable(rel)));
	result = version_from_datum(SPI_getbinval(SPI_tuptable->vals[0],
											  SPI_tuptable->tupdesc, 1, &isnull),
								vtype_ret);
	SPI_finish();
	relation_close(rel, NoLock);

	PG_RETURN_INT64(result);
}

/* ---------------------------------------------------------------------
 * The view and the reset
 * ---------------------------------------------------------------------
 */

/*
 * lockctl.versioned_tables_stats(): one row per table versioning is
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
		Datum		values[9];
		bool		nulls[9];
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
					values[4 + i] = Int64GetDatum((int64) pg_atomic_read_u64(&e->counters[i]));
				values[8] = TimestampTzGetDatum(e->stats_reset);
			}
		}
		LWLockRelease(vshared->lock);

		/* Never fired yet: nothing to count.  Untracked: unknown. */
		if (e == NULL)
		{
			bool		full;

			LWLockAcquire(vshared->lock, LW_SHARED);
			full = hash_get_num_entries(vstats) >= lockctl_max_versioned_tables;
			LWLockRelease(vshared->lock);
			for (int i = 0; i < VSTAT_COUNT; i++)
			{
				values[4 + i] = Int64GetDatum(0);
				nulls[4 + i] = full;
			}
			nulls[8] = true;
		}

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
	 * versioning is enabled (42704 otherwise).
	 */
	if (one)
	{
		Relation	rel = try_relation_open(only, AccessShareLock);
		bool		versioned;

		if (rel == NULL)
			ereport(ERROR,
					(errcode(ERRCODE_UNDEFINED_TABLE),
					 errmsg("relation with OID %u does not exist", only)));
		versioned = version_find_trigger(rel, version_trigger_fn(false)) != NULL;

		if (!versioned)
			ereport(ERROR,
					(errcode(ERRCODE_UNDEFINED_OBJECT),
					 errmsg("versioning is not enabled on table \"%s\"",
							RelationGetRelationName(rel))));
		relation_close(rel, AccessShareLock);
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
			continue;
		}
		for (int i = 0; i < VSTAT_COUNT; i++)
			pg_atomic_write_u64(&e->counters[i], 0);
		e->stats_reset = now;
	}
	LWLockRelease(vshared->lock);

	PG_RETURN_VOID();
}
