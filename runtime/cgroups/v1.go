package cgroups

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/skiff-containers/skiff/errdefs"
)

// v1Manager drives the cgroup v1 hierarchies (legacy and hybrid hosts).
type v1Manager struct {
	root  string
	mode  Mode
	paths map[string]string // controller → directory; "" is the unified one on hybrid hosts
	res   *specs.LinuxResources
	h     host
}

func newV1(c Config, inner string, mode Mode, h host) (*v1Manager, error) {
	paths, err := v1Paths(h, c.Root, inner, mode)
	if err != nil {
		return nil, err
	}
	m := &v1Manager{root: c.Root, mode: mode, paths: paths, res: c.Resources, h: h}
	if err := m.checkControllers(c.Resources); err != nil {
		return nil, err
	}
	return m, nil
}

func (m *v1Manager) Mode() Mode { return m.mode }

func (m *v1Manager) Paths() map[string]string {
	out := make(map[string]string, len(m.paths))
	for k, v := range m.paths {
		out[k] = v
	}
	return out
}

// checkControllers refuses resources whose controller is not mounted.
func (m *v1Manager) checkControllers(r *specs.LinuxResources) error {
	if r == nil {
		return nil
	}
	need := map[string]bool{}
	if r.Pids != nil && r.Pids.Limit != nil && *r.Pids.Limit != 0 {
		need["pids"] = true
	}
	if mem := r.Memory; mem != nil && (ptrI64(mem.Limit) != 0 || ptrI64(mem.Reservation) != 0 || ptrI64(mem.Swap) != 0 ||
		(mem.DisableOOMKiller != nil && *mem.DisableOOMKiller) || (mem.Swappiness != nil && int64(*mem.Swappiness) != -1)) {
		need["memory"] = true
	}
	if c := r.CPU; c != nil {
		if (c.Shares != nil && *c.Shares != 0) || ptrI64(c.Quota) != 0 || (c.Period != nil && *c.Period != 0) ||
			(c.Burst != nil) || ptrI64(c.RealtimeRuntime) != 0 || (c.RealtimePeriod != nil && *c.RealtimePeriod != 0) || c.Idle != nil {
			need["cpu"] = true
		}
		if c.Cpus != "" || c.Mems != "" {
			need["cpuset"] = true
		}
	}
	if len(r.Devices) > 0 {
		need["devices"] = true
	}
	if b := r.BlockIO; b != nil && (b.Weight != nil || b.LeafWeight != nil || len(b.WeightDevice) > 0 ||
		len(b.ThrottleReadBpsDevice) > 0 || len(b.ThrottleWriteBpsDevice) > 0 || len(b.ThrottleReadIOPSDevice) > 0 || len(b.ThrottleWriteIOPSDevice) > 0) {
		need["blkio"] = true
	}
	if len(r.HugepageLimits) > 0 {
		need["hugetlb"] = true
	}
	if n := r.Network; n != nil {
		if n.ClassID != nil {
			need["net_cls"] = true
		}
		if len(n.Priorities) > 0 {
			need["net_prio"] = true
		}
	}
	if len(r.Rdma) > 0 {
		need["rdma"] = true
	}
	var missing []string
	for c := range need {
		if m.paths[c] == "" {
			missing = append(missing, c)
		}
	}
	if len(missing) > 0 {
		sort.Strings(missing)
		return fmt.Errorf("cgroup v1 controller(s) %s not mounted under %s but the config sets limits for them; mount them or remove those linux.resources fields: %w",
			strings.Join(missing, ", "), m.root, errdefs.ErrFailedPrecondition)
	}
	if len(r.HugepageLimits) > 0 {
		sizes, err := m.h.hugePageSizes()
		if err != nil {
			return fmt.Errorf("list the host's huge page sizes: %w", err)
		}
		if err := checkPageSizes(r.HugepageLimits, sizes); err != nil {
			return err
		}
	}
	return nil
}

