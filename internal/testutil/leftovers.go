package testutil

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// Leftovers names what a test may have created, so that CheckNoLeftovers
// can verify that none of it survives the test.
type Leftovers struct {
	// StateRoot is a runtime's --root. No directory may remain in it, and
	// no entry whose name contains one of IDs.
	StateRoot string
	// Dirs are the test's directories (bundles, bind-mount sources). No
	// mount may remain at or below them, in this or any other mount
	// namespace, and no process may have its root, cwd or executable there
	// or name them on its command line.
	Dirs []string
	// CgroupNames are leaf cgroup names (usually the container ids): no
	// directory of that name may remain under /sys/fs/cgroup/*/, nor under
	// the caller's own cgroup of each hierarchy, and no process may be in
	// such a cgroup.
	CgroupNames []string
	// CgroupPaths are cgroupsPath values the test set explicitly
	// ("/skiff-test/x"); they are checked in every hierarchy, both absolute
	// and relative to the caller's own cgroup.
	CgroupPaths []string
	// Runtime and IDs are used only to repair: after reporting, leftover
	// containers are deleted with `delete --force`.
	Runtime *Runtime
	IDs     []string
}

// CheckNoLeftovers registers a cleanup that fails the test for every
// leftover it finds (after giving asynchronous teardown up to three seconds)
// and then removes them, so that later tests start clean. Call it after
// creating the directories it names: cleanups run last-registered first, and
// the check must run before t.TempDir's removal.
func CheckNoLeftovers(t testing.TB, l Leftovers) {
	t.Helper()
	t.Cleanup(func() {
		var found []string
		deadline := time.Now().Add(3 * time.Second)
		for {
			found = FindLeftovers(l)
			if len(found) == 0 || time.Now().After(deadline) {
				break
			}
			time.Sleep(50 * time.Millisecond)
		}
		for _, f := range found {
			t.Errorf("leftover: %s", f)
		}
		if len(found) > 0 {
			RemoveLeftovers(l)
		}
	})
}

// FindLeftovers returns a description of each leftover of l, or nothing.
func FindLeftovers(l Leftovers) []string {
	var found []string
	if l.StateRoot != "" {
		entries, err := os.ReadDir(l.StateRoot)
		if err != nil && !os.IsNotExist(err) {
			found = append(found, fmt.Sprintf("state root %s: %v", l.StateRoot, err))
		}
		for _, e := range entries {
			if e.IsDir() || containsAny(e.Name(), l.IDs) {
				found = append(found, fmt.Sprintf("state %s left in runtime root", filepath.Join(l.StateRoot, e.Name())))
			}
		}
	}
	dirs := make([]string, 0, len(l.Dirs))
	for _, d := range l.Dirs {
		dirs = append(dirs, resolve(d))
	}
	self, err := ReadMountInfo("self")
	if err != nil {
		found = append(found, "read /proc/self/mountinfo: "+err.Error())
	}
	for _, d := range dirs {
		for _, mp := range mountsUnder(self, d) {
			found = append(found, fmt.Sprintf("mount %s left under test dir %s", mp, d))
		}
	}
	for _, p := range cgroupDirs(l) {
		found = append(found, fmt.Sprintf("cgroup %s left", p))
	}
	for _, p := range processesUsing(self, dirs, cgroupLeafs(l)) {
		found = append(found, p.String())
	}
	return found
}

