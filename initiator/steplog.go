package initiator

import (
	"context"
	"fmt"
	"io"
	"os"

	"distbuild/artifactcache"
	"distbuild/digest"
	pb "distbuild/proto/distbuild/v1"
)

// writeLog copies a step's log from the cache to w. Workers store every
// attempt's complete log there, failed ones included, while the live
// output a follower receives starts when it attached and may have been
// thinned out by the controller for a follower that read too slowly.
func writeLog(ctx context.Context, cache *artifactcache.Client, log *pb.Digest, w io.Writer) error {
	d, err := digest.FromProto(log)
	if err != nil {
		return err
	}
	return cache.Fetch(ctx, d, w)
}

// markAttempt remembers where the attempt that just started begins in the
// step's log, so that completeLog replaces this attempt's output only and
// keeps the earlier attempts'.
func (w *watcher) markAttempt(step string, f *os.File) {
	if w.fetchLog == nil {
		return
	}
	if fi, err := f.Stat(); err == nil {
		w.attemptAt[step] = fi.Size()
	}
}

// completeLog replaces the output of a step's ended attempt, as far as it
// was seen live, with the attempt's complete log from the cache. It does
// nothing for build, which saw the attempt's output from its start, or when
// no log was stored (a step found in the cache ran in another build). The
// log is fetched before anything is replaced, so a failed fetch leaves the
// live output in place, and says so.
func (w *watcher) completeLog(step string, log *pb.Digest) {
	if w.fetchLog == nil || log == nil {
		return
	}
	f := w.logFile(step)
	if f == nil {
		return
	}
	complete, err := os.CreateTemp("", "distbuild-log-")
	if err != nil {
		fmt.Fprintf(w.env.Stderr, "initiator: %s holds only the output seen live: %v\n", logName(step), err)
		return
	}
	defer os.Remove(complete.Name())
	defer complete.Close()
	if err := w.fetchLog(log, complete); err != nil {
		fmt.Fprintf(w.env.Stderr, "initiator: %s holds only the output seen live: fetching the step's log from the cache: %v\n", logName(step), err)
		return
	}
	_, err = complete.Seek(0, io.SeekStart)
	if err == nil {
		err = f.Truncate(w.attemptAt[step])
	}
	if err == nil {
		_, err = io.Copy(f, complete)
	}
	if err != nil {
		fmt.Fprintf(w.env.Stderr, "initiator: %s may be incomplete: %v\n", logName(step), err)
	}
}
