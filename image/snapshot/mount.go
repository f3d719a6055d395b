package snapshot

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"

	"golang.org/x/sys/unix"
)

// Mount is one mount that, applied in order with the others of a snapshot,
// makes its filesystem appear at a target: the arguments of mount(8) (or of
// an OCI runtime-spec mount).
type Mount struct {
	// Type is the filesystem type: "overlay" or "bind".
	Type string
	// Source is the device or directory ("overlay" for overlayfs).
	Source string
	// Options are mount(8)'s -o options: flags (ro, rbind, nosuid...) and
	// filesystem data (lowerdir=..., upperdir=...).
	Options []string
}

// flagOption maps a mount(8) flag option to its mount(2) flag; clear
// means the option clears the flag.
func flagOption(o string) (flag uintptr, clear, ok bool) {
	switch o {
	case "ro", "rw":
		return unix.MS_RDONLY, o == "rw", true
	case "bind":
		return unix.MS_BIND, false, true
	case "rbind":
		return unix.MS_BIND | unix.MS_REC, false, true
	case "nosuid", "suid":
		return unix.MS_NOSUID, o == "suid", true
	case "nodev", "dev":
		return unix.MS_NODEV, o == "dev", true
	case "noexec", "exec":
		return unix.MS_NOEXEC, o == "exec", true
	case "noatime":
		return unix.MS_NOATIME, false, true
	case "relatime":
		return unix.MS_RELATIME, false, true
	case "sync", "async":
		return unix.MS_SYNCHRONOUS, o == "async", true
	}
	return 0, false, false
}

// parseOptions splits options into mount(2) flags and filesystem data.
func parseOptions(options []string) (uintptr, []string) {
	var flags uintptr
	var data []string
	for _, o := range options {
		if f, clear, ok := flagOption(o); ok {
			if clear {
				flags &^= f
			} else {
				flags |= f
			}
			continue
		}
		data = append(data, o)
	}
	return flags, data
}

// Mount mounts m at target, which must exist.
func (m Mount) Mount(target string) error {
	flags, data := parseOptions(m.Options)
	if m.Type == "overlay" {
		return mountOverlay(m.Source, target, flags, data)
	}
	typ := m.Type
	if flags&unix.MS_BIND != 0 {
		typ = ""
	}
	if err := unix.Mount(m.Source, target, typ, flags, strings.Join(data, ",")); err != nil {
		return fmt.Errorf("mount %s %s on %s (options %s): %w", m.Type, m.Source, target, strings.Join(m.Options, ","), err)
	}
	// A bind mount ignores MS_RDONLY (and the like) until remounted.
	if flags&unix.MS_BIND != 0 && flags&(unix.MS_RDONLY|unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOEXEC) != 0 {
		rflags := unix.MS_REMOUNT | unix.MS_BIND | flags&(unix.MS_RDONLY|unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOEXEC)
		if err := unix.Mount("", target, "", rflags, ""); err != nil {
			unix.Unmount(target, unix.MNT_DETACH)
			return fmt.Errorf("remount bind mount of %s on %s read-only: %w", m.Source, target, err)
		}
	}
	return nil
}

// MountAll mounts the mounts of a snapshot at target in order. If one
// fails, those already made are unmounted.
func MountAll(mounts []Mount, target string) error {
	for i, m := range mounts {
		if err := m.Mount(target); err != nil {
			for j := 0; j < i; j++ {
				unix.Unmount(target, unix.MNT_DETACH)
			}
			return err
		}
	}
	return nil
}

// Unmount unmounts everything mounted at target (mounts stack), and
// succeeds if nothing is.
func Unmount(target string) error {
	for {
		err := unix.Unmount(target, 0)
		if errors.Is(err, unix.EINVAL) || errors.Is(err, unix.ENOENT) {
			return nil // not a mount point (any more)
		}
		if err != nil {
			return fmt.Errorf("unmount %s: %w; stop what uses it and retry", target, err)
		}
	}
}

// maxMountData is what mount(2) copies of its data argument: one page.
func maxMountData() int { return os.Getpagesize() - 1 }

// mountOverlay mounts overlayfs. Its lowerdir list can exceed mount(2)'s
// one-page data limit with many layers: then each lower directory is
// passed on its own through the new mount API (fsconfig "lowerdir+",
// Linux 6.8), or, on older kernels, the directories are made relative to
// their common parent and the mount is made from a thread whose working
// directory is that parent.
func mountOverlay(source, target string, flags uintptr, data []string) error {
	joined := strings.Join(data, ",")
	if len(joined) <= maxMountData() {
		if err := unix.Mount(source, target, "overlay", flags, joined); err != nil {
			return fmt.Errorf("mount overlay on %s (%s): %w", target, joined, err)
		}
		return nil
	}
	err := mountOverlayFsconfig(source, target, flags, data)
	if errors.Is(err, errLowerdirPlusUnsupported) {
		err = mountOverlayRelative(source, target, flags, data)
	}
	return err
}

var errLowerdirPlusUnsupported = errors.New(`overlayfs does not support "lowerdir+"`)

// mountAttrs maps mount(2) flags to fsmount(2) attributes.
func mountAttrs(flags uintptr) int {
	attrs := 0
	for f, a := range map[uintptr]int{
		unix.MS_RDONLY: unix.MOUNT_ATTR_RDONLY, unix.MS_NOSUID: unix.MOUNT_ATTR_NOSUID,
		unix.MS_NODEV: unix.MOUNT_ATTR_NODEV, unix.MS_NOEXEC: unix.MOUNT_ATTR_NOEXEC,
		unix.MS_NOATIME: unix.MOUNT_ATTR_NOATIME,
	} {
		if flags&f != 0 {
			attrs |= a
		}
	}
	return attrs
}

