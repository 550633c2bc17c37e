# Shared leases, the waits isolationtester cannot see: two shared holders
# and a waiting exclusive one; a shared waiter behind an exclusive waiter
# waits its turn (no starvation); a shared fence holds an exclusive waiter
# off past the shared holder's expiry; and, under many clients, never a
# shared and an exclusive holder at once.
use strict;
use warnings FATAL => 'all';

use lib 't';
use LockctlNode;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $node = LockctlNode->new('lease_shared');
LockctlNode::create_got($node);

# Start a waiter in the background (fn: acquire or acquire_shared): its
# result lands in "got".
sub start_waiter
{
	my ($who, $fn, $resource, %opt) = @_;
	my $ttl = $opt{ttl} // '1 hour';
	return LockctlNode::start_waiter($node, $who,
		"lockctl.$fn('$resource', '$who', '$ttl', '1 hour')");
}

sub waiters { return LockctlNode::waiters($node, @_); }
sub wait_for_waiters { return LockctlNode::wait_for_waiters($node, @_); }
sub wait_for_got { return LockctlNode::wait_for_got($node, @_); }
sub server_now { return LockctlNode::server_now($node); }
sub granted_promptly { return LockctlNode::granted_promptly($node, @_); }

sub q1 { return $node->safe_psql('postgres', $_[0]); }

# Two shared holders and a waiting exclusive one; a shared acquire behind
# the exclusive waiter waits too, even though only shared holders hold.
my $s1 = q1("SELECT lockctl.acquire_shared('doc', 's1', '1 hour')");
my $s2 = q1("SELECT lockctl.acquire_shared('doc', 's2', '1 hour')");
my $wx = start_waiter('x', 'acquire', 'doc');
wait_for_waiters('doc', 1);
is(q1("SELECT lockctl.acquire_shared('doc', 'newcomer') IS NULL"),
	't', 'a shared newcomer that does not wait yields to the exclusive waiter');
my $ws = start_waiter('s3', 'acquire_shared', 'doc');
wait_for_waiters('doc', 2);
is(q1("SELECT string_agg(owner, ',' ORDER BY queue_position) FROM lockctl.lease_waiters WHERE resource = 'doc'"),
	'x,s3', 'the shared waiter queues behind the exclusive one');
q1("SELECT lockctl.release('doc', $s1)");
is(waiters('doc'), '2', 'one shared holder left: the exclusive waiter still waits');
my $since = server_now();
q1("SELECT lockctl.release('doc', $s2)");
is(granted_promptly('x', $since), 't', 'the last shared release wakes the exclusive waiter');
is(q1("SELECT string_agg(mode || ':' || owner, ',') FROM lockctl.leases WHERE resource = 'doc'"),
	'exclusive:x', 'the last shared release hands the lease to the exclusive waiter');
is(waiters('doc'), '1', 'and the shared waiter waits for the exclusive holder');
my $tx = q1("SELECT token FROM got WHERE who = 'x'");
ok($tx > $s2, 'the exclusive holder has a higher token');
$since = server_now();
q1("SELECT lockctl.release('doc', $tx)");
is(granted_promptly('s3', $since), 't', 'the exclusive release wakes the shared waiter');
is(q1("SELECT string_agg(mode || ':' || owner, ',') FROM lockctl.leases WHERE resource = 'doc'"),
	'shared:s3', 'then the shared waiter gets it');
$wx->quit;
$ws->quit;
q1("SELECT lockctl.force_release('doc')");

# Consecutive shared waiters are granted together when an exclusive
# holder releases.
my $x = q1("SELECT lockctl.acquire('batch', 'x', '1 hour')");
my @ws;
for my $i (1 .. 3)
{
	push @ws, start_waiter("b$i", 'acquire_shared', 'batch');
	wait_for_waiters('batch', $i);
}
$since = server_now();
q1("SELECT lockctl.release('batch', $x)");
is(granted_promptly("b$_", $since), 't', "the release wakes shared waiter b$_")
  for 1 .. 3;
is(q1("SELECT count(*) FROM lockctl.leases WHERE resource = 'batch' AND mode = 'shared'"),
	'3', 'one release lets every shared waiter in');
$_->quit for @ws;

