package service

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"distbuild/artifactcache/backend"
	"distbuild/artifactcache/store"
	"distbuild/digest"
	distbuildv1 "distbuild/proto/distbuild/v1"

	"github.com/hashicorp/go-hclog"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
)

type fixture struct {
	dir    string
	store  *store.Store
	client distbuildv1.ArtifactCacheServiceClient
}

// serve runs the service on a loopback TCP port with a real store.
func serve(t *testing.T, maxSize int64, verifier ManifestVerifier) *fixture {
	t.Helper()
	return serveWith(t, maxSize, Options{Verifier: verifier})
}

// serveWith is serve with the service's options given; the logger is the
// test's.
func serveWith(t *testing.T, maxSize int64, opts Options) *fixture {
	t.Helper()
	dir := t.TempDir()
	logger := hclog.New(&hclog.LoggerOptions{Output: t.Output(), Level: hclog.Debug})
	st, err := store.Open(store.Options{Dir: dir, MaxSizeBytes: maxSize, Logger: logger})
	if err != nil {
		t.Fatal(err)
	}
	opts.Logger = logger
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := grpc.NewServer(ServerOptions()...)
	distbuildv1.RegisterArtifactCacheServiceServer(srv, New(backend.Local(st), opts))
	go srv.Serve(lis)
	conn, err := grpc.NewClient(lis.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		conn.Close()
		srv.Stop()
		st.Close()
	})
	return &fixture{dir: dir, store: st, client: distbuildv1.NewArtifactCacheServiceClient(conn)}
}

// write uploads messages as given, returning the outcome.
func (f *fixture) write(t *testing.T, msgs ...*distbuildv1.WriteRequest) (*distbuildv1.WriteResponse, error) {
	t.Helper()
	stream, err := f.client.Write(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range msgs {
		if err := stream.Send(m); errors.Is(err, io.EOF) {
			break // the server answered early; CloseAndRecv has its answer
		} else if err != nil {
			t.Fatal(err)
		}
	}
	return stream.CloseAndRecv()
}

func (f *fixture) upload(t *testing.T, content []byte) digest.Digest {
	t.Helper()
	d := digest.OfBytes(content)
	if _, err := f.write(t, &distbuildv1.WriteRequest{Digest: d.Proto(), Data: content}); err != nil {
		t.Fatalf("upload %s: %v", d, err)
	}
	return d
}

// read collects a Read stream, returning what arrived before any error.
func (f *fixture) read(t *testing.T, req *distbuildv1.ReadRequest) ([]byte, error) {
	t.Helper()
	stream, err := f.client.Read(context.Background(), req)
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	for {
		resp, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			return out.Bytes(), nil
		}
		if err != nil {
			return out.Bytes(), err
		}
		out.Write(resp.GetData())
	}
}

func (f *fixture) blobPath(d digest.Digest) string {
	h := d.Hash().String()
	return filepath.Join(f.dir, "blobs", h[:2], h)
}

func wantCode(t *testing.T, what string, err error, want codes.Code) {
	t.Helper()
	if got := status.Code(err); got != want {
		t.Errorf("%s: got %v (code %s), want code %s", what, err, got, want)
	}
}

func TestWriteReadRoundTrip(t *testing.T) {
	f := serve(t, 0, nil)
	content := bytes.Repeat([]byte("abc"), 1_000_000)
	d := digest.OfBytes(content)
	// Sent in uneven pieces, as a client may.
	resp, err := f.write(t,
		&distbuildv1.WriteRequest{Digest: d.Proto(), Data: content[:7]},
		&distbuildv1.WriteRequest{Data: content[7:2_000_000]},
		&distbuildv1.WriteRequest{Data: content[2_000_000:]})
	if err != nil || resp.GetCommittedSize() != d.Size() {
		t.Fatalf("write: %v, %v; want committed size %d", resp, err, d.Size())
	}
	got, err := f.read(t, &distbuildv1.ReadRequest{Digest: d.Proto()})
	if err != nil || !bytes.Equal(got, content) {
		t.Fatalf("read back %d bytes, %v; want the %d bytes written", len(got), err, len(content))
	}
	got, err = f.read(t, &distbuildv1.ReadRequest{Digest: d.Proto(), Offset: 1_500_000, Limit: 10})
	if err != nil || !bytes.Equal(got, content[1_500_000:1_500_010]) {
		t.Fatalf("range read %q, %v; want %q", got, err, content[1_500_000:1_500_010])
	}
}

