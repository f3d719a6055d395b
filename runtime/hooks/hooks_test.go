package hooks

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/skiff-containers/skiff/errdefs"
)

// helperEnv makes the test binary act as a hook that records its argv.
const helperEnv = "SKIFF_HOOKS_TEST_HELPER"

func TestMain(m *testing.M) {
	if out := os.Getenv(helperEnv); out != "" {
		b, _ := json.Marshal(os.Args)
		if err := os.WriteFile(out, b, 0o600); err != nil {
			os.Exit(2)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

func ptr(i int) *int { return &i }

// script writes an executable /bin/sh script into dir and returns its path.
func script(t *testing.T, dir, name, body string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte("#!/bin/sh\n"+body+"\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	return p
}

func testState() *specs.State {
	return &specs.State{
		Version:     specs.Version,
		ID:          "ctr-1",
		Status:      specs.StateCreated,
		Pid:         4242,
		Bundle:      "/run/bundles/ctr-1",
		Annotations: map[string]string{"a": "1", "quote\"and\nnewline": "é ☃"},
	}
}

func readJSON(t *testing.T, p string, v any) {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatalf("hook output %s: %v", p, err)
	}
	if err := json.Unmarshal(b, v); err != nil {
		t.Fatalf("hook output %s: %v: %q", p, err, b)
	}
}

func TestRunStdinState(t *testing.T) {
	dir := t.TempDir()
	cat := script(t, dir, "cat.sh", `/bin/cat > "$1"`)
	for _, tc := range []struct {
		name  string
		kind  Kind
		state func() *specs.State
		want  specs.ContainerState
	}{
		{"status kept", Poststart, testState, specs.StateCreated},
		{"empty status filled for createRuntime", CreateRuntime, func() *specs.State { s := testState(); s.Status = ""; return s }, specs.StateCreating},
		{"empty status filled for poststop", Poststop, func() *specs.State { s := testState(); s.Status = ""; return s }, specs.StateStopped},
		{"no annotations", StartContainer, func() *specs.State { s := testState(); s.Annotations = nil; return s }, specs.StateCreated},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out := filepath.Join(dir, strings.ReplaceAll(tc.name, " ", "_")+".json")
			st := tc.state()
			orig := *st
			if err := Run(context.Background(), tc.kind, []specs.Hook{{Path: cat, Args: []string{cat, out}}}, st); err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(*st, orig) {
				t.Errorf("Run modified the caller's state: %+v, was %+v", *st, orig)
			}
			var got specs.State
			readJSON(t, out, &got)
			want := orig
			want.Status = tc.want
			if !reflect.DeepEqual(got, want) {
				t.Errorf("hook got state %+v, want %+v", got, want)
			}
			// The JSON field names are the spec's.
			var raw map[string]any
			readJSON(t, out, &raw)
			for _, k := range []string{"ociVersion", "id", "status", "pid", "bundle"} {
				if _, ok := raw[k]; !ok {
					t.Errorf("state JSON lacks %q: %v", k, raw)
				}
			}
		})
	}
}

func TestRunEnvExact(t *testing.T) {
	dir := t.TempDir()
	// /proc/$$/environ is the environment the shell was exec'd with.
	envdump := script(t, dir, "env.sh", `/bin/cat /proc/$$/environ > "$1"`)
	t.Setenv("SKIFF_HOOKS_LEAK", "must-not-reach-the-hook")
	for _, tc := range []struct {
		name string
		env  []string
	}{
		{"nil env inherits nothing", nil},
		{"empty env", []string{}},
		{"given env", []string{"A=1", "B=two words", "PATH=/nowhere"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out := filepath.Join(dir, "env.out")
			_ = os.Remove(out)
			if err := Run(context.Background(), Prestart, []specs.Hook{{Path: envdump, Args: []string{envdump, out}, Env: tc.env}}, testState()); err != nil {
				t.Fatal(err)
			}
			b, err := os.ReadFile(out)
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, kv := range bytes.Split(b, []byte{0}) {
				if len(kv) > 0 {
					got = append(got, string(kv))
				}
			}
			want := tc.env
			if len(want) == 0 {
				want = nil
			}
			if !reflect.DeepEqual(got, want) {
				t.Errorf("hook environment = %q, want exactly %q", got, want)
			}
		})
	}
}

func TestRunArgv(t *testing.T) {
	dir := t.TempDir()
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cmdline := script(t, dir, "cmdline.sh", `/bin/cat /proc/$$/cmdline > "$OUT"`)
	for _, tc := range []struct {
		name string
		hook func(out string) specs.Hook
		want func(out string) []string
	}{
		{"empty args: argv is [path]",
			func(out string) specs.Hook { return specs.Hook{Path: self, Env: []string{helperEnv + "=" + out}} },
			func(string) []string { return []string{self} }},
		{"args[0] is argv[0], not path",
			func(out string) specs.Hook {
				return specs.Hook{Path: self, Args: []string{"custom-name", "x", "y z"}, Env: []string{helperEnv + "=" + out}}
			},
			func(string) []string { return []string{"custom-name", "x", "y z"} }},
		{"shell interpreter with custom argv[0]",
			func(out string) specs.Hook {
				return specs.Hook{Path: "/bin/sh", Args: []string{"my-hook", cmdline, "arg1"}, Env: []string{"OUT=" + out}}
			},
			func(string) []string { return []string{"my-hook", cmdline, "arg1"} }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out := filepath.Join(dir, "argv.out")
			_ = os.Remove(out)
			if err := Run(context.Background(), Poststop, []specs.Hook{tc.hook(out)}, testState()); err != nil {
				t.Fatal(err)
			}
			b, err := os.ReadFile(out)
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			if bytes.HasPrefix(b, []byte("[")) {
				if err := json.Unmarshal(b, &got); err != nil {
					t.Fatal(err)
				}
			} else {
				got = strings.Split(strings.TrimSuffix(string(b), "\x00"), "\x00")
			}
			if want := tc.want(out); !reflect.DeepEqual(got, want) {
				t.Errorf("argv = %q, want %q", got, want)
			}
		})
	}
}

