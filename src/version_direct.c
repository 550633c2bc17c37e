/*-------------------------------------------------------------------------
 *
 * version_direct.c
 *	  The version bump of a plain checked UPDATE, made by the statement's
 *	  own projection instead of the row trigger.
 *
 * "UPDATE t SET ... WHERE id = $1 AND version = $2" is what every ORM
 * sends.  The version trigger would store version + 1 in each row it
 * reaches, but PostgreSQL locks every row before a BEFORE ROW trigger sees
 * it (GetTupleForTrigger), and that lock is most of what a checked UPDATE
 * costs over a plain one (bench/README.md).  For such a statement the
 * outcome of the trigger is known when the statement starts: every row it
 * reaches matched the version the client sent, and gets that version + 1.
 * So the statement's new-row projection stores that value (a constant of
 * the execution) itself, and this statement's copy of the table's trigger
 * flags leaves the BEFORE ROW UPDATE trigger out.  Where the statement sets
 * the version to the one it compares plus one (the ORM form), its own
 * projection already stores what the trigger would: the trigger is left
 * out and nothing else changes.  Under READ COMMITTED a row updated
 * concurrently is re-checked (EvalPlanQual) against the version sent, and
 * updated only if its newest version is still that one, as the trigger
 * would have seen it.
 *
 * Taken only where the result is the trigger's own, to the error: one
 * result relation, an ordinary table that is not the target of partition
 * routing, the lockctl trigger the only BEFORE ROW UPDATE trigger, without
 * WHEN, one that fires in this session_replication_role, with valid
 * arguments; the version compared through an integer equality (int2, int4,
 * int8, across widths too: a row that passes it has exactly the value
 * compared) with a constant or parameter whose value
 * is known now and below the type's maximum (so the bump cannot overflow,
 * where the trigger would raise its own error); no stored generated
 * column; not EXPLAIN ANALYZE (which shows the trigger's calls).  Anything
 * else keeps the trigger.  The counters the trigger would bump per row are
 * bumped when the statement ends, by the rows it processed.
 *
 * src/version_direct.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/tableam.h"
#include "catalog/pg_trigger.h"
#include "catalog/pg_type.h"
#include "commands/trigger.h"
#include "executor/executor.h"
#include "nodes/makefuncs.h"
#include "nodes/nodeFuncs.h"
#include "utils/fmgroids.h"
#include "utils/lsyscache.h"
#include "utils/rel.h"

#include "version.h"

/* Would trigger tg fire for a row in this session? (trigger.c's rule) */
static bool
version_trigger_fires(Trigger *tg)
{
	if (SessionReplicationRole == SESSION_REPLICATION_ROLE_REPLICA)
		return tg->tgenabled == TRIGGER_FIRES_ON_REPLICA ||
			tg->tgenabled == TRIGGER_FIRES_ALWAYS;
	return tg->tgenabled == TRIGGER_FIRES_ON_ORIGIN ||
		tg->tgenabled == TRIGGER_FIRES_ALWAYS;
}

/* The value of a constant or a query parameter, if it can be known now. */
static bool
version_value_now(Node *node, EState *estate, int64 *value, bool *isnull)
{
	Oid			typid;
	Datum		d;

	while (node != NULL && IsA(node, RelabelType))
		node = (Node *) ((RelabelType *) node)->arg;
	if (node == NULL)
		return false;
	if (IsA(node, Const))
	{
		Const	   *c = (Const *) node;

		typid = c->consttype;
		*isnull = c->constisnull;
		d = c->constvalue;
	}
	else if (IsA(node, Param) && ((Param *) node)->paramkind == PARAM_EXTERN)
	{
		Param	   *p = (Param *) node;
		ParamListInfo params = estate->es_param_list_info;
		ParamExternData workspace;
		ParamExternData *prm;

		if (params == NULL || p->paramid <= 0 || p->paramid > params->numParams)
			return false;
		if (params->paramFetch != NULL)
			prm = params->paramFetch(params, p->paramid, false, &workspace);
		else
			prm = &params->params[p->paramid - 1];
		if (prm == NULL || prm->ptype != p->paramtype)
			return false;
		typid = p->paramtype;
		*isnull = prm->isnull;
		d = prm->value;
	}
	else
		return false;
	if (typid != INT2OID && typid != INT4OID && typid != INT8OID)
		return false;
	if (!*isnull)
		*value = version_from_datum(d, typid);
	return true;
}

