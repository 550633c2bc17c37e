/*-------------------------------------------------------------------------
 *
 * lockctl.c
 *	  The module's entry point: _PG_init, the settings, the shared-memory
 *	  hooks, and the check that the library was preloaded.
 *
 * lockctl keeps leases in shared memory and runs a background worker, both
 * of which exist only when the library is loaded by the postmaster through
 * shared_preload_libraries.  Loaded any other way (CREATE EXTENSION on a
 * server without the preload, or the first call of one of its functions),
 * _PG_init raises an error that says what to set, so that no function ever
 * runs against shared memory that was never created.
 *
 * Each concept in C (version.c, lease.c, worker.c) registers its own pieces
 * from its Init function; the shared-memory hooks here only add up their
 * sizes and let each create or attach to its part.  Reservations keep all
 * their state in tables and are written in SQL (src/reserve.sql), so they
 * need no hooks.
 *
 * src/lockctl.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <limits.h>

#include "miscadmin.h"
#include "storage/ipc.h"
#include "storage/shmem.h"
#include "utils/builtins.h"
#include "utils/guc.h"

#include "lockctl.h"

PG_MODULE_MAGIC;

/* Settings */
int			lockctl_max_leases = 4096;
int			lockctl_expiry_interval = 1000;
int			lockctl_retention = 7 * 24 * 3600;
int			lockctl_expiry_batch_size = 1000;
int			lockctl_max_versioned_tables = 1024;
char	   *lockctl_worker_databases = NULL;

bool		lockctl_preloaded = false;

#if PG_VERSION_NUM >= 150000
static shmem_request_hook_type prev_shmem_request_hook = NULL;
#endif
static shmem_startup_hook_type prev_shmem_startup_hook = NULL;

void		_PG_init(void);
static void lockctl_define_settings(void);
static void lockctl_shmem_request(void);
static void lockctl_shmem_startup(void);

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

	lockctl_preloaded = true;

	lockctl_define_settings();

	VersionInit();
	LeaseInit();
	ExpiryWorkerInit();
	RequestInit();

#if PG_VERSION_NUM >= 150000
	prev_shmem_request_hook = shmem_request_hook;
	shmem_request_hook = lockctl_shmem_request;
#else
	lockctl_shmem_request();
#endif
	prev_shmem_startup_hook = shmem_startup_hook;
	shmem_startup_hook = lockctl_shmem_startup;
}

/*
 * Register lockctl's settings.  Every one of them lives under "lockctl.".
 */
static void
lockctl_define_settings(void)
{
	/* leases */
	DefineCustomIntVariable("lockctl.max_leases",
							gettext_noop("Maximum number of live leases, across all databases."),
							gettext_noop("Each lease takes a slot in shared memory; when all are taken, acquire fails with SQLSTATE 53400."),
							&lockctl_max_leases,
							4096, 16, 1024 * 1024,
							PGC_POSTMASTER,
							0,
							NULL, NULL, NULL);

	/* versioning */
	DefineCustomIntVariable("lockctl.max_versioned_tables",
							gettext_noop("Maximum number of versioned tables whose counters are kept, across all databases."),
							gettext_noop("Each takes a small entry in shared memory; tables beyond the limit are still checked, but not counted."),
							&lockctl_max_versioned_tables,
							1024, 16, 1024 * 1024,
							PGC_POSTMASTER,
							0,
							NULL, NULL, NULL);

	/* reservations and the expiry worker */
	DefineCustomIntVariable("lockctl.expiry_interval",
							gettext_noop("How often the background worker looks for expired holds."),
							NULL,
							&lockctl_expiry_interval,
							1000, 10, 3600 * 1000,
							PGC_SIGHUP,
							GUC_UNIT_MS,
							NULL, NULL, NULL);

	DefineCustomIntVariable("lockctl.expiry_batch_size",
							gettext_noop("Maximum number of holds the background worker expires in one transaction."),
							NULL,
							&lockctl_expiry_batch_size,
							1000, 1, 1000000,
							PGC_SIGHUP,
							0,
							NULL, NULL, NULL);

	DefineCustomIntVariable("lockctl.retention",
							gettext_noop("How long finished holds are kept before the background worker purges them."),
							gettext_noop("Confirmed holds are never purged. -1 keeps finished holds forever."),
							&lockctl_retention,
							7 * 24 * 3600, -1, INT_MAX,
							PGC_SIGHUP,
							GUC_UNIT_S,
							NULL, NULL, NULL);

	DefineCustomStringVariable("lockctl.worker_databases",
							   gettext_noop("Databases the expiry worker serves; empty serves every database that has the extension."),
							   gettext_noop("A comma-separated list of database names, as written (double-quote a name with a comma)."),
							   &lockctl_worker_databases,
							   "",
							   PGC_SIGHUP,
							   GUC_LIST_INPUT,
							   lockctl_check_worker_databases, NULL, NULL);

#if PG_VERSION_NUM >= 150000
	MarkGUCPrefixReserved("lockctl");
#else
	EmitWarningsOnPlaceholders("lockctl");
#endif
}

/*
 * Ask for the shared memory and LWLocks every concept needs.
 */
static void
lockctl_shmem_request(void)
{
#if PG_VERSION_NUM >= 150000
	if (prev_shmem_request_hook)
		prev_shmem_request_hook();
#endif

	RequestAddinShmemSpace(add_size(add_size(VersionShmemSize(),
											 LeaseShmemSize()),
									ExpiryWorkerShmemSize()));
	VersionShmemRequest();
	LeaseShmemRequest();
	ExpiryWorkerShmemRequest();
}

/*
 * Create or attach to every concept's shared state.
 */
static void
lockctl_shmem_startup(void)
{
	if (prev_shmem_startup_hook)
		prev_shmem_startup_hook();

	VersionShmemStartup();
	LeaseShmemStartup();
	ExpiryWorkerShmemStartup();
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
