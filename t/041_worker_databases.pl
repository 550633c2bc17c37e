# The launcher serves every database that has the extension, without being
# told: new databases, CREATE EXTENSION in an existing one, DROP DATABASE,
# renames and copies, templates, the lockctl.worker_databases filter.
use strict;
use warnings FATAL => 'all';

use lib 't';
use LockctlNode;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(time);

my $node = LockctlNode->new('dbs', worker => 1,
	conf => "log_min_messages = debug1\n", extension => 0);

# Wait until a 1 s hold taken in $db is expired by the worker there.
sub expires_in
{
	my ($db, $pool) = @_;
	return LockctlNode::hold_expires($node, $db, $pool);
}

sub workers
{
	return $node->safe_psql('postgres',
		"SELECT string_agg(datname || ':' || state, ',' ORDER BY datname) FROM lockctl.workers");
}

# The extension in two databases (and in postgres, to read the view).
$node->safe_psql('postgres', 'CREATE EXTENSION lockctl');
for my $db (qw(db1 db2))
{
	$node->safe_psql('postgres', "CREATE DATABASE $db");
	$node->safe_psql($db, 'CREATE EXTENSION lockctl');
	$node->safe_psql($db, "SELECT lockctl.create_pool('p', 5)");
}
ok(expires_in('db1', 'p'), 'the worker expires holds in db1');
ok(expires_in('db2', 'p'), 'and in db2');
is(workers(), 'db1:running,db2:running,postgres:running',
	'one worker per database with the extension');
is($node->safe_psql('postgres',
		"SELECT count(DISTINCT pid) FROM lockctl.workers"),
	'3', 'each its own process');

# No worker stays in a database without the extension.
$node->safe_psql('postgres', 'CREATE DATABASE plain');
$node->poll_query_until('postgres',
	"SELECT count(*) = 0 FROM pg_stat_activity WHERE datname = 'plain'")
  or die 'a worker stayed in a database without the extension';
pass('no worker stays where the extension is not installed');

# CREATE EXTENSION in a database that was already probed is picked up at
# once (the retry cadence for such databases is a minute and more).
my $log_offset = -s $node->logfile;
$node->safe_psql('postgres', 'CREATE DATABASE late');
$node->wait_for_log(
	qr/lockctl expiry worker for database "late" exits: extension "lockctl" is not installed/,
	$log_offset);
my $t0 = time();
$node->safe_psql('late', 'CREATE EXTENSION lockctl');
LockctlNode::wait_for_worker($node, 'late');
my $elapsed = time() - $t0;
cmp_ok($elapsed, '<', 30, "CREATE EXTENSION is picked up promptly (${elapsed}s)");
$node->safe_psql('late', "SELECT lockctl.create_pool('p', 5)");
ok(expires_in('late', 'p'), 'and its holds are expired');

# A rolled back CREATE EXTENSION starts nothing for long.
$node->safe_psql('plain', 'BEGIN; CREATE EXTENSION lockctl; ROLLBACK;');
is($node->safe_psql('plain',
		"SELECT count(*) FROM pg_extension WHERE extname = 'lockctl'"),
	'0', 'rolled back');

# DROP DATABASE of a served database works, and at once.
$t0 = time();
my ($ret, $stdout, $stderr) = $node->psql('postgres', 'DROP DATABASE db2');
is($ret, 0, 'DROP DATABASE of a served database succeeds');
is($stderr, '', 'without complaint');
cmp_ok(time() - $t0, '<', 5, 'without waiting for the worker');
$node->poll_query_until('postgres',
	"SELECT count(*) = 0 FROM lockctl.workers WHERE datname = 'db2'")
  or die 'db2 still in lockctl.workers';
pass('the dropped database leaves lockctl.workers');

# DROP EXTENSION: the worker goes away.
$node->safe_psql('late', 'DROP EXTENSION lockctl');
$node->poll_query_until('postgres',
	"SELECT count(*) = 0 FROM lockctl.workers WHERE datname = 'late'")
  or die 'the worker of late did not go away';
