package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"runtime/debug"
	"strconv"
	"strings"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"github.com/spf13/cobra"

	"github.com/skiff-containers/skiff/errdefs"
	"github.com/skiff-containers/skiff/runtime/caps"
	"github.com/skiff-containers/skiff/runtime/spec"
)

func pauseCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "pause CONTAINER_ID",
		Short: "freeze every process of a running container",
		Args:  exactArgs(1, "a container id"),
		RunE: func(cmd *cobra.Command, args []string) error {
			return g.runtime().Pause(cmd.Context(), args[0])
		},
	}
}

func resumeCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "resume CONTAINER_ID",
		Short: "thaw a paused container",
		Args:  exactArgs(1, "a container id"),
		RunE: func(cmd *cobra.Command, args []string) error {
			return g.runtime().Resume(cmd.Context(), args[0])
		},
	}
}

func psCmd(g *globals) *cobra.Command {
	var format string
	cmd := &cobra.Command{
		Use:   "ps [-f table|json] CONTAINER_ID [ps options]",
		Short: "list the processes of a container (ps options default to -ef)",
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) < 1 {
				return fmt.Errorf("ps: expects a container id: %w", errdefs.ErrInvalidArgument)
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			pids, err := g.runtime().Pids(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			switch format {
			case "json":
				if pids == nil {
					pids = []int{}
				}
				b, _ := json.Marshal(pids)
				fmt.Println(string(b))
				return nil
			case "table":
			default:
				return fmt.Errorf("ps --format %q: must be table or json: %w", format, errdefs.ErrInvalidArgument)
			}
			psArgs := args[1:]
			if len(psArgs) == 0 {
				psArgs = []string{"-ef"}
			}
			out, err := exec.Command("ps", psArgs...).Output()
			if err != nil {
				return fmt.Errorf("ps %s: %w", strings.Join(psArgs, " "), err)
			}
			return filterPs(os.Stdout, out, pids)
		},
	}
	cmd.Flags().StringVarP(&format, "format", "f", "table", "table or json")
	cmd.Flags().SetInterspersed(false)
	return cmd
}

// filterPs keeps ps's header and the lines whose PID column is one of pids.
func filterPs(w io.Writer, out []byte, pids []int) error {
	lines := strings.Split(strings.TrimRight(string(out), "\n"), "\n")
	if len(lines) == 0 {
		return nil
	}
	col := -1
	for i, f := range strings.Fields(lines[0]) {
		if f == "PID" {
			col = i
			break
		}
	}
	if col < 0 {
		return fmt.Errorf("ps: its output has no PID column; give options that print one: %w", errdefs.ErrInvalidArgument)
	}
	in := make(map[string]bool, len(pids))
	for _, p := range pids {
		in[strconv.Itoa(p)] = true
	}
	fmt.Fprintln(w, lines[0])
	for _, l := range lines[1:] {
		f := strings.Fields(l)
		if col < len(f) && in[f[col]] {
			fmt.Fprintln(w, l)
		}
	}
	return nil
}

