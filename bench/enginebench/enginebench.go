// Package enginebench measures skiffd + skiff against containerd (ctr) and
// podman, side by side in one run: `run --rm` of a local busybox image,
// a cold pull + unpack of a large multi-layer image from a loopback
// registry, and the idle memory of the daemons and per-container monitors
// with N containers each. It writes its results as a section of
// BENCHMARKS.md.
//
// It owns the measurement, not the peers' setup (package bench/peers) nor
// any assertion: numbers are reported, never checked.
package enginebench

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/skiff-containers/skiff/bench/peers"
	"github.com/skiff-containers/skiff/bench/runtimebench"
	"github.com/skiff-containers/skiff/image/remote/remotetest"
	"github.com/skiff-containers/skiff/internal/imagebuild"
)

// Config says what to measure.
type Config struct {
	// BinDir holds skiffd, skiff, skiff-shim and skiff-runtime (make build).
	BinDir string
	// Runc is the runc binary the peers (and skiff's runc variant) use.
	Runc string
	// Rounds of `run --rm` per engine; PullRounds of the cold pull.
	Rounds, PullRounds int
	// BigLayers and BigLayerMiB shape the large image: that many layers
	// of random (incompressible) data on top of busybox.
	BigLayers, BigLayerMiB int
	// Containers is the number of idle containers for the memory part
	// (0 skips it).
	Containers int
	// Log receives progress lines.
	Log func(format string, args ...any)
}

// Timing is the result of one timed operation for one engine.
type Timing struct {
	Engine  string
	Samples []time.Duration
}

// Median and P90 of the samples.
func (t Timing) Median() time.Duration { return quantile(t.Samples, 0.5) }
func (t Timing) P90() time.Duration    { return quantile(t.Samples, 0.9) }

func quantile(s []time.Duration, q float64) time.Duration {
	if len(s) == 0 {
		return 0
	}
	c := append([]time.Duration(nil), s...)
	sort.Slice(c, func(i, j int) bool { return c[i] < c[j] })
	return c[int(q*float64(len(c)-1)+0.5)]
}

// Memory is the idle memory of one engine with Containers containers.
type Memory struct {
	Engine string
	// Daemon is the daemon's RSS in KiB (0: no daemon).
	Daemon int64
	// Monitors are the RSS values (KiB) of the per-container monitors.
	Monitors []int64
	Monitor  string // its name
}

// Report is what Run measured.
type Report struct {
	Date       time.Time
	Machine    runtimebench.Machine
	Versions   map[string]string
	Run        []Timing
	Pull       []Timing
	BigSize    int64 // compressed bytes of the big image
	BigLayers  int
	Memory     []Memory
	Containers int
}

