package cgroups

import (
	"bufio"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// Stats is the cgroup part of runc's `events --stats` data, with runc's JSON
// field names, so it can be marshalled as the "data" of a stats event.
type Stats struct {
	CPU               CPU                 `json:"cpu"`
	CPUSet            CPUSet              `json:"cpuset"`
	Memory            Memory              `json:"memory"`
	Pids              Pids                `json:"pids"`
	Blkio             Blkio               `json:"blkio"`
	Hugetlb           map[string]Hugetlb  `json:"hugetlb"`
	IntelRdt          IntelRdt            `json:"intel_rdt"`
	NetworkInterfaces []*NetworkInterface `json:"network_interfaces"`
}

// IntelRdt is always empty: skiff does not manage resctrl.
type IntelRdt struct{}

// NetworkInterface is not filled by this package (it is not cgroup data);
// the type is here so that Stats marshals as runc's does.
type NetworkInterface struct {
	Name      string
	RxBytes   uint64
	RxPackets uint64
	RxErrors  uint64
	RxDropped uint64
	TxBytes   uint64
	TxPackets uint64
	TxErrors  uint64
	TxDropped uint64
}

// Hugetlb is the usage of one huge page size.
type Hugetlb struct {
	Usage   uint64 `json:"usage,omitempty"`
	Max     uint64 `json:"max,omitempty"`
	Failcnt uint64 `json:"failcnt"`
}

// BlkioEntry is one per-device, per-operation counter.
type BlkioEntry struct {
	Major uint64 `json:"major,omitempty"`
	Minor uint64 `json:"minor,omitempty"`
	Op    string `json:"op,omitempty"`
	Value uint64 `json:"value,omitempty"`
}

// Blkio holds the block I/O counters.
type Blkio struct {
	IoServiceBytesRecursive []BlkioEntry `json:"ioServiceBytesRecursive,omitempty"`
	IoServicedRecursive     []BlkioEntry `json:"ioServicedRecursive,omitempty"`
	IoQueuedRecursive       []BlkioEntry `json:"ioQueueRecursive,omitempty"`
	IoServiceTimeRecursive  []BlkioEntry `json:"ioServiceTimeRecursive,omitempty"`
	IoWaitTimeRecursive     []BlkioEntry `json:"ioWaitTimeRecursive,omitempty"`
	IoMergedRecursive       []BlkioEntry `json:"ioMergedRecursive,omitempty"`
	IoTimeRecursive         []BlkioEntry `json:"ioTimeRecursive,omitempty"`
	SectorsRecursive        []BlkioEntry `json:"sectorsRecursive,omitempty"`
}

// Pids holds the process count and limit (0 = no limit).
type Pids struct {
	Current uint64 `json:"current,omitempty"`
	Limit   uint64 `json:"limit,omitempty"`
}

// Throttling holds CFS bandwidth throttling counters.
type Throttling struct {
	Periods          uint64 `json:"periods,omitempty"`
	ThrottledPeriods uint64 `json:"throttledPeriods,omitempty"`
	ThrottledTime    uint64 `json:"throttledTime,omitempty"`
}

// CPUUsage is in nanoseconds.
type CPUUsage struct {
	Total        uint64   `json:"total,omitempty"`
	Percpu       []uint64 `json:"percpu,omitempty"`
	PercpuKernel []uint64 `json:"percpu_kernel,omitempty"`
	PercpuUser   []uint64 `json:"percpu_user,omitempty"`
	Kernel       uint64   `json:"kernel"`
	User         uint64   `json:"user"`
}

// CPU holds CPU usage and throttling.
type CPU struct {
	Usage      CPUUsage   `json:"usage,omitempty"`
	Throttling Throttling `json:"throttling,omitempty"`
}

// CPUSet holds the cpuset configuration as read back (v1 only).
type CPUSet struct {
	CPUs                  []uint16 `json:"cpus,omitempty"`
	CPUExclusive          uint64   `json:"cpu_exclusive"`
	Mems                  []uint16 `json:"mems,omitempty"`
	MemHardwall           uint64   `json:"mem_hardwall"`
	MemExclusive          uint64   `json:"mem_exclusive"`
	MemoryMigrate         uint64   `json:"memory_migrate"`
	MemorySpreadPage      uint64   `json:"memory_spread_page"`
	MemorySpreadSlab      uint64   `json:"memory_spread_slab"`
	MemoryPressure        uint64   `json:"memory_pressure"`
	SchedLoadBalance      uint64   `json:"sched_load_balance"`
	SchedRelaxDomainLevel int64    `json:"sched_relax_domain_level"`
}

// MemoryEntry is one memory counter set (bytes).
type MemoryEntry struct {
	Limit   uint64 `json:"limit"`
	Usage   uint64 `json:"usage,omitempty"`
	Max     uint64 `json:"max,omitempty"`
	Failcnt uint64 `json:"failcnt"`
}

// Memory holds memory usage; Swap is memory+swap, as on cgroup v1.
type Memory struct {
	Cache     uint64            `json:"cache,omitempty"`
	Usage     MemoryEntry       `json:"usage,omitempty"`
	Swap      MemoryEntry       `json:"swap,omitempty"`
	Kernel    MemoryEntry       `json:"kernel,omitempty"`
	KernelTCP MemoryEntry       `json:"kernelTCP,omitempty"`
	Raw       map[string]uint64 `json:"raw,omitempty"`
}

func newStats() *Stats {
	return &Stats{Hugetlb: map[string]Hugetlb{}}
}

// ignoreMissing turns "file does not exist" into success: optional counters.
func ignoreMissing(err error) error {
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	return err
}

// parseList parses "0-2,5" into [0 1 2 5].
func parseList(s string) []uint16 {
	var out []uint16
	if s == "" {
		return nil
	}
	for _, part := range strings.Split(s, ",") {
		lo, hi, isRange := strings.Cut(part, "-")
		a, err := strconv.ParseUint(lo, 10, 16)
		if err != nil {
			return out
		}
		b := a
		if isRange {
			if b, err = strconv.ParseUint(hi, 10, 16); err != nil {
				return out
			}
		}
		for i := a; i <= b; i++ {
			out = append(out, uint16(i))
		}
	}
	return out
}

// parseBlkioFile parses v1 blkio "MAJ:MIN Op value" lines.
func parseBlkioFile(dir, name string) ([]BlkioEntry, error) {
	f, err := os.Open(filepath.Join(dir, name))
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var out []BlkioEntry
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fs := strings.Fields(sc.Text())
		if len(fs) < 2 {
			continue // "Total N"
		}
		maj, min, ok := parseDev(fs[0])
		if !ok {
			continue
		}
		e := BlkioEntry{Major: maj, Minor: min}
		if len(fs) == 3 {
			e.Op = fs[1]
			e.Value, _ = strconv.ParseUint(fs[2], 10, 64)
		} else {
			e.Value, _ = strconv.ParseUint(fs[1], 10, 64)
		}
		out = append(out, e)
	}
	return out, sc.Err()
}

