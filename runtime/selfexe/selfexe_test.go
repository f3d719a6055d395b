package selfexe

import (
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// busyboxCopy copies the host's static busybox to a file no process runs,
// standing in for the runtime binary (a running binary can't be opened for
// writing at all, which would hide what the mount does).
func busyboxCopy(t *testing.T) string {
	t.Helper()
	src, err := os.Open("/bin/busybox")
	if err != nil {
		t.Fatalf("this test needs the host's static busybox (busybox-static): %v", err)
	}
	defer src.Close()
	dst := filepath.Join(t.TempDir(), "busybox")
	out, err := os.OpenFile(dst, os.O_CREATE|os.O_WRONLY, 0o755)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(out, src); err != nil {
		t.Fatal(err)
	}
	if err := out.Close(); err != nil {
		t.Fatal(err)
	}
	return dst
}

func TestOpenLeavesNothing(t *testing.T) {
	dir := t.TempDir()
	f, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if ents, _ := os.ReadDir(dir); len(ents) != 0 {
		t.Errorf("scratch files left in %s: %v", dir, ents)
	}
	mi, _ := os.ReadFile("/proc/self/mountinfo")
	if strings.Contains(string(mi), dir) {
		t.Errorf("bind mount left under %s", dir)
	}
	var a, b unix.Stat_t
	if err := unix.Fstat(int(f.Fd()), &a); err != nil {
		t.Fatal(err)
	}
	if err := unix.Stat("/proc/self/exe", &b); err != nil {
		t.Fatal(err)
	}
	if a.Ino != b.Ino || a.Dev != b.Dev {
		t.Errorf("handle is not the running binary: ino %d/%d dev %d/%d", a.Ino, b.Ino, a.Dev, b.Dev)
	}
}

// TestExecedBinaryCannotBeReopenedForWriting is the CVE-2019-5736 attack in
// small: a process exec'd through the handle is reached by its
// /proc/<pid>/exe, held as an O_PATH fd until the process is gone, then
// reopened for writing. Without the protection (the control case) that
// open succeeds: it would let a container overwrite the host's binary.
func TestExecedBinaryCannotBeReopenedForWriting(t *testing.T) {
	tests := []struct {
		name      string
		protected bool
	}{
		{"protected", true},
		{"control: exec'd directly", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			bin := busyboxCopy(t)
			path := bin
			if tt.protected {
				f, err := openReadOnly(bin, t.TempDir())
				if err != nil {
					t.Fatal(err)
				}
				defer f.Close()
				path = "/proc/self/fd/" + strconv.Itoa(int(f.Fd()))
			}
			// busybox picks its applet from argv[0], which must not be
			// the /proc/self/fd path, or it exits at once.
			cmd := exec.Command(path, "30")
			cmd.Args[0] = "sleep"
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			fd, err := unix.Open("/proc/"+strconv.Itoa(cmd.Process.Pid)+"/exe", unix.O_PATH|unix.O_CLOEXEC, 0)
			_ = cmd.Process.Kill()
			_ = cmd.Wait()
			if err != nil {
				t.Fatal(err)
			}
			defer unix.Close(fd)
			w, err := unix.Open("/proc/self/fd/"+strconv.Itoa(fd), unix.O_WRONLY|unix.O_CLOEXEC, 0)
			if w >= 0 {
				unix.Close(w)
			}
			if tt.protected && !errors.Is(err, unix.EROFS) {
				t.Fatalf("reopen the exited process's binary for writing: %v, want EROFS", err)
			}
			if !tt.protected && err != nil {
				t.Fatalf("control: reopen for writing failed (%v): the test can't tell protection from its absence", err)
			}
		})
	}
}
