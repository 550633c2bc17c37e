-- Version-checked updates: lockctl.enable_versioning(), the trigger,
-- lockctl.update_versioned(), the counters.  After each statement that must
-- fail, the SQLSTATE is echoed.

CREATE TABLE acc (id int PRIMARY KEY, owner text, balance numeric NOT NULL,
                  version bigint);

--
-- enable_versioning: bad input changes nothing
--
SELECT lockctl.enable_versioning(NULL);
\echo :LAST_ERROR_SQLSTATE
SELECT lockctl.enable_versioning('acc', NULL);
\echo :LAST_ERROR_SQLSTATE
SELECT lockctl.enable_versioning('acc', 'version', NULL);
\echo :LAST_ERROR_SQLSTATE
SELECT lockctl.enable_versioning('acc', 'version', 'lenient');
\echo :LAST_ERROR_SQLSTATE
SELECT lockctl.enable_versioning('acc', 'version', '');
\echo :LAST_ERROR_SQLSTATE
SELECT lockctl.enable_versioning('no_such_table');
\echo :LAST_ERROR_SQLSTATE
SELECT lockctl.enable_versioning(4242424242::oid::regclass);
\echo :LAST_ERROR_SQLSTATE
SELECT lockctl.enable_versioning('acc', 'no_such_column');
\echo :LAST_ERROR_SQLSTATE
SELECT lockctl.enable_versioning('acc', 'owner');
\echo :LAST_ERROR_SQLSTATE
SELECT lockctl.enable_versioning('acc', 'balance');
\echo :LAST_ERROR_SQLSTATE
SELECT lockctl.enable_versioning('acc', 'xmin');
\echo :LAST_ERROR_SQLSTATE
SELECT lockctl.enable_versioning('acc', repeat('x', 100));
\echo :LAST_ERROR_SQLSTATE
CREATE TABLE gen (id int PRIMARY KEY, v int GENERATED ALWAYS AS (id * 2) STORED,
                  w int GENERATED ALWAYS AS IDENTITY);
SELECT lockctl.enable_versioning('gen', 'v');
\echo :LAST_ERROR_SQLSTATE
SELECT lockctl.enable_versioning('gen', 'w');
\echo :LAST_ERROR_SQLSTATE
CREATE VIEW acc_view AS SELECT * FROM acc;
SELECT lockctl.enable_versioning('acc_view');
\echo :LAST_ERROR_SQLSTATE
CREATE MATERIALIZED VIEW acc_mv AS SELECT * FROM acc;
SELECT lockctl.enable_versioning('acc_mv');
\echo :LAST_ERROR_SQLSTATE
CREATE SEQUENCE acc_seq;
SELECT lockctl.enable_versioning('acc_seq');
\echo :LAST_ERROR_SQLSTATE
SELECT lockctl.enable_versioning('acc_pkey');
\echo :LAST_ERROR_SQLSTATE
CREATE FOREIGN DATA WRAPPER regress_lockctl_fdw;
CREATE SERVER regress_lockctl_srv FOREIGN DATA WRAPPER regress_lockctl_fdw;
CREATE FOREIGN TABLE acc_ft (id int, version int) SERVER regress_lockctl_srv;
SELECT lockctl.enable_versioning('acc_ft');
\echo :LAST_ERROR_SQLSTATE
SELECT lockctl.enable_versioning('pg_catalog.pg_class', 'relpages');
\echo :LAST_ERROR_SQLSTATE
-- only the owner (or a superuser) may enable or disable
CREATE ROLE regress_lockctl_other;
GRANT ALL ON acc TO regress_lockctl_other;
SET ROLE regress_lockctl_other;
SELECT lockctl.enable_versioning('acc');
\echo :LAST_ERROR_SQLSTATE
RESET ROLE;
-- none of that left a trigger behind
SELECT count(*) AS triggers FROM pg_trigger
 WHERE tgrelid IN ('acc'::regclass, 'gen'::regclass, 'acc_ft'::regclass);

