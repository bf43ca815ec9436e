// Package provenance writes, signs and checks the provenance every step's
// upload carries: an in-toto Statement v1 with a SLSA v1 provenance
// predicate (how the artifacts were made: from which definitions, source,
// dependencies, commands and environment, on which worker, when), wrapped
// in a DSSE envelope signed with the worker's ed25519 key.
//
// A signed manifest says only which blobs a worker stored under a cache
// key; the statement says what went into them, in the standard formats
// other supply-chain tools read, so an artifact need not be trusted on the
// uploading worker's word alone. Everything is plain encoding/json and
// crypto/ed25519: the formats are small and fixed.
package provenance

import (
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"

	pb "distbuild/proto/distbuild/v1"
)

// The fixed type URIs of the formats.
const (
	// StatementType is the in-toto Statement v1 `_type`.
	StatementType = "https://in-toto.io/Statement/v1"
	// PredicateType is SLSA provenance v1.
	PredicateType = "https://slsa.dev/provenance/v1"
	// PayloadType is the DSSE payload type of an in-toto statement.
	PayloadType = "application/vnd.in-toto+json"
	// BuildType names what the predicate's build definition means: one
	// distbuild step, with the parameters this package defines.
	BuildType = "urn:distbuild:buildtype:step:v1"
)

// MaxEnvelopeSize bounds an envelope a reader accepts, so a hostile blob
// cannot make a trove or an initiator read gigabytes to check one. A system
// with thousands of staged artifacts writes a few hundred kilobytes.
const MaxEnvelopeSize = 16 << 20

// Statement is an in-toto Statement v1 with a SLSA v1 provenance predicate.
type Statement struct {
	Type          string               `json:"_type"`
	Subject       []ResourceDescriptor `json:"subject"`
	PredicateType string               `json:"predicateType"`
	Predicate     Provenance           `json:"predicate"`
}

// ResourceDescriptor is in-toto's name for an artifact: a subject, a
// dependency or a byproduct.
type ResourceDescriptor struct {
	Name   string            `json:"name,omitempty"`
	URI    string            `json:"uri,omitempty"`
	Digest map[string]string `json:"digest,omitempty"`
	// Annotations say what a distbuild reader needs beyond the digest:
	// a blob's size, a dependency's cache key.
	Annotations map[string]string `json:"annotations,omitempty"`
}

// Provenance is the SLSA v1 predicate.
type Provenance struct {
	BuildDefinition BuildDefinition `json:"buildDefinition"`
	RunDetails      RunDetails      `json:"runDetails"`
}

// BuildDefinition is what was built and from what.
type BuildDefinition struct {
	BuildType          string             `json:"buildType"`
	ExternalParameters ExternalParameters `json:"externalParameters"`
	InternalParameters InternalParameters `json:"internalParameters"`
	// ResolvedDependencies are the source (for a chunk) and every staged
	// or assembled artifact blob, with their cache keys.
	ResolvedDependencies []ResourceDescriptor `json:"resolvedDependencies"`
}

// ExternalParameters are what the person who asked for the build chose:
// the definitions and the step they resolve to.
type ExternalParameters struct {
	Definitions Definitions `json:"definitions"`
	Step        Step        `json:"step"`
}

// Definitions says which definitions the step was resolved from.
type Definitions struct {
	Repo   string `json:"repo,omitempty"`
	Commit string `json:"commit,omitempty"`
	// Morph is the system or cluster morph the build was for.
	Morph string `json:"morph,omitempty"`
	// StepFile is the morph that defines the step.
	StepFile string `json:"stepFile,omitempty"`
}

// Step is the step itself.
type Step struct {
	Name     string `json:"name"`
	Kind     string `json:"kind"`
	Arch     string `json:"arch"`
	CacheKey string `json:"cacheKey"`
	// CacheKeyDocument is the canonical document the cache key is the
	// SHA-256 of, when the controller sent it.
	CacheKeyDocument json.RawMessage `json:"cacheKeyDocument,omitempty"`
}

