package testutil

import (
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"
)

// ConsoleSocket is the receiving end of a runtime's --console-socket: a
// unix socket on which the runtime sends the master of the container's
// pseudo-terminal as an SCM_RIGHTS message (what containerd's shim does).
type ConsoleSocket struct {
	Path string
	ln   *net.UnixListener
}

// NewConsoleSocket listens on a new socket in dir; it is closed when the
// test ends.
func NewConsoleSocket(t testing.TB, dir string) *ConsoleSocket {
	t.Helper()
	path := filepath.Join(dir, "console.sock")
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	return &ConsoleSocket{Path: path, ln: ln}
}

// Receive accepts one connection and returns the file descriptor it
// carries, waiting at most timeout.
func (c *ConsoleSocket) Receive(timeout time.Duration) (*os.File, error) {
	c.ln.SetDeadline(time.Now().Add(timeout))
	conn, err := c.ln.AcceptUnix()
	if err != nil {
		return nil, fmt.Errorf("console socket %s: accept: %w", c.Path, err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(timeout))
	buf := make([]byte, 4096)
	oob := make([]byte, syscall.CmsgSpace(4*4))
	_, oobn, _, _, err := conn.ReadMsgUnix(buf, oob)
	if err != nil {
		return nil, fmt.Errorf("console socket %s: read: %w", c.Path, err)
	}
	msgs, err := syscall.ParseSocketControlMessage(oob[:oobn])
	if err != nil {
		return nil, fmt.Errorf("console socket %s: %w", c.Path, err)
	}
	for _, m := range msgs {
		fds, err := syscall.ParseUnixRights(&m)
		if err != nil {
			continue
		}
		for _, extra := range fds[1:] {
			syscall.Close(extra)
		}
		if len(fds) > 0 {
			return os.NewFile(uintptr(fds[0]), "pty-master"), nil
		}
	}
	return nil, errors.New("console socket " + c.Path + ": message carried no file descriptor")
}

// ReadConsole reads from a pty master until the slave side is closed (EIO)
// or timeout, and returns what it read.
func ReadConsole(master *os.File, timeout time.Duration) (string, error) {
	type result struct {
		data []byte
		err  error
	}
	done := make(chan result, 1)
	go func() {
		var out []byte
		buf := make([]byte, 4096)
		for {
			n, err := master.Read(buf)
			out = append(out, buf[:n]...)
			if err != nil {
				if errors.Is(err, syscall.EIO) {
					err = nil
				}
				done <- result{out, err}
				return
			}
		}
	}()
	select {
	case r := <-done:
		return string(r.data), r.err
	case <-time.After(timeout):
		master.Close()
		r := <-done
		return string(r.data), fmt.Errorf("console still open after %v", timeout)
	}
}
