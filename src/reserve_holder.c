/*-------------------------------------------------------------------------
 *
 * reserve_holder.c
 *	  A holder's count on a limited pool, charged without the executor.
 *
 * A pool with max_per_holder counts each holder's held and confirmed units
 * in a row of lockctl.holder_units (src/reserve_limits.sql), and every
 * reserve on such a pool adds its quantity to that row with INSERT ... ON
 * CONFLICT DO UPDATE.  Through the executor that statement costs about a
 * tenth of a sale (start-up of a ModifyTable with its speculative
 * insertion, the arbiter's pre-check, projections), which is what kept a
 * limited pool below 0.9 of an unlimited one (issue 18, bench/README.md).
 *
 * lockctl_internal.charge_holder_units(pool, holder, delta) does the two
 * common cases directly, as catalog code writes its tables:
 *
 *   - the holder has a row, committed and not being changed by anyone: one
 *     look into the primary key with a dirty snapshot finds it, and
 *     heap_update (waiting, as an UPDATE does, for a transaction that has
 *     just locked it) writes units + delta;
 *   - the holder has no row: heap_insert, then its primary-key entry with
 *     the check of UNIQUE_CHECK_PARTIAL, which says (without waiting or
 *     raising an error) whether a row of the key appeared meanwhile,
 *     written by a transaction in progress; if one did, the new row is
 *     deleted again (after CommandCounterIncrement: a command cannot delete
 *     what it inserted) and its entry left pointing at a dead row, as any
 *     rolled-back insert leaves one.
 *
 * It returns the holder's new count, or NULL, having changed nothing
 * visible, whenever the statement must do it: a row written or being
 * changed by a transaction in progress (this one included: the statement
 * waits, or sees its own command's rows, as the executor does); a row
 * changed between the look and the update; REPEATABLE READ and SERIALIZABLE
 * (their snapshot rules, 40001 and predicate locks are the executor's); a
 * read-only transaction or a standby (their errors are the statement's);
 * a count that would overflow; a caller without INSERT and UPDATE on the
 * table; and a table that is not as installed (HolderShape).  The callers
 * (lockctl.reserve, lockctl_internal.charge_holder) then run the INSERT ...
 * ON CONFLICT, which handles every case.
 *
 * The limit itself is checked by the caller, on the count returned, as it
 * checks the statement's RETURNING: a count past it raises an error that
 * undoes the call's statement, this write included.
 *
 * src/reserve_holder.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/genam.h"
#include "access/heapam.h"
#include "access/htup_details.h"
#include "access/stratnum.h"
#include "access/table.h"
#include "access/xact.h"
#include "catalog/index.h"
#include "catalog/namespace.h"
#include "catalog/pg_type.h"
#include "common/int.h"
#include "fmgr.h"
#include "miscadmin.h"
#include "utils/acl.h"
#include "utils/builtins.h"
#include "utils/fmgroids.h"
#include "utils/inval.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/rel.h"
#include "utils/snapmgr.h"
#include "utils/syscache.h"

#include "lockctl.h"
#include "reserve.h"

/*
 * What the direct path needs to know of lockctl.holder_units: whether it is
 * as installed, and so may be written without the executor; where its
 * columns are; its primary key.  Worked out from the relcache entry at
 * first use and again after each invalidation of it (a change of the table,
 * its columns, indexes, triggers or policies, its drop), not on every call.
 * As installed means: an ordinary table without triggers, row security,
 * CHECK constraints or generated columns; exactly the columns pool_id
 * bigint, holder text and units (bigint, or the domain
 * lockctl_internal.unit_count, whose only rule, units >= 0, the direct path
 * keeps by adding only positive amounts to counts that obey it); one index,
 * the primary key, a plain valid btree on (pool_id, holder).
 */
typedef enum HolderColumn
{
	HU_POOL,
	HU_HOLDER,
	HU_UNITS,
	HU_NCOLS
} HolderColumn;

