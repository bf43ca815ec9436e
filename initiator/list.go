package initiator

import (
	"context"
	"fmt"
	"io"
	"text/tabwriter"
	"time"

	"github.com/spf13/pflag"

	pb "distbuild/proto/distbuild/v1"
)

const listAbout = `Lists the builds the controller knows, newest first: the live ones, or with
--all also those that ended (the controller remembers a limited number).
AGE is the time since the build was accepted, TOOK how long it ran (so far,
while it runs), STEPS its finished steps out of all of them.`

func runList(env *Env, args []string) int {
	cmd := newControllerCommand(env, "list", "[flags]", listAbout, 0)
	all := cmd.fs.Bool("all", false, "include builds that have ended")
	asJSON := jsonFlag(cmd.fs)
	return cmd.run(env, args, func(ctx context.Context, client *controllerClient) (int, error) {
		resp, err := unary(ctx, client, client.List, &pb.ListRequest{IncludeEnded: *all})
		switch {
		case err != nil:
			return 0, err
		case *asJSON:
			return ExitOK, writeJSON(env.Stdout, resp)
		case len(resp.Builds) == 0 && *all:
			fmt.Fprintln(env.Stdout, "no builds")
		case len(resp.Builds) == 0:
			fmt.Fprintln(env.Stdout, "no live builds (--all includes ended ones)")
		default:
			return ExitOK, writeList(env.Stdout, resp.Builds, time.Now())
		}
		return ExitOK, nil
	})
}

// jsonFlag adds --json, which prints the controller's answer as one JSON
// document instead of a table.
func jsonFlag(fs *pflag.FlagSet) *bool {
	return fs.Bool("json", false, "print the controller's answer as one JSON document (protobuf JSON mapping), for scripts")
}

// writeList prints builds as a table, in the order given.
func writeList(w io.Writer, builds []*pb.BuildSummary, now time.Time) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "BUILD\tSTATE\tAGE\tTOOK\tSTEPS\tFAILED\tSYSTEM\tCOMMIT")
	for _, b := range builds {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%d\t%s\t%s\n", b.BuildId, buildState(b.State), age(b, now), took(b, now),
			stepCounts(b), b.FailedSteps, b.GetRequest().GetMorphologyPath(), shortCommit(b.GetRequest().GetCommit()))
	}
	return tw.Flush()
}
