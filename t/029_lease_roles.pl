# Leases belong to roles, where one session is not enough to show it
# (sql/lease_roles.sql has the rest): a waiter's owner name is hidden from
# other roles and its place in line counts in its role's quota; a lease
# restored after a clean restart is still its role's, and still counts; the
# leases of a dropped database are freed when the drop commits; names taken
# in databases of other encodings are shown as valid text everywhere.
use strict;
use warnings FATAL => 'all';

use lib 't';
use LockctlNode;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $node = LockctlNode->new('lease_roles');
$node->safe_psql('postgres', q{
	CREATE ROLE alice;
	CREATE ROLE bob;
	CREATE ROLE carol IN ROLE pg_read_all_stats;
	CREATE ROLE dave IN ROLE alice;
});

# sql(DB, ROLE, SQL): the result of SQL run as ROLE.
sub sql
{
	my ($db, $role, $sql) = @_;
	return $node->safe_psql($db, "SET ROLE $role; $sql");
}

# try(DB, ROLE, SQL, QUOTA): the SQLSTATE of SQL's error as ROLE, or 'ok';
# with QUOTA, lockctl.max_leases_per_role is set to it first (by the
# superuser: a role cannot set it).
sub try
{
	my ($db, $role, $sql, $quota) = @_;
	my $set = defined $quota ? "SET lockctl.max_leases_per_role = $quota;" : '';
	my ($ret, $out, $err) = $node->psql($db,
		"\\set VERBOSITY sqlstate\n$set SET ROLE $role; $sql");
	return $ret == 0 ? 'ok' : ($err =~ /ERROR:\s+(\w{5})/ ? $1 : $err);
}

# A waiter as ROLE in the background: acquire of RESOURCE for OWNER.
sub start_waiter
{
	my ($db, $role, $resource, $owner) = @_;
	my $s = $node->background_psql($db, on_error_stop => 0);
	$s->query_safe("SET application_name = 'waiter-$owner'; SET ROLE $role");
	$s->query_until(qr/^started\n/m, qq{
\\echo started
SELECT lockctl.acquire('$resource', '$owner', '1 hour', '5 min');
});
	$node->poll_query_until($db,
		"SELECT count(*) = 1 FROM lockctl.lease_waiters WHERE resource = '$resource'")
	  or die "the waiter on $resource did not queue";
	return $s;
}

# ---------------------------------------------------------------------------
# A waiter: its owner name only for its role; its place counts in its quota.
# ---------------------------------------------------------------------------
my $tok_w = sql('postgres', 'alice', "SELECT lockctl.acquire('w', 'alice-1', '1 hour')");
my $w = start_waiter('postgres', 'bob', 'w', 'bob-1');
is(sql('postgres', 'alice',
		"SELECT coalesce(owner, 'hidden') || ' ' || requested_by FROM lockctl.lease_waiters WHERE resource = 'w'"),
	'hidden bob', 'another role sees who waits, not the owner name it gave');
is(sql('postgres', 'carol',
		"SELECT coalesce(owner, 'hidden') FROM lockctl.lease_waiters WHERE resource = 'w'"),
	'hidden', 'so does pg_read_all_stats');
is(sql('postgres', 'bob',
		"SELECT owner FROM lockctl.lease_waiters WHERE resource = 'w'"),
	'bob-1', 'the waiting role sees its owner name');

# With one lease or place in line per role, the waiter takes bob's.
is(try('postgres', 'bob', "SELECT lockctl.acquire('w2', 'bob-2')", 1),
	'53400', 'a waiter counts in its role\'s quota');
is(try('postgres', 'alice', "SELECT lockctl.acquire('w2', 'alice-2', '1 hour')", 2),
	'ok', 'another role\'s count is its own');

# The waiter is granted alice's lease when she releases it: still one.
sql('postgres', 'alice', "SELECT lockctl.release('w', $tok_w)");
$node->poll_query_until('postgres',
	"SELECT acquired_by = 'bob' FROM lockctl.leases WHERE resource = 'w'")
  or die 'the waiter was not granted the lease';
is(try('postgres', 'bob', "SELECT lockctl.acquire('w3', 'bob-3')", 1),
	'53400', 'a waiter granted its lease still counts once');
$w->quit;
sql('postgres', 'postgres', "SELECT lockctl.force_release('w')");
is(try('postgres', 'bob', "SELECT lockctl.acquire('w3', 'bob-3', '1 hour')", 1),
	'ok', 'a released lease no longer counts');

