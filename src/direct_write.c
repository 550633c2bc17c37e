/*-------------------------------------------------------------------------
 *
 * direct_write.c
 *	  Rows of lockctl's own tables inserted and updated without the
 *	  executor, with what the executor would prepare in every statement
 *	  made once and kept.
 *
 * An INSERT or UPDATE of one row by primary key costs more in executor
 * start-up than in the write itself: the table's CHECK constraints parsed
 * from their stored text and prepared (about 17,000 instructions for
 * one), the IndexInfos of its indexes built (BuildIndexInfo, about 3,000
 * each), the predicates of its partial indexes prepared (about 4,500
 * each), a plan and its nodes.  The paths that write a hold's row
 * directly (reserve_calendar.c: range_reservations; reserve_hold.c:
 * reservations) keep those in a LockctlKeptWrite, in a long-lived
 * executor state:
 *  - the CHECK expressions, as ExecConstraints prepares them;
 *  - the IndexInfos, as ExecOpenIndices builds them for an INSERT ... ON
 *    CONFLICT (BuildIndexInfo and BuildSpeculativeIndexInfo: expressions
 *    and predicates copied out of the relcache, unique and exclusion
 *    operators looked up), with their predicates and expressions prepared
 *    (ExecInsertIndexTuples and FormIndexDatum would prepare them at first
 *    use in the statement's EState).
 * Each write opens and locks the indexes (RowExclusiveLock, as
 * ExecOpenIndices) and hands its ResultRelInfo the CHECK expressions and a
 * copy of each kept IndexInfo, its own (index AMs keep per-statement state
 * in ii_AmCache, in ii_Context: GiST its GISTSTATE), sharing the kept
 * trees, operators and prepared expressions, which nothing writes during
 * an insertion.  Prepared expressions need no particular EState: they are
 * evaluated in the per-tuple context of the write's.
 *
 * All of it depends only on the definitions of the table, of its indexes
 * and of the functions its expressions call: the owner of a LockctlKeptWrite
 * marks it stale on an invalidation of the table or of one of the kept
 * indexes (lockctl_kept_index_of; an update of pg_index invalidates the
 * index alone), and of pg_proc when its CHECK calls a function that may be
 * replaced.  Most changes take a lock that conflicts with the ROW
 * EXCLUSIVE a write holds on the table; those that do not (CREATE and DROP
 * INDEX CONCURRENTLY make an index ready for inserts or not) are seen when
 * the write locks the indexes, and the write then builds its IndexInfos
 * from the relcache, as the executor would.  An invalidation only marks
 * the kept state stale (it may arrive in the middle of a write that uses
 * it); the owner frees it before its next write.
 *
 * src/direct_write.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/genam.h"
#include "access/heapam.h"
#include "access/htup_details.h"
#include "access/table.h"
#include "access/tableam.h"
#include "access/xact.h"
#include "catalog/index.h"
#include "catalog/pg_index.h"
#include "utils/memutils.h"
#include "utils/rel.h"
#include "utils/snapmgr.h"
#include "utils/syscache.h"

#include "compat.h"
#include "direct_write.h"

/*
 * Forget what kw kept (the table's shape is being worked out again): its
 * state is built afresh at the next write.  valid: the owner's flag.
 */
void
lockctl_kept_reset(LockctlKeptWrite *kw, const bool *valid)
{
	if (kw->cxt != NULL)
		FreeExecutorState(kw->cxt);
	kw->valid = valid;
	kw->cxt = NULL;
	kw->checks = NULL;
	kw->indexed = false;
	kw->nindexes = 0;
	kw->index_oid = NULL;
	kw->index_info = NULL;
}

/* Whether relid is one of the indexes kw keeps. */
bool
lockctl_kept_index_of(const LockctlKeptWrite *kw, Oid relid)
{
	int			i;

	if (!kw->indexed)
		return false;
	for (i = 0; i < kw->nindexes; i++)
		if (relid == kw->index_oid[i])
			return true;
	return false;
}

/*
 * Whether every index of rel is immediate: a deferred unique or exclusion
 * constraint is checked again at commit by a trigger the executor queues,
 * and a direct write has none to queue.
 */
