package rootfs

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/moby/sys/mountinfo"
	"golang.org/x/sys/unix"
)

// cgroupHierarchy is one cgroup v1 hierarchy mounted on the host.
type cgroupHierarchy struct {
	subsystems []string // as in /proc/self/cgroup: "cpu", "cpuacct", "name=systemd"
	mountpoint string   // host mount point, e.g. /sys/fs/cgroup/cpu,cpuacct
	root       string   // the cgroup the mount point shows, usually "/"
	own        string   // this process's cgroup in it, from /proc/self/cgroup
}

// dirName is the directory the hierarchy gets under the container's cgroup
// mount: the base name of its host mount point, as runc does.
func (h *cgroupHierarchy) dirName() string { return filepath.Base(h.mountpoint) }

// parseProcCgroup reads /proc/<pid>/cgroup: for cgroup v1 lines, the
// controller list ("cpu,cpuacct", "name=systemd") to the process's path; the
// v2 line ("0::/path") under the key "".
func parseProcCgroup(r io.Reader) (map[string]string, error) {
	out := map[string]string{}
	s := bufio.NewScanner(r)
	for s.Scan() {
		parts := strings.SplitN(s.Text(), ":", 3)
		if len(parts) != 3 {
			continue
		}
		out[parts[1]] = parts[2]
	}
	return out, s.Err()
}

// cgroupV1Hierarchies matches the v1 cgroup mounts of mountinfo with the
// controller lists of /proc/self/cgroup (procCgroup), one per hierarchy (the
// first mount of each), in mountinfo order as runc does.
func cgroupV1Hierarchies(mounts []*mountinfo.Info, procCgroup map[string]string) []*cgroupHierarchy {
	seen := map[string]bool{}
	var out []*cgroupHierarchy
	for _, m := range mounts {
		if m.FSType != "cgroup" {
			continue
		}
		opts := map[string]bool{}
		for _, o := range strings.Split(m.VFSOptions, ",") {
			opts[o] = true
		}
		for list, own := range procCgroup {
			if list == "" || seen[list] {
				continue
			}
			subs := strings.Split(list, ",")
			all := true
			for _, s := range subs {
				all = all && opts[s]
			}
			if !all {
				continue
			}
			seen[list] = true
			out = append(out, &cgroupHierarchy{subsystems: subs, mountpoint: m.Mountpoint, root: m.Root, own: own})
			break
		}
	}
	return out
}

// cgroupSource picks the host directory to bind for h: the container's
// cgroup from CgroupPaths if the caller gave one for any of h's controllers,
// else the cgroup this process is in (runc's behaviour, as its init has
// joined the container's cgroups by then).
func cgroupSource(h *cgroupHierarchy, paths map[string]string) (string, bool) {
	for _, s := range h.subsystems {
		for _, key := range []string{s, strings.TrimPrefix(s, "name=")} {
			if p, ok := paths[key]; ok && p != "" {
				return p, true
			}
		}
	}
	rel, err := filepath.Rel(h.root, h.own)
	if err != nil || rel == ".." || strings.HasPrefix(rel, "../") {
		return "", false
	}
	return filepath.Join(h.mountpoint, rel), true
}

func (p *preparer) mountCgroup(e *mountEntry) error {
	if p.cgroup2 {
		return p.mountCgroup2(e)
	}
	return p.mountCgroup1(e)
}

