package step

import (
	"archive/tar"
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	"distbuild/clock"
	"distbuild/digest"
	pb "distbuild/proto/distbuild/v1"
	"distbuild/worker/sandbox"
)

// tarOf builds a tarball of the given entries: a file's body, or a symlink
// target after "->".
func tarOf(t *testing.T, entries map[string]string) []byte {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, dir := range []string{"bin/", "etc/"} {
		tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: dir, Mode: 0o755})
	}
	for name, body := range entries {
		if target, ok := strings.CutPrefix(body, "->"); ok {
			tw.WriteHeader(&tar.Header{Typeflag: tar.TypeSymlink, Name: name, Linkname: target, Mode: 0o777})
			continue
		}
		tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: name, Size: int64(len(body)), Mode: 0o755})
		tw.Write([]byte(body))
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// readBusybox reads the host's static busybox, a whole userland in one
// file, for artifacts that need a shell.
func readBusybox(t testing.TB) []byte {
	t.Helper()
	busybox, err := os.ReadFile("/bin/busybox")
	if err != nil {
		t.Fatal("needs a static /bin/busybox (apt-get install busybox-static):", err)
	}
	return busybox
}

// storeChunk puts a chunk artifact and its manifest into the cache.
func storeChunk(t testing.TB, w *Runner, key, artifact string, tarball []byte) {
	t.Helper()
	d := putBlob(t, w.cfg.Cache, tarball)
	m := &pb.Manifest{CacheKey: key, StepName: artifact, Kind: pb.StepKind_STEP_KIND_CHUNK, Files: []*pb.ManifestFile{{Name: artifact, Role: pb.FileRole_FILE_ROLE_ARTIFACT, Digest: d.Proto()}}}
	if err := w.cfg.Cache.PutManifest(context.Background(), m); err != nil {
		t.Fatal(err)
	}
}

func TestSystemAssemblyRunsIntegrationCommandsInsideTheRoot(t *testing.T) {
	busybox := readBusybox(t)
	for _, mode := range []sandbox.Mode{sandbox.None, sandbox.Bwrap} {
		t.Run(string(mode), func(t *testing.T) {
			w := newTestRunner(t, mode)
			shellKey, dataKey := strings.Repeat("1", 64), strings.Repeat("2", 64)
			storeChunk(t, w, shellKey, "shell-bins", tarOf(t, map[string]string{"bin/busybox": string(busybox), "bin/sh": "->busybox"}))
			storeChunk(t, w, dataKey, "data-misc", tarOf(t, map[string]string{"etc/motd": "hello\n"}))
			job := &pb.Job{JobId: "j1", Name: "sys", Kind: pb.StepKind_STEP_KIND_SYSTEM}
			sys := &pb.SystemJob{
				Contents: []*pb.ChunkArtifact{{CacheKey: shellKey, Artifact: "shell-bins"}, {CacheKey: dataKey, Artifact: "data-misc"}, {CacheKey: dataKey, Artifact: "data-doc"}},
				Integration: []*pb.IntegrationCommands{
					{Name: "00-first", Commands: []string{"/bin/busybox cat /etc/motd > /etc/copied"}},
					{Name: "10-second", Commands: []string{"/bin/busybox test -f /etc/copied && /bin/busybox echo integrated > /etc/integrated"}},
				},
			}
			files, err := w.assembleSystem(context.Background(), newTask(t, job), sys)
			if err != nil {
				t.Fatalf("assembling: %v", err)
			}
			if len(files) != 1 || files[0].Name != "sys-rootfs" {
				t.Fatalf("files %v, want one sys-rootfs artifact", files)
			}
			root := readTar(t, w, files[0].Digest)
			if root["etc/copied"] != "hello\n" || root["etc/integrated"] != "integrated\n" {
				t.Errorf("integration results in the root: copied %q integrated %q", root["etc/copied"], root["etc/integrated"])
			}
			if _, ok := root["bin/busybox"]; !ok {
				t.Error("the shell chunk's artifact is missing from the root")
			}
		})
	}
}

func TestSystemIntegrationWithoutAShellSaysSo(t *testing.T) {
	w := newTestRunner(t, sandbox.None)
	key := strings.Repeat("3", 64)
	storeChunk(t, w, key, "data-misc", tarOf(t, map[string]string{"etc/motd": "hello\n"}))
	job := &pb.Job{JobId: "j1", Name: "sys"}
	_, err := w.assembleSystem(context.Background(), newTask(t, job), &pb.SystemJob{
		Contents:    []*pb.ChunkArtifact{{CacheKey: key, Artifact: "data-misc"}},
		Integration: []*pb.IntegrationCommands{{Name: "00", Commands: []string{"true"}}},
	})
	if err == nil || !strings.Contains(err.Error(), "needs /bin/sh in the system") {
		t.Errorf("got %v, want an error saying the system has no shell", err)
	}
}

