/*-------------------------------------------------------------------------
 *
 * lease.h
 *	  Declarations shared by the files of leases: lease.c (the lease
 *	  table), lease_acquire.c (acquire and its wait), lease_release.c
 *	  (renew, release, force_release), lease_fence.c (fence),
 *	  lease_views.c (the views), lease_admin.c (releasing every lease of a
 *	  role or a database, and of dropped ones), lease_counted.c and
 *	  lease_shared.c (the holders of counted and shared leases),
 *	  lease_all.c (acquire_all and release_all: sets of leases),
 *	  lease_token.c (fencing tokens, the epoch file, the shutdown dump)
 *	  and lease_wal.c (durable leases: their WAL records and replay).
 *
 * src/lease.h
 *
 *-------------------------------------------------------------------------
 */
#ifndef LOCKCTL_LEASE_H
#define LOCKCTL_LEASE_H

#include "postgres.h"

#include "access/xlogdefs.h"
#include "lib/ilist.h"
#include "storage/latch.h"
#include "storage/lock.h"
#include "storage/lwlock.h"
#include "utils/timestamp.h"

#include "lockctl.h"

/*
 * A fencing token is a positive int64 made of three fields, most significant
 * first (see lease_token.c for why the order guarantees a rising token):
 *
 *	 bit 63			 0 (tokens are positive bigints)
 *	 bits 48..62	 era: the WAL timeline of the server that granted the
 *					 lease plus the era base of its state file (0 unless a
 *					 clone, pg_upgrade or a raised floor moved it up)
 *	 bits 28..47	 epoch, advanced durably at every start of the server
 *	 bits 0..27		 counter within the epoch
 *
 * A lease is live only while its token's era is the server's current era
 * (LeaseTokenLive): the rule every reader of the lease table applies.
 */
#define LEASE_TOKEN_TLI_SHIFT		48
#define LEASE_TOKEN_TLI_MAX			((TimeLineID) 0x7FFF)
#define LEASE_TOKEN_EPOCH_SHIFT		28
#define LEASE_TOKEN_EPOCH_MAX		((uint64) 0xFFFFF)
#define LEASE_TOKEN_COUNTER_MAX		((uint64) 0xFFFFFFF)

/* Key of the lease table: leases are per database, like advisory locks. */
typedef struct LeaseKey
{
	Oid			dbid;
	char		resource[LOCKCTL_NAME_MAXLEN + 1];
} LeaseKey;

/*
 * One resource in the lease table.  An entry exists while its lease is held
 * (even if expired and not yet reclaimed), while anyone waits for it, or
 * while a transaction may still hold its fence lock.
 */
typedef struct LeaseEntry
{
	LeaseKey	key;			/* hash key: must be first */
	bool		held;			/* a lease was granted and not released */
	bool		fenced;			/* a transaction may hold the fence lock */
	int			fenced_by;		/* MyProcNumber + 1 of the backend that set fenced (0: none) */
	char		owner[LOCKCTL_NAME_MAXLEN + 1];
	int64		token;
	Oid			roleid;			/* role that took the lease: it owns it */
	TimestampTz acquired_at;	/* wall clock, for display only */
	int64		expires_mono;	/* monotonic clock, microseconds */
	int			nwaiters;
	dlist_head	waiters;		/* LeaseWaiter, first come first served */
	/* counted leases (lease_counted.c) */
	int32		permits;		/* 1: the one holder is in the fields above */
	int64		set_id;			/* granted by acquire_all: its set (0: none) */
	bool		carried;		/* replayed from WAL (lease_wal.c): live after
								 * recovery though its token's era is older */
	int			nholders;		/* permits > 1: holders in the list below */
	dlist_head	holders;		/* LeaseHolder */
} LeaseEntry;

/*
 * One holder of a counted lease (permits > 1), from a pool of
 * lockctl.max_leases slots in shared memory (lease_counted.c).
 */
typedef struct LeaseHolder
{
	dlist_node	node;
	bool		fenced;			/* a transaction may hold its fence lock */
	bool		ended;			/* released, kept only while fenced */
	bool		in_quota;		/* counts for its role (lease_role_add) */
	char		owner[LOCKCTL_NAME_MAXLEN + 1];
	int64		token;			/* from LeaseNextToken, as exclusive grants */
	Oid			roleid;			/* role that took it (lease_session_role) */
	TimestampTz acquired_at;
	int64		expires_mono;
} LeaseHolder;