func checkPageSizes(limits []specs.LinuxHugepageLimit, sizes []string) error {
	for i, l := range limits {
		found := false
		for _, s := range sizes {
			if s == l.Pagesize {
				found = true
			}
		}
		if !found {
			return fmt.Errorf("linux.resources.hugepageLimits[%d].pageSize: %q is not a huge page size of this host (it has %v): %w", i, l.Pagesize, sizes, errdefs.ErrInvalidArgument)
		}
	}
	return nil
}

// mkdirAll creates dir and missing parents (parents first).
func mkdirAll(h host, dir string) error {
	if _, err := os.Stat(dir); err == nil {
		return nil
	}
	if parent := filepath.Dir(dir); parent != dir {
		if err := mkdirAll(h, parent); err != nil {
			return err
		}
	}
	if err := h.mkdir(dir); err != nil && !errors.Is(err, os.ErrExist) {
		return fmt.Errorf("create cgroup directory %s: %w", dir, err)
	}
	return nil
}

// Apply creates the cgroup in every hierarchy and moves pid in. A pid of -1
// creates the directories only. On error the caller should Destroy.
func (m *v1Manager) Apply(pid int) error {
	for _, name := range append(v1Subsystems(), "") {
		dir, ok := m.paths[name]
		if !ok {
			continue
		}
		var err error
		switch name {
		case "cpuset":
			err = m.applyCpuset(dir)
		case "cpu":
			if err = mkdirAll(m.h, dir); err == nil && m.res != nil {
				// A realtime process can only join once rt_runtime is set.
				err = setRealtime(dir, m.res.CPU)
			}
		default:
			err = mkdirAll(m.h, dir)
		}
		if err == nil && pid != -1 {
			err = writePid(dir, pid)
		}
		if err != nil {
			return fmt.Errorf("apply cgroup %s: %w", cgName(name), err)
		}
	}
	return nil
}

func cgName(name string) string {
	if name == "" {
		return "unified (v2)"
	}
	return name
}

// applyCpuset creates a cpuset cgroup. A new cpuset directory starts with
// empty cpus and mems, and no process can join it until they are set, so
// each new level copies its parent's (after the configured ones are tried).
func (m *v1Manager) applyCpuset(dir string) error {
	if err := m.cpusetEnsure(filepath.Dir(dir)); err != nil {
		return err
	}
	if err := m.h.mkdir(dir); err != nil && !errors.Is(err, os.ErrExist) {
		return fmt.Errorf("create cgroup directory %s: %w", dir, err)
	}
	if m.res != nil && m.res.CPU != nil {
		if err := setCpuset(dir, m.res.CPU.Cpus, m.res.CPU.Mems); err != nil {
			return err
		}
	}
	return cpusetCopyIfEmpty(dir)
}

// cpusetEnsure creates dir (and its parents) inside the cpuset hierarchy,
// filling cpus and mems of each new level from its parent.
func (m *v1Manager) cpusetEnsure(dir string) error {
	if t, err := m.h.statfs(dir); err == nil {
		if t != cgroup1Magic {
			return nil // above the hierarchy's mountpoint
		}
		return cpusetCopyIfEmpty(dir) // exists: fill it if empty
	} else if !errors.Is(err, os.ErrNotExist) {
		return err
	}
	parent := filepath.Dir(dir)
	if parent == dir {
		return nil
	}
	if err := m.cpusetEnsure(parent); err != nil {
		return err
	}
	if err := m.h.mkdir(dir); err != nil && !errors.Is(err, os.ErrExist) {
		return fmt.Errorf("create cgroup directory %s: %w", dir, err)
	}
	return cpusetCopyIfEmpty(dir)
}

func cpusetCopyIfEmpty(dir string) error {
	parent := filepath.Dir(dir)
	for _, f := range []string{"cpuset.cpus", "cpuset.mems"} {
		cur, err := readFile(dir, f)
		if err != nil {
			return fmt.Errorf("read %s/%s: %w", dir, f, err)
		}
		if cur != "" {
			continue
		}
		pv, err := readFile(parent, f)
		if err != nil {
			return fmt.Errorf("read %s/%s: %w", parent, f, err)
		}
		if err := writeFile(dir, f, pv); err != nil {
			return err
		}
	}
	return nil
}

