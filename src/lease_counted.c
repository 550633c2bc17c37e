/*-------------------------------------------------------------------------
 *
 * lease_counted.c
 *	  Counted leases (semaphores): acquire(..., permits => n) lets up to n
 *	  holders hold a resource at once, each with its own fencing token,
 *	  renewed, released, fenced and expired on its own.
 *
 * How they are kept
 * -----------------
 * A resource's LeaseEntry says how many permits it has.  With 1 (every
 * lease before counted leases, and still the default) its one holder is in
 * the entry itself, exactly as before: the exclusive path pays one integer
 * comparison for counted leases.  With n > 1 the holders are LeaseHolder
 * slots, taken from a pool of lockctl.max_leases slots in shared memory
 * (each holder is a lease, so the setting bounds them as it bounds
 * exclusive leases) and linked into the entry; the entry's own holder
 * fields stay unused.  The number of permits is fixed while anyone holds
 * or waits for the resource; a call that asks for another number then is
 * refused (55000).  Once the resource is idle, the next acquire sets it.
 *
 * Waiters are the entry's usual first-come-first-served line: only the
 * head may take a free permit, and a head that leaves with one wakes the
 * next, who may find another free permit (lease_acquire.c).
 *
 * Fencing a holder of a counted lease locks that holder's permit only: the
 * fence lock's tag is made of the token (field4 LEASE_HOLDER_FENCE_FIELD4),
 * so holders fence independently, and an expired holder whose fencing
 * transaction is still open keeps its permit (holder->fenced, checked with
 * a conditional lock as lease_fence_free does) until that transaction ends.
 * fence() itself is in lease_fence.c, for every kind of lease.
 *
 * Each holder is a lease like an exclusive one in every other way: its
 * token comes from LeaseNextToken (so it rises across restarts and cluster
 * moves, and is live only in its era: lease_holder_live); it belongs to
 * the role that took it (lease_session_role), which alone (or a role with
 * its privileges) may renew, release or fence it (lease_find_own); it
 * counts in that role's lockctl.max_leases_per_role (in_quota) until it is
 * released or reclaimed; and the administrative releases end it.
 *
 * Everything here runs under the lease lock as lease.c describes; the pool
 * is protected by the same lock.
 *
 * Limits: counted leases are not saved by the shutdown dump (an exclusive
 * lease survives a clean restart, a counted one does not).
 *
 * src/lease_counted.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "miscadmin.h"
#include "storage/lock.h"
#include "storage/lwlock.h"
#include "storage/shmem.h"
#include "utils/hsearch.h"
#include "utils/timestamp.h"

#include "lease.h"

typedef struct LeaseHolderPool
{
	dlist_head	free;			/* LeaseHolder slots not in use */
	LeaseHolder slots[FLEXIBLE_ARRAY_MEMBER];	/* lockctl_max_leases */
} LeaseHolderPool;

static LeaseHolderPool *holder_pool = NULL;

static Size lease_counted_shmem_size(void);
static void lease_counted_shmem_startup(void);
static bool lease_holder_fence_free(LeaseEntry *e, LeaseHolder *h);
static void lease_holder_free(LeaseEntry *e, LeaseHolder *h);
static void lease_holder_uncount(LeaseEntry *e, LeaseHolder *h, int how);

static const LockctlShmemPart lease_counted_shmem_part = {
	lease_counted_shmem_size, NULL, lease_counted_shmem_startup
};

void
lease_counted_init(void)
{
	lockctl_shmem_register(&lease_counted_shmem_part);
}

static Size
lease_counted_shmem_size(void)
{
	return add_size(offsetof(LeaseHolderPool, slots),
					mul_size(lockctl_max_leases, sizeof(LeaseHolder)));
}

static void
lease_counted_shmem_startup(void)
{
	bool		found;
	int			i;

	LWLockAcquire(AddinShmemInitLock, LW_EXCLUSIVE);
	holder_pool = ShmemInitStruct("lockctl lease holders",
								  lease_counted_shmem_size(), &found);
	if (!found)
	{
		dlist_init(&holder_pool->free);
		for (i = 0; i < lockctl_max_leases; i++)
			dlist_push_tail(&holder_pool->free, &holder_pool->slots[i].node);
	}
	LWLockRelease(AddinShmemInitLock);
}

