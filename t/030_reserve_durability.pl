# Reservations are ordinary tables: they survive a crash restart intact and
# consistent, pg_dump carries them to another database, and every expiry is
# announced with NOTIFY lockctl_expired.
use strict;
use warnings FATAL => 'all';

use lib 't';
use LockctlNode;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $node = LockctlNode->new('reserve_durability');

# What must hold for every pool, whatever happened: slots sum to the
# capacity, nothing is oversold, and held/confirmed are the sums over holds.
my $broken = q{
SELECT count(*) FROM (
  SELECT p.id FROM lockctl.pools p
   WHERE p.capacity <> (SELECT sum(s.capacity) FROM lockctl.pool_slots s WHERE s.pool_id = p.id)
  UNION ALL
  SELECT s.pool_id FROM lockctl.pool_slots s
   WHERE s.held + s.confirmed > s.capacity
      OR s.held <> (SELECT coalesce(sum(r.quantity), 0) FROM lockctl.reservations r
                     WHERE r.pool_id = s.pool_id AND r.slot = s.slot AND r.status = 'held')
      OR s.confirmed <> (SELECT coalesce(sum(r.quantity), 0) FROM lockctl.reservations r
                          WHERE r.pool_id = s.pool_id AND r.slot = s.slot AND r.status = 'confirmed')
) b};
my $state = q{SELECT resource, capacity, held, confirmed, available, slots,
  holds_taken, holds_confirmed, holds_cancelled, holds_expired
  FROM lockctl.pool_status ORDER BY resource};

$node->safe_psql('postgres', q{
SELECT lockctl.create_pool('seats', 100);
SELECT lockctl.create_pool('stock', 5000);
SELECT lockctl.confirm(lockctl.reserve('seats', 3, 'a', '1 hour'));
SELECT lockctl.cancel(lockctl.reserve('seats', 2, 'b', '1 hour'));
SELECT lockctl.reserve('seats', 4, 'c', '1 hour', 'key-c');
SELECT lockctl.confirm(lockctl.reserve('stock', 1, 'p' || i, '1 hour')) FROM generate_series(1, 200) i;
SELECT lockctl.reserve('stock', 2000, 'big', '1 hour');
});
my $before = $node->safe_psql('postgres', $state);

# A transaction that reserved but never committed leaves nothing behind.
my $open = $node->background_psql('postgres');
$open->query_safe('BEGIN');
$open->query_safe(q{SELECT lockctl.reserve('seats', 50, 'uncommitted', '1 hour')});

# Crash.
$node->stop('immediate');
$open->{run}->finish;
$node->start;

is($node->safe_psql('postgres', $state), $before,
	'pools and counters are the same after a crash restart');
is($node->safe_psql('postgres', $broken), '0', 'and consistent');
is($node->safe_psql('postgres',
		q{SELECT count(*) FROM lockctl.holds WHERE holder = 'uncommitted'}),
	'0', 'the uncommitted hold is gone');
is($node->safe_psql('postgres',
		q{SELECT lockctl.reserve('seats', 4, 'c', '1 hour', 'key-c') = id FROM lockctl.holds WHERE holder = 'c'}),
	't', 'an idempotency key still finds its hold');
isnt($node->safe_psql('postgres', q{SELECT lockctl.reserve('seats', 93, ttl => '1 hour')}),
	'', 'every free unit can still be taken');
is($node->safe_psql('postgres', q{SELECT lockctl.reserve('seats', 1, ttl => '1 hour') IS NULL}),
	't', 'and not one more');

# NOTIFY lockctl_expired, one per expired hold, with its id, on commit.
my $out = $node->safe_psql('postgres', q{
SELECT lockctl.cancel(id) FROM lockctl.holds WHERE resource = 'seats' AND status = 'held';
LISTEN lockctl_expired;
SELECT lockctl.reserve('seats', 1, 'n1', '1 hour') AS n1 \gset
BEGIN;
UPDATE lockctl.reservations SET expires = now() - interval '1 second' WHERE holder = 'n1';
SELECT lockctl_internal.expire_holds(10);
COMMIT;
SELECT 'id=' || :n1;
});
my ($id) = $out =~ /^id=(\d+)$/m;
ok(defined $id, 'the hold to expire was taken');
like($out, qr/Asynchronous notification "lockctl_expired" with payload "$id" received/,
	'its expiry was announced with its id');
is(scalar(() = $out =~ /Asynchronous notification "lockctl_expired"/g), 1,
	'once, and only for the hold that expired');

# pg_dump carries pools, slots, holds and the id sequences to another
# database; the restored pools work and new ids do not collide.
my $dump = $node->basedir . '/reserve.dump';
$node->command_ok([ 'pg_dump', '-d', $node->connstr('postgres'), '-f', $dump ],
	'pg_dump of a database with pools');
$node->safe_psql('postgres', 'CREATE DATABASE restored');
$node->command_ok(
	[ 'psql', '-X', '-v', 'ON_ERROR_STOP=1', '-q', '-d', $node->connstr('restored'), '-f', $dump ],
	'the dump restores');
is($node->safe_psql('restored', $state), $node->safe_psql('postgres', $state),
	'the restored pools and counters are the same');
is($node->safe_psql('restored', $broken), '0', 'and consistent');
is($node->safe_psql('restored',
		q{SELECT lockctl.reserve('stock', 1, ttl => '1 hour') > max(id) FROM lockctl.holds}),
	't', 'new holds get new ids after a restore');

# On a hot standby: reading works, taking or changing holds fails with
# 25006 (read-only), and nothing changes.
$node->stop;
$node->append_conf('postgresql.conf', "wal_level = replica\nmax_wal_senders = 4\n");
$node->append_conf('pg_hba.conf', "local replication all trust\n");
$node->start;
$node->backup('bk');
my $standby = PostgreSQL::Test::Cluster->new('reserve_standby');
$standby->init_from_backup($node, 'bk', has_streaming => 1);
$standby->start;
$node->wait_for_catchup($standby);
is($standby->safe_psql('postgres', q{SELECT lockctl.available('stock')}),
	$node->safe_psql('postgres', q{SELECT lockctl.available('stock')}),
	'available() works on a standby');
is($standby->safe_psql('postgres', $state), $node->safe_psql('postgres', $state),
	'and so do the views');
my ($ret, $stdout, $stderr) = $standby->psql('postgres',
	"\\set VERBOSITY verbose\nSELECT lockctl.reserve('stock', 1)");
like($stderr, qr/ERROR:  25006:/, 'reserve on a standby fails with 25006');
($ret, $stdout, $stderr) = $standby->psql('postgres',
	"\\set VERBOSITY verbose\nSELECT lockctl.confirm(id) FROM lockctl.holds WHERE status = 'held' LIMIT 1");
like($stderr, qr/ERROR:  25006:/, 'confirm on a standby fails with 25006');
$standby->stop;

$node->stop;
done_testing();
