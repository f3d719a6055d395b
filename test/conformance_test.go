package test

import (
	"io/fs"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
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
// mounts[].uidMappings/gidMappings, the "idmap" option): a file owned on
// disk by the mapping's containerID shows through the mount as its hostID,
// as the container sees that host ID; a file the container creates lands
// on disk mapped back. Without a user namespace the init maps the mount
// itself; with the container's own user namespace (root = host 100000) the
// runtime maps a clone of the source and the init moves it into place, as
// runc 1.2 does. runc 1.1 has no ID-mapped mounts, so only the runtime under
// test is run, against expectations.
func TestIDMappedMount(t *testing.T) {
	t.Parallel()
	userns := func(s *specs.Spec) {
		s.Linux.Namespaces = append(s.Linux.Namespaces, specs.LinuxNamespace{Type: specs.UserNamespace})
		s.Linux.UIDMappings = []specs.LinuxIDMapping{{ContainerID: 0, HostID: userNSHostID, Size: userNSSize}}
		s.Linux.GIDMappings = s.Linux.UIDMappings
		// As in TestUserNamespace: no cgroup mount in a user namespace.
		var mounts []specs.Mount
		for _, m := range s.Mounts {
			if m.Destination != "/sys/fs/cgroup" {
				mounts = append(mounts, m)
			}
		}
		s.Mounts = mounts
	}
	one := func(c, h uint32) []specs.LinuxIDMapping {
		return []specs.LinuxIDMapping{{ContainerID: c, HostID: h, Size: 1}}
	}
	tests := []struct {
		name    string
		userns  bool
		owner   int      // of the source directory and of f in it, on disk
		options []string // of the mount
		uid     []specs.LinuxIDMapping
		// what the container sees as owner of /mnt/f, and the owner on disk
		// of the file it creates (as root of the container)
		wantSeen   string
		wantOnDisk int
	}{
		{name: "no-userns", owner: 0, options: []string{"bind", "idmap"}, uid: one(0, 1000),
			// root's file shows as 1000; the container's root (host root)
			// has no mapping through the mount and cannot create.
			wantSeen: "1000:1000", wantOnDisk: -1},
		{name: "userns-own-mapping", userns: true, owner: 1000, options: []string{"bind", "idmap"}, uid: one(1000, userNSHostID),
			// disk 1000 -> host 100000 = the container's root.
			wantSeen: "0:0", wantOnDisk: 1000},
		{name: "userns-container-mapping", userns: true, owner: 0, options: []string{"rbind", "ridmap"},
			// no mappings of its own: the container's (0 -> 100000).
			wantSeen: "0:0", wantOnDisk: 0},
		{name: "userns-unmapped-owner", userns: true, owner: 1000, options: []string{"bind"}, uid: one(0, userNSHostID),
			// disk 1000 is not in the mount's mapping: overflow ID, and
			// the directory is not the container root's to write.
			wantSeen: "65534:65534", wantOnDisk: -1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			src := t.TempDir()
			if err := os.WriteFile(src+"/f", nil, 0o644); err != nil {
				t.Fatal(err)
			}
			for _, p := range []string{src, src + "/f"} {
				if err := os.Chown(p, tt.owner, tt.owner); err != nil {
					t.Fatal(err)
				}
			}
			rt := testutil.NewRuntime(t, runtimeUnderTest, skiffBin)
			bundle, spec := testutil.BusyboxBundle(t, "sh", "-c", "stat -c '%u:%g' /mnt/f; touch /mnt/new 2>/dev/null && echo created; grep ' /mnt ' /proc/self/mountinfo")
			if tt.userns {
				userns(spec)
			}
			// The container's root may not create it in a host-owned rootfs.
			if err := os.Mkdir(bundle+"/rootfs/mnt", 0o755); err != nil {
				t.Fatal(err)
			}
			spec.Mounts = append(spec.Mounts, specs.Mount{Destination: "/mnt", Type: "bind", Source: src,
				Options: tt.options, UIDMappings: tt.uid, GIDMappings: tt.uid})
			testutil.WriteSpec(t, bundle, spec)
			id := testutil.ContainerID(t)
			guard(t, rt, id, bundle, src)
			stdout, stderr, code := rt.Run(testContext(t, 60*time.Second), "run", "--bundle", bundle, id)
			if code != 0 || !strings.HasPrefix(stdout, tt.wantSeen+"\n") || !strings.Contains(stdout, "idmapped") {
				t.Fatalf("exit %d, stdout %q, stderr %q; want /mnt/f seen as %s on an idmapped mount", code, stdout, stderr, tt.wantSeen)
			}
			var st syscall.Stat_t
			err := syscall.Stat(src+"/new", &st)
			switch {
			case tt.wantOnDisk < 0 && (err == nil || strings.Contains(stdout, "created")):
				t.Errorf("the container created /mnt/new (%v), stdout %q; want it refused", err, stdout)
			case tt.wantOnDisk >= 0 && err != nil:
				t.Errorf("/mnt/new not created: %v; stdout %q", err, stdout)
			case tt.wantOnDisk >= 0 && (int(st.Uid) != tt.wantOnDisk || int(st.Gid) != tt.wantOnDisk):
				t.Errorf("/mnt/new is %d:%d on disk, want %d:%d", st.Uid, st.Gid, tt.wantOnDisk, tt.wantOnDisk)
			}
		})
	}
}

