package cgroups

import (
	"bufio"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/skiff-containers/skiff/errdefs"
)

func randName(t *testing.T, prefix string) string {
	t.Helper()
	b := make([]byte, 6)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return prefix + hex.EncodeToString(b)
}

// needV1Host fails (not skips) when the host is not what these tests are
// written for: they exercise the real v1 hierarchies.
func needV1Host(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Fatal("cgroup v1 tests need root")
	}
	mode, err := DetectMode(DefaultRoot)
	if err != nil {
		t.Fatal(err)
	}
	if mode == Unified {
		t.Fatal("host is cgroup v2 only: the real-hierarchy tests in this file are for v1 hosts")
	}
}

// startProc starts a shell snippet and makes sure it is reaped at the end.
func startProc(t *testing.T, script string) *exec.Cmd {
	t.Helper()
	cmd := exec.Command("sh", "-c", script)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_, _ = cmd.Process.Wait()
	})
	return cmd
}

// newV1ForTest makes a manager on the real hierarchy under a random
// absolute path and makes sure it is destroyed (and gone) at the end.
func newV1ForTest(t *testing.T, r *specs.LinuxResources) (Manager, string) {
	t.Helper()
	needV1Host(t)
	path := "/" + randName(t, "skiff-test-")
	m, err := New(Config{Path: path, Resources: r})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		var err error
		for i := 0; i < 20; i++ {
			if err = m.Destroy(); err == nil {
				break
			}
			time.Sleep(50 * time.Millisecond)
		}
		if err != nil {
			t.Errorf("cleanup Destroy: %v", err)
		}
		assertGone(t, m.Paths())
	})
	return m, path
}

func assertGone(t *testing.T, paths map[string]string) {
	t.Helper()
	for k, p := range paths {
		if _, err := os.Stat(p); !os.IsNotExist(err) {
			t.Errorf("cgroup %s (%q) still exists after Destroy (%v)", p, k, err)
		}
	}
}

func mountedV1(t *testing.T) map[string]bool {
	t.Helper()
	mounts, err := osHost{}.cgroupMounts(DefaultRoot)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]bool{}
	for _, m := range mounts {
		for _, c := range m.controllers {
			out[c] = true
		}
	}
	return out
}

// cpuTicks is utime+stime of pid from /proc/<pid>/stat.
func cpuTicks(t *testing.T, pid int) uint64 {
	t.Helper()
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		t.Fatal(err)
	}
	s := string(b)
	fs := strings.Fields(s[strings.LastIndexByte(s, ')')+2:])
	u, _ := strconv.ParseUint(fs[11], 10, 64)
	k, _ := strconv.ParseUint(fs[12], 10, 64)
	return u + k
}

func procCgroups(t *testing.T, pid int) map[string]string {
	t.Helper()
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/cgroup")
	if err != nil {
		t.Fatal(err)
	}
	m, err := parseSelfCgroup(string(b))
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func TestDetectModeHost(t *testing.T) {
	// Independent oracle: where /proc/self/mountinfo says cgroup2 is.
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	want := Legacy
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fs := strings.Fields(sc.Text())
		sep := 0
		for i, x := range fs {
			if x == "-" {
				sep = i
				break
			}
		}
		if fs[sep+1] != "cgroup2" {
			continue
		}
		switch fs[4] {
		case "/sys/fs/cgroup":
			want = Unified
		case "/sys/fs/cgroup/unified":
			if want != Unified {
				want = Hybrid
			}
		}
	}
	got, err := DetectMode(DefaultRoot)
	if err != nil {
		t.Fatal(err)
	}
	if got != want {
		t.Fatalf("DetectMode = %v, mountinfo says %v", got, want)
	}
	if _, err := DetectMode(filepath.Join(t.TempDir(), "nope")); !errdefs.IsNotFound(err) {
		t.Fatalf("DetectMode of a missing root = %v, want not found", err)
	}
}

type statfsHost struct {
	osHost
	types map[string]int64
}

func (h statfsHost) statfs(p string) (int64, error) {
	if t, ok := h.types[p]; ok {
		return t, nil
	}
	return 0, &os.PathError{Op: "statfs", Path: p, Err: syscall.ENOENT}
}