func updateCmd(g *globals) *cobra.Command {
	var (
		resFile                                string
		blkioWeight                            uint16
		cpuPeriod, cpuRtPeriod                 uint64
		cpuQuota, cpuRtRuntime                 int64
		cpuShares                              uint64
		cpusetCpus, cpusetMems                 string
		memory, memoryReservation, memorySwap  string
		kernelMemory, kernelMemoryTCP, l3, mbw string
		pidsLimit                              int64
	)
	cmd := &cobra.Command{
		Use:   "update [flags] CONTAINER_ID",
		Short: "change the resources of a container (flags as runc's, or -r resources.json)",
		Args:  exactArgs(1, "a container id"),
		RunE: func(cmd *cobra.Command, args []string) error {
			if l3 != "" || mbw != "" {
				return fmt.Errorf("update: Intel RDT (--l3-cache-schema, --mem-bw-schema) is not supported: %w", errdefs.ErrNotImplemented)
			}
			if kernelMemory != "" || kernelMemoryTCP != "" {
				return fmt.Errorf("update: kernel memory limits are deprecated by the kernel and not supported: %w", errdefs.ErrNotImplemented)
			}
			var res specs.LinuxResources
			if resFile != "" {
				var r io.Reader
				if resFile == "-" {
					r = os.Stdin
				} else {
					f, err := os.Open(resFile)
					if err != nil {
						return fmt.Errorf("update --resources %s: %w", resFile, err)
					}
					defer f.Close()
					r = f
				}
				dec := json.NewDecoder(bufio.NewReader(r))
				if err := dec.Decode(&res); err != nil {
					return fmt.Errorf("update --resources %s: invalid JSON: %v: %w", resFile, err, errdefs.ErrInvalidArgument)
				}
			}
			fl := cmd.Flags()
			cpu := func() *specs.LinuxCPU {
				if res.CPU == nil {
					res.CPU = &specs.LinuxCPU{}
				}
				return res.CPU
			}
			mem := func() *specs.LinuxMemory {
				if res.Memory == nil {
					res.Memory = &specs.LinuxMemory{}
				}
				return res.Memory
			}
			if fl.Changed("blkio-weight") {
				res.BlockIO = &specs.LinuxBlockIO{Weight: &blkioWeight}
			}
			if fl.Changed("cpu-period") {
				cpu().Period = &cpuPeriod
			}
			if fl.Changed("cpu-quota") {
				cpu().Quota = &cpuQuota
			}
			if fl.Changed("cpu-share") {
				cpu().Shares = &cpuShares
			}
			if fl.Changed("cpu-rt-period") {
				cpu().RealtimePeriod = &cpuRtPeriod
			}
			if fl.Changed("cpu-rt-runtime") {
				cpu().RealtimeRuntime = &cpuRtRuntime
			}
			if fl.Changed("cpuset-cpus") {
				cpu().Cpus = cpusetCpus
			}
			if fl.Changed("cpuset-mems") {
				cpu().Mems = cpusetMems
			}
			for _, m := range []struct {
				flag, val string
				dst       **int64
			}{
				{"memory", memory, &mem().Limit},
				{"memory-reservation", memoryReservation, &mem().Reservation},
				{"memory-swap", memorySwap, &mem().Swap},
			} {
				if !fl.Changed(m.flag) {
					continue
				}
				n, err := parseBytes(m.val)
				if err != nil {
					return fmt.Errorf("--%s: %w", m.flag, err)
				}
				*m.dst = &n
			}
			if res.Memory != nil && res.Memory.Limit == nil && res.Memory.Reservation == nil && res.Memory.Swap == nil &&
				res.Memory.Swappiness == nil && res.Memory.DisableOOMKiller == nil {
				res.Memory = nil
			}
			if fl.Changed("pids-limit") {
				res.Pids = &specs.LinuxPids{Limit: &pidsLimit}
			}
			return g.runtime().Update(cmd.Context(), args[0], &res)
		},
	}
	f := cmd.Flags()
	f.StringVarP(&resFile, "resources", "r", "", "path to a JSON file of linux.resources (\"-\" reads stdin)")
	f.Uint16Var(&blkioWeight, "blkio-weight", 0, "block IO weight (10-1000)")
	f.Uint64Var(&cpuPeriod, "cpu-period", 0, "CPU CFS period in microseconds")
	f.Int64Var(&cpuQuota, "cpu-quota", 0, "CPU CFS quota in microseconds")
	f.Uint64Var(&cpuShares, "cpu-share", 0, "CPU shares (relative weight)")
	f.Uint64Var(&cpuRtPeriod, "cpu-rt-period", 0, "CPU realtime period in microseconds")
	f.Int64Var(&cpuRtRuntime, "cpu-rt-runtime", 0, "CPU realtime runtime in microseconds")
	f.StringVar(&cpusetCpus, "cpuset-cpus", "", "CPUs to use (0-3, 0,1)")
	f.StringVar(&cpusetMems, "cpuset-mems", "", "memory nodes to use")
	f.StringVar(&memory, "memory", "", "memory limit (bytes, or with k, m, g)")
	f.StringVar(&memoryReservation, "memory-reservation", "", "memory soft limit")
	f.StringVar(&memorySwap, "memory-swap", "", "memory plus swap limit (-1: unlimited)")
	f.StringVar(&kernelMemory, "kernel-memory", "", "kernel memory limit (not supported)")
	f.StringVar(&kernelMemoryTCP, "kernel-memory-tcp", "", "kernel TCP memory limit (not supported)")
	f.Int64Var(&pidsLimit, "pids-limit", 0, "maximum number of processes (-1: unlimited)")
	f.StringVar(&l3, "l3-cache-schema", "", "Intel RDT L3 schema (not supported)")
	f.StringVar(&mbw, "mem-bw-schema", "", "Intel RDT memory bandwidth schema (not supported)")
	return cmd
}

