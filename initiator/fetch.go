package initiator

import (
	"context"
	"fmt"
	"os"
	"path/filepath"

	"distbuild/artifactcache"
	"distbuild/digest"
	pb "distbuild/proto/distbuild/v1"
	"distbuild/tarball"
)

// DefaultCache is where the trove's artifact cache listens unless told
// otherwise.
const DefaultCache = "127.0.0.1:7070"

const fetchAbout = `Downloads the artifact with the given cache key from the artifact cache and
unpacks its split artifacts into DIR (created if missing): for a system, its
root file system; for a chunk, everything it installed. Every blob is
verified against its digest. The build log goes to DIR/../<name>.log unless
--no-log is given. Entries that would escape DIR are refused; device files
and setuid programs only with --allow-devices and --allow-setuid.`

// cacheFlag adds --cache, whose default comes from $DISTBUILD_CACHE like
// the controller's from $DISTBUILD_CONTROLLER, so a shell set up for one
// farm needs no flags.
func cacheFlag(fs interface {
	String(string, string, string) *string
}) *string {
	return fs.String("cache", envOr("DISTBUILD_CACHE", DefaultCache), "gRPC address of the artifact cache (default from $DISTBUILD_CACHE)")
}

func runFetch(env *Env, args []string) int {
	fs := newFlags(env, "fetch", "[flags] CACHE_KEY DIR", fetchAbout)
	cacheAddr := cacheFlag(fs)
	allowDevices := fs.Bool("allow-devices", false, "create device files the artifact contains")
	allowSetuid := fs.Bool("allow-setuid", false, "keep setuid and setgid bits")
	noLog := fs.Bool("no-log", false, "do not save the build log")
	if ok, status := parseFlags(fs, args); !ok {
		return status
	}
	if fs.NArg() != 2 {
		fs.Usage()
		return ExitUsage
	}
	key, err := digest.ParseCacheKey(fs.Arg(0))
	if err != nil {
		return fail(env, "fetch", err)
	}
	dir := fs.Arg(1)
	if !filepath.IsAbs(dir) {
		dir = filepath.Join(env.Dir, dir)
	}
	cache, err := dialCache(*cacheAddr)
	if err != nil {
		return fail(env, "fetch", err)
	}
	defer cache.Close()
	ctx := context.Background()
	m, err := cache.GetManifest(ctx, key)
	if err != nil {
		return fail(env, "fetch", fmt.Errorf("artifact %s: %w", key, err))
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fail(env, "fetch", err)
	}
	for _, f := range m.Files {
		var err error
		switch f.Role {
		case pb.FileRole_FILE_ROLE_ARTIFACT:
			err = fetchInto(ctx, cache, f, dir, tarball.UnpackOptions{AllowDevices: *allowDevices, AllowSetuid: *allowSetuid})
			if err == nil {
				fmt.Fprintf(env.Stdout, "unpacked %s into %s\n", f.Name, dir)
			}
		case pb.FileRole_FILE_ROLE_LOG:
			if *noLog {
				continue
			}
			path := filepath.Join(filepath.Dir(dir), m.StepName+".log")
			if err = downloadTo(ctx, cache, f.Digest, path); err == nil {
				fmt.Fprintf(env.Stdout, "saved the build log as %s\n", path)
			}
		}
		if err != nil {
			return fail(env, "fetch", err)
		}
	}
	return ExitOK
}

func downloadTo(ctx context.Context, cache *artifactcache.Client, d *pb.Digest, path string) error {
	dg, err := digest.FromProto(d)
	if err != nil {
		return err
	}
	return cache.Download(ctx, dg, path)
}

// fetchInto downloads one tarball to a temporary file, then unpacks it.
func fetchInto(ctx context.Context, cache *artifactcache.Client, f *pb.ManifestFile, dir string, opts tarball.UnpackOptions) error {
	tmp, err := os.MkdirTemp("", "distbuild-fetch-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	path := filepath.Join(tmp, "blob")
	if err := downloadTo(ctx, cache, f.Digest, path); err != nil {
		return fmt.Errorf("downloading %s: %w", f.Name, err)
	}
	r, err := os.Open(path)
	if err != nil {
		return err
	}
	defer r.Close()
	if err := tarball.Unpack(r, dir, opts); err != nil {
		return fmt.Errorf("unpacking %s: %w", f.Name, err)
	}
	return nil
}

func envOr(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}
