package test

import (
	"io/fs"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/skiff-containers/skiff/internal/testutil"
	"github.com/skiff-containers/skiff/runtime/seccomp"
)

// Regressions found by the OCI runtime-tools validation suite
// (docs/conformance.md), each compared with runc.

// TestJoinMountNamespace joins an existing mount namespace by path: the
// root is built and pivoted inside it (as runc does, which is why each
// runtime gets a namespace of its own), and the container is in it.
func TestJoinMountNamespace(t *testing.T) {
	t.Parallel()
	forEachRuntime(t, func(t *testing.T, rt *testutil.Runtime) {
		holder := exec.Command("unshare", "-m", "--propagation", "private", "sleep", "600")
		if err := holder.Start(); err != nil {
			t.Fatalf("start a process holding a mount namespace: %v", err)
		}
		path := "/proc/" + strconv.Itoa(holder.Process.Pid) + "/ns/mnt"
		self, err := os.Readlink("/proc/self/ns/mnt")
		if err != nil {
			t.Fatal(err)
		}
		var target string
		for i := 0; i < 200 && target == ""; i++ { // until unshare has made it
			if l, err := os.Readlink(path); err == nil && l != self {
				target = l
			} else {
				time.Sleep(10 * time.Millisecond)
			}
		}
		if target == "" {
			t.Fatal("the holder never entered a new mount namespace")
		}
		bundle, spec := testutil.BusyboxBundle(t, "readlink", "/proc/self/ns/mnt")
		for i, ns := range spec.Linux.Namespaces {
			if ns.Type == specs.MountNamespace {
				spec.Linux.Namespaces[i].Path = path
			}
		}
		testutil.WriteSpec(t, bundle, spec)
		id := testutil.ContainerID(t)
		// The holder's root becomes the bundle's rootfs: it must be gone
		// before the leftover check (cleanups run last-registered first).
		guard(t, rt, id, bundle)
		t.Cleanup(func() { _ = holder.Process.Kill(); _ = holder.Wait() })
		stdout, stderr, code := rt.Run(testContext(t, 60*time.Second), "run", "--bundle", bundle, id)
		if code != 0 || strings.TrimSpace(stdout) != target {
			t.Errorf("%s: exit %d, saw %q, want %q; stderr %s", rt, code, strings.TrimSpace(stdout), target, stderr)
		}
	})
}

// TestFifoDevice creates a FIFO from linux.devices; the device cgroup has no
// rule for FIFOs, which must not make the config invalid.
func TestFifoDevice(t *testing.T) {
	t.Parallel()
	mode := func(m uint32) *fs.FileMode { v := fs.FileMode(m); return &v }
	probe{args: []string{"ls", "-l", "/dev/fifo1"},
		mutate: func(t *testing.T, bundle string, spec *specs.Spec) {
			spec.Linux.Devices = append(spec.Linux.Devices, specs.LinuxDevice{Path: "/dev/fifo1", Type: "p", FileMode: mode(0o644)})
		},
		normalize: func(s string) string { return strings.Join(strings.Fields(s)[:4], " ") },
		check:     wantContains("prw-r--r--")}.run(t)
}

// TestAddressSpaceLimitWithSeccomp sets RLIMIT_AS to 1 GiB together with
// Docker's seccomp profile: the filter must be compiled before the limit
// leaves libseccomp without memory. runc 1.1 fails exactly there ("error
// adding seccomp filter rule ...: cannot allocate memory"), so only the
// runtime under test is run.
func TestAddressSpaceLimitWithSeccomp(t *testing.T) {
	t.Parallel()
	rt := testutil.NewRuntime(t, runtimeUnderTest, skiffBin)
	bundle, spec := testutil.BusyboxBundle(t, "sh", "-c", "ulimit -v; unshare -r true 2>/dev/null || echo unshare-refused")
	spec.Linux.Seccomp = seccomp.DefaultProfile()
	spec.Process.Rlimits = append(spec.Process.Rlimits, specs.POSIXRlimit{Type: "RLIMIT_AS", Hard: 1 << 30, Soft: 1 << 30})
	testutil.WriteSpec(t, bundle, spec)
	id := testutil.ContainerID(t)
	guard(t, rt, id, bundle)
	stdout, stderr, code := rt.Run(testContext(t, 60*time.Second), "run", "--bundle", bundle, id)
	if code != 0 || !strings.HasPrefix(strings.TrimSpace(stdout), "1048576") || !strings.Contains(stdout, "unshare-refused") {
		t.Errorf("exit %d, stdout %q, stderr %q; want the 1 GiB limit and the filter refusing unshare", code, stdout, stderr)
	}
}

