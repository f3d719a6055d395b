package test

import (
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/skiff-containers/skiff/internal/testutil"
)

// startMarkerBundle returns a bundle whose program, once started, creates
// <shared>/started in a host directory bind-mounted at /shared, and then
// waits for TERM (which it turns into exit 0).
func startMarkerBundle(t *testing.T) (bundle, shared string) {
	t.Helper()
	shared = sharedDir(t)
	bundle, spec := testutil.BusyboxBundle(t, "sh", "-c",
		"touch /shared/started; trap 'exit 0' TERM; sleep 600 & wait")
	spec.Mounts = append(spec.Mounts, specs.Mount{
		Destination: "/shared", Type: "bind", Source: shared, Options: []string{"rbind", "rw"},
	})
	testutil.WriteSpec(t, bundle, spec)
	return bundle, shared
}

func alive(pid int) bool {
	return pid > 0 && syscall.Kill(pid, 0) == nil
}

// TestLifecycle walks create → start → kill → delete and checks the state
// and the process at each step, for each way of naming the signal.
func TestLifecycle(t *testing.T) {
	t.Parallel()
	for _, sig := range []string{"TERM", "SIGTERM", "9", "KILL", "SIGKILL"} {
		sig := sig
		t.Run(sig, func(t *testing.T) {
			t.Parallel()
			forEachRuntime(t, func(t *testing.T, rt *testutil.Runtime) {
				bundle, shared := startMarkerBundle(t)
				id := testutil.ContainerID(t)
				guard(t, rt, id, bundle, shared)
				ctx := testContext(t, 60*time.Second)
				marker := filepath.Join(shared, "started")

				before := time.Now()
				if err := rt.Create(ctx, id, bundle); err != nil {
					t.Fatal(err)
				}
				st, err := rt.State(ctx, id)
				if err != nil {
					t.Fatal(err)
				}
				if st.Status != "created" || st.Pid <= 0 || !alive(st.Pid) {
					t.Fatalf("after create: status %q pid %d (alive %v), want created with a live pid", st.Status, st.Pid, alive(st.Pid))
				}
				if st.Created.Before(before.Add(-time.Second)) || st.Created.After(time.Now().Add(time.Second)) {
					t.Errorf("created = %v, not between %v and now", st.Created, before)
				}
				time.Sleep(200 * time.Millisecond)
				if _, err := os.Stat(marker); err == nil {
					t.Fatal("the user program ran before start")
				}
				if err := rt.Start(ctx, id); err != nil {
					t.Fatal(err)
				}
				if !waitFile(marker, 10*time.Second) {
					t.Fatal("the user program did not run after start")
				}
				st2, err := rt.WaitStatus(ctx, id, "running", 5*time.Second)
				if err != nil {
					t.Fatal(err)
				}
				if st2.Pid != st.Pid {
					t.Errorf("pid changed from %d (created) to %d (running)", st.Pid, st2.Pid)
				}
				if err := rt.Start(ctx, id); err == nil {
					t.Error("a second start of a running container succeeded")
				}
				if err := rt.Kill(ctx, id, sig); err != nil {
					t.Fatal(err)
				}
				if _, err := rt.WaitStatus(ctx, id, "stopped", 10*time.Second); err != nil {
					t.Fatal(err)
				}
				if err := rt.Delete(ctx, id, false); err != nil {
					t.Fatal(err)
				}
				if _, err := rt.State(ctx, id); err == nil {
					t.Error("state of a deleted container succeeded")
				}
			})
		})
	}
}

