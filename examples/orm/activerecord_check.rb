# ActiveRecord (Debian's ruby-activerecord and ruby-pg) against lockctl,
# mode 'strict'.
#
#   ruby examples/orm/activerecord_check.rb "host=... port=... dbname=... user=..."
#
# A lock_version column turns on Rails' optimistic locking: save and
# destroy send lock_version = read (+ 1) WHERE ... AND lock_version = read,
# checked; a stale one matches no row, which Rails raises as
# ActiveRecord::StaleObjectError.  update_all and increment! do not compare
# the version: refused.
require 'active_record'
require 'pg'

BOUND = 15
$failed = 0
params = ARGV[0].split.map { |kv| kv.split('=', 2) }.to_h
NAME = 'ActiveRecord (lock_version)'

def row(name, mode, config)
  puts "ROW\t#{name}\t#{mode}\t#{config}"
end

def cell(name, column, outcome, ok, detail = nil)
  $failed += 1 unless ok
  puts "#{ok ? 'ok' : 'not ok'} - #{name}: #{column}: #{outcome}"
  detail.to_s.each_line { |l| puts "#   #{l}" } if !ok && detail
  puts "CELL\t#{name}\t#{column}\t#{ok ? outcome : 'FAILED: ' + outcome}"
  $stdout.flush
end

def check(name, column)
  ok, outcome, detail = yield
  cell(name, column, outcome, ok, detail)
rescue StandardError => e
  cell(name, column, 'error', false, "#{e.class}: #{e.message}\n#{e.backtrace.first(5).join("\n")}")
end

def sqlstate(e)
  c = e.respond_to?(:cause) ? e.cause : nil
  c.respond_to?(:result) && c.result ? c.result.error_field(PG::Result::PG_DIAG_SQLSTATE) : nil
end

PGPARAMS = { host: params['host'], port: params['port'], dbname: params['dbname'],
             user: params['user'], password: params['password'] }.compact

def wait_for_lock_wait(table)
  mon = PG.connect(PGPARAMS)
  deadline = Process.clock_gettime(Process::CLOCK_MONOTONIC) + BOUND
  while Process.clock_gettime(Process::CLOCK_MONOTONIC) < deadline
    n = mon.exec_params("SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND query ILIKE $1",
                        ["%#{table}%"]).getvalue(0, 0).to_i
    return true if n > 0
    sleep 0.02
  end
  false
ensure
  mon&.close
end

setup = PG.connect(PGPARAMS)
setup.exec(<<~SQL)
  SET client_min_messages = warning;
  DROP TABLE IF EXISTS ar_docs;
  CREATE TABLE ar_docs (id int PRIMARY KEY, body text, n int NOT NULL DEFAULT 0,
                        lock_version int NOT NULL DEFAULT 0);
  SELECT lockctl.enable_versioning('ar_docs', 'lock_version');
  INSERT INTO ar_docs (id, body) SELECT g, 'seed' FROM generate_series(1, 6) g;
SQL
setup.close

ActiveRecord::Base.establish_connection(adapter: 'postgresql', host: params['host'], port: params['port'],
                                        database: params['dbname'], username: params['user'],
                                        password: params['password'], pool: 4)
class Doc < ActiveRecord::Base
  self.table_name = 'ar_docs'
end

row(NAME, 'strict', "a `lock_version` column (`lockctl.enable_versioning('t', 'lock_version')`)")

check(NAME, 'normal update') do
  d = Doc.find(1)
  d.update!(body: 'first')
  d.update!(body: 'second')
  r = Doc.find(1)
  [r.body == 'second' && r.lock_version == 2 && d.lock_version == 2, 'ok', r.attributes.inspect]
end

check(NAME, 'sequential conflict') do
  a = Doc.find(2)
  b = Doc.find(2)
  a.update!(body: 'A')
  err = nil
  begin
    b.update!(body: 'B')
  rescue ActiveRecord::StaleObjectError => e
    err = e
  end
  [err && Doc.find(2).body == 'A', 'ActiveRecord::StaleObjectError', Doc.find(2).attributes.inspect]
end

check(NAME, 'concurrent conflict') do
  a = Doc.find(3)
  b = Doc.find(3)
  result = nil
  waited = false
  Doc.transaction do
    a.update!(body: 'A') # holds the row lock
    t = Thread.new do
      ActiveRecord::Base.connection_pool.with_connection do
        b.update!(body: 'B')
        result = 'committed'
      rescue ActiveRecord::StaleObjectError
        result = 'ActiveRecord::StaleObjectError'
      rescue StandardError => e
        result = e.inspect
      end
    end
    waited = wait_for_lock_wait('ar_docs')
    Thread.current[:writer] = t
  end
  Thread.current[:writer].join(BOUND)
  [waited && result == 'ActiveRecord::StaleObjectError' && Doc.find(3).body == 'A',
   'ActiveRecord::StaleObjectError', "waited=#{waited} result=#{result}"]
end

check(NAME, 'bulk write') do
  code = nil
  begin
    Doc.where(id: 4).update_all(body: 'bulk')
  rescue ActiveRecord::StatementInvalid => e
    code = sqlstate(e)
  end
  v = Doc.find(4).lock_version
  n = Doc.where(id: 4, lock_version: v).update_all(body: 'bulk')
  r = Doc.find(4)
  [code == '09000' && n == 1 && r.body == 'bulk' && r.lock_version == v + 1,
   'update_all: refused (09000); with lock_version in where: checked', "code=#{code} n=#{n}"]
end

check(NAME, 'helper write') do
  d = Doc.find(5)
  codes = []
  begin
    d.increment!(:n)
  rescue ActiveRecord::StatementInvalid => e
    codes << sqlstate(e)
  end
  begin
    Doc.update_counters(5, n: 1)
  rescue ActiveRecord::StatementInvalid => e
    codes << sqlstate(e)
  end
  [codes == %w[09000 09000] && Doc.find(5).n.zero?, 'increment!, update_counters: refused (09000)',
   "codes=#{codes}"]
end

check(NAME, 'delete') do
  a = Doc.find(6)
  b = Doc.find(6)
  a.update!(body: 'A')
  err = nil
  begin
    b.destroy
  rescue ActiveRecord::StaleObjectError => e
    err = e
  end
  a.destroy
  [err && !Doc.exists?(6), 'checked (stale: ActiveRecord::StaleObjectError)', err.inspect]
end

exit($failed.zero? ? 0 : 1)
