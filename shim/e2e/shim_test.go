package e2e

import (
	"bytes"
	"context"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/skiff-containers/skiff/errdefs"
	"github.com/skiff-containers/skiff/shim/client"
	"github.com/skiff-containers/skiff/shim/proto"
)

// syncBuffer is a bytes.Buffer safe for the attach goroutine and the test.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// TestLifecycle runs the container, sh -c 'echo out; echo err >&2;
// sleep 1; exit 3', through spawn, attach, start, wait, the exit file, the
// log, and delete.
func TestLifecycle(t *testing.T) {
	forEachRuntime(t, func(t *testing.T, b binaries, r runtimeBin) {
		ctx := testContext(t, time.Minute)
		e := newEnv(t, b, r, false, "sh", "-c", "echo out; echo err >&2; sleep 1; exit 3")
		c, ready := e.spawn(ctx, false, false)

		// Detached: its own session, not our child.
		_, ppid, sid, ok := procStat(ready.ShimPid)
		if !ok || sid != ready.ShimPid || ppid == os.Getpid() {
			t.Errorf("shim %d: alive %v, ppid %d, sid %d: want alive, a session leader, not the spawner's child", ready.ShimPid, ok, ppid, sid)
		}
		if _, initPpid, _, _ := procStat(ready.Pid); initPpid != ready.ShimPid {
			t.Errorf("container init %d has parent %d, want the shim %d (child subreaper)", ready.Pid, initPpid, ready.ShimPid)
		}
		if fi, err := os.Stat(filepath.Join(e.stateDir, proto.SocketName)); err != nil || fi.Mode()&os.ModeSocket == 0 || fi.Mode().Perm() != 0o600 {
			t.Errorf("socket: %v %v, want a socket of mode 0600", fi.Mode(), err)
		}
		st, err := c.State(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if st.Status != proto.StatusCreated || st.Pid != ready.Pid || st.ShimPid != ready.ShimPid || st.Exit != nil {
			t.Errorf("state after spawn = %+v, want created with pid %d", st, ready.Pid)
		}
		if err := c.Resize(ctx, 80, 24); !errdefs.IsFailedPrecondition(err) {
			t.Errorf("resize without a terminal = %v, want failed precondition", err)
		}

		var stdout, stderr syncBuffer
		att, err := c.Attach(ctx, client.AttachOptions{Stdout: &stdout, Stderr: &stderr})
		if err != nil {
			t.Fatal(err)
		}
		if err := c.Start(ctx); err != nil {
			t.Fatalf("start: %v\n%s", err, e.shimLog())
		}
		if err := c.Start(ctx); !errdefs.IsFailedPrecondition(err) {
			t.Errorf("second start = %v, want failed precondition", err)
		}
		waitFor(t, 5*time.Second, "live output on the attach stream", func() bool {
			return stdout.String() == "out\n" && stderr.String() == "err\n"
		})
		if st, err := c.State(ctx); err != nil || st.Status != proto.StatusRunning {
			t.Errorf("state while sleeping = %+v, %v, want running", st, err)
		}
		exit, err := c.Wait(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if exit.Code != 3 || exit.Signal != 0 || exit.ExitedAt.IsZero() {
			t.Errorf("wait = %+v, want code 3", exit)
		}
		aexit, err := att.Wait(ctx)
		if err != nil || aexit == nil || aexit.Code != 3 {
			t.Errorf("attach ended with %+v, %v, want exit code 3", aexit, err)
		}
		fileExit, err := proto.ReadExitFile(e.stateDir)
		if err != nil || fileExit.Code != 3 || !fileExit.ExitedAt.Equal(exit.ExitedAt) {
			t.Errorf("exit file = %+v, %v, want %+v", fileExit, err, exit)
		}
		entries := e.readLog()
		if got := lines(entries, "stdout"); !reflect.DeepEqual(got, []string{"F out"}) {
			t.Errorf("log stdout = %q, want [F out]", got)
		}
		if got := lines(entries, "stderr"); !reflect.DeepEqual(got, []string{"F err"}) {
			t.Errorf("log stderr = %q, want [F err]", got)
		}
		if err := c.Kill(ctx, syscall.SIGKILL, false); !errdefs.IsFailedPrecondition(err) {
			t.Errorf("kill after exit = %v, want failed precondition", err)
		}
		st, err = c.State(ctx)
		if err != nil || st.Status != proto.StatusStopped || st.Exit == nil || st.Exit.Code != 3 {
			t.Errorf("state after exit = %+v, %v, want stopped with code 3", st, err)
		}
		// An attach after the exit ends at once with the exit.
		late, err := c.Attach(ctx, client.AttachOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if lexit, err := late.Wait(ctx); err != nil || lexit == nil || lexit.Code != 3 {
			t.Errorf("attach after exit = %+v, %v, want code 3", lexit, err)
		}

		if _, err := c.Delete(ctx, false); err != nil {
			t.Fatalf("delete: %v", err)
		}
		waitFor(t, 5*time.Second, "the shim to exit after delete", func() bool { return gone(ready.ShimPid) })
		if _, err := os.Stat(filepath.Join(e.stateDir, proto.SocketName)); !os.IsNotExist(err) {
			t.Errorf("socket after delete: %v, want it removed", err)
		}
		if _, err := e.rt.State(ctx, e.id); err == nil {
			t.Errorf("the runtime still knows %s after delete", e.id)
		}
		if _, err := client.Connect(ctx, e.id, e.stateDir); !client.ErrGone(err) {
			t.Errorf("connect after delete = %v, want not found", err)
		}
		if _, err := proto.ReadExitFile(e.stateDir); err != nil {
			t.Errorf("exit file after delete: %v (it stays for the engine)", err)
		}
	})
}

// TestStopAndDelete kills or deletes a long-running container in each of
// the ways the engine will, and checks the recorded exit.
func TestStopAndDelete(t *testing.T) {
	cases := []struct {
		name string
		// stop stops the container; started says whether to start it first.
		started bool
		stop    func(ctx context.Context, c *client.Client) error
		// deletes says that stop deletes the container (the shim exits).
		deletes bool
		code    int
		signal  int
	}{
		{"kill", true, func(ctx context.Context, c *client.Client) error { return c.Kill(ctx, syscall.SIGKILL, false) }, false, 137, 9},
		{"kill all", true, func(ctx context.Context, c *client.Client) error { return c.Kill(ctx, syscall.SIGKILL, true) }, false, 137, 9},
		{"sigterm with a trap", true, func(ctx context.Context, c *client.Client) error { return c.Kill(ctx, syscall.SIGTERM, false) }, false, 143, 0},
		{"force delete running", true, func(ctx context.Context, c *client.Client) error { _, err := c.Delete(ctx, true); return err }, true, 137, 9},
		{"delete created", false, func(ctx context.Context, c *client.Client) error { _, err := c.Delete(ctx, false); return err }, true, 137, 9},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			forEachRuntime(t, func(t *testing.T, b binaries, r runtimeBin) {
				ctx := testContext(t, time.Minute)
				// The trap makes SIGTERM exit 143 by the shell's hand (a
				// pid namespace's init ignores unhandled signals).
				e := newEnv(t, b, r, false, "sh", "-c", "trap 'exit 143' TERM; echo up; while :; do sleep 0.1; done")
				c, ready := e.spawn(ctx, false, false)
				if tc.started {
					if err := c.Start(ctx); err != nil {
						t.Fatal(err)
					}
					waitFor(t, 5*time.Second, "the container to print", func() bool {
						data, _ := os.ReadFile(e.logPath)
						return strings.Contains(string(data), "stdout F up")
					})
					if _, err := c.Delete(ctx, false); !errdefs.IsFailedPrecondition(err) {
						t.Errorf("delete of a running container without force = %v, want failed precondition", err)
					}
					if err := c.Shutdown(ctx, false); !errdefs.IsFailedPrecondition(err) {
						t.Errorf("shutdown while running without force = %v, want failed precondition", err)
					}
				}
				if err := tc.stop(ctx, c); err != nil {
					t.Fatalf("%s: %v\n%s", tc.name, err, e.shimLog())
				}
				var exit *proto.Exit
				var err error
				if tc.deletes {
					// The shim recorded the exit before answering the
					// delete, and exits.
					exit, err = proto.ReadExitFile(e.stateDir)
				} else {
					exit, err = c.Wait(ctx)
				}
				if err != nil {
					t.Fatal(err)
				}
				if exit.Code != tc.code || exit.Signal != tc.signal {
					t.Errorf("exit = %+v, want code %d signal %d", exit, tc.code, tc.signal)
				}
				if !tc.deletes {
					if _, err := c.Delete(ctx, false); err != nil {
						t.Fatalf("delete: %v", err)
					}
				}
				waitFor(t, 5*time.Second, "the shim to exit", func() bool { return gone(ready.ShimPid) })
				if fe, err := proto.ReadExitFile(e.stateDir); err != nil || fe.Code != tc.code {
					t.Errorf("exit file = %+v, %v, want code %d", fe, err, tc.code)
				}
			})
		})
	}
}

// TestTerminal gives the container a pty: output (one stream) reaches the
// log and the attach stream, input and a resize reach the container.
func TestTerminal(t *testing.T) {
	forEachRuntime(t, func(t *testing.T, b binaries, r runtimeBin) {
		ctx := testContext(t, time.Minute)
		e := newEnv(t, b, r, true, "sh", "-c", `tty; stty size; read line; echo "got $line"; exit 4`)
		c, _ := e.spawn(ctx, true, true)
		inR, inW := io.Pipe()
		defer inW.Close()
		var out syncBuffer
		att, err := c.Attach(ctx, client.AttachOptions{Stdin: inR, Stdout: &out})
		if err != nil {
			t.Fatal(err)
		}
		if err := att.Resize(100, 30); err != nil {
			t.Fatal(err)
		}
		// The resize frame and the start travel on different connections;
		// make sure the size is set before the container reads it.
		if err := c.Resize(ctx, 100, 30); err != nil {
			t.Fatal(err)
		}
		if err := c.Start(ctx); err != nil {
			t.Fatalf("start: %v\n%s", err, e.shimLog())
		}
		waitFor(t, 5*time.Second, "the terminal's size on the attach stream", func() bool { return strings.Contains(out.String(), "30 100") })
		if _, err := inW.Write([]byte("hello\n")); err != nil {
			t.Fatal(err)
		}
		exit, err := att.Wait(ctx)
		if err != nil || exit == nil || exit.Code != 4 {
			t.Fatalf("attach ended with %+v, %v, want exit code 4; output %q", exit, err, out.String())
		}
		if !strings.Contains(out.String(), "got hello\r\n") {
			t.Errorf("attach output %q lacks the terminal's \"got hello\\r\\n\"", out.String())
		}
		entries := e.readLog()
		if got := lines(entries, "stderr"); len(got) != 0 {
			t.Errorf("a terminal's log has stderr entries %q", got)
		}
		got := lines(entries, "stdout")
		want := []string{"F /dev/pts/0", "F 30 100", "F hello", "F got hello"}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("log = %q, want %q (the echoed input included, no \\r)", got, want)
		}
		if fe, err := proto.ReadExitFile(e.stateDir); err != nil || fe.Code != 4 {
			t.Errorf("exit file = %+v, %v, want code 4", fe, err)
		}
		if _, err := c.Delete(ctx, false); err != nil {
			t.Fatal(err)
		}
	})
}

