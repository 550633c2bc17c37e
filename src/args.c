/*-------------------------------------------------------------------------
 *
 * args.c
 *	  Argument checks shared by every SQL-callable function of lockctl,
 *	  and what such a function looks up of itself (its owner).
 *
 * Every function checks its arguments before it touches shared memory or a
 * table, so that bad input ends in a clear error with a proper SQLSTATE and
 * changes nothing.  The messages name the function and the argument, which
 * is what a user staring at a driver's error string needs.
 *
 * src/args.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/htup_details.h"
#include "catalog/pg_proc.h"
#include "common/int.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"
#include "utils/syscache.h"
#include "utils/timestamp.h"

#include "lockctl.h"

static const char *lockctl_fn_name(FunctionCallInfo fcinfo);

/*
 * The schema-qualified name of the function being called, for messages:
 * lockctl.x for the API, lockctl_internal.x for the functions the API calls.
 * Only used on error paths, so the catalog lookups cost nothing normally.
 */
static const char *
lockctl_fn_name(FunctionCallInfo fcinfo)
{
	char	   *name = NULL;
	char	   *schema = NULL;

	if (fcinfo->flinfo && OidIsValid(fcinfo->flinfo->fn_oid))
	{
		name = get_func_name(fcinfo->flinfo->fn_oid);
		schema = get_namespace_name(get_func_namespace(fcinfo->flinfo->fn_oid));
	}
	return psprintf("%s.%s", schema ? schema : "lockctl", name ? name : "?");
}

/*
 * Raise an error if argument argno is NULL.
 */
void
lockctl_arg_not_null(FunctionCallInfo fcinfo, int argno, const char *argname)
{
	if (PG_ARGISNULL(argno))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("%s of %s must not be null",
						argname, lockctl_fn_name(fcinfo))));
}

/*
 * A name argument (resource, owner, holder, idempotency key): text that is
 * not empty, at most LOCKCTL_NAME_MAXLEN bytes, and has no NUL.  Returns a
 * palloc'd C string, or NULL when allow_null and the argument is NULL.
 */
char *
lockctl_arg_name(FunctionCallInfo fcinfo, int argno, const char *argname,
				 bool allow_null)
{
	text	   *t;
	int			len;

	if (PG_ARGISNULL(argno))
	{
		if (allow_null)
			return NULL;
		lockctl_arg_not_null(fcinfo, argno, argname);
	}

	t = PG_GETARG_TEXT_PP(argno);
	len = VARSIZE_ANY_EXHDR(t);

	if (len == 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("%s of %s must not be empty",
						argname, lockctl_fn_name(fcinfo))));
	if (len > LOCKCTL_NAME_MAXLEN)
		ereport(ERROR,
				(errcode(ERRCODE_NAME_TOO_LONG),
				 errmsg("%s of %s is too long",
						argname, lockctl_fn_name(fcinfo)),
				 errdetail("It is %d bytes long; the limit is %d bytes.",
						   len, LOCKCTL_NAME_MAXLEN)));

	return text_to_cstring(t);
}

/*
 * An interval argument, as microseconds within [min_us, max_us].
 *
 * Months count as 30 days and days as 24 hours: a lease or a hold is a
 * span of elapsed time, not a date on a calendar.
 */
int64
lockctl_arg_interval_us(FunctionCallInfo fcinfo, int argno,
						const char *argname, int64 min_us, int64 max_us)
{
	Interval   *iv;
	int64		days;
	int64		us;

	lockctl_arg_not_null(fcinfo, argno, argname);
	iv = PG_GETARG_INTERVAL_P(argno);

	days = (int64) iv->month * DAYS_PER_MONTH + iv->day;
	if (pg_mul_s64_overflow(days, USECS_PER_DAY, &us) ||
		pg_add_s64_overflow(us, iv->time, &us) ||
		us < min_us || us > max_us)
	{
		char	   *shown = DatumGetCString(DirectFunctionCall1(interval_out,
																IntervalPGetDatum(iv)));
		char	   *lo = DatumGetCString(DirectFunctionCall1(interval_out,
															 IntervalPGetDatum(lockctl_us_to_interval(min_us))));
		char	   *hi = DatumGetCString(DirectFunctionCall1(interval_out,
															 IntervalPGetDatum(lockctl_us_to_interval(max_us))));

		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("%s of %s is out of range: \"%s\"",
						argname, lockctl_fn_name(fcinfo), shown),
				 errdetail("It must be between \"%s\" and \"%s\".", lo, hi)));
	}
	return us;
}

/*
 * A bigint argument within [min, max].
 */
int64
lockctl_arg_int64(FunctionCallInfo fcinfo, int argno, const char *argname,
				  int64 min, int64 max)
{
	int64		v;

	lockctl_arg_not_null(fcinfo, argno, argname);
	v = PG_GETARG_INT64(argno);
	if (v < min || v > max)
		ereport(ERROR,
				(errcode(ERRCODE_NUMERIC_VALUE_OUT_OF_RANGE),
				 errmsg("%s of %s is out of range: " INT64_FORMAT,
						argname, lockctl_fn_name(fcinfo), v),
				 errdetail("It must be between " INT64_FORMAT " and " INT64_FORMAT ".",
						   min, max)));
	return v;
}

/*
 * Microseconds as an interval of hours, minutes and seconds.
 */
Interval *
lockctl_us_to_interval(int64 us)
{
	Interval   *iv = palloc0(sizeof(Interval));

	iv->time = us;
	return iv;
}

/*
 * The owner of the function being called: the role a SECURITY DEFINER
 * function would run as, for the C functions that switch to it themselves
 * (claim_request, complete_request, reserve_range).  A catalog lookup:
 * callers keep the result in fn_extra, as fmgr does for SECURITY DEFINER.
 */
Oid
lockctl_fn_owner(FunctionCallInfo fcinfo)
{
	HeapTuple	tup;
	Oid			owner;

	tup = SearchSysCache1(PROCOID, ObjectIdGetDatum(fcinfo->flinfo->fn_oid));
	if (!HeapTupleIsValid(tup))
		elog(ERROR, "cache lookup failed for function %u",
			 fcinfo->flinfo->fn_oid);
	owner = ((Form_pg_proc) GETSTRUCT(tup))->proowner;
	ReleaseSysCache(tup);
	return owner;
}
