# lockctl.watch: a watcher sleeps (on its latch, no polling) until the
# lease of its token ends, and is woken by the release, a force_release,
# the expiry, a take-over by a waiter and an era change; it returns 'live'
# when its timeout passes first; cancel and statement_timeout end it and
# leave nothing behind (lease_stats.watching); a clean restart ends the
# watch with the connection, the lease is restored and can be watched
# again, and ends from before the restart are no longer known.
use strict;
use warnings FATAL => 'all';

use lib 't';
use LockctlNode;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $node = LockctlNode->new('lease_watch');
$node->safe_psql('postgres', q{
	CREATE TABLE seen (who text, how text, at timestamptz DEFAULT clock_timestamp());
	CREATE TABLE got (who text, token bigint);
	GRANT ALL ON seen, got TO PUBLIC;
});

sub q1 { return $node->safe_psql('postgres', $_[0]); }

# Start a watcher in the background: what watch returns lands in "seen".
sub start_watcher
{
	my ($who, $resource, $token, $timeout, %opt) = @_;
	my $s = $node->background_psql('postgres', on_error_stop => 0);
	$s->query_safe("SET application_name = '$who'");
	$s->query_safe($opt{set}) if $opt{set};
	$s->query_until(qr/^started\n/m, qq{
\\echo started
INSERT INTO seen (who, how) SELECT '$who', lockctl.watch('$resource', $token, '$timeout');
});
	return $s;
}

# Wait until the watcher sleeps in watch: it counts in lease_stats.watching
# and waits on its latch (wait event "LockctlLeaseWatch" from 17 on,
# "Extension" before).
sub wait_for_sleep
{
	my ($who) = @_;
	$node->poll_query_until('postgres', qq{
		SELECT wait_event IN ('LockctlLeaseWatch', 'Extension')
		  FROM pg_stat_activity WHERE application_name = '$who'})
	  or die "$who never slept";
}

sub wait_for_seen
{
	my ($who) = @_;
	$node->poll_query_until('postgres', "SELECT count(*) = 1 FROM seen WHERE who = '$who'")
	  or die "$who was never woken";
	return q1("SELECT how FROM seen WHERE who = '$who'");
}

sub watching { return q1('SELECT watching FROM lockctl.lease_stats'); }

# Watches and leases last an hour, so that no timeout or expiry ends a
# watch that the end it waits for did not wake.  A watcher that was not
# woken may still see the end at a later wake-up that was not for it
# (PostgreSQL's, authentication_timeout after each connection started,
# which t/LockctlNode.pm moves to 10 minutes); woken_promptly says
# whether WHO's watch ended within 20 s of SINCE (server_now, just before
# the end that must wake it), which catches that.
sub server_now { return LockctlNode::server_now($node); }

sub woken_promptly
{
	my ($who, $since) = @_;
	return q1("SELECT at - '$since' < interval '20 s' FROM seen WHERE who = '$who'");
}

# Woken by the release; the lease lasts an hour, so only the release can
# end the watch.
my $t = q1("SELECT lockctl.acquire('r1', 'holder', '1 hour')");
my $w = start_watcher('w-release', 'r1', $t, '1 hour');
wait_for_sleep('w-release');
is(watching(), '1', 'lease_stats counts the watcher');
is(q1("SELECT count(*) FROM seen"), '0', 'a live lease keeps the watcher asleep');
my $since = server_now();
q1("SELECT lockctl.release('r1', $t)");
is(wait_for_seen('w-release'), 'released', 'woken by the release');
is(woken_promptly('w-release', $since), 't', 'at once');
is(watching(), '0', 'and it no longer counts');
$w->quit;

# Two watchers of one lease are both woken, by a force_release.
$t = q1("SELECT lockctl.acquire('r2', 'holder', '1 hour')");
$w = start_watcher('w-force', 'r2', $t, '1 hour');
my $w2 = start_watcher('w-force2', 'r2', $t, '1 hour');
wait_for_sleep('w-force');
wait_for_sleep('w-force2');
$since = server_now();
q1("SELECT lockctl.force_release('r2')");
is(wait_for_seen('w-force'), 'force-released', 'woken by a force_release');
is(wait_for_seen('w-force2'), 'force-released', 'every watcher of the lease is woken');
is(woken_promptly('w-force', $since) . woken_promptly('w-force2', $since), 'tt',
	'both at once');
