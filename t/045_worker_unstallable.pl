# Nobody can stall the expiry worker: not an ordinary role's transaction
# left open on a pool's slot, not a prepared transaction, not settings a
# database owner gives every session of the database, not a lock on
# lockctl's tables.  The worker skips what it cannot lock, comes back to it,
# bounds its lock waits, and says in lockctl.workers (waiting_on) what
# holds it back.
use strict;
use warnings FATAL => 'all';

use lib 't';
use LockctlNode;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(time usleep);

my $node = LockctlNode->new('unstallable', worker => 1,
	conf => "max_prepared_transactions = 5\n");
LockctlNode::wait_for_worker($node, 'postgres');
$node->safe_psql('postgres', q{
CREATE ROLE web LOGIN;
-- one slot: a transaction that took a unit holds the whole pool's row
SELECT lockctl.create_pool('one', 10, 1);
SELECT lockctl.create_pool('other', 10);
});

sub sql { return $node->safe_psql('postgres', $_[0]); }

sub status
{
	my ($id) = @_;
	return sql("SELECT status FROM lockctl.reservations WHERE id = $id");
}

sub expires_in_time
{
	my ($id) = @_;
	return $node->poll_query_until('postgres',
		"SELECT status = 'expired' FROM lockctl.reservations WHERE id = $id");
}

my $waiting_on = q{SELECT waiting_on FROM lockctl.workers WHERE datname = 'postgres'};

# --- 1. A transaction of web's left open on the slot of pool 'one' -------

my $due_one = sql("SELECT lockctl.reserve('one', 1, 'due', '1 second')");
my $idle = $node->background_psql('postgres');
$idle->query_safe('SET ROLE web');
$idle->query_safe('BEGIN');
$idle->query_safe("SELECT lockctl.reserve('one', 1, 'idle', '1 hour')");
my $idle_pid = $idle->query_safe('SELECT pg_backend_pid()');
my $due_other = sql("SELECT lockctl.reserve('other', 1, 'due', '1 second')");

ok(expires_in_time($due_other),
	'a hold of another pool expires while a transaction keeps pool one\'s slot locked');
is(status($due_one), 'held', 'the hold whose slot is locked is left for later');
ok($node->poll_query_until('postgres', $waiting_on,
		"1 due hold locked by other transactions (pid $idle_pid)"),
	'lockctl.workers says how many due holds are locked, and by which session');
is(sql("SELECT count(*) FROM pg_locks WHERE NOT granted"), '0',
	'the worker waits for no lock');
$idle->query_safe('COMMIT');
ok(expires_in_time($due_one), 'once that transaction ends, the hold expires');
ok($node->poll_query_until('postgres', "SELECT ($waiting_on) IS NULL"),
	'and waiting_on is clear again');

# --- 1b. A cart (1.1) whose slot a transaction of web's keeps locked ------

my $due_cart = sql(q{SELECT lockctl.reserve_cart('[{"resource": "one"}, {"resource": "other"}]', 'cart', '3 seconds')});
$idle->query_safe('BEGIN');
$idle->query_safe("SELECT lockctl.reserve('one', 1, 'idle', '1 hour')");
ok($node->poll_query_until('postgres', $waiting_on,
		"1 due cart locked by other transactions (pid $idle_pid)"),
	'lockctl.workers says how many due carts are locked, and by which session');
is(sql("SELECT status FROM lockctl.carts WHERE id = $due_cart"), 'held',
	'the cart one of whose slots is locked is left for later, whole');
is(sql("SELECT count(*) FROM pg_locks WHERE NOT granted"), '0',
	'the worker waits for no lock');
$idle->query_safe('COMMIT');
ok($node->poll_query_until('postgres',
		"SELECT status = 'expired' FROM lockctl.carts WHERE id = $due_cart"),
	'once that transaction ends, the cart expires');
ok($node->poll_query_until('postgres', "SELECT ($waiting_on) IS NULL"),
	'and waiting_on is clear again');

# --- 2. Prepared transactions: one on a hold's row, one on a slot --------

my $due_row = sql("SELECT lockctl.reserve('other', 1, 'row', '1 second')");
my $due_slot = sql("SELECT lockctl.reserve('one', 1, 'slot', '1 second')");
sql("BEGIN; SELECT lockctl.extend($due_row, '1 second'); PREPARE TRANSACTION 'on-a-hold'");
sql("SET ROLE web; BEGIN; SELECT lockctl.reserve('one', 1, 'prepared', '1 hour'); PREPARE TRANSACTION 'on-a-slot'");
my $due_free = sql("SELECT lockctl.reserve('other', 1, 'free', '1 second')");
ok(expires_in_time($due_free), 'prepared transactions do not stop the expiry of other holds');
is(status($due_row) . ' ' . status($due_slot), 'held held',
	'the holds they keep locked are left for later');
