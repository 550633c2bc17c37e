# The chaos run: many clients mix version-checked updates, leases with fenced
# writes (alone and in sets, acquire_all), reservations and calendars while
# queries are cancelled, statement timeouts cut calls short, client backends
# and the expiry worker are terminated, and the server is crash-restarted and
# cleanly restarted.  An independent checker
# (chaos/chaos.py) then verifies every invariant from the recorded history and
# the tables, and must itself catch known corruptions.
#
#   LOCKCTL_CHAOS_SECONDS=600 make tapcheck PROVE_TESTS=t/090_chaos.pl
#
# The history, the faults and the snapshot are kept in tmp_check/log/chaos/.
use strict;
use warnings FATAL => 'all';

use File::Basename qw(dirname);
use File::Path qw(make_path);
use IPC::Run;
use Time::HiRes qw(clock_gettime CLOCK_MONOTONIC);
use lib 't';
use LockctlNode;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $seconds = $ENV{LOCKCTL_CHAOS_SECONDS} // 120;
my $seed = $ENV{LOCKCTL_CHAOS_SEED} // int(rand(1_000_000));
my $clients = $ENV{LOCKCTL_CHAOS_CLIENTS} // 10;
my $python = '/usr/bin/python3';
my $chaos = dirname(__FILE__) . '/../chaos/chaos.py';
my $dir = "$PostgreSQL::Test::Utils::log_path/chaos";
make_path($dir);
note "chaos: $seconds s, $clients clients, seed $seed (LOCKCTL_CHAOS_SEED to replay the choices)";

my $node = LockctlNode->new('chaos', worker => 1, conf => qq(
lockctl.expiry_interval = '200ms'
lockctl.max_leases = 256
max_connections = 64
log_line_prefix = '%m [%p] %a '
));
my $dsn = $node->connstr('postgres');

sub chaos_cmd
{
	my ($cmd, @args) = @_;
	my ($out, $err) = ('', '');
	my $ok = IPC::Run::run([ $python, $chaos, $cmd, '--dsn', $dsn, '--dir', $dir, @args ],
		'>', \$out, '2>', \$err);
	note $out if $out ne '';
	note $err if $err ne '';
	return ($ok ? 0 : ($? >> 8), $out, $err);
}

sub fault
{
	my ($kind, $code) = @_;
	my $t0 = clock_gettime(CLOCK_MONOTONIC);
	$code->();
	my $t1 = clock_gettime(CLOCK_MONOTONIC);
	open my $fh, '>>', "$dir/faults.jsonl" or die $!;
	printf $fh qq({"kind": "%s", "t0": %.6f, "t1": %.6f}\n), $kind, $t0, $t1;
	close $fh;
	note sprintf('fault: %s (%.1f s)', $kind, $t1 - $t0);
}

# The checker's own unit tests first: synthetic histories, each breaking
# one invariant of the newer kinds, must each be reported (and a clean one
# not).  Only python3 of Debian; no server.
{
	my ($out, $err) = ('', '');
	my $ok = IPC::Run::run([ $python, dirname(__FILE__) . '/../chaos/test_checker.py' ],
		'>', \$out, '2>', \$err);
	ok($ok, 'the checker catches every deliberate bug of its unit tests')
	  or diag "$out$err";
	note $err;
}

my ($rc) = chaos_cmd('setup');
is($rc, 0, 'chaos objects created');
my $features = slurp_file("$dir/features.json");
my %has = map { $_ => ($features =~ /"$_": true/ ? 1 : 0) }
  qw(versioning lease reserve counted shared carts limits waitlist sets calendars);
note "feature $_: " . ($has{$_} ? 'exercised' : 'ABSENT, not exercised') for sort keys %has;
if (!grep { $_ } values %has)
{
	note 'no lockctl feature to exercise yet';
	$node->stop;
	done_testing();
	exit 0;
}

# The load runs in the background; this loop adds the server-level faults.
my ($lout, $lerr) = ('', '');
my $load = IPC::Run::start(
	[
		$python, $chaos, 'load', '--dsn', $dsn, '--dir', $dir,
		'--seconds', $seconds, '--clients', $clients, '--seed', $seed
	],
	'>', \$lout, '2>', \$lerr);

