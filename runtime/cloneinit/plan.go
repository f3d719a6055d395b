package cloneinit

import (
	"fmt"
	"os"
	"runtime"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/skiff-containers/skiff/errdefs"
	"github.com/skiff-containers/skiff/runtime/caps"
	"github.com/skiff-containers/skiff/runtime/seccomp"
)

// Plan is the container's init process, set up before the clone. Fill in
// the exported fields, then Start.
type Plan struct {
	ID   string // the container's, for messages and the session keyring
	Args []string
	// Env is the environment, already deduplicated; a HOME may be added
	// after Start (SetExe).
	Env []string
	Cwd string
	UID uint32
	GID uint32
	// Groups are the additional gids.
	Groups     []uint32
	Umask      int
	Caps       *caps.Set
	NoNewPrivs bool
	// Seccomp, if set, is loaded before the user switch, or with
	// NoNewPrivs as the last step before execve.
	Seccomp *seccomp.Filter
	// NewKeyring gives the process a session keyring of its own, named ID.
	NewKeyring bool
	// ReopenDevNull points stdio that is the host's /dev/null at the
	// container's (whose /dev the caller made).
	ReopenDevNull bool
	// CgroupNS makes a cgroup namespace once the caller has placed the
	// process in its cgroup (Sync.CgroupNS).
	CgroupNS bool
	// PreserveFDs are the fds from 3 on that the process keeps.
	PreserveFDs int
	// Fifo, if set, is the exec fifo: the process waits to read a byte
	// from it before execve.
	Fifo *os.File
	// Joins are namespaces the process joins right after the clone, before
	// Start returns: mount, network, IPC, UTS or cgroup namespaces, by path.
	Joins []Join
	// PidNS, if set, is the path of a pid namespace to start the process
	// in (a process exec'd into a container): the thread that clones it
	// joins it first (setns only places that thread's children) and then
	// dies with its goroutine.
	PidNS string
	// Trampoline, if set, is a read-only handle to the runtime's binary on
	// a detached mount (runtime/selfexe): the process execs the program
	// through it (runtime/nsenter's skiff_trampoline), so that an
	// interpreter of /proc/self/exe reaches that handle, not the runtime's
	// binary on the host (CVE-2019-5736). It must stay open until Start
	// returns.
	Trampoline *os.File
	// Stdio, where set, replace the inherited fds 0, 1 and 2; their own
	// numbers must be 3 or more.
	Stdio [3]*os.File

	c     childData
	keep  []any  // what c points into
	exe   []byte // filled by SetExe
	envp  []uintptr
	home  []byte
	stack []byte
	sock  *os.File
	pid   int
	// joinFiles are the open Joins, closed once the process has joined.
	joinFiles []*os.File
}

func (p *Plan) closeJoins() {
	for _, f := range p.joinFiles {
		f.Close()
	}
	p.joinFiles = nil
}

// Join is a namespace to join: the path of a namespace file and its
// CLONE_NEW* flag.
type Join struct {
	Path string
	Flag uintptr
}

const (
	stackSize = 64 << 10
	pathMax   = 4096
)

// cstr returns s NUL-terminated, kept alive by p.
func (p *Plan) cstr(s string) uintptr {
	b := append([]byte(s), 0)
	p.keep = append(p.keep, b)
	return uintptr(unsafe.Pointer(&b[0]))
}

func (p *Plan) cstrArray(ss []string, spare int) []uintptr {
	a := make([]uintptr, len(ss)+spare+1)
	for i, s := range ss {
		a[i] = p.cstr(s)
	}
	p.keep = append(p.keep, a)
	return a
}

