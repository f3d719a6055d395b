// Package peers starts private instances of the engines skiff is compared
// with in the benchmarks — containerd (driven with ctr) and podman — on
// their own directories, so that a benchmark neither uses nor disturbs a
// system-wide installation, and removes them again.
//
// It must not measure anything: the benchmark packages do.
package peers

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"time"

	"github.com/moby/sys/mountinfo"
	"golang.org/x/sys/unix"
)

// Command runs argv with a timeout and returns its stdout; the error quotes
// its stderr.
func Command(ctx context.Context, timeout time.Duration, argv ...string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	cmd.WaitDelay = 5 * time.Second
	var stdout, stderr strings.Builder
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return stdout.String(), fmt.Errorf("%s: %w: %s", strings.Join(argv, " "), err, strings.TrimSpace(stderr.String()))
	}
	return stdout.String(), nil
}

// Containerd is a private containerd daemon.
type Containerd struct {
	Dir       string
	Address   string
	Namespace string
	daemon    *exec.Cmd
	done      chan error
}

// StartContainerd starts containerd with its root, state and sockets under
// dir (CRI and unused snapshotters off) and waits until it answers.
func StartContainerd(ctx context.Context, dir, namespace string) (*Containerd, error) {
	c := &Containerd{Dir: dir, Address: filepath.Join(dir, "containerd.sock"), Namespace: namespace}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	config := fmt.Sprintf(`version = 2
root = %q
state = %q
disabled_plugins = [
  "io.containerd.grpc.v1.cri",
  "io.containerd.snapshotter.v1.aufs",
  "io.containerd.snapshotter.v1.btrfs",
  "io.containerd.snapshotter.v1.devmapper",
  "io.containerd.snapshotter.v1.zfs",
  "io.containerd.internal.v1.restart",
  "io.containerd.tracing.processor.v1.otlp",
  "io.containerd.internal.v1.tracing",
]

[grpc]
  address = %q

[ttrpc]
  address = %q

[plugins]
  [plugins."io.containerd.internal.v1.opt"]
    path = %q
`, filepath.Join(dir, "root"), filepath.Join(dir, "state"), c.Address, c.Address+".ttrpc", filepath.Join(dir, "opt"))
	configPath := filepath.Join(dir, "config.toml")
	if err := os.WriteFile(configPath, []byte(config), 0o644); err != nil {
		return nil, err
	}
	logF, err := os.Create(filepath.Join(dir, "containerd.log"))
	if err != nil {
		return nil, err
	}
	defer logF.Close()
	c.daemon = exec.Command("containerd", "--config", configPath)
	c.daemon.Stdout, c.daemon.Stderr = logF, logF
	c.daemon.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGTERM}
	if err := c.daemon.Start(); err != nil {
		return nil, fmt.Errorf("start containerd: %w", err)
	}
	c.done = make(chan error, 1)
	go func() { c.done <- c.daemon.Wait() }()
	for deadline := time.Now().Add(30 * time.Second); ; {
		out, err := Command(ctx, 10*time.Second, c.Ctr("version")...)
		if err == nil && strings.Contains(out, "Server:") {
			return c, nil
		}
		if time.Now().After(deadline) {
			c.Stop()
			return nil, fmt.Errorf("containerd did not come up: %v (see %s)", err, logF.Name())
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// Pid is the daemon's pid.
func (c *Containerd) Pid() int { return c.daemon.Process.Pid }

// Ctr returns the argv of a ctr command against this containerd.
func (c *Containerd) Ctr(args ...string) []string {
	return append([]string{"ctr", "--address", c.Address, "--namespace", c.Namespace}, args...)
}

// Stop stops the daemon (SIGTERM, then SIGKILL after 20 s).
func (c *Containerd) Stop() error {
	c.daemon.Process.Signal(syscall.SIGTERM)
	select {
	case <-c.done:
		return nil
	case <-time.After(20 * time.Second):
		c.daemon.Process.Kill()
		<-c.done
		return errors.New("containerd did not stop on SIGTERM")
	}
}

// Podman runs podman on private storage under Dir with the given OCI
// runtime, settings that work on this kind of host (cgroupfs, vfs storage,
// file events, the ulimits the host allows).
type Podman struct {
	Dir     string
	Runtime string
	// Driver is the storage driver: "overlay" or "vfs" (default overlay).
	Driver string
}

// Args returns the argv of a podman command.
func (p Podman) Args(args ...string) []string {
	driver := p.Driver
	if driver == "" {
		driver = "overlay"
	}
	for _, d := range []string{"root", "runroot", "tmp", "networks"} {
		os.MkdirAll(filepath.Join(p.Dir, d), 0o700)
	}
	return append([]string{"podman",
		"--root", filepath.Join(p.Dir, "root"),
		"--runroot", filepath.Join(p.Dir, "runroot"),
		"--tmpdir", filepath.Join(p.Dir, "tmp"),
		"--network-config-dir", filepath.Join(p.Dir, "networks"),
		"--storage-driver", driver,
		"--cgroup-manager", "cgroupfs",
		"--events-backend", "file",
		"--runtime", p.Runtime,
	}, args...)
}

// RunFlags returns the flags `podman run` needs on this host (its hard
// rlimits cannot be raised: CAP_SYS_RESOURCE is not in the bounding set).
func RunFlags() []string {
	return []string{"--ulimit", "nofile=1024:1024", "--ulimit", "nproc=4096:4096"}
}

// Reset removes all of the podman instance's containers and images and its
// storage.
func (p Podman) Reset(ctx context.Context) error {
	var errs []error
	if _, err := Command(ctx, 2*time.Minute, p.Args("rm", "-af", "-t", "0")...); err != nil {
		errs = append(errs, err)
	}
	if _, err := Command(ctx, 2*time.Minute, p.Args("system", "reset", "-f")...); err != nil {
		errs = append(errs, err)
	}
	// podman leaves its storage driver's own mount (root/overlay) behind.
	if err := UnmountUnder(p.Dir); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// UnmountUnder lazily unmounts every mount at or below dir, deepest first.
func UnmountUnder(dir string) error {
	mounts, err := mountinfo.GetMounts(mountinfo.PrefixFilter(dir))
	if err != nil {
		return err
	}
	sort.Slice(mounts, func(i, j int) bool { return len(mounts[i].Mountpoint) > len(mounts[j].Mountpoint) })
	var errs []error
	for _, m := range mounts {
		if err := unix.Unmount(m.Mountpoint, unix.MNT_DETACH); err != nil && !errors.Is(err, unix.EINVAL) {
			errs = append(errs, fmt.Errorf("unmount %s: %w", m.Mountpoint, err))
		}
	}
	return errors.Join(errs...)
}