func TestDetectModeFake(t *testing.T) {
	const tmpfs, cg1, cg2 = 0x01021994, cgroup1Magic, cgroup2Magic
	for _, tc := range []struct {
		name  string
		types map[string]int64
		want  Mode
		class error
	}{
		{"unified", map[string]int64{"/r": cg2}, Unified, nil},
		{"hybrid", map[string]int64{"/r": tmpfs, "/r/unified": cg2}, Hybrid, nil},
		{"legacy without unified", map[string]int64{"/r": tmpfs}, Legacy, nil},
		{"legacy with unified not cgroup2", map[string]int64{"/r": tmpfs, "/r/unified": cg1}, Legacy, nil},
		{"missing root", map[string]int64{}, 0, errdefs.ErrNotFound},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := detectMode(statfsHost{types: tc.types}, "/r")
			if tc.class != nil {
				if !errors.Is(err, tc.class) {
					t.Fatalf("err = %v, want %v", err, tc.class)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Fatalf("detectMode = %v, %v; want %v", got, err, tc.want)
			}
		})
	}
}

// selfHost is the real host with a made-up /proc/self/cgroup and mounts.
type selfHost struct {
	osHost
	self   string
	mounts []cgroupMount
}

func (h selfHost) selfCgroup() (string, error)                { return h.self, nil }
func (h selfHost) cgroupMounts(string) ([]cgroupMount, error) { return h.mounts, nil }
func (h selfHost) statfs(p string) (int64, error) {
	if p == "/r/unified" {
		return cgroup2Magic, nil
	}
	return 0x01021994, nil
}

func TestV1PathResolution(t *testing.T) {
	mounts := []cgroupMount{
		{mountpoint: "/r/cpu,cpuacct", root: "/", controllers: []string{"cpu", "cpuacct"}},
		{mountpoint: "/r/memory", root: "/", controllers: []string{"memory"}},
		{mountpoint: "/r/pids", root: "/ns", controllers: []string{"pids"}}, // a cgroup namespace's view
		{mountpoint: "/r/systemd", root: "/", controllers: []string{"name=systemd"}},
	}
	self := "5:pids:/ns/inner\n4:memory:/svc/runtime\n1:cpu,cpuacct:/\n9:name=systemd:/user\n0::/u2\n"
	for _, tc := range []struct {
		name, path, id string
		want           map[string]string
	}{
		{"absolute", "/a/b", "x", map[string]string{
			"cpu": "/r/cpu,cpuacct/a/b", "cpuacct": "/r/cpu,cpuacct/a/b", "memory": "/r/memory/a/b",
			"pids": "/r/pids/a/b", "name=systemd": "/r/systemd/a/b", "": "/r/unified/a/b"}},
		{"relative", "a/b", "x", map[string]string{
			"cpu": "/r/cpu,cpuacct/a/b", "cpuacct": "/r/cpu,cpuacct/a/b", "memory": "/r/memory/svc/runtime/a/b",
			"pids": "/r/pids/inner/a/b", "name=systemd": "/r/systemd/user/a/b", "": "/r/unified/u2/a/b"}},
		{"empty is the id, relative", "", "ctr", map[string]string{
			"cpu": "/r/cpu,cpuacct/ctr", "cpuacct": "/r/cpu,cpuacct/ctr", "memory": "/r/memory/svc/runtime/ctr",
			"pids": "/r/pids/inner/ctr", "name=systemd": "/r/systemd/user/ctr", "": "/r/unified/u2/ctr"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m, err := newManager(Config{Root: "/r", Path: tc.path, ID: tc.id}, selfHost{self: self, mounts: mounts})
			if err != nil {
				t.Fatal(err)
			}
			if m.Mode() != Hybrid {
				t.Fatalf("mode %v", m.Mode())
			}
			got := m.Paths()
			if len(got) != len(tc.want) {
				t.Fatalf("paths %v, want %v", got, tc.want)
			}
			for k, v := range tc.want {
				if got[k] != v {
					t.Errorf("path[%q] = %q, want %q", k, got[k], v)
				}
			}
		})
	}
	// Our own cgroup outside the mounted part of the hierarchy: refuse.
	_, err := newManager(Config{Root: "/r", Path: "rel"}, selfHost{self: "5:pids:/other\n4:memory:/\n1:cpu,cpuacct:/\n9:name=systemd:/\n0::/\n", mounts: mounts})
	if !errdefs.IsFailedPrecondition(err) {
		t.Fatalf("relative path outside the namespace root = %v", err)
	}
	if _, err := newManager(Config{Root: "/r"}, selfHost{self: self, mounts: mounts}); !errdefs.IsInvalidArgument(err) {
		t.Fatalf("no path and no id = %v", err)
	}
}

