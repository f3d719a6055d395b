package cloneinit

import (
	"errors"
	"io"
	"os"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/skiff-containers/skiff/errdefs"
	"github.com/skiff-containers/skiff/runtime/caps"
)

// startPlan runs p without new namespaces (a plain clone that execs on the
// host), its stdout into a pipe; it returns what the process printed and
// its wait status (stdout and stderr both go to the pipe). Needs root (capabilities, keyring, setgroups).
func startPlan(t *testing.T, p *Plan, exe string) (string, unix.WaitStatus, error) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root")
	}
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	p.Stdio[1], p.Stdio[2] = w, w
	pid, pidfd, err := p.Start(0)
	w.Close()
	if err != nil {
		return "", 0, err
	}
	defer unix.Close(pidfd)
	defer p.Sock().Close()
	goErr := p.Go(exe, "")
	out, _ := io.ReadAll(r)
	var ws unix.WaitStatus
	if _, err := unix.Wait4(pid, &ws, 0, nil); err != nil {
		t.Fatalf("wait for %d: %v", pid, err)
	}
	return string(out), ws, goErr
}

func allCaps(t *testing.T) *caps.Set {
	t.Helper()
	var bnd uint64
	for n := 0; n < 64; n++ {
		in, err := unix.PrctlRetInt(unix.PR_CAPBSET_READ, uintptr(n), 0, 0, 0)
		if err != nil {
			break // past the kernel's last capability
		}
		if in == 1 {
			bnd |= 1 << uint(n)
		}
	}
	return &caps.Set{Bounding: bnd, Effective: bnd, Permitted: bnd}
}

func TestPlanRunsProgram(t *testing.T) {
	set := allCaps(t)
	p := &Plan{
		ID:   "cloneinit-test",
		Args: []string{"sh", "-c", `echo "$FOO|$HOME|$(umask)|$(pwd)|$(id -u):$(id -g):$(id -G)"; grep -E '^(CapEff|NoNewPrivs)' /proc/self/status`},
		Env:  []string{"FOO=bar baz", "PATH=/usr/bin:/bin"},
		Cwd:  "/tmp", UID: 1000, GID: 1000, Groups: []uint32{5, 1000},
		Umask: 0o027, Caps: &caps.Set{Bounding: set.Bounding}, NoNewPrivs: true,
	}
	out, ws, err := startPlan(t, p, "/bin/sh")
	if err != nil {
		t.Fatalf("Go: %v", err)
	}
	if !ws.Exited() || ws.ExitStatus() != 0 {
		t.Fatalf("process ended with %v; output %q", ws, out)
	}
	want := "bar baz||0027|/tmp|1000:1000:1000 5\nCapEff:\t0000000000000000\nNoNewPrivs:\t1\n"
	if out != want {
		t.Errorf("output %q, want %q", out, want)
	}
}

func TestPlanFailures(t *testing.T) {
	set := allCaps(t)
	for _, tc := range []struct {
		name  string
		plan  Plan
		exe   string
		class error
		want  string
		code  int    // the process's exit status
		out   string // what it printed
	}{
		{name: "cwd-missing", plan: Plan{Args: []string{"true"}, Cwd: "/no/such/dir"}, exe: "/bin/true",
			class: errdefs.ErrNotFound, want: `change to process.cwd "/no/such/dir": no such file or directory`, code: 1},
		{name: "cwd-not-a-dir", plan: Plan{Args: []string{"true"}, Cwd: "/etc/passwd"}, exe: "/bin/true",
			class: errdefs.ErrNotFound, want: "not a directory", code: 1},
		// execve fails after the process reported ready: 127 for a missing
		// program, with a message on its stderr.
		{name: "exec-missing", plan: Plan{Args: []string{"/no/such/program"}, Cwd: "/"}, exe: "/no/such/program", code: 127,
			out: `skiff-runtime: container cloneinit-test: exec "/no/such/program": no such file or directory` + "\n"},
		{name: "exec-not-executable", plan: Plan{Args: []string{"/etc/passwd"}, Cwd: "/"}, exe: "/etc/passwd", code: 126,
			out: `skiff-runtime: container cloneinit-test: exec "/etc/passwd": permission denied` + "\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := tc.plan
			p.ID, p.Caps = "cloneinit-test", set
			out, ws, err := startPlan(t, &p, tc.exe)
			if out != tc.out {
				t.Errorf("process printed %q, want %q", out, tc.out)
			}
			if tc.want != "" {
				if err == nil || !strings.Contains(err.Error(), tc.want) || !errors.Is(err, tc.class) {
					t.Errorf("Go: %v; want %q (%v)", err, tc.want, tc.class)
				}
			} else if err != nil {
				t.Errorf("Go: %v", err)
			}
			if !ws.Exited() || ws.ExitStatus() != tc.code {
				t.Errorf("process ended with %v, want exit %d", ws, tc.code)
			}
		})
	}
}

func TestPlanRefuses(t *testing.T) {
	for _, tc := range []struct {
		name  string
		plan  Plan
		flags uintptr
	}{
		{name: "user-namespace", plan: Plan{Args: []string{"true"}, Cwd: "/"}, flags: unix.CLONE_NEWUSER},
		{name: "time-namespace", plan: Plan{Args: []string{"true"}, Cwd: "/"}, flags: unix.CLONE_NEWTIME},
		{name: "no-args", plan: Plan{Cwd: "/"}},
		{name: "nul-in-env", plan: Plan{Args: []string{"true"}, Cwd: "/", Env: []string{"A=b\x00"}}},
		{name: "missing-join", plan: Plan{Args: []string{"true"}, Cwd: "/", Joins: []Join{{Path: "/no/such/ns", Flag: unix.CLONE_NEWNET}}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := tc.plan
			p.ID = "cloneinit-test"
			if _, _, err := p.Start(tc.flags); err == nil {
				t.Fatal("Start succeeded")
			} else if !strings.Contains(err.Error(), "cloneinit-test") {
				t.Errorf("error %q does not name the container", err)
			}
		})
	}
}

// TestPlanParentGone: a clone whose runtime is gone before it sent Go (its
// socket end closed) exits instead of waiting forever.
func TestPlanParentGone(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root")
	}
	set := allCaps(t)
	p := &Plan{ID: "cloneinit-test", Args: []string{"true"}, Cwd: "/", Caps: set}
	pid, pidfd, err := p.Start(0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(pidfd)
	p.Sock().Close()
	done := make(chan unix.WaitStatus, 1)
	go func() {
		var ws unix.WaitStatus
		unix.Wait4(pid, &ws, 0, nil)
		done <- ws
	}()
	select {
	case ws := <-done:
		if !ws.Exited() || ws.ExitStatus() != 1 {
			t.Errorf("clone ended with %v, want exit 1", ws)
		}
	case <-time.After(5 * time.Second):
		unix.Kill(pid, unix.SIGKILL)
		<-done
		t.Fatal("the clone still waits 5s after its parent's socket closed")
	}
}