func (p *Plan) prepare() error {
	for _, s := range append(append([]string{p.Cwd}, p.Args...), p.Env...) {
		for i := 0; i < len(s); i++ {
			if s[i] == 0 {
				return fmt.Errorf("container %q: %q contains a NUL byte: %w", p.ID, s, errdefs.ErrInvalidArgument)
			}
		}
	}
	if len(p.Args) == 0 {
		return fmt.Errorf("container %q: process.args is empty: %w", p.ID, errdefs.ErrInvalidArgument)
	}
	c := &p.c
	c.fifo = ^uintptr(0)
	if p.Fifo != nil {
		c.fifo = p.Fifo.Fd()
	}
	c.name = p.cstr("skiff:[INIT]")
	if len(p.Joins) > len(c.joins) {
		return fmt.Errorf("container %q: %d namespaces to join, at most %d: %w", p.ID, len(p.Joins), len(c.joins), errdefs.ErrInvalidArgument)
	}
	for i, j := range p.Joins {
		f, err := os.Open(j.Path)
		if err != nil {
			p.closeJoins()
			return fmt.Errorf("container %q: open namespace %s to join: %w: %w", p.ID, j.Path, err, errdefs.ErrNotFound)
		}
		p.joinFiles = append(p.joinFiles, f)
		c.joins[i] = [2]uintptr{f.Fd(), j.Flag}
	}
	c.njoin = uintptr(len(p.Joins))
	for i, f := range p.Stdio {
		c.stdio[i] = -1
		if f != nil {
			if f.Fd() < 3 {
				return fmt.Errorf("container %q: stdio %d is fd %d: %w", p.ID, i, f.Fd(), errdefs.ErrInvalidArgument)
			}
			c.stdio[i] = int64(f.Fd())
		}
	}
	if p.ReopenDevNull {
		c.devNull = p.cstr("/dev/null")
	}
	if p.NewKeyring {
		c.keyring = p.cstr(p.ID)
	}
	c.cwd = p.cstr(p.Cwd)
	buf := make([]byte, pathMax)
	p.keep = append(p.keep, buf)
	c.cwdBuf, c.cwdBufLen, c.cwdFirst = uintptr(unsafe.Pointer(&buf[0])), uintptr(len(buf)), &buf[0]
	if len(p.Groups) > 0 {
		g := append([]uint32(nil), p.Groups...)
		p.keep = append(p.keep, g)
		c.groups, c.ngroups = uintptr(unsafe.Pointer(&g[0])), uintptr(len(g))
	}
	c.uid, c.gid, c.umask = uintptr(p.UID), uintptr(p.GID), uintptr(p.Umask)
	set := p.Caps
	if set == nil {
		set = &caps.Set{}
	}
	c.bounding = set.Bounding
	c.capHdr = unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}
	c.capData[0] = unix.CapUserData{Effective: uint32(set.Effective), Permitted: uint32(set.Permitted), Inheritable: uint32(set.Inheritable)}
	c.capData[1] = unix.CapUserData{Effective: uint32(set.Effective >> 32), Permitted: uint32(set.Permitted >> 32), Inheritable: uint32(set.Inheritable >> 32)}
	c.ambient = set.Ambient & set.Permitted & set.Inheritable
	c.noNewPrivs = p.NoNewPrivs
	if insns, flags, notify := p.Seccomp.Program(); len(insns) > 0 {
		if notify {
			return fmt.Errorf("container %q: a seccomp filter with a notify listener cannot start this way: %w", p.ID, errdefs.ErrInvalidArgument)
		}
		prog := &unix.SockFprog{Len: uint16(len(insns)), Filter: &insns[0]}
		p.keep = append(p.keep, prog, insns)
		c.seccomp, c.seccompFlags, c.seccompLate = uintptr(unsafe.Pointer(prog)), flags, p.NoNewPrivs
		msg := fmt.Sprintf("skiff-runtime: container %s: load linux.seccomp (%d instructions, flags %#x):", p.ID, len(insns), flags)
		c.seccompMsg, c.seccompMsgLen = p.cstr(msg), uintptr(len(msg))
	}
	c.closeFrom = uintptr(3 + p.PreserveFDs)
	p.exe = make([]byte, pathMax)
	p.keep = append(p.keep, p.exe)
	c.exe = uintptr(unsafe.Pointer(&p.exe[0]))
	c.argv = uintptr(unsafe.Pointer(&p.cstrArray(p.Args, 0)[0]))
	env := p.Env
	if p.Trampoline != nil {
		// First, so that the HOME slot at the end may stay empty.
		env = append([]string{"_SKIFF_TRAMPOLINE=container " + p.ID}, env...)
		targv := p.cstrArray(append([]string{"skiff:[EXEC]", ""}, p.Args...), 0)
		targv[1] = c.exe // the program, once the parent has filled it in
		c.trampoline, c.trampFd, c.trampArgv = true, p.Trampoline.Fd(), uintptr(unsafe.Pointer(&targv[0]))
		c.emptyPath = p.cstr("")
	}
	p.envp = p.cstrArray(env, 1) // a spare slot for HOME
	c.envp = uintptr(unsafe.Pointer(&p.envp[0]))
	for i, e := range []unix.Errno{unix.ENOENT, unix.EACCES, unix.ENOEXEC, unix.ENOTDIR, unix.ELOOP, unix.ETXTBSY,
		unix.E2BIG, unix.ENOMEM, unix.EPERM, unix.EISDIR, unix.EINVAL, unix.ELIBBAD} {
		text := " " + e.Error() + "\n"
		c.errnoText[i] = [3]uintptr{uintptr(e), p.cstr(text), uintptr(len(text))}
	}
	msg := fmt.Sprintf("skiff-runtime: container %s: exec %q:", p.ID, p.Args[0])
	c.execMsg, c.execMsgLen = p.cstr(msg), uintptr(len(msg))
	p.stack = make([]byte, stackSize)
	return nil
}

