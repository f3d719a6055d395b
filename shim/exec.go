package shim

import (
	"errors"
	"io"
	"os"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/skiff-containers/skiff/errdefs"
	"github.com/skiff-containers/skiff/shim/internal/wire"
)

// maxExecID bounds an exec's id (it names a pid file in the state
// directory).
const maxExecID = 128

// execProc is one process started by exec: its stdio on the shim's side
// and the connection of the client that asked for it. The shim owns the
// process (it is its subreaper); the connection only carries its stdio and
// its exit.
type execProc struct {
	m        *monitor
	id       string
	terminal bool
	pid      int
	conn     conn

	// stdinW is the pipe to the process's stdin (nil without stdin or
	// with a terminal); master is the pty master (with a terminal: output
	// and input); stdout and stderr are the pipes' read ends.
	stdinW, master, stdout, stderr *os.File

	// wmu serialises frame writes to conn; failed is set once one failed
	// (the client went away): the output is then read and dropped.
	wmu    sync.Mutex
	failed bool

	// stdinMu serialises writes to, and the closing of, the input.
	stdinMu     sync.Mutex
	stdinClosed bool

	outputDone chan struct{}
}

// validExecID checks an exec id: it names a file.
func validExecID(id string) bool {
	if id == "" || len(id) > maxExecID {
		return false
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '.') {
			return false
		}
	}
	return id != "." && id != ".."
}

// exec serves an exec connection: it starts the process, answers with its
// pid, then relays its stdio as frames and ends with its exit.
func (m *monitor) exec(c conn, br *connReader, req request) {
	p, exitC, err := m.startExec(c, req)
	if err != nil {
		m.log.Warn("request failed", "op", req.Op, "exec", req.ExecID, "err", err)
		m.reply(c, errorResponse(err))
		c.Close()
		return
	}
	m.reply(c, response{Pid: p.pid})
	p.startOutput()
	go p.waitExit(exitC)
	p.readInput(br)
}

// startExec runs the runtime's exec --detach for req with the process's
// stdio wired, and returns the process and the channel of its status.
func (m *monitor) startExec(c conn, req request) (p *execProc, exitC <-chan unix.WaitStatus, err error) {
	if !validExecID(req.ExecID) {
		return nil, nil, m.errorf(errdefs.ErrInvalidArgument, "exec: exec id "+quote(req.ExecID)+" must be 1 to "+itoa(maxExecID)+" letters, digits, '-', '_' or '.'")
	}
	if req.Process == "" || req.Process[0] != '/' {
		return nil, nil, m.errorf(errdefs.ErrInvalidArgument, "exec "+req.ExecID+": the process file "+quote(req.Process)+" must be an absolute path")
	}
	defer os.Remove(req.Process)
	switch st := m.state(); st.Status {
	case statusRunning:
	case statusPaused:
		return nil, nil, m.errorf(errdefs.ErrFailedPrecondition, "exec: the container is paused (resume it first)")
	default:
		return nil, nil, m.errorf(errdefs.ErrFailedPrecondition, "exec: the container is not running ("+st.Status+")")
	}
	m.mu.Lock()
	if _, dup := m.execs[req.ExecID]; dup {
		m.mu.Unlock()
		return nil, nil, m.errorf(errdefs.ErrAlreadyExists, "exec: an exec with id "+req.ExecID+" runs already")
	}
	p = &execProc{m: m, id: req.ExecID, terminal: req.Terminal, conn: c, outputDone: make(chan struct{})}
	m.execs[req.ExecID] = p
	m.mu.Unlock()
	defer func() {
		if err != nil {
			m.mu.Lock()
			delete(m.execs, req.ExecID)
			m.mu.Unlock()
		}
	}()

	pidFile := joinPath(m.cfg.StateDir, "exec-"+req.ExecID+".pid")
	os.Remove(pidFile)
	defer os.Remove(pidFile)
	args := []string{"exec", "--process", req.Process, "--pid-file", pidFile, "--detach"}
	var console *consoleSocket
	var stdio runtimeStdio
	var pipes *containerStdio
	if req.Terminal {
		if console, err = newConsoleSocket(); err != nil {
			return nil, nil, wrapError(nil, err, "container "+m.cfg.ID+": exec "+req.ExecID)
		}
		defer console.close()
		args = append(args, "--tty", "--console-socket", console.path)
	} else {
		if pipes, err = newPipes(req.Stdin); err != nil {
			return nil, nil, m.wrapf(err, "exec "+req.ExecID+": make the stdio pipes")
		}
		stdio = runtimeStdio{stdin: pipes.childIn, stdout: pipes.childOut, stderr: pipes.childErr}
		defer func() {
			if err != nil {
				pipes.closeShim()
			}
		}()
	}
	type received struct {
		f   *os.File
		err error
	}
	masterC := make(chan received, 1)
	if console != nil {
		go func() {
			f, err := console.receive(runtimeTimeout + consoleTimeout)
			masterC <- received{f, err}
		}()
	}

	m.reaper.hold()
	defer m.reaper.release()
	_, rerr := m.rt.run(stdio, append(args, m.cfg.ID)...)
	if pipes != nil {
		pipes.closeChild()
	}
	if rerr != nil {
		return nil, nil, m.errorf(errdefs.ErrFailedPrecondition, "exec "+req.ExecID+": runtime exec failed: "+rerr.Error())
	}
	pid, err := readPidFile(pidFile)
	if err != nil {
		return nil, nil, m.wrapf(err, "exec "+req.ExecID+": the runtime's exec succeeded but")
	}
	exitC = m.reaper.claim(pid)
	if console != nil {
		var r received
		select {
		case r = <-masterC:
		case <-after(consoleTimeout):
			r.err = newError(nil, "the runtime sent no pty master within "+durationString(consoleTimeout))
		}
		if r.err != nil {
			unix.Kill(pid, unix.SIGKILL)
			go func() { <-exitC }()
			return nil, nil, m.errorf(errdefs.ErrFailedPrecondition, "exec "+req.ExecID+" --tty: "+r.err.Error()+" (does the process have terminal true?)")
		}
		p.master = r.f
		if req.Resize != nil && req.Resize.Width > 0 && req.Resize.Height > 0 {
			p.resize(req.Resize)
		}
	} else {
		p.stdinW, p.stdout, p.stderr = pipes.stdinW, pipes.stdout, pipes.stderr
	}
	p.pid = pid
	m.log.Info("exec started", "exec", req.ExecID, "pid", pid, "terminal", req.Terminal, "stdin", req.Stdin)
	return p, exitC, nil
}

