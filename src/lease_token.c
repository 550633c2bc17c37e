/*-------------------------------------------------------------------------
 *
 * lease_token.c
 *	  Fencing tokens, the durable state they rest on, and the dump that
 *	  carries live leases across a clean restart.
 *
 * A token is (era << 48) | (epoch << 28) | counter, compared as a positive
 * int64: a higher era wins whatever the rest, then the epoch, then the
 * counter.  The promise is that on every resource a token granted after
 * another one was handed out is higher, however the cluster moved in
 * between; and that a lease is live only on the line of history that
 * granted it.  docs/fencing.md walks through every way a cluster moves;
 * the rules, and why they are enough:
 *
 * 1. The era names a line of history: era = WAL timeline + era base.
 *    PostgreSQL starts a new timeline, higher than every one it knows of,
 *    whenever history forks through recovery: promotion of a standby,
 *    point-in-time recovery.  So the era rises at every such fork, and
 *    every token of the new line is above every token of the old one.  The
 *    era base (state file, below) covers the moves that fork or restart
 *    history without a new timeline:
 *     - a data directory restored from a base backup (backup_label present:
 *       pg_basebackup, pg_rewind) and started as a primary, without
 *       recovery.signal or standby.signal, runs crash recovery and stays on
 *       the timeline of the server it was copied from, which may still be
 *       granting (or have granted, after the copy) on that timeline.  At
 *       such a start the base rises by one, durably, before anything can
 *       be granted;
 *     - pg_upgrade makes a new cluster on timeline 1 with no state file;
 *       the high-water mark of each database (lease_mark.c) raises the
 *       base and the epoch above every token the old cluster issued in it.
 * 2. Within one era, the epoch rises at every start of the server (the
 *    state file is read, epoch + 1 written, fsynced and renamed into place
 *    before shared memory is ready, so before any backend exists), and
 *    when the counter is about to overflow; the counter rises by one at
 *    every grant, under the lease lock.  So a token handed out after a
 *    restart, a crash or a counter overflow is above every earlier one of
 *    the same era.
 * 3. Every database keeps, in a WAL-logged sequence that base backups,
 *    standbys, point-in-time recovery, pg_upgrade and pg_dump all carry, a
 *    high-water mark: an (era, epoch) at least as high as that of every
 *    token (and hold id) issued in it, written and flushed before the
 *    first one of a new era or epoch range is handed out (lease_mark.c).
 *    A server that finds a mark it did not write itself, at or above its
 *    own (era, epoch), raises its era and epoch above it first.  That is
 *    what carries the promise through pg_upgrade, a logical dump and
 *    restore, and a standby whose era base is older than its primary's.
 * 4. Where nothing can prove it (a database of a cluster made by
 *    pg_upgrade whose tokens were issued by lockctl 1.0, which kept no
 *    mark), grants are refused (55000) until the DBA states a floor with
 *    lockctl.raise_token_floor().
 *
 * A lease is live only while its token's era is the server's current era
 * and its epoch is not above the current one (LeaseTokenLive, which
 * lease.c applies wherever it reads a lease): a server in recovery has no
 * live lease, and one that finished recovery on a new timeline has none of
 * an older one, except the leases it carried over by replaying their WAL
 * records (lockctl.lease_durability, lease_wal.c): the same leases, same
 * tokens, on the history it continues.  The shutdown dump is restored only into a server that
 * starts as the same primary it was written by (no signal file, no
 * backup_label), and only leases of that server's era and past epochs;
 * every start consumes it.
 *
 * What no single server can tell apart, and so is not promised: two copies
 * of one data directory both running as primaries on the same timeline
 * (split brain, or a storage snapshot started as a primary while the
 * original still runs: it is indistinguishable from a crash restart), and
 * two siblings forked from one history that happen to end up in the same
 * era (two point-in-time recoveries from one archive that does not keep
 * the history files of the first).
 *
 * Limits: eras up to 32767, 2^20 epochs per era, 2^28 grants per epoch.
 *
 * The state file
 * --------------
 * pg_lockctl_epoch in the data directory, written only with a temporary
 * file, fsync and durable_rename; its first line is "lockctl epoch N" as
 * in lockctl 1.0, then "era_base B", then "from_pg_upgrade 1" when the
 * file was made by a pg_upgrade run (the postmaster started in binary
 * upgrade mode with no state file, or with pg_upgrade's working directory
 * in the data directory).  The postmaster writes it at start; backends
 * write it under the lease lock (counter overflow, a raised floor).
 *
 * The shutdown dump
 * -----------------
 * At a clean shutdown of a primary (the control file says the cluster was
 * shut down, which an immediate shutdown does not, and not in recovery)
 * the postmaster writes every live lease, with its remaining time, to a
 * file; at the next start they are loaded again if the rules above allow
 * it, and the file is removed.  The remaining time on restore is the
 * smaller of the monotonic time that was left at shutdown and the time
 * left until the wall-clock expiry that was saved, so a restored lease
 * never lasts longer than it would have without the restart.  After a
 * crash there is no dump: the leases are gone, and the new epoch still
 * makes later tokens higher.
 *
 * src/lease_token.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <sys/stat.h>
#include <unistd.h>

#include "access/xlog.h"
#include "catalog/pg_control.h"
#include "common/controldata_utils.h"
#include "miscadmin.h"
#include "storage/fd.h"
#include "storage/lwlock.h"
#include "utils/hsearch.h"
#include "utils/timestamp.h"

#include "lease_token.h"

/* Files, relative to the data directory (the postmaster's cwd). */
#define LEASE_EPOCH_FILE		"pg_lockctl_epoch"
#define LEASE_DUMP_FILE			"pg_lockctl_leases.dump"
/* pg_upgrade (15 and later) keeps its work files here, in the new cluster */
#define PG_UPGRADE_OUTPUT_DIR	"pg_upgrade_output.d"