/* A backend waiting in acquire(); one slot per backend. */
typedef struct LeaseWaiter
{
	dlist_node	node;
	Latch	   *latch;
	int			pid;
	LeaseEntry *entry;			/* NULL when not waiting */
	TimestampTz since;
	int64		since_mono;		/* monotonic: when it queued (the wait histogram) */
	Oid			roleid;			/* role that waits: counts in its quota */
	int64		ttl_us;			/* the ttl it asked for */
	int64		wake_at;		/* monotonic: when it wakes unless woken */
	bool		shared;			/* waits in acquire_shared (lease_shared.c) */
	int64		set_id;			/* waits in acquire_all for this set (0: none) */
	char		owner[LOCKCTL_NAME_MAXLEN + 1];
} LeaseWaiter;

/* Counters, protected by the lease lock. */
typedef struct LeaseCounters
{
	uint64		grants;			/* new leases (new tokens) */
	uint64		regrants;		/* same owner asked again: same token */
	uint64		renewals;
	uint64		releases;
	uint64		force_releases;
	uint64		expiries;		/* leases that ran out before release */
	uint64		conflicts;		/* acquire found the lease held by another */
	uint64		waits;			/* acquire went to sleep */
	uint64		timeouts;		/* acquire gave up: returned NULL */
	uint64		fences;
	uint64		fence_failures;
	uint64		full;			/* acquire refused: table full */
	uint64		counted_grants; /* of grants: permits of counted leases */
	uint64		shared_grants;	/* of grants: shared leases */
	uint64		set_grants;		/* acquire_all calls that got their set */
} LeaseCounters;

/*
 * How a wait in acquire ended, for the wait histogram: granted, ran out
 * (acquire returned NULL), or left by an error, a cancel or the backend's
 * exit.
 */
typedef enum LeaseWaitOutcome
{
	LEASE_WAIT_GRANTED,
	LEASE_WAIT_TIMED_OUT,
	LEASE_WAIT_CANCELLED,
	LEASE_WAIT_OUTCOMES			/* the number of outcomes */
} LeaseWaitOutcome;

/*
 * The finite upper bounds of the wait histogram's buckets, in microseconds
 * (lease_acquire.c): Prometheus-style, so that histogram_quantile can read
 * them.  The last bucket counts the waits longer than the largest bound.
 */
#define LEASE_WAIT_BOUNDS		10
extern const int64 lease_wait_bounds_us[LEASE_WAIT_BOUNDS];

/*
 * Waits of one outcome since the server started, protected by the lease
 * lock.  Counts are per bucket (not cumulative): the view adds them up.
 */
typedef struct LeaseWaitHistogram
{
	uint64		buckets[LEASE_WAIT_BOUNDS + 1];
	uint64		sum_us;			/* total time waited */
} LeaseWaitHistogram;

typedef struct LeaseShared
{
	LWLock	   *lock;
	int			nentries;
	uint64		epoch;			/* current token epoch (durable) */
	uint64		counter;		/* next counter value in this epoch */
	uint32		era_base;		/* era = WAL timeline + era_base (durable) */
	bool		from_pg_upgrade;	/* state file made by pg_upgrade (durable) */
	int64		last_set_id;	/* the last set of acquire_all (lease_all.c) */
	/* lease_wal.c: durable leases */
	bool		wal_on;			/* the WAL describes the lease table */
	bool		wal_carry_ok;	/* replayed leases are carried at the end of
								 * recovery (decided at start) */
	XLogRecPtr	wal_snap_redo;	/* redo point at the last snapshot record */
	int			wal_carried;	/* leases carried at the end of recovery */
	LeaseCounters stats;
	LeaseWaitHistogram wait_hist[LEASE_WAIT_OUTCOMES];
	LeaseWaiter waiters[FLEXIBLE_ARRAY_MEMBER];	/* MaxBackends */
} LeaseShared;

/* locktag_field4 of the fence locks: "LC"; pg_advisory_* use 1 and 2 */
#define LEASE_FENCE_FIELD4		0x4C43
/* ... and of the fence lock of one holder of a counted lease: "LD" */
#define LEASE_HOLDER_FENCE_FIELD4	0x4C44

/* the most permits a counted lease may have */
#define LEASE_PERMITS_MAX		1000000

/* the longest a waiter sleeps on a free but fenced lease before looking */
#define LEASE_FENCE_RECHECK_MS	100

/* limits of the interval arguments */
#define LEASE_TTL_MIN_US		INT64CONST(1000)	/* 1 ms */
#define LEASE_TTL_MAX_US		(INT64CONST(365) * USECS_PER_DAY)
#define LEASE_WAIT_MAX_US		USECS_PER_DAY

/* settings (lease.c) */
extern int	lockctl_max_leases;			/* slots in the lease table */
extern int	lockctl_max_leases_per_role;	/* 0: no limit */
extern int	lockctl_max_lease_ttl;		/* seconds; 0: LEASE_TTL_MAX_US */

