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
	"strconv"
	"strings"
	"time"

	pathrs "github.com/cyphar/filepath-securejoin/pathrs-lite"
	"golang.org/x/sys/unix"

	"github.com/skiff-containers/skiff/errdefs"
)

// Whiteout names of the OCI image-spec (inherited from AUFS).
const (
	// WhiteoutPrefix marks a whiteout: ".wh.name" deletes name of the
	// layers below.
	WhiteoutPrefix = ".wh."
	// WhiteoutMetaPrefix marks AUFS metadata entries, never extracted.
	WhiteoutMetaPrefix = WhiteoutPrefix + WhiteoutPrefix
	// WhiteoutOpaqueDir in a directory hides everything the layers below
	// have in it.
	WhiteoutOpaqueDir = WhiteoutMetaPrefix + ".opq"
	// whiteoutLinkDir is AUFS's directory of hardlink targets.
	whiteoutLinkDir = WhiteoutMetaPrefix + "plnk"
)

// overlayOpaqueXattr is the xattr overlayfs reads on an upper directory to
// hide the lower directories' contents.
const overlayOpaqueXattr = "trusted.overlay.opaque"

// ApplyOptions tunes Apply.
type ApplyOptions struct {
	// Name names the layer in errors (its digest, usually).
	Name string
	// Compression of the stream; Auto (the zero value) detects it.
	Compression Compression
	// Overlay turns whiteouts into overlayfs's form: ".wh.name" becomes a
	// 0/0 character device at name and ".wh..wh..opq" the xattr
	// trusted.overlay.opaque=y on its directory. The directory is then an
	// overlayfs upper (or lower) directory. When false, whiteouts delete
	// from the directory, which must already hold the lower layers.
	Overlay bool
	// AllowDevices permits character and block device entries (needs
	// CAP_MKNOD). Without it they are refused.
	AllowDevices bool
	// IgnoreOwnership leaves files owned by the caller instead of the
	// entries' uid and gid (for unprivileged use).
	IgnoreOwnership bool
	// MaxSize bounds the uncompressed tar stream in bytes; 0 means no
	// bound beyond the reader's own end.
	MaxSize int64
	// Warnf, if set, receives notes about what was skipped (xattrs the host
	// refused, AUFS metadata).
	Warnf func(format string, args ...any)

	// Plain extracts a plain archive rather than a layer (what `cp`
	// copies): ".wh." names are ordinary files, and errors speak of an
	// archive, not of an image's layer.
	Plain bool
	// NoOverwriteDirNonDir refuses to replace an existing directory with
	// something else or the reverse (docker cp's rule); otherwise an
	// entry replaces what is there unless both are directories.
	NoOverwriteDirNonDir bool
	// Rebase renames the archive's top entry (see Rebase).
	Rebase Rebase
}

// Rebase renames the top entry of an archive as it is extracted: an entry
// whose first name component is From gets To instead (the targets of
// hardlinks too). From may be "." (the entries "./x" of an archive of a
// directory's contents). The zero Rebase renames nothing.
type Rebase struct {
	From, To string
}

// apply returns name rebased.
func (r Rebase) apply(name string) string {
	if r.From == "" {
		return name
	}
	rest := strings.TrimLeft(name, "/")
	first, tail, more := strings.Cut(rest, "/")
	if first != r.From {
		return name
	}
	if !more {
		return r.To
	}
	return r.To + "/" + tail
}

// Apply extracts the layer tarball read from r into dir, which must exist.
// It returns the size of the uncompressed tar stream. The stream is read to
// its end, so that a caller verifying the digest of r sees all of it and a
// compressed stream's checksum is checked.
//
// Whatever r holds, nothing is created, changed or removed outside dir.
func Apply(ctx context.Context, dir string, r io.Reader, opts ApplyOptions) (int64, error) {
	a, err := newApplier(dir, opts)
	if err != nil {
		return 0, err
	}
	defer a.close()
	return a.apply(ctx, r)
}