--
-- enable, and enabling twice
--
SELECT lockctl.enable_versioning('acc');
SELECT lockctl.enable_versioning('acc');
\echo :LAST_ERROR_SQLSTATE
SELECT tgname, tgtype, pg_get_triggerdef(oid) FROM pg_trigger
 WHERE tgrelid = 'acc'::regclass;

--
-- INSERT: version 1 unless given
--
INSERT INTO acc (id, owner, balance) VALUES (1, 'ann', 1000), (2, 'bob', 50);
INSERT INTO acc VALUES (3, 'cy', 10, 7);
INSERT INTO acc VALUES (4, 'dee', 10, NULL);
COPY acc (id, owner, balance) FROM stdin;
5	eve	5
\.
SELECT * FROM acc ORDER BY id;

--
-- UPDATE: the version read is the version sent
--
-- the seed: balance 1000 at version 1; a write computed from it succeeds
UPDATE acc SET balance = 900, version = 1 WHERE id = 1 RETURNING *;
-- a second write computed from the same read is refused, nothing changes
UPDATE acc SET balance = 800, version = 1 WHERE id = 1;
\echo :LAST_ERROR_SQLSTATE
SELECT * FROM acc WHERE id = 1;
-- a version ahead of the row is refused too, with a hint about ORM mode
UPDATE acc SET balance = 800, version = 3 WHERE id = 1;
\echo :LAST_ERROR_SQLSTATE
UPDATE acc SET balance = 800, version = version + 1 WHERE id = 1;
\echo :LAST_ERROR_SQLSTATE
UPDATE acc SET balance = 800, version = NULL WHERE id = 1;
\echo :LAST_ERROR_SQLSTATE
-- a blind write (no version assigned) is refused with its own SQLSTATE
UPDATE acc SET balance = 0 WHERE id = 1;
\echo :LAST_ERROR_SQLSTATE
UPDATE acc SET balance = 0;
\echo :LAST_ERROR_SQLSTATE
-- an upsert must assign it as well
INSERT INTO acc VALUES (1, 'ann', 0) ON CONFLICT (id) DO UPDATE SET balance = 0;
\echo :LAST_ERROR_SQLSTATE
INSERT INTO acc VALUES (1, 'ann', 700, 2)
    ON CONFLICT (id) DO UPDATE SET balance = excluded.balance, version = excluded.version
    RETURNING *;
-- assigning version = version overwrites whatever the version, on purpose
UPDATE acc SET balance = balance + 1, version = version WHERE id IN (1, 2)
    RETURNING *;
-- several rows: each must match, else the statement fails as a whole
UPDATE acc SET balance = 0, version = 2 WHERE id IN (1, 2);
\echo :LAST_ERROR_SQLSTATE
SELECT id, balance, version FROM acc WHERE id IN (1, 2) ORDER BY id;
-- the multiple-assignment form counts as assigning the column; a value
-- from a subquery is not followed, and refused
UPDATE acc SET (balance, version) = (1, 4) WHERE id = 1 RETURNING *;
UPDATE acc SET (balance, version) = (SELECT 2, 5) WHERE id = 1 RETURNING *;
\echo :LAST_ERROR_SQLSTATE
UPDATE acc SET (balance, version) = (2, 5) WHERE id = 1 RETURNING *;
-- a NULL version (a row from before versioning) is matched by NULL
UPDATE acc SET version = NULL WHERE id = 4;
\echo :LAST_ERROR_SQLSTATE
ALTER TABLE acc DISABLE TRIGGER lockctl_version;
UPDATE acc SET version = NULL WHERE id = 4;
ALTER TABLE acc ENABLE TRIGGER lockctl_version;
UPDATE acc SET balance = 11, version = 1 WHERE id = 4;
\echo :LAST_ERROR_SQLSTATE
UPDATE acc SET balance = 11, version = NULL WHERE id = 4 RETURNING *;
-- an UPDATE that matches no row checks nothing
UPDATE acc SET balance = 1 WHERE id = 999;
-- the row key in messages: primary key, or ctid without one
CREATE TABLE nokey (a int, version int);
SELECT lockctl.enable_versioning('nokey');
INSERT INTO nokey VALUES (1, NULL);
UPDATE nokey SET a = 2, version = 5;
\echo :LAST_ERROR_SQLSTATE
CREATE TABLE twokey (a int, b text, version smallint, PRIMARY KEY (a, b));
SELECT lockctl.enable_versioning('twokey');
INSERT INTO twokey VALUES (1, 'x y', 32766);
UPDATE twokey SET version = 32765;
\echo :LAST_ERROR_SQLSTATE
-- the version cannot go past its type
UPDATE twokey SET version = 32766 RETURNING *;
UPDATE twokey SET version = 32767;
\echo :LAST_ERROR_SQLSTATE
-- a role that may not read the key sees the ctid instead
CREATE ROLE regress_lockctl_writer;
GRANT UPDATE ON acc TO regress_lockctl_writer;
SET ROLE regress_lockctl_writer;
UPDATE acc SET version = 0;
\echo :LAST_ERROR_SQLSTATE
RESET ROLE;