func setCpuset(dir, cpus, mems string) error {
	if cpus != "" {
		if err := writeFile(dir, "cpuset.cpus", cpus); err != nil {
			return err
		}
	}
	if mems != "" {
		if err := writeFile(dir, "cpuset.mems", mems); err != nil {
			return err
		}
	}
	return nil
}

func setRealtime(dir string, c *specs.LinuxCPU) error {
	if c == nil {
		return nil
	}
	if c.RealtimePeriod != nil && *c.RealtimePeriod != 0 {
		if err := writeFile(dir, "cpu.rt_period_us", strconv.FormatUint(*c.RealtimePeriod, 10)); err != nil {
			return err
		}
	}
	if c.RealtimeRuntime != nil && *c.RealtimeRuntime != 0 {
		if err := writeFile(dir, "cpu.rt_runtime_us", strconv.FormatInt(*c.RealtimeRuntime, 10)); err != nil {
			return err
		}
	}
	return nil
}

// Set writes r to the hierarchies, controller by controller in runc's order.
func (m *v1Manager) Set(r *specs.LinuxResources) error {
	if r == nil {
		return nil
	}
	if err := validateResources(r, m.mode); err != nil {
		return err
	}
	if err := m.checkControllers(r); err != nil {
		return err
	}
	steps := []struct {
		name string
		set  func(dir string, r *specs.LinuxResources) error
	}{
		{"cpuset", func(dir string, r *specs.LinuxResources) error {
			if r.CPU == nil {
				return nil
			}
			return setCpuset(dir, r.CPU.Cpus, r.CPU.Mems)
		}},
		{"devices", setDevicesV1},
		{"memory", setMemoryV1},
		{"cpu", setCPUV1},
		{"pids", func(dir string, r *specs.LinuxResources) error { return setPids(dir, r.Pids) }},
		{"blkio", setBlkioV1},
		{"hugetlb", func(dir string, r *specs.LinuxResources) error {
			for _, l := range r.HugepageLimits {
				if err := writeFile(dir, "hugetlb."+l.Pagesize+".limit_in_bytes", strconv.FormatUint(l.Limit, 10)); err != nil {
					return err
				}
			}
			return nil
		}},
		{"net_cls", func(dir string, r *specs.LinuxResources) error {
			if r.Network == nil || r.Network.ClassID == nil {
				return nil
			}
			return writeFile(dir, "net_cls.classid", strconv.FormatUint(uint64(*r.Network.ClassID), 10))
		}},
		{"net_prio", func(dir string, r *specs.LinuxResources) error {
			if r.Network == nil {
				return nil
			}
			for _, p := range r.Network.Priorities {
				if err := writeFile(dir, "net_prio.ifpriomap", p.Name+" "+strconv.FormatUint(uint64(p.Priority), 10)); err != nil {
					return err
				}
			}
			return nil
		}},
		{"rdma", func(dir string, r *specs.LinuxResources) error { return setRdma(dir, r.Rdma) }},
	}
	for _, s := range steps {
		dir := m.paths[s.name]
		if dir == "" {
			continue // checkControllers made sure nothing was asked of it
		}
		if err := s.set(dir, r); err != nil {
			return fmt.Errorf("set %s limits: %w", s.name, err)
		}
	}
	return nil
}

func setPids(dir string, p *specs.LinuxPids) error {
	if p == nil || p.Limit == nil || *p.Limit == 0 {
		return nil
	}
	v := "max"
	if *p.Limit > 0 {
		v = strconv.FormatInt(*p.Limit, 10)
	}
	return writeFile(dir, "pids.max", v)
}

func setRdma(dir string, rd map[string]specs.LinuxRdma) error {
	devs := make([]string, 0, len(rd))
	for d := range rd {
		devs = append(devs, d)
	}
	sort.Strings(devs)
	for _, d := range devs {
		l := rd[d]
		line := d
		if l.HcaHandles != nil {
			line += " hca_handle=" + strconv.FormatUint(uint64(*l.HcaHandles), 10)
		}
		if l.HcaObjects != nil {
			line += " hca_object=" + strconv.FormatUint(uint64(*l.HcaObjects), 10)
		}
		if line == d {
			continue
		}
		if err := writeFile(dir, "rdma.max", line); err != nil {
			return err
		}
	}
	return nil
}

