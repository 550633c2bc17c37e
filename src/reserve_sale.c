/*-------------------------------------------------------------------------
 *
 * reserve_sale.c
 *	  A sale's two calls, lockctl.reserve and lockctl.confirm(id), in C.
 *
 * Every step of a sale already has a direct path (the pool's row,
 * reserve_pool.c; its slot, reserve_slot.c; the holder's count,
 * reserve_holder.c; the hold's row, reserve_hold.c).  Called from PL/pgSQL
 * they still cost the interpreter around them: every expression of the
 * function set up again in each transaction (ExecInitExprWithParams), an
 * fmgr call and a composite result for each step, the SET clauses of a
 * SECURITY DEFINER function with four settings: about 120,000 of a hot-pool
 * sale's 377,000 instructions (bench/README.md).  Here the two functions
 * call those paths directly.
 *
 * They do the common case only: arguments within their bounds, no
 * idempotency key, a pool that exists with a slot free and unlocked, a
 * hold that is live and the caller's.  Every other
 * case goes, before anything is written, to the PL/pgSQL function that
 * handles them all by statement and raises every error, with the same
 * arguments: lockctl_internal.reserve_by_sql and confirm_by_sql (src/
 * reserve.sql; lockctl.reserve and confirm as they were before 1.1).
 * Each direct path also says when the statement must do its part instead
 * (another isolation level, a read-only transaction, a standby, a table
 * not as installed, a row another transaction is writing); before the
 * first write that sends the whole call to the PL/pgSQL function, after it
 * only the step left: lockctl_internal.charge_holder (src/
 * reserve_limits.sql), insert_hold_by_sql and confirm_slot_by_sql.
 *
 * Both are SECURITY DEFINER, as they were, so that the paths and the
 * functions called here act as the extension's owner; without SET
 * clauses: nothing here resolves a name through search_path, and the
 * PL/pgSQL functions set their own.
 *
 * src/reserve_sale.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/detoast.h"
#include "access/xact.h"
#include "catalog/pg_collation.h"
#include "catalog/pg_type.h"
#include "fmgr.h"
#include "miscadmin.h"
#include "utils/builtins.h"
#include "utils/datetime.h"
#include "utils/snapmgr.h"
#include "utils/timestamp.h"

#include "lockctl.h"
#include "reserve.h"


/*
 * The PL/pgSQL and SQL functions of lockctl_internal that a call hands
 * over to (their OIDs kept until pg_proc changes: direct.c).
 */
#define SALE_FALLBACK(fname, n, ...) \
	{"lockctl_internal", (fname), (n), {__VA_ARGS__}, 0, InvalidOid}

static LockctlFuncRef reserve_by_sql =
SALE_FALLBACK("reserve_by_sql", 5, TEXTOID, INT8OID, TEXTOID, INTERVALOID, TEXTOID);
static LockctlFuncRef confirm_by_sql =
SALE_FALLBACK("confirm_by_sql", 1, INT8OID);
static LockctlFuncRef charge_holder =
SALE_FALLBACK("charge_holder", 5, INT8OID, TEXTOID, TEXTOID, INT8OID, INT8OID);
static LockctlFuncRef insert_hold_by_sql =
SALE_FALLBACK("insert_hold_by_sql", 7, INT8OID, INT4OID, INT8OID, TEXTOID, NAMEOID,
			  TIMESTAMPTZOID, TIMESTAMPTZOID);
static LockctlFuncRef confirm_slot_by_sql =
SALE_FALLBACK("confirm_slot_by_sql", 3, INT8OID, INT4OID, INT8OID);

/*
 * Call fallback f with args and nulls (f->nargs of them) and the input
 * collation collid; its result, *isnull whether it is NULL.
 */
