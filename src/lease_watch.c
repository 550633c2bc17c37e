/*-------------------------------------------------------------------------
 *
 * lease_watch.c
 *	  lockctl.watch(resource, token, timeout): sleep until the lease of
 *	  token ends, and say how: 'released', 'force-released', 'expired' or
 *	  'taken over'; or 'live' when timeout passes first.
 *
 * How an end is known
 * -------------------
 * Every place that ends a lease calls lease_watch_end() under the lease
 * lock: release ('released'), force_release ('force-released'), a grant
 * that replaces an expired lease ('taken over'), and the reclaiming of an
 * expired one by a sweep or a counted grant ('expired').  It writes the
 * end into a ring of the last LEASE_WATCH_RING ends in shared memory, so
 * that a watch that comes late still learns how the lease ended, and sets
 * the latch of every backend watching that token.  When nobody watches,
 * that costs a few stores under a lock already held.
 *
 * A watcher sleeps on its latch (no polling) until the lease's expiry, its
 * own timeout, or a wake-up by an end.  At the expiry it looks again: a
 * lease renewed meanwhile is watched on; an expired lease with waiters is
 * about to be taken over (the first waiter wakes at the same expiry), so
 * the watcher waits for that grant (or, if the lease is fenced, for the
 * fencing transaction to end: until then the lease still protects its
 * writes) and says 'taken over'; an expired lease nobody waits for is
 * 'expired'.
 *
 * Who may watch: the role that took the lease and roles with its
 * privileges (AUTHORITY.md); to anyone else a live lease looks like a
 * stale token (40001, no detail), as renew and fence say.  A token that is
 * not live and whose end is no longer in the ring is stale too.
 *
 * Everything here is protected by the lease lock (lease.c).
 *
 * src/lease_watch.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "miscadmin.h"
#include "storage/ipc.h"
#include "storage/latch.h"
#include "storage/lwlock.h"
#include "storage/shmem.h"
#include "utils/acl.h"
#include "utils/builtins.h"
#include "utils/hsearch.h"
#include "utils/wait_event.h"

#include "lease.h"

/* how many ends are remembered for watches that come late */
#define LEASE_WATCH_RING		4096

typedef struct LeaseEndRecord
{
	Oid			dbid;
	Oid			roleid;
	int64		token;
	int			how;			/* LeaseEndHow; 0: empty */
} LeaseEndRecord;

typedef struct LeaseWatcher
{
	Latch	   *latch;
	Oid			dbid;
	int64		token;			/* 0 when not watching */
	int			how;			/* set by lease_watch_end */
} LeaseWatcher;

typedef struct LeaseWatchShared
{
	uint64		next;			/* ring position of the next end */
	int			nwatchers;
	LeaseEndRecord ring[LEASE_WATCH_RING];
	LeaseWatcher watchers[FLEXIBLE_ARRAY_MEMBER];	/* MaxBackends */
} LeaseWatchShared;

/* what a watcher found under the lease lock */
typedef enum LeaseWatchState
{
	WATCH_LIVE,					/* live until *expires */
	WATCH_PENDING,				/* expired, a waiter is taking it over */
	WATCH_ENDED,				/* *how says how */
	WATCH_UNKNOWN				/* not live, end not remembered */
} LeaseWatchState;

static LeaseWatchShared *watch_shared = NULL;
static LeaseWatcher *my_watcher = NULL;
static bool exit_callback_registered = false;

static Size lease_watch_shmem_size(void);
static void lease_watch_shmem_startup(void);
static const char *lease_end_name(int how);
static LeaseWatchState lease_watch_state(const LeaseKey *key, int64 token,
										 int64 now, Oid *roleid,
										 int64 *expires, int *how);
static void lease_unwatch(void);
static void lease_unwatch_locked(void);
static void lease_watch_exit(int code, Datum arg);
static int	lease_watch_loop(const LeaseKey *key, int64 token,
							 int64 deadline);
static int	lease_watch_wait(const LeaseKey *key, int64 token,
							 int64 deadline);

static const LockctlShmemPart lease_watch_shmem_part = {
	lease_watch_shmem_size, NULL, lease_watch_shmem_startup
};

void
lease_watch_init(void)
{
	lockctl_shmem_register(&lease_watch_shmem_part);
}

