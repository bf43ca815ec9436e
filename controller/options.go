package controller

import (
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/keepalive"
)

// MaxMessageSize bounds every message the controller accepts. The largest
// legitimate ones are workers' state snapshots, far below it; anything
// bigger is refused with ResourceExhausted before it is read into memory.
const MaxMessageSize = 16 << 20

// ServerOptions are the gRPC server options the controller needs: bounded
// messages, and keepalives that notice dead peers behind idle connections.
func ServerOptions() []grpc.ServerOption {
	return []grpc.ServerOption{
		grpc.MaxRecvMsgSize(MaxMessageSize),
		grpc.KeepaliveParams(keepalive.ServerParameters{Time: 30 * time.Second, Timeout: 10 * time.Second}),
		grpc.KeepaliveEnforcementPolicy(keepalive.EnforcementPolicy{MinTime: 10 * time.Second, PermitWithoutStream: true}),
	}
}