// mountCgroup1 mounts a tmpfs at the destination and, in it, one directory
// per v1 hierarchy: a bind of the container's cgroup or, with a cgroup
// namespace, a fresh cgroup mount. Co-mounted hierarchies (cpu,cpuacct) get
// a symlink per controller.
func (p *preparer) mountCgroup1(e *mountEntry) error {
	mounts, err := mountinfo.GetMounts(mountinfo.FSTypeFilter("cgroup"))
	if err != nil {
		return fmt.Errorf("%s: read mountinfo: %w", e.name(), err)
	}
	self := "/proc/self/cgroup"
	if p.cfg.InitPid != 0 {
		self = "/proc/" + strconv.Itoa(p.cfg.InitPid) + "/cgroup"
	}
	f, err := os.Open(self)
	if err != nil {
		return fmt.Errorf("%s: %w", e.name(), err)
	}
	procCgroup, err := parseProcCgroup(f)
	f.Close()
	if err != nil {
		return fmt.Errorf("%s: read /proc/self/cgroup: %w", e.name(), err)
	}
	hierarchies := cgroupV1Hierarchies(mounts, procCgroup)

	tmpfs := &mountEntry{index: e.index, dest: e.dest, source: "tmpfs", fstype: "tmpfs",
		opts: mountOptions{flags: defaultCgroupFlags, data: "mode=755", propagation: e.opts.propagation}}
	if err := p.mount(tmpfs); err != nil {
		return err
	}
	for _, h := range hierarchies {
		sub := path.Join(e.dest, h.dirName())
		if p.cfg.CgroupNS {
			flags := uintptr(defaultCgroupFlags) | e.opts.flags&unix.MS_RDONLY
			source, data := "cgroup", strings.Join(h.subsystems, ",")
			if data == "name=systemd" {
				source = "systemd"
			}
			m := &mountEntry{index: e.index, dest: sub, source: source, fstype: "cgroup", opts: mountOptions{flags: flags, data: data}}
			fd, resolved, err := p.openDest(m, createDir)
			if err != nil {
				return fmt.Errorf("%s: %w", e.name(), err)
			}
			err = p.mountAt(fd, resolved, source, "cgroup", flags, data)
			fd.Close()
			if err != nil {
				return fmt.Errorf("%s: %w", e.name(), err)
			}
			continue
		}
		source, ok := cgroupSource(h, p.cfg.CgroupPaths)
		if !ok {
			continue
		}
		bind := &mountEntry{index: e.index, dest: sub, source: source, fstype: "bind", opts: e.opts}
		bind.opts.flags |= unix.MS_BIND | unix.MS_REC
		bind.opts.recAttr = nil
		if err := p.mount(bind); err != nil {
			return err
		}
	}
	for _, h := range hierarchies {
		if !strings.Contains(h.dirName(), ",") {
			continue
		}
		dir, resolved, err := p.root.open(e.dest, createNone)
		if err != nil {
			return fmt.Errorf("%s: %w", e.name(), err)
		}
		for _, s := range strings.Split(h.dirName(), ",") {
			if err := unix.Symlinkat(h.dirName(), int(dir.Fd()), s); err != nil && !errors.Is(err, unix.EEXIST) {
				dir.Close()
				return fmt.Errorf("%s: symlink %s/%s -> %s: %w", e.name(), resolved, s, h.dirName(), err)
			}
		}
		dir.Close()
	}
	return nil
}

// mountCgroup2 mounts cgroup2 when the container has its own cgroup
// namespace, else binds its cgroup directory (CgroupPaths[""]). Without
// either, it tries cgroup2 and falls back to binding the host's
// /sys/fs/cgroup, as runc does.
func (p *preparer) mountCgroup2(e *mountEntry) error {
	cgPath := p.cfg.CgroupPaths[""]
	if p.cfg.CgroupNS || cgPath == "" {
		f, resolved, err := p.openDest(e, createDir)
		if err != nil {
			return fmt.Errorf("%s: %w", e.name(), err)
		}
		err = p.mountAt(f, resolved, e.source, "cgroup2", e.opts.flags, e.opts.data)
		f.Close()
		if err == nil {
			if err := p.applyAfter(e, resolved); err != nil {
				return fmt.Errorf("%s: %w", e.name(), err)
			}
			return nil
		}
		if !errors.Is(err, unix.EPERM) && !errors.Is(err, unix.EBUSY) {
			return fmt.Errorf("%s: %w", e.name(), err)
		}
	}
	if cgPath == "" {
		cgPath = "/sys/fs/cgroup"
	}
	bind := &mountEntry{index: e.index, dest: e.dest, source: cgPath, fstype: "bind", opts: e.opts}
	bind.opts.flags |= unix.MS_BIND
	return p.mount(bind)
}