// ApplyAt is Apply into the directory dir is a handle of (O_PATH is
// enough), for a directory resolved by the caller inside a root it does
// not trust: the path is never looked up again. dir stays the caller's.
func ApplyAt(ctx context.Context, dir *os.File, r io.Reader, opts ApplyOptions) (int64, error) {
	fd, err := unix.Openat(int(dir.Fd()), ".", unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return 0, fmt.Errorf("%s: open target directory %s: %w", opts.what(), dir.Name(), err)
	}
	a := &applier{dir: dir.Name(), opts: opts, unpacked: map[string]struct{}{}, root: os.NewFile(uintptr(fd), dir.Name())}
	defer a.close()
	return a.apply(ctx, r)
}

func (a *applier) apply(ctx context.Context, r io.Reader) (int64, error) {
	opts := a.opts

	src := &sourceReader{r: r}
	zr, release, err := decompress(src, opts.Compression)
	if err != nil {
		return 0, a.streamError("", err, src)
	}
	defer release()
	cr := &countingReader{r: zr, limit: opts.MaxSize}
	tr := tar.NewReader(cr)
	last := ""
	for {
		if err := ctx.Err(); err != nil {
			return cr.n, fmt.Errorf("%s: %w", a.what(), err)
		}
		hdr, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return cr.n, a.streamError(last, err, src)
		}
		last = hdr.Name
		if a.opts.Rebase.From != "" {
			hdr.Name = a.opts.Rebase.apply(hdr.Name)
			if hdr.Typeflag == tar.TypeLink {
				hdr.Linkname = a.opts.Rebase.apply(hdr.Linkname)
			}
		}
		if err := a.entry(hdr, tr); err != nil {
			var re *readError
			if errors.As(err, &re) {
				return cr.n, a.streamError(last, re.err, src)
			}
			return cr.n, err
		}
	}
	// Drain the padding after the end-of-archive blocks: this reads the
	// compressed stream to its end and checks its checksum.
	if _, err := io.Copy(io.Discard, cr); err != nil {
		return cr.n, a.streamError(last, err, src)
	}
	if err := a.finish(); err != nil {
		return cr.n, err
	}
	return cr.n, nil
}

// sourceReader remembers the error of the caller's reader, to tell a
// failing source (a network error) from a corrupt stream.
type sourceReader struct {
	r   io.Reader
	err error
}

func (s *sourceReader) Read(p []byte) (int, error) {
	n, err := s.r.Read(p)
	if err != nil && err != io.EOF {
		s.err = err
	}
	return n, err
}

var errSizeLimit = errors.New("size limit exceeded")

// countingReader counts the bytes of the tar stream and enforces MaxSize.
type countingReader struct {
	r     io.Reader
	n     int64
	limit int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	if c.limit > 0 {
		if c.n >= c.limit {
			// Tell the end of the stream from an oversized one.
			var one [1]byte
			n, err := c.r.Read(one[:])
			if n > 0 {
				return 0, errSizeLimit
			}
			return 0, err
		}
		if rest := c.limit - c.n; int64(len(p)) > rest {
			p = p[:rest]
		}
	}
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}

// readError marks an error reading an entry's data (as opposed to writing
// it).
type readError struct{ err error }

func (e *readError) Error() string { return e.err.Error() }

// dirTimes is a directory whose times are set once its contents are in.
type dirTimes struct {
	name         string
	atime, mtime time.Time
}

type applier struct {
	dir  string
	opts ApplyOptions
	root *os.File // O_PATH handle of dir

	// cached parent handle (parentName == "" with parent == nil: none)
	parentName string
	parent     *os.File

	unpacked    map[string]struct{} // names this layer created or changed
	dirs        []dirTimes
	buf         []byte // copy buffer
	zero        []byte // as long as buf, all zeros
	sparseBytes int64  // logical size of the sparse files so far
	plnk        string // name of the directory holding AUFS hardlink targets
}

