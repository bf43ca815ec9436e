package tarball

import (
	"io/fs"
	"os"
	"path"
	"syscall"
)

// devMajor, devMinor and mkdev convert between Linux's packed dev_t and the
// major and minor numbers a tarball records.
func devMajor(dev uint64) int64 { return int64((dev>>8)&0xfff | (dev>>32)&^0xfff) }

func devMinor(dev uint64) int64 { return int64(dev&0xff | (dev>>12)&^0xff) }

func mkdev(major, minor uint64) uint64 {
	return minor&0xff | (major&0xfff)<<8 | (minor&^0xff)<<12 | (major&^0xfff)<<32
}

// mknod creates a device node or FIFO at name inside root. os.Root has no
// Mknod, so this works relative to the parent directory opened through
// root, which keeps the node inside it.
func mknod(root *os.Root, name string, mode uint32, dev uint64) error {
	dir, err := root.Open(path.Dir(name))
	if err != nil {
		return err
	}
	defer dir.Close()
	if err := syscall.Mknodat(int(dir.Fd()), path.Base(name), mode, int(dev)); err != nil {
		return &fs.PathError{Op: "mknod", Path: name, Err: err}
	}
	return nil
}
