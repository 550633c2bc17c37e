/*-------------------------------------------------------------------------
 *
 * fence_table.c
 *	  Fenced tables: the storage checks the fencing token.  The trigger
 *	  that lockctl.enable_fencing() puts on a table, the TRUNCATE check,
 *	  the bypass setting, and the module's Init.
 *
 * The other parts: fence_table_config.c (the configuration, kept in the
 * trigger's arguments; enable/disable), fence_table_expr.c (the per-row
 * resource expression), fence_table_stats.c (counters in shared memory and
 * the view).  docs/fenced-tables.md has the design and its reasons.
 *
 * What the trigger checks
 * -----------------------
 * The trigger (lockctl.fence_trigger, BEFORE INSERT OR UPDATE OR DELETE FOR
 * EACH ROW, named FENCE_TRIGGER_NAME) fires for every row written, from
 * whatever statement: INSERT, UPDATE, DELETE, COPY, MERGE, ON CONFLICT, the
 * routing of a row to a partition, the DELETE and INSERT of a row that an
 * UPDATE moves to another partition, a foreign key's cascade.
 *
 *	INSERT	the resource of the new row must be fenced by this transaction
 *	UPDATE	the resources of the old and of the new row (one and the same
 *			for a table-wide resource)
 *	DELETE	the resource of the old row
 *
 * "Fenced" is LeaseFencedInXact() (lease.c): this transaction called
 * lockctl.fence(resource, token), still holds the fence lock it took, and
 * the lease is still held by that token.  Otherwise the write fails with
 * 40001.  With a token column, the old row's recorded token must not be
 * higher than the token of its resource's fence (else 40001 too: a later
 * holder wrote the row), and the new row is stamped with its resource's
 * token, whatever the statement put there.  That check needs no lease, so
 * it still holds when the lease table is lost (a crash, a failover) or
 * tokens went back (a data directory copied back in time).  Messages name
 * the writer's own token, never the row's, which may be another role's.
 *
 * TRUNCATE fires no row trigger; the object access hook sees every table a
 * TRUNCATE empties (the ones named, their partitions and inheritance
 * children, those a CASCADE adds), before anything is emptied.  A table
 * with one resource and no token column may be truncated under a live
 * fence of that resource; per-row resources and token columns cannot be
 * checked without reading every row, so TRUNCATE of such a table is
 * refused (DELETE checks each row).
 *
 * Bypass: lockctl.fencing_bypass (superusers, or roles granted SET on it)
 * lets writes through unchecked and leaves token columns as written; each
 * statement that uses it is logged (once per table) and counted.  Like every
 * ordinary trigger, the trigger does not fire with session_replication_role
 * = replica (superusers only): logical replication applies rows that were
 * checked where they were written.  Nothing else turns the check off short
 * of the owner's ALTER TABLE ... DISABLE TRIGGER or disable_fencing(), which
 * lockctl.fenced_tables shows.
 *
 * Per backend, each relation the trigger fires on (a table, or a partition:
 * each has its own column numbers) has a FenceRel: the configuration read
 * from the trigger, the token column's number and the compiled resource
 * expression (an ExprState over the row), kept until the relation's
 * relcache entry or any function is invalidated.
 *
 * src/fence_table.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/htup_details.h"
#include "access/genam.h"
#include "access/stratnum.h"
#include "access/table.h"
#include "access/xact.h"
#include "catalog/objectaccess.h"
#include "catalog/pg_class.h"
#include "catalog/pg_trigger.h"
#include "commands/trigger.h"
#include "executor/executor.h"
#include "miscadmin.h"
#include "optimizer/optimizer.h"
#include "utils/builtins.h"
#include "utils/fmgroids.h"
#include "utils/guc.h"
#include "utils/hsearch.h"
#include "utils/inval.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/rel.h"
#include "utils/syscache.h"

#include "fence_table.h"
#include "lease.h"
#include "lockctl.h"

/* Settings */
int			lockctl_max_fenced_tables = 1024;
static bool lockctl_fencing_bypass = false;

