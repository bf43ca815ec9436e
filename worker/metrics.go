package worker

import (
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	pb "distbuild/proto/distbuild/v1"
)

// metrics are the session's Prometheus metrics: each job's phases as the
// runner reports them, timed here, so the step runner only reports.
type metrics struct {
	phaseDuration *prometheus.HistogramVec // by phase
	finished      *prometheus.CounterVec   // by outcome
}

func newMetrics(reg prometheus.Registerer, w *Worker) *metrics {
	m := &metrics{
		phaseDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "distbuild_worker_phase_duration_seconds",
			Help:    "How long jobs spent in each phase: fetching_sources, staging, running (the build commands), uploading.",
			Buckets: prometheus.ExponentialBuckets(0.01, 4, 11), // 10ms to about 3h
		}, []string{"phase"}),
		finished: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "distbuild_worker_steps_finished_total",
			Help: "Jobs that ended, by outcome: built, checked (a reproducibility check compared its rebuild) or failed.",
		}, []string{"outcome"}),
	}
	m.finished.WithLabelValues("built")
	m.finished.WithLabelValues("failed")
	m.finished.WithLabelValues("checked")
	reg.MustRegister(m.phaseDuration, m.finished, jobsCollector{w})
	return m
}

// phaseLabel names a phase as metrics do: JOB_PHASE_STAGING is staging.
func phaseLabel(p pb.JobPhase) string {
	return strings.ToLower(strings.TrimPrefix(p.String(), "JOB_PHASE_"))
}

// left records that j leaves its phase now. Called with w.mu held.
func (m *metrics) left(j *job, now time.Time) {
	if !j.phaseSince.IsZero() {
		m.phaseDuration.WithLabelValues(phaseLabel(j.phase)).Observe(now.Sub(j.phaseSince).Seconds())
	}
	j.phaseSince = now
}

var jobsDesc = prometheus.NewDesc("distbuild_worker_jobs",
	"Jobs the worker holds, by phase (done and failed ones until the controller acknowledges them).", []string{"phase"}, nil)

// jobsCollector counts the jobs by phase when Prometheus scrapes.
type jobsCollector struct{ w *Worker }

func (c jobsCollector) Describe(ch chan<- *prometheus.Desc) { ch <- jobsDesc }

func (c jobsCollector) Collect(ch chan<- prometheus.Metric) {
	counts := map[pb.JobPhase]int{}
	c.w.mu.Lock()
	for _, j := range c.w.jobs {
		counts[j.phase]++
	}
	c.w.mu.Unlock()
	for v := range pb.JobPhase_name {
		if p := pb.JobPhase(v); p != pb.JobPhase_JOB_PHASE_UNSPECIFIED {
			ch <- prometheus.MustNewConstMetric(jobsDesc, prometheus.GaugeValue, float64(counts[p]), phaseLabel(p))
		}
	}
}
