package sandbox

import (
	"io"
	"sync"
)

// output passes a command's stdout and stderr to the caller's writers as it
// arrives, one write at a time, and notes every write on active so that a
// stall can be told from a quiet moment.
type output struct {
	mu             sync.Mutex
	active         chan struct{} // one pending note is enough
	stdout, stderr stream
}

// stream is one of a command's output streams.
type stream struct {
	o *output
	w io.Writer
}

func newOutput(stdout, stderr io.Writer) *output {
	o := &output{active: make(chan struct{}, 1)}
	o.stdout = stream{o, orDiscard(stdout)}
	o.stderr = stream{o, orDiscard(stderr)}
	return o
}

func orDiscard(w io.Writer) io.Writer {
	if w == nil {
		return io.Discard
	}
	return w
}

func (s stream) Write(p []byte) (int, error) {
	s.o.mu.Lock()
	defer s.o.mu.Unlock()
	select {
	case s.o.active <- struct{}{}:
	default:
	}
	return s.w.Write(p)
}
