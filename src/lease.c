/*-------------------------------------------------------------------------
 *
 * lease.c
 *	  Leases with fencing tokens, kept in shared memory: acquire (with a
 *	  first-come-first-served wait that sleeps on the backend's latch),
 *	  renew, release, fence, force_release, and the functions behind the
 *	  views lockctl.leases, lockctl.lease_waiters and lockctl.lease_stats.
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
 * Waiting: a backend whose acquire cannot be granted and that may wait
 * puts its slot (lease_shared->waiters[MyBackendId - 1]) at the tail of the
 * entry's waiter list and sleeps on its own latch, with a timeout at the
 * earlier of the end of its wait and the holder's expiry.  Only the head of
 * the list may take a free lease (first come, first served; a new acquire
 * that does not wait also yields to queued waiters).  Whoever makes the
 * lease free (release, force_release, a head that gives up, the end of a
 * fencing transaction) sets the head's latch; so does a head that leaves
 * the line with the lease, and a renew, because they change the expiry the
 * new head must sleep until.  An expiry itself needs no wake-up because
 * the head's timeout is the expiry.  A waiter leaves the list on
 * grant, on timeout, and on error or cancel (PG_CATCH), and at backend
 * exit (before_shmem_exit) for FATAL exits, so nothing is left behind.
 * An entry is removed from the hash only when nobody holds it, nobody
 * waits for it and no transaction can hold its fence lock, so a waiter's
 * entry pointer stays valid while it is queued.
 *
 * Fencing: fence(resource, token) takes a transaction-level ExclusiveLock
 * in PostgreSQL's lock manager on an advisory-space tag of lockctl's own
 * (database, 64-bit hash of the resource, field4 = LEASE_FENCE_FIELD4), so
 * it shows in pg_locks, is seen by the deadlock detector and is released
 * at commit or abort.  It takes that lock first (it may wait there for an
 * other transaction of the same holder), and only then, under the lease
 * lock, checks the token and sets entry->fenced.  A grant that finds
 * entry->fenced set first tries that lock conditionally while holding the
 * lease lock: if it is busy the lease is not granted; if it was free the
 * flag is cleared.  So once fence() returned, no grant can happen until the
 * fencing transaction ends, even if the lease expires meanwhile; and a
 * grant that slipped in before fence() set the flag makes fence() fail,
 * because the token changed.  Two resources whose hashes collide share a
 * fence lock: that can only delay a grant, never allow a wrong one.
 * A resource release callback wakes the head waiter of every resource this
 * backend fenced once the transaction's locks are gone; as a safety net (a
 * fencing backend that dies, a prepared transaction), a waiter of a lease
 * that is free but fenced re-checks at least every LEASE_FENCE_RECHECK_MS.
 *
 * src/lease.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <time.h>

#include "catalog/pg_authid.h"
#include "common/hashfn.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "storage/ipc.h"
#include "storage/latch.h"
#include "storage/lock.h"
#include "storage/lwlock.h"
#include "storage/proc.h"
#include "storage/shmem.h"
#include "utils/acl.h"
#include "utils/builtins.h"
#include "utils/hsearch.h"
#include "utils/memutils.h"
#include "utils/resowner.h"
#include "utils/timestamp.h"
#include "utils/wait_event.h"

#include "lease.h"

/* locktag_field4 of the fence locks: "LC"; pg_advisory_* use 1 and 2 */
#define LEASE_FENCE_FIELD4		0x4C43

/* the longest a waiter sleeps on a free but fenced lease before looking */
#define LEASE_FENCE_RECHECK_MS	100

/* limits of the interval arguments */
#define LEASE_TTL_MIN_US		INT64CONST(1000)	/* 1 ms */
#define LEASE_TTL_MAX_US		(INT64CONST(365) * USECS_PER_DAY)
#define LEASE_WAIT_MAX_US		USECS_PER_DAY
#define LEASE_TTL_DEFAULT_US	(30 * USECS_PER_SEC)

#define LEASE_TRANCHE_NAME		"lockctl_leases"

LeaseShared *lease_shared = NULL;
HTAB	   *lease_hash = NULL;

/* resources this backend fenced in the current transaction, for wake-ups */
typedef struct LeaseFenced
{
	LeaseKey	key;
} LeaseFenced;

static LeaseFenced *fenced_list = NULL;
static int	fenced_count = 0;
static int	fenced_alloc = 0;

