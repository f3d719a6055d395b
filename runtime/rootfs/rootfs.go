package rootfs

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/moby/sys/mountinfo"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/skiff-containers/skiff/errdefs"
	"github.com/skiff-containers/skiff/runtime/spec"
)

// Config is what the container's init knows when it builds the rootfs.
type Config struct {
	// Spec gives mounts, root.readonly and linux.{devices, maskedPaths,
	// readonlyPaths, rootfsPropagation}.
	Spec *specs.Spec
	// Rootfs is the absolute host path of the rootfs; it must exist.
	Rootfs string
	// NoPivot uses MS_MOVE and chroot instead of pivot_root (--no-pivot).
	NoPivot bool
	// CgroupPaths are the container's cgroup directories on the host. cgroup
	// v1: controller name ("memory", "cpu", "name=systemd", ...) to absolute
	// directory; v2: key "" to the directory. May be empty: then the cgroups
	// the calling process is in are used, as runc does.
	CgroupPaths map[string]string
	// CgroupNS is set when the container has its own cgroup namespace.
	CgroupNS bool
	// UserNS is set when the container runs in a new user namespace: device
	// nodes are then bind-mounted from the host instead of created.
	UserNS bool
	// HostMountNS names the mount namespace the setup must not run in
	// (readlink of the runtime's /proc/self/ns/mnt, e.g. "mnt:[4026531841]").
	// Empty: pid 1's, or where that can't be read, the parent process's.
	HostMountNS string
	// Shared: the container has no mount namespace of its own, so the setup
	// runs in the runtime's. The runtime has bind-mounted Rootfs onto
	// itself there (and detaches that bind on delete); Prepare leaves the
	// propagation of "/" and of the rootfs's parent alone and builds on
	// that bind, and Finalize enters it with chroot instead of pivot_root.
	Shared bool
	// IDMapFDs maps the index in Spec.Mounts of each ID-mapped bind mount
	// ("idmap", "ridmap", or the mount's own uidMappings/gidMappings) to an
	// fd, open in this process, on a user namespace carrying the mappings to
	// apply (see runtime/idmap): the runtime opens them before the init
	// starts and passes them down. Prepare uses them but does not close them.
	// An ID-mapped mount without an entry here or in IDMapTrees is
	// ErrNotImplemented.
	IDMapFDs map[int]int
	// IDMapTrees maps the index in Spec.Mounts of an ID-mapped bind mount
	// to an fd, open in this process, on a detached mount tree the runtime
	// already cloned from the mount's source and ID-mapped
	// (runtime/idmap.OpenTrees): the way for a container with a user
	// namespace of its own, whose init may not ID-map the host's mounts.
	// Prepare moves each onto the mount's destination, resolved inside the
	// rootfs like any other, and does not close them. It takes precedence
	// over IDMapFDs.
	IDMapTrees map[int]int
	// InitPid, if set, says the setup runs outside the container's init:
	// on a thread of the runtime that has joined the init's mount, network,
	// IPC, UTS and cgroup namespaces (runtime/cloneinit), not in the init
	// itself. procfs is then mounted for the init's pid namespace (the
	// kernel's pidns= option; ErrProcPidns where the kernel lacks it), the
	// cgroups are read from /proc/InitPid/cgroup, and Finalize leaves
	// stdio alone (the init reopens /dev/null itself).
	InitPid int
}

// ErrProcPidns is Prepare's error, with InitPid set, on a kernel that cannot
// mount procfs for another process's pid namespace.
var ErrProcPidns = errors.New("this kernel cannot mount procfs for another pid namespace (the pidns= option needs Linux 6.18)")

// preparer carries the state of one Prepare call.
type preparer struct {
	cfg     *Config
	root    *inRoot
	cwd     string
	cgroup2 bool // the host uses the unified cgroup v2 hierarchy
}

// propagationFlag maps linux.rootfsPropagation to mount flags.
func propagationFlag(s string) (uintptr, error) {
	if f, err := spec.PropagationFlag(s); err == nil {
		return f, nil
	}
	return 0, fmt.Errorf("%w: linux.rootfsPropagation %q is not one of private, rprivate, shared, rshared, slave, rslave, unbindable, runbindable", errdefs.ErrInvalidArgument, s)
}

func rootfsPropagation(spec *specs.Spec) string {
	if spec.Linux == nil {
		return ""
	}
	return spec.Linux.RootfsPropagation
}

