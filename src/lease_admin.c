/*-------------------------------------------------------------------------
 *
 * lease_admin.c
 *	  Administrative acts on many leases at once: release every lease of a
 *	  role (lockctl.release_role_leases) or of a database
 *	  (lockctl.release_database_leases), and free the leases of a database
 *	  or of a role as soon as the DROP that removes it commits.
 *
 * A DROP DATABASE or DROP ROLE is seen by an object_access_hook (OAT_DROP
 * on pg_database or pg_authid), which only remembers the oid, because the
 * drop may still fail or roll back: DROP DATABASE calls the hook before it
 * checks for other sessions, and DROP ROLE may run in a savepoint.  A
 * transaction callback frees the leases at commit, and forgets the oid at
 * abort, at the abort of the subtransaction that dropped, and at PREPARE
 * TRANSACTION (whose outcome this backend never learns; those leases then
 * expire as usual).  The commit callback runs after the commit record is
 * written, so it raises no error and allocates nothing: the hook allocates.
 *
 * Locking: each act takes the lease lock exclusively once, for a scan of
 * the lease table (these are rare, administrative acts).
 *
 * src/lease_admin.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/xact.h"
#include "catalog/objectaccess.h"
#include "catalog/pg_authid.h"
#include "catalog/pg_database.h"
#include "commands/dbcommands.h"
#include "miscadmin.h"
#include "storage/lwlock.h"
#include "utils/builtins.h"
#include "utils/hsearch.h"
#include "utils/memutils.h"

#include "lease.h"

/* A database or role dropped by the current transaction, not yet committed. */
typedef struct LeaseDropped
{
	Oid			classid;		/* DatabaseRelationId or AuthIdRelationId */
	Oid			objid;
	int			level;			/* transaction nest level of the drop */
	char		name[NAMEDATALEN];
} LeaseDropped;

static LeaseDropped *dropped = NULL;
static int	ndropped = 0;
static int	dropped_alloc = 0;

static object_access_hook_type prev_object_access_hook = NULL;

static int	lease_release_where(Oid dbid, Oid role, bool database_gone);
static void lease_object_access(ObjectAccessType access, Oid classId,
								Oid objectId, int subId, void *arg);
static void lease_admin_xact_callback(XactEvent event, void *arg);
static void lease_admin_subxact_callback(SubXactEvent event,
										 SubTransactionId mySubid,
										 SubTransactionId parentSubid,
										 void *arg);

/*
 * Called by LeaseInit: watch drops of databases and roles.
 */
void
lease_admin_init(void)
{
	prev_object_access_hook = object_access_hook;
	object_access_hook = lease_object_access;
	RegisterXactCallback(lease_admin_xact_callback, NULL);
	RegisterSubXactCallback(lease_admin_subxact_callback, NULL);
}

/*
 * End every lease held in database dbid (if valid) and by role (if valid),
 * wake the first waiter of each, and remove the entries nothing needs.
 * When database_gone, every entry of the database goes, held or not: no
 * session, waiter or fencing transaction of a dropped database is left
 * (DROP DATABASE refuses while prepared transactions of it exist).
 * Returns how many of the leases ended were live.  Caller holds the lease
 * lock exclusively.  Raises no error (it runs at commit).
 */
