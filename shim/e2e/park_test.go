package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/skiff-containers/skiff/shim/client"
	"github.com/skiff-containers/skiff/shim/proto"
)

// shimComm returns the name of the program a shim process runs:
// skiff-shim, or skiff-shim-idle once it has parked.
func shimComm(t *testing.T, pid int) string {
	t.Helper()
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/comm", pid))
	if err != nil {
		t.Fatalf("shim %d: %v", pid, err)
	}
	return strings.TrimSpace(string(data))
}

// TestPark runs a container that writes to stdout and stderr (with a line
// that is unfinished while the shim parks) through a shim that parks after
// 300ms: the idle monitor takes over and answers state and wait itself; an
// attach wakes the monitor, which parks again once the client is gone; the
// container's exit is recorded while parked. The log has every line once,
// in order, and the same process served it all.
func TestPark(t *testing.T) {
	for _, terminal := range []bool{false, true} {
		t.Run(map[bool]string{false: "pipes", true: "terminal"}[terminal], func(t *testing.T) {
			forEachRuntime(t, func(t *testing.T, b binaries, r runtimeBin) {
				ctx := testContext(t, 2*time.Minute)
				e := newEnv(t, b, r, terminal, "sh", "-c",
					`i=0; while [ ! -e /stop ]; do echo "out $i"; echo "err $i" >&2; printf "half-"; sleep 0.05; echo "done $i"; i=$((i+1)); sleep 0.05; done; exit 7`)
				opts := e.options(terminal, false)
				opts.ParkAfter = 300 * time.Millisecond
				c, ready, err := client.Spawn(ctx, opts)
				if err != nil {
					t.Fatalf("spawn: %v\n%s", err, e.shimLog())
				}
				if err := c.Start(ctx); err != nil {
					t.Fatal(err)
				}
				parked := func() bool { return shimComm(t, ready.ShimPid) == "skiff-shim-idle" }
				// parks is how many times the idle monitor has set up.
				parks := func() int { return strings.Count(e.shimLog(), "msg=parked") }
				waitFor(t, 10*time.Second, "the shim to park", func() bool { return parked() && parks() == 1 })

				// state and wait are the idle monitor's own.
				st, err := c.State(ctx)
				if err != nil || st.Status != proto.StatusRunning || st.Pid != ready.Pid || st.ShimPid != ready.ShimPid {
					t.Fatalf("state while parked = %+v, %v", st, err)
				}
				waitC := make(chan *proto.Exit, 1)
				go func() {
					ex, err := c.Wait(ctx)
					if err != nil {
						t.Errorf("wait: %v", err)
					}
					waitC <- ex
				}()
				time.Sleep(200 * time.Millisecond)
				if !parked() || parks() != 1 {
					t.Fatalf("state or wait woke the monitor:\n%s", e.shimLog())
				}
				fds := openFds(t, ready.ShimPid)
				// Unfinished lines are container output: not on the command
				// line, which every user can read.
				if cmdline, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", ready.ShimPid)); strings.Contains(string(cmdline), "pending") || strings.Contains(string(cmdline), "68616c662d") {
					t.Errorf("the parked shim's command line holds its state: %q", cmdline)
				}

				// attach needs the monitor; it parks again after.
				var out syncBuffer
				att, err := c.Attach(ctx, client.AttachOptions{Stdout: &out, Stderr: &out})
				if err != nil {
					t.Fatal(err)
				}
				if parked() {
					t.Error("the shim is still parked while a client is attached")
				}
				waitFor(t, 5*time.Second, "output on the attach stream", func() bool { return strings.Contains(out.String(), "done ") })
				att.Close()
				waitFor(t, 10*time.Second, "the shim to park again", func() bool { return parked() && parks() == 2 })
				if again := openFds(t, ready.ShimPid); again != fds {
					t.Errorf("the parked shim had fds\n%s\nand after a resume and a park\n%s", fds, again)
				}

				// The exit, while parked.
				if err := os.WriteFile(filepath.Join(e.bundle, "rootfs", "stop"), nil, 0o644); err != nil {
					t.Fatal(err)
				}
				var ex *proto.Exit
				select {
				case ex = <-waitC:
				case <-ctx.Done():
					t.Fatalf("wait did not return:\n%s", e.shimLog())
				}
				if ex == nil || ex.Code != 7 {
					t.Fatalf("wait = %+v, want code 7", ex)
				}
				if fe, err := proto.ReadExitFile(e.stateDir); err != nil || fe.Code != 7 || !fe.ExitedAt.Equal(ex.ExitedAt) {
					t.Errorf("exit file = %+v, %v; wait said %+v", fe, err, ex)
				}
				if !parked() {
					t.Error("the exit woke the monitor")
				}
				if st, err := c.State(ctx); err != nil || st.Status != proto.StatusStopped || st.Exit == nil || st.Exit.Code != 7 {
					t.Errorf("state after the exit = %+v, %v", st, err)
				}
				checkParkLog(t, e, terminal)

				st, err = c.Delete(ctx, false)
				if err != nil || st.Status != proto.StatusStopped {
					t.Fatalf("delete = %+v, %v\n%s", st, err, e.shimLog())
				}
				waitFor(t, 5*time.Second, "the shim to exit", func() bool { return gone(ready.ShimPid) })
				log := e.shimLog()
				if strings.Count(log, "msg=parked") < 2 || !strings.Contains(log, "msg=resumed") {
					t.Errorf("the shim log does not show two parks and a resume:\n%s", log)
				}
			})
		})
	}
}

