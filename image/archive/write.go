package archive

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"sort"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/skiff-containers/skiff/errdefs"
)

// Overlay xattrs that mean a file's data or name live in a lower layer:
// an upper directory holding them cannot be read as a diff on its own.
const (
	overlayRedirectXattr = "trusted.overlay.redirect"
	overlayMetacopyXattr = "trusted.overlay.metacopy"
)

// WriteOptions tune WriteTree.
type WriteOptions struct {
	// OverlayDiff reads the tree as an overlayfs upper directory and
	// writes it as an OCI layer: a 0/0 character device (overlayfs's
	// whiteout) becomes a ".wh.<name>" entry, and a directory with the
	// xattr trusted.overlay.opaque=y gets a ".wh..wh..opq" entry after
	// it. A file that overlayfs redirected or copied up metadata-only is
	// refused (errdefs.ErrNotImplemented): its data is not in the tree.
	OverlayDiff bool
	// SkipEmpty names entries (as in the archive, without "./" or a
	// trailing slash) that are left out when they are an empty regular
	// file or an empty directory: the mount points an OCI runtime made.
	SkipEmpty []string
}

// WriteTree writes to w the tar stream of base inside the directory dir
// (a handle; O_PATH is enough): base itself under the name name and, if
// it is a directory, what it holds as name/…, recursively. With name ""
// only what the directory holds is written, at the top of the archive.
// base "" or "." is dir itself. The stream ends with the end-of-archive
// blocks.
//
// Nothing is followed: a symlink is archived as a symlink, each directory
// is opened below its parent without following, so that a tree that
// changes meanwhile (a running container's) cannot lead the walk outside
// it. Files with several links are archived once and then as hardlinks;
// sockets are left out (tar has no type for them). Times are whole
// seconds; owners are numeric; xattrs are kept except overlayfs's own.
func WriteTree(ctx context.Context, w io.Writer, dir *os.File, base, name string, opts WriteOptions) error {
	t := &treeWriter{
		ctx:   ctx,
		tw:    tar.NewWriter(w),
		opts:  opts,
		links: map[fileID]string{},
		skip:  map[string]bool{},
	}
	for _, s := range opts.SkipEmpty {
		t.skip[strings.Trim(path.Clean("/"+s), "/")] = true
	}
	if base == "" {
		base = "."
	}
	pfd := int(dir.Fd())
	var st unix.Stat_t
	if err := unix.Fstatat(pfd, base, &st, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return fmt.Errorf("archive %s: %w", path.Join(dir.Name(), base), err)
	}
	var err error
	if name == "" {
		if st.Mode&unix.S_IFMT != unix.S_IFDIR {
			return fmt.Errorf("archive the contents of %s: not a directory: %w", path.Join(dir.Name(), base), errdefs.ErrInvalidArgument)
		}
		err = t.dirContents(pfd, base, "")
	} else {
		err = t.entry(pfd, base, name, &st)
	}
	if err != nil {
		return err
	}
	if err := t.tw.Close(); err != nil {
		return fmt.Errorf("archive %s: %w", path.Join(dir.Name(), base), err)
	}
	return nil
}

type fileID struct{ dev, ino uint64 }

type treeWriter struct {
	ctx   context.Context
	tw    *tar.Writer
	opts  WriteOptions
	links map[fileID]string // first name of each multiply-linked file
	skip  map[string]bool
}

