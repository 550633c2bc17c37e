/*-------------------------------------------------------------------------
 *
 * lease.c
 *	  Leases with fencing tokens, kept in shared memory: the lease table
 *	  (its setting, its shared memory, its entries) and what every lease
 *	  call does to it: find or make an entry, grant, reclaim, wake the next
 *	  waiter.  The calls themselves are in lease_acquire.c, lease_release.c,
 *	  lease_fence.c and lease_views.c; tokens in lease_token.c.
 *
 * What a lease is
 * ---------------
 * A lease is keyed by (database, resource): resources are per database,
 * like advisory locks.  It belongs to the role that took it (the session's
 * role: SET ROLE's, else the session user; SECURITY DEFINER does not hide
 * it), and carries an owner name and a fencing token; it is not tied to a
 * session.  Only that role, or a role with its privileges, can renew,
 * release or fence it, and only with the token: to any other role the
 * lease looks lost, with the same error and no token shown (see
 * docs/leases.md, "Roles").  A token names a grant and orders grants; it
 * is never a credential.  Expiry is measured on the monotonic clock
 * (CLOCK_BOOTTIME where it exists, which keeps counting while the machine
 * is suspended, else CLOCK_MONOTONIC); wall-clock times are only shown.
 * Expired leases are reclaimed lazily: by the next acquire of the
 * resource, by a sweep when the table is full, or by release.  Readers
 * never show them.
 *
 * Locking protocol
 * ----------------
 * One LWLock (tranche "lockctl_leases") protects the whole lease table:
 * the hash of LeaseEntry, every field of every entry, the waiter slots,
 * the counters and the token state (epoch, counter).  Readers (the views,
 * lockctl.lease()) take it shared; everything else exclusive.  It is held
 * only for a few comparisons and copies, never while sleeping, and the
 * only other lock taken while holding it is a conditional (never waiting)
 * acquisition of a fence lock, see below; so it cannot take part in a
 * deadlock.  One lock is simpler than partitions and was not a bottleneck
 * at 32 clients on the benchmark machine; partitioning by hash of the key
 * would be the next step if it becomes one.
 *
 * The rest of the protocol is written where it is kept: waiting in
 * lease_acquire.c, fencing in lease_fence.c.  docs/leases.md explains
 * the design.
 *
 * src/lease.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <limits.h>
#include <time.h>

#include "common/hashfn.h"
#include "miscadmin.h"
#include "storage/ipc.h"
#include "storage/lock.h"
#include "storage/lwlock.h"
#include "storage/shmem.h"
#include "utils/acl.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/hsearch.h"
#include "utils/timestamp.h"

#include "lease.h"

/*
 * Latches of waiters to wake when the lease lock is released next
 * (lease_wake_head, lease_unlock): a release wakes one, a dropped role's
 * or database's leases may wake many, and those past the list are woken at
 * once.
 */
#define LEASE_MAX_WAKES 16
static Latch *lease_wakes[LEASE_MAX_WAKES];
static int	lease_nwakes = 0;

#define LEASE_TRANCHE_NAME		"lockctl_leases"

int			lockctl_max_leases = 4096;
int			lockctl_max_leases_per_role = 0;
int			lockctl_max_lease_ttl = 0;

LeaseShared *lease_shared = NULL;
HTAB	   *lease_hash = NULL;

/*
 * How many leases each role holds (held entries, live or not yet
 * reclaimed) plus how many acquire calls of it wait, across every
 * database: what lockctl.max_leases_per_role limits.  Kept under the lease
 * lock as entries and waiters come and go, so that the check costs a hash
 * lookup, not a scan.  A role's entry exists while its count is above 0;
 * every count belongs to a slot of the lease table or to a waiter slot, so
 * the hash never needs more than max_leases + MaxBackends entries.
 */
typedef struct LeaseRoleCount
{
	Oid			roleid;			/* hash key */
	int			count;
} LeaseRoleCount;

static HTAB *lease_role_hash = NULL;

static Size lease_shmem_size(void);
static void lease_shmem_startup(void);
static void lease_role_recount(void);
static int	lease_role_count(Oid role);
static void lease_reclaim_role(Oid role, int64 now);
static uint32 lease_key_hash(const void *key, Size keysize);
static int	lease_sweep(void);
static const char *lease_role_name(Oid role);

static const LockctlShmemPart lease_shmem_part = {
	lease_shmem_size, LEASE_TRANCHE_NAME, lease_shmem_startup
};

