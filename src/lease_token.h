/*-------------------------------------------------------------------------
 *
 * lease_token.h
 *	  Declarations shared by lease_token.c (tokens, the state file, the
 *	  shutdown dump) and lease_mark.c (the high-water mark each database
 *	  keeps of the tokens and ids issued in it).  lease.c needs only what
 *	  lease.h declares.
 *
 * src/lease_token.h
 *
 *-------------------------------------------------------------------------
 */
#ifndef LOCKCTL_LEASE_TOKEN_H
#define LOCKCTL_LEASE_TOKEN_H

#include "lease.h"

/* The fields of a token (lease.h has the layout). */
#define LEASE_TOKEN_ERA_MAX			LEASE_TOKEN_TLI_MAX
#define LEASE_TOKEN_ERA(t)			((uint32) (((uint64) (t)) >> LEASE_TOKEN_TLI_SHIFT))
#define LEASE_TOKEN_EPOCH(t)		((((uint64) (t)) >> LEASE_TOKEN_EPOCH_SHIFT) & LEASE_TOKEN_EPOCH_MAX)
#define LEASE_TOKEN_MAKE(era, epoch, counter) \
	((int64) (((uint64) (era) << LEASE_TOKEN_TLI_SHIFT) | \
			  ((uint64) (epoch) << LEASE_TOKEN_EPOCH_SHIFT) | (uint64) (counter)))

/*
 * Ids that must stay unique across failovers (hold ids) carry the era in
 * the same bits as tokens, above a sequence value of at most 48 bits.
 */
#define LEASE_ID_SEQ_MAX			((INT64CONST(1) << LEASE_TOKEN_TLI_SHIFT) - 1)

/* The current (era, timeline, epoch, counter) of this server. */
typedef struct LeaseTokenNow
{
	uint32		era;
	TimeLineID	tli;
	uint64		epoch;
	uint64		counter;
	bool		from_pg_upgrade;
} LeaseTokenNow;

/* lease_token.c */
extern void LeaseTokenGetNow(LeaseTokenNow *now);
extern bool LeaseTokenRaise(uint32 era, uint64 epoch, const char *why);

/* lease_mark.c */
extern bool LeaseMarkCovers(uint32 era, TimeLineID tli, uint64 epoch);
extern int64 LeaseEraNextval(Oid seq);

#endif							/* LOCKCTL_LEASE_TOKEN_H */
