/*-------------------------------------------------------------------------
 *
 * lease_views.c
 *	  Reading the lease table: lockctl.lease(resource) and the functions
 *	  behind the views lockctl.leases, lockctl.lease_waiters and
 *	  lockctl.lease_stats.
 *
 * Readers take the lease lock shared, copy what they need and build their
 * rows after releasing it (privilege checks may read the catalogs).  A
 * token is shown only to the role that took the lease, roles with its
 * privileges, superusers and pg_read_all_stats.
 *
 * src/lease_views.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "catalog/pg_authid.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "storage/lwlock.h"
#include "utils/acl.h"
#include "utils/builtins.h"
#include "utils/hsearch.h"
#include "utils/timestamp.h"

#include "lease.h"

typedef struct LeaseRow LeaseRow;
static int	lease_collect(const char *resource, LeaseRow **rows_out);
static LeaseRow *lease_add_row(LeaseRow **rows, int *nrows, int *nalloc);
static bool lease_token_visible(Oid roleid, bool see_all);
static void lease_emit_rows(FunctionCallInfo fcinfo, const char *resource,
							bool one_resource);

/*
 * A copy of one live lease, taken under the lease lock, so that the rows
 * (and the privilege checks, which may read the catalogs) are built after
 * the lock is released.
 */
struct LeaseRow
{
	Oid			dbid;
	char		resource[LOCKCTL_NAME_MAXLEN + 1];
	char		owner[LOCKCTL_NAME_MAXLEN + 1];
	int64		token;
	Oid			roleid;
	TimestampTz acquired_at;
	TimestampTz expires_at;
	int			nwaiters;
	bool		fenced;
	int32		permits;		/* 1: exclusive; > 1: one holder of a counted
								 * lease; 0: a shared holder */
};

/*
 * A new row at the end of *rows, grown as needed.
 */
static LeaseRow *
lease_add_row(LeaseRow **rows, int *nrows, int *nalloc)
{
	if (*nrows >= *nalloc)
	{
		*nalloc *= 2;
		*rows = repalloc(*rows, sizeof(LeaseRow) * *nalloc);
	}
	return &(*rows)[(*nrows)++];
}

/*
 * Copy the live leases (all of them, or only those on resource in this
 * database; a counted lease has a row per live holder) into a palloc'd
 * array; returns how many.
 */
static int
lease_collect(const char *resource, LeaseRow **rows_out)
{
	LeaseRow   *rows = NULL;
	int			nrows = 0;
	int			nalloc = 0;
	LeaseEntry *e;
	int64		now_mono;
	TimestampTz now_wall;
	HASH_SEQ_STATUS seq;
	LeaseKey	key;

	if (resource != NULL)
		lease_make_key(&key, resource);

	LWLockAcquire(lease_shared->lock, LW_SHARED);
	now_mono = lease_now_mono();
	now_wall = GetCurrentTimestamp();

	if (resource != NULL)
	{
		e = hash_search(lease_hash, &key, HASH_FIND, NULL);
		nalloc = 1;
		rows = palloc(sizeof(LeaseRow));
	}
	else
	{
		nalloc = Max(lease_shared->nentries, 1);
		rows = palloc(sizeof(LeaseRow) * nalloc);
		hash_seq_init(&seq, lease_hash);
		e = hash_seq_search(&seq);
	}

	while (e != NULL)
	{
		if (e->nholders > 0)
		{
			/*
			 * counted and shared leases (lease_counted.c, lease_shared.c):
			 * a row per live holder
			 */
			dlist_iter	it;

			dlist_foreach(it, &e->holders)
			{
				LeaseHolder *h = dlist_container(LeaseHolder, node, it.cur);
				LeaseRow   *r;

				if (now_mono >= h->expires_mono)
					continue;
				r = lease_add_row(&rows, &nrows, &nalloc);
				r->dbid = e->key.dbid;
				strlcpy(r->resource, e->key.resource, sizeof(r->resource));
				strlcpy(r->owner, h->owner, sizeof(r->owner));
				r->token = h->token;
				r->roleid = h->roleid;
				r->acquired_at = h->acquired_at;
				r->expires_at = now_wall + (h->expires_mono - now_mono);
				r->nwaiters = e->nwaiters;
				r->fenced = h->fenced;
				r->permits = e->permits > 1 ? e->permits : 0;
			}
		}
		if (e->permits == 1 && lease_is_live(e, now_mono))
		{
			LeaseRow   *r;

			r = lease_add_row(&rows, &nrows, &nalloc);
			r->dbid = e->key.dbid;
			strlcpy(r->resource, e->key.resource, sizeof(r->resource));
			strlcpy(r->owner, e->owner, sizeof(r->owner));
			r->token = e->token;
			r->roleid = e->roleid;
			r->acquired_at = e->acquired_at;
			r->expires_at = lease_wall_expiry(e, now_mono, now_wall);
			r->nwaiters = e->nwaiters;
			r->fenced = e->fenced;
			r->permits = 1;
		}
		if (resource != NULL)
			break;
		e = hash_seq_search(&seq);
	}
	LWLockRelease(lease_shared->lock);

	*rows_out = rows;
	return nrows;
}

