
-- ---------------------------------------------------------------------------
-- A lease's NOTIFY channel and session binding (src/lease_notify.c,
-- src/lease_session.c)
-- ---------------------------------------------------------------------------

CREATE FUNCTION lockctl_internal.lease_options(OUT resource text,
                                               OUT token bigint,
                                               OUT roleid oid,
                                               OUT notify text,
                                               OUT session_pid integer,
                                               OUT ended text)
    RETURNS SETOF record
    LANGUAGE c VOLATILE
    AS 'MODULE_PATHNAME', 'lockctl_lease_options';
COMMENT ON FUNCTION lockctl_internal.lease_options() IS
    'lockctl internal, behind the view lockctl.lease_options';

CREATE VIEW lockctl.lease_options AS
    SELECT o.resource, o.token,
           pg_catalog.pg_get_userbyid(o.roleid) AS acquired_by,
           o.notify, o.session_pid, o.ended
      FROM lockctl_internal.lease_options() AS o;
COMMENT ON VIEW lockctl.lease_options IS
    'the leases of this database acquired with notify or bind => ''session'' (ended: how a lease ended whose NOTIFY is not sent yet); token and notify are shown only to the role that took the lease, roles with its privileges and superusers';
GRANT SELECT ON lockctl.lease_options TO PUBLIC;