// TestV1PathsMatchRunc runs busybox containers under runc (the oracle) with
// each kind of cgroupsPath and compares runc's recorded cgroup paths with
// ours.
func TestV1PathsMatchRunc(t *testing.T) {
	needV1Host(t)
	runc, err := exec.LookPath("runc")
	if err != nil {
		t.Fatal("runc (the oracle) is not installed")
	}
	bb, err := exec.LookPath("busybox")
	if err != nil {
		t.Fatal("busybox is needed for the oracle bundle")
	}
	bundle := t.TempDir()
	state := t.TempDir()
	if err := os.MkdirAll(filepath.Join(bundle, "rootfs/bin"), 0o755); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("cp", bb, filepath.Join(bundle, "rootfs/bin/busybox")).CombinedOutput(); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	if out, err := exec.Command(runc, "spec", "--bundle", bundle).CombinedOutput(); err != nil {
		t.Fatalf("runc spec: %v: %s", err, out)
	}
	tag := randName(t, "")
	for _, path := range []string{"", "skiff-rel-" + tag + "/c", "/skiff-abs-" + tag + "/c"} {
		id := randName(t, "skiff-oracle-")
		cfgPath := filepath.Join(bundle, "config.json")
		b, err := os.ReadFile(cfgPath)
		if err != nil {
			t.Fatal(err)
		}
		var spec specs.Spec
		if err := jsonUnmarshal(b, &spec); err != nil {
			t.Fatal(err)
		}
		spec.Process.Terminal = false
		spec.Process.Args = []string{"/bin/busybox", "sleep", "100"}
		spec.Linux.CgroupsPath = path
		if err := jsonWrite(cfgPath, &spec); err != nil {
			t.Fatal(err)
		}
		// Files, not pipes: the detached container keeps its stdio open.
		logf, err := os.CreateTemp(t.TempDir(), "runc-out")
		if err != nil {
			t.Fatal(err)
		}
		cmd := exec.Command(runc, "--root", state, "run", "-d", "--bundle", bundle, id)
		cmd.Stdout, cmd.Stderr = logf, logf
		err = cmd.Run()
		logf.Close()
		if err != nil {
			out, _ := os.ReadFile(logf.Name())
			t.Fatalf("runc run (cgroupsPath %q): %v: %s", path, err, out)
		}
		var st struct {
			CgroupPaths map[string]string `json:"cgroup_paths"`
		}
		b, err = os.ReadFile(filepath.Join(state, id, "state.json"))
		_ = exec.Command(runc, "--root", state, "delete", "-f", id).Run()
		if err != nil {
			t.Fatal(err)
		}
		if err := jsonUnmarshal(b, &st); err != nil {
			t.Fatal(err)
		}
		m, err := New(Config{Path: path, ID: id})
		if err != nil {
			t.Fatal(err)
		}
		got := m.Paths()
		for k, v := range st.CgroupPaths {
			if got[k] != v {
				t.Errorf("cgroupsPath %q: path[%q] = %q, runc has %q", path, k, got[k], v)
			}
		}
		for k := range got {
			if _, ok := st.CgroupPaths[k]; !ok {
				t.Errorf("cgroupsPath %q: we have %q, runc does not", path, k)
			}
		}
		// runc leaves the intermediate directory behind; clean it.
		if path != "" {
			for _, p := range got {
				_ = os.Remove(filepath.Dir(p))
			}
		}
		assertGone(t, got)
	}
}