func newApplier(dir string, opts ApplyOptions) (*applier, error) {
	a := &applier{dir: dir, opts: opts, unpacked: map[string]struct{}{}}
	fd, err := unix.Open(dir, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("%s: open target directory %s: %w", a.what(), dir, err)
	}
	a.root = os.NewFile(uintptr(fd), dir)
	return a, nil
}

func (a *applier) close() {
	a.dropParent()
	a.root.Close()
}

func (a *applier) what() string { return a.opts.what() }

func (o ApplyOptions) what() string {
	verb := "apply layer"
	if o.Plain {
		verb = "extract archive"
	}
	if o.Name == "" {
		return verb
	}
	return verb + " " + o.Name
}

func (a *applier) warnf(format string, args ...any) {
	if a.opts.Warnf != nil {
		a.opts.Warnf(a.what()+": "+format, args...)
	}
}

// refuse returns an ErrInvalidArgument error naming the entry.
func (a *applier) refuse(entry, format string, args ...any) error {
	advice := "the layer is malformed or hostile, do not use this image"
	if a.opts.Plain {
		advice = "the archive is malformed or hostile; nothing outside the target was touched"
	}
	return fmt.Errorf("%s: entry %q: %w: %s; %s",
		a.what(), entry, errdefs.ErrInvalidArgument, fmt.Sprintf(format, args...), advice)
}

// fail returns an error for a filesystem operation that failed.
func (a *applier) fail(entry, op string, err error) error {
	return fmt.Errorf("%s: entry %q: %s in %s: %w", a.what(), entry, op, a.dir, err)
}

// parentError reports that the parent directory of an entry could not be
// made: a parent that is a file, or a symlink that leads nowhere inside the
// root, is the layer's fault.
func (a *applier) parentError(entry, parent string, err error) error {
	if errors.Is(err, unix.ENOTDIR) || errors.Is(err, unix.ELOOP) || errors.Is(err, unix.ENOENT) || errors.Is(err, unix.EXDEV) {
		return a.refuse(entry, "parent %q is not a directory inside the layer root (a file, or a symlink leading nowhere inside it): %v", parent, err)
	}
	return a.fail(entry, "create parent directory "+strconv.Quote(parent), err)
}

// streamError classifies an error reading the stream: the source's own
// errors pass through, anything else means the layer is corrupt.
func (a *applier) streamError(entry string, err error, src *sourceReader) error {
	at := ""
	if entry != "" {
		at = fmt.Sprintf(" after entry %q", entry)
	}
	switch {
	case src.err != nil:
		return fmt.Errorf("%s: read layer%s: %w", a.what(), at, src.err)
	case errors.Is(err, errSizeLimit):
		return fmt.Errorf("%s: %w: uncompressed layer is larger than the limit of %d bytes", a.what(), errdefs.ErrInvalidArgument, a.opts.MaxSize)
	case errors.Is(err, errdefs.ErrNotImplemented), errors.Is(err, errdefs.ErrInvalidArgument):
		return fmt.Errorf("%s: %w", a.what(), err)
	}
	if a.opts.Plain {
		return fmt.Errorf("%s: %w: archive is truncated or corrupt%s: %v", a.what(), errdefs.ErrInvalidArgument, at, err)
	}
	return fmt.Errorf("%s: %w: layer is truncated or corrupt%s: %v; fetch the layer again", a.what(), errdefs.ErrInvalidArgument, at, err)
}

// CleanName turns a tar entry name into a path relative to the layer root:
// leading slashes are dropped and "." and ".." components resolved
// lexically. It returns "" for the root itself and an error if ".." would
// climb above the root.
func CleanName(name string) (string, error) {
	if strings.IndexByte(name, 0) >= 0 {
		return "", errors.New("name contains a NUL byte")
	}
	var parts []string
	for _, p := range strings.Split(name, "/") {
		switch p {
		case "", ".":
		case "..":
			if len(parts) == 0 {
				return "", errors.New(`".." climbs above the layer root`)
			}
			parts = parts[:len(parts)-1]
		default:
			parts = append(parts, p)
		}
	}
	return strings.Join(parts, "/"), nil
}

