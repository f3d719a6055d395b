package shim

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"golang.org/x/sys/unix"
)

// containerStdio is the container's side (given to the runtime's create)
// and the shim's side of the container's standard streams.
type containerStdio struct {
	// Given to create as fds 0, 1, 2 (nil: /dev/null, or with a terminal
	// the runtime's own captured output).
	childIn, childOut, childErr *os.File
	// The shim's ends: stdinW is nil without --stdin; stdout and stderr
	// are the pipes' read ends, or, with a terminal, stdout is the pty
	// master (received after create) and stderr nil.
	stdinW, stdout, stderr *os.File
}

// newPipes makes the pipes of a container without a terminal.
func newPipes(withStdin bool) (s *containerStdio, err error) {
	s = &containerStdio{}
	defer func() {
		if err != nil {
			s.closeChild()
			s.closeShim()
		}
	}()
	if withStdin {
		if s.childIn, s.stdinW, err = os.Pipe(); err != nil {
			return s, err
		}
	}
	if s.stdout, s.childOut, err = os.Pipe(); err != nil {
		return s, err
	}
	if s.stderr, s.childErr, err = os.Pipe(); err != nil {
		return s, err
	}
	return s, nil
}

// closeChild closes the shim's copies of the container's ends, which it
// must not keep once create is done (else the output never ends).
func (s *containerStdio) closeChild() {
	for _, f := range []*os.File{s.childIn, s.childOut, s.childErr} {
		if f != nil {
			f.Close()
		}
	}
	s.childIn, s.childOut, s.childErr = nil, nil, nil
}

func (s *containerStdio) closeShim() {
	for _, f := range []*os.File{s.stdinW, s.stdout, s.stderr} {
		if f != nil {
			f.Close()
		}
	}
}

// consoleSocket is the listening end of the runtime's --console-socket. It
// lives in a private temporary directory, so that its path is short (a
// state directory may be too deep for a socket address) and nobody else
// can connect to it first.
type consoleSocket struct {
	dir  string
	path string
	ln   *os.File
}

func newConsoleSocket() (*consoleSocket, error) {
	dir, err := os.MkdirTemp("", "skiff-shim-console-")
	if err != nil {
		return nil, fmt.Errorf("make the console socket's directory: %w", err)
	}
	path := filepath.Join(dir, "c.sock")
	ln, err := listenUnix(path)
	if err != nil {
		os.RemoveAll(dir)
		return nil, fmt.Errorf("listen on console socket %s: %w", path, err)
	}
	return &consoleSocket{dir: dir, path: path, ln: ln}, nil
}

// receive accepts the runtime's connection and returns the pty master it
// sends (SCM_RIGHTS, as runc's utils.SendFd), made non-blocking so that
// reads go through the poller.
func (c *consoleSocket) receive(timeout time.Duration) (*os.File, error) {
	c.ln.SetReadDeadline(time.Now().Add(timeout))
	conn, err := accept(c.ln)
	if err != nil {
		return nil, fmt.Errorf("console socket: the runtime did not connect within %v: %w", timeout, err)
	}
	defer conn.Close()
	conn.SetReadDeadline(time.Now().Add(timeout))
	rc, err := conn.SyscallConn()
	if err != nil {
		return nil, err
	}
	name := make([]byte, 4096)
	oob := make([]byte, unix.CmsgSpace(4*4))
	var oobn int
	var rerr error
	err = rc.Read(func(fd uintptr) bool {
		for {
			_, oobn, _, _, rerr = unix.Recvmsg(int(fd), name, oob, unix.MSG_CMSG_CLOEXEC)
			if rerr != unix.EINTR {
				return rerr != unix.EAGAIN
			}
		}
	})
	if err == nil {
		err = rerr
	}
	if err != nil {
		return nil, fmt.Errorf("console socket: read the runtime's message: %w", err)
	}
	msgs, err := unix.ParseSocketControlMessage(oob[:oobn])
	if err != nil {
		return nil, fmt.Errorf("console socket: parse the control message: %w", err)
	}
	var fds []int
	for i := range msgs {
		if got, err := unix.ParseUnixRights(&msgs[i]); err == nil {
			fds = append(fds, got...)
		}
	}
	if len(fds) == 0 {
		return nil, errors.New("console socket: the runtime's message carried no file descriptor")
	}
	for _, fd := range fds[1:] {
		unix.Close(fd)
	}
	unix.CloseOnExec(fds[0])
	if err := unix.SetNonblock(fds[0], true); err != nil {
		unix.Close(fds[0])
		return nil, fmt.Errorf("console socket: make the pty master non-blocking: %w", err)
	}
	return os.NewFile(uintptr(fds[0]), "pty-master"), nil
}

func (c *consoleSocket) close() {
	c.ln.Close()
	os.RemoveAll(c.dir)
}
