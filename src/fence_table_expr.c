/*-------------------------------------------------------------------------
 *
 * fence_table_expr.c
 *	  The resource expression of a fenced table: a per-row lease name
 *	  computed from the row's columns.
 *
 * enable_fencing() checks it once: it must parse as one expression over
 * the table's own columns, be immutable, yield text (or a type assignable
 * to it), and use no subquery, aggregate, window or set-returning function,
 * no system or generated column (a BEFORE trigger sees those before they
 * are computed), and not the token column.  It is stored in the trigger as
 * deparsed text with every name outside pg_catalog schema-qualified, and is
 * always parsed back with search_path = pg_catalog, pg_temp, so that no
 * role's search_path can change what it means; enable_fencing() checks
 * that the stored text parses back to the very same expression.  The
 * trigger (fence_table.c) compiles it once per relation and backend.
 *
 * src/fence_table_expr.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "nodes/nodeFuncs.h"
#include "optimizer/clauses.h"
#include "optimizer/optimizer.h"
#include "parser/parse_coerce.h"
#include "parser/parse_collate.h"
#include "parser/parse_expr.h"
#include "parser/parse_node.h"
#include "parser/parse_relation.h"
#include "parser/parser.h"
#include "rewrite/rewriteManip.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/rel.h"
#include "utils/ruleutils.h"

#include "fence_table.h"

/* What a stored expression is parsed with: nothing a role can shadow. */
#define FENCE_SEARCH_PATH		"pg_catalog, pg_temp"

/* The raw parser reads the expression as the one column of a SELECT. */
#define FENCE_EXPR_PREFIX		"SELECT ("
#define FENCE_EXPR_SUFFIX		")"

/* For error positions inside a resource expression. */
typedef struct FenceExprErrorArg
{
	const char *expression;
	const char *relname;
	bool		stored;			/* parsing the stored text, not the user's */
} FenceExprErrorArg;

static void fence_expr_error_callback(void *arg);

/*
 * Error context of a resource expression: the position of a syntax or
 * parse error is moved from the SELECT we parse into the expression, which
 * is shown as the query it points into.
 */
static void
fence_expr_error_callback(void *arg)
{
	FenceExprErrorArg *a = (FenceExprErrorArg *) arg;
	int			pos = geterrposition();

	if (pos > 0)
	{
		int			inner = pos - (int) strlen(FENCE_EXPR_PREFIX);

		errposition(0);
		if (inner > 0 && inner <= (int) strlen(a->expression) + 1)
		{
			internalerrposition(inner);
			internalerrquery(a->expression);
		}
	}
	if (a->stored)
		errcontext("resource expression of fenced table \"%s\" (if the table changed since fencing was enabled on it, call lockctl.disable_fencing() and lockctl.enable_fencing() again)",
				   a->relname);
	else
		errcontext("resource_expression of lockctl.enable_fencing()");
}

/*
 * Parse text as one expression over rel's columns and check it: what
 * enable_fencing() promises of a resource expression (see the header).
 * Returns the expression coerced to text, before planning.  stored: the
 * text is the canonical one from the trigger, parsed with a fixed
 * search_path.
 */
