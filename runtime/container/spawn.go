package container

import (
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"runtime"
	"sort"
	"strconv"
	"syscall"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/skiff-containers/skiff/errdefs"
	"github.com/skiff-containers/skiff/runtime/initproc"
	"github.com/skiff-containers/skiff/runtime/nsenter"
	"github.com/skiff-containers/skiff/runtime/seccomp"
	"github.com/skiff-containers/skiff/runtime/selfexe"
)

// spawnReq describes a process to start as `skiff-runtime init`: a
// container's init, or a process exec'd into a running container.
type spawnReq struct {
	id   string
	what string // "init process" or "exec process", for errors
	dir  string // working directory before namespaces are entered
	// nsReq is the request for runtime/nsenter: joins, unshare, timens.
	nsReq string
	// cloneflags, if set, are namespaces the process is cloned into
	// directly (nsReq then has nothing to do): its pid is then the one the
	// clone returns, not the one nsenter reports (1 in a new pid
	// namespace).
	cloneflags uintptr
	// pidns, if set, is a pid namespace (a path) the process is created
	// in: the thread that starts it joins it first (setns only changes
	// where that thread's children go) and then dies with the goroutine,
	// so nsenter need not fork to put the process there. nsReq must not
	// join it again.
	pidns string
	// linux gives the id mappings written when nsenter makes a user ns.
	linux       *specs.Linux
	preserveFDs int
	// files are passed after the sync socket; each named by the
	// environment variable that tells the init its fd number.
	files map[string]*os.File
	// extra files follow the named ones; spawned.extraFDs gives their fd
	// numbers in the init, in the same order.
	extra                 []*os.File
	stdin, stdout, stderr *os.File
}

// spawned is a started init, stopped between the namespace stage and the Go
// stage: its pid is known, it waits for its Config.
type spawned struct {
	id, what string
	pid      int
	start    uint64
	// proc is set when the process is our direct child (nsenter did not
	// fork): only we can reap it.
	proc *os.Process
	sock *os.File
	// extraFDs are the fd numbers of spawnReq.extra in the process.
	extraFDs []int
	// idmapTrees are sent to the init after its Config, for
	// Config.IDMapTrees (mount index to detached ID-mapped tree); the
	// caller owns and closes them.
	idmapTrees map[int]*os.File
}

// exe returns the path to exec as `skiff-runtime init` and a cleanup. By
// default it is the running binary through a detached read-only mount
// (runtime/selfexe, CVE-2019-5736), as an fd numbered at least minFD so the
// dup2s of the child's fds cannot overwrite it before execve.
func (r *Runtime) exe(minFD int) (string, func(), error) {
	if r.Exe != "" {
		return r.Exe, func() {}, nil
	}
	f, err := selfexe.Open(r.Root)
	if err != nil {
		return "", nil, err
	}
	defer f.Close()
	fd, err := unix.FcntlInt(f.Fd(), unix.F_DUPFD_CLOEXEC, minFD)
	if err != nil {
		return "", nil, fmt.Errorf("protect the runtime binary: %w", err)
	}
	return "/proc/self/fd/" + strconv.Itoa(fd), func() { unix.Close(fd) }, nil
}

