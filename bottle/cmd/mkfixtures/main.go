// Command mkfixtures writes the project's bottle fixtures (package
// bottle/fixture) into a directory. From the repository root:
//
//	go run ./bottle/cmd/mkfixtures -out testdata
//
// The output is deterministic; TestFixturesCurrent fails when testdata/
// differs from it.
package main

import (
	"flag"
	"fmt"
	"os"

	"github.com/earthscope/gtsm-stream/bottle/fixture"
)

func main() {
	out := flag.String("out", "testdata", "directory to write day/, hour/, min/ and formats/ into")
	flag.Parse()
	if err := fixture.Write(*out); err != nil {
		fmt.Fprintln(os.Stderr, "mkfixtures:", err)
		os.Exit(1)
	}
}
