package main

import (
	"context"
	"fmt"
	"os"

	"github.com/earthscope/gtsm-stream/bottle"
)

// runBottle is "gtsm bottle <subcommand>"; the bottle issue extends it
// (inspect --json, archives).
func runBottle(ctx context.Context, env *environ, args []string) error {
	if len(args) == 0 || args[0] != "inspect" {
		return usageError{"usage: gtsm bottle inspect FILE..."}
	}
	fs := newFlagSet(env, "bottle inspect", "bottle inspect [flags] FILE...", "Prints the header and the first samples of each bottle file.")
	n := fs.Int("n", 5, "number of samples to print")
	if err := parseFlags(fs, args[1:]); err != nil {
		return err
	}
	for _, p := range fs.Args() {
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		f, err := bottle.Parse(p, b)
		if err != nil {
			return err
		}
		fmt.Fprintf(env.stdout, "%s: %+v\n", p, f.Header)
		for i := 0; i < *n && i < f.Len(); i++ {
			fmt.Fprintf(env.stdout, "  %d %d\n", i, f.Header.TimeMs(i))
		}
	}
	return nil
}
