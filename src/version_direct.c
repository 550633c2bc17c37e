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
 * The other UPDATEs the trigger would check row by row, with a rule known
 * when the statement starts (version_row_match: "version = $n" sent in
 * SET, update_versioned()'s own UPDATE, "version = version", a WHERE
 * check whose value is not known now), are taken out of the trigger the
 * same way, with the check moved into the projection: the version column
 * is computed by lockctl_internal.version_next(current, sent, ctid) from
 * the old row's version and the value the statement assigns, which raises
 * the trigger's own errors (40001 for a stale version, 22003 past the
 * type's maximum, with the row's key) and counts its conflicts.  The
 * projection is evaluated on the row the scan found and, under READ
 * COMMITTED, again on its newest version when another transaction updated
 * it meanwhile (EvalPlanQual), as the trigger is fired on the newest
 * version.  One difference: the trigger locks the row before it looks at
 * it, so a version sent that differs from the row the statement found, on
 * a row another transaction is changing, waits for that transaction and is
 * compared with its outcome; the projection refuses it at once, as stale
 * (the version sent was not the row's version when the statement
 * started).  version_next is called only from a projection made here: it
 * finds its statement by its own expression node (version_statement.c),
 * and refuses every other call.
 *
 * src/version_direct.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/table.h"
#include "access/tableam.h"
#include "catalog/pg_am.h"
#include "catalog/pg_trigger.h"
#include "catalog/pg_type.h"
#include "commands/trigger.h"
#include "executor/executor.h"
#include "executor/tuptable.h"
#include "nodes/makefuncs.h"
#include "nodes/nodeFuncs.h"
#include "storage/itemptr.h"
#include "utils/fmgroids.h"
#include "utils/lsyscache.h"
#include "utils/rel.h"
#include "utils/snapmgr.h"

#include "version.h"

/* lockctl_internal.version_next(bigint, bigint, tid), made in 1.1 */
static LockctlFuncRef version_next_fn = {
	"lockctl_internal", "version_next", 3, {INT8OID, INT8OID, TIDOID}, 0
};

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

static bool version_const_projection(VersionDirectPlan *dp, Plan *subplan,
									 List *colnos, ResultRelInfo *rri,
									 VersionMode mode, VersionVerdict *v);

/* e, of integer type from, as an expression of integer type to */
static Expr *
version_cast(Expr *e, Oid from, Oid to)
{
	Oid			fn;

	if (from == to)
		return e;
	if (to == INT8OID)
		fn = from == INT4OID ? F_INT8_INT4 : F_INT8_INT2;
	else
		fn = to == INT4OID ? F_INT4_INT8 : F_INT2_INT8;
	return (Expr *) makeFuncExpr(fn, to, list_make1(e), InvalidOid,
								 InvalidOid, COERCE_IMPLICIT_CAST);
}

/*
 * The rule of the trigger for an UPDATE with verdict v in mode, if one
 * applies to every row it reaches (version_on_update); -1 where the
 * trigger refuses the statement (or may, for a reason of this execution)
 * or cannot tell the value sent.
 */
static int
version_row_kind(VersionVerdict *v, VersionMode mode)
{
	if (v->uv)
		return v->assign == VASSIGN_SENT ? VROW_EXACT : -1;
	if (v->assign == VASSIGN_OVERWRITE)
		return VROW_NEXT;
	if (v->where_checked)
	{
		if (v->assign == VASSIGN_SENT || v->assign == VASSIGN_UNKNOWN)
			return mode == VERSION_MODE_SERVER ? -1 : VROW_WHERE_SENT;
		return VROW_NEXT;
	}
	if (v->assign == VASSIGN_SENT && mode != VERSION_MODE_SERVER)
		return mode == VERSION_MODE_ORM ? VROW_ORM : VROW_EXACT;
	return -1;
}

/*
 * The subplan's values of the assigned columns as a new-row projection
 * takes them, the outer tuple's columns in the order of colnos; NIL if the
 * subplan does not give one per column.  *vpos: the entry (from 0) of
 * column vatt, or -1 if the statement does not assign it.
 */
