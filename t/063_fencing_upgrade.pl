# pg_upgrade (15 -> 15: the same major, which is what can run here) makes a
# new cluster on timeline 1 with no lockctl state file.  Tokens must still
# rise above every token the old cluster issued, which was on timeline 2
# after a failover, with restarts behind it:
#
#   - a database with the lockctl 1.1 SQL objects carries its token mark
#     through pg_upgrade, and the new cluster raises its tokens above it by
#     itself;
#   - a database still on the 1.0 SQL objects has no mark: the new cluster
#     refuses to grant there (55000, with a hint for the DBA) until the DBA
#     updates the extension and states the old cluster's highest token with
#     lockctl.raise_token_floor;
#   - holds and their ids come along; new hold ids are new.
use strict;
use warnings FATAL => 'all';

use lib 't';
use FencingHistory;
use LockctlNode;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $h = FencingHistory->new;

# The old cluster: a primary, and a standby that takes over (timeline 2).
my $o1 = LockctlNode->new('upgrade_old1', streaming => 1);
$o1->safe_psql('postgres', "SELECT lockctl.create_pool('seats', 100000)");
$o1->safe_psql('postgres', 'CREATE DATABASE legacy');
$o1->safe_psql('legacy', "CREATE EXTENSION lockctl VERSION '1.0'");
$o1->backup('b');
my $old = PostgreSQL::Test::Cluster->new('upgrade_old2');
$old->init_from_backup($o1, 'b', has_streaming => 1);
$old->start;

$h->acquire($o1, 'r', 'owner-1', 3600);
$h->acquire($o1, 'r', 'owner-1', 3600, db => 'legacy');
$h->reserve($o1, 'seats', 'first', 5);
$o1->wait_for_catchup($old);
$h->move('failover to the standby (timeline 2)', sub {
	$o1->stop;
	$old->promote;
	$old->poll_query_until('postgres', 'SELECT NOT pg_is_in_recovery()')
	  or die 'promotion did not finish';
});
$h->acquire($old, 'r2', 'owner-2', 3600);
$h->acquire($old, 'r2', 'owner-2', 3600, db => 'legacy');
for my $i (1 .. 3)
{
	$h->move("restart $i of the old cluster", sub { $old->restart; });
	$h->acquire($old, "rr$i", 'owner-3', 3600);
	$h->acquire($old, "rr$i", 'owner-3', 3600, db => 'legacy');
}
my @old_ids = $h->reserve($old, 'seats', 'old', 40);
my $old_tli = FencingHistory::timeline($old);
is($old_tli, '2', 'the old cluster runs on timeline 2');

# pg_upgrade into a new cluster.
my $new = LockctlNode->new('upgrade_new', start => 0);
my $bindir = $old->config_data('--bindir');
$h->move('pg_upgrade', sub {
	$old->stop;
	command_ok(
		[ 'pg_upgrade', '--no-sync', '-d', $old->data_dir, '-D', $new->data_dir,
			'-b', $bindir, '-B', $bindir, '-s', $new->host,
			'-p', $old->port, '-P', $new->port ],
		'pg_upgrade to a new cluster');
	$new->start;
});
my $old_state = slurp_file($old->data_dir . '/pg_lockctl_epoch');
unlike($old_state, qr/from_pg_upgrade/, 'the old cluster is not taken for an upgraded one');
like(slurp_file($new->data_dir . '/pg_lockctl_epoch'), qr/^from_pg_upgrade 1$/m,
	'the new cluster knows it was made by pg_upgrade');
is(FencingHistory::timeline($new), '1', 'the new cluster starts on timeline 1');

# A 1.1 database: the mark came along, tokens rise above it by themselves.
$h->acquire($new, 'r', 'owner-4', 3600);
$h->acquire($new, 'r2', 'owner-4', 3600);
is($new->safe_psql('postgres', 'SELECT mark_current FROM lockctl.token_state()'),
	't', "the database's mark is now the new cluster's");
ok($new->log_contains('raised its fencing token floor'), 'the log says the floor was raised');
is($new->safe_psql('postgres', "SELECT lockctl.confirm($old_ids[-1])"),
	't', 'a hold of the old cluster is confirmed by its id');
$h->reserve($new, 'seats', 'new', 40);

# A 1.0 database: nothing proves a token would be fresh, so none is granted.
my ($ret, $out, $err) = $new->psql('legacy',
	"\\set VERBOSITY verbose\nSELECT lockctl.acquire('r', 'owner-4')");
like($err, qr/ERROR:  55000: lockctl cannot prove that a new fencing token in database "legacy" would be above every earlier one/,
	'a database with the 1.0 SQL objects refuses to grant after pg_upgrade');
like($err, qr/HINT:  lockctl 1.1 SQL objects required: run ALTER EXTENSION lockctl UPDATE in this database, then, as a superuser, SELECT lockctl.raise_token_floor/,
	'and the hint says what the DBA must do');
$new->safe_psql('legacy', 'ALTER EXTENSION lockctl UPDATE');
($ret, $out, $err) = $new->psql('legacy',
	"\\set VERBOSITY verbose\nSELECT lockctl.acquire('r', 'owner-4')");
like($err, qr/ERROR:  55000: .*DETAIL:  This cluster was made by pg_upgrade, and the database's tokens before the upgrade were issued by lockctl 1.0/s,
	'after the update it still refuses: the 1.0 tokens were never marked');
# The DBA reads the old cluster's timeline and epoch, as the hint says.
my ($epoch) = $old_state =~ /^lockctl epoch (\d+)$/m;
my $ctl = `pg_controldata '${\ $old->data_dir}'`;
my ($tli) = $ctl =~ /^Latest checkpoint's TimeLineID:\s+(\d+)$/m;
my $highest = ($tli << 48) | ($epoch << 28) | 268435455;
my $floor = $new->safe_psql('legacy', "SELECT lockctl.raise_token_floor($highest)");
cmp_ok($floor, '>', $highest, 'raise_token_floor returns a floor above the stated token');
$h->acquire($new, 'r', 'owner-4', 3600, db => 'legacy');
$h->acquire($new, 'r3', 'owner-4', 3600, db => 'legacy');

# And it all holds after a restart of the new cluster.
$h->move('restart of the new cluster', sub { $new->restart; });
$h->acquire($new, 'r5', 'owner-5', 3600);
$h->acquire($new, 'r5', 'owner-5', 3600, db => 'legacy');

$h->check;
$new->stop;
done_testing();