func splitName(name string) (parent, base string) {
	i := strings.LastIndexByte(name, '/')
	if i < 0 {
		return "", name
	}
	return name[:i], name[i+1:]
}

func (a *applier) dropParent() {
	if a.parent != nil {
		a.parent.Close()
		a.parent = nil
	}
	a.parentName = ""
}

// parentDir returns a handle of the directory name inside the root,
// creating missing directories (mode 0755); symlinks on the way resolve
// inside the root. The handle is owned by the applier.
func (a *applier) parentDir(name string) (int, error) {
	if name == "" {
		return int(a.root.Fd()), nil
	}
	if a.parent != nil && a.parentName == name {
		return int(a.parent.Fd()), nil
	}
	a.dropParent()
	h, err := pathrs.MkdirAllHandle(a.root, name, 0o755)
	if err != nil {
		return -1, err
	}
	a.parent, a.parentName = h, name
	return int(h.Fd()), nil
}

// lookupDir returns a handle of the existing directory name inside the
// root (the caller closes it), or nil if it does not exist.
func (a *applier) lookupDir(name string) (*os.File, error) {
	if name == "" {
		fd, err := unix.Openat(int(a.root.Fd()), ".", unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
		if err != nil {
			return nil, err
		}
		return os.NewFile(uintptr(fd), a.dir), nil
	}
	h, err := pathrs.OpenatInRoot(a.root, name)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) || errors.Is(err, unix.ENOTDIR) {
			return nil, nil
		}
		return nil, err
	}
	var st unix.Stat_t
	if err := unix.Fstat(int(h.Fd()), &st); err != nil {
		h.Close()
		return nil, err
	}
	if st.Mode&unix.S_IFMT != unix.S_IFDIR {
		h.Close()
		return nil, nil
	}
	return h, nil
}