/*
 * The permits argument: 1 (exclusive, the default) to LEASE_PERMITS_MAX.
 */
int32
lease_arg_permits(FunctionCallInfo fcinfo, int argno)
{
	int32		permits;

	lockctl_arg_not_null(fcinfo, argno, "permits");
	permits = PG_GETARG_INT32(argno);
	if (permits < 1 || permits > LEASE_PERMITS_MAX)
		ereport(ERROR,
				(errcode(ERRCODE_NUMERIC_VALUE_OUT_OF_RANGE),
				 errmsg("permits of lockctl.acquire() is out of range: %d",
						permits),
				 errdetail("It must be between 1 and %d.", LEASE_PERMITS_MAX)));
	return permits;
}

/*
 * Make e a lease of this many permits, or refuse if it is held or waited
 * for with another number.  Caller holds the lease lock exclusively (it is
 * released before the error).
 */
void
lease_set_permits(LeaseEntry *e, int32 permits, int64 now)
{
	bool		idle;

	if (e->permits == permits)
		return;
	if (e->nholders > 0)
		lease_counted_reclaim(e, now);
	idle = (e->nwaiters == 0 && e->nholders == 0 && !lease_is_live(e, now));
	if (!idle)
	{
		int32		has = e->permits;
		char		resource[LOCKCTL_NAME_MAXLEN + 1];

		strlcpy(resource, e->key.resource, sizeof(resource));
		lease_maybe_remove(e);
		lease_unlock();
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("lease \"%s\" has %d permit%s, not %d",
						resource, has, has == 1 ? "" : "s", permits),
				 errdetail("While a resource is held or waited for, every acquire of it must ask for the same number of permits."),
				 errhint("Use one number of permits per resource.")));
	}
	/* an expired exclusive lease ends here; a fence on it still counts */
	if (e->held)
	{
		lease_unhold(e, lease_end_how(e->token, false, 0));
		lease_shared->stats.expiries++;
	}
	e->permits = permits;
}

/*
 * h has ended (released, expired and reclaimed, or freed): it no longer
 * counts in its role's quota, and its end is recorded for lockctl.watch as
 * how says.  in_quota is true from the grant until this first call, so
 * every holder's end is recorded once.  Caller holds the lease lock
 * exclusively.
 */
static void
lease_holder_uncount(LeaseEntry *e, LeaseHolder *h, int how)
{
	if (h->in_quota)
	{
		h->in_quota = false;
		lease_role_add(h->roleid, -1);
		lease_watch_end(&e->key, h->token, h->roleid, how);
	}
}

static void
lease_holder_free(LeaseEntry *e, LeaseHolder *h)
{
	lease_holder_uncount(e, h, lease_end_how(h->token, false, 0));
	dlist_delete(&h->node);
	e->nholders--;
	dlist_push_head(&holder_pool->free, &h->node);
}

void
lease_holder_fence_tag(LOCKTAG *tag, Oid dbid, int64 token)
{
	SET_LOCKTAG_ADVISORY(*tag, dbid, (uint32) ((uint64) token >> 32),
						 (uint32) token, LEASE_HOLDER_FENCE_FIELD4);
}

/*
 * May h's permit pass to someone else as far as fencing goes?  As
 * lease_fence_free, on the holder's own fence lock.
 */
static bool
lease_holder_fence_free(LeaseEntry *e, LeaseHolder *h)
{
	LOCKTAG		tag;

	if (!h->fenced)
		return true;
	lease_holder_fence_tag(&tag, e->key.dbid, h->token);
	switch (LockAcquire(&tag, ExclusiveLock, false, true))
	{
		case LOCKACQUIRE_NOT_AVAIL:
			return false;
		case LOCKACQUIRE_OK:
			LockRelease(&tag, ExclusiveLock, false);
			h->fenced = false;
			return true;
		default:
			LockRelease(&tag, ExclusiveLock, false);
			return true;
	}
}

/*
 * Free the holders of e that are no longer live (expired, released, or of
 * an older era) and whose fence (if any) is over; one whose fence is still
 * open keeps its slot but no longer counts for its role.  Caller holds the
 * lease lock exclusively and is in a transaction.
 */