#define LEASE_EPOCH_MAGIC		"lockctl epoch"
#define LEASE_DUMP_MAGIC		0x4C4B4C31	/* "LKL1" */
#define LEASE_DUMP_CARRIED_MAGIC	0x4C4B4331	/* "LKC1" */

typedef struct LeaseDumpHeader
{
	uint32		magic;
	uint32		record_size;
	int32		count;
	TimestampTz saved_at;		/* wall clock at shutdown */
} LeaseDumpHeader;

typedef struct LeaseDumpRecord
{
	Oid			dbid;
	Oid			roleid;
	int64		token;
	TimestampTz acquired_at;
	TimestampTz expires_at;		/* wall clock at shutdown + remaining */
	int64		remaining_us;	/* monotonic time left at shutdown */
	char		resource[LOCKCTL_NAME_MAXLEN + 1];
	char		owner[LOCKCTL_NAME_MAXLEN + 1];
} LeaseDumpRecord;

/* What the state file holds. */
typedef struct LeaseStateFile
{
	uint64		epoch;
	uint32		era_base;
	bool		from_pg_upgrade;
} LeaseStateFile;

/*
 * Decided by the postmaster at start (LeaseEpochStartup) for the restore of
 * the dump that follows it in the same process: may it restore at all, the
 * era it starts in, and the epoch of the life that wrote the dump.
 */
static bool startup_may_restore = false;
static uint32 startup_era = 0;
static uint64 startup_prev_epoch = 0;

static bool lease_state_read(LeaseStateFile *st);
static void lease_state_write(const LeaseStateFile *st, int elevel);
static void lease_state_write_shared(int elevel);
static bool lease_path_exists(const char *path);
static TimeLineID lease_controlfile_tli(DBState *state);
static bool lease_token_live_in(int64 token, uint32 era, uint64 epoch);
static bool lease_dump_write(FILE *f, LeaseEntry *e, int64 now_mono,
							 TimestampTz now_wall);
static int	lease_restore_one(const LeaseDumpRecord *rec, int64 now_mono,
							  TimestampTz now_wall, bool carried);

/*
 * Read the state file into *st; false (and zeros) when there is none yet.
 * Anything unreadable stops the server: granting from a state that is not
 * known could repeat tokens.
 */
