package step

import (
	"archive/tar"
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	pb "distbuild/proto/distbuild/v1"
	"distbuild/worker/cache"
	"distbuild/worker/cache/cachetest"
	"distbuild/worker/sandbox"
)

// closureShape is the size of the closure the staging benchmarks stage:
// the late chunk of a desktop system (300 artifacts, 1 GiB, 60,000
// files) when DISTBUILD_BENCH_STAGING=full, as `make bench` sets it; a
// small one otherwise, so that `make test`'s single run of each benchmark
// stays cheap.
func closureShape() (artifacts, dirs, files, fileSize int) {
	if os.Getenv("DISTBUILD_BENCH_STAGING") == "full" {
		return 300, 10, 20, 17_895 // 300 x 200 files of 17.5 KiB: 1 GiB
	}
	return 6, 2, 5, 1024
}

// benchClosure stores the closure in a fresh memory cache and returns it
// with the cache keys of its chunks, in staging order. Each artifact has
// its own directories and shares usr/ and usr/bin/ with the others; the
// first also holds a shell, so integration commands can run.
func benchClosure(b *testing.B) (*cachetest.Memory, []string) {
	b.Helper()
	busybox := readBusybox(b)
	artifacts, dirs, files, size := closureShape()
	mem := cachetest.NewMemory()
	rng := rand.NewChaCha8([32]byte{})
	body := make([]byte, size)
	var keys []string
	for a := range artifacts {
		var buf bytes.Buffer
		tw := tar.NewWriter(&buf)
		add := func(h *tar.Header, data []byte) {
			h.ModTime = time.Unix(0, 0)
			if err := tw.WriteHeader(h); err != nil {
				b.Fatal(err)
			}
			tw.Write(data)
		}
		pkg := fmt.Sprintf("usr/lib/pkg%d", a)
		for _, d := range []string{"usr", "usr/bin", "usr/lib", pkg} {
			add(&tar.Header{Typeflag: tar.TypeDir, Name: d + "/", Mode: 0o755}, nil)
		}
		if a == 0 {
			add(&tar.Header{Typeflag: tar.TypeDir, Name: "bin/", Mode: 0o755}, nil)
			add(&tar.Header{Typeflag: tar.TypeReg, Name: "bin/busybox", Mode: 0o755, Size: int64(len(busybox))}, busybox)
			add(&tar.Header{Typeflag: tar.TypeSymlink, Name: "bin/sh", Linkname: "busybox", Mode: 0o777}, nil)
		}
		for d := range dirs {
			add(&tar.Header{Typeflag: tar.TypeDir, Name: fmt.Sprintf("%s/d%d/", pkg, d), Mode: 0o755}, nil)
			for f := range files {
				rng.Read(body)
				add(&tar.Header{Typeflag: tar.TypeReg, Name: fmt.Sprintf("%s/d%d/f%d", pkg, d, f), Mode: 0o644, Size: int64(size)}, body)
			}
		}
		if err := tw.Close(); err != nil {
			b.Fatal(err)
		}
		key := fmt.Sprintf("%064x", a+1)
		d := putBlob(b, mem, buf.Bytes())
		m := &pb.Manifest{CacheKey: key, StepName: fmt.Sprintf("pkg%d", a), Kind: pb.StepKind_STEP_KIND_CHUNK,
			Files: []*pb.ManifestFile{{Name: fmt.Sprintf("pkg%d-bins", a), Role: pb.FileRole_FILE_ROLE_ARTIFACT, Digest: d.Proto()}}}
		if err := mem.PutManifest(context.Background(), m); err != nil {
			b.Fatal(err)
		}
		keys = append(keys, key)
	}
	return mem, keys
}

// benchRunner makes a runner over mem with its blob cache in workDir/blobs,
// which keeps what earlier runners there downloaded and unpacked.
func benchRunner(b *testing.B, workDir string, mem *cachetest.Memory) *Runner {
	b.Helper()
	return newTestRunner(b, sandbox.Bwrap, func(c *Config) {
		c.WorkDir = workDir
		local, err := cache.NewLocal(filepath.Join(workDir, "blobs"), 0, mem, hclog.NewNullLogger())
		if err != nil {
			b.Fatal(err)
		}
		c.Cache = local
	})
}

