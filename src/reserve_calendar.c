/*-------------------------------------------------------------------------
 *
 * reserve_calendar.c
 *	  lockctl.reserve_range, and the shape check of a calendar's range holds
 *	  (the rest of calendars is SQL: src/reserve_calendar.sql).
 *
 * reserve_range is a C function (no PL/pgSQL frame, no SET clauses to save
 * and restore on every call, no expressions prepared again in every
 * transaction).  It does what the PL/pgSQL function of the same name did,
 * step for step, with the same messages and SQLSTATEs:
 *  - its arguments are tested in C; only when one is wrong are they checked
 *    again, in the same order, by the SQL helpers that say which
 *    (check_resource, check_range, check_hold_ttl), with search_path fixed
 *    to pg_catalog, pg_temp for them (they have no SET clause of their own);
 *    the ttl's bounds are lockctl_internal.min_hold_ttl() and
 *    max_hold_ttl(), read once per backend and again after any change to
 *    pg_proc;
 *  - then it locks lockctl.range_reservations (ROW EXCLUSIVE, before the
 *    calendar is looked up: see drop_calendar; its OID and hold_id_seq's
 *    are kept in the session, range_oid), and runs its SQL through SPI
 *    with plans prepared once per backend (SPI_keepplan; the plan cache
 *    analyses them again when a table they use changes), but for the
 *    hold's row, which it writes itself when it can (range_insert_direct);
 *  - everything after the argument tests runs as the function's owner (the
 *    extension's owner: what SECURITY DEFINER did) in a restricted security
 *    context (SECURITY_RESTRICTED_OPERATION), as claim_request does
 *    (src/request.c), and the caller's identity comes back on error too.
 *    A hold still belongs to the role the call acts for
 *    (ReserveActingRole: SET ROLE's, else the session user).
 * The kept plans are analysed under the caller's search_path (whenever it
 * changes), so their SQL names every object with its schema and writes
 * every operator as OPERATOR(pg_catalog.x): nothing a caller plants in a
 * schema of its path, or in pg_temp, can be picked.
 *
 * lockctl.range_reservations keeps in a CHECK that a hold's range is '[)'
 * (start included, end excluded), not empty and finite at both ends: what
 * the exclusion constraint and the overlap counts rely on.  PostgreSQL
 * rebuilds a table's CHECK expressions from their stored text
 * (stringToNode) in every statement that writes the table, so the cost of
 * a CHECK grows with the size of its expression tree: written with
 * isempty, lower_inc, upper_inc, lower, upper and isfinite, the range's
 * part cost every reserve_range and confirm about 50,000 instructions
 * (parsed, prepared and run in each).  One call of is_range_hold_row says
 * the same thing in one node.
 *
 * src/reserve_calendar.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/detoast.h"
#include "access/genam.h"
#include "access/htup_details.h"
#include "access/stratnum.h"
#include "access/table.h"
#include "access/tableam.h"
#include "access/xact.h"
#include "catalog/pg_index.h"
#include "catalog/pg_opfamily.h"
#include "catalog/namespace.h"
#include "catalog/objectaccess.h"
#include "catalog/pg_enum.h"
#include "catalog/pg_type.h"
#include "executor/executor.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "miscadmin.h"
#include "nodes/makefuncs.h"
#include "storage/lmgr.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/inval.h"
#include "utils/lsyscache.h"
#include "utils/fmgroids.h"
#include "utils/rangetypes.h"
#include "utils/rel.h"
#include "utils/snapmgr.h"
#include "utils/syscache.h"
#include "utils/timestamp.h"
#include "utils/typcache.h"
#include "utils/acl.h"

#include "direct_write.h"
#include "lockctl.h"
#include "lease_token.h"
#include "reserve.h"

/*
 * Whether range r (a tstzrange) is not empty, includes its start, excludes
 * its end, and both ends are finite times.
 */
static bool
range_is_bounded(RangeType *r, TypeCacheEntry *typcache)
{
	RangeBound	lower;
	RangeBound	upper;
	bool		empty;

	range_deserialize(typcache, r, &lower, &upper, &empty);
	/* tstzrange's bounds are timestamptz: int64 by value. */
	return !empty &&
		lower.inclusive && !upper.inclusive &&
		!lower.infinite && !upper.infinite &&
		!TIMESTAMP_NOT_FINITE(DatumGetTimestampTz(lower.val)) &&
		!TIMESTAMP_NOT_FINITE(DatumGetTimestampTz(upper.val));
}

/*
 * lockctl_internal.is_range_hold_row(status, finished, during) returns
 * boolean: range_reservations_state_check whole, in one node: finished is
 * set exactly when the hold is over (status other than 'held'), and the
 * range is bounded (range_is_bounded).  NULL when status or during
 * is (both columns are NOT NULL).
 */
PG_FUNCTION_INFO_V1(lockctl_is_range_hold_row);
Datum
lockctl_is_range_hold_row(PG_FUNCTION_ARGS)
{
	if (PG_ARGISNULL(0) || PG_ARGISNULL(2))
		PG_RETURN_NULL();
	if (ReserveStatusIsHeld(PG_GETARG_OID(0)) != PG_ARGISNULL(1))
		PG_RETURN_BOOL(false);
	{
		RangeType  *r = PG_GETARG_RANGE_P(2);

		PG_RETURN_BOOL(range_is_bounded(r, range_get_typcache(fcinfo, RangeTypeGetOid(r))));
	}
}