static bool exit_callback_registered = false;

/* the waiter slot of this backend while it is queued, else NULL */
static LeaseWaiter *my_waiter = NULL;

static uint32 lease_key_hash(const void *key, Size keysize);
static int	lease_key_match(const void *key1, const void *key2, Size keysize);
static void lease_check_shmem(void);
static void lease_make_key(LeaseKey *key, const char *resource);
static void lease_fence_tag(LOCKTAG *tag, const LeaseKey *key);
static bool lease_is_live(LeaseEntry *e, int64 now);
static bool lease_fence_free(LeaseEntry *e);
static LeaseEntry *lease_enter(const LeaseKey *key);
static void lease_maybe_remove(LeaseEntry *e);
static int	lease_sweep(void);
static int64 lease_try_grant(LeaseEntry *e, const char *owner, int64 ttl_us,
							 bool may_take, int64 now);
static void lease_wake_head(LeaseEntry *e);
static void lease_dequeue(void);
static void lease_leave_queue(void);
static void lease_exit_callback(int code, Datum arg);
static void lease_xact_release(ResourceReleasePhase phase, bool isCommit,
							   bool isTopLevel, void *arg);
static void lease_remember_fence(const LeaseKey *key);
static TimestampTz lease_wall_expiry(LeaseEntry *e, int64 now_mono,
									 TimestampTz now_wall);
static int64 lease_wait_loop(LeaseEntry *e, LeaseWaiter *w,
							 const char *owner, int64 ttl_us, int64 deadline);
static int64 lease_wait(LeaseEntry *e, LeaseWaiter *w, const char *owner,
						int64 ttl_us, int64 deadline);
typedef struct LeaseRow LeaseRow;
static int	lease_collect(const char *resource, LeaseRow **rows_out);
static bool lease_token_visible(Oid roleid, bool see_all);
static void lease_emit_rows(FunctionCallInfo fcinfo, const char *resource,
							bool one_resource);

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

void
LeaseInit(void)
{
	RegisterResourceReleaseCallback(lease_xact_release, NULL);
}

Size
LeaseShmemSize(void)
{
	Size		size;

	size = MAXALIGN(add_size(offsetof(LeaseShared, waiters),
							 mul_size(MaxBackends, sizeof(LeaseWaiter))));
	size = add_size(size, hash_estimate_size(lockctl_max_leases,
											 sizeof(LeaseEntry)));
	return size;
}

void
LeaseShmemRequest(void)
{
	RequestNamedLWLockTranche(LEASE_TRANCHE_NAME, 1);
}

/*
 * Create or attach to the lease table.  The postmaster, which creates it,
 * also advances the token epoch, restores the leases saved at the last
 * clean shutdown, and arranges for them to be saved at the next one.
 */
void
LeaseShmemStartup(void)
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

static int
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
static void
lease_check_shmem(void)
{
	if (lease_shared == NULL || lease_hash == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("lockctl lease table is not available"),
				 errhint("Add 'lockctl' to \"shared_preload_libraries\" and restart the server.")));
}

static void
lease_make_key(LeaseKey *key, const char *resource)
{
	key->dbid = MyDatabaseId;
	strlcpy(key->resource, resource, sizeof(key->resource));
}

static void
lease_fence_tag(LOCKTAG *tag, const LeaseKey *key)
{
	uint64		h = hash_bytes_extended((const unsigned char *) key->resource,
										strlen(key->resource), 0);

	SET_LOCKTAG_ADVISORY(*tag, key->dbid, (uint32) (h >> 32), (uint32) h,
						 LEASE_FENCE_FIELD4);
}

/*
 * The one liveness rule: held, not expired, and granted in the server's
 * current era (lease_token.c), so that no lease of an older timeline or of
 * another copy of the data directory is ever live here.
 */
static bool
lease_is_live(LeaseEntry *e, int64 now)
{
	return e->held && now < e->expires_mono && LeaseTokenLive(e->token);
}

/*
 * Can a new lease be granted as far as fencing goes?  Tries the fence lock
 * without waiting; clears the flag when no transaction holds it.  Caller
 * holds the lease lock exclusively and is in a transaction.
 */
static bool
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
static LeaseEntry *
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
	return e;
}

/*
 * Remove the entry if nothing needs it any more.  Caller holds the lease
 * lock exclusively.
 */