static bool
lease_state_read(LeaseStateFile *st)
{
	FILE	   *f;
	char		buf[128];
	unsigned long long v;
	int			line = 1;

	memset(st, 0, sizeof(*st));
	f = AllocateFile(LEASE_EPOCH_FILE, "r");
	if (f == NULL)
	{
		if (errno == ENOENT)
			return false;
		ereport(FATAL,
				(errcode_for_file_access(),
				 errmsg("could not open lockctl state file \"%s\": %m",
						LEASE_EPOCH_FILE)));
	}
	if (fgets(buf, sizeof(buf), f) == NULL ||
		sscanf(buf, LEASE_EPOCH_MAGIC " %llu", &v) != 1)
		goto corrupt;
	st->epoch = (uint64) v;
	while (fgets(buf, sizeof(buf), f) != NULL)
	{
		line++;
		if (sscanf(buf, "era_base %llu", &v) == 1 && v <= LEASE_TOKEN_ERA_MAX)
			st->era_base = (uint32) v;
		else if (sscanf(buf, "from_pg_upgrade %llu", &v) == 1 && v <= 1)
			st->from_pg_upgrade = (v == 1);
		else
			goto corrupt;
	}
	FreeFile(f);
	return true;

corrupt:
	FreeFile(f);
	ereport(FATAL,
			(errcode(ERRCODE_DATA_CORRUPTED),
			 errmsg("lockctl state file \"%s\" is corrupt at line %d",
					LEASE_EPOCH_FILE, line),
			 errdetail("Its first line should read \"%s N\", and the lines after it \"era_base N\" or \"from_pg_upgrade 0|1\".",
					   LEASE_EPOCH_MAGIC),
			 errhint("Write a line \"%s N\" into it with N higher than any epoch used before (bits 28 to 47 of the highest fencing token issued), and a line \"era_base B\" with B at least that token's bits 48 to 62 minus the current timeline, or fencing tokens could repeat.",
					 LEASE_EPOCH_MAGIC)));
	return false;				/* not reached */
}

/*
 * Write the state durably: a temporary file, fsync, durable_rename.
 */
static void
lease_state_write(const LeaseStateFile *st, int elevel)
{
	const char *tmp = LEASE_EPOCH_FILE ".tmp";
	FILE	   *f;

	f = AllocateFile(tmp, PG_BINARY_W);
	if (f == NULL)
		ereport(elevel,
				(errcode_for_file_access(),
				 errmsg("could not create lockctl state file \"%s\": %m", tmp)));
	if (fprintf(f, "%s " UINT64_FORMAT "\nera_base %u\n",
				LEASE_EPOCH_MAGIC, st->epoch, st->era_base) < 0 ||
		(st->from_pg_upgrade && fprintf(f, "from_pg_upgrade 1\n") < 0) ||
		fflush(f) != 0 || pg_fsync(fileno(f)) != 0)
	{
		int			save_errno = errno;

		FreeFile(f);
		errno = save_errno;
		ereport(elevel,
				(errcode_for_file_access(),
				 errmsg("could not write lockctl state file \"%s\": %m", tmp)));
	}
	if (FreeFile(f) != 0)
		ereport(elevel,
				(errcode_for_file_access(),
				 errmsg("could not close lockctl state file \"%s\": %m", tmp)));
	(void) durable_rename(tmp, LEASE_EPOCH_FILE, elevel);
}

/*
 * Write what shared memory holds.  Caller holds the lease lock exclusively
 * (or is the postmaster at start).
 */
static void
lease_state_write_shared(int elevel)
{
	LeaseStateFile st;

	st.epoch = lease_shared->epoch;
	st.era_base = lease_shared->era_base;
	st.from_pg_upgrade = lease_shared->from_pg_upgrade;
	lease_state_write(&st, elevel);
}

static bool
lease_path_exists(const char *path)
{
	struct stat sb;

	return stat(path, &sb) == 0;
}

/*
 * The timeline of the last checkpoint, from the control file (the
 * postmaster has no other way to know it), and the cluster's state.
 */