// entry writes base (in the directory pfd), whose stat is st, as name.
func (t *treeWriter) entry(pfd int, base, name string, st *unix.Stat_t) error {
	if err := t.ctx.Err(); err != nil {
		return err
	}
	hdr := &tar.Header{
		Name:    name,
		Mode:    int64(st.Mode & 0o7777),
		Uid:     int(st.Uid),
		Gid:     int(st.Gid),
		ModTime: time.Unix(st.Mtim.Sec, 0),
		Format:  tar.FormatPAX,
	}
	clean := strings.Trim(path.Clean("/"+name), "/")
	switch st.Mode & unix.S_IFMT {
	case unix.S_IFDIR:
		return t.dir(pfd, base, name, clean, hdr)
	case unix.S_IFREG:
		if t.skip[clean] && st.Size == 0 {
			return nil
		}
		if st.Nlink > 1 {
			id := fileID{uint64(st.Dev), st.Ino}
			if first, ok := t.links[id]; ok {
				hdr.Typeflag, hdr.Linkname = tar.TypeLink, first
				return t.writeHeader(hdr)
			}
			t.links[id] = name
		}
		hdr.Typeflag, hdr.Size = tar.TypeReg, st.Size
		if err := t.xattrs(pfd, base, hdr); err != nil {
			return err
		}
		if err := t.writeHeader(hdr); err != nil {
			return err
		}
		return t.content(pfd, base, name, st)
	case unix.S_IFLNK:
		target, err := readlinkat(pfd, base)
		if err != nil {
			return fmt.Errorf("archive %s: read symlink: %w", name, err)
		}
		hdr.Typeflag, hdr.Linkname = tar.TypeSymlink, target
	case unix.S_IFCHR, unix.S_IFBLK:
		if t.opts.OverlayDiff && st.Mode&unix.S_IFMT == unix.S_IFCHR && st.Rdev == 0 {
			dirName, b := path.Split(strings.TrimSuffix(name, "/"))
			hdr.Name = dirName + WhiteoutPrefix + b
			hdr.Typeflag = tar.TypeReg
			return t.writeHeader(hdr)
		}
		hdr.Typeflag = tar.TypeChar
		if st.Mode&unix.S_IFMT == unix.S_IFBLK {
			hdr.Typeflag = tar.TypeBlock
		}
		hdr.Devmajor, hdr.Devminor = int64(unix.Major(uint64(st.Rdev))), int64(unix.Minor(uint64(st.Rdev)))
	case unix.S_IFIFO:
		hdr.Typeflag = tar.TypeFifo
	default: // sockets
		return nil
	}
	if err := t.xattrs(pfd, base, hdr); err != nil {
		return err
	}
	return t.writeHeader(hdr)
}

func (t *treeWriter) dir(pfd int, base, name, clean string, hdr *tar.Header) error {
	fd, err := unix.Openat(pfd, base, unix.O_PATH|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("archive %s: open directory: %w", name, err)
	}
	defer unix.Close(fd)
	names, err := readDirNames(fd)
	if err != nil {
		return fmt.Errorf("archive %s: list directory: %w", name, err)
	}
	opaque := false
	if t.opts.OverlayDiff {
		v, err := getxattr(fd, "", overlayOpaqueXattr)
		if err != nil {
			return fmt.Errorf("archive %s: read %s: %w", name, overlayOpaqueXattr, err)
		}
		opaque = string(v) == "y"
	}
	if t.skip[clean] && len(names) == 0 && !opaque {
		return nil
	}
	hdr.Typeflag = tar.TypeDir
	hdr.Name = strings.TrimSuffix(name, "/") + "/"
	if err := t.xattrs(pfd, base, hdr); err != nil {
		return err
	}
	if err := t.writeHeader(hdr); err != nil {
		return err
	}
	if opaque {
		if err := t.writeHeader(&tar.Header{
			Typeflag: tar.TypeReg, Name: hdr.Name + WhiteoutOpaqueDir, Mode: hdr.Mode,
			Uid: hdr.Uid, Gid: hdr.Gid, ModTime: hdr.ModTime, Format: tar.FormatPAX,
		}); err != nil {
			return err
		}
	}
	return t.children(fd, names, hdr.Name)
}

// dirContents writes what the directory base (in pfd) holds, named
// prefix + its name.
func (t *treeWriter) dirContents(pfd int, base, prefix string) error {
	fd, err := unix.Openat(pfd, base, unix.O_PATH|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("archive: open directory %s: %w", base, err)
	}
	defer unix.Close(fd)
	names, err := readDirNames(fd)
	if err != nil {
		return fmt.Errorf("archive: list directory %s: %w", base, err)
	}
	return t.children(fd, names, prefix)
}

func (t *treeWriter) children(fd int, names []string, prefix string) error {
	sort.Strings(names)
	for _, n := range names {
		var st unix.Stat_t
		if err := unix.Fstatat(fd, n, &st, unix.AT_SYMLINK_NOFOLLOW); err != nil {
			if errors.Is(err, unix.ENOENT) {
				continue // removed meanwhile
			}
			return fmt.Errorf("archive %s%s: %w", prefix, n, err)
		}
		if err := t.entry(fd, n, prefix+n, &st); err != nil {
			return err
		}
	}
	return nil
}

