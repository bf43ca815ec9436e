package store

import (
	"bytes"
	"context"
	"slices"

	"distbuild/digest"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// ScrubReport says what a scrub found.
type ScrubReport struct {
	// Checked counts the blobs re-hashed; CheckedBytes is their size.
	Checked      int
	CheckedBytes int64
	// Corrupt lists the blobs found not to match their digest, now
	// quarantined.
	Corrupt []digest.Digest
	// DroppedManifests lists the manifests forgotten because they named a
	// corrupt blob; their steps will be rebuilt.
	DroppedManifests []digest.CacheKey
}

// Scrub re-hashes every blob, quarantining those that do not match their
// digest together with the manifests naming them. Bit rot is otherwise
// found only when someone reads the blob, which for an old artifact may be
// when it is needed most. Scrub reads at full speed, holding only the blob
// being checked open (pinned), and does not count as a use for eviction.
// It stops early, returning what it found so far, when ctx ends.
func (s *Store) Scrub(ctx context.Context) (ScrubReport, error) {
	var report ScrubReport
	for _, d := range s.allBlobs() {
		if err := ctx.Err(); err != nil {
			return report, status.FromContextError(err).Err()
		}
		b, err := s.openBlob(d, false)
		if status.Code(err) == codes.NotFound {
			continue // evicted since the list was made
		}
		if err != nil {
			return report, err
		}
		dropped, err := b.verify(ctx)
		b.Close()
		switch status.Code(err) {
		case codes.OK:
		case codes.DataLoss:
			report.Corrupt = append(report.Corrupt, d)
			report.DroppedManifests = append(report.DroppedManifests, dropped...)
		default:
			return report, err
		}
		report.Checked++
		report.CheckedBytes += d.Size()
	}
	s.log.Info("scrub finished", "blobs", report.Checked, "bytes", report.CheckedBytes, "corrupt", len(report.Corrupt), "manifests_dropped", len(report.DroppedManifests))
	return report, nil
}

// allBlobs lists every stored blob in a stable order.
func (s *Store) allBlobs() []digest.Digest {
	s.mu.Lock()
	defer s.mu.Unlock()
	ds := make([]digest.Digest, 0, len(s.cat.blobs))
	for h, e := range s.cat.blobs {
		if d, err := digest.New(h, e.size); err == nil {
			ds = append(ds, d)
		}
	}
	slices.SortFunc(ds, func(a, b digest.Digest) int {
		ha, hb := a.Hash(), b.Hash()
		return bytes.Compare(ha[:], hb[:])
	})
	return ds
}
