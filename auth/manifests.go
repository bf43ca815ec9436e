package auth

import (
	"context"
	"strings"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"distbuild/internal/observability"
	"distbuild/manifestsig"
	pb "distbuild/proto/distbuild/v1"
)

// ManifestVerifier is the trove's check before storing a manifest: it must
// come from an authenticated worker, be signed by that same worker, and the
// signature must match the public key registered for it. A stolen token
// alone therefore cannot put artifacts into the cache. When the registry
// holds the controller's key, the manifest must also carry the controller's
// grant of that step to that worker, so a worker cannot store artifacts for
// steps it was never given, nor raise its attempt above the current one.
type ManifestVerifier struct {
	Auth *Authenticator
}

// VerifyManifest refuses anything but a manifest its uploader signed.
func (v ManifestVerifier) VerifyManifest(ctx context.Context, m *pb.Manifest) error {
	p, ok := FromContext(ctx)
	if !ok || p.Kind != KindWorker {
		return status.Error(codes.PermissionDenied, "only workers may store manifests")
	}
	if m.GetSignature() == nil {
		return status.Errorf(codes.PermissionDenied, "worker %s sent an unsigned manifest", p.Name)
	}
	if m.Signature.Signer != p.Name {
		return status.Errorf(codes.PermissionDenied, "manifest signed by %q but uploaded by worker %s", m.Signature.Signer, p.Name)
	}
	key, ok := v.Auth.WorkerKey(p.Name)
	if !ok {
		return status.Errorf(codes.PermissionDenied, "worker %s has no registered public key (controller worker add --public-key)", p.Name)
	}
	if err := manifestsig.Verify(m, key); err != nil {
		return status.Errorf(codes.PermissionDenied, "%v", err)
	}
	ck, err := v.Auth.ControllerKey()
	if err != nil {
		return status.Errorf(codes.Unavailable, "the registry cannot be read to check the controller's grant: %v", err)
	}
	if len(ck) > 0 {
		if err := manifestsig.VerifyGrant(m, p.Name, ck); err != nil {
			return status.Errorf(codes.PermissionDenied, "worker %s: %v", p.Name, err)
		}
	}
	return nil
}

// CachePolicy is who may call the artifact cache when it requires
// authentication: anyone registered may read, only workers may write.
// Health checks are open to anyone; reflection, which describes the API,
// to those who may read.
func CachePolicy(fullMethod string) []Kind {
	switch {
	case observability.IsHealth(fullMethod):
		return []Kind{Anyone}
	case observability.IsReflection(fullMethod):
		return []Kind{KindWorker, KindUser}
	}
	if strings.HasSuffix(fullMethod, "/Write") || strings.HasSuffix(fullMethod, "/PutManifest") {
		return []Kind{KindWorker}
	}
	if strings.HasPrefix(fullMethod, "/distbuild.v1.ArtifactCacheService/") {
		return []Kind{KindWorker, KindUser}
	}
	return nil
}