/*
 * Microseconds on the monotonic clock the lease expiries are measured with.
 */
int64
lease_now_mono(void)
{
	struct timespec ts;

#ifdef CLOCK_BOOTTIME
	if (clock_gettime(CLOCK_BOOTTIME, &ts) != 0)
#else
	if (clock_gettime(CLOCK_MONOTONIC, &ts) != 0)
#endif
		elog(ERROR, "clock_gettime failed: %m");
	return (int64) ts.tv_sec * USECS_PER_SEC + ts.tv_nsec / 1000;
}

/*
 * The wall-clock time of mono, an instant on lease_now_mono's clock in the
 * past: a grant's acquired_at is the instant its ttl is counted from, not
 * the later one at which the grant was written (a token's durable write
 * may come between, LeaseNextToken), so that expires_at - acquired_at is
 * the ttl and no waiter is seen to get a lease before acquired_at + ttl.
 */
TimestampTz
lease_wall_of(int64 mono)
{
	return GetCurrentTimestamp() - (lease_now_mono() - mono);
}

/*
 * Define the settings of leases, ask for the lease table, and watch the end
 * of transactions that fenced a lease and of those that dropped a database
 * or a role.
 */
void
LeaseInit(void)
{
	DefineCustomIntVariable("lockctl.max_leases",
							gettext_noop("Maximum number of live leases, across all databases."),
							gettext_noop("Each lease takes a slot in shared memory; when all are taken, acquire fails with SQLSTATE 53400."),
							&lockctl_max_leases,
							4096, 16, 1024 * 1024,
							PGC_POSTMASTER,
							0,
							NULL, NULL, NULL);

	/*
	 * The caps a DBA sets so that one role cannot take the shared lease
	 * table or hold a resource for a year.  PGC_SUSET: a role cannot raise
	 * its own cap, and ALTER ROLE ... SET gives one role another value.
	 * No cap by default: only the DBA knows how many roles share the table.
	 */
	DefineCustomIntVariable("lockctl.max_leases_per_role",
							gettext_noop("Maximum number of leases one role may hold or wait for, across all databases; 0 means no limit."),
							gettext_noop("Live leases plus waiting acquire calls of the role that calls; above it, acquire fails with SQLSTATE 53400."),
							&lockctl_max_leases_per_role,
							0, 0, INT_MAX,
							PGC_SUSET,
							0,
							NULL, NULL, NULL);
	DefineCustomIntVariable("lockctl.max_lease_ttl",
							gettext_noop("Longest ttl that acquire and renew accept; 0 means the built-in limit of 365 days."),
							NULL,
							&lockctl_max_lease_ttl,
							0, 0, (int) (LEASE_TTL_MAX_US / USECS_PER_SEC),
							PGC_SUSET,
							GUC_UNIT_S,
							NULL, NULL, NULL);
	lockctl_shmem_register(&lease_shmem_part);
	lease_counted_init();
	lease_watch_init();
	lease_notify_init();
	lease_fence_init();
	lease_admin_init();
	lease_all_init();
	lease_wal_init();
	lease_session_init();
}

static Size
lease_shmem_size(void)
{
	Size		size;

	size = MAXALIGN(add_size(offsetof(LeaseShared, waiters),
							 mul_size(MaxBackends, sizeof(LeaseWaiter))));
	size = add_size(size, hash_estimate_size(lockctl_max_leases,
											 sizeof(LeaseEntry)));
	size = add_size(size, hash_estimate_size(lockctl_max_leases + MaxBackends,
											 sizeof(LeaseRoleCount)));
	return size;
}

/*
 * Create or attach to the lease table.  The postmaster, which creates it,
 * also advances the token epoch, restores the leases saved at the last
 * clean shutdown, and arranges for them to be saved at the next one.
 */
