package pgwire_test

import (
	"strings"
	"testing"

	"github.com/earthscope/gtsm-stream/pgwire"
)

// TestPgcli runs pgcli's own code (Debian's pgcli 3.5: pgcli.pgexecute and
// pgspecial) against the endpoint: the metadata its completion refresh
// reads, and the \dt \dv \di \df \du \d commands, which send
// relkind = ANY(%s) with an array parameter.
func TestPgcli(t *testing.T) {
	py := python3(t, "pgcli", "pgcli.pgexecute", "pgspecial")
	e := start(t, pgwire.Config{}, `CREATE VIEW v AS SELECT i, s FROM t`, `CREATE TABLE schema_migrations (version INTEGER)`)
	host, port, _ := strings.Cut(e.addr, ":")
	out := runPython(t, py, `
import sys
from pgcli.pgexecute import PGExecute
from pgspecial.main import PGSpecial
e = PGExecute("gtsm", "tester", None, sys.argv[1], sys.argv[2], "")
print("schemata", sorted(e.schemata()))
print("search_path", e.search_path())
print("tables", sorted(e.tables()))
print("views", sorted(v for v in e.views() if v[0] == "public"))
print("table_columns", sorted((s, t, c, ty) for s, t, c, ty, *_ in e.table_columns() if t == "t" and c in ("i", "s", "ts")))
print("view_columns", sorted((s, t, c) for s, t, c, *_ in e.view_columns()))
print("datatypes", list(e.datatypes()))
print("functions", len(list(e.functions())))
print("foreignkeys", list(e.foreignkeys()))
print("databases", e.databases())
print("no system views", not [v for v in e.views() if v[0] is None])
spec = PGSpecial()
for cmd in ["\\dt", "\\dv", "\\di", "\\df", "\\du", "\\d", "\\d t"]:
    for res in e.run(cmd, pgspecial=spec):
        title, rows, headers, status = res[:4]
        print(cmd, headers and list(headers), rows and [tuple(r) for r in rows], status)
`, host, port)
	for _, want := range []string{
		"schemata ['information_schema', 'pg_catalog', 'public']",
		"search_path ['pg_catalog', 'public']",
		"tables [('public', 't')]",
		"views [('public', 'v')]",
		"table_columns [('public', 't', 'i', 'bigint'), ('public', 't', 's', 'text'), ('public', 't', 'ts', 'timestamp without time zone')]",
		"view_columns [('public', 'v', 'i'), ('public', 'v', 's')]",
		"foreignkeys []",
		"databases ['e']",
		"no system views True",
		`\dt ['Schema', 'Name', 'Type', 'Owner'] [('public', 't', 'table', 'gtsm')]`,
		`\dv ['Schema', 'Name', 'Type', 'Owner'] [('public', 'v', 'view', 'gtsm')]`,
		`\di ['Schema', 'Name', 'Type', 'Owner'] [] SELECT 0`,
		`\df ['Schema', 'Name', 'Result data type', 'Argument data types', 'Type'] [] SELECT 0`,
		`[('gtsm', False, True, False, False, True, -1, None, '[]', False)] SELECT 1`,
		`\d t ['Column', 'Type', 'Modifiers'] [('i', 'bigint', ''), ('n', 'integer', ''), ('d', 'double precision', ''), ('s', 'text', '')`,
		`\d ['Schema', 'Name', 'Type', 'Owner'] [('public', 't', 'table', 'gtsm'), ('public', 'v', 'view', 'gtsm')]`,
	} {
		if !strings.Contains(out, want) {
			t.Errorf("pgcli output lacks %q", want)
		}
	}
	if strings.Contains(out, "schema_migrations") {
		t.Errorf("pgcli lists the internal table schema_migrations")
	}
	if t.Failed() || testing.Verbose() {
		t.Logf("pgcli printed:\n%s", out)
	}
}