// spawn starts the process and takes it through runtime/nsenter. On error
// nothing it started is left running.
func (r *Runtime) spawn(req spawnReq) (_ *spawned, retErr error) {
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("create sync socket: %w", err)
	}
	parentSock := os.NewFile(uintptr(fds[0]), "sync-parent")
	childSock := os.NewFile(uintptr(fds[1]), "sync-child")
	defer childSock.Close()
	defer func() {
		if retErr != nil {
			parentSock.Close()
		}
	}()

	cmd := &exec.Cmd{Args: []string{"skiff-runtime", "init"}}
	cmd.Dir = req.dir
	cmd.Stdin, cmd.Stdout, cmd.Stderr = orStd(req.stdin, os.Stdin), orStd(req.stdout, os.Stdout), orStd(req.stderr, os.Stderr)
	for i := 0; i < req.preserveFDs; i++ {
		cmd.ExtraFiles = append(cmd.ExtraFiles, os.NewFile(uintptr(3+i), "preserved-"+strconv.Itoa(3+i)))
	}
	syncFD := 3 + len(cmd.ExtraFiles)
	cmd.ExtraFiles = append(cmd.ExtraFiles, childSock)
	cmd.Env = []string{
		nsenter.EnvFD + "=" + strconv.Itoa(syncFD),
		initproc.EnvInitFD + "=" + strconv.Itoa(syncFD),
		// The init does one thing at a time on one locked thread: a
		// single P spares it the threads and wake-ups of a parallel
		// scheduler. The user program never sees this (its environment is
		// the spec's).
		"GOMAXPROCS=1",
	}
	names := make([]string, 0, len(req.files))
	for name := range req.files {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		cmd.Env = append(cmd.Env, name+"="+strconv.Itoa(3+len(cmd.ExtraFiles)))
		cmd.ExtraFiles = append(cmd.ExtraFiles, req.files[name])
	}
	var extraFDs []int
	for _, f := range req.extra {
		extraFDs = append(extraFDs, 3+len(cmd.ExtraFiles))
		cmd.ExtraFiles = append(cmd.ExtraFiles, f)
	}
	exe, closeExe, err := r.exe(3 + len(cmd.ExtraFiles) + 16)
	if err != nil {
		return nil, fmt.Errorf("start %s of container %q: %w", req.what, req.id, err)
	}
	cmd.Path = exe
	if req.cloneflags != 0 {
		cmd.SysProcAttr = &syscall.SysProcAttr{Cloneflags: req.cloneflags}
	}
	if r.Logger != nil {
		r.Logger.Debug("binary protected", "id", req.id)
	}
	if req.pidns != "" {
		err = startInPidns(cmd, req.pidns)
	} else {
		err = cmd.Start()
	}
	if r.Logger != nil {
		r.Logger.Debug("init started", "id", req.id)
	}
	closeExe()
	if err != nil {
		return nil, fmt.Errorf("start %s of container %q: %w", req.what, req.id, err)
	}
	childSock.Close()
	sp := &spawned{id: req.id, what: req.what, pid: cmd.Process.Pid, proc: cmd.Process, sock: parentSock, extraFDs: extraFDs}
	defer func() {
		if retErr != nil {
			sp.kill()
		}
	}()
	if err := writeRequest(parentSock, req.nsReq); err != nil {
		return nil, fmt.Errorf("send namespace request to %s of container %q: %w", req.what, req.id, err)
	}
	pid, err := nsenterStage(parentSock, req.linux, req.id, req.what)
	if err != nil {
		return nil, err
	}
	if req.cloneflags != 0 || req.pidns != "" {
		pid = cmd.Process.Pid
	}
	if pid != cmd.Process.Pid {
		// nsenter forked into a pid or time namespace: reap the
		// intermediate process, which exits at once.
		if _, err := cmd.Process.Wait(); err != nil {
			return nil, fmt.Errorf("wait for intermediate %s of container %q: %w", req.what, req.id, err)
		}
		sp.pid, sp.proc = pid, nil
	}
	sp.start, _, err = procStartTime(pid)
	if err != nil {
		return nil, fmt.Errorf("%s of container %q (pid %d) died while entering its namespaces: %w", req.what, req.id, pid, err)
	}
	return sp, nil
}

// startInPidns starts cmd in the pid namespace at path, from a thread of its
// own that has joined that namespace for its children and that exits with
// its goroutine (locked, never unlocked): no other goroutine ever runs on a
// thread whose children would land in the container.
func startInPidns(cmd *exec.Cmd, path string) error {
	done := make(chan error, 1)
	go func() {
		runtime.LockOSThread() // never unlocked: the thread dies with us
		ns, err := os.Open(path)
		if err != nil {
			done <- fmt.Errorf("open pid namespace: %w", err)
			return
		}
		err = unix.Setns(int(ns.Fd()), unix.CLONE_NEWPID)
		ns.Close()
		if err != nil {
			done <- fmt.Errorf("join pid namespace %s: %w", path, err)
			return
		}
		done <- cmd.Start()
	}()
	return <-done
}