static Datum
sale_call(LockctlFuncRef *f, const Datum *args, const bool *nulls, Oid collid,
		  bool *isnull)
{
	LOCAL_FCINFO(fc, LOCKCTL_FUNC_MAX_ARGS);
	FmgrInfo	flinfo;
	Datum		result;
	int			i;

	fmgr_info(lockctl_func_oid(f, false), &flinfo);
	InitFunctionCallInfoData(*fc, &flinfo, f->nargs, collid, NULL, NULL);
	for (i = 0; i < f->nargs; i++)
	{
		fc->args[i].value = args[i];
		fc->args[i].isnull = nulls[i];
	}
	result = FunctionCallInvoke(fc);
	*isnull = fc->isnull;
	return result;
}

/* This call, handed over whole to fallback f (same arguments). */
static Datum
sale_hand_over(LockctlFuncRef *f, FunctionCallInfo fcinfo)
{
	Datum		args[LOCKCTL_FUNC_MAX_ARGS];
	bool		nulls[LOCKCTL_FUNC_MAX_ARGS];
	int			i;

	Assert(PG_NARGS() == f->nargs);
	for (i = 0; i < f->nargs; i++)
	{
		args[i] = PG_GETARG_DATUM(i);
		nulls[i] = PG_ARGISNULL(i);
	}
	return sale_call(f, args, nulls, PG_GET_COLLATION(), &fcinfo->isnull);
}

/*
 * What PL/pgSQL does before each statement of a volatile function, and
 * reserve_by_sql and confirm_by_sql did before theirs: the command
 * counter advanced and a new snapshot made active, so that what this
 * transaction wrote before the call is seen, in the same query too (a
 * hold that reserve inserted, confirmed by the confirm around it).  The
 * caller pops the snapshot (an error pops it with the (sub)transaction).
 */
static void
sale_begin(void)
{
	CommandCounterIncrement();
	PushActiveSnapshot(GetTransactionSnapshot());
}

/* Whether a text argument is between 1 and LOCKCTL_NAME_MAXLEN bytes long. */
static bool
sale_name_ok(Datum d)
{
	Size		len = toast_raw_datum_size(d) - VARHDRSZ;

	return len > 0 && len <= LOCKCTL_NAME_MAXLEN;
}

/*
 * The bounds of reserve's arguments: lockctl_internal.max_units(),
 * min_hold_ttl() and max_hold_ttl() (src/reserve.sql), the one place they
 * are defined, called at the first call and again after pg_proc changes
 * (lockctl_proc_gen: a new version's functions), not on every call.  An
 * argument outside them goes to reserve_by_sql, which raises the error
 * (sql/reserve_sale.sql tests each edge through both functions).
 */
static LockctlFuncRef max_units_fn =
{"lockctl_internal", "max_units", 0, {InvalidOid}, 0, InvalidOid};
static LockctlFuncRef min_hold_ttl_fn =
{"lockctl_internal", "min_hold_ttl", 0, {InvalidOid}, 0, InvalidOid};
static LockctlFuncRef max_hold_ttl_fn =
{"lockctl_internal", "max_hold_ttl", 0, {InvalidOid}, 0, InvalidOid};

typedef struct SaleBounds
{
	uint64		gen;			/* lockctl_proc_gen() when read; 0: never */
	int64		max_units;
	Interval	min_ttl;
	Interval	max_ttl;
} SaleBounds;

static SaleBounds sale_bounds;

/* bound f's value, which must not be NULL */
static Datum
sale_bound(LockctlFuncRef *f)
{
	bool		isnull;
	Datum		d = sale_call(f, NULL, NULL, InvalidOid, &isnull);

	if (isnull)
		elog(ERROR, "lockctl.reserve: %s.%s() returned NULL", f->schema, f->name);
	return d;
}

static const SaleBounds *
sale_bounds_get(void)
{
	uint64		gen = lockctl_proc_gen();

	if (sale_bounds.gen != gen)
	{
		sale_bounds.max_units = DatumGetInt64(sale_bound(&max_units_fn));
		sale_bounds.min_ttl = *DatumGetIntervalP(sale_bound(&min_hold_ttl_fn));
		sale_bounds.max_ttl = *DatumGetIntervalP(sale_bound(&max_hold_ttl_fn));
		/* an invalidation that came meanwhile makes the next call read again */
		sale_bounds.gen = gen;
	}
	return &sale_bounds;
}

