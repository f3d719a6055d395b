package containers

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/skiff-containers/skiff/errdefs"
	"golang.org/x/sys/unix"
)

// ociCLI runs an OCI runtime's command line (runc's), for what the engine
// must do without a shim: recovery after a shim died.
type ociCLI struct {
	bin, root string
}

func (r ociCLI) run(ctx context.Context, args ...string) ([]byte, error) {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	argv := append([]string{"--root", r.root}, args...)
	cmd := exec.CommandContext(ctx, r.bin, argv...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		msg := strings.TrimSpace(stderr.String())
		if strings.Contains(msg, "does not exist") || strings.Contains(msg, "not found") || strings.Contains(msg, "No such file") {
			return out, fmt.Errorf("%s %s: %s: %w", filepath.Base(r.bin), strings.Join(args, " "), msg, errdefs.ErrNotFound)
		}
		return out, fmt.Errorf("%s %s: %v: %s", filepath.Base(r.bin), strings.Join(args, " "), err, msg)
	}
	return out, nil
}

// exists reports whether the runtime keeps state for id. runc, crun and
// skiff-runtime keep a directory <root>/<id>.
func (r ociCLI) exists(id string) bool {
	_, err := os.Stat(filepath.Join(r.root, id))
	return err == nil
}

// state returns the container's OCI status, or ErrNotFound.
func (r ociCLI) state(ctx context.Context, id string) (string, error) {
	out, err := r.run(ctx, "state", id)
	if err != nil {
		return "", err
	}
	var st struct {
		Status string `json:"status"`
	}
	if err := json.Unmarshal(out, &st); err != nil {
		return "", fmt.Errorf("%s state %s: %w", filepath.Base(r.bin), id, err)
	}
	return st.Status, nil
}

// forceDelete kills and deletes the container id, if the runtime has it.
func (r ociCLI) forceDelete(ctx context.Context, id string) error {
	if !r.exists(id) {
		return nil
	}
	if _, err := r.run(ctx, "delete", "--force", id); err != nil && !errdefs.IsNotFound(err) {
		return err
	}
	return nil
}

// processGone reports whether pid has exited (a zombie counts as gone).
func processGone(pid int) bool {
	if pid <= 0 {
		return true
	}
	if err := syscall.Kill(pid, 0); errors.Is(err, syscall.ESRCH) {
		return true
	}
	data, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return true
	}
	s := string(data)
	if i := strings.LastIndexByte(s, ')'); i >= 0 && i+2 < len(s) {
		return s[i+2] == 'Z' || s[i+2] == 'X'
	}
	return false
}

// waitGone waits until pid is gone (exited; a zombie counts) or d passes.
// It sleeps on a pidfd, which becomes readable the moment the process
// exits, and falls back on polling where pidfds are missing.
func waitGone(pid int, d time.Duration) bool {
	deadline := time.Now().Add(d)
	if processGone(pid) {
		return true
	}
	if fd, err := unix.PidfdOpen(pid, 0); err == nil {
		defer unix.Close(fd)
		for {
			left := time.Until(deadline)
			if left <= 0 {
				return processGone(pid)
			}
			fds := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}
			n, err := unix.Poll(fds, int(left/time.Millisecond)+1)
			if err == unix.EINTR {
				continue
			}
			if err != nil || n > 0 {
				return processGone(pid)
			}
		}
	} else if errors.Is(err, unix.ESRCH) {
		return true
	}
	for !processGone(pid) {
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(20 * time.Millisecond)
	}
	return true
}

// startExitCode is docker's exit code for a runtime error that means the
// container's program could not be run: 127 when it does not exist, 126
// when it cannot be executed (moby daemon/start.go).
func startExitCode(err error) int {
	msg := strings.ToLower(err.Error())
	// runc and skiff-runtime say `exec: "prog": …`, crun `executable file
	// `prog` not found …` or `open executable: …`.
	if !strings.Contains(msg, `exec: "`) && !strings.Contains(msg, "executable") {
		return 0
	}
	switch {
	case strings.Contains(msg, "not found in $path"),
		strings.Contains(msg, "executable file not found"),
		strings.Contains(msg, "no such file or directory"):
		return 127
	case strings.Contains(msg, "permission denied"),
		strings.Contains(msg, "is a directory"),
		strings.Contains(msg, "exec format error"):
		return 126
	}
	return 0
}

// programError extracts, from the error of a runtime's create that could
// not run the container's program, the part that says why: the Go exec
// error runc, crun and skiff-runtime report (`exec: "x": executable file
// not found in $PATH`), without the shim's pointers to its files (which a
// failed start does not keep).
func programError(msg string) string {
	i := strings.Index(msg, `exec: "`)
	if i < 0 {
		i = strings.Index(msg, "executable")
	}
	if i < 0 {
		return msg
	}
	msg = msg[i:]
	if j := strings.Index(msg, " (check the bundle"); j >= 0 {
		msg = msg[:j]
	}
	for _, class := range []string{": not found", ": failed precondition", ": invalid argument"} {
		msg = strings.TrimSuffix(msg, class)
	}
	return msg
}
