package test

import (
	"bufio"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/skiff-containers/skiff/internal/testutil"
)

// TestContainerdFlow drives a runtime the way containerd's runc shim does:
// global --log FILE --log-format json on every command, create with
// --pid-file and the container's stdio on files, start, exec --process
// --detach --pid-file, ps --format json, update --resources -, pause,
// resume, kill 15, delete. Every command must succeed without logging an
// error, and the container's output must arrive.
func TestContainerdFlow(t *testing.T) {
	t.Parallel()
	forEachRuntime(t, func(t *testing.T, rt *testutil.Runtime) {
		bundle, _ := testutil.BusyboxBundle(t, "sh", "-c", `echo started; trap 'echo got-term; exit 0' TERM; sleep 600 & wait`)
		work := t.TempDir()
		id := testutil.ContainerID(t)
		guard(t, rt, id, bundle, work)
		ctx := testContext(t, 60*time.Second)
		logFile := filepath.Join(work, "log.json")
		r := *rt
		r.GlobalArgs = []string{"--log", logFile, "--log-format", "json"}
		must := func(res testutil.Result) testutil.Result {
			t.Helper()
			if err := res.Error(); err != nil {
				t.Fatal(err)
			}
			return res
		}

		out, err := os.Create(filepath.Join(work, "stdout"))
		if err != nil {
			t.Fatal(err)
		}
		defer out.Close()
		must(r.Exec(ctx, testutil.Stdio{Stdout: out, Stderr: out}, "create", "--bundle", bundle, "--pid-file", filepath.Join(bundle, "init.pid"), id))
		must(r.Exec(ctx, testutil.Stdio{}, "start", id))
		if !waitForContent(out.Name(), "started", 5*time.Second) {
			t.Fatal("the container's output did not arrive")
		}
		proc := specs.Process{Args: []string{"sleep", "30"}, Cwd: "/", Env: []string{"PATH=/bin"}}
		procFile := filepath.Join(work, "process.json")
		data, _ := json.Marshal(proc)
		if err := os.WriteFile(procFile, data, 0o644); err != nil {
			t.Fatal(err)
		}
		must(r.Exec(ctx, testutil.Stdio{}, "exec", "--process", procFile, "--detach", "--pid-file", filepath.Join(work, "exec.pid"), id))
		var pids []int
		res := must(r.Exec(ctx, testutil.Stdio{}, "ps", "--format", "json", id))
		if err := json.Unmarshal([]byte(res.Stdout), &pids); err != nil || len(pids) < 3 {
			t.Errorf("ps --format json = %q, %v; want init, its sleep and the exec'd sleep", res.Stdout, err)
		}
		upd := r.Command(ctx, "update", "--resources", "-", id)
		upd.Stdin = strings.NewReader(`{"pids":{"limit":64}}`)
		if b, err := upd.CombinedOutput(); err != nil {
			t.Fatalf("update --resources -: %v: %s", err, b)
		}
		must(r.Exec(ctx, testutil.Stdio{}, "pause", id))
		must(r.Exec(ctx, testutil.Stdio{}, "resume", id))
		must(r.Exec(ctx, testutil.Stdio{}, "kill", id, "15"))
		if _, err := r.WaitStatus(ctx, id, "stopped", 10*time.Second); err != nil {
			t.Fatal(err)
		}
		if !waitForContent(out.Name(), "got-term", 5*time.Second) {
			data, _ := os.ReadFile(out.Name())
			t.Errorf("container output %q lacks got-term", data)
		}
		must(r.Exec(ctx, testutil.Stdio{}, "delete", id))

		f, err := os.Open(logFile)
		if err != nil {
			if !os.IsNotExist(err) {
				t.Fatal(err)
			}
			return // nothing logged: fine
		}
		defer f.Close()
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			var entry map[string]any
			if err := json.Unmarshal(sc.Bytes(), &entry); err != nil {
				t.Errorf("log line %q is not JSON", sc.Text())
				continue
			}
			if lvl, _ := entry["level"].(string); strings.EqualFold(lvl, "error") || strings.EqualFold(lvl, "fatal") {
				t.Errorf("error logged on a successful flow: %s", sc.Text())
			}
		}
	})
}

// waitForContent waits up to timeout for the file to contain s.
func waitForContent(path, s string, timeout time.Duration) bool {
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		if data, _ := os.ReadFile(path); strings.Contains(string(data), s) {
			return true
		}
		time.Sleep(20 * time.Millisecond)
	}
	return false
}
