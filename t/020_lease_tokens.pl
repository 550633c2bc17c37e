# Fencing tokens keep rising across a clean restart, a crash restart and a
# standby promotion; live leases survive a clean restart (never longer than
# they had left) but not a crash; a standby refuses to grant (25006) and
# still shows the view; a full lease table is a clean 53400.
use strict;
use warnings FATAL => 'all';

use lib 't';
use LockctlNode;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $primary = LockctlNode->new('lease_primary', streaming => 1);

# Every token handed out so far, in order; each new one must be higher.
my @tokens;
sub take
{
	my ($node, $resource, $owner, $ttl) = @_;
	$ttl //= '1 hour';
	my $t = $node->safe_psql('postgres',
		"SELECT lockctl.acquire('$resource', '$owner', '$ttl')");
	ok($t =~ /^\d+$/, "$resource granted to $owner on " . $node->name);
	ok(!@tokens || $t > $tokens[-1],
		"token for $resource is higher than every earlier one");
	push @tokens, $t;
	return $t;
}

take($primary, 'a', 'o1');
take($primary, 'b', 'o1', '2 s');
take($primary, 'c', 'o1');

ok(-f $primary->data_dir . '/pg_lockctl_epoch', 'the epoch file exists');

# Clean restart: 'a' and 'c' come back with their tokens and owner, and an
# expiry no later than before; 'b' runs out while the server is down.
my $before = $primary->safe_psql('postgres',
	"SELECT resource || ':' || owner || ':' || token FROM lockctl.leases WHERE resource IN ('a', 'c') ORDER BY 1");
my $exp_before = $primary->safe_psql('postgres',
	"SELECT expires_at FROM lockctl.lease('a')");
$primary->stop;
ok(-f $primary->data_dir . '/pg_lockctl_leases.dump', 'live leases were saved at shutdown');
sleep(2);    # let 'b' (2 s) run out while the server is down
$primary->start;
ok(!-f $primary->data_dir . '/pg_lockctl_leases.dump', 'the dump is consumed at startup');
is($primary->safe_psql('postgres',
		"SELECT resource || ':' || owner || ':' || token FROM lockctl.leases WHERE resource IN ('a', 'c') ORDER BY 1"),
	$before, 'live leases survive a clean restart with their tokens');
is($primary->safe_psql('postgres',
		"SELECT expires_at <= '$exp_before'::timestamptz + interval '10 ms' FROM lockctl.lease('a')"),
	't', 'a restored lease does not last longer than before');
is($primary->safe_psql('postgres', "SELECT count(*) FROM lockctl.lease('b')"),
	'0', 'a lease that ran out during the restart is gone');
is($primary->safe_psql('postgres',
		"SELECT lockctl.renew('a', $tokens[0]) > now()"),
	't', 'a restored lease can be renewed with its token');
take($primary, 'd', 'o2');
is($primary->safe_psql('postgres', "SELECT lockctl.acquire('a', 'o1')"),
	$tokens[0], 'same owner gets the restored token back');

ok(!-f $primary->data_dir . '/pg_lockctl_leases.dump', 'no dump before the crash');

# Crash restart: leases are gone, tokens still rise.
$primary->stop('immediate');
ok(!-f $primary->data_dir . '/pg_lockctl_leases.dump', 'an immediate shutdown saves nothing');
$primary->start;
is($primary->safe_psql('postgres', 'SELECT count(*) FROM lockctl.leases'),
	'0', 'leases do not survive a crash');
take($primary, 'a', 'o3');
take($primary, 'd', 'o3');

# Twice in a row, without a grant in between (only the epoch moves).
$primary->stop('immediate');
$primary->start;
take($primary, 'a', 'o4');

# A streaming standby refuses to grant, and its view works.
$primary->backup('b1');
my $standby = PostgreSQL::Test::Cluster->new('lease_standby');
$standby->init_from_backup($primary, 'b1', has_streaming => 1);
$standby->append_conf('postgresql.conf', "shared_preload_libraries = 'lockctl'");
$standby->start;
take($primary, 'e', 'o5');
$primary->wait_for_catchup($standby);
for my $call ("lockctl.acquire('x', 'o')", "lockctl.renew('x', 1)",
	"lockctl.release('x', 1)", "lockctl.fence('x', 1)",
	"lockctl.force_release('x')")
{
	my ($ret, $out, $err) = $standby->psql('postgres',
		"\\set VERBOSITY verbose\nSELECT $call");
	like($err, qr/ERROR:  25006: cannot execute lockctl\.\w+\(\) during recovery/,
		"$call is refused on a standby with 25006");
}
is($standby->safe_psql('postgres', 'SELECT count(*) FROM lockctl.leases'),
	'0', 'the view works on a standby');
is($standby->safe_psql('postgres', 'SELECT live FROM lockctl.lease_stats'),
	'0', 'so do the counters');

# Promotion: the standby's epoch file is older than the primary's, but the
# new timeline puts every token of the promoted server above the old ones.
# Restart the primary twice: its epoch is now ahead of the standby's.
$primary->restart;
$primary->restart;
take($primary, 'e2', 'o5');
my $epoch_of = sub { ($_[0] >> 28) & 0xFFFFF };
$primary->wait_for_catchup($standby);
$primary->stop;
$standby->promote;
$standby->poll_query_until('postgres', 'SELECT NOT pg_is_in_recovery()')
  or die 'promotion did not finish';
take($standby, 'a', 'o6');
ok($epoch_of->($tokens[-1]) < $epoch_of->($tokens[-2]),
	'the promoted standby works from a lower epoch than the old primary');
is($tokens[-1] >> 48, ($tokens[-2] >> 48) + 1,
	'but on the next timeline, which is what makes its tokens higher');
take($standby, 'e', 'o6');
$standby->restart;
take($standby, 'f', 'o6');
$standby->stop('immediate');
$standby->start;
take($standby, 'a', 'o7');

# A full table: 53400 naming the setting; expired leases are swept to make
# room; a release frees a slot.
my $small = LockctlNode->new('lease_small', conf => "lockctl.max_leases = 16\n");
$small->safe_psql('postgres',
	"SELECT lockctl.acquire('k' || i, 'o', '1 hour') FROM generate_series(1, 15) i");
# Long enough to be surely live at the next statement on a loaded machine,
# short enough for the sweep below.
$small->safe_psql('postgres', "SELECT lockctl.acquire('short', 'o', '3 s')");
my ($ret, $out, $err) = $small->psql('postgres',
	"\\set VERBOSITY verbose\nSELECT lockctl.acquire('k16', 'o')");
like($err, qr/ERROR:  53400: too many leases/, 'a full table is 53400');
like($err, qr/HINT:  .*"lockctl\.max_leases"/, 'the hint names lockctl.max_leases');
is($small->safe_psql('postgres', 'SELECT table_full >= 1 FROM lockctl.lease_stats'),
	't', 'and it is counted');
$small->poll_query_until('postgres',
	"SELECT lockctl.acquire('k16', 'o', '1 hour') IS NOT NULL")
  or die 'expired lease was never swept';
pass('an expired lease is swept to make room');
($ret, $out, $err) = $small->psql('postgres', "SELECT lockctl.acquire('k17', 'o')");
like($err, qr/too many leases/, 'full again');
$small->safe_psql('postgres',
	"SELECT lockctl.release('k1', token) FROM lockctl.lease('k1')");
isnt($small->safe_psql('postgres', "SELECT lockctl.acquire('k17', 'o')"),
	'', 'a release frees a slot');
$small->stop;

done_testing();
