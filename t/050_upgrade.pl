# Releases: every released version reaches the default version with
# ALTER EXTENSION lockctl UPDATE, with all of its state kept and working, and
# ends with the catalog of a fresh install; pg_dump and restore work at
# every version.
#
# The released versions are the frozen install scripts that are installed
# (lockctl--X.Y.sql other than the default version's): a new release is
# covered by adding its frozen script and its upgrade script, not by editing
# this file.  For each one, in its own database:
#
#   1. CREATE EXTENSION lockctl VERSION 'X.Y', then fill it with every kind
#      of state: versioned tables (strict, orm, partitioned, one with its
#      trigger disabled), pools with live, confirmed, cancelled and expired
#      holds, idempotency keys, live leases and a waiter;
#   2. the same calls as after the update, with this (new) library and the
#      old SQL objects: they must work before the update has run;
#   3. pg_dump of that database, restored into a new one (what a DBA gets:
#      the dump does not name the version, so the restore creates the
#      extension at the default version), and restored into a database
#      where the old version was created first;
#   4. ALTER EXTENSION lockctl UPDATE, with the waiter still waiting: every
#      view and table shows the same state as just before, then every
#      piece of it keeps working (holds confirm, cancel and expire through
#      the worker, idempotency keys replay, the waiter gets the lease with a
#      higher token, stale writes fail with 40001, counters keep counting);
#   5. the catalog (pg_dump --schema-only of the extension's schemas, with
#      the extension's own objects, and \dx+ lockctl) equals a fresh
#      install's;
#   6. pg_dump and restore of the updated database.
use strict;
use warnings FATAL => 'all';

use File::Basename qw(basename);
use IPC::Run;
use JSON::PP;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $node = PostgreSQL::Test::Cluster->new('upgrade');
$node->init;
# A worker per database with the extension: up to six databases at once.
$node->append_conf('postgresql.conf', qq{
shared_preload_libraries = 'lockctl'
lockctl.expiry_interval = '100ms'
max_worker_processes = 24
});
$node->start;
# pg_dump, pg_restore and psql run below reach the node through these.
$ENV{PGHOST} = $node->host;
$ENV{PGPORT} = $node->port;

my $tmp = PostgreSQL::Test::Utils::tempdir;
my $json = JSON::PP->new->canonical;

sub sql
{
	my ($db, $query) = @_;
	return $node->safe_psql($db, $query);
}

# The SQLSTATE a statement fails with, or 'ok'.
sub sqlstate
{
	my ($db, $stmt) = @_;
	return sql($db, "SELECT public.sqlstate_of(\$stmt\$$stmt\$stmt\$)");
}

# ---------------------------------------------------------------------------
# Versions
# ---------------------------------------------------------------------------

my $default = sql('postgres',
	"SELECT default_version FROM pg_available_extensions WHERE name = 'lockctl'");
my $extdir = $node->config_data('--sharedir') . '/extension';
my @released = sort { version_cmp($a, $b) } grep { $_ ne $default }
  map { basename($_) =~ /^lockctl--([0-9.]+)\.sql$/ ? $1 : () }
  glob("$extdir/lockctl--*.sql");

