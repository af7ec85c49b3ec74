package pgwire

import (
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/duckdb/duckdb-go/v2/mapping"
)

// FuzzSplitAgreesWithDuckDB: wherever DuckDB's parser accepts the text, our
// splitter finds the same number of statements (the endpoint refuses a
// piece DuckDB would run as several, so a disagreement is an error for
// the user, never an escape; this finds such usability bugs).
func FuzzSplitAgreesWithDuckDB(f *testing.F) {
	for _, s := range []string{
		"SELECT 1; SELECT 2", "SELECT ';'", "SELECT 1 -- ;\n", "SELECT $$a;b$$", "SELECT 'a''; b'",
		`SELECT E'a\';b'`, `SELECT "a;b"`, "/* ; */ SELECT 1", "SELECT $q$;$q$; SELECT 2", "SELECT 1;;",
		"SELECT /* /* ; */ */ 1", "SELECT DATE'2021-01-01'; SELECT 2", "SELECT $1; SELECT 3",
	} {
		f.Add(s)
	}
	p, err := newParser()
	if err != nil {
		f.Fatal(err)
	}
	defer p.close()
	f.Fuzz(func(t *testing.T, s string) {
		if !utf8.ValidString(s) || strings.ContainsRune(s, 0) || commentDepth(s) > maxCommentDepth {
			return // the endpoint refuses deep comment nesting before DuckDB parses it
		}
		var st mapping.ExtractedStatements
		n := mapping.ExtractStatements(p.conn, s, &st)
		msg := mapping.ExtractStatementsError(st)
		mapping.DestroyExtracted(&st)
		if n == 0 || msg != "" {
			return // DuckDB rejects or finds nothing: the endpoint reports its error
		}
		stmts, rest := splitStatements(s)
		got := len(stmts)
		if rest != "" {
			got++
		}
		if got != int(n) {
			t.Errorf("%q: splitter finds %d statements %q + %q, DuckDB %d", s, got, stmts, rest, n)
		}
	})
}