# A shared holder's fence holds an exclusive waiter off past the shared
# holder's expiry, until the fencing transaction ends.
# The fencer's session is open before the 500 ms lease is taken, so that
# a slow start of psql on a busy machine cannot outlast it.
my $fencer = $node->background_psql('postgres');
my $sf = $fencer->query_safe(
	"SELECT lockctl.acquire_shared('fenced', 'reader', '500 ms')");
$fencer->query_safe("BEGIN; SELECT lockctl.fence('fenced', $sf);");
$wx = start_waiter('fx', 'acquire', 'fenced');
wait_for_waiters('fenced', 1);
$node->poll_query_until('postgres',
	"SELECT count(*) = 0 FROM lockctl.leases WHERE resource = 'fenced'")
  or die 'the shared lease never expired';
$node->poll_query_until('postgres',
	"SELECT clock_timestamp() > (SELECT waiting_since FROM lockctl.lease_waiters WHERE resource = 'fenced') + interval '1 s'")
  or die 'clock did not move';
is(waiters('fenced'), '1', 'an expired but fenced shared lease keeps the exclusive waiter out');
is(q1("SELECT lockctl.acquire_shared('fenced', 'r2') IS NULL"), 't',
	'a shared newcomer yields to the waiting exclusive one');
$since = server_now();
$fencer->query_safe('COMMIT');
is(granted_promptly('fx', $since), 't', 'the end of the shared fence wakes the exclusive waiter');
ok(q1("SELECT token FROM got WHERE who = 'fx'") > $sf,
	'the exclusive waiter got the lease once the shared fence ended');
$fencer->quit;
$wx->quit;

# Many clients, shared and exclusive: every client records what it saw
# while holding; never a shared and an exclusive holder at once, never two
# exclusive ones.
q1(q{
	CREATE TABLE seen (mode text, shared int, exclusive int);
	CREATE TABLE tokens (token bigint PRIMARY KEY);
});
my $dir = $node->basedir;
PostgreSQL::Test::Utils::append_to_file("$dir/shared.sql", q{
SELECT lockctl.acquire_shared('rw', 'r' || :client_id, '10 s', '10 s') AS token \gset
INSERT INTO tokens VALUES (:token);
INSERT INTO seen SELECT 'shared', count(*) FILTER (WHERE mode = 'shared'),
       count(*) FILTER (WHERE mode = 'exclusive') FROM lockctl.leases WHERE resource = 'rw';
SELECT lockctl.release('rw', :token);
});
PostgreSQL::Test::Utils::append_to_file("$dir/exclusive.sql", q{
SELECT lockctl.acquire('rw', 'w' || :client_id, '10 s', '10 s') AS token \gset
INSERT INTO tokens VALUES (:token);
INSERT INTO seen SELECT 'exclusive', count(*) FILTER (WHERE mode = 'shared'),
       count(*) FILTER (WHERE mode = 'exclusive') FROM lockctl.leases WHERE resource = 'rw';
SELECT lockctl.release('rw', :token);
});
$node->command_ok(
	[ 'pgbench', '-n', '-c', '8', '-j', '4', '-t', '50',
	  '-f', "$dir/shared.sql\@3", '-f', "$dir/exclusive.sql\@1",
	  '-p', $node->port, '-h', $node->host, 'postgres' ],
	'8 clients take shared and exclusive leases 400 times');
is(q1(q{SELECT count(*) FROM seen}), '400', 'every grant recorded what it saw');
is(q1(q{SELECT count(*) FROM seen WHERE mode = 'shared' AND (exclusive > 0 OR shared < 1)}),
	'0', 'a shared holder never saw an exclusive one');
is(q1(q{SELECT count(*) FROM seen WHERE mode = 'exclusive' AND (exclusive <> 1 OR shared > 0)}),
	'0', 'an exclusive holder was always alone');
ok(q1(q{SELECT count(*) FROM seen WHERE mode = 'exclusive'}) > 0,
	'some exclusive leases were granted');
is(q1('SELECT count(*) FROM tokens'), '400', 'every grant had its own token');
is(q1("SELECT count(*) FROM lockctl.leases WHERE resource = 'rw'"), '0',
	'every lease was given back');
is(q1('SELECT waiting FROM lockctl.lease_stats'), '0', 'nobody is counted as waiting');

$node->stop;
done_testing();
