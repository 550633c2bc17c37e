/*-------------------------------------------------------------------------
 *
 * reserve_caps.c
 *	  The caps on a role's holds: lockctl.max_holds_per_role and
 *	  lockctl.max_kept_holds_per_role, and the check that enforces them
 *	  (lockctl_internal.check_role_caps), exactly under concurrency.
 *
 * The caps are ordinary settings read in the caller's session, PGC_SUSET so
 * that a role cannot raise its own: a DBA sets them in postgresql.conf, per
 * database or per role (ALTER ROLE ... SET).  reserve, reserve_cart,
 * wait_for and reserve_range call the check before they take a hold, and
 * only when a cap is set.
 *
 * A count alone cannot be exact: two transactions of one role at cap - 1
 * would each count the committed holds, miss the other's uncommitted one,
 * and both pass.  So the check first takes a lock on (database, role) in
 * PostgreSQL's lock manager, and counts with a dirty snapshot, which also
 * sees the holds of transactions still in progress.  lockctl.reserve's C
 * path (reserve_sale.c) gives the lock back as soon as its hold is
 * inserted, in a pool without a per-holder limit: the next transaction of
 * the role counts that hold, in progress or not.  When a count at the cap
 * includes holds of a transaction in progress, the check gives the lock
 * back, waits for that transaction (as a unique index waits for an inserter
 * in progress) and counts again: the cap is neither passed if it commits
 * nor refused if it rolls back.  The PL/pgSQL callers (reserve_by_sql,
 * reserve_cart, wait_for), reserve_range and a reserve in a pool that
 * limits its holders keep the lock until their transaction ends: they may
 * wait for rows between the check and their insertion.  Roles without a cap
 * never take the lock.  The wait shows in pg_locks (an advisory lock,
 * objsubid 19528, or the transaction waited for), honours lock_timeout and
 * statement_timeout, and is seen by the deadlock detector.  The tag's
 * field4 is one no SQL-level advisory lock uses (they use 1 and 2), so no
 * role can take or hold it from SQL.
 *
 * Each count reads the role's own entries of its table's role index
 * (reservations_role_idx, carts_role_idx with cart_items_pkey,
 * waitlist_entries_role_idx, range_reservations_role_idx) directly, and
 * stops at the cap, so a check costs at most the cap, whatever other roles
 * hold.  A planned query could not promise that: its generic plan chose
 * reservations_due_idx (every live hold of every role, filtered by role)
 * when the database has few roles, and cost 25 ms with another role's
 * 50,000 live holds.  What a count needs of each table (its OID, its
 * index's, the column numbers and enum values) is worked out once and kept
 * until the table or index changes, so that nothing is looked up by name
 * under the lock.  The query is kept for tables not as installed; it
 * counts with the latest snapshot (committed holds only, and this
 * transaction's), so with it the lock is kept until the transaction ends.
 *
 * src/reserve_caps.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <limits.h>

#include "access/genam.h"
#include "access/htup_details.h"
#include "access/table.h"
#include "access/xact.h"
#include "catalog/namespace.h"
#include "catalog/pg_index.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "miscadmin.h"
#include "nodes/makefuncs.h"
#include "nodes/nodeFuncs.h"
#include "optimizer/optimizer.h"
#include "storage/bufmgr.h"
#include "storage/lmgr.h"
#include "storage/lock.h"
#include "utils/acl.h"
#include "utils/builtins.h"
#include "utils/fmgroids.h"
#include "utils/guc.h"
#include "utils/inval.h"
#include "utils/lsyscache.h"
#include "utils/rel.h"
#include "utils/snapmgr.h"
#include "utils/syscache.h"
#include "utils/typcache.h"

#include "lockctl.h"
#include "reserve.h"

/* "LH": a field4 that no SQL-level advisory lock uses (they use 1 and 2) */
#define RESERVE_CAPS_LOCK_FIELD4	0x4C48

/* Settings */
static int	lockctl_max_holds_per_role = 0;
static int	lockctl_max_kept_holds_per_role = 0;

