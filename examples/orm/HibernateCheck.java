// Hibernate (Debian's libhibernate3-java, 3.6, with libpostgresql-jdbc-java)
// against lockctl, mode 'strict'.
//
//   PGPASSWORD=... java -cp JARS HibernateCheck.java "host=... port=... dbname=... user=..."
//
// JARS: matrix.py's JAVA_CLASSPATH, which runs it.  Run from its source
// (java's single-file mode: nothing to build).  An
// @Version field makes Hibernate write the ORM form: on update
// "SET ..., version = read + 1 WHERE id = ? AND version = read", on delete
// "WHERE id = ? AND version = read", both checked in mode strict.  A stale
// one matches no row, which Hibernate raises as StaleObjectStateException.
// HQL bulk updates and deletes do not compare the version: refused.
// Hibernate's JDBC connections use TCP (PgJDBC has no Unix sockets): the
// scratch server listens on 127.0.0.1 with a password.

import java.sql.Connection;
import java.sql.DriverManager;
import java.sql.ResultSet;
import java.sql.SQLException;
import java.sql.Statement;
import java.util.HashMap;
import java.util.Map;
import java.util.concurrent.atomic.AtomicReference;
import java.util.function.Function;
import java.util.function.Supplier;
import javax.persistence.Entity;
import javax.persistence.Id;
import javax.persistence.Table;
import javax.persistence.Version;
import org.hibernate.Session;
import org.hibernate.SessionFactory;
import org.hibernate.StaleObjectStateException;
import org.hibernate.Transaction;
import org.hibernate.cfg.Configuration;

public class HibernateCheck {
    static final String NAME = "Hibernate (@Version)";
    static final int BOUND = 15;        // seconds any one wait may take
    static int failed = 0;
    static String url;
    static String user;
    static String password;

    @Entity(name = "Doc")
    @Table(name = "hb_docs")
    @org.hibernate.annotations.Proxy(lazy = false)
    public static class Doc {
        private Integer id;
        private String body;
        private int n;
        private int version;

        public Doc() {}

        @Id
        public Integer getId() { return id; }
        public void setId(Integer id) { this.id = id; }
        public String getBody() { return body; }
        public void setBody(String body) { this.body = body; }
        public int getN() { return n; }
        public void setN(int n) { this.n = n; }
        @Version
        public int getVersion() { return version; }
        public void setVersion(int version) { this.version = version; }
    }

    /** ok, outcome, detail: what one check found. */
    record Result(boolean ok, String outcome, String detail) {}

    static void row(String mode, String config) {
        System.out.println("ROW\t" + NAME + "\t" + mode + "\t" + config);
    }

    static void cell(String column, String outcome, boolean ok, String detail) {
        if (!ok)
            failed++;
        System.out.println((ok ? "ok" : "not ok") + " - " + NAME + ": " + column + ": " + outcome);
        if (!ok && detail != null)
            for (String l : detail.split("\n"))
                System.out.println("#   " + l);
        System.out.println("CELL\t" + NAME + "\t" + column + "\t" + (ok ? outcome : "FAILED: " + outcome));
        System.out.flush();
    }

    static void check(String column, Supplier<Result> fn) {
        try {
            Result r = fn.get();
            cell(column, r.outcome(), r.ok(), r.detail());
        } catch (Throwable e) {         // a check that broke is a failed check
            java.io.StringWriter w = new java.io.StringWriter();
            e.printStackTrace(new java.io.PrintWriter(w));
            cell(column, "error", false, w.toString());
        }
    }

    /** The SQLSTATE of an exception, following its causes. */
    static String sqlstate(Throwable e) {
        for (Throwable t = e; t != null; t = t.getCause()) {
            if (t instanceof SQLException s && s.getSQLState() != null)
                return s.getSQLState();
            if (t.getCause() == t)
                break;
        }
        return null;
    }

    static Connection jdbc() throws SQLException {
        return DriverManager.getConnection(url, user, password);
    }

    static void sql(String text) {
        try (Connection c = jdbc(); Statement s = c.createStatement()) {
            s.execute(text);
        } catch (SQLException e) {
            throw new RuntimeException(e);
        }
    }