func TestRunOrderAndFirstFailureStops(t *testing.T) {
	dir := t.TempDir()
	log := filepath.Join(dir, "log")
	app := script(t, dir, "append.sh", `echo "$1" >> "$2"`)
	fail := script(t, dir, "fail.sh", `echo "hook two says no" >&2; exit 7`)
	hooks := []specs.Hook{
		{Path: app, Args: []string{app, "one", log}},
		{Path: fail},
		{Path: app, Args: []string{app, "three", log}},
	}
	err := Run(context.Background(), CreateContainer, hooks, testState())
	if err == nil {
		t.Fatal("Run succeeded with a failing hook")
	}
	for _, s := range []string{"createContainer hook #1", fail, "exit status 7", "hook two says no"} {
		if !strings.Contains(err.Error(), s) {
			t.Errorf("error %q lacks %q", err, s)
		}
	}
	if !errdefs.IsFailedPrecondition(err) {
		t.Errorf("error %v is not a failed precondition", err)
	}
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 7 {
		t.Errorf("error %v does not wrap an ExitError with code 7", err)
	}
	if b, _ := os.ReadFile(log); string(b) != "one\n" {
		t.Errorf("hooks that ran: %q, want only the first", b)
	}

	// RunAll runs them all and reports the failure.
	_ = os.Remove(log)
	err = RunAll(context.Background(), Poststop, hooks, testState())
	if err == nil || !strings.Contains(err.Error(), "hook two says no") {
		t.Errorf("RunAll error = %v, want the failure of hook #1", err)
	}
	if b, _ := os.ReadFile(log); string(b) != "one\nthree\n" {
		t.Errorf("hooks that ran under RunAll: %q, want one and three", b)
	}
}

