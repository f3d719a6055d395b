package test

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/skiff-containers/skiff/internal/testutil"
)

// execCase is one `exec` into a running container.
type execCase struct {
	name string
	// args follow "exec"; "ID" is replaced by the container id and "PROC"
	// by the path of a process.json written from process.
	args      []string
	process   *specs.Process
	normalize func(string) string
	wantExit  int
	// wantStderr, if set, must be mentioned on stderr.
	wantStderr []string
	check      func(t *testing.T, out string)
}

// execStatusFields is statusFields without the pid lines, which depend on
// how many processes the container ran before.
func execStatusFields(s string) string {
	var out []string
	for _, l := range strings.Split(statusFields(s), "\n") {
		if !strings.HasPrefix(l, "NS") {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

// TestExec runs processes in a running container with `exec`, through both
// runtimes, and compares what they see and how they exit.
func TestExec(t *testing.T) {
	t.Parallel()
	appProc := &specs.Process{
		Args: []string{"sh", "-c", "id; pwd; echo $GREETING"},
		Env:  []string{"PATH=/bin", "GREETING=hello"},
		Cwd:  "/tmp",
		User: specs.User{UID: 1000, GID: 1000, AdditionalGids: []uint32{5}},
	}
	cases := []execCase{
		{name: "id", args: []string{"ID", "id"}, check: wantContains("uid=0(root)")},
		{name: "status", args: []string{"ID", "cat", "/proc/self/status"}, normalize: execStatusFields,
			check: wantContains("NoNewPrivs:1", "CapBnd:")},
		{name: "env", args: []string{"--env", "FOO=bar", "--env", "PATH=/bin", "ID", "env"}, normalize: sortedLines,
			check: wantContains("FOO=bar", "PATH=/bin", "GREETING=from-spec")},
		{name: "cwd", args: []string{"--cwd", "/tmp", "ID", "pwd"}, normalize: trimSpace, check: wantContains("/tmp")},
		{name: "user", args: []string{"--user", "1000:1000", "ID", "id"}, check: wantContains("uid=1000(app) gid=1000(app)")},
		{name: "user-gids", args: []string{"-u", "1000", "-g", "5", "ID", "id"}, check: wantContains("uid=1000(app)", "5(tty)")},
		{name: "exit-code", args: []string{"ID", "sh", "-c", "exit 5"}, wantExit: 5},
		{name: "stdio", args: []string{"ID", "sh", "-c", "echo out; echo err >&2"}, check: wantContains("out")},
		{name: "process-json", args: []string{"-p", "PROC", "ID"}, process: appProc,
			check: wantContains("uid=1000(app)", "/tmp", "hello")},
		{name: "same-namespaces", args: []string{"ID", "ls", "-l", "/proc/self/ns"}, normalize: nsIdentity,
			check: wantContains("pid new", "mnt new")},
		{name: "sees-init", args: []string{"ID", "sh", "-c", "tr '\\0' ' ' </proc/1/cmdline"}, check: wantContains("sleep 600")},
		{name: "hostname", args: []string{"ID", "hostname"}, normalize: trimSpace, check: wantContains("runc")},
		{name: "missing-program", args: []string{"ID", "/bin/no-such-program"}, wantExit: 255,
			wantStderr: []string{"no-such-program"}},
		{name: "unknown-container", args: []string{"no-such-container", "true"}, wantExit: 255,
			wantStderr: []string{"not exist"}},
	}
	type outcome struct {
		out, stderr string
		code        int
	}
	results := map[string][]outcome{}
	oracle, subject := newRuntimes(t)
	// skiff-runtime clones most exec'd processes (runtime/cloneinit); its
	// exec'd Go init must behave the same.
	execInit := testutil.NewRuntime(t, runtimeUnderTest+" (exec init)", skiffBin)
	execInit.Env = []string{"SKIFF_RUNTIME_EXEC_INIT=1"}
	runtimes := []*testutil.Runtime{oracle, subject, execInit}
	bundle, spec := testutil.BusyboxBundle(t, "sleep", "600")
	spec.Process.Env = append(spec.Process.Env, "GREETING=from-spec")
	testutil.WriteSpec(t, bundle, spec)
	procFile := filepath.Join(t.TempDir(), "process.json")
	for _, rt := range runtimes {
		id := testutil.ContainerID(t)
		guard(t, rt, id, bundle)
		ctx := testContext(t, 120*time.Second)
		if _, stderr, code := rt.Run(ctx, "run", "-d", "--bundle", bundle, id); code != 0 {
			t.Fatalf("%s run -d: exit %d: %s", rt, code, stderr)
		}
		for _, c := range cases {
			args := []string{"exec"}
			for _, a := range c.args {
				switch a {
				case "ID":
					a = id
				case "PROC":
					data, _ := json.Marshal(c.process)
					if err := os.WriteFile(procFile, data, 0o644); err != nil {
						t.Fatal(err)
					}
					a = procFile
				}
				args = append(args, a)
			}
			stdout, stderr, code := rt.Run(ctx, args...)
			if c.normalize != nil {
				stdout = c.normalize(stdout)
			}
			results[c.name] = append(results[c.name], outcome{stdout, stderr, code})
		}
		// exec -d returns at once and leaves the process running.
		start := time.Now()
		if _, stderr, code := rt.Run(ctx, "exec", "-d", id, "sleep", "30"); code != 0 {
			t.Errorf("%s exec -d: exit %d: %s", rt, code, stderr)
		}
		if d := time.Since(start); d > 10*time.Second {
			t.Errorf("%s exec -d took %v", rt, d)
		}
		if err := rt.Kill(ctx, id, "KILL"); err != nil {
			t.Fatal(err)
		}
		if _, err := rt.WaitStatus(ctx, id, "stopped", 10*time.Second); err != nil {
			t.Fatal(err)
		}
		if _, stderr, code := rt.Run(ctx, "exec", id, "true"); code == 0 {
			t.Errorf("%s exec into a stopped container succeeded", rt)
		} else if !mentions(stderr, "stopped") && !mentions(stderr, "not running") {
			t.Errorf("%s exec into a stopped container: %q does not say it is stopped", rt, stderr)
		}
		if err := rt.Delete(ctx, id, false); err != nil {
			t.Fatal(err)
		}
	}
	for _, c := range cases {
		r := results[c.name]
		if len(r) != len(runtimes) {
			continue
		}
		if c.check != nil {
			t.Run(c.name, func(t *testing.T) { c.check(t, r[0].out) })
		}
		for i, rt := range runtimes {
			name := rt.String()
			switch {
			case c.wantExit == -2 && r[i].code == 0:
				t.Errorf("exec %s: %s succeeded, want a failure", c.name, name)
			case c.wantExit >= 0 && r[i].code != c.wantExit:
				t.Errorf("exec %s: %s exit code %d, want %d; stderr %q", c.name, name, r[i].code, c.wantExit, r[i].stderr)
			}
			if !mentions(r[i].stderr, c.wantStderr...) {
				t.Errorf("exec %s: %s stderr %q does not mention %q", c.name, name, r[i].stderr, c.wantStderr)
			}
		}
		for i, rt := range runtimes[1:] {
			if r[0].code != r[i+1].code {
				t.Errorf("exec %s: exit code runc %d, %s %d (stderr %q)", c.name, r[0].code, rt, r[i+1].code, r[i+1].stderr)
			}
			if r[0].out != r[i+1].out {
				t.Errorf("exec %s sees different things under runc and %s:\n%s", c.name, rt, lineDiff(r[0].out, r[i+1].out))
			}
		}
	}
}

// TestPidFile checks create --pid-file and exec --pid-file.
func TestPidFile(t *testing.T) {
	t.Parallel()
	forEachRuntime(t, func(t *testing.T, rt *testutil.Runtime) {
		bundle, _ := testutil.BusyboxBundle(t, "sleep", "600")
		dir := t.TempDir()
		id := testutil.ContainerID(t)
		guard(t, rt, id, bundle, dir)
		ctx := testContext(t, 60*time.Second)
		pidFile := filepath.Join(dir, "init.pid")
		if err := rt.Create(ctx, id, bundle, "--pid-file", pidFile); err != nil {
			t.Fatal(err)
		}
		st, err := rt.State(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		data, err := os.ReadFile(pidFile)
		if err != nil {
			t.Fatal(err)
		}
		if strings.TrimSpace(string(data)) != strconv.Itoa(st.Pid) {
			t.Errorf("--pid-file holds %q, state pid is %d", data, st.Pid)
		}
		if err := rt.Start(ctx, id); err != nil {
			t.Fatal(err)
		}
		execPid := filepath.Join(dir, "exec.pid")
		if _, stderr, code := rt.Run(ctx, "exec", "-d", "--pid-file", execPid, id, "sleep", "60"); code != 0 {
			t.Fatalf("exec -d --pid-file: exit %d: %s", code, stderr)
		}
		data, err = os.ReadFile(execPid)
		if err != nil {
			t.Fatal(err)
		}
		pid, err := strconv.Atoi(strings.TrimSpace(string(data)))
		if err != nil || pid == st.Pid || !alive(pid) {
			t.Errorf("exec --pid-file holds %q: want the live pid of the exec'd process", data)
		} else {
			// The runtime may write the file just before the execve.
			var comm []byte
			for deadline := time.Now().Add(3 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
				if comm, _ = os.ReadFile("/proc/" + strconv.Itoa(pid) + "/comm"); strings.TrimSpace(string(comm)) == "sleep" {
					break
				}
			}
			if strings.TrimSpace(string(comm)) != "sleep" {
				t.Errorf("exec --pid-file names pid %d, which is %q, not sleep", pid, comm)
			}
		}
		if err := rt.Delete(ctx, id, true); err != nil {
			t.Fatal(err)
		}
	})
}