// checkPrivateMountNS refuses to run in the mount namespace of pid 1: every
// mount made here must die with the container's namespace. Where pid 1's
// namespace cannot be read (a sandbox may deny it even to root), the parent
// process's (the runtime's) namespace stands in for it; where that cannot be
// read either (from inside a new user namespace), it is enough that this
// mount namespace belongs to that new user namespace: the kernel refuses it
// mounts anywhere else.
func checkPrivateMountNS(host string) error {
	// thread-self: the caller may be a thread that joined the container's
	// namespace (Config.InitPid).
	self, err := os.Readlink("/proc/thread-self/ns/mnt")
	if err != nil {
		return fmt.Errorf("%w: cannot tell which mount namespace this is: %w", errdefs.ErrFailedPrecondition, err)
	}
	if host != "" {
		if self == host {
			return fmt.Errorf("%w: rootfs setup must run in the container's own mount namespace, but this process shares the runtime's (%s); unshare CLONE_NEWNS first", errdefs.ErrFailedPrecondition, self)
		}
		return nil
	}
	who := "pid 1"
	other, err := os.Readlink("/proc/1/ns/mnt")
	if errors.Is(err, os.ErrPermission) {
		var ppid int
		if ppid, err = procParent(); err == nil {
			who = "the parent process"
			other, err = os.Readlink(fmt.Sprintf("/proc/%d/ns/mnt", ppid))
		}
	}
	if errors.Is(err, os.ErrPermission) && mountNSOwnedByChildUserNS() {
		return nil
	}
	if err != nil {
		return fmt.Errorf("%w: cannot read the host's mount namespace to compare: %w", errdefs.ErrFailedPrecondition, err)
	}
	if self == other {
		return fmt.Errorf("%w: rootfs setup must run in the container's own mount namespace, but this process shares %s's (%s); unshare CLONE_NEWNS first", errdefs.ErrFailedPrecondition, who, self)
	}
	return nil
}

// mountNSOwnedByChildUserNS reports whether this process is in a user
// namespace other than the initial one and its mount namespace was created
// in it.
func mountNSOwnedByChildUserNS() bool {
	uidMap, err := os.ReadFile("/proc/self/uid_map")
	if err != nil || strings.Join(strings.Fields(string(uidMap)), " ") == "0 0 4294967295" {
		return false
	}
	mnt, err := os.Open("/proc/self/ns/mnt")
	if err != nil {
		return false
	}
	defer mnt.Close()
	owner, err := unix.IoctlRetInt(int(mnt.Fd()), unix.NS_GET_USERNS)
	if err != nil {
		return false
	}
	defer unix.Close(owner)
	var ownerSt, userSt unix.Stat_t
	if unix.Fstat(owner, &ownerSt) != nil || unix.Stat("/proc/self/ns/user", &userSt) != nil {
		return false
	}
	return ownerSt.Dev == userSt.Dev && ownerSt.Ino == userSt.Ino
}

// procParent returns the parent's pid as /proc (the host's, before
// pivot_root) sees it: in a new pid namespace getppid(2) says 0.
func procParent() (int, error) {
	data, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(data), "\n") {
		if v, ok := strings.CutPrefix(line, "PPid:"); ok {
			return strconv.Atoi(strings.TrimSpace(v))
		}
	}
	return 0, fmt.Errorf("no PPid in /proc/self/status")
}

func validate(c *Config) (string, error) {
	if c == nil || c.Spec == nil {
		return "", fmt.Errorf("%w: rootfs config and its spec are required", errdefs.ErrInvalidArgument)
	}
	if !filepath.IsAbs(c.Rootfs) {
		return "", fmt.Errorf("%w: rootfs %q must be an absolute path", errdefs.ErrInvalidArgument, c.Rootfs)
	}
	rootfs, err := filepath.EvalSymlinks(c.Rootfs)
	if err != nil {
		return "", fmt.Errorf("%w: rootfs %q: %w", errdefs.ErrNotFound, c.Rootfs, err)
	}
	if rootfs == "/" {
		return "", fmt.Errorf("%w: the host's / cannot be a container rootfs", errdefs.ErrInvalidArgument)
	}
	return rootfs, nil
}

// Prepare readies the container's own mount namespace (privateRoot; with
// Shared, the runtime's namespace and its bind of the rootfs as they are),
// then does every entry of spec.mounts in order and fills /dev. The host's
// paths stay visible; OCI createContainer hooks may run between Prepare and
// Finalize.
//
// Without Shared it refuses to run in pid 1's mount namespace
// (ErrFailedPrecondition).
func Prepare(c *Config) error {
	return prepare(c, false)
}

