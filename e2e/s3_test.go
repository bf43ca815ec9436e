package e2e

import (
	"bytes"
	"context"
	"crypto/rand"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"distbuild/artifactcache"
	"distbuild/artifactcache/s3store/s3test"
	"distbuild/digest"
	distbuildv1 "distbuild/proto/distbuild/v1"

	"github.com/minio/minio-go/v7"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
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

// TestTroveKilledMidUploadLeavesNoPartialObject kills a trove (SIGKILL)
// while a blob's parts are reaching the bucket: no object appears under
// the blob's name, a second trove sharing the bucket reports it missing,
// and the blob can be uploaded through that trove afterwards.
func TestTroveKilledMidUploadLeavesNoPartialObject(t *testing.T) {
	srv := s3test.Start(t)
	url := srv.NewBucket(t, "farm/")
	bucket := strings.TrimSuffix(strings.TrimPrefix(url, "s3://"), "/farm/")
	f := &farm{t: t, dir: t.TempDir(), logs: map[string]*bytes.Buffer{}}
	trove := func(name string) string {
		return f.daemonAs(name, "trove", "serve", "--dir", filepath.Join(f.dir, name), "--listen", "127.0.0.1:0", "--http-listen", "",
			"--store", url, "--s3-endpoint", srv.Endpoint, "--s3-credentials-file", srv.CredentialsFile)["grpc"]
	}
	dial := func(addr string) distbuildv1.ArtifactCacheServiceClient {
		conn, err := grpc.NewClient(addr, append(artifactcache.DialOptions(), grpc.WithTransportCredentials(insecure.NewCredentials()))...)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { conn.Close() })
		return distbuildv1.NewArtifactCacheServiceClient(conn)
	}
	content := make([]byte, 64<<20)
	rand.Read(content)
	d := digest.OfBytes(content)

	a := dial(trove("trove-a"))
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	stream, err := a.Write(ctx)
	if err != nil {
		t.Fatal(err)
	}
	// Half the blob: several 8 MiB parts reach the bucket, and the
	// stream stays open.
	for off := 0; off < 32<<20; off += 1 << 20 {
		req := &distbuildv1.WriteRequest{Data: content[off : off+1<<20]}
		if off == 0 {
			req.Digest = d.Proto()
		}
		if err := stream.Send(req); err != nil {
			t.Fatal(err)
		}
	}
	core := minio.Core{Client: srv.Client}
	deadline := time.Now().Add(time.Minute)
	for {
		res, err := core.ListMultipartUploads(t.Context(), bucket, "farm/blobs/", "", "", "", 10)
		if err == nil && len(res.Uploads) == 1 {
			parts, err := core.ListObjectParts(t.Context(), bucket, res.Uploads[0].Key, res.Uploads[0].UploadID, 0, 10)
			if err == nil && len(parts.ObjectParts) >= 2 {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("the upload's parts never reached the bucket:\n%s", f.log("trove-a"))
		}
		time.Sleep(20 * time.Millisecond)
	}
	f.logMu.Lock()
	pid := f.pids["trove-a"]
	f.logMu.Unlock()
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}

	name := "farm/blobs/sha256/" + d.Hash().String()
	if _, err := srv.Client.StatObject(t.Context(), bucket, name, minio.StatObjectOptions{}); minio.ToErrorResponse(err).Code != minio.NoSuchKey {
		t.Fatalf("after the trove died mid-upload, the blob's object: %v; want NoSuchKey", err)
	}
	b := dial(trove("trove-b"))
	resp, err := b.FindMissing(t.Context(), &distbuildv1.FindMissingRequest{BlobDigests: []*distbuildv1.Digest{d.Proto()}})
	if err != nil || len(resp.GetMissingBlobDigests()) != 1 {
		t.Fatalf("trove B: FindMissing = %v, %v; want the half-uploaded blob missing", resp, err)
	}
	stream, err = b.Write(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	for off := 0; off < len(content); off += 1 << 20 {
		req := &distbuildv1.WriteRequest{Data: content[off : off+1<<20]}
		if off == 0 {
			req.Digest = d.Proto()
		}
		if err := stream.Send(req); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := stream.CloseAndRecv(); err != nil {
		t.Fatalf("uploading again through trove B: %v", err)
	}
	if info, err := srv.Client.StatObject(t.Context(), bucket, name, minio.StatObjectOptions{}); err != nil || info.Size != d.Size() {
		t.Fatalf("after the upload through trove B: %v, %d bytes; want the whole blob", err, info.Size)
	}
}
