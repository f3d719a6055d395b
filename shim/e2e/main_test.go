// Package e2e tests skiff-shim end to end: the test builds cmd/skiff-shim
// and cmd/skiff-runtime, spawns shims for busybox bundles through
// shim/client as the engine will, and checks the container's log, exit
// file, attach, kill and delete, what survives the engine's death and what
// a dead shim leaves. Every test runs with skiff-runtime and with runc
// (the shim must drive either), and checks that nothing is left behind. It
// needs root, runc on PATH, and the host's static busybox.
package e2e

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/skiff-containers/skiff/internal/testutil"
	"github.com/skiff-containers/skiff/shim/client"
)

// binaries are the programs under test.
type binaries struct {
	shim     string
	runtimes []runtimeBin
}

type runtimeBin struct{ name, bin string }

// build builds the binaries once per test binary.
func build(t *testing.T) binaries {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Fatal("the shim's end-to-end tests need root (the suite runs as root)")
	}
	runc, err := exec.LookPath("runc")
	if err != nil {
		t.Fatalf("runc is required on PATH: %v", err)
	}
	return binaries{
		shim: testutil.MustBuild(t, "./cmd/skiff-shim"),
		runtimes: []runtimeBin{
			{"skiff-runtime", testutil.MustBuild(t, "./cmd/skiff-runtime")},
			{"runc", runc},
		},
	}
}

func TestMain(m *testing.M) {
	code := m.Run()
	testutil.RemoveBuilds()
	os.Exit(code)
}

// forEachRuntime runs f as a parallel subtest per runtime.
func forEachRuntime(t *testing.T, f func(t *testing.T, b binaries, rt runtimeBin)) {
	b := build(t)
	for _, rt := range b.runtimes {
		t.Run(rt.name, func(t *testing.T) {
			t.Parallel()
			f(t, b, rt)
		})
	}
}

// env is one container's worth of test fixtures.
type env struct {
	t        *testing.T
	b        binaries
	rt       *testutil.Runtime
	id       string
	bundle   string
	stateDir string
	logPath  string
}

// newEnv makes a busybox bundle running args, a short state directory (the
// socket path must fit a unix address), a runtime root, and registers the
// leftover check: no runtime state, cgroup, mount or process (the shim
// included: its command line names the state directory) may survive.
func newEnv(t *testing.T, b binaries, r runtimeBin, terminal bool, args ...string) *env {
	t.Helper()
	bundle, spec := testutil.BusyboxBundle(t, args...)
	if terminal {
		spec.Process.Terminal = true
		testutil.WriteSpec(t, bundle, spec)
	}
	stateDir, err := os.MkdirTemp("", "shim-e2e-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(stateDir) })
	rt := testutil.NewRuntime(t, r.name, r.bin)
	var rnd [4]byte
	rand.Read(rnd[:])
	e := &env{
		t: t, b: b, rt: rt,
		id:       "shim-e2e-" + hex.EncodeToString(rnd[:]),
		bundle:   bundle,
		stateDir: filepath.Join(stateDir, "state"),
		logPath:  filepath.Join(stateDir, "logs", "ctr.log"),
	}
	testutil.CheckNoLeftovers(t, testutil.Leftovers{
		StateRoot:   rt.Root,
		Dirs:        []string{bundle, stateDir},
		CgroupNames: []string{e.id},
		Runtime:     rt,
		IDs:         []string{e.id},
	})
	return e
}

func (e *env) options(terminal, stdin bool) client.Options {
	return client.Options{
		Binary: e.b.shim, ID: e.id, Bundle: e.bundle,
		Runtime: e.rt.Bin, RuntimeRoot: e.rt.Root,
		StateDir: e.stateDir, LogPath: e.logPath,
		Terminal: terminal, Stdin: stdin, Debug: true,
	}
}

func (e *env) spawn(ctx context.Context, terminal, stdin bool) (*client.Client, client.Ready) {
	e.t.Helper()
	c, ready, err := client.Spawn(ctx, e.options(terminal, stdin))
	if err != nil {
		e.t.Fatalf("spawn shim: %v\nshim log:\n%s", err, e.shimLog())
	}
	if ready.ShimPid <= 0 || ready.Pid <= 0 {
		e.t.Fatalf("spawn shim: ready %+v", ready)
	}
	return c, ready
}

func (e *env) shimLog() string {
	data, _ := os.ReadFile(filepath.Join(e.stateDir, "shim.log"))
	return string(data)
}

// logEntry is one parsed line of a CRI log.
type logEntry struct {
	stream, tag, line string
}

// readLog parses the container log, failing on any malformed entry.
func (e *env) readLog() []logEntry {
	e.t.Helper()
	f, err := os.Open(e.logPath)
	if err != nil {
		e.t.Fatal(err)
	}
	defer f.Close()
	var out []logEntry
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		parts := strings.SplitN(sc.Text(), " ", 4)
		if len(parts) != 4 {
			e.t.Fatalf("malformed CRI log entry %q", sc.Text())
		}
		if _, err := time.Parse(time.RFC3339Nano, parts[0]); err != nil {
			e.t.Fatalf("CRI log entry %q: timestamp: %v", sc.Text(), err)
		}
		if (parts[1] != "stdout" && parts[1] != "stderr") || (parts[2] != "P" && parts[2] != "F") {
			e.t.Fatalf("CRI log entry %q: bad stream or tag", sc.Text())
		}
		out = append(out, logEntry{parts[1], parts[2], parts[3]})
	}
	return out
}

// lines returns the full lines of stream in the log, in order.
func lines(entries []logEntry, stream string) []string {
	var out []string
	for _, en := range entries {
		if en.stream == stream {
			out = append(out, en.tag+" "+en.line)
		}
	}
	return out
}

func testContext(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// waitFor polls cond until it holds or timeout passes.
func waitFor(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// procStat returns a process's state letter, parent and session, or ok
// false if it is gone.
func procStat(pid int) (state string, ppid, sid int, ok bool) {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return "", 0, 0, false
	}
	s := string(data)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+2:])
	ppid, _ = strconv.Atoi(f[1])
	sid, _ = strconv.Atoi(f[3])
	return f[0], ppid, sid, true
}

// gone reports whether pid has exited (a zombie counts as exited).
func gone(pid int) bool {
	st, _, _, ok := procStat(pid)
	return !ok || st == "Z" || st == "X"
}
