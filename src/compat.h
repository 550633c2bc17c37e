/*-------------------------------------------------------------------------
 *
 * compat.h
 *	  Every difference between the PostgreSQL majors lockctl builds against
 *	  (15, 16, 17, 18), in one place.
 *
 * The modules are written against the newest server API; this header
 * supplies it on the older majors, so that no other file tests
 * PG_VERSION_NUM.  When a major is no longer supported, its block here
 * goes, and nothing else changes.
 *
 * src/compat.h
 *
 *-------------------------------------------------------------------------
 */
#ifndef LOCKCTL_COMPAT_H
#define LOCKCTL_COMPAT_H

#include "postgres.h"

#include "catalog/pg_class.h"
#include "catalog/pg_database.h"
#include "catalog/pg_extension.h"
#include "catalog/pg_namespace.h"
#include "catalog/pg_proc.h"
#include "storage/proc.h"
#include "utils/acl.h"
#include "utils/relcache.h"
#include "utils/wait_event.h"

#if PG_VERSION_NUM < 150000
#error "lockctl needs PostgreSQL 15 or later"
#endif

/*
 * 16 moved the varlena macros (VARSIZE_ANY_EXHDR, VARDATA_ANY, ...) out of
 * postgres.h into varatt.h, which older majors do not have.
 */
#if PG_VERSION_NUM >= 160000
#include "varatt.h"
#endif

/*
 * 16 folded the per-catalog ownership and privilege checks
 * (pg_class_ownercheck, pg_database_aclcheck, ...) into object_ownercheck
 * and object_aclcheck, which take the catalog's OID.  Before 16, these
 * dispatch to the old functions, for the catalogs lockctl checks.
 */
#if PG_VERSION_NUM < 160000
static inline bool
object_ownercheck(Oid classid, Oid objectid, Oid roleid)
{
	switch (classid)
	{
		case RelationRelationId:
			return pg_class_ownercheck(objectid, roleid);
		case DatabaseRelationId:
			return pg_database_ownercheck(objectid, roleid);
		case ExtensionRelationId:
			return pg_extension_ownercheck(objectid, roleid);
		case NamespaceRelationId:
			return pg_namespace_ownercheck(objectid, roleid);
	}
	elog(ERROR, "lockctl: no ownership check for catalog %u before PostgreSQL 16",
		 classid);
	return false;				/* keep the compiler quiet */
}

static inline AclResult
object_aclcheck(Oid classid, Oid objectid, Oid roleid, AclMode mode)
{
	switch (classid)
	{
		case RelationRelationId:
			return pg_class_aclcheck(objectid, roleid, mode);
		case DatabaseRelationId:
			return pg_database_aclcheck(objectid, roleid, mode);
		case NamespaceRelationId:
			return pg_namespace_aclcheck(objectid, roleid, mode);
		case ProcedureRelationId:
			return pg_proc_aclcheck(objectid, roleid, mode);
	}
	elog(ERROR, "lockctl: no privilege check for catalog %u before PostgreSQL 16",
		 classid);
	return ACLCHECK_NO_PRIV;	/* keep the compiler quiet */
}
#endif

/*
 * 16 made simple_heap_update and heap_update say which indexes need entries
 * for the new version of the row (none when it is HOT, all of them
 * otherwise, or only the summarizing ones); before 16 the caller asks
 * HeapTupleIsHeapOnly.
 */
#if PG_VERSION_NUM < 160000
#include "access/heapam.h"
#include "access/htup_details.h"

typedef enum TU_UpdateIndexes
{
	TU_None,
	TU_All,
	TU_Summarizing
} TU_UpdateIndexes;

#define simple_heap_update(relation, otid, tup, update_indexes) \
	(simple_heap_update((relation), (otid), (tup)), \
	 *(update_indexes) = HeapTupleIsHeapOnly(tup) ? TU_None : TU_All)

