package step

import (
	"context"
	"crypto/rand"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"distbuild/digest"
	pb "distbuild/proto/distbuild/v1"
	"distbuild/worker/cache"
	"distbuild/worker/sandbox"
)

// randomBlob is incompressible content of n bytes.
func randomBlob(t *testing.T, n int) []byte {
	t.Helper()
	b := make([]byte, n)
	rand.Read(b)
	return b
}

func TestStagingFromAStalledCacheIsStoppedAsStalled(t *testing.T) {
	addr := startCache(t)
	direct := dialCache(t, addr)
	artifact := randomBlob(t, 4<<20)
	d, err := direct.UploadBytes(context.Background(), artifact)
	if err != nil {
		t.Fatal(err)
	}
	key := "5" + d.Hash().String()[1:]
	m := &pb.Manifest{CacheKey: key, StepName: "dep", Kind: pb.StepKind_STEP_KIND_CHUNK,
		Files: []*pb.ManifestFile{{Name: "dep-bins", Role: pb.FileRole_FILE_ROLE_ARTIFACT, Digest: d.Proto()}}}
	if err := direct.PutManifest(context.Background(), m); err != nil {
		t.Fatal(err)
	}
	// The cache answers the manifest, then sends a quarter of the blob
	// and nothing more.
	proxy := stallingProxy(t, addr, 1<<40, 1<<20)
	blobs := filepath.Join(t.TempDir(), "blobs")
	w := newTestRunner(t, sandbox.None, func(c *Config) {
		// Through a local blob cache, as the worker stages.
		local, err := cache.NewLocal(blobs, 0, dialCache(t, proxy), hclog.NewNullLogger())
		if err != nil {
			t.Fatal(err)
		}
		c.Cache = local
		c.TransferStallTimeout = 500 * time.Millisecond
	})
	repo, commit := gitRepo(t, map[string]string{"f": ""})
	spec := chunkSpec(repo, commit, "true")
	spec.Staging = []string{key}
	f := failed(t, runJob(t, w, spec))
	want := "downloading " + d.String() + " from the artifact cache made no progress for 500ms and was stopped as stalled"
	if f.Kind != pb.FailureKind_FAILURE_KIND_SETUP || f.Reason != want {
		t.Errorf("failure %v %q; want a setup failure %q", f.Kind, f.Reason, want)
	}
	left, _ := os.ReadDir(blobs)
	trees, _ := os.ReadDir(filepath.Join(blobs, "trees"))
	if len(left)+len(trees) > 1 || len(left) == 1 && left[0].Name() != "trees" {
		t.Errorf("the stalled download left %v, and trees %v, in the blob cache", left, trees)
	}
}

func TestUploadToAStalledCacheIsStoppedAsStalled(t *testing.T) {
	addr := startCache(t)
	// The cache takes the first 256 KiB of what is sent, then nothing.
	proxy := stallingProxy(t, addr, 256<<10, 1<<40)
	w := newTestRunner(t, sandbox.None, func(c *Config) {
		c.Cache = dialCache(t, proxy)
		c.TransferStallTimeout = 500 * time.Millisecond
	})
	content := randomBlob(t, 16<<20)
	path := filepath.Join(t.TempDir(), "artifact.tar")
	if err := os.WriteFile(path, content, 0o644); err != nil {
		t.Fatal(err)
	}
	d := digest.OfBytes(content)
	_, err := w.upload(context.Background(), path, "big-bins", d.Hash().String(), d.Size())
	var stall *stallError
	if !errors.As(err, &stall) || err.Error() != "uploading big-bins made no progress for 500ms and was stopped as stalled" {
		t.Errorf("upload: %v; want it stopped as stalled", err)
	}
	// Through an unhindered connection the same upload works.
	direct := newTestRunner(t, sandbox.None, func(c *Config) {
		c.Cache = dialCache(t, addr)
		c.TransferStallTimeout = 500 * time.Millisecond
	})
	if _, err := direct.upload(context.Background(), path, "big-bins", d.Hash().String(), d.Size()); err != nil {
		t.Errorf("upload without a stall: %v", err)
	}
}
