package shim

import (
	"errors"
	"io"
	"os"
	"path"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/skiff-containers/skiff/errdefs"
	"github.com/skiff-containers/skiff/shim/internal/wire"
)

const (
	// drainTimeout bounds how long, after the init exits, the shim waits for
	// the container's output to end before it records the exit: processes
	// outside a pid namespace of the container's own may keep it open.
	drainTimeout = 2 * time.Second
	// consoleTimeout bounds the wait for the pty master once create is done.
	consoleTimeout = 10 * time.Second
	// deleteExitTimeout bounds the wait for the init's exit after the
	// runtime deleted a container that had not exited.
	deleteExitTimeout = 10 * time.Second
)

// monitor is the running shim: the container's stdio, its exit, and the
// control socket.
type monitor struct {
	cfg Config
	// self is the path of the shim's binary and idleBin the idle
	// monitor's; selfExe and idleExe are the binaries, open (see
	// openBinaries). Without idleExe the shim never parks.
	self, idleBin    string
	selfExe, idleExe *os.File
	log              *logger
	rt               *ociRuntime
	reaper           *reaper
	ln               *os.File

	clog  *wire.Log
	logF  *os.File
	stdio *containerStdio

	// stdinMu serialises writes to, and the closing of, the container's
	// input (stdio.stdinW, or the pty master).
	stdinMu     sync.Mutex
	stdinClosed bool

	// streams are the output streams; outputDone is closed when every one
	// has ended; copiers when their copiers have returned (ended, or
	// stopped for parking).
	streams    []*outStream
	outputDone chan struct{}
	copiers    chan struct{}
	// exited is closed once exit is recorded (exit file written).
	exited chan struct{}
	// quit is closed by delete and shutdown.
	quit     chan struct{}
	quitOnce sync.Once

	// pauseMu serialises the runtime's pause and resume.
	pauseMu sync.Mutex

	mu       sync.Mutex
	pid      int
	started  bool
	paused   bool
	exit     *exitStatus
	attached map[*attachClient]struct{}
	execs    map[string]*execProc
	writers  sync.WaitGroup // attach writers, flushed before the shim exits

	// Parking (park.go). busy counts the requests being served (a wait
	// blocked for the exit does not count), lastActive is when the last
	// one began or ended, exiting is set once the init's status arrived.
	busy       int
	lastActive time.Time
	exiting    bool
	waiters    map[conn]struct{}
	parking    atomic.Bool
}

func (m *monitor) socketPath() string { return joinPath(m.cfg.StateDir, socketName) }

// errorf returns an error naming the container, of class class.
func (m *monitor) errorf(class error, msg string) error {
	return containerError(m.cfg.ID, class, msg)
}

// wrapf returns an error "container ID: what: err", of no class but
// err's.
func (m *monitor) wrapf(err error, what string) error {
	return wrapError(nil, err, "container "+m.cfg.ID+": "+what)
}

// listen creates the control socket, refusing if a live shim serves it.
func (m *monitor) listen() error {
	path := m.socketPath()
	if socketAnswers(path) {
		return m.errorf(errdefs.ErrAlreadyExists, "a shim already serves "+path+": use another --state, or delete that container first")
	}
	if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return m.wrapf(err, "remove stale socket "+path)
	}
	ln, err := listenUnix(path)
	if err != nil {
		return m.wrapf(err, "listen on "+path)
	}
	if err := os.Chmod(path, 0o600); err != nil {
		ln.Close()
		os.Remove(path)
		return m.wrapf(err, "chmod 0600 "+path)
	}
	m.ln = ln
	return nil
}

