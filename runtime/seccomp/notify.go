package seccomp

import (
	"encoding/json"
	"fmt"
	"time"

	"github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/skiff-containers/skiff/errdefs"
)

// notifyTimeout bounds connecting to and writing to the seccomp agent, so a
// stuck agent fails container creation instead of hanging it.
const notifyTimeout = 10 * time.Second

// NotifyState builds the ContainerProcessState message that SendNotifyFd
// sends for a container: ociVersion, fds ["seccompFd"], the pid of the
// container process as the runtime sees it, cfg.ListenerMetadata as
// metadata, and the container's state.
func NotifyState(cfg *specs.LinuxSeccomp, pid int, state specs.State) ([]byte, error) {
	msg := specs.ContainerProcessState{
		Version: specs.Version,
		Fds:     []string{specs.SeccompFdName},
		Pid:     pid,
		State:   state,
	}
	if cfg != nil {
		msg.Metadata = cfg.ListenerMetadata
	}
	b, err := json.Marshal(&msg)
	if err != nil {
		return nil, fmt.Errorf("seccomp: encode container process state for the seccomp agent: %w", err)
	}
	return b, nil
}

// SendNotifyFd connects to the unix stream socket at listenerPath and sends
// state, an OCI ContainerProcessState JSON document (see NotifyState), with
// fd attached by SCM_RIGHTS, then closes the connection: exactly one message
// per connection, as the runtime-spec's listenerPath section requires.
//
// state must name the fd: its "fds" must be ["seccompFd"]. An empty "fds" is
// filled in. The caller keeps ownership of fd.
//
// Call it from a process the filter does not apply to (the runtime's parent
// side, as runc does): connect and sendmsg made under a filter that notifies
// on them would wait for an agent that has not got the fd yet.
func SendNotifyFd(listenerPath string, fd int, state []byte) error {
	if listenerPath == "" {
		return fmt.Errorf("seccomp: send listener fd: listenerPath is empty: %w", errdefs.ErrInvalidArgument)
	}
	if fd < 0 {
		return fmt.Errorf("seccomp: send listener fd to %s: no fd (%d): Load returns one only when a rule uses %s: %w",
			listenerPath, fd, specs.ActNotify, errdefs.ErrInvalidArgument)
	}
	var msg specs.ContainerProcessState
	if err := json.Unmarshal(state, &msg); err != nil {
		return fmt.Errorf("seccomp: send listener fd to %s: state is not a ContainerProcessState JSON document: %v: %w",
			listenerPath, err, errdefs.ErrInvalidArgument)
	}
	switch {
	case len(msg.Fds) == 0:
		msg.Fds = []string{specs.SeccompFdName}
		b, err := json.Marshal(&msg)
		if err != nil {
			return fmt.Errorf("seccomp: send listener fd to %s: encode state: %w", listenerPath, err)
		}
		state = b
	case len(msg.Fds) != 1 || msg.Fds[0] != specs.SeccompFdName:
		return fmt.Errorf("seccomp: send listener fd to %s: state names fds %q but exactly one fd, %q, is sent: %w",
			listenerPath, msg.Fds, specs.SeccompFdName, errdefs.ErrInvalidArgument)
	}

	// Raw syscalls rather than package net: its dialer drags the cgo DNS
	// resolver into the binary, which the static link refuses to carry
	// cleanly. SO_SNDTIMEO bounds both connect (a full backlog) and the
	// writes on an AF_UNIX stream socket.
	sfd, err := unix.Socket(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("seccomp: connect to seccomp agent at listenerPath %s: socket: %w", listenerPath, err)
	}
	defer unix.Close(sfd)
	tv := unix.NsecToTimeval(notifyTimeout.Nanoseconds())
	if err := unix.SetsockoptTimeval(sfd, unix.SOL_SOCKET, unix.SO_SNDTIMEO, &tv); err != nil {
		return fmt.Errorf("seccomp: seccomp agent at %s: %w", listenerPath, err)
	}
	if err := retryEINTR(func() error { return unix.Connect(sfd, &unix.SockaddrUnix{Name: listenerPath}) }); err != nil {
		return fmt.Errorf("seccomp: connect to seccomp agent at listenerPath %s: dial unix %s: connect: %w", listenerPath, listenerPath, err)
	}
	oob := unix.UnixRights(fd)
	var n int
	err = retryEINTR(func() (err error) {
		n, err = unix.SendmsgN(sfd, state, oob, nil, unix.MSG_NOSIGNAL)
		return err
	})
	if err != nil {
		return fmt.Errorf("seccomp: send listener fd to seccomp agent at %s: %w", listenerPath, err)
	}
	// A stream socket may take the message in pieces; the fd went with the
	// first one.
	for n < len(state) {
		var m int
		err := retryEINTR(func() (err error) {
			m, err = unix.SendmsgN(sfd, state[n:], nil, nil, unix.MSG_NOSIGNAL)
			return err
		})
		if err != nil {
			return fmt.Errorf("seccomp: send container state to seccomp agent at %s: %w", listenerPath, err)
		}
		n += m
	}
	return nil
}

func retryEINTR(f func() error) error {
	for {
		if err := f(); err != unix.EINTR {
			return err
		}
	}
}