/*
 * May the current role see the token of a lease taken by roleid?  A token
 * is a capability (it renews, releases and fences the lease), so like
 * pg_stat_activity's query text it is shown only to the role that took the
 * lease and roles with its privileges, to superusers and to members of
 * pg_read_all_stats.  see_all caches the last two.
 */
static bool
lease_token_visible(Oid roleid, bool see_all)
{
	return see_all || has_privs_of_role(GetUserId(), roleid);
}

/*
 * The rows of lockctl_internal.leases() (dbid, resource, owner, token,
 * acquired_at, expires_at, waiters, roleid, fenced) or, when one_resource,
 * of lockctl.lease(resource) (owner, token, acquired_at, expires_at,
 * waiters, acquired_by, fenced).  The token is NULL unless the caller may
 * see it.
 */
static void
lease_emit_rows(FunctionCallInfo fcinfo, const char *resource,
				bool one_resource)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	LeaseRow   *rows;
	int			nrows;
	bool		see_all;
	int			i;

	InitMaterializedSRF(fcinfo, 0);
	lease_check_shmem();

	see_all = has_privs_of_role(GetUserId(), ROLE_PG_READ_ALL_STATS);
	nrows = lease_collect(resource, &rows);

	for (i = 0; i < nrows; i++)
	{
		LeaseRow   *r = &rows[i];
		bool		visible = lease_token_visible(r->roleid, see_all);
		Datum		values[11];
		bool		nulls[11];
		int			n = 0;

		memset(nulls, 0, sizeof(nulls));
		if (!one_resource)
		{
			values[n++] = ObjectIdGetDatum(r->dbid);
			values[n++] = CStringGetTextDatum(r->resource);
		}
		values[n++] = CStringGetTextDatum(r->owner);
		if (visible)
			values[n] = Int64GetDatum(r->token);
		else
			nulls[n] = true;
		n++;
		values[n++] = TimestampTzGetDatum(r->acquired_at);
		values[n++] = TimestampTzGetDatum(r->expires_at);
		values[n++] = Int32GetDatum(r->nwaiters);
		if (one_resource)
			values[n++] = DirectFunctionCall1(pg_get_userbyid,
											  ObjectIdGetDatum(r->roleid));
		else
			values[n++] = ObjectIdGetDatum(r->roleid);
		values[n++] = BoolGetDatum(r->fenced);
		/* mode and permits: in 1.1's SQL, not in 1.0's */
		if (!one_resource && rsinfo->setDesc->natts >= 11)
		{
			values[n++] = CStringGetTextDatum(r->permits > 1 ? "counted" :
											  r->permits == 1 ? "exclusive" :
											  "shared");
			if (r->permits > 0)
				values[n] = Int32GetDatum(r->permits);
			else
				nulls[n] = true;
			n++;
		}
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc,
							 values, nulls);
	}
}

/*
 * lockctl_internal.leases() (lease_list in 1.0's SQL): every live lease of
 * every database, behind the view lockctl.leases.
 */
PG_FUNCTION_INFO_V1(lockctl_lease_list);
Datum
lockctl_lease_list(PG_FUNCTION_ARGS)
{
	lease_emit_rows(fcinfo, NULL, false);
	return (Datum) 0;
}

/*
 * lockctl.lease(resource text): the live lease on resource in this
 * database, one row or none.  Its own C function, so that argument errors
 * name lockctl.lease.
 */
PG_FUNCTION_INFO_V1(lockctl_lease);
Datum
lockctl_lease(PG_FUNCTION_ARGS)
{
	char	   *resource = lockctl_arg_name(fcinfo, 0, "resource", false);

	lease_emit_rows(fcinfo, resource, true);
	return (Datum) 0;
}