bool
lockctl_kept_immediate(Relation rel)
{
	List	   *indexes = RelationGetIndexList(rel);
	ListCell   *lc;
	bool		immediate = true;

	foreach(lc, indexes)
	{
		HeapTuple	tup = SearchSysCache1(INDEXRELID, ObjectIdGetDatum(lfirst_oid(lc)));

		if (!HeapTupleIsValid(tup))
			elog(ERROR, "cache lookup failed for index %u", lfirst_oid(lc));
		if (!((Form_pg_index) GETSTRUCT(tup))->indimmediate)
			immediate = false;
		ReleaseSysCache(tup);
	}
	list_free(indexes);
	return immediate;
}

/*
 * The long-lived executor state of kw's expressions, made at first use (a
 * child of TopMemoryContext: it outlives transactions).
 */
static EState *
kept_cxt(LockctlKeptWrite *kw)
{
	if (kw->cxt == NULL)
	{
		MemoryContext oldcxt = MemoryContextSwitchTo(TopMemoryContext);

		kw->cxt = CreateExecutorState();
		MemoryContextSwitchTo(oldcxt);
	}
	return kw->cxt;
}

/*
 * Build the IndexInfos of rri's table as ExecOpenIndices does for an
 * INSERT ... ON CONFLICT, opening and locking its indexes, into kw's
 * long-lived state, with their predicates and expressions prepared there,
 * and keep them.
 */
static void
kept_keep_indexes(LockctlKeptWrite *kw, ResultRelInfo *rri)
{
	EState	   *cxt = kept_cxt(kw);
	MemoryContext oldcxt = MemoryContextSwitchTo(cxt->es_query_cxt);
	int			i;

	ExecOpenIndices(rri, true);
	kw->nindexes = rri->ri_NumIndices;
	kw->index_oid = palloc(sizeof(Oid) * Max(rri->ri_NumIndices, 1));
	kw->index_info = palloc(sizeof(IndexInfo *) * Max(rri->ri_NumIndices, 1));
	for (i = 0; i < rri->ri_NumIndices; i++)
	{
		IndexInfo  *ii = rri->ri_IndexRelationInfo[i];

		kw->index_oid[i] = RelationGetRelid(rri->ri_IndexRelationDescs[i]);
		/* what ExecInsertIndexTuples and FormIndexDatum would prepare */
		if (ii->ii_Predicate != NIL)
			ii->ii_PredicateState = ExecPrepareQual(ii->ii_Predicate, cxt);
		if (ii->ii_Expressions != NIL)
			ii->ii_ExpressionsState = ExecPrepareExprList(ii->ii_Expressions, cxt);
		kw->index_info[i] = ii;
	}
	kw->indexed = true;
	MemoryContextSwitchTo(oldcxt);
}

/*
 * Whether the row in slot enters the index ii describes: it has no
 * predicate, or the row satisfies it (the test ExecInsertIndexTuples
 * makes, with the predicate kept prepared).
 */
static bool
kept_row_enters(IndexInfo *ii, TupleTableSlot *slot, EState *estate)
{
	ExprContext *econtext;

	if (ii->ii_Predicate == NIL)
		return true;
	econtext = GetPerTupleExprContext(estate);
	econtext->ecxt_scantuple = slot;
	return ExecQual(ii->ii_PredicateState, econtext);
}

/*
 * The write's own copy of kw's i-th IndexInfo, in the current memory
 * context: index AMs keep per-statement state in ii_AmCache, in
 * ii_Context (GiST its GISTSTATE); the trees and prepared expressions are
 * shared.
 */
static IndexInfo *
kept_info_copy(LockctlKeptWrite *kw, int i)
{
	IndexInfo  *ii = makeNode(IndexInfo);

	*ii = *kw->index_info[i];
	ii->ii_AmCache = NULL;
	ii->ii_Context = CurrentMemoryContext;
	return ii;
}

/*
 * What ExecOpenIndices(rri, true) does, with kw's IndexInfos, for the row
 * in slot: open and lock (RowExclusiveLock) each index of rri's table that
 * the row enters, and give rri a copy of each one's kept IndexInfo,
 * allocated in the current memory context (the write's).  A partial index
 * whose predicate the row fails gets no entry, so it is neither opened
 * nor locked (a hold enters three of lockctl.reservations' five indexes,
 * its confirmation one): nothing of it is used, and the table's ROW
 * EXCLUSIVE lock already keeps it from being dropped or rebuilt under the
 * write.  slot NULL: every index, as the executor.
 *
 * The first write builds and keeps the IndexInfos, with every index
 * opened; a write that finds the table's indexes other than those kept
 * (which an invalidation of the table would have said), or kw made stale
 * by an invalidation that came with the index locks, runs ExecOpenIndices
 * itself, as the executor would.
 */
