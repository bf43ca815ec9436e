package store

import (
	"os"

	"golang.org/x/sys/unix"
)

// startWriteback asks the kernel to begin writing [off, off+n) of f to
// disk now, without waiting for it. An upload does this as it goes, so
// the disk works while the rest arrives and the final fsync waits only
// for the tail, instead of for the whole blob. Failure only loses the head
// start, so it is ignored: the fsync before commit still decides.
func startWriteback(f *os.File, off, n int64) {
	unix.SyncFileRange(int(f.Fd()), off, n, unix.SYNC_FILE_RANGE_WRITE)
}
