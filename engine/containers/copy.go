package containers

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"strings"
	"time"

	securejoin "github.com/cyphar/filepath-securejoin"
	pathrs "github.com/cyphar/filepath-securejoin/pathrs-lite"
	"golang.org/x/sys/unix"

	"github.com/skiff-containers/skiff/errdefs"
	"github.com/skiff-containers/skiff/image/archive"
)

// `skiff cp` (docker cp): archives of a path of a container, and archives
// extracted into one, with docker's rules. Every path is resolved inside
// the container's root, symlinks as the container sees them (a link to
// /etc/shadow is the container's /etc/shadow), through its bind mounts and
// volumes (fsview.go). A container may be running or not.

// PathStat describes a path of a container: docker's ContainerPathStat.
type PathStat struct {
	// Name is the path's last element ("." for "DIR/." and "/"), the
	// name of the top entry of its archive.
	Name  string
	Size  int64
	Mode  fs.FileMode
	Mtime time.Time
	// LinkTarget is where a symlink leads, resolved in the container.
	LinkTarget string
}

// CopySource describes the archive CopyTo extracts: one top entry named
// Name ("." for the contents of a directory), a directory if IsDir.
type CopySource struct {
	Name  string
	IsDir bool
}

// fileNotFound is docker's error for a path a container does not have.
type fileNotFound struct{ path, ref string }

func (e *fileNotFound) Error() string {
	return "Could not find the file " + e.path + " in container " + e.ref
}
func (e *fileNotFound) Unwrap() error { return errdefs.ErrNotFound }

// copyRefused is a copy docker refuses, in its words, of class.
type copyRefused struct {
	msg   string
	class error
}

func (e *copyRefused) Error() string { return e.msg }
func (e *copyRefused) Unwrap() error { return e.class }

// errCopyClosed ends an archive whose reader was closed early.
var errCopyClosed = errors.New("the copy was closed by its reader")

// checkCopy refuses a container that is being removed.
func checkCopy(ref, st string) error {
	if st == StatusRemoving {
		return &StateError{ID: ref, Op: "copy files of", Status: st}
	}
	return nil
}

// CopyFrom archives p, a path of the container, as docker cp does: it
// returns p's stat and a tar stream whose one top entry is p (named as
// p's last element; "DIR/." gives DIR's contents under "."). The last
// element of p is not followed unless followLink (cp -L) or p ends in "/"
// or "/.". The container is held (no start, stop or removal) until the
// reader is closed, which the caller must do.
func (s *Service) CopyFrom(ctx context.Context, ns, idOrName, p string, followLink bool) (PathStat, io.ReadCloser, error) {
	c, rec, err := s.lock(ns, idOrName)
	if err != nil {
		return PathStat{}, nil, err
	}
	if err := checkCopy(idOrName, status(rec)); err != nil {
		c.op.Unlock()
		return PathStat{}, nil, err
	}
	type statResult struct {
		st  PathStat
		err error
	}
	statc := make(chan statResult, 1)
	pr, pw := io.Pipe()
	done := make(chan struct{})
	go func() {
		defer close(done)
		defer c.op.Unlock()
		sent := false
		err := s.inView(ctx, ns, idOrName, rec, true, func(v *fsView) error {
			f, err := v.lookup(p, followLink)
			if err != nil {
				return err
			}
			defer f.close()
			st, err := v.pathStat(p, f)
			if err != nil {
				return err
			}
			statc <- statResult{st: st}
			sent = true
			return archive.WriteTree(ctx, pw, f.dir, f.base, archive.SourceName(f.abs), archive.WriteOptions{})
		})
		if err != nil && !sent {
			statc <- statResult{err: err}
		}
		pw.CloseWithError(err) // nil: EOF
	}()
	res := <-statc
	if res.err != nil {
		<-done
		return PathStat{}, nil, copyError("copy from container "+idOrName, res.err)
	}
	return res.st, &copyReader{pr: pr, done: done}, nil
}

