--
-- claim_request and complete_request under a hostile search_path.  They are
-- C functions that run their SQL through SPI as the extension's owner, with
-- plans kept for the backend's life and analysed again under the caller's
-- search_path whenever it changes.  Traps planted in a schema searched
-- before pg_catalog (operators =, <= on the types the SQL compares, the
-- functions it calls) and tables named request_keys in that schema and in
-- pg_temp must never be used.  This file starts in a fresh backend, so the
-- plans are first prepared under the hostile path, then analysed again
-- under another.
--
SET client_min_messages = warning;
CREATE SCHEMA reqtrap;
CREATE TABLE reqtrap.hijack (what text);
GRANT USAGE ON SCHEMA reqtrap TO PUBLIC;
GRANT INSERT, SELECT ON reqtrap.hijack TO PUBLIC;
CREATE FUNCTION reqtrap.eq_text(a text, b text) RETURNS boolean LANGUAGE plpgsql AS
$$BEGIN INSERT INTO reqtrap.hijack VALUES ('=(text,text)'); RETURN a OPERATOR(pg_catalog.=) b; END$$;
CREATE FUNCTION reqtrap.eq_name(a name, b name) RETURNS boolean LANGUAGE plpgsql AS
$$BEGIN INSERT INTO reqtrap.hijack VALUES ('=(name,name)'); RETURN a OPERATOR(pg_catalog.=) b; END$$;
CREATE FUNCTION reqtrap.eq_xid8(a xid8, b xid8) RETURNS boolean LANGUAGE plpgsql AS
$$BEGIN INSERT INTO reqtrap.hijack VALUES ('=(xid8,xid8)'); RETURN a OPERATOR(pg_catalog.=) b; END$$;
CREATE FUNCTION reqtrap.le_tstz(a timestamptz, b timestamptz) RETURNS boolean LANGUAGE plpgsql AS
$$BEGIN INSERT INTO reqtrap.hijack VALUES ('<=(timestamptz,timestamptz)'); RETURN a OPERATOR(pg_catalog.<=) b; END$$;
CREATE OPERATOR reqtrap.= (LEFTARG = text, RIGHTARG = text, FUNCTION = reqtrap.eq_text);
CREATE OPERATOR reqtrap.= (LEFTARG = name, RIGHTARG = name, FUNCTION = reqtrap.eq_name);
CREATE OPERATOR reqtrap.= (LEFTARG = xid8, RIGHTARG = xid8, FUNCTION = reqtrap.eq_xid8);
CREATE OPERATOR reqtrap.<= (LEFTARG = timestamptz, RIGHTARG = timestamptz, FUNCTION = reqtrap.le_tstz);
CREATE FUNCTION reqtrap.pg_current_xact_id() RETURNS xid8 LANGUAGE plpgsql AS
$$BEGIN INSERT INTO reqtrap.hijack VALUES ('pg_current_xact_id()'); RETURN pg_catalog.pg_current_xact_id(); END$$;
CREATE FUNCTION reqtrap.pg_current_xact_id_if_assigned() RETURNS xid8 LANGUAGE plpgsql AS
$$BEGIN INSERT INTO reqtrap.hijack VALUES ('pg_current_xact_id_if_assigned()'); RETURN pg_catalog.pg_current_xact_id_if_assigned(); END$$;
CREATE FUNCTION reqtrap.clock_timestamp() RETURNS timestamptz LANGUAGE plpgsql AS
$$BEGIN INSERT INTO reqtrap.hijack VALUES ('clock_timestamp()'); RETURN pg_catalog.clock_timestamp(); END$$;
CREATE FUNCTION reqtrap.now() RETURNS timestamptz LANGUAGE plpgsql AS
$$BEGIN INSERT INTO reqtrap.hijack VALUES ('now()'); RETURN pg_catalog.now(); END$$;
-- Tables with the name and columns of lockctl's, where an unqualified name
-- would land: the temporary schema (searched first for tables) and reqtrap.
CREATE TABLE reqtrap.request_keys (LIKE lockctl.request_keys);
GRANT ALL ON reqtrap.request_keys TO PUBLIC;
CREATE TEMP TABLE request_keys (LIKE lockctl.request_keys);
GRANT ALL ON pg_temp.request_keys TO PUBLIC;
CREATE ROLE regress_reqsp_app;
SET ROLE regress_reqsp_app;
SET search_path = reqtrap, pg_catalog;
-- First use in this backend: the plans are prepared under this path.
BEGIN;
SELECT lockctl.claim_request('sp-1', fingerprint => 'f') IS NULL AS go_ahead;
SELECT lockctl.claim_request('sp-1', fingerprint => 'f') IS NULL AS still_mine;
SELECT lockctl.complete_request('sp-1', '{"n": 1}');
COMMIT;
SELECT lockctl.claim_request('sp-1', fingerprint => 'f') AS replay;
SELECT lockctl.claim_request('sp-1', fingerprint => 'g');
SELECT lockctl.complete_request('sp-1', '{"n": 2}');
-- An expired key is taken over (the <= of the expiry).
BEGIN;
SELECT lockctl.claim_request('sp-2', '1 millisecond') IS NULL AS go_ahead;
COMMIT;
SELECT pg_catalog.pg_sleep(0.01);
SELECT lockctl.claim_request('sp-2') IS NULL AS expired_key_taken_over;
-- Another path: the plans are analysed again, and still find lockctl's.
SET search_path = pg_temp, reqtrap, pg_catalog;
SELECT lockctl.claim_request('sp-1', fingerprint => 'f') AS replay_again;
BEGIN;
SELECT lockctl.claim_request('sp-3') IS NULL AS go_ahead;
SELECT lockctl.complete_request('sp-3', '{"n": 3}');
COMMIT;
-- The traps are armed: an unqualified = under this path is the planted one.
SELECT 'x'::text = 'x'::text AS control_hijacked;
RESET search_path;
RESET ROLE;
-- Nothing planted ran but the control, nothing landed in the planted tables, and lockctl's
-- table has the keys.
SELECT what, count(*) FROM reqtrap.hijack GROUP BY what ORDER BY what;
SELECT count(*) AS trap_rows FROM reqtrap.request_keys;
SELECT count(*) AS temp_rows FROM pg_temp.request_keys;
SELECT key, state, fingerprint, result FROM lockctl.requests
 WHERE scope = 'regress_reqsp_app' ORDER BY key;
DELETE FROM lockctl.request_keys WHERE scope = 'regress_reqsp_app';
DROP TABLE pg_temp.request_keys;
DROP SCHEMA reqtrap CASCADE;
DROP ROLE regress_reqsp_app;