    /** Wait until some backend waits on a lock while writing hb_docs. */
    static boolean waitForLockWait() throws Exception {
        long deadline = System.nanoTime() + BOUND * 1_000_000_000L;
        try (Connection c = jdbc(); Statement s = c.createStatement()) {
            while (System.nanoTime() < deadline) {
                try (ResultSet r = s.executeQuery(
                        "SELECT count(*) FROM pg_stat_activity"
                        + " WHERE wait_event_type = 'Lock' AND query ILIKE '%hb_docs%'")) {
                    r.next();
                    if (r.getLong(1) > 0)
                        return true;
                }
                Thread.sleep(20);
            }
        }
        return false;
    }

    static SessionFactory factory;

    /** Run fn in a session of its own, in a transaction committed after it. */
    static <T> T inTx(Function<Session, T> fn) {
        Session s = factory.openSession();
        Transaction tx = s.beginTransaction();
        try {
            T r = fn.apply(s);
            tx.commit();
            return r;
        } catch (RuntimeException e) {
            if (tx.isActive())
                tx.rollback();
            throw e;
        } finally {
            s.close();
        }
    }

    /** The SQLSTATE an HQL statement (with parameters name, value, ...) failed with, or null. */
    static String hqlState(String hql, Object... params) {
        try {
            inTx(s -> {
                org.hibernate.Query q = s.createQuery(hql);
                for (int i = 0; i < params.length; i += 2)
                    q.setParameter((String) params[i], params[i + 1]);
                return q.executeUpdate();
            });
            return null;
        } catch (RuntimeException e) {
            return sqlstate(e);
        }
    }

    /** Whether fn, in a session of its own, raised StaleObjectStateException. */
    static StaleObjectStateException stale(Function<Session, Object> fn) {
        try {
            inTx(fn);
            return null;
        } catch (StaleObjectStateException e) {
            return e;
        }
    }

    static Doc load(int id) {
        return inTx(s -> (Doc) s.get(Doc.class, id));
    }

    /** Update a detached copy in a session of its own: Hibernate's usual unit of work. */
    static void save(Doc d) {
        inTx(s -> { s.update(d); return null; });
    }

    static String describe(Doc d) {
        return d == null ? "no row" : "id=" + d.getId() + " body=" + d.getBody() + " n=" + d.getN()
            + " version=" + d.getVersion();
    }

