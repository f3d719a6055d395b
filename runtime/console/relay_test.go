package console

import (
	"bytes"
	"context"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// relayResult runs Relay in the background.
func startRelay(ctx context.Context, master, in, out *os.File) chan error {
	done := make(chan error, 1)
	go func() { done <- Relay(ctx, master, in, out) }()
	return done
}

func waitRelay(t *testing.T, done chan error) {
	t.Helper()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Relay: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Relay did not return")
	}
}

// TestRelayTerminal stands a host pty in for the caller's terminal
// (callerSlave is what `runc run` would have as stdin and stdout; the test
// types and reads on callerMaster) and another for the container's.
func TestRelayTerminal(t *testing.T) {
	requireRoot(t)
	for _, how := range []string{"blocking master", "received master"} {
		t.Run(how, func(t *testing.T) {
			callerMaster, callerSlave := hostPty(t)
			ctrMaster, ctrSlave := hostPty(t)
			master := ctrMaster
			if how == "received master" {
				master = passMaster(t, ctrMaster)
			}
			orig := *termios(t, callerSlave)
			if err := unix.IoctlSetWinsize(int(callerMaster.Fd()), unix.TIOCSWINSZ, &unix.Winsize{Row: 40, Col: 120}); err != nil {
				t.Fatal(err)
			}
			// The container's program reads lines without echo.
			ct := termios(t, ctrSlave)
			ct.Lflag &^= unix.ECHO
			if err := unix.IoctlSetTermios(int(ctrSlave.Fd()), unix.TCSETS, ct); err != nil {
				t.Fatal(err)
			}
			screen := collect(nonblocking(t, callerMaster))
			ctrSlaveDup := nonblocking(t, ctrSlave)
			ctrIn := collect(ctrSlaveDup)

			done := startRelay(context.Background(), master, callerSlave, callerSlave)

			waitFor(t, "raw mode on the caller's terminal", func() bool {
				return termios(t, callerSlave).Lflag&unix.ICANON == 0
			})
			raw := termios(t, callerSlave)
			if raw.Lflag&(unix.ECHO|unix.ISIG|unix.IEXTEN) != 0 || raw.Iflag&(unix.ICRNL|unix.IXON) != 0 {
				t.Errorf("caller's terminal not raw: iflag %#o lflag %#o", raw.Iflag, raw.Lflag)
			}
			if raw.Oflag&unix.OPOST == 0 {
				t.Errorf("raw mode dropped OPOST (containerd/console keeps it)")
			}
			waitFor(t, "the container's window to follow the caller's", func() bool {
				return winsize(t, ctrSlave) == unix.Winsize{Row: 40, Col: 120}
			})
			if termios(t, ctrSlave).Oflag&unix.ONLCR != 0 {
				t.Errorf("ONLCR still set on the container's pty (runc clears it)")
			}

			// Enter sends "\r"; the container's terminal turns it into "\n".
			if _, err := callerMaster.Write([]byte("hello\r")); err != nil {
				t.Fatal(err)
			}
			ctrIn.waitContains(t, "hello\n")

			// "\n" from the container reaches the screen as "\r\n",
			// made by the caller's terminal alone.
			if _, err := ctrSlave.Write([]byte("out\n")); err != nil {
				t.Fatal(err)
			}
			screen.waitContains(t, "out\r\n")
			if strings.Contains(screen.String(), "\r\r\n") {
				t.Errorf("output translated twice: %q", screen.String())
			}

			// A resize of the caller's window arrives with SIGWINCH.
			if err := unix.IoctlSetWinsize(int(callerMaster.Fd()), unix.TIOCSWINSZ, &unix.Winsize{Row: 50, Col: 132}); err != nil {
				t.Fatal(err)
			}
			if err := syscall.Kill(os.Getpid(), syscall.SIGWINCH); err != nil {
				t.Fatal(err)
			}
			waitFor(t, "the resize to reach the container", func() bool {
				return winsize(t, ctrSlave) == unix.Winsize{Row: 50, Col: 132}
			})

			// The container goes away: its last words still show, and the
			// caller's terminal is back as it was.
			if _, err := ctrSlave.Write([]byte("bye\n")); err != nil {
				t.Fatal(err)
			}
			ctrSlave.Close()
			ctrSlaveDup.Close()
			waitRelay(t, done)
			screen.waitContains(t, "bye\r\n")
			back := termios(t, callerSlave)
			if back.Iflag != orig.Iflag || back.Oflag != orig.Oflag || back.Lflag != orig.Lflag || back.Cflag != orig.Cflag {
				t.Errorf("caller's terminal not restored: %+v, was %+v", back, orig)
			}
			// The master is the caller's again: blocking, no deadline.
			if how == "blocking master" {
				if nb, _ := unix.FcntlInt(ctrMaster.Fd(), unix.F_GETFL, 0); nb&unix.O_NONBLOCK != 0 {
					t.Errorf("Relay left the master non-blocking")
				}
			}
		})
	}
}