func (a *applier) entry(hdr *tar.Header, r io.Reader) error {
	name, err := CleanName(hdr.Name)
	if err != nil {
		return a.refuse(hdr.Name, "%v", err)
	}
	if name == "" {
		// The root itself: its metadata belongs to whoever made dir.
		return nil
	}
	parentName, base := splitName(name)

	if strings.HasPrefix(name, WhiteoutMetaPrefix) && name != WhiteoutOpaqueDir && !a.opts.Plain {
		// AUFS metadata at the top: only its hardlink targets matter.
		if strings.HasPrefix(name, whiteoutLinkDir+"/") && hdr.Typeflag == tar.TypeReg {
			return a.aufsLinkTarget(hdr, name, r)
		}
		if name != whiteoutLinkDir {
			a.warnf("entry %q: AUFS metadata skipped", hdr.Name)
		}
		return nil
	}
	if strings.HasPrefix(base, WhiteoutPrefix) && !a.opts.Plain {
		return a.whiteout(hdr, parentName, base)
	}

	switch hdr.Typeflag {
	case tar.TypeXGlobalHeader:
		return nil
	case tar.TypeReg, tar.TypeGNUSparse, tar.TypeDir, tar.TypeSymlink, tar.TypeLink, tar.TypeFifo:
	case tar.TypeChar, tar.TypeBlock:
		if !a.opts.AllowDevices {
			return a.refuse(hdr.Name, "device nodes are not allowed here (ApplyOptions.AllowDevices)")
		}
	default:
		return a.refuse(hdr.Name, "unsupported entry type %q", string(hdr.Typeflag))
	}
	if hdr.Typeflag == tar.TypeSymlink && hdr.Linkname == "" {
		return a.refuse(hdr.Name, "symlink with an empty target")
	}

	pfd, err := a.parentDir(parentName)
	if err != nil {
		return a.parentError(hdr.Name, parentName, err)
	}

	// Replace whatever is there, unless a directory meets a directory.
	var st unix.Stat_t
	switch err := unix.Fstatat(pfd, base, &st, unix.AT_SYMLINK_NOFOLLOW); {
	case err == nil:
		isDir := st.Mode&unix.S_IFMT == unix.S_IFDIR
		if a.opts.NoOverwriteDirNonDir && isDir != (hdr.Typeflag == tar.TypeDir) {
			if isDir {
				return a.fail(hdr.Name, "replace", fmt.Errorf("cannot overwrite directory %q with non-directory: %w", name, errdefs.ErrFailedPrecondition))
			}
			return a.fail(hdr.Name, "replace", fmt.Errorf("cannot overwrite non-directory %q with directory: %w", name, errdefs.ErrFailedPrecondition))
		}
		if !(hdr.Typeflag == tar.TypeDir && isDir) {
			if err := removeAllAt(pfd, base); err != nil {
				return a.fail(hdr.Name, "remove existing entry", err)
			}
			if strings.HasPrefix(a.parentName, name+"/") {
				a.dropParent() // the cached handle was below what went
			}
		}
	case errors.Is(err, unix.ENOENT):
	default:
		return a.fail(hdr.Name, "stat", err)
	}

	switch hdr.Typeflag {
	case tar.TypeDir:
		if err := unix.Mkdirat(pfd, base, 0o700); err != nil && !errors.Is(err, unix.EEXIST) {
			return a.fail(hdr.Name, "create directory", err)
		}
	case tar.TypeReg, tar.TypeGNUSparse:
		if err := a.writeFile(hdr, pfd, base, r); err != nil {
			return err
		}
	case tar.TypeSymlink:
		if err := unix.Symlinkat(hdr.Linkname, pfd, base); err != nil {
			return a.fail(hdr.Name, "create symlink", err)
		}
	case tar.TypeLink:
		return a.hardlink(hdr, name, pfd, base)
	case tar.TypeChar, tar.TypeBlock, tar.TypeFifo:
		mode := uint32(unix.S_IFIFO)
		if hdr.Typeflag == tar.TypeChar {
			mode = unix.S_IFCHR
		} else if hdr.Typeflag == tar.TypeBlock {
			mode = unix.S_IFBLK
		}
		dev := int(unix.Mkdev(uint32(hdr.Devmajor), uint32(hdr.Devminor)))
		if err := unix.Mknodat(pfd, base, mode|0o600, dev); err != nil {
			return a.fail(hdr.Name, "create device node or fifo", err)
		}
	}
	a.unpacked[name] = struct{}{}
	return a.setMetadata(hdr, name, pfd, base)
}

func (a *applier) writeFile(hdr *tar.Header, pfd int, base string, r io.Reader) error {
	fd, err := unix.Openat(pfd, base, unix.O_WRONLY|unix.O_CREAT|unix.O_EXCL|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0o600)
	if err != nil {
		return a.fail(hdr.Name, "create file", err)
	}
	f := os.NewFile(uintptr(fd), base)
	defer f.Close()
	sparse := isSparse(hdr)
	if sparse {
		a.sparseBytes += hdr.Size
		if a.sparseBytes > a.sparseLimit() {
			return a.refuse(hdr.Name, "sparse files of the layer expand to more than %d bytes", a.sparseLimit())
		}
	}
	if a.buf == nil {
		a.buf = make([]byte, 1<<20)
		a.zero = make([]byte, len(a.buf))
	}
	var off int64
	for {
		n, rerr := io.ReadFull(r, a.buf)
		if n > 0 {
			chunk := a.buf[:n]
			var werr error
			if sparse && a.isZero(chunk) {
				// Keep the holes of sparse files holes.
				_, werr = f.Seek(int64(n), io.SeekCurrent)
			} else {
				_, werr = f.Write(chunk)
			}
			if werr != nil {
				return a.fail(hdr.Name, "write file", werr)
			}
			off += int64(n)
		}
		if rerr == io.EOF || rerr == io.ErrUnexpectedEOF {
			break
		}
		if rerr != nil {
			return &readError{err: rerr}
		}
	}
	if off < hdr.Size {
		return &readError{err: io.ErrUnexpectedEOF}
	}
	if sparse {
		if err := f.Truncate(off); err != nil {
			return a.fail(hdr.Name, "write file", err)
		}
	}
	if err := f.Close(); err != nil {
		return a.fail(hdr.Name, "write file", err)
	}
	return nil
}

