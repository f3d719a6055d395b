// Package clients holds end-to-end tests in which well-known container
// engines drive skiff-runtime in place of runc: containerd (the Debian
// package, through its runc shim, containerd-shim-runc-v2, told to use our
// binary with `ctr run --runc-binary`) and podman (`podman --runtime`, with
// conmon as the monitor).
//
// Every scenario runs twice, once with runc, the oracle, and once with
// skiff-runtime, so that a failure of the latter can be told apart from a
// problem of the test or of the host. The tests prove that the engine really
// ran the binary it was given by reading the container's state.json, whose
// format differs between runc and skiff-runtime.
//
// The image is built, not pulled: internal/imagebuild makes an OCI archive
// from the host's static busybox, which `ctr image import` and `podman load`
// read. Each test starts its own containerd, or gives podman its own storage,
// in temporary directories, and leaves no process, mount, cgroup or state
// behind, so that the tests can run twice in a row.
//
// Needs root and the Debian packages containerd, podman (which brings conmon
// and containers-common), runc, busybox-static and bsdutils (`script`, for the
// runs with a terminal). By default TestMain builds ./cmd/skiff-runtime; the
// flag -skiff-runtime=PATH or SKIFF_RUNTIME=PATH selects another binary.
package clients

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/skiff-containers/skiff/internal/imagebuild"
	"github.com/skiff-containers/skiff/internal/testutil"
)

var skiffRuntimeFlag = flag.String("skiff-runtime", "", "runtime binary to test instead of building ./cmd/skiff-runtime (also $SKIFF_RUNTIME)")

// imageName is the reference the test image is imported under.
const imageName = "localhost/skiff-e2e/busybox:latest"

var (
	runcBin  string // the oracle
	skiffBin string // the runtime under test
	// imageArchive is the OCI archive of the busybox image.
	imageArchive string
)

// runtimeUnderTest names skiff-runtime in subtests.
const runtimeUnderTest = "skiff-runtime"

// ociRuntime is one runtime binary the scenarios run with.
type ociRuntime struct {
	name, bin string
	// skiff tells which state.json format the binary writes.
	skiff bool
}

func runtimes() []ociRuntime {
	return []ociRuntime{{"runc", runcBin, false}, {runtimeUnderTest, skiffBin, true}}
}

func TestMain(m *testing.M) {
	flag.Parse()
	os.Exit(testMain(m))
}

func testMain(m *testing.M) int {
	if os.Geteuid() != 0 {
		fmt.Fprintln(os.Stderr, "clients: the end-to-end tests need root")
		return 1
	}
	var err error
	if runcBin, err = exec.LookPath("runc"); err != nil {
		fmt.Fprintf(os.Stderr, "clients: runc, the oracle runtime, is required (Debian package runc): %v\n", err)
		return 1
	}
	skiffBin = *skiffRuntimeFlag
	if skiffBin == "" {
		skiffBin = os.Getenv("SKIFF_RUNTIME")
	}
	if skiffBin == "" {
		if skiffBin, err = testutil.BuildBinary("./cmd/skiff-runtime"); err != nil {
			fmt.Fprintf(os.Stderr, "clients: %v\n", err)
			return 1
		}
		defer testutil.RemoveBuilds()
	} else if skiffBin, err = exec.LookPath(skiffBin); err != nil {
		fmt.Fprintf(os.Stderr, "clients: runtime under test: %v\n", err)
		return 1
	}
	if skiffBin, err = filepath.Abs(skiffBin); err != nil {
		fmt.Fprintf(os.Stderr, "clients: %v\n", err)
		return 1
	}

	// Engines daemonize their monitors (the containerd shim, conmon),
	// which are then reparented to the nearest subreaper. Being one, the
	// test reaps them itself and sees them in its leftover check, instead of
	// leaving zombies to an init that may not reap.
	if err := unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0); err != nil {
		fmt.Fprintf(os.Stderr, "clients: become a subreaper: %v\n", err)
		return 1
	}

	dir, err := os.MkdirTemp("", "skiff-clients-image-")
	if err != nil {
		fmt.Fprintf(os.Stderr, "clients: %v\n", err)
		return 1
	}
	defer os.RemoveAll(dir)
	img, err := imagebuild.Build(imagebuild.Options{Name: imageName})
	if err != nil {
		fmt.Fprintf(os.Stderr, "clients: %v\n", err)
		return 1
	}
	imageArchive = filepath.Join(dir, "busybox.oci.tar")
	if err := img.WriteArchiveFile(imageArchive); err != nil {
		fmt.Fprintf(os.Stderr, "clients: %v\n", err)
		return 1
	}
	fmt.Fprintf(os.Stderr, "clients: oracle %s, runtime under test %s\n", runcBin, skiffBin)
	return m.Run()
}

