package store

import (
	"fmt"

	"distbuild/clock"
)

// FlushAccessTimes writes the access times gathered in memory to the index
// in one transaction. It runs periodically and on Close; reads themselves
// only touch memory.
func (s *Store) FlushAccessTimes() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	blobs, manifests := s.cat.takeDirty()
	if len(blobs) == 0 && len(manifests) == 0 {
		return nil
	}
	if err := s.ix.writeAccess(blobs, manifests); err != nil {
		s.cat.markDirty(blobs, manifests)
		s.indexErr = fmt.Errorf("writing the index: %w", err)
		return err
	}
	s.indexErr = nil
	return nil
}

func (s *Store) flushLoop(t clock.Ticker) {
	defer close(s.flushDone)
	defer t.Stop()
	for {
		select {
		case <-s.stopFlush:
			return
		case <-t.C():
			if err := s.FlushAccessTimes(); err != nil {
				s.log.Error("flushing access times failed; will retry", "error", err)
			}
		}
	}
}
