-- label: three reserve + confirm in one transaction (pools in one order)
BEGIN;
SELECT lockctl.confirm(lockctl.reserve('bench_cart_a'));
SELECT lockctl.confirm(lockctl.reserve('bench_cart_b'));
SELECT lockctl.confirm(lockctl.reserve('bench_cart_c'));
END;