// copyReader is CopyFrom's stream; Close stops the archiving and waits
// until the container is released.
type copyReader struct {
	pr   *io.PipeReader
	done chan struct{}
}

func (r *copyReader) Read(p []byte) (int, error) { return r.pr.Read(p) }

func (r *copyReader) Close() error {
	r.pr.CloseWithError(errCopyClosed)
	<-r.done
	return nil
}

// CopyTo extracts the tar stream r into the container at dst, as docker
// cp does. With src (the archive holds one top entry, see CopySource),
// dst follows docker's rules: an existing directory receives the entry;
// an existing file is replaced by a file; a missing dst is created from
// the entry (its parent must exist). Without src (a tar from stdin), dst
// must be an existing directory and the archive is extracted into it as
// it is. What is written is owned by the container's root user unless
// copyUIDGID (cp -a), which keeps the archive's owners. A read-only
// volume, or a read-only root filesystem outside volumes, is refused.
func (s *Service) CopyTo(ctx context.Context, ns, idOrName, dst string, src *CopySource, copyUIDGID bool, r io.Reader) error {
	c, rec, err := s.lock(ns, idOrName)
	if err != nil {
		return err
	}
	defer c.op.Unlock()
	if err := checkCopy(idOrName, status(rec)); err != nil {
		return err
	}
	if src != nil && (src.Name == "" || strings.Contains(src.Name, "/") || src.Name == "..") {
		return fmt.Errorf("copy to container %s: source name %q: want one path element: %w", idOrName, src.Name, errdefs.ErrInvalidArgument)
	}
	err = s.inView(ctx, ns, idOrName, rec, true, func(v *fsView) error {
		dir, rebase, err := v.copyDestination(dst, src)
		if err != nil {
			return err
		}
		h, err := pathrs.OpenatInRoot(v.root, dir)
		if err != nil {
			if errors.Is(err, os.ErrNotExist) {
				return &fileNotFound{path: dir, ref: idOrName}
			}
			return fmt.Errorf("resolve %s: %w", dir, err)
		}
		defer h.Close()
		var st unix.Stat_t
		if err := unix.Fstat(int(h.Fd()), &st); err != nil {
			return fmt.Errorf("stat %s: %w", dir, err)
		}
		if st.Mode&unix.S_IFMT != unix.S_IFDIR {
			return &copyRefused{"extraction point is not a directory", errdefs.ErrInvalidArgument}
		}
		at, err := v.containerPath(h)
		if err != nil {
			return err
		}
		if err := v.checkWritable(at); err != nil {
			return err
		}
		_, err = archive.ApplyAt(ctx, h, r, archive.ApplyOptions{
			Name:                 "into " + idOrName + ":" + at,
			Compression:          archive.Uncompressed,
			Plain:                true,
			NoOverwriteDirNonDir: true,
			Rebase:               rebase,
			IgnoreOwnership:      !copyUIDGID,
			AllowDevices:         true, // as docker; the container could mknod them itself
		})
		return err
	})
	return copyError("copy to container "+idOrName, err)
}

// copyError returns err as it is when it is one of docker's messages for
// cp, else prefixed with what failed.
func copyError(what string, err error) error {
	var nf *fileNotFound
	var cr *copyRefused
	var se *StateError
	switch {
	case err == nil:
		return nil
	case errors.As(err, &nf), errors.As(err, &cr), errors.As(err, &se),
		errors.Is(err, archive.ErrCannotCopyDir), errors.Is(err, archive.ErrDirNotExists), errors.Is(err, archive.ErrNotDirectory):
		return err
	}
	return fmt.Errorf("%s: %w", what, err)
}

