// Package container owns the lifecycle of OCI containers on the host side:
// create (spawning the init process into its namespaces and cgroup), start,
// state, kill, delete, list and run, with the container's state kept under
// the runtime's root directory. It is the library behind skiff-runtime's
// commands. It must not run inside the container (that is runtime/initproc)
// and must not know about images, shims or the engine.
package container

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/skiff-containers/skiff/errdefs"
	"github.com/skiff-containers/skiff/runtime/cgroups"
	"github.com/skiff-containers/skiff/runtime/cloneinit"
	"github.com/skiff-containers/skiff/runtime/console"
	"github.com/skiff-containers/skiff/runtime/hooks"
	"github.com/skiff-containers/skiff/runtime/idmap"
	"github.com/skiff-containers/skiff/runtime/initproc"
	"github.com/skiff-containers/skiff/runtime/procattr"
	"github.com/skiff-containers/skiff/runtime/rootfs"
	"github.com/skiff-containers/skiff/runtime/seccomp"
	"github.com/skiff-containers/skiff/runtime/spec"
)

// DefaultRoot is where container state lives unless --root says otherwise.
const DefaultRoot = "/run/skiff-runtime"

// Runtime manages the containers whose state is under Root.
type Runtime struct {
	Root       string
	CgroupRoot string // "/sys/fs/cgroup" unless set
	// Exe is the binary run as the container's init (`Exe init`);
	// /proc/self/exe unless set.
	Exe    string
	Logger *slog.Logger
	// ExecInit starts every container's init as `skiff-runtime init` (a
	// second Go program), never the fast way of runtime/cloneinit.
	ExecInit bool

	// clones are the Plans of inits started by runtime/cloneinit: they run
	// on that memory until their execve, so it stays reachable.
	clones []*cloneinit.Plan
}

