package main_test

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"distbuild/artifactcache"
	"distbuild/digest"
	"distbuild/internal/bytesize"
)

// Transfers between real processes: the trove binary serves the cache in
// a process of its own, and the benchmark process is its client, so
// neither side's work hides in the other's scheduler as it does in the
// in-process benchmarks of package artifactcache. Run them with
//
//	go test ./cmd/trove -run '^$' -bench TroveProcess -benchtime 4x -count 3 -args -blob-size 512MiB
//
// Reference figures come from the same run: bazel-remote is not available
// on the build machine (no Go module, no Debian package), so a reference
// PUT server of the same design (hash while writing a temporary file,
// fsync, rename, in a separate process) and the trove's own HTTP GET stand
// in for it.

// benchBlobSize is the size of the blob each transfer moves. The default
// keeps `make test`'s single run of every benchmark cheap; BENCHMARKS.md's
// figures are for 512MiB.
var benchBlobSize = bytesize.Size(64 << 20)

func init() {
	flag.Var(&benchBlobSize, "blob-size", "size of the blob the TroveProcess benchmarks move")
}

// putServerEnv, when set in the environment of this test binary, makes it
// serve the reference PUT server instead of running tests (see TestMain),
// storing blobs in the directory it names.
const putServerEnv = "DISTBUILD_BENCH_PUT_SERVER_DIR"

// BenchmarkTroveProcess measures, against a running trove binary, the
// gRPC upload of a file with the cache client's UploadFile (hashing
// included, since a caller of UploadFile has only a file) and with Upload
// (the digest known, as a worker knows its artifacts'), and the verified
// download with Fetch, next to the reference HTTP PUT and GET; a GET whose
// client hashes what it receives; the first download of a blob right after
// its upload; and SHA-256 alone, the ceiling of a verified transfer on one
// core.
//
// Both servers hold only the last blob or two, so that, as in a full
// cache, each upload's room (and page cache) comes from blobs dropped.
func BenchmarkTroveProcess(b *testing.B) {
	size := int64(benchBlobSize)
	dir := b.TempDir()
	p := start(b, filepath.Join(dir, "store"), "--max-size", bytesize.Size(2*size).String())
	c, err := artifactcache.Dial(p.addrs.GRPC)
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	put, putPid := startPutServer(b, filepath.Join(dir, "put"))
	trovePid := p.cmd.Process.Pid
	files := filepath.Join(dir, "files")
	if err := os.Mkdir(files, 0o755); err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	seed := byte(0)
	path := filepath.Join(files, "blob")
	// newFile writes new content (never seen by either server) to the
	// file at path, in the page cache as a worker's freshly packed artifact
	// is, and returns its digest.
	newFile := func(b *testing.B) digest.Digest {
		seed++
		return writeContent(b, path, seed, size)
	}
	// run times transfer, once per iteration after prepare (untimed, may
	// be nil), and reports the CPU time the server process (pid) and this
	// process spent on it (on a shared machine the wall time depends on
	// what else runs, the CPU time much less) and, for the trove, its peak
	// resident memory.
	run := func(name string, pid int, prepare func(b *testing.B), transfer func(b *testing.B)) {
		b.Run(name, func(b *testing.B) {
			var cpu cpuMeter
			b.SetBytes(size)
			p.resetPeakRSS(b)
			b.ResetTimer()
			for range b.N {
				if prepare != nil {
					b.StopTimer()
					prepare(b)
					b.StartTimer()
				}
				cpu.start(b, pid)
				transfer(b)
				cpu.stop(b, pid)
			}
			b.StopTimer()
			cpu.report(b)
			if pid == trovePid {
				b.ReportMetric(float64(p.peakRSS(b))/(1<<20), "trove-peak-RSS-MiB")
			}
		})
	}

	// Fill both stores first, so that every timed upload, not only the
	// later ones, takes its room from blobs dropped before it.
	var d digest.Digest
	for range 2 {
		d = newFile(b)
		uploadKnown(b, c, d, path)
		httpPut(b, put+"/cas/"+d.Hash().String(), path, size)
	}
	run("grpc-upload-file", trovePid, func(b *testing.B) { d = newFile(b) }, func(b *testing.B) {
		got, err := c.UploadFile(ctx, path)
		if err != nil || got != d {
			b.Fatalf("UploadFile: %v, %v; want %v", got, err, d)
		}
	})
	run("grpc-upload-known-digest", trovePid, func(b *testing.B) { d = newFile(b) }, func(b *testing.B) {
		uploadKnown(b, c, d, path)
	})
	run("http-put-reference", putPid, func(b *testing.B) { d = newFile(b) }, func(b *testing.B) {
		httpPut(b, put+"/cas/"+d.Hash().String(), path, size)
	})
	// The downloads below read a blob in the page cache (the upload put it
	// there), as a blob many workers fetch is.
	uploaded := newFile(b)
	uploadKnown(b, c, uploaded, path)
	run("grpc-fetch-verified", trovePid, nil, func(b *testing.B) {
		if err := c.Fetch(ctx, uploaded, io.Discard); err != nil {
			b.Fatal(err)
		}
	})
	url := "http://" + p.addrs.HTTP + "/blobs/sha256/" + uploaded.Hash().String()
	run("http-get-reference", trovePid, nil, func(b *testing.B) {
		httpGetBlob(b, url, size, nil)
	})
	run("http-get-verified-reference", trovePid, nil, func(b *testing.B) {
		h := digest.NewHasher()
		httpGetBlob(b, url, size, h)
		if h.Digest() != uploaded {
			b.Fatalf("GET %s: content hashes to %s", url, h.Digest())
		}
	})
	// The first download of a blob right after its upload.
	run("grpc-fetch-verified-after-upload", trovePid, func(b *testing.B) {
		d = newFile(b)
		uploadKnown(b, c, d, path)
	}, func(b *testing.B) {
		if err := c.Fetch(ctx, d, io.Discard); err != nil {
			b.Fatal(err)
		}
	})
	// The ceiling of any verified transfer: SHA-256 on one core, of a
	// file in the page cache.
	run("sha256-one-core", os.Getpid(), func(b *testing.B) { d = newFile(b) }, func(b *testing.B) {
		if got := hashFile(b, path); got != d {
			b.Fatalf("%s hashes to %s, want %s", path, got, d)
		}
	})
}

