/*-------------------------------------------------------------------------
 *
 * kept_exprs.c
 *	  The CHECK constraints and partial-index predicates of lockctl's own
 *	  tables, prepared once per backend instead of once per statement.
 *
 * The executor prepares a table's CHECK expressions (ExecRelCheck: parsed
 * from their stored text, planned, compiled) and the predicate of each of
 * its partial indexes (ExecInsertIndexTuples: planned and compiled) in
 * every statement that writes a row of it, and throws them away at the
 * statement's end.  On lockctl's hot paths that is most of what a write
 * costs beyond the row itself: a hot pool's reserve + confirm writes
 * lockctl.pool_slots twice and lockctl.reservations twice (one CHECK each,
 * four partial indexes on reservations), and spent about 20,000
 * instructions per CHECK and 4,000 to 5,000 per predicate preparing them.
 *
 * So an ExecutorStart hook hands every statement that writes a table of
 * schema lockctl the prepared expressions it keeps for it, in the slots
 * the executor fills only while they are empty (the ResultRelInfo's CHECK
 * expressions, each IndexInfo's predicate state), opening the table's
 * indexes for an INSERT, UPDATE or MERGE itself, as the executor would at
 * the first row (the IndexInfos are made then).  What is kept is what
 * the executor would have made, from the same relcache entries: the CHECKs
 * in the relcache's order, one per CHECK; the predicate as the IndexInfo
 * has it.  Only expressions that hold nothing of a statement are kept:
 * columns (none generated), constants, operators, function calls, boolean
 * connectives, IS [NOT] NULL, binary-compatible casts and = ANY of a
 * constant array (not hashed), calling only built-in functions and the C
 * functions of schema lockctl_internal (is_slot_row, is_hold_row,
 * is_range_hold_row), none of which keeps anything of a call.  They are
 * evaluated in the statement's own per-tuple context, so one serves every
 * statement of the backend.  Anything else (a CHECK a DBA added in SQL or
 * PL/pgSQL, a function replaced by one in another language), and every
 * table outside schema lockctl, is prepared per statement, as always.
 *
 * Two things ExecInitExpr does at preparation are done here per statement
 * instead, so that keeping changes nothing: the EXECUTE privilege on each
 * function, for the role the statement runs as (lacking it, the statement
 * prepares its own, and fails as it would, only if a row is checked), and
 * the object access hook.
 *
 * A change of the table or of the index (ALTER TABLE, a new CHECK, a new,
 * dropped or rebuilt index) sends a relcache invalidation, which marks its
 * entry stale; a change of any function marks every entry stale (a kept
 * expression calls the function as it was when prepared); a change of a
 * schema makes the hook look schema lockctl up again.  The next statement
 * prepares them again.  A stale set may still be in use by a statement in
 * progress (one that ran a nested statement after an invalidation came):
 * it is handed to the transaction's memory, and freed at its end.
 *
 * src/kept_exprs.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/htup_details.h"
#include "access/transam.h"
#include "access/xact.h"
#include "catalog/namespace.h"
#include "catalog/objectaccess.h"
#include "catalog/pg_language.h"
#include "catalog/pg_proc.h"
#include "executor/executor.h"
#include "miscadmin.h"
#include "nodes/nodeFuncs.h"
#include "optimizer/optimizer.h"
#include "utils/hsearch.h"
#include "utils/inval.h"
#include "utils/memutils.h"
#include "utils/rel.h"
#include "utils/syscache.h"

#include "compat.h"
#include "lockctl.h"

/*
 * The expressions kept for one table (its CHECKs) or one index (its
 * predicate), by the OID of that relation.
 */
typedef struct KeptEntry
{
	Oid			relid;			/* hash key */
	bool		valid;			/* made since the last invalidation */
	int			nexprs;			/* 0: not kept */
	ExprState **exprs;			/* CHECKs: the relcache's order */
	int			nfuncs;
	Oid		   *funcs;			/* every function they call */
	MemoryContext cxt;			/* all of the above */
} KeptEntry;

/* what kept_walker gathers of an expression */
typedef struct KeptWalk
{
	TupleDesc	desc;			/* the table's */
	bool		gather;			/* gather funcs (of the planned trees only) */
	List	   *funcs;			/* OIDs, each once */
} KeptWalk;

