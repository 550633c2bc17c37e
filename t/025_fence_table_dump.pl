# Fenced tables through pg_dump and pg_restore: the configuration (a
# table-wide lease, a per-row expression that names a function of another
# schema, a token column, a partitioned table with a partition attached
# after fencing was enabled) comes back with the triggers; writes in the
# restored database are refused without a live fence and accepted with one;
# the token column keeps refusing writes with a lower token than the rows
# recorded, in another cluster too.
use strict;
use warnings FATAL => 'all';

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $node = PostgreSQL::Test::Cluster->new('fence_dump');
$node->init;
$node->append_conf('postgresql.conf', "shared_preload_libraries = 'lockctl'");
$node->start;
# Every start advances the token epoch: the tokens written below are above
# those of a cluster that started only once.
$node->restart for 1 .. 3;

$node->safe_psql('postgres', 'CREATE DATABASE src');
$node->safe_psql('src', q{
	CREATE EXTENSION lockctl;
	CREATE SCHEMA app;
	CREATE FUNCTION app.acct_key(i int) RETURNS text IMMUTABLE LANGUAGE sql
		AS $$ SELECT 'acct:' || i $$;
	CREATE TABLE app.acct (id int PRIMARY KEY, balance int, token bigint);
	CREATE TABLE app.report (id int PRIMARY KEY, body text);
	CREATE TABLE app.ledger (region text, id int, amount int, token bigint,
	                         PRIMARY KEY (region, id)) PARTITION BY LIST (region);
	CREATE TABLE app.ledger_eu PARTITION OF app.ledger FOR VALUES IN ('eu');
	-- the function unqualified: the stored expression must qualify it
	SET search_path = app, public;
	SELECT lockctl.enable_fencing('acct', token_column => 'token',
	                              resource_expression => 'acct_key(id)');
	RESET search_path;
	SELECT lockctl.enable_fencing('app.report', 'nightly-report');
	SELECT lockctl.enable_fencing('app.ledger', token_column => 'token',
	                              resource_expression => $$'region:' || region$$);
	CREATE TABLE app.ledger_us (region text, id int, amount int, token bigint,
	                            PRIMARY KEY (region, id));
	ALTER TABLE app.ledger ATTACH PARTITION app.ledger_us FOR VALUES IN ('us');
});

# A holder writes every table under its fences.
my %tok;
for my $r ('acct:1', 'nightly-report', 'region:eu', 'region:us')
{
	$tok{$r} = $node->safe_psql('src',
		"SELECT lockctl.acquire('$r', 'writer', '1 hour')");
}
$node->safe_psql('src', qq{
	BEGIN;
	SELECT lockctl.fence('acct:1', $tok{'acct:1'});
	SELECT lockctl.fence('nightly-report', $tok{'nightly-report'});
	SELECT lockctl.fence('region:eu', $tok{'region:eu'});
	SELECT lockctl.fence('region:us', $tok{'region:us'});
	INSERT INTO app.acct VALUES (1, 100);
	INSERT INTO app.report VALUES (1, 'final');
	INSERT INTO app.ledger VALUES ('eu', 1, 10), ('us', 1, 20);
	COMMIT;
});
is($node->safe_psql('src', "SELECT token FROM app.acct WHERE id = 1"),
	$tok{'acct:1'}, 'the row records the token that wrote it');

my $config = q{SELECT table_name::text, resource, resource_expression, token_column, enabled
	FROM lockctl.fenced_tables ORDER BY 1};
my $clones = q{SELECT c.relname || ':' || (t.tgparentid <> 0) FROM pg_trigger t
	JOIN pg_class c ON c.oid = t.tgrelid
	WHERE t.tgfoid = 'lockctl.fence_trigger'::regproc ORDER BY 1};
my $src_config = $node->safe_psql('src', $config);
like($src_config, qr/app\.acct_key\(id\)/,
	'the stored expression names the function with its schema');

# Dump, restore into a new database of the same cluster.
my $dump = $node->basedir . '/src.dump';
$node->command_ok([ 'pg_dump', '-Fc', '-f', $dump, '-d', $node->connstr('src') ],
	'pg_dump of a database with fenced tables');
$node->safe_psql('postgres', 'CREATE DATABASE dst');
$node->command_ok([ 'pg_restore', '-d', $node->connstr('dst'), $dump ],
	'pg_restore into a new database');

is($node->safe_psql('dst', $config), $src_config,
	'the fencing configuration is restored');
is($node->safe_psql('dst', $clones), $node->safe_psql('src', $clones),
	'so is the trigger of each partition, the one attached later too');
is($node->safe_psql('dst',
		"SELECT string_agg(token::text, ',' ORDER BY region) FROM app.ledger"),
	"$tok{'region:eu'},$tok{'region:us'}", 'token columns keep their values');

