/*-------------------------------------------------------------------------
 *
 * version_statement.c
 *	  What a statement does with the version column of each versioned table
 *	  it writes: decided from its plan when the executor starts it, handed
 *	  to the version trigger, and, when it ends, its stale matches counted.
 *
 * A row trigger sees rows, not statements: it cannot tell
 * SET version = 6 WHERE version = 5 from SET version = version + 1.  The
 * plan can.  For every ModifyTable node of a statement (the statement's
 * own, and those of its writable CTEs), and every result relation of it
 * that has lockctl's version trigger, ExecutorStart decides:
 *
 *	where_checked	the rows the UPDATE or DELETE reaches pass
 *					"version = <value the client sent>" (a constant or a
 *					parameter: prepared statements, PL/pgSQL variables, SQL
 *					function arguments), in the scan of that table or in a
 *					MERGE action's condition or ON CONFLICT's WHERE;
 *	assign			what the UPDATE sets the version to: nothing, the
 *					version itself (overwrite), a value derived from it
 *					(version + 1, COALESCE(version, 0) + 1), or a value not
 *					derived from it (sent); anything lockctl cannot follow
 *					(a subquery) is "unknown" and refused.
 *
 * The verdict lives in the statement's memory and reaches the trigger
 * through the FmgrInfo of that result relation's trigger, which the
 * executor keeps per statement and per result relation: nested statements
 * (PL/pgSQL, SQL functions, other triggers) each have their own, so they
 * never see each other's verdicts.  Partitions that tuple routing opens
 * while the statement runs (INSERT ... ON CONFLICT DO UPDATE into a
 * partitioned table) find the verdict of their statement on the stack of
 * running statements instead.  A trigger that finds no verdict refuses the
 * write: a path lockctl did not classify never passes silently.
 *
 * The stack of running statements holds one entry per statement that
 * writes a versioned table, in the statement's memory; a callback on that
 * memory takes it off when the statement ends, on error too.
 *
 * src/version_statement.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "executor/executor.h"
#include "miscadmin.h"
#include "nodes/execnodes.h"
#include "nodes/nodeFuncs.h"
#include "nodes/plannodes.h"
#include "parser/parse_relation.h"
#include "parser/parsetree.h"
#include "utils/inval.h"
#include "utils/lsyscache.h"
#include "utils/rel.h"
#include "utils/syscache.h"

#include "version.h"

/* One ModifyTable node of a running statement. */
typedef struct VersionStmtGroup
{
	VersionModifyGroup counts;	/* rows the trigger saw */
	CmdType		operation;
	bool		checked;		/* every row must pass the WHERE check */
	Oid			rootrelid;		/* the table versioning was enabled on */
	VersionVerdict *routed;		/* ON CONFLICT: for the routed partitions */
	bool		direct;			/* the statement bumps the version itself
								 * (version_direct.c): rows counted at its end */
	bool		counted;		/* its table has counters (not temporary) */
	VersionRowCheck *rowcheck;	/* the projection checks each row, or NULL */
	struct VersionStmtGroup *next;	/* the statement's next group */
} VersionStmtGroup;

/* A running statement that writes a versioned table. */
typedef struct VersionStmt
{
	QueryDesc  *qd;
	struct VersionStmt *outer;	/* the statement running around it */
	VersionStmtGroup *groups;	/* linked through next: no List to build
								 * for the one group most statements have */
	VersionStmtGroup **tail;	/* where the next group is linked */
	bool		linked;
	MemoryContextCallback cb;
	VersionStmtGroup first;		/* the first of groups, made with it */
} VersionStmt;

/*
 * A verdict and the trigger state that hands it over, made together (one
 * allocation per versioned result relation of a statement).
 */
typedef struct VersionVerdictState
{
	VersionVerdict verdict;		/* first: a VersionVerdict * is one of these */
	VersionTrigState st;
} VersionVerdictState;

/* The versioned result relations of one ModifyTable node. */
typedef struct VersionCtx
{
	PlannedStmt *pstmt;
	ModifyTable *mt;
	int			nrels;
	Index	   *rtis;
	Oid		   *relids;
	AttrNumber *vatts;
	int			depth;
} VersionCtx;

/* What tracing an expression found. */
#define VT_VARS		0x01		/* it reads some column */
#define VT_SELF		0x02		/* it reads a versioned table's version */
#define VT_UNKNOWN	0x04		/* it reads something not followed */

#define VT_MAX_DEPTH	64

typedef struct TraceCxt
{
	Plan	   *plan;
	VersionCtx *cx;
	int			flags;
} TraceCxt;

/*
 * Operators lately found to be, or not to be, the equality of a btree
 * operator family: every checked statement asks of its "version = $n",
 * mostly of one or two operators.  Forgotten when pg_amop changes.
 */
#define VERSION_EQ_CACHE	8

typedef struct VersionEqEntry
{
	Oid			opno;
	bool		equality;
} VersionEqEntry;

