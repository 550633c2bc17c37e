/*-------------------------------------------------------------------------
 *
 * version_update.c
 *	  lockctl.update_versioned(): update one row by primary key if and only
 *	  if its version is the expected one, through a prepared UPDATE that
 *	  lockctl checks with the version trigger's rule (in the UPDATE's own
 *	  projection where it can: version_direct.c).
 *
 * update_versioned() builds one UPDATE per (table, set of columns), with
 * every identifier quoted, prepares it once per backend (the plan is
 * forgotten when the table's relcache entry is invalidated) and runs it
 * with the caller's privileges; the check is the trigger's rule.
 *
 * A call goes in named steps: uv_open (privileges, the table, its trigger,
 * its key), uv_columns (the changes), uv_plan (the cached plan),
 * uv_values (its parameters), then the execution.
 *
 * src/version_update.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/genam.h"
#include "access/relation.h"
#include "access/stratnum.h"
#include "catalog/pg_operator.h"
#include "catalog/pg_type.h"
#include "commands/trigger.h"
#include "common/hashfn.h"
#include "executor/spi.h"
#include "lib/stringinfo.h"
#include "miscadmin.h"
#include "storage/lmgr.h"
#include "utils/acl.h"
#include "utils/builtins.h"
#include "utils/hsearch.h"
#include "utils/inval.h"
#include "utils/jsonb.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/rel.h"
#include "utils/syscache.h"

#include "version.h"

/* update_versioned()'s prepared statements, per (table, columns). */
typedef struct UVCacheKey
{
	Oid			relid;
	uint32		colhash;
} UVCacheKey;

typedef struct UVCacheEntry
{
	UVCacheKey	key;
	bool		valid;
	char	   *cols;			/* column names, each NUL-terminated */
	int			colslen;
	SPIPlanPtr	plan;
	int			nkeycols;		/* primary key columns */
	Oid			pktypes[INDEX_MAX_KEYS];
	int32		pktypmods[INDEX_MAX_KEYS];
	char	   *pknames;		/* their names, each NUL-terminated */
	Oid			vtype;
	int			busy;			/* executions under way (nested calls) */
} UVCacheEntry;

#define UV_CACHE_MAX	1024

static HTAB *uv_cache = NULL;

/*
 * One call of update_versioned(): the table and its version column, the
 * columns to set (their names, numbers and JSON values) and the plan.
 */
typedef struct UVCall
{
	Relation	rel;
	AttrNumber	vattnum;
	Oid			pkoid;
	List	   *colnames;
	StringInfoData cols;		/* the names, NUL-separated, then the form */
	int			ncols;
	AttrNumber *attnums;
	JsonbValue *jvals;
	bool		use_record;		/* set through jsonb_to_record */
} UVCall;

static void uv_invalidate_rel(Datum arg, Oid relid);
static void uv_check_privilege(Oid relid);
static Relation uv_open(Oid relid, int64 expected, AttrNumber *vattnum);
static void uv_columns(UVCall *call, Jsonb *changes);
static UVCacheEntry *uv_plan(UVCall *call, UVCacheEntry *tmp, bool *cached);
static Datum *uv_values(UVCall *call, UVCacheEntry *e, int64 expected,
						Jsonb *changes, Datum keyval, Oid keytype,
						char **nulls);

/*
 * Relcache callback: the plans of a changed table are made again.
 */
static void
uv_invalidate_rel(Datum arg, Oid relid)
{
	HASH_SEQ_STATUS seq;
	UVCacheEntry *e;

	if (uv_cache == NULL)
		return;
	hash_seq_init(&seq, uv_cache);
	while ((e = hash_seq_search(&seq)) != NULL)
	{
		if (!OidIsValid(relid) || e->key.relid == relid)
			e->valid = false;
	}
}

/* ---------------------------------------------------------------------
 * update_versioned
 * ---------------------------------------------------------------------
 */

/*
 * Prepare the UPDATE for rel and the given columns into entry e.
 *
 * Parameters: $1 the expected version, $2 the changes (jsonb), then one per
 * primary key column, then (unless use_record) one per column to set, of
 * that column's type.
 */
