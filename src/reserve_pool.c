/*-------------------------------------------------------------------------
 *
 * reserve_pool.c
 *	  A pool found by its name without the executor.
 *
 * Every lockctl.reserve looks up the pool it sells from, and
 * lockctl.reserve_cart each item's: the row of lockctl.pools with its
 * resource name, through the unique index pools_resource_key.  As a
 * statement, that one index probe costs a plan's executor start-up and
 * end besides, more than the probe itself.
 *
 *   lockctl_internal.pool_of(resource, OUT id, OUT slots, OUT looked)
 *
 * reads the same row through the same index with the snapshot the
 * statement would have had: the active one, which PL/pgSQL takes afresh
 * for each expression of a volatile function, as for each statement (and
 * after advancing the command counter, so a pool created earlier in the
 * transaction is seen).  looked = true with no id: there is no such pool.
 * looked = false: the caller runs its SELECT, which decides every case
 * this function leaves to it: REPEATABLE READ and SERIALIZABLE (their
 * snapshot and predicate-lock rules are the executor's), no SELECT
 * privilege on the table, and a table not as installed (row security,
 * columns id, resource and slots missing or of other types, no valid
 * unique btree index on resource alone with text's operators and the
 * column's collation, without expressions or predicate).
 *
 * The table is locked ACCESS SHARE, as the SELECT locks it, to the end of
 * the transaction.
 *
 * src/reserve_pool.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/genam.h"
#include "access/htup_details.h"
#include "access/stratnum.h"
#include "access/table.h"
#include "access/xact.h"
#include "catalog/pg_index.h"
#include "catalog/pg_opfamily.h"
#include "catalog/pg_type.h"
#include "fmgr.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "utils/acl.h"
#include "utils/fmgroids.h"
#include "utils/inval.h"
#include "utils/rel.h"
#include "utils/snapmgr.h"

#include "compat.h"
#include "lockctl.h"
#include "reserve.h"

/*
 * What pool_of needs to know of lockctl.pools, worked out at first use and
 * again after a relcache invalidation of the table or of the index (any
 * change of either, their drop, an index made valid or invalid).
 */
typedef struct PoolShape
{
	bool		valid;			/* worked out since the last invalidation */
	Oid			relid;			/* of the table it was worked out for */
	bool		direct;			/* as installed: pool_of may read it */
	AttrNumber	att_id;			/* 1-based, as systable_beginscan keys */
	AttrNumber	att_resource;
	AttrNumber	att_slots;
	Oid			indexoid;		/* the unique index on resource */
	Oid			collation;		/* resource's, and the index's */
} PoolShape;

static PoolShape pool_shape;
static Oid	pools_relid = InvalidOid;
static Oid	pools_nsp = InvalidOid;

static void
pool_shape_inval(Datum arg, Oid relid)
{
	if (!OidIsValid(relid) || relid == pool_shape.relid ||
		relid == pool_shape.indexoid)
		pool_shape.valid = false;
}

/* Whether index (of rel) is what pools_resource_key is as installed. */
static bool
pool_index_ok(Relation idx, const PoolShape *s)
{
	Form_pg_index index = idx->rd_index;

	return index->indisunique &&
		lockctl_direct_index_plain(idx->rd_indextuple, false) &&
		IndexRelationGetNumberOfKeyAttributes(idx) == 1 &&
		index->indkey.values[0] == s->att_resource &&
		idx->rd_opfamily[0] == TEXT_BTREE_FAM_OID &&
		idx->rd_indcollation[0] == s->collation;
}

static void
pool_shape_build(Relation rel)
{
	static bool registered = false;
	PoolShape  *s = &pool_shape;
	TupleDesc	desc = RelationGetDescr(rel);
	List	   *indexes;
	ListCell   *lc;
	int			i;

	if (!registered)
	{
		CacheRegisterRelcacheCallback(pool_shape_inval, (Datum) 0);
		registered = true;
	}

	/*
	 * Valid from here: an invalidation that arrives while the indexes are
	 * opened below makes the next call work it out again.
	 */
	s->valid = true;
	s->relid = RelationGetRelid(rel);
	s->direct = false;
	s->att_id = s->att_resource = s->att_slots = InvalidAttrNumber;
	s->indexoid = InvalidOid;
	s->collation = InvalidOid;

	if (rel->rd_rel->relkind != RELKIND_RELATION || rel->rd_rel->relrowsecurity)
		return;
	for (i = 0; i < desc->natts; i++)
	{
		Form_pg_attribute att = TupleDescAttr(desc, i);

		if (att->attisdropped)
			continue;
		if (strcmp(NameStr(att->attname), "id") == 0 && att->atttypid == INT8OID)
			s->att_id = att->attnum;
		else if (strcmp(NameStr(att->attname), "resource") == 0 &&
				 att->atttypid == TEXTOID)
		{
			s->att_resource = att->attnum;
			s->collation = att->attcollation;
		}
		else if (strcmp(NameStr(att->attname), "slots") == 0 &&
				 att->atttypid == INT4OID)
			s->att_slots = att->attnum;
	}
	if (s->att_id == InvalidAttrNumber || s->att_resource == InvalidAttrNumber ||
		s->att_slots == InvalidAttrNumber)
		return;

	indexes = RelationGetIndexList(rel);
	foreach(lc, indexes)
	{
		Relation	idx = index_open(lfirst_oid(lc), AccessShareLock);
		bool		ok = pool_index_ok(idx, s);

		index_close(idx, AccessShareLock);
		if (ok)
		{
			s->indexoid = lfirst_oid(lc);
			break;
		}
	}
	list_free(indexes);
	s->direct = OidIsValid(s->indexoid);
}

