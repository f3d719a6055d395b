package shim

import (
	"errors"
	"os"

	"golang.org/x/sys/unix"
)

// The shim's sockets are *os.File over raw unix sockets rather than the
// net package's types: importing net links the cgo resolver and libc into
// the binary, about 1.5 MB of resident memory in every shim for nothing
// (the shim never resolves a name). Non-blocking sockets wrapped by
// os.NewFile go through the runtime's poller, with deadlines, like net's.

// listenUnix creates a listening unix stream socket at path.
func listenUnix(path string) (*os.File, error) {
	fd, err := unix.Socket(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC|unix.SOCK_NONBLOCK, 0)
	if err != nil {
		return nil, &os.PathError{Op: "socket", Path: path, Err: err}
	}
	if err := unix.Bind(fd, &unix.SockaddrUnix{Name: path}); err != nil {
		unix.Close(fd)
		return nil, &os.PathError{Op: "bind", Path: path, Err: err}
	}
	if err := unix.Listen(fd, 64); err != nil {
		unix.Close(fd)
		return nil, &os.PathError{Op: "listen", Path: path, Err: err}
	}
	return os.NewFile(uintptr(fd), path), nil
}

// accept waits for a connection on l (honouring l's read deadline) and
// returns it. A closed l gives os.ErrClosed.
func accept(l *os.File) (*os.File, error) {
	rc, err := l.SyscallConn()
	if err != nil {
		return nil, err
	}
	nfd := -1
	var aerr error
	err = rc.Read(func(fd uintptr) bool {
		for {
			nfd, _, aerr = unix.Accept4(int(fd), unix.SOCK_CLOEXEC|unix.SOCK_NONBLOCK)
			if aerr != unix.EINTR && aerr != unix.ECONNABORTED {
				return aerr != unix.EAGAIN
			}
		}
	})
	if err != nil {
		// The poller fails a wait only on a deadline or because the file
		// is being closed (its internal "use of closed file").
		if errors.Is(err, os.ErrDeadlineExceeded) {
			return nil, err
		}
		return nil, newError(os.ErrClosed, "accept: "+os.ErrClosed.Error()+" ("+err.Error()+")")
	}
	if aerr != nil {
		return nil, os.NewSyscallError("accept4", aerr)
	}
	return os.NewFile(uintptr(nfd), "conn"), nil
}

// socketAnswers reports whether something accepts connections on path.
func socketAnswers(path string) bool {
	fd, err := unix.Socket(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return false
	}
	defer unix.Close(fd)
	return unix.Connect(fd, &unix.SockaddrUnix{Name: path}) == nil
}

// conn is a connection: an *os.File socket. (Not an interface of its
// methods: an interface with a time.Time parameter would link time's
// formatting code into the shim, see wire.go.)
type conn = *os.File
