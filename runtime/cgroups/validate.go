package cgroups

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/skiff-containers/skiff/errdefs"
)

// Kernel limits that are the same on v1 and v2.
const (
	minCPUPeriod = 1000    // us
	maxCPUPeriod = 1000000 // us
	minCPUQuota  = 1000    // us
	minShares    = 2
	maxShares    = 262144
	minBlkWeight = 10
	maxBlkWeight = 1000
)

func invalid(field, format string, args ...any) error {
	return fmt.Errorf("linux.resources.%s: %s: %w", field, fmt.Sprintf(format, args...), errdefs.ErrInvalidArgument)
}

// validateResources checks r before anything is created or written. It
// checks what can be known without the cgroup existing; the kernel still has
// the last word on writes.
func validateResources(r *specs.LinuxResources, mode Mode) error {
	if r == nil {
		return nil
	}
	v2 := mode == Unified
	if p := r.Pids; p != nil && p.Limit != nil && *p.Limit < -1 {
		return invalid("pids.limit", "%d is negative; use -1 (or omit it) for no limit, or a positive number", *p.Limit)
	}
	if err := validateMemory(r.Memory, v2); err != nil {
		return err
	}
	if err := validateCPU(r.CPU, v2); err != nil {
		return err
	}
	for i, d := range r.Devices {
		if _, err := deviceRule(d); err != nil {
			return fmt.Errorf("linux.resources.devices[%d]: %w", i, err)
		}
	}
	if err := validateBlockIO(r.BlockIO); err != nil {
		return err
	}
	for i, h := range r.HugepageLimits {
		if !pageSizeRe.MatchString(h.Pagesize) {
			return invalid(fmt.Sprintf("hugepageLimits[%d].pageSize", i), "%q is not a page size like 2MB or 1GB", h.Pagesize)
		}
	}
	if n := r.Network; n != nil {
		if v2 && (n.ClassID != nil || len(n.Priorities) > 0) {
			return fmt.Errorf("linux.resources.network: net_cls/net_prio do not exist on cgroup v2; remove classID/priorities (use eBPF or iptables for marking): %w", errdefs.ErrNotImplemented)
		}
		for i, p := range n.Priorities {
			if p.Name == "" || strings.ContainsAny(p.Name, " \t\n/") {
				return invalid(fmt.Sprintf("network.priorities[%d].name", i), "%q is not an interface name", p.Name)
			}
		}
	}
	for dev := range r.Rdma {
		if dev == "" || strings.ContainsAny(dev, " \t\n=") {
			return invalid("rdma", "%q is not an RDMA device name", dev)
		}
	}
	if len(r.Unified) > 0 {
		if !v2 {
			return fmt.Errorf("linux.resources.unified: this host drives cgroups with v1 controllers (%s mode), which have no unified files; use the v1 fields instead: %w", mode, errdefs.ErrInvalidArgument)
		}
		for k, v := range r.Unified {
			if k == "" || strings.ContainsAny(k, "/\x00") || k == "." || k == ".." || !strings.Contains(k, ".") {
				return invalid("unified", "key %q is not a cgroup file name like memory.high", k)
			}
			if k == "cgroup.procs" || k == "cgroup.threads" || k == "cgroup.subtree_control" {
				return invalid("unified", "key %q is managed by the runtime and cannot be set", k)
			}
			if strings.ContainsRune(v, 0) {
				return invalid("unified", "value of %q contains a NUL byte", k)
			}
		}
	}
	return nil
}

var pageSizeRe = regexp.MustCompile(`^[1-9][0-9]*[KMGTP]B$`)

func validateMemory(m *specs.LinuxMemory, v2 bool) error {
	if m == nil {
		return nil
	}
	limit := ptrI64(m.Limit)
	if limit < -1 {
		return invalid("memory.limit", "%d is negative; use -1 for no limit", limit)
	}
	if r := ptrI64(m.Reservation); r < -1 {
		return invalid("memory.reservation", "%d is negative; use -1 for no reservation", r)
	}
	swap := ptrI64(m.Swap)
	if swap < -1 {
		return invalid("memory.swap", "%d is negative; use -1 for unlimited swap", swap)
	}
	if swap > 0 && limit > 0 && swap < limit {
		return invalid("memory.swap", "memory+swap %d is less than the memory limit %d; memory.swap counts memory plus swap, so it must be >= memory.limit", swap, limit)
	}
	if v2 && swap > 0 && limit == 0 {
		return invalid("memory.swap", "set without memory.limit; on cgroup v2 the swap limit is memory.swap - memory.limit, so set memory.limit too")
	}
	if s := m.Swappiness; s != nil && *s > 100 && int64(*s) != -1 {
		return invalid("memory.swappiness", "%d is out of range 0-100", *s)
	}
	if v2 && m.DisableOOMKiller != nil && *m.DisableOOMKiller {
		return fmt.Errorf("linux.resources.memory.disableOOMKiller: cgroup v2 cannot disable the OOM killer; remove the field: %w", errdefs.ErrNotImplemented)
	}
	return nil
}

