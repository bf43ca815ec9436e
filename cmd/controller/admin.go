package main

import (
	"crypto/ed25519"
	"fmt"
	"io"
	"path/filepath"

	"github.com/spf13/pflag"

	"distbuild/auth"
	"distbuild/manifestsig"
)

const adminAbout = `Usage:
  controller worker add NAME [--public-key KEY]    register a worker; prints its token
  controller worker remove NAME                    revoke a worker's token
  controller worker list                           list registered workers
  controller user add NAME                         register a user; prints their token
  controller user remove NAME                      revoke a user's token
  controller user list                             list registered users

Tokens are printed once and stored only as SHA-256 hashes in the registry
file (--registry, default STATE_DIR/registry.json), with the controller's
public key (from STATE_DIR/controller.key, made on first use). A running controller
started with --require-auth rereads the file when it changes, so a removal
takes effect at once. Give the same file to the trove (trove serve
--require-auth --registry FILE): it then accepts uploads only from
registered workers, and manifests only when signed by the uploading
worker's registered key (--public-key: the base64 ed25519 key that
'worker key --work-dir DIR' prints) and carrying the controller's grant of
that step to that worker.

Flags:
`

// admin runs the worker and user subcommands.
func admin(kind auth.Kind, args []string, stdout, stderr io.Writer) int {
	fs := pflag.NewFlagSet("controller "+string(kind), pflag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprint(stderr, adminAbout+fs.FlagUsages()) }
	stateDir := fs.String("state-dir", "", "the controller's state directory, where the registry file lives")
	registry := fs.String("registry", "", "the registry file (default STATE_DIR/registry.json)")
	publicKey := fs.String("public-key", "", "with worker add: the worker's base64 ed25519 public key, for its manifest signatures")
	if err := fs.Parse(args); err != nil {
		if err == pflag.ErrHelp {
			return 0
		}
		return 2
	}
	path := *registry
	if path == "" && *stateDir != "" {
		path = filepath.Join(*stateDir, "registry.json")
	}
	op, name := fs.Arg(0), fs.Arg(1)
	if path == "" || (op != "list" && fs.NArg() != 2) || (op == "list" && fs.NArg() != 1) {
		fs.Usage()
		return 2
	}
	r, err := auth.Load(path)
	if err != nil {
		fmt.Fprintf(stderr, "controller: %v\n", err)
		return 1
	}
	if *stateDir != "" && op != "list" {
		// The trove reads the controller's key from the same file, to
		// check the attempt grants in manifests.
		key, err := manifestsig.LoadOrCreateKey(filepath.Join(*stateDir, controllerKeyFile))
		if err != nil {
			fmt.Fprintf(stderr, "controller: the controller's key: %v\n", err)
			return 1
		}
		r.ControllerPublicKey = key.Public().(ed25519.PublicKey)
	}
	switch op {
	case "list":
		for _, n := range r.Names(kind) {
			fmt.Fprintln(stdout, n)
		}
		return 0
	case "add":
		var key []byte
		if *publicKey != "" {
			if key, err = manifestsig.ParsePublicKey(*publicKey); err != nil {
				fmt.Fprintf(stderr, "controller: --public-key: %v\n", err)
				return 2
			}
		}
		token, err := r.Add(kind, name, key)
		if err != nil {
			fmt.Fprintf(stderr, "controller: %v\n", err)
			return 1
		}
		if err := r.Save(path); err != nil {
			fmt.Fprintf(stderr, "controller: saving %s: %v\n", path, err)
			return 1
		}
		fmt.Fprintln(stdout, token)
		fmt.Fprintf(stderr, "added %s %s; its token is printed above and is not stored anywhere: put it in the %s's --token-file now\n", kind, name, kind)
		return 0
	case "remove":
		if err := r.Remove(kind, name); err != nil {
			fmt.Fprintf(stderr, "controller: %v\n", err)
			return 1
		}
		if err := r.Save(path); err != nil {
			fmt.Fprintf(stderr, "controller: saving %s: %v\n", path, err)
			return 1
		}
		fmt.Fprintf(stderr, "removed %s %s; its token no longer works\n", kind, name)
		return 0
	}
	fs.Usage()
	return 2
}
