package container

import (
	"errors"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/skiff-containers/skiff/errdefs"
	"github.com/skiff-containers/skiff/runtime/caps"
	"github.com/skiff-containers/skiff/runtime/cloneinit"
	"github.com/skiff-containers/skiff/runtime/initproc"
	"github.com/skiff-containers/skiff/runtime/rootfs"
	"github.com/skiff-containers/skiff/runtime/seccomp"
	"github.com/skiff-containers/skiff/runtime/selfexe"
)

// canCloneInit reports whether the container's init can start the fast way
// (runtime/cloneinit): cloned into new namespaces (newFlags), joining at most
// network, IPC, UTS and cgroup namespaces by path (joins), with a mount
// namespace of its own and pivot_root, without user or time namespaces, and
// with nothing that needs a Go program inside the container (hooks run
// there, a console, a seccomp agent, the scheduler and other per-thread
// attributes, ID-mapped mounts).
func (r *Runtime) canCloneInit(s *specs.Spec, opts *CreateOpts, newFlags uintptr, joins []cloneinit.Join, idmapped bool) bool {
	if !cloneinit.Supported || r.ExecInit || !kernelAtLeast(6, 18) {
		// 6.18 mounts procfs for another pid namespace (rootfs.ErrProcPidns).
		return false
	}
	if newFlags&unix.CLONE_NEWNS == 0 || newFlags&(unix.CLONE_NEWUSER|unix.CLONE_NEWTIME) != 0 || len(s.Linux.TimeOffsets) > 0 || opts.NoPivot || idmapped {
		return false
	}
	for _, j := range joins {
		if j.Flag&^(unix.CLONE_NEWNET|unix.CLONE_NEWIPC|unix.CLONE_NEWUTS|unix.CLONE_NEWCGROUP) != 0 {
			return false
		}
	}
	if h := s.Hooks; h != nil && len(h.Prestart)+len(h.CreateRuntime)+len(h.CreateContainer)+len(h.StartContainer) > 0 {
		return false
	}
	return clonableProcess(s, [3]*os.File{opts.Stdin, opts.Stdout, opts.Stderr})
}

// clonableProcess reports whether s.Process can run in a cloned process: no
// terminal, seccomp agent, scheduler, I/O priority, CPU affinity or
// personality (which need a Go program inside), and stdio that is either
// the runtime's own or at fd 3 or above (the clone dups it onto 0-2).
func clonableProcess(s *specs.Spec, stdio [3]*os.File) bool {
	p := s.Process
	if p.Terminal || p.Scheduler != nil || p.IOPriority != nil || p.ExecCPUAffinity != nil || s.Linux.Personality != nil {
		return false
	}
	if sc := s.Linux.Seccomp; sc != nil && sc.ListenerPath != "" {
		return false
	}
	for _, f := range stdio {
		if f != nil && f.Fd() < 3 && f != os.Stdin && f != os.Stdout && f != os.Stderr {
			return false
		}
	}
	return true
}

// clonedInit is an init started by cloneinit, and what building its
// container needs.
type clonedInit struct {
	plan  *cloneinit.Plan
	pidfd int
	// nsflags are the namespaces the building thread joins.
	nsflags uintptr
}

