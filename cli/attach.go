package cli

import (
	"context"
	"errors"
	"io"
	"os"
	"os/signal"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
	"golang.org/x/term"
	"google.golang.org/grpc"

	skiffv1 "github.com/skiff-containers/skiff/api/skiff/v1"
)

// attachOptions say which streams to attach and how to drive the terminal.
type attachOptions struct {
	stdin bool
	tty   bool
	// sigProxy forwards the CLI's signals to the container (docker's
	// --sig-proxy; off with a tty, whose raw terminal sends ^C as input).
	sigProxy bool
	// detachKeys end the session, leaving the container running (with
	// stdin and a tty); nil means --detach-keys, else docker's default.
	detachKeys []byte
	// keepStdinOpen: the end of the CLI's input does not close the
	// container's stdin (docker attach).
	keepStdinOpen bool
}

// attachHeaderWait bounds how long the CLI waits for the daemon to confirm
// an attach before it starts the container anyway. skiffd confirms with
// an empty AttachOutput; the response header that precedes it (or that a
// server sends with SendHeader) is what the CLI waits for.
const attachHeaderWait = time.Second

// proxiedSignals are the signals docker's CLI forwards to the container.
func proxiedSignals() []os.Signal {
	return []os.Signal{syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP, syscall.SIGQUIT, syscall.SIGUSR1, syscall.SIGUSR2}
}