static HTAB *kept = NULL;
static Oid	kept_nsp = InvalidOid;	/* schema lockctl, when kept_nsp_known */
static Oid	kept_fn_nsp = InvalidOid;	/* schema lockctl_internal */
static bool kept_nsp_known = false;
static ExecutorStart_hook_type prev_ExecutorStart = NULL;

static void
kept_relcache_inval(Datum arg, Oid relid)
{
	HASH_SEQ_STATUS status;
	KeptEntry  *e;

	/* only marked: the callback may come in the middle of a statement */
	if (kept == NULL)
		return;
	if (OidIsValid(relid))
	{
		e = hash_search(kept, &relid, HASH_FIND, NULL);
		if (e != NULL)
			e->valid = false;
		return;
	}
	hash_seq_init(&status, kept);
	while ((e = hash_seq_search(&status)) != NULL)
		e->valid = false;
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

/* check_functions_in_node's checker: true for a function not to keep */
static bool
kept_function_refused(Oid funcid, void *context)
{
	KeptWalk   *w = (KeptWalk *) context;
	HeapTuple	tup;
	bool		ok;

	/*
	 * What ExecInitExpr checks EXECUTE of: the functions of the planned
	 * tree, once each.
	 */
	if (w->gather)
		w->funcs = list_append_unique_oid(w->funcs, funcid);
	if (funcid < FirstGenbkiObjectId)
		return false;			/* built in */
	tup = SearchSysCache1(PROCOID, ObjectIdGetDatum(funcid));
	if (!HeapTupleIsValid(tup))
		return true;
	{
		Form_pg_proc proc = (Form_pg_proc) GETSTRUCT(tup);

		ok = proc->prolang == ClanguageId && proc->pronamespace == kept_fn_nsp &&
			!proc->proretset;
	}
	ReleaseSysCache(tup);
	return !ok;
}

/* expression_tree_walker's walker: true for an expression not to keep */
static bool
kept_walker(Node *node, void *context)
{
	KeptWalk   *w = (KeptWalk *) context;

	if (node == NULL)
		return false;
	switch (nodeTag(node))
	{
		case T_Var:
			{
				Var		   *var = (Var *) node;

				return var->varattno <= 0 || var->varattno > w->desc->natts ||
					TupleDescAttr(w->desc, var->varattno - 1)->attgenerated != '\0';
			}
		case T_Const:
			return false;
		case T_ScalarArrayOpExpr:
			/* a hashed one builds its table in the statement's memory */
			if (OidIsValid(((ScalarArrayOpExpr *) node)->hashfuncid))
				return true;
			break;
		case T_List:
		case T_OpExpr:
		case T_FuncExpr:
		case T_BoolExpr:
		case T_NullTest:
		case T_RelabelType:
			break;
		default:
			return true;
	}
	if (check_functions_in_node(node, kept_function_refused, w))
		return true;
	return expression_tree_walker(node, kept_walker, context);
}

/*
 * Prepare into e, for a table of schema lockctl whose descriptor is desc,
 * the CHECK expressions given in their stored form (ccbin) or the index
 * predicate pred, if every one is of the kind kept.  Only for a role that
 * may execute their functions: ExecInitExpr would refuse the others, where
 * the executor (which prepares them only when a row is checked) might
 * never have.
 */
static void
kept_build(KeptEntry *e, const char *name, TupleDesc desc,
		   const ConstrCheck *checks, int ncheck, List *pred)
{
	MemoryContext cxt;
	MemoryContext oldcxt;
	int			n = checks != NULL ? ncheck : 1;
	Node	  **trees;
	ExprState **exprs;
	KeptWalk	w = {desc, false, NIL};
	bool		ok = true;
	ListCell   *lc;
	int			i;

	if (e->cxt != NULL)
	{
		/*
		 * A statement in progress may still use it: freed with the
		 * transaction.
		 */
		MemoryContextSetParent(e->cxt, TopTransactionContext);
		e->cxt = NULL;
	}
	e->nexprs = 0;
	e->exprs = NULL;
	e->nfuncs = 0;
	e->funcs = NULL;
	/* an invalidation from here on makes the next statement look again */
	e->valid = true;

	/* made under the statement's memory: an error frees it */
	cxt = AllocSetContextCreate(CurrentMemoryContext, "lockctl kept expressions",
								ALLOCSET_SMALL_SIZES);
	oldcxt = MemoryContextSwitchTo(cxt);
	trees = palloc0(sizeof(Node *) * n);
	exprs = palloc0(sizeof(ExprState *) * n);
	for (i = 0; i < n; i++)
	{
		Node	   *raw;

		if (checks != NULL && !LOCKCTL_CHECK_ENFORCED(&checks[i]))
		{
			ok = false;
			break;
		}
		/* what ExecRelCheck parses, or the IndexInfo's predicate */
		raw = checks != NULL ? stringToNode(checks[i].ccbin) : copyObject(pred);
		/*
		 * Both before planning (which may inline a SQL function, but only
		 * for a role that may execute it) and after.
		 */
		w.gather = false;
		if (kept_walker(raw, &w))
		{
			ok = false;
			break;
		}
		/* what ExecPrepareExpr and ExecPrepareQual plan */
		trees[i] = (Node *) expression_planner((Expr *) raw);
		w.gather = true;
		if (kept_walker(trees[i], &w))
		{
			ok = false;
			break;
		}
	}
	if (ok)
	{
		foreach(lc, w.funcs)
		{
			if (object_aclcheck(ProcedureRelationId, lfirst_oid(lc), GetUserId(),
								ACL_EXECUTE) != ACLCHECK_OK)
			{
				/* another role's statement may keep them */
				e->valid = false;
				ok = false;
				break;
			}
		}
	}
	if (!ok)
	{
		MemoryContextSwitchTo(oldcxt);
		MemoryContextDelete(cxt);
		return;
	}
	for (i = 0; i < n; i++)
		exprs[i] = checks != NULL ? ExecInitExpr((Expr *) trees[i], NULL) :
			ExecInitQual((List *) trees[i], NULL);
	e->funcs = palloc(sizeof(Oid) * Max(list_length(w.funcs), 1));
	foreach(lc, w.funcs)
		e->funcs[e->nfuncs++] = lfirst_oid(lc);
	/* pg_backend_memory_contexts names them by their relation */
	MemoryContextSetIdentifier(cxt, pstrdup(name));
	MemoryContextSwitchTo(oldcxt);
	MemoryContextSetParent(cxt, CacheMemoryContext);
	e->cxt = cxt;
	e->exprs = exprs;
	e->nexprs = n;
}

/*
 * The entry of relation relid (named name), made again if stale: the
 * CHECKs of table rel (pred NIL) or the predicate pred of one of its
 * indexes.  NULL if they are not kept, or may not be used by the
 * statement's role.
 */
static KeptEntry *
kept_entry(Oid relid, const char *name, Relation rel, List *pred)
{
	TupleConstr *constr = RelationGetDescr(rel)->constr;
	KeptEntry  *e;
	bool		found;
	int			i;

	if (kept == NULL)
	{
		HASHCTL		ctl;

		ctl.keysize = sizeof(Oid);
		ctl.entrysize = sizeof(KeptEntry);
		ctl.hcxt = CacheMemoryContext;
		kept = hash_create("lockctl kept expressions by relation", 32, &ctl,
						   HASH_ELEM | HASH_BLOBS | HASH_CONTEXT);
	}
	e = hash_search(kept, &relid, HASH_ENTER, &found);
	if (!found)
	{
		e->valid = false;
		e->nexprs = 0;
		e->cxt = NULL;
	}
	if (!e->valid)
	{
		if (pred != NIL)
			kept_build(e, name, RelationGetDescr(rel), NULL, 0, pred);
		else if (constr->num_check == rel->rd_rel->relchecks)
			kept_build(e, name, RelationGetDescr(rel), constr->check,
					   constr->num_check, NIL);
		/* else ExecRelCheck reports the missing constraints */
	}
	if (e->nexprs == 0 || (pred == NIL && e->nexprs != constr->num_check))
		return NULL;

	for (i = 0; i < e->nfuncs; i++)
		if (object_aclcheck(ProcedureRelationId, e->funcs[i], GetUserId(),
							ACL_EXECUTE) != ACLCHECK_OK)
			return NULL;
	for (i = 0; i < e->nfuncs; i++)
		InvokeFunctionExecuteHook(e->funcs[i]);
	return e;
}

/*
 * Hand result relation rri of mts, a table of schema lockctl, its kept
 * CHECKs and index predicates where the executor has not prepared them
 * yet.
 */
static void
kept_give(ModifyTableState *mts, ResultRelInfo *rri, EState *estate)
{
	Relation	rel = rri->ri_RelationDesc;
	TupleConstr *constr = RelationGetDescr(rel)->constr;
	KeptEntry  *e;
	int			i;

	if (constr != NULL && constr->num_check > 0 &&
		LOCKCTL_RRI_CHECK_EXPRS(rri) == NULL)
	{
		e = kept_entry(RelationGetRelid(rel), RelationGetRelationName(rel), rel, NIL);
		if (e != NULL)
			LOCKCTL_RRI_CHECK_EXPRS(rri) = e->exprs;
	}

	/*
	 * The executor opens a table's indexes at its first INSERT or UPDATE of
	 * a row, and they are open only from then on: open them now, as it
	 * would (in the statement's memory; speculative for ON CONFLICT, as
	 * ExecInsert does), so that their predicates can be given too.  A
	 * DELETE writes no index entry.
	 */
	if (mts->operation == CMD_DELETE || !rel->rd_rel->relhasindex)
		return;
	if (rri->ri_IndexRelationDescs == NULL)
	{
		MemoryContext oldcxt = MemoryContextSwitchTo(estate->es_query_cxt);

		ExecOpenIndices(rri, ((ModifyTable *) mts->ps.plan)->onConflictAction !=
						ONCONFLICT_NONE);
		MemoryContextSwitchTo(oldcxt);
	}
	for (i = 0; i < rri->ri_NumIndices; i++)
	{
		IndexInfo  *ii = rri->ri_IndexRelationInfo[i];

		if (ii == NULL || ii->ii_Predicate == NIL || ii->ii_PredicateState != NULL ||
			rri->ri_IndexRelationDescs[i] == NULL)
			continue;
		e = kept_entry(RelationGetRelid(rri->ri_IndexRelationDescs[i]),
					   RelationGetRelationName(rri->ri_IndexRelationDescs[i]), rel,
					   ii->ii_Predicate);
		if (e != NULL)
			ii->ii_PredicateState = e->exprs[0];
	}
}

/* kept_give for each result relation of mts that is a table of lockctl */
static void
kept_give_modify(ModifyTableState *mts, EState *estate)
{
	int			i;

	for (i = 0; i < mts->mt_nrels; i++)
	{
		ResultRelInfo *rri = &mts->resultRelInfo[i];
		Relation	rel = rri->ri_RelationDesc;

		if (RelationGetNamespace(rel) == kept_nsp &&
			rel->rd_rel->relkind == RELKIND_RELATION)
			kept_give(mts, rri, estate);
	}
}

static void
kept_ExecutorStart(QueryDesc *queryDesc, int eflags)
{
	EState	   *estate;
	ListCell   *lc;

	if (prev_ExecutorStart)
		prev_ExecutorStart(queryDesc, eflags);
	else
		standard_ExecutorStart(queryDesc, eflags);

	estate = queryDesc->estate;
	if ((eflags & EXEC_FLAG_EXPLAIN_ONLY) || estate->es_opened_result_relations == NIL)
		return;
	if (!kept_nsp_known)
	{
		kept_nsp = get_namespace_oid("lockctl", true);
		kept_fn_nsp = get_namespace_oid("lockctl_internal", true);
		kept_nsp_known = true;
	}
	if (!OidIsValid(kept_nsp))
		return;

	/* the statement's writes: its own, and those of WITH ... (UPDATE ...) */
	if (queryDesc->planstate && IsA(queryDesc->planstate, ModifyTableState))
		kept_give_modify((ModifyTableState *) queryDesc->planstate, estate);
	foreach(lc, estate->es_subplanstates)
	{
		PlanState  *ps = (PlanState *) lfirst(lc);

		if (ps && IsA(ps, ModifyTableState))
			kept_give_modify((ModifyTableState *) ps, estate);
	}
}

/*
 * Install the ExecutorStart hook and the invalidation callbacks.
 */
void
KeptExprsInit(void)
{
	prev_ExecutorStart = ExecutorStart_hook;
	ExecutorStart_hook = kept_ExecutorStart;
	CacheRegisterRelcacheCallback(kept_relcache_inval, (Datum) 0);
	CacheRegisterSyscacheCallback(NAMESPACEOID, kept_nsp_inval, (Datum) 0);
	CacheRegisterSyscacheCallback(PROCOID, kept_proc_inval, (Datum) 0);
}
