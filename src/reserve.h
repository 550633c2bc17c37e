/*-------------------------------------------------------------------------
 *
 * reserve.h
 *	  What reserve.c offers the other C parts of reservations
 *	  (reserve_calendar.c, reserve_slot.c): the role a hold belongs to,
 *	  whether the per-role caps are on, and what a slot row must be.
 *
 * src/reserve.h
 *
 *-------------------------------------------------------------------------
 */
#ifndef LOCKCTL_RESERVE_H
#define LOCKCTL_RESERVE_H

#include "postgres.h"

#include "common/int.h"
#include "datatype/timestamp.h"
#include "fmgr.h"

/* The role a call acts for: SET ROLE's role, else the session user. */
extern Oid	ReserveActingRole(void);

/* Whether that role has the privileges of the role named owner. */
extern bool ReserveMayActFor(const char *owner);

/*
 * reserve_caps.c: whether lockctl.max_holds_per_role or
 * lockctl.max_kept_holds_per_role is set (above 0) in this session: only
 * then is a new hold counted against them (lockctl_internal.check_role_caps).
 */
extern bool ReserveRoleCapsOn(void);
extern bool ReserveLockRoleCaps(const char *role);
extern void ReserveUnlockRoleCaps(const char *role);
extern bool ReserveCheckRoleCaps(const char *role, int32 adding);

/*
 * The direct paths of a sale's steps, for lockctl.reserve and confirm
 * (reserve_sale.c); each says when the statement must do the step
 * instead, having written nothing.  reserve_pool.c: the pool named
 * resource (false: the statement decides; else *found, and its id and
 * slot count).  reserve_slot.c: quantity units taken from a free slot (1,
 * with the slot and the pool's max_per_holder; 0: none free and
 * unlocked; -1: the statement), and confirmed in the slot (false: the
 * statement).  reserve_holder.c: holder's count charged (false: the
 * statement).  reserve_hold.c: a live hold inserted (false: the
 * statement), and confirmed (1, with its pool, slot and quantity; 0: no
 * row matched; -1: the statement).
 */
extern bool ReservePoolOf(Datum resource, int64 *id, int32 *slots, bool *found);
extern int	ReserveTakeSlot(int64 pool, int32 start, int32 slots, int64 quantity,
							int32 *slot, int64 *maxph, bool *maxph_null);
extern bool ReserveConfirmSlot(int64 pool, int32 slot, int64 quantity);
extern bool ReserveChargeHolder(int64 pool, Datum holder, int64 delta, int64 *units);
extern bool ReserveInsertHold(const Datum *values, const bool *nulls, int64 *id);
extern int	ReserveConfirmHold(int64 id, TimestampTz at, int64 *pool, int32 *slot,
							   int64 *quantity);
/* reserve_hold.c: the OID of a label of an enum type (InvalidOid: none) */
extern Oid	ReserveEnumValue(Oid typid, const char *label);

/* reserve_checks.c */
extern bool ReserveStatusIsHeld(Oid status);
extern PGDLLEXPORT Datum lockctl_is_slot_row(PG_FUNCTION_ARGS);

/* lease_mark.c: the default of lockctl.reservations.id */
extern PGDLLEXPORT Datum lockctl_era_nextval(PG_FUNCTION_ARGS);

/*
 * The invariant of a slot row (the CHECK pool_slots_not_oversold, which
 * calls lockctl_is_slot_row): held >= 0, confirmed >= 0, held + confirmed
 * <= capacity, 0 <= kept <= held.  A sum past bigint's range is false here;
 * the CHECK raises 22003 for it, as the SQL's + did.  Shared by the CHECK
 * and the slot writes that keep it without the executor (reserve_slot.c).
 */
static inline bool
ReserveSlotRowOk(int64 held, int64 confirmed, int64 capacity, int64 kept)
{
	int64		sum;

	return held >= 0 && confirmed >= 0 && kept >= 0 && kept <= held &&
		!pg_add_s64_overflow(held, confirmed, &sum) && sum <= capacity;
}

#endif							/* LOCKCTL_RESERVE_H */