static VersionEqEntry eq_cache[VERSION_EQ_CACHE];
static int	eq_cache_n = 0;
static int	eq_cache_next = 0;	/* the slot a new operator takes */
static bool eq_cache_registered = false;

static ExecutorStart_hook_type prev_ExecutorStart = NULL;
static ExecutorEnd_hook_type prev_ExecutorEnd = NULL;
static VersionStmt *running = NULL;
static Oid	uv_pending = InvalidOid;

static void version_ExecutorStart(QueryDesc *queryDesc, int eflags);
static void version_ExecutorEnd(QueryDesc *queryDesc);

/*
 * Install the executor hooks (from VersionInit()).
 */
void
VersionStatementInit(void)
{
	prev_ExecutorStart = ExecutorStart_hook;
	ExecutorStart_hook = version_ExecutorStart;
	prev_ExecutorEnd = ExecutorEnd_hook;
	ExecutorEnd_hook = version_ExecutorEnd;
}

/*
 * update_versioned() runs its UPDATE next: that statement proves the
 * version by the value it assigns, in every mode.  The flag is taken by
 * the next UPDATE of relid that starts, and cleared by version_uv_end().
 */
void
version_uv_begin(Oid relid)
{
	uv_pending = relid;
}

void
version_uv_end(void)
{
	uv_pending = InvalidOid;
}

/* ---------------------------------------------------------------------
 * Following an expression through the plan
 * ---------------------------------------------------------------------
 */

static int	version_trace(Node *expr, Plan *plan, VersionCtx *cx);
static bool version_is_own(Node *expr, Plan *plan, VersionCtx *cx);

/* Is varno/attno the version (or the whole row) of a versioned table? */
static bool
version_var_is_version(VersionCtx *cx, Index varno, AttrNumber attno)
{
	RangeTblEntry *rte = rt_fetch(varno, cx->pstmt->rtable);

	if (rte->rtekind != RTE_RELATION)
		return false;
	for (int i = 0; i < cx->nrels; i++)
	{
		if (cx->relids[i] == rte->relid &&
			(attno == cx->vatts[i] || attno == InvalidAttrNumber))
			return true;
	}
	return false;
}

/* The plan whose output a Var of plan with this varno reads, or NULL. */
static Plan *
version_var_source(Var *var, Plan *plan, VersionCtx *cx, bool *client)
{
	*client = false;
	switch (var->varno)
	{
		case OUTER_VAR:
			return outerPlan(plan);
		case INNER_VAR:
			if (IsA(plan, ModifyTable))
			{
				/* MERGE: the subplan's row; ON CONFLICT: the proposed row */
				if (((ModifyTable *) plan)->operation == CMD_MERGE)
					return outerPlan(plan);
				*client = true;
				return NULL;
			}
			return innerPlan(plan);
		case INDEX_VAR:
		case ROWID_VAR:
			return NULL;
		default:
			if (IsA(plan, SubqueryScan) &&
				var->varno == ((Scan *) plan)->scanrelid)
				return ((SubqueryScan *) plan)->subplan;
			if (IsA(plan, CteScan) &&
				var->varno == ((Scan *) plan)->scanrelid)
				return (Plan *) list_nth(cx->pstmt->subplans,
										 ((CteScan *) plan)->ctePlanId - 1);
			return NULL;
	}
}

/* The children an Append or MergeAppend reads OUTER_VARs from, or NIL. */
static List *
version_append_children(Plan *plan)
{
	if (IsA(plan, Append))
		return ((Append *) plan)->appendplans;
	if (IsA(plan, MergeAppend))
		return ((MergeAppend *) plan)->mergeplans;
	return NIL;
}

/* Trace output column attno of plan. */
static int
version_trace_column(Plan *plan, AttrNumber attno, VersionCtx *cx)
{
	TargetEntry *tle;

	if (plan == NULL || attno <= 0 || attno > list_length(plan->targetlist))
		return VT_UNKNOWN;
	tle = (TargetEntry *) list_nth(plan->targetlist, attno - 1);
	return version_trace((Node *) tle->expr, plan, cx);
}

static int
version_trace_var(Var *var, Plan *plan, VersionCtx *cx)
{
	List	   *kids;
	Plan	   *src;
	bool		client;
	int			flags = 0;
	ListCell   *lc;

	if (var->varno == OUTER_VAR &&
		(kids = version_append_children(plan)) != NIL)
	{
		foreach(lc, kids)
			flags |= version_trace_column((Plan *) lfirst(lc), var->varattno, cx);
		return flags;
	}
	src = version_var_source(var, plan, cx, &client);
	if (client)
		return VT_VARS;
	if (src != NULL)
		return version_trace_column(src, var->varattno, cx);
	if (IS_SPECIAL_VARNO(var->varno))
		return VT_UNKNOWN;
	return VT_VARS | (version_var_is_version(cx, var->varno, var->varattno) ?
					  VT_SELF : 0);
}

