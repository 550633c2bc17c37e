/*-------------------------------------------------------------------------
 *
 * lease_mark.c
 *	  The high-water mark each database keeps of the fencing tokens and
 *	  hold ids issued in it, and the SQL functions around it:
 *	  lockctl.token_state(), lockctl.raise_token_floor() and
 *	  lockctl_internal.era_nextval() (hold ids).
 *
 * Why a mark, and why in a sequence
 * ---------------------------------
 * The state file (lease_token.c) keeps tokens rising along one data
 * directory's history, and the era keeps them rising across forks.  What a
 * state file cannot carry is the history of a database that moves to
 * another cluster (pg_upgrade makes a new cluster on timeline 1 with no
 * state file; a logical dump is restored anywhere), nor tell a promoted
 * standby that its primary raised its era base after the standby was
 * cloned.  The database itself goes everywhere its data goes, so it keeps
 * the mark: two sequences in schema lockctl,
 *
 *	 lockctl.token_mark		  era << 48 | epoch limit << 28 | timeline
 *	 lockctl.token_mark_sysid  system identifier of the cluster that wrote it
 *
 * meaning: every token and era-tagged id ever issued in this database has
 * an (era, epoch) at or below (era, epoch limit).  Sequences because their
 * writes are WAL-logged (so replicated, in base backups and point-in-time
 * recovery), carried by pg_upgrade and by pg_dump (the install script marks
 * them for dumping), and not transactional: setval() stays done when the
 * transaction of the acquire that wrote it rolls back, which is what makes
 * "written before the first token" true whatever the caller's transaction
 * does.  Each write is flushed (and waited for by synchronous standbys)
 * before the token is handed out.  NULL (never set) is a database in which
 * nothing was issued yet; -1 is one updated from lockctl 1.0, whose tokens
 * were never marked.
 *
 * The rule, for each backend before it may grant in a database (cached per
 * backend until the era, the timeline or the epoch range changes):
 *  - the mark is this line's own (same system identifier, era and
 *    timeline) and covers the current epoch and the next one: grant;
 *  - otherwise, if the mark is at or above the current (era, epoch), raise
 *    them above it (durably, in the state file) first;
 *  - then write a mark of this line covering LEASE_MARK_WINDOW epochs from
 *    the current one, flush it, and grant.
 * A mark of another line at or above this one can only come from a history
 * this server does not continue (the old cluster of a pg_upgrade, the dump
 * of another cluster, a primary whose era base was raised after this
 * standby was copied), so raising above it is exactly what the promise
 * needs.  Writes are serialized by a ShareUpdateExclusiveLock on the mark,
 * taken and released around them, so the mark only ever rises; a reader
 * that finds the mark covering needs no lock.
 *
 * Where nothing proves it: in a cluster made by pg_upgrade, a database
 * without a mark it could trust (lockctl 1.0 SQL objects, or a mark of -1)
 * may hold tokens of the old cluster this one cannot know; granting there
 * is refused (55000) until the DBA states, with raise_token_floor(), a
 * token no earlier one was above.  Hold ids are unaffected: those of 1.0
 * are plain sequence values, below every era-tagged one.
 *
 * src/lease_mark.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/htup_details.h"
#include "access/xact.h"
#include "access/xlog.h"
#include "catalog/namespace.h"
#include "catalog/pg_class.h"
#include "commands/dbcommands.h"
#include "commands/sequence.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "replication/syncrep.h"
#include "storage/lmgr.h"
#include "utils/fmgrprotos.h"
#include "utils/lsyscache.h"
#include "utils/syscache.h"

#include "lease_token.h"

#define LEASE_MARK_SEQ			"token_mark"
#define LEASE_MARK_SYSID_SEQ	"token_mark_sysid"
#define LEASE_MARK_UNKNOWN		INT64CONST(-1)

/*
 * Epochs one mark covers from the current one: a write every few restarts
 * (or counter overflows) rather than at every one.  Each pg_upgrade skips
 * at most this many epochs of the 2^20.
 */
#define LEASE_MARK_WINDOW		8

#define MARK_ERA(m)				LEASE_TOKEN_ERA(m)
#define MARK_EPOCH(m)			LEASE_TOKEN_EPOCH(m)
#define MARK_TLI(m)				((TimeLineID) ((uint64) (m) & LEASE_TOKEN_COUNTER_MAX))