static Size
lease_watch_shmem_size(void)
{
	return add_size(offsetof(LeaseWatchShared, watchers),
					mul_size(MaxBackends, sizeof(LeaseWatcher)));
}

static void
lease_watch_shmem_startup(void)
{
	bool		found;

	LWLockAcquire(AddinShmemInitLock, LW_EXCLUSIVE);
	watch_shared = ShmemInitStruct("lockctl lease watches",
								   lease_watch_shmem_size(), &found);
	if (!found)
		memset(watch_shared, 0, lease_watch_shmem_size());
	LWLockRelease(AddinShmemInitLock);
}

static const char *
lease_end_name(int how)
{
	switch (how)
	{
		case LEASE_END_RELEASED:
			return "released";
		case LEASE_END_FORCED:
			return "force-released";
		case LEASE_END_TAKEN_OVER:
			return "taken over";
		default:
			return "expired";
	}
}

/*
 * The lease of token (in key's database) ended, as how says: remember it
 * and wake its watchers.  Caller holds the lease lock exclusively.
 */
void
lease_watch_end(Oid dbid, int64 token, Oid roleid, LeaseEndHow how)
{
	LeaseEndRecord *r;

	if (watch_shared == NULL)
		return;
	r = &watch_shared->ring[watch_shared->next++ % LEASE_WATCH_RING];
	r->dbid = dbid;
	r->roleid = roleid;
	r->token = token;
	r->how = how;

	if (watch_shared->nwatchers > 0)
	{
		int			i;

		for (i = 0; i < MaxBackends; i++)
		{
			LeaseWatcher *w = &watch_shared->watchers[i];

			if (w->token == token && w->dbid == dbid)
			{
				w->how = how;
				SetLatch(w->latch);
			}
		}
	}
}

/*
 * Where the lease of token stands.  Caller holds the lease lock.
 */
static LeaseWatchState
lease_watch_state(const LeaseKey *key, int64 token, int64 now, Oid *roleid,
				  int64 *expires, int *how)
{
	LeaseEntry *e = hash_search(lease_hash, key, HASH_FIND, NULL);
	int			i;

	if (e != NULL && e->permits == 1 && e->held && e->token == token)
	{
		*roleid = e->roleid;
		*expires = e->expires_mono;
		if (now < e->expires_mono)
			return WATCH_LIVE;
		if (e->nwaiters > 0)
			return WATCH_PENDING;
		*how = LEASE_END_EXPIRED;
		return WATCH_ENDED;
	}
	if (lease_in_holders(e, token))
	{
		LeaseHolder *h = lease_counted_find(e, token);

		if (h != NULL && !h->ended)
		{
			*roleid = h->roleid;
			*expires = h->expires_mono;
			if (now < h->expires_mono)
				return WATCH_LIVE;
			*how = LEASE_END_EXPIRED;
			return WATCH_ENDED;
		}
	}
	for (i = 0; i < LEASE_WATCH_RING; i++)
	{
		LeaseEndRecord *r = &watch_shared->ring[i];

		if (r->how != 0 && r->token == token && r->dbid == key->dbid)
		{
			*roleid = r->roleid;
			*how = r->how;
			return WATCH_ENDED;
		}
	}
	return WATCH_UNKNOWN;
}

static void
lease_unwatch_locked(void)
{
	if (my_watcher == NULL)
		return;
	my_watcher->token = 0;
	my_watcher->how = 0;
	watch_shared->nwatchers--;
	my_watcher = NULL;
}

/*
 * Stop watching, from an error or exit path, where the lease lock may or
 * may not be held already.
 */
static void
lease_unwatch(void)
{
	bool		held;

	if (my_watcher == NULL || lease_shared == NULL)
		return;
	held = LWLockHeldByMeInMode(lease_shared->lock, LW_EXCLUSIVE);
	if (!held)
	{
		if (LWLockHeldByMe(lease_shared->lock))
			LWLockRelease(lease_shared->lock);
		LWLockAcquire(lease_shared->lock, LW_EXCLUSIVE);
	}
	lease_unwatch_locked();
	if (!held)
		LWLockRelease(lease_shared->lock);
}

static void
lease_watch_exit(int code, Datum arg)
{
	lease_unwatch();
}

/*
 * Sleep until the lease of token ends (returns how) or deadline passes
 * (returns 0).
 */
