package demo

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"hash/crc32"
	"hash/fnv"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"distbuild/definitions"
	"distbuild/internal/gittest"
)

// demoRemote is a URL like the one `make demo` gives make-trove.sh: where
// the trove will serve the definitions repository.
const demoRemote = "http://127.0.0.1:8080/git/baserock/definitions.git"

// The tests share one trove (made once by make-trove.sh) and one farm, so
// that demo-base is built once for both systems, as the real cache would.
var shared struct {
	once  sync.Once
	dir   string // removed by TestMain
	trove string
	out   string // what make-trove.sh printed
	farm  *farm
	err   error
}

func TestMain(m *testing.M) {
	code := m.Run()
	if shared.dir != "" {
		os.RemoveAll(shared.dir)
	}
	os.Exit(code)
}

// setup returns the shared trove directory and farm, making them first.
func setup(t *testing.T) (string, *farm) {
	t.Helper()
	shared.once.Do(func() {
		for _, tool := range []string{"git", "make", "cc", "sh", "strip"} {
			if _, err := exec.LookPath(tool); err != nil {
				shared.err = fmt.Errorf("the demo content needs %s on PATH: %v", tool, err)
				return
			}
		}
		if shared.dir, shared.err = os.MkdirTemp("", "distbuild-demo-test-"); shared.err != nil {
			return
		}
		shared.trove = filepath.Join(shared.dir, "trove")
		if shared.out, shared.err = makeTrove(shared.trove, demoRemote); shared.err != nil {
			return
		}
		shared.farm = newFarm(shared.trove, filepath.Join(shared.dir, "farm"))
	})
	if shared.err != nil {
		t.Fatal(shared.err)
	}
	return shared.trove, shared.farm
}

func makeTrove(dir string, args ...string) (string, error) {
	out, err := exec.Command("./make-trove.sh", append([]string{dir}, args...)...).CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("make-trove.sh %s: %w\n%s", dir, err, out)
	}
	return string(out), nil
}

// git runs git in dir and returns its trimmed output.
// heads maps each repository under trove/git (e.g. "upstream/strbuf.git")
// to the commit its master branch points at.
func heads(t *testing.T, trove string) map[string]string {
	t.Helper()
	repos, err := filepath.Glob(filepath.Join(trove, "git", "*", "*.git"))
	if err != nil {
		t.Fatal(err)
	}
	h := map[string]string{}
	for _, r := range repos {
		rel, _ := filepath.Rel(filepath.Join(trove, "git"), r)
		h[rel] = gittest.Run(t, r, "rev-parse", "refs/heads/master")
	}
	return h
}

func sourceNames(t *testing.T) []string {
	t.Helper()
	entries, err := os.ReadDir("sources")
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		if e.IsDir() {
			names = append(names, e.Name())
		}
	}
	return names
}

func resolve(t *testing.T, trove, system string) *definitions.Graph {
	t.Helper()
	defs, err := definitions.Open(os.DirFS(filepath.Join(trove, "definitions")))
	if err != nil {
		t.Fatal(err)
	}
	g, err := defs.Resolve(context.Background(), system, definitions.CommitsOnly{})
	if err != nil {
		t.Fatal(err)
	}
	return g
}

func chunkSteps(g *definitions.Graph) []*definitions.Step {
	var out []*definitions.Step
	for _, s := range g.Steps {
		if s.Kind == definitions.KindChunk {
			out = append(out, s)
		}
	}
	return out
}