static TimeLineID
lease_controlfile_tli(DBState *state)
{
	bool		crc_ok;
	ControlFileData *cf = get_controlfile(DataDir, &crc_ok);
	TimeLineID	tli = cf->checkPointCopy.ThisTimeLineID;

	if (state)
		*state = crc_ok ? cf->state : DB_IN_PRODUCTION;
	pfree(cf);
	return tli;
}

/*
 * At every start of the server (postmaster, before any backend exists):
 * note a pg_upgrade run, move to a new era when this data directory is a
 * copy started as a primary on the timeline it was copied from, and
 * advance the epoch; all durably.  An error here stops the server:
 * granting tokens from a state that is not on disk could repeat them.
 */
void
LeaseEpochStartup(void)
{
	LeaseStateFile st;
	bool		existed = lease_state_read(&st);
	bool		in_recovery = lease_path_exists(STANDBY_SIGNAL_FILE) ||
		lease_path_exists(RECOVERY_SIGNAL_FILE);
	bool		from_backup = lease_path_exists(BACKUP_LABEL_FILE);
	TimeLineID	tli = lease_controlfile_tli(NULL);

	/*
	 * pg_upgrade starts the new cluster in binary upgrade mode before any
	 * normal start (and the old one too, which has its state file and no
	 * pg_upgrade_output.d).  The databases it brings over may hold tokens
	 * this cluster knows nothing of; lease_mark.c takes it from there.
	 */
	if (IsBinaryUpgrade && !st.from_pg_upgrade &&
		(!existed || lease_path_exists(PG_UPGRADE_OUTPUT_DIR)))
	{
		st.from_pg_upgrade = true;
		ereport(LOG,
				(errmsg("lockctl: this cluster is being made by pg_upgrade; fencing tokens will be kept above those each database recorded before the upgrade")));
	}

	/*
	 * A restored base backup (or a pg_rewind target) started as a primary:
	 * crash recovery keeps the timeline of the server it was copied from,
	 * which may have granted tokens after the copy with epochs this state
	 * file never saw.  A new era puts every token of this copy above them.
	 */
	if (from_backup && !in_recovery)
	{
		st.era_base++;
		ereport(LOG,
				(errmsg("lockctl: this data directory was restored from a backup and starts as a primary on timeline %u; fencing tokens move to era %u, above every token of the server it was copied from",
						tli, tli + st.era_base)));
	}

	startup_prev_epoch = st.epoch;
	st.epoch++;
	lease_state_write(&st, FATAL);

	lease_shared->epoch = st.epoch;
	lease_shared->counter = 0;
	lease_shared->era_base = st.era_base;
	lease_shared->from_pg_upgrade = st.from_pg_upgrade;

	/*
	 * The dump is this primary's own leases only if the server starts as
	 * that primary again: not as a standby or in archive recovery (which
	 * ends on a new timeline, if at all), not from a backup.
	 */
	startup_may_restore = !in_recovery && !from_backup;
	startup_era = tli + st.era_base;

	/*
	 * Leases replayed from WAL (lease_wal.c) are this server's to carry on
	 * the same terms, except that a standby, promoted, continues its
	 * primary's history: the WAL it replayed is that history.
	 */
	lease_wal_startup(lease_path_exists(STANDBY_SIGNAL_FILE) ||
					  startup_may_restore);

	ereport(DEBUG1,
			(errmsg_internal("lockctl lease token era %u, epoch " UINT64_FORMAT,
							 startup_era, st.epoch)));
}

/*
 * The server's current era, timeline, epoch and counter.  Not in recovery.
 * Takes the lease lock (shared) unless the caller holds it.
 */
void
LeaseTokenGetNow(LeaseTokenNow *now)
{
	bool		locked = LWLockHeldByMe(lease_shared->lock);

	if (!locked)
		LWLockAcquire(lease_shared->lock, LW_SHARED);
	now->tli = GetWALInsertionTimeLine();
	now->era = now->tli + lease_shared->era_base;
	now->epoch = lease_shared->epoch;
	now->counter = lease_shared->counter;
	now->from_pg_upgrade = lease_shared->from_pg_upgrade;
	if (!locked)
		lease_unlock();
}

