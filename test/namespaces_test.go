package test

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/skiff-containers/skiff/internal/testutil"
)

const (
	userNSHostID = 100000
	userNSSize   = 65536
)

// TestUserNamespace runs a container whose root is host uid/gid 100000 and
// compares, through both runtimes, what the container sees and which host
// ids its process has.
func TestUserNamespace(t *testing.T) {
	t.Parallel()
	mutate := func(t *testing.T, bundle string, spec *specs.Spec) {
		spec.Linux.Namespaces = append(spec.Linux.Namespaces, specs.LinuxNamespace{Type: specs.UserNamespace})
		spec.Linux.UIDMappings = []specs.LinuxIDMapping{{ContainerID: 0, HostID: userNSHostID, Size: userNSSize}}
		spec.Linux.GIDMappings = []specs.LinuxIDMapping{{ContainerID: 0, HostID: userNSHostID, Size: userNSSize}}
		// sysfs cannot be mounted in a user namespace that does not own
		// the network namespace; runc bind-mounts it instead. The cgroup
		// mount is dropped, as in runc's rootless spec.
		var mounts []specs.Mount
		for _, m := range spec.Mounts {
			if m.Destination != "/sys/fs/cgroup" {
				mounts = append(mounts, m)
			}
		}
		spec.Mounts = mounts
	}
	t.Run("sees", func(t *testing.T) {
		t.Parallel()
		probe{
			args:   []string{"sh", "-c", "cat /proc/self/uid_map /proc/self/gid_map; id; cat /proc/self/status | grep -E '^(Cap|Uid|Gid)'; ls -ln /etc/passwd; readlink /proc/self/ns/user >/dev/null && echo ok"},
			mutate: mutate,
			normalize: func(s string) string {
				return strings.Join(strings.Fields(s), " ")
			},
			check: wantContains(fmt.Sprintf("0 %d %d", userNSHostID, userNSSize), "uid=0(root)", "65534"),
		}.run(t)
	})
	t.Run("mounts", func(t *testing.T) {
		t.Parallel()
		probe{args: []string{"cat", "/proc/self/mountinfo"}, mutate: mutate, normalize: mountTable,
			check: wantContains("/proc proc", "/dev/pts devpts")}.run(t)
	})
	t.Run("dev", func(t *testing.T) {
		t.Parallel()
		// A known difference: runc 1.1 mounts /dev/mqueue while its init
		// still has the host's (unmapped) gid, so the directory shows the
		// overflow group "nogroup"; skiff-runtime mounts it as the
		// container's root, root:root. Only that group is left out of the
		// comparison.
		mqueueGroup := regexp.MustCompile(`(?m)^(drwxrwxrwt root) (nogroup|root) mqueue$`)
		normalize := func(s string) string {
			return mqueueGroup.ReplaceAllString(devListing(s), "$1 <group> mqueue")
		}
		probe{args: []string{"ls", "-la", "/dev"}, mutate: mutate, normalize: normalize,
			check: wantContains("null", "ptmx", "<group> mqueue")}.run(t)
	})
	t.Run("host-ids", func(t *testing.T) {
		t.Parallel()
		forEachRuntime(t, func(t *testing.T, rt *testutil.Runtime) {
			bundle, spec := testutil.BusyboxBundle(t, "sleep", "600")
			mutate(t, bundle, spec)
			testutil.WriteSpec(t, bundle, spec)
			id := testutil.ContainerID(t)
			guard(t, rt, id, bundle)
			ctx := testContext(t, 60*time.Second)
			if err := rt.Create(ctx, id, bundle); err != nil {
				t.Fatal(err)
			}
			defer rt.Delete(ctx, id, true)
			st, err := rt.State(ctx, id)
			if err != nil {
				t.Fatal(err)
			}
			status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", st.Pid))
			if err != nil {
				t.Fatal(err)
			}
			want := fmt.Sprintf("%d %d %d %d", userNSHostID, userNSHostID, userNSHostID, userNSHostID)
			for _, l := range strings.Split(string(status), "\n") {
				k, v, _ := strings.Cut(l, ":")
				if (k == "Uid" || k == "Gid") && strings.Join(strings.Fields(v), " ") != want {
					t.Errorf("host view of the container's init: %s, want %s", l, want)
				}
			}
			uidMap, _ := os.ReadFile(fmt.Sprintf("/proc/%d/uid_map", st.Pid))
			if got := strings.Join(strings.Fields(string(uidMap)), " "); got != fmt.Sprintf("0 %d %d", userNSHostID, userNSSize) {
				t.Errorf("uid_map = %q", got)
			}
			if err := rt.Delete(ctx, id, true); err != nil {
				t.Fatal(err)
			}
		})
	})
}

