# A base-backup clone started as a primary: without recovery.signal or
# standby.signal, crash recovery from the backup leaves it on the timeline
# of the server it was copied from, with that server's state file as of the
# backup.  The original restarted (new epochs) and granted tokens and hold
# ids after the backup; the clone, which replaces it, must issue only new
# ones.
use strict;
use warnings FATAL => 'all';

use lib 't';
use FencingHistory;
use LockctlNode;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $h = FencingHistory->new;

my $p = LockctlNode->new('clone_src', streaming => 1);
$p->safe_psql('postgres', "SELECT lockctl.create_pool('seats', 100000)");
$h->acquire($p, 'r', 'owner-1', 3600);
$h->reserve($p, 'seats', 'before', 5);
$p->backup('b');

# After the backup: the original restarts twice and keeps granting.
for my $i (1 .. 2)
{
	$h->move("restart $i of the original", sub { $p->restart; });
	$h->acquire($p, "r$i", 'owner-2', 3600);
}
$h->reserve($p, 'seats', 'after-backup', 40);

# The original is retired; the clone takes its place as a primary.
my $c = PostgreSQL::Test::Cluster->new('clone_copy');
$c->init_from_backup($p, 'b');
ok(-f $c->data_dir . '/backup_label', 'the clone starts from a backup_label');
ok(!-f $c->data_dir . '/standby.signal' && !-f $c->data_dir . '/recovery.signal',
	'and without recovery.signal or standby.signal');
$h->move('the clone starts as a primary', sub {
	$p->stop;
	$c->start;
});
is($c->safe_psql('postgres', 'SELECT pg_is_in_recovery()'), 'f', 'the clone is a primary');
is(FencingHistory::timeline($c), '1', 'on the timeline of the original');
ok($c->log_contains('restored from a backup and starts as a primary'),
	'its log says its tokens move to a new era');
for my $i (1 .. 2)
{
	$h->acquire($c, "r$i", 'owner-3', 3600);
}
$h->acquire($c, 'r', 'owner-3', 3600);
$h->reserve($c, 'seats', 'clone', 40);

# The next start of the clone is an ordinary restart: same era, new epoch.
my $era = $c->safe_psql('postgres', 'SELECT era FROM lockctl.token_state()');
$h->move('restart of the clone', sub { $c->restart; });
is($c->safe_psql('postgres', 'SELECT era FROM lockctl.token_state()'), $era,
	'a restart of the clone keeps its era');
$h->acquire($c, 'r3', 'owner-4', 3600);
$h->reserve($c, 'seats', 'clone-again', 5);

$h->check;
$c->stop;
done_testing();
