package step

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"sync"
	"time"

	"distbuild/clock"
	pb "distbuild/proto/distbuild/v1"
)

// output is where a job's commands write: every byte goes to the job's
// stored log (capped by Config.LogLimit, see cappedLog) and to the
// Reporter, which relays it live to the controller. Every line, in both,
// starts with its time from the step's start ("[  12.345s] "), taken when
// the line's first byte arrives, so a log shows where the time went; the
// prefix counts towards the log limit like any other byte. The relay is not capped: the initiator shows the end
// of the relayed output when a step fails, and the controller bounds what
// it queues for each client.
//
// A log that cannot be written fails the job: the first write error is
// kept, every later write fails with it (so a command writing more output
// is stopped), and err reports it, because a command's own exit status
// means little once its output was lost.
type output struct {
	rep   Reporter
	clk   clock.Clock
	start time.Time

	mu     sync.Mutex
	log    *cappedLog
	failed error
	// midLine is set while the last byte written did not end a line, so
	// the next byte continues it rather than starting a stamped line.
	// Stdout and stderr share it: they are one log.
	midLine bool
	stamped []byte // reused buffer for a write with its line stamps
}

// newOutput creates the job's log file at path, capped at limit bytes;
// lines are stamped with their time since start by clk.
func newOutput(path string, limit int64, rep Reporter, clk clock.Clock, start time.Time) (*output, error) {
	f, err := os.Create(path)
	if err != nil {
		return nil, fmt.Errorf("creating the build log: %w", err)
	}
	return &output{rep: rep, clk: clk, start: start, log: newCappedLog(f, limit)}, nil
}

func (o *output) stream(s pb.OutputStream) io.Writer {
	return writerFunc(func(p []byte) (int, error) {
		if len(p) == 0 {
			return 0, nil
		}
		o.mu.Lock()
		defer o.mu.Unlock()
		if o.failed == nil {
			if _, err := o.log.Write(o.stamp(p)); err != nil {
				o.failed = fmt.Errorf("writing the build log: %w", err)
			}
		}
		if o.failed != nil {
			return 0, o.failed
		}
		// Relayed under the lock, so the relay sees lines in the order
		// the log does.
		o.rep.Output(s, o.stamped)
		return len(p), nil
	})
}

// stamp returns p with a time stamp before each line that starts in it.
// The result is valid until the next call. Called with o.mu held.
func (o *output) stamp(p []byte) []byte {
	prefix := fmt.Appendf(nil, "[%8.3fs] ", o.clk.Now().Sub(o.start).Seconds())
	b := o.stamped[:0]
	for len(p) > 0 {
		if !o.midLine {
			b = append(b, prefix...)
		}
		i := bytes.IndexByte(p, '\n')
		if i < 0 {
			b = append(b, p...)
			o.midLine = true
			break
		}
		b = append(b, p[:i+1]...)
		p = p[i+1:]
		o.midLine = false
	}
	o.stamped = b
	return b
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