func TestRunErrors(t *testing.T) {
	dir := t.TempDir()
	ok := script(t, dir, "ok.sh", `exit 0`)
	marker := filepath.Join(dir, "ran")
	touch := script(t, dir, "touch.sh", `echo ran > "$1"`)
	noInterp := filepath.Join(dir, "nointerp.sh")
	if err := os.WriteFile(noInterp, []byte("#!/nonexistent/interpreter\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	notExec := filepath.Join(dir, "noexec.sh")
	if err := os.WriteFile(notExec, []byte("#!/bin/sh\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name  string
		kind  Kind
		hooks []specs.Hook
		class func(error) bool
		want  []string
	}{
		{"missing binary", Prestart, []specs.Hook{{Path: "/nonexistent/skiff-hook"}},
			errdefs.IsNotFound, []string{"prestart hook #0", "/nonexistent/skiff-hook"}},
		{"missing interpreter", CreateRuntime, []specs.Hook{{Path: ok}, {Path: noInterp}},
			errdefs.IsNotFound, []string{"createRuntime hook #1", noInterp, "interpreter"}},
		{"not executable", CreateRuntime, []specs.Hook{{Path: notExec}},
			errdefs.IsFailedPrecondition, []string{notExec, "permission denied"}},
		{"relative path refused before any hook runs", Poststart,
			[]specs.Hook{{Path: touch, Args: []string{touch, marker}}, {Path: "hook.sh"}},
			errdefs.IsInvalidArgument, []string{"poststart hook #1", `"hook.sh"`, "not absolute"}},
		{"empty path", Poststart, []specs.Hook{{Path: ""}},
			errdefs.IsInvalidArgument, []string{"poststart hook #0", "not absolute"}},
		{"zero timeout", StartContainer, []specs.Hook{{Path: ok, Timeout: ptr(0)}},
			errdefs.IsInvalidArgument, []string{"startContainer hook #0", "timeout 0"}},
		{"unknown kind", Kind("prestop"), []specs.Hook{{Path: ok}},
			errdefs.IsInvalidArgument, []string{`"prestop"`}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := Run(context.Background(), tc.kind, tc.hooks, testState())
			if err == nil {
				t.Fatal("Run succeeded")
			}
			if !tc.class(err) {
				t.Errorf("error %v has the wrong class", err)
			}
			for _, s := range tc.want {
				if !strings.Contains(err.Error(), s) {
					t.Errorf("error %q lacks %q", err, s)
				}
			}
			if _, err := os.Stat(marker); err == nil {
				t.Errorf("a hook ran although the list was refused")
			}
		})
	}
	if err := Run(context.Background(), Poststop, nil, nil); err != nil {
		t.Errorf("Run with no hooks: %v", err)
	}
	if err := Run(context.Background(), Poststop, []specs.Hook{{Path: ok}}, nil); !errdefs.IsInvalidArgument(err) {
		t.Errorf("Run with nil state: %v, want invalid argument", err)
	}
}

// groupMembers lists the live (non-zombie) processes of process group pgid.
func groupMembers(t *testing.T, pgid int) []int {
	t.Helper()
	ents, err := os.ReadDir("/proc")
	if err != nil {
		t.Fatal(err)
	}
	var pids []int
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile("/proc/" + e.Name() + "/stat")
		if err != nil {
			continue
		}
		// pid (comm) state ppid pgrp ...; comm may hold spaces.
		f := strings.Fields(string(b[bytes.LastIndexByte(b, ')')+1:]))
		if len(f) < 3 || f[0] == "Z" {
			continue
		}
		if g, _ := strconv.Atoi(f[2]); g == pgid {
			pids = append(pids, pid)
		}
	}
	return pids
}

func waitNoMembers(t *testing.T, pgid int) {
	t.Helper()
	deadline := time.Now().Add(3 * time.Second)
	for {
		left := groupMembers(t, pgid)
		if len(left) == 0 {
			return
		}
		if time.Now().After(deadline) {
			for _, p := range left {
				_ = syscall.Kill(p, syscall.SIGKILL)
			}
			t.Fatalf("processes %v of the hook's group are still alive", left)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func readPid(t *testing.T, p string) int {
	t.Helper()
	deadline := time.Now().Add(2 * time.Second)
	for {
		b, err := os.ReadFile(p)
		if pid, err2 := strconv.Atoi(strings.TrimSpace(string(b))); err == nil && err2 == nil && pid > 0 {
			return pid
		}
		if time.Now().After(deadline) {
			t.Fatalf("no pid in %s", p)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestRunTimeoutKillsGroup(t *testing.T) {
	dir := t.TempDir()
	pidf := filepath.Join(dir, "pid")
	// The shell is the group leader; sleep is its child in the same group.
	slow := script(t, dir, "slow.sh", `echo $$ > "$1"; echo "about to hang" >&2; /bin/sleep 100; echo done`)
	start := time.Now()
	err := Run(context.Background(), CreateRuntime, []specs.Hook{{Path: slow, Args: []string{slow, pidf}, Timeout: ptr(1)}}, testState())
	elapsed := time.Since(start)
	if err == nil {
		t.Fatal("Run succeeded for a hook that outlived its timeout")
	}
	if elapsed > 2500*time.Millisecond {
		t.Errorf("Run returned after %s, want about 1s", elapsed)
	}
	if elapsed < 900*time.Millisecond {
		t.Errorf("Run returned after %s, before the 1s timeout", elapsed)
	}
	for _, s := range []string{"createRuntime hook #0", slow, "timed out after 1s", "about to hang"} {
		if !strings.Contains(err.Error(), s) {
			t.Errorf("error %q lacks %q", err, s)
		}
	}
	if !errors.Is(err, context.DeadlineExceeded) || !errdefs.IsFailedPrecondition(err) {
		t.Errorf("error %v should wrap context.DeadlineExceeded and ErrFailedPrecondition", err)
	}
	waitNoMembers(t, readPid(t, pidf))
}

func TestRunContextCancelKillsGroup(t *testing.T) {
	dir := t.TempDir()
	pidf := filepath.Join(dir, "pid")
	slow := script(t, dir, "slow.sh", `echo $$ > "$1"; /bin/sleep 100`)
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	start := time.Now()
	err := Run(ctx, Poststop, []specs.Hook{{Path: slow, Args: []string{slow, pidf}}}, testState())
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Run = %v, want the context's error", err)
	}
	if errdefs.IsFailedPrecondition(err) {
		t.Errorf("a cancelled run is reported as a hook failure: %v", err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("Run returned after %s", d)
	}
	waitNoMembers(t, readPid(t, pidf))
}

func TestRunDaemonisingHookReturns(t *testing.T) {
	dir := t.TempDir()
	pidf := filepath.Join(dir, "daemon.pid")
	// The background sleep inherits stdout and stderr and outlives the hook.
	daemon := script(t, dir, "daemon.sh", `/bin/sleep 100 & echo $! > "$1"; echo started; exit 0`)
	start := time.Now()
	err := Run(context.Background(), CreateRuntime, []specs.Hook{{Path: daemon, Args: []string{daemon, pidf}, Timeout: ptr(30)}}, testState())
	elapsed := time.Since(start)
	pid := readPid(t, pidf)
	t.Cleanup(func() { _ = syscall.Kill(pid, syscall.SIGKILL) })
	if err != nil {
		t.Errorf("Run = %v, want success: the hook itself exited 0", err)
	}
	if elapsed > OutputGrace+2*time.Second {
		t.Errorf("Run returned after %s, want about OutputGrace (%s)", elapsed, OutputGrace)
	}
	// The daemon is the hook's business: still running.
	if err := syscall.Kill(pid, 0); err != nil {
		t.Errorf("daemon %d was killed: %v", pid, err)
	}

	// A failing hook with a daemon still reports its failure, quickly.
	failing := script(t, dir, "daemonfail.sh", `/bin/sleep 100 & echo $! > "$1"; echo "setup broke" >&2; exit 4`)
	pidf2 := filepath.Join(dir, "daemon2.pid")
	start = time.Now()
	err = Run(context.Background(), CreateRuntime, []specs.Hook{{Path: failing, Args: []string{failing, pidf2}}}, testState())
	pid2 := readPid(t, pidf2)
	t.Cleanup(func() { _ = syscall.Kill(pid2, syscall.SIGKILL) })
	if err == nil || !strings.Contains(err.Error(), "exit status 4") || !strings.Contains(err.Error(), "setup broke") {
		t.Errorf("Run = %v, want exit status 4 with its stderr", err)
	}
	if d := time.Since(start); d > OutputGrace+2*time.Second {
		t.Errorf("Run returned after %s", d)
	}
}

func TestRunHookClosingStdin(t *testing.T) {
	dir := t.TempDir()
	// A state far bigger than a pipe buffer: the write must hit EPIPE.
	st := testState()
	st.Annotations = map[string]string{"big": strings.Repeat("x", 1<<20)}
	closer := script(t, dir, "close.sh", `exec 0<&-; /bin/sleep 0.2; exit 0`)
	if err := Run(context.Background(), Poststart, []specs.Hook{{Path: closer}}, st); err != nil {
		t.Errorf("Run = %v, want success for a hook that ignores its stdin", err)
	}
}

func TestOutputTail(t *testing.T) {
	dir := t.TempDir()
	noisy := script(t, dir, "noisy.sh", `i=0; while [ $i -lt 2000 ]; do echo "line $i of noise" >&2; i=$((i+1)); done; echo "the last words" >&2; exit 1`)
	err := Run(context.Background(), Prestart, []specs.Hook{{Path: noisy}}, testState())
	if err == nil {
		t.Fatal("Run succeeded")
	}
	msg := err.Error()
	if !strings.Contains(msg, "the last words") || !strings.Contains(msg, "[...]") || strings.Contains(msg, "line 0 of noise") {
		t.Errorf("error does not hold just the marked tail of stderr: %.300s...", msg)
	}
	if len(msg) > 2*tailSize {
		t.Errorf("error is %d bytes long", len(msg))
	}

	quiet := script(t, dir, "stdout.sh", `echo "only on stdout"; exit 2`)
	err = Run(context.Background(), Prestart, []specs.Hook{{Path: quiet}}, testState())
	if err == nil || !strings.Contains(err.Error(), "stdout: \"only on stdout\"") {
		t.Errorf("Run = %v, want the stdout when stderr is empty", err)
	}
}

func TestTailWriter(t *testing.T) {
	var tl tail
	var all bytes.Buffer
	for i := 0; i < 3000; i++ {
		s := fmt.Sprintf("%d,", i)
		_, _ = tl.Write([]byte(s))
		all.WriteString(s)
	}
	want := all.Bytes()[all.Len()-tailSize:]
	got := tl.buf
	if len(got) > tailSize {
		got = got[len(got)-tailSize:]
	}
	if !bytes.Equal(got, want) {
		t.Errorf("tail kept %q..., want %q...", got[:40], want[:40])
	}
	_, _ = tl.Write(bytes.Repeat([]byte("y"), 3*tailSize))
	if len(tl.buf) != tailSize || !tl.truncated {
		t.Errorf("after a big write: %d bytes kept, truncated=%v", len(tl.buf), tl.truncated)
	}
	var small tail
	_, _ = small.Write([]byte("  hi\n"))
	if s := small.String(); s != `"hi"` {
		t.Errorf("String() = %s", s)
	}
}

func TestStatusForAndOf(t *testing.T) {
	want := map[Kind]specs.ContainerState{
		Prestart:        specs.StateCreating,
		CreateRuntime:   specs.StateCreating,
		CreateContainer: specs.StateCreating,
		StartContainer:  specs.StateCreated,
		Poststart:       specs.StateRunning,
		Poststop:        specs.StateStopped,
	}
	if len(Kinds()) != len(want) {
		t.Errorf("Kinds() = %v", Kinds())
	}
	h := &specs.Hooks{
		Prestart:        []specs.Hook{{Path: "/prestart"}}, //nolint:staticcheck // still honoured
		CreateRuntime:   []specs.Hook{{Path: "/createRuntime"}},
		CreateContainer: []specs.Hook{{Path: "/createContainer"}},
		StartContainer:  []specs.Hook{{Path: "/startContainer"}},
		Poststart:       []specs.Hook{{Path: "/poststart"}},
		Poststop:        []specs.Hook{{Path: "/poststop"}},
	}
	for _, k := range Kinds() {
		if !k.Valid() {
			t.Errorf("%s not valid", k)
		}
		if got := StatusFor(k); got != want[k] {
			t.Errorf("StatusFor(%s) = %q, want %q", k, got, want[k])
		}
		if got := Of(h, k); len(got) != 1 || got[0].Path != "/"+string(k) {
			t.Errorf("Of(%s) = %v", k, got)
		}
	}
	if StatusFor("bogus") != "" || Kind("bogus").Valid() || Of(h, "bogus") != nil || Of(nil, Poststop) != nil {
		t.Error("unknown kind accepted")
	}
}