extern LeaseShared *lease_shared;
extern struct HTAB *lease_hash;

/*
 * What an error about a lost lease may say, copied under the lease lock
 * and reported after it is released (lease_report_lost).
 */
typedef struct LeaseLost
{
	int64		current;		/* token of the lease held now, 0 if none */
	bool		expired;		/* that lease is no longer live */
	Oid			roleid;			/* the role that holds it */
	bool		visible;		/* the caller may act on that lease */
	bool		holder;			/* a counted or shared lease: no current token */
} LeaseLost;

/* lease.c: the lease table; callers hold the lease lock as each says */
extern int64 lease_now_mono(void);
extern TimestampTz lease_wall_of(int64 mono);
extern void lease_check_shmem(void);
extern int	lease_key_match(const void *key1, const void *key2, Size keysize);
extern void lease_make_key(LeaseKey *key, const char *resource);
extern void lease_fence_tag(LOCKTAG *tag, const LeaseKey *key);
extern bool lease_is_live(LeaseEntry *e, int64 now);
extern bool lease_fence_free(LeaseEntry *e);
extern Oid	lease_session_role(void);
extern bool lease_may_act(Oid owner);
extern void lease_check_ttl(int64 ttl_us, const char *fn);
extern void lease_check_writable(const char *fn);
extern LeaseEntry *lease_enter(const LeaseKey *key);
extern void lease_maybe_remove(LeaseEntry *e);
extern bool lease_is_retry(LeaseEntry *e, const char *owner, Oid role,
						   int64 now);
extern void lease_check_quota(const LeaseKey *key, const char *owner,
							  Oid role, int64 now);
extern int64 lease_try_grant(LeaseEntry *e, const char *owner, int64 ttl_us,
							 bool may_take, int64 now);
extern void lease_take(LeaseEntry *e, const char *owner, int64 ttl_us,
					   int64 now, int64 token);
extern void lease_check_quota_n(Oid role, int needed, int64 now);
extern void lease_unhold(LeaseEntry *e, int how);
extern int	lease_end_how(int64 token, bool live, int if_live);
extern void lease_role_add(Oid role, int delta);
extern void lease_wake_head(LeaseEntry *e);
extern void lease_unlock(void);
extern void lease_wake_pending(void);
extern TimestampTz lease_wall_expiry(LeaseEntry *e, int64 now_mono,
									 TimestampTz now_wall);
extern LeaseEntry *lease_find_own(const LeaseKey *key, int64 token,
								  bool need_live, int64 *now, LeaseLost *lost,
								  LeaseHolder **holder);
extern void lease_report_lost(const char *resource, int64 token,
							  const LeaseLost *lost, bool fencing);

/* lease_acquire.c: waiting; callers hold the lease lock as each says */
extern void lease_wait_record(LeaseWaiter *w, LeaseWaitOutcome outcome);
extern void lease_waiter_leave(LeaseWaiter *w);
extern int64 lease_sleep_until(LeaseEntry *e, LeaseWaiter *w, int64 now,
							   int64 deadline);

/* lease_release.c */
extern bool lease_end(LeaseEntry *e, int64 now, uint64 *counter, int how);

/* lease_all.c: sets of leases */
#define LEASE_ALL_MAX			32	/* the most resources in one set */
extern void lease_all_init(void);

/* lease_admin.c */
extern void lease_admin_init(void);

/* lease_counted.c: counted leases; callers hold the lease lock as each says */
extern void lease_counted_init(void);
extern int32 lease_arg_permits(FunctionCallInfo fcinfo, int argno);
extern void lease_set_permits(LeaseEntry *e, int32 permits, int64 now);
extern int64 lease_counted_try_grant(LeaseEntry *e, const char *owner,
									 int64 ttl_us, bool may_take, int64 now);
extern void lease_counted_reclaim(LeaseEntry *e, int64 now);
extern int64 lease_holder_regrant(LeaseEntry *e, const char *owner,
								  int64 ttl_us, int64 now);
extern LeaseHolder *lease_holder_new(LeaseEntry *e, const char *owner,
									 int64 ttl_us, int64 now);
extern int64 lease_counted_next_change(LeaseEntry *e, int64 now);
extern LeaseHolder *lease_counted_find(LeaseEntry *e, int64 token);
extern bool lease_counted_end(LeaseEntry *e, LeaseHolder *h, int64 now,
							  uint64 *counter);
extern bool lease_holder_end(LeaseEntry *e, LeaseHolder *h, int64 now,
							 uint64 *counter, bool keep_fenced, int how);
extern bool lease_holder_is_retry(LeaseEntry *e, const char *owner, Oid role,
								  int64 now);
