# The versioning counters in shared memory: kept apart per database, capped
# by lockctl.max_versioned_tables (tables beyond the cap are still checked,
# only not counted), cleared by a restart.  And on a hot standby: changing
# versioning is refused with 25006, the view can be read.
use strict;
use warnings FATAL => 'all';

use lib 't';
use LockctlNode;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $node = LockctlNode->new('version_stats',
	streaming => 1,
	conf => "lockctl.max_versioned_tables = 16\n",
	extension => 0);

$node->safe_psql('postgres', 'CREATE DATABASE other');
for my $db ('postgres', 'other')
{
	$node->safe_psql($db, q{
		CREATE EXTENSION lockctl;
		CREATE TABLE t0 (id int PRIMARY KEY, version int);
		SELECT lockctl.enable_versioning('t0');
		INSERT INTO t0 VALUES (1, NULL);
		UPDATE t0 SET version = 1;
	});
}
$node->safe_psql('postgres', 'UPDATE t0 SET version = 2');

# Counters are per database: the same table oid in another database would
# not mix, and here the two t0 tables counted their own updates.
is($node->safe_psql('postgres',
		"SELECT checked_updates FROM lockctl.versioned_tables WHERE table_name = 't0'::regclass"),
	'2', 'counters of one database');
is($node->safe_psql('other',
		"SELECT checked_updates FROM lockctl.versioned_tables WHERE table_name = 't0'::regclass"),
	'1', 'counters of another database');

# Fill the table: 2 entries are taken, 14 more fit, the 15th table is not
# counted but still checked.
$node->safe_psql('postgres', q{
	DO $$
	BEGIN
		FOR i IN 1..15 LOOP
			EXECUTE format('CREATE TABLE t%s (id int PRIMARY KEY, version int)', i);
			PERFORM lockctl.enable_versioning(format('t%s', i)::regclass);
			EXECUTE format('INSERT INTO t%s VALUES (1, NULL)', i);
		END LOOP;
	END
	$$;
});
is($node->safe_psql('postgres',
		"SELECT count(*) FILTER (WHERE inserts = 1) || ' ' || count(*) FILTER (WHERE inserts IS NULL)
		   FROM lockctl.versioned_tables WHERE table_name::text <> 't0'"),
	'14 1', 'tables beyond lockctl.max_versioned_tables are not counted');
my ($ret, $stdout, $stderr) = $node->psql('postgres',
	"SELECT string_agg(table_name::text, ',') FROM lockctl.versioned_tables WHERE inserts IS NULL");
my $uncounted = $stdout;
($ret, $stdout, $stderr) = $node->psql('postgres',
	"UPDATE $uncounted SET version = 5");
like($stderr, qr/version conflict on table "$uncounted"/,
	'an uncounted table is still checked');

# Disabling frees the entry; the uncounted table is counted from its next write.
$node->safe_psql('postgres', "SELECT lockctl.disable_versioning('t1')");
$node->safe_psql('postgres', "UPDATE $uncounted SET version = 1");
is($node->safe_psql('postgres',
		"SELECT checked_updates FROM lockctl.versioned_tables WHERE table_name = '$uncounted'::regclass"),
	'1', 'a freed entry is taken by the next table');

# Dropped tables are forgotten by a reset.
$node->safe_psql('postgres', 'DROP TABLE t2, t3');
$node->safe_psql('postgres', 'SELECT lockctl.reset_versioning_stats()');
$node->safe_psql('postgres', 'CREATE TABLE t16 (id int PRIMARY KEY, version int)');
$node->safe_psql('postgres', "SELECT lockctl.enable_versioning('t16')");
$node->safe_psql('postgres', 'INSERT INTO t16 VALUES (1, 1)');
is($node->safe_psql('postgres',
		"SELECT inserts FROM lockctl.versioned_tables WHERE table_name = 't16'::regclass"),
	'1', 'entries of dropped tables are freed by reset_versioning_stats()');

# A restart clears the counters; versioning itself stays.
$node->restart;
is($node->safe_psql('postgres',
		"SELECT coalesce(sum(checked_updates), 0) FROM lockctl.versioned_tables"),
	'0', 'counters start over after a restart');
($ret, $stdout, $stderr) = $node->psql('postgres', 'UPDATE t0 SET version = 1');
like($stderr, qr/version conflict/, 'versioning survives a restart');

# pg_dump restores versioning with the trigger: its arguments hold the
# column and the mode, and rows keep their versions.
$node->safe_psql('postgres', q{
	CREATE TABLE dumped (id int PRIMARY KEY, "Lock Version" int);
	SELECT lockctl.enable_versioning('dumped', 'Lock Version', 'orm');
	INSERT INTO dumped VALUES (1, 41);
});
$node->safe_psql('postgres', 'CREATE DATABASE restored');
my $dump = $PostgreSQL::Test::Utils::tmp_check . '/version.dump';
$node->command_ok(
	[ 'pg_dump', '-Fc', '-f', $dump, '-d', $node->connstr('postgres') ],
	'pg_dump of a database with versioned tables');
$node->command_ok(
	[ 'pg_restore', '-d', $node->connstr('restored'), $dump ],
	'pg_restore of it');
is($node->safe_psql('restored',
		"SELECT version_column || ' ' || mode FROM lockctl.versioned_tables WHERE table_name = 'dumped'::regclass"),
	'Lock Version orm', 'versioning is restored with its column and mode');
is($node->safe_psql('restored', 'SELECT "Lock Version" FROM dumped'),
	'41', 'rows keep their versions through the restore');
($ret, $stdout, $stderr) = $node->psql('restored',
	'UPDATE dumped SET "Lock Version" = 40');
like($stderr, qr/version conflict on table "dumped"/,
	'the restored trigger checks versions');

# A hot standby: versioning cannot be changed there; the view can be read.
$node->backup('b');
my $standby = PostgreSQL::Test::Cluster->new('version_standby');
$standby->init_from_backup($node, 'b', has_streaming => 1);
$standby->start;
$node->wait_for_catchup($standby);
($ret, $stdout, $stderr) = $standby->psql('postgres',
	"\\set VERBOSITY verbose\nSELECT lockctl.enable_versioning('t16')");
like($stderr, qr/ERROR:  25006:/, 'enable_versioning on a standby fails with 25006');
($ret, $stdout, $stderr) = $standby->psql('postgres',
	"\\set VERBOSITY verbose\nSELECT lockctl.disable_versioning('t16')");
like($stderr, qr/ERROR:  25006:/, 'disable_versioning on a standby fails with 25006');
($ret, $stdout, $stderr) = $standby->psql('postgres',
	"\\set VERBOSITY verbose\nSELECT lockctl.update_versioned('t0', 1, 3)");
like($stderr, qr/ERROR:  25006:/, 'update_versioned on a standby fails with 25006');
is($standby->safe_psql('postgres',
		"SELECT version_column FROM lockctl.versioned_tables WHERE table_name = 't0'::regclass"),
	'version', 'the view can be read on a standby');

$standby->stop;
$node->stop;
done_testing();