static void
lease_shmem_startup(void)
{
	bool		found;
	HASHCTL		info;
	Size		size;
	int			i;

	lease_shared = NULL;
	lease_hash = NULL;

	LWLockAcquire(AddinShmemInitLock, LW_EXCLUSIVE);

	size = offsetof(LeaseShared, waiters) + MaxBackends * sizeof(LeaseWaiter);
	lease_shared = ShmemInitStruct("lockctl leases", size, &found);
	if (!found)
	{
		memset(lease_shared, 0, size);
		lease_shared->lock = &(GetNamedLWLockTranche(LEASE_TRANCHE_NAME))->lock;
		for (i = 0; i < MaxBackends; i++)
			lease_shared->waiters[i].entry = NULL;
	}

	memset(&info, 0, sizeof(info));
	info.keysize = sizeof(LeaseKey);
	info.entrysize = sizeof(LeaseEntry);
	info.hash = lease_key_hash;
	info.match = lease_key_match;
	lease_hash = ShmemInitHash("lockctl lease table",
							   lockctl_max_leases, lockctl_max_leases,
							   &info,
							   HASH_ELEM | HASH_FUNCTION | HASH_COMPARE |
							   HASH_FIXED_SIZE);

	memset(&info, 0, sizeof(info));
	info.keysize = sizeof(Oid);
	info.entrysize = sizeof(LeaseRoleCount);
	lease_role_hash = ShmemInitHash("lockctl lease counts per role",
									lockctl_max_leases + MaxBackends,
									lockctl_max_leases + MaxBackends,
									&info,
									HASH_ELEM | HASH_BLOBS | HASH_FIXED_SIZE);

	if (!found)
	{
		LeaseEpochStartup();
		LeaseRestoreDump();
		/* the restored leases count for their roles */
		lease_role_recount();
	}

	LWLockRelease(AddinShmemInitLock);

	if (!IsUnderPostmaster)
		on_shmem_exit(LeaseShutdownDump, (Datum) 0);
}

/*
 * Hash and compare keys by their resource's length, not the whole buffer.
 */
static uint32
lease_key_hash(const void *key, Size keysize)
{
	const LeaseKey *k = (const LeaseKey *) key;

	return hash_bytes((const unsigned char *) k->resource,
					  strlen(k->resource)) ^ murmurhash32(k->dbid);
}

int
lease_key_match(const void *key1, const void *key2, Size keysize)
{
	const LeaseKey *a = (const LeaseKey *) key1;
	const LeaseKey *b = (const LeaseKey *) key2;

	return (a->dbid == b->dbid && strcmp(a->resource, b->resource) == 0) ? 0 : 1;
}

/*
 * Raise an error if the lease table does not exist (cannot happen with the
 * preload check, but a NULL pointer must never be followed).
 */
void
lease_check_shmem(void)
{
	if (lease_shared == NULL || lease_hash == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("lockctl lease table is not available"),
				 errhint("Add 'lockctl' to \"shared_preload_libraries\" and restart the server.")));
}

/*
 * Count every held entry of the lease table for its role, from scratch
 * (at startup, after the dump was restored: the only writer of held
 * entries that does not go through lease_try_grant).
 */
static void
lease_role_recount(void)
{
	HASH_SEQ_STATUS seq;
	LeaseEntry *e;

	hash_seq_init(&seq, lease_hash);
	while ((e = hash_seq_search(&seq)) != NULL)
		if (e->held)
			lease_role_add(e->roleid, 1);
}

/*
 * Add delta to role's count of leases and waiters.  Caller holds the lease
 * lock exclusively.  Never raises an error: it is called between stores
 * that must all happen.
 */
void
lease_role_add(Oid role, int delta)
{
	LeaseRoleCount *c;
	bool		found;

	if (lease_role_hash == NULL)
		return;
	c = hash_search(lease_role_hash, &role,
					delta > 0 ? HASH_ENTER_NULL : HASH_FIND, &found);
	if (c == NULL)
		return;					/* cannot happen: the hash is sized for all */
	if (delta > 0 && !found)
		c->count = 0;
	c->count += delta;
	if (c->count <= 0)
		hash_search(lease_role_hash, &role, HASH_REMOVE, NULL);
}

static int
lease_role_count(Oid role)
{
	LeaseRoleCount *c = hash_search(lease_role_hash, &role, HASH_FIND, NULL);

	return c ? c->count : 0;
}

/*
 * The role a lease call acts as: SET ROLE's role, else the session user.
 * Not GetUserId(): inside a SECURITY DEFINER function that is the
 * function's owner, and a lease taken through a shared wrapper would then
 * belong to the wrapper's owner and be open to every role calling it.
 */
Oid
lease_session_role(void)
{
	Oid			role = GetCurrentRoleId();

	return OidIsValid(role) ? role : GetSessionUserId();
}

