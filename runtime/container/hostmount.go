package container

import (
	"errors"
	"fmt"
	"path/filepath"

	"github.com/moby/sys/mountinfo"
	"golang.org/x/sys/unix"

	"github.com/skiff-containers/skiff/errdefs"
)

// A container without a mount namespace of its own (no "mount" entry in
// linux.namespaces) shares the runtime's: its root is built there, where
// everybody sees it, as runc does. Unlike runc, skiff-runtime leaves the
// propagation of the host's "/" alone, builds the root on a bind mount of
// the rootfs that the runtime makes and records (by mount ID), and detaches
// that bind, with everything mounted under it, when the container is
// deleted or its create fails: nothing stays mounted on the host. The init
// enters the root with chroot(2), since pivot_root would move the host's
// own root.

// bindSharedRootfs bind-mounts rootfs onto itself in the runtime's mount
// namespace and returns the resolved path and the new mount's ID.
func bindSharedRootfs(rootfs string) (string, uint64, error) {
	path, err := filepath.EvalSymlinks(rootfs)
	if err != nil {
		return "", 0, fmt.Errorf("rootfs %q: %w: %w", rootfs, errdefs.ErrNotFound, err)
	}
	if path == "/" {
		return "", 0, fmt.Errorf("the host's / cannot be a container rootfs: %w", errdefs.ErrInvalidArgument)
	}
	if err := unix.Mount(path, path, "", unix.MS_BIND|unix.MS_REC, ""); err != nil {
		return "", 0, fmt.Errorf("bind-mount the rootfs %s onto itself in the runtime's mount namespace: %w", path, err)
	}
	id, err := topMountID(path)
	if err != nil {
		_ = unix.Unmount(path, unix.MNT_DETACH)
		return "", 0, fmt.Errorf("rootfs %s: %w", path, err)
	}
	return path, id, nil
}

// topMountID is the ID of the mount on top of path.
func topMountID(path string) (uint64, error) {
	var stx unix.Statx_t
	if err := unix.Statx(unix.AT_FDCWD, path, unix.AT_SYMLINK_NOFOLLOW|unix.AT_NO_AUTOMOUNT, unix.STATX_MNT_ID, &stx); err != nil {
		return 0, fmt.Errorf("statx: %w", err)
	}
	if stx.Mask&unix.STATX_MNT_ID == 0 {
		return 0, errors.New("the kernel does not report mount IDs (statx STATX_MNT_ID)")
	}
	return stx.Mnt_id, nil
}

// detachSharedRootfs detaches the bind mount id at path and whatever was
// mounted on top of it there (the container's mounts under it go with it).
// Mounts below it, such as the rootfs's own mount, are left alone; a bind
// that is gone already is not an error.
func detachSharedRootfs(path string, id uint64) error {
	for range 64 {
		mounted, err := hasMount(id)
		if err != nil {
			return err
		}
		if !mounted {
			return nil
		}
		if err := unix.Unmount(path, unix.MNT_DETACH); err != nil {
			return fmt.Errorf("detach the container's root at %s (mount %d) from the runtime's mount namespace: %w", path, id, err)
		}
	}
	return fmt.Errorf("detach the container's root at %s (mount %d): still mounted after 64 detaches of that path", path, id)
}

// hasMount reports whether this mount namespace has a mount with ID id.
func hasMount(id uint64) (bool, error) {
	found, err := mountinfo.GetMounts(func(m *mountinfo.Info) (skip, stop bool) {
		return uint64(m.ID) != id, uint64(m.ID) == id
	})
	if err != nil {
		return false, fmt.Errorf("read the runtime's mountinfo: %w", err)
	}
	return len(found) > 0, nil
}
