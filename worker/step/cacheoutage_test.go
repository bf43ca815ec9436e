package step

import (
	"context"
	"errors"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"distbuild/artifactcache"
	"distbuild/digest"
	pb "distbuild/proto/distbuild/v1"
	"distbuild/trove"
	"distbuild/worker/cache"
	"distbuild/worker/sandbox"
)

// restartableCache is a real artifact cache on a fixed loopback address
// that can be stopped and started again over the same store, like a trove
// restarted by its supervisor.
type restartableCache struct {
	t    *testing.T
	dir  string
	addr string
	stop func()
}

func newRestartableCache(t *testing.T) *restartableCache {
	c := &restartableCache{t: t, dir: t.TempDir(), addr: "127.0.0.1:0"}
	c.start()
	t.Cleanup(func() {
		if c.stop != nil {
			c.stop()
		}
	})
	return c
}

func (c *restartableCache) start() {
	c.t.Helper()
	d, err := trove.Start(trove.Config{Dir: c.dir, MaxSizeBytes: 1 << 30, GRPCListen: c.addr,
		ShutdownTimeout: time.Second, Logger: hclog.NewNullLogger()})
	if err != nil {
		c.t.Fatal(err)
	}
	c.addr = d.Addrs().GRPC
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- d.Serve(ctx) }()
	c.stop = func() {
		cancel()
		<-done
		c.stop = nil
	}
}

// dialForWorker dials addr as cmd/worker does.
func dialForWorker(t *testing.T, addr string) *artifactcache.Client {
	t.Helper()
	c, err := artifactcache.Dial(addr, cache.DialOptions()...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// A trove restarted while a job uploads must not fail the job: the job
// waits for the cache and finishes once it is back. Before the worker
// waited, the upload failed at once, and so did the retries the controller
// started elsewhere at once, until the step's attempts ran out.
func TestAJobWaitsForTheCacheToComeBack(t *testing.T) {
	trove := newRestartableCache(t)
	client := dialForWorker(t, trove.addr)
	w := newTestRunner(t, sandbox.None, func(c *Config) {
		c.Cache = client
		c.TransferStallTimeout = hangBound
	})
	// The connection is up before the cache goes away, as on a farm.
	if _, err := client.UploadBytes(context.Background(), []byte("warm-up")); err != nil {
		t.Fatal(err)
	}
	trove.stop()

	repo, commit := gitRepo(t, map[string]string{"f": ""})
	spec := chunkSpec(repo, commit, `mkdir -p "$DESTDIR/usr/bin" && echo hello >"$DESTDIR/usr/bin/hello"`)
	rep := newRecorder()
	ended := make(chan *result, 1)
	go func() { ended <- runJobIn(t, context.Background(), w, spec, rep) }()
	for phase := pb.JobPhase(0); phase != pb.JobPhase_JOB_PHASE_UPLOADING; {
		select {
		case phase = <-rep.phases:
		case j := <-ended:
			t.Fatalf("while the cache was away the job ended in %v (failure %v); want it waiting in its upload", j.phase, j.failure)
		case <-time.After(hangBound):
			t.Fatal("the job never reached its upload")
		}
	}
	// The outage: a failing call ends in milliseconds, so a job that did
	// not wait has ended by now.
	select {
	case j := <-ended:
		t.Fatalf("while the cache was away the job went to %v (failure %v); want it still uploading, waiting for the cache", j.phase, j.failure)
	case <-time.After(300 * time.Millisecond):
	}

	trove.start()
	j := <-ended
	if j.phase != pb.JobPhase_JOB_PHASE_DONE {
		t.Fatalf("the job ended in %v (failure %v) after the cache came back; want it done", j.phase, j.failure)
	}
	key, err := digest.ParseCacheKey(spec.CacheKey)
	if err != nil {
		t.Fatal(err)
	}
	m, err := client.GetManifest(context.Background(), key)
	if err != nil || len(m.Files) != 3 {
		t.Fatalf("manifest after the outage: %v %v; want the artifact, the log and the provenance", m, err)
	}
	for _, f := range m.Files {
		if len(fetchBlob(t, w, f.Digest)) == 0 {
			t.Errorf("%s is empty in the cache", f.Name)
		}
	}
}

// Waiting for the cache is bounded like any transfer without progress: a
// cache that stays away fails the transfer as stalled, a setup failure
// the controller retries elsewhere.
func TestATransferGivesUpOnACacheThatStaysAway(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close() // nothing listens there any more
	w := newTestRunner(t, sandbox.None, func(c *Config) {
		c.Cache = dialForWorker(t, addr)
		c.TransferStallTimeout = 300 * time.Millisecond
	})
	content := randomBlob(t, 1<<20)
	path := filepath.Join(t.TempDir(), "artifact.tar")
	if err := os.WriteFile(path, content, 0o644); err != nil {
		t.Fatal(err)
	}
	d := digest.OfBytes(content)
	done := make(chan error, 1)
	go func() {
		_, err := w.upload(context.Background(), path, "big-bins", d.Hash().String(), d.Size())
		done <- err
	}()
	select {
	case err = <-done:
	case <-time.After(hangBound):
		t.Fatal("an upload to a cache that never came back did not give up")
	}
	var stall *stallError
	if !errors.As(err, &stall) || err.Error() != "uploading big-bins made no progress for 300ms and was stopped as stalled" {
		t.Errorf("upload: %v; want it stopped as stalled", err)
	}
	if f := failureOf(err, nil); f.Kind != pb.FailureKind_FAILURE_KIND_SETUP {
		t.Errorf("a cache that stays away is a %v; want a setup failure", f.Kind)
	}
}