ok($node->poll_query_until('postgres', $waiting_on,
		"2 due holds locked by other transactions (prepared 'on-a-hold', 'on-a-slot')"),
	'lockctl.workers names the prepared transactions');
sql("COMMIT PREPARED 'on-a-hold'");
sql("ROLLBACK PREPARED 'on-a-slot'");
ok(expires_in_time($due_row) && expires_in_time($due_slot),
	'once they are resolved, both holds expire');

# --- 3. Settings of the database, for every session ----------------------

$node->safe_psql('postgres', 'CREATE DATABASE owned OWNER web');
$node->safe_psql('owned', q{
CREATE EXTENSION lockctl;
SELECT lockctl.create_pool('seats', 10);
});
LockctlNode::wait_for_worker($node, 'owned');
# What the database's owner may set for every session of its database
# (web is no superuser): a role to act as, read-only transactions, tight
# timeouts, SERIALIZABLE.
$node->safe_psql('postgres', q{
SET ROLE web;
ALTER DATABASE owned SET role = 'web';
ALTER DATABASE owned SET default_transaction_read_only = on;
ALTER DATABASE owned SET statement_timeout = '1ms';
ALTER DATABASE owned SET lock_timeout = '1ms';
ALTER DATABASE owned SET default_transaction_isolation = 'serializable';
ALTER DATABASE owned SET search_path = 'web, public';
});
# The worker reads them when it connects: make it connect again.
my $old_pid = sql("SELECT pid FROM lockctl.workers WHERE datname = 'owned'");
sql("SELECT pg_terminate_backend($old_pid)");
$node->poll_query_until('postgres',
	"SELECT pid <> $old_pid AND state = 'running' FROM lockctl.workers WHERE datname = 'owned'")
  or die 'the worker of database owned did not start again';

# This test's own sessions undo the settings first.  The timeouts go in
# the connection's options, which win over the database's settings: a SET
# as the first statement would itself run under the 1 ms timeout, which a
# loaded machine can exceed.
my $undo = 'SET ROLE NONE; '
  . 'SET default_transaction_read_only = off; SET default_transaction_isolation = \'read committed\'; ';
sub owned_sql
{
	local $ENV{PGOPTIONS} = '-c statement_timeout=0 -c lock_timeout=0';
	return $node->safe_psql('owned', $undo . shift);
}
my $owned_hold = owned_sql("SELECT lockctl.reserve('seats', 1, 'x', '1 second')");
# (poll_query_until would show the SET commands' output: poll by hand)
my $expired = 0;
my $deadline = time() + $PostgreSQL::Test::Utils::timeout_default;
while (!$expired && time() < $deadline)
{
	$expired = owned_sql(
		"SELECT status = 'expired' FROM lockctl.reservations WHERE id = $owned_hold") eq 't';
	usleep(100_000) unless $expired;
}
ok($expired, 'the worker expires holds whatever the database sets for its sessions');
is(sql("SELECT errors FROM lockctl.workers WHERE datname = 'owned'"), '0',
	'with no failed batch');

# --- 4. A lock on lockctl's table: waited for at most lock_timeout --------

my $due_locked = sql("SELECT lockctl.reserve('other', 1, 'locked', '1 second')");
my $dba = $node->background_psql('postgres');
$dba->query_safe('BEGIN');
$dba->query_safe('LOCK TABLE lockctl.reservations IN ACCESS EXCLUSIVE MODE');
my $dba_pid = $dba->query_safe('SELECT pg_backend_pid()');
ok($node->poll_query_until('postgres', $waiting_on,
		"lock on relation (blocked by pid $dba_pid)"),
	'while the worker waits for a lock, waiting_on says which and whose');
ok($node->poll_query_until('postgres',
		"SELECT last_error = 'canceling statement due to lock timeout' FROM lockctl.workers WHERE datname = 'postgres'"),
	'it gives up after its lock_timeout, and says so in last_error');
$dba->query_safe('COMMIT');
ok(expires_in_time($due_locked), 'once the lock is gone, it expires the hold');

$idle->quit;
$dba->quit;
$node->stop;
done_testing();
