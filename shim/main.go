package shim

import (
	"io"
	"math"
	"os"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/skiff-containers/skiff/errdefs"
	"github.com/skiff-containers/skiff/shim/internal/wire"
)

// daemonEnv marks the detached second process of skiff-shim; its value is
// the number of the fd on which it reports readiness. It is removed from
// the environment before anything else runs.
const daemonEnv = "_SKIFF_SHIM_DAEMON"

// maxprocsEnv tells the monitor that the launcher added GOMAXPROCS=1 to
// its environment, for the Go runtime to start with one P (fewer threads
// and stacks than a start on every CPU and a switch to one later), and
// that it must remove GOMAXPROCS again so that the OCI runtime does not
// inherit it.
const maxprocsEnv = "_SKIFF_SHIM_UNSET_GOMAXPROCS"

// readyFD is the daemon's end of the readiness pipe.
const readyFD = 3

// Main runs skiff-shim with args (without the program name) and returns
// its exit status. Invoked by the engine, it is the launcher: it starts the
// monitor as a detached process, relays its one readiness line to stdout
// and exits, 0 if the line is "ready …", 1 otherwise. Invoked by itself
// (daemonEnv set), it is the monitor.
func Main(args []string, stdout, stderr io.Writer) int {
	if v, ok := os.LookupEnv(wire.Env); ok {
		os.Unsetenv(wire.Env)
		unsetMaxprocs()
		cfg, err := ParseArgs(args, io.Discard)
		if err == nil {
			var p *wire.Parked
			if p, err = wire.DecodeParked(v); err == nil {
				cfg.args = args
				err = resume(cfg, p)
			}
		}
		if err != nil {
			io.WriteString(stderr, "skiff-shim: cannot resume from the idle monitor: "+err.Error()+"\n")
			return 1
		}
		return 0
	}
	if v, ok := os.LookupEnv(daemonEnv); ok {
		os.Unsetenv(daemonEnv)
		unsetMaxprocs()
		if v != strconv.Itoa(readyFD) {
			io.WriteString(stderr, "skiff-shim: bad "+daemonEnv+"\n")
			return 2
		}
		cfg, err := ParseArgs(args, io.Discard)
		cfg.args = args
		ready := os.NewFile(readyFD, "ready")
		if err != nil {
			reportError(ready, err)
			return 1
		}
		if err := runDaemon(cfg, ready); err != nil {
			return 1
		}
		return 0
	}
	cfg, err := ParseArgs(args, stderr)
	if err != nil {
		reportError(stdout, err)
		io.WriteString(stderr, err.Error()+"\n")
		return 1
	}
	line, err := launch(cfg, args)
	if err != nil {
		reportError(stdout, err)
		io.WriteString(stderr, err.Error()+"\n")
		return 1
	}
	io.WriteString(stdout, line+"\n")
	if !strings.HasPrefix(line, "ready ") {
		io.WriteString(stderr, "skiff-shim: "+strings.TrimPrefix(line, "error ")+"\n")
		return 1
	}
	return 0
}

// A monitor resumed by the idle monitor was exec'd through
// /proc/self/fd/N, which names the process "N": name it again (in an
// init function: it names the thread, which must be the main one).
func init() {
	if _, ok := syscall.Getenv(wire.Env); ok {
		wire.SetName("skiff-shim")
	}
}

// unsetMaxprocs removes the GOMAXPROCS the launcher (or the idle monitor)
// added, so that the OCI runtime does not inherit it.
func unsetMaxprocs() {
	if _, ok := os.LookupEnv(maxprocsEnv); ok {
		os.Unsetenv("GOMAXPROCS")
		os.Unsetenv(maxprocsEnv)
	}
}

// reportError writes the "error <class> <message>" readiness line.
func reportError(w io.Writer, err error) {
	if w == nil {
		return
	}
	msg := []byte(err.Error())
	for i, c := range msg {
		if c == '\n' {
			msg[i] = ' '
		}
	}
	io.WriteString(w, "error "+errorClass(err)+" "+string(msg)+"\n")
}

