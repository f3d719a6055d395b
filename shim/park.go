package shim

import (
	"os"
	"path"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/skiff-containers/skiff/shim/internal/wire"
)

// Parking. A shim spends nearly all its life waiting, and a Go program as
// big as the monitor is resident at about 2.5 MiB while it waits. So once
// nothing has happened for ParkAfter (no request in progress, no attached
// client, no exec'd process; waits for the exit may be blocked), the
// monitor execs the idle monitor (skiff-shim-idle, package shim/idle) in
// its place: the same process, the same pid and children, the same fds,
// handed over as a wire.Parked. The idle monitor logs the output, records
// the exit and answers state and wait itself; any other request makes it
// exec this monitor again, which resumes (resume) and serves it.

// idleBinaryName is the idle monitor's binary, looked for beside the
// shim's own.
const idleBinaryName = "skiff-shim-idle"

// binaryPaths returns the paths of the shim's binary and of the idle
// monitor's beside it (for the programs' argv[0]; see openBinaries).
func binaryPaths() (self, idle string) {
	self, err := os.Executable()
	if err != nil {
		return "skiff-shim", idleBinaryName
	}
	return self, path.Join(path.Dir(self), idleBinaryName)
}

// openBinaries opens the shim's binary and the idle monitor's beside it:
// the two programs exec each other through these fds, so a shim runs the
// code it started with until it exits, whatever is installed meanwhile.
// Without the idle monitor the shim never parks.
func (m *monitor) openBinaries() {
	if f, err := os.Open("/proc/self/exe"); err == nil {
		m.selfExe = f
	}
	if st, err := stat(m.idleBin); err != nil || !isRegular(st) || st.Mode&0o111 == 0 {
		return
	}
	if f, err := os.Open(m.idleBin); err == nil {
		m.idleExe = f
	}
}

// noPark turns parking off for good.
func (m *monitor) noPark() {
	if m.idleExe != nil {
		m.idleExe.Close()
		m.idleExe = nil
	}
}

// tryPark parks the shim if it is idle; it returns only if it did not.
func (m *monitor) tryPark() {
	if !m.idleEnough() {
		return
	}
	// Stop the output copiers (they take m.mu, so before locking it):
	// whatever they read is logged; the rest stays in the pipes.
	m.parking.Store(true)
	stopped := true
	for _, s := range m.streams {
		if !s.ended && s.f.SetReadDeadline(time.Unix(1, 0)) != nil {
			stopped = false // not pollable: its copier cannot be stopped
		}
	}
	if !stopped {
		m.log.Warn("cannot park: an output stream has no deadlines")
		m.noPark()
		m.parking.Store(false)
		for _, s := range m.streams {
			s.f.SetReadDeadline(time.Time{})
		}
		return
	}
	<-m.copiers
	restart := func() {
		m.parking.Store(false)
		for _, s := range m.streams {
			if !s.ended {
				s.f.SetReadDeadline(time.Time{})
			}
		}
		m.startOutput()
	}
	// With the reaper's lock held no status can arrive (and be lost)
	// until the exec; with m.mu held no state can change.
	m.reaper.mu.Lock()
	m.mu.Lock()
	// The init's status, once delivered, is the exit watcher's to record:
	// park only before it arrives or after it is recorded.
	if !m.idleLocked() || (m.reaper.reapedLocked(m.pid) && m.exit == nil) {
		m.mu.Unlock()
		m.reaper.mu.Unlock()
		restart()
		return
	}
	m.stdinMu.Lock()
	p, files := m.parkedLocked()
	m.stdinMu.Unlock()
	err := m.execIdle(p, files)
	m.mu.Unlock()
	m.reaper.mu.Unlock()
	m.log.Error("cannot exec the idle monitor; the shim stays as it is", "binary", m.idleBin, "err", err)
	m.noPark()
	restart()
}

// idleEnough reports whether the shim may park.
func (m *monitor) idleEnough() bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.idleLocked()
}

func (m *monitor) idleLocked() bool {
	select {
	case <-m.quit:
		return false
	default:
	}
	m.pruneAttachedLocked()
	return m.busy == 0 && len(m.attached) == 0 && len(m.execs) == 0 &&
		!(m.exiting && m.exit == nil) &&
		time.Since(m.lastActive) >= m.cfg.ParkAfter
}

// pruneAttachedLocked drops attached clients that have closed their
// connection (a client that only half-closed it still reads output): one
// that detached from a silent container would otherwise keep the shim
// from parking.
func (m *monitor) pruneAttachedLocked() {
	for c := range m.attached {
		hup := false
		if rc, err := c.conn.SyscallConn(); err == nil {
			rc.Control(func(fd uintptr) {
				fds := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLRDHUP}}
				if n, err := unix.Poll(fds, 0); err == nil && n == 1 && fds[0].Revents&unix.POLLHUP != 0 {
					hup = true
				}
			})
		}
		if hup {
			delete(m.attached, c)
			c.finish(nil)
		}
	}
}

