package rootfs

import (
	"errors"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"strconv"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/skiff-containers/skiff/errdefs"
)

// mountEntry is one mount to do, already parsed.
type mountEntry struct {
	index  int // position in spec.mounts, -1 for mounts made up here
	dest   string
	source string
	fstype string
	opts   mountOptions
	// idmap: an ID-mapped bind mount ("idmap", "ridmap", or the mount's own
	// uidMappings/gidMappings), made with the user namespace fd the runtime
	// passed in Config.IDMapFDs, or moved from the ID-mapped tree it passed
	// in Config.IDMapTrees.
	idmap bool
}

func (e *mountEntry) isBind() bool { return e.opts.flags&unix.MS_BIND != 0 }

// name identifies the mount in errors.
func (e *mountEntry) name() string {
	if e.index < 0 {
		return fmt.Sprintf("mount of %s on %q", e.fstype, e.dest)
	}
	return fmt.Sprintf("mounts[%d] (destination %q)", e.index, e.dest)
}

// newMountEntry parses a spec mount. Relative bind sources are taken relative
// to cwd, the bundle directory. The type of a bind mount is ignored, as runc
// does; type "bind" alone also makes a bind mount. An ID-mapped mount that is
// not a bind mount, or has uidMappings without gidMappings or the reverse, is
// ErrInvalidArgument.
func newMountEntry(i int, m specs.Mount, cwd string) (*mountEntry, error) {
	opts, err := parseMountOptions(m.Options)
	if err != nil {
		return nil, fmt.Errorf("mounts[%d] (destination %q): %w", i, m.Destination, err)
	}
	e := &mountEntry{index: i, dest: m.Destination, source: m.Source, fstype: m.Type, opts: opts}
	if e.fstype == "bind" {
		e.opts.flags |= unix.MS_BIND
	}
	own := len(m.UIDMappings) > 0 || len(m.GIDMappings) > 0
	e.idmap = opts.idmap || own
	if e.idmap && !e.isBind() {
		return nil, fmt.Errorf("%s: %w: only bind mounts can be ID-mapped (idmap, ridmap, uidMappings, gidMappings); add \"bind\" or \"rbind\" to the options", e.name(), errdefs.ErrInvalidArgument)
	}
	if own && (len(m.UIDMappings) == 0 || len(m.GIDMappings) == 0) {
		return nil, fmt.Errorf("%s: %w: uidMappings and gidMappings must be given together", e.name(), errdefs.ErrInvalidArgument)
	}
	if e.isBind() {
		e.fstype = "bind"
		if e.source != "" && !filepath.IsAbs(e.source) {
			e.source = filepath.Join(cwd, e.source)
		}
	}
	return e, nil
}

// defaultCgroupFlags are the flags of the cgroup tmpfs and of cgroup v1
// mounts made in a cgroup namespace.
const defaultCgroupFlags = unix.MS_NOEXEC | unix.MS_NOSUID | unix.MS_NODEV

// validProcMounts are the only paths under /proc a mount may cover (lxcfs
// emulates them), as in runc.
var validProcMounts = [...]string{
	"/proc/cpuinfo", "/proc/diskstats", "/proc/meminfo", "/proc/stat",
	"/proc/swaps", "/proc/uptime", "/proc/loadavg", "/proc/slabinfo",
	"/proc/net/dev", "/proc/sys/kernel/ns_last_pid",
}

// checkProcMount refuses mounts that would cover procfs files: anything under
// /proc except the lxcfs files, and /proc itself unless the source is a procfs.
func checkProcMount(resolved, source string, sourceIsPath bool) error {
	if resolved == "/proc" {
		if sourceIsPath {
			var st unix.Statfs_t
			if err := unix.Statfs(source, &st); err == nil && st.Type == unix.PROC_SUPER_MAGIC {
				return nil
			}
		}
		return fmt.Errorf("%w: only a procfs may be mounted on /proc", errdefs.ErrInvalidArgument)
	}
	rel, err := filepath.Rel("/proc", resolved)
	if err != nil || rel == ".." || len(rel) > 2 && rel[:3] == "../" {
		return nil
	}
	for _, p := range validProcMounts {
		if resolved == p {
			return nil
		}
	}
	return fmt.Errorf("%w: %s is inside /proc; only %v may be covered", errdefs.ErrInvalidArgument, resolved, validProcMounts)
}

