// Package shimbench measures the idle memory of per-container monitors:
// skiff-shim (driving skiff-runtime and runc), conmon as podman runs it, and
// containerd-shim-runc-v2 under a private containerd. It starts N idle
// busybox containers (`sleep 3600`) under each, waits for them to settle,
// reads every monitor's /proc/PID/smaps_rollup, and removes everything it
// made: containers, daemons, temporary directories, cgroups.
//
// The program is bench/cmd/shimbench; it needs root, runc, podman (with
// conmon), containerd and ctr, and the host's static busybox.
package shimbench

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/skiff-containers/skiff/bench/bundle"
	"github.com/skiff-containers/skiff/bench/peers"
	"github.com/skiff-containers/skiff/bench/runtimebench"
	"github.com/skiff-containers/skiff/internal/imagebuild"
	"github.com/skiff-containers/skiff/shim/client"
)

// Runtime is an OCI runtime that skiff-shim drives.
type Runtime struct{ Name, Bin string }

// DefaultSettle is the default idle time before the reading: longer than
// the two minutes after which the Go runtime forces a GC in an idle
// process (skiff-shim and containerd-shim-runc-v2 are Go programs), so
// that the reading includes what that GC maps.
const DefaultSettle = 150 * time.Second

// Config says what to measure.
type Config struct {
	// N is the number of containers per monitor kind.
	N int
	// Shim is the skiff-shim binary; empty leaves skiff-shim out.
	Shim string
	// ShimRuntimes are the runtimes skiff-shim is measured with.
	ShimRuntimes []Runtime
	// Runc is the runtime podman and containerd run (and the one whose
	// version is reported).
	Runc string
	// Podman and Containerd select the other monitors.
	Podman, Containerd bool
	// Settle is how long the containers idle before the reading.
	Settle time.Duration
	// WorkDir holds all temporary files; it must be short enough for the
	// shims' sockets (below 60 bytes is safe).
	WorkDir string
	// Log gets progress lines; nil discards them.
	Log io.Writer
}

// Result is the memory of one kind of monitor.
type Result struct {
	Monitor string // "skiff-shim", "conmon", "containerd-shim-runc-v2"
	Runtime string // the OCI runtime it drove
	Samples []Mem
	Summary Summary
}

// Report is the outcome of Run.
type Report struct {
	Date     time.Time
	Machine  runtimebench.Machine
	N        int
	Settle   time.Duration
	Versions map[string]string // monitor or runtime name → version line
	Results  []Result
}

// Run measures the monitors cfg selects. It becomes a child subreaper so
// that the daemonized monitors are reparented to it and it can make sure
// none survives.
func Run(ctx context.Context, cfg Config) (rep *Report, err error) {
	if cfg.N <= 0 {
		return nil, errors.New("shimbench: N must be positive")
	}
	if cfg.Log == nil {
		cfg.Log = io.Discard
	}
	if cfg.Settle <= 0 {
		cfg.Settle = DefaultSettle
	}
	if err := unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0); err != nil {
		return nil, fmt.Errorf("become a child subreaper: %w", err)
	}
	rep = &Report{Date: time.Now().UTC(), Machine: runtimebench.ReadMachine(), N: cfg.N, Settle: cfg.Settle, Versions: map[string]string{}}
	rootfs := filepath.Join(cfg.WorkDir, "rootfs")
	if err := bundle.BusyboxRootfs(rootfs); err != nil {
		return nil, err
	}
	type kind struct {
		monitor, runtime string
		start            func(context.Context, Config, string) ([]int, func() error, error)
	}
	var kinds []kind
	if cfg.Shim != "" {
		rep.Versions["skiff-shim"] = "built from this tree"
		for _, rt := range cfg.ShimRuntimes {
			kinds = append(kinds, kind{"skiff-shim", rt.Name, func(ctx context.Context, cfg Config, dir string) ([]int, func() error, error) {
				return startSkiffShim(ctx, cfg, rt, rootfs, dir)
			}})
		}
	}
	if cfg.Podman {
		rep.Versions["conmon"] = runtimebench.Version("conmon")
		rep.Versions["podman"] = runtimebench.Version("podman")
		kinds = append(kinds, kind{"conmon", "runc", func(ctx context.Context, cfg Config, dir string) ([]int, func() error, error) {
			return startPodman(ctx, cfg, rootfs, dir)
		}})
	}
	if cfg.Containerd {
		rep.Versions["containerd-shim-runc-v2"] = runtimebench.Version("containerd")
		kinds = append(kinds, kind{"containerd-shim-runc-v2", "runc", startContainerd})
	}
	if len(kinds) > 0 {
		rep.Versions["runc"] = runtimebench.Version(cfg.Runc)
	}

	// Every kind's containers run at once and idle through the same
	// settle time; the cleanups run last started first, then the
	// monitors reparented to this process are reaped.
	var cleanups []func() error
	defer func() {
		for i := len(cleanups) - 1; i >= 0; i-- {
			if cerr := cleanups[i](); cerr != nil && err == nil {
				err = cerr
			}
		}
		if rerr := reapChildren(20 * time.Second); rerr != nil && err == nil {
			err = rerr
		}
		if err != nil {
			rep = nil
		}
	}()
	pids := make([][]int, len(kinds))
	for i, k := range kinds {
		dir := filepath.Join(cfg.WorkDir, strconv.Itoa(i))
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return nil, err
		}
		fmt.Fprintf(cfg.Log, "shimbench: starting %d containers under %s (%s)\n", cfg.N, k.monitor, k.runtime)
		p, cleanup, err := k.start(ctx, cfg, dir)
		if cleanup != nil {
			cleanups = append(cleanups, cleanup)
		}
		if err != nil {
			return nil, fmt.Errorf("%s (%s): %w", k.monitor, k.runtime, err)
		}
		pids[i] = p
	}
	fmt.Fprintf(cfg.Log, "shimbench: idling for %v\n", cfg.Settle)
	select {
	case <-time.After(cfg.Settle):
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	for i, k := range kinds {
		ms := make([]Mem, 0, len(pids[i]))
		for _, pid := range pids[i] {
			m, err := ReadMem(pid)
			if err != nil {
				return nil, fmt.Errorf("%s (%s): %w", k.monitor, k.runtime, err)
			}
			ms = append(ms, m)
		}
		s := Summarize(ms)
		fmt.Fprintf(cfg.Log, "shimbench: %s (%s): median RSS %d KiB, PSS %d KiB, anon %d KiB\n", k.monitor, k.runtime, s.MedianRSS, s.MedianPSS, s.MedianAnon)
		rep.Results = append(rep.Results, Result{Monitor: k.monitor, Runtime: k.runtime, Samples: ms, Summary: s})
	}
	return rep, nil
}