/*
 * May the calling role act on (renew, release, fence, see the token and
 * owner of) a lease taken by owner?  Its own, and those of roles whose
 * privileges it has (members that inherit, superusers).  May read the
 * catalogs: never call it holding the lease lock.
 */
bool
lease_may_act(Oid owner)
{
	Oid			self = lease_session_role();

	return owner == self || has_privs_of_role(self, owner);
}

static const char *
lease_role_name(Oid role)
{
	char	   *name = GetUserNameFromId(role, true);

	return name ? name : "?";
}

/*
 * Refuse a ttl above lockctl.max_lease_ttl (the hard range was checked
 * with the argument).  fn names the function for the message.
 */
void
lease_check_ttl(int64 ttl_us, const char *fn)
{
	int64		max_us = (int64) lockctl_max_lease_ttl * USECS_PER_SEC;

	if (lockctl_max_lease_ttl > 0 && ttl_us > max_us)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("ttl of %s exceeds \"lockctl.max_lease_ttl\"", fn),
				 errdetail("The ttl asked for is \"%s\"; \"lockctl.max_lease_ttl\" is %s.",
						   DatumGetCString(DirectFunctionCall1(interval_out,
															   IntervalPGetDatum(lockctl_us_to_interval(ttl_us)))),
						   GetConfigOptionByName("lockctl.max_lease_ttl", NULL, false)),
				 errhint("Ask for a shorter ttl and renew the lease while it is needed, or ask the administrator to raise \"lockctl.max_lease_ttl\".")));
}

/*
 * Refuse a call that changes the lease table on a hot standby or in a
 * read-only transaction (25006), as PostgreSQL refuses a write: a lease
 * outlives the transaction and the session that took it, and a server
 * being switched over (default_transaction_read_only) must stop granting
 * as it stops writing.  fn is the call, as in "lockctl.acquire()".
 */
void
lease_check_writable(const char *fn)
{
	PreventCommandDuringRecovery(fn);
	PreventCommandIfReadOnly(fn);
}

void
lease_make_key(LeaseKey *key, const char *resource)
{
	key->dbid = MyDatabaseId;
	strlcpy(key->resource, resource, sizeof(key->resource));
}

void
lease_fence_tag(LOCKTAG *tag, const LeaseKey *key)
{
	uint64		h = hash_bytes_extended((const unsigned char *) key->resource,
										strlen(key->resource), 0);

	SET_LOCKTAG_ADVISORY(*tag, key->dbid, (uint32) (h >> 32), (uint32) h,
						 LEASE_FENCE_FIELD4);
}

/*
 * The one liveness rule: held, not expired, and granted in the server's
 * current era (lease_token.c), so that no lease of an older timeline or of
 * another copy of the data directory is ever live here; or carried over
 * exactly, by WAL replay, from the history this server continues
 * (lease_wal.c).
 */
bool
lease_is_live(LeaseEntry *e, int64 now)
{
	return e->held && now < e->expires_mono &&
		(LeaseTokenLive(e->token) || lease_carried_live(e));
}

/*
 * Can a new lease be granted as far as fencing goes?  Tries the fence lock
 * without waiting; clears the flag when no transaction holds it.  Caller
 * holds the lease lock exclusively and is in a transaction.
 */
bool
lease_fence_free(LeaseEntry *e)
{
	LOCKTAG		tag;

	if (!e->fenced)
		return true;
	lease_fence_tag(&tag, &e->key);
	switch (LockAcquire(&tag, ExclusiveLock, false, true))
	{
		case LOCKACQUIRE_NOT_AVAIL:
			return false;
		case LOCKACQUIRE_OK:
			/* nobody holds it: no fencing transaction is left */
			LockRelease(&tag, ExclusiveLock, false);
			e->fenced = false;
			e->fenced_by = 0;
			return true;
		default:
			/* our own transaction fenced it: still fenced for the others */
			LockRelease(&tag, ExclusiveLock, false);
			return true;
	}
}

/*
 * Find or create the entry for key.  Caller holds the lease lock
 * exclusively.  A full table is swept of expired leases once; if it is
 * still full, that is an error.
 */