static bool
version_trace_walker(Node *node, TraceCxt *t)
{
	if (node == NULL)
		return false;
	if (IsA(node, Var))
	{
		t->flags |= version_trace_var((Var *) node, t->plan, t->cx);
		return false;
	}
	if (IsA(node, Param))
	{
		/* PARAM_EXEC: a subquery's or another relation's value */
		if (((Param *) node)->paramkind != PARAM_EXTERN)
			t->flags |= VT_UNKNOWN;
		return false;
	}
	if (IsA(node, SubPlan) || IsA(node, AlternativeSubPlan) ||
		IsA(node, SubLink))
	{
		t->flags |= VT_UNKNOWN;
		return false;
	}
	return expression_tree_walker(node, version_trace_walker, (void *) t);
}

/*
 * What expr, evaluated in plan, reads: VT_* flags.  Vars of joins, appends,
 * subqueries and CTEs are followed to the column they come from.
 */
static int
version_trace(Node *expr, Plan *plan, VersionCtx *cx)
{
	TraceCxt	t;

	if (cx->depth >= VT_MAX_DEPTH)
		return VT_UNKNOWN;
	cx->depth++;
	t.plan = plan;
	t.cx = cx;
	t.flags = 0;
	(void) version_trace_walker(expr, &t);
	cx->depth--;
	return t.flags;
}

/* expr without the casts that keep a value's meaning for equality */
static Node *
version_strip(Node *expr)
{
	for (;;)
	{
		if (expr == NULL)
			return NULL;
		if (IsA(expr, RelabelType))
			expr = (Node *) ((RelabelType *) expr)->arg;
		else if (IsA(expr, CoerceViaIO))
			expr = (Node *) ((CoerceViaIO *) expr)->arg;
		else if (IsA(expr, FuncExpr) &&
				 (((FuncExpr *) expr)->funcformat == COERCE_IMPLICIT_CAST ||
				  ((FuncExpr *) expr)->funcformat == COERCE_EXPLICIT_CAST) &&
				 list_length(((FuncExpr *) expr)->args) == 1)
			expr = (Node *) linitial(((FuncExpr *) expr)->args);
		else
			return expr;
	}
}

/*
 * Is expr, evaluated in plan, the result relation's own version column,
 * unchanged (version = version)?
 */
static bool
version_is_own(Node *expr, Plan *plan, VersionCtx *cx)
{
	Var		   *var;
	List	   *kids;
	Plan	   *src;
	bool		client;
	ListCell   *lc;
	bool		own = true;

	while (expr != NULL && IsA(expr, RelabelType))
		expr = (Node *) ((RelabelType *) expr)->arg;
	if (expr == NULL || !IsA(expr, Var) || cx->depth >= VT_MAX_DEPTH)
		return false;
	var = (Var *) expr;
	cx->depth++;
	if (var->varno == OUTER_VAR &&
		(kids = version_append_children(plan)) != NIL)
	{
		foreach(lc, kids)
		{
			Plan	   *kid = (Plan *) lfirst(lc);

			if (var->varattno <= 0 || var->varattno > list_length(kid->targetlist) ||
				!version_is_own((Node *) ((TargetEntry *) list_nth(kid->targetlist, var->varattno - 1))->expr, kid, cx))
				own = false;
		}
	}
	else if ((src = version_var_source(var, plan, cx, &client)) != NULL)
		own = (var->varattno > 0 && var->varattno <= list_length(src->targetlist) &&
			   version_is_own((Node *) ((TargetEntry *) list_nth(src->targetlist, var->varattno - 1))->expr, src, cx));
	else if (client || IS_SPECIAL_VARNO(var->varno))
		own = false;
	else
	{
		own = false;
		for (int i = 0; i < cx->nrels; i++)
		{
			if (cx->rtis[i] == var->varno && cx->vatts[i] == var->varattno)
				own = true;
		}
	}
	cx->depth--;
	return own;
}

static void
version_eq_cache_reset(Datum arg, int cacheid, uint32 hashvalue)
{
	eq_cache_n = 0;
	eq_cache_next = 0;
	version_plan_invalidate(InvalidOid);
}

/* Is opno "=" of some btree operator family? */
bool
version_op_is_equality(Oid opno)
{
	bool		equality;

	for (int i = 0; i < eq_cache_n; i++)
	{
		if (eq_cache[i].opno == opno)
			return eq_cache[i].equality;
	}
	if (!eq_cache_registered)
	{
		CacheRegisterSyscacheCallback(AMOPOPID, version_eq_cache_reset,
									  (Datum) 0);
		eq_cache_registered = true;
	}
	equality = (get_mergejoin_opfamilies(opno) != NIL);
	eq_cache[eq_cache_next].opno = opno;
	eq_cache[eq_cache_next].equality = equality;
	eq_cache_next = (eq_cache_next + 1) % VERSION_EQ_CACHE;
	if (eq_cache_n < VERSION_EQ_CACHE)
		eq_cache_n++;
	return equality;
}