--
-- ORM mode: SET version = read + 1 WHERE version = read
--
CREATE TABLE orm (id bigint PRIMARY KEY, name text, lock_version integer NOT NULL DEFAULT 0);
SELECT lockctl.enable_versioning('orm', 'lock_version', 'ORM');
INSERT INTO orm (id, name) VALUES (1, 'a');
SELECT * FROM orm;
-- Rails: read 0, send 1 where 0
UPDATE orm SET name = 'b', lock_version = 1 WHERE id = 1 AND lock_version = 0 RETURNING *;
-- a stale Rails write finds no row: the ORM raises StaleObjectError
UPDATE orm SET name = 'c', lock_version = 1 WHERE id = 1 AND lock_version = 0;
-- the strict form is accepted as well
UPDATE orm SET name = 'c', lock_version = 1 WHERE id = 1 RETURNING *;
-- a version behind by two is refused
UPDATE orm SET name = 'd', lock_version = 1 WHERE id = 1;
\echo :LAST_ERROR_SQLSTATE
-- what ORM mode cannot catch: a stale read + 1 that equals the current
-- version, sent without the WHERE clause, looks like a strict write of the
-- current version (no ORM writes without the WHERE clause)
UPDATE orm SET name = 'stale', lock_version = 2 WHERE id = 1 RETURNING *;
-- version = version + 1 without a version predicate is a blind write
UPDATE orm SET name = 'bulk', lock_version = lock_version + 1 RETURNING *;
\echo :LAST_ERROR_SQLSTATE
-- with the predicate it is what TypeORM's update() sends: checked
UPDATE orm SET name = 'bulk', lock_version = lock_version + 1
 WHERE lock_version = 3 RETURNING *;
-- blind writes are refused in ORM mode too
UPDATE orm SET name = 'blind';
\echo :LAST_ERROR_SQLSTATE

--
-- partitioned tables
--
CREATE TABLE part (id int, region text, version int, PRIMARY KEY (id, region))
    PARTITION BY LIST (region);
CREATE TABLE part_eu PARTITION OF part FOR VALUES IN ('eu');
SELECT lockctl.enable_versioning('part_eu');
CREATE TABLE part_us PARTITION OF part FOR VALUES IN ('us');
SELECT lockctl.enable_versioning('part');
\echo :LAST_ERROR_SQLSTATE
SELECT lockctl.disable_versioning('part_eu');
SELECT lockctl.enable_versioning('part');
-- a partition created later is versioned too
CREATE TABLE part_ap PARTITION OF part FOR VALUES IN ('ap');
SELECT tgrelid::regclass, tgname, tgargs FROM pg_trigger
 WHERE tgname = 'lockctl_version' AND tgrelid::regclass::text LIKE 'part%'
 ORDER BY 1;
