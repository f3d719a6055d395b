package containers_test

import (
	"bytes"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/skiff-containers/skiff/engine/containers"
	"github.com/skiff-containers/skiff/errdefs"
)

// syncBuf is a bytes.Buffer safe for the exec's output goroutine.
type syncBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuf) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuf) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// TestExec runs processes in a running container: exit codes, output,
// stdin, a missing program (docker's 127), and a stopped container
// (docker's "is not running", failed precondition).
func TestExec(t *testing.T) {
	forEachRuntime(t, func(t *testing.T, e *env) {
		c := e.create(func(cc *containers.CreateConfig) { cc.Name = "box" }, "sleep", "300")
		if _, err := e.svc.Exec(e.ctx, ns, "box", containers.ExecOptions{Cmd: []string{"true"}}); !errdefs.IsFailedPrecondition(err) ||
			!strings.Contains(err.Error(), "container box is not running") {
			t.Errorf("exec in a created container = %v, want failed precondition \"container box is not running\"", err)
		}
		e.start(c.ID)
		cases := []struct {
			name           string
			o              containers.ExecOptions
			code           int
			stdout, stderr string
		}{
			{name: "exit code", o: containers.ExecOptions{Cmd: []string{"sh", "-c", "echo out; echo err >&2; exit 7"}}, code: 7, stdout: "out\n", stderr: "err\n"},
			{name: "stdin", o: containers.ExecOptions{Cmd: []string{"cat"}, Stdin: strings.NewReader("abc\n")}, stdout: "abc\n"},
			{name: "env and workdir", o: containers.ExecOptions{Cmd: []string{"sh", "-c", "echo $X $(pwd)"}, Env: []string{"X=y"}, WorkingDir: "/tmp"}, stdout: "y /tmp\n"},
			{name: "user", o: containers.ExecOptions{Cmd: []string{"id", "-u"}, User: "1234"}, stdout: "1234\n"},
			{name: "terminal", o: containers.ExecOptions{Cmd: []string{"sh", "-c", "stty size; exit 2"}, Tty: true, Width: 77, Height: 22}, code: 2, stdout: "22 77\r\n"},
		}
		for _, tc := range cases {
			var out, errb syncBuf
			tc.o.Stdout, tc.o.Stderr = &out, &errb
			p, err := e.svc.Exec(e.ctx, ns, "box", tc.o)
			if err != nil {
				t.Errorf("%s: %v", tc.name, err)
				continue
			}
			exit, err := p.Wait(e.ctx)
			if err != nil || exit == nil || exit.Code != tc.code || out.String() != tc.stdout || errb.String() != tc.stderr {
				t.Errorf("%s: exit %+v, %v, output %q %q; want %d, %q %q", tc.name, exit, err, out.String(), errb.String(), tc.code, tc.stdout, tc.stderr)
			}
			p.Close()
		}
		_, err := e.svc.Exec(e.ctx, ns, "box", containers.ExecOptions{Cmd: []string{"/no/such"}})
		if code, ok := errdefs.ExitCode(err); !ok || code != 127 {
			t.Errorf("exec of a missing program = %v, want docker's 127", err)
		}
		if _, err := e.svc.Exec(e.ctx, ns, "box", containers.ExecOptions{}); !errdefs.IsInvalidArgument(err) {
			t.Errorf("exec without a command = %v, want invalid argument", err)
		}
		if _, err := e.svc.Exec(e.ctx, ns, "box", containers.ExecOptions{Cmd: []string{"true"}, WorkingDir: "rel"}); !errdefs.IsInvalidArgument(err) {
			t.Errorf("exec with a relative workdir = %v, want invalid argument", err)
		}
		// A detached exec runs on.
		if _, err := e.svc.Exec(e.ctx, ns, "box", containers.ExecOptions{Cmd: []string{"touch", "/tmp/detached"}, Detach: true}); err != nil {
			t.Fatal(err)
		}
		waitFor(t, 5*time.Second, "the detached exec", func() bool {
			_, err := os.Stat(filepath.Join(c.Bundle, "rootfs", "tmp", "detached"))
			return err == nil
		})
		if _, err := e.svc.Stop(e.ctx, ns, "box", time.Second); err != nil {
			t.Fatal(err)
		}
		_, err = e.svc.Exec(e.ctx, ns, "box", containers.ExecOptions{Cmd: []string{"true"}})
		if !errdefs.IsFailedPrecondition(err) || err.Error() != "container box is not running" {
			t.Errorf("exec in a stopped container = %v, want docker's \"container box is not running\"", err)
		}
		e.remove("box", false)
		e.checkClean()
	})
}

