// Package flink holds the Flink SQL side of the comparison: the gtsm_etl table
// DDL (gtsm_etl.sql) and the named demo queries (queries/<name>.sql), the same
// names as the DuckDB queries in sql/queries. The files are what people paste
// into Flink's SQL client; they are embedded so `gtsm compare` sends exactly
// them to the SQL Gateway.
package flink

import (
	"embed"
	"fmt"
	"io/fs"
	"regexp"
	"sort"
	"strings"
)

//go:embed gtsm_etl.sql queries/*.sql
var files embed.FS

// DDL returns the script that declares gtsm_etl (and the views the queries use).
func DDL() string {
	b, err := files.ReadFile("gtsm_etl.sql")
	if err != nil { // embedded at build time: cannot happen
		panic(err)
	}
	return string(b)
}

// QueryNames lists the named queries in lexical order.
func QueryNames() []string {
	ents, err := fs.ReadDir(files, "queries")
	if err != nil {
		panic(err)
	}
	var names []string
	for _, e := range ents {
		if n, ok := strings.CutSuffix(e.Name(), ".sql"); ok {
			names = append(names, n)
		}
	}
	sort.Strings(names)
	return names
}

// withoutTwin are the named DuckDB queries (sql/queries) that have no Flink
// SQL twin, and why: TestEveryQueryHasATwinOrAReason keeps it in step with
// sql/queries and queries/.
var withoutTwin = map[string]string{
	"level2":   level2Reason,
	"regional": level2Reason,
}

const level2Reason = "Level-2 strain comes from the processor's Level-2 stage (EarthScope's " +
	"processing, in Go, from station metadata on the gtsm_metadata topic), which the Flink demo " +
	"never had; its oracle is EarthScope's own Python instead (docs/level2.md)"

// WithoutTwin lists the named DuckDB queries that have no Flink twin, in
// lexical order, and WhyNoTwin says why one of them has none ("" for a
// query that has a twin or does not exist).
func WithoutTwin() []string {
	names := make([]string, 0, len(withoutTwin))
	for n := range withoutTwin {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// WhyNoTwin says why a named DuckDB query has no Flink twin.
func WhyNoTwin(name string) string { return withoutTwin[name] }

// Query returns the Flink SQL text of a named query.
func Query(name string) (string, error) {
	b, err := files.ReadFile("queries/" + name + ".sql")
	if why := withoutTwin[name]; err != nil && why != "" {
		return "", fmt.Errorf("%s has no Flink twin, so it is not compared: %s", name, why)
	}
	if err != nil {
		return "", fmt.Errorf("no Flink query named %q (have %s)", name, strings.Join(QueryNames(), ", "))
	}
	return string(b), nil
}

// Statements splits a SQL script into statements at top-level semicolons,
// skipping '...' strings, `...` and "..." identifiers, -- and /* */ comments.
// Comments are kept with the statement that follows them; a statement that is
// only comments and blanks is dropped.
func Statements(script string) []string {
	var out []string
	start := 0
	emit := func(end int) {
		stmt := strings.TrimSpace(script[start:end])
		if stmt != "" && !onlyComments(stmt) {
			out = append(out, stmt)
		}
	}
	for i := 0; i < len(script); i++ {
		switch c := script[i]; {
		case c == '\'' || c == '`' || c == '"':
			// SQL doubles a quote to escape it: '' inside '...', so scanning to
			// the next quote and continuing handles it.
			j := strings.IndexByte(script[i+1:], c)
			if j < 0 {
				i = len(script)
			} else {
				i += j + 1
			}
		case c == '-' && strings.HasPrefix(script[i:], "--"):
			j := strings.IndexByte(script[i:], '\n')
			if j < 0 {
				i = len(script)
			} else {
				i += j
			}
		case c == '/' && strings.HasPrefix(script[i:], "/*"):
			j := strings.Index(script[i+2:], "*/")
			if j < 0 {
				i = len(script)
			} else {
				i += j + 3
			}
		case c == ';':
			emit(i)
			start = i + 1
		}
	}
	if start < len(script) {
		emit(len(script))
	}
	return out
}

func onlyComments(s string) bool {
	for _, line := range strings.Split(s, "\n") {
		line = strings.TrimSpace(line)
		if line != "" && !strings.HasPrefix(line, "--") {
			return false
		}
	}
	return true
}

// boundedLatest is the DDL's bounded-scan option that PinOffsets replaces.
var boundedLatest = regexp.MustCompile(`'scan\.bounded\.mode'\s*=\s*'latest-offset'`)

// PinOffsets returns the DDL with its bounded scan ending at the given
// offsets ('scan.bounded.mode' = 'specific-offsets', value as the Kafka
// connector reads it: "partition:0,offset:42;partition:1,offset:7") instead of
// at the offsets that are the latest when each query starts: then every query
// of a comparison reads the same messages, the ones the processor has
// applied. It fails when the DDL has no 'scan.bounded.mode' = 'latest-offset'
// to replace (a --flink-ddl of one's own).
func PinOffsets(ddl, specificOffsets string) (string, error) {
	if !boundedLatest.MatchString(ddl) {
		return "", fmt.Errorf("the Flink DDL has no 'scan.bounded.mode' = 'latest-offset' option to pin to the offsets %s", specificOffsets)
	}
	if strings.ContainsAny(specificOffsets, "'\\") {
		return "", fmt.Errorf("bad offsets %q", specificOffsets)
	}
	return boundedLatest.ReplaceAllLiteralString(ddl,
		"'scan.bounded.mode' = 'specific-offsets',\n  'scan.bounded.specific-offsets' = '"+specificOffsets+"'"), nil
}
