package containers_test

import (
	"context"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/skiff-containers/skiff/engine/containers"
	"github.com/skiff-containers/skiff/engine/containers/containerstest"
	"github.com/skiff-containers/skiff/engine/metadata"
	"github.com/skiff-containers/skiff/image/snapshot"
	"github.com/skiff-containers/skiff/internal/testutil"
)

func TestMain(m *testing.M) {
	code := m.Run()
	testutil.RemoveBuilds()
	os.Exit(code)
}

type runtimeBin struct{ name, bin string }

// runtimes builds skiff-shim and skiff-runtime once and returns the
// runtimes every lifecycle test runs with.
func runtimes(t *testing.T) (shim string, rts []runtimeBin) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Fatal("the container service's tests run containers and need root")
	}
	runc, err := exec.LookPath("runc")
	if err != nil {
		t.Fatalf("runc is required on PATH: %v", err)
	}
	rts = []runtimeBin{
		{"skiff-runtime", binary(t, "skiff-runtime")},
		{"runc", runc},
	}
	if crun, err := exec.LookPath("crun"); err == nil && os.Getenv("SKIFF_TEST_CRUN") != "" {
		rts = append(rts, runtimeBin{"crun", crun})
	}
	return binary(t, "skiff-shim"), rts
}

// binary builds cmd/<name>; if the build fails (a tree that other work
// leaves broken for a while), it falls back on bin/<name> of `make build`.
func binary(t *testing.T, name string) string {
	t.Helper()
	bin, err := testutil.BuildBinary("./cmd/" + name)
	if err == nil {
		return bin
	}
	root, rerr := testutil.ModuleRoot()
	if rerr == nil {
		if fi, serr := os.Stat(filepath.Join(root, "bin", name)); serr == nil && fi.Mode().IsRegular() {
			t.Logf("building %s failed; using bin/%s: %v", name, name, err)
			return filepath.Join(root, "bin", name)
		}
	}
	t.Fatal(err)
	return ""
}

// forEachRuntime runs f as a parallel subtest per runtime.
func forEachRuntime(t *testing.T, f func(t *testing.T, e *env)) {
	shim, rts := runtimes(t)
	for _, rt := range rts {
		t.Run(rt.name, func(t *testing.T) {
			t.Parallel()
			f(t, newEnv(t, shim, rt))
		})
	}
}

// logWriter passes the service's log to the test's until the test ends.
type logWriter struct {
	mu   sync.Mutex
	t    *testing.T
	done bool
}

func (w *logWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.done {
		w.t.Log(strings.TrimSpace(string(p)))
	}
	return len(p), nil
}

// env is one service over its own temporary root.
type env struct {
	t      *testing.T
	dir    string
	cfg    containers.Config
	svc    *containers.Service
	rt     runtimeBin
	images *containerstest.Images
	ctx    context.Context

	mu  sync.Mutex
	ids []string
}

const ns = "default"

