package enginebench

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/skiff-containers/skiff/bench/peers"
)

// measureMemory starts cfg.Containers idle containers in each engine, lets
// them settle, reads the RSS of the daemon and of each monitor, and
// removes the containers again.
func measureMemory(ctx context.Context, cfg Config, sk *skiffd, cd *peers.Containerd, pm peers.Podman, image string) ([]Memory, error) {
	n := cfg.Containers
	var out []Memory

	// skiff
	var ids []string
	for i := 0; i < n; i++ {
		id, err := peers.Command(ctx, time.Minute, sk.cli("run", "-d", image, "sleep", "3600")...)
		if err != nil {
			return nil, err
		}
		ids = append(ids, strings.TrimSpace(id))
	}
	time.Sleep(10 * time.Second)
	m := Memory{Engine: "skiff", Monitor: "skiff-shim"}
	m.Daemon, _ = rssKiB(sk.cmd.Process.Pid)
	m.Monitors = monitorsRSS("skiff-shim", sk.dir)
	out = append(out, m)
	if _, err := peers.Command(ctx, 2*time.Minute, sk.cli(append([]string{"rm", "-f"}, ids...)...)...); err != nil {
		return nil, err
	}
	cfg.Log("skiff memory: daemon %d KiB, %d shims", m.Daemon, len(m.Monitors))

	// containerd
	var tasks []string
	for i := 0; i < n; i++ {
		id := fmt.Sprintf("idle-%d", i)
		if _, err := peers.Command(ctx, time.Minute, cd.Ctr("run", "-d", "--runc-binary", cfg.Runc, image, id, "sleep", "3600")...); err != nil {
			return nil, err
		}
		tasks = append(tasks, id)
	}
	time.Sleep(10 * time.Second)
	m = Memory{Engine: "containerd", Monitor: "containerd-shim-runc-v2"}
	m.Daemon, _ = rssKiB(cd.Pid())
	m.Monitors = monitorsRSS("containerd-shim", cd.Dir)
	out = append(out, m)
	for _, id := range tasks {
		peers.Command(ctx, time.Minute, cd.Ctr("task", "kill", "-s", "KILL", id)...)
	}
	for _, id := range tasks {
		for try := 0; try < 50; try++ {
			if _, err := peers.Command(ctx, time.Minute, cd.Ctr("task", "rm", "-f", id)...); err == nil {
				break
			}
			time.Sleep(100 * time.Millisecond)
		}
		peers.Command(ctx, time.Minute, cd.Ctr("container", "rm", id)...)
	}
	cfg.Log("containerd memory: daemon %d KiB, %d shims", m.Daemon, len(m.Monitors))

	// podman (no daemon)
	for i := 0; i < n; i++ {
		args := append(append([]string{"run", "-d", "--network", "none"}, peers.RunFlags()...), image, "sleep", "3600")
		if _, err := peers.Command(ctx, time.Minute, pm.Args(args...)...); err != nil {
			return nil, err
		}
	}
	time.Sleep(10 * time.Second)
	m = Memory{Engine: "podman", Monitor: "conmon"}
	m.Monitors = monitorsRSS("conmon", pm.Dir)
	out = append(out, m)
	if _, err := peers.Command(ctx, 2*time.Minute, pm.Args("rm", "-af", "-t", "0")...); err != nil {
		return nil, err
	}
	cfg.Log("podman memory: %d conmons", len(m.Monitors))
	return out, nil
}

// monitorsRSS returns the RSS (KiB) of every process whose comm starts with
// comm and whose command line mentions dir.
func monitorsRSS(comm, dir string) []int64 {
	ents, _ := os.ReadDir("/proc")
	var out []int64
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		c, err := os.ReadFile(fmt.Sprintf("/proc/%d/comm", pid))
		if err != nil || !strings.HasPrefix(strings.TrimSpace(string(c)), comm[:min(len(comm), 15)]) {
			continue
		}
		cmdline, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
		if !strings.Contains(string(cmdline), dir) {
			continue
		}
		if rss, err := rssKiB(pid); err == nil {
			out = append(out, rss)
		}
	}
	return out
}
