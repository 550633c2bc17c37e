/*-------------------------------------------------------------------------
 *
 * reserve_slot.c
 *	  A pool's slot row taken (reserve) and confirmed without the executor.
 *
 * Every sale writes its pool's lockctl.pool_slots row twice: reserve adds
 * the quantity to held, confirm moves it to confirmed.  Through SQL, the
 * take is an UPDATE over a sub-select with FOR UPDATE SKIP LOCKED, in a
 * subtransaction (so that a slot found short stays unlocked), and the
 * confirm a second UPDATE: their executor start-up, the row lock of SKIP
 * LOCKED and the subtransaction cost about a fifth of a hot-pool sale in
 * CPU (bench/README.md).  These two functions do the same writes as
 * catalog code writes its tables:
 *
 *   lockctl_internal.take_slot(pool, start, slots, quantity): look at the
 *	   pool's slot rows in the primary key from slot start up to slots - 1,
 *	   then from 0 up to start, with a dirty snapshot (the newest committed
 *	   version of each, and whether a transaction in progress is changing
 *	   it), and update the first with quantity units free by heap_update
 *	   without waiting: a row another transaction has locked or is changing
 *	   is passed over, as SKIP LOCKED passes it, and no lock is taken on a
 *	   row that is not updated (no subtransaction, no MultiXact).  Returns
 *	   the slot and the pool's max_per_holder read from it; or, with no
 *	   slot, looked = true when the search was done and found nothing free
 *	   and unlocked (the caller waits for one: the middle path), false
 *	   when the statement must make it (see below).
 *   lockctl_internal.confirm_slot(pool, slot, quantity): move quantity
 *	   units of the slot from held to confirmed, with heap_update waiting
 *	   as an UPDATE waits for a transaction that only locked the row.
 *	   Returns false, having changed nothing, when the statement must do it.
 *
 * The statement (lockctl.reserve's fast path, confirm's UPDATE) runs
 * instead, which handles every case, whenever: the row was written by this
 * transaction's current command, or is being written by another one
 * (confirm; the statement waits for it and follows its update, as READ
 * COMMITTED does); the isolation level is REPEATABLE READ or SERIALIZABLE
 * (their snapshot rules, 40001 and predicate locks are the executor's); the
 * transaction is read-only or the server a standby (their errors are the
 * statement's); a count would overflow or leave the row outside its CHECK
 * (the statement raises the error); the caller may not SELECT and UPDATE
 * the table; or the table is not as installed (SlotShape).
 *
 * What the executor would do besides, done here too: the CHECK constraint
 * pool_slots_not_oversold, which a table as installed has as its only one
 * and which calls lockctl_is_slot_row, is kept by testing the same
 * invariant in C (ReserveSlotRowOk) before the write; the replica identity
 * check of a published table (CheckCmdReplicaIdentity); and, when the new
 * version did not fit on the page (the table's fillfactor of 50 makes that
 * rare), the entries of every index (ExecInsertIndexTuples).
 *
 * src/reserve_slot.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/genam.h"
#include "access/heapam.h"
#include "access/htup_details.h"
#include "access/stratnum.h"
#include "access/table.h"
#include "access/tableam.h"
#include "access/xact.h"
#include "catalog/pg_index.h"
#include "catalog/pg_language.h"
#include "catalog/pg_proc.h"
#include "catalog/pg_type.h"
#include "common/int.h"
#include "executor/executor.h"
#include "fmgr.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "nodes/primnodes.h"
#include "utils/acl.h"
#include "utils/builtins.h"
#include "utils/fmgroids.h"
#include "utils/inval.h"
#include "utils/lsyscache.h"
#include "utils/rel.h"
#include "utils/snapmgr.h"
#include "utils/syscache.h"

#include "compat.h"
#include "lockctl.h"
#include "reserve.h"

/* The columns of lockctl.pool_slots (src/reserve.sql). */
typedef enum SlotColumn
{
	SC_POOL,
	SC_SLOT,
	SC_CAPACITY,
	SC_HELD,
	SC_CONFIRMED,
	SC_TAKEN,
	SC_HCONFIRMED,
	SC_HCANCELLED,
	SC_HEXPIRED,
	SC_MAXPH,
	SC_WAITLIST,
	SC_KEPT,
	SC_NCOLS
} SlotColumn;

