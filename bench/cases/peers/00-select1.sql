-- label: SELECT 1 (floor)
SELECT 1;