/* units: bigint or the domain, checked by holder_units_type_ok */
static const LockctlDirectColumn holder_columns[HU_NCOLS] = {
	{"pool_id", INT8OID}, {"holder", TEXTOID}, {"units", InvalidOid}
};

/* room for a few dropped columns, so that the arrays live on the stack */
#define HOLDER_MAX_NATTS	(2 * HU_NCOLS)

typedef struct HolderShape
{
	bool		valid;			/* worked out since the last invalidation */
	Oid			relid;			/* of the table it was worked out for */
	bool		direct;			/* as installed: the direct path may write */
	int			attnum[HU_NCOLS];	/* 0-based, in the tuple descriptor */
	Oid			pkoid;			/* the primary key */
	IndexInfo  *pkinfo;
	MemoryContext cxt;			/* pkinfo */
} HolderShape;

static HolderShape holder_shape;
static Oid	holder_units_relid = InvalidOid;
static Oid	holder_units_nsp = InvalidOid;

static void
holder_shape_inval(Datum arg, Oid relid)
{
	if (!OidIsValid(relid) || relid == holder_shape.relid)
		holder_shape.valid = false;
}

/* units' type: bigint, or lockctl_internal.unit_count over it */
static bool
holder_units_type_ok(Oid typid)
{
	HeapTuple	tp;
	bool		ok;

	if (typid == INT8OID)
		return true;
	tp = SearchSysCache1(TYPEOID, ObjectIdGetDatum(typid));
	if (!HeapTupleIsValid(tp))
		return false;
	{
		Form_pg_type typ = (Form_pg_type) GETSTRUCT(tp);
		char	   *nspname = get_namespace_name(typ->typnamespace);

		ok = typ->typtype == TYPTYPE_DOMAIN && typ->typbasetype == INT8OID &&
			strcmp(NameStr(typ->typname), "unit_count") == 0 &&
			nspname != NULL && strcmp(nspname, "lockctl_internal") == 0;
	}
	ReleaseSysCache(tp);
	return ok;
}

static void
holder_shape_build(Relation rel)
{
	HolderShape *s = &holder_shape;
	TupleDesc	desc = RelationGetDescr(rel);
	List	   *indexes;

	if (s->cxt == NULL)
	{
		CacheRegisterRelcacheCallback(holder_shape_inval, (Datum) 0);
		s->cxt = AllocSetContextCreate(CacheMemoryContext,
									   "lockctl holder_units shape",
									   ALLOCSET_SMALL_SIZES);
	}
	else
		MemoryContextReset(s->cxt);

	/*
	 * Valid from here: an invalidation that arrives while the index is
	 * opened below makes the next call work it out again.
	 */
	s->valid = true;
	s->relid = RelationGetRelid(rel);
	s->direct = false;
	s->pkoid = InvalidOid;
	s->pkinfo = NULL;

	if (!lockctl_direct_plain(rel, HOLDER_MAX_NATTS))
		return;

	/* exactly the known columns, of the known types */
	if (!lockctl_direct_columns(rel, holder_columns, HU_NCOLS, s->attnum) ||
		!holder_units_type_ok(TupleDescAttr(desc, s->attnum[HU_UNITS])->atttypid))
		return;

	/* one index: the primary key on (pool_id, holder), plain */
	indexes = RelationGetIndexList(rel);
	if (list_length(indexes) == 1)
	{
		Relation	idx = index_open(linitial_oid(indexes), RowExclusiveLock);
		Form_pg_index index = idx->rd_index;
		MemoryContext old = MemoryContextSwitchTo(s->cxt);
		IndexInfo  *ii = BuildIndexInfo(idx);

		MemoryContextSwitchTo(old);
		if (index->indisprimary && index->indnatts == 2 &&
			index->indkey.values[0] == s->attnum[HU_POOL] + 1 &&
			index->indkey.values[1] == s->attnum[HU_HOLDER] + 1 &&
			lockctl_direct_index_plain(idx->rd_indextuple, false) &&
			index->indimmediate)
		{
			s->pkoid = RelationGetRelid(idx);
			s->pkinfo = ii;
			s->direct = true;
		}
		index_close(idx, NoLock);
	}
	list_free(indexes);
}


