package rootfs

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"testing"

	"github.com/moby/sys/mountinfo"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/skiff-containers/skiff/errdefs"
)

// The root tests re-exec this test binary in a new mount namespace: the child
// reads a childRequest, runs Prepare and Finalize, runs an optional busybox
// script inside the finished container and prints a childResult as JSON.
const childEnv = "SKIFF_ROOTFS_TEST_CHILD"

type childRequest struct {
	Rootfs       string
	Spec         *specs.Spec
	NoPivot      bool
	CgroupNS     bool
	UserNS       bool
	CgroupPaths  map[string]string
	ForceCgroup2 bool
	// Comount is a list of cgroup v1 controllers to co-mount (in the child's
	// namespace only) before Prepare, e.g. "net_cls,net_prio", in a directory
	// of that name under ComountDir.
	Comount, ComountDir string
	// Script runs with /bin/busybox sh -c inside the container after Finalize.
	Script string
	// IDMapFDs is Config.IDMapFDs: fds the child inherits (runChildFiles).
	IDMapFDs map[int]int
	// IDMapTrees is Config.IDMapTrees: fds the child inherits.
	IDMapTrees map[int]int
}

type childMount struct {
	Mountpoint, Options, FSType, Source, VFSOptions, Root, Optional string
}

type childResult struct {
	Stage        string // "prepare" or "finalize" if one failed
	Err          string
	Class        string // errdefs class of Err
	Mounts       []childMount
	ScriptOutput string
	ScriptErr    string
}

func TestMain(m *testing.M) {
	if req := os.Getenv(childEnv); req != "" {
		res := runChildRequest(req)
		if err := json.NewEncoder(os.Stdout).Encode(res); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(2)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

func errClass(err error) string {
	for _, c := range []error{errdefs.ErrNotFound, errdefs.ErrInvalidArgument, errdefs.ErrFailedPrecondition, errdefs.ErrNotImplemented} {
		if errors.Is(err, c) {
			return c.Error()
		}
	}
	return ""
}

func runChildRequest(path string) (res childResult) {
	runtime.LockOSThread()
	fail := func(stage string, err error) childResult {
		return childResult{Stage: stage, Err: err.Error(), Class: errClass(err)}
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return fail("request", err)
	}
	var req childRequest
	if err := json.Unmarshal(data, &req); err != nil {
		return fail("request", err)
	}
	if req.Comount != "" {
		if err := comount(req.ComountDir, req.Comount); err != nil {
			return fail("comount", err)
		}
	}
	c := &Config{Spec: req.Spec, Rootfs: req.Rootfs, NoPivot: req.NoPivot, CgroupPaths: req.CgroupPaths, CgroupNS: req.CgroupNS, UserNS: req.UserNS, IDMapFDs: req.IDMapFDs, IDMapTrees: req.IDMapTrees}
	if err := prepare(c, req.ForceCgroup2); err != nil {
		return fail("prepare", err)
	}
	if err := Finalize(c); err != nil {
		return fail("finalize", err)
	}
	mounts, err := mountinfo.GetMounts(nil)
	if err != nil {
		return fail("mountinfo", err)
	}
	for _, m := range mounts {
		res.Mounts = append(res.Mounts, childMount{m.Mountpoint, m.Options, m.FSType, m.Source, m.VFSOptions, m.Root, m.Optional})
	}
	if req.Script != "" {
		var out bytes.Buffer
		cmd := exec.Command("/bin/busybox", "sh", "-c", req.Script)
		cmd.Stdout, cmd.Stderr = &out, &out
		if err := cmd.Run(); err != nil {
			res.ScriptErr = err.Error()
		}
		res.ScriptOutput = out.String()
	}
	return res
}

// comount mounts the given v1 controllers as one hierarchy at
// parent/controllers, after making this namespace a slave so nothing reaches
// the host.
func comount(parent, controllers string) error {
	if err := unix.Mount("", "/", "", unix.MS_SLAVE|unix.MS_REC, ""); err != nil {
		return err
	}
	dir := filepath.Join(parent, controllers)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	return unix.Mount("cgroup", dir, "cgroup", 0, controllers)
}

// requireRoot fails (not skips) when the suite is not run as root: the
// project's tests need root, as CI has.
func requireRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Fatal("this test needs root (go test ./... runs as root in CI)")
	}
}

