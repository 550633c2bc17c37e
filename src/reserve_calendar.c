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

#include "fmgr.h"
#include "utils/rangetypes.h"
#include "utils/timestamp.h"

/*
 * lockctl_internal.is_bounded_range(tstzrange) returns boolean: whether the
 * range is not empty, includes its start, excludes its end, and both ends
 * are finite times.  STRICT: NULL for NULL (the column is NOT NULL).
 */
PG_FUNCTION_INFO_V1(lockctl_is_bounded_range);
Datum
lockctl_is_bounded_range(PG_FUNCTION_ARGS)
{
	RangeType  *r = PG_GETARG_RANGE_P(0);
	TypeCacheEntry *typcache;
	RangeBound	lower;
	RangeBound	upper;
	bool		empty;

	typcache = range_get_typcache(fcinfo, RangeTypeGetOid(r));
	range_deserialize(typcache, r, &lower, &upper, &empty);
	/* tstzrange's bounds are timestamptz: int64 by value. */
	PG_RETURN_BOOL(!empty &&
				   lower.inclusive && !upper.inclusive &&
				   !lower.infinite && !upper.infinite &&
				   !TIMESTAMP_NOT_FINITE(DatumGetTimestampTz(lower.val)) &&
				   !TIMESTAMP_NOT_FINITE(DatumGetTimestampTz(upper.val)));
}
