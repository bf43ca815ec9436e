package service

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"distbuild/digest"
	distbuildv1 "distbuild/proto/distbuild/v1"

	"google.golang.org/grpc/codes"
)

// Malformed digests, each refused wherever a digest is accepted.
var badDigests = map[string]*distbuildv1.Digest{
	"missing":       nil,
	"short hash":    {Hash: "abc", SizeBytes: 1},
	"long hash":     {Hash: strings.Repeat("a", 65), SizeBytes: 1},
	"upper case":    {Hash: strings.Repeat("A", 64), SizeBytes: 1},
	"not hex":       {Hash: strings.Repeat("g", 64), SizeBytes: 1},
	"path-like":     {Hash: "../../../../etc/passwd" + strings.Repeat("0", 42), SizeBytes: 1},
	"negative size": {Hash: strings.Repeat("a", 64), SizeBytes: -1},
}

var badKeys = map[string]string{
	"empty":      "",
	"short":      "abc",
	"upper case": strings.Repeat("F", 64),
	"path-like":  "../" + strings.Repeat("0", 61),
	"slash":      strings.Repeat("0", 32) + "/" + strings.Repeat("0", 31),
}

func TestMalformedRequestsAreRefusedAndChangeNothing(t *testing.T) {
	f := serve(t, 1<<20, nil)
	ctx := context.Background()
	stored := f.upload(t, []byte("the one stored blob"))
	before := f.store.Stats()

	for name, p := range badDigests {
		_, err := f.client.FindMissing(ctx, &distbuildv1.FindMissingRequest{BlobDigests: []*distbuildv1.Digest{stored.Proto(), p}})
		wantCode(t, "FindMissing with digest "+name, err, codes.InvalidArgument)
		_, err = f.read(t, &distbuildv1.ReadRequest{Digest: p})
		wantCode(t, "Read with digest "+name, err, codes.InvalidArgument)
		_, err = f.write(t, &distbuildv1.WriteRequest{Digest: p, Data: []byte("x")})
		wantCode(t, "Write with digest "+name, err, codes.InvalidArgument)
		_, err = f.client.PutManifest(ctx, &distbuildv1.PutManifestRequest{Manifest: &distbuildv1.Manifest{
			CacheKey: key(1), Files: []*distbuildv1.ManifestFile{{Name: "f", Digest: p}}}})
		wantCode(t, "PutManifest with digest "+name, err, codes.InvalidArgument)
	}
	for name, k := range badKeys {
		_, err := f.client.FindMissing(ctx, &distbuildv1.FindMissingRequest{CacheKeys: []string{key(1), k}})
		wantCode(t, "FindMissing with key "+name, err, codes.InvalidArgument)
		_, err = f.client.GetManifest(ctx, &distbuildv1.GetManifestRequest{CacheKey: k})
		wantCode(t, "GetManifest with key "+name, err, codes.InvalidArgument)
		_, err = f.client.PutManifest(ctx, &distbuildv1.PutManifestRequest{Manifest: manifest(k, stored)})
		wantCode(t, "PutManifest with key "+name, err, codes.InvalidArgument)
	}

	content := []byte("content that is not stored")
	d := digest.OfBytes(content)
	for _, tc := range []struct {
		what string
		err  error
		want codes.Code
	}{
		{"Read of a missing blob", second(f.read(t, &distbuildv1.ReadRequest{Digest: d.Proto()})), codes.NotFound},
		{"Read at a negative offset", second(f.read(t, &distbuildv1.ReadRequest{Digest: stored.Proto(), Offset: -1})), codes.InvalidArgument},
		{"Read with a negative limit", second(f.read(t, &distbuildv1.ReadRequest{Digest: stored.Proto(), Limit: -1})), codes.InvalidArgument},
		{"Read beyond the end", second(f.read(t, &distbuildv1.ReadRequest{Digest: stored.Proto(), Offset: stored.Size() + 1})), codes.OutOfRange},
		{"Write with no messages", second(f.write(t)), codes.InvalidArgument},
		{"Write with content but no digest", second(f.write(t, &distbuildv1.WriteRequest{Data: content})), codes.InvalidArgument},
		{"Write of content not matching its digest", second(f.write(t, &distbuildv1.WriteRequest{Digest: d.Proto(), Data: []byte("other content, the same size")[:len(content)]})), codes.InvalidArgument},
		{"Write cut short", second(f.write(t, &distbuildv1.WriteRequest{Digest: d.Proto(), Data: content[:3]})), codes.InvalidArgument},
		{"Write of more than declared", second(f.write(t, &distbuildv1.WriteRequest{Digest: d.Proto(), Data: append(content, '!')})), codes.InvalidArgument},
		{"Write declaring its size, then another blob's digest", second(f.write(t, sizeOnly(content), closing(digest.OfBytes([]byte("other content, the same size")[:len(content)])))), codes.InvalidArgument},
		{"Write declaring its size, then a digest of another size", second(f.write(t, sizeOnly(content), closing(digest.OfBytes(content[:3])))), codes.InvalidArgument},
		{"Write declaring its size, then no digest", second(f.write(t, sizeOnly(content))), codes.InvalidArgument},
		{"Write declaring its size, then a malformed digest", second(f.write(t, sizeOnly(content), &distbuildv1.WriteRequest{Digest: badDigests["short hash"]})), codes.InvalidArgument},
		{"Write declaring its size, then content after the digest", second(f.write(t, sizeOnly(content[:3]), closing(digest.OfBytes(content[:3])), &distbuildv1.WriteRequest{Data: content[3:]})), codes.InvalidArgument},
		{"Write declaring a negative size", second(f.write(t, &distbuildv1.WriteRequest{Digest: &distbuildv1.Digest{SizeBytes: -1}})), codes.InvalidArgument},
		{"Write declaring more than the cache holds", second(f.write(t, &distbuildv1.WriteRequest{Digest: &distbuildv1.Digest{Hash: strings.Repeat("a", 64), SizeBytes: 1 << 40}})), codes.ResourceExhausted},
		{"GetManifest of a missing key", second(f.client.GetManifest(ctx, &distbuildv1.GetManifestRequest{CacheKey: key(2)})), codes.NotFound},
		{"PutManifest without a manifest", second(f.client.PutManifest(ctx, &distbuildv1.PutManifestRequest{})), codes.InvalidArgument},
		{"PutManifest naming a missing blob", second(f.client.PutManifest(ctx, &distbuildv1.PutManifestRequest{Manifest: manifest(key(3), stored, d)})), codes.FailedPrecondition},
	} {
		wantCode(t, tc.what, tc.err, tc.want)
	}

	if after := f.store.Stats(); after != before {
		t.Errorf("store changed from %+v to %+v after refused requests", before, after)
	}
	if names, _ := os.ReadDir(filepath.Join(f.dir, "tmp")); len(names) != 0 {
		t.Errorf("refused uploads left %d temporary files", len(names))
	}
	if missing, _ := f.store.FindMissing([]digest.Digest{d}, nil); len(missing) != 1 {
		t.Errorf("a refused upload's blob is stored")
	}
}

func second[T any](_ T, err error) error { return err }

// sizeOnly is the first message of an upload that declares the digest
// after the content, carrying all of it.
func sizeOnly(content []byte) *distbuildv1.WriteRequest {
	return &distbuildv1.WriteRequest{Digest: &distbuildv1.Digest{SizeBytes: int64(len(content))}, Data: content}
}

// closing is the last message of such an upload.
func closing(d digest.Digest) *distbuildv1.WriteRequest {
	return &distbuildv1.WriteRequest{Digest: d.Proto()}
}
