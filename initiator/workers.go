package initiator

import (
	"context"
	"fmt"
	"io"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	pb "distbuild/proto/distbuild/v1"
)

const workersAbout = `Lists the workers connected to the controller now: their slots (free of
all), architecture, tags, the steps they are running (with the builds that
want them) and how long ago the controller last heard from them.`

func runWorkers(env *Env, args []string) int {
	cmd := newControllerCommand(env, "workers", "[flags]", workersAbout, 0)
	asJSON := jsonFlag(cmd.fs)
	return cmd.run(env, args, func(ctx context.Context, client *controllerClient) (int, error) {
		resp, err := unary(ctx, client, client.Workers, &pb.WorkersRequest{})
		switch {
		case err != nil:
			return 0, err
		case *asJSON:
			return ExitOK, writeJSON(env.Stdout, resp)
		case len(resp.Workers) == 0:
			fmt.Fprintln(env.Stdout, "no workers connected")
			return ExitOK, nil
		}
		return ExitOK, writeWorkers(env.Stdout, resp.Workers, time.Now())
	})
}

// writeWorkers prints workers as a table, in the order given.
func writeWorkers(w io.Writer, workers []*pb.WorkerInfo, now time.Time) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "WORKER\tSLOTS\tARCH\tTAGS\tSEEN\tJOBS")
	for _, wk := range workers {
		tags := make([]string, 0, len(wk.Tags))
		for k, v := range wk.Tags {
			tags = append(tags, k+"="+v)
		}
		sort.Strings(tags)
		jobs := make([]string, len(wk.Jobs))
		for i, j := range wk.Jobs {
			jobs[i] = j.StepName
			if len(j.BuildIds) > 0 {
				jobs[i] += " (" + strings.Join(j.BuildIds, ", ") + ")"
			}
		}
		seen := "-"
		if wk.LastSeen != nil {
			seen = roughDuration(now.Sub(wk.LastSeen.AsTime())) + " ago"
		}
		free := fmt.Sprintf("%d/%d free", wk.FreeSlots, wk.Slots)
		if wk.Draining {
			free = "draining"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", wk.Name, free, wk.Arch, orDash(strings.Join(tags, ",")),
			seen, orDash(strings.Join(jobs, ", ")))
	}
	return tw.Flush()
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
