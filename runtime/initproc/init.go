// Package initproc owns the container's init process from the moment the Go
// runtime starts inside the container's namespaces until it execs the user
// program: it receives its Config from the parent, builds the root
// filesystem, sets hostname, sysctls, rlimits, the user, capabilities and
// seccomp, waits for `start`, and execs. It runs on the locked main thread of
// `skiff-runtime init`, because capabilities, the cgroup namespace and
// seccomp are per-thread. It must not create namespaces (runtime/nsenter did)
// nor cgroups (the parent did), and must not return to the caller on success.
package initproc

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/skiff-containers/skiff/runtime/caps"
	"github.com/skiff-containers/skiff/runtime/console"
	"github.com/skiff-containers/skiff/runtime/hooks"
	"github.com/skiff-containers/skiff/runtime/procattr"
	"github.com/skiff-containers/skiff/runtime/rootfs"
	"github.com/skiff-containers/skiff/runtime/seccomp"
	"github.com/skiff-containers/skiff/runtime/spec"
)

// Main is the body of `skiff-runtime init`. It only returns on failure, with
// the process exit code; before the parent has been told the container is
// ready, the failure is reported to the parent instead of printed.
func Main() int {
	runtime.LockOSThread()
	// Exec'd through an fd (runtime/selfexe), the process would show as
	// that fd's number in ps; name it as runc names its init.
	name := []byte("skiff:[INIT]\x00")
	_ = unix.Prctl(unix.PR_SET_NAME, uintptr(unsafePointerBytes(name)), 0, 0, 0)
	fd, err := envFD(EnvInitFD)
	if err != nil {
		fmt.Fprintf(os.Stderr, "skiff-runtime init: %v (this command is run by skiff-runtime itself, not by hand)\n", err)
		return 1
	}
	sync := os.NewFile(uintptr(fd), "sync")
	fifoFD := -1
	if os.Getenv(EnvFifoFD) != "" {
		if fifoFD, err = envFD(EnvFifoFD); err != nil {
			_ = WriteMessage(sync, MsgError, []byte(err.Error()))
			return 1
		}
	}
	var consoleSock *os.File
	if os.Getenv(EnvConsoleFD) != "" {
		cfd, err := envFD(EnvConsoleFD)
		if err != nil {
			_ = WriteMessage(sync, MsgError, []byte(err.Error()))
			return 1
		}
		consoleSock = os.NewFile(uintptr(cfd), "console-socket")
	}
	kind, payload, err := ReadMessage(sync)
	if err != nil || kind != MsgConfig {
		fmt.Fprintf(os.Stderr, "skiff-runtime init: read config from parent: %v\n", err)
		return 1
	}
	cfgp, err := ReadConfig(payload)
	if err != nil {
		_ = WriteMessage(sync, MsgError, []byte("decode init config: "+err.Error()))
		return 1
	}
	cfg := *cfgp
	if err := receiveMountFds(sync, &cfg); err != nil {
		_ = WriteMessage(sync, MsgError, []byte(err.Error()))
		return 1
	}
	if !cfg.Exec && fifoFD < 0 {
		_ = WriteMessage(sync, MsgError, []byte(EnvFifoFD+" is not set"))
		return 1
	}
	// Nothing of ours may reach hooks or the user program: the sync
	// socket and the fifo stay open here but close on exec.
	if err := closeExtraFDs(3 + cfg.PreserveFDs); err != nil {
		_ = WriteMessage(sync, MsgError, []byte(err.Error()))
		return 1
	}
	var tr tracer
	if cfg.Debug {
		tr = tracer{w: sync, last: time.Now()}
	}
	exe, err := setup(&cfg, &tr, sync, consoleSock)
	if err != nil {
		_ = WriteMessage(sync, MsgError, []byte(err.Error()))
		return 1
	}
	if err := WriteMessage(sync, MsgReady, nil); err != nil {
		return 1
	}
	_ = sync.Close()
	if err := waitAndExec(&cfg, fifoFD, exe); err != nil {
		fmt.Fprintf(os.Stderr, "skiff-runtime: container %s: %v\n", cfg.ID, err)
		var ee *exec.Error
		if errors.As(err, &ee) || errors.Is(err, unix.ENOENT) {
			return 127
		}
		return 126
	}
	return 0
}

func envFD(name string) (int, error) {
	v := os.Getenv(name)
	if v == "" {
		return -1, fmt.Errorf("%s is not set", name)
	}
	fd, err := strconv.Atoi(v)
	if err != nil || fd < 3 {
		return -1, fmt.Errorf("%s=%q is not a file descriptor", name, v)
	}
	return fd, nil
}