/*
 * Is clause, evaluated in plan, "version = <value not derived from the
 * version>" for a result relation?  In the scan of the table (scan_rti
 * set) the value must be a constant or a parameter; in a MERGE action's
 * condition or ON CONFLICT's WHERE it may come from the source row.
 */
static bool
version_is_check(Node *clause, Plan *plan, VersionCtx *cx, Index scan_rti,
				 AttrNumber scan_vatt)
{
	OpExpr	   *op;

	if (clause == NULL || !IsA(clause, OpExpr))
		return false;
	op = (OpExpr *) clause;
	/*
	 * An equality of a btree operator family: what "=" means for the
	 * version's type, and nothing a role could define to match every row
	 * (operator families are made by superusers).
	 */
	if (list_length(op->args) != 2 || !version_op_is_equality(op->opno))
		return false;
	for (int side = 0; side < 2; side++)
	{
		Node	   *mine = version_strip((Node *) list_nth(op->args, side));
		Node	   *other = (Node *) list_nth(op->args, 1 - side);
		int			flags;

		if (scan_rti != 0)
		{
			if (!IsA(mine, Var) || ((Var *) mine)->varno != scan_rti ||
				((Var *) mine)->varattno != scan_vatt)
				continue;
			flags = version_trace(other, plan, cx);
			if (flags == 0)
				return true;
		}
		else
		{
			if (!version_is_own(mine, plan, cx))
				continue;
			flags = version_trace(other, plan, cx);
			if ((flags & (VT_SELF | VT_UNKNOWN)) == 0)
				return true;
		}
	}
	return false;
}

/* Does any conjunct of quals (an implicit-AND list or one clause) check? */
static bool
version_quals_check(Node *quals, Plan *plan, VersionCtx *cx, Index scan_rti,
					AttrNumber scan_vatt)
{
	ListCell   *lc;

	if (quals == NULL)
		return false;
	if (IsA(quals, List))
	{
		foreach(lc, (List *) quals)
		{
			if (version_quals_check((Node *) lfirst(lc), plan, cx, scan_rti,
									scan_vatt))
				return true;
		}
		return false;
	}
	if (is_andclause(quals))
		return version_quals_check((Node *) ((BoolExpr *) quals)->args, plan,
								   cx, scan_rti, scan_vatt);
	return version_is_check(quals, plan, cx, scan_rti, scan_vatt);
}

/* The scan of range table entry rti in plan's tree, or NULL. */
Plan *
version_find_scan(Plan *plan, Index rti)
{
	List	   *kids;
	ListCell   *lc;
	Plan	   *found;

	if (plan == NULL)
		return NULL;
	check_stack_depth();
	switch (nodeTag(plan))
	{
		case T_SeqScan:
		case T_SampleScan:
		case T_IndexScan:
		case T_BitmapHeapScan:
		case T_TidScan:
		case T_TidRangeScan:
			return ((Scan *) plan)->scanrelid == rti ? plan : NULL;
		default:
			break;
	}
	if ((kids = version_append_children(plan)) != NIL)
	{
		foreach(lc, kids)
		{
			if ((found = version_find_scan((Plan *) lfirst(lc), rti)) != NULL)
				return found;
		}
		return NULL;
	}
	if ((found = version_find_scan(outerPlan(plan), rti)) != NULL)
		return found;
	return version_find_scan(innerPlan(plan), rti);
}

/*
 * Do the rows of result relation rti (version column vatt) reach the
 * ModifyTable only through "version = <client value>" in their scan?
 */
static bool
version_scan_checks(Plan *subplan, Index rti, AttrNumber vatt, VersionCtx *cx)
{
	Plan	   *scan = version_find_scan(subplan, rti);

	if (scan == NULL)
		return false;
	if (version_quals_check((Node *) scan->qual, scan, cx, rti, vatt))
		return true;
	if (IsA(scan, IndexScan) &&
		version_quals_check((Node *) ((IndexScan *) scan)->indexqualorig,
							scan, cx, rti, vatt))
		return true;
	if (IsA(scan, BitmapHeapScan) &&
		version_quals_check((Node *) ((BitmapHeapScan *) scan)->bitmapqualorig,
							scan, cx, rti, vatt))
		return true;
	return false;
}

/*
 * What targetlist (whose entries set the columns colnos, in order, and are
 * evaluated in plan) assigns to column vatt.
 */
static VersionAssign
version_assign_of(List *targetlist, List *colnos, AttrNumber vatt,
				  Plan *plan, VersionCtx *cx)
{
	int			k = 0;
	ListCell   *lc;

	foreach(lc, colnos)
	{
		if (lfirst_int(lc) == vatt)
		{
			TargetEntry *tle;
			int			flags;

			if (k >= list_length(targetlist))
				return VASSIGN_UNKNOWN;
			tle = (TargetEntry *) list_nth(targetlist, k);
			if (tle->resjunk)
				return VASSIGN_UNKNOWN;
			if (version_is_own((Node *) tle->expr, plan, cx))
				return VASSIGN_OVERWRITE;
			flags = version_trace((Node *) tle->expr, plan, cx);
			if (flags & VT_UNKNOWN)
				return VASSIGN_UNKNOWN;
			if (flags & VT_SELF)
				return VASSIGN_SELF;
			return VASSIGN_SENT;
		}
		k++;
	}
	return VASSIGN_NONE;
}

