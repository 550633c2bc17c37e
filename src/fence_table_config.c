/*-------------------------------------------------------------------------
 *
 * fence_table_config.c
 *	  Where a fenced table's configuration lives, and the functions that
 *	  change it: lockctl.enable_fencing() and lockctl.disable_fencing().
 *
 * The configuration is the trigger's own arguments (fence_table.h), as the
 * versioning trigger keeps its own: pg_dump restores it with the trigger,
 * partitions get it when the trigger is cloned to them (also partitions
 * attached later), and there is no second catalog that could disagree with
 * pg_trigger.  Only the table's owner may change it; ownership is checked
 * before any lock on the table is asked for, as LOCK TABLE does, and again
 * once the lock is held.
 *
 * src/fence_table_config.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/genam.h"
#include "access/htup_details.h"
#include "access/relation.h"
#include "access/stratnum.h"
#include "access/table.h"
#include "catalog/catalog.h"
#include "catalog/pg_class.h"
#include "catalog/pg_inherits.h"
#include "catalog/pg_trigger.h"
#include "catalog/pg_type.h"
#include "commands/trigger.h"
#include "executor/spi.h"
#include "lib/stringinfo.h"
#include "miscadmin.h"
#include "nodes/makefuncs.h"
#include "parser/parse_func.h"
#include "storage/lmgr.h"
#include "utils/acl.h"
#include "utils/builtins.h"
#include "utils/fmgroids.h"
#include "utils/inval.h"
#include "utils/lsyscache.h"
#include "utils/rel.h"
#include "utils/syscache.h"

#include "fence_table.h"
#include "lockctl.h"

static LockctlFuncRef fence_fn = {"lockctl", FENCE_TRIGGER_FUNC, 0};

static Relation fence_open_owned(Oid relid, LOCKMODE lockmode,
								 const char *fname);
static void fence_run_utility(const char *sql);

/* ---------------------------------------------------------------------
 * The configuration in the catalog
 * ---------------------------------------------------------------------
 */

/*
 * The oid of lockctl.fence_trigger(), cached until pg_proc changes;
 * InvalidOid (with missing_ok) where it does not exist: a database without
 * the extension, or with the SQL objects of lockctl 1.0.
 */
Oid
fence_trigger_fn(bool missing_ok)
{
	Oid			fnoid = lockctl_func_oid(&fence_fn, true);

	if (!OidIsValid(fnoid) && !missing_ok)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("function lockctl.%s() does not exist",
						FENCE_TRIGGER_FUNC),
				 errhint("lockctl 1.1 SQL objects required; run ALTER EXTENSION lockctl UPDATE.")));
	return fnoid;
}

/* The lockctl fencing trigger of rel, or NULL. */
Trigger *
fence_find_trigger(Relation rel, Oid fnoid)
{
	TriggerDesc *trigdesc = rel->trigdesc;

	if (trigdesc == NULL || !OidIsValid(fnoid))
		return NULL;
	for (int i = 0; i < trigdesc->numtriggers; i++)
	{
		if (trigdesc->triggers[i].tgfoid == fnoid)
			return &trigdesc->triggers[i];
	}
	return NULL;
}

/*
 * Read the trigger's (key, value) arguments.  False if they are not what
 * enable_fencing() writes: exactly one of resource and resource_expression,
 * at most one token_column, nothing else.
 */
bool
fence_parse_args(int nargs, char **args, FenceArgs *out)
{
	memset(out, 0, sizeof(*out));
	if (nargs % 2 != 0)
		return false;
	for (int i = 0; i < nargs; i += 2)
	{
		char	  **slot;

		if (strcmp(args[i], FENCE_ARG_RESOURCE) == 0)
			slot = &out->resource;
		else if (strcmp(args[i], FENCE_ARG_EXPRESSION) == 0)
			slot = &out->expression;
		else if (strcmp(args[i], FENCE_ARG_TOKEN_COLUMN) == 0)
			slot = &out->token_column;
		else
			return false;
		if (*slot != NULL || args[i + 1][0] == '\0')
			return false;
		*slot = args[i + 1];
	}
	return (out->resource == NULL) != (out->expression == NULL);
}