func TestV1Lifecycle(t *testing.T) {
	res := &specs.LinuxResources{
		Pids: &specs.LinuxPids{Limit: i64(50)},
		Memory: &specs.LinuxMemory{Limit: i64(64 << 20), Swap: i64(128 << 20), Reservation: i64(32 << 20),
			Swappiness: u64(10), DisableOOMKiller: boolp(true)},
		CPU: &specs.LinuxCPU{Shares: u64(512), Quota: i64(50000), Period: u64(100000), Cpus: "0", Mems: "0"},
	}
	m, path := newV1ForTest(t, res)
	if m.Mode() != Hybrid && m.Mode() != Legacy {
		t.Fatalf("mode %v", m.Mode())
	}
	proc := startProc(t, "while :; do :; done")
	pid := proc.Process.Pid
	if err := m.Apply(pid); err != nil {
		t.Fatal(err)
	}
	if err := m.Set(res); err != nil {
		t.Fatal(err)
	}
	paths := m.Paths()
	for _, c := range []string{"cpu", "cpuacct", "cpuset", "memory", "devices", "freezer", "pids", "blkio"} {
		if mountedV1(t)[c] && paths[c] == "" {
			t.Errorf("no path for mounted controller %s", c)
		}
	}
	pc := procCgroups(t, pid)
	for c := range paths {
		if pc[c] != path {
			t.Errorf("/proc/%d/cgroup: %q is %q, want %q", pid, c, pc[c], path)
		}
	}
	for _, c := range []struct{ ctrl, file, want string }{
		{"pids", "pids.max", "50"},
		{"memory", "memory.limit_in_bytes", "67108864"},
		{"memory", "memory.memsw.limit_in_bytes", "134217728"},
		{"memory", "memory.soft_limit_in_bytes", "33554432"},
		{"memory", "memory.swappiness", "10"},
		{"cpu", "cpu.shares", "512"},
		{"cpu", "cpu.cfs_quota_us", "50000"},
		{"cpu", "cpu.cfs_period_us", "100000"},
		{"cpuset", "cpuset.cpus", "0"},
		{"cpuset", "cpuset.mems", "0"},
	} {
		if got := readT(t, paths[c.ctrl], c.file); got != c.want {
			t.Errorf("%s = %q, want %q", c.file, got, c.want)
		}
	}
	if oom := readT(t, paths["memory"], "memory.oom_control"); !strings.Contains(oom, "oom_kill_disable 1") {
		t.Errorf("memory.oom_control = %q", oom)
	}
	pids, err := m.Pids()
	if err != nil || len(pids) != 1 || pids[0] != pid {
		t.Fatalf("Pids = %v, %v; want [%d]", pids, err, pid)
	}

	// Freeze: the busy loop stops consuming CPU; thaw: it resumes.
	time.Sleep(100 * time.Millisecond)
	if err := m.Freeze(); err != nil {
		t.Fatal(err)
	}
	if st, err := m.State(); err != nil || st != Frozen {
		t.Fatalf("State = %q, %v", st, err)
	}
	before := cpuTicks(t, pid)
	time.Sleep(300 * time.Millisecond)
	if after := cpuTicks(t, pid); after != before {
		t.Fatalf("frozen process used CPU: %d → %d ticks", before, after)
	}
	if err := m.Thaw(); err != nil {
		t.Fatal(err)
	}
	if st, err := m.State(); err != nil || st != Thawed {
		t.Fatalf("State after thaw = %q, %v", st, err)
	}
	before = cpuTicks(t, pid)
	time.Sleep(300 * time.Millisecond)
	if after := cpuTicks(t, pid); after == before {
		t.Fatal("thawed process did not run")
	}

	s, err := m.Stats()
	if err != nil {
		t.Fatal(err)
	}
	if s.Pids.Current != 1 || s.Pids.Limit != 50 {
		t.Errorf("pids stats %+v", s.Pids)
	}
	if s.Memory.Usage.Limit != 64<<20 || s.Memory.Swap.Limit != 128<<20 || len(s.Memory.Raw) == 0 {
		t.Errorf("memory stats %+v / %+v", s.Memory.Usage, s.Memory.Swap)
	}
	if s.CPU.Usage.Total == 0 || s.CPU.Usage.User+s.CPU.Usage.Kernel == 0 || len(s.CPU.Usage.Percpu) == 0 {
		t.Errorf("cpu stats %+v", s.CPU.Usage)
	}
	if len(s.CPUSet.CPUs) != 1 || s.CPUSet.CPUs[0] != 0 {
		t.Errorf("cpuset stats %+v", s.CPUSet)
	}

	// A manager loaded from the persisted paths sees and removes the same.
	l, err := Load(DefaultRoot, paths)
	if err != nil {
		t.Fatal(err)
	}
	if l.Mode() != m.Mode() {
		t.Errorf("loaded mode %v, want %v", l.Mode(), m.Mode())
	}
	if p, err := l.Pids(); err != nil || len(p) != 1 {
		t.Fatalf("loaded Pids = %v, %v", p, err)
	}
	if err := l.Destroy(); !errdefs.IsFailedPrecondition(err) {
		t.Fatalf("Destroy with a live process = %v, want failed precondition", err)
	}
	_ = proc.Process.Kill()
	_, _ = proc.Process.Wait()
	if err := l.Destroy(); err != nil {
		t.Fatal(err)
	}
	assertGone(t, paths)
	if err := l.Destroy(); err != nil {
		t.Fatalf("second Destroy: %v", err)
	}
	if _, err := l.Stats(); !errdefs.IsNotFound(err) {
		t.Fatalf("Stats of removed cgroup = %v, want not found", err)
	}
}

