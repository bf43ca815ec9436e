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
			dir := t.TempDir()
			job := &pb.Job{Staging: []string{tc.key}, DeviceCacheKeys: tc.devices}
			err := w.stage(context.Background(), newTask(t, job), dir)
			if tc.wantErr == "" && err != nil {
				t.Errorf("staging failed: %v", err)
			}
			if tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)) {
				t.Errorf("staging gave %v, want a refusal mentioning %q", err, tc.wantErr)
			}
			if tc.wantErr != "" {
				if _, err := os.Lstat(filepath.Join(dir, "null")); err == nil {
					t.Error("the refused device file was created")
				}
			}
		})
	}
}
