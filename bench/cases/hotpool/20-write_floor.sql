-- label: one-row INSERT transaction (the write floor, beside the sale)
-- The floor of group peers again, in this group's own minutes: the goal
-- "a sale at 0.8 of the write floor" pairs the sale with this case round by
-- round (bench/goals.py).
INSERT INTO bench_hot_write_floor (v) VALUES (:client_id);