func TestV1MemorySwapOrdering(t *testing.T) {
	m, _ := newV1ForTest(t, nil)
	if err := m.Apply(-1); err != nil {
		t.Fatal(err)
	}
	dir := m.Paths()["memory"]
	for _, step := range []struct{ mem, swap int64 }{
		{64 << 20, 128 << 20},
		{256 << 20, 512 << 20}, // growing: swap must go first
		{32 << 20, 64 << 20},   // shrinking: memory must go first
		{-1, 0},                // unlimited memory lifts swap too
	} {
		r := &specs.LinuxResources{Memory: &specs.LinuxMemory{Limit: i64(step.mem)}}
		if step.swap != 0 {
			r.Memory.Swap = i64(step.swap)
		}
		if err := m.Set(r); err != nil {
			t.Fatalf("Set memory %d swap %d: %v", step.mem, step.swap, err)
		}
		wantMem, wantSwap := strconv.FormatInt(step.mem, 10), strconv.FormatInt(step.swap, 10)
		if step.mem == -1 {
			wantMem, wantSwap = "9223372036854771712", "9223372036854771712"
		}
		if got := readT(t, dir, "memory.limit_in_bytes"); got != wantMem {
			t.Errorf("limit = %s, want %s", got, wantMem)
		}
		if got := readT(t, dir, "memory.memsw.limit_in_bytes"); got != wantSwap {
			t.Errorf("memsw = %s, want %s", got, wantSwap)
		}
	}
}

func TestV1CPUExtras(t *testing.T) {
	m, _ := newV1ForTest(t, nil)
	r := &specs.LinuxResources{CPU: &specs.LinuxCPU{RealtimePeriod: u64(1000000), RealtimeRuntime: i64(10000), Idle: i64(1), Burst: u64(5000), Quota: i64(20000)}}
	if err := m.Apply(-1); err != nil {
		t.Fatal(err)
	}
	if err := m.Set(r); err != nil {
		t.Fatal(err)
	}
	dir := m.Paths()["cpu"]
	for f, want := range map[string]string{"cpu.rt_period_us": "1000000", "cpu.rt_runtime_us": "10000", "cpu.idle": "1", "cpu.cfs_burst_us": "5000"} {
		if got := readT(t, dir, f); got != want {
			t.Errorf("%s = %q, want %q", f, got, want)
		}
	}
	// Kernel-side bound: out-of-range shares are an invalid argument.
	err := m.Set(&specs.LinuxResources{CPU: &specs.LinuxCPU{Shares: u64(1 << 20)}})
	if !errdefs.IsInvalidArgument(err) {
		t.Fatalf("huge shares = %v", err)
	}
}

