-- label: lockctl.acquire (waiting) hand-over, one hot key
SELECT lockctl.acquire('hot', 'c' || :client_id, '30 s', '60 s') AS token \gset
SELECT lockctl.release('hot', :token);
