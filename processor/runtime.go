package processor

import (
	"os"
	"runtime/debug"
)

// TuneRuntime sets the Go runtime's soft memory limit for a processor
// process to 500MiB, unless the operator set GOMEMLIMIT. `gtsm process`
// calls it at start, and so do BenchmarkDrainSiteDay's processor children,
// so that they measure what the command runs. It is process-wide, so a
// library user decides whether to call it.
//
// Why: goka keeps ~500 B per message not yet in DuckDB (the context of each
// deferred commit) and the GC let the heap grow to twice that: 1,010-1,086
// MB max RSS draining 4 site-days, 812 MB with 500MiB (docs/performance.md,
// issue 16). A higher GOGC under the limit was measured too (GOGC 300:
// 145k-181k records/CPU-s against 159k-174k at 100, load 10-18): no gain
// worth its memory, since the limit, not GOGC, paces the GC in a drain.
func TuneRuntime() {
	if os.Getenv("GOMEMLIMIT") == "" {
		debug.SetMemoryLimit(500 << 20)
	}
}
