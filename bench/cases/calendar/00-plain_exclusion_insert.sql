-- label: plain INSERT, EXCLUDE USING gist (a hold)
INSERT INTO bench_cal_bookings (room, during, holder, expires)
SELECT 1, tstzrange(t, t + interval '1 hour'), 'bench', now() + interval '5 minutes'
  FROM (SELECT timestamptz '2030-01-01 00:00+00' + nextval('bench_cal_plain_seq') * interval '1 hour' AS t) AS s;
