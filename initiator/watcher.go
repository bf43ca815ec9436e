package initiator

import (
	"bytes"
	"fmt"
	"io"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"distbuild/internal/checkreport"
	pb "distbuild/proto/distbuild/v1"
)

// failureTailLines is how much of a failed step's log is shown at the end.
const failureTailLines = 20

// maxShownSteps is how many running steps the progress display lists, one
// line each, before it only counts the rest.
const maxShownSteps = 4

// maxLineBytes bounds what is kept of the line a step is writing: the
// display shows one terminal line of it.
const maxLineBytes = 1024

// watcher follows a build's events: it writes each step's output to
// build-step-<name>.log and tells the user what is happening, redrawing a
// progress display on a terminal and printing plain lines otherwise.
type watcher struct {
	env *Env
	tty bool
	// now is the clock of progress redraws made by events; redraws made
	// by ticks use the tick's time. Tests stop it and send their own ticks.
	now func() time.Time
	// columns is the terminal's width, read at each redraw so a resized
	// terminal is followed.
	columns func() int
	// start is where the live progress clock counts from: when build
	// submitted the build, or for attach when the controller accepted it.
	start time.Time
	// created is when the controller accepted the build, by its clock
	// (the BuildAccepted event's time, or for attach the build's status).
	// With the time of the event that ends the build it gives the build's
	// own duration, however long after the build ended attach replays it.
	created time.Time
	logs    map[string]*os.File
	seen    map[string]bool        // steps whose log was started in this run
	running map[string]string      // step -> worker, for steps running now
	outputs map[string]*outputTail // what running steps last printed
	total   int
	unbuilt int
	done    int
	drawn   int // lines of the progress display now on the terminal

	// Set by attach, which may join a build long under way.
	//
	// fetchLog copies a log stored in the cache. Each attempt that ends with
	// a log in the cache has its part of build-step-<name>.log replaced by
	// that complete log: output is relayed only live, so a step that ran
	// before attaching left nothing, and one running while attaching left
	// only its tail. build leaves it nil: it saw every attempt from its
	// start.
	fetchLog func(log *pb.Digest, to io.Writer) error
	// attemptAt is where each step's current attempt begins in its log.
	attemptAt map[string]int64
	// checks counts the reproducibility checks reported, by outcome.
	checks map[pb.CheckOutcome]int
}

func newWatcher(env *Env, tty bool) *watcher {
	w := &watcher{env: env, tty: tty, now: time.Now, start: time.Now(), logs: map[string]*os.File{}, seen: map[string]bool{},
		running: map[string]string{}, outputs: map[string]*outputTail{}, checks: map[pb.CheckOutcome]int{}}
	f, _ := env.Stdout.(*os.File)
	w.columns = func() int { return terminalColumns(f) }
	return w
}

// newReplayWatcher is the watcher attach uses: it completes each step's log
// from the cache (fetchLog) and times the build from created, when the
// controller accepted it (zero when unknown), even when the replay starts
// after the BuildAccepted event (attach --from).
func newReplayWatcher(env *Env, tty bool, created time.Time, fetchLog func(log *pb.Digest, to io.Writer) error) *watcher {
	w := newWatcher(env, tty)
	w.fetchLog, w.attemptAt = fetchLog, map[string]int64{}
	if !created.IsZero() {
		w.start, w.created = created, created
	}
	return w
}

// logName is the file a step's log goes to; names come from definitions,
// so anything that could leave the directory is replaced.
func logName(step string) string {
	safe := strings.Map(func(r rune) rune {
		if r == '/' || r == '\\' || r < ' ' {
			return '_'
		}
		return r
	}, step)
	if safe == "." || safe == ".." {
		safe = "_"
	}
	return "build-step-" + safe + ".log"
}

// say prints a line above the progress display.
func (w *watcher) say(format string, args ...any) {
	w.erase()
	fmt.Fprintf(w.env.Stdout, format+"\n", args...)
	w.redraw()
}