func newEnv(t *testing.T, shim string, rt runtimeBin) *env {
	t.Helper()
	// Short: the shims' socket paths must fit a unix address.
	dir, err := os.MkdirTemp("", "skc-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	lw := &logWriter{t: t}
	t.Cleanup(func() { lw.mu.Lock(); lw.done = true; lw.mu.Unlock() })
	root, state := filepath.Join(dir, "lib"), filepath.Join(dir, "run")
	for _, d := range []string{root, state} {
		if err := os.MkdirAll(d, 0o711); err != nil {
			t.Fatal(err)
		}
	}
	db, err := metadata.Open(filepath.Join(root, "meta.db"), metadata.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	sn, err := snapshot.New(filepath.Join(root, "snapshots"), snapshot.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sn.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	t.Cleanup(cancel)
	images, err := containerstest.Busybox(ctx, sn)
	if err != nil {
		t.Fatal(err)
	}
	e := &env{
		t: t, dir: dir, rt: rt, images: images, ctx: ctx,
		cfg: containers.Config{
			DB: db, Snapshotter: sn, Images: images,
			Root: root, State: state, ShimBinary: shim, DefaultRuntime: rt.bin,
			Logger: slog.New(slog.NewTextHandler(lw, &slog.HandlerOptions{Level: slog.LevelDebug})),
		},
	}
	// Repair after a failed test: whatever is left is killed and removed
	// (after the leftover report of checkClean, if the test got there).
	t.Cleanup(func() {
		testutil.RemoveLeftovers(e.leftovers())
	})
	e.svc = e.newService()
	return e
}

// newService opens another service on the env's database and directories
// (as a restarted skiffd would); it is closed at the end of the test.
func (e *env) newService() *containers.Service {
	e.t.Helper()
	svc, err := containers.New(e.cfg)
	if err != nil {
		e.t.Fatal(err)
	}
	e.t.Cleanup(func() { svc.Close() })
	return svc
}

func (e *env) leftovers() testutil.Leftovers {
	e.mu.Lock()
	defer e.mu.Unlock()
	var paths []string
	for _, id := range e.ids {
		paths = append(paths, "/skiff/"+ns+"/"+id)
	}
	return testutil.Leftovers{
		StateRoot:   filepath.Join(e.cfg.State, "runtime", filepath.Base(e.rt.bin), ns),
		Dirs:        []string{e.dir},
		CgroupNames: append([]string(nil), e.ids...),
		CgroupPaths: paths,
		Runtime:     &testutil.Runtime{Name: e.rt.name, Bin: e.rt.bin, Root: filepath.Join(e.cfg.State, "runtime", filepath.Base(e.rt.bin), ns)},
		IDs:         append([]string(nil), e.ids...),
	}
}

// create creates a busybox container running args (the image's command if
// none), tweaked by mod.
func (e *env) create(mod func(*containers.CreateConfig), args ...string) containers.Container {
	e.t.Helper()
	cfg := containers.CreateConfig{Image: "busybox", Cmd: args}
	if mod != nil {
		mod(&cfg)
	}
	c, _, err := e.svc.Create(e.ctx, ns, cfg)
	if err != nil {
		e.t.Fatalf("create: %v", err)
	}
	e.track(c.ID)
	return c
}

func (e *env) track(id string) {
	e.mu.Lock()
	e.ids = append(e.ids, id)
	e.mu.Unlock()
}

func (e *env) start(id string) containers.Container {
	e.t.Helper()
	c, err := e.svc.Start(e.ctx, ns, id)
	if err != nil {
		e.t.Fatalf("start %s: %v", id, err)
	}
	return c
}

func (e *env) wait(id, cond string) int {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(e.ctx, 30*time.Second)
	defer cancel()
	code, err := e.svc.Wait(ctx, ns, id, cond)
	if err != nil {
		e.t.Fatalf("wait %s %s: %v", id, cond, err)
	}
	return code
}

func (e *env) inspect(id string) containers.Container {
	e.t.Helper()
	c, err := e.svc.Inspect(e.ctx, ns, id)
	if err != nil {
		e.t.Fatalf("inspect %s: %v", id, err)
	}
	return c
}

func (e *env) remove(id string, force bool) {
	e.t.Helper()
	if _, err := e.svc.Remove(e.ctx, ns, id, force); err != nil {
		e.t.Fatalf("remove %s: %v", id, err)
	}
}

// logs returns the container's log as "stream: line" strings.
func (e *env) logs(id string, o containers.LogsOptions) []string {
	e.t.Helper()
	var out []string
	err := e.svc.Logs(e.ctx, ns, id, o, func(le containers.LogEntry) error {
		out = append(out, string(le.Stream)+": "+strings.TrimSuffix(string(le.Data), "\n"))
		return nil
	})
	if err != nil {
		e.t.Fatalf("logs %s: %v", id, err)
	}
	return out
}

// checkClean checks that nothing of any container is left: records,
// snapshots but the image's, mounts, directories, runtime state, cgroups,
// processes (shims name the temporary root on their command line).
func (e *env) checkClean() {
	e.t.Helper()
	list, err := e.svc.List(e.ctx, ns, true)
	if err != nil {
		e.t.Fatal(err)
	}
	for _, c := range list {
		e.t.Errorf("leftover: record of container %s (%s)", c.ID, c.Status)
	}
	var snaps []string
	e.cfg.Snapshotter.Walk(e.ctx, func(ctx context.Context, in snapshot.Info) error {
		if in.Name != e.images.Image.ChainID {
			snaps = append(snaps, in.Name)
		}
		return nil
	})
	for _, s := range snaps {
		e.t.Errorf("leftover: snapshot %s", s)
	}
	for _, d := range []string{
		filepath.Join(e.cfg.State, "containers", ns),
		filepath.Join(e.cfg.State, "s"),
		filepath.Join(e.cfg.Root, "containers", ns),
	} {
		entries, _ := os.ReadDir(d)
		for _, en := range entries {
			e.t.Errorf("leftover: %s", filepath.Join(d, en.Name()))
		}
	}
	var found []string
	deadline := time.Now().Add(3 * time.Second)
	for {
		found = testutil.FindLeftovers(e.leftovers())
		if len(found) == 0 || time.Now().After(deadline) {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	for _, f := range found {
		e.t.Errorf("leftover: %s", f)
	}
}

// waitFor polls cond until it holds or timeout passes.
func waitFor(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
