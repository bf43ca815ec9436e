package manifestsig

import (
	"crypto/ed25519"
	"errors"
	"fmt"

	"google.golang.org/protobuf/proto"

	pb "distbuild/proto/distbuild/v1"
)

// grantBytes is what a grant's signature covers.
func grantBytes(g *pb.AttemptGrant) ([]byte, error) {
	c := proto.Clone(g).(*pb.AttemptGrant)
	c.Ed25519 = nil
	return proto.MarshalOptions{Deterministic: true}.Marshal(c)
}

// SignGrant sets g's signature, made with the controller's key.
func SignGrant(g *pb.AttemptGrant, key ed25519.PrivateKey) error {
	data, err := grantBytes(g)
	if err != nil {
		return err
	}
	g.Ed25519 = ed25519.Sign(key, data)
	return nil
}

// VerifyGrant checks that m carries a grant signed with the controller's
// key for m's cache key and for worker: the uploader was really given this
// attempt at this step.
func VerifyGrant(m *pb.Manifest, worker string, controllerKey ed25519.PublicKey) error {
	g := m.GetGrant()
	switch {
	case g == nil:
		return errors.New("the manifest carries no attempt grant from the controller")
	case len(g.Ed25519) == 0:
		return errors.New("the manifest's attempt grant is not signed by the controller")
	case g.CacheKey != m.GetCacheKey():
		return fmt.Errorf("the attempt grant is for cache key %s, not %s", g.CacheKey, m.GetCacheKey())
	case g.Worker != worker:
		return fmt.Errorf("the attempt grant was given to worker %q, not %s", g.Worker, worker)
	case len(controllerKey) != ed25519.PublicKeySize:
		return errors.New("the controller's registered key is not an ed25519 public key")
	}
	data, err := grantBytes(g)
	if err != nil {
		return err
	}
	if !ed25519.Verify(controllerKey, data, g.Ed25519) {
		return errors.New("the attempt grant's signature does not match the controller's key: it was changed or forged")
	}
	return nil
}