$w->quit;
$w2->quit;

# Woken by the expiry, not before it; a renew meanwhile moves the moment.
$t = q1("SELECT lockctl.acquire('r3', 'holder', '1 hour')");
$w = start_watcher('w-expiry', 'r3', $t, '1 hour');
wait_for_sleep('w-expiry');
q1("SELECT lockctl.renew('r3', $t, '1.5 s')");
my $expires = q1("SELECT expires_at FROM lockctl.lease('r3')");
is(wait_for_seen('w-expiry'), 'expired', 'woken by the expiry');
is(q1("SELECT at >= '$expires'::timestamptz - interval '20 ms' FROM seen WHERE who = 'w-expiry'"),
	't', 'not before the renewed expiry');
is(woken_promptly('w-expiry', $expires), 't', 'and at it');
$w->quit;

# Taken over: a waiter is in line when the lease runs out; the watcher
# says the lease passed to it.  The lease lasts an hour until the waiter
# is in line, then is renewed to run out soon.
$t = q1("SELECT lockctl.acquire('r4', 'holder', '1 hour')");
$w = start_watcher('w-take', 'r4', $t, '1 hour');
wait_for_sleep('w-take');
my $waiter = $node->background_psql('postgres', on_error_stop => 0);
$waiter->query_until(qr/^started\n/m, qq{
\\echo started
INSERT INTO got SELECT 'next', lockctl.acquire('r4', 'next', '1 hour', '1 hour');
});
$node->poll_query_until('postgres',
	"SELECT count(*) = 1 FROM lockctl.lease_waiters WHERE resource = 'r4'")
  or die 'the waiter never queued';
$since = server_now();
q1("SELECT lockctl.renew('r4', $t, '200 ms')");
is(wait_for_seen('w-take'), 'taken over', 'woken by the take-over');
is(woken_promptly('w-take', $since), 't', 'when it happens');
$node->poll_query_until('postgres', "SELECT count(*) = 1 FROM got WHERE who = 'next'")
  or die 'the waiter was never granted';
is(q1("SELECT owner FROM lockctl.lease('r4')"), 'next', 'the waiter holds it');
is(q1("SELECT lockctl.watch('r4', $t, '0')"), 'taken over', 'a late watch says the same');
$w->quit;
$waiter->quit;

# A counted holder's watcher is woken by its own release only.
my $p1 = q1("SELECT lockctl.acquire('sem', 'p1', '1 hour', permits => 2)");
my $p2 = q1("SELECT lockctl.acquire('sem', 'p2', '1 hour', permits => 2)");
$w = start_watcher('w-p1', 'sem', $p1, '1 hour');
wait_for_sleep('w-p1');
q1("SELECT lockctl.release('sem', $p2)");
q1("SELECT lockctl.renew('sem', $p1, '2 hours')");
is(q1("SELECT count(*) FROM seen WHERE who = 'w-p1'"), '0',
	'another holder\'s release does not end the watch');
wait_for_sleep('w-p1');
$since = server_now();
q1("SELECT lockctl.release('sem', $p1)");
is(wait_for_seen('w-p1'), 'released', 'its own release does');
is(woken_promptly('w-p1', $since), 't', 'at once');
$w->quit;

# A shared holder's watcher, woken by the end of its role's leases.
q1("CREATE ROLE watch_app LOGIN");
my $s1 = $node->safe_psql('postgres',
	"SET ROLE watch_app; SELECT lockctl.acquire_shared('rw', 's1', '1 hour')");
$w = start_watcher('w-shared', 'rw', $s1, '1 hour', set => 'SET ROLE watch_app');
wait_for_sleep('w-shared');
$since = server_now();
q1("SELECT lockctl.release_role_leases('watch_app')");
is(wait_for_seen('w-shared'), 'force-released', 'release_role_leases wakes a shared holder\'s watcher');
is(woken_promptly('w-shared', $since), 't', 'at once');
$w->quit;