// parseBytes reads a size as runc's update does: a number of bytes, or with
// a k/m/g/t suffix (binary units, optional b), or -1 for unlimited.
func parseBytes(s string) (int64, error) {
	if s == "-1" {
		return -1, nil
	}
	t := strings.ToLower(strings.TrimSpace(s))
	t = strings.TrimSuffix(t, "b")
	mult := int64(1)
	if n := len(t); n > 0 {
		switch t[n-1] {
		case 'k':
			mult = 1 << 10
		case 'm':
			mult = 1 << 20
		case 'g':
			mult = 1 << 30
		case 't':
			mult = 1 << 40
		}
		if mult != 1 {
			t = t[:n-1]
		}
	}
	v, err := strconv.ParseFloat(t, 64)
	if err != nil || v < 0 || v*float64(mult) > 1<<62 {
		return 0, fmt.Errorf("invalid size %q: use a number of bytes or a number with k, m, g or t: %w", s, errdefs.ErrInvalidArgument)
	}
	return int64(v * float64(mult)), nil
}

// event is one line of `events`, as runc prints it.
type event struct {
	Type string `json:"type"`
	ID   string `json:"id"`
	Data any    `json:"data,omitempty"`
}

func eventsCmd(g *globals) *cobra.Command {
	var stats bool
	var interval time.Duration
	cmd := &cobra.Command{
		Use:   "events [--stats] [--interval 5s] CONTAINER_ID",
		Short: "print the container's resource usage and OOM events as JSON lines",
		Args:  exactArgs(1, "a container id"),
		RunE: func(cmd *cobra.Command, args []string) error {
			id := args[0]
			rt := g.runtime()
			debug.SetGCPercent(100) // events may stream for a long time
			if interval <= 0 {
				return fmt.Errorf("events --interval %v: must be positive: %w", interval, errdefs.ErrInvalidArgument)
			}
			enc := json.NewEncoder(os.Stdout)
			printStats := func() error {
				st, err := rt.Stats(cmd.Context(), id)
				if err != nil {
					return err
				}
				return enc.Encode(event{Type: "stats", ID: id, Data: st})
			}
			if stats {
				return printStats()
			}
			if _, err := rt.State(cmd.Context(), id); err != nil {
				return err
			}
			oom, stop, err := rt.OOMNotifier(cmd.Context(), id)
			if err != nil {
				g.logger.Warn("no OOM events", "err", err)
			} else {
				defer stop()
			}
			tick := time.NewTicker(interval)
			defer tick.Stop()
			for {
				select {
				case <-cmd.Context().Done():
					return nil
				case _, ok := <-oom:
					if !ok {
						oom = nil
						continue
					}
					if err := enc.Encode(event{Type: "oom", ID: id}); err != nil {
						return err
					}
				case <-tick.C:
					if !rt.Running(id) {
						return nil
					}
					if err := printStats(); err != nil {
						return err
					}
				}
			}
		},
	}
	cmd.Flags().BoolVar(&stats, "stats", false, "print the stats once and exit")
	cmd.Flags().DurationVar(&interval, "interval", 5*time.Second, "how often to print stats")
	return cmd
}

