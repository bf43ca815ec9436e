package initiator_test

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"distbuild/definitions"
	"distbuild/definitions/definitionstest"
	"distbuild/initiator"
)

// checkout writes a small generated definitions tree into a temporary
// directory, makes it the working directory and returns it.
func checkout(t *testing.T) (string, *definitionstest.Tree) {
	t.Helper()
	tree := definitionstest.Generate(definitionstest.Config{Strata: 5, Chunks: 20, Seed: 7})
	dir := t.TempDir()
	if err := definitionstest.WriteDir(dir, tree.FS); err != nil {
		t.Fatal(err)
	}
	t.Chdir(dir)
	return dir, tree
}

func run(args ...string) (status int, stdout, stderr string) {
	var out, errOut bytes.Buffer
	status = initiator.Main(args, &out, &errOut)
	return status, out.String(), errOut.String()
}

func TestGraphJSONListsEveryStepWithTheLibrarysKeys(t *testing.T) {
	_, tree := checkout(t)
	status, out, errOut := run("graph", "--format=json", tree.FullSystem)
	if status != initiator.ExitOK {
		t.Fatalf("exit %d: %s", status, errOut)
	}
	var doc initiator.GraphJSON
	if err := json.Unmarshal([]byte(out), &doc); err != nil {
		t.Fatalf("output is not JSON: %v\n%s", err, out)
	}
	defs, err := definitions.Open(tree.FS)
	if err != nil {
		t.Fatal(err)
	}
	g, err := defs.Resolve(context.Background(), tree.FullSystem, definitions.CommitsOnly{})
	if err != nil {
		t.Fatal(err)
	}
	if len(doc.Steps) != len(g.Steps) || doc.System != g.Name || doc.Arch != "x86_64" {
		t.Fatalf("printed %d steps of %q/%q, want %d of %q/x86_64", len(doc.Steps), doc.System, doc.Arch, len(g.Steps), g.Name)
	}
	for i, s := range doc.Steps {
		want := g.Steps[i]
		if s.Name != want.Name || s.CacheKey != want.CacheKey.String() || s.Kind != want.Kind.String() || len(s.DependsOn) != len(want.Deps) {
			t.Errorf("step %d = %+v, want %s %s %s", i, s, want.Name, want.Kind, want.CacheKey)
		}
		if want.Kind == definitions.KindChunk && (s.Commit != want.Chunk.Commit || s.Stratum == "") {
			t.Errorf("chunk %s: commit %q stratum %q", s.Name, s.Commit, s.Stratum)
		}
	}
}

