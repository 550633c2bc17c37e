# Durable leases (lockctl.lease_durability = on, issue 23): live exclusive
# leases are written to WAL, replayed by a streaming standby, carried over
# at its promotion with their tokens, holders and expiries, and recovered
# from WAL after a crash of the new primary.
#
#   1. On the primary (synchronous standby): leases taken, one renewed, one
#      released, one left to expire, one bound to its session, one counted.
#   2. Switchover: clean stop of the primary, promotion of the standby.  The
#      live exclusive leases are there with the same tokens, owners and
#      roles; the released, expired, session-bound and counted ones are
#      not.  Renew and fence work with the old tokens; a new grant is
#      higher; a waiter for a carried lease waits until it is released.
#   3. A clean restart of the new primary keeps them (the shutdown dump);
#      a crash (immediate stop) after a checkpoint, and a restart: the
#      leases are recovered from WAL, with their tokens.
#   4. Durability turned off on the new primary (reload): its standby
#      forgets every lease it replayed (the OFF record), so a lease granted
#      or ended afterwards, unlogged, is never carried stale.
use strict;
use warnings FATAL => 'all';

use lib 't';
use LockctlNode;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $conf = "lockctl.lease_durability = on\n";
my $a = LockctlNode->new('durable_a', streaming => 1, conf => $conf);
$a->safe_psql('postgres', q{
	CREATE ROLE alice LOGIN;
	CREATE ROLE bob LOGIN;
	CREATE TABLE got (n serial, who text, token bigint,
	                  at timestamptz DEFAULT clock_timestamp());
	GRANT ALL ON got, got_n_seq TO PUBLIC;
});
$a->backup('b');
my $b = PostgreSQL::Test::Cluster->new('durable_b');
$b->init_from_backup($a, 'b', has_streaming => 1);
$b->start;
# synchronous: a grant returns once the standby has its record
$a->append_conf('postgresql.conf', "synchronous_standby_names = '*'");
$a->reload;
$a->poll_query_until('postgres',
	"SELECT count(*) = 1 FROM pg_stat_replication WHERE sync_state = 'sync'")
  or die 'b did not become a synchronous standby';

# 1. Leases of every kind on a.
sub q1 { my ($n, $sql) = @_; return $n->safe_psql('postgres', $sql); }

my $t1 = q1($a, "SET ROLE alice; SELECT lockctl.acquire('x1', 'o1', '1 hour')");
my $t2 = q1($a, "SELECT lockctl.acquire('x2', 'o2', '1 minute')");
q1($a, "SELECT lockctl.renew('x2', $t2, '2 hours')");
my $t3 = q1($a, "SELECT lockctl.acquire('x3', 'o3', '1 hour')");
is(q1($a, "SELECT lockctl.release('x3', $t3)"), 't', 'x3 released on a');
my $t4 = q1($a, "SELECT lockctl.acquire('x4', 'o4', '100 ms')");
$a->poll_query_until('postgres',
	"SELECT count(*) = 0 FROM lockctl.leases WHERE resource = 'x4'")
  or die 'x4 did not expire';
my $t6 = q1($a, "SELECT lockctl.acquire('c6', 'o6', '1 hour', '0', 2)");
ok($t6 > 0, 'a counted lease on a');
# a session-bound lease, in a session that stays open until a stops
my $s = $a->background_psql('postgres', on_error_stop => 0);
my $t5 = $s->query_safe(
	"SELECT lockctl.acquire('x5', 'o5', '1 hour', bind => 'session')");
chomp $t5;
ok($t5 > 0, 'a session-bound lease on a');
is(q1($a, "SELECT count(*) FROM lockctl.leases"), '4',
	'a has four live leases (x1, x2, c6, x5)');
$a->wait_for_catchup($b);
is(q1($b, "SELECT count(*) FROM lockctl.leases"), '0',
	'the standby shows no live lease');

# 2. Switchover (the fast shutdown ends x5's session).
$a->stop;
eval { $s->quit; };
$b->promote;
$b->poll_query_until('postgres', 'SELECT NOT pg_is_in_recovery()')
  or die 'promotion of b did not finish';
ok($b->log_contains('lockctl carried 2 live lease\(s\) over from WAL'),
	'the promoted standby carried two leases');

is( q1($b,
		"SELECT string_agg(format('%s %s %s %s', resource, owner, token, acquired_by), ', ' ORDER BY resource) FROM lockctl.leases"
	),
	"x1 o1 $t1 alice, x2 o2 $t2 " . q1($b, 'SELECT current_user'),
	'b holds x1 and x2 with their owners, tokens and roles; not the released, expired, session-bound or counted ones');
