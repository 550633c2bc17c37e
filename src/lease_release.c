/*-------------------------------------------------------------------------
 *
 * lease_release.c
 *	  What a holder, or an administrator, does to a granted lease:
 *	  lockctl.renew(), lockctl.release() and lockctl.force_release().
 *
 * Each takes the lease lock exclusively for a lookup and a few stores, as
 * lease.c says, and wakes the first waiter when the lease becomes free or
 * its expiry moves.
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

static bool lease_end(LeaseEntry *e, int64 now, uint64 *counter);

/*
 * End the lease held on e: count it in *counter if it was live (else it
 * had expired), wake the next in line, and drop the entry if nothing needs
 * it any more (e is not to be used after).  Returns whether it was live.
 * Caller holds the lease lock exclusively.
 */
static bool
lease_end(LeaseEntry *e, int64 now, uint64 *counter)
{
	bool		live = lease_is_live(e, now);

	e->held = false;
	if (live)
		(*counter)++;
	else
		lease_shared->stats.expiries++;
	lease_watch_end(e->key.dbid, e->token, e->roleid,
					!live ? LEASE_END_EXPIRED :
					counter == &lease_shared->stats.force_releases ?
					LEASE_END_FORCED : LEASE_END_RELEASED);
	lease_wake_head(e);
	lease_maybe_remove(e);
	return live;
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
	/* counted and shared leases (lease_counted.c, lease_shared.c) */
	if (lease_in_holders(e, token))
	{
		LeaseHolder *h = lease_counted_find(e, token);

		/* another role's holder is as if it did not exist (AUTHORITY.md) */
		if (h != NULL && !lease_holder_role_ok(h))
		{
			LWLockRelease(lease_shared->lock);
			ereport(ERROR,
					(errcode(ERRCODE_T_R_SERIALIZATION_FAILURE),
					 errmsg("lease \"%s\" is no longer held by token " INT64_FORMAT,
							resource, token),
					 errhint("Acquire the lease again and redo the work it protects.")));
		}
		if (h != NULL && now < h->expires_mono)
		{
			h->expires_mono = now + ttl_us;
			lease_shared->stats.renewals++;
			lease_wake_head(e);
			expires = GetCurrentTimestamp() + (h->expires_mono - now);
			LWLockRelease(lease_shared->lock);
			PG_RETURN_TIMESTAMPTZ(expires);
		}
		LWLockRelease(lease_shared->lock);
		ereport(ERROR,
				(errcode(ERRCODE_T_R_SERIALIZATION_FAILURE),
				 errmsg("lease \"%s\" is no longer held by token " INT64_FORMAT,
						resource, token),
				 h != NULL ?
				 errdetail("The lease expired before it was renewed.") :
				 errdetail("Token " INT64_FORMAT " holds none of the permits of \"%s\".",
						   token, resource),
				 errhint("Acquire the lease again and redo the work it protects.")));
	}
	else if (e != NULL && lease_is_live(e, now) && e->token == token)
	{
		e->expires_mono = now + ttl_us;
		lease_shared->stats.renewals++;
		/* the first waiter sleeps until the old expiry: it may be sooner now */
		lease_wake_head(e);
		expires = lease_wall_expiry(e, now, GetCurrentTimestamp());
		LWLockRelease(lease_shared->lock);
		PG_RETURN_TIMESTAMPTZ(expires);
	}
	if (e != NULL && e->held && e->permits == 1)
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
	if (lease_in_holders(e, token))
	{
		/* counted and shared leases (lease_counted.c, lease_shared.c) */
		LeaseHolder *h = lease_counted_find(e, token);

		/* another role's holder: false, as for a wrong token (AUTHORITY.md) */
		if (h != NULL && now < h->expires_mono && lease_holder_role_ok(h))
		{
			lease_counted_end(e, h, now, &lease_shared->stats.releases);
			released = true;
		}
	}
	else if (e != NULL && e->held && e->token == token)
		released = lease_end(e, now, &lease_shared->stats.releases);
	LWLockRelease(lease_shared->lock);

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

	PreventCommandDuringRecovery("lockctl.force_release()");
	lease_check_shmem();
	lease_make_key(&key, resource);

	LWLockAcquire(lease_shared->lock, LW_EXCLUSIVE);
	e = hash_search(lease_hash, &key, HASH_FIND, NULL);
	/* counted and shared holders (never live with an exclusive one) */
	if (e != NULL && (e->permits > 1 || e->nholders > 0))
		released = lease_counted_end_all(e, lease_now_mono(),
										 &lease_shared->stats.force_releases) > 0;
	else if (e != NULL && e->held)
		released = lease_end(e, lease_now_mono(),
							 &lease_shared->stats.force_releases);
	LWLockRelease(lease_shared->lock);

	if (released)
		ereport(LOG,
				(errmsg("lease \"%s\" was force-released by role \"%s\"",
						resource, GetUserNameFromId(GetUserId(), true))));
	PG_RETURN_BOOL(released);
}