/*
 * The role's live holds (up to $2) and finished holds kept (up to $3):
 * live holds, the items of live carts, waiting waitlist entries and live
 * range holds; cancelled and expired holds, cart items and range holds not
 * purged yet.  A LIMIT of 0 counts nothing (that cap is not set).  Every
 * name is qualified: the query runs under the caller's search_path.
 */
static const char *const caps_count_sql =
"SELECT (SELECT pg_catalog.count(*) FROM (SELECT FROM lockctl.reservations AS r"
"         WHERE r.taken_by OPERATOR(pg_catalog.=) $1"
"           AND r.status OPERATOR(pg_catalog.=) 'held'::lockctl.hold_status LIMIT $2) AS x)"
" OPERATOR(pg_catalog.+) (SELECT pg_catalog.count(*) FROM (SELECT FROM lockctl.carts AS c"
"         JOIN lockctl.cart_items AS i ON i.cart_id OPERATOR(pg_catalog.=) c.id"
"         WHERE c.taken_by OPERATOR(pg_catalog.=) $1"
"           AND c.status OPERATOR(pg_catalog.=) 'held'::lockctl.hold_status LIMIT $2) AS x)"
" OPERATOR(pg_catalog.+) (SELECT pg_catalog.count(*) FROM (SELECT FROM lockctl.waitlist_entries AS w"
"         WHERE w.taken_by OPERATOR(pg_catalog.=) $1"
"           AND w.status OPERATOR(pg_catalog.=) 'waiting'::lockctl.wait_status LIMIT $2) AS x)"
" OPERATOR(pg_catalog.+) (SELECT pg_catalog.count(*) FROM (SELECT FROM lockctl.range_reservations AS g"
"         WHERE g.taken_by OPERATOR(pg_catalog.=) $1"
"           AND g.status OPERATOR(pg_catalog.=) 'held'::lockctl.hold_status LIMIT $2) AS x),"
"       (SELECT pg_catalog.count(*) FROM (SELECT FROM lockctl.reservations AS r"
"         WHERE r.taken_by OPERATOR(pg_catalog.=) $1"
"           AND r.status OPERATOR(pg_catalog.=) ANY (ARRAY['cancelled', 'expired']::lockctl.hold_status[])"
"         LIMIT $3) AS x)"
" OPERATOR(pg_catalog.+) (SELECT pg_catalog.count(*) FROM (SELECT FROM lockctl.carts AS c"
"         JOIN lockctl.cart_items AS i ON i.cart_id OPERATOR(pg_catalog.=) c.id"
"         WHERE c.taken_by OPERATOR(pg_catalog.=) $1"
"           AND c.status OPERATOR(pg_catalog.=) ANY (ARRAY['cancelled', 'expired']::lockctl.hold_status[])"
"         LIMIT $3) AS x)"
" OPERATOR(pg_catalog.+) (SELECT pg_catalog.count(*) FROM (SELECT FROM lockctl.range_reservations AS g"
"         WHERE g.taken_by OPERATOR(pg_catalog.=) $1"
"           AND g.status OPERATOR(pg_catalog.=) ANY (ARRAY['cancelled', 'expired']::lockctl.hold_status[])"
"         LIMIT $3) AS x)";

/*
 * Prepared once per backend (SPI_keepplan): the plan cache analyses it
 * again when one of its tables changes.
 */
static SPIPlanPtr caps_count_plan = NULL;

/*
 * Define the settings of the caps.
 */
void
ReserveCapsInit(void)
{
	DefineCustomIntVariable("lockctl.max_holds_per_role",
							gettext_noop("Maximum number of live holds of one role in one database (0: no limit)."),
							gettext_noop("lockctl.reserve refuses a new hold with SQLSTATE 53400 when the calling role has this many live holds."),
							&lockctl_max_holds_per_role,
							0, 0, INT_MAX,
							PGC_SUSET,
							0,
							NULL, NULL, NULL);

	DefineCustomIntVariable("lockctl.max_kept_holds_per_role",
							gettext_noop("Maximum number of cancelled and expired holds of one role kept until purged, in one database (0: no limit)."),
							gettext_noop("lockctl.reserve refuses a new hold with SQLSTATE 53400 when the calling role has this many finished holds that lockctl.retention still keeps."),
							&lockctl_max_kept_holds_per_role,
							0, 0, INT_MAX,
							PGC_SUSET,
							0,
							NULL, NULL, NULL);
}