# The timeout: 'live'.
$t = q1("SELECT lockctl.acquire('r5', 'holder', '1 hour')");
is(q1("SELECT lockctl.watch('r5', $t, '200 ms')"), 'live', 'live when the timeout passes');

# Cancel and statement_timeout end a watch and leave no watcher behind;
# the next end is recorded and a new watch sees it.
$w = start_watcher('w-cancel', 'r5', $t, '1 hour');
wait_for_sleep('w-cancel');
q1("SELECT pg_cancel_backend(pid) FROM pg_stat_activity WHERE application_name = 'w-cancel'");
$w->query_until(qr/^after\n/m, "\\echo after\n");
like($w->{stderr}, qr/canceling statement due to user request/, 'cancel ends the watch');
is(watching(), '0', 'no watcher left after a cancel');
$w->{stderr} = '';
is($w->query_safe("SELECT lockctl.watch('r5', $t, '0')"), 'live',
	'the cancelled session watches again');
$w->quit;

my ($ret, $out, $err) = $node->psql('postgres',
	"SET statement_timeout = '300ms'; SELECT lockctl.watch('r5', $t, '1 hour')");
like($err, qr/canceling statement due to statement timeout/, 'statement_timeout ends the watch');
is(watching(), '0', 'no watcher left after statement_timeout');
q1("SELECT lockctl.release('r5', $t)");
is(q1("SELECT lockctl.watch('r5', $t, '0')"), 'released', 'a late watch learns how it ended');

# A terminated watcher leaves nothing behind either.
$t = q1("SELECT lockctl.acquire('r6', 'holder', '1 hour')");
$w = start_watcher('w-term', 'r6', $t, '1 hour');
wait_for_sleep('w-term');
q1("SELECT pg_terminate_backend(pid, 10000) FROM pg_stat_activity WHERE application_name = 'w-term'");
$node->poll_query_until('postgres', 'SELECT watching = 0 FROM lockctl.lease_stats')
  or die 'the terminated watcher stayed';
pass('a terminated watcher leaves');
eval { $w->quit; };

# An era change (a raised token floor) loses every live lease: its watcher
# says 'lost', and so does a late watch.
$w = start_watcher('w-era', 'r6', $t, '1 hour');
wait_for_sleep('w-era');
$since = server_now();
q1("SELECT lockctl.raise_token_floor((($t >> 48) + 1) << 48)");
is(wait_for_seen('w-era'), 'lost', 'an era change wakes the watcher: lost');
is(woken_promptly('w-era', $since), 't', 'at once');
is(q1("SELECT lockctl.watch('r6', $t, '0')"), 'lost', 'a late watch says lost too');
$w->quit;

# A clean restart: the watch ends with its connection; the lease is
# restored and watched again; an end from before is no longer known.
my $old = q1("SELECT lockctl.acquire('r7', 'old', '1 hour')");
q1("SELECT lockctl.release('r7', $old)");
$t = q1("SELECT lockctl.acquire('r8', 'holder', '1 hour')");
$w = start_watcher('w-restart', 'r8', $t, '1 hour');
wait_for_sleep('w-restart');
$node->restart;
eval { $w->quit; };
is(watching(), '0', 'no watcher after the restart');
is(q1("SELECT lockctl.watch('r8', $t, '0')"), 'live', 'the restored lease is watched again');
$w = start_watcher('w-after', 'r8', $t, '1 hour');
wait_for_sleep('w-after');
$since = server_now();
q1("SELECT lockctl.release('r8', $t)");
is(wait_for_seen('w-after'), 'released', 'and its watcher woken by its release');
is(woken_promptly('w-after', $since), 't', 'at once');
$w->quit;
($ret, $out, $err) = $node->psql('postgres', "SELECT lockctl.watch('r7', $old, '0')");
like($err, qr/ERROR:  lease "r7" is no longer held by token/,
	'an end from before the restart is not remembered: a stale token');

$node->stop;
done_testing();