// newTask makes what a runner's parts need to work on job outside Run:
// a directory of its own, and a log that a recorder hears.
func newTask(t testing.TB, job *pb.Job) *task {
	t.Helper()
	out, err := newOutput(filepath.Join(t.TempDir(), "log"), 0, newRecorder(), clock.System, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { out.close() })
	tk := &task{job: job, dir: t.TempDir(), out: out, rep: newRecorder(), prof: newProfiler(clock.System, time.Now()), rec: &record{}}
	t.Cleanup(tk.end)
	return tk
}

func readTar(t testing.TB, w *Runner, d *pb.Digest) map[string]string {
	t.Helper()
	out := map[string]string{}
	tr := tar.NewReader(bytes.NewReader(fetchBlob(t, w, d)))
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return out
		}
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(tr)
		out[h.Name] = string(body)
	}
}

func TestSilentIntegrationCommandIsStoppedAsStalledWithItsProcessGroup(t *testing.T) {
	busybox := readBusybox(t)
	for _, mode := range []sandbox.Mode{sandbox.None, sandbox.Bwrap} {
		t.Run(string(mode), func(t *testing.T) {
			w := newTestRunner(t, mode, func(c *Config) { c.StallTimeout = 500 * time.Millisecond })
			key := strings.Repeat("4", 64)
			storeChunk(t, w, key, "shell-bins", tarOf(t, map[string]string{"bin/busybox": string(busybox), "bin/sh": "->busybox"}))
			sleep, arg := sleepCommand()
			// One sleep in the background, which only killing the whole
			// process group stops.
			command := fmt.Sprintf("/bin/busybox %s & exec /bin/busybox %[1]s", sleep)
			spec := &pb.Job{JobId: fmt.Sprintf("sys-%d", jobSeq.Add(1)), Name: "sys", Kind: pb.StepKind_STEP_KIND_SYSTEM, CacheKey: strings.Repeat("6", 64),
				Spec: &pb.Job_System{System: &pb.SystemJob{
					Contents:    []*pb.ChunkArtifact{{CacheKey: key, Artifact: "shell-bins"}},
					Integration: []*pb.IntegrationCommands{{Name: "00-hang", Commands: []string{command}}},
				}}}
			f := failed(t, runJob(t, w, spec))
			want := fmt.Sprintf("system-integration command %q made no output for 500ms and was stopped as stalled", command)
			if f.Kind != pb.FailureKind_FAILURE_KIND_SETUP || f.Reason != want {
				t.Errorf("failure %v %q; want a setup failure %q", f.Kind, f.Reason, want)
			}
			waitGone(t, arg)
		})
	}
}

func TestSystemIntegrationGetsTheLatestSourceDateOfItsChunks(t *testing.T) {
	busybox := readBusybox(t)
	w := newTestRunner(t, sandbox.None)
	shellKey, dataKey := strings.Repeat("4", 64), strings.Repeat("5", 64)
	storeChunk(t, w, shellKey, "shell-bins", tarOf(t, map[string]string{"bin/busybox": string(busybox), "bin/sh": "->busybox"}))
	storeChunk(t, w, dataKey, "data-misc", tarOf(t, map[string]string{"etc/motd": "hello\n"}))
	for key, date := range map[string]int64{shellKey: 1700000000, dataKey: 1710000000} {
		k, err := digest.ParseCacheKey(key)
		if err != nil {
			t.Fatal(err)
		}
		m, err := w.cfg.Cache.GetManifest(context.Background(), k)
		if err != nil {
			t.Fatal(err)
		}
		m.SourceDate = timestamppb.New(time.Unix(date, 0))
		if err := w.cfg.Cache.PutManifest(context.Background(), m); err != nil {
			t.Fatal(err)
		}
	}
	job := &pb.Job{JobId: "j-date", Name: "sys", Kind: pb.StepKind_STEP_KIND_SYSTEM}
	sys := &pb.SystemJob{
		Contents:    []*pb.ChunkArtifact{{CacheKey: shellKey, Artifact: "shell-bins"}, {CacheKey: dataKey, Artifact: "data-misc"}},
		Integration: []*pb.IntegrationCommands{{Name: "00-date", Commands: []string{`/bin/busybox echo "$SOURCE_DATE_EPOCH" > /etc/epoch`}}},
	}
	task := newTask(t, job)
	files, err := w.assembleSystem(context.Background(), task, sys)
	if err != nil {
		t.Fatalf("assembling: %v", err)
	}
	if got := readTar(t, w, files[0].Digest)["etc/epoch"]; got != "1710000000\n" {
		t.Errorf("SOURCE_DATE_EPOCH in system integration was %q; want the latest chunk's date, 1710000000", got)
	}
	if !task.rec.sourceDate.Equal(time.Unix(1710000000, 0)) {
		t.Errorf("the system's recorded source date is %v; want its latest chunk's", task.rec.sourceDate)
	}
}