// cpuMeter adds up the CPU time a server process and this process spend
// in the timed transfers.
type cpuMeter struct {
	server, client   time.Duration
	server0, client0 time.Duration
	n                int
}

func (m *cpuMeter) start(b *testing.B, pid int) {
	m.server0, m.client0 = processCPU(b, pid), selfCPU(b)
}

func (m *cpuMeter) stop(b *testing.B, pid int) {
	m.server += processCPU(b, pid) - m.server0
	m.client += selfCPU(b) - m.client0
	m.n++
}

// report gives the CPU time per transfer, in milliseconds. The server's
// is counted in the kernel's ticks (10 ms on most systems), so a single
// small transfer may show as 0. For sha256-one-core the server is this
// process, which is then counted twice.
func (m *cpuMeter) report(b *testing.B) {
	b.ReportMetric(float64(m.server.Milliseconds())/float64(m.n), "server-cpu-ms/op")
	b.ReportMetric(float64(m.client.Milliseconds())/float64(m.n), "client-cpu-ms/op")
}

// processCPU is the user and system CPU time process pid has used, from
// /proc/PID/stat.
func processCPU(b *testing.B, pid int) time.Duration {
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		b.Fatal(err)
	}
	// The fields after the command name, which is in parentheses and may
	// hold spaces; utime and stime are the 14th and 15th of the line.
	fields := strings.Fields(string(raw[strings.LastIndexByte(string(raw), ')')+1:]))
	var ticks int64
	for _, f := range fields[11:13] {
		n, err := strconv.ParseInt(f, 10, 64)
		if err != nil {
			b.Fatalf("/proc/%d/stat: %v", pid, err)
		}
		ticks += n
	}
	return time.Duration(ticks) * time.Second / clockTicks
}

// clockTicks is the unit of /proc's CPU times (USER_HZ), 100 on Linux.
const clockTicks = 100

