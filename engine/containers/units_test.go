package containers

import (
	"errors"
	"os/exec"
	"syscall"
	"testing"
	"time"

	"github.com/skiff-containers/skiff/errdefs"
)

func TestParseSignal(t *testing.T) {
	for in, want := range map[string]syscall.Signal{
		"": syscall.SIGKILL, "KILL": syscall.SIGKILL, "sigterm": syscall.SIGTERM, "SIGUSR1": syscall.SIGUSR1,
		"hup": syscall.SIGHUP, "9": syscall.SIGKILL, "15": syscall.SIGTERM, "SIGRTMIN+3": 37, "RTMIN": 34, "SIGRTMAX-1": 63,
	} {
		got, err := parseSignal(in, syscall.SIGKILL)
		if err != nil || got != want {
			t.Errorf("parseSignal(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	for _, in := range []string{"NOPE", "0", "65", "-1", "SIGRTMIN+40"} {
		if _, err := parseSignal(in, syscall.SIGKILL); !errdefs.IsInvalidArgument(err) {
			t.Errorf("parseSignal(%q) = %v, want invalid argument", in, err)
		}
	}
}

func TestValidName(t *testing.T) {
	for _, ok := range []string{"ab", "/web", "a_b.c-d", "0x"} {
		if err := validName(ok); err != nil {
			t.Errorf("validName(%q) = %v", ok, err)
		}
	}
	for _, bad := range []string{"", "a", "/", "_ab", ".ab", "a b", "a/b", "a:b"} {
		if err := validName(bad); !errdefs.IsInvalidArgument(err) {
			t.Errorf("validName(%q) = %v, want invalid argument", bad, err)
		}
	}
	seen := map[string]bool{}
	for i := 0; i < 20; i++ {
		n := randomName(0)
		if err := validName(n); err != nil {
			t.Errorf("random name %q: %v", n, err)
		}
		seen[n] = true
	}
	if len(seen) < 5 {
		t.Errorf("random names hardly vary: %v", seen)
	}
	id := newID()
	if len(id) != 64 || !isHex(id) {
		t.Errorf("newID() = %q", id)
	}
}

func TestLogReader(t *testing.T) {
	r := &logReader{pending: map[Stream]*LogEntry{}}
	lines := []string{
		"2026-01-02T03:04:05.000000001Z stdout P abc",
		"2026-01-02T03:04:05.000000002Z stderr F err line",
		"2026-01-02T03:04:05.000000003Z stdout P def",
		"garbage",
		"2026-01-02T03:04:05.000000004Z stdout F ghi",
		"2026-01-02T03:04:05.000000005Z stdout F ",
	}
	var got []string
	for _, l := range lines {
		if e, ok := r.feed([]byte(l)); ok {
			got = append(got, string(e.Stream)+"|"+string(e.Data)+"|"+e.Time.Format("05.000000000"))
		}
	}
	want := []string{"stderr|err line\n|05.000000002", "stdout|abcdefghi\n|05.000000001", "stdout|\n|05.000000005"}
	if len(got) != len(want) {
		t.Fatalf("entries %q, want %q", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("entry %d = %q, want %q", i, got[i], want[i])
		}
	}
}

// TestLifecycleTable: the operations each status allows; refusals are
// *StateError of class failed precondition.
func TestLifecycleTable(t *testing.T) {
	cases := []struct {
		op, status string
		ok         bool
	}{
		{opStart, StatusCreated, true}, {opStart, StatusExited, true}, {opStart, StatusPaused, false},
		{opStart, StatusDead, false}, {opStart, StatusRemoving, false},
		{opKill, StatusRunning, true}, {opKill, StatusExited, false}, {opKill, StatusCreated, false},
		{opStop, StatusPaused, false}, {opAttach, StatusCreated, true}, {opAttach, StatusExited, false},
		{opRemove, StatusRunning, false}, {opRemove, StatusExited, true}, {opRemove, StatusRemoving, true},
	}
	for _, tc := range cases {
		err := check("c1", tc.op, tc.status)
		if (err == nil) != tc.ok {
			t.Errorf("%s when %s: %v, want allowed %v", tc.op, tc.status, err, tc.ok)
		}
		var se *StateError
		if err != nil && (!errors.As(err, &se) || !errdefs.IsFailedPrecondition(err)) {
			t.Errorf("%s when %s: %T %v, want a *StateError of class failed precondition", tc.op, tc.status, err, err)
		}
	}
}

func TestStartExitCode(t *testing.T) {
	for msg, want := range map[string]int{
		`exec: "x": executable file not found in $PATH`:               127,
		`exec: "/x": stat /x: no such file or directory`:              127,
		`exec: "/etc/passwd": permission denied`:                      126,
		`exec: "/etc": is a directory`:                                126,
		`runtime create failed: cgroups in hybrid mode not supported`: 0,
		// crun's words.
		"crun create x: executable file `/no/such` not found in $PATH: No such file or directory": 127,
		"crun create x: open executable: Permission denied":                                       126,
		// A missing bundle is the engine's problem, not the program's.
		"runtime create failed: open config.json: no such file or directory": 0,
	} {
		if got := startExitCode(errors.New(msg)); got != want {
			t.Errorf("startExitCode(%q) = %d, want %d", msg, got, want)
		}
	}
	if got := programError(`container x: failed precondition: runtime create failed: runc create --bundle b x: exec: "/x": stat /x: no such file or directory (check the bundle b and the runtime's log l)`); got != `exec: "/x": stat /x: no such file or directory` {
		t.Errorf("programError = %q", got)
	}
}

func TestWaitGone(t *testing.T) {
	cmd := exec.Command("sleep", "0.3")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Wait()
	if waitGone(cmd.Process.Pid, 50*time.Millisecond) {
		t.Fatalf("waitGone reported a running process gone")
	}
	if !waitGone(cmd.Process.Pid, 5*time.Second) {
		t.Fatalf("waitGone timed out on a process that exits after 0.3 s")
	}
	if !waitGone(cmd.Process.Pid, 0) { // now a zombie (not reaped yet)
		t.Errorf("a zombie is not gone")
	}
	if !waitGone(1<<22+12345, time.Second) {
		t.Errorf("a pid that does not exist is not gone")
	}
}
