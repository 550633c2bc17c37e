/*-------------------------------------------------------------------------
 *
 * lease_notify.c
 *	  acquire(..., notify => 'channel'): a NOTIFY on that channel, in the
 *	  lease's database, when the lease ends; and the registry of leases
 *	  that carry a channel or a session binding (lease_session.c).
 *
 * The registry
 * ------------
 * A lease acquired with notify or bind has a LeaseNotice, keyed by its
 * token (tokens are unique in the server), in a shared hash protected by
 * the lease lock.  acquire registers it under the lease lock, in the same
 * hold of the lock as the grant (lease_options_granted), so no end can
 * come between.  Every end of a lease passes through lease_watch_end
 * (lease_watch.c), which calls lease_notify_end: a notice without a
 * channel is dropped; one with a channel keeps the end (how) and waits for
 * its NOTIFY, and the expiry worker of its database is woken (its latch).
 *
 * Expiry is lazy in the lease table (an expired lease is reclaimed by the
 * next acquire, release or sweep), so an end by expiry may have no backend
 * to see it.  The expiry worker of each database therefore also runs
 * lease_notify_worker_pass: it ends the leases of its database that carry
 * a channel and ran out (as a sweep would: 'expired', or 'lost' if their
 * era is gone; an exclusive lease with someone in line is left to the
 * first waiter, who takes it over at its expiry, which is the end then),
 * takes the ends waiting for a NOTIFY and sends them, in one transaction
 * of that database (Async_Notify: LISTENers get them at its commit).  It
 * returns when the next lease with a channel runs out, and the worker
 * sleeps no longer than that.
 *
 * The payload is JSON: {"resource": ..., "token": ..., "ended": how}, how
 * being what watch answers ('released', 'force-released', 'taken over',
 * 'expired', 'lost', 'session ended').
 *
 * Guarantees (docs/leases.md, "A NOTIFY when a lease ends"): after the end,
 * never before; at most once (a notice is taken out of shared memory before
 * its transaction commits: an error or a crash in between loses it);
 * within milliseconds of a release, force-release, take-over or session
 * end, and of an expiry as soon as the worker wakes at it (at most
 * lockctl.expiry_interval late when a renew made the expiry earlier than
 * the worker planned for).  Lost: whatever waits at a restart or crash
 * (shared memory), ends beyond LEASE_NOTIFY_PENDING_MAX waiting at once
 * (counted, and logged by the worker), and those of a dropped database
 * (any worker forgets them); nothing is sent while the database has no
 * expiry worker.  A wake-up for a notice does not make the worker run its
 * pass of holds (lease_notify_woken, expiry_worker.c).
 *
 * src/lease_notify.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/xact.h"
#include "commands/async.h"
#include "funcapi.h"
#include "lib/stringinfo.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "storage/lwlock.h"
#include "storage/shmem.h"
#include "utils/builtins.h"
#include "utils/hsearch.h"
#include "utils/json.h"
#include "utils/lsyscache.h"
#include "utils/snapmgr.h"
#include "utils/syscache.h"

#include "lease.h"
#include "worker.h"

/* ends that may wait for their NOTIFY at once, in every database */
#define LEASE_NOTIFY_PENDING_MAX	1024
/* other databases whose pending notices one pass looks at */
#define LEASE_NOTIFY_OTHER_DBS		16

typedef struct LeaseNotice
{
	int64		token;			/* hash key: must be first */
	LeaseKey	key;
	Oid			roleid;			/* the role that took the lease */
	int			how;			/* 0 while the lease lives; then its end */
	int			bound_pid;		/* the session it is bound to, 0: none */
	char		channel[NAMEDATALEN];	/* '' : no NOTIFY */
} LeaseNotice;

typedef struct LeaseNotifyShared
{
	int			nnotices;		/* entries in the hash */
	int			npending;		/* of them, ends waiting for their NOTIFY */
	uint64		sent;
	uint64		dropped;		/* ends past LEASE_NOTIFY_PENDING_MAX */
	/* per expiry worker slot: its latch was set for a notice (no lock) */
	volatile bool woken[FLEXIBLE_ARRAY_MEMBER];	/* MaxBackends */
} LeaseNotifyShared;

/* one NOTIFY to send, copied out of the hash */
typedef struct LeaseNotifySend
{
	char		channel[NAMEDATALEN];
	char		resource[LOCKCTL_NAME_MAXLEN + 1];
	int64		token;
	int			how;
} LeaseNotifySend;

static LeaseNotifyShared *notify_shared = NULL;
static HTAB *notice_hash = NULL;

