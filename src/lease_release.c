/*-------------------------------------------------------------------------
 *
 * lease_release.c
 *	  What a holder, or an administrator, does to a granted lease:
 *	  lockctl.renew(), lockctl.release() and lockctl.force_release().
 *
 * Each takes the lease lock exclusively for a lookup and a few stores, as
 * lease.c says, and wakes the first waiter when the lease becomes free or
 * its expiry moves.  renew and release act only on a lease of the calling
 * role or of a role whose privileges it has (lease_find_own); to anyone
 * else a lease is as good as lost, whatever token they pass.
 *
 * src/lease_release.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "miscadmin.h"
#include "storage/lwlock.h"
#include "utils/acl.h"
#include "utils/hsearch.h"
#include "utils/timestamp.h"

#include "lease.h"

/*
 * End the lease held on e: count it in *counter if it was live (else it
 * had expired), record the end for watch (how if it was live), wake the
 * next in line, and drop the entry if nothing needs it any more (e is not
 * to be used after).  Returns whether it was live.  Caller holds the lease
 * lock exclusively.  Also release_all's (lease_all.c).
 */
bool
lease_end(LeaseEntry *e, int64 now, uint64 *counter, int how)
{
	bool		live = lease_is_live(e, now);

	lease_unhold(e, lease_end_how(e->token, live, how));
	if (live)
		(*counter)++;
	else
		lease_shared->stats.expiries++;
	lease_wake_head(e);
	lease_maybe_remove(e);
	return live;
}

/*
 * lockctl.renew(resource text, token bigint, ttl interval) returns
 * timestamptz: the new expiry.  The lease must still be live, held by token
 * and taken by the calling role (or one whose privileges it has);
 * otherwise it was lost, and that is a 40001.
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
	LeaseLost	lost;
	LeaseHolder *h;
	TimestampTz expires;

	lease_check_writable("lockctl.renew()");
	lease_check_ttl(ttl_us, "lockctl.renew");
	lease_check_shmem();
	lease_make_key(&key, resource);

	e = lease_find_own(&key, token, true, &now, &lost, &h);
	if (e == NULL)
		lease_report_lost(resource, token, &lost, false);

	if (h != NULL)
	{
		/* a counted or shared holder (lease_counted.c, lease_shared.c) */
		/* a session-bound holder (lease_session.c) keeps no expiry */
		if (h->expires_mono < LEASE_EXPIRES_NEVER)
			h->expires_mono = now + ttl_us;
		lease_shared->stats.renewals++;
		/* the first waiter may sleep until this holder's old expiry */
		lease_wake_head(e);
		/* and its watchers: the expiry may be sooner now */
		lease_watch_end(&key, token, InvalidOid, 0);
		if (h->expires_mono >= LEASE_EXPIRES_NEVER)
			TIMESTAMP_NOEND(expires);
		else
			expires = GetCurrentTimestamp() + (h->expires_mono - now);
		lease_unlock();
		PG_RETURN_TIMESTAMPTZ(expires);
	}

	if (e->expires_mono < LEASE_EXPIRES_NEVER)
		e->expires_mono = now + ttl_us;
	lease_shared->stats.renewals++;
	lease_wal_set(e, now);
	/* the first waiter sleeps until the old expiry: it may be sooner now */
	lease_wake_head(e);
	lease_watch_end(&key, token, InvalidOid, 0);
	expires = lease_wall_expiry(e, now, GetCurrentTimestamp());
	lease_unlock();
	/* not reported before it is durable */
	LeaseWalWait();
	PG_RETURN_TIMESTAMPTZ(expires);
}

/*
 * lockctl.release(resource text, token bigint) returns boolean: true if the
 * lease was live and held by token and is now free; false if it was not
 * (already released, expired, held by another token, or taken by a role
 * whose privileges the caller does not have: false says nothing about
 * whether token was right).
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
	LeaseLost	lost;
	LeaseHolder *h;
	bool		released;

	lease_check_writable("lockctl.release()");
	lease_check_shmem();
	lease_make_key(&key, resource);

	e = lease_find_own(&key, token, false, &now, &lost, &h);
	if (e == NULL)
		PG_RETURN_BOOL(false);
	if (h != NULL)
		released = lease_counted_end(e, h, now, &lease_shared->stats.releases);
	else
		released = lease_end(e, now, &lease_shared->stats.releases,
							 LEASE_END_RELEASED);
	lease_unlock();

	PG_RETURN_BOOL(released);
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

	lease_check_writable("lockctl.force_release()");
	lease_check_shmem();
	lease_make_key(&key, resource);

	LWLockAcquire(lease_shared->lock, LW_EXCLUSIVE);
	e = hash_search(lease_hash, &key, HASH_FIND, NULL);
	/* counted and shared holders (never live with an exclusive one) */
	if (e != NULL && lease_has_holders(e))
		released = lease_counted_end_all(e, lease_now_mono(),
										 &lease_shared->stats.force_releases) > 0;
	else if (e != NULL && e->held)
		released = lease_end(e, lease_now_mono(),
							 &lease_shared->stats.force_releases,
							 LEASE_END_FORCED);
	lease_unlock();

	if (released)
		ereport(LOG,
				(errmsg("lease \"%s\" was force-released by role \"%s\"",
						resource, GetUserNameFromId(GetUserId(), true))));
	PG_RETURN_BOOL(released);
}
