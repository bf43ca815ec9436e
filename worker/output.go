package worker

import (
	"context"
	"fmt"
	"io"
	"os"
	"sync"

	pb "distbuild/proto/distbuild/v1"
)

// output is where a job's commands write: every byte goes to the job's log
// file (uploaded to the cache when the job ends) and is relayed live to the
// controller.
type output struct {
	w   *Worker
	ctx context.Context
	id  string

	mu  sync.Mutex
	log *os.File
}

func (o *output) stream(s pb.OutputStream) io.Writer {
	return writerFunc(func(p []byte) (int, error) {
		o.mu.Lock()
		_, err := o.log.Write(p)
		o.mu.Unlock()
		if err != nil {
			return 0, fmt.Errorf("writing the build log: %w", err)
		}
		o.w.emit(o.ctx, &pb.WorkRequest{Message: &pb.WorkRequest_Output{Output: &pb.JobOutput{
			JobId: o.id, Stream: s, Data: append([]byte(nil), p...)}}})
		return len(p), nil
	})
}

// note writes a line of the worker's own commentary into the output.
func (o *output) note(format string, args ...any) {
	fmt.Fprintf(o.stream(pb.OutputStream_OUTPUT_STREAM_STDOUT), format+"\n", args...)
}

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(p []byte) (int, error) { return f(p) }
