/*-------------------------------------------------------------------------
 *
 * lease_token.c
 *	  Fencing tokens, the durable epoch they rest on, and the dump that
 *	  carries live leases across a clean restart.
 *
 * Why tokens only ever rise, for every resource
 * ---------------------------------------------
 * A token is (timeline << 48) | (epoch << 28) | counter, compared as a
 * positive int64, so a token with a higher timeline is higher whatever its
 * other fields, and with equal timelines the epoch decides, then the
 * counter.
 *
 *  - Within one life of the server, the timeline does not change (a primary
 *    never switches timeline while it runs; a standby grants nothing until
 *    it is promoted, and promotion is a new life as far as grants go because
 *    the timeline it reports afterwards is higher than any before), and the
 *    epoch only moves forward; the counter rises by one at every grant,
 *    under the lease lock.  When the counter is about to overflow, the
 *    epoch is advanced durably first and the counter starts again at 0.
 *  - Every start of the server (a clean one, a crash restart, the start of
 *    a standby) reads the epoch from the state file in the data directory,
 *    writes epoch + 1 to a new file, fsyncs it and renames it into place
 *    (durable_rename) before shared memory is ready, so before any backend
 *    can grant.  A token handed out after a restart therefore has a higher
 *    epoch than every token handed out before it on the same timeline, even
 *    if the counter was lost in a crash.  Restored leases (see below) keep
 *    the token they had, which is lower than every new one.
 *  - A standby's state file is a copy from its base backup, so its epoch can
 *    be lower than the primary's.  That is why the timeline sits above the
 *    epoch: promotion always chooses a timeline higher than the one the
 *    primary used, so every token of the promoted server is higher than
 *    every token of the old primary.
 *
 * Limits: 32767 timelines, 2^20 epochs (restarts and counter overflows, on
 * one timeline), 2^28 grants per epoch.  Restoring a file-level copy of the
 * data directory and starting it on the same timeline without archive
 * recovery (which would choose a new timeline) brings back an old epoch, so
 * tokens could repeat: do not do that while old holders are alive.  Nor
 * does this survive pg_upgrade, which starts a new cluster on timeline 1
 * with no epoch file.
 *
 * The shutdown dump
 * -----------------
 * At a clean shutdown (the control file says the cluster was shut down,
 * which an immediate shutdown does not) the postmaster writes every live lease, with its
 * remaining time, to a file; at the next start they are loaded again and
 * the file is removed.  The remaining time on restore is the smaller of the
 * monotonic time that was left at shutdown and the time left until the
 * wall-clock expiry that was saved, so a restored lease never lasts longer
 * than it would have without the restart.  After a crash there is no dump:
 * the leases are gone, and the new epoch still makes later tokens higher.
 *
 * src/lease_token.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <unistd.h>

#include "access/xlog.h"
#include "catalog/pg_control.h"
#include "common/controldata_utils.h"
#include "miscadmin.h"
#include "storage/fd.h"
#include "utils/hsearch.h"
#include "utils/timestamp.h"

#include "lease.h"

/* Files, relative to the data directory (the postmaster's cwd). */
#define LEASE_EPOCH_FILE		"pg_lockctl_epoch"
#define LEASE_DUMP_FILE			"pg_lockctl_leases.dump"

#define LEASE_EPOCH_MAGIC		"lockctl epoch"
#define LEASE_DUMP_MAGIC		0x4C4B4C31	/* "LKL1" */

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

static uint64 lease_epoch_read(void);
static void lease_epoch_write(uint64 epoch, int elevel);

/*
 * Read the epoch from the state file; 0 when there is none yet.
 */