// TestRestartPolicy: on-failure:3 restarts a crashing container exactly
// three times; always restarts after a crash; neither restarts after a
// user's stop; a user's start resets the count.
func TestRestartPolicy(t *testing.T) {
	forEachRuntime(t, func(t *testing.T, e *env) {
		crash := e.create(func(cc *containers.CreateConfig) {
			cc.Name = "crash"
			cc.RestartPolicy = containers.RestartPolicy{Name: "on-failure", MaxRetries: 3}
		}, "sh", "-c", "echo run; exit 3")
		always := e.create(func(cc *containers.CreateConfig) {
			cc.Name = "always"
			cc.RestartPolicy = containers.RestartPolicy{Name: "always"}
		}, "sh", "-c", "sleep 0.2; exit 0")
		unless := e.create(func(cc *containers.CreateConfig) {
			cc.Name = "unless"
			cc.RestartPolicy = containers.RestartPolicy{Name: "unless-stopped"}
		}, "sleep", "300")
		for _, c := range []containers.Container{crash, always, unless} {
			e.start(c.ID)
		}
		waitFor(t, 20*time.Second, "three restarts of crash", func() bool {
			c := e.inspect("crash")
			return c.RestartCount == 3 && c.Status == containers.StatusExited
		})
		time.Sleep(1500 * time.Millisecond) // a fourth would come after 0.8s
		if c := e.inspect("crash"); c.RestartCount != 3 || c.Status != containers.StatusExited || c.ExitCode != 3 {
			t.Errorf("crash: %s restarts %d, want exited (3) after 3 restarts", brief(c), c.RestartCount)
		}
		if l := e.logs("crash", containers.LogsOptions{Tail: -1}); len(l) != 4 {
			t.Errorf("crash ran %d times, want 4: %q", len(l), l)
		}
		waitFor(t, 10*time.Second, "always to restart", func() bool { return e.inspect("always").RestartCount >= 2 })
		for _, name := range []string{"always", "unless"} {
			waitFor(t, 10*time.Second, name+" to run", func() bool { return e.inspect(name).Status == containers.StatusRunning })
			if _, err := e.svc.Stop(e.ctx, ns, name, time.Second); err != nil {
				t.Fatal(err)
			}
		}
		time.Sleep(time.Second)
		for _, name := range []string{"always", "unless"} {
			if c := e.inspect(name); c.Status != containers.StatusExited {
				t.Errorf("%s after a user's stop: %s, want exited", name, brief(c))
			}
		}
		// A user's start resets the count.
		e.start("always")
		if c := e.inspect("always"); c.RestartCount != 0 {
			t.Errorf("always after a user's start: restart count %d, want 0", c.RestartCount)
		}
		for _, n := range []string{"crash", "always", "unless"} {
			e.remove(n, true)
		}
		e.checkClean()
	})
}

// TestRestartAtRecover: when the engine starts again, a container that
// crashed while it was down is restarted by on-failure, an always
// container stopped by the user is started, an unless-stopped one is not.
func TestRestartAtRecover(t *testing.T) {
	forEachRuntime(t, func(t *testing.T, e *env) {
		later := e.create(func(cc *containers.CreateConfig) {
			cc.Name = "later"
			cc.RestartPolicy = containers.RestartPolicy{Name: "on-failure"}
		}, "sh", "-c", "while [ ! -e /tmp/go ]; do sleep 0.05; done; rm /tmp/go; exit 4")
		always := e.create(func(cc *containers.CreateConfig) {
			cc.Name = "always"
			cc.RestartPolicy = containers.RestartPolicy{Name: "always"}
		}, "sleep", "300")
		unless := e.create(func(cc *containers.CreateConfig) {
			cc.Name = "unless"
			cc.RestartPolicy = containers.RestartPolicy{Name: "unless-stopped"}
		}, "sleep", "300")
		for _, c := range []containers.Container{later, always, unless} {
			e.start(c.ID)
		}
		for _, n := range []string{"always", "unless"} {
			if _, err := e.svc.Stop(e.ctx, ns, n, time.Second); err != nil {
				t.Fatal(err)
			}
		}
		pid := e.inspect("later").Pid
		if err := e.svc.Close(); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(later.Bundle, "rootfs", "tmp", "go"), nil, 0o644); err != nil {
			t.Fatal(err)
		}
		waitFor(t, 10*time.Second, "later to exit", func() bool { return gone(pid) })
		time.Sleep(300 * time.Millisecond)

		e.svc = e.newService()
		if err := e.svc.Recover(e.ctx); err != nil {
			t.Fatal(err)
		}
		waitFor(t, 10*time.Second, "later to be restarted", func() bool {
			c := e.inspect("later")
			return c.RestartCount == 1 && c.Status == containers.StatusRunning
		})
		waitFor(t, 10*time.Second, "always to be started", func() bool { return e.inspect("always").Status == containers.StatusRunning })
		if c := e.inspect("always"); c.RestartCount != 0 {
			t.Errorf("always, stopped by the user, started at recovery: restart count %d, want 0", c.RestartCount)
		}
		if c := e.inspect("unless"); c.Status != containers.StatusExited {
			t.Errorf("unless-stopped, stopped by the user, after recovery: %s, want exited", brief(c))
		}
		for _, n := range []string{"later", "always", "unless"} {
			e.remove(n, true)
		}
		e.checkClean()
	})
}

