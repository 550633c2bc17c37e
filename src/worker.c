/*-------------------------------------------------------------------------
 *
 * worker.c
 *	  The background worker that expires holds.
 *	  (Not built yet: see issue 5.)
 *
 * src/worker.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "lockctl.h"

void
ExpiryWorkerInit(void)
{
}

Size
ExpiryWorkerShmemSize(void)
{
	return 0;
}

void
ExpiryWorkerShmemStartup(void)
{
}
