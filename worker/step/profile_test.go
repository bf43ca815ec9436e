package step

import (
	"regexp"
	"strings"
	"testing"
	"time"

	"distbuild/clock"
	pb "distbuild/proto/distbuild/v1"
	"distbuild/worker/sandbox"
)

func TestAStepProfileHasEachPhaseInOrderAndItsCommandsResources(t *testing.T) {
	w := newTestRunner(t, sandbox.None)
	repo, commit := gitRepo(t, map[string]string{"f": ""})
	spec := chunkSpec(repo, commit)
	spec.GetChunk().Phases = []*pb.CommandPhase{
		{Name: "configure", Commands: []string{"true"}},
		// A million additions (~0.7 CPU-seconds however busy the machine
		// is) and at least two seconds, so that it is sampled.
		{Name: "build", Commands: []string{`end=$(($(date +%s) + 2)); n=0; while [ $n -lt 1000 ] || [ "$(date +%s)" -lt $end ]; do i=0; while [ $i -lt 1000 ]; do i=$((i+1)); done; n=$((n+1)); done`}},
		{Name: "install", Commands: []string{`mkdir -p "$DESTDIR/usr" && cp f "$DESTDIR/usr/"`}},
	}
	j := runJob(t, w, spec)
	if j.manifest == nil {
		t.Fatalf("job failed: %v", j.failure)
	}
	p := j.profile
	if p == nil {
		t.Fatal("the runner reported no profile")
	}
	var names []string
	var end time.Duration
	for _, ph := range p.Phases {
		names = append(names, ph.Name)
		if ph.Start.AsDuration() < end || ph.Duration == nil {
			t.Errorf("phase %s starts at %v, before the previous one ended (%v), or has no duration", ph.Name, ph.Start.AsDuration(), end)
		}
		end = ph.Start.AsDuration() + ph.Duration.AsDuration()
	}
	if got, want := strings.Join(names, " "), "fetch stage configure build install pack upload"; got != want {
		t.Errorf("phases %q; want %q", got, want)
	}
	if end > p.Duration.AsDuration() {
		t.Errorf("phases end at %v, after the step's %v", end, p.Duration.AsDuration())
	}
	u := p.Usage
	if u.UserCpuSeconds+u.SystemCpuSeconds < 0.5 || u.PeakMemoryBytes < 100<<10 {
		t.Errorf("usage %v; want the busy loop's CPU time and a resident set of at least 100KiB", u)
	}
	if len(p.Samples) == 0 || p.Samples[0].CpuCores <= 0 || p.Samples[0].MemoryBytes <= 0 {
		t.Errorf("samples %v; want the busy loop's CPU and memory sampled", p.Samples)
	}
}

func TestAFailedStepStillReportsItsProfile(t *testing.T) {
	w := newTestRunner(t, sandbox.None)
	repo, commit := gitRepo(t, map[string]string{"f": ""})
	j := runJob(t, w, chunkSpec(repo, commit, "exit 2"))
	failed(t, j)
	// The log is uploaded after the failure.
	var names []string
	for _, ph := range j.profile.GetPhases() {
		names = append(names, ph.Name)
	}
	if got, want := strings.Join(names, " "), "fetch stage build upload"; got != want {
		t.Errorf("phases %q; want %q", got, want)
	}
}

func TestEveryLineOfAStepsLogIsStampedWithItsTimeFromTheStart(t *testing.T) {
	clk := clock.NewFake(time.Unix(1000, 0))
	w := newTestRunner(t, sandbox.None, func(c *Config) { c.Clock = clk })
	repo, commit := gitRepo(t, map[string]string{"f": ""})
	rec := newRecorder()
	// The clock moves on while the command runs: its lines carry the
	// time of their first byte.
	go func() {
		for p := range rec.phases {
			if p == pb.JobPhase_JOB_PHASE_RUNNING {
				clk.Advance(12345 * time.Millisecond)
			}
		}
	}()
	j := runJobIn(t, t.Context(), w, chunkSpec(repo, commit, "sleep 0.2; printf 'one\\ntwo'; sleep 0.1; echo ' and more'"), rec)
	close(rec.phases)
	if j.manifest == nil {
		t.Fatalf("job failed: %v", j.failure)
	}
	log := storedLogOf(t, w, j.manifest)
	stamp := regexp.MustCompile(`^\[ *\d+\.\d{3}s\] `)
	for _, line := range strings.Split(strings.TrimSuffix(log, "\n"), "\n") {
		if !stamp.MatchString(line) {
			t.Errorf("log line %q has no time stamp", line)
		}
	}
	if !strings.HasPrefix(log, "[   0.000s] # distbuild: chunk hello on test\n") || !strings.Contains(log, "[  12.345s] one\n[  12.345s] two and more\n") {
		t.Errorf("log %q; want the first line at 0.000s and the command's lines at 12.345s, a line split over writes stamped once", log)
	}
	rec.mu.Lock()
	relayed := rec.output.String()
	rec.mu.Unlock()
	if relayed != log {
		t.Errorf("relayed output differs from the stored log:\n%q\n%q", relayed, log)
	}
}

func TestTheSampleSeriesStaysBoundedAndSpansTheWholeStep(t *testing.T) {
	clk := clock.NewFake(time.Unix(0, 0))
	p := newProfiler(clk, clk.Now())
	for i := range 1000 {
		clk.Advance(time.Second)
		p.sample(float64(i%4), int64(i))
	}
	s := p.profile().Samples
	if len(s) > maxSamples || len(s) < maxSamples/4 {
		t.Fatalf("%d samples after 1000 ticks; want between %d and %d", len(s), maxSamples/4, maxSamples)
	}
	if last := s[len(s)-1].Offset.AsDuration(); last < 900*time.Second {
		t.Errorf("the last sample is at %v; want it near the end (1000s)", last)
	}
	if s[len(s)-1].MemoryBytes < 900 {
		t.Errorf("merged samples keep memory %d; want the peak of what they merged", s[len(s)-1].MemoryBytes)
	}
}
