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
 * src/lease_fence.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

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

/*
 * Called by LeaseInit: wake waiters when a fencing transaction ends.
 */
void
lease_fence_init(void)
{
	RegisterResourceReleaseCallback(lease_xact_release, NULL);
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

		if (e != NULL && (e->fenced || e->nholders > 0))
			lease_wake_head(e);
	}
	LWLockRelease(lease_shared->lock);

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
	LWLockRelease(lease_shared->lock);

	if (live)
		*token = fenced_list[i].token;
	return live;
}

/*
 * lockctl.fence(resource text, token bigint, extend interval): inside the
 * transaction that writes the data the lease protects, check that token is
 * the live holder's, and keep the lease from being granted to anyone else
 * until the transaction ends.  A stale token is a 40001.  With extend (not
 * NULL; 1.0's SQL has no such argument) the lease is also renewed to
 * extend from now, so that a holder that writes often needs no renew.
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
	int64		extend_us = 0;

	if (PG_NARGS() > 2 && !PG_ARGISNULL(2))
		extend_us = lockctl_arg_interval_us(fcinfo, 2, "extend",
											LEASE_TTL_MIN_US, LEASE_TTL_MAX_US);
	PreventCommandDuringRecovery("lockctl.fence()");
	lease_check_shmem();
	lease_make_key(&key, resource);

	/* a holder of a counted lease fences its own permit (lease_counted.c) */
	if (lease_counted_fence(&key, resource, token, extend_us))
		PG_RETURN_VOID();

	/* the fence lock first; this may wait for another fencing transaction */
	lease_fence_tag(&tag, &key);
	(void) LockAcquire(&tag, ExclusiveLock, false, false);

	LWLockAcquire(lease_shared->lock, LW_EXCLUSIVE);
	e = hash_search(lease_hash, &key, HASH_FIND, NULL);
	now = lease_now_mono();
	if (e != NULL && lease_is_live(e, now) && e->token == token)
	{
		e->fenced = true;
		if (extend_us > 0)
		{
			/* renewed in the protected write; the waiters' timeout moves */
			e->expires_mono = now + extend_us;
			lease_shared->stats.renewals++;
			lease_wake_head(e);
		}
		lease_shared->stats.fences++;
		LWLockRelease(lease_shared->lock);
		lease_remember_fence(&key, token, false);
		PG_RETURN_VOID();
	}
	if (e != NULL && e->held && e->permits == 1)
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