/* What this backend knows its database's mark proves. */
typedef enum MarkProof
{
	MARK_NONE,					/* nothing known yet */
	MARK_COVERS,				/* the mark covers era, timeline, up to limit */
	MARK_UNMARKED,				/* lockctl 1.0 SQL objects: nothing to keep */
	MARK_UNPROVEN				/* nothing proves tokens would be fresh */
} MarkProof;

static struct
{
	MarkProof	proof;
	Oid			dbid;
	uint32		era;
	TimeLineID	tli;
	uint64		limit;			/* highest epoch the mark covers */
	bool		no_objects;		/* MARK_UNPROVEN because of 1.0 SQL objects */
} mark_cache;

static void lease_mark_lookup(Oid *mark, Oid *sysid);
static Oid	lease_mark_owner(Oid seq);
static int64 lease_mark_read(Oid seq, bool *isnull);
static void lease_mark_write(Oid seq, int64 value);
static void lease_mark_flush(void);
static void lease_mark_update(void);
static void lease_mark_refuse(void);
static void lease_mark_ensure(bool for_tokens);

/*
 * Does this backend know that its database's mark covers a token of (era,
 * tli, epoch)?  Used under the lease lock by LeaseNextToken: no I/O.
 */
bool
LeaseMarkCovers(uint32 era, TimeLineID tli, uint64 epoch)
{
	if (mark_cache.dbid != MyDatabaseId || mark_cache.era != era ||
		mark_cache.tli != tli)
		return false;
	return mark_cache.proof == MARK_UNMARKED ||
		(mark_cache.proof == MARK_COVERS && epoch <= mark_cache.limit);
}

/*
 * Before taking the lease lock on any path that may grant: make sure this
 * database's mark covers the current epoch and the next, writing it if need
 * be, or refuse to grant (55000) where nothing proves a token would be
 * fresh.  Cheap when the backend already knows: a few unlocked reads.
 */
void
LeaseTokenCheck(void)
{
	lease_mark_ensure(true);
}

static void
lease_mark_ensure(bool for_tokens)
{
	TimeLineID	tli;
	uint32		era;
	uint64		epoch;

	if (lease_shared == NULL || RecoveryInProgress())
		return;					/* the callers refuse to write in recovery */

	/*
	 * Unlocked reads: a stale value only sends us to the slow path, or past
	 * it when the era moved up under us, which LeaseNextToken sees under
	 * the lock.
	 */
	tli = GetWALInsertionTimeLine();
	era = tli + lease_shared->era_base;
	epoch = lease_shared->epoch;
	if (mark_cache.dbid == MyDatabaseId && mark_cache.era == era &&
		mark_cache.tli == tli)
	{
		if (mark_cache.proof == MARK_UNPROVEN && !for_tokens)
			return;
		if (LeaseMarkCovers(era, tli, Min(epoch + 1, LEASE_TOKEN_EPOCH_MAX)))
			return;
	}
	lease_mark_update();
	if (mark_cache.proof == MARK_UNPROVEN && for_tokens)
		lease_mark_refuse();
}

/*
 * The mark's sequences in this database, or InvalidOid (lockctl 1.0 SQL
 * objects, which have none).
 */
static void
lease_mark_lookup(Oid *mark, Oid *sysid)
{
	Oid			nsp = get_namespace_oid("lockctl", true);

	*mark = *sysid = InvalidOid;
	if (!OidIsValid(nsp))
		return;
	*mark = get_relname_relid(LEASE_MARK_SEQ, nsp);
	*sysid = get_relname_relid(LEASE_MARK_SYSID_SEQ, nsp);
	if (!OidIsValid(*mark) || get_rel_relkind(*mark) != RELKIND_SEQUENCE ||
		!OidIsValid(*sysid) || get_rel_relkind(*sysid) != RELKIND_SEQUENCE)
		*mark = *sysid = InvalidOid;
}

/*
 * Become the owner of seq (the extension's owner) for a sequence call:
 * callers of acquire have no rights on lockctl's internal sequences.
 */