void
lease_counted_reclaim(LeaseEntry *e, int64 now)
{
	dlist_mutable_iter it;

	dlist_foreach_modify(it, &e->holders)
	{
		LeaseHolder *h = dlist_container(LeaseHolder, node, it.cur);

		if (lease_holder_live(h, now))
			continue;
		if (!h->ended && h->in_quota)
			lease_shared->stats.expiries++;
		lease_holder_uncount(e, h, lease_end_how(h->token, false, 0));
		if (lease_holder_fence_free(e, h))
			lease_holder_free(e, h);
	}
}

/*
 * The live holders of e.  Caller holds the lease lock.
 */
int
lease_counted_live(LeaseEntry *e, int64 now)
{
	dlist_iter	it;
	int			n = 0;

	dlist_foreach(it, &e->holders)
	{
		LeaseHolder *h = dlist_container(LeaseHolder, node, it.cur);

		if (lease_holder_live(h, now))
			n++;
	}
	return n;
}

/*
 * When may a permit of e become free without anyone waking the waiters:
 * the earliest expiry of a holder, or a fence re-check.  Caller holds the
 * lease lock.
 */
int64
lease_counted_next_change(LeaseEntry *e, int64 now)
{
	dlist_iter	it;
	int64		next = PG_INT64_MAX;

	dlist_foreach(it, &e->holders)
	{
		LeaseHolder *h = dlist_container(LeaseHolder, node, it.cur);

		if (lease_holder_live(h, now))
			next = Min(next, h->expires_mono);
		else					/* expired but fenced, or not reclaimed */
			next = Min(next, now + LEASE_FENCE_RECHECK_MS * INT64CONST(1000));
	}
	if (e->fenced)
		next = Min(next, now + LEASE_FENCE_RECHECK_MS * INT64CONST(1000));
	return next;
}

/*
 * The holder of e with this token, live or not (NULL if none).  Caller
 * holds the lease lock.
 */
LeaseHolder *
lease_counted_find(LeaseEntry *e, int64 token)
{
	dlist_iter	it;

	dlist_foreach(it, &e->holders)
	{
		LeaseHolder *h = dlist_container(LeaseHolder, node, it.cur);

		if (h->token == token)
			return h;
	}
	return NULL;
}

/*
 * The live holder of e taken by owner AND role (see lease_is_retry), or
 * NULL.  Caller holds the lease lock.
 */
static LeaseHolder *
lease_holder_find_retry(LeaseEntry *e, const char *owner, Oid role,
						int64 now)
{
	dlist_iter	it;

	dlist_foreach(it, &e->holders)
	{
		LeaseHolder *h = dlist_container(LeaseHolder, node, it.cur);

		if (h->roleid == role && strcmp(h->owner, owner) == 0 &&
			lease_holder_live(h, now))
			return h;
	}
	return NULL;
}

/*
 * Is acquire(owner) by role a safe retry of a live holder of e?  Caller
 * holds the lease lock.
 */
bool
lease_holder_is_retry(LeaseEntry *e, const char *owner, Oid role, int64 now)
{
	return e != NULL && e->nholders > 0 &&
		lease_holder_find_retry(e, owner, role, now) != NULL;
}

/*
 * A safe retry: the same owner asking again, as the same role, while its
 * lease (one of e's holders) is live, gets its token back with the expiry
 * pushed out.  Returns the token, or 0.  Caller holds the lease lock
 * exclusively.
 */
int64
lease_holder_regrant(LeaseEntry *e, const char *owner, int64 ttl_us,
					 int64 now)
{
	LeaseHolder *h;

	if (e->nholders == 0)
		return 0;
	h = lease_holder_find_retry(e, owner, lease_session_role(), now);
	if (h == NULL)
		return 0;
	h->expires_mono = Max(h->expires_mono, now + ttl_us);
	lease_shared->stats.regrants++;
	return h->token;
}

/*
 * lease_try_grant for a counted lease: the same owner asking again as the
 * same role gets its live token back; otherwise a free permit is granted
 * with a new token if may_take.  Returns the token or 0.  Caller holds the
 * lease lock exclusively and is in a transaction.
 */