// attachAndStart attaches to container id, calls start, and copies the
// streams until the container exits; it returns the container's exit code.
// Attaching first means no output is lost, as in docker's run.
func (a *app) attachAndStart(ctx context.Context, c *clients, id string, o attachOptions, start func(context.Context) error) (int, error) {
	if o.detachKeys == nil {
		keys, err := parseDetachKeys(a.detachKeys)
		if err != nil {
			return 0, err
		}
		o.detachKeys = keys
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stream, err := c.containers.Attach(ctx)
	if err != nil {
		return 0, a.fromDaemon(err)
	}
	var sendMu sync.Mutex
	send := func(m *skiffv1.AttachInput) error {
		sendMu.Lock()
		defer sendMu.Unlock()
		return stream.Send(m)
	}
	if err := send(&skiffv1.AttachInput{Msg: &skiffv1.AttachInput_Start{Start: &skiffv1.AttachStart{
		Id: id, Stdin: o.stdin, Stdout: true, Stderr: true, CloseStdinOnEof: o.stdin && !o.keepStdinOpen,
	}}}); err != nil && !errors.Is(err, io.EOF) {
		return 0, a.fromDaemon(err)
	}
	waitAttached(stream, attachHeaderWait)

	// The local terminal: raw mode for -it, restored on every way out.
	inFd, inTTY := isTerminal(a.env.Stdin)
	if o.tty && o.stdin && inTTY {
		state, err := term.MakeRaw(inFd)
		if err != nil {
			return 0, err
		}
		defer term.Restore(inFd, state)
	}

	// Output: copy until the exit message or the end of the stream.
	done := a.copyOutput(stream)

	// Signals: forwarded to the container, or (with a tty) ending the CLI
	// cleanly; SIGWINCH resizes the container's terminal.
	sigc := make(chan os.Signal, 16)
	var sigs []os.Signal
	if o.sigProxy {
		sigs = append(sigs, proxiedSignals()...)
	} else if o.tty {
		sigs = append(sigs, syscall.SIGTERM, syscall.SIGHUP, syscall.SIGINT)
	}
	if o.tty {
		sigs = append(sigs, syscall.SIGWINCH)
	}
	if len(sigs) > 0 {
		signal.Notify(sigc, sigs...)
		defer signal.Stop(sigc)
	}

	if err := start(ctx); err != nil {
		cancel()
		return 0, err
	}

	resize := func() {
		fd := -1
		if f, ok := isTerminal(a.env.Stdout); ok {
			fd = f
		} else if inTTY {
			fd = inFd
		}
		if fd < 0 {
			return
		}
		w, h, err := term.GetSize(fd)
		if err != nil || w <= 0 || h <= 0 {
			return
		}
		send(&skiffv1.AttachInput{Msg: &skiffv1.AttachInput_Resize{Resize: &skiffv1.ResizeRequest{Id: id, Width: uint32(w), Height: uint32(h)}}})
	}
	if o.tty {
		resize()
	}

	detached := make(chan struct{})
	if o.stdin {
		in := a.env.Stdin
		if o.tty {
			in = &escapeProxy{r: in, keys: o.detachKeys}
		}
		go func() {
			buf := make([]byte, 32<<10)
			for {
				n, err := in.Read(buf)
				if n > 0 {
					if send(&skiffv1.AttachInput{Msg: &skiffv1.AttachInput_Stdin{Stdin: append([]byte(nil), buf[:n]...)}}) != nil {
						return
					}
				}
				if errors.Is(err, errDetached) {
					close(detached)
					return
				}
				if err != nil {
					send(&skiffv1.AttachInput{Msg: &skiffv1.AttachInput_CloseStdin{CloseStdin: true}})
					return
				}
			}
		}()
	}

	for {
		select {
		case <-detached:
			// Leave the container running; exit 0 (statusError code 0
			// also skips run's wait for an --rm removal).
			cancel()
			return 0, &statusError{code: 0}
		case r := <-done:
			if r.err != nil {
				return 0, a.fromDaemon(r.err)
			}
			if r.exited {
				return r.code, nil
			}
			// The stream ended without an exit: ask for it.
			resp, err := c.containers.Wait(ctx, &skiffv1.WaitContainerRequest{Id: id, Condition: "not-running"})
			if err != nil {
				return 0, a.fromDaemon(err)
			}
			return int(resp.GetExitCode()), nil
		case sig := <-sigc:
			if sig == syscall.SIGWINCH {
				resize()
				continue
			}
			if !o.sigProxy {
				// tty without proxy: leave, restoring the terminal.
				cancel()
				return 0, &statusError{code: 128 + int(sig.(syscall.Signal))}
			}
			name := unix.SignalName(sig.(syscall.Signal))
			a.debugf("forwarding %s to %s", name, id)
			if _, err := c.containers.Kill(ctx, &skiffv1.KillContainerRequest{Id: id, Signal: name}); err != nil {
				a.debugf("forward %s: %v", name, a.fromDaemon(err))
			}
		}
	}
}

// waitAttached waits until the daemon sent the attach stream's response
// header (it does once the attach is in place), at most d.
func waitAttached(stream grpc.ClientStream, d time.Duration) {
	ch := make(chan struct{})
	go func() {
		stream.Header()
		close(ch)
	}()
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ch:
	case <-t.C:
	}
}

// outputResult is how an attach or exec output stream ended: with the
// exit code (exited), with an error, or just ended.
type outputResult struct {
	code   int
	exited bool
	err    error
}

// copyOutput copies the frames of an attach or exec stream to the CLI's
// stdout and stderr until the exit frame or the end of the stream, and
// reports how it ended on the returned channel.
func (a *app) copyOutput(stream interface {
	Recv() (*skiffv1.AttachOutput, error)
}) <-chan outputResult {
	done := make(chan outputResult, 1)
	go func() {
		for {
			msg, err := stream.Recv()
			if errors.Is(err, io.EOF) {
				done <- outputResult{}
				return
			}
			if err != nil {
				done <- outputResult{err: err}
				return
			}
			if ex := msg.GetExit(); ex != nil {
				done <- outputResult{code: int(ex.GetExitCode()), exited: true}
				return
			}
			w := a.env.Stdout
			if msg.GetStream() == skiffv1.Stream_STREAM_STDERR {
				w = a.env.Stderr
			}
			if len(msg.GetData()) > 0 {
				w.Write(msg.GetData())
			}
		}
	}()
	return done
}