LeaseEntry *
lease_enter(const LeaseKey *key)
{
	LeaseEntry *e;
	bool		found;

	e = hash_search(lease_hash, key, HASH_FIND, NULL);
	if (e != NULL)
		return e;

	if (lease_shared->nentries >= lockctl_max_leases && lease_sweep() == 0)
	{
		lease_shared->stats.full++;
		lease_unlock();
		ereport(ERROR,
				(errcode(ERRCODE_CONFIGURATION_LIMIT_EXCEEDED),
				 errmsg("too many leases"),
				 errdetail("All %d lease slots are in use.", lockctl_max_leases),
				 errhint("Release leases that are no longer needed, or increase \"lockctl.max_leases\" and restart the server.")));
	}

	e = hash_search(lease_hash, key, HASH_ENTER_NULL, &found);
	if (e == NULL)
	{
		lease_shared->stats.full++;
		lease_unlock();
		ereport(ERROR,
				(errcode(ERRCODE_CONFIGURATION_LIMIT_EXCEEDED),
				 errmsg("too many leases"),
				 errdetail("The shared lease table has no room left."),
				 errhint("Increase \"lockctl.max_leases\" and restart the server.")));
	}
	Assert(!found);
	lease_shared->nentries++;
	e->held = false;
	e->fenced = false;
	e->fenced_by = 0;
	e->owner[0] = '\0';
	e->token = 0;
	e->roleid = InvalidOid;
	e->acquired_at = 0;
	e->expires_mono = 0;
	e->nwaiters = 0;
	dlist_init(&e->waiters);
	e->permits = 1;
	e->set_id = 0;
	e->carried = false;
	e->nholders = 0;
	dlist_init(&e->holders);
	return e;
}

/*
 * Remove the entry if nothing needs it any more.  Caller holds the lease
 * lock exclusively.
 */
void
lease_maybe_remove(LeaseEntry *e)
{
	if (e->held || e->nwaiters > 0 || e->fenced || e->nholders > 0)
		return;
	hash_search(lease_hash, &e->key, HASH_REMOVE, NULL);
	lease_shared->nentries--;
}

/*
 * Reclaim every entry whose lease expired (or was released) and that nobody
 * waits for.  Returns how many were freed.  Caller holds the lease lock
 * exclusively and is in a transaction.
 */
static int
lease_sweep(void)
{
	HASH_SEQ_STATUS seq;
	LeaseEntry *e;
	int64		now = lease_now_mono();
	int			freed = 0;

	hash_seq_init(&seq, lease_hash);
	while ((e = hash_seq_search(&seq)) != NULL)
	{
		if (lease_is_live(e, now) || e->nwaiters > 0)
			continue;
		/* counted: free the expired holders; live ones keep the entry */
		if (e->nholders > 0)
		{
			lease_counted_reclaim(e, now);
			if (e->nholders > 0)
				continue;
		}
		if (!lease_fence_free(e))
			continue;
		if (e->held)
		{
			lease_unhold(e, lease_end_how(e->token, false, 0));
			lease_shared->stats.expiries++;
		}
		hash_search(lease_hash, &e->key, HASH_REMOVE, NULL);
		lease_shared->nentries--;
		freed++;
	}
	return freed;
}

/*
 * Is acquire(owner) by role, on e, a safe retry: the live lease was taken
 * by the same owner AND the same role?  The owner string is not a secret:
 * handing the live token to another role, even one with the owner's
 * privileges, would let it take over a lease it did not take; such a role
 * is a contender like any other.  Caller holds the lease lock.
 */
bool
lease_is_retry(LeaseEntry *e, const char *owner, Oid role, int64 now)
{
	return e != NULL && lease_is_live(e, now) &&
		strcmp(e->owner, owner) == 0 && e->roleid == role;
}

/*
 * Before acquire(owner) by role takes a slot of its quota (a new lease or a
 * place in line; a safe retry takes none): refuse it with 53400 if the role
 * is at lockctl.max_leases_per_role, after reclaiming its leases that ran
 * out.  Caller holds the lease lock exclusively; it is released on error.
 */
void
lease_check_quota(const LeaseKey *key, const char *owner, Oid role,
				  int64 now)
{
	int			max = lockctl_max_leases_per_role;
	LeaseEntry *e;

	if (max <= 0 || lease_role_count(role) < max)
		return;
	e = hash_search(lease_hash, key, HASH_FIND, NULL);
	if (lease_is_retry(e, owner, role, now) ||
		lease_holder_is_retry(e, owner, role, now))
		return;
	lease_check_quota_n(role, 1, now);
}

/*
 * lease_check_quota for a call that takes needed slots of role's quota at
 * once (acquire_all: its new leases or places in line).  Caller holds the
 * lease lock exclusively; it is released on error.
 */
