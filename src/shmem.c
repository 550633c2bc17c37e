/*-------------------------------------------------------------------------
 *
 * shmem.c
 *	  The shared-memory hooks, for every concept that keeps state there.
 *
 * A concept registers one LockctlShmemPart from its Init function (during
 * _PG_init): a function that says how much memory it needs, the name of
 * the LWLock tranche it wants (one lock), and a function that creates or
 * attaches to its state.  The first registration chains lockctl into
 * shmem_request_hook and shmem_startup_hook; the hooks then serve every
 * registered part in order.  Sizes are asked for in the request hook, not
 * at registration, because they depend on MaxBackends and
 * max_worker_processes, which are final only then.
 *
 * Each part's startup function takes AddinShmemInitLock itself, as
 * ShmemInitStruct's callers must.
 *
 * src/shmem.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "miscadmin.h"
#include "storage/ipc.h"
#include "storage/lwlock.h"
#include "storage/shmem.h"

#include "lockctl.h"

/*
 * One per module that owns shared memory (versioning, fenced tables, the
 * lease table and its counted holders, sets, watches and notices, requests,
 * the expiry worker); a fixed array because registration happens once, in
 * _PG_init.  Ten are used: room for more.
 */
#define LOCKCTL_MAX_SHMEM_PARTS		16

static const LockctlShmemPart *parts[LOCKCTL_MAX_SHMEM_PARTS];
static int	nparts = 0;

static shmem_request_hook_type prev_shmem_request_hook = NULL;
static shmem_startup_hook_type prev_shmem_startup_hook = NULL;

static void lockctl_shmem_request(void);
static void lockctl_shmem_startup(void);

/*
 * Register part; called from a concept's Init function, in _PG_init.
 */
void
lockctl_shmem_register(const LockctlShmemPart *part)
{
	Assert(process_shared_preload_libraries_in_progress);
	if (nparts >= LOCKCTL_MAX_SHMEM_PARTS)
		elog(ERROR, "too many lockctl shared memory parts");
	if (nparts == 0)
	{
		prev_shmem_request_hook = shmem_request_hook;
		shmem_request_hook = lockctl_shmem_request;
		prev_shmem_startup_hook = shmem_startup_hook;
		shmem_startup_hook = lockctl_shmem_startup;
	}
	parts[nparts++] = part;
}

/*
 * shmem_request_hook: the space and the LWLock of every part.
 */
static void
lockctl_shmem_request(void)
{
	if (prev_shmem_request_hook)
		prev_shmem_request_hook();

	for (int i = 0; i < nparts; i++)
	{
		RequestAddinShmemSpace(parts[i]->size());
		/* a part without a lock of its own is under another part's lock */
		if (parts[i]->tranche != NULL)
			RequestNamedLWLockTranche(parts[i]->tranche, 1);
	}
}

/*
 * shmem_startup_hook: create or attach to every part's state.
 */
static void
lockctl_shmem_startup(void)
{
	if (prev_shmem_startup_hook)
		prev_shmem_startup_hook();

	for (int i = 0; i < nparts; i++)
		parts[i]->startup();
}