static void
lease_maybe_remove(LeaseEntry *e)
{
	if (e->held || e->nwaiters > 0 || e->fenced)
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
		if (!lease_fence_free(e))
			continue;
		if (e->held)
		{
			e->held = false;
			lease_shared->stats.expiries++;
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
static int64
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

	/* token first: it may fail, and then nothing has changed */
	{
		int64		token = LeaseNextToken();

		if (e->held)
			lease_shared->stats.expiries++;
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
static void
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
 * Take this backend's slot off its entry's waiter list.  Caller holds the
 * lease lock exclusively.  If it was first in line and the lease is free,
 * the next one in line is woken; an entry nobody needs is removed.
 */
static void
lease_dequeue(void)
{
	LeaseWaiter *w = my_waiter;
	LeaseEntry *e;
	bool		was_head;

	if (w == NULL || w->entry == NULL)
	{
		my_waiter = NULL;
		return;
	}
	e = w->entry;
	was_head = (dlist_head_node(&e->waiters) == &w->node);
	dlist_delete(&w->node);
	e->nwaiters--;
	w->entry = NULL;
	my_waiter = NULL;

	/*
	 * The next in line must look again: the lease may be free now, or it
	 * may have been taken by the one leaving, with an expiry the next one
	 * has not seen yet (it sleeps until the expiry it last saw).
	 */
	if (was_head)
		lease_wake_head(e);
	lease_maybe_remove(e);
}

/*
 * Leave the waiter list from an error or exit path, where the lease lock
 * may or may not be held already.
 */
static void
lease_leave_queue(void)
{
	bool		held;

	if (my_waiter == NULL || lease_shared == NULL)
		return;
	held = LWLockHeldByMeInMode(lease_shared->lock, LW_EXCLUSIVE);
	if (!held)
	{
		if (LWLockHeldByMe(lease_shared->lock))
			LWLockRelease(lease_shared->lock);
		LWLockAcquire(lease_shared->lock, LW_EXCLUSIVE);
	}
	lease_dequeue();
	if (!held)
		LWLockRelease(lease_shared->lock);
}

static void
lease_exit_callback(int code, Datum arg)
{
	lease_leave_queue();
}

/*
 * Resource release callback: once a transaction's (or subtransaction's)
 * locks are gone, wake the first waiter of every resource it fenced.
 */
static void
lease_xact_release(ResourceReleasePhase phase, bool isCommit, bool isTopLevel,
				   void *arg)
{
	int			i;

	if (phase != RESOURCE_RELEASE_AFTER_LOCKS || fenced_count == 0 ||
		lease_shared == NULL)
		return;

	LWLockAcquire(lease_shared->lock, LW_SHARED);
	for (i = 0; i < fenced_count; i++)
	{
		LeaseEntry *e = hash_search(lease_hash, &fenced_list[i].key,
									HASH_FIND, NULL);

		if (e != NULL && e->fenced)
			lease_wake_head(e);
	}
	LWLockRelease(lease_shared->lock);

	if (isTopLevel)
		fenced_count = 0;
}

static void
lease_remember_fence(const LeaseKey *key)
{
	int			i;

	for (i = 0; i < fenced_count; i++)
		if (lease_key_match(&fenced_list[i].key, key, sizeof(LeaseKey)) == 0)
			return;
	if (fenced_count >= fenced_alloc)
	{
		int			n = Max(8, fenced_alloc * 2);

		if (fenced_list == NULL)
			fenced_list = MemoryContextAlloc(TopMemoryContext,
											 n * sizeof(LeaseFenced));
		else
			fenced_list = repalloc(fenced_list, n * sizeof(LeaseFenced));
		fenced_alloc = n;
	}
	memcpy(&fenced_list[fenced_count++].key, key, sizeof(LeaseKey));
}

static TimestampTz
lease_wall_expiry(LeaseEntry *e, int64 now_mono, TimestampTz now_wall)
{
	return now_wall + (e->expires_mono - now_mono);
}

/*
 * The waiting part of acquire: w is queued on e.  Returns the token, or 0
 * when the wait ran out; either way w has left the queue.
 */
static int64
lease_wait_loop(LeaseEntry *e, LeaseWaiter *w, const char *owner,
				int64 ttl_us, int64 deadline)
{
	int64		token;
	int64		now;

	for (;;)
	{
		long		timeout_ms;
		int64		sleep_until;

		ResetLatch(MyLatch);
		CHECK_FOR_INTERRUPTS();
		LeaseTokenCheck();

		LWLockAcquire(lease_shared->lock, LW_EXCLUSIVE);
		now = lease_now_mono();
		token = lease_try_grant(e, owner, ttl_us,
								dlist_head_node(&e->waiters) == &w->node,
								now);
		if (token != 0 || now >= deadline)
		{
			if (token == 0)
				lease_shared->stats.timeouts++;
			lease_dequeue();
			LWLockRelease(lease_shared->lock);
			break;
		}
		sleep_until = deadline;
		if (lease_is_live(e, now))
			sleep_until = Min(sleep_until, e->expires_mono);
		else if (e->fenced)
			sleep_until = Min(sleep_until,
							  now + LEASE_FENCE_RECHECK_MS * INT64CONST(1000));
		LWLockRelease(lease_shared->lock);

		/* round up, so as not to wake just before the moment */
		timeout_ms = (long) ((sleep_until - now + 999) / 1000);
		if (timeout_ms < 1)
			timeout_ms = 1;
		(void) WaitLatch(MyLatch,
						 WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
						 timeout_ms, PG_WAIT_EXTENSION);
	}
	return token;
}

/*
 * lease_wait_loop, leaving the queue on error or cancel.  Kept apart from
 * its caller so that no local variable lives across the setjmp.
 */
static pg_noinline int64
lease_wait(LeaseEntry *e, LeaseWaiter *w, const char *owner, int64 ttl_us,
		   int64 deadline)
{
	volatile int64 token = 0;

	PG_TRY();
	{
		token = lease_wait_loop(e, w, owner, ttl_us, deadline);
	}
	PG_CATCH();
	{
		lease_leave_queue();
		PG_RE_THROW();
	}
	PG_END_TRY();
	return token;
}

/*
 * lockctl.acquire(resource text, owner text, ttl interval, wait interval)
 * returns bigint: a fencing token, or NULL if not granted within wait.
 */
PG_FUNCTION_INFO_V1(lockctl_acquire);
Datum
lockctl_acquire(PG_FUNCTION_ARGS)
{
	char	   *resource = lockctl_arg_name(fcinfo, 0, "resource", false);
	char	   *owner = lockctl_arg_name(fcinfo, 1, "owner", false);
	int64		ttl_us = lockctl_arg_interval_us(fcinfo, 2, "ttl",
												 LEASE_TTL_MIN_US,
												 LEASE_TTL_MAX_US);
	int64		wait_us = lockctl_arg_interval_us(fcinfo, 3, "wait", 0,
												  LEASE_WAIT_MAX_US);
	LeaseKey	key;
	LeaseEntry *e;
	LeaseWaiter *w;
	int64		now;
	int64		deadline;
	int64		token;

	PreventCommandDuringRecovery("lockctl.acquire()");
	lease_check_shmem();
	LeaseTokenCheck();
	lease_make_key(&key, resource);

	LWLockAcquire(lease_shared->lock, LW_EXCLUSIVE);
	e = lease_enter(&key);
	now = lease_now_mono();
	deadline = now + wait_us;
	token = lease_try_grant(e, owner, ttl_us, e->nwaiters == 0, now);
	if (token != 0)
	{
		LWLockRelease(lease_shared->lock);
		PG_RETURN_INT64(token);
	}
	if (lease_is_live(e, now))
		lease_shared->stats.conflicts++;
	if (wait_us == 0)
	{
		lease_shared->stats.timeouts++;
		lease_maybe_remove(e);
		LWLockRelease(lease_shared->lock);
		PG_RETURN_NULL();
	}

	/* get in line */
	if (!exit_callback_registered)
	{
		before_shmem_exit(lease_exit_callback, (Datum) 0);
		exit_callback_registered = true;
	}
	Assert(MyBackendId >= 1 && MyBackendId <= MaxBackends);
	w = &lease_shared->waiters[MyBackendId - 1];
	w->latch = MyLatch;
	w->pid = MyProcPid;
	w->entry = e;
	w->since = GetCurrentTimestamp();
	strlcpy(w->owner, owner, sizeof(w->owner));
	dlist_push_tail(&e->waiters, &w->node);
	e->nwaiters++;
	my_waiter = w;
	lease_shared->stats.waits++;
	LWLockRelease(lease_shared->lock);

	token = lease_wait(e, w, owner, ttl_us, deadline);

	if (token == 0)
		PG_RETURN_NULL();
	PG_RETURN_INT64(token);
}

/*
 * lockctl.renew(resource text, token bigint, ttl interval) returns
 * timestamptz: the new expiry.  The lease must still be live and held by
 * token; otherwise it was lost, and that is a 40001.
 */
PG_FUNCTION_INFO_V1(lockctl_renew);
Datum
lockctl_renew(PG_FUNCTION_ARGS)
{
	char	   *resource = lockctl_arg_name(fcinfo, 0, "resource", false);
	int64		token = lockctl_arg_int64(fcinfo, 1, "token", 1, PG_INT64_MAX);
	int64		ttl_us = lockctl_arg_interval_us(fcinfo, 2, "ttl",
												 LEASE_TTL_MIN_US,
												 LEASE_TTL_MAX_US);
	LeaseKey	key;
	LeaseEntry *e;
	int64		now;
	int64		current = 0;
	bool		expired = false;
	TimestampTz expires;

	PreventCommandDuringRecovery("lockctl.renew()");
	lease_check_shmem();
	lease_make_key(&key, resource);

	LWLockAcquire(lease_shared->lock, LW_EXCLUSIVE);
	e = hash_search(lease_hash, &key, HASH_FIND, NULL);
	now = lease_now_mono();
	if (e != NULL && lease_is_live(e, now) && e->token == token)
	{
		e->expires_mono = now + ttl_us;
		lease_shared->stats.renewals++;
		/* the first waiter sleeps until the old expiry: it may be sooner now */
		lease_wake_head(e);
		expires = lease_wall_expiry(e, now, GetCurrentTimestamp());
		LWLockRelease(lease_shared->lock);
		PG_RETURN_TIMESTAMPTZ(expires);
	}
	if (e != NULL && e->held)
	{
		current = e->token;
		expired = !lease_is_live(e, now);
	}
	LWLockRelease(lease_shared->lock);

	ereport(ERROR,
			(errcode(ERRCODE_T_R_SERIALIZATION_FAILURE),
			 errmsg("lease \"%s\" is no longer held by token " INT64_FORMAT,
					resource, token),
			 current == 0 ?
			 errdetail("No lease on \"%s\" is live.", resource) :
			 expired && current == token ?
			 errdetail("The lease expired before it was renewed.") :
			 errdetail("The current token is " INT64_FORMAT "%s.", current,
					   expired ? " (expired)" : ""),
			 errhint("Acquire the lease again and redo the work it protects.")));
	PG_RETURN_NULL();			/* not reached */
}

/*
 * lockctl.release(resource text, token bigint) returns boolean: true if the
 * lease was live and held by token and is now free; false if it was not
 * (already released, expired, or held by another token).
 */
PG_FUNCTION_INFO_V1(lockctl_release);
Datum
lockctl_release(PG_FUNCTION_ARGS)
{
	char	   *resource = lockctl_arg_name(fcinfo, 0, "resource", false);
	int64		token = lockctl_arg_int64(fcinfo, 1, "token", 1, PG_INT64_MAX);
	LeaseKey	key;
	LeaseEntry *e;
	int64		now;
	bool		released = false;

	PreventCommandDuringRecovery("lockctl.release()");
	lease_check_shmem();
	lease_make_key(&key, resource);

	LWLockAcquire(lease_shared->lock, LW_EXCLUSIVE);
	e = hash_search(lease_hash, &key, HASH_FIND, NULL);
	now = lease_now_mono();
	if (e != NULL && e->held && e->token == token)
	{
		released = lease_is_live(e, now);
		e->held = false;
		if (released)
			lease_shared->stats.releases++;
		else
			lease_shared->stats.expiries++;
		lease_wake_head(e);
		lease_maybe_remove(e);
	}
	LWLockRelease(lease_shared->lock);

	PG_RETURN_BOOL(released);
}

/*
 * lockctl.fence(resource text, token bigint): inside the transaction that
 * writes the data the lease protects, check that token is the live
 * holder's, and keep the lease from being granted to anyone else until the
 * transaction ends.  A stale token is a 40001.
 */
PG_FUNCTION_INFO_V1(lockctl_fence);
Datum
lockctl_fence(PG_FUNCTION_ARGS)
{
	char	   *resource = lockctl_arg_name(fcinfo, 0, "resource", false);
	int64		token = lockctl_arg_int64(fcinfo, 1, "token", 1, PG_INT64_MAX);
	LeaseKey	key;
	LOCKTAG		tag;
	LeaseEntry *e;
	int64		now;
	int64		current = 0;
	bool		expired = false;

	PreventCommandDuringRecovery("lockctl.fence()");
	lease_check_shmem();
	lease_make_key(&key, resource);

	/* the fence lock first; this may wait for another fencing transaction */
	lease_fence_tag(&tag, &key);
	(void) LockAcquire(&tag, ExclusiveLock, false, false);

	LWLockAcquire(lease_shared->lock, LW_EXCLUSIVE);
	e = hash_search(lease_hash, &key, HASH_FIND, NULL);
	now = lease_now_mono();
	if (e != NULL && lease_is_live(e, now) && e->token == token)
	{
		e->fenced = true;
		lease_shared->stats.fences++;
		LWLockRelease(lease_shared->lock);
		lease_remember_fence(&key);
		PG_RETURN_VOID();
	}
	if (e != NULL && e->held)
	{
		current = e->token;
		expired = !lease_is_live(e, now);
	}
	lease_shared->stats.fence_failures++;
	LWLockRelease(lease_shared->lock);

	/* the fence lock goes with the transaction this error aborts */
	ereport(ERROR,
			(errcode(ERRCODE_T_R_SERIALIZATION_FAILURE),
			 errmsg("fencing token " INT64_FORMAT " for lease \"%s\" is stale",
					token, resource),
			 current == 0 ?
			 errdetail("No lease on \"%s\" is live.", resource) :
			 expired && current == token ?
			 errdetail("The lease of token " INT64_FORMAT " expired.", token) :
			 errdetail("The current token is " INT64_FORMAT "%s.", current,
					   expired ? " (expired)" : ""),
			 errhint("Do not write: another holder may have taken over. Acquire the lease again and redo the work.")));
	PG_RETURN_VOID();			/* not reached */
}

/*
 * lockctl.force_release(resource text) returns boolean: end the live lease
 * on resource in this database whoever holds it.  Administrative: EXECUTE
 * is revoked from PUBLIC by the install script.
 */
PG_FUNCTION_INFO_V1(lockctl_force_release);
Datum
lockctl_force_release(PG_FUNCTION_ARGS)
{
	char	   *resource = lockctl_arg_name(fcinfo, 0, "resource", false);
	LeaseKey	key;
	LeaseEntry *e;
	bool		released = false;

	PreventCommandDuringRecovery("lockctl.force_release()");
	lease_check_shmem();
	lease_make_key(&key, resource);

	LWLockAcquire(lease_shared->lock, LW_EXCLUSIVE);
	e = hash_search(lease_hash, &key, HASH_FIND, NULL);
	if (e != NULL && e->held)
	{
		released = lease_is_live(e, lease_now_mono());
		e->held = false;
		if (released)
			lease_shared->stats.force_releases++;
		else
			lease_shared->stats.expiries++;
		lease_wake_head(e);
		lease_maybe_remove(e);
	}
	LWLockRelease(lease_shared->lock);

	if (released)
		ereport(LOG,
				(errmsg("lease \"%s\" was force-released by role \"%s\"",
						resource, GetUserNameFromId(GetUserId(), true))));
	PG_RETURN_BOOL(released);
}

/*
 * A copy of one live lease, taken under the lease lock, so that the rows
 * (and the privilege checks, which may read the catalogs) are built after
 * the lock is released.
 */
struct LeaseRow
{
	Oid			dbid;
	char		resource[LOCKCTL_NAME_MAXLEN + 1];
	char		owner[LOCKCTL_NAME_MAXLEN + 1];
	int64		token;
	Oid			roleid;
	TimestampTz acquired_at;
	TimestampTz expires_at;
	int			nwaiters;
	bool		fenced;
};

/*
 * Copy the live leases (all of them, or only the one on resource in this
 * database) into a palloc'd array; returns how many.
 */
static int
lease_collect(const char *resource, LeaseRow **rows_out)
{
	LeaseRow   *rows = NULL;
	int			nrows = 0;
	int			nalloc = 0;
	LeaseEntry *e;
	int64		now_mono;
	TimestampTz now_wall;
	HASH_SEQ_STATUS seq;
	LeaseKey	key;

	if (resource != NULL)
		lease_make_key(&key, resource);

	LWLockAcquire(lease_shared->lock, LW_SHARED);
	now_mono = lease_now_mono();
	now_wall = GetCurrentTimestamp();

	if (resource != NULL)
	{
		e = hash_search(lease_hash, &key, HASH_FIND, NULL);
		if (e != NULL && !lease_is_live(e, now_mono))
			e = NULL;
		nalloc = 1;
		rows = palloc(sizeof(LeaseRow));
	}
	else
	{
		nalloc = Max(lease_shared->nentries, 1);
		rows = palloc(sizeof(LeaseRow) * nalloc);
		hash_seq_init(&seq, lease_hash);
		e = hash_seq_search(&seq);
	}

	while (e != NULL)
	{
		if (lease_is_live(e, now_mono))
		{
			LeaseRow   *r;

			/* nentries bounds the hash, but stay safe if it did not */
			if (nrows >= nalloc)
			{
				nalloc *= 2;
				rows = repalloc(rows, sizeof(LeaseRow) * nalloc);
			}
			r = &rows[nrows++];
			r->dbid = e->key.dbid;
			strlcpy(r->resource, e->key.resource, sizeof(r->resource));
			strlcpy(r->owner, e->owner, sizeof(r->owner));
			r->token = e->token;
			r->roleid = e->roleid;
			r->acquired_at = e->acquired_at;
			r->expires_at = lease_wall_expiry(e, now_mono, now_wall);
			r->nwaiters = e->nwaiters;
			r->fenced = e->fenced;
		}
		if (resource != NULL)
			break;
		e = hash_seq_search(&seq);
	}
	LWLockRelease(lease_shared->lock);

	*rows_out = rows;
	return nrows;
}

/*
 * May the current role see the token of a lease taken by roleid?  A token
 * is a capability (it renews, releases and fences the lease), so like
 * pg_stat_activity's query text it is shown only to the role that took the
 * lease and roles with its privileges, to superusers and to members of
 * pg_read_all_stats.  see_all caches the last two.
 */
static bool
lease_token_visible(Oid roleid, bool see_all)
{
	return see_all || has_privs_of_role(GetUserId(), roleid);
}

/*
 * The rows of lockctl.lease_list() (dbid, resource, owner, token,
 * acquired_at, expires_at, waiters, roleid, fenced) or, when one_resource,
 * of lockctl.lease(resource) (owner, token, acquired_at, expires_at,
 * waiters, acquired_by, fenced).  The token is NULL unless the caller may
 * see it.
 */
static void
lease_emit_rows(FunctionCallInfo fcinfo, const char *resource,
				bool one_resource)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	LeaseRow   *rows;
	int			nrows;
	bool		see_all;
	int			i;

	InitMaterializedSRF(fcinfo, 0);
	lease_check_shmem();

	see_all = has_privs_of_role(GetUserId(), ROLE_PG_READ_ALL_STATS);
	nrows = lease_collect(resource, &rows);

	for (i = 0; i < nrows; i++)
	{
		LeaseRow   *r = &rows[i];
		bool		visible = lease_token_visible(r->roleid, see_all);
		Datum		values[9];
		bool		nulls[9];
		int			n = 0;

		memset(nulls, 0, sizeof(nulls));
		if (!one_resource)
		{
			values[n++] = ObjectIdGetDatum(r->dbid);
			values[n++] = CStringGetTextDatum(r->resource);
		}
		values[n++] = CStringGetTextDatum(r->owner);
		if (visible)
			values[n] = Int64GetDatum(r->token);
		else
			nulls[n] = true;
		n++;
		values[n++] = TimestampTzGetDatum(r->acquired_at);
		values[n++] = TimestampTzGetDatum(r->expires_at);
		values[n++] = Int32GetDatum(r->nwaiters);
		if (one_resource)
			values[n++] = DirectFunctionCall1(pg_get_userbyid,
											  ObjectIdGetDatum(r->roleid));
		else
			values[n++] = ObjectIdGetDatum(r->roleid);
		values[n++] = BoolGetDatum(r->fenced);
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc,
							 values, nulls);
	}
}

/*
 * lockctl.lease_list(): every live lease of every database, for the view
 * lockctl.leases.
 */
PG_FUNCTION_INFO_V1(lockctl_lease_list);
Datum
lockctl_lease_list(PG_FUNCTION_ARGS)
{
	lease_emit_rows(fcinfo, NULL, false);
	return (Datum) 0;
}

/*
 * lockctl.lease(resource text): the live lease on resource in this
 * database, one row or none.  Its own C function, so that argument errors
 * name lockctl.lease.
 */
PG_FUNCTION_INFO_V1(lockctl_lease);
Datum
lockctl_lease(PG_FUNCTION_ARGS)
{
	char	   *resource = lockctl_arg_name(fcinfo, 0, "resource", false);

	lease_emit_rows(fcinfo, resource, true);
	return (Datum) 0;
}

/*
 * lockctl.lease_waiter_list(): every backend waiting in acquire, in line
 * order per resource, for the view lockctl.lease_waiters.
 */
PG_FUNCTION_INFO_V1(lockctl_lease_waiter_list);
Datum
lockctl_lease_waiter_list(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	HASH_SEQ_STATUS seq;
	LeaseEntry *e;

	InitMaterializedSRF(fcinfo, 0);
	lease_check_shmem();

	LWLockAcquire(lease_shared->lock, LW_SHARED);
	hash_seq_init(&seq, lease_hash);
	while ((e = hash_seq_search(&seq)) != NULL)
	{
		dlist_iter	it;
		int			pos = 0;

		dlist_foreach(it, &e->waiters)
		{
			LeaseWaiter *w = dlist_container(LeaseWaiter, node, it.cur);
			Datum		values[6];
			bool		nulls[6];

			memset(nulls, 0, sizeof(nulls));
			values[0] = ObjectIdGetDatum(e->key.dbid);
			values[1] = CStringGetTextDatum(e->key.resource);
			values[2] = CStringGetTextDatum(w->owner);
			values[3] = Int32GetDatum(w->pid);
			values[4] = Int32GetDatum(++pos);
			values[5] = TimestampTzGetDatum(w->since);
			tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc,
								 values, nulls);
		}
	}
	LWLockRelease(lease_shared->lock);

	return (Datum) 0;
}

