package pgwire

import (
	"fmt"
	"regexp"
	"strings"
)

func errorf(format string, args ...any) error { return fmt.Errorf(format, args...) }

// The statement guard runs before DuckDB sees a statement (before it is even
// prepared: preparing EXPORT DATABASE creates its directory). It is the
// second of two locks: the first is DuckDB's own (gtsmsql.Lockdown: no file,
// URL, ATTACH or extension outside the database, configuration locked), and
// after preparing, DuckDB's statement type must agree with the guard.
//
// It lets through only statements that start like a query, looks inside
// EXPLAIN [ANALYZE] (which runs its statement), and refuses the few
// functions that change state from inside a SELECT: checkpoint() writes the
// file even in a read-only transaction, query() and
// json_execute_serialized_sql() run SQL the guard never saw, setseed() and
// write_log() change the connection or the log.

// queryWords start statements that DuckDB plans as SELECT.
var queryWords = map[string]bool{
	"SELECT": true, "WITH": true, "FROM": true, "VALUES": true, "TABLE": true,
	"SHOW": true, "DESCRIBE": true, "DESC": true, "SUMMARIZE": true,
	"PIVOT": true, "PIVOT_WIDER": true, "UNPIVOT": true, "PIVOT_LONGER": true,
}

// deniedFunc matches a call of a function that changes state. The text it
// runs on has comments blanked and double quotes dropped (see normalize),
// so "checkpoint"/**/() and system.main.checkpoint() match too.
var deniedFunc = regexp.MustCompile(`(?i)\b(` +
	`[a-z_]*checkpoint[a-z_]*|query|query_table|json_execute_serialized_sql|` +
	`setseed|write_log|truncate_duckdb_logs|(enable|disable)_[a-z_]+|` +
	`import_database|copy_database|install_extension|load_extension` +
	`)\s*\(`)

// guard returns nil when text may be prepared: a query, or EXPLAIN of one,
// calling no state-changing function.
func guard(text string) error {
	// The text is read three ways (as is, and with comments blanked under
	// standard and backslash-escaped strings), so a lexing difference
	// between the guard and DuckDB cannot hide a call.
	for _, norm := range []string{strings.ReplaceAll(text, `"`, ""), normalize(text, false), normalize(text, true)} {
		if m := deniedFunc.FindStringSubmatch(norm); m != nil {
			return pgError(errorf("read-only SQL endpoint: function %s() is refused (it changes state)", strings.ToLower(m[1])), codeReadOnly, "")
		}
	}
	return guardShape(text, 0)
}

func guardShape(text string, depth int) error {
	if depth > 8 {
		return pgError(errorf("read-only SQL endpoint: EXPLAIN nested too deep"), codeReadOnly, "")
	}
	w := leadingWord(text)
	switch {
	case queryWords[w]:
		return nil
	case w == "EXPLAIN":
		inner, ok := explainInner(text)
		if !ok {
			return pgError(errorf("read-only SQL endpoint: cannot tell what this EXPLAIN explains"), codeReadOnly, "")
		}
		return guardShape(inner, depth+1)
	}
	return refused(text)
}

// leadingWord is the first keyword, upper case, after comments, white space
// and opening parentheses ("((SELECT 1))" starts with SELECT).
func leadingWord(text string) string {
	s := text
	for {
		s = strings.TrimLeft(stripLeadingComments(s), " \t\r\n(")
		if t := stripLeadingComments(s); t == s {
			break
		}
	}
	i := 0
	for i < len(s) && isWordByte(s[i]) {
		i++
	}
	return strings.ToUpper(s[:i])
}

func isWordByte(c byte) bool {
	return c == '_' || c >= '0' && c <= '9' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z'
}

// explainInner is the statement an EXPLAIN explains: after EXPLAIN come
// ANALYZE/ANALYSE/VERBOSE words and at most one parenthesised option list
// (unless the parentheses hold the whole statement: EXPLAIN (SELECT 1)).
// DuckDB later prepares this inner text on its own, and it must be a
// SELECT: a text the guard mis-cut fails there and is refused.
func explainInner(text string) (string, bool) {
	s := stripLeadingComments(text)
	s = strings.TrimSpace(s[len("EXPLAIN"):])
	for {
		s = stripLeadingComments(s)
		w := leadingWordNoParen(s)
		switch w {
		case "ANALYZE", "ANALYSE", "VERBOSE":
			s = s[len(w):]
			continue
		}
		break
	}
	if strings.HasPrefix(s, "(") {
		end := matchParen(s)
		if end < 0 {
			return "", false
		}
		rest := strings.TrimSpace(stripLeadingComments(s[end+1:]))
		if rest != "" && !strings.HasPrefix(rest, ";") {
			s = rest // the parentheses were options
		}
	}
	return s, strings.TrimSpace(s) != ""
}

func leadingWordNoParen(s string) string {
	i := 0
	for i < len(s) && isWordByte(s[i]) {
		i++
	}
	return strings.ToUpper(s[:i])
}

// matchParen returns the index of the parenthesis closing s[0], skipping
// string literals and comments, or -1.
func matchParen(s string) int {
	depth := 0
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c == '(':
			depth++
		case c == ')':
			depth--
			if depth == 0 {
				return i
			}
		case c == '\'' || c == '"':
			j := strings.IndexByte(s[i+1:], c)
			if j < 0 {
				return -1
			}
			i += j + 1
		case c == '-' && strings.HasPrefix(s[i:], "--"):
			j := strings.IndexByte(s[i:], '\n')
			if j < 0 {
				return -1
			}
			i += j
		case c == '/' && strings.HasPrefix(s[i:], "/*"):
			j := strings.Index(s[i+2:], "*/")
			if j < 0 {
				return -1
			}
			i += j + 3
		}
	}
	return -1
}

// normalize blanks comments and drops double quotes (so quoted identifiers
// read like plain ones), keeping string literals as they are: a comment
// marker inside a string must not hide the code after it. With escapes, a
// backslash escapes the next byte inside strings (E'...').
func normalize(s string, escapes bool) string {
	var b strings.Builder
	b.Grow(len(s))
	for i := 0; i < len(s); {
		c := s[i]
		switch {
		case c == '\'':
			j := i + 1
			for j < len(s) {
				if escapes && s[j] == '\\' && j+1 < len(s) {
					j += 2 // E'' strings
					continue
				}
				if s[j] == '\'' {
					break
				}
				j++
			}
			end := min(j+1, len(s))
			b.WriteString(s[i:end])
			i = end
		case c == '"':
			i++
		case c == '-' && strings.HasPrefix(s[i:], "--"):
			j := strings.IndexByte(s[i:], '\n')
			if j < 0 {
				j = len(s) - i
			}
			b.WriteByte(' ')
			i += j
		case c == '/' && strings.HasPrefix(s[i:], "/*"):
			// DuckDB nests block comments.
			depth, j := 0, i
			for j < len(s) {
				if strings.HasPrefix(s[j:], "/*") {
					depth++
					j += 2
				} else if strings.HasPrefix(s[j:], "*/") {
					depth--
					j += 2
					if depth == 0 {
						break
					}
				} else {
					j++
				}
			}
			b.WriteByte(' ')
			i = j
		default:
			b.WriteByte(c)
			i++
		}
	}
	return b.String()
}
