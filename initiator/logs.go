package initiator

import (
	"context"
	"errors"
	"fmt"

	"google.golang.org/grpc/status"

	"distbuild/artifactcache"
	"distbuild/digest"
	"distbuild/internal/checkreport"
	pb "distbuild/proto/distbuild/v1"
)

const logsAbout = `Prints a step's complete log from the artifact cache, where the worker that
ran it stored it, failed attempts included; nothing needs to have followed
the build. A step that was retried shows its last attempt that ended; a step
the build found in the cache shows the log of the build that made it. A
step that has not ended yet has no log: follow it with initiator attach.
--diffoscope prints instead diffoscope's report from the latest
reproducibility check of the step's cache key (initiator build --check),
when the checking worker had diffoscope and the artifacts differed.`

func runLogs(env *Env, args []string) int {
	cmd := newControllerCommand(env, "logs", "[flags] BUILD_ID STEP", logsAbout, 2)
	cacheAddr := cacheFlag(cmd.fs)
	diffoscope := cmd.fs.Bool("diffoscope", false, "print diffoscope's report from the step's latest reproducibility check instead of its log")
	return cmd.run(env, args, func(ctx context.Context, client *controllerClient) (int, error) {
		id, name := cmd.fs.Arg(0), cmd.fs.Arg(1)
		resp, err := client.status(ctx, id)
		if err != nil {
			return 0, err
		}
		var st *pb.StepStatus
		for _, s := range resp.GetSteps() {
			if s.GetStep().GetStepName() == name {
				st = s
			}
		}
		if st == nil {
			return 0, fmt.Errorf("build %s has no step %q (initiator status %s lists its steps)", id, name, id)
		}
		cache, err := dialCache(*cacheAddr)
		if err != nil {
			return 0, fmt.Errorf("artifact cache address %q: %w", *cacheAddr, err)
		}
		defer cache.Close()
		if *diffoscope {
			report := st.GetCheck().GetDiffoscope()
			if report == nil {
				return 0, fmt.Errorf("step %s has no diffoscope report: its latest check (%s) found nothing to compare in detail, or its worker has no diffoscope", name, orUnknown(checkreport.Word(st.GetCheck())))
			}
			if err := writeLog(ctx, cache, report, env.Stdout); err != nil {
				return 0, fmt.Errorf("cannot fetch diffoscope's report on %s from the artifact cache at %s: %s", name, *cacheAddr, status.Convert(err).Message())
			}
			return ExitOK, nil
		}
		log, err := stepLog(ctx, cache, id, st)
		if err != nil {
			return 0, err
		}
		switch s := st.GetState(); s {
		case pb.StepState_STEP_STATE_FINISHED, pb.StepState_STEP_STATE_FAILED:
		case pb.StepState_STEP_STATE_CANCELLED:
			fmt.Fprintf(env.Stderr, "initiator logs: step %s was cancelled with its build; this is what it printed until then\n", name)
		default:
			fmt.Fprintf(env.Stderr, "initiator logs: step %s is %s (attempt %d); this is the log of its last failed attempt\n", name, stepState(s), st.GetAttempts())
		}
		if err := writeLog(ctx, cache, log, env.Stdout); err != nil {
			return 0, fmt.Errorf("cannot fetch the log of %s from the artifact cache at %s: %s", name, *cacheAddr, status.Convert(err).Message())
		}
		return ExitOK, nil
	})
}

// stepLog finds the digest of a step's log, or says why there is none. The
// build records the log of every attempt that ended; a step found in the
// cache did not run in this build, so its log is the one its manifest
// lists.
func stepLog(ctx context.Context, cache *artifactcache.Client, buildID string, st *pb.StepStatus) (*pb.Digest, error) {
	name := st.GetStep().GetStepName()
	if st.GetLog() != nil {
		return st.GetLog(), nil
	}
	switch st.GetState() {
	case pb.StepState_STEP_STATE_WAITING, pb.StepState_STEP_STATE_READY, pb.StepState_STEP_STATE_RUNNING:
		return nil, fmt.Errorf("step %s of build %s has no log yet: it is %s; follow its output with: initiator attach %s", name, buildID, stepState(st.GetState()), buildID)
	case pb.StepState_STEP_STATE_CANCELLED:
		return nil, fmt.Errorf("step %s of build %s was cancelled with its build and its worker stored no log of it (the worker may not have reported since; try again in a moment)", name, buildID)
	case pb.StepState_STEP_STATE_SKIPPED:
		return nil, fmt.Errorf("step %s of build %s never ran, so it has no log: it was skipped because a step it needs failed or the build ended first", name, buildID)
	case pb.StepState_STEP_STATE_FAILED:
		return nil, fmt.Errorf("step %s of build %s failed before its log could be stored: %s", name, buildID, oneLine(st.GetReason()))
	case pb.StepState_STEP_STATE_FINISHED:
		if st.GetWorker() == "" {
			return manifestLog(ctx, cache, st.GetStep())
		}
	}
	return nil, fmt.Errorf("step %s of build %s stored no log", name, buildID)
}

// manifestLog finds the log in the manifest of an artifact in the cache.
func manifestLog(ctx context.Context, cache *artifactcache.Client, ref *pb.ArtifactRef) (*pb.Digest, error) {
	key, err := digest.ParseCacheKey(ref.GetCacheKey())
	if err != nil {
		return nil, err
	}
	m, err := cache.GetManifest(ctx, key)
	if err != nil {
		return nil, fmt.Errorf("step %s was found in the cache, but its manifest cannot be read: %s", ref.GetStepName(), status.Convert(err).Message())
	}
	for _, f := range m.GetFiles() {
		if f.GetRole() == pb.FileRole_FILE_ROLE_LOG {
			return f.GetDigest(), nil
		}
	}
	return nil, errors.New("step " + ref.GetStepName() + " was found in the cache, but its manifest lists no log")
}