// TestStdin sends input through a pipe and ends it, by the attach stream's
// end or by the close-stdin request.
func TestStdin(t *testing.T) {
	for _, how := range []string{"eof on attach", "close-stdin request"} {
		t.Run(how, func(t *testing.T) {
			forEachRuntime(t, func(t *testing.T, b binaries, r runtimeBin) {
				ctx := testContext(t, time.Minute)
				e := newEnv(t, b, r, false, "sh", "-c", "cat; echo done")
				c, _ := e.spawn(ctx, false, true)
				var out syncBuffer
				opts := client.AttachOptions{Stdout: &out, Stdin: strings.NewReader("abc\nxyz\n"), CloseStdinOnEOF: how == "eof on attach"}
				att, err := c.Attach(ctx, opts)
				if err != nil {
					t.Fatal(err)
				}
				if err := c.Start(ctx); err != nil {
					t.Fatal(err)
				}
				waitFor(t, 5*time.Second, "the input echoed by cat", func() bool { return strings.HasPrefix(out.String(), "abc\nxyz\n") })
				if how == "close-stdin request" {
					if st, _ := c.State(ctx); st.Status != proto.StatusRunning {
						t.Errorf("cat ended before its stdin was closed: %+v", st)
					}
					if err := c.CloseStdin(ctx); err != nil {
						t.Fatal(err)
					}
				}
				exit, err := att.Wait(ctx)
				if err != nil || exit == nil || exit.Code != 0 {
					t.Fatalf("attach ended with %+v, %v", exit, err)
				}
				if got, want := lines(e.readLog(), "stdout"), []string{"F abc", "F xyz", "F done"}; !reflect.DeepEqual(got, want) {
					t.Errorf("log = %q, want %q", got, want)
				}
				if _, err := c.Delete(ctx, false); err != nil {
					t.Fatal(err)
				}
			})
		})
	}
}

