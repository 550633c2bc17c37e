/*-------------------------------------------------------------------------
 *
 * version.h
 *	  Declarations shared by the files of version-checked updates:
 *	  version_trigger.c (the trigger, enable/disable, the helpers below),
 *	  version_update.c (update_versioned and its plans),
 *	  version_statement.c (what each statement does with the version: the
 *	  executor hooks), version_direct.c (the checked UPDATE without the
 *	  row trigger), version_plan.c (what was found of a generic plan, kept
 *	  with it) and version_stats.c (the setting, the counters in shared
 *	  memory, the view and the reset).
 *
 * src/version.h
 *
 *-------------------------------------------------------------------------
 */
#ifndef LOCKCTL_VERSION_H
#define LOCKCTL_VERSION_H

#include "postgres.h"

#include "access/htup.h"
#include "commands/trigger.h"
#include "executor/execdesc.h"
#include "nodes/nodes.h"
#include "utils/relcache.h"

#include "lockctl.h"

/* Name given to the trigger enable_versioning() creates. */
#define VERSION_TRIGGER_NAME		"lockctl_version"

/* Name of the C trigger function, in schema lockctl. */
#define VERSION_TRIGGER_FUNC		"version_trigger"

/*
 * How a write proves the version it read (trigger argument 2).  Every mode
 * takes a WHERE clause that compares the version with a value the client
 * sent; they differ in what else they take (docs/versioning.md).
 */
typedef enum VersionMode
{
	VERSION_MODE_STRICT,		/* or SET version = <read>; DELETE compares */
	VERSION_MODE_ORM,			/* or SET version = <read> or <read> + 1;
								 * DELETE by key alone too */
	VERSION_MODE_SERVER			/* only the WHERE clause: the database keeps
								 * the counter, the client never sets it */
} VersionMode;

/*
 * What a statement assigns to the version column of one result relation,
 * from the least to the most suspicious (version_statement.c).
 */
typedef enum VersionAssign
{
	VASSIGN_OVERWRITE,			/* version = version: overwrite on purpose */
	VASSIGN_SENT,				/* a value not derived from the row's version */
	VASSIGN_SELF,				/* derived from it: version + 1, COALESCE(...) */
	VASSIGN_NONE,				/* not assigned at all */
	VASSIGN_UNKNOWN				/* from a source lockctl does not follow */
} VersionAssign;

/*
 * The verdict on one result relation of one statement: what the trigger
 * needs to know of the statement that fires it.  Made when the statement
 * starts (version_statement.c), in the statement's memory, and handed to
 * the trigger through its FmgrInfo; each statement has its own, so nested
 * statements (functions, triggers) never see each other's.
 */
typedef struct VersionVerdict
{
	CmdType		operation;		/* UPDATE, DELETE, MERGE, or INSERT for
								 * ON CONFLICT DO UPDATE */
	bool		cascade;		/* a referential action (ON DELETE CASCADE) */
	bool		uv;				/* lockctl.update_versioned()'s own UPDATE */
	bool		where_checked;	/* UPDATEs: version = <client> in WHERE */
	bool		delete_checked; /* DELETEs: version = <client> in WHERE */
	VersionAssign assign;		/* what the UPDATE sets the version to */
	struct VersionModifyGroup *group;	/* rows seen, per ModifyTable node */
} VersionVerdict;

/* The rows one ModifyTable node's triggers saw, to count stale matches. */
typedef struct VersionModifyGroup
{
	int64		rows;
} VersionModifyGroup;

/* The counters of one versioned table (version_stats.c). */
typedef enum VersionCounter
{
	VSTAT_CHECKED,				/* UPDATEs whose version check passed */
	VSTAT_CONFLICTS,			/* UPDATEs refused with 40001 */
	VSTAT_BLIND,				/* UPDATEs refused as blind writes */
	VSTAT_INSERTS,				/* INSERTs seen by the trigger */
	VSTAT_STALE,				/* checked statements that matched no row */
	VSTAT_DELETES,				/* DELETEs whose version check passed */
	VSTAT_COUNT
} VersionCounter;

typedef struct VersionStatsEntry VersionStatsEntry;

/* version_stats.c */
extern void version_stats_bump(VersionStatsEntry *e, VersionCounter c);
extern void version_stats_add(VersionStatsEntry *e, VersionCounter c, uint64 n);
extern VersionStatsEntry *version_stats_entry(Oid relid, bool create);
extern void version_stats_remove(Oid relid);

/*
 * What the trigger keeps in its FmgrInfo's fn_extra for the rest of a
 * statement.  version_statement.c makes it before the first row, with the
 * verdict; the trigger fills in the rest at its first call.
 */
typedef struct VersionTrigState
{
	bool		ready;			/* the fields below verdict are set */
	VersionVerdict *verdict;	/* NULL: not seen when the statement started */
	bool		looked_up;		/* verdict searched among running statements */
	Oid			tgoid;
	Oid			relid;
	AttrNumber	attnum;
	Oid			typid;
	VersionMode mode;
	Oid			rootrelid;		/* the table versioning was enabled on */
	VersionStatsEntry *stats;	/* NULL: not counted (table full, or temporary) */
	ItemPointerData last_update;	/* the row last checked for UPDATE */
} VersionTrigState;

/* version_statement.c */
extern void VersionStatementInit(void);
extern VersionVerdict *version_running_verdict(Oid rootrelid);
extern bool version_op_is_equality(Oid opno);
extern Plan *version_find_scan(Plan *plan, Index rti);

/*
 * Which rule the version of an updated row must obey (the trigger's, for
 * each verdict; version_row_match): the rows' own check, whether the
 * trigger or the statement's projection (version_direct.c) makes it.
 */
