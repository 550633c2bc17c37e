/*-------------------------------------------------------------------------
 *
 * reserve_hold.c
 *	  A hold's row written (reserve) and confirmed without the executor.
 *
 * After its slot (reserve_slot.c), a sale writes the hold: reserve inserts
 * its row into lockctl.reservations, confirm updates it to 'confirmed'.
 * As statements, each cost an executor start-up more than the write: the
 * table's CHECK parsed and prepared, the IndexInfos of its five indexes
 * built and the predicates of the four partial ones prepared, a plan and
 * its nodes.  These two functions make the same writes with that state
 * kept between calls (direct_write.c):
 *
 *   lockctl_internal.insert_hold(pool, slot, quantity, holder, taken_by,
 *	   created, expires): insert a live hold without an idempotency key,
 *	   its id from the column's default (era_nextval of hold_id_seq), its
 *	   status 'held'; returns the id, or NULL when the statement must
 *	   insert it.
 *   lockctl_internal.confirm_hold(id, at, OUT pool_id, OUT slot, OUT
 *	   quantity, OUT looked): what confirm's UPDATE does: the row of hold
 *	   id that the active snapshot sees, if it is live (finished is null),
 *	   not expired at `at` and the caller may act for its taker
 *	   (may_act_for), set to 'confirmed', finished at `at`; returns its
 *	   pool, slot and quantity (looked = true), nothing when no row
 *	   matched (looked = true: the caller explains why, as after the
 *	   UPDATE), or looked = false, having changed nothing, when the
 *	   statement must do it.
 *
 * The statement decides instead whenever: the row matched is being
 * changed or locked by another transaction, or was changed by one after
 * the snapshot (the UPDATE waits for it and follows its update, as READ
 * COMMITTED does); the isolation level is REPEATABLE READ or SERIALIZABLE
 * (their snapshot rules, 40001 and predicate locks are the executor's);
 * the transaction is read-only or the server a standby (their errors are
 * the statement's); the caller may not INSERT, or SELECT and UPDATE, the
 * table; or the table is not as installed (HoldShape).
 *
 * What the executor does besides, done here too: the NOT NULL and CHECK
 * constraints (ExecConstraints, their expressions kept), the entries of
 * every index (ExecInsertIndexTuples: the predicates of the partial ones
 * decide; a confirm's new version is never heap-only, status being in an
 * index), the replica identity check of a published table
 * (CheckCmdReplicaIdentity), the sequence's privileges (nextval's own).
 *
 * src/reserve_hold.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/genam.h"
#include "access/htup_details.h"
#include "access/stratnum.h"
#include "access/table.h"
#include "access/tableam.h"
#include "access/xact.h"
#include "catalog/pg_class.h"
#include "catalog/pg_enum.h"
#include "catalog/pg_index.h"
#include "catalog/pg_type.h"
#include "executor/executor.h"
#include "fmgr.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "nodes/primnodes.h"
#include "rewrite/rewriteHandler.h"
#include "utils/acl.h"
#include "utils/fmgroids.h"
#include "utils/inval.h"
#include "utils/lsyscache.h"
#include "utils/rel.h"
#include "utils/snapmgr.h"
#include "utils/syscache.h"
#include "utils/timestamp.h"

#include "compat.h"
#include "direct_write.h"
#include "lease_token.h"
#include "lockctl.h"
#include "reserve.h"

/* The columns of lockctl.reservations (src/reserve.sql). */
typedef enum HoldColumn
{
	HC_ID,
	HC_POOL,
	HC_SLOT,
	HC_QUANTITY,
	HC_HOLDER,
	HC_TAKEN_BY,
	HC_STATUS,
	HC_CREATED,
	HC_EXPIRES,
	HC_FINISHED,
	HC_KEY,
	HC_NCOLS
} HoldColumn;

static const LockctlDirectColumn hold_columns[HC_NCOLS] = {
	{"id", INT8OID}, {"pool_id", INT8OID}, {"slot", INT4OID},
	{"quantity", INT8OID}, {"holder", TEXTOID}, {"taken_by", NAMEOID},
	{"status", InvalidOid /* an enum */ }, {"created", TIMESTAMPTZOID},
	{"expires", TIMESTAMPTZOID}, {"finished", TIMESTAMPTZOID},
	{"idempotency_key", TEXTOID}
};