/*
 * Whether either cap on a role's holds is set in this session.
 */
bool
ReserveRoleCapsOn(void)
{
	return lockctl_max_holds_per_role > 0 || lockctl_max_kept_holds_per_role > 0;
}

/*
 * Take the transaction-level lock of role's caps in this database, waiting
 * for the transaction of the same role that holds it; true when this
 * transaction held it already.  The check takes it; a caller that locks
 * rows of its own before the check (reserve_range locks its calendar)
 * takes it first, so that two transactions of one role cannot wait for
 * each other's locks in the opposite order.
 */
bool
ReserveLockRoleCaps(const char *role)
{
	LOCKTAG		tag;
	LockAcquireResult res;

	/* role is always the acting role's name (acting_role), so it exists */
	SET_LOCKTAG_ADVISORY(tag, MyDatabaseId, get_role_oid(role, false), 0,
						 RESERVE_CAPS_LOCK_FIELD4);
	res = LockAcquire(&tag, ExclusiveLock, false, false);
	return res == LOCKACQUIRE_ALREADY_HELD || res == LOCKACQUIRE_ALREADY_CLEAR;
}

/*
 * Give back one hold of role's caps lock taken in this transaction (by
 * ReserveLockRoleCaps or ReserveCheckRoleCaps).  The lock is free for the
 * role's other transactions once every hold of it is given back, or at the
 * transaction's end.
 */
void
ReserveUnlockRoleCaps(const char *role)
{
	LOCKTAG		tag;

	SET_LOCKTAG_ADVISORY(tag, MyDatabaseId, get_role_oid(role, false), 0,
						 RESERVE_CAPS_LOCK_FIELD4);
	(void) LockRelease(&tag, ExclusiveLock, false);
}

/*
 * Where caps_count_sql counts, in its order: a table, its role index (a
 * btree whose first key column is taken_by and, when status_key, whose
 * second is status), the status of a live row, and whether its cancelled
 * and expired rows are kept holds.  With items, the rows are carts and
 * what is counted is their items (lockctl.cart_items through
 * cart_items_pkey, keyed by cart_id first).
 */
typedef struct CapsSource
{
	const char *table;
	const char *index;
	bool		status_key;
	bool		items;
	const char *live;
	bool		kept;
} CapsSource;

static const CapsSource caps_sources[] = {
	{"reservations", "reservations_role_idx", true, false, "held", true},
	{"carts", "carts_role_idx", true, true, "held", true},
	{"waitlist_entries", "waitlist_entries_role_idx", false, false, "waiting", false},
	{"range_reservations", "range_reservations_role_idx", true, false, "held", true},
};

#define CAPS_NSOURCES	lengthof(caps_sources)

/*
 * What a count needs of one source, worked out at its first count and
 * again after an invalidation of its table, of its index, of cart_items or
 * of cart_items_pkey (any change of them, or their drop), so that a check
 * looks nothing up by name: the count runs under the caps' lock, where
 * every instruction is one the role's other sessions wait for.
 */
typedef struct CapsShape
{
	bool		valid;			/* worked out since the last invalidation */
	bool		plain;			/* as installed: the count reads the index */
	Oid			relid;			/* the table (lockctl_direct_open_named's) */
	Oid			nspid;
	Oid			built_for;		/* the table it was worked out for */
	Oid			idxid;			/* the role index */
	AttrNumber	att_role;		/* taken_by, status, id (carts) */
	AttrNumber	att_status;
	AttrNumber	att_id;
	Oid			live;			/* the enum values counted */
	Oid			finished[2];	/* 'cancelled', 'expired' (kept sources) */
	Oid			itemsid;		/* carts: lockctl.cart_items */
	Oid			itemsidx;		/* and cart_items_pkey */
	AttrNumber	att_cart;
} CapsShape;

