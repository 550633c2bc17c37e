/*-------------------------------------------------------------------------
 *
 * lease_fence.c
 *	  lockctl.fence(): inside the transaction that writes protected data,
 *	  check the token and keep the lease from passing to anyone else until
 *	  that transaction ends.
 *
 * Locking protocol (fencing)
 * --------------------------
 * fence(resource, token) takes a transaction-level ExclusiveLock
 * in PostgreSQL's lock manager on an advisory-space tag of lockctl's own
 * (database, 64-bit hash of the resource, field4 = LEASE_FENCE_FIELD4), so
 * it shows in pg_locks, is seen by the deadlock detector and is released
 * at commit or abort.  Permission before lock: it first checks, without
 * that lock, that token holds the live lease and that the lease is the
 * calling role's (or a role's whose privileges it has), so that no other
 * role can queue on a lease's fence lock and stall its holder.  Then it
 * takes the lock (it may wait there for another transaction of the same
 * holder), and only then, under the lease lock, checks the token again and
 * sets entry->fenced and entry->fenced_by.  A grant that finds
 * entry->fenced set first tries that lock conditionally while holding the
 * lease lock: if it is busy the lease is not granted; if it was free the
 * flag is cleared.  So once fence() returned, no grant can happen until the
 * fencing transaction ends, even if the lease expires meanwhile; and a
 * grant that slipped in before fence() set the flag makes fence() fail,
 * because the token changed.  Two resources whose hashes collide share a
 * fence lock: that can only delay a grant, never allow a wrong one.
 * A resource release callback, once a top-level transaction's locks are
 * gone, clears entry->fenced of every resource this backend fenced and no
 * other backend fenced since (fenced_by), so that the views stop showing
 * it, and wakes the head waiter.  Clearing early is
 * safe: a backend that took the lock but has not set the flag yet still
 * checks the token under the lease lock, so a grant that slipped in makes
 * it fail.  As a safety net (a fencing backend that dies, a savepoint rolled
 * back), a grant that finds the flag set tries the lock and clears the flag
 * if it is free, and a waiter of a lease that is free but fenced re-checks
 * at least every LEASE_FENCE_RECHECK_MS.
 * A transaction that fenced cannot be prepared (PREPARE TRANSACTION): the
 * fence lock would pass to the prepared transaction and outlive a restart,
 * but the fenced flag lives in shared memory and would not, so the lease
 * could pass to another holder before the protected write commits.
 *
 * src/lease_fence.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/xact.h"
#include "miscadmin.h"
#include "storage/lock.h"
#include "storage/lwlock.h"
#include "utils/hsearch.h"
#include "utils/memutils.h"
#include "utils/resowner.h"

#include "lease.h"

/*
 * resources this backend fenced in the current transaction, for wake-ups,
 * and the token each was fenced with, for LeaseFencedInXact
 */
typedef struct LeaseFenced
{
	LeaseKey	key;
	int64		token;
	bool		counted;		/* a counted or shared holder: its own lock */
} LeaseFenced;

static LeaseFenced *fenced_list = NULL;
static int	fenced_count = 0;
static int	fenced_alloc = 0;

static void lease_xact_release(ResourceReleasePhase phase, bool isCommit,
							   bool isTopLevel, void *arg);
static void lease_fence_xact(XactEvent event, void *arg);

/*
 * Called by LeaseInit: clear the flag and wake waiters when a fencing
 * transaction ends.
 */
void
lease_fence_init(void)
{
	RegisterResourceReleaseCallback(lease_xact_release, NULL);
	RegisterXactCallback(lease_fence_xact, NULL);
}

/*
 * Transaction callback: refuse PREPARE TRANSACTION in a transaction that
 * fenced a lease (see the header).
 */
static void
lease_fence_xact(XactEvent event, void *arg)
{
	if (event == XACT_EVENT_PRE_PREPARE && fenced_count > 0)
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("cannot PREPARE a transaction that has called lockctl.fence()"),
				 errdetail("A fence keeps the lease from passing to anyone else only until the fencing transaction ends, and only while the server runs."),
				 errhint("Commit the protected writes without two-phase commit.")));
}

/*
 * Resource release callback: once a transaction's (or subtransaction's)
 * locks are gone, wake the first waiter of every resource it fenced, and at
 * the end of a top-level transaction, clear the
 * fenced flag it set (see the locking protocol above).  Never raises an
 * error: it runs after commit.
 */
