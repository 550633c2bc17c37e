# The expiry worker expires holds in real time, announces them with NOTIFY,
# purges old finished holds, and logs and carries on after an error.
use strict;
use warnings FATAL => 'all';

use lib 't';
use LockctlNode;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(time);

my $node = LockctlNode->new('expiry', worker => 1);
$node->safe_psql('postgres', "SELECT lockctl.create_pool('seats', 10)");

# Wait until the worker of this database is running.
LockctlNode::wait_for_worker($node, 'postgres');
my $worker_pid = $node->safe_psql('postgres',
	"SELECT pid FROM lockctl.workers WHERE datname = 'postgres'");
is($node->safe_psql('postgres',
		"SELECT backend_type || '|' || application_name FROM pg_stat_activity WHERE pid = $worker_pid"),
	'lockctl expiry worker|lockctl expiry worker for postgres',
	'pg_stat_activity names the worker and its database');
# Between passes the worker and the launcher sleep on wait events of their
# own from PostgreSQL 17 on, on the generic "Extension" before.
my $pg17 = $node->safe_psql('postgres', 'SHOW server_version_num') >= 170000;
foreach my $w (['lockctl expiry worker', 'LockctlExpiryWorkerMain'],
	['lockctl launcher', 'LockctlLauncherMain'])
{
	my ($type, $event) = @$w;
	$event = 'Extension' unless $pg17;
	ok( $node->poll_query_until(
			'postgres',
			"SELECT wait_event_type || '/' || wait_event FROM pg_stat_activity WHERE backend_type = '$type'",
			"Extension/$event"),
		"the $type sleeps on wait event Extension/$event");
}

# A listener for lockctl_expired.
my $listener = $node->background_psql('postgres');
$listener->query_safe('LISTEN lockctl_expired');

# A hold with a 1 s ttl comes back by itself, with no call from the client.
my $t0 = time();
my $id = $node->safe_psql('postgres',
	"SELECT lockctl.reserve('seats', 4, 'alice', '1 second')");
is($node->safe_psql('postgres', "SELECT lockctl.available('seats')"),
	'6', 'the hold takes 4 units');
$node->poll_query_until('postgres',
	"SELECT status = 'expired' FROM lockctl.reservations WHERE id = $id")
  or die 'the hold was not expired';
my $elapsed = time() - $t0;
cmp_ok($elapsed, '<', 30, "expired by the worker in real time (${elapsed}s)");
is($node->safe_psql('postgres',
		"SELECT finished >= expires FROM lockctl.reservations WHERE id = $id"),
	't', 'not before its time was up');
is($node->safe_psql('postgres', "SELECT lockctl.available('seats')"),
	'10', 'its units are back in the pool');

# The listener hears about it (poll: psql shows notifications after a query).
my $heard = 0;
my $deadline = time() + $PostgreSQL::Test::Utils::timeout_default;
while (time() < $deadline)
{
	my $out = $listener->query_safe('SELECT pg_sleep(0.05)');
	if ($out =~ /Asynchronous notification "lockctl_expired" with payload "$id" received/)
	{
		$heard = 1;
		last;
	}
}
ok($heard, 'LISTEN lockctl_expired receives the id of the expired hold');
$listener->quit;

# A confirmed hold is never expired; many due holds go in several batches.
$node->safe_psql('postgres', q{
ALTER SYSTEM SET lockctl.expiry_batch_size = 10;
SELECT pg_reload_conf();
});
$node->poll_query_until('postgres',
	"SELECT setting = '10' FROM pg_settings WHERE name = 'lockctl.expiry_batch_size'");
my $kept = $node->safe_psql('postgres',
	"SELECT lockctl.reserve('seats', 1, 'bob', '1 second')");
$node->safe_psql('postgres', "SELECT lockctl.confirm($kept)");
$node->safe_psql('postgres', "SELECT lockctl.create_pool('stock', 100)");
my $before = $node->safe_psql('postgres',
	"SELECT holds_expired FROM lockctl.workers WHERE datname = 'postgres'");
$node->safe_psql('postgres',
	"SELECT lockctl.reserve('stock', 1, 'h' || i, '1 second') FROM generate_series(1, 35) AS i");
is($node->safe_psql('postgres', "SELECT lockctl.available('stock')"),
	'65', '35 holds taken');
$node->poll_query_until('postgres',
	"SELECT lockctl.available('stock') = 100")
  or die 'the 35 holds were not expired';
is($node->safe_psql('postgres',
		"SELECT count(*) FROM lockctl.reservations WHERE status = 'expired' AND holder LIKE 'h%'"),
	'35', 'all 35 expired, in batches of 10');
$node->poll_query_until('postgres',
	"SELECT holds_expired = $before + 35 FROM lockctl.workers WHERE datname = 'postgres'")
  or die 'the counter did not move';
pass('lockctl.workers counts them');
is($node->safe_psql('postgres',
		"SELECT status FROM lockctl.reservations WHERE id = $kept"),
	'confirmed', 'the confirmed hold was left alone');

# Purge: with retention 0 the finished holds go, the confirmed one stays.
$node->safe_psql('postgres', q{
ALTER SYSTEM SET lockctl.retention = 0;
SELECT pg_reload_conf();
});
$node->poll_query_until('postgres',
	"SELECT count(*) = 0 FROM lockctl.reservations WHERE status = 'expired'")
  or die 'finished holds were not purged';
pass('finished holds are purged after lockctl.retention');
is($node->safe_psql('postgres',
		"SELECT count(*) FROM lockctl.reservations WHERE status = 'confirmed'"),
	'1', 'confirmed holds are kept');
is($node->safe_psql('postgres',
		"SELECT holds_purged >= 36 FROM lockctl.workers WHERE datname = 'postgres'"),
	't', 'lockctl.workers counts the purged holds');
