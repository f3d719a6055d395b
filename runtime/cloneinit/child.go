package cloneinit

import (
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// childData is what the clone reads: plain numbers and addresses of memory
// the Plan keeps alive. The clone writes none of it (stores to the shared
// heap could race the runtime, and pointer stores would need the garbage
// collector's write barrier); the parent writes exe and the HOME slot of envp
// before it sends msgGo, and nothing after.
type childData struct {
	pidfd int32 // written by the kernel in the parent (CLONE_PIDFD)
	_     int32

	sock, fifo uintptr
	parentSock uintptr       // the parent's end, which the clone inherits and closes first
	joins      [8][2]uintptr // fd and CLONE_NEW* flag of each namespace to join
	njoin      uintptr
	sigmask    uint64 // the mask to restore once the handlers are reset
	name       uintptr
	stdio      [3]int64 // fds to dup onto 0, 1, 2; -1 keeps the inherited one

	devNull      uintptr // "/dev/null\x00"; 0: leave stdio alone
	keyring      uintptr // session keyring name; 0: keep the caller's
	cwd          uintptr
	cwdBuf       uintptr
	cwdBufLen    uintptr
	cwdFirst     *byte // cwdBuf's first byte, to read it
	groups       uintptr
	ngroups      uintptr
	uid, gid     uintptr
	umask        uintptr
	bounding     uint64 // capabilities kept in the bounding set
	capHdr       unix.CapUserHeader
	capData      [2]unix.CapUserData
	ambient      uint64
	noNewPrivs   bool
	seccomp      uintptr // address of a unix.SockFprog; 0: none
	seccompLate  bool    // load it after the start signal, just before execve
	seccompFlags uintptr
	closeFrom    uintptr

	exe  uintptr // NUL-terminated path, filled in by the parent
	argv uintptr // NULL-terminated array of NUL-terminated strings
	envp uintptr
	// trampoline, if set, is the runtime's protected binary (an fd): the
	// clone execs it with trampArgv ({marker, exe, argv...}) and it execs
	// the program (runtime/nsenter's skiff_trampoline).
	trampoline bool
	trampFd    uintptr
	trampArgv  uintptr
	emptyPath  uintptr // ""

	// Messages for failures after the parent has gone: written to fd 2.
	execMsg, execMsgLen       uintptr
	seccompMsg, seccompMsgLen uintptr
	// errnoText are errno, address and length of " " + its text + "\n",
	// for the errnos execve and seccomp(2) usually fail with.
	errnoText [12][3]uintptr
}

// Messages on the sync socket.
const (
	msgJoined   = 'j' // child: the namespaces of joins are joined
	msgCgroupNS = 'c' // parent: make the cgroup namespace now; child: done
	msgGo       = 'g' // parent: the root is built, set up the process
	msgReady    = 'r' // child: set up, waiting for start
	msgError    = 'E' // child: step, errno (2 bytes, little endian); then it exits
)

// Steps of the clone that can fail before it is ready.
const (
	stepCgroupNS = iota + 1
	stepDumpable
	stepJoin
	stepStdio
	stepDevNull
	stepSetsid
	stepKeyring
	stepCwd
	stepCwdOutside
	stepSeccomp
	stepBounding
	stepKeepCaps
	stepGroups
	stepGID
	stepUID
	stepCapset
	stepAmbient
	stepNoNewPrivs
	stepCloseRange
	stepReady
)

// atFDCWD is AT_FDCWD (-100) as a system call argument.
const atFDCWD = ^uintptr(99)

// kernelSigaction is struct sigaction as rt_sigaction(2) takes it on
// x86-64 and arm64.
type kernelSigaction struct {
	handler  uintptr
	flags    uint64
	restorer uintptr
	mask     uint64
}

//go:nosplit
//go:norace
func sys(trap, a1, a2, a3 uintptr) (uintptr, uintptr) {
	r, _, e := syscall.RawSyscall6(trap, a1, a2, a3, 0, 0, 0)
	return r, uintptr(e)
}

//go:nosplit
//go:norace
func exit(code uintptr) {
	for {
		syscall.RawSyscall6(unix.SYS_EXIT_GROUP, code, 0, 0, 0, 0, 0)
	}
}

// fail reports step and errno to the parent and exits.
//
//go:nosplit
//go:norace
func fail(c *childData, step, errno uintptr) {
	b := [4]byte{msgError, byte(step), byte(errno), byte(errno >> 8)}
	sys(unix.SYS_WRITE, c.sock, uintptr(unsafe.Pointer(&b[0])), 4)
	exit(1)
}

// readByte reads one byte from fd, retrying on EINTR; 0 on EOF or error.
//
//go:nosplit
//go:norace
func readByte(fd uintptr) byte {
	var b [1]byte
	for {
		n, e := sys(unix.SYS_READ, fd, uintptr(unsafe.Pointer(&b[0])), 1)
		if e == uintptr(unix.EINTR) {
			continue
		}
		if e != 0 || n != 1 {
			return 0
		}
		return b[0]
	}
}

//go:nosplit
//go:norace
func writeByte(fd uintptr, v byte) uintptr {
	b := [1]byte{v}
	_, e := sys(unix.SYS_WRITE, fd, uintptr(unsafe.Pointer(&b[0])), 1)
	return e
}

// resetSignals gives every signal the runtime handles its default action
// back (ignored ones stay ignored, as across execve), except that those on
// which a Go program exits get sigExit, and then restores the signal mask
// the parent blocked for the clone.
//
//go:nosplit
//go:norace
func resetSignals(c *childData) {
	var old, act kernelSigaction
	for sig := uintptr(1); sig <= 64; sig++ {
		if sig == uintptr(unix.SIGKILL) || sig == uintptr(unix.SIGSTOP) {
			continue
		}
		if _, _, e := syscall.RawSyscall6(unix.SYS_RT_SIGACTION, sig, 0, uintptr(unsafe.Pointer(&old)), 8, 0, 0); e != 0 {
			continue
		}
		if old.handler == 0 || old.handler == 1 { // SIG_DFL, SIG_IGN
			continue
		}
		act = kernelSigaction{}
		if exitsGo(sig) && sigExitPC != 0 {
			act.handler, act.restorer, act.flags = sigExitPC, sigExitPC, saRestorer
			act.mask = ^uint64(0)
		}
		syscall.RawSyscall6(unix.SYS_RT_SIGACTION, sig, uintptr(unsafe.Pointer(&act)), 0, 8, 0, 0)
	}
	syscall.RawSyscall6(unix.SYS_RT_SIGPROCMASK, unix.SIG_SETMASK, uintptr(unsafe.Pointer(&c.sigmask)), 0, 8, 0, 0)
}

// saRestorer is SA_RESTORER: x86-64 needs a restorer; sigExit never
// returns to use it.
const saRestorer = 0x04000000

// exitsGo reports whether a Go program without signal.Notify exits on sig
// (sent by kill(2)).
//
//go:nosplit
//go:norace
func exitsGo(sig uintptr) bool {
	switch unix.Signal(sig) {
	case unix.SIGHUP, unix.SIGINT, unix.SIGQUIT, unix.SIGILL, unix.SIGTRAP, unix.SIGABRT,
		unix.SIGBUS, unix.SIGFPE, unix.SIGSEGV, unix.SIGTERM, unix.SIGSTKFLT, unix.SIGSYS:
		return true
	}
	return false
}

// childMain is the clone's whole life: wait for the parent to build the
// root, set the process up, report ready, wait for start, execve.
//
//go:nosplit
//go:norace
func childMain(c *childData) {
	// Else the socket never reads EOF should the runtime die before it
	// sends msgGo, and the clone would wait forever.
	sys(unix.SYS_CLOSE, c.parentSock, 0, 0)
	resetSignals(c)
	sys(unix.SYS_PRCTL, unix.PR_SET_NAME, c.name, 0)
	// Not ptrace-able, nor its /proc files readable, by the container's
	// processes until execve (which resets it): a process exec'd into the
	// created container could otherwise reach the runtime's memory, which
	// this one shares (as runc's init guards itself, CVE-2016-9962).
	if _, e := sys(unix.SYS_PRCTL, unix.PR_SET_DUMPABLE, 0, 0); e != 0 {
		fail(c, stepDumpable, e)
	}
	if c.njoin > 0 {
		for i := uintptr(0); i < c.njoin && i < uintptr(len(c.joins)); i++ {
			if _, e := sys(unix.SYS_SETNS, c.joins[i][0], c.joins[i][1], 0); e != 0 {
				fail(c, stepJoin, e)
			}
			sys(unix.SYS_CLOSE, c.joins[i][0], 0, 0)
		}
		if writeByte(c.sock, msgJoined) != 0 {
			exit(1)
		}
	}
	for i := uintptr(0); i < 3; i++ {
		if fd := c.stdio[i]; fd >= 0 {
			if _, e := sys(unix.SYS_DUP3, uintptr(fd), i, 0); e != 0 {
				fail(c, stepStdio, e)
			}
		}
	}
	m := readByte(c.sock)
	if m == msgCgroupNS {
		// Now that the parent has put us in the container's cgroup, which
		// becomes the namespace's root.
		if _, e := sys(unix.SYS_UNSHARE, unix.CLONE_NEWCGROUP, 0, 0); e != 0 {
			fail(c, stepCgroupNS, e)
		}
		if writeByte(c.sock, msgCgroupNS) != 0 {
			exit(1)
		}
		m = readByte(c.sock)
	}
	if m != msgGo {
		exit(1) // the parent gave up and will kill us anyway
	}
	if c.devNull != 0 {
		reopenDevNull(c)
	}
	setupProcess(c)
	if writeByte(c.sock, msgReady) != 0 {
		exit(1)
	}
	sys(unix.SYS_CLOSE, c.sock, 0, 0)
	if c.fifo != ^uintptr(0) {
		readByte(c.fifo) // `start` writes a byte; EOF (no writer left) starts too, as in the Go init
		sys(unix.SYS_CLOSE, c.fifo, 0, 0)
	}
	if c.seccomp != 0 && c.seccompLate {
		if _, e := sys(unix.SYS_SECCOMP, unix.SECCOMP_SET_MODE_FILTER, c.seccompFlags, c.seccomp); e != 0 {
			report(c, c.seccompMsg, c.seccompMsgLen, e)
			exit(126)
		}
	}
	var e uintptr
	if c.trampoline {
		_, _, en := syscall.RawSyscall6(unix.SYS_EXECVEAT, c.trampFd, c.emptyPath, c.trampArgv, c.envp, unix.AT_EMPTY_PATH, 0)
		e = uintptr(en)
	} else {
		_, e = sys(unix.SYS_EXECVE, c.exe, c.argv, c.envp)
	}
	report(c, c.execMsg, c.execMsgLen, e)
	if e == uintptr(unix.ENOENT) {
		exit(127)
	}
	exit(126)
}

// reopenDevNull points stdio that is the host's /dev/null at the
// container's, so that no fd keeps the old root reachable.
//
//go:nosplit
//go:norace
func reopenDevNull(c *childData) {
	fd, e := sys(unix.SYS_OPENAT, atFDCWD, c.devNull, unix.O_RDWR|unix.O_CLOEXEC)
	if e != 0 {
		fail(c, stepDevNull, e)
	}
	var null, st unix.Stat_t
	if _, e := sys(unix.SYS_FSTAT, fd, uintptr(unsafe.Pointer(&null)), 0); e != 0 {
		fail(c, stepDevNull, e)
	}
	for i := uintptr(0); i < 3; i++ {
		if _, e := sys(unix.SYS_FSTAT, i, uintptr(unsafe.Pointer(&st)), 0); e != 0 {
			continue
		}
		if st.Mode&unix.S_IFMT == unix.S_IFCHR && st.Rdev == null.Rdev {
			if _, e := sys(unix.SYS_DUP3, fd, i, 0); e != 0 {
				fail(c, stepDevNull, e)
			}
		}
	}
	sys(unix.SYS_CLOSE, fd, 0, 0)
}

// setupProcess is the Go init's process setup, in the same order:
// close-on-exec for every fd of ours, session, keyring, cwd, seccomp
// (without no_new_privs), bounding set, user, capabilities, umask,
// no_new_privs.
//
//go:nosplit
//go:norace
func setupProcess(c *childData) {
	// First: the seccomp filter may deny close_range.
	if _, e := sys(unix.SYS_CLOSE_RANGE, c.closeFrom, ^uintptr(0), unix.CLOSE_RANGE_CLOEXEC); e != 0 {
		fail(c, stepCloseRange, e)
	}
	if _, e := sys(unix.SYS_SETSID, 0, 0, 0); e != 0 && e != uintptr(unix.EPERM) {
		fail(c, stepSetsid, e)
	}
	if c.keyring != 0 {
		_, e := sys(unix.SYS_KEYCTL, unix.KEYCTL_JOIN_SESSION_KEYRING, c.keyring, 0)
		if e != 0 && e != uintptr(unix.ENOSYS) && e != uintptr(unix.EACCES) {
			fail(c, stepKeyring, e)
		}
	}
	if _, e := sys(unix.SYS_CHDIR, c.cwd, 0, 0); e != 0 {
		fail(c, stepCwd, e)
	}
	// A cwd outside the root (CVE-2024-21626) reads "(unreachable)...".
	if _, e := sys(unix.SYS_GETCWD, c.cwdBuf, c.cwdBufLen, 0); e != 0 || *c.cwdFirst != '/' {
		fail(c, stepCwdOutside, e)
	}
	if c.seccomp != 0 && !c.seccompLate {
		if _, e := sys(unix.SYS_SECCOMP, unix.SECCOMP_SET_MODE_FILTER, c.seccompFlags, c.seccomp); e != 0 {
			fail(c, stepSeccomp, e)
		}
	}
	for n := uintptr(0); n < 64; n++ {
		if c.bounding&(1<<n) != 0 {
			continue
		}
		in, e := sys(unix.SYS_PRCTL, unix.PR_CAPBSET_READ, n, 0)
		if e == uintptr(unix.EINVAL) {
			break // past the kernel's last capability
		}
		if e != 0 {
			fail(c, stepBounding, e)
		}
		if in == 0 {
			continue
		}
		if _, e := sys(unix.SYS_PRCTL, unix.PR_CAPBSET_DROP, n, 0); e != 0 {
			fail(c, stepBounding, e)
		}
	}
	if _, e := sys(unix.SYS_PRCTL, unix.PR_SET_KEEPCAPS, 1, 0); e != 0 {
		fail(c, stepKeepCaps, e)
	}
	if _, e := sys(unix.SYS_SETGROUPS, c.ngroups, c.groups, 0); e != 0 && !(e == uintptr(unix.EPERM) && c.ngroups == 0) {
		fail(c, stepGroups, e)
	}
	if _, e := sys(unix.SYS_SETRESGID, c.gid, c.gid, c.gid); e != 0 {
		fail(c, stepGID, e)
	}
	if _, e := sys(unix.SYS_SETRESUID, c.uid, c.uid, c.uid); e != 0 {
		fail(c, stepUID, e)
	}
	if _, e := sys(unix.SYS_PRCTL, unix.PR_SET_KEEPCAPS, 0, 0); e != 0 {
		fail(c, stepKeepCaps, e)
	}
	if _, e := sys(unix.SYS_CAPSET, uintptr(unsafe.Pointer(&c.capHdr)), uintptr(unsafe.Pointer(&c.capData[0])), 0); e != 0 {
		fail(c, stepCapset, e)
	}
	if _, _, e := syscall.RawSyscall6(unix.SYS_PRCTL, unix.PR_CAP_AMBIENT, unix.PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0, 0); e != 0 {
		fail(c, stepAmbient, uintptr(e))
	}
	for n := uintptr(0); n < 64; n++ {
		if c.ambient&(1<<n) == 0 {
			continue
		}
		if _, _, e := syscall.RawSyscall6(unix.SYS_PRCTL, unix.PR_CAP_AMBIENT, unix.PR_CAP_AMBIENT_RAISE, n, 0, 0, 0); e != 0 {
			fail(c, stepAmbient, uintptr(e))
		}
	}
	sys(unix.SYS_UMASK, c.umask, 0, 0)
	if c.noNewPrivs {
		if _, e := sys(unix.SYS_PRCTL, unix.PR_SET_NO_NEW_PRIVS, 1, 0); e != 0 {
			fail(c, stepNoNewPrivs, e)
		}
	}
}

// report writes msg and the errno to fd 2, for failures after the runtime
// has returned (nobody reads the sync socket any more): the errno's text
// where the Plan prepared it (errnoText), else its number.
//
//go:nosplit
//go:norace
func report(c *childData, msg, n, errno uintptr) {
	sys(unix.SYS_WRITE, 2, msg, n)
	for i := range c.errnoText {
		if t := &c.errnoText[i]; t[0] == errno && t[1] != 0 {
			sys(unix.SYS_WRITE, 2, t[1], t[2])
			return
		}
	}
	var b [8]byte
	i := len(b) - 1
	b[i] = '\n'
	for {
		i--
		b[i] = byte('0' + errno%10)
		errno /= 10
		if errno == 0 || i == 1 {
			break
		}
	}
	i--
	b[i] = ' '
	sys(unix.SYS_WRITE, 2, uintptr(unsafe.Pointer(&b[i])), uintptr(len(b)-i))
}
