package archive

import (
	"errors"
	"fmt"
	"os"
	"path"
	"path/filepath"

	"golang.org/x/sys/unix"

	"github.com/skiff-containers/skiff/errdefs"
)

// The rules of `docker cp` (docker's pkg/archive copy.go) that decide
// where a copied archive is extracted, shared by both ends of a copy: the
// CLI for the host, the engine for a container. An archive of a copy
// source always holds one top entry: the source's name (its base name, or
// "." for "DIR/.", the contents of DIR).

// copyError is a refusal of the copy rules, in docker's words, of class.
type copyError struct {
	msg   string
	class error
}

func (e *copyError) Error() string { return e.msg }
func (e *copyError) Unwrap() error { return e.class }

// Refusals of the copy rules (docker's texts).
var (
	// ErrCannotCopyDir: a directory cannot replace an existing file.
	ErrCannotCopyDir error = &copyError{"cannot copy directory", errdefs.ErrInvalidArgument}
	// ErrDirNotExists: a destination ending in "/" must exist when the
	// source is a file.
	ErrDirNotExists error = &copyError{"no such directory", errdefs.ErrNotFound}
	// ErrNotDirectory: the parent of the destination is not a directory.
	ErrNotDirectory error = &copyError{"not a directory", errdefs.ErrInvalidArgument}
)

// CopyInfo is the destination of a copy, as found there.
type CopyInfo struct {
	// Path is where the copy goes, symlinks at its end followed
	// (slash-separated).
	Path   string
	Exists bool
	IsDir  bool
}

// HasTrailingSeparator reports whether p ends in "/".
func HasTrailingSeparator(p string) bool { return len(p) > 0 && p[len(p)-1] == '/' }

// SpecifiesCurrentDir reports whether p's last element is "." ("DIR/.").
func SpecifiesCurrentDir(p string) bool { return filepath.Base(p) == "." }

// AssertsDirectory reports whether p says it is a directory: a trailing
// "/" or a last element ".".
func AssertsDirectory(p string) bool { return HasTrailingSeparator(p) || SpecifiesCurrentDir(p) }

// SplitPathDirEntry splits p, cleaned, into its directory and last
// element, keeping a last "." ("a/b/." is "a/b" and ".").
func SplitPathDirEntry(p string) (dir, base string) {
	cleaned := filepath.Clean(p)
	if SpecifiesCurrentDir(p) {
		cleaned += "/."
	}
	return filepath.Dir(cleaned), filepath.Base(cleaned)
}

// SourceName is the name of the top entry of the archive of a copy
// source given as p: its last element, "." for "DIR/." and for "/".
func SourceName(p string) string {
	if SpecifiesCurrentDir(p) {
		return "."
	}
	b := path.Base(p)
	if b == "/" {
		return "."
	}
	return b
}

// PrepareCopy applies docker's rules to an archive whose top entry is
// srcName (a directory if srcIsDir) copied to dst: it returns the
// directory to extract it into and how to rename its top entry.
//
//   - dst is an existing directory: into it, as it is (SRC/. gives the
//     contents of SRC);
//   - dst is an existing file: a directory is refused (ErrCannotCopyDir),
//     a file replaces it;
//   - dst does not exist: it is created from the source (a directory's
//     contents go into the new directory), unless it ends in "/" or "/."
//     and the source is a file (ErrDirNotExists).
func PrepareCopy(srcName string, srcIsDir bool, dst CopyInfo) (string, Rebase, error) {
	dstDir, dstBase := SplitPathDirEntry(dst.Path)
	switch {
	case dst.Exists && dst.IsDir:
		return dst.Path, Rebase{}, nil
	case dst.Exists && srcIsDir:
		return "", Rebase{}, ErrCannotCopyDir
	case !dst.Exists && !srcIsDir && AssertsDirectory(dst.Path):
		return "", Rebase{}, ErrDirNotExists
	}
	if srcName == dstBase {
		return dstDir, Rebase{}, nil
	}
	return dstDir, Rebase{From: srcName, To: dstBase}, nil
}