// prepare is Prepare; forceCgroup2 lets tests take the cgroup v2 paths on a
// host that has v1.
func prepare(c *Config, forceCgroup2 bool) error {
	rootfs, err := validate(c)
	if err != nil {
		return err
	}
	if !c.Shared {
		if err := privateRoot(c, rootfs); err != nil {
			return err
		}
	}
	rootFile, err := os.OpenFile(rootfs, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("open rootfs: %w", err)
	}
	defer rootFile.Close()
	cwd, err := os.Getwd()
	if err != nil {
		return fmt.Errorf("get the working directory (the bundle): %w", err)
	}
	p := &preparer{cfg: c, root: &inRoot{path: rootfs, root: rootFile}, cwd: cwd, cgroup2: forceCgroup2}
	if !p.cgroup2 {
		var st unix.Statfs_t
		if err := unix.Statfs("/sys/fs/cgroup", &st); err == nil && st.Type == unix.CGROUP2_SUPER_MAGIC {
			p.cgroup2 = true
		}
	}
	// Parse every entry first: a bad one fails before anything is mounted.
	entries := make([]*mountEntry, 0, len(c.Spec.Mounts))
	for i, m := range c.Spec.Mounts {
		e, err := newMountEntry(i, m, cwd)
		if err != nil {
			return err
		}
		if e.idmap {
			if _, ok, err := p.idmapTree(e); err != nil {
				return err
			} else if !ok {
				if _, err := p.idmapFD(e); err != nil {
					return err
				}
			}
		}
		entries = append(entries, e)
	}
	for _, e := range entries {
		if err := p.mount(e); err != nil {
			return err
		}
	}
	if needsDevSetup(c.Spec) {
		if err := p.setupDev(); err != nil {
			return fmt.Errorf("set up /dev in the rootfs: %w", err)
		}
	}
	return nil
}

// privateRoot readies the container's own mount namespace: it sets the
// propagation of "/" (MS_SLAVE|MS_REC, or linux.rootfsPropagation), makes
// the rootfs's parent mount private if it is shared so pivot_root works,
// and bind-mounts the rootfs onto itself. It refuses to run in the
// runtime's mount namespace.
func privateRoot(c *Config, rootfs string) error {
	if err := checkPrivateMountNS(c.HostMountNS); err != nil {
		return err
	}
	flag := uintptr(unix.MS_SLAVE | unix.MS_REC)
	var err error
	if s := rootfsPropagation(c.Spec); s != "" {
		if flag, err = propagationFlag(s); err != nil {
			return err
		}
	}
	if flag&unix.MS_UNBINDABLE != 0 {
		// An unbindable tree cannot be bind-mounted (the rootfs onto
		// itself, bind mounts out of it): build it private; Finalize makes
		// / unbindable after pivot_root.
		flag = flag&^unix.MS_UNBINDABLE | unix.MS_PRIVATE
	}
	if err := unix.Mount("", "/", "", flag, ""); err != nil {
		return fmt.Errorf("set propagation %#x of /: %w", flag, err)
	}
	if err := makeParentPrivate(rootfs); err != nil {
		return err
	}
	if err := unix.Mount(rootfs, rootfs, "", unix.MS_BIND|unix.MS_REC, ""); err != nil {
		return fmt.Errorf("bind-mount the rootfs %s onto itself: %w", rootfs, err)
	}
	return nil
}

// makeParentPrivate makes the mount holding rootfs private if it is shared:
// pivot_root refuses a shared parent, and the rootfs bind would propagate to
// the host.
func makeParentPrivate(rootfs string) error {
	mounts, err := mountinfo.GetMounts(mountinfo.ParentsFilter(rootfs))
	if err != nil {
		return fmt.Errorf("find the mount holding the rootfs %s: %w", rootfs, err)
	}
	var parent *mountinfo.Info
	for _, m := range mounts {
		if parent == nil || len(m.Mountpoint) >= len(parent.Mountpoint) {
			parent = m
		}
	}
	if parent == nil {
		return fmt.Errorf("%w: no mount holds the rootfs %s", errdefs.ErrNotFound, rootfs)
	}
	for _, o := range strings.Fields(parent.Optional) {
		if strings.HasPrefix(o, "shared:") {
			if err := unix.Mount("", parent.Mountpoint, "", unix.MS_PRIVATE, ""); err != nil {
				return fmt.Errorf("make %s (holding the rootfs) private: %w", parent.Mountpoint, err)
			}
			break
		}
	}
	return nil
}

