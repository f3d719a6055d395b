package containers_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/skiff-containers/skiff/engine/containers"
	"github.com/skiff-containers/skiff/errdefs"
)

// TestLifecycle: create, start, wait for the exit code, logs of both
// streams, inspect, start again (the log is appended to), remove; nothing
// is left.
func TestLifecycle(t *testing.T) {
	forEachRuntime(t, func(t *testing.T, e *env) {
		c := e.create(func(cc *containers.CreateConfig) { cc.Name = "life" }, "sh", "-c", "echo out; echo err >&2; exit 3")
		if c.Status != containers.StatusCreated || c.Name != "life" || len(c.ID) != 64 {
			t.Fatalf("created %s", brief(c))
		}
		if c.Path != "sh" || !reflect.DeepEqual(c.Args, []string{"-c", "echo out; echo err >&2; exit 3"}) {
			t.Errorf("path %q args %q", c.Path, c.Args)
		}
		if c.Image != e.images.Image.Name || c.ImageID != e.images.Image.ID.String() || c.Runtime != e.rt.bin {
			t.Errorf("image %q id %q runtime %q", c.Image, c.ImageID, c.Runtime)
		}
		var spec struct {
			Linux struct {
				CgroupsPath string `json:"cgroupsPath"`
			} `json:"linux"`
		}
		if err := json.Unmarshal(c.Spec, &spec); err != nil || spec.Linux.CgroupsPath != "/skiff/default/"+c.ID {
			t.Errorf("spec cgroupsPath %q (%v)", spec.Linux.CgroupsPath, err)
		}
		if code := e.wait("life", "not-running"); code != 0 {
			t.Errorf("wait on a created container = %d, want 0 at once", code)
		}
		e.start("life")
		if code := e.wait("life", ""); code != 3 {
			t.Errorf("exit code %d, want 3", code)
		}
		got := e.inspect(c.ID[:12])
		if got.Status != containers.StatusExited || got.ExitCode != 3 || !got.ExitKnown || got.Started.IsZero() || got.Finished.Before(got.Started) {
			t.Errorf("after exit: status %s exit %d known %v started %v finished %v", got.Status, got.ExitCode, got.ExitKnown, got.Started, got.Finished)
		}
		// Two pipes: the order of the streams is not defined.
		want := []string{"stderr: err", "stdout: out"}
		if l := e.logs("life", containers.LogsOptions{Tail: -1}); !reflect.DeepEqual(sorted(l), want) {
			t.Errorf("logs = %q, want %q", l, want)
		}

		// Start again: a new run, the log appended to.
		e.start("life")
		if code := e.wait("life", ""); code != 3 {
			t.Errorf("second run: exit code %d, want 3", code)
		}
		if l := e.logs("life", containers.LogsOptions{Tail: -1}); len(l) != 4 {
			t.Errorf("logs after two runs = %q, want 4 lines", l)
		}
		if l := e.logs("life", containers.LogsOptions{Tail: 1}); len(l) != 1 {
			t.Errorf("tail 1 = %q", l)
		}
		list, err := e.svc.List(e.ctx, ns, false)
		if err != nil || len(list) != 0 {
			t.Errorf("list of running containers = %v, %v; want none", list, err)
		}
		if list, _ := e.svc.List(e.ctx, ns, true); len(list) != 1 || list[0].ID != c.ID {
			t.Errorf("list -a = %d containers", len(list))
		}
		e.remove("life", false)
		if _, err := e.svc.Inspect(e.ctx, ns, "life"); !errdefs.IsNotFound(err) {
			t.Errorf("inspect after remove = %v, want not found", err)
		}
		if _, err := e.svc.Remove(e.ctx, ns, c.ID, false); !errdefs.IsNotFound(err) {
			t.Errorf("second remove = %v, want not found", err)
		}
		e.checkClean()
	})
}

