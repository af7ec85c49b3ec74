package compare

import (
	"fmt"
	"io"
	"sort"
	"strings"
	"text/tabwriter"
	"time"
)

// Diff is the comparison of one query's two results.
type Diff struct {
	Query               string
	LeftName, RightName string
	LeftRows, RightRows int
	// Columns are those both sides have, in the left side's order; the
	// others are listed and make the results differ.
	Columns                     []string
	OnlyLeftCols, OnlyRightCols []string
	Equal                       int       // rows present on both sides (as a multiset)
	Changed                     []RowPair // rows with the same key columns but other values
	OnlyLeft, OnlyRight         [][]string
	key                         []bool // Columns[i] is a key (text or time) column
}

// RowPair is a left and a right row that agree on the key columns.
type RowPair struct{ Left, Right []string }

// Same reports whether both results are equal after normalization.
func (d *Diff) Same() bool {
	return len(d.OnlyLeftCols) == 0 && len(d.OnlyRightCols) == 0 &&
		len(d.Changed) == 0 && len(d.OnlyLeft) == 0 && len(d.OnlyRight) == 0
}

// Compare normalizes two results of the query and diffs them as multisets of
// rows over the columns they share (matched by name, case-insensitively).
// Rows left over on both sides are paired when their key columns (those
// holding only text or timestamps, e.g. site, session, channel,
// window_start) are equal, so a changed count shows as one changed row.
func Compare(query, leftName string, left *Table, rightName string, right *Table, o Options) *Diff {
	d := &Diff{Query: query, LeftName: leftName, RightName: rightName,
		LeftRows: len(left.Rows), RightRows: len(right.Rows)}
	rightIdx := map[string]int{}
	for i, c := range right.Columns {
		rightIdx[strings.ToLower(c)] = i
	}
	var li, ri []int
	seen := map[string]bool{}
	for i, c := range left.Columns {
		j, ok := rightIdx[strings.ToLower(c)]
		if !ok {
			d.OnlyLeftCols = append(d.OnlyLeftCols, c)
			continue
		}
		seen[strings.ToLower(c)] = true
		d.Columns = append(d.Columns, c)
		li, ri = append(li, i), append(ri, j)
	}
	for _, c := range right.Columns {
		if !seen[strings.ToLower(c)] {
			d.OnlyRightCols = append(d.OnlyRightCols, c)
		}
	}

	d.key = make([]bool, len(d.Columns))
	for k := range d.Columns {
		d.key[k] = isKey(left.Rows, li[k]) && isKey(right.Rows, ri[k])
	}
	lrows, rrows := render(left.Rows, li, o), render(right.Rows, ri, o)

	// Multiset difference over sorted rows.
	var onlyL, onlyR [][]string
	i, j := 0, 0
	for i < len(lrows) || j < len(rrows) {
		switch {
		case j == len(rrows) || i < len(lrows) && less(lrows[i], rrows[j]):
			onlyL = append(onlyL, lrows[i])
			i++
		case i == len(lrows) || less(rrows[j], lrows[i]):
			onlyR = append(onlyR, rrows[j])
			j++
		default:
			d.Equal++
			i++
			j++
		}
	}

	// Pair what is left by key, in order.
	byKey := map[string][]int{}
	for n, r := range onlyR {
		k := d.keyOf(r)
		byKey[k] = append(byKey[k], n)
	}
	usedR := make([]bool, len(onlyR))
	for _, l := range onlyL {
		k := d.keyOf(l)
		if q := byKey[k]; len(q) > 0 && d.hasValueColumns() {
			byKey[k] = q[1:]
			usedR[q[0]] = true
			d.Changed = append(d.Changed, RowPair{l, onlyR[q[0]]})
			continue
		}
		d.OnlyLeft = append(d.OnlyLeft, l)
	}
	for n, r := range onlyR {
		if !usedR[n] {
			d.OnlyRight = append(d.OnlyRight, r)
		}
	}
	return d
}

func (d *Diff) hasValueColumns() bool {
	for _, k := range d.key {
		if !k {
			return true
		}
	}
	return false
}

