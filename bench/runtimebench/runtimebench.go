// Package runtimebench measures OCI runtimes side by side: skiff-runtime,
// runc and crun run the same busybox bundle (built by bench/bundle from the
// host's static busybox), alternating round by round so that drift in the
// machine's load hits all of them alike. It reports the median and 90th
// percentile wall time of `RUNTIME run` of a container running `true`, the
// ratios against runc and crun, the peak RSS of the runtime process (from
// wait4's rusage, which covers the runtime and the helper processes it
// reaped), and the time to run 100 containers back to back. A variant runs
// the same with Docker's default seccomp profile in the bundle.
//
// The numbers are for people, written to BENCHMARKS.md; tests never assert
// on them.
package runtimebench

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"syscall"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/skiff-containers/skiff/bench/bundle"
)

// Runtime is one runtime under measurement.
type Runtime struct {
	// Name labels the runtime in the report.
	Name string
	// Bin is the runtime binary.
	Bin string
	// Wrapper, if set, is a command prefix that runs the runtime; the
	// runtime's own argv follows it. Used for crun on hybrid-cgroup hosts.
	Wrapper []string
	// Root is the runtime's --root; Run makes a temporary one if empty.
	Root string
}

// argv returns the full command line for the runtime with args.
func (r Runtime) argv(args ...string) []string {
	out := append([]string(nil), r.Wrapper...)
	out = append(out, r.Bin, "--root", r.Root)
	return append(out, args...)
}

// CrunHybridWrapper runs crun in a private mount namespace without
// /sys/fs/cgroup/unified: crun 1.8 refuses the hybrid cgroup layout
// otherwise. The wrapper's own cost is measured separately (WrapperOverhead).
var CrunHybridWrapper = []string{"unshare", "-m", "sh", "-c", `umount /sys/fs/cgroup/unified && exec "$0" "$@"`}

// Config says what to measure.
type Config struct {
	Runtimes []Runtime
	// Rounds is the number of timed runs per runtime and variant.
	Rounds int
	// Batch is the number of containers run back to back per runtime; 0
	// skips the batch measurement.
	Batch int
	// Seccomp, if set, adds a variant whose bundle has this profile.
	Seccomp *specs.LinuxSeccomp
	// SeccompName describes the profile in the report.
	SeccompName string
	// WorkDir holds the bundles and state roots; a temporary directory if
	// empty. Removed at the end if Run created it.
	WorkDir string
	// Log receives progress lines; nil for none.
	Log io.Writer
	// Exec, if set, also measures `exec ID true` into a running container.
	Exec bool
	// Spawner is a program whose main calls SpawnerMain (normally the
	// benchmark's own executable). If set, every measured command runs
	// through it, so that peak RSS is not floored by this process's size
	// (see SpawnEnv). If empty, commands run directly.
	Spawner string
}

// Sample is one measured run.
type Sample struct {
	Wall   time.Duration
	MaxRSS int64 // KiB
}

// Result is the measurement of one runtime in one variant.
type Result struct {
	Runtime string
	Variant string
	Samples []Sample
	Median  time.Duration
	P90     time.Duration
	PeakRSS int64 // KiB, the largest over the samples
	Batch   time.Duration
	BatchN  int
}

// Report is the outcome of Run.
type Report struct {
	Date            time.Time
	Machine         Machine
	Rounds          int
	Results         []Result
	WrapperOverhead time.Duration // median cost of CrunHybridWrapper alone, if used
	RSSFloor        int64         // KiB: peak RSS reported for /bin/true, the least any command can show
	Versions        map[string]string
	Variants        []string
	SeccompName     string
	// Exec holds the `exec` latency per runtime, if measured.
	Exec []ExecResult
}

// ExecResult is the latency of `RUNTIME exec ID true` into a running
// container.
type ExecResult struct {
	Runtime     string
	Median, P90 time.Duration
}

// Variants of the bundle.
const (
	VariantPlain   = "plain"
	VariantSeccomp = "seccomp"
)

