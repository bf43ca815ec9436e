// Command gendefs writes a generated definitions tree into a directory, for
// the demo and for trying distbuild on a realistically sized repository.
package main

import (
	"fmt"
	"os"

	"github.com/spf13/pflag"

	"distbuild/definitions/definitionstest"
)

func main() {
	cfg := definitionstest.Realistic
	pflag.IntVar(&cfg.Strata, "strata", cfg.Strata, "number of strata")
	pflag.IntVar(&cfg.Chunks, "chunks", cfg.Chunks, "number of chunks spread over the strata")
	pflag.IntVar(&cfg.SubsetChunks, "subset-chunks", cfg.SubsetChunks, "approximate chunks in systems/subset-system.morph (0 for none)")
	pflag.Uint64Var(&cfg.Seed, "seed", cfg.Seed, "random seed; the same seed gives the same tree")
	pflag.Usage = func() {
		fmt.Fprintf(os.Stderr, "Usage: gendefs [flags] DIR\n\nWrites a generated Baserock-style definitions tree into DIR.\n\nFlags:\n%s", pflag.CommandLine.FlagUsages())
	}
	pflag.Parse()
	if pflag.NArg() != 1 || cfg.Strata < 1 || cfg.Chunks < cfg.Strata {
		pflag.Usage()
		os.Exit(2)
	}
	tree := definitionstest.Generate(cfg)
	if err := definitionstest.WriteDir(pflag.Arg(0), tree.FS); err != nil {
		fmt.Fprintf(os.Stderr, "gendefs: %v\n", err)
		os.Exit(1)
	}
	fmt.Printf("wrote %d files: %s", len(tree.FS), tree.FullSystem)
	if tree.SubsetSystem != "" {
		fmt.Printf(", %s (%d chunks)", tree.SubsetSystem, tree.SubsetChunkCount)
	}
	fmt.Println()
}
