package flink

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/earthscope/gtsm-stream/internal/testutil"
	gtsmsql "github.com/earthscope/gtsm-stream/sql"
)

// TestEveryQueryHasATwinOrAReason: each named DuckDB query (sql/queries)
// has a Flink twin (queries/) or a reason in WithoutTwin, never both; every
// Flink query has a DuckDB one; flink/README.md names each query without a
// twin; and asking for one gives the reason.
func TestEveryQueryHasATwinOrAReason(t *testing.T) {
	twins := map[string]bool{}
	for _, n := range QueryNames() {
		twins[n] = true
	}
	duck := map[string]bool{}
	for _, q := range gtsmsql.Queries() {
		duck[q.Name] = true
		why := WhyNoTwin(q.Name)
		switch {
		case twins[q.Name] && why != "":
			t.Errorf("%s has a Flink twin and a reason not to", q.Name)
		case !twins[q.Name] && why == "":
			t.Errorf("%s (sql/queries) has no Flink twin in flink/queries and no reason in withoutTwin", q.Name)
		}
	}
	for n := range twins {
		if !duck[n] {
			t.Errorf("flink/queries/%s.sql has no DuckDB query of that name", n)
		}
	}
	without := WithoutTwin()
	if strings.Join(without, ",") != "level2,regional" {
		t.Errorf("WithoutTwin() = %v, want [level2 regional]", without)
	}
	readme, err := os.ReadFile(filepath.Join(testutil.RepoRoot(t), "flink", "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	_, section, _ := strings.Cut(string(readme), "### Queries without a Flink twin")
	for _, n := range without {
		if !duck[n] {
			t.Errorf("WithoutTwin names %s, which sql/queries does not have", n)
		}
		if !strings.Contains(section, "`"+n+"`") {
			t.Errorf("flink/README.md's \"Queries without a Flink twin\" does not name %s", n)
		}
		if _, err := Query(n); err == nil || !strings.Contains(err.Error(), "no Flink twin") || !strings.Contains(err.Error(), WhyNoTwin(n)) {
			t.Errorf("Query(%s) error %v, want the reason", n, err)
		}
	}
}
