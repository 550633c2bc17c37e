-- label: lockctl reserve_range + confirm, capacity 1
SELECT lockctl.confirm(lockctl.reserve_range('bench_cal', tstzrange(t, t + interval '1 hour'), 'bench'))
  FROM (SELECT timestamptz '2030-01-01 00:00+00' + nextval('bench_cal_confirm_seq') * interval '1 hour' AS t) AS s;
