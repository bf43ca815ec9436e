package tarball

import (
	"archive/tar"
	"bufio"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"io/fs"
	"os"
	"syscall"
	"time"
)

// epoch is every entry's modification time: when a chunk was built is not
// an input of its artifacts, so it must not change their digests.
var epoch = time.Unix(0, 0)

// fileID identifies a file across its hard links.
type fileID struct{ dev, ino uint64 }

// writeTar writes entries as one tarball in outDir, hashing while writing
// so that nothing is held in memory or read twice.
func writeTar(root *os.Root, outDir, name string, entries []entry) (a Artifact, err error) {
	f, err := os.CreateTemp(outDir, "split-*.tar")
	if err != nil {
		return Artifact{}, err
	}
	defer func() {
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			os.Remove(f.Name())
		}
	}()
	hash := sha256.New()
	buf := bufio.NewWriterSize(io.MultiWriter(f, hash), 1<<16)
	tw := tar.NewWriter(buf)
	links := map[fileID]string{}
	for _, e := range entries {
		if err := writeEntry(tw, root, e, links); err != nil {
			return Artifact{}, fmt.Errorf("%s: %w", e.name, err)
		}
	}
	if err := tw.Close(); err != nil {
		return Artifact{}, err
	}
	if err := buf.Flush(); err != nil {
		return Artifact{}, err
	}
	info, err := f.Stat()
	if err != nil {
		return Artifact{}, err
	}
	return Artifact{Name: name, Path: f.Name(), SHA256: hex.EncodeToString(hash.Sum(nil)), Size: info.Size()}, nil
}

// writeEntry writes e's header and, for a regular file, its contents.
// links maps each multiply-linked file already written to its name, so
// later names become hard links to the first one in sorted order.
func writeEntry(tw *tar.Writer, root *os.Root, e entry, links map[fileID]string) error {
	hdr, err := header(root, e, links)
	if err != nil {
		return err
	}
	if err := tw.WriteHeader(hdr); err != nil {
		return err
	}
	if hdr.Typeflag != tar.TypeReg {
		return nil
	}
	f, err := root.OpenFile(e.name, os.O_RDONLY|syscall.O_NOFOLLOW, 0)
	if err != nil {
		return err
	}
	defer f.Close()
	// CopyN fails on a file that shrank since it was listed rather than
	// writing a corrupt entry.
	_, err = io.CopyN(tw, f, hdr.Size)
	return err
}

// header describes e with nothing that varies between builds: owner root
// with no names, a fixed mtime, no access or change times, no extended
// attributes, and permission bits only in the mode.
func header(root *os.Root, e entry, links map[fileID]string) (*tar.Header, error) {
	st, ok := e.info.Sys().(*syscall.Stat_t)
	if !ok {
		return nil, fmt.Errorf("no stat information for %s", e.name)
	}
	mode := e.info.Mode()
	hdr := &tar.Header{Name: e.name, Mode: tarMode(mode), ModTime: epoch, Format: tar.FormatPAX}
	switch mode.Type() {
	case 0:
		id := fileID{uint64(st.Dev), uint64(st.Ino)}
		if first, ok := links[id]; ok {
			hdr.Typeflag, hdr.Linkname = tar.TypeLink, first
			return hdr, nil
		}
		if st.Nlink > 1 {
			links[id] = e.name
		}
		hdr.Typeflag, hdr.Size = tar.TypeReg, e.info.Size()
	case fs.ModeDir:
		hdr.Typeflag, hdr.Name = tar.TypeDir, e.name+"/"
	case fs.ModeSymlink:
		target, err := root.Readlink(e.name)
		if err != nil {
			return nil, err
		}
		hdr.Typeflag, hdr.Linkname = tar.TypeSymlink, target
	case fs.ModeDevice | fs.ModeCharDevice:
		hdr.Typeflag = tar.TypeChar
		hdr.Devmajor, hdr.Devminor = devMajor(uint64(st.Rdev)), devMinor(uint64(st.Rdev))
	case fs.ModeDevice:
		hdr.Typeflag = tar.TypeBlock
		hdr.Devmajor, hdr.Devminor = devMajor(uint64(st.Rdev)), devMinor(uint64(st.Rdev))
	case fs.ModeNamedPipe:
		hdr.Typeflag = tar.TypeFifo
	default:
		return nil, fmt.Errorf("cannot pack file type %v: only files, directories, symlinks, devices and FIFOs belong in an artifact", mode.Type())
	}
	return hdr, nil
}

// tarMode gives the Unix permission bits of m, special bits included.
func tarMode(m fs.FileMode) int64 {
	mode := int64(m.Perm())
	if m&fs.ModeSetuid != 0 {
		mode |= 0o4000
	}
	if m&fs.ModeSetgid != 0 {
		mode |= 0o2000
	}
	if m&fs.ModeSticky != 0 {
		mode |= 0o1000
	}
	return mode
}
