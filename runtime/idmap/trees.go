package idmap

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"slices"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/skiff-containers/skiff/errdefs"
	"github.com/skiff-containers/skiff/runtime/spec"
)

// OpenTrees makes, for every mount of s that has a user namespace fd in
// userns (ForMounts), a detached ID-mapped clone of the mount's source: the
// source (relative sources are taken relative to bundle) is cloned with
// open_tree(2) OPEN_TREE_CLONE (with AT_RECURSIVE for "rbind"), and
// MOUNT_ATTR_IDMAP is set on the clone with mount_setattr(2) (on every mount
// of the tree for "ridmap"). Nothing is attached anywhere: the caller
// passes the returned files (O_PATH, close-on-exec, one per mount, keyed by
// the mount's index) to the container's init, which moves each onto its
// destination inside the rootfs.
//
// This is how a container with a user namespace of its own gets ID-mapped
// mounts, as in runc 1.2: its init may not ID-map mounts of filesystems
// owned by the host's user namespace, so the runtime, in the host's user
// namespace, does it for it. The sources are looked up in the mount
// namespace at mntns (a path such as /proc/<init pid>/ns/mnt), joined by a
// thread of its own that dies afterwards; empty mntns means the caller's
// own. A source that does not exist is ErrNotFound; one that cannot be
// cloned or whose filesystem refuses ID-mapping is ErrInvalidArgument naming
// the mount. On error nothing stays open. It needs root.
func OpenTrees(mntns, bundle string, s *specs.Spec, userns map[int]*os.File) (map[int]*os.File, error) {
	if s == nil {
		return nil, fmt.Errorf("%w: no spec", errdefs.ErrInvalidArgument)
	}
	indices := make([]int, 0, len(userns))
	for i := range userns {
		if i < 0 || i >= len(s.Mounts) {
			return nil, fmt.Errorf("%w: no mounts[%d] in the spec", errdefs.ErrInvalidArgument, i)
		}
		indices = append(indices, i)
	}
	slices.Sort(indices)
	type result struct {
		trees map[int]*os.File
		err   error
	}
	done := make(chan result, 1)
	go func() {
		runtime.LockOSThread()
		if mntns == "" {
			defer runtime.UnlockOSThread()
		} else if err := joinMountNS(mntns); err != nil {
			// Never unlocked: a thread that may have changed namespace
			// dies with this goroutine instead of serving others.
			done <- result{err: err}
			return
		}
		trees := map[int]*os.File{}
		for _, i := range indices {
			f, err := openTree(bundle, s, i, userns[i])
			if err != nil {
				CloseAll(trees)
				done <- result{err: err}
				return
			}
			trees[i] = f
		}
		done <- result{trees: trees}
	}()
	r := <-done
	return r.trees, r.err
}

// joinMountNS moves the calling (locked) thread into the mount namespace at
// path: it must first stop sharing its filesystem context (root, cwd) with
// the rest of the process, which setns(CLONE_NEWNS) requires.
func joinMountNS(path string) error {
	if err := unix.Unshare(unix.CLONE_FS); err != nil {
		return fmt.Errorf("ID-mapped mounts: unshare the filesystem context of a thread: %w", err)
	}
	ns, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("ID-mapped mounts: open the container's mount namespace: %w", err)
	}
	defer ns.Close()
	if err := unix.Setns(int(ns.Fd()), unix.CLONE_NEWNS); err != nil {
		return fmt.Errorf("ID-mapped mounts: join the container's mount namespace %s: %w", path, err)
	}
	return nil
}

// openTree makes the ID-mapped clone for s.Mounts[i].
func openTree(bundle string, s *specs.Spec, i int, userns *os.File) (*os.File, error) {
	m := s.Mounts[i]
	name := fmt.Sprintf("mounts[%d] (destination %q)", i, m.Destination)
	if userns == nil {
		return nil, fmt.Errorf("%w: %s: no user namespace for its ID mapping", errdefs.ErrInvalidArgument, name)
	}
	opts, err := spec.ParseMountOptions(m.Options)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	src := m.Source
	if !filepath.IsAbs(src) {
		src = filepath.Join(bundle, src)
	}
	flags := uint(unix.OPEN_TREE_CLONE | unix.OPEN_TREE_CLOEXEC)
	if opts.Flags&unix.MS_REC != 0 {
		flags |= unix.AT_RECURSIVE
	}
	fd, err := unix.OpenTree(unix.AT_FDCWD, src, flags)
	switch {
	case errors.Is(err, unix.ENOENT):
		return nil, fmt.Errorf("%w: %s: bind source %q does not exist; create it or fix the mount's source", errdefs.ErrNotFound, name, src)
	case errors.Is(err, unix.EINVAL):
		return nil, fmt.Errorf("%w: %s: the kernel refused to clone the bind source %q (open_tree: %w): it is unbindable, or it has mounts under it, which a non-recursive bind may not reveal in a container with its own user namespace; use \"rbind\"",
			errdefs.ErrInvalidArgument, name, src, err)
	case err != nil:
		return nil, fmt.Errorf("%s: clone the bind source %q (open_tree): %w", name, src, err)
	}
	tree := os.NewFile(uintptr(fd), src)
	attrFlags := uint(unix.AT_EMPTY_PATH)
	if opts.IDMapRecursive {
		attrFlags |= unix.AT_RECURSIVE
	}
	err = unix.MountSetattr(fd, "", attrFlags, &unix.MountAttr{Attr_set: unix.MOUNT_ATTR_IDMAP, Userns_fd: uint64(userns.Fd())})
	runtime.KeepAlive(userns)
	if err != nil {
		defer tree.Close()
		switch {
		case errors.Is(err, unix.EINVAL):
			under := ""
			if opts.IDMapRecursive {
				under = ", or one of the mounts under it does not (ridmap)"
			}
			return nil, fmt.Errorf("%w: %s: the kernel refused to ID-map the bind source %q (mount_setattr MOUNT_ATTR_IDMAP: %w): its filesystem (%s) does not support ID-mapped mounts on this kernel%s; choose a source on one that does (ext4, xfs, btrfs, tmpfs on Linux 6.3+)",
				errdefs.ErrInvalidArgument, name, src, err, fsName(fd), under)
		case errors.Is(err, unix.EPERM):
			return nil, fmt.Errorf("%w: %s: the kernel refused to ID-map the bind source %q (mount_setattr MOUNT_ATTR_IDMAP: %w): it is already ID-mapped, or its filesystem is owned by a user namespace the runtime has no privilege over",
				errdefs.ErrInvalidArgument, name, src, err)
		}
		return nil, fmt.Errorf("%s: ID-map the clone of %q (mount_setattr MOUNT_ATTR_IDMAP): %w", name, src, err)
	}
	return tree, nil
}

// fsName names the filesystem fd is on, for messages.
func fsName(fd int) string {
	var st unix.Statfs_t
	if err := unix.Fstatfs(fd, &st); err != nil {
		return "unknown type"
	}
	switch st.Type {
	case unix.OVERLAYFS_SUPER_MAGIC:
		return "overlayfs"
	case unix.RAMFS_MAGIC:
		return "ramfs"
	case unix.PROC_SUPER_MAGIC:
		return "procfs"
	case unix.SYSFS_MAGIC:
		return "sysfs"
	case unix.TMPFS_MAGIC:
		return "tmpfs or devtmpfs"
	case unix.NFS_SUPER_MAGIC:
		return "nfs"
	case unix.FUSE_SUPER_MAGIC:
		return "fuse"
	}
	return fmt.Sprintf("statfs type %#x", st.Type)
}
