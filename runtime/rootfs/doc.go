// Package rootfs owns building the container's filesystem view inside its new
// mount namespace: the spec's mounts, /dev, pivot_root, and the masked and
// read-only paths. It must not create namespaces, cgroups or processes: the
// container's init calls Prepare and then Finalize after it has unshared its
// mount namespace, on a locked OS thread, before it drops privileges.
//
// Behaviour follows runc 1.1 (mount order, flags, the remount of bind mounts,
// the cgroup v1 layout, the /dev nodes and symlinks), with one deliberate
// difference: a mount destination whose resolution would climb out of the
// rootfs through a relative symlink is refused instead of being scoped.
package rootfs
