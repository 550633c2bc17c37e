/*-------------------------------------------------------------------------
 *
 * lease_session.c
 *	  acquire(..., bind => 'session'): a lease that lives as long as the
 *	  session that took it, and ends when that session ends.
 *
 * A session-bound lease does not run out: acquire gives it the expiry
 * LEASE_EXPIRES_NEVER (lease_options_granted, lease_notify.c, under the
 * lease lock of the grant), which renew and fence's extend leave as it is
 * and the views show as infinity.  Its notice (lease_notify.c) names the
 * backend (bound_pid).  When that backend exits, for whatever reason (a
 * clean disconnect, pg_terminate_backend, a FATAL error), its
 * before_shmem_exit callback ends each of its bound leases as release
 * does, with the end 'session ended' (watch, and the NOTIFY), and wakes the
 * first in line.  release, force_release and the rest still end it
 * earlier.  A crash of any backend restarts the server, which loses every
 * lease; a clean shutdown ends every session first, and the shutdown dump
 * (lease_token.c) skips a lease that never runs out anyway: a bound lease
 * never survives its session.
 *
 * DISCARD ALL ends them too, as it releases the session's advisory locks:
 * it is how a session pooler (PgBouncer's server_reset_query) hands a
 * server connection to the next client, so a lease bound to the session
 * must not pass to that client.  The hook runs after DISCARD ALL
 * succeeded; DISCARD ALL cannot run in a transaction block, so nothing
 * rolls it back.
 *
 * Where it cannot be honoured, acquire refuses it (0A000): in a background
 * or parallel worker, a WAL sender, anything but a client backend, whose
 * end is not a client's.  Behind a pooler in transaction mode the session
 * is the pooler's server connection, not the client's: it is not detected
 * and must not be used there (docs/leases.md).
 *
 * src/lease_session.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "miscadmin.h"
#include "nodes/parsenodes.h"
#include "storage/ipc.h"
#include "tcop/utility.h"
#include "storage/lwlock.h"
#include "utils/hsearch.h"

#include "lease.h"

static bool exit_callback_registered = false;
static ProcessUtility_hook_type prev_process_utility = NULL;

static void lease_session_exit(int code, Datum arg);
static void lease_session_utility(PlannedStmt *pstmt, const char *queryString,
								  bool readOnlyTree,
								  ProcessUtilityContext context,
								  ParamListInfo params,
								  QueryEnvironment *queryEnv,
								  DestReceiver *dest, QueryCompletion *qc);
static void lease_session_end(const LeaseKey *key, int64 token, int64 now);

/*
 * Install the ProcessUtility hook that watches for DISCARD ALL.
 */
void
lease_session_init(void)
{
	prev_process_utility = ProcessUtility_hook;
	ProcessUtility_hook = lease_session_utility;
}

/*
 * bind => 'session' was asked: refuse it where there is no client session
 * whose end ends the lease, else arrange to end the bound leases at exit.
 * Called before the lease lock is taken.
 */
void
lease_session_check(void)
{
	if (MyBackendType != B_BACKEND)
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("bind => 'session' needs a client session"),
				 errdetail("This process is a %s, not a client backend.",
						   GetBackendTypeDesc(MyBackendType)),
				 errhint("Acquire with a ttl, and renew it.")));
	if (!exit_callback_registered)
	{
		before_shmem_exit(lease_session_exit, (Datum) 0);
		exit_callback_registered = true;
	}
}

/*
 * End the lease of token on key, bound to this session, as release would.
 * Caller holds the lease lock exclusively.
 */
static void
lease_session_end(const LeaseKey *key, int64 token, int64 now)
{
	LeaseEntry *e = hash_search(lease_hash, key, HASH_FIND, NULL);
	LeaseHolder *h;

	if (e != NULL && e->held && e->token == token)
	{
		bool		live = lease_is_live(e, now);

		lease_unhold(e, lease_end_how(token, live, LEASE_END_SESSION));
		if (live)
			lease_shared->stats.releases++;
		else
			lease_shared->stats.expiries++;
		lease_wake_head(e);
		lease_maybe_remove(e);
	}
	else if (e != NULL && e->nholders > 0 &&
			 (h = lease_counted_find(e, token)) != NULL && h->in_quota)
	{
		(void) lease_holder_end(e, h, now, &lease_shared->stats.releases,
								true, LEASE_END_SESSION);
		lease_wake_head(e);
		lease_maybe_remove(e);
	}
	else
		lease_notice_forget(token);
}

/*
 * before_shmem_exit callback: end every lease bound to this session.  The
 * lease lock may be held already (an error or a FATAL exit while it was).
 */
static void
lease_session_exit(int code, Datum arg)
{
	LeaseKey   *keys;
	int64	   *tokens;
	int			n;
	int			i;
	bool		held;
	int64		now;

	if (lease_shared == NULL)
		return;
	held = LWLockHeldByMeInMode(lease_shared->lock, LW_EXCLUSIVE);
	if (!held)
	{
		if (LWLockHeldByMe(lease_shared->lock))
			lease_unlock();
		LWLockAcquire(lease_shared->lock, LW_EXCLUSIVE);
	}
	now = lease_now_mono();
	n = lease_notice_bound(MyProcPid, &keys, &tokens);
	for (i = 0; i < n; i++)
		lease_session_end(&keys[i], tokens[i], now);
	if (!held)
		lease_unlock();
	if (keys != NULL)
	{
		pfree(keys);
		pfree(tokens);
	}
}

/*
 * ProcessUtility hook: after a successful DISCARD ALL, end this session's
 * bound leases, as the session's end would.
 */
static void
lease_session_utility(PlannedStmt *pstmt, const char *queryString,
					  bool readOnlyTree, ProcessUtilityContext context,
					  ParamListInfo params, QueryEnvironment *queryEnv,
					  DestReceiver *dest, QueryCompletion *qc)
{
	Node	   *parsetree = pstmt->utilityStmt;
	bool		discard_all = IsA(parsetree, DiscardStmt) &&
		((DiscardStmt *) parsetree)->target == DISCARD_ALL;

	if (prev_process_utility)
		prev_process_utility(pstmt, queryString, readOnlyTree, context,
							 params, queryEnv, dest, qc);
	else
		standard_ProcessUtility(pstmt, queryString, readOnlyTree, context,
								params, queryEnv, dest, qc);
	if (discard_all && exit_callback_registered)
		lease_session_exit(0, (Datum) 0);
}