static CapsShape caps_shapes[CAPS_NSOURCES];

static void
caps_shape_inval(Datum arg, Oid relid)
{
	for (int i = 0; i < CAPS_NSOURCES; i++)
	{
		CapsShape  *sh = &caps_shapes[i];

		if (!OidIsValid(relid) || relid == sh->built_for ||
			relid == sh->idxid || relid == sh->itemsid || relid == sh->itemsidx)
			sh->valid = false;
	}
}

/*
 * Whether indexoid is a plain btree on relid (lockctl_direct_index_plain;
 * with a predicate only when partial_ok, for caps_index_covers to judge)
 * whose first key column is first and, when second is valid, whose second
 * is second.
 */
static bool
caps_index_plain(Oid indexoid, Oid relid, AttrNumber first, AttrNumber second,
				 bool partial_ok)
{
	HeapTuple	tup;
	Form_pg_index index;
	bool		plain;

	if (!OidIsValid(indexoid))
		return false;
	tup = SearchSysCache1(INDEXRELID, ObjectIdGetDatum(indexoid));
	if (!HeapTupleIsValid(tup))
		return false;
	index = (Form_pg_index) GETSTRUCT(tup);
	plain = index->indrelid == relid &&
		index->indnkeyatts >= (second != InvalidAttrNumber ? 2 : 1) &&
		index->indkey.values[0] == first &&
		(second == InvalidAttrNumber || index->indkey.values[1] == second) &&
		lockctl_direct_index_plain(tup, partial_ok);
	ReleaseSysCache(tup);
	return plain;
}

/*
 * Whether index indexoid has an entry for every row whose status (column
 * att of enum type typid) is one of the n values counted: it has no
 * predicate, or status = v implies its predicate for each v, as the
 * planner proves it before it reads a partial index.  The installed role
 * indexes leave out what is never counted ('confirmed' rows, or every
 * waitlist entry but the 'waiting' ones); one made again with another
 * predicate would make the count miss rows, so the count asks the query.
 */
static bool
caps_index_covers(Oid indexoid, AttrNumber att, Oid typid, const Oid *values,
				  int n)
{
	Relation	irel;
	List	   *pred;
	bool		covers = true;
	Oid			eqop;

	irel = index_open(indexoid, AccessShareLock);
	pred = RelationGetIndexPredicate(irel);
	index_close(irel, NoLock);
	if (pred == NIL)
		return true;
	eqop = lookup_type_cache(typid, TYPECACHE_EQ_OPR)->eq_opr;
	if (!OidIsValid(eqop))
		return false;
	for (int i = 0; i < n && covers; i++)
	{
		Expr	   *clause;

		/* the index's predicate reads the table as range table entry 1 */
		clause = make_opclause(eqop, BOOLOID, false,
							   (Expr *) makeVar(1, att, typid, -1, InvalidOid, 0),
							   (Expr *) makeConst(typid, -1, InvalidOid, sizeof(Oid),
												  ObjectIdGetDatum(values[i]),
												  false, true),
							   InvalidOid, InvalidOid);
		set_opfuncid((OpExpr *) clause);
		covers = predicate_implied_by(pred, list_make1(clause), false);
	}
	return covers;
}

/* The column attname of relid of type typid (any type if InvalidOid), or 0. */
static AttrNumber
caps_column(Oid relid, const char *attname, Oid typid)
{
	AttrNumber	attnum = get_attnum(relid, attname);

	if (attnum <= 0 ||
		(OidIsValid(typid) && get_atttype(relid, attnum) != typid))
		return InvalidAttrNumber;
	return attnum;
}

/*
 * Work out the shape of source i, whose table rel is open; sh->plain says
 * whether the count may read it directly.
 */
