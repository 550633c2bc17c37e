/*-------------------------------------------------------------------------
 *
 * reserve.h
 *	  What reserve.c offers the other C parts of reservations
 *	  (reserve_calendar.c): the role a hold belongs to and whether the
 *	  per-role caps are on.
 *
 * src/reserve.h
 *
 *-------------------------------------------------------------------------
 */
#ifndef LOCKCTL_RESERVE_H
#define LOCKCTL_RESERVE_H

#include "postgres.h"

/* The role a call acts for: SET ROLE's role, else the session user. */
extern Oid	ReserveActingRole(void);

/*
 * Whether lockctl.max_holds_per_role or lockctl.max_kept_holds_per_role
 * is set (above 0) in this session: only then is a new hold counted
 * against them (lockctl_internal.check_role_caps).
 */
extern bool ReserveRoleCapsOn(void);

/* reserve_checks.c */
extern bool ReserveStatusIsHeld(Oid status);

#endif							/* LOCKCTL_RESERVE_H */