/* ------------------------------------------------------------------------
 * lockctl.reserve_range
 * ------------------------------------------------------------------------
 */

/* Where the SQL helpers of the argument checks run (they have no SET). */
#define RANGE_SEARCH_PATH	"pg_catalog, pg_temp"

/*
 * The SQL of reserve_range, prepared once per backend (SPI_keepplan), each
 * the statement of the PL/pgSQL function it replaces.  Every name has its
 * schema and every operator is OPERATOR(pg_catalog.x): the plan cache
 * analyses a query again under the search_path in force when the path or
 * a table changed, and that path is the caller's.
 */
typedef enum RangePlan
{
	RANGE_PLAN_CALENDAR,		/* the calendar of a name: id, capacity */
	RANGE_PLAN_LOCK,			/* capacity k > 1: lock the calendar row */
	RANGE_PLAN_KEYED,			/* the hold a key made: id, during */
	RANGE_PLAN_PEAK,			/* capacity k > 1: the most holds at an instant */
	RANGE_PLAN_INSERT,			/* the hold */
	RANGE_NPLANS
} RangePlan;

static const char *const range_plan_sql[RANGE_NPLANS] = {
	/* $1 resource */
	"SELECT c.id, c.capacity FROM lockctl.calendars AS c"
	" WHERE c.resource OPERATOR(pg_catalog.=) $1",
	/* $1 calendar */
	"SELECT FROM lockctl.calendars AS c"
	" WHERE c.id OPERATOR(pg_catalog.=) $1 FOR NO KEY UPDATE",
	/* $1 calendar, $2 role, $3 key */
	"SELECT r.id, r.during FROM lockctl.range_reservations AS r"
	" WHERE r.calendar_id OPERATOR(pg_catalog.=) $1"
	"   AND r.taken_by OPERATOR(pg_catalog.=) $2"
	"   AND r.idempotency_key OPERATOR(pg_catalog.=) $3",
	/* $1 calendar, $2 during */
	"SELECT lockctl_internal.range_peak($1, $2)",

	/*
	 * No target: the exclusion constraint (capacity 1) and the idempotency
	 * index are both arbiters.  An overlapping hold in flight is waited
	 * for: if it commits, this one is not taken.
	 */
	/* $1 id, $2 calendar, $3 during, $4 lane, $5 holder, $6 role, */
	/* $7 created, $8 expires, $9 key */
	"INSERT INTO lockctl.range_reservations AS r"
	"       (id, calendar_id, during, lane, holder, taken_by, created, expires, idempotency_key)"
	" VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)"
	" ON CONFLICT DO NOTHING"
};

static const int range_plan_nargs[RANGE_NPLANS] = {1, 1, 3, 2, 9};
static const Oid range_plan_argtypes[RANGE_NPLANS][9] = {
	{TEXTOID},
	{INT8OID},
	{INT8OID, NAMEOID, TEXTOID},
	{INT8OID, TSTZRANGEOID},
	{INT8OID, INT8OID, TSTZRANGEOID, INT8OID, TEXTOID, NAMEOID,
	TIMESTAMPTZOID, TIMESTAMPTZOID, TEXTOID},
};

static SPIPlanPtr range_plans[RANGE_NPLANS];

/*
 * Run plan which (preparing and keeping it at first use) with the given
 * parameters; between SPI_connect and SPI_finish.  Returns SPI_processed;
 * with ncols > 0 and a row found, row and rownulls get its first ncols
 * columns (valid until SPI_finish).
 */
static uint64
range_run(RangePlan which, Datum *args, const char *argnulls, int ncols,
		  Datum *row, bool *rownulls)
{
	int			rc;
	int			i;

	if (range_plans[which] == NULL)
	{
		/* a generic plan from the start: the parameters never change its shape */
		SPIPlanPtr	plan = SPI_prepare_cursor(range_plan_sql[which],
											  range_plan_nargs[which],
											  (Oid *) range_plan_argtypes[which],
											  CURSOR_OPT_GENERIC_PLAN);

		if (plan == NULL)
			elog(ERROR, "SPI_prepare failed for \"%s\": %s",
				 range_plan_sql[which], SPI_result_code_string(SPI_result));
		if (SPI_keepplan(plan) != 0)
			elog(ERROR, "SPI_keepplan failed");
		range_plans[which] = plan;
	}
	rc = SPI_execute_plan(range_plans[which], args, argnulls, false,
						  ncols > 0 ? 1 : 0);
	if (rc < 0)
		elog(ERROR, "SPI_execute_plan failed for \"%s\": %s",
			 range_plan_sql[which], SPI_result_code_string(rc));
	if (ncols > 0 && SPI_processed > 0)
		for (i = 0; i < ncols; i++)
			row[i] = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc,
								   i + 1, &rownulls[i]);
	return SPI_processed;
}

/*
 * The bounds of a hold's ttl: lockctl_internal.min_hold_ttl() and
 * max_hold_ttl(), where they are defined, read at first use and again
 * after any change to pg_proc (lockctl_proc_gen).  Between SPI_connect and
 * SPI_finish, as the extension's owner.
 */
static Interval range_ttl_min;
static Interval range_ttl_max;
static uint64 range_ttl_read = 0;	/* lockctl_proc_gen() when they were read */