/* ---------------------------------------------------------------------
 * Backend-local state
 * ---------------------------------------------------------------------
 */

/*
 * What the trigger needs for one relation (a table, or a partition: each
 * has its own column numbers), kept until the relation's relcache entry or
 * a function is invalidated.  Entries are never removed from the hash, so
 * fn_extra may point at one.
 */
typedef struct FenceRel
{
	Oid			relid;			/* hash key */
	bool		valid;			/* configuration read */
	bool		compiled;		/* token column found, expression compiled */
	Oid			tgoid;
	FenceStatsEntry *stats;		/* NULL: not counted (table full) */
	MemoryContext cxt;			/* holds everything below */
	char	   *resource;
	char	   *expression;
	char	   *token_column;
	AttrNumber	token_attnum;	/* InvalidAttrNumber: no token column */
	ExprState  *expr_state;
	ExprContext *econtext;
	int			busy;			/* evaluations under way */
	/* the last statement whose bypass was logged */
	TimestampTz bypass_xact;
	CommandId	bypass_cid;
} FenceRel;

static HTAB *fence_rels = NULL;
static bool callbacks_registered = false;
static object_access_hook_type prev_object_access_hook = NULL;

static void fence_register_callbacks(void);
static FenceRel *fence_rel_setup(FunctionCallInfo fcinfo, TriggerData *td);
static void fence_rel_compile(FenceRel *fr, Relation rel);
static char *fence_row_resource(FenceRel *fr, Relation rel,
								TupleTableSlot *slot, HeapTuple tuple);
static int64 fence_require(FenceRel *fr, Relation rel, const char *resource,
						   HeapTuple tuple);
static void fence_check_token(FenceRel *fr, Relation rel, HeapTuple oldtuple,
							  const char *resource, int64 token);
static bool fence_note_bypass(FenceStatsEntry *stats, FenceRel *fr,
							  Oid relid, const char *what);
static char *fence_row_desc(Relation rel, HeapTuple tuple);
static void fence_object_access(ObjectAccessType access, Oid classId,
								Oid objectId, int subId, void *arg);
static void fence_check_truncate(Oid relid);

/* ---------------------------------------------------------------------
 * Module hooks, called from lockctl.c
 * ---------------------------------------------------------------------
 */

void
FenceTableInit(void)
{
	DefineCustomIntVariable("lockctl.max_fenced_tables",
							gettext_noop("Maximum number of fenced tables whose counters are kept, across all databases."),
							gettext_noop("Each takes a small entry in shared memory; tables beyond the limit are still checked, but not counted."),
							&lockctl_max_fenced_tables,
							1024, 16, 1024 * 1024,
							PGC_POSTMASTER,
							0,
							NULL, NULL, NULL);

	DefineCustomBoolVariable("lockctl.fencing_bypass",
							 gettext_noop("Lets writes to fenced tables through without checking any lease or token; every statement that uses it is logged."),
							 gettext_noop("For migrations and repairs. Only superusers, and roles granted SET on it, can turn it on."),
							 &lockctl_fencing_bypass,
							 false,
							 PGC_SUSET,
							 0,
							 NULL, NULL, NULL);

	FenceTableShmemRegister();

	prev_object_access_hook = object_access_hook;
	object_access_hook = fence_object_access;
}

/* ---------------------------------------------------------------------
 * The per-relation cache
 * ---------------------------------------------------------------------
 */

static void
fence_invalidate_all(void)
{
	HASH_SEQ_STATUS seq;
	FenceRel   *fr;

	if (fence_rels == NULL)
		return;
	hash_seq_init(&seq, fence_rels);
	while ((fr = hash_seq_search(&seq)) != NULL)
		fr->valid = false;
}

/* A function changed: any compiled expression may be stale. */
static void
fence_invalidate_fn(Datum arg, int cacheid, uint32 hashvalue)
{
	fence_invalidate_all();
}

static void
fence_invalidate_rel(Datum arg, Oid relid)
{
	FenceRel   *fr;

	if (fence_rels == NULL)
		return;
	if (!OidIsValid(relid))
	{
		fence_invalidate_all();
		return;
	}
	fr = hash_search(fence_rels, &relid, HASH_FIND, NULL);
	if (fr != NULL)
		fr->valid = false;
}

