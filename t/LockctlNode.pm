# t/LockctlNode.pm: the node set-up every TAP test of lockctl shares.
#
#   use lib 't';
#   use LockctlNode;
#
#   my $node = LockctlNode->new('name');               # preloaded, started,
#                                                       # extension created
#   my $node = LockctlNode->new('name', worker => 1,    # a fast expiry worker
#       streaming => 1,                                 # a primary for standbys
#       conf => "max_connections = 60\n",               # more configuration
#       extension => 0, start => 0,                     # neither, yet
#       preload => 0);                                  # a server without lockctl
#   LockctlNode::wait_for_worker($node, 'postgres');    # its worker runs
#   ok(LockctlNode::hold_expires($node, 'postgres', 'pool'));
#
# Lease waiters (the waits isolationtester cannot see), in database postgres:
#   LockctlNode::create_got($node);                     # the table "got"
#   my $s = LockctlNode::start_waiter($node, 'w1',      # waits in the
#       "lockctl.acquire('r', 'w1', '1 min', '5 min')"); # background
#   LockctlNode::wait_for_waiters($node, 'r', 1);       # it is queued
#   LockctlNode::wait_for_got($node, 'w1');             # it was granted
#   is(LockctlNode::waiters($node, 'r'), '0');
#
# new() returns an ordinary PostgreSQL::Test::Cluster: every method of it
# works on the node.  prove runs from the top of the checkout (PGXS's
# prove_installcheck), so 'use lib "t"' finds this file.
package LockctlNode;

use strict;
use warnings FATAL => 'all';

use PostgreSQL::Test::Cluster;
use Test::More;

# The settings of the tests that watch the expiry worker: a pass every
# 100 ms, and worker slots for a launcher and several databases.
our $WORKER_CONF = <<'CONF';
lockctl.expiry_interval = '100ms'
max_worker_processes = 16
CONF

# Every node: PostgreSQL wakes each backend once, authentication_timeout
# after its connection started (the log-in's timer is left armed: see
# docs/testing.md).  At the default 60 s that wake-up can fall within the
# 20 s in which granted_promptly and t/027's woken_promptly expect a
# waiter to be woken, and grant a waiter whose wake-up is missing; at the
# longest value allowed it comes after any of those waits.
our $NODE_CONF = <<'CONF';
authentication_timeout = '10min'
CONF

