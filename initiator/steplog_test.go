package initiator

import (
	"bytes"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	pb "distbuild/proto/distbuild/v1"
)

// storedLogs stands in for the artifact cache: logs by digest hash.
type storedLogs map[string]string

func (s storedLogs) fetch(log *pb.Digest, to io.Writer) error {
	data, ok := s[log.Hash]
	if !ok {
		return errors.New("not in the cache")
	}
	_, err := io.WriteString(to, data)
	return err
}

func logDigest(name string) *pb.Digest { return &pb.Digest{Hash: name, SizeBytes: 1} }

var zlib = &pb.ArtifactRef{StepName: "zlib", Kind: pb.StepKind_STEP_KIND_CHUNK, CacheKey: strings.Repeat("a", 64)}

func started(attempt int32, worker string) *pb.BuildEvent {
	return &pb.BuildEvent{Event: &pb.BuildEvent_StepStarted{StepStarted: &pb.StepStarted{Step: zlib, Worker: worker, Attempt: attempt}}}
}

func output(data string) *pb.BuildEvent {
	return &pb.BuildEvent{Event: &pb.BuildEvent_StepOutput{StepOutput: &pb.StepOutput{StepName: "zlib", Data: []byte(data)}}}
}

func finished(worker string, log *pb.Digest) *pb.BuildEvent {
	return &pb.BuildEvent{Event: &pb.BuildEvent_StepFinished{StepFinished: &pb.StepFinished{Step: zlib, Worker: worker, Duration: durationpb.New(time.Second), Log: log}}}
}

func failed(attempt int32, log *pb.Digest) *pb.BuildEvent {
	return &pb.BuildEvent{Event: &pb.BuildEvent_StepFailed{StepFailed: &pb.StepFailed{Step: zlib, Worker: "w1", Attempt: attempt,
		Kind: pb.FailureKind_FAILURE_KIND_SETUP, Reason: "worker lost", WillRetry: true, Log: log}}}
}

// replay feeds events to an attach watcher and returns zlib's log file and
// what went to stderr.
func replay(t *testing.T, logs storedLogs, events ...*pb.BuildEvent) (log, stderr string) {
	t.Helper()
	dir := t.TempDir()
	var out, errOut bytes.Buffer
	w := newReplayWatcher(&Env{Dir: dir, Stdout: &out, Stderr: &errOut}, false, time.Time{}, logs.fetch)
	for _, ev := range events {
		w.handle(ev)
	}
	w.close()
	data, err := os.ReadFile(filepath.Join(dir, "build-step-zlib.log"))
	if err != nil {
		t.Fatalf("build-step-zlib.log: %v", err)
	}
	return string(data), errOut.String()
}

func TestAttachFetchesTheLogOfAStepThatEndedBeforeIt(t *testing.T) {
	// The replay has the step's start and end but none of its output.
	log, _ := replay(t, storedLogs{"d1": "configure\ncompile\n"}, started(1, "w1"), finished("w1", logDigest("d1")))
	if log != "configure\ncompile\n" {
		t.Errorf("log = %q, want the complete log from the cache", log)
	}
}

func TestAttachReplacesTheTailSeenLiveWithTheCompleteLog(t *testing.T) {
	log, _ := replay(t, storedLogs{"d1": "configure\ncompile\n"}, started(1, "w1"), output("compile\n"), finished("w1", logDigest("d1")))
	if log != "configure\ncompile\n" {
		t.Errorf("log = %q, want the complete log once, not the live tail followed by it", log)
	}
}

func TestAttachKeepsEveryAttemptOfARetriedStep(t *testing.T) {
	logs := storedLogs{"d1": "first try\n", "d2": "second try\n"}
	log, _ := replay(t, logs, started(1, "w1"), failed(1, logDigest("d1")), started(2, "w2"), output("try\n"), finished("w2", logDigest("d2")))
	if want := "first try\n\n=== attempt 2 on w2 ===\nsecond try\n"; log != want {
		t.Errorf("log = %q, want %q", log, want)
	}
}

func TestAttachKeepsTheLiveOutputWhenTheLogCannotBeFetched(t *testing.T) {
	log, stderr := replay(t, storedLogs{}, started(1, "w1"), output("compile\n"), finished("w1", logDigest("gone")))
	if log != "compile\n" {
		t.Errorf("log = %q, want the output seen live", log)
	}
	if !strings.Contains(stderr, "build-step-zlib.log holds only the output seen live") || !strings.Contains(stderr, "not in the cache") {
		t.Errorf("stderr = %q, want a warning that the log is incomplete and why", stderr)
	}
}

func TestBuildKeepsTheOutputItSawWithoutFetching(t *testing.T) {
	dir := t.TempDir()
	var out bytes.Buffer
	w := newWatcher(&Env{Dir: dir, Stdout: &out, Stderr: &out}, false)
	for _, ev := range []*pb.BuildEvent{started(1, "w1"), output("compile\n"), finished("w1", logDigest("d1"))} {
		w.handle(ev)
	}
	w.close()
	if log, err := os.ReadFile(filepath.Join(dir, "build-step-zlib.log")); err != nil || string(log) != "compile\n" {
		t.Errorf("build-step-zlib.log = %q, %v; want exactly the live output", log, err)
	}
}

func TestAttachTimesTheBuildByTheControllersClock(t *testing.T) {
	// A 44s build attached to long after it ended: its duration runs from
	// its acceptance to its end as the controller recorded them, not until
	// the replay reaches the end.
	accepted := time.Now().Add(-5 * time.Minute)
	for name, created := range map[string]time.Time{"from the accepted event": {}, "from the status": accepted} {
		var out bytes.Buffer
		w := newReplayWatcher(&Env{Dir: t.TempDir(), Stdout: &out, Stderr: &out}, false, created, storedLogs{}.fetch)
		w.handle(&pb.BuildEvent{Time: timestamppb.New(accepted), Event: &pb.BuildEvent_Accepted{Accepted: &pb.BuildAccepted{BuildId: "b1"}}})
		done, code := w.handle(&pb.BuildEvent{Time: timestamppb.New(accepted.Add(44 * time.Second)), Event: &pb.BuildEvent_BuildFinished{BuildFinished: &pb.BuildFinished{}}})
		w.close()
		if !done || code != ExitOK || !strings.Contains(out.String(), "build succeeded in 44s:") {
			t.Errorf("%s: done %v, exit %d, output %q; want success in 44s", name, done, code, out.String())
		}
	}
}
