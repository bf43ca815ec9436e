// Package artifactcache is the client of the farm's shared artifact cache
// (the trove daemon). Workers and the initiator use it to upload build
// results, fetch the inputs of a step and look up which steps are already
// built.
//
// The client checks everything it receives: downloads are hashed while
// they stream and never appear under their final name unless they match
// their digest, whatever the server or the network did.
//
// The server side lives in the sub-packages: store (the disk), service
// (gRPC) and httpapi (read-only HTTP); package trove wires them, with the
// git server, into the trove daemon.
package artifactcache

import (
	"context"

	"distbuild/artifactcache/internal/wire"
	"distbuild/digest"
	"distbuild/internal/grpcerr"
	distbuildv1 "distbuild/proto/distbuild/v1"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
)

// Client talks to an artifact cache. It is safe for concurrent use.
type Client struct {
	rpc  distbuildv1.ArtifactCacheServiceClient
	conn *grpc.ClientConn // closed by Close when Dial made it
}

// DialOptions are the gRPC dial options the cache is tuned for: flow
// control windows large enough for 1 MiB chunks to stream at full speed.
// Callers sharing one connection among several services use them with
// grpc.NewClient and NewClient.
func DialOptions() []grpc.DialOption { return wire.DialOptions() }

// Dial connects to a cache at target ("host:port") without transport
// security, which the farm's private network does not use yet. extra
// options are applied after the defaults.
func Dial(target string, extra ...grpc.DialOption) (*Client, error) {
	opts := append([]grpc.DialOption{grpc.WithTransportCredentials(insecure.NewCredentials())}, DialOptions()...)
	conn, err := grpc.NewClient(target, append(opts, extra...)...)
	if err != nil {
		return nil, err
	}
	c := NewClient(conn)
	c.conn = conn
	return c, nil
}

// NewClient uses an existing connection, which the caller keeps owning.
func NewClient(conn grpc.ClientConnInterface) *Client {
	return &Client{rpc: distbuildv1.NewArtifactCacheServiceClient(conn)}
}

// Close closes the connection if Dial made it.
func (c *Client) Close() error {
	if c.conn == nil {
		return nil
	}
	return c.conn.Close()
}

// GetManifest fetches the manifest stored under key. A missing manifest is
// a NotFound error: the step has to be built.
func (c *Client) GetManifest(ctx context.Context, key digest.CacheKey) (*distbuildv1.Manifest, error) {
	resp, err := c.rpc.GetManifest(ctx, &distbuildv1.GetManifestRequest{CacheKey: key.String()})
	if err != nil {
		return nil, grpcerr.Wrapf(err, "get manifest %s", key)
	}
	m := resp.GetManifest()
	if m.GetCacheKey() != key.String() {
		return nil, status.Errorf(codes.Internal, "get manifest %s: server answered with the manifest for %q", key, m.GetCacheKey())
	}
	return m, nil
}

// PutManifest stores a manifest. Its blobs must be uploaded first; if one
// is missing (or was evicted meanwhile) the error is FailedPrecondition.
func (c *Client) PutManifest(ctx context.Context, m *distbuildv1.Manifest) error {
	_, err := c.rpc.PutManifest(ctx, &distbuildv1.PutManifestRequest{Manifest: m})
	return grpcerr.Wrapf(err, "put manifest %s", m.GetCacheKey())
}
