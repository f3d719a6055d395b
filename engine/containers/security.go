package containers

import (
	"encoding/json"
	"fmt"
	"maps"
	"os"
	"slices"
	"strconv"
	"strings"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/skiff-containers/skiff/errdefs"
	"github.com/skiff-containers/skiff/image/specgen"
)

// DeviceMapping is one --device (docker's container.DeviceMapping).
type DeviceMapping struct {
	PathOnHost        string `json:"pathOnHost"`
	PathInContainer   string `json:"pathInContainer"`
	CgroupPermissions string `json:"cgroupPermissions"`
}

// Ulimit is one --ulimit ("nofile"); -1 is unlimited.
type Ulimit struct {
	Name string `json:"name"`
	Soft int64  `json:"soft"`
	Hard int64  `json:"hard"`
}

// defaultShmSize is docker's --shm-size default, 64 MiB, recorded in the
// config as docker records it.
const defaultShmSize = 64 << 20

// securityOptions are the --security-opt values that change the spec.
type securityOptions struct {
	noNewPrivileges bool
	// seccomp is specgen's Options.Seccomp: "", "builtin", "unconfined" or
	// a profile's JSON.
	seccomp string
}

// parseSecurityOpts reads --security-opt as docker's daemon does:
// no-new-privileges[=|:bool], seccomp=unconfined|builtin|<profile JSON>
// (the client reads a profile file and sends its content), label=… and
// apparmor=… (accepted and ignored on a host without SELinux or AppArmor,
// as docker ignores them there; refused on one that has them, since skiff
// does not apply labels or profiles), and the legacy "disable" label. Both
// '=' and the deprecated ':' separate key and value.
func parseSecurityOpts(opts []string) (securityOptions, error) {
	var out securityOptions
	bad := func(opt string) error {
		return fmt.Errorf("invalid --security-opt %q: want no-new-privileges[=true|false], seccomp=unconfined|PROFILE, label=… or apparmor=…: %w", opt, errdefs.ErrInvalidArgument)
	}
	for _, opt := range opts {
		if opt == "no-new-privileges" {
			out.noNewPrivileges = true
			continue
		}
		if opt == "disable" {
			continue // label:disable, the legacy spelling
		}
		k, v, ok := strings.Cut(opt, "=")
		if !ok {
			k, v, ok = strings.Cut(opt, ":")
		}
		if !ok {
			return out, bad(opt)
		}
		switch k {
		case "no-new-privileges":
			b, err := strconv.ParseBool(v)
			if err != nil {
				return out, bad(opt)
			}
			out.noNewPrivileges = b
		case "seccomp":
			switch v {
			case specgen.SeccompUnconfined, specgen.SeccompBuiltin:
			default:
				if !json.Valid([]byte(v)) {
					return out, fmt.Errorf("--security-opt seccomp: decoding seccomp profile failed: not JSON (give unconfined, builtin, or the profile's content; the CLI reads a profile file and sends its JSON): %w", errdefs.ErrInvalidArgument)
				}
			}
			out.seccomp = v
		case "label":
			if selinuxEnabled() && v != "disable" {
				return out, fmt.Errorf("--security-opt %s: skiff does not apply SELinux labels and this host enforces SELinux: %w", opt, errdefs.ErrNotImplemented)
			}
		case "apparmor":
			if apparmorEnabled() && v != "unconfined" {
				return out, fmt.Errorf("--security-opt %s: skiff does not apply AppArmor profiles and this host has AppArmor: %w", opt, errdefs.ErrNotImplemented)
			}
		default:
			return out, bad(opt)
		}
	}
	return out, nil
}

// selinuxEnabled reports whether the host runs SELinux.
func selinuxEnabled() bool {
	_, err := os.Stat("/sys/fs/selinux/enforce")
	return err == nil
}

// apparmorEnabled reports whether the host runs AppArmor (docker's
// apparmor.HostSupports).
func apparmorEnabled() bool {
	b, err := os.ReadFile("/sys/module/apparmor/parameters/enabled")
	return err == nil && len(b) > 0 && b[0] == 'Y'
}

// namespacedSysctl reports whether key is one docker lets a container set
// (opts.ValidateSysctl): the ipc namespace's kernel.msg*/sem/shm* keys,
// fs.mqueue.* and net.*.
func namespacedSysctl(key string) bool {
	switch key {
	case "kernel.msgmax", "kernel.msgmnb", "kernel.msgmni", "kernel.sem",
		"kernel.shmall", "kernel.shmmax", "kernel.shmmni", "kernel.shm_rmid_forced":
		return true
	}
	return strings.HasPrefix(key, "net.") || strings.HasPrefix(key, "fs.mqueue.")
}