void
lease_check_quota_n(Oid role, int needed, int64 now)
{
	int			max = lockctl_max_leases_per_role;
	int			count;

	if (max <= 0 || needed <= 0 || lease_role_count(role) + needed <= max)
		return;
	lease_reclaim_role(role, now);
	count = lease_role_count(role);
	if (count + needed <= max)
		return;

	lease_unlock();
	ereport(ERROR,
			(errcode(ERRCODE_CONFIGURATION_LIMIT_EXCEEDED),
			 errmsg("role \"%s\" has too many leases", lease_role_name(role)),
			 needed > 1 ?
			 errdetail("It holds or waits for %d leases across all databases and asks for %d more; \"lockctl.max_leases_per_role\" is %d.",
					   count, needed, max) :
			 errdetail("It holds or waits for %d leases across all databases; \"lockctl.max_leases_per_role\" is %d.",
					   count, max),
			 errhint("Release leases that are no longer needed, or ask the administrator to raise \"lockctl.max_leases_per_role\".")));
}

/*
 * End every lease of role that ran out but was not reclaimed yet, so that
 * it no longer counts against the role's quota; wake their first waiters;
 * drop the entries nothing needs.  Counted and shared holders that ran out
 * are reclaimed too (of every role: it costs the same).  A scan of the
 * table, done only when a role is at its cap.  Caller holds the lease lock
 * exclusively and is in a transaction.
 */
static void
lease_reclaim_role(Oid role, int64 now)
{
	HASH_SEQ_STATUS seq;
	LeaseEntry *e;

	hash_seq_init(&seq, lease_hash);
	while ((e = hash_seq_search(&seq)) != NULL)
	{
		if (e->nholders > 0)
		{
			int			before = e->nholders;

			lease_counted_reclaim(e, now);
			if (e->nholders < before)
			{
				lease_wake_head(e);
				lease_maybe_remove(e);
				continue;
			}
		}
		if (!e->held || e->roleid != role || lease_is_live(e, now))
			continue;
		lease_unhold(e, lease_end_how(e->token, false, 0));
		lease_shared->stats.expiries++;
		lease_wake_head(e);
		if (e->nwaiters == 0 && lease_fence_free(e))
			lease_maybe_remove(e);
	}
}

/*
 * The lease on e is no longer held (released, expired and reclaimed, or
 * taken over): it no longer counts for its role, and its end is recorded
 * for lockctl.watch as how (a LeaseEndHow) says.  The one place where an
 * exclusive lease ends.  Caller holds the lease lock exclusively.  Raises
 * no error.
 */
void
lease_unhold(LeaseEntry *e, int how)
{
	Assert(e->held);
	e->held = false;
	e->set_id = 0;
	e->carried = false;
	lease_role_add(e->roleid, -1);
	lease_watch_end(&e->key, e->token, e->roleid, how);
	lease_wal_clear(e, e->token);
}

/*
 * How a lease of token ends (a LeaseEndHow): if_live when it was live;
 * else it expired, or was lost if its era is no longer the server's
 * (lease_token.c).  Caller holds the lease lock.
 */
int
lease_end_how(int64 token, bool live, int if_live)
{
	if (live)
		return if_live;
	return LeaseTokenLive(token) ? LEASE_END_EXPIRED : LEASE_END_LOST;
}

/*
 * Grant the lease to owner if possible: a safe retry (lease_is_retry) gets
 * its token back with the expiry pushed out; otherwise a lease that is free
 * (never held, released or expired, and not fenced) is granted to the
 * calling role with a new token if may_take (the caller is first in line).
 * Returns the token, or 0.  Caller holds the lease lock exclusively.
 */
int64
lease_try_grant(LeaseEntry *e, const char *owner, int64 ttl_us, bool may_take,
				int64 now)
{
	Oid			role = lease_session_role();

	if (lease_is_live(e, now))
	{
		if (lease_is_retry(e, owner, role, now))
		{
			e->expires_mono = Max(e->expires_mono, now + ttl_us);
			lease_shared->stats.regrants++;
			lease_wal_set(e, now);
			return e->token;
		}
		return 0;
	}
	if (!may_take || !lease_fence_free(e))
		return 0;
	/* shared holders (lease_shared.c) keep an exclusive lease out */
	if (e->nholders > 0 && lease_shared_block_exclusive(e, now))
		return 0;

	/* token first: it may fail, and then nothing has changed */
	{
		int64		token = LeaseNextToken();

		lease_take(e, owner, ttl_us, now, token);
		return token;
	}
}