static uint64
lease_epoch_read(void)
{
	FILE	   *f;
	char		buf[128];
	unsigned long long v;

	f = AllocateFile(LEASE_EPOCH_FILE, "r");
	if (f == NULL)
	{
		if (errno == ENOENT)
			return 0;
		ereport(FATAL,
				(errcode_for_file_access(),
				 errmsg("could not open lockctl state file \"%s\": %m",
						LEASE_EPOCH_FILE)));
	}
	if (fgets(buf, sizeof(buf), f) == NULL ||
		sscanf(buf, LEASE_EPOCH_MAGIC " %llu", &v) != 1)
	{
		FreeFile(f);
		ereport(FATAL,
				(errcode(ERRCODE_DATA_CORRUPTED),
				 errmsg("lockctl state file \"%s\" is corrupt", LEASE_EPOCH_FILE),
				 errdetail("Its first line should read \"%s N\".", LEASE_EPOCH_MAGIC),
				 errhint("Write a line \"%s N\" into it with N higher than any epoch used before (bits 28 to 47 of the highest fencing token issued), or fencing tokens could repeat.",
						 LEASE_EPOCH_MAGIC)));
	}
	FreeFile(f);
	return (uint64) v;
}

/*
 * Write the epoch durably: a temporary file, fsync, durable_rename.
 */
