package engine

import (
	"os/exec"
	"strings"
	"testing"
	"time"
)

// TestDaemonCrashSurvival: kill -9 skiffd while containers run; they keep
// running and logging; after a restart ps shows them, the one that exited
// meanwhile shows its exit code, and logs, stop and rm work.
func TestDaemonCrashSurvival(t *testing.T) {
	reg := startRegistry(t)
	d := startDaemon(t)
	d.must("pull", "-q", reg.Busybox)

	d.must("run", "-d", "--name", "long", reg.Busybox, "sh", "-c", "i=0; while true; do i=$((i+1)); echo line $i; sleep 0.1; done")
	d.must("run", "-d", "--name", "short", reg.Busybox, "sh", "-c", "sleep 1.5; echo bye; exit 7")
	d.must("create", "--name", "idle", reg.Busybox, "true")
	waitFor(t, "long to log", 10*time.Second, func() bool { return strings.Contains(d.must("logs", "long"), "line 2") })

	d.kill9()
	before := strings.Count(readLogs(t, d, "long"), "line")
	time.Sleep(2500 * time.Millisecond) // short exits meanwhile; long keeps logging
	d.start()

	ps := d.must("ps", "-a", "--format", "{{.Names}} {{.Status}}")
	for _, want := range []string{"long Up", "short Exited (7)", "idle Created"} {
		if !strings.Contains(ps, want) {
			t.Errorf("ps -a after restart lacks %q:\n%s", want, ps)
		}
	}
	if w := strings.TrimSpace(d.must("wait", "short")); w != "7" {
		t.Errorf("wait short = %q, want 7", w)
	}
	if logs := d.must("logs", "short"); strings.TrimSpace(logs) != "bye" {
		t.Errorf("logs short = %q, want bye", logs)
	}
	after := strings.Count(d.must("logs", "long"), "line")
	if after <= before+5 {
		t.Errorf("long logged %d lines before the restart and %d after: it did not keep logging while skiffd was down", before, after)
	}
	d.must("stop", "-t", "1", "long")
	d.must("rm", "long", "short", "idle")
	if ps := d.must("ps", "-aq"); strings.TrimSpace(ps) != "" {
		t.Errorf("containers left after rm: %q", ps)
	}
}

// readLogs reads a container's log file straight from disk (the daemon
// is down).
func readLogs(t *testing.T, d *daemon, name string) string {
	t.Helper()
	out, err := runCmd("sh", "-c", "cat "+d.root+"/containers/*/*/*.log 2>/dev/null || true")
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// TestRuntimes runs the same container with runc, per container and as the
// daemon's default.
func TestRuntimes(t *testing.T) {
	reg := startRegistry(t)
	d := startDaemon(t)
	d.must("pull", "-q", reg.Busybox)
	for _, rt := range []string{"runc", "skiff-runtime"} {
		out := d.must("run", "--rm", "--runtime", rt, reg.Busybox, "sh", "-c", "echo hello from $(hostname | cut -c1-3)")
		if !strings.HasPrefix(out, "hello from") {
			t.Errorf("--runtime %s: got %q", rt, out)
		}
	}
	cid := strings.TrimSpace(d.must("run", "-d", "--runtime", "runc", reg.Busybox, "sleep", "30"))
	if insp := d.must("inspect", cid); !strings.Contains(insp, `"runc"`) {
		t.Errorf("inspect does not show runtime runc:\n%s", insp)
	}
	d.must("rm", "-f", cid)

	d2 := startDaemon(t, "--runtime", "runc")
	d2.must("pull", "-q", reg.Busybox)
	r := d2.run("run", "--rm", reg.Busybox, "sh", "-c", "exit 5")
	if r.Code != 5 {
		t.Errorf("skiffd --runtime runc: run exit %d, want 5: %s", r.Code, r)
	}
	if r := d2.run("run", "--rm", reg.Busybox, "/no/such"); r.Code != 127 {
		t.Errorf("skiffd --runtime runc: missing binary exit %d, want 127: %s", r.Code, r)
	}
}

// TestRuntimeCrun runs containers with crun. crun 1.8 refuses this host's
// hybrid cgroup layout, so skiffd (and with it the shims and crun) runs in
// a mount namespace of its own where the empty cgroup2 mount at
// /sys/fs/cgroup/unified is gone, as the benchmarks run crun.
func TestRuntimeCrun(t *testing.T) {
	crun, err := exec.LookPath("crun")
	if err != nil {
		t.Fatalf("crun is needed for this test (hack/deps.sh installs it): %v", err)
	}
	reg := startRegistry(t)
	wrap := []string{"unshare", "-m", "--propagation", "private", "sh", "-c",
		"umount /sys/fs/cgroup/unified 2>/dev/null; exec \"$0\" \"$@\""}
	d := startWrappedDaemon(t, wrap, "--runtime", crun)
	d.must("pull", "-q", reg.Busybox)
	if out := d.must("run", "--rm", reg.Busybox, "sh", "-c", "echo hi from crun"); out != "hi from crun\n" {
		t.Errorf("crun container said %q", out)
	}
	if r := d.run("run", "--rm", reg.Busybox, "sh", "-c", "exit 9"); r.Code != 9 {
		t.Errorf("crun: exit %d, want 9: %s", r.Code, r)
	}
	if r := d.run("run", "--rm", reg.Busybox, "/no/such"); r.Code != 127 {
		t.Errorf("crun: missing binary: exit %d, want 127: %s", r.Code, r)
	}
	if r := d.run("run", "--rm", reg.Busybox, "/etc/passwd"); r.Code != 126 {
		t.Errorf("crun: not executable: exit %d, want 126: %s", r.Code, r)
	}
}
