package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"testing/fstest"
	"time"

	"distbuild/definitions/definitionstest"
	pb "distbuild/proto/distbuild/v1"
)

// stagedClosure is the shape BenchmarkStagingChunks builds: chunks chunks
// each installing files files of size bytes, then stagers staging-mode
// chunks that stage them all. `make bench` sets DISTBUILD_BENCH_STAGING=full
// for issue 18's shape (30 chunks of 2,000 files of 10 KB: 600 MB, 60,000
// files, then four stagers); otherwise it is small, so that `make test`'s
// single run stays cheap.
func stagedClosure() (chunks, files, size, stagers int) {
	if os.Getenv("DISTBUILD_BENCH_STAGING") == "full" {
		return 30, 2000, 10 * 1024, 4
	}
	return 3, 20, 1024, 2
}

// BenchmarkStagingChunks is issue 18's staging build through the real
// farm (a trove, a controller and one worker with one slot, without a
// sandbox): a stratum of chunks installing many files, then staging-mode
// chunks whose build is a single echo, each staging every file the first
// stratum installed, then the system of both. Every run builds everything
// anew (the definitions are salted). It reports, from the steps'
// profiles, the first stager's staging (cold: the worker has not staged
// those artifacts before), the mean of the others' (warm), the system's,
// the stagers' whole time (their durations summed: one slot runs one at a
// time), and how long `initiator fetch` of the system into a new directory
// takes.
func BenchmarkStagingChunks(b *testing.B) {
	chunks, files, size, stagers := stagedClosure()
	f := startSleepFarm(b, 1, 1, "none")
	var cold, warm, system, stagersTotal, fetch time.Duration
	for b.Loop() {
		f.buildWith(b, "systems/staged.morph", func(salt string) string {
			return writeStagedDefinitions(b, f.dir, f.source, f.commit, salt, chunks, files, size, stagers)
		})
		b.StopTimer()
		seen, systemKey := 0, ""
		for _, s := range f.newestSteps(b) {
			var stage time.Duration
			for _, p := range s.GetProfile().GetPhases() {
				if p.Name == "stage" {
					stage = p.Duration.AsDuration()
				}
			}
			name := s.Step.StepName
			switch {
			case s.Step.Kind == pb.StepKind_STEP_KIND_SYSTEM:
				system += stage
				systemKey = s.Step.CacheKey
				continue
			case !strings.HasPrefix(name, "staged-") || s.Step.Kind != pb.StepKind_STEP_KIND_CHUNK:
				continue
			case name == "staged-0":
				cold += stage
			default:
				warm += stage
			}
			if stage == 0 {
				b.Fatalf("step %s reported no staging time", name)
			}
			stagersTotal += s.Duration.AsDuration()
			seen++
		}
		if seen != stagers {
			b.Fatalf("found %d staging chunks in the build, want %d", seen, stagers)
		}
		root := filepath.Join(f.dir, "fetched", fmt.Sprint(f.runs))
		start := time.Now()
		if r := f.initiator("fetch", "--no-log", systemKey, root); r.code != 0 {
			b.Fatalf("initiator fetch: exit %d\n%s", r.code, r.stderr)
		}
		fetch += time.Since(start)
		if _, err := os.Stat(filepath.Join(root, "usr/share/files-00/f0000")); err != nil {
			b.Fatalf("the fetched system lacks a file it should hold: %v", err)
		}
		if err := os.RemoveAll(root); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
	}
	n := float64(b.N)
	b.ReportMetric(cold.Seconds()/n, "cold-stage-s")
	b.ReportMetric(warm.Seconds()/n/float64(stagers-1), "warm-stage-s")
	b.ReportMetric(system.Seconds()/n, "system-stage-s")
	b.ReportMetric(stagersTotal.Seconds()/n, "stagers-s")
	b.ReportMetric(fetch.Seconds()/n, "fetch-s")
}

// writeStagedDefinitions commits BenchmarkStagingChunks' definitions and
// returns the checkout.
func writeStagedDefinitions(b *testing.B, dir, source, commit, salt string, chunks, files, size, stagers int) string {
	defs := filepath.Join(dir, "definitions")
	fsys := fstest.MapFS{
		"VERSION": {Data: []byte("version: 8\n")},
		"systems/staged.morph": {Data: []byte("name: staged-system\nkind: system\narch: x86_64\nstrata:\n" +
			"- morph: strata/files.morph\n- morph: strata/staged.morph\n")},
	}
	var stratum strings.Builder
	stratum.WriteString("name: files\nkind: stratum\nchunks:\n")
	for i := range chunks {
		name := fmt.Sprintf("files-%02d", i)
		fmt.Fprintf(&stratum, "- name: %s\n  repo: %s\n  ref: %s\n  build-mode: bootstrap\n  morph: strata/files/%s.morph\n", name, source, commit, name)
		// One awk writes every file: a process per file would cost more
		// than the staging measured.
		// (mawk's sprintf cannot pad to 10 KB, so the body is doubled.)
		install := fmt.Sprintf(`mkdir -p "$DESTDIR/usr/share/%[1]s" && awk 'BEGIN { s = "%[1]s "; while (length(s) < %[2]d) s = s s; s = substr(s, 1, %[2]d); for (i = 0; i < %[3]d; i++) { f = sprintf("%%s/usr/share/%[1]s/f%%04d", ENVIRON["DESTDIR"], i); printf "%%s", s > f; close(f) } }' # %[4]s`,
			name, size, files, salt)
		fsys["strata/files/"+name+".morph"] = &fstest.MapFile{Data: []byte(fmt.Sprintf("name: %s\nkind: chunk\nbuild-commands:\n- |\n  %s\n", name, install))}
	}
	fsys["strata/files.morph"] = &fstest.MapFile{Data: []byte(stratum.String())}
	stratum.Reset()
	stratum.WriteString("name: staged\nkind: stratum\nbuild-depends:\n- morph: strata/files.morph\nchunks:\n")
	for i := range stagers {
		name := fmt.Sprintf("staged-%d", i)
		fmt.Fprintf(&stratum, "- name: %s\n  repo: %s\n  ref: %s\n  build-mode: staging\n  morph: strata/staged/%s.morph\n", name, source, commit, name)
		fsys["strata/staged/"+name+".morph"] = &fstest.MapFile{Data: []byte(fmt.Sprintf("name: %s\nkind: chunk\nbuild-commands:\n- echo staged # %s\n", name, salt))}
	}
	fsys["strata/staged.morph"] = &fstest.MapFile{Data: []byte(stratum.String())}
	if err := definitionstest.WriteDir(defs, fsys); err != nil {
		b.Fatal(err)
	}
	return defs
}
