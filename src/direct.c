/*-------------------------------------------------------------------------
 *
 * direct.c
 *	  What the paths that write lockctl's own tables without the executor
 *	  share: opening such a table by name, and telling whether it is still
 *	  a plain table that they may write as catalog code writes its own;
 *	  whether a function is one of this library's; the kept descriptor of
 *	  a function's composite result.
 *
 * Users: request.c (lockctl.request_keys), reserve_holder.c
 * (lockctl.holder_units), reserve_slot.c (lockctl.pool_slots) and
 * reserve_pool.c (lockctl.pools, read only).  Each works out the rest of
 * its table's shape (its columns and indexes) itself, and falls back to
 * SQL when the table is not as installed.
 *
 * src/direct.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/htup_details.h"
#include "access/table.h"
#include "access/xact.h"
#include "catalog/namespace.h"
#include "catalog/pg_am_d.h"
#include "catalog/pg_class.h"
#include "catalog/pg_index.h"
#include "catalog/pg_language.h"
#include "catalog/pg_proc.h"
#include "funcapi.h"
#include "parser/parse_func.h"
#include "pgstat.h"
#include "storage/lmgr.h"
#include "utils/builtins.h"
#include "utils/inval.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/rel.h"
#include "utils/relcache.h"
#include "utils/syscache.h"

#include "lockctl.h"

/*
 * try_table_open(relid, lockmode) without its catalog probe: once
 * the lock is granted, invalidations sent before it have been processed, so
 * the relcache entry is current, and RelationIdGetRelation returns NULL for
 * a relation that no longer exists (the probe only saves that relcache
 * load, which these paths never need).  The caller checks what the
 * relation is (its name and schema, its shape).
 */
Relation
lockctl_direct_open(Oid relid, LOCKMODE lockmode)
{
	Relation	rel;

	LockRelationOid(relid, lockmode);
	rel = RelationIdGetRelation(relid);
	if (!RelationIsValid(rel))
	{
		UnlockRelationOid(relid, lockmode);
		return NULL;
	}
	if (RelationUsesLocalBuffers(rel))
		MyXactFlags |= XACT_FLAGS_ACCESSEDTEMPNAMESPACE;
	pgstat_init_relation(rel);
	return rel;
}

/*
 * lockctl.<relname>, opened with lockmode (RowExclusiveLock to write it,
 * AccessShareLock to read it), or NULL if there is none.
 * Its OID and its schema's are kept by the caller in *relid and *nspid
 * between calls (InvalidOid at first); the name and schema are checked
 * again once the lock is ours, since the table may have been dropped and
 * made again, or another put in its place, and then looked up afresh.
 */
Relation
lockctl_direct_open_named(const char *relname, Oid *relid, Oid *nspid,
						  LOCKMODE lockmode)
{
	int			attempt;

	for (attempt = 0; attempt < 2; attempt++)
	{
		Relation	rel;

		if (!OidIsValid(*relid) || attempt > 0)
		{
			*nspid = get_namespace_oid("lockctl", true);
			*relid = OidIsValid(*nspid) ?
				get_relname_relid(relname, *nspid) : InvalidOid;
			if (!OidIsValid(*relid))
				return NULL;
		}
		rel = lockctl_direct_open(*relid, lockmode);
		if (rel != NULL)
		{
			if (rel->rd_rel->relnamespace == *nspid &&
				strcmp(RelationGetRelationName(rel), relname) == 0)
				return rel;
			table_close(rel, lockmode);
		}
	}
	return NULL;
}

/*
 * Whether rel is a table the direct paths may write without the executor:
 * an ordinary table of at most maxnatts columns (dropped ones included),
 * without triggers, row security, CHECK constraints or stored generated
 * columns, which only the executor applies, nor rules, which only the
 * rewriter applies (a DBA's DO ALSO rule must see every write).  Its
 * columns and indexes are the caller's to check.
 */
bool
lockctl_direct_plain(Relation rel, int maxnatts)
{
	TupleDesc	desc = RelationGetDescr(rel);

	return desc->natts <= maxnatts &&
		rel->rd_rel->relkind == RELKIND_RELATION && rel->trigdesc == NULL &&
		rel->rd_rules == NULL && !rel->rd_rel->relrowsecurity &&
		(desc->constr == NULL ||
		 (desc->constr->num_check == 0 && !desc->constr->has_generated_stored));
}

/*
 * Whether rel has exactly the ncols columns cols names (no other column but
 * dropped ones), each of its type where one is given.  If so, attnum[c] is
 * the position (from 0, in the tuple descriptor) of cols[c].
 */
bool
lockctl_direct_columns(Relation rel, const LockctlDirectColumn *cols,
					   int ncols, int *attnum)
{
	TupleDesc	desc = RelationGetDescr(rel);
	int			found = 0;
	int			i;

	for (i = 0; i < desc->natts; i++)
	{
		Form_pg_attribute att = TupleDescAttr(desc, i);
		int			c;

		if (att->attisdropped)
			continue;
		for (c = 0; c < ncols; c++)
			if (strcmp(NameStr(att->attname), cols[c].name) == 0)
				break;
		if (c == ncols ||
			(OidIsValid(cols[c].type) && att->atttypid != cols[c].type))
			return false;
		attnum[c] = i;
		found++;
	}
	return found == ncols;
}

/*
 * Whether the index whose pg_index row is indextup may be read or written
 * by the direct paths as PostgreSQL's executor would: a btree that is
 * valid, ready and live, with no expression among its columns and, unless
 * partial_ok, no predicate.  A caller that accepts a predicate must prove
 * that the rows it reads satisfy it (reserve_caps.c).  Why each matters:
 * an index being built concurrently (not ready) must still get entries
 * from the executor's inserts, which the direct paths do not make; an
 * expression or a predicate would need evaluating per row.
 */
