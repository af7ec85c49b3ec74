package metadata

import (
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
)

// LoadFiles reads network tables and station READMEs and combines them into
// one Station per table row, sorted by site. A file whose name ends in
// ".README.txt" is a station README for the site its name starts with
// (B004.README.txt is B004's); every other file is a network table. A README
// for a site no table lists is an error: without the table there are no
// reference counts or gap to linearize with.
func LoadFiles(paths []string) ([]Station, error) {
	rows := map[string]TableRow{}
	readmes := map[string]*Readme{}
	for _, p := range paths {
		f, err := os.Open(p)
		if err != nil {
			return nil, fmt.Errorf("metadata: %w", err)
		}
		base := filepath.Base(p)
		if site, ok := strings.CutSuffix(base, ".README.txt"); ok {
			rd, err := ParseReadme(p, f)
			f.Close()
			if err != nil {
				return nil, err
			}
			if prev, dup := readmes[site]; dup {
				return nil, fmt.Errorf("%s: second README for %s (first %s)", p, site, prev.File)
			}
			readmes[site] = rd
			continue
		}
		tr, err := ParseTable(p, f)
		f.Close()
		if err != nil {
			return nil, err
		}
		for _, r := range tr {
			if prev, dup := rows[r.Site]; dup {
				return nil, fmt.Errorf("%s:%d: station %s already in %s:%d", r.File, r.Line, r.Site, prev.File, prev.Line)
			}
			rows[r.Site] = r
		}
	}
	for site, rd := range readmes {
		if _, ok := rows[site]; !ok {
			return nil, fmt.Errorf("%s: station %s is in no network table (bsm_metadata.txt) loaded with it", rd.File, site)
		}
	}
	out := make([]Station, 0, len(rows))
	for site, r := range rows {
		st := Combine(r, readmes[site])
		if err := Validate(&st); err != nil {
			return nil, fmt.Errorf("%s: %w", strings.Join(st.Sources, ", "), err)
		}
		out = append(out, st)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Site < out[j].Site })
	return out, nil
}
