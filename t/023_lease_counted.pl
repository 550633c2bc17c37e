# Counted leases (acquire's permits), the waits isolationtester cannot see:
# permits running out and coming back at a holder's expiry, at a release
# and at the end of an expired holder's fencing transaction; waiters served
# first come first served; a cancelled waiter leaves nothing behind; and
# never more holders than permits while many clients come and go.
use strict;
use warnings FATAL => 'all';

use lib 't';
use LockctlNode;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $node = LockctlNode->new('lease_counted');
LockctlNode::create_got($node);

# Start a waiter for one of 2 permits in the background: its acquire's
# result lands in "got".
sub start_waiter
{
	my ($who, $resource, $wait, %opt) = @_;
	my $ttl = $opt{ttl} // '1 hour';
	return LockctlNode::start_waiter($node, $who,
		"lockctl.acquire('$resource', '$who', '$ttl', '$wait', permits => 2)");
}

sub waiters { return LockctlNode::waiters($node, @_); }
sub wait_for_waiters { return LockctlNode::wait_for_waiters($node, @_); }
sub wait_for_got { return LockctlNode::wait_for_got($node, @_); }
sub server_now { return LockctlNode::server_now($node); }
sub granted_promptly { return LockctlNode::granted_promptly($node, @_); }

sub acquire2
{
	my ($resource, $owner, $ttl) = @_;
	return $node->safe_psql('postgres',
		"SELECT lockctl.acquire('$resource', '$owner', '$ttl', permits => 2)");
}

# Permits run out, and come back at a holder's expiry (not before): the
# waiter sleeps until the earliest expiry of the holders.
acquire2('exp', 'short', '1.5 s');
acquire2('exp', 'long', '1 hour');
my $expires = $node->safe_psql('postgres',
	"SELECT expires_at FROM lockctl.leases WHERE resource = 'exp' AND owner = 'short'");
my $w = start_waiter('w-expiry', 'exp', '5 min');
wait_for_got('w-expiry');
is($node->safe_psql('postgres',
		"SELECT at >= '$expires'::timestamptz - interval '20 ms' FROM got WHERE who = 'w-expiry'"),
	't', 'the waiter got a permit only once a holder expired');
is($node->safe_psql('postgres',
		"SELECT string_agg(owner, ',' ORDER BY owner) FROM lockctl.leases WHERE resource = 'exp'"),
	'long,w-expiry', 'the long holder keeps its permit, the waiter has the other');
is($node->safe_psql('postgres',
		"SELECT wait_event_type IS DISTINCT FROM 'Extension' FROM pg_stat_activity WHERE application_name = 'w-expiry'"),
	't', 'the granted waiter is no longer waiting');
$w->quit;

# First come, first served: three waiters for a full counted lease; each
# release hands one permit to the next in line, and a newcomer that does
# not wait does not jump the line.  Leases and waits of an hour: each grant
# is the work of a release's wake-up.
my @held = (acquire2('fifo', 'h1', '1 hour'), acquire2('fifo', 'h2', '1 hour'));
my @ws;
for my $i (1 .. 3)
{
	push @ws, start_waiter("fifo-$i", 'fifo', '1 hour');
	wait_for_waiters('fifo', $i);
}
# From 17 on, the sleep has its own wait event (src/compat.h).
my $pg17 = $node->safe_psql('postgres', 'SHOW server_version_num') >= 170000;
is($node->safe_psql('postgres',
		"SELECT wait_event_type || '/' || wait_event FROM pg_stat_activity WHERE application_name = 'fifo-1'"),
	$pg17 ? 'Extension/LockctlLeaseWait' : 'Extension/Extension',
	'a waiter sleeps on a wait event, it does not spin');
is($node->safe_psql('postgres',
		"SELECT DISTINCT waiters FROM lockctl.leases WHERE resource = 'fifo'"),
	'3', 'the view counts the waiters on every holder\'s row');
my $since = server_now();
$node->safe_psql('postgres', "SELECT lockctl.release('fifo', $held[0])");
is(granted_promptly('fifo-1', $since), 't', 'the first release wakes the first waiter');
is(waiters('fifo'), '2', 'one release, one permit: the others still wait');
is($node->safe_psql('postgres',
		"SELECT lockctl.acquire('fifo', 'newcomer', permits => 2) IS NULL"),
	't', 'a newcomer does not jump the line');