func parseDev(s string) (uint64, uint64, bool) {
	a, b, ok := strings.Cut(s, ":")
	if !ok {
		return 0, 0, false
	}
	maj, err1 := strconv.ParseUint(a, 10, 64)
	min, err2 := strconv.ParseUint(b, 10, 64)
	return maj, min, err1 == nil && err2 == nil
}

// v1Stats reads the v1 counters of every mounted controller.
func (m *v1Manager) Stats() (*Stats, error) {
	s := newStats()
	type reader struct {
		ctrl string
		read func(dir string, s *Stats) error
	}
	for _, r := range []reader{
		{"cpu", statCPUV1}, {"cpuacct", statCpuacctV1}, {"cpuset", statCpusetV1},
		{"memory", statMemoryV1}, {"pids", statPidsCommon}, {"blkio", statBlkioV1},
		{"hugetlb", m.statHugetlbV1},
	} {
		dir := m.paths[r.ctrl]
		if dir == "" {
			continue
		}
		if err := r.read(dir, s); err != nil {
			return nil, statsErr(r.ctrl, dir, err)
		}
	}
	return s, nil
}

func statsErr(ctrl, dir string, err error) error {
	if errors.Is(err, os.ErrNotExist) {
		if _, serr := os.Stat(dir); serr != nil {
			return errors.Join(errNotFoundf("read %s stats: cgroup %s does not exist", ctrl, dir), err)
		}
	}
	return errors.Join(errors.New("read "+ctrl+" stats in "+dir), err)
}