/* room for a few dropped columns, so that the arrays live on the stack */
#define HOLD_MAX_NATTS	(2 * HC_NCOLS)

/*
 * What the direct paths need to know of lockctl.reservations, worked out
 * at first use and again after an invalidation of the table (any change
 * of it, its columns, defaults, constraints, indexes, triggers, rules or
 * policies; its drop), of one of its indexes, or of a function (a CREATE
 * OR REPLACE of one its CHECK or its indexes call, or of the id's
 * default).  As installed means: an ordinary table, not a partition,
 * without triggers, rules, row security or generated columns; exactly the
 * columns above, of their types, status of an enum type with 'held' and
 * 'confirmed'; the defaults an INSERT that names neither id, status,
 * finished nor idempotency_key would use: id's a call of this library's
 * era_nextval of a sequence, status's 'held', none for the other two; a
 * primary key that is a plain btree on id; every index immediate.  Its
 * CHECK constraints and indexes may be anything: they are applied as the
 * executor applies them.
 */
typedef struct HoldShape
{
	bool		valid;			/* worked out since the last invalidation */
	Oid			relid;			/* of the table it was worked out for */
	bool		direct;			/* as installed: the direct paths may write */
	int			attnum[HC_NCOLS];	/* 0-based, in the tuple descriptor */
	Oid			held;			/* the enum values of status */
	Oid			confirmed;
	Oid			seq;			/* the sequence of id's default */
	Oid			pkoid;			/* the primary key */
	LockctlKeptWrite kept;		/* its CHECKs and IndexInfos */
} HoldShape;

static HoldShape hold_shape;
static Oid	reservations_relid = InvalidOid;
static Oid	reservations_nsp = InvalidOid;

static void
hold_shape_inval_rel(Datum arg, Oid relid)
{
	if (!OidIsValid(relid) || relid == hold_shape.relid ||
		lockctl_kept_index_of(&hold_shape.kept, relid))
		hold_shape.valid = false;
}

static void
hold_shape_inval_proc(Datum arg, int cacheid, uint32 hashvalue)
{
	hold_shape.valid = false;
}

/*
 * The OID of label of enum type typid, or InvalidOid: for the shapes of
 * lockctl's tables, here and in reserve_caps.c.
 */
Oid
ReserveEnumValue(Oid typid, const char *label)
{
	HeapTuple	tup = SearchSysCache2(ENUMTYPOIDNAME, ObjectIdGetDatum(typid),
									  CStringGetDatum(label));
	Oid			value;

	if (!HeapTupleIsValid(tup))
		return InvalidOid;
	value = ((Form_pg_enum) GETSTRUCT(tup))->oid;
	ReleaseSysCache(tup);
	return value;
}

/*
 * Whether the defaults of rel's columns are those of the table as
 * installed (see HoldShape); sets s->seq.
 */
static bool
hold_defaults_ok(Relation rel, HoldShape *s)
{
	Node	   *def;
	FuncExpr   *fe;
	Const	   *arg;

	/* id: lockctl_internal.era_nextval('lockctl.hold_id_seq'::regclass) */
	def = build_column_default(rel, s->attnum[HC_ID] + 1);
	if (def == NULL || !IsA(def, FuncExpr))
		return false;
	fe = (FuncExpr *) def;
	if (fe->funcretset || list_length(fe->args) != 1 ||
		!IsA(linitial(fe->args), Const))
		return false;
	arg = (Const *) linitial(fe->args);
	if (arg->consttype != REGCLASSOID || arg->constisnull ||
		get_rel_relkind(DatumGetObjectId(arg->constvalue)) != RELKIND_SEQUENCE ||
		!lockctl_direct_is_ours(fe->funcid, (void *) lockctl_era_nextval))
		return false;
	s->seq = DatumGetObjectId(arg->constvalue);

	/* status: 'held' */
	def = build_column_default(rel, s->attnum[HC_STATUS] + 1);
	if (def == NULL || !IsA(def, Const) || ((Const *) def)->constisnull ||
		DatumGetObjectId(((Const *) def)->constvalue) != s->held)
		return false;

	/* finished, idempotency_key: none */
	return build_column_default(rel, s->attnum[HC_FINISHED] + 1) == NULL &&
		build_column_default(rel, s->attnum[HC_KEY] + 1) == NULL;
}