static List *
version_outer_tlist(Plan *subplan, List *colnos, AttrNumber vatt, int *vpos)
{
	List	   *tlist = NIL;
	int			resno = 0;
	ListCell   *lc;
	ListCell   *lc2;

	*vpos = -1;
	forboth(lc, subplan->targetlist, lc2, colnos)
	{
		TargetEntry *tle = lfirst_node(TargetEntry, lc);
		Node	   *e = (Node *) tle->expr;

		if (tle->resjunk)
			break;
		if (lfirst_int(lc2) == vatt)
			*vpos = resno;
		resno++;
		tlist = lappend(tlist,
						makeTargetEntry((Expr *) makeVar(OUTER_VAR, resno,
														 exprType(e),
														 exprTypmod(e),
														 exprCollation(e), 0),
										resno, NULL, false));
	}
	if (resno != list_length(colnos))
		return NIL;
	return tlist;
}

/*
 * The projection that checks each row (see the head of this file): the
 * subplan's values of the assigned columns (the outer tuple), and for the
 * version column lockctl_internal.version_next(old version, value sent,
 * old ctid), in its place if the statement sets it, else added.  False if
 * it cannot be made (the function is not installed: the extension's SQL
 * is older than the library).
 */
static bool
version_row_projection(VersionDirectPlan *dp, Plan *subplan, List *colnos,
					   Index rti, Form_pg_attribute att, VersionRowKind kind)
{
	Oid			fnoid = lockctl_func_oid(&version_next_fn, true);
	List	   *tlist;
	TargetEntry *vtle;
	Expr	   *sent = NULL;
	Expr	   *old;
	Expr	   *ctid;
	FuncExpr   *call;
	int			vpos;

	if (!OidIsValid(fnoid))
		return false;
	tlist = version_outer_tlist(subplan, colnos, dp->vatt, &vpos);
	if (tlist == NIL)
		return false;
	if (vpos >= 0)
	{
		vtle = list_nth_node(TargetEntry, tlist, vpos);
		sent = vtle->expr;
		if (exprType((Node *) sent) != att->atttypid)
			return false;
	}
	else
	{
		vtle = makeTargetEntry(NULL, list_length(tlist) + 1, NULL, false);
		tlist = lappend(tlist, vtle);
		colnos = lappend_int(list_copy(colnos), dp->vatt);
	}
	/* the value sent matters to the rules that compare it */
	if (sent == NULL || kind == VROW_NEXT)
		sent = (Expr *) makeNullConst(INT8OID, -1, InvalidOid);
	else
		sent = version_cast(sent, att->atttypid, INT8OID);
	old = version_cast((Expr *) makeVar(rti, dp->vatt, att->atttypid,
										att->atttypmod, InvalidOid, 0),
					   att->atttypid, INT8OID);
	ctid = (Expr *) makeVar(rti, SelfItemPointerAttributeNumber, TIDOID, -1,
							InvalidOid, 0);
	call = makeFuncExpr(fnoid, INT8OID, list_make3(old, sent, ctid),
						InvalidOid, InvalidOid, COERCE_EXPLICIT_CALL);
	vtle->expr = version_cast((Expr *) call, INT8OID, att->atttypid);

	dp->rowtlist = tlist;
	dp->rowcolnos = colnos;
	dp->rowexpr = (Node *) call;
	dp->rowkind = kind;
	dp->rowuv = false;
	return true;
}

/*
 * What of the direct path can be known from the plan and the table alone,
 * for the UPDATE of mtstate's only result relation (see the head of this
 * file): NULL if it can never be taken, else the values the version is
 * compared with and set to, and the new-row projections, made in the
 * current memory context.  t is the index of lockctl's trigger in the
 * relation's trigger descriptor, vatt its version column, v the
 * statement's verdict.  The same for every execution of the plan, as long
 * as the table and the catalogs do not change (version_plan.c), except
 * v->uv, which version_direct_update() compares with the plan's.
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
	int			kind;

	/* the statement: one ordinary table */
	if (queryDesc->operation != CMD_UPDATE ||
		(PlanState *) mtstate != queryDesc->planstate ||
		queryDesc->plannedstmt->hasModifyingCTE ||
		mt->operation != CMD_UPDATE || mtstate->mt_nrels != 1 ||
		mt->rootRelation != 0)
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
	dp->mode = mode;
	dp->vatt = vatt;
	colnos = (List *) list_nth(mt->updateColnosLists, 0);

	/*
	 * The rows' check in the projection: a heap's rows, whose old row (the
	 * projection's scan tuple) has its ctid, for the error messages.
	 */
	kind = version_row_kind(v, mode);
	if (kind >= 0 && mt->canSetTag && rel->rd_rel->relam == HEAP_TABLE_AM_OID &&
		version_row_projection(dp, subplan, colnos, rri->ri_RangeTableIndex,
							   att, (VersionRowKind) kind))
		dp->rowuv = v->uv;

	/* the version read + 1, where every row reached has the version read */
	if (v->uv || !v->where_checked ||
		(v->assign != VASSIGN_NONE && v->assign != VASSIGN_SENT) ||
		!version_const_projection(dp, subplan, colnos, rri, mode, v))
	{
		dp->reads = NIL;
		dp->params = false;
		dp->sent = NULL;
		dp->tlist = NIL;
	}
	if (dp->tlist == NIL && dp->rowtlist == NIL)
		return NULL;
	return dp;
}