/* The arguments of a pg_trigger tuple, as Trigger.tgargs has them. */
char **
fence_tuple_args(HeapTuple tup, TupleDesc desc, int *nargs)
{
	Form_pg_trigger tg = (Form_pg_trigger) GETSTRUCT(tup);
	char	  **args;
	Datum		d;
	bool		isnull;
	bytea	   *val;
	char	   *p;
	char	   *end;

	*nargs = 0;
	if (tg->tgnargs <= 0)
		return NULL;
	d = heap_getattr(tup, Anum_pg_trigger_tgargs, desc, &isnull);
	if (isnull)
		return NULL;
	val = DatumGetByteaPP(d);
	p = VARDATA_ANY(val);
	end = p + VARSIZE_ANY_EXHDR(val);
	args = palloc0(sizeof(char *) * tg->tgnargs);
	for (int i = 0; i < tg->tgnargs && p < end; i++)
	{
		args[i] = pnstrdup(p, strnlen(p, end - p));
		p += strlen(args[i]) + 1;
		(*nargs)++;
	}
	return args;
}

/*
 * The table fencing was enabled on: relid itself, or for a trigger cloned
 * onto a partition, the partitioned table at the top.
 */
Oid
fence_root_relid(Oid tgoid, Oid relid)
{
	Relation	tgrel = table_open(TriggerRelationId, AccessShareLock);

	for (;;)
	{
		ScanKeyData skey;
		SysScanDesc scan;
		HeapTuple	tup;
		Form_pg_trigger tg;
		Oid			parent;

		ScanKeyInit(&skey, Anum_pg_trigger_oid, BTEqualStrategyNumber,
					F_OIDEQ, ObjectIdGetDatum(tgoid));
		scan = systable_beginscan(tgrel, TriggerOidIndexId, true, NULL, 1,
								  &skey);
		tup = systable_getnext(scan);
		if (!HeapTupleIsValid(tup))
		{
			systable_endscan(scan);
			break;
		}
		tg = (Form_pg_trigger) GETSTRUCT(tup);
		relid = tg->tgrelid;
		parent = tg->tgparentid;
		systable_endscan(scan);
		if (!OidIsValid(parent))
			break;
		tgoid = parent;
	}
	table_close(tgrel, AccessShareLock);
	return relid;
}

/*
 * Check that colname can be rel's token column: an ordinary bigint column
 * (tokens are 64-bit).  Returns its number.  enabling: the error says the
 * column is missing, rather than that it was renamed or dropped since.
 */
AttrNumber
fence_token_column(Relation rel, const char *colname, bool enabling)
{
	HeapTuple	atttup;
	Form_pg_attribute att;
	AttrNumber	attnum;
	Oid			typid;

	atttup = SearchSysCacheAttName(RelationGetRelid(rel), colname);
	if (!HeapTupleIsValid(atttup))
	{
		if (enabling)
			ereport(ERROR,
					(errcode(ERRCODE_UNDEFINED_COLUMN),
					 errmsg("column \"%s\" of relation \"%s\" does not exist",
							colname, RelationGetRelationName(rel)),
					 errhint("Add the token column first, e.g. ALTER TABLE ... ADD COLUMN %s bigint.",
							 quote_identifier(colname))));
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_COLUMN),
				 errmsg("token column \"%s\" of fenced table \"%s\" does not exist",
						colname, RelationGetRelationName(rel)),
				 errdetail("The column was renamed or dropped after fencing was enabled on the table."),
				 errhint("Call lockctl.disable_fencing() and lockctl.enable_fencing() again with the column's name.")));
	}
	att = (Form_pg_attribute) GETSTRUCT(atttup);
	attnum = att->attnum;
	typid = att->atttypid;

	if (attnum <= 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_COLUMN_DEFINITION),
				 errmsg("system column \"%s\" cannot be a token column",
						colname)));
	if (att->attgenerated != '\0')
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_COLUMN_DEFINITION),
				 errmsg("generated column \"%s\" of relation \"%s\" cannot be a token column",
						colname, RelationGetRelationName(rel)),
				 errdetail("The trigger writes the token into the column.")));
	if (att->attidentity != '\0')
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_COLUMN_DEFINITION),
				 errmsg("identity column \"%s\" of relation \"%s\" cannot be a token column",
						colname, RelationGetRelationName(rel)),
				 errdetail("The trigger writes the token into the column.")));
	if (typid != INT8OID)
		ereport(ERROR,
				(errcode(ERRCODE_DATATYPE_MISMATCH),
				 errmsg("token column \"%s\" of relation \"%s\" has type %s",
						colname, RelationGetRelationName(rel),
						format_type_be(typid)),
				 errdetail("A fencing token is a bigint; the token column must be of type bigint.")));
	ReleaseSysCache(atttup);
	return attnum;
}

/* ---------------------------------------------------------------------
 * enable_fencing / disable_fencing
 * ---------------------------------------------------------------------
 */

/*
 * Open relid for a change of its fencing, with lockmode.  The caller's
 * ownership is checked before the lock is asked for (as LOCK TABLE does:
 * a role that may not change the table queues no lock on it) and again
 * once it is held.
 */
