// Command initiator is the developer's client for the distbuild build farm;
// see package distbuild/initiator.
package main

import (
	"os"

	"distbuild/initiator"
)

func main() {
	os.Exit(initiator.Main(os.Args[1:], os.Stdout, os.Stderr))
}
