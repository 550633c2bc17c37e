/*-------------------------------------------------------------------------
 *
 * lease_all.c
 *	  Sets of leases: lockctl.acquire_all() grants an exclusive lease on
 *	  every resource of an array or on none, and lockctl.release_all()
 *	  releases several leases under one look at the lease table.
 *
 * Locking protocol (sets)
 * -----------------------
 * The whole set is looked at and granted under one hold of the lease lock
 * (lease.c), so no other backend ever sees part of a set granted: each
 * resource must be free (or already held by the same owner and role: a
 * safe retry, as acquire's), not fenced, without shared holders, and have
 * nobody ahead in its line.  Tokens are drawn before any entry changes, so
 * an error leaves nothing granted.
 *
 * A set that cannot be granted and may wait queues one waiter slot on every
 * resource's line at once, under that same hold of the lock: slot i of this
 * backend's LEASE_ALL_MAX slots (all_slots, in shared memory) on resource
 * i.  The slots are LeaseWaiters like acquire's, with this backend's latch
 * and the set's id, so every waker of lease_acquire.c's protocol (release,
 * renew, the end of a fence, a head that leaves) wakes the set as it wakes
 * a single waiter.  Only the head of a line may take its resource, so:
 *	- a set never jumps ahead of an earlier waiter of any of its resources,
 *	  and later single acquires queue behind it (it is not starved);
 *	- every line is ordered by the time its waiters queued, and a set
 *	  queues on all its lines at one instant, so the waiter that queued
 *	  first is first on all its lines: waits-for between waiters follows
 *	  queue time and has no cycle.  A set never holds part of itself while
 *	  it waits, so two sets in opposite orders cannot deadlock.
 * A set at the head of a line whose resource is free keeps that line
 * waiting until it gets the whole set (first come, first served, as
 * PostgreSQL's lock queues).  The set sleeps until the earliest wake-up any
 * of its lines asks for (lease_sleep_until), and leaves every line at once
 * on grant, on timeout, on error or cancel (PG_CATCH) and at backend exit
 * (before_shmem_exit).
 *
 * src/lease_all.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "miscadmin.h"
#include "nodes/pg_list.h"
#include "pgstat.h"
#include "storage/ipc.h"
#include "storage/latch.h"
#include "storage/lwlock.h"
#include "storage/shmem.h"
#include "utils/acl.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/hsearch.h"
#include "utils/lsyscache.h"
#include "utils/timestamp.h"

#include "lease.h"

/* MaxBackends * LEASE_ALL_MAX waiter slots: backend b's are b * MAX.. */
static LeaseWaiter *all_slots = NULL;

/* this backend's slots while its set is queued (my_set_n of them) */
static LeaseWaiter *my_slots = NULL;
static int	my_set_n = 0;
static bool all_exit_registered = false;

static Size lease_all_shmem_size(void);
static void lease_all_shmem_startup(void);
static int	lease_all_names(FunctionCallInfo fcinfo, int argno,
							const char *fn, char ***names);
static int64 *lease_all_token_arg(FunctionCallInfo fcinfo, int argno,
								  const char *fn, int n);
static bool lease_all_can(LeaseEntry **entries, int n, LeaseWaiter *slots,
						  const char *owner, Oid role, int64 now);
static int64 lease_all_grant(LeaseEntry **entries, int n, const char *owner,
							 int64 ttl_us, int64 set_id, int64 now,
							 int64 *tokens);
static void lease_all_forget(const LeaseKey *keys, int n);
static void lease_all_dequeue(LeaseWaitOutcome outcome);
static void lease_all_leave_queue(void);
static void lease_all_exit_callback(int code, Datum arg);
static int64 lease_all_sleep_until(LeaseEntry **entries, int n, int64 now,
								   int64 deadline);
static bool lease_all_wait_loop(LeaseEntry **entries, int n,
								const char *owner, int64 ttl_us,
								int64 set_id, int64 deadline, int64 now,
								int64 sleep_until, int64 *tokens);
static bool lease_all_wait(LeaseEntry **entries, int n, const char *owner,
						   int64 ttl_us, int64 set_id, int64 deadline,
						   int64 now, int64 sleep_until, int64 *tokens);
