package rootfs

import (
	"errors"
	"fmt"
	"os"
	"path"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/skiff-containers/skiff/errdefs"
)

// defaultDevices are created in every container's /dev unless the spec lists
// a device at the same path: the set runc and docker give every container.
func defaultDevices() []specs.LinuxDevice {
	mode := os.FileMode(0o666)
	var zero uint32
	dev := func(p string, major, minor int64) specs.LinuxDevice {
		return specs.LinuxDevice{Path: p, Type: "c", Major: major, Minor: minor, FileMode: &mode, UID: &zero, GID: &zero}
	}
	return []specs.LinuxDevice{
		dev("/dev/null", 1, 3),
		dev("/dev/zero", 1, 5),
		dev("/dev/full", 1, 7),
		dev("/dev/random", 1, 8),
		dev("/dev/urandom", 1, 9),
		dev("/dev/tty", 5, 0),
	}
}

// containerDevices is spec.linux.devices followed by the defaults it does not
// override.
func containerDevices(spec *specs.Spec) []specs.LinuxDevice {
	var devs []specs.LinuxDevice
	have := map[string]bool{}
	if spec.Linux != nil {
		for _, d := range spec.Linux.Devices {
			devs = append(devs, d)
			have[path.Clean(d.Path)] = true
		}
	}
	for _, d := range defaultDevices() {
		if !have[d.Path] {
			devs = append(devs, d)
		}
	}
	return devs
}

// NeedsDevSetup reports whether Prepare fills /dev: always, unless /dev is a
// bind mount (then it is the caller's own /dev), as in runc. Stdio on the
// host's /dev/null is then reopened on the container's.
func NeedsDevSetup(spec *specs.Spec) bool { return needsDevSetup(spec) }

func needsDevSetup(spec *specs.Spec) bool {
	for _, m := range spec.Mounts {
		opts, _ := parseMountOptions(m.Options) // errors surface when the mount is made
		if path.Clean("/"+m.Destination) == "/dev" && (m.Type == "bind" || opts.flags&unix.MS_BIND != 0) {
			return false
		}
	}
	return true
}

// deviceMode returns the mknod mode (type and permission bits) of d.
func deviceMode(d *specs.LinuxDevice) (uint32, error) {
	perm := uint32(0o666)
	if d.FileMode != nil {
		perm = uint32(d.FileMode.Perm())
		if *d.FileMode&os.ModeSetuid != 0 {
			perm |= unix.S_ISUID
		}
		if *d.FileMode&os.ModeSetgid != 0 {
			perm |= unix.S_ISGID
		}
		if *d.FileMode&os.ModeSticky != 0 {
			perm |= unix.S_ISVTX
		}
	}
	switch d.Type {
	case "c", "u":
		return unix.S_IFCHR | perm, nil
	case "b":
		return unix.S_IFBLK | perm, nil
	case "p":
		return unix.S_IFIFO | perm, nil
	}
	return 0, fmt.Errorf("%w: device type %q is not one of c, u, b, p", errdefs.ErrInvalidArgument, d.Type)
}

// setupDev creates the device nodes, /dev/ptmx and the /dev symlinks.
func (p *preparer) setupDev() error {
	for i, d := range containerDevices(p.cfg.Spec) {
		if err := p.createDevice(&d); err != nil {
			return fmt.Errorf("device %d (%s): %w", i, d.Path, err)
		}
	}
	dev, _, err := p.root.open("/dev", createDir)
	if err != nil {
		return fmt.Errorf("open /dev in the rootfs: %w", err)
	}
	defer dev.Close()
	if err := unix.Unlinkat(int(dev.Fd()), "ptmx", 0); err != nil && !errors.Is(err, unix.ENOENT) {
		return fmt.Errorf("remove /dev/ptmx: %w", err)
	}
	links := [][2]string{
		{"pts/ptmx", "ptmx"},
		{"/proc/self/fd", "fd"},
		{"/proc/self/fd/0", "stdin"},
		{"/proc/self/fd/1", "stdout"},
		{"/proc/self/fd/2", "stderr"},
	}
	if _, err := os.Stat("/proc/kcore"); err == nil {
		links = append(links, [2]string{"/proc/kcore", "core"})
	}
	for _, l := range links {
		if err := unix.Symlinkat(l[0], int(dev.Fd()), l[1]); err != nil && !errors.Is(err, unix.EEXIST) {
			return fmt.Errorf("symlink /dev/%s -> %s: %w", l[1], l[0], err)
		}
	}
	return nil
}

// createDevice makes d in the rootfs with mknod, or, in a user namespace
// (where mknod is refused) or when mknod is not permitted, by bind-mounting
// the host's node at the same path onto an empty file.
func (p *preparer) createDevice(d *specs.LinuxDevice) error {
	if !path.IsAbs(d.Path) || path.Clean(d.Path) == "/" {
		return fmt.Errorf("%w: device path %q must be absolute and not /", errdefs.ErrInvalidArgument, d.Path)
	}
	mode, err := deviceMode(d)
	if err != nil {
		return err
	}
	if p.cfg.UserNS {
		return p.bindDevice(d)
	}
	resolved, err := resolveInRoot(p.root.path, d.Path)
	if err != nil {
		return err
	}
	dir, _, err := p.root.open(path.Dir(resolved), createDir)
	if err != nil {
		return fmt.Errorf("create parent directory: %w", err)
	}
	defer dir.Close()
	base := path.Base(resolved)
	err = unix.Mknodat(int(dir.Fd()), base, mode, int(unix.Mkdev(uint32(d.Major), uint32(d.Minor))))
	if errors.Is(err, unix.EEXIST) {
		return nil
	}
	if errors.Is(err, unix.EPERM) {
		return p.bindDevice(d)
	}
	if err != nil {
		return fmt.Errorf("mknod %s: %w", resolved, err)
	}
	f, err := p.root.reopen(resolved)
	if err != nil {
		return err
	}
	defer f.Close()
	// The umask has trimmed the mode: set it exactly. Through the fd, so a
	// swapped-in symlink cannot redirect it.
	if err := p.root.withProcfd(f, resolved, func(procfd string) error {
		return unix.Chmod(procfd, mode&0o7777)
	}); err != nil {
		return fmt.Errorf("chmod %s: %w", resolved, err)
	}
	var uid, gid int
	if d.UID != nil {
		uid = int(*d.UID)
	}
	if d.GID != nil {
		gid = int(*d.GID)
	}
	if err := unix.Fchownat(int(f.Fd()), "", uid, gid, unix.AT_EMPTY_PATH); err != nil {
		return fmt.Errorf("chown %s: %w", resolved, err)
	}
	return nil
}

func (p *preparer) bindDevice(d *specs.LinuxDevice) error {
	f, resolved, err := p.root.open(d.Path, createFile)
	if err != nil {
		return fmt.Errorf("create bind target: %w", err)
	}
	defer f.Close()
	return p.mountAt(f, resolved, d.Path, "", unix.MS_BIND, "")
}
