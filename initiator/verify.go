package initiator

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"io"

	"github.com/spf13/pflag"

	"distbuild/artifactcache"
	"distbuild/auth"
	"distbuild/digest"
	"distbuild/manifestsig"
)

const verifyAbout = `Checks an artifact in the cache before you trust it: its manifest must carry
a valid signature by the worker that built it, made with the key registered
for that worker (from a copy of the farm's registry file, which holds only
token hashes and public keys, or given with --public-key), and every blob it
names is downloaded and must match its digest. Exit status 0 means all of
that holds.`

func runVerify(env *Env, args []string) int {
	c := newArtifactCommand(env, "verify", verifyAbout)
	key, cache, keys, code, ok := c.open(env, args)
	if !ok {
		return code
	}
	defer cache.Close()
	ctx := context.Background()
	m, err := cache.GetManifest(ctx, key)
	if err != nil {
		return fail(env, "verify", fmt.Errorf("artifact %s: %w", key, err))
	}
	if m.GetSignature() == nil {
		return fail(env, "verify", fmt.Errorf("artifact %s (%s) is not signed", key, m.StepName))
	}
	signer := m.Signature.Signer
	pub, err := keys.signerKey(signer, key)
	if err != nil {
		return fail(env, "verify", err)
	}
	if err := manifestsig.Verify(m, pub); err != nil {
		return fail(env, "verify", fmt.Errorf("artifact %s: %w", key, err))
	}
	var total int64
	for _, f := range m.Files {
		d, err := digest.FromProto(f.Digest)
		if err != nil {
			return fail(env, "verify", fmt.Errorf("file %s: %w", f.Name, err))
		}
		if err := cache.Fetch(ctx, d, io.Discard); err != nil {
			return fail(env, "verify", fmt.Errorf("file %s (%s): %w", f.Name, d, err))
		}
		total += d.Size()
	}
	if len(m.Files) == 0 {
		return fail(env, "verify", errors.New("the manifest names no files"))
	}
	fmt.Fprintf(env.Stdout, "artifact %s (%s) is signed by worker %s and all %d files (%d bytes) match their digests\n", key, m.StepName, signer, len(m.Files), total)
	return ExitOK
}

// artifactCommand is a command that checks one artifact, named by its
// cache key, in the cache against its signer's key: verify, provenance.
type artifactCommand struct {
	name      string
	fs        *pflag.FlagSet
	cacheAddr *string
	keys      keyFlags
}

func newArtifactCommand(env *Env, name, about string) *artifactCommand {
	fs := newFlags(env, name, "[flags] (--registry FILE | --public-key KEY) CACHE_KEY", about)
	return &artifactCommand{name: name, fs: fs, cacheAddr: cacheFlag(fs), keys: addKeyFlags(fs)}
}

// open parses args and dials the cache. When ok is false the command is
// over, with exit status code (its error already printed).
func (c *artifactCommand) open(env *Env, args []string) (key digest.CacheKey, cache *artifactcache.Client, keys keyFlags, code int, ok bool) {
	if parsed, status := parseFlags(c.fs, args); !parsed {
		return key, nil, keys, status, false
	}
	if c.fs.NArg() != 1 || !c.keys.valid() {
		c.fs.Usage()
		return key, nil, keys, ExitUsage, false
	}
	key, err := digest.ParseCacheKey(c.fs.Arg(0))
	if err == nil {
		cache, err = dialCache(*c.cacheAddr)
	}
	if err != nil {
		return key, nil, keys, fail(env, c.name, err), false
	}
	return key, cache, c.keys, ExitOK, true
}

// keyFlags say which key checks an artifact's signatures: the registry's
// entry for its signer, or one given.
type keyFlags struct{ registry, publicKey *string }

// addKeyFlags adds --registry and --public-key to fs.
func addKeyFlags(fs *pflag.FlagSet) keyFlags {
	return keyFlags{
		registry:  fs.String("registry", "", "the farm's registry file (controller --state-dir DIR: DIR/registry.json)"),
		publicKey: fs.String("public-key", "", "the signing worker's base64 ed25519 public key, instead of --registry"),
	}
}

// valid says whether exactly one of the flags was given.
func (k keyFlags) valid() bool { return (*k.registry == "") != (*k.publicKey == "") }

// signerKey is the public key to check artifact key's signature by signer
// with: --public-key when given, else signer's key in the registry file.
func (k keyFlags) signerKey(signer string, key digest.CacheKey) (ed25519.PublicKey, error) {
	if *k.publicKey != "" {
		pub, err := manifestsig.ParsePublicKey(*k.publicKey)
		if err != nil {
			return nil, fmt.Errorf("--public-key: %w", err)
		}
		return pub, nil
	}
	r, err := auth.Load(*k.registry)
	if err != nil {
		return nil, err
	}
	entry, ok := r.Workers[signer]
	if !ok || len(entry.PublicKey) == 0 {
		return nil, fmt.Errorf("artifact %s is signed by %q, which has no registered key in %s", key, signer, *k.registry)
	}
	return entry.PublicKey, nil
}