// Finalize switches into the rootfs (pivot_root, MS_MOVE and chroot with
// NoPivot, or chroot alone with Shared), then remounts read-only the tmpfs and /dev mounts that asked for
// it, applies linux.readonlyPaths and linux.maskedPaths, root.readonly and
// linux.rootfsPropagation, and leaves the working directory at "/".
func Finalize(c *Config) error {
	rootfs, err := validate(c)
	if err != nil {
		return err
	}
	if err := unix.Chdir(rootfs); err != nil {
		return fmt.Errorf("chdir to the rootfs %s: %w", rootfs, err)
	}
	switch {
	case c.Shared:
		// pivot_root here would move the runtime's own root.
		if err = unix.Chroot("."); err != nil {
			err = fmt.Errorf("chroot into %s: %w", rootfs, err)
		}
	case c.NoPivot:
		err = moveRoot(rootfs)
	default:
		err = pivotRoot(rootfs)
	}
	if err != nil {
		return err
	}
	if needsDevSetup(c.Spec) && c.InitPid == 0 {
		if err := reopenDevNull(); err != nil {
			return err
		}
	}
	for i, m := range c.Spec.Mounts {
		e, err := newMountEntry(i, m, "/")
		if err != nil {
			return err
		}
		if e.opts.flags&unix.MS_RDONLY == 0 || e.isBind() {
			continue
		}
		if e.fstype == "tmpfs" || filepath.Clean("/"+e.dest) == "/dev" {
			if err := remountReadonly(e.dest, e.opts.flags); err != nil {
				return fmt.Errorf("%s: remount read-only: %w", e.name(), err)
			}
		}
	}
	if c.Spec.Linux != nil {
		for _, p := range c.Spec.Linux.ReadonlyPaths {
			if err := readonlyPath(p); err != nil {
				return fmt.Errorf("linux.readonlyPaths %q: %w", p, err)
			}
		}
		for _, p := range c.Spec.Linux.MaskedPaths {
			if err := maskPath(p); err != nil {
				return fmt.Errorf("linux.maskedPaths %q: %w", p, err)
			}
		}
	}
	if c.Spec.Root != nil && c.Spec.Root.Readonly {
		if err := remountRootReadonly(); err != nil {
			return fmt.Errorf("root.readonly: remount / read-only: %w", err)
		}
	}
	if s := rootfsPropagation(c.Spec); s != "" {
		flag, err := propagationFlag(s)
		if err != nil {
			return err
		}
		if err := unix.Mount("", "/", "", flag, ""); err != nil {
			return fmt.Errorf("linux.rootfsPropagation %q on /: %w", s, err)
		}
	}
	return unix.Chdir("/")
}

// pivotRoot makes rootfs (the working directory) the root and detaches the
// old root, without needing a directory for it: pivot_root(".", ".") stacks
// the old root on the new one.
func pivotRoot(rootfs string) error {
	oldroot, err := unix.Open("/", unix.O_DIRECTORY|unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("open the old root: %w", err)
	}
	defer unix.Close(oldroot)
	if err := unix.PivotRoot(".", "."); err != nil {
		return fmt.Errorf("pivot_root into %s: %w", rootfs, err)
	}
	if err := unix.Fchdir(oldroot); err != nil {
		return fmt.Errorf("chdir to the old root: %w", err)
	}
	// Slave, so the unmount cannot propagate anywhere else.
	if err := unix.Mount("", ".", "", unix.MS_SLAVE|unix.MS_REC, ""); err != nil {
		return fmt.Errorf("make the old root rslave: %w", err)
	}
	if err := unix.Unmount(".", unix.MNT_DETACH); err != nil {
		return fmt.Errorf("detach the old root: %w", err)
	}
	if err := unix.Chdir("/"); err != nil {
		return fmt.Errorf("chdir to the new root: %w", err)
	}
	return nil
}

// moveRoot is --no-pivot: move the rootfs mount over "/" and chroot into it.
// Full proc and sysfs mounts of the host are detached (or covered) first:
// the kernel lets a container mount a new procfs only while a full one is
// visible, and with chroot the host's would stay reachable.
func moveRoot(rootfs string) error {
	mounts, err := mountinfo.GetMounts(func(m *mountinfo.Info) (bool, bool) {
		skip := m.Root != "/" || (m.FSType != "proc" && m.FSType != "sysfs") ||
			m.Mountpoint == rootfs || strings.HasPrefix(m.Mountpoint, rootfs+"/")
		return skip, false
	})
	if err != nil {
		return fmt.Errorf("read mountinfo: %w", err)
	}
	for _, m := range mounts {
		if err := unix.Mount("", m.Mountpoint, "", unix.MS_SLAVE|unix.MS_REC, ""); err != nil {
			if errors.Is(err, unix.ENOENT) {
				continue // a parent was detached already
			}
			return fmt.Errorf("make %s rslave: %w", m.Mountpoint, err)
		}
		if err := unix.Unmount(m.Mountpoint, unix.MNT_DETACH); err != nil {
			if !errors.Is(err, unix.EINVAL) && !errors.Is(err, unix.EPERM) {
				return fmt.Errorf("detach host %s at %s: %w", m.FSType, m.Mountpoint, err)
			}
			if err := unix.Mount("tmpfs", m.Mountpoint, "tmpfs", 0, ""); err != nil {
				return fmt.Errorf("cover host %s at %s: %w", m.FSType, m.Mountpoint, err)
			}
		}
	}
	if err := unix.Mount(rootfs, "/", "", unix.MS_MOVE, ""); err != nil {
		return fmt.Errorf("move the rootfs %s onto /: %w", rootfs, err)
	}
	if err := unix.Chroot("."); err != nil {
		return fmt.Errorf("chroot into %s: %w", rootfs, err)
	}
	return unix.Chdir("/")
}

