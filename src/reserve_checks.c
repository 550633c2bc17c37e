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
 * instructions (stringToNode, expression planning, ExecInitExpr and its
 * function look-up): a hot pool's reserve + confirm took 707,775
 * instructions with them rebuilt, 624,424 with them kept (callgrind,
 * bench/callgrind.sh).  So the
 * prepared expressions of these tables are also kept per backend
 * (KeptChecks below) and handed to each statement that writes them, as
 * reserve_calendar.c's direct insertion keeps those of
 * lockctl.range_reservations.
 *
 * src/reserve_checks.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/htup_details.h"
#include "catalog/namespace.h"
#include "catalog/objectaccess.h"
#include "catalog/pg_enum.h"
#include "catalog/pg_language.h"
#include "common/int.h"
#include "executor/executor.h"
#include "fmgr.h"
#include "miscadmin.h"
#include "nodes/nodeFuncs.h"
#include "optimizer/optimizer.h"
#include "utils/inval.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/rel.h"
#include "utils/syscache.h"

#include "compat.h"
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
	if (held < 0 || confirmed < 0 || kept < 0 || kept > held)
		PG_RETURN_BOOL(false);
	if (pg_add_s64_overflow(held, confirmed, &sum))
		ereport(ERROR,
				(errcode(ERRCODE_NUMERIC_VALUE_OUT_OF_RANGE),
				 errmsg("bigint out of range")));
	PG_RETURN_BOOL(sum <= PG_GETARG_INT64(2));
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

/*
 * Kept CHECK expressions.
 *
 * ExecRelCheck prepares a table's CHECK expressions when a statement first
 * checks a row, in that statement's ResultRelInfo, unless they are there
 * already.  An ExecutorStart hook puts them there for the tables of schema
 * lockctl whose every CHECK is as installed: one call of a C function of
 * schema lockctl_internal over plain columns (is_slot_row, is_hold_row,
 * is_range_hold_row).  What is kept is what ExecRelCheck would have made,
 * from the same relcache entry: the expressions in its order, one per
 * CHECK.  Such an expression holds nothing of a statement (no parameters,
 * no subplans; the function keeps nothing in fn_extra), and it is
 * evaluated in the statement's own per-tuple context, so one serves every
 * statement of the backend.  What is not kept, or not as installed (a
 * CHECK a DBA added, a function replaced by one in another language), is
 * prepared by ExecRelCheck per statement, as on any table.
 *
 * Two things ExecInitExpr does at preparation are done here per statement
 * instead, so that keeping changes nothing: the EXECUTE privilege on each
 * function, for the role the statement runs as (lacking it, the statement
 * prepares its own, and fails as it would), and the object access hook.
 *
 * A change of the table (ALTER TABLE, a new CHECK, DROP) sends a relcache
 * invalidation, which marks its entry stale, and a change of any function
 * (CREATE OR REPLACE of a CHECK's function) marks every entry stale; the
 * next statement prepares them again.  An invalidated set may still be in use by a statement in
 * progress (one that ran a nested statement, after an invalidation came):
 * it is given to the transaction's memory, and freed at its end.
 */
typedef struct KeptChecks
{
	Oid			relid;			/* InvalidOid: a free entry */
	bool		valid;			/* made since the last invalidation */
	int			ncheck;			/* 0: the table's CHECKs are not kept */
	ExprState **exprs;			/* in cxt: the relcache's order */
	Oid		   *funcs;			/* the function of each */
	MemoryContext cxt;
} KeptChecks;

/* lockctl's tables with CHECKs: pool_slots, reservations, range_reservations */
#define KEPT_MAX 8

static KeptChecks kept[KEPT_MAX];
static int	kept_next = 0;		/* the entry a new table takes when all are used */
static Oid	kept_nsp = InvalidOid;	/* schema lockctl, when kept_nsp_known */
static Oid	kept_fn_nsp = InvalidOid;	/* schema lockctl_internal */
static bool kept_nsp_known = false;
static ExecutorStart_hook_type prev_ExecutorStart = NULL;