sub version_cmp
{
	my @a = split /\./, shift;
	my @b = split /\./, shift;
	while (@a || @b)
	{
		my $c = (shift(@a) // 0) <=> (shift(@b) // 0);
		return $c if $c;
	}
	return 0;
}

ok((grep { $_ eq '1.0' } @released),
	"released versions with a frozen install script: @released (default $default)");
for my $v (@released)
{
	ok(sql('postgres',
			"SELECT path FROM pg_extension_update_paths('lockctl') WHERE source = '$v' AND target = '$default'") ne '',
		"an update path leads from $v to $default");
}

# ---------------------------------------------------------------------------
# State: what a user sees of it
# ---------------------------------------------------------------------------

# Everything a user sees, through lockctl's views and the application's
# tables: name => rows.  Views rather than lockctl's own tables: the views
# are the contract, the tables may change shape between versions.
my %state_query = (
	pools      => 'SELECT * FROM lockctl.pool_status ORDER BY resource',
	holds      => 'SELECT * FROM lockctl.holds ORDER BY id',
	versioned  => 'SELECT * FROM lockctl.versioned_tables ORDER BY table_name::text',
	# expires_at is the monotonic expiry shown on the wall clock, so it moves
	# by a microsecond or so from one look to the next: its ttl is compared.
	leases     => q{SELECT database, resource, owner, token, acquired_at,
	                       round(extract(epoch FROM expires_at - acquired_at)) AS ttl_s,
	                       waiters, acquired_by, fenced
	                  FROM lockctl.leases WHERE database = current_database() ORDER BY resource},
	waiters    => 'SELECT * FROM lockctl.lease_waiters WHERE database = current_database() ORDER BY resource, queue_position',
	app_strict => 'SELECT * FROM app_strict ORDER BY id',
	app_orm    => 'SELECT * FROM app_orm ORDER BY id',
	app_part   => 'SELECT tableoid::regclass::text AS part, * FROM app_part ORDER BY id, region',
	app_off    => 'SELECT * FROM app_off ORDER BY id',
	got        => 'SELECT * FROM got ORDER BY who',
	triggers   => q{SELECT tgrelid::regclass::text AS tbl, tgname, tgfoid::regprocedure::text AS fn,
	                       tgenabled, encode(tgargs, 'escape') AS args, tgparentid <> 0 AS cloned
	                  FROM pg_trigger WHERE tgname = 'lockctl_version' ORDER BY 1},
	requests   => 'SELECT * FROM lockctl.requests ORDER BY scope, key',
	carts      => 'SELECT * FROM lockctl.cart_holds ORDER BY id, resource',
	waitlist   => 'SELECT * FROM lockctl.waitlist ORDER BY id',
	calendars  => 'SELECT * FROM lockctl.calendar_status ORDER BY resource',
	calendar_holds => 'SELECT * FROM lockctl.calendar_holds ORDER BY id',
);

# Kinds of state that a later version added, with that version: a database
# below it has none, and state_of, fill and exercise leave them out there.
# A release that adds a kind of state adds it here, to %state_query, and to
# fill and exercise under has().
my %since = (requests => '1.1', carts => '1.1', waitlist => '1.1',
	calendars => '1.1', calendar_holds => '1.1', lease_sets => '1.1');

sub extversion
{
	my ($db) = @_;
	return sql($db, "SELECT extversion FROM pg_extension WHERE extname = 'lockctl'");
}

# Does this database's lockctl have that kind of state?
sub has
{
	my ($db, $kind) = @_;
	return !$since{$kind} || version_cmp(extversion($db), $since{$kind}) >= 0;
}

sub state_of
{
	my ($db, @names) = @_;
	@names = sort keys %state_query unless @names;
	my %s;
	for my $name (grep { has($db, $_) } @names)
	{
		$s{$name} = decode_json(sql($db,
				"SELECT coalesce(json_agg(t), '[]') FROM ($state_query{$name}) t"));
	}
	return \%s;
}

# $new reduced to the columns $old has: a later version may add columns to
# a view, never take one away or change what an old one shows.
sub project
{
	my ($new, $old) = @_;
	my %p;
	for my $name (keys %$old)
	{
		my @rows;
		for my $i (0 .. $#{ $new->{$name} })
		{
			my $o = $old->{$name}[$i];
			my $n = $new->{$name}[$i];
			push @rows, $o ? { map { $_ => $n->{$_} } keys %$o } : $n;
		}
		$p{$name} = \@rows;
	}
	return \%p;
}

# Those views of a state that it has.
sub subset
{
	my ($state, @names) = @_;
	return { map { $_ => $state->{$_} } grep { exists $state->{$_} } @names };
}

# Compare two states view by view, saying which view differs.
sub same_state
{
	my ($new, $old, $what) = @_;
	my $p = project($new, $old);
	my @differ = grep { $json->encode($p->{$_}) ne $json->encode($old->{$_}) }
	  sort keys %$old;
	ok(!@differ, "$what: same state (" . join(', ', sort keys %$old) . ')')
	  or diag(join "\n", map {
			"$_:\n  before: " . $json->encode($old->{$_}) . "\n  after:  " . $json->encode($p->{$_})
		} @differ);
}

# ---------------------------------------------------------------------------
# Fill a database with every kind of state
# ---------------------------------------------------------------------------

my %bg;    # database => the background session waiting for lease 'job'

sub fill
{
	my ($db) = @_;
	my %f;
	sql($db, q{
CREATE FUNCTION public.sqlstate_of(stmt text) RETURNS text LANGUAGE plpgsql AS $$
BEGIN
	EXECUTE stmt;
	RETURN 'ok';
EXCEPTION WHEN OTHERS THEN
	RETURN SQLSTATE;
END $$;
CREATE TABLE got (who text PRIMARY KEY, token bigint);

CREATE TABLE app_strict (id int PRIMARY KEY, v text, version bigint NOT NULL DEFAULT 1);
SELECT lockctl.enable_versioning('app_strict');
INSERT INTO app_strict SELECT g, 'row ' || g FROM generate_series(1, 5) g;
UPDATE app_strict SET v = 'second', version = 1 WHERE id = 2;

CREATE TABLE app_orm (id int PRIMARY KEY, v text, lock_version integer NOT NULL DEFAULT 0);
SELECT lockctl.enable_versioning('app_orm', 'lock_version', 'orm');
INSERT INTO app_orm VALUES (1, 'a'), (2, 'b');
UPDATE app_orm SET v = 'b2', lock_version = 1 WHERE id = 2 AND lock_version = 0;

CREATE TABLE app_part (id int, region text, v text, version bigint NOT NULL DEFAULT 1,
                       PRIMARY KEY (id, region)) PARTITION BY LIST (region);
CREATE TABLE app_part_eu PARTITION OF app_part FOR VALUES IN ('eu');
SELECT lockctl.enable_versioning('app_part');
-- a partition made after versioning was enabled inherits the trigger
CREATE TABLE app_part_us PARTITION OF app_part FOR VALUES IN ('us');
INSERT INTO app_part VALUES (1, 'eu', 'x'), (1, 'us', 'y');
UPDATE app_part SET v = 'y2', version = 1 WHERE id = 1 AND region = 'us';

-- versioning enabled, its trigger disabled by the DBA
CREATE TABLE app_off (id int PRIMARY KEY, version bigint);
SELECT lockctl.enable_versioning('app_off');
INSERT INTO app_off VALUES (1, 1);
ALTER TABLE app_off DISABLE TRIGGER lockctl_version;

SELECT lockctl.create_pool('seats', 100);
SELECT lockctl.create_pool('hot', 1000, 8);
});
	is(sqlstate($db, 'UPDATE app_strict SET v = $$stale$$, version = 1 WHERE id = 2'),
		'40001', "$db: a stale write is refused while filling");

	# Holds in every state; idempotency keys on some.
	$f{live_confirm} = sql($db, "SELECT lockctl.reserve('seats', 2, 'alice', '1 hour', 'order-live')");
	$f{live_cancel}  = sql($db, "SELECT lockctl.reserve('seats', 1, 'bob', '1 hour')");
	$f{live_expire}  = sql($db, "SELECT lockctl.reserve('seats', 3, 'carol', '1 hour', 'order-expire')");
	$f{live_keep}    = sql($db, "SELECT lockctl.reserve('hot', 5, 'dave', '1 hour', 'order-keep')");
	$f{confirmed}    = sql($db, "SELECT lockctl.reserve('seats', 1, 'erin', '1 hour', 'order-paid')");
	sql($db, "SELECT lockctl.confirm($f{confirmed})");
	$f{cancelled} = sql($db, "SELECT lockctl.reserve('hot', 7, 'fred', '1 hour', 'order-gone')");
	sql($db, "SELECT lockctl.cancel($f{cancelled})");
	$f{expired} = sql($db, "SELECT lockctl.reserve('seats', 4, 'gina', '100 ms', 'order-late')");
	$node->poll_query_until($db,
		"SELECT status = 'expired' FROM lockctl.holds WHERE id = $f{expired}")
	  or die "$db: the worker did not expire hold $f{expired}";

	# Live leases, one of them with a waiter that stays in line across the
	# update; tokens are per database and resource.
	# Request keys (new in 1.1): one completed, one claimed and committed
	# without a result.
	if (has($db, 'requests'))
	{
		sql($db, q{BEGIN;
SELECT lockctl.claim_request('req-paid', fingerprint => 'fp-1');
SELECT lockctl.complete_request('req-paid', '{"status": 201, "payment": 7}');
COMMIT});
		sql($db, "BEGIN; SELECT lockctl.claim_request('req-open'); COMMIT");
		$f{requests} = 1;
	}

	$f{job}    = sql($db, "SELECT lockctl.acquire('job', 'alice', '1 hour')");
	$f{report} = sql($db, "SELECT lockctl.acquire('report', 'carol', '1 hour')");
	$bg{$db} = start_waiter($db, 'job', 'bob');
	return \%f;
}

# A session waiting in acquire; the token it gets lands in table got.
sub start_waiter
{
	my ($db, $resource, $who) = @_;
	my $s = $node->background_psql($db, on_error_stop => 0);
	$s->query_until(qr/^started\n/m, qq{
\\echo started
INSERT INTO got SELECT '$who', lockctl.acquire('$resource', '$who', '1 hour', '$PostgreSQL::Test::Utils::timeout_default s');
});
	$node->poll_query_until($db,
		"SELECT count(*) = 1 FROM lockctl.lease_waiters WHERE resource = '$resource' AND owner = '$who'")
	  or die "$db: $who is not waiting for $resource";
	return $s;
}

# ---------------------------------------------------------------------------
# The same calls, run before and after the update
# ---------------------------------------------------------------------------

sub counters
{
	my ($db, $what, $where) = @_;
	return decode_json(sql($db, "SELECT row_to_json(t) FROM (SELECT * FROM $what WHERE $where) t"));
}

sub exercise
{
	my ($db, $label) = @_;
	my $t = "$db, $label";

	# Version-checked updates, in every mode.
	my $vs = counters($db, 'lockctl.versioned_tables', "table_name = 'app_strict'::regclass");
	my $v = sql($db, 'SELECT version FROM app_strict WHERE id = 1');
	sql($db, "UPDATE app_strict SET v = '$label', version = $v WHERE id = 1");
	is(sql($db, 'SELECT version FROM app_strict WHERE id = 1'), $v + 1,
		"$t: strict: a write with the current version bumps it");
	is(sqlstate($db, "UPDATE app_strict SET v = 'stale', version = $v WHERE id = 1"),
		'40001', "$t: strict: a stale write fails with 40001");
	is(sqlstate($db, "UPDATE app_strict SET v = 'blind' WHERE id = 1"),
		'09000', "$t: strict: a blind write fails with 09000");
	my $vs2 = counters($db, 'lockctl.versioned_tables', "table_name = 'app_strict'::regclass");
	is(join(',', $vs2->{conflicts} - $vs->{conflicts}, $vs2->{blind_writes} - $vs->{blind_writes}),
		'1,1', "$t: the counters count the conflict and the blind write");
	is(sql($db, "INSERT INTO app_strict (id, v) VALUES (100 + (SELECT count(*) FROM app_strict), '$label') RETURNING version"),
		'1', "$t: an insert starts at version 1");

	my $o = sql($db, 'SELECT lock_version FROM app_orm WHERE id = 1');
	is(sql($db, "WITH u AS (UPDATE app_orm SET v = '$label', lock_version = $o + 1 WHERE id = 1 AND lock_version = $o RETURNING lock_version) SELECT * FROM u"),
		$o + 1, "$t: orm: the ORM's write (read + 1, WHERE read) goes through");
	is(sqlstate($db, "UPDATE app_orm SET v = 'stale', lock_version = $o WHERE id = 1"),
		'40001', "$t: orm: a write one version behind (strict form) fails with 40001");

	my $p = sql($db, q{SELECT version FROM app_part WHERE id = 1 AND region = 'eu'});
	is(sqlstate($db, "UPDATE app_part SET v = 'stale', version = $p - 1 WHERE id = 1 AND region = 'eu'"),
		'40001', "$t: partitioned: a stale write fails with 40001");
	is(sql($db, qq{SELECT lockctl.update_versioned('app_part', '{"id": 1, "region": "eu"}'::jsonb, $p, '{"v": "$label"}')}),
		$p + 1, "$t: partitioned: update_versioned returns the next version");

	# Leases: a grant, a fenced write, a hand-over to a waiter, rising tokens.
	my $ls = counters($db, 'lockctl.lease_stats', 'true');
	my $a = sql($db, "SELECT lockctl.acquire('handover', 'a-$label', '1 hour')");
	ok($a > 0, "$t: acquire grants a token");
	is(sql($db, "BEGIN; SELECT lockctl.fence('handover', $a); UPDATE app_off SET version = version WHERE id = 1; COMMIT;"),
		'', "$t: fence lets the live holder write");
	my $w = start_waiter($db, 'handover', "w-$label");
	is(sql($db, "SELECT lockctl.release('handover', $a)"), 't', "$t: release");
	$node->poll_query_until($db, "SELECT count(*) = 1 FROM got WHERE who = 'w-$label'")
	  or die "$t: the waiter did not get the lease";
	$w->quit;
	my $b = sql($db, "SELECT token FROM got WHERE who = 'w-$label'");
	cmp_ok($b, '>', $a, "$t: the waiter gets the lease with a higher token");
	is(sqlstate($db, "SELECT lockctl.fence('handover', $a)"), '40001',
		"$t: the old token is fenced off (40001)");
	is(sql($db, "SELECT lockctl.release('handover', $b)"), 't', "$t: the waiter releases");
	my $ls2 = counters($db, 'lockctl.lease_stats', 'true');
	cmp_ok($ls2->{grants}, '>=', $ls->{grants} + 2, "$t: lease_stats counts the grants");

	# Sets of leases (new in 1.1): all or nothing, in the views, released
	# together.
	if (has($db, 'lease_sets'))
	{
		my $tk = sql($db, "SELECT lockctl.acquire_all(ARRAY['set-b-$label', 'set-a-$label'], 's-$label', '1 hour')");
		like($tk, qr/^\{\d+,\d+\}$/, "$t: sets: acquire_all grants two tokens");
		is(sql($db, "SELECT count(DISTINCT set_id) || ' ' || count(*) FROM lockctl.leases WHERE resource LIKE 'set-_-$label' AND set_id IS NOT NULL"),
			'1 2', "$t: sets: lockctl.leases shows both leases in one set");
		is(sql($db, "SELECT lockctl.acquire_all(ARRAY['set-a-$label', 'other-$label'], 'x-$label')"),
			'', "$t: sets: a set with a held member is not granted");
		is(sql($db, "SELECT count(*) FROM lockctl.leases WHERE resource = 'other-$label'"),
			'0', "$t: sets: nothing of a refused set is held");
		is(sql($db, "SELECT lockctl.release_all(ARRAY['set-b-$label', 'set-a-$label'], '$tk')"),
			'{t,t}', "$t: sets: release_all releases both");
		cmp_ok(counters($db, 'lockctl.lease_stats', 'true')->{set_grants}, '>=', 1,
			"$t: sets: lease_stats counts the set");
	}

	# Reservations: confirm, cancel, idempotent retry, expiry by the worker.
	my $ps = counters($db, 'lockctl.pool_status', "resource = 'seats'");
	my $h1 = sql($db, "SELECT lockctl.reserve('seats', 1, 'x-$label', '1 hour', 'key-$label')");
	is(sql($db, "SELECT lockctl.reserve('seats', 1, 'x-$label', '1 hour', 'key-$label')"),
		$h1, "$t: a retry with the same idempotency key returns the same hold");
	is(sqlstate($db, "SELECT lockctl.reserve('seats', 2, 'x-$label', '1 hour', 'key-$label')"),
		'22023', "$t: the same key with another quantity fails with 22023");
	is(sql($db, "SELECT lockctl.confirm($h1)"), 't', "$t: confirm");
	is(sql($db, "SELECT lockctl.confirm($h1)"), 'f', "$t: confirm again is a safe retry");
	my $h2 = sql($db, "SELECT lockctl.reserve('seats', 1, 'y-$label', '1 hour')");
	is(sql($db, "SELECT lockctl.cancel($h2)"), 't', "$t: cancel");
	my $h3 = sql($db, "SELECT lockctl.reserve('seats', 2, 'z-$label', '100 ms')");
	$node->poll_query_until($db, "SELECT status = 'expired' FROM lockctl.holds WHERE id = $h3")
	  or die "$t: the worker did not expire hold $h3";
	is(sql($db, "SELECT count(*) FROM lockctl.workers WHERE datname = current_database() AND state = 'running'"),
		'1', "$t: the expiry worker runs and expired the hold");
	my $ps2 = counters($db, 'lockctl.pool_status', "resource = 'seats'");
	is(join(',', map { $ps2->{$_} - $ps->{$_} } qw(holds_taken holds_confirmed holds_cancelled holds_expired confirmed held)),
		'3,1,1,1,1,0', "$t: the pool's counters add up");

	# Idempotent requests (new in 1.1): a claim that commits with its
	# result is replayed; one that rolls back frees the key.
	if (has($db, 'requests'))
	{
		is(sql($db, "BEGIN; SELECT lockctl.claim_request('req-$label', fingerprint => 'fp') IS NULL; SELECT lockctl.complete_request('req-$label', '{\"n\": 1}'); COMMIT"),
			"t\n", "$t: requests: a first claim goes ahead");
		is(sql($db, "SELECT lockctl.claim_request('req-$label', fingerprint => 'fp')"),
			'{"n": 1}', "$t: requests: a duplicate gets the stored result");
		is(sqlstate($db, "SELECT lockctl.claim_request('req-$label', fingerprint => 'other')"),
			'22023', "$t: requests: the key with other parameters fails with 22023");
		sql($db, "BEGIN; SELECT lockctl.claim_request('req-rb-$label'); ROLLBACK");
		is(sql($db, "BEGIN; SELECT lockctl.claim_request('req-rb-$label') IS NULL; ROLLBACK"),
			't', "$t: requests: a claim that rolled back leaves the key free");
	}

	# Carts, per-holder limits, partial confirm, waitlists (new in 1.1).
	if (has($db, 'carts'))
	{
		sql($db, "SELECT lockctl.create_pool('lim', 100, NULL, 3) WHERE NOT EXISTS (SELECT FROM lockctl.pool_status WHERE resource = 'lim')");
		sql($db, "SELECT lockctl.create_pool('q', 1) WHERE NOT EXISTS (SELECT FROM lockctl.pool_status WHERE resource = 'q')");
		my $items = '[{"resource": "hot", "quantity": 2}, {"resource": "lim"}]';
		my $c1 = sql($db, "SELECT lockctl.reserve_cart('$items', 'c-$label', '1 hour', 'cart-$label')");
		is(sql($db, "SELECT lockctl.reserve_cart('$items', 'c-$label', '1 hour', 'cart-$label')"),
			$c1, "$t: carts: a retry with the same key returns the same cart");
		is(sql($db, "SELECT lockctl.confirm_cart($c1)"), 't', "$t: carts: confirm_cart");
		my $c2 = sql($db, q{SELECT lockctl.reserve_cart('[{"resource": "hot"}]', ttl => '100 ms')});
		$node->poll_query_until($db, "SELECT bool_and(status = 'expired') FROM lockctl.cart_holds WHERE id = $c2")
		  or die "$t: the worker did not expire cart $c2";
		pass("$t: carts: the worker expires a cart");
		is(sqlstate($db, "SELECT lockctl.reserve('lim', 3, 'c-$label', '1 hour')"), '53400',
			"$t: limits: a holder past max_per_holder fails with 53400");
		my $p = sql($db, "SELECT lockctl.reserve('lim', 3, 'p-$label', '1 hour')");
		is(sql($db, "SELECT lockctl.confirm($p, 1)"), 't', "$t: partial confirm");
		is(sql($db, "SELECT status || ' ' || quantity FROM lockctl.holds WHERE id = $p"), 'confirmed 1',
			"$t: partial confirm keeps what was confirmed");
		my $q = sql($db, "SELECT lockctl.reserve('q', 1, 'qa-$label', '1 hour')");
		my $e = sql($db, "SELECT lockctl.wait_for('q', 1, 'qw-$label', '1 hour')");
		is(sql($db, "SELECT lockctl.cancel($q)"), 't', "$t: waitlists: cancel");
		my $offer = sql($db, "SELECT offer_hold_id FROM lockctl.waitlist WHERE id = $e AND status = 'offered'");
		is(sql($db, "SELECT holder || ' ' || status FROM lockctl.holds WHERE id = $offer"), "qw-$label held",
			"$t: waitlists: the unit given back is offered to the head");
		is(sql($db, "SELECT lockctl.cancel($offer)"), 't', "$t: waitlists: the offer is cancelled");
	}

	# Calendars (new in 1.1): range holds in every state, on a calendar of
	# capacity 1 and one of capacity 2; each run takes the first free hour.
	if (has($db, 'calendars'))
	{
		sql($db, "SELECT lockctl.create_calendar('room') WHERE NOT EXISTS (SELECT FROM lockctl.calendar_status WHERE resource = 'room')");
		sql($db, "SELECT lockctl.create_calendar('rooms', 2) WHERE NOT EXISTS (SELECT FROM lockctl.calendar_status WHERE resource = 'rooms')");
		my $free = q{(SELECT tstzrange(lower(a.during), lower(a.during) + interval '1 hour')
		                FROM lockctl.available_ranges('room', '[2031-01-01 00:00+00, 2032-01-01 00:00+00)') AS a
		               WHERE upper(a.during) - lower(a.during) >= interval '1 hour' LIMIT 1)};
		my $hour = sql($db, "SELECT $free");
		my $r1 = sql($db, "SELECT lockctl.reserve_range('room', '$hour', 'r-$label', '1 hour', 'range-$label')");
		is(sql($db, "SELECT lockctl.reserve_range('room', '$hour', 'r-$label', '1 hour', 'range-$label')"),
			$r1, "$t: calendars: a retry with the same key returns the same hold");
		is(sql($db, "SELECT lockctl.reserve_range('room', '$hour', 'other-$label', '1 hour') IS NULL"),
			't', "$t: calendars: an overlapping range is refused");
		is(sql($db, "SELECT lockctl.confirm($r1)"), 't', "$t: calendars: confirm a range hold");
		my $r2 = sql($db, "SELECT lockctl.reserve_range('room', $free, 'r2-$label', '1 hour')");
		is(sql($db, "SELECT lockctl.cancel($r2)"), 't', "$t: calendars: cancel a range hold");
		my $r3 = sql($db, "SELECT lockctl.reserve_range('rooms', '$hour', 'r3-$label', '1 hour')");
		my $r4 = sql($db, "SELECT lockctl.reserve_range('rooms', '$hour', 'r4-$label', '100 ms')");
		ok($r3 && $r4, "$t: calendars: two holds of one range on a calendar of capacity 2");
		$node->poll_query_until($db, "SELECT status = 'expired' FROM lockctl.calendar_holds WHERE id = $r4")
		  or die "$t: the worker did not expire range hold $r4";
		pass("$t: calendars: the worker expires a range hold");
	}
}

# ---------------------------------------------------------------------------
# The catalog: the extension's objects as pg_dump and \dx+ show them
# ---------------------------------------------------------------------------

# The schemas of the extension: its own, any schema that is one of its
# objects, and the schema of each of its objects (so a future
# lockctl_internal is compared without naming it here).
sub extension_schemas
{
	my ($db) = @_;
	return split /\n/, sql($db, q{
WITH ext AS (SELECT oid, extnamespace FROM pg_catalog.pg_extension WHERE extname = 'lockctl'),
member AS (SELECT d.classid, d.objid FROM pg_catalog.pg_depend d, ext
            WHERE d.refclassid = 'pg_catalog.pg_extension'::pg_catalog.regclass
              AND d.refobjid = ext.oid AND d.deptype = 'e')
SELECT n.nspname FROM pg_catalog.pg_namespace n
 WHERE n.oid IN (SELECT extnamespace FROM ext)
    OR n.oid IN (SELECT objid FROM member WHERE classid = 'pg_catalog.pg_namespace'::pg_catalog.regclass)
    OR n.nspname IN (SELECT (pg_catalog.pg_identify_object(classid, objid, 0)).schema FROM member)
 ORDER BY 1});
}

# pg_dump shows an extension's own objects only in --binary-upgrade mode (as
# pg_upgrade needs them); otherwise just CREATE EXTENSION.  That mode also
# prints OIDs, relfilenodes, frozen xids and sequence positions (which can
# be negative: lockctl.token_mark is -1 after an update from 1.0), which
# differ between any two databases: they are masked, and the config tables
# are compared by name instead of OID (from pg_extension).  Everything else, every definition,
# owner, grant and comment, must be equal.
sub catalog_of
{
	my ($db) = @_;
	my @schemas = extension_schemas($db);
	my $file = "$tmp/catalog-$db.sql";
	my @cmd = ('pg_dump', '--schema-only', '--binary-upgrade', '--extension=lockctl',
		(map { '--schema="' . s/"/""/gr . '"' } @schemas), '-f', $file, '-d', $db);
	my ($out, $err);
	IPC::Run::run(\@cmd, '>', \$out, '2>', \$err)
	  or die "pg_dump of $db failed: $err";
	my $dump = slurp_file($file);
	$dump =~ s/^\\(?:un)?restrict .*\n//mg;
	$dump =~ s/^SELECT pg_catalog\.binary_upgrade_set_next_.*\n//mg;
	$dump =~ s/^(SET relfrozenxid = )'\d+', relminmxid = '\d+'/$1<xid>/mg;
	$dump =~ s/^WHERE oid = '\d+';/WHERE oid = <toast table>;/mg;
	$dump =~ s/(binary_upgrade_create_empty_extension\('[^']*', '[^']*', \w+, '[^']*', )'\{[0-9,]*\}'/$1<extconfig>/;
	$dump =~ s/^(SELECT pg_catalog\.setval\('[^']+', )-?\d+, (?:true|false)\);/$1<position>);/mg;
	my $dx = sql($db, '\dx+ lockctl');
	# The configuration tables (pg_extension_config_dump) as a set: their
	# order in extconfig is the order the scripts marked them in, which
	# means nothing (pg_dump sorts them itself) and differs between a fresh
	# install and an update that adds one.
	my $ext = sql($db, q{
SELECT extname, extversion, extrelocatable, extnamespace::regnamespace, extowner::regrole,
       (SELECT string_agg(c::regclass::text || ' ' || pg_catalog.quote_literal(w), ', ' ORDER BY c::regclass::text)
          FROM unnest(extconfig, extcondition) AS u(c, w))
  FROM pg_catalog.pg_extension WHERE extname = 'lockctl'});
	return "-- schemas: @schemas\n-- pg_extension: $ext\n-- \\dx+ lockctl\n$dx\n-- pg_dump\n$dump";
}

sub same_catalog
{
	my ($db, $fresh, $what) = @_;
	my $a = catalog_of($fresh);
	my $b = catalog_of($db);
	if ($a eq $b)
	{
		pass("$what: the catalog equals a fresh install's");
		return;
	}
	PostgreSQL::Test::Utils::append_to_file("$tmp/$fresh.catalog", $a);
	PostgreSQL::Test::Utils::append_to_file("$tmp/$db.catalog", $b);
	my $diff;
	IPC::Run::run([ 'diff', '-u', "$tmp/$fresh.catalog", "$tmp/$db.catalog" ], '>', \$diff);
	fail("$what: the catalog equals a fresh install's");
	diag($diff);
}

# ---------------------------------------------------------------------------
# pg_dump and restore
# ---------------------------------------------------------------------------

# What a dump carries.  (The positions of lockctl's sequences too: a hold
# taken after the restore, in exercise(), would collide with a restored one
# otherwise.)
my @data_views = qw(pools holds app_strict app_orm app_part app_off got triggers requests carts waitlist
	calendars calendar_holds);

# Versioning's shared-memory counters are not dumped; its settings are.
sub versioned_settings
{
	my ($db) = @_;
	return sql($db, q{SELECT string_agg(concat_ws('|', table_name, version_column, mode, enabled), ',' ORDER BY table_name::text)
	                   FROM lockctl.versioned_tables});
}

sub dump_db
{
	my ($db) = @_;
	my $file = "$tmp/$db.dump";
	$node->command_ok([ 'pg_dump', '-Fc', '-f', $file, '-d', $db ], "$db: pg_dump");
	return $file;
}

# ---------------------------------------------------------------------------
# The test
# ---------------------------------------------------------------------------

sql('postgres', 'CREATE DATABASE fresh');
sql('fresh', 'CREATE EXTENSION lockctl');
is(sql('fresh', "SELECT extversion FROM pg_extension WHERE extname = 'lockctl'"),
	$default, "fresh: CREATE EXTENSION installs $default");
is(sql('fresh', 'SELECT lockctl.library_version()'), $default,
	"the library is version $default");

for my $v (@released)
{
	my $db = 'v' . ($v =~ s/\./_/gr);
	sql('postgres', "CREATE DATABASE $db");
	sql($db, "CREATE EXTENSION lockctl VERSION '$v'");
	is(sql($db, "SELECT extversion FROM pg_extension WHERE extname = 'lockctl'"),
		$v, "$db: created at version $v");

	# 1. every kind of state; 2. the new library with the old SQL.
	my $f = fill($db);
	exercise($db, "library $default with SQL $v");

	# 3. pg_dump at the old version.
	my $before = state_of($db);
	my $dump = dump_db($db);
	my $restored = "${db}_restored";
	sql('postgres', "CREATE DATABASE $restored");
	$node->command_ok([ 'pg_restore', '--exit-on-error', '-d', $restored, $dump ],
		"$restored: pg_restore of the $v dump");
	is(sql($restored, "SELECT extversion FROM pg_extension WHERE extname = 'lockctl'"),
		$default, "$restored: the dump does not name a version: restored at $default");
	same_state(state_of($restored, @data_views), subset($before, @data_views),
		"$restored: pools, holds, tables and triggers restored");
	is(versioned_settings($restored), versioned_settings($db),
		"$restored: versioning restored in every table with its column and mode");
	same_catalog($restored, 'fresh', $restored);
	exercise($restored, 'restored');
	sql('postgres', "DROP DATABASE $restored");

	# To keep the dump's version, create the extension at it first: the
	# restore then fails on nothing but the schema, which exists.
	my $kept = "${db}_kept";
	sql('postgres', "CREATE DATABASE $kept");
	sql($kept, "CREATE EXTENSION lockctl VERSION '$v'");
	my ($rout, $rerr);
	IPC::Run::run([ 'pg_restore', '-d', $kept, $dump ], '>', \$rout, '2>', \$rerr);
	my @errors = $rerr =~ /^pg_restore: error: (.*)$/mg;
	is(join("\n", @errors), 'could not execute query: ERROR:  schema "lockctl" already exists',
		"$kept: pg_restore into a database with lockctl $v: the only error is the existing schema");
	is(sql($kept, "SELECT extversion FROM pg_extension WHERE extname = 'lockctl'"),
		$v, "$kept: still at $v");
	same_state(state_of($kept, @data_views), subset($before, @data_views),
		"$kept: pools, holds, tables and triggers restored into $v");
	sql($kept, 'ALTER EXTENSION lockctl UPDATE');
	exercise($kept, 'kept, then updated');
	sql('postgres', "DROP DATABASE $kept");

	# 4. the update, with the waiter still waiting.
	$before = state_of($db);
	sql($db, 'ALTER EXTENSION lockctl UPDATE');
	is(sql($db, "SELECT extversion FROM pg_extension WHERE extname = 'lockctl'"),
		$default, "$db: updated from $v to $default");
	same_state(state_of($db), $before, "$db: the update");

	# Every piece of the filled state keeps working.
	is(sql($db, "SELECT lockctl.confirm($f->{live_confirm})"), 't',
		"$db: a hold taken at $v is confirmed after the update");
	is(sql($db, "SELECT lockctl.reserve('seats', 2, 'alice', '1 hour', 'order-live')"),
		$f->{live_confirm}, "$db: its idempotency key replays the same hold");
	is(sql($db, "SELECT lockctl.reserve('seats', 1, 'erin', '1 hour', 'order-paid')"),
		$f->{confirmed}, "$db: so does the key of a hold confirmed at $v");
	is(sql($db, "SELECT lockctl.cancel($f->{live_cancel})"), 't',
		"$db: a hold taken at $v is cancelled after the update");
	sql($db, "SELECT lockctl.extend($f->{live_expire}, '100 ms')");
	$node->poll_query_until($db,
		"SELECT status = 'expired' FROM lockctl.holds WHERE id = $f->{live_expire}")
	  or die "$db: the worker did not expire hold $f->{live_expire}";
	pass("$db: a hold taken at $v, extended to 100 ms, is expired by the worker");
	is(sqlstate($db, "SELECT lockctl.confirm($f->{expired})"), '55000',
		"$db: a hold expired at $v cannot be confirmed (55000)");
	is(sqlstate($db, "SELECT lockctl.confirm($f->{cancelled})"), '55000',
		"$db: a hold cancelled at $v cannot be confirmed (55000)");
	is(sql($db, "SELECT status || ' ' || quantity FROM lockctl.holds WHERE id = $f->{live_keep}"),
		'held 5', "$db: a live hold taken at $v is still held");
	# Confirmed: 1 in the fill, 1 by the exercise before the update, and the
	# 2 just now; every other hold on seats is over.
	is(sql($db, "SELECT held || ' ' || confirmed || ' ' || available FROM lockctl.pool_status WHERE resource = 'seats'"),
		'0 4 96', "$db: the pool's units add up");

	is(sql($db, "SELECT lockctl.renew('report', $f->{report}, '1 hour') IS NOT NULL"), 't',
		"$db: a lease taken at $v is renewed with its token");
	is(sql($db, "BEGIN; SELECT lockctl.fence('report', $f->{report}); COMMIT;"), '',
		"$db: and fences with it");
	is(sql($db, "SELECT lockctl.release('job', $f->{job})"), 't',
		"$db: the holder of a lease taken at $v releases it");
	$node->poll_query_until($db, "SELECT count(*) = 1 FROM got WHERE who = 'bob'")
	  or die "$db: the waiter did not get the lease";
	$bg{$db}->quit;
	my $bob = sql($db, "SELECT token FROM got WHERE who = 'bob'");
	cmp_ok($bob, '>', $f->{job}, "$db: the waiter that queued at $v gets the lease with a higher token");
	is(sql($db, "SELECT owner || ' ' || token FROM lockctl.leases WHERE database = current_database() AND resource = 'job'"),
		"bob $bob", "$db: leases shows the new holder");

	if ($f->{requests})
	{
		is(sql($db, "SELECT lockctl.claim_request('req-paid', fingerprint => 'fp-1')"),
			'{"status": 201, "payment": 7}', "$db: a request completed at $v replays its result");
		is(sql($db, "SELECT lockctl.claim_request('req-open')"),
			'{}', "$db: a request claimed at $v stays claimed");
	}

	is(sqlstate($db, "UPDATE app_strict SET v = 'stale', version = 1 WHERE id = 2"),
		'40001', "$db: a row versioned at $v refuses a stale write");
	is(sqlstate($db, "UPDATE app_part SET v = 'stale', version = 1 WHERE id = 1 AND region = 'us'"),
		'40001', "$db: so does a partition made at $v");
	is(sql($db, "UPDATE app_off SET version = 42 RETURNING version"), '42',
		"$db: a table whose trigger was disabled at $v stays unchecked");
	my ($was) = grep { $_->{table_name} eq 'app_strict' } @{ $before->{versioned} };
	my $c = counters($db, 'lockctl.versioned_tables', "table_name = 'app_strict'::regclass");
	is($c->{conflicts}, $was->{conflicts} + 1,
		"$db: the conflict counter kept its count across the update, and counts on");

	# New in 1.1's leases (issue 17): acquire's notify and bind, and the
	# view lockctl.lease_options; the bound lease ends with its session.
	is(sql($db, "SELECT lockctl.acquire('bound', 'me', '1 ms', notify => 'ends', bind => 'session') > 0;"
			. " SELECT notify || ' ' || (session_pid = pg_backend_pid()) FROM lockctl.lease_options WHERE resource = 'bound'"),
		"t\nends true", "$db: acquire binds a lease to its session, with a channel");
	$node->poll_query_until($db,
		"SELECT count(*) = 0 FROM lockctl.leases WHERE database = current_database() AND resource = 'bound'")
	  or die "$db: the bound lease outlived its session";
	pass("$db: the bound lease ended with its session");

	exercise($db, "SQL updated from $v");

	# 5. the catalog.
	same_catalog($db, 'fresh', "$db, updated from $v");

	# 6. pg_dump and restore at the default version.
	$before = state_of($db);
	$dump = dump_db($db);
	$restored = "${db}_updated_restored";
	sql('postgres', "CREATE DATABASE $restored");
	$node->command_ok([ 'pg_restore', '--exit-on-error', '-d', $restored, $dump ],
		"$restored: pg_restore of the updated database");
	is(sql($restored, "SELECT extversion FROM pg_extension WHERE extname = 'lockctl'"),
		$default, "$restored: at $default");
	same_state(state_of($restored, @data_views), subset($before, @data_views),
		"$restored: pools, holds, tables and triggers restored");
	is(versioned_settings($restored), versioned_settings($db),
		"$restored: versioning restored");
	exercise($restored, 'restored');
	sql('postgres', "DROP DATABASE $restored");
	sql('postgres', "DROP DATABASE $db");
}

done_testing();
