/*-------------------------------------------------------------------------
 *
 * reserve_caps.c
 *	  The caps on a role's holds: lockctl.max_holds_per_role and
 *	  lockctl.max_kept_holds_per_role, and the check that enforces them
 *	  (lockctl_internal.check_role_caps), exactly under concurrency.
 *
 * The caps are ordinary settings read in the caller's session, PGC_SUSET so
 * that a role cannot raise its own: a DBA sets them in postgresql.conf, per
 * database or per role (ALTER ROLE ... SET).  reserve, reserve_cart,
 * wait_for and reserve_range call the check before they take a hold, and
 * only when a cap is set.
 *
 * A count alone cannot be exact: two transactions of one role at cap - 1
 * would each count the committed holds, miss the other's uncommitted one,
 * and both pass.  So the check first takes a transaction-level lock on
 * (database, role) in PostgreSQL's lock manager, held until the
 * transaction ends: the next transaction of the same role waits there
 * until this one has committed or rolled back, and then counts with the
 * latest snapshot (SPI_execute_snapshot, as the foreign-key checks do), so
 * that it sees every committed hold even under REPEATABLE READ, where the
 * transaction's own snapshot predates them.  The price is that one role's
 * new holds in one database are taken one transaction at a time while a cap
 * is set for it; roles without a cap never take the lock.  The wait shows
 * in pg_locks (an advisory lock, objsubid 19528), honours lock_timeout and
 * statement_timeout, and is seen by the deadlock detector.  The tag's
 * field4 is one no SQL-level advisory lock uses (they use 1 and 2), so no
 * role can take or hold it from SQL.
 *
 * Each count stops at the cap (reservations_role_idx, carts_role_idx,
 * waitlist_entries_role_idx, range_reservations' role index), so a check
 * costs at most the cap.
 *
 * src/reserve_caps.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <limits.h>

#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "miscadmin.h"
#include "storage/lmgr.h"
#include "storage/lock.h"
#include "utils/acl.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/snapmgr.h"

#include "lockctl.h"
#include "reserve.h"

/* "LH": a field4 that no SQL-level advisory lock uses (they use 1 and 2) */
#define RESERVE_CAPS_LOCK_FIELD4	0x4C48

/* Settings */
static int	lockctl_max_holds_per_role = 0;
static int	lockctl_max_kept_holds_per_role = 0;

/*
 * The role's live holds (up to $2) and finished holds kept (up to $3):
 * live holds, the items of live carts, waiting waitlist entries and live
 * range holds; cancelled and expired holds, cart items and range holds not
 * purged yet.  A LIMIT of 0 counts nothing (that cap is not set).  Every
 * name is qualified: the query runs under the caller's search_path.
 */
static const char *const caps_count_sql =
"SELECT (SELECT pg_catalog.count(*) FROM (SELECT FROM lockctl.reservations AS r"
"         WHERE r.taken_by OPERATOR(pg_catalog.=) $1"
"           AND r.status OPERATOR(pg_catalog.=) 'held'::lockctl.hold_status LIMIT $2) AS x)"
" OPERATOR(pg_catalog.+) (SELECT pg_catalog.count(*) FROM (SELECT FROM lockctl.carts AS c"
"         JOIN lockctl.cart_items AS i ON i.cart_id OPERATOR(pg_catalog.=) c.id"
"         WHERE c.taken_by OPERATOR(pg_catalog.=) $1"
"           AND c.status OPERATOR(pg_catalog.=) 'held'::lockctl.hold_status LIMIT $2) AS x)"
" OPERATOR(pg_catalog.+) (SELECT pg_catalog.count(*) FROM (SELECT FROM lockctl.waitlist_entries AS w"
"         WHERE w.taken_by OPERATOR(pg_catalog.=) $1"
"           AND w.status OPERATOR(pg_catalog.=) 'waiting'::lockctl.wait_status LIMIT $2) AS x)"
" OPERATOR(pg_catalog.+) (SELECT pg_catalog.count(*) FROM (SELECT FROM lockctl.range_reservations AS g"
"         WHERE g.taken_by OPERATOR(pg_catalog.=) $1"
"           AND g.status OPERATOR(pg_catalog.=) 'held'::lockctl.hold_status LIMIT $2) AS x),"
"       (SELECT pg_catalog.count(*) FROM (SELECT FROM lockctl.reservations AS r"
"         WHERE r.taken_by OPERATOR(pg_catalog.=) $1"
"           AND r.status OPERATOR(pg_catalog.=) ANY (ARRAY['cancelled', 'expired']::lockctl.hold_status[])"
"         LIMIT $3) AS x)"
" OPERATOR(pg_catalog.+) (SELECT pg_catalog.count(*) FROM (SELECT FROM lockctl.carts AS c"
"         JOIN lockctl.cart_items AS i ON i.cart_id OPERATOR(pg_catalog.=) c.id"
"         WHERE c.taken_by OPERATOR(pg_catalog.=) $1"
"           AND c.status OPERATOR(pg_catalog.=) ANY (ARRAY['cancelled', 'expired']::lockctl.hold_status[])"
"         LIMIT $3) AS x)"
" OPERATOR(pg_catalog.+) (SELECT pg_catalog.count(*) FROM (SELECT FROM lockctl.range_reservations AS g"
"         WHERE g.taken_by OPERATOR(pg_catalog.=) $1"
"           AND g.status OPERATOR(pg_catalog.=) ANY (ARRAY['cancelled', 'expired']::lockctl.hold_status[])"
"         LIMIT $3) AS x)";

