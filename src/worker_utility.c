/*-------------------------------------------------------------------------
 *
 * worker_utility.c
 *	  Keeping the expiry workers out of the way of DROP DATABASE and the
 *	  other commands that need a database free of connections, and waking
 *	  the launcher when the set of databases changes.
 *
 * In PostgreSQL 15, DROP DATABASE (and CREATE DATABASE ...
 * TEMPLATE, ALTER DATABASE ... RENAME / SET TABLESPACE) refuse to run while
 * any other process is connected to the database; CountOtherDBBackends
 * only terminates autovacuum workers, not ours.  So a ProcessUtility hook
 * sees those commands coming, pauses the database's worker (the launcher
 * does not restart a paused one) and terminates it before the command
 * checks for other users.  It only does so for a role that owns the
 * database, which alone may run those commands.
 *
 * The same hook has the other commands that drop or rewrite lockctl's
 * objects (ALTER EXTENSION lockctl UPDATE, DROP SCHEMA lockctl CASCADE,
 * DROP OWNED BY its owner) lock the extension first, as DROP EXTENSION
 * does, so that the worker stays out of their way (see worker_begin in
 * expiry_worker.c).
 *
 * src/worker_utility.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <signal.h>

#include "catalog/namespace.h"
#include "catalog/pg_extension.h"
#include "catalog/pg_namespace.h"
#include "commands/dbcommands.h"
#include "commands/defrem.h"
#include "commands/extension.h"
#include "miscadmin.h"
#include "nodes/parsenodes.h"
#include "storage/lmgr.h"
#include "storage/lwlock.h"
#include "tcop/utility.h"
#include "utils/acl.h"
#include "utils/timestamp.h"

#include "worker.h"

static ProcessUtility_hook_type prev_process_utility = NULL;

static void expiry_pause_database(Oid dboid, int ms, bool terminate);
static const char *expiry_utility_target(Node *parsetree, bool *rescan);
static Oid	expiry_utility_drops_extension(Node *parsetree);
static void expiry_process_utility(PlannedStmt *pstmt, const char *queryString,
								   bool readOnlyTree,
								   ProcessUtilityContext context,
								   ParamListInfo params,
								   QueryEnvironment *queryEnv,
								   DestReceiver *dest, QueryCompletion *qc);

/*
 * Install the ProcessUtility hook.
 */
void
WorkerUtilityInit(void)
{
	prev_process_utility = ProcessUtility_hook;
	ProcessUtility_hook = expiry_process_utility;
}

/* ----------------------------------------------------------------
 * Keeping our workers out of the way of DROP DATABASE & co.
 * ----------------------------------------------------------------
 */

/*
 * Pause the worker of a database for ms milliseconds (0 resumes it), and
 * if terminate, end its process now.
 */
static void
expiry_pause_database(Oid dboid, int ms, bool terminate)
{
	int			i;

	if (expiry_shared == NULL)
		return;
	LWLockAcquire(expiry_shared->lock, LW_EXCLUSIVE);
	for (i = 0; i < expiry_shared->nslots; i++)
	{
		ExpirySlot *slot = &expiry_shared->slots[i];

		if (slot->state == SLOT_FREE || slot->dboid != dboid)
			continue;
		slot->paused_until = ms > 0 ?
			TimestampTzPlusMilliseconds(GetCurrentTimestamp(), ms) : 0;
		if (terminate && slot->pid != 0)
			kill(slot->pid, SIGTERM);
	}
	if (ms == 0 && expiry_shared->launcher_latch)
		SetLatch(expiry_shared->launcher_latch);
	LWLockRelease(expiry_shared->lock);
}

/*
 * The name of the database a utility statement needs free of other
 * connections, if any, and whether it changes which databases exist or
 * may be served.
 */
static const char *
expiry_utility_target(Node *parsetree, bool *rescan)
{
	ListCell   *lc;

	*rescan = false;
	switch (nodeTag(parsetree))
	{
		case T_DropdbStmt:
			*rescan = true;
			return ((DropdbStmt *) parsetree)->dbname;
		case T_CreatedbStmt:
			*rescan = true;
			foreach(lc, ((CreatedbStmt *) parsetree)->options)
			{
				DefElem    *opt = lfirst_node(DefElem, lc);

				if (strcmp(opt->defname, "template") == 0 && opt->arg)
					return defGetString(opt);
			}
			return NULL;
		case T_RenameStmt:
			if (((RenameStmt *) parsetree)->renameType != OBJECT_DATABASE)
				return NULL;
			*rescan = true;
			return ((RenameStmt *) parsetree)->subname;
		case T_AlterDatabaseStmt:
			*rescan = true;
			foreach(lc, ((AlterDatabaseStmt *) parsetree)->options)
			{
				DefElem    *opt = lfirst_node(DefElem, lc);

				if (strcmp(opt->defname, "tablespace") == 0)
					return ((AlterDatabaseStmt *) parsetree)->dbname;
			}
			return NULL;
		default:
			return NULL;
	}
}