func TestMakeTroveGivesTheSameCommitsEveryTime(t *testing.T) {
	trove, _ := setup(t)
	other := filepath.Join(t.TempDir(), "trove")
	out, err := makeTrove(other)
	if err != nil {
		t.Fatal(err)
	}

	want := heads(t, trove)
	got := heads(t, other)
	var wantRepos []string
	for _, name := range sourceNames(t) {
		wantRepos = append(wantRepos, "upstream/"+name+".git")
	}
	wantRepos = append(wantRepos, "baserock/definitions.git")
	for _, repo := range wantRepos {
		if want[repo] == "" || want[repo] != got[repo] {
			t.Errorf("%s: master is %q in one trove and %q in another; want the same commit in both", repo, want[repo], got[repo])
		}
	}
	if len(want) != len(wantRepos) || len(got) != len(wantRepos) {
		t.Errorf("troves hold %d and %d repositories; want %d (one per source, plus definitions)", len(want), len(got), len(wantRepos))
	}

	defsHead := want["baserock/definitions.git"]
	for _, s := range []string{fmt.Sprintf("%d source repositories", len(wantRepos)-1), "definitions at " + defsHead} {
		if !strings.Contains(out, s) {
			t.Errorf("make-trove.sh printed:\n%s\nwant it to mention %q", out, s)
		}
	}

	// The checkout is at the definitions commit, clean, with origin set
	// to the URL given or, without one, to the bare repository.
	for _, c := range []struct{ trove, origin string }{
		{trove, demoRemote},
		{other, filepath.Join(other, "git", "baserock", "definitions.git")},
	} {
		checkout := filepath.Join(c.trove, "definitions")
		if head := gittest.Run(t, checkout, "rev-parse", "HEAD"); head != defsHead {
			t.Errorf("%s is at %s; want the definitions commit %s", checkout, head, defsHead)
		}
		if status := gittest.Run(t, checkout, "status", "--porcelain"); status != "" {
			t.Errorf("%s has changes:\n%s", checkout, status)
		}
		if origin := gittest.Run(t, checkout, "remote", "get-url", "origin"); origin != c.origin {
			t.Errorf("%s: origin is %q; want %q", checkout, origin, c.origin)
		}
	}

	// A second run into the same directory must not touch it.
	out, err = makeTrove(other)
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.ExitCode() != 1 || !strings.Contains(out, "already exists") {
		t.Errorf("make-trove.sh into an existing trove: err %v, output %q; want exit status 1 saying it already exists", err, out)
	}
	if after := heads(t, other); !mapsEqual(after, got) {
		t.Errorf("the refused run changed the trove's repositories")
	}
}

func mapsEqual(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}

func TestDefinitionsPinEveryChunkToItsSourceCommit(t *testing.T) {
	trove, _ := setup(t)
	used := map[string]bool{}
	for _, system := range []string{"systems/demo-system.morph", "systems/broken-system.morph"} {
		g := resolve(t, trove, system)
		// The farm maps upstream: onto its trove; every repo must resolve.
		if _, err := g.ResolveRepos(definitions.NewRepoAliases("http://127.0.0.1:8080/git")); err != nil {
			t.Errorf("%s: %v", system, err)
		}
		for _, s := range chunkSteps(g) {
			c := s.Chunk
			name, ok := strings.CutPrefix(c.Repo, "upstream:")
			if !ok {
				t.Errorf("%s: chunk %s: repo %q; want upstream:<name>", system, s.Name, c.Repo)
				continue
			}
			used[name] = true
			if !definitions.IsCommit(c.Ref) {
				t.Errorf("%s: chunk %s: ref %q is not a commit SHA", system, s.Name, c.Ref)
				continue
			}
			bare := filepath.Join(trove, "git", "upstream", name+".git")
			if head := gittest.Run(t, bare, "rev-parse", "--verify", c.Ref+"^{commit}"); head != c.Ref {
				t.Errorf("%s: chunk %s: ref %s is not a commit of %s", system, s.Name, c.Ref, bare)
			}
			if head := gittest.Run(t, bare, "rev-parse", "refs/heads/master"); head != c.Ref {
				t.Errorf("%s: chunk %s: ref %s, but %s's master is %s", system, s.Name, c.Ref, bare, head)
			}
		}
	}
	for _, name := range sourceNames(t) {
		if !used[name] {
			t.Errorf("sources/%s is not built by any system", name)
		}
	}

	// The shape the README describes.
	g := resolve(t, trove, "systems/demo-system.morph")
	if n := len(chunkSteps(g)); n != 18 {
		t.Errorf("demo-system has %d chunks; want 18", n)
	}
	if s := g.Step("demo-config"); s == nil || s.Chunk.BuildMode != "bootstrap" {
		t.Errorf("demo-config should be demo-base's bootstrap chunk")
	}
}