// TestEngineDies spawns the shim from a stand-in engine process, starts
// the container, and kills the engine's whole process group: the container
// keeps running and logging, and a new client (the restarted engine) gets
// its state, its exit and its log.
func TestEngineDies(t *testing.T) {
	forEachRuntime(t, func(t *testing.T, b binaries, r runtimeBin) {
		ctx := testContext(t, time.Minute)
		e := newEnv(t, b, r, false, "sh", "-c", "i=0; while [ $i -lt 15 ]; do echo tick $i; i=$((i+1)); sleep 0.1; done; exit 5")
		// The engine: runs the shim, then lingers as skiffd would.
		engine := exec.Command("sh", append([]string{"-c", `"$0" "$@"; exec sleep 1000`, e.b.shim}, e.options(false, false).Args()...)...)
		engine.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
		stdout, err := engine.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := engine.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { syscall.Kill(-engine.Process.Pid, syscall.SIGKILL); engine.Wait() })
		line := make([]byte, 256)
		n, _ := stdout.Read(line)
		ready, err := client.ParseReadyLine(e.id, string(line[:n]))
		if err != nil {
			t.Fatalf("%v\n%s", err, e.shimLog())
		}
		if err := client.New(e.id, e.stateDir).Start(ctx); err != nil {
			t.Fatal(err)
		}
		// kill -9 the engine and everything in its process group.
		if err := syscall.Kill(-engine.Process.Pid, syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		engine.Wait()
		if gone(ready.ShimPid) || gone(ready.Pid) {
			t.Fatalf("the shim (%d) or the container (%d) died with the engine", ready.ShimPid, ready.Pid)
		}
		// The restarted engine reconnects.
		c, err := client.Connect(ctx, e.id, e.stateDir)
		if err != nil {
			t.Fatal(err)
		}
		st, err := c.State(ctx)
		if err != nil || st.Status != proto.StatusRunning || st.Pid != ready.Pid {
			t.Fatalf("state after the engine's death = %+v, %v, want running", st, err)
		}
		exit, err := c.Wait(ctx)
		if err != nil || exit.Code != 5 {
			t.Fatalf("wait = %+v, %v, want code 5", exit, err)
		}
		got := lines(e.readLog(), "stdout")
		if len(got) != 15 || got[0] != "F tick 0" || got[14] != "F tick 14" {
			t.Errorf("log = %q, want tick 0 … tick 14, all logged while the engine was dead", got)
		}
		if _, err := c.Delete(ctx, false); err != nil {
			t.Fatal(err)
		}
		waitFor(t, 5*time.Second, "the shim to exit", func() bool { return gone(ready.ShimPid) })
	})
}