static Datum lease_all_tokens(int64 *tokens, int n);

static const LockctlShmemPart lease_all_shmem_part = {
	lease_all_shmem_size, NULL, lease_all_shmem_startup
};

/*
 * Called by LeaseInit: ask for the waiter slots of sets.
 */
void
lease_all_init(void)
{
	lockctl_shmem_register(&lease_all_shmem_part);
}

static Size
lease_all_shmem_size(void)
{
	return mul_size(mul_size(MaxBackends, LEASE_ALL_MAX), sizeof(LeaseWaiter));
}

static void
lease_all_shmem_startup(void)
{
	bool		found;
	Size		size = lease_all_shmem_size();

	LWLockAcquire(AddinShmemInitLock, LW_EXCLUSIVE);
	all_slots = ShmemInitStruct("lockctl lease set waiters", size, &found);
	if (!found)
		memset(all_slots, 0, size);
	LWLockRelease(AddinShmemInitLock);
}

/*
 * The resources array argument argno of fn: one dimension, 1 to
 * LEASE_ALL_MAX names, none NULL, empty, too long or repeated.  Returns
 * how many, with the palloc'd C strings in *names.
 */
static int
lease_all_names(FunctionCallInfo fcinfo, int argno, const char *fn,
				char ***names)
{
	ArrayType  *a;
	Datum	   *elems;
	bool	   *nulls;
	int			n;
	int			i;
	int			j;

	if (PG_ARGISNULL(argno))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("resources of %s must not be null", fn)));
	a = PG_GETARG_ARRAYTYPE_P(argno);
	if (ARR_NDIM(a) > 1)
		ereport(ERROR,
				(errcode(ERRCODE_ARRAY_SUBSCRIPT_ERROR),
				 errmsg("resources of %s must be a one-dimensional array", fn)));
	deconstruct_array(a, TEXTOID, -1, false, TYPALIGN_INT,
					  &elems, &nulls, &n);
	if (n == 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("resources of %s must not be empty", fn),
				 errhint("Name at least one resource.")));
	if (n > LEASE_ALL_MAX)
		ereport(ERROR,
				(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
				 errmsg("too many resources for %s", fn),
				 errdetail("It names %d resources; the limit is %d.",
						   n, LEASE_ALL_MAX),
				 errhint("Split the set, taking its parts in one fixed order, or use fewer, coarser resources.")));
	*names = palloc(sizeof(char *) * n);
	for (i = 0; i < n; i++)
	{
		text	   *t;
		int			len;

		if (nulls[i])
			ereport(ERROR,
					(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
					 errmsg("resources of %s must not contain null", fn),
					 errdetail("Element %d is null.", i + 1)));
		t = DatumGetTextPP(elems[i]);
		len = VARSIZE_ANY_EXHDR(t);
		if (len == 0)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("resources of %s must not contain an empty name", fn),
					 errdetail("Element %d is empty.", i + 1)));
		if (len > LOCKCTL_NAME_MAXLEN)
			ereport(ERROR,
					(errcode(ERRCODE_NAME_TOO_LONG),
					 errmsg("resource of %s is too long", fn),
					 errdetail("Element %d is %d bytes long; the limit is %d bytes.",
							   i + 1, len, LOCKCTL_NAME_MAXLEN)));
		(*names)[i] = text_to_cstring(t);
		for (j = 0; j < i; j++)
			if (strcmp((*names)[j], (*names)[i]) == 0)
				ereport(ERROR,
						(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
						 errmsg("resources of %s must not repeat", fn),
						 errdetail("\"%s\" is element %d and element %d.",
								   (*names)[i], j + 1, i + 1)));
	}
	return n;
}

/*
 * The tokens array argument argno of fn: one dimension, n positive tokens
 * (one per resource).  Returns them palloc'd.
 */
