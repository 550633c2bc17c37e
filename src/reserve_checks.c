/*-------------------------------------------------------------------------
 *
 * reserve_checks.c
 *	  The CHECK constraints of the reservation tables, each one C call.
 *
 * PostgreSQL rebuilds a table's CHECK expressions from their stored text
 * (stringToNode, then expression planning) once per statement that writes
 * the table: ExecRelCheck keeps them only in the statement's
 * ResultRelInfo.  A hot pool's reserve + confirm writes lockctl.pool_slots
 * twice and lockctl.reservations twice, in four statements; spelt in SQL,
 * their two invariants cost about 45,000 instructions per write, a fifth
 * of the whole sale (bench/README.md).  A single function call over the
 * columns parses and plans in a fraction of that, and tests the same:
 *
 *   pool_slots_not_oversold   lockctl_internal.is_slot_row(held,
 *                             confirmed, capacity, kept): held >= 0,
 *                             confirmed >= 0, held + confirmed <= capacity,
 *                             0 <= kept <= held;
 *   reservations_state_check  lockctl_internal.is_hold_row(quantity,
 *                             status, finished): quantity > 0, and
 *                             finished set exactly when the hold is over;
 *   range_reservations_state_check  lockctl_internal.is_range_hold_row
 *                             (src/reserve_calendar.c), which shares
 *                             ReserveStatusIsHeld.
 *
 * As a CHECK expression would, they return NULL (which passes) where the
 * SQL would have been NULL; the columns are NOT NULL anyway.
 *
 * Even as one call, a CHECK rebuilt per statement costs about 20,000
 * instructions, so their prepared expressions are also kept per backend
 * (src/kept_exprs.c).
 *
 * src/reserve_checks.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/htup_details.h"
#include "catalog/pg_enum.h"
#include "common/int.h"
#include "fmgr.h"
#include "utils/syscache.h"

#include "lockctl.h"
#include "reserve.h"

/*
 * Whether enum value status of lockctl.hold_status is 'held'.  By label:
 * the enum's OIDs are the database's own.
 */
bool
ReserveStatusIsHeld(Oid status)
{
	HeapTuple	tup;
	bool		held;

	tup = SearchSysCache1(ENUMOID, ObjectIdGetDatum(status));
	if (!HeapTupleIsValid(tup))
		elog(ERROR, "cache lookup failed for enum value %u", status);
	held = strcmp(NameStr(((Form_pg_enum) GETSTRUCT(tup))->enumlabel), "held") == 0;
	ReleaseSysCache(tup);
	return held;
}

/*
 * lockctl_internal.is_slot_row(held bigint, confirmed bigint, capacity
 * bigint, kept bigint) returns boolean: pool_slots_not_oversold.  held +
 * confirmed out of bigint's range is 22003, as the SQL's + raised it.
 * kept (units of held kept for the pool's waitlist, no hold's) lies
 * between 0 and held.
 */
PG_FUNCTION_INFO_V1(lockctl_is_slot_row);
Datum
lockctl_is_slot_row(PG_FUNCTION_ARGS)
{
	int64		held;
	int64		confirmed;
	int64		kept;
	int64		sum;

	if (PG_ARGISNULL(0) || PG_ARGISNULL(1) || PG_ARGISNULL(2) || PG_ARGISNULL(3))
		PG_RETURN_NULL();
	held = PG_GETARG_INT64(0);
	confirmed = PG_GETARG_INT64(1);
	kept = PG_GETARG_INT64(3);
	/* only a row otherwise right raises it, as before */
	if (held >= 0 && confirmed >= 0 && kept >= 0 && kept <= held &&
		pg_add_s64_overflow(held, confirmed, &sum))
		ereport(ERROR,
				(errcode(ERRCODE_NUMERIC_VALUE_OUT_OF_RANGE),
				 errmsg("bigint out of range")));
	PG_RETURN_BOOL(ReserveSlotRowOk(held, confirmed, PG_GETARG_INT64(2), kept));
}

/*
 * lockctl_internal.is_hold_row(quantity bigint, status hold_status,
 * finished timestamptz) returns boolean: reservations_state_check.
 */
PG_FUNCTION_INFO_V1(lockctl_is_hold_row);
Datum
lockctl_is_hold_row(PG_FUNCTION_ARGS)
{
	if (PG_ARGISNULL(0) || PG_ARGISNULL(1))
		PG_RETURN_NULL();
	if (PG_GETARG_INT64(0) <= 0)
		PG_RETURN_BOOL(false);
	PG_RETURN_BOOL(ReserveStatusIsHeld(PG_GETARG_OID(1)) == PG_ARGISNULL(2));
}