static void
fence_register_callbacks(void)
{
	if (callbacks_registered)
		return;
	CacheRegisterSyscacheCallback(PROCOID, fence_invalidate_fn, (Datum) 0);
	CacheRegisterRelcacheCallback(fence_invalidate_rel, (Datum) 0);
	callbacks_registered = true;
}

/* ---------------------------------------------------------------------
 * The trigger
 * ---------------------------------------------------------------------
 */

/* Are two optional trigger arguments the same? */
static inline bool
fence_same_arg(const char *a, const char *b)
{
	if (a == NULL || b == NULL)
		return a == b;
	return strcmp(a, b) == 0;
}

/*
 * Read the configuration of the trigger that fires on this relation into
 * the relation's FenceRel.  What can go wrong once the table changed (a
 * renamed column) is left to fence_rel_compile, so that a write under
 * lockctl.fencing_bypass (a repair) still goes through.
 */
static FenceRel *
fence_rel_setup(FunctionCallInfo fcinfo, TriggerData *td)
{
	Trigger    *trigger = td->tg_trigger;
	Relation	rel = td->tg_relation;
	Oid			relid = RelationGetRelid(rel);
	FenceArgs	args;
	FenceRel   *fr;
	bool		found;
	MemoryContext old;

	if (!TRIGGER_FIRED_BEFORE(td->tg_event) ||
		!TRIGGER_FIRED_FOR_ROW(td->tg_event) ||
		TRIGGER_FIRED_BY_TRUNCATE(td->tg_event))
		ereport(ERROR,
				(errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
				 errmsg("trigger \"%s\" on table \"%s\" must be BEFORE INSERT OR UPDATE OR DELETE FOR EACH ROW",
						trigger->tgname, RelationGetRelationName(rel)),
				 errhint("Create it with lockctl.enable_fencing().")));
	if (!fence_parse_args(trigger->tgnargs, trigger->tgargs, &args))
		ereport(ERROR,
				(errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
				 errmsg("trigger \"%s\" on table \"%s\" has arguments lockctl.fence_trigger() does not understand",
						trigger->tgname, RelationGetRelationName(rel)),
				 errhint("Create it with lockctl.enable_fencing().")));

	fence_register_callbacks();
	if (fence_rels == NULL)
	{
		HASHCTL		info;

		memset(&info, 0, sizeof(info));
		info.keysize = sizeof(Oid);
		info.entrysize = sizeof(FenceRel);
		fence_rels = hash_create("lockctl fenced tables", 64, &info,
								 HASH_ELEM | HASH_BLOBS);
	}
	fr = hash_search(fence_rels, &relid, HASH_ENTER, &found);
	if (!found)
	{
		fr->valid = false;
		fr->cxt = NULL;
		fr->busy = 0;
		fr->bypass_xact = 0;
		fr->bypass_cid = InvalidCommandId;
	}

	/*
	 * Only a function in the expression that writes this very table could
	 * come back here while the compiled state is in use.
	 */
	if (fr->busy > 0)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_IN_USE),
				 errmsg("fencing of table \"%s\" changed while its resource expression was being evaluated",
						RelationGetRelationName(rel))));

	/*
	 * Each statement starts with an empty fn_extra: the entry that an
	 * earlier statement set up is still good unless the relation or a
	 * function was invalidated since (which clears valid; any change of the
	 * trigger invalidates its table's relcache entry) or the trigger is
	 * another one.  The arguments are compared all the same: it is cheap.
	 * Compiling the expression again costs more than the rest of the
	 * trigger's work on a row.
	 */
	if (found && fr->valid && fr->tgoid == trigger->tgoid &&
		fence_same_arg(fr->resource, args.resource) &&
		fence_same_arg(fr->expression, args.expression) &&
		fence_same_arg(fr->token_column, args.token_column))
	{
		fcinfo->flinfo->fn_extra = fr;
		return fr;
	}
	fr->valid = false;
	fr->compiled = false;
	if (fr->cxt != NULL)
		MemoryContextDelete(fr->cxt);
	fr->expr_state = NULL;
	fr->econtext = NULL;
	fr->cxt = AllocSetContextCreate(TopMemoryContext, "lockctl fenced table",
									ALLOCSET_SMALL_SIZES);

	old = MemoryContextSwitchTo(fr->cxt);
	fr->resource = args.resource ? pstrdup(args.resource) : NULL;
	fr->expression = args.expression ? pstrdup(args.expression) : NULL;
	fr->token_column = args.token_column ? pstrdup(args.token_column) : NULL;
	MemoryContextSwitchTo(old);
	fr->token_attnum = InvalidAttrNumber;

	fr->tgoid = trigger->tgoid;
	fr->stats = fence_stats_entry(fence_root_relid(trigger->tgoid, relid),
								  true);
	fr->valid = true;
	fcinfo->flinfo->fn_extra = fr;
	return fr;
}

