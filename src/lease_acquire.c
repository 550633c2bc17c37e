/*-------------------------------------------------------------------------
 *
 * lease_acquire.c
 *	  lockctl.acquire(): grant a lease at once, or wait for it in a
 *	  first-come-first-served line, sleeping on the backend's latch.
 *
 * Locking protocol (waiting)
 * --------------------------
 * A backend whose acquire cannot be granted and that may wait
 * puts its slot (lease_shared->waiters[MyProcNumber]) at the tail of the
 * entry's waiter list and sleeps on its own latch, with a timeout at the
 * earlier of the end of its wait and the holder's expiry.  Only the head of
 * the list may take a free lease (first come, first served; a new acquire
 * that does not wait also yields to queued waiters).  Whoever makes the
 * lease free (release, force_release, a head that gives up, the end of a
 * fencing transaction) sets the head's latch; so does a renew, which may
 * bring the expiry the head sleeps until forward, and a head that leaves
 * the line with the lease when the next one would otherwise sleep past the
 * new expiry (each waiter's wake_at says until when it sleeps; a waiter
 * that queues behind a head about to take a free lease sleeps at most that
 * head's ttl, so in a busy line nobody is woken for nothing).  An expiry
 * itself needs no wake-up because the head's timeout is the expiry.  A waiter leaves the list on
 * grant, on timeout, and on error or cancel (PG_CATCH), and at backend
 * exit (before_shmem_exit) for FATAL exits, so nothing is left behind.
 * An entry is removed from the hash only when nobody holds it, nobody
 * waits for it and no transaction can hold its fence lock, so a waiter's
 * entry pointer stays valid while it is queued.
 * A set of acquire_all (lease_all.c) queues a slot of its own in each of
 * its resources' lines, with this same protocol; lease_waiter_leave and
 * lease_sleep_until serve both.
 *
 * Wait histogram
 * --------------
 * Every wait ends in lease_dequeue, under the lease lock, whichever way it
 * ends (granted, timed out, or cancelled on an error or exit path), so that
 * is where its length goes into lease_shared->wait_hist: under a lock
 * already held, with no other cost on the path of a hand-over.  Acquires
 * that did not sleep are not counted (they are lease_stats' grants and
 * conflicts).
 *
 * src/lease_acquire.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "miscadmin.h"
#include "pgstat.h"
#include "storage/ipc.h"
#include "storage/latch.h"
#include "storage/lwlock.h"
#include "storage/proc.h"
#include "utils/timestamp.h"
#include "utils/wait_event.h"

#include "lease.h"

static bool exit_callback_registered = false;

/*
 * Grant e to owner if possible, by the kind asked for: shared
 * (lease_shared.c), or by e's kind: one holder, or counted
 * (lease_counted.c).  While anyone waits, e's kind does not change.
 */
#define lease_grant(e, owner, ttl_us, may_take, now, shared) \
	((shared) ? lease_shared_try_grant(e, owner, ttl_us, may_take, now) : \
	 (e)->permits > 1 ? \
	 lease_counted_try_grant(e, owner, ttl_us, may_take, now) : \
	 lease_try_grant(e, owner, ttl_us, may_take, now))

/* the waiter slot of this backend while it is queued, else NULL */
static LeaseWaiter *my_waiter = NULL;

/*
 * Upper bounds of the wait histogram's buckets (lease.h): 1 ms to 60 s,
 * about a 1-5-10 progression, as Prometheus' client libraries use.  Waits
 * are at most LEASE_WAIT_MAX_US (a day): longer than 60 s goes in +Inf.
 */
const int64 lease_wait_bounds_us[LEASE_WAIT_BOUNDS] = {
	1000, 5000, 10000, 50000, 100000, 500000,
	1000000, 5000000, 10000000, 60000000
};

static void lease_dequeue(LeaseWaitOutcome outcome);
static void lease_leave_queue(void);
static void lease_exit_callback(int code, Datum arg);
static LeaseWaiter *lease_enqueue(LeaseEntry *e, const char *owner,
								  int64 ttl_us, bool shared);
static Datum lease_acquire(FunctionCallInfo fcinfo, int32 permits,
						   bool shared);
