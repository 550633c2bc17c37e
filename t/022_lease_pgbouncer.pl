# Through PgBouncer in transaction pooling mode, a lease taken in one
# transaction is renewed, fenced and released from other transactions that
# run on other server connections: a lease belongs to its token, not to a
# session.  In session pooling (database alias postgres_session), a
# lease-end NOTIFY reaches its listener, and DISCARD ALL, PgBouncer's reset
# between clients, ends a lease bound to the session, so it never passes to
# the next client of that server connection.  The test runs its own
# pgbouncer on a free loopback port.
use strict;
use warnings FATAL => 'all';

use lib 't';
use LockctlNode;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use IPC::Run;

my $pgbouncer = '/usr/sbin/pgbouncer';
plan skip_all => 'pgbouncer is not installed (apt-get install pgbouncer)'
  unless -x $pgbouncer;

my $node = LockctlNode->new('lease_pgb', worker => 1);
$node->safe_psql('postgres', q{
	CREATE TABLE doc (id int PRIMARY KEY, body text, token bigint);
	INSERT INTO doc VALUES (1, 'original', NULL);
});

my $user = getpwuid($<);
my $dir = PostgreSQL::Test::Utils::tempdir;
my $port = PostgreSQL::Test::Cluster::get_free_port();
my $ini = "$dir/pgbouncer.ini";
open my $fh, '>', "$dir/userlist.txt" or die $!;
print $fh qq{"$user" ""\n};
close $fh;
open $fh, '>', $ini or die $!;
print $fh <<"INI";
[databases]
postgres = host=@{[ $node->host ]} port=@{[ $node->port ]} dbname=postgres
postgres_session = host=@{[ $node->host ]} port=@{[ $node->port ]} dbname=postgres pool_mode=session

[pgbouncer]
listen_addr = 127.0.0.1
listen_port = $port
unix_socket_dir = @{[ $node->host ]}
auth_type = trust
auth_file = $dir/userlist.txt
pool_mode = transaction
default_pool_size = 2
max_client_conn = 20
server_reset_query = DISCARD ALL
logfile = $dir/pgbouncer.log
pidfile = $dir/pgbouncer.pid
INI
close $fh;

system($pgbouncer, '-d', $ini) == 0 or die "pgbouncer did not start: $?";
END
{
	if (defined $dir && -f "$dir/pgbouncer.pid")
	{
		open my $p, '<', "$dir/pgbouncer.pid";
		my $pid = <$p>;
		chomp $pid;
		kill 'TERM', $pid if $pid;
	}
}

# One statement through pgbouncer over TCP on the loopback port; each is a
# transaction of its own, on whichever server connection pgbouncer picks
# (or, with $db postgres_session, on a connection kept for the client).
sub via_bouncer
{
	my ($sql, $db) = @_;
	$db //= 'postgres';
	my ($out, $err);
	IPC::Run::run [ 'psql', '-XAtq', '-h', '127.0.0.1', '-p', $port,
		'-U', $user, '-d', $db, '-v', 'ON_ERROR_STOP=1', '-c', $sql ],
	  '>', \$out, '2>', \$err;
	chomp $out;
	return wantarray ? ($?, $out, $err) : $out;
}

# Wait until pgbouncer answers.
my $tries = 0;
until ((via_bouncer('SELECT 1'))[1] eq '1')
{
	die 'pgbouncer never answered' if ++$tries > 10 * $PostgreSQL::Test::Utils::timeout_default;
	select(undef, undef, undef, 0.1);
}

# Take the lease; note the server connection that did it.
my ($pid1, $token) = split /\|/,
  via_bouncer("SELECT pg_backend_pid(), lockctl.acquire('doc', 'app', '1 min')");
ok($token =~ /^\d+$/, 'lease taken through pgbouncer');

# Another client keeps a transaction open, so that pgbouncer pins a server
# connection to it and must use another one for everyone else.
# (A node object that is never started, pointing at pgbouncer's socket, so
# that background_psql connects through pgbouncer.)
my $bouncer_node = PostgreSQL::Test::Cluster->new('bouncer_proxy', port => $port);
my $pinned = $bouncer_node->background_psql('postgres');
$pinned->query_safe('BEGIN');
my $pinned_pid = $pinned->query_safe('SELECT pg_backend_pid()');

my ($pid2, $expires) = split /\|/,
  via_bouncer("SELECT pg_backend_pid(), lockctl.renew('doc', $token, '2 min') > now() + interval '90 s'");