/*
 * Find the token column and compile the resource expression of fr over
 * rel's row.
 */
static void
fence_rel_compile(FenceRel *fr, Relation rel)
{
	MemoryContext old;

	if (fr->token_column != NULL)
		fr->token_attnum = fence_token_column(rel, fr->token_column, false);

	if (fr->expression != NULL)
	{
		Expr	   *expr = fence_expr_transform(rel, fr->expression, true);

		expr = expression_planner(expr);
		old = MemoryContextSwitchTo(fr->cxt);
		fr->expr_state = ExecInitExpr((Expr *) copyObject(expr), NULL);
		fr->econtext = CreateStandaloneExprContext();
		MemoryContextSwitchTo(old);
	}
	fr->compiled = true;
}

/*
 * The resource a row of rel needs a fence on: the table's, or the
 * expression evaluated over the row in slot (tuple is the same row, for
 * messages).
 */
static char *
fence_row_resource(FenceRel *fr, Relation rel, TupleTableSlot *slot,
				   HeapTuple tuple)
{
	ExprContext *econtext = fr->econtext;
	MemoryContext old;
	Datum		d;
	bool		isnull;
	char	   *volatile resource = NULL;

	if (fr->resource != NULL)
		return fr->resource;

	fr->busy++;
	PG_TRY();
	{
		ResetExprContext(econtext);
		econtext->ecxt_scantuple = slot;
		old = MemoryContextSwitchTo(econtext->ecxt_per_tuple_memory);
		d = ExecEvalExpr(fr->expr_state, econtext, &isnull);
		MemoryContextSwitchTo(old);
		if (!isnull)
			resource = text_to_cstring(DatumGetTextPP(d));
		ResetExprContext(econtext);
		econtext->ecxt_scantuple = NULL;
	}
	PG_FINALLY();
	{
		fr->busy--;
	}
	PG_END_TRY();

	if (resource == NULL)
	{
		char	   *row = fence_row_desc(rel, tuple);

		fence_stats_bump(fr->stats, FSTAT_UNFENCED);
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 row ?
				 errmsg("write to fenced table \"%s\" refused: the resource expression is null for row %s",
						RelationGetRelationName(rel), row) :
				 errmsg("write to fenced table \"%s\" refused: the resource expression is null for the row",
						RelationGetRelationName(rel)),
				 errdetail("The expression is: %s", fr->expression),
				 errhint("A row with no lease name cannot be fenced. Give the columns the expression uses a value, or make it non-null with coalesce()."),
				 errtable(rel)));
	}
	return resource;
}

/*
 * The token this transaction fenced resource with; 40001 if no live fence
 * covers a write of tuple to rel now.
 */
