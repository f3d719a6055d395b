package clients

import (
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/skiff-containers/skiff/internal/testutil"
)

// podmanCapEff is the effective capability set of podman's default
// containers: chown, dac_override, fowner, fsetid, kill, net_bind_service,
// setfcap, setgid, setpcap, setuid, sys_chroot.
const podmanCapEff = "00000000800405fb"

// podmanUlimits are needed because this host's root lacks CAP_SYS_RESOURCE:
// podman's defaults would raise the limits above the hard ones.
var podmanUlimits = []string{"--ulimit", "nofile=1024:1024", "--ulimit", "nproc=4096:4096"}

// podman drives podman with its own storage in a temporary directory.
type podman struct {
	dir          string
	global       []string // flags before the command, without --runtime
	cgroupParent string
}

func newPodman(t *testing.T) *podman {
	t.Helper()
	needTools(t, map[string]string{"podman": "podman", "conmon": "conmon", "script": "bsdutils"})
	dir := t.TempDir()
	p := &podman{dir: dir, cgroupParent: "/" + uniqueName("skiff-e2e-podman")}
	// Runs after the teardown below.
	testutil.CheckNoLeftovers(t, testutil.Leftovers{Dirs: []string{dir}, CgroupPaths: []string{p.cgroupParent}})
	for _, d := range []string{"root", "runroot", "tmp", "networks"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o700); err != nil {
			t.Fatal(err)
		}
	}
	// Every flag that podman passes on to the `container cleanup` that
	// conmon runs when a container exits. (--runtime-flag is not passed
	// on, so the runtimes keep their default --root.)
	p.global = []string{
		"--root", filepath.Join(dir, "root"),
		"--runroot", filepath.Join(dir, "runroot"),
		"--tmpdir", filepath.Join(dir, "tmp"),
		"--network-config-dir", filepath.Join(dir, "networks"),
		"--storage-driver", "vfs",
		"--cgroup-manager", "cgroupfs",
		"--events-backend", "file",
	}
	t.Cleanup(func() { p.teardown(t) })
	return p
}

// cmd runs podman with runtime bin (runc if "") and args.
func (p *podman) cmd(t *testing.T, timeout time.Duration, bin string, args ...string) result {
	t.Helper()
	return run(t, timeout, "podman", p.argv(bin, args...)[1:]...)
}

func (p *podman) mustCmd(t *testing.T, timeout time.Duration, bin string, args ...string) result {
	t.Helper()
	r := p.cmd(t, timeout, bin, args...)
	if r.err != nil || r.code != 0 {
		t.Fatalf("%v", r)
	}
	return r
}

// argv is the command line of podman with runtime bin and args.
func (p *podman) argv(bin string, args ...string) []string {
	if bin == "" {
		// Commands that run no container still need a runtime that
		// exists: podman's default, crun, may not.
		bin = runcBin
	}
	argv := append([]string{"podman"}, p.global...)
	argv = append(argv, "--runtime", bin)
	return append(argv, args...)
}

// runFlags are the flags of every `podman run` of the tests.
func (p *podman) runFlags() []string {
	return append([]string{"--network", "none", "--cgroup-parent", p.cgroupParent}, podmanUlimits...)
}

func (p *podman) teardown(t *testing.T) {
	t.Helper()
	if r := p.cmd(t, time.Minute, "", "ps", "-aq"); r.code == 0 {
		for _, id := range lines(r.stdout) {
			t.Errorf("leftover: podman container %s at the end of the test", id)
		}
	}
	p.cmd(t, time.Minute, "", "rm", "-af", "-t", "0")
	p.cmd(t, time.Minute, "", "rmi", "-af")
	// conmon and the `podman container cleanup` it starts were reparented
	// to this process; wait for them.
	reapOrphans(t, 20*time.Second)
	for _, mp := range testutil.MountsUnder(p.dir) {
		syscall.Unmount(mp, syscall.MNT_DETACH)
	}
	// podman's cgroupfs manager makes <parent>/libpod-<id> for the runtime
	// and <parent>/conmon, and removes neither parent.
	removeCgroupTree(p.cgroupParent)
}

// runtimeRoot is where a runtime keeps its state when podman does not give
// it a --root: runc's and skiff-runtime's defaults for root.
func runtimeRoot(rt ociRuntime) string {
	if rt.skiff {
		return "/run/skiff-runtime"
	}
	return "/run/runc"
}

// TestPodman runs containers with podman --runtime runc, then
// skiff-runtime: a foreground run --rm, a detached one with exec, exec -t,
// pause, unpause, kill and rm, and a run with a terminal.
func TestPodman(t *testing.T) {
	p := newPodman(t)
	r := p.mustCmd(t, 2*time.Minute, "", "load", "-i", imageArchive)
	if !strings.Contains(r.stdout, imageName) {
		t.Fatalf("podman load did not name the image %s: %v", imageName, r)
	}
	for _, rt := range runtimes() {
		t.Run(rt.name, func(t *testing.T) {
			t.Run("run", func(t *testing.T) { podmanForeground(t, p, rt) })
			t.Run("detached", func(t *testing.T) { podmanDetached(t, p, rt) })
			t.Run("tty", func(t *testing.T) { podmanTTY(t, p, rt) })
		})
	}
}

