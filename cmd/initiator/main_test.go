package main_test

import (
	"encoding/json"
	"os/exec"
	"path/filepath"
	"testing"

	"distbuild/definitions/definitionstest"
	"distbuild/initiator"
)

// TestGraphOfARealisticTreeIsInBuildOrder runs the real binary in a
// generated 1000-chunk checkout and checks that every dependency edge points
// backwards in the printed order, and that no step is missing or repeated.
func TestGraphOfARealisticTreeIsInBuildOrder(t *testing.T) {
	bin := filepath.Join(t.TempDir(), "initiator")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("building initiator: %v\n%s", err, out)
	}
	dir := t.TempDir()
	tree := definitionstest.Generate(definitionstest.Realistic)
	if err := definitionstest.WriteDir(dir, tree.FS); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "graph", "--format=json", tree.FullSystem)
	cmd.Dir = dir
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("initiator graph: %v", err)
	}
	var doc initiator.GraphJSON
	if err := json.Unmarshal(out, &doc); err != nil {
		t.Fatal(err)
	}
	position := map[string]int{}
	kinds := map[string]int{}
	for i, s := range doc.Steps {
		if _, dup := position[s.Name]; dup {
			t.Fatalf("step %s printed twice", s.Name)
		}
		position[s.Name] = i
		kinds[s.Kind]++
	}
	if kinds["chunk"] != 1000 || kinds["stratum"] != 150 || kinds["system"] != 1 {
		t.Fatalf("printed %v, want 1000 chunks, 150 strata and 1 system", kinds)
	}
	edges := 0
	for i, s := range doc.Steps {
		for _, d := range s.DependsOn {
			p, ok := position[d]
			if !ok {
				t.Fatalf("%s depends on %s, which is not printed", s.Name, d)
			}
			if p >= i {
				t.Errorf("%s (position %d) depends on %s (position %d): edge points forwards", s.Name, i, d, p)
			}
			edges++
		}
	}
	if edges < 2000 {
		t.Errorf("only %d edges checked; the generated graph is too sparse to prove anything", edges)
	}
	if last := doc.Steps[len(doc.Steps)-1]; last.Kind != "system" {
		t.Errorf("last step is %s %s, want the system", last.Kind, last.Name)
	}
}

// BenchmarkGraphProcess runs `initiator graph` of the 450-chunk subset
// system as a whole process, as a user does: start-up, reading every morph
// from disk, resolving and printing. The target is under 60 ms.
func BenchmarkGraphProcess(b *testing.B) {
	bin := filepath.Join(b.TempDir(), "initiator")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		b.Fatalf("building initiator: %v\n%s", err, out)
	}
	dir := b.TempDir()
	tree := definitionstest.Generate(definitionstest.Realistic)
	if err := definitionstest.WriteDir(dir, tree.FS); err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		cmd := exec.Command(bin, "graph", tree.SubsetSystem)
		cmd.Dir = dir
		if out, err := cmd.CombinedOutput(); err != nil {
			b.Fatalf("initiator graph: %v\n%s", err, out)
		}
	}
}
