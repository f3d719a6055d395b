package engine

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// TestPullRunLogs is the main path: pull from a registry, list, run in the
// foreground and detached, logs, ps, stop, rm.
func TestPullRunLogs(t *testing.T) {
	reg := startRegistry(t)
	d := startDaemon(t)

	out := d.must("pull", reg.Busybox)
	if !strings.Contains(out, reg.Busybox) {
		t.Errorf("pull output does not name the image:\n%s", out)
	}
	if imgs := d.must("images"); !strings.Contains(imgs, reg.Domain+"/skiff/busybox") || !strings.Contains(imgs, "latest") {
		t.Errorf("images does not list the pulled image:\n%s", imgs)
	}
	id := reg.image.Config.Descriptor.Digest.Encoded()
	if q := d.must("images", "-q"); !strings.HasPrefix(strings.TrimSpace(q), id[:12]) {
		t.Errorf("images -q = %q, want the config digest's prefix %s", q, id[:12])
	}

	r := d.run("run", "--rm", reg.Busybox, "sh", "-c", "echo out; echo err >&2; exit 3")
	if r.Code != 3 || r.Stdout != "out\n" || r.Stderr != "err\n" {
		t.Errorf("foreground run: want exit 3, stdout \"out\\n\", stderr \"err\\n\"; got %s", r)
	}
	if ps := d.must("ps", "-aq"); strings.TrimSpace(ps) != "" {
		t.Errorf("--rm container still listed: %q", ps)
	}

	cid := strings.TrimSpace(d.must("run", "-d", "--name", "ticker", reg.Busybox,
		"sh", "-c", "echo started; while true; do echo tick; sleep 0.2; done"))
	if len(cid) != 64 {
		t.Fatalf("run -d printed %q, want a 64-hex id", cid)
	}
	if ps := d.must("ps"); !strings.Contains(ps, "ticker") || !strings.Contains(ps, cid[:12]) || !strings.Contains(ps, "Up") {
		t.Errorf("ps does not show the running container:\n%s", ps)
	}
	waitFor(t, "two ticks in the log", 10*time.Second, func() bool {
		return strings.Count(d.must("logs", "ticker"), "tick") >= 2
	})
	if logs := d.must("logs", "--tail", "1", "ticker"); strings.TrimSpace(logs) != "tick" {
		t.Errorf("logs --tail 1 = %q", logs)
	}
	start := time.Now()
	d.must("stop", "-t", "1", "ticker")
	if el := time.Since(start); el > 8*time.Second {
		t.Errorf("stop took %s", el)
	}
	if ps := d.must("ps", "-a"); !strings.Contains(ps, "Exited") {
		t.Errorf("ps -a after stop:\n%s", ps)
	}
	// Docker's code for a container killed by SIGTERM (sh ignores nothing here).
	if w := strings.TrimSpace(d.must("wait", "ticker")); w != "143" && w != "137" {
		t.Errorf("wait after stop = %q, want 143 (SIGTERM) or 137 (SIGKILL)", w)
	}
	d.must("rm", "ticker")
	if ps := d.must("ps", "-aq"); strings.TrimSpace(ps) != "" {
		t.Errorf("rm left the container listed: %q", ps)
	}
}

// TestContainerDefaults checks docker's defaults inside the container:
// hostname, /etc files, capabilities, own network namespace with loopback
// only, and --network host.
func TestContainerDefaults(t *testing.T) {
	reg := startRegistry(t)
	d := startDaemon(t)
	d.must("pull", "-q", reg.Busybox)

	out := d.must("run", "--rm", "--hostname", "box1", reg.Busybox, "sh", "-c",
		"hostname; cat /etc/hostname; grep -c localhost /etc/hosts; echo $(ls /sys/class/net); grep CapEff /proc/self/status")
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 5 {
		t.Fatalf("unexpected output:\n%s", out)
	}
	if lines[0] != "box1" || lines[1] != "box1" || lines[2] == "0" || lines[2] == "" {
		t.Errorf("hostname and /etc files: %q", lines[:3])
	}
	if strings.TrimSpace(lines[3]) != "eth0 lo" {
		t.Errorf("default network: interfaces %q, want eth0 (the default bridge network) and lo", lines[3])
	}
	// docker's default capability set.
	if !strings.HasSuffix(lines[4], "00000000a80425fb") {
		t.Errorf("effective capabilities %q, want docker's default set 00000000a80425fb", lines[4])
	}
	// Parallel tests add and remove bridges and veths: compare the
	// interfaces that exist before and after.
	hostIfs, _ := os.ReadDir("/sys/class/net")
	out = d.must("run", "--rm", "--network", "host", reg.Busybox, "ls", "/sys/class/net")
	seen := strings.Fields(out)
	for _, e := range hostIfs {
		if _, err := os.Stat(filepath.Join("/sys/class/net", e.Name())); err == nil && !slices.Contains(seen, e.Name()) {
			t.Errorf("--network host does not see the host's interface %s (sees %v)", e.Name(), seen)
		}
	}
	if none := d.must("run", "--rm", "--network", "none", reg.Busybox, "ls", "/sys/class/net"); strings.TrimSpace(none) != "lo" {
		t.Errorf("--network none: interfaces %q, want only lo", none)
	}
	// lo is up, in both modes: 127.0.0.1 answers.
	for _, mode := range []string{"none", "bridge"} {
		if r := d.run("run", "--rm", "--network", mode, reg.Busybox, "ping", "-c", "1", "-W", "2", "127.0.0.1"); r.Code != 0 {
			t.Errorf("--network %s: 127.0.0.1 does not answer (is lo up?): %s", mode, r)
		}
	}
	// -e, -w, -u, --entrypoint, --read-only.
	out = d.must("run", "--rm", "-e", "FOO=bar", "-w", "/tmp", "-u", "nobody", reg.Busybox,
		"sh", "-c", "echo $FOO $(pwd) $(id -un)")
	if strings.TrimSpace(out) != "bar /tmp nobody" {
		t.Errorf("-e -w -u: got %q", out)
	}
	out = d.must("run", "--rm", "--entrypoint", "echo", reg.Busybox, "hi", "there")
	if strings.TrimSpace(out) != "hi there" {
		t.Errorf("--entrypoint: got %q", out)
	}
	if r := d.run("run", "--rm", "--read-only", reg.Busybox, "touch", "/x"); r.Code == 0 {
		t.Errorf("--read-only: touch /x succeeded")
	}
}