func TestV1Devices(t *testing.T) {
	rules := []specs.LinuxDeviceCgroup{
		{Allow: false, Access: "rwm"},
		{Allow: true, Type: "c", Major: i64(1), Minor: i64(3), Access: "rwm"},
	}
	m, _ := newV1ForTest(t, &specs.LinuxResources{Devices: rules})
	// The process waits for a line on stdin, then uses /dev/null (allowed)
	// and /dev/zero (denied).
	cmd := exec.Command("sh", "-c", "read x; echo hi >/dev/null || exit 3; head -c1 /dev/zero >/dev/null 2>&1 && exit 4; exit 0")
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	if err := m.Apply(cmd.Process.Pid); err != nil {
		t.Fatal(err)
	}
	if err := m.Set(&specs.LinuxResources{Devices: rules}); err != nil {
		t.Fatal(err)
	}
	if got := readT(t, m.Paths()["devices"], "devices.list"); got != "c 1:3 rwm" {
		t.Errorf("devices.list = %q", got)
	}
	if _, err := stdin.Write([]byte("go\n")); err != nil {
		t.Fatal(err)
	}
	err = cmd.Wait()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	switch code {
	case 0:
	case 3:
		t.Fatal("/dev/null was denied though allowed")
	case 4:
		t.Fatal("/dev/zero was readable though denied")
	default:
		t.Fatalf("probe exited %d", code)
	}
}

func TestV1Blkio(t *testing.T) {
	m, _ := newV1ForTest(t, nil)
	if err := m.Apply(-1); err != nil {
		t.Fatal(err)
	}
	maj, min := diskDevice(t)
	dev := specs.LinuxBlockIODevice{Major: maj, Minor: min}
	r := &specs.LinuxResources{BlockIO: &specs.LinuxBlockIO{
		ThrottleReadBpsDevice:   []specs.LinuxThrottleDevice{{LinuxBlockIODevice: dev, Rate: 1 << 20}},
		ThrottleWriteIOPSDevice: []specs.LinuxThrottleDevice{{LinuxBlockIODevice: dev, Rate: 100}},
	}}
	if err := m.Set(r); err != nil {
		t.Fatal(err)
	}
	dir := m.Paths()["blkio"]
	want := strconv.FormatInt(maj, 10) + ":" + strconv.FormatInt(min, 10)
	if got := readT(t, dir, "blkio.throttle.read_bps_device"); got != want+" 1048576" {
		t.Errorf("read_bps_device = %q", got)
	}
	if got := readT(t, dir, "blkio.throttle.write_iops_device"); got != want+" 100" {
		t.Errorf("write_iops_device = %q", got)
	}
	// Weights need CFQ or BFQ; without either, a clear not-implemented error.
	err := m.Set(&specs.LinuxResources{BlockIO: &specs.LinuxBlockIO{Weight: u16(300)}})
	_, e1 := os.Stat(filepath.Join(dir, "blkio.weight"))
	_, e2 := os.Stat(filepath.Join(dir, "blkio.bfq.weight"))
	if e1 == nil || e2 == nil {
		if err != nil {
			t.Fatalf("blkio weight: %v", err)
		}
	} else if !errdefs.IsNotImplemented(err) {
		t.Fatalf("blkio weight without CFQ/BFQ = %v, want not implemented", err)
	}
}

// diskDevice finds a whole disk (not loop/zram/ram) to throttle.
func diskDevice(t *testing.T) (int64, int64) {
	t.Helper()
	ents, err := os.ReadDir("/sys/block")
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		n := e.Name()
		if strings.HasPrefix(n, "loop") || strings.HasPrefix(n, "zram") || strings.HasPrefix(n, "ram") {
			continue
		}
		b, err := os.ReadFile(filepath.Join("/sys/block", n, "dev"))
		if err != nil {
			continue
		}
		a, c, ok := strings.Cut(strings.TrimSpace(string(b)), ":")
		if !ok {
			continue
		}
		maj, _ := strconv.ParseInt(a, 10, 64)
		min, _ := strconv.ParseInt(c, 10, 64)
		return maj, min
	}
	t.Fatal("no disk in /sys/block")
	return 0, 0
}