static Relation
fence_open_owned(Oid relid, LOCKMODE lockmode, const char *fname)
{
	HeapTuple	tup;
	Form_pg_class form;
	char		relkind;
	char	   *relname;
	bool		system;
	Relation	rel;

	tup = SearchSysCache1(RELOID, ObjectIdGetDatum(relid));
	if (!HeapTupleIsValid(tup))
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_TABLE),
				 errmsg("relation with OID %u does not exist", relid)));
	form = (Form_pg_class) GETSTRUCT(tup);
	relkind = form->relkind;
	relname = pstrdup(NameStr(form->relname));
	system = IsSystemClass(relid, form);
	ReleaseSysCache(tup);

	if (relkind != RELKIND_RELATION && relkind != RELKIND_PARTITIONED_TABLE)
		ereport(ERROR,
				(errcode(ERRCODE_WRONG_OBJECT_TYPE),
				 errmsg("cannot use %s on relation \"%s\"", fname, relname),
				 errdetail_relkind_not_supported(relkind),
				 errhint("Fencing works on ordinary and partitioned tables.")));
	if (system)
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("cannot use %s on system catalog \"%s\"",
						fname, relname)));
	if (!object_ownercheck(RelationRelationId, relid, GetUserId()))
		aclcheck_error(ACLCHECK_NOT_OWNER, get_relkind_objtype(relkind),
					   relname);

	LockRelationOid(relid, lockmode);
	rel = try_relation_open(relid, NoLock);
	if (rel == NULL)
	{
		UnlockRelationOid(relid, lockmode);
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_TABLE),
				 errmsg("relation with OID %u does not exist", relid)));
	}
	/* It may have changed hands while we waited. */
	if (!object_ownercheck(RelationRelationId, relid, GetUserId()))
		aclcheck_error(ACLCHECK_NOT_OWNER,
					   get_relkind_objtype(rel->rd_rel->relkind),
					   RelationGetRelationName(rel));
	return rel;
}

/* Run one utility statement through SPI. */
static void
fence_run_utility(const char *sql)
{
	int			rc;

	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	rc = SPI_execute(sql, false, 0);
	if (rc != SPI_OK_UTILITY)
		elog(ERROR, "SPI_execute failed for \"%s\": %s", sql,
			 SPI_result_code_string(rc));
	SPI_finish();
}

/*
 * lockctl.enable_fencing(tbl regclass, resource text, token_column name,
 *						  resource_expression text)
 */