// newBundle makes a bundle directory with a rootfs holding the host's static
// busybox as /bin/busybox and /bin/sh.
func newBundle(t *testing.T) (bundle, rootfs string) {
	t.Helper()
	bundle = t.TempDir()
	rootfs = filepath.Join(bundle, "rootfs")
	if err := os.MkdirAll(filepath.Join(rootfs, "bin"), 0o755); err != nil {
		t.Fatal(err)
	}
	src, err := os.Open("/bin/busybox")
	if err != nil {
		t.Fatalf("the tests need the host's static busybox: %v", err)
	}
	defer src.Close()
	dst, err := os.OpenFile(filepath.Join(rootfs, "bin/busybox"), os.O_CREATE|os.O_WRONLY, 0o755)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(dst, src); err != nil {
		t.Fatal(err)
	}
	if err := dst.Close(); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("busybox", filepath.Join(rootfs, "bin/sh")); err != nil {
		t.Fatal(err)
	}
	return bundle, rootfs
}

// runChild runs req in a fresh mount namespace with the bundle as working
// directory, and checks that nothing stays mounted under the bundle on the
// host afterwards.
func runChild(t *testing.T, bundle string, req childRequest) childResult {
	t.Helper()
	return runChildFlags(t, bundle, req, 0)
}

// runChildFlags is runChild with more namespaces (clone flags) for the child.
func runChildFlags(t *testing.T, bundle string, req childRequest, cloneflags uintptr) childResult {
	t.Helper()
	return runChildFiles(t, bundle, req, cloneflags, nil)
}

// runChildFiles is runChildFlags with files the child inherits as fds 3, 4, ...
func runChildFiles(t *testing.T, bundle string, req childRequest, cloneflags uintptr, files []*os.File) childResult {
	t.Helper()
	data, err := json.Marshal(req)
	if err != nil {
		t.Fatal(err)
	}
	reqPath := filepath.Join(bundle, "request.json")
	if err := os.WriteFile(reqPath, data, 0o600); err != nil {
		t.Fatal(err)
	}
	var stdout, stderr bytes.Buffer
	cmd := exec.Command(os.Args[0])
	cmd.Dir = bundle
	cmd.Env = append(os.Environ(), childEnv+"="+reqPath)
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	cmd.ExtraFiles = files
	cmd.SysProcAttr = &syscall.SysProcAttr{Cloneflags: syscall.CLONE_NEWNS | cloneflags}
	if cloneflags&syscall.CLONE_NEWUSER != 0 {
		// Root of the new user namespace is the host's root, without the
		// host's privileges.
		cmd.SysProcAttr.UidMappings = []syscall.SysProcIDMap{{ContainerID: 0, HostID: 0, Size: 65536}}
		cmd.SysProcAttr.GidMappings = []syscall.SysProcIDMap{{ContainerID: 0, HostID: 0, Size: 65536}}
	}
	if err := cmd.Run(); err != nil {
		t.Fatalf("child: %v\nstdout: %s\nstderr: %s", err, stdout.String(), stderr.String())
	}
	assertNothingMounted(t, bundle)
	var res childResult
	if err := json.Unmarshal(stdout.Bytes(), &res); err != nil {
		t.Fatalf("child output: %v\nstdout: %s\nstderr: %s", err, stdout.String(), stderr.String())
	}
	return res
}

// assertNothingMounted fails if the host mount namespace has any mount at or
// under dir.
func assertNothingMounted(t *testing.T, dir string) {
	t.Helper()
	mounts, err := mountinfo.GetMounts(mountinfo.PrefixFilter(dir))
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range mounts {
		t.Errorf("leaked mount on the host: %s (%s)", m.Mountpoint, m.FSType)
	}
}