SELECT lockctl.enable_versioning('part_us');
\echo :LAST_ERROR_SQLSTATE
SELECT lockctl.disable_versioning('part_us');
\echo :LAST_ERROR_SQLSTATE
INSERT INTO part VALUES (1, 'eu', NULL), (2, 'us', NULL);
UPDATE part SET version = 1, region = 'ap' WHERE id = 1 RETURNING tableoid::regclass, *;
UPDATE part SET version = 1 WHERE id = 1;
\echo :LAST_ERROR_SQLSTATE
UPDATE part_us SET version = 1 WHERE id = 2 RETURNING *;
-- update_versioned on a partitioned table with a one-column key; a row
-- moved to another partition keeps its version
CREATE TABLE ptab (id int PRIMARY KEY, v int, x text) PARTITION BY RANGE (id);
CREATE TABLE ptab_lo PARTITION OF ptab FOR VALUES FROM (0) TO (100);
CREATE TABLE ptab_hi PARTITION OF ptab FOR VALUES FROM (100) TO (200);
SELECT lockctl.enable_versioning('ptab', 'v');
INSERT INTO ptab VALUES (150, NULL, 'b');
SELECT lockctl.update_versioned('ptab', 150, 1, '{"x": "bb"}');
SELECT lockctl.update_versioned('ptab', 150, 1, '{"x": "bb"}');
\echo :LAST_ERROR_SQLSTATE
SELECT lockctl.update_versioned('ptab', 150, 2, '{"id": 50}');
SELECT tableoid::regclass, * FROM ptab;