/* MERGE: the actions of result relation i. */
static void
version_merge_verdict(VersionVerdict *v, VersionCtx *cx, int i, Index rti,
					  AttrNumber vatt)
{
	ModifyTable *mt = cx->mt;
	List	   *actions = (List *) list_nth(mt->mergeActionLists, i);
	bool		scan = version_scan_checks(outerPlan(mt), rti, vatt, cx);
	bool		has_update = false;
	bool		updates_checked = true;
	bool		deletes_checked = true;
	ListCell   *lc;

	v->assign = VASSIGN_OVERWRITE;
	foreach(lc, actions)
	{
		MergeAction *action = (MergeAction *) lfirst(lc);
		bool		checked;

		if (action->commandType != CMD_UPDATE &&
			action->commandType != CMD_DELETE)
			continue;
		checked = version_quals_check(action->qual, (Plan *) mt, cx, 0, 0);
		if (action->commandType == CMD_DELETE)
		{
			deletes_checked &= checked;
			continue;
		}
		has_update = true;
		updates_checked &= checked;
		v->assign = Max(v->assign,
						version_assign_of(action->targetList,
										  action->updateColnos, vatt,
										  (Plan *) mt, cx));
	}
	if (!has_update)
		v->assign = VASSIGN_NONE;
	v->where_checked = scan || (has_update && updates_checked);
	v->delete_checked = scan || deletes_checked;
}

/* ---------------------------------------------------------------------
 * The verdicts of a statement
 * ---------------------------------------------------------------------
 */

/* The index of the version trigger in trigdesc, or -1. */
static int
version_trigger_index(TriggerDesc *trigdesc, Oid fnoid)
{
	if (trigdesc == NULL)
		return -1;
	for (int i = 0; i < trigdesc->numtriggers; i++)
	{
		if (trigdesc->triggers[i].tgfoid == fnoid)
			return i;
	}
	return -1;
}

/* Take stmt off the stack of running statements. */
static void
version_stmt_unlink(void *arg)
{
	VersionStmt *stmt = (VersionStmt *) arg;
	VersionStmt **p;

	if (!stmt->linked)
		return;
	for (p = &running; *p != NULL; p = &(*p)->outer)
	{
		if (*p == stmt)
		{
			*p = stmt->outer;
			break;
		}
	}
	stmt->linked = false;
}

/* The running-statement entry of queryDesc, made when first needed. */
static VersionStmt *
version_stmt_of(QueryDesc *queryDesc, VersionStmt **stmt)
{
	EState	   *estate = queryDesc->estate;

	if (*stmt == NULL)
	{
		*stmt = MemoryContextAllocZero(estate->es_query_cxt, sizeof(VersionStmt));
		(*stmt)->qd = queryDesc;
		(*stmt)->outer = running;
		(*stmt)->tail = &(*stmt)->groups;
		(*stmt)->linked = true;
		(*stmt)->cb.func = version_stmt_unlink;
		(*stmt)->cb.arg = *stmt;
		MemoryContextRegisterResetCallback(estate->es_query_cxt, &(*stmt)->cb);
		running = *stmt;
	}
	return *stmt;
}

/* A new group of rows of the statement, for one ModifyTable node. */
static VersionStmtGroup *
version_new_group(QueryDesc *queryDesc, VersionStmt **stmt, CmdType op,
				  ResultRelInfo *rri, int t)
{
	VersionStmt *s = version_stmt_of(queryDesc, stmt);
	VersionStmtGroup *grp;

	grp = s->groups == NULL ? &s->first : palloc0(sizeof(VersionStmtGroup));

	grp->operation = op;
	grp->checked = true;
	grp->rootrelid = version_root_relid(&rri->ri_TrigDesc->triggers[t],
										RelationGetRelid(rri->ri_RelationDesc));
	*s->tail = grp;
	s->tail = &grp->next;
	return grp;
}

/*
 * The UPDATE of grp stores the version itself (how: path, with what was
 * found of its plan, dp): its rows counted at the end.  Returns false if
 * the trigger checks its rows.
 */
static bool
version_group_direct(VersionStmtGroup *grp, EState *estate, ResultRelInfo *rri,
					 VersionDirectPath path, VersionDirectPlan *dp)
{
	VersionRowCheck *rc;

	if (path == VDIRECT_NONE)
		return false;
	grp->direct = true;
	grp->counted = rri->ri_RelationDesc->rd_rel->relpersistence !=
		RELPERSISTENCE_TEMP;
	if (path == VDIRECT_ROW)
	{
		/* what its calls of version_next look for (in the statement's memory) */
		rc = palloc0(sizeof(VersionRowCheck));
		rc->dp = dp;
		rc->relid = RelationGetRelid(rri->ri_RelationDesc);
		rc->rootrelid = grp->rootrelid;
		rc->counted = grp->counted;
		rc->estate = estate;
		grp->rowcheck = rc;
	}
	return true;
}

