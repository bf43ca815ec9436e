package artifactcache_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"math/rand/v2"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"distbuild/artifactcache"
	"distbuild/artifactcache/internal/wire"
	"distbuild/digest"
	distbuildv1 "distbuild/proto/distbuild/v1"
	"distbuild/trove"
	"distbuild/trove/trovetest"

	"github.com/hashicorp/go-hclog"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
)

// startCache runs a whole trove in-process on a loopback port and returns
// a client for it and the store directory.
func startCache(t testing.TB, maxSize int64) (*artifactcache.Client, string) {
	t.Helper()
	dir := t.TempDir()
	return startCacheIn(t, dir, maxSize), dir
}

// startCacheIn is startCache with the store in a given directory.
func startCacheIn(t testing.TB, dir string, maxSize int64) *artifactcache.Client {
	t.Helper()
	logger := hclog.NewNullLogger()
	if tt, ok := t.(*testing.T); ok {
		logger = hclog.New(&hclog.LoggerOptions{Output: tt.Output(), Level: hclog.Info})
	}
	return trovetest.Client(t, trovetest.Start(t, trove.Config{Dir: dir, MaxSizeBytes: maxSize, Logger: logger}))
}

func cacheKey(t *testing.T, s string) digest.CacheKey {
	t.Helper()
	k, err := digest.ParseCacheKey(s)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func TestUploadsAndDownloadsRoundTrip(t *testing.T) {
	c, _ := startCache(t, 1<<30)
	ctx := context.Background()
	work := t.TempDir()
	content := bytes.Repeat([]byte("a chunk artifact "), 200_000) // ~3.4 MB, several chunks
	src := filepath.Join(work, "artifact.tar")
	os.WriteFile(src, content, 0o644)

	fromFile, err := c.UploadFile(ctx, src)
	if err != nil || fromFile != digest.OfBytes(content) {
		t.Fatalf("UploadFile: %v, %v; want %v", fromFile, err, digest.OfBytes(content))
	}
	log := []byte("build log\n")
	fromBytes, err := c.UploadBytes(ctx, log)
	if err != nil {
		t.Fatal(err)
	}
	streamed := []byte("streamed content of unknown digest")
	fromStream, err := c.UploadStream(ctx, bytes.NewReader(streamed), work)
	if err != nil || fromStream != digest.OfBytes(streamed) {
		t.Fatalf("UploadStream: %v, %v", fromStream, err)
	}
	if leftovers, _ := filepath.Glob(filepath.Join(work, "artifactcache-upload-*")); len(leftovers) != 0 {
		t.Errorf("UploadStream left spool files: %v", leftovers)
	}

	dst := filepath.Join(work, "downloaded.tar")
	if err := c.Download(ctx, fromFile, dst); err != nil {
		t.Fatal(err)
	}
	if got, _ := os.ReadFile(dst); !bytes.Equal(got, content) {
		t.Errorf("downloaded %d bytes differing from the %d uploaded", len(got), len(content))
	}
	for d, want := range map[digest.Digest][]byte{fromBytes: log, fromStream: streamed} {
		var buf bytes.Buffer
		if err := c.Fetch(ctx, d, &buf); err != nil || !bytes.Equal(buf.Bytes(), want) {
			t.Errorf("Fetch %s: %q, %v; want %q", d, buf.Bytes(), err, want)
		}
	}

	m := &distbuildv1.Manifest{CacheKey: strings.Repeat("1", 64), StepName: "zlib", Kind: distbuildv1.StepKind_STEP_KIND_CHUNK,
		Files: []*distbuildv1.ManifestFile{
			{Name: "zlib-devel", Role: distbuildv1.FileRole_FILE_ROLE_ARTIFACT, Digest: fromFile.Proto()},
			{Name: "log", Role: distbuildv1.FileRole_FILE_ROLE_LOG, Digest: fromBytes.Proto()},
		}}
	if err := c.PutManifest(ctx, m); err != nil {
		t.Fatal(err)
	}
	got, err := c.GetManifest(ctx, cacheKey(t, m.CacheKey))
	if err != nil || !proto.Equal(got, m) {
		t.Fatalf("GetManifest: %v, %v; want %v", got, err, m)
	}
}

func TestUploadFileOfAnySize(t *testing.T) {
	c, _ := startCache(t, 1<<30)
	ctx := context.Background()
	for _, size := range []int{0, 1, wire.ChunkSize - 1, wire.ChunkSize, wire.ChunkSize + 1, 3*wire.ChunkSize + 5} {
		content := make([]byte, size)
		for i := range content {
			content[i] = byte(i*13 + i>>11)
		}
		path := filepath.Join(t.TempDir(), "blob")
		if err := os.WriteFile(path, content, 0o644); err != nil {
			t.Fatal(err)
		}
		d, err := c.UploadFile(ctx, path)
		if want := digest.OfBytes(content); err != nil || d != want {
			t.Fatalf("UploadFile of %d bytes: %v, %v; want %v", size, d, err, want)
		}
		var got bytes.Buffer
		if err := c.Fetch(ctx, d, &got); err != nil || !bytes.Equal(got.Bytes(), content) {
			t.Fatalf("fetching the %d bytes uploaded: %d bytes, %v", size, got.Len(), err)
		}
	}
}

func TestDownloadFailureLeavesThePathAlone(t *testing.T) {
	c, _ := startCache(t, 1<<30)
	dir := t.TempDir()
	dst := filepath.Join(dir, "existing")
	os.WriteFile(dst, []byte("old content"), 0o644)
	err := c.Download(context.Background(), digest.OfBytes([]byte("not in the cache")), dst)
	if status.Code(err) != codes.NotFound {
		t.Fatalf("download of a missing blob: %v, want NotFound", err)
	}
	if got, _ := os.ReadFile(dst); string(got) != "old content" {
		t.Errorf("failed download changed the destination to %q", got)
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 1 {
		t.Errorf("failed download left files behind: %v", entries)
	}
}

func TestConcurrentIdenticalUploadsKeepOneCopy(t *testing.T) {
	c, dir := startCache(t, 1<<30)
	content := bytes.Repeat([]byte("identical "), 500_000)
	d := digest.OfBytes(content)
	var wg sync.WaitGroup
	errs := make([]error, 6)
	for i := range errs {
		wg.Go(func() { errs[i] = c.Upload(context.Background(), d, bytes.NewReader(content)) })
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("upload %d: %v", i, err)
		}
	}
	h := d.Hash().String()
	if files, _ := os.ReadDir(filepath.Join(dir, "blobs", h[:2])); len(files) != 1 {
		t.Errorf("blob shard holds %d files, want 1", len(files))
	}
	if tmp, _ := os.ReadDir(filepath.Join(dir, "tmp")); len(tmp) != 0 {
		t.Errorf("%d temporary files left", len(tmp))
	}
}

func TestFindMissingAcrossManyBatches(t *testing.T) {
	c, _ := startCache(t, 1<<30)
	ctx := context.Background()
	present, err := c.UploadBytes(ctx, []byte("present"))
	if err != nil {
		t.Fatal(err)
	}
	// 60,000 digests take three requests under the message size limit.
	var asked, wantMissing []digest.Digest
	for i := range 60_000 {
		if i%1000 == 0 {
			asked = append(asked, present)
			continue
		}
		d := digest.OfBytes([]byte{byte(i), byte(i >> 8), byte(i >> 16)})
		asked = append(asked, d)
		wantMissing = append(wantMissing, d)
	}
	keys := []digest.CacheKey{cacheKey(t, strings.Repeat("2", 64))}
	missing, missingKeys, err := c.FindMissing(ctx, asked, keys)
	if err != nil {
		t.Fatal(err)
	}
	if len(missing) != len(wantMissing) {
		t.Fatalf("%d missing, want %d", len(missing), len(wantMissing))
	}
	for i := range missing {
		if missing[i] != wantMissing[i] {
			t.Fatalf("missing[%d] = %s, want %s (order must be kept)", i, missing[i], wantMissing[i])
		}
	}
	if len(missingKeys) != 1 || missingKeys[0] != keys[0] {
		t.Errorf("missing keys %v, want %v", missingKeys, keys)
	}
}

func TestClientErrorsKeepTheirCode(t *testing.T) {
	c, _ := startCache(t, 1000)
	ctx := context.Background()
	big := bytes.Repeat([]byte("x"), 2000)
	_, err := c.UploadBytes(ctx, big)
	if status.Code(err) != codes.ResourceExhausted {
		t.Errorf("upload bigger than the cache: %v, want ResourceExhausted", err)
	}
	liar := digest.OfBytes([]byte("declared"))
	if err := c.Upload(ctx, liar, strings.NewReader("not that")); status.Code(err) != codes.InvalidArgument {
		t.Errorf("upload not matching its digest: %v, want InvalidArgument", err)
	}
	m := &distbuildv1.Manifest{CacheKey: strings.Repeat("3", 64), Files: []*distbuildv1.ManifestFile{{Name: "f", Digest: liar.Proto()}}}
	if err := c.PutManifest(ctx, m); status.Code(err) != codes.FailedPrecondition {
		t.Errorf("manifest naming a missing blob: %v, want FailedPrecondition", err)
	}
	if _, err := c.GetManifest(ctx, cacheKey(t, strings.Repeat("3", 64))); status.Code(err) != codes.NotFound {
		t.Errorf("missing manifest: %v, want NotFound", err)
	}
	if _, err := c.UploadFile(ctx, filepath.Join(t.TempDir(), "absent")); err == nil {
		t.Errorf("upload of a missing file succeeded")
	}
}

// scriptedCache is an ArtifactCacheService whose Read sends fixed
// messages, whatever was asked: it stands in for a broken network or
// server, which the real server cannot be made into.
type scriptedCache struct {
	distbuildv1.UnimplementedArtifactCacheServiceServer
	send [][]byte
}

func (l scriptedCache) Read(_ *distbuildv1.ReadRequest, stream grpc.ServerStreamingServer[distbuildv1.ReadResponse]) error {
	for _, data := range l.send {
		if err := stream.Send(&distbuildv1.ReadResponse{Data: data}); err != nil {
			return err
		}
	}
	return nil
}

// serveScripted runs a scriptedCache on a loopback port.
func serveScripted(t *testing.T, send ...[]byte) *artifactcache.Client {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := grpc.NewServer()
	distbuildv1.RegisterArtifactCacheServiceServer(srv, scriptedCache{send: send})
	go srv.Serve(lis)
	t.Cleanup(srv.Stop)
	c, err := artifactcache.Dial(lis.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func TestFetchAcceptsContentInAnyPieces(t *testing.T) {
	c := serveScripted(t, []byte("the "), nil, []byte("real"), []byte(" content"))
	var buf bytes.Buffer
	want := "the real content"
	if err := c.Fetch(context.Background(), digest.OfBytes([]byte(want)), &buf); err != nil || buf.String() != want {
		t.Fatalf("fetch in pieces (one empty): %q, %v; want %q", buf.String(), err, want)
	}
}

func TestClientRefusesContentNotMatchingTheDigest(t *testing.T) {
	want := []byte("the real content")
	for name, sent := range map[string][]byte{
		"same size, other bytes": []byte("the fake content"),
		"too short":              want[:4],
		"too long":               append(want, '!'),
	} {
		t.Run(name, func(t *testing.T) {
			c := serveScripted(t, sent)
			dir := t.TempDir()
			dst := filepath.Join(dir, "out")
			err := c.Download(context.Background(), digest.OfBytes(want), dst)
			if status.Code(err) != codes.DataLoss {
				t.Fatalf("download of wrong content: %v, want DataLoss", err)
			}
			if _, err := os.Stat(dst); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("wrong content was saved at the destination")
			}
			if entries, _ := os.ReadDir(dir); len(entries) != 0 {
				t.Errorf("temporary files left: %v", entries)
			}
		})
	}
}

// countingReader counts what the client read of an upload's content.
type countingReader struct {
	r io.Reader
	n int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}

func TestUploadOfAStoredBlobStopsEarly(t *testing.T) {
	c, _ := startCache(t, 1<<30)
	ctx := context.Background()
	const size = 32 << 20
	content := func() io.Reader { return io.LimitReader(rand.NewChaCha8([32]byte{7}), size) }
	h := digest.NewHasher()
	io.Copy(h, content())
	d := h.Digest()
	if err := c.Upload(ctx, d, content()); err != nil {
		t.Fatal(err)
	}
	again := &countingReader{r: content()}
	if err := c.Upload(ctx, d, again); err != nil {
		t.Fatalf("second upload of a stored blob: %v", err)
	}
	if again.n >= size {
		t.Errorf("second upload read all %d bytes; the server should have answered after the first message", again.n)
	}
}
