/*-------------------------------------------------------------------------
 *
 * reserve.c
 *	  Reservations: pools and the holds taken on them.
 *	  (Not built yet: see issue 5.)
 *
 * src/reserve.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "lockctl.h"

void
ReserveInit(void)
{
}

Size
ReserveShmemSize(void)
{
	return 0;
}

void
ReserveShmemRequest(void)
{
}

void
ReserveShmemStartup(void)
{
}