/*
 * Grant the free (not live, not fenced) lease on e to owner, as the calling
 * role, with token: a new grant.  Raises no error.  Caller holds the lease
 * lock exclusively.
 */
void
lease_take(LeaseEntry *e, const char *owner, int64 ttl_us, int64 now,
		   int64 token)
{
	Oid			role = lease_session_role();

	if (e->held)
	{
		/* ran out: passed to the first in line, or just expired */
		int			how = lease_end_how(e->token, false, 0);

		if (how == LEASE_END_EXPIRED && e->nwaiters > 0)
			how = LEASE_END_TAKEN_OVER;
		lease_unhold(e, how);
		lease_shared->stats.expiries++;
	}
	e->held = true;
	strlcpy(e->owner, owner, sizeof(e->owner));
	e->token = token;
	e->roleid = role;
	lease_role_add(role, 1);
	e->acquired_at = lease_wall_of(now);
	e->expires_mono = now + ttl_us;
	e->carried = false;
	lease_shared->stats.grants++;
	lease_wal_set(e, now);
}

/*
 * Wake the first waiter, who may now be able to take the lease: its latch
 * is set by lease_unlock, once the lease lock is free.  Set under the lock,
 * the waiter would wake only to find the lock still held by the one who
 * woke it, and sleep again on it: one more context switch and one more
 * wake-up on the path of every hand-over.  Nothing is lost by waiting:
 * a waiter looks (under the lock) only after its latch is set, so it sees
 * the change either way, and a wake-up it no longer needs (it left, or
 * looked already) is as harmless as any spurious one; a latch is in
 * shared memory for the life of the server.  A full list wakes at once,
 * under the lock, as before.  Caller holds the lease lock exclusively.
 */
void
lease_wake_head(LeaseEntry *e)
{
	if (!dlist_is_empty(&e->waiters))
	{
		LeaseWaiter *w = dlist_container(LeaseWaiter, node,
										 dlist_head_node(&e->waiters));
		int			i;

		for (i = 0; i < lease_nwakes; i++)
			if (lease_wakes[i] == w->latch)
				return;
		if (lease_nwakes < LEASE_MAX_WAKES)
			lease_wakes[lease_nwakes++] = w->latch;
		else
			SetLatch(w->latch);
	}
}

/*
 * Release the lease lock, then wake the waiters lease_wake_head chose
 * while it was held.  Every release of the lease lock goes through here.
 */
void
lease_unlock(void)
{
	LWLockRelease(lease_shared->lock);
	lease_wake_pending();
}

/*
 * Set the latches lease_wake_head put aside.  The caller does not hold the
 * lease lock: lease_unlock, and an aborted transaction, whose error left
 * the lock (LWLockReleaseAll) but not the waiters it was about to wake
 * (lease_admin.c's callbacks).
 */
void
lease_wake_pending(void)
{
	int			n = lease_nwakes;
	int			i;

	lease_nwakes = 0;
	for (i = 0; i < n; i++)
		SetLatch(lease_wakes[i]);
}

/*
 * The wall-clock time at which e expires, for display.
 */
TimestampTz
lease_wall_expiry(LeaseEntry *e, int64 now_mono, TimestampTz now_wall)
{
	TimestampTz t;

	/* a session-bound lease (lease_session.c) */
	if (e->expires_mono >= LEASE_EXPIRES_NEVER)
	{
		TIMESTAMP_NOEND(t);
		return t;
	}
	return now_wall + (e->expires_mono - now_mono);
}

/*
 * Find the lease on key held by token (and live, if need_live) that the
 * calling role may act on: its own or that of a role whose privileges it
 * has.  Returns it with the lease lock held exclusively and *now read under
 * it; else returns NULL with the lock released and *lost filled in for
 * lease_report_lost.  A lease of another role is as good as lost: the
 * caller cannot tell it from a stale token.
 *
 * On a counted lease, or a resource with shared holders, the lease is one
 * of e's holders: *holder is set to it (else to NULL).  A released holder
 * kept only for its fence is not found.
 *
 * The privilege check reads the catalogs, so it runs outside the lease
 * lock: check, then lock again and look again.  It runs whenever another
 * role holds the lease, whether the token matches or not, so that a right
 * guess costs what a wrong one costs (among holders, against a holder of
 * another role when no holder has the token).  A token names one grant, so
 * a lease found again with the same token has the same role.
 */
