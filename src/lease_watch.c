/*-------------------------------------------------------------------------
 *
 * lease_watch.c
 *	  lockctl.watch(resource, token, timeout): sleep until the lease of
 *	  token ends, and say how: 'released', 'force-released', 'expired',
 *	  'taken over' or 'lost'; or 'live' when timeout passes first.
 *
 * How an end is known
 * -------------------
 * An exclusive lease ends in one place, lease_unhold (lease.c), and a
 * holder of a counted or shared lease in one place, lease_holder_uncount
 * (lease_counted.c); each calls lease_watch_end() under the lease lock,
 * once per grant, with how it ended:
 *
 *	 released		 release() by its role
 *	 force-released	 force_release, release_role_leases,
 *					 release_database_leases, or the commit of a DROP ROLE
 *					 or DROP DATABASE of its role or database
 *	 taken over		 it ran out and was granted to the first in line (an
 *					 exclusive lease; counted and shared holders that run
 *					 out are 'expired': a permit has no one successor)
 *	 expired		 it ran out (reclaimed by a sweep, a grant, a release, or
 *					 seen by a watch with nobody in line for it)
 *	 lost			 its era is no longer the server's (lease_token.c: a
 *					 raised token floor); it is not live on this line of
 *					 history any more
 *	 session ended	 a lease bound to its session (acquire's bind =>
 *					 'session', lease_session.c) whose session ended
 *
 * lease_watch_end writes the end into a ring of the last LEASE_WATCH_RING
 * ends in shared memory, so that a watch that comes late still learns how
 * the lease ended, and sets the latch of every backend watching that token.
 * When nobody watches, that costs a few stores under a lock already held.
 * The ring is not kept across a restart.
 *
 * A watcher sleeps on its latch (no polling) until the lease's expiry, its
 * own timeout, or a wake-up by an end.  At the expiry it looks again: a
 * lease renewed meanwhile is watched on; an exclusive lease that ran out
 * with waiters in line is about to be taken over (the first waiter wakes at
 * the same expiry), so the watcher waits for that grant, which wakes it (or
 * for the fencing transaction to end, if the lease is fenced: until then it
 * still protects its writes; it looks again every LEASE_FENCE_RECHECK_MS,
 * as a waiter does); one that ran out with nobody in line is 'expired'.
 * An era change wakes every watcher (lease_watch_wake_all).
 *
 * Who may watch: the role that took the lease and roles with its
 * privileges (lease_may_act); to anyone else the lease looks like a stale
 * token, with renew's 40001 and its detail, which names no token.  So does
 * a token whose end is no longer remembered (or was never granted).
 *
 * A watcher has a slot (watchers[MyProcNumber]) while it sleeps; it leaves
 * it when it returns, on error or cancel (PG_CATCH) and at backend exit
 * (before_shmem_exit).  Nothing of a watch outlives the call: it works
 * through any pooling.
 *
 * Everything here is protected by the lease lock (lease.c).
 *
 * src/lease_watch.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <limits.h>

#include "common/hashfn.h"
#include "miscadmin.h"
#include "storage/ipc.h"
#include "storage/latch.h"
#include "storage/lwlock.h"
#include "storage/proc.h"
#include "storage/shmem.h"
#include "utils/builtins.h"
#include "utils/hsearch.h"
#include "utils/wait_event.h"

#include "lease.h"

/* how many ends are remembered for watches that come late */
#define LEASE_WATCH_RING		4096

typedef struct LeaseEndRecord
{
	int64		token;
	Oid			dbid;
	uint32		reshash;		/* lease_watch_hash of the resource */
	Oid			roleid;
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
	WATCH_PENDING,				/* ran out, a waiter is taking it over */
	WATCH_ENDED,				/* *how says how */
	WATCH_UNKNOWN				/* not held, end not remembered */
} LeaseWatchState;

static LeaseWatchShared *watch_shared = NULL;
static LeaseWatcher *my_watcher = NULL;
static bool exit_callback_registered = false;

static Size lease_watch_shmem_size(void);
static void lease_watch_shmem_startup(void);
static uint32 lease_watch_hash(const LeaseKey *key);
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

	watch_shared = NULL;
	LWLockAcquire(AddinShmemInitLock, LW_EXCLUSIVE);
	watch_shared = ShmemInitStruct("lockctl lease watches",
								   lease_watch_shmem_size(), &found);
	if (!found)
		memset(watch_shared, 0, lease_watch_shmem_size());
	LWLockRelease(AddinShmemInitLock);
}