// TestStopAndKill: stop of a process that ignores SIGTERM is a SIGKILL
// after the timeout (137); one that handles it exits on it; kill -s sends
// the named signal; kill and stop of a stopped container.
func TestStopAndKill(t *testing.T) {
	forEachRuntime(t, func(t *testing.T, e *env) {
		ignore := e.create(nil, "sh", "-c", "trap '' TERM; echo ready; while :; do sleep 0.1; done")
		e.start(ignore.ID)
		waitFor(t, 10*time.Second, "the container to trap", func() bool {
			return len(e.logs(ignore.ID, containers.LogsOptions{Tail: -1})) > 0
		})
		begin := time.Now()
		c, err := e.svc.Stop(e.ctx, ns, ignore.ID, time.Second)
		if err != nil {
			t.Fatal(err)
		}
		if took := time.Since(begin); took < time.Second || took > 8*time.Second {
			t.Errorf("stop took %v, want the 1s timeout then a kill", took)
		}
		if c.Status != containers.StatusExited || c.ExitCode != 137 {
			t.Errorf("after stop: status %s exit %d, want exited 137", c.Status, c.ExitCode)
		}
		// Stop of a stopped container: docker's no-op.
		if c, err := e.svc.Stop(e.ctx, ns, ignore.ID, time.Second); err != nil || c.Status != containers.StatusExited {
			t.Errorf("stop of a stopped container = %+v, %v", c.Status, err)
		}
		if _, err := e.svc.Kill(e.ctx, ns, ignore.ID, "TERM"); !errdefs.IsFailedPrecondition(err) || !strings.Contains(err.Error(), "is not running") {
			t.Errorf("kill of a stopped container = %v, want failed precondition, not running", err)
		}
		var se *containers.StateError
		if _, err := e.svc.Kill(e.ctx, ns, ignore.ID, ""); !errors.As(err, &se) {
			t.Errorf("kill of a stopped container = %T, want *StateError", err)
		}

		handle := e.create(func(cc *containers.CreateConfig) { cc.StopSignal = "SIGUSR2" },
			"sh", "-c", "trap 'echo got USR1; exit 5' USR1; trap 'exit 9' USR2; echo ready; while :; do sleep 0.1; done")
		e.start(handle.ID)
		waitFor(t, 10*time.Second, "the container to trap", func() bool {
			return len(e.logs(handle.ID, containers.LogsOptions{Tail: -1})) > 0
		})
		if _, err := e.svc.Kill(e.ctx, ns, handle.ID, "nope"); !errdefs.IsInvalidArgument(err) {
			t.Errorf("kill -s nope = %v, want invalid argument", err)
		}
		if _, err := e.svc.Kill(e.ctx, ns, handle.ID, "usr1"); err != nil {
			t.Fatal(err)
		}
		if code := e.wait(handle.ID, ""); code != 5 {
			t.Errorf("exit after USR1 = %d, want 5", code)
		}
		if l := e.logs(handle.ID, containers.LogsOptions{Tail: 1}); !reflect.DeepEqual(l, []string{"stdout: got USR1"}) {
			t.Errorf("logs = %q", l)
		}
		// Its stop signal is USR2, handled: stop returns at once with 9.
		e.start(handle.ID)
		waitFor(t, 10*time.Second, "the container to trap again", func() bool {
			return len(e.logs(handle.ID, containers.LogsOptions{Tail: -1})) > 2
		})
		begin = time.Now()
		c, err = e.svc.Stop(e.ctx, ns, handle.ID, -1)
		if err != nil {
			t.Fatal(err)
		}
		if c.ExitCode != 9 || time.Since(begin) > 5*time.Second {
			t.Errorf("stop with the stop signal: exit %d after %v, want 9 at once", c.ExitCode, time.Since(begin))
		}
		// Restart of an exited container runs it again.
		if c, err := e.svc.Restart(e.ctx, ns, handle.ID, time.Second); err != nil || c.Status != containers.StatusRunning {
			t.Fatalf("restart = %+v, %v", c.Status, err)
		}
		if _, err := e.svc.Kill(e.ctx, ns, handle.ID, "9"); err != nil {
			t.Fatal(err)
		}
		if code := e.wait(handle.ID, ""); code != 137 {
			t.Errorf("exit after kill -9 = %d, want 137", code)
		}
		e.remove(ignore.ID, false)
		e.remove(handle.ID, false)
		e.checkClean()
	})
}

