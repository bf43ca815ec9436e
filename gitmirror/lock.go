package gitmirror

import (
	"context"
	"errors"
	"os"
	"sync"
	"syscall"
	"time"
)

// mirrorLocks serialises clones and fetches of one mirror. Goroutines queue
// on a channel per lock file, so waiting respects their context; the holder
// then takes an flock on the file, which excludes other processes sharing
// the cache directory.
type mirrorLocks struct {
	mu    sync.Mutex
	slots map[string]chan struct{}
}

func newMirrorLocks() *mirrorLocks {
	return &mirrorLocks{slots: make(map[string]chan struct{})}
}

// flockPoll is how often a process waiting on another process's lock
// retries: cross-process contention is rare, and polling keeps the wait
// cancellable.
const flockPoll = 50 * time.Millisecond

// lock waits for the lock named by file, or for ctx to end. It returns the
// function that releases it.
func (l *mirrorLocks) lock(ctx context.Context, file string) (unlock func(), err error) {
	l.mu.Lock()
	slot, ok := l.slots[file]
	if !ok {
		slot = make(chan struct{}, 1)
		l.slots[file] = slot
	}
	l.mu.Unlock()

	select {
	case slot <- struct{}{}:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	f, err := flock(ctx, file)
	if err != nil {
		<-slot
		return nil, err
	}
	return func() {
		f.Close() // releases the flock
		<-slot
	}, nil
}

// flock opens file and takes an exclusive flock on it. The file is never
// deleted, so every process locks the same inode.
func flock(ctx context.Context, file string) (*os.File, error) {
	f, err := os.OpenFile(file, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, err
	}
	for {
		err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
		if err == nil {
			return f, nil
		}
		if !errors.Is(err, syscall.EWOULDBLOCK) && !errors.Is(err, syscall.EINTR) {
			f.Close()
			return nil, err
		}
		select {
		case <-time.After(flockPoll):
		case <-ctx.Done():
			f.Close()
			return nil, ctx.Err()
		}
	}
}