static void
caps_shape_build(int i, Relation rel)
{
	static bool registered = false;
	const CapsSource *src = &caps_sources[i];
	CapsShape  *sh = &caps_shapes[i];
	Oid			relid = RelationGetRelid(rel);
	Oid			statustype;
	Oid			counted[3];

	if (!registered)
	{
		CacheRegisterRelcacheCallback(caps_shape_inval, (Datum) 0);
		registered = true;
	}

	/*
	 * Valid from here: an invalidation that arrives while the catalogs are
	 * read below makes the next count work it out again.
	 */
	sh->valid = true;
	sh->plain = false;
	sh->built_for = relid;
	sh->idxid = get_relname_relid(src->index, RelationGetNamespace(rel));
	sh->itemsid = sh->itemsidx = InvalidOid;

	sh->att_role = caps_column(relid, "taken_by", NAMEOID);
	sh->att_status = caps_column(relid, "status", InvalidOid);
	if (sh->att_role == InvalidAttrNumber || sh->att_status == InvalidAttrNumber)
		return;
	statustype = get_atttype(relid, sh->att_status);
	if (!type_is_enum(statustype))
		return;
	sh->live = ReserveEnumValue(statustype, src->live);
	sh->finished[0] = ReserveEnumValue(statustype, "cancelled");
	sh->finished[1] = ReserveEnumValue(statustype, "expired");
	if (!OidIsValid(sh->live) ||
		(src->kept && (!OidIsValid(sh->finished[0]) || !OidIsValid(sh->finished[1]))))
		return;
	if (!caps_index_plain(sh->idxid, relid, sh->att_role,
						  src->status_key ? sh->att_status : InvalidAttrNumber,
						  true))
		return;
	counted[0] = sh->live;
	counted[1] = sh->finished[0];
	counted[2] = sh->finished[1];
	if (!caps_index_covers(sh->idxid, sh->att_status, statustype, counted,
						   src->kept ? 3 : 1))
		return;
	if (src->items)
	{
		sh->att_id = caps_column(relid, "id", INT8OID);
		sh->itemsid = get_relname_relid("cart_items", RelationGetNamespace(rel));
		sh->itemsidx = get_relname_relid("cart_items_pkey", RelationGetNamespace(rel));
		if (sh->att_id == InvalidAttrNumber || !OidIsValid(sh->itemsid))
			return;
		sh->att_cart = caps_column(sh->itemsid, "cart_id", INT8OID);
		if (sh->att_cart == InvalidAttrNumber ||
			!caps_index_plain(sh->itemsidx, sh->itemsid, sh->att_cart,
							  InvalidAttrNumber, false))
			return;
	}
	sh->plain = true;
}

/*
 * After tup was found with the dirty snapshot snap: keep in *inprogress the
 * first other transaction in progress seen writing a counted row (its
 * inserter, or a deleter or updater of it), which the check may wait for
 * when the count is at the cap, and note in *own that a counted row is
 * this transaction's own uncommitted one.
 */
static inline void
caps_note_writer(Snapshot snap, HeapTuple tup, TransactionId *inprogress,
				 bool *own)
{
	if (!TransactionIdIsValid(*inprogress))
	{
		if (TransactionIdIsValid(snap->xmin))
			*inprogress = snap->xmin;
		else if (TransactionIdIsValid(snap->xmax))
			*inprogress = snap->xmax;
	}
	if (!*own &&
		TransactionIdIsCurrentTransactionId(HeapTupleHeaderGetXmin(tup->t_data)))
		*own = true;
}

/*
 * The rows of source sh (table rel, items irel) whose taken_by is role and
 * whose status is status, up to limit, read through its role index with
 * snap, added to *n.  Every row found is checked again against role and
 * status, so that an index entry of an older version of a row (a hold
 * since confirmed: the partial index keeps its entry until vacuum) never
 * counts.
 */