static Oid
lease_mark_owner(Oid seq)
{
	HeapTuple	tup = SearchSysCache1(RELOID, ObjectIdGetDatum(seq));
	Oid			owner;

	if (!HeapTupleIsValid(tup))
		elog(ERROR, "cache lookup failed for relation %u", seq);
	owner = ((Form_pg_class) GETSTRUCT(tup))->relowner;
	ReleaseSysCache(tup);
	return owner;
}

/*
 * The value of sequence seq; *isnull when it was never set.
 */
static int64
lease_mark_read(Oid seq, bool *isnull)
{
	LOCAL_FCINFO(fcinfo, 1);
	Oid			save_userid;
	int			save_sec_context;
	Datum		d;

	GetUserIdAndSecContext(&save_userid, &save_sec_context);
	SetUserIdAndSecContext(lease_mark_owner(seq),
						   save_sec_context | SECURITY_LOCAL_USERID_CHANGE);
	InitFunctionCallInfoData(*fcinfo, NULL, 1, InvalidOid, NULL, NULL);
	fcinfo->args[0].value = ObjectIdGetDatum(seq);
	fcinfo->args[0].isnull = false;
	d = pg_sequence_last_value(fcinfo);
	SetUserIdAndSecContext(save_userid, save_sec_context);
	*isnull = fcinfo->isnull;
	return *isnull ? 0 : DatumGetInt64(d);
}

/*
 * setval(seq, value).  Also in a read-only transaction: the mark is
 * lockctl's bookkeeping, not the caller's data, and not transactional.
 */
static void
lease_mark_write(Oid seq, int64 value)
{
	Oid			save_userid;
	int			save_sec_context;
	bool		save_read_only = XactReadOnly;

	GetUserIdAndSecContext(&save_userid, &save_sec_context);
	SetUserIdAndSecContext(lease_mark_owner(seq),
						   save_sec_context | SECURITY_LOCAL_USERID_CHANGE);
	XactReadOnly = false;
	PG_TRY();
	{
		DirectFunctionCall3(setval3_oid, ObjectIdGetDatum(seq),
							Int64GetDatum(value), BoolGetDatum(true));
	}
	PG_FINALLY();
	{
		XactReadOnly = save_read_only;
	}
	PG_END_TRY();
	SetUserIdAndSecContext(save_userid, save_sec_context);
}

/*
 * Make the mark durable (and known to synchronous standbys) before anything
 * it covers is handed out; setval alone is flushed only at commit.
 */
static void
lease_mark_flush(void)
{
	XLogFlush(XactLastRecEnd);
	SyncRepWaitForLSN(XactLastRecEnd, false);
}

/*
 * The slow path of lease_mark_ensure: read the mark, raise this server's
 * floor above a mark of another line, write this line's mark; fill in
 * mark_cache.
 */