/*
 * Is opfuncid the equality of two integers, of the same or of different
 * widths?  A row that passes "version = <value>" through one of these has
 * that very value, which is what lets the direct path store value + 1
 * without reading the row's version.  Any other equality of a btree
 * family (a superuser may make one that equates more than equal numbers)
 * keeps the trigger.
 */
static bool
version_func_is_int_eq(Oid opfuncid)
{
	switch (opfuncid)
	{
		case F_INT2EQ:
		case F_INT4EQ:
		case F_INT8EQ:
		case F_INT24EQ:
		case F_INT42EQ:
		case F_INT28EQ:
		case F_INT82EQ:
		case F_INT48EQ:
		case F_INT84EQ:
			return true;
		default:
			return false;
	}
}

/*
 * The values some conjunct of quals compares the version with through an
 * integer equality, "version = <constant or parameter>", appended to
 * dp->reads in the order of the conjuncts: the first whose value is known
 * when the statement starts is the one every row reached has.
 */
static void
version_quals_reads(Node *quals, Index rti, AttrNumber vatt,
					VersionDirectPlan *dp)
{
	ListCell   *lc;

	if (quals == NULL)
		return;
	if (IsA(quals, List))
	{
		foreach(lc, (List *) quals)
			version_quals_reads((Node *) lfirst(lc), rti, vatt, dp);
		return;
	}
	if (is_andclause(quals))
	{
		version_quals_reads((Node *) ((BoolExpr *) quals)->args, rti, vatt, dp);
		return;
	}
	if (IsA(quals, OpExpr) && list_length(((OpExpr *) quals)->args) == 2 &&
		version_func_is_int_eq(((OpExpr *) quals)->opfuncid))
	{
		OpExpr	   *op = (OpExpr *) quals;

		for (int side = 0; side < 2; side++)
		{
			Node	   *mine = (Node *) list_nth(op->args, side);
			Node	   *other = (Node *) list_nth(op->args, 1 - side);

			while (IsA(mine, RelabelType))
				mine = (Node *) ((RelabelType *) mine)->arg;
			if (!IsA(mine, Var) || ((Var *) mine)->varno != rti ||
				((Var *) mine)->varattno != vatt)
				continue;
			while (other != NULL && IsA(other, RelabelType))
				other = (Node *) ((RelabelType *) other)->arg;
			if (other == NULL)
				continue;
			if (IsA(other, Param) &&
				((Param *) other)->paramkind == PARAM_EXTERN)
				dp->params = true;
			else if (!IsA(other, Const))
				continue;		/* never known when the statement starts */
			dp->reads = lappend(dp->reads, other);
		}
	}
}

/* version_quals_reads over the quals of the scan of rti in subplan. */
static void
version_scan_reads(Plan *subplan, Index rti, AttrNumber vatt,
				   VersionDirectPlan *dp)
{
	Plan	   *scan = version_find_scan(subplan, rti);

	if (scan == NULL)
		return;
	version_quals_reads((Node *) scan->qual, rti, vatt, dp);
	if (IsA(scan, IndexScan))
		version_quals_reads((Node *) ((IndexScan *) scan)->indexqualorig,
							rti, vatt, dp);
	if (IsA(scan, BitmapHeapScan))
		version_quals_reads((Node *) ((BitmapHeapScan *) scan)->bitmapqualorig,
							rti, vatt, dp);
}

/*
 * What of the direct path can be known from the plan and the table alone,
 * for the UPDATE of mtstate's only result relation (see the head of this
 * file): NULL if it can never be taken, else the values the version is
 * compared with and set to, and the new-row projection, made in the
 * current memory context.  t is the index of lockctl's trigger in the
 * relation's trigger descriptor, vatt its version column, v the
 * statement's verdict.  The same for every execution of the plan, as long
 * as the table and the catalogs do not change (version_plan.c).
 */