pass('DROP EXTENSION ends the worker of that database');

# A database can be renamed and copied while it is served.
$node->safe_psql('postgres', 'ALTER DATABASE db1 RENAME TO db1r');
pass('ALTER DATABASE RENAME of a served database succeeds');
$node->safe_psql('postgres', 'CREATE DATABASE db1copy TEMPLATE db1r');
pass('CREATE DATABASE ... TEMPLATE a served database succeeds');
$node->poll_query_until('postgres',
	"SELECT count(*) = 2 FROM lockctl.workers WHERE datname IN ('db1r', 'db1copy') AND state = 'running'")
  or die 'the renamed database and its copy are not served';
pass('the renamed database and its copy are served');
ok(expires_in('db1r', 'p'), 'holds expire in the renamed database');
ok(expires_in('db1copy', 'p'), 'and in the copy');

# Templates are never served (a worker there would block CREATE DATABASE);
# a database created from a template that has the extension is.
$node->safe_psql('template1', 'CREATE EXTENSION lockctl');
$node->safe_psql('postgres', 'CREATE DATABASE fromtemplate');
LockctlNode::wait_for_worker($node, 'fromtemplate');
pass('a database created from a template with the extension is served');
is($node->safe_psql('postgres',
		"SELECT count(*) FROM pg_stat_activity WHERE datname = 'template1'"),
	'0', 'no worker in template1');
$node->safe_psql('template1', 'DROP EXTENSION lockctl');

# lockctl.worker_databases restricts the workers to the databases listed.
$node->safe_psql('postgres', q{
ALTER SYSTEM SET lockctl.worker_databases = 'db1r, postgres';
SELECT pg_reload_conf();
});
$node->poll_query_until('postgres',
	"SELECT string_agg(datname, ',' ORDER BY datname) = 'db1r,postgres' FROM lockctl.workers")
  or die 'lockctl.worker_databases was not applied: ' . workers();
pass('lockctl.worker_databases stops the workers of the others');
$node->safe_psql('postgres', q{
ALTER SYSTEM RESET lockctl.worker_databases;
SELECT pg_reload_conf();
});
$node->poll_query_until('postgres',
	"SELECT count(*) = 4 FROM lockctl.workers WHERE state = 'running'")
  or die 'the workers did not come back: ' . workers();
pass('and resetting it brings them back');

($ret, $stdout, $stderr) = $node->psql('postgres',
	"ALTER SYSTEM SET lockctl.worker_databases = 'a,,b'");
like($stderr, qr/invalid value for parameter "lockctl.worker_databases"/,
	'a malformed list is refused');

$node->stop;

# max_worker_processes exhausted: one clear log line, no storm, and the
# waiting database is served as soon as a slot frees up.
my $small = LockctlNode->new('small', extension => 0, conf => qq{
lockctl.expiry_interval = '100ms'
max_worker_processes = 3
});
for my $db (qw(a b))
{
	$small->safe_psql('postgres', "CREATE DATABASE $db");
	$small->safe_psql($db, 'CREATE EXTENSION lockctl');
}
$small->wait_for_log(qr/lockctl launcher could not start the expiry worker of database "[ab]": no free background worker slot/);
pass('running out of background workers is logged');
my $served = $small->safe_psql('postgres',
	"SELECT string_agg(datname, ',') FROM pg_stat_activity WHERE backend_type = 'lockctl expiry worker'");
like($served, qr/^[ab]$/, 'one of the two databases is served');
my $other = $served eq 'a' ? 'b' : 'a';
$small->safe_psql($served, 'DROP EXTENSION lockctl');
$small->poll_query_until('postgres',
	"SELECT count(*) = 1 FROM pg_stat_activity WHERE backend_type = 'lockctl expiry worker' AND datname = '$other'")
  or die "database $other was never served";
pass('the other database is served once a slot is free');
my $log = slurp_file($small->logfile);
my $count = () = $log =~ /no free background worker slot/g;
cmp_ok($count, '<=', 2, "the shortage was logged once, not in a loop ($count)");
$small->stop;

done_testing();
