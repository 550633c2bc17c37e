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
#include "fmgr.h"

/* The role a call acts for: SET ROLE's role, else the session user. */
extern Oid	ReserveActingRole(void);

/* Whether that role has the privileges of the role named owner. */
extern bool ReserveMayActFor(const char *owner);

/*
 * Whether lockctl.max_holds_per_role or lockctl.max_kept_holds_per_role
 * is set (above 0) in this session: only then is a new hold counted
 * against them (lockctl_internal.check_role_caps).
 */
extern bool ReserveRoleCapsOn(void);

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