    public static void main(String[] args) throws Exception {
        // Run from source, this file's classes live in the launcher's
        // in-memory class loader: Hibernate finds them by name through the
        // thread's context class loader.
        Thread.currentThread().setContextClassLoader(HibernateCheck.class.getClassLoader());
        Map<String, String> p = new HashMap<>();
        for (String kv : args[0].trim().split("\\s+")) {
            int i = kv.indexOf('=');
            p.put(kv.substring(0, i), kv.substring(i + 1));
        }
        String host = p.getOrDefault("host", "127.0.0.1");
        if (host.startsWith("/"))
            host = "127.0.0.1";         // a socket directory: the server's TCP address
        url = "jdbc:postgresql://" + host + ":" + p.getOrDefault("port", "5432") + "/" + p.get("dbname");
        user = p.get("user");
        password = p.getOrDefault("password", System.getenv("PGPASSWORD"));

        sql("SET client_min_messages = warning;"
            + " DROP TABLE IF EXISTS hb_docs;"
            + " CREATE TABLE hb_docs (id int PRIMARY KEY, body text, n int NOT NULL DEFAULT 0,"
            + "                       version int NOT NULL DEFAULT 0);"
            + " SELECT lockctl.enable_versioning('hb_docs');"
            + " INSERT INTO hb_docs (id, body) SELECT g, 'seed' FROM generate_series(1, 6) g;");

        Configuration cfg = new Configuration()
            .addAnnotatedClass(Doc.class)
            .setProperty("hibernate.connection.driver_class", "org.postgresql.Driver")
            .setProperty("hibernate.connection.url", url)
            .setProperty("hibernate.connection.username", user)
            .setProperty("hibernate.connection.password", password == null ? "" : password)
            .setProperty("hibernate.connection.pool_size", "4")
            .setProperty("hibernate.dialect", "org.hibernate.dialect.PostgreSQLDialect");
        factory = cfg.buildSessionFactory();

        row("strict", "an `@Version` field (`lockctl.enable_versioning('t')`); HQL `update` and `delete` with `version = :read` in the where clause");

        check("normal update", () -> {
            Doc d = load(1);
            d.setBody("first");
            save(d);
            d.setBody("second");
            save(d);
            Doc r = load(1);
            return new Result("second".equals(r.getBody()) && r.getVersion() == 2 && d.getVersion() == 2,
                              "ok", describe(r));
        });

        check("sequential conflict", () -> {
            Doc a = load(2);
            Doc b = load(2);
            a.setBody("A");
            save(a);
            b.setBody("B");
            Throwable err = stale(s -> { s.update(b); return null; });
            Doc r = load(2);
            return new Result(err != null && "A".equals(r.getBody()) && r.getVersion() == 1,
                              "StaleObjectStateException", describe(r));
        });

        check("concurrent conflict", () -> {
            Doc a = load(3);
            Doc b = load(3);
            AtomicReference<String> result = new AtomicReference<>("not run");
            boolean waited;
            Thread t;
            Session s = factory.openSession();
            Transaction tx = s.beginTransaction();
            try {
                a.setBody("A");
                s.update(a);
                s.flush();                      // holds the row lock
                t = new Thread(() -> {
                    b.setBody("B");
                    try {
                        save(b);
                        result.set("committed");
                    } catch (StaleObjectStateException e) {
                        result.set("StaleObjectStateException");
                    } catch (Throwable e) {
                        result.set(e.toString());
                    }
                });
                t.start();
                waited = waitForLockWait();
                tx.commit();
            } catch (Exception e) {
                throw new RuntimeException(e);
            } finally {
                s.close();
            }
            try {
                t.join(BOUND * 1000L);
            } catch (InterruptedException e) {
                throw new RuntimeException(e);
            }
            Doc r = load(3);
            return new Result(waited && "StaleObjectStateException".equals(result.get())
                              && "A".equals(r.getBody()) && r.getVersion() == 1,
                              "StaleObjectStateException",
                              "waited=" + waited + " result=" + result.get() + " " + describe(r));
        });

        check("bulk write", () -> {
            String code = hqlState("update Doc set body = :b where id = :id", "b", "bulk", "id", 4);
            int v = load(4).getVersion();
            int n = inTx(s -> s.createQuery("update Doc set body = :b where id = :id and version = :v")
                             .setParameter("b", "bulk").setParameter("id", 4).setParameter("v", v)
                             .executeUpdate());
            Doc r = load(4);
            return new Result("09000".equals(code) && n == 1 && "bulk".equals(r.getBody())
                              && r.getVersion() == v + 1,
                              "HQL update: refused (09000); with `version = :read` in where: checked",
                              "code=" + code + " n=" + n + " " + describe(r));
        });

        check("helper write", () -> {
            // merge() of a detached copy that another session has since
            // changed: Hibernate compares the versions itself; and an HQL
            // "update versioned", which bumps the version from itself
            // (blind unless the where clause compares it).
            Doc a = load(5);
            Doc b = load(5);
            a.setN(1);
            save(a);
            b.setN(2);
            Throwable err = stale(s -> s.merge(b));
            String code = hqlState("update versioned Doc set n = n + 1 where id = :id", "id", 5);
            Doc r = load(5);
            return new Result(err != null && "09000".equals(code) && r.getN() == 1 && r.getVersion() == 1,
                              "merge() of a stale copy: StaleObjectStateException; HQL `update versioned`: refused (09000)",
                              "merge=" + err + " code=" + code + " " + describe(r));
        });

        check("delete", () -> {
            Doc a = load(6);
            Doc b = load(6);
            a.setBody("A");
            save(a);
            Throwable err = stale(s -> { s.delete(b); return null; });
            boolean kept = load(6) != null;
            String code = hqlState("delete from Doc where id = :id", "id", 6);
            inTx(s -> { s.delete(a); return null; });
            return new Result(err != null && kept && "09000".equals(code) && load(6) == null,
                              "delete(): checked (stale: StaleObjectStateException); HQL delete without the version: refused (09000)",
                              "err=" + err + " kept=" + kept + " code=" + code);
        });

        factory.close();
        System.exit(failed == 0 ? 0 : 1);
    }
}
