/*-------------------------------------------------------------------------
 *
 * version.h
 *	  Declarations internal to version-checked updates (version.c).
 *
 * src/version.h
 *
 *-------------------------------------------------------------------------
 */
#ifndef LOCKCTL_VERSION_H
#define LOCKCTL_VERSION_H

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

#endif							/* LOCKCTL_VERSION_H */
