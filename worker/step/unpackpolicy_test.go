package step

import (
	"archive/tar"
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	pb "distbuild/proto/distbuild/v1"
	"distbuild/worker/sandbox"
)

// specialTar holds one device node or one setuid program.
func specialTar(t *testing.T, device bool) []byte {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	if device {
		tw.WriteHeader(&tar.Header{Typeflag: tar.TypeChar, Name: "null", Mode: 0o666, Devmajor: 1, Devminor: 3})
	} else {
		tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: "su", Mode: 0o4755, Size: 2})
		tw.Write([]byte("su"))
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func TestStagingAllowsDevicesOnlyFromChunksDeclaringThemAndSetuidOnlyWhenAllowed(t *testing.T) {
	devKey, suidKey := strings.Repeat("d", 64), strings.Repeat("5", 64)
	for _, tc := range []struct {
		name        string
		key         string
		devices     []string
		allowSetuid bool
		wantErr     string
	}{
		{"device from a chunk not declaring devices", devKey, nil, false, "device"},
		{"device from a chunk declaring devices", devKey, []string{devKey}, false, ""},
		{"setuid program, not allowed", suidKey, nil, false, "setuid"},
		{"setuid program, allowed", suidKey, nil, true, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w := newTestRunner(t, sandbox.None, func(c *Config) { c.AllowSetuid = tc.allowSetuid })
			storeChunk(t, w, devKey, "dev-misc", specialTar(t, true))
			storeChunk(t, w, suidKey, "su-bins", specialTar(t, false))
			for name, s := range map[string]stager{"unpacking": unpacker{w}, "linking": w.link} {
				t.Run(name, func(t *testing.T) {
					checkStagingPolicy(t, w, s, &pb.Job{Staging: []string{tc.key}, DeviceCacheKeys: tc.devices}, tc.wantErr)
				})
			}
		})
	}
}

// checkStagingPolicy stages job's artifacts with s and checks it refused
// them with an error mentioning wantErr, or staged them when it is "".
// A tree the linker could not unpack is not kept, so staging the same
// artifact with looser rules later is not stopped by it.
func checkStagingPolicy(t *testing.T, w *Runner, s stager, job *pb.Job, wantErr string) {
	t.Helper()
	dir := t.TempDir()
	err := w.stage(context.Background(), newTask(t, job), s, dir)
	if wantErr == "" && err != nil {
		t.Errorf("staging failed: %v", err)
	}
	if wantErr != "" && (err == nil || !strings.Contains(err.Error(), wantErr)) {
		t.Errorf("staging gave %v, want a refusal mentioning %q", err, wantErr)
	}
	if wantErr != "" {
		if _, err := os.Lstat(filepath.Join(dir, "null")); err == nil {
			t.Error("the refused device file was created")
		}
	}
}