// copyDestination applies docker's CLI rules (cp.go copyToContainer) to
// dst in the container: a symlink at dst is followed; an existing dst
// must be a directory or a regular file. It returns the directory to
// extract into and how to rename the archive's top entry.
func (v *fsView) copyDestination(dst string, src *CopySource) (string, archive.Rebase, error) {
	info := archive.CopyInfo{Path: dst}
	f, err := v.lookup(dst, false)
	if err == nil && f.st.Mode&unix.S_IFMT == unix.S_IFLNK {
		target, terr := v.linkTarget(f.abs)
		f.close()
		if terr != nil {
			return "", archive.Rebase{}, terr
		}
		info.Path = target
		f, err = v.lookup(target, false)
	}
	switch {
	case err == nil:
		defer f.close()
		switch f.st.Mode & unix.S_IFMT {
		case unix.S_IFDIR, unix.S_IFREG:
		case unix.S_IFCHR, unix.S_IFBLK:
			return "", archive.Rebase{}, &copyRefused{fmt.Sprintf("destination %q must be a directory or a regular file: got a device", v.ref+":"+dst), errdefs.ErrInvalidArgument}
		default:
			return "", archive.Rebase{}, &copyRefused{fmt.Sprintf("destination %q must be a directory or a regular file: got an irregular file", v.ref+":"+dst), errdefs.ErrInvalidArgument}
		}
		info.Exists, info.IsDir = true, f.st.Mode&unix.S_IFMT == unix.S_IFDIR
	case errors.As(err, new(*fileNotFound)), errors.Is(err, unix.ENOTDIR):
		// The parent may still exist: the extraction says.
	default:
		return "", archive.Rebase{}, err
	}
	if src == nil {
		if !info.IsDir {
			return "", archive.Rebase{}, &copyRefused{fmt.Sprintf("destination %q must be a directory", v.ref+":"+dst), errdefs.ErrInvalidArgument}
		}
		return path.Clean("/" + info.Path), archive.Rebase{}, nil
	}
	dir, rebase, err := archive.PrepareCopy(src.Name, src.IsDir, info)
	if err != nil {
		return "", archive.Rebase{}, err
	}
	return path.Clean("/" + dir), rebase, nil
}

// checkWritable refuses to write at the container path p when its mount
// is read-only (docker's words).
func (v *fsView) checkWritable(p string) error {
	if b := v.bindAt(p); b != nil {
		if b.readOnly {
			return &copyRefused{"mounted volume is marked read-only", errdefs.ErrFailedPrecondition}
		}
		return nil
	}
	if v.readOnly {
		return &copyRefused{"container rootfs is marked read-only", errdefs.ErrFailedPrecondition}
	}
	return nil
}

// found is a path of the container found in its root: the directory
// holding it and its name there ("." when it is the root itself).
type found struct {
	dir  *os.File
	base string
	st   unix.Stat_t
	// abs is the path as asked (absolute, with its trailing "/" or "/.").
	abs string
}

func (f *found) close() { f.dir.Close() }

// lookup finds p as docker's container.ResolvePath does: the directories
// leading to it are resolved inside the root (symlinks as the container
// sees them), the last element is not followed unless follow or p ends
// in "/" or "/.". A missing path is a *fileNotFound.
func (v *fsView) lookup(p string, follow bool) (*found, error) {
	abs := archive.PreserveTrailingDotOrSeparator(path.Join("/", p), p)
	clean := path.Clean(abs)
	target := clean
	if follow || archive.AssertsDirectory(abs) {
		h, err := pathrs.OpenatInRoot(v.root, clean)
		if err != nil {
			return nil, v.lookupError(p, err)
		}
		target, err = v.containerPath(h)
		h.Close()
		if err != nil {
			return nil, err
		}
	}
	f := &found{base: path.Base(target), abs: abs}
	parent := path.Dir(target)
	if target == "/" {
		parent, f.base = "/", "."
	}
	h, err := pathrs.OpenatInRoot(v.root, parent)
	if err != nil {
		return nil, v.lookupError(p, err)
	}
	f.dir = h
	if err := unix.Fstatat(int(h.Fd()), f.base, &f.st, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		h.Close()
		return nil, v.lookupError(p, err)
	}
	if archive.AssertsDirectory(abs) && f.st.Mode&unix.S_IFMT != unix.S_IFDIR {
		h.Close()
		return nil, v.lookupError(p, unix.ENOTDIR)
	}
	return f, nil
}