/*
 * The write itself: rel as installed (s), delta > 0.  Returns whether it
 * was done, with *units the new count.
 */
static bool
holder_charge_direct(Relation rel, const HolderShape *s, int64 pool,
					 Datum holder, int64 delta, int64 *units)
{
	TupleDesc	desc = RelationGetDescr(rel);
	Relation	pk = index_open(s->pkoid, RowExclusiveLock);
	Datum		values[HOLDER_MAX_NATTS] = {0};
	bool		nulls[HOLDER_MAX_NATTS];
	SnapshotData dirty;
	ScanKeyData skey[2];
	SysScanDesc scan;
	HeapTuple	tup;
	HeapTuple	newtup;
	bool		done = false;

	ScanKeyInit(&skey[0], s->attnum[HU_POOL] + 1, BTEqualStrategyNumber,
				F_INT8EQ, Int64GetDatum(pool));
	ScanKeyEntryInitialize(&skey[1], 0, s->attnum[HU_HOLDER] + 1,
						   BTEqualStrategyNumber, InvalidOid,
						   pk->rd_indcollation[1], F_TEXTEQ, holder);
	InitDirtySnapshot(dirty);
	scan = systable_beginscan(rel, s->pkoid, true, &dirty, 2, skey);
	tup = systable_getnext(scan);

	if (HeapTupleIsValid(tup))
	{
		ItemPointerData otid = tup->t_self;
		TM_FailureData tmfd;
		LockTupleMode lockmode;
		TU_UpdateIndexes update_indexes;
		TM_Result	result;
		int64		old;

		/*
		 * Only a committed row that no transaction in progress is
		 * changing, and that this one has not written: its own rows may be
		 * its current command's, which heap_update would not see.  The
		 * primary key allows no second such row: there is no need to look
		 * further (which would also let go of this row's buffer, which
		 * values point into).
		 */
		if (TransactionIdIsValid(dirty.xmin) || TransactionIdIsValid(dirty.xmax) ||
			TransactionIdIsCurrentTransactionId(HeapTupleHeaderGetXmin(tup->t_data)))
		{
			systable_endscan(scan);
			index_close(pk, NoLock);
			return false;
		}
		heap_deform_tuple(tup, desc, values, nulls);
		old = DatumGetInt64(values[s->attnum[HU_UNITS]]);
		if (nulls[s->attnum[HU_UNITS]] || old < 0 ||
			pg_add_s64_overflow(old, delta, units))
		{
			/* not what a count is: the statement decides (and raises) */
			systable_endscan(scan);
			index_close(pk, NoLock);
			return false;
		}
		values[s->attnum[HU_UNITS]] = Int64GetDatum(*units);
		/* formed while the scan still holds the old row's buffer */
		newtup = heap_form_tuple(desc, values, nulls);
		systable_endscan(scan);

		result = heap_update(rel, &otid, newtup, GetCurrentCommandId(true),
							 InvalidSnapshot, true, &tmfd, &lockmode,
							 &update_indexes);
		if (result == TM_Ok)
		{
			/* a new version off the page: its primary-key entry */
			if (update_indexes == TU_All)
			{
				Datum		ivalues[2];
				bool		inulls[2];

				/* from the new row: the old one's buffer is no longer ours */
				ivalues[0] = heap_getattr(newtup, s->attnum[HU_POOL] + 1, desc, &inulls[0]);
				ivalues[1] = heap_getattr(newtup, s->attnum[HU_HOLDER] + 1, desc, &inulls[1]);
				(void) index_insert(pk, ivalues, inulls, &newtup->t_self, rel,
									UNIQUE_CHECK_YES, false, s->pkinfo);
			}
			done = true;
		}
		/* else changed or deleted since the look: the statement redoes it */
		heap_freetuple(newtup);
	}
	else
	{
		Datum		ivalues[2];
		bool		inulls[2] = {false, false};

		systable_endscan(scan);
		memset(nulls, true, desc->natts * sizeof(bool));
		values[s->attnum[HU_POOL]] = Int64GetDatum(pool);
		values[s->attnum[HU_HOLDER]] = holder;
		values[s->attnum[HU_UNITS]] = Int64GetDatum(delta);
		nulls[s->attnum[HU_POOL]] = nulls[s->attnum[HU_HOLDER]] = false;
		nulls[s->attnum[HU_UNITS]] = false;
		newtup = heap_form_tuple(desc, values, nulls);
		simple_heap_insert(rel, newtup);

		ivalues[0] = Int64GetDatum(pool);
		ivalues[1] = holder;
		if (index_insert(pk, ivalues, inulls, &newtup->t_self, rel,
						 UNIQUE_CHECK_PARTIAL, false, s->pkinfo))
		{
			*units = delta;
			done = true;
		}
		else
		{
			/* another transaction's row of the holder appeared: take ours back */
			CommandCounterIncrement();
			simple_heap_delete(rel, &newtup->t_self);
		}
		heap_freetuple(newtup);
	}
	/* the locks stay to the end of the transaction, as the executor's */
	index_close(pk, NoLock);
	return done;
}