// TestDelete checks delete of running and created containers.
func TestDelete(t *testing.T) {
	t.Parallel()
	t.Run("running", func(t *testing.T) {
		t.Parallel()
		forEachRuntime(t, func(t *testing.T, rt *testutil.Runtime) {
			bundle, _ := testutil.BusyboxBundle(t, "sleep", "600")
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
			_, stderr, code := rt.Run(ctx, "delete", id)
			if code != 1 || !mentions(stderr, "running") {
				t.Errorf("delete of a running container: exit %d, stderr %q; want 1 and a message saying it is running", code, stderr)
			}
			if st, err := rt.State(ctx, id); err != nil || st.Status != "running" {
				t.Errorf("after refused delete: %+v, %v; want running", st, err)
			}
			if err := rt.Delete(ctx, id, true); err != nil {
				t.Fatal(err)
			}
			if _, err := rt.State(ctx, id); err == nil {
				t.Error("state after delete --force succeeded")
			}
			deadline := time.Now().Add(5 * time.Second)
			for alive(st.Pid) && time.Now().Before(deadline) {
				time.Sleep(20 * time.Millisecond)
			}
			if alive(st.Pid) {
				if comm, _ := os.ReadFile("/proc/" + strconv.Itoa(st.Pid) + "/comm"); strings.TrimSpace(string(comm)) == "sleep" {
					t.Errorf("container process %d survives delete --force", st.Pid)
				}
			}
		})
	})
	t.Run("created", func(t *testing.T) {
		t.Parallel()
		forEachRuntime(t, func(t *testing.T, rt *testutil.Runtime) {
			bundle, shared := startMarkerBundle(t)
			id := testutil.ContainerID(t)
			guard(t, rt, id, bundle, shared)
			ctx := testContext(t, 60*time.Second)
			if err := rt.Create(ctx, id, bundle); err != nil {
				t.Fatal(err)
			}
			if err := rt.Delete(ctx, id, false); err != nil {
				t.Fatalf("delete of a created container: %v", err)
			}
			if _, err := rt.State(ctx, id); err == nil {
				t.Error("state after delete succeeded")
			}
			if _, err := os.Stat(filepath.Join(shared, "started")); err == nil {
				t.Error("the user program of a created-then-deleted container ran")
			}
		})
	})
	t.Run("unknown", func(t *testing.T) {
		t.Parallel()
		forEachRuntime(t, func(t *testing.T, rt *testutil.Runtime) {
			ctx := testContext(t, 30*time.Second)
			for _, cmd := range [][]string{{"delete", "no-such-ctr"}, {"state", "no-such-ctr"}, {"start", "no-such-ctr"}, {"kill", "no-such-ctr", "KILL"}} {
				_, stderr, code := rt.Run(ctx, cmd...)
				if code != 1 || !(mentions(stderr, "not exist") || mentions(stderr, "not found")) {
					t.Errorf("%s %q: exit %d, stderr %q; want 1 and \"does not exist\" or \"not found\"", rt, cmd, code, stderr)
				}
			}
			// runc: delete --force of an unknown container is not an error.
			if _, stderr, code := rt.Run(ctx, "delete", "--force", "no-such-ctr"); code != 0 {
				t.Errorf("delete --force of an unknown container: exit %d: %s", code, stderr)
			}
		})
	})
}

