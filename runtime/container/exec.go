package container

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"runtime/debug"
	"strconv"
	"strings"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/skiff-containers/skiff/errdefs"
	"github.com/skiff-containers/skiff/runtime/caps"
	"github.com/skiff-containers/skiff/runtime/cgroups"
	"github.com/skiff-containers/skiff/runtime/cloneinit"
	"github.com/skiff-containers/skiff/runtime/console"
	"github.com/skiff-containers/skiff/runtime/initproc"
)

// ExecOpts are the options of `exec`.
type ExecOpts struct {
	// Process replaces the container's process spec (--process); nil
	// means the container's own, with the fields below applied.
	Process *specs.Process
	Args    []string
	Env     []string // appended, KEY=VALUE
	Cwd     string
	// User "uid[:gid]"; empty keeps the container's.
	User           string
	AdditionalGids []uint32
	AddCaps        []string
	NoNewPrivs     bool
	Detach         bool
	PidFile        string
	ConsoleSocket  string
	Tty            bool
	PreserveFDs    int
	IgnorePaused   bool
	// Stdio of the process; the caller's when nil.
	Stdin, Stdout, Stderr *os.File
}

// nsProcName maps a namespace type to its name under /proc/<pid>/ns.
var nsProcName = map[specs.LinuxNamespaceType]string{
	specs.PIDNamespace:     "pid",
	specs.NetworkNamespace: "net",
	specs.MountNamespace:   "mnt",
	specs.IPCNamespace:     "ipc",
	specs.UTSNamespace:     "uts",
	specs.UserNamespace:    "user",
	specs.CgroupNamespace:  "cgroup",
	specs.TimeNamespace:    "time",
}

// execProcess works out the process spec of an exec from the container's
// and the options.
func execProcess(base *specs.Process, o *ExecOpts) (*specs.Process, error) {
	if o.Process != nil {
		p := *o.Process
		if len(p.Args) == 0 {
			return nil, fmt.Errorf("--process: args must not be empty: %w", errdefs.ErrInvalidArgument)
		}
		if p.Cwd == "" {
			p.Cwd = "/"
		}
		return &p, nil
	}
	if len(o.Args) == 0 {
		return nil, fmt.Errorf("exec: give the command to run, or --process: %w", errdefs.ErrInvalidArgument)
	}
	p := *base
	p.Args = o.Args
	p.Terminal = o.Tty
	p.Env = append(append([]string(nil), base.Env...), o.Env...)
	for _, kv := range o.Env {
		if !strings.Contains(kv, "=") {
			return nil, fmt.Errorf("--env %q: must be KEY=VALUE: %w", kv, errdefs.ErrInvalidArgument)
		}
	}
	if o.Cwd != "" {
		if !filepath.IsAbs(o.Cwd) {
			return nil, fmt.Errorf("--cwd %q: must be an absolute path: %w", o.Cwd, errdefs.ErrInvalidArgument)
		}
		p.Cwd = o.Cwd
	}
	if o.User != "" {
		uidS, gidS, hasGid := strings.Cut(o.User, ":")
		uid, err := strconv.ParseUint(uidS, 10, 32)
		if err != nil {
			return nil, fmt.Errorf("--user %q: must be uid[:gid], numeric: %w", o.User, errdefs.ErrInvalidArgument)
		}
		p.User.UID = uint32(uid)
		if hasGid {
			gid, err := strconv.ParseUint(gidS, 10, 32)
			if err != nil {
				return nil, fmt.Errorf("--user %q: must be uid[:gid], numeric: %w", o.User, errdefs.ErrInvalidArgument)
			}
			p.User.GID = uint32(gid)
		}
	}
	if len(o.AdditionalGids) > 0 {
		p.User.AdditionalGids = o.AdditionalGids
	}
	if len(o.AddCaps) > 0 {
		c := specs.LinuxCapabilities{}
		if base.Capabilities != nil {
			c = *base.Capabilities
		}
		for _, name := range o.AddCaps {
			if _, err := caps.Parse(name); err != nil {
				return nil, fmt.Errorf("--cap: %w", err)
			}
			c.Bounding = append(c.Bounding, name)
			c.Effective = append(c.Effective, name)
			c.Permitted = append(c.Permitted, name)
			c.Ambient = append(c.Ambient, name)
			c.Inheritable = append(c.Inheritable, name)
		}
		p.Capabilities = &c
	}
	if o.NoNewPrivs {
		p.NoNewPrivileges = true
	}
	return &p, nil
}