// defaultSparseLimit bounds what the sparse files of one layer expand to
// when ApplyOptions.MaxSize is not set.
const defaultSparseLimit = 16 << 30

func (a *applier) sparseLimit() int64 {
	if a.opts.MaxSize > 0 {
		return a.opts.MaxSize
	}
	return defaultSparseLimit
}

// isSparse reports whether archive/tar expands the entry from a sparse map
// (GNU sparse formats, old and PAX).
func isSparse(hdr *tar.Header) bool {
	if hdr.Typeflag == tar.TypeGNUSparse {
		return true
	}
	for k := range hdr.PAXRecords {
		if strings.HasPrefix(k, "GNU.sparse.") {
			return true
		}
	}
	return false
}

func (a *applier) isZero(b []byte) bool {
	return bytes.Equal(b, a.zero[:len(b)])
}

func (a *applier) hardlink(hdr *tar.Header, name string, pfd int, base string) error {
	target, err := CleanName(hdr.Linkname)
	if err != nil {
		return a.refuse(hdr.Name, "hardlink target %q: %v", hdr.Linkname, err)
	}
	if target == "" {
		return a.refuse(hdr.Name, "hardlink to the layer root")
	}
	if a.plnk != "" && strings.HasPrefix(target, whiteoutLinkDir+"/") {
		target = a.plnk + "/" + strings.TrimPrefix(target, whiteoutLinkDir+"/")
	}
	tparent, tbase := splitName(target)
	th, err := a.lookupDir(tparent)
	if err != nil {
		return a.fail(hdr.Name, "look up hardlink target "+strconv.Quote(hdr.Linkname), err)
	}
	if th == nil {
		return a.refuse(hdr.Name, "hardlink target %q does not exist in the layer or below it", hdr.Linkname)
	}
	defer th.Close()
	if err := unix.Linkat(int(th.Fd()), tbase, pfd, base, 0); err != nil {
		switch {
		case errors.Is(err, unix.ENOENT):
			return a.refuse(hdr.Name, "hardlink target %q does not exist in the layer or below it", hdr.Linkname)
		case errors.Is(err, unix.EPERM):
			return a.refuse(hdr.Name, "hardlink target %q is a directory", hdr.Linkname)
		}
		return a.fail(hdr.Name, "create hardlink to "+strconv.Quote(hdr.Linkname), err)
	}
	a.unpacked[name] = struct{}{}
	return nil
}

// procPath names base in the directory pfd through /proc, for the calls
// that have no *at form (lsetxattr); the final component is not followed.
func procPath(pfd int, base string) string {
	return "/proc/self/fd/" + strconv.Itoa(pfd) + "/" + base
}

func (a *applier) setMetadata(hdr *tar.Header, name string, pfd int, base string) error {
	if !a.opts.IgnoreOwnership {
		if err := unix.Fchownat(pfd, base, hdr.Uid, hdr.Gid, unix.AT_SYMLINK_NOFOLLOW); err != nil {
			return a.fail(hdr.Name, fmt.Sprintf("chown to %d:%d", hdr.Uid, hdr.Gid), err)
		}
	}
	if err := a.setXattrs(hdr, pfd, base); err != nil {
		return err
	}
	if hdr.Typeflag != tar.TypeSymlink {
		// After chown, which clears setuid and setgid.
		if err := unix.Fchmodat(pfd, base, uint32(hdr.Mode)&0o7777, 0); err != nil {
			return a.fail(hdr.Name, "chmod", err)
		}
	}
	atime := hdr.AccessTime
	if atime.IsZero() {
		atime = hdr.ModTime
	}
	if hdr.Typeflag == tar.TypeDir {
		a.dirs = append(a.dirs, dirTimes{name: name, atime: atime, mtime: hdr.ModTime})
		return nil
	}
	if err := setTimes(pfd, base, atime, hdr.ModTime); err != nil {
		return a.fail(hdr.Name, "set times", err)
	}
	return nil
}

