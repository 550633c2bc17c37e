/*-------------------------------------------------------------------------
 *
 * reserve.c
 *	  Reservations: pools and the holds taken on them.
 *
 * Pools, their slots and their holds are ordinary tables in schema lockctl
 * (crash-safe, replicated, dumped), and every function that changes them is
 * written in PL/pgSQL in src/reserve.sql, beside this file: each of them is
 * a handful of statements whose plans PL/pgSQL prepares once per session
 * and keeps, which is what a C version over SPI with SPI_keepplan would do.
 * The cost of a reserve is the row locks, index entries and the commit, not
 * the language around them.  README.md (Reservations) has the design
 * (slots, lock order, what happens near sell-out); the measurements behind
 * it are in the git history of doc/reserve.md.
 *
 * Reservations keep nothing in shared memory: what they need to share is
 * in the tables, guarded by row locks.  The hooks below exist because
 * lockctl.c calls one set per concept.
 *
 * src/reserve.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "lockctl.h"

/*
 * Called by _PG_init.  Reservations register no hooks of their own: their
 * settings (lockctl.expiry_interval, expiry_batch_size, retention) are the
 * expiry worker's and are defined in lockctl.c.
 */
void
ReserveInit(void)
{
}

/*
 * Reservations need no shared memory.
 */
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