static const LockctlDirectColumn slot_columns[SC_NCOLS] = {
	{"pool_id", INT8OID}, {"slot", INT4OID}, {"capacity", INT8OID},
	{"held", INT8OID}, {"confirmed", INT8OID}, {"holds_taken", INT8OID},
	{"holds_confirmed", INT8OID}, {"holds_cancelled", INT8OID},
	{"holds_expired", INT8OID}, {"max_per_holder", INT8OID},
	{"waitlist", BOOLOID}, {"kept", INT8OID}
};

/* room for a few dropped columns, so that the arrays live on the stack */
#define SLOT_MAX_NATTS	(2 * SC_NCOLS)

/*
 * What the direct paths need to know of lockctl.pool_slots, worked out at
 * first use and again after an invalidation of the table (any change of
 * it, its columns, constraints, indexes, triggers or policies; its drop)
 * or of a function (a CREATE OR REPLACE of the CHECK's): whether it is as
 * installed, where its columns are, its primary key.  As installed means:
 * an ordinary table, not a partition, without triggers, row security or
 * generated columns; exactly the columns above, of their types; exactly
 * one CHECK constraint, a call of a C function that is lockctl's own
 * lockctl_is_slot_row over (held, confirmed, capacity, kept); a primary
 * key that is a plain btree on (pool_id, slot); every index immediate (a
 * deferred one is checked again at commit by a trigger the executor
 * queues, and there is none to queue here).
 */
typedef struct SlotShape
{
	bool		valid;			/* worked out since the last invalidation */
	Oid			relid;			/* of the table it was worked out for */
	bool		direct;			/* as installed: the direct paths may write */
	int			attnum[SC_NCOLS];	/* 0-based, in the tuple descriptor */
	Oid			pkoid;			/* the primary key */
} SlotShape;

static SlotShape slot_shape;
static Oid	pool_slots_relid = InvalidOid;
static Oid	pool_slots_nsp = InvalidOid;

static void
slot_shape_inval_rel(Datum arg, Oid relid)
{
	if (!OidIsValid(relid) || relid == slot_shape.relid)
		slot_shape.valid = false;
}

static void
slot_shape_inval_proc(Datum arg, int cacheid, uint32 hashvalue)
{
	slot_shape.valid = false;
}

/*
 * Whether expr (a CHECK's) is lockctl_is_slot_row(held, confirmed,
 * capacity, kept) of this library, over the columns at attnum.
 */
static bool
slot_check_is_ours(Node *expr, const int *attnum)
{
	static const SlotColumn args[4] = {SC_HELD, SC_CONFIRMED, SC_CAPACITY, SC_KEPT};
	FuncExpr   *fe;
	int			i;

	if (expr == NULL || !IsA(expr, FuncExpr))
		return false;
	fe = (FuncExpr *) expr;
	if (list_length(fe->args) != 4 || fe->funcretset)
		return false;
	for (i = 0; i < 4; i++)
	{
		Var		   *v = (Var *) list_nth(fe->args, i);

		if (!IsA(v, Var) || v->varlevelsup != 0 ||
			v->varattno != attnum[args[i]] + 1)
			return false;
	}
	return lockctl_direct_is_ours(fe->funcid, (void *) lockctl_is_slot_row);
}