static void
range_ttl_bounds(void)
{
	uint64		gen = lockctl_proc_gen();
	bool		isnull[2];
	Datum		d[2];
	int			i;

	if (range_ttl_read == gen)
		return;
	if (SPI_execute("SELECT lockctl_internal.min_hold_ttl(), lockctl_internal.max_hold_ttl()",
					true, 1) != SPI_OK_SELECT || SPI_processed != 1)
		elog(ERROR, "lockctl.reserve_range: cannot read the bounds of a hold's ttl");
	for (i = 0; i < 2; i++)
	{
		d[i] = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc,
							 i + 1, &isnull[i]);
		if (isnull[i])
			elog(ERROR, "lockctl.reserve_range: a bound of a hold's ttl is NULL");
	}
	range_ttl_min = *DatumGetIntervalP(d[0]);
	range_ttl_max = *DatumGetIntervalP(d[1]);
	/* an invalidation that came meanwhile makes the next call read again */
	range_ttl_read = gen;
}

/* Whether text d is a name: 1 to LOCKCTL_NAME_MAXLEN bytes. */
static bool
range_name_ok(Datum d)
{
	Size		len = toast_raw_datum_size(d) - VARHDRSZ;

	return len >= 1 && len <= LOCKCTL_NAME_MAXLEN;
}

/*
 * Whether every argument of reserve_range is right: the one test of the
 * hot path (range_args_explain says which is not).
 */
static bool
range_args_ok(FunctionCallInfo fcinfo, TypeCacheEntry *typcache)
{
	Datum		ttl;

	if (PG_ARGISNULL(0) || !range_name_ok(PG_GETARG_DATUM(0)))
		return false;
	if (PG_ARGISNULL(1) || !range_is_bounded(PG_GETARG_RANGE_P(1), typcache))
		return false;
	if (!PG_ARGISNULL(2) && !range_name_ok(PG_GETARG_DATUM(2)))
		return false;
	if (PG_ARGISNULL(3))
		return false;
	ttl = PG_GETARG_DATUM(3);
	if (DatumGetBool(DirectFunctionCall2(interval_lt, ttl, IntervalPGetDatum(&range_ttl_min))) ||
		DatumGetBool(DirectFunctionCall2(interval_gt, ttl, IntervalPGetDatum(&range_ttl_max))))
		return false;
	if (!PG_ARGISNULL(4) && !range_name_ok(PG_GETARG_DATUM(4)))
		return false;
	return true;
}

/* Run a check of an argument, sql with one parameter $1 of type argtype. */
static void
range_check_sql(const char *sql, Oid argtype, FunctionCallInfo fcinfo, int argno)
{
	Datum		arg = PG_ARGISNULL(argno) ? (Datum) 0 : PG_GETARG_DATUM(argno);
	char		argnull = PG_ARGISNULL(argno) ? 'n' : ' ';

	if (SPI_execute_with_args(sql, 1, &argtype, &arg, &argnull, false, 0) < 0)
		elog(ERROR, "SPI_execute_with_args failed for \"%s\"", sql);
}

/* holder or idempotency_key (argument argno): empty or too long */
static void
range_check_name(FunctionCallInfo fcinfo, int argno, const char *argname,
				 const char *empty_hint)
{
	Size		len;

	if (PG_ARGISNULL(argno))
		return;
	len = toast_raw_datum_size(PG_GETARG_DATUM(argno)) - VARHDRSZ;
	if (len == 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("%s of lockctl.reserve_range must not be empty", argname),
				 empty_hint ? errhint("%s", empty_hint) : 0));
	if (len > LOCKCTL_NAME_MAXLEN)
		ereport(ERROR,
				(errcode(ERRCODE_NAME_TOO_LONG),
				 errmsg("%s of lockctl.reserve_range is too long", argname),
				 errdetail("It is %zu bytes long; the limit is %d bytes.",
						   len, LOCKCTL_NAME_MAXLEN)));
}

/*
 * Some argument of reserve_range is wrong: raise the error that says which,
 * checking them in order, resource, during and ttl by the SQL helpers that
 * every function of reservations uses.  They run with search_path set to
 * pg_catalog, pg_temp: they have no SET clause, and the caller's path must
 * not reach them (they run as the extension's owner).
 */
static void
range_args_explain(FunctionCallInfo fcinfo, TypeCacheEntry *typcache)
{
	int			save_nestlevel = NewGUCNestLevel();

	(void) set_config_option("search_path", RANGE_SEARCH_PATH,
							 PGC_USERSET, PGC_S_SESSION,
							 GUC_ACTION_SAVE, true, 0, false);
	range_check_sql("SELECT lockctl_internal.check_resource('reserve_range', $1)",
					TEXTOID, fcinfo, 0);
	if (PG_ARGISNULL(1) || !range_is_bounded(PG_GETARG_RANGE_P(1), typcache))
		range_check_sql("SELECT lockctl_internal.check_range('reserve_range', 'during', $1)",
						TSTZRANGEOID, fcinfo, 1);
	range_check_name(fcinfo, 2, "holder", "Pass NULL for a hold without a holder.");
	range_check_sql("SELECT lockctl_internal.check_hold_ttl('reserve_range', $1)",
					INTERVALOID, fcinfo, 3);
	range_check_name(fcinfo, 4, "idempotency_key", NULL);
	AtEOXact_GUC(true, save_nestlevel);
}