// newNetNS creates a network namespace pinned by a bind mount on a file in
// dir, with a loopback that is up (so that it differs from a fresh one), and
// removes it when the test ends.
func newNetNS(t *testing.T, dir string) string {
	t.Helper()
	path := filepath.Join(dir, "netns")
	if err := os.WriteFile(path, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	// unshare --net=FILE pins the namespace on FILE.
	if out, err := exec.Command("unshare", "--net="+path, "ip", "link", "set", "lo", "up").CombinedOutput(); err != nil {
		t.Fatalf("create network namespace: %v: %s", err, out)
	}
	t.Cleanup(func() {
		if err := syscall.Unmount(path, syscall.MNT_DETACH); err != nil {
			t.Errorf("unmount %s: %v", path, err)
		}
	})
	return path
}

// TestJoinNetNS joins a network namespace given by path and checks that the
// container is in it.
func TestJoinNetNS(t *testing.T) {
	t.Parallel()
	forEachRuntime(t, func(t *testing.T, rt *testutil.Runtime) {
		nsDir := t.TempDir()
		bundle, spec := testutil.BusyboxBundle(t, "sh", "-c", "readlink /proc/self/ns/net; cat /sys/class/net/lo/operstate")
		id := testutil.ContainerID(t)
		guard(t, rt, id, bundle, nsDir)
		// After guard, so that its cleanup (the unmount) runs before the check.
		nsPath := newNetNS(t, nsDir)
		for i, n := range spec.Linux.Namespaces {
			if n.Type == specs.NetworkNamespace {
				spec.Linux.Namespaces[i].Path = nsPath
			}
		}
		testutil.WriteSpec(t, bundle, spec)
		ctx := testContext(t, 60*time.Second)
		stdout, stderr, code := rt.Run(ctx, "run", "--bundle", bundle, id)
		if code != 0 {
			t.Fatalf("run: exit %d: %s", code, stderr)
		}
		var st syscall.Stat_t
		if err := syscall.Stat(nsPath, &st); err != nil {
			t.Fatal(err)
		}
		lines := nonEmptyLines(stdout)
		if want := fmt.Sprintf("net:[%d]", st.Ino); len(lines) != 2 || lines[0] != want || lines[1] != "unknown" {
			t.Errorf("container output %q; want %s and lo's operstate \"unknown\" (up)", lines, want)
		}
	})
}

// TestCgroupNamespace compares /proc/self/cgroup with a cgroup namespace:
// every path must read "/".
func TestCgroupNamespace(t *testing.T) {
	t.Parallel()
	probe{
		args: []string{"cat", "/proc/self/cgroup"},
		mutate: func(t *testing.T, bundle string, spec *specs.Spec) {
			spec.Linux.Namespaces = append(spec.Linux.Namespaces, specs.LinuxNamespace{Type: specs.CgroupNamespace})
		},
		normalize: sortedLines,
		check: func(t *testing.T, out string) {
			for _, l := range nonEmptyLines(out) {
				if !strings.HasSuffix(l, ":/") {
					t.Errorf("runc, cgroup namespace: %q is not the namespace root", l)
				}
			}
		},
	}.run(t)
}

// TestPIDNamespace checks pid 1 inside a pid namespace, and the host's pid
// without one.
func TestPIDNamespace(t *testing.T) {
	t.Parallel()
	t.Run("new", func(t *testing.T) {
		t.Parallel()
		// pid 1, and its parent is outside the namespace (0).
		probe{args: []string{"sh", "-c", "echo $$ $PPID; grep NSpid /proc/self/status"},
			normalize: trimSpace, check: wantContains("1 0\n")}.run(t)
	})
	t.Run("host", func(t *testing.T) {
		t.Parallel()
		forEachRuntime(t, func(t *testing.T, rt *testutil.Runtime) {
			bundle, spec := testutil.BusyboxBundle(t, "sh", "-c", "echo $$; readlink /proc/self/ns/pid")
			var ns []specs.LinuxNamespace
			for _, n := range spec.Linux.Namespaces {
				if n.Type != specs.PIDNamespace {
					ns = append(ns, n)
				}
			}
			spec.Linux.Namespaces = ns
			testutil.WriteSpec(t, bundle, spec)
			id := testutil.ContainerID(t)
			guard(t, rt, id, bundle)
			ctx := testContext(t, 60*time.Second)
			stdout, stderr, code := rt.Run(ctx, "run", "--bundle", bundle, id)
			if code != 0 {
				t.Fatalf("run: exit %d: %s", code, stderr)
			}
			lines := nonEmptyLines(stdout)
			host, _ := os.Readlink("/proc/self/ns/pid")
			if len(lines) != 2 || lines[1] != host {
				t.Fatalf("output %q; want a pid and %s", lines, host)
			}
			if pid, err := strconv.Atoi(lines[0]); err != nil || pid <= 1 {
				t.Errorf("pid without a pid namespace = %q, want a host pid", lines[0])
			}
		})
	})
}