// TestRemoveRunning: rm of a running container is refused, rm -f kills it
// and removes everything; a waiter for "removed" sees it.
func TestRemoveRunning(t *testing.T) {
	forEachRuntime(t, func(t *testing.T, e *env) {
		c := e.create(nil, "sleep", "1000")
		e.start(c.ID)
		if c := e.inspect(c.ID); c.Status != containers.StatusRunning || c.Pid <= 0 {
			t.Fatalf("started: %s", brief(c))
		}
		if l, _ := e.svc.List(e.ctx, ns, false); len(l) != 1 {
			t.Errorf("ps = %d containers, want 1", len(l))
		}
		if total, running, _, _, err := e.svc.Counts(e.ctx, ns); err != nil || total != 1 || running != 1 {
			t.Errorf("counts = %d %d %v", total, running, err)
		}
		if _, err := e.svc.Remove(e.ctx, ns, c.ID, false); !errdefs.IsFailedPrecondition(err) {
			t.Fatalf("rm of a running container = %v, want failed precondition", err)
		}
		removed := make(chan int, 1)
		go func() { removed <- e.wait(c.ID, "removed") }()
		time.Sleep(100 * time.Millisecond)
		e.remove(c.ID, true)
		select {
		case code := <-removed:
			if code != 137 {
				t.Errorf("wait removed = %d, want 137", code)
			}
		case <-time.After(10 * time.Second):
			t.Error("wait for removed did not return")
		}
		e.checkClean()
	})
}

// TestNames: docker's name rules, conflicts, random names, and resolution
// by id prefix.
func TestNames(t *testing.T) {
	_, rts := runtimes(t)
	e := newEnv(t, testShim(t), rts[0])
	a := e.create(func(cc *containers.CreateConfig) { cc.Name = "/web" }, "true")
	if a.Name != "web" {
		t.Errorf("name %q, want web", a.Name)
	}
	_, _, err := e.svc.Create(e.ctx, ns, containers.CreateConfig{Name: "web", Image: "busybox"})
	if !errdefs.IsAlreadyExists(err) || !strings.Contains(err.Error(), `container name "/web" is already in use by container "`+a.ID+`"`) {
		t.Errorf("second web = %v, want already exists naming %s", err, a.ID)
	}
	for _, bad := range []string{"-x", "a", "a b", "x/y", "ü1"} {
		if _, _, err := e.svc.Create(e.ctx, ns, containers.CreateConfig{Name: bad, Image: "busybox"}); !errdefs.IsInvalidArgument(err) {
			t.Errorf("name %q = %v, want invalid argument", bad, err)
		}
	}
	if _, _, err := e.svc.Create(e.ctx, ns, containers.CreateConfig{Image: "nosuch:1"}); !errdefs.IsNotFound(err) {
		t.Errorf("missing image = %v, want not found", err)
	}
	if _, _, err := e.svc.Create(e.ctx, ns, containers.CreateConfig{Image: "busybox", NetworkMode: "container:x"}); !errdefs.IsNotImplemented(err) {
		t.Errorf("network container:x = %v, want not implemented", err)
	}
	b := e.create(nil, "true")
	if !strings.Contains(b.Name, "_") {
		t.Errorf("random name %q", b.Name)
	}
	c := e.create(nil, "true")
	// A prefix shared by two ids is ambiguous; the empty one matches all.
	common := 0
	for common < 64 && b.ID[common] == c.ID[common] {
		common++
	}
	if common > 0 {
		if _, err := e.svc.Inspect(e.ctx, ns, b.ID[:common]); !errdefs.IsInvalidArgument(err) {
			t.Errorf("ambiguous prefix = %v, want invalid argument", err)
		}
	}
	// The shortest prefix of b that no other container shares.
	unique := common + 1
	for unique < 64 && (strings.HasPrefix(a.ID, b.ID[:unique]) || strings.HasPrefix(c.ID, b.ID[:unique])) {
		unique++
	}
	if got := e.inspect(b.ID[:unique]); got.ID != b.ID {
		t.Errorf("prefix resolved to %s", got.ID)
	}
	if _, err := e.svc.Inspect(e.ctx, ns, "nosuch"); !errdefs.IsNotFound(err) || !strings.Contains(err.Error(), "no such container: nosuch") {
		t.Errorf("inspect nosuch = %v", err)
	}
	for _, id := range []string{a.ID, b.ID, c.ID} {
		e.remove(id, false)
	}
	e.checkClean()
}

// TestRebuildBundle: a container whose rootfs mount and config.json are
// gone (a reboot empties the state directory) starts all the same.
func TestRebuildBundle(t *testing.T) {
	shim, rts := runtimes(t)
	e := newEnv(t, shim, rts[0])
	c := e.create(nil, "sh", "-c", "echo rebuilt")
	if err := syscall.Unmount(filepath.Join(c.Bundle, "rootfs"), 0); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(filepath.Join(c.Bundle, "config.json")); err != nil {
		t.Fatal(err)
	}
	e.start(c.ID)
	if code := e.wait(c.ID, ""); code != 0 {
		t.Errorf("exit %d", code)
	}
	if l := e.logs(c.ID, containers.LogsOptions{Tail: -1}); !reflect.DeepEqual(l, []string{"stdout: rebuilt"}) {
		t.Errorf("logs = %q", l)
	}
	e.remove(c.ID, false)
	e.checkClean()
}

