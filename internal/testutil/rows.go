package testutil

import (
	"database/sql"
	"strings"
	"testing"
)

// QueryLines runs q on db and returns each row as one line, its cells
// formatted by cell and joined with "|", in the order the rows come. Tests
// compare tables as such lines (testutil.DiffLines); each caller chooses how
// a value is written (NULL, floats, times, blobs), the scanning is shared.
func QueryLines(t testing.TB, db *sql.DB, q string, cell func(v any) string) []string {
	t.Helper()
	rows, err := db.Query(q)
	if err != nil {
		t.Fatalf("%s: %v", q, err)
	}
	defer rows.Close()
	cols, err := rows.Columns()
	if err != nil {
		t.Fatalf("%s: columns: %v", q, err)
	}
	vals := make([]any, len(cols))
	ptrs := make([]any, len(cols))
	for i := range vals {
		ptrs[i] = &vals[i]
	}
	var out []string
	parts := make([]string, len(cols))
	for rows.Next() {
		if err := rows.Scan(ptrs...); err != nil {
			t.Fatalf("%s: row %d: %v", q, len(out)+1, err)
		}
		for i, v := range vals {
			parts[i] = cell(v)
		}
		out = append(out, strings.Join(parts, "|"))
	}
	if err := rows.Err(); err != nil {
		t.Fatalf("%s: after %d rows: %v", q, len(out), err)
	}
	return out
}