static void
slot_shape_build(Relation rel)
{
	static bool registered = false;
	SlotShape  *s = &slot_shape;
	TupleDesc	desc = RelationGetDescr(rel);
	List	   *indexes;
	ListCell   *lc;
	bool		ok = true;

	if (!registered)
	{
		CacheRegisterRelcacheCallback(slot_shape_inval_rel, (Datum) 0);
		CacheRegisterSyscacheCallback(PROCOID, slot_shape_inval_proc, (Datum) 0);
		registered = true;
	}

	/*
	 * Valid from here: an invalidation that arrives while the catalogs are
	 * read below makes the next call work it out again.
	 */
	s->valid = true;
	s->relid = RelationGetRelid(rel);
	s->direct = false;
	s->pkoid = InvalidOid;

	if (desc->natts > SLOT_MAX_NATTS ||
		rel->rd_rel->relkind != RELKIND_RELATION || rel->rd_rel->relispartition ||
		rel->trigdesc != NULL || rel->rd_rules != NULL ||
		rel->rd_rel->relrowsecurity ||
		desc->constr == NULL || desc->constr->has_generated_stored ||
		desc->constr->num_check != 1)
		return;
	if (!lockctl_direct_columns(rel, slot_columns, SC_NCOLS, s->attnum))
		return;
	if (!slot_check_is_ours(stringToNode(desc->constr->check[0].ccbin), s->attnum))
		return;

	indexes = RelationGetIndexList(rel);
	foreach(lc, indexes)
	{
		Oid			indexoid = lfirst_oid(lc);
		HeapTuple	tup = SearchSysCache1(INDEXRELID, ObjectIdGetDatum(indexoid));
		Form_pg_index index;

		if (!HeapTupleIsValid(tup))
			elog(ERROR, "cache lookup failed for index %u", indexoid);
		index = (Form_pg_index) GETSTRUCT(tup);
		if (!index->indimmediate)
			ok = false;
		else if (index->indisprimary)
		{
			if (index->indnatts == 2 &&
				index->indkey.values[0] == s->attnum[SC_POOL] + 1 &&
				index->indkey.values[1] == s->attnum[SC_SLOT] + 1 &&
				lockctl_direct_index_plain(tup, false))
				s->pkoid = indexoid;
			else
				ok = false;
		}
		ReleaseSysCache(tup);
	}
	list_free(indexes);
	s->direct = ok && OidIsValid(s->pkoid);
}

/*
 * lockctl.pool_slots, opened with RowExclusiveLock and as installed, when
 * the direct paths may write it now: NULL when the statement must.
 */
static Relation
slot_open(void)
{
	Relation	rel;

	if (XactReadOnly || RecoveryInProgress() || IsolationUsesXactSnapshot())
		return NULL;
	rel = lockctl_direct_open_named("pool_slots", &pool_slots_relid, &pool_slots_nsp,
									 RowExclusiveLock);
	if (rel == NULL)
		return NULL;
	if (!slot_shape.valid || slot_shape.relid != RelationGetRelid(rel))
		slot_shape_build(rel);
	if (!slot_shape.direct ||
		pg_class_aclmask(RelationGetRelid(rel), GetUserId(), ACL_SELECT | ACL_UPDATE,
						 ACLMASK_ALL) != (ACL_SELECT | ACL_UPDATE))
	{
		/* the lock stays to the end of the transaction, as the executor's */
		table_close(rel, NoLock);
		return NULL;
	}
	/* a published table without a replica identity: the UPDATE's error */
	CheckCmdReplicaIdentity(rel, CMD_UPDATE);
	return rel;
}

/*
 * Whether the dirty snapshot's last tuple tup may be updated here: no
 * other transaction in progress is writing it (dirty's xmin and xmax say
 * so), and if this transaction wrote it, an earlier command did
 * (heap_update refuses a row of the current command).
 */
static bool
slot_row_ours_to_write(HeapTuple tup, const SnapshotData *dirty, CommandId cid)
{
	HeapTupleHeader h = tup->t_data;

	if (TransactionIdIsValid(dirty->xmin) || TransactionIdIsValid(dirty->xmax))
		return false;
	return !TransactionIdIsCurrentTransactionId(HeapTupleHeaderGetXmin(h)) ||
		HeapTupleHeaderGetCmin(h) < cid;
}

/*
 * After heap_update put newtup off its old version's page: the entries of
 * every index of rel, as ExecUpdate makes them.
 */
