package provenance

import (
	"bytes"
	"crypto/ed25519"
	"encoding/json"
	"strings"
	"testing"

	pb "distbuild/proto/distbuild/v1"
)

func sample(t *testing.T) (*Statement, *pb.Manifest, ed25519.PrivateKey) {
	t.Helper()
	pub, key, err := ed25519.GenerateKey(nil)
	if err != nil {
		t.Fatal(err)
	}
	m := &pb.Manifest{CacheKey: strings.Repeat("a", 64), Worker: "w1", Files: []*pb.ManifestFile{
		{Name: "zlib-libs", Role: pb.FileRole_FILE_ROLE_ARTIFACT, Digest: &pb.Digest{Hash: strings.Repeat("1", 64), SizeBytes: 10}},
		{Name: "zlib-devel", Role: pb.FileRole_FILE_ROLE_ARTIFACT, Digest: &pb.Digest{Hash: strings.Repeat("2", 64), SizeBytes: 20}},
		{Name: "log", Role: pb.FileRole_FILE_ROLE_LOG, Digest: &pb.Digest{Hash: strings.Repeat("3", 64), SizeBytes: 30}},
	}}
	st := &Statement{Type: StatementType, PredicateType: PredicateType, Subject: Subjects(m.Files)}
	st.Predicate.BuildDefinition.ExternalParameters.Step.CacheKey = m.CacheKey
	st.Predicate.BuildDefinition.InternalParameters = InternalParameters{Worker: "w1", KeyID: KeyID(pub), Sandbox: "none"}
	return st, m, key
}

func TestASignedStatementOpensWithTheSignersKeyOnly(t *testing.T) {
	st, m, key := sample(t)
	env, err := Sign(st, key)
	if err != nil {
		t.Fatal(err)
	}
	got, raw, err := Open(env, key.Public().(ed25519.PublicKey))
	if err != nil {
		t.Fatalf("opening a signed envelope: %v", err)
	}
	if err := CheckManifest(got, m); err != nil {
		t.Errorf("the statement does not match its manifest: %v", err)
	}
	var fields map[string]any
	if err := json.Unmarshal(raw, &fields); err != nil || fields["_type"] != StatementType || fields["predicateType"] != PredicateType {
		t.Errorf("the raw statement is not in-toto v1 with SLSA v1 provenance: %v %v", fields, err)
	}
	other, _, _ := ed25519.GenerateKey(nil)
	if _, _, err := Open(env, other); err == nil {
		t.Error("an envelope opened with another key")
	}
}

func TestATamperedEnvelopeIsRefused(t *testing.T) {
	st, _, key := sample(t)
	env, err := Sign(st, key)
	if err != nil {
		t.Fatal(err)
	}
	pub := key.Public().(ed25519.PublicKey)
	var e Envelope
	if err := json.Unmarshal(env, &e); err != nil {
		t.Fatal(err)
	}
	for name, change := range map[string]func(e *Envelope){
		"payload changed":      func(e *Envelope) { e.Payload = bytes.Replace(e.Payload, []byte(`"w1"`), []byte(`"w2"`), 1) },
		"payload type changed": func(e *Envelope) { e.PayloadType = "application/json" },
		"signature removed":    func(e *Envelope) { e.Signatures = nil },
	} {
		c := e
		c.Payload = bytes.Clone(e.Payload)
		change(&c)
		data, _ := json.Marshal(c)
		if _, _, err := Open(data, pub); err == nil {
			t.Errorf("%s: opened", name)
		}
	}
	if _, _, err := Open([]byte("not json"), pub); err == nil {
		t.Error("garbage opened")
	}
}

func TestASubjectMismatchIsFound(t *testing.T) {
	for name, change := range map[string]func(*Statement, *pb.Manifest){
		"digest differs":    func(s *Statement, _ *pb.Manifest) { s.Subject[0].Digest["sha256"] = strings.Repeat("9", 64) },
		"subject missing":   func(s *Statement, _ *pb.Manifest) { s.Subject = s.Subject[1:] },
		"extra subject":     func(s *Statement, _ *pb.Manifest) { s.Subject = append(s.Subject, ResourceDescriptor{Name: "x"}) },
		"other cache key":   func(_ *Statement, m *pb.Manifest) { m.CacheKey = strings.Repeat("b", 64) },
		"other worker":      func(_ *Statement, m *pb.Manifest) { m.Worker = "w2" },
		"duplicate subject": func(s *Statement, _ *pb.Manifest) { s.Subject[1] = s.Subject[0] },
	} {
		st, m, _ := sample(t)
		change(st, m)
		if err := CheckManifest(st, m); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

// BenchmarkSignAndVerify is the CPU a statement costs: the worker's
// encoding and signing, and a reader's (the trove's, the initiator's)
// opening, signature check and comparison with the manifest.
func BenchmarkSignAndVerify(b *testing.B) {
	pub, key, _ := ed25519.GenerateKey(nil)
	m := &pb.Manifest{CacheKey: strings.Repeat("a", 64), Worker: "w1"}
	for i := range 6 {
		m.Files = append(m.Files, &pb.ManifestFile{Name: string(rune('a' + i)), Role: pb.FileRole_FILE_ROLE_ARTIFACT, Digest: &pb.Digest{Hash: strings.Repeat("1", 64), SizeBytes: 10}})
	}
	st := &Statement{Type: StatementType, PredicateType: PredicateType, Subject: Subjects(m.Files)}
	st.Predicate.BuildDefinition.ExternalParameters.Step.CacheKey = m.CacheKey
	st.Predicate.BuildDefinition.InternalParameters = InternalParameters{Worker: "w1", KeyID: KeyID(pub)}
	for range 24 {
		st.Predicate.BuildDefinition.ResolvedDependencies = append(st.Predicate.BuildDefinition.ResolvedDependencies, Descriptor(m.Files[0]))
	}
	b.Run("sign", func(b *testing.B) {
		for b.Loop() {
			if _, err := Sign(st, key); err != nil {
				b.Fatal(err)
			}
		}
	})
	env, _ := Sign(st, key)
	b.Run("open-and-check", func(b *testing.B) {
		for b.Loop() {
			got, _, err := Open(env, pub)
			if err == nil {
				err = CheckManifest(got, m)
			}
			if err != nil {
				b.Fatal(err)
			}
		}
	})
}