// checkProcMount runs checkProcMount on the resolved destination of e,
// before anything is created there.
func (p *preparer) checkProcMount(e *mountEntry, sourceIsPath bool) error {
	resolved, err := resolveInRoot(p.root.path, e.dest)
	if err != nil {
		return fmt.Errorf("%w; fix the rootfs or choose another destination", err)
	}
	return checkProcMount(resolved, e.source, sourceIsPath)
}

// mount does one entry of spec.mounts (or an entry made up for a cgroup
// hierarchy) inside the rootfs.
func (p *preparer) mount(e *mountEntry) error {
	if path.Clean("/"+e.dest) == "/" {
		return fmt.Errorf("%s: %w: a mount over the whole rootfs is not supported; set root.path instead", e.name(), errdefs.ErrInvalidArgument)
	}
	var (
		resolved string
		err      error
	)
	switch {
	case e.isBind():
		resolved, err = p.mountBind(e)
	case e.fstype == "proc" || e.fstype == "sysfs":
		resolved, err = p.mountProcSys(e)
	case e.fstype == "cgroup":
		return p.mountCgroup(e)
	case e.fstype == "tmpfs":
		resolved, err = p.mountTmpfs(e)
	default:
		resolved, err = p.mountOther(e)
	}
	if err != nil {
		return fmt.Errorf("%s: %w", e.name(), err)
	}
	if err := p.applyAfter(e, resolved); err != nil {
		return fmt.Errorf("%s: %w", e.name(), err)
	}
	return nil
}

// openDest opens (creating if needed) the destination of e.
func (p *preparer) openDest(e *mountEntry, kind createKind) (*os.File, string, error) {
	f, resolved, err := p.root.open(e.dest, kind)
	if err != nil {
		if errors.Is(err, errdefs.ErrInvalidArgument) {
			return nil, "", fmt.Errorf("%w; fix the rootfs or choose another destination", err)
		}
		return nil, "", fmt.Errorf("open destination in the rootfs: %w", err)
	}
	return f, resolved, nil
}

// mountAt mounts source on the already opened destination f.
func (p *preparer) mountAt(f *os.File, resolved, source, fstype string, flags uintptr, data string) error {
	return p.root.withProcfd(f, resolved, func(procfd string) error {
		if err := unix.Mount(source, procfd, fstype, flags, data); err != nil {
			return fmt.Errorf("mount %q (type %q, flags %#x, data %q) on %s: %w", source, fstype, flags, data, resolved, err)
		}
		return nil
	})
}

func (p *preparer) mountProcSys(e *mountEntry) (string, error) {
	f, resolved, err := p.openDest(e, createDir)
	if err != nil {
		return "", err
	}
	defer f.Close()
	var st unix.Stat_t
	if err := unix.Fstat(int(f.Fd()), &st); err != nil {
		return "", err
	}
	if st.Mode&unix.S_IFMT != unix.S_IFDIR {
		return "", fmt.Errorf("%w: %s must be mounted on an ordinary directory, %s is not one", errdefs.ErrInvalidArgument, e.fstype, resolved)
	}
	data := e.opts.data
	if e.fstype == "proc" && p.cfg.InitPid != 0 {
		// The mounting thread is in the runtime's pid namespace: name the
		// init's.
		if data != "" {
			data += ","
		}
		data += "pidns=/proc/" + strconv.Itoa(p.cfg.InitPid) + "/ns/pid"
	}
	err = p.mountAt(f, resolved, e.source, e.fstype, e.opts.flags, data)
	if err != nil && e.fstype == "proc" && p.cfg.InitPid != 0 && errors.Is(err, unix.EINVAL) {
		return "", fmt.Errorf("%w: %w", ErrProcPidns, err)
	}
	if err != nil && e.fstype == "sysfs" && p.cfg.UserNS && errors.Is(err, unix.EPERM) {
		// A user namespace that does not own a network namespace may not
		// mount sysfs: bind the host's /sys instead, as runc does.
		f2, err2 := p.root.reopen(resolved)
		if err2 != nil {
			return "", err2
		}
		defer f2.Close()
		bind := &mountEntry{index: e.index, dest: e.dest, source: "/sys", fstype: "bind", opts: e.opts}
		bind.opts.flags |= unix.MS_BIND | unix.MS_REC
		return resolved, p.bindOnto(bind, f2, resolved)
	}
	return resolved, err
}