// erase removes the progress display, leaving the cursor where it began.
func (w *watcher) erase() {
	if w.drawn == 0 {
		return
	}
	up := ""
	if w.drawn > 1 {
		up = fmt.Sprintf("\033[%dA", w.drawn-1)
	}
	fmt.Fprint(w.env.Stdout, "\r"+up+"\033[J")
	w.drawn = 0
}

// redraw draws the progress display again after an event.
func (w *watcher) redraw() { w.tick(w.now()) }

// tick draws the progress display as of now. followEvents calls it every
// second on a terminal, so the clock and the steps' output move while no
// event arrives (a long, quiet step does not look hung).
func (w *watcher) tick(now time.Time) {
	if !w.tty {
		return
	}
	lines := w.progress(now)
	w.erase()
	fmt.Fprint(w.env.Stdout, strings.Join(lines, "\n"))
	w.drawn = len(lines)
}

// progress is the progress display: a line with the counts and the clock,
// then a line for each running step with the worker running it and the
// latest line of its output, each cut to the terminal's width (one column
// spare, so that no line wraps and erase knows how many lines to remove).
func (w *watcher) progress(now time.Time) []string {
	lines := []string{fmt.Sprintf("[%d/%d built] %s, %d running", w.done, w.unbuilt, elapsed(now.Sub(w.start)), len(w.running))}
	steps := slices.Sorted(maps.Keys(w.running))
	for i, step := range steps {
		if i == maxShownSteps {
			lines = append(lines, fmt.Sprintf("  (+%d more)", len(steps)-i))
			break
		}
		line := "  " + step + "@" + w.running[step]
		if out := w.outputs[step].line(); out != "" {
			line += ": " + out
		}
		lines = append(lines, line)
	}
	width := w.columns() - 1
	for i, l := range lines {
		lines[i] = cut(l, width)
	}
	return lines
}

// cut shortens s to at most n characters, marking the cut with an
// ellipsis.
func cut(s string, n int) string {
	if utf8.RuneCountInString(s) <= n {
		return s
	}
	r := []rune(s)
	return string(r[:max(n-1, 0)]) + "…"
}

func (w *watcher) close() {
	w.erase()
	for _, f := range w.logs {
		f.Close()
	}
}

// outputTail keeps the end of a running step's output for the progress
// display: the last non-blank complete line, and the line being written.
type outputTail struct {
	last    string
	partial []byte
	cr      bool // a carriage return ended the output so far
}

// write takes the next bytes of the step's output. A carriage return
// followed by more text starts the line over, as it does on a terminal
// (progress meters redraw themselves that way).
func (t *outputTail) write(p []byte) {
	for _, c := range p {
		switch c {
		case '\n':
			if s := printable(t.partial); s != "" {
				t.last = s
			}
			t.partial, t.cr = t.partial[:0], false
		case '\r':
			t.cr = true
		default:
			if t.cr {
				t.partial, t.cr = t.partial[:0], false
			}
			if len(t.partial) < maxLineBytes {
				t.partial = append(t.partial, c)
			}
		}
	}
}

// line is the step's latest line of output: the one being written, or
// when it is still blank the last complete one; "" before any output.
func (t *outputTail) line() string {
	if t == nil {
		return ""
	}
	if s := printable(t.partial); s != "" {
		return s
	}
	return t.last
}

// printable makes a line of a step's output safe to show inside the
// progress display: escape sequences (colours, cursor movement) and other
// control characters would garble it, so they are dropped, and tabs become
// spaces.
func printable(b []byte) string {
	var sb strings.Builder
	for s := string(b); s != ""; {
		r, size := utf8.DecodeRuneInString(s)
		s = s[size:]
		switch {
		case r == '\033':
			if rest, ok := strings.CutPrefix(s, "["); ok {
				// A CSI sequence ends with a byte in @ to ~.
				if end := strings.IndexFunc(rest, func(r rune) bool { return r >= '@' && r <= '~' }); end >= 0 {
					s = rest[end+1:]
				} else {
					s = ""
				}
			}
		case r == '\t':
			sb.WriteByte(' ')
		case unicode.IsControl(r):
		default:
			sb.WriteRune(r)
		}
	}
	return strings.TrimSpace(sb.String())
}