// checkParkLog checks the container log of TestPark's container: each
// "out N", "err N" and "half-done N" once, N counting up from 0 without a
// gap, whichever process wrote it.
func checkParkLog(t *testing.T, e *env, terminal bool) {
	t.Helper()
	next := map[string]int{}
	entries := e.readLog()
	for _, en := range entries {
		if en.tag != "F" {
			t.Errorf("unexpected partial entry %+v", en)
			continue
		}
		var kind string
		switch {
		case strings.HasPrefix(en.line, "out "):
			kind = "out"
		case strings.HasPrefix(en.line, "err "):
			kind = "err"
		case strings.HasPrefix(en.line, "half-done "):
			kind = "half-done"
		default:
			t.Errorf("unexpected log line %+v", en)
			continue
		}
		want := "stdout"
		if kind == "err" && !terminal {
			want = "stderr"
		}
		if en.stream != want {
			t.Errorf("%+v: on %s, want %s", en, en.stream, want)
		}
		n, err := strconv.Atoi(strings.TrimPrefix(en.line, kind+" "))
		if err != nil || n != next[kind] {
			t.Errorf("log line %q: want %s %d next", en.line, kind, next[kind])
		}
		next[kind] = n + 1
	}
	if next["half-done"] < 5 {
		t.Errorf("only %d lines logged:\n%v", next["half-done"], entries)
	}
}

// openFds returns what a process's fds are open on, sorted.
func openFds(t *testing.T, pid int) string {
	t.Helper()
	dir := fmt.Sprintf("/proc/%d/fd", pid)
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, en := range ents {
		target, _ := os.Readlink(filepath.Join(dir, en.Name()))
		out = append(out, en.Name()+"->"+target)
	}
	sort.Strings(out)
	return strings.Join(out, " ")
}

// TestParkStdin checks that a parked shim keeps the container's stdin open
// and hands it back: input sent through an attach after the park reaches
// the container, and its end ends it.
func TestParkStdin(t *testing.T) {
	forEachRuntime(t, func(t *testing.T, b binaries, r runtimeBin) {
		ctx := testContext(t, time.Minute)
		e := newEnv(t, b, r, false, "sh", "-c", "cat; echo done")
		opts := e.options(false, true)
		opts.ParkAfter = 200 * time.Millisecond
		c, ready, err := client.Spawn(ctx, opts)
		if err != nil {
			t.Fatalf("spawn: %v\n%s", err, e.shimLog())
		}
		if err := c.Start(ctx); err != nil {
			t.Fatal(err)
		}
		waitFor(t, 10*time.Second, "the shim to park", func() bool { return shimComm(t, ready.ShimPid) == "skiff-shim-idle" })
		if st, err := c.State(ctx); err != nil || st.Status != proto.StatusRunning {
			t.Fatalf("cat ended while the shim was parked (its stdin closed?): %+v, %v", st, err)
		}
		var out syncBuffer
		att, err := c.Attach(ctx, client.AttachOptions{Stdout: &out, Stdin: strings.NewReader("abc\n"), CloseStdinOnEOF: true})
		if err != nil {
			t.Fatal(err)
		}
		exit, err := att.Wait(ctx)
		if err != nil || exit == nil || exit.Code != 0 {
			t.Fatalf("attach ended with %+v, %v\n%s", exit, err, e.shimLog())
		}
		if got, want := lines(e.readLog(), "stdout"), []string{"F abc", "F done"}; !reflect.DeepEqual(got, want) {
			t.Errorf("log = %q, want %q", got, want)
		}
		if _, err := c.Delete(ctx, false); err != nil {
			t.Fatal(err)
		}
	})
}