// Run performs the measurements described by cfg.
func Run(ctx context.Context, cfg Config) (*Report, error) {
	if len(cfg.Runtimes) == 0 {
		return nil, ErrNoRuntimes
	}
	if cfg.Rounds <= 0 {
		cfg.Rounds = 30
	}
	logf := func(format string, args ...any) {
		if cfg.Log != nil {
			fmt.Fprintf(cfg.Log, format+"\n", args...)
		}
	}
	work := cfg.WorkDir
	if work == "" {
		d, err := os.MkdirTemp("", "runtimebench-")
		if err != nil {
			return nil, err
		}
		defer os.RemoveAll(d)
		work = d
	}
	variants := []string{VariantPlain}
	if cfg.Seccomp != nil {
		variants = append(variants, VariantSeccomp)
	}
	bundles := map[string]string{}
	for _, v := range variants {
		b := filepath.Join(work, "bundle-"+v)
		if err := os.MkdirAll(b, 0o755); err != nil {
			return nil, err
		}
		spec, err := bundle.Create(b, "true")
		if err != nil {
			return nil, err
		}
		if v == VariantSeccomp {
			spec.Linux.Seccomp = cfg.Seccomp
			if err := bundle.WriteSpec(b, spec); err != nil {
				return nil, err
			}
		}
		bundles[v] = b
	}
	rts := append([]Runtime(nil), cfg.Runtimes...)
	for i := range rts {
		if rts[i].Root == "" {
			rts[i].Root = filepath.Join(work, "root-"+rts[i].Name)
		}
	}
	rep := &Report{Date: time.Now().UTC(), Machine: ReadMachine(), Rounds: cfg.Rounds,
		Versions: map[string]string{}, Variants: variants, SeccompName: cfg.SeccompName}
	for _, rt := range rts {
		rep.Versions[rt.Name] = Version(rt.Bin)
	}

	// Check that every runtime works before timing anything.
	for _, v := range variants {
		for _, rt := range rts {
			if _, err := runOnce(ctx, cfg.Spawner, rt, bundles[v], fmt.Sprintf("bench-check-%s", v)); err != nil {
				return nil, fmt.Errorf("%s on the %s bundle: %w", rt.Name, v, err)
			}
		}
	}

	results := map[string]*Result{}
	key := func(rt, v string) string { return rt + "/" + v }
	for _, v := range variants {
		for _, rt := range rts {
			results[key(rt.Name, v)] = &Result{Runtime: rt.Name, Variant: v}
		}
	}
	for round := 0; round < cfg.Rounds; round++ {
		for _, v := range variants {
			// Rotate who goes first, so no runtime always follows another.
			for j := range rts {
				rt := rts[(round+j)%len(rts)]
				s, err := runOnce(ctx, cfg.Spawner, rt, bundles[v], fmt.Sprintf("bench-%d", round))
				if err != nil {
					return nil, fmt.Errorf("%s round %d (%s): %w", rt.Name, round, v, err)
				}
				r := results[key(rt.Name, v)]
				r.Samples = append(r.Samples, s)
			}
		}
		logf("round %d/%d done", round+1, cfg.Rounds)
	}
	if cfg.Batch > 0 {
		for _, v := range variants {
			for _, rt := range rts {
				start := time.Now()
				for i := 0; i < cfg.Batch; i++ {
					if _, err := runOnce(ctx, "", rt, bundles[v], fmt.Sprintf("bench-batch-%d", i)); err != nil {
						return nil, fmt.Errorf("%s batch run %d (%s): %w", rt.Name, i, v, err)
					}
				}
				r := results[key(rt.Name, v)]
				r.Batch, r.BatchN = time.Since(start), cfg.Batch
				logf("%s %s: %d containers in %v", rt.Name, v, cfg.Batch, r.Batch.Round(time.Millisecond))
			}
		}
	}
	for _, v := range variants {
		for _, rt := range rts {
			r := results[key(rt.Name, v)]
			r.Median, r.P90 = Percentile(r.Samples, 50), Percentile(r.Samples, 90)
			for _, s := range r.Samples {
				r.PeakRSS = max(r.PeakRSS, s.MaxRSS)
			}
			rep.Results = append(rep.Results, *r)
		}
	}
	if cfg.Exec {
		ex, err := measureExec(ctx, cfg, rts, work, logf)
		if err != nil {
			return nil, err
		}
		rep.Exec = ex
	}
	if s, err := timeCmd(ctx, cfg.Spawner, []string{"true"}); err == nil {
		rep.RSSFloor = s.MaxRSS
	}
	for _, rt := range rts {
		if len(rt.Wrapper) > 0 {
			var samples []Sample
			for i := 0; i < cfg.Rounds; i++ {
				s, err := timeCmd(ctx, cfg.Spawner, append(append([]string(nil), rt.Wrapper...), "true"))
				if err != nil {
					return nil, fmt.Errorf("wrapper of %s: %w", rt.Name, err)
				}
				samples = append(samples, s)
			}
			rep.WrapperOverhead = Percentile(samples, 50)
			break
		}
	}
	return rep, nil
}

