package test

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/skiff-containers/skiff/internal/testutil"
)

// TestInitStartPath checks which way skiff-runtime starts a container's
// init: cloned without a second Go program (runtime/cloneinit) where the
// config allows it, exec'd as `skiff-runtime init` where it needs a Go
// program in the container (here a createContainer hook) or where
// SKIFF_RUNTIME_EXEC_INIT=1 asks for it. TestCompare checks that both ways
// give the container the same view.
func TestInitStartPath(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name   string
		env    []string
		mutate func(t *testing.T, s *specs.Spec)
		cloned bool
	}{
		{name: "default", cloned: true},
		{name: "docker-like", cloned: true, mutate: func(t *testing.T, s *specs.Spec) {
			s.Process.User = specs.User{UID: 1000, GID: 1000, AdditionalGids: []uint32{5}}
			s.Process.NoNewPrivileges = false
			s.Linux.Namespaces = append(s.Linux.Namespaces, specs.LinuxNamespace{Type: specs.CgroupNamespace})
		}},
		{name: "exec-init-env", env: []string{"SKIFF_RUNTIME_EXEC_INIT=1"}},
		{name: "joined-network-namespace", cloned: true, mutate: func(t *testing.T, s *specs.Spec) {
			// The engine's way: a network namespace made beforehand.
			nsPath := newNetNS(t, t.TempDir())
			for i, n := range s.Linux.Namespaces {
				if n.Type == specs.NetworkNamespace {
					s.Linux.Namespaces[i].Path = nsPath
				}
			}
		}},
		{name: "createContainer-hook", mutate: func(t *testing.T, s *specs.Spec) {
			s.Hooks = &specs.Hooks{CreateContainer: []specs.Hook{{Path: "/bin/true"}}}
		}},
		{name: "no-mount-namespace", mutate: func(t *testing.T, s *specs.Spec) {
			var ns []specs.LinuxNamespace
			for _, n := range s.Linux.Namespaces {
				if n.Type != specs.MountNamespace {
					ns = append(ns, n)
				}
			}
			s.Linux.Namespaces = ns
		}},
	} {
		tc := tc
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			rt := testutil.NewRuntime(t, runtimeUnderTest, skiffBin)
			rt.Env = tc.env
			rt.GlobalArgs = []string{"--debug"}
			bundle, spec := testutil.BusyboxBundle(t, "sh", "-c", "cat /proc/1/comm; id -u")
			id := testutil.ContainerID(t)
			guard(t, rt, id, bundle)
			if tc.mutate != nil {
				tc.mutate(t, spec)
			}
			testutil.WriteSpec(t, bundle, spec)
			res := rt.Exec(testContext(t, 60*time.Second), testutil.Stdio{}, "run", "--bundle", bundle, id)
			if !res.OK() {
				t.Fatalf("run: %v", res.Error())
			}
			if got := strings.Contains(res.Stderr, "init process cloned"); got != tc.cloned {
				t.Errorf("init cloned = %v, want %v; debug log:\n%s", got, tc.cloned, res.Stderr)
			}
			// Either way the user program ends up as pid 1 (the
			// init's execve), under the spec's user.
			want := "sh\n0\n"
			if spec.Process.User.UID == 1000 {
				want = "sh\n1000\n"
			}
			if res.Stdout != want {
				t.Errorf("container printed %q, want %q", res.Stdout, want)
			}
		})
	}
}

// TestClonedInitSignals checks a created container's init against runc's:
// SIGTERM ends it (a Go init exits on it), SIGUSR1 does not (a Go init
// catches it and does nothing); start then runs the program.
func TestClonedInitSignals(t *testing.T) {
	t.Parallel()
	forEachRuntime(t, func(t *testing.T, rt *testutil.Runtime) {
		ctx := testContext(t, 60*time.Second)
		bundle, _ := testutil.BusyboxBundle(t, "true")
		for _, tc := range []struct{ sig, want string }{{"TERM", "stopped"}, {"HUP", "stopped"}, {"USR1", "created"}} {
			id := testutil.ContainerID(t)
			guard(t, rt, id, bundle)
			if err := rt.Create(ctx, id, bundle); err != nil {
				t.Fatal(err)
			}
			if err := rt.Kill(ctx, id, tc.sig); err != nil {
				t.Fatalf("kill %s: %v", tc.sig, err)
			}
			if _, err := rt.WaitStatus(ctx, id, tc.want, 3*time.Second); err != nil {
				t.Errorf("after SIG%s: %v", tc.sig, err)
			}
			if tc.want == "created" {
				// Still sure after a moment: the signal did nothing.
				time.Sleep(200 * time.Millisecond)
				if st, err := rt.State(ctx, id); err != nil || st.Status != "created" {
					t.Errorf("after SIG%s: state %+v, %v; want created", tc.sig, st, err)
				}
				if err := rt.Start(ctx, id); err != nil {
					t.Errorf("start after SIG%s: %v", tc.sig, err)
				}
				if _, err := rt.WaitStatus(ctx, id, "stopped", 5*time.Second); err != nil {
					t.Errorf("after start: %v", err)
				}
			}
			if err := rt.Delete(ctx, id, true); err != nil {
				t.Error(err)
			}
		}
	})
}