is($node->safe_psql('postgres', "SELECT lockctl.available('seats')"),
	'9', 'the pool still counts the confirmed unit');

# An error in a batch is logged and recorded, and the same worker carries
# on: block it on a lock, then cancel its statement.
$node->safe_psql('postgres', q{
ALTER SYSTEM RESET lockctl.retention;
SELECT pg_reload_conf();
});
my $blocker = $node->background_psql('postgres');
$blocker->query_safe('BEGIN');
$blocker->query_safe('LOCK TABLE lockctl.reservations IN ACCESS EXCLUSIVE MODE');
$node->poll_query_until('postgres',
	"SELECT wait_event_type = 'Lock' FROM pg_stat_activity WHERE pid = $worker_pid")
  or die 'the worker did not wait for the lock';
my $log_offset = -s $node->logfile;
$node->safe_psql('postgres', "SELECT pg_cancel_backend($worker_pid)");
$node->poll_query_until('postgres',
	"SELECT errors = 1 AND last_error = 'canceling statement due to user request' FROM lockctl.workers WHERE datname = 'postgres'")
  or die 'the error was not recorded';
pass('lockctl.workers shows the last error');
$node->wait_for_log(qr/ERROR:  canceling statement due to user request/, $log_offset);
pass('the error is in the server log');
$blocker->query_safe('COMMIT');
$blocker->quit;

my $late = $node->safe_psql('postgres',
	"SELECT lockctl.reserve('seats', 2, 'carol', '1 second')");
$node->poll_query_until('postgres',
	"SELECT status = 'expired' FROM lockctl.reservations WHERE id = $late")
  or die 'the worker did not carry on';
is($node->safe_psql('postgres',
		"SELECT pid FROM lockctl.workers WHERE datname = 'postgres'"),
	$worker_pid, 'the same worker process carried on after the error');

# Range holds of calendars: expired by the same worker, announced on
# lockctl_expired, the range free again.
$node->safe_psql('postgres', "SELECT lockctl.create_calendar('room'), lockctl.create_calendar('gone')");
my $rlistener = $node->background_psql('postgres');
$rlistener->query_safe('LISTEN lockctl_expired');
my $range = q{'[2030-01-01 10:00+00, 2030-01-01 11:00+00)'};
my $rid = $node->safe_psql('postgres',
	"SELECT lockctl.reserve_range('room', $range, 'dana', '1 second')");
is($node->safe_psql('postgres',
		"SELECT lockctl.reserve_range('room', $range, 'erik', '1 hour') IS NULL"),
	't', 'a range hold takes its range');
$node->poll_query_until('postgres',
	"SELECT status = 'expired' FROM lockctl.calendar_holds WHERE id = $rid")
  or die 'the range hold was not expired';
is($node->safe_psql('postgres',
		"SELECT finished >= expires FROM lockctl.calendar_holds WHERE id = $rid"),
	't', 'the range hold expired, not before its time was up');
$heard = 0;
$deadline = time() + $PostgreSQL::Test::Utils::timeout_default;
while (time() < $deadline)
{
	my $out = $rlistener->query_safe('SELECT pg_sleep(0.05)');
	if ($out =~ /Asynchronous notification "lockctl_expired" with payload "$rid" received/)
	{
		$heard = 1;
		last;
	}
}
ok($heard, 'LISTEN lockctl_expired receives the id of the expired range hold');
$rlistener->quit;
isnt($node->safe_psql('postgres',
		"SELECT lockctl.reserve_range('room', $range, 'erik', '1 hour')"),
	'', 'the range is free again');

# A drop_calendar left open holds every range hold operation back; the
# worker does not wait for it: pools' holds still expire, range holds
# once it is over.
# (The range hold is taken first: reserve_range would wait for the drop.)
my $rid2 = $node->safe_psql('postgres',
	"SELECT lockctl.reserve_range('room', '[2030-01-02 10:00+00, 2030-01-02 11:00+00)', 'fay', '1 second')");
my $dropper = $node->background_psql('postgres');
$dropper->query_safe("BEGIN; SELECT lockctl.drop_calendar('gone')");
my $pid2 = $node->safe_psql('postgres',
	"SELECT lockctl.reserve('seats', 1, 'gus', '1 second')");
$node->poll_query_until('postgres',
	"SELECT status = 'expired' FROM lockctl.reservations WHERE id = $pid2")
  or die 'the worker waited for the drop';
pass('a drop_calendar in flight does not hold the worker up');
is($node->safe_psql('postgres',
		"SELECT status FROM lockctl.range_reservations WHERE id = $rid2"),
	'held', 'range holds wait for the drop to end');
$dropper->query_safe('COMMIT');
$dropper->quit;
$node->poll_query_until('postgres',
	"SELECT status = 'expired' FROM lockctl.range_reservations WHERE id = $rid2")
  or die 'the range hold was not expired after the drop';
pass('and are expired once it is over');

# The view is readable by anyone; the wake function is not for everyone.
$node->safe_psql('postgres', 'CREATE ROLE app LOGIN');
is($node->safe_psql('postgres',
		"SET ROLE app; SELECT count(*) FROM lockctl.workers WHERE datname = 'postgres'"),
	'1', 'an ordinary role can read lockctl.workers');
my ($ret, $stdout, $stderr) = $node->psql('postgres',
	"SET ROLE app; SELECT lockctl.wake_expiry_worker()");
like($stderr, qr/permission denied for function wake_expiry_worker/,
	'an ordinary role cannot call lockctl.wake_expiry_worker()');

# Shutdown is prompt: the worker does not hold the server up.
my $t1 = time();
$node->stop('fast');
cmp_ok(time() - $t1, '<', 30, 'the server stops promptly with the worker running');
done_testing();
