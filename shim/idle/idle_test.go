package idle

import (
	"bufio"
	"encoding/json"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/skiff-containers/skiff/shim/internal/wire"
	"github.com/skiff-containers/skiff/shim/proto"
)

// fixture is an idle monitor over real fds: a control socket, output
// pipes, a container log, and a child process standing in for the init
// (it exits with status 3 when its stdin closes).
type fixture struct {
	t              *testing.T
	m              *monitor
	dir, sock, log string
	outW, errW     *os.File
	initIn         *os.File
	child          *os.Process
	execs          chan []string // argv and env of each exec, env last
	execErr        atomic.Pointer[error]
	done           chan struct{}
}

func newFixture(t *testing.T, execErr error) *fixture {
	t.Helper()
	dir := t.TempDir()
	f := &fixture{t: t, dir: dir, sock: filepath.Join(dir, "s.sock"), log: filepath.Join(dir, "ctr.log"),
		execs: make(chan []string, 4), done: make(chan struct{})}
	f.execErr.Store(&execErr)
	ln, err := syscall.Socket(syscall.AF_UNIX, syscall.SOCK_STREAM|syscall.SOCK_NONBLOCK|syscall.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	if err := syscall.Bind(ln, &syscall.SockaddrUnix{Name: f.sock}); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Listen(ln, 8); err != nil {
		t.Fatal(err)
	}
	logFd, err := syscall.Open(f.log, syscall.O_WRONLY|syscall.O_CREAT|syscall.O_APPEND|syscall.O_CLOEXEC, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	pipe := func() (int, *os.File) {
		var p [2]int
		if err := syscall.Pipe2(p[:], syscall.O_CLOEXEC|syscall.O_NONBLOCK); err != nil {
			t.Fatal(err)
		}
		syscall.SetNonblock(p[1], false)
		return p[0], os.NewFile(uintptr(p[1]), "w")
	}
	outR, outW := pipe()
	errR, errW := pipe()
	f.outW, f.errW = outW, errW
	inR, inW, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	f.initIn = inW
	f.child, err = os.StartProcess("/bin/sh", []string{"sh", "-c", "read x; exit 3"}, &os.ProcAttr{Files: []*os.File{inR, nil, nil}})
	if err != nil {
		t.Fatal(err)
	}
	inR.Close()
	p := &wire.Parked{
		ID: "c1", Bundle: "/b", StateDir: dir, Pid: f.child.Pid, Started: true,
		Listener: ln, Log: logFd, Out: outR, Err: errR, In: -1, OutPending: []byte("half "),
	}
	f.m = newMonitor(p, "/nonexistent/skiff-shim", []string{"--id", "c1"}, os.Environ())
	f.m.exec = func(argv0 string, argv, envv []string) error {
		select {
		case f.execs <- append(append([]string{}, argv...), strings.Join(envv, "\x00")):
		default:
		}
		return *f.execErr.Load()
	}
	if err := f.m.setup(); err != nil {
		t.Fatal(err)
	}
	go func() {
		defer close(f.done)
		f.m.run()
	}()
	t.Cleanup(func() {
		// Stop the loop (an exec that succeeds) before closing its fds.
		var none error
		f.execErr.Store(&none)
		select {
		case <-f.done:
		default:
			if c, err := net.Dial("unix", f.sock); err == nil {
				c.Write([]byte(`{"op":"start"}` + "\n"))
				defer c.Close()
			}
			select {
			case <-f.done:
			case <-time.After(10 * time.Second):
				t.Error("the idle monitor's loop did not stop")
			}
		}
		f.child.Kill()
		f.initIn.Close()
		outW.Close()
		errW.Close()
		for _, fd := range append(p.Fds(), f.m.ep) {
			syscall.Close(fd)
		}
	})
	return f
}

// request sends one request line and returns the connection and a reader
// of its answer.
func (f *fixture) request(line string) (net.Conn, *bufio.Reader) {
	f.t.Helper()
	c, err := net.Dial("unix", f.sock)
	if err != nil {
		f.t.Fatal(err)
	}
	f.t.Cleanup(func() { c.Close() })
	if _, err := c.Write([]byte(line + "\n")); err != nil {
		f.t.Fatal(err)
	}
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	return c, bufio.NewReader(c)
}

func (f *fixture) response(r *bufio.Reader) proto.Response {
	f.t.Helper()
	line, err := r.ReadString('\n')
	if err != nil {
		f.t.Fatalf("read the response: %v (got %q)", err, line)
	}
	var resp proto.Response
	if err := json.Unmarshal([]byte(line), &resp); err != nil {
		f.t.Fatalf("response %q: %v", line, err)
	}
	return resp
}

func TestIdleMonitor(t *testing.T) {
	f := newFixture(t, nil)
	f.outW.Write([]byte("line\nnext "))
	f.errW.Write([]byte("e1\n"))

	_, r := f.request(`{"op":"state"}`)
	st := f.response(r).State
	if st == nil || st.Status != proto.StatusRunning || st.Pid != f.child.Pid || st.ShimPid != os.Getpid() || st.ID != "c1" || st.Bundle != "/b" {
		t.Fatalf("state = %+v", st)
	}
	_, waitR := f.request(`{"op":"wait"}`)

	// The output ends, then the init exits: the exit is recorded at once.
	f.outW.Write([]byte("end\n"))
	f.outW.Close()
	f.errW.Close()
	f.initIn.Close()
	resp := f.response(waitR)
	if resp.Exit == nil || resp.Exit.Code != 3 || resp.Exit.Signal != 0 {
		t.Fatalf("wait = %+v", resp)
	}
	if fe, err := proto.ReadExitFile(f.dir); err != nil || fe.Code != 3 || !fe.ExitedAt.Equal(resp.Exit.ExitedAt) {
		t.Errorf("exit file = %+v, %v", fe, err)
	}
	_, r = f.request(`{"op":"state"}`)
	if st := f.response(r).State; st == nil || st.Status != proto.StatusStopped || st.Exit == nil || st.Exit.Code != 3 {
		t.Errorf("state after the exit = %+v", st)
	}
	data, err := os.ReadFile(f.log)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, l := range strings.Split(strings.TrimSuffix(string(data), "\n"), "\n") {
		parts := strings.SplitN(l, " ", 2)
		if _, err := time.Parse(time.RFC3339Nano, parts[0]); err != nil {
			t.Errorf("log line %q: %v", l, err)
		}
		got = append(got, parts[1])
	}
	want := []string{"stdout F half line", "stderr F e1", "stdout F next end"}
	if strings.Join(got, "|") != strings.Join(want, "|") {
		t.Errorf("log = %q, want %q", got, want)
	}

	// Anything else goes to the monitor, with the request as read.
	kill := `{"op":"kill","signal":9}`
	conn, _ := f.request(kill)
	var argv []string
	select {
	case argv = <-f.execs:
	case <-time.After(10 * time.Second):
		t.Fatal("kill did not exec the monitor")
	}
	<-f.done
	if argv[0] != "/nonexistent/skiff-shim" || argv[1] != "--id" || argv[2] != "c1" {
		t.Errorf("exec argv = %q", argv[:len(argv)-1])
	}
	var enc string
	for _, kv := range strings.Split(argv[len(argv)-1], "\x00") {
		if v, ok := strings.CutPrefix(kv, wire.Env+"="); ok {
			enc = v
		}
	}
	p, err := wire.DecodeParked(enc)
	if err != nil {
		t.Fatalf("the monitor's %s: %v", wire.Env, err)
	}
	if p.Exit == nil || p.Exit.Code != 3 || p.Out != -1 || p.Err != -1 || len(p.Requests) != 1 || string(p.Requests[0].Data) != kill+"\n" {
		t.Fatalf("handed over %+v", p)
	}
	for _, fd := range p.Fds() {
		flags, _, errno := syscall.Syscall(syscall.SYS_FCNTL, uintptr(fd), syscall.F_GETFD, 0)
		if errno != 0 || flags&syscall.FD_CLOEXEC != 0 {
			t.Errorf("fd %d handed over with flags %#x, %v: close-on-exec", fd, flags, errno)
		}
	}
	_ = conn
}

func TestIdleExecFails(t *testing.T) {
	f := newFixture(t, syscall.ENOENT)
	_, r := f.request(`{"op":"start"}`)
	<-f.execs
	resp := f.response(r)
	if resp.Class != proto.ClassInternal || !strings.Contains(resp.Error, "/nonexistent/skiff-shim") || !strings.Contains(resp.Error, "no such file") {
		t.Errorf("response = %+v", resp)
	}
	// It goes on: state is still answered.
	_, r = f.request(`{"op":"state"}`)
	if st := f.response(r).State; st == nil || st.Status != proto.StatusRunning {
		t.Errorf("state after a failed exec = %+v", st)
	}
}