// setDevicesV1 writes the rules in order, each to devices.allow or
// devices.deny, which is how the kernel's v1 device controller composes them
// ("a *:* rwm" to deny first makes it an allowlist).
func setDevicesV1(dir string, r *specs.LinuxResources) error {
	for _, d := range r.Devices {
		rule, err := deviceRule(d)
		if err != nil {
			return err
		}
		file := "devices.deny"
		if d.Allow {
			file = "devices.allow"
		}
		if err := writeFile(dir, file, rule); err != nil {
			return err
		}
	}
	return nil
}

// setMemoryV1 follows runc's ordering: memory.memsw.limit_in_bytes must stay
// >= memory.limit_in_bytes at every step, so raise swap first when growing.
func setMemoryV1(dir string, r *specs.LinuxResources) error {
	mem := r.Memory
	if mem == nil {
		return nil
	}
	limit, swap := ptrI64(mem.Limit), ptrI64(mem.Swap)
	const memsw = "memory.memsw.limit_in_bytes"
	_, statErr := os.Stat(filepath.Join(dir, memsw))
	haveSwap := statErr == nil
	if limit == -1 && swap == 0 && haveSwap {
		swap = -1 // unlimited memory means unlimited memory+swap too
	}
	if swap != 0 && !haveSwap {
		return fmt.Errorf("memory.swap is set but %s has no %s (kernel booted without swap accounting: add swapaccount=1 or drop memory.swap): %w", dir, memsw, errdefs.ErrNotImplemented)
	}
	setLimit := func() error {
		if limit == 0 {
			return nil
		}
		err := writeFile(dir, "memory.limit_in_bytes", strconv.FormatInt(limit, 10))
		if errors.Is(err, unix.EBUSY) {
			usage, _ := readUint(dir, "memory.usage_in_bytes")
			peak, _ := readUint(dir, "memory.max_usage_in_bytes")
			return fmt.Errorf("set memory limit %d in %s: below the current usage %d (peak %d); choose a higher limit: %w", limit, dir, usage, peak, errdefs.ErrFailedPrecondition)
		}
		return err
	}
	setSwap := func() error {
		if swap == 0 {
			return nil
		}
		return writeFile(dir, memsw, strconv.FormatInt(swap, 10))
	}
	first, second := setLimit, setSwap
	if limit != 0 && swap != 0 {
		cur, err := readUint(dir, "memory.limit_in_bytes")
		if err != nil {
			return fmt.Errorf("read %s/memory.limit_in_bytes: %w", dir, err)
		}
		if swap == -1 || cur < uint64(swap) {
			first, second = setSwap, setLimit
		}
	}
	if err := first(); err != nil {
		return err
	}
	if err := second(); err != nil {
		return err
	}
	if v := ptrI64(mem.Reservation); v != 0 {
		if err := writeFile(dir, "memory.soft_limit_in_bytes", strconv.FormatInt(v, 10)); err != nil {
			return err
		}
	}
	if mem.DisableOOMKiller != nil && *mem.DisableOOMKiller {
		if err := writeFile(dir, "memory.oom_control", "1"); err != nil {
			return err
		}
	}
	if s := mem.Swappiness; s != nil && int64(*s) != -1 {
		if err := writeFile(dir, "memory.swappiness", strconv.FormatUint(*s, 10)); err != nil {
			return err
		}
	}
	return nil
}