static void
lease_mark_update(void)
{
	Oid			mark_seq;
	Oid			sysid_seq;
	int64		m;
	int64		s;
	bool		m_null;
	bool		s_null;
	bool		ours;
	LeaseTokenNow now;
	uint64		limit;

	/* nothing is known until this is done: an error leaves it so */
	mark_cache.proof = MARK_NONE;
	lease_mark_lookup(&mark_seq, &sysid_seq);
	LeaseTokenGetNow(&now);
	mark_cache.dbid = MyDatabaseId;
	mark_cache.era = now.era;
	mark_cache.tli = now.tli;
	mark_cache.no_objects = false;

	if (!OidIsValid(mark_seq))
	{
		/*
		 * lockctl 1.0 SQL objects keep no mark: grant as 1.0 did, except in
		 * a cluster made by pg_upgrade, where the old cluster's tokens are
		 * unknown.
		 */
		mark_cache.proof = now.from_pg_upgrade ? MARK_UNPROVEN : MARK_UNMARKED;
		mark_cache.no_objects = true;
		return;
	}

	/*
	 * Most of the time the mark is this line's and covers: then no lock is
	 * needed (two sessions checking at once must not wait for each other).
	 * Writers set the mark before its system identifier, so reading the
	 * identifier first never pairs an old mark with a new identifier.
	 */
	s = lease_mark_read(sysid_seq, &s_null);
	m = lease_mark_read(mark_seq, &m_null);
	if (!m_null && m >= 0 && !s_null && (uint64) s == GetSystemIdentifier() &&
		MARK_ERA(m) == now.era && MARK_TLI(m) == now.tli &&
		MARK_EPOCH(m) >= Min(now.epoch + 1, LEASE_TOKEN_EPOCH_MAX))
	{
		mark_cache.proof = MARK_COVERS;
		mark_cache.limit = MARK_EPOCH(m);
		return;
	}

	LockRelationOid(mark_seq, ShareUpdateExclusiveLock);
	s = lease_mark_read(sysid_seq, &s_null);
	m = lease_mark_read(mark_seq, &m_null);
	LeaseTokenGetNow(&now);		/* again: it may have moved while we waited */
	mark_cache.era = now.era;
	mark_cache.tli = now.tli;

	if (!m_null && m < 0)
	{
		/* tokens of lockctl 1.0, never marked */
		if (now.from_pg_upgrade)
		{
			mark_cache.proof = MARK_UNPROVEN;
			UnlockRelationOid(mark_seq, ShareUpdateExclusiveLock);
			return;
		}
		/* on this line of history they are all below the current epoch */
		m_null = true;
	}

	ours = !m_null && !s_null && (uint64) s == GetSystemIdentifier() &&
		MARK_ERA(m) == now.era && MARK_TLI(m) == now.tli;
	if (ours && MARK_EPOCH(m) >= Min(now.epoch + 1, LEASE_TOKEN_EPOCH_MAX))
	{
		mark_cache.proof = MARK_COVERS;
		mark_cache.limit = MARK_EPOCH(m);
		UnlockRelationOid(mark_seq, ShareUpdateExclusiveLock);
		return;
	}
	if (!m_null && !ours)
	{
		char	   *why = psprintf("Database \"%s\" records fencing tokens or hold ids up to " INT64_FORMAT " (era %u, epoch " UINT64_FORMAT ") from a line of history this server does not continue, such as the cluster it was upgraded or restored from.",
								   get_database_name(MyDatabaseId),
								   LEASE_TOKEN_MAKE(MARK_ERA(m), MARK_EPOCH(m),
													LEASE_TOKEN_COUNTER_MAX),
								   MARK_ERA(m), MARK_EPOCH(m));

		if (LeaseTokenRaise(MARK_ERA(m), MARK_EPOCH(m), why))
			LeaseTokenGetNow(&now);
		mark_cache.era = now.era;
		mark_cache.tli = now.tli;
	}

	/* this line's mark, durable before anything it covers is issued */
	limit = Min(now.epoch + LEASE_MARK_WINDOW - 1, LEASE_TOKEN_EPOCH_MAX);
	lease_mark_write(mark_seq, LEASE_TOKEN_MAKE(now.era, limit, now.tli));
	lease_mark_write(sysid_seq, (int64) GetSystemIdentifier());
	lease_mark_flush();
	mark_cache.proof = MARK_COVERS;
	mark_cache.limit = limit;
	UnlockRelationOid(mark_seq, ShareUpdateExclusiveLock);
}

/*
 * Refuse to grant where nothing proves a token would be fresh.
 */
static void
lease_mark_refuse(void)
{
	const char *db = get_database_name(MyDatabaseId);

	if (mark_cache.no_objects)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("lockctl cannot prove that a new fencing token in database \"%s\" would be above every earlier one", db),
				 errdetail("This cluster was made by pg_upgrade, and the database has the lockctl 1.0 SQL objects, which keep no record of the tokens issued before the upgrade."),
				 errhint("lockctl 1.1 SQL objects required: run ALTER EXTENSION lockctl UPDATE in this database, then, as a superuser, SELECT lockctl.raise_token_floor(T) with T the highest token the old cluster could have issued: (timeline << 48) | (epoch << 28) | 268435455, with the timeline from pg_controldata and the epoch from the file pg_lockctl_epoch of the old data directory.")));
	ereport(ERROR,
			(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
			 errmsg("lockctl cannot prove that a new fencing token in database \"%s\" would be above every earlier one", db),
			 errdetail("This cluster was made by pg_upgrade, and the database's tokens before the upgrade were issued by lockctl 1.0, which kept no record of them."),
			 errhint("As a superuser, SELECT lockctl.raise_token_floor(T) in this database, with T the highest token the old cluster could have issued: (timeline << 48) | (epoch << 28) | 268435455, with the timeline from pg_controldata and the epoch from the file pg_lockctl_epoch of the old data directory.")));
}