// TestExitCodes checks docker's exit codes for failures: 125 engine
// errors, 126 and 127 start failures, else the container's.
func TestExitCodes(t *testing.T) {
	reg := startRegistry(t)
	d := startDaemon(t)
	d.must("pull", "-q", reg.Busybox)

	for _, tc := range []struct {
		name string
		args []string
		code int
		msg  string
	}{
		{"container's code", []string{"run", "--rm", reg.Busybox, "sh", "-c", "exit 42"}, 42, ""},
		{"missing binary", []string{"run", "--rm", reg.Busybox, "/no/such/program"}, 127, "/no/such/program"},
		{"missing binary on PATH", []string{"run", "--rm", reg.Busybox, "nosuchprogram"}, 127, "nosuchprogram"},
		{"not executable", []string{"run", "--rm", reg.Busybox, "/etc/passwd"}, 126, "/etc/passwd"},
		{"unknown image", []string{"run", "--rm", "--pull", "never", "nosuch/image:latest"}, 125, "nosuch/image"},
		{"malformed reference", []string{"run", "--rm", "UPPER/Case::x"}, 125, "UPPER/Case::x"},
		{"image not in registry", []string{"run", "--rm", reg.Domain + "/skiff/nothere:latest"}, 125, "nothere"},
		{"bad flag", []string{"run", "--no-such-flag", reg.Busybox}, 125, "no-such-flag"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := d.run(tc.args...)
			if r.Code != tc.code {
				t.Errorf("exit %d, want %d: %s", r.Code, tc.code, r)
			}
			if tc.msg != "" && !strings.Contains(r.Stderr, tc.msg) {
				t.Errorf("error does not name %q: %s", tc.msg, r)
			}
		})
	}
	if ps := d.must("ps", "-aq"); strings.TrimSpace(ps) != "" {
		t.Errorf("failed runs left containers behind: %q", ps)
	}
	// Killed by a signal: 128+N, from wait and from a foreground run.
	cid := strings.TrimSpace(d.must("run", "-d", reg.Busybox, "sleep", "60"))
	d.must("kill", "-s", "KILL", cid)
	if w := strings.TrimSpace(d.must("wait", cid)); w != "137" {
		t.Errorf("wait after kill -s KILL = %q, want 137", w)
	}
	d.must("rm", cid)
	// stop -s replaces the stop signal.
	cid = strings.TrimSpace(d.must("run", "-d", reg.Busybox, "sleep", "60"))
	d.must("stop", "-s", "KILL", "-t", "30", cid)
	if w := strings.TrimSpace(d.must("wait", cid)); w != "137" {
		t.Errorf("wait after stop -s KILL = %q, want 137", w)
	}
	d.must("rm", cid)
	// Nothing mounted under the state dir but what running containers need
	// (there are none).
	mounts, _ := os.ReadFile("/proc/self/mountinfo")
	if strings.Contains(string(mounts), d.state+"/") || strings.Contains(string(mounts), filepath.Join(d.root, "snapshots")+"/") {
		t.Errorf("mounts left under the daemon's dirs")
	}
}

// TestNameInUse: a second container with the same name is refused.
func TestNameInUse(t *testing.T) {
	reg := startRegistry(t)
	d := startDaemon(t)
	d.must("pull", "-q", reg.Busybox)
	d.must("create", "--name", "web", reg.Busybox, "true")
	r := d.run("run", "--name", "web", reg.Busybox, "true")
	if r.Code != 125 || !strings.Contains(r.Stderr, "web") || !strings.Contains(r.Stderr, "already in use") {
		t.Errorf("duplicate name: %s", r)
	}
	if n := len(strings.Fields(d.must("ps", "-aq"))); n != 1 {
		t.Errorf("ps -aq lists %d containers, want 1", n)
	}
}