func testShim(t *testing.T) string {
	shim, _ := runtimes(t)
	return shim
}

// TestStartFailures: a program that does not exist is exit code 127, one
// that cannot be executed 126; the container stays created with the error
// recorded, or with AutoRemove, is gone; nothing half-made stays behind.
func TestStartFailures(t *testing.T) {
	forEachRuntime(t, func(t *testing.T, e *env) {
		for _, tc := range []struct {
			args []string
			code int
		}{
			{[]string{"/no/such/program"}, 127},
			{[]string{"nosuchprogram"}, 127},
			{[]string{"/etc/passwd"}, 126},
		} {
			c := e.create(nil, tc.args...)
			_, err := e.svc.Start(e.ctx, ns, c.ID)
			if code, ok := errdefs.ExitCode(err); !ok || code != tc.code || !errdefs.IsInvalidArgument(err) {
				t.Errorf("start %q = %v (exit code %d, %v), want exit code %d", tc.args, err, code, ok, tc.code)
			}
			got := e.inspect(c.ID)
			if got.Status != containers.StatusCreated || got.ExitCode != tc.code || got.Error == "" {
				t.Errorf("after a failed start: status %s exit %d error %q", got.Status, got.ExitCode, got.Error)
			}
			if _, err := os.Stat(filepath.Join(e.cfg.State, "s")); err == nil {
				entries, _ := os.ReadDir(filepath.Join(e.cfg.State, "s"))
				if len(entries) != 0 {
					t.Errorf("shim state left after a failed start: %v", entries)
				}
			}
			e.remove(c.ID, false)
		}

		// With AutoRemove (run --rm): one error, and nothing at all left.
		c := e.create(func(cc *containers.CreateConfig) { cc.AutoRemove = true }, "/no/such/program")
		_, err := e.svc.Start(e.ctx, ns, c.ID)
		if code, _ := errdefs.ExitCode(err); code != 127 || !strings.Contains(err.Error(), "/no/such/program") {
			t.Errorf("start --rm = %v, want exit code 127 naming the program", err)
		}
		t.Logf("the error: %v", err)
		if _, err := e.svc.Inspect(e.ctx, ns, c.ID); !errdefs.IsNotFound(err) {
			t.Errorf("--rm container after a failed start: %v, want removed", err)
		}
		e.checkClean()
	})
}

// TestAutoRemove: an AutoRemove container is removed when it exits; a
// waiter for "removed" gets its exit code.
func TestAutoRemove(t *testing.T) {
	forEachRuntime(t, func(t *testing.T, e *env) {
		c := e.create(func(cc *containers.CreateConfig) { cc.AutoRemove = true }, "sh", "-c", "sleep 0.3; exit 4")
		e.start(c.ID)
		if code := e.wait(c.ID, "removed"); code != 4 {
			t.Errorf("wait removed = %d, want 4", code)
		}
		if _, err := e.svc.Inspect(e.ctx, ns, c.ID); !errdefs.IsNotFound(err) {
			t.Errorf("inspect after --rm exit = %v", err)
		}
		e.checkClean()
	})
}