func setCPUV1(dir string, r *specs.LinuxResources) error {
	c := r.CPU
	if c == nil {
		return nil
	}
	if c.Shares != nil && *c.Shares != 0 {
		if err := writeFile(dir, "cpu.shares", strconv.FormatUint(*c.Shares, 10)); err != nil {
			return err
		}
		got, err := readUint(dir, "cpu.shares")
		if err != nil {
			return err
		}
		if got != *c.Shares {
			bound := "maximum"
			if *c.Shares < got {
				bound = "minimum"
			}
			return fmt.Errorf("linux.resources.cpu.shares %d: the %s allowed cpu-shares is %d: %w", *c.Shares, bound, got, errdefs.ErrInvalidArgument)
		}
	}
	// Period and quota must agree at every step: if the new period is
	// rejected with the old quota, write the quota first and retry it.
	var period string
	if c.Period != nil && *c.Period != 0 {
		period = strconv.FormatUint(*c.Period, 10)
		if err := writeFile(dir, "cpu.cfs_period_us", period); err != nil {
			if !errors.Is(err, unix.EINVAL) || ptrI64(c.Quota) == 0 {
				return err
			}
		} else {
			period = ""
		}
	}
	if q := ptrI64(c.Quota); q != 0 {
		if err := writeFile(dir, "cpu.cfs_quota_us", strconv.FormatInt(q, 10)); err != nil {
			return err
		}
		if period != "" {
			if err := writeFile(dir, "cpu.cfs_period_us", period); err != nil {
				return err
			}
		}
	}
	if c.Burst != nil {
		if err := writeFile(dir, "cpu.cfs_burst_us", strconv.FormatUint(*c.Burst, 10)); err != nil {
			return err
		}
	}
	if err := setRealtime(dir, c); err != nil {
		return err
	}
	if c.Idle != nil {
		if err := writeFile(dir, "cpu.idle", strconv.FormatInt(*c.Idle, 10)); err != nil {
			return err
		}
	}
	return nil
}

func setBlkioV1(dir string, r *specs.LinuxResources) error {
	b := r.BlockIO
	if b == nil {
		return nil
	}
	// CFQ's blkio.weight, or BFQ's blkio.bfq.weight on newer kernels.
	weightFile, weightDevFile := "blkio.weight", "blkio.weight_device"
	if _, err := os.Stat(filepath.Join(dir, weightFile)); err != nil {
		weightFile, weightDevFile = "blkio.bfq.weight", "blkio.bfq.weight_device"
	}
	needWeight := (b.Weight != nil && *b.Weight != 0) || len(b.WeightDevice) > 0
	if needWeight {
		if _, err := os.Stat(filepath.Join(dir, weightFile)); err != nil {
			return fmt.Errorf("blockIO weights are set but %s has neither blkio.weight nor blkio.bfq.weight (no CFQ/BFQ I/O scheduler on this kernel); drop blockIO.weight/weightDevice: %w", dir, errdefs.ErrNotImplemented)
		}
	}
	if b.Weight != nil && *b.Weight != 0 {
		if err := writeFile(dir, weightFile, strconv.FormatUint(uint64(*b.Weight), 10)); err != nil {
			return err
		}
	}
	if b.LeafWeight != nil && *b.LeafWeight != 0 {
		if err := writeFile(dir, "blkio.leaf_weight", strconv.FormatUint(uint64(*b.LeafWeight), 10)); err != nil {
			return err
		}
	}
	for _, d := range b.WeightDevice {
		if d.Weight != nil {
			if err := writeFile(dir, weightDevFile, fmt.Sprintf("%d:%d %d", d.Major, d.Minor, *d.Weight)); err != nil {
				return err
			}
		}
		if d.LeafWeight != nil {
			if err := writeFile(dir, "blkio.leaf_weight_device", fmt.Sprintf("%d:%d %d", d.Major, d.Minor, *d.LeafWeight)); err != nil {
				return err
			}
		}
	}
	for _, t := range []struct {
		file string
		devs []specs.LinuxThrottleDevice
	}{
		{"blkio.throttle.read_bps_device", b.ThrottleReadBpsDevice},
		{"blkio.throttle.write_bps_device", b.ThrottleWriteBpsDevice},
		{"blkio.throttle.read_iops_device", b.ThrottleReadIOPSDevice},
		{"blkio.throttle.write_iops_device", b.ThrottleWriteIOPSDevice},
	} {
		for _, d := range t.devs {
			if err := writeFile(dir, t.file, fmt.Sprintf("%d:%d %d", d.Major, d.Minor, d.Rate)); err != nil {
				return err
			}
		}
	}
	return nil
}

