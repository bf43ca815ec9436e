package artifactcache

import (
	"testing"

	"distbuild/digest"

	"google.golang.org/protobuf/proto"
)

func TestFindMissingBatchesStayUnderTheMessageLimit(t *testing.T) {
	var blobs []digest.Digest
	for i := range 100_000 {
		blobs = append(blobs, digest.OfBytes([]byte{byte(i), byte(i >> 8), byte(i >> 16)}))
	}
	keys := make([]digest.CacheKey, 50_000)
	for i := range keys {
		keys[i][0], keys[i][1] = byte(i), byte(i>>8)
	}
	reqs := findMissingBatches(blobs, keys)
	if len(reqs) < 2 {
		t.Fatalf("%d batch(es) for 150,000 entries, want several", len(reqs))
	}
	var nBlobs, nKeys int
	for i, r := range reqs {
		if size := proto.Size(r); size > maxFindMissingRequestBytes {
			t.Errorf("batch %d encodes to %d bytes, over the %d limit", i, size, maxFindMissingRequestBytes)
		}
		nBlobs += len(r.BlobDigests)
		nKeys += len(r.CacheKeys)
	}
	if nBlobs != len(blobs) || nKeys != len(keys) {
		t.Errorf("batches carry %d blobs and %d keys, want %d and %d", nBlobs, nKeys, len(blobs), len(keys))
	}
	if got := findMissingBatches(nil, nil); len(got) != 1 || proto.Size(got[0]) != 0 {
		t.Errorf("an empty query should make one empty request, got %d", len(got))
	}
}
