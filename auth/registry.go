package auth

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"regexp"
	"sort"
	"time"

	"distbuild/internal/atomicfile"
)

// Kind says what a credential belongs to.
type Kind string

// The kinds of principal.
const (
	KindWorker Kind = "worker"
	KindUser   Kind = "user"
	// Anyone, in a Policy, opens a method to every caller, without
	// credentials: the gRPC health service, which probes and load
	// balancers call without a token. It is never a principal's kind.
	Anyone Kind = "anyone"
)

// Entry is one registered worker or user.
type Entry struct {
	// TokenSHA256 is the hex SHA-256 of the bearer token; the token itself
	// is shown once, when it is created, and never stored.
	TokenSHA256 string `json:"token_sha256"`
	// PublicKey is a worker's ed25519 key for manifest signatures.
	PublicKey []byte    `json:"public_key,omitempty"`
	Added     time.Time `json:"added"`
}

// Registry is the content of a registry file.
type Registry struct {
	Workers map[string]Entry `json:"workers"`
	Users   map[string]Entry `json:"users"`
	// ControllerPublicKey is the controller's ed25519 key, with which it
	// signs the attempt grants in jobs: a trove that knows it stores a
	// manifest only for a step the controller gave to the uploading worker.
	ControllerPublicKey []byte `json:"controller_public_key,omitempty"`
}

var namePattern = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$`)

// Load reads a registry file. A missing file is an empty registry.
func Load(path string) (*Registry, error) {
	r := &Registry{Workers: map[string]Entry{}, Users: map[string]Entry{}}
	data, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return r, nil
	}
	if err != nil {
		return nil, err
	}
	if err := json.Unmarshal(data, r); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if r.Workers == nil {
		r.Workers = map[string]Entry{}
	}
	if r.Users == nil {
		r.Users = map[string]Entry{}
	}
	return r, nil
}

// Save writes the registry atomically (temporary file, fsync, rename), so a
// daemon reloading it never reads half a file.
func (r *Registry) Save(path string) error {
	data, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return err
	}
	return atomicfile.Write(path, append(data, '\n'), 0o600)
}

func (r *Registry) entries(k Kind) map[string]Entry {
	if k == KindWorker {
		return r.Workers
	}
	return r.Users
}

// Add registers a new worker or user and returns its token, which is not
// kept anywhere: the caller must hand it over now.
func (r *Registry) Add(k Kind, name string, publicKey []byte) (token string, err error) {
	if !namePattern.MatchString(name) {
		return "", fmt.Errorf("%q is not a valid %s name (letters, digits, '.', '_', '-'; up to 128)", name, k)
	}
	if _, dup := r.entries(k)[name]; dup {
		return "", fmt.Errorf("%s %s already exists; remove it first to issue a new token", k, name)
	}
	raw := make([]byte, 32)
	if _, err := rand.Read(raw); err != nil {
		return "", err
	}
	token = string(k) + "_" + base64.RawURLEncoding.EncodeToString(raw)
	r.entries(k)[name] = Entry{TokenSHA256: hashToken(token), PublicKey: publicKey, Added: time.Now().UTC()}
	return token, nil
}

// Remove revokes a worker or user.
func (r *Registry) Remove(k Kind, name string) error {
	if _, ok := r.entries(k)[name]; !ok {
		return fmt.Errorf("no %s %s", k, name)
	}
	delete(r.entries(k), name)
	return nil
}

// Names lists the registered names of a kind, sorted.
func (r *Registry) Names(k Kind) []string {
	var out []string
	for n := range r.entries(k) {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}

// RecordControllerKey makes sure the registry file at path holds the
// controller's public key, and reports whether it had to write it. Only a
// registry that exists is changed: an open farm has none.
func RecordControllerKey(path string, publicKey []byte) (bool, error) {
	if _, err := os.Stat(path); err != nil {
		return false, nil
	}
	r, err := Load(path)
	if err != nil {
		return false, err
	}
	if bytes.Equal(r.ControllerPublicKey, publicKey) {
		return false, nil
	}
	r.ControllerPublicKey = publicKey
	return true, r.Save(path)
}

func hashToken(token string) string {
	sum := sha256.Sum256([]byte(token))
	return hex.EncodeToString(sum[:])
}