VersionDirectPlan *
version_direct_plan(QueryDesc *queryDesc, ModifyTableState *mtstate,
					int t, AttrNumber vatt, VersionVerdict *v)
{
	ModifyTable *mt = (ModifyTable *) mtstate->ps.plan;
	Plan	   *subplan = outerPlan(mt);
	ResultRelInfo *rri;
	Relation	rel;
	TupleDesc	desc;
	TriggerDesc *trigdesc;
	Trigger    *tg;
	VersionMode mode;
	Form_pg_attribute att;
	VersionDirectPlan *dp;
	List	   *colnos;
	List	   *tlist = NIL;
	int			resno = 0;
	ListCell   *lc;
	ListCell   *lc2;
	Expr	   *bump;

	/* the statement: one ordinary table, updated where the version matched */
	if (queryDesc->operation != CMD_UPDATE ||
		(PlanState *) mtstate != queryDesc->planstate ||
		queryDesc->plannedstmt->hasModifyingCTE ||
		mt->operation != CMD_UPDATE || mtstate->mt_nrels != 1 ||
		mt->rootRelation != 0 || !v->where_checked ||
		(v->assign != VASSIGN_NONE && v->assign != VASSIGN_SENT))
		return NULL;
	rri = &mtstate->resultRelInfo[0];
	rel = rri->ri_RelationDesc;
	desc = RelationGetDescr(rel);
	if (rel->rd_rel->relkind != RELKIND_RELATION ||
		rri->ri_usesFdwDirectModify ||
		(desc->constr != NULL && desc->constr->has_generated_stored))
		return NULL;

	/* the trigger: ours alone, with arguments that are valid */
	trigdesc = rri->ri_TrigDesc;
	tg = &trigdesc->triggers[t];
	if (tg->tgqual != NULL || tg->tgnargs != 2 ||
		!version_mode_lookup(tg->tgargs[1], &mode))
		return NULL;
	for (int i = 0; i < trigdesc->numtriggers; i++)
	{
		if (i != t &&
			TRIGGER_TYPE_MATCHES(trigdesc->triggers[i].tgtype, TRIGGER_TYPE_ROW,
								 TRIGGER_TYPE_BEFORE, TRIGGER_TYPE_UPDATE))
			return NULL;
	}
	att = TupleDescAttr(desc, vatt - 1);
	if (att->atttypid != INT2OID && att->atttypid != INT4OID &&
		att->atttypid != INT8OID)
		return NULL;
	if (att->attisdropped || att->attgenerated != '\0' || att->attidentity != '\0')
		return NULL;

	dp = palloc0(sizeof(VersionDirectPlan));
	dp->typid = att->atttypid;

	/* the values the version is compared with */
	version_scan_reads(subplan, rri->ri_RangeTableIndex, vatt, dp);
	if (dp->reads == NIL)
		return NULL;

	/* the value the statement sets the version to */
	colnos = (List *) list_nth(mt->updateColnosLists, 0);
	if (v->assign == VASSIGN_SENT)
	{
		int			pos = 0;
		TargetEntry *tle;

		if (mode == VERSION_MODE_SERVER)
			return NULL;
		foreach(lc, colnos)
		{
			pos++;
			if (lfirst_int(lc) == vatt)
				break;
		}
		if (lc == NULL || pos > list_length(subplan->targetlist))
			return NULL;
		tle = list_nth_node(TargetEntry, subplan->targetlist, pos - 1);
		if (tle->resjunk)
			return NULL;
		dp->sent = (Node *) tle->expr;
	}

	/*
	 * The projection ExecInitUpdateProjection would build, but evaluated
	 * here: the subplan's values of the assigned columns (the outer tuple),
	 * and for the version column the version read + 1, in its place if the
	 * statement sets it, else added.  That is a constant of each execution
	 * (version_direct_update sets it before the projection is built): every
	 * row the scan returns passed "version = <read>" through an integer
	 * equality, so its version is the read one, and a row updated
	 * concurrently is returned only if its newest version passes the same
	 * check again (EvalPlanQual).  A constant costs the projection neither
	 * the function call of version + 1, with its permission check, nor the
	 * old row's column.
	 */
	bump = (Expr *) makeConst(att->atttypid, -1, InvalidOid, att->attlen,
							  (Datum) 0, true, att->attbyval);
	dp->bumpno = -1;
	forboth(lc, subplan->targetlist, lc2, colnos)
	{
		TargetEntry *tle = lfirst_node(TargetEntry, lc);
		Node	   *e = (Node *) tle->expr;
		Expr	   *x;

		if (tle->resjunk)
			break;
		if (lfirst_int(lc2) == vatt)
		{
			x = bump;
			dp->bumpno = resno;
		}
		else
			x = (Expr *) makeVar(OUTER_VAR, resno + 1, exprType(e),
								 exprTypmod(e), exprCollation(e), 0);
		resno++;
		tlist = lappend(tlist, makeTargetEntry(x, resno, NULL, false));
	}
	if (resno != list_length(colnos))
		return NULL;
	if (v->assign == VASSIGN_NONE)
	{
		dp->bumpno = resno;
		tlist = lappend(tlist, makeTargetEntry(bump, resno + 1, NULL, false));
		colnos = lappend_int(list_copy(colnos), vatt);
	}
	if (dp->bumpno < 0)
		return NULL;

	dp->tlist = tlist;
	dp->colnos = colnos;
	return dp;
}