// TestIDMappedMountRefused: ID-mapped mounts a container with its own user
// namespace cannot have are refused before it starts, saying why, and
// nothing is left behind.
func TestIDMappedMountRefused(t *testing.T) {
	t.Parallel()
	own := []specs.LinuxIDMapping{{ContainerID: 0, HostID: userNSHostID, Size: 1}}
	tests := []struct {
		name     string
		mount    func(t *testing.T) specs.Mount
		mentions []string
	}{
		{name: "not-a-bind", mount: func(t *testing.T) specs.Mount {
			return specs.Mount{Destination: "/mnt", Type: "tmpfs", Source: "tmpfs", Options: []string{"idmap"}}
		}, mentions: []string{"mounts[", "only bind mounts can be ID-mapped"}},
		{name: "uid-without-gid", mount: func(t *testing.T) specs.Mount {
			return specs.Mount{Destination: "/mnt", Source: t.TempDir(), Options: []string{"bind"}, UIDMappings: own}
		}, mentions: []string{"mounts[", "uidMappings and gidMappings"}},
		{name: "missing-source", mount: func(t *testing.T) specs.Mount {
			return specs.Mount{Destination: "/mnt", Source: "/nonexistent-idmap-source", Options: []string{"bind", "idmap"}}
		}, mentions: []string{"mounts[", "/nonexistent-idmap-source", "does not exist"}},
		{name: "filesystem-refuses", mount: func(t *testing.T) specs.Mount {
			// ramfs (like overlayfs, procfs) cannot be ID-mapped.
			dir := t.TempDir()
			if err := syscall.Mount("ramfs", dir, "ramfs", 0, ""); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = syscall.Unmount(dir, syscall.MNT_DETACH) })
			return specs.Mount{Destination: "/mnt", Source: dir, Options: []string{"bind", "idmap"}}
		}, mentions: []string{"mounts[", "ramfs", "does not support ID-mapped mounts"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			rt := testutil.NewRuntime(t, runtimeUnderTest, skiffBin)
			bundle, spec := testutil.BusyboxBundle(t, "true")
			spec.Linux.Namespaces = append(spec.Linux.Namespaces, specs.LinuxNamespace{Type: specs.UserNamespace})
			spec.Linux.UIDMappings = []specs.LinuxIDMapping{{ContainerID: 0, HostID: userNSHostID, Size: userNSSize}}
			spec.Linux.GIDMappings = spec.Linux.UIDMappings
			if err := os.Mkdir(bundle+"/rootfs/mnt", 0o755); err != nil {
				t.Fatal(err)
			}
			spec.Mounts = append(spec.Mounts, tt.mount(t))
			testutil.WriteSpec(t, bundle, spec)
			id := testutil.ContainerID(t)
			guard(t, rt, id, bundle)
			_, stderr, code := rt.Run(testContext(t, 60*time.Second), "run", "--bundle", bundle, id)
			t.Logf("stderr: %s", stderr)
			if code != 1 {
				t.Errorf("exit %d, stderr %q; want 1", code, stderr)
			}
			for _, want := range tt.mentions {
				if !strings.Contains(stderr, want) {
					t.Errorf("stderr %q does not mention %q", stderr, want)
				}
			}
		})
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

