package auth_test

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/json"
	"fmt"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hashicorp/go-hclog"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"distbuild/artifactcache"
	"distbuild/auth"
	"distbuild/digest"
	"distbuild/manifestsig"
	pb "distbuild/proto/distbuild/v1"
	"distbuild/provenance"
	"distbuild/trove"
	"distbuild/trove/trovetest"
)

// TestTheCacheAcceptsOnlyManifestsSignedByTheUploadingWorker runs a real
// trove with authentication and the signature check.
func TestTheCacheAcceptsOnlyManifestsSignedByTheUploadingWorker(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "registry.json")
	key, err := manifestsig.LoadOrCreateKey(filepath.Join(dir, "w1.key"))
	if err != nil {
		t.Fatal(err)
	}
	pub, _ := manifestsig.ParsePublicKey(manifestsig.PublicKeyText(key))
	r, _ := auth.Load(path)
	w1, _ := r.Add(auth.KindWorker, "w1", pub)
	w2, _ := r.Add(auth.KindWorker, "w2", nil)
	alice, _ := r.Add(auth.KindUser, "alice", nil)
	if err := r.Save(path); err != nil {
		t.Fatal(err)
	}
	d := startAuthTrove(t, path)
	ctx := context.Background()
	client := func(token string) *artifactcache.Client {
		var opts []grpc.DialOption
		if token != "" {
			opts = append(opts, grpc.WithPerRPCCredentials(auth.Token(token)))
		}
		return trovetest.Client(t, d, opts...)
	}
	worker1, worker2, user, anonymous := client(w1), client(w2), client(alice), client("")

	if _, err := user.UploadBytes(ctx, []byte("from a user")); status.Code(err) != codes.PermissionDenied {
		t.Errorf("a user uploading a blob: %v, want PermissionDenied", err)
	}
	if _, err := anonymous.UploadBytes(ctx, []byte("from nobody")); status.Code(err) != codes.Unauthenticated {
		t.Errorf("an anonymous upload: %v, want Unauthenticated", err)
	}
	blob, err := worker1.UploadBytes(ctx, []byte("artifact"))
	if err != nil {
		t.Fatalf("a worker uploading a blob: %v", err)
	}
	newManifest := func(k string) *pb.Manifest {
		return &pb.Manifest{CacheKey: strings.Repeat(k, 64), StepName: "zlib", Worker: "w1",
			Files: []*pb.ManifestFile{{Name: "zlib-libs", Role: pb.FileRole_FILE_ROLE_ARTIFACT, Digest: blob.Proto()}}}
	}
	_, otherKey, _ := ed25519.GenerateKey(nil)
	type attempt struct {
		client *artifactcache.Client
		m      *pb.Manifest
	}
	forged, impersonated, byUser := newManifest("2"), newManifest("3"), newManifest("4")
	manifestsig.Sign(forged, "w1", otherKey)
	manifestsig.Sign(impersonated, "w1", key)
	manifestsig.Sign(byUser, "w1", key)
	refused := map[string]attempt{
		"unsigned":                     {worker1, newManifest("1")},
		"forged signature":             {worker1, forged},
		"w1's manifest uploaded by w2": {worker2, impersonated},
		"uploaded by a user":           {user, byUser},
	}
	for name, tc := range refused {
		if err := tc.client.PutManifest(ctx, tc.m); status.Code(err) != codes.PermissionDenied {
			t.Errorf("%s: %v, want PermissionDenied", name, err)
		}
		k, _ := digest.ParseCacheKey(tc.m.CacheKey)
		if _, err := worker1.GetManifest(ctx, k); status.Code(err) != codes.NotFound {
			t.Errorf("%s: the refused manifest was kept (%v)", name, err)
		}
	}
	good := newManifest("5")
	prove(t, worker1, good, key, nil, nil)
	if err := manifestsig.Sign(good, "w1", key); err != nil {
		t.Fatal(err)
	}
	if err := worker1.PutManifest(ctx, good); err != nil {
		t.Fatalf("a manifest signed by its uploader: %v", err)
	}
	k, _ := digest.ParseCacheKey(good.CacheKey)
	got, err := user.GetManifest(ctx, k)
	if err != nil {
		t.Fatalf("a user reading a manifest: %v", err)
	}
	if err := manifestsig.Verify(got, pub); err != nil {
		t.Errorf("the stored manifest's signature no longer verifies: %v", err)
	}

	// Once the registry holds the controller's key, a manifest needs the
	// controller's grant of that step to the uploading worker.
	ctlPub, ctlKey, _ := ed25519.GenerateKey(nil)
	if changed, err := auth.RecordControllerKey(path, ctlPub); err != nil || !changed {
		t.Fatalf("recording the controller's key: changed=%v %v", changed, err)
	}
	granted := func(k, worker string, seq uint64, signer ed25519.PrivateKey) *pb.Manifest {
		m := newManifest(k)
		m.Grant = &pb.AttemptGrant{JobId: "job-" + k, CacheKey: m.CacheKey, Worker: worker, Sequence: seq}
		manifestsig.SignGrant(m.Grant, signer)
		prove(t, worker1, m, key, nil, nil)
		manifestsig.Sign(m, "w1", key)
		return m
	}
	for name, m := range map[string]*pb.Manifest{
		"without a grant":             func() *pb.Manifest { m := newManifest("6"); manifestsig.Sign(m, "w1", key); return m }(),
		"granted to another worker":   granted("7", "w2", 1, ctlKey),
		"grant not by the controller": granted("8", "w1", 1, otherKey),
	} {
		if err := worker1.PutManifest(ctx, m); status.Code(err) != codes.PermissionDenied {
			t.Errorf("%s: %v, want PermissionDenied", name, err)
		}
	}
	if err := worker1.PutManifest(ctx, granted("9", "w1", 1, ctlKey)); err != nil {
		t.Fatalf("a manifest under a valid grant: %v", err)
	}
}

