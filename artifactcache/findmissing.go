package artifactcache

import (
	"context"

	"distbuild/digest"
	"distbuild/internal/grpcerr"
	distbuildv1 "distbuild/proto/distbuild/v1"
)

// Each FindMissing request (and so its answer, a subset) stays well under
// gRPC's default 4 MiB message limit. Entries are counted at their largest
// encoded size: a digest is a 64-character hash and a size of at most 10
// varint bytes, each with a tag and a length, wrapped as a repeated field.
const (
	maxFindMissingRequestBytes = 2 << 20
	maxDigestEntryBytes        = 2 + (2 + 64) + (1 + 10)
	maxCacheKeyEntryBytes      = 2 + 64
)

// FindMissing returns which of the given blobs and manifests the cache
// lacks, in the order asked. Any number may be asked at once: they are
// sent in as many requests as the message size limit needs.
func (c *Client) FindMissing(ctx context.Context, blobs []digest.Digest, keys []digest.CacheKey) ([]digest.Digest, []digest.CacheKey, error) {
	var missingBlobs []digest.Digest
	var missingKeys []digest.CacheKey
	for _, req := range findMissingBatches(blobs, keys) {
		resp, err := c.rpc.FindMissing(ctx, req)
		if err != nil {
			return nil, nil, grpcerr.Wrapf(err, "find missing (%d blobs, %d manifests)", len(req.BlobDigests), len(req.CacheKeys))
		}
		for _, p := range resp.GetMissingBlobDigests() {
			d, err := digest.FromProto(p)
			if err != nil {
				return nil, nil, grpcerr.Wrapf(err, "find missing: malformed answer")
			}
			missingBlobs = append(missingBlobs, d)
		}
		for _, s := range resp.GetMissingCacheKeys() {
			k, err := digest.ParseCacheKey(s)
			if err != nil {
				return nil, nil, grpcerr.Wrapf(err, "find missing: malformed answer")
			}
			missingKeys = append(missingKeys, k)
		}
	}
	return missingBlobs, missingKeys, nil
}

// findMissingBatches splits a query into requests of at most
// maxFindMissingRequestBytes each, always at least one.
func findMissingBatches(blobs []digest.Digest, keys []digest.CacheKey) []*distbuildv1.FindMissingRequest {
	req := &distbuildv1.FindMissingRequest{}
	reqs := []*distbuildv1.FindMissingRequest{req}
	size := 0
	makeRoom := func(n int) {
		if size+n > maxFindMissingRequestBytes {
			req = &distbuildv1.FindMissingRequest{}
			reqs = append(reqs, req)
			size = 0
		}
		size += n
	}
	for _, d := range blobs {
		makeRoom(maxDigestEntryBytes)
		req.BlobDigests = append(req.BlobDigests, d.Proto())
	}
	for _, k := range keys {
		makeRoom(maxCacheKeyEntryBytes)
		req.CacheKeys = append(req.CacheKeys, k.String())
	}
	return reqs
}
