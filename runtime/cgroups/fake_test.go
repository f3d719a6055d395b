package cgroups

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/skiff-containers/skiff/runtime/cgroups/devices"
)

// fakeV2Host answers like a cgroup v2 host whose cgroupfs is a temp dir:
// statfs says cgroup2 for the root, and mkdir fills a new directory with the
// files the kernel would create. Everything else runs the real code on real
// files.
type fakeV2Host struct {
	root     string
	programs map[string]devices.Program // device filter attached per directory
	self     string                     // content of /proc/self/cgroup
	sizes    []string
}

func (f *fakeV2Host) statfs(path string) (int64, error) {
	if _, err := os.Stat(path); err != nil {
		return 0, err
	}
	if isUnder(f.root, path) {
		return cgroup2Magic, nil
	}
	return unix.TMPFS_MAGIC, nil
}

func (f *fakeV2Host) selfCgroup() (string, error)                { return f.self, nil }
func (f *fakeV2Host) cgroupMounts(string) ([]cgroupMount, error) { return nil, nil }
func (f *fakeV2Host) attachDeviceFilter(dir string, p devices.Program) error {
	if _, err := os.Stat(filepath.Join(dir, "cgroup.procs")); err != nil {
		return err
	}
	if f.programs == nil {
		f.programs = map[string]devices.Program{}
	}
	f.programs[dir] = p
	return nil
}

func (f *fakeV2Host) hugePageSizes() ([]string, error) { return f.sizes, nil }

// v2Files are the files of a non-root cgroup v2 directory, with the values a
// fresh one has. Controller files are added only for enabled controllers.
var v2CoreFiles = map[string]string{
	"cgroup.procs": "", "cgroup.threads": "", "cgroup.subtree_control": "",
	"cgroup.type": "domain", "cgroup.freeze": "0", "cgroup.events": "populated 0\nfrozen 0\n",
	"cgroup.max.depth": "max", "cgroup.stat": "nr_descendants 0\n",
	"cpu.stat": "usage_usec 0\nuser_usec 0\nsystem_usec 0\n",
}

var v2CtrlFiles = map[string]map[string]string{
	"cpu":     {"cpu.weight": "100", "cpu.max": "max 100000", "cpu.max.burst": "0", "cpu.idle": "0"},
	"cpuset":  {"cpuset.cpus": "", "cpuset.mems": "", "cpuset.cpus.effective": "0-1"},
	"memory":  {"memory.max": "max", "memory.low": "0", "memory.high": "max", "memory.swap.max": "max", "memory.current": "0", "memory.swap.current": "0", "memory.stat": "anon 0\nfile 0\n", "memory.events": "low 0\nhigh 0\nmax 0\noom 0\n"},
	"pids":    {"pids.max": "max", "pids.current": "0"},
	"io":      {"io.max": "", "io.weight": "default 100", "io.stat": ""},
	"hugetlb": {"hugetlb.2MB.max": "max", "hugetlb.2MB.current": "0", "hugetlb.2MB.events": "max 0\n", "hugetlb.1GB.max": "max", "hugetlb.1GB.current": "0", "hugetlb.1GB.events": "max 0\n"},
	"rdma":    {"rdma.max": "", "rdma.current": ""},
}

func (f *fakeV2Host) mkdir(path string) error {
	if err := os.Mkdir(path, 0o755); err != nil {
		return err
	}
	parentCtl, err := os.ReadFile(filepath.Join(filepath.Dir(path), "cgroup.subtree_control"))
	if err != nil {
		return err
	}
	enabled := strings.Fields(strings.NewReplacer("+", "").Replace(string(parentCtl)))
	files := map[string]string{"cgroup.controllers": strings.Join(enabled, " ")}
	for k, v := range v2CoreFiles {
		files[k] = v
	}
	for _, c := range enabled {
		for k, v := range v2CtrlFiles[c] {
			files[k] = v
		}
	}
	for k, v := range files {
		if err := os.WriteFile(filepath.Join(path, k), []byte(v), 0o644); err != nil {
			return err
		}
	}
	return nil
}

// rmdir removes a fake cgroup: like the kernel, refuse while it has
// processes or child cgroups; then drop its files and the directory.
func (f *fakeV2Host) rmdir(path string) error {
	ents, err := os.ReadDir(path)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return unix.ENOENT
		}
		return err
	}
	for _, e := range ents {
		if e.IsDir() {
			return unix.EBUSY
		}
	}
	if b, _ := os.ReadFile(filepath.Join(path, "cgroup.procs")); strings.TrimSpace(string(b)) != "" {
		return unix.EBUSY
	}
	for _, e := range ents {
		if err := os.Remove(filepath.Join(path, e.Name())); err != nil {
			return err
		}
	}
	return unix.Rmdir(path)
}

// newFakeV2 makes a fake cgroup v2 root offering the given controllers.
func newFakeV2(t *testing.T, controllers ...string) *fakeV2Host {
	t.Helper()
	root := t.TempDir()
	ctl := strings.Join(controllers, " ")
	for k, v := range map[string]string{
		"cgroup.controllers": ctl, "cgroup.subtree_control": "", "cgroup.procs": "1\n",
		"cgroup.max.depth": "max", "cgroup.stat": "", "cpu.stat": "",
	} {
		if err := os.WriteFile(filepath.Join(root, k), []byte(v), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return &fakeV2Host{root: root, self: "0::/user.slice/session-1.scope\n", sizes: []string{"2MB", "1GB"}}
}

func readT(t *testing.T, dir, name string) string {
	t.Helper()
	s, err := readFile(dir, name)
	if err != nil {
		t.Fatalf("read %s/%s: %v", dir, name, err)
	}
	return s
}
