package gtsmsql

import (
	"embed"
	"fmt"
	"io/fs"
	"sort"
	"strings"
)

// Named demo queries live in queries/<name>.sql, one statement each, with a
// header of "--" comment lines:
//
//	-- description: one line saying what the result is.
//	-- param: $1 site  what the parameter means (NULL = its default).
//	-- any other comment lines: notes for the reader.
//
// Parameters are positional ($1, $2, ...) and written with a cast
// ($1::VARCHAR) so DuckDB knows their type when a client prepares the query
// without values (the Postgres extended protocol does exactly that). An
// omitted argument is bound as NULL, which every query documents as "all".
// The same names exist as Flink SQL in flink/queries/ (without parameters).
//
//go:embed queries/*.sql
var queriesFS embed.FS

// Query is one named query.
type Query struct {
	Name        string  // file name without .sql, e.g. "hourly"
	Description string  // the "-- description:" line
	Params      []Param // the "-- param:" lines, in order ($1 first)
	SQL         string  // the whole file, header comments included
}

// Param is one positional parameter of a named query.
type Param struct {
	Name        string // e.g. "site"
	Description string
}

// Usage is a one-line synopsis such as "hourly [site]".
func (q Query) Usage() string {
	s := q.Name
	for _, p := range q.Params {
		s += " [" + p.Name + "]"
	}
	return s
}

// Args turns the words typed after a query name into bind arguments: one per
// parameter, nil (SQL NULL) for those not given. More words than parameters
// is an error that shows the usage.
func (q Query) Args(words []string) ([]any, error) {
	if len(words) > len(q.Params) {
		return nil, fmt.Errorf("query %s takes %d argument(s), got %d: usage: %s", q.Name, len(q.Params), len(words), q.Usage())
	}
	args := make([]any, len(q.Params))
	for i, w := range words {
		args[i] = w
	}
	return args, nil
}

// Queries returns every named query, sorted by name.
func Queries() []Query {
	qs, err := loadQueries(queriesFS)
	if err != nil {
		// The files are embedded and checked by the package tests, so this
		// is a build defect, not a run-time condition.
		panic(err)
	}
	return qs
}

// QueryByName returns the named query, or an error that lists the valid names.
func QueryByName(name string) (Query, error) {
	qs := Queries()
	names := make([]string, len(qs))
	for i, q := range qs {
		if q.Name == name {
			return q, nil
		}
		names[i] = q.Name
	}
	return Query{}, fmt.Errorf("no query named %q; valid names: %s", name, strings.Join(names, ", "))
}

func loadQueries(fsys fs.FS) ([]Query, error) {
	paths, err := fs.Glob(fsys, "queries/*.sql")
	if err != nil {
		return nil, err
	}
	var qs []Query
	for _, p := range paths {
		b, err := fs.ReadFile(fsys, p)
		if err != nil {
			return nil, fmt.Errorf("read %s: %w", p, err)
		}
		q, err := parseQuery(strings.TrimSuffix(p[len("queries/"):], ".sql"), string(b))
		if err != nil {
			return nil, fmt.Errorf("%s: %w", p, err)
		}
		qs = append(qs, q)
	}
	sort.Slice(qs, func(i, j int) bool { return qs[i].Name < qs[j].Name })
	return qs, nil
}

func parseQuery(name, text string) (Query, error) {
	q := Query{Name: name, SQL: strings.TrimSpace(text)}
	for line := range strings.SplitSeq(text, "\n") {
		line = strings.TrimSpace(line)
		if !strings.HasPrefix(line, "--") {
			break // the header ends at the first SQL line
		}
		body := strings.TrimSpace(strings.TrimPrefix(line, "--"))
		switch {
		case strings.HasPrefix(body, "description:"):
			q.Description = strings.TrimSpace(strings.TrimPrefix(body, "description:"))
		case strings.HasPrefix(body, "param:"):
			f := strings.Fields(strings.TrimPrefix(body, "param:"))
			want := fmt.Sprintf("$%d", len(q.Params)+1)
			if len(f) < 2 || f[0] != want {
				return q, fmt.Errorf("param line %q: want %q, a name and a description", line, "-- param: "+want+" name description")
			}
			q.Params = append(q.Params, Param{Name: f[1], Description: strings.Join(f[2:], " ")})
		}
	}
	if q.Description == "" {
		return q, fmt.Errorf("missing \"-- description:\" header line")
	}
	stmts, rest := Split(q.SQL)
	if len(stmts)+btoi(rest != "") != 1 {
		return q, fmt.Errorf("want exactly one statement, found %d", len(stmts)+btoi(rest != ""))
	}
	return q, nil
}

func btoi(b bool) int {
	if b {
		return 1
	}
	return 0
}