static void
slot_index_new_version(Relation rel, HeapTuple newtup, TU_UpdateIndexes update_indexes)
{
	EState	   *estate = CreateExecutorState();
	MemoryContext oldcxt = MemoryContextSwitchTo(estate->es_query_cxt);
	ResultRelInfo *rri = makeNode(ResultRelInfo);
	TupleTableSlot *slot;

	if (ActiveSnapshotSet())
		estate->es_snapshot = GetActiveSnapshot();
	/* no range table entry: the row is the function's, not a statement's */
	InitResultRelInfo(rri, rel, 0, NULL, 0);
	ExecOpenIndices(rri, false);
	slot = ExecInitExtraTupleSlot(estate, RelationGetDescr(rel), &TTSOpsHeapTuple);
	ExecStoreHeapTuple(newtup, slot, false);
	(void) ExecInsertIndexTuples(rri, slot, estate, false, false, NULL, NIL,
								 update_indexes == TU_Summarizing);
	ExecCloseIndices(rri);
	ExecResetTupleTable(estate->es_tupleTable, false);
	MemoryContextSwitchTo(oldcxt);
	FreeExecutorState(estate);
}

/*
 * Update the row at otid to newtup; whether it was done.  wait: as an
 * UPDATE, for a transaction that holds the row (else return false).
 */
static bool
slot_update(Relation rel, ItemPointer otid, HeapTuple newtup, CommandId cid, bool wait)
{
	TM_FailureData tmfd;
	LockTupleMode lockmode;
	TU_UpdateIndexes update_indexes = TU_None;
	TM_Result	result;

	result = heap_update(rel, otid, newtup, cid, InvalidSnapshot, wait,
						 &tmfd, &lockmode, &update_indexes);
	if (result != TM_Ok)
		return false;			/* changed, deleted or locked meanwhile */
	if (update_indexes != TU_None)
		slot_index_new_version(rel, newtup, update_indexes);
	return true;
}

/*
 * Look through the slot rows of pool from slot `from` (included) to `to`
 * (excluded) for the first with quantity units free and take them.
 * Returns 1 when taken (*slot, *maxph, *maxph_null set), 0 when none could
 * be, -1 when a row is not what a slot row is and the statement must
 * decide.
 */
static int
slot_take_range(Relation rel, const SlotShape *s, int64 pool, int32 from, int32 to,
				int64 quantity, CommandId cid,
				int32 *slot, int64 *maxph, bool *maxph_null)
{
	TupleDesc	desc = RelationGetDescr(rel);
	SnapshotData dirty;
	ScanKeyData skey[3];
	SysScanDesc scan;
	HeapTuple	tup;
	int			found = 0;

	if (from >= to)
		return 0;
	ScanKeyInit(&skey[0], s->attnum[SC_POOL] + 1, BTEqualStrategyNumber,
				F_INT8EQ, Int64GetDatum(pool));
	ScanKeyInit(&skey[1], s->attnum[SC_SLOT] + 1, BTGreaterEqualStrategyNumber,
				F_INT4GE, Int32GetDatum(from));
	ScanKeyInit(&skey[2], s->attnum[SC_SLOT] + 1, BTLessStrategyNumber,
				F_INT4LT, Int32GetDatum(to));
	InitDirtySnapshot(dirty);
	scan = systable_beginscan(rel, s->pkoid, true, &dirty, 3, skey);
	while (found == 0 && HeapTupleIsValid(tup = systable_getnext(scan)))
	{
		Datum		values[SLOT_MAX_NATTS];
		bool		nulls[SLOT_MAX_NATTS];
		int64		capacity;
		int64		held;
		int64		confirmed;
		int64		taken;
		int64		free;
		ItemPointerData otid;
		HeapTuple	newtup;

		if (!slot_row_ours_to_write(tup, &dirty, cid))
			continue;			/* busy: passed over, as by SKIP LOCKED */
		heap_deform_tuple(tup, desc, values, nulls);
		if (nulls[s->attnum[SC_CAPACITY]] || nulls[s->attnum[SC_HELD]] ||
			nulls[s->attnum[SC_CONFIRMED]] || nulls[s->attnum[SC_TAKEN]] ||
			nulls[s->attnum[SC_KEPT]])
		{
			found = -1;
			break;
		}
		capacity = DatumGetInt64(values[s->attnum[SC_CAPACITY]]);
		held = DatumGetInt64(values[s->attnum[SC_HELD]]);
		confirmed = DatumGetInt64(values[s->attnum[SC_CONFIRMED]]);
		taken = DatumGetInt64(values[s->attnum[SC_TAKEN]]);
		if (!ReserveSlotRowOk(held, confirmed, capacity,
							  DatumGetInt64(values[s->attnum[SC_KEPT]])))
		{
			found = -1;
			break;
		}
		/* no overflow: 0 <= held + confirmed <= capacity */
		free = capacity - held - confirmed;
		if (free < quantity)
			continue;
		if (pg_add_s64_overflow(taken, 1, &taken))
		{
			found = -1;
			break;
		}
		/* held + quantity <= capacity - confirmed: the CHECK holds */
		values[s->attnum[SC_HELD]] = Int64GetDatum(held + quantity);
		values[s->attnum[SC_TAKEN]] = Int64GetDatum(taken);
		/* formed while the scan still holds the old row's buffer */
		newtup = heap_form_tuple(desc, values, nulls);
		otid = tup->t_self;
		if (slot_update(rel, &otid, newtup, cid, false))
		{
			*slot = DatumGetInt32(values[s->attnum[SC_SLOT]]);
			*maxph_null = nulls[s->attnum[SC_MAXPH]];
			*maxph = *maxph_null ? 0 : DatumGetInt64(values[s->attnum[SC_MAXPH]]);
			found = 1;
		}
		heap_freetuple(newtup);
	}
	systable_endscan(scan);
	return found;
}