/*
 * Is token of the server's current line: its era the current one, its epoch
 * not above the current one?  Every reader of the lease table decides a
 * lease's liveness with this (lease.c, lease_is_live).  In recovery no
 * lease is live: a standby grants nothing and keeps nothing.  Caller holds
 * the lease lock (either mode), which keeps era base and epoch still.
 */
bool
LeaseTokenLive(int64 token)
{
	if (lease_shared == NULL || RecoveryInProgress())
		return false;
	return lease_token_live_in(token,
							   GetWALInsertionTimeLine() + lease_shared->era_base,
							   lease_shared->epoch);
}

static bool
lease_token_live_in(int64 token, uint32 era, uint64 epoch)
{
	return LEASE_TOKEN_ERA(token) == era && LEASE_TOKEN_EPOCH(token) <= epoch;
}

/*
 * Raise the era and epoch durably so that every later token is above every
 * token of (era, epoch) and below.  Returns whether anything moved.  The
 * lease lock must not be held (it is taken here).  Leases granted before in
 * a lower era stop being live: they are of a line this server now leaves.
 */
bool
LeaseTokenRaise(uint32 era, uint64 epoch, const char *why)
{
	TimeLineID	tli;
	uint32		cur_era;
	uint32		new_era;
	uint64		new_epoch;

	LWLockAcquire(lease_shared->lock, LW_EXCLUSIVE);
	tli = GetWALInsertionTimeLine();
	cur_era = tli + lease_shared->era_base;
	new_era = cur_era;
	new_epoch = lease_shared->epoch;
	if (era > cur_era)
	{
		new_era = era;
		new_epoch = epoch + 1;
	}
	else if (era == cur_era && epoch >= lease_shared->epoch)
		new_epoch = epoch + 1;
	else
	{
		lease_unlock();
		return false;
	}
	if (new_epoch > LEASE_TOKEN_EPOCH_MAX)
	{
		new_era++;
		new_epoch = 1;
	}
	if (new_era > LEASE_TOKEN_ERA_MAX)
		ereport(ERROR,
				(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
				 errmsg("cannot raise the fencing token floor to era %u", new_era),
				 errdetail("Fencing tokens can carry eras up to %u.",
						   LEASE_TOKEN_ERA_MAX)));

	/* durable before anything is granted from it */
	{
		LeaseStateFile st;

		st.epoch = new_epoch;
		st.era_base = new_era - tli;
		st.from_pg_upgrade = lease_shared->from_pg_upgrade;
		lease_state_write(&st, ERROR);
		lease_shared->epoch = new_epoch;
		lease_shared->era_base = st.era_base;
		lease_shared->counter = 0;
	}
	/* the leases of the era left are lost: their watchers look again */
	if (new_era != cur_era)
	{
		HASH_SEQ_STATUS seq;
		LeaseEntry *e;

		/* carried ones too (lease_wal.c), and the WAL says so */
		hash_seq_init(&seq, lease_hash);
		while ((e = hash_seq_search(&seq)) != NULL)
			e->carried = false;
		lease_wal_era_moved();
		lease_watch_wake_all();
	}
	lease_unlock();

	ereport(LOG,
			(errmsg("lockctl raised its fencing token floor to era %u, epoch " UINT64_FORMAT " (first token " INT64_FORMAT ")",
					new_era, new_epoch, LEASE_TOKEN_MAKE(new_era, new_epoch, 0)),
			 errdetail("%s", why)));
	return true;
}

/*
 * The next fencing token.  Caller holds the lease lock exclusively, has
 * checked that the server is not in recovery, and called LeaseTokenCheck()
 * before taking the lock.  Errors change nothing.
 */
