/*-------------------------------------------------------------------------
 *
 * lockctl.c
 *	  The module's entry point: _PG_init, which refuses to load outside
 *	  shared_preload_libraries and then lets each concept set itself up,
 *	  and lockctl.library_version().
 *
 * lockctl keeps leases in shared memory and runs a background worker, both
 * of which exist only when the library is loaded by the postmaster through
 * shared_preload_libraries.  Loaded any other way (CREATE EXTENSION on a
 * server without the preload, or the first call of one of its functions),
 * _PG_init raises an error that says what to set, so that no function ever
 * runs against shared memory that was never created.
 *
 * Each concept in C (versioning, leases, fenced tables, requests, the
 * expiry worker)
 * defines its own settings, asks for its own shared memory (shmem.c) and
 * keeps its own state from its Init function; nothing here knows what they
 * are.  Reservations keep all their state in tables and are written in SQL
 * (src/reserve.sql); src/reserve.c has their settings and role checks.
 *
 * src/lockctl.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "miscadmin.h"
#include "utils/builtins.h"
#include "utils/guc.h"

#include "lockctl.h"

PG_MODULE_MAGIC_EXT(
					.name = "lockctl",
					.version = LOCKCTL_VERSION
);

void		_PG_init(void);

/*
 * Module load callback
 */
void
_PG_init(void)
{
	if (!process_shared_preload_libraries_in_progress)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("lockctl must be loaded via \"shared_preload_libraries\""),
				 errdetail("lockctl keeps leases in shared memory and runs a background worker, which need the library loaded at server start."),
				 errhint("Add 'lockctl' to \"shared_preload_libraries\" in postgresql.conf and restart the server, then run CREATE EXTENSION lockctl.")));

	VersionInit();
	LeaseInit();
	FenceTableInit();
	ReserveCapsInit();
	KeptExprsInit();
	RequestInit();
	WorkerInit();

	/* every setting is defined by now: a misspelt lockctl.* is an error */
	MarkGUCPrefixReserved("lockctl");
}

/*
 * lockctl.library_version(): the version of the loaded shared library,
 * which differs from pg_extension.extversion after an upgrade of the
 * package until ALTER EXTENSION lockctl UPDATE is run.
 */
PG_FUNCTION_INFO_V1(lockctl_library_version);
Datum
lockctl_library_version(PG_FUNCTION_ARGS)
{
	PG_RETURN_TEXT_P(cstring_to_text(LOCKCTL_VERSION));
}

/*
 * lockctl_internal.name_max_bytes(): LOCKCTL_NAME_MAXLEN, so that the SQL
 * functions check names against the same limit as the C ones.  IMMUTABLE:
 * the planner folds it into a constant.
 */
PG_FUNCTION_INFO_V1(lockctl_name_max_bytes);
Datum
lockctl_name_max_bytes(PG_FUNCTION_ARGS)
{
	PG_RETURN_INT32(LOCKCTL_NAME_MAXLEN);
}