/*
 * No calendar is named resource: say whether a pool is, and raise.
 */
static void
range_no_calendar(Datum resource)
{
	Oid			argtype = TEXTOID;
	char	   *name = TextDatumGetCString(resource);

	if (SPI_execute_with_args("SELECT FROM lockctl.pools AS p"
							  " WHERE p.resource OPERATOR(pg_catalog.=) $1",
							  1, &argtype, &resource, NULL, true, 1) != SPI_OK_SELECT)
		elog(ERROR, "lockctl.reserve_range: cannot look for pool \"%s\"", name);
	if (SPI_processed > 0)
		ereport(ERROR,
				(errcode(ERRCODE_WRONG_OBJECT_TYPE),
				 errmsg("\"%s\" is a pool, not a calendar", name),
				 errhint("Take units of a pool with lockctl.reserve.")));
	ereport(ERROR,
			(errcode(ERRCODE_UNDEFINED_OBJECT),
			 errmsg("calendar \"%s\" does not exist", name)));
}

/*
 * The calendar named resource, read directly through its unique index
 * calendars_resource_key (no executor, no plan): *cal and *capacity, and
 * 1; 0 when there is none; -1 when the table or the index is not as
 * installed (an ordinary table with bigint id, text resource and integer
 * capacity; a valid unique btree index on resource alone, with text's
 * operators, no expression, no predicate), and the caller runs the SQL.
 * As SPI would for the SELECT: the command counter is advanced and a new
 * snapshot taken (a calendar created earlier in the statement is seen).
 */
static int
range_calendar_direct(Datum resource, int64 *cal, int32 *capacity)
{
	Oid			relid;
	Oid			idxid;
	Relation	rel;
	Relation	idx;
	TupleDesc	desc;
	AttrNumber	att_id = InvalidAttrNumber;
	AttrNumber	att_resource = InvalidAttrNumber;
	AttrNumber	att_capacity = InvalidAttrNumber;
	bool		plain;
	int			i;
	ScanKeyData key;
	SysScanDesc scan;
	HeapTuple	tup;
	int			found = 0;

	relid = RangeVarGetRelidExtended(makeRangeVar("lockctl", "calendars", -1),
									 AccessShareLock, RVR_MISSING_OK, NULL, NULL);
	if (!OidIsValid(relid))
		return -1;
	idxid = get_relname_relid("calendars_resource_key", get_rel_namespace(relid));
	if (!OidIsValid(idxid))
		return -1;
	rel = table_open(relid, NoLock);
	desc = RelationGetDescr(rel);
	for (i = 0; i < desc->natts; i++)
	{
		Form_pg_attribute att = TupleDescAttr(desc, i);

		if (att->attisdropped)
			continue;
		if (strcmp(NameStr(att->attname), "id") == 0 && att->atttypid == INT8OID)
			att_id = att->attnum;
		else if (strcmp(NameStr(att->attname), "resource") == 0 && att->atttypid == TEXTOID)
			att_resource = att->attnum;
		else if (strcmp(NameStr(att->attname), "capacity") == 0 && att->atttypid == INT4OID)
			att_capacity = att->attnum;
	}
	idx = index_open(idxid, AccessShareLock);
	plain = rel->rd_rel->relkind == RELKIND_RELATION &&
		!rel->rd_rel->relrowsecurity &&
		att_id != InvalidAttrNumber && att_resource != InvalidAttrNumber &&
		att_capacity != InvalidAttrNumber &&
		idx->rd_index->indrelid == relid &&
		lockctl_direct_index_plain(idx->rd_indextuple, false) &&
		idx->rd_index->indisunique &&
		idx->rd_index->indnatts == 1 &&
		idx->rd_index->indkey.values[0] == att_resource &&
		idx->rd_opfamily[0] == TEXT_BTREE_FAM_OID;
	index_close(idx, NoLock);
	if (!plain)
	{
		table_close(rel, NoLock);
		return -1;
	}

	CommandCounterIncrement();
	PushActiveSnapshot(GetTransactionSnapshot());
	UpdateActiveSnapshotCommandId();
	/* keyed by the table's column number, as systable_beginscan wants */
	ScanKeyInit(&key, att_resource, BTEqualStrategyNumber, F_TEXTEQ, resource);
	key.sk_collation = TupleDescAttr(desc, att_resource - 1)->attcollation;
	scan = systable_beginscan(rel, idxid, true, GetActiveSnapshot(), 1, &key);
	tup = systable_getnext(scan);
	if (HeapTupleIsValid(tup))
	{
		bool		isnull;

		*cal = DatumGetInt64(heap_getattr(tup, att_id, desc, &isnull));
		if (!isnull)
			*capacity = DatumGetInt32(heap_getattr(tup, att_capacity, desc, &isnull));
		if (isnull)
			elog(ERROR, "calendar \"%s\" has a NULL id or capacity",
				 TextDatumGetCString(resource));
		found = 1;
	}
	systable_endscan(scan);
	PopActiveSnapshot();
	table_close(rel, NoLock);
	return found;
}