# LockctlNode->new(NAME, %opt): a node with lockctl in
# shared_preload_libraries.  Options: preload (default 1; 0 leaves lockctl
# out, and then the extension too), worker (the expiry worker's test
# settings), streaming (init with allows_streaming, for standbys), conf
# (more lines for postgresql.conf), start (default 1), extension (CREATE
# EXTENSION lockctl in database postgres once started; default 1).
sub new
{
	my ($class, $name, %opt) = @_;
	my $start = $opt{start} // 1;
	my $preload = $opt{preload} // 1;
	my $node = PostgreSQL::Test::Cluster->new($name);

	$node->init($opt{streaming} ? (allows_streaming => 1) : ());
	$node->append_conf('postgresql.conf',
		$NODE_CONF
		  . ($preload ? "shared_preload_libraries = 'lockctl'\n" : '')
		  . ($opt{worker} ? $WORKER_CONF : '')
		  . ($opt{conf} // ''));
	return $node unless $start;
	$node->start;
	$node->safe_psql('postgres', 'CREATE EXTENSION lockctl')
	  if $opt{extension} // $preload;
	return $node;
}

# wait_for_worker(NODE, DB): wait until the expiry worker of DB runs and
# has found the extension; dies if it does not within the poll's timeout.
sub wait_for_worker
{
	my ($node, $db) = @_;
	$node->poll_query_until('postgres',
		"SELECT count(*) = 1 FROM lockctl.workers WHERE datname = '$db' AND state = 'running'"
	) or die "the expiry worker of database $db did not start";
	return;
}

# hold_expires(NODE, DB, POOL): take a 1 s hold on POOL in DB and wait
# until the expiry worker has expired it; true if it did in time.
sub hold_expires
{
	my ($node, $db, $pool) = @_;
	my $id = $node->safe_psql($db,
		"SELECT lockctl.reserve('$pool', 1, 'x', '1 second')");
	return $node->poll_query_until($db,
		"SELECT status = 'expired' FROM lockctl.reservations WHERE id = $id");
}

# create_got(NODE): the table "got" of database postgres, where each
# waiter of start_waiter writes what it was granted (who, token) and when.
sub create_got
{
	my ($node) = @_;
	$node->safe_psql('postgres', q{
		CREATE TABLE got (n serial, who text, token bigint,
		                  at timestamptz DEFAULT clock_timestamp());
	});
	return;
}

# start_waiter(NODE, WHO, CALL, set => SQL): a background psql session
# (application_name WHO) that runs SQL (settings, say), then
# INSERT INTO got (who, token) SELECT 'WHO', CALL, and is left waiting in
# it.  CALL is an acquire, acquire_shared, ... expression.  Returns the
# session (its quit ends it).
sub start_waiter
{
	my ($node, $who, $call, %opt) = @_;
	my $s = $node->background_psql('postgres', on_error_stop => 0);
	my $set = $opt{set} // '';
	$s->query_safe("SET application_name = '$who'; $set");
	$s->query_until(qr/^started\n/m, qq{
\\echo started
INSERT INTO got (who, token)
  SELECT '$who', $call;
});
	return $s;
}

# waiters(NODE, RESOURCE): how many sessions wait for RESOURCE's lease in
# database postgres.
sub waiters
{
	my ($node, $resource) = @_;
	return $node->safe_psql('postgres',
		"SELECT count(*) FROM lockctl.lease_waiters WHERE resource = '$resource'");
}

# wait_for_waiters(NODE, RESOURCE, N): wait until N sessions wait for
# RESOURCE; dies if they do not within the poll's timeout.
sub wait_for_waiters
{
	my ($node, $resource, $n) = @_;
	$node->poll_query_until('postgres',
		"SELECT count(*) = $n FROM lockctl.lease_waiters WHERE resource = '$resource'")
	  or die "timed out waiting for $n waiters on $resource";
	return;
}

# wait_for_got(NODE, WHO): wait until the waiter WHO was granted (its row
# is in "got"); dies if it was not within the poll's timeout.
sub wait_for_got
{
	my ($node, $who) = @_;
	$node->poll_query_until('postgres',
		"SELECT count(*) = 1 FROM got WHERE who = '$who'")
	  or die "$who was never granted";
	return;
}

# server_now(NODE): the server's clock, read just before a release that
# must wake a waiter (for granted_promptly).
sub server_now
{
	my ($node) = @_;
	return $node->safe_psql('postgres', 'SELECT clock_timestamp()');
}

# granted_promptly(NODE, WHO, SINCE, GRANTED): wait_for_got, then 't' if
# WHO was granted within 20 s of SINCE (server_now, just before the
# release that must wake it), else 'f'.  GRANTED is the condition on its
# row of "got" that says it was granted (default: a token; t/028's rows
# have an array of them).  For waits of an hour behind
# leases of an hour: no deadline or expiry ends them, but a waiter that
# the release did not wake may still be granted at a later wake-up that
# was not for it (PostgreSQL wakes every backend once, authentication_timeout
# after its connection started: $NODE_CONF above), which the bound catches.  It is that far above the milliseconds a wake-up takes so that
# a loaded machine does not trip it.
sub granted_promptly
{
	my ($node, $who, $since, $granted) = @_;
	$granted //= 'token IS NOT NULL';
	wait_for_got($node, $who);
	return $node->safe_psql('postgres',
		"SELECT $granted AND at - '$since' < interval '20 s' FROM got WHERE who = '$who'");
}

1;
