/*-------------------------------------------------------------------------
 *
 * lease_views.c
 *	  Reading the lease table: lockctl.lease(resource) and the functions
 *	  behind the views lockctl.leases, lockctl.lease_waiters,
 *	  lockctl.lease_stats and lockctl.lease_wait_histogram.
 *
 * Readers take the lease lock shared, copy what they need and build their
 * rows after releasing it (privilege checks and encoding conversions read
 * the catalogs).  A lease's token and owner name are shown only to roles
 * that may act on it (lease_may_act: the role that took it, roles with its
 * privileges, superusers); every other role, pg_read_all_stats included,
 * sees that the lease exists, on which resource, until when and taken by
 * which role, as pg_locks and pg_stat_activity show locks and sessions.
 *
 * The lease table is shared by every database, and each database keeps its
 * names in its own encoding.  A name taken in a database of another
 * encoding is converted to this database's encoding; a name that cannot be
 * converted is shown with each non-ASCII byte written as \xHH, so that a
 * view never returns text that is invalid in this database.
 *
 * src/lease_views.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "catalog/namespace.h"
#include "catalog/pg_database.h"
#include "common/string.h"
#include "funcapi.h"
#include "lib/stringinfo.h"
#include "mb/pg_wchar.h"
#include "miscadmin.h"
#include "storage/lwlock.h"
#include "utils/builtins.h"
#include "utils/float.h"
#include "utils/hsearch.h"
#include "utils/syscache.h"
#include "utils/timestamp.h"

#include "lease.h"

typedef struct LeaseRow LeaseRow;
typedef struct LeaseWaiterRow LeaseWaiterRow;

/* the encodings of the databases met so far in one call, by oid */
typedef struct LeaseEncodings
{
	int			n;
	Oid			dbid[8];
	int			encoding[8];
} LeaseEncodings;

static int	lease_collect(const char *resource, LeaseRow **rows_out);
static LeaseRow *lease_add_row(LeaseRow **rows, int *nrows, int *nalloc);
static void lease_emit_rows(FunctionCallInfo fcinfo, const char *resource,
							bool one_resource);
static int	lease_db_encoding(Oid dbid, LeaseEncodings *cache);
static Datum lease_name_datum(const char *name, Oid dbid,
							  LeaseEncodings *cache);

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
	int64		set_id;			/* granted by acquire_all (0: alone) */
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

				if (!lease_holder_live(h, now_mono))
					continue;
				r = lease_add_row(&rows, &nrows, &nalloc);
				r->dbid = e->key.dbid;
				strlcpy(r->resource, e->key.resource, sizeof(r->resource));
				strlcpy(r->owner, h->owner, sizeof(r->owner));
				r->token = h->token;
				r->roleid = h->roleid;
				r->acquired_at = h->acquired_at;
				if (h->expires_mono >= LEASE_EXPIRES_NEVER)
					TIMESTAMP_NOEND(r->expires_at);	/* session-bound */
				else
					r->expires_at = now_wall + (h->expires_mono - now_mono);
				r->nwaiters = e->nwaiters;
				r->fenced = h->fenced;
				r->permits = e->permits > 1 ? e->permits : 0;
				r->set_id = 0;
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
			r->set_id = e->set_id;
		}
		if (resource != NULL)
			break;
		e = hash_seq_search(&seq);
	}
	lease_unlock();

	*rows_out = rows;
	return nrows;
}

/*
 * The encoding of database dbid, or -1 if it no longer exists.  cache
 * keeps the last few, as a view shows few databases.
 */
static int
lease_db_encoding(Oid dbid, LeaseEncodings *cache)
{
	HeapTuple	tup;
	int			encoding = -1;
	int			i;

	if (dbid == MyDatabaseId)
		return GetDatabaseEncoding();
	for (i = 0; i < cache->n; i++)
		if (cache->dbid[i] == dbid)
			return cache->encoding[i];

	tup = SearchSysCache1(DATABASEOID, ObjectIdGetDatum(dbid));
	if (HeapTupleIsValid(tup))
	{
		encoding = ((Form_pg_database) GETSTRUCT(tup))->encoding;
		ReleaseSysCache(tup);
	}
	if (cache->n < lengthof(cache->dbid))
	{
		cache->dbid[cache->n] = dbid;
		cache->encoding[cache->n] = encoding;
		cache->n++;
	}
	return encoding;
}

/*
 * A name (resource or owner) taken in database dbid, as text valid in this
 * database's encoding: as it is when the encodings agree or the name is
 * ASCII (every server encoding is a superset of ASCII), converted when
 * they differ and it converts, else with each non-ASCII byte as \xHH.  A
 * SQL_ASCII database accepts any bytes, so it gets them as they are; a
 * name from a SQL_ASCII database has no known encoding, so it is escaped.
 */