// configure sends the init its Config and waits until it is ready (or
// failed).
// onHooks, if set, runs when the init asks for the runtime's hooks.
func (sp *spawned) configure(cfg *initproc.Config, log *slog.Logger, onHooks func() error) error {
	cfg.Debug = log.Enabled(context.Background(), slog.LevelDebug)
	cfg.Pid = sp.pid
	if err := initproc.WriteConfig(sp.sock, cfg); err != nil {
		return fmt.Errorf("send config to %s of container %q: %w", sp.what, sp.id, err)
	}
	for _, i := range cfg.IDMapTrees {
		f := sp.idmapTrees[i]
		if f == nil {
			return fmt.Errorf("%s of container %q: no ID-mapped tree for mounts[%d]", sp.what, sp.id, i)
		}
		err := initproc.SendMountFd(sp.sock, i, int(f.Fd()))
		runtime.KeepAlive(f)
		if err != nil {
			return fmt.Errorf("send the ID-mapped tree of mounts[%d] to %s of container %q: %w", i, sp.what, sp.id, err)
		}
	}
	kind, payload, err := initproc.ReadMessage(sp.sock)
	for err == nil && (kind == initproc.MsgLog || kind == initproc.MsgHooks || kind == initproc.MsgSeccompFd) {
		switch kind {
		case initproc.MsgLog:
			log.Debug(string(payload), "id", sp.id)
		case initproc.MsgSeccompFd:
			if err := sp.passSeccompFd(cfg); err != nil {
				return err
			}
		default:
			if onHooks == nil {
				return fmt.Errorf("%s of container %q asked for hooks that were not expected", sp.what, sp.id)
			}
			if err := onHooks(); err != nil {
				return err
			}
			if err := initproc.WriteMessage(sp.sock, initproc.MsgResume, nil); err != nil {
				return fmt.Errorf("resume %s of container %q after hooks: %w", sp.what, sp.id, err)
			}
		}
		kind, payload, err = initproc.ReadMessage(sp.sock)
	}
	if err != nil {
		return fmt.Errorf("%s of container %q exited during setup (its stderr may say why): %w", sp.what, sp.id, err)
	}
	switch kind {
	case initproc.MsgReady:
		return nil
	case initproc.MsgError:
		return fmt.Errorf("container %q: %s: %w", sp.id, payload, classifyInitError(string(payload)))
	}
	return fmt.Errorf("%s of container %q sent unexpected message %q", sp.what, sp.id, kind)
}

// passSeccompFd receives the init's seccomp notify fd and hands it to the
// agent listening on linux.seccomp.listenerPath, with the container state.
func (sp *spawned) passSeccompFd(cfg *initproc.Config) error {
	fd, err := initproc.ReceiveFd(sp.sock)
	if err != nil {
		return fmt.Errorf("%s of container %q: receive seccomp notify fd: %w", sp.what, sp.id, err)
	}
	defer unix.Close(fd)
	sc := cfg.Spec.Linux.Seccomp
	state, err := seccomp.NotifyState(sc, sp.pid, specs.State{
		Version: specs.Version, ID: cfg.ID, Status: specs.StateCreating, Pid: sp.pid,
		Bundle: cfg.Bundle, Annotations: cfg.Spec.Annotations,
	})
	if err != nil {
		return err
	}
	if err := seccomp.SendNotifyFd(sc.ListenerPath, fd, state); err != nil {
		return fmt.Errorf("container %q: %w", sp.id, err)
	}
	return nil
}

// kill kills the process and waits until it is gone.
func (sp *spawned) kill() {
	_ = unix.Kill(sp.pid, unix.SIGKILL)
	if sp.proc != nil {
		_, _ = sp.proc.Wait()
		return
	}
	waitGone(sp.pid, sp.start, 10*time.Second)
}

func writeRequest(w io.Writer, req string) error {
	b := make([]byte, 4, 4+len(req))
	binary.LittleEndian.PutUint32(b, uint32(len(req)))
	_, err := w.Write(append(b, req...))
	return err
}

// nsenterStage answers the C stage of the init (runtime/nsenter) until it
// reports the process's pid.
func nsenterStage(sock *os.File, l *specs.Linux, id, what string) (int, error) {
	for {
		var rec [5]byte
		if _, err := io.ReadFull(sock, rec[:]); err != nil {
			return 0, fmt.Errorf("%s of container %q exited while entering its namespaces: %w", what, id, err)
		}
		val := int(int32(binary.LittleEndian.Uint32(rec[1:])))
		switch rec[0] {
		case 'P':
			return val, nil
		case 'U':
			if err := writeIDMaps(val, l); err != nil {
				return 0, fmt.Errorf("container %q: %w", id, err)
			}
			if _, err := sock.Write([]byte{'u'}); err != nil {
				return 0, err
			}
		case 'E':
			var n [4]byte
			if _, err := io.ReadFull(sock, n[:]); err != nil {
				return 0, fmt.Errorf("%s of container %q failed (errno %d)", what, id, val)
			}
			msg := make([]byte, min(binary.LittleEndian.Uint32(n[:]), 4096))
			_, _ = io.ReadFull(sock, msg)
			errno := unix.Errno(val)
			class := errdefs.ErrFailedPrecondition
			switch errno {
			case unix.ENOENT:
				class = errdefs.ErrNotFound
			case unix.EINVAL:
				class = errdefs.ErrInvalidArgument
			}
			return 0, fmt.Errorf("container %q: %s: %w", id, msg, class)
		default:
			return 0, fmt.Errorf("%s of container %q sent unexpected record %q", what, id, rec[0])
		}
	}
}
