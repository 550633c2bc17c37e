# The expiry worker of this library serves a database whose SQL objects are
# still 1.0's (expire_holds and purge_holds in schema lockctl) until ALTER
# EXTENSION lockctl UPDATE, and the updated one (lockctl_internal) after it.
use strict;
use warnings FATAL => 'all';

use lib 't';
use LockctlNode;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $node = LockctlNode->new('old_sql', worker => 1, extension => 0);
$node->safe_psql('postgres', q{
CREATE EXTENSION lockctl VERSION '1.0';
SELECT lockctl.create_pool('seats', 10);
});
is($node->safe_psql('postgres',
		"SELECT count(*) FROM pg_namespace WHERE nspname = 'lockctl_internal'"),
	'0', 'the database has 1.0\'s SQL objects');

LockctlNode::wait_for_worker($node, 'postgres');
ok(LockctlNode::hold_expires($node, 'postgres', 'seats'),
	'holds expire under 1.0\'s SQL objects');

# Retention 0 from here on: an expired hold is purged at the next pass.
$node->safe_psql('postgres', q{
ALTER SYSTEM SET lockctl.retention = 0;
SELECT pg_reload_conf();
});
$node->poll_query_until('postgres',
	"SELECT count(*) = 0 FROM lockctl.reservations WHERE status = 'expired'")
  or die 'expired holds were not purged under 1.0';
pass('and are purged');

$node->safe_psql('postgres', 'ALTER EXTENSION lockctl UPDATE');
is($node->safe_psql('postgres',
		"SELECT count(*) FROM pg_proc WHERE proname = 'expire_holds' AND pronamespace = 'lockctl_internal'::regnamespace"),
	'1', 'the update moved expire_holds to lockctl_internal');

# After the update: a new hold is expired (the pool counts it) and purged
# (the worker counts it, and the row is gone).
my $before = $node->safe_psql('postgres',
	"SELECT holds_purged FROM lockctl.workers WHERE datname = 'postgres'");
my $id = $node->safe_psql('postgres',
	"SELECT lockctl.reserve('seats', 1, 'x', '1 second')");
$node->poll_query_until('postgres',
	"SELECT holds_purged > $before FROM lockctl.workers WHERE datname = 'postgres'")
  or die 'the hold was not expired and purged after the update';
is($node->safe_psql('postgres',
		"SELECT count(*) FROM lockctl.reservations WHERE id = $id"),
	'0', 'holds expire and are purged after the update');
is($node->safe_psql('postgres',
		"SELECT holds_expired FROM lockctl.pool_status WHERE resource = 'seats'"),
	'2', 'both holds were expired, not cancelled');
is($node->safe_psql('postgres',
		"SELECT errors FROM lockctl.workers WHERE datname = 'postgres'"),
	'0', 'the worker never failed');

$node->stop;
done_testing();