func statCPUV1(dir string, s *Stats) error {
	kv, err := readKeyValues(dir, "cpu.stat")
	if err != nil {
		return ignoreMissing(err)
	}
	s.CPU.Throttling.Periods = kv["nr_periods"]
	s.CPU.Throttling.ThrottledPeriods = kv["nr_throttled"]
	s.CPU.Throttling.ThrottledTime = kv["throttled_time"]
	return nil
}

// clockTicks is USER_HZ, the unit of cpuacct.stat: 100 on every Linux ABI Go supports.
const clockTicks = 100

func statCpuacctV1(dir string, s *Stats) error {
	total, err := readUint(dir, "cpuacct.usage")
	if err != nil {
		return err
	}
	s.CPU.Usage.Total = total
	kv, err := readKeyValues(dir, "cpuacct.stat")
	if err != nil {
		return err
	}
	const nsPerTick = 1e9 / clockTicks
	s.CPU.Usage.User = kv["user"] * nsPerTick
	s.CPU.Usage.Kernel = kv["system"] * nsPerTick
	if v, err := readFile(dir, "cpuacct.usage_percpu"); err == nil {
		for _, f := range strings.Fields(v) {
			n, _ := strconv.ParseUint(f, 10, 64)
			s.CPU.Usage.Percpu = append(s.CPU.Usage.Percpu, n)
		}
	}
	// cpuacct.usage_all: "cpu user system" per line after a header.
	if v, err := readFile(dir, "cpuacct.usage_all"); err == nil {
		lines := strings.Split(v, "\n")
		for _, l := range lines[1:] {
			fs := strings.Fields(l)
			if len(fs) != 3 {
				continue
			}
			u, _ := strconv.ParseUint(fs[1], 10, 64)
			k, _ := strconv.ParseUint(fs[2], 10, 64)
			s.CPU.Usage.PercpuUser = append(s.CPU.Usage.PercpuUser, u)
			s.CPU.Usage.PercpuKernel = append(s.CPU.Usage.PercpuKernel, k)
		}
	}
	return nil
}

func statCpusetV1(dir string, s *Stats) error {
	cpus, err := readFile(dir, "cpuset.cpus")
	if err != nil {
		return ignoreMissing(err)
	}
	s.CPUSet.CPUs = parseList(cpus)
	if mems, err := readFile(dir, "cpuset.mems"); err == nil {
		s.CPUSet.Mems = parseList(mems)
	}
	for f, dst := range map[string]*uint64{
		"cpuset.cpu_exclusive": &s.CPUSet.CPUExclusive, "cpuset.mem_hardwall": &s.CPUSet.MemHardwall,
		"cpuset.mem_exclusive": &s.CPUSet.MemExclusive, "cpuset.memory_migrate": &s.CPUSet.MemoryMigrate,
		"cpuset.memory_spread_page": &s.CPUSet.MemorySpreadPage, "cpuset.memory_spread_slab": &s.CPUSet.MemorySpreadSlab,
		"cpuset.memory_pressure": &s.CPUSet.MemoryPressure, "cpuset.sched_load_balance": &s.CPUSet.SchedLoadBalance,
	} {
		if v, err := readUint(dir, f); err == nil {
			*dst = v
		}
	}
	if v, err := readFile(dir, "cpuset.sched_relax_domain_level"); err == nil {
		s.CPUSet.SchedRelaxDomainLevel, _ = strconv.ParseInt(v, 10, 64)
	}
	return nil
}

