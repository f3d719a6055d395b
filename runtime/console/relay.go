package console

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// Relay connects the container's pty master to the caller's terminal, as
// `runc run` does for a container with a terminal and no console socket:
// it copies in to master and master to out until the container's side of
// the pty is closed by every process (the master reads EIO) or ctx is done,
// and then returns once the output the master still holds is written.
// Cancelling ctx after the container's init has exited is the normal way to
// end it when background processes may keep the pty open; it is not an
// error.
//
// The first of in and out that is a terminal is the caller's terminal: it is
// put in raw mode (output processing kept) and restored on return, and the
// container's window size follows it, now and on every SIGWINCH. When
// neither is a terminal, bytes are copied as they are (runc would refuse;
// this lets a script pipe into a container's terminal). ONLCR is cleared on
// the container's pty, as runc does, so the caller's terminal alone turns
// "\n" into "\r\n".
//
// The end of in stops the input copy only; it sends nothing to the
// container. master must not be used by anyone else while Relay runs; it
// is not closed.
func Relay(ctx context.Context, master, in, out *os.File) (err error) {
	m, release, err := pollable(master)
	if err != nil {
		return err
	}
	defer release()
	defer func() { _ = m.SetDeadline(time.Time{}) }()

	if err := control(m, clearONLCR); err != nil {
		return fmt.Errorf("relay the container's terminal: clear ONLCR on its pty: %w", err)
	}

	term := callerTerminal(in, out)
	if term != nil {
		restore, err := makeRaw(term)
		if err != nil {
			return err
		}
		defer restore()
		winch := make(chan os.Signal, 1)
		signal.Notify(winch, unix.SIGWINCH)
		defer signal.Stop(winch)
		_ = resizeFrom(m, term) // as runc: a failed resize is not fatal
		done := make(chan struct{})
		defer close(done)
		go func() {
			for {
				select {
				case <-winch:
					_ = resizeFrom(m, term)
				case <-done:
					return
				}
			}
		}()
	}

	var wg sync.WaitGroup
	if in != nil {
		stopIn, err := newWaker()
		if err != nil {
			return err
		}
		defer stopIn.close()
		wg.Add(1)
		go func() {
			defer wg.Done()
			copyInput(m, in, stopIn)
		}()
		defer func() {
			stopIn.wake()
			// A write blocked on a full pty gives up too.
			_ = m.SetWriteDeadline(time.Now())
			wg.Wait()
		}()
	}

	stopOut := context.AfterFunc(ctx, func() { _ = m.SetReadDeadline(time.Now()) })
	defer stopOut()
	return copyOutput(out, m)
}

// copyOutput copies the master to out until the pty's other side is gone
// (EIO) or the read deadline fires; then it writes what the master still
// holds without waiting for more.
func copyOutput(out io.Writer, m *os.File) error {
	buf := make([]byte, 32<<10)
	for {
		n, err := m.Read(buf)
		if n > 0 {
			if _, werr := out.Write(buf[:n]); werr != nil {
				return fmt.Errorf("relay the container's terminal: write its output: %w", werr)
			}
		}
		switch {
		case err == nil:
			continue
		case errors.Is(err, os.ErrDeadlineExceeded):
			return drain(out, m, buf)
		case errors.Is(err, unix.EIO), errors.Is(err, io.EOF):
			return nil
		default:
			return fmt.Errorf("relay the container's terminal: read its output: %w", err)
		}
	}
}

// drain writes what can be read from the non-blocking master right now.
func drain(out io.Writer, m *os.File, buf []byte) error {
	var werr error
	err := control(m, func(fd int) {
		for {
			n, err := unix.Read(fd, buf)
			if err == unix.EINTR {
				continue
			}
			if n <= 0 || err != nil {
				return
			}
			if _, werr = out.Write(buf[:n]); werr != nil {
				return
			}
		}
	})
	if werr != nil {
		return fmt.Errorf("relay the container's terminal: write its output: %w", werr)
	}
	if err != nil {
		return fmt.Errorf("relay the container's terminal: drain its output: %w", err)
	}
	return nil
}

// copyInput copies in to m until in ends or fails, m fails, or stop is
// woken. It waits for in with poll(2) so it can be stopped without making
// the caller's stdin non-blocking (a mode shared with every process using
// that terminal).
func copyInput(m *os.File, in *os.File, stop *waker) {
	buf := make([]byte, 32<<10)
	for {
		var n int
		var rerr error
		stopped := false
		err := control(in, func(fd int) {
			fds := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}, {Fd: int32(stop.r), Events: unix.POLLIN}}
			for {
				_, err := unix.Poll(fds, -1)
				if err == unix.EINTR {
					continue
				}
				if err != nil {
					rerr = err
					return
				}
				break
			}
			if fds[1].Revents != 0 {
				stopped = true
				return
			}
			for {
				n, rerr = unix.Read(fd, buf)
				if rerr != unix.EINTR {
					return
				}
			}
		})
		if rerr == unix.EAGAIN {
			continue // a non-blocking in, emptied by someone else
		}
		if err != nil || stopped || rerr != nil || n <= 0 {
			return
		}
		if _, err := m.Write(buf[:n]); err != nil {
			return
		}
	}
}