/*
 * Whether reserve's arguments are those of the common case: resource and
 * holder (or no holder) names within bounds, quantity and ttl within
 * their bounds, no idempotency key.
 */
static bool
sale_reserve_args_plain(FunctionCallInfo fcinfo)
{
	const SaleBounds *b;
	Datum		ttl;
	int64		q;

	if (PG_ARGISNULL(0) || PG_ARGISNULL(1) || PG_ARGISNULL(3) || !PG_ARGISNULL(4))
		return false;
	if (!sale_name_ok(PG_GETARG_DATUM(0)) ||
		(!PG_ARGISNULL(2) && !sale_name_ok(PG_GETARG_DATUM(2))))
		return false;
	b = sale_bounds_get();
	q = PG_GETARG_INT64(1);
	if (q < 1 || q > b->max_units)
		return false;
	/* compared as reserve_by_sql compares it: interval's < and > */
	ttl = PG_GETARG_DATUM(3);
	if (DatumGetBool(DirectFunctionCall2(interval_lt, ttl,
										 IntervalPGetDatum(&b->min_ttl))) ||
		DatumGetBool(DirectFunctionCall2(interval_gt, ttl,
										 IntervalPGetDatum(&b->max_ttl))))
		return false;
	return true;
}

/*
 * lockctl.reserve(resource text, quantity bigint, holder text, ttl
 * interval, idempotency_key text) RETURNS bigint: see the top of this file
 * and lockctl_internal.reserve_by_sql for what it does.
 */
PG_FUNCTION_INFO_V1(lockctl_reserve);
Datum
lockctl_reserve(PG_FUNCTION_ARGS)
{
	Datum		resource;
	int64		quantity;
	Datum		holder;
	int64		pool;
	int32		slots;
	int32		slot;
	int64		maxph;
	bool		maxph_null;
	bool		found;
	NameData	taken_by;
	bool		capped;
	TimestampTz now;
	Datum		values[7];
	bool		nulls[7];
	int64		id;

	if (!sale_reserve_args_plain(fcinfo))
		return sale_hand_over(&reserve_by_sql, fcinfo);
	resource = PG_GETARG_DATUM(0);
	quantity = PG_GETARG_INT64(1);
	holder = PG_ARGISNULL(2) ? (Datum) 0 : PointerGetDatum(PG_GETARG_TEXT_PP(2));
	namestrcpy(&taken_by, GetUserNameFromId(ReserveActingRole(), false));

	/*
	 * The pool, the role's caps when one is set, then the fast path's slot:
	 * taken from this backend's own one upwards.  No pool, or no slot free
	 * and unlocked (the middle and slow paths wait or lock every slot): the
	 * statements decide, nothing having been written.
	 *
	 * The caps are checked where reserve_by_sql checks them, after the pool
	 * is found and before a slot is locked, so that every reserve takes the
	 * caps' lock before slot rows.  The check says whether the lock may be
	 * given back once the hold is in (reserve_caps.c); it is, unless the
	 * pool limits its holders: between the two the holder's row may wait
	 * for another transaction of the role, which must then not be waiting
	 * for this one's caps' lock.  Handed over below, reserve_by_sql takes
	 * the lock again and keeps it.
	 */
	sale_begin();
	if (!ReservePoolOf(resource, &pool, &slots, &found) || !found || slots <= 0)
	{
		PopActiveSnapshot();
		return sale_hand_over(&reserve_by_sql, fcinfo);
	}
	capped = ReserveRoleCapsOn() && ReserveCheckRoleCaps(NameStr(taken_by), 1);
	if (ReserveTakeSlot(pool, MyProcPid % slots, slots, quantity,
						&slot, &maxph, &maxph_null) != 1)
	{
		if (capped)
			ReserveUnlockRoleCaps(NameStr(taken_by));
		PopActiveSnapshot();
		return sale_hand_over(&reserve_by_sql, fcinfo);
	}
	if (!maxph_null)
		capped = false;			/* kept until the transaction ends */

	/* From here the slot row is written: no handing over the whole call. */
	if (!maxph_null)
	{
		int64		units;

		if (PG_ARGISNULL(2) ||
			!ReserveChargeHolder(pool, holder, quantity, &units))
		{
			/* charge_holder raises the errors, or charges by statement */
			Datum		args[5] = {Int64GetDatum(pool), resource, holder,
			Int64GetDatum(quantity), Int64GetDatum(maxph)};
			bool		argnulls[5] = {false, false, PG_ARGISNULL(2), false, false};
			bool		isnull;

			(void) sale_call(&charge_holder, args, argnulls, DEFAULT_COLLATION_OID,
							 &isnull);
		}
		else if (units > maxph)
		{
			/* as lockctl_internal.charge_holder raises it: keep them alike */
			ereport(ERROR,
					(errcode(ERRCODE_CONFIGURATION_LIMIT_EXCEEDED),
					 errmsg("holder \"%s\" would have more than %lld units of pool \"%s\"",
							TextDatumGetCString(holder), (long long) maxph,
							TextDatumGetCString(resource)),
					 errdetail("It holds or has confirmed %lld; this call asks for %lld more.",
							   (long long) (units - quantity), (long long) quantity),
					 errhint("The limit is the pool's max_per_holder (lockctl.set_max_per_holder).")));
		}
	}

	/* the hold, as reserve_by_sql inserts it */
	now = GetCurrentTimestamp();
	values[0] = Int64GetDatum(pool);
	values[1] = Int32GetDatum(slot);
	values[2] = Int64GetDatum(quantity);
	values[3] = holder;
	values[4] = NameGetDatum(&taken_by);
	values[5] = TimestampTzGetDatum(now);
	values[6] = DirectFunctionCall2(timestamptz_pl_interval, TimestampTzGetDatum(now),
									PG_GETARG_DATUM(3));
	memset(nulls, false, sizeof(nulls));
	nulls[3] = PG_ARGISNULL(2);
	if (!ReserveInsertHold(values, nulls, &id))
	{
		bool		isnull;

		id = DatumGetInt64(sale_call(&insert_hold_by_sql, values, nulls,
									 DEFAULT_COLLATION_OID, &isnull));
		if (isnull)
			elog(ERROR, "lockctl_internal.insert_hold_by_sql returned no id");
	}

	/*
	 * The hold is in: the role's next check sees it (dirty snapshot) while
	 * this transaction is in progress, so the caps' lock need not wait for
	 * its end (reserve_caps.c).
	 */
	if (capped)
		ReserveUnlockRoleCaps(NameStr(taken_by));
	PopActiveSnapshot();
	PG_RETURN_INT64(id);
}

