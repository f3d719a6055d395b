package rootfs

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/skiff-containers/skiff/errdefs"
	"golang.org/x/sys/unix"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// observeScript prints, inside a container, its mounts (mount point, mount
// options, type, source, superblock options) and its /dev and cgroup entries.
const observeScript = `awk '{ for (i = 7; $i != "-"; i++); print $5, $6, $(i+1), $(i+2), $(i+3) }' /proc/self/mountinfo
for f in /dev/* /dev/pts/* /sys/fs/cgroup/*; do stat -c '%N|%F|%a|%u|%g|%t|%T' "$f"; done`

// runRunc runs spec in bundle with runc and returns the process's output.
func runRunc(t *testing.T, bundle string, spec *specs.Spec) string {
	t.Helper()
	data, err := json.Marshal(spec)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(bundle, "config.json"), data, 0o644); err != nil {
		t.Fatal(err)
	}
	id := fmt.Sprintf("skiff-rootfs-test-%d", os.Getpid())
	var out, errOut bytes.Buffer
	cmd := exec.Command("runc", "--root", t.TempDir(), "run", "--bundle", bundle, id)
	cmd.Stdout, cmd.Stderr = &out, &errOut
	if err := cmd.Run(); err != nil {
		t.Fatalf("runc run: %v\n%s\n%s", err, out.String(), errOut.String())
	}
	return out.String()
}

// TestMatchesRunc runs runc's default spec through runc and through
// Prepare+Finalize and compares the mounts and /dev each container sees.
func TestMatchesRunc(t *testing.T) {
	requireRoot(t)
	if _, err := exec.LookPath("runc"); err != nil {
		t.Fatalf("runc is the oracle and must be installed: %v", err)
	}
	spec := runcDefaultSpec("/bin/sh", "-c", observeScript)

	runcBundle, _ := newBundle(t)
	want := runRunc(t, runcBundle, spec)
	assertNothingMounted(t, runcBundle)

	bundle, rootfs := newBundle(t)
	// The same namespaces as the spec asks of runc: a sysfs mounted in a new
	// network namespace gets its own (read-only) superblock.
	res := runChildFlags(t, bundle, childRequest{Rootfs: rootfs, Spec: spec, Script: observeScript, CgroupPaths: testCgroups(t)},
		syscall.CLONE_NEWNET|syscall.CLONE_NEWPID|syscall.CLONE_NEWIPC|syscall.CLONE_NEWUTS)
	mustSucceed(t, res)

	normalize := func(s string) []string {
		var lines []string
		for _, l := range strings.Split(strings.TrimSpace(s), "\n") {
			lines = append(lines, strings.ReplaceAll(l, runcBundle, bundle))
		}
		return lines
	}
	w, g := normalize(want), normalize(res.ScriptOutput)
	if strings.Join(w, "\n") != strings.Join(g, "\n") {
		t.Errorf("container view differs from runc's\n--- runc\n%s\n--- skiff\n%s", strings.Join(w, "\n"), strings.Join(g, "\n"))
	}
}