LeaseEntry *
lease_find_own(const LeaseKey *key, int64 token, bool need_live,
			   int64 *now, LeaseLost *lost, LeaseHolder **holder)
{
	Oid			self = lease_session_role();
	Oid			allowed = InvalidOid;
	bool		checked = false;
	LeaseEntry *e;
	bool		held;
	Oid			other;

	for (;;)
	{
		LWLockAcquire(lease_shared->lock, LW_EXCLUSIVE);
		e = hash_search(lease_hash, key, HASH_FIND, NULL);
		*now = lease_now_mono();
		*holder = NULL;
		if (e != NULL && lease_has_holders(e))
		{
			LeaseHolder *h = e->nholders > 0 ?
				lease_counted_find(e, token) : NULL;

			if (h != NULL && h->ended)
				h = NULL;
			other = h != NULL ? h->roleid : InvalidOid;
			if (h == NULL)
			{
				dlist_iter	it;

				dlist_foreach(it, &e->holders)
				{
					LeaseHolder *o = dlist_container(LeaseHolder, node, it.cur);

					if (o->roleid != self)
					{
						other = o->roleid;
						break;
					}
				}
			}
			lost->holder = true;
			lost->current = 0;
			lost->expired = h != NULL && !lease_holder_live(h, *now);
			lost->roleid = other;
			lost->visible = h != NULL &&
				(h->roleid == self || h->roleid == allowed);
			if (OidIsValid(other) && other != self && other != allowed &&
				!checked)
			{
				lease_unlock();
				checked = true;
				if (!has_privs_of_role(self, other))
				{
					lost->visible = false;
					return NULL;
				}
				allowed = other;
				continue;
			}
			if (lost->visible && (!need_live || !lost->expired))
			{
				*holder = h;
				return e;
			}
			lease_unlock();
			return NULL;
		}
		held = (e != NULL && e->held);
		lost->holder = false;
		lost->current = held ? e->token : 0;
		lost->expired = held && !lease_is_live(e, *now);
		lost->roleid = held ? e->roleid : InvalidOid;
		lost->visible = held && (e->roleid == self || e->roleid == allowed);
		if (held && !lost->visible && !checked)
		{
			Oid			owner = e->roleid;

			lease_unlock();
			checked = true;
			if (!has_privs_of_role(self, owner))
				return NULL;
			allowed = owner;
			continue;
		}
		if (held && lost->visible && e->token == token &&
			(!need_live || !lost->expired))
			return e;
		lease_unlock();
		return NULL;
	}
}

/*
 * Raise the 40001 of a lease that token no longer holds (renew, or fence
 * when fencing), from what lease_find_own copied (no catalog access here:
 * the answer must not take longer for one token than for another).  The detail names the
 * current token only to a role that may act on the current lease; any
 * other caller gets one detail whether there is no lease, another role's
 * lease, or another role's lease of that very token, so that neither the
 * token nor whether a guess was right leaks.
 */
void
lease_report_lost(const char *resource, int64 token, const LeaseLost *lost,
				  bool fencing)
{
	bool		visible = (lost->current != 0 || lost->holder) && lost->visible;

	ereport(ERROR,
			(errcode(ERRCODE_T_R_SERIALIZATION_FAILURE),
			 fencing ?
			 errmsg("fencing token " INT64_FORMAT " for lease \"%s\" is stale",
					token, resource) :
			 errmsg("lease \"%s\" is no longer held by token " INT64_FORMAT,
					resource, token),
			 !visible ?
			 errdetail("No live lease on \"%s\" is held by role \"%s\" or by a role whose privileges it has.",
					   resource, lease_role_name(lease_session_role())) :
			 lost->holder || (lost->expired && lost->current == token) ?
			 (fencing ?
			  errdetail("The lease of token " INT64_FORMAT " expired.", token) :
			  errdetail("The lease expired before it was renewed.")) :
			 errdetail("The current token is " INT64_FORMAT "%s.", lost->current,
					   lost->expired ? " (expired)" : ""),
			 fencing ?
			 errhint("Do not write: another holder may have taken over. Acquire the lease again and redo the work.") :
			 errhint("Acquire the lease again and redo the work it protects.")));
}