/*
 * Add delta (> 0) units to holder's count on pool: what
 * lockctl_internal.charge_holder_units does (see the top of this file).
 * True with the new count in *units; false, having changed nothing
 * visible, when the caller's INSERT ... ON CONFLICT must do it.  For
 * lockctl.reserve (reserve_sale.c) and charge_holder_units.
 */
bool
ReserveChargeHolder(int64 pool, Datum holder, int64 delta, int64 *units)
{
	Relation	rel;
	const HolderShape *s;
	bool		done = false;

	if (delta <= 0 || XactReadOnly || RecoveryInProgress() ||
		IsolationUsesXactSnapshot())
		return false;
	rel = lockctl_direct_open_named("holder_units", &holder_units_relid,
									&holder_units_nsp, RowExclusiveLock);
	if (rel == NULL)
		return false;
	if (!holder_shape.valid || holder_shape.relid != RelationGetRelid(rel))
		holder_shape_build(rel);
	s = &holder_shape;
	if (s->direct &&
		pg_class_aclmask(RelationGetRelid(rel), GetUserId(),
						 ACL_INSERT | ACL_UPDATE, ACLMASK_ALL) == (ACL_INSERT | ACL_UPDATE))
		done = holder_charge_direct(rel, s, pool, holder, delta, units);
	/* the lock stays to the end of the transaction, as the executor's */
	table_close(rel, NoLock);
	return done;
}

/*
 * lockctl_internal.charge_holder_units(pool bigint, holder text, delta
 * bigint) RETURNS bigint: add delta (> 0) to holder's count on pool and
 * return the new count, or NULL, having changed nothing visible, when the
 * caller's INSERT ... ON CONFLICT must do it (see the top of this file).
 * Strict.  Called by lockctl_internal.reserve_by_sql and
 * lockctl_internal.charge_holder only (no EXECUTE for PUBLIC), which hold
 * a slot row of the pool.
 */
PG_FUNCTION_INFO_V1(lockctl_charge_holder_units);
Datum
lockctl_charge_holder_units(PG_FUNCTION_ARGS)
{
	int64		units = 0;

	if (!ReserveChargeHolder(PG_GETARG_INT64(0), PointerGetDatum(PG_GETARG_TEXT_PP(1)),
							 PG_GETARG_INT64(2), &units))
		PG_RETURN_NULL();
	PG_RETURN_INT64(units);
}