static void
version_uv_prepare(UVCacheEntry *e, Relation rel, Oid pkoid,
				   AttrNumber vattnum, List *colnames, bool keep,
				   bool use_record)
{
	TupleDesc	tupdesc = RelationGetDescr(rel);
	MemoryContext cxt = keep ? TopMemoryContext : CurrentMemoryContext;
	Relation	idx;
	int			nk;
	char	   *qualname;
	const char *vname = NameStr(TupleDescAttr(tupdesc, vattnum - 1)->attname);
	StringInfoData sql;
	StringInfoData rec;
	StringInfoData where;
	StringInfoData names;
	ListCell   *lc;
	Oid		   *argtypes;
	int			nargs = 2;
	SPIPlanPtr	plan;

	argtypes = palloc(sizeof(Oid) * (2 + INDEX_MAX_KEYS + list_length(colnames)));
	argtypes[0] = INT8OID;
	argtypes[1] = JSONBOID;

	/* WHERE: each key column, with its index's equality operator. */
	initStringInfo(&where);
	initStringInfo(&names);
	idx = index_open(pkoid, AccessShareLock);
	nk = IndexRelationGetNumberOfKeyAttributes(idx);
	for (int i = 0; i < nk; i++)
	{
		AttrNumber	attno = idx->rd_index->indkey.values[i];
		Form_pg_attribute att = TupleDescAttr(tupdesc, attno - 1);
		Oid			eqop;
		HeapTuple	optup;
		Form_pg_operator opform;

		eqop = get_opfamily_member(idx->rd_opfamily[i], idx->rd_opcintype[i],
								   idx->rd_opcintype[i], BTEqualStrategyNumber);
		if (!OidIsValid(eqop))
			elog(ERROR, "no equality operator for the primary key of \"%s\"",
				 RelationGetRelationName(rel));
		optup = SearchSysCache1(OPEROID, ObjectIdGetDatum(eqop));
		if (!HeapTupleIsValid(optup))
			elog(ERROR, "cache lookup failed for operator %u", eqop);
		opform = (Form_pg_operator) GETSTRUCT(optup);

		argtypes[nargs++] = att->atttypid;
		appendStringInfo(&where, "%st.%s OPERATOR(%s.%s) $%d",
						 i > 0 ? " AND " : "",
						 quote_identifier(NameStr(att->attname)),
						 quote_identifier(get_namespace_name(opform->oprnamespace)),
						 NameStr(opform->oprname), nargs);
		ReleaseSysCache(optup);

		e->pktypes[i] = att->atttypid;
		e->pktypmods[i] = att->atttypmod;
		appendBinaryStringInfo(&names, NameStr(att->attname),
							   strlen(NameStr(att->attname)) + 1);
	}
	index_close(idx, AccessShareLock);

	qualname = quote_qualified_identifier(get_namespace_name(RelationGetNamespace(rel)),
										  RelationGetRelationName(rel));

	initStringInfo(&sql);
	initStringInfo(&rec);
	appendStringInfo(&sql, "UPDATE %s%s AS t SET ",
					 rel->rd_rel->relkind == RELKIND_RELATION ? "ONLY " : "",
					 qualname);
	foreach(lc, colnames)
	{
		const char *col = (const char *) lfirst(lc);
		AttrNumber	attnum = get_attnum(RelationGetRelid(rel), col);
		Form_pg_attribute att = TupleDescAttr(tupdesc, attnum - 1);

		if (use_record)
		{
			appendStringInfo(&sql, "%s = r.%s, ", quote_identifier(col),
							 quote_identifier(col));
			appendStringInfo(&rec, "%s%s %s", rec.len > 0 ? ", " : "",
							 quote_identifier(col),
							 format_type_extended(att->atttypid, att->atttypmod,
												  FORMAT_TYPE_TYPEMOD_GIVEN |
												  FORMAT_TYPE_FORCE_QUALIFY));
		}
		else
		{
			/* the value comes converted to the column's type */
			argtypes[nargs++] = att->atttypid;
			appendStringInfo(&sql, "%s = $%d, ", quote_identifier(col), nargs);
		}
	}
	appendStringInfo(&sql, "%s = $1", quote_identifier(vname));
	if (use_record && colnames != NIL)
		appendStringInfo(&sql, " FROM pg_catalog.jsonb_to_record($2) AS r(%s)",
						 rec.data);
	appendStringInfo(&sql, " WHERE %s RETURNING t.%s", where.data,
					 quote_identifier(vname));

	plan = SPI_prepare(sql.data, nargs, argtypes);
	if (plan == NULL)
		elog(ERROR, "SPI_prepare failed for \"%s\": %s", sql.data,
			 SPI_result_code_string(SPI_result));
	if (keep && SPI_keepplan(plan) != 0)
		elog(ERROR, "SPI_keepplan failed");

	e->plan = plan;
	e->nkeycols = nk;
	e->pknames = MemoryContextAlloc(cxt, names.len);
	memcpy(e->pknames, names.data, names.len);
	e->vtype = TupleDescAttr(tupdesc, vattnum - 1)->atttypid;
	e->valid = true;
}