// logFile opens a step's log: truncated the first time the step starts in
// this run, appended to for later attempts.
func (w *watcher) logFile(step string) *os.File {
	if f := w.logs[step]; f != nil {
		return f
	}
	flags := os.O_WRONLY | os.O_CREATE | os.O_APPEND
	if !w.seen[step] {
		flags |= os.O_TRUNC
		w.seen[step] = true
	}
	f, err := os.OpenFile(filepath.Join(w.env.Dir, logName(step)), flags, 0o644)
	if err != nil {
		fmt.Fprintf(w.env.Stderr, "initiator: cannot write the log of %s: %v\n", step, err)
		return nil
	}
	w.logs[step] = f
	return f
}

func (w *watcher) closeLog(step string) {
	if f := w.logs[step]; f != nil {
		f.Close()
		delete(w.logs, step)
	}
}

// handle processes one event; done reports that the build has ended, with
// the exit status to use.
func (w *watcher) handle(ev *pb.BuildEvent) (done bool, exitCode int) {
	switch e := ev.GetEvent().(type) {
	case *pb.BuildEvent_Accepted:
		if w.created.IsZero() && ev.Time != nil {
			w.created = ev.Time.AsTime()
		}
		w.say("build %s accepted", e.Accepted.BuildId)
	case *pb.BuildEvent_GraphResolved:
		w.total, w.unbuilt = int(e.GraphResolved.TotalSteps), int(e.GraphResolved.UnbuiltSteps)
		w.say("%d steps, %d to build (%d already in the cache)", w.total, w.unbuilt, w.total-w.unbuilt)
		for _, warning := range e.GraphResolved.Warnings {
			w.say("warning: %s", warning)
		}
		for _, st := range e.GraphResolved.Steps {
			if st.Ref != "" && st.Ref != st.Commit {
				w.say("%s: ref %s is commit %s", st.Name, st.Ref, st.Commit)
			}
		}
	case *pb.BuildEvent_StepStarted:
		step := e.StepStarted.Step.StepName
		w.running[step] = e.StepStarted.Worker
		w.outputs[step] = &outputTail{}
		if f := w.logFile(step); f != nil {
			if e.StepStarted.Attempt > 1 {
				fmt.Fprintf(f, "\n=== attempt %d on %s ===\n", e.StepStarted.Attempt, e.StepStarted.Worker)
			}
			w.markAttempt(step, f)
		}
		if w.tty {
			w.redraw()
		} else {
			w.say("started  %s on %s", step, e.StepStarted.Worker)
		}
	case *pb.BuildEvent_StepOutput:
		if f := w.logFile(e.StepOutput.StepName); f != nil {
			f.Write(e.StepOutput.Data)
		}
		if t := w.outputs[e.StepOutput.StepName]; t != nil {
			t.write(e.StepOutput.Data)
		}
	case *pb.BuildEvent_StepFinished:
		step := e.StepFinished.Step.StepName
		delete(w.running, step)
		delete(w.outputs, step)
		w.completeLog(step, e.StepFinished.Log)
		w.closeLog(step)
		if e.StepFinished.Worker != "" {
			w.done++
			w.say("finished %s on %s in %s [%d/%d]", step, e.StepFinished.Worker, elapsed(e.StepFinished.Duration.AsDuration()), w.done, w.unbuilt)
		}
	case *pb.BuildEvent_StepFailed:
		f := e.StepFailed
		step := f.Step.StepName
		delete(w.running, step)
		delete(w.outputs, step)
		w.completeLog(step, f.Log)
		w.closeLog(step)
		if f.WillRetry {
			w.say("retrying %s: attempt %d on %s failed: %s", step, f.Attempt, f.Worker, f.Reason)
		} else {
			w.say("FAILED   %s%s: %s", step, onWorker(f.Worker), f.Reason)
		}
	case *pb.BuildEvent_StepChecked:
		w.reportCheck(e.StepChecked)
	case *pb.BuildEvent_BuildFinished:
		w.summarizeChecks()
		w.say("build succeeded in %s: %d steps built, %d already in the cache", elapsed(w.took(ev)), w.done, w.total-w.unbuilt)
		for _, a := range e.BuildFinished.Artifacts {
			w.say("  %s %s %s", strings.TrimPrefix(a.Kind.String(), "STEP_KIND_"), a.StepName, a.CacheKey)
		}
		return true, ExitOK
	case *pb.BuildEvent_BuildFailed:
		bf := e.BuildFailed
		w.summarizeChecks()
		w.say("build failed: %s", bf.Reason)
		if bf.StepName != "" {
			w.showTail(bf.StepName)
		}
		return true, ExitFailure
	case *pb.BuildEvent_BuildCancelled:
		w.say("build cancelled: %s", e.BuildCancelled.Reason)
		return true, ExitFailure
	}
	return false, 0
}

