package initiator

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/spf13/pflag"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	pb "distbuild/proto/distbuild/v1"
)

// rpcTimeout bounds one unary call to the controller, so a controller that
// accepts connections but never answers does not hang a script forever.
const rpcTimeout = 30 * time.Second

// controllerClient is a connection to the controller together with its
// address, which every error names: "cannot reach" is only useful when it
// says where.
type controllerClient struct {
	pb.BuildServiceClient
	addr string
	conn *grpc.ClientConn
}

// dialController prepares a connection; nothing is sent until the first call.
func dialController(addr string) (*controllerClient, error) {
	opts, err := dialOptions()
	if err != nil {
		return nil, err
	}
	conn, err := grpc.NewClient(addr, opts...)
	if err != nil {
		return nil, fmt.Errorf("controller address %q: %w", addr, err)
	}
	return &controllerClient{BuildServiceClient: pb.NewBuildServiceClient(conn), addr: addr, conn: conn}, nil
}

func (c *controllerClient) Close() error { return c.conn.Close() }

// controllerCommand is a subcommand that talks to the controller: its
// name, its flags and how many arguments it takes.
type controllerCommand struct {
	fs   *pflag.FlagSet
	name string
	args int
	addr *string
}

// newControllerCommand makes the flag set of a subcommand that talks to
// the controller, with --controller already on it; the caller adds its own
// flags before run.
func newControllerCommand(env *Env, name, synopsis, about string, args int) *controllerCommand {
	fs := newFlags(env, name, synopsis, about)
	return &controllerCommand{fs: fs, name: name, args: args, addr: controllerFlag(fs)}
}

// run is what every such subcommand does around its own work: parse the
// flags (usage and exit 2 for wrong arguments), dial the controller, run
// do, and report its error, explained, as one line naming the command.
// do returns the exit status it wants when it has no error.
func (c *controllerCommand) run(env *Env, args []string, do func(ctx context.Context, client *controllerClient) (int, error)) int {
	if ok, status := parseFlags(c.fs, args); !ok {
		return status
	}
	if c.fs.NArg() != c.args {
		c.fs.Usage()
		return ExitUsage
	}
	client, err := dialController(*c.addr)
	if err != nil {
		return fail(env, c.name, err)
	}
	defer client.Close()
	status, err := do(context.Background(), client)
	if err != nil {
		return fail(env, c.name, client.explain(err))
	}
	return status
}

// unary makes one call to the controller, bounded by rpcTimeout, and
// explains its error.
func unary[Req, Resp any](ctx context.Context, c *controllerClient, call func(context.Context, Req, ...grpc.CallOption) (Resp, error), req Req) (Resp, error) {
	ctx, cancel := context.WithTimeout(ctx, rpcTimeout)
	defer cancel()
	resp, err := call(ctx, req)
	return resp, c.explain(err)
}

// status fetches one build's status.
func (c *controllerClient) status(ctx context.Context, id string) (*pb.StatusResponse, error) {
	return unary(ctx, c, c.Status, &pb.StatusRequest{BuildId: id})
}

// writeJSON prints a response as one JSON document (protojson, indented),
// for scripts.
func writeJSON(w io.Writer, m proto.Message) error {
	data, err := protojson.MarshalOptions{Multiline: true, Indent: "  "}.Marshal(m)
	if err != nil {
		return err
	}
	_, err = fmt.Fprintf(w, "%s\n", data)
	return err
}

// explain turns a gRPC error into one line a user can act on. NotFound and
// InvalidArgument carry the controller's own words (e.g. `no build "x"`);
// anything else says which controller failed. Errors that are not the
// controller's (already explained, or local) are returned as they are.
func (c *controllerClient) explain(err error) error {
	st, ok := status.FromError(err)
	if err == nil || !ok {
		return err
	}
	switch st.Code() {
	case codes.NotFound, codes.InvalidArgument:
		return errors.New(st.Message())
	case codes.Unavailable, codes.DeadlineExceeded:
		return fmt.Errorf("cannot reach the controller at %s: %s", c.addr, st.Message())
	}
	return fmt.Errorf("the controller at %s: %s", c.addr, st.Message())
}
