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

	"github.com/skiff-containers/skiff/errdefs"
)

// v2Manager drives one cgroup on the unified (v2) hierarchy.
type v2Manager struct {
	root string
	dir  string
	res  *specs.LinuxResources
	h    host
}

func newV2(c Config, inner string, h host) (*v2Manager, error) {
	dir, err := v2Path(h, c.Root, inner)
	if err != nil {
		return nil, err
	}
	if dir == c.Root {
		return nil, fmt.Errorf("cgroup path %q resolves to the root cgroup %s; a container needs its own cgroup: %w", c.Path, dir, errdefs.ErrInvalidArgument)
	}
	m := &v2Manager{root: c.Root, dir: dir, res: c.Resources, h: h}
	if err := m.checkControllers(c.Resources); err != nil {
		return nil, err
	}
	return m, nil
}

func (m *v2Manager) Mode() Mode { return Unified }

func (m *v2Manager) Paths() map[string]string { return map[string]string{"": m.dir} }

// available lists the controllers the root cgroup offers.
func (m *v2Manager) available() (map[string]bool, []string, error) {
	s, err := readFile(m.root, "cgroup.controllers")
	if err != nil {
		return nil, nil, fmt.Errorf("read the available cgroup v2 controllers (%s/cgroup.controllers): %w", m.root, err)
	}
	set := map[string]bool{}
	list := strings.Fields(s)
	for _, c := range list {
		set[c] = true
	}
	return set, list, nil
}

// neededControllers lists the v2 controllers whose files r writes.
func neededControllers(r *specs.LinuxResources) []string {
	if r == nil {
		return nil
	}
	need := map[string]bool{}
	if r.Pids != nil && r.Pids.Limit != nil && *r.Pids.Limit != 0 {
		need["pids"] = true
	}
	if mem := r.Memory; mem != nil && (ptrI64(mem.Limit) != 0 || ptrI64(mem.Reservation) != 0 || ptrI64(mem.Swap) != 0) {
		need["memory"] = true
	}
	if c := r.CPU; c != nil {
		if (c.Shares != nil && *c.Shares != 0) || ptrI64(c.Quota) != 0 || (c.Period != nil && *c.Period != 0) || c.Burst != nil || c.Idle != nil {
			need["cpu"] = true
		}
		if c.Cpus != "" || c.Mems != "" {
			need["cpuset"] = true
		}
	}
	if isIOSet(r.BlockIO) {
		need["io"] = true
	}
	if len(r.HugepageLimits) > 0 {
		need["hugetlb"] = true
	}
	if len(r.Rdma) > 0 {
		need["rdma"] = true
	}
	for k := range r.Unified {
		if ctrl, _, ok := strings.Cut(k, "."); ok && ctrl != "cgroup" {
			need[ctrl] = true
		}
	}
	out := make([]string, 0, len(need))
	for c := range need {
		out = append(out, c)
	}
	sort.Strings(out)
	return out
}

func isIOSet(b *specs.LinuxBlockIO) bool {
	return b != nil && ((b.Weight != nil && *b.Weight != 0) || len(b.WeightDevice) > 0 ||
		len(b.ThrottleReadBpsDevice) > 0 || len(b.ThrottleWriteBpsDevice) > 0 ||
		len(b.ThrottleReadIOPSDevice) > 0 || len(b.ThrottleWriteIOPSDevice) > 0)
}

// checkControllers refuses resources whose controller the host lacks.
func (m *v2Manager) checkControllers(r *specs.LinuxResources) error {
	need := neededControllers(r)
	if len(need) > 0 {
		avail, _, err := m.available()
		if err != nil {
			return err
		}
		var missing []string
		for _, c := range need {
			if !avail[c] {
				missing = append(missing, c)
			}
		}
		if len(missing) > 0 {
			return fmt.Errorf("cgroup v2 controller(s) %s not available in %s/cgroup.controllers but the config sets limits for them; enable them or remove those linux.resources fields: %w",
				strings.Join(missing, ", "), m.root, errdefs.ErrFailedPrecondition)
		}
	}
	if r != nil && len(r.HugepageLimits) > 0 {
		sizes, err := m.h.hugePageSizes()
		if err != nil {
			return fmt.Errorf("list the host's huge page sizes: %w", err)
		}
		return checkPageSizes(r.HugepageLimits, sizes)
	}
	return nil
}