// launch starts the monitor in a new session, with stdin /dev/null and
// stdout and stderr appended to the shim log, and returns its readiness
// line. The monitor is not waited for: when the launcher exits it is
// reparented (to init, or to the nearest subreaper), so the engine's
// death cannot take it down and the engine has no child to reap.
func launch(cfg Config, args []string) (string, error) {
	fail := func(what string, err error) (string, error) {
		return "", wrapError(nil, err, "skiff-shim: container "+cfg.ID+": "+what)
	}
	if err := mkdirAll(cfg.StateDir, 0o700); err != nil {
		return fail("make the state directory", err)
	}
	shimLog := joinPath(cfg.StateDir, shimLogName)
	logF, err := os.OpenFile(shimLog, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		return fail("open the shim log", err)
	}
	defer logF.Close()
	devnull, err := os.Open(os.DevNull)
	if err != nil {
		return "", err
	}
	defer devnull.Close()
	r, w, err := os.Pipe()
	if err != nil {
		return "", err
	}
	defer r.Close()
	self, err := os.Executable()
	if err != nil {
		self = "/proc/self/exe"
	}
	env := append(os.Environ(), daemonEnv+"="+strconv.Itoa(readyFD))
	if _, ok := os.LookupEnv("GOMAXPROCS"); !ok {
		env = append(env, "GOMAXPROCS=1", maxprocsEnv+"=1")
	}
	// Whatever fds the engine let the launcher inherit are not the
	// monitor's (nor the runtime's, nor the container's): ForkExec only
	// dup2s Files over 0-3 and leaves other fds without close-on-exec.
	unix.CloseRange(3, math.MaxUint32, unix.CLOSE_RANGE_CLOEXEC)
	// syscall.ForkExec rather than os.StartProcess: see reaper.start.
	pid, err := syscall.ForkExec(self, append([]string{self}, args...), &syscall.ProcAttr{
		Dir:   "/",
		Env:   env,
		Files: []uintptr{devnull.Fd(), logF.Fd(), logF.Fd(), w.Fd()}, // w is fd 3
		Sys:   &syscall.SysProcAttr{Setsid: true},
	})
	w.Close()
	if err != nil {
		return fail("start the monitor", &os.PathError{Op: "fork/exec", Path: self, Err: err})
	}
	line, err := readLine(r, 4096)
	line = strings.TrimSpace(line)
	if err != nil || line == "" {
		var ws unix.WaitStatus
		why := "exit status unknown"
		for {
			_, werr := unix.Wait4(pid, &ws, 0, nil)
			if werr == unix.EINTR {
				continue
			}
			if werr == nil {
				why = describeStatus(ws)
			}
			break
		}
		return "", newError(nil, "skiff-shim: container "+cfg.ID+": the monitor exited ("+why+") before reporting: see "+shimLog)
	}
	return line, nil
}

// readLine reads up to and including the first "\n" of r (at most max
// bytes), byte by byte so as not to consume more.
func readLine(r io.Reader, max int) (string, error) {
	var line []byte
	var b [1]byte
	for len(line) < max {
		n, err := r.Read(b[:])
		if n > 0 {
			line = append(line, b[0])
			if b[0] == '\n' {
				return string(line), nil
			}
		}
		if err != nil {
			return string(line), err
		}
	}
	return string(line), nil
}