// features is the `features` document of the OCI runtime-spec
// (features.md), as runc prints it.
type features struct {
	OCIVersionMin string          `json:"ociVersionMin"`
	OCIVersionMax string          `json:"ociVersionMax"`
	Hooks         []string        `json:"hooks"`
	MountOptions  []string        `json:"mountOptions"`
	Linux         linuxFeatures   `json:"linux"`
	Annotations   json.RawMessage `json:"annotations,omitempty"`
}

type linuxFeatures struct {
	Namespaces   []string        `json:"namespaces"`
	Capabilities []string        `json:"capabilities"`
	Cgroup       map[string]bool `json:"cgroup"`
	Seccomp      map[string]any  `json:"seccomp"`
	Apparmor     map[string]bool `json:"apparmor"`
	Selinux      map[string]bool `json:"selinux"`
	// MountExtensions: ID-mapped bind mounts (mounts[].uidMappings,
	// "idmap"/"ridmap"), with or without the container's own user namespace.
	MountExtensions map[string]map[string]bool `json:"mountExtensions"`
}

func featuresCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "features",
		Short: "print what this runtime supports, as the OCI features document",
		Args:  exactArgs(0, "no arguments"),
		RunE: func(cmd *cobra.Command, args []string) error {
			f := features{
				OCIVersionMin: "1.0.0",
				OCIVersionMax: specs.Version,
				Hooks:         []string{"prestart", "createRuntime", "createContainer", "startContainer", "poststart", "poststop"},
				MountOptions:  spec.MountOptionNames(),
				Linux: linuxFeatures{
					Namespaces:   []string{"cgroup", "ipc", "mount", "network", "pid", "time", "user", "uts"},
					Capabilities: caps.Names(),
					Cgroup:       map[string]bool{"v1": true, "v2": true, "systemd": false, "systemdUser": false},
					Seccomp: map[string]any{
						"enabled": true,
						"actions": []string{"SCMP_ACT_ALLOW", "SCMP_ACT_ERRNO", "SCMP_ACT_KILL", "SCMP_ACT_KILL_PROCESS",
							"SCMP_ACT_KILL_THREAD", "SCMP_ACT_LOG", "SCMP_ACT_TRACE", "SCMP_ACT_TRAP"},
						"operators": []string{"SCMP_CMP_EQ", "SCMP_CMP_GE", "SCMP_CMP_GT", "SCMP_CMP_LE", "SCMP_CMP_LT",
							"SCMP_CMP_MASKED_EQ", "SCMP_CMP_NE"},
						"archs": []string{"SCMP_ARCH_X86", "SCMP_ARCH_X86_64", "SCMP_ARCH_X32", "SCMP_ARCH_AARCH64",
							"SCMP_ARCH_ARM", "SCMP_ARCH_MIPS", "SCMP_ARCH_MIPS64", "SCMP_ARCH_MIPSEL", "SCMP_ARCH_MIPSEL64",
							"SCMP_ARCH_PPC", "SCMP_ARCH_PPC64", "SCMP_ARCH_PPC64LE", "SCMP_ARCH_RISCV64", "SCMP_ARCH_S390",
							"SCMP_ARCH_S390X"},
						"knownFlags":     []string{"SECCOMP_FILTER_FLAG_TSYNC", "SECCOMP_FILTER_FLAG_LOG", "SECCOMP_FILTER_FLAG_SPEC_ALLOW", "SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV"},
						"supportedFlags": []string{"SECCOMP_FILTER_FLAG_TSYNC", "SECCOMP_FILTER_FLAG_LOG", "SECCOMP_FILTER_FLAG_SPEC_ALLOW", "SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV"},
					},
					Apparmor:        map[string]bool{"enabled": false},
					Selinux:         map[string]bool{"enabled": false},
					MountExtensions: map[string]map[string]bool{"idmap": {"enabled": true}},
				},
			}
			var buf bytes.Buffer
			enc := json.NewEncoder(&buf)
			enc.SetIndent("", "    ")
			if err := enc.Encode(f); err != nil {
				return err
			}
			_, err := os.Stdout.Write(buf.Bytes())
			return err
		},
	}
}