// Start clones the process into the namespaces of cloneflags (CLONE_NEW*
// flags; never CLONE_NEWUSER). It then waits for Go (and, with CgroupNS,
// CgroupNS) on the returned socket's peer. The Plan must stay reachable
// until the process has exec'd or exited: the process runs on its memory.
func (p *Plan) Start(cloneflags uintptr) (pid, pidfd int, err error) {
	if !Supported {
		return 0, -1, fmt.Errorf("container %q: cloning the init is not supported on %s: %w", p.ID, runtime.GOARCH, errdefs.ErrFailedPrecondition)
	}
	if cloneflags&(unix.CLONE_NEWUSER|unix.CLONE_NEWTIME) != 0 {
		return 0, -1, fmt.Errorf("container %q: user and time namespaces cannot be cloned into this way: %w", p.ID, errdefs.ErrInvalidArgument)
	}
	if err := p.prepare(); err != nil {
		return 0, -1, err
	}
	defer p.closeJoins()
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return 0, -1, fmt.Errorf("container %q: create sync socket: %w", p.ID, err)
	}
	p.sock = os.NewFile(uintptr(fds[0]), "init-sync")
	p.c.sock, p.c.parentSock = uintptr(fds[1]), uintptr(fds[0])
	defer unix.Close(fds[1]) // the clone has its own fd table

	var r uintptr
	if p.PidNS == "" {
		r, err = p.clone(cloneflags)
	} else {
		done := make(chan error, 1)
		go func() {
			// Never unlocked: the thread's children land in the
			// container's pid namespace; it dies with this goroutine.
			runtime.LockOSThread()
			ns, err := os.Open(p.PidNS)
			if err == nil {
				err = unix.Setns(int(ns.Fd()), unix.CLONE_NEWPID)
				ns.Close()
			}
			if err != nil {
				done <- fmt.Errorf("container %q: join pid namespace %s: %w", p.ID, p.PidNS, err)
				return
			}
			var cerr error
			r, cerr = p.clone(cloneflags)
			done <- cerr
		}()
		err = <-done
	}
	if err != nil {
		p.sock.Close()
		return 0, -1, err
	}
	p.pid = int(r)
	if len(p.Joins) > 0 {
		// The caller joins the process's namespaces through its pidfd:
		// wait until they are the joined ones.
		if err := p.expect(msgJoined); err != nil {
			unix.Kill(p.pid, unix.SIGKILL)
			unix.Close(int(p.c.pidfd))
			var ws unix.WaitStatus
			unix.Wait4(p.pid, &ws, 0, nil)
			p.sock.Close()
			return 0, -1, err
		}
	}
	return p.pid, int(p.c.pidfd), nil
}

// clone clones the process from the calling goroutine's thread.
func (p *Plan) clone(cloneflags uintptr) (uintptr, error) {
	// The clone must not run a Go signal handler before it has reset them
	// (it would run on the clone's stack with this thread's g): block every
	// signal on this thread across the clone; the clone restores the mask.
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	all := ^uint64(0)
	if _, _, e := unix.RawSyscall6(unix.SYS_RT_SIGPROCMASK, unix.SIG_SETMASK, uintptr(unsafe.Pointer(&all)), uintptr(unsafe.Pointer(&p.c.sigmask)), 8, 0, 0); e != 0 {
		return 0, fmt.Errorf("container %q: block signals: %w", p.ID, e)
	}
	top := uintptr(unsafe.Pointer(&p.stack[len(p.stack)-64])) &^ 15
	flags := cloneflags | unix.CLONE_VM | unix.CLONE_PIDFD | uintptr(unix.SIGCHLD)
	r, errno := rawClone(flags, top, &p.c)
	unix.RawSyscall6(unix.SYS_RT_SIGPROCMASK, unix.SIG_SETMASK, uintptr(unsafe.Pointer(&p.c.sigmask)), 0, 8, 0, 0)
	runtime.KeepAlive(p)
	if errno != 0 {
		return 0, fmt.Errorf("container %q: clone the process into its namespaces: %w", p.ID, unix.Errno(errno))
	}
	return r, nil
}

// Pid is the process's pid, once started.
func (p *Plan) Pid() int { return p.pid }

// Sock is the parent's end of the sync socket.
func (p *Plan) Sock() *os.File { return p.sock }

