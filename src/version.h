/*-------------------------------------------------------------------------
 *
 * version.h
 *	  Declarations shared by the files of version-checked updates:
 *	  version_trigger.c (the trigger, enable/disable, the helpers below),
 *	  version_update.c (update_versioned and its plans) and
 *	  version_stats.c (the setting, the counters in shared memory, the view
 *	  and the reset).
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
#include "utils/relcache.h"

#include "lockctl.h"

/* Name given to the trigger enable_versioning() creates. */
#define VERSION_TRIGGER_NAME		"lockctl_version"

/* Name of the C trigger function, in schema lockctl. */
#define VERSION_TRIGGER_FUNC		"version_trigger"

/* How an UPDATE may state the version it read (trigger argument 2). */
typedef enum VersionMode
{
	VERSION_MODE_STRICT,		/* SET version = <read> only */
	VERSION_MODE_ORM			/* also SET version = <read> + 1 */
} VersionMode;

/* The counters of one versioned table (version_stats.c). */
typedef enum VersionCounter
{
	VSTAT_CHECKED,				/* UPDATEs whose version check passed */
	VSTAT_CONFLICTS,			/* UPDATEs refused with 40001 */
	VSTAT_BLIND,				/* UPDATEs refused as blind writes */
	VSTAT_INSERTS,				/* INSERTs seen by the trigger */
	VSTAT_COUNT
} VersionCounter;

typedef struct VersionStatsEntry VersionStatsEntry;

/* version_stats.c */
extern void version_stats_bump(VersionStatsEntry *e, VersionCounter c);
extern VersionStatsEntry *version_stats_entry(Oid relid, bool create);
extern void version_stats_remove(Oid relid);

/* version_trigger.c: what the other files need to know of the trigger */
extern Oid	version_trigger_fn(bool missing_ok);
extern Trigger *version_find_trigger(Relation rel, Oid fnoid);
extern AttrNumber version_check_column(Relation rel, const char *colname,
									   Oid *typid, bool enabling);
extern int64 version_from_datum(Datum d, Oid typid);
extern int64 version_type_max(Oid typid);
extern int64 version_type_min(Oid typid);

#endif							/* LOCKCTL_VERSION_H */
