package clients

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/skiff-containers/skiff/internal/testutil"
)

// containerdCapEff is the effective capability set of containerd's default
// spec (ctr run): chown, dac_override, fsetid, fowner, mknod, net_raw,
// setgid, setuid, setfcap, setpcap, net_bind_service, sys_chroot, kill,
// audit_write.
const containerdCapEff = "00000000a80425fb"

// containerd is a private containerd started by a test.
type containerd struct {
	dir     string // everything of this instance lives below
	address string // its gRPC socket
	ns      string // the containerd namespace the test uses
	cmd     *exec.Cmd
	log     *os.File
}

// startContainerd starts a containerd with its own root, state and socket
// in a temporary directory, and registers its teardown: stop it, undo what
// it and its shims left, and check that nothing of it remains.
func startContainerd(t *testing.T) *containerd {
	t.Helper()
	needTools(t, map[string]string{"containerd": "containerd", "ctr": "containerd", "containerd-shim-runc-v2": "containerd", "script": "bsdutils"})
	dir := t.TempDir()
	c := &containerd{dir: dir, address: filepath.Join(dir, "containerd.sock"), ns: uniqueName("skiff-e2e")}
	// Runs after the teardown below (cleanups run last-registered first).
	testutil.CheckNoLeftovers(t, testutil.Leftovers{Dirs: []string{dir}, CgroupPaths: []string{"/" + c.ns}})

	// The CRI plugin is left out: it would set up CNI and its own
	// directories, and ctr does not need it. So are the snapshotters that
	// need special filesystems, and the tracing plugins.
	config := fmt.Sprintf(`version = 2
root = %q
state = %q
disabled_plugins = [
  "io.containerd.grpc.v1.cri",
  "io.containerd.snapshotter.v1.aufs",
  "io.containerd.snapshotter.v1.btrfs",
  "io.containerd.snapshotter.v1.devmapper",
  "io.containerd.snapshotter.v1.zfs",
  "io.containerd.internal.v1.restart",
  "io.containerd.tracing.processor.v1.otlp",
  "io.containerd.internal.v1.tracing",
]

[grpc]
  address = %q

[ttrpc]
  address = %q

[plugins]
  [plugins."io.containerd.internal.v1.opt"]
    path = %q
`, filepath.Join(dir, "root"), filepath.Join(dir, "state"), c.address, c.address+".ttrpc", filepath.Join(dir, "opt"))
	configPath := filepath.Join(dir, "config.toml")
	if err := os.WriteFile(configPath, []byte(config), 0o644); err != nil {
		t.Fatal(err)
	}
	var err error
	if c.log, err = os.Create(filepath.Join(dir, "containerd.log")); err != nil {
		t.Fatal(err)
	}
	c.cmd = exec.Command("containerd", "--config", configPath, "--log-level", "debug")
	c.cmd.Stdout, c.cmd.Stderr = c.log, c.log
	c.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGTERM}
	if err := c.cmd.Start(); err != nil {
		t.Fatalf("start containerd: %v", err)
	}
	t.Cleanup(func() { c.stop(t) })

	deadline := time.Now().Add(30 * time.Second)
	for {
		r := c.ctr(t, 10*time.Second, "version")
		if r.err == nil && r.code == 0 && strings.Contains(r.stdout, "Server:") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("containerd did not come up: %v\nlog:\n%s", r, c.logText())
		}
		time.Sleep(100 * time.Millisecond)
	}
	return c
}

func (c *containerd) logText() string {
	b, _ := os.ReadFile(c.log.Name())
	if len(b) > 8000 {
		b = b[len(b)-8000:]
	}
	return string(b)
}

// ctr runs ctr against this containerd, in the test's namespace.
func (c *containerd) ctr(t *testing.T, timeout time.Duration, args ...string) result {
	t.Helper()
	return run(t, timeout, "ctr", append([]string{"--address", c.address, "--namespace", c.ns}, args...)...)
}

// mustCtr is ctr that fails the test unless ctr exits 0.
func (c *containerd) mustCtr(t *testing.T, timeout time.Duration, args ...string) result {
	t.Helper()
	r := c.ctr(t, timeout, args...)
	if r.err != nil || r.code != 0 {
		t.Fatalf("%v", r)
	}
	return r
}