/*
 * The hold's row, written without the executor: what the INSERT ... ON
 * CONFLICT DO NOTHING of RANGE_PLAN_INSERT does, less its first step.
 * That INSERT first searches every arbiter index for a conflict
 * (ExecCheckIndexConstraints: a GiST scan of range_reservations_no_overlap
 * and a btree probe of the primary key, about a tenth of a call), then
 * inserts the row speculatively, then searches again while inserting its
 * index entries, and takes the row back if that search finds a conflict.
 * The second search is the one that decides (the first only saves a
 * wasted insertion when a conflict is likely, and waits for a taker in
 * flight); here the row goes in speculatively at once.  When the second
 * search finds a conflict, the row is taken back, as the executor does,
 * and the caller runs the INSERT, whose first search waits for the
 * conflicting transaction and decides: the hold is taken or not exactly as
 * with the INSERT alone.  No statement, no plan, no executor start and
 * end either.
 *
 * Only for the table as installed (range_insert_shape): its eleven
 * columns by name and type, a plain table with no trigger, no row
 * security, no generated column, no deferrable constraint; anything else,
 * or no INSERT privilege, and the caller runs the INSERT.
 */
typedef enum RangeCol
{
	RCOL_ID,
	RCOL_CALENDAR,
	RCOL_DURING,
	RCOL_LANE,
	RCOL_HOLDER,
	RCOL_TAKEN_BY,
	RCOL_CREATED,
	RCOL_EXPIRES,
	RCOL_KEY,
	RCOL_STATUS,				/* 'held' */
	RCOL_FINISHED,				/* NULL */
	RCOL_N
} RangeCol;

/* Their names and types; the first nine are RANGE_PLAN_INSERT's $1 to $9. */
static const char *const range_col_name[RCOL_N] = {
	"id", "calendar_id", "during", "lane", "holder", "taken_by", "created",
	"expires", "idempotency_key", "status", "finished"
};
static const Oid range_col_type[RCOL_N] = {
	INT8OID, INT8OID, TSTZRANGEOID, INT8OID, TEXTOID, NAMEOID,
	TIMESTAMPTZOID, TIMESTAMPTZOID, TEXTOID, InvalidOid /* an enum */ ,
	TIMESTAMPTZOID
};

/*
 * What range_insert_shape found for the table of OID relid, kept until a
 * relcache invalidation of that table (any ALTER TABLE, CREATE or DROP
 * INDEX, DROP, VACUUM, ...), of one of its indexes, or of every relation;
 * with it, the table's CHECK expressions and the IndexInfos of its
 * indexes, prepared once (direct_write.c: about 58,000 instructions that
 * the executor spends in every statement that writes the table).
 */
typedef struct RangeShape
{
	bool		valid;
	Oid			relid;
	bool		direct;			/* as installed: range_insert_direct may write */
	AttrNumber	attnum[RCOL_N];
	Oid			held;			/* the enum value 'held' of status's type */
	LockctlKeptWrite kept;
} RangeShape;

static RangeShape range_shape;

static void
range_shape_inval(Datum arg, Oid relid)
{
	if (!OidIsValid(relid) || relid == range_shape.relid ||
		lockctl_kept_index_of(&range_shape.kept, relid))
		range_shape.valid = false;
}

/*
 * Whether range_insert_direct may write the table rel: see above.  Read
 * once per backend and again after an invalidation of the table.
 */
static bool
range_insert_shape(Relation rel)
{
	static bool registered = false;
	TupleDesc	desc = RelationGetDescr(rel);
	int			ncols = 0;
	int			i;
	int			c;

	if (!registered)
	{
		CacheRegisterRelcacheCallback(range_shape_inval, (Datum) 0);
		registered = true;
	}
	if (range_shape.valid && range_shape.relid == RelationGetRelid(rel))
		return range_shape.direct;

	lockctl_kept_reset(&range_shape.kept, &range_shape.valid);
	range_shape.relid = RelationGetRelid(rel);
	range_shape.direct = false;
	range_shape.held = InvalidOid;
	for (c = 0; c < RCOL_N; c++)
		range_shape.attnum[c] = InvalidAttrNumber;
	/* an invalidation that comes while this runs makes the next call look again */
	range_shape.valid = true;

	if (rel->rd_rel->relkind != RELKIND_RELATION || rel->rd_rel->relispartition ||
		rel->rd_rel->relrowsecurity || rel->trigdesc != NULL ||
		rel->rd_rules != NULL ||
		(desc->constr != NULL && desc->constr->has_generated_stored))
		return false;
	for (i = 0; i < desc->natts; i++)
	{
		Form_pg_attribute att = TupleDescAttr(desc, i);

		if (att->attisdropped)
			continue;
		ncols++;
		for (c = 0; c < RCOL_N; c++)
			if (strcmp(NameStr(att->attname), range_col_name[c]) == 0)
				break;
		if (c == RCOL_N)
			return false;
		if (c == RCOL_STATUS)
		{
			HeapTuple	tup;

			if (get_typtype(att->atttypid) != TYPTYPE_ENUM)
				return false;
			tup = SearchSysCache2(ENUMTYPOIDNAME, ObjectIdGetDatum(att->atttypid),
								  CStringGetDatum("held"));
			if (!HeapTupleIsValid(tup))
				return false;
			range_shape.held = ((Form_pg_enum) GETSTRUCT(tup))->oid;
			ReleaseSysCache(tup);
		}
		else if (att->atttypid != range_col_type[c])
			return false;
		range_shape.attnum[c] = att->attnum;
	}
	if (ncols != RCOL_N)
		return false;

	/* no deferred index: see lockctl_kept_immediate */
	if (!lockctl_kept_immediate(rel))
		return false;
	range_shape.direct = true;
	return true;
}

