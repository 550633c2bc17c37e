# acquire(..., notify => channel): a LISTENer of the channel, in the
# lease's database, gets one NOTIFY with a JSON payload when the lease ends
# by release, force_release, expiry with nobody touching it (sent by the
# expiry worker), take-over by a waiter, and the end of the session of a
# lease bound to it.  acquire(..., bind => 'session'): the lease does not
# run out while its session lives, and ends ('session ended') when the
# session is terminated or disconnects, the waiter getting it at once; a
# restart does not keep it.
use strict;
use warnings FATAL => 'all';

use lib 't';
use LockctlNode;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $node = LockctlNode->new('lease_notify');
LockctlNode::wait_for_worker($node, 'postgres');
$node->safe_psql('postgres', q{
	CREATE TABLE got (who text, token bigint);
	GRANT ALL ON got TO PUBLIC;
});

sub q1 { return $node->safe_psql('postgres', $_[0]); }

# The listener: a psql session that LISTENs; psql prints a notification
# after the next command it runs.
my $listener = $node->background_psql('postgres');
$listener->query_safe('LISTEN lease_ends');
$listener->query_safe('LISTEN "Other Channel"');
my $heard = '';

# Run trivial commands in the listener until a notification of channel
# with a payload matching re is printed; returns the payload.
sub wait_for_notice
{
	my ($channel, $re, $what) = @_;
	my $deadline = time() + $PostgreSQL::Test::Utils::timeout_default;
	while (time() < $deadline)
	{
		$heard .= $listener->query_safe('SELECT 1');
		while ($heard =~ /Asynchronous notification "([^"]*)" with payload "(.*?)" received from server process with PID \d+\./g)
		{
			my ($ch, $payload) = ($1, $2);
			if ($ch eq $channel && $payload =~ $re)
			{
				$heard =~ s/\Q$payload\E//;
				return $payload;
			}
		}
		$heard = '' if length($heard) > 100000;
		select(undef, undef, undef, 0.05);
	}
	fail("no notice for $what on $channel");
	return '';
}

# released
my $t = q1("SELECT lockctl.acquire('n1', 'o', '1 hour', notify => 'lease_ends')");
is(q1("SELECT notify || ' ' || coalesce(session_pid::text, '-') || ' ' || coalesce(ended, '-') FROM lockctl.lease_options WHERE resource = 'n1'"),
	'lease_ends - -', 'lease_options shows the channel');
q1("SELECT lockctl.release('n1', $t)");
is(wait_for_notice('lease_ends', qr/"n1"/, 'release'),
	qq({"resource": "n1", "token": $t, "ended": "released"}),
	'a release sends its NOTIFY');
is(q1("SELECT count(*) FROM lockctl.lease_options"), '0',
	'the notice is gone once sent');

# force-released, on a channel whose name needs quotes
$t = q1("SELECT lockctl.acquire('n2', 'o', '1 hour', notify => 'Other Channel')");
q1("SELECT lockctl.force_release('n2')");
is(wait_for_notice('Other Channel', qr/"n2"/, 'force_release'),
	qq({"resource": "n2", "token": $t, "ended": "force-released"}),
	'a force_release sends its NOTIFY, on a channel with capitals and a space');

# expired: nobody touches the lease; the worker sees it run out
$t = q1("SELECT lockctl.acquire('n3', 'o', '300 ms', notify => 'lease_ends')");
is(wait_for_notice('lease_ends', qr/"n3"/, 'expiry'),
	qq({"resource": "n3", "token": $t, "ended": "expired"}),
	'an expiry with nobody in line sends its NOTIFY');
is(q1("SELECT count(*) FROM lockctl.lease('n3')"), '0', 'and it has ended');
is(q1("SELECT lockctl.watch('n3', $t, '0')"), 'expired', 'watch agrees');

# taken over: a waiter in line takes it at its expiry (the waiter queues
# while the lease lasts an hour; then a renew makes it run out at once)
$t = q1("SELECT lockctl.acquire('n4', 'o', '1 hour', notify => 'lease_ends')");
my $waiter = $node->background_psql('postgres');
$waiter->query_until(qr/^started\n/m, q{
\echo started
INSERT INTO got SELECT 'n4', lockctl.acquire('n4', 'next', '1 hour', '1 min');
});
$node->poll_query_until('postgres',
	"SELECT count(*) = 1 FROM lockctl.lease_waiters WHERE resource = 'n4'")
  or die 'the waiter never queued';