static void
kept_drop(KeptChecks *k)
{
	/*
	 * A statement in progress may still use it: freed with the
	 * transaction.  Outside one, nothing can.
	 */
	if (k->cxt != NULL)
	{
		if (IsTransactionState())
			MemoryContextSetParent(k->cxt, TopTransactionContext);
		else
			MemoryContextDelete(k->cxt);
	}
	k->cxt = NULL;
	k->exprs = NULL;
	k->funcs = NULL;
	k->ncheck = 0;
	k->valid = false;
}

static void
kept_relcache_inval(Datum arg, Oid relid)
{
	int			i;

	/* only marked: the callback may come in the middle of a statement */
	for (i = 0; i < KEPT_MAX; i++)
		if (!OidIsValid(relid) || kept[i].relid == relid)
			kept[i].valid = false;
}

static void
kept_nsp_inval(Datum arg, int cacheid, uint32 hashvalue)
{
	kept_nsp_known = false;
}

/*
 * A function was created, replaced or dropped: a kept expression calls
 * the function as it was when prepared (its address), so it may be stale
 * even though no table changed.  Rare: every entry is made again.
 */
static void
kept_proc_inval(Datum arg, int cacheid, uint32 hashvalue)
{
	kept_relcache_inval(arg, InvalidOid);
}

/*
 * The function of check expression expr if it is as installed (a call of
 * a C function of lockctl_internal over plain columns, none generated),
 * else InvalidOid.
 */
static Oid
kept_check_function(Node *expr, TupleDesc desc)
{
	FuncExpr   *fe;
	HeapTuple	tup;
	Form_pg_proc proc;
	bool		ok;
	ListCell   *lc;

	if (!IsA(expr, FuncExpr))
		return InvalidOid;
	fe = (FuncExpr *) expr;
	foreach(lc, fe->args)
	{
		Var		   *var = (Var *) lfirst(lc);

		if (!IsA(var, Var) || var->varattno <= 0 || var->varattno > desc->natts ||
			TupleDescAttr(desc, var->varattno - 1)->attgenerated != '\0')
			return InvalidOid;
	}
	tup = SearchSysCache1(PROCOID, ObjectIdGetDatum(fe->funcid));
	if (!HeapTupleIsValid(tup))
		return InvalidOid;
	proc = (Form_pg_proc) GETSTRUCT(tup);
	ok = proc->prolang == ClanguageId && proc->pronamespace == kept_fn_nsp &&
		!proc->proretset;
	ReleaseSysCache(tup);
	return ok ? fe->funcid : InvalidOid;
}

/*
 * Prepare the CHECK expressions of rel, a table of schema lockctl, into
 * entry k, if every one is as installed.  Only for a role that may execute
 * their functions: ExecInitExpr would refuse the others, where ExecRelCheck
 * (which prepares them only when a row is checked) might never have.
 */
static void
kept_build(KeptChecks *k, Relation rel)
{
	TupleConstr *constr = RelationGetDescr(rel)->constr;
	int			ncheck = constr->num_check;
	MemoryContext cxt;
	MemoryContext oldcxt;
	Node	  **trees;
	ExprState **exprs;
	Oid		   *funcs;
	int			i;

	kept_drop(k);
	k->relid = RelationGetRelid(rel);
	/* an invalidation from here on makes the next statement look again */
	k->valid = true;
	if (ncheck != rel->rd_rel->relchecks)
		return;					/* ExecRelCheck reports it */

	/* made under the statement's memory: an error frees it */
	cxt = AllocSetContextCreate(CurrentMemoryContext, "lockctl kept checks",
								ALLOCSET_SMALL_SIZES);
	oldcxt = MemoryContextSwitchTo(cxt);
	trees = palloc0(sizeof(Node *) * ncheck);
	exprs = palloc0(sizeof(ExprState *) * ncheck);
	funcs = palloc0(sizeof(Oid) * ncheck);
	for (i = 0; i < ncheck; i++)
	{
		ConstrCheck *check = &constr->check[i];

		if (!LOCKCTL_CHECK_ENFORCED(check))
			break;
		trees[i] = stringToNode(check->ccbin);
		funcs[i] = kept_check_function(trees[i], RelationGetDescr(rel));
		if (!OidIsValid(funcs[i]))
			break;
		if (object_aclcheck(ProcedureRelationId, funcs[i], GetUserId(),
							ACL_EXECUTE) != ACLCHECK_OK)
		{
			/* another role's statement may keep them */
			k->valid = false;
			break;
		}
	}
	if (i < ncheck)
	{
		MemoryContextSwitchTo(oldcxt);
		MemoryContextDelete(cxt);
		return;
	}
	/* what ExecPrepareExpr does, in cxt */
	for (i = 0; i < ncheck; i++)
		exprs[i] = ExecInitExpr(expression_planner((Expr *) trees[i]), NULL);
	MemoryContextSwitchTo(oldcxt);
	MemoryContextSetParent(cxt, CacheMemoryContext);
	k->cxt = cxt;
	k->exprs = exprs;
	k->funcs = funcs;
	k->ncheck = ncheck;
}

