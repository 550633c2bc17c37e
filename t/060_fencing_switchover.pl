# A planned switchover with synchronous replication, then a failover back:
# the sequence that once made fencing tokens go down (issue 22).
#
#   1. The primary is shut down cleanly (so it writes its lease dump), its
#      synchronous standby is promoted, and the old primary is started
#      again as a standby of the new one.  It must not restore its dump: a
#      standby has no live lease.
#   2. The new primary grants on the same resources, higher tokens.
#   3. It fails; the old primary, its synchronous standby, is promoted.
#      No lease of the first timeline may be live there: renew and fence
#      with the first timeline's tokens fail, and the first owner asking
#      again gets a token above every token of the second timeline.
use strict;
use warnings FATAL => 'all';

use lib 't';
use FencingHistory;
use LockctlNode;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $h = FencingHistory->new;

my $a = LockctlNode->new('switch_a', streaming => 1);
$a->backup('b');
my $b = PostgreSQL::Test::Cluster->new('switch_b');
$b->init_from_backup($a, 'b', has_streaming => 1);
$b->start;
# Synchronous from now on, whichever of the two is primary.
for my $n ($a, $b)
{
	$n->append_conf('postgresql.conf', "synchronous_standby_names = '*'");
	$n->reload;
}

my $tA = $h->acquire($a, 'r1', 'owner-a', 3600);
my $tB = $h->acquire($a, 'r2', 'owner-b', 3600);
$a->wait_for_catchup($b);

# 1. Switchover: a clean shutdown writes the dump; b takes over.
$h->move('switchover to b', sub {
	$a->stop;
	ok(-f $a->data_dir . '/pg_lockctl_leases.dump',
		'the clean shutdown of the old primary saved its leases');
	$b->promote;
	$b->poll_query_until('postgres', 'SELECT NOT pg_is_in_recovery()')
	  or die 'promotion of b did not finish';
});
$h->move('a restarted as a standby of b', sub {
	$a->enable_streaming($b);
	$a->start;
});
ok(!-f $a->data_dir . '/pg_lockctl_leases.dump', 'the standby consumed the dump');
ok(!$a->log_contains('lockctl restored'), 'but did not restore it');
ok($a->log_contains('lockctl dropped the lease dump'), 'its log says it dropped it');
is($a->safe_psql('postgres', 'SELECT count(*) FROM lockctl.leases'),
	'0', 'the standby shows no lease');

# 2. b grants on the same resources, above everything of a's timeline.
my $tC = $h->acquire($b, 'r1', 'owner-c', 3600);
my $tB2 = $h->acquire($b, 'r2', 'owner-b', 3600);
$b->safe_psql('postgres', 'SELECT 1');    # a synchronous commit: a is in sync
$b->wait_for_catchup($a);

# 3. b fails; a, its synchronous standby, is promoted.
$h->move('failover to a', sub {
	$b->stop('immediate');
	$a->promote;
	$a->poll_query_until('postgres', 'SELECT NOT pg_is_in_recovery()')
	  or die 'promotion of a did not finish';
	# no synchronous standby is left: what an HA manager does then
	$a->append_conf('postgresql.conf', "synchronous_standby_names = ''");
	$a->reload;
});
is($a->safe_psql('postgres', 'SELECT count(*) FROM lockctl.leases'),
	'0', 'the promoted server has no lease of an earlier timeline');
for my $call ([ 'renew', "lockctl.renew('r1', $tA)" ],
	[ 'fence', "lockctl.fence('r1', $tA)" ],
	[ 'renew', "lockctl.renew('r2', $tB)" ],
	[ 'renew', "lockctl.renew('r1', $tC)" ])
{
	my ($ret, $out, $err) = $a->psql('postgres',
		"\\set VERBOSITY verbose\nSELECT $call->[1]");
	like($err, qr/ERROR:  40001: /,
		"$call->[0] with a token of an earlier timeline fails on the promoted server: $call->[1]");
}
$h->acquire($a, 'r1', 'owner-a', 3600);
$h->acquire($a, 'r2', 'owner-b', 3600);
$h->acquire($a, 'r2', 'owner-b', 3600, same_as => $h->{tokens}[-1]);

$h->check;
$a->stop;
done_testing();
