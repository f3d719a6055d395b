package test

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/skiff-containers/skiff/internal/testutil"
)

func limitedResources(s *specs.Spec) {
	s.Linux.Resources.Memory = &specs.LinuxMemory{Limit: ptr(int64(64 << 20))}
	s.Linux.Resources.Pids = &specs.LinuxPids{Limit: ptr(int64(100))}
	s.Linux.Resources.CPU = &specs.LinuxCPU{Shares: ptr(uint64(512)), Quota: ptr(int64(50000)), Period: ptr(uint64(100000)), Cpus: "0"}
}

// TestCgroupsCompare compares what the container sees of its cgroups.
func TestCgroupsCompare(t *testing.T) {
	t.Parallel()
	probes := []probe{
		{name: "proc-self-cgroup", args: []string{"cat", "/proc/self/cgroup"}, normalize: sortedLines,
			check: wantContains("<ID>")},
		{name: "limits", args: []string{"sh", "-c", "cd /sys/fs/cgroup && cat memory/memory.limit_in_bytes pids/pids.max cpu/cpu.shares cpu/cpu.cfs_quota_us cpu/cpu.cfs_period_us cpuset/cpuset.cpus"},
			mutate: func(t *testing.T, b string, s *specs.Spec) { limitedResources(s) },
			check:  wantContains("67108864\n100\n512\n50000\n100000\n0\n")},
		{name: "cgroup-tree", args: []string{"sh", "-c", "cat /sys/fs/cgroup/unified/cgroup.procs | wc -l; ls /sys/fs/cgroup"},
			check: wantContains("cpu\n", "memory\n", "pids\n")},
		{name: "devices-list", args: []string{"cat", "/sys/fs/cgroup/devices/devices.list"}, normalize: sortedLines,
			check: wantContains("c 1:3 rwm")},
		{name: "device-access", args: []string{"sh", "-c", "head -c 1 /dev/zero | wc -c; echo x > /dev/null; echo $?"},
			check: wantContains("1\n0")},
	}
	for _, p := range probes {
		p := p
		t.Run(p.name, func(t *testing.T) {
			t.Parallel()
			p.run(t)
		})
	}
}

// TestCgroupsPath runs a container with an explicit linux.cgroupsPath and
// checks from the host that its cgroups exist with the limits while it runs
// and are gone after delete.
func TestCgroupsPath(t *testing.T) {
	t.Parallel()
	forEachRuntime(t, func(t *testing.T, rt *testutil.Runtime) {
		bundle, spec := testutil.BusyboxBundle(t, "sleep", "600")
		id := testutil.ContainerID(t)
		parent := "skiff-e2e-" + id
		cgPath := "/" + parent + "/" + id
		spec.Linux.CgroupsPath = cgPath
		limitedResources(spec)
		testutil.WriteSpec(t, bundle, spec)
		testutil.CheckNoLeftovers(t, testutil.Leftovers{
			StateRoot: rt.Root, Dirs: []string{bundle}, CgroupNames: []string{id}, CgroupPaths: []string{cgPath},
			Runtime: rt, IDs: []string{id},
		})
		// The parent is ours to remove; runtimes leave it. Registered after
		// the leftover check, it runs before it.
		t.Cleanup(func() {
			for _, h := range []string{"cpu", "cpuacct", "cpuset", "memory", "devices", "freezer", "blkio", "pids", "systemd", "unified", "perf_event", "net_cls", "net_prio", "hugetlb", "rdma", "misc"} {
				p := filepath.Join("/sys/fs/cgroup", h, parent)
				for deadline := time.Now().Add(3 * time.Second); ; time.Sleep(20 * time.Millisecond) {
					if err := os.Remove(p); err == nil || os.IsNotExist(err) || time.Now().After(deadline) {
						break
					}
				}
			}
		})
		ctx := testContext(t, 60*time.Second)
		if err := rt.Create(ctx, id, bundle); err != nil {
			t.Fatal(err)
		}
		st, err := rt.State(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		for file, want := range map[string]string{
			"memory/" + cgPath + "/memory.limit_in_bytes": "67108864",
			"pids/" + cgPath + "/pids.max":                "100",
			"cpu/" + cgPath + "/cpu.shares":               "512",
			"cpuset/" + cgPath + "/cpuset.cpus":           "0",
		} {
			data, err := os.ReadFile(filepath.Join("/sys/fs/cgroup", file))
			if err != nil || strings.TrimSpace(string(data)) != want {
				t.Errorf("%s = %q, %v; want %s", file, data, err, want)
			}
		}
		procs, err := os.ReadFile(filepath.Join("/sys/fs/cgroup/pids", cgPath, "cgroup.procs"))
		if err != nil || !strings.Contains(string(procs), strconv.Itoa(st.Pid)) {
			t.Errorf("pids cgroup.procs = %q, %v; want the init pid %d", procs, err, st.Pid)
		}
		if err := rt.Delete(ctx, id, true); err != nil {
			t.Fatal(err)
		}
	})
}

// TestUpdate changes a running container's resources the way containerd's
// runc client does (`update --resources - ID` with the JSON on stdin) and
// with flags, and checks the cgroup files from the host.
func TestUpdate(t *testing.T) {
	t.Parallel()
	forEachRuntime(t, func(t *testing.T, rt *testutil.Runtime) {
		bundle, spec := testutil.BusyboxBundle(t, "sleep", "600")
		limitedResources(spec)
		testutil.WriteSpec(t, bundle, spec)
		id := testutil.ContainerID(t)
		guard(t, rt, id, bundle)
		ctx := testContext(t, 60*time.Second)
		if _, stderr, code := rt.Run(ctx, "run", "-d", "--bundle", bundle, id); code != 0 {
			t.Fatalf("run -d: exit %d: %s", code, stderr)
		}
		st, err := rt.State(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		res := specs.LinuxResources{
			Memory: &specs.LinuxMemory{Limit: ptr(int64(128 << 20))},
			Pids:   &specs.LinuxPids{Limit: ptr(int64(50))},
			CPU:    &specs.LinuxCPU{Shares: ptr(uint64(256))},
		}
		data, _ := json.Marshal(res)
		cmd := rt.Command(ctx, "update", "--resources", "-", id)
		cmd.Stdin = strings.NewReader(string(data))
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("update --resources -: %v: %s", err, out)
		}
		check := func(file, want string) {
			t.Helper()
			ctrl, name, _ := strings.Cut(file, "/")
			got, err := os.ReadFile(cgroupFile(t, st.Pid, ctrl, name))
			if err != nil || strings.TrimSpace(string(got)) != want {
				t.Errorf("%s = %q, %v; want %s", file, got, err, want)
			}
		}
		check("memory/memory.limit_in_bytes", "134217728")
		check("pids/pids.max", "50")
		check("cpu/cpu.shares", "256")
		check("cpu/cpu.cfs_quota_us", "50000")
		if _, stderr, code := rt.Run(ctx, "update", "--pids-limit", "70", "--cpu-quota", "20000", id); code != 0 {
			t.Fatalf("update --pids-limit: exit %d: %s", code, stderr)
		}
		check("pids/pids.max", "70")
		check("cpu/cpu.cfs_quota_us", "20000")
		check("memory/memory.limit_in_bytes", "134217728")
		if _, stderr, code := rt.Run(ctx, "update", "--pids-limit", "10", "no-such-container"); code != 1 {
			t.Errorf("update of an unknown container: exit %d (%s), want 1", code, stderr)
		}
		if err := rt.Delete(ctx, id, true); err != nil {
			t.Fatal(err)
		}
	})
}
