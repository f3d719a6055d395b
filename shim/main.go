package shim

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"

	"github.com/skiff-containers/skiff/errdefs"
	"github.com/skiff-containers/skiff/shim/proto"
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
	if v, ok := os.LookupEnv(daemonEnv); ok {
		os.Unsetenv(daemonEnv)
		if _, ok := os.LookupEnv(maxprocsEnv); ok {
			os.Unsetenv("GOMAXPROCS")
			os.Unsetenv(maxprocsEnv)
		}
		if v != fmt.Sprint(readyFD) {
			fmt.Fprintln(stderr, "skiff-shim: bad "+daemonEnv)
			return 2
		}
		cfg, err := ParseArgs(args, io.Discard)
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
		fmt.Fprintln(stderr, err)
		return 1
	}
	line, err := launch(cfg, args)
	if err != nil {
		reportError(stdout, err)
		fmt.Fprintln(stderr, err)
		return 1
	}
	fmt.Fprintln(stdout, line)
	if !strings.HasPrefix(line, "ready ") {
		fmt.Fprintln(stderr, "skiff-shim: "+strings.TrimPrefix(line, "error "))
		return 1
	}
	return 0
}

// reportError writes the "error <class> <message>" readiness line.
func reportError(w io.Writer, err error) {
	if w == nil {
		return
	}
	msg := strings.ReplaceAll(err.Error(), "\n", " ")
	fmt.Fprintf(w, "error %s %s\n", proto.ErrorResponse(err).Class, msg)
}

// launch starts the monitor in a new session, with stdin /dev/null and
// stdout and stderr appended to the shim log, and returns its readiness
// line. The monitor is not waited for: when the launcher exits it is
// reparented (to init, or to the nearest subreaper), so the engine's
// death cannot take it down and the engine has no child to reap.
func launch(cfg Config, args []string) (string, error) {
	if err := os.MkdirAll(cfg.StateDir, 0o700); err != nil {
		return "", fmt.Errorf("skiff-shim: container %s: make the state directory: %w", cfg.ID, err)
	}
	shimLog := filepath.Join(cfg.StateDir, proto.ShimLogName)
	logF, err := os.OpenFile(shimLog, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		return "", fmt.Errorf("skiff-shim: container %s: open the shim log: %w", cfg.ID, err)
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
	cmd := exec.Command(self, args...)
	cmd.Env = append(os.Environ(), fmt.Sprintf("%s=%d", daemonEnv, readyFD))
	if _, ok := os.LookupEnv("GOMAXPROCS"); !ok {
		cmd.Env = append(cmd.Env, "GOMAXPROCS=1", maxprocsEnv+"=1")
	}
	cmd.Dir = "/"
	cmd.Stdin, cmd.Stdout, cmd.Stderr = devnull, logF, logF
	cmd.ExtraFiles = []*os.File{w} // fd 3
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	err = cmd.Start()
	w.Close()
	if err != nil {
		return "", fmt.Errorf("skiff-shim: container %s: start the monitor: %w", cfg.ID, err)
	}
	line, err := bufio.NewReaderSize(r, 4096).ReadString('\n')
	line = strings.TrimSpace(line)
	if err != nil || line == "" {
		werr := cmd.Wait()
		return "", fmt.Errorf("skiff-shim: container %s: the monitor exited (%v) before reporting: see %s", cfg.ID, werr, shimLog)
	}
	cmd.Process.Release()
	return line, nil
}

// runDaemon is the monitor: it creates the container, reports on ready,
// and serves the control socket until delete or shutdown.
func runDaemon(cfg Config, ready *os.File) (err error) {
	// The shim idles for the container's lifetime: one P, a small heap.
	// (The launcher normally set GOMAXPROCS=1 already, so that the runtime
	// started with one P; see maxprocsEnv.)
	runtime.GOMAXPROCS(1)
	debug.SetGCPercent(25)
	debug.SetMemoryLimit(16 << 20)

	level := slog.LevelInfo
	if cfg.Debug {
		level = slog.LevelDebug
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level})).With("id", cfg.ID, "shim", os.Getpid())

	defer func() {
		if err != nil {
			log.Error("shim failed before the container was ready", "err", err)
			reportError(ready, err)
		}
		ready.Close()
	}()
	if err := unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0); err != nil {
		return fmt.Errorf("container %s: become a child subreaper: %w", cfg.ID, err)
	}
	bin, err := exec.LookPath(cfg.Runtime)
	if err != nil {
		return fmt.Errorf("container %s: runtime %q: %w: %w (install it or pass its path to --runtime)", cfg.ID, cfg.Runtime, errdefs.ErrNotFound, err)
	}
	if bin, err = filepath.Abs(bin); err != nil {
		return err
	}
	if fi, err := os.Stat(filepath.Join(cfg.Bundle, "config.json")); err != nil || !fi.Mode().IsRegular() {
		return fmt.Errorf("container %s: bundle %s: %w: no config.json (pass the bundle directory to --bundle)", cfg.ID, cfg.Bundle, errdefs.ErrNotFound)
	}
	rp := newReaper()
	defer rp.stop()
	m := &monitor{
		cfg:    cfg,
		log:    log,
		reaper: rp,
		rt: &ociRuntime{
			bin: bin, root: cfg.RuntimeRoot, args: cfg.RuntimeArgs,
			logPath: filepath.Join(cfg.StateDir, proto.RuntimeLogName), reaper: rp,
		},
		outputDone: make(chan struct{}),
		exited:     make(chan struct{}),
		quit:       make(chan struct{}),
		attached:   map[*attachClient]struct{}{},
	}
	if err := m.listen(); err != nil {
		return err
	}
	if err := m.create(context.Background()); err != nil {
		m.close()
		return err
	}
	m.mu.Lock()
	pid := m.pid
	m.mu.Unlock()
	if _, err := fmt.Fprintf(ready, "ready %d %d\n", os.Getpid(), pid); err != nil {
		// The engine is gone already; keep the container, it can reconnect.
		log.Warn("could not report readiness", "err", err)
	}
	ready.Close()
	go m.serve()
	// No debug.FreeOSMemory here: setting up leaves the heap below the
	// first GC's goal, and the GC's first cycle would map more (its
	// metadata, mark buffers, a worker's stack) than it gives back. It
	// would also start the runtime's forced GC every two minutes, which
	// never runs in a process that has not collected yet.
	<-m.quit
	m.close()
	log.Info("shim exits")
	return nil
}
