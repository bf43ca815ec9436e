package main_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
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
	"distbuild/auth"
	"distbuild/digest"
	"distbuild/internal/gittest"
	distbuildv1 "distbuild/proto/distbuild/v1"

	"google.golang.org/grpc"
	"google.golang.org/protobuf/proto"
)

// trove is the binary under test, built once by TestMain.
var trove string

func TestMain(m *testing.M) {
	if dir := os.Getenv(putServerEnv); dir != "" {
		fmt.Fprintln(os.Stderr, servePuts(dir))
		os.Exit(1)
	}
	dir, err := os.MkdirTemp("", "trove-e2e-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	trove = filepath.Join(dir, "trove")
	if out, err := exec.Command("go", "build", "-o", trove, ".").CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "building trove: %v\n%s", err, out)
		os.RemoveAll(dir)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

type addrs struct{ GRPC, HTTP string }

// process is a running trove.
type process struct {
	cmd      *exec.Cmd
	addrs    addrs
	logPath  string
	addrFile string
	exited   chan struct{} // closed once the process has exited
	waitErr  error         // its exit status, valid once exited is closed
}

// start runs `trove serve` on random loopback ports and waits for it to
// write its address file.
func start(t testing.TB, dir string, extra ...string) *process {
	t.Helper()
	tmp := t.TempDir()
	p := &process{logPath: filepath.Join(tmp, "trove.log"), addrFile: filepath.Join(tmp, "addr.json"), exited: make(chan struct{})}
	logFile, err := os.Create(p.logPath)
	if err != nil {
		t.Fatal(err)
	}
	args := append([]string{"serve", "--dir", dir, "--listen", "127.0.0.1:0", "--http-listen", "127.0.0.1:0",
		"--addr-file", p.addrFile, "--max-size", "1GiB", "--scrub-interval", "0"}, extra...)
	p.cmd = exec.Command(trove, args...)
	p.cmd.Stderr = logFile
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		p.waitErr = p.cmd.Wait()
		logFile.Close()
		close(p.exited)
	}()
	t.Cleanup(func() {
		select {
		case <-p.exited:
		default:
			p.cmd.Process.Kill()
			<-p.exited
		}
		if t.Failed() {
			log, _ := os.ReadFile(p.logPath)
			t.Logf("trove log:\n%s", log)
		}
	})
	deadline := time.Now().Add(30 * time.Second)
	for {
		raw, err := os.ReadFile(p.addrFile)
		if err == nil {
			if err := json.Unmarshal(raw, &p.addrs); err != nil {
				t.Fatalf("address file %q: %v", raw, err)
			}
			return p
		}
		select {
		case <-p.exited:
			log, _ := os.ReadFile(p.logPath)
			t.Fatalf("trove exited before listening (%v):\n%s", p.waitErr, log)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatal("trove did not write its address file in time")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// stop sends SIGTERM and expects a clean exit.
func (p *process) stop(t *testing.T) {
	t.Helper()
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case <-p.exited:
		if p.waitErr != nil {
			t.Fatalf("trove exited with %v after SIGTERM, want status 0", p.waitErr)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("trove did not exit after SIGTERM")
	}
	if _, err := os.Stat(p.addrFile); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("address file left behind after a clean exit")
	}
	log, _ := os.ReadFile(p.logPath)
	for _, want := range []string{"listening", "shutting down", "stopped"} {
		if !bytes.Contains(log, []byte(want)) {
			t.Errorf("log does not say %q:\n%s", want, log)
		}
	}
}

// peakRSS reads the process's peak resident memory from /proc.
func (p *process) peakRSS(t testing.TB) int64 {
	t.Helper()
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", p.cmd.Process.Pid))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	s := bufio.NewScanner(f)
	for s.Scan() {
		if rest, ok := strings.CutPrefix(s.Text(), "VmHWM:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
			if err != nil {
				t.Fatal(err)
			}
			return kb << 10
		}
	}
	t.Fatal("no VmHWM in /proc status")
	return 0
}

// content is a deterministic pseudo-random stream, never whole in memory.
func content(seed byte, size int64) io.Reader {
	return io.LimitReader(rand.NewChaCha8([32]byte{seed}), size)
}

func contentDigest(t *testing.T, seed byte, size int64) digest.Digest {
	h := digest.NewHasher()
	if _, err := io.Copy(h, content(seed, size)); err != nil {
		t.Fatal(err)
	}
	return h.Digest()
}

func httpGet(t *testing.T, url, rangeHeader string) (int, string) {
	t.Helper()
	req, _ := http.NewRequest("GET", url, nil)
	if rangeHeader != "" {
		req.Header.Set("Range", rangeHeader)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body)
}

func TestTroveServesRestartsAndKeepsEverything(t *testing.T) {
	dir := t.TempDir()
	gitRoot := t.TempDir()
	gittest.Run(t, gitRoot, "init", "--quiet", "--bare", "--initial-branch=main", "definitions.git")
	work := t.TempDir()
	gittest.Run(t, work, "init", "--quiet", "--initial-branch=main")
	os.WriteFile(filepath.Join(work, "strata.morph"), []byte("name: core\n"), 0o644)
	gittest.Run(t, work, "add", ".")
	gittest.Run(t, work, "commit", "--quiet", "-m", "definitions")
	gittest.Run(t, work, "push", "--quiet", filepath.Join(gitRoot, "definitions.git"), "main")

	p := start(t, dir, "--git-dir", gitRoot)
	ctx := context.Background()
	c, err := artifactcache.Dial(p.addrs.GRPC)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()

	// A large blob streams both ways while the server's memory stays small.
	const big = 128 << 20
	bigDigest := contentDigest(t, 1, big)
	if err := c.Upload(ctx, bigDigest, content(1, big)); err != nil {
		t.Fatal(err)
	}
	h := digest.NewHasher()
	if err := c.Fetch(ctx, bigDigest, h); err != nil || h.Digest() != bigDigest {
		t.Fatalf("fetch of the big blob: %v, %v", h.Digest(), err)
	}
	rss := p.peakRSS(t)
	t.Logf("trove's peak RSS after streaming %d MiB each way: %.1f MiB", big>>20, float64(rss)/(1<<20))
	if rss >= 64<<20 {
		t.Errorf("trove's peak RSS was %d MiB streaming a %d MiB blob each way, want under 64 MiB", rss>>20, big>>20)
	}

	small, err := c.UploadBytes(ctx, []byte("0123456789"))
	if err != nil {
		t.Fatal(err)
	}
	m := &distbuildv1.Manifest{CacheKey: strings.Repeat("6", 64), StepName: "core", Kind: distbuildv1.StepKind_STEP_KIND_STRATUM, Worker: "w",
		Files: []*distbuildv1.ManifestFile{{Name: "core-runtime", Digest: bigDigest.Proto()}, {Name: "log", Digest: small.Proto()}}}
	if err := c.PutManifest(ctx, m); err != nil {
		t.Fatal(err)
	}
	if code, body := httpGet(t, "http://"+p.addrs.HTTP+"/blobs/sha256/"+small.Hash().String(), "bytes=2-4"); code != 206 || body != "234" {
		t.Errorf("HTTP range read: %d %q, want 206 %q", code, body, "234")
	}
	if code, body := httpGet(t, "http://"+p.addrs.HTTP+"/artifacts/"+m.CacheKey, ""); code != 200 || !strings.Contains(body, "core-runtime") {
		t.Errorf("HTTP manifest: %d %q", code, body)
	}
	clones := t.TempDir()
	gittest.Run(t, clones, "clone", "--quiet", "http://"+p.addrs.HTTP+"/git/definitions.git", "defs")
	if got, _ := os.ReadFile(filepath.Join(clones, "defs", "strata.morph")); string(got) != "name: core\n" {
		t.Errorf("cloned file holds %q", got)
	}

	p.stop(t)
	p = start(t, dir)
	c2, err := artifactcache.Dial(p.addrs.GRPC)
	if err != nil {
		t.Fatal(err)
	}
	defer c2.Close()
	key, _ := digest.ParseCacheKey(m.CacheKey)
	got, err := c2.GetManifest(ctx, key)
	if err != nil || !proto.Equal(got, m) {
		t.Fatalf("after restart manifest %v, %v; want %v", got, err, m)
	}
	missing, missingKeys, err := c2.FindMissing(ctx, []digest.Digest{bigDigest, small}, []digest.CacheKey{key})
	if err != nil || len(missing)+len(missingKeys) != 0 {
		t.Fatalf("after restart missing %v %v (%v), want nothing", missing, missingKeys, err)
	}
	var buf bytes.Buffer
	if err := c2.Fetch(ctx, small, &buf); err != nil || buf.String() != "0123456789" {
		t.Fatalf("after restart blob %q, %v", buf.String(), err)
	}
	p.stop(t)
}

func runTrove(t *testing.T, args ...string) (int, string) {
	t.Helper()
	out, err := exec.Command(trove, args...).CombinedOutput()
	var exit *exec.ExitError
	if errors.As(err, &exit) {
		return exit.ExitCode(), string(out)
	}
	if err != nil {
		t.Fatal(err)
	}
	return 0, string(out)
}

func TestScrubCommandFindsAndQuarantinesCorruption(t *testing.T) {
	dir := t.TempDir()
	p := start(t, dir)
	c, err := artifactcache.Dial(p.addrs.GRPC)
	if err != nil {
		t.Fatal(err)
	}
	d, err := c.UploadBytes(context.Background(), []byte("will be damaged"))
	c.Close()
	if err != nil {
		t.Fatal(err)
	}
	p.stop(t)

	if code, out := runTrove(t, "scrub", "--dir", dir); code != 0 || !strings.Contains(out, "checked 1 blobs") {
		t.Fatalf("scrub of an intact store: exit %d\n%s", code, out)
	}
	h := d.Hash().String()
	os.WriteFile(filepath.Join(dir, "blobs", h[:2], h), []byte("was damaged !!!"), 0o644)
	code, out := runTrove(t, "scrub", "--dir", dir)
	if code != 3 || !strings.Contains(out, d.String()) {
		t.Fatalf("scrub of a damaged store: exit %d, want 3 naming %s\n%s", code, d, out)
	}
	if code, out := runTrove(t, "scrub", "--dir", dir); code != 0 || !strings.Contains(out, "checked 0 blobs") {
		t.Fatalf("scrub after quarantine: exit %d\n%s", code, out)
	}
}

func TestCommandLine(t *testing.T) {
	for _, tc := range []struct {
		args []string
		code int
		says string
	}{
		{[]string{}, 2, "Usage"},
		{[]string{"frobnicate"}, 2, "unknown command"},
		{[]string{"serve"}, 2, "--dir is required"},
		{[]string{"serve", "--dir", t.TempDir(), "--bogus"}, 2, "unknown flag"},
		{[]string{"serve", "--dir", t.TempDir(), "--max-size", "lots"}, 2, "not a size"},
		{[]string{"serve", "--dir", t.TempDir(), "--log-level", "loud"}, 2, "unknown log level"},
		{[]string{"serve", "--dir", t.TempDir(), "--upload-idle-timeout", "0s"}, 2, "--upload-idle-timeout must be positive"},
		{[]string{"scrub"}, 2, "give either --dir DIR"},
		{[]string{"scrub", "--dir", t.TempDir(), "--trove", "127.0.0.1:1"}, 2, "give either --dir DIR"},
		{[]string{"scrub", "--dir", t.TempDir(), "--token-file", "t"}, 2, "go with --trove"},
	} {
		code, out := runTrove(t, tc.args...)
		if code != tc.code || !strings.Contains(out, tc.says) {
			t.Errorf("trove %s: exit %d, output %q; want exit %d saying %q", strings.Join(tc.args, " "), code, out, tc.code, tc.says)
		}
	}
}

func TestHelpListsEachCommandsFlags(t *testing.T) {
	for _, tc := range []struct {
		args       []string
		says       []string
		doesNotSay []string
	}{
		{
			[]string{"--help"},
			[]string{"trove serve --dir DIR", "trove scrub --dir DIR | --trove ADDR", "trove serve --help", "trove scrub --help"},
			[]string{"--max-size"},
		},
		{
			[]string{"serve", "--help"},
			[]string{"Usage: trove serve --dir DIR [flags]", "--dir", "--listen", "--http-listen", "--git-dir", "--max-size",
				"--scrub-interval", "--access-flush-interval", "--shutdown-timeout", "--upload-idle-timeout", "--addr-file",
				"--log-level", "--tls-cert", "--tls-key", "--tls-client-ca", "--require-auth", "--registry"},
			[]string{"trove scrub", "trove help"},
		},
		{
			[]string{"scrub", "--help"},
			[]string{"Usage: trove scrub --dir DIR | --trove ADDR", "Exit status", "--dir", "--trove", "--token-file",
				"--tls-ca", "--tls-cert", "--tls-key", "--log-level"},
			[]string{"trove serve", "--max-size"},
		},
	} {
		code, out := runTrove(t, tc.args...)
		if code != 0 {
			t.Errorf("trove %s: exit %d, want 0", strings.Join(tc.args, " "), code)
		}
		for _, want := range tc.says {
			if !strings.Contains(out, want) {
				t.Errorf("trove %s does not say %q:\n%s", strings.Join(tc.args, " "), want, out)
			}
		}
		for _, unwanted := range tc.doesNotSay {
			if strings.Contains(out, unwanted) {
				t.Errorf("trove %s says %q, which belongs elsewhere:\n%s", strings.Join(tc.args, " "), unwanted, out)
			}
		}
	}
}

// registry writes a registry with one worker and one user and files
// holding their tokens.
func registry(t *testing.T) (path, workerToken, userToken string) {
	t.Helper()
	dir := t.TempDir()
	path = filepath.Join(dir, "registry.json")
	r, err := auth.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	files := map[auth.Kind]string{}
	for kind, name := range map[auth.Kind]string{auth.KindWorker: "w1", auth.KindUser: "alice"} {
		token, err := r.Add(kind, name, nil)
		if err != nil {
			t.Fatal(err)
		}
		files[kind] = filepath.Join(dir, name+".token")
		if err := os.WriteFile(files[kind], []byte(string(token)+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	if err := r.Save(path); err != nil {
		t.Fatal(err)
	}
	return path, files[auth.KindWorker], files[auth.KindUser]
}

func TestScrubOfARunningTroveGoesThroughIt(t *testing.T) {
	dir := t.TempDir()
	reg, workerTokenFile, userTokenFile := registry(t)
	p := start(t, dir, "--require-auth", "--registry", reg)
	workerToken, err := auth.ReadTokenFile(workerTokenFile)
	if err != nil {
		t.Fatal(err)
	}
	c, err := artifactcache.Dial(p.addrs.GRPC, grpc.WithPerRPCCredentials(workerToken))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	good, err := c.UploadBytes(context.Background(), []byte("stays intact"))
	if err != nil {
		t.Fatal(err)
	}
	bad, err := c.UploadBytes(context.Background(), []byte("will be damaged"))
	if err != nil {
		t.Fatal(err)
	}
	h := bad.Hash().String()
	os.WriteFile(filepath.Join(dir, "blobs", h[:2], h), []byte("was damaged !!!"), 0o644)

	// The running trove holds the directory: the error says what to do.
	if code, out := runTrove(t, "scrub", "--dir", dir); code != 1 || !strings.Contains(out, "trove scrub --trove ADDR") {
		t.Errorf("offline scrub of a served store: exit %d, want 1 pointing at trove scrub --trove\n%s", code, out)
	}
	// Only a registered user may have the trove scrub.
	if code, out := runTrove(t, "scrub", "--trove", p.addrs.GRPC); code != 1 || !strings.Contains(out, "Unauthenticated") {
		t.Errorf("scrub without a token: exit %d, want 1 and Unauthenticated\n%s", code, out)
	}
	if code, out := runTrove(t, "scrub", "--trove", p.addrs.GRPC, "--token-file", workerTokenFile); code != 1 || !strings.Contains(out, "PermissionDenied") {
		t.Errorf("scrub with a worker's token: exit %d, want 1 and PermissionDenied\n%s", code, out)
	}
	if missing, _, err := c.FindMissing(context.Background(), []digest.Digest{bad}, nil); err != nil || len(missing) != 0 {
		t.Fatalf("a refused scrub ran: missing %v, %v", missing, err)
	}

	code, out := runTrove(t, "scrub", "--trove", p.addrs.GRPC, "--token-file", userTokenFile)
	if code != 3 || !strings.Contains(out, "checked 2 blobs") || !strings.Contains(out, "corrupt blob, quarantined: "+bad.String()) || strings.Contains(out, good.String()) {
		t.Fatalf("scrub by a user: exit %d, want 3 naming only %s as corrupt\n%s", code, bad, out)
	}
	if missing, _, err := c.FindMissing(context.Background(), []digest.Digest{good, bad}, nil); err != nil || len(missing) != 1 || missing[0] != bad {
		t.Errorf("after the scrub missing %v (%v), want only %s", missing, err, bad)
	}
	if code, out := runTrove(t, "scrub", "--trove", p.addrs.GRPC, "--token-file", userTokenFile); code != 0 || !strings.Contains(out, "checked 1 blobs") {
		t.Errorf("second scrub: exit %d, want 0 with one intact blob\n%s", code, out)
	}
	p.stop(t)
}