/* Is this UPDATE of mt update_versioned()'s own? */
static bool
version_is_uv(PlannedStmt *pstmt, ModifyTable *mt)
{
	return mt->operation == CMD_UPDATE && OidIsValid(uv_pending) &&
		rt_fetch(mt->nominalRelation, pstmt->rtable)->relid == uv_pending;
}

/*
 * Hand verdict v to trigger t of rri: the executor looks the trigger
 * function up at its first call unless this FmgrInfo is set already; set,
 * it keeps our fn_extra.
 */
static void
version_hand_verdict(EState *estate, ResultRelInfo *rri, int t, Oid fnoid,
					 VersionVerdict *v)
{
	FmgrInfo   *finfo = &rri->ri_TrigFunctions[t];
	VersionTrigState *st;

	if (!OidIsValid(finfo->fn_oid))
		fmgr_info_copy(finfo, version_trigger_finfo(fnoid),
					   estate->es_query_cxt);
	st = &((VersionVerdictState *) v)->st;
	st->verdict = v;
	finfo->fn_extra = st;
}

/* A new verdict, zeroed, to be handed over by version_hand_verdict. */
static VersionVerdict *
version_new_verdict(void)
{
	return &((VersionVerdictState *) palloc0(sizeof(VersionVerdictState)))->verdict;
}

/*
 * The UPDATE of mtstate's only result relation, whose trigger is t, from
 * what was kept of its plan (version_plan.c): false if nothing was kept.
 * Decides what depends on this execution as version_classify_modify does.
 */
static bool
version_classify_kept(QueryDesc *queryDesc, ModifyTableState *mtstate,
					  int t, Oid fnoid, bool cascade, VersionStmt **stmt)
{
	EState	   *estate = queryDesc->estate;
	ModifyTable *mt = (ModifyTable *) mtstate->ps.plan;
	ResultRelInfo *rri = &mtstate->resultRelInfo[0];
	VersionPlanEntry *e;
	VersionStmtGroup *grp;
	VersionVerdict vd;
	VersionVerdict *v;
	MemoryContext oldcxt;

	e = version_plan_find(queryDesc->plannedstmt, mt);
	if (e == NULL || e->tgidx != t)
		return false;

	oldcxt = MemoryContextSwitchTo(estate->es_query_cxt);
	grp = version_new_group(queryDesc, stmt, CMD_UPDATE, rri, t);
	memset(&vd, 0, sizeof(vd));
	vd.operation = CMD_UPDATE;
	vd.cascade = cascade;
	vd.uv = version_is_uv(queryDesc->plannedstmt, mt);
	vd.group = &grp->counts;
	vd.where_checked = e->where_checked;
	vd.assign = e->assign;
	grp->checked &= vd.where_checked;

	/*
	 * Taken, the direct path leaves the trigger out of this statement: the
	 * verdict, on the stack, is never handed over.
	 */
	if (!version_group_direct(grp, estate, rri,
							 version_direct_update(queryDesc, mtstate, t, &vd,
												   e->direct),
							 e->direct))
	{
		v = version_new_verdict();
		*v = vd;
		version_hand_verdict(estate, rri, t, fnoid, v);
	}
	MemoryContextSwitchTo(oldcxt);
	return true;
}

/*
 * The UPDATE of result relation rri (trigger t, version column vatt) with
 * verdict v, made now: its direct path, kept for the plan's next
 * executions where the plan is a generic one.
 */
static void
version_classify_update(QueryDesc *queryDesc, ModifyTableState *mtstate,
						ResultRelInfo *rri, int t, AttrNumber vatt,
						VersionVerdict *v, VersionStmtGroup *grp)
{
	ModifyTable *mt = (ModifyTable *) mtstate->ps.plan;
	VersionDirectPlan *dp = version_direct_plan(queryDesc, mtstate, t, vatt, v);
	VersionPlanEntry *e;

	if (dp != NULL && (dp->params || dp->rowtlist != NIL))
	{
		MemoryContext oldcxt = CurrentMemoryContext;

		e = version_plan_keep(queryDesc->plannedstmt, mt,
							  RelationGetRelid(rri->ri_RelationDesc));
		if (e != NULL)
		{
			e->tgidx = t;
			e->vatt = vatt;
			e->where_checked = v->where_checked;
			e->assign = v->assign;
			e->direct = version_direct_plan_copy(dp);
			MemoryContextSwitchTo(oldcxt);
		}
	}
	(void) version_group_direct(grp, queryDesc->estate, rri,
								version_direct_update(queryDesc, mtstate, t, v, dp),
								dp);
}

/*
 * Decide on every versioned result relation of one ModifyTable node, and
 * hand each verdict to that relation's trigger.
 */
