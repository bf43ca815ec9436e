package controller

import (
	"context"
	"fmt"
	"net/http"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// The cache page shows what the controller can know of the shared cache
// without a new RPC: its own resolve-time hits and misses (how many steps
// of the builds it resolved were already built), and the trove's /metrics
// (store size and limit, blobs, artifacts, evictions), read when the page
// is viewed. The trove counts evictions but does not list them, so
// "recent evictions" are the changes between the readings this
// controller took, kept in memory.

// troveReading is the trove's store as one scrape of its /metrics saw it.
type troveReading struct {
	At                         time.Time
	Bytes, MaxBytes            float64
	Blobs, Manifests           float64
	Evictions, EvictedBytes    float64
	BlobsReceived, BlobsServed float64
}

// evictionSpan is a change in the trove's eviction counters between two
// readings.
type evictionSpan struct {
	From, To         time.Time
	Artifacts, Bytes float64
}

// Readings are kept at most this often and this many.
const (
	troveReadingEvery = 5 * time.Second
	troveReadingsKept = 50
)

type troveReadings struct {
	mu       sync.Mutex
	readings []troveReading // oldest first
	spans    []evictionSpan // newest first
}

// read scrapes the trove unless the last reading is recent.
func (d *dashboard) readTrove(ctx context.Context) (troveReading, error) {
	tr := &d.trove
	tr.mu.Lock()
	if n := len(tr.readings); n > 0 && time.Since(tr.readings[n-1].At) < troveReadingEvery {
		last := tr.readings[n-1]
		tr.mu.Unlock()
		return last, nil
	}
	tr.mu.Unlock()
	r, err := scrapeTrove(ctx, d.opts.Client, d.opts.TroveMetrics)
	if err != nil {
		return r, err
	}
	tr.mu.Lock()
	defer tr.mu.Unlock()
	if n := len(tr.readings); n > 0 {
		prev := tr.readings[n-1]
		if r.Evictions > prev.Evictions {
			tr.spans = append([]evictionSpan{{From: prev.At, To: r.At, Artifacts: r.Evictions - prev.Evictions, Bytes: r.EvictedBytes - prev.EvictedBytes}}, tr.spans...)
			tr.spans = tr.spans[:min(len(tr.spans), troveReadingsKept)]
		}
	}
	tr.readings = append(tr.readings, r)
	if len(tr.readings) > troveReadingsKept {
		tr.readings = tr.readings[1:]
	}
	return r, nil
}

func scrapeTrove(ctx context.Context, client *http.Client, url string) (troveReading, error) {
	r := troveReading{At: time.Now()}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return r, err
	}
	resp, err := client.Do(req)
	if err != nil {
		return r, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return r, fmt.Errorf("%s: %s", url, resp.Status)
	}
	parser := expfmt.NewTextParser(model.UTF8Validation)
	families, err := parser.TextToMetricFamilies(resp.Body)
	if err != nil {
		return r, fmt.Errorf("%s: %w", url, err)
	}
	value := func(name string) float64 {
		var sum float64
		for _, m := range families[name].GetMetric() {
			sum += m.GetGauge().GetValue() + m.GetCounter().GetValue() + m.GetUntyped().GetValue()
		}
		return sum
	}
	r.Bytes, r.MaxBytes = value("distbuild_trove_store_bytes"), value("distbuild_trove_store_max_bytes")
	r.Blobs, r.Manifests = value("distbuild_trove_store_blobs"), value("distbuild_trove_store_manifests")
	r.Evictions, r.EvictedBytes = value("distbuild_trove_evictions_total"), value("distbuild_trove_evicted_bytes_total")
	r.BlobsReceived, r.BlobsServed = value("distbuild_trove_blobs_received_total"), value("distbuild_trove_blobs_sent_total")
	return r, nil
}

// counterValue reads one of the controller's own counters.
func counterValue(c prometheus.Counter) float64 {
	var m dto.Metric
	if err := c.Write(&m); err != nil {
		return 0
	}
	return m.GetCounter().GetValue()
}

func (d *dashboard) cache(w http.ResponseWriter, r *http.Request) {
	hits, misses := counterValue(d.c.metrics.cacheHits), counterValue(d.c.metrics.cacheMisses)
	data := map[string]any{"Title": "Cache", "Hits": hits, "Misses": misses, "TroveURL": d.opts.TroveMetrics}
	if hits+misses > 0 {
		data["Rated"], data["HitRate"] = true, hits/(hits+misses)
	}
	if d.opts.TroveMetrics != "" {
		reading, err := d.readTrove(r.Context())
		if err != nil {
			data["TroveError"] = err.Error()
		} else {
			data["Trove"] = reading
			if reading.MaxBytes > 0 {
				data["Fill"] = reading.Bytes / reading.MaxBytes
			}
		}
		d.trove.mu.Lock()
		data["Evictions"] = append([]evictionSpan(nil), d.trove.spans...)
		if n := len(d.trove.readings); n > 0 {
			data["Since"] = d.trove.readings[0].At
		}
		d.trove.mu.Unlock()
	}
	d.render(w, "cache", data)
}
