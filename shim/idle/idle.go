// Package idle is skiff-shim's idle monitor (the skiff-shim-idle binary).
// When nobody has talked to a shim for a while (--park-after), the
// monitor (package shim) execs it in its place: same process, same pid,
// same children, so the container and the engine see no change. It keeps
// the container's monitoring going with little more than the Go runtime
// mapped:
//
//   - it copies the container's output to the CRI log;
//   - it reaps the container's init (and any orphan: the shim is a child
//     subreaper), drains the output for at most two seconds, writes the
//     exit file and answers the waiters, as the monitor does;
//   - it answers state and wait requests itself.
//
// Any other request (start, kill, attach, exec, delete…), or one it does
// not recognise byte for byte, makes it exec the monitor again, which
// resumes from the handed-over state (wire.Parked) and serves it.
//
// It must link nothing but the Go runtime, syscall and shim/internal/wire:
// no os, time, fmt or reflection, whose code would be resident in every
// idle shim. It is one goroutine around epoll; it never blocks elsewhere.
package idle

import (
	"bytes"
	"strconv"
	"strings"
	"syscall"
	"unsafe"

	"github.com/skiff-containers/skiff/shim/internal/wire"
)

const (
	// drainMillis bounds the wait for the output to end after the init
	// exited (the monitor's drainTimeout).
	drainMillis = 2000
	// requestMillis bounds the reading of a request line (the monitor's
	// requestTimeout).
	requestMillis = 10000
	// maxRequest bounds what is read of a request before it is handed to
	// the monitor (which refuses one longer than its own limit).
	maxRequest = 64 << 10
	// reapMillis is how often orphans are reaped when nothing else
	// happens (the init's exit is seen at once, through its pidfd).
	reapMillis = 10000
	// readSize is the read size of an output stream.
	readSize = 8 << 10
)

// The requests the idle monitor serves itself, as shim/client encodes
// them. Any other line goes to the monitor, which parses JSON in full.
var (
	stateRequest = []byte(`{"op":"state"}`)
	waitRequest  = []byte(`{"op":"wait"}`)
)

// stream is one output stream of the container.
type stream struct {
	fd        int // -1 once ended (with a terminal, the master stays in p.Out)
	sp        wire.Splitter
	ended     bool
	logFailed bool // a log write failed (reported once)
}

// conn is an accepted connection whose request line has not come yet.
type conn struct {
	buf      []byte
	deadline int64 // monotonic milliseconds
}

type monitor struct {
	p        *wire.Parked
	shimBin  string
	shimArgs []string
	env      []string // the monitor's environment, without wire.Env
	ep       int
	pidfd    int
	clog     wire.Log
	out, err *stream
	conns    map[int]*conn
	waiters  map[int]bool
	// Once the init exited: its status, the time of its exit, and the
	// drain deadline (monotonic milliseconds).
	initWS     *syscall.WaitStatus
	exitSec    int64
	exitNsec   int
	drainUntil int64
	nextReap   int64
	// handOver are requests for the monitor, held while the init's exit
	// is being recorded.
	handOver []wire.Request
	logAttrs string
	buf      []byte
	// exec is syscall.Exec (a seam for tests); once it has succeeded the
	// loop stops (a real exec does not return).
	exec    func(argv0 string, argv, envv []string) error
	stopped bool
}

// NameProcess names the process skiff-shim-idle (/proc/PID/comm), which
// its exec through /proc/self/fd/N would name "N". It names the calling
// thread: call it from an init function, which runs on the main thread.
func NameProcess() { wire.SetName("skiff-shim-idle") }

// Main runs the idle monitor with args (without the program name): the
// monitor's binary and its arguments, and env, its environment, where
// wire.Env holds the encoded wire.Parked. (The environment is passed in,
// not read through package syscall, whose first use copies it into a map
// on the heap.) It returns only on a bad start; otherwise it runs until it
// execs the monitor.
func Main(args, env []string) int {
	var state string
	found := false
	rest := make([]string, 0, len(env))
	for _, kv := range env {
		if v, ok := strings.CutPrefix(kv, wire.Env+"="); ok {
			state, found = v, true
			continue
		}
		rest = append(rest, kv)
	}
	if len(args) < 1 || !found {
		writeStderr("skiff-shim-idle: usage: " + wire.Env + "=STATE skiff-shim-idle SHIM-BINARY [SHIM-ARGS...] (skiff-shim starts it, not a user)\n")
		return 2
	}
	p, err := wire.DecodeParked(state)
	if err != nil {
		writeStderr("skiff-shim-idle: " + err.Error() + "\n")
		return 2
	}
	m := newMonitor(p, args[0], args[1:], rest)
	if err := m.setup(); err != nil {
		m.logf("ERROR", "idle monitor could not start; resuming the monitor", "err", err.Error())
		m.wake()
		return 1
	}
	m.logf("DEBUG", "parked")
	m.run()
	return 0
}

