# Version-checked updates under real concurrency: several pgbench clients
# read a row, compute balance + 1 from what they read, and write it back
# with the version they read, retrying on 40001.  Every successful script
# must end up in the final sum, exactly; every retry must be one conflict
# counted by lockctl.  The same workload without the version check loses
# updates, which shows the workload really races.
use strict;
use warnings FATAL => 'all';

use lib 't';
use LockctlNode;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $node = LockctlNode->new('version_concurrency',
	conf => "max_connections = 40\n");

my $clients = 6;
my $per_client = 40;
my $rows = 3;

# Run pgbench with one script; return (processed, failed, total retries).
sub run_pgbench
{
	my ($name, $script) = @_;
	my $file = $PostgreSQL::Test::Utils::tmp_check . "/$name.sql";
	open my $fh, '>', $file or die "could not write $file: $!";
	print $fh $script;
	close $fh;

	my ($stdout, $stderr) = run_command(
		[
			'pgbench', '-n',
			'-h', $node->host, '-p', $node->port,
			'-c', $clients, '-j', 2, '-t', $per_client,
			'--max-tries=10000', '-f', $file, 'postgres'
		]);
	my ($processed) = $stdout =~ /number of transactions actually processed: (\d+)/;
	my ($failed) = $stdout =~ /number of failed transactions: (\d+)/;
	my ($retries) = $stdout =~ /total number of retries: (\d+)/;
	die "pgbench $name gave no result:\n$stdout\n$stderr"
	  unless defined $processed;
	return ($processed, $failed // 0, $retries // 0);
}

sub setup_table
{
	my ($table, $versioned) = @_;
	$node->safe_psql('postgres', qq{
		CREATE TABLE $table (id int PRIMARY KEY, balance bigint NOT NULL,
							 version bigint NOT NULL DEFAULT 1);
		INSERT INTO $table SELECT g, 0 FROM generate_series(1, $rows) g;
	});
	$node->safe_psql('postgres', "SELECT lockctl.enable_versioning('$table')")
	  if $versioned;
}

# Read, wait a moment (so that the clients overlap), write what was read.
my $rmw = <<"EOF";
\\set id random(1, $rows)
SELECT balance, version FROM acct WHERE id = :id \\gset
\\sleep 1 ms
UPDATE acct SET balance = :balance + 1, version = :version WHERE id = :id;
EOF

setup_table('acct', 1);
my ($processed, $failed, $retries) = run_pgbench('rmw', $rmw);
is($processed, $clients * $per_client, 'every client script eventually succeeded');
is($failed, 0, 'no script gave up');
cmp_ok($retries, '>', 0, 'clients did conflict and retry');
is($node->safe_psql('postgres', 'SELECT sum(balance) FROM acct'),
	$processed, 'the final sum is exactly the number of increments');
is($node->safe_psql('postgres', 'SELECT sum(version - 1) FROM acct'),
	$processed, 'every increment bumped the version once');
is( $node->safe_psql(
		'postgres',
		"SELECT checked_updates || ' ' || conflicts || ' ' || blind_writes
		   FROM lockctl.versioned_tables WHERE table_name = 'acct'::regclass"),
	"$processed $retries 0",
	'the counters saw every checked update and every conflict, though the conflicts rolled back');

# The same through lockctl.update_versioned().
my $fn = <<"EOF";
\\set id random(1, $rows)
SELECT balance, version FROM acct_fn WHERE id = :id \\gset
\\sleep 1 ms
SELECT lockctl.update_versioned('acct_fn', :id, :version, jsonb_build_object('balance', :balance + 1));
EOF

setup_table('acct_fn', 1);
($processed, $failed, $retries) = run_pgbench('fn', $fn);
is($processed, $clients * $per_client, 'update_versioned: every script succeeded');
is($failed, 0, 'update_versioned: no script gave up');
cmp_ok($retries, '>', 0, 'update_versioned: clients did conflict and retry');
is($node->safe_psql('postgres', 'SELECT sum(balance) FROM acct_fn'),
	$processed, 'update_versioned: the final sum is exact');

# Without versioning the same workload loses updates.
my $plain = $rmw;
$plain =~ s/acct/acct_plain/g;
$plain =~ s/, version = :version//;
setup_table('acct_plain', 0);
($processed, $failed, $retries) = run_pgbench('plain', $plain);
my $sum = $node->safe_psql('postgres', 'SELECT sum(balance) FROM acct_plain');
cmp_ok($sum, '<', $processed,
	"without versioning, updates are lost ($sum of $processed kept)");

$node->stop;
done_testing();