static void
caps_count_status(CapsShape *sh, Relation rel, Relation irel, bool status_key,
				  Name role, Oid status, Snapshot snap, int64 limit, int64 *n,
				  TransactionId *inprogress, bool *own)
{
	TupleDesc	desc = RelationGetDescr(rel);
	ScanKeyData keys[2];
	SysScanDesc scan;
	HeapTuple	tup;

	/* keyed by the table's column numbers, as systable_beginscan wants */
	ScanKeyInit(&keys[0], sh->att_role, BTEqualStrategyNumber, F_NAMEEQ,
				NameGetDatum(role));
	ScanKeyInit(&keys[1], sh->att_status, BTEqualStrategyNumber, F_ENUM_EQ,
				ObjectIdGetDatum(status));
	scan = systable_beginscan(rel, sh->idxid, true, snap, status_key ? 2 : 1, keys);
	while (*n < limit && HeapTupleIsValid(tup = systable_getnext(scan)))
	{
		bool		isnull;
		Datum		d;

		d = heap_getattr(tup, sh->att_status, desc, &isnull);
		if (isnull || DatumGetObjectId(d) != status)
			continue;
		d = heap_getattr(tup, sh->att_role, desc, &isnull);
		if (isnull || strcmp(NameStr(*DatumGetName(d)), NameStr(*role)) != 0)
			continue;
		caps_note_writer(snap, tup, inprogress, own);
		if (irel == NULL)
			(*n)++;
		else
		{
			ScanKeyData ikey;
			SysScanDesc iscan;
			HeapTuple	item;

			d = heap_getattr(tup, sh->att_id, desc, &isnull);
			if (isnull)
				continue;
			ScanKeyInit(&ikey, sh->att_cart, BTEqualStrategyNumber, F_INT8EQ, d);
			iscan = systable_beginscan(irel, sh->itemsidx, true, snap, 1, &ikey);
			while (*n < limit && HeapTupleIsValid(item = systable_getnext(iscan)))
			{
				caps_note_writer(snap, item, inprogress, own);
				(*n)++;
			}
			systable_endscan(iscan);
		}
	}
	systable_endscan(scan);
}

/*
 * Source i's live rows of role (up to maxlive, added to *live) and, when
 * it keeps finished ones, its cancelled and expired rows (up to maxkept,
 * added to *kept), read with snap; a limit of 0 or less counts nothing.
 * False when its tables or indexes are not as installed (the caller counts
 * by query).
 */
static bool
caps_count_source(int i, Name role, Snapshot snap, int64 maxlive,
				  int64 maxkept, int64 *live, int64 *kept,
				  TransactionId *inprogress, bool *own)
{
	const CapsSource *src = &caps_sources[i];
	CapsShape  *sh = &caps_shapes[i];
	Relation	rel;
	Relation	irel = NULL;

	/* at the caps already (or a cap not set): nothing more to read here */
	if (*live >= maxlive && (!src->kept || *kept >= maxkept))
		return true;
	rel = lockctl_direct_open_named(src->table, &sh->relid, &sh->nspid,
									AccessShareLock);
	if (rel == NULL)
		return false;
	if (!sh->valid || sh->built_for != RelationGetRelid(rel))
		caps_shape_build(i, rel);

	/*
	 * A table without a single page has no row, committed or in progress
	 * (an insert extends the table before it places its row): nothing to
	 * scan.  Where only pools are used, the tables of carts, waitlists and
	 * calendars have no page, and their scans were a third of the check.
	 */
	if (sh->plain && sh->valid && RelationGetNumberOfBlocks(rel) == 0)
	{
		table_close(rel, NoLock);
		return true;
	}
	if (sh->plain && src->items)
		irel = lockctl_direct_open(sh->itemsid, AccessShareLock);

	/* an invalidation taken in with cart_items' lock: worked out again next */
	if (!sh->plain || !sh->valid || (src->items && irel == NULL))
	{
		if (irel != NULL)
			table_close(irel, NoLock);
		table_close(rel, NoLock);
		return false;
	}

	if (*live < maxlive)
		caps_count_status(sh, rel, irel, src->status_key, role, sh->live,
						  snap, maxlive, live, inprogress, own);
	if (src->kept)
	{
		for (int f = 0; f < lengthof(sh->finished) && *kept < maxkept; f++)
			caps_count_status(sh, rel, irel, src->status_key, role,
							  sh->finished[f], snap, maxkept, kept,
							  inprogress, own);
	}
	if (irel != NULL)
		table_close(irel, NoLock);
	table_close(rel, NoLock);
	return true;
}