static int64 *
lease_all_token_arg(FunctionCallInfo fcinfo, int argno, const char *fn, int n)
{
	ArrayType  *ta;
	Datum	   *telems;
	bool	   *tnulls;
	int			nt;
	int64	   *tokens;
	int16		typlen;
	bool		typbyval;
	char		typalign;
	int			i;

	if (PG_ARGISNULL(argno))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("tokens of %s must not be null", fn)));
	ta = PG_GETARG_ARRAYTYPE_P(argno);
	if (ARR_NDIM(ta) > 1)
		ereport(ERROR,
				(errcode(ERRCODE_ARRAY_SUBSCRIPT_ERROR),
				 errmsg("tokens of %s must be a one-dimensional array", fn)));
	get_typlenbyvalalign(INT8OID, &typlen, &typbyval, &typalign);
	deconstruct_array(ta, INT8OID, typlen, typbyval, typalign,
					  &telems, &tnulls, &nt);
	if (nt != n)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("resources and tokens of %s must have the same length", fn),
				 errdetail("There are %d resources and %d tokens.", n, nt)));
	tokens = palloc(sizeof(int64) * n);
	for (i = 0; i < n; i++)
	{
		if (tnulls[i])
			ereport(ERROR,
					(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
					 errmsg("tokens of %s must not contain null", fn),
					 errdetail("Element %d is null.", i + 1)));
		tokens[i] = DatumGetInt64(telems[i]);
		if (tokens[i] < 1)
			ereport(ERROR,
					(errcode(ERRCODE_NUMERIC_VALUE_OUT_OF_RANGE),
					 errmsg("token of %s is out of range: " INT64_FORMAT,
							fn, tokens[i]),
					 errdetail("Element %d must be between 1 and " INT64_FORMAT ".",
							   i + 1, PG_INT64_MAX)));
	}

	return tokens;
}

/*
 * Can the whole set be granted to owner (as role) now?  Each resource must
 * be held live by that owner and role (a safe retry), or be free, not
 * fenced, without shared holders and with nobody ahead in line: when slots
 * is NULL (not queued), nobody in line; else slot i first in line i.
 * Changes nothing but what a look may tidy (a fence flag nobody holds,
 * expired shared holders).  Caller holds the lease lock exclusively.
 */
static bool
lease_all_can(LeaseEntry **entries, int n, LeaseWaiter *slots,
			  const char *owner, Oid role, int64 now)
{
	int			i;

	for (i = 0; i < n; i++)
	{
		LeaseEntry *e = entries[i];
		bool		may_take;

		if (lease_is_live(e, now))
		{
			if (lease_is_retry(e, owner, role, now))
				continue;
			return false;
		}
		may_take = slots == NULL ? e->nwaiters == 0 :
			dlist_head_node(&e->waiters) == &slots[i].node;
		if (!may_take || !lease_fence_free(e))
			return false;
		if (e->nholders > 0 && lease_shared_block_exclusive(e, now))
			return false;
	}
	return true;
}

/*
 * Grant the set that lease_all_can allowed, under the same hold of the
 * lease lock: new tokens for the free resources (drawn first: that may
 * fail, and then nothing has changed), the live token with the expiry
 * pushed out for a safe retry.  Every lease of it gets set_id, or a new
 * set id if 0; a pure retry of one whole set keeps its id.  Fills tokens;
 * returns the set's id.  Caller holds the lease lock exclusively.
 */
static int64
lease_all_grant(LeaseEntry **entries, int n, const char *owner, int64 ttl_us,
				int64 set_id, int64 now, int64 *tokens)
{
	int64		same_set = -1;
	int			i;

	for (i = 0; i < n; i++)
	{
		LeaseEntry *e = entries[i];

		if (lease_is_live(e, now))
		{
			tokens[i] = 0;		/* a retry: keeps its token */
			if (same_set == -1)
				same_set = e->set_id;
			else if (same_set != e->set_id)
				same_set = 0;
		}
		else
		{
			tokens[i] = LeaseNextToken();
			same_set = 0;
		}
	}
	if (same_set > 0)
		set_id = same_set;
	else if (set_id == 0)
		set_id = ++lease_shared->last_set_id;

	for (i = 0; i < n; i++)
	{
		LeaseEntry *e = entries[i];

		if (tokens[i] != 0)
			lease_take(e, owner, ttl_us, now, tokens[i]);
		else
		{
			e->expires_mono = Max(e->expires_mono, now + ttl_us);
			lease_shared->stats.regrants++;
			tokens[i] = e->token;
			lease_wal_set(e, now);
		}
		e->set_id = set_id;
	}
	lease_shared->stats.set_grants++;
	return set_id;
}

