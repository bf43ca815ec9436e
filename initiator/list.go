package initiator

import (
	"context"
	"fmt"
	"io"
	"text/tabwriter"
	"time"

	pb "distbuild/proto/distbuild/v1"
)

const listAbout = `Lists the builds the controller knows, newest first: the live ones, or with
--all also those that ended (the controller remembers a limited number).
AGE is the time since the build was accepted, TOOK how long it ran (so far,
while it runs), STEPS its finished steps out of all of them.`

func runList(env *Env, args []string) int {
	fs := newFlags(env, "list", "[flags]", listAbout)
	controller := controllerFlag(fs)
	all := fs.Bool("all", false, "include builds that have ended")
	if ok, status := parseFlags(fs, args); !ok {
		return status
	}
	if fs.NArg() != 0 {
		fs.Usage()
		return ExitUsage
	}
	client, err := dialController(*controller)
	if err != nil {
		return fail(env, "list", err)
	}
	defer client.Close()
	ctx, cancel := context.WithTimeout(context.Background(), rpcTimeout)
	defer cancel()
	resp, err := client.List(ctx, &pb.ListRequest{IncludeEnded: *all})
	if err != nil {
		return fail(env, "list", client.explain(err))
	}
	if len(resp.Builds) == 0 {
		if *all {
			fmt.Fprintln(env.Stdout, "no builds")
		} else {
			fmt.Fprintln(env.Stdout, "no live builds (--all includes ended ones)")
		}
		return ExitOK
	}
	if err := writeList(env.Stdout, resp.Builds, time.Now()); err != nil {
		return fail(env, "list", err)
	}
	return ExitOK
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