/*
 * The role's live holds (up to maxlive) and finished holds kept (up to
 * maxkept), as caps_count_sql counts them, read from the role indexes with
 * snap; false when a table or index is not as installed.
 */
static bool
caps_count_direct(const char *role, int maxlive, int maxkept, Snapshot snap,
				  int64 *live, int64 *kept, TransactionId *inprogress,
				  bool *own)
{
	NameData	rolename;

	namestrcpy(&rolename, role);
	*live = *kept = 0;
	for (int i = 0; i < CAPS_NSOURCES; i++)
	{
		if (!caps_count_source(i, &rolename, snap, maxlive, maxkept,
							   live, kept, inprogress, own))
			return false;
	}
	return true;
}

/*
 * The same counts by caps_count_sql, for tables not as installed.
 */
static void
caps_count_by_sql(const char *role, int maxlive, int maxkept, Snapshot snap,
				  int64 *live, int64 *kept)
{
	NameData	rolename;
	Datum		values[3];
	bool		isnull;
	int			rc;

	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	if (caps_count_plan == NULL)
	{
		Oid			argtypes[3] = {NAMEOID, INT4OID, INT4OID};
		SPIPlanPtr	plan;

		plan = SPI_prepare_cursor(caps_count_sql, 3, argtypes,
								  CURSOR_OPT_GENERIC_PLAN);
		if (plan == NULL)
			elog(ERROR, "SPI_prepare failed: %s",
				 SPI_result_code_string(SPI_result));
		if (SPI_keepplan(plan) != 0)
			elog(ERROR, "SPI_keepplan failed");
		caps_count_plan = plan;
	}
	namestrcpy(&rolename, role);
	values[0] = NameGetDatum(&rolename);
	values[1] = Int32GetDatum(maxlive);
	values[2] = Int32GetDatum(maxkept);
	rc = SPI_execute_snapshot(caps_count_plan, values, NULL, snap,
							  InvalidSnapshot, true, false, 1);
	if (rc != SPI_OK_SELECT || SPI_processed != 1)
		elog(ERROR, "counting the holds of role \"%s\" failed: %s", role,
			 SPI_result_code_string(rc));
	*live = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0],
										SPI_tuptable->tupdesc, 1, &isnull));
	*kept = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0],
										SPI_tuptable->tupdesc, 2, &isnull));
	SPI_finish();
}

/*
 * Raise 53400 when role may not take adding more holds in this database
 * (see the head of this file).  When a cap is set, returns with the caps'
 * lock taken once more by this call, and says whether the caller may give
 * it back (ReserveUnlockRoleCaps) as soon as its holds are inserted: true
 * when the count read the role indexes with a dirty snapshot, so that the
 * next check sees those holds while their transaction is still in
 * progress; false when it had to count by query with the latest snapshot,
 * which sees committed holds only, so that the lock must be kept until the
 * transaction ends.  Returns false when no cap is set (no lock taken).
 *
 * A count at the cap that includes holds of another transaction in
 * progress (inserted, or being confirmed or cancelled) waits for that
 * transaction and counts again, as a unique index waits for an inserter in
 * progress: the cap is neither passed when it commits nor refused when it
 * rolls back.  The lock is given back (this call's hold of it) before
 * waiting, so that the transaction waited for can take it again.  Only a
 * transaction with no uncommitted hold of its own counted, and that did not
 * hold the lock already (reserve_range takes it before its calendar row;
 * the PL/pgSQL callers keep it until the end), waits: any other is refused
 * at once, as if the others' holds were committed, because two
 * transactions that each count the other's holds, or one that waits while
 * it keeps the lock the other wants, would wait for each other (a
 * deadlock, where the lock kept until the end made one wait for the
 * other).  So waits on the caps never form a cycle.
 */