// monitorOf returns the parent of the container's init, which must be
// called want (a comm, at most 15 bytes).
func monitorOf(initPid int, want string) (int, error) {
	ppid, _, err := parentPid(initPid)
	if err != nil {
		return 0, err
	}
	if c := comm(ppid); c != want {
		return 0, fmt.Errorf("the parent of container process %d is %d (%s), not %s", initPid, ppid, c, want)
	}
	return ppid, nil
}

// reapChildren reaps the monitors reparented to this process; those still
// running after timeout are killed, and reported.
func reapChildren(timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		for {
			var ws unix.WaitStatus
			if pid, err := unix.Wait4(-1, &ws, unix.WNOHANG, nil); pid <= 0 || err != nil {
				break
			}
		}
		kids := children()
		if len(kids) == 0 {
			return nil
		}
		if time.Now().After(deadline) {
			var names []string
			for _, pid := range kids {
				names = append(names, fmt.Sprintf("%d (%s)", pid, comm(pid)))
				syscall.Kill(pid, syscall.SIGKILL)
			}
			time.Sleep(200 * time.Millisecond)
			for {
				var ws unix.WaitStatus
				if pid, err := unix.Wait4(-1, &ws, unix.WNOHANG, nil); pid <= 0 || err != nil {
					break
				}
			}
			return fmt.Errorf("processes left behind, killed: %s", strings.Join(names, ", "))
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// waitGone reaps exited children and waits until none of pids runs any
// more; those still running after timeout are killed, and reported.
func waitGone(pids []int, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		for {
			var ws unix.WaitStatus
			if pid, err := unix.Wait4(-1, &ws, unix.WNOHANG, nil); pid <= 0 || err != nil {
				break
			}
		}
		var alive []int
		for _, pid := range pids {
			if syscall.Kill(pid, 0) == nil {
				alive = append(alive, pid)
			}
		}
		if len(alive) == 0 {
			return nil
		}
		if time.Now().After(deadline) {
			var names []string
			for _, pid := range alive {
				names = append(names, fmt.Sprintf("%d (%s)", pid, comm(pid)))
				syscall.Kill(pid, syscall.SIGKILL)
			}
			return fmt.Errorf("monitors still running after their containers were removed, killed: %s", strings.Join(names, ", "))
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// children returns the pids of this process's children.
func children() []int {
	self := os.Getpid()
	var out []int
	ents, _ := os.ReadDir(fmt.Sprintf("/proc/%d/task", self))
	for _, t := range ents {
		data, _ := os.ReadFile(fmt.Sprintf("/proc/%d/task/%s/children", self, t.Name()))
		for _, f := range strings.Fields(string(data)) {
			if pid, err := strconv.Atoi(f); err == nil {
				out = append(out, pid)
			}
		}
	}
	return out
}

// startSkiffShim spawns N skiff-shims through shim/client as the engine
// will, each for a bundle over the shared rootfs, and starts the
// containers; cleanup kills and deletes them.
func startSkiffShim(ctx context.Context, cfg Config, rt Runtime, rootfs, dir string) (pids []int, cleanup func() error, err error) {
	cgParent := fmt.Sprintf("/shimbench-%d-%s", os.Getpid(), rt.Name)
	rtRoot := filepath.Join(dir, "rt")
	var clients []*client.Client
	// Each container has a wait blocked on its shim, as skiffd keeps one
	// per running container.
	waitCtx, stopWaits := context.WithCancel(context.Background())
	cleanup = func() (err error) {
		stopWaits()
		for _, c := range clients {
			cctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			if kerr := c.Kill(cctx, syscall.SIGKILL, true); kerr == nil {
				_, _ = c.Wait(cctx)
			}
			if _, derr := c.Delete(cctx, true); derr != nil && err == nil {
				err = fmt.Errorf("delete: %w", derr)
			}
			cancel()
		}
		// The shims exit after delete; they were reparented to this
		// process.
		if rerr := waitGone(pids, 20*time.Second); rerr != nil && err == nil {
			err = rerr
		}
		if rerr := removeCgroupTree(cgParent); rerr != nil && err == nil {
			err = rerr
		}
		return err
	}
	for i := 0; i < cfg.N; i++ {
		id := fmt.Sprintf("shimbench-%d-%s-%d", os.Getpid(), rt.Name, i)
		b := filepath.Join(dir, "b", strconv.Itoa(i))
		if err := os.MkdirAll(b, 0o700); err != nil {
			return nil, cleanup, err
		}
		spec := bundle.DefaultSpec("sleep", "3600")
		spec.Root.Path = rootfs
		spec.Linux.CgroupsPath = cgParent + "/" + id
		if err := bundle.WriteSpec(b, spec); err != nil {
			return nil, cleanup, err
		}
		o := client.Options{
			Binary: cfg.Shim, ID: id, Bundle: b,
			Runtime: rt.Bin, RuntimeRoot: rtRoot,
			StateDir: filepath.Join(dir, "s", strconv.Itoa(i)),
			LogPath:  filepath.Join(dir, "log", strconv.Itoa(i)+".log"),
		}
		sctx, cancel := context.WithTimeout(ctx, time.Minute)
		c, ready, err := client.Spawn(sctx, o)
		if err == nil {
			clients = append(clients, c)
			if err = c.Start(sctx); err == nil {
				go c.Wait(waitCtx)
			}
		}
		cancel()
		if err != nil {
			return nil, cleanup, err
		}
		pids = append(pids, ready.ShimPid)
	}
	return pids, cleanup, nil
}

// startPodman runs N detached containers with podman (runtime runc, its
// own storage under dir) and returns their conmons.
func startPodman(ctx context.Context, cfg Config, rootfs, dir string) (pids []int, cleanup func() error, err error) {
	cgParent := fmt.Sprintf("/shimbench-%d-podman", os.Getpid())
	for _, d := range []string{"root", "runroot", "tmp", "networks"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o700); err != nil {
			return nil, cleanup, err
		}
	}
	// podman puts mount points (and /run/.containerenv) into a --rootfs:
	// it gets a copy of its own.
	prootfs := filepath.Join(dir, "rootfs")
	if err := bundle.BusyboxRootfs(prootfs); err != nil {
		return nil, cleanup, err
	}
	podman := peers.Podman{Dir: dir, Runtime: cfg.Runc, Driver: "vfs"}.Args
	cleanup = func() (err error) {
		if _, rerr := peers.Command(context.Background(), 2*time.Minute, podman("rm", "-af", "-t", "0")...); rerr != nil && err == nil {
			err = rerr
		}
		// conmon is reparented to this process.
		if rerr := waitGone(pids, 20*time.Second); rerr != nil && err == nil {
			err = rerr
		}
		peers.UnmountUnder(dir)
		if rerr := removeCgroupTree(cgParent); rerr != nil && err == nil {
			err = rerr
		}
		return err
	}
	var ids []string
	for i := 0; i < cfg.N; i++ {
		out, err := peers.Command(ctx, 2*time.Minute, podman("run", "-d", "--name", fmt.Sprintf("shimbench-%d", i),
			"--ulimit", "nofile=1024:1024", "--ulimit", "nproc=4096:4096", "--network", "none",
			"--cgroup-parent", cgParent, "--rootfs", prootfs, "sleep", "3600")...)
		if err != nil {
			return nil, cleanup, err
		}
		ids = append(ids, strings.TrimSpace(out))
	}
	out, err := peers.Command(ctx, time.Minute, podman(append([]string{"inspect", "-f", "{{.State.ConmonPid}} {{.State.Pid}}"}, ids...)...)...)
	if err != nil {
		return nil, cleanup, err
	}
	for _, l := range strings.Split(strings.TrimSpace(out), "\n") {
		f := strings.Fields(l)
		if len(f) != 2 {
			return nil, cleanup, fmt.Errorf("podman inspect: unexpected line %q", l)
		}
		conmon, err1 := strconv.Atoi(f[0])
		init, err2 := strconv.Atoi(f[1])
		if err1 != nil || err2 != nil {
			return nil, cleanup, fmt.Errorf("podman inspect: unexpected line %q", l)
		}
		if p, err := monitorOf(init, "conmon"); err != nil || p != conmon {
			return nil, cleanup, fmt.Errorf("conmon of container process %d: podman says %d, the process tree %d (%v)", init, conmon, p, err)
		}
		pids = append(pids, conmon)
	}
	if len(pids) != cfg.N {
		return nil, cleanup, fmt.Errorf("podman inspect: %d conmons for %d containers", len(pids), cfg.N)
	}
	return pids, cleanup, nil
}

// startContainerd starts a private containerd, imports the busybox image,
// runs N detached tasks (runc, output to a log file as the shim writes
// it) and returns their shims; cleanup removes the tasks and stops
// containerd.
func startContainerd(ctx context.Context, cfg Config, dir string) (pids []int, cleanup func() error, err error) {
	ns := fmt.Sprintf("shimbench-%d", os.Getpid())
	cd, err := peers.StartContainerd(ctx, dir, ns)
	if err != nil {
		return nil, cleanup, err
	}
	ctr := cd.Ctr
	var ids []string
	cleanup = func() (err error) {
		for _, id := range ids {
			peers.Command(context.Background(), 20*time.Second, ctr("task", "kill", "-s", "KILL", id)...)
		}
		for _, id := range ids {
			var rerr error
			for try := 0; try < 50; try++ {
				if _, rerr = peers.Command(context.Background(), 20*time.Second, ctr("task", "rm", "-f", id)...); rerr == nil {
					break
				}
				time.Sleep(100 * time.Millisecond)
			}
			if rerr != nil && err == nil {
				err = rerr
			}
			if _, rerr := peers.Command(context.Background(), 20*time.Second, ctr("container", "rm", id)...); rerr != nil && err == nil {
				err = rerr
			}
		}
		peers.Command(context.Background(), 30*time.Second, ctr("image", "rm", "--sync", imagebuild.DefaultName)...)
		if rerr := cd.Stop(); rerr != nil && err == nil {
			err = rerr
		}
		// The shims exit when their last task is deleted; they were
		// reparented to this process.
		if rerr := waitGone(pids, 20*time.Second); rerr != nil && err == nil {
			err = rerr
		}
		peers.UnmountUnder(dir)
		if rerr := removeCgroupTree("/" + ns); rerr != nil && err == nil {
			err = rerr
		}
		return err
	}
	img, err := imagebuild.Build(imagebuild.Options{})
	if err != nil {
		return nil, cleanup, err
	}
	archive := filepath.Join(dir, "busybox.oci.tar")
	if err := img.WriteArchiveFile(archive); err != nil {
		return nil, cleanup, err
	}
	if _, err := peers.Command(ctx, 2*time.Minute, ctr("image", "import", archive)...); err != nil {
		return nil, cleanup, err
	}
	for i := 0; i < cfg.N; i++ {
		id := fmt.Sprintf("shimbench-%d", i)
		logURI := "file://" + filepath.Join(dir, "logs", id+".log")
		if err := os.MkdirAll(filepath.Join(dir, "logs"), 0o700); err != nil {
			return nil, cleanup, err
		}
		if _, err := peers.Command(ctx, 2*time.Minute, ctr("run", "-d", "--runc-binary", cfg.Runc, "--log-uri", logURI, imagebuild.DefaultName, id, "sleep", "3600")...); err != nil {
			return nil, cleanup, err
		}
		ids = append(ids, id)
	}
	for _, id := range ids {
		out, err := peers.Command(ctx, 20*time.Second, ctr("task", "ls")...)
		if err != nil {
			return nil, cleanup, err
		}
		init := 0
		for _, l := range strings.Split(out, "\n") {
			if f := strings.Fields(l); len(f) >= 2 && f[0] == id {
				init, _ = strconv.Atoi(f[1])
			}
		}
		if init <= 0 {
			return nil, cleanup, fmt.Errorf("ctr task ls: no pid for task %s:\n%s", id, out)
		}
		p, err := monitorOf(init, "containerd-shim")
		if err != nil {
			return nil, cleanup, err
		}
		pids = append(pids, p)
	}
	return pids, cleanup, nil
}
