# t/FencingHistory.pm: what the failover tests (t/060 to t/065) share,
# beside t/LockctlNode.pm (use lib 't'; use FencingHistory;).
#
# Every lease grant and every hold such a test takes goes through this
# module, which checks on the spot that each new token is above every token
# granted before (on any server of the test, so across every switchover,
# promotion, rewind, upgrade, clone and restore), and records the call, as
# chaos/chaos.py's history format, in tmp_check/log/<test>/.  Each move of
# the cluster is recorded as a fault (a "restart": leases may end there).
# At the end, check() runs the chaos checker's token invariants over the
# whole history: tokens rise on every resource in real time, one holder at
# a time, and no hold id is handed out to two requests.
package FencingHistory;

use strict;
use warnings FATAL => 'all';

use File::Basename qw(basename dirname);
use File::Path qw(make_path);
use IPC::Run;
use JSON::PP;
use Time::HiRes qw(clock_gettime CLOCK_MONOTONIC);
use Test::More;

my $python = '/usr/bin/python3';
my $chaos = dirname(__FILE__) . '/../chaos/chaos.py';

# new(): a history in tmp_check/log/<name of the test>/.
sub new
{
	my ($class) = @_;
	my $name = basename($0, '.pl');
	my $dir = "$PostgreSQL::Test::Utils::log_path/$name";
	make_path($dir);
	unlink glob("$dir/*.jsonl");
	my $self = bless {
		dir => $dir,
		json => JSON::PP->new->canonical,
		seq => 0,
		tokens => [],    # every token granted, in order
		ids => {},       # hold id => holder
	}, $class;
	open($self->{hist}, '>>', "$dir/history-000.jsonl") or die "history: $!";
	open($self->{faults}, '>>', "$dir/faults.jsonl") or die "faults: $!";
	$self->{hist}->autoflush(1);
	$self->{faults}->autoflush(1);
	return $self;
}

sub _now { return clock_gettime(CLOCK_MONOTONIC); }

sub _record
{
	my ($self, $rec) = @_;
	$rec->{c} = 0;
	$rec->{opid} = 'f-' . ++$self->{seq};
	print { $self->{hist} } $self->{json}->encode($rec), "\n";
	return;
}

# acquire($node, $resource, $owner, $ttl_seconds [, $db]): take a lease;
# it must be granted, and its token must be above every token granted
# before in the test, unless it is the same owner's live lease ($same_as
# names the token it must equal).  Returns the token, or undef on an error
# (recorded as a failed call; the caller tests what it expected).
sub acquire
{
	my ($self, $node, $res, $owner, $ttl, %opt) = @_;
	my $db = $opt{db} // 'postgres';
	my $t0 = _now();
	my ($ret, $out, $err) = $node->psql($db,
		"SELECT lockctl.acquire('$res', '$owner', make_interval(secs => $ttl))");
	my $t1 = _now();
	my $rec = { op => 'acquire', res => "$db/$res", owner => $owner,
		ttl => $ttl + 0, wait => 0, t0 => $t0, t1 => $t1 };
	if ($ret != 0)
	{
		my ($st) = $err =~ /ERROR:\s+([0-9A-Z]{5}):/;
		$rec->{r} = 'fail';
		$rec->{err} = $st // '?';
		$self->_record($rec);
		return undef;
	}
	$rec->{r} = 'ok';
	$rec->{v} = $out eq '' ? undef : $out + 0;
	$self->_record($rec);
	ok(defined $rec->{v}, "$res granted to $owner on " . $node->name)
	  or return undef;
	my $t = $rec->{v};
	if (defined $opt{same_as})
	{
		is($t, $opt{same_as}, "$res: $owner gets its live lease's token back on " . $node->name);
	}
	else
	{
		my $top = (sort { $b <=> $a } @{ $self->{tokens} })[0];
		ok(!defined $top || $t > $top,
			"$res granted to $owner on " . $node->name . ": token $t ("
			  . describe($t) . ") is above every earlier one"
			  . (defined $top ? " ($top, " . describe($top) . ")" : ''));
	}
	push @{ $self->{tokens} }, $t;
	return $t;
}

# reserve($node, $pool, $holder, $count): take $count holds of one unit,
# each its own request; every id must be new to the test.  Returns the ids.
sub reserve
{
	my ($self, $node, $pool, $holder, $count) = @_;
	my $t0 = _now();
	my $out = $node->safe_psql('postgres',
		"SELECT lockctl.reserve('$pool', 1, '$holder-' || i, '1 hour') FROM generate_series(1, $count) i");
	my $t1 = _now();
	my @ids = split /\n/, $out;
	my @again;
	for my $i (0 .. $#ids)
	{
		my $h = "$holder-" . ($i + 1);
		$self->_record({ op => 'reserve', pool => $pool, qty => 1, ttl => 3600,
			key => undef, holder => $h, r => 'ok', v => $ids[$i] + 0,
			t0 => $t0, t1 => $t1 });
		push @again, "$ids[$i] (to $h, earlier to $self->{ids}{$ids[$i]})"
		  if exists $self->{ids}{ $ids[$i] };
		$self->{ids}{ $ids[$i] } = $h;
	}
	is(scalar(@again), 0, "$count holds on " . $node->name . " got ids never handed out before")
	  or diag "ids handed out again: @again[0 .. ($#again < 4 ? $#again : 4)]";
	return @ids;
}

# move($what, sub { ... }): run a move of the cluster, recorded as a fault
# during which leases may end.
sub move
{
	my ($self, $what, $code) = @_;
	my $t0 = _now();
	$code->();
	print { $self->{faults} } $self->{json}->encode(
		{ kind => 'restart', what => $what, t0 => $t0, t1 => _now() }), "\n";
	return;
}

# check(): the chaos checker's token invariants over the whole history.
sub check
{
	my ($self) = @_;
	my ($out, $err) = ('', '');
	my $ok = IPC::Run::run([ $python, $chaos, 'tokens', '--dir', $self->{dir} ],
		'>', \$out, '2>', \$err);
	note $out;
	note $err if $err ne '';
	ok($ok, 'the chaos checker finds every token invariant held over the history')
	  or diag $out;
	return;
}

# timeline($node): the timeline a primary writes WAL on.
sub timeline
{
	my ($node) = @_;
	return $node->safe_psql('postgres',
		"SELECT ('x' || substr(pg_walfile_name(pg_current_wal_lsn()), 1, 8))::bit(32)::int");
}

# "era E, epoch P, nC" for a token.
sub describe
{
	my ($t) = @_;
	return sprintf('era %d, epoch %d, n%d', $t >> 48, ($t >> 28) & 0xFFFFF,
		$t & 0xFFFFFFF);
}

1;