# A waiter that gives up (cancelled) frees its place in the quota.
my $tok_x = sql('postgres', 'alice', "SELECT lockctl.acquire('x', 'alice-x', '1 hour')");
sql('postgres', 'postgres', "SELECT lockctl.force_release('w3')");
$w = start_waiter('postgres', 'bob', 'x', 'bob-x');
is(try('postgres', 'bob', "SELECT lockctl.acquire('w4', 'bob-4')", 1),
	'53400', 'the new waiter counts');
$node->safe_psql('postgres',
	"SELECT pg_cancel_backend(pid) FROM pg_stat_activity WHERE application_name = 'waiter-bob-x'");
$node->poll_query_until('postgres',
	"SELECT count(*) = 0 FROM lockctl.lease_waiters WHERE resource = 'x'")
  or die 'the cancelled waiter did not leave the line';
is(try('postgres', 'bob', "SELECT lockctl.acquire('w4', 'bob-4', '1 hour')", 1),
	'ok', 'a cancelled waiter no longer counts');
$w->quit;
sql('postgres', 'postgres', "SELECT lockctl.force_release('w4'); SELECT lockctl.force_release('w2')");

# ---------------------------------------------------------------------------
# A clean restart keeps each lease's role: bob still cannot renew alice's
# lease with her token, alice can, and it still counts for her.
# ---------------------------------------------------------------------------
$node->stop;
$node->start;
is(sql('postgres', 'alice', "SELECT token FROM lockctl.lease('x')"),
	$tok_x, 'alice\'s lease is restored, and she sees its token');
is(sql('postgres', 'bob', "SELECT coalesce(token::text, 'hidden') FROM lockctl.lease('x')"),
	'hidden', 'bob does not');
is(try('postgres', 'bob', "SELECT lockctl.renew('x', $tok_x)"),
	'40001', 'bob cannot renew the restored lease with its token');
is(try('postgres', 'alice', "SELECT lockctl.renew('x', $tok_x)"),
	'ok', 'alice can');
is(try('postgres', 'alice', "SELECT lockctl.acquire('x2', 'alice-2')", 1),
	'53400', 'a restored lease counts in its role\'s quota');
sql('postgres', 'alice', "SELECT lockctl.release('x', $tok_x)");

# ---------------------------------------------------------------------------
# A dropped database: its leases are freed when the drop commits, not when
# the drop fails.  release_role_leases reaches every database.
# ---------------------------------------------------------------------------
$node->safe_psql('postgres', 'CREATE DATABASE lrdb');
$node->safe_psql('lrdb', 'CREATE EXTENSION lockctl');
sql('lrdb', 'alice', "SELECT lockctl.acquire('d1', 'alice', '1 hour'), lockctl.acquire('d2', 'alice', '1 hour')");
sql('lrdb', 'bob', "SELECT lockctl.acquire('d3', 'bob', '1 hour')");
is($node->safe_psql('postgres',
		"SELECT lockctl.release_role_leases('alice')"),
	'2', 'release_role_leases from another database frees alice\'s leases there');
is($node->safe_psql('postgres',
		"SELECT string_agg(resource, ',') FROM lockctl.leases WHERE database = 'lrdb'"),
	'd3', 'and no one else\'s');

my $slots = $node->safe_psql('postgres', 'SELECT slots_used FROM lockctl.lease_stats');
my $s = $node->background_psql('lrdb');
my ($ret, $out, $err) = $node->psql('postgres', 'DROP DATABASE lrdb');
like($err, qr/is being accessed by other users/, 'a drop of a database in use fails');
is($node->safe_psql('postgres',
		"SELECT count(*) FROM lockctl.leases WHERE database = 'lrdb'"),
	'1', 'and frees nothing');
$s->quit;
$node->safe_psql('postgres', 'DROP DATABASE lrdb');
is($node->safe_psql('postgres',
		"SELECT count(*) FROM lockctl.leases WHERE database IS NULL OR resource = 'd3'"),
	'0', 'the leases of a dropped database are gone');
is($node->safe_psql('postgres', 'SELECT slots_used FROM lockctl.lease_stats'),
	$slots - 1, 'and their slots are free');
ok($node->log_contains('lockctl released 1 lease\(s\) of dropped database "lrdb"'),
	'the release is logged');