// Run sets up a registry, skiffd, containerd and podman under a temporary
// directory, measures, and tears everything down.
func Run(ctx context.Context, cfg Config) (rep *Report, err error) {
	if cfg.Log == nil {
		cfg.Log = func(string, ...any) {}
	}
	work, err := os.MkdirTemp("", "enginebench-")
	if err != nil {
		return nil, err
	}
	defer func() {
		// podman's storage leaves its overlay directory bind-mounted.
		if err := peers.UnmountUnder(work); err != nil {
			cfg.Log("unmount under %s: %v", work, err)
		}
		os.RemoveAll(work)
	}()
	rep = &Report{Date: time.Now().UTC(), Machine: runtimebench.ReadMachine(), Versions: map[string]string{},
		BigLayers: cfg.BigLayers, Containers: cfg.Containers}

	reg, err := remotetest.Launch(filepath.Join(work, "registry"))
	if err != nil {
		return nil, err
	}
	defer reg.Close()
	cfg.Log("registry on %s", reg.Domain)
	small := reg.Domain + "/bench/busybox:latest"
	big := reg.Domain + "/bench/big:latest"
	if err := pushBusybox(ctx, reg, "bench/busybox", "latest"); err != nil {
		return nil, err
	}
	if rep.BigSize, err = pushBig(ctx, reg, "bench/big", "latest", cfg.BigLayers, cfg.BigLayerMiB); err != nil {
		return nil, err
	}
	cfg.Log("pushed %s and %s (%.0f MiB)", small, big, float64(rep.BigSize)/(1<<20))

	sk, err := startSkiffd(ctx, cfg, filepath.Join(work, "skiff"))
	if err != nil {
		return nil, err
	}
	defer sk.stop()
	cd, err := peers.StartContainerd(ctx, filepath.Join(work, "containerd"), "enginebench")
	if err != nil {
		return nil, err
	}
	defer func() {
		peers.Command(context.Background(), time.Minute, cd.Ctr("image", "rm", "--sync", small, big)...)
		cd.Stop()
	}()
	pm := peers.Podman{Dir: filepath.Join(work, "podman"), Runtime: cfg.Runc}
	defer pm.Reset(context.Background())

	rep.Versions["skiffd"] = firstLine(peers.Command(ctx, time.Minute, filepath.Join(cfg.BinDir, "skiffd"), "--version"))
	rep.Versions["containerd"] = firstLine(peers.Command(ctx, time.Minute, "containerd", "--version"))
	rep.Versions["podman"] = firstLine(peers.Command(ctx, time.Minute, "podman", "--version"))
	rep.Versions["runc"] = firstLine(peers.Command(ctx, time.Minute, cfg.Runc, "--version"))

	// The same local image for every engine.
	for _, argv := range [][]string{
		sk.cli("pull", "-q", small),
		cd.Ctr("image", "pull", "--plain-http", small),
		pm.Args("pull", "-q", "--tls-verify=false", small),
	} {
		if _, err := peers.Command(ctx, 5*time.Minute, argv...); err != nil {
			return nil, err
		}
	}

	// run --rm, engines alternating each round.
	type runner struct {
		name string
		argv func(i int) []string
	}
	runners := []runner{
		{"skiff (--network none)", func(int) []string { return sk.cli("run", "--rm", "--network", "none", small, "true") }},
		{"skiff (--network none --runtime runc)", func(int) []string {
			return sk.cli("run", "--rm", "--network", "none", "--runtime", cfg.Runc, small, "true")
		}},
		{"skiff (default bridge network through CNI)", func(int) []string { return sk.cli("run", "--rm", small, "true") }},
		{"containerd (ctr run --rm)", func(i int) []string {
			return cd.Ctr("run", "--rm", "--runc-binary", cfg.Runc, small, fmt.Sprintf("bench-%d", i+1), "true")
		}},
		{"podman (run --rm)", func(int) []string {
			return pm.Args(append(append([]string{"run", "--rm", "--network", "none"}, peers.RunFlags()...), small, "true")...)
		}},
	}
	runT := make([]Timing, len(runners))
	for i, r := range runners {
		runT[i].Engine = r.name
		if _, err := peers.Command(ctx, time.Minute, r.argv(-1)...); err != nil { // warm-up
			return nil, err
		}
	}
	for round := 0; round < cfg.Rounds; round++ {
		for i, r := range runners {
			d, err := timed(ctx, r.argv(round))
			if err != nil {
				return nil, err
			}
			runT[i].Samples = append(runT[i].Samples, d)
		}
	}
	rep.Run = runT
	cfg.Log("run --rm measured")

	// Cold pull + unpack of the big image: removed (and garbage
	// collected) before every round.
	pulls := []struct {
		name     string
		pull, rm []string
	}{
		{"skiff", sk.cli("pull", "-q", big), sk.cli("rmi", big)},
		{"containerd (ctr pull)", cd.Ctr("image", "pull", "--plain-http", big), cd.Ctr("image", "rm", "--sync", big)},
		{"podman", pm.Args("pull", "-q", "--tls-verify=false", big), pm.Args("rmi", big)},
	}
	pullT := make([]Timing, len(pulls))
	for round := 0; round < cfg.PullRounds; round++ {
		for i, p := range pulls {
			pullT[i].Engine = p.name
			syncDropCaches()
			d, err := timed(ctx, p.pull)
			if err != nil {
				return nil, err
			}
			pullT[i].Samples = append(pullT[i].Samples, d)
			if _, err := peers.Command(ctx, 5*time.Minute, p.rm...); err != nil {
				return nil, err
			}
		}
	}
	rep.Pull = pullT
	cfg.Log("pull measured")

	if cfg.Containers > 0 {
		mem, err := measureMemory(ctx, cfg, sk, cd, pm, small)
		if err != nil {
			return nil, err
		}
		rep.Memory = mem
	}
	return rep, nil
}