static void
lease_epoch_write(uint64 epoch, int elevel)
{
	const char *tmp = LEASE_EPOCH_FILE ".tmp";
	FILE	   *f;

	f = AllocateFile(tmp, PG_BINARY_W);
	if (f == NULL)
		ereport(elevel,
				(errcode_for_file_access(),
				 errmsg("could not create lockctl state file \"%s\": %m", tmp)));
	if (fprintf(f, "%s " UINT64_FORMAT "\n", LEASE_EPOCH_MAGIC, epoch) < 0 ||
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
 * At every start of the server (postmaster, before any backend exists):
 * advance the epoch durably.  An error here stops the server: granting
 * tokens from an epoch that is not on disk could repeat them.
 */
void
LeaseEpochStartup(void)
{
	uint64		epoch = lease_epoch_read() + 1;

	lease_epoch_write(epoch, FATAL);
	lease_shared->epoch = epoch;
	lease_shared->counter = 0;
	ereport(DEBUG1,
			(errmsg_internal("lockctl lease token epoch is " UINT64_FORMAT, epoch)));
}

/*
 * The next fencing token.  Caller holds the lease lock exclusively and has
 * checked that the server is not in recovery.
 */
int64
LeaseNextToken(void)
{
	TimeLineID	tli = GetWALInsertionTimeLine();

	if (tli > LEASE_TOKEN_TLI_MAX)
		ereport(ERROR,
				(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
				 errmsg("cannot issue a fencing token on timeline %u", tli),
				 errdetail("Fencing tokens can carry timelines up to %u.",
						   LEASE_TOKEN_TLI_MAX)));

	if (lease_shared->counter > LEASE_TOKEN_COUNTER_MAX)
	{
		uint64		next = lease_shared->epoch + 1;

		if (next > LEASE_TOKEN_EPOCH_MAX)
			ereport(ERROR,
					(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
					 errmsg("lockctl has used up the fencing tokens of timeline %u", tli),
					 errhint("Tokens rise again on a new timeline, for example after a failover or a point-in-time recovery.")));
		/* durable before the first token of the new epoch */
		lease_epoch_write(next, ERROR);
		lease_shared->epoch = next;
		lease_shared->counter = 0;
	}
	if (lease_shared->epoch > LEASE_TOKEN_EPOCH_MAX)
		ereport(ERROR,
				(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
				 errmsg("lockctl has used up the fencing tokens of timeline %u", tli),
				 errhint("Tokens rise again on a new timeline, for example after a failover or a point-in-time recovery.")));

	return (int64) (((uint64) tli << LEASE_TOKEN_TLI_SHIFT) |
					(lease_shared->epoch << LEASE_TOKEN_EPOCH_SHIFT) |
					lease_shared->counter++);
}

/*
 * on_shmem_exit callback of the postmaster: write the live leases to the
 * dump file at a clean shutdown.  Nothing is written after a crash (code is
 * not 0), and any old dump is removed then.
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

	if (code != 0 || lease_shared == NULL || lease_hash == NULL)
		return;

	/*
	 * An immediate shutdown also ends the postmaster with code 0, but it is
	 * a crash as far as the data is concerned (the next start runs crash
	 * recovery): only a shutdown that wrote its shutdown checkpoint counts
	 * as clean.
	 */
	{
		bool		crc_ok;
		ControlFileData *cf = get_controlfile(DataDir, &crc_ok);

		if (!crc_ok ||
			(cf->state != DB_SHUTDOWNED &&
			 cf->state != DB_SHUTDOWNED_IN_RECOVERY))
			return;
	}

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
		LeaseDumpRecord r;

		if (!e->held || e->expires_mono <= now_mono)
			continue;
		memset(&r, 0, sizeof(r));
		r.dbid = e->key.dbid;
		r.roleid = e->roleid;
		r.token = e->token;
		r.acquired_at = e->acquired_at;
		r.remaining_us = e->expires_mono - now_mono;
		r.expires_at = now_wall + r.remaining_us;
		strlcpy(r.resource, e->key.resource, sizeof(r.resource));
		strlcpy(r.owner, e->owner, sizeof(r.owner));
		if (fwrite(&r, sizeof(r), 1, f) != 1)
		{
			hash_seq_term(&seq);
			goto error;
		}
		hdr.count++;
	}

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
 * At startup (postmaster, lease table just created): load the leases saved
 * at the last clean shutdown, then remove the dump.  Leases whose time ran
 * out while the server was down are dropped.
 */
void
LeaseRestoreDump(void)
{
	FILE	   *f;
	LeaseDumpHeader hdr;
	int64		now_mono = lease_now_mono();
	TimestampTz now_wall = GetCurrentTimestamp();
	int			restored = 0;
	int			i;

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

	for (i = 0; i < hdr.count; i++)
	{
		LeaseDumpRecord r;
		LeaseKey	key;
		LeaseEntry *e;
		bool		found;
		int64		remaining;

		if (fread(&r, sizeof(r), 1, f) != 1)
		{
			ereport(LOG,
					(errmsg("lockctl lease dump \"%s\" is truncated", LEASE_DUMP_FILE)));
			break;
		}
		r.resource[LOCKCTL_NAME_MAXLEN] = '\0';
		r.owner[LOCKCTL_NAME_MAXLEN] = '\0';

		/* never longer than either clock allows */
		remaining = Min(r.remaining_us, r.expires_at - now_wall);
		if (remaining <= 0 || r.resource[0] == '\0')
			continue;
		if (lease_shared->nentries >= lockctl_max_leases)
		{
			ereport(LOG,
					(errmsg("lockctl.max_leases is too small to restore every saved lease; %d were dropped",
							hdr.count - i)));
			break;
		}

		memset(&key, 0, sizeof(key));
		key.dbid = r.dbid;
		strlcpy(key.resource, r.resource, sizeof(key.resource));
		e = hash_search(lease_hash, &key, HASH_ENTER_NULL, &found);
		if (e == NULL || found)
			continue;
		lease_shared->nentries++;
		e->held = true;
		e->fenced = false;
		strlcpy(e->owner, r.owner, sizeof(e->owner));
		e->token = r.token;
		e->roleid = r.roleid;
		e->acquired_at = r.acquired_at;
		e->expires_mono = now_mono + remaining;
		e->nwaiters = 0;
		dlist_init(&e->waiters);
		e->permits = 1;
		e->nholders = 0;
		dlist_init(&e->holders);
		restored++;
	}
	if (restored > 0)
		ereport(LOG,
				(errmsg("lockctl restored %d lease(s) saved at shutdown", restored)));

done:
	FreeFile(f);
	unlink(LEASE_DUMP_FILE);
}
