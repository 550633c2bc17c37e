/*-------------------------------------------------------------------------
 *
 * version_trigger.c
 *	  Version-checked updates (optimistic concurrency) enforced by the
 *	  database: the C trigger, enable_versioning() and disable_versioning(),
 *	  and what the other files of versioning need to know of the trigger.
 *
 * The trigger (lockctl.version_trigger, BEFORE INSERT OR UPDATE OR DELETE
 * FOR EACH ROW; 1.0 made it without DELETE) takes two arguments: the name
 * of the version column and the mode ('strict', 'orm' or 'server').
 * Keeping the configuration in the trigger's own arguments means pg_dump
 * restores it with the trigger, partitions get it when the trigger is
 * cloned to them, and there is no second catalog that could disagree with
 * pg_trigger.
 *
 * What the statement does with the version (compares it in WHERE, assigns
 * it a value sent, bumps it from itself, leaves it alone) is decided when
 * the statement starts (version_statement.c) and reaches the trigger as a
 * verdict in its fn_extra; the trigger applies it row by row:
 *
 *	INSERT	a NULL version becomes 1; a version given (or a column default)
 *			is kept.
 *	UPDATE	checked through WHERE: the row matched the version read; a
 *			value assigned must be it or the next.  Checked through SET:
 *			the value must be the row's current version (mode 'orm': also
 *			current + 1).  Blind, or without a verdict: refused (09000).
 *			A stale value is a conflict (40001).  The row stores
 *			current + 1.
 *	DELETE	checked through WHERE, or mode 'orm'; else refused (09000).
 *
 * Because the check compares against the row version the trigger is fired
 * on, it is right under every isolation level: in READ COMMITTED an UPDATE
 * that waited for a concurrent writer is fired on the newest row version
 * (EvalPlanQual), so a stale version fails there too.
 *
 * The counters are in version_stats.c, update_versioned() in
 * version_update.c.
 *
 * src/version_trigger.c
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
#include "catalog/pg_trigger.h"
#include "catalog/pg_type.h"
#include "commands/trigger.h"
#include "executor/spi.h"
#include "miscadmin.h"
#include "nodes/makefuncs.h"
#include "parser/parse_func.h"
#include "parser/parse_relation.h"
#include "storage/lmgr.h"
#include "utils/acl.h"
#include "utils/builtins.h"
#include "utils/fmgroids.h"
#include "utils/hsearch.h"
#include "utils/inval.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/rel.h"
#include "utils/syscache.h"

#include "version.h"

/* Cloned trigger oid -> the table versioning was enabled on. */
typedef struct RootCacheEntry
{
	Oid			tgoid;
	Oid			rootrelid;
} RootCacheEntry;

static HTAB *root_cache = NULL;
static LockctlFuncRef version_fn = {"lockctl", VERSION_TRIGGER_FUNC, 0};
static FmgrInfo version_finfo;
static Oid	version_finfo_oid = InvalidOid;	/* version_finfo is of it */
static bool callbacks_registered = false;

static void version_register_callbacks(void);
static VersionMode version_parse_mode(const char *mode);
static const char *version_mode_name(VersionMode mode);
static char *version_row_key(Relation rel, HeapTuple tuple);
static char *version_show(bool isnull, int64 v);
static VersionTrigState *version_trig_setup(FunctionCallInfo fcinfo,
											TriggerData *td);
static HeapTuple version_set(HeapTuple tuple, TriggerData *td,
							 VersionTrigState *st, int64 v);
static HeapTuple version_on_insert(TriggerData *td, VersionTrigState *st);
static HeapTuple version_on_update(TriggerData *td, VersionTrigState *st,
								   VersionVerdict *v);
static HeapTuple version_on_delete(TriggerData *td, VersionTrigState *st,
								   VersionVerdict *v);
static VersionVerdict *version_verdict(VersionTrigState *st);

/* ---------------------------------------------------------------------
 * Helpers
 * ---------------------------------------------------------------------
 */

static void
version_invalidate_fn(Datum arg, int cacheid, uint32 hashvalue)
{
	version_finfo_oid = InvalidOid;
}