// InternalParameters are what the farm chose: the effective commands and
// environment, and where they ran.
type InternalParameters struct {
	// Phases are a chunk's commands, or a system's integration commands.
	Phases []Phase `json:"phases,omitempty"`
	// Environment is the commands' whole environment, NAME=value, sorted.
	Environment []string `json:"environment,omitempty"`
	// Worker, KeyID and Sandbox say where the commands ran: the worker's
	// name, the key that signs this statement, and the sandbox kind.
	Worker  string `json:"worker"`
	KeyID   string `json:"keyId"`
	Sandbox string `json:"sandbox"`
}

// Phase is one named list of commands, run in order.
type Phase struct {
	Name     string   `json:"name"`
	Commands []string `json:"commands"`
}

// RunDetails is who ran the build and when.
type RunDetails struct {
	Builder    Builder              `json:"builder"`
	Metadata   Metadata             `json:"metadata"`
	Byproducts []ResourceDescriptor `json:"byproducts,omitempty"`
}

// Builder identifies the worker: BuilderID(name).
type Builder struct {
	ID string `json:"id"`
}

// Metadata is the attempt's job id and times (RFC 3339).
type Metadata struct {
	InvocationID string `json:"invocationId"`
	StartedOn    string `json:"startedOn"`
	FinishedOn   string `json:"finishedOn"`
}

// BuilderID is the builder id of the worker called name.
func BuilderID(worker string) string { return "urn:distbuild:worker:" + worker }

// KeyID names a public key in envelopes and statements: the hex SHA-256 of
// its bytes, so a reader can tell which registered key to check with.
func KeyID(key ed25519.PublicKey) string {
	sum := sha256.Sum256(key)
	return hex.EncodeToString(sum[:])
}

// Descriptor describes a manifest file as a resource.
func Descriptor(f *pb.ManifestFile) ResourceDescriptor {
	return ResourceDescriptor{
		Name:        f.GetName(),
		Digest:      map[string]string{"sha256": f.GetDigest().GetHash()},
		Annotations: map[string]string{"size": strconv.FormatInt(f.GetDigest().GetSizeBytes(), 10)},
	}
}

// IsSubject says whether a manifest file is one the statement vouches for:
// artifacts and metadata, not the log (a byproduct) nor the provenance.
func IsSubject(f *pb.ManifestFile) bool {
	return f.GetRole() == pb.FileRole_FILE_ROLE_ARTIFACT || f.GetRole() == pb.FileRole_FILE_ROLE_METADATA
}

// Subjects are the subjects a statement about a step with these manifest
// files must have.
func Subjects(files []*pb.ManifestFile) []ResourceDescriptor {
	var out []ResourceDescriptor
	for _, f := range files {
		if IsSubject(f) {
			out = append(out, Descriptor(f))
		}
	}
	return out
}

// File is the manifest's provenance file; nil when it has none. More than
// one is an error: a reader could not tell which is meant.
func File(m *pb.Manifest) (*pb.ManifestFile, error) {
	var found *pb.ManifestFile
	for _, f := range m.GetFiles() {
		if f.GetRole() != pb.FileRole_FILE_ROLE_PROVENANCE {
			continue
		}
		if found != nil {
			return nil, errors.New("the manifest names more than one provenance file")
		}
		found = f
	}
	return found, nil
}

// CheckManifest checks that st is about m: the same cache key and worker,
// and subjects that are exactly the manifest's artifact and metadata files
// with their digests.
func CheckManifest(st *Statement, m *pb.Manifest) error {
	p := st.Predicate
	if k := p.BuildDefinition.ExternalParameters.Step.CacheKey; k != m.GetCacheKey() {
		return fmt.Errorf("the provenance is for cache key %q, not %s", k, m.GetCacheKey())
	}
	if w := p.BuildDefinition.InternalParameters.Worker; w != m.GetWorker() {
		return fmt.Errorf("the provenance says worker %q built it, the manifest %q", w, m.GetWorker())
	}
	want := subjectSet(Subjects(m.GetFiles()))
	got := subjectSet(st.Subject)
	if len(got) != len(st.Subject) {
		return errors.New("the provenance names a subject twice")
	}
	for name, d := range want {
		g, ok := got[name]
		if !ok {
			return fmt.Errorf("the provenance does not name the manifest's file %s", name)
		}
		if g != d {
			return fmt.Errorf("the provenance gives %s digest sha256:%s, the manifest sha256:%s", name, g, d)
		}
	}
	for name := range got {
		if _, ok := want[name]; !ok {
			return fmt.Errorf("the provenance names %s, which is not an artifact of the manifest", name)
		}
	}
	return nil
}