// cloneInit clones the container's init (see canCloneInit). The Plan is kept
// by r until the runtime exits: the init runs on its memory until execve.
func (r *Runtime) cloneInit(id string, s *specs.Spec, opts *CreateOpts, cloneflags uintptr, joins []cloneinit.Join, newCgroupNS bool, fifo *os.File, seccompBPF []byte) (*spawned, *clonedInit, error) {
	plan, err := processPlan(id, s.Process, [3]*os.File{opts.Stdin, opts.Stdout, opts.Stderr}, opts.PreserveFDs)
	if err != nil {
		return nil, nil, fmt.Errorf("container %q: %w", id, err)
	}
	plan.NewKeyring = !opts.NoNewKeyring
	plan.ReopenDevNull = rootfs.NeedsDevSetup(s)
	plan.CgroupNS = newCgroupNS
	plan.Fifo = fifo
	plan.Joins = joins
	if s.Linux.Seccomp != nil && len(seccompBPF) == 0 {
		return nil, nil, fmt.Errorf("container %q: linux.seccomp is set but no filter was compiled: %w", id, errdefs.ErrFailedPrecondition)
	}
	sp, pidfd, err := r.startPlan(plan, cloneflags, seccompBPF, "init process")
	if err != nil {
		return nil, nil, err
	}
	nsflags := cloneflags &^ unix.CLONE_NEWPID
	if newCgroupNS {
		nsflags |= unix.CLONE_NEWCGROUP
	}
	for _, j := range joins {
		nsflags |= j.Flag
	}
	return sp, &clonedInit{plan: plan, pidfd: pidfd, nsflags: nsflags}, nil
}

// build sets up the cloned init's container: the per-process limits that
// can be set from outside, then the root filesystem, sysctls and hostname
// from a thread of ours inside its namespaces, then the process itself (the
// init does that part). It returns once the init waits for start.
func (ci *clonedInit) build(rc *rootfs.Config, s *specs.Spec, bundle string, newUTS bool) error {
	defer unix.Close(ci.pidfd)
	plan := ci.plan
	if plan.CgroupNS {
		if err := plan.MakeCgroupNS(); err != nil {
			return err
		}
	}
	exe, home, err := ci.setup(rc, s, bundle, newUTS)
	if errors.Is(err, rootfs.ErrProcPidns) {
		return fmt.Errorf("container %q: %w; set SKIFF_RUNTIME_EXEC_INIT=1 to start the init as a Go program that mounts procfs from inside", plan.ID, err)
	}
	if err != nil {
		return fmt.Errorf("container %q: %w", plan.ID, err)
	}
	return plan.Go(exe, home)
}

func (ci *clonedInit) setup(rc *rootfs.Config, s *specs.Spec, bundle string, newUTS bool) (exe, home string, err error) {
	pid := rc.InitPid
	if err := initproc.SetLimits(pid, s.Process); err != nil {
		return "", "", err
	}
	var root unix.Stat_t // "/" as the thread sees it once built
	exe, home, err = onOwnThread(func() (string, string, error) {
		exe, home, err := buildInside(ci.pidfd, ci.nsflags, rc, s, bundle, newUTS)
		if err == nil {
			if err = unix.Stat("/", &root); err != nil {
				err = fmt.Errorf("stat the container's root: %w", err)
			}
		}
		return exe, home, err
	})
	if err != nil {
		return "", "", err
	}
	// pivot_root moved the init's root along with the thread's only if both
	// were the mount namespace's root; a runtime that runs chrooted would
	// leave the init on the host's tree. Refuse that.
	var st unix.Stat_t
	if err := unix.Stat("/proc/"+strconv.Itoa(pid)+"/root", &st); err != nil {
		return "", "", fmt.Errorf("stat the init's root: %w", err)
	}
	if st.Dev != root.Dev || st.Ino != root.Ino {
		return "", "", fmt.Errorf("the init process did not move into the container's root with pivot_root (is the runtime itself chrooted? set SKIFF_RUNTIME_EXEC_INIT=1): %w", errdefs.ErrFailedPrecondition)
	}
	return exe, home, nil
}

// onOwnThread runs fn on a locked thread of its own that is never unlocked:
// fn joins a container's namespaces, and the thread dies with the
// goroutine. (The Go runtime starts no thread from a locked one; it has a
// template thread for that.)
func onOwnThread(fn func() (exe, home string, err error)) (string, string, error) {
	type result struct {
		exe, home string
		err       error
	}
	done := make(chan result, 1)
	go func() {
		runtime.LockOSThread()
		var r result
		r.exe, r.home, r.err = fn()
		done <- r
	}()
	r := <-done
	return r.exe, r.home, r.err
}