func validateCPU(c *specs.LinuxCPU, v2 bool) error {
	if c == nil {
		return nil
	}
	if s := c.Shares; s != nil && *s != 0 && v2 && (*s < minShares || *s > maxShares) {
		return invalid("cpu.shares", "%d is out of range %d-%d", *s, minShares, maxShares)
	}
	if q := ptrI64(c.Quota); q != 0 && q != -1 && q < minCPUQuota {
		return invalid("cpu.quota", "%d is below the kernel minimum of %dus; use -1 for no quota", q, minCPUQuota)
	}
	if p := c.Period; p != nil && *p != 0 && (*p < minCPUPeriod || *p > maxCPUPeriod) {
		return invalid("cpu.period", "%d is out of the kernel range %d-%dus", *p, minCPUPeriod, maxCPUPeriod)
	}
	if v2 && (ptrI64(c.RealtimeRuntime) != 0 || (c.RealtimePeriod != nil && *c.RealtimePeriod != 0)) {
		return fmt.Errorf("linux.resources.cpu.realtimeRuntime/realtimePeriod: cgroup v2 has no realtime group scheduling; remove them: %w", errdefs.ErrNotImplemented)
	}
	if r := ptrI64(c.RealtimeRuntime); r < -1 {
		return invalid("cpu.realtimeRuntime", "%d is negative; use -1 for no limit", r)
	}
	if i := c.Idle; i != nil && *i != 0 && *i != 1 {
		return invalid("cpu.idle", "%d is neither 0 nor 1", *i)
	}
	if c.Cpus != "" {
		if err := checkCPUList(c.Cpus); err != nil {
			return invalid("cpu.cpus", "%q: %v (want a list like 0-3,6)", c.Cpus, err)
		}
	}
	if c.Mems != "" {
		if err := checkCPUList(c.Mems); err != nil {
			return invalid("cpu.mems", "%q: %v (want a list like 0-1)", c.Mems, err)
		}
	}
	return nil
}

// checkCPUList validates the kernel's list format: "0-3,5,7-8".
func checkCPUList(s string) error {
	for _, part := range strings.Split(s, ",") {
		lo, hi, isRange := strings.Cut(part, "-")
		a, err := strconv.ParseUint(lo, 10, 16)
		if err != nil {
			return fmt.Errorf("bad element %q", part)
		}
		if isRange {
			b, err := strconv.ParseUint(hi, 10, 16)
			if err != nil || b < a {
				return fmt.Errorf("bad range %q", part)
			}
		}
	}
	return nil
}

func validateBlockIO(b *specs.LinuxBlockIO) error {
	if b == nil {
		return nil
	}
	checkW := func(field string, w *uint16) error {
		if w != nil && *w != 0 && (*w < minBlkWeight || *w > maxBlkWeight) {
			return invalid(field, "%d is out of range %d-%d", *w, minBlkWeight, maxBlkWeight)
		}
		return nil
	}
	if err := checkW("blockIO.weight", b.Weight); err != nil {
		return err
	}
	if err := checkW("blockIO.leafWeight", b.LeafWeight); err != nil {
		return err
	}
	for i, d := range b.WeightDevice {
		f := fmt.Sprintf("blockIO.weightDevice[%d]", i)
		if d.Major < 0 || d.Minor < 0 {
			return invalid(f, "device %d:%d has a negative number", d.Major, d.Minor)
		}
		if err := checkW(f+".weight", d.Weight); err != nil {
			return err
		}
		if err := checkW(f+".leafWeight", d.LeafWeight); err != nil {
			return err
		}
	}
	for name, l := range map[string][]specs.LinuxThrottleDevice{
		"throttleReadBpsDevice": b.ThrottleReadBpsDevice, "throttleWriteBpsDevice": b.ThrottleWriteBpsDevice,
		"throttleReadIOPSDevice": b.ThrottleReadIOPSDevice, "throttleWriteIOPSDevice": b.ThrottleWriteIOPSDevice,
	} {
		for i, d := range l {
			if d.Major < 0 || d.Minor < 0 {
				return invalid(fmt.Sprintf("blockIO.%s[%d]", name, i), "device %d:%d has a negative number", d.Major, d.Minor)
			}
		}
	}
	return nil
}

func ptrI64(p *int64) int64 {
	if p == nil {
		return 0
	}
	return *p
}

// deviceRule turns a spec device entry into the v1 rule text "c 1:3 rwm".
func deviceRule(d specs.LinuxDeviceCgroup) (string, error) {
	t := d.Type
	switch t {
	case "":
		t = "a"
	case "a", "b", "c":
	default:
		return "", fmt.Errorf("device type %q is not a (all), b (block) or c (char): %w", d.Type, errdefs.ErrInvalidArgument)
	}
	num := func(p *int64, what string) (string, error) {
		if p == nil || *p == -1 {
			return "*", nil
		}
		if *p < 0 {
			return "", fmt.Errorf("device %s %d is negative; omit it or use -1 for any: %w", what, *p, errdefs.ErrInvalidArgument)
		}
		return strconv.FormatInt(*p, 10), nil
	}
	maj, err := num(d.Major, "major")
	if err != nil {
		return "", err
	}
	min, err := num(d.Minor, "minor")
	if err != nil {
		return "", err
	}
	acc := d.Access
	if acc == "" {
		acc = "rwm"
	}
	seen := map[rune]bool{}
	for _, c := range acc {
		if (c != 'r' && c != 'w' && c != 'm') || seen[c] {
			return "", fmt.Errorf("device access %q is not a combination of r, w and m: %w", d.Access, errdefs.ErrInvalidArgument)
		}
		seen[c] = true
	}
	if t == "a" {
		// The kernel only knows "a" as everything; runc writes "a *:* rwm".
		maj, min = "*", "*"
	}
	return fmt.Sprintf("%s %s:%s %s", t, maj, min, acc), nil
}
