package initiator

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

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

func TestTerminalProgressIsRedrawnInPlace(t *testing.T) {
	dir := t.TempDir()
	var out bytes.Buffer
	w := newWatcher(&Env{Dir: dir, Stdout: &out, Stderr: &out}, true)
	for _, ev := range events()[:3] {
		w.handle(ev)
	}
	last := out.String()[strings.LastIndex(out.String(), "\r\033[K"):]
	if !strings.HasPrefix(last, "\r\033[K[0/2 built] ") || !strings.HasSuffix(last, " running: zlib@w1") {
		t.Errorf("terminal output does not end with a progress line naming zlib on w1: %q", out.String())
	}
	if strings.Contains(out.String(), "started  zlib") {
		t.Errorf("a terminal got a plain 'started' line instead of the progress line: %q", out.String())
	}
	for _, ev := range events()[3:] {
		w.handle(ev)
	}
	w.close()
	if !strings.Contains(out.String(), "\r\033[Kfinished zlib on w1") {
		t.Errorf("the finished line was not printed over the progress line: %q", out.String())
	}
	log, err := os.ReadFile(filepath.Join(dir, "build-step-zlib.log"))
	if err != nil || string(log) != "compiling\n" {
		t.Errorf("build-step-zlib.log = %q, %v; want the step's output", log, err)
	}
}

func TestPlainOutputHasOneLinePerEvent(t *testing.T) {
	var out bytes.Buffer
	w := newWatcher(&Env{Dir: t.TempDir(), Stdout: &out, Stderr: &out}, false)
	for _, ev := range events() {
		w.handle(ev)
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
