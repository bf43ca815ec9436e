package manifestsig_test

import (
	"crypto/ed25519"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"distbuild/manifestsig"
	pb "distbuild/proto/distbuild/v1"
)

func manifest() *pb.Manifest {
	return &pb.Manifest{CacheKey: strings.Repeat("a", 64), StepName: "zlib", Worker: "w1", Files: []*pb.ManifestFile{
		{Name: "zlib-libs", Role: pb.FileRole_FILE_ROLE_ARTIFACT, Digest: &pb.Digest{Hash: strings.Repeat("b", 64), SizeBytes: 10}}}}
}

func TestSignaturesCoverEveryFieldAndNeedTheRightKey(t *testing.T) {
	path := filepath.Join(t.TempDir(), "new-work-dir", "key")
	key, err := manifestsig.LoadOrCreateKey(path)
	if err != nil {
		t.Fatal(err)
	}
	again, err := manifestsig.LoadOrCreateKey(path)
	if err != nil || !again.Equal(key) {
		t.Fatalf("the key was not kept: %v", err)
	}
	if fi, _ := os.Stat(path); fi.Mode().Perm()&0o077 != 0 {
		t.Errorf("key file mode %v lets others read it", fi.Mode().Perm())
	}
	pub, err := manifestsig.ParsePublicKey(manifestsig.PublicKeyText(key))
	if err != nil {
		t.Fatal(err)
	}
	m := manifest()
	if err := manifestsig.Verify(m, pub); !errors.Is(err, manifestsig.ErrUnsigned) {
		t.Errorf("unsigned manifest: %v, want ErrUnsigned", err)
	}
	if err := manifestsig.Sign(m, "w1", key); err != nil {
		t.Fatal(err)
	}
	if err := manifestsig.Verify(m, pub); err != nil {
		t.Fatalf("a fresh signature does not verify: %v", err)
	}
	for name, change := range map[string]func(*pb.Manifest){
		"blob digest": func(m *pb.Manifest) { m.Files[0].Digest.Hash = strings.Repeat("c", 64) },
		"cache key":   func(m *pb.Manifest) { m.CacheKey = strings.Repeat("d", 64) },
		"worker":      func(m *pb.Manifest) { m.Worker = "w2" },
		"extra file":  func(m *pb.Manifest) { m.Files = append(m.Files, &pb.ManifestFile{Name: "evil"}) },
	} {
		c := manifest()
		manifestsig.Sign(c, "w1", key)
		change(c)
		if err := manifestsig.Verify(c, pub); err == nil {
			t.Errorf("changing the %s kept the signature valid", name)
		}
	}
	_, other, _ := ed25519.GenerateKey(nil)
	forged := manifest()
	manifestsig.Sign(forged, "w1", other)
	if err := manifestsig.Verify(forged, pub); err == nil {
		t.Error("a signature by another key verified")
	}
	if _, err := manifestsig.ParsePublicKey("not base64!"); err == nil {
		t.Error("garbage parsed as a public key")
	}
}