// measureExec starts one long-running container per runtime and times
// `exec ID true` into it, the runtimes alternating each round.
func measureExec(ctx context.Context, cfg Config, rts []Runtime, work string, logf func(string, ...any)) ([]ExecResult, error) {
	b := filepath.Join(work, "bundle-exec")
	if err := os.MkdirAll(b, 0o755); err != nil {
		return nil, err
	}
	if _, err := bundle.Create(b, "sleep", "3600"); err != nil {
		return nil, err
	}
	samples := make([][]Sample, len(rts))
	for _, rt := range rts {
		id := rt.Name + "-bench-exec"
		argv := rt.argv("run", "--detach", "--bundle", b, id)
		// The container inherits the command's stdio: a file, not a pipe,
		// or reading its output would wait for the container to exit.
		errf, err := os.CreateTemp(work, "run-detach-")
		if err != nil {
			return nil, err
		}
		cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
		cmd.Stdout, cmd.Stderr = errf, errf
		err = cmd.Run()
		errf.Close()
		if err != nil {
			out, _ := os.ReadFile(errf.Name())
			return nil, fmt.Errorf("%s run --detach: %v: %s", rt.Name, err, out)
		}
		del := rt.argv("delete", "--force", id)
		defer exec.Command(del[0], del[1:]...).Run()
	}
	for round := 0; round < cfg.Rounds; round++ {
		for j := range rts {
			k := (round + j) % len(rts)
			rt := rts[k]
			s, err := timeCmd(ctx, cfg.Spawner, rt.argv("exec", rt.Name+"-bench-exec", "true"))
			if err != nil {
				return nil, fmt.Errorf("%s exec round %d: %w", rt.Name, round, err)
			}
			samples[k] = append(samples[k], s)
		}
	}
	logf("exec: %d rounds done", cfg.Rounds)
	var out []ExecResult
	for i, rt := range rts {
		out = append(out, ExecResult{Runtime: rt.Name, Median: Percentile(samples[i], 50), P90: Percentile(samples[i], 90)})
	}
	return out, nil
}

// runOnce runs one container to completion and checks it left no state.
func runOnce(ctx context.Context, spawner string, rt Runtime, bundleDir, id string) (Sample, error) {
	id = rt.Name + "-" + id
	s, err := timeCmd(ctx, spawner, rt.argv("run", "--bundle", bundleDir, id))
	if err != nil {
		// Don't let one failure poison the following runs.
		del := rt.argv("delete", "--force", id)
		exec.CommandContext(ctx, del[0], del[1:]...).Run()
		return s, err
	}
	return s, nil
}

// timeCmd runs argv with stdio on /dev/null (stderr captured for errors)
// and returns its wall time and peak RSS, through spawner if set.
func timeCmd(ctx context.Context, spawner string, argv []string) (Sample, error) {
	if spawner != "" {
		return spawn(ctx, spawner, argv)
	}
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	start := time.Now()
	err := cmd.Run()
	wall := time.Since(start)
	var s Sample
	s.Wall = wall
	if cmd.ProcessState != nil {
		if ru, ok := cmd.ProcessState.SysUsage().(*syscall.Rusage); ok {
			s.MaxRSS = ru.Maxrss
		}
	}
	if err != nil {
		return s, fmt.Errorf("%s: %w: %s", strings.Join(argv, " "), err, strings.TrimSpace(stderr.String()))
	}
	return s, nil
}

// Percentile returns the p-th percentile (nearest rank) of the wall times.
func Percentile(samples []Sample, p int) time.Duration {
	if len(samples) == 0 {
		return 0
	}
	d := make([]time.Duration, len(samples))
	for i, s := range samples {
		d[i] = s.Wall
	}
	sort.Slice(d, func(i, j int) bool { return d[i] < d[j] })
	rank := (p*len(d) + 99) / 100 // ceil(p/100 * n)
	if rank < 1 {
		rank = 1
	}
	return d[rank-1]
}

// Version returns the first line of `bin --version`, or why not.
func Version(bin string) string {
	out, err := exec.Command(bin, "--version").CombinedOutput()
	line, _, _ := strings.Cut(strings.TrimSpace(string(out)), "\n")
	if err != nil && line == "" {
		return "unknown (" + err.Error() + ")"
	}
	return line
}

// Machine describes the host.
type Machine struct {
	NProc  int
	Kernel string
	CPU    string
	MemKiB int64
	Go     string
}

// ReadMachine gathers the host description.
func ReadMachine() Machine {
	var m Machine
	m.NProc = runtime.NumCPU()
	var u syscall.Utsname
	if syscall.Uname(&u) == nil {
		m.Kernel = cstr(u.Release[:]) + " " + cstr(u.Machine[:])
	}
	if data, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, l := range strings.Split(string(data), "\n") {
			if k, v, ok := strings.Cut(l, ":"); ok && strings.TrimSpace(k) == "model name" {
				m.CPU = strings.TrimSpace(v)
				break
			}
		}
	}
	if data, err := os.ReadFile("/proc/meminfo"); err == nil {
		fmt.Sscanf(string(data), "MemTotal: %d kB", &m.MemKiB)
	}
	if out, err := exec.Command("go", "version").Output(); err == nil {
		m.Go = strings.TrimSpace(string(out))
	}
	return m
}

func cstr[T int8 | uint8](b []T) string {
	var sb strings.Builder
	for _, c := range b {
		if c == 0 {
			break
		}
		sb.WriteByte(byte(c))
	}
	return sb.String()
}

// ErrNoRuntimes is returned by Run when the configuration names none.
var ErrNoRuntimes = errors.New("no runtimes to measure")