// prove uploads through c a provenance envelope about m signed with key and
// names it in m. change (when not nil) alters the statement before it is
// signed, tamper the envelope after.
func prove(t *testing.T, c *artifactcache.Client, m *pb.Manifest, key ed25519.PrivateKey, change func(*provenance.Statement), tamper func([]byte) []byte) {
	t.Helper()
	st := &provenance.Statement{Type: provenance.StatementType, PredicateType: provenance.PredicateType, Subject: provenance.Subjects(m.Files)}
	st.Predicate.BuildDefinition.ExternalParameters.Step.CacheKey = m.CacheKey
	st.Predicate.BuildDefinition.InternalParameters = provenance.InternalParameters{Worker: m.Worker, KeyID: provenance.KeyID(key.Public().(ed25519.PublicKey))}
	if change != nil {
		change(st)
	}
	env, err := provenance.Sign(st, key)
	if err != nil {
		t.Fatal(err)
	}
	if tamper != nil {
		env = tamper(env)
	}
	d, err := c.UploadBytes(context.Background(), env)
	if err != nil {
		t.Fatal(err)
	}
	m.Files = append(m.Files, &pb.ManifestFile{Name: "provenance", Role: pb.FileRole_FILE_ROLE_PROVENANCE, Digest: d.Proto()})
}