static void
hold_shape_build(Relation rel)
{
	static bool registered = false;
	HoldShape  *s = &hold_shape;
	TupleDesc	desc = RelationGetDescr(rel);
	Oid			status_type;
	List	   *indexes;
	ListCell   *lc;

	if (!registered)
	{
		CacheRegisterRelcacheCallback(hold_shape_inval_rel, (Datum) 0);
		CacheRegisterSyscacheCallback(PROCOID, hold_shape_inval_proc, (Datum) 0);
		registered = true;
	}

	/*
	 * Valid from here: an invalidation that arrives while the catalogs are
	 * read below makes the next call work it out again.
	 */
	lockctl_kept_reset(&s->kept, &s->valid);
	s->valid = true;
	s->relid = RelationGetRelid(rel);
	s->direct = false;
	s->pkoid = InvalidOid;
	s->seq = InvalidOid;

	if (desc->natts > HOLD_MAX_NATTS ||
		rel->rd_rel->relkind != RELKIND_RELATION || rel->rd_rel->relispartition ||
		rel->trigdesc != NULL || rel->rd_rules != NULL ||
		rel->rd_rel->relrowsecurity ||
		(desc->constr != NULL && desc->constr->has_generated_stored))
		return;
	if (!lockctl_direct_columns(rel, hold_columns, HC_NCOLS, s->attnum))
		return;
	status_type = TupleDescAttr(desc, s->attnum[HC_STATUS])->atttypid;
	if (get_typtype(status_type) != TYPTYPE_ENUM)
		return;
	s->held = ReserveEnumValue(status_type, "held");
	s->confirmed = ReserveEnumValue(status_type, "confirmed");
	if (!OidIsValid(s->held) || !OidIsValid(s->confirmed))
		return;
	if (!hold_defaults_ok(rel, s) || !lockctl_kept_immediate(rel))
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
		if (index->indisprimary && index->indnatts == 1 &&
			index->indkey.values[0] == s->attnum[HC_ID] + 1 &&
			lockctl_direct_index_plain(tup, false))
			s->pkoid = indexoid;
		ReleaseSysCache(tup);
	}
	list_free(indexes);
	s->direct = OidIsValid(s->pkoid);
}

/*
 * lockctl.reservations, opened with RowExclusiveLock and as installed, when
 * the direct paths may write it now with privileges mode: NULL when the
 * statement must.
 */
static Relation
hold_open(AclMode mode)
{
	Relation	rel;

	if (XactReadOnly || RecoveryInProgress() || IsolationUsesXactSnapshot() ||
		!ActiveSnapshotSet())
		return NULL;
	rel = lockctl_direct_open_named("reservations", &reservations_relid,
									 &reservations_nsp, RowExclusiveLock);
	if (rel == NULL)
		return NULL;
	if (!hold_shape.valid || hold_shape.relid != RelationGetRelid(rel))
		hold_shape_build(rel);
	if (!hold_shape.direct ||
		pg_class_aclmask(RelationGetRelid(rel), GetUserId(), mode, ACLMASK_ALL) != mode)
	{
		/* the lock stays to the end of the transaction, as the executor's */
		table_close(rel, NoLock);
		return NULL;
	}
	return rel;
}

/*
 * Insert a live hold without an idempotency key: what
 * lockctl_internal.insert_hold does (see the top of this file), its
 * columns in values and nulls in the order of that function's arguments
 * (pool, slot, quantity, holder, taken_by, created, expires; only holder
 * may be null).  True with the new id in *id; false, having written
 * nothing, when the statement must insert it.  For lockctl.reserve
 * (reserve_sale.c) and insert_hold.
 */