static void
lease_xact_release(ResourceReleasePhase phase, bool isCommit, bool isTopLevel,
				   void *arg)
{
	bool		clear;
	int			i;

	if (phase != RESOURCE_RELEASE_AFTER_LOCKS)
		return;
	clear = isTopLevel;
	if (fenced_count == 0 || lease_shared == NULL)
		return;

	LWLockAcquire(lease_shared->lock, LW_EXCLUSIVE);
	for (i = 0; i < fenced_count; i++)
	{
		LeaseEntry *e = hash_search(lease_hash, &fenced_list[i].key,
									HASH_FIND, NULL);

		/*
		 * A holder of a counted or shared lease fences its own lock: its
		 * slot, kept while fenced, is freed by the next grant or sweep,
		 * which tries that lock; the head waiter looks now.
		 */
		if (e == NULL || (!e->fenced && e->nholders == 0))
			continue;
		if (clear && e->fenced && e->fenced_by == MyProcNumber + 1)
		{
			e->fenced = false;
			e->fenced_by = 0;
		}
		lease_wake_head(e);
		/* a released lease kept its slot only for the fence */
		lease_maybe_remove(e);
	}
	lease_unlock();

	if (isTopLevel)
		fenced_count = 0;
}

void
lease_remember_fence(const LeaseKey *key, int64 token, bool counted)
{
	int			i;

	for (i = 0; i < fenced_count; i++)
		if (lease_key_match(&fenced_list[i].key, key, sizeof(LeaseKey)) == 0)
		{
			/* fenced again, perhaps after a new grant to this backend */
			fenced_list[i].token = token;
			fenced_list[i].counted = counted;
			return;
		}
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
	memcpy(&fenced_list[fenced_count].key, key, sizeof(LeaseKey));
	fenced_list[fenced_count].counted = counted;
	fenced_list[fenced_count++].token = token;
}

/*
 * LeaseFencedInXact: is a write made now by this transaction protected by a
 * fence on resource (in this database)?  If so, returns true and sets *token
 * to the token it was fenced with.  Used by the fenced-table trigger
 * (fence_table.c) at every row it checks.
 *
 * "Live" at the time of the write means all of:
 *	- this transaction called fence(resource, token) and it succeeded, so the
 *	  token held the live lease then;
 *	- it still holds the fence lock that fence() took (a ROLLBACK TO
 *	  SAVEPOINT past the fence() releases it, and with it the promise);
 *	- the lease is still held by that same token: not released or
 *	  force-released since, nor granted again (which only this backend could
 *	  have done, since the fence lock keeps every other grant out).
 * The lease may have expired since fence(): while the fence lock is held no
 * one else can be granted it, so no later holder can have written yet, and
 * a write now is as safe as one right after fence().  This is fence()'s own
 * promise, checked again at the write.
 */
bool
LeaseFencedInXact(const char *resource, int64 *token)
{
	LeaseKey	key;
	LOCKTAG		tag;
	LeaseEntry *e;
	int			i;
	bool		live;

	if (fenced_count == 0 || lease_shared == NULL ||
		strlen(resource) > LOCKCTL_NAME_MAXLEN)
		return false;
	lease_make_key(&key, resource);
	for (i = 0; i < fenced_count; i++)
		if (lease_key_match(&fenced_list[i].key, &key, sizeof(LeaseKey)) == 0)
			break;
	if (i == fenced_count)
		return false;

	/*
	 * Still ours?  A conditional acquire answers without waiting and works
	 * the same on every major (LockHeldByMe changed its arguments in 17); on
	 * the refusing path it may take the free lock for a moment.
	 */
	if (fenced_list[i].counted)
		lease_holder_fence_tag(&tag, key.dbid, fenced_list[i].token);
	else
		lease_fence_tag(&tag, &key);
	switch (LockAcquire(&tag, ExclusiveLock, false, true))
	{
		case LOCKACQUIRE_NOT_AVAIL:
			return false;
		case LOCKACQUIRE_OK:
			LockRelease(&tag, ExclusiveLock, false);
			return false;
		default:
			LockRelease(&tag, ExclusiveLock, false);
			break;
	}

	LWLockAcquire(lease_shared->lock, LW_SHARED);
	e = hash_search(lease_hash, &key, HASH_FIND, NULL);
	if (fenced_list[i].counted)
	{
		/* a counted or shared holder: still there (not released), fenced */
		LeaseHolder *h = (e != NULL && e->nholders > 0) ?
			lease_counted_find(e, fenced_list[i].token) : NULL;

		live = (h != NULL && h->fenced && !h->ended);
	}
	else
		live = (e != NULL && e->held && e->fenced &&
				e->token == fenced_list[i].token);
	lease_unlock();

	if (live)
		*token = fenced_list[i].token;
	return live;
}