func newMonitor(p *wire.Parked, shimBin string, shimArgs, env []string) *monitor {
	return &monitor{
		p: p, shimBin: shimBin, shimArgs: shimArgs, env: env,
		conns: map[int]*conn{}, waiters: map[int]bool{}, pidfd: -1,
		logAttrs: " id=" + logValue(p.ID) + " shim=" + strconv.Itoa(syscall.Getpid()),
		exec:     syscall.Exec,
	}
}

func (m *monitor) setup() error {
	p := m.p
	ep, err := syscall.EpollCreate1(syscall.EPOLL_CLOEXEC)
	if err != nil {
		return err
	}
	m.ep = ep
	m.clog.W = fdWriter(p.Log)
	mk := func(fd int, name string, pending []byte) *stream {
		s := &stream{fd: fd, sp: wire.Splitter{Log: &m.clog, Stream: name, Max: wire.MaxLine, Pending: pending}}
		if fd < 0 || (name == wire.Stdout && p.OutEnded) {
			s.fd, s.ended = -1, true
		}
		return s
	}
	m.out = mk(p.Out, wire.Stdout, p.OutPending)
	m.err = mk(p.Err, wire.Stderr, p.ErrPending)
	if p.Terminal {
		m.err.ended = true
	}
	for _, s := range []*stream{m.out, m.err} {
		if !s.ended {
			if err := m.watch(s.fd, syscall.EPOLLIN); err != nil {
				return err
			}
		}
	}
	if err := m.watch(p.Listener, syscall.EPOLLIN); err != nil {
		return err
	}
	for _, fd := range p.Waiters {
		m.waiters[fd] = true
		syscall.CloseOnExec(fd)
		if err := m.watch(fd, syscall.EPOLLIN|syscall.EPOLLRDHUP); err != nil {
			return err
		}
	}
	if p.Exit == nil {
		fd, _, errno := syscall.RawSyscall(434 /* pidfd_open */, uintptr(p.Pid), 0, 0)
		if errno == 0 {
			m.pidfd = int(fd)
			syscall.CloseOnExec(m.pidfd)
			if err := m.watch(m.pidfd, syscall.EPOLLIN); err != nil {
				return err
			}
		} else if errno != syscall.ESRCH {
			return errno
		}
	}
	return nil
}

func (m *monitor) watch(fd int, events uint32) error {
	ev := syscall.EpollEvent{Events: events, Fd: int32(fd)}
	return syscall.EpollCtl(m.ep, syscall.EPOLL_CTL_ADD, fd, &ev)
}

func (m *monitor) unwatch(fd int) {
	syscall.EpollCtl(m.ep, syscall.EPOLL_CTL_DEL, fd, nil)
}

func (m *monitor) run() {
	events := make([]syscall.EpollEvent, 16)
	m.nextReap = monotonic() + reapMillis
	for !m.stopped {
		m.reap()
		m.maybeRecordExit()
		if m.stopped {
			return
		}
		n, err := syscall.EpollWait(m.ep, events, m.timeout())
		if err != nil && err != syscall.EINTR {
			m.logf("ERROR", "epoll_wait failed; resuming the monitor", "err", err.Error())
			m.wake()
			return
		}
		for _, ev := range events[:max(n, 0)] {
			if m.stopped {
				return
			}
			fd := int(ev.Fd)
			switch {
			case fd == m.p.Listener:
				m.accept()
			case fd == m.out.fd && !m.out.ended:
				m.copyOutput(m.out)
			case fd == m.err.fd && !m.err.ended:
				m.copyOutput(m.err)
			case fd == m.pidfd:
				// The init exited: reaped at the top of the loop.
			case m.waiters[fd]:
				// A waiter sent something or went away: as the monitor
				// does, its wait ends.
				m.unwatch(fd)
				delete(m.waiters, fd)
				syscall.Close(fd)
			default:
				if c := m.conns[fd]; c != nil {
					m.readRequest(fd, c)
				}
			}
		}
		now := monotonic()
		for fd, c := range m.conns {
			if now >= c.deadline {
				m.drop(fd)
			}
		}
	}
}

