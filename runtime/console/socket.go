package console

import (
	"errors"
	"fmt"
	"os"

	"golang.org/x/sys/unix"

	"github.com/skiff-containers/skiff/errdefs"
)

// MasterName is the payload of the message that carries the master, as
// runc sends it (the name of the file the master was opened as).
const MasterName = "/dev/ptmx"

// maxNameLen bounds the payload, as runc's utils.RecvFd does.
const maxNameLen = 4096

// CheckSocket applies runc's rules on process.terminal and --console-socket:
// a container that detaches (create, run -d) needs a console socket to hand
// its terminal to, and a console socket is only for a detached container
// with a terminal. It returns an ErrInvalidArgument with runc's wording.
func CheckSocket(terminal, detach bool, socket string) error {
	if detach && terminal && socket == "" {
		return fmt.Errorf("%w: cannot allocate tty if skiff-runtime will detach without setting console socket (process.terminal is true: pass --console-socket, or set process.terminal to false)", errdefs.ErrInvalidArgument)
	}
	if (!detach || !terminal) && socket != "" {
		return fmt.Errorf("%w: cannot use console socket if runc will not detach or allocate tty (drop --console-socket, or set process.terminal to true and detach)", errdefs.ErrInvalidArgument)
	}
	return nil
}

// Connect dials the --console-socket path, a listening unix stream socket on
// the host, and returns the connected socket, close-on-exec. The parent
// passes it to the container's init as an inherited fd, for Setup, and
// closes its own copy once the init is started.
func Connect(path string) (*os.File, error) {
	if path == "" {
		return nil, fmt.Errorf("%w: console socket: empty path", errdefs.ErrInvalidArgument)
	}
	if len(path) >= len(unix.RawSockaddrUnix{}.Path) {
		return nil, fmt.Errorf("%w: console socket %s: path is %d bytes, longer than a unix socket address can hold (%d); use a shorter path", errdefs.ErrInvalidArgument, path, len(path), len(unix.RawSockaddrUnix{}.Path)-1)
	}
	fd, err := unix.Socket(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("console socket %s: create a unix socket: %w", path, err)
	}
	for {
		err = unix.Connect(fd, &unix.SockaddrUnix{Name: path})
		if err != unix.EINTR {
			break
		}
	}
	if err != nil {
		unix.Close(fd)
		switch {
		case errors.Is(err, unix.ENOENT):
			err = fmt.Errorf("%w: %w", errdefs.ErrNotFound, err)
		case errors.Is(err, unix.ECONNREFUSED), errors.Is(err, unix.ENOTSOCK):
			err = fmt.Errorf("%w: %w (is something listening on it?)", errdefs.ErrFailedPrecondition, err)
		}
		return nil, fmt.Errorf("connect to console socket %s: %w", path, err)
	}
	return os.NewFile(uintptr(fd), "console-socket:"+path), nil
}

// SendMaster sends master over the unix socket sock in one SCM_RIGHTS
// message whose payload is MasterName. It does not close either file.
func SendMaster(sock, master *os.File) error {
	var err error
	ctlErr := control(master, func(mfd int) {
		oob := unix.UnixRights(mfd)
		err = control(sock, func(sfd int) {
			for {
				err = unix.Sendmsg(sfd, []byte(MasterName), oob, nil, 0)
				if err != unix.EINTR && !(err == unix.EAGAIN && waitFD(sfd, unix.POLLOUT) == nil) {
					return
				}
			}
		})
	})
	if err == nil {
		err = ctlErr
	}
	if err != nil {
		return fmt.Errorf("send the pty master over the console socket: %w", err)
	}
	return nil
}

// ReceiveMaster reads one message from sock and returns the master it
// carries, named by the message's payload, in non-blocking mode so that
// reads on it can be interrupted (see Relay). An end of stream before the
// message (the init failed before sending) is an ErrFailedPrecondition.
func ReceiveMaster(sock *os.File) (*os.File, error) {
	name := make([]byte, maxNameLen)
	oob := make([]byte, unix.CmsgSpace(4))
	var n, oobn, flags int
	var err error
	ctlErr := control(sock, func(fd int) {
		for {
			n, oobn, flags, _, err = unix.Recvmsg(fd, name, oob, unix.MSG_CMSG_CLOEXEC)
			if err != unix.EINTR && !(err == unix.EAGAIN && waitFD(fd, unix.POLLIN) == nil) {
				return
			}
		}
	})
	if err == nil {
		err = ctlErr
	}
	if err != nil {
		return nil, fmt.Errorf("receive the pty master from the console socket: %w", err)
	}
	var fds []int
	if oobn > 0 {
		scms, perr := unix.ParseSocketControlMessage(oob[:oobn])
		if perr != nil {
			return nil, fmt.Errorf("receive the pty master: parse the control message: %w", perr)
		}
		for i := range scms {
			got, rerr := unix.ParseUnixRights(&scms[i])
			if rerr == nil {
				fds = append(fds, got...)
			}
		}
	}
	if len(fds) != 1 || flags&(unix.MSG_CTRUNC|unix.MSG_TRUNC) != 0 {
		for _, fd := range fds {
			unix.Close(fd)
		}
		if n == 0 && oobn == 0 {
			return nil, fmt.Errorf("%w: receive the pty master: the console socket was closed before the container's init sent it (see the runtime's error)", errdefs.ErrFailedPrecondition)
		}
		return nil, fmt.Errorf("%w: receive the pty master: the message carried %d descriptors (flags %#x), want exactly 1", errdefs.ErrInvalidArgument, len(fds), flags)
	}
	fd := fds[0]
	if _, err := unix.IoctlGetTermios(fd, unix.TCGETS); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("%w: receive the pty master: the descriptor received is not a terminal: %w", errdefs.ErrInvalidArgument, err)
	}
	if err := unix.SetNonblock(fd, true); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("receive the pty master: set non-blocking mode: %w", err)
	}
	return os.NewFile(uintptr(fd), string(name[:n])), nil
}

// waitFD waits until fd is ready for events, for a socket that may be in
// non-blocking mode (as (*net.UnixConn).File leaves it) but is not known to
// Go's poller.
func waitFD(fd int, events int16) error {
	for {
		_, err := unix.Poll([]unix.PollFd{{Fd: int32(fd), Events: events}}, -1)
		if err != unix.EINTR {
			return err
		}
	}
}

// control runs fn with f's descriptor without changing its blocking mode
// (as f.Fd() would).
func control(f *os.File, fn func(fd int)) error {
	rc, err := f.SyscallConn()
	if err != nil {
		return err
	}
	return rc.Control(func(fd uintptr) { fn(int(fd)) })
}