static Size lease_notify_shmem_size(void);
static void lease_notify_shmem_startup(void);
static int	lease_notify_capacity(void);
static void lease_notify_wake(Oid dbid);
static void lease_notice_remove(LeaseNotice *n);
static const char *lease_fn_name(FunctionCallInfo fcinfo);

static const LockctlShmemPart lease_notify_shmem_part = {
	lease_notify_shmem_size, NULL, lease_notify_shmem_startup
};

void
lease_notify_init(void)
{
	lockctl_shmem_register(&lease_notify_shmem_part);
}

/*
 * Every held lease may have a notice (lockctl.max_leases exclusive leases
 * and as many counted or shared holders), and so may the ends waiting for
 * their NOTIFY: the hash can never be full.
 */
static int
lease_notify_capacity(void)
{
	return 2 * lockctl_max_leases + LEASE_NOTIFY_PENDING_MAX;
}

static Size
lease_notify_shmem_size(void)
{
	return add_size(MAXALIGN(offsetof(LeaseNotifyShared, woken) +
							 sizeof(bool) * MaxBackends),
					hash_estimate_size(lease_notify_capacity(),
									   sizeof(LeaseNotice)));
}

static void
lease_notify_shmem_startup(void)
{
	bool		found;
	HASHCTL		info;

	notify_shared = NULL;
	notice_hash = NULL;
	LWLockAcquire(AddinShmemInitLock, LW_EXCLUSIVE);
	notify_shared = ShmemInitStruct("lockctl lease notices",
									offsetof(LeaseNotifyShared, woken) +
									sizeof(bool) * MaxBackends, &found);
	if (!found)
		memset(notify_shared, 0,
			   offsetof(LeaseNotifyShared, woken) + sizeof(bool) * MaxBackends);
	memset(&info, 0, sizeof(info));
	info.keysize = sizeof(int64);
	info.entrysize = sizeof(LeaseNotice);
	notice_hash = ShmemInitHash("lockctl lease notice table",
								lease_notify_capacity(),
								lease_notify_capacity(),
								&info,
								HASH_ELEM | HASH_BLOBS | HASH_FIXED_SIZE);
	LWLockRelease(AddinShmemInitLock);
}

/* lockctl.acquire or lockctl.acquire_shared, for messages */
static const char *
lease_fn_name(FunctionCallInfo fcinfo)
{
	char	   *name = NULL;

	if (fcinfo->flinfo && OidIsValid(fcinfo->flinfo->fn_oid))
		name = get_func_name(fcinfo->flinfo->fn_oid);
	return psprintf("lockctl.%s", name ? name : "?");
}

/*
 * acquire's notify and bind arguments, argno and argno + 1 (absent under
 * 1.0's SQL, which has neither): check them, before anything is locked.
 */
void
lease_options_arg(FunctionCallInfo fcinfo, int argno, LeaseOptions *opts)
{
	opts->notify = NULL;
	opts->bind_session = false;
	if (PG_NARGS() > argno && !PG_ARGISNULL(argno))
	{
		text	   *t = PG_GETARG_TEXT_PP(argno);
		int			len = VARSIZE_ANY_EXHDR(t);

		if (len == 0)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("notify of %s must not be empty",
							lease_fn_name(fcinfo)),
					 errhint("Pass NULL, or leave it out, for no NOTIFY.")));
		if (len >= NAMEDATALEN)
			ereport(ERROR,
					(errcode(ERRCODE_NAME_TOO_LONG),
					 errmsg("notify of %s is too long for a channel name",
							lease_fn_name(fcinfo)),
					 errdetail("It is %d bytes long; the limit is %d bytes.",
							   len, NAMEDATALEN - 1)));
		opts->notify = text_to_cstring(t);
	}
	if (PG_NARGS() > argno + 1)
	{
		char	   *bind;

		lockctl_arg_not_null(fcinfo, argno + 1, "bind");
		bind = text_to_cstring(PG_GETARG_TEXT_PP(argno + 1));
		if (strcmp(bind, "session") == 0)
			opts->bind_session = true;
		else if (strcmp(bind, "none") != 0)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("bind of %s must be 'none' or 'session'",
							lease_fn_name(fcinfo)),
					 errdetail("It is '%s'.", bind)));
		if (opts->bind_session)
			lease_session_check();
	}
}

/*
 * acquire granted token on e (a new grant, or the same token again to the
 * same owner): register what opts ask for.  A channel given replaces the
 * lease's; bind => 'session' binds it to this session (the last to ask).
 * Caller holds the lease lock exclusively.  Raises no error.
 */