/*
 * A scalar JSON value as a value of type typid, as jsonb_to_record makes
 * it: json and jsonb take the JSON value; other types take the text of a
 * string, number or boolean through their input function.
 */
static Datum
version_json_to_datum(JsonbValue *v, Oid typid, int32 typmod)
{
	Oid			base;
	char	   *str;
	Oid			typin;
	Oid			typioparam;

	if (typid == JSONBOID)
		return JsonbPGetDatum(JsonbValueToJsonb(v));
	base = getBaseType(typid);
	if (base == JSONOID || base == JSONBOID)
	{
		Jsonb	   *j = JsonbValueToJsonb(v);

		str = JsonbToCString(NULL, &j->root, VARSIZE(j));
	}
	else if (v->type == jbvString)
		str = pnstrdup(v->val.string.val, v->val.string.len);
	else if (v->type == jbvNumeric)
		str = DatumGetCString(DirectFunctionCall1(numeric_out,
												  NumericGetDatum(v->val.numeric)));
	else if (v->type == jbvBool)
		str = pstrdup(v->val.boolean ? "true" : "false");
	else
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("cannot convert a JSON array or object to type %s",
						format_type_be(typid))));
	getTypeInputInfo(typid, &typin, &typioparam);
	return OidInputFunctionCall(typin, str, typioparam, typmod);
}

/*
 * "(a, b)=(1, x)": the key columns and the values in keys[], for messages.
 */
static char *
version_uv_key_shown(UVCacheEntry *e, Datum *keys)
{
	StringInfoData names;
	StringInfoData shown;
	const char *name = e->pknames;

	initStringInfo(&names);
	initStringInfo(&shown);
	for (int i = 0; i < e->nkeycols; i++, name += strlen(name) + 1)
	{
		Oid			typout;
		bool		typvarlena;

		getTypeOutputInfo(e->pktypes[i], &typout, &typvarlena);
		appendStringInfo(&names, "%s%s", i > 0 ? ", " : "",
						 quote_identifier(name));
		appendStringInfo(&shown, "%s%s", i > 0 ? ", " : "",
						 OidOutputFunctionCall(typout, keys[i]));
	}
	return psprintf("(%s)=(%s)", names.data, shown.data);
}

/*
 * A composite key sent as text (drivers that send parameters untyped) as
 * jsonb; text that is not JSON (a driver that sent an object's "[object
 * Object]") is an error that names the argument, not only the JSON parser's.
 */
static Jsonb *
version_uv_key_json(Datum keyval, Oid keytype, int nkeycols, const char *names)
{
	Oid			typout;
	bool		typvarlena;
	char	   *str;
	MemoryContext oldcxt = CurrentMemoryContext;
	Jsonb	   *j = NULL;

	getTypeOutputInfo(keytype, &typout, &typvarlena);
	str = OidOutputFunctionCall(typout, keyval);
	PG_TRY();
	{
		j = DatumGetJsonbP(DirectFunctionCall1(jsonb_in, CStringGetDatum(str)));
	}
	PG_CATCH();
	{
		ErrorData  *edata;

		MemoryContextSwitchTo(oldcxt);
		edata = CopyErrorData();
		FlushErrorState();
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("key of lockctl.update_versioned() must be a JSON object with the %d primary key columns (%s)",
						nkeycols, names),
				 errdetail("The key sent is not JSON: %s.", edata->message),
				 errhint("Send the key as JSON (jsonb), e.g. {\"a\": 1, \"b\": \"x\"}.")));
	}
	PG_END_TRY();
	return j;
}

