package tarball

import (
	"archive/tar"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"syscall"
	"time"
)

// UnpackOptions says which privileged kinds of entry an unpacking may
// create. Both are off for ordinary staging areas and on only where a
// system image is assembled, so an artifact cannot slip a device or a
// setuid binary into a build.
type UnpackOptions struct {
	// AllowDevices permits character and block device nodes, which give
	// direct access to hardware.
	AllowDevices bool
	// AllowSetuid permits setuid and setgid bits, which let whoever runs a
	// file act as its owner or group.
	AllowSetuid bool
}

// Unpack extracts one tarball into dest, an existing directory that may
// already hold other artifacts: directories they share are merged (the last
// tarball's mode wins), and a file, symlink or node at an entry's path is
// replaced, never written through.
//
// Nothing outside dest is created, changed or followed. Refused with an
// error naming the entry: absolute names or names with ".." components, any
// entry below a symlink, symlinks whose relative target leads out of dest,
// hard links to anything but a regular file inside dest, devices or
// setuid/setgid bits unless opts allow them, and unknown entry types.
// Absolute symlink targets are kept, since inside a root file system they
// name paths within it. Entries before a refused one stay extracted.
//
// Modes and mtimes come from the tarball (except symlink mtimes, which
// os.Root cannot set); ownership is not applied, so files belong to the
// unpacking user.
func Unpack(r io.Reader, dest string, opts UnpackOptions) error {
	root, err := os.OpenRoot(dest)
	if err != nil {
		return fmt.Errorf("unpacking into %s: %w", dest, err)
	}
	defer root.Close()
	u := unpacker{root: root, opts: opts}
	defer u.closeDir()
	tr := tar.NewReader(r)
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return fmt.Errorf("unpacking into %s: reading tarball: %w", dest, err)
		}
		if err := u.extract(hdr, tr); err != nil {
			return fmt.Errorf("unpacking into %s: entry %q: %w", dest, hdr.Name, err)
		}
	}
	if err := u.finishDirs(); err != nil {
		return fmt.Errorf("unpacking into %s: %w", dest, err)
	}
	return nil
}

type unpacker struct {
	root *os.Root
	opts UnpackOptions
	// dir is the directory named dirName, opened through root when an
	// entry in it was last extracted: a tarball lists a directory's
	// entries together, so each of them is created relative to it
	// instead of by a walk from dest, component by component, for every
	// call (os.Root opens each component). dirName was checked by parents
	// when it was opened, and nothing Unpack does removes or replaces a
	// directory, so it stays the real directory it was.
	dir     *os.Root
	dirName string
	// dirs get their modes and mtimes after every entry is written, so a
	// read-only directory can still be filled and its mtime stays put.
	dirs []dirAttrs
}

type dirAttrs struct {
	name  string
	mode  fs.FileMode
	mtime time.Time
}

// extract checks one entry and creates it.
func (u *unpacker) extract(hdr *tar.Header, r io.Reader) error {
	name, err := cleanName(hdr.Name)
	if err != nil {
		return err
	}
	mode := hdr.FileInfo().Mode() & (fs.ModePerm | fs.ModeSetuid | fs.ModeSetgid | fs.ModeSticky)
	if err := u.allowed(hdr.Typeflag, mode); err != nil {
		return err
	}
	if name == "." {
		if hdr.Typeflag == tar.TypeDir {
			return nil // dest itself, which belongs to the caller
		}
		return errors.New("names the destination directory itself")
	}
	e, err := u.in(name)
	if err != nil {
		return err
	}
	switch hdr.Typeflag {
	case tar.TypeDir:
		return u.mkdir(e, mode, hdr.ModTime)
	case tar.TypeReg:
		return u.file(e, mode, hdr.ModTime, r)
	case tar.TypeSymlink:
		return u.symlink(e, hdr.Linkname)
	case tar.TypeLink:
		return u.hardlink(e, hdr.Linkname)
	default:
		return u.node(e, hdr, mode)
	}
}

// at is an entry's path, both as its name within dest (for messages and
// checks) and as its last component within its directory, opened.
type at struct {
	name string
	dir  *os.Root
	base string
}

// in checks that every parent of name is a real directory, creating
// missing ones, and returns name relative to its parent directory.
func (u *unpacker) in(name string) (at, error) {
	dir := path.Dir(name)
	if dir == "." {
		return at{name, u.root, name}, nil
	}
	if u.dir == nil || u.dirName != dir {
		if err := u.parents(dir, true); err != nil {
			return at{}, err
		}
		d, err := u.root.OpenRoot(dir)
		if err != nil {
			return at{}, err
		}
		u.closeDir()
		u.dir, u.dirName = d, dir
	}
	return at{name, u.dir, path.Base(name)}, nil
}

func (u *unpacker) closeDir() {
	if u.dir != nil {
		u.dir.Close()
		u.dir = nil
	}
}

// allowed refuses entry types and modes that opts do not permit.
func (u *unpacker) allowed(typ byte, mode fs.FileMode) error {
	switch typ {
	case tar.TypeDir, tar.TypeReg, tar.TypeSymlink, tar.TypeLink, tar.TypeFifo:
	case tar.TypeChar, tar.TypeBlock:
		if !u.opts.AllowDevices {
			return errors.New("device nodes are refused here (UnpackOptions.AllowDevices is off)")
		}
	default:
		return fmt.Errorf("unsupported entry type %q", typ)
	}
	if mode&(fs.ModeSetuid|fs.ModeSetgid) != 0 && !u.opts.AllowSetuid {
		return fmt.Errorf("setuid/setgid mode %v is refused here (UnpackOptions.AllowSetuid is off)", mode)
	}
	return nil
}

