package processor

import (
	"fmt"
	"path/filepath"
	"testing"

	"github.com/earthscope/gtsm-stream/bottle"
)

// TestDuckDBThreads: the processor's database runs with DuckDB's threads
// set to Config.DuckDBThreads (1 unless set), and the stream lands through
// the C appender (chunks.go) whatever the setting.
func TestDuckDBThreads(t *testing.T) {
	st := startStack(t, 1)
	recs := synth("THR1", bottle.Min, 1625097600000, 3000)
	if err := st.publishErr(recs); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		set, want int
	}{{0, 1}, {2, 2}} {
		t.Run(fmt.Sprintf("set %d", tc.set), func(t *testing.T) {
			cfg := st.config(filepath.Join(t.TempDir(), "threads.duckdb"), fmt.Sprintf("threads-%d", tc.set))
			cfg.DuckDBThreads = tc.set
			r := startProc(t, cfg)
			defer r.stop(t)
			r.wait(t)
			if r.p.sink.chunks[bottle.Min] == nil {
				t.Error("the sink has no C appender")
			}
			var threads, rows int
			if err := r.p.DB().QueryRow(`SELECT current_setting('threads')::INTEGER, (SELECT count(*) FROM gtsm_etl)`).Scan(&threads, &rows); err != nil {
				t.Fatal(err)
			}
			if threads != tc.want || rows != len(recs) {
				t.Errorf("threads %d, %d rows; want %d, %d", threads, rows, tc.want, len(recs))
			}
		})
	}
}
