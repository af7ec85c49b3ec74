package pgwire

import "testing"

// TestParseCopyOptions: both Postgres option syntaxes, and what is refused.
func TestParseCopyOptions(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want copyOptions
		bad  bool
	}{
		{in: "", want: copyOptions{delim: '\t', null: `\N`}},
		{in: "WITH CSV HEADER", want: copyOptions{csv: true, header: true, delim: ',', quote: '"', escape: '"'}},
		{in: "csv header delimiter as ';' null as 'NA'", want: copyOptions{csv: true, header: true, delim: ';', null: "NA", quote: '"', escape: '"'}},
		{in: "(FORMAT csv, HEADER false, QUOTE '''', ESCAPE E'\\\\')", want: copyOptions{csv: true, delim: ',', quote: '\'', escape: '\\'}},
		{in: "(FORMAT 'text', DELIMITER '|', ENCODING 'UTF-8')", want: copyOptions{delim: '|', null: `\N`}},
		{in: "CSV FORCE QUOTE *", want: copyOptions{csv: true, delim: ',', quote: '"', escape: '"', forceAll: true}},
		{in: "(FORMAT binary)", bad: true},
		{in: "BINARY", bad: true},
		{in: "(FORMAT csv, DELIMITER ',,')", bad: true},
		{in: "(FORMAT csv, DELIMITER '\"')", bad: true},
		{in: "(QUOTE '\"')", bad: true}, // QUOTE in text mode
		{in: "(DELIMITER E'\\\\')", bad: true},
		{in: "(FORMAT csv", bad: true},
		{in: "CSV FORCE NOT NULL a", bad: true},
		{in: "(ENCODING 'LATIN1')", bad: true},
		{in: "(FREEZE true)", bad: true},
		{in: "(NULL 'unterminated)", bad: true},
	} {
		got, err := parseCopyOptions(tc.in)
		if tc.bad {
			if err == nil {
				t.Errorf("%q: accepted (%+v), want an error", tc.in, got)
			}
			continue
		}
		if err != nil || got.csv != tc.want.csv || got.header != tc.want.header || got.delim != tc.want.delim || got.null != tc.want.null ||
			got.quote != tc.want.quote || got.escape != tc.want.escape || got.forceAll != tc.want.forceAll {
			t.Errorf("%q: %+v, %v; want %+v", tc.in, got, err, tc.want)
		}
	}
}