static int
lease_release_where(Oid dbid, Oid role, bool database_gone)
{
	HASH_SEQ_STATUS seq;
	LeaseEntry *e;
	int64		now = lease_now_mono();
	int			released = 0;

	hash_seq_init(&seq, lease_hash);
	while ((e = hash_seq_search(&seq)) != NULL)
	{
		if (OidIsValid(dbid) && e->key.dbid != dbid)
			continue;
		if (e->nholders > 0)
		{
			/*
			 * Counted and shared holders of the role, or all of them: a
			 * fenced one keeps its slot (ended) until its fence is over,
			 * unless the database is gone.
			 */
			dlist_mutable_iter it;
			bool		ended = false;

			dlist_foreach_modify(it, &e->holders)
			{
				LeaseHolder *h = dlist_container(LeaseHolder, node, it.cur);

				if (OidIsValid(role) && h->roleid != role)
					continue;
				if (h->ended && !database_gone)
					continue;
				if (lease_holder_end(e, h, now,
									 &lease_shared->stats.force_releases,
									 !database_gone, LEASE_END_FORCED))
					released++;
				ended = true;
			}
			if (ended || database_gone)
			{
				if (database_gone)
				{
					e->fenced = false;
					e->fenced_by = 0;
				}
				lease_wake_head(e);
				lease_maybe_remove(e);
			}
			continue;
		}
		if (OidIsValid(role) && (!e->held || e->roleid != role))
			continue;
		if (e->held)
		{
			bool		live = lease_is_live(e, now);

			if (live)
			{
				released++;
				lease_shared->stats.force_releases++;
			}
			else
				lease_shared->stats.expiries++;
			lease_unhold(e, lease_end_how(e->token, live, LEASE_END_FORCED));
		}
		if (database_gone)
		{
			e->fenced = false;
			e->fenced_by = 0;
		}
		lease_wake_head(e);
		lease_maybe_remove(e);
	}
	return released;
}

/*
 * lockctl.release_role_leases(role regrole) returns integer: end every
 * lease the role holds, in every database (the role and its quota are the
 * cluster's), and say how many were live.  Administrative: EXECUTE is
 * revoked from PUBLIC by the install script.  The oid of a role that no
 * longer exists is accepted, to free what it left behind.
 */
PG_FUNCTION_INFO_V1(lockctl_release_role_leases);
Datum
lockctl_release_role_leases(PG_FUNCTION_ARGS)
{
	Oid			role;
	int			released;

	lockctl_arg_not_null(fcinfo, 0, "role");
	role = PG_GETARG_OID(0);
	if (!OidIsValid(role))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("role of lockctl.release_role_leases must name a role")));
	lease_check_writable("lockctl.release_role_leases()");
	lease_check_shmem();

	LWLockAcquire(lease_shared->lock, LW_EXCLUSIVE);
	released = lease_release_where(InvalidOid, role, false);
	lease_unlock();

	if (released > 0)
	{
		char	   *name = GetUserNameFromId(role, true);

		ereport(LOG,
				(errmsg("lockctl released %d lease(s) of role \"%s\" at the request of role \"%s\"",
						released, name ? name : psprintf("%u", role),
						GetUserNameFromId(GetUserId(), true))));
	}
	PG_RETURN_INT32(released);
}

/*
 * lockctl.release_database_leases(database name) returns integer: end
 * every lease held in that database, and say how many were live.
 * Administrative, like release_role_leases.
 */
PG_FUNCTION_INFO_V1(lockctl_release_database_leases);
Datum
lockctl_release_database_leases(PG_FUNCTION_ARGS)
{
	Oid			dbid;
	int			released;

	lockctl_arg_not_null(fcinfo, 0, "database");
	dbid = get_database_oid(NameStr(*PG_GETARG_NAME(0)), false);
	lease_check_writable("lockctl.release_database_leases()");
	lease_check_shmem();

	LWLockAcquire(lease_shared->lock, LW_EXCLUSIVE);
	released = lease_release_where(dbid, InvalidOid, false);
	lease_unlock();

	if (released > 0)
		ereport(LOG,
				(errmsg("lockctl released %d lease(s) of database \"%s\" at the request of role \"%s\"",
						released, NameStr(*PG_GETARG_NAME(0)),
						GetUserNameFromId(GetUserId(), true))));
	PG_RETURN_INT32(released);
}

/*
 * object_access_hook: remember a database or role being dropped, with its
 * name for the log, until the transaction ends.
 */
