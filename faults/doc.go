// Package faults is the fault-injection suite of issue 9: it runs the real
// broker (gtsm broker), producer (gtsm produce) and processor as separate OS
// processes, injects faults (SIGKILL, broker restarts, an unavailable
// registry, poison messages, a full disk, a locked DuckDB file, bad bottle
// input) and checks that nothing is lost or duplicated. The package has no
// non-test code; see docs/reliability.md for the results.
package faults