// TestClonedInitFailures feeds the cloned init's own steps bad input: each
// fails create (or, after start, the container) with a message naming what
// failed, under both start paths, and leaves nothing behind.
func TestClonedInitFailures(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name   string
		args   []string
		mutate func(s *specs.Spec)
		// createErr must appear in create's error; empty: create succeeds
		// and the container fails after start, printing startErr.
		createErr, startErr string
	}{
		{name: "cwd-is-a-file", args: []string{"true"}, mutate: func(s *specs.Spec) { s.Process.Cwd = "/etc/passwd" },
			createErr: "process.cwd"},
		{name: "program-missing", args: []string{"/no/such/program"}, createErr: "no/such/program"},
		{name: "env-nul", args: []string{"true"}, mutate: func(s *specs.Spec) { s.Process.Env = append(s.Process.Env, "A=b\x00c") },
			createErr: "process.env"},
		{name: "execve-denied", args: []string{"true"}, mutate: func(s *specs.Spec) {
			s.Process.NoNewPrivileges = true
			s.Linux.Seccomp = &specs.LinuxSeccomp{DefaultAction: specs.ActAllow, Syscalls: []specs.LinuxSyscall{
				{Names: []string{"execve"}, Action: specs.ActErrno, ErrnoRet: ptr(uint(1))},
			}}
		}, startErr: "exec"},
	} {
		tc := tc
		for _, env := range [][]string{nil, {"SKIFF_RUNTIME_EXEC_INIT=1"}} {
			env := env
			name := tc.name
			if env != nil {
				name += "/exec-init"
			}
			t.Run(name, func(t *testing.T) {
				t.Parallel()
				rt := testutil.NewRuntime(t, runtimeUnderTest, skiffBin)
				rt.Env = env
				bundle, spec := testutil.BusyboxBundle(t, tc.args...)
				if tc.mutate != nil {
					tc.mutate(spec)
				}
				testutil.WriteSpec(t, bundle, spec)
				id := testutil.ContainerID(t)
				guard(t, rt, id, bundle)
				ctx := testContext(t, 60*time.Second)
				res := rt.Exec(ctx, testutil.Stdio{}, "run", "--bundle", bundle, id)
				if res.OK() {
					t.Fatalf("run succeeded; stdout %q", res.Stdout)
				}
				if tc.createErr != "" {
					if res.ExitCode != 1 || !strings.Contains(res.Stderr, tc.createErr) {
						t.Errorf("run: exit %d, stderr %q; want exit 1 naming %q", res.ExitCode, res.Stderr, tc.createErr)
					}
					return
				}
				if res.ExitCode < 126 || !strings.Contains(res.Stderr, tc.startErr) {
					t.Errorf("run: exit %d, stderr %q; want 126 or 127 naming %q", res.ExitCode, res.Stderr, tc.startErr)
				}
			})
		}
	}
}

// TestExecStartPath checks that `exec` clones its process where it can, and
// that it lands in the container's namespaces, root and cgroup either way.
func TestExecStartPath(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name   string
		env    []string
		cloned bool
	}{{name: "default", cloned: true}, {name: "exec-init-env", env: []string{"SKIFF_RUNTIME_EXEC_INIT=1"}}} {
		tc := tc
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			rt := testutil.NewRuntime(t, runtimeUnderTest, skiffBin)
			rt.Env = tc.env
			bundle, _ := testutil.BusyboxBundle(t, "sleep", "600")
			id := testutil.ContainerID(t)
			guard(t, rt, id, bundle)
			ctx := testContext(t, 60*time.Second)
			if _, stderr, code := rt.Run(ctx, "run", "-d", "--bundle", bundle, id); code != 0 {
				t.Fatalf("run -d: exit %d: %s", code, stderr)
			}
			defer rt.Delete(ctx, id, true)
			st, err := rt.State(ctx, id)
			if err != nil {
				t.Fatal(err)
			}
			stdout, stderr, code := rt.Run(ctx, "--debug", "exec", id, "sh", "-c",
				"for n in mnt pid net; do readlink /proc/self/ns/$n; done; cat /proc/self/cgroup | grep -c "+id+"; ls /")
			if code != 0 {
				t.Fatalf("exec: exit %d: %s", code, stderr)
			}
			if got := strings.Contains(stderr, "exec process cloned"); got != tc.cloned {
				t.Errorf("exec process cloned = %v, want %v; debug log:\n%s", got, tc.cloned, stderr)
			}
			var want []string
			for _, ns := range []string{"mnt", "pid", "net"} {
				l, err := os.Readlink(fmt.Sprintf("/proc/%d/ns/%s", st.Pid, ns))
				if err != nil {
					t.Fatal(err)
				}
				want = append(want, l)
			}
			lines := nonEmptyLines(stdout)
			if len(lines) < 5 || strings.Join(lines[:3], " ") != strings.Join(want, " ") || lines[3] == "0" || !strings.Contains(stdout, "\nbin\n") {
				t.Errorf("exec saw %q; want the init's namespaces %q, its cgroup, and the container's root", lines, want)
			}
		})
	}
}