bool
ReserveInsertHold(const Datum *values, const bool *nulls, int64 *id)
{
	static const HoldColumn args[7] = {
		HC_POOL, HC_SLOT, HC_QUANTITY, HC_HOLDER, HC_TAKEN_BY, HC_CREATED, HC_EXPIRES
	};
	HoldShape  *s = &hold_shape;
	Relation	rel;
	LockctlDirectWrite w;
	TupleTableSlot *slot;
	int			i;

	for (i = 0; i < 7; i++)
		if (nulls[i] && args[i] != HC_HOLDER)
			return false;
	/* INSERT ... RETURNING id: INSERT, and SELECT for what it returns */
	if ((rel = hold_open(ACL_INSERT | ACL_SELECT)) == NULL)
		return false;

	/* the default, with nextval's privilege checks */
	*id = LeaseEraNextval(s->seq);

	lockctl_write_begin(&w, rel, &s->kept, table_slot_callbacks(rel));
	slot = w.slot;
	for (i = 0; i < 7; i++)
	{
		slot->tts_values[s->attnum[args[i]]] = values[i];
		slot->tts_isnull[s->attnum[args[i]]] = nulls[i];
	}
	slot->tts_values[s->attnum[HC_ID]] = Int64GetDatum(*id);
	slot->tts_isnull[s->attnum[HC_ID]] = false;
	slot->tts_values[s->attnum[HC_STATUS]] = ObjectIdGetDatum(s->held);
	slot->tts_isnull[s->attnum[HC_STATUS]] = false;
	ExecStoreVirtualTuple(slot);
	lockctl_write_insert(&w, &s->kept);
	lockctl_write_end(&w);

	/* the lock stays to the end of the transaction, as the executor's */
	table_close(rel, NoLock);
	return true;
}

/*
 * lockctl_internal.insert_hold(pool bigint, slot integer, quantity bigint,
 * holder text, taken_by name, created timestamptz, expires timestamptz)
 * RETURNS bigint: see the top of this file.  Not strict (holder may be
 * null); any other argument null is left to the statement.  Called by
 * lockctl_internal.reserve_by_sql only (no EXECUTE for PUBLIC).
 */
PG_FUNCTION_INFO_V1(lockctl_insert_hold);
Datum
lockctl_insert_hold(PG_FUNCTION_ARGS)
{
	Datum		values[7];
	bool		nulls[7];
	int64		id;
	int			i;

	for (i = 0; i < 7; i++)
	{
		nulls[i] = PG_ARGISNULL(i);
		values[i] = nulls[i] ? (Datum) 0 : PG_GETARG_DATUM(i);
	}
	if (!ReserveInsertHold(values, nulls, &id))
		PG_RETURN_NULL();
	PG_RETURN_INT64(id);
}

/*
 * Confirm hold id at `at`: what lockctl_internal.confirm_hold does (see
 * the top of this file).  Returns 1 with the hold's pool, slot and
 * quantity when its row was confirmed, 0 when no row matched (the caller
 * explains why, as after the UPDATE), -1, having changed nothing, when
 * the statement must do it.  For lockctl.confirm (reserve_sale.c) and
 * confirm_hold.
 */
