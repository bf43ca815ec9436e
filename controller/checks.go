package controller

import (
	"context"
	"fmt"
	"iter"
	"path"
	"slices"
	"strings"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"distbuild/definitions"
	"distbuild/digest"
	"distbuild/internal/checkreport"
	pb "distbuild/proto/distbuild/v1"
	"distbuild/scheduler"
)

// Reproducibility checks. A check is a task of its own in the scheduler,
// keyed "check:" + the checked step's cache key and depending on that step:
// once the step's artifact is in the cache, a worker other than the one
// that built it builds the step again (a check job) and compares. It is
// shown to people as a step named "<step>.check" of kind CHECK. Its result
// is recorded per cache key, in memory and in the state database, so
// Status shows it for the step in any later build.
//
// A build checks the steps its request names (initiator build --check)
// and those Config.RequireReproducible matches; for the latter, whatever
// depends on the step waits for its check, so nothing is built on an
// artifact that a second worker could not reproduce.

// checkKeyPrefix starts the scheduler key of every check task.
const checkKeyPrefix = "check:"

func checkKey(stepKey string) string { return checkKeyPrefix + stepKey }

// checkName is the name a check is shown by.
func checkName(step string) string { return step + ".check" }

// maxCheckDifferences and maxCheckText bound what a worker's check result
// may put into the controller's memory and database.
const (
	maxCheckDifferences = 200
	maxCheckText        = 1024
)

// planChecks picks the steps a build checks: those the request names
// (every chunk of the build when it names none), and every step the
// controller's --require-reproducible patterns match, which gate their
// dependents. A named step that is not part of the build is an error.
func (c *Controller) planChecks(req *pb.StartBuild, p *plan) error {
	p.gated = map[*definitions.Step]bool{}
	inBuild := map[string]*definitions.Step{}
	for _, s := range p.steps {
		inBuild[s.Name] = s
		for _, glob := range c.cfg.RequireReproducible {
			if ok, _ := path.Match(glob, s.Name); ok {
				p.gated[s] = true
			}
		}
	}
	p.asked = map[*definitions.Step]bool{}
	want := p.asked
	if req.Check {
		var unknown []string
		for _, name := range req.CheckSteps {
			if s := inBuild[name]; s != nil {
				want[s] = true
			} else {
				unknown = append(unknown, name)
			}
		}
		if len(unknown) > 0 {
			return fmt.Errorf("cannot check %s: not a step of this build of %s", strings.Join(unknown, ", "), req.MorphologyPath)
		}
		if len(req.CheckSteps) == 0 {
			for _, s := range p.steps {
				if s.Kind == definitions.KindChunk {
					want[s] = true
				}
			}
		}
	}
	for _, s := range p.steps {
		if want[s] || p.gated[s] {
			if inBuild[checkName(s.Name)] != nil {
				return fmt.Errorf("cannot check %s: its check would be called %s, which is the name of another step", s.Name, checkName(s.Name))
			}
			p.checks = append(p.checks, s)
		}
	}
	return nil
}

// checkBase is what a build must know, before it is scheduled, about a
// checked step whose artifact is cached: who built it (whom the check must
// avoid) and its artifacts (to tell whether a recorded check applies).
type checkBase struct {
	builtBy string
	cached  []*pb.ArtifactDigest
}

// checkBases reads, outside the lock, the manifests of the cached steps a
// plan checks. A manifest that cannot be read leaves the builder unknown:
// the check may then land anywhere, and says so.
func (c *Controller) checkBases(ctx context.Context, p *plan, isMissing map[digest.CacheKey]bool) map[*definitions.Step]checkBase {
	out := map[*definitions.Step]checkBase{}
	for _, s := range p.checks {
		if isMissing[s.CacheKey] {
			continue
		}
		m, err := c.cfg.Cache.GetManifest(ctx, s.CacheKey)
		if err != nil {
			c.log.Warn("cannot read the manifest of a step to check; its builder is unknown", "step", s.Name, "error", err)
			continue
		}
		base := checkBase{builtBy: m.Worker}
		for _, f := range m.Files {
			if checkreport.Compares(f.Role) {
				base.cached = append(base.cached, &pb.ArtifactDigest{Name: f.Name, Digest: f.Digest})
			}
		}
		out[s] = base
	}
	return out
}

// appliesTo reports whether a recorded check compared with the artifacts
// now cached.
func appliesTo(r *pb.CheckResult, cached []*pb.ArtifactDigest) bool {
	return r != nil && len(cached) > 0 && slices.EqualFunc(r.Cached, cached, func(a, b *pb.ArtifactDigest) bool { return proto.Equal(a, b) })
}