// HostSource finds the copy source p on this host, as docker's CLI does:
// the directories leading to it are resolved, its last element is not
// (unless follow, or p ends in "/" or "/."). It returns a handle of the
// directory holding it, its name there ("." when the directory itself is
// the source), the name of the archive's top entry and whether it is a
// directory. The caller closes dir.
func HostSource(p string, follow bool) (dir *os.File, base, name string, isDir bool, err error) {
	name = SourceName(p)
	var parent string
	switch {
	case follow || AssertsDirectory(p):
		resolved, err := filepath.EvalSymlinks(p)
		if err != nil {
			return nil, "", "", false, err
		}
		parent, base = filepath.Dir(resolved), filepath.Base(resolved)
		if SpecifiesCurrentDir(p) || resolved == "/" {
			parent, base = resolved, "."
		}
	default:
		if parent, err = filepath.EvalSymlinks(filepath.Dir(p)); err != nil {
			return nil, "", "", false, err
		}
		base = filepath.Base(p)
	}
	fd, err := unix.Open(parent, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, "", "", false, &os.PathError{Op: "open", Path: parent, Err: err}
	}
	dir = os.NewFile(uintptr(fd), parent)
	var st unix.Stat_t
	if err := unix.Fstatat(fd, base, &st, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		dir.Close()
		return nil, "", "", false, &os.PathError{Op: "lstat", Path: p, Err: err}
	}
	isDir = st.Mode&unix.S_IFMT == unix.S_IFDIR
	if AssertsDirectory(p) && !isDir {
		dir.Close()
		return nil, "", "", false, &os.PathError{Op: "lstat", Path: p, Err: unix.ENOTDIR}
	}
	return dir, base, name, isDir, nil
}

// maxCopySymlinks bounds the symlinks followed at the end of a
// destination (docker's limit).
const maxCopySymlinks = 10

// HostDestination finds the copy destination p on this host, as docker's
// CLI does: symlinks at its end are followed (a dangling one names what
// the copy creates); a destination that does not exist needs an existing
// parent directory.
func HostDestination(p string) (CopyInfo, error) {
	orig := p
	fi, err := os.Lstat(p)
	for n := 0; err == nil && fi.Mode()&os.ModeSymlink != 0; n++ {
		if n >= maxCopySymlinks {
			return CopyInfo{}, fmt.Errorf("too many symlinks in %s: %w", orig, errdefs.ErrInvalidArgument)
		}
		target, rerr := os.Readlink(p)
		if rerr != nil {
			return CopyInfo{}, rerr
		}
		if !filepath.IsAbs(target) {
			dir, _ := SplitPathDirEntry(p)
			target = filepath.Join(dir, target)
		}
		p = target
		fi, err = os.Lstat(p)
	}
	if err == nil {
		return CopyInfo{Path: p, Exists: true, IsDir: fi.IsDir()}, nil
	}
	if !errors.Is(err, os.ErrNotExist) {
		return CopyInfo{}, err
	}
	parent, _ := SplitPathDirEntry(p)
	pfi, err := os.Stat(parent)
	if err != nil {
		return CopyInfo{}, err
	}
	if !pfi.IsDir() {
		return CopyInfo{}, ErrNotDirectory
	}
	return CopyInfo{Path: p}, nil
}

// PreserveTrailingDotOrSeparator gives cleaned the trailing "/." or "/"
// that original had.
func PreserveTrailingDotOrSeparator(cleaned, original string) string {
	if SpecifiesCurrentDir(original) && !SpecifiesCurrentDir(cleaned) {
		if !HasTrailingSeparator(cleaned) {
			cleaned += "/"
		}
		cleaned += "."
	}
	if HasTrailingSeparator(original) && !HasTrailingSeparator(cleaned) {
		cleaned += "/"
	}
	return cleaned
}