// BenchmarkStaging stages a closure as a staging-mode chunk under
// bubblewrap does: linking trees unpacked once, warm (kept already) and
// cold (none kept: each unpacked first), and unpacking every artifact
// afresh (as before staging by linking). Every blob is in the worker's
// blob cache already, so no figure includes a download. cleanup-s/op is
// the time to remove the staging area as the job ends.
//
// Each timed staging follows an untimed one of its own kind, whose staging
// area was removed as a job's end removes it, as on a worker staging step
// after step. The trees a cold staging unpacked are set aside rather than
// deleted, as a worker does not delete its trees before staging: on ext4
// without a journal, as on the development VM, making files soon after
// deleting others costs a scan past the deleted inodes for each
// (BENCHMARKS.md). For the same reason the part deleting the most,
// unpacking afresh, runs last. Before each staging, what earlier ones
// wrote is synced: otherwise the trees cold runs set aside, gigabytes of
// them, reach the disk while later runs are timed, which a worker's do as
// its builds run.
func BenchmarkStaging(b *testing.B) {
	mem, keys := benchClosure(b)
	workDir := b.TempDir()
	job := &pb.Job{Staging: keys}
	warmUp := benchRunner(b, workDir, mem)
	if err := warmUp.stage(context.Background(), newTask(b, job), warmUp.link, b.TempDir()); err != nil {
		b.Fatal(err) // downloads every blob into the blob cache, and unpacks the trees
	}
	trees, setAside := filepath.Join(workDir, "blobs", "trees"), filepath.Join(workDir, "set-aside")
	if err := os.Mkdir(setAside, 0o755); err != nil {
		b.Fatal(err)
	}
	for _, bc := range []struct {
		name       string
		link, cold bool
	}{
		{"link-warm", true, false},
		{"link-cold", true, true},
		{"unpack-every-time", false, false},
	} {
		b.Run(bc.name, func(b *testing.B) {
			r := benchRunner(b, workDir, mem)
			// stage stages the closure once into a new staging area and
			// removes it, returning how long the removal took.
			stage := func() time.Duration {
				b.StopTimer()
				if bc.cold {
					if err := os.Rename(trees, filepath.Join(setAside, fmt.Sprint("trees-", time.Now().UnixNano()))); err != nil {
						b.Fatal(err)
					}
					r = benchRunner(b, workDir, mem)
				}
				s := stager(unpacker{r})
				if bc.link {
					s = r.link
				}
				dest, err := os.MkdirTemp(workDir, "staging-")
				if err != nil {
					b.Fatal(err)
				}
				t := newTask(b, job)
				// What earlier runs wrote goes to disk first, as a worker's
				// does while its builds run, rather than during this one.
				syscall.Sync()
				b.StartTimer()
				if err := r.stage(context.Background(), t, s, dest); err != nil {
					b.Fatal(err)
				}
				b.StopTimer()
				start := time.Now()
				t.end()
				if err := os.RemoveAll(dest); err != nil {
					b.Fatal(err)
				}
				cleanup := time.Since(start)
				b.StartTimer()
				return cleanup
			}
			stage()
			var cleanup time.Duration
			for b.Loop() {
				cleanup += stage()
			}
			b.ReportMetric(cleanup.Seconds()/float64(b.N), "cleanup-s/op")
		})
	}
}

// BenchmarkSystemAssembly assembles a system of the closure, with one
// integration command, as a system step does: staging (unpacking afresh,
// or linking warm trees under an overlay), running the command under
// bubblewrap, packing the root and storing it in the (memory) cache.
func BenchmarkSystemAssembly(b *testing.B) {
	if err := sandbox.Available(sandbox.Bwrap); err != nil {
		b.Skip("bubblewrap cannot run here:", err)
	}
	mem, keys := benchClosure(b)
	sys := &pb.SystemJob{Integration: []*pb.IntegrationCommands{{Name: "00", Commands: []string{"echo integrated > /etc-integrated"}}}}
	for i, k := range keys {
		sys.Contents = append(sys.Contents, &pb.ChunkArtifact{CacheKey: k, Artifact: fmt.Sprintf("pkg%d-bins", i)})
	}
	workDir := b.TempDir()
	for _, bc := range []struct {
		name string
		link bool
	}{{"unpack-every-time", false}, {"link-warm", true}} {
		b.Run(bc.name, func(b *testing.B) {
			r := benchRunner(b, workDir, mem)
			if !bc.link {
				r.link = nil
			} else if !r.overlays {
				b.Skip("this process may not mount overlays (not root?): it would unpack afresh")
			}
			assemble := func() {
				t := newTask(b, &pb.Job{JobId: "sys", Name: "sys"})
				if _, err := r.assembleSystem(context.Background(), t, sys); err != nil {
					b.Fatal(err)
				}
				b.StopTimer()
				t.end()
				os.RemoveAll(t.dir)
				b.StartTimer()
			}
			assemble() // the blobs downloaded, and the trees unpacked
			for b.Loop() {
				assemble()
			}
		})
	}
}

// manyMirrors is how many git mirrors BenchmarkCheckoutAmongManyMirrors
// gives its worker: one per chunk repository of a desktop system.
const manyMirrors = 450

// BenchmarkCheckoutAmongManyMirrors checks out a chunk's source, already
// in its mirror, on a worker holding manyMirrors other mirrors (each
// shaped like a `git clone --mirror`: 28 files), as every step after the
// first on a long-lived worker does. The fetch watchdog used to measure
// every mirror before each fetch: 56-66 ms per step at this size.
func BenchmarkCheckoutAmongManyMirrors(b *testing.B) {
	r := newTestRunner(b, sandbox.None, func(c *Config) { c.TransferStallTimeout = 5 * time.Minute })
	for i := range manyMirrors {
		dir := filepath.Join(r.gitDir, fmt.Sprintf("other-%03d.git", i))
		for j := range 28 {
			sub := filepath.Join(dir, fmt.Sprintf("d%d", j%4))
			if err := os.MkdirAll(sub, 0o755); err != nil {
				b.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(sub, fmt.Sprintf("f%d", j)), make([]byte, 512), 0o644); err != nil {
				b.Fatal(err)
			}
		}
	}
	repo, commit := gitRepo(b, map[string]string{"README": "hello\n"})
	job := chunkSpec(repo, commit).GetChunk()
	ctx := context.Background()
	if _, err := r.checkout(ctx, job, b.TempDir()); err != nil { // fills its mirror
		b.Fatal(err)
	}
	for b.Loop() {
		b.StopTimer()
		dir := filepath.Join(b.TempDir(), "src")
		b.StartTimer()
		if _, err := r.checkout(ctx, job, dir); err != nil {
			b.Fatal(err)
		}
	}
}