Expr *
fence_expr_transform(Relation rel, const char *text, bool stored)
{
	char	   *sql = psprintf("%s%s%s", FENCE_EXPR_PREFIX, text,
							   FENCE_EXPR_SUFFIX);
	FenceExprErrorArg errarg;
	ErrorContextCallback errcb;
	List	   *raw;
	RawStmt    *rs;
	SelectStmt *sel;
	ResTarget  *rt;
	ParseState *pstate;
	ParseNamespaceItem *nsitem;
	Node	   *expr;
	Oid			typid;
	Bitmapset  *attrs = NULL;
	int			k;
	int			save_nestlevel = -1;
	TupleDesc	tupdesc = RelationGetDescr(rel);

	errarg.expression = text;
	errarg.relname = RelationGetRelationName(rel);
	errarg.stored = stored;
	errcb.callback = fence_expr_error_callback;
	errcb.arg = &errarg;
	errcb.previous = error_context_stack;
	error_context_stack = &errcb;

	if (stored)
	{
		save_nestlevel = NewGUCNestLevel();
		(void) set_config_option("search_path", FENCE_SEARCH_PATH,
								 PGC_USERSET, PGC_S_SESSION,
								 GUC_ACTION_SAVE, true, 0, false);
	}

	/* One SELECT of one unnamed column, and nothing else. */
	raw = raw_parser(sql, RAW_PARSE_DEFAULT);
	rs = list_length(raw) == 1 ? linitial_node(RawStmt, raw) : NULL;
	sel = (rs != NULL && IsA(rs->stmt, SelectStmt)) ?
		(SelectStmt *) rs->stmt : NULL;
	if (sel == NULL || sel->op != SETOP_NONE || sel->withClause ||
		sel->intoClause || sel->distinctClause || sel->fromClause ||
		sel->whereClause || sel->groupClause || sel->havingClause ||
		sel->windowClause || sel->valuesLists || sel->sortClause ||
		sel->limitOffset || sel->limitCount || sel->lockingClause ||
		list_length(sel->targetList) != 1)
		ereport(ERROR,
				(errcode(ERRCODE_SYNTAX_ERROR),
				 errmsg("resource_expression must be a single expression"),
				 errdetail("It was: %s", text)));
	rt = linitial_node(ResTarget, sel->targetList);
	if (rt->name != NULL)
		ereport(ERROR,
				(errcode(ERRCODE_SYNTAX_ERROR),
				 errmsg("resource_expression must be a single expression"),
				 errdetail("It was: %s", text)));

	pstate = make_parsestate(NULL);
	pstate->p_sourcetext = sql;
	nsitem = addRangeTableEntryForRelation(pstate, rel, AccessShareLock,
										   NULL, false, true);
	addNSItemToQuery(pstate, nsitem, true, true, true);
	expr = transformExpr(pstate, rt->val, EXPR_KIND_OTHER);

	/*
	 * The parser accepts all of these in EXPR_KIND_OTHER and leaves it to
	 * the caller to refuse them; the tree is looked at, not the flags.
	 */
	if (checkExprHasSubLink(expr))
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("resource_expression cannot use a subquery")));
	if (contain_agg_clause(expr))
		ereport(ERROR,
				(errcode(ERRCODE_GROUPING_ERROR),
				 errmsg("resource_expression cannot use an aggregate function")));
	if (contain_windowfuncs(expr))
		ereport(ERROR,
				(errcode(ERRCODE_WINDOWING_ERROR),
				 errmsg("resource_expression cannot use a window function")));
	if (expression_returns_set(expr))
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("resource_expression cannot use a set-returning function")));

	typid = exprType(expr);
	expr = coerce_to_target_type(pstate, expr, typid, TEXTOID, -1,
								 COERCION_ASSIGNMENT, COERCE_IMPLICIT_CAST,
								 -1);
	if (expr == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_DATATYPE_MISMATCH),
				 errmsg("resource_expression must yield text, not %s",
						format_type_be(typid)),
				 errhint("Cast it to text.")));
	assign_expr_collations(pstate, expr);

	/* Columns of the row only, as a BEFORE trigger sees them. */
	pull_varattnos(expr, 1, &attrs);
	k = -1;
	while ((k = bms_next_member(attrs, k)) >= 0)
	{
		AttrNumber	attnum = k + FirstLowInvalidHeapAttributeNumber;

		if (attnum == InvalidAttrNumber)
			ereport(ERROR,
					(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
					 errmsg("resource_expression cannot use the whole row"),
					 errhint("Name the columns the lease name is made of.")));
		if (attnum < 0)
			ereport(ERROR,
					(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
					 errmsg("resource_expression cannot use system columns")));
		if (TupleDescAttr(tupdesc, attnum - 1)->attgenerated != '\0')
			ereport(ERROR,
					(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
					 errmsg("resource_expression cannot use generated column \"%s\"",
							NameStr(TupleDescAttr(tupdesc, attnum - 1)->attname)),
					 errdetail("A BEFORE trigger sees a row before its generated columns are computed.")));
	}

	/* As CREATE INDEX checks an expression, after inlining. */
	if (contain_mutable_functions((Node *) expression_planner((Expr *) expr)))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_OBJECT_DEFINITION),
				 errmsg("functions in resource_expression must be marked IMMUTABLE"),
				 errdetail("A row's lease name must depend on nothing but the row, so that the same row always needs the same lease.")));

	free_parsestate(pstate);
	if (stored)
		AtEOXact_GUC(true, save_nestlevel);
	error_context_stack = errcb.previous;
	return (Expr *) expr;
}

/*
 * The text that enable_fencing() stores for expression text over rel:
 * deparsed with every name outside pg_catalog schema-qualified, and checked
 * to parse back, with the fixed search_path, to the very same expression.
 */
char *
fence_expr_canonical(Relation rel, const char *text, AttrNumber token_attnum)
{
	Expr	   *expr = fence_expr_transform(rel, text, false);
	Expr	   *again;
	char	   *canonical;
	int			save_nestlevel;

	if (token_attnum != InvalidAttrNumber)
	{
		Bitmapset  *attrs = NULL;

		pull_varattnos((Node *) expr, 1, &attrs);
		if (bms_is_member(token_attnum - FirstLowInvalidHeapAttributeNumber,
						  attrs))
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("resource_expression cannot use the token column"),
					 errdetail("The trigger writes the token column, which would change the row's lease.")));
	}

	save_nestlevel = NewGUCNestLevel();
	(void) set_config_option("search_path", FENCE_SEARCH_PATH,
							 PGC_USERSET, PGC_S_SESSION,
							 GUC_ACTION_SAVE, true, 0, false);
	canonical = deparse_expression((Node *) expr,
								   deparse_context_for(RelationGetRelationName(rel),
													   RelationGetRelid(rel)),
								   false, false);
	AtEOXact_GUC(true, save_nestlevel);

	again = fence_expr_transform(rel, canonical, true);
	if (!equal(expr, again))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_OBJECT_DEFINITION),
				 errmsg("resource_expression cannot be stored faithfully"),
				 errdetail("Written with schema-qualified names it reads \"%s\", which means something else.",
						   canonical),
				 errhint("Avoid objects in temporary schemas, and qualify names explicitly.")));
	return canonical;
}