// wantHello is demo-hello's exact output. The checksum row is checked
// against Go's own CRC-32 and FNV-1a in TestDemoSystemBuildsAndRuns.
const wantHello = `Hello from the demo system (demo libraries 1.0)
+----------+-----------------+--------------------------------------------------+
| library  | input           | output                                           |
+----------+-----------------+--------------------------------------------------+
| hashkit  | "123456789"     | crc32:cbf43926                                   |
| checksum | "distbuild"     | crc32:1e93ff31 fnv1a64:c579d43918a30997          |
| codec    | "distbuild"     | ZGlzdGJ1aWxk                                     |
| semver   | 1.9.0 vs 1.10.0 | 1.9.0 < 1.10.0                                   |
| jsonw    | 3 strata        | {"strata":["demo-base","demo-libs","demo-apps"]} |
+----------+-----------------+--------------------------------------------------+
demo-hello: all 5 checks passed
`

func sums(data string) string {
	h := fnv.New64a()
	h.Write([]byte(data))
	return fmt.Sprintf("crc32:%08x fnv1a64:%016x", crc32.ChecksumIEEE([]byte(data)), h.Sum64())
}

// wrap breaks s into lines of n characters, as base64(1) does.
func wrap(s string, n int) string {
	var b strings.Builder
	for len(s) > n {
		b.WriteString(s[:n] + "\n")
		s = s[n:]
	}
	b.WriteString(s + "\n")
	return b.String()
}

func TestDemoSystemBuildsAndRuns(t *testing.T) {
	trove, f := setup(t)
	g := resolve(t, trove, "systems/demo-system.morph")
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if err := f.buildChunks(ctx, g, t.Logf); err != nil {
		t.Fatal(err)
	}
	// Chunks of build-system make-check ran their own tests.
	for _, name := range []string{"hashkit", "codec", "semver"} {
		if log := f.logs[name]; !strings.Contains(log, name+": all tests passed") {
			t.Errorf("chunk %s: its test phase did not report success; log:\n%s", name, log)
		}
	}

	root := filepath.Join(t.TempDir(), "root")
	if err := f.assemble(g, root); err != nil {
		t.Fatal(err)
	}
	// demo-libs is filtered to -runtime: its shared objects are in the
	// system, its headers and .pc files are not; demo-base is whole.
	for path, want := range map[string]bool{
		"usr/lib/libcodec.so.1":           true,
		"usr/lib/libcodec.so":             true,
		"usr/include/codec.h":             false,
		"usr/lib/pkgconfig/codec.pc":      false,
		"usr/include/strbuf.h":            true,
		"usr/lib/pkgconfig/strbuf.pc":     true,
		"usr/bin/demo-hello":              true,
		"usr/share/doc/demo-hello/README": true,
		"usr/share/demo/sample.ini":       true,
	} {
		if _, err := os.Lstat(filepath.Join(root, path)); (err == nil) != want {
			t.Errorf("%s in the system: %v; want present=%v", path, err, want)
		}
	}

	if !strings.Contains(wantHello, "| checksum | \"distbuild\"     | "+sums("distbuild")+" ") {
		t.Fatalf("wantHello's checksum row disagrees with Go's CRC-32 and FNV-1a of \"distbuild\" (%s)", sums("distbuild"))
	}
	sample, err := os.ReadFile(filepath.Join(root, "usr/share/demo/sample.ini"))
	if err != nil {
		t.Fatal(err)
	}
	binary := make([]byte, 256)
	for i := range binary {
		binary[i] = byte(i)
	}
	b64 := base64.StdEncoding.EncodeToString(binary)
	for _, c := range []struct {
		args       []string
		stdin      string
		wantOut    string
		wantErr    string
		wantStatus int
	}{
		{args: []string{"demo-hello"}, wantOut: wantHello},
		{args: []string{"demo-sum", "sample.ini"}, wantOut: fmt.Sprintf("%s  %d  sample.ini\n", sums(string(sample)), len(sample))},
		{args: []string{"demo-sum", "missing"}, wantErr: "demo-sum: error: cannot open missing: No such file or directory\n", wantStatus: 1},
		{args: []string{"demo-b64"}, stdin: string(binary), wantOut: wrap(b64, 76)},
		{args: []string{"demo-b64", "--decode"}, stdin: b64, wantOut: string(binary)},
		{args: []string{"demo-b64", "-d"}, stdin: "not base64!", wantErr: "demo-b64: error: input is not valid base64\n", wantStatus: 1},
		{args: []string{"demo-ini2json", "sample.ini"}, wantOut: `{"":{"name":"demo-system"},"farm":{"controller":"127.0.0.1:7878","workers":"2"},"build":{"strata":"demo-base demo-libs demo-apps","max-jobs":"4"}}` + "\n"},
		{args: []string{"demo-semver", "1.10.0", "1.9.0", "1.0.0", "1.0.0-rc.1"}, wantOut: "1.0.0-rc.1\n1.0.0\n1.9.0\n1.10.0\n"},
		{args: []string{"demo-semver", "--max", "2.0.0-alpha", "1.99.0"}, wantOut: "2.0.0-alpha\n"},
	} {
		// No LD_LIBRARY_PATH: the programs find their libraries in the
		// root through their $ORIGIN run paths, as on a deployed system.
		cmd := exec.Command(filepath.Join(root, "usr/bin", c.args[0]), c.args[1:]...)
		cmd.Dir = filepath.Join(root, "usr/share/demo")
		cmd.Env = []string{"PATH=/usr/bin:/bin", "LC_ALL=C"}
		cmd.Stdin = strings.NewReader(c.stdin)
		var stdout, stderr strings.Builder
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		err := cmd.Run()
		status := 0
		var exit *exec.ExitError
		if errors.As(err, &exit) {
			status = exit.ExitCode()
		} else if err != nil {
			t.Errorf("%v: %v", c.args, err)
			continue
		}
		if status != c.wantStatus || stdout.String() != c.wantOut || stderr.String() != c.wantErr {
			t.Errorf("%v: exit status %d, stdout:\n%s\nstderr:\n%s\nwant exit status %d, stdout:\n%s\nstderr:\n%s",
				c.args, status, stdout.String(), stderr.String(), c.wantStatus, c.wantOut, c.wantErr)
		}
	}
}