// mustWrite creates a file with its parent directories.
func mustWrite(t *testing.T, path, content string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

func mustSymlink(t *testing.T, target, link string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(link), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(target, link); err != nil {
		t.Fatal(err)
	}
}

func ptr[T any](v T) *T { return &v }

// checkMount fails unless there is a mount at mountpoint of type fstype whose
// per-mount options include all of want.
func checkMount(t *testing.T, res childResult, mountpoint, fstype string, want ...string) *childMount {
	t.Helper()
	m := res.mountAt(mountpoint)
	if m == nil {
		t.Errorf("no mount at %s; mounts: %+v", mountpoint, res.Mounts)
		return nil
	}
	if fstype != "" && m.FSType != fstype {
		t.Errorf("%s: type %s, want %s", mountpoint, m.FSType, fstype)
	}
	for _, o := range want {
		if !hasOpt(m.Options, o) {
			t.Errorf("%s: options %s, want %s among them", mountpoint, m.Options, o)
		}
	}
	return m
}

// checkOutput fails unless the script printed every line of want.
func checkOutput(t *testing.T, res childResult, want ...string) {
	t.Helper()
	lines := map[string]bool{}
	for _, l := range strings.Split(res.ScriptOutput, "\n") {
		lines[l] = true
	}
	for _, w := range want {
		if !lines[w] {
			t.Errorf("script output lacks %q:\n%s", w, res.ScriptOutput)
		}
	}
}

// TestMounts exercises the mount kinds, flags and /dev handling inside a real
// new mount namespace.
func TestMounts(t *testing.T) {
	requireRoot(t)
	bundle, rootfs := newBundle(t)
	mustWrite(t, filepath.Join(bundle, "data/hello"), "hello from the host\n")
	mustWrite(t, filepath.Join(bundle, "hostfile"), "a file\n")
	mustWrite(t, filepath.Join(rootfs, "etc/conf/a.txt"), "copied up\n")
	mustSymlink(t, "/run", filepath.Join(rootfs, "var/run"))
	mustSymlink(t, "../run/linked", filepath.Join(rootfs, "etc/linked"))

	spec := runcDefaultSpec()
	spec.Root.Readonly = false
	spec.Mounts = append(spec.Mounts,
		specs.Mount{Destination: "/data", Type: "bind", Source: "data", Options: []string{"rbind", "ro"}},                               // 7
		specs.Mount{Destination: "/etc/file", Type: "none", Source: "hostfile", Options: []string{"bind", "nosuid", "nodev", "noexec"}}, // 8
		specs.Mount{Destination: "/tmp", Type: "tmpfs", Source: "tmpfs", Options: []string{"ro", "mode=1777"}},                          // 9
		specs.Mount{Destination: "/var/run/foo", Source: filepath.Join(bundle, "data"), Options: []string{"bind", "rprivate"}},          // 10
		specs.Mount{Destination: "/hostdev", Source: "/dev", Options: []string{"rbind", "rro", "rnosuid"}},                              // 11
		specs.Mount{Destination: "/etc/conf", Type: "tmpfs", Source: "tmpfs", Options: []string{"tmpcopyup"}},                           // 12
		specs.Mount{Destination: "/etc/linked", Type: "tmpfs", Source: "tmpfs", Options: []string{"size=1m"}},                           // 13
		specs.Mount{Destination: "/shared", Type: "tmpfs", Source: "tmpfs", Options: []string{"shared"}},                                // 14
	)
	spec.Linux.Devices = []specs.LinuxDevice{
		{Path: "/dev/loop200", Type: "b", Major: 7, Minor: 200, FileMode: ptr(os.FileMode(0o600)), UID: ptr(uint32(1000)), GID: ptr(uint32(1001))},
		{Path: "/dev/myfifo", Type: "p", FileMode: ptr(os.FileMode(0o640))},
		{Path: "/dev/null", Type: "c", Major: 1, Minor: 3, FileMode: ptr(os.FileMode(0o644))},
	}
	script := `cat /data/hello /etc/file /etc/conf/a.txt
touch /data/x 2>/dev/null || echo data read-only
touch /tmp/x 2>/dev/null || echo tmp read-only
touch /x && echo root writable
stat -c '%n|%F|%a|%u|%g|%t|%T' /dev/loop200 /dev/myfifo /dev/null /tmp
ls /run/foo`
	res := runChild(t, bundle, childRequest{Rootfs: rootfs, Spec: spec, Script: script})
	mustSucceed(t, res)
	t.Logf("script output:\n%s", res.ScriptOutput)

	checkMount(t, res, "/", "", "rw")
	checkMount(t, res, "/data", "ext4", "ro")
	checkMount(t, res, "/etc/file", "ext4", "rw", "nosuid", "nodev", "noexec")
	checkMount(t, res, "/tmp", "tmpfs", "ro")
	if m := checkMount(t, res, "/run/foo", "ext4"); m != nil && m.Optional != "" {
		t.Errorf("/run/foo: propagation %q, want private", m.Optional)
	}
	if m := checkMount(t, res, "/shared", "tmpfs"); m != nil && !strings.HasPrefix(m.Optional, "shared:") {
		t.Errorf("/shared: propagation %q, want shared", m.Optional)
	}
	checkMount(t, res, "/hostdev", "", "ro", "nosuid")
	checkMount(t, res, "/hostdev/pts", "devpts", "ro", "nosuid") // rro is recursive
	checkMount(t, res, "/run/linked", "tmpfs")                   // via a relative symlink that stays inside
	checkOutput(t, res,
		"hello from the host", "a file", "copied up",
		"data read-only", "tmp read-only", "root writable",
		"/dev/loop200|block special file|600|1000|1001|7|c8",
		"/dev/myfifo|fifo|640|0|0|0|0",
		"/dev/null|character special file|644|0|0|1|3", // the spec's mode wins over the default's
		"/tmp|directory|1777|0|0|0|0",
		"hello",
	)
}

// TestFinalizeVariants covers --no-pivot, root.readonly, and the user
// namespace way of making device nodes.
func TestFinalizeVariants(t *testing.T) {
	requireRoot(t)
	tests := []struct {
		name   string
		req    childRequest
		clone  uintptr
		check  func(t *testing.T, res childResult)
		script string
		want   []string // lines the script must print
		spec   func(s *specs.Spec)
	}{
		{
			name: "no-pivot",
			req:  childRequest{NoPivot: true},
			check: func(t *testing.T, res childResult) {
				checkMount(t, res, "/", "", "ro")
				for _, m := range res.Mounts {
					if (m.FSType == "proc" || m.FSType == "sysfs") && !strings.HasPrefix(m.Mountpoint, "/proc") && !strings.HasPrefix(m.Mountpoint, "/sys") {
						t.Errorf("host %s still reachable at %s", m.FSType, m.Mountpoint)
					}
				}
			},
			script: "ls /bin/busybox",
			want:   []string{"/bin/busybox"},
		},
		{
			name:  "bind device nodes",
			req:   childRequest{UserNS: true},
			check: func(t *testing.T, res childResult) { checkMount(t, res, "/dev/null", "devtmpfs") },
			script: `stat -c '%n|%F|%t|%T' /dev/null /dev/tty
echo hi > /dev/null && echo writable null`,
			want: []string{"/dev/null|character special file|1|3", "/dev/tty|character special file|5|0", "writable null"},
		},
		{
			name: "rootfsPropagation rshared",
			spec: func(s *specs.Spec) { s.Linux.RootfsPropagation = "rshared" },
			check: func(t *testing.T, res childResult) {
				if m := checkMount(t, res, "/", "", "ro"); m != nil && !strings.HasPrefix(m.Optional, "shared:") {
					t.Errorf("/ propagation %q, want shared", m.Optional)
				}
			},
		},
		{
			name: "default propagation is not shared",
			check: func(t *testing.T, res childResult) {
				for _, mp := range []string{"/", "/proc", "/dev"} {
					if m := checkMount(t, res, mp, ""); m != nil && strings.Contains(m.Optional, "shared:") {
						t.Errorf("%s propagation %q, want not shared", mp, m.Optional)
					}
				}
			},
		},
		{
			// A real user namespace without its own network namespace:
			// sysfs cannot be mounted there, so /sys is the host's, bound;
			// mknod is refused, so nodes are bound; the remounts must keep
			// the flags the kernel locked.
			name:  "user namespace",
			req:   childRequest{UserNS: true},
			clone: unix.CLONE_NEWUSER | unix.CLONE_NEWPID | unix.CLONE_NEWIPC,
			check: func(t *testing.T, res childResult) {
				checkMount(t, res, "/", "", "ro")
				checkMount(t, res, "/sys", "sysfs", "ro", "nosuid", "nodev", "noexec")
				if res.mountAt("/sys/fs/cgroup/unified") == nil {
					t.Errorf("/sys is not the rbind of the host's /sys (no /sys/fs/cgroup/unified under it)")
				}
				checkMount(t, res, "/sys/fs/cgroup/memory", "cgroup", "ro")
				checkMount(t, res, "/dev/zero", "devtmpfs")
				checkMount(t, res, "/proc/sys", "proc", "ro")
			},
			script: "stat -c '%n|%F|%t|%T' /dev/zero; cat /proc/self/uid_map",
			want:   []string{"/dev/zero|character special file|1|5", "         0          0      65536"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			bundle, rootfs := newBundle(t)
			req := tt.req
			req.Rootfs, req.Spec, req.Script = rootfs, runcDefaultSpec(), tt.script
			if tt.spec != nil {
				tt.spec(req.Spec)
			}
			res := runChildFlags(t, bundle, req, tt.clone)
			mustSucceed(t, res)
			tt.check(t, res)
			checkOutput(t, res, tt.want...)
		})
	}
}

// TestPrepareErrors checks that bad specs and hostile rootfs trees are
// refused with the right class and a message naming the culprit, and that
// nothing is left mounted on the host (runChild checks that).
func TestPrepareErrors(t *testing.T) {
	requireRoot(t)
	tests := []struct {
		name   string
		setup  func(t *testing.T, bundle, rootfs string)
		mounts []specs.Mount
		edit   func(s *specs.Spec)
		class  error
		want   []string // substrings of the error
	}{
		{
			name:   "symlink escape at the top",
			setup:  func(t *testing.T, _, rootfs string) { mustSymlink(t, "../../../../tmp", filepath.Join(rootfs, "evil")) },
			mounts: []specs.Mount{{Destination: "/evil/x", Type: "tmpfs", Source: "tmpfs"}},
			class:  errdefs.ErrInvalidArgument,
			want:   []string{`mounts[7]`, `"/evil/x"`, `"/evil" -> "../../../../tmp"`, "outside the rootfs"},
		},
		{
			name:   "symlink escape to the bundle",
			setup:  func(t *testing.T, _, rootfs string) { mustSymlink(t, "../outside", filepath.Join(rootfs, "evil")) },
			mounts: []specs.Mount{{Destination: "/evil/x/y", Source: "/etc/hostname", Options: []string{"bind"}}},
			class:  errdefs.ErrInvalidArgument,
			want:   []string{`mounts[7]`, `"/evil/x/y"`, `"/evil" -> "../outside"`},
		},
		{
			name:   "symlink escape deeper down",
			setup:  func(t *testing.T, _, rootfs string) { mustSymlink(t, "../../../etc", filepath.Join(rootfs, "a/b")) },
			mounts: []specs.Mount{{Destination: "/a/b/c", Source: "/etc", Options: []string{"bind"}}},
			class:  errdefs.ErrInvalidArgument,
			want:   []string{`mounts[7]`, `"/a/b" -> "../../../etc"`},
		},
		{
			name: "symlink escape through a chain",
			setup: func(t *testing.T, _, rootfs string) {
				mustSymlink(t, "/b", filepath.Join(rootfs, "a"))
				mustSymlink(t, "c/../..", filepath.Join(rootfs, "b"))
				if err := os.Mkdir(filepath.Join(rootfs, "c"), 0o755); err != nil {
					t.Fatal(err)
				}
			},
			mounts: []specs.Mount{{Destination: "/a/x", Type: "tmpfs", Source: "tmpfs"}},
			class:  errdefs.ErrInvalidArgument,
			want:   []string{`"/b" -> "c/../.."`},
		},
		{
			name:   "missing bind source",
			mounts: []specs.Mount{{Destination: "/x", Source: "does-not-exist", Options: []string{"bind"}}},
			class:  errdefs.ErrNotFound,
			want:   []string{`mounts[7]`, "does-not-exist"},
		},
		{
			name:   "mount inside /proc",
			mounts: []specs.Mount{{Destination: "/proc/version", Source: "/dev/null", Options: []string{"bind"}}},
			class:  errdefs.ErrInvalidArgument,
			want:   []string{`mounts[7]`, "inside /proc"},
		},
		{
			name:   "sysfs on a file",
			setup:  func(t *testing.T, _, rootfs string) { mustWrite(t, filepath.Join(rootfs, "notdir"), "") },
			mounts: []specs.Mount{{Destination: "/notdir", Type: "sysfs", Source: "sysfs"}},
			class:  errdefs.ErrInvalidArgument,
			want:   []string{`mounts[7]`, "ordinary directory"},
		},
		{
			name:  "bad device type",
			edit:  func(s *specs.Spec) { s.Linux.Devices = []specs.LinuxDevice{{Path: "/dev/x", Type: "q"}} },
			class: errdefs.ErrInvalidArgument,
			want:  []string{"/dev/x", `"q"`},
		},
		{
			name:  "bad rootfsPropagation",
			edit:  func(s *specs.Spec) { s.Linux.RootfsPropagation = "sideways" },
			class: errdefs.ErrInvalidArgument,
			want:  []string{"rootfsPropagation", "sideways"},
		},
		{
			name:   "mount over /",
			mounts: []specs.Mount{{Destination: "/", Type: "tmpfs", Source: "tmpfs"}},
			class:  errdefs.ErrInvalidArgument,
			want:   []string{`mounts[7]`, "whole rootfs"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			bundle, rootfs := newBundle(t)
			if tt.setup != nil {
				tt.setup(t, bundle, rootfs)
			}
			spec := runcDefaultSpec()
			spec.Mounts = append(spec.Mounts, tt.mounts...)
			if tt.edit != nil {
				tt.edit(spec)
			}
			res := runChild(t, bundle, childRequest{Rootfs: rootfs, Spec: spec})
			if res.Stage != "prepare" {
				t.Fatalf("want Prepare to fail, got stage %q err %q", res.Stage, res.Err)
			}
			if res.Class != tt.class.Error() {
				t.Errorf("error class %q, want %q: %s", res.Class, tt.class, res.Err)
			}
			for _, w := range tt.want {
				if !strings.Contains(res.Err, w) {
					t.Errorf("error %q does not mention %q", res.Err, w)
				}
			}
			if _, err := os.Lstat(filepath.Join(bundle, "outside")); err == nil {
				t.Errorf("something was created outside the rootfs")
			}
		})
	}
}

// TestPrepareRefusesHostNamespace calls Prepare in the test process, which
// shares the host's mount namespace: it must refuse before mounting anything.
func TestPrepareRefusesHostNamespace(t *testing.T) {
	requireRoot(t)
	_, rootfs := newBundle(t)
	err := Prepare(&Config{Spec: runcDefaultSpec(), Rootfs: rootfs})
	if !errors.Is(err, errdefs.ErrFailedPrecondition) {
		t.Fatalf("Prepare in the host mount namespace: %v, want ErrFailedPrecondition", err)
	}
	assertNothingMounted(t, rootfs)
}

// TestCgroupMounts covers the cgroup mount on v1 (binds, cgroup namespace,
// co-mounted hierarchies) and, forced, the v2 paths using the hybrid
// hierarchy of this host.
func TestCgroupMounts(t *testing.T) {
	requireRoot(t)
	unified := "/sys/fs/cgroup/unified"
	var st unix.Statfs_t
	if err := unix.Statfs(unified, &st); err != nil || st.Type != unix.CGROUP2_SUPER_MAGIC {
		t.Fatalf("this test expects the hybrid cgroup layout with cgroup2 at %s", unified)
	}
	v2dir := filepath.Join(unified, fmt.Sprintf("skiff-rootfs-test-%d", os.Getpid()))
	if err := os.Mkdir(v2dir, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.Remove(v2dir) })

	tests := []struct {
		name   string
		req    childRequest
		clone  uintptr
		script string
		check  func(t *testing.T, res childResult, bundle string)
	}{
		{
			name: "v1 binds of the given cgroups",
			req:  childRequest{CgroupPaths: testCgroups(t)},
			check: func(t *testing.T, res childResult, _ string) {
				name := fmt.Sprintf("/skiff-rootfs-test-%d-%s", os.Getpid(), "TestCgroupMounts")
				for _, c := range []string{"cpu", "memory", "systemd"} {
					if m := checkMount(t, res, "/sys/fs/cgroup/"+c, "cgroup", "ro", "nosuid", "nodev", "noexec"); m != nil && m.Root != name {
						t.Errorf("/sys/fs/cgroup/%s shows %s, want the container's cgroup %s", c, m.Root, name)
					}
				}
				checkMount(t, res, "/sys/fs/cgroup", "tmpfs", "rw", "nosuid", "nodev", "noexec")
			},
		},
		{
			name:  "v1 cgroup namespace",
			req:   childRequest{CgroupNS: true},
			clone: unix.CLONE_NEWCGROUP,
			check: func(t *testing.T, res childResult, _ string) {
				if m := checkMount(t, res, "/sys/fs/cgroup/systemd", "cgroup", "ro"); m != nil && m.Source != "systemd" {
					t.Errorf("systemd hierarchy source %q, want systemd", m.Source)
				}
				if m := checkMount(t, res, "/sys/fs/cgroup/memory", "cgroup", "ro", "nosuid", "nodev", "noexec"); m != nil && m.Root != "/" {
					t.Errorf("memory hierarchy shows %s, want / of the namespace", m.Root)
				}
			},
		},
		{
			name:   "v1 co-mounted hierarchy",
			req:    childRequest{Comount: "net_cls,net_prio"},
			script: "readlink /sys/fs/cgroup/net_cls; readlink /sys/fs/cgroup/net_prio",
			check: func(t *testing.T, res childResult, bundle string) {
				checkMount(t, res, "/sys/fs/cgroup/net_cls,net_prio", "cgroup", "ro")
				checkOutput(t, res, "net_cls,net_prio")
				if strings.Count(res.ScriptOutput, "net_cls,net_prio\n") != 2 {
					t.Errorf("want two symlinks to net_cls,net_prio, got %q", res.ScriptOutput)
				}
			},
		},
		{
			name: "v2 bind of the container's cgroup",
			req:  childRequest{ForceCgroup2: true, CgroupPaths: map[string]string{"": v2dir}},
			check: func(t *testing.T, res childResult, _ string) {
				if m := checkMount(t, res, "/sys/fs/cgroup", "cgroup2", "ro", "nosuid"); m != nil && m.Root != "/"+filepath.Base(v2dir) {
					t.Errorf("cgroup2 shows %s, want %s", m.Root, "/"+filepath.Base(v2dir))
				}
			},
		},
		{
			name:  "v2 cgroup namespace",
			req:   childRequest{ForceCgroup2: true, CgroupNS: true, CgroupPaths: map[string]string{"": v2dir}},
			clone: unix.CLONE_NEWCGROUP,
			check: func(t *testing.T, res childResult, _ string) {
				checkMount(t, res, "/sys/fs/cgroup", "cgroup2", "ro", "nosuid", "nodev", "noexec")
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			bundle, rootfs := newBundle(t)
			req := tt.req
			req.Rootfs, req.Spec, req.Script = rootfs, runcDefaultSpec(), tt.script
			if req.Comount != "" {
				req.ComountDir = filepath.Join(bundle, "cg")
			}
			res := runChildFlags(t, bundle, req, tt.clone)
			mustSucceed(t, res)
			tt.check(t, res, bundle)
		})
	}
}