isnt($pid2, $pinned_pid, 'renew ran on a server connection other than the pinned one');
is($expires, 't', 'the lease was renewed from another transaction');

# A fenced write through pgbouncer: fence and UPDATE in one transaction.
my ($rc, $out, $err) = via_bouncer(
	"BEGIN; SELECT lockctl.fence('doc', $token); UPDATE doc SET body = 'fenced', token = $token WHERE id = 1; COMMIT;");
is($rc, 0, 'a fenced write through pgbouncer works') or diag $err;
is($node->safe_psql('postgres', 'SELECT body FROM doc WHERE id = 1'),
	'fenced', 'and its write is there');

# The pinned client's transaction sees the lease too, and can release it.
is($pinned->query_safe("SELECT owner FROM lockctl.lease('doc')"), 'app',
	'the pinned connection sees the lease');
$pinned->query_safe('COMMIT');

my ($pid3, $released) = split /\|/,
  via_bouncer("SELECT pg_backend_pid(), lockctl.release('doc', $token)");
is($released, 't', 'released from yet another transaction through pgbouncer');
is($node->safe_psql('postgres', "SELECT count(*) FROM lockctl.lease('doc')"),
	'0', 'the lease is gone');

# watch is one statement: through pgbouncer it sleeps on whichever server
# connection it got, and says how the lease ended.
is((via_bouncer("SELECT lockctl.watch('doc', $token, '0')"))[1], 'released',
	'watch through pgbouncer says how the lease ended');
my $t2 = (via_bouncer("SELECT lockctl.acquire('doc2', 'app', '300 ms')"))[1];
is((via_bouncer("SELECT lockctl.watch('doc2', $t2, '1 min')"))[1], 'expired',
	'a watch through pgbouncer sleeps until the expiry');

# A stale token through pgbouncer: 40001 like anywhere else.
($rc, $out, $err) = via_bouncer("SELECT lockctl.fence('doc', $token)");
like($err, qr/fencing token $token for lease "doc" is stale/, 'stale token refused through pgbouncer');

# Session pooling: a listener gets the NOTIFY of its lease's end (sent by
# the expiry worker's transaction), waiting for it with a timeout.
LockctlNode::wait_for_worker($node, 'postgres');
my $listen = <<'PY';
import select, sys, time
import psycopg2
conn = psycopg2.connect(sys.argv[1])
conn.autocommit = True
cur = conn.cursor()
cur.execute('LISTEN "lease end"')
cur.execute("SELECT lockctl.acquire('sess-doc', 'app', '1 min', notify => 'lease end')")
token = cur.fetchone()[0]
cur.execute("SELECT lockctl.release('sess-doc', %s)", (token,))
deadline = time.monotonic() + float(sys.argv[2])
while not conn.notifies and time.monotonic() < deadline:
    select.select([conn], [], [], max(0.0, deadline - time.monotonic()))
    conn.poll()
for n in conn.notifies[:1]:
    print(n.channel + '|' + n.payload)
PY
my $py_dsn = "host=127.0.0.1 port=$port user=$user dbname=postgres_session";
($out, $err) = ('', '');
IPC::Run::run [ '/usr/bin/python3', '-c', $listen, $py_dsn,
	$PostgreSQL::Test::Utils::timeout_default ], '>', \$out, '2>', \$err;
like($out, qr/^lease end\|\{.*"resource": "sess-doc".*"ended": "released"/,
	'a lease-end NOTIFY reaches a listener through session pooling')
  or diag "out: $out\nerr: $err";

# A lease bound to the session, taken through session pooling: when the
# client leaves, pgbouncer's DISCARD ALL ends it, though the server
# connection lives on in the pool for the next client.
my ($bound_pid, $bound) = split /\|/, via_bouncer(
	"SELECT pg_backend_pid(), lockctl.acquire('sess-bound', 'app', bind => 'session')",
	'postgres_session');
ok($bound =~ /^\d+$/, 'a session-bound lease taken through session pooling');
ok($node->poll_query_until('postgres',
		"SELECT count(*) = 0 FROM lockctl.leases WHERE resource = 'sess-bound'"),
	'the client left: DISCARD ALL ended the bound lease');
is($node->safe_psql('postgres',
		"SELECT count(*) FROM pg_stat_activity WHERE pid = $bound_pid"),
	'1', 'while its server connection lives on in the pool');
is($node->safe_psql('postgres', "SELECT lockctl.watch('sess-bound', $bound, '0')"),
	'session ended', 'watch says the session ended it');

$pinned->quit;
$node->stop;
done_testing();
