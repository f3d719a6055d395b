package volumes

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"

	pathrs "github.com/cyphar/filepath-securejoin/pathrs-lite"
	"golang.org/x/sys/unix"

	"github.com/skiff-containers/skiff/engine/metadata"
	"github.com/skiff-containers/skiff/errdefs"
)

// maxSeedDepth bounds the directory nesting Seed copies.
const maxSeedDepth = 256

// Seed copies what the container's root filesystem rootfs holds at target
// into volume name, if the volume is empty (docker copies an image's
// content into a volume the first time it is mounted over it). The
// content is copied with its ownership, modes, times, extended attributes
// (where the filesystems allow), symlinks as symlinks, hard links as hard
// links and device nodes as nodes. target is resolved inside rootfs, so a
// symlink in the image cannot lead out of it; nothing inside is followed.
// A target that does not exist, or is not a directory, copies nothing. On
// failure the volume is emptied again. It reports whether it copied.
func (s *Service) Seed(ctx context.Context, ns, name, rootfs, target string) (bool, error) {
	if err := metadata.ValidateVolumeName(name); err != nil {
		return false, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, err := s.cfg.DB.GetVolume(ns, name); err != nil {
		return false, fmt.Errorf("seed volume %s: %w", name, noSuchVolume(name, err))
	}
	data := s.Path(ns, name)
	dst, err := os.Open(data)
	if err != nil {
		return false, fmt.Errorf("seed volume %s: %w", name, err)
	}
	defer dst.Close()
	if names, err := dst.Readdirnames(1); err == nil && len(names) > 0 {
		return false, nil // not empty: docker copies only into an empty volume
	} else if err != nil && !errors.Is(err, io.EOF) {
		return false, fmt.Errorf("seed volume %s: %w", name, err)
	}

	handle, err := pathrs.OpenInRoot(rootfs, target)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return false, nil
		}
		return false, fmt.Errorf("seed volume %s from the image's %s: %w", name, target, err)
	}
	defer handle.Close()
	src, err := pathrs.Reopen(handle, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC)
	if err != nil {
		if errors.Is(err, unix.ENOTDIR) {
			return false, nil
		}
		return false, fmt.Errorf("seed volume %s from the image's %s: %w", name, target, err)
	}
	defer src.Close()

	c := &copier{ctx: ctx, links: map[devIno]string{}, root: dst}
	err = c.dir(src, dst, "", 0)
	if err == nil {
		// docker's copyOwnership: the volume takes the image directory's
		// owner and mode.
		err = c.meta(src, dst)
	}
	if err != nil {
		if cerr := emptyDir(data); cerr != nil {
			s.log.Warn("empty a volume after a failed seed", "namespace", ns, "name", name, "err", cerr)
		}
		return false, fmt.Errorf("seed volume %s from the image's %s: %w", name, target, err)
	}
	s.log.Info("volume seeded from the image", "namespace", ns, "name", name, "path", target)
	return true, nil
}

type devIno struct{ dev, ino uint64 }

// copier copies a directory tree between open directories, never
// following a symlink (every open is O_NOFOLLOW relative to its parent).
type copier struct {
	ctx context.Context
	// links maps the source inodes with several links to their first
	// copy, relative to root.
	links map[devIno]string
	root  *os.File
}

func (c *copier) dir(src, dst *os.File, rel string, depth int) error {
	if depth > maxSeedDepth {
		return fmt.Errorf("%s: nested deeper than %d directories: %w", rel, maxSeedDepth, errdefs.ErrInvalidArgument)
	}
	if err := c.ctx.Err(); err != nil {
		return err
	}
	names, err := src.Readdirnames(-1)
	if err != nil {
		return fmt.Errorf("read %s: %w", rel, err)
	}
	sfd, dfd := int(src.Fd()), int(dst.Fd())
	for _, name := range names {
		p := filepath.Join(rel, name)
		var st unix.Stat_t
		if err := unix.Fstatat(sfd, name, &st, unix.AT_SYMLINK_NOFOLLOW); err != nil {
			return fmt.Errorf("stat %s: %w", p, err)
		}
		if err := c.entry(sfd, dfd, name, p, &st, depth); err != nil {
			return err
		}
	}
	return nil
}