// pollable returns master in a form whose reads can be interrupted by a
// deadline: master itself when it is already, else a non-blocking duplicate
// (release closes it and puts the shared file back in blocking mode).
func pollable(master *os.File) (*os.File, func(), error) {
	if err := master.SetReadDeadline(time.Time{}); err == nil {
		return master, func() {}, nil
	}
	var dup int
	var derr error
	if err := control(master, func(fd int) {
		dup, derr = unix.FcntlInt(uintptr(fd), unix.F_DUPFD_CLOEXEC, 0)
	}); err != nil {
		derr = err
	}
	if derr != nil {
		return nil, nil, fmt.Errorf("relay the container's terminal: duplicate its pty master: %w", derr)
	}
	if err := unix.SetNonblock(dup, true); err != nil {
		unix.Close(dup)
		return nil, nil, fmt.Errorf("relay the container's terminal: make its pty master non-blocking: %w", err)
	}
	m := os.NewFile(uintptr(dup), master.Name())
	return m, func() {
		_ = control(m, func(fd int) { _ = unix.SetNonblock(fd, false) })
		m.Close()
	}, nil
}

// callerTerminal returns the first of files that is a terminal, or nil.
func callerTerminal(files ...*os.File) *os.File {
	for _, f := range files {
		if f == nil {
			continue
		}
		var isTerm bool
		_ = control(f, func(fd int) {
			_, err := unix.IoctlGetTermios(fd, unix.TCGETS)
			isTerm = err == nil
		})
		if isTerm {
			return f
		}
	}
	return nil
}

// makeRaw puts the terminal in raw mode as containerd/console's SetRaw does
// for runc (cfmakeraw, with output processing kept), and returns the
// function that restores its previous mode.
func makeRaw(term *os.File) (func(), error) {
	var orig *unix.Termios
	var err error
	if cerr := control(term, func(fd int) {
		orig, err = unix.IoctlGetTermios(fd, unix.TCGETS)
		if err != nil {
			return
		}
		raw := rawMode(*orig)
		err = unix.IoctlSetTermios(fd, unix.TCSETS, &raw)
	}); cerr != nil {
		err = cerr
	}
	if err != nil {
		return nil, fmt.Errorf("relay the container's terminal: put %s in raw mode: %w", term.Name(), err)
	}
	return func() {
		_ = control(term, func(fd int) { _ = unix.IoctlSetTermios(fd, unix.TCSETS, orig) })
	}, nil
}

// rawMode is cfmakeraw(3) with OPOST kept on.
func rawMode(t unix.Termios) unix.Termios {
	t.Iflag &^= unix.IGNBRK | unix.BRKINT | unix.PARMRK | unix.ISTRIP | unix.INLCR | unix.IGNCR | unix.ICRNL | unix.IXON
	t.Oflag |= unix.OPOST
	t.Lflag &^= unix.ECHO | unix.ECHONL | unix.ICANON | unix.ISIG | unix.IEXTEN
	t.Cflag &^= unix.CSIZE | unix.PARENB
	t.Cflag |= unix.CS8
	t.Cc[unix.VMIN] = 1
	t.Cc[unix.VTIME] = 0
	return t
}

func clearONLCR(fd int) {
	t, err := unix.IoctlGetTermios(fd, unix.TCGETS)
	if err != nil {
		return
	}
	t.Oflag &^= unix.ONLCR
	_ = unix.IoctlSetTermios(fd, unix.TCSETS, t)
}

// resizeFrom gives the container's pty the window size of the caller's
// terminal.
func resizeFrom(m, term *os.File) error {
	var ws *unix.Winsize
	var err error
	if cerr := control(term, func(fd int) { ws, err = unix.IoctlGetWinsize(fd, unix.TIOCGWINSZ) }); cerr != nil {
		return cerr
	}
	if err != nil {
		return err
	}
	if cerr := control(m, func(fd int) { err = unix.IoctlSetWinsize(fd, unix.TIOCSWINSZ, ws) }); cerr != nil {
		return cerr
	}
	return err
}

// waker is a pipe whose read end becomes readable when woken.
type waker struct{ r, w int }

func newWaker() (*waker, error) {
	var p [2]int
	if err := unix.Pipe2(p[:], unix.O_CLOEXEC); err != nil {
		return nil, fmt.Errorf("relay the container's terminal: create a pipe: %w", err)
	}
	return &waker{r: p[0], w: p[1]}, nil
}

func (w *waker) wake() { _, _ = unix.Write(w.w, []byte{0}) }

func (w *waker) close() {
	unix.Close(w.r)
	unix.Close(w.w)
}