// passMaster sends master over a socketpair and returns what
// ReceiveMaster makes of it.
func passMaster(t *testing.T, master *os.File) *os.File {
	t.Helper()
	a, b := socketpair(t)
	if err := SendMaster(a, master); err != nil {
		t.Fatal(err)
	}
	got, err := ReceiveMaster(b)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { got.Close() })
	return got
}

func TestRelayCancel(t *testing.T) {
	requireRoot(t)
	callerMaster, callerSlave := hostPty(t)
	ctrMaster, ctrSlave := hostPty(t)
	orig := *termios(t, callerSlave)
	screen := collect(nonblocking(t, callerMaster))
	ctx, cancel := context.WithCancel(context.Background())
	done := startRelay(ctx, ctrMaster, callerSlave, callerSlave)
	if _, err := ctrSlave.Write([]byte("before\n")); err != nil {
		t.Fatal(err)
	}
	screen.waitContains(t, "before")
	// A background process keeps the container's pty open: cancelling
	// ends the relay anyway.
	cancel()
	waitRelay(t, done)
	if back := termios(t, callerSlave); back.Lflag != orig.Lflag || back.Iflag != orig.Iflag {
		t.Errorf("caller's terminal not restored after cancel")
	}
	// Input typed afterwards is not taken by a leftover goroutine.
	if _, err := callerMaster.Write([]byte("later\n")); err != nil {
		t.Fatal(err)
	}
	ctrIn := collect(nonblocking(t, ctrSlave))
	cs := nonblocking(t, callerSlave)
	if err := cs.SetReadDeadline(time.Now().Add(5 * time.Second)); err != nil {
		t.Fatal(err)
	}
	b := make([]byte, 16)
	n, err := cs.Read(b)
	if err != nil || string(b[:n]) != "later\n" {
		t.Errorf("caller's terminal read %q, %v; want the input left for the caller", b[:n], err)
	}
	time.Sleep(50 * time.Millisecond)
	if s := ctrIn.String(); s != "" {
		t.Errorf("container got %q after the relay ended", s)
	}
}

// TestRelayDrain checks that output already in the master when the relay
// is told to stop is written out.
func TestRelayDrain(t *testing.T) {
	requireRoot(t)
	ctrMaster, ctrSlave := hostPty(t)
	m := nonblocking(t, ctrMaster)
	if _, err := ctrSlave.Write([]byte("tail\n")); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the output to reach the master", func() bool {
		n, err := unix.IoctlGetInt(int(ctrMaster.Fd()), unix.TIOCINQ)
		return err == nil && n >= 5
	})
	if err := m.SetReadDeadline(time.Now()); err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	if err := copyOutput(&out, m); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), "tail") {
		t.Errorf("drained %q, want the pending \"tail\"", out.String())
	}
}

// TestRelayPipes: without a terminal on the caller's side, bytes are
// copied as they are.
func TestRelayPipes(t *testing.T) {
	requireRoot(t)
	ctrMaster, ctrSlave := hostPty(t)
	inR, inW, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer inR.Close()
	outR, outW, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer outR.Close()
	out := collect(outR)
	ctrSlaveDup := nonblocking(t, ctrSlave)
	ctrIn := collect(ctrSlaveDup)
	done := startRelay(context.Background(), ctrMaster, inR, outW)
	if _, err := inW.Write([]byte("piped\n")); err != nil {
		t.Fatal(err)
	}
	inW.Close() // the end of input does not end the relay
	ctrIn.waitContains(t, "piped\n")
	if _, err := ctrSlave.Write([]byte("answer\n")); err != nil {
		t.Fatal(err)
	}
	out.waitContains(t, "answer\n")
	if strings.Contains(out.String(), "\r") {
		t.Errorf("output %q has a carriage return: ONLCR was not cleared on the container's pty", out.String())
	}
	// The relay lasts while any process holds the container's side.
	ctrSlave.Close()
	select {
	case err := <-done:
		t.Fatalf("Relay returned %v while the container's pty is still open", err)
	case <-time.After(100 * time.Millisecond):
	}
	ctrSlaveDup.Close()
	waitRelay(t, done)
	outW.Close()
}