// TestStateJSON compares the state JSON of both runtimes: same keys, same
// values except pid, created and ociVersion (each runtime reports the spec
// version it implements).
func TestStateJSON(t *testing.T) {
	t.Parallel()
	oracle, subject := newRuntimes(t)
	bundle, spec := testutil.BusyboxBundle(t, "sleep", "600")
	spec.Annotations = map[string]string{"org.skiff.test": "state", "io.kubernetes.cri.container-type": "container"}
	testutil.WriteSpec(t, bundle, spec)
	ctx := testContext(t, 60*time.Second)
	var states [2]*testutil.State
	for i, rt := range []*testutil.Runtime{oracle, subject} {
		id := "state-json-" + strconv.Itoa(os.Getpid())
		guard(t, rt, id, bundle)
		if err := rt.Create(ctx, id, bundle); err != nil {
			t.Fatal(err)
		}
		st, err := rt.State(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		states[i] = st
		list, err := rt.List(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if len(list) != 1 || list[0].ID != id || list[0].Status != "created" || list[0].Pid != st.Pid {
			t.Errorf("%s list --format json = %+v; want just %s, created, pid %d", rt, list, id, st.Pid)
		}
		out, stderr, code := rt.Run(ctx, "list", "-q")
		if code != 0 || strings.TrimSpace(out) != id {
			t.Errorf("%s list -q: exit %d, %q (stderr %q); want %q", rt, code, out, stderr, id)
		}
		out, _, code = rt.Run(ctx, "list")
		if code != 0 || !strings.Contains(out, id) || !strings.Contains(out, "created") || !strings.Contains(out, bundle) {
			t.Errorf("%s list (table): exit %d, %q", rt, code, out)
		}
		if err := rt.Delete(ctx, id, true); err != nil {
			t.Fatal(err)
		}
		if list, err := rt.List(ctx); err != nil || len(list) != 0 {
			t.Errorf("%s list after delete = %+v, %v", rt, list, err)
		}
	}
	r, s := states[0], states[1]
	keys := func(m map[string]any) []string {
		var k []string
		for key := range m {
			k = append(k, key)
		}
		sort.Strings(k)
		return k
	}
	if !reflect.DeepEqual(keys(r.Raw), keys(s.Raw)) {
		t.Errorf("state keys: runc %v, %s %v", keys(r.Raw), runtimeUnderTest, keys(s.Raw))
	}
	for _, k := range []string{"ociVersion", "id", "pid", "status", "bundle", "rootfs", "created", "owner"} {
		if _, ok := s.Raw[k]; !ok {
			t.Errorf("%s state lacks %q", runtimeUnderTest, k)
		}
	}
	if !regexp.MustCompile(`^\d+\.\d+\.\d+`).MatchString(s.OCIVersion) {
		t.Errorf("%s ociVersion %q is not a version", runtimeUnderTest, s.OCIVersion)
	}
	rc, sc := *r, *s
	for _, st := range []*testutil.State{&rc, &sc} {
		st.Pid, st.Created, st.OCIVersion, st.Raw = 0, time.Time{}, "", nil
	}
	if !reflect.DeepEqual(rc, sc) {
		t.Errorf("state: runc %+v\n%s %+v", rc, runtimeUnderTest, sc)
	}
	if sc.Bundle != bundle || sc.Rootfs != filepath.Join(bundle, "rootfs") {
		t.Errorf("%s state bundle %q rootfs %q", runtimeUnderTest, sc.Bundle, sc.Rootfs)
	}
}

// TestCreateExistingID checks that create with an id in use fails and
// leaves the first container alone.
func TestCreateExistingID(t *testing.T) {
	t.Parallel()
	forEachRuntime(t, func(t *testing.T, rt *testutil.Runtime) {
		bundle, _ := testutil.BusyboxBundle(t, "sleep", "600")
		id := testutil.ContainerID(t)
		guard(t, rt, id, bundle)
		ctx := testContext(t, 60*time.Second)
		if err := rt.Create(ctx, id, bundle); err != nil {
			t.Fatal(err)
		}
		st, err := rt.State(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		for _, cmd := range []string{"create", "run"} {
			_, stderr, code := rt.Run(ctx, cmd, "--bundle", bundle, id)
			if code != 1 || !mentions(stderr, "exist") {
				t.Errorf("%s with an existing id: exit %d, stderr %q; want 1 and \"exists\"", cmd, code, stderr)
			}
		}
		st2, err := rt.State(ctx, id)
		if err != nil || st2.Status != "created" || st2.Pid != st.Pid || !alive(st.Pid) {
			t.Errorf("first container after duplicate create: %+v, %v", st2, err)
		}
		if err := rt.Delete(ctx, id, true); err != nil {
			t.Fatal(err)
		}
	})
}

// TestRunDetached checks run -d: it returns at once, with the container
// running, and the container's output goes to the stdio run was given.
func TestRunDetached(t *testing.T) {
	t.Parallel()
	forEachRuntime(t, func(t *testing.T, rt *testutil.Runtime) {
		bundle, _ := testutil.BusyboxBundle(t, "sh", "-c", "echo hello-from-container; exec sleep 600")
		id := testutil.ContainerID(t)
		guard(t, rt, id, bundle)
		ctx := testContext(t, 60*time.Second)
		out, err := os.CreateTemp(t.TempDir(), "out")
		if err != nil {
			t.Fatal(err)
		}
		defer out.Close()
		start := time.Now()
		res := rt.Exec(ctx, testutil.Stdio{Stdout: out}, "run", "-d", "--bundle", bundle, id)
		if !res.OK() {
			t.Fatalf("run -d: %v", res.Error())
		}
		if d := time.Since(start); d > 20*time.Second {
			t.Errorf("run -d took %v", d)
		}
		if _, err := rt.WaitStatus(ctx, id, "running", 5*time.Second); err != nil {
			t.Fatal(err)
		}
		deadline := time.Now().Add(5 * time.Second)
		var data []byte
		for time.Now().Before(deadline) {
			data, _ = os.ReadFile(out.Name())
			if strings.Contains(string(data), "hello-from-container") {
				break
			}
			time.Sleep(20 * time.Millisecond)
		}
		if !strings.Contains(string(data), "hello-from-container") {
			t.Errorf("container output %q lacks hello-from-container", data)
		}
		if err := rt.Kill(ctx, id, "KILL"); err != nil {
			t.Fatal(err)
		}
		if _, err := rt.WaitStatus(ctx, id, "stopped", 10*time.Second); err != nil {
			t.Fatal(err)
		}
		if err := rt.Delete(ctx, id, false); err != nil {
			t.Fatal(err)
		}
	})
}

// TestRunForeground checks that run returns the container's exit status and
// passes its stdio through.
func TestRunForeground(t *testing.T) {
	t.Parallel()
	forEachRuntime(t, func(t *testing.T, rt *testutil.Runtime) {
		bundle, _ := testutil.BusyboxBundle(t, "sh", "-c", "read line; echo got:$line; echo err >&2; exit 42")
		id := testutil.ContainerID(t)
		guard(t, rt, id, bundle)
		ctx := testContext(t, 60*time.Second)
		in, err := os.CreateTemp(t.TempDir(), "in")
		if err != nil {
			t.Fatal(err)
		}
		defer in.Close()
		in.WriteString("ping\n")
		in.Seek(0, 0)
		res := rt.Exec(ctx, testutil.Stdio{Stdin: in}, "run", "--bundle", bundle, id)
		if res.ExitCode != 42 || strings.TrimSpace(res.Stdout) != "got:ping" || !strings.Contains(res.Stderr, "err") {
			t.Errorf("run: exit %d, stdout %q, stderr %q; want 42, got:ping, err", res.ExitCode, res.Stdout, res.Stderr)
		}
		if _, err := rt.State(ctx, id); err == nil {
			t.Error("container exists after run returned")
		}
	})
}

// TestNaturalExit checks a detached container whose program exits by
// itself: it becomes stopped, kill then fails, and delete works without
// --force.
func TestNaturalExit(t *testing.T) {
	t.Parallel()
	forEachRuntime(t, func(t *testing.T, rt *testutil.Runtime) {
		bundle, _ := testutil.BusyboxBundle(t, "sh", "-c", "exit 7")
		id := testutil.ContainerID(t)
		guard(t, rt, id, bundle)
		ctx := testContext(t, 60*time.Second)
		if _, stderr, code := rt.Run(ctx, "run", "-d", "--bundle", bundle, id); code != 0 {
			t.Fatalf("run -d: exit %d: %s", code, stderr)
		}
		st, err := rt.WaitStatus(ctx, id, "stopped", 10*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		if st.Pid != 0 {
			t.Errorf("stopped container reports pid %d; runc reports 0", st.Pid)
		}
		if _, stderr, code := rt.Run(ctx, "kill", id, "KILL"); code != 1 || !mentions(stderr, "not running") {
			t.Errorf("kill of a stopped container: exit %d, %q; want 1 and \"not running\"", code, stderr)
		}
		if _, stderr, code := rt.Run(ctx, "start", id); code != 1 {
			t.Errorf("start of a stopped container: exit %d, %q; want 1", code, stderr)
		}
		if err := rt.Delete(ctx, id, false); err != nil {
			t.Fatal(err)
		}
	})
}

// TestKillBadSignal checks that kill refuses a signal it does not know.
func TestKillBadSignal(t *testing.T) {
	t.Parallel()
	forEachRuntime(t, func(t *testing.T, rt *testutil.Runtime) {
		bundle, _ := testutil.BusyboxBundle(t, "sleep", "600")
		id := testutil.ContainerID(t)
		guard(t, rt, id, bundle)
		ctx := testContext(t, 60*time.Second)
		if _, stderr, code := rt.Run(ctx, "run", "-d", "--bundle", bundle, id); code != 0 {
			t.Fatalf("run -d: exit %d: %s", code, stderr)
		}
		for _, sig := range []string{"SIGFROB", "FROB", "999", "-1"} {
			_, stderr, code := rt.Run(ctx, "kill", id, sig)
			// runc passes numbers to kill(2) and reports only EINVAL.
			named := mentions(stderr, strings.TrimPrefix(sig, "SIG")) || (rt.Name == "runc" && sig == "999")
			if code != 1 || !named {
				t.Errorf("kill %s: exit %d, %q; want 1 and a message naming it", sig, code, stderr)
			}
		}
		if st, err := rt.State(ctx, id); err != nil || st.Status != "running" {
			t.Errorf("after bad kills: %+v, %v", st, err)
		}
		if err := rt.Delete(ctx, id, true); err != nil {
			t.Fatal(err)
		}
	})
}

// TestBundleDefaults checks how --bundle is resolved: relative to the
// working directory, and the working directory itself when absent. The
// state reports the absolute path either way.
func TestBundleDefaults(t *testing.T) {
	t.Parallel()
	forEachRuntime(t, func(t *testing.T, rt *testutil.Runtime) {
		bundle, _ := testutil.BusyboxBundle(t, "sleep", "600")
		ctx := testContext(t, 60*time.Second)
		for _, c := range []struct {
			name string
			dir  string
			args []string
		}{
			{"relative", filepath.Dir(bundle), []string{"--bundle", filepath.Base(bundle)}},
			{"absent", bundle, nil},
		} {
			id := testutil.ContainerID(t)
			guard(t, rt, id, bundle)
			r := *rt
			r.Dir = c.dir
			if err := r.Exec(ctx, testutil.Stdio{}, append(append([]string{"create"}, c.args...), id)...).Error(); err != nil {
				t.Errorf("%s bundle: %v", c.name, err)
				continue
			}
			st, err := rt.State(ctx, id)
			if err != nil {
				t.Fatal(err)
			}
			if st.Bundle != bundle || st.Rootfs != filepath.Join(bundle, "rootfs") {
				t.Errorf("%s bundle: state bundle %q rootfs %q; want %s", c.name, st.Bundle, st.Rootfs, bundle)
			}
			if err := rt.Delete(ctx, id, true); err != nil {
				t.Fatal(err)
			}
		}
	})
}