// needTools fails the test, naming the Debian package, when a program it
// drives is missing.
func needTools(t *testing.T, tools map[string]string) {
	t.Helper()
	for tool, pkg := range tools {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("%s is required (Debian package %s): %v", tool, pkg, err)
		}
	}
}

// result is what a command did.
type result struct {
	cmdline        string
	stdout, stderr string
	code           int
	err            error
}

func (r result) String() string {
	return fmt.Sprintf("%s: exit %d (%v)\nstdout:\n%s\nstderr:\n%s", r.cmdline, r.code, r.err, r.stdout, r.stderr)
}

// run runs name with args, with stdin from /dev/null, and waits for it up to
// timeout.
func run(t *testing.T, timeout time.Duration, name string, args ...string) result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.WaitDelay = 5 * time.Second
	var stdout, stderr strings.Builder
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	r := result{cmdline: name + " " + strings.Join(args, " "), stdout: stdout.String(), stderr: stderr.String(), code: -1, err: err}
	if cmd.ProcessState != nil {
		r.code = cmd.ProcessState.ExitCode()
	}
	if ctx.Err() != nil {
		r.err = fmt.Errorf("timed out after %v: %w", timeout, err)
	}
	return r
}

// mustRun is run that fails the test unless the command exits 0.
func mustRun(t *testing.T, timeout time.Duration, name string, args ...string) result {
	t.Helper()
	r := run(t, timeout, name, args...)
	if r.err != nil || r.code != 0 {
		t.Fatalf("%v", r)
	}
	return r
}

// runWithTTY runs argv under script(1), which gives it a pseudo-terminal
// as its stdin, stdout and stderr, the way a person at a terminal would.
// The output has the terminal's CRLF line endings turned into LF.
func runWithTTY(t *testing.T, timeout time.Duration, argv ...string) result {
	t.Helper()
	quoted := make([]string, len(argv))
	for i, a := range argv {
		quoted[i] = shellQuote(a)
	}
	r := run(t, timeout, "script", "-qec", strings.Join(quoted, " "), "/dev/null")
	r.stdout = strings.ReplaceAll(r.stdout, "\r\n", "\n")
	return r
}

