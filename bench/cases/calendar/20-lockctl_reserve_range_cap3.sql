-- label: lockctl reserve_range, capacity 3 (a hold; the calendar row serializes)
SELECT lockctl.reserve_range('bench_cal3', tstzrange(t, t + interval '1 hour'), 'bench')
  FROM (SELECT timestamptz '2030-01-01 00:00+00' + (nextval('bench_cal_three_seq') / 3) * interval '1 hour' AS t) AS s;