func firstLine(s string, err error) string {
	if err != nil {
		return "?"
	}
	s = strings.TrimSpace(s)
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		s = s[:i]
	}
	return s
}

func timed(ctx context.Context, argv []string) (time.Duration, error) {
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	var out strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &out
	start := time.Now()
	err := cmd.Run()
	d := time.Since(start)
	if err != nil {
		return 0, fmt.Errorf("%s: %w\n%s", strings.Join(argv, " "), err, out.String())
	}
	return d, nil
}

// syncDropCaches writes dirty data back so that one engine's writeback
// does not land in the next one's time.
func syncDropCaches() {
	syscall.Sync()
}

// skiffd is a private skiffd.
type skiffd struct {
	dir, socket string
	bin         string
	cmd         *exec.Cmd
	done        chan struct{}
}

func startSkiffd(ctx context.Context, cfg Config, dir string) (*skiffd, error) {
	s := &skiffd{dir: dir, socket: filepath.Join(dir, "state", "skiffd.sock"), bin: cfg.BinDir, done: make(chan struct{})}
	logF, err := os.Create(filepath.Join(filepath.Dir(dir), "skiffd.log"))
	if err != nil {
		return nil, err
	}
	defer logF.Close()
	s.cmd = exec.Command(filepath.Join(cfg.BinDir, "skiffd"), "--root", filepath.Join(dir, "root"),
		"--state", filepath.Join(dir, "state"), "--socket", s.socket, "--config", "/dev/null")
	s.cmd.Stdout, s.cmd.Stderr = logF, logF
	s.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := s.cmd.Start(); err != nil {
		return nil, fmt.Errorf("start skiffd: %w", err)
	}
	go func() { s.cmd.Wait(); close(s.done) }()
	for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if c, err := net.Dial("unix", s.socket); err == nil {
			c.Close()
			return s, nil
		}
	}
	s.stop()
	return nil, errors.New("skiffd did not come up (see skiffd.log)")
}

func (s *skiffd) cli(args ...string) []string {
	return append([]string{filepath.Join(s.bin, "skiff"), "--socket", s.socket}, args...)
}

func (s *skiffd) stop() {
	if ids, err := peers.Command(context.Background(), time.Minute, s.cli("ps", "-aq")...); err == nil && strings.TrimSpace(ids) != "" {
		peers.Command(context.Background(), 2*time.Minute, s.cli(append([]string{"rm", "-f"}, strings.Fields(ids)...)...)...)
	}
	s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-s.done:
	case <-time.After(20 * time.Second):
		s.cmd.Process.Kill()
		<-s.done
	}
}

func pushBusybox(ctx context.Context, reg *remotetest.Registry, repo, tag string) error {
	img, err := imagebuild.Build(imagebuild.Options{Name: reg.Domain + "/" + repo + ":" + tag})
	if err != nil {
		return err
	}
	for _, b := range []imagebuild.Blob{img.Layer, img.Config} {
		if err := reg.PushBlob(ctx, repo, b.Descriptor, b.Data); err != nil {
			return err
		}
	}
	return reg.PushManifest(ctx, repo, tag, img.Manifest.Descriptor, img.Manifest.Data)
}

// rssKiB is VmRSS of pid in KiB.
func rssKiB(pid int) (int64, error) {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	for _, l := range strings.Split(string(data), "\n") {
		if f := strings.Fields(l); len(f) >= 2 && f[0] == "VmRSS:" {
			return strconv.ParseInt(f[1], 10, 64)
		}
	}
	return 0, fmt.Errorf("no VmRSS for pid %d", pid)
}