/*
 * Take quantity units of pool from the first slot with enough free, from
 * slot start up to slots - 1, then from 0 up to start: what
 * lockctl_internal.take_slot does (see the top of this file).  Returns 1
 * with the slot and the pool's max_per_holder (*maxph_null when it has
 * none), 0 when the search was done and found no slot free and unlocked,
 * -1 when the statement must make it.  For lockctl.reserve
 * (reserve_sale.c) and take_slot.
 */
int
ReserveTakeSlot(int64 pool, int32 start, int32 slots, int64 quantity,
				int32 *slot, int64 *maxph, bool *maxph_null)
{
	Relation	rel;
	CommandId	cid;
	int			r;

	if (quantity <= 0 || slots <= 0 || start < 0 || start >= slots ||
		(rel = slot_open()) == NULL)
		return -1;
	cid = GetCurrentCommandId(true);
	r = slot_take_range(rel, &slot_shape, pool, start, slots, quantity, cid,
						slot, maxph, maxph_null);
	if (r == 0)
		r = slot_take_range(rel, &slot_shape, pool, 0, start, quantity, cid,
							slot, maxph, maxph_null);
	/* the lock stays to the end of the transaction, as the executor's */
	table_close(rel, NoLock);
	return r;
}

/* its result's descriptor, kept (direct.c) */
static LockctlResultDesc result_desc;

/*
 * lockctl_internal.take_slot(pool bigint, start integer, slots integer,
 * quantity bigint, OUT slot integer, OUT max_per_holder bigint, OUT looked
 * boolean): see the top of this file.  Strict.  Called by
 * lockctl_internal.reserve_by_sql and lockctl.reserve_cart only (no
 * EXECUTE for PUBLIC).
 */
PG_FUNCTION_INFO_V1(lockctl_take_slot);
Datum
lockctl_take_slot(PG_FUNCTION_ARGS)
{
	TupleDesc	tupdesc;
	Datum		values[3] = {0};
	bool		nulls[3] = {true, true, false};
	int32		slot = 0;
	int64		maxph = 0;
	bool		maxph_null = true;
	int			r;

	tupdesc = lockctl_result_desc(fcinfo, &result_desc);
	r = ReserveTakeSlot(PG_GETARG_INT64(0), PG_GETARG_INT32(1), PG_GETARG_INT32(2),
						PG_GETARG_INT64(3), &slot, &maxph, &maxph_null);
	if (r == 1)
	{
		values[0] = Int32GetDatum(slot);
		nulls[0] = false;
		values[1] = Int64GetDatum(maxph);
		nulls[1] = maxph_null;
	}
	values[2] = BoolGetDatum(r >= 0);
	PG_RETURN_DATUM(HeapTupleGetDatum(heap_form_tuple(tupdesc, values, nulls)));
}

/*
 * Move quantity units of pool's slot from held to confirmed: what
 * lockctl_internal.confirm_slot does (see the top of this file).  False,
 * having changed nothing, when the statement must do it.  For
 * lockctl.confirm (reserve_sale.c) and confirm_slot.
 */
