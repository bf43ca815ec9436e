package artifactcache_test

import (
	"bufio"
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"strconv"
	"strings"
	"testing"

	"distbuild/digest"
	distbuildv1 "distbuild/proto/distbuild/v1"
)

// Large-blob benchmarks. Run them with
//
//	go test ./artifactcache -run '^$' -bench 'Blob512MiB' -benchtime 3x
//
// They report throughput (MB/s) and peak-RSS-MiB, the process's peak
// resident memory (VmHWM, reset through /proc/self/clear_refs before the
// timed part) for client and server together, since both run in the
// benchmark process.

const bigBlob = 512 << 20

// pattern is a deterministic stream of pseudo-random content that never
// exists in memory as a whole: a 1 MiB random block repeated, with each
// repetition stamped with the seed and its index so that no two blocks,
// and no two seeds' streams, are alike.
type pattern struct {
	base      []byte
	seed      uint64
	pos, size int64
}

func newPattern(seed uint64, size int64) *pattern {
	base := make([]byte, 1<<20)
	rand.NewChaCha8([32]byte{1}).Read(base)
	return &pattern{base: base, seed: seed, size: size}
}

func (g *pattern) Read(p []byte) (int, error) {
	if g.pos >= g.size {
		return 0, io.EOF
	}
	n := 0
	for n < len(p) && g.pos < g.size {
		block, off := g.pos/int64(len(g.base)), g.pos%int64(len(g.base))
		var stamp [16]byte
		binary.LittleEndian.PutUint64(stamp[:], g.seed)
		binary.LittleEndian.PutUint64(stamp[8:], uint64(block))
		m := copy(p[n:min(len(p), n+int(g.size-g.pos))], g.base[off:])
		for i := off; i < int64(len(stamp)) && i < off+int64(m); i++ {
			p[n+int(i-off)] = stamp[i]
		}
		n += m
		g.pos += int64(m)
	}
	return n, nil
}

func patternDigest(b *testing.B, seed uint64, size int64) digest.Digest {
	h := digest.NewHasher()
	if _, err := io.CopyBuffer(h, newPattern(seed, size), make([]byte, 1<<20)); err != nil {
		b.Fatal(err)
	}
	return h.Digest()
}

// resetPeakRSS makes VmHWM start again from the current resident size.
func resetPeakRSS(b *testing.B) {
	if err := os.WriteFile("/proc/self/clear_refs", []byte("5"), 0); err != nil {
		b.Fatalf("reset peak RSS: %v", err)
	}
}

// reportPeakRSS reads VmHWM from /proc/self/status.
func reportPeakRSS(b *testing.B) {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	s := bufio.NewScanner(f)
	for s.Scan() {
		if rest, ok := strings.CutPrefix(s.Text(), "VmHWM:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
			if err != nil {
				b.Fatal(err)
			}
			b.ReportMetric(float64(kb)/1024, "peak-RSS-MiB")
			return
		}
	}
	b.Fatal("no VmHWM in /proc/self/status")
}

// storeDir is where a large-blob benchmark puts the store.
type storeDir struct{ name, dir string }

// storeDirs are where the large-blob benchmarks put the store, in a fixed
// order: the disk (the real case, bounded by how fast it makes 512 MiB
// durable), and tmpfs, which shows what the network and hashing path
// alone achieves.
func storeDirs(b *testing.B) []storeDir {
	dirs := []storeDir{{"disk", b.TempDir()}}
	if shm, err := os.MkdirTemp("/dev/shm", "trove-bench-"); err == nil {
		b.Cleanup(func() { os.RemoveAll(shm) })
		dirs = append(dirs, storeDir{"tmpfs", shm})
	}
	return dirs
}

func BenchmarkUploadBlob512MiB(b *testing.B) {
	for _, sd := range storeDirs(b) {
		b.Run(sd.name, func(b *testing.B) { benchUpload(b, sd.dir) })
	}
}

func BenchmarkDownloadBlob512MiB(b *testing.B) {
	for _, sd := range storeDirs(b) {
		b.Run(sd.name, func(b *testing.B) { benchDownload(b, sd.dir) })
	}
}

func benchUpload(b *testing.B, dir string) {
	c := startCacheIn(b, dir, 2*bigBlob)
	ctx := context.Background()
	b.SetBytes(bigBlob)
	resetPeakRSS(b)
	b.ResetTimer()
	for i := range b.N {
		b.StopTimer()
		d := patternDigest(b, uint64(i), bigBlob) // every upload is new content
		b.StartTimer()
		if err := c.Upload(ctx, d, newPattern(uint64(i), bigBlob)); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	reportPeakRSS(b)
}

func benchDownload(b *testing.B, dir string) {
	c := startCacheIn(b, dir, 2*bigBlob)
	ctx := context.Background()
	d := patternDigest(b, 1, bigBlob)
	if err := c.Upload(ctx, d, newPattern(1, bigBlob)); err != nil {
		b.Fatal(err)
	}
	b.SetBytes(bigBlob)
	resetPeakRSS(b)
	b.ResetTimer()
	for range b.N {
		if err := c.Fetch(ctx, d, io.Discard); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	reportPeakRSS(b)
}

func BenchmarkFindMissing10000(b *testing.B) {
	c, _ := startCache(b, 1<<30)
	ctx := context.Background()
	// Half present, half missing.
	var asked []digest.Digest
	for i := range 10_000 {
		content := []byte(fmt.Sprintf("blob %d", i))
		asked = append(asked, digest.OfBytes(content))
		if i%2 == 0 {
			if _, err := c.UploadBytes(ctx, content); err != nil {
				b.Fatal(err)
			}
		}
	}
	b.ResetTimer()
	for range b.N {
		missing, _, err := c.FindMissing(ctx, asked, nil)
		if err != nil || len(missing) != 5_000 {
			b.Fatalf("%d missing, %v; want 5000", len(missing), err)
		}
	}
}

func benchManifest(b *testing.B, c interface {
	UploadBytes(context.Context, []byte) (digest.Digest, error)
}, key string) *distbuildv1.Manifest {
	m := &distbuildv1.Manifest{CacheKey: key, StepName: "glibc", Kind: distbuildv1.StepKind_STEP_KIND_CHUNK, Worker: "worker-1"}
	for _, name := range []string{"glibc-bins", "glibc-libs", "glibc-devel", "glibc-locale", "log"} {
		d, err := c.UploadBytes(context.Background(), []byte(name))
		if err != nil {
			b.Fatal(err)
		}
		m.Files = append(m.Files, &distbuildv1.ManifestFile{Name: name, Role: distbuildv1.FileRole_FILE_ROLE_ARTIFACT, Digest: d.Proto()})
	}
	return m
}

func BenchmarkPutManifest(b *testing.B) {
	c, _ := startCache(b, 1<<30)
	m := benchManifest(b, c, "")
	ctx := context.Background()
	b.ResetTimer()
	for i := range b.N {
		m.CacheKey = fmt.Sprintf("%064x", i) // a new manifest each time
		if err := c.PutManifest(ctx, m); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkGetManifest(b *testing.B) {
	c, _ := startCache(b, 1<<30)
	key := strings.Repeat("4", 64)
	m := benchManifest(b, c, key)
	ctx := context.Background()
	if err := c.PutManifest(ctx, m); err != nil {
		b.Fatal(err)
	}
	k, _ := digest.ParseCacheKey(key)
	b.ResetTimer()
	for range b.N {
		if _, err := c.GetManifest(ctx, k); err != nil {
			b.Fatal(err)
		}
	}
}
