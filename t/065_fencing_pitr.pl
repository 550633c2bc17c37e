# Point-in-time recovery from a cold backup (a file-level copy of a cleanly
# shut down primary, so it holds the lease dump) and the WAL archive, to a
# restore point.  After the restore point the primary handed out holds and
# tokens that the restored server never sees.  The restored server finishes
# recovery on a new timeline: the dump's leases must not come back, the
# old holder's token must fence nothing, and tokens and hold ids are new.
use strict;
use warnings FATAL => 'all';

use lib 't';
use FencingHistory;
use LockctlNode;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $h = FencingHistory->new;

my $p = LockctlNode->new('pitr_src', streaming => 1, start => 0);
$p->enable_archiving;
$p->start;
$p->safe_psql('postgres', 'CREATE EXTENSION lockctl');
$p->safe_psql('postgres', "SELECT lockctl.create_pool('seats', 100000)");
my $tA = $h->acquire($p, 'r', 'owner-1', 3600);
$h->reserve($p, 'seats', 'before', 5);

$h->move('clean shutdown, cold backup, start', sub {
	$p->stop;
	ok(-f $p->data_dir . '/pg_lockctl_leases.dump', 'the cold backup holds a lease dump');
	$p->backup_fs_cold('cold');
	$p->start;
});
$p->safe_psql('postgres', "SELECT pg_create_restore_point('before_trouble')");

# After the restore point: holds, leases, a restart, more.
$h->reserve($p, 'seats', 'after', 40);
$h->acquire($p, 'r2', 'owner-2', 3600);
$h->move('restart of the original', sub { $p->restart; });
$h->acquire($p, 'r3', 'owner-2', 3600);
my $walfile = $p->safe_psql('postgres', 'SELECT pg_walfile_name(pg_current_wal_lsn())');
$p->safe_psql('postgres', 'SELECT pg_switch_wal()');
$p->poll_query_until('postgres',
	"SELECT '$walfile' <= last_archived_wal FROM pg_stat_archiver")
  or die 'the WAL was not archived';

# The original is lost; restore to the restore point.
my $r = PostgreSQL::Test::Cluster->new('pitr_restored');
$r->init_from_backup($p, 'cold', has_restoring => 1, standby => 0);
$r->append_conf('postgresql.conf', qq{
recovery_target_name = 'before_trouble'
recovery_target_action = 'promote'
});
$h->move('point-in-time recovery', sub {
	$p->stop;
	$r->start;
	$r->poll_query_until('postgres', 'SELECT NOT pg_is_in_recovery()')
	  or die 'recovery did not finish';
});
is(FencingHistory::timeline($r), '2', 'the restored server runs on a new timeline');
ok(!$r->log_contains('lockctl restored'), 'it did not restore the dump of the backup');
ok($r->log_contains('lockctl dropped the lease dump'), 'its log says it dropped it');
is($r->safe_psql('postgres', 'SELECT count(*) FROM lockctl.leases'),
	'0', 'it has no live lease');
my ($ret, $out, $err) = $r->psql('postgres',
	"\\set VERBOSITY verbose\nSELECT lockctl.fence('r', $tA)");
like($err, qr/ERROR:  40001: /, "the backup's lease holder cannot fence");
$h->acquire($r, 'r', 'owner-1', 3600);
$h->acquire($r, 'r2', 'owner-3', 3600);
$h->reserve($r, 'seats', 'restored', 40);
$h->move('restart of the restored server', sub { $r->restart; });
$h->acquire($r, 'r3', 'owner-3', 3600);

$h->check;
$r->stop;
done_testing();