// timeout returns epoll_wait's timeout: until the next deadline.
func (m *monitor) timeout() int {
	now := monotonic()
	next := m.nextReap
	if m.initWS != nil && m.p.Exit == nil {
		next = min(next, m.drainUntil)
	}
	for _, c := range m.conns {
		next = min(next, c.deadline)
	}
	return int(max(next-now, 0))
}

// reap collects every child that has exited; the init's status is kept.
func (m *monitor) reap() {
	for {
		var ws syscall.WaitStatus
		pid, err := syscall.Wait4(-1, &ws, syscall.WNOHANG, nil)
		if err == syscall.EINTR {
			continue
		}
		if err != nil || pid <= 0 {
			break
		}
		if pid == m.p.Pid && m.p.Exit == nil && m.initWS == nil {
			m.initWS = &ws
			m.exitSec, m.exitNsec = wire.Now()
			m.drainUntil = monotonic() + drainMillis
			if m.pidfd >= 0 {
				m.unwatch(m.pidfd)
				syscall.Close(m.pidfd)
				m.pidfd = -1
			}
			code := ws.ExitStatus()
			if ws.Signaled() {
				code = 128 + int(ws.Signal())
			}
			m.logf("INFO", "container exited", "code", strconv.Itoa(code))
		}
	}
	m.nextReap = monotonic() + reapMillis
}

// maybeRecordExit writes the exit file and answers the waiters once the
// init has exited and its output ended (or the drain time is up).
func (m *monitor) maybeRecordExit() {
	if m.initWS == nil || m.p.Exit != nil {
		return
	}
	if !(m.out.ended && m.err.ended) && monotonic() < m.drainUntil {
		return
	}
	if !(m.out.ended && m.err.ended) {
		m.logf("WARN", "container output still open after its init exited; recording the exit anyway", "after", "2s")
	}
	e := wire.ExitOf(*m.initWS, m.exitSec, m.exitNsec)
	if err := wire.WriteExitFile(m.p.StateDir, &e); err != nil {
		m.logf("ERROR", "cannot write the exit file", "err", err.Error())
	}
	m.p.Exit = &e
	resp := append(e.AppendJSON(append(m.buf[:0], `{"exit":`...)), '}', '\n')
	for fd := range m.waiters {
		send(fd, resp)
		m.unwatch(fd)
		syscall.Close(fd)
	}
	clear(m.waiters)
	if len(m.handOver) > 0 {
		m.wake()
	}
}

// copyOutput reads what the stream has and logs it; at its end (EOF, or
// EIO from a pty master whose slave side is closed) it logs what remains.
func (m *monitor) copyOutput(s *stream) {
	if m.buf == nil || cap(m.buf) < readSize {
		m.buf = make([]byte, readSize)
	}
	buf := m.buf[:readSize]
	n, err := syscall.Read(s.fd, buf)
	if err == syscall.EAGAIN || err == syscall.EINTR {
		return
	}
	if n > 0 {
		if _, werr := s.sp.Write(buf[:n]); werr != nil && !s.logFailed {
			s.logFailed = true
			m.logf("ERROR", "cannot write the container log; output is dropped", "stream", s.sp.Stream, "err", werr.Error())
		}
		return
	}
	if err != nil && err != syscall.EIO {
		m.logf("WARN", "read container output", "stream", s.sp.Stream, "err", err.Error())
	}
	if err := s.sp.Close(); err != nil {
		m.logf("ERROR", "cannot write the container log", "stream", s.sp.Stream, "err", err.Error())
	}
	m.unwatch(s.fd)
	if m.p.Terminal && s == m.out {
		m.p.OutEnded = true // the master stays open, for input
	} else {
		syscall.Close(s.fd)
		if s == m.out {
			m.p.Out = -1
		} else {
			m.p.Err = -1
		}
	}
	s.fd, s.ended = -1, true
}