// buildInside runs on a thread of its own (onOwnThread): it joins the init's
// namespaces (nsflags, through pidfd) and does what the Go init does
// between its start and its process setup, then resolves the program and
// HOME inside the new root.
func buildInside(pidfd int, nsflags uintptr, rc *rootfs.Config, s *specs.Spec, bundle string, newUTS bool) (exe, home string, err error) {
	if err := unix.Unshare(unix.CLONE_FS); err != nil {
		return "", "", fmt.Errorf("unshare the filesystem attributes of a runtime thread: %w", err)
	}
	if err := unix.Setns(pidfd, int(nsflags)); err != nil {
		return "", "", fmt.Errorf("join the init's namespaces (%#x): %w", nsflags, err)
	}
	// Relative bind sources are relative to the bundle.
	if err := unix.Chdir(bundle); err != nil {
		return "", "", fmt.Errorf("change to the bundle %s: %w", bundle, err)
	}
	if err := rootfs.Prepare(rc); err != nil {
		return "", "", err
	}
	// This thread has joined the container's namespaces.
	if err := initproc.SetSysctls(s.Linux.Sysctl); err != nil {
		return "", "", err
	}
	if err := rootfs.Finalize(rc); err != nil {
		return "", "", err
	}
	if newUTS {
		if err := initproc.SetHostname(s); err != nil {
			return "", "", err
		}
	}
	return resolveProgram(s.Process)
}

// resolveProgram runs on a thread inside the container's root: it changes
// to p.Cwd and finds p's program on the container's PATH, and HOME in its
// /etc/passwd unless p.Env sets it.
func resolveProgram(p *specs.Process) (exe, home string, err error) {
	if err := unix.Chdir(p.Cwd); err != nil {
		class := errdefs.ErrFailedPrecondition
		if errors.Is(err, unix.ENOENT) || errors.Is(err, unix.ENOTDIR) {
			class = errdefs.ErrNotFound
		}
		return "", "", fmt.Errorf("change to process.cwd %q: %w: %w", p.Cwd, err, class)
	}
	pathEnv, hasHome := "", false
	for _, kv := range p.Env {
		k, v, _ := strings.Cut(kv, "=")
		switch k {
		case "PATH":
			pathEnv = v
		case "HOME":
			hasHome = true
		}
	}
	exe, err = lookPath(p.Args[0], pathEnv)
	if err != nil {
		return "", "", fmt.Errorf("exec: %q: %w: %w", p.Args[0], err, errdefs.ErrNotFound)
	}
	if !hasHome {
		// As runc: HOME from the container's /etc/passwd, else "/".
		home = initproc.HomeDir(p.User.UID)
	}
	return exe, home, nil
}

// lookPath is os/exec.LookPath with the container's PATH, run inside its
// root and process.cwd: a name with a slash is taken as it is; a relative
// result (from "." or an empty entry in PATH) is refused, as LookPath's
// ErrDot refuses it.
func lookPath(file, pathEnv string) (string, error) {
	if strings.Contains(file, "/") {
		if err := executable(file); err != nil {
			return "", err
		}
		return file, nil
	}
	for _, dir := range filepath.SplitList(pathEnv) {
		if dir == "" {
			dir = "."
		}
		p := path.Join(dir, file)
		if executable(p) == nil {
			if !filepath.IsAbs(p) {
				return "", errors.New("cannot run executable found relative to current directory")
			}
			return p, nil
		}
	}
	return "", errors.New("executable file not found in $PATH")
}

func executable(file string) error {
	var st unix.Stat_t
	if err := unix.Stat(file, &st); err != nil {
		return err
	}
	if st.Mode&unix.S_IFMT == unix.S_IFDIR {
		return unix.EISDIR
	}
	if err := unix.Faccessat(unix.AT_FDCWD, file, unix.X_OK, unix.AT_EACCESS); err != nil {
		return err
	}
	return nil
}