// fsError adds the kernel's message, read from the filesystem context, to
// err.
func fsError(fd int, what string, err error) error {
	buf := make([]byte, 1024)
	var msgs []string
	for {
		n, rerr := unix.Read(fd, buf)
		if rerr != nil || n <= 0 {
			break
		}
		msgs = append(msgs, strings.TrimSpace(string(buf[:n])))
	}
	if len(msgs) > 0 {
		return fmt.Errorf("%s: %w (%s)", what, err, strings.Join(msgs, "; "))
	}
	return fmt.Errorf("%s: %w", what, err)
}

// mountOverlayFsconfig mounts overlayfs through fsopen/fsconfig/fsmount,
// passing the lower directories one by one.
func mountOverlayFsconfig(source, target string, flags uintptr, data []string) error {
	fd, err := unix.Fsopen("overlay", unix.FSOPEN_CLOEXEC)
	if err != nil {
		if errors.Is(err, unix.ENOSYS) {
			return errLowerdirPlusUnsupported
		}
		return fmt.Errorf("mount overlay on %s: fsopen: %w", target, err)
	}
	defer unix.Close(fd)
	if err := unix.FsconfigSetString(fd, "source", source); err != nil {
		return fsError(fd, "mount overlay on "+target+": set source", err)
	}
	for _, o := range data {
		k, v, hasValue := strings.Cut(o, "=")
		switch {
		case k == "lowerdir":
			for _, l := range strings.Split(v, ":") {
				if err := unix.FsconfigSetString(fd, "lowerdir+", l); err != nil {
					if errors.Is(err, unix.EINVAL) && l == strings.Split(v, ":")[0] {
						return errLowerdirPlusUnsupported
					}
					return fsError(fd, "mount overlay on "+target+": lower directory "+l, err)
				}
			}
		case hasValue:
			if err := unix.FsconfigSetString(fd, k, v); err != nil {
				return fsError(fd, "mount overlay on "+target+": option "+o, err)
			}
		default:
			if err := unix.FsconfigSetFlag(fd, k); err != nil {
				return fsError(fd, "mount overlay on "+target+": option "+o, err)
			}
		}
	}
	if err := unix.FsconfigCreate(fd); err != nil {
		return fsError(fd, "mount overlay on "+target, err)
	}
	mfd, err := unix.Fsmount(fd, unix.FSMOUNT_CLOEXEC, mountAttrs(flags))
	if err != nil {
		return fsError(fd, "mount overlay on "+target+": fsmount", err)
	}
	defer unix.Close(mfd)
	if err := unix.MoveMount(mfd, "", unix.AT_FDCWD, target, unix.MOVE_MOUNT_F_EMPTY_PATH); err != nil {
		return fmt.Errorf("mount overlay on %s: move_mount: %w", target, err)
	}
	return nil
}

// mountOverlayRelative mounts overlayfs with the directories given
// relative to their common parent, from a thread of its own (unshared
// CLONE_FS) whose working directory is that parent.
func mountOverlayRelative(source, target string, flags uintptr, data []string) error {
	target, err := filepath.Abs(target)
	if err != nil {
		return err
	}
	var dirs []string
	for _, o := range data {
		k, v, _ := strings.Cut(o, "=")
		switch k {
		case "lowerdir":
			dirs = append(dirs, strings.Split(v, ":")...)
		case "upperdir", "workdir":
			dirs = append(dirs, v)
		}
	}
	base := commonParent(dirs)
	if base == "" {
		return fmt.Errorf("mount overlay on %s: options too long (%d bytes) and the directories have no common parent", target, len(strings.Join(data, ",")))
	}
	rel := func(p string) string {
		r, err := filepath.Rel(base, p)
		if err != nil {
			return p
		}
		return r
	}
	out := make([]string, 0, len(data))
	for _, o := range data {
		k, v, _ := strings.Cut(o, "=")
		switch k {
		case "lowerdir":
			ls := strings.Split(v, ":")
			for i := range ls {
				ls[i] = rel(ls[i])
			}
			out = append(out, "lowerdir="+strings.Join(ls, ":"))
		case "upperdir", "workdir":
			out = append(out, k+"="+rel(v))
		default:
			out = append(out, o)
		}
	}
	joined := strings.Join(out, ",")
	if len(joined) > maxMountData() {
		return fmt.Errorf("mount overlay on %s: options are %d bytes even with relative directories; the kernel takes %d (too many layers for this kernel)", target, len(joined), maxMountData())
	}
	errc := make(chan error, 1)
	go func() {
		// The thread is not unlocked: it exits with the goroutine, taking
		// its working directory with it.
		runtime.LockOSThread()
		if err := unix.Unshare(unix.CLONE_FS); err != nil {
			errc <- fmt.Errorf("unshare CLONE_FS: %w", err)
			return
		}
		if err := unix.Chdir(base); err != nil {
			errc <- fmt.Errorf("chdir %s: %w", base, err)
			return
		}
		errc <- unix.Mount(source, target, "overlay", flags, joined)
	}()
	if err := <-errc; err != nil {
		return fmt.Errorf("mount overlay on %s (in %s: %s): %w", target, base, joined, err)
	}
	return nil
}

// commonParent returns the longest directory holding every path.
func commonParent(paths []string) string {
	if len(paths) == 0 {
		return ""
	}
	base := filepath.Dir(filepath.Clean(paths[0]))
	for _, p := range paths[1:] {
		p = filepath.Clean(p)
		for base != "/" && !strings.HasPrefix(p, base+"/") {
			base = filepath.Dir(base)
		}
	}
	if base == "/" || base == "." {
		return ""
	}
	return base
}
