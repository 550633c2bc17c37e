/*-------------------------------------------------------------------------
 *
 * lease.c
 *	  Leases with fencing tokens, kept in shared memory: the lease table
 *	  (its setting, its shared memory, its entries) and what every lease
 *	  call does to it: find or make an entry, grant, reclaim, wake the next
 *	  waiter.  The calls themselves are in lease_acquire.c, lease_release.c,
 *	  lease_fence.c and lease_views.c; tokens in lease_token.c.
 *
 * What a lease is
 * ---------------
 * A lease is keyed by (database, resource): resources are per database,
 * like advisory locks.  It belongs to an owner name and a fencing token,
 * not to a session: any session that knows the token can renew, release
 * or fence it.  Expiry is measured on the monotonic clock (CLOCK_BOOTTIME
 * where it exists, which keeps counting while the machine is suspended,
 * else CLOCK_MONOTONIC); wall-clock times are only shown.  Expired leases
 * are reclaimed lazily: by the next acquire of the resource, by a sweep
 * when the table is full, or by release.  Readers never show them.
 *
 * Locking protocol
 * ----------------
 * One LWLock (tranche "lockctl_leases") protects the whole lease table:
 * the hash of LeaseEntry, every field of every entry, the waiter slots,
 * the counters and the token state (epoch, counter).  Readers (the views,
 * lockctl.lease()) take it shared; everything else exclusive.  It is held
 * only for a few comparisons and copies, never while sleeping, and the
 * only other lock taken while holding it is a conditional (never waiting)
 * acquisition of a fence lock, see below; so it cannot take part in a
 * deadlock.  One lock is simpler than partitions and was not a bottleneck
 * at 32 clients on the benchmark machine; partitioning by hash of the key
 * would be the next step if it becomes one.
 *
 * The rest of the protocol is written where it is kept: waiting in
 * lease_acquire.c, fencing in lease_fence.c.  docs/leases.md explains
 * the design.
 *
 * src/lease.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <limits.h>
#include <time.h>

#include "common/hashfn.h"
#include "miscadmin.h"
#include "storage/ipc.h"
#include "storage/lock.h"
#include "storage/lwlock.h"
#include "storage/shmem.h"
#include "utils/guc.h"
#include "utils/hsearch.h"
#include "utils/timestamp.h"

#include "lease.h"

#define LEASE_TRANCHE_NAME		"lockctl_leases"

int			lockctl_max_leases = 4096;

LeaseShared *lease_shared = NULL;
HTAB	   *lease_hash = NULL;

static Size lease_shmem_size(void);
static void lease_shmem_startup(void);
static uint32 lease_key_hash(const void *key, Size keysize);
static int	lease_sweep(void);

static const LockctlShmemPart lease_shmem_part = {
	lease_shmem_size, LEASE_TRANCHE_NAME, lease_shmem_startup
};

/*
 * Microseconds on the monotonic clock the lease expiries are measured with.
 */
int64
lease_now_mono(void)
{
	struct timespec ts;

#ifdef CLOCK_BOOTTIME
	if (clock_gettime(CLOCK_BOOTTIME, &ts) != 0)
#else
	if (clock_gettime(CLOCK_MONOTONIC, &ts) != 0)
#endif
		elog(ERROR, "clock_gettime failed: %m");
	return (int64) ts.tv_sec * USECS_PER_SEC + ts.tv_nsec / 1000;
}

/*
 * Define lockctl.max_leases, ask for the lease table, and watch the end of
 * transactions that fenced a lease.
 */
void
LeaseInit(void)
{
	DefineCustomIntVariable("lockctl.max_leases",
							gettext_noop("Maximum number of live leases, across all databases."),
							gettext_noop("Each lease takes a slot in shared memory; when all are taken, acquire fails with SQLSTATE 53400."),
							&lockctl_max_leases,
							4096, 16, 1024 * 1024,
							PGC_POSTMASTER,
							0,
							NULL, NULL, NULL);
	lockctl_shmem_register(&lease_shmem_part);
	lease_counted_init();
	lease_watch_init();
	lease_fence_init();
}

static Size
lease_shmem_size(void)
{
	Size		size;

	size = MAXALIGN(add_size(offsetof(LeaseShared, waiters),
							 mul_size(MaxBackends, sizeof(LeaseWaiter))));
	size = add_size(size, hash_estimate_size(lockctl_max_leases,
											 sizeof(LeaseEntry)));
	return size;
}

/*
 * Create or attach to the lease table.  The postmaster, which creates it,
 * also advances the token epoch, restores the leases saved at the last
 * clean shutdown, and arranges for them to be saved at the next one.
 */
