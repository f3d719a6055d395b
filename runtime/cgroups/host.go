package cgroups

import (
	"os"
	"strconv"
	"strings"

	"github.com/moby/sys/mountinfo"
	"golang.org/x/sys/unix"

	"github.com/skiff-containers/skiff/runtime/cgroups/devices"
)

const (
	cgroup2Magic = unix.CGROUP2_SUPER_MAGIC
	cgroup1Magic = unix.CGROUP_SUPER_MAGIC
)

// host is the seam between the managers and the machine: the few questions
// about the host that a test needs to answer differently (what filesystem a
// path is, which cgroup the runtime is in, where the v1 hierarchies are
// mounted, what a new cgroup directory contains). Reads and writes of cgroup
// files go straight to the filesystem, so a fake tree in a temp dir runs the
// same code as /sys/fs/cgroup.
type host interface {
	// statfs returns the f_type of the filesystem holding path.
	statfs(path string) (int64, error)
	// selfCgroup returns the content of /proc/self/cgroup.
	selfCgroup() (string, error)
	// cgroupMounts returns the cgroup v1 mounts at or under root.
	cgroupMounts(root string) ([]cgroupMount, error)
	// mkdir creates one cgroup directory (the kernel fills it with files).
	mkdir(path string) error
	// rmdir removes one cgroup directory (cgroupfs removes its files).
	rmdir(path string) error
	// attachDeviceFilter attaches a device program to a cgroup v2 directory,
	// replacing the one attached before.
	attachDeviceFilter(dir string, p devices.Program) error
	// hugePageSizes lists the huge page sizes of the host as cgroup file
	// name parts ("2MB", "1GB").
	hugePageSizes() ([]string, error)
}

// cgroupMount is one cgroup v1 hierarchy.
type cgroupMount struct {
	mountpoint  string
	root        string   // the cgroup path that is mounted (mountinfo field 4)
	controllers []string // "cpu", "cpuacct", "name=systemd", ...
}

type osHost struct{}

func (osHost) statfs(path string) (int64, error) {
	var st unix.Statfs_t
	if err := unix.Statfs(path, &st); err != nil {
		return 0, &os.PathError{Op: "statfs", Path: path, Err: err}
	}
	return int64(st.Type), nil
}

func (osHost) selfCgroup() (string, error) {
	b, err := os.ReadFile("/proc/self/cgroup")
	return string(b), err
}

func (osHost) cgroupMounts(root string) ([]cgroupMount, error) {
	infos, err := mountinfo.GetMounts(func(i *mountinfo.Info) (skip, stop bool) {
		if i.FSType != "cgroup" {
			return true, false
		}
		return !isUnder(root, i.Mountpoint), false
	})
	if err != nil {
		return nil, err
	}
	var out []cgroupMount
	for _, i := range infos {
		m := cgroupMount{mountpoint: i.Mountpoint, root: i.Root}
		for _, o := range strings.Split(i.VFSOptions, ",") {
			switch {
			case o == "rw" || o == "ro" || strings.HasPrefix(o, "release_agent=") ||
				o == "clone_children" || o == "noprefix" || o == "xattr" || o == "cpuset_v2_mode":
			case strings.HasPrefix(o, "name="):
				m.controllers = append(m.controllers, o)
			case strings.Contains(o, "="):
			default:
				m.controllers = append(m.controllers, o)
			}
		}
		out = append(out, m)
	}
	return out, nil
}

func (osHost) mkdir(path string) error {
	return os.Mkdir(path, 0o755)
}

func (osHost) rmdir(path string) error {
	return unix.Rmdir(path)
}

func (osHost) attachDeviceFilter(dir string, p devices.Program) error {
	return devices.Attach(dir, p)
}

func (osHost) hugePageSizes() ([]string, error) {
	ents, err := os.ReadDir("/sys/kernel/mm/hugepages")
	if err != nil {
		if os.IsNotExist(err) {
			return nil, nil
		}
		return nil, err
	}
	var out []string
	for _, e := range ents {
		if s, ok := hugePageDirToSize(e.Name()); ok {
			out = append(out, s)
		}
	}
	return out, nil
}

// hugePageDirToSize turns "hugepages-2048kB" into "2MB", as the hugetlb
// controller names its files.
func hugePageDirToSize(name string) (string, bool) {
	v, ok := strings.CutPrefix(name, "hugepages-")
	if !ok {
		return "", false
	}
	v, ok = strings.CutSuffix(v, "kB")
	if !ok {
		return "", false
	}
	var kb uint64
	for _, c := range v {
		if c < '0' || c > '9' {
			return "", false
		}
		kb = kb*10 + uint64(c-'0')
	}
	units := []string{"KB", "MB", "GB", "TB", "PB"}
	i := 0
	for kb >= 1024 && kb%1024 == 0 && i < len(units)-1 {
		kb /= 1024
		i++
	}
	return strconv.FormatUint(kb, 10) + units[i], true
}