func (p *preparer) mountTmpfs(e *mountEntry) (string, error) {
	existed := true
	f, resolved, err := p.openDest(e, createNone)
	if errors.Is(err, os.ErrNotExist) {
		existed = false
		f, resolved, err = p.openDest(e, createDir)
	}
	if err != nil {
		return "", err
	}
	defer f.Close()
	var st unix.Stat_t
	if err := unix.Fstat(int(f.Fd()), &st); err != nil {
		return "", err
	}
	var under *os.File
	if e.opts.tmpcopyup {
		under, err = openDirBelow(f)
		if err != nil {
			return "", fmt.Errorf("open %s for tmpcopyup: %w", resolved, err)
		}
		defer under.Close()
	}
	// Read-only is applied in Finalize: /dev needs its nodes and other tmpfs
	// mounts their mode first (runc does the same).
	if err := p.mountAt(f, resolved, e.source, "tmpfs", e.opts.flags&^unix.MS_RDONLY, e.opts.data); err != nil {
		return "", err
	}
	top, err := p.root.reopen(resolved)
	if err != nil {
		return "", err
	}
	defer top.Close()
	if under != nil {
		if err := copyTree(under, top); err != nil {
			return "", fmt.Errorf("tmpcopyup into %s: %w", resolved, err)
		}
	}
	if existed && st.Mode&unix.S_IFMT == unix.S_IFDIR {
		// Keep the mode of the directory the tmpfs covers, as runc does.
		if err := p.root.withProcfd(top, resolved, func(procfd string) error {
			return unix.Chmod(procfd, st.Mode&0o7777)
		}); err != nil {
			return "", fmt.Errorf("chmod %s: %w", resolved, err)
		}
	}
	return resolved, nil
}

func (p *preparer) mountOther(e *mountEntry) (string, error) {
	if err := p.checkProcMount(e, false); err != nil {
		return "", err
	}
	f, resolved, err := p.openDest(e, createDir)
	if err != nil {
		return "", err
	}
	defer f.Close()
	flags := e.opts.flags
	if resolved == "/dev" {
		flags &^= unix.MS_RDONLY // remounted read-only in Finalize
	}
	return resolved, p.mountAt(f, resolved, e.source, e.fstype, flags, e.opts.data)
}

func (p *preparer) mountBind(e *mountEntry) (string, error) {
	tree := -1
	if e.idmap {
		fd, ok, err := p.idmapTree(e)
		if err != nil {
			return "", err
		}
		if ok {
			tree = fd
		}
	}
	var isDir bool
	if tree >= 0 {
		// The runtime's clone is what gets mounted: its type decides
		// the destination's. The source path is not looked at here.
		var st unix.Stat_t
		if err := unix.Fstat(tree, &st); err != nil {
			return "", fmt.Errorf("stat the ID-mapped tree the runtime passed (fd %d): %w", tree, err)
		}
		isDir = st.Mode&unix.S_IFMT == unix.S_IFDIR
	} else {
		fi, err := os.Stat(e.source)
		if err != nil {
			if errors.Is(err, os.ErrNotExist) {
				return "", fmt.Errorf("%w: bind source %q does not exist; create it or fix the mount's source", errdefs.ErrNotFound, e.source)
			}
			return "", fmt.Errorf("bind source: %w", err)
		}
		isDir = fi.IsDir()
	}
	kind := createFile
	if isDir {
		kind = createDir
	}
	if err := p.checkProcMount(e, tree < 0); err != nil {
		return "", err
	}
	f, resolved, err := p.openDest(e, kind)
	if err != nil {
		return "", err
	}
	defer f.Close()
	if e.idmap {
		return resolved, p.bindIDMapped(e, tree, f, resolved)
	}
	return resolved, p.bindOnto(e, f, resolved)
}

