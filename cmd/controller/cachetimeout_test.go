package main

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// TestACacheCallThatGetsNoAnswerFailsNamingTheCache: a call the cache never
// answers (a partitioned trove) ends after --cache-timeout as Unavailable,
// naming the cache; other errors and the caller's own cancellation pass
// through unchanged.
func TestACacheCallThatGetsNoAnswerFailsNamingTheCache(t *testing.T) {
	limit := 50 * time.Millisecond
	intercept := cacheDeadline("trove:7070", limit)
	hang := func(ctx context.Context, _ string, _, _ any, _ *grpc.ClientConn, _ ...grpc.CallOption) error {
		<-ctx.Done()
		return status.FromContextError(ctx.Err()).Err()
	}
	start := time.Now()
	err := intercept(context.Background(), "/m", nil, nil, nil, hang)
	if status.Code(err) != codes.Unavailable || !strings.Contains(err.Error(), "the artifact cache at trove:7070 did not answer within 50ms") {
		t.Errorf("a call that hangs: %v; want Unavailable naming the cache", err)
	}
	if took := time.Since(start); took > 5*time.Second {
		t.Errorf("the hanging call took %s; want about %s", took, limit)
	}

	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := intercept(ctx, "/m", nil, nil, nil, hang); status.Code(err) != codes.Canceled {
		t.Errorf("a call the caller cancelled: %v; want Canceled", err)
	}
	notFound := status.Error(codes.NotFound, "no such manifest")
	fail := func(context.Context, string, any, any, *grpc.ClientConn, ...grpc.CallOption) error { return notFound }
	if err := intercept(context.Background(), "/m", nil, nil, nil, fail); !errors.Is(err, notFound) {
		t.Errorf("a call that fails: %v; want its own error", err)
	}
}
