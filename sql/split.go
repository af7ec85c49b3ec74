package gtsmsql

import "strings"

// Split cuts SQL text into statements at semicolons that are outside string
// literals ('...', E'...' with backslash escapes, $tag$...$tag$), quoted
// identifiers ("...") and comments (-- and nested /* */). Each complete
// statement is returned trimmed and without its semicolon; blank statements
// (";;") are dropped. rest is the trimmed text after the last semicolon: an
// unfinished statement (the shell keeps reading lines until it is finished;
// a server treats it as the last statement). Comments stay in the statements
// so that DuckDB reports positions the user recognises.
//
// The SQL endpoint relies on this to run one statement per read-only
// transaction, and double-checks every piece with DuckDB's own parser, so a
// disagreement is refused rather than executed.
func Split(sqlText string) (stmts []string, rest string) {
	start := 0
	s := sqlText
	for i := 0; i < len(s); {
		c := s[i]
		switch {
		case c == ';':
			if st := strings.TrimSpace(s[start:i]); st != "" && !onlyComments(st) {
				stmts = append(stmts, st)
			}
			i++
			start = i
		case c == '\'':
			escapes := i > 0 && (s[i-1] == 'E' || s[i-1] == 'e') && (i < 2 || !isIdentByte(s[i-2]))
			i = skipQuoted(s, i, '\'', escapes)
		case c == '"':
			i = skipQuoted(s, i, '"', false)
		case c == '-' && i+1 < len(s) && s[i+1] == '-':
			j := strings.IndexByte(s[i:], '\n')
			if j < 0 {
				i = len(s)
			} else {
				i += j + 1
			}
		case c == '/' && i+1 < len(s) && s[i+1] == '*':
			i = skipBlockComment(s, i)
		case c == '$' && (i == 0 || !isIdentByte(s[i-1])):
			if tag, ok := dollarTag(s[i:]); ok {
				j := strings.Index(s[i+len(tag):], tag)
				if j < 0 {
					i = len(s)
				} else {
					i += len(tag) + j + len(tag)
				}
			} else {
				i++
			}
		default:
			i++
		}
	}
	rest = strings.TrimSpace(s[start:])
	if onlyComments(rest) {
		rest = ""
	}
	return stmts, rest
}

// Complete reports whether text holds at least one statement and nothing
// unfinished after it: the shell's signal to run what was typed.
func Complete(sqlText string) bool {
	stmts, rest := Split(sqlText)
	return len(stmts) > 0 && rest == ""
}

func isIdentByte(c byte) bool {
	return c == '_' || c >= '0' && c <= '9' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= 0x80
}

// skipQuoted returns the index after the literal opened at s[i]; a doubled
// quote is an escaped quote, and with escapes a backslash escapes any byte.
// An unterminated literal runs to the end (the statement is unfinished).
func skipQuoted(s string, i int, q byte, escapes bool) int {
	for i++; i < len(s); i++ {
		switch {
		case escapes && s[i] == '\\':
			i++
		case s[i] == q:
			if i+1 < len(s) && s[i+1] == q {
				i++
				continue
			}
			return i + 1
		}
	}
	return len(s)
}

func skipBlockComment(s string, i int) int {
	depth := 0
	for i < len(s) {
		switch {
		case strings.HasPrefix(s[i:], "/*"):
			depth++
			i += 2
		case strings.HasPrefix(s[i:], "*/"):
			depth--
			i += 2
			if depth == 0 {
				return i
			}
		default:
			i++
		}
	}
	return len(s)
}

// dollarTag recognises $$ or $name$ at the start of s ($1 is a parameter).
func dollarTag(s string) (string, bool) {
	for j := 1; j < len(s); j++ {
		c := s[j]
		if c == '$' {
			return s[:j+1], true
		}
		if !isIdentByte(c) || j == 1 && c >= '0' && c <= '9' {
			return "", false
		}
	}
	return "", false
}

// onlyComments reports whether s holds nothing but comments and blanks.
func onlyComments(s string) bool {
	for i := 0; i < len(s); {
		switch c := s[i]; {
		case c == ' ' || c == '\t' || c == '\n' || c == '\r':
			i++
		case c == '-' && i+1 < len(s) && s[i+1] == '-':
			j := strings.IndexByte(s[i:], '\n')
			if j < 0 {
				return true
			}
			i += j + 1
		case c == '/' && i+1 < len(s) && s[i+1] == '*':
			i = skipBlockComment(s, i)
		default:
			return false
		}
	}
	return true
}