static int64 lease_wait_loop(LeaseEntry *e, LeaseWaiter *w,
							 const char *owner, int64 ttl_us, int64 deadline,
							 int64 now, int64 sleep_until,
							 const LeaseOptions *opts);
static int64 lease_wait(LeaseEntry *e, LeaseWaiter *w, const char *owner,
						int64 ttl_us, int64 deadline, int64 now,
						int64 sleep_until, const LeaseOptions *opts);

/*
 * Count the wait of w, which ends now with outcome, in the wait histogram.
 * Caller holds the lease lock exclusively.  Also acquire_all's (lease_all.c).
 */
void
lease_wait_record(LeaseWaiter *w, LeaseWaitOutcome outcome)
{
	LeaseWaitHistogram *h = &lease_shared->wait_hist[outcome];
	int64		waited = lease_now_mono() - w->since_mono;
	int			i;

	if (waited < 0)
		waited = 0;
	for (i = 0; i < LEASE_WAIT_BOUNDS; i++)
		if (waited <= lease_wait_bounds_us[i])
			break;
	h->buckets[i]++;
	h->sum_us += (uint64) waited;
}

/*
 * Take this backend's slot off its entry's waiter list, counting its wait
 * as ended with outcome.  Caller holds the lease lock exclusively.
 */
static void
lease_dequeue(LeaseWaitOutcome outcome)
{
	LeaseWaiter *w = my_waiter;

	my_waiter = NULL;
	if (w == NULL || w->entry == NULL)
		return;
	lease_wait_record(w, outcome);
	lease_waiter_leave(w);
}

/*
 * Take waiter slot w off its entry's waiter list.  If it was first in line
 * and the lease is free, the next one in line is woken; an entry nobody
 * needs is removed.  Caller holds the lease lock exclusively.  Also for the
 * slots of acquire_all (lease_all.c).
 */
void
lease_waiter_leave(LeaseWaiter *w)
{
	LeaseEntry *e = w->entry;
	bool		was_head;

	was_head = (dlist_head_node(&e->waiters) == &w->node);
	dlist_delete(&w->node);
	e->nwaiters--;
	w->entry = NULL;
	/*
	 * The place in line no longer counts for the role (a grant counted the
	 * lease itself).
	 */
	lease_role_add(w->roleid, -1);

	/*
	 * The next in line must look again if the lease may be free now, or
	 * if it was taken (by the one leaving) with an expiry before the time
	 * the next one sleeps until.  When the one leaving took the lease, the
	 * next one mostly sleeps until an earlier expiry, or (lease_sleep_until)
	 * until at most the ttl the one leaving asked for, which this grant
	 * gave: waking it would only cost a hand-over a context switch and a
	 * turn at the lease lock, for nothing.  That holds for one exclusive
	 * holder only: when the one leaving was a shared waiter, or the lease
	 * is counted or has shared holders, another permit or another shared
	 * grant may be free for the next one, which is always woken.
	 */
	if (was_head)
	{
		int64		now = lease_now_mono();

		if (w->shared || lease_has_holders(e) ||
			!lease_is_live(e, now) || dlist_is_empty(&e->waiters) ||
			dlist_container(LeaseWaiter, node,
							dlist_head_node(&e->waiters))->wake_at > e->expires_mono)
			lease_wake_head(e);
	}
	lease_maybe_remove(e);
}

/*
 * Leave the waiter list from an error or exit path, where the lease lock
 * may or may not be held already.  The wait counts as cancelled: whatever
 * ended it (a cancel, statement_timeout, a terminated backend), acquire
 * returned neither a token nor NULL.
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
			lease_unlock();
		LWLockAcquire(lease_shared->lock, LW_EXCLUSIVE);
	}
	lease_dequeue(LEASE_WAIT_CANCELLED);
	if (!held)
		lease_unlock();
}

static void
lease_exit_callback(int code, Datum arg)
{
	lease_leave_queue();
}

/*
 * Put this backend's waiter slot at the tail of e's line.  Caller holds the
 * lease lock exclusively.
 */