extern int	lease_counted_end_all(LeaseEntry *e, int64 now, uint64 *counter);
extern int	lease_counted_live(LeaseEntry *e, int64 now);
extern void lease_holder_fence_tag(LOCKTAG *tag, Oid dbid, int64 token);

/*
 * Is holder h live: not expired, not released, and granted in the server's
 * current era, the rule lease_is_live applies to an exclusive lease.
 */
#define lease_holder_live(h, now) \
	((now) < (h)->expires_mono && !(h)->ended && LeaseTokenLive((h)->token))

/*
 * Does e keep its holders in its holder list (a counted lease, or a
 * resource with shared holders)?
 */
#define lease_has_holders(e) ((e)->permits > 1 || (e)->nholders > 0)

/* lease_shared.c: shared leases, in the holder list of a 1-permit entry */
extern int64 lease_shared_try_grant(LeaseEntry *e, const char *owner,
									int64 ttl_us, bool may_take, int64 now);
extern bool lease_shared_block_exclusive(LeaseEntry *e, int64 now);

/*
 * lease_watch.c: how a lease ended, for lockctl.watch.  Every end of an
 * exclusive lease goes through lease_unhold, every end of a counted or
 * shared holder through lease_holder_uncount (lease_counted.c); both record
 * it with lease_watch_end.
 */
typedef enum LeaseEndHow
{
	LEASE_END_EXPIRED = 1,		/* ran out, and nobody in line took it */
	LEASE_END_RELEASED,			/* release by its role */
	LEASE_END_TAKEN_OVER,		/* ran out, then granted to a waiter */
	LEASE_END_FORCED,			/* force_release, release_role_leases,
								 * release_database_leases, a dropped role or
								 * database */
	LEASE_END_LOST,				/* its era is no longer the server's */
	LEASE_END_SESSION			/* the session it was bound to ended
								 * (bind => 'session', lease_session.c) */
} LeaseEndHow;

extern void lease_watch_init(void);
extern void lease_watch_end(const LeaseKey *key, int64 token, Oid roleid,
							int how);
extern void lease_watch_wake_all(void);
extern int	lease_watch_count(void);

/*
 * lease_notify.c and lease_session.c: what acquire's notify and bind ask
 * for a lease.  A lease with either is registered by its token (a
 * LeaseNotice, lease_notify.c); a session-bound lease does not run out:
 * its expiry is LEASE_EXPIRES_NEVER (far enough from PG_INT64_MAX that
 * sleeps computed from it do not overflow) until its session ends.
 */
#define LEASE_EXPIRES_NEVER		(PG_INT64_MAX / 4)

typedef struct LeaseOptions
{
	char	   *notify;			/* channel, NULL: none */
	bool		bind_session;	/* bind => 'session' */
} LeaseOptions;

extern void lease_notify_init(void);
extern void lease_options_arg(FunctionCallInfo fcinfo, int argno,
							  LeaseOptions *opts);
extern void lease_options_granted(LeaseEntry *e, int64 token,
								  const LeaseOptions *opts);
extern void lease_notify_end(const LeaseKey *key, int64 token, int how);
extern int	lease_notify_worker_pass(Oid dbid, long *due_ms);
extern bool lease_notify_woken(int slotno);
extern const char *lease_end_name(int how);
extern int	lease_notice_bound(int pid, LeaseKey **keys, int64 **tokens);
extern void lease_notice_forget(int64 token);
/* lease_session.c */
extern void lease_session_check(void);
extern void lease_session_init(void);

/* lease_fence.c */
extern void lease_fence_init(void);
extern void lease_remember_fence(const LeaseKey *key, int64 token,
								 bool counted);
extern bool LeaseFencedInXact(const char *resource, int64 *token);
extern PGDLLEXPORT Datum lockctl_fence(PG_FUNCTION_ARGS);	/* and fence_all's */

/* lease_wal.c: durable leases; callers hold the lease lock as each says */
extern bool lockctl_lease_durability;
extern void lease_wal_init(void);
extern void lease_wal_startup(bool carry_ok);
extern bool lease_carried_live(LeaseEntry *e);
extern void lease_wal_set(LeaseEntry *e, int64 now);
extern void lease_wal_clear(LeaseEntry *e, int64 token);
extern void lease_wal_era_moved(void);
extern void LeaseWalCheckpointed(void);
extern void LeaseWalWait(void);

/* lease_token.c */
extern void LeaseEpochStartup(void);
extern void LeaseTokenCheck(void);	/* before the lease lock, on any path that may grant */
extern int64 LeaseNextToken(void);
extern bool LeaseTokenLive(int64 token);
extern void LeaseRestoreDump(void);
extern void LeaseShutdownDump(int code, Datum arg);

#endif							/* LOCKCTL_LEASE_H */