// TestPauseRenameUpdateTopStats: pause and unpause (status, and through a
// recovery), rename conflicts, update of memory and restart policy, top
// and stats.
func TestPauseRenameUpdateTopStats(t *testing.T) {
	forEachRuntime(t, func(t *testing.T, e *env) {
		c := e.create(func(cc *containers.CreateConfig) { cc.Name = "one" }, "sleep", "300")
		e.create(func(cc *containers.CreateConfig) { cc.Name = "two" }, "true")
		if _, err := e.svc.Pause(e.ctx, ns, "one"); !errdefs.IsFailedPrecondition(err) {
			t.Errorf("pause of a created container = %v", err)
		}
		e.start(c.ID)
		got, err := e.svc.Pause(e.ctx, ns, "one")
		if err != nil || got.Status != containers.StatusPaused {
			t.Fatalf("pause = %s, %v", brief(got), err)
		}
		// A new engine sees the container paused.
		if err := e.svc.Close(); err != nil {
			t.Fatal(err)
		}
		e.svc = e.newService()
		if err := e.svc.Recover(e.ctx); err != nil {
			t.Fatal(err)
		}
		if got := e.inspect("one"); got.Status != containers.StatusPaused {
			t.Errorf("after recovery: %s, want paused", brief(got))
		}
		if got, err := e.svc.Unpause(e.ctx, ns, "one"); err != nil || got.Status != containers.StatusRunning {
			t.Errorf("unpause = %s, %v", brief(got), err)
		}

		if _, err := e.svc.Rename(e.ctx, ns, "one", "two"); !errdefs.IsAlreadyExists(err) {
			t.Errorf("rename onto a taken name = %v, want already exists", err)
		}
		if _, err := e.svc.Rename(e.ctx, ns, "one", "one"); !errdefs.IsInvalidArgument(err) {
			t.Errorf("rename to the same name = %v, want invalid argument", err)
		}
		if _, err := e.svc.Rename(e.ctx, ns, "one", "bad name"); !errdefs.IsInvalidArgument(err) {
			t.Errorf("rename to an invalid name = %v, want invalid argument", err)
		}
		if got, err := e.svc.Rename(e.ctx, ns, "one", "uno"); err != nil || got.Name != "uno" || got.Config.Name != "uno" {
			t.Errorf("rename = %s, %v", brief(got), err)
		}

		got, err = e.svc.Update(e.ctx, ns, "uno", containers.UpdateOptions{
			Resources:     &containers.Resources{Memory: 64 << 20},
			RestartPolicy: &containers.RestartPolicy{Name: "on-failure", MaxRetries: 2},
		})
		if err != nil || got.Config.RestartPolicy.Name != "on-failure" || got.Config.RestartPolicy.MaxRetries != 2 {
			t.Fatalf("update = %+v, %v", got.Config.RestartPolicy, err)
		}
		limit, err := os.ReadFile(filepath.Join("/sys/fs/cgroup/memory/skiff", ns, c.ID, "memory.limit_in_bytes"))
		if err != nil || strings.TrimSpace(string(limit)) != strconv.Itoa(64<<20) {
			t.Errorf("memory.limit_in_bytes after update = %q, %v", limit, err)
		}
		if !strings.Contains(string(got.Spec), `"limit":67108864`) {
			t.Errorf("the spec does not keep the new memory limit")
		}
		if _, err := e.svc.Update(e.ctx, ns, "uno", containers.UpdateOptions{Resources: &containers.Resources{Memory: 1024}}); !errdefs.IsInvalidArgument(err) {
			t.Errorf("update to 1 KiB = %v, want invalid argument", err)
		}

		titles, rows, err := e.svc.Top(e.ctx, ns, "uno", nil)
		if err != nil || len(titles) == 0 || len(rows) != 1 || !strings.Contains(strings.Join(rows[0], " "), "sleep 300") {
			t.Errorf("top = %q %q, %v", titles, rows, err)
		}
		if _, _, err := e.svc.Top(e.ctx, ns, "two", nil); !errdefs.IsFailedPrecondition(err) {
			t.Errorf("top of a created container = %v", err)
		}
		var samples []containers.Stats
		if err := e.svc.Stats(e.ctx, ns, "uno", false, func(s containers.Stats) error { samples = append(samples, s); return nil }); err != nil {
			t.Fatal(err)
		}
		if len(samples) != 1 || samples[0].MemoryLimit != 64<<20 || samples[0].MemoryUsage == 0 || samples[0].Pids != 1 || samples[0].CPUUsage == 0 || samples[0].Name != "uno" {
			t.Errorf("stats = %+v", samples)
		}
		for _, n := range []string{"uno", "two"} {
			e.remove(n, true)
		}
		e.checkClean()
	})
}
