package test

import (
	"context"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/skiff-containers/skiff/internal/testutil"
)

// runtimeUnderTest labels skiff-runtime (or whatever -skiff-runtime names).
const runtimeUnderTest = "skiff-runtime"

// runtimeBins lists the runtimes every test runs: the oracle first.
func runtimeBins() []struct{ name, bin string } {
	return []struct{ name, bin string }{{"runc", runcBin}, {runtimeUnderTest, skiffBin}}
}

// newRuntimes returns the oracle and the runtime under test, each with its
// own fresh state root.
func newRuntimes(t *testing.T) (oracle, subject *testutil.Runtime) {
	t.Helper()
	return testutil.NewRuntime(t, "runc", runcBin), testutil.NewRuntime(t, runtimeUnderTest, skiffBin)
}

// forEachRuntime runs f as parallel subtests "runc" and "skiff-runtime",
// each with a runtime that has its own state root.
func forEachRuntime(t *testing.T, f func(t *testing.T, rt *testutil.Runtime)) {
	t.Helper()
	forRuntimes(t, runtimeBins(), f)
}

// forRuntimes is forEachRuntime for a chosen list of runtimes.
func forRuntimes(t *testing.T, bins []struct{ name, bin string }, f func(t *testing.T, rt *testutil.Runtime)) {
	t.Helper()
	for _, r := range bins {
		r := r
		t.Run(r.name, func(t *testing.T) {
			t.Parallel()
			f(t, testutil.NewRuntime(t, r.name, r.bin))
		})
	}
}

// testContext returns a context that ends with the test or after timeout.
func testContext(t *testing.T, timeout time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	t.Cleanup(cancel)
	return ctx
}

// guard registers the leftover check for container id of rt, using dirs.
// Call it after the directories exist (see testutil.CheckNoLeftovers).
func guard(t *testing.T, rt *testutil.Runtime, id string, dirs ...string) {
	t.Helper()
	testutil.CheckNoLeftovers(t, testutil.Leftovers{
		StateRoot:   rt.Root,
		Dirs:        dirs,
		CgroupNames: []string{id},
		Runtime:     rt,
		IDs:         []string{id},
	})
}

// sharedDir returns a new temporary directory that container processes of
// any uid can write to, for bind mounts.
func sharedDir(t *testing.T) string {
	t.Helper()
	d := t.TempDir()
	for p := d; p != os.TempDir() && p != "/"; p = filepath.Dir(p) {
		if err := os.Chmod(p, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Chmod(d, 0o777); err != nil {
		t.Fatal(err)
	}
	return d
}

// waitFile waits up to timeout for path to exist.
func waitFile(path string, timeout time.Duration) bool {
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		if _, err := os.Stat(path); err == nil {
			return true
		}
		time.Sleep(20 * time.Millisecond)
	}
	return false
}

// mentions reports whether s contains every one of words, ignoring case.
func mentions(s string, words ...string) bool {
	s = strings.ToLower(s)
	for _, w := range words {
		if !strings.Contains(s, strings.ToLower(w)) {
			return false
		}
	}
	return true
}

// nonEmptyLines returns the lines of s that are not blank.
func nonEmptyLines(s string) []string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.TrimSpace(l) != "" {
			out = append(out, l)
		}
	}
	return out
}

// cgroupFile returns the path of file in the cgroup v1 controller's
// directory of process pid, as /proc/PID/cgroup names it (runtimes place
// containers relative to their own cgroup, which need not be the root).
func cgroupFile(t *testing.T, pid int, controller, file string) string {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "cgroup"))
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(data), "\n") {
		parts := strings.SplitN(line, ":", 3)
		if len(parts) != 3 {
			continue
		}
		for _, c := range strings.Split(parts[1], ",") {
			if c == controller {
				return filepath.Join("/sys/fs/cgroup", controller, parts[2], file)
			}
		}
	}
	t.Fatalf("process %d is in no %s cgroup:\n%s", pid, controller, data)
	return ""
}
