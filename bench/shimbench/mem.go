package shimbench

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// Mem is one process's memory, in KiB, from /proc/PID/smaps_rollup.
type Mem struct {
	Pid int
	// RSS is resident memory (Rss), PSS its proportional share (Pss):
	// pages shared with other processes, such as the code of the other
	// monitors of the same binary, count 1/n each.
	RSS, PSS int64
	// Anon is the resident anonymous memory (Anonymous): heap, stacks,
	// data; the rest of RSS is file-backed (code, read-only data).
	Anon int64
	// Comm is the program the process ran at the reading (a skiff-shim
	// that has parked runs skiff-shim-idle).
	Comm string
}

// ReadMem reads the memory of process pid.
func ReadMem(pid int) (Mem, error) {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/smaps_rollup", pid))
	if err != nil {
		return Mem{}, err
	}
	m := Mem{Pid: pid}
	found := 0
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) != 3 || f[2] != "kB" {
			continue
		}
		v, err := strconv.ParseInt(f[1], 10, 64)
		if err != nil {
			continue
		}
		switch f[0] {
		case "Rss:":
			m.RSS, found = v, found+1
		case "Pss:":
			m.PSS, found = v, found+1
		case "Anonymous:":
			m.Anon, found = v, found+1
		}
	}
	if found != 3 {
		return Mem{}, fmt.Errorf("/proc/%d/smaps_rollup: no Rss, Pss and Anonymous lines", pid)
	}
	m.Comm = comm(pid)
	return m, nil
}

// Summary is the median and total over the monitors of one kind, in KiB.
type Summary struct {
	N                                int
	MedianRSS, MedianPSS, MedianAnon int64
	TotalRSS, TotalPSS, TotalAnon    int64
}

// Summarize computes the medians (the lower middle value for an even
// count) and totals of ms.
func Summarize(ms []Mem) Summary {
	s := Summary{N: len(ms)}
	if len(ms) == 0 {
		return s
	}
	median := func(get func(Mem) int64) (med, total int64) {
		v := make([]int64, len(ms))
		for i, m := range ms {
			v[i] = get(m)
			total += v[i]
		}
		sort.Slice(v, func(i, j int) bool { return v[i] < v[j] })
		return v[(len(v)-1)/2], total
	}
	s.MedianRSS, s.TotalRSS = median(func(m Mem) int64 { return m.RSS })
	s.MedianPSS, s.TotalPSS = median(func(m Mem) int64 { return m.PSS })
	s.MedianAnon, s.TotalAnon = median(func(m Mem) int64 { return m.Anon })
	return s
}

// parentPid returns the parent of pid and its command name (comm).
func parentPid(pid int) (ppid int, comm string, err error) {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, "", err
	}
	s := string(data)
	i, j := strings.IndexByte(s, '('), strings.LastIndexByte(s, ')')
	if i < 0 || j < i {
		return 0, "", fmt.Errorf("/proc/%d/stat: malformed", pid)
	}
	f := strings.Fields(s[j+1:])
	if len(f) < 2 {
		return 0, "", fmt.Errorf("/proc/%d/stat: malformed", pid)
	}
	ppid, err = strconv.Atoi(f[1])
	return ppid, s[i+1 : j], err
}

// comm returns the command name of pid.
func comm(pid int) string {
	data, _ := os.ReadFile(fmt.Sprintf("/proc/%d/comm", pid))
	return strings.TrimSpace(string(data))
}

// cgroupHierarchies returns the mount points of the cgroup (v1 and v2)
// hierarchies.
func cgroupHierarchies() []string {
	data, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return nil
	}
	var out []string
	for _, l := range strings.Split(string(data), "\n") {
		pre, post, ok := strings.Cut(l, " - ")
		if !ok {
			continue
		}
		pf, qf := strings.Fields(pre), strings.Fields(post)
		if len(pf) >= 5 && len(qf) >= 1 && (qf[0] == "cgroup" || qf[0] == "cgroup2") {
			out = append(out, pf[4])
		}
	}
	return out
}

// removeCgroupTree removes the cgroup rel (like "/shimbench-123") and
// everything below it from every hierarchy, deepest first.
func removeCgroupTree(rel string) error {
	var errs []error
	for _, h := range cgroupHierarchies() {
		root := filepath.Join(h, rel)
		var tree []string
		filepath.WalkDir(root, func(p string, d os.DirEntry, err error) error {
			if err == nil && d.IsDir() {
				tree = append(tree, p)
			}
			return nil
		})
		for i := len(tree) - 1; i >= 0; i-- {
			var err error
			for try := 0; try < 50; try++ {
				if err = syscall.Rmdir(tree[i]); err == nil || errors.Is(err, os.ErrNotExist) {
					err = nil
					break
				}
				time.Sleep(20 * time.Millisecond)
			}
			if err != nil {
				errs = append(errs, fmt.Errorf("remove cgroup %s: %w", tree[i], err))
			}
		}
	}
	return errors.Join(errs...)
}