// newMonitor sets up the monitor's process: one P, a small heap, a child
// subreaper, the runtime found. The caller gives it the container.
func newMonitor(cfg Config) (*monitor, error) {
	// The shim idles for the container's lifetime: one P, a small heap.
	// (The launcher normally set GOMAXPROCS=1 already, so that the runtime
	// started with one P; see maxprocsEnv.)
	runtime.GOMAXPROCS(1)
	debug.SetGCPercent(25)
	debug.SetMemoryLimit(16 << 20)

	m := &monitor{
		cfg:        cfg,
		log:        newLogger(os.Stderr, cfg.Debug, "id", cfg.ID, "shim", os.Getpid()),
		outputDone: make(chan struct{}),
		exited:     make(chan struct{}),
		quit:       make(chan struct{}),
		attached:   map[*attachClient]struct{}{},
		execs:      map[string]*execProc{},
		waiters:    map[conn]struct{}{},
		lastActive: time.Now(),
	}
	m.self, m.idleBin = binaryPaths()
	if err := unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0); err != nil {
		return m, wrapError(nil, err, "container "+cfg.ID+": become a child subreaper")
	}
	bin, err := lookPath(cfg.Runtime)
	if err != nil {
		return m, newError(errdefs.ErrNotFound, "container "+cfg.ID+": runtime "+quote(cfg.Runtime)+": "+errdefs.ErrNotFound.Error()+": "+err.Error()+" (install it or pass its path to --runtime)")
	}
	m.reaper = newReaper()
	m.rt = &ociRuntime{
		bin: bin, root: cfg.RuntimeRoot, args: cfg.RuntimeArgs,
		logPath: joinPath(cfg.StateDir, runtimeLogName), reaper: m.reaper,
	}
	return m, nil
}

// runDaemon is the monitor: it creates the container, reports on ready,
// and serves the control socket until delete or shutdown.
func runDaemon(cfg Config, ready *os.File) (err error) {
	m, err := newMonitor(cfg)
	defer func() {
		if err != nil {
			m.log.Error("shim failed before the container was ready", "err", err)
			reportError(ready, err)
		}
		ready.Close()
	}()
	if err != nil {
		return err
	}
	m.openBinaries()
	if st, err := stat(joinPath(cfg.Bundle, "config.json")); err != nil || !isRegular(st) {
		return newError(errdefs.ErrNotFound, "container "+cfg.ID+": bundle "+cfg.Bundle+": "+errdefs.ErrNotFound.Error()+": no config.json (pass the bundle directory to --bundle)")
	}
	if err := m.listen(); err != nil {
		return err
	}
	if err := m.create(); err != nil {
		m.close()
		return err
	}
	m.mu.Lock()
	pid := m.pid
	m.mu.Unlock()
	if _, err := io.WriteString(ready, "ready "+strconv.Itoa(os.Getpid())+" "+strconv.Itoa(pid)+"\n"); err != nil {
		// The engine is gone already; keep the container, it can reconnect.
		m.log.Warn("could not report readiness", "err", err)
	}
	ready.Close()
	// No debug.FreeOSMemory here: setting up leaves the heap below the
	// first GC's goal, and the GC's first cycle would map more (its
	// metadata, mark buffers, a worker's stack) than it gives back. It
	// would also start the runtime's forced GC every two minutes, which
	// never runs in a process that has not collected yet.
	m.run()
	return nil
}

// run serves the control socket until delete or shutdown, then releases
// everything.
func (m *monitor) run() {
	go m.serve()
	<-m.quit
	m.close()
	m.reaper.stop()
	m.log.Info("shim exits")
}

// lookPath finds the runtime binary as os/exec's LookPath does: a name
// with a slash is used as it is, another is searched for on PATH; the
// result is made absolute.
func lookPath(file string) (string, error) {
	isExec := func(p string) error {
		st, err := stat(p)
		if err != nil {
			return err
		}
		if isDir(st) || st.Mode&0o111 == 0 {
			return &os.PathError{Op: "exec", Path: p, Err: syscall.EACCES}
		}
		return nil
	}
	abs := func(p string) (string, error) {
		if path := p; len(path) > 0 && path[0] == '/' {
			return path, nil
		}
		wd, err := syscall.Getwd()
		if err != nil {
			return "", err
		}
		return joinPath(wd, p), nil
	}
	if strings.Contains(file, "/") {
		if err := isExec(file); err != nil {
			return "", wrapError(nil, err, "exec: "+quote(file))
		}
		return abs(file)
	}
	for _, dir := range strings.Split(os.Getenv("PATH"), ":") {
		if dir == "" {
			dir = "."
		}
		if p := joinPath(dir, file); isExec(p) == nil {
			if dir == "." || !strings.HasPrefix(dir, "/") {
				// os/exec refuses a match relative to the current
				// directory (ErrDot).
				continue
			}
			return abs(p)
		}
	}
	return "", newError(nil, "exec: "+quote(file)+": executable file not found in $PATH")
}