// onWorker says where a step ran, if it ran anywhere.
func onWorker(worker string) string {
	if worker == "" {
		return ""
	}
	return " on " + worker
}

// maxShownDifferences is how many of a check's differences are printed;
// the check's log and 'initiator status' have the rest.
const maxShownDifferences = 20

// reportCheck prints what a reproducibility check found.
func (w *watcher) reportCheck(sc *pb.StepChecked) {
	r := sc.GetResult()
	w.checks[r.GetOutcome()]++
	w.say("checked  %s: %s (built by %s, rebuilt on %s)", sc.GetStep().GetStepName(), checkreport.Summary(r), orUnknown(r.GetBuiltBy()), orUnknown(r.GetCheckedBy()))
	for i, d := range r.GetDifferences() {
		if i == maxShownDifferences {
			w.say("           ... and %d more", checkreport.Count(r)-i)
			break
		}
		w.say("           %s", checkreport.Difference(d))
	}
	if r.GetDiffoscope() != nil {
		w.say("           diffoscope's report: initiator logs --diffoscope BUILD_ID %s", sc.GetStep().GetStepName())
	}
}

// summarizeChecks sums up the checks of a build that made any.
func (w *watcher) summarizeChecks() {
	n := 0
	for _, c := range w.checks {
		n += c
	}
	if n == 0 {
		return
	}
	w.say("checks: %d reproducible, %d not reproducible, %d not checked",
		w.checks[pb.CheckOutcome_CHECK_OUTCOME_REPRODUCIBLE], w.checks[pb.CheckOutcome_CHECK_OUTCOME_DIFFERS], w.checks[pb.CheckOutcome_CHECK_OUTCOME_NOT_CHECKED])
}

// took is how long the build ran, given the event that ended it: from the
// controller's acceptance to that event, both by the controller's clock,
// so a build replayed long after it ended shows its own duration. Events
// without times fall back to the time since start.
func (w *watcher) took(end *pb.BuildEvent) time.Duration {
	if w.created.IsZero() || end.GetTime() == nil {
		return time.Since(w.start)
	}
	return end.GetTime().AsTime().Sub(w.created)
}

// showTail prints the last lines of a step's log to stderr.
func (w *watcher) showTail(step string) {
	name := filepath.Join(w.env.Dir, logName(step))
	data, err := os.ReadFile(name)
	if err != nil || len(data) == 0 {
		return
	}
	lines := bytes.Split(bytes.TrimRight(data, "\n"), []byte("\n"))
	if len(lines) > failureTailLines {
		lines = lines[len(lines)-failureTailLines:]
	}
	fmt.Fprintf(w.env.Stderr, "--- last %d lines of %s ---\n%s\n---\n", len(lines), logName(step), bytes.Join(lines, []byte("\n")))
}
