package container

import (
	"os"
	"os/exec"
	"testing"
	"time"
)

func TestProcStartTime(t *testing.T) {
	st, state, err := procStartTime(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	if st == 0 || (state != 'R' && state != 'S') {
		t.Errorf("own start time %d state %q", st, state)
	}
	if _, _, err := procStartTime(1 << 30); err == nil {
		t.Error("start time of a pid that can't exist: no error")
	}
}

func TestInitAliveAndWaitGone(t *testing.T) {
	cmd := exec.Command("sleep", "30")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	pid := cmd.Process.Pid
	st, _, err := procStartTime(pid)
	if err != nil {
		t.Fatal(err)
	}
	if !initAlive(pid, st) {
		t.Fatal("running child not alive")
	}
	if initAlive(pid, st+1) {
		t.Fatal("a different start time must not match: the pid was reused")
	}
	_ = cmd.Process.Kill()
	// Not reaped yet: a zombie counts as dead.
	if !waitGone(pid, st, 5*time.Second) {
		t.Fatal("killed child still alive")
	}
	_ = cmd.Wait()
	if initAlive(pid, 0) {
		t.Fatal("reaped child alive")
	}
}

func TestWriteFileAtomic(t *testing.T) {
	dir := t.TempDir()
	p := dir + "/f"
	for _, content := range []string{"one", "two"} {
		if err := writeFileAtomic(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		b, err := os.ReadFile(p)
		if err != nil || string(b) != content {
			t.Fatalf("read %q, %v; want %q", b, err, content)
		}
	}
	ents, _ := os.ReadDir(dir)
	if len(ents) != 1 {
		t.Errorf("temp files left behind: %v", ents)
	}
	fi, _ := os.Stat(p)
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("mode %v", fi.Mode())
	}
}