static int64
fence_require(FenceRel *fr, Relation rel, const char *resource,
			  HeapTuple tuple)
{
	int64		token;
	size_t		len = strlen(resource);
	char	   *row;

	if (LeaseFencedInXact(resource, &token))
		return token;

	fence_stats_bump(fr->stats, FSTAT_UNFENCED);
	row = fr->expression != NULL ? fence_row_desc(rel, tuple) : NULL;
	ereport(ERROR,
			(errcode(ERRCODE_T_R_SERIALIZATION_FAILURE),
			 row ?
			 errmsg("write to fenced table \"%s\" refused: row %s needs a live fence on lease \"%s\"",
					RelationGetRelationName(rel), row, resource) :
			 errmsg("write to fenced table \"%s\" refused: it needs a live fence on lease \"%s\"",
					RelationGetRelationName(rel), resource),
			 (len == 0 || len > LOCKCTL_NAME_MAXLEN) ?
			 errdetail("Lease names are 1 to %d bytes long, so no lease of this name can be fenced.",
					   LOCKCTL_NAME_MAXLEN) :
			 errdetail("This transaction holds no fence on that lease, or the lease was released or granted again since it fenced it."),
			 errhint("Call lockctl.fence() with the lease's live token in the same transaction, before the write. If it fails, the lease has moved on: acquire it again and redo the work."),
			 errtable(rel)));
	return 0;					/* not reached */
}

/*
 * With a token column: 40001 if the old row records a higher token than
 * token, the one this transaction fenced the row's resource with.
 */
static void
fence_check_token(FenceRel *fr, Relation rel, HeapTuple oldtuple,
				  const char *resource, int64 token)
{
	Datum		d;
	bool		isnull;
	char	   *row;

	if (fr->token_attnum == InvalidAttrNumber)
		return;
	d = heap_getattr(oldtuple, fr->token_attnum, RelationGetDescr(rel),
					 &isnull);
	if (isnull || DatumGetInt64(d) <= token)
		return;

	/* The row's token may be another role's: it is not shown. */
	fence_stats_bump(fr->stats, FSTAT_STALE);
	row = fence_row_desc(rel, oldtuple);
	ereport(ERROR,
			(errcode(ERRCODE_T_R_SERIALIZATION_FAILURE),
			 row ?
			 errmsg("write to fenced table \"%s\" refused: row %s was written with a newer fencing token",
					RelationGetRelationName(rel), row) :
			 errmsg("write to fenced table \"%s\" refused: the row was written with a newer fencing token",
					RelationGetRelationName(rel)),
			 errdetail("Token column \"%s\" records a token above " INT64_FORMAT ", the token this transaction fenced lease \"%s\" with: a later holder of the lease wrote the row.",
					   fr->token_column, token, resource),
			 errhint("Do not retry with this token: acquire the lease again and redo the work."),
			 errtable(rel)));
}

/*
 * lockctl.fencing_bypass is on: count the write, and log it once per
 * statement and table (always, when fr is NULL).  Returns true.
 */
static bool
fence_note_bypass(FenceStatsEntry *stats, FenceRel *fr, Oid relid,
				  const char *what)
{
	TimestampTz xact = GetCurrentTransactionStartTimestamp();
	CommandId	cid = GetCurrentCommandId(false);
	char	   *nsp;
	char	   *name;

	fence_stats_bump(stats, FSTAT_BYPASSED);
	if (fr != NULL)
	{
		if (fr->bypass_xact == xact && fr->bypass_cid == cid)
			return true;
		fr->bypass_xact = xact;
		fr->bypass_cid = cid;
	}
	nsp = get_namespace_name(get_rel_namespace(relid));
	name = get_rel_name(relid);
	ereport(LOG,
			(errmsg("fencing of table %s bypassed by role \"%s\" for %s",
					quote_qualified_identifier(nsp, name),
					GetUserNameFromId(GetUserId(), false), what),
			 errdetail("\"lockctl.fencing_bypass\" is on: the write is not checked against any lease or token.")));
	return true;
}

/*
 * "(id)=(42)" for tuple of rel, from its primary key, as unique violations
 * show it; NULL when rel has no primary key or the role may not read its
 * columns.  Only used on error paths.
 */
static char *
fence_row_desc(Relation rel, HeapTuple tuple)
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
	return desc;
}

/*
 * lockctl.fence_trigger(): BEFORE INSERT OR UPDATE OR DELETE FOR EACH ROW.
 */