// create runs the runtime's create with the container's stdio wired, and
// starts copying its output. On failure nothing of the container remains.
func (m *monitor) create() (err error) {
	logF, err := openContainerLog(m.cfg.LogPath)
	if err != nil {
		return m.wrapf(err, "open the container log")
	}
	m.logF = logF
	m.clog = &wire.Log{W: logF}

	pidFile := joinPath(m.cfg.StateDir, pidFileName)
	os.Remove(pidFile)
	args := []string{"create", "--bundle", m.cfg.Bundle, "--pid-file", pidFile}
	var console *consoleSocket
	var stdio runtimeStdio
	if m.cfg.Terminal {
		if console, err = newConsoleSocket(); err != nil {
			return wrapError(nil, err, "container "+m.cfg.ID)
		}
		defer console.close()
		args = append(args, "--console-socket", console.path)
		m.stdio = &containerStdio{}
	} else {
		if m.stdio, err = newPipes(m.cfg.Stdin); err != nil {
			return m.wrapf(err, "make the stdio pipes")
		}
		stdio = runtimeStdio{stdin: m.stdio.childIn, stdout: m.stdio.childOut, stderr: m.stdio.childErr}
	}
	defer func() {
		if err != nil {
			m.stdio.closeShim()
		}
	}()

	type received struct {
		f   *os.File
		err error
	}
	masterC := make(chan received, 1)
	if console != nil {
		go func() {
			f, err := console.receive(createTimeout + consoleTimeout)
			masterC <- received{f, err}
		}()
	}

	_, cerr := m.rt.run(stdio, append(args, m.cfg.ID)...)
	m.stdio.closeChild()
	if cerr != nil {
		m.cleanupFailedCreate()
		return m.errorf(errdefs.ErrFailedPrecondition, "runtime create failed: "+cerr.Error()+" (check the bundle "+m.cfg.Bundle+" and the runtime's log "+m.rt.logPath+")")
	}
	pid, err := readPidFile(pidFile)
	if err != nil {
		m.cleanupFailedCreate()
		return m.wrapf(err, "the runtime's create succeeded but")
	}
	if console != nil {
		var r received
		select {
		case r = <-masterC:
		case <-after(consoleTimeout):
			r.err = newError(nil, "the runtime sent no pty master within "+durationString(consoleTimeout))
		}
		if r.err != nil {
			m.cleanupFailedCreate()
			return m.errorf(errdefs.ErrFailedPrecondition, "--tty: "+r.err.Error()+" (does config.json have process.terminal true?)")
		}
		m.stdio.stdout = r.f
	}
	m.mu.Lock()
	m.pid = pid
	m.mu.Unlock()
	exitC := m.reaper.claim(pid)
	m.reaper.stopKeeping()

	m.streams = []*outStream{{f: m.stdio.stdout, sp: &wire.Splitter{Log: m.clog, Stream: wire.Stdout, Max: wire.MaxLine}, frame: frameStdout}}
	if m.stdio.stderr != nil {
		m.streams = append(m.streams, &outStream{f: m.stdio.stderr, sp: &wire.Splitter{Log: m.clog, Stream: wire.Stderr, Max: wire.MaxLine}, frame: frameStderr})
	}
	m.startOutput()
	go m.waitExit(exitC)
	m.log.Info("container created", "pid", pid, "terminal", m.cfg.Terminal, "stdin", m.cfg.Stdin)
	return nil
}

// cleanupFailedCreate removes whatever a failed create may have left.
func (m *monitor) cleanupFailedCreate() {
	m.rt.run(runtimeStdio{}, "delete", "--force", m.cfg.ID)
	os.Remove(joinPath(m.cfg.StateDir, pidFileName))
}

func openContainerLog(file string) (*os.File, error) {
	if err := mkdirAll(path.Dir(file), 0o700); err != nil {
		return nil, err
	}
	return os.OpenFile(file, os.O_WRONLY|os.O_CREATE|os.O_APPEND|unix.O_CLOEXEC, 0o640)
}

func readPidFile(path string) (int, error) {
	data, err := readFile(path)
	if err != nil {
		return 0, wrapError(nil, err, "its pid file is unreadable")
	}
	pid, ok := parseInt(strings.TrimSpace(string(data)))
	if !ok || pid <= 0 {
		return 0, newError(nil, "its pid file "+path+" holds "+quote(string(data))+", not a pid")
	}
	return pid, nil
}

// outStream is one output stream of the container, copied by its own
// goroutine to the CRI log and to the attached clients.
type outStream struct {
	f     *os.File
	sp    *wire.Splitter
	frame byte
	// ended is set once the stream's end was read (and logged); a copier
	// stopped for parking leaves it unset.
	ended bool
}

// startOutput starts one goroutine per output stream that has not ended;
// m.outputDone is closed once every stream has ended.
func (m *monitor) startOutput() {
	var wg sync.WaitGroup
	for _, s := range m.streams {
		if !s.ended {
			wg.Add(1)
			go func() {
				defer wg.Done()
				m.copyOutput(s)
			}()
		}
	}
	m.copiers = make(chan struct{})
	go func(stopped chan struct{}) {
		wg.Wait()
		close(stopped)
		for _, s := range m.streams {
			if !s.ended {
				return // stopped for parking
			}
		}
		select {
		case <-m.outputDone: // closed by an earlier round (see tryPark)
		default:
			close(m.outputDone)
		}
	}(m.copiers)
}