/*
 * lockctl.fence(resource text, token bigint, extend interval): inside the
 * transaction that writes the data the lease protects, check that token is
 * the live holder's and the lease the calling role's (or a role's whose
 * privileges it has), and keep the lease from being granted to anyone else
 * until the transaction ends.  A stale token, or another role's lease, is
 * a 40001.  With extend (not NULL; 1.0's SQL has no such argument) the
 * lease is also renewed to extend from now, so that a holder that writes
 * often needs no renew.
 *
 * A holder of a counted lease, or a shared holder, fences its own permit:
 * it takes its holder's fence lock (lease_counted.c), and a shared holder
 * first the resource's fence lock in ShareLock, which keeps every
 * exclusive grant out until the transaction ends (lease_fence_free wants
 * ExclusiveLock) but not the other shared holders (lease_shared.c).
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
	LeaseHolder *h;
	int64		now;
	LeaseLost	lost;
	int64		extend_us = 0;
	bool		holder;
	bool		shared;

	if (PG_NARGS() > 2 && !PG_ARGISNULL(2))
		extend_us = lockctl_arg_interval_us(fcinfo, 2, "extend",
											LEASE_TTL_MIN_US, LEASE_TTL_MAX_US);

	/*
	 * Not lease_check_writable: a read-only transaction may fence, to read
	 * what the lease protects while nobody else can take it.  Extending
	 * renews the lease, which is a write as renew() is.
	 */
	PreventCommandDuringRecovery("lockctl.fence()");
	if (extend_us > 0)
	{
		lease_check_writable("lockctl.fence()");
		lease_check_ttl(extend_us, "lockctl.fence");
	}
	lease_check_shmem();
	lease_make_key(&key, resource);

	/* permission before lock: only the lease's role may queue for it */
	e = lease_find_own(&key, token, true, &now, &lost, &h);
	if (e == NULL)
		goto lost;
	holder = (h != NULL);
	shared = holder && e->permits == 1;
	lease_unlock();

	/* the fence lock; this may wait for another fencing transaction */
	if (shared)
	{
		lease_fence_tag(&tag, &key);
		(void) LockAcquire(&tag, ShareLock, false, false);
	}
	if (holder)
		lease_holder_fence_tag(&tag, key.dbid, token);
	else
		lease_fence_tag(&tag, &key);
	(void) LockAcquire(&tag, ExclusiveLock, false, false);

	/*
	 * And again under the lease lock, which a grant needs too.  A token
	 * names one grant: found again, it is the same kind of lease.
	 */
	e = lease_find_own(&key, token, true, &now, &lost, &h);
	if (e == NULL)
		goto lost;				/* the lock goes with the aborted transaction */
	Assert((h != NULL) == holder);
	if (h != NULL)
		h->fenced = true;
	if (h == NULL || shared)
	{
		e->fenced = true;
		e->fenced_by = MyProcNumber + 1;
	}
	if (extend_us > 0)
	{
		/* renewed in the protected write; the waiters' timeout moves */
		/* a session-bound lease (lease_session.c) keeps no expiry */
		if (h != NULL && h->expires_mono < LEASE_EXPIRES_NEVER)
			h->expires_mono = now + extend_us;
		else if (h == NULL && e->expires_mono < LEASE_EXPIRES_NEVER)
		{
			e->expires_mono = now + extend_us;
			lease_wal_set(e, now);
		}
		lease_shared->stats.renewals++;
		lease_wake_head(e);
		lease_watch_end(&key, token, InvalidOid, 0);
	}
	lease_shared->stats.fences++;
	lease_unlock();
	lease_remember_fence(&key, token, holder);
	/* an extended expiry is durable before the protected write goes on */
	LeaseWalWait();
	PG_RETURN_VOID();

lost:
	LWLockAcquire(lease_shared->lock, LW_EXCLUSIVE);
	lease_shared->stats.fence_failures++;
	lease_unlock();
	lease_report_lost(resource, token, &lost, true);
	PG_RETURN_VOID();			/* not reached */
}
