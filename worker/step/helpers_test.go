package step

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"google.golang.org/protobuf/types/known/durationpb"

	"distbuild/artifactcache"
	"distbuild/digest"
	pb "distbuild/proto/distbuild/v1"
	"distbuild/trove"
	"distbuild/trove/trovetest"
	"distbuild/worker/cache"
	"distbuild/worker/cache/cachetest"
	"distbuild/worker/sandbox"
)

// TestMain keeps git hermetic: neither the fixtures nor the worker read
// the developer's ~/.gitconfig.
func TestMain(m *testing.M) {
	os.Setenv("GIT_CONFIG_GLOBAL", os.DevNull)
	os.Exit(m.Run())
}

// hangBound is how long a test waits for something that should happen
// promptly before calling it a hang; it is no measure of speed.
const hangBound = 30 * time.Second

// startCache runs a real artifact cache on loopback and returns its gRPC
// address.
func startCache(t *testing.T) string {
	t.Helper()
	d := trovetest.Start(t, trove.Config{ShutdownTimeout: time.Second})
	return d.Addrs().GRPC
}

func dialCache(t testing.TB, addr string) *artifactcache.Client {
	t.Helper()
	c, err := artifactcache.Dial(addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// newTestRunner makes a runner whose cache is in memory, behind a local
// copy as a worker's is (so it stages by linking), unless change (which
// adjusts the configuration first) gives it another.
func newTestRunner(t testing.TB, mode sandbox.Mode, change ...func(*Config)) *Runner {
	t.Helper()
	_, key, err := ed25519.GenerateKey(nil)
	if err != nil {
		t.Fatal(err)
	}
	memory := cachetest.NewMemory()
	cfg := Config{Worker: "test", WorkDir: t.TempDir(), Sandbox: mode, SigningKey: key, Cache: memory}
	for _, f := range change {
		f(&cfg)
	}
	if cfg.Cache == cache.Cache(memory) {
		local, err := cache.NewLocal(filepath.Join(cfg.WorkDir, "blobs"), 0, memory, hclog.NewNullLogger())
		if err != nil {
			t.Fatal(err)
		}
		cfg.Cache = local
	}
	r, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// gitRepo makes a one-commit repository of files and returns its path and
// the commit.
func gitRepo(t testing.TB, files map[string]string) (string, string) {
	t.Helper()
	dir := t.TempDir()
	for name, body := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	git := func(args ...string) string {
		cmd := exec.Command("git", args...)
		cmd.Dir = dir
		cmd.Env = append(os.Environ(), "GIT_AUTHOR_NAME=T", "GIT_AUTHOR_EMAIL=t@example.com",
			"GIT_COMMITTER_NAME=T", "GIT_COMMITTER_EMAIL=t@example.com")
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("git %v: %v: %s", args, err, out)
		}
		return strings.TrimSpace(string(out))
	}
	git("init", "--quiet")
	git("add", ".")
	git("commit", "--quiet", "-m", "source")
	return dir, git("rev-parse", "HEAD")
}

// jobSeq makes job ids, cache keys and sleep durations unique per test
// process.
var jobSeq atomic.Int64

// chunkSpec is a bootstrap-mode chunk job built from repo at commit that
// runs commands in its build phase and packs everything into name-bins.
func chunkSpec(repo, commit string, commands ...string) *pb.Job {
	n := jobSeq.Add(1)
	return &pb.Job{
		JobId: fmt.Sprintf("job-%d", n), Kind: pb.StepKind_STEP_KIND_CHUNK, Name: "hello",
		CacheKey: fmt.Sprintf("%064x", n), Arch: "x86_64",
		Spec: &pb.Job_Chunk{Chunk: &pb.ChunkJob{
			RepoUrl: repo, Commit: commit, BuildMode: pb.BuildMode_BUILD_MODE_BOOTSTRAP, Prefix: "/usr",
			Phases:     []*pb.CommandPhase{{Name: "build", Commands: commands}},
			SplitRules: []*pb.SplitRule{{Artifact: "hello-bins", Include: []string{".*"}}},
		}},
	}
}

// withTimeout sets a job's step timeout.
func withTimeout(spec *pb.Job, d time.Duration) *pb.Job {
	spec.Timeout = durationpb.New(d)
	return spec
}

// result is how a job ended, in the terms the session reports it.
type result struct {
	spec     *pb.Job
	phase    pb.JobPhase
	manifest *pb.Manifest
	check    *pb.CheckResult
	failure  *pb.JobFailure
	// profile is what the runner told a recorder as the job ended.
	profile *pb.StepProfile
}

// recorder is a Reporter that keeps what it is told; phases also go to a
// channel, for tests that wait for one.
type recorder struct {
	phases  chan pb.JobPhase
	mu      sync.Mutex
	output  bytes.Buffer
	profile *pb.StepProfile
}

func (r *recorder) Profile(p *pb.StepProfile) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.profile = p
}

func newRecorder() *recorder { return &recorder{phases: make(chan pb.JobPhase, 16)} }

func (r *recorder) Phase(p pb.JobPhase) {
	select {
	case r.phases <- p:
	default:
	}
}

func (r *recorder) Output(_ pb.OutputStream, data []byte) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.output.Write(data)
}

