package step

import (
	"context"
	"time"

	"distbuild/gitmirror"
	pb "distbuild/proto/distbuild/v1"
)

// checkout writes the chunk's source, with its submodules, into dir,
// fetching into the worker's git mirrors what they lack, and returns the
// commit's date: the build's SOURCE_DATE_EPOCH.
//
// git is a separate process whose progress cannot be read without changing
// how gitmirror runs it, so progress is judged by its effect: git writes
// what it receives into the mirror (a clone's temporary directory, a
// fetch's pack) as it arrives, and a checkout writes dir. The fetch is
// stopped as stalled when the mirrors and dir together do not change size
// for Config.TransferStallTimeout. This also counts as progress another
// job's fetch into a mirror this one waits for, which is right, since that
// fetch is what it is waiting on; and a server that thinks for longer than
// the limit before sending anything (counting a huge repository) is cut
// off, so the limit must be generous.
func (r *Runner) checkout(ctx context.Context, c *pb.ChunkJob, dir string) (time.Time, error) {
	what := "fetching the source from " + c.RepoUrl
	var date time.Time
	err := watched(ctx, r.cfg.Clock, what, "progress", r.cfg.TransferStallTimeout, func(ctx context.Context, progress func()) error {
		defer watchGrowth(r.cfg.Clock, r.cfg.TransferStallTimeout, progress, func() int64 { return treeSize(r.gitDir, dir) })()
		repo, err := r.git.Ensure(ctx, c.RepoUrl, c.Commit)
		if err != nil {
			return err
		}
		subs := make([]gitmirror.Submodule, len(c.Submodules))
		for i, s := range c.Submodules {
			subs[i] = gitmirror.Submodule{Path: s.Path, URL: s.Url}
		}
		if err := repo.Checkout(ctx, c.Commit, dir, subs); err != nil {
			return err
		}
		date, err = repo.CommitTime(ctx, c.Commit)
		return err
	})
	return date, err
}
