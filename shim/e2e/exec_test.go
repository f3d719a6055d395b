package e2e

import (
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/skiff-containers/skiff/errdefs"
	"github.com/skiff-containers/skiff/shim/client"
	"github.com/skiff-containers/skiff/shim/proto"
)

// writeProcess writes process.json for an exec of args into dir.
func writeProcess(t *testing.T, dir string, terminal bool, args ...string) string {
	t.Helper()
	p := specs.Process{
		Terminal: terminal,
		Args:     args,
		Env:      []string{"PATH=/bin:/usr/bin", "TERM=xterm"},
		Cwd:      "/",
		Capabilities: &specs.LinuxCapabilities{
			Bounding:  []string{"CAP_KILL"},
			Effective: []string{"CAP_KILL"},
			Permitted: []string{"CAP_KILL"},
		},
		NoNewPrivileges: true,
	}
	if terminal {
		// The size from the start: the shim's resize after it received
		// the master may come after the process asked.
		p.ConsoleSize = &specs.Box{Height: 33, Width: 90}
	}
	data, err := json.Marshal(p)
	if err != nil {
		t.Fatal(err)
	}
	f, err := os.CreateTemp(dir, "process-*.json")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.Write(data); err != nil {
		t.Fatal(err)
	}
	return f.Name()
}