/*
 * Make the UPDATE of mtstate's only result relation bump the version
 * itself, if it can be done with the trigger's outcome in this execution:
 * dp is what version_direct_plan() found of the plan (NULL: never), t the
 * index of lockctl's trigger, v the statement's verdict.  Returns true if
 * done: the trigger will not fire for this statement.
 */
bool
version_direct_update(QueryDesc *queryDesc, ModifyTableState *mtstate,
					  int t, VersionVerdict *v, VersionDirectPlan *dp)
{
	EState	   *estate = queryDesc->estate;
	ResultRelInfo *rri;
	Relation	rel;
	TriggerDesc *trigdesc;
	ListCell   *lc;
	int64		read = 0;
	bool		readnull = false;
	bool		known = false;
	Const	   *bump;
	MemoryContext oldcxt;

	if (dp == NULL || estate->es_instrument != 0 || v->cascade || v->uv)
		return false;
	rri = &mtstate->resultRelInfo[0];
	rel = rri->ri_RelationDesc;
	trigdesc = rri->ri_TrigDesc;
	if (rri->ri_projectNewInfoValid || !version_trigger_fires(&trigdesc->triggers[t]))
		return false;

	/*
	 * The version compared with a value known now (every row reached has
	 * it), with room for the bump: at the type's maximum the trigger raises
	 * its own error.
	 */
	foreach(lc, dp->reads)
	{
		if ((known = version_value_now((Node *) lfirst(lc), estate, &read,
									   &readnull)))
			break;
	}
	/*
	 * NULL, or out of the column's range, matches no row: the trigger,
	 * which will not fire, is kept, so that no constant is made of it.
	 */
	if (!known || readnull || read < version_type_min(dp->typid) ||
		read >= version_type_max(dp->typid))
		return false;

	/*
	 * A version the statement sets, known now too: the trigger accepts the
	 * version read and the next one (outside mode 'server') and stores the
	 * next one either way; anything else it refuses, and keeps.
	 */
	if (dp->sent != NULL)
	{
		int64		sent = 0;
		bool		sentnull;

		if (!version_value_now(dp->sent, estate, &sent, &sentnull))
			return false;
		if (sentnull || (sent != read && sent != read + 1))
			return false;

		/*
		 * The next version sent: every row reached stores what the
		 * statement's own projection (built at the first row, as for any
		 * UPDATE) assigns, the trigger's version + 1 already.
		 */
		if (sent == read + 1)
		{
			trigdesc->trig_update_before_row = false;
			return true;
		}
	}

	oldcxt = MemoryContextSwitchTo(estate->es_query_cxt);

	/*
	 * The version every row stores, into the projection's constant: the
	 * node is this plan's copy (kept with a generic plan), and the value is
	 * copied into the projection as it is built, just below, so that the
	 * next execution's value never meets this one's.  (A by-reference int8
	 * is allocated here, in the statement's memory, with the projection;
	 * the node is set back to NULL once built, so that it never points
	 * into memory that went with the statement.)
	 */
	bump = castNode(Const, list_nth_node(TargetEntry, dp->tlist, dp->bumpno)->expr);
	bump->constvalue = version_to_datum(read + 1, dp->typid);
	bump->constisnull = false;

	rri->ri_oldTupleSlot = table_slot_create(rel, &estate->es_tupleTable);
	rri->ri_newTupleSlot = table_slot_create(rel, &estate->es_tupleTable);
	if (mtstate->ps.ps_ExprContext == NULL)
		ExecAssignExprContext(estate, &mtstate->ps);
	rri->ri_projectNew = ExecBuildUpdateProjection(dp->tlist, true, dp->colnos,
												   RelationGetDescr(rel),
												   mtstate->ps.ps_ExprContext,
												   rri->ri_newTupleSlot,
												   &mtstate->ps);
	rri->ri_projectNewInfoValid = true;
	bump->constvalue = (Datum) 0;
	bump->constisnull = true;

	/* this statement's copy of the flags (InitResultRelInfo copied them) */
	trigdesc->trig_update_before_row = false;
	MemoryContextSwitchTo(oldcxt);
	return true;
}

/* A copy of dp, in the current memory context, for other executions. */
VersionDirectPlan *
version_direct_plan_copy(VersionDirectPlan *dp)
{
	VersionDirectPlan *copy = palloc(sizeof(VersionDirectPlan));

	*copy = *dp;
	/* the values stay the plan's own nodes: the plan outlives the copy */
	copy->reads = list_copy(dp->reads);
	copy->tlist = copyObject(dp->tlist);
	copy->colnos = list_copy(dp->colnos);
	return copy;
}