--
-- update_versioned
--
SELECT * FROM acc WHERE id = 2;
SELECT lockctl.update_versioned('acc', 2, 2, '{"balance": 60, "owner": "bob b."}');
SELECT * FROM acc WHERE id = 2;
-- the same expected version again: a conflict, current version in the detail
SELECT lockctl.update_versioned('acc', 2, 2, '{"balance": 70}');
\echo :LAST_ERROR_SQLSTATE
-- no change but the version: claims the row
SELECT lockctl.update_versioned('acc', 2, 3);
-- the key is converted to the key column's type
SELECT lockctl.update_versioned('acc', '2'::text, 4, '{"balance": 55}');
SELECT lockctl.update_versioned('acc', 2::bigint, 5, '{"owner": null}');
-- constraints apply as to any UPDATE
SELECT lockctl.update_versioned('acc', 2, 6, '{"balance": null}');
\echo :LAST_ERROR_SQLSTATE
SELECT lockctl.update_versioned('acc', 'two'::text, 6, '{}');
\echo :LAST_ERROR_SQLSTATE
-- a row that does not exist
SELECT lockctl.update_versioned('acc', 999, 1, '{"balance": 1}');
\echo :LAST_ERROR_SQLSTATE
-- bad input
SELECT lockctl.update_versioned(NULL, 2, 5, '{}');
\echo :LAST_ERROR_SQLSTATE
SELECT lockctl.update_versioned('acc', NULL::int, 5, '{}');
\echo :LAST_ERROR_SQLSTATE
SELECT lockctl.update_versioned('acc', 2, NULL, '{}');
\echo :LAST_ERROR_SQLSTATE
SELECT lockctl.update_versioned('acc', 2, 6, NULL);
\echo :LAST_ERROR_SQLSTATE
SELECT lockctl.update_versioned('acc', 2, 6, '[1]');
\echo :LAST_ERROR_SQLSTATE
SELECT lockctl.update_versioned('acc', 2, 6, '"balance"');
\echo :LAST_ERROR_SQLSTATE
SELECT lockctl.update_versioned('acc', 2, 6, '{"no_such": 1}');
\echo :LAST_ERROR_SQLSTATE
SELECT lockctl.update_versioned('acc', 2, 6, '{"version": 9}');
\echo :LAST_ERROR_SQLSTATE
SELECT lockctl.update_versioned('acc', 2, 6, '{"ctid": 9}');
\echo :LAST_ERROR_SQLSTATE
SELECT lockctl.update_versioned('acc', 2, 6, '{"balance": "lots"}');
\echo :LAST_ERROR_SQLSTATE
SELECT lockctl.update_versioned('orm', 1, 9999999999, '{}');
\echo :LAST_ERROR_SQLSTATE
SELECT lockctl.update_versioned('gen', 1, 1, '{}');
\echo :LAST_ERROR_SQLSTATE
SELECT lockctl.update_versioned('acc_view', 1, 1, '{}');
\echo :LAST_ERROR_SQLSTATE
SELECT lockctl.update_versioned('nokey', 1, 1, '{}');
\echo :LAST_ERROR_SQLSTATE
-- a composite key comes as a JSON object
CREATE TABLE ck (a int, b text, version int, note text, PRIMARY KEY (a, b));
SELECT lockctl.enable_versioning('ck');
INSERT INTO ck VALUES (1, 'x y', NULL, NULL);
SELECT lockctl.update_versioned('ck', '{"a": 1, "b": "x y"}'::jsonb, 1, '{"note": "n"}');
SELECT lockctl.update_versioned('ck', '{"b": "x y", "a": "1"}', 2, '{"note": "m"}');
SELECT lockctl.update_versioned('ck', '{"a": 1, "b": "x y"}'::jsonb, 2, '{}');
\echo :LAST_ERROR_SQLSTATE
SELECT lockctl.update_versioned('ck', '{"a": 2, "b": "x y"}'::jsonb, 1, '{}');
\echo :LAST_ERROR_SQLSTATE
SELECT lockctl.update_versioned('ck', '{"a": 1}'::jsonb, 3, '{}');
\echo :LAST_ERROR_SQLSTATE
SELECT lockctl.update_versioned('ck', '{"a": 1, "c": "x y"}'::jsonb, 3, '{}');
\echo :LAST_ERROR_SQLSTATE
SELECT lockctl.update_versioned('ck', '{"a": 1, "b": null}'::jsonb, 3, '{}');
\echo :LAST_ERROR_SQLSTATE
SELECT lockctl.update_versioned('ck', '{"a": [1], "b": "x y"}'::jsonb, 3, '{}');
\echo :LAST_ERROR_SQLSTATE
SELECT lockctl.update_versioned('ck', 1, 3, '{}');
\echo :LAST_ERROR_SQLSTATE
SELECT lockctl.update_versioned('ck', 'not json', 3, '{}');
\echo :LAST_ERROR_SQLSTATE
SELECT * FROM ck;
-- nothing of that changed the row
SELECT * FROM acc WHERE id = 2;
-- the trigger must fire, or nothing would check
ALTER TABLE acc DISABLE TRIGGER lockctl_version;
SELECT lockctl.update_versioned('acc', 2, 6, '{}');
\echo :LAST_ERROR_SQLSTATE
ALTER TABLE acc ENABLE TRIGGER lockctl_version;
SET session_replication_role = replica;
SELECT lockctl.update_versioned('acc', 2, 6, '{}');
\echo :LAST_ERROR_SQLSTATE
RESET session_replication_role;
-- the caller's privileges apply
CREATE ROLE regress_lockctl_reader;
GRANT SELECT ON acc TO regress_lockctl_reader;
SET ROLE regress_lockctl_reader;
SELECT lockctl.update_versioned('acc', 2, 6, '{"balance": 1}');
\echo :LAST_ERROR_SQLSTATE
RESET ROLE;
GRANT UPDATE (balance, version) ON acc TO regress_lockctl_reader;
SET ROLE regress_lockctl_reader;
SELECT lockctl.update_versioned('acc', 2, 6, '{"owner": "mallory"}');
\echo :LAST_ERROR_SQLSTATE
SELECT lockctl.update_versioned('acc', 2, 6, '{"balance": 1}');
RESET ROLE;
-- names that need quoting, and values of many types
CREATE TABLE "Odd ""Name""" ("Key" uuid PRIMARY KEY, "the Version" int,
    "select" jsonb, tags text[], at timestamptz, amount numeric(6,2));