PG_FUNCTION_INFO_V1(lockctl_enable_fencing);
Datum
lockctl_enable_fencing(PG_FUNCTION_ARGS)
{
	const char *fname = "lockctl.enable_fencing()";
	Oid			relid;
	char	   *resource;
	char	   *tokcol = NULL;
	char	   *exprtext = NULL;
	char	   *canonical = NULL;
	AttrNumber	tokattnum = InvalidAttrNumber;
	Relation	rel;
	Trigger    *existing;
	Oid			fnoid;
	StringInfoData sql;

	lockctl_arg_not_null(fcinfo, 0, "tbl");
	relid = PG_GETARG_OID(0);
	resource = lockctl_arg_name(fcinfo, 1, "resource", true);
	if (!PG_ARGISNULL(2))
	{
		tokcol = pstrdup(NameStr(*PG_GETARG_NAME(2)));
		if (tokcol[0] == '\0')
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("token_column of lockctl.enable_fencing must not be empty")));
	}
	if (!PG_ARGISNULL(3))
	{
		exprtext = text_to_cstring(PG_GETARG_TEXT_PP(3));
		if (exprtext[strspn(exprtext, " \t\n\r\f\v")] == '\0')
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("resource_expression of lockctl.enable_fencing must not be empty")));
	}
	if ((resource == NULL) == (exprtext == NULL))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 resource == NULL ?
				 errmsg("%s needs a resource or a resource_expression", fname) :
				 errmsg("%s takes a resource or a resource_expression, not both",
						fname),
				 errhint("Pass resource => 'name' for one lease that guards the whole table, or resource_expression => '...' for a lease per row.")));

	PreventCommandDuringRecovery(fname);

	fnoid = fence_trigger_fn(false);
	rel = fence_open_owned(relid, ShareRowExclusiveLock, fname);

	existing = fence_find_trigger(rel, fnoid);
	if (existing != NULL)
		ereport(ERROR,
				(errcode(ERRCODE_DUPLICATE_OBJECT),
				 errmsg("fencing is already enabled on table \"%s\"",
						RelationGetRelationName(rel)),
				 existing->tgisclone ?
				 errdetail("The table is a partition of a fenced table.") :
				 errdetail("Trigger \"%s\" checks it.", existing->tgname),
				 errhint("To change how it is fenced, call lockctl.disable_fencing() first.")));

	/* No partition may be fenced on its own already. */
	if (rel->rd_rel->relkind == RELKIND_PARTITIONED_TABLE)
	{
		List	   *children = find_all_inheritors(relid, ShareRowExclusiveLock,
												   NULL);
		ListCell   *lc;

		foreach(lc, children)
		{
			Oid			child = lfirst_oid(lc);
			Relation	crel;

			if (child == relid)
				continue;
			crel = relation_open(child, NoLock);
			if (fence_find_trigger(crel, fnoid) != NULL)
				ereport(ERROR,
						(errcode(ERRCODE_DUPLICATE_OBJECT),
						 errmsg("fencing is already enabled on partition \"%s\" of table \"%s\"",
								RelationGetRelationName(crel),
								RelationGetRelationName(rel)),
						 errhint("Disable it on the partition first.")));
			relation_close(crel, NoLock);
		}
	}
	else if (has_subclass(relid))
		ereport(WARNING,
				(errmsg("rows of the inheritance children of table \"%s\" are not fenced",
						RelationGetRelationName(rel)),
				 errdetail("Row triggers, which check the fence, are not inherited (partitions do get them)."),
				 errhint("Call lockctl.enable_fencing() on each child table too.")));

	if (tokcol != NULL)
		tokattnum = fence_token_column(rel, tokcol, true);
	if (exprtext != NULL)
		canonical = fence_expr_canonical(rel, exprtext, tokattnum);

	initStringInfo(&sql);
	appendStringInfo(&sql,
					 "CREATE TRIGGER %s BEFORE INSERT OR UPDATE OR DELETE ON %s "
					 "FOR EACH ROW EXECUTE FUNCTION lockctl.%s(",
					 quote_identifier(FENCE_TRIGGER_NAME),
					 quote_qualified_identifier(get_namespace_name(RelationGetNamespace(rel)),
												RelationGetRelationName(rel)),
					 quote_identifier(FENCE_TRIGGER_FUNC));
	if (resource != NULL)
		appendStringInfo(&sql, "%s, %s",
						 quote_literal_cstr(FENCE_ARG_RESOURCE),
						 quote_literal_cstr(resource));
	else
		appendStringInfo(&sql, "%s, %s",
						 quote_literal_cstr(FENCE_ARG_EXPRESSION),
						 quote_literal_cstr(canonical));
	if (tokcol != NULL)
		appendStringInfo(&sql, ", %s, %s",
						 quote_literal_cstr(FENCE_ARG_TOKEN_COLUMN),
						 quote_literal_cstr(tokcol));
	appendStringInfoChar(&sql, ')');

	relation_close(rel, NoLock);
	fence_run_utility(sql.data);

	/* Counters start over (a stale entry of an earlier table with this oid). */
	fence_stats_remove(relid);

	PG_RETURN_VOID();
}

/*
 * lockctl.disable_fencing(tbl regclass)
 */
PG_FUNCTION_INFO_V1(lockctl_disable_fencing);
Datum
lockctl_disable_fencing(PG_FUNCTION_ARGS)
{
	const char *fname = "lockctl.disable_fencing()";
	Oid			relid;
	Relation	rel;
	Trigger    *trigger;
	char	   *sql;

	lockctl_arg_not_null(fcinfo, 0, "tbl");
	relid = PG_GETARG_OID(0);

	PreventCommandDuringRecovery(fname);

	rel = fence_open_owned(relid, AccessExclusiveLock, fname);
	trigger = fence_find_trigger(rel, fence_trigger_fn(false));
	if (trigger == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_OBJECT),
				 errmsg("fencing is not enabled on table \"%s\"",
						RelationGetRelationName(rel))));
	if (trigger->tgisclone)
		ereport(ERROR,
				(errcode(ERRCODE_DEPENDENT_OBJECTS_STILL_EXIST),
				 errmsg("fencing of partition \"%s\" is inherited from its partitioned table",
						RelationGetRelationName(rel)),
				 errhint("Call lockctl.disable_fencing() on the partitioned table.")));

	sql = psprintf("DROP TRIGGER %s ON %s",
				   quote_identifier(trigger->tgname),
				   quote_qualified_identifier(get_namespace_name(RelationGetNamespace(rel)),
											  RelationGetRelationName(rel)));
	relation_close(rel, NoLock);
	fence_run_utility(sql);
	fence_stats_remove(relid);

	PG_RETURN_VOID();
}