// subjectSet maps subjects' names to their SHA-256.
func subjectSet(rs []ResourceDescriptor) map[string]string {
	out := make(map[string]string, len(rs))
	for _, r := range rs {
		out[r.Name] = r.Digest["sha256"]
	}
	return out
}

// Envelope is a DSSE envelope.
type Envelope struct {
	// Payload is the statement's JSON (standard base64 in the JSON).
	Payload     []byte      `json:"payload"`
	PayloadType string      `json:"payloadType"`
	Signatures  []Signature `json:"signatures"`
}

// Signature is one DSSE signature: Sig is ed25519 over PAE(type, payload).
type Signature struct {
	KeyID string `json:"keyid"`
	Sig   []byte `json:"sig"`
}

// pae is DSSE's pre-authentication encoding, what a signature covers: the
// payload type is signed along with the payload, so neither can be swapped.
func pae(payloadType string, payload []byte) []byte {
	var b strings.Builder
	fmt.Fprintf(&b, "DSSEv1 %d %s %d ", len(payloadType), payloadType, len(payload))
	b.Write(payload)
	return []byte(b.String())
}

// Sign encodes st and wraps it in a DSSE envelope signed with key; the
// result is the envelope's JSON, the blob a manifest names.
func Sign(st *Statement, key ed25519.PrivateKey) ([]byte, error) {
	payload, err := json.Marshal(st)
	if err != nil {
		return nil, fmt.Errorf("encoding the provenance: %w", err)
	}
	env := Envelope{
		Payload:     payload,
		PayloadType: PayloadType,
		Signatures: []Signature{{
			KeyID: KeyID(key.Public().(ed25519.PublicKey)),
			Sig:   ed25519.Sign(key, pae(PayloadType, payload)),
		}},
	}
	return json.Marshal(env)
}

// Open checks that envelope is a DSSE envelope of an in-toto statement with
// a SLSA v1 predicate, signed with key, and returns the statement and its
// raw JSON.
func Open(envelope []byte, key ed25519.PublicKey) (*Statement, []byte, error) {
	if len(envelope) > MaxEnvelopeSize {
		return nil, nil, fmt.Errorf("the provenance envelope is %d bytes, more than the %d allowed", len(envelope), MaxEnvelopeSize)
	}
	if len(key) != ed25519.PublicKeySize {
		return nil, nil, errors.New("the signer's key is not an ed25519 public key")
	}
	var env Envelope
	if err := json.Unmarshal(envelope, &env); err != nil {
		return nil, nil, fmt.Errorf("the provenance is not a DSSE envelope: %w", err)
	}
	if env.PayloadType != PayloadType {
		return nil, nil, fmt.Errorf("the provenance envelope's payload type is %q, not %s", env.PayloadType, PayloadType)
	}
	id := KeyID(key)
	signed := pae(env.PayloadType, env.Payload)
	if !slices.ContainsFunc(env.Signatures, func(s Signature) bool {
		return (s.KeyID == "" || s.KeyID == id) && ed25519.Verify(key, signed, s.Sig)
	}) {
		return nil, nil, fmt.Errorf("no signature of the provenance envelope matches key %s: it was changed or forged", id)
	}
	var st Statement
	if err := json.Unmarshal(env.Payload, &st); err != nil {
		return nil, nil, fmt.Errorf("the signed provenance is not an in-toto statement: %w", err)
	}
	if st.Type != StatementType || st.PredicateType != PredicateType {
		return nil, nil, fmt.Errorf("the signed statement is %q with predicate %q, not an in-toto v1 statement with SLSA v1 provenance", st.Type, st.PredicateType)
	}
	if st.Predicate.BuildDefinition.InternalParameters.KeyID != id {
		return nil, nil, fmt.Errorf("the statement names signing key %q, but key %s signed it", st.Predicate.BuildDefinition.InternalParameters.KeyID, id)
	}
	return &st, env.Payload, nil
}