$since = server_now();
$node->safe_psql('postgres', "SELECT lockctl.release('fifo', $held[1])");
is(granted_promptly('fifo-2', $since), 't', 'the second release wakes the second waiter');
my $t1 = $node->safe_psql('postgres', "SELECT token FROM got WHERE who = 'fifo-1'");
$since = server_now();
$node->safe_psql('postgres', "SELECT lockctl.release('fifo', $t1)");
is(granted_promptly('fifo-3', $since), 't', 'a woken waiter\'s release wakes the third');
is($node->safe_psql('postgres',
		"SELECT string_agg(who, ',' ORDER BY n) FROM got WHERE who LIKE 'fifo-%'"),
	'fifo-1,fifo-2,fifo-3', 'waiters were served in arrival order');
is($node->safe_psql('postgres',
		"SELECT bool_and(token > $held[1]) AND count(DISTINCT token) = 3 FROM got WHERE who LIKE 'fifo-%'"),
	't', 'each got its own, higher token');
$_->quit for @ws;

# An expired holder whose fencing transaction is open keeps its permit:
# the waiter waits past the expiry, and gets the permit at the commit.
# (The fencer's session is open and the other permit taken before its
# 500 ms lease, so that a loaded machine cannot let it expire before the
# fence, as t/024 does.)
acquire2('fenced', 'other', '1 hour');
my $fencer = $node->background_psql('postgres');
my $t_f = acquire2('fenced', 'fencer', '500 ms');
$fencer->query_safe("BEGIN; SELECT lockctl.fence('fenced', $t_f);");
$w = start_waiter('w-fenced', 'fenced', '1 hour');
wait_for_waiters('fenced', 1);
$node->poll_query_until('postgres',
	"SELECT count(*) = 0 FROM lockctl.leases WHERE resource = 'fenced' AND owner = 'fencer'")
  or die 'the fenced holder never expired';
$node->poll_query_until('postgres',
	"SELECT clock_timestamp() > (SELECT waiting_since FROM lockctl.lease_waiters WHERE resource = 'fenced') + interval '1 s'")
  or die 'clock did not move';
is(waiters('fenced'), '1', 'an expired but fenced permit is not granted to the waiter');
$since = server_now();
$fencer->query_safe('COMMIT');
is(granted_promptly('w-fenced', $since), 't', 'the end of the fencing transaction wakes the waiter');
ok($node->safe_psql('postgres', "SELECT token FROM got WHERE who = 'w-fenced'") > $t_f,
	'the waiter got the permit once the fencing transaction ended');
$fencer->quit;
$w->quit;

# A cancelled waiter leaves the line and nothing behind.
acquire2('cancel', 'h1', '1 hour');
acquire2('cancel', 'h2', '1 hour');
$w = start_waiter('w-cancel', 'cancel', '5 min');
wait_for_waiters('cancel', 1);
$node->safe_psql('postgres',
	"SELECT pg_cancel_backend(pid) FROM pg_stat_activity WHERE application_name = 'w-cancel'");
wait_for_waiters('cancel', 0);
$w->query_until(qr/^after\n/m, "\\echo after\n");
like($w->{stderr}, qr/canceling statement due to user request/, 'cancel ends the wait with an error');
$w->quit;
is($node->safe_psql('postgres',
		"SELECT count(*) FROM lockctl.leases WHERE resource = 'cancel'"),
	'2', 'the holders are untouched');

# Many clients, 3 permits: pgbench takes and gives back permits while a
# checker records the holders; never more than 3 at once, every token
# distinct.
$node->safe_psql('postgres', q{
	CREATE TABLE seen (n int, at timestamptz DEFAULT clock_timestamp());
	CREATE TABLE tokens (token bigint PRIMARY KEY);
});
my $script = $node->basedir . '/counted.sql';
PostgreSQL::Test::Utils::append_to_file($script, q{
SELECT lockctl.acquire('sem', 'c' || :client_id, '10 s', '10 s', permits => 3) AS token \gset
INSERT INTO tokens VALUES (:token);
INSERT INTO seen (n) SELECT count(*) FROM lockctl.leases WHERE resource = 'sem';
SELECT lockctl.release('sem', :token);
});
$node->command_ok(
	[ 'pgbench', '-n', '-c', '8', '-j', '4', '-t', '50', '-f', $script,
	  '-p', $node->port, '-h', $node->host, 'postgres' ],
	'8 clients take and give back 3 permits 400 times');
is($node->safe_psql('postgres', 'SELECT count(*), max(n) <= 3, min(n) >= 1 FROM seen'),
	'400|t|t', 'every holder saw at most 3 holders (itself included)');
is($node->safe_psql('postgres', 'SELECT count(*) FROM tokens'),
	'400', 'every grant had its own token');
is($node->safe_psql('postgres',
		"SELECT count(*) FROM lockctl.leases WHERE resource = 'sem'"),
	'0', 'every permit was given back');
is($node->safe_psql('postgres', 'SELECT waiting FROM lockctl.lease_stats'),
	'0', 'nobody is counted as waiting');

$node->stop;
done_testing();
