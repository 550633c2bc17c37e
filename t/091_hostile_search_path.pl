# The install script and every function survive a hostile search_path.
#
# An unprivileged role plants, in schema public, functions and operators with
# the names lockctl's SQL calls (now(), pg_notify(), nextval(), =, <, +, ||,
# sum()...).  Each planted object records that it was called (in
# public.hijack_log, and with a WARNING, which still shows when the call's
# transaction fails and takes the log's row with it).  Then, in a
# database whose search_path puts public BEFORE pg_catalog, a superuser runs
# CREATE EXTENSION lockctl, and every feature is exercised (the expiry worker
# too, which connects to that database).  Nothing planted may ever run, and
# every result must be right.
use strict;
use warnings FATAL => 'all';

use lib 't';
use LockctlNode;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $node = LockctlNode->new('hostile', worker => 1, extension => 0);

$node->safe_psql('postgres', q{
	CREATE ROLE mallory LOGIN;
	CREATE DATABASE hostile;
});
$node->safe_psql('hostile', q{
	GRANT CREATE ON SCHEMA public TO mallory;
	CREATE TABLE public.hijack_log (what text, by_role name DEFAULT current_user,
	                                at timestamptz DEFAULT pg_catalog.clock_timestamp(),
	                                query text DEFAULT pg_catalog.current_query());
	GRANT INSERT, SELECT ON public.hijack_log TO PUBLIC;
	ALTER DATABASE hostile SET search_path = public, pg_catalog;
});