func TestV1Refusals(t *testing.T) {
	needV1Host(t)
	mounted := mountedV1(t)
	missing := func(ctrl string) error {
		if mounted[ctrl] {
			return nil
		}
		return errdefs.ErrFailedPrecondition
	}
	for _, tc := range []struct {
		name  string
		r     specs.LinuxResources
		class error
	}{
		{"negative pids", specs.LinuxResources{Pids: &specs.LinuxPids{Limit: i64(-5)}}, errdefs.ErrInvalidArgument},
		{"negative memory", specs.LinuxResources{Memory: &specs.LinuxMemory{Limit: i64(-2)}}, errdefs.ErrInvalidArgument},
		{"swap below memory", specs.LinuxResources{Memory: &specs.LinuxMemory{Limit: i64(2 << 20), Swap: i64(1 << 20)}}, errdefs.ErrInvalidArgument},
		{"swappiness", specs.LinuxResources{Memory: &specs.LinuxMemory{Swappiness: u64(101)}}, errdefs.ErrInvalidArgument},
		{"bad cpus", specs.LinuxResources{CPU: &specs.LinuxCPU{Cpus: "0-"}}, errdefs.ErrInvalidArgument},
		{"bad mems", specs.LinuxResources{CPU: &specs.LinuxCPU{Mems: "a"}}, errdefs.ErrInvalidArgument},
		{"reverse range", specs.LinuxResources{CPU: &specs.LinuxCPU{Cpus: "3-1"}}, errdefs.ErrInvalidArgument},
		{"tiny quota", specs.LinuxResources{CPU: &specs.LinuxCPU{Quota: i64(10)}}, errdefs.ErrInvalidArgument},
		{"period out of range", specs.LinuxResources{CPU: &specs.LinuxCPU{Period: u64(5)}}, errdefs.ErrInvalidArgument},
		{"idle 2", specs.LinuxResources{CPU: &specs.LinuxCPU{Idle: i64(2)}}, errdefs.ErrInvalidArgument},
		{"device type", specs.LinuxResources{Devices: []specs.LinuxDeviceCgroup{{Type: "x", Access: "r"}}}, errdefs.ErrInvalidArgument},
		{"device access", specs.LinuxResources{Devices: []specs.LinuxDeviceCgroup{{Type: "c", Access: "rx"}}}, errdefs.ErrInvalidArgument},
		{"blkio weight range", specs.LinuxResources{BlockIO: &specs.LinuxBlockIO{Weight: u16(5)}}, errdefs.ErrInvalidArgument},
		{"unified on v1", specs.LinuxResources{Unified: map[string]string{"memory.high": "1"}}, errdefs.ErrInvalidArgument},
		{"bad page size", specs.LinuxResources{HugepageLimits: []specs.LinuxHugepageLimit{{Pagesize: "2M", Limit: 1}}}, errdefs.ErrInvalidArgument},
		{"net_cls", specs.LinuxResources{Network: &specs.LinuxNetwork{ClassID: u32(0x100001)}}, missing("net_cls")},
		{"net_prio", specs.LinuxResources{Network: &specs.LinuxNetwork{Priorities: []specs.LinuxInterfacePriority{{Name: "eth0", Priority: 5}}}}, missing("net_prio")},
		{"hugetlb", specs.LinuxResources{HugepageLimits: []specs.LinuxHugepageLimit{{Pagesize: "2MB", Limit: 1 << 21}}}, missing("hugetlb")},
		{"rdma", specs.LinuxResources{Rdma: map[string]specs.LinuxRdma{"mlx5_0": {HcaHandles: u32(1)}}}, missing("rdma")},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := "/" + randName(t, "skiff-test-")
			m, err := New(Config{Path: path, Resources: &tc.r})
			if tc.class == nil {
				if err != nil {
					t.Fatalf("New: %v", err)
				}
				return
			}
			if !errors.Is(err, tc.class) {
				t.Fatalf("New = %v, want %v", err, tc.class)
			}
			if m != nil {
				t.Fatal("New returned a manager with an error")
			}
			for c := range mounted {
				if _, err := os.Stat(filepath.Join(DefaultRoot, c, path)); !os.IsNotExist(err) {
					t.Errorf("refused config left %s", filepath.Join(DefaultRoot, c, path))
				}
			}
			t.Log(err)
		})
	}
}

