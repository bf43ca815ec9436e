package trove

import (
	"context"
	"errors"
	"fmt"
	"io"

	"distbuild/artifactcache/store"
	"distbuild/digest"
	"distbuild/internal/bytesize"
	"distbuild/internal/grpcerr"
	distbuildv1 "distbuild/proto/distbuild/v1"

	"github.com/hashicorp/go-hclog"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// Scrub checks a store directory offline (no daemon may have it open):
// it re-hashes every blob, quarantines corrupt ones with the manifests
// naming them, and writes a report to out. It never evicts anything. A
// store a running trove holds fails with an error wrapping
// store.ErrLocked that says to scrub it through the daemon (ScrubLive).
func Scrub(ctx context.Context, dir string, logger hclog.Logger, out io.Writer) (store.ScrubReport, error) {
	st, err := store.Open(store.Options{Dir: dir, Logger: logger})
	if errors.Is(err, store.ErrLocked) {
		return store.ScrubReport{}, fmt.Errorf("%w; to scrub the store of a running trove, ask the trove: trove scrub --trove ADDR", err)
	}
	if err != nil {
		return store.ScrubReport{}, err
	}
	report, err := st.Scrub(ctx)
	if cerr := st.Close(); err == nil {
		err = cerr
	}
	writeScrubReport(out, report)
	return report, err
}

// ScrubLive has the trove at the other end of conn scrub its live store
// (CacheAdminService.ScrubNow), waits for it to finish and writes the
// report to out as Scrub does.
func ScrubLive(ctx context.Context, conn grpc.ClientConnInterface, out io.Writer) (store.ScrubReport, error) {
	resp, err := distbuildv1.NewCacheAdminServiceClient(conn).ScrubNow(ctx, &distbuildv1.ScrubNowRequest{})
	if err != nil {
		return store.ScrubReport{}, grpcerr.Wrapf(err, "scrub by the trove")
	}
	report := store.ScrubReport{Checked: int(resp.GetCheckedBlobs()), CheckedBytes: resp.GetCheckedBytes()}
	for _, p := range resp.GetCorruptBlobs() {
		d, err := digest.FromProto(p)
		if err != nil {
			return report, status.Errorf(codes.Internal, "the trove reported a malformed corrupt blob: %v", err)
		}
		report.Corrupt = append(report.Corrupt, d)
	}
	for _, s := range resp.GetDroppedCacheKeys() {
		k, err := digest.ParseCacheKey(s)
		if err != nil {
			return report, status.Errorf(codes.Internal, "the trove reported a malformed dropped manifest: %v", err)
		}
		report.DroppedManifests = append(report.DroppedManifests, k)
	}
	writeScrubReport(out, report)
	return report, nil
}

// writeScrubReport writes what a scrub found as `trove scrub` prints it:
// a summary line, then one line per corrupt blob and dropped manifest, so
// that an operator sees which steps will be rebuilt.
func writeScrubReport(out io.Writer, report store.ScrubReport) {
	fmt.Fprintf(out, "checked %d blobs (%s): %d corrupt\n", report.Checked, bytesize.Size(report.CheckedBytes), len(report.Corrupt))
	for _, d := range report.Corrupt {
		fmt.Fprintf(out, "corrupt blob, quarantined: %s\n", d)
	}
	for _, k := range report.DroppedManifests {
		fmt.Fprintf(out, "dropped manifest (will be rebuilt): %s\n", k)
	}
}
