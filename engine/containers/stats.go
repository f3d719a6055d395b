package containers

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"time"

	"github.com/skiff-containers/skiff/engine/metadata"
	"github.com/skiff-containers/skiff/errdefs"
)

// statsInterval is how often a stats stream samples, as docker's.
const statsInterval = time.Second

// Top lists the processes of a running (or paused) container as the
// host's ps shows them with psArgs (default "-ef"): the header's titles
// and a row per process of the container, the last column (the command)
// kept whole. The container's pids come from the runtime's ps.
func (s *Service) Top(ctx context.Context, ns, idOrName string, psArgs []string) (titles []string, rows [][]string, err error) {
	rec, err := s.resolve(ns, idOrName)
	if err != nil {
		return nil, nil, err
	}
	if !s.view(ns, rec).Running() {
		return nil, nil, &StateError{ID: idOrName, Op: opTop, Status: status(rec)}
	}
	if len(psArgs) == 0 {
		psArgs = []string{"-ef"}
	}
	for _, a := range psArgs {
		if strings.ContainsAny(a, "\x00\n") {
			return nil, nil, fmt.Errorf("top container %s: ps argument %q: %w", idOrName, a, errdefs.ErrInvalidArgument)
		}
	}
	out, err := s.runtimeOf(ns, rec).run(ctx, "ps", "--format", "json", rec.ID)
	if err != nil {
		return nil, nil, fmt.Errorf("top container %s: the runtime's ps: %w", idOrName, err)
	}
	var pids []int
	if err := json.Unmarshal(bytes.TrimSpace(out), &pids); err != nil {
		return nil, nil, fmt.Errorf("top container %s: the runtime's ps printed %q: %w", idOrName, out, err)
	}
	cmd := exec.CommandContext(ctx, "ps", psArgs...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	psOut, err := cmd.Output()
	if err != nil {
		return nil, nil, fmt.Errorf("top container %s: ps %s: %v: %s: %w", idOrName, strings.Join(psArgs, " "), err, strings.TrimSpace(stderr.String()), errdefs.ErrInvalidArgument)
	}
	titles, rows, err = parsePS(psOut, pids)
	if err != nil {
		return nil, nil, fmt.Errorf("top container %s: %w", idOrName, err)
	}
	return titles, rows, nil
}

// parsePS keeps the rows of ps's output whose PID is one of pids, as
// docker's top does: fields split on white space, the last title's
// column taking the rest of the line.
func parsePS(out []byte, pids []int) ([]string, [][]string, error) {
	lines := strings.Split(strings.TrimRight(string(out), "\n"), "\n")
	titles := strings.Fields(lines[0])
	col := -1
	for i, t := range titles {
		if t == "PID" {
			col = i
			break
		}
	}
	if col < 0 {
		return nil, nil, fmt.Errorf("couldn't find PID field in ps output: give ps options that print it: %w", errdefs.ErrInvalidArgument)
	}
	in := make(map[string]bool, len(pids))
	for _, p := range pids {
		in[strconv.Itoa(p)] = true
	}
	rows := [][]string{}
	for _, l := range lines[1:] {
		f := strings.Fields(l)
		if len(f) < len(titles) || !in[f[col]] {
			continue
		}
		row := append(f[:len(titles)-1:len(titles)-1], strings.Join(f[len(titles)-1:], " "))
		rows = append(rows, row)
	}
	return titles, rows, nil
}

// Stats is one sample of a container's resource usage (docker's stats
// columns come from two consecutive samples).
type Stats struct {
	ID, Name string
	Read     time.Time
	// CPUUsage is the container's cumulative CPU time; SystemCPU the
	// host's, both in nanoseconds.
	CPUUsage, SystemCPU uint64
	OnlineCPUs          uint32
	// MemoryUsage excludes the page cache's inactive files, as docker's;
	// MemoryLimit is the host's memory when the container has no limit.
	MemoryUsage, MemoryLimit uint64
	Pids                     uint64
	NetRx, NetTx             uint64
	BlockRead, BlockWrite    uint64
}

// Stats sends samples of the container's resource usage to send: one,
// or with stream one a second until ctx ends or the container stops. A
// container that does not run gives one sample of zeros, as docker's.
func (s *Service) Stats(ctx context.Context, ns, idOrName string, stream bool, send func(Stats) error) error {
	rec, err := s.resolve(ns, idOrName)
	if err != nil {
		return err
	}
	for {
		rec, err = s.cfg.DB.GetContainer(ns, rec.ID)
		if err != nil {
			if errdefs.IsNotFound(err) && stream {
				return nil // removed meanwhile
			}
			return err
		}
		st := Stats{ID: rec.ID, Name: rec.Name, Read: time.Now().UTC()}
		running := s.view(ns, rec).Running()
		if running {
			if err := s.sample(ctx, ns, rec, &st); err != nil {
				if cur, gerr := s.cfg.DB.GetContainer(ns, rec.ID); gerr == nil && !s.view(ns, cur).Running() {
					running = false // it stopped while sampled
				} else {
					return fmt.Errorf("stats of container %s: %w", idOrName, err)
				}
			}
		}
		if err := send(st); err != nil {
			return err
		}
		if !stream {
			return nil
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(statsInterval):
		}
	}
}

// runtimeStats is what Stats reads of the runtime's `events --stats`
// (runc's format).
type runtimeStats struct {
	Data struct {
		CPU struct {
			Usage struct {
				Total  uint64   `json:"total"`
				Percpu []uint64 `json:"percpu"`
			} `json:"usage"`
		} `json:"cpu"`
		Memory struct {
			Usage struct {
				Usage uint64 `json:"usage"`
				Limit uint64 `json:"limit"`
			} `json:"usage"`
			Raw map[string]uint64 `json:"raw"`
		} `json:"memory"`
		Pids struct {
			Current uint64 `json:"current"`
		} `json:"pids"`
		Blkio struct {
			IoServiceBytesRecursive []struct {
				Op    string `json:"op"`
				Value uint64 `json:"value"`
			} `json:"ioServiceBytesRecursive"`
		} `json:"blkio"`
	} `json:"data"`
}

// sample fills st from the runtime's stats, the host's /proc/stat and
// the container's network devices.
func (s *Service) sample(ctx context.Context, ns string, rec metadata.Container, st *Stats) error {
	out, err := s.runtimeOf(ns, rec).run(ctx, "events", "--stats", rec.ID)
	if err != nil {
		return fmt.Errorf("the runtime's events --stats: %w", err)
	}
	var rs runtimeStats
	if err := json.Unmarshal(bytes.TrimSpace(out), &rs); err != nil {
		return fmt.Errorf("the runtime's events --stats printed %q: %w", out, err)
	}
	d := rs.Data
	st.CPUUsage = d.CPU.Usage.Total
	st.SystemCPU = systemCPU()
	st.OnlineCPUs = uint32(runtime.NumCPU())
	if n := len(d.CPU.Usage.Percpu); n > 0 && n < int(st.OnlineCPUs) {
		st.OnlineCPUs = uint32(n)
	}
	usage := d.Memory.Usage.Usage
	inactive := d.Memory.Raw["total_inactive_file"]
	if v, ok := d.Memory.Raw["inactive_file"]; ok && inactive == 0 {
		inactive = v
	}
	if inactive < usage {
		usage -= inactive
	}
	st.MemoryUsage = usage
	st.MemoryLimit = d.Memory.Usage.Limit
	if host := hostMemory(); host > 0 && (st.MemoryLimit == 0 || st.MemoryLimit > host) {
		st.MemoryLimit = host
	}
	st.Pids = d.Pids.Current
	for _, e := range d.Blkio.IoServiceBytesRecursive {
		switch strings.ToLower(e.Op) {
		case "read":
			st.BlockRead += e.Value
		case "write":
			st.BlockWrite += e.Value
		}
	}
	st.NetRx, st.NetTx = netDev(rec.State.Pid)
	return nil
}

// clockTicks is USER_HZ, the unit of /proc/stat (100 on Linux).
const clockTicks = 100

// systemCPU is the host's cumulative CPU time in nanoseconds, from the
// first line of /proc/stat (docker's system_cpu_usage).
func systemCPU() uint64 {
	f, err := os.Open("/proc/stat")
	if err != nil {
		return 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	if !sc.Scan() {
		return 0
	}
	fields := strings.Fields(sc.Text())
	if len(fields) < 8 || fields[0] != "cpu" {
		return 0
	}
	var total uint64
	for _, v := range fields[1:8] {
		n, _ := strconv.ParseUint(v, 10, 64)
		total += n
	}
	return total * (uint64(time.Second) / clockTicks)
}

// hostMemory is the host's MemTotal in bytes.
func hostMemory() uint64 {
	data, err := os.ReadFile("/proc/meminfo")
	if err != nil {
		return 0
	}
	for _, l := range strings.Split(string(data), "\n") {
		if f := strings.Fields(l); len(f) >= 2 && f[0] == "MemTotal:" {
			n, _ := strconv.ParseUint(f[1], 10, 64)
			return n << 10
		}
	}
	return 0
}

// netDev sums the received and sent bytes of the network devices but lo
// in the network namespace of process pid.
func netDev(pid int) (rx, tx uint64) {
	if pid <= 0 {
		return 0, 0
	}
	data, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/net/dev")
	if err != nil {
		return 0, 0
	}
	for _, l := range strings.Split(string(data), "\n") {
		name, rest, ok := strings.Cut(l, ":")
		if !ok || strings.TrimSpace(name) == "lo" {
			continue
		}
		f := strings.Fields(rest)
		if len(f) < 9 {
			continue
		}
		r, _ := strconv.ParseUint(f[0], 10, 64)
		t, _ := strconv.ParseUint(f[8], 10, 64)
		rx += r
		tx += t
	}
	return rx, tx
}