func shellQuote(s string) string {
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// lines returns the non-empty lines of s without surrounding space.
func lines(s string) []string {
	var out []string
	sc := bufio.NewScanner(strings.NewReader(s))
	for sc.Scan() {
		if l := strings.TrimSpace(sc.Text()); l != "" {
			out = append(out, l)
		}
	}
	return out
}

// hasLine reports whether one of the lines of s, trimmed, is want.
func hasLine(s, want string) bool {
	for _, l := range lines(s) {
		if l == want {
			return true
		}
	}
	return false
}

// checkStateFormat verifies that the state directory of container id in
// the runtime root root was written by rt's binary: runc's state.json has
// init_process_pid, skiff-runtime's has initStartTime and newPidNs. An
// engine that ran some other runtime than the one it was told would fail
// here.
func checkStateFormat(t *testing.T, rt ociRuntime, root, id string) {
	t.Helper()
	path := filepath.Join(root, id, "state.json")
	b, err := os.ReadFile(path)
	if err != nil {
		t.Errorf("%s: the engine did not run %s with --root %s: %v", rt.name, rt.bin, root, err)
		return
	}
	s := string(b)
	isSkiff := strings.Contains(s, `"initStartTime":`) && strings.Contains(s, `"newPidNs":`)
	isRunc := strings.Contains(s, `"init_process_pid":`)
	switch {
	case rt.skiff && (!isSkiff || isRunc):
		t.Errorf("%s is not in skiff-runtime's format: the engine ran another runtime than %s:\n%.300s", path, rt.bin, s)
	case !rt.skiff && !isRunc:
		t.Errorf("%s is not in runc's format:\n%.300s", path, s)
	}
}

// checkNoState fails the test if root still holds state of container id.
func checkNoState(t *testing.T, root, id string) {
	t.Helper()
	if _, err := os.Lstat(filepath.Join(root, id)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("leftover: state of container %s in runtime root %s (%v)", id, root, err)
	}
}

// cgroupHierarchies returns the mount points of the cgroup hierarchies.
func cgroupHierarchies() []string {
	mounts, err := testutil.ReadMountInfo("self")
	if err != nil {
		return nil
	}
	var out []string
	for _, m := range mounts {
		if m.FSType == "cgroup" || m.FSType == "cgroup2" {
			out = append(out, m.MountPoint)
		}
	}
	return out
}

// removeCgroupTree removes the cgroup rel (like "/skiff-e2e-123") and
// everything below it from every hierarchy, deepest first. The engines
// create such parents for their containers and never remove them.
func removeCgroupTree(rel string) {
	for _, h := range cgroupHierarchies() {
		root := filepath.Join(h, rel)
		var tree []string
		filepath.WalkDir(root, func(p string, d os.DirEntry, err error) error {
			if err == nil && d.IsDir() {
				tree = append(tree, p)
			}
			return nil
		})
		for i := len(tree) - 1; i >= 0; i-- {
			for try := 0; try < 50; try++ {
				if err := syscall.Rmdir(tree[i]); err == nil || errors.Is(err, os.ErrNotExist) {
					break
				}
				time.Sleep(20 * time.Millisecond)
			}
		}
	}
}

// childProcesses returns the pids of this process's children, with their
// state letter ("Z" for a zombie) and name.
func childProcesses() map[int][2]string {
	self := os.Getpid()
	out := map[int][2]string{}
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat"))
		if err != nil {
			continue
		}
		s := string(b)
		open, end := strings.IndexByte(s, '('), strings.LastIndexByte(s, ')')
		if open < 0 || end < open {
			continue
		}
		f := strings.Fields(s[end+1:])
		if len(f) < 2 {
			continue
		}
		if ppid, _ := strconv.Atoi(f[1]); ppid == self {
			out[pid] = [2]string{f[0], s[open+1 : end]}
		}
	}
	return out
}

// reapOrphans waits up to timeout for the monitors and helpers that were
// reparented to this process (see the subreaper in TestMain) to exit, reaps
// them, and reports those still running. Call it only when none of the
// test's own commands is running, as it may reap any child.
func reapOrphans(t *testing.T, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		for {
			var ws unix.WaitStatus
			pid, err := unix.Wait4(-1, &ws, unix.WNOHANG, nil)
			if pid <= 0 || err != nil {
				break
			}
		}
		kids := childProcesses()
		if len(kids) == 0 {
			return
		}
		if time.Now().After(deadline) {
			for pid, k := range kids {
				t.Errorf("leftover: process %d (%s, state %s) still running; killing it", pid, k[1], k[0])
				syscall.Kill(pid, syscall.SIGKILL)
			}
			time.Sleep(100 * time.Millisecond)
			for {
				var ws unix.WaitStatus
				if pid, err := unix.Wait4(-1, &ws, unix.WNOHANG, nil); pid <= 0 || err != nil {
					return
				}
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// uniqueName returns a name unique to this test process, for namespaces
// and cgroup parents.
func uniqueName(prefix string) string {
	return fmt.Sprintf("%s-%d-%d", prefix, os.Getpid(), time.Now().UnixNano()%1e6)
}
