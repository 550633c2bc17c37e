# lockctl.watch: a watcher sleeps (on its latch, no polling) until the
# lease of its token ends, and is woken by the release, a force_release,
# the expiry, and a take-over by a waiter; it returns 'live' when its
# timeout passes first; a cancelled watch leaves nothing behind.
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
});

sub q1 { return $node->safe_psql('postgres', $_[0]); }

# Start a watcher in the background: what watch returns lands in "seen".
sub start_watcher
{
	my ($who, $resource, $token, $timeout) = @_;
	my $s = $node->background_psql('postgres', on_error_stop => 0);
	$s->query_safe("SET application_name = '$who'");
	$s->query_until(qr/^started\n/m, qq{
\\echo started
INSERT INTO seen (who, how) SELECT '$who', lockctl.watch('$resource', $token, '$timeout');
});
	return $s;
}

# Wait until the watcher sleeps in watch (its wait event), then return.
sub wait_for_sleep
{
	my ($who) = @_;
	$node->poll_query_until('postgres',
		"SELECT wait_event_type = 'Extension' FROM pg_stat_activity WHERE application_name = '$who'")
	  or die "$who never slept";
}

sub wait_for_seen
{
	my ($who) = @_;
	$node->poll_query_until('postgres', "SELECT count(*) = 1 FROM seen WHERE who = '$who'")
	  or die "$who was never woken";
	return q1("SELECT how FROM seen WHERE who = '$who'");
}

# Woken by the release; the lease lasts an hour, so only the release can
# end the watch.
my $t = q1("SELECT lockctl.acquire('r1', 'holder', '1 hour')");
my $w = start_watcher('w-release', 'r1', $t, '5 min');
wait_for_sleep('w-release');
q1("SELECT lockctl.release('r1', $t)");
is(wait_for_seen('w-release'), 'released', 'woken by the release');
$w->quit;

# Woken by a force_release.
$t = q1("SELECT lockctl.acquire('r2', 'holder', '1 hour')");
$w = start_watcher('w-force', 'r2', $t, '5 min');
wait_for_sleep('w-force');
q1("SELECT lockctl.force_release('r2')");
is(wait_for_seen('w-force'), 'force-released', 'woken by a force_release');
$w->quit;

# Woken by the expiry, not before it; a renew meanwhile moves the moment.
$t = q1("SELECT lockctl.acquire('r3', 'holder', '1 s')");
$w = start_watcher('w-expiry', 'r3', $t, '5 min');
wait_for_sleep('w-expiry');
q1("SELECT lockctl.renew('r3', $t, '1.5 s')");
my $expires = q1("SELECT expires_at FROM lockctl.lease('r3')");
is(wait_for_seen('w-expiry'), 'expired', 'woken by the expiry');
is(q1("SELECT at >= '$expires'::timestamptz - interval '20 ms' FROM seen WHERE who = 'w-expiry'"),
	't', 'not before the renewed expiry');
$w->quit;

# Taken over: a waiter is in line when the lease expires; the watcher says
# the lease passed to someone else.
$t = q1("SELECT lockctl.acquire('r4', 'holder', '3 s')");
$w = start_watcher('w-take', 'r4', $t, '5 min');
wait_for_sleep('w-take');
my $waiter = $node->background_psql('postgres', on_error_stop => 0);
$waiter->query_until(qr/^started\n/m, qq{
\\echo started
INSERT INTO got SELECT 'next', lockctl.acquire('r4', 'next', '1 hour', '5 min');
});
$node->poll_query_until('postgres',
	"SELECT count(*) = 1 FROM lockctl.lease_waiters WHERE resource = 'r4'")
  or die 'the waiter never queued';
is(wait_for_seen('w-take'), 'taken over', 'woken by the take-over');
$node->poll_query_until('postgres', "SELECT count(*) = 1 FROM got WHERE who = 'next'")
  or die 'the waiter was never granted';
is(q1("SELECT owner FROM lockctl.lease('r4')"), 'next', 'the waiter holds it');
$w->quit;
$waiter->quit;

# A counted holder's watcher is woken by its own release only.
my $p1 = q1("SELECT lockctl.acquire('sem', 'p1', '1 hour', permits => 2)");
my $p2 = q1("SELECT lockctl.acquire('sem', 'p2', '1 hour', permits => 2)");
$w = start_watcher('w-p1', 'sem', $p1, '5 min');
wait_for_sleep('w-p1');
q1("SELECT lockctl.release('sem', $p2)");
q1("SELECT lockctl.renew('sem', $p1, '2 hours')");
is(q1("SELECT count(*) FROM seen WHERE who = 'w-p1'"), '0',
	'another holder\'s release does not end the watch');
q1("SELECT lockctl.release('sem', $p1)");
is(wait_for_seen('w-p1'), 'released', 'its own release does');
$w->quit;

# The timeout: 'live'.
$t = q1("SELECT lockctl.acquire('r5', 'holder', '1 hour')");
is(q1("SELECT lockctl.watch('r5', $t, '200 ms')"), 'live', 'live when the timeout passes');

# A cancelled watch leaves no watcher behind: the next end is recorded and
# a new watch sees it.
$w = start_watcher('w-cancel', 'r5', $t, '5 min');
wait_for_sleep('w-cancel');
q1("SELECT pg_cancel_backend(pid) FROM pg_stat_activity WHERE application_name = 'w-cancel'");
$w->query_until(qr/^after\n/m, "\\echo after\n");
like($w->{stderr}, qr/canceling statement due to user request/, 'cancel ends the watch');
$w->quit;
q1("SELECT lockctl.release('r5', $t)");
is(q1("SELECT lockctl.watch('r5', $t, '0')"), 'released', 'a late watch learns how it ended');

$node->stop;
done_testing();
