package initiator

import (
	"context"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	pb "distbuild/proto/distbuild/v1"
)

const statusAbout = `Shows a build at a glance and one line per step: its state, the worker
running or last running it, its attempts so far and, when it failed, why.
Exit status: 0 when the build succeeded or is still resolving or running;
1 when it failed or was cancelled (and when the build cannot be found).`

func runStatus(env *Env, args []string) int {
	fs := newFlags(env, "status", "[flags] BUILD_ID", statusAbout)
	controller := controllerFlag(fs)
	if ok, status := parseFlags(fs, args); !ok {
		return status
	}
	if fs.NArg() != 1 {
		fs.Usage()
		return ExitUsage
	}
	client, err := dialController(*controller)
	if err != nil {
		return fail(env, "status", err)
	}
	defer client.Close()
	resp, err := client.status(context.Background(), fs.Arg(0))
	if err != nil {
		return fail(env, "status", err)
	}
	if err := writeStatus(env.Stdout, resp, time.Now()); err != nil {
		return fail(env, "status", err)
	}
	switch resp.GetBuild().GetState() {
	case pb.BuildState_BUILD_STATE_FAILED, pb.BuildState_BUILD_STATE_CANCELLED:
		return ExitFailure
	}
	return ExitOK
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
	fmt.Fprintln(tw, "STEP\tSTATE\tWORKER\tATTEMPTS\tREASON")
	for _, st := range s.GetSteps() {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%s\n", st.GetStep().GetStepName(), stepState(st.GetState()), stepWorker(st), st.GetAttempts(), oneLine(st.GetReason()))
	}
	return tw.Flush()
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