// idmapTree returns the detached ID-mapped tree the runtime passed for e
// (Config.IDMapTrees), if it passed one, checking that it is the root of a
// mount: anything else is ErrInvalidArgument.
func (p *preparer) idmapTree(e *mountEntry) (int, bool, error) {
	fd, ok := p.cfg.IDMapTrees[e.index]
	if !ok || e.index < 0 {
		return -1, false, nil
	}
	var stx unix.Statx_t
	err := unix.Statx(fd, "", unix.AT_EMPTY_PATH|unix.AT_SYMLINK_NOFOLLOW, unix.STATX_TYPE, &stx)
	if err != nil || stx.Attributes_mask&unix.STATX_ATTR_MOUNT_ROOT == 0 || stx.Attributes&unix.STATX_ATTR_MOUNT_ROOT == 0 {
		return -1, false, fmt.Errorf("%s: %w: Config.IDMapTrees gives fd %d, which is not the root of a mount tree (statx: %v)", e.name(), errdefs.ErrInvalidArgument, fd, err)
	}
	return fd, true, nil
}

// idmapFD returns the user namespace fd the runtime passed for e, checking
// that it is one. Without it the mount cannot be ID-mapped: ErrNotImplemented
// (the runtime that called Prepare does not support ID-mapped mounts).
func (p *preparer) idmapFD(e *mountEntry) (int, error) {
	fd, ok := p.cfg.IDMapFDs[e.index]
	if !ok || e.index < 0 {
		return -1, fmt.Errorf("%s: %w: an ID-mapped mount (idmap, ridmap, uidMappings, gidMappings) needs a user namespace fd from the runtime, and none was passed for it (Config.IDMapFDs)", e.name(), errdefs.ErrNotImplemented)
	}
	typ, err := unix.IoctlRetInt(fd, unix.NS_GET_NSTYPE)
	if err != nil || typ != unix.CLONE_NEWUSER {
		return -1, fmt.Errorf("%s: %w: Config.IDMapFDs gives fd %d, which is not a user namespace (NS_GET_NSTYPE: %#x, %v)", e.name(), errdefs.ErrInvalidArgument, fd, typ, err)
	}
	return fd, nil
}

// bindIDMapped makes an ID-mapped bind mount of e.source on f, as runc 1.2
// does: clone the source (with its submounts for rbind) into a detached tree
// with open_tree(2), set MOUNT_ATTR_IDMAP on it with mount_setattr(2) (on
// every mount of the tree for "ridmap", else on its top only), move it onto
// the destination's checked handle, then remount it with e's flags like
// any other bind mount.
//
// tree, if not -1, is the clone the runtime already made and ID-mapped
// (Config.IDMapTrees): it is only moved and remounted. The caller keeps
// ownership of it.
func (p *preparer) bindIDMapped(e *mountEntry, tree int, f *os.File, resolved string) error {
	if tree < 0 {
		var err error
		if tree, err = p.idmappedClone(e); err != nil {
			return err
		}
		defer unix.Close(tree)
	}
	// The destination is the checked handle itself (T_EMPTY_PATH): move_mount
	// does not follow the /proc fd magic link unless asked to.
	if err := p.root.withProcfd(f, resolved, func(string) error {
		if err := unix.MoveMount(tree, "", int(f.Fd()), "", unix.MOVE_MOUNT_F_EMPTY_PATH|unix.MOVE_MOUNT_T_EMPTY_PATH); err != nil {
			return fmt.Errorf("move the ID-mapped clone of %s onto %s: %w", e.source, resolved, err)
		}
		return nil
	}); err != nil {
		return err
	}
	if e.opts.flags&^(unix.MS_BIND|unix.MS_REC|unix.MS_REMOUNT) == 0 {
		return nil
	}
	top, err := p.root.reopen(resolved)
	if err != nil {
		return err
	}
	defer top.Close()
	return p.root.withProcfd(top, resolved, func(procfd string) error {
		return remountBind(procfd, e.opts.flags)
	})
}

