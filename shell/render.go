package shell

import (
	"bufio"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"strconv"
	"strings"
	"unicode/utf8"
)

// Render writes one result in the given mode.
//
//	table: aligned columns, numbers right-aligned, NULL shown as NULL, "(N rows)",
//	       doubles to DoubleDigits significant digits (48116515.1667, not
//	       48116515.166666664: the digits a person reads)
//	csv:   RFC 4180 with a header line; NULL is an empty field
//	json:  an array with one object per row, one row per line; numbers and
//	       booleans unquoted, NULL as null
//	line:  "column = value" per line, a blank line between rows
func Render(w io.Writer, mode Mode, r *Result) error {
	bw := bufio.NewWriter(w)
	switch mode {
	case ModeCSV:
		renderCSV(bw, r)
	case ModeJSON:
		renderJSON(bw, r)
	case ModeLine:
		renderLine(bw, r)
	default:
		renderTable(bw, r)
	}
	return bw.Flush()
}

// DoubleDigits is how many significant digits table mode shows of a FLOAT or
// DOUBLE: 12 keep a strain count near 5e7 to 1e-4 count and any value to a
// relative 1e-12, more than the data holds, without the float noise of the
// last digits; csv, json and line print every digit the type holds (the
// shortest text that reads back as the same double), as psql does.
const DoubleDigits = 12

// displayDouble rounds a double's text to DoubleDigits significant digits;
// text that is not a number (NaN, inf spelled otherwise) is kept.
func displayDouble(text string) string {
	f, err := strconv.ParseFloat(text, 64)
	if err != nil || math.IsInf(f, 0) || math.IsNaN(f) {
		return text
	}
	return strconv.FormatFloat(f, 'g', DoubleDigits, 64)
}

func cellText(c Cell) string {
	if c.Null {
		return "NULL"
	}
	return c.Text
}

func width(s string) int { return utf8.RuneCountInString(s) }

func renderTable(w *bufio.Writer, r *Result) {
	if len(r.Columns) == 0 {
		return
	}
	widths := make([]int, len(r.Columns))
	for i, c := range r.Columns {
		widths[i] = width(c.Name)
	}
	// Doubles are shown rounded (DoubleDigits); everything else as it is.
	show := func(i int, c Cell) string {
		if r.Columns[i].Double && !c.Null {
			return displayDouble(c.Text)
		}
		return oneLine(cellText(c)) // multi-line values on one line, escaped
	}
	for _, row := range r.Rows {
		for i, c := range row {
			widths[i] = max(widths[i], width(show(i, c)))
		}
	}
	pad := func(s string, n int, right bool) string {
		gap := strings.Repeat(" ", n-width(s))
		if right {
			return gap + s
		}
		return s + gap
	}
	var line []string
	for i, c := range r.Columns {
		line = append(line, pad(c.Name, widths[i], false))
	}
	w.WriteString(strings.TrimRight(strings.Join(line, " | "), " ") + "\n")
	line = line[:0]
	for _, n := range widths {
		line = append(line, strings.Repeat("-", n))
	}
	w.WriteString(strings.Join(line, "-+-") + "\n")
	for _, row := range r.Rows {
		line = line[:0]
		for i, c := range row {
			line = append(line, pad(show(i, c), widths[i], r.Columns[i].Kind == KindNumber && !c.Null))
		}
		w.WriteString(strings.TrimRight(strings.Join(line, " | "), " ") + "\n")
	}
	if len(r.Rows) == 1 {
		w.WriteString("(1 row)\n")
	} else {
		fmt.Fprintf(w, "(%d rows)\n", len(r.Rows))
	}
}

func oneLine(s string) string {
	if !strings.ContainsAny(s, "\n\r\t") {
		return s
	}
	return strings.NewReplacer("\n", `\n`, "\r", `\r`, "\t", `\t`).Replace(s)
}

func renderCSV(w *bufio.Writer, r *Result) {
	cw := csv.NewWriter(w)
	names := make([]string, len(r.Columns))
	for i, c := range r.Columns {
		names[i] = c.Name
	}
	cw.Write(names)
	rec := make([]string, len(r.Columns))
	for _, row := range r.Rows {
		for i, c := range row {
			rec[i] = c.Text // NULL: empty
		}
		cw.Write(rec)
	}
	cw.Flush()
}

func renderJSON(w *bufio.Writer, r *Result) {
	w.WriteString("[")
	for ri, row := range r.Rows {
		if ri > 0 {
			w.WriteString(",\n")
		}
		w.WriteString("{")
		for i, c := range row {
			if i > 0 {
				w.WriteString(",")
			}
			k, _ := json.Marshal(r.Columns[i].Name)
			w.Write(k)
			w.WriteString(":")
			w.WriteString(jsonValue(r.Columns[i].Kind, c))
		}
		w.WriteString("}")
	}
	w.WriteString("]\n")
}

func jsonValue(k Kind, c Cell) string {
	if c.Null {
		return "null"
	}
	switch k {
	case KindBool:
		return c.Text
	case KindNumber:
		// json has no NaN/Infinity: those stay strings.
		var f float64
		if json.Unmarshal([]byte(c.Text), &f) == nil {
			return c.Text
		}
	}
	b, _ := json.Marshal(c.Text)
	return string(b)
}

func renderLine(w *bufio.Writer, r *Result) {
	n := 0
	for _, c := range r.Columns {
		n = max(n, width(c.Name))
	}
	for ri, row := range r.Rows {
		if ri > 0 {
			w.WriteString("\n")
		}
		for i, c := range row {
			fmt.Fprintf(w, "%*s = %s\n", n, r.Columns[i].Name, cellText(c))
		}
	}
}