// processEnv is process.env as the Go init's os.Setenv calls leave it: the
// last value of a name wins, at the place of its first; a name that is
// empty or holds "=" or a NUL byte is refused.
func processEnv(env []string) ([]string, error) {
	out := make([]string, 0, len(env))
	at := make(map[string]int, len(env))
	for _, kv := range env {
		k, _, _ := strings.Cut(kv, "=")
		if k == "" || strings.ContainsRune(kv, 0) {
			return nil, fmt.Errorf("process.env %q: %w: %w", kv, unix.EINVAL, errdefs.ErrInvalidArgument)
		}
		if !strings.Contains(kv, "=") {
			kv += "="
		}
		if i, ok := at[k]; ok {
			out[i] = kv
			continue
		}
		at[k] = len(out)
		out = append(out, kv)
	}
	return out, nil
}

// kernelAtLeast reports whether the running kernel's release is at least
// major.minor.
func kernelAtLeast(major, minor int) bool {
	var u unix.Utsname
	if unix.Uname(&u) != nil {
		return false
	}
	return releaseAtLeast(unix.ByteSliceToString(u.Release[:]), major, minor)
}

// releaseAtLeast compares a kernel release ("6.18.44-fc-v782") with
// major.minor; an unreadable release is not.
func releaseAtLeast(rel string, major, minor int) bool {
	maj, rest, _ := strings.Cut(rel, ".")
	mnr := rest
	if i := strings.IndexFunc(rest, func(r rune) bool { return r < '0' || r > '9' }); i >= 0 {
		mnr = rest[:i]
	}
	a, err1 := strconv.Atoi(maj)
	b, err2 := strconv.Atoi(mnr)
	if err1 != nil || err2 != nil {
		return false
	}
	return a > major || (a == major && b >= minor)
}

// canCloneExec reports whether a process exec'd into container rec can
// start the fast way: as canCloneInit, with the container's namespaces
// joined (none of them a user or time namespace), and a mount namespace of
// the container's own (not a root shared with the host, hostmount.go).
func (r *Runtime) canCloneExec(s *specs.Spec, rec *record, o *ExecOpts) bool {
	if !cloneinit.Supported || r.ExecInit || rec.SharedRootfsMount != 0 || !kernelAtLeast(5, 11) {
		// 5.11: close_range's CLOSE_RANGE_CLOEXEC (setns through a pidfd
		// is 5.8, CLONE_PIDFD 5.2).
		return false
	}
	mnt := false
	for _, ns := range s.Linux.Namespaces {
		switch ns.Type {
		case specs.UserNamespace, specs.TimeNamespace:
			return false
		case specs.MountNamespace:
			mnt = true
		}
	}
	return mnt && clonableProcess(s, [3]*os.File{o.Stdin, o.Stdout, o.Stderr})
}

// cloneExec clones a process into container rec's namespaces (joins, and
// the pid namespace at pidns), to run s.Process.
func (r *Runtime) cloneExec(rec *record, s *specs.Spec, o *ExecOpts, pidns string, joins []cloneinit.Join) (*spawned, *clonedInit, error) {
	plan, err := processPlan(rec.ID, s.Process, [3]*os.File{o.Stdin, o.Stdout, o.Stderr}, o.PreserveFDs)
	if err != nil {
		return nil, nil, fmt.Errorf("exec in container %q: %w", rec.ID, err)
	}
	plan.Joins = joins
	plan.PidNS = pidns
	var bpf []byte
	if s.Linux.Seccomp != nil {
		if bpf, err = r.compileSeccomp(s.Linux.Seccomp); err != nil {
			return nil, nil, err
		}
	}
	sp, pidfd, err := r.startPlan(plan, 0, bpf, "exec process")
	if err != nil {
		return nil, nil, fmt.Errorf("exec in container %q: %w", rec.ID, err)
	}
	return sp, &clonedInit{plan: plan, pidfd: pidfd}, nil
}