void
lease_options_granted(LeaseEntry *e, int64 token, const LeaseOptions *opts)
{
	LeaseNotice *n;
	LeaseHolder *h = NULL;
	bool		found;

	if (opts->notify == NULL && !opts->bind_session)
		return;
	if (!(e->held && e->token == token))
	{
		h = lease_counted_find(e, token);
		if (h == NULL)
			return;				/* cannot happen: it was just granted */
	}
	n = hash_search(notice_hash, &token, HASH_ENTER_NULL, &found);
	if (n == NULL)
		return;					/* cannot happen: see lease_notify_capacity */
	if (!found)
	{
		n->key = e->key;
		n->roleid = h != NULL ? h->roleid : e->roleid;
		n->how = 0;
		n->bound_pid = 0;
		n->channel[0] = '\0';
		notify_shared->nnotices++;
	}
	if (opts->notify != NULL)
	{
		strlcpy(n->channel, opts->notify, sizeof(n->channel));
		/* the worker plans its sleep by the leases with a channel */
		lease_notify_wake(e->key.dbid);
	}
	if (opts->bind_session)
	{
		n->bound_pid = MyProcPid;
		if (h != NULL)
			h->expires_mono = LEASE_EXPIRES_NEVER;
		else
		{
			/* it cannot outlive its session: not carried (lease_wal.c) */
			lease_wal_clear(e, token);
			e->expires_mono = LEASE_EXPIRES_NEVER;
		}
	}
}

static void
lease_notice_remove(LeaseNotice *n)
{
	int64		token = n->token;

	if (n->how != 0)
		notify_shared->npending--;
	hash_search(notice_hash, &token, HASH_REMOVE, NULL);
	notify_shared->nnotices--;
}

/*
 * The lease of token on key ended, as how says (lease_watch_end): its
 * NOTIFY, if it has a channel, waits for the worker of its database.
 * Caller holds the lease lock exclusively.  Raises no error.
 */
void
lease_notify_end(const LeaseKey *key, int64 token, int how)
{
	LeaseNotice *n;

	if (notice_hash == NULL || notify_shared->nnotices == 0)
		return;
	n = hash_search(notice_hash, &token, HASH_FIND, NULL);
	if (n == NULL || n->how != 0 || n->key.dbid != key->dbid)
		return;
	if (n->channel[0] == '\0')
	{
		lease_notice_remove(n);
		return;
	}
	if (notify_shared->npending >= LEASE_NOTIFY_PENDING_MAX)
	{
		notify_shared->dropped++;
		lease_notice_remove(n);
		return;
	}
	n->how = how;
	n->bound_pid = 0;
	notify_shared->npending++;
	lease_notify_wake(key->dbid);
}

/*
 * Wake the expiry worker of database dbid, if it runs.  Called under the
 * lease lock: the worker lock is taken after it, never the other way.
 */
static void
lease_notify_wake(Oid dbid)
{
	int			i;

	if (expiry_shared == NULL)
		return;
	LWLockAcquire(expiry_shared->lock, LW_SHARED);
	for (i = 0; i < expiry_shared->nslots; i++)
	{
		ExpirySlot *slot = &expiry_shared->slots[i];

		if (slot->dboid == dbid && slot->pid != 0 && slot->latch != NULL)
		{
			if (i < MaxBackends)
				notify_shared->woken[i] = true;
			SetLatch(slot->latch);
		}
	}
	LWLockRelease(expiry_shared->lock);
}

/*
 * Was the latch of the expiry worker of slot slotno set for a notice since
 * it last asked?  Clears the flag.  The worker runs its pass of holds (a few
 * transactions) only when its interval has passed or something else woke
 * it, not at each lease end.
 */
bool
lease_notify_woken(int slotno)
{
	bool		woken;

	if (notify_shared == NULL || slotno < 0 || slotno >= MaxBackends)
		return false;
	woken = notify_shared->woken[slotno];
	notify_shared->woken[slotno] = false;
	return woken;
}

/*
 * The sessions bound to pid: copies of the keys and tokens of its live
 * leases, for lease_session.c.  Caller holds the lease lock.
 */
int
lease_notice_bound(int pid, LeaseKey **keys, int64 **tokens)
{
	HASH_SEQ_STATUS seq;
	LeaseNotice *n;
	int			count = 0;

	*keys = NULL;
	*tokens = NULL;
	if (notice_hash == NULL || notify_shared->nnotices == 0)
		return 0;
	hash_seq_init(&seq, notice_hash);
	while ((n = hash_seq_search(&seq)) != NULL)
	{
		if (n->how != 0 || n->bound_pid != pid)
			continue;
		if (*keys == NULL)
		{
			*keys = MemoryContextAlloc(TopMemoryContext,
									   sizeof(LeaseKey) * notify_shared->nnotices);
			*tokens = MemoryContextAlloc(TopMemoryContext,
										 sizeof(int64) * notify_shared->nnotices);
		}
		(*keys)[count] = n->key;
		(*tokens)[count] = n->token;
		count++;
	}
	return count;
}

