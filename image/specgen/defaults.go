package specgen

import (
	"fmt"
	"os"
	"strconv"
	"strings"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

// defaultPathEnv is docker's PATH for Linux containers whose image sets
// none (moby daemon/pkg/oci/defaults.go).
const defaultPathEnv = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

// defaultShmSize is docker's --shm-size default, 64 MiB (moby
// daemon/config: DefaultShmSize).
const defaultShmSize = 64 << 20

// DefaultCapabilities returns docker's default capability set for
// non-privileged containers, in docker's order (moby
// daemon/pkg/oci/caps/defaults.go). Each call returns a new slice.
func DefaultCapabilities() []string {
	return []string{
		"CAP_CHOWN",
		"CAP_DAC_OVERRIDE",
		"CAP_FSETID",
		"CAP_FOWNER",
		"CAP_MKNOD",
		"CAP_NET_RAW",
		"CAP_SETGID",
		"CAP_SETUID",
		"CAP_SETFCAP",
		"CAP_SETPCAP",
		"CAP_NET_BIND_SERVICE",
		"CAP_SYS_CHROOT",
		"CAP_KILL",
		"CAP_AUDIT_WRITE",
	}
}

// defaultMounts returns docker's default mounts, in docker's order, with
// /dev/shm sized shmSize bytes.
func defaultMounts(shmSize int64) []specs.Mount {
	return []specs.Mount{
		{Destination: "/proc", Type: "proc", Source: "proc",
			Options: []string{"nosuid", "noexec", "nodev"}},
		{Destination: "/dev", Type: "tmpfs", Source: "tmpfs",
			Options: []string{"nosuid", "strictatime", "mode=755", "size=65536k"}},
		{Destination: "/dev/pts", Type: "devpts", Source: "devpts",
			Options: []string{"nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"}},
		{Destination: "/sys", Type: "sysfs", Source: "sysfs",
			Options: []string{"nosuid", "noexec", "nodev", "ro"}},
		{Destination: "/sys/fs/cgroup", Type: "cgroup", Source: "cgroup",
			Options: []string{"ro", "nosuid", "noexec", "nodev"}},
		{Destination: "/dev/mqueue", Type: "mqueue", Source: "mqueue",
			Options: []string{"nosuid", "noexec", "nodev"}},
		{Destination: "/dev/shm", Type: "tmpfs", Source: "shm",
			Options: []string{"nosuid", "noexec", "nodev", "mode=1777", "size=" + strconv.FormatInt(shmSize, 10)}},
	}
}

// defaultMaskedPaths returns docker's masked paths: a fixed list plus the
// thermal_throttle directory of each possible CPU of the host that has one
// (GHSA-6fw5-f8r9-fgfm).
func defaultMaskedPaths() []string {
	paths := []string{
		"/proc/acpi",
		"/proc/asound",
		"/proc/interrupts",
		"/proc/kcore",
		"/proc/keys",
		"/proc/latency_stats",
		"/proc/sched_debug",
		"/proc/scsi",
		"/proc/timer_list",
		"/proc/timer_stats",
		"/sys/devices/virtual/powercap",
		"/sys/firmware",
	}
	for _, cpu := range possibleCPUs() {
		p := fmt.Sprintf("/sys/devices/system/cpu/cpu%d/thermal_throttle", cpu)
		if _, err := os.Stat(p); err == nil {
			paths = append(paths, p)
		}
	}
	return paths
}

// defaultReadonlyPaths returns docker's read-only paths.
func defaultReadonlyPaths() []string {
	return []string{
		"/proc/bus",
		"/proc/fs",
		"/proc/irq",
		"/proc/sys",
		"/proc/sysrq-trigger",
	}
}

// defaultDeviceRules returns docker's device cgroup rules: deny everything,
// allow the standard devices, deny /dev/net/tun.
func defaultDeviceRules() []specs.LinuxDeviceCgroup {
	allow := func(major, minor int64) specs.LinuxDeviceCgroup {
		return specs.LinuxDeviceCgroup{Allow: true, Type: "c", Major: &major, Minor: &minor, Access: "rwm"}
	}
	tunMajor, tunMinor := int64(10), int64(229)
	return []specs.LinuxDeviceCgroup{
		{Allow: false, Access: "rwm"},
		allow(1, 5), // /dev/zero
		allow(1, 3), // /dev/null
		allow(1, 9), // /dev/urandom
		allow(1, 8), // /dev/random
		allow(5, 0), // /dev/tty
		allow(5, 1), // /dev/console
		{Allow: false, Type: "c", Major: &tunMajor, Minor: &tunMinor, Access: "rwm"},
	}
}

// defaultNetSysctls returns the sysctls docker sets for a container with
// its own network namespace, those of them the host kernel has.
func defaultNetSysctls() map[string]string {
	out := map[string]string{}
	for key, value := range map[string]string{
		// unprivileged ICMP echo sockets, without CAP_NET_RAW
		"net.ipv4.ping_group_range": "0 2147483647",
		// any port below 1024 without CAP_NET_BIND_SERVICE
		"net.ipv4.ip_unprivileged_port_start": "0",
	} {
		if _, err := os.Stat("/proc/sys/" + strings.ReplaceAll(key, ".", "/")); err == nil {
			out[key] = value
		}
	}
	return out
}

// possibleCPUs returns the numbers of the host's possible CPUs, from
// /sys/devices/system/cpu/possible ("0-3,5"); nil if unreadable.
func possibleCPUs() []int {
	data, err := os.ReadFile("/sys/devices/system/cpu/possible")
	if err != nil {
		return nil
	}
	var cpus []int
	for _, part := range strings.Split(strings.TrimSpace(string(data)), ",") {
		lo, hi, isRange := strings.Cut(part, "-")
		first, err := strconv.Atoi(lo)
		if err != nil {
			return nil
		}
		last := first
		if isRange {
			if last, err = strconv.Atoi(hi); err != nil || last < first || last-first > 1<<16 {
				return nil
			}
		}
		for c := first; c <= last; c++ {
			cpus = append(cpus, c)
		}
	}
	return cpus
}

// cgroup2Host reports whether the host runs the unified cgroup v2
// hierarchy only, where docker gives containers a private cgroup namespace
// by default.
func cgroup2Host() bool {
	var st unix.Statfs_t
	return unix.Statfs("/sys/fs/cgroup", &st) == nil && st.Type == unix.CGROUP2_SUPER_MAGIC
}