bool
lockctl_direct_index_plain(HeapTuple indextup, bool partial_ok)
{
	Form_pg_index index = (Form_pg_index) GETSTRUCT(indextup);
	HeapTuple	tup;
	Oid			am;

	if (!index->indisvalid || !index->indisready || !index->indislive ||
		!heap_attisnull(indextup, Anum_pg_index_indexprs, NULL) ||
		(!partial_ok && !heap_attisnull(indextup, Anum_pg_index_indpred, NULL)))
		return false;
	tup = SearchSysCache1(RELOID, ObjectIdGetDatum(index->indexrelid));
	if (!HeapTupleIsValid(tup))
		elog(ERROR, "cache lookup failed for relation %u", index->indexrelid);
	am = ((Form_pg_class) GETSTRUCT(tup))->relam;
	ReleaseSysCache(tup);
	return am == BTREE_AM_OID;
}

/*
 * Whether function funcid is the C function of this library at address
 * fn: what its pg_proc row (probin, prosrc) resolves to, as the function
 * manager would load it.  A function of the same name in another library,
 * or one replaced by SQL, is not.
 */
bool
lockctl_direct_is_ours(Oid funcid, void *fn)
{
	HeapTuple	tup;
	Form_pg_proc proc;
	bool		ours = false;

	tup = SearchSysCache1(PROCOID, ObjectIdGetDatum(funcid));
	if (!HeapTupleIsValid(tup))
		return false;
	proc = (Form_pg_proc) GETSTRUCT(tup);
	if (proc->prolang == ClanguageId && !proc->proretset)
	{
		bool		isnull;
		Datum		bin = SysCacheGetAttr(PROCOID, tup, Anum_pg_proc_probin, &isnull);
		Datum		src;

		if (!isnull)
		{
			src = SysCacheGetAttr(PROCOID, tup, Anum_pg_proc_prosrc, &isnull);
			if (!isnull &&
				load_external_function(TextDatumGetCString(bin),
									   TextDatumGetCString(src), false, NULL) == fn)
				ours = true;
		}
	}
	ReleaseSysCache(tup);
	return ours;
}

/*
 * How many invalidations of pg_proc this backend has seen (from 1): what
 * is kept of a function (its OID, its result's descriptor) is good while
 * the count it was taken at is current.  A CREATE OR REPLACE, a DROP or an
 * ALTER EXTENSION UPDATE may change either.
 */
static uint64 proc_gen = 1;

static void
proc_gen_inval(Datum arg, int cacheid, uint32 hashvalue)
{
	proc_gen++;
}

/*
 * The current count (its callback registered at first use): what a caller
 * keeps of a function is good while the count it read first is current.
 */
uint64
lockctl_proc_gen(void)
{
	static bool registered = false;

	if (!registered)
	{
		CacheRegisterSyscacheCallback(PROCOID, proc_gen_inval, (Datum) 0);
		registered = true;
	}
	return proc_gen;
}

/*
 * The OID of the function f names (schema, name, argument types), found or
 * not, kept in f until pg_proc changes: the executor hooks and the sale ask
 * in every call, and LookupFuncName costs a catalog search.  missing_ok
 * false: a function not found is looked for again, and LookupFuncName
 * raises its error.
 */
Oid
lockctl_func_oid(LockctlFuncRef *f, bool missing_ok)
{
	/* read first: an invalidation during the look-up makes the next call look again */
	uint64		gen = lockctl_proc_gen();

	if (f->gen == gen && (OidIsValid(f->oid) || missing_ok))
		return f->oid;
	Assert(f->nargs <= LOCKCTL_FUNC_MAX_ARGS);
	f->oid = LookupFuncName(list_make2(makeString(pstrdup(f->schema)),
									   makeString(pstrdup(f->name))),
							f->nargs, f->argtypes, missing_ok);
	f->gen = gen;
	return f->oid;
}

/*
 * The tuple descriptor, blessed, of the composite result (OUT arguments)
 * of fcinfo's function, kept in *cache between calls: get_call_result_type
 * builds it from the function's pg_proc row in every call (about 7,000
 * instructions, as much as a direct path's index probe).  Built again for
 * another function and after any invalidation of pg_proc, since a CREATE
 * OR REPLACE or an ALTER EXTENSION UPDATE may change the OUT arguments.
 */
TupleDesc
lockctl_result_desc(FunctionCallInfo fcinfo, LockctlResultDesc *cache)
{
	uint64		gen;
	TupleDesc	desc;
	MemoryContext oldcxt;

	if (cache->desc != NULL && cache->gen == lockctl_proc_gen() &&
		cache->fn_oid == fcinfo->flinfo->fn_oid)
		return cache->desc;

	/*
	 * Read first: an invalidation that arrives during the look-up makes
	 * the next call build it again.
	 */
	gen = proc_gen;
	if (get_call_result_type(fcinfo, NULL, &desc) != TYPEFUNC_COMPOSITE)
		elog(ERROR, "return type must be a row type");
	if (cache->desc != NULL)
		FreeTupleDesc(cache->desc);
	cache->desc = NULL;
	oldcxt = MemoryContextSwitchTo(TopMemoryContext);
	desc = CreateTupleDescCopy(desc);
	MemoryContextSwitchTo(oldcxt);
	cache->desc = BlessTupleDesc(desc);
	cache->fn_oid = fcinfo->flinfo->fn_oid;
	cache->gen = gen;
	return cache->desc;
}
