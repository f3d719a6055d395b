package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/spf13/cobra"

	skiffv1 "github.com/skiff-containers/skiff/api/skiff/v1"
)

// pauseCommand is `pause` or `unpause` (use).
func (a *app) pauseCommand(use string) *cobra.Command {
	short := "Pause all processes within one or more containers"
	if use == "unpause" {
		short = "Unpause all processes within one or more containers"
	}
	return &cobra.Command{
		Use:   use + " CONTAINER [CONTAINER...]",
		Short: short,
		Args:  minArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx, c, err := a.connect(cmd.Context())
			if err != nil {
				return err
			}
			return a.eachArg(args, func(id string) error {
				var err error
				if use == "pause" {
					_, err = c.containers.Pause(ctx, &skiffv1.PauseContainerRequest{Id: id})
				} else {
					_, err = c.containers.Unpause(ctx, &skiffv1.PauseContainerRequest{Id: id})
				}
				if err != nil {
					return a.fromDaemon(err)
				}
				fmt.Fprintln(a.env.Stdout, id)
				return nil
			})
		},
	}
}

func (a *app) renameCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "rename CONTAINER NEW_NAME",
		Short: "Rename a container",
		Args:  exactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			if strings.TrimSpace(args[1]) == "" {
				return &statusError{code: exitGeneral, msg: "Error: neither old nor new names may be empty"}
			}
			ctx, c, err := a.connect(cmd.Context())
			if err != nil {
				return err
			}
			if _, err := c.containers.Rename(ctx, &skiffv1.RenameContainerRequest{Id: args[0], Name: args[1]}); err != nil {
				return a.fromDaemon(err)
			}
			return nil
		},
	}
}

type updateFlags struct {
	res     resourceFlags // secflags.go, shared with run and create
	restart string
}

// toRequest builds the Update request for id from the flags the user set.
func (o *updateFlags) toRequest(id string, changed func(string) bool) (*skiffv1.UpdateContainerRequest, error) {
	req := &skiffv1.UpdateContainerRequest{Id: id}
	r, err := o.res.toResources(changed)
	if err != nil {
		return nil, err
	}
	if r != nil && changed("pids-limit") && r.PidsLimit == 0 {
		r.PidsLimit = -1 // docker: 0 means unlimited here
	}
	req.Resources = r
	if changed("restart") {
		p, err := parseRestartPolicy(o.restart)
		if err != nil {
			return nil, err
		}
		if p == nil {
			p = &skiffv1.RestartPolicy{Name: "no"}
		}
		req.RestartPolicy = p
	}
	if req.Resources == nil && req.RestartPolicy == nil {
		return nil, &statusError{code: exitGeneral, msg: "You must provide one or more flags when using this command."}
	}
	return req, nil
}

func (a *app) updateCommand() *cobra.Command {
	var o updateFlags
	cmd := &cobra.Command{
		Use:   "update [OPTIONS] CONTAINER [CONTAINER...]",
		Short: "Update configuration of one or more containers",
		Args:  minArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if _, err := o.toRequest("", cmd.Flags().Changed); err != nil {
				return err
			}
			ctx, c, err := a.connect(cmd.Context())
			if err != nil {
				return err
			}
			return a.eachArg(args, func(id string) error {
				req, _ := o.toRequest(id, cmd.Flags().Changed)
				if _, err := c.containers.Update(ctx, req); err != nil {
					return a.fromDaemon(err)
				}
				fmt.Fprintln(a.env.Stdout, id)
				return nil
			})
		},
	}
	f := cmd.Flags()
	addResourceFlags(f, &o.res)
	f.StringVar(&o.restart, "restart", "", "Restart policy to apply when a container exits")
	return cmd
}

func (a *app) topCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "top CONTAINER [ps OPTIONS]",
		Short: "Display the running processes of a container",
		Args:  minArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx, c, err := a.connect(cmd.Context())
			if err != nil {
				return err
			}
			resp, err := c.containers.Top(ctx, &skiffv1.TopRequest{Id: args[0], PsArgs: args[1:]})
			if err != nil {
				return a.fromDaemon(err)
			}
			writeTop(a.env.Stdout, resp)
			return nil
		},
	}
	cmd.Flags().SetInterspersed(false)
	return cmd
}