static uint32
lease_watch_hash(const LeaseKey *key)
{
	return hash_bytes((const unsigned char *) key->resource,
					  strlen(key->resource));
}

/* how a lease ended, as watch says it and a NOTIFY's payload (lease_notify.c) */
const char *
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
		case LEASE_END_LOST:
			return "lost";
		case LEASE_END_SESSION:
			return "session ended";
		default:
			return "expired";
	}
}

/*
 * The lease of token on key ended, as how (a LeaseEndHow) says: remember
 * it and wake its watchers.  With how 0, it did not end but its expiry
 * moved (renew, fence's extend): only wake its watchers, which sleep until
 * the old expiry.  Caller holds the lease lock exclusively.  Raises no
 * error (it is called at commit, between stores that must all happen).
 */
void
lease_watch_end(const LeaseKey *key, int64 token, Oid roleid, int how)
{
	if (watch_shared == NULL)
		return;
	if (how != 0)
	{
		LeaseEndRecord *r =
			&watch_shared->ring[watch_shared->next++ % LEASE_WATCH_RING];

		r->token = token;
		r->dbid = key->dbid;
		r->reshash = lease_watch_hash(key);
		r->roleid = roleid;
		r->how = how;
		/* its NOTIFY, or its session binding (lease_notify.c) */
		lease_notify_end(key, token, how);
	}

	if (watch_shared->nwatchers > 0)
	{
		int			i;

		for (i = 0; i < MaxBackends; i++)
		{
			LeaseWatcher *w = &watch_shared->watchers[i];

			if (w->token == token && w->dbid == key->dbid)
			{
				if (how != 0)
					w->how = how;
				SetLatch(w->latch);
			}
		}
	}
}

/*
 * Wake every watcher to look again (the era changed: the leases of the
 * old one are lost).  Caller holds the lease lock.
 */
void
lease_watch_wake_all(void)
{
	int			i;

	if (watch_shared == NULL || watch_shared->nwatchers == 0)
		return;
	for (i = 0; i < MaxBackends; i++)
	{
		LeaseWatcher *w = &watch_shared->watchers[i];

		if (w->token != 0)
			SetLatch(w->latch);
	}
}

/*
 * How many sessions sleep in watch now (lockctl.lease_stats).  Caller
 * holds the lease lock.
 */
int
lease_watch_count(void)
{
	return watch_shared == NULL ? 0 : watch_shared->nwatchers;
}

/*
 * Where the lease of token on key stands.  Caller holds the lease lock
 * (either mode).  *roleid is the role that took it, unless UNKNOWN.
 */
static LeaseWatchState
lease_watch_state(const LeaseKey *key, int64 token, int64 now, Oid *roleid,
				  int64 *expires, int *how)
{
	LeaseEntry *e = hash_search(lease_hash, key, HASH_FIND, NULL);
	uint32		reshash;
	uint64		i;

	if (e != NULL && e->held && e->token == token)
	{
		*roleid = e->roleid;
		*expires = e->expires_mono;
		/* a lease carried over from WAL keeps its older era (lease_wal.c) */
		if (!LeaseTokenLive(token) && !lease_carried_live(e))
		{
			*how = LEASE_END_LOST;
			return WATCH_ENDED;
		}
		if (now < e->expires_mono)
			return WATCH_LIVE;
		if (e->nwaiters > 0)
			return WATCH_PENDING;
		*how = LEASE_END_EXPIRED;
		return WATCH_ENDED;
	}
	if (e != NULL && e->nholders > 0)
	{
		LeaseHolder *h = lease_counted_find(e, token);

		/* in_quota: not ended yet (else its end is in the ring) */
		if (h != NULL && h->in_quota)
		{
			*roleid = h->roleid;
			*expires = h->expires_mono;
			if (!LeaseTokenLive(token))
			{
				*how = LEASE_END_LOST;
				return WATCH_ENDED;
			}
			if (lease_holder_live(h, now))
				return WATCH_LIVE;
			*how = LEASE_END_EXPIRED;
			return WATCH_ENDED;
		}
	}

	/* the ring, newest first */
	reshash = lease_watch_hash(key);
	for (i = 0; i < LEASE_WATCH_RING && i < watch_shared->next; i++)
	{
		LeaseEndRecord *r =
			&watch_shared->ring[(watch_shared->next - 1 - i) % LEASE_WATCH_RING];

		if (r->how != 0 && r->token == token && r->dbid == key->dbid &&
			r->reshash == reshash)
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
	my_watcher->latch = NULL;
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
			lease_unlock();
		LWLockAcquire(lease_shared->lock, LW_EXCLUSIVE);
	}
	lease_unwatch_locked();
	if (!held)
		lease_unlock();
}