bool
ReserveCheckRoleCaps(const char *role, int32 adding)
{
	int			maxlive = Max(lockctl_max_holds_per_role, 0);
	int			maxkept = Max(lockctl_max_kept_holds_per_role, 0);
	int64		live;
	int64		kept;
	bool		direct;

	if (maxlive <= 0 && maxkept <= 0)
		return false;

	for (;;)
	{
		SnapshotData dirty;
		TransactionId inprogress = InvalidTransactionId;
		bool		own = false;
		bool		held;

		held = ReserveLockRoleCaps(role);

		/*
		 * The command counter advanced first, so that the count sees this
		 * transaction's own holds of earlier statements and calls.
		 */
		CommandCounterIncrement();
		InitDirtySnapshot(dirty);
		direct = caps_count_direct(role, maxlive, maxkept, &dirty,
								   &live, &kept, &inprogress, &own);
		if (!direct)
		{
			/*
			 * The latest snapshot, taken now that the lock is ours: it sees
			 * the holds of every transaction of this role that held the
			 * lock before (they kept it until they ended), even under
			 * REPEATABLE READ.
			 */
			Snapshot	snap = RegisterSnapshot(GetLatestSnapshot());

			caps_count_by_sql(role, maxlive, maxkept, snap, &live, &kept);
			UnregisterSnapshot(snap);
			break;
		}
		if (!TransactionIdIsValid(inprogress) || own || held ||
			((maxlive <= 0 || live + adding <= maxlive) &&
			 (maxkept <= 0 || kept < maxkept)))
			break;
		ReserveUnlockRoleCaps(role);
		XactLockTableWait(inprogress, NULL, NULL, XLTW_None);
	}

	if (maxlive > 0 && live >= maxlive)
		ereport(ERROR,
				(errcode(ERRCODE_CONFIGURATION_LIMIT_EXCEEDED),
				 errmsg("role \"%s\" has too many live holds", role),
				 errdetail("It has %d live holds in this database, the most lockctl.max_holds_per_role allows.",
						   maxlive),
				 errhint("Confirm or cancel holds first, or ask an administrator to raise \"lockctl.max_holds_per_role\".")));
	if (maxlive > 0 && live + adding > maxlive)
		ereport(ERROR,
				(errcode(ERRCODE_CONFIGURATION_LIMIT_EXCEEDED),
				 errmsg("role \"%s\" has too many live holds", role),
				 errdetail("It has %lld live holds in this database (cart items and waitlist entries included); %d more would pass %d, the most lockctl.max_holds_per_role allows.",
						   (long long) live, adding, maxlive),
				 errhint("Confirm or cancel holds first, or ask an administrator to raise \"lockctl.max_holds_per_role\".")));
	if (maxkept > 0 && kept >= maxkept)
		ereport(ERROR,
				(errcode(ERRCODE_CONFIGURATION_LIMIT_EXCEEDED),
				 errmsg("role \"%s\" has too many finished holds kept", role),
				 errdetail("It has %d cancelled or expired holds in this database that are not purged yet, the most lockctl.max_kept_holds_per_role allows.",
						   maxkept),
				 errhint("They are purged after \"lockctl.retention\"; an administrator may raise \"lockctl.max_kept_holds_per_role\" or lower \"lockctl.retention\".")));
	return direct;
}

/*
 * lockctl_internal.check_role_caps(role name, adding integer) returns
 * void: ReserveCheckRoleCaps for reserve, reserve_cart and wait_for.
 */
PG_FUNCTION_INFO_V1(lockctl_check_role_caps);
Datum
lockctl_check_role_caps(PG_FUNCTION_ARGS)
{
	lockctl_arg_not_null(fcinfo, 0, "role");
	lockctl_arg_not_null(fcinfo, 1, "adding");
	if (PG_GETARG_INT32(1) < 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("adding of lockctl_internal.check_role_caps must not be negative")));
	/* the PL/pgSQL callers keep the lock until the transaction ends */
	(void) ReserveCheckRoleCaps(NameStr(*PG_GETARG_NAME(0)), PG_GETARG_INT32(1));
	PG_RETURN_VOID();
}