static LeaseWaiter *
lease_enqueue(LeaseEntry *e, const char *owner, int64 ttl_us, bool shared)
{
	LeaseWaiter *w;

	if (!exit_callback_registered)
	{
		before_shmem_exit(lease_exit_callback, (Datum) 0);
		exit_callback_registered = true;
	}
	Assert(MyProcNumber >= 0 && MyProcNumber < MaxBackends);
	w = &lease_shared->waiters[MyProcNumber];
	w->latch = MyLatch;
	w->pid = MyProcPid;
	w->entry = e;
	w->since = GetCurrentTimestamp();
	w->since_mono = lease_now_mono();
	w->roleid = lease_session_role();
	w->ttl_us = ttl_us;
	w->wake_at = 0;				/* set by the caller before it sleeps */
	w->shared = shared;
	w->set_id = 0;
	strlcpy(w->owner, owner, sizeof(w->owner));
	dlist_push_tail(&e->waiters, &w->node);
	e->nwaiters++;
	lease_role_add(w->roleid, 1);
	my_waiter = w;
	lease_shared->stats.waits++;
	return w;
}

/*
 * When waiter w on e must wake up at the latest, if nobody sets its latch:
 * its deadline, or sooner the holder's expiry, or the next look at a
 * fenced lease.  A lease that is free while someone else is first in line
 * is about to be that one's, for at least the ttl it asked for: w need not
 * wake before then (lease_dequeue relies on this to let the next in line
 * sleep on when the first leaves with the lease).  Caller holds the lease
 * lock.  Also acquire_all's, for each resource of its set (lease_all.c).
 */
int64
lease_sleep_until(LeaseEntry *e, LeaseWaiter *w, int64 now, int64 deadline)
{
	int64		sleep_until = deadline;

	/*
	 * Counted and shared holders: until the first of them expires (or its
	 * fence is looked at again); a holder leaving sets the head's latch,
	 * and a head leaving always wakes the next (lease_dequeue).
	 */
	if (lease_has_holders(e))
	{
		if (e->nholders > 0)
			sleep_until = Min(sleep_until, lease_counted_next_change(e, now));
		if (lease_is_live(e, now))
			sleep_until = Min(sleep_until, e->expires_mono);
		else if (e->fenced)
			sleep_until = Min(sleep_until,
							  now + LEASE_FENCE_RECHECK_MS * INT64CONST(1000));
		return sleep_until;
	}
	if (lease_is_live(e, now))
		sleep_until = Min(sleep_until, e->expires_mono);
	else if (e->fenced)
		sleep_until = Min(sleep_until,
						  now + LEASE_FENCE_RECHECK_MS * INT64CONST(1000));
	else
	{
		LeaseWaiter *head = dlist_container(LeaseWaiter, node,
											dlist_head_node(&e->waiters));

		if (head != w)
			sleep_until = Min(sleep_until, now + head->ttl_us);
	}
	return sleep_until;
}

/*
 * The waiting part of acquire: w is queued on e, and the caller found the
 * lease taken at now, under the lock it held when it queued w.  Returns the
 * token, or 0 when the wait ran out; either way w has left the queue.
 *
 * The loop sleeps first: the caller has just looked, and looking again at
 * once would take the lease lock a second time for nothing, on the path of
 * every hand-over (the one who releases waits for that lock).  No wake-up
 * is lost: the latch is only reset after a sleep and before the look that
 * follows it, so a SetLatch from after the caller's look ends the first
 * sleep at once.
 */
static int64
lease_wait_loop(LeaseEntry *e, LeaseWaiter *w, const char *owner,
				int64 ttl_us, int64 deadline, int64 now, int64 sleep_until,
				const LeaseOptions *opts)
{
	static uint32 wait_event = 0;	/* see lockctl_wait_event */
	int64		token;

	for (;;)
	{
		long		timeout_ms;

		/* round up, so as not to wake just before the moment */
		timeout_ms = (long) ((sleep_until - now + 999) / 1000);
		if (timeout_ms < 1)
			timeout_ms = 1;
		(void) WaitLatch(MyLatch,
						 WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
						 timeout_ms,
						 lockctl_wait_event(&wait_event, "LockctlLeaseWait"));
		ResetLatch(MyLatch);
		CHECK_FOR_INTERRUPTS();
		LeaseTokenCheck();

		LWLockAcquire(lease_shared->lock, LW_EXCLUSIVE);
		now = lease_now_mono();
		token = lease_grant(e, owner, ttl_us,
							dlist_head_node(&e->waiters) == &w->node, now,
							w->shared);
		if (token != 0 || now >= deadline)
		{
			if (token == 0)
				lease_shared->stats.timeouts++;
			else
				lease_options_granted(e, token, opts);
			lease_dequeue(token != 0 ? LEASE_WAIT_GRANTED :
						  LEASE_WAIT_TIMED_OUT);
			lease_unlock();
			break;
		}
		sleep_until = lease_sleep_until(e, w, now, deadline);
		w->wake_at = sleep_until;
		lease_unlock();
	}
	return token;
}