// RemoveLeftovers does its best to undo every leftover of l: it kills the
// processes, force-deletes the containers IDs, unmounts, removes cgroups and
// state directories. Errors are ignored; FindLeftovers tells what remains.
func RemoveLeftovers(l Leftovers) {
	dirs := make([]string, 0, len(l.Dirs))
	for _, d := range l.Dirs {
		dirs = append(dirs, resolve(d))
	}
	self, _ := ReadMountInfo("self")
	for _, p := range processesUsing(self, dirs, cgroupLeafs(l)) {
		syscall.Kill(p.Pid, syscall.SIGKILL)
	}
	if l.Runtime != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		for _, id := range l.IDs {
			l.Runtime.Delete(ctx, id, true)
		}
		cancel()
	}
	for _, d := range dirs {
		for _, mp := range MountsUnder(d) {
			syscall.Unmount(mp, syscall.MNT_DETACH)
		}
	}
	cg := cgroupDirs(l)
	// Deepest first.
	sort.Slice(cg, func(i, j int) bool { return len(cg[i]) > len(cg[j]) })
	for _, p := range cg {
		if data, err := os.ReadFile(filepath.Join(p, "cgroup.procs")); err == nil {
			for _, f := range strings.Fields(string(data)) {
				if pid, err := strconv.Atoi(f); err == nil {
					syscall.Kill(pid, syscall.SIGKILL)
				}
			}
		}
	}
	for _, p := range cg {
		// Child cgroups (e.g. made by a nested runtime) go first.
		var tree []string
		filepath.WalkDir(p, func(path string, d os.DirEntry, err error) error {
			if err == nil && d.IsDir() {
				tree = append(tree, path)
			}
			return nil
		})
		for i := len(tree) - 1; i >= 0; i-- {
			for try := 0; try < 50; try++ {
				if err := syscall.Rmdir(tree[i]); err == nil || os.IsNotExist(err) {
					break
				}
				time.Sleep(20 * time.Millisecond)
			}
		}
	}
	if l.StateRoot != "" {
		entries, _ := os.ReadDir(l.StateRoot)
		for _, e := range entries {
			if e.IsDir() || containsAny(e.Name(), l.IDs) {
				os.RemoveAll(filepath.Join(l.StateRoot, e.Name()))
			}
		}
	}
}

func containsAny(s string, subs []string) bool {
	for _, sub := range subs {
		if sub != "" && strings.Contains(s, sub) {
			return true
		}
	}
	return false
}

// cgroupLeafs returns the base names that identify the test's cgroups.
func cgroupLeafs(l Leftovers) []string {
	var out []string
	for _, n := range l.CgroupNames {
		if n != "" {
			out = append(out, n)
		}
	}
	for _, p := range l.CgroupPaths {
		if b := filepath.Base(p); b != "/" && b != "." {
			out = append(out, b)
		}
	}
	return out
}

// ownCgroups returns the caller's cgroup path in each hierarchy mounted
// under /sys/fs/cgroup, keyed by the hierarchy's directory there.
func ownCgroups() map[string]string {
	out := map[string]string{}
	data, err := os.ReadFile("/proc/self/cgroup")
	if err != nil {
		return out
	}
	for _, line := range strings.Split(strings.TrimSpace(string(data)), "\n") {
		parts := strings.SplitN(line, ":", 3)
		if len(parts) != 3 {
			continue
		}
		var dirs []string
		switch {
		case parts[0] == "0" && parts[1] == "":
			dirs = []string{"/sys/fs/cgroup/unified", "/sys/fs/cgroup"}
		case strings.HasPrefix(parts[1], "name="):
			dirs = []string{"/sys/fs/cgroup/" + strings.TrimPrefix(parts[1], "name=")}
		default:
			dirs = []string{"/sys/fs/cgroup/" + parts[1]}
			for _, c := range strings.Split(parts[1], ",") {
				dirs = append(dirs, "/sys/fs/cgroup/"+c)
			}
		}
		for _, d := range dirs {
			if _, err := os.Stat(filepath.Join(d, "cgroup.procs")); err == nil {
				out[d] = parts[2]
			}
		}
	}
	return out
}

// cgroupDirs returns the existing cgroup directories of l.
func cgroupDirs(l Leftovers) []string {
	seen := map[string]bool{}
	var out []string
	add := func(p string) {
		p = filepath.Clean(p)
		if seen[p] {
			return
		}
		if fi, err := os.Stat(p); err == nil && fi.IsDir() {
			seen[p] = true
			out = append(out, p)
		}
	}
	hier, _ := filepath.Glob("/sys/fs/cgroup/*")
	hier = append(hier, "/sys/fs/cgroup")
	own := ownCgroups()
	for _, h := range hier {
		if _, err := os.Stat(filepath.Join(h, "cgroup.procs")); err != nil {
			continue
		}
		for _, n := range l.CgroupNames {
			if n == "" {
				continue
			}
			add(filepath.Join(h, n))
			if o, ok := own[h]; ok {
				add(filepath.Join(h, o, n))
			}
		}
		for _, p := range l.CgroupPaths {
			if p == "" {
				continue
			}
			if strings.Contains(p, ":") { // systemd-style slice:prefix:name
				continue
			}
			add(filepath.Join(h, p))
			if o, ok := own[h]; ok && !filepath.IsAbs(p) {
				add(filepath.Join(h, o, p))
			}
		}
	}
	return out
}

