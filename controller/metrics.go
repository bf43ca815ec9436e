package controller

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"

	pb "distbuild/proto/distbuild/v1"
)

// Step outcomes, the values of the outcome label.
const (
	outcomeBuilt        = "built"
	outcomeBuildFailure = "build_failure" // the step's own commands failed
	outcomeSetupFailure = "setup_failure" // the farm failed it (fetch, staging, upload...)
)

// metrics are the controller's Prometheus metrics. What happens on the
// dispatch path is counted there with counters and histograms (atomic
// adds, label values resolved here once); what is a matter of state
// (builds, steps and workers by state) is read from the controller's own
// records when Prometheus scrapes, so keeping it costs nothing between
// scrapes and can never disagree with them.
type metrics struct {
	stepsStarted  prometheus.Counter
	stepsFinished map[string]prometheus.Counter  // by outcome
	stepDuration  map[string]prometheus.Observer // by outcome
	readyToStart  prometheus.Histogram
	retries       prometheus.Counter
	requeues      prometheus.Counter
	rebuilt       prometheus.Counter
	cacheHits     prometheus.Counter
	cacheMisses   prometheus.Counter
	eventsWritten prometheus.Counter
	buildsEnded   *prometheus.CounterVec
	scaleRuns     *prometheus.CounterVec
	checks        *prometheus.CounterVec
}

func newMetrics(reg prometheus.Registerer, c *Controller) *metrics {
	finished := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "distbuild_controller_steps_finished_total",
		Help: "Step attempts that ended, by outcome: built, build_failure (its commands failed) or setup_failure (the farm failed it; retried unless out of attempts).",
	}, []string{"outcome"})
	duration := prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "distbuild_controller_step_duration_seconds",
		Help:    "How long step attempts ran, by outcome (built steps as their workers timed them, failures from dispatch to report).",
		Buckets: prometheus.ExponentialBuckets(0.1, 3, 12), // 0.1s to about 5h
	}, []string{"outcome"})
	m := &metrics{
		stepsStarted: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "distbuild_controller_steps_started_total",
			Help: "Step attempts sent to workers.",
		}),
		stepsFinished: map[string]prometheus.Counter{},
		stepDuration:  map[string]prometheus.Observer{},
		readyToStart: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "distbuild_controller_step_ready_to_start_seconds",
			Help:    "Time from a step becoming ready (its dependencies built) to its dispatch to a worker, waiting for a free slot included.",
			Buckets: prometheus.ExponentialBuckets(0.0005, 4, 12), // 0.5ms to about 35min
		}),
		retries: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "distbuild_controller_step_retries_total",
			Help: "Step attempts that failed for setup reasons and were queued again.",
		}),
		requeues: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "distbuild_controller_step_requeues_total",
			Help: "Running steps queued again because their worker was lost (disconnected or silent past --worker-lease).",
		}),
		rebuilt: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "distbuild_controller_missing_inputs_rebuilt_total",
			Help: "Finished steps built again because a worker staging them found their artifacts gone from the cache (evicted after the build was planned).",
		}),
		cacheHits: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "distbuild_controller_resolve_cache_hits_total",
			Help: "Steps of resolved builds whose artifacts the cache already held.",
		}),
		cacheMisses: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "distbuild_controller_resolve_cache_misses_total",
			Help: "Steps of resolved builds that had to be built.",
		}),
		eventsWritten: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "distbuild_controller_events_written_total",
			Help: "Build events written to the state database.",
		}),
		buildsEnded: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "distbuild_controller_builds_ended_total",
			Help: "Builds that ended, by state: succeeded, failed or cancelled.",
		}, []string{"state"}),
		scaleRuns: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "distbuild_controller_scale_commands_total",
			Help: "Runs of the --scale-command, by action (up, down) and outcome (ok, failed).",
		}, []string{"action", "outcome"}),
		checks: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "distbuild_controller_checks_total",
			Help: "Reproducibility checks that ended, by outcome: reproducible, differs or not-checked (the rebuild failed, the artifact vanished, or no other worker could build it).",
		}, []string{"outcome"}),
	}
	for _, o := range []string{"reproducible", "differs", "not-checked"} {
		m.checks.WithLabelValues(o)
	}
	for _, o := range []string{outcomeBuilt, outcomeBuildFailure, outcomeSetupFailure} {
		m.stepsFinished[o] = finished.WithLabelValues(o)
		m.stepDuration[o] = duration.WithLabelValues(o)
	}
	for _, s := range []pb.BuildState{pb.BuildState_BUILD_STATE_SUCCEEDED, pb.BuildState_BUILD_STATE_FAILED, pb.BuildState_BUILD_STATE_CANCELLED} {
		m.buildsEnded.WithLabelValues(stateLabel(s.String(), "BUILD_STATE_"))
	}
	reg.MustRegister(m.stepsStarted, finished, duration, m.readyToStart, m.retries, m.requeues, m.rebuilt,
		m.cacheHits, m.cacheMisses, m.eventsWritten, m.buildsEnded, m.scaleRuns, m.checks, stateCollector{c})
	return m
}