// setup does everything that can fail before the container counts as
// created (or, for exec, before the process counts as started), and returns
// the resolved path of the program to exec.
func setup(cfg *Config, tr *tracer, sync io.ReadWriter, consoleSock *os.File) (string, error) {
	// A session of its own, as runc gives every container process (a
	// terminal then becomes its controlling tty).
	if _, err := unix.Setsid(); err != nil && !errors.Is(err, unix.EPERM) {
		return "", fmt.Errorf("create a new session: %w", err)
	}
	if cfg.Spec.Process.Terminal && consoleSock == nil {
		return "", errors.New("process.terminal is set but the runtime passed no console socket")
	}
	if cfg.Exec && cfg.ExecRoot != "" {
		if err := enterRoot(cfg.ExecRoot); err != nil {
			return "", err
		}
	}
	if !cfg.Exec {
		if err := setupContainer(cfg, tr, sync, consoleSock); err != nil {
			return "", err
		}
	} else if cfg.Spec.Process.Terminal {
		p := cfg.Spec.Process
		if err := console.Setup(consoleSock, console.Config{Root: "/", Size: p.ConsoleSize, UID: p.User.UID, NoConsoleMount: true}); err != nil {
			return "", err
		}
	}
	exe, err := setupProcess(cfg, sync)
	tr.step("process set up")
	return exe, err
}

// enterRoot chroots into root, the root of a container that shares the
// runtime's mount namespace, and leaves the working directory at its "/".
func enterRoot(root string) error {
	if err := unix.Chdir(root); err != nil {
		return fmt.Errorf("enter the container's root %s: %w", root, err)
	}
	if err := unix.Chroot("."); err != nil {
		return fmt.Errorf("chroot into the container's root %s: %w", root, err)
	}
	return unix.Chdir("/")
}

// hookState is the state given to hooks run by the init.
func hookState(cfg *Config) *specs.State {
	return &specs.State{
		Version:     specs.Version,
		ID:          cfg.ID,
		Pid:         cfg.Pid,
		Bundle:      cfg.Bundle,
		Annotations: cfg.Spec.Annotations,
	}
}

// runCreateHooks runs, after the mounts and before pivot_root: the
// prestart and createRuntime hooks in the runtime's namespaces (the parent
// runs them while we wait), then the createContainer hooks here, in the
// container's namespaces, from the rootfs.
func runCreateHooks(cfg *Config, sync io.ReadWriter) error {
	h := cfg.Spec.Hooks
	if h == nil {
		return nil
	}
	if len(h.Prestart)+len(h.CreateRuntime) > 0 {
		if err := WriteMessage(sync, MsgHooks, nil); err != nil {
			return err
		}
		kind, _, err := ReadMessage(sync)
		if err != nil || kind != MsgResume {
			return fmt.Errorf("waiting for the runtime's createRuntime hooks: %v", err)
		}
	}
	if len(h.CreateContainer) == 0 {
		return nil
	}
	if err := unix.Chdir(cfg.Rootfs); err != nil {
		return fmt.Errorf("change to the rootfs for createContainer hooks: %w", err)
	}
	if err := hooks.Run(context.Background(), hooks.CreateContainer, h.CreateContainer, hookState(cfg)); err != nil {
		return err
	}
	return unix.Chdir(cfg.Bundle)
}

// tracer reports the time of each step to the parent when debugging.
type tracer struct {
	w    io.Writer
	last time.Time
}

func (t *tracer) step(what string) {
	if t.w == nil {
		return
	}
	now := time.Now()
	_ = WriteMessage(t.w, MsgLog, []byte(fmt.Sprintf("init: %s in %v", what, now.Sub(t.last))))
	t.last = now
}

