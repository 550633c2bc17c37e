# An asynchronous failover that lost commits, then pg_rewind.
#
#   1. The standby falls behind; the primary hands out holds and a lease
#      the standby never receives, and dies.  The standby is promoted.
#      Its hold ids must not repeat any the lost primary handed out: a
#      client retrying confirm(id) for a lost hold gets a clear error, never
#      another buyer's hold.
#   2. The old primary is rewound with pg_rewind from the new one.  The new
#      primary restarts and grants more; then it dies too, and the rewound
#      data directory is started as a primary (no standby.signal): crash
#      recovery leaves it on the timeline of the server it was rewound
#      from, which granted tokens and ids after the rewind.  Its tokens and
#      hold ids must still be new.
use strict;
use warnings FATAL => 'all';

use File::Copy qw(copy);
use lib 't';
use FencingHistory;
use LockctlNode;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $h = FencingHistory->new;

my $p = LockctlNode->new('rewind_p', streaming => 1,
	conf => "wal_log_hints = on\nwal_keep_size = '64MB'\n");
$p->safe_psql('postgres', "SELECT lockctl.create_pool('seats', 100000)");
$p->backup('b');
my $s = PostgreSQL::Test::Cluster->new('rewind_s');
$s->init_from_backup($p, 'b', has_streaming => 1);
$s->start;

$h->acquire($p, 'r', 'owner-1', 3600);
$h->reserve($p, 'seats', 'early', 1);
$p->wait_for_catchup($s);

# 1. The standby stops receiving; what the primary does now is lost.
$s->stop;
my @lost = $h->reserve($p, 'seats', 'lost', 40);
$h->acquire($p, 'r-lost', 'owner-lost', 3600);
$h->move('the primary dies, the lagging standby is promoted', sub {
	$p->stop('immediate');
	$s->start;
	$s->promote;
	$s->poll_query_until('postgres', 'SELECT NOT pg_is_in_recovery()')
	  or die 'promotion did not finish';
});
my @new = $h->reserve($s, 'seats', 'new', 40);
my ($ret, $out, $err) = $s->psql('postgres',
	"\\set VERBOSITY verbose\nSELECT lockctl.confirm($lost[-1])");
like($err, qr/ERROR:  42704: hold \d+ does not exist/,
	'a retried confirm of a hold the failover lost fails clearly');
like($err, qr/DETAIL:  It was taken in era 1, and this server is in era 2/,
	'and says the hold was lost with the era it was taken in');
is($s->safe_psql('postgres',
		"SELECT count(*) FROM lockctl.reservations WHERE status = 'held' AND holder LIKE 'new-%'"),
	'40', "no other buyer's hold was confirmed by it");
$h->acquire($s, 'r', 'owner-2', 3600);
# pg_rewind reads the timeline from the control file: checkpoint first
$s->safe_psql('postgres', 'CHECKPOINT');

# 2. Rewind the old primary from the new one (which keeps running).
# pg_rewind copies s's configuration over p's, and removes files s lacks
my $conf = $p->data_dir . '/postgresql.conf';
my $mine = $p->basedir . '/postgresql.conf.mine';
copy($conf, $mine) or die "copy: $!";
$h->move('pg_rewind of the old primary', sub {
	command_ok(
		[ 'pg_rewind', '--source-server', $s->connstr('postgres'),
			'--target-pgdata', $p->data_dir, '--no-sync' ],
		'pg_rewind of the old primary from the new one');
});
copy($mine, $conf) or die "copy: $!";
ok(-f $p->data_dir . '/backup_label', 'pg_rewind left a backup_label');

# The new primary restarts (a new epoch) and keeps granting; then it dies.
$h->move('the new primary restarts', sub { $s->restart; });
$h->acquire($s, 'r2', 'owner-3', 3600);
$h->acquire($s, 'r3', 'owner-3', 3600);
my @after = $h->reserve($s, 'seats', 'after-rewind', 40);

# The rewound copy started as a primary, on s's timeline.
$h->move('s dies; the rewound data directory starts as a primary', sub {
	$s->stop('immediate');
	$p->start;
});
is($p->safe_psql('postgres', 'SELECT pg_is_in_recovery()'), 'f',
	'the rewound copy runs as a primary');
is(FencingHistory::timeline($p), '2', 'on the timeline of the server it was rewound from');
ok($p->log_contains('restored from a backup and starts as a primary'),
	'its log says why its tokens move to a new era');
is($p->safe_psql('postgres', 'SELECT count(*) FROM lockctl.leases'), '0',
	'it has no live lease');
$h->acquire($p, 'r2', 'owner-4', 3600);
$h->acquire($p, 'r3', 'owner-4', 3600);
$h->reserve($p, 'seats', 'rewound', 40);
$p->restart;
$h->acquire($p, 'r4', 'owner-5', 3600);

$h->check;
$p->stop;
done_testing();