// TestSharedMountNamespace runs a container without any namespace of its
// own (runtime-tools' linux_ns_itype): it shares every namespace with the
// runtime, its root is built in the runtime's mount namespace, and after
// delete nothing of it stays mounted there, also when its create fails
// half-way. runc leaves the container's mounts on the host here
// (docs/conformance.md), so only the runtime under test is run.
func TestSharedMountNamespace(t *testing.T) {
	t.Parallel()
	rt := testutil.NewRuntime(t, runtimeUnderTest, skiffBin)
	var kinds []string
	host := map[string]string{}
	for _, ns := range []string{"cgroup", "ipc", "mnt", "net", "pid", "uts"} {
		l, err := os.Readlink("/proc/self/ns/" + ns)
		if err != nil {
			t.Fatal(err)
		}
		host[ns] = l
		kinds = append(kinds, ns)
	}
	script := "cd /proc/self/ns && for n in " + strings.Join(kinds, " ") + "; do echo $n $(readlink $n); done; stat -c 'root %i' /"
	bundle, spec := testutil.BusyboxBundle(t, "sh", "-c", script)
	spec.Linux.Namespaces = nil
	spec.Hostname = ""
	testutil.WriteSpec(t, bundle, spec)
	id := testutil.ContainerID(t)
	guard(t, rt, id, bundle)
	stdout, stderr, code := rt.Run(testContext(t, 60*time.Second), "run", "--bundle", bundle, id)
	if code != 0 {
		t.Fatalf("run without namespaces: exit %d, stderr %s", code, stderr)
	}
	got := map[string]string{}
	for _, l := range nonEmptyLines(stdout) {
		if k, v, ok := strings.Cut(l, " "); ok {
			got[k] = v
		}
	}
	for _, ns := range kinds {
		if got[ns] != host[ns] {
			t.Errorf("namespace %s: container %q, runtime %q (want shared)", ns, got[ns], host[ns])
		}
	}
	var st syscall.Stat_t
	if err := syscall.Stat(bundle+"/rootfs", &st); err != nil {
		t.Fatal(err)
	}
	if want := strconv.FormatUint(st.Ino, 10); got["root"] != want {
		t.Errorf("the container's / has inode %q, its rootfs %s: the container is not in its rootfs", got["root"], want)
	}

	// exec joins the runtime's mount namespace, which resets the root: it
	// must still land in the container's root, not the host's.
	long, spec := testutil.BusyboxBundle(t, "sleep", "60")
	spec.Linux.Namespaces = nil
	spec.Hostname = ""
	testutil.WriteSpec(t, long, spec)
	longID := testutil.ContainerID(t)
	guard(t, rt, longID, long)
	ctx := testContext(t, 60*time.Second)
	if _, stderr, code := rt.Run(ctx, "run", "-d", "--bundle", long, longID); code != 0 {
		t.Fatalf("run -d without namespaces: exit %d, stderr %s", code, stderr)
	}
	if err := syscall.Stat(long+"/rootfs", &st); err != nil {
		t.Fatal(err)
	}
	stdout, stderr, code = rt.Run(ctx, "exec", "--cwd", "/bin", longID, "sh", "-c", "stat -c %i /; pwd")
	if want := strconv.FormatUint(st.Ino, 10) + "\n/bin\n"; code != 0 || stdout != want {
		t.Errorf("exec into a container without namespaces: exit %d, stdout %q (want %q: its rootfs's inode and the cwd), stderr %s", code, stdout, want, stderr)
	}
	if _, stderr, code := rt.Run(ctx, "delete", "-f", longID); code != 0 {
		t.Errorf("delete -f: exit %d, stderr %s", code, stderr)
	}

	// A mount that fails half-way through the root's setup: the bind of
	// the rootfs and the mounts made before the failing one are undone.
	bad, spec := testutil.BusyboxBundle(t, "true")
	spec.Linux.Namespaces = nil
	spec.Hostname = ""
	spec.Mounts = append(spec.Mounts, specs.Mount{Destination: "/missing-source", Type: "bind", Source: bad + "/no-such-dir", Options: []string{"bind"}})
	testutil.WriteSpec(t, bad, spec)
	badID := testutil.ContainerID(t)
	guard(t, rt, badID, bad)
	if _, stderr, code := rt.Run(testContext(t, 60*time.Second), "run", "--bundle", bad, badID); code == 0 || !strings.Contains(stderr, "no-such-dir") {
		t.Errorf("a missing bind source without a mount namespace: exit %d, stderr %s", code, stderr)
	}

	// A failing createRuntime hook: the create fails while the init, its
	// root already built, waits; the init is killed before the bind goes.
	hooked, spec := testutil.BusyboxBundle(t, "true")
	spec.Linux.Namespaces = nil
	spec.Hostname = ""
	spec.Hooks = &specs.Hooks{CreateRuntime: []specs.Hook{{Path: "/bin/false"}}}
	testutil.WriteSpec(t, hooked, spec)
	hookedID := testutil.ContainerID(t)
	guard(t, rt, hookedID, hooked)
	if _, stderr, code := rt.Run(testContext(t, 60*time.Second), "run", "--bundle", hooked, hookedID); code == 0 {
		t.Errorf("a failing createRuntime hook without a mount namespace: exit 0, stderr %s", stderr)
	}

	// A user namespace needs a mount namespace to build the root in.
	userns, spec := testutil.BusyboxBundle(t, "true")
	spec.Linux.Namespaces = []specs.LinuxNamespace{{Type: specs.UserNamespace}}
	spec.Linux.UIDMappings = []specs.LinuxIDMapping{{ContainerID: 0, HostID: 100000, Size: 65536}}
	spec.Linux.GIDMappings = []specs.LinuxIDMapping{{ContainerID: 0, HostID: 100000, Size: 65536}}
	spec.Hostname = ""
	testutil.WriteSpec(t, userns, spec)
	usernsID := testutil.ContainerID(t)
	guard(t, rt, usernsID, userns)
	if _, stderr, code := rt.Run(testContext(t, 60*time.Second), "run", "--bundle", userns, usernsID); code != 1 || !strings.Contains(stderr, `add {"type": "mount"}`) {
		t.Errorf("a user namespace without a mount namespace: exit %d, stderr %s", code, stderr)
	}
}
