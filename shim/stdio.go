package shim

import (
	"errors"
	"os"
	"syscall"
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
	dir, err := mkdirTemp("skiff-shim-console-")
	if err != nil {
		return nil, wrapError(nil, err, "make the console socket's directory")
	}
	path := joinPath(dir, "c.sock")
	ln, err := listenUnix(path)
	if err != nil {
		os.Remove(dir)
		return nil, wrapError(nil, err, "listen on console socket "+path)
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
		return nil, wrapError(nil, err, "console socket: the runtime did not connect within "+durationString(timeout))
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
		return nil, wrapError(nil, err, "console socket: read the runtime's message")
	}
	msgs, err := unix.ParseSocketControlMessage(oob[:oobn])
	if err != nil {
		return nil, wrapError(nil, err, "console socket: parse the control message")
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
		return nil, wrapError(nil, err, "console socket: make the pty master non-blocking")
	}
	return os.NewFile(uintptr(fds[0]), "pty-master"), nil
}

func (c *consoleSocket) close() {
	c.ln.Close()
	os.Remove(c.path)
	os.Remove(c.dir)
}

// mkdirTemp makes a new directory (0700) named prefix and a random suffix
// in os.TempDir, as os.MkdirTemp does (which would link os.Stat and, with
// its FileInfo, time's formatting code: see wire.go).
func mkdirTemp(prefix string) (string, error) {
	for try := 0; ; try++ {
		var rnd [8]byte
		if _, err := unix.Getrandom(rnd[:], 0); err != nil {
			return "", err
		}
		name := prefix
		for _, b := range rnd {
			name += string("0123456789abcdef"[b>>4]) + string("0123456789abcdef"[b&0xf])
		}
		dir := joinPath(os.TempDir(), name)
		err := syscall.Mkdir(dir, 0o700)
		if err == nil {
			return dir, nil
		}
		if err != syscall.EEXIST || try == 100 {
			return "", &os.PathError{Op: "mkdirtemp", Path: dir, Err: err}
		}
	}
}