// parkedLocked returns the state to hand over, and the files whose fds it
// names.
func (m *monitor) parkedLocked() (*wire.Parked, []*os.File) {
	p := &wire.Parked{
		ID: m.cfg.ID, Bundle: m.cfg.Bundle, StateDir: m.cfg.StateDir,
		Terminal: m.cfg.Terminal, Stdin: m.cfg.Stdin, Debug: m.cfg.Debug,
		Pid: m.pid, Started: m.started, Paused: m.paused, StdinClosed: m.stdinClosed,
		Exit: m.exit, Out: -1, Err: -1, In: -1,
	}
	var files []*os.File
	fdOf := func(f *os.File) int {
		fd := -1
		if rc, err := f.SyscallConn(); err == nil {
			// Not f.Fd(), which would make the file blocking.
			rc.Control(func(v uintptr) { fd = int(v) })
		}
		if fd >= 0 {
			files = append(files, f)
		}
		return fd
	}
	p.Listener = fdOf(m.ln)
	p.IdleExe = fdOf(m.idleExe)
	p.ShimExe = -1
	if m.selfExe != nil {
		p.ShimExe = fdOf(m.selfExe)
	}
	p.Log = fdOf(m.logF)
	for _, s := range m.streams {
		switch {
		case s.sp.Stream == wire.Stdout && (!s.ended || m.cfg.Terminal):
			p.Out = fdOf(s.f)
			p.OutEnded = s.ended
			p.OutPending = s.sp.Pending
		case s.sp.Stream == wire.Stderr && !s.ended:
			p.Err = fdOf(s.f)
			p.ErrPending = s.sp.Pending
		}
	}
	if m.stdio.stdinW != nil && !m.stdinClosed {
		p.In = fdOf(m.stdio.stdinW)
	}
	for c := range m.waiters {
		if fd := fdOf(c); fd >= 0 {
			p.Waiters = append(p.Waiters, fd)
		}
	}
	return p, files
}

// execIdle execs the idle monitor with p; it returns only if that fails,
// with p's fds close-on-exec again.
func (m *monitor) execIdle(p *wire.Parked, files []*os.File) error {
	fds := p.Fds()
	for _, fd := range fds {
		if _, err := unix.FcntlInt(uintptr(fd), unix.F_SETFD, 0); err != nil {
			return err
		}
	}
	argv := append([]string{m.idleBin, m.self}, m.cfg.args...)
	m.log.Debug("parking", "after", durationString(m.cfg.ParkAfter))
	err := syscall.Exec(wire.ExecPath(p.IdleExe, m.idleBin), argv, append(m.resumeEnv(), wire.Env+"="+p.Encode()))
	for _, fd := range fds {
		unix.CloseOnExec(fd)
	}
	_ = files // kept alive (and their fds open) until here
	return err
}

// resumeEnv is the environment of the idle monitor and of the monitor it
// execs again: the shim's own, with GOMAXPROCS=1 for both Go runtimes
// (removed again by the monitor, see maxprocsEnv).
func (m *monitor) resumeEnv() []string {
	env := syscall.Environ()
	if _, ok := syscall.Getenv("GOMAXPROCS"); !ok {
		env = append(env, "GOMAXPROCS=1", maxprocsEnv+"=1")
	}
	return env
}

// resume is the monitor exec'd again by the idle monitor: it takes the
// container over from p and serves until delete or shutdown.
func resume(cfg Config, p *wire.Parked) error {
	m, err := newMonitor(cfg)
	if err != nil {
		m.log.Error("cannot resume the monitor", "err", err)
		return err
	}
	m.log.Debug("resumed", "requests", len(p.Requests), "waiters", len(p.Waiters))
	file := func(fd int, name string) *os.File {
		if fd < 0 {
			return nil
		}
		unix.CloseOnExec(fd)
		if name != "container log" && name != "binary" {
			unix.SetNonblock(fd, true) // for the poller, with deadlines
		}
		return os.NewFile(uintptr(fd), name)
	}
	m.selfExe, m.idleExe = file(p.ShimExe, "binary"), file(p.IdleExe, "binary")
	m.ln = file(p.Listener, m.socketPath())
	m.logF = file(p.Log, "container log")
	m.clog = &wire.Log{W: m.logF}
	m.stdio = &containerStdio{stdinW: file(p.In, "stdin")}
	m.pid, m.started, m.paused, m.stdinClosed = p.Pid, p.Started, p.Paused, p.StdinClosed
	if p.In < 0 && !cfg.Terminal {
		m.stdinClosed = true
	}
	if out := file(p.Out, "stdout"); out != nil {
		m.stdio.stdout = out
		m.streams = append(m.streams, &outStream{f: out, sp: &wire.Splitter{Log: m.clog, Stream: wire.Stdout, Max: wire.MaxLine, Pending: p.OutPending}, frame: frameStdout, ended: p.OutEnded})
	}
	if errF := file(p.Err, "stderr"); errF != nil {
		m.stdio.stderr = errF
		m.streams = append(m.streams, &outStream{f: errF, sp: &wire.Splitter{Log: m.clog, Stream: wire.Stderr, Max: wire.MaxLine, Pending: p.ErrPending}, frame: frameStderr})
	}
	if p.Exit != nil {
		m.exit = p.Exit
		m.exiting = true
		close(m.exited)
	} else {
		go m.waitExit(m.reaper.claim(p.Pid))
	}
	m.reaper.stopKeeping()
	m.startOutput()
	for _, fd := range p.Waiters {
		m.beginRequest()
		go m.handle(file(fd, "conn"), []byte(`{"op":"wait"}`+"\n"))
	}
	for _, r := range p.Requests {
		m.beginRequest()
		go m.handle(file(r.Conn, "conn"), r.Data)
	}
	m.run()
	return nil
}
