package manifestsig_test

import (
	"crypto/ed25519"
	"strings"
	"testing"

	"google.golang.org/protobuf/proto"

	"distbuild/manifestsig"
	pb "distbuild/proto/distbuild/v1"
)

func TestGrantsBindTheAttemptToOneWorkerAndOneKey(t *testing.T) {
	pub, key, _ := ed25519.GenerateKey(nil)
	_, otherKey, _ := ed25519.GenerateKey(nil)
	granted := func() *pb.Manifest {
		m := manifest()
		m.Grant = &pb.AttemptGrant{JobId: "j-1", CacheKey: m.CacheKey, Worker: "w1", Sequence: 42}
		if err := manifestsig.SignGrant(m.Grant, key); err != nil {
			t.Fatal(err)
		}
		return m
	}
	if err := manifestsig.VerifyGrant(granted(), "w1", pub); err != nil {
		t.Fatalf("a valid grant was refused: %v", err)
	}
	for name, tc := range map[string]struct {
		change func(*pb.Manifest)
		worker string
		want   string
	}{
		"no grant":        {func(m *pb.Manifest) { m.Grant = nil }, "w1", "carries no attempt grant"},
		"unsigned":        {func(m *pb.Manifest) { m.Grant.Ed25519 = nil }, "w1", "not signed"},
		"another worker":  {func(*pb.Manifest) {}, "w2", `given to worker "w1", not w2`},
		"another key":     {func(m *pb.Manifest) { m.CacheKey = strings.Repeat("e", 64) }, "w1", "is for cache key"},
		"raised sequence": {func(m *pb.Manifest) { m.Grant.Sequence = 1 << 62 }, "w1", "changed or forged"},
		"forged":          {func(m *pb.Manifest) { manifestsig.SignGrant(m.Grant, otherKey) }, "w1", "changed or forged"},
	} {
		m := granted()
		tc.change(m)
		err := manifestsig.VerifyGrant(m, tc.worker, pub)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: got %v, want an error saying %q", name, err, tc.want)
		}
	}
	// The worker's manifest signature covers the grant too.
	m := granted()
	_, workerKey, _ := ed25519.GenerateKey(nil)
	manifestsig.Sign(m, "w1", workerKey)
	c := proto.Clone(m).(*pb.Manifest)
	c.Grant.JobId = "j-2"
	if manifestsig.Verify(c, workerKey.Public().(ed25519.PublicKey)) == nil {
		t.Error("changing the grant kept the worker's signature valid")
	}
}