/*
 * Prepared once per backend (SPI_keepplan): the plan cache analyses it
 * again when one of its tables changes.
 */
static SPIPlanPtr caps_count_plan = NULL;

/*
 * Define the settings of the caps.
 */
void
ReserveCapsInit(void)
{
	DefineCustomIntVariable("lockctl.max_holds_per_role",
							gettext_noop("Maximum number of live holds of one role in one database (0: no limit)."),
							gettext_noop("lockctl.reserve refuses a new hold with SQLSTATE 53400 when the calling role has this many live holds."),
							&lockctl_max_holds_per_role,
							0, 0, INT_MAX,
							PGC_SUSET,
							0,
							NULL, NULL, NULL);

	DefineCustomIntVariable("lockctl.max_kept_holds_per_role",
							gettext_noop("Maximum number of cancelled and expired holds of one role kept until purged, in one database (0: no limit)."),
							gettext_noop("lockctl.reserve refuses a new hold with SQLSTATE 53400 when the calling role has this many finished holds that lockctl.retention still keeps."),
							&lockctl_max_kept_holds_per_role,
							0, 0, INT_MAX,
							PGC_SUSET,
							0,
							NULL, NULL, NULL);
}

/*
 * Whether either cap on a role's holds is set in this session.
 */
bool
ReserveRoleCapsOn(void)
{
	return lockctl_max_holds_per_role > 0 || lockctl_max_kept_holds_per_role > 0;
}

/*
 * Take the transaction-level lock of role's caps in this database, waiting
 * for the transaction of the same role that holds it.  The check takes it;
 * a caller that locks rows of its own before the check (reserve_range
 * locks its calendar) takes it first, so that two transactions of one role
 * cannot wait for each other's locks in the opposite order.
 */
void
ReserveLockRoleCaps(const char *role)
{
	LOCKTAG		tag;

	/* role is always the acting role's name (acting_role), so it exists */
	SET_LOCKTAG_ADVISORY(tag, MyDatabaseId, get_role_oid(role, false), 0,
						 RESERVE_CAPS_LOCK_FIELD4);
	(void) LockAcquire(&tag, ExclusiveLock, false, false);
}

/*
 * Raise 53400 when role may not take adding more holds in this database
 * (see the head of this file).  Takes the caps' lock first when a cap is
 * set, and keeps it until the transaction ends.  reserve_range calls it
 * directly; the SQL functions through lockctl_internal.check_role_caps.
 */