/*
 * The key argument as values of the primary key columns, into keys[]: any
 * value for a one-column key (converted through text when its type
 * differs), a JSON object naming every column for a composite key.
 */
static void
version_uv_keys(UVCacheEntry *e, Datum keyval, Oid keytype, Datum *keys)
{
	StringInfoData names;
	const char *name = e->pknames;

	if (e->nkeycols == 1)
	{
		if (keytype != e->pktypes[0])
		{
			Oid			typout;
			bool		typvarlena;
			Oid			typin;
			Oid			typioparam;

			getTypeOutputInfo(keytype, &typout, &typvarlena);
			getTypeInputInfo(e->pktypes[0], &typin, &typioparam);
			keyval = OidInputFunctionCall(typin,
										  OidOutputFunctionCall(typout, keyval),
										  typioparam, e->pktypmods[0]);
		}
		keys[0] = keyval;
		return;
	}
	else
	{
		Jsonb	   *j;

		initStringInfo(&names);
		for (int i = 0; i < e->nkeycols; i++, name += strlen(name) + 1)
			appendStringInfo(&names, "%s%s", i > 0 ? ", " : "",
							 quote_identifier(name));
		if (keytype == JSONBOID)
			j = DatumGetJsonbP(keyval);
		else if (keytype == TEXTOID || keytype == JSONOID ||
				 keytype == VARCHAROID)
			j = version_uv_key_json(keyval, keytype, e->nkeycols, names.data);
		else
			j = NULL;
		if (j == NULL || !JB_ROOT_IS_OBJECT(j) || JB_ROOT_IS_SCALAR(j) ||
			JsonContainerSize(&j->root) != e->nkeycols)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("key of lockctl.update_versioned() must be a JSON object with the %d primary key columns (%s)",
							e->nkeycols, names.data)));

		name = e->pknames;
		for (int i = 0; i < e->nkeycols; i++, name += strlen(name) + 1)
		{
			JsonbValue	k;
			JsonbValue *v;

			k.type = jbvString;
			k.val.string.val = (char *) name;
			k.val.string.len = strlen(name);
			v = findJsonbValueFromContainer(&j->root, JB_FOBJECT, &k);
			if (v == NULL)
				ereport(ERROR,
						(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
						 errmsg("key of lockctl.update_versioned() has no value for primary key column \"%s\"",
								name),
						 errdetail("The primary key columns are %s.", names.data)));
			if (v->type == jbvNull)
				ereport(ERROR,
						(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
						 errmsg("key of lockctl.update_versioned() has a null value for primary key column \"%s\"",
								name)));
			keys[i] = version_json_to_datum(v, e->pktypes[i], e->pktypmods[i]);
		}
	}
}

/*
 * The caller may UPDATE relid, or some column of it; 42501 if not, 42P01 if
 * there is no such relation.  Reads the catalog only, takes no lock.
 */
static void
uv_check_privilege(Oid relid)
{
	if (pg_class_aclcheck(relid, GetUserId(), ACL_UPDATE) != ACLCHECK_OK &&
		pg_attribute_aclcheck_all(relid, GetUserId(), ACL_UPDATE,
								  ACLMASK_ANY) != ACLCHECK_OK)
		aclcheck_error(ACLCHECK_NO_PRIV, OBJECT_TABLE, get_rel_name(relid));
}

/*
 * Open relid for update_versioned(): the caller may update it, it is a
 * table, its versioning trigger fires in this session, expected fits its
 * version column (*vattnum), and it has a primary key.
 */
