package cached_test

import (
	"crypto/rand"
	"encoding/binary"
	"testing"

	"distbuild/artifactcache/backend"
	"distbuild/artifactcache/backend/backendtest"
	"distbuild/artifactcache/cached"
	"distbuild/artifactcache/s3store"
	"distbuild/artifactcache/s3store/s3test"
	"distbuild/artifactcache/store"
	"distbuild/digest"
)

// benchSize is the blob the transfer benchmarks move: large enough for
// many S3 parts and local blocks, small enough for SeaweedFS's disk here.
const benchSize = 128 << 20

// benchStores opens the three ways a trove can keep its cache, over one
// SeaweedFS: the local store alone, the bucket alone, and the local store
// in front of the bucket. fresh gives a new empty local store in front of
// the same bucket, for cold reads.
func benchStores(b *testing.B) (stores map[string]backend.Store, fresh func() backend.Store) {
	srv := s3test.Start(b)
	url := srv.NewBucket(b, "bench/")
	remote, err := s3store.Open(b.Context(), s3store.Config{URL: url, Endpoint: srv.Endpoint, CredentialsFile: srv.CredentialsFile})
	if err != nil {
		b.Fatal(err)
	}
	openLocal := func() *store.Store {
		st, err := store.Open(store.Options{Dir: b.TempDir(), MaxSizeBytes: 4 << 30})
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { st.Close() })
		return st
	}
	stores = map[string]backend.Store{
		"local":    backend.Local(openLocal()),
		"s3":       remote,
		"local+s3": cached.New(openLocal(), remote, nil),
	}
	return stores, func() backend.Store { return cached.New(openLocal(), remote, nil) }
}

// BenchmarkUpload128MiB stores a new 128 MiB blob per iteration through
// the backend interface, as the service's Write does (1 MiB pieces).
func BenchmarkUpload128MiB(b *testing.B) {
	stores, _ := benchStores(b)
	content := make([]byte, benchSize)
	rand.Read(content)
	for _, name := range []string{"local", "s3", "local+s3"} {
		s := stores[name]
		b.Run(name, func(b *testing.B) {
			b.SetBytes(benchSize)
			for i := 0; b.Loop(); i++ {
				b.StopTimer()
				binary.LittleEndian.PutUint64(content, uint64(i)^uint64(len(name))<<56)
				d := digest.OfBytes(content)
				b.StartTimer()
				if err := backendtest.Put(b.Context(), s, d, content, 1<<20); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkDownload128MiB reads a stored 128 MiB blob whole: from the
// local store, from the bucket, through a local store that already holds
// it (warm), and through an empty one that first copies it from the bucket
// (cold).
func BenchmarkDownload128MiB(b *testing.B) {
	stores, fresh := benchStores(b)
	content := make([]byte, benchSize)
	rand.Read(content)
	d := digest.OfBytes(content)
	for _, name := range []string{"local", "local+s3"} {
		if err := backendtest.Put(b.Context(), stores[name], d, content, 1<<20); err != nil {
			b.Fatal(err)
		}
	}
	read := func(b *testing.B, s backend.Store) {
		bl, err := s.OpenBlob(b.Context(), d)
		if err != nil {
			b.Fatal(err)
		}
		defer bl.Close()
		var n int64
		if err := bl.Stream(b.Context(), 0, 0, func(p []byte) error { n += int64(len(p)); return nil }); err != nil || n != benchSize {
			b.Fatalf("read %d bytes: %v", n, err)
		}
	}
	for _, name := range []string{"local", "s3", "local+s3"} {
		s := stores[name]
		label := name
		if name == "local+s3" {
			label = "local+s3-warm"
		}
		b.Run(label, func(b *testing.B) {
			b.SetBytes(benchSize)
			for b.Loop() {
				read(b, s)
			}
		})
	}
	b.Run("local+s3-cold", func(b *testing.B) {
		b.SetBytes(benchSize)
		for b.Loop() {
			b.StopTimer()
			s := fresh()
			b.StartTimer()
			read(b, s)
		}
	})
}

// BenchmarkFindMissing520Manifests asks, in one call, whether the 520
// steps of the 451-chunk system are built, as the controller does at the
// start of every build: through the local store alone, and through a
// trove whose cache is the bucket (each manifest read, and its two blobs
// checked, in the bucket).
func BenchmarkFindMissing520Manifests(b *testing.B) {
	stores, _ := benchStores(b)
	var blobs []digest.Digest
	for i := range 100 {
		content := make([]byte, 1000+i)
		rand.Read(content)
		blobs = append(blobs, digest.OfBytes(content))
		for _, name := range []string{"local", "local+s3"} {
			if err := backendtest.Put(b.Context(), stores[name], blobs[i], content, 1<<20); err != nil {
				b.Fatal(err)
			}
		}
	}
	var keys []digest.CacheKey
	for i := range 520 {
		key := make([]byte, 32)
		rand.Read(key)
		k := digest.CacheKey(digest.OfBytes(key).Hash())
		keys = append(keys, k)
		m := backendtest.Manifest(k, 0, blobs[i%100], blobs[(i*7+1)%100])
		for _, name := range []string{"local", "local+s3"} {
			if err := stores[name].PutManifest(b.Context(), m); err != nil {
				b.Fatal(err)
			}
		}
	}
	for _, name := range []string{"local", "local+s3"} {
		s := stores[name]
		b.Run(name, func(b *testing.B) {
			for b.Loop() {
				if _, missing, err := s.FindMissing(b.Context(), nil, keys); err != nil || len(missing) != 0 {
					b.Fatalf("FindMissing: %d missing, %v", len(missing), err)
				}
			}
		})
	}
}