// copyBufSize is the read size of an output stream (conmon's is 8 KiB).
const copyBufSize = 8 << 10

func (m *monitor) copyOutput(s *outStream) {
	buf := make([]byte, copyBufSize)
	logFailed := false
	for {
		n, err := s.f.Read(buf)
		if n > 0 {
			if _, werr := s.sp.Write(buf[:n]); werr != nil && !logFailed {
				logFailed = true
				m.log.Error("cannot write the container log; output is dropped", "stream", s.sp.Stream, "err", werr)
			}
			m.broadcast(s.frame, buf[:n])
		}
		if err != nil {
			if errors.Is(err, os.ErrDeadlineExceeded) && m.parking.Load() {
				return // parking: the stream goes on in the idle monitor
			}
			// EIO: every process closed the pty's slave side.
			if !errors.Is(err, unix.EIO) && !errors.Is(err, os.ErrClosed) && !errors.Is(err, io.EOF) {
				m.log.Warn("read container output", "stream", s.sp.Stream, "err", err)
			}
			break
		}
	}
	if err := s.sp.Close(); err != nil && !logFailed {
		m.log.Error("cannot write the container log", "stream", s.sp.Stream, "err", err)
	}
	s.ended = true
	if s.sp.Stream == wire.Stderr || !m.cfg.Terminal {
		s.f.Close()
	}
}

// waitExit records the init's exit: once the output has ended (or after
// drainTimeout), it writes the exit file, then releases waiters and
// attached clients.
func (m *monitor) waitExit(ch <-chan unix.WaitStatus) {
	ws := <-ch
	m.mu.Lock()
	m.exiting = true
	m.mu.Unlock()
	sec, nsec := wire.Now()
	e := wire.ExitOf(syscall.WaitStatus(ws), sec, nsec)
	m.log.Info("container exited", "code", e.Code, "signal", e.Signal)
	select {
	case <-m.outputDone:
	case <-after(drainTimeout):
		m.log.Warn("container output still open after its init exited; recording the exit anyway", "after", durationString(drainTimeout))
	}
	if err := writeExitFile(m.cfg.StateDir, &e); err != nil {
		m.log.Error("cannot write the exit file", "err", err)
	}
	m.mu.Lock()
	m.exit = &e
	clients := make([]*attachClient, 0, len(m.attached))
	for c := range m.attached {
		clients = append(clients, c)
	}
	m.mu.Unlock()
	close(m.exited)
	for _, c := range clients {
		c.finish(&e)
	}
}

// state returns the container's state.
func (m *monitor) state() *state {
	m.mu.Lock()
	defer m.mu.Unlock()
	s := &state{
		ID: m.cfg.ID, Pid: m.pid, ShimPid: os.Getpid(), Bundle: m.cfg.Bundle,
		Terminal: m.cfg.Terminal, Stdin: m.cfg.Stdin, Status: statusCreated,
	}
	switch {
	case m.exit != nil:
		s.Status = statusStopped
		e := *m.exit
		s.Exit = &e
	case m.paused:
		s.Status = statusPaused
	case m.started:
		s.Status = statusRunning
	}
	return s
}

func (m *monitor) hasExited() bool {
	select {
	case <-m.exited:
		return true
	default:
		return false
	}
}

func (m *monitor) start() error {
	m.mu.Lock()
	started := m.started
	m.mu.Unlock()
	if started || m.hasExited() {
		return m.errorf(errdefs.ErrFailedPrecondition, "cannot start: it is "+m.state().Status+" (a container starts once)")
	}
	if _, err := m.rt.run(runtimeStdio{}, "start", m.cfg.ID); err != nil {
		return m.errorf(errdefs.ErrFailedPrecondition, "runtime start failed: "+err.Error())
	}
	m.mu.Lock()
	m.started = true
	m.mu.Unlock()
	m.log.Info("container started")
	return nil
}

