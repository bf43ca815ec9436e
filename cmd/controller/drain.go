package main

import (
	"context"
	"fmt"
	"io"
	"time"

	"github.com/spf13/pflag"
	"google.golang.org/grpc"
	"google.golang.org/grpc/status"

	"distbuild/internal/credentials"
	"distbuild/internal/tlsflags"
	pb "distbuild/proto/distbuild/v1"
)

const drainAbout = `Usage: controller workers drain NAME [flags]

Asks the running controller to drain a connected worker: it gets no new
steps, finishes and reports the ones it holds, and then stops (exit 0), as
on SIGTERM. For maintenance of a worker's machine without wasting the work
under way. Needs a user's token when the controller requires one.

Flags:
`

// drainWorker runs 'controller workers drain NAME'.
func drainWorker(args []string, stdout, stderr io.Writer) int {
	fs := pflag.NewFlagSet("controller workers drain", pflag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprint(stderr, drainAbout+fs.FlagUsages()) }
	addr := fs.String("controller", "127.0.0.1:7878", "the controller's address for initiators (its --listen)")
	tokenFile := fs.String("token-file", "", "file holding a user's token, when the controller requires one")
	var tls tlsflags.Client
	tls.Register(fs, "", "the controller")
	if err := fs.Parse(args); err != nil {
		if err == pflag.ErrHelp {
			return 0
		}
		fmt.Fprintf(stderr, "controller workers drain: %v (see controller workers drain --help)\n", err)
		return 2
	}
	if fs.NArg() != 2 || fs.Arg(0) != "drain" {
		fs.Usage()
		return 2
	}
	name := fs.Arg(1)
	opts, err := credentials.DialOptions(tls, *tokenFile)
	if err != nil {
		fmt.Fprintf(stderr, "controller workers drain: %v\n", err)
		return 2
	}
	conn, err := grpc.NewClient(*addr, opts...)
	if err != nil {
		fmt.Fprintf(stderr, "controller workers drain: bad --controller %q: %v\n", *addr, err)
		return 2
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	resp, err := pb.NewBuildServiceClient(conn).DrainWorker(ctx, &pb.DrainWorkerRequest{Name: name})
	if err != nil {
		fmt.Fprintf(stderr, "controller workers drain: %s\n", status.Convert(err).Message())
		return 1
	}
	fmt.Fprintf(stdout, "worker %s is draining: it finishes %d job(s) it holds, takes no new ones, then stops\n", name, resp.GetJobs())
	return 0
}