func (m *monitor) accept() {
	for {
		fd, _, err := syscall.Accept4(m.p.Listener, syscall.SOCK_NONBLOCK|syscall.SOCK_CLOEXEC)
		if err == syscall.EINTR || err == syscall.ECONNABORTED {
			continue
		}
		if err != nil {
			if err != syscall.EAGAIN {
				m.logf("ERROR", "accept on the control socket", "err", err.Error())
			}
			return
		}
		if err := m.watch(fd, syscall.EPOLLIN|syscall.EPOLLRDHUP); err != nil {
			syscall.Close(fd)
			continue
		}
		m.conns[fd] = &conn{deadline: monotonic() + requestMillis}
	}
}

// readRequest reads a connection's request line; state and wait are
// served here, anything else by the monitor.
func (m *monitor) readRequest(fd int, c *conn) {
	var chunk [512]byte
	n, err := syscall.Read(fd, chunk[:])
	if err == syscall.EAGAIN || err == syscall.EINTR {
		return
	}
	if n <= 0 {
		m.drop(fd) // the client went away without a request
		return
	}
	c.buf = append(c.buf, chunk[:n]...)
	i := bytes.IndexByte(c.buf, '\n')
	if i < 0 && len(c.buf) <= maxRequest {
		return
	}
	var line []byte
	if i >= 0 {
		line = bytes.TrimSpace(c.buf[:i])
	}
	switch {
	case i == len(c.buf)-1 && bytes.Equal(line, stateRequest):
		st := wire.State{
			ID: m.p.ID, Pid: m.p.Pid, ShimPid: syscall.Getpid(), Bundle: m.p.Bundle,
			Terminal: m.p.Terminal, Stdin: m.p.Stdin, Status: wire.StatusCreated, Exit: m.p.Exit,
		}
		switch {
		case m.p.Exit != nil:
			st.Status = wire.StatusStopped
		case m.p.Paused:
			st.Status = wire.StatusPaused
		case m.p.Started:
			st.Status = wire.StatusRunning
		}
		send(fd, append(st.AppendJSON(append(m.buf[:0], `{"state":`...)), '}', '\n'))
		m.drop(fd)
	case i == len(c.buf)-1 && bytes.Equal(line, waitRequest):
		delete(m.conns, fd)
		m.waiters[fd] = true
		if m.p.Exit != nil {
			m.maybeAnswer(fd)
		}
	default:
		delete(m.conns, fd)
		m.unwatch(fd)
		m.handOver = append(m.handOver, wire.Request{Conn: fd, Data: c.buf})
		if m.initWS == nil || m.p.Exit != nil {
			m.wake()
		}
		// Else the exit is being recorded: the monitor is woken once it
		// is (maybeRecordExit), so that what it serves sees the exit.
	}
}

// maybeAnswer answers a waiter once the exit is recorded.
func (m *monitor) maybeAnswer(fd int) {
	resp := append(m.p.Exit.AppendJSON(append(m.buf[:0], `{"exit":`...)), '}', '\n')
	send(fd, resp)
	m.unwatch(fd)
	delete(m.waiters, fd)
	syscall.Close(fd)
}

func (m *monitor) drop(fd int) {
	m.unwatch(fd)
	delete(m.conns, fd)
	syscall.Close(fd)
}

// wake execs the monitor, handing it the container and the requests it
// is to serve (handOver, and the connections whose request line is not
// complete yet). On success it does not return. If the exec fails, the
// requests are answered with the error and the idle monitor goes on.
func (m *monitor) wake() {
	p := m.p
	// An exit not yet recorded would be lost across the exec (the init is
	// reaped already): record it now, without waiting out the drain.
	if m.initWS != nil && p.Exit == nil {
		m.drainUntil = 0
		held := m.handOver
		m.handOver = nil
		m.maybeRecordExit()
		m.handOver = held
	}
	for fd, c := range m.conns {
		m.unwatch(fd)
		m.handOver = append(m.handOver, wire.Request{Conn: fd, Data: c.buf})
	}
	clear(m.conns)
	p.OutPending, p.ErrPending = m.out.sp.Pending, m.err.sp.Pending
	p.Waiters = p.Waiters[:0]
	for fd := range m.waiters {
		p.Waiters = append(p.Waiters, fd)
	}
	p.Requests = m.handOver
	fds := p.Fds()
	for _, fd := range fds {
		clearCloseOnExec(fd)
	}
	env := append(m.env[:len(m.env):len(m.env)], wire.Env+"="+p.Encode())
	m.logf("DEBUG", "resuming the monitor", "requests", strconv.Itoa(len(p.Requests)))
	err := m.exec(wire.ExecPath(p.ShimExe, m.shimBin), append([]string{m.shimBin}, m.shimArgs...), env)
	if err == nil {
		m.stopped = true
		return
	}
	m.logf("ERROR", "cannot exec the monitor; its requests fail", "binary", m.shimBin, "err", err.Error())
	for _, fd := range p.Waiters {
		syscall.CloseOnExec(fd)
	}
	msg := "container " + p.ID + ": the idle shim could not exec the monitor " + m.shimBin + ": " + err.Error() + " (is skiff-shim still installed there?)"
	resp := append(append(append([]byte(`{"error":"`), jsonEscape(msg)...), `","class":"internal"}`...), '\n')
	for _, r := range m.handOver {
		send(r.Conn, resp)
		syscall.Close(r.Conn)
	}
	m.handOver = nil
	p.Requests = nil
}