func memEntryV1(dir, prefix string) (MemoryEntry, error) {
	var e MemoryEntry
	var err error
	if e.Usage, err = readUint(dir, prefix+"usage_in_bytes"); err != nil {
		return e, err
	}
	if e.Max, err = readUint(dir, prefix+"max_usage_in_bytes"); err != nil {
		return e, err
	}
	if e.Failcnt, err = readUint(dir, prefix+"failcnt"); err != nil {
		return e, err
	}
	if e.Limit, err = readUint(dir, prefix+"limit_in_bytes"); err != nil {
		return e, err
	}
	return e, nil
}

func statMemoryV1(dir string, s *Stats) error {
	raw, err := readKeyValues(dir, "memory.stat")
	if err != nil {
		return err
	}
	s.Memory.Raw = raw
	s.Memory.Cache = raw["cache"]
	if s.Memory.Usage, err = memEntryV1(dir, "memory."); err != nil {
		return err
	}
	if e, err := memEntryV1(dir, "memory.memsw."); err == nil {
		s.Memory.Swap = e
	} else if !errors.Is(err, os.ErrNotExist) {
		return err
	}
	if e, err := memEntryV1(dir, "memory.kmem."); err == nil {
		s.Memory.Kernel = e
	} else if !errors.Is(err, os.ErrNotExist) {
		return err
	}
	if e, err := memEntryV1(dir, "memory.kmem.tcp."); err == nil {
		s.Memory.KernelTCP = e
	} else if !errors.Is(err, os.ErrNotExist) {
		return err
	}
	return nil
}

// statPidsCommon reads pids.current and pids.max (same files on v1 and v2).
func statPidsCommon(dir string, s *Stats) error {
	cur, err := readUint(dir, "pids.current")
	if err != nil {
		return err
	}
	s.Pids.Current = cur
	max, err := readFile(dir, "pids.max")
	if err != nil {
		return err
	}
	if max != "max" {
		s.Pids.Limit, err = strconv.ParseUint(max, 10, 64)
	}
	return err
}

func statBlkioV1(dir string, s *Stats) error {
	// CFQ files if present, else BFQ, else the throttle counters (always there).
	prefix := "blkio."
	if _, err := os.Stat(filepath.Join(dir, "blkio.io_serviced_recursive")); err != nil {
		prefix = "blkio.bfq."
		if _, err := os.Stat(filepath.Join(dir, "blkio.bfq.io_serviced_recursive")); err != nil {
			prefix = "blkio.throttle."
		}
	}
	files := []struct {
		name string
		dst  *[]BlkioEntry
	}{
		{"io_service_bytes_recursive", &s.Blkio.IoServiceBytesRecursive},
		{"io_serviced_recursive", &s.Blkio.IoServicedRecursive},
		{"io_queued_recursive", &s.Blkio.IoQueuedRecursive},
		{"io_service_time_recursive", &s.Blkio.IoServiceTimeRecursive},
		{"io_wait_time_recursive", &s.Blkio.IoWaitTimeRecursive},
		{"io_merged_recursive", &s.Blkio.IoMergedRecursive},
		{"time_recursive", &s.Blkio.IoTimeRecursive},
		{"sectors_recursive", &s.Blkio.SectorsRecursive},
	}
	for _, f := range files {
		e, err := parseBlkioFile(dir, prefix+f.name)
		if err != nil {
			if errors.Is(err, os.ErrNotExist) {
				continue
			}
			return err
		}
		*f.dst = e
	}
	return nil
}

func (m *v1Manager) statHugetlbV1(dir string, s *Stats) error {
	sizes, err := m.h.hugePageSizes()
	if err != nil {
		return err
	}
	for _, sz := range sizes {
		var h Hugetlb
		p := "hugetlb." + sz + "."
		if h.Usage, err = readUint(dir, p+"usage_in_bytes"); err != nil {
			return err
		}
		if h.Max, err = readUint(dir, p+"max_usage_in_bytes"); err != nil {
			return err
		}
		if h.Failcnt, err = readUint(dir, p+"failcnt"); err != nil {
			return err
		}
		s.Hugetlb[sz] = h
	}
	return nil
}