func (d *Diff) keyOf(row []string) string {
	var b strings.Builder
	for k, isKey := range d.key {
		if isKey {
			b.WriteString(row[k])
			b.WriteByte(0)
		}
	}
	return b.String()
}

// isKey: a column holding only text, timestamps or NULL.
func isKey(rows [][]any, col int) bool {
	for _, r := range rows {
		switch r[col].(type) {
		case nil, string, time.Time:
		default:
			return false
		}
	}
	return true
}

func render(rows [][]any, cols []int, o Options) [][]string {
	out := make([][]string, len(rows))
	for n, r := range rows {
		s := make([]string, len(cols))
		for k, c := range cols {
			s[k] = o.Cell(r[c])
		}
		out[n] = s
	}
	sort.Slice(out, func(a, b int) bool { return less(out[a], out[b]) })
	return out
}

func less(a, b []string) bool {
	for k := range a {
		if a[k] != b[k] {
			return a[k] < b[k]
		}
	}
	return false
}

// Write prints a one-line summary, and for a difference the differing rows:
// a changed row as its key then its columns side by side (marked "<>" where
// they differ), rows only on one side prefixed with "<" (left) or ">" (right).
// At most maxRows rows are printed per kind (0: no limit).
func (d *Diff) Write(w io.Writer, maxRows int) error {
	if d.Same() {
		_, err := fmt.Fprintf(w, "%s: same (%d rows)\n", d.Query, d.LeftRows)
		return err
	}
	fmt.Fprintf(w, "%s: DIFFERENT: %d rows changed, %d only in %s, %d only in %s, %d equal (%s %d rows, %s %d rows)\n",
		d.Query, len(d.Changed), len(d.OnlyLeft), d.LeftName, len(d.OnlyRight), d.RightName, d.Equal,
		d.LeftName, d.LeftRows, d.RightName, d.RightRows)
	if len(d.OnlyLeftCols) > 0 {
		fmt.Fprintf(w, "  columns only in %s: %s\n", d.LeftName, strings.Join(d.OnlyLeftCols, ", "))
	}
	if len(d.OnlyRightCols) > 0 {
		fmt.Fprintf(w, "  columns only in %s: %s\n", d.RightName, strings.Join(d.OnlyRightCols, ", "))
	}
	limit := func(n int) int {
		if maxRows > 0 && n > maxRows {
			return maxRows
		}
		return n
	}
	for _, p := range d.Changed[:limit(len(d.Changed))] {
		fmt.Fprintf(w, "  ! %s\n", d.keyString(p.Left))
		tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
		fmt.Fprintf(tw, "      column\t%s\t%s\t\n", d.LeftName, d.RightName)
		for k, c := range d.Columns {
			if d.key[k] {
				continue
			}
			mark := ""
			if p.Left[k] != p.Right[k] {
				mark = "<>"
			}
			fmt.Fprintf(tw, "      %s\t%s\t%s\t%s\n", c, p.Left[k], p.Right[k], mark)
		}
		tw.Flush()
	}
	more(w, len(d.Changed), maxRows, "changed rows")
	for _, r := range d.OnlyLeft[:limit(len(d.OnlyLeft))] {
		fmt.Fprintf(w, "  < only in %s: %s\n", d.LeftName, d.rowString(r))
	}
	more(w, len(d.OnlyLeft), maxRows, "rows only in "+d.LeftName)
	for _, r := range d.OnlyRight[:limit(len(d.OnlyRight))] {
		fmt.Fprintf(w, "  > only in %s: %s\n", d.RightName, d.rowString(r))
	}
	more(w, len(d.OnlyRight), maxRows, "rows only in "+d.RightName)
	return nil
}

func more(w io.Writer, n, max int, what string) {
	if max > 0 && n > max {
		fmt.Fprintf(w, "  ... and %d more %s\n", n-max, what)
	}
}

func (d *Diff) keyString(row []string) string {
	var parts []string
	for k, c := range d.Columns {
		if d.key[k] {
			parts = append(parts, c+"="+row[k])
		}
	}
	return strings.Join(parts, " ")
}

func (d *Diff) rowString(row []string) string {
	parts := make([]string, len(row))
	for k, c := range d.Columns {
		parts[k] = c + "=" + row[k]
	}
	return strings.Join(parts, " ")
}