// jsonEscape escapes what an error message may hold for a JSON string.
func jsonEscape(s string) []byte {
	var b []byte
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c == '"' || c == '\\':
			b = append(b, '\\', c)
		case c < 0x20:
			b = append(b, ' ')
		default:
			b = append(b, c)
		}
	}
	return b
}

// send writes b to a connection, without SIGPIPE if the client is gone.
// Replies are small; a client that does not read them is not waited for
// long.
func send(fd int, b []byte) {
	for tries := 0; len(b) > 0 && tries < 100; tries++ {
		n, err := syscall.SendmsgN(fd, b, nil, nil, syscall.MSG_NOSIGNAL)
		if err == syscall.EAGAIN || err == syscall.EINTR {
			var fds [1]pollFd
			fds[0] = pollFd{fd: int32(fd), events: 4 /* POLLOUT */}
			syscall.Syscall(syscall.SYS_POLL, uintptr(unsafe.Pointer(&fds[0])), 1, 100)
			continue
		}
		if err != nil {
			return
		}
		b = b[n:]
	}
}

type pollFd struct {
	fd      int32
	events  int16
	revents int16
}

func clearCloseOnExec(fd int) {
	syscall.Syscall(syscall.SYS_FCNTL, uintptr(fd), syscall.F_SETFD, 0)
}

// fdWriter writes to an fd (the container log).
type fdWriter int

func (w fdWriter) Write(b []byte) (int, error) {
	n := 0
	for n < len(b) {
		k, err := syscall.Write(int(w), b[n:])
		if err == syscall.EINTR {
			continue
		}
		if err != nil {
			return n, err
		}
		n += k
	}
	return n, nil
}

// monotonic returns CLOCK_MONOTONIC in milliseconds.
func monotonic() int64 {
	var ts syscall.Timespec
	syscall.RawSyscall(syscall.SYS_CLOCK_GETTIME, 1 /* CLOCK_MONOTONIC */, uintptr(unsafe.Pointer(&ts)), 0)
	return ts.Sec*1000 + ts.Nsec/1e6
}

// logf writes a line to the shim log (stderr) in the monitor's format
// (log/slog's text format); kv are key, value pairs.
func (m *monitor) logf(level, msg string, kv ...string) {
	if level == "DEBUG" && !m.p.Debug {
		return
	}
	sec, nsec := wire.Now()
	b := wire.AppendRFC3339([]byte("time="), sec, nsec, true)
	b = append(b, " level="+level+" msg="...)
	b = append(b, logValue(msg)...)
	b = append(b, m.logAttrs...)
	for i := 0; i+1 < len(kv); i += 2 {
		b = append(b, ' ')
		b = append(b, kv[i]...)
		b = append(b, '=')
		b = append(b, logValue(kv[i+1])...)
	}
	fdWriter(2).Write(append(b, '\n'))
}

// logValue quotes s as log/slog's text handler would if it needs quoting.
func logValue(s string) string {
	if s == "" {
		return `""`
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; c <= ' ' || c == '=' || c == '"' || c >= 0x7f {
			return `"` + string(jsonEscape(s)) + `"`
		}
	}
	return s
}

func writeStderr(s string) { fdWriter(2).Write([]byte(s)) }