static void
kept_indexes(LockctlKeptWrite *kw, ResultRelInfo *rri, TupleTableSlot *slot,
			 EState *estate)
{
	Relation	rel = rri->ri_RelationDesc;
	List	   *indexes = NIL;
	ListCell   *lc;
	Relation   *descs;
	IndexInfo **infos;
	int			n;
	int			i;

	if (!kw->indexed)
	{
		kept_keep_indexes(kw, rri);
		/* the write's own copies (these descriptors are in kw's context) */
		n = kw->nindexes;
		descs = palloc(sizeof(Relation) * Max(n, 1));
		infos = palloc(sizeof(IndexInfo *) * Max(n, 1));
		for (i = 0; i < n; i++)
		{
			infos[i] = kept_info_copy(kw, i);
			descs[i] = rri->ri_IndexRelationDescs[i];
		}
		rri->ri_IndexRelationDescs = descs;
		rri->ri_IndexRelationInfo = infos;
		return;
	}

	if (RelationGetForm(rel)->relhasindex)
		indexes = RelationGetIndexList(rel);
	i = 0;
	foreach(lc, indexes)
	{
		if (i >= kw->nindexes || lfirst_oid(lc) != kw->index_oid[i])
			break;
		i++;
	}
	if (lc != NULL || i != kw->nindexes)
	{
		list_free(indexes);
		ExecOpenIndices(rri, true);
		return;
	}
	list_free(indexes);
	rri->ri_NumIndices = 0;
	if (kw->nindexes == 0)
		return;

	descs = palloc(sizeof(Relation) * kw->nindexes);
	infos = palloc(sizeof(IndexInfo *) * kw->nindexes);
	n = 0;
	for (i = 0; i < kw->nindexes; i++)
	{
		if (slot != NULL && !kept_row_enters(kw->index_info[i], slot, estate))
			continue;
		infos[n] = kept_info_copy(kw, i);
		descs[n] = index_open(kw->index_oid[i], RowExclusiveLock);
		n++;
	}
	if (slot != NULL)
		ResetPerTupleExprContext(estate);
	rri->ri_NumIndices = n;
	rri->ri_IndexRelationDescs = descs;
	rri->ri_IndexRelationInfo = infos;
	if (!*kw->valid)
	{
		/* an index changed meanwhile: as the executor, from the relcache */
		ExecCloseIndices(rri);
		ExecOpenIndices(rri, true);
	}
}

/*
 * Open the indexes of w's table that the row now in w's slot enters, for
 * a caller that makes the index entries itself (after lockctl_write_begin
 * and before its ExecInsertIndexTuples).
 */
void
lockctl_write_open_indexes(LockctlDirectWrite *w, LockctlKeptWrite *kw)
{
	kept_indexes(kw, w->rri, w->slot, w->estate);
}

/*
 * Start a write of rel (which the caller has locked ROW EXCLUSIVE and
 * found as installed) in the current command, under the active snapshot:
 * an executor state, a ResultRelInfo with the kept CHECKs and no index
 * yet (the write opens those its row enters), and an empty slot of the
 * table's descriptor (every column null), of ops (a virtual one for an insert, a heap tuple's
 * for an update).  The current memory context is the write's until
 * lockctl_write_end.
 */
void
lockctl_write_begin(LockctlDirectWrite *w, Relation rel, LockctlKeptWrite *kw,
					const TupleTableSlotOps *ops)
{
	TupleDesc	desc = RelationGetDescr(rel);
	int			c;

	w->estate = CreateExecutorState();
	w->oldcxt = MemoryContextSwitchTo(w->estate->es_query_cxt);
	w->estate->es_output_cid = GetCurrentCommandId(true);
	if (ActiveSnapshotSet())
		w->estate->es_snapshot = GetActiveSnapshot();
	w->rri = makeNode(ResultRelInfo);
	/* no range table entry: the row is the function's, not a statement's */
	InitResultRelInfo(w->rri, rel, 0, NULL, 0);
	LOCKCTL_RRI_CHECK_EXPRS(w->rri) = kw->checks;

	w->slot = ExecInitExtraTupleSlot(w->estate, desc, ops);
	ExecClearTuple(w->slot);
	for (c = 0; c < desc->natts; c++)
	{
		w->slot->tts_values[c] = (Datum) 0;
		w->slot->tts_isnull[c] = true;
	}
	/* as ExecInsert sets it, for a CHECK that reads tableoid */
	w->slot->tts_tableOid = RelationGetRelid(rel);
}

