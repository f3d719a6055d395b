package containers

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path"
	"runtime"
	"slices"
	"strconv"
	"strings"

	"github.com/moby/sys/mountinfo"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	pathrs "github.com/cyphar/filepath-securejoin/pathrs-lite"

	"github.com/skiff-containers/skiff/engine/metadata"
	"github.com/skiff-containers/skiff/errdefs"
	"github.com/skiff-containers/skiff/image/snapshot"
)

// A container's files, as cp and export reach them, are seen from a
// private mount namespace of one OS thread: there its root filesystem is
// mounted (the snapshot is mounted for the occasion if the container's is
// not), read-only if the container's is, and, for cp, its bind mounts and
// volumes are mounted over it as in the container (docker's
// daemon.mountVolumes). Nothing made there is visible to the host or to
// the container, and everything goes with the thread: the goroutine
// never unlocks it, so the thread, its namespace and its mounts end with
// it, whatever way it returns.

// fsView is a container's root filesystem in the private namespace.
type fsView struct {
	// ref is the container as the caller named it, for messages.
	ref string
	// root is an O_PATH handle of the root filesystem; rootPath its path
	// (in the private namespace).
	root     *os.File
	rootPath string
	// readOnly is the container's --read-only.
	readOnly bool
	// binds are the bind mounts (volumes, binds, /etc files) made over
	// the root, when asked for.
	binds []viewBind
}

// viewBind is a bind mount of the container.
type viewBind struct {
	dest     string // in the container, clean
	readOnly bool
}

// specBinds returns the bind mounts of a container's runtime spec in the
// order to make them (parents before what they hold).
func specBinds(spec []byte) ([]specs.Mount, error) {
	var s specs.Spec
	if err := json.Unmarshal(spec, &s); err != nil {
		return nil, fmt.Errorf("read its runtime spec: %w", err)
	}
	var out []specs.Mount
	for _, m := range s.Mounts {
		if m.Type == "bind" || slices.Contains(m.Options, "bind") || slices.Contains(m.Options, "rbind") {
			m.Destination = path.Clean("/" + m.Destination)
			out = append(out, m)
		}
	}
	slices.SortStableFunc(out, func(a, b specs.Mount) int {
		return strings.Count(a.Destination, "/") - strings.Count(b.Destination, "/")
	})
	return out, nil
}

// inView runs fn with the container's files seen from a private mount
// namespace (see fsView), with its binds and volumes mounted if withBinds.
// The caller holds the container's op lock (no start or removal
// meanwhile). fn runs on the namespace's thread: it must not hand path
// lookups to other goroutines.
func (s *Service) inView(ctx context.Context, ns, ref string, rec metadata.Container, withBinds bool, fn func(*fsView) error) error {
	errc := make(chan error, 1)
	go func() {
		// Not unlocked: the thread, with its mount namespace, ends with
		// this goroutine (see above).
		runtime.LockOSThread()
		errc <- s.openView(ctx, ns, ref, rec, withBinds, fn)
	}()
	return <-errc
}

func (s *Service) openView(ctx context.Context, ns, ref string, rec metadata.Container, withBinds bool, fn func(*fsView) error) error {
	if err := unix.Unshare(unix.CLONE_NEWNS | unix.CLONE_FS); err != nil {
		return fmt.Errorf("container %s: make a private mount namespace to reach its files: %w", ref, err)
	}
	// Nothing mounted here may propagate to the host's mounts.
	if err := unix.Mount("", "/", "", unix.MS_REC|unix.MS_PRIVATE, ""); err != nil {
		return fmt.Errorf("container %s: make the private mount namespace private: %w", ref, err)
	}
	rootfs := s.rootfsDir(ns, rec.ID)
	if err := os.MkdirAll(rootfs, 0o755); err != nil {
		return fmt.Errorf("container %s: its rootfs directory: %w", ref, err)
	}
	mounted, err := mountinfo.Mounted(rootfs)
	if err != nil {
		return fmt.Errorf("container %s: check the mount of %s: %w", ref, rootfs, err)
	}
	if !mounted {
		mounts, err := s.cfg.Snapshotter.Mounts(ctx, rec.SnapshotKey)
		if err != nil {
			return fmt.Errorf("container %s: its writable layer: %w", ref, err)
		}
		if err := snapshot.MountAll(mounts, rootfs); err != nil {
			return fmt.Errorf("container %s: mount its root filesystem: %w", ref, err)
		}
	}
	cc := decodeConfig(rec)
	fd, err := unix.Open(rootfs, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("container %s: open its root filesystem: %w", ref, err)
	}
	v := &fsView{ref: ref, root: os.NewFile(uintptr(fd), rootfs), rootPath: rootfs, readOnly: cc.ReadOnly}
	defer v.root.Close()
	if withBinds {
		binds, err := specBinds(rec.Spec)
		if err != nil {
			return fmt.Errorf("container %s: %w", ref, err)
		}
		for _, m := range binds {
			if err := v.bind(m); err != nil {
				return fmt.Errorf("container %s: mount %s at %s: %w", ref, m.Source, m.Destination, err)
			}
			v.binds = append(v.binds, viewBind{dest: m.Destination, readOnly: slices.Contains(m.Options, "ro")})
		}
	}
	if cc.ReadOnly {
		// Once the mount points are made. Only this namespace's view of
		// the root mount becomes read-only, not the mounts over it.
		if err := unix.MountSetattr(int(v.root.Fd()), "", unix.AT_EMPTY_PATH, &unix.MountAttr{Attr_set: unix.MOUNT_ATTR_RDONLY}); err != nil {
			return fmt.Errorf("container %s: make its root filesystem read-only here: %w", ref, err)
		}
	}
	return fn(v)
}

