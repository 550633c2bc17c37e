-- label: one-row INSERT transaction (write floor)
INSERT INTO bench_write_floor (v) VALUES (:client_id);