func (m *monitor) kill(sig int, all bool) error {
	if sig == 0 {
		sig = int(unix.SIGTERM)
	}
	if sig < 0 || sig > 64 {
		return m.errorf(errdefs.ErrInvalidArgument, "kill: signal "+strconv.Itoa(sig)+" is out of range")
	}
	if m.hasExited() {
		return m.errorf(errdefs.ErrFailedPrecondition, "kill: it has exited already (state tells its exit code)")
	}
	args := []string{"kill"}
	if all {
		args = append(args, "--all")
	}
	if _, err := m.rt.run(runtimeStdio{}, append(args, m.cfg.ID, strconv.Itoa(sig))...); err != nil {
		if m.hasExited() {
			return m.errorf(errdefs.ErrFailedPrecondition, "kill: it has exited already (state tells its exit code)")
		}
		return m.errorf(errdefs.ErrFailedPrecondition, "runtime kill failed: "+err.Error())
	}
	if sig == int(unix.SIGKILL) {
		m.resumeAfterKill()
	}
	return nil
}

// closeStdin ends the container's input: the pipe is closed; with a
// terminal, ^D (VEOF) is written, which ends a canonical-mode read.
func (m *monitor) closeStdin() error {
	if !m.cfg.Stdin {
		return m.errorf(errdefs.ErrFailedPrecondition, "close-stdin: the shim was spawned without --stdin")
	}
	m.stdinMu.Lock()
	defer m.stdinMu.Unlock()
	if m.stdinClosed {
		return nil
	}
	m.stdinClosed = true
	if m.cfg.Terminal {
		_, err := m.stdio.stdout.Write([]byte{4})
		return err
	}
	return m.stdio.stdinW.Close()
}

// writeStdin sends input to the container.
func (m *monitor) writeStdin(p []byte) error {
	m.stdinMu.Lock()
	defer m.stdinMu.Unlock()
	if m.stdinClosed {
		return m.errorf(errdefs.ErrFailedPrecondition, "stdin is closed")
	}
	if m.cfg.Terminal {
		_, err := m.stdio.stdout.Write(p)
		return err
	}
	_, err := m.stdio.stdinW.Write(p)
	return err
}

func (m *monitor) resize(r *resize) error {
	if !m.cfg.Terminal {
		return m.errorf(errdefs.ErrFailedPrecondition, "resize: the container has no terminal (spawn the shim with --tty)")
	}
	if r == nil || r.Width == 0 || r.Height == 0 {
		return m.errorf(errdefs.ErrInvalidArgument, "resize: width and height must be non-zero")
	}
	rc, err := m.stdio.stdout.SyscallConn()
	if err != nil {
		return err
	}
	var ierr error
	if err := rc.Control(func(fd uintptr) {
		ierr = unix.IoctlSetWinsize(int(fd), unix.TIOCSWINSZ, &unix.Winsize{Row: r.Height, Col: r.Width})
	}); err != nil {
		return err
	}
	if ierr != nil {
		return m.wrapf(ierr, "resize its terminal")
	}
	return nil
}

// delete deletes the container in the runtime; the shim exits after
// answering.
func (m *monitor) delete(force bool) error {
	st := m.state()
	if st.Status == statusRunning && !force {
		return m.errorf(errdefs.ErrFailedPrecondition, "cannot delete: it is running (kill it and wait, or delete with force)")
	}
	args := []string{"delete"}
	if force || st.Status != statusStopped {
		args = append(args, "--force")
	}
	if _, err := m.rt.run(runtimeStdio{}, append(args, m.cfg.ID)...); err != nil {
		return m.errorf(errdefs.ErrFailedPrecondition, "runtime delete failed: "+err.Error())
	}
	select {
	case <-m.exited:
	case <-after(deleteExitTimeout):
		m.log.Warn("init not reaped after the runtime deleted the container", "after", durationString(deleteExitTimeout))
	}
	m.log.Info("container deleted")
	return nil
}

func (m *monitor) shutdown(force bool) error {
	if !m.hasExited() && !force {
		return m.errorf(errdefs.ErrFailedPrecondition, "cannot shut the shim down: the container has not exited (its output and exit would be lost); use force")
	}
	return nil
}

func (m *monitor) requestQuit() { m.quitOnce.Do(func() { close(m.quit) }) }

// close releases everything; the container's state in the runtime is not
// touched.
func (m *monitor) close() {
	if m.ln != nil {
		m.ln.Close()
		os.Remove(m.socketPath())
	}
	m.mu.Lock()
	for c := range m.attached {
		c.finish(m.exit)
	}
	m.mu.Unlock()
	done := make(chan struct{})
	go func() { m.writers.Wait(); close(done) }()
	select {
	case <-done:
	case <-after(time.Second):
	}
	if m.logF != nil {
		m.logF.Close()
	}
	os.Remove(joinPath(m.cfg.StateDir, pidFileName))
}