int64
lease_counted_try_grant(LeaseEntry *e, const char *owner, int64 ttl_us,
						bool may_take, int64 now)
{
	int64		token;

	token = lease_holder_regrant(e, owner, ttl_us, now);
	if (token != 0 || !may_take)
		return token;
	if (e->nholders >= e->permits)
		lease_counted_reclaim(e, now);
	if (e->nholders >= e->permits || !lease_fence_free(e))
		return 0;
	token = lease_holder_new(e, owner, ttl_us, now)->token;
	lease_shared->stats.counted_grants++;
	return token;
}

/*
 * A new holder of e, with a new token, at the tail of e's holders.  A pool
 * with no slot left is an error.  Caller holds the lease lock exclusively
 * (released before the error).
 */
LeaseHolder *
lease_holder_new(LeaseEntry *e, const char *owner, int64 ttl_us, int64 now)
{
	LeaseHolder *h;
	int64		token;

	if (dlist_is_empty(&holder_pool->free))
	{
		lease_shared->stats.full++;
		lease_maybe_remove(e);
		lease_unlock();
		ereport(ERROR,
				(errcode(ERRCODE_CONFIGURATION_LIMIT_EXCEEDED),
				 errmsg("too many leases"),
				 errdetail("All %d slots for holders of counted and shared leases are in use.",
						   lockctl_max_leases),
				 errhint("Release leases that are no longer needed, or increase \"lockctl.max_leases\" and restart the server.")));
	}

	/* token first: it may fail, and then nothing has changed */
	token = LeaseNextToken();
	h = dlist_container(LeaseHolder, node, dlist_pop_head_node(&holder_pool->free));
	h->fenced = false;
	h->ended = false;
	strlcpy(h->owner, owner, sizeof(h->owner));
	h->token = token;
	h->roleid = lease_session_role();
	h->in_quota = true;
	lease_role_add(h->roleid, 1);
	h->acquired_at = lease_wall_of(now);
	h->expires_mono = now + ttl_us;
	dlist_push_tail(&e->holders, &h->node);
	e->nholders++;
	lease_shared->stats.grants++;
	return h;
}

/*
 * End holder h of e: counted in *counter if it was live (else as an
 * expiry, unless it was already counted so).  It no longer counts for its
 * role, and its end is recorded for watch (how, if it was live).  If keep_fenced and it is fenced, it stays, ended, until the fence
 * is over; else its slot is freed.  Returns whether it was live.  Wakes
 * nobody and removes nothing: the caller does.  Raises no error (the
 * administrative releases call it at commit).  Caller holds the lease lock
 * exclusively.
 */
bool
lease_holder_end(LeaseEntry *e, LeaseHolder *h, int64 now, uint64 *counter,
				 bool keep_fenced, int how)
{
	bool		live = lease_holder_live(h, now);

	if (live)
		(*counter)++;
	else if (!h->ended && h->in_quota)
		lease_shared->stats.expiries++;
	lease_holder_uncount(e, h, lease_end_how(h->token, live, how));
	if (keep_fenced && h->fenced)
	{
		h->expires_mono = Min(h->expires_mono, now);
		h->ended = true;
	}
	else
		lease_holder_free(e, h);
	return live;
}

/*
 * End holder h of e (lease_holder_end), wake the head waiter, and drop the
 * entry if nothing needs it (e is not to be used after).  Returns whether
 * h was live.  Caller holds the lease lock exclusively.
 */
bool
lease_counted_end(LeaseEntry *e, LeaseHolder *h, int64 now, uint64 *counter)
{
	bool		live = lease_holder_end(e, h, now, counter, true,
										LEASE_END_RELEASED);

	lease_wake_head(e);
	lease_maybe_remove(e);
	return live;
}

/*
 * End every live holder of e (force_release); returns how many.  Caller
 * holds the lease lock exclusively; e is not to be used after.
 */
int
lease_counted_end_all(LeaseEntry *e, int64 now, uint64 *counter)
{
	dlist_mutable_iter it;
	int			n = 0;

	dlist_foreach_modify(it, &e->holders)
	{
		LeaseHolder *h = dlist_container(LeaseHolder, node, it.cur);

		if (!lease_holder_live(h, now))
			continue;
		if (lease_holder_end(e, h, now, counter, true, LEASE_END_FORCED))
			n++;
	}
	lease_wake_head(e);
	lease_maybe_remove(e);
	return n;
}