/*
 * The pool named resource, as lockctl_internal.pool_of finds it: true
 * when it looked, with *found whether there is such a pool and then its
 * id and slot count; false when the caller's SELECT must decide.  For
 * lockctl.reserve (reserve_sale.c), cart_plain_items (reserve_cart.c) and
 * pool_of.
 */
bool
ReservePoolOf(Datum resource, int64 *id, int32 *slots, bool *found)
{
	bool		looked = false;
	Relation	rel;

	*found = false;
	if (!IsolationUsesXactSnapshot() && ActiveSnapshotSet() &&
		(rel = lockctl_direct_open_named("pools", &pools_relid, &pools_nsp,
										 AccessShareLock)) != NULL)
	{
		if (!pool_shape.valid || pool_shape.relid != RelationGetRelid(rel))
			pool_shape_build(rel);
		if (pool_shape.direct &&
			pg_class_aclcheck(RelationGetRelid(rel), GetUserId(), ACL_SELECT) == ACLCHECK_OK)
		{
			TupleDesc	desc = RelationGetDescr(rel);
			ScanKeyData key;
			SysScanDesc scan;
			HeapTuple	tup;

			ScanKeyInit(&key, pool_shape.att_resource, BTEqualStrategyNumber,
						F_TEXTEQ, resource);
			key.sk_collation = pool_shape.collation;
			scan = systable_beginscan(rel, pool_shape.indexoid, true,
									  GetActiveSnapshot(), 1, &key);
			looked = true;
			tup = systable_getnext(scan);
			if (HeapTupleIsValid(tup))
			{
				bool		idnull;
				bool		slotsnull;
				Datum		d_id = heap_getattr(tup, pool_shape.att_id, desc, &idnull);
				Datum		d_slots = heap_getattr(tup, pool_shape.att_slots, desc, &slotsnull);

				/* NOT NULL as installed; else the statement decides */
				if (idnull || slotsnull)
					looked = false;
				else
				{
					*id = DatumGetInt64(d_id);
					*slots = DatumGetInt32(d_slots);
					*found = true;
				}
			}
			systable_endscan(scan);
		}
		/* the lock stays to the end of the transaction, as the executor's */
		table_close(rel, NoLock);
	}
	return looked;
}

/* its result's descriptor, kept (direct.c) */
static LockctlResultDesc result_desc;

/*
 * lockctl_internal.pool_of(resource text, OUT id bigint, OUT slots integer,
 * OUT looked boolean): see the top of this file.  Strict.  Called for
 * each item of lockctl.reserve_cart (lockctl_internal.cart_items) and by
 * lockctl_internal.reserve_by_sql only (no EXECUTE for PUBLIC).
 */
PG_FUNCTION_INFO_V1(lockctl_pool_of);
Datum
lockctl_pool_of(PG_FUNCTION_ARGS)
{
	TupleDesc	tupdesc;
	Datum		values[3] = {0};
	bool		nulls[3] = {true, true, false};
	int64		id = 0;
	int32		slots = 0;
	bool		found;
	bool		looked;

	tupdesc = lockctl_result_desc(fcinfo, &result_desc);
	looked = ReservePoolOf(PG_GETARG_DATUM(0), &id, &slots, &found);
	if (found)
	{
		values[0] = Int64GetDatum(id);
		nulls[0] = false;
		values[1] = Int32GetDatum(slots);
		nulls[1] = false;
	}
	values[2] = BoolGetDatum(looked);
	PG_RETURN_DATUM(HeapTupleGetDatum(heap_form_tuple(tupdesc, values, nulls)));
}
