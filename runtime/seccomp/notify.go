package seccomp

import (
	"encoding/json"
	"fmt"
	"net"
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

	d := net.Dialer{Timeout: notifyTimeout}
	c, err := d.Dial("unix", listenerPath)
	if err != nil {
		return fmt.Errorf("seccomp: connect to seccomp agent at listenerPath %s: %w", listenerPath, err)
	}
	conn := c.(*net.UnixConn)
	defer conn.Close()
	if err := conn.SetWriteDeadline(time.Now().Add(notifyTimeout)); err != nil {
		return fmt.Errorf("seccomp: seccomp agent at %s: %w", listenerPath, err)
	}
	oob := unix.UnixRights(fd)
	n, oobn, err := conn.WriteMsgUnix(state, oob, nil)
	if err != nil {
		return fmt.Errorf("seccomp: send listener fd to seccomp agent at %s: %w", listenerPath, err)
	}
	if oobn != len(oob) {
		return fmt.Errorf("seccomp: send listener fd to seccomp agent at %s: fd not sent (%d of %d control bytes)", listenerPath, oobn, len(oob))
	}
	// A stream socket may take the message in pieces; the fd went with the
	// first one.
	for n < len(state) {
		m, err := conn.Write(state[n:])
		if err != nil {
			return fmt.Errorf("seccomp: send container state to seccomp agent at %s: %w", listenerPath, err)
		}
		n += m
	}
	return nil
}