// writeTop prints top's table as docker does.
func writeTop(w io.Writer, resp *skiffv1.TopResponse) {
	tw := newTable(w)
	fmt.Fprintln(tw, strings.Join(resp.GetTitles(), "\t"))
	for _, p := range resp.GetProcesses() {
		fmt.Fprintln(tw, strings.Join(p.GetFields(), "\t"))
	}
	tw.Flush()
}

// statsEntry is what `stats` shows of one container: its last two
// samples.
type statsEntry struct {
	ref        string
	prev, last *skiffv1.ContainerStats
	err        error
	done       bool
}

// statsRow is one line of `stats`; its methods are docker's --format
// fields.
type statsRow struct {
	e       statsEntry
	noTrunc bool
}

func (r statsRow) Container() string { return r.e.ref }
func (r statsRow) ID() string {
	if r.e.last == nil {
		return r.e.ref
	}
	if r.noTrunc {
		return r.e.last.GetId()
	}
	return shortID(r.e.last.GetId())
}
func (r statsRow) Name() string {
	if r.e.last == nil {
		return "--"
	}
	return strings.TrimPrefix(r.e.last.GetName(), "/")
}

// CPUPerc is docker's: the container's share of the host's CPU time
// between two samples, times the online CPUs.
func (r statsRow) CPUPerc() string {
	p, l := r.e.prev, r.e.last
	if p == nil || l == nil {
		return "0.00%"
	}
	cpu := float64(l.GetCpuUsageNs()) - float64(p.GetCpuUsageNs())
	sys := float64(l.GetSystemCpuNs()) - float64(p.GetSystemCpuNs())
	if cpu <= 0 || sys <= 0 {
		return "0.00%"
	}
	return fmt.Sprintf("%.2f%%", cpu/sys*float64(l.GetOnlineCpus())*100)
}
func (r statsRow) MemUsage() string {
	l := r.e.last
	if l == nil {
		return "-- / --"
	}
	return bytesSize(float64(l.GetMemoryUsage())) + " / " + bytesSize(float64(l.GetMemoryLimit()))
}
func (r statsRow) MemPerc() string {
	l := r.e.last
	if l == nil || l.GetMemoryLimit() == 0 {
		return "0.00%"
	}
	return fmt.Sprintf("%.2f%%", float64(l.GetMemoryUsage())/float64(l.GetMemoryLimit())*100)
}
func (r statsRow) NetIO() string {
	l := r.e.last
	if l == nil {
		return "-- / --"
	}
	return humanSize(float64(l.GetNetRx())) + " / " + humanSize(float64(l.GetNetTx()))
}
func (r statsRow) BlockIO() string {
	l := r.e.last
	if l == nil {
		return "-- / --"
	}
	return humanSize(float64(l.GetBlockRead())) + " / " + humanSize(float64(l.GetBlockWrite()))
}
func (r statsRow) PIDs() string {
	if r.e.last == nil {
		return "--"
	}
	return strconv.FormatUint(r.e.last.GetPids(), 10)
}
func (r statsRow) jsonFields() map[string]any {
	return map[string]any{
		"Container": r.Container(), "ID": r.ID(), "Name": r.Name(), "CPUPerc": r.CPUPerc(),
		"MemUsage": r.MemUsage(), "MemPerc": r.MemPerc(), "NetIO": r.NetIO(), "BlockIO": r.BlockIO(), "PIDs": r.PIDs(),
	}
}

func statsHeaders() map[string]string {
	return map[string]string{
		"Container": "CONTAINER", "ID": "CONTAINER ID", "Name": "NAME", "CPUPerc": "CPU %",
		"MemUsage": "MEM USAGE / LIMIT", "MemPerc": "MEM %", "NetIO": "NET I/O", "BlockIO": "BLOCK I/O", "PIDs": "PIDS",
	}
}

