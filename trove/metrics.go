package trove

import (
	"context"
	"net/http"
	"strings"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"google.golang.org/grpc"
	"google.golang.org/grpc/stats"

	"distbuild/artifactcache/store"
	"distbuild/internal/observability"
)

// metrics are the trove's Prometheus metrics, served at /metrics on its
// HTTP listener from a registry of its own.
type metrics struct {
	reg *prometheus.Registry

	grpcDuration *prometheus.HistogramVec // by method
	grpcReceived *prometheus.CounterVec   // message bytes, by method
	grpcSent     *prometheus.CounterVec
	blobsIn      prometheus.Counter     // uploads stored
	blobsOut     prometheus.Counter     // downloads served whole
	http         *prometheus.CounterVec // by handler, method and code
	scrubs       *prometheus.CounterVec // by result
	scrubbed     prometheus.Counter     // blobs re-hashed
	corrupt      prometheus.Counter     // blobs found corrupt

	// methods are the gRPC methods the trove serves, with their metrics
	// resolved once: the only values of the method label, so a client
	// calling anything else cannot grow it ("other" counts those).
	methods map[string]*rpcMetrics
	other   *rpcMetrics
}

func newMetrics(st *store.Store) *metrics {
	m := &metrics{
		reg: observability.NewRegistry(),
		grpcDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "distbuild_trove_grpc_request_duration_seconds",
			Help:    "Time from a gRPC call's start to its end, by method (streams included: a Read lasts as long as its download).",
			Buckets: prometheus.ExponentialBuckets(0.0005, 4, 12),
		}, []string{"method"}),
		grpcReceived: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "distbuild_trove_grpc_received_bytes_total",
			Help: "Bytes of gRPC messages received (uploads are most of them), by method.",
		}, []string{"method"}),
		grpcSent: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "distbuild_trove_grpc_sent_bytes_total",
			Help: "Bytes of gRPC messages sent (downloads are most of them), by method.",
		}, []string{"method"}),
		blobsIn: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "distbuild_trove_blobs_received_total",
			Help: "Blobs uploaded and stored (Write calls that succeeded).",
		}),
		blobsOut: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "distbuild_trove_blobs_sent_total",
			Help: "Blobs downloaded over gRPC (Read calls that succeeded).",
		}),
		http: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "distbuild_trove_http_requests_total",
			Help: "HTTP requests, by handler (blobs, artifacts, git), method and status code.",
		}, []string{"handler", "method", "code"}),
		scrubs: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "distbuild_trove_scrubs_total",
			Help: "Scrubs of the whole store, by result: clean, corrupt (some blobs quarantined) or failed.",
		}, []string{"result"}),
		scrubbed: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "distbuild_trove_scrubbed_blobs_total",
			Help: "Blobs re-hashed by scrubs.",
		}),
		corrupt: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "distbuild_trove_corrupt_blobs_total",
			Help: "Blobs scrubs found corrupt and quarantined.",
		}),
		methods: map[string]*rpcMetrics{},
	}
	m.other = m.rpc("other")
	m.reg.MustRegister(m.grpcDuration, m.grpcReceived, m.grpcSent, m.blobsIn, m.blobsOut, m.http, m.scrubs, m.scrubbed, m.corrupt, storeCollector{st})
	return m
}

// knowMethods records the methods s serves, once they are registered.
func (m *metrics) knowMethods(s *grpc.Server) {
	for svc, info := range s.GetServiceInfo() {
		for _, meth := range info.Methods {
			name := "/" + svc + "/" + meth.Name
			m.methods[name] = m.rpc(name)
		}
	}
}

func (m *metrics) rpc(method string) *rpcMetrics {
	label := strings.TrimPrefix(method, "/")
	r := &rpcMetrics{
		received: m.grpcReceived.WithLabelValues(label),
		sent:     m.grpcSent.WithLabelValues(label),
		duration: m.grpcDuration.WithLabelValues(label),
	}
	switch {
	case strings.HasSuffix(method, "ArtifactCacheService/Write"):
		r.done = m.blobsIn
	case strings.HasSuffix(method, "ArtifactCacheService/Read"):
		r.done = m.blobsOut
	}
	return r
}

// instrument counts an HTTP handler's requests under the label handler.
func (m *metrics) instrument(handler string, h http.Handler) http.Handler {
	return promhttp.InstrumentHandlerCounter(m.http.MustCurryWith(prometheus.Labels{"handler": handler}), h)
}