// TestIDMappedMount bind-mounts a host directory ID-mapped (runtime-spec
// mounts[].uidMappings with the "idmap" option): a file owned by root on
// disk shows as uid 1000 through the mount. runc 1.1 has no ID-mapped
// mounts, so only the runtime under test is run; the case with the
// container's own user namespace is refused clearly.
func TestIDMappedMount(t *testing.T) {
	t.Parallel()
	src := t.TempDir()
	if err := os.WriteFile(src+"/f", nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(src+"/f", 0, 0); err != nil {
		t.Fatal(err)
	}
	rt := testutil.NewRuntime(t, runtimeUnderTest, skiffBin)
	bundle, spec := testutil.BusyboxBundle(t, "sh", "-c", "stat -c '%u:%g' /mnt/f; grep ' /mnt ' /proc/self/mountinfo")
	m := []specs.LinuxIDMapping{{ContainerID: 0, HostID: 1000, Size: 1}}
	spec.Mounts = append(spec.Mounts, specs.Mount{Destination: "/mnt", Type: "bind", Source: src,
		Options: []string{"bind", "idmap"}, UIDMappings: m, GIDMappings: m})
	testutil.WriteSpec(t, bundle, spec)
	id := testutil.ContainerID(t)
	guard(t, rt, id, bundle, src)
	stdout, stderr, code := rt.Run(testContext(t, 60*time.Second), "run", "--bundle", bundle, id)
	if code != 0 || !strings.HasPrefix(stdout, "1000:1000\n") || !strings.Contains(stdout, "idmapped") {
		t.Errorf("exit %d, stdout %q, stderr %q; want the file as 1000:1000 on an idmapped mount", code, stdout, stderr)
	}

	// With the container's own user namespace: refused, nothing left.
	spec.Linux.Namespaces = append(spec.Linux.Namespaces, specs.LinuxNamespace{Type: specs.UserNamespace})
	spec.Linux.UIDMappings = []specs.LinuxIDMapping{{ContainerID: 0, HostID: 100000, Size: 65536}}
	spec.Linux.GIDMappings = spec.Linux.UIDMappings
	testutil.WriteSpec(t, bundle, spec)
	id2 := testutil.ContainerID(t)
	guard(t, rt, id2, bundle, src)
	_, stderr, code = rt.Run(testContext(t, 60*time.Second), "run", "--bundle", bundle, id2)
	if code != 1 || !strings.Contains(stderr, "ID-mapped mounts") {
		t.Errorf("with a user namespace: exit %d, stderr %q; want a clear refusal", code, stderr)
	}
}

// TestRootfsPropagationUnbindable builds a container whose root is
// unbindable (linux.rootfsPropagation): the rootfs must still be
// bind-mounted while it is built, and / ends up unbindable. runc 1.1 fails
// this (it makes / unbindable before binding the rootfs), so only the
// runtime under test is run.
func TestRootfsPropagationUnbindable(t *testing.T) {
	t.Parallel()
	for _, prop := range []string{"unbindable", "runbindable"} {
		prop := prop
		t.Run(prop, func(t *testing.T) {
			t.Parallel()
			rt := testutil.NewRuntime(t, runtimeUnderTest, skiffBin)
			bundle, spec := testutil.BusyboxBundle(t, "sh", "-c", "awk '$5 == \"/\"' /proc/self/mountinfo")
			spec.Linux.RootfsPropagation = prop
			testutil.WriteSpec(t, bundle, spec)
			id := testutil.ContainerID(t)
			guard(t, rt, id, bundle)
			stdout, stderr, code := rt.Run(testContext(t, 60*time.Second), "run", "--bundle", bundle, id)
			if code != 0 || !strings.Contains(stdout, "unbindable") {
				t.Errorf("exit %d, / in mountinfo %q, stderr %q; want / unbindable", code, stdout, stderr)
			}
		})
	}
}