/*
 * Forget the notice of token, whose lease is gone without an end seen (it
 * should not happen).  Caller holds the lease lock exclusively.
 */
void
lease_notice_forget(int64 token)
{
	LeaseNotice *n;

	if (notice_hash == NULL)
		return;
	n = hash_search(notice_hash, &token, HASH_FIND, NULL);
	if (n != NULL)
		lease_notice_remove(n);
}

/*
 * What the expiry worker of database dbid does for leases with a channel
 * (see the head of this file): end those that ran out, send the NOTIFY of
 * every end that waits, in one transaction.  Returns how many it sent;
 * *due_ms is when the next lease with a channel runs out, -1 if none does.
 * Outside a transaction; starts and commits its own.
 */
int
lease_notify_worker_pass(Oid dbid, long *due_ms)
{
	HASH_SEQ_STATUS seq;
	LeaseNotice *n;
	LeaseKey   *keys;
	int64	   *tokens;
	LeaseNotifySend *sends;
	int			ndue = 0;
	int			nsend = 0;
	int64		now;
	int64		next = PG_INT64_MAX;
	uint64		dropped;
	static uint64 dropped_seen = 0;
	Oid			others[LEASE_NOTIFY_OTHER_DBS];
	int			nothers = 0;
	int			ngone = 0;
	int			i;

	*due_ms = -1;
	/* an unlocked look: a notice made after it wakes the worker again */
	if (notify_shared == NULL || lease_shared == NULL ||
		notify_shared->nnotices == 0)
		return 0;

	/* in a transaction from here: an error releases the lease lock */
	SetCurrentStatementStartTimestamp();
	StartTransactionCommand();
	pgstat_report_activity(STATE_RUNNING, "lockctl: lease notices");

	LWLockAcquire(lease_shared->lock, LW_EXCLUSIVE);
	keys = palloc(sizeof(LeaseKey) * Max(notify_shared->nnotices, 1));
	tokens = palloc(sizeof(int64) * Max(notify_shared->nnotices, 1));
	sends = palloc(sizeof(LeaseNotifySend) * Max(notify_shared->nnotices, 1));
	now = lease_now_mono();

	/* the live leases of this database with a channel */
	hash_seq_init(&seq, notice_hash);
	while ((n = hash_seq_search(&seq)) != NULL)
	{
		if (n->key.dbid != dbid || n->how != 0 || n->channel[0] == '\0')
			continue;
		keys[ndue] = n->key;
		tokens[ndue] = n->token;
		ndue++;
	}

	/* end those that ran out, as a sweep would (their ends come back here) */
	for (i = 0; i < ndue; i++)
	{
		LeaseEntry *e = hash_search(lease_hash, &keys[i], HASH_FIND, NULL);
		LeaseHolder *h;

		if (e != NULL && e->held && e->token == tokens[i])
		{
			if (lease_is_live(e, now))
				next = Min(next, e->expires_mono);
			else if (e->nwaiters > 0 &&
					 (LeaseTokenLive(e->token) || lease_carried_live(e)))
			{
				/* the first waiter takes it over (or once its fence ends) */
				next = Min(next, now + LEASE_FENCE_RECHECK_MS * INT64CONST(1000));
			}
			else
			{
				lease_unhold(e, lease_end_how(e->token, false, 0));
				lease_shared->stats.expiries++;
				lease_wake_head(e);
				lease_maybe_remove(e);
			}
		}
		else if (e != NULL && e->nholders > 0 &&
				 (h = lease_counted_find(e, tokens[i])) != NULL &&
				 h->in_quota)
		{
			if (lease_holder_live(h, now))
				next = Min(next, h->expires_mono);
			else
			{
				lease_counted_reclaim(e, now);
				lease_wake_head(e);
				lease_maybe_remove(e);
			}
		}
		else
			lease_notice_forget(tokens[i]);
	}

	/* the ends of this database waiting for their NOTIFY */
	hash_seq_init(&seq, notice_hash);
	while ((n = hash_seq_search(&seq)) != NULL)
	{
		LeaseNotifySend *s;

		if (n->how == 0)
			continue;
		if (n->key.dbid != dbid)
		{
			/* another database's: see below whether it still exists */
			for (i = 0; i < nothers; i++)
				if (others[i] == n->key.dbid)
					break;
			if (i == nothers && nothers < LEASE_NOTIFY_OTHER_DBS)
				others[nothers++] = n->key.dbid;
			continue;
		}
		s = &sends[nsend++];
		strlcpy(s->channel, n->channel, sizeof(s->channel));
		strlcpy(s->resource, n->key.resource, sizeof(s->resource));
		s->token = n->token;
		s->how = n->how;
		/* removing the entry just returned is allowed during a scan */
		lease_notice_remove(n);
	}
	notify_shared->sent += nsend;
	dropped = notify_shared->dropped;
	lease_unlock();

	for (i = 0; i < nsend; i++)
	{
		StringInfoData payload;

		initStringInfo(&payload);
		appendStringInfoString(&payload, "{\"resource\": ");
		escape_json(&payload, sends[i].resource);
		appendStringInfo(&payload, ", \"token\": " INT64_FORMAT ", \"ended\": ",
						 sends[i].token);
		escape_json(&payload, lease_end_name(sends[i].how));
		appendStringInfoChar(&payload, '}');
		Async_Notify(sends[i].channel, payload.data);
	}

	/*
	 * The notices of a database that was dropped (its leases were released
	 * at the commit of DROP DATABASE) have no worker to send them: forget
	 * them, or they would fill the LEASE_NOTIFY_PENDING_MAX places.
	 */
	for (i = 0; i < nothers; i++)
	{
		if (!SearchSysCacheExists1(DATABASEOID, ObjectIdGetDatum(others[i])))
			others[ngone++] = others[i];
	}
	if (ngone > 0)
	{
		LWLockAcquire(lease_shared->lock, LW_EXCLUSIVE);
		hash_seq_init(&seq, notice_hash);
		while ((n = hash_seq_search(&seq)) != NULL)
		{
			for (i = 0; i < ngone; i++)
				if (n->how != 0 && n->key.dbid == others[i])
				{
					lease_notice_remove(n);
					break;
				}
		}
		lease_unlock();
	}
	CommitTransactionCommand();
	pgstat_report_activity(STATE_IDLE, NULL);

	if (dropped != dropped_seen)
	{
		ereport(WARNING,
				(errmsg("lockctl: " UINT64_FORMAT " lease end notices were dropped: more than %d waited for their NOTIFY",
						dropped - dropped_seen, LEASE_NOTIFY_PENDING_MAX)));
		dropped_seen = dropped;
	}
	if (next < LEASE_EXPIRES_NEVER)
		*due_ms = (long) Max(Min((next - now + 999) / 1000, INT_MAX), 1);
	return nsend;
}