# The traps.  Each returns what the real object would, so that a hijacked
# call does not show as an error but only in hijack_log.
my @fn = (
	[ 'now()', 'timestamptz', 'pg_catalog.now()' ],
	[ 'clock_timestamp()', 'timestamptz', 'pg_catalog.clock_timestamp()' ],
	[ 'statement_timestamp()', 'timestamptz', 'pg_catalog.statement_timestamp()' ],
	[ 'transaction_timestamp()', 'timestamptz', 'pg_catalog.transaction_timestamp()' ],
	[ 'pg_notify(text, text)', 'void', 'pg_catalog.pg_notify($1, $2)' ],
	[ 'nextval(regclass)', 'bigint', 'pg_catalog.nextval($1)' ],
	[ 'lower(text)', 'text', 'pg_catalog.lower($1)' ],
	[ 'upper(text)', 'text', 'pg_catalog.upper($1)' ],
	[ 'length(text)', 'integer', 'pg_catalog.length($1)' ],
	[ 'octet_length(text)', 'integer', 'pg_catalog.octet_length($1)' ],
	[ 'quote_ident(text)', 'text', 'pg_catalog.quote_ident($1)' ],
	[ 'format_type(oid, integer)', 'text', 'pg_catalog.format_type($1, $2)' ],
	[ 'pg_advisory_xact_lock(bigint)', 'void', 'pg_catalog.pg_advisory_xact_lock($1)' ],
	[ 'pg_try_advisory_xact_lock(bigint)', 'boolean', 'pg_catalog.pg_try_advisory_xact_lock($1)' ],
	[ 'hashtext(text)', 'integer', 'pg_catalog.hashtext($1)' ],
	[ 'to_timestamp(double precision)', 'timestamptz', 'pg_catalog.to_timestamp($1)' ],
	[ 'make_interval(integer, integer, integer, integer, integer, integer, double precision)',
		'interval', 'pg_catalog.make_interval($1, $2, $3, $4, $5, $6, $7)' ],
	[ 'txid_current()', 'bigint', 'pg_catalog.txid_current()' ],
	[ 'pg_current_xact_id()', 'xid8', 'pg_catalog.pg_current_xact_id()' ],
	[ 'current_setting(text)', 'text', 'pg_catalog.current_setting($1)' ],
	[ 'current_setting(text, boolean)', 'text', 'pg_catalog.current_setting($1, $2)' ],
	[ 'set_config(text, text, boolean)', 'text', 'pg_catalog.set_config($1, $2, $3)' ],
	# what the checks of a time range and of a hold's ttl call
	[ 'lower(tstzrange)', 'timestamptz', 'pg_catalog.lower($1)' ],
	[ 'upper(tstzrange)', 'timestamptz', 'pg_catalog.upper($1)' ],
	[ 'isempty(tstzrange)', 'boolean', 'pg_catalog.isempty($1)' ],
	[ 'lower_inc(tstzrange)', 'boolean', 'pg_catalog.lower_inc($1)' ],
	[ 'upper_inc(tstzrange)', 'boolean', 'pg_catalog.upper_inc($1)' ],
	[ 'lower_inf(tstzrange)', 'boolean', 'pg_catalog.lower_inf($1)' ],
	[ 'upper_inf(tstzrange)', 'boolean', 'pg_catalog.upper_inf($1)' ],
	[ 'isfinite(timestamptz)', 'boolean', 'pg_catalog.isfinite($1)' ],
	[ 'int8range(bigint, bigint, text)', 'int8range', 'pg_catalog.int8range($1, $2, $3)' ],
	[ 'format(text, text)', 'text', 'pg_catalog.format($1, $2)' ],
	[ 'format(text, text, text)', 'text', 'pg_catalog.format($1, $2, $3)' ],
);
# operators: name, left, right, real function
my @op = (
	[ '=', 'text', 'text', 'pg_catalog.texteq' ],
	[ '=', 'bigint', 'bigint', 'pg_catalog.int8eq' ],
	[ '=', 'integer', 'integer', 'pg_catalog.int4eq' ],
	[ '=', 'bigint', 'integer', 'pg_catalog.int84eq' ],
	[ '=', 'name', 'name', 'pg_catalog.nameeq' ],
	[ '=', 'oid', 'oid', 'pg_catalog.oideq' ],
	[ '=', 'timestamptz', 'timestamptz', 'pg_catalog.timestamptz_eq' ],
	[ '<>', 'text', 'text', 'pg_catalog.textne' ],
	[ '<', 'bigint', 'bigint', 'pg_catalog.int8lt' ],
	[ '<=', 'bigint', 'bigint', 'pg_catalog.int8le' ],
	[ '>', 'bigint', 'bigint', 'pg_catalog.int8gt' ],
	[ '>=', 'bigint', 'bigint', 'pg_catalog.int8ge' ],
	[ '<', 'timestamptz', 'timestamptz', 'pg_catalog.timestamptz_lt' ],
	[ '<=', 'timestamptz', 'timestamptz', 'pg_catalog.timestamptz_le' ],
	[ '>', 'timestamptz', 'timestamptz', 'pg_catalog.timestamptz_gt' ],
	[ '>=', 'timestamptz', 'timestamptz', 'pg_catalog.timestamptz_ge' ],
	[ '+', 'bigint', 'bigint', 'pg_catalog.int8pl' ],
	[ '-', 'bigint', 'bigint', 'pg_catalog.int8mi' ],
	[ '+', 'timestamptz', 'interval', 'pg_catalog.timestamptz_pl_interval' ],
	[ '-', 'timestamptz', 'timestamptz', 'pg_catalog.timestamptz_mi' ],
	[ '||', 'text', 'text', 'pg_catalog.textcat' ],
	[ '~~', 'text', 'text', 'pg_catalog.textlike' ],
	[ '<', 'interval', 'interval', 'pg_catalog.interval_lt' ],
	[ '>', 'interval', 'interval', 'pg_catalog.interval_gt' ],
	# (range functions take anyrange: the signature to look them up by)
	[ '<>', 'tstzrange', 'tstzrange', 'pg_catalog.range_ne', 'anyrange, anyrange' ],
	[ '&&', 'tstzrange', 'tstzrange', 'pg_catalog.range_overlaps', 'anyrange, anyrange' ],
);

