-- label: plain INSERT + UPDATE to confirmed, EXCLUDE USING gist
BEGIN;
INSERT INTO bench_cal_bookings (room, during, holder, expires)
SELECT 1, tstzrange(t, t + interval '1 hour'), 'bench', now() + interval '5 minutes'
  FROM (SELECT timestamptz '2030-01-01 00:00+00' + nextval('bench_cal_plain2_seq') * interval '1 hour' AS t) AS s
RETURNING id \gset
UPDATE bench_cal_bookings SET status = 'confirmed' WHERE id = :id;
END;
