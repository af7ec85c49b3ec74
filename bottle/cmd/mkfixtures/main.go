// Command mkfixtures writes the project's bottle fixtures (package
// bottle/fixture) into a directory. From the repository root:
//
//	go run ./bottle/cmd/mkfixtures -out testdata
//
// The output is deterministic; TestFixturesCurrent fails when testdata/
// differs from it. With -archives DIR it also writes the same sets as
// EarthScope-shaped archives (never committed; tests build them at run time):
//
//	go run ./bottle/cmd/mkfixtures -out testdata -archives /tmp/b009
package main

import (
	"flag"
	"fmt"
	"os"
	"strings"

	"github.com/earthscope/gtsm-stream/bottle/fixture"
)

func main() {
	out := flag.String("out", "testdata", "directory to write day/, hour/, min/ and formats/ into")
	archives := flag.String("archives", "", "also write "+strings.Join(fixture.ArchiveNames, ", ")+" into this directory")
	flag.Parse()
	if err := fixture.Write(*out); err != nil {
		fmt.Fprintln(os.Stderr, "mkfixtures:", err)
		os.Exit(1)
	}
	if *archives != "" {
		if err := fixture.WriteArchives(*archives); err != nil {
			fmt.Fprintln(os.Stderr, "mkfixtures:", err)
			os.Exit(1)
		}
	}
}