static Relation
uv_open(Oid relid, int64 expected, AttrNumber *vattnum)
{
	Relation	rel;
	Trigger    *trigger;
	Oid			vtype;
	bool		fires;

	/*
	 * Permission before lock, as LOCK TABLE does: the caller must be allowed
	 * to update the table before it may queue a lock on it (a waiting lock
	 * request makes every later one wait).  Checked again once the lock is
	 * ours, in case the table was dropped or the grant revoked meanwhile.
	 */
	uv_check_privilege(relid);
	LockRelationOid(relid, RowExclusiveLock);
	uv_check_privilege(relid);
	rel = try_relation_open(relid, NoLock);
	if (rel == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_TABLE),
				 errmsg("relation with OID %u does not exist", relid)));
	if (rel->rd_rel->relkind != RELKIND_RELATION &&
		rel->rd_rel->relkind != RELKIND_PARTITIONED_TABLE)
		ereport(ERROR,
				(errcode(ERRCODE_WRONG_OBJECT_TYPE),
				 errmsg("cannot use lockctl.update_versioned() on relation \"%s\"",
						RelationGetRelationName(rel)),
				 errdetail_relkind_not_supported(rel->rd_rel->relkind)));

	trigger = version_find_trigger(rel, version_trigger_fn(false));
	if (trigger == NULL || trigger->tgnargs != 2)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("versioning is not enabled on table \"%s\"",
						RelationGetRelationName(rel)),
				 errhint("Call lockctl.enable_versioning() first.")));

	/* Without the trigger firing, nothing would check the version. */
	switch (trigger->tgenabled)
	{
		case TRIGGER_FIRES_ALWAYS:
			fires = true;
			break;
		case TRIGGER_FIRES_ON_ORIGIN:
			fires = (SessionReplicationRole != SESSION_REPLICATION_ROLE_REPLICA);
			break;
		case TRIGGER_FIRES_ON_REPLICA:
			fires = (SessionReplicationRole == SESSION_REPLICATION_ROLE_REPLICA);
			break;
		default:
			fires = false;
			break;
	}
	if (!fires)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("versioning trigger \"%s\" on table \"%s\" does not fire in this session",
						trigger->tgname, RelationGetRelationName(rel)),
				 errdetail("The trigger is disabled, or session_replication_role keeps it from firing."),
				 errhint("Enable the trigger with ALTER TABLE ... ENABLE TRIGGER, or reset session_replication_role.")));

	*vattnum = version_check_column(rel, trigger->tgargs[0], &vtype, false);
	if (expected < version_type_min(vtype) || expected > version_type_max(vtype))
		ereport(ERROR,
				(errcode(ERRCODE_NUMERIC_VALUE_OUT_OF_RANGE),
				 errmsg("expected_version " INT64_FORMAT " is out of range for version column \"%s\" of type %s",
						expected, trigger->tgargs[0], format_type_be(vtype))));

	if (!OidIsValid(RelationGetPrimaryKeyIndex(rel, false)))
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("table \"%s\" has no primary key",
						RelationGetRelationName(rel)),
				 errdetail("lockctl.update_versioned() finds the row by its primary key.")));
	return rel;
}

/*
 * The columns to set, checked, in the order jsonb keeps its keys, and
 * their values; and whether the plan must set them through
 * jsonb_to_record.
 */