/* heap_update too, its last argument set only when the update is done */
static inline TM_Result
lockctl_heap_update_15(Relation relation, ItemPointer otid, HeapTuple newtup,
					   CommandId cid, Snapshot crosscheck, bool wait,
					   TM_FailureData *tmfd, LockTupleMode *lockmode,
					   TU_UpdateIndexes *update_indexes)
{
	TM_Result	result = heap_update(relation, otid, newtup, cid, crosscheck,
									 wait, tmfd, lockmode);

	if (result == TM_Ok)
		*update_indexes = HeapTupleIsHeapOnly(newtup) ? TU_None : TU_All;
	return result;
}
#define heap_update(relation, otid, newtup, cid, crosscheck, wait, tmfd, \
					lockmode, update_indexes) \
	lockctl_heap_update_15((relation), (otid), (newtup), (cid), (crosscheck), \
						   (wait), (tmfd), (lockmode), (update_indexes))
#endif

/*
 * 18 renamed ResultRelInfo's prepared CHECK expressions, ri_ConstraintExprs,
 * to ri_CheckConstraintExprs; ExecConstraints still prepares them only while
 * they are NULL, as before.
 */
#if PG_VERSION_NUM >= 180000
#define LOCKCTL_RRI_CHECK_EXPRS(rri) ((rri)->ri_CheckConstraintExprs)
#else
#define LOCKCTL_RRI_CHECK_EXPRS(rri) ((rri)->ri_ConstraintExprs)
#endif

/*
 * 18 has CHECK constraints that are NOT ENFORCED: ExecRelCheck prepares no
 * expression for them (their slot stays NULL).  Before 18 every CHECK is
 * enforced.
 */
#if PG_VERSION_NUM >= 180000
#define LOCKCTL_CHECK_ENFORCED(check) ((check)->ccenforced)
#else
#define LOCKCTL_CHECK_ENFORCED(check) true
#endif

/*
 * 16 gave ExecInsertIndexTuples a last argument, onlySummarizing (the
 * index entries of an update that changed only summarized columns); an
 * insert passes false, which is what the older majors always do.
 * executor.h comes first: its declaration must not meet the macro.
 */
#if PG_VERSION_NUM < 160000
#include "executor/executor.h"

#define ExecInsertIndexTuples(resultRelInfo, slot, estate, update, noDupErr, \
							  specConflict, arbiterIndexes, onlySummarizing) \
	ExecInsertIndexTuples((resultRelInfo), (slot), (estate), (update), \
						  (noDupErr), (specConflict), (arbiterIndexes))
#endif

/*
 * 17 replaced MyBackendId (1 to MaxBackends, a backend's slot in the
 * shared invalidation queue) with MyProcNumber, the index of its PGPROC in
 * ProcGlobal->allProcs.  Both before and since, ordinary backends and
 * background workers hold the first MaxBackends PGPROCs, so the index of
 * MyProc is the same number, 0 to MaxBackends - 1, on every major.
 */
#if PG_VERSION_NUM < 170000
#define MyProcNumber (MyProc->pgprocno)
#endif

/*
 * 18 made a deferrable primary key visible to RelationGetPrimaryKeyIndex,
 * for callers that pass deferrable_ok = true; before 18 it never returns
 * one.  lockctl passes false everywhere, which is the older majors'
 * behaviour, so the argument can be dropped for them.  (A macro may call
 * the function of its own name: the preprocessor does not expand it
 * twice.)
 */
#if PG_VERSION_NUM < 180000
#define RelationGetPrimaryKeyIndex(relation, deferrable_ok) \
	RelationGetPrimaryKeyIndex(relation)
#endif

/*
 * 18 lets a library name itself and its version in its magic block, for
 * pg_get_loaded_modules(); before 18 the block says neither.
 */
#if PG_VERSION_NUM < 180000
#define PG_MODULE_MAGIC_EXT(...) PG_MODULE_MAGIC
#endif

/*
 * The wait event a sleep of lockctl's shows in pg_stat_activity.  From 17
 * on, an extension can name its own (WaitEventExtensionNew), so that a
 * waiting acquire shows as "LockctlLeaseWait" rather than the generic
 * "Extension"; before 17, every sleep is PG_WAIT_EXTENSION.  The event is
 * registered at a sleep's first use in each process and kept in *cache
 * (zero until then: a wait event of type Extension is never zero).
 */
static inline uint32
lockctl_wait_event(uint32 *cache, const char *name)
{
#if PG_VERSION_NUM >= 170000
	if (*cache == 0)
		*cache = WaitEventExtensionNew(name);
	return *cache;
#else
	(void) cache;
	(void) name;
	return PG_WAIT_EXTENSION;
#endif
}

#endif							/* LOCKCTL_COMPAT_H */