func TestGraphTextAndDotFormats(t *testing.T) {
	dir, tree := checkout(t)
	status, out, errOut := run("graph", tree.FullSystem)
	if status != initiator.ExitOK {
		t.Fatalf("exit %d: %s", status, errOut)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	// A comment line, a header line, then one line per step: 20 chunks, 5
	// strata, 1 system.
	if len(lines) != 2+26 || !strings.HasPrefix(lines[1], "STEP") || !strings.HasPrefix(lines[len(lines)-1], "full-system ") {
		t.Errorf("text output has %d lines, want 28 ending with the system:\n%s", len(lines), out)
	}

	// From a subdirectory, with a path relative to it.
	t.Chdir(filepath.Join(dir, "systems"))
	status, out, errOut = run("graph", "--format", "dot", filepath.Base(tree.FullSystem))
	if status != initiator.ExitOK {
		t.Fatalf("dot from a subdirectory: exit %d: %s", status, errOut)
	}
	if !strings.HasPrefix(out, `digraph "full-system" {`) || !strings.Contains(out, `-> "build-essential";`) || !strings.HasSuffix(out, "}\n") {
		t.Errorf("dot output is not a digraph with edges to build-essential:\n%s", out)
	}
	if n := strings.Count(out, " -> "); n < 20 {
		t.Errorf("dot output has only %d edges", n)
	}
}

func TestGraphReportsBadDefinitionsWithFileAndLine(t *testing.T) {
	dir, tree := checkout(t)
	stratum := filepath.Join(dir, "strata", "stratum-002.morph")
	data, err := os.ReadFile(stratum)
	if err != nil {
		t.Fatal(err)
	}
	bad := strings.Replace(string(data), "kind: stratum", "kind: stratum\nbuld-depends: []", 1)
	if err := os.WriteFile(stratum, []byte(bad), 0o644); err != nil {
		t.Fatal(err)
	}
	status, out, errOut := run("graph", tree.FullSystem)
	if status != initiator.ExitFailure || out != "" {
		t.Errorf("exit %d with output %q, want %d and nothing on stdout", status, out, initiator.ExitFailure)
	}
	if want := `initiator graph: strata/stratum-002.morph:3: stratum: unknown field "buld-depends"`; strings.TrimSpace(errOut) != want {
		t.Errorf("stderr = %q, want %q", errOut, want)
	}
}

func TestGraphUsageErrors(t *testing.T) {
	_, tree := checkout(t)
	for _, tc := range []struct {
		args       []string
		wantStatus int
		wantErr    string
	}{
		{[]string{"graph", "--format=yaml", tree.FullSystem}, initiator.ExitUsage, `unknown --format "yaml"`},
		{[]string{"graph"}, initiator.ExitUsage, "Usage: initiator graph"},
		{[]string{"graph", "--bogus", tree.FullSystem}, initiator.ExitUsage, "unknown flag: --bogus"},
		{[]string{"graph", "systems/missing.morph"}, initiator.ExitFailure, "systems/missing.morph: no such file"},
		{[]string{"graph", "/"}, initiator.ExitFailure, "not inside a definitions checkout"},
		{[]string{"grahp"}, initiator.ExitUsage, `unknown command "grahp"`},
		{[]string{"graph", "--help"}, initiator.ExitOK, "--format string"},
	} {
		status, _, errOut := run(tc.args...)
		if status != tc.wantStatus || !strings.Contains(errOut, tc.wantErr) {
			t.Errorf("initiator %v: exit %d stderr %q; want exit %d mentioning %q", tc.args, status, errOut, tc.wantStatus, tc.wantErr)
		}
	}
}

// corpusCheckout writes the definitions corpus into a temporary directory
// and makes it the working directory; pinned replaces its one branch ref
// with a commit, as graph needs offline.
func corpusCheckout(t *testing.T, pinned bool) *definitionstest.Corpus {
	t.Helper()
	c := definitionstest.NewCorpus(8)
	if pinned {
		f := c.FS["strata/ruby.morph"]
		f.Data = []byte(strings.Replace(string(f.Data), c.BranchRef, strings.Repeat("b", 40), 1))
	}
	dir := t.TempDir()
	if err := definitionstest.WriteDir(dir, c.FS); err != nil {
		t.Fatal(err)
	}
	t.Chdir(dir)
	return c
}

func TestGraphOfAClusterHoldsEverySystemWithUniqueNamesAndWarnsOnce(t *testing.T) {
	c := corpusCheckout(t, true)
	status, out, errOut := run("graph", "--format=json", c.Cluster)
	if status != initiator.ExitOK {
		t.Fatalf("exit %d: %s", status, errOut)
	}
	var doc initiator.GraphJSON
	if err := json.Unmarshal([]byte(out), &doc); err != nil {
		t.Fatalf("output is not JSON: %v\n%s", err, out)
	}
	if doc.System != "release" || !doc.Cluster || strings.Join(doc.Systems, " ") != "devel-system-x86_64 initramfs-x86_64 ruby.system" {
		t.Errorf("graph of %q (cluster %v) with systems %v, want the release cluster's three systems", doc.System, doc.Cluster, doc.Systems)
	}
	byName := map[string]initiator.GraphStepJSON{}
	for _, s := range doc.Steps {
		byName[s.Name] = s
	}
	for name, want := range map[string]string{
		"groff@docs":   "chunk groff docs",
		"groff":        "chunk groff foundation",
		"ruby":         "chunk ruby ruby",
		"ruby.stratum": "stratum ruby ",
		"ruby.system":  "system ruby ",
	} {
		s := byName[name]
		if got := s.Kind + " " + s.DefinedName + " " + s.Stratum; got != want {
			t.Errorf("%s: kind, defined name and stratum %q, want %q", name, got, want)
		}
	}
	if n := strings.Count(errOut, "initiator graph: warning: "); n != 2 || !strings.Contains(errOut, `"foundation-core-openssl"`) || !strings.Contains(errOut, `"ModemManager-misc"`) {
		t.Errorf("stderr = %q, want the corpus's two warnings once each", errOut)
	}
}

func TestGraphOfABranchRefSaysItNeedsAPinnedCommit(t *testing.T) {
	c := corpusCheckout(t, false)
	status, _, errOut := run("graph", c.RubySystem)
	if status != initiator.ExitFailure || !strings.Contains(errOut, `strata/ruby.morph:14: stratum "ruby": chunk "bundler": ref "baserock/ruby/bundler-2" is not a commit SHA`) || !strings.Contains(errOut, "pin it") {
		t.Errorf("exit %d, stderr %q; want the branch ref's file, line and that it needs a pinned commit", status, errOut)
	}
}

func TestLintPrintsEveryProblemAndFailsOnAny(t *testing.T) {
	corpusCheckout(t, false)
	status, out, errOut := run("lint")
	want := "strata/foundation/systemd.morph:16: warning: stratum \"foundation\": chunk \"systemd\": system-integration names \"ModemManager-misc\""
	if status != initiator.ExitFailure || !strings.HasPrefix(out, want) || strings.Count(out, "\n") != 2 || !strings.Contains(errOut, "0 errors, 2 warnings") {
		t.Errorf("lint: exit %d\nstdout %q\nstderr %q\nwant exit 1, the two warnings and a count", status, out, errOut)
	}
	t.Chdir("strata")
	if status, out, errOut := run("lint", "ruby.morph", "docs.morph"); status != initiator.ExitOK || out != "" {
		t.Errorf("lint of two strata named from a subdirectory: exit %d %q %q, want a clean pass", status, out, errOut)
	}
}

func TestGraphOfAMultiArchClusterGivesEveryStepsArchitecture(t *testing.T) {
	c := corpusCheckout(t, true)
	status, out, errOut := run("graph", "--format=json", c.MultiArchCluster)
	if status != initiator.ExitOK {
		t.Fatalf("exit %d: %s", status, errOut)
	}
	var doc initiator.GraphJSON
	if err := json.Unmarshal([]byte(out), &doc); err != nil {
		t.Fatalf("output is not JSON: %v\n%s", err, out)
	}
	if doc.Arch != "" || strings.Join(doc.Archs, " ") != "x86_64 armv7lhf armv8l64" {
		t.Errorf("arch %q archs %v, want none and the three in cluster order", doc.Arch, doc.Archs)
	}
	arch := map[string]string{}
	for _, s := range doc.Steps {
		arch[s.Name] = s.Arch
	}
	for name, want := range map[string]string{
		"groff": "x86_64", "groff@armv7lhf": "armv7lhf", "groff@docs@armv7lhf": "armv7lhf", "ruby.stratum@armv7lhf": "armv7lhf",
		"linux-armv7-highbank": "armv7lhf", "build-essential@armv8l64": "armv8l64", "minimal-system-armv8l64": "armv8l64",
	} {
		if arch[name] != want {
			t.Errorf("step %s: arch %q, want %s", name, arch[name], want)
		}
	}
	if n := strings.Count(errOut, "initiator graph: warning: "); n != 2 {
		t.Errorf("stderr = %q, want the corpus's two warnings once each", errOut)
	}

	status, out, errOut = run("graph", c.MultiArchCluster)
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if status != initiator.ExitOK || !strings.HasPrefix(lines[0], "# cluster release-multiarch (x86_64, armv7lhf, armv8l64): ") ||
		strings.Join(strings.Fields(lines[1]), " ") != "STEP KIND ARCH CACHE KEY DEPENDS ON" {
		t.Fatalf("text: exit %d %s, want a heading naming the three architectures and an ARCH column:\n%s", status, errOut, strings.Join(lines[:2], "\n"))
	}
	if f := strings.Fields(lines[len(lines)-1]); len(f) < 3 || f[0] != "minimal-system-armv8l64" || f[2] != "armv8l64" {
		t.Errorf("text: last line %q, want the armv8l64 system with its arch", lines[len(lines)-1])
	}

	status, out, _ = run("graph", "--format=dot", c.MultiArchCluster)
	if status != initiator.ExitOK || !strings.Contains(out, `"groff@armv7lhf" [shape=box, label="groff@armv7lhf\narmv7lhf\n`) {
		t.Errorf("dot: exit %d, want each label to name its step's arch:\n%s", status, out)
	}
}

func TestLintAcceptsAMultiArchCluster(t *testing.T) {
	c := corpusCheckout(t, false)
	status, out, errOut := run("lint", c.MultiArchCluster)
	if status != initiator.ExitFailure || strings.Count(out, ": warning: ") != 2 || strings.Contains(out, ": error: ") || !strings.Contains(errOut, "0 errors, 2 warnings") {
		t.Errorf("lint %s: exit %d\nstdout %q\nstderr %q\nwant the corpus's two warnings and no error", c.MultiArchCluster, status, out, errOut)
	}
}