static Datum
lease_name_datum(const char *name, Oid dbid, LeaseEncodings *cache)
{
	int			here = GetDatabaseEncoding();
	int			there;
	int			len = strlen(name);
	StringInfoData buf;
	const unsigned char *p;

	if (dbid == MyDatabaseId || here == PG_SQL_ASCII || pg_is_ascii(name))
		return CStringGetTextDatum(name);
	there = lease_db_encoding(dbid, cache);
	if (there == here)
		return CStringGetTextDatum(name);
	if (there >= 0 && there != PG_SQL_ASCII)
	{
		Oid			proc = FindDefaultConversionProc(there, here);

		if (OidIsValid(proc))
		{
			int			size = len * MAX_CONVERSION_GROWTH + 1;
			unsigned char *out = palloc(size);

			if (pg_do_encoding_conversion_buf(proc, there, here,
											  (unsigned char *) name, len,
											  out, size, true) == len)
				return CStringGetTextDatum((char *) out);
		}
	}

	initStringInfo(&buf);
	for (p = (const unsigned char *) name; *p; p++)
	{
		if (IS_HIGHBIT_SET(*p))
			appendStringInfo(&buf, "\\x%02X", *p);
		else
			appendStringInfoChar(&buf, (char) *p);
	}
	return CStringGetTextDatum(buf.data);
}

/*
 * The rows of lockctl_internal.leases() (dbid, resource, owner, token,
 * acquired_at, expires_at, waiters, roleid, fenced) or, when one_resource,
 * of lockctl.lease(resource) (owner, token, acquired_at, expires_at,
 * waiters, acquired_by, fenced).  Owner and token are NULL unless the
 * caller may act on the lease.
 */
