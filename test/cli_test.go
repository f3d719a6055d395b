package test

import (
	"bufio"
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/skiff-containers/skiff/internal/testutil"
)

// TestPauseResume checks pause, resume, and that delete refuses a paused
// container unless forced.
func TestPauseResume(t *testing.T) {
	t.Parallel()
	forEachRuntime(t, func(t *testing.T, rt *testutil.Runtime) {
		bundle, _ := testutil.BusyboxBundle(t, "sleep", "600")
		id := testutil.ContainerID(t)
		guard(t, rt, id, bundle)
		ctx := testContext(t, 60*time.Second)
		if _, stderr, code := rt.Run(ctx, "run", "-d", "--bundle", bundle, id); code != 0 {
			t.Fatalf("run -d: exit %d: %s", code, stderr)
		}
		if _, stderr, code := rt.Run(ctx, "pause", id); code != 0 {
			t.Fatalf("pause: exit %d: %s", code, stderr)
		}
		st, err := rt.State(ctx, id)
		if err != nil || st.Status != "paused" {
			t.Fatalf("state after pause: %+v, %v; want paused", st, err)
		}
		freezer := cgroupFile(t, st.Pid, "freezer", "freezer.state")
		if data, err := os.ReadFile(freezer); err != nil || strings.TrimSpace(string(data)) != "FROZEN" {
			t.Errorf("%s = %q, %v; want FROZEN", freezer, data, err)
		}
		if _, stderr, code := rt.Run(ctx, "delete", id); code != 1 {
			t.Errorf("delete of a paused container: exit %d (%s), want 1", code, stderr)
		}
		if _, stderr, code := rt.Run(ctx, "resume", id); code != 0 {
			t.Fatalf("resume: exit %d: %s", code, stderr)
		}
		if st, err := rt.State(ctx, id); err != nil || st.Status != "running" {
			t.Errorf("state after resume: %+v, %v; want running", st, err)
		}
		if _, stderr, code := rt.Run(ctx, "resume", id); code == 0 {
			t.Errorf("resume of a running container succeeded: %s", stderr)
		}
		if _, stderr, code := rt.Run(ctx, "pause", id); code != 0 {
			t.Fatalf("pause: exit %d: %s", code, stderr)
		}
		if err := rt.Delete(ctx, id, true); err != nil {
			t.Fatalf("delete --force of a paused container: %v", err)
		}
	})
}

