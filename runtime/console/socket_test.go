package console

import (
	"errors"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/skiff-containers/skiff/errdefs"
)

func socketpair(t *testing.T) (*os.File, *os.File) {
	t.Helper()
	p, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	a, b := os.NewFile(uintptr(p[0]), "a"), os.NewFile(uintptr(p[1]), "b")
	t.Cleanup(func() { a.Close(); b.Close() })
	return a, b
}

func TestCheckSocket(t *testing.T) {
	cases := []struct {
		terminal, detach bool
		socket           string
		want             string // "" for no error
	}{
		{terminal: true, detach: true, socket: "/run/s.sock"},
		{terminal: true, detach: false},
		{terminal: false, detach: true},
		{terminal: false, detach: false},
		{terminal: true, detach: true, want: "cannot allocate tty if skiff-runtime will detach without setting console socket"},
		{terminal: false, detach: true, socket: "/s", want: "cannot use console socket if runc will not detach or allocate tty"},
		{terminal: true, detach: false, socket: "/s", want: "cannot use console socket if runc will not detach or allocate tty"},
	}
	for _, c := range cases {
		err := CheckSocket(c.terminal, c.detach, c.socket)
		switch {
		case c.want == "" && err != nil:
			t.Errorf("CheckSocket(%v, %v, %q) = %v, want nil", c.terminal, c.detach, c.socket, err)
		case c.want != "" && (err == nil || !strings.Contains(err.Error(), c.want) || !errdefs.IsInvalidArgument(err)):
			t.Errorf("CheckSocket(%v, %v, %q) = %v, want an invalid argument saying %q", c.terminal, c.detach, c.socket, err, c.want)
		}
	}
}

func TestConnect(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "console.sock")
	l, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	accepted := make(chan *os.File, 1)
	go func() {
		c, err := l.Accept()
		if err != nil {
			accepted <- nil
			return
		}
		f, _ := c.(*net.UnixConn).File()
		c.Close()
		accepted <- f
	}()
	sock, err := Connect(path)
	if err != nil {
		t.Fatal(err)
	}
	defer sock.Close()
	if fl, _ := unix.FcntlInt(sock.Fd(), unix.F_GETFD, 0); fl&unix.FD_CLOEXEC == 0 {
		t.Error("the connected socket is not close-on-exec")
	}
	peer := <-accepted
	if peer == nil {
		t.Fatal("accept failed")
	}
	defer peer.Close()
	master, _ := hostPty(t)
	if err := SendMaster(sock, master); err != nil {
		t.Fatal(err)
	}
	got, err := ReceiveMaster(peer)
	if err != nil {
		t.Fatal(err)
	}
	defer got.Close()
	var a, b unix.Stat_t
	if err := unix.Fstat(int(master.Fd()), &a); err != nil {
		t.Fatal(err)
	}
	rc, _ := got.SyscallConn()
	rc.Control(func(fd uintptr) { err = unix.Fstat(int(fd), &b) })
	if err != nil || a.Ino != b.Ino || a.Dev != b.Dev {
		t.Errorf("received a different file: %+v vs %+v (%v)", a, b, err)
	}
	if err := got.SetReadDeadline(time.Time{}); err != nil {
		t.Errorf("received master is not pollable: %v", err)
	}
}

func TestConnectErrors(t *testing.T) {
	dir := t.TempDir()
	regular := filepath.Join(dir, "file")
	if err := os.WriteFile(regular, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		path  string
		class error
	}{
		{"", errdefs.ErrInvalidArgument},
		{filepath.Join(dir, "missing.sock"), errdefs.ErrNotFound},
		{regular, errdefs.ErrFailedPrecondition},
		{"/" + strings.Repeat("x", 200), errdefs.ErrInvalidArgument},
	}
	for _, c := range cases {
		f, err := Connect(c.path)
		if err == nil {
			f.Close()
			t.Errorf("Connect(%q) succeeded", c.path)
			continue
		}
		if !errors.Is(err, c.class) {
			t.Errorf("Connect(%q) = %v, want class %v", c.path, err, c.class)
		}
		if c.path != "" && !strings.Contains(err.Error(), c.path) {
			t.Errorf("Connect(%q) = %v, which does not name the socket", c.path, err)
		}
	}
}

func TestReceiveMasterErrors(t *testing.T) {
	t.Run("peer closed", func(t *testing.T) {
		a, b := socketpair(t)
		a.Close()
		_, err := ReceiveMaster(b)
		if !errdefs.IsFailedPrecondition(err) {
			t.Errorf("got %v, want failed precondition", err)
		}
	})
	t.Run("no descriptor", func(t *testing.T) {
		a, b := socketpair(t)
		if _, err := a.Write([]byte("/dev/ptmx")); err != nil {
			t.Fatal(err)
		}
		_, err := ReceiveMaster(b)
		if !errdefs.IsInvalidArgument(err) {
			t.Errorf("got %v, want invalid argument", err)
		}
	})
	t.Run("not a terminal", func(t *testing.T) {
		a, b := socketpair(t)
		r, w, err := os.Pipe()
		if err != nil {
			t.Fatal(err)
		}
		defer r.Close()
		defer w.Close()
		if err := SendMaster(a, r); err != nil {
			t.Fatal(err)
		}
		_, err = ReceiveMaster(b)
		if !errdefs.IsInvalidArgument(err) || !strings.Contains(err.Error(), "not a terminal") {
			t.Errorf("got %v, want invalid argument: not a terminal", err)
		}
	})
	t.Run("two descriptors", func(t *testing.T) {
		a, b := socketpair(t)
		if err := unix.Sendmsg(int(a.Fd()), []byte("x"), unix.UnixRights(0, 1), nil, 0); err != nil {
			t.Fatal(err)
		}
		_, err := ReceiveMaster(b)
		if !errdefs.IsInvalidArgument(err) {
			t.Errorf("got %v, want invalid argument", err)
		}
	})
}

// TestReceiveMasterWaits: the receiver may be first, on a socket in
// non-blocking mode, as (*net.UnixConn).File gives it.
func TestReceiveMasterWaits(t *testing.T) {
	a, b := socketpair(t)
	if err := unix.SetNonblock(int(b.Fd()), true); err != nil {
		t.Fatal(err)
	}
	master, _ := hostPty(t)
	go func() {
		time.Sleep(100 * time.Millisecond)
		SendMaster(a, master)
	}()
	got, err := ReceiveMaster(b)
	if err != nil {
		t.Fatal(err)
	}
	got.Close()
}