# In the restored database, every table refuses an unfenced write, and a
# hostile search_path changes nothing about which lease a row needs.
$node->safe_psql('dst', q{
	CREATE SCHEMA evil;
	CREATE FUNCTION evil.acct_key(i int) RETURNS text IMMUTABLE LANGUAGE sql
		AS $$ SELECT 'free-for-all' $$;
});
for my $w (
	[ 'acct',      "UPDATE app.acct SET balance = 0 WHERE id = 1" ],
	[ 'report',    "UPDATE app.report SET body = 'x'" ],
	[ 'ledger_eu', "UPDATE app.ledger SET amount = 0 WHERE region = 'eu'" ],
	[ 'ledger_us', "INSERT INTO app.ledger VALUES ('us', 2, 1)" ])
{
	my ($ret, $out, $err) = $node->psql('dst',
		"SET search_path = evil, app, public; $w->[1]");
	isnt($ret, 0, "restored $w->[0]: an unfenced write fails");
	like($err, qr/write to fenced table "\Q$w->[0]\E" refused/,
		"restored $w->[0]: refused by the fence check");
}
my $free = $node->safe_psql('dst',
	"SELECT lockctl.acquire('free-for-all', 'intruder')");
my ($ret, $out, $err) = $node->psql('dst', qq{
	SET search_path = evil, app, public;
	BEGIN;
	SELECT lockctl.fence('free-for-all', $free);
	UPDATE app.acct SET balance = 0 WHERE id = 1;
	COMMIT;
});
like($err, qr/needs a live fence on lease "acct:1"/,
	'the restored expression still means app.acct_key, whatever the search_path');

# The restored tables take fenced writes.  The leases live in the server,
# not in a database: the source's lease names mean other leases here, so
# this database's holders take their own.
my %dtok;
for my $r ('acct:1', 'nightly-report', 'region:us')
{
	$dtok{$r} = $node->safe_psql('dst',
		"SELECT lockctl.acquire('$r', 'writer-2', '1 hour')");
}
$node->safe_psql('dst', qq{
	BEGIN;
	SELECT lockctl.fence('acct:1', $dtok{'acct:1'});
	SELECT lockctl.fence('nightly-report', $dtok{'nightly-report'});
	SELECT lockctl.fence('region:us', $dtok{'region:us'});
	UPDATE app.acct SET balance = 1 WHERE id = 1;
	UPDATE app.report SET body = 'restored';
	INSERT INTO app.ledger VALUES ('us', 2, 1);
	COMMIT;
});
is($node->safe_psql('dst', qq{
	SELECT (SELECT count(*) FROM app.ledger) || ' '
	    || (SELECT body FROM app.report) || ' '
	    || (SELECT token = $dtok{'acct:1'} FROM app.acct WHERE id = 1)}),
	'3 restored true', 'with live fences, the restored tables take writes');

# Restored into another cluster, started once: its tokens are below those
# the rows recorded (unless something carried the token high-water mark
# over), and the token column refuses exactly the writes whose token is
# lower than the row's.
my $other = PostgreSQL::Test::Cluster->new('fence_dump_other');
$other->init;
$other->append_conf('postgresql.conf', "shared_preload_libraries = 'lockctl'");
$other->start;
$other->safe_psql('postgres', 'CREATE DATABASE dst');
$other->command_ok([ 'pg_restore', '-d', $other->connstr('dst'), $dump ],
	'pg_restore into another cluster');
is($other->safe_psql('dst', $config), $src_config,
	'the configuration is restored there too');
my $t2 = $other->safe_psql('dst',
	"SELECT lockctl.acquire('acct:1', 'writer-3', '1 hour')");
($ret, $out, $err) = $other->psql('dst', qq{
	BEGIN;
	SELECT lockctl.fence('acct:1', $t2);
	UPDATE app.acct SET balance = 2 WHERE id = 1;
	COMMIT;
});
if ($t2 < $tok{'acct:1'})
{
	isnt($ret, 0, 'a live token lower than the row\'s: the write fails');
	like($err, qr/row \(id\)=\(1\) was written with a newer fencing token/,
		'refused as stale by the token column');
	unlike($err, qr/$tok{'acct:1'}/, 'the message does not show the row\'s token');
}
else
{
	is($ret, 0, 'a live token not lower than the row\'s: the write lands');
}
# A row the token column has no token for yet takes any live token.
my $t3 = $other->safe_psql('dst',
	"SELECT lockctl.acquire('acct:7', 'writer-3', '1 hour')");
$other->safe_psql('dst', qq{
	BEGIN;
	SELECT lockctl.fence('acct:7', $t3);
	INSERT INTO app.acct VALUES (7, 7);
	COMMIT;
});
is($other->safe_psql('dst', "SELECT token FROM app.acct WHERE id = 7"),
	$t3, 'a new row records the token of the cluster it was written in');

$other->stop;
$node->stop;
done_testing();
