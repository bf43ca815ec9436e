package initiator

import (
	"context"
	"errors"
	"fmt"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

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

// status fetches one build's status.
func (c *controllerClient) status(ctx context.Context, id string) (*pb.StatusResponse, error) {
	ctx, cancel := context.WithTimeout(ctx, rpcTimeout)
	defer cancel()
	resp, err := c.Status(ctx, &pb.StatusRequest{BuildId: id})
	return resp, c.explain(err)
}

// explain turns a gRPC error into one line a user can act on. NotFound and
// InvalidArgument carry the controller's own words (e.g. `no build "x"`);
// anything else says which controller failed.
func (c *controllerClient) explain(err error) error {
	if err == nil {
		return nil
	}
	st := status.Convert(err)
	switch st.Code() {
	case codes.NotFound, codes.InvalidArgument:
		return errors.New(st.Message())
	case codes.Unavailable, codes.DeadlineExceeded:
		return fmt.Errorf("cannot reach the controller at %s: %s", c.addr, st.Message())
	}
	return fmt.Errorf("the controller at %s: %s", c.addr, st.Message())
}
