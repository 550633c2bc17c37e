# Nothing runs on a hot standby; the worker picks up after promotion.
use strict;
use warnings FATAL => 'all';

use lib 't';
use LockctlNode;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $primary = LockctlNode->new('primary', worker => 1, streaming => 1);
$primary->safe_psql('postgres', "SELECT lockctl.create_pool('seats', 10)");
$primary->backup('backup');

my $standby = PostgreSQL::Test::Cluster->new('standby');
$standby->init_from_backup($primary, 'backup', has_streaming => 1);
$standby->start;

# From here on the primary's worker serves no database, so that a due hold
# stays due (the setting is in postgresql.auto.conf, which the standby,
# cloned before, does not have).
$primary->safe_psql('postgres', q{
ALTER SYSTEM SET lockctl.worker_databases = 'nothing_here';
SELECT pg_reload_conf();
});
$primary->poll_query_until('postgres',
	"SELECT count(*) = 0 FROM pg_stat_activity WHERE backend_type = 'lockctl expiry worker'")
  or die 'the primary worker did not stop';
my $id = $primary->safe_psql('postgres',
	"SELECT lockctl.reserve('seats', 3, 'alice', '1 second')");
$primary->wait_for_catchup($standby);

is($standby->safe_psql('postgres',
		"SELECT count(*) FROM pg_stat_activity WHERE backend_type LIKE 'lockctl%'"),
	'0', 'no launcher and no worker on the standby');
is($standby->safe_psql('postgres', 'SELECT count(*) FROM lockctl.workers'),
	'0', 'lockctl.workers can be read on the standby, and is empty');
$standby->poll_query_until('postgres',
	"SELECT now() > expires + interval '1 second' FROM lockctl.reservations WHERE id = $id")
  or die 'time did not pass';
is($standby->safe_psql('postgres',
		"SELECT status FROM lockctl.reservations WHERE id = $id"),
	'held', 'a due hold is left alone on the standby');
is($standby->safe_psql('postgres', "SELECT lockctl.available('seats')"),
	'7', 'its units are still taken');

# Promotion: the launcher starts and the worker expires the hold.
$primary->stop;
$standby->promote;
$standby->poll_query_until('postgres',
	"SELECT status = 'expired' FROM lockctl.reservations WHERE id = $id")
  or die 'the promoted standby did not expire the hold';
pass('after promotion the worker expires the due hold');
is($standby->safe_psql('postgres', "SELECT lockctl.available('seats')"),
	'10', 'and its units are back');
is($standby->safe_psql('postgres',
		"SELECT count(*) FROM lockctl.workers WHERE datname = 'postgres' AND state = 'running'"),
	'1', 'lockctl.workers shows the worker on the promoted node');

$standby->stop;
done_testing();