void
ReserveCheckRoleCaps(const char *role, int32 adding)
{
	int			maxlive = lockctl_max_holds_per_role;
	int			maxkept = lockctl_max_kept_holds_per_role;
	NameData	rolename;
	Datum		values[3];
	bool		isnull;
	int64		live;
	int64		kept;
	int			rc;

	if (maxlive <= 0 && maxkept <= 0)
		return;

	ReserveLockRoleCaps(role);

	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	if (caps_count_plan == NULL)
	{
		Oid			argtypes[3] = {NAMEOID, INT4OID, INT4OID};
		SPIPlanPtr	plan;

		plan = SPI_prepare_cursor(caps_count_sql, 3, argtypes,
								  CURSOR_OPT_GENERIC_PLAN);
		if (plan == NULL)
			elog(ERROR, "SPI_prepare failed: %s",
				 SPI_result_code_string(SPI_result));
		if (SPI_keepplan(plan) != 0)
			elog(ERROR, "SPI_keepplan failed");
		caps_count_plan = plan;
	}
	namestrcpy(&rolename, role);
	values[0] = NameGetDatum(&rolename);
	values[1] = Int32GetDatum(Max(maxlive, 0));
	values[2] = Int32GetDatum(Max(maxkept, 0));

	/*
	 * The latest snapshot, taken now that the lock is ours: it sees the
	 * holds of every transaction of this role that held the lock before,
	 * and (not read-only: the command counter is advanced first) this
	 * transaction's own.
	 */
	rc = SPI_execute_snapshot(caps_count_plan, values, NULL,
							  GetLatestSnapshot(), InvalidSnapshot,
							  false, false, 1);
	if (rc != SPI_OK_SELECT || SPI_processed != 1)
		elog(ERROR, "counting the holds of role \"%s\" failed: %s", role,
			 SPI_result_code_string(rc));
	live = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0],
									   SPI_tuptable->tupdesc, 1, &isnull));
	kept = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0],
									   SPI_tuptable->tupdesc, 2, &isnull));
	SPI_finish();

	if (maxlive > 0 && live >= maxlive)
		ereport(ERROR,
				(errcode(ERRCODE_CONFIGURATION_LIMIT_EXCEEDED),
				 errmsg("role \"%s\" has too many live holds", role),
				 errdetail("It has %d live holds in this database, the most lockctl.max_holds_per_role allows.",
						   maxlive),
				 errhint("Confirm or cancel holds first, or ask an administrator to raise \"lockctl.max_holds_per_role\".")));
	if (maxlive > 0 && live + adding > maxlive)
		ereport(ERROR,
				(errcode(ERRCODE_CONFIGURATION_LIMIT_EXCEEDED),
				 errmsg("role \"%s\" has too many live holds", role),
				 errdetail("It has %lld live holds in this database (cart items and waitlist entries included); %d more would pass %d, the most lockctl.max_holds_per_role allows.",
						   (long long) live, adding, maxlive),
				 errhint("Confirm or cancel holds first, or ask an administrator to raise \"lockctl.max_holds_per_role\".")));
	if (maxkept > 0 && kept >= maxkept)
		ereport(ERROR,
				(errcode(ERRCODE_CONFIGURATION_LIMIT_EXCEEDED),
				 errmsg("role \"%s\" has too many finished holds kept", role),
				 errdetail("It has %d cancelled or expired holds in this database that are not purged yet, the most lockctl.max_kept_holds_per_role allows.",
						   maxkept),
				 errhint("They are purged after \"lockctl.retention\"; an administrator may raise \"lockctl.max_kept_holds_per_role\" or lower \"lockctl.retention\".")));
}

/*
 * lockctl_internal.check_role_caps(role name, adding integer) returns
 * void: ReserveCheckRoleCaps for reserve, reserve_cart and wait_for.
 */
PG_FUNCTION_INFO_V1(lockctl_check_role_caps);
Datum
lockctl_check_role_caps(PG_FUNCTION_ARGS)
{
	lockctl_arg_not_null(fcinfo, 0, "role");
	lockctl_arg_not_null(fcinfo, 1, "adding");
	if (PG_GETARG_INT32(1) < 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("adding of lockctl_internal.check_role_caps must not be negative")));
	ReserveCheckRoleCaps(NameStr(*PG_GETARG_NAME(0)), PG_GETARG_INT32(1));
	PG_RETURN_VOID();
}