// stop removes the test's tasks, containers and images, stops containerd,
// and undoes what remains: shims, mounts, the namespace's cgroups.
func (c *containerd) stop(t *testing.T) {
	t.Helper()
	if r := c.ctr(t, 10*time.Second, "task", "ls", "-q"); r.code == 0 {
		for _, id := range lines(r.stdout) {
			t.Errorf("leftover: task %s still exists at the end of the test", id)
			c.ctr(t, 10*time.Second, "task", "kill", "-s", "KILL", id)
			time.Sleep(200 * time.Millisecond)
			c.ctr(t, 10*time.Second, "task", "rm", "-f", id)
		}
	}
	if r := c.ctr(t, 10*time.Second, "container", "ls", "-q"); r.code == 0 {
		for _, id := range lines(r.stdout) {
			t.Errorf("leftover: container %s still exists at the end of the test", id)
			c.ctr(t, 10*time.Second, "container", "rm", id)
		}
	}
	c.ctr(t, 30*time.Second, "image", "rm", "--sync", imageName)
	c.cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan error, 1)
	go func() { done <- c.cmd.Wait() }()
	select {
	case <-done:
	case <-time.After(20 * time.Second):
		t.Errorf("containerd did not stop on SIGTERM; killing it")
		c.cmd.Process.Kill()
		<-done
	}
	c.log.Close()
	// Shims exit when their last task is deleted; they were reparented to
	// this process.
	reapOrphans(t, 15*time.Second)
	for _, mp := range testutil.MountsUnder(c.dir) {
		syscall.Unmount(mp, syscall.MNT_DETACH)
	}
	// ctr gives containers the cgroup /<namespace>/<id>; the runtime
	// removes the leaf at delete, never the parent.
	removeCgroupTree("/" + c.ns)
	if t.Failed() {
		t.Logf("containerd log (tail):\n%s", c.logText())
	}
}

// TestContainerd runs containers with containerd's runc shim told to use
// runc, then skiff-runtime: a foreground run, a detached one with exec, ps,
// pause, resume and kill, and a run with a terminal.
func TestContainerd(t *testing.T) {
	c := startContainerd(t)
	r := c.mustCtr(t, 2*time.Minute, "image", "import", imageArchive)
	if !strings.Contains(r.stdout, imageName) {
		t.Fatalf("ctr image import did not name the image %s: %v", imageName, r)
	}
	for _, rt := range runtimes() {
		t.Run(rt.name, func(t *testing.T) {
			// The shim runs the runtime with --root <runc-root>/<namespace>.
			runcRoot := filepath.Join(c.dir, "runtime-root-"+rt.name)
			stateRoot := filepath.Join(runcRoot, c.ns)
			runtimeFlags := []string{"--runc-binary", rt.bin, "--runc-root", runcRoot}
			t.Run("run", func(t *testing.T) { containerdForeground(t, c, rt, runtimeFlags, stateRoot) })
			t.Run("detached", func(t *testing.T) { containerdDetached(t, c, rt, runtimeFlags, stateRoot) })
			t.Run("tty", func(t *testing.T) { containerdTTY(t, c, rt, runtimeFlags, stateRoot) })
			if entries, err := os.ReadDir(stateRoot); err == nil {
				for _, e := range entries {
					t.Errorf("leftover: %s in the runtime root", filepath.Join(stateRoot, e.Name()))
				}
			}
		})
	}
}

// containerdForeground: ctr run --rm, the output and the exit status.
func containerdForeground(t *testing.T, c *containerd, rt ociRuntime, flags []string, stateRoot string) {
	id := "fg-" + rt.name
	hostname, err := os.Hostname()
	if err != nil {
		t.Fatal(err)
	}
	args := append([]string{"run", "--rm"}, flags...)
	args = append(args, "--env", "SKIFF_E2E=yes", "--cwd", "/tmp", imageName, id,
		"sh", "-c", `hostname; grep CapEff /proc/self/status; echo "env=$SKIFF_E2E cwd=$(pwd) pid=$$"; echo to-stderr >&2; exit 3`)
	r := c.ctr(t, time.Minute, args...)
	if r.code != 3 {
		t.Fatalf("want exit status 3 from the container: %v", r)
	}
	for _, want := range []string{hostname, "CapEff:\t" + containerdCapEff, "env=yes cwd=/tmp pid=1"} {
		if !hasLine(r.stdout, want) {
			t.Errorf("output lacks the line %q: %v", want, r)
		}
	}
	if !hasLine(r.stderr, "to-stderr") {
		t.Errorf("stderr lacks the container's stderr: %v", r)
	}
	checkNoState(t, stateRoot, id)
	if r := c.ctr(t, 10*time.Second, "container", "info", id); r.code == 0 {
		t.Errorf("container %s still exists after run --rm", id)
	}
}

// taskStatus returns the STATUS column of `ctr task ls` for id.
func taskStatus(t *testing.T, c *containerd, id string) (pid, status string) {
	t.Helper()
	r := c.mustCtr(t, 10*time.Second, "task", "ls")
	for _, l := range lines(r.stdout) {
		f := strings.Fields(l)
		if len(f) == 3 && f[0] == id {
			return f[1], f[2]
		}
	}
	t.Fatalf("task %s not listed: %v", id, r)
	return "", ""
}

