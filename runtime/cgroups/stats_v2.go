package cgroups

import (
	"bufio"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

func (m *v2Manager) Stats() (*Stats, error) {
	s := newStats()
	if _, err := os.Stat(m.dir); err != nil {
		return nil, errNotFoundf("read stats: cgroup %s does not exist", m.dir)
	}
	for _, r := range []struct {
		name string
		read func(string, *Stats) error
	}{
		{"cpu", statCPUV2}, {"memory", statMemoryV2}, {"pids", statPidsCommon},
		{"io", statIOV2}, {"hugetlb", m.statHugetlbV2},
	} {
		if err := ignoreMissing(r.read(m.dir, s)); err != nil {
			return nil, statsErr(r.name, m.dir, err)
		}
	}
	return s, nil
}

func statCPUV2(dir string, s *Stats) error {
	kv, err := readKeyValues(dir, "cpu.stat")
	if err != nil {
		return err
	}
	s.CPU.Usage.Total = kv["usage_usec"] * 1000
	s.CPU.Usage.User = kv["user_usec"] * 1000
	s.CPU.Usage.Kernel = kv["system_usec"] * 1000
	s.CPU.Throttling.Periods = kv["nr_periods"]
	s.CPU.Throttling.ThrottledPeriods = kv["nr_throttled"]
	s.CPU.Throttling.ThrottledTime = kv["throttled_usec"] * 1000
	return nil
}

// memEntryV2 reads memory[.swap].{current,max,peak} and the "max" event.
func memEntryV2(dir, prefix string) (MemoryEntry, error) {
	var e MemoryEntry
	var err error
	if e.Usage, err = readUint(dir, prefix+"current"); err != nil {
		return e, err
	}
	if e.Limit, err = readUint(dir, prefix+"max"); err != nil {
		return e, err
	}
	if v, err := readUint(dir, prefix+"peak"); err == nil {
		e.Max = v
	}
	if ev, err := readKeyValues(dir, prefix+"events"); err == nil {
		e.Failcnt = ev["max"]
	}
	return e, nil
}

func statMemoryV2(dir string, s *Stats) error {
	raw, err := readKeyValues(dir, "memory.stat")
	if err != nil {
		return err
	}
	s.Memory.Raw = raw
	s.Memory.Cache = raw["file"]
	if s.Memory.Usage, err = memEntryV2(dir, "memory."); err != nil {
		return err
	}
	// As runc: report swap as memory+swap, v1's memsw.
	sw, err := memEntryV2(dir, "memory.swap.")
	if err != nil {
		if !errors.Is(err, os.ErrNotExist) {
			return err
		}
		return nil
	}
	sw.Usage += s.Memory.Usage.Usage
	if sw.Limit != ^uint64(0) && s.Memory.Usage.Limit != ^uint64(0) {
		sw.Limit += s.Memory.Usage.Limit
	} else {
		sw.Limit = ^uint64(0)
	}
	s.Memory.Swap = sw
	return nil
}

// statIOV2 parses io.stat: "MAJ:MIN rbytes=N wbytes=N rios=N wios=N ...".
func statIOV2(dir string, s *Stats) error {
	f, err := os.Open(filepath.Join(dir, "io.stat"))
	if err != nil {
		return err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fs := strings.Fields(sc.Text())
		if len(fs) < 2 {
			continue
		}
		maj, min, ok := parseDev(fs[0])
		if !ok {
			continue
		}
		for _, kv := range fs[1:] {
			k, v, ok := strings.Cut(kv, "=")
			if !ok {
				continue
			}
			n, err := strconv.ParseUint(v, 10, 64)
			if err != nil {
				continue
			}
			e := BlkioEntry{Major: maj, Minor: min, Value: n}
			switch k {
			case "rbytes":
				e.Op = "Read"
				s.Blkio.IoServiceBytesRecursive = append(s.Blkio.IoServiceBytesRecursive, e)
			case "wbytes":
				e.Op = "Write"
				s.Blkio.IoServiceBytesRecursive = append(s.Blkio.IoServiceBytesRecursive, e)
			case "rios":
				e.Op = "Read"
				s.Blkio.IoServicedRecursive = append(s.Blkio.IoServicedRecursive, e)
			case "wios":
				e.Op = "Write"
				s.Blkio.IoServicedRecursive = append(s.Blkio.IoServicedRecursive, e)
			}
		}
	}
	return sc.Err()
}

func (m *v2Manager) statHugetlbV2(dir string, s *Stats) error {
	sizes, err := m.h.hugePageSizes()
	if err != nil {
		return err
	}
	for _, sz := range sizes {
		var h Hugetlb
		p := "hugetlb." + sz + "."
		if h.Usage, err = readUint(dir, p+"current"); err != nil {
			return err
		}
		if ev, err := readKeyValues(dir, p+"events"); err == nil {
			h.Failcnt = ev["max"]
		}
		s.Hugetlb[sz] = h
	}
	return nil
}
