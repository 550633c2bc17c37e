/*-------------------------------------------------------------------------
 *
 * lease.c
 *	  Leases with fencing tokens, kept in shared memory.
 *	  (Not built yet: see issue 4.)
 *
 * src/lease.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "lockctl.h"

void
LeaseInit(void)
{
}

Size
LeaseShmemSize(void)
{
	return 0;
}

void
LeaseShmemRequest(void)
{
}

void
LeaseShmemStartup(void)
{
}