// validateSecurity checks the resource and security settings of cfg as
// docker's daemon does at create and fills in docker's defaults (memory
// plus swap twice the memory, 64 MiB of /dev/shm). What depends on the
// image or the host's devices (capabilities, --device, --group-add,
// --ulimit, a seccomp profile's content) is checked when the spec is made.
func validateSecurity(cfg *CreateConfig) ([]string, error) {
	var warnings []string
	fail := func(err error) ([]string, error) { return nil, fmt.Errorf("create container: %w", err) }
	bad := func(format string, a ...any) ([]string, error) {
		return fail(fmt.Errorf(format+": %w", append(a, errdefs.ErrInvalidArgument)...))
	}
	r := &cfg.Resources
	if err := validateResources(*r); err != nil {
		return fail(err)
	}
	if r.MemorySwap > 0 && r.Memory == 0 {
		return bad("you should always set the Memory limit when using Memoryswap limit, see usage")
	}
	if r.Memory > 0 && r.MemorySwap == 0 {
		r.MemorySwap = 2 * r.Memory // docker's default
	}
	if r.MemorySwap != 0 && !swapLimitSupported() {
		warnings = append(warnings, "Your kernel does not support swap limit capabilities or the cgroup is not mounted. Memory limited without swap.")
		r.MemorySwap = 0
	}
	if err := checkCpuset("cpus", "CPUs", r.CpusetCpus, "/sys/devices/system/cpu/online"); err != nil {
		return fail(err)
	}
	if err := checkCpuset("mems", "memory nodes", r.CpusetMems, "/sys/devices/system/node/online"); err != nil {
		return fail(err)
	}
	switch {
	case cfg.ShmSize < 0:
		return bad("SHM size can not be less than 0")
	case cfg.ShmSize == 0:
		cfg.ShmSize = defaultShmSize
	}
	if cfg.OOMScoreAdj < -1000 || cfg.OOMScoreAdj > 1000 {
		return bad("invalid value %d, range for oom score adj is [-1000, 1000]", cfg.OOMScoreAdj)
	}
	for _, k := range slices.Sorted(maps.Keys(cfg.Sysctls)) {
		if !namespacedSysctl(k) {
			return bad("sysctl '%s=%s' is not allowed: a container may only set namespaced sysctls (net.*, fs.mqueue.*, kernel.msgmax, kernel.msgmnb, kernel.msgmni, kernel.sem, kernel.shmall, kernel.shmmax, kernel.shmmni, kernel.shm_rmid_forced)", k, cfg.Sysctls[k])
		}
		if strings.ContainsAny(k+cfg.Sysctls[k], "\x00\n") {
			return bad("sysctl %q: contains a NUL or newline", k)
		}
		if cfg.NetworkMode == "host" && strings.HasPrefix(k, "net.") {
			return bad("sysctl %q not allowed in host network namespace", k)
		}
	}
	for _, u := range cfg.Ulimits {
		if !specgen.ValidUlimitName(u.Name) {
			return bad("invalid ulimit type: %s", u.Name)
		}
	}
	if _, err := parseSecurityOpts(cfg.SecurityOpt); err != nil {
		return fail(err)
	}
	for _, g := range cfg.GroupAdd {
		if g == "" || strings.ContainsAny(g, ":\x00\n") {
			return bad("--group-add %q: not a group name or number", g)
		}
	}
	return warnings, nil
}

// swapLimitSupported reports whether the host limits memory plus swap
// (cgroup v1 needs swap accounting; v2 has memory.swap.max).
func swapLimitSupported() bool {
	if _, err := os.Stat("/sys/fs/cgroup/memory"); err == nil {
		_, err := os.Stat("/sys/fs/cgroup/memory/memory.memsw.limit_in_bytes")
		return err == nil
	}
	return true
}

// checkCpuset checks a --cpuset-cpus or --cpuset-mems list ("0-3,5")
// against the host's online CPUs or memory nodes (noun) listed in file
// (not checked when the file is missing).
func checkCpuset(what, noun, list, file string) error {
	if list == "" {
		return nil
	}
	want, err := parseList(list)
	if err != nil {
		return fmt.Errorf("invalid value %s for cpuset %s: %v: %w", list, what, err, errdefs.ErrInvalidArgument)
	}
	data, err := os.ReadFile(file)
	if err != nil {
		return nil
	}
	avail, err := parseList(strings.TrimSpace(string(data)))
	if err != nil {
		return nil
	}
	for _, n := range want {
		if !slices.Contains(avail, n) {
			return fmt.Errorf("requested %s are not available - requested %s, available: %s: %w", noun, list, strings.TrimSpace(string(data)), errdefs.ErrInvalidArgument)
		}
	}
	return nil
}

// parseList parses a kernel list ("0-3,5").
func parseList(s string) ([]int, error) {
	var out []int
	for _, part := range strings.Split(s, ",") {
		lo, hi, isRange := strings.Cut(part, "-")
		first, err := strconv.Atoi(lo)
		if err != nil || first < 0 {
			return nil, fmt.Errorf("%q is not a number or range", part)
		}
		last := first
		if isRange {
			if last, err = strconv.Atoi(hi); err != nil || last < first || last-first > 1<<16 {
				return nil, fmt.Errorf("%q is not a range", part)
			}
		}
		for n := first; n <= last; n++ {
			out = append(out, n)
		}
	}
	return out, nil
}

// securitySpec puts cfg's resource and security settings (validated) into
// the spec options.
func securitySpec(o *specgen.Options, cfg CreateConfig) error {
	sec, err := parseSecurityOpts(cfg.SecurityOpt)
	if err != nil {
		return err
	}
	if !cfg.Resources.IsZero() {
		o.Resources = &specs.LinuxResources{}
		applyResources(o.Resources, cfg.Resources)
	}
	o.Privileged = cfg.Privileged
	o.CapAdd, o.CapDrop = cfg.CapAdd, cfg.CapDrop
	o.NoNewPrivileges = sec.noNewPrivileges
	o.Seccomp = sec.seccomp
	o.ShmSize = cfg.ShmSize
	o.Sysctls = cfg.Sysctls
	o.GroupAdd = cfg.GroupAdd
	o.OOMScoreAdj = cfg.OOMScoreAdj
	for _, d := range cfg.Devices {
		o.Devices = append(o.Devices, specgen.Device{PathOnHost: d.PathOnHost, PathInContainer: d.PathInContainer, CgroupPermissions: d.CgroupPermissions})
	}
	for _, u := range cfg.Ulimits {
		o.Ulimits = append(o.Ulimits, specgen.Ulimit{Name: u.Name, Soft: u.Soft, Hard: u.Hard})
	}
	return nil
}
