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

my $node = LockctlNode->new('old_sql', worker => 1, extension => 0,
	conf => "lockctl.retention = 0\n");
$node->safe_psql('postgres', q{
CREATE EXTENSION lockctl VERSION '1.0';
SELECT lockctl.create_pool('seats', 10);
});
LockctlNode::wait_for_worker($node, 'postgres');

# With retention 0 a hold is purged in the pass that expires it, so it is
# gone before anyone sees it expired: the pool counts the expiry, the
# worker the purge.
sub expired_and_purged
{
	my ($expired, $purged) = @_;
	my $id = $node->safe_psql('postgres',
		"SELECT lockctl.reserve('seats', 1, 'x', '1 second')");
	return $node->poll_query_until('postgres', qq{
		SELECT p.holds_expired = $expired AND w.holds_purged = $purged
		   AND NOT EXISTS (SELECT FROM lockctl.reservations WHERE id = $id)
		  FROM lockctl.pool_status AS p, lockctl.workers AS w
		 WHERE p.resource = 'seats' AND w.datname = 'postgres'});
}

is($node->safe_psql('postgres',
		"SELECT count(*) FROM pg_namespace WHERE nspname = 'lockctl_internal'"),
	'0', 'the database has 1.0\'s SQL objects');
ok(expired_and_purged(1, 1),
	'holds expire and are purged under 1.0\'s SQL objects');

$node->safe_psql('postgres', 'ALTER EXTENSION lockctl UPDATE');
is($node->safe_psql('postgres',
		"SELECT count(*) FROM pg_proc WHERE proname = 'expire_holds' AND pronamespace = 'lockctl_internal'::regnamespace"),
	'1', 'the update moved expire_holds to lockctl_internal');
ok(expired_and_purged(2, 2), 'holds expire and are purged after the update');
is($node->safe_psql('postgres',
		"SELECT errors FROM lockctl.workers WHERE datname = 'postgres'"),
	'0', 'the worker never failed');

$node->stop;
done_testing();