// parents checks that every component of dir is a real directory, creating
// missing ones when create is set. Refusing symlinks here is what stops an
// earlier entry (a -> /etc) from redirecting a later one (a/passwd).
func (u *unpacker) parents(dir string, create bool) error {
	p := "."
	for _, c := range splitPath(dir) {
		p = path.Join(p, c)
		info, err := u.root.Lstat(p)
		switch {
		case errors.Is(err, fs.ErrNotExist) && create:
			if err := u.root.Mkdir(p, 0o755); err != nil {
				return err
			}
		case err != nil:
			return err
		case info.Mode()&fs.ModeSymlink != 0:
			return fmt.Errorf("parent %s is a symlink", p)
		case !info.IsDir():
			return fmt.Errorf("parent %s is not a directory", p)
		}
	}
	return nil
}

func (u *unpacker) mkdir(e at, mode fs.FileMode, mtime time.Time) error {
	info, err := e.dir.Lstat(e.base)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		if err := e.dir.Mkdir(e.base, 0o700); err != nil {
			return err
		}
	case err != nil:
		return err
	case !info.IsDir():
		return fmt.Errorf("%s already exists and is not a directory", e.name)
	}
	u.dirs = append(u.dirs, dirAttrs{e.name, mode, mtime})
	return nil
}

func (u *unpacker) file(e at, mode fs.FileMode, mtime time.Time, r io.Reader) error {
	// O_EXCL: whatever is at name now was not there a moment ago, so
	// nothing (such as a symlink) is written through. Most names are new,
	// so what is there is cleared only when the create finds something.
	create := func() (*os.File, error) {
		return e.dir.OpenFile(e.base, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	}
	f, err := create()
	if errors.Is(err, fs.ErrExist) {
		if err := u.clear(e); err != nil {
			return err
		}
		f, err = create()
	}
	if err != nil {
		return err
	}
	_, err = io.Copy(f, r)
	if err == nil {
		// After writing, which clears setuid and setgid bits.
		err = f.Chmod(mode)
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	return e.dir.Chtimes(e.base, mtime, mtime)
}

func (u *unpacker) symlink(e at, target string) error {
	if err := checkSymlinkTarget(e.name, target); err != nil {
		return err
	}
	if err := u.clear(e); err != nil {
		return err
	}
	return e.dir.Symlink(target, e.base)
}

// hardlink links name to target, an earlier regular file in dest. Links to
// directories or symlinks are refused: tarballs from Pack never have them.
func (u *unpacker) hardlink(e at, target string) error {
	t, err := cleanName(target)
	if err != nil {
		return fmt.Errorf("hard link target %q: %w", target, err)
	}
	if t == "." || t == e.name {
		return fmt.Errorf("hard link target %q is the entry itself or the destination", target)
	}
	if err := u.parents(path.Dir(t), false); err != nil {
		return fmt.Errorf("hard link target %q: %w", target, err)
	}
	info, err := u.root.Lstat(t)
	if err != nil {
		return fmt.Errorf("hard link target: %w", err)
	}
	if !info.Mode().IsRegular() {
		return fmt.Errorf("hard link target %q is not a regular file", target)
	}
	if err := u.clear(e); err != nil {
		return err
	}
	return u.root.Link(t, e.name)
}

// node creates a device or FIFO; allowed has already checked the type.
func (u *unpacker) node(e at, hdr *tar.Header, mode fs.FileMode) error {
	kind := uint32(syscall.S_IFIFO)
	switch hdr.Typeflag {
	case tar.TypeChar:
		kind = syscall.S_IFCHR
	case tar.TypeBlock:
		kind = syscall.S_IFBLK
	}
	if hdr.Devmajor < 0 || hdr.Devminor < 0 {
		return fmt.Errorf("negative device number %d,%d", hdr.Devmajor, hdr.Devminor)
	}
	if err := u.clear(e); err != nil {
		return err
	}
	if err := mknod(e.dir, e.base, kind|0o600, mkdev(uint64(hdr.Devmajor), uint64(hdr.Devminor))); err != nil {
		return err
	}
	return setAttrs(e.dir, e.base, mode, hdr.ModTime)
}

// clear makes way for a non-directory at e: an earlier file, symlink or
// node is removed, an existing directory is refused.
func (u *unpacker) clear(e at) error {
	info, err := e.dir.Lstat(e.base)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return nil
	case err != nil:
		return err
	case info.IsDir():
		return fmt.Errorf("a directory already exists at %s", e.name)
	}
	return e.dir.Remove(e.base)
}

// setAttrs applies mode and mtime to name in dir, which unpack has just
// created, so Chmod, which follows symlinks, never meets one.
func setAttrs(dir *os.Root, name string, mode fs.FileMode, mtime time.Time) error {
	if err := dir.Chmod(name, mode); err != nil {
		return err
	}
	return dir.Chtimes(name, mtime, mtime)
}

// finishDirs applies directory modes and mtimes, deepest last-created
// first, so no directory is closed before its children are done.
func (u *unpacker) finishDirs() error {
	for i := len(u.dirs) - 1; i >= 0; i-- {
		d := u.dirs[i]
		if err := setAttrs(u.root, d.name, d.mode, d.mtime); err != nil {
			return err
		}
	}
	return nil
}