/*
 * Insert the hold (args and argnulls: RANGE_PLAN_INSERT's parameters) into
 * lockctl.range_reservations, of OID relid, which the caller has locked
 * ROW EXCLUSIVE.  Returns 1 when the row is in; 0 when an arbiter index
 * found a conflict and the row was taken back; -1 when the table is not as
 * installed or the current user may not insert.  After 0 and -1, the
 * caller runs the INSERT.  Between SPI_connect and SPI_finish.
 */
static int
range_insert_direct(Oid relid, Datum *args, const char *argnulls)
{
	Relation	rel;
	LockctlDirectWrite w;
	TupleTableSlot *slot;
	TransactionId xid;
	uint32		token;
	bool		conflict = false;
	List	   *recheck;
	int			c;

	if (object_aclcheck(RelationRelationId, relid, GetUserId(), ACL_INSERT) != ACLCHECK_OK)
		return -1;
	rel = table_open(relid, NoLock);
	if (!range_insert_shape(rel))
	{
		table_close(rel, NoLock);
		return -1;
	}

	/* As SPI would for the INSERT: a command of its own, a new snapshot. */
	CommandCounterIncrement();
	PushActiveSnapshot(GetTransactionSnapshot());
	UpdateActiveSnapshotCommandId();

	/* the CHECKs and the indexes, kept (direct_write.c) */
	lockctl_write_begin(&w, rel, &range_shape.kept, table_slot_callbacks(rel));
	slot = w.slot;
	for (c = 0; c < RCOL_STATUS; c++)
	{
		slot->tts_values[range_shape.attnum[c] - 1] = args[c];
		slot->tts_isnull[range_shape.attnum[c] - 1] = argnulls[c] == 'n';
	}
	slot->tts_values[range_shape.attnum[RCOL_STATUS] - 1] = ObjectIdGetDatum(range_shape.held);
	slot->tts_isnull[range_shape.attnum[RCOL_STATUS] - 1] = false;
	ExecStoreVirtualTuple(slot);

	/* NOT NULL and CHECK (range_reservations_state_check) */
	lockctl_write_constraints(&w, &range_shape.kept);
	/* ExecOpenIndices(rri, true), for the indexes this row enters */
	lockctl_write_open_indexes(&w, &range_shape.kept);

	/* What ExecInsert does for ON CONFLICT DO NOTHING, from the insertion on. */
	xid = GetCurrentTransactionId();
	token = SpeculativeInsertionLockAcquire(xid);
	table_tuple_insert_speculative(rel, slot, w.estate->es_output_cid, 0, NULL, token);
	/* every unique and exclusion index an arbiter, as with no conflict target */
	recheck = ExecInsertIndexTuples(w.rri, slot, w.estate, false, true, &conflict, NIL, false);
	table_tuple_complete_speculative(rel, slot, token, !conflict);
	SpeculativeInsertionLockRelease(xid);
	/*
	 * Listed: the indexes that found a conflict (then conflict is set: they
	 * are all immediate) and those of deferred constraints, which
	 * range_insert_shape allows none of.
	 */
	if (recheck != NIL && !conflict)
		elog(ERROR, "lockctl.reserve_range: a constraint of lockctl.range_reservations is deferred");

	lockctl_write_end(&w);
	PopActiveSnapshot();
	table_close(rel, NoLock);
	return conflict ? 0 : 1;
}

/*
 * The OIDs of lockctl.range_reservations and lockctl.hold_id_seq, looked
 * up by name in schema lockctl (whatever the search_path) at first use and
 * again after any invalidation that may change what the names say: of a
 * pg_class row of either name in that schema (CREATE, DROP, RENAME, SET
 * SCHEMA of a relation, DROP EXTENSION and CREATE EXTENSION among them;
 * each sends one for the name it had and the name it has), of any schema
 * (ALTER SCHEMA lockctl RENAME, ...), or of every catalog cache.  The
 * name look-up cost about 1,500 instructions each, per call.  What
 * RangeVarGetRelidExtended does besides is still done in every call, in
 * its order: the USAGE check on schema lockctl (as the current user, the
 * extension's owner in reserve_range), the namespace search hook, then the
 * lock; and when an invalidation came with the lock, the name is looked up
 * again, as RangeVarGetRelidExtended does.  A kept OID is as current as a
 * look-up in the catalog caches at the same moment would be: both follow
 * the same invalidations.
 */
typedef struct RangeOid
{
	const char *name;
	Oid			relid;
	Oid			nsp;
	uint32		hash;			/* the RELNAMENSP hash value of its name */
	uint64		gen;			/* range_oid_gen when looked up, 0: never */
} RangeOid;

static RangeOid range_oid_table = {"range_reservations"};
static RangeOid range_oid_seq = {"hold_id_seq"};
static uint64 range_oid_gen = 1;
static bool range_oid_looking = false;	/* a look-up is under way */

static void
range_oid_inval_rel(Datum arg, int cacheid, uint32 hashvalue)
{
	/* during a look-up, the hash value to match is not known yet */
	if (hashvalue == 0 || range_oid_looking ||
		hashvalue == range_oid_table.hash || hashvalue == range_oid_seq.hash)
		range_oid_gen++;
}

static void
range_oid_inval_nsp(Datum arg, int cacheid, uint32 hashvalue)
{
	range_oid_gen++;
}

