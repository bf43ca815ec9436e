package store

import (
	"fmt"
	"sync/atomic"
	"testing"

	"github.com/hashicorp/go-hclog"

	"distbuild/clock"
)

// BenchmarkPutManifestParallel stores new manifests from 8 goroutines at
// once, as a farm's slots finishing together do: concurrent puts share a
// transaction and its fsync, so the rate grows with them rather than being
// one fsync per manifest.
func BenchmarkPutManifestParallel(b *testing.B) {
	s, err := Open(Options{Dir: b.TempDir(), Clock: clock.NewFake(epoch), Logger: hclog.NewNullLogger()})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	d := put(b, s, []byte("log"))
	var n atomic.Int64
	b.SetParallelism(4) // 8 goroutines on 2 cores
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if err := s.PutManifest(manifest(fmt.Sprintf("%064x", n.Add(1)), d)); err != nil {
				b.Error(err)
				return
			}
		}
	})
}