func (v *fsView) lookupError(p string, err error) error {
	switch {
	case errors.Is(err, os.ErrNotExist):
		return &fileNotFound{path: p, ref: v.ref}
	case errors.Is(err, unix.ENOTDIR):
		return fmt.Errorf("%s: not a directory: %w", p, errors.Join(errdefs.ErrInvalidArgument, unix.ENOTDIR))
	}
	return fmt.Errorf("resolve %s in the container: %w", p, err)
}

// linkTarget is where the symlink at the container path p leads,
// resolved inside the root; a dangling link resolves as far as it
// exists (docker's FollowSymlinkInScope).
func (v *fsView) linkTarget(p string) (string, error) {
	clean := path.Clean(p)
	if h, err := pathrs.OpenatInRoot(v.root, clean); err == nil {
		defer h.Close()
		return v.containerPath(h)
	}
	joined, err := securejoin.SecureJoin(v.rootPath, clean)
	if err != nil {
		return "", fmt.Errorf("resolve the symlink %s in the container: %w", p, err)
	}
	rel, _ := strings.CutPrefix(joined, v.rootPath)
	return path.Clean("/" + rel), nil
}

// pathStat is the PathStat of f, found for the path p.
func (v *fsView) pathStat(p string, f *found) (PathStat, error) {
	st := PathStat{
		Name:  archive.SourceName(f.abs),
		Size:  f.st.Size,
		Mode:  fileMode(f.st.Mode),
		Mtime: time.Unix(f.st.Mtim.Sec, f.st.Mtim.Nsec),
	}
	if f.st.Mode&unix.S_IFMT == unix.S_IFLNK {
		t, err := v.linkTarget(f.abs)
		if err != nil {
			return PathStat{}, err
		}
		st.LinkTarget = t
	}
	return st, nil
}

// fileMode turns a stat mode into Go's.
func fileMode(m uint32) fs.FileMode {
	out := fs.FileMode(m & 0o777)
	switch m & unix.S_IFMT {
	case unix.S_IFDIR:
		out |= fs.ModeDir
	case unix.S_IFLNK:
		out |= fs.ModeSymlink
	case unix.S_IFCHR:
		out |= fs.ModeDevice | fs.ModeCharDevice
	case unix.S_IFBLK:
		out |= fs.ModeDevice
	case unix.S_IFIFO:
		out |= fs.ModeNamedPipe
	case unix.S_IFSOCK:
		out |= fs.ModeSocket
	}
	if m&unix.S_ISUID != 0 {
		out |= fs.ModeSetuid
	}
	if m&unix.S_ISGID != 0 {
		out |= fs.ModeSetgid
	}
	if m&unix.S_ISVTX != 0 {
		out |= fs.ModeSticky
	}
	return out
}

// Export writes the container's root filesystem to w as a tar stream
// (docker export): its image's files with the container's changes, not
// what its volumes and bind mounts hold. The container may run; it is
// held (no start, stop or removal) meanwhile.
func (s *Service) Export(ctx context.Context, ns, idOrName string, w io.Writer) error {
	c, rec, err := s.lock(ns, idOrName)
	if err != nil {
		return err
	}
	defer c.op.Unlock()
	if err := checkCopy(idOrName, status(rec)); err != nil {
		return err
	}
	err = s.inView(ctx, ns, idOrName, rec, false, func(v *fsView) error {
		return archive.WriteTree(ctx, w, v.root, ".", "", archive.WriteOptions{})
	})
	if err != nil {
		return fmt.Errorf("export container %s: %w", idOrName, err)
	}
	return nil
}
