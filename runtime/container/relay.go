package container

import (
	"context"
	"fmt"
	"os"

	"golang.org/x/sys/unix"

	"github.com/skiff-containers/skiff/runtime/console"
)

// relay is the terminal of a foreground `run` or `exec` with
// process.terminal: the runtime receives the pty master itself and relays it
// to the caller's stdio. A nil *relay does nothing.
type relay struct {
	ours   *os.File // our end of the console socketpair
	cancel context.CancelFunc
	done   chan struct{}
}

// newRelay makes the console socketpair and sets *theirs to the end passed
// to the init.
func newRelay(theirs **os.File) (*relay, error) {
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("console socketpair: %w", err)
	}
	*theirs = os.NewFile(uintptr(fds[1]), "console-theirs")
	return &relay{ours: os.NewFile(uintptr(fds[0]), "console-ours")}, nil
}

// start receives the master (the init sent it during create) and relays
// it to in/out (the caller's stdio when nil) until the container side
// closes.
func (r *relay) start(ctx context.Context, terminal bool, in, out *os.File) error {
	if r == nil || !terminal {
		return nil
	}
	master, err := console.ReceiveMaster(r.ours)
	if err != nil {
		return err
	}
	ctx, r.cancel = context.WithCancel(ctx)
	r.done = make(chan struct{})
	go func() {
		defer close(r.done)
		defer master.Close()
		_ = console.Relay(ctx, master, orStd(in, os.Stdin), orStd(out, os.Stdout))
	}()
	return nil
}

func (r *relay) active() bool { return r != nil && r.done != nil }

// wait stops the relay once the process has exited, after its last output.
func (r *relay) wait() {
	if !r.active() {
		return
	}
	r.cancel()
	<-r.done
}

func (r *relay) close() {
	if r != nil {
		r.ours.Close()
	}
}