// idmappedClone clones e.source into a detached tree and ID-maps it with
// the user namespace fd the runtime passed (Config.IDMapFDs).
func (p *preparer) idmappedClone(e *mountEntry) (int, error) {
	usernsFD, err := p.idmapFD(e)
	if err != nil {
		return -1, err
	}
	treeFlags := uint(unix.OPEN_TREE_CLONE | unix.OPEN_TREE_CLOEXEC)
	if e.opts.flags&unix.MS_REC != 0 {
		treeFlags |= unix.AT_RECURSIVE
	}
	tree, err := unix.OpenTree(unix.AT_FDCWD, e.source, treeFlags)
	if err != nil {
		return -1, fmt.Errorf("open_tree(%q, clone): %w", e.source, err)
	}
	attrFlags := uint(unix.AT_EMPTY_PATH)
	if e.opts.idmapRecursive {
		attrFlags |= unix.AT_RECURSIVE
	}
	if err := unix.MountSetattr(tree, "", attrFlags, &unix.MountAttr{Attr_set: unix.MOUNT_ATTR_IDMAP, Userns_fd: uint64(usernsFD)}); err != nil {
		unix.Close(tree)
		hint := ""
		if errors.Is(err, unix.EINVAL) {
			hint = " (does the source's filesystem support ID-mapped mounts on this kernel? is it already ID-mapped?)"
		}
		if errors.Is(err, unix.EPERM) && p.cfg.UserNS {
			hint = " (inside the container's user namespace the init has no privilege over the mapping's namespace: the runtime must make the ID-mapped tree itself and pass it in Config.IDMapTrees)"
		}
		return -1, fmt.Errorf("set MOUNT_ATTR_IDMAP on the clone of %s: %w%s", e.source, err, hint)
	}
	return tree, nil
}

// bindOnto bind-mounts e.source onto f, then remounts it with e's flags if it
// has any beyond bind and rec: a bind mount ignores them.
func (p *preparer) bindOnto(e *mountEntry, f *os.File, resolved string) error {
	if err := p.mountAt(f, resolved, e.source, "", e.opts.flags&(unix.MS_BIND|unix.MS_REC), ""); err != nil {
		return err
	}
	if e.opts.flags&^(unix.MS_BIND|unix.MS_REC|unix.MS_REMOUNT) == 0 {
		return nil
	}
	top, err := p.root.reopen(resolved)
	if err != nil {
		return err
	}
	defer top.Close()
	return p.root.withProcfd(top, resolved, func(procfd string) error {
		return remountBind(procfd, e.opts.flags)
	})
}

// lockableFlags are the per-mount flags the kernel locks when a mount is
// copied into a less privileged mount namespace.
const lockableFlags = unix.MS_RDONLY | unix.MS_NOSUID | unix.MS_NODEV | unix.MS_NOEXEC

// remountBind applies flags to the bind mount at target. If the kernel
// refuses because the source mount has locked flags (a bind from a mount
// that is ro/nosuid/nodev/noexec in a user namespace), it retries keeping
// them, as runc does.
func remountBind(target string, flags uintptr) error {
	flags = flags&^unix.MS_REC | unix.MS_BIND | unix.MS_REMOUNT
	err := unix.Mount("", target, "", flags, "")
	if err == nil {
		return nil
	}
	if !errors.Is(err, unix.EPERM) {
		return fmt.Errorf("remount with flags %#x: %w", flags, err)
	}
	var st unix.Statfs_t
	if serr := unix.Statfs(target, &st); serr != nil {
		return fmt.Errorf("remount with flags %#x: %w (statfs: %v)", flags, err, serr)
	}
	locked := uintptr(st.Flags) & lockableFlags
	if locked&^flags == 0 {
		return fmt.Errorf("remount with flags %#x: %w", flags, err)
	}
	if err := unix.Mount("", target, "", flags|locked, ""); err != nil {
		return fmt.Errorf("remount with flags %#x (keeping the source's locked flags %#x): %w", flags|locked, locked, err)
	}
	return nil
}

// applyAfter sets the propagation and recursive attributes of a new mount.
func (p *preparer) applyAfter(e *mountEntry, resolved string) error {
	if len(e.opts.propagation) == 0 && e.opts.recAttr == nil {
		return nil
	}
	f, err := p.root.reopen(resolved)
	if err != nil {
		return err
	}
	defer f.Close()
	for _, flag := range e.opts.propagation {
		if err := p.root.withProcfd(f, resolved, func(procfd string) error {
			return unix.Mount("", procfd, "", flag, "")
		}); err != nil {
			return fmt.Errorf("set propagation %#x: %w", flag, err)
		}
	}
	if e.opts.recAttr != nil {
		if err := unix.MountSetattr(int(f.Fd()), "", unix.AT_EMPTY_PATH|unix.AT_RECURSIVE, e.opts.recAttr); err != nil {
			return fmt.Errorf("mount_setattr(set %#x, clear %#x, recursive): %w", e.opts.recAttr.Attr_set, e.opts.recAttr.Attr_clr, err)
		}
	}
	return nil
}
