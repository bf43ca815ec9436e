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
	cmd := newControllerCommand(env, "cancel", "[flags] BUILD_ID", cancelAbout, 1)
	return cmd.run(env, args, func(ctx context.Context, client *controllerClient) (int, error) {
		resp, err := unary(ctx, client, client.Cancel, &pb.CancelRequest{BuildId: cmd.fs.Arg(0)})
		if err != nil {
			return 0, err
		}
		b := resp.GetBuild()
		switch b.GetState() {
		case pb.BuildState_BUILD_STATE_SUCCEEDED, pb.BuildState_BUILD_STATE_FAILED:
			fmt.Fprintf(env.Stdout, "build %s: %s (it had already ended; nothing was cancelled)\n", b.GetBuildId(), buildState(b.GetState()))
			return ExitFailure, nil
		}
		fmt.Fprintf(env.Stdout, "build %s: %s\n", b.GetBuildId(), buildState(b.GetState()))
		return ExitOK, nil
	})
}