// testCgroups makes a cgroup named after the test in every cgroup v1
// hierarchy under /sys/fs/cgroup, as the cgroup manager would for a
// container, removes them when the test ends, and returns them as
// Config.CgroupPaths.
func testCgroups(t *testing.T) map[string]string {
	t.Helper()
	mounts, err := mountinfo.GetMounts(mountinfo.FSTypeFilter("cgroup"))
	if err != nil {
		t.Fatal(err)
	}
	paths := map[string]string{}
	name := fmt.Sprintf("skiff-rootfs-test-%d-%s", os.Getpid(), strings.ReplaceAll(t.Name(), "/", "_"))
	for _, m := range mounts {
		dir := filepath.Join(m.Mountpoint, name)
		if err := os.Mkdir(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			if err := os.Remove(dir); err != nil {
				t.Errorf("remove test cgroup: %v", err)
			}
		})
		for _, o := range strings.Split(m.VFSOptions, ",") {
			if o != "rw" && o != "ro" {
				paths[o] = dir
			}
		}
	}
	return paths
}

// mustSucceed fails the test if the child reported an error.
func mustSucceed(t *testing.T, res childResult) {
	t.Helper()
	if res.Err != "" {
		t.Fatalf("%s failed: %s", res.Stage, res.Err)
	}
	if res.ScriptErr != "" {
		t.Fatalf("script failed: %s\n%s", res.ScriptErr, res.ScriptOutput)
	}
}

// mountAt returns the last (topmost) mount at mountpoint, or nil.
func (r childResult) mountAt(mountpoint string) *childMount {
	var found *childMount
	for i := range r.Mounts {
		if r.Mounts[i].Mountpoint == mountpoint {
			found = &r.Mounts[i]
		}
	}
	return found
}

func hasOpt(opts, want string) bool {
	for _, o := range strings.Split(opts, ",") {
		if o == want {
			return true
		}
	}
	return false
}

// runcDefaultSpec is what `runc spec` writes (runc 1.1), with args set.
func runcDefaultSpec(args ...string) *specs.Spec {
	return &specs.Spec{
		Version: specs.Version,
		Root:    &specs.Root{Path: "rootfs", Readonly: true},
		Process: &specs.Process{
			Args: args,
			Env:  []string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "TERM=xterm"},
			Cwd:  "/",
			Capabilities: &specs.LinuxCapabilities{
				Bounding:  []string{"CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"},
				Effective: []string{"CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"},
				Permitted: []string{"CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"},
				Ambient:   []string{"CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"},
			},
			Rlimits:         []specs.POSIXRlimit{{Type: "RLIMIT_NOFILE", Hard: 1024, Soft: 1024}},
			NoNewPrivileges: true,
		},
		Hostname: "runc",
		Mounts: []specs.Mount{
			{Destination: "/proc", Type: "proc", Source: "proc"},
			{Destination: "/dev", Type: "tmpfs", Source: "tmpfs", Options: []string{"nosuid", "strictatime", "mode=755", "size=65536k"}},
			{Destination: "/dev/pts", Type: "devpts", Source: "devpts", Options: []string{"nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"}},
			{Destination: "/dev/shm", Type: "tmpfs", Source: "shm", Options: []string{"nosuid", "noexec", "nodev", "mode=1777", "size=65536k"}},
			{Destination: "/dev/mqueue", Type: "mqueue", Source: "mqueue", Options: []string{"nosuid", "noexec", "nodev"}},
			{Destination: "/sys", Type: "sysfs", Source: "sysfs", Options: []string{"nosuid", "noexec", "nodev", "ro"}},
			{Destination: "/sys/fs/cgroup", Type: "cgroup", Source: "cgroup", Options: []string{"nosuid", "noexec", "nodev", "relatime", "ro"}},
		},
		Linux: &specs.Linux{
			Namespaces: []specs.LinuxNamespace{{Type: "pid"}, {Type: "network"}, {Type: "ipc"}, {Type: "uts"}, {Type: "mount"}},
			MaskedPaths: []string{"/proc/acpi", "/proc/asound", "/proc/kcore", "/proc/keys", "/proc/latency_stats",
				"/proc/timer_list", "/proc/timer_stats", "/proc/sched_debug", "/sys/firmware", "/proc/scsi"},
			ReadonlyPaths: []string{"/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"},
			Resources:     &specs.LinuxResources{Devices: []specs.LinuxDeviceCgroup{{Allow: false, Access: "rwm"}}},
		},
	}
}