// TestPs checks ps in table and JSON form.
func TestPs(t *testing.T) {
	t.Parallel()
	forEachRuntime(t, func(t *testing.T, rt *testutil.Runtime) {
		bundle, _ := testutil.BusyboxBundle(t, "sh", "-c", "sleep 600 & sleep 601 & wait")
		id := testutil.ContainerID(t)
		guard(t, rt, id, bundle)
		ctx := testContext(t, 60*time.Second)
		if _, stderr, code := rt.Run(ctx, "run", "-d", "--bundle", bundle, id); code != 0 {
			t.Fatalf("run -d: exit %d: %s", code, stderr)
		}
		st, err := rt.WaitStatus(ctx, id, "running", 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		var pids []int
		deadline := time.Now().Add(5 * time.Second)
		for len(pids) < 3 && time.Now().Before(deadline) {
			out, stderr, code := rt.Run(ctx, "ps", "--format", "json", id)
			if code != 0 {
				t.Fatalf("ps --format json: exit %d: %s", code, stderr)
			}
			pids = nil
			if err := json.Unmarshal([]byte(out), &pids); err != nil {
				t.Fatalf("ps --format json: %q: %v", out, err)
			}
			time.Sleep(50 * time.Millisecond)
		}
		sort.Ints(pids)
		if len(pids) != 3 || !containsInt(pids, st.Pid) {
			t.Errorf("ps --format json = %v; want the init %d and its two children", pids, st.Pid)
		}
		out, stderr, code := rt.Run(ctx, "ps", id)
		sleeps := 0
		for _, l := range nonEmptyLines(out) {
			if strings.HasSuffix(l, " sleep 600") || strings.HasSuffix(l, " sleep 601") {
				sleeps++
			}
		}
		if code != 0 || !strings.Contains(out, "PID") || sleeps != 2 {
			t.Errorf("ps: exit %d, stdout %q, stderr %q; want a table with both sleeps", code, out, stderr)
		}
		out, _, code = rt.Run(ctx, "ps", id, "-o", "pid,comm")
		if code != 0 || !strings.Contains(out, strconv.Itoa(st.Pid)) || strings.Contains(out, "UID") {
			t.Errorf("ps -o pid,comm: exit %d, %q", code, out)
		}
		if err := rt.Kill(ctx, id, "KILL", "--all"); err != nil {
			t.Fatal(err)
		}
		if _, err := rt.WaitStatus(ctx, id, "stopped", 10*time.Second); err != nil {
			t.Fatal(err)
		}
		for _, pid := range pids {
			for deadline := time.Now().Add(5 * time.Second); alive(pid) && time.Now().Before(deadline); {
				time.Sleep(20 * time.Millisecond)
			}
			if alive(pid) {
				t.Errorf("pid %d survives kill --all", pid)
			}
		}
		if st, err := rt.State(ctx, id); err != nil || st.Pid != 0 {
			t.Errorf("state of a stopped container: %+v, %v; runc reports pid 0", st, err)
		}
		if err := rt.Delete(ctx, id, false); err != nil {
			t.Fatal(err)
		}
	})
}

func containsInt(list []int, v int) bool {
	for _, x := range list {
		if x == v {
			return true
		}
	}
	return false
}

// TestListEmpty checks list on an empty root and on one that does not
// exist.
func TestListEmpty(t *testing.T) {
	t.Parallel()
	forEachRuntime(t, func(t *testing.T, rt *testutil.Runtime) {
		ctx := testContext(t, 30*time.Second)
		for _, root := range []string{rt.Root, filepath.Join(rt.Root, "does-not-exist")} {
			r := *rt
			r.Root = root
			if out, stderr, code := r.Run(ctx, "list"); code != 0 || len(nonEmptyLines(out)) != 1 || !strings.HasPrefix(out, "ID") {
				t.Errorf("list (root %s): exit %d, %q, %q; want just the header", root, code, out, stderr)
			}
			if out, _, code := r.Run(ctx, "list", "-q"); code != 0 || strings.TrimSpace(out) != "" {
				t.Errorf("list -q: exit %d, %q", code, out)
			}
			if list, err := r.List(ctx); err != nil || len(list) != 0 {
				t.Errorf("list --format json: %v, %v", list, err)
			}
		}
		os.RemoveAll(filepath.Join(rt.Root, "does-not-exist"))
	})
}

// TestSpecCommand compares `spec` with runc's.
func TestSpecCommand(t *testing.T) {
	t.Parallel()
	for _, variant := range [][]string{nil, {"--rootless"}} {
		variant := variant
		t.Run("args"+strings.Join(variant, ""), func(t *testing.T) {
			t.Parallel()
			var got [2]specs.Spec
			for i, r := range runtimeBins() {
				rt := &testutil.Runtime{Name: r.name, Bin: r.bin, Root: t.TempDir()}
				ctx := testContext(t, 30*time.Second)
				dir := t.TempDir()
				args := append([]string{"spec", "--bundle", dir}, variant...)
				if _, stderr, code := rt.Run(ctx, args...); code != 0 {
					t.Fatalf("%s %v: exit %d: %s", rt, args, code, stderr)
				}
				data, err := os.ReadFile(filepath.Join(dir, "config.json"))
				if err != nil {
					t.Fatal(err)
				}
				if err := json.Unmarshal(data, &got[i]); err != nil {
					t.Fatalf("%s spec wrote %q: %v", rt, data, err)
				}
				if _, stderr, code := rt.Run(ctx, args...); code != 1 || !mentions(stderr, "config.json") {
					t.Errorf("%s spec over an existing config.json: exit %d, %q; want 1 and a message naming config.json", rt, code, stderr)
				}
			}
			got[0].Version, got[1].Version = "", ""
			if !reflect.DeepEqual(got[0], got[1]) {
				a, _ := json.MarshalIndent(got[0], "", " ")
				b, _ := json.MarshalIndent(got[1], "", " ")
				t.Errorf("spec differs:\n%s", lineDiff(string(a), string(b)))
			}
		})
	}
}

// TestFeatures checks that `features` prints JSON that lists at least the
// hooks and namespaces runc's does.
func TestFeatures(t *testing.T) {
	t.Parallel()
	type features struct {
		OCIVersionMin string   `json:"ociVersionMin"`
		OCIVersionMax string   `json:"ociVersionMax"`
		Hooks         []string `json:"hooks"`
		MountOptions  []string `json:"mountOptions"`
		Linux         struct {
			Namespaces   []string `json:"namespaces"`
			Capabilities []string `json:"capabilities"`
		} `json:"linux"`
	}
	var got [2]features
	for i, r := range runtimeBins() {
		rt := &testutil.Runtime{Name: r.name, Bin: r.bin, Root: t.TempDir()}
		out, stderr, code := rt.Run(testContext(t, 30*time.Second), "features")
		if code != 0 {
			t.Fatalf("%s features: exit %d: %s", rt, code, stderr)
		}
		if err := json.Unmarshal([]byte(out), &got[i]); err != nil {
			t.Fatalf("%s features: %q: %v", rt, out, err)
		}
	}
	r, s := got[0], got[1]
	if s.OCIVersionMin == "" || s.OCIVersionMax == "" {
		t.Errorf("%s features lacks ociVersionMin/Max: %+v", runtimeUnderTest, s)
	}
	for _, c := range []struct {
		what      string
		runc, sub []string
	}{
		{"hooks", r.Hooks, s.Hooks},
		{"linux.namespaces", r.Linux.Namespaces, s.Linux.Namespaces},
		{"mountOptions", r.MountOptions, s.MountOptions},
	} {
		for _, x := range c.runc {
			if !contains(c.sub, x) {
				t.Errorf("%s features: %s lacks %q, which runc has", runtimeUnderTest, c.what, x)
			}
		}
	}
}

func contains(list []string, v string) bool {
	for _, x := range list {
		if x == v {
			return true
		}
	}
	return false
}

// TestLogJSON checks --log FILE --log-format json, which containerd uses:
// a failure is logged as a JSON object with "level":"error" and "msg", the
// form containerd's runc client parses to report the runtime's error.
func TestLogJSON(t *testing.T) {
	t.Parallel()
	forEachRuntime(t, func(t *testing.T, rt *testutil.Runtime) {
		dir := t.TempDir()
		id := testutil.ContainerID(t)
		guard(t, rt, id, dir)
		logFile := filepath.Join(dir, "runtime.log")
		r := *rt
		r.GlobalArgs = []string{"--log", logFile, "--log-format", "json"}
		ctx := testContext(t, 30*time.Second)
		missing := filepath.Join(dir, "no-such-bundle")
		if _, _, code := r.Run(ctx, "create", "--bundle", missing, id); code != 1 {
			t.Errorf("create with a missing bundle: exit %d, want 1", code)
		}
		f, err := os.Open(logFile)
		if err != nil {
			t.Fatalf("the log file was not written: %v", err)
		}
		defer f.Close()
		var found bool
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			var entry struct {
				Level string `json:"level"`
				Msg   string `json:"msg"`
				Time  string `json:"time"`
			}
			if err := json.Unmarshal(sc.Bytes(), &entry); err != nil {
				t.Errorf("log line %q is not JSON: %v", sc.Text(), err)
				continue
			}
			if _, err := time.Parse(time.RFC3339Nano, entry.Time); err != nil {
				t.Errorf("log line %q: time: %v", sc.Text(), err)
			}
			if entry.Level == "error" && strings.Contains(entry.Msg, "no-such-bundle") {
				found = true
			}
		}
		if !found {
			data, _ := os.ReadFile(logFile)
			t.Errorf("no {\"level\":\"error\",\"msg\":...no-such-bundle...} entry in the log:\n%s", data)
		}
	})
}

// TestPreserveFds passes an extra file to the container with --preserve-fds.
func TestPreserveFds(t *testing.T) {
	t.Parallel()
	forEachRuntime(t, func(t *testing.T, rt *testutil.Runtime) {
		bundle, _ := testutil.BusyboxBundle(t, "sh", "-c", "cat <&3; cat <&4")
		dir := t.TempDir()
		id := testutil.ContainerID(t)
		guard(t, rt, id, bundle, dir)
		ctx := testContext(t, 30*time.Second)
		var extra []*os.File
		for i, content := range []string{"from-fd-3\n", "from-fd-4\n"} {
			p := filepath.Join(dir, "fd"+strconv.Itoa(i))
			if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
				t.Fatal(err)
			}
			f, err := os.Open(p)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			extra = append(extra, f)
		}
		cmd := rt.Command(ctx, "run", "--preserve-fds", "2", "--bundle", bundle, id)
		cmd.ExtraFiles = extra
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("run --preserve-fds: %v", err)
		}
		if string(out) != "from-fd-3\nfrom-fd-4\n" {
			t.Errorf("container read %q from fds 3 and 4", out)
		}
	})
}