static int
lease_watch_loop(const LeaseKey *key, int64 token, int64 deadline)
{
	for (;;)
	{
		LeaseWatchState st;
		Oid			roleid = InvalidOid;
		int64		expires = 0;
		int			how = 0;
		int64		now;
		int64		sleep_until;
		long		timeout_ms;

		ResetLatch(MyLatch);
		CHECK_FOR_INTERRUPTS();

		LWLockAcquire(lease_shared->lock, LW_EXCLUSIVE);
		now = lease_now_mono();
		if (my_watcher == NULL)
		{
			Assert(MyBackendId >= 1 && MyBackendId <= MaxBackends);
			my_watcher = &watch_shared->watchers[MyBackendId - 1];
			my_watcher->latch = MyLatch;
			my_watcher->dbid = key->dbid;
			my_watcher->how = 0;
			my_watcher->token = token;
			watch_shared->nwatchers++;
		}
		how = my_watcher->how;
		st = how != 0 ? WATCH_ENDED :
			lease_watch_state(key, token, now, &roleid, &expires, &how);
		if (st == WATCH_ENDED || st == WATCH_UNKNOWN || now >= deadline)
		{
			lease_unwatch_locked();
			LWLockRelease(lease_shared->lock);
			return st == WATCH_ENDED ? how :
				st == WATCH_UNKNOWN ? LEASE_END_EXPIRED : 0;
		}
		sleep_until = deadline;
		if (st == WATCH_LIVE)
			sleep_until = Min(sleep_until, expires);
		else					/* the grant wakes us; a fence may delay it */
			sleep_until = Min(sleep_until,
							  now + LEASE_FENCE_RECHECK_MS * INT64CONST(1000));
		LWLockRelease(lease_shared->lock);

		timeout_ms = (long) ((sleep_until - now + 999) / 1000);
		if (timeout_ms < 1)
			timeout_ms = 1;
		(void) WaitLatch(MyLatch,
						 WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
						 timeout_ms, PG_WAIT_EXTENSION);
	}
}

/*
 * lease_watch_loop, leaving the watcher slot on error or cancel.
 */
static pg_noinline int
lease_watch_wait(const LeaseKey *key, int64 token, int64 deadline)
{
	volatile int how = 0;

	if (!exit_callback_registered)
	{
		before_shmem_exit(lease_watch_exit, (Datum) 0);
		exit_callback_registered = true;
	}
	PG_TRY();
	{
		how = lease_watch_loop(key, token, deadline);
	}
	PG_CATCH();
	{
		lease_unwatch();
		PG_RE_THROW();
	}
	PG_END_TRY();
	return how;
}

/*
 * lockctl.watch(resource text, token bigint, timeout interval) returns
 * text: how the lease of token ended, or 'live' when timeout passed first.
 */
PG_FUNCTION_INFO_V1(lockctl_watch);
Datum
lockctl_watch(PG_FUNCTION_ARGS)
{
	char	   *resource = lockctl_arg_name(fcinfo, 0, "resource", false);
	int64		token = lockctl_arg_int64(fcinfo, 1, "token", 1, PG_INT64_MAX);
	int64		timeout_us = lockctl_arg_interval_us(fcinfo, 2, "timeout", 0,
													 LEASE_WAIT_MAX_US);
	LeaseKey	key;
	LeaseWatchState st;
	Oid			roleid = InvalidOid;
	int64		expires = 0;
	int			how = 0;
	int64		now;

	lease_check_shmem();
	if (watch_shared == NULL)
		lease_check_shmem();
	lease_make_key(&key, resource);

	LWLockAcquire(lease_shared->lock, LW_SHARED);
	now = lease_now_mono();
	st = lease_watch_state(&key, token, now, &roleid, &expires, &how);
	LWLockRelease(lease_shared->lock);

	/* another role's lease, or one unknown: a stale token, and no more */
	if (st == WATCH_UNKNOWN || !has_privs_of_role(GetUserId(), roleid))
		ereport(ERROR,
				(errcode(ERRCODE_T_R_SERIALIZATION_FAILURE),
				 errmsg("lease \"%s\" is not held by token " INT64_FORMAT,
						resource, token),
				 errhint("Only the role that took a lease, and roles with its privileges, may watch it.")));

	if (st != WATCH_ENDED)
		how = lease_watch_wait(&key, token, now + timeout_us);
	PG_RETURN_TEXT_P(cstring_to_text(how == 0 ? "live" : lease_end_name(how)));
}