func setTimes(pfd int, base string, atime, mtime time.Time) error {
	ts := []unix.Timespec{timespec(atime), timespec(mtime)}
	return unix.UtimesNanoAt(pfd, base, ts, unix.AT_SYMLINK_NOFOLLOW)
}

func timespec(t time.Time) unix.Timespec {
	if t.IsZero() {
		return unix.Timespec{Sec: 0}
	}
	return unix.NsecToTimespec(t.UnixNano())
}

func (a *applier) setXattrs(hdr *tar.Header, pfd int, base string) error {
	const prefix = "SCHILY.xattr."
	var keys []string
	for k := range hdr.PAXRecords {
		if strings.HasPrefix(k, prefix) {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	for _, k := range keys {
		attr := strings.TrimPrefix(k, prefix)
		if strings.HasPrefix(attr, "trusted.overlay.") {
			// overlayfs metadata comes only from whiteout conversion.
			a.warnf("entry %q: xattr %s not applied: overlayfs metadata is never taken from a layer", hdr.Name, attr)
			continue
		}
		err := unix.Lsetxattr(procPath(pfd, base), attr, []byte(hdr.PAXRecords[k]), 0)
		if err == nil {
			continue
		}
		refused := errors.Is(err, unix.EPERM) || errors.Is(err, unix.EOPNOTSUPP) || errors.Is(err, unix.EACCES) || errors.Is(err, unix.EINVAL)
		if refused && (strings.HasPrefix(attr, "security.") || hdr.Typeflag != tar.TypeReg && hdr.Typeflag != tar.TypeDir) {
			a.warnf("entry %q: xattr %s not applied: the host refused it (%v)", hdr.Name, attr, err)
			continue
		}
		return a.fail(hdr.Name, "set xattr "+attr, err)
	}
	return nil
}

// whiteout handles ".wh.*" entries.
func (a *applier) whiteout(hdr *tar.Header, parentName, base string) error {
	if strings.HasPrefix(base, WhiteoutMetaPrefix) {
		if base == WhiteoutOpaqueDir {
			return a.opaque(hdr, parentName)
		}
		a.warnf("entry %q: AUFS metadata skipped", hdr.Name)
		return nil
	}
	target := strings.TrimPrefix(base, WhiteoutPrefix)
	if target == "" || target == "." || target == ".." {
		return a.refuse(hdr.Name, "whiteout of %q", target)
	}
	full := path.Join(parentName, target)
	if _, ok := a.unpacked[full]; ok {
		// A whiteout hides only what the layers below have.
		return nil
	}
	if a.opts.Overlay {
		pfd, err := a.parentDir(parentName)
		if err != nil {
			return a.parentError(hdr.Name, parentName, err)
		}
		if err := removeAllAt(pfd, target); err != nil {
			return a.fail(hdr.Name, "remove entry to white out", err)
		}
		if err := unix.Mknodat(pfd, target, unix.S_IFCHR, 0); err != nil {
			return a.fail(hdr.Name, "create overlay whiteout device", err)
		}
		if !a.opts.IgnoreOwnership {
			if err := unix.Fchownat(pfd, target, hdr.Uid, hdr.Gid, unix.AT_SYMLINK_NOFOLLOW); err != nil {
				return a.fail(hdr.Name, "chown whiteout", err)
			}
		}
		a.unpacked[full] = struct{}{}
		return nil
	}
	h, err := a.lookupDir(parentName)
	if err != nil {
		return a.fail(hdr.Name, "look up whiteout's directory", err)
	}
	if h == nil {
		return nil // nothing below to hide
	}
	defer h.Close()
	a.dropParent()
	if err := removeAllAt(int(h.Fd()), target); err != nil {
		return a.fail(hdr.Name, "remove whited-out entry", err)
	}
	return nil
}

// opaque handles ".wh..wh..opq" in directory dirName.
func (a *applier) opaque(hdr *tar.Header, dirName string) error {
	if a.opts.Overlay {
		pfd, err := a.parentDir(dirName)
		if err != nil {
			return a.parentError(hdr.Name, dirName, err)
		}
		// Setxattr: the magic link /proc/self/fd/N must be followed.
		if err := unix.Setxattr("/proc/self/fd/"+strconv.Itoa(pfd), overlayOpaqueXattr, []byte("y"), 0); err != nil {
			return a.fail(hdr.Name, "set "+overlayOpaqueXattr, err)
		}
		return nil
	}
	h, err := a.lookupDir(dirName)
	if err != nil {
		return a.fail(hdr.Name, "look up opaque directory", err)
	}
	if h == nil {
		return nil
	}
	defer h.Close()
	a.dropParent()
	if err := a.removeChildrenExcept(int(h.Fd()), dirName); err != nil {
		return a.fail(hdr.Name, "empty opaque directory", err)
	}
	return nil
}

// removeChildrenExcept removes what directory fd (named dirName) holds,
// except what this layer created, recursively.
func (a *applier) removeChildrenExcept(fd int, dirName string) error {
	names, err := readDirNames(fd)
	if err != nil {
		return err
	}
	for _, n := range names {
		full := n
		if dirName != "" {
			full = dirName + "/" + n
		}
		if _, ok := a.unpacked[full]; !ok {
			if err := removeAllAt(fd, n); err != nil {
				return err
			}
			continue
		}
		var st unix.Stat_t
		if err := unix.Fstatat(fd, n, &st, unix.AT_SYMLINK_NOFOLLOW); err != nil {
			return err
		}
		if st.Mode&unix.S_IFMT != unix.S_IFDIR {
			continue
		}
		cfd, err := unix.Openat(fd, n, unix.O_PATH|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
		if err != nil {
			return err
		}
		err = a.removeChildrenExcept(cfd, full)
		unix.Close(cfd)
		if err != nil {
			return err
		}
	}
	return nil
}

// aufsLinkTarget extracts a file of AUFS's hardlink directory into a hidden
// directory inside the root, removed when the layer is done.
func (a *applier) aufsLinkTarget(hdr *tar.Header, name string, r io.Reader) error {
	if a.plnk == "" {
		for i := 0; ; i++ {
			n := fmt.Sprintf(".skiff-aufs-plnk-%d", i)
			err := unix.Mkdirat(int(a.root.Fd()), n, 0o700)
			if err == nil {
				a.plnk = n
				break
			}
			if !errors.Is(err, unix.EEXIST) || i > 100 {
				return a.fail(hdr.Name, "create directory for AUFS hardlink targets", err)
			}
		}
	}
	h := *hdr
	h.Name = a.plnk + "/" + strings.TrimPrefix(name, whiteoutLinkDir+"/")
	if err := a.entry(&h, r); err != nil {
		return err
	}
	delete(a.unpacked, h.Name)
	return nil
}

// finish sets the times of the directories and removes the AUFS hardlink
// directory.
func (a *applier) finish() error {
	a.dropParent()
	if a.plnk != "" {
		if err := removeAllAt(int(a.root.Fd()), a.plnk); err != nil {
			return a.fail(a.plnk, "remove AUFS hardlink directory", err)
		}
	}
	for _, d := range a.dirs {
		parentName, base := splitName(d.name)
		h, err := a.lookupDir(parentName)
		if err != nil {
			return a.fail(d.name, "look up directory to set its times", err)
		}
		if h == nil {
			continue // removed by a later entry
		}
		err = setTimes(int(h.Fd()), base, d.atime, d.mtime)
		h.Close()
		if err != nil && !errors.Is(err, unix.ENOENT) {
			return a.fail(d.name, "set times", err)
		}
	}
	return nil
}