// stepEnded records a step attempt's end.
func (m *metrics) stepEnded(outcome string, took time.Duration) {
	m.stepsFinished[outcome].Inc()
	if took > 0 {
		m.stepDuration[outcome].Observe(took.Seconds())
	}
}

// stateLabel turns an enum name such as BUILD_STATE_RUNNING into a label
// value such as running.
func stateLabel(name, prefix string) string {
	b := []byte(name[len(prefix):])
	for i, c := range b {
		if 'A' <= c && c <= 'Z' {
			b[i] = c + 'a' - 'A'
		}
	}
	return string(b)
}

var (
	buildsDesc = prometheus.NewDesc("distbuild_controller_builds",
		"Builds the controller lists, by state (ended builds: the newest 1,000).", []string{"state"}, nil)
	stepsDesc = prometheus.NewDesc("distbuild_controller_steps",
		"Steps of live builds not yet built, by state: waiting (for dependencies), ready (queued for a free worker slot), running.", []string{"state"}, nil)
	workersDesc = prometheus.NewDesc("distbuild_controller_workers_connected",
		"Workers connected.", nil, nil)
	slotsDesc = prometheus.NewDesc("distbuild_controller_worker_slots",
		"Slots of the connected workers, by state: free or busy.", []string{"state"}, nil)
)

// stateCollector reads builds, steps and workers by state when Prometheus
// scrapes: one short hold of the controller's lock per scrape, counting
// what is in memory.
type stateCollector struct{ c *Controller }

func (s stateCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- buildsDesc
	ch <- stepsDesc
	ch <- workersDesc
	ch <- slotsDesc
}

func (s stateCollector) Collect(ch chan<- prometheus.Metric) {
	c := s.c
	builds := map[pb.BuildState]int{}
	c.mu.Lock()
	for _, b := range c.builds {
		builds[b.state]++
	}
	steps := c.sched.Count()
	workers := c.sched.Workers()
	var slots, free int
	for _, w := range workers {
		slots += w.Slots
		free += max(w.Free(), 0)
	}
	c.mu.Unlock()
	for v, name := range pb.BuildState_name {
		if v == int32(pb.BuildState_BUILD_STATE_UNSPECIFIED) {
			continue
		}
		ch <- prometheus.MustNewConstMetric(buildsDesc, prometheus.GaugeValue, float64(builds[pb.BuildState(v)]), stateLabel(name, "BUILD_STATE_"))
	}
	ch <- prometheus.MustNewConstMetric(stepsDesc, prometheus.GaugeValue, float64(steps.Waiting), "waiting")
	ch <- prometheus.MustNewConstMetric(stepsDesc, prometheus.GaugeValue, float64(steps.Ready), "ready")
	ch <- prometheus.MustNewConstMetric(stepsDesc, prometheus.GaugeValue, float64(steps.Running), "running")
	ch <- prometheus.MustNewConstMetric(workersDesc, prometheus.GaugeValue, float64(len(workers)))
	ch <- prometheus.MustNewConstMetric(slotsDesc, prometheus.GaugeValue, float64(free), "free")
	ch <- prometheus.MustNewConstMetric(slotsDesc, prometheus.GaugeValue, float64(slots-free), "busy")
}