static void
uv_columns(UVCall *call, Jsonb *changes)
{
	TupleDesc	tupdesc = RelationGetDescr(call->rel);
	Oid			relid = RelationGetRelid(call->rel);
	int			nkeys = JsonContainerSize(&changes->root);
	JsonbIterator *it = JsonbIteratorInit(&changes->root);
	JsonbValue	v;
	JsonbIteratorToken tok;

	call->jvals = palloc(sizeof(JsonbValue) * (nkeys + 1));
	call->attnums = palloc(sizeof(AttrNumber) * (nkeys + 1));
	call->colnames = NIL;
	call->ncols = 0;
	call->use_record = false;
	initStringInfo(&call->cols);

	while ((tok = JsonbIteratorNext(&it, &v, true)) != WJB_DONE)
	{
		char	   *col;
		AttrNumber	attnum;

		if (tok == WJB_VALUE && call->ncols > 0)
		{
			Oid			base = getBaseType(TupleDescAttr(tupdesc, call->attnums[call->ncols - 1] - 1)->atttypid);

			/*
			 * Arrays and objects for columns other than json and jsonb are
			 * converted as jsonb_to_record converts them.
			 */
			call->jvals[call->ncols - 1] = v;
			if (v.type == jbvBinary && base != JSONOID && base != JSONBOID)
				call->use_record = true;
			continue;
		}
		if (tok != WJB_KEY)
			continue;
		col = pnstrdup(v.val.string.val, v.val.string.len);
		attnum = get_attnum(relid, col);
		if (attnum == InvalidAttrNumber)
			ereport(ERROR,
					(errcode(ERRCODE_UNDEFINED_COLUMN),
					 errmsg("column \"%s\" of relation \"%s\" does not exist",
							col, RelationGetRelationName(call->rel))));
		if (attnum < 0)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_COLUMN_REFERENCE),
					 errmsg("cannot assign to system column \"%s\"", col)));
		if (attnum == call->vattnum)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("changes of lockctl.update_versioned() must not set version column \"%s\"",
							col),
					 errdetail("The new version is the expected version plus one.")));
		call->colnames = lappend(call->colnames, col);
		appendBinaryStringInfo(&call->cols, col, strlen(col) + 1);
		call->attnums[call->ncols] = attnum;
		call->ncols++;
	}
	/* The plan's form is part of what identifies it. */
	appendStringInfoChar(&call->cols, call->use_record ? 'r' : 'p');
}

/*
 * The prepared UPDATE for call's columns: from the cache, or prepared now
 * (into the cache, or into *tmp when *cached comes back false).  Caller
 * is connected to SPI.
 *
 * A stale entry (the table changed), or another column set with the same
 * hash, is replaced, unless an outer call is still executing its plan:
 * then this call uses a plan of its own.
 */
static UVCacheEntry *
uv_plan(UVCall *call, UVCacheEntry *tmp, bool *cached)
{
	UVCacheKey	ckey;
	UVCacheEntry *e;
	bool		found;

	if (uv_cache == NULL)
	{
		HASHCTL		info;

		CacheRegisterRelcacheCallback(uv_invalidate_rel, (Datum) 0);
		memset(&info, 0, sizeof(info));
		info.keysize = sizeof(UVCacheKey);
		info.entrysize = sizeof(UVCacheEntry);
		uv_cache = hash_create("lockctl update_versioned plans", 64, &info,
							   HASH_ELEM | HASH_BLOBS);
	}
	memset(&ckey, 0, sizeof(ckey));
	ckey.relid = RelationGetRelid(call->rel);
	ckey.colhash = hash_bytes((const unsigned char *) call->cols.data,
							  call->cols.len) ^ (uint32) call->ncols;

	*cached = true;
	e = hash_search(uv_cache, &ckey, HASH_FIND, NULL);
	if (e != NULL &&
		!(e->valid && e->colslen == call->cols.len &&
		  memcmp(e->cols, call->cols.data, call->cols.len) == 0))
	{
		if (e->busy == 0)
		{
			if (e->plan)
				SPI_freeplan(e->plan);
			if (e->cols)
				pfree(e->cols);
			if (e->pknames)
				pfree(e->pknames);
			hash_search(uv_cache, &ckey, HASH_REMOVE, NULL);
		}
		else
			*cached = false;
		e = NULL;
	}
	if (e != NULL)
		return e;
	if (hash_get_num_entries(uv_cache) >= UV_CACHE_MAX)
		*cached = false;

	/* Not kept: freed with the SPI context, on error too. */
	memset(tmp, 0, sizeof(*tmp));
	version_uv_prepare(tmp, call->rel, call->pkoid, call->vattnum,
					   call->colnames, *cached, call->use_record);
	if (!*cached)
		return tmp;
	e = hash_search(uv_cache, &ckey, HASH_ENTER, &found);
	*e = *tmp;
	e->key = ckey;
	e->cols = MemoryContextAlloc(TopMemoryContext, Max(call->cols.len, 1));
	memcpy(e->cols, call->cols.data, call->cols.len);
	e->colslen = call->cols.len;
	return e;
}

/*
 * The plan's parameters: $1 the version, $2 the changes, the key, then
 * (unless the plan sets them through jsonb_to_record) the values.
 */
