package cgroups

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/skiff-containers/skiff/errdefs"
	"github.com/skiff-containers/skiff/runtime/cgroups/devices"
)

func i64(v int64) *int64    { return &v }
func u64(v uint64) *uint64  { return &v }
func u16(v uint16) *uint16  { return &v }
func u32(v uint32) *uint32  { return &v }
func boolp(v bool) *bool    { return &v }
func strp(v string) *string { return &v }

var allV2 = []string{"cpuset", "cpu", "io", "memory", "hugetlb", "pids", "rdma"}

func TestV2Paths(t *testing.T) {
	for _, tc := range []struct {
		name, path, id, self, want string
	}{
		{"absolute", "/kubepods/pod1/c1", "c1", "0::/user.slice/s.scope", "/kubepods/pod1/c1"},
		{"relative uses the parent of our own cgroup", "mygroup/c1", "c1", "0::/user.slice/s.scope", "/user.slice/mygroup/c1"},
		{"empty uses the id", "", "c2", "0::/user.slice/s.scope", "/user.slice/c2"},
		{"relative cannot climb out", "../../../etc", "x", "0::/a/b", "/a/etc"},
		{"own cgroup at root", "", "c3", "0::/", "/c3"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newFakeV2(t, allV2...)
			h.self = tc.self + "\n"
			m, err := newManager(Config{Root: h.root, Path: tc.path, ID: tc.id}, h)
			if err != nil {
				t.Fatal(err)
			}
			if m.Mode() != Unified {
				t.Fatalf("mode %v, want unified", m.Mode())
			}
			want := map[string]string{"": filepath.Join(h.root, tc.want)}
			if got := m.Paths(); len(got) != 1 || got[""] != want[""] {
				t.Fatalf("paths %v, want %v", got, want)
			}
		})
	}
}