typedef enum VersionRowKind
{
	VROW_NEXT,					/* anything: the WHERE clause proved it, or
								 * version = version */
	VROW_EXACT,					/* the version assigned is the current one
								 * (NULL matches NULL) */
	VROW_ORM,					/* ... or the current one + 1 (mode 'orm') */
	VROW_WHERE_SENT				/* compared in WHERE and assigned: the
								 * current one or the next, not NULL */
} VersionRowKind;

/*
 * What the direct path (version_direct.c) needs of a plan: found once per
 * plan, kept with a generic plan (version_plan.c).
 */
typedef struct VersionDirectPlan
{
	List	   *reads;			/* the values (Const or Param nodes of the
								 * plan) the scan compares the version with,
								 * through an integer equality */
	bool		params;			/* some of them are parameters */
	Node	   *sent;			/* what the statement sets the version to, or
								 * NULL */
	Oid			typid;			/* the version column's type */
	List	   *tlist;			/* the new-row projection with the version
								 * read + 1, or NIL */
	int			bumpno;			/* its entry (from 0) that stores the
								 * version: a Const set at each execution */
	List	   *colnos;
	/* the projection that checks each row (VersionRowKind), or NIL */
	List	   *rowtlist;
	List	   *rowcolnos;
	Node	   *rowexpr;		/* its call of lockctl_internal.version_next */
	VersionRowKind rowkind;
	bool		rowuv;			/* made for update_versioned()'s UPDATE */
	VersionMode mode;			/* the trigger's mode */
	AttrNumber	vatt;			/* the version column */
} VersionDirectPlan;

/*
 * A statement whose UPDATE checks its rows in its own projection, as the
 * call of lockctl_internal.version_next that it makes (expr) finds it.
 */
typedef struct VersionRowCheck
{
	VersionDirectPlan *dp;		/* the plan's: rowexpr, rowkind, vatt, typid,
								 * mode (outlives the statement) */
	Oid			relid;
	Oid			rootrelid;		/* the table versioning was enabled on */
	bool		counted;		/* its table has counters (not temporary) */
	struct EState *estate;		/* the statement's: es_processed */
	/* set by version_next as it counts, per execution of the statement */
	bool		stats_ready;
	VersionStatsEntry *stats;	/* NULL: not counted */
	bool		passed;			/* a row passed, counted as checked ... */
	uint64		passed_at;		/* ... when es_processed was this */
} VersionRowCheck;

/* version_statement.c */
extern VersionRowCheck *version_running_rowcheck(Node *expr);
/* version_direct.c */
extern void version_rowcheck_unpass(VersionRowCheck *rc);

/* How version_direct_update() left the UPDATE. */
typedef enum VersionDirectPath
{
	VDIRECT_NONE,				/* the trigger checks each row */
	VDIRECT_CONST,				/* the projection stores the version read + 1 */
	VDIRECT_ROW					/* the projection checks each row */
} VersionDirectPath;

/* version_direct.c */
extern VersionDirectPlan *version_direct_plan(QueryDesc *queryDesc,
											  ModifyTableState *mtstate, int t,
											  AttrNumber vatt, VersionVerdict *v);
extern VersionDirectPath version_direct_update(QueryDesc *queryDesc,
											   ModifyTableState *mtstate, int t,
											   VersionVerdict *v,
											   VersionDirectPlan *dp);
extern VersionDirectPlan *version_direct_plan_copy(VersionDirectPlan *dp);
extern void version_uv_begin(Oid relid);
extern void version_uv_end(void);

/*
 * What version_statement.c found of the UPDATE of one ModifyTable node of
 * a generic plan, kept for its next executions (version_plan.c).
 */
typedef struct VersionPlanEntry
{
	ModifyTable *mt;			/* the key */
	PlannedStmt *pstmt;
	Plan	   *subplan;
	Oid			relid;			/* the table it updates */
	bool		valid;			/* nothing changed since it was found */
	int			fills;			/* times it was found */
	int			tgidx;			/* lockctl's trigger in the trigger
								 * descriptor */
	AttrNumber	vatt;
	bool		where_checked;
	VersionAssign assign;
	VersionDirectPlan *direct;	/* in the plan's memory */
} VersionPlanEntry;

/* version_plan.c */
extern VersionPlanEntry *version_plan_find(PlannedStmt *pstmt, ModifyTable *mt);
extern VersionPlanEntry *version_plan_keep(PlannedStmt *pstmt, ModifyTable *mt,
										   Oid relid);
extern void version_plan_invalidate(Oid relid);

/* version_trigger.c: what the other files need to know of the trigger */
extern Oid	version_trigger_fn(bool missing_ok);
extern Oid	version_root_relid(Trigger *trigger, Oid relid);
extern Trigger *version_find_trigger(Relation rel, Oid fnoid);
extern FmgrInfo *version_trigger_finfo(Oid fnoid);
extern AttrNumber version_check_column(Relation rel, const char *colname,
									   Oid *typid, bool enabling);
extern int64 version_from_datum(Datum d, Oid typid);
extern Datum version_to_datum(int64 v, Oid typid);
extern bool version_mode_lookup(const char *name, VersionMode *mode);
extern int64 version_type_max(Oid typid);
extern int64 version_type_min(Oid typid);
extern bool version_row_match(VersionRowKind kind, bool oldnull, int64 oldv,
							  bool newnull, int64 newv);
extern void version_conflict_error(Relation rel, HeapTuple oldtuple,
								   AttrNumber attnum, VersionMode mode,
								   VersionStatsEntry *stats,
								   bool oldnull, int64 oldv,
								   bool newnull, int64 newv);
extern int64 version_next_of(Relation rel, HeapTuple oldtuple, Oid typid,
							 bool oldnull, int64 oldv);

#endif							/* LOCKCTL_VERSION_H */
