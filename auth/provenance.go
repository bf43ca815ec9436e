package auth

import (
	"context"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"distbuild/artifactcache/service"
	"distbuild/digest"
	pb "distbuild/proto/distbuild/v1"
	"distbuild/provenance"
)

// VerifyManifestContent refuses a manifest, already accepted by
// VerifyManifest, unless it names a provenance blob in the cache that is a
// DSSE envelope signed with the uploading worker's registered key, holding
// an in-toto statement about this manifest: its cache key, its worker, and
// exactly its artifact and metadata files as subjects. Every artifact a
// trove with a registry stores thus says, under its builder's signature,
// how it was made.
func (v ManifestVerifier) VerifyManifestContent(ctx context.Context, m *pb.Manifest, read service.BlobReader) error {
	p, _ := FromContext(ctx)
	f, err := provenance.File(m)
	if err != nil {
		return status.Errorf(codes.PermissionDenied, "worker %s: %v", p.Name, err)
	}
	if f == nil {
		return status.Errorf(codes.PermissionDenied, "worker %s sent a manifest without provenance", p.Name)
	}
	d, err := digest.FromProto(f.GetDigest())
	if err != nil {
		return status.Errorf(codes.InvalidArgument, "the provenance's digest: %v", err)
	}
	env, err := read(ctx, d, provenance.MaxEnvelopeSize)
	if err != nil {
		if s, ok := status.FromError(err); ok && s.Code() == codes.NotFound {
			return status.Errorf(codes.FailedPrecondition, "the provenance blob %s is not in the cache: upload it before the manifest", d)
		}
		return err
	}
	key, _ := v.Auth.WorkerKey(p.Name) // VerifyManifest has checked there is one
	st, _, err := provenance.Open(env, key)
	if err == nil {
		err = provenance.CheckManifest(st, m)
	}
	if err != nil {
		return status.Errorf(codes.PermissionDenied, "worker %s: %v", p.Name, err)
	}
	return nil
}