func (c *copier) entry(sfd, dfd int, name, rel string, st *unix.Stat_t, depth int) error {
	mode := st.Mode & unix.S_IFMT
	switch mode {
	case unix.S_IFDIR:
		if err := unix.Mkdirat(dfd, name, 0o700); err != nil {
			return fmt.Errorf("make %s: %w", rel, err)
		}
		s, err := openAt(sfd, name, unix.O_RDONLY|unix.O_DIRECTORY)
		if err != nil {
			return fmt.Errorf("open %s: %w", rel, err)
		}
		defer s.Close()
		d, err := openAt(dfd, name, unix.O_RDONLY|unix.O_DIRECTORY)
		if err != nil {
			return fmt.Errorf("open the copy of %s: %w", rel, err)
		}
		defer d.Close()
		if err := c.dir(s, d, rel, depth+1); err != nil {
			return err
		}
		return c.metaOf(s, d, st, rel)
	case unix.S_IFREG:
		key := devIno{uint64(st.Dev), st.Ino}
		if st.Nlink > 1 {
			if first, ok := c.links[key]; ok {
				if err := unix.Linkat(int(c.root.Fd()), first, dfd, name, 0); err != nil {
					return fmt.Errorf("link %s to %s: %w", rel, first, err)
				}
				return nil
			}
			c.links[key] = rel
		}
		s, err := openAt(sfd, name, unix.O_RDONLY)
		if err != nil {
			return fmt.Errorf("open %s: %w", rel, err)
		}
		defer s.Close()
		fd, err := unix.Openat(dfd, name, unix.O_WRONLY|unix.O_CREAT|unix.O_EXCL|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0o600)
		if err != nil {
			return fmt.Errorf("create the copy of %s: %w", rel, err)
		}
		d := os.NewFile(uintptr(fd), rel)
		defer d.Close()
		if _, err := io.Copy(d, s); err != nil {
			return fmt.Errorf("copy %s: %w", rel, err)
		}
		return c.metaOf(s, d, st, rel)
	case unix.S_IFLNK:
		target, err := readlinkAt(sfd, name)
		if err != nil {
			return fmt.Errorf("read link %s: %w", rel, err)
		}
		if err := unix.Symlinkat(target, dfd, name); err != nil {
			return fmt.Errorf("make link %s: %w", rel, err)
		}
		if err := unix.Fchownat(dfd, name, int(st.Uid), int(st.Gid), unix.AT_SYMLINK_NOFOLLOW); err != nil {
			return fmt.Errorf("chown link %s: %w", rel, err)
		}
		return unix.UtimesNanoAt(dfd, name, []unix.Timespec{st.Atim, st.Mtim}, unix.AT_SYMLINK_NOFOLLOW)
	case unix.S_IFCHR, unix.S_IFBLK, unix.S_IFIFO, unix.S_IFSOCK:
		if err := unix.Mknodat(dfd, name, st.Mode, int(st.Rdev)); err != nil {
			return fmt.Errorf("make node %s: %w", rel, err)
		}
		if err := unix.Fchownat(dfd, name, int(st.Uid), int(st.Gid), unix.AT_SYMLINK_NOFOLLOW); err != nil {
			return fmt.Errorf("chown %s: %w", rel, err)
		}
		if err := unix.Fchmodat(dfd, name, st.Mode&0o7777, 0); err != nil {
			return fmt.Errorf("chmod %s: %w", rel, err)
		}
		return unix.UtimesNanoAt(dfd, name, []unix.Timespec{st.Atim, st.Mtim}, unix.AT_SYMLINK_NOFOLLOW)
	default:
		return nil
	}
}

// meta gives dst src's owner, mode, xattrs and times.
func (c *copier) meta(src, dst *os.File) error {
	var st unix.Stat_t
	if err := unix.Fstat(int(src.Fd()), &st); err != nil {
		return err
	}
	return c.metaOf(src, dst, &st, ".")
}

// metaOf gives dst (an open file or directory) the owner, mode, extended
// attributes and times of st and src. The mode is set after the owner:
// chown clears the set-id bits.
func (c *copier) metaOf(src, dst *os.File, st *unix.Stat_t, rel string) error {
	dfd := int(dst.Fd())
	if err := unix.Fchown(dfd, int(st.Uid), int(st.Gid)); err != nil {
		return fmt.Errorf("chown %s: %w", rel, err)
	}
	if err := unix.Fchmod(dfd, st.Mode&0o7777); err != nil {
		return fmt.Errorf("chmod %s: %w", rel, err)
	}
	if err := copyXattrs(int(src.Fd()), dfd); err != nil {
		return fmt.Errorf("extended attributes of %s: %w", rel, err)
	}
	if err := unix.UtimesNanoAt(dfd, "", []unix.Timespec{st.Atim, st.Mtim}, unix.AT_EMPTY_PATH); err != nil {
		return fmt.Errorf("times of %s: %w", rel, err)
	}
	return nil
}

// copyXattrs copies the extended attributes the destination's filesystem
// takes; those it does not support (or refuses, like overlayfs's own) are
// skipped.
func copyXattrs(sfd, dfd int) error {
	size, err := unix.Flistxattr(sfd, nil)
	if err != nil || size == 0 {
		if errors.Is(err, unix.ENOTSUP) {
			return nil
		}
		return err
	}
	buf := make([]byte, size)
	size, err = unix.Flistxattr(sfd, buf)
	if err != nil {
		return err
	}
	for _, key := range splitNul(buf[:size]) {
		vsize, err := unix.Fgetxattr(sfd, key, nil)
		if err != nil {
			continue
		}
		val := make([]byte, vsize)
		if vsize, err = unix.Fgetxattr(sfd, key, val); err != nil {
			continue
		}
		if err := unix.Fsetxattr(dfd, key, val[:vsize], 0); err != nil {
			if errors.Is(err, unix.ENOTSUP) || errors.Is(err, unix.EPERM) || errors.Is(err, unix.EINVAL) {
				continue
			}
			return fmt.Errorf("%s: %w", key, err)
		}
	}
	return nil
}

func splitNul(b []byte) []string {
	var out []string
	start := 0
	for i, c := range b {
		if c == 0 {
			if i > start {
				out = append(out, string(b[start:i]))
			}
			start = i + 1
		}
	}
	return out
}

func openAt(dirfd int, name string, flags int) (*os.File, error) {
	fd, err := unix.Openat(dirfd, name, flags|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, err
	}
	return os.NewFile(uintptr(fd), name), nil
}

func readlinkAt(dirfd int, name string) (string, error) {
	for size := 256; size <= 1<<16; size *= 4 {
		buf := make([]byte, size)
		n, err := unix.Readlinkat(dirfd, name, buf)
		if err != nil {
			return "", err
		}
		if n < size {
			return string(buf[:n]), nil
		}
	}
	return "", fmt.Errorf("link target longer than 64 KiB: %w", errdefs.ErrInvalidArgument)
}

// emptyDir removes everything inside dir.
func emptyDir(dir string) error {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return err
	}
	var errs []error
	for _, e := range entries {
		errs = append(errs, os.RemoveAll(filepath.Join(dir, e.Name())))
	}
	return errors.Join(errs...)
}