func (r *Runtime) logger() *slog.Logger {
	if r.Logger != nil {
		return r.Logger
	}
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

func (r *Runtime) cgroupRoot() string {
	if r.CgroupRoot != "" {
		return r.CgroupRoot
	}
	return "/sys/fs/cgroup"
}

// CreateOpts are the options of `create` (and of the create half of `run`).
type CreateOpts struct {
	Bundle        string
	PidFile       string
	ConsoleSocket string
	NoPivot       bool
	NoNewKeyring  bool
	PreserveFDs   int
	// Stdio of the container; the caller's when nil.
	Stdin, Stdout, Stderr *os.File
	// consoleConn: `run` in the foreground receives the pty master itself
	// on this socket instead of a --console-socket.
	consoleConn *os.File
}

var nsFlags = map[specs.LinuxNamespaceType]int{
	specs.PIDNamespace:     unix.CLONE_NEWPID,
	specs.NetworkNamespace: unix.CLONE_NEWNET,
	specs.MountNamespace:   unix.CLONE_NEWNS,
	specs.IPCNamespace:     unix.CLONE_NEWIPC,
	specs.UTSNamespace:     unix.CLONE_NEWUTS,
	specs.UserNamespace:    unix.CLONE_NEWUSER,
	specs.CgroupNamespace:  unix.CLONE_NEWCGROUP,
	specs.TimeNamespace:    unix.CLONE_NEWTIME,
}

// checkSupported refuses what a valid spec may ask but this runtime can't
// do yet, instead of ignoring it.
func checkSupported(s *specs.Spec, opts *CreateOpts, log *slog.Logger) error {
	if _, err := procattr.Parse(s); err != nil {
		return err
	}
	if err := CheckAppArmor(s.Process.ApparmorProfile, log); err != nil {
		return err
	}
	if s.Process.SelinuxLabel != "" || (s.Linux != nil && s.Linux.MountLabel != "") {
		if _, err := os.Stat("/sys/fs/selinux/enforce"); err == nil {
			return fmt.Errorf("process.selinuxLabel / linux.mountLabel: SELinux labels are not supported by this skiff-runtime, and running unlabelled on an SELinux host would be a silent downgrade; remove them or use runc: %w", errdefs.ErrNotImplemented)
		}
		log.Warn("process.selinuxLabel and linux.mountLabel are ignored: SELinux is not enabled on this host")
	}
	if err := console.CheckSocket(s.Process.Terminal, opts.consoleConn == nil, opts.ConsoleSocket); err != nil {
		return err
	}
	if s.Linux != nil && s.Linux.Seccomp != nil {
	}
	return nil
}

// compileSeccomp compiles linux.seccomp once per profile and host: the BPF
// program is kept in the runtime root as .seccomp-<key>, keyed by the
// profile, libseccomp, the kernel and the architecture
// (seccomp.CacheKey), since compiling a profile like Docker's takes tens of
// milliseconds. It returns nil when seccomp is off.
func (r *Runtime) compileSeccomp(sc *specs.LinuxSeccomp) ([]byte, error) {
	if sc == nil {
		return nil, nil
	}
	key, err := seccomp.CacheKey(sc)
	if err != nil {
		return nil, err
	}
	path := filepath.Join(r.Root, ".seccomp-"+key)
	if b, err := os.ReadFile(path); err == nil {
		var f seccomp.Filter
		if f.UnmarshalBinary(b) == nil {
			return b, nil
		}
		_ = os.Remove(path) // corrupt: compile again
	}
	f, err := seccomp.Compile(sc)
	if err != nil {
		return nil, fmt.Errorf("config.json: linux.seccomp: %w", err)
	}
	b, err := f.MarshalBinary()
	if err != nil {
		return nil, err
	}
	if err := writeFileAtomic(path, b, 0o600); err != nil {
		r.logger().Warn("cannot cache the compiled seccomp filter", "path", path, "err", err)
	}
	return b, nil
}

// CheckAppArmor decides what to do with a requested AppArmor profile: this
// runtime does not apply profiles, so where AppArmor is enabled a profile is
// refused (running unconfined instead would be a silent downgrade); where
// it is not, the profile could not apply anyway and is ignored with a
// warning, as runc ignores it.
func CheckAppArmor(profile string, log *slog.Logger) error {
	if profile == "" {
		return nil
	}
	if apparmorEnabled() {
		return fmt.Errorf("AppArmor profile %q: applying AppArmor profiles is not supported by this skiff-runtime, and running unconfined instead would be a silent downgrade; remove the profile or use runc: %w", profile, errdefs.ErrNotImplemented)
	}
	log.Warn("AppArmor profile ignored: AppArmor is not enabled on this host", "profile", profile)
	return nil
}

// apparmorEnabled reports whether the kernel has AppArmor on.
func apparmorEnabled() bool {
	b, err := os.ReadFile("/sys/module/apparmor/parameters/enabled")
	return err == nil && strings.HasPrefix(string(b), "Y")
}

// Create makes container id from the bundle: its init process waits inside
// the container's namespaces and cgroup for Start. On failure nothing is left
// behind: no state dir, cgroup or process.
func (r *Runtime) Create(ctx context.Context, id string, opts CreateOpts) (err error) {
	_, err = r.create(ctx, id, opts)
	return err
}

func (r *Runtime) create(ctx context.Context, id string, opts CreateOpts) (_ *record, retErr error) {
	log := r.logger().With("id", id)
	log.Debug("create")
	if err := spec.ValidateID(id); err != nil {
		return nil, err
	}
	bundle, err := filepath.Abs(opts.Bundle)
	if err != nil {
		return nil, fmt.Errorf("bundle %q: %w", opts.Bundle, err)
	}
	s, err := spec.Load(bundle)
	if err != nil {
		return nil, err
	}
	if err := spec.Validate(s, bundle); err != nil {
		return nil, err
	}
	if err := checkSupported(s, &opts, log); err != nil {
		return nil, err
	}
	if s.Linux == nil {
		s.Linux = &specs.Linux{}
	}

	if err := os.MkdirAll(r.Root, 0o700); err != nil {
		return nil, fmt.Errorf("create runtime root %s: %w", r.Root, err)
	}
	seccompBPF, err := r.compileSeccomp(s.Linux.Seccomp)
	if err != nil {
		return nil, err
	}
	dir := r.dir(id)
	if err := os.Mkdir(dir, 0o711); err != nil {
		if errors.Is(err, os.ErrExist) {
			return nil, fmt.Errorf("container %q already exists in %s; delete it first or choose another id: %w", id, r.Root, errdefs.ErrAlreadyExists)
		}
		return nil, fmt.Errorf("create state dir for container %q: %w", id, err)
	}
	var (
		sp  *spawned
		mgr cgroups.Manager
		// sharedRootfs and sharedRootfsMount are the runtime's bind of the
		// rootfs for a container without a mount namespace (hostmount.go).
		sharedRootfs      string
		sharedRootfsMount uint64
	)
	defer func() {
		if retErr == nil {
			return
		}
		if sp != nil {
			sp.kill()
		}
		// After the init is gone: it can no longer mount under the bind.
		if sharedRootfsMount != 0 {
			if err := detachSharedRootfs(sharedRootfs, sharedRootfsMount); err != nil {
				log.Warn("detach the container's root after failed create", "err", err)
			}
		}
		if mgr != nil {
			if err := mgr.Destroy(); err != nil {
				log.Warn("remove cgroup after failed create", "err", err)
			}
		}
		if err := os.RemoveAll(dir); err != nil {
			log.Warn("remove state dir after failed create", "err", err)
		}
	}()

	log.Debug("spec loaded")
	fifoPath := filepath.Join(dir, fifoFile)
	if err := unix.Mkfifo(fifoPath, 0o622); err != nil {
		return nil, fmt.Errorf("create exec fifo for container %q: %w", id, err)
	}
	fifo, err := os.OpenFile(fifoPath, os.O_RDWR|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("open exec fifo for container %q: %w", id, err)
	}
	defer fifo.Close()

	// Namespaces: joins and new ones for nsenter; the cgroup namespace is
	// made by the Go init once it is in its cgroup.
	var (
		req                strings.Builder
		unshare            int
		newCgroupNS        bool
		newMountNS, newUTS bool
		newPidNS, userNS   bool
		joins              []cloneinit.Join
	)
	for _, ns := range s.Linux.Namespaces {
		flag := nsFlags[ns.Type]
		if ns.Path != "" {
			fmt.Fprintf(&req, "join %d %s\n", flag, ns.Path)
			joins = append(joins, cloneinit.Join{Path: ns.Path, Flag: uintptr(flag)})
			switch ns.Type {
			case specs.UserNamespace:
				userNS = true
			case specs.MountNamespace:
				// As runc: the root is built inside the joined namespace.
				newMountNS = true
			}
			continue
		}
		unshare |= flag
		switch ns.Type {
		case specs.CgroupNamespace:
			newCgroupNS = true
		case specs.MountNamespace:
			newMountNS = true
		case specs.UTSNamespace:
			newUTS = true
		case specs.PIDNamespace:
			newPidNS = true
		case specs.UserNamespace:
			userNS = true
		}
	}
	if !newMountNS && userNS {
		// The kernel lets a new user namespace mount nothing in the
		// runtime's mount namespace.
		return nil, fmt.Errorf("linux.namespaces: a container with a user namespace needs a mount namespace of its own to build its root in; add {\"type\": \"mount\"}: %w", errdefs.ErrInvalidArgument)
	}
	// Without namespaces to join first, a user namespace (its id maps are
	// written between unsharing it and the rest) or a time namespace (its
	// offsets are written before its first process), the init is cloned
	// straight into its new namespaces: nsenter then has nothing to do, and
	// there is no intermediate process to fork, reap and fault in.
	newFlags := uintptr(unshare)
	var cloneflags uintptr
	if req.Len() == 0 && unshare&(unix.CLONE_NEWUSER|unix.CLONE_NEWTIME) == 0 {
		cloneflags = uintptr(unshare &^ unix.CLONE_NEWCGROUP)
		unshare &^= int(cloneflags)
	}
	fmt.Fprintf(&req, "unshare %d\n", unshare)
	for clock, off := range s.Linux.TimeOffsets {
		fmt.Fprintf(&req, "timens %s %d %d\n", clock, off.Secs, off.Nanosecs)
	}

	// The cgroup is made and configured while the init starts; the init
	// is moved into it once its pid is known.
	res := effectiveResources(s.Linux)
	type cgResult struct {
		mgr cgroups.Manager
		err error
	}
	cgDone := make(chan cgResult, 1)
	go func() {
		m, err := cgroups.New(cgroups.Config{Root: r.cgroupRoot(), Path: s.Linux.CgroupsPath, ID: id, Resources: res})
		if err == nil {
			if err = m.Apply(-1); err == nil {
				err = m.Set(res)
			}
		}
		cgDone <- cgResult{m, err}
	}()
	defer func() {
		// On every path, take over what the goroutine made, so that the
		// cleanup above (which runs after this) kills the init and then
		// removes the cgroup.
		if cgDone != nil {
			mgr = (<-cgDone).mgr
		}
	}()
	files := map[string]*os.File{initproc.EnvFifoFD: fifo}
	if s.Process.Terminal {
		cs := opts.consoleConn
		if cs == nil {
			if cs, err = console.Connect(opts.ConsoleSocket); err != nil {
				return nil, err
			}
			defer cs.Close()
		}
		files[initproc.EnvConsoleFD] = cs
	}
	// ID-mapped mounts: a user namespace fd per distinct mapping, made
	// here. Without a user namespace of its own, the init maps the mounts
	// with them itself; with one, it may not, and the runtime maps clones
	// of the sources once the init's mount namespace exists and passes
	// those instead (idmap.OpenTrees, below).
	idmapFiles, err := idmap.ForMounts(s)
	if err != nil {
		return nil, err
	}
	defer idmap.CloseAll(idmapFiles)
	var extra []*os.File
	extraIndex := map[*os.File]int{} // a file shared by several mounts is passed once
	for _, f := range idmapFiles {
		if _, ok := extraIndex[f]; !ok && !userNS {
			extraIndex[f] = len(extra)
			extra = append(extra, f)
		}
	}
	started := time.Now()
	// The fast way where it can: no second Go program (cloneinit.go).
	var ci *clonedInit
	if r.canCloneInit(s, &opts, newFlags, joins, len(idmapFiles) > 0) {
		sp, ci, err = r.cloneInit(id, s, &opts, newFlags&^unix.CLONE_NEWCGROUP, joins, newCgroupNS, fifo, seccompBPF)
	} else {
		sp, err = r.spawn(spawnReq{
			extra: extra,
			id:    id, what: "init process", dir: bundle, nsReq: req.String(), cloneflags: cloneflags, linux: s.Linux,
			preserveFDs: opts.PreserveFDs,
			files:       files,
			stdin:       opts.Stdin, stdout: opts.Stdout, stderr: opts.Stderr,
		})
	}
	if err != nil {
		return nil, err
	}
	defer sp.sock.Close()
	pid := sp.pid
	log.Debug("namespaces entered", "pid", pid, "took", time.Since(started))

	cg := <-cgDone
	cgDone = nil
	mgr = cg.mgr
	if cg.err != nil {
		return nil, cg.err
	}
	if err := mgr.Apply(pid); err != nil {
		return nil, err
	}

	log.Debug("cgroup set up", "took", time.Since(started))
	rootfsPath := spec.RootfsPath(s, bundle)
	if !newMountNS {
		if sharedRootfs, sharedRootfsMount, err = bindSharedRootfs(rootfsPath); err != nil {
			return nil, fmt.Errorf("container %q: %w", id, err)
		}
		rootfsPath = sharedRootfs
	}
	if ci != nil {
		hostNS, err := os.Readlink("/proc/self/ns/mnt")
		if err != nil {
			return nil, fmt.Errorf("read the runtime's mount namespace: %w", err)
		}
		rc := &rootfs.Config{Spec: s, Rootfs: rootfsPath, CgroupPaths: mgr.Paths(), CgroupNS: newCgroupNS, HostMountNS: hostNS, InitPid: pid}
		if err := ci.build(rc, s, bundle, newUTS); err != nil {
			return nil, err
		}
	} else {
		cfg := &initproc.Config{
			ID:            id,
			Bundle:        bundle,
			Rootfs:        rootfsPath,
			Spec:          s,
			NoPivot:       opts.NoPivot,
			NoNewKeyring:  opts.NoNewKeyring,
			PreserveFDs:   opts.PreserveFDs,
			CgroupPaths:   mgr.Paths(),
			NewMountNS:    newMountNS,
			SharedMountNS: !newMountNS,
			NewUTSNS:      newUTS,
			NewCgroupNS:   newCgroupNS,
			UserNS:        userNS,
			SeccompBPF:    seccompBPF,
		}
		switch {
		case len(idmapFiles) > 0 && userNS:
			trees, err := idmap.OpenTrees("/proc/"+strconv.Itoa(pid)+"/ns/mnt", bundle, s, idmapFiles)
			if err != nil {
				return nil, fmt.Errorf("container %q: %w", id, err)
			}
			defer idmap.CloseAll(trees) // the init has its copies once configured
			sp.idmapTrees = trees
			for i := range trees {
				cfg.IDMapTrees = append(cfg.IDMapTrees, i)
			}
			sort.Ints(cfg.IDMapTrees)
			log.Debug("ID-mapped trees made", "count", len(trees), "took", time.Since(started))
		case len(idmapFiles) > 0:
			cfg.IDMapFDs = map[int]int{}
			for i, f := range idmapFiles {
				cfg.IDMapFDs[i] = sp.extraFDs[extraIndex[f]]
			}
		}
		if cfg.HostMountNS, err = os.Readlink("/proc/self/ns/mnt"); err != nil {
			return nil, fmt.Errorf("read the runtime's mount namespace: %w", err)
		}
		onHooks := func() error {
			// prestart was defined as running "after the start operation is
			// called": its state says created, as crun's does and as the OCI
			// validation suite expects; createRuntime runs while creating.
			st := func(status specs.ContainerState) *specs.State {
				return &specs.State{Version: specs.Version, ID: id, Status: status, Pid: pid, Bundle: bundle, Annotations: s.Annotations}
			}
			if err := hooks.Run(ctx, hooks.Prestart, s.Hooks.Prestart, st(specs.StateCreated)); err != nil {
				return err
			}
			return hooks.Run(ctx, hooks.CreateRuntime, s.Hooks.CreateRuntime, st(specs.StateCreating))
		}
		if err := sp.configure(cfg, log, onHooks); err != nil {
			return nil, err
		}
	}
	log.Debug("init ready", "took", time.Since(started))

	rec := &record{
		OCIVersion:        specs.Version,
		ID:                id,
		Bundle:            bundle,
		Rootfs:            rootfsPath,
		Pid:               pid,
		InitStartTime:     sp.start,
		Created:           time.Now().UTC(),
		Annotations:       s.Annotations,
		CgroupRoot:        r.cgroupRoot(),
		CgroupPaths:       mgr.Paths(),
		NewPidNS:          newPidNS,
		SharedRootfsMount: sharedRootfsMount,
		Spec:              s,
	}
	if err := r.writeRecord(rec); err != nil {
		return nil, fmt.Errorf("write state of container %q: %w", id, err)
	}
	if opts.PidFile != "" {
		pf, err := filepath.Abs(opts.PidFile)
		if err == nil {
			err = writeFileAtomic(pf, []byte(strconv.Itoa(pid)), 0o644)
		}
		if err != nil {
			return nil, fmt.Errorf("write --pid-file %s: %w", opts.PidFile, err)
		}
	}
	log.Debug("created", "pid", pid, "took", time.Since(started))
	return rec, nil
}

func orStd(f, def *os.File) *os.File {
	if f != nil {
		return f
	}
	return def
}

// classifyInitError gives the init's error, which crossed the socket as text,
// its class back.
func classifyInitError(msg string) error {
	switch {
	case strings.Contains(msg, "not found in $PATH"), strings.Contains(msg, "no such file or directory"):
		return errdefs.ErrNotFound
	case strings.Contains(msg, "refused") || strings.Contains(msg, "invalid argument"):
		return errdefs.ErrInvalidArgument
	}
	return errdefs.ErrFailedPrecondition
}

func writeIDMaps(pid int, l *specs.Linux) error {
	write := func(file string, field string, maps []specs.LinuxIDMapping) error {
		var b strings.Builder
		for _, m := range maps {
			fmt.Fprintf(&b, "%d %d %d\n", m.ContainerID, m.HostID, m.Size)
		}
		path := fmt.Sprintf("/proc/%d/%s", pid, file)
		if err := os.WriteFile(path, []byte(b.String()), 0); err != nil {
			return fmt.Errorf("the kernel refused %s %q: %w; mappings must not overlap and the host ranges must be valid: %w",
				field, strings.TrimSpace(strings.ReplaceAll(b.String(), "\n", ", ")), err, errdefs.ErrInvalidArgument)
		}
		return nil
	}
	if err := write("uid_map", "linux.uidMappings", l.UIDMappings); err != nil {
		return err
	}
	return write("gid_map", "linux.gidMappings", l.GIDMappings)
}

// Start releases a created container's init to exec the user program.
func (r *Runtime) Start(ctx context.Context, id string) error {
	rec, err := r.mustLoad(id)
	if err != nil {
		return err
	}
	if err := CheckTransition(id, r.status(rec), OpStart); err != nil {
		return err
	}
	fifoPath := filepath.Join(r.dir(id), fifoFile)
	f, err := os.OpenFile(fifoPath, os.O_WRONLY|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
	if err != nil {
		if errors.Is(err, unix.ENXIO) {
			return fmt.Errorf("start container %q: its init process is gone: %w", id, errdefs.ErrFailedPrecondition)
		}
		return fmt.Errorf("start container %q: open exec fifo: %w", id, err)
	}
	defer f.Close()
	if _, err := f.Write([]byte{0}); err != nil {
		return fmt.Errorf("start container %q: %w", id, err)
	}
	if err := os.Remove(fifoPath); err != nil {
		return fmt.Errorf("start container %q: remove exec fifo: %w", id, err)
	}
	if h := rec.Spec.Hooks; h != nil && len(h.Poststart) > 0 {
		// A failing poststart hook is only a warning (runtime-spec).
		if err := hooks.RunAll(ctx, hooks.Poststart, h.Poststart, r.hookState(rec, specs.StateRunning)); err != nil {
			r.logger().Warn("poststart hook failed", "id", id, "err", err)
		}
	}
	return nil
}

func (r *Runtime) hookState(rec *record, status specs.ContainerState) *specs.State {
	pid := rec.Pid
	if status == specs.StateStopped {
		pid = 0 // as `state` says of a stopped container
	}
	return &specs.State{Version: specs.Version, ID: rec.ID, Status: status, Pid: pid, Bundle: rec.Bundle, Annotations: rec.Annotations}
}

func (r *Runtime) mustLoad(id string) (*record, error) {
	if err := spec.ValidateID(id); err != nil {
		return nil, err
	}
	rec, err := r.load(id)
	if errors.Is(err, errCreating) {
		return nil, fmt.Errorf("container %q is still being created: %w", id, errdefs.ErrFailedPrecondition)
	}
	return rec, err
}

// State returns the container's state as runc's `state` prints it.
func (r *Runtime) State(ctx context.Context, id string) (*State, error) {
	if err := spec.ValidateID(id); err != nil {
		return nil, err
	}
	rec, err := r.load(id)
	if errors.Is(err, errCreating) {
		return &State{OCIVersion: specs.Version, ID: id, Status: Creating}, nil
	}
	if err != nil {
		return nil, err
	}
	return r.toState(rec), nil
}

// List returns the state of every container under the root, by id.
func (r *Runtime) List(ctx context.Context) ([]*State, error) {
	ents, err := os.ReadDir(r.Root)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, nil
		}
		return nil, fmt.Errorf("list containers in %s: %w", r.Root, err)
	}
	var out []*State
	for _, e := range ents {
		if !e.IsDir() {
			continue
		}
		rec, err := r.load(e.Name())
		if err != nil {
			if errors.Is(err, errCreating) {
				out = append(out, &State{OCIVersion: specs.Version, ID: e.Name(), Status: Creating, Owner: r.owner(e.Name())})
			}
			continue
		}
		st := r.toState(rec)
		st.Owner = r.owner(e.Name())
		out = append(out, st)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out, nil
}

// Kill sends sig to the container's init, or with all to every process in
// its cgroup.
func (r *Runtime) Kill(ctx context.Context, id string, sig unix.Signal, all bool) error {
	rec, err := r.mustLoad(id)
	if err != nil {
		return err
	}
	if err := CheckTransition(id, r.status(rec), OpKill); err != nil {
		return err
	}
	if !all {
		return signalInit(rec, sig)
	}
	return signalAll(rec, sig)
}

func signalAll(rec *record, sig unix.Signal) error {
	mgr, err := cgroups.Load(rec.CgroupRoot, rec.CgroupPaths)
	if err != nil {
		return err
	}
	pids, err := mgr.Pids()
	if err != nil {
		return fmt.Errorf("list processes of container %q: %w", rec.ID, err)
	}
	for _, p := range pids {
		if err := unix.Kill(p, sig); err != nil && !errors.Is(err, unix.ESRCH) {
			return fmt.Errorf("send %s to pid %d of container %q: %w", unix.SignalName(sig), p, rec.ID, err)
		}
	}
	return nil
}

func frozen(rec *record) bool {
	if len(rec.CgroupPaths) == 0 {
		return false
	}
	mgr, err := cgroups.Load(rec.CgroupRoot, rec.CgroupPaths)
	if err != nil {
		return false
	}
	st, err := mgr.State()
	return err == nil && st == cgroups.Frozen
}

// Delete removes a container: its state, its cgroup, and, for a created
// container or with force, its processes.
func (r *Runtime) Delete(ctx context.Context, id string, force bool) error {
	if err := spec.ValidateID(id); err != nil {
		return err
	}
	rec, err := r.load(id)
	if errors.Is(err, errCreating) {
		if !force {
			return fmt.Errorf("container %q is still being created (or its create crashed); use delete --force: %w", id, errdefs.ErrFailedPrecondition)
		}
		return r.removeDir(id)
	}
	if err != nil {
		return err
	}
	st := r.status(rec)
	if err := CheckTransition(id, st, OpDelete); err != nil && !force {
		return err
	}
	return r.destroy(rec, st)
}

// destroy kills what is left of the container, removes its cgroup and
// state, and runs its poststop hooks.
func (r *Runtime) destroy(rec *record, st Status) error {
	if err := r.teardown(rec, st); err != nil {
		return err
	}
	if h := rec.Spec.Hooks; h != nil && len(h.Poststop) > 0 {
		// A failing poststop hook is only a warning (runtime-spec).
		if err := hooks.RunAll(context.Background(), hooks.Poststop, h.Poststop, r.hookState(rec, specs.StateStopped)); err != nil {
			r.logger().Warn("poststop hook failed", "id", rec.ID, "err", err)
		}
	}
	return nil
}

func (r *Runtime) teardown(rec *record, st Status) error {
	if st != Stopped {
		if st == Paused {
			if mgr, err := cgroups.Load(rec.CgroupRoot, rec.CgroupPaths); err == nil {
				_ = mgr.Thaw()
			}
		}
		if err := unix.Kill(rec.Pid, unix.SIGKILL); err != nil && !errors.Is(err, unix.ESRCH) {
			return fmt.Errorf("kill init of container %q: %w", rec.ID, err)
		}
		if !waitGone(rec.Pid, rec.InitStartTime, 10*time.Second) {
			return fmt.Errorf("init of container %q (pid %d) did not die after SIGKILL within 10s", rec.ID, rec.Pid)
		}
	}
	if len(rec.CgroupPaths) > 0 {
		mgr, err := cgroups.Load(rec.CgroupRoot, rec.CgroupPaths)
		if err != nil {
			return err
		}
		if !rec.NewPidNS {
			// Without a pid namespace, the init's death leaves its children.
			if pids, err := mgr.Pids(); err == nil {
				for _, p := range pids {
					_ = unix.Kill(p, unix.SIGKILL)
				}
			}
		}
		if err := mgr.Destroy(); err != nil {
			return fmt.Errorf("delete container %q: %w", rec.ID, err)
		}
	}
	if rec.SharedRootfsMount != 0 {
		if err := detachSharedRootfs(rec.Rootfs, rec.SharedRootfsMount); err != nil {
			return fmt.Errorf("delete container %q: %w", rec.ID, err)
		}
	}
	return r.removeDir(rec.ID)
}

func (r *Runtime) removeDir(id string) error {
	if err := os.RemoveAll(r.dir(id)); err != nil {
		return fmt.Errorf("remove state of container %q: %w", id, err)
	}
	return nil
}

// Run creates and starts a container. Detached, it returns once the
// container runs. In the foreground it forwards signals to the container,
// waits for it, deletes it, and returns its exit code (128+N if killed by
// signal N), as `runc run` does.
func (r *Runtime) Run(ctx context.Context, id string, opts CreateOpts, detach bool) (int, error) {
	if detach {
		if err := r.Create(ctx, id, opts); err != nil {
			return 0, err
		}
		if err := r.Start(ctx, id); err != nil {
			_ = r.Delete(ctx, id, true)
			return 0, err
		}
		return 0, nil
	}
	// Become the subreaper so the init, whose parent exits when nsenter
	// forks (when it is not cloned straight into its namespaces), is
	// reparented to us and we can wait for it.
	if err := unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0); err != nil {
		return 0, fmt.Errorf("become child subreaper: %w", err)
	}
	sigs := make(chan os.Signal, 32)
	signal.Notify(sigs)
	defer signal.Stop(sigs)

	relay, err := newRelay(&opts.consoleConn)
	if err != nil {
		return 0, err
	}
	defer relay.close()
	c, err := r.create(ctx, id, opts)
	opts.consoleConn.Close() // the init has its copy, or failed
	if err != nil {
		return 0, err
	}
	if err := relay.start(ctx, c.Spec.Process.Terminal, opts.Stdin, opts.Stdout); err != nil {
		_ = r.Delete(ctx, id, true)
		return 0, err
	}
	if err := r.Start(ctx, id); err != nil {
		_ = r.Delete(ctx, id, true)
		return 0, err
	}
	r.logger().Debug("started", "id", id)
	code, err := waitForward(c.Pid, sigs, relay.active())
	relay.wait()
	if err != nil {
		return 0, fmt.Errorf("container %q: %w", id, err)
	}
	r.logger().Debug("container exited", "id", id, "code", code)
	if err := r.destroy(c, Stopped); err != nil {
		return code, err
	}
	if log := r.logger(); log.Enabled(ctx, slog.LevelDebug) {
		var self, children unix.Rusage
		_ = unix.Getrusage(unix.RUSAGE_SELF, &self)
		_ = unix.Getrusage(unix.RUSAGE_CHILDREN, &children)
		ms := func(tv unix.Timeval) float64 { return float64(tv.Sec)*1e3 + float64(tv.Usec)/1e3 }
		log.Debug("container deleted", "id", id,
			"runtime_user_ms", ms(self.Utime), "runtime_sys_ms", ms(self.Stime),
			"children_user_ms", ms(children.Utime), "children_sys_ms", ms(children.Stime),
			"runtime_minflt", self.Minflt, "children_minflt", children.Minflt)
		var mem runtime.MemStats
		runtime.ReadMemStats(&mem)
		log.Debug("runtime memory", "id", id, "total_alloc_kb", mem.TotalAlloc/1024, "mallocs", mem.Mallocs, "heap_sys_kb", mem.HeapSys/1024, "stack_sys_kb", mem.StackSys/1024)
	}
	return code, nil
}