// TestShimKilled documents what a dead shim leaves: the socket refuses,
// no exit is recorded, the container lives on, reparented, with no reader
// for its output (its init, as a pid namespace's init, ignores SIGPIPE and
// keeps running; nothing more is logged). The engine must fall back on the
// runtime: state, kill, delete.
func TestShimKilled(t *testing.T) {
	forEachRuntime(t, func(t *testing.T, b binaries, r runtimeBin) {
		ctx := testContext(t, time.Minute)
		e := newEnv(t, b, r, false, "sh", "-c", "i=0; while :; do echo tick $i; i=$((i+1)); sleep 0.05; done")
		c, ready := e.spawn(ctx, false, false)
		if err := c.Start(ctx); err != nil {
			t.Fatal(err)
		}
		waitFor(t, 5*time.Second, "the container to log", func() bool {
			data, _ := os.ReadFile(e.logPath)
			return strings.Contains(string(data), "tick 3")
		})
		if err := syscall.Kill(ready.ShimPid, syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		waitFor(t, 5*time.Second, "the shim to die", func() bool { return gone(ready.ShimPid) })

		if _, err := c.State(ctx); !client.ErrGone(err) {
			t.Errorf("state from a dead shim = %v, want not found (shim gone)", err)
		}
		if _, err := c.ReadExit(); !errdefs.IsNotFound(err) {
			t.Errorf("exit file after the shim's death = %v, want none", err)
		}
		st, err := e.rt.State(ctx, e.id)
		if err != nil || st.Status != "running" {
			t.Fatalf("runtime state = %+v, %v, want running: the container outlives its shim", st, err)
		}
		if _, ppid, _, _ := procStat(ready.Pid); ppid == ready.ShimPid {
			t.Errorf("container init still has the dead shim as parent")
		}
		size := func() int64 { fi, _ := os.Stat(e.logPath); return fi.Size() }
		before := size()
		time.Sleep(300 * time.Millisecond)
		if after := size(); after != before {
			t.Errorf("the log grew from %d to %d bytes with no shim", before, after)
		}
		if gone(ready.Pid) {
			t.Errorf("the container's init died with its shim (SIGPIPE?)")
		}

		// The engine's recovery: through the runtime.
		if err := e.rt.Kill(ctx, e.id, "KILL"); err != nil {
			t.Fatal(err)
		}
		waitFor(t, 10*time.Second, "the runtime to see the container stopped", func() bool {
			st, err := e.rt.State(ctx, e.id)
			return err == nil && st.Status == "stopped"
		})
		if err := e.rt.Delete(ctx, e.id, false); err != nil {
			t.Fatal(err)
		}
		os.Remove(filepath.Join(e.stateDir, proto.SocketName))
	})
}

// TestSpawnErrors checks that a failed spawn says why, with the right
// class, and leaves no shim, socket or container behind.
func TestSpawnErrors(t *testing.T) {
	cases := []struct {
		name string
		// terminal sets process.terminal in the bundle.
		terminal bool
		setup    func(t *testing.T, e *env, o *client.Options)
		class    func(error) bool
		contains string
	}{
		{"no config.json", false, func(t *testing.T, e *env, o *client.Options) {
			os.Remove(filepath.Join(e.bundle, "config.json"))
		}, errdefs.IsNotFound, "no config.json"},
		{"runtime not found", false, func(t *testing.T, e *env, o *client.Options) {
			o.Runtime = "no-such-runtime-skiff"
		}, errdefs.IsNotFound, "no-such-runtime-skiff"},
		{"terminal without --tty", true, func(t *testing.T, e *env, o *client.Options) {}, errdefs.IsFailedPrecondition, "console socket"},
		{"--tty without a terminal", false, func(t *testing.T, e *env, o *client.Options) {
			o.Terminal = true
		}, errdefs.IsFailedPrecondition, "runtime create failed"},
		{"relative bundle", false, func(t *testing.T, e *env, o *client.Options) {
			o.Bundle = "bundle"
		}, errdefs.IsInvalidArgument, "absolute path"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			forEachRuntime(t, func(t *testing.T, b binaries, r runtimeBin) {
				ctx := testContext(t, time.Minute)
				e := newEnv(t, b, r, tc.terminal, "true")
				o := e.options(false, false)
				tc.setup(t, e, &o)
				_, _, err := client.Spawn(ctx, o)
				if err == nil || !tc.class(err) || !strings.Contains(err.Error(), tc.contains) {
					t.Fatalf("spawn = %v, want an error of the right class saying %q", err, tc.contains)
				}
				if _, err := os.Stat(filepath.Join(e.stateDir, proto.SocketName)); !os.IsNotExist(err) {
					t.Errorf("socket left after a failed spawn: %v", err)
				}
			})
		})
	}
}

// TestSpawnTwice refuses a second shim on a state directory that a live
// shim serves, and leaves the first one working.
func TestSpawnTwice(t *testing.T) {
	forEachRuntime(t, func(t *testing.T, b binaries, r runtimeBin) {
		ctx := testContext(t, time.Minute)
		e := newEnv(t, b, r, false, "true")
		c, ready := e.spawn(ctx, false, false)
		o := e.options(false, false)
		o.ID = e.id + "-2"
		if _, _, err := client.Spawn(ctx, o); !errdefs.IsAlreadyExists(err) {
			t.Errorf("second spawn on the same state = %v, want already exists", err)
		}
		if st, err := c.State(ctx); err != nil || st.Pid != ready.Pid {
			t.Fatalf("first shim after the refused spawn: %+v, %v", st, err)
		}
		if _, err := c.Delete(ctx, false); err != nil {
			t.Fatal(err)
		}
		waitFor(t, 5*time.Second, "the shim to exit", func() bool { return gone(ready.ShimPid) })
	})
}