// MakeCgroupNS tells the process, now in its cgroup, to make its cgroup
// namespace, and waits until it has.
func (p *Plan) MakeCgroupNS() error {
	if _, err := p.sock.Write([]byte{msgCgroupNS}); err != nil {
		return fmt.Errorf("container %q: init process: %w", p.ID, err)
	}
	return p.expect(msgCgroupNS)
}

// Go hands the process the resolved program path (and HOME, if the caller
// found it missing from Env) and lets it set itself up; it returns once the
// process waits for start, or with the step that failed.
func (p *Plan) Go(exe, home string) error {
	if len(exe)+1 > len(p.exe) {
		return fmt.Errorf("container %q: program path %q is too long: %w", p.ID, exe, errdefs.ErrInvalidArgument)
	}
	copy(p.exe, exe)
	p.exe[len(exe)] = 0
	if home != "" {
		p.home = append([]byte("HOME="+home), 0)
		p.envp[len(p.envp)-2] = uintptr(unsafe.Pointer(&p.home[0]))
	}
	if _, err := p.sock.Write([]byte{msgGo}); err != nil {
		return fmt.Errorf("container %q: init process: %w", p.ID, err)
	}
	return p.expect(msgReady)
}

func (p *Plan) expect(want byte) error {
	var b [4]byte
	n, err := p.sock.Read(b[:1])
	if err != nil || n != 1 {
		return fmt.Errorf("container %q: init process (pid %d) exited during setup: %w", p.ID, p.pid, errdefs.ErrFailedPrecondition)
	}
	switch b[0] {
	case want:
		return nil
	case msgError:
		if _, err := readFull(p.sock, b[1:]); err != nil {
			return fmt.Errorf("container %q: init process failed and its report was cut short: %w", p.ID, errdefs.ErrFailedPrecondition)
		}
		return p.stepError(int(b[1]), unix.Errno(uint16(b[2])|uint16(b[3])<<8))
	}
	return fmt.Errorf("container %q: init process sent unexpected message %q: %w", p.ID, b[0], errdefs.ErrFailedPrecondition)
}

func readFull(f *os.File, b []byte) (int, error) {
	n := 0
	for n < len(b) {
		m, err := f.Read(b[n:])
		n += m
		if err != nil {
			return n, err
		}
	}
	return n, nil
}

// stepError is the Go init's message for the failed step.
func (p *Plan) stepError(step int, errno unix.Errno) error {
	class := errdefs.ErrFailedPrecondition
	var what string
	switch step {
	case stepCgroupNS:
		what = "create cgroup namespace"
	case stepJoin:
		what = "join the namespaces of linux.namespaces"
		for _, j := range p.Joins {
			what += " " + j.Path
		}
	case stepDumpable:
		what = "make the init process non-dumpable"
	case stepStdio:
		what = "set up stdio"
	case stepDevNull:
		what = "reopen stdio on the container's /dev/null"
	case stepSetsid:
		what = "create a new session"
	case stepKeyring:
		what = "join a new session keyring (use --no-new-keyring to keep the caller's)"
	case stepCwd:
		what = fmt.Sprintf("change to process.cwd %q", p.Cwd)
		if errno == unix.ENOENT || errno == unix.ENOTDIR {
			class = errdefs.ErrNotFound
		}
	case stepCwdOutside:
		return fmt.Errorf("container %q: process.cwd %q is not inside the container's root: %w", p.ID, p.Cwd, errdefs.ErrInvalidArgument)
	case stepSeccomp:
		what = "load linux.seccomp"
	case stepBounding:
		what = "drop capabilities from the bounding set"
	case stepKeepCaps:
		what = "keep capabilities across the user switch"
	case stepGroups:
		what = fmt.Sprintf("set process.user.additionalGids %v", p.Groups)
	case stepGID:
		what = fmt.Sprintf("set process.user.gid %d (is it mapped in the user namespace?)", p.GID)
	case stepUID:
		what = fmt.Sprintf("set process.user.uid %d (is it mapped in the user namespace?)", p.UID)
	case stepCapset:
		what = "set capabilities"
		if set := p.Caps; errno == unix.EPERM && set != nil {
			if why := set.WhyNotPermittedAfter(set.Bounding); why != "" {
				return fmt.Errorf("container %q: set capabilities: %w: %s: %w", p.ID, errno, why, class)
			}
		}
	case stepAmbient:
		what = "raise ambient capabilities"
	case stepNoNewPrivs:
		what = "set process.noNewPrivileges"
	case stepCloseRange:
		what = "mark the runtime's fds close-on-exec"
	default:
		what = fmt.Sprintf("step %d", step)
	}
	return fmt.Errorf("container %q: %s: %w: %w", p.ID, what, errno, class)
}
