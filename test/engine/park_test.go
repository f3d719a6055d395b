package engine

import (
	"encoding/json"
	"fmt"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"
)

// procComm returns the program a process runs, "" if it is gone.
func procComm(pid int) string {
	data, _ := os.ReadFile(fmt.Sprintf("/proc/%d/comm", pid))
	return strings.TrimSpace(string(data))
}

// shimOf returns the shim of a running container: its init's parent.
func shimOf(t *testing.T, d *daemon, name string) int {
	t.Helper()
	var out []struct{ State struct{ Pid int } }
	if err := json.Unmarshal([]byte(d.must("inspect", name)), &out); err != nil || len(out) != 1 || out[0].State.Pid <= 0 {
		t.Fatalf("inspect %s: %v", name, err)
	}
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", out[0].State.Pid))
	if err != nil {
		t.Fatal(err)
	}
	s := string(data)
	ppid, _ := strconv.Atoi(strings.Fields(s[strings.LastIndexByte(s, ')')+2:])[1])
	return ppid
}

// TestShimParks: an idle container's shim parks (it runs skiff-shim-idle,
// 5 s after its last request); ps, logs and a daemon crash and restart
// leave it parked; exec, stop and rm work through it.
func TestShimParks(t *testing.T) {
	reg := startRegistry(t)
	d := startDaemon(t)
	d.must("pull", "-q", reg.Busybox)
	d.must("run", "-d", "--name", "quiet", reg.Busybox, "sh", "-c", "i=0; while true; do echo tick $i; i=$((i+1)); sleep 0.2; done")
	shim := shimOf(t, d, "quiet")
	parked := func() bool { return procComm(shim) == "skiff-shim-idle" }
	waitFor(t, "the shim to park", 20*time.Second, parked)

	if ps := d.must("ps", "--format", "{{.Names}} {{.Status}}"); !strings.Contains(ps, "quiet Up") {
		t.Errorf("ps while the shim is parked:\n%s", ps)
	}
	before := strings.Count(d.must("logs", "quiet"), "tick")
	d.kill9()
	time.Sleep(time.Second)
	d.start()
	if ps := d.must("ps", "--format", "{{.Names}} {{.Status}}"); !strings.Contains(ps, "quiet Up") {
		t.Errorf("ps after a daemon restart:\n%s", ps)
	}
	if after := strings.Count(d.must("logs", "quiet"), "tick"); after < before+3 {
		t.Errorf("the parked shim logged %d lines, then %d a second later", before, after)
	}
	if !parked() {
		t.Errorf("ps, logs or the daemon's recovery woke the shim (it runs %q)", procComm(shim))
	}
	if out := d.must("exec", "quiet", "echo", "from-exec"); out != "from-exec\n" {
		t.Errorf("exec through a parked shim: %q", out)
	}
	d.must("stop", "-t", "1", "quiet")
	if st := d.inspect("quiet").State; st.Running || st.ExitCode != 137 {
		t.Errorf("after stop: %+v", st)
	}
	d.must("rm", "quiet")
	waitFor(t, "the shim to exit", 10*time.Second, func() bool {
		c := procComm(shim)
		if c == "" {
			return true
		}
		data, _ := os.ReadFile(fmt.Sprintf("/proc/%d/stat", shim))
		return strings.Contains(string(data), ") Z ")
	})
}