// reopenDevNull points stdio that is the host's /dev/null at the
// container's, so no fd keeps the old root reachable.
func reopenDevNull() error {
	f, err := os.OpenFile("/dev/null", os.O_RDWR, 0)
	if err != nil {
		return fmt.Errorf("open the container's /dev/null: %w", err)
	}
	defer f.Close()
	var null, st unix.Stat_t
	if err := unix.Fstat(int(f.Fd()), &null); err != nil {
		return err
	}
	for fd := 0; fd < 3; fd++ {
		if err := unix.Fstat(fd, &st); err != nil {
			continue
		}
		if st.Mode&unix.S_IFMT == unix.S_IFCHR && st.Rdev == null.Rdev {
			if err := unix.Dup3(int(f.Fd()), fd, 0); err != nil {
				return fmt.Errorf("reopen fd %d on /dev/null: %w", fd, err)
			}
		}
	}
	return nil
}

// remountReadonly remounts the mount at dest read-only, retrying while it is
// busy, as runc does.
func remountReadonly(dest string, flags uintptr) error {
	flags = flags&^(unix.MS_BIND|unix.MS_REC) | unix.MS_REMOUNT | unix.MS_RDONLY
	var err error
	for i := 0; i < 5; i++ {
		if err = unix.Mount("", dest, "", flags, ""); !errors.Is(err, unix.EBUSY) {
			return err
		}
		time.Sleep(100 * time.Millisecond)
	}
	return err
}

// remountRootReadonly makes "/" read-only, keeping its locked flags if the
// plain remount is refused.
func remountRootReadonly() error {
	flags := uintptr(unix.MS_BIND | unix.MS_REMOUNT | unix.MS_RDONLY)
	if err := unix.Mount("", "/", "", flags, ""); err == nil {
		return nil
	}
	var st unix.Statfs_t
	if err := unix.Statfs("/", &st); err != nil {
		return err
	}
	return unix.Mount("", "/", "", flags|uintptr(st.Flags)&(lockableFlags|unix.MS_NOATIME|unix.MS_NODIRATIME|unix.MS_RELATIME), "")
}

// readonlyPath binds p onto itself and remounts it read-only, keeping its
// nosuid, nodev and noexec. A missing path is ignored.
func readonlyPath(p string) error {
	if err := unix.Mount(p, p, "", unix.MS_BIND|unix.MS_REC, ""); err != nil {
		if errors.Is(err, unix.ENOENT) {
			return nil
		}
		return fmt.Errorf("bind onto itself: %w", err)
	}
	var st unix.Statfs_t
	if err := unix.Statfs(p, &st); err != nil {
		return err
	}
	flags := uintptr(st.Flags)&(unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOEXEC) | unix.MS_BIND | unix.MS_REMOUNT | unix.MS_RDONLY
	if err := unix.Mount("", p, "", flags, ""); err != nil {
		return fmt.Errorf("remount read-only: %w", err)
	}
	return nil
}

// maskPath hides p: /dev/null over a file, an empty read-only tmpfs over a
// directory. A missing path is ignored.
func maskPath(p string) error {
	err := unix.Mount("/dev/null", p, "", unix.MS_BIND, "")
	switch {
	case err == nil, errors.Is(err, unix.ENOENT):
		return nil
	case errors.Is(err, unix.ENOTDIR):
		if err := unix.Mount("tmpfs", p, "tmpfs", unix.MS_RDONLY, ""); err != nil {
			return fmt.Errorf("cover the directory with a read-only tmpfs: %w", err)
		}
		return nil
	}
	return fmt.Errorf("bind /dev/null over it: %w", err)
}