// Apply creates the cgroup, enabling every available controller in the
// subtree_control of the root and of each intermediate level, and moves pid
// in (a pid of -1 only creates). Directories it created are removed again if
// it fails.
func (m *v2Manager) Apply(pid int) (retErr error) {
	_, list, err := m.available()
	if err != nil {
		return err
	}
	enable := ""
	if len(list) > 0 {
		enable = "+" + strings.Join(list, " +")
	}
	rel, err := filepath.Rel(m.root, m.dir)
	if err != nil || rel == "." || rel == ".." || hasDotDotPrefix(rel) {
		return fmt.Errorf("apply cgroup: %s is not below the cgroup v2 root %s: %w", m.dir, m.root, errdefs.ErrInvalidArgument)
	}
	elems := strings.Split(rel, string(filepath.Separator))
	cur := m.root
	var created []string
	defer func() {
		if retErr != nil {
			for i := len(created) - 1; i >= 0; i-- {
				_ = m.h.rmdir(created[i])
			}
		}
	}()
	for i := 0; i <= len(elems); i++ {
		if i > 0 {
			cur = filepath.Join(cur, elems[i-1])
			if err := m.h.mkdir(cur); err == nil {
				created = append(created, cur)
			} else if !errors.Is(err, os.ErrExist) {
				return fmt.Errorf("apply cgroup: create %s: %w", cur, err)
			}
			if err := m.checkType(cur); err != nil {
				return err
			}
		}
		if i < len(elems) && enable != "" {
			if err := writeFile(cur, "cgroup.subtree_control", enable); err != nil {
				// Some may be unavailable at this level: enable one by one.
				for _, c := range list {
					_ = writeFile(cur, "cgroup.subtree_control", "+"+c)
				}
			}
		}
	}
	if pid != -1 {
		if err := writePid(m.dir, pid); err != nil {
			return fmt.Errorf("apply cgroup: %w", err)
		}
	}
	return nil
}

// checkType refuses to put domain controllers' limits on a threaded cgroup,
// and turns a "domain invalid" one threaded when that is all that is asked.
func (m *v2Manager) checkType(dir string) error {
	t, err := readFile(dir, "cgroup.type")
	if err != nil {
		return nil // the root has no cgroup.type; old kernels neither
	}
	domain := false
	for _, c := range neededControllers(m.res) {
		switch c {
		case "memory", "io", "cpu", "hugetlb":
			domain = true
		}
	}
	switch t {
	case "domain invalid":
		if domain {
			return fmt.Errorf("apply cgroup: %s is in \"domain invalid\" state and cannot hold memory/io/cpu/hugetlb limits; choose another cgroupsPath: %w", dir, errdefs.ErrFailedPrecondition)
		}
		_ = writeFile(dir, "cgroup.type", "threaded")
	case "domain threaded", "threaded":
		if domain {
			return fmt.Errorf("apply cgroup: %s is %s and cannot hold memory/io/cpu/hugetlb limits; choose another cgroupsPath: %w", dir, t, errdefs.ErrFailedPrecondition)
		}
	}
	return nil
}