static void
version_classify_modify(QueryDesc *queryDesc, ModifyTableState *mtstate,
						Oid fnoid, bool cascade, VersionStmt **stmt)
{
	EState	   *estate = queryDesc->estate;
	ModifyTable *mt = (ModifyTable *) mtstate->ps.plan;
	CmdType		op = mt->operation;
	VersionCtx	cx;
	int		   *tgidx;
	VersionStmtGroup *grp = NULL;
	MemoryContext oldcxt;
	bool		uv;

	if (op == CMD_INSERT && mt->onConflictAction != ONCONFLICT_UPDATE)
		return;					/* the trigger's INSERT rule needs nothing */
	if (op != CMD_INSERT && op != CMD_UPDATE && op != CMD_DELETE &&
		op != CMD_MERGE)
		return;

	/* a generic plan's UPDATE of one table: what was found of it before */
	if (op == CMD_UPDATE && mtstate->mt_nrels == 1)
	{
		int			t = version_trigger_index(mtstate->resultRelInfo[0].ri_TrigDesc,
											  fnoid);

		if (t < 0)
			return;
		if (version_classify_kept(queryDesc, mtstate, t, fnoid, cascade, stmt))
			return;
	}

	oldcxt = MemoryContextSwitchTo(estate->es_query_cxt);
	memset(&cx, 0, sizeof(cx));
	cx.pstmt = queryDesc->plannedstmt;
	cx.mt = mt;
	cx.rtis = palloc(sizeof(Index) * mtstate->mt_nrels);
	cx.relids = palloc(sizeof(Oid) * mtstate->mt_nrels);
	cx.vatts = palloc(sizeof(AttrNumber) * mtstate->mt_nrels);
	tgidx = palloc(sizeof(int) * mtstate->mt_nrels);

	/* The versioned result relations: a first pass, for the tracing. */
	for (int i = 0; i < mtstate->mt_nrels; i++)
	{
		ResultRelInfo *rri = &mtstate->resultRelInfo[i];
		int			t = version_trigger_index(rri->ri_TrigDesc, fnoid);
		Trigger    *tg;
		AttrNumber	vatt;

		tgidx[i] = -1;
		if (t < 0)
			continue;
		tg = &rri->ri_TrigDesc->triggers[t];
		/* a broken trigger: it raises its own error when it fires */
		if (tg->tgnargs < 1)
			continue;
		vatt = attnameAttNum(rri->ri_RelationDesc, tg->tgargs[0], false);
		if (vatt <= 0)
			continue;
		tgidx[i] = t;
		cx.rtis[cx.nrels] = rri->ri_RangeTableIndex;
		cx.relids[cx.nrels] = RelationGetRelid(rri->ri_RelationDesc);
		cx.vatts[cx.nrels] = vatt;
		cx.nrels++;
	}
	if (cx.nrels == 0)
	{
		MemoryContextSwitchTo(oldcxt);
		return;
	}
	uv = version_is_uv(cx.pstmt, mt);

	for (int i = 0, r = 0; i < mtstate->mt_nrels; i++)
	{
		ResultRelInfo *rri = &mtstate->resultRelInfo[i];
		VersionVerdict *v;
		Index		rti;
		AttrNumber	vatt;

		if (tgidx[i] < 0)
			continue;
		rti = cx.rtis[r];
		vatt = cx.vatts[r];
		r++;

		if (grp == NULL)
			grp = version_new_group(queryDesc, stmt, op, rri, tgidx[i]);

		v = version_new_verdict();
		v->operation = op;
		v->cascade = cascade;
		v->group = &grp->counts;
		v->assign = VASSIGN_NONE;
		v->uv = uv;				/* before the direct path, which it keeps out */
		switch (op)
		{
			case CMD_UPDATE:
				v->where_checked = version_scan_checks(outerPlan(mt), rti, vatt, &cx);
				v->assign = version_assign_of(outerPlan(mt)->targetlist,
											  (List *) list_nth(mt->updateColnosLists, i),
											  vatt, outerPlan(mt), &cx);
				grp->checked &= v->where_checked;
				version_classify_update(queryDesc, mtstate, rri, tgidx[i], vatt,
										v, grp);
				break;
			case CMD_DELETE:
				v->delete_checked = version_scan_checks(outerPlan(mt), rti, vatt, &cx);
				grp->checked &= v->delete_checked;
				break;
			case CMD_MERGE:
				version_merge_verdict(v, &cx, i, rti, vatt);
				grp->checked = false;	/* no row matched is no conflict */
				break;
			case CMD_INSERT:
				v->where_checked = version_quals_check(mt->onConflictWhere,
													   (Plan *) mt, &cx, 0, 0);
				v->assign = version_assign_of(mt->onConflictSet,
											  mt->onConflictCols, vatt,
											  (Plan *) mt, &cx);
				grp->checked = false;
				grp->routed = v;
				break;
			default:
				break;
		}
		version_hand_verdict(estate, rri, tgidx[i], fnoid, v);
	}
	MemoryContextSwitchTo(oldcxt);
}