// setupContainer builds the container around the init: cgroup namespace,
// root filesystem, sysctls, hostname.
func setupContainer(cfg *Config, tr *tracer, sync io.ReadWriter, consoleSock *os.File) error {
	s := cfg.Spec
	if cfg.NewCgroupNS {
		// After the parent moved us into the container's cgroup, so that
		// it is the root of the namespace.
		if err := unix.Unshare(unix.CLONE_NEWCGROUP); err != nil {
			return fmt.Errorf("create cgroup namespace: %w", err)
		}
	}
	rc := &rootfs.Config{
		Spec:        s,
		Rootfs:      cfg.Rootfs,
		NoPivot:     cfg.NoPivot,
		CgroupPaths: cfg.CgroupPaths,
		CgroupNS:    cfg.NewCgroupNS,
		UserNS:      cfg.UserNS,
		HostMountNS: cfg.HostMountNS,
		Shared:      cfg.SharedMountNS,
		IDMapFDs:    cfg.IDMapFDs,
		IDMapTrees:  cfg.idmapTreeFDs,
	}
	if cfg.NewMountNS || cfg.SharedMountNS {
		if err := rootfs.Prepare(rc); err != nil {
			return err
		}
		tr.step("rootfs prepared")
	}
	closed := map[int]bool{}
	for _, fds := range []map[int]int{cfg.IDMapFDs, cfg.idmapTreeFDs} {
		for _, fd := range fds {
			if !closed[fd] {
				closed[fd] = true
				_ = unix.Close(fd) // the mounts are mapped; nothing else needs them
			}
		}
	}
	if err := runCreateHooks(cfg, sync); err != nil {
		return err
	}
	// While /proc/sys is writable.
	if s.Linux != nil {
		if err := SetSysctls(s.Linux.Sysctl); err != nil {
			return err
		}
	}
	if s.Process.Terminal {
		// After the mounts, before /dev may turn read-only; needs the
		// capabilities the user switch drops.
		p := s.Process
		if err := console.Setup(consoleSock, console.Config{Root: cfg.Rootfs, Size: p.ConsoleSize, UID: p.User.UID}); err != nil {
			return err
		}
	}
	if cfg.NewMountNS || cfg.SharedMountNS {
		if err := rootfs.Finalize(rc); err != nil {
			return err
		}
		tr.step("rootfs finalized")
	}
	if cfg.NewUTSNS {
		return SetHostname(s)
	}
	return nil
}

// SetSysctls writes linux.sysctl. Sysctls act on the namespaces of the
// writing thread, whichever /proc they are written through: the caller is
// the container's init, or a runtime thread that joined its namespaces.
func SetSysctls(sysctl map[string]string) error {
	for k, v := range sysctl {
		path := filepath.Join("/proc/sys", strings.ReplaceAll(k, ".", "/"))
		if err := os.WriteFile(path, []byte(v), 0); err != nil {
			return fmt.Errorf("set linux.sysctl %s=%q: %w", k, v, err)
		}
	}
	return nil
}

// SetHostname sets s's hostname and domainname in the calling thread's UTS
// namespace (a new one of the container's).
func SetHostname(s *specs.Spec) error {
	if s.Hostname != "" {
		if err := unix.Sethostname([]byte(s.Hostname)); err != nil {
			return fmt.Errorf("set hostname %q: %w", s.Hostname, err)
		}
	}
	if s.Domainname != "" {
		if err := unix.Setdomainname([]byte(s.Domainname)); err != nil {
			return fmt.Errorf("set domainname %q: %w", s.Domainname, err)
		}
	}
	return nil
}

// SetLimits sets p's oom_score_adj and rlimits on process pid (0: the
// caller).
func SetLimits(pid int, p *specs.Process) error {
	proc := "self"
	if pid != 0 {
		proc = strconv.Itoa(pid)
	}
	if p.OOMScoreAdj != nil {
		if err := os.WriteFile("/proc/"+proc+"/oom_score_adj", []byte(strconv.Itoa(*p.OOMScoreAdj)), 0); err != nil {
			return fmt.Errorf("set process.oomScoreAdj %d: %w", *p.OOMScoreAdj, err)
		}
	}
	for _, rl := range p.Rlimits {
		res, err := spec.Rlimit(rl.Type)
		if err != nil {
			return err
		}
		lim := unix.Rlimit{Cur: rl.Soft, Max: rl.Hard}
		if err := unix.Prlimit(pid, res, &lim, nil); err != nil {
			return fmt.Errorf("set process.rlimits %s soft=%d hard=%d: %w (a hard limit can only be raised with CAP_SYS_RESOURCE)", rl.Type, rl.Soft, rl.Hard, err)
		}
	}
	return nil
}