int64
LeaseNextToken(void)
{
	TimeLineID	tli = GetWALInsertionTimeLine();
	uint32		era = tli + lease_shared->era_base;
	uint64		epoch = lease_shared->epoch;
	bool		next_epoch = lease_shared->counter > LEASE_TOKEN_COUNTER_MAX;

	if (era > LEASE_TOKEN_ERA_MAX)
		ereport(ERROR,
				(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
				 errmsg("cannot issue a fencing token in era %u (timeline %u)", era, tli),
				 errdetail("Fencing tokens can carry eras up to %u.",
						   LEASE_TOKEN_ERA_MAX)));
	if (next_epoch)
		epoch++;
	if (epoch > LEASE_TOKEN_EPOCH_MAX)
		ereport(ERROR,
				(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
				 errmsg("lockctl has used up the fencing tokens of era %u", era),
				 errhint("Tokens rise again in a new era, for example after a failover or a point-in-time recovery.")));

	/*
	 * This database's high-water mark must cover the token before it is
	 * handed out.  LeaseTokenCheck() made it cover this epoch and the next
	 * one; only a second counter overflow or a raised floor since then (in
	 * practice never) gets here.
	 */
	if (!LeaseMarkCovers(era, tli, epoch))
		ereport(ERROR,
				(errcode(ERRCODE_T_R_SERIALIZATION_FAILURE),
				 errmsg("could not issue a fencing token: this database's token high-water mark is behind era %u, epoch " UINT64_FORMAT,
						era, epoch),
				 errhint("Retry the call.")));

	if (next_epoch)
	{
		/* durable before the first token of the new epoch */
		lease_shared->epoch = epoch;
		PG_TRY();
		{
			lease_state_write_shared(ERROR);
		}
		PG_CATCH();
		{
			lease_shared->epoch = epoch - 1;
			PG_RE_THROW();
		}
		PG_END_TRY();
		lease_shared->counter = 0;
	}

	return LEASE_TOKEN_MAKE(era, epoch, lease_shared->counter++);
}

/*
 * on_shmem_exit callback of the postmaster: write the live leases to the
 * dump file at a clean shutdown of a primary.  Nothing is written after a
 * crash (code is not 0), nor by a standby, which has no live lease.
 */
void
LeaseShutdownDump(int code, Datum arg)
{
	const char *tmp = LEASE_DUMP_FILE ".tmp";
	HASH_SEQ_STATUS seq;
	LeaseEntry *e;
	LeaseDumpHeader hdr;
	FILE	   *f;
	int64		now_mono;
	TimestampTz now_wall;
	DBState		state;
	uint32		era;
	LeaseDumpHeader carried_hdr;
	long		carried_at;

	if (code != 0 || lease_shared == NULL || lease_hash == NULL)
		return;

	/*
	 * An immediate shutdown also ends the postmaster with code 0, but it is
	 * a crash as far as the data is concerned (the next start runs crash
	 * recovery): only a shutdown that wrote its shutdown checkpoint counts
	 * as clean.  A standby shut down in recovery has nothing to keep.  The
	 * era is that of the timeline the server ended on.
	 */
	era = lease_controlfile_tli(&state) + lease_shared->era_base;
	if (state != DB_SHUTDOWNED)
		return;

	now_mono = lease_now_mono();
	now_wall = GetCurrentTimestamp();

	f = AllocateFile(tmp, PG_BINARY_W);
	if (f == NULL)
		goto error;

	memset(&hdr, 0, sizeof(hdr));
	hdr.magic = LEASE_DUMP_MAGIC;
	hdr.record_size = sizeof(LeaseDumpRecord);
	hdr.count = 0;
	hdr.saved_at = now_wall;
	if (fwrite(&hdr, sizeof(hdr), 1, f) != 1)
		goto error;

	hash_seq_init(&seq, lease_hash);
	while ((e = hash_seq_search(&seq)) != NULL)
	{
		/* a session-bound lease (lease_session.c) never outlives its session */
		if (!e->held || e->expires_mono <= now_mono ||
			e->expires_mono >= LEASE_EXPIRES_NEVER ||
			!lease_token_live_in(e->token, era, lease_shared->epoch))
			continue;
		if (!lease_dump_write(f, e, now_mono, now_wall))
		{
			hash_seq_term(&seq);
			goto error;
		}
		hdr.count++;
	}

	/*
	 * Then the leases carried over from WAL (lease_wal.c), whose tokens are
	 * of an older era: after the others, under a header of their own, so
	 * that a library without durable leases reads the file as before and
	 * stops at the end of its records.
	 */
	memset(&carried_hdr, 0, sizeof(carried_hdr));
	carried_hdr.magic = LEASE_DUMP_CARRIED_MAGIC;
	carried_hdr.record_size = sizeof(LeaseDumpRecord);
	carried_hdr.saved_at = now_wall;
	carried_at = ftell(f);
	if (carried_at < 0 ||
		fwrite(&carried_hdr, sizeof(carried_hdr), 1, f) != 1)
		goto error;
	hash_seq_init(&seq, lease_hash);
	while ((e = hash_seq_search(&seq)) != NULL)
	{
		if (!e->held || !e->carried || e->expires_mono <= now_mono ||
			e->expires_mono >= LEASE_EXPIRES_NEVER ||
			lease_token_live_in(e->token, era, lease_shared->epoch))
			continue;
		if (!lease_dump_write(f, e, now_mono, now_wall))
		{
			hash_seq_term(&seq);
			goto error;
		}
		carried_hdr.count++;
	}
	if (fseek(f, carried_at, SEEK_SET) != 0 ||
		fwrite(&carried_hdr, sizeof(carried_hdr), 1, f) != 1)
		goto error;

	/* the count, now that it is known */
	if (fseek(f, 0, SEEK_SET) != 0 ||
		fwrite(&hdr, sizeof(hdr), 1, f) != 1 ||
		fflush(f) != 0)
		goto error;
	if (FreeFile(f) != 0)
	{
		f = NULL;
		goto error;
	}
	(void) durable_rename(tmp, LEASE_DUMP_FILE, LOG);
	return;

error:
	ereport(LOG,
			(errcode_for_file_access(),
			 errmsg("could not write lockctl lease dump \"%s\": %m", tmp),
			 errdetail("Live leases are lost; fencing tokens still rise after the restart.")));
	if (f)
		FreeFile(f);
	unlink(tmp);
}