/*
 * ExecutorStart: decide on the statement's writes of versioned tables.
 */
static void
version_ExecutorStart(QueryDesc *queryDesc, int eflags)
{
	EState	   *estate;
	PlannedStmt *pstmt = queryDesc->plannedstmt;
	VersionStmt *stmt = NULL;
	Oid			fnoid;
	bool		cascade;
	ListCell   *lc;

	if (prev_ExecutorStart)
		prev_ExecutorStart(queryDesc, eflags);
	else
		standard_ExecutorStart(queryDesc, eflags);

	if ((eflags & EXEC_FLAG_EXPLAIN_ONLY) ||
		(queryDesc->operation == CMD_SELECT && !pstmt->hasModifyingCTE))
		return;
	fnoid = version_trigger_fn(true);
	if (!OidIsValid(fnoid))
		return;

	/*
	 * Referential actions (ON DELETE CASCADE, ON UPDATE SET NULL, ...) run
	 * their statements as the table owner with row security not forced,
	 * and nothing else does: they follow a write that was checked on the
	 * referenced table, and the version of the rows they change is bumped.
	 */
	cascade = InNoForceRLSOperation();

	estate = queryDesc->estate;
	if (queryDesc->planstate && IsA(queryDesc->planstate, ModifyTableState))
		version_classify_modify(queryDesc,
								(ModifyTableState *) queryDesc->planstate,
								fnoid, cascade, &stmt);
	foreach(lc, estate->es_subplanstates)
	{
		PlanState  *ps = (PlanState *) lfirst(lc);

		if (ps && IsA(ps, ModifyTableState))
			version_classify_modify(queryDesc, (ModifyTableState *) ps,
									fnoid, cascade, &stmt);
	}
	if (queryDesc->operation == CMD_UPDATE)
		uv_pending = InvalidOid;
}

/*
 * ExecutorEnd: a checked UPDATE or DELETE whose version predicate matched
 * no row met a conflict (or a row that is gone): count it.
 */
static void
version_ExecutorEnd(QueryDesc *queryDesc)
{
	VersionStmt *stmt;

	for (stmt = running; stmt != NULL; stmt = stmt->outer)
	{
		if (stmt->qd == queryDesc)
			break;
	}
	if (stmt != NULL)
	{
		for (VersionStmtGroup *grp = stmt->groups; grp != NULL; grp = grp->next)
		{
			/*
			 * The rows the trigger would have seen: those it updated
			 * (counted as checked here, unless version_next counted them
			 * as it checked them).
			 */
			if (grp->direct)
			{
				VersionRowCheck *rc = grp->rowcheck;

				grp->counts.rows = queryDesc->estate->es_processed;

				/*
				 * The last row that passed version_next's check was not
				 * updated: another transaction changed it meanwhile, and
				 * its newest version no longer matched the WHERE clause
				 * (where the trigger is not fired at all).
				 */
				if (rc != NULL && rc->passed && rc->passed_at == grp->counts.rows)
					version_rowcheck_unpass(rc);
				if (grp->counted && grp->counts.rows > 0 && grp->rowcheck == NULL)
					version_stats_add(version_stats_entry(grp->rootrelid, true),
									  VSTAT_CHECKED, grp->counts.rows);
			}
			if (grp->checked && grp->counts.rows == 0 &&
				(grp->operation == CMD_UPDATE || grp->operation == CMD_DELETE))
				version_stats_bump(version_stats_entry(grp->rootrelid, true),
								   VSTAT_STALE);
		}
	}

	if (prev_ExecutorEnd)
		prev_ExecutorEnd(queryDesc);
	else
		standard_ExecutorEnd(queryDesc);
}

/*
 * The statement whose projection made the call expr of
 * lockctl_internal.version_next, among the running ones; NULL if none did.
 * The node is the statement's own (its plan's, or made for it), so no
 * other call can pass for it.
 */
VersionRowCheck *
version_running_rowcheck(Node *expr)
{
	if (expr == NULL)
		return NULL;
	for (VersionStmt *stmt = running; stmt != NULL; stmt = stmt->outer)
	{
		for (VersionStmtGroup *grp = stmt->groups; grp != NULL; grp = grp->next)
		{
			if (grp->rowcheck != NULL && grp->rowcheck->dp->rowexpr == expr)
				return grp->rowcheck;
		}
	}
	return NULL;
}

/*
 * The verdict of the running INSERT ... ON CONFLICT DO UPDATE into the
 * versioned table rootrelid, for a partition that tuple routing opened
 * after the statement started; NULL if there is none.
 */
VersionVerdict *
version_running_verdict(Oid rootrelid)
{
	for (VersionStmt *stmt = running; stmt != NULL; stmt = stmt->outer)
	{
		for (VersionStmtGroup *grp = stmt->groups; grp != NULL; grp = grp->next)
		{
			if (grp->routed != NULL && grp->rootrelid == rootrelid)
				return grp->routed;
		}
	}
	return NULL;
}