// setupProcess sets up the process itself: keyring, OOM score, rlimits,
// environment, cwd, user, capabilities, no_new_privs and (without
// no_new_privs) seccomp.
func setupProcess(cfg *Config, sync io.ReadWriter) (string, error) {
	s := cfg.Spec
	p := s.Process
	if s.Linux != nil && s.Linux.Seccomp != nil {
		// Compiled by the runtime, or now, before the rlimits (RLIMIT_AS
		// can leave libseccomp without the memory it needs); installed
		// later.
		f := &seccomp.Filter{}
		if len(cfg.SeccompBPF) > 0 {
			if err := f.UnmarshalBinary(cfg.SeccompBPF); err != nil {
				return "", err
			}
		} else {
			// The rules only travel compiled: never run unfiltered.
			return "", errors.New("linux.seccomp is set but the runtime sent no compiled filter")
		}
		cfg.filter = f
	}
	if !cfg.NoNewKeyring {
		// A session keyring of its own, so the container can't see the host's
		// keys; kernels without keyrings say ENOSYS, which is fine.
		if _, err := unix.KeyctlJoinSessionKeyring(cfg.ID); err != nil && !errors.Is(err, unix.ENOSYS) && !errors.Is(err, unix.EACCES) {
			return "", fmt.Errorf("join a new session keyring: %w (use --no-new-keyring to keep the caller's)", err)
		}
	}
	if err := SetLimits(0, p); err != nil {
		return "", err
	}

	// The environment of the user program, also used to find it.
	os.Clearenv()
	for _, kv := range p.Env {
		k, v, _ := strings.Cut(kv, "=")
		if err := os.Setenv(k, v); err != nil {
			return "", fmt.Errorf("process.env %q: %w", kv, err)
		}
	}
	if _, ok := os.LookupEnv("HOME"); !ok {
		// As runc: HOME from the container's /etc/passwd, else "/".
		if err := os.Setenv("HOME", HomeDir(p.User.UID)); err != nil {
			return "", err
		}
	}
	if err := unix.Chdir(p.Cwd); err != nil {
		return "", fmt.Errorf("change to process.cwd %q: %w", p.Cwd, err)
	}
	// A cwd outside the root (CVE-2024-21626) shows as "(unreachable)".
	if wd, err := unix.Getwd(); err != nil || !strings.HasPrefix(wd, "/") {
		return "", fmt.Errorf("process.cwd %q is not inside the container's root", p.Cwd)
	}
	exe, err := exec.LookPath(p.Args[0])
	if err != nil {
		return "", fmt.Errorf("exec: %q: %w", p.Args[0], unwrapExecErr(err))
	}

	attrs, err := procattr.Parse(s)
	if err != nil {
		return "", err
	}
	if err := attrs.Apply(); err != nil {
		return "", err
	}
	if s.Linux != nil && s.Linux.Seccomp != nil && !p.NoNewPrivileges {
		// Without no_new_privs, loading a filter needs CAP_SYS_ADMIN,
		// which the user switch may drop: load it now, as runc does.
		if err := loadSeccomp(cfg, sync); err != nil {
			return "", err
		}
	}
	if err := switchUser(p); err != nil {
		return "", err
	}
	if p.NoNewPrivileges {
		if err := unix.Prctl(unix.PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0); err != nil {
			return "", fmt.Errorf("set process.noNewPrivileges: %w", err)
		}
	}
	if sc := s.Linux; sc != nil && sc.Seccomp != nil && p.NoNewPrivileges && sc.Seccomp.ListenerPath != "" {
		// The notify fd must reach the runtime, which hands it to the
		// agent, before the sync socket closes: load the filter now.
		if err := loadSeccomp(cfg, sync); err != nil {
			return "", err
		}
	}
	return exe, nil
}

func unwrapExecErr(err error) error {
	var ee *exec.Error
	if errors.As(err, &ee) {
		if errors.Is(ee.Err, exec.ErrNotFound) {
			return errors.New("executable file not found in $PATH")
		}
		return ee.Err
	}
	return err
}

// switchUser sets groups, gid and uid, keeping the capabilities the spec
// asks for across the switch, then applies them. All per-thread.
func switchUser(p *specs.Process) error {
	set, err := caps.FromSpec(p.Capabilities)
	if err != nil {
		return err
	}
	if err := set.DropBounding(); err != nil {
		return err
	}
	if err := unix.Prctl(unix.PR_SET_KEEPCAPS, 1, 0, 0, 0); err != nil {
		return fmt.Errorf("keep capabilities across the user switch: %w", err)
	}
	u := p.User
	groups := make([]uint32, len(u.AdditionalGids))
	copy(groups, u.AdditionalGids)
	if err := setgroups(groups); err != nil {
		return fmt.Errorf("set process.user.additionalGids %v: %w", u.AdditionalGids, err)
	}
	if _, _, e := unix.RawSyscall(unix.SYS_SETRESGID, uintptr(u.GID), uintptr(u.GID), uintptr(u.GID)); e != 0 {
		return fmt.Errorf("set process.user.gid %d: %w (is it mapped in the user namespace?)", u.GID, e)
	}
	if _, _, e := unix.RawSyscall(unix.SYS_SETRESUID, uintptr(u.UID), uintptr(u.UID), uintptr(u.UID)); e != 0 {
		return fmt.Errorf("set process.user.uid %d: %w (is it mapped in the user namespace?)", u.UID, e)
	}
	if err := unix.Prctl(unix.PR_SET_KEEPCAPS, 0, 0, 0, 0); err != nil {
		return fmt.Errorf("reset keepcaps: %w", err)
	}
	if err := set.Apply(); err != nil {
		return err
	}
	mask := 0o022
	if u.Umask != nil {
		mask = int(*u.Umask)
	}
	unix.Umask(mask)
	return nil
}