static void
lease_object_access(ObjectAccessType access, Oid classId, Oid objectId,
					int subId, void *arg)
{
	if (prev_object_access_hook)
		prev_object_access_hook(access, classId, objectId, subId, arg);

	if (access != OAT_DROP || subId != 0 ||
		(classId != DatabaseRelationId && classId != AuthIdRelationId))
		return;

	if (ndropped >= dropped_alloc)
	{
		int			n = Max(4, dropped_alloc * 2);

		if (dropped == NULL)
			dropped = MemoryContextAlloc(TopMemoryContext,
										 n * sizeof(LeaseDropped));
		else
			dropped = repalloc(dropped, n * sizeof(LeaseDropped));
		dropped_alloc = n;
	}
	dropped[ndropped].classid = classId;
	dropped[ndropped].objid = objectId;
	dropped[ndropped].level = GetCurrentTransactionNestLevel();
	{
		char	   *name = classId == DatabaseRelationId ?
			get_database_name(objectId) : GetUserNameFromId(objectId, true);

		strlcpy(dropped[ndropped].name, name ? name : "?", NAMEDATALEN);
	}
	ndropped++;
}

/*
 * Transaction callback: at commit, free the leases of what was dropped.
 * At abort, also wake the waiters lease_wake_head put aside before an error
 * (lease.c): the lease lock is already free then.  Kept here, in the one
 * transaction callback of the leases, rather than in a second one that
 * every transaction would call.
 */
static void
lease_admin_xact_callback(XactEvent event, void *arg)
{
	int			i;

	/*
	 * Waiters an error kept from being woken: it left the lease lock
	 * (LWLockReleaseAll, before these callbacks) but not lease_unlock.
	 */
	if (event == XACT_EVENT_ABORT || event == XACT_EVENT_PARALLEL_ABORT)
		lease_wake_pending();
	if (ndropped == 0)
		return;
	switch (event)
	{
		case XACT_EVENT_COMMIT:
			if (lease_shared == NULL)
				break;
			for (i = 0; i < ndropped; i++)
			{
				LeaseDropped *d = &dropped[i];
				int			released;

				LWLockAcquire(lease_shared->lock, LW_EXCLUSIVE);
				if (d->classid == DatabaseRelationId)
					released = lease_release_where(d->objid, InvalidOid, true);
				else
					released = lease_release_where(InvalidOid, d->objid, false);
				lease_unlock();
				if (released > 0)
					ereport(LOG,
							(errmsg("lockctl released %d lease(s) of dropped %s \"%s\"",
									released,
									d->classid == DatabaseRelationId ? "database" : "role",
									d->name)));
			}
			break;
		case XACT_EVENT_ABORT:
		case XACT_EVENT_PARALLEL_ABORT:
		case XACT_EVENT_PREPARE:
			break;
		default:
			return;				/* not the end of the transaction yet */
	}
	ndropped = 0;
}

/*
 * Subtransaction callback: a drop in a subtransaction that aborts is
 * forgotten; one in a subtransaction that commits now belongs to its
 * parent.  An abort also wakes the waiters put aside, as above.
 */
static void
lease_admin_subxact_callback(SubXactEvent event, SubTransactionId mySubid,
							 SubTransactionId parentSubid, void *arg)
{
	int			level = GetCurrentTransactionNestLevel();
	int			i;
	int			kept = 0;

	if (event == SUBXACT_EVENT_ABORT_SUB)
		lease_wake_pending();
	if (ndropped == 0)
		return;
	if (event == SUBXACT_EVENT_ABORT_SUB)
	{
		for (i = 0; i < ndropped; i++)
			if (dropped[i].level < level)
				dropped[kept++] = dropped[i];
		ndropped = kept;
	}
	else if (event == SUBXACT_EVENT_COMMIT_SUB)
	{
		for (i = 0; i < ndropped; i++)
			if (dropped[i].level >= level)
				dropped[i].level = level - 1;
	}
}