/*
 * lease_wait_loop, leaving the queue on error or cancel.  Kept apart from
 * its caller so that no local variable lives across the setjmp.
 */
static pg_noinline int64
lease_wait(LeaseEntry *e, LeaseWaiter *w, const char *owner, int64 ttl_us,
		   int64 deadline, int64 now, int64 sleep_until,
		   const LeaseOptions *opts)
{
	volatile int64 token = 0;

	PG_TRY();
	{
		token = lease_wait_loop(e, w, owner, ttl_us, deadline, now,
								sleep_until, opts);
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
 * lockctl.acquire(resource text, owner text, ttl interval, wait interval,
 * permits integer) returns bigint: a fencing token, or NULL if not granted
 * within wait.  permits > 1 makes a counted lease (lease_counted.c); 1.0's
 * SQL has no permits argument.
 */
PG_FUNCTION_INFO_V1(lockctl_acquire);
Datum
lockctl_acquire(PG_FUNCTION_ARGS)
{
	int32		permits = 1;

	if (PG_NARGS() > 4)
		permits = lease_arg_permits(fcinfo, 4);
	return lease_acquire(fcinfo, permits, false);
}

/*
 * lockctl.acquire_shared(resource text, owner text, ttl interval, wait
 * interval) returns bigint: a shared lease (lease_shared.c), or NULL.
 */
PG_FUNCTION_INFO_V1(lockctl_acquire_shared);
Datum
lockctl_acquire_shared(PG_FUNCTION_ARGS)
{
	return lease_acquire(fcinfo, 1, true);
}

/*
 * acquire and acquire_shared: the first four arguments are theirs.
 */
static Datum
lease_acquire(FunctionCallInfo fcinfo, int32 permits, bool shared)
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
	int64		sleep_until;
	int64		token;
	LeaseOptions opts;

	/* notify and bind follow permits (acquire) or wait (acquire_shared) */
	lease_options_arg(fcinfo, shared ? 4 : 5, &opts);
	lease_check_writable(shared ? "lockctl.acquire_shared()" :
						 "lockctl.acquire()");
	lease_check_ttl(ttl_us, shared ? "lockctl.acquire_shared" :
					"lockctl.acquire");
	lease_check_shmem();
	LeaseTokenCheck();
	lease_make_key(&key, resource);

	LWLockAcquire(lease_shared->lock, LW_EXCLUSIVE);
	now = lease_now_mono();
	/* before lease_enter: reclaiming may remove entries */
	lease_check_quota(&key, owner, lease_session_role(), now);
	e = lease_enter(&key);
	deadline = now + wait_us;
	if (e->permits != permits)
		lease_set_permits(e, permits, now);
	token = lease_grant(e, owner, ttl_us, e->nwaiters == 0, now, shared);
	if (token != 0)
	{
		lease_options_granted(e, token, &opts);
		lease_unlock();
		/* not reported before it is durable (lease_wal.c) */
		LeaseWalWait();
		PG_RETURN_INT64(token);
	}
	if (lease_is_live(e, now) || e->nholders >= e->permits)
		lease_shared->stats.conflicts++;
	if (wait_us == 0)
	{
		lease_shared->stats.timeouts++;
		lease_maybe_remove(e);
		lease_unlock();
		PG_RETURN_NULL();
	}

	w = lease_enqueue(e, owner, ttl_us, shared);
	sleep_until = lease_sleep_until(e, w, now, deadline);
	w->wake_at = sleep_until;
	lease_unlock();

	token = lease_wait(e, w, owner, ttl_us, deadline, now, sleep_until,
					   &opts);

	if (token == 0)
		PG_RETURN_NULL();
	LeaseWalWait();
	PG_RETURN_INT64(token);
}