// selfCPU is the user and system CPU time this process has used.
func selfCPU(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// uploadKnown sends the file at path, whose digest the caller knows (as a
// worker knows its artifacts' from packing them), with Upload.
func uploadKnown(b *testing.B, c *artifactcache.Client, d digest.Digest, path string) {
	f, err := os.Open(path)
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	if err := c.Upload(context.Background(), d, f); err != nil {
		b.Fatal(err)
	}
}

// hashFile reads and hashes the file at path.
func hashFile(b *testing.B, path string) digest.Digest {
	f, err := os.Open(path)
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	h := digest.NewHasher()
	if _, err := io.CopyBuffer(h, f, make([]byte, 1<<20)); err != nil {
		b.Fatal(err)
	}
	return h.Digest()
}

// writeContent writes size bytes of the deterministic stream for seed to
// path and returns their digest. The file is synced, so that its writeback
// (half a gigabyte, at make bench's size) does not compete with a timed
// transfer later.
func writeContent(b *testing.B, path string, seed byte, size int64) digest.Digest {
	f, err := os.Create(path)
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	h := digest.NewHasher()
	if _, err := io.CopyBuffer(io.MultiWriter(f, h), content(seed, size), make([]byte, 1<<20)); err != nil {
		b.Fatal(err)
	}
	if err := f.Sync(); err != nil {
		b.Fatal(err)
	}
	if err := f.Close(); err != nil {
		b.Fatal(err)
	}
	return h.Digest()
}

// httpPut sends the file at path to url, as a client that knows the
// digest already (bazel, say) does.
func httpPut(b *testing.B, url, path string, size int64) {
	f, err := os.Open(path)
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	req, err := http.NewRequest(http.MethodPut, url, f)
	if err != nil {
		b.Fatal(err)
	}
	req.ContentLength = size
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		b.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusCreated {
		msg, _ := io.ReadAll(resp.Body)
		b.Fatalf("PUT %s: %s: %s", url, resp.Status, msg)
	}
}

// httpGetBlob reads the body at url into h, or discards it unverified
// (as curl does) when h is nil.
func httpGetBlob(b *testing.B, url string, size int64, h *digest.Hasher) {
	resp, err := http.Get(url)
	if err != nil {
		b.Fatal(err)
	}
	defer resp.Body.Close()
	var w io.Writer = io.Discard
	if h != nil {
		w = h
	}
	n, err := io.CopyBuffer(w, resp.Body, make([]byte, 1<<20))
	if err != nil || resp.StatusCode != http.StatusOK || n != size {
		b.Fatalf("GET %s: %s, %d bytes, %v", url, resp.Status, n, err)
	}
}

// resetPeakRSS makes the process's VmHWM start again from its current
// resident size.
func (p *process) resetPeakRSS(t testing.TB) {
	if err := os.WriteFile(fmt.Sprintf("/proc/%d/clear_refs", p.cmd.Process.Pid), []byte("5"), 0); err != nil {
		t.Fatalf("reset peak RSS: %v", err)
	}
}

// startPutServer runs this test binary as the reference PUT server (see
// servePuts) in a process of its own, and returns its base URL and
// process id.
func startPutServer(b *testing.B, dir string) (string, int) {
	if err := os.Mkdir(dir, 0o755); err != nil {
		b.Fatal(err)
	}
	cmd := exec.Command(os.Args[0])
	cmd.Env = append(os.Environ(), putServerEnv+"="+dir)
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		b.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
	})
	addr := make(chan string, 1)
	go func() {
		line, _ := bufio.NewReader(out).ReadString('\n')
		addr <- strings.TrimSpace(line)
	}()
	select {
	case a := <-addr:
		if a == "" {
			b.Fatal("the reference PUT server did not say where it listens")
		}
		return "http://" + a, cmd.Process.Pid
	case <-time.After(30 * time.Second):
		b.Fatal("the reference PUT server did not start in time")
		return "", 0
	}
}

// servePuts is the reference PUT server, built the way bazel-remote
// stores an HTTP PUT to its CAS: the body is hashed while it is written to
// a temporary file, which is fsynced and renamed into place if the hash
// matches the URL's. It prints its address on stdout and serves until
// killed.
func servePuts(dir string) error {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	fmt.Println(l.Addr())
	mux := http.NewServeMux()
	mux.HandleFunc("PUT /cas/{hash}", func(w http.ResponseWriter, r *http.Request) {
		hash := r.PathValue("hash")
		if err := storePut(dir, hash, r.Body); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		w.WriteHeader(http.StatusCreated)
	})
	return http.Serve(l, mux)
}

// storePut writes body to dir/hash if it hashes to hash. It keeps only
// the newest blob, and drops the older ones before writing: on this VM,
// page cache memory freed and soon reused is cheap, while memory the guest
// has not touched for a while costs a fault in the host per page, and the
// trove's store, which evicts as content arrives, reuses freed pages in
// the same way.
func storePut(dir, hash string, body io.Reader) error {
	if err := dropAll(dir); err != nil {
		return err
	}
	f, err := os.CreateTemp(dir, "put-*")
	if err != nil {
		return err
	}
	defer os.Remove(f.Name())
	defer f.Close()
	h := sha256.New()
	if _, err := io.CopyBuffer(io.MultiWriter(f, h), body, make([]byte, 1<<20)); err != nil {
		return err
	}
	if got := hex.EncodeToString(h.Sum(nil)); got != hash {
		return fmt.Errorf("body hashes to %s, not %s", got, hash)
	}
	if err := f.Sync(); err != nil {
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return os.Rename(f.Name(), filepath.Join(dir, hash))
}

// dropAll removes every stored blob.
func dropAll(dir string) error {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return err
	}
	for _, e := range entries {
		if err := os.Remove(filepath.Join(dir, e.Name())); err != nil {
			return err
		}
	}
	return nil
}
