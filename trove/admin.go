package trove

import (
	"context"
	"strings"

	"distbuild/auth"
	"distbuild/internal/grpcerr"
	distbuildv1 "distbuild/proto/distbuild/v1"

	"github.com/hashicorp/go-hclog"
	"google.golang.org/grpc/peer"
)

// adminService serves CacheAdminService: maintenance of the live store,
// which no other process can open while the daemon holds it.
type adminService struct {
	distbuildv1.UnimplementedCacheAdminServiceServer
	scrubber *scrubber
	log      hclog.Logger
}

// ScrubNow scrubs the whole store now and reports what it found.
func (a *adminService) ScrubNow(ctx context.Context, _ *distbuildv1.ScrubNowRequest) (*distbuildv1.ScrubNowResponse, error) {
	by := "anonymous"
	if p, ok := auth.FromContext(ctx); ok {
		by = string(p.Kind) + " " + p.Name
	}
	from := "unknown"
	if p, ok := peer.FromContext(ctx); ok {
		from = p.Addr.String()
	}
	a.log.Info("scrub requested", "by", by, "from", from)
	report, err := a.scrubber.scrub(ctx)
	if err != nil {
		return nil, grpcerr.Wrapf(err, "scrub stopped after %d blobs", report.Checked)
	}
	resp := &distbuildv1.ScrubNowResponse{CheckedBlobs: int64(report.Checked), CheckedBytes: report.CheckedBytes}
	for _, d := range report.Corrupt {
		resp.CorruptBlobs = append(resp.CorruptBlobs, d.Proto())
	}
	for _, k := range report.DroppedManifests {
		resp.DroppedCacheKeys = append(resp.DroppedCacheKeys, k.String())
	}
	return resp, nil
}

// adminMethods is the prefix of CacheAdminService's full method names.
var adminMethods = "/" + distbuildv1.CacheAdminService_ServiceDesc.ServiceName + "/"

// AuthPolicy is who may call the trove's gRPC services when it requires
// authentication: auth.CachePolicy for the artifact cache, and registered
// users alone for CacheAdminService. Maintenance is for the people running
// the farm; a worker token, present on every build machine, must not be
// able to start hours of disk reads.
func AuthPolicy(fullMethod string) []auth.Kind {
	if strings.HasPrefix(fullMethod, adminMethods) {
		return []auth.Kind{auth.KindUser}
	}
	return auth.CachePolicy(fullMethod)
}
