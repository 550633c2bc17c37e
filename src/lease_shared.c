/*-------------------------------------------------------------------------
 *
 * lease_shared.c
 *	  Shared leases: lockctl.acquire_shared() grants any number of shared
 *	  holders of a resource, or (lockctl.acquire) one exclusive holder,
 *	  never both.
 *
 * How they are kept
 * -----------------
 * A resource of one permit (not counted) keeps its exclusive holder in the
 * LeaseEntry itself, and its shared holders as LeaseHolder slots in the
 * entry's holder list, as counted leases keep theirs (lease_counted.c):
 * each shared holder has its own token, renewed, released and expired on
 * its own.  A shared grant needs no live exclusive holder and no open
 * exclusive fence; an exclusive grant needs no shared holder (an expired
 * one whose fence is still open counts) and no open fence of any kind.
 *
 * Fairness: waiters, shared or exclusive, wait in the entry's one line and
 * only its head may be granted (lease_acquire.c).  A shared head that is
 * granted wakes the next, who, if shared too, is granted as well; an
 * exclusive waiter at the head stops every shared waiter behind it, and a
 * new acquire_shared that does not wait yields to anyone in line, so
 * shared holders never starve an exclusive waiter.
 *
 * Fencing: a shared holder's fence (lockctl.fence, lease_fence.c) takes the
 * resource's fence lock in ShareLock, which keeps exclusive grants out
 * until its transaction ends, as an exclusive fence does for hand-over,
 * while other shared holders fence and are granted freely; and its own
 * holder lock, which keeps its slot until then.
 *
 * Roles, quotas, tokens and eras: as for counted leases (lease_counted.c).
 *
 * Limits: shared leases are not saved by the shutdown dump.
 *
 * src/lease_shared.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "storage/lock.h"

#include "lease.h"

static bool lease_fence_free_shared(LeaseEntry *e);

/*
 * May a shared lease be granted as far as fencing goes: no transaction
 * holds the resource's fence lock exclusively (an exclusive holder's
 * fence).  Shared fences do not count.  Caller holds the lease lock
 * exclusively and is in a transaction.
 */
static bool
lease_fence_free_shared(LeaseEntry *e)
{
	LOCKTAG		tag;

	if (!e->fenced)
		return true;
	lease_fence_tag(&tag, &e->key);
	if (LockAcquire(&tag, ShareLock, false, true) == LOCKACQUIRE_NOT_AVAIL)
		return false;
	LockRelease(&tag, ShareLock, false);
	return true;
}

/*
 * Grant a shared lease on e to owner if possible: the same owner and role
 * holding a live shared lease get its token back; otherwise, if may_take
 * (first in line), a new shared holder unless an exclusive lease is live
 * or fenced.  Returns the token or 0.  Caller holds the lease lock
 * exclusively and is in a transaction; e has one permit.
 */
int64
lease_shared_try_grant(LeaseEntry *e, const char *owner, int64 ttl_us,
					   bool may_take, int64 now)
{
	int64		token;

	Assert(e->permits == 1);
	token = lease_holder_regrant(e, owner, ttl_us, now);
	if (token != 0 || !may_take)
		return token;
	if (lease_is_live(e, now) || !lease_fence_free_shared(e))
		return 0;
	if (e->held)
	{
		/* the exclusive lease expired; it ends here */
		int			how = lease_end_how(e->token, false, 0);

		if (how == LEASE_END_EXPIRED && e->nwaiters > 0)
			how = LEASE_END_TAKEN_OVER;
		lease_unhold(e, how);
		lease_shared->stats.expiries++;
	}
	if (e->nholders > 0)
		lease_counted_reclaim(e, now);
	token = lease_holder_new(e, owner, ttl_us, now)->token;
	lease_shared->stats.shared_grants++;
	return token;
}

/*
 * Do shared holders keep an exclusive lease out of e?  Frees the expired
 * ones first (those whose fence is over).  Caller holds the lease lock
 * exclusively and is in a transaction.
 */
bool
lease_shared_block_exclusive(LeaseEntry *e, int64 now)
{
	lease_counted_reclaim(e, now);
	return e->nholders > 0;
}