/*
 * The extension lockctl, if the statement, run by the current user, drops
 * or rewrites its objects while PostgreSQL does not lock the extension
 * first; else InvalidOid.  ALTER EXTENSION lockctl UPDATE (PostgreSQL locks
 * nothing for an update); DROP OWNED BY the extension's owner (it reaches
 * the extension through dependencies, after locking some of its tables:
 * one such DROP in 150 deadlocked with a busy worker); DROP SCHEMA lockctl
 * ... CASCADE (it locks the extension while it collects the dependents,
 * before their tables, but locked here first its order does not depend on
 * that).  Only where the current user may run the command (the
 * extension's owner; the schema's; a role whose privileges the user has):
 * the lock is held to the end of the transaction, and nobody else may hold
 * the worker off with a command that then fails.  The catalog is read only
 * for those statements, not for every DROP.
 */
static Oid
expiry_utility_drops_extension(Node *parsetree)
{
	ListCell   *lc;
	Oid			extoid;

	switch (nodeTag(parsetree))
	{
		case T_AlterExtensionStmt:
			if (strcmp(((AlterExtensionStmt *) parsetree)->extname, "lockctl") != 0)
				return InvalidOid;
			extoid = get_extension_oid("lockctl", true);
			if (OidIsValid(extoid) &&
				object_ownercheck(ExtensionRelationId, extoid, GetUserId()))
				return extoid;
			return InvalidOid;
		case T_DropStmt:
			{
				DropStmt   *stmt = (DropStmt *) parsetree;

				if (stmt->removeType != OBJECT_SCHEMA ||
					stmt->behavior != DROP_CASCADE)
					return InvalidOid;
				/* lockctl.control: schema lockctl, not relocatable */
				foreach(lc, stmt->objects)
				{
					Node	   *name = lfirst(lc);
					Oid			nsp;

					if (!IsA(name, String) || strcmp(strVal(name), "lockctl") != 0)
						continue;
					nsp = get_namespace_oid("lockctl", true);
					if (!OidIsValid(nsp) ||
						!object_ownercheck(NamespaceRelationId, nsp, GetUserId()))
						return InvalidOid;
					return get_extension_oid("lockctl", true);
				}
				return InvalidOid;
			}
		case T_DropOwnedStmt:
			extoid = get_extension_oid("lockctl", true);
			if (!OidIsValid(extoid))
				return InvalidOid;
			foreach(lc, ((DropOwnedStmt *) parsetree)->roles)
			{
				Oid			roleid = get_rolespec_oid(lfirst(lc), true);

				if (OidIsValid(roleid) &&
					has_privs_of_role(GetUserId(), roleid) &&
					object_ownercheck(ExtensionRelationId, extoid, roleid))
					return extoid;
			}
			return InvalidOid;
		default:
			return InvalidOid;
	}
}

/*
 * ProcessUtility hook: terminate and pause our worker of a database that
 * the statement needs free of other connections, and wake the launcher
 * when the set of databases may have changed.
 */
static void
expiry_process_utility(PlannedStmt *pstmt, const char *queryString,
					   bool readOnlyTree, ProcessUtilityContext context,
					   ParamListInfo params, QueryEnvironment *queryEnv,
					   DestReceiver *dest, QueryCompletion *qc)
{
	bool		rescan_flag = false;
	volatile bool rescan;
	const char *target = NULL;
	volatile Oid dboid = InvalidOid;

	if (expiry_shared != NULL && pstmt->utilityStmt != NULL)
	{
		Node	   *stmt = pstmt->utilityStmt;
		Oid			extoid;

		target = expiry_utility_target(stmt, &rescan_flag);

		/*
		 * A command that drops or rewrites lockctl's objects: lock the
		 * extension as DROP EXTENSION does, before anything else, so that
		 * the worker of this database, which takes it in share mode for
		 * each batch (worker_begin), stays out of the command's way instead
		 * of deadlocking with it.
		 */
		extoid = expiry_utility_drops_extension(stmt);
		if (OidIsValid(extoid))
			LockDatabaseObject(ExtensionRelationId, extoid, 0,
							   AccessExclusiveLock);
	}
	rescan = rescan_flag;

	if (target != NULL)
	{
		dboid = get_database_oid(target, true);
		if (OidIsValid(dboid) && dboid != MyDatabaseId &&
			object_ownercheck(DatabaseRelationId, dboid, GetUserId()))
			expiry_pause_database(dboid, WORKER_PAUSE_MS, true);
		else
			dboid = InvalidOid;
	}

	PG_TRY();
	{
		if (prev_process_utility)
			prev_process_utility(pstmt, queryString, readOnlyTree, context,
								 params, queryEnv, dest, qc);
		else
			standard_ProcessUtility(pstmt, queryString, readOnlyTree, context,
									params, queryEnv, dest, qc);
	}
	PG_CATCH();
	{
		if (OidIsValid(dboid))
			expiry_pause_database(dboid, 0, false);
		PG_RE_THROW();
	}
	PG_END_TRY();

	/*
	 * Success: keep the worker off a little longer, so that the launcher
	 * sees the committed catalog before it starts one again.
	 */
	if (OidIsValid(dboid))
		expiry_pause_database(dboid, WORKER_PAUSE_AFTER_MS, false);
	if (rescan)
		expiry_request_wake(false, true);
}
