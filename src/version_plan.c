/*-------------------------------------------------------------------------
 *
 * version_plan.c
 *	  What the executor hooks found of a generic plan's checked UPDATE,
 *	  kept for the plan's next executions.
 *
 * A prepared statement runs the same generic plan again and again, and
 * each run starts the executor again: version_statement.c would trace the
 * same plan to the same verdict each time, and version_direct.c build the
 * same projection tree.  For the UPDATE of a ModifyTable node with one
 * result relation whose version is compared with a parameter (so a
 * generic plan: a custom plan has the values as constants), that outcome
 * is kept here, keyed by the ModifyTable node, and what depends on the
 * execution (the parameters' values, session_replication_role, EXPLAIN
 * ANALYZE, referential actions, update_versioned) is still decided at
 * each run.
 *
 * Rules:
 *	- Only plans in a "CachedPlan" memory context (the plan cache's own,
 *	  made for one plan and deleted whole, never freed piecemeal) are kept,
 *	  what was found in that context: a reset callback on it removes the
 *	  entry with the plan, so a node's address is never taken for another
 *	  plan's, and what an execution uses lives as long as the plan.
 *	- What was found depends on the plan, on the table it updates (its
 *	  triggers, columns and kind) and on pg_amop (which operators are
 *	  equalities): a relcache invalidation of the table (or of every
 *	  table) and any change of pg_amop mark the entry invalid, and it is
 *	  found again at its next run.  (The plan cache makes a new plan for
 *	  the first; the others are rare.)  An entry found VERSION_PLAN_FILLS
 *	  times is not kept any more, so that the plan's memory stays bounded.
 *
 * src/version_plan.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "utils/hsearch.h"
#include "utils/memutils.h"

#include "version.h"

#define VERSION_PLAN_FILLS	8

static HTAB *plan_entries = NULL;
static VersionPlanEntry *plan_last = NULL;	/* the entry found last */

/* Reset callback of a plan's memory: its entry goes with it. */
static void
version_plan_forget(void *arg)
{
	ModifyTable *mt = (ModifyTable *) arg;

	plan_last = NULL;
	if (plan_entries != NULL)
		hash_search(plan_entries, &mt, HASH_REMOVE, NULL);
}

/*
 * Mark invalid the entries of the plans that update relid (every entry if
 * relid is InvalidOid).
 */
void
version_plan_invalidate(Oid relid)
{
	HASH_SEQ_STATUS seq;
	VersionPlanEntry *e;

	if (plan_entries == NULL || hash_get_num_entries(plan_entries) == 0)
		return;
	hash_seq_init(&seq, plan_entries);
	while ((e = hash_seq_search(&seq)) != NULL)
	{
		if (!OidIsValid(relid) || e->relid == relid)
			e->valid = false;
	}
}

/* The valid entry of mt, node of pstmt, if one is kept. */
VersionPlanEntry *
version_plan_find(PlannedStmt *pstmt, ModifyTable *mt)
{
	VersionPlanEntry *e;

	if (plan_last != NULL && plan_last->mt == mt)
		e = plan_last;
	else if (plan_entries == NULL ||
			 (e = hash_search(plan_entries, &mt, HASH_FIND, NULL)) == NULL)
		return NULL;
	plan_last = e;
	if (!e->valid || e->direct == NULL ||
		e->pstmt != pstmt || e->subplan != outerPlan(mt))
		return NULL;
	return e;
}

/*
 * An entry for mt, node of pstmt that updates relid, to fill in, valid and
 * with its direct path unknown (NULL), and the plan's memory context the
 * current one; or NULL, the memory context unchanged, if mt's plan is not
 * one the plan cache keeps, or was found too often.  The caller sets
 * direct last, once everything is found, and switches back.
 */
VersionPlanEntry *
version_plan_keep(PlannedStmt *pstmt, ModifyTable *mt, Oid relid)
{
	MemoryContext plancxt = GetMemoryChunkContext(mt);
	VersionPlanEntry *e;
	bool		found;

	if (strcmp(plancxt->name, "CachedPlan") != 0)
		return NULL;
	if (plan_entries == NULL)
	{
		HASHCTL		info;

		memset(&info, 0, sizeof(info));
		info.keysize = sizeof(ModifyTable *);
		info.entrysize = sizeof(VersionPlanEntry);
		plan_entries = hash_create("lockctl version plans", 64, &info,
								   HASH_ELEM | HASH_BLOBS);
	}
	e = hash_search(plan_entries, &mt, HASH_FIND, NULL);
	if (e == NULL)
	{
		/* what can fail first, then the entry and its callback */
		MemoryContextCallback *cb = MemoryContextAlloc(plancxt,
													   sizeof(MemoryContextCallback));

		e = hash_search(plan_entries, &mt, HASH_ENTER, &found);
		e->fills = 0;
		e->direct = NULL;
		cb->func = version_plan_forget;
		cb->arg = mt;
		MemoryContextRegisterResetCallback(plancxt, cb);
	}
	if (e->fills >= VERSION_PLAN_FILLS)
	{
		e->valid = false;
		return NULL;
	}
	e->fills++;
	e->pstmt = pstmt;
	e->subplan = outerPlan(mt);
	e->relid = relid;
	e->valid = true;
	e->direct = NULL;
	MemoryContextSwitchTo(plancxt);
	return e;
}