// pidsDir is the directory whose cgroup.procs lists the container's
// processes (every v1 hierarchy holds the same ones; runc uses devices).
func (m *v1Manager) pidsDir() string {
	for _, c := range []string{"devices", "pids", "freezer", "memory", "cpu", "name=systemd", ""} {
		if d, ok := m.paths[c]; ok {
			return d
		}
	}
	for _, d := range m.paths {
		return d
	}
	return ""
}

func (m *v1Manager) Pids() ([]int, error) {
	return allPids(m.pidsDir())
}

func (m *v1Manager) Freeze() error {
	dir := m.paths["freezer"]
	if dir == "" {
		return fmt.Errorf("freeze: the freezer controller is not mounted under %s; mount it to pause containers: %w", m.root, errdefs.ErrFailedPrecondition)
	}
	if err := writeFile(dir, "freezer.state", string(Frozen)); err != nil {
		return fmt.Errorf("freeze: %w", err)
	}
	// The kernel may stay in FREEZING while processes are busy; poll, and
	// re-request now and then as runc does.
	for i := 0; i < 1000; i++ {
		st, err := readFile(dir, "freezer.state")
		if err != nil {
			return fmt.Errorf("freeze: read %s/freezer.state: %w", dir, err)
		}
		if st == string(Frozen) {
			return nil
		}
		if i%50 == 49 {
			_ = writeFile(dir, "freezer.state", string(Frozen))
		}
		time.Sleep(5 * time.Millisecond)
	}
	_ = writeFile(dir, "freezer.state", string(Thawed))
	return fmt.Errorf("freeze %s: processes did not freeze in 5s (some may be stuck in uninterruptible sleep); thawed them again, retry later: %w", dir, errdefs.ErrFailedPrecondition)
}

func (m *v1Manager) Thaw() error {
	dir := m.paths["freezer"]
	if dir == "" {
		return fmt.Errorf("thaw: the freezer controller is not mounted under %s: %w", m.root, errdefs.ErrFailedPrecondition)
	}
	if err := writeFile(dir, "freezer.state", string(Thawed)); err != nil {
		return fmt.Errorf("thaw: %w", err)
	}
	return nil
}

func (m *v1Manager) State() (FreezerState, error) {
	dir := m.paths["freezer"]
	if dir == "" {
		return Undefined, nil
	}
	for i := 0; ; i++ {
		st, err := readFile(dir, "freezer.state")
		if err != nil {
			if errors.Is(err, os.ErrNotExist) {
				return Undefined, fmt.Errorf("read freezer state: cgroup %s does not exist: %w", dir, errdefs.ErrNotFound)
			}
			return Undefined, fmt.Errorf("read %s/freezer.state: %w", dir, err)
		}
		switch st {
		case string(Thawed):
			return Thawed, nil
		case string(Frozen):
			// Frozen by itself, or only because an ancestor is?
			self, err := readFile(dir, "freezer.self_freezing")
			if err == nil && self != "1" {
				return Thawed, nil
			}
			return Frozen, nil
		case "FREEZING":
			if i > 100 {
				return Thawed, nil // not (yet) frozen
			}
			time.Sleep(10 * time.Millisecond)
		default:
			return Undefined, fmt.Errorf("read %s/freezer.state: unknown state %q", dir, st)
		}
	}
}

// Destroy removes every hierarchy's directory, nested ones first.
func (m *v1Manager) Destroy() error {
	seen := map[string]bool{}
	var dirs []string
	for _, d := range m.paths {
		if !seen[d] {
			seen[d] = true
			dirs = append(dirs, d)
		}
	}
	sort.Strings(dirs)
	var errs []error
	deadline := time.Now().Add(destroyBudget)
	for _, d := range dirs {
		if err := removeTree(m.h, d, deadline); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}