// podmanForeground: podman run --rm, the output and the exit status.
func podmanForeground(t *testing.T, p *podman, rt ociRuntime) {
	name := "fg-" + rt.name
	args := append([]string{"run", "--rm", "--name", name, "--hostname", "skiff-e2e", "-e", "SKIFF_E2E=yes", "-w", "/tmp"}, p.runFlags()...)
	args = append(args, imageName,
		"sh", "-c", `hostname; grep CapEff /proc/self/status; echo "env=$SKIFF_E2E cwd=$(pwd) pid=$$ nofile=$(ulimit -n)"; echo to-stderr >&2; exit 3`)
	r := p.cmd(t, time.Minute, rt.bin, args...)
	if r.code != 3 {
		t.Fatalf("want exit status 3 from the container: %v", r)
	}
	for _, want := range []string{"skiff-e2e", "CapEff:\t" + podmanCapEff, "env=yes cwd=/tmp pid=1 nofile=1024"} {
		if !hasLine(r.stdout, want) {
			t.Errorf("output lacks the line %q: %v", want, r)
		}
	}
	if !hasLine(r.stderr, "to-stderr") {
		t.Errorf("stderr lacks the container's stderr: %v", r)
	}
	if r := p.cmd(t, 20*time.Second, "", "container", "exists", name); r.code != 1 {
		t.Errorf("container %s still exists after run --rm: %v", name, r)
	}
}

// podmanDetached: run -d, then exec, exec -t, pause, unpause, kill, rm.
func podmanDetached(t *testing.T, p *podman, rt ociRuntime) {
	name := "bg-" + rt.name
	args := append([]string{"run", "-d", "--name", name}, p.runFlags()...)
	args = append(args, imageName, "sleep", "1000")
	r := p.mustCmd(t, time.Minute, rt.bin, args...)
	id := strings.TrimSpace(r.stdout)
	defer func() {
		if t.Failed() {
			p.cmd(t, time.Minute, rt.bin, "rm", "-f", "-t", "0", name)
		}
	}()
	checkStateFormat(t, rt, runtimeRoot(rt), id)
	if r := p.mustCmd(t, 20*time.Second, "", "inspect", "-f", "{{.OCIRuntime}} {{.State.Status}}", name); strings.TrimSpace(r.stdout) != rt.bin+" running" {
		t.Errorf("inspect: want %q: %v", rt.bin+" running", r)
	}

	r = p.cmd(t, time.Minute, rt.bin, "exec", "-e", "X=1", name, "sh", "-c", "echo in-exec X=$X; cat /proc/1/cmdline | tr '\\0' ' '; echo; exit 5")
	if r.code != 5 || !hasLine(r.stdout, "in-exec X=1") || !hasLine(r.stdout, "sleep 1000") {
		t.Errorf("exec: want exit 5 and output in-exec X=1, sleep 1000: %v", r)
	}
	r = runWithTTY(t, time.Minute, p.argv(rt.bin, "exec", "-it", name, "sh", "-c", `tty; [ -t 0 ] && echo stdin-is-a-tty; exit 6`)...)
	if r.code != 6 || !strings.Contains(r.stdout, "/dev/pts/") || !strings.Contains(r.stdout, "stdin-is-a-tty") {
		t.Errorf("exec -it: want exit 6 and a pts: %v", r)
	}

	p.mustCmd(t, 20*time.Second, rt.bin, "pause", name)
	if r := p.mustCmd(t, 20*time.Second, rt.bin, "inspect", "-f", "{{.State.Status}}", name); strings.TrimSpace(r.stdout) != "paused" {
		t.Errorf("after pause: %v", r)
	}
	p.mustCmd(t, 20*time.Second, rt.bin, "unpause", name)
	if r := p.mustCmd(t, 20*time.Second, rt.bin, "inspect", "-f", "{{.State.Status}}", name); strings.TrimSpace(r.stdout) != "running" {
		t.Errorf("after unpause: %v", r)
	}

	p.mustCmd(t, 20*time.Second, rt.bin, "kill", name)
	if r := p.mustCmd(t, 30*time.Second, rt.bin, "wait", name); strings.TrimSpace(r.stdout) != "137" {
		t.Errorf("wait after kill: want 137: %v", r)
	}
	p.mustCmd(t, time.Minute, rt.bin, "rm", name)
	checkNoState(t, runtimeRoot(rt), id)
}

// podmanTTY: podman run -t, which hands the runtime a --console-socket
// from conmon.
func podmanTTY(t *testing.T, p *podman, rt ociRuntime) {
	name := "tty-" + rt.name
	args := append([]string{"run", "--rm", "-it", "--name", name}, p.runFlags()...)
	// podman attaches to conmon after the container started: output
	// written before that is not relayed on a terminal (seen once in CI
	// with runc), so the container waits a moment before it writes.
	args = append(args, imageName, "sh", "-c", `sleep 1; tty; [ -t 0 ] && [ -t 1 ] && echo stdio-is-a-tty; exit 7`)
	r := runWithTTY(t, time.Minute, p.argv(rt.bin, args...)...)
	if r.code != 7 {
		t.Errorf("want exit status 7: %v", r)
	}
	if !strings.Contains(r.stdout, "/dev/pts/0") || !strings.Contains(r.stdout, "stdio-is-a-tty") {
		t.Errorf("the container's stdio is not a terminal: %v", r)
	}
	if r := p.cmd(t, 20*time.Second, "", "container", "exists", name); r.code != 1 {
		t.Errorf("container %s still exists after run --rm -it: %v", name, r)
		p.cmd(t, time.Minute, rt.bin, "rm", "-f", "-t", "0", name)
	}
}