/*
 * After an error before the set queued: drop the entries of keys that
 * nothing needs (made for this call by lease_enter).  The lease lock may
 * or may not be held.
 */
static void
lease_all_forget(const LeaseKey *keys, int n)
{
	bool		held = LWLockHeldByMeInMode(lease_shared->lock, LW_EXCLUSIVE);
	int			i;

	if (!held)
	{
		if (LWLockHeldByMe(lease_shared->lock))
			lease_unlock();
		LWLockAcquire(lease_shared->lock, LW_EXCLUSIVE);
	}
	for (i = 0; i < n; i++)
	{
		LeaseEntry *e = hash_search(lease_hash, &keys[i], HASH_FIND, NULL);

		if (e != NULL)
			lease_maybe_remove(e);
	}
	if (!held)
		lease_unlock();
}

/*
 * Take this backend's set off every line it waits in, counting its wait
 * (once) as ended with outcome.  Caller holds the lease lock exclusively.
 */
static void
lease_all_dequeue(LeaseWaitOutcome outcome)
{
	int			n = my_set_n;
	int			i;

	my_set_n = 0;
	if (n == 0)
		return;
	lease_wait_record(&my_slots[0], outcome);
	for (i = 0; i < n; i++)
		if (my_slots[i].entry != NULL)
			lease_waiter_leave(&my_slots[i]);
}

/*
 * Leave every line from an error or exit path, where the lease lock may or
 * may not be held already: the wait counts as cancelled.
 */
static void
lease_all_leave_queue(void)
{
	bool		held;

	if (my_set_n == 0 || lease_shared == NULL)
		return;
	held = LWLockHeldByMeInMode(lease_shared->lock, LW_EXCLUSIVE);
	if (!held)
	{
		if (LWLockHeldByMe(lease_shared->lock))
			lease_unlock();
		LWLockAcquire(lease_shared->lock, LW_EXCLUSIVE);
	}
	lease_all_dequeue(LEASE_WAIT_CANCELLED);
	if (!held)
		lease_unlock();
}

static void
lease_all_exit_callback(int code, Datum arg)
{
	lease_all_leave_queue();
}

/*
 * When this backend's set must wake up at the latest: the earliest time
 * any of its lines asks for, which becomes every slot's wake_at.  Caller
 * holds the lease lock exclusively.
 */
static int64
lease_all_sleep_until(LeaseEntry **entries, int n, int64 now, int64 deadline)
{
	int64		sleep_until = deadline;
	int			i;

	for (i = 0; i < n; i++)
		sleep_until = Min(sleep_until,
						  lease_sleep_until(entries[i], &my_slots[i], now,
											deadline));
	for (i = 0; i < n; i++)
		my_slots[i].wake_at = sleep_until;
	return sleep_until;
}

/*
 * The waiting part of acquire_all: this backend's set is queued on every
 * line.  Sleeps first (the caller has just looked), as lease_wait_loop
 * does, then looks at the whole set under the lease lock at each wake-up.
 * Returns whether the set was granted (tokens filled); either way the set
 * has left every line, also on error or cancel.
 */
static bool
lease_all_wait_loop(LeaseEntry **entries, int n, const char *owner,
					int64 ttl_us, int64 set_id, int64 deadline, int64 now,
					int64 sleep_until, int64 *tokens)
{
	static uint32 wait_event = 0;	/* see lockctl_wait_event */
	Oid			role = lease_session_role();

	for (;;)
	{
		long		timeout_ms;

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
		if (lease_all_can(entries, n, my_slots, owner, role, now))
		{
			(void) lease_all_grant(entries, n, owner, ttl_us, set_id, now,
								   tokens);
			lease_all_dequeue(LEASE_WAIT_GRANTED);
			lease_unlock();
			return true;
		}
		if (now >= deadline)
		{
			lease_shared->stats.timeouts++;
			lease_all_dequeue(LEASE_WAIT_TIMED_OUT);
			lease_unlock();
			return false;
		}
		sleep_until = lease_all_sleep_until(entries, n, now, deadline);
		lease_unlock();
	}
}

/*
 * lease_all_wait_loop, leaving every line on error or cancel.  Kept apart
 * so that no local variable lives across the setjmp.
 */
