import java.sql.*;
import java.util.*;

// JdbcProbe drives pgjdbc through what DBeaver, Metabase and Spark ask of a
// Postgres server, printing one line per check ("name: value") for the Go
// test to compare. Any exception fails the probe with its message.
public class JdbcProbe {
    static void p(String k, Object v) { System.out.println(k + ": " + v); }

    static String cols(ResultSet rs, String... names) throws SQLException {
        List<String> out = new ArrayList<>();
        while (rs.next()) {
            List<String> row = new ArrayList<>();
            for (String n : names) row.add(String.valueOf(rs.getObject(n)));
            out.add(String.join("|", row));
        }
        rs.close();
        return String.join(",", out);
    }

    static int count(ResultSet rs) throws SQLException {
        int n = 0;
        while (rs.next()) n++;
        rs.close();
        return n;
    }

    public static void main(String[] a) throws Exception {
        String step = "connect";
        try (Connection c = DriverManager.getConnection(a[0], "tester", "")) {
            DatabaseMetaData md = c.getMetaData();
            step = "version"; p("product", md.getDatabaseProductName() + " " + md.getDatabaseMajorVersion() + "." + md.getDatabaseMinorVersion());
            step = "getTables"; p("tables", cols(md.getTables(null, "public", "%", new String[]{"TABLE", "VIEW"}), "TABLE_SCHEM", "TABLE_NAME", "TABLE_TYPE"));
            step = "getColumns"; p("columns", cols(md.getColumns(null, "public", "t", "%"), "COLUMN_NAME", "TYPE_NAME", "DATA_TYPE"));
            step = "getTypeInfo"; p("typeinfo", count(md.getTypeInfo()) > 10);
            step = "getPrimaryKeys"; p("pk", cols(md.getPrimaryKeys(null, "public", "t"), "COLUMN_NAME"));
            step = "getIndexInfo"; p("indexes", count(md.getIndexInfo(null, "public", "t", false, true)));
            step = "getImportedKeys"; p("fks", count(md.getImportedKeys(null, "public", "t")));
            step = "getFunctions"; p("functions", count(md.getFunctions(null, "public", "%")) >= 0);
            step = "getSchemas"; p("schemas", cols(md.getSchemas(), "TABLE_SCHEM"));
            step = "getTransactionIsolation"; p("isolation", c.getTransactionIsolation() == Connection.TRANSACTION_SERIALIZABLE);
            step = "query"; try (Statement s = c.createStatement(); ResultSet rs = s.executeQuery("SELECT i, s, ts, now() AT TIME ZONE 'UTC' IS NOT NULL AS ok, TIMESTAMPTZ '2021-07-01 00:00:01.25+00' AS tz FROM \"public\".\"t\" ORDER BY i")) {
                rs.next();
                p("row", rs.getLong(1) + "|" + rs.getString(2) + "|" + rs.getTimestamp(3).toInstant() + "|" + rs.getTimestamp(5).toInstant() + "|" + rs.getObject(5, java.time.OffsetDateTime.class));
            }
            step = "prepared"; try (PreparedStatement ps = c.prepareStatement("SELECT count(*) FROM t WHERE i >= ? AND s <> ?")) {
                ps.setLong(1, 2); ps.setString(2, "x");
                try (ResultSet rs = ps.executeQuery()) { rs.next(); p("bound", rs.getLong(1)); }
            }
            step = "fetchSize"; c.setAutoCommit(false);
            try (Statement s = c.createStatement()) {
                s.setFetchSize(1000);
                long n = 0, sum = 0;
                try (ResultSet rs = s.executeQuery("SELECT range AS r FROM range(250000)")) {
                    while (rs.next()) { n++; sum += rs.getLong(1); }
                }
                p("fetched", n + "|" + sum);
            }
            step = "setSavepoint"; Savepoint sp = c.setSavepoint("sp1"); c.rollback(sp); c.releaseSavepoint(c.setSavepoint());
            c.commit(); c.setAutoCommit(true);
            p("savepoint", "ok");
        } catch (SQLException e) {
            System.out.println("FAILED at " + step + ": " + e.getSQLState() + " " + e.getMessage());
            System.exit(1);
        }
    }
}
