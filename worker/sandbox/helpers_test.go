package sandbox

import (
	"bytes"
	"context"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// hangBound is how long a test waits for something that should happen at
// once before calling it a hang; it is no measure of speed.
const hangBound = 30 * time.Second

// watchWriter is an output writer safe for concurrent use that closes seen
// once its output contains want.
type watchWriter struct {
	mu   sync.Mutex
	buf  bytes.Buffer
	want string
	seen chan struct{}
}

func newWatch(want string) *watchWriter {
	return &watchWriter{want: want, seen: make(chan struct{})}
}

func (w *watchWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	had := strings.Contains(w.buf.String(), w.want)
	w.buf.Write(p)
	if !had && strings.Contains(w.buf.String(), w.want) {
		close(w.seen)
	}
	return len(p), nil
}

func (w *watchWriter) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.buf.String()
}

// waitSeen fails the test if w never shows what it waits for.
func waitSeen(t *testing.T, w *watchWriter) {
	t.Helper()
	select {
	case <-w.seen:
	case <-time.After(hangBound):
		t.Fatalf("output never contained %q; got %q", w.want, w.String())
	}
}

type outcome struct {
	res Result
	err error
}

// start runs s in the background, for tests that act while it runs.
func start(ctx context.Context, s Spec) <-chan outcome {
	done := make(chan outcome, 1)
	go func() {
		res, err := Run(ctx, s)
		done <- outcome{res, err}
	}()
	return done
}

func wait(t *testing.T, done <-chan outcome) outcome {
	t.Helper()
	select {
	case o := <-done:
		return o
	case <-time.After(hangBound):
		t.Fatal("Run did not return")
		return outcome{}
	}
}

// processes lists live processes (as "pid comm") for which match, given a
// process's stat fields after its name and its command line, holds.
// Zombies are dead and left out: where init does not reap orphans (as in
// some containers) they stay in their process group for ever.
func processes(match func(stat []string, cmdline string) bool) []string {
	entries, _ := os.ReadDir("/proc")
	var found []string
	for _, e := range entries {
		if _, err := strconv.Atoi(e.Name()); err != nil {
			continue
		}
		stat, err := os.ReadFile("/proc/" + e.Name() + "/stat")
		if err != nil {
			continue // gone meanwhile
		}
		cmdline, _ := os.ReadFile("/proc/" + e.Name() + "/cmdline")
		s := string(stat)
		end := strings.LastIndexByte(s, ')')
		fields := strings.Fields(s[end+1:])
		if len(fields) < 3 || fields[0] == "Z" {
			continue
		}
		if match(fields, string(cmdline)) {
			found = append(found, e.Name()+" "+s[strings.IndexByte(s, '(')+1:end])
		}
	}
	return found
}

// inGroup matches processes of process group pgid.
func inGroup(pgid int) func([]string, string) bool {
	return func(stat []string, _ string) bool { return stat[2] == strconv.Itoa(pgid) }
}

// withArg matches processes with arg on their command line.
func withArg(arg string) func([]string, string) bool {
	return func(_ []string, cmdline string) bool {
		return strings.Contains("\x00"+cmdline, "\x00"+arg+"\x00")
	}
}

// waitProcesses fails the test unless exactly n processes match within
// hangBound: a process forked a moment ago may not have its command line
// yet, and a killed one dies at once, but not before kill returns.
func waitProcesses(t *testing.T, what string, match func([]string, string) bool, n int) {
	t.Helper()
	deadline := time.Now().Add(hangBound)
	for {
		found := processes(match)
		if len(found) == n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: %v; want %d processes", what, found, n)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