PG_FUNCTION_INFO_V1(lockctl_fence_trigger);
Datum
lockctl_fence_trigger(PG_FUNCTION_ARGS)
{
	TriggerData *td;
	FenceRel   *fr;
	Relation	rel;
	HeapTuple	oldtuple;
	HeapTuple	newtuple;
	char	   *oldres;
	char	   *newres;
	int64		oldtok;
	int64		newtok;
	int			replcol;
	Datum		replval;
	bool		replnull = false;

	if (!CALLED_AS_TRIGGER(fcinfo))
		ereport(ERROR,
				(errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
				 errmsg("lockctl.fence_trigger() was not called by the trigger manager"),
				 errhint("Use lockctl.enable_fencing() to put it on a table.")));
	td = (TriggerData *) fcinfo->context;
	rel = td->tg_relation;

	fr = (FenceRel *) fcinfo->flinfo->fn_extra;
	if (fr == NULL || !fr->valid || fr->relid != RelationGetRelid(rel) ||
		fr->tgoid != td->tg_trigger->tgoid)
		fr = fence_rel_setup(fcinfo, td);

	if (TRIGGER_FIRED_BY_INSERT(td->tg_event))
	{
		newtuple = td->tg_trigtuple;
		if (lockctl_fencing_bypass &&
			fence_note_bypass(fr->stats, fr, RelationGetRelid(rel), "INSERT"))
			return PointerGetDatum(newtuple);
		fence_stats_bump(fr->stats, FSTAT_CHECKED);
		if (!fr->compiled)
			fence_rel_compile(fr, rel);
		newres = fence_row_resource(fr, rel, td->tg_trigslot, newtuple);
		newtok = fence_require(fr, rel, newres, newtuple);
	}
	else if (TRIGGER_FIRED_BY_UPDATE(td->tg_event))
	{
		oldtuple = td->tg_trigtuple;
		newtuple = td->tg_newtuple;
		if (lockctl_fencing_bypass &&
			fence_note_bypass(fr->stats, fr, RelationGetRelid(rel), "UPDATE"))
			return PointerGetDatum(newtuple);
		fence_stats_bump(fr->stats, FSTAT_CHECKED);
		if (!fr->compiled)
			fence_rel_compile(fr, rel);
		oldres = fence_row_resource(fr, rel, td->tg_trigslot, oldtuple);
		oldtok = fence_require(fr, rel, oldres, oldtuple);
		fence_check_token(fr, rel, oldtuple, oldres, oldtok);
		newres = fence_row_resource(fr, rel, td->tg_newslot, newtuple);
		newtok = (newres == oldres || strcmp(newres, oldres) == 0) ? oldtok :
			fence_require(fr, rel, newres, newtuple);
	}
	else
	{
		oldtuple = td->tg_trigtuple;
		if (lockctl_fencing_bypass &&
			fence_note_bypass(fr->stats, fr, RelationGetRelid(rel), "DELETE"))
			return PointerGetDatum(oldtuple);
		fence_stats_bump(fr->stats, FSTAT_CHECKED);
		if (!fr->compiled)
			fence_rel_compile(fr, rel);
		oldres = fence_row_resource(fr, rel, td->tg_trigslot, oldtuple);
		oldtok = fence_require(fr, rel, oldres, oldtuple);
		fence_check_token(fr, rel, oldtuple, oldres, oldtok);
		return PointerGetDatum(oldtuple);
	}

	/* The new row records the token that wrote it. */
	if (fr->token_attnum == InvalidAttrNumber)
		return PointerGetDatum(newtuple);
	{
		bool		isnull;
		Datum		d = heap_getattr(newtuple, fr->token_attnum,
									 RelationGetDescr(rel), &isnull);

		if (!isnull && DatumGetInt64(d) == newtok)
			return PointerGetDatum(newtuple);
	}
	replcol = fr->token_attnum;
	replval = Int64GetDatum(newtok);
	return PointerGetDatum(heap_modify_tuple_by_cols(newtuple,
													 RelationGetDescr(rel),
													 1, &replcol, &replval,
													 &replnull));
}