/*
 * Check the row in w's slot against the NOT NULL and CHECK constraints of
 * the table, as ExecConstraints does (it raises their errors); the first
 * time, the CHECK expressions are prepared (by ExecConstraints, in kw's
 * long-lived state) and kept.
 */
void
lockctl_write_constraints(LockctlDirectWrite *w, LockctlKeptWrite *kw)
{
	EState	   *cxt;

	if (w->rri->ri_RelationDesc->rd_att->constr == NULL)
		return;
	if (kw->checks != NULL)
	{
		ExecConstraints(w->rri, w->slot, w->estate);
		return;
	}
	cxt = kept_cxt(kw);
	LOCKCTL_RRI_CHECK_EXPRS(w->rri) = NULL;
	ExecConstraints(w->rri, w->slot, cxt);
	ResetPerTupleExprContext(cxt);
	kw->checks = LOCKCTL_RRI_CHECK_EXPRS(w->rri);
}

/*
 * Insert the row stored in w's slot (a virtual tuple), with its constraints
 * checked and its index entries made, as ExecInsert does for a table
 * without triggers, rules or partitions.  A unique violation raises the
 * index's error.
 */
void
lockctl_write_insert(LockctlDirectWrite *w, LockctlKeptWrite *kw)
{
	Relation	rel = w->rri->ri_RelationDesc;
	List	   *recheck;

	lockctl_write_constraints(w, kw);
	kept_indexes(kw, w->rri, w->slot, w->estate);
	table_tuple_insert(rel, w->slot, w->estate->es_output_cid, 0, NULL);
	recheck = ExecInsertIndexTuples(w->rri, w->slot, w->estate, false, false,
									NULL, NIL, false);
	/* only deferred constraints are listed, and the shape allows none */
	if (recheck != NIL)
		elog(ERROR, "a constraint of \"%s\" is deferred", RelationGetRelationName(rel));
}

/*
 * Update the row at otid (a version the active snapshot sees) to newtup,
 * without waiting, as ExecUpdate does for a table without triggers, rules
 * or partitions: the constraints checked (their errors raised), then
 * heap_update, then the index entries of a version that is not
 * heap-only (its indexes are opened then, those it enters alone).
 * Returns false, having changed nothing, when another transaction has
 * changed, deleted or locked the row, or this one has in
 * a later command: then the statement must do it (it waits, and follows
 * the update as READ COMMITTED does).  w's slot must be a heap tuple's.
 */
bool
lockctl_write_update(LockctlDirectWrite *w, LockctlKeptWrite *kw,
					 ItemPointer otid, HeapTuple newtup)
{
	Relation	rel = w->rri->ri_RelationDesc;
	TM_FailureData tmfd;
	LockTupleMode lockmode;
	TU_UpdateIndexes update_indexes = TU_None;
	TM_Result	result;

	ExecStoreHeapTuple(newtup, w->slot, false);
	w->slot->tts_tableOid = RelationGetRelid(rel);
	lockctl_write_constraints(w, kw);
	result = heap_update(rel, otid, newtup, w->estate->es_output_cid,
						 InvalidSnapshot, false, &tmfd, &lockmode, &update_indexes);
	if (result != TM_Ok)
		return false;
	if (update_indexes == TU_None)
		return true;
	/* the slot again, for the new version's TID */
	ExecStoreHeapTuple(newtup, w->slot, false);
	w->slot->tts_tableOid = RelationGetRelid(rel);
	/* the indexes the new version enters (none for a heap-only one) */
	kept_indexes(kw, w->rri, w->slot, w->estate);
	(void) ExecInsertIndexTuples(w->rri, w->slot, w->estate, true, false,
								 NULL, NIL, update_indexes == TU_Summarizing);
	return true;
}

/* End the write begun by lockctl_write_begin. */
void
lockctl_write_end(LockctlDirectWrite *w)
{
	ExecCloseIndices(w->rri);
	ExecResetTupleTable(w->estate->es_tupleTable, false);
	MemoryContextSwitchTo(w->oldcxt);
	FreeExecutorState(w->estate);
}
