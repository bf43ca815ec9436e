package step

import (
	"context"
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"distbuild/trove"
	"distbuild/trove/trovetest"
	"distbuild/worker/sandbox"

	pb "distbuild/proto/distbuild/v1"
)

// BenchmarkStepUpload measures a demo chunk's upload through a real trove
// on loopback, without and with its provenance: six split artifacts of
// 64 KiB and an 8 KiB log uploaded, then (with) the statement written,
// signed and uploaded, then the manifest signed and stored. The statement
// names 24 staged artifacts, as the demo's largest chunk does. Every
// iteration's blobs are new, so nothing is deduplicated away.
// provenance-bytes/op is the envelope's size. provenance-only times the
// statement's writing, signing and upload alone.
func BenchmarkStepUpload(b *testing.B) {
	d := trovetest.Start(b, trove.Config{ShutdownTimeout: time.Second})
	client := dialCache(b, d.Addrs().GRPC)
	r := newTestRunner(b, sandbox.None, func(c *Config) { c.Cache = client })
	rng := rand.New(rand.NewPCG(1, 2))
	fill := func(n int) []byte {
		data := make([]byte, n)
		for i := range data {
			data[i] = byte(rng.Uint32())
		}
		return data
	}
	rec := &record{env: []string{"PATH=/usr/bin:/bin", "HOME=/tmp", "LC_ALL=C", "PREFIX=/usr", "SOURCE_DATE_EPOCH=1704067200"}}
	for i := range 24 {
		rec.used(fmt.Sprintf("%064x", i), &pb.ManifestFile{Name: fmt.Sprintf("dep%d-libs", i), Digest: &pb.Digest{Hash: fmt.Sprintf("%064x", i), SizeBytes: 1 << 16}})
	}
	for _, with := range []bool{false, true} {
		b.Run(map[bool]string{false: "without-provenance", true: "with-provenance"}[with], func(b *testing.B) {
			ctx := context.Background()
			var envBytes int64
			n := 0
			for b.Loop() {
				b.StopTimer()
				n++
				blobs := make([][]byte, 7)
				for i := range blobs {
					blobs[i] = fill(64 << 10)
				}
				blobs[6] = blobs[6][:8<<10]
				job := chunkSpec("https://example/repo", fmt.Sprintf("%040x", n), "make")
				b.StartTimer()
				var files []*pb.ManifestFile
				for i, blob := range blobs[:6] {
					dg, err := r.uploadBytes(ctx, "artifact", blob)
					if err != nil {
						b.Fatal(err)
					}
					files = append(files, &pb.ManifestFile{Name: fmt.Sprintf("hello-%d", i), Role: pb.FileRole_FILE_ROLE_ARTIFACT, Digest: dg.Proto()})
				}
				logDigest, err := r.uploadBytes(ctx, "log", blobs[6])
				if err != nil {
					b.Fatal(err)
				}
				now := time.Now()
				all := append(files, &pb.ManifestFile{Name: "log", Role: pb.FileRole_FILE_ROLE_LOG, Digest: logDigest.Proto()})
				if with {
					prov, err := r.uploadProvenance(ctx, r.statement(job, rec, files, logDigest.Proto(), now, now))
					if err != nil {
						b.Fatal(err)
					}
					envBytes += prov.Digest.SizeBytes
					all = append(all, prov)
				}
				m := &pb.Manifest{CacheKey: job.CacheKey, StepName: job.Name, Kind: job.Kind, Files: all, Worker: r.cfg.Worker}
				if err := r.putManifest(ctx, m); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(envBytes)/float64(n), "provenance-bytes/op")
		})
	}
	b.Run("provenance-only", func(b *testing.B) {
		now := time.Now()
		files := []*pb.ManifestFile{{Name: "hello-bins", Role: pb.FileRole_FILE_ROLE_ARTIFACT, Digest: &pb.Digest{Hash: fmt.Sprintf("%064x", 1), SizeBytes: 1}}}
		for b.Loop() {
			job := chunkSpec("https://example/repo", fmt.Sprintf("%040x", 1), "make") // a new job id: a new blob
			if _, err := r.uploadProvenance(context.Background(), r.statement(job, rec, files, nil, now, now)); err != nil {
				b.Fatal(err)
			}
		}
	})
}