# ---------------------------------------------------------------------------
# Names from databases of other encodings.
# ---------------------------------------------------------------------------
$node->safe_psql('postgres', q{
	CREATE DATABASE lat1 ENCODING 'LATIN1' LC_COLLATE 'C' LC_CTYPE 'C' TEMPLATE template0;
	CREATE DATABASE u8 ENCODING 'UTF8' LC_COLLATE 'C' LC_CTYPE 'C' TEMPLATE template0;
	CREATE DATABASE sqlascii ENCODING 'SQL_ASCII' LC_COLLATE 'C' LC_CTYPE 'C' TEMPLATE template0;
});
for my $db ('lat1', 'u8', 'sqlascii')
{
	$node->safe_psql($db, 'CREATE EXTENSION lockctl');
}
# 'café' in LATIN1 (e9), 'naïve' and 'euro-€' in UTF8 (c3af, e282ac),
# 'caf' + byte e9 in SQL_ASCII (no known encoding); the owner names too.
$node->safe_psql('lat1', q{
	SELECT lockctl.acquire(convert_from('\x636166e9', 'LATIN1'), convert_from('\x6fe9', 'LATIN1'), '1 hour');
});
$node->safe_psql('u8', q{
	SELECT lockctl.acquire(convert_from('\x6e61c3af7665', 'UTF8'), 'o', '1 hour'),
	       lockctl.acquire(convert_from('\x6575726f2de282ac', 'UTF8'), 'o', '1 hour');
});
$node->safe_psql('sqlascii', q{
	SELECT lockctl.acquire(convert_from('\x636166e9', 'SQL_ASCII'), 'o', '1 hour');
});

# hex(DB, ENC, WHERE): the names of the matching leases in DB, as bytes in
# encoding ENC, after checking that they are valid there.
sub names
{
	my ($db, $enc, $where) = @_;
	return $node->safe_psql($db, qq{
		SELECT string_agg(encode(convert_to(convert_from(convert_to(resource, '$enc'), '$enc'), '$enc'), 'hex')
		                  || '/' || encode(convert_to(owner, '$enc'), 'hex'), ',' ORDER BY resource)
		  FROM lockctl.leases WHERE $where});
}
is(names('u8', 'UTF8', "database = 'lat1'"), '636166c3a9/6fc3a9',
	'a LATIN1 name and owner are shown converted in a UTF8 database');
is(names('lat1', 'LATIN1', "database = 'u8' AND resource LIKE 'na%'"), '6e61ef7665/6f',
	'a UTF8 name is shown converted in a LATIN1 database');
is($node->safe_psql('lat1',
		"SELECT resource FROM lockctl.leases WHERE database = 'u8' AND resource LIKE 'euro%'"),
	'euro-\xE2\x82\xAC', 'a UTF8 name LATIN1 cannot hold is shown escaped');
is($node->safe_psql('u8',
		"SELECT resource FROM lockctl.leases WHERE database = 'sqlascii'"),
	'caf\xE9', 'a name from a SQL_ASCII database is shown escaped');
is($node->safe_psql('u8', q{
		SET client_encoding = 'LATIN1';
		SELECT count(*) FROM lockctl.leases WHERE database IN ('lat1', 'sqlascii') AND resource IS NOT NULL}),
	'2', 'a LATIN1 client reads them from the UTF8 database');
is(names('u8', 'UTF8', 'true') =~ tr/,//, 3,
	'every name the UTF8 database shows is valid UTF8');

# ---------------------------------------------------------------------------
# The 1.1 library with 1.0's SQL objects: lease_waiters has no
# requested_by column until ALTER EXTENSION lockctl UPDATE.
# ---------------------------------------------------------------------------
$node->safe_psql('postgres', 'CREATE DATABASE old');
$node->safe_psql('old', "CREATE EXTENSION lockctl VERSION '1.0'");
my $tok_o = sql('old', 'alice', "SELECT lockctl.acquire('o', 'alice-o', '1 hour')");
$w = start_waiter('old', 'bob', 'o', 'bob-o');
is(sql('old', 'alice',
		"SELECT coalesce(owner, 'hidden') || ' ' || pid FROM lockctl.lease_waiters WHERE resource = 'o'")
	  =~ /^hidden \d+$/ ? 1 : 0,
	1, 'under 1.0\'s SQL the waiters view works and hides other roles\' owners');
is(try('old', 'bob', "SELECT lockctl.renew('o', $tok_o)"),
	'40001', 'and another role\'s lease is lost to bob');
$node->safe_psql('old', 'ALTER EXTENSION lockctl UPDATE');
is(sql('old', 'alice',
		"SELECT requested_by FROM lockctl.lease_waiters WHERE resource = 'o'"),
	'bob', 'after the update it names the waiting role');
sql('old', 'alice', "SELECT lockctl.release('o', $tok_o)");
$w->quit;

done_testing();