// TestExec runs processes in a running container through the shim: with
// pipes (stdout, stderr, stdin, the exit code), with a pty (its size, its
// input), a missing program, and an exec that outlives its client.
func TestExec(t *testing.T) {
	forEachRuntime(t, func(t *testing.T, b binaries, r runtimeBin) {
		ctx := testContext(t, 2*time.Minute)
		e := newEnv(t, b, r, false, "sleep", "60")
		c, _ := e.spawn(ctx, false, false)
		procDir := t.TempDir()

		// Not running yet: refused.
		if _, _, err := c.Exec(ctx, client.ExecOptions{ID: "early", ProcessFile: writeProcess(t, procDir, false, "true")}); !errdefs.IsFailedPrecondition(err) {
			t.Errorf("exec before start = %v, want failed precondition", err)
		}
		if err := c.Start(ctx); err != nil {
			t.Fatalf("start: %v\n%s", err, e.shimLog())
		}

		cases := []struct {
			name           string
			terminal       bool
			stdin          string
			args           []string
			code           int
			stdout, stderr string
		}{
			{name: "pipes", args: []string{"sh", "-c", "echo out; echo err >&2; exit 3"}, code: 3, stdout: "out\n", stderr: "err\n"},
			{name: "stdin", stdin: "abc\n", args: []string{"sh", "-c", "read x; echo got $x"}, stdout: "got abc\n"},
			{name: "pty", terminal: true, stdin: "hi\n", args: []string{"sh", "-c", "tty; stty size; read x; echo got $x; exit 5"}, code: 5, stdout: "/dev/pts/"},
		}
		for _, tc := range cases {
			var out, errb syncBuffer
			o := client.ExecOptions{ID: tc.name, ProcessFile: writeProcess(t, procDir, tc.terminal, tc.args...), Terminal: tc.terminal, Stdout: &out, Stderr: &errb}
			if tc.terminal {
				o.Width, o.Height = 90, 33
			}
			var inW *io.PipeWriter
			if tc.stdin != "" {
				var inR *io.PipeReader
				inR, inW = io.Pipe()
				o.Stdin = inR
			}
			att, pid, err := c.Exec(ctx, o)
			if err != nil {
				t.Fatalf("%s: exec: %v\n%s", tc.name, err, e.shimLog())
			}
			if pid <= 0 {
				t.Errorf("%s: exec pid %d", tc.name, pid)
			}
			if _, err := os.Stat(o.ProcessFile); !os.IsNotExist(err) {
				t.Errorf("%s: process file left: %v", tc.name, err)
			}
			if inW != nil {
				if tc.terminal {
					deadline := time.Now().Add(5 * time.Second)
					for !strings.Contains(out.String(), "33 90") && time.Now().Before(deadline) {
						time.Sleep(20 * time.Millisecond)
					}
					if !strings.Contains(out.String(), "33 90") {
						t.Errorf("%s: no terminal size 33 90 in the output %q\n%s", tc.name, out.String(), e.shimLog())
					}
				}
				inW.Write([]byte(tc.stdin))
				inW.Close()
			}
			exit, err := att.Wait(ctx)
			if err != nil || exit == nil || exit.Code != tc.code {
				t.Errorf("%s: exec ended with %+v, %v, want code %d (output %q %q)", tc.name, exit, err, tc.code, out.String(), errb.String())
				continue
			}
			if !strings.HasPrefix(out.String(), tc.stdout) || errb.String() != tc.stderr {
				t.Errorf("%s: output %q / %q, want %q / %q", tc.name, out.String(), errb.String(), tc.stdout, tc.stderr)
			}
			if tc.terminal && !strings.Contains(out.String(), "got hi\r\n") {
				t.Errorf("%s: terminal output %q lacks \"got hi\\r\\n\"", tc.name, out.String())
			}
		}

		// A program that does not exist: the runtime's message.
		_, _, err := c.Exec(ctx, client.ExecOptions{ID: "missing", ProcessFile: writeProcess(t, procDir, false, "/no/such")})
		if !errdefs.IsFailedPrecondition(err) || !strings.Contains(err.Error(), "/no/such") {
			t.Errorf("exec of a missing program = %v, want failed precondition naming it", err)
		}

		// An exec whose client goes away keeps running, owned by the shim.
		att, pid, err := c.Exec(ctx, client.ExecOptions{ID: "detached", ProcessFile: writeProcess(t, procDir, false, "sleep", "30")})
		if err != nil {
			t.Fatal(err)
		}
		att.Close()
		time.Sleep(200 * time.Millisecond)
		if gone(pid) {
			t.Errorf("the exec %d died with its client", pid)
		}
		st, err := c.State(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if _, ppid, _, _ := procStat(pid); ppid != st.ShimPid {
			t.Errorf("exec %d has parent %d, want the shim %d", pid, ppid, st.ShimPid)
		}
		if err := c.Kill(ctx, syscall.SIGKILL, true); err != nil {
			t.Fatal(err)
		}
		if _, err := c.Wait(ctx); err != nil {
			t.Fatal(err)
		}
		waitFor(t, 5*time.Second, "the exec to die with the container", func() bool { return gone(pid) })
		if _, _, err := c.Exec(ctx, client.ExecOptions{ID: "late", ProcessFile: writeProcess(t, procDir, false, "true")}); !errdefs.IsFailedPrecondition(err) {
			t.Errorf("exec after the exit = %v, want failed precondition", err)
		}
		if _, err := c.Delete(ctx, false); err != nil {
			t.Fatal(err)
		}
		if m, _ := filepath.Glob(filepath.Join(e.stateDir, "exec-*")); len(m) > 0 {
			t.Errorf("exec files left in the state directory: %v", m)
		}
	})
}

// TestPause freezes and thaws the container: State says paused, exec is
// refused while paused, and a SIGKILL ends a paused container.
func TestPause(t *testing.T) {
	forEachRuntime(t, func(t *testing.T, b binaries, r runtimeBin) {
		ctx := testContext(t, time.Minute)
		e := newEnv(t, b, r, false, "sh", "-c", "while true; do echo tick; sleep 0.1; done")
		c, _ := e.spawn(ctx, false, false)
		if err := c.Pause(ctx); !errdefs.IsFailedPrecondition(err) {
			t.Errorf("pause before start = %v, want failed precondition", err)
		}
		if err := c.Start(ctx); err != nil {
			t.Fatal(err)
		}
		if err := c.Resume(ctx); !errdefs.IsFailedPrecondition(err) {
			t.Errorf("resume of a running container = %v, want failed precondition", err)
		}
		if err := c.Pause(ctx); err != nil {
			t.Fatalf("pause: %v\n%s", err, e.shimLog())
		}
		if st, err := c.State(ctx); err != nil || st.Status != proto.StatusPaused {
			t.Errorf("state after pause = %+v, %v, want paused", st, err)
		}
		if _, _, err := c.Exec(ctx, client.ExecOptions{ID: "x", ProcessFile: writeProcess(t, t.TempDir(), false, "true")}); !errdefs.IsFailedPrecondition(err) {
			t.Errorf("exec while paused = %v, want failed precondition", err)
		}
		n := len(e.readLog())
		time.Sleep(400 * time.Millisecond)
		if m := len(e.readLog()); m != n {
			t.Errorf("a paused container logged %d more lines", m-n)
		}
		if err := c.Resume(ctx); err != nil {
			t.Fatal(err)
		}
		if st, err := c.State(ctx); err != nil || st.Status != proto.StatusRunning {
			t.Errorf("state after resume = %+v, %v, want running", st, err)
		}
		waitFor(t, 5*time.Second, "output after resume", func() bool { return len(e.readLog()) > n })
		if err := c.Pause(ctx); err != nil {
			t.Fatal(err)
		}
		if err := c.Kill(ctx, syscall.SIGKILL, true); err != nil {
			t.Fatal(err)
		}
		exit, err := c.Wait(ctx)
		if err != nil || exit.Code != 137 {
			t.Errorf("wait after killing a paused container = %+v, %v, want 137", exit, err)
		}
		if _, err := c.Delete(ctx, false); err != nil {
			t.Fatal(err)
		}
	})
}
