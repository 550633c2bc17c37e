/*-------------------------------------------------------------------------
 *
 * lockctl.h
 *	  Declarations shared by every concept of lockctl: the Init function each
 *	  offers to _PG_init, the shared-memory registration (shmem.c), the
 *	  limit on names, and the argument checks every SQL function uses
 *	  (args.c).  A concept's own state and settings are declared in its own
 *	  header (version.h, lease.h, worker.h), never here.
 *
 * src/lockctl.h
 *
 *-------------------------------------------------------------------------
 */
#ifndef LOCKCTL_H
#define LOCKCTL_H

#include "postgres.h"

#include "access/htup.h"
#include "access/tupdesc.h"
#include "datatype/timestamp.h"
#include "fmgr.h"
#include "storage/lockdefs.h"

#include "compat.h"

/*
 * Longest resource, owner, holder or idempotency key, in bytes.  The SQL
 * functions read it through lockctl_internal.name_max_bytes().
 */
#define LOCKCTL_NAME_MAXLEN		200

/*
 * Each concept's Init, called by _PG_init (which runs only inside
 * shared_preload_libraries): defines its settings, registers its shared
 * memory and its hooks.
 */
extern void VersionInit(void);	/* version_stats.c */
extern void LeaseInit(void);	/* lease.c */
extern void FenceTableInit(void);	/* fence_table.c */
extern void ReserveCapsInit(void);	/* reserve_caps.c */
extern void KeptExprsInit(void);	/* kept_exprs.c */
extern void RequestInit(void);	/* request.c */
extern void WorkerInit(void);	/* worker.c */

/*
 * A concept's part of shared memory (shmem.c): its size, computed once
 * MaxBackends is known; the name of its LWLock tranche (one lock; NULL for
 * a part protected by another part's lock); and the
 * function that creates or attaches to it at shmem startup.
 */
typedef struct LockctlShmemPart
{
	Size		(*size) (void);
	const char *tranche;
	void		(*startup) (void);
} LockctlShmemPart;

extern void lockctl_shmem_register(const LockctlShmemPart *part);

/* args.c: argument checks shared by every SQL entry point */
extern char *lockctl_arg_name(FunctionCallInfo fcinfo, int argno,
							  const char *argname, bool allow_null);
extern int64 lockctl_arg_interval_us(FunctionCallInfo fcinfo, int argno,
									 const char *argname,
									 int64 min_us, int64 max_us);
extern int64 lockctl_arg_int64(FunctionCallInfo fcinfo, int argno,
							   const char *argname, int64 min, int64 max);
extern Interval *lockctl_us_to_interval(int64 us);
extern void lockctl_arg_not_null(FunctionCallInfo fcinfo, int argno,
								 const char *argname);
extern Oid	lockctl_fn_owner(FunctionCallInfo fcinfo);

/* direct.c: writing lockctl's own tables without the executor */
extern Relation lockctl_direct_open(Oid relid, LOCKMODE lockmode);
extern Relation lockctl_direct_open_named(const char *relname, Oid *relid,
										  Oid *nspid, LOCKMODE lockmode);
extern bool lockctl_direct_plain(Relation rel, int maxnatts);
typedef struct LockctlDirectColumn
{
	const char *name;
	Oid			type;			/* InvalidOid: the caller checks it */
} LockctlDirectColumn;
extern bool lockctl_direct_columns(Relation rel, const LockctlDirectColumn *cols,
								   int ncols, int *attnum);
extern bool lockctl_direct_index_plain(HeapTuple indextup, bool partial_ok);
extern bool lockctl_direct_is_ours(Oid funcid, void *fn);
/* a C function's composite result: its descriptor, kept between calls */
typedef struct LockctlResultDesc
{
	Oid			fn_oid;			/* the function it was built for */
	uint64		gen;			/* pg_proc invalidations seen when built */
	TupleDesc	desc;			/* in TopMemoryContext, blessed; or NULL */
} LockctlResultDesc;
extern TupleDesc lockctl_result_desc(FunctionCallInfo fcinfo, LockctlResultDesc *cache);
/* a function of lockctl's, looked up by name; its OID kept until pg_proc changes */
#define LOCKCTL_FUNC_MAX_ARGS 7
typedef struct LockctlFuncRef
{
	const char *schema;
	const char *name;
	int			nargs;
	Oid			argtypes[LOCKCTL_FUNC_MAX_ARGS];
	uint64		gen;			/* pg_proc invalidations seen at the look-up; 0: none yet */
	Oid			oid;			/* what it found, or InvalidOid */
} LockctlFuncRef;
extern Oid	lockctl_func_oid(LockctlFuncRef *f, bool missing_ok);
extern uint64 lockctl_proc_gen(void);

#endif							/* LOCKCTL_H */