static void
lease_watch_exit(int code, Datum arg)
{
	lease_unwatch();
}

/*
 * Sleep until the lease of token ends (returns how) or deadline passes
 * (returns 0 if it is still live then).
 */
static int
lease_watch_loop(const LeaseKey *key, int64 token, int64 deadline)
{
	static uint32 wait_event = 0;	/* see lockctl_wait_event */

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
			Assert(MyProcNumber >= 0 && MyProcNumber < MaxBackends);
			my_watcher = &watch_shared->watchers[MyProcNumber];
			my_watcher->latch = MyLatch;
			my_watcher->dbid = key->dbid;
			my_watcher->how = 0;
			my_watcher->token = token;
			watch_shared->nwatchers++;
		}
		how = my_watcher->how;
		st = how != 0 ? WATCH_ENDED :
			lease_watch_state(key, token, now, &roleid, &expires, &how);
		if (st != WATCH_LIVE && st != WATCH_PENDING)
		{
			lease_unwatch_locked();
			lease_unlock();
			/* not remembered any more (cannot happen within a ring's turn) */
			return st == WATCH_ENDED ? how : LEASE_END_EXPIRED;
		}
		if (now >= deadline)
		{
			lease_unwatch_locked();
			lease_unlock();
			/* a lease that ran out is no longer live, handed over or not */
			return st == WATCH_LIVE ? 0 : LEASE_END_EXPIRED;
		}
		sleep_until = deadline;
		if (st == WATCH_LIVE)
			sleep_until = Min(sleep_until, expires);
		else					/* the grant wakes us; a fence may delay it */
			sleep_until = Min(sleep_until,
							  now + LEASE_FENCE_RECHECK_MS * INT64CONST(1000));
		lease_unlock();

		/* round up, so as not to wake just before the moment */
		timeout_ms = (long) Min((sleep_until - now + 999) / 1000, INT_MAX);
		if (timeout_ms < 1)
			timeout_ms = 1;
		(void) WaitLatch(MyLatch,
						 WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
						 timeout_ms,
						 lockctl_wait_event(&wait_event, "LockctlLeaseWatch"));
	}
}

/*
 * lease_watch_loop, leaving the watcher slot on error or cancel.  Kept
 * apart from its caller so that no local variable lives across the setjmp.
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
 * Reads nothing but the lease table: allowed in a read-only transaction
 * and on a standby (which has no leases: every token there is stale).
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
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("lockctl lease table is not available"),
				 errhint("Add 'lockctl' to \"shared_preload_libraries\" and restart the server.")));
	lease_make_key(&key, resource);

	LWLockAcquire(lease_shared->lock, LW_SHARED);
	now = lease_now_mono();
	st = lease_watch_state(&key, token, now, &roleid, &expires, &how);
	if (st == WATCH_UNKNOWN)
	{
		/*
		 * Check the role of whoever holds the resource now instead, as
		 * lease_find_own does, so that a token not known costs what
		 * another role's token costs.
		 */
		LeaseEntry *e = hash_search(lease_hash, &key, HASH_FIND, NULL);

		if (e != NULL && e->held)
			roleid = e->roleid;
		else if (e != NULL && e->nholders > 0)
			roleid = dlist_container(LeaseHolder, node,
									 dlist_head_node(&e->holders))->roleid;
		else
			roleid = lease_session_role();
	}
	lease_unlock();

	/*
	 * Another role's lease, or one not known: a stale token, with renew's
	 * error and detail, whichever it is (the privilege check reads the
	 * catalogs: never under the lease lock).
	 */
	if (!lease_may_act(roleid) || st == WATCH_UNKNOWN)
	{
		LeaseLost	lost;

		memset(&lost, 0, sizeof(lost));
		lease_report_lost(resource, token, &lost, false);
	}

	if (st != WATCH_ENDED)
		how = lease_watch_wait(&key, token, now + timeout_us);
	PG_RETURN_TEXT_P(cstring_to_text(how == 0 ? "live" : lease_end_name(how)));
}