// Set writes r, in runc's fs2 order.
func (m *v2Manager) Set(r *specs.LinuxResources) error {
	if r == nil {
		return nil
	}
	if err := validateResources(r, Unified); err != nil {
		return err
	}
	if err := m.checkControllers(r); err != nil {
		return err
	}
	if s := r.Memory; s != nil && s.Swappiness != nil && int64(*s.Swappiness) != -1 {
		return fmt.Errorf("linux.resources.memory.swappiness: cgroup v2 has no per-cgroup swappiness; remove it: %w", errdefs.ErrNotImplemented)
	}
	steps := []struct {
		name string
		set  func() error
	}{
		{"pids", func() error { return setPids(m.dir, r.Pids) }},
		{"memory", func() error { return setMemoryV2(m.dir, r.Memory) }},
		{"io", func() error { return setIOV2(m.dir, r.BlockIO) }},
		{"cpu", func() error { return setCPUV2(m.dir, r.CPU) }},
		{"devices", func() error { return m.setDevices(r.Devices) }},
		{"cpuset", func() error {
			if r.CPU == nil {
				return nil
			}
			return setCpuset(m.dir, r.CPU.Cpus, r.CPU.Mems)
		}},
		{"hugetlb", func() error { return m.setHugetlbV2(r.HugepageLimits) }},
		{"rdma", func() error { return setRdma(m.dir, r.Rdma) }},
		{"unified", func() error { return m.setUnified(r.Unified) }},
	}
	for _, s := range steps {
		if err := s.set(); err != nil {
			return fmt.Errorf("set %s limits: %w", s.name, err)
		}
	}
	return nil
}

// numToStr is the v2 spelling of a v1-style limit: -1 is "max", 0 is unset.
func numToStr(v int64) string {
	switch v {
	case 0:
		return ""
	case -1:
		return "max"
	}
	return strconv.FormatInt(v, 10)
}

// swapV2 converts the spec's memory+swap to memory.swap.max, as runc.
func swapV2(swap, limit int64) (int64, error) {
	switch {
	case limit == -1 && swap == 0:
		return -1, nil // unlimited memory means unlimited swap too
	case swap == -1, swap == 0:
		return swap, nil
	case limit == -1:
		return swap, nil
	case limit == 0:
		return 0, fmt.Errorf("linux.resources.memory.swap: set without memory.limit; the v2 swap limit is swap - limit: %w", errdefs.ErrInvalidArgument)
	case swap < limit:
		return 0, fmt.Errorf("linux.resources.memory.swap %d is below memory.limit %d: %w", swap, limit, errdefs.ErrInvalidArgument)
	}
	return swap - limit, nil
}

func setMemoryV2(dir string, mem *specs.LinuxMemory) error {
	if mem == nil {
		return nil
	}
	limit, swap, res := ptrI64(mem.Limit), ptrI64(mem.Swap), ptrI64(mem.Reservation)
	if limit == 0 && swap == 0 && res == 0 {
		return nil
	}
	if mem.CheckBeforeUpdate != nil && *mem.CheckBeforeUpdate && limit > 0 {
		if cur, err := readUint(dir, "memory.current"); err == nil && uint64(limit) < cur {
			return fmt.Errorf("set memory limit %d in %s: below the current usage %d (checkBeforeUpdate is set); choose a higher limit: %w", limit, dir, cur, errdefs.ErrFailedPrecondition)
		}
	}
	sw, err := swapV2(swap, limit)
	if err != nil {
		return err
	}
	swapStr := numToStr(sw)
	if swapStr == "" && sw == 0 && swap > 0 {
		swapStr = "0" // memory == memory+swap: no swap at all
	}
	if swapStr != "" {
		if err := writeFile(dir, "memory.swap.max", swapStr); err != nil {
			// No swap accounting: "max" and "0" are what we have anyway.
			if !(errors.Is(err, errdefs.ErrNotImplemented) && (swapStr == "max" || swapStr == "0")) {
				return err
			}
		}
	}
	if v := numToStr(limit); v != "" {
		if err := writeFile(dir, "memory.max", v); err != nil {
			return err
		}
	}
	if v := numToStr(res); v != "" {
		if err := writeFile(dir, "memory.low", v); err != nil {
			return err
		}
	}
	return nil
}

// sharesToWeight converts cgroup v1 cpu.shares [2-262144] to cgroup v2
// cpu.weight [1-10000] with runc 1.1's linear formula.
func sharesToWeight(shares uint64) uint64 {
	if shares == 0 {
		return 0
	}
	if shares < minShares {
		shares = minShares
	}
	return 1 + ((shares-2)*9999)/262142
}