/*
 * At startup (postmaster, lease table just created, LeaseEpochStartup done):
 * load the leases saved at the last clean shutdown, then remove the dump.
 * Every start consumes it; it is restored only into the primary that wrote
 * it, starting again on its own line (see the top of the file), and only
 * leases of that line's era and of an epoch before this start.  Leases
 * whose time ran out while the server was down are dropped.
 */
void
LeaseRestoreDump(void)
{
	FILE	   *f;
	LeaseDumpHeader hdr;
	int64		now_mono = lease_now_mono();
	TimestampTz now_wall = GetCurrentTimestamp();
	int			restored = 0;
	int			foreign = 0;
	int			i;
	int			n;

	f = AllocateFile(LEASE_DUMP_FILE, PG_BINARY_R);
	if (f == NULL)
	{
		if (errno != ENOENT)
			ereport(LOG,
					(errcode_for_file_access(),
					 errmsg("could not read lockctl lease dump \"%s\": %m",
							LEASE_DUMP_FILE)));
		return;
	}

	if (fread(&hdr, sizeof(hdr), 1, f) != 1 ||
		hdr.magic != LEASE_DUMP_MAGIC ||
		hdr.record_size != sizeof(LeaseDumpRecord) ||
		hdr.count < 0)
	{
		ereport(LOG,
				(errmsg("ignoring lockctl lease dump \"%s\": unknown format",
						LEASE_DUMP_FILE)));
		goto done;
	}
	if (!startup_may_restore)
	{
		ereport(LOG,
				(errmsg("lockctl dropped the lease dump \"%s\": this server does not start as the primary that wrote it",
						LEASE_DUMP_FILE),
				 errdetail("A server that starts as a standby, in archive recovery or from a backup has no live lease of the line of history it came from.")));
		goto done;
	}

	for (i = 0; i < hdr.count; i++)
	{
		LeaseDumpRecord r;

		if (fread(&r, sizeof(r), 1, f) != 1)
		{
			ereport(LOG,
					(errmsg("lockctl lease dump \"%s\" is truncated", LEASE_DUMP_FILE)));
			break;
		}
		r.resource[LOCKCTL_NAME_MAXLEN] = '\0';
		r.owner[LOCKCTL_NAME_MAXLEN] = '\0';

		/* only this line's leases, granted before this start */
		if (!lease_token_live_in(r.token, startup_era, startup_prev_epoch))
		{
			foreign++;
			continue;
		}

		n = lease_restore_one(&r, now_mono, now_wall, false);
		if (n < 0)
		{
			ereport(LOG,
					(errmsg("lockctl.max_leases is too small to restore every saved lease; %d were dropped",
							hdr.count - i)));
			break;
		}
		restored += n;
	}

	/* the leases this server carried over from WAL (lease_wal.c) */
	if (i == hdr.count &&
		fread(&hdr, sizeof(hdr), 1, f) == 1 &&
		hdr.magic == LEASE_DUMP_CARRIED_MAGIC &&
		hdr.record_size == sizeof(LeaseDumpRecord))
	{
		for (i = 0; i < hdr.count; i++)
		{
			LeaseDumpRecord r;

			if (fread(&r, sizeof(r), 1, f) != 1)
				break;
			r.resource[LOCKCTL_NAME_MAXLEN] = '\0';
			r.owner[LOCKCTL_NAME_MAXLEN] = '\0';
			/* of an era this line left, never of a later one */
			if (LEASE_TOKEN_ERA(r.token) >= startup_era)
			{
				foreign++;
				continue;
			}
			n = lease_restore_one(&r, now_mono, now_wall, true);
			if (n < 0)
				break;
			restored += n;
		}
	}
	if (restored > 0)
		ereport(LOG,
				(errmsg("lockctl restored %d lease(s) saved at shutdown", restored)));
	if (foreign > 0)
		ereport(LOG,
				(errmsg("lockctl dropped %d saved lease(s) of another era or of a later epoch than this data directory's", foreign)));

done:
	FreeFile(f);
	unlink(LEASE_DUMP_FILE);
}

