package step

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"

	pb "distbuild/proto/distbuild/v1"
)

// makeDevices creates the device nodes a chunk declares in its DESTDIR, so
// they are packed into its artifact like any installed file.
func makeDevices(destdir string, devices []*pb.DeviceNode) error {
	for _, d := range devices {
		rel := strings.TrimPrefix(filepath.Clean("/"+d.Filename), "/")
		if rel == "" {
			return fmt.Errorf("device %q: not a file name", d.Filename)
		}
		path := filepath.Join(destdir, rel)
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			return err
		}
		mode := d.Permissions & 0o7777
		switch d.Type {
		case "c":
			mode |= syscall.S_IFCHR
		case "b":
			mode |= syscall.S_IFBLK
		default:
			return fmt.Errorf("device %s: type must be c or b", d.Filename)
		}
		if err := syscall.Mknod(path, mode, int(mkdev(d.Major, d.Minor))); err != nil {
			return fmt.Errorf("creating device %s: %w", d.Filename, err)
		}
		if err := os.Lchown(path, int(d.Uid), int(d.Gid)); err != nil {
			return fmt.Errorf("device %s: %w", d.Filename, err)
		}
	}
	return nil
}

// mkdev encodes a device number the way Linux's makedev does.
func mkdev(major, minor uint32) uint64 {
	ma, mi := uint64(major), uint64(minor)
	return (mi & 0xff) | ((ma & 0xfff) << 8) | ((mi &^ 0xff) << 12) | ((ma &^ 0xfff) << 32)
}