// runJob runs spec to the end as the worker would for the controller, and
// returns its outcome.
func runJob(t *testing.T, r *Runner, spec *pb.Job) *result {
	t.Helper()
	return runJobIn(t, context.Background(), r, spec, newRecorder())
}

// runJobIn is runJob with the job's context and reporter given.
func runJobIn(t *testing.T, ctx context.Context, r *Runner, spec *pb.Job, rep Reporter) *result {
	t.Helper()
	res := &result{spec: spec}
	done := make(chan struct{})
	go func() {
		defer close(done)
		o := r.Run(ctx, spec, rep)
		res.manifest, res.check, res.failure = o.Manifest, o.Check, o.Failure
	}()
	select {
	case <-done:
	case <-time.After(hangBound):
		t.Fatalf("job %s did not finish", spec.JobId)
	}
	if rec, ok := rep.(*recorder); ok {
		rec.mu.Lock()
		res.profile = rec.profile
		rec.mu.Unlock()
	}
	res.phase = pb.JobPhase_JOB_PHASE_DONE
	if res.failure != nil {
		res.phase = pb.JobPhase_JOB_PHASE_FAILED
	}
	return res
}

// failed returns how j failed, failing the test if it did not.
func failed(t *testing.T, j *result) *pb.JobFailure {
	t.Helper()
	if j.phase != pb.JobPhase_JOB_PHASE_FAILED || j.failure == nil {
		t.Fatalf("job ended in %v with manifest %v; want it to fail", j.phase, j.manifest)
	}
	return j.failure
}

// putBlob stores data in c and returns its digest.
func putBlob(t testing.TB, c cache.Cache, data []byte) digest.Digest {
	t.Helper()
	d := digest.OfBytes(data)
	if err := c.Upload(context.Background(), d, bytes.NewReader(data)); err != nil {
		t.Fatal(err)
	}
	return d
}

// fetchBlob reads a blob from the runner's cache.
func fetchBlob(t testing.TB, r *Runner, d *pb.Digest) []byte {
	t.Helper()
	dg, err := digest.FromProto(d)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "blob")
	if err := r.cfg.Cache.DownloadWithProgress(context.Background(), dg, path, nil); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return data
}

// sleepCommand is a sleep that outlives any test, with a duration no other
// process uses, so its process can be found in /proc.
func sleepCommand() (command, arg string) {
	arg = fmt.Sprintf("1000.%d%d", os.Getpid(), jobSeq.Add(1))
	return "sleep " + arg, arg
}

// withArg lists live processes with arg among their arguments. Zombies are
// dead and left out.
func withArg(arg string) []string {
	procs, _ := filepath.Glob("/proc/[0-9]*/cmdline")
	var found []string
	for _, p := range procs {
		cmdline, err := os.ReadFile(p)
		if err != nil || !strings.Contains("\x00"+string(cmdline), "\x00"+arg+"\x00") {
			continue
		}
		stat, _ := os.ReadFile(filepath.Join(filepath.Dir(p), "stat"))
		if !strings.Contains(string(stat), ") Z ") {
			found = append(found, filepath.Base(filepath.Dir(p))+" "+strings.ReplaceAll(string(cmdline), "\x00", " "))
		}
	}
	return found
}

// waitGone fails the test unless no live process has arg among its
// arguments within hangBound: a process killed a moment ago is not
// necessarily reaped yet.
func waitGone(t *testing.T, arg string) {
	t.Helper()
	deadline := time.Now().Add(hangBound)
	for {
		found := withArg(arg)
		if len(found) == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("processes still running with argument %q: %v", arg, found)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// silentServer accepts TCP connections on loopback and never answers, like
// a hung git or cache server. It returns its address.
func silentServer(t *testing.T) string {
	t.Helper()
	return stallingProxy(t, "", 0, 0)
}

// stallingProxy forwards TCP connections to target, but stops passing data
// towards the target after up bytes and towards the client after down
// bytes, per connection, holding the connections open: a network or server
// that hangs mid-transfer. With no target it forwards nothing.
func stallingProxy(t *testing.T, target string, up, down int64) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var conns []net.Conn
	keep := func(c net.Conn) {
		mu.Lock()
		conns = append(conns, c)
		mu.Unlock()
	}
	go func() {
		for {
			client, err := l.Accept()
			if err != nil {
				return
			}
			keep(client)
			if target == "" {
				continue
			}
			server, err := net.Dial("tcp", target)
			if err != nil {
				continue
			}
			keep(server)
			go io.CopyN(server, client, up)
			go io.CopyN(client, server, down)
		}
	}()
	t.Cleanup(func() {
		l.Close()
		mu.Lock()
		defer mu.Unlock()
		for _, c := range conns {
			c.Close()
		}
	})
	return l.Addr().String()
}