is( q1($b,
		"SELECT expires_at > now() + interval '110 minutes' FROM lockctl.leases WHERE resource = 'x2'"
	),
	't',
	'x2 keeps the expiry of its renewal');

is(q1($b, "SELECT lockctl.renew('x2', $t2, '3 hours') > now() + interval '170 minutes'"),
	't', 'renew with the old token works on b');
is( q1($b,
		"SET ROLE alice; BEGIN; SELECT 'fenced' FROM (SELECT lockctl.fence('x1', $t1)) f; COMMIT;"
	),
	'fenced',
	'fence with the old token works on b, as its role');
my ($rc, $out, $err) = $b->psql('postgres',
	"SET ROLE bob; SELECT lockctl.renew('x1', $t1, '1 hour')");
like($err, qr/no longer held by token/,
	'another role cannot renew the carried lease');

my $t7 = q1($b, "SELECT lockctl.acquire('y7', 'o7', '1 hour')");
ok($t7 > $t1 && $t7 > $t2 && $t7 > $t6,
	'a new grant on b is above every token of a');
is(q1($b, "SELECT lockctl.acquire('x1', 'other', '1 hour')"), '',
	'the carried lease on x1 is held');

# a waiter on b for the carried lease waits until it is released, and is
# woken by that release (within 20 s of it: its wait of an hour ends no
# other way, but a wake-up not for it could still grant it, later)
my $w = LockctlNode::start_waiter($b, 'w1',
	"lockctl.acquire('x1', 'w1', '1 hour', '1 hour')");
LockctlNode::wait_for_waiters($b, 'x1', 1);
is(q1($b, "SELECT count(*) FROM got"), '0', 'the waiter waits for x1');
my $since = LockctlNode::server_now($b);
is(q1($b, "SET ROLE alice; SELECT lockctl.release('x1', $t1)"), 't',
	'alice releases x1 on b with its old token');
is(LockctlNode::granted_promptly($b, 'w1', $since), 't',
	'the release of the carried lease wakes the waiter');
my $tw = q1($b, "SELECT token FROM got WHERE who = 'w1'");
ok($tw > $t7, 'the waiter got x1 with a token of the new era');
$w->quit;

my $expect = "x1 $tw, x2 $t2, y7 $t7";
my $leases_sql =
  "SELECT string_agg(format('%s %s', resource, token), ', ' ORDER BY resource) FROM lockctl.leases";

# 3. A clean restart keeps the carried lease (the shutdown dump); then a
#    crash after a checkpoint: the leases come back from WAL.
$b->restart;
is(q1($b, $leases_sql), $expect,
	'a clean restart of b keeps its leases, the carried one with its old token');
q1($b, 'CHECKPOINT');
q1($b, "SELECT lockctl.renew('y7', $t7, '1 hour')");
$b->stop('immediate');
$b->start;
is(q1($b, $leases_sql), $expect,
	'after a crash, b recovered its leases from WAL, the carried one with its old token');
is(q1($b, "SELECT lockctl.renew('x2', $t2, '1 hour') > now()"),
	't', 'and the carried lease can still be renewed');
my $t8 = q1($b, "SELECT lockctl.acquire('y8', 'o8', '1 hour')");
ok($t8 > $tw, 'a grant after the crash is higher');

# 4. Durability off: a standby of b forgets what it replayed.
$b->backup('c');
my $c = PostgreSQL::Test::Cluster->new('durable_c');
$c->init_from_backup($b, 'c', has_streaming => 1);
$c->start;
q1($b, "SELECT lockctl.renew('y8', $t8, '1 hour')");
$b->wait_for_catchup($c);
$b->append_conf('postgresql.conf', "lockctl.lease_durability = off");
$b->reload;
$b->poll_query_until('postgres',
	"SELECT current_setting('lockctl.lease_durability') = 'off'")
  or die 'the reload did not reach new sessions';
is(q1($b, "SELECT lockctl.release('y8', $t8)"), 't', 'y8 released, unlogged');
my $t9 = q1($b, "SELECT lockctl.acquire('y8', 'o9', '1 hour')");
$b->wait_for_catchup($c);
$c->promote;
$c->poll_query_until('postgres', 'SELECT NOT pg_is_in_recovery()')
  or die 'promotion of c did not finish';
is(q1($c, "SELECT count(*) FROM lockctl.leases"), '0',
	'a standby promoted after durability was turned off carries nothing');
ok(!$c->log_contains('lockctl carried'), 'its log says it carried none');

$b->stop;
$c->stop;
done_testing();