SELECT lockctl.enable_versioning('"Odd ""Name"""', 'the Version');
INSERT INTO "Odd ""Name""" ("Key") VALUES ('a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11');
SELECT lockctl.update_versioned('"Odd ""Name"""', 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11'::text, 1,
    '{"select": {"a": [1, 2]}, "tags": ["x", "y z"], "at": "2024-01-02 03:04:05+00", "amount": 12.345}');
SELECT * FROM "Odd ""Name""";
SELECT lockctl.update_versioned('"Odd ""Name"""', 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11'::uuid, 2,
    '{"amount": 99999}');
\echo :LAST_ERROR_SQLSTATE
-- JSON values become column values as jsonb_to_record makes them
CREATE DOMAIN regress_positive AS int CHECK (VALUE > 0);
CREATE TABLE typed (id text PRIMARY KEY, version int, j json, b bool, t text,
                    p regress_positive, arr int[]);
SELECT lockctl.enable_versioning('typed');
INSERT INTO typed (id) VALUES ('k');
SELECT lockctl.update_versioned('typed', 'k', 1, '{"j": "s", "b": true, "t": 12.50, "p": 3}');
SELECT lockctl.update_versioned('typed', 'k', 2, '{"j": {"x": [1]}, "arr": [1, 2], "t": true}');
SELECT * FROM typed;
SELECT lockctl.update_versioned('typed', 'k', 3, '{"p": 0}');
\echo :LAST_ERROR_SQLSTATE
SELECT lockctl.update_versioned('typed', 'k', 3, '{"p": 0, "arr": [3]}');
\echo :LAST_ERROR_SQLSTATE
SELECT lockctl.update_versioned('typed', 'k', 3, '{"b": "maybe"}');
\echo :LAST_ERROR_SQLSTATE
SELECT lockctl.update_versioned('typed', 'k', 3, '{"arr": {"a": 1}}');
\echo :LAST_ERROR_SQLSTATE
SELECT * FROM typed;
-- the prepared statement follows changes of the table
ALTER TABLE acc ADD COLUMN note text;
SELECT lockctl.update_versioned('acc', 2, 7, '{"balance": 61, "note": "hi"}');
ALTER TABLE acc RENAME COLUMN note TO remark;
SELECT lockctl.update_versioned('acc', 2, 8, '{"balance": 62, "remark": "ho"}');
SELECT lockctl.update_versioned('acc', 2, 9, '{"balance": 63, "note": "ho"}');
\echo :LAST_ERROR_SQLSTATE
SELECT id, balance, version, remark FROM acc WHERE id = 2;
-- in ORM mode it works the same
SELECT lockctl.update_versioned('orm', 1, 4, '{"name": "via function"}');
-- an untyped parameter (as drivers send them) resolves to the text form
PREPARE uv AS SELECT lockctl.update_versioned('orm', $1, $2, $3);
EXECUTE uv('1', 5, '{"name": "untyped"}');
SELECT * FROM orm;

--
-- the counters, which survive the aborted transactions
--
SELECT table_name, version_column, mode, enabled, checked_updates, conflicts,
       stale_matches, blind_writes, checked_deletes, inserts,
       stats_reset IS NOT NULL AS has_reset
  FROM lockctl.versioned_tables ORDER BY table_name::text;
SELECT lockctl.reset_versioning_stats('acc');
SELECT table_name, checked_updates, conflicts, blind_writes, inserts
  FROM lockctl.versioned_tables WHERE table_name = 'acc'::regclass;
SELECT lockctl.reset_versioning_stats('gen');
\echo :LAST_ERROR_SQLSTATE
SELECT lockctl.reset_versioning_stats(4242424242::oid::regclass);
\echo :LAST_ERROR_SQLSTATE
-- 0 is no relation either (42P01), not "every table" (that is NULL): it
-- resets nothing.
SELECT stats_reset AS acc_reset FROM lockctl.versioned_tables WHERE table_name = 'acc'::regclass \gset
SELECT lockctl.reset_versioning_stats(0);
\echo :LAST_ERROR_SQLSTATE
SELECT stats_reset = :'acc_reset' AS acc_not_reset
  FROM lockctl.versioned_tables WHERE table_name = 'acc'::regclass;