const statsTable = "{{.ID}}\t{{.Name}}\t{{.CPUPerc}}\t{{.MemUsage}}\t{{.MemPerc}}\t{{.NetIO}}\t{{.BlockIO}}\t{{.PIDs}}"

type statsOptions struct {
	all, noStream, noTrunc bool
	format                 string
}

func (a *app) statsCommand() *cobra.Command {
	var o statsOptions
	cmd := &cobra.Command{
		Use:   "stats [OPTIONS] [CONTAINER...]",
		Short: "Display a live stream of container(s) resource usage statistics",
		RunE: func(cmd *cobra.Command, args []string) error {
			return a.stats(cmd.Context(), o, args)
		},
	}
	f := cmd.Flags()
	f.BoolVarP(&o.all, "all", "a", false, "Show all containers (default shows just running)")
	f.BoolVar(&o.noStream, "no-stream", false, "Disable streaming stats and only pull the first result")
	f.BoolVar(&o.noTrunc, "no-trunc", false, "Do not truncate output")
	f.StringVar(&o.format, "format", "", "Format output using a Go template, 'table' or 'json'")
	return cmd
}

// stats streams every named container's samples (all running ones when
// none is named) and renders them: once, after two samples each, with
// --no-stream; else every second, redrawing the screen as docker does.
func (a *app) stats(ctx context.Context, o statsOptions, refs []string) error {
	ctx, c, err := a.connect(ctx)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	if len(refs) == 0 {
		resp, err := c.containers.List(ctx, &skiffv1.ListContainersRequest{All: o.all})
		if err != nil {
			return a.fromDaemon(err)
		}
		for _, ctr := range resp.GetContainers() {
			refs = append(refs, ctr.GetId())
		}
	}
	var mu sync.Mutex
	entries := make([]statsEntry, len(refs))
	changed := make(chan struct{}, 1)
	notify := func() {
		select {
		case changed <- struct{}{}:
		default:
		}
	}
	var wg sync.WaitGroup
	for i, ref := range refs {
		entries[i].ref = ref
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer notify()
			stream, err := c.containers.Stats(ctx, &skiffv1.StatsRequest{Id: ref, Stream: true})
			for err == nil {
				var s *skiffv1.ContainerStats
				if s, err = stream.Recv(); err == nil {
					mu.Lock()
					entries[i].prev, entries[i].last = entries[i].last, s
					n := entries[i].prev != nil
					mu.Unlock()
					if n || !o.noStream {
						notify()
					}
					if n && o.noStream {
						break
					}
				}
			}
			mu.Lock()
			if err != nil && !errors.Is(err, io.EOF) && ctx.Err() == nil {
				entries[i].err = a.fromDaemon(err)
			}
			entries[i].done = true
			mu.Unlock()
		}()
	}
	allDone := make(chan struct{})
	go func() { wg.Wait(); close(allDone) }()
	render := func(clear bool) error {
		mu.Lock()
		rows := make([]row, 0, len(entries))
		var errs []error
		for _, e := range entries {
			if e.err != nil {
				errs = append(errs, e.err)
				continue
			}
			rows = append(rows, statsRow{e: e, noTrunc: o.noTrunc})
		}
		mu.Unlock()
		if clear {
			io.WriteString(a.env.Stdout, "\033[2J\033[H")
		}
		if err := (formatter{format: o.format, headers: statsHeaders(), defaultTable: statsTable}).render(a.env.Stdout, rows); err != nil {
			return err
		}
		if len(errs) > 0 {
			for _, err := range errs {
				fmt.Fprintln(a.env.Stderr, err)
			}
			return &statusError{code: exitGeneral}
		}
		return nil
	}
	if o.noStream {
		select {
		case <-allDone:
		case <-ctx.Done():
			return ctx.Err()
		}
		return render(false)
	}
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
			if err := render(true); err != nil {
				return err
			}
		case <-allDone:
			return render(true)
		}
	}
}
