# Idempotent requests across a crash, and under many concurrent duplicates.
#
#  - A claim committed with its effect survives a crash: the retry after the
#    restart replays the stored result and has no effect.
#  - A claim whose transaction was in flight at the crash is gone with its
#    effect: the retry goes ahead, and the request takes effect once.
#  - 16 clients send 2,000 requests over 100 keys, each key many times and
#    often at the same instant, some of them rolling back after their
#    effect: every key that took effect did so exactly once, and every
#    duplicate got the result of the copy that did.
#  - The expiry worker purges keys past their ttl, and only those.
use strict;
use warnings FATAL => 'all';

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $node = PostgreSQL::Test::Cluster->new('request_crash');
$node->init;
$node->append_conf('postgresql.conf', qq{
shared_preload_libraries = 'lockctl'
max_connections = 40
lockctl.expiry_interval = '100ms'
});
$node->start;
$node->safe_psql('postgres', q{
CREATE EXTENSION lockctl;
CREATE TABLE payments (request text, copy int, amount int);
CREATE TABLE answers (request text, copy int, went_ahead boolean, result jsonb);
});

# Committed before the crash.
$node->safe_psql('postgres', q{
BEGIN;
SELECT lockctl.claim_request('done-before-crash');
INSERT INTO payments VALUES ('done-before-crash', 1, 100);
SELECT lockctl.complete_request('done-before-crash', '{"status": 201}');
COMMIT;
});

# In flight at the crash: claimed and paid, not committed.
my $inflight = $node->background_psql('postgres');
$inflight->query_safe(q{
BEGIN;
SELECT lockctl.claim_request('in-flight-at-crash');
INSERT INTO payments VALUES ('in-flight-at-crash', 1, 100);
});

$node->stop('immediate');
$inflight->quit;
$node->start;

is($node->safe_psql('postgres',
	q{SELECT lockctl.claim_request('done-before-crash')}),
	'{"status": 201}', 'a committed claim survives the crash with its result');
is($node->safe_psql('postgres',
	q{SELECT count(*) FROM payments WHERE request = 'done-before-crash'}),
	'1', 'and its effect, once');
is($node->safe_psql('postgres',
	q{SELECT count(*) FROM lockctl.requests WHERE key = 'in-flight-at-crash'}),
	'0', 'a claim in flight at the crash is gone');
is($node->safe_psql('postgres', q{
BEGIN;
SELECT lockctl.claim_request('in-flight-at-crash') IS NULL AS went_ahead;
INSERT INTO payments VALUES ('in-flight-at-crash', 2, 100);
SELECT count(*) AS completed
  FROM lockctl.complete_request('in-flight-at-crash', '{"status": 201}');
COMMIT;
}), "t\n1", 'its retry goes ahead, pays and completes');
is($node->safe_psql('postgres',
	q{SELECT count(*) FROM payments WHERE request = 'in-flight-at-crash'}),
	'1', 'and takes effect once');

# Many duplicates at once.  pay(key, copy): claim; if this copy goes ahead,
# pay and complete.  One transaction in ten rolls back after its effect (a
# failure after the payment was written), so another copy must take the
# request over.
$node->safe_psql('postgres', q{
CREATE FUNCTION pay(k text, copy int) RETURNS void LANGUAGE plpgsql AS $$
DECLARE
    r jsonb;
BEGIN
    r := lockctl.claim_request(k, fingerprint => 'same-params');
    IF r IS NULL THEN
        INSERT INTO payments VALUES (k, copy, 100);
        PERFORM lockctl.complete_request(k, jsonb_build_object('paid_by', copy));
    END IF;
    INSERT INTO answers VALUES (k, copy, r IS NULL, r);
END $$;
});

$node->pgbench(
	'--no-vacuum --client=16 --jobs=2 --transactions=125',
	0,
	[qr{processed: 2000/2000}],
	[qr{^$}],
	'16 clients send 2,000 requests over 100 keys, some rolling back after their effect',
	{ '032_duplicates' => q{
\set k random(1, 100)
\set copy random(1, 1000000)
\set fail random(1, 10)
BEGIN;
SELECT pay('key-' || :k, :copy);
\if :fail = 1
ROLLBACK;
\else
COMMIT;
\endif
} });

is($node->safe_psql('postgres', q{
SELECT count(*) FROM (SELECT request FROM payments GROUP BY request HAVING count(*) > 1) AS twice
}), '0', 'no request took effect twice');
is($node->safe_psql('postgres', q{
SELECT count(DISTINCT request) = (SELECT count(*) FROM payments WHERE request LIKE 'key-%')
  FROM answers
}), 't', 'every request that was answered took effect exactly once');
is($node->safe_psql('postgres', q{
SELECT count(*) FROM answers a JOIN payments p USING (request)
 WHERE NOT a.went_ahead AND a.result <> jsonb_build_object('paid_by', p.copy)
}), '0', 'every duplicate got the result of the copy that paid');
is($node->safe_psql('postgres', q{
SELECT count(*) FROM answers a JOIN payments p USING (request)
 WHERE a.went_ahead AND a.copy <> p.copy
}), '0', 'the copy that went ahead is the copy that paid');
ok($node->safe_psql('postgres', q{SELECT waits FROM lockctl.request_stats}) > 0,
	'duplicates met in flight and waited');

# The worker purges keys past their ttl and keeps the others.
$node->safe_psql('postgres', q{
SELECT lockctl.claim_request('short-lived', '200 milliseconds');
});
ok($node->poll_query_until('postgres', q{
SELECT count(*) = 0 FROM lockctl.request_keys WHERE key = 'short-lived'
}), 'the worker purges a key past its ttl');
is($node->safe_psql('postgres', q{
SELECT count(*) FROM lockctl.request_keys WHERE key LIKE 'key-%' OR key LIKE '%crash'
}), $node->safe_psql('postgres', q{SELECT count(DISTINCT request) FROM payments}),
	'and keeps every key still within its ttl');

$node->stop;
done_testing();