SET ROLE regress_lockctl_other;
SELECT lockctl.reset_versioning_stats();
\echo :LAST_ERROR_SQLSTATE
SELECT count(*) > 0 AS others_can_read FROM lockctl.versioned_tables;
RESET ROLE;
SELECT lockctl.reset_versioning_stats();
SELECT sum(checked_updates + conflicts + stale_matches + blind_writes +
           checked_deletes + inserts) AS all_zero
  FROM lockctl.versioned_tables;

--
-- the trigger itself
--
SELECT lockctl.version_trigger();
\echo :LAST_ERROR_SQLSTATE
CREATE TABLE manual (id int PRIMARY KEY, v int);
CREATE TRIGGER t AFTER UPDATE ON manual FOR EACH ROW EXECUTE FUNCTION lockctl.version_trigger('v', 'strict');
INSERT INTO manual VALUES (1, 1);
UPDATE manual SET v = 1;
\echo :LAST_ERROR_SQLSTATE
DROP TRIGGER t ON manual;
CREATE TRIGGER t BEFORE UPDATE ON manual FOR EACH ROW EXECUTE FUNCTION lockctl.version_trigger('v');
UPDATE manual SET v = 1;
\echo :LAST_ERROR_SQLSTATE
DROP TRIGGER t ON manual;
-- a trigger created by hand with the right arguments works like enable's
CREATE TRIGGER my_version BEFORE INSERT OR UPDATE ON manual FOR EACH ROW EXECUTE FUNCTION lockctl.version_trigger('v', 'strict');
UPDATE manual SET v = 1 RETURNING *;
SELECT lockctl.enable_versioning('manual', 'v');
\echo :LAST_ERROR_SQLSTATE
SELECT lockctl.disable_versioning('manual');
-- a renamed version column: every write fails until versioning is redone
SELECT lockctl.enable_versioning('manual', 'v');
ALTER TABLE manual RENAME COLUMN v TO ver;
UPDATE manual SET ver = 2;
\echo :LAST_ERROR_SQLSTATE
SELECT lockctl.disable_versioning('manual');
SELECT lockctl.enable_versioning('manual', 'ver');
UPDATE manual SET ver = 2 RETURNING *;

--
-- disable_versioning
--
SELECT lockctl.disable_versioning(NULL);
\echo :LAST_ERROR_SQLSTATE
SET ROLE regress_lockctl_other;
SELECT lockctl.disable_versioning('acc');
\echo :LAST_ERROR_SQLSTATE
RESET ROLE;
SELECT lockctl.disable_versioning('acc');
SELECT lockctl.disable_versioning('acc');
\echo :LAST_ERROR_SQLSTATE
SELECT lockctl.disable_versioning('acc_view');
\echo :LAST_ERROR_SQLSTATE
-- after disable, writes are plain again
UPDATE acc SET balance = 0 WHERE id = 1 RETURNING id, balance, version;
SELECT count(*) AS triggers FROM pg_trigger WHERE tgrelid = 'acc'::regclass;
SELECT lockctl.update_versioned('acc', 1, 5, '{}');
\echo :LAST_ERROR_SQLSTATE
SELECT table_name FROM lockctl.versioned_tables ORDER BY table_name::text;

DROP TABLE acc, gen, nokey, twokey, orm, part, "Odd ""Name""", manual, typed, ptab, ck CASCADE;
DROP DOMAIN regress_positive;
DROP FOREIGN TABLE acc_ft;
DROP SERVER regress_lockctl_srv;
DROP FOREIGN DATA WRAPPER regress_lockctl_fdw;
DROP SEQUENCE acc_seq;
DROP ROLE regress_lockctl_other, regress_lockctl_reader, regress_lockctl_writer;