my $sql = '';
my $i = 0;
for my $f (@fn)
{
	my ($sig, $ret, $body) = @$f;
	my $name = $sig =~ s/\(.*//r;
	my $log = "INSERT INTO public.hijack_log(what) VALUES ('$name'); RAISE WARNING 'planted % called', '$name';";
	my $ret_stmt = $ret eq 'void' ? "PERFORM $body;" : "RETURN $body;";
	$sql .= "CREATE FUNCTION public.$sig RETURNS $ret LANGUAGE plpgsql AS \$x\$ BEGIN $log $ret_stmt END \$x\$;\n";
}
for my $o (@op)
{
	my ($name, $l, $r, $real, $realsig) = @$o;
	$realsig //= "$l, $r";
	my $fname = 'trap_op_' . $i++;
	my $rt = $node->safe_psql('hostile',
		"SELECT pg_catalog.format_type(prorettype, NULL) FROM pg_catalog.pg_proc WHERE oid = '$real($realsig)'::pg_catalog.regprocedure");
	$sql .= "CREATE FUNCTION public.$fname(a $l, b $r) RETURNS $rt LANGUAGE plpgsql AS \$x\$ BEGIN "
	  . "INSERT INTO public.hijack_log(what) VALUES ('operator $name($l, $r)'); "
	  . "RAISE WARNING 'planted % called', 'operator $name($l, $r)'; RETURN $real(a, b); END \$x\$;\n"
	  . "CREATE OPERATOR public.$name (LEFTARG = $l, RIGHTARG = $r, FUNCTION = public.$fname);\n";
}
# an aggregate, too (coalesce, greatest and the like are syntax, not
# functions, and cannot be planted)
$sql .= "CREATE FUNCTION public.trap_sum(s bigint, v bigint) RETURNS bigint LANGUAGE plpgsql AS \$x\$ BEGIN "
  . "INSERT INTO public.hijack_log(what) VALUES ('sum(bigint)'); RAISE WARNING 'planted % called', 'sum(bigint)'; "
  . "RETURN CASE WHEN s IS NULL THEN v ELSE pg_catalog.int8pl(s, v) END; END \$x\$;\n"
  . "CREATE AGGREGATE public.sum(bigint) (SFUNC = public.trap_sum, STYPE = bigint);\n";

my ($ret, $out, $err) = $node->psql('hostile', "SET ROLE mallory;\n$sql", on_error_stop => 1);
is($ret, 0, 'the traps are planted in public') or diag $err;
is($node->safe_psql('hostile', q{SELECT count(*) > 30 FROM pg_catalog.pg_proc
	WHERE pronamespace = 'public'::pg_catalog.regnamespace}), 't', 'many traps');
# the traps work: an unqualified call in this database is hijacked
$node->safe_psql('hostile', 'TRUNCATE public.hijack_log');
$node->safe_psql('hostile', q{SELECT now(), 'a' = 'a'});
is($node->safe_psql('hostile', 'SELECT pg_catalog.count(*) FROM public.hijack_log'), '2',
	'the traps catch unqualified calls (search_path = public, pg_catalog)');
$node->safe_psql('hostile', 'TRUNCATE public.hijack_log');

# Install under the hostile search_path.
($ret, $out, $err) = $node->psql('hostile', 'CREATE EXTENSION lockctl');
is($ret, 0, 'CREATE EXTENSION succeeds under the hostile search_path') or diag $err;

my %has = map { $_ => $node->safe_psql('hostile',
		"SELECT pg_catalog.count(*) > 0 FROM pg_catalog.pg_proc WHERE proname OPERATOR(pg_catalog.=) '$_'
		   AND pronamespace OPERATOR(pg_catalog.=) 'lockctl'::pg_catalog.regnamespace") eq 't' }
  qw(acquire reserve reserve_range enable_versioning update_versioned);

# Exercise each feature.
my @calls;
# (The test's own SQL qualifies its operators: only lockctl's may be caught.)
if ($has{acquire})
{
	push @calls, q{
		SELECT lockctl.acquire('hs-r', 'hs-o', '10 s') AS t \gset
		SELECT lockctl.acquire('hs-r', 'hs-o', '10 s') OPERATOR(pg_catalog.=) :t AS same_token;
		SELECT lockctl.renew('hs-r', :t, '20 s') IS NOT NULL AS renewed;
		SELECT pg_catalog.count(*) FROM lockctl.leases WHERE resource OPERATOR(pg_catalog.=) 'hs-r';
		SELECT pg_catalog.count(*) FROM lockctl.lease('hs-r');
		BEGIN; SELECT lockctl.fence('hs-r', :t); COMMIT;
		SELECT lockctl.release('hs-r', :t) AS released;
		SELECT lockctl.acquire('hs-r2', 'hs-o', '1 s', '0') IS NOT NULL AS acquired;
		SELECT lockctl.force_release('hs-r2');
		SELECT * FROM lockctl.lease_stats;
		SELECT pg_catalog.count(*) FROM lockctl.lease_waiters;
	};
}
if ($has{reserve})
{
	push @calls, q{
		SELECT lockctl.create_pool('hs-pool', 10);
		SELECT lockctl.reserve('hs-pool', 3, 'h', '1 hour', 'k1') AS h1 \gset
		SELECT lockctl.reserve('hs-pool', 3, 'h', '1 hour', 'k1') OPERATOR(pg_catalog.=) :h1 AS idempotent;
		SELECT lockctl.available('hs-pool') AS avail;
		SELECT lockctl.confirm(:h1);
		SELECT lockctl.reserve('hs-pool', 2, 'h', '1 hour') AS h2 \gset
		SELECT lockctl.extend(:h2, '2 hours') IS NOT NULL;
		SELECT lockctl.cancel(:h2);
		SELECT lockctl.set_capacity('hs-pool', 20);
		SELECT lockctl.set_slots('hs-pool', 3);
		SELECT lockctl.available('hs-pool') AS avail2;
		SELECT * FROM lockctl.pool_status;
		SELECT pg_catalog.count(*) FROM lockctl.holds;
		SELECT lockctl.reserve('hs-pool', 1, 'h', '0.2 s') AS h3 \gset
		SELECT lockctl.create_pool('hs-pool2', 1000);
		SELECT lockctl.reserve('hs-pool2', 5, 'h', '1 hour') IS NOT NULL;
		SELECT lockctl.drop_pool('hs-pool2');
	};
}
if ($has{enable_versioning})
{
	push @calls, q{
		CREATE TABLE hs_acct (id int PRIMARY KEY, val int, version bigint);
		SELECT lockctl.enable_versioning('hs_acct');
		INSERT INTO hs_acct (id, val) VALUES (1, 10);
		UPDATE hs_acct SET val = 11, version = 1 WHERE id OPERATOR(pg_catalog.=) 1 RETURNING version;
		SELECT lockctl.update_versioned('hs_acct', 1, 2, '{"val": 12}');
		SELECT * FROM lockctl.versioned_tables;
		SELECT lockctl.disable_versioning('hs_acct');
		SELECT lockctl.enable_versioning('hs_acct', 'version', 'orm');
		UPDATE hs_acct SET val = 13, version = 4 WHERE id OPERATOR(pg_catalog.=) 1 RETURNING version;
	};
}
if ($has{reserve_range})
{
	# with a cap set, reserve_range runs check_role_caps too
	push @calls, q{
		SET lockctl.max_holds_per_role = 1000;
		SELECT lockctl.create_calendar('hs-cal');
		SELECT lockctl.create_calendar('hs-cal3', 3);
		SELECT lockctl.reserve_range('hs-cal', '[2030-01-01 10:00+00, 2030-01-01 11:00+00)', 'h', '1 hour', 'rk1') AS r1 \gset
		SELECT lockctl.reserve_range('hs-cal', '[2030-01-01 10:00+00, 2030-01-01 11:00+00)', 'h', '1 hour', 'rk1') OPERATOR(pg_catalog.=) :r1 AS range_idempotent;
		SELECT lockctl.reserve_range('hs-cal', '[2030-01-01 10:30+00, 2030-01-01 11:30+00)', 'h') IS NULL AS overlap_refused;
		SELECT lockctl.reserve_range('hs-cal3', '[2030-01-01 10:00+00, 2030-01-01 11:00+00)', 'h') IS NOT NULL AS cap3_taken;
		SELECT lockctl.reserve_range('hs-cal3', '[2030-01-01 10:00+00, 2030-01-01 11:00+00)', NULL, '1 hour', 'rk3') IS NOT NULL AS cap3_keyed;
		SELECT lockctl.confirm(:r1);
		SELECT pg_catalog.count(*) FROM lockctl.available_ranges('hs-cal', '[2030-01-01 00:00+00, 2030-01-02 00:00+00)');
		SELECT pg_catalog.count(*) FROM lockctl.calendar_holds;
		RESET lockctl.max_holds_per_role;
	};
}
my $script = join("\n", @calls);
($ret, $out, $err) = $node->psql('hostile', $script, on_error_stop => 1);
is($ret, 0, 'every feature works under the hostile search_path') or diag $err;
note $out;
like($out, qr/^t$/m, 'results are right') if @calls;

if ($has{reserve})
{
	# the worker, too, runs in this database: the 0.2 s hold expires
	ok($node->poll_query_until('hostile',
			q{SELECT pg_catalog.count(*) OPERATOR(pg_catalog.=) 0 FROM lockctl.reservations
			   WHERE status OPERATOR(pg_catalog.=) 'held'
			     AND holder OPERATOR(pg_catalog.=) 'h'}),
		'the expiry worker does its work under the hostile search_path');
}

# reserve_range is a C function that runs its SQL as the extension's owner
# under the caller's search_path: a hostile role calls it with its own
# path, objects and wrong arguments (whose errors come from SQL helpers),
# and nothing it planted may run, as that role or as the owner.
if ($has{reserve_range})
{
	my $as_mallory = q{SET lockctl.max_holds_per_role = 1000;
		SET ROLE mallory; SET search_path = public, pg_catalog;
		CREATE TEMP TABLE calendars (id bigint, resource text, capacity integer);
		CREATE TEMP TABLE range_reservations (id bigint);
	};
	($ret, $out, $err) = $node->psql('hostile', $as_mallory . q{
		SELECT lockctl.reserve_range('hs-cal', '[2030-01-02 10:00+00, 2030-01-02 11:00+00)', 'm', '1 hour', 'mk') AS m1 \gset
		SELECT lockctl.reserve_range('hs-cal', '[2030-01-02 10:00+00, 2030-01-02 11:00+00)', 'm', '1 hour', 'mk') OPERATOR(pg_catalog.=) :m1 AS mallory_idempotent;
		SELECT lockctl.reserve_range('hs-cal3', '[2030-01-02 10:00+00, 2030-01-02 11:00+00)', 'm') IS NOT NULL AS mallory_cap3;
		SELECT taken_by FROM lockctl.calendar_holds WHERE id OPERATOR(pg_catalog.=) :m1;
	}, on_error_stop => 1);
	is($ret, 0, 'a hostile role takes range holds under its own search_path') or diag $err;
	unlike($err, qr/planted .* called/, 'nothing planted is called then');
	like($out, qr/^mallory$/m, 'the hold is the hostile role\'s');

	# every error of reserve_range, as that role
	my @bad = (
		[ q{NULL, '[2030-01-03 10:00+00, 2030-01-03 11:00+00)'}, qr/resource of lockctl.reserve_range must not be null/ ],
		[ q{'', '[2030-01-03 10:00+00, 2030-01-03 11:00+00)'}, qr/resource of lockctl.reserve_range must not be empty/ ],
		[ q{pg_catalog.repeat('x', 201), '[2030-01-03 10:00+00, 2030-01-03 11:00+00)'}, qr/resource of lockctl.reserve_range is too long/ ],
		[ q{'hs-cal', NULL}, qr/during of lockctl.reserve_range must not be null/ ],
		[ q{'hs-cal', 'empty'}, qr/during of lockctl.reserve_range must not be empty/ ],
		[ q{'hs-cal', '[2030-01-03 10:00+00,)'}, qr/during of lockctl.reserve_range must be bounded/ ],
		[ q{'hs-cal', '[2030-01-03 10:00+00, 2030-01-03 11:00+00]'}, qr/during of lockctl.reserve_range must include its start and exclude its end/ ],
		[ q{'hs-cal', '[2030-01-03 10:00+00, 2030-01-03 11:00+00)', ''}, qr/holder of lockctl.reserve_range must not be empty/ ],
		[ q{'hs-cal', '[2030-01-03 10:00+00, 2030-01-03 11:00+00)', 'm', NULL}, qr/ttl of lockctl.reserve_range must not be null/ ],
		[ q{'hs-cal', '[2030-01-03 10:00+00, 2030-01-03 11:00+00)', 'm', '400 days'}, qr/ttl of lockctl.reserve_range is out of range/ ],
		[ q{'hs-cal', '[2030-01-03 10:00+00, 2030-01-03 11:00+00)', 'm', '1 hour', ''}, qr/idempotency_key of lockctl.reserve_range must not be empty/ ],
		[ q{'hs-cal', '[2030-01-02 12:00+00, 2030-01-02 13:00+00)', 'm', '1 hour', 'mk'}, qr/idempotency key "mk" was used for another range on calendar "hs-cal"/ ],
		[ q{'hs-nothing', '[2030-01-03 10:00+00, 2030-01-03 11:00+00)'}, qr/calendar "hs-nothing" does not exist/ ],
		[ q{'hs-pool', '[2030-01-03 10:00+00, 2030-01-03 11:00+00)'}, qr/"hs-pool" is a pool, not a calendar/ ],
	);
	for my $b (@bad)
	{
		my ($args, $msg) = @$b;
		($ret, $out, $err) = $node->psql('hostile', $as_mallory . "SELECT lockctl.reserve_range($args);");
		like($err, $msg, "reserve_range($args) fails as it should, as a hostile role");
		# (the error rolls hijack_log back: the WARNING is what would show)
		unlike($err, qr/planted .* called/, "reserve_range($args) calls nothing planted");
	}
}

is($node->safe_psql('hostile',
		q{SELECT pg_catalog.string_agg(DISTINCT what, ', ') FROM public.hijack_log}),
	'', 'no planted object was ever called')
  or diag $node->safe_psql('hostile',
	q{SELECT pg_catalog.string_agg(DISTINCT pg_catalog.concat_ws(' in: ', what, query), E'\n') FROM public.hijack_log});

# The same with the extension dropped and created again by a role that
# merely owns the database (trusted extensions aside, superuser is needed).
($ret, $out, $err) = $node->psql('hostile', 'DROP EXTENSION lockctl CASCADE; CREATE EXTENSION lockctl;');
is($ret, 0, 'drop and create again under the hostile search_path') or diag $err;
is($node->safe_psql('hostile',
		q{SELECT pg_catalog.string_agg(DISTINCT what, ', ') FROM public.hijack_log}),
	'', 'still no planted object called')
  or diag $node->safe_psql('hostile',
	q{SELECT pg_catalog.string_agg(DISTINCT pg_catalog.concat_ws(' in: ', what, query), E'\n') FROM public.hijack_log});

$node->stop;
done_testing();
