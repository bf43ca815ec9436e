package initiator

import (
	"bytes"
	"context"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"google.golang.org/protobuf/types/known/durationpb"

	pb "distbuild/proto/distbuild/v1"
)

func events() []*pb.BuildEvent {
	ref := &pb.ArtifactRef{StepName: "zlib", Kind: pb.StepKind_STEP_KIND_CHUNK, CacheKey: strings.Repeat("a", 64)}
	return []*pb.BuildEvent{
		{Event: &pb.BuildEvent_Accepted{Accepted: &pb.BuildAccepted{BuildId: "b1"}}},
		{Event: &pb.BuildEvent_GraphResolved{GraphResolved: &pb.GraphResolved{TotalSteps: 3, UnbuiltSteps: 2}}},
		{Event: &pb.BuildEvent_StepStarted{StepStarted: &pb.StepStarted{Step: ref, Worker: "w1", Attempt: 1}}},
		{Event: &pb.BuildEvent_StepOutput{StepOutput: &pb.StepOutput{StepName: "zlib", Data: []byte("compiling\n")}}},
		{Event: &pb.BuildEvent_StepFinished{StepFinished: &pb.StepFinished{Step: ref, Worker: "w1", Duration: durationpb.New(0)}}},
	}
}

// fakeTerminal is a screen that understands what the watcher writes: text,
// carriage return, newline, and the escape sequences for cursor up (CSI n
// A), erase below (CSI J) and erase line (CSI K). Like a real terminal it
// wraps text at its width, so a progress line that is too long leaves rows
// behind that the next redraw does not erase.
type fakeTerminal struct {
	t        *testing.T
	width    int
	rows     [][]rune
	row, col int
}

func (f *fakeTerminal) Write(p []byte) (int, error) {
	for s := string(p); s != ""; {
		switch {
		case s[0] == '\r':
			f.col, s = 0, s[1:]
		case s[0] == '\n':
			f.row, f.col, s = f.row+1, 0, s[1:]
		case strings.HasPrefix(s, "\033["):
			end := strings.IndexAny(s, "AJK")
			if end < 0 {
				f.t.Fatalf("unknown escape sequence in %q", s)
			}
			n := 1
			if end > 2 {
				n, _ = strconv.Atoi(s[2:end])
			}
			f.grow()
			switch s[end] {
			case 'A':
				f.row = max(f.row-n, 0)
			case 'J':
				f.rows = f.rows[:f.row+1]
				f.rows[f.row] = f.rows[f.row][:min(f.col, len(f.rows[f.row]))]
			case 'K':
				f.rows[f.row] = f.rows[f.row][:min(f.col, len(f.rows[f.row]))]
			}
			s = s[end+1:]
		default:
			r, size := utf8.DecodeRuneInString(s)
			s = s[size:]
			if f.col >= f.width {
				f.row, f.col = f.row+1, 0
			}
			f.grow()
			for len(f.rows[f.row]) <= f.col {
				f.rows[f.row] = append(f.rows[f.row], ' ')
			}
			f.rows[f.row][f.col] = r
			f.col++
		}
	}
	return len(p), nil
}

func (f *fakeTerminal) grow() {
	for len(f.rows) <= f.row {
		f.rows = append(f.rows, nil)
	}
}

// screen is what the terminal shows, a line per row.
func (f *fakeTerminal) screen() string {
	lines := make([]string, len(f.rows))
	for i, r := range f.rows {
		lines[i] = string(r)
	}
	return strings.TrimRight(strings.Join(lines, "\n"), "\n")
}

// ttyWatcher is a watcher drawing on a fake terminal, its clock stopped at
// the build's start.
func ttyWatcher(t *testing.T, width int) (*watcher, *fakeTerminal) {
	term := &fakeTerminal{t: t, width: width}
	w := newWatcher(&Env{Dir: t.TempDir(), Stdout: term, Stderr: io.Discard}, true)
	w.columns = func() int { return width }
	w.now = func() time.Time { return w.start }
	return w, term
}