/*
 * lockctl.token_state(): where this server's tokens stand, and this
 * database's mark.  timeline, era and next_token are NULL in recovery.
 */
PG_FUNCTION_INFO_V1(lockctl_token_state);
Datum
lockctl_token_state(PG_FUNCTION_ARGS)
{
	TupleDesc	tupdesc;
	Datum		values[7];
	bool		nulls[7];
	Oid			mark_seq;
	Oid			sysid_seq;
	int64		m = 0;
	int64		s = 0;
	bool		m_null = true;
	bool		s_null = true;
	bool		in_recovery = RecoveryInProgress();
	LeaseTokenNow now;

	if (get_call_result_type(fcinfo, NULL, &tupdesc) != TYPEFUNC_COMPOSITE)
		elog(ERROR, "return type must be a row type");
	if (lease_shared == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("lockctl lease table is not available"),
				 errhint("Add 'lockctl' to \"shared_preload_libraries\" and restart the server.")));

	lease_mark_lookup(&mark_seq, &sysid_seq);
	if (OidIsValid(mark_seq))
	{
		m = lease_mark_read(mark_seq, &m_null);
		s = lease_mark_read(sysid_seq, &s_null);
	}

	memset(nulls, 0, sizeof(nulls));
	if (in_recovery)
	{
		LWLockAcquire(lease_shared->lock, LW_SHARED);
		now.epoch = lease_shared->epoch;
		now.from_pg_upgrade = lease_shared->from_pg_upgrade;
		lease_unlock();
		nulls[0] = nulls[1] = nulls[3] = true;
	}
	else
	{
		LeaseTokenGetNow(&now);
		values[0] = Int32GetDatum((int32) now.tli);
		values[1] = Int32GetDatum((int32) now.era);
		values[3] = Int64GetDatum(LEASE_TOKEN_MAKE(now.era, now.epoch, now.counter));
	}
	values[2] = Int64GetDatum((int64) now.epoch);
	values[4] = Int64GetDatum(m);
	nulls[4] = m_null;
	/* the mark is this line's and covers the current epoch */
	values[5] = BoolGetDatum(!in_recovery && !m_null && m >= 0 && !s_null &&
							 (uint64) s == GetSystemIdentifier() &&
							 MARK_ERA(m) == now.era && MARK_TLI(m) == now.tli &&
							 MARK_EPOCH(m) >= now.epoch);
	nulls[5] = m_null;
	values[6] = BoolGetDatum(now.from_pg_upgrade);

	PG_RETURN_DATUM(HeapTupleGetDatum(heap_form_tuple(tupdesc, values, nulls)));
}

/*
 * lockctl.raise_token_floor(token bigint) returns bigint: the DBA states
 * that no token above `token` was ever issued in this database; every later
 * token (of every database) is then above it and above any mark of another
 * line this database holds, and the database gets a mark of this line.
 * Returns the lowest token that can be issued next.  Administrative: the
 * install script revokes it from PUBLIC.  Raising the floor to a new era
 * ends the leases that are live now.
 */
