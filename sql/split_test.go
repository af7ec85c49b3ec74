package gtsmsql_test

import (
	"reflect"
	"testing"

	gtsmsql "github.com/earthscope/gtsm-stream/sql"
)

func TestSplit(t *testing.T) {
	tests := []struct {
		in    string
		stmts []string
		rest  string
	}{
		{"SELECT 1", nil, "SELECT 1"},
		{"SELECT 1;", []string{"SELECT 1"}, ""},
		{" SELECT 1 ; SELECT 2;\n", []string{"SELECT 1", "SELECT 2"}, ""},
		{"SELECT 1;\nSELECT", []string{"SELECT 1"}, "SELECT"},
		{";;  ;", nil, ""},
		{"SELECT ';' ;", []string{"SELECT ';'"}, ""},
		{"SELECT 'it''s;' ;", []string{"SELECT 'it''s;'"}, ""},
		{`SELECT E'a\';b';`, []string{`SELECT E'a\';b'`}, ""},
		{`SELECT e'a\\';b';`, []string{`SELECT e'a\\'`}, "b';"},     // \\ is one backslash, so the literal ends
		{`SELECT E'x` + "\n" + `;`, nil, `SELECT E'x` + "\n" + `;`}, // unterminated literal: keep reading
		{`SELECT 'a\';b';`, []string{`SELECT 'a\'`}, "b';"},         // no E: backslash is an ordinary byte
		{`SELECT "a;b" FROM t;`, []string{`SELECT "a;b" FROM t`}, ""},
		{"SELECT 1 -- ; not the end\n;", []string{"SELECT 1 -- ; not the end"}, ""},
		{"SELECT /* ; /* nested ; */ ; */ 1;", []string{"SELECT /* ; /* nested ; */ ; */ 1"}, ""},
		{"SELECT $$a;b$$;", []string{"SELECT $$a;b$$"}, ""},
		{"SELECT $q$a;$$;b$q$;", []string{"SELECT $q$a;$$;b$q$"}, ""},
		{"SELECT $1; SELECT $2", []string{"SELECT $1"}, "SELECT $2"},
		{"SELECT 1; -- trailing comment", []string{"SELECT 1"}, ""},
		{"-- only a comment\n/* and another */", nil, ""},
		{"SELECT 1; /* unfinished", []string{"SELECT 1"}, ""},
	}
	for _, tc := range tests {
		stmts, rest := gtsmsql.Split(tc.in)
		if !reflect.DeepEqual(stmts, tc.stmts) || rest != tc.rest {
			t.Errorf("Split(%q) = %q, %q; want %q, %q", tc.in, stmts, rest, tc.stmts, tc.rest)
		}
	}
}

func TestComplete(t *testing.T) {
	for in, want := range map[string]bool{
		"SELECT 1":           false,
		"SELECT 1;":          true,
		"SELECT 1;\n":        true,
		"SELECT ';":          false,
		"SELECT 1; SELECT 2": false,
		"":                   false,
		";":                  false,
		"SELECT 1; -- done":  true,
	} {
		if got := gtsmsql.Complete(in); got != want {
			t.Errorf("Complete(%q) = %v, want %v", in, got, want)
		}
	}
}