q1("SELECT lockctl.renew('n4', $t, '1 ms')");
is(wait_for_notice('lease_ends', qr/"n4"/, 'take-over'),
	qq({"resource": "n4", "token": $t, "ended": "taken over"}),
	'a take-over sends its NOTIFY');
$node->poll_query_until('postgres', "SELECT count(*) = 1 FROM got WHERE who = 'n4'")
  or die 'the waiter never got n4';
$waiter->quit;

# counted and shared holders carry a channel too
$t = q1("SELECT lockctl.acquire('n7', 'o', '1 hour', permits => 3, notify => 'lease_ends')");
q1("SELECT lockctl.release('n7', $t)");
is(wait_for_notice('lease_ends', qr/"n7"/, 'counted release'),
	qq({"resource": "n7", "token": $t, "ended": "released"}),
	'a counted holder sends its NOTIFY');
$t = q1("SELECT lockctl.acquire_shared('n8', 'o', '300 ms', notify => 'lease_ends')");
is(wait_for_notice('lease_ends', qr/"n8"/, 'shared expiry'),
	qq({"resource": "n8", "token": $t, "ended": "expired"}),
	'a shared holder that runs out sends its NOTIFY');

# Session-bound, ended by pg_terminate_backend, with a waiter in line.
my $holder = $node->background_psql('postgres', on_error_stop => 0);
$t = $holder->query_safe(
	"SELECT lockctl.acquire('n5', 'o', '1 ms', notify => 'lease_ends', bind => 'session')");
chomp $t;
my $pid = $holder->query_safe('SELECT pg_backend_pid()');
chomp $pid;
is(q1("SELECT expires_at FROM lockctl.leases WHERE resource = 'n5'"), 'infinity',
	'a session-bound lease does not run out');
is(q1("SELECT session_pid FROM lockctl.lease_options WHERE resource = 'n5'"), $pid,
	'lease_options shows the session it is bound to');
is(q1("SELECT lockctl.renew('n5', $t, '1 s')"), 'infinity',
	'renew leaves it bound');
$waiter = $node->background_psql('postgres');
$waiter->query_until(qr/^started\n/m, q{
\echo started
INSERT INTO got SELECT 'n5', lockctl.acquire('n5', 'next', '1 hour', '1 min');
});
$node->poll_query_until('postgres',
	"SELECT count(*) = 1 FROM lockctl.lease_waiters WHERE resource = 'n5'")
  or die 'the waiter never queued';
q1("SELECT pg_terminate_backend($pid)");
is(wait_for_notice('lease_ends', qr/"n5"/, 'terminated session'),
	qq({"resource": "n5", "token": $t, "ended": "session ended"}),
	'pg_terminate_backend ends the bound lease, with its NOTIFY');
$node->poll_query_until('postgres', "SELECT count(*) = 1 FROM got WHERE who = 'n5'")
  or die 'the waiter never got n5';
is(q1("SELECT owner FROM lockctl.lease('n5')"), 'next', 'the waiter got it');
is(q1("SELECT lockctl.watch('n5', $t, '0')"), 'session ended',
	'watch says the session ended');
$waiter->quit;
$holder->quit;

# Session-bound, ended by a clean disconnect.
$holder = $node->background_psql('postgres');
$t = $holder->query_safe(
	"SELECT lockctl.acquire_shared('n6', 'o', '1 hour', bind => 'session')");
chomp $t;
is(q1("SELECT count(*) FROM lockctl.leases WHERE resource = 'n6'"), '1', 'held');
$holder->quit;
$node->poll_query_until('postgres', "SELECT count(*) = 0 FROM lockctl.leases WHERE resource = 'n6'")
  or die 'n6 outlived its session';
is(q1("SELECT lockctl.watch('n6', $t, '0')"), 'session ended',
	'a disconnect ends the bound lease');

# A restart keeps no session-bound lease (the session is gone), while a
# lease with a ttl is kept.
$holder = $node->background_psql('postgres', on_error_stop => 0);
$holder->query_safe("SELECT lockctl.acquire('n9', 'o', bind => 'session')");
q1("SELECT lockctl.acquire('n10', 'o', '1 hour')");
$listener->quit;
$node->restart;
is(q1("SELECT string_agg(resource, ',' ORDER BY resource) FROM lockctl.leases WHERE resource IN ('n9', 'n10')"),
	'n10', 'after a restart the bound lease is gone, the one with a ttl is there');
eval { $holder->quit; };

done_testing();
