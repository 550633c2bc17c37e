/*-------------------------------------------------------------------------
 *
 * direct_write.h
 *	  Rows of lockctl's own tables inserted and updated without the
 *	  executor, with the table's CHECK constraints and the IndexInfos of
 *	  its indexes made once and kept (direct_write.c).
 *
 * src/direct_write.h
 *
 *-------------------------------------------------------------------------
 */
#ifndef LOCKCTL_DIRECT_WRITE_H
#define LOCKCTL_DIRECT_WRITE_H

#include "postgres.h"

#include "executor/executor.h"
#include "nodes/execnodes.h"
#include "utils/rel.h"

/*
 * What the executor makes again in every statement that writes a table,
 * made once for one table and kept until its owner (a module's shape of
 * that table) is invalidated: the table's CHECK expressions, prepared, and
 * the IndexInfos of its indexes with their predicates and expressions
 * prepared.  *valid is the owner's flag, which its invalidation callbacks
 * clear (lockctl_kept_index_of tells whether an invalidated relation is
 * one of the kept indexes); the owner calls lockctl_kept_reset before it
 * works out the shape again.
 */
typedef struct LockctlKeptWrite
{
	const bool *valid;			/* the owner's "still current" flag */
	EState	   *cxt;			/* where what follows lives, or NULL */
	ExprState **checks;			/* the CHECKs, or NULL until prepared */
	bool		indexed;		/* the indexes below are kept */
	int			nindexes;
	Oid		   *index_oid;		/* RelationGetIndexList's order */
	IndexInfo **index_info;		/* and their IndexInfos */
} LockctlKeptWrite;

/* One write (a call): its executor state, made and freed by begin and end. */
typedef struct LockctlDirectWrite
{
	EState	   *estate;
	ResultRelInfo *rri;
	TupleTableSlot *slot;		/* of the table's descriptor, empty */
	MemoryContext oldcxt;
} LockctlDirectWrite;

extern void lockctl_kept_reset(LockctlKeptWrite *kw, const bool *valid);
extern bool lockctl_kept_index_of(const LockctlKeptWrite *kw, Oid relid);
extern bool lockctl_kept_immediate(Relation rel);
extern void lockctl_write_begin(LockctlDirectWrite *w, Relation rel,
								LockctlKeptWrite *kw,
								const TupleTableSlotOps *ops);
extern void lockctl_write_open_indexes(LockctlDirectWrite *w, LockctlKeptWrite *kw);
extern void lockctl_write_constraints(LockctlDirectWrite *w, LockctlKeptWrite *kw);
extern void lockctl_write_insert(LockctlDirectWrite *w, LockctlKeptWrite *kw);
extern bool lockctl_write_update(LockctlDirectWrite *w, LockctlKeptWrite *kw,
								 ItemPointer otid, HeapTuple newtup);
extern void lockctl_write_end(LockctlDirectWrite *w);

#endif							/* LOCKCTL_DIRECT_WRITE_H */