// Exec runs a new process in a running container: in all its namespaces,
// its cgroup, with the container's seccomp profile. Detached, it returns
// once the process runs; otherwise it waits and returns the exit code.
func (r *Runtime) Exec(ctx context.Context, id string, o ExecOpts) (int, error) {
	rec, err := r.mustLoad(id)
	if err != nil {
		return 0, err
	}
	st := r.status(rec)
	if st == Paused && !o.IgnorePaused {
		return 0, fmt.Errorf("cannot exec in container %q: it is paused; resume it first or use --ignore-paused: %w", id, errdefs.ErrFailedPrecondition)
	}
	if st != Paused {
		if err := CheckTransition(id, st, OpExec); err != nil {
			return 0, err
		}
	}
	p, err := execProcess(rec.Spec.Process, &o)
	if err != nil {
		return 0, err
	}
	if err := console.CheckSocket(p.Terminal, o.Detach, o.ConsoleSocket); err != nil {
		return 0, err
	}
	var relay *relay
	files := map[string]*os.File{}
	if p.Terminal {
		var conn *os.File
		if o.ConsoleSocket != "" {
			if conn, err = console.Connect(o.ConsoleSocket); err != nil {
				return 0, err
			}
			defer conn.Close()
		} else {
			if relay, err = newRelay(&conn); err != nil {
				return 0, err
			}
			defer relay.close()
		}
		files[initproc.EnvConsoleFD] = conn
	}
	s := *rec.Spec
	s.Process = p
	var linux specs.Linux
	if s.Linux != nil {
		linux = *s.Linux
	}
	s.Linux = &linux

	// The pid namespace is entered by the thread that starts the process
	// (see startInPidns), so that nsenter need not fork into it, unless a
	// time namespace needs that fork anyway.
	var req strings.Builder
	var pidns string
	var joins []cloneinit.Join
	hasTimens := false
	for _, ns := range linux.Namespaces {
		hasTimens = hasTimens || ns.Type == specs.TimeNamespace
	}
	for _, ns := range linux.Namespaces {
		path := ns.Path
		if path == "" {
			path = fmt.Sprintf("/proc/%d/ns/%s", rec.Pid, nsProcName[ns.Type])
		}
		if ns.Type == specs.PIDNamespace && !hasTimens {
			pidns = path
			continue
		}
		fmt.Fprintf(&req, "join %d %s\n", nsFlags[ns.Type], path)
		joins = append(joins, cloneinit.Join{Path: path, Flag: uintptr(nsFlags[ns.Type])})
	}
	fmt.Fprintf(&req, "unshare 0\n")

	if !o.Detach {
		if err := unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0); err != nil {
			return 0, fmt.Errorf("become child subreaper: %w", err)
		}
	}
	var sigs chan os.Signal
	if !o.Detach {
		sigs = make(chan os.Signal, 32)
		signal.Notify(sigs)
		defer signal.Stop(sigs)
	}
	// The fast way where it can (cloneinit.go): no second Go program.
	var (
		sp *spawned
		ci *clonedInit
	)
	if r.canCloneExec(&s, rec, &o) {
		sp, ci, err = r.cloneExec(rec, &s, &o, pidns, joins)
	} else {
		sp, err = r.spawn(spawnReq{
			id: id, what: "exec process", dir: "/", nsReq: req.String(), pidns: pidns, linux: &linux,
			preserveFDs: o.PreserveFDs,
			files:       files,
			stdin:       o.Stdin, stdout: o.Stdout, stderr: o.Stderr,
		})
	}
	if err != nil {
		return 0, err
	}
	defer sp.sock.Close()
	if len(rec.CgroupPaths) > 0 {
		mgr, err := cgroups.Load(rec.CgroupRoot, rec.CgroupPaths)
		if err == nil {
			err = mgr.Apply(sp.pid)
		}
		if err != nil {
			sp.kill()
			return 0, fmt.Errorf("exec in container %q: join its cgroup: %w", id, err)
		}
	}
	if ci != nil {
		err = ci.finishExec(p)
	} else {
		err = r.configureExec(sp, rec, &s, &o, files)
	}
	if err != nil {
		sp.kill()
		return 0, err
	}
	if o.PidFile != "" {
		pf, err := filepath.Abs(o.PidFile)
		if err == nil {
			err = writeFileAtomic(pf, []byte(strconv.Itoa(sp.pid)), 0o644)
		}
		if err != nil {
			sp.kill()
			return 0, fmt.Errorf("write --pid-file %s: %w", o.PidFile, err)
		}
	}
	if o.Detach {
		return 0, nil
	}
	if err := relay.start(ctx, p.Terminal, o.Stdin, o.Stdout); err != nil {
		sp.kill()
		return 0, err
	}
	code, err := waitForward(sp.pid, sigs, relay.active())
	relay.wait()
	return code, err
}

// waitForward forwards signals to pid until it exits, and returns its exit
// code as a shell would (128+N if killed by signal N). pid must be our child
// or reparented to us as subreaper. With a terminal, SIGWINCH is the
// relay's, not the process's.
func waitForward(pid int, sigs chan os.Signal, tty bool) (int, error) {
	// The wait may be long: collect garbage as usual meanwhile.
	debug.SetGCPercent(100)
	done := make(chan struct{})
	defer close(done)
	go func() {
		for {
			select {
			case s := <-sigs:
				sig, ok := s.(unix.Signal)
				if !ok || sig == unix.SIGCHLD || sig == unix.SIGURG || (tty && sig == unix.SIGWINCH) {
					continue
				}
				_ = unix.Kill(pid, sig)
			case <-done:
				return
			}
		}
	}()
	for {
		var ws unix.WaitStatus
		wpid, err := unix.Wait4(-1, &ws, 0, nil)
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil {
			return 0, fmt.Errorf("wait for pid %d: %w", pid, err)
		}
		if wpid != pid {
			continue
		}
		switch {
		case ws.Exited():
			return ws.ExitStatus(), nil
		case ws.Signaled():
			return 128 + int(ws.Signal()), nil
		}
		return 0, nil
	}
}

// configureExec sends the exec'd Go init its config and waits until the
// process is set up.
func (r *Runtime) configureExec(sp *spawned, rec *record, s *specs.Spec, o *ExecOpts, files map[string]*os.File) error {
	seccompBPF, err := r.compileSeccomp(s.Linux.Seccomp)
	if err != nil {
		return err
	}
	cfg := &initproc.Config{
		SeccompBPF:   seccompBPF,
		ID:           rec.ID,
		Bundle:       rec.Bundle,
		Rootfs:       rec.Rootfs,
		Spec:         s,
		PreserveFDs:  o.PreserveFDs,
		NoNewKeyring: true,
		Exec:         true,
	}
	if rec.SharedRootfsMount != 0 {
		cfg.ExecRoot = rec.Rootfs // hostmount.go
	}
	err = sp.configure(cfg, r.logger(), nil)
	if c := files[initproc.EnvConsoleFD]; c != nil {
		c.Close() // the process has its copy, or failed
	}
	return err
}
