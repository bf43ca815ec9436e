package tarball

import (
	"archive/tar"
	"cmp"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"path"
	"slices"
	"strings"
)

// Difference is one way a rebuilt artifact's tarball differs from the
// cached one: what a reproducibility check reports, path by path.
type Difference struct {
	// Path is the entry's name inside the artifact, e.g. "usr/bin/hello".
	Path string
	// What names the property that differs: "content", "mode", "type",
	// "link target", "device", "owner", or, for an entry on one side only,
	// "only in the cached artifact" or "only in the rebuild".
	What string
	// Cached and Rebuilt describe each side's value, in words.
	Cached, Rebuilt string
}

// Comparing entries one side lacks.
const (
	OnlyCached  = "only in the cached artifact"
	OnlyRebuilt = "only in the rebuild"
)

// described is what Compare looks at of one entry.
type described struct {
	kind, mode, link, device, owner, content string
}

// Compare lists, sorted by path, every difference between the entries of
// two artifact tarballs: their paths, types, modes, owners, link targets,
// device numbers and content digests. Modification times are not compared,
// since packing fixes them. No difference means the artifacts are the same
// file tree even when their tarballs' bytes differ.
func Compare(cached, rebuilt io.Reader) ([]Difference, error) {
	a, err := describe(cached)
	if err != nil {
		return nil, fmt.Errorf("reading the cached artifact: %w", err)
	}
	b, err := describe(rebuilt)
	if err != nil {
		return nil, fmt.Errorf("reading the rebuilt artifact: %w", err)
	}
	var out []Difference
	for p, x := range a {
		y, ok := b[p]
		if !ok {
			out = append(out, Difference{Path: p, What: OnlyCached, Cached: x.kind})
			continue
		}
		for _, d := range []struct{ what, x, y string }{
			{"type", x.kind, y.kind},
			{"mode", x.mode, y.mode},
			{"owner", x.owner, y.owner},
			{"link target", x.link, y.link},
			{"device", x.device, y.device},
			{"content", x.content, y.content},
		} {
			if d.x != d.y {
				out = append(out, Difference{Path: p, What: d.what, Cached: d.x, Rebuilt: d.y})
			}
		}
	}
	for p, y := range b {
		if _, ok := a[p]; !ok {
			out = append(out, Difference{Path: p, What: OnlyRebuilt, Rebuilt: y.kind})
		}
	}
	slices.SortFunc(out, func(x, y Difference) int {
		return cmp.Or(strings.Compare(x.Path, y.Path), strings.Compare(x.What, y.What))
	})
	return out, nil
}

var kindNames = map[byte]string{
	tar.TypeReg: "regular file", tar.TypeDir: "directory", tar.TypeSymlink: "symbolic link",
	tar.TypeLink: "hard link", tar.TypeChar: "character device", tar.TypeBlock: "block device",
	tar.TypeFifo: "fifo",
}

// describe reads a tarball into a description of each entry by path.
func describe(r io.Reader) (map[string]described, error) {
	out := map[string]described{}
	tr := tar.NewReader(r)
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			return out, nil
		}
		if err != nil {
			return nil, err
		}
		name := path.Clean(strings.TrimPrefix(hdr.Name, "./"))
		kind := kindNames[hdr.Typeflag]
		if kind == "" {
			kind = fmt.Sprintf("type %q", hdr.Typeflag)
		}
		d := described{
			kind:  kind,
			mode:  fmt.Sprintf("%04o", hdr.Mode&0o7777),
			owner: fmt.Sprintf("%d:%d", hdr.Uid, hdr.Gid),
		}
		switch hdr.Typeflag {
		case tar.TypeSymlink, tar.TypeLink:
			d.link = hdr.Linkname
		case tar.TypeChar, tar.TypeBlock:
			d.device = fmt.Sprintf("%d:%d", hdr.Devmajor, hdr.Devminor)
		case tar.TypeReg:
			h := sha256.New()
			n, err := io.Copy(h, tr)
			if err != nil {
				return nil, fmt.Errorf("%s: %w", name, err)
			}
			d.content = fmt.Sprintf("sha256:%s (%d bytes)", hex.EncodeToString(h.Sum(nil)), n)
		}
		out[name] = d
	}
}