static Datum *
uv_values(UVCall *call, UVCacheEntry *e, int64 expected, Jsonb *changes,
		  Datum keyval, Oid keytype, char **nulls_out)
{
	TupleDesc	tupdesc = RelationGetDescr(call->rel);
	int			nk = e->nkeycols;
	int			n = 2 + nk + call->ncols;
	Datum	   *values = palloc(sizeof(Datum) * n);
	char	   *nulls = palloc(n + 1);

	memset(nulls, ' ', n);
	nulls[n] = '\0';
	values[0] = Int64GetDatum(expected);
	values[1] = JsonbPGetDatum(changes);
	version_uv_keys(e, keyval, keytype, &values[2]);
	if (!call->use_record)
	{
		for (int i = 0; i < call->ncols; i++)
		{
			Form_pg_attribute att = TupleDescAttr(tupdesc, call->attnums[i] - 1);

			if (call->jvals[i].type == jbvNull)
			{
				nulls[2 + nk + i] = 'n';
				values[2 + nk + i] = (Datum) 0;
			}
			else
				values[2 + nk + i] = version_json_to_datum(&call->jvals[i],
														   att->atttypid,
														   att->atttypmod);
		}
	}
	*nulls_out = nulls;
	return values;
}

/*
 * lockctl.update_versioned(tbl regclass, key anyelement,
 *							expected_version bigint, changes jsonb)
 *
 * Update the row of tbl whose primary key is key, if and only if its
 * version is expected_version; return the new version.
 */
PG_FUNCTION_INFO_V1(lockctl_update_versioned);
Datum
lockctl_update_versioned(PG_FUNCTION_ARGS)
{
	Oid			relid;
	Datum		keyval;
	Oid			keytype;
	int64		expected;
	Jsonb	   *changes;
	UVCall		call;
	UVCacheEntry *volatile e;
	UVCacheEntry tmp;
	bool		cached;
	Datum	   *values;
	char	   *nulls;
	volatile int rc = 0;
	int64		result;
	bool		isnull;

	lockctl_arg_not_null(fcinfo, 0, "tbl");
	lockctl_arg_not_null(fcinfo, 1, "key");
	lockctl_arg_not_null(fcinfo, 2, "expected_version");
	lockctl_arg_not_null(fcinfo, 3, "changes");
	relid = PG_GETARG_OID(0);
	keyval = PG_GETARG_DATUM(1);
	keytype = get_fn_expr_argtype(fcinfo->flinfo, 1);
	expected = PG_GETARG_INT64(2);
	changes = PG_GETARG_JSONB_P(3);

	if (!JB_ROOT_IS_OBJECT(changes) || JB_ROOT_IS_SCALAR(changes))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("changes of lockctl.update_versioned() must be a JSON object"),
				 errhint("Pass the new values as {\"column\": value, ...}.")));

	call.rel = uv_open(relid, expected, &call.vattnum);
	call.pkoid = RelationGetPrimaryKeyIndex(call.rel, false);
	uv_columns(&call, changes);

	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	e = uv_plan(&call, &tmp, &cached);
	values = uv_values(&call, e, expected, changes, keyval, keytype, &nulls);

	if (cached)
		e->busy++;
	PG_TRY();
	{
		/* its UPDATE proves the version by the value it assigns */
		version_uv_begin(relid);
		rc = SPI_execute_plan(e->plan, values, nulls, false, 0);
	}
	PG_FINALLY();
	{
		version_uv_end();
		if (cached)
			e->busy--;
	}
	PG_END_TRY();
	if (rc != SPI_OK_UPDATE_RETURNING)
		elog(ERROR, "SPI_execute_plan failed: %s", SPI_result_code_string(rc));

	if (SPI_processed == 0)
		ereport(ERROR,
				(errcode(ERRCODE_NO_DATA_FOUND),
				 errmsg("row %s of table \"%s\" does not exist",
						version_uv_key_shown(e, &values[2]),
						RelationGetRelationName(call.rel)),
				 errtable(call.rel)));
	result = version_from_datum(SPI_getbinval(SPI_tuptable->vals[0],
											  SPI_tuptable->tupdesc, 1, &isnull),
								e->vtype);
	SPI_finish();
	relation_close(call.rel, NoLock);

	PG_RETURN_INT64(result);
}