// TestLogsFollow: logs -f streams lines as they come and returns at the
// exit; --tail, since and until select; long lines are joined.
func TestLogsFollow(t *testing.T) {
	forEachRuntime(t, func(t *testing.T, e *env) {
		c := e.create(nil, "sh", "-c", `for i in 1 2 3; do echo line$i; done; sleep 1; echo late >&2; head -c 40000 /dev/zero | tr '\0' x; echo; exit 0`)
		e.start(c.ID)
		var got []string
		var times []time.Time
		var mu sync.Mutex
		done := make(chan error, 1)
		go func() {
			done <- e.svc.Logs(e.ctx, ns, c.ID, containers.LogsOptions{Follow: true, Tail: -1}, func(le containers.LogEntry) error {
				mu.Lock()
				defer mu.Unlock()
				got = append(got, string(le.Stream)+": "+strings.TrimSuffix(string(le.Data), "\n"))
				times = append(times, le.Time)
				return nil
			})
		}()
		select {
		case err := <-done:
			if err != nil {
				t.Fatal(err)
			}
		case <-time.After(20 * time.Second):
			t.Fatal("logs -f did not return after the exit")
		}
		if len(got) != 5 || got[0] != "stdout: line1" || got[3] != "stderr: late" || got[4] != "stdout: "+strings.Repeat("x", 40000) {
			short := make([]string, len(got))
			for i, g := range got {
				short[i] = fmt.Sprintf("%.40s (%d)", g, len(g))
			}
			t.Fatalf("logs -f = %q", short)
		}
		if l := e.logs(c.ID, containers.LogsOptions{Tail: 2}); len(l) != 2 || l[0] != "stderr: late" {
			t.Errorf("tail 2 = %.60q", l)
		}
		if l := e.logs(c.ID, containers.LogsOptions{Tail: -1, Since: times[3]}); len(l) != 2 {
			t.Errorf("since the 4th = %d lines, want 2", len(l))
		}
		if l := e.logs(c.ID, containers.LogsOptions{Tail: -1, Until: times[3]}); len(l) != 3 {
			t.Errorf("until the 4th = %q, want 3 lines", l)
		}
		if l := e.logs(c.ID, containers.LogsOptions{Tail: 0}); len(l) != 0 {
			t.Errorf("tail 0 = %q", l)
		}
		e.remove(c.ID, false)
		e.checkClean()
	})
}

// TestAttach: attach to a created container (before it starts), send
// stdin, get its output and its exit.
func TestAttach(t *testing.T) {
	forEachRuntime(t, func(t *testing.T, e *env) {
		c := e.create(func(cc *containers.CreateConfig) { cc.OpenStdin = true }, "sh", "-c", "read x; echo got $x; echo oops >&2; exit 6")
		inR, inW := io.Pipe()
		var out, errb strings.Builder
		a, err := e.svc.Attach(e.ctx, ns, c.ID, containers.AttachOptions{Stdin: inR, CloseStdinOnEOF: true, Stdout: &lockedWriter{w: &out}, Stderr: &lockedWriter{w: &errb}})
		if err != nil {
			t.Fatal(err)
		}
		defer a.Close()
		e.start(c.ID)
		fmt.Fprintln(inW, "hello")
		inW.Close()
		ctx, cancel := context.WithTimeout(e.ctx, 20*time.Second)
		defer cancel()
		exit, err := a.Wait(ctx)
		if err != nil || exit == nil || exit.Code != 6 {
			t.Fatalf("attach wait = %+v, %v; want exit 6", exit, err)
		}
		if out.String() != "got hello\n" || errb.String() != "oops\n" {
			t.Errorf("attached stdout %q stderr %q", out.String(), errb.String())
		}
		e.wait(c.ID, "")
		if _, err := e.svc.Attach(e.ctx, ns, c.ID, containers.AttachOptions{}); !errdefs.IsFailedPrecondition(err) {
			t.Errorf("attach to an exited container = %v, want failed precondition", err)
		}
		e.remove(c.ID, false)
		e.checkClean()
	})
}

type lockedWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

