/*-------------------------------------------------------------------------
 *
 * version.c
 *	  Version-checked updates: the trigger and the versioned update.
 *	  (Not built yet: see issue 3.)
 *
 * src/version.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "lockctl.h"

void
VersionInit(void)
{
}

Size
VersionShmemSize(void)
{
	return 0;
}

void
VersionShmemRequest(void)
{
}

void
VersionShmemStartup(void)
{
}