func waitTaskStatus(t *testing.T, c *containerd, id, want string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		_, status := taskStatus(t, c, id)
		if status == want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("task %s is %s, want %s", id, status, want)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// containerdDetached: run -d, then exec, ps, pause, resume, kill, delete.
func containerdDetached(t *testing.T, c *containerd, rt ociRuntime, flags []string, stateRoot string) {
	id := "bg-" + rt.name
	args := append([]string{"run", "-d", "--null-io"}, flags...)
	args = append(args, imageName, id, "sleep", "1000")
	c.mustCtr(t, time.Minute, args...)
	defer func() {
		// On failure, do not leave the task to the next subtests.
		if t.Failed() {
			c.ctr(t, 10*time.Second, "task", "kill", "-s", "KILL", id)
			time.Sleep(300 * time.Millisecond)
			c.ctr(t, 10*time.Second, "task", "rm", "-f", id)
			c.ctr(t, 10*time.Second, "container", "rm", id)
		}
	}()
	pid, status := taskStatus(t, c, id)
	if status != "RUNNING" {
		t.Fatalf("task %s is %s after run -d", id, status)
	}
	checkStateFormat(t, rt, stateRoot, id)

	// exec: output, exit status, same pid namespace.
	r := c.ctr(t, time.Minute, "task", "exec", "--exec-id", "e1", id, "sh", "-c", "echo in-exec; cat /proc/1/cmdline | tr '\\0' ' '; echo; exit 5")
	if r.code != 5 || !hasLine(r.stdout, "in-exec") || !hasLine(r.stdout, "sleep 1000") {
		t.Errorf("exec: want exit 5 and output in-exec, sleep 1000: %v", r)
	}
	// exec with a terminal.
	r = runWithTTY(t, time.Minute, "ctr", "--address", c.address, "--namespace", c.ns, "task", "exec", "-t", "--exec-id", "e2", id,
		"sh", "-c", `tty; [ -t 0 ] && echo stdin-is-a-tty; exit 6`)
	if r.code != 6 || !strings.Contains(r.stdout, "/dev/pts/") || !strings.Contains(r.stdout, "stdin-is-a-tty") {
		t.Errorf("exec -t: want exit 6 and a pts: %v", r)
	}

	// ps: runc's `ps --format json` lists the container's pids.
	r = c.mustCtr(t, 10*time.Second, "task", "ps", id)
	if !hasPidLine(r.stdout, pid) {
		t.Errorf("task ps does not list the init pid %s: %v", pid, r)
	}

	c.mustCtr(t, 10*time.Second, "task", "pause", id)
	waitTaskStatus(t, c, id, "PAUSED")
	if state := freezerState(t, pid); state != "" && state != "FROZEN" {
		t.Errorf("paused task's freezer state is %s", state)
	}
	c.mustCtr(t, 10*time.Second, "task", "resume", id)
	waitTaskStatus(t, c, id, "RUNNING")

	c.mustCtr(t, 10*time.Second, "task", "kill", "-s", "KILL", id)
	waitTaskStatus(t, c, id, "STOPPED")
	// ctr task rm warns of a non-zero exit status: SIGKILL gives 137.
	r = c.mustCtr(t, 30*time.Second, "task", "rm", id)
	if !strings.Contains(r.stderr, "exit code 137") {
		t.Errorf("task rm: want a warning of exit code 137: %v", r)
	}
	c.mustCtr(t, 30*time.Second, "container", "rm", id)
	checkNoState(t, stateRoot, id)
}

// hasPidLine reports whether the output of `ctr task ps` has a line whose
// first column is pid.
func hasPidLine(out, pid string) bool {
	for _, l := range lines(out) {
		if f := strings.Fields(l); len(f) > 0 && f[0] == pid {
			return true
		}
	}
	return false
}

// freezerState returns the cgroup v1 freezer state of process pid's
// cgroup, or "" when there is no v1 freezer.
func freezerState(t *testing.T, pid string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("/proc", pid, "cgroup"))
	if err != nil {
		return ""
	}
	for _, l := range strings.Split(string(b), "\n") {
		parts := strings.SplitN(l, ":", 3)
		if len(parts) == 3 && strings.Contains(","+parts[1]+",", ",freezer,") {
			for _, h := range cgroupHierarchies() {
				if s, err := os.ReadFile(filepath.Join(h, parts[2], "freezer.state")); err == nil {
					return strings.TrimSpace(string(s))
				}
			}
		}
	}
	return ""
}

// containerdTTY: ctr run -t, which hands the runtime a --console-socket.
func containerdTTY(t *testing.T, c *containerd, rt ociRuntime, flags []string, stateRoot string) {
	id := "tty-" + rt.name
	argv := append([]string{"ctr", "--address", c.address, "--namespace", c.ns, "run", "--rm", "-t"}, flags...)
	argv = append(argv, imageName, id, "sh", "-c", `tty; [ -t 0 ] && [ -t 1 ] && echo stdio-is-a-tty; exit 7`)
	r := runWithTTY(t, time.Minute, argv...)
	if r.code != 7 {
		t.Errorf("want exit status 7: %v", r)
	}
	if !strings.Contains(r.stdout, "/dev/pts/0") || !strings.Contains(r.stdout, "stdio-is-a-tty") {
		t.Errorf("the container's stdio is not a terminal: %v", r)
	}
	checkNoState(t, stateRoot, id)
	if r := c.ctr(t, 10*time.Second, "container", "info", id); r.code == 0 {
		t.Errorf("container %s still exists after run --rm -t", id)
		c.ctr(t, 10*time.Second, "task", "kill", "-s", "KILL", id)
		time.Sleep(300 * time.Millisecond)
		c.ctr(t, 10*time.Second, "task", "rm", "-f", id)
		c.ctr(t, 10*time.Second, "container", "rm", id)
	}
}