/*
 * Write e to the dump.  Returns false on a write error.
 */
static bool
lease_dump_write(FILE *f, LeaseEntry *e, int64 now_mono, TimestampTz now_wall)
{
	LeaseDumpRecord r;

	memset(&r, 0, sizeof(r));
	r.dbid = e->key.dbid;
	r.roleid = e->roleid;
	r.token = e->token;
	r.acquired_at = e->acquired_at;
	r.remaining_us = e->expires_mono - now_mono;
	r.expires_at = now_wall + r.remaining_us;
	strlcpy(r.resource, e->key.resource, sizeof(r.resource));
	strlcpy(r.owner, e->owner, sizeof(r.owner));
	return fwrite(&r, sizeof(r), 1, f) == 1;
}

/*
 * Restore one saved lease into the lease table (carried: of an older era,
 * carried over from WAL before the shutdown).  Returns 1 if restored, 0 if
 * it ran out or is a duplicate, -1 if the table is full.
 */
static int
lease_restore_one(const LeaseDumpRecord *rec, int64 now_mono,
				  TimestampTz now_wall, bool carried)
{
	LeaseKey	key;
	LeaseEntry *e;
	bool		found;
	int64		remaining;

	/* never longer than either clock allows */
	remaining = Min(rec->remaining_us, rec->expires_at - now_wall);
	if (remaining <= 0 || rec->resource[0] == '\0')
		return 0;
	if (lease_shared->nentries >= lockctl_max_leases)
		return -1;

	memset(&key, 0, sizeof(key));
	key.dbid = rec->dbid;
	strlcpy(key.resource, rec->resource, sizeof(key.resource));
	e = hash_search(lease_hash, &key, HASH_ENTER_NULL, &found);
	if (e == NULL || found)
		return 0;
	lease_shared->nentries++;
	e->held = true;
	e->fenced = false;
	e->fenced_by = 0;
	strlcpy(e->owner, rec->owner, sizeof(e->owner));
	e->token = rec->token;
	e->roleid = rec->roleid;
	e->acquired_at = rec->acquired_at;
	e->expires_mono = now_mono + remaining;
	e->nwaiters = 0;
	dlist_init(&e->waiters);
	e->permits = 1;
	e->set_id = 0;				/* sets are not saved: each lease alone */
	e->carried = carried;
	e->nholders = 0;
	dlist_init(&e->holders);
	return 1;
}
