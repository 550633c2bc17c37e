-- label: reserve_cart of the same three (items in reverse order) + confirm_cart
SELECT lockctl.confirm_cart(lockctl.reserve_cart('[{"resource": "bench_cart_c"}, {"resource": "bench_cart_b"}, {"resource": "bench_cart_a"}]'));