// blkioToIOWeight converts blkio weight [10-1000] to io.weight [1-10000].
func blkioToIOWeight(w uint16) uint64 {
	if w == 0 {
		return 0
	}
	if w < minBlkWeight {
		w = minBlkWeight
	}
	return 1 + (uint64(w)-10)*9999/990
}

func setCPUV2(dir string, c *specs.LinuxCPU) error {
	if c == nil {
		return nil
	}
	if c.Idle != nil {
		if err := writeFile(dir, "cpu.idle", strconv.FormatInt(*c.Idle, 10)); err != nil {
			return err
		}
	}
	if c.Shares != nil && *c.Shares != 0 && (c.Idle == nil || *c.Idle == 0) {
		if err := writeFile(dir, "cpu.weight", strconv.FormatUint(sharesToWeight(*c.Shares), 10)); err != nil {
			return err
		}
	}
	quota := ptrI64(c.Quota)
	var period uint64
	if c.Period != nil {
		period = *c.Period
	}
	if c.Burst != nil {
		// The burst must stay <= quota: lower it before changing cpu.max.
		if err := writeFile(dir, "cpu.max.burst", strconv.FormatUint(*c.Burst, 10)); err != nil && !errors.Is(err, errdefs.ErrInvalidArgument) {
			return err
		}
	}
	if quota != 0 || period != 0 {
		v := "max"
		if quota > 0 {
			v = strconv.FormatInt(quota, 10)
		}
		if period == 0 {
			period = 100000 // the kernel's default period
		}
		v += " " + strconv.FormatUint(period, 10)
		if err := writeFile(dir, "cpu.max", v); err != nil {
			return err
		}
	}
	if c.Burst != nil {
		if err := writeFile(dir, "cpu.max.burst", strconv.FormatUint(*c.Burst, 10)); err != nil {
			return err
		}
	}
	return nil
}

func setIOV2(dir string, b *specs.LinuxBlockIO) error {
	if !isIOSet(b) {
		return nil
	}
	// With BFQ, weights go to io.bfq.weight in blkio's own range; otherwise
	// to io.weight, converted.
	_, bfqErr := os.Stat(filepath.Join(dir, "io.bfq.weight"))
	bfq := bfqErr == nil
	conv := func(w uint16) string {
		if bfq {
			return strconv.FormatUint(uint64(w), 10)
		}
		return strconv.FormatUint(blkioToIOWeight(w), 10)
	}
	wfile := "io.weight"
	if bfq {
		wfile = "io.bfq.weight"
	}
	if b.Weight != nil && *b.Weight != 0 {
		val := conv(*b.Weight)
		if !bfq {
			val = "default " + val
		}
		if err := writeFile(dir, wfile, val); err != nil {
			return err
		}
	}
	for _, d := range b.WeightDevice {
		if d.Weight == nil {
			continue
		}
		if err := writeFile(dir, wfile, fmt.Sprintf("%d:%d %s", d.Major, d.Minor, conv(*d.Weight))); err != nil {
			return err
		}
	}
	for _, t := range []struct {
		key  string
		devs []specs.LinuxThrottleDevice
	}{
		{"rbps", b.ThrottleReadBpsDevice}, {"wbps", b.ThrottleWriteBpsDevice},
		{"riops", b.ThrottleReadIOPSDevice}, {"wiops", b.ThrottleWriteIOPSDevice},
	} {
		for _, d := range t.devs {
			rate := strconv.FormatUint(d.Rate, 10)
			if d.Rate == 0 {
				rate = "max" // 0 means no limit, as on v1
			}
			if err := writeFile(dir, "io.max", fmt.Sprintf("%d:%d %s=%s", d.Major, d.Minor, t.key, rate)); err != nil {
				return err
			}
		}
	}
	return nil
}