/*
 * The values the version is compared with, the value it is set to, and
 * the projection that stores the version read + 1 (see the head of this
 * file), into dp; false if there is none.
 */
static bool
version_const_projection(VersionDirectPlan *dp, Plan *subplan, List *colnos,
						 ResultRelInfo *rri, VersionMode mode, VersionVerdict *v)
{
	Form_pg_attribute att = TupleDescAttr(RelationGetDescr(rri->ri_RelationDesc),
										  dp->vatt - 1);
	AttrNumber	vatt = dp->vatt;
	List	   *tlist;
	ListCell   *lc;
	Expr	   *bump;

	/* the values the version is compared with */
	version_scan_reads(subplan, rri->ri_RangeTableIndex, vatt, dp);
	if (dp->reads == NIL)
		return false;

	/* the value the statement sets the version to */
	if (v->assign == VASSIGN_SENT)
	{
		int			pos = 0;
		TargetEntry *tle;

		if (mode == VERSION_MODE_SERVER)
			return false;
		foreach(lc, colnos)
		{
			pos++;
			if (lfirst_int(lc) == vatt)
				break;
		}
		if (lc == NULL || pos > list_length(subplan->targetlist))
			return false;
		tle = list_nth_node(TargetEntry, subplan->targetlist, pos - 1);
		if (tle->resjunk)
			return false;
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
	tlist = version_outer_tlist(subplan, colnos, vatt, &dp->bumpno);
	if (tlist == NIL)
		return false;
	if (dp->bumpno >= 0)
		list_nth_node(TargetEntry, tlist, dp->bumpno)->expr = bump;
	else if (v->assign == VASSIGN_NONE)
	{
		dp->bumpno = list_length(tlist);
		tlist = lappend(tlist, makeTargetEntry(bump, dp->bumpno + 1, NULL, false));
		colnos = lappend_int(list_copy(colnos), vatt);
	}
	else
		return false;

	dp->tlist = tlist;
	dp->colnos = colnos;
	return true;
}

/*
 * Build the new-row projection of mtstate's only result relation from
 * tlist and colnos, as ExecInitUpdateProjection would at the first row,
 * and leave the BEFORE ROW UPDATE trigger out of this statement.
 */
static void
version_set_projection(EState *estate, ModifyTableState *mtstate,
					   List *tlist, List *colnos)
{
	ResultRelInfo *rri = &mtstate->resultRelInfo[0];
	Relation	rel = rri->ri_RelationDesc;

	rri->ri_oldTupleSlot = table_slot_create(rel, &estate->es_tupleTable);
	rri->ri_newTupleSlot = table_slot_create(rel, &estate->es_tupleTable);
	if (mtstate->ps.ps_ExprContext == NULL)
		ExecAssignExprContext(estate, &mtstate->ps);
	rri->ri_projectNew = ExecBuildUpdateProjection(tlist, true, colnos,
												   RelationGetDescr(rel),
												   mtstate->ps.ps_ExprContext,
												   rri->ri_newTupleSlot,
												   &mtstate->ps);
	rri->ri_projectNewInfoValid = true;

	/* this statement's copy of the flags (InitResultRelInfo copied them) */
	rri->ri_TrigDesc->trig_update_before_row = false;
}

/*
 * Make the UPDATE of mtstate's only result relation store the version
 * itself, if it can be done with the trigger's outcome in this execution:
 * dp is what version_direct_plan() found of the plan (NULL: never), t the
 * index of lockctl's trigger, v the statement's verdict.  Returns how: the
 * trigger will not fire for this statement unless VDIRECT_NONE.
 */
VersionDirectPath
version_direct_update(QueryDesc *queryDesc, ModifyTableState *mtstate,
					  int t, VersionVerdict *v, VersionDirectPlan *dp)
{
	EState	   *estate = queryDesc->estate;
	ResultRelInfo *rri;
	TriggerDesc *trigdesc;
	ListCell   *lc;
	int64		read = 0;
	bool		readnull = false;
	bool		known = false;
	Const	   *bump;
	MemoryContext oldcxt;

	if (dp == NULL || estate->es_instrument != 0 || v->cascade)
		return VDIRECT_NONE;
	rri = &mtstate->resultRelInfo[0];
	trigdesc = rri->ri_TrigDesc;
	if (rri->ri_projectNewInfoValid || !version_trigger_fires(&trigdesc->triggers[t]))
		return VDIRECT_NONE;

	/*
	 * The version compared with a value known now (every row reached has
	 * it), with room for the bump: at the type's maximum the trigger raises
	 * its own error.
	 */
	if (dp->tlist != NIL && !v->uv)
	{
		foreach(lc, dp->reads)
		{
			if ((known = version_value_now((Node *) lfirst(lc), estate, &read,
										   &readnull)))
				break;
		}
	}
	/*
	 * NULL, or out of the column's range, matches no row; a version sent
	 * that is not known now, or that the trigger would refuse: the rows'
	 * check (or the trigger) decides.
	 */
	if (known && !readnull && read >= version_type_min(dp->typid) &&
		read < version_type_max(dp->typid))
	{
		/*
		 * A version the statement sets, known now too: the trigger accepts
		 * the version read and the next one (outside mode 'server') and
		 * stores the next one either way; anything else it refuses.
		 */
		if (dp->sent != NULL)
		{
			int64		sent = 0;
			bool		sentnull;

			if (!version_value_now(dp->sent, estate, &sent, &sentnull) ||
				sentnull || (sent != read && sent != read + 1))
				known = false;

			/*
			 * The next version sent: every row reached stores what the
			 * statement's own projection (built at the first row, as for
			 * any UPDATE) assigns, the trigger's version + 1 already.
			 */
			else if (sent == read + 1)
			{
				trigdesc->trig_update_before_row = false;
				return VDIRECT_CONST;
			}
		}
	}
	else
		known = false;

	if (known)
	{
		oldcxt = MemoryContextSwitchTo(estate->es_query_cxt);

		/*
		 * The version every row stores, into the projection's constant: the
		 * node is this plan's copy (kept with a generic plan), and the value
		 * is copied into the projection as it is built, just below, so that
		 * the next execution's value never meets this one's.  (A
		 * by-reference int8 is allocated here, in the statement's memory,
		 * with the projection; the node is set back to NULL once built, so
		 * that it never points into memory that went with the statement.)
		 */
		bump = castNode(Const, list_nth_node(TargetEntry, dp->tlist, dp->bumpno)->expr);
		bump->constvalue = version_to_datum(read + 1, dp->typid);
		bump->constisnull = false;
		version_set_projection(estate, mtstate, dp->tlist, dp->colnos);
		bump->constvalue = (Datum) 0;
		bump->constisnull = true;
		MemoryContextSwitchTo(oldcxt);
		return VDIRECT_CONST;
	}

	/*
	 * Each row checked by the projection, under the rule of the plan's
	 * verdict; by the function it was made with, still the one of that name
	 * (a kept plan does not depend on it: an ALTER EXTENSION UPDATE that
	 * made it again leaves it to the trigger).
	 */
	if (dp->rowtlist == NIL || dp->rowuv != v->uv ||
		((FuncExpr *) dp->rowexpr)->funcid != lockctl_func_oid(&version_next_fn, true))
		return VDIRECT_NONE;
	oldcxt = MemoryContextSwitchTo(estate->es_query_cxt);
	version_set_projection(estate, mtstate, dp->rowtlist, dp->rowcolnos);
	MemoryContextSwitchTo(oldcxt);
	return VDIRECT_ROW;
}

/* The call of version_next in a projection made by version_row_projection. */
static Node *
version_row_call(List *tlist, AttrNumber vatt, List *colnos)
{
	ListCell   *lc;
	ListCell   *lc2;

	forboth(lc, tlist, lc2, colnos)
	{
		Expr	   *e = lfirst_node(TargetEntry, lc)->expr;

		if (lfirst_int(lc2) != vatt)
			continue;
		/* under the cast to an int2 or int4 column */
		if (castNode(FuncExpr, e)->funcid == F_INT4_INT8 ||
			((FuncExpr *) e)->funcid == F_INT2_INT8)
			e = linitial(((FuncExpr *) e)->args);
		return (Node *) castNode(FuncExpr, e);
	}
	return NULL;
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
	copy->rowtlist = copyObject(dp->rowtlist);
	copy->rowcolnos = list_copy(dp->rowcolnos);
	copy->rowexpr = version_row_call(copy->rowtlist, copy->vatt, copy->rowcolnos);
	return copy;
}

/*
 * Take back the count of the last row that passed rc's check: a later call
 * for the same row (EvalPlanQual) refused it, or the statement ended
 * without updating it.
 */
void
version_rowcheck_unpass(VersionRowCheck *rc)
{
	version_stats_add(rc->stats, VSTAT_CHECKED, PG_UINT64_MAX); /* - 1 */
	rc->passed = false;
}

/*
 * The row at tid of rel, whatever its visibility (the one a statement's
 * projection is checking), for an error message; NULL if it cannot be read.
 */
static HeapTuple
version_fetch_row(Relation rel, ItemPointer tid)
{
	TupleTableSlot *slot;
	HeapTuple	tuple = NULL;

	if (tid == NULL || !ItemPointerIsValid(tid))
		return NULL;
	slot = table_slot_create(rel, NULL);
	if (table_tuple_fetch_row_version(rel, tid, SnapshotAny, slot))
		tuple = ExecCopySlotHeapTuple(slot);
	ExecDropSingleTupleTableSlot(slot);
	return tuple;
}

/*
 * lockctl_internal.version_next(current bigint, sent bigint, row tid)
 * RETURNS bigint: the version an updated row stores, once the check of the
 * statement that calls it passed: its rule and its table are those the
 * statement registered for this very call (version_running_rowcheck); any
 * other call is refused.  Not STRICT: NULL versions are compared.
 */
PG_FUNCTION_INFO_V1(lockctl_version_next);
Datum
lockctl_version_next(PG_FUNCTION_ARGS)
{
	VersionRowCheck *rc = (VersionRowCheck *) fcinfo->flinfo->fn_extra;
	bool		oldnull = PG_ARGISNULL(0);
	bool		newnull = PG_ARGISNULL(1);
	int64		oldv = oldnull ? 0 : PG_GETARG_INT64(0);
	int64		newv = newnull ? 0 : PG_GETARG_INT64(1);
	bool		match;

	if (rc == NULL)
	{
		rc = version_running_rowcheck(fcinfo->flinfo->fn_expr);
		if (rc == NULL)
			ereport(ERROR,
					(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
					 errmsg("lockctl_internal.version_next() is only called by lockctl's version check"),
					 errhint("Update the versioned table: the check is part of the UPDATE.")));
		fcinfo->flinfo->fn_extra = rc;
	}
	if (!rc->stats_ready)
	{
		rc->stats = rc->counted ? version_stats_entry(rc->rootrelid, true) : NULL;
		rc->stats_ready = true;
	}

	/*
	 * Counted as the trigger counts: a row that passes, once, even if the
	 * statement fails later (a constraint).  Once: the projection of a row
	 * that another transaction updated meanwhile is evaluated again on its
	 * newest version (EvalPlanQual), where the trigger fires only on that
	 * one; so is the next row's, when that newest version no longer
	 * matches the statement's WHERE.  Neither has been processed yet, so a
	 * call made while es_processed is what it was at the last row that
	 * passed stands for that row: counted already if it passes, and taking
	 * back that row's count if it is a conflict.  A statement that ends
	 * with its last row that passed not updated takes its count back too
	 * (version_ExecutorEnd).
	 */
	match = version_row_match(rc->dp->rowkind, oldnull, oldv, newnull, newv);
	if (rc->passed && rc->passed_at == rc->estate->es_processed)
	{
		if (!match)
			version_rowcheck_unpass(rc);
	}
	else if (match && (oldnull || oldv < version_type_max(rc->dp->typid)))
	{
		version_stats_bump(rc->stats, VSTAT_CHECKED);
		rc->passed = true;
		rc->passed_at = rc->estate->es_processed;
	}
	if (!match || (!oldnull && oldv >= version_type_max(rc->dp->typid)))
	{
		/* an error, with the row's key: the table is the statement's, locked */
		Relation	rel = table_open(rc->relid, NoLock);
		HeapTuple	tuple = version_fetch_row(rel, PG_ARGISNULL(2) ? NULL :
											  (ItemPointer) PG_GETARG_POINTER(2));

		if (!match)
			version_conflict_error(rel, tuple, rc->dp->vatt, rc->dp->mode, rc->stats,
								   oldnull, oldv, newnull, newv);
		(void) version_next_of(rel, tuple, rc->dp->typid, oldnull, oldv);
		table_close(rel, NoLock);
	}
	PG_RETURN_INT64(oldnull ? 1 : oldv + 1);
}
