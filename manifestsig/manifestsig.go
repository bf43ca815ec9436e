// Package manifestsig signs and checks artifact manifests. Every artifact
// in the shared cache ends up installed on someone's machine, so the cache
// accepts a manifest only with a valid signature from the worker that
// uploaded it, and users can check the signature again before trusting an
// artifact.
//
// The signed bytes are the deterministic protobuf encoding of the manifest
// with its signature field cleared, so any change to any field (a blob
// digest, the cache key, the producing worker) breaks the signature.
package manifestsig

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"os"
	"strings"

	"google.golang.org/protobuf/proto"

	"distbuild/internal/atomicfile"

	pb "distbuild/proto/distbuild/v1"
)

// signedBytes is what a signature covers.
func signedBytes(m *pb.Manifest) ([]byte, error) {
	c := proto.Clone(m).(*pb.Manifest)
	c.Signature = nil
	return proto.MarshalOptions{Deterministic: true}.Marshal(c)
}

// Sign sets m's signature, made by signer with key.
func Sign(m *pb.Manifest, signer string, key ed25519.PrivateKey) error {
	data, err := signedBytes(m)
	if err != nil {
		return err
	}
	m.Signature = &pb.ManifestSignature{Signer: signer, Ed25519: ed25519.Sign(key, data)}
	return nil
}

// ErrUnsigned is returned for a manifest without a signature.
var ErrUnsigned = errors.New("the manifest is not signed")

// Verify checks m's signature against the signer's public key.
func Verify(m *pb.Manifest, key ed25519.PublicKey) error {
	if m.GetSignature() == nil || len(m.Signature.Ed25519) == 0 {
		return ErrUnsigned
	}
	if len(key) != ed25519.PublicKeySize {
		return fmt.Errorf("the key registered for %s is not an ed25519 public key", m.Signature.Signer)
	}
	data, err := signedBytes(m)
	if err != nil {
		return err
	}
	if !ed25519.Verify(key, data, m.Signature.Ed25519) {
		return fmt.Errorf("the signature of %s does not match the manifest: it was changed or forged", m.Signature.Signer)
	}
	return nil
}

// LoadOrCreateKey reads a worker's private key from path, creating one
// (written atomically, readable only by the owner) the first time, so a
// worker keeps its identity across restarts.
func LoadOrCreateKey(path string) (ed25519.PrivateKey, error) {
	data, err := os.ReadFile(path)
	if err == nil {
		seed, err := base64.StdEncoding.DecodeString(strings.TrimSpace(string(data)))
		if err != nil || len(seed) != ed25519.SeedSize {
			return nil, fmt.Errorf("%s does not hold an ed25519 key", path)
		}
		return ed25519.NewKeyFromSeed(seed), nil
	}
	if !errors.Is(err, os.ErrNotExist) {
		return nil, err
	}
	_, key, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, err
	}
	if err := atomicfile.Write(path, []byte(base64.StdEncoding.EncodeToString(key.Seed())+"\n"), 0o600); err != nil {
		return nil, err
	}
	return key, nil
}

// PublicKeyText is how a public key is shown and registered.
func PublicKeyText(key ed25519.PrivateKey) string {
	return base64.StdEncoding.EncodeToString(key.Public().(ed25519.PublicKey))
}

// ParsePublicKey reads a public key in the form PublicKeyText writes.
func ParsePublicKey(text string) (ed25519.PublicKey, error) {
	key, err := base64.StdEncoding.DecodeString(strings.TrimSpace(text))
	if err != nil || len(key) != ed25519.PublicKeySize {
		return nil, errors.New("not a base64 ed25519 public key")
	}
	return key, nil
}