func (m *metrics) scrubbedStore(report store.ScrubReport, err error) {
	m.scrubbed.Add(float64(report.Checked))
	m.corrupt.Add(float64(len(report.Corrupt)))
	switch {
	case err != nil:
		m.scrubs.WithLabelValues("failed").Inc()
	case len(report.Corrupt) > 0:
		m.scrubs.WithLabelValues("corrupt").Inc()
	default:
		m.scrubs.WithLabelValues("clean").Inc()
	}
}

// storeCollector reads the store's fill level and evictions at scrape
// time, from one Stats call, so the store keeps no metrics of its own.
type storeCollector struct{ st *store.Store }

var (
	storeBytesDesc     = prometheus.NewDesc("distbuild_trove_store_bytes", "Size of the blobs stored.", nil, nil)
	storeMaxBytesDesc  = prometheus.NewDesc("distbuild_trove_store_max_bytes", "The store's size limit (--max-size).", nil, nil)
	storeReservedDesc  = prometheus.NewDesc("distbuild_trove_store_reserved_bytes", "Room held by uploads in progress.", nil, nil)
	storeBlobsDesc     = prometheus.NewDesc("distbuild_trove_store_blobs", "Blobs stored.", nil, nil)
	storeManifestsDesc = prometheus.NewDesc("distbuild_trove_store_manifests", "Manifests (built artifacts) stored.", nil, nil)
	evictionsDesc      = prometheus.NewDesc("distbuild_trove_evictions_total", "Artifacts (or lone blobs) evicted to stay under the size limit.", nil, nil)
	evictedBytesDesc   = prometheus.NewDesc("distbuild_trove_evicted_bytes_total", "Bytes of the blobs evicted.", nil, nil)
)

func (c storeCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{storeBytesDesc, storeMaxBytesDesc, storeReservedDesc, storeBlobsDesc, storeManifestsDesc, evictionsDesc, evictedBytesDesc} {
		ch <- d
	}
}

func (c storeCollector) Collect(ch chan<- prometheus.Metric) {
	s := c.st.Stats()
	ch <- prometheus.MustNewConstMetric(storeBytesDesc, prometheus.GaugeValue, float64(s.UsedBytes))
	ch <- prometheus.MustNewConstMetric(storeMaxBytesDesc, prometheus.GaugeValue, float64(s.MaxBytes))
	ch <- prometheus.MustNewConstMetric(storeReservedDesc, prometheus.GaugeValue, float64(s.ReservedBytes))
	ch <- prometheus.MustNewConstMetric(storeBlobsDesc, prometheus.GaugeValue, float64(s.Blobs))
	ch <- prometheus.MustNewConstMetric(storeManifestsDesc, prometheus.GaugeValue, float64(s.Manifests))
	ch <- prometheus.MustNewConstMetric(evictionsDesc, prometheus.CounterValue, float64(s.Evictions))
	ch <- prometheus.MustNewConstMetric(evictedBytesDesc, prometheus.CounterValue, float64(s.EvictedBytes))
}

// grpcStats is a gRPC stats handler feeding the per-method metrics: it
// sees every message's size and every call's start and end without
// touching the services.
type grpcStats struct{ m *metrics }

type rpcKey struct{}

// rpcMetrics are one method's metrics.
type rpcMetrics struct {
	received, sent prometheus.Counter
	duration       prometheus.Observer
	// done, when set, counts the method's calls that succeed (blobs in
	// or out).
	done prometheus.Counter
}

func (g grpcStats) TagRPC(ctx context.Context, info *stats.RPCTagInfo) context.Context {
	r := g.m.methods[info.FullMethodName]
	if r == nil {
		r = g.m.other
	}
	return context.WithValue(ctx, rpcKey{}, r)
}

func (g grpcStats) HandleRPC(ctx context.Context, s stats.RPCStats) {
	r, ok := ctx.Value(rpcKey{}).(*rpcMetrics)
	if !ok {
		return
	}
	switch s := s.(type) {
	case *stats.InPayload:
		r.received.Add(float64(s.Length))
	case *stats.OutPayload:
		r.sent.Add(float64(s.Length))
	case *stats.End:
		r.duration.Observe(s.EndTime.Sub(s.BeginTime).Seconds())
		if s.Error == nil && r.done != nil {
			r.done.Inc()
		}
	}
}

func (grpcStats) TagConn(ctx context.Context, _ *stats.ConnTagInfo) context.Context { return ctx }
func (grpcStats) HandleConn(context.Context, stats.ConnStats)                       {}