srand($seed);
my $start = clock_gettime(CLOCK_MONOTONIC);
my $n = 0;
while (1)
{
	# the last restart ends well before the load does, so that the tail of
	# the run shows the server catching up
	my $gap = 10 + rand(15);
	last if clock_gettime(CLOCK_MONOTONIC) + $gap > $start + $seconds - 10;
	# this loop is the fault schedule: it waits on purpose
	Time::HiRes::sleep($gap);
	if ($n++ % 2 == 0)
	{
		fault('crash', sub { $node->stop('immediate'); $node->start; });
	}
	else
	{
		fault('restart', sub { $node->restart; });
	}
}
$load->finish;
note $lerr;
is($load->result(0), 0, 'the load ran to its end');

# Give the expiry worker its bound after the last hold fell due: every hold's
# time is up, plus two expiry intervals and a second.
# Carts and range holds of calendars expire in the same passes.
my $carts_due = $has{carts} ? '(SELECT max(expires) FROM lockctl.carts)' : 'NULL';
my $ranges_due =
  $has{calendars} ? '(SELECT max(expires) FROM lockctl.range_reservations)' : 'NULL';
$node->poll_query_until('postgres', qq{
	SELECT clock_timestamp() > coalesce(greatest((SELECT max(expires) FROM lockctl.reservations),
	                                             $carts_due, $ranges_due), 'epoch') + interval '1.4 s'
}) or die 'the server clock did not move' if $has{reserve} || $has{calendars};

($rc) = chaos_cmd('snapshot');
is($rc, 0, 'snapshot taken');
my ($out, $err);
($rc, $out) = chaos_cmd('check');
is($rc, 0, 'every invariant holds after the chaos run') or diag $out;

# The checker is itself tested: corrupted copies of this very history and
# snapshot must each be caught ...
($rc, $out) = chaos_cmd('selftest');
# The whole report is in the log (chaos_cmd notes it); the failure names
# only what was missed, so that a CI log cut to its last lines keeps it.
is($rc, 0, 'the checker catches every known corruption')
  or diag join("\n", grep { /MISSED|^selftest:/ } split /\n/, $out);

# ... and so must a corruption made in the live tables.
$node->safe_psql('postgres', q{
	INSERT INTO chaos.fenced (resource, token, prev_token, opid)
	VALUES ('chaos-res-0', 1, 2, 'forged')});
chaos_cmd('snapshot');
($rc, $out) = chaos_cmd('check');
is($rc, 1, 'a forged fenced write in the table is caught');
like($out, qr/fencing: .*forged/, 'and named');
$node->safe_psql('postgres', q{DELETE FROM chaos.fenced WHERE opid = 'forged'});

# A negative control on the real server: with the version check switched
# off, the same read-modify-write load must be reported as broken.
if ($has{versioning})
{
	my $main = $dir;
	$dir = "$main-control";
	make_path($dir);
	PostgreSQL::Test::Utils::system_log('cp', "$main/features.json", "$dir/");
	$node->safe_psql('postgres', q{
		SELECT lockctl.disable_versioning('chaos.accounts');
		UPDATE chaos.accounts SET val = 0, version = 1;});
	IPC::Run::run([ $python, $chaos, 'load', '--dsn', $dsn, '--dir', $dir,
		'--seconds', 3, '--clients', 4, '--kinds', 'vupdate', '--no-nemesis' ],
		'>', \$out, '2>', \$err) or die "control load failed: $err";
	chaos_cmd('snapshot');
	($rc, $out) = chaos_cmd('check');
	is($rc, 1, 'with versioning off, the checker reports the writes as broken');
	like($out, qr/^  versions: /m, 'as broken versioned writes');
	$dir = $main;
}

# No lease slot leaked: once everything expired, every slot can be taken.
if ($has{lease})
{
	($rc, $out) = chaos_cmd('leakcheck');
	is($rc, 0, 'no shared-memory lease slot leaked') or diag $out;
}

# No backend crashed along the way (terminations and the immediate stops are
# not signals; a segfault or an abort would be).
my $log = slurp_file($node->logfile);
unlike($log, qr/was terminated by signal (?!9\b)\d+|PANIC:/,
	'no server process crashed');

$node->stop;
done_testing();
