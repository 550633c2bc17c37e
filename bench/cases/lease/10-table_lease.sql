-- label: table-kept lease (upsert if expired + delete)
\set k random(1, 100000)
INSERT INTO bench_table_lease AS l (resource, owner, lock_until)
     VALUES ('r' || :k, 'c' || :client_id, now() + interval '30 s')
ON CONFLICT (resource) DO UPDATE
        SET owner = EXCLUDED.owner, lock_until = EXCLUDED.lock_until
      WHERE l.lock_until < now();
DELETE FROM bench_table_lease WHERE resource = 'r' || :k AND owner = 'c' || :client_id;
