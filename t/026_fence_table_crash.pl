# A fenced table across a crash.  A crash empties the lease table: the old
# holder can then neither fence nor write, and the next holder writes with a
# higher token.  The token column is the check that needs no lease: when
# tokens go back (here the lockctl state file of an older copy of the data
# directory is put back, one of the limits the README names), a holder with
# a live lease but a lower token than the row recorded is refused.
use strict;
use warnings FATAL => 'all';

use File::Copy;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $node = PostgreSQL::Test::Cluster->new('fence_crash');
$node->init;
$node->append_conf('postgresql.conf', "shared_preload_libraries = 'lockctl'");
$node->start;
$node->safe_psql('postgres', q{
	CREATE EXTENSION lockctl;
	CREATE TABLE doc (id int PRIMARY KEY, body text, token bigint);
	SELECT lockctl.enable_fencing('doc', 'doc', 'token');
});
my $epoch_file = $node->data_dir . '/pg_lockctl_epoch';
my $old_epoch = $node->basedir . '/pg_lockctl_epoch.old';
copy($epoch_file, $old_epoch) or die "copy $epoch_file: $!";

# fenced_write(token, body): fence and write in one transaction; returns
# psql's exit code and stderr.
sub fenced_write
{
	my ($token, $body) = @_;
	my ($ret, $out, $err) = $node->psql('postgres', qq{
		BEGIN;
		SELECT lockctl.fence('doc', $token);
		INSERT INTO doc VALUES (1, '$body') ON CONFLICT (id) DO UPDATE SET body = EXCLUDED.body;
		COMMIT;
	});
	return ($ret, $err);
}

# A writes under its lease.
my $ta = $node->safe_psql('postgres', "SELECT lockctl.acquire('doc', 'a', '1 hour')");
my ($ret, $err) = fenced_write($ta, 'from a');
is($ret, 0, 'the holder writes under its fence');
is($node->safe_psql('postgres', 'SELECT token FROM doc'), $ta,
	'the row records its token');

# Crash: the lease table is empty afterwards.
$node->stop('immediate');
$node->start;
is($node->safe_psql('postgres', 'SELECT count(*) FROM lockctl.leases'),
	'0', 'after a crash no lease is live');

# A, paused across the crash, wakes: no path is open to it.
($ret, undef, $err) = $node->psql('postgres',
	"UPDATE doc SET body = 'a without fence'");
isnt($ret, 0, 'an unfenced write fails after the crash');
like($err, qr/needs a live fence on lease "doc"/, 'refused by the fence check');
($ret, $err) = fenced_write($ta, 'a with fence');
isnt($ret, 0, 'the old holder cannot fence after the crash');
like($err, qr/fencing token \d+ for lease "doc" is stale/,
	'fence() refuses its token');

# B takes the lease (after a few other grants, so that its token is well
# into the new epoch) and writes.
$node->safe_psql('postgres',
	"SELECT lockctl.acquire('other-' || i, 'x', '1 hour') FROM generate_series(1, 20) i");
my $tb = $node->safe_psql('postgres', "SELECT lockctl.acquire('doc', 'b', '1 hour')");
ok($tb > $ta, 'the next token is higher than any before the crash');
($ret, $err) = fenced_write($tb, 'from b');
is($ret, 0, 'the new holder writes');
is($node->safe_psql('postgres', 'SELECT body || \':\' || token FROM doc'),
	"from b:$tb", 'the row records the new token');

# Tokens go back: the state file of before the first crash is put back and
# the server crashes again.  The lease table is empty again; C takes the
# lease with whatever token the server now grants.
$node->stop('immediate');
copy($old_epoch, $epoch_file) or die "copy $old_epoch: $!";
$node->start;
is($node->safe_psql('postgres', 'SELECT count(*) FROM lockctl.leases'),
	'0', 'after the second crash no lease is live either');
my $tc = $node->safe_psql('postgres', "SELECT lockctl.acquire('doc', 'c', '1 hour')");
($ret, $err) = fenced_write($tc, 'from c');
if ($tc < $tb)
{
	# What 1.0's token state allows: the live lease's token is below the
	# one the row recorded.  The lease check passes; the token column does
	# not.
	isnt($ret, 0, 'a live but lower token cannot write the row');
	like($err, qr/row \(id\)=\(1\) was written with a newer fencing token/,
		'refused as stale by the token column');
	unlike($err, qr/\Q$tb\E/, 'the message does not show the row\'s token');
	is($node->safe_psql('postgres', 'SELECT body FROM doc'), 'from b',
		'the row keeps the newer holder\'s write');
	is($node->safe_psql('postgres',
			"SELECT refused_stale FROM lockctl.fenced_tables WHERE table_name = 'doc'::regclass"),
		'1', 'the refusal is counted as stale');
}
else
{
	# Where the server can tell that its state file went back, it grants
	# above every earlier token, and the write is simply the next one.
	is($ret, 0, 'a token above the row\'s writes');
}

$node->stop;
done_testing();