func TestTerminalProgressIsRedrawnInPlace(t *testing.T) {
	w, term := ttyWatcher(t, 80)
	for _, ev := range events()[:4] {
		w.handle(ev)
	}
	w.tick(w.start) // output alone does not redraw: the next tick shows it
	if want := "build b1 accepted\n3 steps, 2 to build (1 already in the cache)\n[0/2 built] 0s, 1 running\n  zlib@w1: compiling"; term.screen() != want {
		t.Errorf("screen:\n%s\nwant\n%s", term.screen(), want)
	}
	w.handle(events()[4])
	w.close()
	if want := "build b1 accepted\n3 steps, 2 to build (1 already in the cache)\nfinished zlib on w1 in 0s [1/2]"; term.screen() != want {
		t.Errorf("screen once zlib finished and the watcher closed:\n%s\nwant\n%s", term.screen(), want)
	}
	log, err := os.ReadFile(filepath.Join(w.env.Dir, "build-step-zlib.log"))
	if err != nil || string(log) != "compiling\n" {
		t.Errorf("build-step-zlib.log = %q, %v; want the step's output", log, err)
	}
}

func stepRef(name string) *pb.ArtifactRef {
	return &pb.ArtifactRef{StepName: name, Kind: pb.StepKind_STEP_KIND_CHUNK, CacheKey: strings.Repeat("a", 64)}
}

func stepStarted(name, worker string) *pb.BuildEvent {
	return &pb.BuildEvent{Event: &pb.BuildEvent_StepStarted{StepStarted: &pb.StepStarted{Step: stepRef(name), Worker: worker, Attempt: 1}}}
}

func stepOutput(name, data string) *pb.BuildEvent {
	return &pb.BuildEvent{Event: &pb.BuildEvent_StepOutput{StepOutput: &pb.StepOutput{StepName: name, Data: []byte(data)}}}
}

func TestTerminalProgressShowsEachRunningStepsLatestLine(t *testing.T) {
	w, term := ttyWatcher(t, 45)
	w.handle(&pb.BuildEvent{Event: &pb.BuildEvent_GraphResolved{GraphResolved: &pb.GraphResolved{TotalSteps: 9, UnbuiltSteps: 9}}})
	for _, ev := range []*pb.BuildEvent{
		stepStarted("a", "w1"), stepOutput("a", "configure\n\n  \n"), // blank lines do not count
		stepStarted("b", "w1"), stepOutput("b", "Downloading 10%\rDownloading 55%\r"), // a meter shows its latest state
		stepStarted("c", "w2"), stepOutput("c", "done\ncc -O2 -c "), stepOutput("c", "zutil.c"), // the line being written
		stepStarted("d", "w2"), stepOutput("d", "\033[1;31merror\033[0m:\tcolours\r\n"), // no escapes, tabs or CRLF
		stepStarted("e", "w3"), // no output yet
		stepStarted("f", "w3"), stepOutput("f", "a line much too long for this narrow terminal\n"),
	} {
		w.handle(ev)
	}
	want := "9 steps, 9 to build (0 already in the cache)\n" +
		"[0/9 built] 0s, 6 running\n" +
		"  a@w1: configure\n" +
		"  b@w1: Downloading 55%\n" +
		"  c@w2: cc -O2 -c zutil.c\n" +
		"  d@w2: error: colours\n" +
		"  (+2 more)"
	if term.screen() != want {
		t.Errorf("screen:\n%s\nwant\n%s", term.screen(), want)
	}
	w.handle(&pb.BuildEvent{Event: &pb.BuildEvent_StepFinished{StepFinished: &pb.StepFinished{Step: stepRef("a"), Worker: "w1", Duration: durationpb.New(0)}}})
	w.handle(&pb.BuildEvent{Event: &pb.BuildEvent_StepFailed{StepFailed: &pb.StepFailed{Step: stepRef("b"), Worker: "w1", Attempt: 1, WillRetry: true, Reason: "lost"}}})
	w.tick(w.start.Add(3 * time.Second))
	want = "9 steps, 9 to build (0 already in the cache)\n" +
		"finished a on w1 in 0s [1/9]\n" +
		"retrying b: attempt 1 on w1 failed: lost\n" +
		"[1/9 built] 3s, 4 running\n" +
		"  c@w2: cc -O2 -c zutil.c\n" +
		"  d@w2: error: colours\n" +
		"  e@w3\n" +
		"  f@w3: a line much too long for this narro…"
	if term.screen() != want {
		t.Errorf("screen after two steps ended and a tick:\n%s\nwant\n%s", term.screen(), want)
	}
	// A retried step's display starts afresh.
	w.handle(stepStarted("b", "w2"))
	w.close()
	if strings.Contains(term.screen(), "b@w2: Downloading") {
		t.Errorf("the retry of b shows the failed attempt's output:\n%s", term.screen())
	}
}

