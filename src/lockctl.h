/*-------------------------------------------------------------------------
 *
 * lockctl.h
 *	  Declarations shared by lockctl's source files: the settings, the
 *	  entry points each concept offers to _PG_init and the shared-memory
 *	  hooks, and the argument checks every SQL function uses.
 *
 * src/lockctl.h
 *
 *-------------------------------------------------------------------------
 */
#ifndef LOCKCTL_H
#define LOCKCTL_H

#include "postgres.h"

#include "datatype/timestamp.h"
#include "fmgr.h"
#include "utils/guc.h"

/* Longest resource, owner, holder or idempotency key, in bytes. */
#define LOCKCTL_NAME_MAXLEN		200

/* Settings (lockctl.c) */
extern int	lockctl_max_leases;
extern int	lockctl_expiry_interval;	/* ms */
extern int	lockctl_retention;			/* s, -1 keeps finished holds */
extern int	lockctl_expiry_batch_size;
extern int	lockctl_max_versioned_tables;
extern char *lockctl_worker_databases;	/* '' serves every database */

/* lockctl.c: true once _PG_init ran inside shared_preload_libraries */
extern bool lockctl_preloaded;

/*
 * Each concept offers an Init function that _PG_init calls, and where it
 * keeps state in shared memory, a ShmemRequest (size, LWLock tranches) and a
 * ShmemStartup (create or attach) function.
 */
extern void VersionInit(void);
extern Size VersionShmemSize(void);
extern void VersionShmemRequest(void);
extern void VersionShmemStartup(void);

extern void LeaseInit(void);
extern Size LeaseShmemSize(void);
extern void LeaseShmemRequest(void);
extern void LeaseShmemStartup(void);

extern void ExpiryWorkerInit(void);
extern Size ExpiryWorkerShmemSize(void);
extern void ExpiryWorkerShmemRequest(void);
extern void ExpiryWorkerShmemStartup(void);
extern bool lockctl_check_worker_databases(char **newval, void **extra,
										   GucSource source);

/* request.c: idempotent requests (chains its own shared-memory hooks) */
extern void RequestInit(void);

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

#endif							/* LOCKCTL_H */