/*
 * lockctl.lease_stats(): the lease counters since the server started, for
 * the view lockctl.lease_stats.
 */
PG_FUNCTION_INFO_V1(lockctl_lease_stats);
Datum
lockctl_lease_stats(PG_FUNCTION_ARGS)
{
	TupleDesc	tupdesc;
	LeaseCounters c;
	int			nentries;
	int			live = 0;
	int			waiting = 0;
	HASH_SEQ_STATUS seq;
	LeaseEntry *e;
	int64		now;
	Datum		values[16];
	bool		nulls[16];
	int			i = 0;

	if (get_call_result_type(fcinfo, NULL, &tupdesc) != TYPEFUNC_COMPOSITE)
		elog(ERROR, "return type must be a row type");
	lease_check_shmem();

	LWLockAcquire(lease_shared->lock, LW_SHARED);
	c = lease_shared->stats;
	nentries = lease_shared->nentries;
	now = lease_now_mono();
	hash_seq_init(&seq, lease_hash);
	while ((e = hash_seq_search(&seq)) != NULL)
	{
		if (lease_is_live(e, now))
			live++;
		waiting += e->nwaiters;
	}
	LWLockRelease(lease_shared->lock);

	memset(nulls, 0, sizeof(nulls));
	values[i++] = Int32GetDatum(live);
	values[i++] = Int32GetDatum(waiting);
	values[i++] = Int32GetDatum(nentries);
	values[i++] = Int32GetDatum(lockctl_max_leases);
	values[i++] = Int64GetDatum((int64) c.grants);
	values[i++] = Int64GetDatum((int64) c.regrants);
	values[i++] = Int64GetDatum((int64) c.renewals);
	values[i++] = Int64GetDatum((int64) c.releases);
	values[i++] = Int64GetDatum((int64) c.force_releases);
	values[i++] = Int64GetDatum((int64) c.expiries);
	values[i++] = Int64GetDatum((int64) c.conflicts);
	values[i++] = Int64GetDatum((int64) c.waits);
	values[i++] = Int64GetDatum((int64) c.timeouts);
	values[i++] = Int64GetDatum((int64) c.fences);
	values[i++] = Int64GetDatum((int64) c.fence_failures);
	values[i++] = Int64GetDatum((int64) c.full);

	PG_RETURN_DATUM(HeapTupleGetDatum(heap_form_tuple(tupdesc, values, nulls)));
}