static pg_noinline bool
lease_all_wait(LeaseEntry **entries, int n, const char *owner, int64 ttl_us,
			   int64 set_id, int64 deadline, int64 now, int64 sleep_until,
			   int64 *tokens)
{
	volatile bool granted = false;

	PG_TRY();
	{
		granted = lease_all_wait_loop(entries, n, owner, ttl_us, set_id,
									  deadline, now, sleep_until, tokens);
	}
	PG_CATCH();
	{
		lease_all_leave_queue();
		PG_RE_THROW();
	}
	PG_END_TRY();
	return granted;
}

/* n tokens as a bigint[] */
static Datum
lease_all_tokens(int64 *tokens, int n)
{
	Datum	   *d = palloc(sizeof(Datum) * n);
	int16		typlen;
	bool		typbyval;
	char		typalign;
	int			i;

	/* not reported before they are durable (lease_wal.c) */
	LeaseWalWait();
	for (i = 0; i < n; i++)
		d[i] = Int64GetDatum(tokens[i]);
	get_typlenbyvalalign(INT8OID, &typlen, &typbyval, &typalign);
	PG_RETURN_ARRAYTYPE_P(construct_array(d, n, INT8OID, typlen, typbyval,
										  typalign));
}

/*
 * lockctl.acquire_all(resources text[], owner text, ttl interval, wait
 * interval) returns bigint[]: an exclusive lease on every resource, as the
 * session's role, with their fencing tokens in the order of resources; or
 * NULL, with none of them granted, if the whole set was not granted within
 * wait.
 */
PG_FUNCTION_INFO_V1(lockctl_acquire_all);
Datum
lockctl_acquire_all(PG_FUNCTION_ARGS)
{
	const char *fn = "lockctl.acquire_all";
	char	  **names;
	int			n = lease_all_names(fcinfo, 0, fn, &names);
	char	   *owner = lockctl_arg_name(fcinfo, 1, "owner", false);
	int64		ttl_us = lockctl_arg_interval_us(fcinfo, 2, "ttl",
												 LEASE_TTL_MIN_US,
												 LEASE_TTL_MAX_US);
	int64		wait_us = lockctl_arg_interval_us(fcinfo, 3, "wait", 0,
												  LEASE_WAIT_MAX_US);
	Oid			role = lease_session_role();
	LeaseKey   *keys = palloc(sizeof(LeaseKey) * n);
	LeaseEntry **entries = palloc(sizeof(LeaseEntry *) * n);
	int64	   *tokens = palloc(sizeof(int64) * n);
	volatile int64 set_id = 0;
	volatile int64 now = 0;
	volatile int64 sleep_until = 0;
	volatile bool granted = false;
	int64		deadline;
	int			i;

	lease_check_writable("lockctl.acquire_all()");
	lease_check_ttl(ttl_us, fn);
	lease_check_shmem();
	LeaseTokenCheck();
	for (i = 0; i < n; i++)
		lease_make_key(&keys[i], names[i]);
	if (!all_exit_registered)
	{
		before_shmem_exit(lease_all_exit_callback, (Datum) 0);
		all_exit_registered = true;
	}
	Assert(MyProcNumber >= 0 && MyProcNumber < MaxBackends);
	my_slots = &all_slots[MyProcNumber * LEASE_ALL_MAX];

	LWLockAcquire(lease_shared->lock, LW_EXCLUSIVE);
	PG_TRY();
	{
		int			needed = 0;

		now = lease_now_mono();
		/* quota first: reclaiming may remove entries; retries take none */
		for (i = 0; i < n; i++)
			if (!lease_is_retry(hash_search(lease_hash, &keys[i], HASH_FIND,
											NULL), owner, role, now))
				needed++;
		lease_check_quota_n(role, needed, now);
		for (i = 0; i < n; i++)
		{
			entries[i] = lease_enter(&keys[i]);
			/* a set takes exclusive leases: a counted resource refuses */
			if (entries[i]->permits != 1)
				lease_set_permits(entries[i], 1, now);
		}
		if (lease_all_can(entries, n, NULL, owner, role, now))
		{
			(void) lease_all_grant(entries, n, owner, ttl_us, 0, now, tokens);
			granted = true;
		}
		else
		{
			lease_shared->stats.conflicts++;
			if (wait_us > 0)
			{
				/* every place in line counts for the role */
				lease_check_quota_n(role, n, now);
				set_id = ++lease_shared->last_set_id;
				for (i = 0; i < n; i++)
				{
					LeaseWaiter *w = &my_slots[i];

					w->latch = MyLatch;
					w->pid = MyProcPid;
					w->entry = entries[i];
					w->since = GetCurrentTimestamp();
					w->since_mono = now;
					w->roleid = role;
					w->ttl_us = ttl_us;
					w->wake_at = 0;
					w->shared = false;
					w->set_id = set_id;
					strlcpy(w->owner, owner, sizeof(w->owner));
					dlist_push_tail(&entries[i]->waiters, &w->node);
					entries[i]->nwaiters++;
					lease_role_add(role, 1);
				}
				my_set_n = n;
				lease_shared->stats.waits++;
				sleep_until = lease_all_sleep_until(entries, n, now,
													now + wait_us);
			}
			else
			{
				lease_shared->stats.timeouts++;
				for (i = 0; i < n; i++)
					lease_maybe_remove(entries[i]);
			}
		}
	}
	PG_CATCH();
	{
		lease_all_forget(keys, n);
		PG_RE_THROW();
	}
	PG_END_TRY();
	lease_unlock();

	if (granted)
		return lease_all_tokens(tokens, n);
	if (wait_us == 0)
		PG_RETURN_NULL();

	deadline = now + wait_us;
	if (!lease_all_wait(entries, n, owner, ttl_us, set_id, deadline, now,
						sleep_until, tokens))
		PG_RETURN_NULL();
	return lease_all_tokens(tokens, n);
}