// startOutput copies the process's output to the client, one goroutine
// per stream.
func (p *execProc) startOutput() {
	var wg sync.WaitGroup
	copy := func(f *os.File, frame byte) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			buf := make([]byte, copyBufSize)
			for {
				n, err := f.Read(buf)
				if n > 0 {
					p.writeFrame(frame, buf[:n])
				}
				if err != nil {
					return
				}
			}
		}()
	}
	if p.master != nil {
		copy(p.master, frameStdout)
	} else {
		copy(p.stdout, frameStdout)
		copy(p.stderr, frameStderr)
	}
	go func() {
		wg.Wait()
		close(p.outputDone)
	}()
}

// writeFrame sends one frame to the client; once a write failed, output
// is dropped.
func (p *execProc) writeFrame(typ byte, data []byte) {
	p.wmu.Lock()
	defer p.wmu.Unlock()
	if p.failed {
		return
	}
	p.conn.SetWriteDeadline(time.Now().Add(attachWriteTimeout))
	if err := writeFrame(p.conn, typ, data); err != nil {
		p.failed = true
	}
}

// waitExit waits for the process's exit and its output's end (at most
// drainTimeout), sends the exit frame and releases everything.
func (p *execProc) waitExit(ch <-chan unix.WaitStatus) {
	ws := <-ch
	sec, nsec := wire.Now()
	e := wire.ExitOf(syscall.WaitStatus(ws), sec, nsec)
	p.m.log.Info("exec exited", "exec", p.id, "pid", p.pid, "code", e.Code, "signal", e.Signal)
	select {
	case <-p.outputDone:
	case <-after(drainTimeout):
		p.m.log.Warn("exec output still open after the process exited; ending it", "exec", p.id, "after", durationString(drainTimeout))
	}
	p.writeFrame(frameExit, e.AppendJSON(nil))
	p.conn.Close()
	p.stdinMu.Lock()
	p.stdinClosed = true
	for _, f := range []*os.File{p.stdinW, p.master, p.stdout, p.stderr} {
		if f != nil {
			f.Close()
		}
	}
	p.stdinMu.Unlock()
	p.m.mu.Lock()
	delete(p.m.execs, p.id)
	p.m.mu.Unlock()
}