/*
 * What RangeVarGetRelidExtended(makeRangeVar("lockctl", ro->name, -1),
 * lockmode, 0, NULL, NULL) returns, from ro when nothing has changed.
 */
static Oid
range_oid(RangeOid *ro, LOCKMODE lockmode)
{
	static bool registered = false;
	Oid			relid = InvalidOid;
	Oid			found;
	uint64		gen;

	if (!registered)
	{
		CacheRegisterSyscacheCallback(RELNAMENSP, range_oid_inval_rel, (Datum) 0);
		CacheRegisterSyscacheCallback(NAMESPACEOID, range_oid_inval_nsp, (Datum) 0);
		registered = true;
	}
	if (ro->gen == range_oid_gen)
	{
		/* what LookupExplicitNamespace does for an explicit schema */
		AclResult	aclresult = object_aclcheck(NamespaceRelationId, ro->nsp,
												GetUserId(), ACL_USAGE);

		if (aclresult != ACLCHECK_OK)
			aclcheck_error(aclresult, OBJECT_SCHEMA, "lockctl");
		InvokeNamespaceSearchHook(ro->nsp, true);
		relid = ro->relid;
		if (lockmode == NoLock)
			return relid;
		LockRelationOid(relid, lockmode);
		if (ro->gen == range_oid_gen)
			return relid;
	}

	/* an error leaves range_oid_looking set: only more look-ups follow */
	gen = range_oid_gen;
	range_oid_looking = true;
	found = RangeVarGetRelidExtended(makeRangeVar("lockctl", (char *) ro->name, -1),
									 lockmode, 0, NULL, NULL);
	/* locked twice when found again: both are released at the transaction's end */
	if (OidIsValid(relid) && relid != found)
		UnlockRelationOid(relid, lockmode);
	ro->relid = found;
	ro->nsp = get_rel_namespace(found);
	ro->hash = GetSysCacheHashValue2(RELNAMENSP, CStringGetDatum(ro->name),
									 ObjectIdGetDatum(ro->nsp));
	ro->gen = gen;
	range_oid_looking = false;
	return found;
}

/*
 * The hold that key made on calendar cal for role, if any, into *id; 22023
 * if it is for another range than during.
 */
static bool
range_keyed(int64 cal, Datum role, Datum key, Datum resource, Datum during,
			TypeCacheEntry *typcache, int64 *id)
{
	Datum		args[3];
	Datum		row[2];
	bool		rownulls[2];

	args[0] = Int64GetDatum(cal);
	args[1] = role;
	args[2] = key;
	if (range_run(RANGE_PLAN_KEYED, args, NULL, 2, row, rownulls) == 0)
		return false;
	if (range_ne_internal(typcache, DatumGetRangeTypeP(row[1]),
						  DatumGetRangeTypeP(during)))
	{
		Oid			out;
		bool		isvarlena;

		getTypeOutputInfo(TSTZRANGEOID, &out, &isvarlena);
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("idempotency key \"%s\" was used for another range on calendar \"%s\"",
						TextDatumGetCString(key), TextDatumGetCString(resource)),
				 errdetail("Hold " INT64_FORMAT " is for %s; this call asked for %s.",
						   DatumGetInt64(row[0]), OidOutputFunctionCall(out, row[1]),
						   OidOutputFunctionCall(out, during))));
	}
	*id = DatumGetInt64(row[0]);
	return true;
}

/*
 * The work of reserve_range, between SPI_connect and SPI_finish, as the
 * extension's owner.  Returns whether a hold was taken (or found by its
 * key), its id in *result.  Not inlined: its locals would live across
 * lockctl_reserve_range's setjmp.
 */