PG_FUNCTION_INFO_V1(lockctl_raise_token_floor);
Datum
lockctl_raise_token_floor(PG_FUNCTION_ARGS)
{
	int64		token = lockctl_arg_int64(fcinfo, 0, "token", 0, PG_INT64_MAX);
	Oid			mark_seq;
	Oid			sysid_seq;
	int64		m;
	int64		s;
	bool		m_null;
	bool		s_null;
	LeaseTokenNow now;
	char	   *why;
	uint64		limit;

	PreventCommandDuringRecovery("lockctl.raise_token_floor()");
	if (lease_shared == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("lockctl lease table is not available"),
				 errhint("Add 'lockctl' to \"shared_preload_libraries\" and restart the server.")));
	lease_mark_lookup(&mark_seq, &sysid_seq);
	if (!OidIsValid(mark_seq))
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("lockctl 1.1 SQL objects required; run ALTER EXTENSION lockctl UPDATE")));

	mark_cache.proof = MARK_NONE;
	LockRelationOid(mark_seq, ShareUpdateExclusiveLock);
	s = lease_mark_read(sysid_seq, &s_null);
	m = lease_mark_read(mark_seq, &m_null);

	why = psprintf("lockctl.raise_token_floor(" INT64_FORMAT ") was called in database \"%s\".",
				   token, get_database_name(MyDatabaseId));
	(void) LeaseTokenRaise(LEASE_TOKEN_ERA(token), LEASE_TOKEN_EPOCH(token), why);
	LeaseTokenGetNow(&now);
	/* never below a mark of another line that the database already holds */
	if (!m_null && m >= 0 &&
		!(!s_null && (uint64) s == GetSystemIdentifier() &&
		  MARK_ERA(m) == now.era && MARK_TLI(m) == now.tli))
	{
		(void) LeaseTokenRaise(MARK_ERA(m), MARK_EPOCH(m), why);
		LeaseTokenGetNow(&now);
	}

	limit = Min(now.epoch + LEASE_MARK_WINDOW - 1, LEASE_TOKEN_EPOCH_MAX);
	lease_mark_write(mark_seq, LEASE_TOKEN_MAKE(now.era, limit, now.tli));
	lease_mark_write(sysid_seq, (int64) GetSystemIdentifier());
	lease_mark_flush();
	mark_cache.proof = MARK_COVERS;
	mark_cache.dbid = MyDatabaseId;
	mark_cache.era = now.era;
	mark_cache.tli = now.tli;
	mark_cache.limit = limit;
	mark_cache.no_objects = false;
	UnlockRelationOid(mark_seq, ShareUpdateExclusiveLock);

	ereport(LOG,
			(errmsg("lockctl fencing token floor of database \"%s\" set above " INT64_FORMAT " by role \"%s\"",
					get_database_name(MyDatabaseId), token,
					GetUserNameFromId(GetUserId(), true))));
	PG_RETURN_INT64(LEASE_TOKEN_MAKE(now.era, now.epoch, now.counter));
}

/*
 * LeaseEraNextval(seq), behind lockctl_internal.era_nextval(seq regclass)
 * and called by reserve_range (reserve_calendar.c): nextval(seq) with the
 * server's era in bits 48 to 62, for ids that must never be handed out
 * twice across a failover that lost commits (the default of
 * lockctl.reservations.id).  Within one era the sequence only rises (an era
 * is one line of history), and every fork that can set a sequence back
 * (promotion, point-in-time recovery, a restored copy started as a
 * primary) moves to a new era; pg_upgrade carries the sequence and the
 * mark keeps the era from going down.  So a retried confirm(id) with an id
 * from before a failover reaches the same hold or none.
 */
int64
LeaseEraNextval(Oid seq)
{
	int64		v;
	uint32		era;

	PreventCommandDuringRecovery("lockctl_internal.era_nextval()");
	if (lease_shared == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("lockctl lease table is not available"),
				 errhint("Add 'lockctl' to \"shared_preload_libraries\" and restart the server.")));
	lease_mark_ensure(false);
	era = GetWALInsertionTimeLine() + lease_shared->era_base;
	if (era > LEASE_TOKEN_ERA_MAX)
		ereport(ERROR,
				(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
				 errmsg("cannot issue an id in era %u", era),
				 errdetail("Ids can carry eras up to %u.", LEASE_TOKEN_ERA_MAX)));
	v = nextval_internal(seq, true);
	if (v < 0 || v > LEASE_ID_SEQ_MAX)
		ereport(ERROR,
				(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
				 errmsg("sequence \"%s\" is out of the range of era-tagged ids: " INT64_FORMAT,
						get_rel_name(seq), v),
				 errdetail("An era-tagged id keeps the sequence value in its low 48 bits (0 to " INT64_FORMAT ").",
						   LEASE_ID_SEQ_MAX)));
	return (int64) (((uint64) era << LEASE_TOKEN_TLI_SHIFT) | (uint64) v);
}

/* The SQL face of LeaseEraNextval. */
PG_FUNCTION_INFO_V1(lockctl_era_nextval);
Datum
lockctl_era_nextval(PG_FUNCTION_ARGS)
{
	PG_RETURN_INT64(LeaseEraNextval(PG_GETARG_OID(0)));
}