/*
 * lockctl_internal.lease_options(): the leases of this database that carry
 * a channel or a session binding, and the ends whose NOTIFY has not been
 * sent yet.  Token and channel are NULL unless the caller may act on the
 * lease (lease_may_act, outside the lease lock).
 */
PG_FUNCTION_INFO_V1(lockctl_lease_options);
Datum
lockctl_lease_options(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	LeaseNotice *rows = NULL;
	int			nrows = 0;
	HASH_SEQ_STATUS seq;
	LeaseNotice *n;
	int			i;

	InitMaterializedSRF(fcinfo, 0);
	lease_check_shmem();
	if (notice_hash == NULL)
		return (Datum) 0;

	LWLockAcquire(lease_shared->lock, LW_SHARED);
	rows = palloc(sizeof(LeaseNotice) * Max(notify_shared->nnotices, 1));
	hash_seq_init(&seq, notice_hash);
	while ((n = hash_seq_search(&seq)) != NULL)
	{
		if (n->key.dbid == MyDatabaseId)
			rows[nrows++] = *n;
	}
	lease_unlock();

	for (i = 0; i < nrows; i++)
	{
		Datum		values[6];
		bool		nulls[6];
		bool		visible = lease_may_act(rows[i].roleid);

		memset(nulls, 0, sizeof(nulls));
		values[0] = CStringGetTextDatum(rows[i].key.resource);
		values[1] = Int64GetDatum(rows[i].token);
		nulls[1] = !visible;
		values[2] = ObjectIdGetDatum(rows[i].roleid);
		values[3] = rows[i].channel[0] ? CStringGetTextDatum(rows[i].channel) : (Datum) 0;
		nulls[3] = !visible || rows[i].channel[0] == '\0';
		values[4] = Int32GetDatum(rows[i].bound_pid);
		nulls[4] = rows[i].bound_pid == 0;
		values[5] = rows[i].how != 0 ? CStringGetTextDatum(lease_end_name(rows[i].how)) : (Datum) 0;
		nulls[5] = rows[i].how == 0;
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
	}
	return (Datum) 0;
}
