package step

import (
	"fmt"
	"io"
	"os"
	"sync"

	pb "distbuild/proto/distbuild/v1"
)

// output is where a job's commands write: every byte goes to the job's
// stored log (capped by Config.LogLimit, see cappedLog) and to the
// Reporter, which relays it live to the controller. The relay is not capped: the initiator shows the end
// of the relayed output when a step fails, and the controller bounds what
// it queues for each client.
//
// A log that cannot be written fails the job: the first write error is
// kept, every later write fails with it (so a command writing more output
// is stopped), and err reports it, because a command's own exit status
// means little once its output was lost.
type output struct {
	rep Reporter

	mu     sync.Mutex
	log    *cappedLog
	failed error
}

// newOutput creates the job's log file at path, capped at limit bytes.
func newOutput(path string, limit int64, rep Reporter) (*output, error) {
	f, err := os.Create(path)
	if err != nil {
		return nil, fmt.Errorf("creating the build log: %w", err)
	}
	return &output{rep: rep, log: newCappedLog(f, limit)}, nil
}

func (o *output) stream(s pb.OutputStream) io.Writer {
	return writerFunc(func(p []byte) (int, error) {
		o.mu.Lock()
		if o.failed == nil {
			if _, err := o.log.Write(p); err != nil {
				o.failed = fmt.Errorf("writing the build log: %w", err)
			}
		}
		failed := o.failed
		o.mu.Unlock()
		if failed != nil {
			return 0, failed
		}
		o.rep.Output(s, p)
		return len(p), nil
	})
}

// note writes a line of the worker's own commentary into the output.
func (o *output) note(format string, args ...any) {
	fmt.Fprintf(o.stream(pb.OutputStream_OUTPUT_STREAM_STDOUT), format+"\n", args...)
}

// err is the log's first write error, if any.
func (o *output) err() error {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.failed
}

// close completes the stored log and returns its size. The log is whole
// up to a failed write, so even then what it holds can be stored.
func (o *output) close() (int64, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	size, err := o.log.Close()
	if o.failed == nil && err != nil {
		o.failed = fmt.Errorf("writing the build log: %w", err)
	}
	return size, o.failed
}

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(p []byte) (int, error) { return f(p) }