static pg_noinline bool
range_reserve(FunctionCallInfo fcinfo, TypeCacheEntry *typcache, int64 *result)
{
	Datum		resource;
	Datum		during;
	Datum		key;
	bool		keyed = !PG_ARGISNULL(4);
	Datum		args[9];
	char		argnulls[9];
	Datum		row[2];
	bool		rownulls[2];
	int64		cal;
	int32		capacity;
	Name		role;
	int64		id;
	TimestampTz now;
	Oid			relid;

	range_ttl_bounds();
	if (!range_args_ok(fcinfo, typcache))
		range_args_explain(fcinfo, typcache);
	resource = PG_GETARG_DATUM(0);
	during = PointerGetDatum(PG_GETARG_RANGE_P(1));
	key = keyed ? PG_GETARG_DATUM(4) : (Datum) 0;

	/*
	 * Before the calendar is looked up: a drop_calendar in flight is waited
	 * for (and the calendar is then gone), or waits for this transaction.
	 */
	relid = range_oid(&range_oid_table, RowExclusiveLock);
	switch (range_calendar_direct(resource, &cal, &capacity))
	{
		case 1:
			break;
		case 0:
			range_no_calendar(resource);
			break;
		default:
			args[0] = resource;
			if (range_run(RANGE_PLAN_CALENDAR, args, NULL, 2, row, rownulls) == 0)
				range_no_calendar(resource);
			cal = DatumGetInt64(row[0]);
			capacity = DatumGetInt32(row[1]);
			break;
	}

	role = (Name) palloc0(NAMEDATALEN);
	namestrcpy(role, GetUserNameFromId(ReserveActingRole(), false));

	/*
	 * With a cap set, the role's caps lock before the calendar's row, the
	 * order every reserve takes them in (src/reserve_caps.c).
	 */
	if (ReserveRoleCapsOn())
		(void) ReserveLockRoleCaps(NameStr(*role));

	/*
	 * Capacity k > 1: one taker at a time (the count below must see every
	 * hold taken before it).  The capacity never changes, so reading it
	 * unlocked is exact.
	 */
	if (capacity > 1)
	{
		args[0] = Int64GetDatum(cal);
		(void) range_run(RANGE_PLAN_LOCK, args, NULL, 0, NULL, NULL);
	}

	/* A retry with the same key gets the hold the first call made. */
	if (keyed && range_keyed(cal, NameGetDatum(role), key, resource, during,
							 typcache, result))
		return true;

	if (ReserveRoleCapsOn())
		(void) ReserveCheckRoleCaps(NameStr(*role), 1);	/* kept until the end */

	id = LeaseEraNextval(range_oid(&range_oid_seq, NoLock));
	if (capacity > 1)
	{
		/* The calendar row is ours: count, then insert. */
		args[0] = Int64GetDatum(cal);
		args[1] = during;
		if (range_run(RANGE_PLAN_PEAK, args, NULL, 1, row, rownulls) == 0 ||
			rownulls[0])
			elog(ERROR, "lockctl_internal.range_peak returned no count");
		if (DatumGetInt64(row[0]) >= capacity)
			return false;
	}

	now = GetCurrentTimestamp();
	memset(argnulls, ' ', sizeof(argnulls));
	args[0] = Int64GetDatum(id);
	args[1] = Int64GetDatum(cal);
	args[2] = during;
	args[3] = Int64GetDatum(capacity == 1 ? 0 : id);
	args[4] = PG_ARGISNULL(2) ? (Datum) 0 : PG_GETARG_DATUM(2);
	argnulls[4] = PG_ARGISNULL(2) ? 'n' : ' ';
	args[5] = NameGetDatum(role);
	args[6] = TimestampTzGetDatum(now);
	args[7] = DirectFunctionCall2(timestamptz_pl_interval,
								  TimestampTzGetDatum(now), PG_GETARG_DATUM(3));
	args[8] = key;
	argnulls[8] = keyed ? ' ' : 'n';
	/* The INSERT only when the row could not go in directly (see above). */
	if (range_insert_direct(relid, args, argnulls) == 1 ||
		range_run(RANGE_PLAN_INSERT, args, argnulls, 0, NULL, NULL) > 0)
	{
		*result = id;
		return true;
	}

	/*
	 * Not taken: the range is full, or a concurrent call with the same key
	 * committed first.
	 */
	if (keyed && range_keyed(cal, NameGetDatum(role), key, resource, during,
							 typcache, result))
		return true;
	return false;
}

/*
 * The role that SECURITY DEFINER would run reserve_range as, its owner
 * (the extension's owner, who owns the tables), and tstzrange's type cache
 * entry: looked up once per call site, as fmgr does for SECURITY DEFINER
 * functions.
 */
typedef struct RangeCall
{
	Oid			owner;
	TypeCacheEntry *typcache;
} RangeCall;

/* not inlined: its locals would live across lockctl_reserve_range's setjmp */
static pg_noinline RangeCall *
range_call(FunctionCallInfo fcinfo)
{
	RangeCall  *call = (RangeCall *) fcinfo->flinfo->fn_extra;

	if (call == NULL)
	{
		call = MemoryContextAlloc(fcinfo->flinfo->fn_mcxt, sizeof(RangeCall));
		call->owner = lockctl_fn_owner(fcinfo);
		call->typcache = lookup_type_cache(TSTZRANGEOID, TYPECACHE_RANGE_INFO);
		fcinfo->flinfo->fn_extra = call;
	}
	return call;
}

/*
 * lockctl.reserve_range(resource text, during tstzrange, holder text,
 * ttl interval, idempotency_key text) returns bigint: the id of a hold of
 * one unit of calendar resource for the time range during, for ttl; NULL
 * when the calendar is full at some instant of the range (capacity live
 * holds cover it).  A retry with the same key returns the same hold; the
 * same key with another range is 22023.  Not STRICT: NULL arguments get
 * their errors.
 */
PG_FUNCTION_INFO_V1(lockctl_reserve_range);
Datum
lockctl_reserve_range(PG_FUNCTION_ARGS)
{
	RangeCall  *call = range_call(fcinfo);
	Oid			save_userid;
	int			save_sec_context;
	volatile bool taken = false;
	volatile int64 id = 0;

	GetUserIdAndSecContext(&save_userid, &save_sec_context);
	SetUserIdAndSecContext(call->owner,
						   save_sec_context | SECURITY_LOCAL_USERID_CHANGE |
						   SECURITY_RESTRICTED_OPERATION);
	PG_TRY();
	{
		int64		result = 0;

		if (SPI_connect() != SPI_OK_CONNECT)
			elog(ERROR, "SPI_connect failed");
		taken = range_reserve(fcinfo, call->typcache, &result);
		id = result;
		if (SPI_finish() != SPI_OK_FINISH)
			elog(ERROR, "SPI_finish failed");
	}
	PG_FINALLY();
	{
		SetUserIdAndSecContext(save_userid, save_sec_context);
	}
	PG_END_TRY();
	if (!taken)
		PG_RETURN_NULL();
	PG_RETURN_INT64(id);
}
