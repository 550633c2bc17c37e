/*-------------------------------------------------------------------------
 *
 * reserve.c
 *	  What reservations (src/reserve.sql) need from C: the role a hold
 *	  belongs to, and whether the caller may act on it.  The caps on a
 *	  role's holds are reserve_caps.c's.
 *
 * A hold belongs to the role that took it: the session's role at the call
 * (SET ROLE's, else the session user's), which SECURITY DEFINER does not
 * hide, unlike current_user; reserve stores its name in
 * reservations.taken_by.  confirm, cancel and extend act on a hold only for
 * that role and roles that have its privileges (has_privs_of_role: members
 * that inherit it, superusers); to every other role the hold does not
 * exist.  Idempotency keys are scoped the same way: one per (pool, role).
 *
 * src/reserve.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "miscadmin.h"
#include "utils/acl.h"
#include "utils/builtins.h"

#include "lockctl.h"
#include "reserve.h"

/*
 * The role a call acts for: SET ROLE's role, else the session user.
 */
Oid
ReserveActingRole(void)
{
	Oid			role = GetCurrentRoleId();

	return OidIsValid(role) ? role : GetSessionUserId();
}

/*
 * lockctl_internal.acting_role() returns name: the name of the role a call
 * acts for, which reserve records as a hold's taken_by.
 */
PG_FUNCTION_INFO_V1(lockctl_acting_role);
Datum
lockctl_acting_role(PG_FUNCTION_ARGS)
{
	Name		result = (Name) palloc0(NAMEDATALEN);

	namestrcpy(result, GetUserNameFromId(ReserveActingRole(), false));
	PG_RETURN_NAME(result);
}

/*
 * Whether the role a call acts for has the privileges of the role named
 * owner: lockctl_internal.may_act_for's test, which the direct confirm
 * (reserve_hold.c) makes too.
 */
bool
ReserveMayActFor(const char *owner)
{
	Oid			self = ReserveActingRole();
	Oid			role = get_role_oid(owner, true);

	if (!OidIsValid(role))
		return superuser_arg(self);
	return has_privs_of_role(self, role);
}

/*
 * lockctl_internal.may_act_for(owner name) returns boolean: whether the
 * role a call acts for has the privileges of role owner (it is owner, a
 * member that inherits it, or a superuser).  An owner that no longer
 * exists (a hold's taker that was dropped) is for superusers only.  NULL
 * is nobody's.
 */
PG_FUNCTION_INFO_V1(lockctl_may_act_for);
Datum
lockctl_may_act_for(PG_FUNCTION_ARGS)
{
	if (PG_ARGISNULL(0))
		PG_RETURN_BOOL(false);
	PG_RETURN_BOOL(ReserveMayActFor(NameStr(*PG_GETARG_NAME(0))));
}