/*
 * lockctl.release_all(resources text[], tokens bigint[]) returns boolean[]:
 * release's answer for each resource, in order, all under one hold of the
 * lease lock (a set waiting for them finds them all free at once).  Like
 * release, a lease of a role whose privileges the caller does not have is
 * not touched and answers false, as a stale token does; the privileges of
 * the roles holding any of the resources are checked (outside the lease
 * lock, as lease_find_own does) whether the tokens match or not.
 */
PG_FUNCTION_INFO_V1(lockctl_release_all);
Datum
lockctl_release_all(PG_FUNCTION_ARGS)
{
	const char *fn = "lockctl.release_all";
	char	  **names;
	int			n = lease_all_names(fcinfo, 0, fn, &names);
	int64	   *tokens;
	LeaseKey   *keys;
	Oid			self = lease_session_role();
	List	   *others = NIL;
	List	   *allowed;
	ListCell   *lc;
	Datum	   *result;
	int64		now;
	int			i;

	tokens = lease_all_token_arg(fcinfo, 1, fn, n);

	lease_check_writable("lockctl.release_all()");
	lease_check_shmem();
	keys = palloc(sizeof(LeaseKey) * n);
	for (i = 0; i < n; i++)
		lease_make_key(&keys[i], names[i]);

	/* the other roles holding any of them: their privileges, unlocked */
	LWLockAcquire(lease_shared->lock, LW_SHARED);
	for (i = 0; i < n; i++)
	{
		LeaseEntry *e = hash_search(lease_hash, &keys[i], HASH_FIND, NULL);
		dlist_iter	it;

		if (e == NULL)
			continue;
		if (e->held && e->roleid != self)
			others = list_append_unique_oid(others, e->roleid);
		if (e->nholders > 0)
			dlist_foreach(it, &e->holders)
			{
				LeaseHolder *h = dlist_container(LeaseHolder, node, it.cur);

				if (h->roleid != self)
					others = list_append_unique_oid(others, h->roleid);
			}
	}
	lease_unlock();
	allowed = list_make1_oid(self);
	foreach(lc, others)
		if (has_privs_of_role(self, lfirst_oid(lc)))
			allowed = lappend_oid(allowed, lfirst_oid(lc));

	result = palloc(sizeof(Datum) * n);
	LWLockAcquire(lease_shared->lock, LW_EXCLUSIVE);
	now = lease_now_mono();
	for (i = 0; i < n; i++)
	{
		LeaseEntry *e = hash_search(lease_hash, &keys[i], HASH_FIND, NULL);
		LeaseHolder *h = NULL;
		Oid			owner_role = InvalidOid;
		bool		released = false;
		bool		ok;

		if (e != NULL && lease_has_holders(e))
		{
			h = e->nholders > 0 ? lease_counted_find(e, tokens[i]) : NULL;
			if (h != NULL && !h->ended)
				owner_role = h->roleid;
		}
		else if (e != NULL && e->held && e->token == tokens[i])
			owner_role = e->roleid;
		ok = OidIsValid(owner_role) && list_member_oid(allowed, owner_role);
		if (ok && h != NULL)
			released = lease_counted_end(e, h, now,
										 &lease_shared->stats.releases);
		else if (ok)
			released = lease_end(e, now, &lease_shared->stats.releases,
								 LEASE_END_RELEASED);
		result[i] = BoolGetDatum(released);
	}
	lease_unlock();

	PG_RETURN_ARRAYTYPE_P(construct_array(result, n, BOOLOID, 1, true,
										  TYPALIGN_CHAR));
}

