# Asynchronous replication: a planned switchover to the standby, then a
# switch back to the first primary, then a third switch.  Each old primary
# is shut down cleanly (so it writes its lease dump) and started again as a
# standby.  No standby restores a dump, no promoted server has a live lease
# of an earlier timeline, and tokens rise through all of it.
use strict;
use warnings FATAL => 'all';

use lib 't';
use FencingHistory;
use LockctlNode;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $h = FencingHistory->new;

my $p = LockctlNode->new('back_p', streaming => 1);
$p->backup('b');
my $s = PostgreSQL::Test::Cluster->new('back_s');
$s->init_from_backup($p, 'b', has_streaming => 1);
$s->start;

# switch($from, $to): clean shutdown of $from, promotion of $to, $from
# started again as a standby of $to.
sub switch
{
	my ($from, $to) = @_;
	$from->wait_for_catchup($to);
	$h->move('switchover from ' . $from->name . ' to ' . $to->name, sub {
		$from->stop;
		$to->promote;
		$to->poll_query_until('postgres', 'SELECT NOT pg_is_in_recovery()')
		  or die 'promotion did not finish';
		$from->enable_streaming($to);
		$from->start;
	});
	ok(!$from->log_contains('lockctl restored'),
		$from->name . ', now a standby, restored no lease');
	is($from->safe_psql('postgres', 'SELECT count(*) FROM lockctl.leases'),
		'0', $from->name . ', now a standby, shows no lease');
	is($to->safe_psql('postgres', 'SELECT count(*) FROM lockctl.leases'),
		'0', $to->name . ', just promoted, has no live lease of an earlier timeline');
	return;
}

# stale($node, $resource, $token): renew and fence with it fail.
sub stale
{
	my ($node, $res, $tok) = @_;
	for my $fn ('renew', 'fence')
	{
		my ($ret, $out, $err) = $node->psql('postgres',
			"\\set VERBOSITY verbose\nSELECT lockctl.$fn('$res', $tok)");
		like($err, qr/ERROR:  40001: /,
			"$fn('$res', " . FencingHistory::describe($tok) . ') fails on ' . $node->name);
	}
	return;
}

my $t1 = $h->acquire($p, 'r', 'owner-1', 3600);
$h->acquire($p, 'q', 'owner-q', 3600);

# To s, and s grants.
switch($p, $s);
stale($s, 'r', $t1);
my $t2 = $h->acquire($s, 'r', 'owner-2', 3600);
$h->acquire($s, 'q', 'owner-q', 3600);

# Back to p: the first owner does not get its old token back.
switch($s, $p);
stale($p, 'r', $t1);
stale($p, 'r', $t2);
my $t3 = $h->acquire($p, 'r', 'owner-1', 3600);
$h->acquire($p, 'q', 'owner-q', 3600);

# And to s once more: nothing of s's own earlier timeline is live there.
switch($p, $s);
stale($s, 'r', $t2);
stale($s, 'r', $t3);
$h->acquire($s, 'r', 'owner-2', 3600);
$h->acquire($s, 'q', 'owner-q', 3600);

$h->check;
$p->stop;
$s->stop;
done_testing();