func setgroups(gids []uint32) error {
	var ptr uintptr
	if len(gids) > 0 {
		ptr = uintptr(unsafePointer(&gids[0]))
	}
	if _, _, e := unix.RawSyscall(unix.SYS_SETGROUPS, uintptr(len(gids)), ptr, 0); e != 0 {
		// A user namespace whose setgroups is denied: only an empty
		// list could be asked for anyway.
		if e == unix.EPERM && len(gids) == 0 {
			return nil
		}
		return e
	}
	return nil
}

// waitAndExec blocks until `start`, then execs the user program.
// An exec'd process (fd < 0) does not wait.
func waitAndExec(cfg *Config, fd int, exe string) error {
	if fd >= 0 {
		var b [1]byte
		var err error
		for {
			_, err = unix.Read(fd, b[:])
			if err != unix.EINTR {
				break
			}
		}
		if err != nil {
			return fmt.Errorf("wait for start on exec fifo: %w", err)
		}
		_ = unix.Close(fd)
	}
	if h := cfg.Spec.Hooks; h != nil && len(h.StartContainer) > 0 {
		if err := hooks.Run(context.Background(), hooks.StartContainer, h.StartContainer, hookState(cfg)); err != nil {
			return err
		}
	}
	s := cfg.Spec
	if s.Linux != nil && s.Linux.Seccomp != nil && s.Process.NoNewPrivileges && s.Linux.Seccomp.ListenerPath == "" {
		// The last step before exec: the filter then covers nothing of ours.
		if err := loadSeccomp(cfg, nil); err != nil {
			return err
		}
	}
	if err := closeExtraFDs(3 + cfg.PreserveFDs); err != nil {
		return err
	}
	return unix.Exec(exe, s.Process.Args, os.Environ())
}

// closeExtraFDs marks every descriptor from first on close-on-exec, so no
// fd of the runtime's reaches the container (CVE-2024-21626).
func closeExtraFDs(first int) error {
	if err := unix.CloseRange(uint(first), ^uint(0), unix.CLOSE_RANGE_CLOEXEC); err == nil {
		return nil
	}
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		return fmt.Errorf("list open fds: %w (the container needs /proc mounted)", err)
	}
	for _, e := range ents {
		fd, err := strconv.Atoi(e.Name())
		if err != nil || fd < first {
			continue
		}
		unix.CloseOnExec(fd)
	}
	return nil
}

// loadSeccomp loads the filter on this thread. A notify fd goes to the
// runtime over sync, which must then be the sync socket.
func loadSeccomp(cfg *Config, sync io.ReadWriter) error {
	fd, err := cfg.filter.Load()
	if err != nil {
		return fmt.Errorf("load linux.seccomp: %w", err)
	}
	if fd < 0 {
		return nil
	}
	defer unix.Close(fd)
	sock, ok := sync.(*os.File)
	if !ok {
		return errors.New("linux.seccomp: a notify fd was made but there is no socket to the runtime to send it on")
	}
	if err := SendFd(sock, fd); err != nil {
		return fmt.Errorf("send the seccomp notify fd to the runtime: %w", err)
	}
	return nil
}

// HomeDir looks uid up in the container's /etc/passwd (the caller is inside
// its root by now) and returns its home directory, or "/".
func HomeDir(uid uint32) string {
	b, err := os.ReadFile("/etc/passwd")
	if err != nil {
		return "/"
	}
	want := strconv.FormatUint(uint64(uid), 10)
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Split(line, ":")
		if len(f) >= 6 && f[2] == want && f[5] != "" {
			return f[5]
		}
	}
	return "/"
}