func TestFollowEventsRedrawsTheProgressEverySecondWithoutEvents(t *testing.T) {
	w, term := ttyWatcher(t, 80)
	type result struct {
		ev  *pb.BuildEvent
		err error
	}
	asked, results := make(chan struct{}), make(chan result)
	recv := func() (*pb.BuildEvent, error) {
		asked <- struct{}{}
		r := <-results
		return r.ev, r.err
	}
	ticks := make(chan time.Time)
	exit := make(chan int)
	go func() { exit <- followEvents(context.Background(), w.env, "build", nil, w, recv, nil, ticks) }()
	for _, ev := range events()[:4] {
		<-asked
		results <- result{ev: ev}
	}
	// followEvents has handled every event and waits for the next one, a
	// long time: the ticks move the clock meanwhile.
	<-asked
	ticks <- w.start.Add(64 * time.Second)
	ticks <- w.start.Add(65 * time.Second)
	// The stream ends without an event, so nothing but the ticks drew.
	results <- result{err: io.EOF}
	if code := <-exit; code != ExitFailure {
		t.Errorf("followEvents returned %d after the stream ended, want %d", code, ExitFailure)
	}
	if want := "build b1 accepted\n3 steps, 2 to build (1 already in the cache)\n[0/2 built] 1m5s, 1 running\n  zlib@w1: compiling"; term.screen() != want {
		t.Errorf("screen:\n%s\nwant\n%s", term.screen(), want)
	}
}

func TestPlainOutputHasOneLinePerEvent(t *testing.T) {
	var out bytes.Buffer
	w := newWatcher(&Env{Dir: t.TempDir(), Stdout: &out, Stderr: &out}, false)
	for _, ev := range events() {
		w.handle(ev)
		w.tick(time.Now()) // ticks draw nothing when the output is not a terminal
	}
	w.close()
	want := "build b1 accepted\n3 steps, 2 to build (1 already in the cache)\nstarted  zlib on w1\nfinished zlib on w1 in 0s [1/2]\n"
	if out.String() != want {
		t.Errorf("plain output:\n%q\nwant\n%q", out.String(), want)
	}
}

func TestLogNamesCannotLeaveTheDirectory(t *testing.T) {
	for step, want := range map[string]string{"zlib": "build-step-zlib.log", "../x": "build-step-.._x.log", "a/b": "build-step-a_b.log", "..": "build-step-_.log"} {
		if got := logName(step); got != want {
			t.Errorf("logName(%q) = %q, want %q", step, got, want)
		}
	}
}

func TestGraphResolvedPrintsWarningsAndResolvedBranchesOnce(t *testing.T) {
	var out bytes.Buffer
	w := newWatcher(&Env{Dir: t.TempDir(), Stdout: &out, Stderr: &out}, false)
	commit := strings.Repeat("c", 40)
	w.handle(&pb.BuildEvent{Event: &pb.BuildEvent_GraphResolved{GraphResolved: &pb.GraphResolved{
		TotalSteps: 2, UnbuiltSteps: 2,
		Warnings: []string{`systems/x.morph:9: system "x": stratum "core" has no artifact "core-openssl", so this filter entry selects nothing`},
		Steps: []*pb.StepInfo{
			{Name: "zlib", Ref: "master", Commit: commit},
			{Name: "groff@cross-bootstrap", Ref: commit, Commit: commit},
		},
	}}})
	w.close()
	want := "2 steps, 2 to build (0 already in the cache)\n" +
		`warning: systems/x.morph:9: system "x": stratum "core" has no artifact "core-openssl", so this filter entry selects nothing` + "\n" +
		"zlib: ref master is commit " + commit + "\n"
	if out.String() != want {
		t.Errorf("output:\n%q\nwant\n%q", out.String(), want)
	}
}
