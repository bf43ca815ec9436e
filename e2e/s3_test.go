package e2e

import (
	"context"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"distbuild/artifactcache/s3store/s3test"

	"github.com/minio/minio-go/v7"
)

// TestDemoBuildOnSharedS3Bucket builds the demo system on a farm whose
// cache is one bucket of a real SeaweedFS shared by two troves, each with
// a small local cache in front and each serving the git repositories: the
// controller and worker-1 use trove A, worker-2 uses trove B, so what
// worker-2 stages from worker-1's steps reaches it through the bucket. The
// system is then fetched through trove B, and a second controller that
// knows only trove B finds everything already built.
func TestDemoBuildOnSharedS3Bucket(t *testing.T) {
	srv := s3test.Start(t)
	url := srv.NewBucket(t, "farm/")
	f := newFarm(t)
	trove := func(name string) map[string]string {
		return f.daemonAs(name, "trove", "serve", "--dir", filepath.Join(f.dir, name), "--max-size", "64MiB",
			"--git-dir", filepath.Join(f.dir, "trove", "git"), "--listen", "127.0.0.1:0", "--http-listen", "127.0.0.1:0",
			"--store", url, "--s3-endpoint", srv.Endpoint, "--s3-credentials-file", srv.CredentialsFile)
	}
	a, b := trove("trove-a"), trove("trove-b")
	f.cache, f.http = a["grpc"], a["http"]
	f.git(f.defs, "remote", "set-url", "origin", "http://"+b["http"]+"/git/baserock/definitions.git")
	f.startController("--state-dir", filepath.Join(f.dir, "controller"), "--cache", a["grpc"], "--trove-git", "http://"+a["http"]+"/git")
	for w, cache := range map[string]string{"worker-1": a["grpc"], "worker-2": b["grpc"]} {
		f.start(w, "worker", "--name", w, "--slots", "2", "--controller", f.workerAddr, "--cache", cache,
			"--work-dir", filepath.Join(f.dir, w), "--sandbox", "bwrap")
	}

	r := f.initiator("build", demoSystem)
	if r.code != 0 {
		t.Fatalf("exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	workers := map[string]bool{}
	for _, w := range r.started() {
		workers[w] = true
	}
	if !workers["worker-1"] || !workers["worker-2"] {
		t.Errorf("steps ran on %v, want both workers (and so both troves)", keysOf(workers))
	}
	key := regexp.MustCompile(`(?m)^  SYSTEM demo-system ([0-9a-f]{64})$`).FindStringSubmatch(r.stdout)
	if key == nil {
		t.Fatalf("the build reported no system cache key:\n%s", r.stdout)
	}

	// The bucket holds every step's manifest and the blobs.
	bucket := strings.TrimSuffix(strings.TrimPrefix(url, "s3://"), "/farm/")
	count := map[string]int{}
	for obj := range srv.Client.ListObjects(context.Background(), bucket, minio.ListObjectsOptions{Prefix: "farm/", Recursive: true}) {
		if obj.Err != nil {
			t.Fatal(obj.Err)
		}
		count[strings.SplitN(strings.TrimPrefix(obj.Key, "farm/"), "/", 2)[0]]++
	}
	steps := len(f.graph(demoSystem))
	if count["manifests"] != steps || count["blobs"] < steps {
		t.Errorf("the bucket holds %d manifests and %d blobs; want one manifest per step (%d) and at least as many blobs", count["manifests"], count["blobs"], steps)
	}

	// Fetched through trove B, the system works.
	f.cache = b["grpc"]
	root := filepath.Join(f.dir, "system")
	if r := f.initiator("fetch", key[1], root); r.code != 0 {
		t.Fatalf("initiator fetch through trove B: %s", r.stderr)
	}
	out, err := exec.Command(filepath.Join(root, "usr", "bin", "demo-hello")).CombinedOutput()
	if err != nil || !strings.Contains(string(out), "demo-hello: all 5 checks passed") {
		t.Errorf("demo-hello from the system fetched through trove B: %v\n%s", err, out)
	}
	// Trove B's HTTP API serves the manifest it never received itself.
	if body := httpGet(t, "http://"+b["http"]+"/artifacts/"+key[1]); !regexp.MustCompile(`"stepName":\s*"demo-system"`).Match(body) {
		t.Errorf("trove B's HTTP API for the system's manifest:\n%s", body)
	}

	// A second controller that knows only trove B builds nothing.
	addrs := f.daemonAs("controller-b", "controller", "--state-dir", filepath.Join(f.dir, "controller-b"),
		"--cache", b["grpc"], "--trove-git", "http://"+b["http"]+"/git",
		"--listen", "127.0.0.1:0", "--worker-listen", "127.0.0.1:0", "--http-listen", "127.0.0.1:0")
	f.controller = addrs["grpc"]
	r = f.initiator("build", demoSystem)
	if r.code != 0 || len(r.started()) != 0 || !strings.Contains(r.stdout, "0 to build") {
		t.Errorf("through trove B: exit %d, started %v; want success with nothing built\n%s%s", r.code, r.started(), r.stdout, r.stderr)
	}
}
