package rootfs

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"runtime"
	"strconv"

	pathrs "github.com/cyphar/filepath-securejoin/pathrs-lite"
	"golang.org/x/sys/unix"

	"github.com/skiff-containers/skiff/errdefs"
)

// createKind says what to create at a destination that does not exist yet.
type createKind int

const (
	createNone createKind = iota // the destination must exist
	createDir                    // a directory (and its parents)
	createFile                   // an empty regular file (and its parents)
)

// inRoot opens and creates paths inside the container's rootfs without ever
// leaving it, and runs operations on them through their /proc fd magic link
// (the way runc closed CVE-2021-30465).
type inRoot struct {
	path string   // cleaned, symlink-free absolute host path of the rootfs
	root *os.File // O_PATH handle on it
}

// open resolves unsafePath inside the rootfs, refusing symlinks that climb
// out of it, creates it as kind says if it is missing, and returns an O_PATH
// handle and the resolved path inside the container.
func (r *inRoot) open(unsafePath string, kind createKind) (*os.File, string, error) {
	resolved, err := resolveInRoot(r.path, unsafePath)
	if err != nil {
		return nil, "", err
	}
	f, err := pathrs.OpenatInRoot(r.root, resolved)
	if err == nil || !errors.Is(err, fs.ErrNotExist) || kind == createNone {
		return f, resolved, err
	}
	switch kind {
	case createDir:
		f, err = pathrs.MkdirAllHandle(r.root, resolved, 0o755)
		return f, resolved, err
	case createFile:
		dir, err := pathrs.MkdirAllHandle(r.root, path.Dir(resolved), 0o755)
		if err != nil {
			return nil, resolved, err
		}
		defer dir.Close()
		fd, err := unix.Openat(int(dir.Fd()), path.Base(resolved), unix.O_CREAT|unix.O_NOFOLLOW|unix.O_CLOEXEC|unix.O_RDONLY|unix.O_NONBLOCK, 0o755)
		if err != nil && !errors.Is(err, unix.EEXIST) {
			return nil, resolved, &os.PathError{Op: "create", Path: resolved, Err: err}
		}
		if err == nil {
			unix.Close(fd)
		}
		f, err = pathrs.OpenatInRoot(r.root, resolved)
		return f, resolved, err
	}
	return nil, resolved, fmt.Errorf("%w: unknown create kind %d", errdefs.ErrInvalidArgument, kind)
}

// withProcfd runs fn with the /proc/thread-self/fd path of f, after checking
// that the magic link still points at the expected place inside the rootfs
// (resolved is the path inside the container).
func (r *inRoot) withProcfd(f *os.File, resolved string, fn func(procfd string) error) error {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	procfd := "/proc/thread-self/fd/" + strconv.Itoa(int(f.Fd()))
	want := filepath.Join(r.path, resolved)
	got, err := os.Readlink(procfd)
	if err != nil {
		return fmt.Errorf("check %s: %w", procfd, err)
	}
	if got != want {
		return fmt.Errorf("%w: %s changed to %s while being set up (symlink race?)", errdefs.ErrFailedPrecondition, want, got)
	}
	return fn(procfd)
}

// reopen returns a fresh handle on resolved: after a mount, the old handle
// still names the directory underneath it.
func (r *inRoot) reopen(resolved string) (*os.File, error) {
	return pathrs.OpenatInRoot(r.root, resolved)
}
