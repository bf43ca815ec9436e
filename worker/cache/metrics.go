package cache

import (
	"context"
	"io"

	"github.com/prometheus/client_golang/prometheus"

	"distbuild/digest"
)

// Metered counts what passes between a worker and the shared cache:
// blobs and bytes downloaded from it and uploaded to it. It wraps the
// trove's client, beneath Local, so downloads Local serves from disk are
// not counted as fetched.
type Metered struct {
	Cache
	fetchedBytes, fetchedBlobs   prometheus.Counter
	uploadedBytes, uploadedBlobs prometheus.Counter
}

// NewMetered wraps backend, registering its counters with reg.
func NewMetered(backend Cache, reg prometheus.Registerer) *Metered {
	m := &Metered{
		Cache: backend,
		fetchedBytes: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "distbuild_worker_fetched_bytes_total",
			Help: "Bytes of artifacts downloaded from the shared cache (not those served by the local copy).",
		}),
		fetchedBlobs: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "distbuild_worker_fetched_blobs_total",
			Help: "Blobs downloaded from the shared cache.",
		}),
		uploadedBytes: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "distbuild_worker_uploaded_bytes_total",
			Help: "Bytes uploaded to the shared cache (artifacts and logs).",
		}),
		uploadedBlobs: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "distbuild_worker_uploaded_blobs_total",
			Help: "Blobs uploaded to the shared cache.",
		}),
	}
	reg.MustRegister(m.fetchedBytes, m.fetchedBlobs, m.uploadedBytes, m.uploadedBlobs)
	return m
}

// DownloadWithProgress downloads through the wrapped cache, counting what
// arrived whole.
func (m *Metered) DownloadWithProgress(ctx context.Context, d digest.Digest, path string, progress func()) error {
	err := m.Cache.DownloadWithProgress(ctx, d, path, progress)
	if err == nil {
		m.fetchedBlobs.Inc()
		m.fetchedBytes.Add(float64(d.Size()))
	}
	return err
}

// Upload uploads through the wrapped cache, counting what was stored.
func (m *Metered) Upload(ctx context.Context, d digest.Digest, r io.Reader) error {
	err := m.Cache.Upload(ctx, d, r)
	if err == nil {
		m.uploadedBlobs.Inc()
		m.uploadedBytes.Add(float64(d.Size()))
	}
	return err
}

// RegisterLocalMetrics exports the local copy's size and hit rate, read
// from its Stats when Prometheus scrapes.
func RegisterLocalMetrics(reg prometheus.Registerer, l *Local) {
	reg.MustRegister(localCollector{l})
}

var (
	localBytesDesc     = prometheus.NewDesc("distbuild_worker_blob_cache_bytes", "Size of the local copies of staged artifacts and their unpacked trees.", nil, nil)
	localTreesDesc     = prometheus.NewDesc("distbuild_worker_blob_cache_trees", "Artifacts kept unpacked, for staging by linking.", nil, nil)
	localTreeHitsDesc  = prometheus.NewDesc("distbuild_worker_blob_cache_tree_hits_total", "Stagings that found their artifact unpacked already.", nil, nil)
	localTreeMissDesc  = prometheus.NewDesc("distbuild_worker_blob_cache_tree_misses_total", "Artifacts unpacked into the local copy's trees.", nil, nil)
	localMaxBytesDesc  = prometheus.NewDesc("distbuild_worker_blob_cache_max_bytes", "The local copy's size limit (--blob-cache-size; 0: none).", nil, nil)
	localBlobsDesc     = prometheus.NewDesc("distbuild_worker_blob_cache_blobs", "Blobs kept locally.", nil, nil)
	localHitsDesc      = prometheus.NewDesc("distbuild_worker_blob_cache_hits_total", "Downloads served from the local copy.", nil, nil)
	localMissesDesc    = prometheus.NewDesc("distbuild_worker_blob_cache_misses_total", "Downloads the local copy did not hold, fetched from the shared cache.", nil, nil)
	localEvictionsDesc = prometheus.NewDesc("distbuild_worker_blob_cache_evictions_total", "Blobs and trees evicted from the local copy to stay under its limit.", nil, nil)
)

type localCollector struct{ l *Local }

func (c localCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{localBytesDesc, localMaxBytesDesc, localBlobsDesc, localHitsDesc, localMissesDesc, localEvictionsDesc, localTreesDesc, localTreeHitsDesc, localTreeMissDesc} {
		ch <- d
	}
}

func (c localCollector) Collect(ch chan<- prometheus.Metric) {
	s := c.l.Stats()
	ch <- prometheus.MustNewConstMetric(localBytesDesc, prometheus.GaugeValue, float64(s.Bytes))
	ch <- prometheus.MustNewConstMetric(localMaxBytesDesc, prometheus.GaugeValue, float64(s.Limit))
	ch <- prometheus.MustNewConstMetric(localBlobsDesc, prometheus.GaugeValue, float64(s.Blobs))
	ch <- prometheus.MustNewConstMetric(localHitsDesc, prometheus.CounterValue, float64(s.Hits))
	ch <- prometheus.MustNewConstMetric(localMissesDesc, prometheus.CounterValue, float64(s.Misses))
	ch <- prometheus.MustNewConstMetric(localEvictionsDesc, prometheus.CounterValue, float64(s.Evictions))
	ch <- prometheus.MustNewConstMetric(localTreesDesc, prometheus.GaugeValue, float64(s.Trees))
	ch <- prometheus.MustNewConstMetric(localTreeHitsDesc, prometheus.CounterValue, float64(s.TreeHits))
	ch <- prometheus.MustNewConstMetric(localTreeMissDesc, prometheus.CounterValue, float64(s.TreeMisses))
}
