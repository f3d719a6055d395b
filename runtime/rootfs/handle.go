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
	"strings"

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
	// noOpenat2 is set once openat2(2) turned out to be missing (Linux <
	// 5.6): pathrs-lite then does the lookups its own, slower, safe way.
	noOpenat2 bool
}

// open resolves unsafePath inside the rootfs, refusing symlinks that climb
// out of it, creates it as kind says if it is missing, and returns an O_PATH
// handle and the resolved path inside the container.
func (r *inRoot) open(unsafePath string, kind createKind) (*os.File, string, error) {
	resolved, err := resolveInRoot(r.path, unsafePath)
	if err != nil {
		return nil, "", err
	}
	f, err := r.reopen(resolved)
	if err == nil || !errors.Is(err, fs.ErrNotExist) || kind == createNone {
		return f, resolved, err
	}
	switch kind {
	case createDir:
		f, err = r.mkdirAll(resolved)
		return f, resolved, err
	case createFile:
		dir, err := r.mkdirAll(path.Dir(resolved))
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
		f, err = r.reopen(resolved)
		return f, resolved, err
	}
	return nil, resolved, fmt.Errorf("%w: unknown create kind %d", errdefs.ErrInvalidArgument, kind)
}

// openat2 opens name under dir with openat2(2), retrying the spurious
// EAGAIN (and EXDEV) that a scoped lookup gets when a rename or mount races
// with "..", as pathrs-lite does.
func openat2(dir *os.File, name string, how *unix.OpenHow, fullPath string) (*os.File, error) {
	for tries := 0; ; tries++ {
		fd, err := unix.Openat2(int(dir.Fd()), name, how)
		if err == nil {
			return os.NewFile(uintptr(fd), fullPath), nil
		}
		if (err == unix.EAGAIN || err == unix.EXDEV || err == unix.EINTR) && tries < 128 {
			continue
		}
		return nil, &os.PathError{Op: "openat2", Path: fullPath, Err: err}
	}
}

// mkdirAll creates the directory resolved (a path inside the container, as
// resolveInRoot returns it) and its missing parents, and returns an O_PATH
// handle on it. The deepest existing ancestor is found by a lookup the
// kernel keeps inside the root; each missing component is then made with
// mkdirat(2) under its parent's handle and opened from it without following
// symlinks, so a tree changing meanwhile cannot redirect it. One lookup
// and two syscalls per created directory, where pathrs-lite's general
// MkdirAllHandle verifies its handles through a private procfs at each step.
func (r *inRoot) mkdirAll(resolved string) (*os.File, error) {
	if r.noOpenat2 {
		return pathrs.MkdirAllHandle(r.root, resolved, 0o755)
	}
	parts := strings.FieldsFunc(resolved, func(c rune) bool { return c == '/' })
	n := len(parts)
	var dir *os.File
	for {
		f, err := r.reopen("/" + strings.Join(parts[:n], "/"))
		if err == nil {
			dir = f
			break
		}
		if r.noOpenat2 {
			return pathrs.MkdirAllHandle(r.root, resolved, 0o755)
		}
		if !errors.Is(err, fs.ErrNotExist) || n == 0 {
			return nil, err
		}
		n--
	}
	for i := n; i < len(parts); i++ {
		full := filepath.Join(r.path, filepath.Join(parts[:i+1]...))
		if parts[i] == "." || parts[i] == ".." { // resolveInRoot leaves none
			dir.Close()
			return nil, &os.PathError{Op: "mkdir", Path: full, Err: unix.EINVAL}
		}
		if err := unix.Mkdirat(int(dir.Fd()), parts[i], 0o755); err != nil && err != unix.EEXIST {
			dir.Close()
			return nil, &os.PathError{Op: "mkdirat", Path: full, Err: err}
		}
		next, err := openat2(dir, parts[i], &unix.OpenHow{
			Flags:   unix.O_PATH | unix.O_DIRECTORY | unix.O_NOFOLLOW | unix.O_CLOEXEC,
			Resolve: unix.RESOLVE_BENEATH | unix.RESOLVE_NO_SYMLINKS | unix.RESOLVE_NO_MAGICLINKS,
		}, full)
		dir.Close()
		if err != nil {
			return nil, err
		}
		dir = next
	}
	return dir, nil
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

// reopen returns a fresh handle on resolved (a path inside the container):
// after a mount, the old handle still names the directory underneath it.
// The kernel resolves it inside the root (openat2 RESOLVE_IN_ROOT, no magic
// links): one syscall, where pathrs-lite's OpenatInRoot adds a dozen to name
// the handle through a verified private procfs. The handle is named by the
// path it was asked for; withProcfd checks what it really is before any use.
func (r *inRoot) reopen(resolved string) (*os.File, error) {
	if r.noOpenat2 {
		return pathrs.OpenatInRoot(r.root, resolved)
	}
	f, err := openat2(r.root, resolved, &unix.OpenHow{
		Flags:   unix.O_PATH | unix.O_CLOEXEC,
		Resolve: unix.RESOLVE_IN_ROOT | unix.RESOLVE_NO_MAGICLINKS,
	}, filepath.Join(r.path, resolved))
	if errors.Is(err, unix.ENOSYS) {
		r.noOpenat2 = true
		return pathrs.OpenatInRoot(r.root, resolved)
	}
	return f, err
}