static void
version_invalidate_rel(Datum arg, Oid relid)
{
	HASH_SEQ_STATUS seq;
	RootCacheEntry *r;

	/* what was found of the plans that update relid: find it again */
	version_plan_invalidate(relid);

	/* Trigger oids can be reused after a drop: forget them all. */
	if (root_cache == NULL || hash_get_num_entries(root_cache) == 0)
		return;
	hash_seq_init(&seq, root_cache);
	while ((r = hash_seq_search(&seq)) != NULL)
		hash_search(root_cache, &r->tgoid, HASH_REMOVE, NULL);
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
 * The oid of lockctl.version_trigger(), or InvalidOid where the extension
 * is not created; cached, found or not, until pg_proc changes (the executor
 * hooks ask at every statement).
 */
Oid
version_trigger_fn(bool missing_ok)
{
	version_register_callbacks();
	return lockctl_func_oid(&version_fn, missing_ok);
}

/*
 * The FmgrInfo of lockctl.version_trigger(), looked up once per backend
 * (until pg_proc changes: an update of the extension may point the
 * function at another symbol) and copied into each statement that writes
 * a versioned table.
 */
FmgrInfo *
version_trigger_finfo(Oid fnoid)
{
	if (version_finfo_oid != fnoid)
	{
		version_finfo_oid = InvalidOid;
		fmgr_info_cxt(fnoid, &version_finfo, TopMemoryContext);
		version_finfo_oid = fnoid;
	}
	return &version_finfo;
}

/* The lockctl version trigger of rel, or NULL. */
Trigger *
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

/* The mode called name (in any case), if there is one. */
bool
version_mode_lookup(const char *name, VersionMode *mode)
{
	if (pg_strcasecmp(name, "strict") == 0)
		*mode = VERSION_MODE_STRICT;
	else if (pg_strcasecmp(name, "orm") == 0)
		*mode = VERSION_MODE_ORM;
	else if (pg_strcasecmp(name, "server") == 0)
		*mode = VERSION_MODE_SERVER;
	else
		return false;
	return true;
}

static VersionMode
version_parse_mode(const char *mode)
{
	VersionMode m;

	if (version_mode_lookup(mode, &m))
		return m;
	ereport(ERROR,
			(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
			 errmsg("invalid versioning mode \"%s\"", mode),
			 errhint("The mode is 'strict' (a write compares or sets the version it read), 'orm' (it may also set the version read plus one, and DELETE by key alone) or 'server' (it compares the version in WHERE; the database keeps the counter).")));
	return VERSION_MODE_STRICT;	/* keep compiler quiet */
}

static const char *
version_mode_name(VersionMode mode)
{
	switch (mode)
	{
		case VERSION_MODE_ORM:
			return "orm";
		case VERSION_MODE_SERVER:
			return "server";
		default:
			return "strict";
	}
}

/*
 * Check that colname can be rel's version column: an ordinary column of
 * type smallint, integer or bigint.  Returns its number and type.
 */
AttrNumber
version_check_column(Relation rel, const char *colname, Oid *typid,
					 bool enabling)
{
	Form_pg_attribute att;
	AttrNumber	attnum;

	/*
	 * From the relation's descriptor, not the catalog cache: the trigger
	 * checks its column at every statement, and a walk over the columns'
	 * names costs less than hashing one name for the cache.
	 */
	attnum = attnameAttNum(rel, colname, true);
	if (attnum == InvalidAttrNumber && enabling)
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_COLUMN),
				 errmsg("column \"%s\" of relation \"%s\" does not exist",
						colname, RelationGetRelationName(rel)),
				 errhint("The version column must exist before versioning is enabled, e.g. ALTER TABLE ... ADD COLUMN %s bigint NOT NULL DEFAULT 1.",
						 quote_identifier(colname))));
	if (attnum == InvalidAttrNumber)
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_COLUMN),
				 errmsg("version column \"%s\" of relation \"%s\" does not exist",
						colname, RelationGetRelationName(rel)),
				 errdetail("The column was renamed or dropped after versioning was enabled on the table."),
				 errhint("Call lockctl.disable_versioning() and lockctl.enable_versioning() again with the column's name.")));
	if (attnum <= 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_COLUMN_DEFINITION),
				 errmsg("system column \"%s\" cannot be a version column",
						colname)));
	att = TupleDescAttr(RelationGetDescr(rel), attnum - 1);
	*typid = att->atttypid;

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
	return attnum;
}