/*
 * lockctl_internal.lease_waiters() (lease_waiter_list in 1.0's SQL): every
 * backend waiting in acquire, in line order per resource, behind the view
 * lockctl.lease_waiters.
 */
PG_FUNCTION_INFO_V1(lockctl_lease_waiter_list);
Datum
lockctl_lease_waiter_list(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	HASH_SEQ_STATUS seq;
	LeaseEntry *e;

	InitMaterializedSRF(fcinfo, 0);
	lease_check_shmem();

	LWLockAcquire(lease_shared->lock, LW_SHARED);
	hash_seq_init(&seq, lease_hash);
	while ((e = hash_seq_search(&seq)) != NULL)
	{
		dlist_iter	it;
		int			pos = 0;

		dlist_foreach(it, &e->waiters)
		{
			LeaseWaiter *w = dlist_container(LeaseWaiter, node, it.cur);
			Datum		values[6];
			bool		nulls[6];

			memset(nulls, 0, sizeof(nulls));
			values[0] = ObjectIdGetDatum(e->key.dbid);
			values[1] = CStringGetTextDatum(e->key.resource);
			values[2] = CStringGetTextDatum(w->owner);
			values[3] = Int32GetDatum(w->pid);
			values[4] = Int32GetDatum(++pos);
			values[5] = TimestampTzGetDatum(w->since);
			tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc,
								 values, nulls);
		}
	}
	LWLockRelease(lease_shared->lock);

	return (Datum) 0;
}

/*
 * lockctl_internal.lease_stats(): the lease counters since the server
 * started, behind the view lockctl.lease_stats.
 */
PG_FUNCTION_INFO_V1(lockctl_lease_stats);
Datum
lockctl_lease_stats(PG_FUNCTION_ARGS)
{
	TupleDesc	tupdesc;
	LeaseCounters c;
	int			nentries;
	int			live = 0;
	int			waiting = 0;
	int			counted_live = 0;
	int			shared_live = 0;
	HASH_SEQ_STATUS seq;
	LeaseEntry *e;
	int64		now;
	Datum		values[20];
	bool		nulls[20];
	int			i = 0;

	if (get_call_result_type(fcinfo, NULL, &tupdesc) != TYPEFUNC_COMPOSITE)
		elog(ERROR, "return type must be a row type");
	lease_check_shmem();

	LWLockAcquire(lease_shared->lock, LW_SHARED);
	c = lease_shared->stats;
	nentries = lease_shared->nentries;
	now = lease_now_mono();
	hash_seq_init(&seq, lease_hash);
	while ((e = hash_seq_search(&seq)) != NULL)
	{
		if (e->nholders > 0)
		{
			int			n = lease_counted_live(e, now);

			live += n;
			if (e->permits > 1)
				counted_live += n;
			else
				shared_live += n;
		}
		if (e->permits == 1 && lease_is_live(e, now))
			live++;
		waiting += e->nwaiters;
	}
	LWLockRelease(lease_shared->lock);

	memset(nulls, 0, sizeof(nulls));
	values[i++] = Int32GetDatum(live);
	values[i++] = Int32GetDatum(waiting);
	values[i++] = Int32GetDatum(nentries);
	values[i++] = Int32GetDatum(lockctl_max_leases);
	values[i++] = Int64GetDatum((int64) c.grants);
	values[i++] = Int64GetDatum((int64) c.regrants);
	values[i++] = Int64GetDatum((int64) c.renewals);
	values[i++] = Int64GetDatum((int64) c.releases);
	values[i++] = Int64GetDatum((int64) c.force_releases);
	values[i++] = Int64GetDatum((int64) c.expiries);
	values[i++] = Int64GetDatum((int64) c.conflicts);
	values[i++] = Int64GetDatum((int64) c.waits);
	values[i++] = Int64GetDatum((int64) c.timeouts);
	values[i++] = Int64GetDatum((int64) c.fences);
	values[i++] = Int64GetDatum((int64) c.fence_failures);
	values[i++] = Int64GetDatum((int64) c.full);
	/* counts per kind: in 1.1's SQL, not in 1.0's */
	if (tupdesc->natts >= 20)
	{
		values[i++] = Int32GetDatum(counted_live);
		values[i++] = Int64GetDatum((int64) c.counted_grants);
		values[i++] = Int32GetDatum(shared_live);
		values[i++] = Int64GetDatum((int64) c.shared_grants);
	}

	PG_RETURN_DATUM(HeapTupleGetDatum(heap_form_tuple(tupdesc, values, nulls)));
}