static void
lease_shmem_startup(void)
{
	bool		found;
	HASHCTL		info;
	Size		size;
	int			i;

	lease_shared = NULL;
	lease_hash = NULL;

	LWLockAcquire(AddinShmemInitLock, LW_EXCLUSIVE);

	size = offsetof(LeaseShared, waiters) + MaxBackends * sizeof(LeaseWaiter);
	lease_shared = ShmemInitStruct("lockctl leases", size, &found);
	if (!found)
	{
		memset(lease_shared, 0, size);
		lease_shared->lock = &(GetNamedLWLockTranche(LEASE_TRANCHE_NAME))->lock;
		for (i = 0; i < MaxBackends; i++)
			lease_shared->waiters[i].entry = NULL;
	}

	memset(&info, 0, sizeof(info));
	info.keysize = sizeof(LeaseKey);
	info.entrysize = sizeof(LeaseEntry);
	info.hash = lease_key_hash;
	info.match = lease_key_match;
	lease_hash = ShmemInitHash("lockctl lease table",
							   lockctl_max_leases, lockctl_max_leases,
							   &info,
							   HASH_ELEM | HASH_FUNCTION | HASH_COMPARE |
							   HASH_FIXED_SIZE);

	if (!found)
	{
		LeaseEpochStartup();
		LeaseRestoreDump();
	}

	LWLockRelease(AddinShmemInitLock);

	if (!IsUnderPostmaster)
		on_shmem_exit(LeaseShutdownDump, (Datum) 0);
}

/*
 * Hash and compare keys by their resource's length, not the whole buffer.
 */
static uint32
lease_key_hash(const void *key, Size keysize)
{
	const LeaseKey *k = (const LeaseKey *) key;

	return hash_bytes((const unsigned char *) k->resource,
					  strlen(k->resource)) ^ murmurhash32(k->dbid);
}

int
lease_key_match(const void *key1, const void *key2, Size keysize)
{
	const LeaseKey *a = (const LeaseKey *) key1;
	const LeaseKey *b = (const LeaseKey *) key2;

	return (a->dbid == b->dbid && strcmp(a->resource, b->resource) == 0) ? 0 : 1;
}

/*
 * Raise an error if the lease table does not exist (cannot happen with the
 * preload check, but a NULL pointer must never be followed).
 */
void
lease_check_shmem(void)
{
	if (lease_shared == NULL || lease_hash == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("lockctl lease table is not available"),
				 errhint("Add 'lockctl' to \"shared_preload_libraries\" and restart the server.")));
}

void
lease_make_key(LeaseKey *key, const char *resource)
{
	key->dbid = MyDatabaseId;
	strlcpy(key->resource, resource, sizeof(key->resource));
}

void
lease_fence_tag(LOCKTAG *tag, const LeaseKey *key)
{
	uint64		h = hash_bytes_extended((const unsigned char *) key->resource,
										strlen(key->resource), 0);

	SET_LOCKTAG_ADVISORY(*tag, key->dbid, (uint32) (h >> 32), (uint32) h,
						 LEASE_FENCE_FIELD4);
}

bool
lease_is_live(LeaseEntry *e, int64 now)
{
	return e->held && now < e->expires_mono;
}

/*
 * Can a new lease be granted as far as fencing goes?  Tries the fence lock
 * without waiting; clears the flag when no transaction holds it.  Caller
 * holds the lease lock exclusively and is in a transaction.
 */
bool
lease_fence_free(LeaseEntry *e)
{
	LOCKTAG		tag;

	if (!e->fenced)
		return true;
	lease_fence_tag(&tag, &e->key);
	switch (LockAcquire(&tag, ExclusiveLock, false, true))
	{
		case LOCKACQUIRE_NOT_AVAIL:
			return false;
		case LOCKACQUIRE_OK:
			/* nobody holds it: no fencing transaction is left */
			LockRelease(&tag, ExclusiveLock, false);
			e->fenced = false;
			return true;
		default:
			/* our own transaction fenced it: still fenced for the others */
			LockRelease(&tag, ExclusiveLock, false);
			return true;
	}
}

/*
 * Find or create the entry for key.  Caller holds the lease lock
 * exclusively.  A full table is swept of expired leases once; if it is
 * still full, that is an error.
 */
LeaseEntry *
lease_enter(const LeaseKey *key)
{
	LeaseEntry *e;
	bool		found;

	e = hash_search(lease_hash, key, HASH_FIND, NULL);
	if (e != NULL)
		return e;

	if (lease_shared->nentries >= lockctl_max_leases && lease_sweep() == 0)
	{
		lease_shared->stats.full++;
		LWLockRelease(lease_shared->lock);
		ereport(ERROR,
				(errcode(ERRCODE_CONFIGURATION_LIMIT_EXCEEDED),
				 errmsg("too many leases"),
				 errdetail("All %d lease slots are in use.", lockctl_max_leases),
				 errhint("Release leases that are no longer needed, or increase \"lockctl.max_leases\" and restart the server.")));
	}

	e = hash_search(lease_hash, key, HASH_ENTER_NULL, &found);
	if (e == NULL)
	{
		lease_shared->stats.full++;
		LWLockRelease(lease_shared->lock);
		ereport(ERROR,
				(errcode(ERRCODE_CONFIGURATION_LIMIT_EXCEEDED),
				 errmsg("too many leases"),
				 errdetail("The shared lease table has no room left."),
				 errhint("Increase \"lockctl.max_leases\" and restart the server.")));
	}
	Assert(!found);
	lease_shared->nentries++;
	e->held = false;
	e->fenced = false;
	e->owner[0] = '\0';
	e->token = 0;
	e->roleid = InvalidOid;
	e->acquired_at = 0;
	e->expires_mono = 0;
	e->nwaiters = 0;
	dlist_init(&e->waiters);
	e->permits = 1;
	e->nholders = 0;
	dlist_init(&e->holders);
	return e;
}