// TestTheCacheAcceptsOnlyProvenanceSignedByTheUploaderAboutItsManifest runs
// a real trove with authentication: a manifest whose provenance is missing,
// tampered with, signed with another key or about other artifacts is
// refused with PermissionDenied, and nothing is stored.
func TestTheCacheAcceptsOnlyProvenanceSignedByTheUploaderAboutItsManifest(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "registry.json")
	pub, key, _ := ed25519.GenerateKey(nil)
	_, otherKey, _ := ed25519.GenerateKey(nil)
	r, _ := auth.Load(path)
	w1, _ := r.Add(auth.KindWorker, "w1", pub)
	if err := r.Save(path); err != nil {
		t.Fatal(err)
	}
	d := startAuthTrove(t, path)
	ctx := context.Background()
	worker := trovetest.Client(t, d, grpc.WithPerRPCCredentials(auth.Token(w1)))
	blob, err := worker.UploadBytes(ctx, []byte("artifact"))
	if err != nil {
		t.Fatal(err)
	}
	other, err := worker.UploadBytes(ctx, []byte("another artifact"))
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	manifest := func() *pb.Manifest {
		n++
		return &pb.Manifest{CacheKey: fmt.Sprintf("%064x", n), StepName: "zlib", Worker: "w1",
			Files: []*pb.ManifestFile{{Name: "zlib-libs", Role: pb.FileRole_FILE_ROLE_ARTIFACT, Digest: blob.Proto()}}}
	}
	flip := func(env []byte) []byte {
		var e provenance.Envelope
		if err := json.Unmarshal(env, &e); err != nil {
			t.Fatal(err)
		}
		e.Payload = bytes.Replace(e.Payload, []byte(blob.Hash().String()), []byte(other.Hash().String()), 1)
		out, _ := json.Marshal(e)
		return out
	}
	for name, tc := range map[string]struct {
		change func(*provenance.Statement)
		tamper func([]byte) []byte
		key    ed25519.PrivateKey
		none   bool
		want   string
	}{
		"without provenance":         {none: true, want: "without provenance"},
		"a tampered envelope":        {tamper: flip, key: key, want: "changed or forged"},
		"signed with another key":    {key: otherKey, want: "changed or forged"},
		"a subject's digest differs": {change: func(s *provenance.Statement) { s.Subject[0].Digest["sha256"] = other.Hash().String() }, key: key, want: "digest"},
		"a subject missing":          {change: func(s *provenance.Statement) { s.Subject = nil }, key: key, want: "does not name"},
		"about another cache key":    {change: func(s *provenance.Statement) { s.Predicate.BuildDefinition.ExternalParameters.Step.CacheKey = "x" }, key: key, want: "cache key"},
		"not an envelope":            {tamper: func([]byte) []byte { return []byte("{}") }, key: key, want: "payload type"},
	} {
		m := manifest()
		if !tc.none {
			prove(t, worker, m, tc.key, tc.change, tc.tamper)
		}
		if err := manifestsig.Sign(m, "w1", key); err != nil {
			t.Fatal(err)
		}
		err := worker.PutManifest(ctx, m)
		if status.Code(err) != codes.PermissionDenied || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want PermissionDenied saying %q", name, err, tc.want)
		}
		k, _ := digest.ParseCacheKey(m.CacheKey)
		if _, err := worker.GetManifest(ctx, k); status.Code(err) != codes.NotFound {
			t.Errorf("%s: the refused manifest was kept (%v)", name, err)
		}
	}
	absent := manifest()
	absent.Files = append(absent.Files, &pb.ManifestFile{Name: "provenance", Role: pb.FileRole_FILE_ROLE_PROVENANCE, Digest: digest.OfBytes([]byte("never uploaded")).Proto()})
	manifestsig.Sign(absent, "w1", key)
	if err := worker.PutManifest(ctx, absent); status.Code(err) != codes.FailedPrecondition || !strings.Contains(err.Error(), "not in the cache") {
		t.Errorf("a manifest naming provenance never uploaded: %v, want FailedPrecondition", err)
	}
	good := manifest()
	prove(t, worker, good, key, nil, nil)
	manifestsig.Sign(good, "w1", key)
	if err := worker.PutManifest(ctx, good); err != nil {
		t.Errorf("a manifest with its uploader's provenance: %v", err)
	}
}

// startAuthTrove runs a real trove that requires authentication against the
// registry at path and verifies manifests as `trove serve --require-auth`
// does.
func startAuthTrove(t *testing.T, path string) *trove.Daemon {
	t.Helper()
	a, err := auth.NewAuthenticator(path)
	if err != nil {
		t.Fatal(err)
	}
	return trovetest.Start(t, trove.Config{
		Verifier: auth.ManifestVerifier{Auth: a},
		ServerOptions: []grpc.ServerOption{
			grpc.ChainUnaryInterceptor(a.UnaryInterceptor(auth.CachePolicy, hclog.NewNullLogger())),
			grpc.ChainStreamInterceptor(a.StreamInterceptor(auth.CachePolicy, hclog.NewNullLogger())),
		},
	})
}