/*
 * The kept CHECK expressions of rel for a statement, or NULL to let
 * ExecRelCheck prepare them.
 */
static ExprState **
kept_checks(Relation rel)
{
	Oid			relid = RelationGetRelid(rel);
	KeptChecks *k = NULL;
	int			i;

	if (!kept_nsp_known)
	{
		kept_nsp = get_namespace_oid("lockctl", true);
		kept_fn_nsp = get_namespace_oid("lockctl_internal", true);
		kept_nsp_known = true;
	}
	if (!OidIsValid(kept_nsp) || RelationGetNamespace(rel) != kept_nsp)
		return NULL;

	for (i = 0; i < KEPT_MAX; i++)
		if (kept[i].relid == relid)
		{
			k = &kept[i];
			break;
		}
	if (k == NULL)
	{
		for (i = 0; i < KEPT_MAX; i++)
			if (!OidIsValid(kept[i].relid))
				break;
		if (i == KEPT_MAX)
		{
			/* more tables than entries: take turns */
			i = kept_next;
			kept_next = (kept_next + 1) % KEPT_MAX;
		}
		k = &kept[i];
		k->valid = false;
	}
	if (!k->valid || k->relid != relid)
		kept_build(k, rel);
	if (k->ncheck == 0 || k->ncheck != RelationGetDescr(rel)->constr->num_check)
		return NULL;

	for (i = 0; i < k->ncheck; i++)
	{
		if (object_aclcheck(ProcedureRelationId, k->funcs[i], GetUserId(),
							ACL_EXECUTE) != ACLCHECK_OK)
			return NULL;
		InvokeFunctionExecuteHook(k->funcs[i]);
	}
	return k->exprs;
}

static void
kept_ExecutorStart(QueryDesc *queryDesc, int eflags)
{
	ListCell   *lc;

	if (prev_ExecutorStart)
		prev_ExecutorStart(queryDesc, eflags);
	else
		standard_ExecutorStart(queryDesc, eflags);

	if (eflags & EXEC_FLAG_EXPLAIN_ONLY)
		return;
	foreach(lc, queryDesc->estate->es_opened_result_relations)
	{
		ResultRelInfo *rri = (ResultRelInfo *) lfirst(lc);
		Relation	rel = rri->ri_RelationDesc;
		TupleConstr *constr = RelationGetDescr(rel)->constr;

		if (constr == NULL || constr->num_check == 0 ||
			LOCKCTL_RRI_CHECK_EXPRS(rri) != NULL ||
			rel->rd_rel->relkind != RELKIND_RELATION)
			continue;
		LOCKCTL_RRI_CHECK_EXPRS(rri) = kept_checks(rel);
	}
}

/*
 * Install the ExecutorStart hook and the invalidation callbacks (from
 * ReserveInit()).
 */
void
ReserveChecksInit(void)
{
	prev_ExecutorStart = ExecutorStart_hook;
	ExecutorStart_hook = kept_ExecutorStart;
	CacheRegisterRelcacheCallback(kept_relcache_inval, (Datum) 0);
	CacheRegisterSyscacheCallback(NAMESPACEOID, kept_nsp_inval, (Datum) 0);
	CacheRegisterSyscacheCallback(PROCOID, kept_proc_inval, (Datum) 0);
}
