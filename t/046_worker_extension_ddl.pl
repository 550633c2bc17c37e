# DROP EXTENSION lockctl, ALTER EXTENSION lockctl UPDATE, DROP SCHEMA
# lockctl CASCADE and DROP OWNED BY the extension's owner never fail
# because of the expiry worker of their database: the worker takes the
# extension's lock in share mode for each batch and, when DDL has it, skips
# the pass and says so in lockctl.workers.waiting_on.  Before, a DROP
# EXTENSION that locked the tables in another order than a batch could be
# chosen by the deadlock detector ("deadlock detected").
use strict;
use warnings FATAL => 'all';

use lib 't';
use LockctlNode;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $node = LockctlNode->new('extddl', worker => 1,
	conf => "lockctl.expiry_interval = '10ms'\n");
my $held_back =
  'extension lockctl, locked by a DROP EXTENSION or ALTER EXTENSION UPDATE in progress';

sub worker_row
{
	my ($cols) = @_;
	return $node->safe_psql('postgres',
		"SELECT $cols FROM lockctl.workers WHERE datname = 'ddl'");
}

# Wait until the worker of ddl says the DDL holds it back.
sub wait_held_back
{
	$node->poll_query_until('postgres',
		"SELECT waiting_on = '$held_back' FROM lockctl.workers WHERE datname = 'ddl'")
	  or die 'the worker never said the DDL held it back: ' . worker_row('waiting_on');
	return;
}

# A database at 1.0, served.
$node->safe_psql('postgres', 'CREATE DATABASE ddl');
$node->safe_psql('ddl', q{
CREATE EXTENSION lockctl VERSION '1.0';
SELECT lockctl.create_pool('p', 100);
});
LockctlNode::wait_for_worker($node, 'ddl');
ok(LockctlNode::hold_expires($node, 'ddl', 'p'), 'holds expire at 1.0');

# ALTER EXTENSION lockctl UPDATE in an open transaction: the worker waits
# for it, without an error, and expires the hold once it commits.
my $due = $node->safe_psql('ddl',
	"SELECT lockctl.reserve('p', 1, 'due', '1 second')");
my $s = $node->background_psql('ddl', on_error_stop => 1);
$s->query_safe('BEGIN');
$s->query_safe('ALTER EXTENSION lockctl UPDATE');
is($node->safe_psql('postgres', q{
SELECT count(*) FROM pg_locks AS l JOIN pg_database AS d ON d.oid = l.database
 WHERE d.datname = 'ddl' AND l.locktype = 'object'
   AND l.classid = 'pg_extension'::regclass AND l.granted
   AND l.mode = 'AccessExclusiveLock'}),
	'1', 'ALTER EXTENSION lockctl UPDATE locks the extension');
wait_held_back();
pass('while the update is not committed the worker keeps off, and says why');
# A pass held back is not a pass: once the worker has said so, it counts
# none and leaves last_run alone while the lock is held (it tries every
# 10 ms; 300 ms is thirty tries).
my $before = worker_row('last_run');
$node->poll_query_until('postgres',
	"SELECT clock_timestamp() > last_run + interval '300 ms' FROM lockctl.workers WHERE datname = 'ddl'")
  or die 'last_run kept moving: ' . worker_row('last_run');
is(worker_row('last_run'), $before,
	'a pass held back by the update leaves last_run alone');
$s->query_safe('COMMIT');
$node->poll_query_until('ddl',
	"SELECT status = 'expired' FROM lockctl.reservations WHERE id = $due")
  or die 'the due hold was not expired after the update committed';
pass('after COMMIT the hold due during the update is expired');
is(worker_row('errors'), '0', 'the worker had no error');
$node->poll_query_until('postgres',
	"SELECT waiting_on IS NULL FROM lockctl.workers WHERE datname = 'ddl'")
  or die 'waiting_on stayed: ' . worker_row('waiting_on');
pass('and waiting_on is cleared');

# A DROP EXTENSION rolled back: held back while it runs, serving after.
$s->query_safe('BEGIN');
$s->query_safe('DROP EXTENSION lockctl');
wait_held_back();
$s->query_safe('ROLLBACK');
ok(LockctlNode::hold_expires($node, 'ddl', 'p'),
	'after a rolled back DROP EXTENSION holds expire again');
$s->quit;

# Commands that drop the extension against a busy worker, many times over:
# none may fail.  (Before the fix about one DROP EXTENSION in fifty failed
# with a deadlock here.)  DROP SCHEMA lockctl CASCADE and DROP OWNED BY the
# extension's owner reach the extension through dependencies, after some of
# its tables: the utility hook locks the extension first for them too.
$node->safe_psql('postgres', 'CREATE ROLE ddl_admin SUPERUSER');
sub drop_rounds
{
	my ($rounds, $drop, $owner) = @_;
	my $failed = '';
	for my $round (1 .. $rounds)
	{
		$node->safe_psql('ddl', qq{
DROP EXTENSION IF EXISTS lockctl;
SET ROLE $owner;
CREATE EXTENSION lockctl;
SELECT lockctl.create_pool('p', 100);
});
		LockctlNode::wait_for_worker($node, 'ddl');
		$node->safe_psql('ddl', q{
SELECT lockctl.reserve('p', 1, 'x' || g, '1 second') FROM generate_series(1, 50) AS g;
SELECT pg_sleep(0.5 + random() / 2);
});
		my ($ret, $out, $err) = $node->psql('ddl', $drop);
		$failed .= "round $round: $err\n" if $ret != 0;
		$failed .= "round $round: the extension is still there\n"
		  if $ret == 0 && $node->safe_psql('ddl',
			"SELECT count(*) FROM pg_extension WHERE extname = 'lockctl'") ne '0';
	}
	return $failed;
}
is(drop_rounds(40, 'DROP EXTENSION lockctl', 'postgres'), '',
	'DROP EXTENSION never fails against the working expiry worker');
is(drop_rounds(20, 'DROP SCHEMA lockctl CASCADE', 'postgres'), '',
	'nor does DROP SCHEMA lockctl CASCADE');
is(drop_rounds(10, 'DROP OWNED BY ddl_admin', 'ddl_admin'), '',
	'nor DROP OWNED BY the extension\'s owner');

$node->stop;
done_testing();
