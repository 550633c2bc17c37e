/*-------------------------------------------------------------------------
 *
 * reserve_calendar.c
 *	  The shape check of a calendar's range holds (src/reserve_calendar.sql).
 *
 * lockctl.range_reservations keeps in a CHECK that a hold's range is '[)'
 * (start included, end excluded), not empty and finite at both ends: what
 * the exclusion constraint and the overlap counts rely on.  PostgreSQL
 * rebuilds a table's CHECK expressions from their stored text
 * (stringToNode) in every statement that writes the table, so the cost of
 * a CHECK grows with the size of its expression tree: written with
 * isempty, lower_inc, upper_inc, lower, upper and isfinite, the range's
 * part cost every reserve_range and confirm about 50,000 instructions
 * (parsed, prepared and run in each).  One call of this function says the
 * same thing in one node.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/htup_details.h"
#include "catalog/pg_enum.h"
#include "fmgr.h"
#include "utils/rangetypes.h"
#include "utils/syscache.h"
#include "utils/timestamp.h"

/*
 * Whether range r (a tstzrange) is not empty, includes its start, excludes
 * its end, and both ends are finite times.
 */
static bool
range_is_bounded(RangeType *r, FunctionCallInfo fcinfo)
{
	TypeCacheEntry *typcache;
	RangeBound	lower;
	RangeBound	upper;
	bool		empty;

	typcache = range_get_typcache(fcinfo, RangeTypeGetOid(r));
	range_deserialize(typcache, r, &lower, &upper, &empty);
	/* tstzrange's bounds are timestamptz: int64 by value. */
	return !empty &&
		lower.inclusive && !upper.inclusive &&
		!lower.infinite && !upper.infinite &&
		!TIMESTAMP_NOT_FINITE(DatumGetTimestampTz(lower.val)) &&
		!TIMESTAMP_NOT_FINITE(DatumGetTimestampTz(upper.val));
}

/*
 * lockctl_internal.is_bounded_range(tstzrange) returns boolean: whether the
 * range is bounded, as range_is_bounded says (reserve_range's test of its
 * argument).  STRICT: NULL for NULL.
 */
PG_FUNCTION_INFO_V1(lockctl_is_bounded_range);
Datum
lockctl_is_bounded_range(PG_FUNCTION_ARGS)
{
	PG_RETURN_BOOL(range_is_bounded(PG_GETARG_RANGE_P(0), fcinfo));
}

/*
 * lockctl_internal.is_range_hold_row(status, finished, during) returns
 * boolean: range_reservations_state_check whole, in one node: finished is
 * set exactly when the hold is over (status other than 'held'), and the
 * range is bounded (as is_bounded_range says).  NULL when status or during
 * is (both columns are NOT NULL).
 */
PG_FUNCTION_INFO_V1(lockctl_is_range_hold_row);
Datum
lockctl_is_range_hold_row(PG_FUNCTION_ARGS)
{
	HeapTuple	tup;
	bool		held;

	if (PG_ARGISNULL(0) || PG_ARGISNULL(2))
		PG_RETURN_NULL();
	/* The label of the enum value: hold_status's OIDs are the database's. */
	tup = SearchSysCache1(ENUMOID, PG_GETARG_DATUM(0));
	if (!HeapTupleIsValid(tup))
		elog(ERROR, "cache lookup failed for enum value %u", PG_GETARG_OID(0));
	held = strcmp(NameStr(((Form_pg_enum) GETSTRUCT(tup))->enumlabel), "held") == 0;
	ReleaseSysCache(tup);
	if (held != PG_ARGISNULL(1))
		PG_RETURN_BOOL(false);
	PG_RETURN_BOOL(range_is_bounded(PG_GETARG_RANGE_P(2), fcinfo));
}