// TestNoIdleBinary checks that a shim without skiff-shim-idle beside it
// does not park, and works.
func TestNoIdleBinary(t *testing.T) {
	b := build(t)
	data, err := os.ReadFile(b.shim)
	if err != nil {
		t.Fatal(err)
	}
	alone := filepath.Join(t.TempDir(), "skiff-shim")
	if err := os.WriteFile(alone, data, 0o755); err != nil {
		t.Fatal(err)
	}
	b.shim = alone
	r := b.runtimes[0]
	ctx := testContext(t, time.Minute)
	e := newEnv(t, b, r, false, "sleep", "60")
	opts := e.options(false, false)
	opts.ParkAfter = 100 * time.Millisecond
	c, ready, err := client.Spawn(ctx, opts)
	if err != nil {
		t.Fatalf("spawn: %v\n%s", err, e.shimLog())
	}
	if err := c.Start(ctx); err != nil {
		t.Fatal(err)
	}
	time.Sleep(time.Second)
	if got := shimComm(t, ready.ShimPid); got != "skiff-shim" {
		t.Errorf("a shim without skiff-shim-idle runs %s", got)
	}
	if st, err := c.Delete(ctx, true); err != nil || st.Status != proto.StatusStopped {
		t.Fatalf("delete = %+v, %v", st, err)
	}
}

// TestParkAcrossUpgrade replaces skiff-shim and skiff-shim-idle on disk
// while a shim is parked: the shim goes on running the binaries it started
// with (it execs them through fds it holds), as containerd's shims keep
// running across an upgrade.
func TestParkAcrossUpgrade(t *testing.T) {
	b := build(t)
	dir := t.TempDir()
	for _, name := range []string{"skiff-shim", "skiff-shim-idle"} {
		data, err := os.ReadFile(filepath.Join(filepath.Dir(b.shim), name))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, name), data, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	b.shim = filepath.Join(dir, "skiff-shim")
	ctx := testContext(t, time.Minute)
	e := newEnv(t, b, b.runtimes[0], false, "sh", "-c", "while true; do echo tick; sleep 0.2; done")
	opts := e.options(false, false)
	opts.ParkAfter = 200 * time.Millisecond
	c, ready, err := client.Spawn(ctx, opts)
	if err != nil {
		t.Fatalf("spawn: %v\n%s", err, e.shimLog())
	}
	if err := c.Start(ctx); err != nil {
		t.Fatal(err)
	}
	parked := func() bool { return shimComm(t, ready.ShimPid) == "skiff-shim-idle" }
	waitFor(t, 10*time.Second, "the shim to park", parked)

	// The upgrade: new files under the same names (these would fail).
	for _, name := range []string{"skiff-shim", "skiff-shim-idle"} {
		tmp := filepath.Join(dir, "."+name)
		if err := os.WriteFile(tmp, []byte("#!/bin/sh\nexit 42\n"), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(tmp, filepath.Join(dir, name)); err != nil {
			t.Fatal(err)
		}
	}
	var out syncBuffer
	att, err := c.Attach(ctx, client.AttachOptions{Stdout: &out})
	if err != nil {
		t.Fatalf("attach after the upgrade: %v\n%s", err, e.shimLog())
	}
	waitFor(t, 5*time.Second, "output on the attach stream", func() bool { return strings.Contains(out.String(), "tick") })
	if exe, _ := os.Readlink(fmt.Sprintf("/proc/%d/exe", ready.ShimPid)); !strings.HasSuffix(exe, "skiff-shim (deleted)") {
		t.Errorf("the resumed shim runs %q, want the replaced skiff-shim", exe)
	}
	att.Close()
	waitFor(t, 10*time.Second, "the shim to park again", parked)
	if _, err := c.Delete(ctx, true); err != nil {
		t.Fatalf("delete: %v\n%s", err, e.shimLog())
	}
	waitFor(t, 5*time.Second, "the shim to exit", func() bool { return gone(ready.ShimPid) })
}
