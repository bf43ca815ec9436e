package initiator

import (
	"context"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"distbuild/internal/checkreport"
	pb "distbuild/proto/distbuild/v1"
)

const statusAbout = `Shows a build at a glance and one line per step: its state, the worker
running or last running it, its attempts so far, how long its last attempt
that ended took and where that time went (each phase on its worker: fetch,
stage, configure, build, test, install, strip, pack, upload) and, when it
failed, why. CHECK is the latest reproducibility check of the step's
cache key, by any build (initiator build --check): reproducible, differs
or not-checked; the differences of those that differ are listed below the
table. --json prints the controller's whole answer, with each step's
resource use and CPU and memory series.
Exit status: 0 when the build succeeded or is still resolving or running;
1 when it failed or was cancelled (and when the build cannot be found).`

func runStatus(env *Env, args []string) int {
	cmd := newControllerCommand(env, "status", "[flags] BUILD_ID", statusAbout, 1)
	asJSON := jsonFlag(cmd.fs)
	return cmd.run(env, args, func(ctx context.Context, client *controllerClient) (int, error) {
		resp, err := client.status(ctx, cmd.fs.Arg(0))
		if err != nil {
			return 0, err
		}
		if *asJSON {
			err = writeJSON(env.Stdout, resp)
		} else {
			err = writeStatus(env.Stdout, resp, time.Now())
		}
		if err != nil {
			return 0, err
		}
		switch resp.GetBuild().GetState() {
		case pb.BuildState_BUILD_STATE_FAILED, pb.BuildState_BUILD_STATE_CANCELLED:
			return ExitFailure, nil
		}
		return ExitOK, nil
	})
}

// writeStatus prints the build's summary, then a table of its steps in
// build order.
func writeStatus(w io.Writer, s *pb.StatusResponse, now time.Time) error {
	b, req := s.GetBuild(), s.GetBuild().GetRequest()
	tw := tabwriter.NewWriter(w, 0, 0, 1, ' ', 0)
	fmt.Fprintf(tw, "build:\t%s\n", b.GetBuildId())
	fmt.Fprintf(tw, "state:\t%s\n", buildState(b.GetState()))
	system := req.GetMorphologyPath()
	if len(req.GetComponents()) > 0 {
		system += " (partial: " + strings.Join(req.GetComponents(), ", ") + ")"
	}
	fmt.Fprintf(tw, "system:\t%s\n", system)
	fmt.Fprintf(tw, "commit:\t%s in %s\n", req.GetCommit(), req.GetRepoUrl())
	submitted := age(b, now) + " ago"
	if b.GetSubmittedBy() != "" {
		submitted += " by " + b.GetSubmittedBy()
	}
	fmt.Fprintf(tw, "submitted:\t%s\n", submitted)
	ran := took(b, now)
	if !buildEnded(b.GetState()) {
		ran += " so far"
	}
	fmt.Fprintf(tw, "took:\t%s\n", ran)
	if b.GetTotalSteps() == 0 {
		fmt.Fprintf(tw, "steps:\tnone resolved\n")
	} else {
		fmt.Fprintf(tw, "steps:\t%s finished, %d failed\n", stepCounts(b), b.GetFailedSteps())
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if len(s.GetSteps()) == 0 {
		return nil
	}
	fmt.Fprintln(w)
	tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "STEP\tSTATE\tWORKER\tATTEMPTS\tTOOK\tCHECK\tPHASES\tREASON")
	for _, st := range s.GetSteps() {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%s\t%s\t%s\t%s\n", st.GetStep().GetStepName(), stepState(st.GetState()), stepWorker(st), st.GetAttempts(),
			stepTook(st), orDash(checkreport.Word(st.GetCheck())), phases(st.GetProfile()), oneLine(st.GetReason()))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	return writeDifferences(w, s.GetSteps())
}

// writeDifferences lists what the checks of steps that are not
// reproducible found, each step once (a check step shares its step's
// record).
func writeDifferences(w io.Writer, steps []*pb.StepStatus) error {
	for _, st := range steps {
		r := st.GetCheck()
		if r.GetOutcome() != pb.CheckOutcome_CHECK_OUTCOME_DIFFERS || st.GetStep().GetKind() == pb.StepKind_STEP_KIND_CHECK {
			continue
		}
		fmt.Fprintf(w, "\n%s: %s (built by %s, rebuilt on %s)\n", st.GetStep().GetStepName(), checkreport.Summary(r), orUnknown(r.GetBuiltBy()), orUnknown(r.GetCheckedBy()))
		for _, d := range r.GetDifferences() {
			if _, err := fmt.Fprintf(w, "  %s\n", checkreport.Difference(d)); err != nil {
				return err
			}
		}
		if r.GetMoreDifferences() > 0 {
			fmt.Fprintf(w, "  ... and %d more\n", r.GetMoreDifferences())
		}
	}
	return nil
}

// stepTook is how long the step's last attempt that ended ran, or "-".
func stepTook(st *pb.StepStatus) string {
	if st.GetDuration() == nil {
		return "-"
	}
	return shortDuration(st.GetDuration().AsDuration())
}

// phases lists where a step's time went, e.g. "fetch 0.2s, build 12.1s",
// or "-" when its worker did not say.
func phases(p *pb.StepProfile) string {
	if len(p.GetPhases()) == 0 {
		return "-"
	}
	parts := make([]string, len(p.GetPhases()))
	for i, ph := range p.GetPhases() {
		parts[i] = ph.GetName() + " " + shortDuration(ph.GetDuration().AsDuration())
	}
	return strings.Join(parts, ", ")
}

// shortDuration is a duration to a tenth of a second below a minute, and
// to the second above.
func shortDuration(d time.Duration) string {
	if d < time.Minute {
		return fmt.Sprintf("%.1fs", d.Seconds())
	}
	return d.Round(time.Second).String()
}

// stepWorker names the worker of a step, or says that it was found in the
// cache (finished without running in this build).
func stepWorker(st *pb.StepStatus) string {
	switch {
	case st.GetWorker() != "":
		return st.GetWorker()
	case st.GetState() == pb.StepState_STEP_STATE_FINISHED:
		return "(cached)"
	}
	return "-"
}