// LeftoverProcess is a process that uses one of a test's resources.
type LeftoverProcess struct {
	Pid    int
	Comm   string
	Reason string
}

func (p LeftoverProcess) String() string {
	return fmt.Sprintf("process %d (%s) %s", p.Pid, p.Comm, p.Reason)
}

// processesUsing scans /proc for live processes whose root, cwd, executable
// or command line is within dirs, that are in a cgroup named one of
// cgroupNames, or whose mount namespace holds a mount from within dirs.
func processesUsing(self []MountInfo, dirs, cgroupNames []string) []LeftoverProcess {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return []LeftoverProcess{{Reason: "read /proc: " + err.Error()}}
	}
	me := os.Getpid()
	myMntNS, _ := os.Readlink("/proc/self/ns/mnt")
	var locs []fsLocation
	for _, d := range dirs {
		if loc, ok := locate(self, d); ok {
			locs = append(locs, loc)
		}
	}
	nsChecked := map[string]string{} // mount ns → reason ("" if clean)
	var out []LeftoverProcess
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == me {
			continue
		}
		base := filepath.Join("/proc", e.Name())
		comm, state := procStat(base)
		if state == "" || state == "Z" || state == "X" {
			continue
		}
		reason := ""
		for _, link := range []string{"root", "cwd", "exe"} {
			target, err := os.Readlink(filepath.Join(base, link))
			if err != nil {
				continue
			}
			target = strings.TrimSuffix(target, " (deleted)")
			for _, d := range dirs {
				if within(target, d) {
					reason = fmt.Sprintf("has %s %s in test dir %s", link, target, d)
				}
			}
		}
		if reason == "" && len(dirs) > 0 {
			if data, err := os.ReadFile(filepath.Join(base, "cmdline")); err == nil {
				for _, arg := range strings.Split(string(data), "\x00") {
					for _, d := range dirs {
						if strings.Contains(arg, d) {
							reason = fmt.Sprintf("has argument %q naming test dir %s", arg, d)
						}
					}
				}
			}
		}
		if reason == "" && len(cgroupNames) > 0 {
			if data, err := os.ReadFile(filepath.Join(base, "cgroup")); err == nil {
				for _, line := range strings.Split(string(data), "\n") {
					parts := strings.SplitN(line, ":", 3)
					if len(parts) != 3 {
						continue
					}
					for _, comp := range strings.Split(parts[2], "/") {
						for _, n := range cgroupNames {
							if comp == n {
								reason = fmt.Sprintf("is in cgroup %s", line)
							}
						}
					}
				}
			}
		}
		if reason == "" && len(locs) > 0 {
			ns, err := os.Readlink(filepath.Join(base, "ns/mnt"))
			if err == nil && ns != myMntNS {
				r, ok := nsChecked[ns]
				if !ok {
					r = mountNSUses(base, locs)
					nsChecked[ns] = r
				}
				reason = r
			}
		}
		if reason != "" {
			out = append(out, LeftoverProcess{Pid: pid, Comm: comm, Reason: reason})
		}
	}
	return out
}

// mountNSUses returns why the mount namespace of the process at base holds
// a mount of something within one of locs, or "".
func mountNSUses(base string, locs []fsLocation) string {
	f, err := os.Open(filepath.Join(base, "mountinfo"))
	if err != nil {
		return ""
	}
	defer f.Close()
	mounts, err := ParseMountInfo(bufio.NewReader(f))
	if err != nil {
		return ""
	}
	for _, m := range mounts {
		for _, loc := range locs {
			if m.MajMin == loc.MajMin && within(m.Root, loc.Path) {
				return fmt.Sprintf("has a mount namespace where %s is mounted from test dir %s", m.MountPoint, loc.Path)
			}
		}
	}
	return ""
}

// procStat returns the command name and state letter of the process at
// base, or "" if it is gone.
func procStat(base string) (comm, state string) {
	data, err := os.ReadFile(filepath.Join(base, "stat"))
	if err != nil {
		return "", ""
	}
	s := string(data)
	open, close := strings.IndexByte(s, '('), strings.LastIndexByte(s, ')')
	if open < 0 || close < open || close+3 > len(s) {
		return "", ""
	}
	return s[open+1 : close], s[close+2 : close+3]
}