// TestRecover: the service "crashes" (Close, containers keep running); one
// container exits, and one's shim is killed, while no service runs; a
// --rm container exits meanwhile. A new service on the same database and
// directories shows them all with the right status and exit codes, and
// stop, logs and remove work.
func TestRecover(t *testing.T) {
	forEachRuntime(t, func(t *testing.T, e *env) {
		long := e.create(func(cc *containers.CreateConfig) { cc.Name = "long" }, "sh", "-c", "trap 'exit 0' TERM; i=0; while :; do echo tick $i; i=$((i+1)); sleep 0.1; done")
		const untilGo = "while [ ! -e /tmp/go ]; do sleep 0.05; done; echo bye; exit "
		short := e.create(func(cc *containers.CreateConfig) { cc.Name = "short" }, "sh", "-c", untilGo+"7")
		orphan := e.create(func(cc *containers.CreateConfig) { cc.Name = "orphan" }, "sleep", "1000")
		rm := e.create(func(cc *containers.CreateConfig) { cc.AutoRemove = true; cc.Name = "rm" }, "sh", "-c", untilGo+"3")
		e.create(func(cc *containers.CreateConfig) { cc.Name = "created" }, "true")
		for _, c := range []containers.Container{long, short, orphan, rm} {
			e.start(c.ID)
		}
		shortPid := e.inspect("short").Pid
		rmPid := e.inspect("rm").Pid
		orphanPid := e.inspect("orphan").Pid
		shimPid := shimOf(t, orphanPid)
		for _, pid := range []int{shortPid, rmPid, orphanPid, shimPid} {
			if pid <= 1 || gone(pid) {
				t.Fatalf("implausible pids: short %d, rm %d, orphan %d, its shim %d", shortPid, rmPid, orphanPid, shimPid)
			}
		}
		if err := e.svc.Close(); err != nil {
			t.Fatal(err)
		}

		// While no service runs: "short" and "rm" exit (told through a
		// file in their root filesystems), the orphan's shim dies.
		for _, c := range []containers.Container{short, rm} {
			if err := os.WriteFile(filepath.Join(c.Bundle, "rootfs", "tmp", "go"), nil, 0o644); err != nil {
				t.Fatal(err)
			}
		}
		syscall.Kill(shimPid, syscall.SIGKILL)
		waitFor(t, 10*time.Second, "the exits", func() bool {
			return gone(shortPid) && gone(rmPid) && gone(shimPid)
		})
		time.Sleep(300 * time.Millisecond) // the exit files

		svc := e.newService()
		e.svc = svc
		if err := svc.Recover(e.ctx); err != nil {
			t.Fatalf("recover: %v", err)
		}
		list, err := svc.List(e.ctx, ns, true)
		if err != nil {
			t.Fatal(err)
		}
		status := map[string]string{}
		for _, c := range list {
			status[c.Name] = fmt.Sprintf("%s %d %v", c.Status, c.ExitCode, c.ExitKnown)
		}
		want := map[string]string{
			"long":    "running 0 false",
			"short":   "exited 7 true",
			"orphan":  "exited 255 false",
			"created": "created 0 false",
		}
		if !reflect.DeepEqual(status, want) {
			t.Errorf("after recovery: %v, want %v", status, want)
		}
		if gone(orphanPid) == false {
			t.Errorf("the orphan (shim killed) still runs after recovery")
		}
		if l := e.logs("long", containers.LogsOptions{Tail: 1}); len(l) != 1 || !strings.HasPrefix(l[0], "stdout: tick") {
			t.Errorf("logs of the recovered container = %q", l)
		}
		// The recovered watcher records the exit.
		c, err := svc.Stop(e.ctx, ns, "long", 5*time.Second)
		if err != nil || c.Status != containers.StatusExited || c.ExitCode != 0 {
			t.Errorf("stop after recovery = %s %d, %v", c.Status, c.ExitCode, err)
		}
		if l := e.logs("short", containers.LogsOptions{Tail: -1}); !reflect.DeepEqual(l, []string{"stdout: bye"}) {
			t.Errorf("logs of short = %q", l)
		}
		if _, err := svc.Inspect(e.ctx, ns, "rm"); !errdefs.IsNotFound(err) {
			t.Errorf("the --rm container that exited meanwhile: %v, want removed", err)
		}
		// short runs again after recovery (and exits at once: /tmp/go is
		// in its writable layer).
		e.start("short")
		if code := e.wait("short", "not-running"); code != 7 {
			t.Errorf("second run of short: exit %d, want 7", code)
		}
		for _, n := range []string{"long", "short", "orphan", "created"} {
			e.remove(n, true)
		}
		e.checkClean()
	})
}

// brief describes c without its spec.
func brief(c containers.Container) string {
	return fmt.Sprintf("%s name %s status %s exit %d (known %v) pid %d error %q", c.ID, c.Name, c.Status, c.ExitCode, c.ExitKnown, c.Pid, c.Error)
}

func sorted(s []string) []string {
	out := append([]string(nil), s...)
	sort.Strings(out)
	return out
}

func gone(pid int) bool {
	err := syscall.Kill(pid, 0)
	if errors.Is(err, syscall.ESRCH) {
		return true
	}
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return true
	}
	i := strings.LastIndexByte(string(data), ')')
	return i > 0 && i+2 < len(data) && (data[i+2] == 'Z' || data[i+2] == 'X')
}

// shimOf returns the parent of pid (the container's init is the shim's
// child).
func shimOf(t *testing.T, pid int) int {
	t.Helper()
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		t.Fatal(err)
	}
	s := string(data)
	fields := strings.Fields(s[strings.LastIndexByte(s, ')')+2:])
	var ppid int
	fmt.Sscan(fields[1], &ppid)
	return ppid
}