/*
 * Remove the entry if nothing needs it any more.  Caller holds the lease
 * lock exclusively.
 */
void
lease_maybe_remove(LeaseEntry *e)
{
	if (e->held || e->nwaiters > 0 || e->fenced || e->nholders > 0)
		return;
	hash_search(lease_hash, &e->key, HASH_REMOVE, NULL);
	lease_shared->nentries--;
}

/*
 * Reclaim every entry whose lease expired (or was released) and that nobody
 * waits for.  Returns how many were freed.  Caller holds the lease lock
 * exclusively and is in a transaction.
 */
static int
lease_sweep(void)
{
	HASH_SEQ_STATUS seq;
	LeaseEntry *e;
	int64		now = lease_now_mono();
	int			freed = 0;

	hash_seq_init(&seq, lease_hash);
	while ((e = hash_seq_search(&seq)) != NULL)
	{
		if (lease_is_live(e, now) || e->nwaiters > 0)
			continue;
		/* counted: free the expired holders; live ones keep the entry */
		if (e->nholders > 0)
		{
			lease_counted_reclaim(e, now);
			if (e->nholders > 0)
				continue;
		}
		if (!lease_fence_free(e))
			continue;
		if (e->held)
		{
			e->held = false;
			lease_shared->stats.expiries++;
			lease_watch_end(e->key.dbid, e->token, e->roleid,
							LEASE_END_EXPIRED);
		}
		hash_search(lease_hash, &e->key, HASH_REMOVE, NULL);
		lease_shared->nentries--;
		freed++;
	}
	return freed;
}

/*
 * Grant the lease to owner if possible: the same owner, asking as the same
 * role that took it, holding a live lease gets its token back with the
 * expiry pushed out; otherwise a lease that
 * is free (never held, released or expired, and not fenced) is granted with
 * a new token if may_take (the caller is first in line).  Returns the token,
 * or 0.  Caller holds the lease lock exclusively.
 */
int64
lease_try_grant(LeaseEntry *e, const char *owner, int64 ttl_us, bool may_take,
				int64 now)
{
	if (lease_is_live(e, now))
	{
		/*
		 * A safe retry needs the same owner AND the same role: the owner
		 * string is not a secret, and handing the live token to another
		 * role would let it renew, release or fence a lease it does not
		 * hold.  Another role is a contender like any other.
		 */
		if (strcmp(e->owner, owner) == 0 && e->roleid == GetUserId())
		{
			e->expires_mono = Max(e->expires_mono, now + ttl_us);
			lease_shared->stats.regrants++;
			return e->token;
		}
		return 0;
	}
	if (!may_take || !lease_fence_free(e))
		return 0;
	/* shared holders (lease_shared.c) keep an exclusive lease out */
	if (e->nholders > 0 && lease_shared_block_exclusive(e, now))
		return 0;

	/* token first: it may fail, and then nothing has changed */
	{
		int64		token = LeaseNextToken();

		if (e->held)
		{
			lease_shared->stats.expiries++;
			lease_watch_end(e->key.dbid, e->token, e->roleid,
							LEASE_END_TAKEN_OVER);
		}
		e->held = true;
		strlcpy(e->owner, owner, sizeof(e->owner));
		e->token = token;
		e->roleid = GetUserId();
		e->acquired_at = GetCurrentTimestamp();
		e->expires_mono = now + ttl_us;
		lease_shared->stats.grants++;
		return token;
	}
}

/*
 * Set the latch of the first waiter, who may now be able to take the lease.
 * Caller holds the lease lock.
 */
void
lease_wake_head(LeaseEntry *e)
{
	if (!dlist_is_empty(&e->waiters))
	{
		LeaseWaiter *w = dlist_container(LeaseWaiter, node,
										 dlist_head_node(&e->waiters));

		SetLatch(w->latch);
	}
}

/*
 * The wall-clock time at which e expires, for display.
 */
TimestampTz
lease_wall_expiry(LeaseEntry *e, int64 now_mono, TimestampTz now_wall)
{
	return now_wall + (e->expires_mono - now_mono);
}