/* a resource of fence_all and its fence lock, to sort them */
typedef struct LeaseFenceOrder
{
	uint32		hi;
	uint32		lo;
	const char *resource;
	int			i;
} LeaseFenceOrder;

static int
lease_fence_order_cmp(const void *a, const void *b)
{
	const LeaseFenceOrder *x = a;
	const LeaseFenceOrder *y = b;

	if (x->hi != y->hi)
		return x->hi < y->hi ? -1 : 1;
	if (x->lo != y->lo)
		return x->lo < y->lo ? -1 : 1;
	return strcmp(x->resource, y->resource);
}

/*
 * lockctl.fence_all(resources text[], tokens bigint[], extend interval):
 * fence (lease_fence.c) each resource with the token at the same position,
 * in one global order of their fence locks (by lock tag), whatever the
 * order of the array.  Two transactions that fence overlapping sets with
 * fence_all therefore queue on their first common lock instead of holding
 * one each and waiting for the other: no deadlock among fence_all calls.
 * (Plain fence calls in opposite orders on the same leases can deadlock;
 * PostgreSQL's deadlock detector then aborts one, 40P01.)  Each fence is
 * fence's own: the same checks, errors and counters; an error aborts the
 * transaction and with it the fences taken so far.
 */
PG_FUNCTION_INFO_V1(lockctl_fence_all);
Datum
lockctl_fence_all(PG_FUNCTION_ARGS)
{
	const char *fn = "lockctl.fence_all";
	char	  **names;
	int			n = lease_all_names(fcinfo, 0, fn, &names);
	int64	   *tokens = lease_all_token_arg(fcinfo, 1, fn, n);
	LeaseFenceOrder *order = palloc(sizeof(LeaseFenceOrder) * n);
	int			k;

	for (k = 0; k < n; k++)
	{
		LeaseKey	key;
		LOCKTAG		tag;

		lease_make_key(&key, names[k]);
		lease_fence_tag(&tag, &key);
		order[k].hi = tag.locktag_field2;
		order[k].lo = tag.locktag_field3;
		order[k].resource = names[k];
		order[k].i = k;
	}
	qsort(order, n, sizeof(LeaseFenceOrder), lease_fence_order_cmp);

	for (k = 0; k < n; k++)
	{
		LOCAL_FCINFO(inner, 3);
		int			i = order[k].i;

		InitFunctionCallInfoData(*inner, fcinfo->flinfo, 3,
								 PG_GET_COLLATION(), NULL, NULL);
		inner->args[0].value = CStringGetTextDatum(names[i]);
		inner->args[0].isnull = false;
		inner->args[1].value = Int64GetDatum(tokens[i]);
		inner->args[1].isnull = false;
		if (PG_NARGS() > 2 && !PG_ARGISNULL(2))
		{
			inner->args[2].value = PG_GETARG_DATUM(2);
			inner->args[2].isnull = false;
		}
		else
		{
			inner->args[2].value = (Datum) 0;
			inner->args[2].isnull = true;
		}
		(void) lockctl_fence(inner);
	}
	PG_RETURN_VOID();
}
