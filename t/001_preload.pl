# The preload check and the server's life cycle with lockctl loaded.
use strict;
use warnings FATAL => 'all';

use lib 't';
use LockctlNode;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $node = LockctlNode->new('preload', preload => 0);

# Without the preload, CREATE EXTENSION fails and says what to set.
my ($ret, $stdout, $stderr) = $node->psql('postgres',
	"\\set VERBOSITY verbose\nCREATE EXTENSION lockctl;");
isnt($ret, 0, 'CREATE EXTENSION fails without shared_preload_libraries');
like($stderr, qr/ERROR:  55000: lockctl must be loaded via "shared_preload_libraries"/,
	'the error is 55000 and names the setting');
like($stderr, qr/HINT:  Add 'lockctl' to "shared_preload_libraries"/,
	'the hint says what to do');
is($node->safe_psql('postgres',
		"SELECT count(*) FROM pg_extension WHERE extname = 'lockctl'"),
	'0', 'nothing was left behind');
is($node->safe_psql('postgres',
		"SELECT count(*) FROM pg_namespace WHERE nspname = 'lockctl'"),
	'0', 'not even the schema');

# LOAD fails the same way, every time (the library is not half-loaded).
for my $try (1 .. 2)
{
	($ret, $stdout, $stderr) = $node->psql('postgres', "LOAD 'lockctl';");
	like($stderr, qr/must be loaded via "shared_preload_libraries"/,
		"LOAD without the preload fails (try $try)");
}

# With the preload, it installs and reports its version.
$node->append_conf('postgresql.conf', "shared_preload_libraries = 'lockctl'");
$node->restart;
$node->safe_psql('postgres', 'CREATE EXTENSION lockctl');
is($node->safe_psql('postgres', 'SELECT lockctl.library_version()'),
	$node->safe_psql('postgres',
		"SELECT extversion FROM pg_extension WHERE extname = 'lockctl'"),
	'library and extension versions agree');
is($node->safe_psql('postgres', 'SHOW lockctl.max_leases'),
	'4096', 'settings are registered');
# From PostgreSQL 18 on, the library names itself and its version.
SKIP:
{
	skip 'pg_get_loaded_modules() is new in PostgreSQL 18', 1
	  if $node->safe_psql('postgres', 'SHOW server_version_num') < 180000;
	is($node->safe_psql('postgres',
			"SELECT module_name || ' ' || version FROM pg_get_loaded_modules() WHERE file_name = 'lockctl.so'"),
		'lockctl ' . $node->safe_psql('postgres', 'SELECT lockctl.library_version()'),
		'pg_get_loaded_modules() names lockctl and its version');
}

# The loaded library is the version of the installed SQL objects.
my $library_matches = q{SELECT lockctl.library_version() = extversion
	FROM pg_extension WHERE extname = 'lockctl'};

# A postmaster setting takes effect at restart, and the extension survives it.
$node->append_conf('postgresql.conf', 'lockctl.max_leases = 128');
$node->restart;
is($node->safe_psql('postgres', 'SHOW lockctl.max_leases'),
	'128', 'postmaster setting applied after restart');
is($node->safe_psql('postgres', $library_matches),
	't', 'extension works after restart');

# A crash restart brings it back too.
$node->stop('immediate');
$node->start;
is($node->safe_psql('postgres', $library_matches),
	't', 'extension works after a crash restart');

$node->stop;
done_testing();