/* ---------------------------------------------------------------------
 * TRUNCATE
 * ---------------------------------------------------------------------
 */

/*
 * The object access hook: TRUNCATE calls it (OAT_TRUNCATE) for every table
 * it is about to empty, after its own permission checks.
 */
static void
fence_object_access(ObjectAccessType access, Oid classId, Oid objectId,
					int subId, void *arg)
{
	if (prev_object_access_hook)
		prev_object_access_hook(access, classId, objectId, subId, arg);
	if (access == OAT_TRUNCATE && classId == RelationRelationId &&
		IsTransactionState())
		fence_check_truncate(objectId);
}

/*
 * Refuse a TRUNCATE of relid if it is fenced and the fence cannot be
 * checked: see the header.
 */
static void
fence_check_truncate(Oid relid)
{
	Oid			fnoid = fence_trigger_fn(true);
	Relation	tgrel;
	ScanKeyData skey;
	SysScanDesc scan;
	HeapTuple	tup;
	Oid			tgoid = InvalidOid;
	char		tgenabled = TRIGGER_DISABLED;
	char	  **argv = NULL;
	int			nargs = 0;
	FenceArgs	args;
	bool		fires;
	FenceStatsEntry *stats;
	int64		token;
	char	   *relname;

	if (!OidIsValid(fnoid))
		return;

	tgrel = table_open(TriggerRelationId, AccessShareLock);
	ScanKeyInit(&skey, Anum_pg_trigger_tgrelid, BTEqualStrategyNumber,
				F_OIDEQ, ObjectIdGetDatum(relid));
	scan = systable_beginscan(tgrel, TriggerRelidNameIndexId, true, NULL, 1,
							  &skey);
	while ((tup = systable_getnext(scan)) != NULL)
	{
		Form_pg_trigger tg = (Form_pg_trigger) GETSTRUCT(tup);

		if (tg->tgfoid != fnoid)
			continue;
		tgoid = tg->oid;
		tgenabled = tg->tgenabled;
		argv = fence_tuple_args(tup, RelationGetDescr(tgrel), &nargs);
		break;
	}
	systable_endscan(scan);
	table_close(tgrel, AccessShareLock);
	if (!OidIsValid(tgoid))
		return;

	/* Whatever keeps the row trigger from firing lets TRUNCATE through. */
	switch (tgenabled)
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
		return;

	relname = get_rel_name(relid);
	if (!fence_parse_args(nargs, argv, &args))
		ereport(ERROR,
				(errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
				 errmsg("fencing trigger of table \"%s\" has arguments lockctl.fence_trigger() does not understand",
						relname),
				 errhint("Create it with lockctl.enable_fencing().")));

	stats = fence_stats_entry(fence_root_relid(tgoid, relid), true);
	if (lockctl_fencing_bypass)
	{
		(void) fence_note_bypass(stats, NULL, relid, "TRUNCATE");
		return;
	}
	fence_stats_bump(stats, FSTAT_CHECKED);

	if (args.resource != NULL && args.token_column == NULL &&
		LeaseFencedInXact(args.resource, &token))
		return;

	fence_stats_bump(stats, FSTAT_UNFENCED);
	if (args.resource != NULL && args.token_column == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_T_R_SERIALIZATION_FAILURE),
				 errmsg("TRUNCATE of fenced table \"%s\" refused: it needs a live fence on lease \"%s\"",
						relname, args.resource),
				 errdetail("This transaction holds no fence on that lease, or the lease was released or granted again since it fenced it."),
				 errhint("Call lockctl.fence() with the lease's live token in the same transaction, before the TRUNCATE.")));
	ereport(ERROR,
			(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
			 errmsg("TRUNCATE of fenced table \"%s\" refused", relname),
			 args.expression != NULL ?
			 errdetail("Its rows are fenced by a lease each, which TRUNCATE cannot check.") :
			 errdetail("Its token column records the token that wrote each row, which TRUNCATE cannot compare."),
			 errhint("Use DELETE, which checks every row; or, for maintenance, a superuser can set \"lockctl.fencing_bypass\".")));
}
