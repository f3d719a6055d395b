package cgroups

import (
	"bufio"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/skiff-containers/skiff/errdefs"
)

// realCgroup2 returns the host's cgroup2 mountpoint (on a hybrid host the
// controller-less one at /sys/fs/cgroup/unified).
func realCgroup2(t *testing.T) string {
	t.Helper()
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fs := strings.Fields(sc.Text())
		for i, x := range fs {
			if x == "-" && i+1 < len(fs) && fs[i+1] == "cgroup2" {
				return fs[4]
			}
		}
	}
	t.Fatal("no cgroup2 mount on this host")
	return ""
}

// TestV2RealKernel drives the v2 manager, unchanged, on the real cgroup2
// mount: on a hybrid host it has no controllers, but the core features
// (cgroup.procs, the v2 freezer, device filters, cpu.stat) are all there.
func TestV2RealKernel(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Fatal("needs root")
	}
	root := realCgroup2(t)
	rules := []specs.LinuxDeviceCgroup{{Allow: false, Access: "rwm"}, {Allow: true, Type: "c", Major: i64(1), Minor: i64(3), Access: "rwm"}}
	res := &specs.LinuxResources{Devices: rules}
	path := "/" + randName(t, "skiff-test-") + "/nested"
	m, err := New(Config{Root: root, Path: path, Resources: res})
	if err != nil {
		t.Fatal(err)
	}
	if m.Mode() != Unified {
		t.Fatalf("mode %v at %s", m.Mode(), root)
	}
	dir := m.Paths()[""]
	t.Cleanup(func() {
		_ = m.Destroy()
		_ = os.Remove(strings.TrimSuffix(dir, "/nested"))
		assertGone(t, m.Paths())
	})
	busy := startProc(t, "while :; do :; done")
	probe := exec.Command("sh", "-c", "read x; echo hi >/dev/null || exit 3; head -c1 /dev/zero >/dev/null 2>&1 && exit 4; exit 0")
	in, err := probe.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := probe.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = probe.Process.Kill(); _ = probe.Wait() })
	if err := m.Apply(busy.Process.Pid); err != nil {
		t.Fatal(err)
	}
	if err := m.Apply(probe.Process.Pid); err != nil {
		t.Fatal(err)
	}
	if err := m.Set(res); err != nil {
		t.Fatal(err)
	}
	if got := procCgroups(t, busy.Process.Pid)[""]; got != strings.TrimPrefix(dir, root) {
		t.Fatalf("/proc/pid/cgroup 0:: = %q, want %q", got, strings.TrimPrefix(dir, root))
	}
	pids, err := m.Pids()
	if err != nil || len(pids) != 2 {
		t.Fatalf("Pids = %v, %v", pids, err)
	}
	_, _ = in.Write([]byte("go\n"))
	if err := probe.Wait(); err != nil {
		t.Fatalf("device probe in the filtered cgroup: %v (exit 3: null denied, 4: zero allowed)", err)
	}

	// The real v2 freezer.
	if err := m.Freeze(); err != nil {
		t.Fatal(err)
	}
	if st, err := m.State(); err != nil || st != Frozen {
		t.Fatalf("State = %q, %v", st, err)
	}
	before := cpuTicks(t, busy.Process.Pid)
	time.Sleep(300 * time.Millisecond)
	if after := cpuTicks(t, busy.Process.Pid); after != before {
		t.Fatalf("frozen process ran: %d → %d", before, after)
	}
	if err := m.Thaw(); err != nil {
		t.Fatal(err)
	}
	if st, err := m.State(); err != nil || st != Thawed {
		t.Fatalf("State after thaw = %q, %v", st, err)
	}
	time.Sleep(200 * time.Millisecond)
	s, err := m.Stats()
	if err != nil {
		t.Fatal(err)
	}
	if s.CPU.Usage.Total == 0 {
		t.Errorf("cpu usage 0 after running a busy loop: %+v", s.CPU)
	}

	// No controllers are enabled on a hybrid host's cgroup2: a limit is a
	// clear precondition error, not a write into nowhere.
	avail, _ := readFile(root, "cgroup.controllers")
	if !strings.Contains(avail, "pids") {
		err := m.Set(&specs.LinuxResources{Pids: &specs.LinuxPids{Limit: i64(10)}})
		if !errdefs.IsFailedPrecondition(err) {
			t.Fatalf("pids limit without the pids controller = %v", err)
		}
	}

	if err := m.Destroy(); !errdefs.IsFailedPrecondition(err) {
		t.Fatalf("Destroy with a live process = %v", err)
	}
	_ = busy.Process.Kill()
	_, _ = busy.Process.Wait()
	if err := m.Destroy(); err != nil {
		t.Fatal(err)
	}
	assertGone(t, m.Paths())
}