func TestBrokenSystemFailsInDemoBroken(t *testing.T) {
	trove, f := setup(t)
	g := resolve(t, trove, "systems/broken-system.morph")
	demo := resolve(t, trove, "systems/demo-system.morph")
	// demo-base is the same in both systems, so its steps have the same
	// cache keys and a farm builds them once for both.
	for _, s := range chunkSteps(g) {
		if s.Chunk.Stratum == "demo-base" && demo.Step(s.Name).CacheKey != s.CacheKey {
			t.Errorf("chunk %s has different cache keys in the two systems", s.Name)
		}
	}

	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	before := f.built
	err := f.buildChunks(ctx, g, t.Logf)
	var be *buildError
	if !errors.As(err, &be) {
		t.Fatalf("building broken-system: got %v; want a failed build step", err)
	}
	if be.Step != "demo-broken" || be.Phase != "build" || be.ExitCode != 1 {
		t.Errorf("failed in chunk %s, %s phase, exit status %d; want demo-broken, build phase, exit status 1", be.Step, be.Phase, be.ExitCode)
	}
	for _, line := range []string{"compiling broken.c, which is meant to fail", "demo-broken: this chunk fails to build on purpose"} {
		if !strings.Contains(be.Log, line) {
			t.Errorf("the failed step's log does not contain %q; log:\n%s", line, be.Log)
		}
	}
	// Every other chunk of the system built (or was cached) first.
	for _, s := range chunkSteps(g) {
		if _, ok := f.installs[s.CacheKey]; !ok && s.Name != "demo-broken" {
			t.Errorf("chunk %s was not built before demo-broken failed", s.Name)
		}
	}
	if slices.Contains(chunkSteps(demo), g.Step("demo-broken")) {
		t.Errorf("demo-broken must not be part of demo-system")
	}
	t.Logf("built %d chunks for broken-system (demo-base is shared with demo-system when that ran first)", f.built-before)
}