// checkSpec is the scheduler task that checks step s.
// A step the build needs checked only by policy, whose cached artifact a
// recorded check found reproducible, is done already; one it found to
// differ fails the build before anything runs. Called with c.mu held.
func (c *Controller) checkSpec(p *plan, s *definitions.Step, base checkBase, haveBase bool, inputs iter.Seq[string], platform scheduler.Platform) (scheduler.TaskSpec, error) {
	key := s.CacheKey.String()
	ref := &pb.ArtifactRef{StepName: checkName(s.Name), Kind: pb.StepKind_STEP_KIND_CHECK, CacheKey: key}
	spec := scheduler.TaskSpec{
		Key: checkKey(key), Name: ref.StepName, Deps: []string{key}, Platform: platform,
		Duration: c.expected(s),
		Payload:  &task{step: s, plan: p, ref: ref, check: &checkTask{builtBy: base.builtBy}, staging: inputs},
		Inputs: func(yield func(string) bool) {
			for k := range inputs {
				if !yield(k) {
					return
				}
			}
			yield(key)
		},
	}
	if base.builtBy != "" {
		spec.Excluded = []string{base.builtBy}
	}
	if p.asked[s] {
		return spec, nil // asked for: always checked afresh
	}
	if rec := c.checks[key]; haveBase && appliesTo(rec, base.cached) {
		switch rec.Outcome {
		case pb.CheckOutcome_CHECK_OUTCOME_REPRODUCIBLE:
			spec.Cached = true
		case pb.CheckOutcome_CHECK_OUTCOME_DIFFERS:
			return spec, fmt.Errorf("step %s is not reproducible, and this controller requires it to be (--require-reproducible): %s checked the artifact %s built and found %d difference(s), the first %s",
				s.Name, rec.CheckedBy, orUnknownWorker(rec.BuiltBy), checkreport.Count(rec), firstDifference(rec))
		}
	}
	return spec, nil
}

// checkTask is a check's part of a task's payload.
type checkTask struct {
	// builtBy is the worker whose artifact is checked, once known.
	builtBy string
}

// isCheck reports whether t is a check.
func isCheck(t *scheduler.Task) bool { return t.Payload.(*task).check != nil }

// learnBuilder tells the check of a step that has just been built who
// built it, before anything can dispatch the check. Called with c.mu
// held, as the step's StepFinished event is applied.
func (c *Controller) learnBuilder(t *task) {
	ck := c.sched.Task(checkKey(t.ref.CacheKey))
	if ck == nil || t.worker == "" {
		return
	}
	ck.Payload.(*task).check.builtBy = t.worker
	c.sched.Exclude(ck.Key, t.worker)
}

// checkDone settles a check job its worker reports done: the result is
// recorded and published, and the check passes when the step is
// reproducible and fails (as a build failure, not retried) otherwise.
// Called with c.mu held.
func (c *Controller) checkDone(s *session, t *scheduler.Task, js *pb.JobStatus) {
	p := t.Payload.(*task)
	res := js.GetCheck()
	switch {
	case res == nil || res.CacheKey != p.ref.CacheKey:
		c.apply(c.sched.Failed(js.JobId, scheduler.Failure{Kind: scheduler.SetupFailure, Worker: s.name, Untrusted: true,
			Reason: "worker " + s.name + " reported a check done without the check's result"}))
		return
	case res.Outcome == pb.CheckOutcome_CHECK_OUTCOME_UNSPECIFIED || pb.CheckOutcome_name[int32(res.Outcome)] == "":
		c.apply(c.sched.Failed(js.JobId, scheduler.Failure{Kind: scheduler.SetupFailure, Worker: s.name, Untrusted: true,
			Reason: fmt.Sprintf("worker %s reported a check with no valid outcome (%d)", s.name, res.Outcome)}))
		return
	}
	res = boundedCheck(res)
	res.CheckedBy, res.BuiltBy, res.StepName = s.name, p.check.builtBy, p.step.Name
	p.worker, p.log, p.profile = s.name, res.Log, boundedProfile(js.GetProfile())
	c.recordCheck(c.sched.WantedBy(t), t, res)
	if res.Outcome == pb.CheckOutcome_CHECK_OUTCOME_REPRODUCIBLE {
		c.apply(c.sched.Finished(js.JobId))
		return
	}
	c.apply(c.sched.Failed(js.JobId, scheduler.Failure{Kind: scheduler.BuildFailure, Worker: s.name, Reason: checkFailure(res)}))
}

// checkFailed records a check whose rebuild failed for good as not
// checked, telling the builds that wanted it (taken before the failure
// ended any of them), before the failure's events are applied. Called
// with c.mu held.
func (c *Controller) checkFailed(wanted []*scheduler.Build, t *scheduler.Task, worker, reason string) {
	if t.State() != scheduler.Failed {
		return
	}
	p := t.Payload.(*task)
	c.recordCheck(wanted, t, &pb.CheckResult{CacheKey: p.ref.CacheKey, StepName: p.step.Name, Outcome: pb.CheckOutcome_CHECK_OUTCOME_NOT_CHECKED,
		Reason: "the rebuild failed: " + reason, BuiltBy: p.check.builtBy, CheckedBy: worker, Log: p.log})
}