int
ReserveConfirmHold(int64 id, TimestampTz at, int64 *pool, int32 *slotno,
				   int64 *quantity)
{
	HoldShape  *s = &hold_shape;
	Relation	rel;
	int			r = -1;

	/* UPDATE ... RETURNING pool_id, slot, quantity: SELECT and UPDATE */
	if ((rel = hold_open(ACL_SELECT | ACL_UPDATE)) != NULL)
	{
		TupleDesc	desc = RelationGetDescr(rel);
		ScanKeyData skey;
		SysScanDesc scan;
		HeapTuple	tup;
		HeapTuple	newtup = NULL;
		ItemPointerData otid;

		/* a published table without a replica identity: the UPDATE's error */
		CheckCmdReplicaIdentity(rel, CMD_UPDATE);

		/* the row the UPDATE would see: through the primary key, by id */
		ScanKeyInit(&skey, s->attnum[HC_ID] + 1, BTEqualStrategyNumber,
					F_INT8EQ, Int64GetDatum(id));
		scan = systable_beginscan(rel, s->pkoid, true, GetActiveSnapshot(), 1, &skey);
		tup = systable_getnext(scan);
		r = 0;
		if (HeapTupleIsValid(tup))
		{
			Datum		values[HOLD_MAX_NATTS];
			bool		nulls[HOLD_MAX_NATTS];
			bool		match;

			heap_deform_tuple(tup, desc, values, nulls);
			/* WHERE finished IS NULL AND expires > at AND may_act_for(taken_by) */
			match = nulls[s->attnum[HC_FINISHED]] && !nulls[s->attnum[HC_EXPIRES]] &&
				DatumGetTimestampTz(values[s->attnum[HC_EXPIRES]]) > at &&
				!nulls[s->attnum[HC_TAKEN_BY]] &&
				ReserveMayActFor(NameStr(*DatumGetName(values[s->attnum[HC_TAKEN_BY]])));
			/* NOT NULL as installed; a row without them: the statement's */
			if (match && (nulls[s->attnum[HC_POOL]] || nulls[s->attnum[HC_SLOT]] ||
						  nulls[s->attnum[HC_QUANTITY]]))
				r = -1;
			else if (match)
			{
				values[s->attnum[HC_STATUS]] = ObjectIdGetDatum(s->confirmed);
				nulls[s->attnum[HC_STATUS]] = false;
				values[s->attnum[HC_FINISHED]] = TimestampTzGetDatum(at);
				nulls[s->attnum[HC_FINISHED]] = false;
				*pool = DatumGetInt64(values[s->attnum[HC_POOL]]);
				*slotno = DatumGetInt32(values[s->attnum[HC_SLOT]]);
				*quantity = DatumGetInt64(values[s->attnum[HC_QUANTITY]]);
				/* formed while the scan still holds the old row's buffer */
				newtup = heap_form_tuple(desc, values, nulls);
				otid = tup->t_self;
			}
		}
		systable_endscan(scan);

		if (newtup != NULL)
		{
			LockctlDirectWrite w;

			lockctl_write_begin(&w, rel, &s->kept, &TTSOpsHeapTuple);
			r = lockctl_write_update(&w, &s->kept, &otid, newtup) ? 1 : -1;
			lockctl_write_end(&w);
		}
		/* the lock stays to the end of the transaction, as the executor's */
		table_close(rel, NoLock);
	}
	return r;
}

/* its result's descriptor, kept (direct.c) */
static LockctlResultDesc confirm_result_desc;

/*
 * lockctl_internal.confirm_hold(id bigint, at timestamptz, OUT pool_id
 * bigint, OUT slot integer, OUT quantity bigint, OUT looked boolean): see
 * the top of this file.  Strict.  Called by lockctl_internal.confirm_by_sql
 * only (no EXECUTE for PUBLIC).
 */
PG_FUNCTION_INFO_V1(lockctl_confirm_hold);
Datum
lockctl_confirm_hold(PG_FUNCTION_ARGS)
{
	TupleDesc	tupdesc;
	Datum		result[4] = {0};
	bool		rnulls[4] = {true, true, true, false};
	int64		pool;
	int32		slot;
	int64		quantity;
	int			r;

	tupdesc = lockctl_result_desc(fcinfo, &confirm_result_desc);
	r = ReserveConfirmHold(PG_GETARG_INT64(0), PG_GETARG_TIMESTAMPTZ(1),
						   &pool, &slot, &quantity);
	if (r == 1)
	{
		result[0] = Int64GetDatum(pool);
		result[1] = Int32GetDatum(slot);
		result[2] = Int64GetDatum(quantity);
		rnulls[0] = rnulls[1] = rnulls[2] = false;
	}
	result[3] = BoolGetDatum(r >= 0);
	PG_RETURN_DATUM(HeapTupleGetDatum(heap_form_tuple(tupdesc, result, rnulls)));
}