// TestClonedProcessBinaryProtection tries CVE-2019-5736 on a cloned exec
// process: the program is a script whose interpreter is /proc/self/exe,
// which the kernel resolves through the exec'ing process. A process of the
// container (pid 1 here) opens that interpreter's /proc/PID/exe while it
// runs and, once it has exited, tries to reopen it for writing. The
// runtime must have made /proc/self/exe its read-only handle by then
// (runtime/nsenter's trampoline), not its binary on the host. A private
// copy of the runtime binary is used, so that no other test's runtime
// keeps it busy (ETXTBSY would hide a writable binary).
func TestClonedProcessBinaryProtection(t *testing.T) {
	t.Parallel()
	bin := filepath.Join(t.TempDir(), "skiff-runtime")
	data, err := os.ReadFile(skiffBin)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(bin, data, 0o755); err != nil {
		t.Fatal(err)
	}
	rt := testutil.NewRuntime(t, runtimeUnderTest, bin)
	// pid 1 catches the first process it can open /proc/PID/exe of, waits
	// for it to exit, then tries to open that file for appending.
	attack := `while :; do
  for d in /proc/[0-9]*; do
    p=${d#/proc/}
    [ "$p" = 1 ] || [ "$p" = $$ ] && continue
    if command exec 3<"$d/exe" 2>/dev/null; then
      echo CAUGHT
      while [ -e "$d" ]; do sleep 0.01; done
      # The runtime (the same binary) may still run a moment: retry while
      # it could be busy (ETXTBSY), which a read-only mount never stops being.
      v=PROTECTED
      for i in $(seq 300); do
        if command exec 4>>/proc/self/fd/3 2>/dev/null; then v=WRITABLE; break; fi
        sleep 0.01
      done
      echo $v
      exec 3<&- 4>&-
      sleep 600
    fi
  done
done`
	bundle, spec := testutil.BusyboxBundle(t, "sh", "-c", attack)
	if err := os.WriteFile(filepath.Join(bundle, "rootfs", "evil"), []byte("#!/proc/self/exe\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	spec.Root.Readonly = false
	testutil.WriteSpec(t, bundle, spec)
	id := testutil.ContainerID(t)
	guard(t, rt, id, bundle)
	ctx := testContext(t, 60*time.Second)
	out := filepath.Join(t.TempDir(), "out")
	f, err := os.Create(out)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if res := rt.Exec(ctx, testutil.Stdio{Stdout: f, Stderr: f}, "run", "-d", "--bundle", bundle, id); !res.OK() {
		t.Fatalf("run -d: %v", res.Error())
	}
	defer rt.Delete(ctx, id, true)
	caught := func() bool {
		b, _ := os.ReadFile(out)
		return strings.Contains(string(b), "CAUGHT")
	}
	for i := 0; i < 40 && !caught(); i++ {
		res := rt.Exec(ctx, testutil.Stdio{}, "--debug", "exec", id, "/evil")
		if i == 0 && !strings.Contains(res.Stderr, "exec process cloned") {
			t.Errorf("the exec'd process was not cloned; debug log:\n%s", res.Stderr)
		}
		time.Sleep(100 * time.Millisecond)
	}
	// No more runtime runs from here: the binary is busy no longer.
	verdict := ""
	for i := 0; i < 100 && verdict == "" && caught(); i++ {
		time.Sleep(100 * time.Millisecond)
		b, _ := os.ReadFile(out)
		switch {
		case strings.Contains(string(b), "WRITABLE"):
			verdict = "WRITABLE"
		case strings.Contains(string(b), "PROTECTED"):
			verdict = "PROTECTED"
		}
	}
	switch verdict {
	case "PROTECTED":
	case "WRITABLE":
		t.Fatal("a container process could open the runtime's binary for writing through /proc/PID/exe of an interpreter run by /proc/self/exe (CVE-2019-5736)")
	default:
		b, _ := os.ReadFile(out)
		t.Fatalf("the container never caught the interpreter process in 40 tries; its output: %q", b)
	}
}