// content copies the regular file base's data: exactly the size its
// header announced.
func (t *treeWriter) content(pfd int, base, name string, st *unix.Stat_t) error {
	// O_NONBLOCK: should a fifo have replaced the file, opening it must
	// not hang; the fstat below then refuses it.
	fd, err := unix.Openat(pfd, base, unix.O_RDONLY|unix.O_NOFOLLOW|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("archive %s: open: %w", name, err)
	}
	f := os.NewFile(uintptr(fd), name)
	defer f.Close()
	var now unix.Stat_t
	if err := unix.Fstat(fd, &now); err != nil {
		return fmt.Errorf("archive %s: %w", name, err)
	}
	if now.Ino != st.Ino || now.Dev != st.Dev {
		return fmt.Errorf("archive %s: the file was replaced while it was archived; retry", name)
	}
	n, err := io.CopyN(t.tw, &ctxReader{ctx: t.ctx, r: f}, st.Size)
	if err == io.EOF {
		return fmt.Errorf("archive %s: the file shrank from %d to %d bytes while it was archived; retry", name, st.Size, n)
	}
	if err != nil {
		return fmt.Errorf("archive %s: %w", name, err)
	}
	return nil
}

func (t *treeWriter) writeHeader(hdr *tar.Header) error {
	if err := t.tw.WriteHeader(hdr); err != nil {
		return fmt.Errorf("archive %s: %w", hdr.Name, err)
	}
	return nil
}

// xattrs adds the xattrs of base to hdr, except overlayfs's own; with
// OverlayDiff, a redirect or metacopy xattr is refused.
func (t *treeWriter) xattrs(pfd int, base string, hdr *tar.Header) error {
	names, err := listxattr(pfd, base)
	if err != nil {
		return fmt.Errorf("archive %s: list xattrs: %w", hdr.Name, err)
	}
	for _, x := range names {
		if t.opts.OverlayDiff && (x == overlayRedirectXattr || x == overlayMetacopyXattr) {
			return fmt.Errorf("archive %s: it carries %s (overlayfs redirect_dir or metacopy is on): the writable layer alone does not hold it; mount overlayfs without them: %w",
				hdr.Name, x, errdefs.ErrNotImplemented)
		}
		if strings.HasPrefix(x, "trusted.overlay.") || strings.HasPrefix(x, "user.overlay.") {
			continue
		}
		v, err := getxattr(pfd, base, x)
		if err != nil {
			return fmt.Errorf("archive %s: read xattr %s: %w", hdr.Name, x, err)
		}
		if v == nil {
			continue // removed meanwhile
		}
		if hdr.PAXRecords == nil {
			hdr.PAXRecords = map[string]string{}
		}
		hdr.PAXRecords["SCHILY.xattr."+x] = string(v)
	}
	return nil
}

// listxattr lists the xattrs of base in pfd ("" for pfd itself) without
// following a symlink.
func listxattr(pfd int, base string) ([]string, error) {
	p := fdPath(pfd, base)
	list := unix.Llistxattr
	if base == "" {
		list = unix.Listxattr // the magic link must be followed
	}
	buf := make([]byte, 1024)
	for {
		n, err := list(p, buf)
		if errors.Is(err, unix.ERANGE) {
			buf = make([]byte, len(buf)*4)
			continue
		}
		if errors.Is(err, unix.ENOTSUP) {
			return nil, nil
		}
		if err != nil {
			return nil, err
		}
		var out []string
		for _, x := range bytes.Split(buf[:n], []byte{0}) {
			if len(x) > 0 {
				out = append(out, string(x))
			}
		}
		sort.Strings(out)
		return out, nil
	}
}

// getxattr reads an xattr of base in pfd ("" for pfd itself); a missing
// one is nil (an empty one is not).
func getxattr(pfd int, base, name string) ([]byte, error) {
	p := fdPath(pfd, base)
	get := unix.Lgetxattr
	if base == "" {
		get = unix.Getxattr // the magic link must be followed
	}
	buf := make([]byte, 256)
	for {
		n, err := get(p, name, buf)
		switch {
		case errors.Is(err, unix.ERANGE):
			buf = make([]byte, len(buf)*4)
			continue
		case errors.Is(err, unix.ENODATA):
			return nil, nil
		case errors.Is(err, unix.ENOTSUP):
			return nil, nil
		case err != nil:
			return nil, err
		}
		return buf[:n], nil
	}
}

// fdPath names base in the directory pfd through /proc (pfd itself when
// base is ""); the last component is not followed by the l* calls.
func fdPath(pfd int, base string) string {
	if base == "" {
		return "/proc/self/fd/" + fmt.Sprint(pfd)
	}
	return procPath(pfd, base)
}

func readlinkat(pfd int, base string) (string, error) {
	buf := make([]byte, 256)
	for {
		n, err := unix.Readlinkat(pfd, base, buf)
		if err != nil {
			return "", err
		}
		if n < len(buf) {
			return string(buf[:n]), nil
		}
		buf = make([]byte, len(buf)*4)
	}
}

// ctxReader stops reading when ctx is done.
type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c *ctxReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(p)
}