// bind mounts m over the root, at its destination resolved inside the
// root (made if missing, as the runtime would at start), with the new
// mount API so that no path is looked up twice.
func (v *fsView) bind(m specs.Mount) error {
	var src unix.Stat_t
	if err := unix.Stat(m.Source, &src); err != nil {
		if errors.Is(err, unix.ENOENT) {
			return nil // the runtime would fail at start; nothing to reach there
		}
		return err
	}
	target, err := v.mountPoint(m.Destination, src.Mode&unix.S_IFMT == unix.S_IFDIR)
	if err != nil {
		return err
	}
	defer target.Close()
	flags := unix.OPEN_TREE_CLONE | unix.OPEN_TREE_CLOEXEC
	if !slices.Contains(m.Options, "bind") {
		flags |= unix.AT_RECURSIVE
	}
	tree, err := unix.OpenTree(unix.AT_FDCWD, m.Source, uint(flags))
	if err != nil {
		return fmt.Errorf("open_tree: %w", err)
	}
	defer unix.Close(tree)
	if slices.Contains(m.Options, "ro") {
		if err := unix.MountSetattr(tree, "", unix.AT_EMPTY_PATH|unix.AT_RECURSIVE, &unix.MountAttr{Attr_set: unix.MOUNT_ATTR_RDONLY}); err != nil {
			return fmt.Errorf("make it read-only: %w", err)
		}
	}
	if err := unix.MoveMount(tree, "", int(target.Fd()), "", unix.MOVE_MOUNT_F_EMPTY_PATH|unix.MOVE_MOUNT_T_EMPTY_PATH); err != nil {
		return fmt.Errorf("move_mount: %w", err)
	}
	return nil
}

// mountPoint returns a handle of dest inside the root, made (a directory,
// or an empty file) if it is missing.
func (v *fsView) mountPoint(dest string, dir bool) (*os.File, error) {
	h, err := pathrs.OpenatInRoot(v.root, dest)
	if err == nil || !errors.Is(err, os.ErrNotExist) {
		return h, err
	}
	if dir {
		return pathrs.MkdirAllHandle(v.root, dest, 0o755)
	}
	parent, err := pathrs.MkdirAllHandle(v.root, path.Dir(dest), 0o755)
	if err != nil {
		return nil, err
	}
	defer parent.Close()
	fd, err := unix.Openat(int(parent.Fd()), path.Base(dest), unix.O_CREAT|unix.O_EXCL|unix.O_WRONLY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0o644)
	if err != nil && !errors.Is(err, unix.EEXIST) {
		return nil, err
	}
	if err == nil {
		unix.Close(fd)
	}
	return pathrs.OpenatInRoot(v.root, dest)
}

// containerPath returns the path in the container of h, a handle of
// something inside the root.
func (v *fsView) containerPath(h *os.File) (string, error) {
	p, err := os.Readlink("/proc/thread-self/fd/" + strconv.Itoa(int(h.Fd())))
	if err != nil {
		return "", err
	}
	rel, ok := strings.CutPrefix(p, v.rootPath)
	if !ok || rel != "" && rel[0] != '/' {
		return "", fmt.Errorf("%s is not inside the root filesystem %s: %w", p, v.rootPath, errdefs.ErrInvalidArgument)
	}
	return path.Clean("/" + rel), nil
}

// bindAt returns the bind mount holding the container path p (the
// deepest), or nil.
func (v *fsView) bindAt(p string) *viewBind {
	var best *viewBind
	for i := range v.binds {
		b := &v.binds[i]
		if p == b.dest || b.dest == "/" || strings.HasPrefix(p, b.dest+"/") {
			if best == nil || len(b.dest) > len(best.dest) {
				best = b
			}
		}
	}
	return best
}