func (m *v2Manager) setHugetlbV2(limits []specs.LinuxHugepageLimit) error {
	for _, l := range limits {
		v := strconv.FormatUint(l.Limit, 10)
		if err := writeFile(m.dir, "hugetlb."+l.Pagesize+".max", v); err != nil {
			return err
		}
		// Reservation limits, where the kernel has them (5.7+).
		rsvd := "hugetlb." + l.Pagesize + ".rsvd.max"
		if _, err := os.Stat(filepath.Join(m.dir, rsvd)); err == nil {
			if err := writeFile(m.dir, rsvd, v); err != nil {
				return err
			}
		}
	}
	return nil
}

func (m *v2Manager) setUnified(u map[string]string) error {
	keys := make([]string, 0, len(u))
	for k := range u {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		if err := writeFile(m.dir, k, u[k]); err != nil {
			if errors.Is(err, errdefs.ErrNotImplemented) {
				return fmt.Errorf("linux.resources.unified[%q]: no such cgroup file in %s (unknown key, or its controller is not enabled): %w", k, m.dir, err)
			}
			return fmt.Errorf("linux.resources.unified[%q]: %w", k, err)
		}
	}
	return nil
}

func (m *v2Manager) Pids() ([]int, error) { return allPids(m.dir) }

// waitEvents polls cgroup.events until key has the wanted value.
func (m *v2Manager) waitEvents(key, want string, timeout time.Duration) (bool, error) {
	deadline := time.Now().Add(timeout)
	for {
		s, err := readFile(m.dir, "cgroup.events")
		if err != nil {
			return false, fmt.Errorf("read %s/cgroup.events: %w", m.dir, err)
		}
		for _, l := range strings.Split(s, "\n") {
			if k, v, ok := strings.Cut(strings.TrimSpace(l), " "); ok && k == key && v == want {
				return true, nil
			}
		}
		if time.Now().After(deadline) {
			return false, nil
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func (m *v2Manager) Freeze() error {
	if err := writeFile(m.dir, "cgroup.freeze", "1"); err != nil {
		if errors.Is(err, errdefs.ErrNotImplemented) {
			return fmt.Errorf("freeze: %s has no cgroup.freeze (kernel older than 5.2): %w", m.dir, errdefs.ErrNotImplemented)
		}
		return fmt.Errorf("freeze: %w", err)
	}
	ok, err := m.waitEvents("frozen", "1", 5*time.Second)
	if err != nil {
		return fmt.Errorf("freeze: %w", err)
	}
	if !ok {
		_ = writeFile(m.dir, "cgroup.freeze", "0")
		return fmt.Errorf("freeze %s: processes did not freeze in 5s; thawed them again, retry later: %w", m.dir, errdefs.ErrFailedPrecondition)
	}
	return nil
}

func (m *v2Manager) Thaw() error {
	if err := writeFile(m.dir, "cgroup.freeze", "0"); err != nil {
		return fmt.Errorf("thaw: %w", err)
	}
	ok, err := m.waitEvents("frozen", "0", 5*time.Second)
	if err != nil {
		return fmt.Errorf("thaw: %w", err)
	}
	if !ok {
		return fmt.Errorf("thaw %s: cgroup still frozen after 5s (is an ancestor frozen?): %w", m.dir, errdefs.ErrFailedPrecondition)
	}
	return nil
}

func (m *v2Manager) State() (FreezerState, error) {
	s, err := readFile(m.dir, "cgroup.freeze")
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			if _, serr := os.Stat(m.dir); serr != nil {
				return Undefined, errNotFoundf("read freezer state: cgroup %s does not exist", m.dir)
			}
			return Undefined, nil // kernel without the v2 freezer
		}
		return Undefined, fmt.Errorf("read %s/cgroup.freeze: %w", m.dir, err)
	}
	switch s {
	case "0":
		return Thawed, nil
	case "1":
		ok, err := m.waitEvents("frozen", "1", time.Second)
		if err != nil {
			return Undefined, err
		}
		if ok {
			return Frozen, nil
		}
		return Thawed, nil // asked to freeze, not frozen (yet)
	}
	return Undefined, fmt.Errorf("read %s/cgroup.freeze: unexpected %q", m.dir, s)
}

func (m *v2Manager) Destroy() error {
	return removeTree(m.h, m.dir, time.Now().Add(destroyBudget))
}