// giveUpUnrunnableChecks ends the checks that no connected worker may
// run, because the only workers that could built the artifact: waiting
// would hang the build. A farm that starts workers on demand
// (Config.Scale) waits for one instead, and so does a controller still
// within the resume grace after a restart, while workers reconnect.
// Called with c.mu held, after a dispatch.
func (c *Controller) giveUpUnrunnableChecks() {
	if c.cfg.Scale != nil || !c.anyChecks() {
		return
	}
	if wait := c.resumeUntil.Sub(c.cfg.Clock.Now()); wait > 0 {
		if !c.checksAwaitWorkers {
			c.checksAwaitWorkers = true
			c.cfg.Clock.AfterFunc(wait, func() {
				c.mu.Lock()
				defer c.mu.Unlock()
				c.dispatch()
			})
		}
		return
	}
	for _, t := range c.sched.Ready() {
		if !isCheck(t) || c.sched.CouldRun(t) {
			continue
		}
		p := t.Payload.(*task)
		reason := "no connected worker other than " + orUnknownWorker(p.check.builtBy) + ", which built it, can build it again"
		c.recordCheck(c.sched.WantedBy(t), t, &pb.CheckResult{CacheKey: p.ref.CacheKey, StepName: p.step.Name, Outcome: pb.CheckOutcome_CHECK_OUTCOME_NOT_CHECKED,
			Reason: reason, BuiltBy: p.check.builtBy})
		c.apply(c.sched.GiveUp(t.Key, scheduler.Failure{Kind: scheduler.BuildFailure, Reason: "not checked: " + reason}))
	}
}

// anyChecks reports whether a live build may hold a check. Called with
// c.mu held.
func (c *Controller) anyChecks() bool {
	for _, id := range c.order {
		if b := c.builds[id]; b.live() && b.plan != nil && len(b.plan.checks) > 0 {
			return true
		}
	}
	return false
}

// recordCheck keeps a check's result for its cache key, durably, and tells
// builds, those that want the check. Called with c.mu held.
func (c *Controller) recordCheck(builds []*scheduler.Build, t *scheduler.Task, res *pb.CheckResult) {
	res.Checked = timestamppb.New(c.cfg.Clock.Now())
	p := t.Payload.(*task)
	if len(builds) > 0 {
		res.BuildId = builds[0].ID
	}
	c.checks[p.ref.CacheKey] = res
	c.journal.enqueue(journalEntry{check: res})
	c.metrics.checks.WithLabelValues(checkreport.Word(res)).Inc()
	stepRef := &pb.ArtifactRef{StepName: p.step.Name, Kind: stepKinds[p.step.Kind], CacheKey: p.ref.CacheKey}
	for _, sb := range builds {
		if b := c.builds[sb.ID]; b != nil {
			b.log.publish(&pb.BuildEvent{Event: &pb.BuildEvent_StepChecked{StepChecked: &pb.StepChecked{Step: stepRef, Result: res}}})
		}
	}
	c.log.Info("step checked", "step", p.step.Name, "outcome", checkreport.Summary(res), "built_by", res.BuiltBy, "checked_by", res.CheckedBy)
}

// boundedCheck copies a worker's result, cut to what the controller
// keeps.
func boundedCheck(res *pb.CheckResult) *pb.CheckResult {
	res = proto.Clone(res).(*pb.CheckResult)
	if n := len(res.Differences); n > maxCheckDifferences {
		res.MoreDifferences += int32(n - maxCheckDifferences)
		res.Differences = res.Differences[:maxCheckDifferences]
	}
	if res.MoreDifferences < 0 {
		res.MoreDifferences = 0
	}
	for _, d := range res.Differences {
		d.Artifact, d.Path, d.What = clip(d.Artifact), clip(d.Path), clip(d.What)
		d.Cached, d.Rebuilt = clip(d.Cached), clip(d.Rebuilt)
	}
	res.Reason = clip(res.Reason)
	return res
}

func clip(s string) string {
	if len(s) > maxCheckText {
		return s[:maxCheckText] + "..."
	}
	return s
}

// checkFailure is the reason a check that did not pass fails its task.
func checkFailure(res *pb.CheckResult) string {
	if res.Outcome == pb.CheckOutcome_CHECK_OUTCOME_DIFFERS {
		return fmt.Sprintf("not reproducible: the rebuild on %s differs from the artifact %s built in %d way(s), the first %s",
			res.CheckedBy, orUnknownWorker(res.BuiltBy), checkreport.Count(res), firstDifference(res))
	}
	return checkreport.Summary(res)
}

func firstDifference(res *pb.CheckResult) string {
	if len(res.Differences) == 0 {
		return "(none listed)"
	}
	return checkreport.Difference(res.Differences[0])
}

func orUnknownWorker(w string) string {
	if w == "" {
		return "an unknown worker"
	}
	return w
}