// readInput reads the client's frames until it closes its side or the
// connection is closed at the exit. A client that goes away leaves the
// process and its input as they are.
func (p *execProc) readInput(br *connReader) {
	buf := make([]byte, 0, 4096)
	for {
		typ, payload, err := readFrame(br, buf)
		if err != nil {
			if !errors.Is(err, io.EOF) && !errors.Is(err, os.ErrClosed) {
				p.m.log.Debug("exec input ended", "exec", p.id, "err", err)
			}
			return
		}
		switch typ {
		case frameStdin:
			if err := p.writeStdin(payload); err != nil {
				p.m.log.Debug("exec: write stdin", "exec", p.id, "err", err)
			}
		case frameStdinEOF:
			p.closeStdin()
		case frameResize:
			if r, err := parseResize(payload); err == nil {
				if err := p.resize(&r); err != nil {
					p.m.log.Debug("exec: resize", "exec", p.id, "err", err)
				}
			}
		}
	}
}

func (p *execProc) writeStdin(data []byte) error {
	p.stdinMu.Lock()
	defer p.stdinMu.Unlock()
	switch {
	case p.stdinClosed:
		return newError(errdefs.ErrFailedPrecondition, "exec "+p.id+": stdin is closed")
	case p.master != nil:
		_, err := p.master.Write(data)
		return err
	case p.stdinW != nil:
		_, err := p.stdinW.Write(data)
		return err
	}
	return newError(errdefs.ErrFailedPrecondition, "exec "+p.id+": the process has no stdin")
}

// closeStdin ends the process's input: the pipe is closed; with a
// terminal, ^D (VEOF) is written.
func (p *execProc) closeStdin() {
	p.stdinMu.Lock()
	defer p.stdinMu.Unlock()
	if p.stdinClosed {
		return
	}
	switch {
	case p.master != nil:
		p.master.Write([]byte{4})
		return // the pty stays open for output
	case p.stdinW != nil:
		p.stdinW.Close()
	}
	p.stdinClosed = true
}

func (p *execProc) resize(r *resize) error {
	if p.master == nil {
		return newError(errdefs.ErrFailedPrecondition, "exec "+p.id+": resize: the process has no terminal")
	}
	if r.Width == 0 || r.Height == 0 {
		return newError(errdefs.ErrInvalidArgument, "exec "+p.id+": resize: width and height must be non-zero")
	}
	p.stdinMu.Lock()
	defer p.stdinMu.Unlock()
	if p.stdinClosed {
		return nil
	}
	rc, err := p.master.SyscallConn()
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
		return wrapError(nil, ierr, "exec "+p.id+": resize its terminal")
	}
	return nil
}

// pause freezes the container (runtime pause).
func (m *monitor) pause() error {
	switch st := m.state(); st.Status {
	case statusRunning:
	case statusPaused:
		return m.errorf(errdefs.ErrFailedPrecondition, "pause: it is paused already")
	default:
		return m.errorf(errdefs.ErrFailedPrecondition, "pause: it is not running ("+st.Status+")")
	}
	m.pauseMu.Lock()
	defer m.pauseMu.Unlock()
	if _, err := m.rt.run(runtimeStdio{}, "pause", m.cfg.ID); err != nil {
		return m.errorf(errdefs.ErrFailedPrecondition, "runtime pause failed: "+err.Error())
	}
	m.mu.Lock()
	m.paused = true
	m.mu.Unlock()
	m.log.Info("container paused")
	return nil
}

// resume thaws the container (runtime resume).
func (m *monitor) resume() error {
	if st := m.state(); st.Status != statusPaused {
		return m.errorf(errdefs.ErrFailedPrecondition, "resume: it is not paused ("+st.Status+")")
	}
	m.pauseMu.Lock()
	defer m.pauseMu.Unlock()
	if _, err := m.rt.run(runtimeStdio{}, "resume", m.cfg.ID); err != nil {
		return m.errorf(errdefs.ErrFailedPrecondition, "runtime resume failed: "+err.Error())
	}
	m.mu.Lock()
	m.paused = false
	m.mu.Unlock()
	m.log.Info("container resumed")
	return nil
}

// resumeAfterKill thaws a paused container after a SIGKILL, so that its
// processes die (a frozen process does not act on a signal until thawed).
func (m *monitor) resumeAfterKill() {
	m.mu.Lock()
	paused := m.paused
	m.mu.Unlock()
	if !paused || m.hasExited() {
		return
	}
	m.pauseMu.Lock()
	defer m.pauseMu.Unlock()
	if _, err := m.rt.run(runtimeStdio{}, "resume", m.cfg.ID); err != nil && !m.hasExited() {
		m.log.Warn("resume after kill", "err", err)
		return
	}
	m.mu.Lock()
	m.paused = false
	m.mu.Unlock()
}