bool
ReserveConfirmSlot(int64 pool, int32 slot, int64 quantity)
{
	Relation	rel;
	const SlotShape *s = &slot_shape;
	TupleDesc	desc;
	CommandId	cid;
	SnapshotData dirty;
	ScanKeyData skey[2];
	SysScanDesc scan;
	HeapTuple	tup;
	HeapTuple	newtup = NULL;
	ItemPointerData otid;
	bool		done = false;

	if (quantity <= 0 || (rel = slot_open()) == NULL)
		return false;
	desc = RelationGetDescr(rel);
	cid = GetCurrentCommandId(true);

	ScanKeyInit(&skey[0], s->attnum[SC_POOL] + 1, BTEqualStrategyNumber,
				F_INT8EQ, Int64GetDatum(pool));
	ScanKeyInit(&skey[1], s->attnum[SC_SLOT] + 1, BTEqualStrategyNumber,
				F_INT4EQ, Int32GetDatum(slot));
	InitDirtySnapshot(dirty);
	scan = systable_beginscan(rel, s->pkoid, true, &dirty, 2, skey);
	tup = systable_getnext(scan);

	/*
	 * The primary key allows no second live row: the first one seen
	 * decides.  One another transaction is writing: the statement waits
	 * for it and follows its update.
	 */
	if (HeapTupleIsValid(tup) && slot_row_ours_to_write(tup, &dirty, cid))
	{
		Datum		values[SLOT_MAX_NATTS];
		bool		nulls[SLOT_MAX_NATTS];
		int64		held;
		int64		confirmed;
		int64		hconfirmed;

		heap_deform_tuple(tup, desc, values, nulls);
		if (!nulls[s->attnum[SC_CAPACITY]] && !nulls[s->attnum[SC_HELD]] &&
			!nulls[s->attnum[SC_CONFIRMED]] && !nulls[s->attnum[SC_HCONFIRMED]] &&
			!nulls[s->attnum[SC_KEPT]])
		{
			held = DatumGetInt64(values[s->attnum[SC_HELD]]);
			confirmed = DatumGetInt64(values[s->attnum[SC_CONFIRMED]]);
			hconfirmed = DatumGetInt64(values[s->attnum[SC_HCONFIRMED]]);
			/*
			 * Moving units from held to confirmed keeps held + confirmed;
			 * the new row is tested whole all the same, as the CHECK would.
			 */
			if (held >= quantity &&
				!pg_add_s64_overflow(confirmed, quantity, &confirmed) &&
				!pg_add_s64_overflow(hconfirmed, 1, &hconfirmed) &&
				ReserveSlotRowOk(held - quantity, confirmed,
								 DatumGetInt64(values[s->attnum[SC_CAPACITY]]),
								 DatumGetInt64(values[s->attnum[SC_KEPT]])))
			{
				values[s->attnum[SC_HELD]] = Int64GetDatum(held - quantity);
				values[s->attnum[SC_CONFIRMED]] = Int64GetDatum(confirmed);
				values[s->attnum[SC_HCONFIRMED]] = Int64GetDatum(hconfirmed);
				/* formed while the scan still holds the old row's buffer */
				newtup = heap_form_tuple(desc, values, nulls);
				otid = tup->t_self;
			}
		}
	}
	systable_endscan(scan);

	if (newtup != NULL)
	{
		done = slot_update(rel, &otid, newtup, cid, true);
		heap_freetuple(newtup);
	}
	/* the lock stays to the end of the transaction, as the executor's */
	table_close(rel, NoLock);
	return done;
}

/*
 * lockctl_internal.confirm_slot(pool bigint, slot integer, quantity bigint)
 * RETURNS boolean: see the top of this file.  Strict.  Called by
 * lockctl_internal.confirm_by_sql and lockctl.confirm_cart only (no
 * EXECUTE for PUBLIC).
 */
PG_FUNCTION_INFO_V1(lockctl_confirm_slot);
Datum
lockctl_confirm_slot(PG_FUNCTION_ARGS)
{
	PG_RETURN_BOOL(ReserveConfirmSlot(PG_GETARG_INT64(0), PG_GETARG_INT32(1),
									  PG_GETARG_INT64(2)));
}