/*
 * The table versioning was enabled on: the relation itself, or for a
 * trigger cloned onto a partition, the partitioned table at the top.
 */
Oid
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

int64
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

Datum
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

int64
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

int64
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
	Oid			pkoid;
	char	   *desc = NULL;

	if (tuple == NULL)
		return pstrdup("(ctid)=(unknown)");	/* not found again */
	pkoid = RelationGetPrimaryKeyIndex(rel, false);

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
 * keep what each row needs, beside the statement's verdict.
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
		!TRIGGER_FIRED_FOR_ROW(td->tg_event))
		ereport(ERROR,
				(errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
				 errmsg("trigger \"%s\" on table \"%s\" must be BEFORE INSERT OR UPDATE OR DELETE FOR EACH ROW",
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
		/* not made when the statement started: no verdict yet */
		st = MemoryContextAllocZero(fcinfo->flinfo->fn_mcxt,
									sizeof(VersionTrigState));
		fcinfo->flinfo->fn_extra = st;
	}
	st->tgoid = trigger->tgoid;
	st->relid = RelationGetRelid(rel);
	st->attnum = attnum;
	st->typid = typid;
	st->mode = mode;
	st->rootrelid = version_root_relid(trigger, st->relid);
	/*
	 * Temporary tables are not counted: any role may make as many as it
	 * likes, and the counters' table is shared by every database
	 * (version_stats.c).
	 */
	if (rel->rd_rel->relpersistence == RELPERSISTENCE_TEMP)
		st->stats = NULL;
	else
		st->stats = version_stats_entry(st->rootrelid, true);
	ItemPointerSetInvalid(&st->last_update);
	st->ready = true;
	return st;
}

/* tuple with the version column set to v */
static HeapTuple
version_set(HeapTuple tuple, TriggerData *td, VersionTrigState *st, int64 v)
{
	int			col = st->attnum;
	Datum		val = version_to_datum(v, st->typid);
	bool		isnull = false;

	return heap_modify_tuple_by_cols(tuple, RelationGetDescr(td->tg_relation),
									 1, &col, &val, &isnull);
}

/*
 * INSERT: a NULL version becomes 1; a version given (or a column default)
 * is kept.
 */
static HeapTuple
version_on_insert(TriggerData *td, VersionTrigState *st)
{
	HeapTuple	newtuple = td->tg_trigtuple;
	bool		newnull;

	version_stats_bump(st->stats, VSTAT_INSERTS);
	(void) heap_getattr(newtuple, st->attnum,
						RelationGetDescr(td->tg_relation), &newnull);
	if (!newnull)
		return newtuple;
	return version_set(newtuple, td, st, 1);
}

/* Why a write is refused before any version is compared. */
typedef enum VersionRefusal
{
	VREFUSE_SELF,				/* UPDATE only bumps the version from itself */
	VREFUSE_NONE,				/* UPDATE neither compares nor sets it */
	VREFUSE_DELETE,				/* DELETE does not compare it */
	VREFUSE_SERVER_SET,			/* mode server: the UPDATE sets it */
	VREFUSE_SERVER_NOWHERE,		/* mode server: sets it but compares nothing */
	VREFUSE_UNKNOWN,			/* set from a source lockctl does not follow */
	VREFUSE_UNCLASSIFIED		/* the statement was never classified */
} VersionRefusal;

/*
 * Refuse a write that does not prove the version it read: 09000, counted
 * as a blind write.  Retrying cannot help: the statement itself is wrong,
 * so this is not 40001.
 */
static void
version_refuse(TriggerData *td, VersionTrigState *st, VersionRefusal why)
{
	Relation	rel = td->tg_relation;
	const char *colname = NameStr(TupleDescAttr(RelationGetDescr(rel),
												st->attnum - 1)->attname);
	const char *col = quote_identifier(colname);
	const char *mode = version_mode_name(st->mode);
	char	   *row = version_row_key(rel, td->tg_trigtuple);
	const char *tbl = RelationGetRelationName(rel);
	char	   *what;
	char	   *hint;

	switch (why)
	{
		case VREFUSE_SELF:
			what = psprintf("the UPDATE sets version column \"%s\" from the row's own version and does not compare it", colname);
			hint = psprintf("Add %s = <version read> to the WHERE clause. ORMs that write %s = %s + 1 without it: TypeORM's save() (use update() with the version in the criteria), Rails' increment! and update_counters, Sequelize's increment(); docs/versioning.md has each ORM's fix.",
							col, col, col);
			break;
		case VREFUSE_NONE:
			what = psprintf("the UPDATE neither compares nor sets version column \"%s\"", colname);
			hint = psprintf("Add %s = <version read> to the WHERE clause (or, except in mode 'server', to the SET list); to overwrite the row whatever its version, write %s = %s. Bulk writes of ORMs (Rails' update_all, Django's QuerySet.update(), Sequelize's and TypeORM's update()) need the version among their conditions.",
							col, col, col);
			break;
		case VREFUSE_DELETE:
			what = psprintf("the DELETE does not compare version column \"%s\"", colname);
			hint = psprintf("Add %s = <version read> to the WHERE clause. ORMs that delete by key alone (Django, Sequelize, TypeORM) need mode 'orm'.",
							col);
			break;
		case VREFUSE_SERVER_SET:
			what = psprintf("the UPDATE sets version column \"%s\", which the database keeps in mode 'server'", colname);
			hint = psprintf("Leave %s out of the SET list and compare it in the WHERE clause (SQLAlchemy: version_id_generator=False), or use mode 'strict'.",
							col);
			break;
		case VREFUSE_SERVER_NOWHERE:
			what = psprintf("the UPDATE does not compare version column \"%s\" in its WHERE clause", colname);
			hint = psprintf("In mode 'server' the version read is proved in the WHERE clause only: add %s = <version read> to it.",
							col);
			break;
		case VREFUSE_UNKNOWN:
			what = psprintf("lockctl cannot tell where the UPDATE takes the value of version column \"%s\" from", colname);
			hint = psprintf("Set %s from a parameter or a constant, or compare it with one in the WHERE clause; a value from a subquery is not followed.",
							col);
			break;
		default:
			what = psprintf("the statement that writes it was not classified by lockctl");
			hint = pstrdup("lockctl inspects each statement as it starts: the library must be in shared_preload_libraries. Compare the version in the WHERE clause of an ordinary UPDATE or DELETE.");
			break;
	}

	version_stats_bump(st->stats, VSTAT_BLIND);
	ereport(ERROR,
			(errcode(ERRCODE_TRIGGERED_ACTION_EXCEPTION),
			 errmsg("blind write refused on table \"%s\", row %s: %s",
					tbl, row, what),
			 errdetail("Versioning is enabled on this table in mode '%s': a write must prove the version it read, so that a write computed from a stale read is refused.",
					   mode),
			 errhint("%s", hint),
			 errtable(rel)));
}

/*
 * The version sent is not the current one: 40001.  oldtuple is the row as
 * the check saw it (for its key); stats NULL: not counted.  Shared with
 * the check in a statement's projection (version_direct.c).
 */
void
version_conflict_error(Relation rel, HeapTuple oldtuple, AttrNumber attnum,
					   VersionMode mode, VersionStatsEntry *stats,
					   bool oldnull, int64 oldv, bool newnull, int64 newv)
{
	const char *colname = NameStr(TupleDescAttr(RelationGetDescr(rel),
												attnum - 1)->attname);
	char	   *sent = version_show(newnull, newv);
	char	   *cur = version_show(oldnull, oldv);
	bool		orm_style = (mode == VERSION_MODE_STRICT &&
							 !oldnull && !newnull && oldv < PG_INT64_MAX &&
							 newv == oldv + 1);

	version_stats_bump(stats, VSTAT_CONFLICTS);
	ereport(ERROR,
			(errcode(ERRCODE_T_R_SERIALIZATION_FAILURE),
			 errmsg("version conflict on table \"%s\", row %s: version sent %s, current version %s",
					RelationGetRelationName(rel),
					version_row_key(rel, oldtuple), sent, cur),
			 errdetail("The UPDATE set \"%s\" to %s; the row's current version is %s.",
					   colname, sent, cur),
			 orm_style ?
			 errhint("The version sent is the current version plus one, as ORMs send it: compare the version read in the WHERE clause as ORMs do (%s = <version read>), or enable versioning with mode 'orm'.",
					 quote_identifier(colname)) :
			 errhint("Read the row again, recompute the change and retry."),
			 errtable(rel)));
}

/*
 * Does a row whose version is oldv get an UPDATE that assigns newv, under
 * rule kind?  A NULL version (a row that was there before versioning was
 * enabled, in a nullable column) is matched by NULL where the version
 * assigned is compared.
 */
bool
version_row_match(VersionRowKind kind, bool oldnull, int64 oldv,
				  bool newnull, int64 newv)
{
	switch (kind)
	{
		case VROW_NEXT:
			return true;
		case VROW_WHERE_SENT:
			return !oldnull && !newnull &&
				(newv == oldv || (oldv < PG_INT64_MAX && newv == oldv + 1));
		case VROW_EXACT:
		case VROW_ORM:
			if (oldnull || newnull)
				return oldnull && newnull;
			return newv == oldv ||
				(kind == VROW_ORM && oldv < PG_INT64_MAX && newv == oldv + 1);
	}
	return false;				/* keep compiler quiet */
}

/*
 * The version an updated row stores: current + 1, or 1 for a NULL one;
 * an error at the column type's maximum.
 */
int64
version_next_of(Relation rel, HeapTuple oldtuple, Oid typid,
				bool oldnull, int64 oldv)
{
	if (oldnull)
		return 1;
	if (oldv >= version_type_max(typid))
		ereport(ERROR,
				(errcode(ERRCODE_NUMERIC_VALUE_OUT_OF_RANGE),
				 errmsg("version of row %s of table \"%s\" cannot go past " INT64_FORMAT,
						version_row_key(rel, oldtuple),
						RelationGetRelationName(rel), oldv),
				 errhint("Widen the version column, e.g. ALTER TABLE ... ALTER COLUMN ... TYPE bigint."),
				 errtable(rel)));
	return oldv + 1;
}

/*
 * The statement's verdict for this trigger: made when the statement
 * started, or, for a partition tuple routing opened later, the verdict of
 * the running statement that writes the versioned table.
 */
static VersionVerdict *
version_verdict(VersionTrigState *st)
{
	if (st->verdict == NULL && !st->looked_up)
	{
		st->verdict = version_running_verdict(st->rootrelid);
		st->looked_up = true;
	}
	return st->verdict;
}

/*
 * UPDATE: the statement must prove the version it read, by comparing it
 * in WHERE (then the row matched it: the version assigned, if any, must be
 * the current one or the next) or, outside mode 'server', by assigning it
 * (the current one; in mode 'orm' also the next).  The row then stores
 * current + 1.
 */
static HeapTuple
version_on_update(TriggerData *td, VersionTrigState *st, VersionVerdict *v)
{
	Relation	rel = td->tg_relation;
	TupleDesc	tupdesc = RelationGetDescr(rel);
	HeapTuple	oldtuple = td->tg_trigtuple;
	HeapTuple	newtuple = td->tg_newtuple;
	Datum		d;
	bool		oldnull;
	bool		newnull;
	int64		oldv = 0;
	int64		newv = 0;
	int64		storev;
	VersionRowKind kind;

	if (v == NULL)
		version_refuse(td, st, VREFUSE_UNCLASSIFIED);
	v->group->rows++;

	d = heap_getattr(oldtuple, st->attnum, tupdesc, &oldnull);
	if (!oldnull)
		oldv = version_from_datum(d, st->typid);
	d = heap_getattr(newtuple, st->attnum, tupdesc, &newnull);
	if (!newnull)
		newv = version_from_datum(d, st->typid);

	if (v->cascade || v->assign == VASSIGN_OVERWRITE)
		kind = VROW_NEXT;		/* a referential action; version = version */
	else if (v->uv)
		kind = VROW_EXACT;		/* update_versioned(): in every mode */
	else if (v->where_checked)
	{
		/* the row matched version = <read>: the read is proved */
		kind = VROW_NEXT;
		if (v->assign == VASSIGN_SENT || v->assign == VASSIGN_UNKNOWN)
		{
			if (st->mode == VERSION_MODE_SERVER)
				version_refuse(td, st, VREFUSE_SERVER_SET);
			kind = VROW_WHERE_SENT;
		}
	}
	else
	{
		switch (v->assign)
		{
			case VASSIGN_SENT:
				if (st->mode == VERSION_MODE_SERVER)
					version_refuse(td, st, VREFUSE_SERVER_NOWHERE);
				break;
			case VASSIGN_SELF:
				version_refuse(td, st, VREFUSE_SELF);
				break;
			case VASSIGN_NONE:
				version_refuse(td, st, VREFUSE_NONE);
				break;
			default:
				version_refuse(td, st, VREFUSE_UNKNOWN);
				break;
		}
		/* the version read is the version assigned */
		kind = st->mode == VERSION_MODE_ORM ? VROW_ORM : VROW_EXACT;
	}
	if (!version_row_match(kind, oldnull, oldv, newnull, newv))
		version_conflict_error(rel, oldtuple, st->attnum, st->mode, st->stats,
							   oldnull, oldv, newnull, newv);
	storev = version_next_of(rel, oldtuple, st->typid, oldnull, oldv);

	version_stats_bump(st->stats, VSTAT_CHECKED);
	/* a row that moves to another partition is deleted next: not a DELETE */
	st->last_update = oldtuple->t_self;

	/* The statement already set the next version: nothing to change. */
	if (!newnull && newv == storev)
		return newtuple;
	return version_set(newtuple, td, st, storev);
}

/*
 * DELETE: the statement must compare the version it read in WHERE (a
 * stale one matches no row and never gets here), except in mode 'orm'.
 */
static HeapTuple
version_on_delete(TriggerData *td, VersionTrigState *st, VersionVerdict *v)
{
	HeapTuple	oldtuple = td->tg_trigtuple;

	if (v != NULL)
	{
		v->group->rows++;

		/*
		 * An UPDATE that moves the row to another partition deletes it
		 * from this one, after the UPDATE check passed on the same row.
		 */
		if (v->operation == CMD_UPDATE ||
			(v->operation == CMD_MERGE &&
			 ItemPointerEquals(&st->last_update, &oldtuple->t_self)))
			return oldtuple;
		if (v->cascade)
			return oldtuple;
		if (v->delete_checked)
		{
			version_stats_bump(st->stats, VSTAT_DELETES);
			return oldtuple;
		}
	}
	if (st->mode == VERSION_MODE_ORM)
		return oldtuple;
	version_refuse(td, st, v == NULL ? VREFUSE_UNCLASSIFIED : VREFUSE_DELETE);
	return NULL;				/* keep compiler quiet */
}

/*
 * lockctl.version_trigger(): BEFORE INSERT OR UPDATE OR DELETE FOR EACH
 * ROW (before 1.1: BEFORE INSERT OR UPDATE).
 */
PG_FUNCTION_INFO_V1(lockctl_version_trigger);
Datum
lockctl_version_trigger(PG_FUNCTION_ARGS)
{
	TriggerData *td;
	VersionTrigState *st;

	if (!CALLED_AS_TRIGGER(fcinfo))
		ereport(ERROR,
				(errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
				 errmsg("lockctl.version_trigger() was not called by the trigger manager"),
				 errhint("Use lockctl.enable_versioning() to put it on a table.")));
	td = (TriggerData *) fcinfo->context;

	st = (VersionTrigState *) fcinfo->flinfo->fn_extra;
	if (st == NULL || !st->ready || st->tgoid != td->tg_trigger->tgoid ||
		st->relid != RelationGetRelid(td->tg_relation))
		st = version_trig_setup(fcinfo, td);

	if (TRIGGER_FIRED_BY_INSERT(td->tg_event))
		return PointerGetDatum(version_on_insert(td, st));
	if (TRIGGER_FIRED_BY_UPDATE(td->tg_event))
		return PointerGetDatum(version_on_update(td, st, version_verdict(st)));
	if (TRIGGER_FIRED_BY_DELETE(td->tg_event))
		return PointerGetDatum(version_on_delete(td, st, version_verdict(st)));
	ereport(ERROR,
			(errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
			 errmsg("trigger \"%s\" on table \"%s\" must be BEFORE INSERT OR UPDATE OR DELETE FOR EACH ROW",
					td->tg_trigger->tgname, RelationGetRelationName(td->tg_relation)),
			 errhint("Create it with lockctl.enable_versioning().")));
	PG_RETURN_NULL();			/* keep compiler quiet */
}

/* ---------------------------------------------------------------------
 * enable_versioning / disable_versioning
 * ---------------------------------------------------------------------
 */

/*
 * Check, from pg_class alone and without any lock, that relid exists, is a
 * table, is not a system catalog and belongs to the caller; error if not.
 */
static void
version_check_owned(Oid relid, const char *fname)
{
	HeapTuple	tup;
	Form_pg_class form;
	char		relkind;
	char	   *relname;

	tup = SearchSysCache1(RELOID, ObjectIdGetDatum(relid));
	if (!HeapTupleIsValid(tup))
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_TABLE),
				 errmsg("relation with OID %u does not exist", relid)));
	form = (Form_pg_class) GETSTRUCT(tup);
	relkind = form->relkind;
	relname = pstrdup(NameStr(form->relname));
	if (relkind != RELKIND_RELATION && relkind != RELKIND_PARTITIONED_TABLE)
		ereport(ERROR,
				(errcode(ERRCODE_WRONG_OBJECT_TYPE),
				 errmsg("cannot use %s on relation \"%s\"", fname, relname),
				 errdetail_relkind_not_supported(relkind),
				 errhint("Versioning works on ordinary and partitioned tables.")));
	if (IsSystemClass(relid, form))
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("cannot use %s on system catalog \"%s\"", fname, relname)));
	ReleaseSysCache(tup);
	if (!object_ownercheck(RelationRelationId, relid, GetUserId()))
		aclcheck_error(ACLCHECK_NOT_OWNER, get_relkind_objtype(relkind), relname);
}

/*
 * Open relid for a change of its versioning, with lockmode, after checking
 * that it exists, is a table and belongs to the caller.
 *
 * Permission before lock, as LOCK TABLE does: a lock request that waits
 * makes every later request on the table wait behind it (on a shared
 * catalog such as pg_database or pg_authid, every new connection of the
 * cluster), so a role that may not change the table must not get as far as
 * queueing one.  The checks run once from the catalog before the lock, and
 * again once the lock is ours: while we waited, the table may have been
 * dropped (and its oid reused) or given to another owner.
 */
static Relation
version_open_owned(Oid relid, LOCKMODE lockmode, const char *fname)
{
	Relation	rel;

	version_check_owned(relid, fname);
	LockRelationOid(relid, lockmode);
	/*
	 * LockRelationOid has processed invalidations, so the catalog is
	 * current; an error gives the lock back with the (sub)transaction.
	 */
	version_check_owned(relid, fname);
	rel = try_relation_open(relid, NoLock);
	if (rel == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_TABLE),
				 errmsg("relation with OID %u does not exist", relid)));
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

	version_run_utility(psprintf("CREATE TRIGGER %s BEFORE INSERT OR UPDATE OR DELETE ON %s "
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
