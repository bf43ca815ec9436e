package initiator

import (
	"context"
	"fmt"

	pb "distbuild/proto/distbuild/v1"
)

const cancelAbout = `Cancels a build and prints its state afterwards. Steps that other builds
also want keep running for them. Exit status 0 when the build is now
cancelled; 1 when it had already succeeded or failed, so there was nothing
to cancel.`

func runCancel(env *Env, args []string) int {
	fs := newFlags(env, "cancel", "[flags] BUILD_ID", cancelAbout)
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
		return fail(env, "cancel", err)
	}
	defer client.Close()
	ctx, cancel := context.WithTimeout(context.Background(), rpcTimeout)
	defer cancel()
	resp, err := client.Cancel(ctx, &pb.CancelRequest{BuildId: fs.Arg(0)})
	if err != nil {
		return fail(env, "cancel", client.explain(err))
	}
	b := resp.GetBuild()
	switch b.GetState() {
	case pb.BuildState_BUILD_STATE_SUCCEEDED, pb.BuildState_BUILD_STATE_FAILED:
		fmt.Fprintf(env.Stdout, "build %s: %s (it had already ended; nothing was cancelled)\n", b.GetBuildId(), buildState(b.GetState()))
		return ExitFailure
	}
	fmt.Fprintf(env.Stdout, "build %s: %s\n", b.GetBuildId(), buildState(b.GetState()))
	return ExitOK
}