func TestV2ApplyCreatesEnablesAndJoins(t *testing.T) {
	h := newFakeV2(t, "cpu", "memory", "pids")
	m, err := newManager(Config{Root: h.root, Path: "/a/b/c"}, h)
	if err != nil {
		t.Fatal(err)
	}
	if err := m.Apply(4242); err != nil {
		t.Fatal(err)
	}
	for _, d := range []string{"", "a", "a/b"} {
		if got := readT(t, filepath.Join(h.root, d), "cgroup.subtree_control"); got != "+cpu +memory +pids" {
			t.Errorf("%s/cgroup.subtree_control = %q, want all controllers enabled", d, got)
		}
	}
	leaf := filepath.Join(h.root, "a/b/c")
	if got := readT(t, leaf, "cgroup.subtree_control"); got != "" {
		t.Errorf("leaf subtree_control = %q, want untouched", got)
	}
	if got := readT(t, leaf, "cgroup.procs"); got != "4242" {
		t.Errorf("cgroup.procs = %q", got)
	}
	if got := readT(t, leaf, "cgroup.controllers"); got != "cpu memory pids" {
		t.Errorf("leaf controllers = %q (subtree_control not propagated)", got)
	}
	pids, err := m.Pids()
	if err != nil || len(pids) != 1 || pids[0] != 4242 {
		t.Fatalf("Pids = %v, %v", pids, err)
	}
	// Pids is recursive.
	if err := h.mkdir(filepath.Join(leaf, "sub")); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(leaf, "sub", "cgroup.procs"), []byte("7\n8\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	pids, err = m.Pids()
	if err != nil || len(pids) != 3 {
		t.Fatalf("recursive Pids = %v, %v", pids, err)
	}
	// Busy while processes are in it: Destroy fails with a precondition error.
	if err := m.Destroy(); !errdefs.IsFailedPrecondition(err) {
		t.Fatalf("Destroy with processes = %v, want failed precondition", err)
	}
	for _, d := range []string{leaf, filepath.Join(leaf, "sub")} {
		if err := os.WriteFile(filepath.Join(d, "cgroup.procs"), nil, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := m.Destroy(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(leaf); !os.IsNotExist(err) {
		t.Fatalf("leaf still there after Destroy: %v", err)
	}
	if _, err := os.Stat(filepath.Join(h.root, "a/b")); err != nil {
		t.Fatalf("Destroy removed the parent (runc leaves it): %v", err)
	}
	if err := m.Destroy(); err != nil {
		t.Fatalf("second Destroy: %v", err)
	}
}

func TestV2ApplyFailureRemovesWhatItCreated(t *testing.T) {
	h := newFakeV2(t, "pids")
	m, err := newManager(Config{Root: h.root, Path: "/x/y"}, h)
	if err != nil {
		t.Fatal(err)
	}
	// Make the leaf exist without cgroup.procs: the pid write fails.
	badHost := &mkdirHook{fakeV2Host: h, after: func(p string) {
		if filepath.Base(p) == "y" {
			os.Remove(filepath.Join(p, "cgroup.procs"))
		}
	}}
	m.(*v2Manager).h = badHost
	err = m.Apply(1)
	if err == nil {
		t.Fatal("Apply succeeded without cgroup.procs")
	}
	if _, serr := os.Stat(filepath.Join(h.root, "x")); !os.IsNotExist(serr) {
		t.Fatalf("Apply left %s behind after failing (%v)", filepath.Join(h.root, "x"), err)
	}
}

type mkdirHook struct {
	*fakeV2Host
	after func(string)
}

func (m *mkdirHook) mkdir(p string) error {
	if err := m.fakeV2Host.mkdir(p); err != nil {
		return err
	}
	m.after(p)
	return nil
}

func TestV2Set(t *testing.T) {
	for _, tc := range []struct {
		name string
		r    specs.LinuxResources
		want map[string]string
	}{
		{"pids", specs.LinuxResources{Pids: &specs.LinuxPids{Limit: i64(42)}}, map[string]string{"pids.max": "42"}},
		{"pids unlimited", specs.LinuxResources{Pids: &specs.LinuxPids{Limit: i64(-1)}}, map[string]string{"pids.max": "max"}},
		{"memory and swap", specs.LinuxResources{Memory: &specs.LinuxMemory{Limit: i64(100 << 20), Swap: i64(300 << 20), Reservation: i64(50 << 20)}},
			map[string]string{"memory.max": "104857600", "memory.swap.max": "209715200", "memory.low": "52428800"}},
		{"swap equal to memory disables swap", specs.LinuxResources{Memory: &specs.LinuxMemory{Limit: i64(100 << 20), Swap: i64(100 << 20)}},
			map[string]string{"memory.max": "104857600", "memory.swap.max": "0"}},
		{"unlimited memory means unlimited swap", specs.LinuxResources{Memory: &specs.LinuxMemory{Limit: i64(-1)}},
			map[string]string{"memory.max": "max", "memory.swap.max": "max"}},
		{"swap -1", specs.LinuxResources{Memory: &specs.LinuxMemory{Limit: i64(1 << 30), Swap: i64(-1)}},
			map[string]string{"memory.max": "1073741824", "memory.swap.max": "max"}},
		{"cpu shares default", specs.LinuxResources{CPU: &specs.LinuxCPU{Shares: u64(1024)}}, map[string]string{"cpu.weight": "39"}},
		{"cpu shares min", specs.LinuxResources{CPU: &specs.LinuxCPU{Shares: u64(2)}}, map[string]string{"cpu.weight": "1"}},
		{"cpu shares max", specs.LinuxResources{CPU: &specs.LinuxCPU{Shares: u64(262144)}}, map[string]string{"cpu.weight": "10000"}},
		{"cpu quota period", specs.LinuxResources{CPU: &specs.LinuxCPU{Quota: i64(50000), Period: u64(200000)}}, map[string]string{"cpu.max": "50000 200000"}},
		{"cpu quota default period", specs.LinuxResources{CPU: &specs.LinuxCPU{Quota: i64(50000)}}, map[string]string{"cpu.max": "50000 100000"}},
		{"cpu period only", specs.LinuxResources{CPU: &specs.LinuxCPU{Period: u64(50000)}}, map[string]string{"cpu.max": "max 50000"}},
		{"cpu quota -1", specs.LinuxResources{CPU: &specs.LinuxCPU{Quota: i64(-1), Period: u64(100000)}}, map[string]string{"cpu.max": "max 100000"}},
		{"cpu burst", specs.LinuxResources{CPU: &specs.LinuxCPU{Quota: i64(50000), Burst: u64(10000)}}, map[string]string{"cpu.max": "50000 100000", "cpu.max.burst": "10000"}},
		{"cpu idle", specs.LinuxResources{CPU: &specs.LinuxCPU{Idle: i64(1), Shares: u64(1024)}}, map[string]string{"cpu.idle": "1", "cpu.weight": "100"}},
		{"cpuset", specs.LinuxResources{CPU: &specs.LinuxCPU{Cpus: "0-1", Mems: "0"}}, map[string]string{"cpuset.cpus": "0-1", "cpuset.mems": "0"}},
		{"io weight", specs.LinuxResources{BlockIO: &specs.LinuxBlockIO{Weight: u16(500)}}, map[string]string{"io.weight": "default 4950"}},
		{"io weight device", specs.LinuxResources{BlockIO: &specs.LinuxBlockIO{WeightDevice: []specs.LinuxWeightDevice{
			{LinuxBlockIODevice: specs.LinuxBlockIODevice{Major: 8, Minor: 0}, Weight: u16(10)}}}}, map[string]string{"io.weight": "8:0 1"}},
		{"io throttle", specs.LinuxResources{BlockIO: &specs.LinuxBlockIO{ThrottleWriteIOPSDevice: []specs.LinuxThrottleDevice{
			{LinuxBlockIODevice: specs.LinuxBlockIODevice{Major: 8, Minor: 16}, Rate: 300}}}}, map[string]string{"io.max": "8:16 wiops=300"}},
		{"io throttle 0 lifts the limit", specs.LinuxResources{BlockIO: &specs.LinuxBlockIO{ThrottleReadBpsDevice: []specs.LinuxThrottleDevice{
			{LinuxBlockIODevice: specs.LinuxBlockIODevice{Major: 8, Minor: 0}, Rate: 0}}}}, map[string]string{"io.max": "8:0 rbps=max"}},
		{"hugetlb", specs.LinuxResources{HugepageLimits: []specs.LinuxHugepageLimit{{Pagesize: "2MB", Limit: 4 << 21}}}, map[string]string{"hugetlb.2MB.max": "8388608"}},
		{"rdma", specs.LinuxResources{Rdma: map[string]specs.LinuxRdma{"mlx5_1": {HcaHandles: u32(3), HcaObjects: u32(1000)}}}, map[string]string{"rdma.max": "mlx5_1 hca_handle=3 hca_object=1000"}},
		{"unified", specs.LinuxResources{Unified: map[string]string{"memory.high": "123456", "pids.max": "7"}}, map[string]string{"memory.high": "123456", "pids.max": "7"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newFakeV2(t, allV2...)
			m, err := newManager(Config{Root: h.root, Path: "/c", Resources: &tc.r}, h)
			if err != nil {
				t.Fatal(err)
			}
			if err := m.Apply(-1); err != nil {
				t.Fatal(err)
			}
			if err := m.Set(&tc.r); err != nil {
				t.Fatal(err)
			}
			for f, want := range tc.want {
				if got := readT(t, m.Paths()[""], f); got != want {
					t.Errorf("%s = %q, want %q", f, got, want)
				}
			}
		})
	}
}

func TestV2Refusals(t *testing.T) {
	for _, tc := range []struct {
		name  string
		ctrls []string
		r     specs.LinuxResources
		class error
	}{
		{"shares below range", allV2, specs.LinuxResources{CPU: &specs.LinuxCPU{Shares: u64(1)}}, errdefs.ErrInvalidArgument},
		{"realtime", allV2, specs.LinuxResources{CPU: &specs.LinuxCPU{RealtimeRuntime: i64(1000)}}, errdefs.ErrNotImplemented},
		{"swap without memory", allV2, specs.LinuxResources{Memory: &specs.LinuxMemory{Swap: i64(1 << 30)}}, errdefs.ErrInvalidArgument},
		{"oom killer", allV2, specs.LinuxResources{Memory: &specs.LinuxMemory{DisableOOMKiller: boolp(true)}}, errdefs.ErrNotImplemented},
		{"net_cls", allV2, specs.LinuxResources{Network: &specs.LinuxNetwork{ClassID: u32(1)}}, errdefs.ErrNotImplemented},
		{"unified key with slash", allV2, specs.LinuxResources{Unified: map[string]string{"../memory.max": "1"}}, errdefs.ErrInvalidArgument},
		{"unified cgroup.procs", allV2, specs.LinuxResources{Unified: map[string]string{"cgroup.procs": "1"}}, errdefs.ErrInvalidArgument},
		{"io controller missing", []string{"cpu", "memory", "pids"}, specs.LinuxResources{BlockIO: &specs.LinuxBlockIO{Weight: u16(100)}}, errdefs.ErrFailedPrecondition},
		{"unified for a missing controller", []string{"cpu"}, specs.LinuxResources{Unified: map[string]string{"memory.high": "1"}}, errdefs.ErrFailedPrecondition},
		{"huge page size not on host", allV2, specs.LinuxResources{HugepageLimits: []specs.LinuxHugepageLimit{{Pagesize: "16MB", Limit: 1}}}, errdefs.ErrInvalidArgument},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newFakeV2(t, tc.ctrls...)
			_, err := newManager(Config{Root: h.root, Path: "/c", Resources: &tc.r}, h)
			if !errors.Is(err, tc.class) {
				t.Fatalf("New = %v, want %v", err, tc.class)
			}
			if _, serr := os.Stat(filepath.Join(h.root, "c")); !os.IsNotExist(serr) {
				t.Fatal("New created the cgroup although it refused the config")
			}
			// Set refuses the same on an existing cgroup, writing nothing.
			m, err := newManager(Config{Root: h.root, Path: "/c"}, h)
			if err != nil {
				t.Fatal(err)
			}
			if err := m.Apply(-1); err != nil {
				t.Fatal(err)
			}
			if err := m.Set(&tc.r); !errors.Is(err, tc.class) {
				t.Fatalf("Set = %v, want %v", err, tc.class)
			}
		})
	}
}

func TestV2UnknownUnifiedFile(t *testing.T) {
	h := newFakeV2(t, allV2...)
	m, err := newManager(Config{Root: h.root, Path: "/c"}, h)
	if err != nil {
		t.Fatal(err)
	}
	if err := m.Apply(-1); err != nil {
		t.Fatal(err)
	}
	err = m.Set(&specs.LinuxResources{Unified: map[string]string{"memory.nonsense": "1"}})
	if !errdefs.IsNotImplemented(err) || !strings.Contains(err.Error(), "memory.nonsense") {
		t.Fatalf("Set unknown unified key = %v", err)
	}
}

// fakeFreezer plays the kernel: it mirrors cgroup.freeze into cgroup.events.
func fakeFreezer(t *testing.T, dir string) (stop func()) {
	done := make(chan struct{})
	finished := make(chan struct{})
	go func() {
		defer close(finished)
		for {
			select {
			case <-done:
				return
			case <-time.After(2 * time.Millisecond):
			}
			f, err := readFile(dir, "cgroup.freeze")
			if err != nil {
				continue
			}
			_ = os.WriteFile(filepath.Join(dir, "cgroup.events"), []byte("populated 1\nfrozen "+f+"\n"), 0o644)
		}
	}()
	return func() { close(done); <-finished }
}

func TestV2FreezeThaw(t *testing.T) {
	h := newFakeV2(t, allV2...)
	m, err := newManager(Config{Root: h.root, Path: "/c"}, h)
	if err != nil {
		t.Fatal(err)
	}
	if err := m.Apply(-1); err != nil {
		t.Fatal(err)
	}
	dir := m.Paths()[""]
	stop := fakeFreezer(t, dir)
	defer stop()
	if st, err := m.State(); err != nil || st != Thawed {
		t.Fatalf("State = %v, %v", st, err)
	}
	if err := m.Freeze(); err != nil {
		t.Fatal(err)
	}
	if got := readT(t, dir, "cgroup.freeze"); got != "1" {
		t.Fatalf("cgroup.freeze = %q", got)
	}
	if st, err := m.State(); err != nil || st != Frozen {
		t.Fatalf("State = %v, %v", st, err)
	}
	// A manager loaded from the persisted paths sees the same.
	l, err := loadManager(h.root, m.Paths(), h)
	if err != nil {
		t.Fatal(err)
	}
	if l.Mode() != Unified {
		t.Fatalf("loaded mode %v", l.Mode())
	}
	if st, err := l.State(); err != nil || st != Frozen {
		t.Fatalf("loaded State = %v, %v", st, err)
	}
	if err := l.Thaw(); err != nil {
		t.Fatal(err)
	}
	if st, err := m.State(); err != nil || st != Thawed {
		t.Fatalf("State after thaw = %v, %v", st, err)
	}
}

func TestV2Stats(t *testing.T) {
	h := newFakeV2(t, allV2...)
	m, err := newManager(Config{Root: h.root, Path: "/c"}, h)
	if err != nil {
		t.Fatal(err)
	}
	if err := m.Apply(-1); err != nil {
		t.Fatal(err)
	}
	dir := m.Paths()[""]
	for f, v := range map[string]string{
		"cpu.stat":            "usage_usec 1500\nuser_usec 1000\nsystem_usec 500\nnr_periods 10\nnr_throttled 2\nthrottled_usec 30\n",
		"memory.current":      "4096",
		"memory.max":          "1048576",
		"memory.swap.current": "100",
		"memory.swap.max":     "max",
		"memory.events":       "low 0\nhigh 0\nmax 3\noom 1\noom_kill 1\n",
		"memory.stat":         "anon 1000\nfile 2000\n",
		"pids.current":        "3",
		"pids.max":            "10",
		"io.stat":             "8:0 rbytes=100 wbytes=200 rios=1 wios=2 dbytes=0 dios=0\n",
		"hugetlb.2MB.current": "2097152",
		"hugetlb.2MB.events":  "max 4\n",
	} {
		if err := os.WriteFile(filepath.Join(dir, f), []byte(v), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	s, err := m.Stats()
	if err != nil {
		t.Fatal(err)
	}
	checks := []struct {
		what      string
		got, want uint64
	}{
		{"cpu total", s.CPU.Usage.Total, 1500000},
		{"cpu user", s.CPU.Usage.User, 1000000},
		{"cpu kernel", s.CPU.Usage.Kernel, 500000},
		{"throttled periods", s.CPU.Throttling.ThrottledPeriods, 2},
		{"throttled time", s.CPU.Throttling.ThrottledTime, 30000},
		{"mem usage", s.Memory.Usage.Usage, 4096},
		{"mem limit", s.Memory.Usage.Limit, 1048576},
		{"mem failcnt", s.Memory.Usage.Failcnt, 3},
		{"cache", s.Memory.Cache, 2000},
		{"swap usage is memory+swap", s.Memory.Swap.Usage, 4196},
		{"pids current", s.Pids.Current, 3},
		{"pids limit", s.Pids.Limit, 10},
		{"hugetlb usage", s.Hugetlb["2MB"].Usage, 2097152},
		{"hugetlb failcnt", s.Hugetlb["2MB"].Failcnt, 4},
	}
	for _, c := range checks {
		if c.got != c.want {
			t.Errorf("%s = %d, want %d", c.what, c.got, c.want)
		}
	}
	want := []BlkioEntry{{8, 0, "Read", 100}, {8, 0, "Write", 200}}
	if len(s.Blkio.IoServiceBytesRecursive) != 2 || s.Blkio.IoServiceBytesRecursive[0] != want[0] || s.Blkio.IoServiceBytesRecursive[1] != want[1] {
		t.Errorf("io service bytes = %+v", s.Blkio.IoServiceBytesRecursive)
	}
	// The JSON keys are runc's.
	b, err := json.Marshal(s)
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{`"cpu":{"usage":{"total":1500000`, `"throttling":{"periods":10`, `"memory":{"cache":2000`, `"pids":{"current":3,"limit":10}`, `"ioServiceBytesRecursive":[{"major":8,"op":"Read","value":100}`, `"hugetlb":{`, `"intel_rdt":{}`} {
		if !strings.Contains(string(b), k) {
			t.Errorf("stats JSON lacks %s: %s", k, b)
		}
	}
	if n, err := m.OOMKillCount(); err != nil || n != 1 {
		t.Errorf("OOMKillCount = %d, %v; want 1", n, err)
	}
	// Gone cgroup: not found.
	if err := os.WriteFile(filepath.Join(dir, "cgroup.procs"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := m.Destroy(); err != nil {
		t.Fatal(err)
	}
	if _, err := m.Stats(); !errdefs.IsNotFound(err) {
		t.Fatalf("Stats of removed cgroup = %v, want not found", err)
	}
	if _, err := m.OOMKillCount(); !errdefs.IsNotFound(err) {
		t.Fatalf("OOMKillCount of removed cgroup = %v, want not found", err)
	}
}

func TestV2Devices(t *testing.T) {
	h := newFakeV2(t, allV2...)
	rules := []specs.LinuxDeviceCgroup{{Allow: false, Access: "rwm"}, {Allow: true, Type: "c", Major: i64(1), Minor: i64(3), Access: "rwm"}}
	r := &specs.LinuxResources{Devices: rules}
	m, err := newManager(Config{Root: h.root, Path: "/c", Resources: r}, h)
	if err != nil {
		t.Fatal(err)
	}
	if err := m.Apply(-1); err != nil {
		t.Fatal(err)
	}
	if err := m.Set(&specs.LinuxResources{}); err != nil {
		t.Fatal(err)
	}
	if len(h.programs) != 0 {
		t.Fatal("a filter was attached without device rules")
	}
	if err := m.Set(r); err != nil {
		t.Fatal(err)
	}
	want, err := devices.Compile(rules)
	if err != nil {
		t.Fatal(err)
	}
	got := h.programs[m.Paths()[""]]
	if len(got) == 0 || len(got) != len(want) {
		t.Fatalf("attached program %v, want %v", got, want)
	}
	for i := range got {
		if got[i] != want[i] {
			t.Fatalf("instruction %d = %+v, want %+v", i, got[i], want[i])
		}
	}
	bad := &specs.LinuxResources{Devices: []specs.LinuxDeviceCgroup{{Type: "q"}}}
	if err := m.Set(bad); !errdefs.IsInvalidArgument(err) {
		t.Fatalf("bad device rule = %v", err)
	}
}