/*
 * lockctl.confirm(id bigint) RETURNS boolean: see the top of this file and
 * lockctl_internal.confirm_by_sql for what it does.
 */
PG_FUNCTION_INFO_V1(lockctl_confirm);
Datum
lockctl_confirm(PG_FUNCTION_ARGS)
{
	int64		pool;
	int32		slot;
	int64		quantity;

	/*
	 * The hold's row, confirmed.  No row matched (not live, not the
	 * caller's, a range hold, no such id) or the statement must do it:
	 * confirm_by_sql looks again and explains, nothing having been
	 * written.
	 */
	if (PG_ARGISNULL(0))
		return sale_hand_over(&confirm_by_sql, fcinfo);
	sale_begin();
	if (ReserveConfirmHold(PG_GETARG_INT64(0), GetCurrentTimestamp(),
						   &pool, &slot, &quantity) != 1)
	{
		PopActiveSnapshot();
		return sale_hand_over(&confirm_by_sql, fcinfo);
	}

	/* its units, from held to confirmed */
	if (!ReserveConfirmSlot(pool, slot, quantity))
	{
		Datum		args[3] = {Int64GetDatum(pool), Int32GetDatum(slot),
		Int64GetDatum(quantity)};
		bool		argnulls[3] = {false, false, false};
		bool		isnull;

		(void) sale_call(&confirm_slot_by_sql, args, argnulls, InvalidOid, &isnull);
	}
	PopActiveSnapshot();
	PG_RETURN_BOOL(true);
}