static void
lease_emit_rows(FunctionCallInfo fcinfo, const char *resource,
				bool one_resource)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	LeaseRow   *rows;
	int			nrows;
	LeaseEncodings encodings;
	int			i;

	InitMaterializedSRF(fcinfo, 0);
	lease_check_shmem();

	encodings.n = 0;
	nrows = lease_collect(resource, &rows);

	for (i = 0; i < nrows; i++)
	{
		LeaseRow   *r = &rows[i];
		bool		visible = lease_may_act(r->roleid);
		Datum		values[12];
		bool		nulls[12];
		int			n = 0;

		memset(nulls, 0, sizeof(nulls));
		if (!one_resource)
		{
			values[n++] = ObjectIdGetDatum(r->dbid);
			values[n++] = lease_name_datum(r->resource, r->dbid, &encodings);
		}
		if (visible)
		{
			values[n++] = lease_name_datum(r->owner, r->dbid, &encodings);
			values[n++] = Int64GetDatum(r->token);
		}
		else
		{
			nulls[n++] = true;
			nulls[n++] = true;
		}
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
		/* set_id: from 1.1's SQL with acquire_all on */
		if (!one_resource && rsinfo->setDesc->natts >= 12)
		{
			if (r->set_id > 0)
				values[n] = Int64GetDatum(r->set_id);
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

/* A copy of one waiter, taken under the lease lock. */
struct LeaseWaiterRow
{
	Oid			dbid;
	char		resource[LOCKCTL_NAME_MAXLEN + 1];
	char		owner[LOCKCTL_NAME_MAXLEN + 1];
	int			pid;
	int			position;
	TimestampTz since;
	Oid			roleid;
	int64		set_id;			/* waits in acquire_all (0: alone) */
};

/*
 * lockctl_internal.lease_waiters() (lease_waiter_list in 1.0's SQL): every
 * backend waiting in acquire, in line order per resource, behind the view
 * lockctl.lease_waiters: dbid, resource, owner (NULL unless the caller may
 * act for the waiting role), pid, queue_position, waiting_since and, from
 * 1.1's SQL on, requested_by (the waiting role's oid).
 */
PG_FUNCTION_INFO_V1(lockctl_lease_waiter_list);
Datum
lockctl_lease_waiter_list(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	HASH_SEQ_STATUS seq;
	LeaseEntry *e;
	LeaseWaiterRow *rows;
	int			nrows = 0;
	int			nalloc;
	int			i;
	bool		with_role;
	bool		with_set;
	LeaseEncodings encodings;

	InitMaterializedSRF(fcinfo, 0);
	lease_check_shmem();
	/* 1.0's SQL declares six columns; 1.1's adds requested_by */
	with_role = rsinfo->setDesc->natts >= 7;
	/* and from acquire_all on, set_id */
	with_set = rsinfo->setDesc->natts >= 8;
	encodings.n = 0;

	/* one waiter per backend, or one per resource of its set: grown */
	nalloc = MaxBackends;
	rows = palloc(sizeof(LeaseWaiterRow) * nalloc);
	LWLockAcquire(lease_shared->lock, LW_SHARED);
	hash_seq_init(&seq, lease_hash);
	while ((e = hash_seq_search(&seq)) != NULL)
	{
		dlist_iter	it;
		int			pos = 0;

		dlist_foreach(it, &e->waiters)
		{
			LeaseWaiter *w = dlist_container(LeaseWaiter, node, it.cur);
			LeaseWaiterRow *r;

			if (nrows >= nalloc)
			{
				nalloc *= 2;
				rows = repalloc(rows, sizeof(LeaseWaiterRow) * nalloc);
			}
			r = &rows[nrows++];
			r->dbid = e->key.dbid;
			strlcpy(r->resource, e->key.resource, sizeof(r->resource));
			strlcpy(r->owner, w->owner, sizeof(r->owner));
			r->pid = w->pid;
			r->position = ++pos;
			r->since = w->since;
			r->roleid = w->roleid;
			r->set_id = w->set_id;
		}
	}
	lease_unlock();

	for (i = 0; i < nrows; i++)
	{
		LeaseWaiterRow *r = &rows[i];
		Datum		values[8];
		bool		nulls[8];

		memset(nulls, 0, sizeof(nulls));
		values[0] = ObjectIdGetDatum(r->dbid);
		values[1] = lease_name_datum(r->resource, r->dbid, &encodings);
		if (lease_may_act(r->roleid))
			values[2] = lease_name_datum(r->owner, r->dbid, &encodings);
		else
			nulls[2] = true;
		values[3] = Int32GetDatum(r->pid);
		values[4] = Int32GetDatum(r->position);
		values[5] = TimestampTzGetDatum(r->since);
		values[6] = ObjectIdGetDatum(r->roleid);
		if (!with_role)
			nulls[6] = true;
		values[7] = Int64GetDatum(r->set_id);
		nulls[7] = (r->set_id == 0 || !with_set);
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc,
							 values, nulls);
	}

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
	int			watching;
	Datum		values[22];
	bool		nulls[22];
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
	watching = lease_watch_count();
	lease_unlock();

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
	if (tupdesc->natts >= 21)
		values[i++] = Int32GetDatum(watching);
	if (tupdesc->natts >= 22)
		values[i++] = Int64GetDatum((int64) c.set_grants);

	PG_RETURN_DATUM(HeapTupleGetDatum(heap_form_tuple(tupdesc, values, nulls)));
}

/*
 * lockctl_internal.lease_wait_histogram(): how long waiting acquires waited
 * since the server started, behind the view lockctl.lease_wait_histogram.
 * One row per outcome and bucket, cumulative as Prometheus' buckets are:
 * waits is the number of waits of that outcome no longer than le seconds
 * (le = Infinity: all of them), and sum_seconds their outcome's total time,
 * the same on each of its rows.  Nothing in it names a resource or a role:
 * every role may read it, as lockctl.lease_stats.
 */
PG_FUNCTION_INFO_V1(lockctl_lease_wait_histogram);
Datum
lockctl_lease_wait_histogram(PG_FUNCTION_ARGS)
{
	static const char *const outcome_names[LEASE_WAIT_OUTCOMES] = {
		[LEASE_WAIT_GRANTED] = "granted",
		[LEASE_WAIT_TIMED_OUT] = "timed_out",
		[LEASE_WAIT_CANCELLED] = "cancelled",
	};
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	LeaseWaitHistogram hist[LEASE_WAIT_OUTCOMES];
	int			o;

	InitMaterializedSRF(fcinfo, 0);
	lease_check_shmem();

	/* a copy, so that the rows are built without the lock */
	LWLockAcquire(lease_shared->lock, LW_SHARED);
	memcpy(hist, lease_shared->wait_hist, sizeof(hist));
	lease_unlock();

	for (o = 0; o < LEASE_WAIT_OUTCOMES; o++)
	{
		uint64		cumulative = 0;
		int			i;

		for (i = 0; i <= LEASE_WAIT_BOUNDS; i++)
		{
			Datum		values[4];
			bool		nulls[4] = {false, false, false, false};

			cumulative += hist[o].buckets[i];
			values[0] = CStringGetTextDatum(outcome_names[o]);
			values[1] = Float8GetDatum(i < LEASE_WAIT_BOUNDS ?
									   (double) lease_wait_bounds_us[i] / USECS_PER_SEC :
									   get_float8_infinity());
			values[2] = Int64GetDatum((int64) cumulative);
			values[3] = Float8GetDatum((double) hist[o].sum_us / USECS_PER_SEC);
			tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc,
								 values, nulls);
		}
	}

	return (Datum) 0;
}
