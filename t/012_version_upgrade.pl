# Tables versioned under 1.0 keep working with this library: before ALTER
# EXTENSION lockctl UPDATE (1.0's trigger, BEFORE INSERT OR UPDATE, and
# 1.0's nine-column counters function), and after it (the trigger fires on
# DELETE too, with the same name, arguments and enabled state, on the
# partitions as well, and the view has the new counters).
use strict;
use warnings FATAL => 'all';

use lib 't';
use LockctlNode;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $node = LockctlNode->new('version_upgrade', extension => 0);
# The triggers as 1.0's enable_versioning() made them (this library's
# makes them with DELETE already, whatever the SQL objects).
$node->safe_psql('postgres', q{
CREATE EXTENSION lockctl VERSION '1.0';
CREATE TABLE acc (id int PRIMARY KEY, balance int, version bigint);
CREATE TABLE orders (id int PRIMARY KEY, lock_version int NOT NULL DEFAULT 0);
CREATE TABLE part (id int, region text, version int, PRIMARY KEY (id, region))
    PARTITION BY LIST (region);
CREATE TABLE part_eu PARTITION OF part FOR VALUES IN ('eu');
CREATE TABLE quiet (id int PRIMARY KEY, version int);
CREATE TRIGGER lockctl_version BEFORE INSERT OR UPDATE ON acc
    FOR EACH ROW EXECUTE FUNCTION lockctl.version_trigger('version', 'strict');
CREATE TRIGGER lockctl_version BEFORE INSERT OR UPDATE ON orders
    FOR EACH ROW EXECUTE FUNCTION lockctl.version_trigger('lock_version', 'orm');
CREATE TRIGGER lockctl_version BEFORE INSERT OR UPDATE ON part
    FOR EACH ROW EXECUTE FUNCTION lockctl.version_trigger('version', 'strict');
CREATE TRIGGER lockctl_version BEFORE INSERT OR UPDATE ON quiet
    FOR EACH ROW EXECUTE FUNCTION lockctl.version_trigger('version', 'strict');
ALTER TABLE quiet DISABLE TRIGGER lockctl_version;
INSERT INTO acc VALUES (1, 100, NULL), (2, 200, NULL);
INSERT INTO orders VALUES (1), (2);
INSERT INTO part VALUES (1, 'eu', NULL);
});

# psql's "ERROR:  message" line of a statement that must fail
sub fails
{
	my ($sql) = @_;
	my ($rc, $out, $err) = $node->psql('postgres', $sql);
	return $rc != 0 ? ($err =~ /ERROR:\s+(.*)/ ? $1 : $err) : undef;
}

# Under 1.0's SQL objects, with this library.
is($node->safe_psql('postgres',
		"UPDATE acc SET balance = 90 WHERE id = 1 AND version = 1 RETURNING version"),
	'2', '1.0 trigger: a write that compares the version in WHERE passes');
like(fails("UPDATE acc SET balance = 0, version = version + 1 WHERE id = 1"),
	qr/blind write refused/, '1.0 trigger: a version bumped from itself is refused');
is($node->safe_psql('postgres',
		"UPDATE orders SET lock_version = 1 WHERE id = 1 AND lock_version = 0 RETURNING lock_version"),
	'1', '1.0 trigger, mode orm: the ORM form passes');
is($node->safe_psql('postgres', "DELETE FROM acc WHERE id = 2 RETURNING id"),
	'2', '1.0 trigger: DELETE is not checked before the update (no DELETE event)');
is($node->safe_psql('postgres',
		"SELECT checked_updates || '/' || blind_writes FROM lockctl.versioned_tables WHERE table_name = 'acc'::regclass"),
	'1/1', "1.0's counters view works with this library");

$node->safe_psql('postgres', 'ALTER EXTENSION lockctl UPDATE');

is($node->safe_psql('postgres', q{
SELECT string_agg(format('%s:%s:%s:%s', tgrelid::regclass, tgtype, tgenabled,
                         encode(tgargs, 'escape')), ' ' ORDER BY tgrelid::regclass::text)
  FROM pg_trigger WHERE tgname = 'lockctl_version'}),
	'acc:31:O:version\000strict\000 orders:31:O:lock_version\000orm\000 part:31:O:version\000strict\000 part_eu:31:O:version\000strict\000 quiet:31:D:version\000strict\000',
	'the update made every version trigger fire on DELETE, keeping names, arguments and enabled states');
like(fails("DELETE FROM acc WHERE id = 1"), qr/blind write refused .* the DELETE does not compare/,
	'after the update a blind DELETE is refused in mode strict');
is($node->safe_psql('postgres', "DELETE FROM acc WHERE id = 1 AND version = 2 RETURNING id"),
	'1', 'after the update a DELETE that compares the version passes');
is($node->safe_psql('postgres', "DELETE FROM orders WHERE id = 2 RETURNING id"),
	'2', 'after the update mode orm still deletes by key');
like(fails("DELETE FROM part WHERE id = 1"), qr/blind write refused on table "part_eu"/,
	'the partitions got the DELETE event from their table');
is($node->safe_psql('postgres', "UPDATE quiet SET id = id RETURNING id"), '',
	'a disabled trigger stays disabled');
is($node->safe_psql('postgres', q{
SELECT checked_updates || '/' || stale_matches || '/' || checked_deletes
  FROM lockctl.versioned_tables WHERE table_name = 'acc'::regclass}),
	'1/0/1', 'the view has the new counters, and the counters survived the update');

$node->stop;
done_testing();
