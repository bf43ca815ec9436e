// Package grpcerr adds context to errors without losing their gRPC status
// code, so that a client far from the failure still learns both what went
// wrong (the code it can act on) and where (the message).
package grpcerr

import (
	"fmt"

	"google.golang.org/grpc/status"
)

// Wrapf prefixes err's message with context and keeps its code. Errors
// that carry no status (including context cancellation, which becomes
// Canceled or DeadlineExceeded) are converted first.
func Wrapf(err error, format string, args ...any) error {
	if err == nil {
		return nil
	}
	st, ok := status.FromError(err)
	if !ok {
		st = status.FromContextError(err)
	}
	return status.Errorf(st.Code(), "%s: %s", fmt.Sprintf(format, args...), st.Message())
}