// TestV1MemoryLimitEnforced checks the limit bites: a process that touches
// more than it is OOM-killed, and the kill is counted.
func TestV1MemoryLimitEnforced(t *testing.T) {
	if _, err := exec.LookPath("python3"); err != nil {
		t.Fatal("python3 is needed to allocate memory in the probe")
	}
	res := &specs.LinuxResources{Memory: &specs.LinuxMemory{Limit: i64(32 << 20), Swap: i64(32 << 20)}}
	m, _ := newV1ForTest(t, res)
	cmd := exec.Command("sh", "-c", `read x; exec python3 -c "b = b'x' * (128 << 20); print(len(b))"`)
	in, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	if err := m.Apply(cmd.Process.Pid); err != nil {
		t.Fatal(err)
	}
	if err := m.Set(res); err != nil {
		t.Fatal(err)
	}
	if n, err := m.OOMKillCount(); err != nil || n != 0 {
		t.Fatalf("OOMKillCount before = %d, %v", n, err)
	}
	_, _ = in.Write([]byte("go\n"))
	err = cmd.Wait()
	ee, ok := err.(*exec.ExitError)
	if !ok || ee.Sys().(syscall.WaitStatus).Signal() != syscall.SIGKILL {
		t.Fatalf("probe over its memory limit ended with %v, want SIGKILL by the OOM killer", err)
	}
	if n, err := m.OOMKillCount(); err != nil || n != 1 {
		t.Fatalf("OOMKillCount after = %d, %v; want 1", n, err)
	}
	s, err := m.Stats()
	if err != nil {
		t.Fatal(err)
	}
	// (This kernel leaves failcnt at 0 on OOM, so only the peak is checked.)
	if s.Memory.Usage.Max != 32<<20 || s.Memory.Usage.Limit != 32<<20 {
		t.Errorf("memory stats after OOM: usage %+v swap %+v", s.Memory.Usage, s.Memory.Swap)
	}
}

// TestV1Nested: a multi-level path is created in every hierarchy (cpuset
// levels get cpus/mems from their parents so a process can join), Pids is
// recursive, and Destroy removes the leaf and what is below it, not the
// parents (as runc).
func TestV1Nested(t *testing.T) {
	needV1Host(t)
	top := "/" + randName(t, "skiff-test-")
	m, err := New(Config{Path: top + "/a/b"})
	if err != nil {
		t.Fatal(err)
	}
	paths := m.Paths()
	t.Cleanup(func() {
		_ = m.Destroy()
		for _, p := range paths {
			_ = os.Remove(filepath.Dir(p))
			_ = os.Remove(filepath.Dir(filepath.Dir(p)))
		}
		for _, p := range paths {
			if _, err := os.Stat(filepath.Dir(filepath.Dir(p))); !os.IsNotExist(err) {
				t.Errorf("left %s behind", filepath.Dir(filepath.Dir(p)))
			}
		}
	})
	p1 := startProc(t, "exec sleep 100")
	p2 := startProc(t, "exec sleep 100")
	if err := m.Apply(p1.Process.Pid); err != nil {
		t.Fatal(err)
	}
	for _, p := range paths {
		if err := os.Mkdir(filepath.Join(p, "sub"), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	cs := filepath.Join(paths["cpuset"], "sub")
	for _, f := range []string{"cpuset.cpus", "cpuset.mems"} {
		v := readT(t, paths["cpuset"], f)
		if v == "" {
			t.Fatalf("%s of a new cpuset cgroup is empty", f)
		}
		if err := writeFile(cs, f, v); err != nil {
			t.Fatal(err)
		}
	}
	sub, err := Load(DefaultRoot, func() map[string]string {
		out := map[string]string{}
		for k, p := range paths {
			out[k] = filepath.Join(p, "sub")
		}
		return out
	}())
	if err != nil {
		t.Fatal(err)
	}
	if err := sub.Apply(p2.Process.Pid); err != nil {
		t.Fatal(err)
	}
	pids, err := m.Pids()
	if err != nil || len(pids) != 2 {
		t.Fatalf("recursive Pids = %v, %v; want both sleeps", pids, err)
	}
	for _, p := range []*exec.Cmd{p1, p2} {
		_ = p.Process.Kill()
		_, _ = p.Process.Wait()
	}
	if err := m.Destroy(); err != nil {
		t.Fatal(err)
	}
	assertGone(t, paths)
	for _, p := range paths {
		if _, err := os.Stat(filepath.Dir(p)); err != nil {
			t.Errorf("Destroy removed the parent %s: %v", filepath.Dir(p), err)
		}
	}
}
