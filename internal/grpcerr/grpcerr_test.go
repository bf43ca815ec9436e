package grpcerr

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

func TestWrapfKeepsTheCodeAndAddsContext(t *testing.T) {
	for _, tc := range []struct {
		err  error
		want codes.Code
	}{
		{status.Error(codes.NotFound, "no such blob"), codes.NotFound},
		{fmt.Errorf("outer: %w", status.Error(codes.DataLoss, "corrupt")), codes.DataLoss},
		{context.Canceled, codes.Canceled},
		{context.DeadlineExceeded, codes.DeadlineExceeded},
		{errors.New("plain"), codes.Unknown},
	} {
		got := Wrapf(tc.err, "fetch %s", "x")
		if status.Code(got) != tc.want {
			t.Errorf("Wrapf(%v): code %s, want %s", tc.err, status.Code(got), tc.want)
		}
		if msg := status.Convert(got).Message(); len(msg) < len("fetch x: ") || msg[:len("fetch x: ")] != "fetch x: " {
			t.Errorf("Wrapf(%v): message %q does not start with the context", tc.err, msg)
		}
	}
	if Wrapf(nil, "context") != nil {
		t.Error("Wrapf(nil) is not nil")
	}
}