// finishExec sets a cloned exec process's limits, finds its program and
// HOME inside the container's root, and lets it set itself up and execve.
func (ci *clonedInit) finishExec(p *specs.Process) error {
	defer unix.Close(ci.pidfd)
	plan := ci.plan
	if err := initproc.SetLimits(plan.Pid(), p); err != nil {
		return fmt.Errorf("exec in container %q: %w", plan.ID, err)
	}
	exe, home, err := onOwnThread(func() (string, string, error) { return findProgram(ci.pidfd, p) })
	if err != nil {
		return fmt.Errorf("exec in container %q: %w", plan.ID, err)
	}
	return plan.Go(exe, home)
}

// findProgram joins the mount namespace of the process behind pidfd (on a
// thread of its own, onOwnThread) and resolves p's program and HOME there.
func findProgram(pidfd int, p *specs.Process) (exe, home string, err error) {
	if err := unix.Unshare(unix.CLONE_FS); err != nil {
		return "", "", fmt.Errorf("unshare the filesystem attributes of a runtime thread: %w", err)
	}
	if err := unix.Setns(pidfd, unix.CLONE_NEWNS); err != nil {
		return "", "", fmt.Errorf("join the container's mount namespace: %w", err)
	}
	return resolveProgram(p)
}

// trampoline opens the binary a cloned process execs its program through:
// the runtime's own, through a detached read-only mount (runtime/selfexe;
// see runtime/nsenter's skiff_trampoline for why), or Runtime.Exe.
func (r *Runtime) trampoline() (*os.File, error) {
	if r.Exe != "" {
		return os.Open(r.Exe)
	}
	return selfexe.Open(r.Root)
}

// processPlan is the Plan of a process that runs p: its user, groups,
// umask, capabilities, no_new_privs, environment (HOME comes later), and
// stdio (files at fd 3 or above replace 0-2).
func processPlan(id string, p *specs.Process, stdio [3]*os.File, preserveFDs int) (*cloneinit.Plan, error) {
	set, err := caps.FromSpec(p.Capabilities)
	if err != nil {
		return nil, err
	}
	env, err := processEnv(p.Env)
	if err != nil {
		return nil, err
	}
	plan := &cloneinit.Plan{
		ID: id, Args: p.Args, Env: env, Cwd: p.Cwd,
		UID: p.User.UID, GID: p.User.GID, Groups: p.User.AdditionalGids, Umask: 0o022,
		Caps: set, NoNewPrivs: p.NoNewPrivileges,
		PreserveFDs: preserveFDs,
	}
	if p.User.Umask != nil {
		plan.Umask = int(*p.User.Umask)
	}
	for i, f := range stdio {
		if f != nil && f.Fd() >= 3 {
			plan.Stdio[i] = f
		}
	}
	return plan, nil
}

// startPlan adds the trampoline and the compiled seccomp filter (bpf, if
// any) to plan and starts it; r keeps the Plan until the runtime exits (the
// process runs on its memory until execve). what names the process in
// errors ("init process", "exec process").
func (r *Runtime) startPlan(plan *cloneinit.Plan, cloneflags uintptr, bpf []byte, what string) (*spawned, int, error) {
	tramp, err := r.trampoline()
	if err != nil {
		return nil, -1, err
	}
	defer tramp.Close() // the clone has its copy once started
	plan.Trampoline = tramp
	if len(bpf) > 0 {
		plan.Seccomp = &seccomp.Filter{}
		if err := plan.Seccomp.UnmarshalBinary(bpf); err != nil {
			return nil, -1, err
		}
	}
	pid, pidfd, err := plan.Start(cloneflags)
	if err != nil {
		return nil, -1, err
	}
	r.clones = append(r.clones, plan)
	r.logger().Debug(what+" cloned", "id", plan.ID, "pid", pid)
	sp := &spawned{id: plan.ID, what: what, pid: pid, sock: plan.Sock()}
	sp.proc, _ = os.FindProcess(pid)
	sp.start, _, err = procStartTime(pid)
	if err != nil {
		sp.kill()
		unix.Close(pidfd)
		return nil, -1, fmt.Errorf("%s of container %q (pid %d) died at once: %w", what, plan.ID, pid, err)
	}
	return sp, pidfd, nil
}
