// Command versioncmd is built by the package's test, as a real binary with
// real build information, to print what --version prints.
package main

import (
	"os"

	"github.com/spf13/pflag"

	"distbuild/internal/version"
)

func main() {
	fs := pflag.NewFlagSet("versioncmd", pflag.ExitOnError)
	show := version.Register(fs)
	_ = fs.Parse(os.Args[1:])
	if *show {
		version.Print(os.Stdout, "versioncmd")
		return
	}
	os.Exit(2)
}