func TestWriteDeclaringTheDigestAfterTheContent(t *testing.T) {
	f := serve(t, 1<<20, nil)
	content := []byte("content hashed while it was sent")
	d := digest.OfBytes(content)
	// The digest may come alone or with the last content.
	for _, msgs := range [][]*distbuildv1.WriteRequest{
		{sizeOnly(content[:5]), {Data: content[5:20]}, {Data: content[20:]}, closing(d)},
		{sizeOnly(content[:5]), {Data: content[5:], Digest: d.Proto()}},
	} {
		msgs[0].Digest.SizeBytes = d.Size()
		resp, err := f.write(t, msgs...)
		if err != nil || resp.GetCommittedSize() != d.Size() {
			t.Fatalf("upload declaring its digest last: %v, %v", resp, err)
		}
		if got, err := f.read(t, &distbuildv1.ReadRequest{Digest: d.Proto()}); err != nil || !bytes.Equal(got, content) {
			t.Fatalf("read back %q, %v", got, err)
		}
	}
	// The second upload found the blob stored and kept no second copy.
	if st := f.store.Stats(); st.Blobs != 1 || st.UsedBytes != d.Size() || st.ReservedBytes != 0 {
		t.Errorf("after two uploads of one blob: %+v", st)
	}
}

func TestWriteOfAStoredBlobIsConfirmedWithoutItsContent(t *testing.T) {
	f := serve(t, 0, nil)
	d := f.upload(t, []byte("already here"))
	// No data at all: only a server that recognises the blob can succeed.
	resp, err := f.write(t, &distbuildv1.WriteRequest{Digest: d.Proto()})
	if err != nil || resp.GetCommittedSize() != d.Size() {
		t.Fatalf("write of stored blob: %v, %v; want committed size %d", resp, err, d.Size())
	}
}

func TestReadOfACorruptBlobEndsWithDataLoss(t *testing.T) {
	f := serve(t, 0, nil)
	content := bytes.Repeat([]byte("c"), 3<<20)
	d := f.upload(t, content)
	if _, err := f.client.PutManifest(context.Background(), &distbuildv1.PutManifestRequest{Manifest: manifest(key(1), d)}); err != nil {
		t.Fatal(err)
	}
	fh, err := os.OpenFile(f.blobPath(d), os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	fh.WriteAt([]byte("X"), 2<<20)
	fh.Close()

	got, err := f.read(t, &distbuildv1.ReadRequest{Digest: d.Proto()})
	wantCode(t, "read of corrupt blob", err, codes.DataLoss)
	if len(got) >= len(content) {
		t.Errorf("received all %d bytes of a corrupt blob", len(got))
	}
	_, err = f.read(t, &distbuildv1.ReadRequest{Digest: d.Proto()})
	wantCode(t, "read after quarantine", err, codes.NotFound)
	_, err = f.client.GetManifest(context.Background(), &distbuildv1.GetManifestRequest{CacheKey: key(1)})
	wantCode(t, "manifest naming the corrupt blob", err, codes.NotFound)
}

type refuseAll struct{ err error }

func (r refuseAll) VerifyManifest(context.Context, *distbuildv1.Manifest) error { return r.err }

func TestVerifierRefusalKeepsTheManifestOut(t *testing.T) {
	for _, tc := range []struct {
		name string
		err  error
		want codes.Code
	}{
		{"plain error", errors.New("bad signature"), codes.PermissionDenied},
		{"status error", status.Error(codes.Unauthenticated, "unknown signer"), codes.Unauthenticated},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := serve(t, 0, refuseAll{tc.err})
			d := f.upload(t, []byte("blob"))
			_, err := f.client.PutManifest(context.Background(), &distbuildv1.PutManifestRequest{Manifest: manifest(key(1), d)})
			wantCode(t, "put", err, tc.want)
			if !strings.Contains(status.Convert(err).Message(), tc.err.Error()) && !strings.Contains(status.Convert(err).Message(), status.Convert(tc.err).Message()) {
				t.Errorf("error %q does not say why", err)
			}
			if f.store.Stats().Manifests != 0 {
				t.Errorf("refused manifest was stored")
			}
		})
	}
}

func manifest(key string, files ...digest.Digest) *distbuildv1.Manifest {
	m := &distbuildv1.Manifest{CacheKey: key, StepName: "zlib", Kind: distbuildv1.StepKind_STEP_KIND_CHUNK}
	for i, d := range files {
		m.Files = append(m.Files, &distbuildv1.ManifestFile{Name: string(rune('a' + i)), Digest: d.Proto()})
	}
	return m
}

func key(n int) string {
	const hexDigits = "0123456789abcdef"
	return strings.Repeat("0", 63) + string(hexDigits[n%16])
}
