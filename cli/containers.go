package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	skiffv1 "github.com/skiff-containers/skiff/api/skiff/v1"
)

func (a *app) runCommand() *cobra.Command {
	var o containerFlags
	cmd := &cobra.Command{
		Use:   "run [OPTIONS] IMAGE [COMMAND] [ARG...]",
		Short: "Create and run a new container from an image",
		Args:  minArgs(1),
		PreRunE: func(cmd *cobra.Command, args []string) error {
			a.engineExit = true
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			return a.runContainer(cmd.Context(), &o, cmd.Flags().Changed, args)
		},
	}
	addContainerFlags(cmd.Flags(), &o, true)
	a.detachKeysFlag(cmd)
	return cmd
}

func (a *app) createCommand() *cobra.Command {
	var o containerFlags
	cmd := &cobra.Command{
		Use:   "create [OPTIONS] IMAGE [COMMAND] [ARG...]",
		Short: "Create a new container",
		Args:  minArgs(1),
		PreRunE: func(cmd *cobra.Command, args []string) error {
			a.engineExit = true
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			cfg, err := o.toConfig(args[0], args[1:], cmd.Flags().Changed, a.env.lookupEnv)
			if err != nil {
				return err
			}
			ctx, c, err := a.connect(cmd.Context())
			if err != nil {
				return err
			}
			ctr, err := a.createContainer(ctx, c, cfg, &o)
			if err != nil {
				return err
			}
			fmt.Fprintln(a.env.Stdout, ctr.GetId())
			return nil
		},
	}
	addContainerFlags(cmd.Flags(), &o, false)
	return cmd
}

// imageMissing reports whether the daemon has no image called ref.
func (a *app) imageMissing(ctx context.Context, c *clients, ref string) bool {
	_, err := c.images.Get(ctx, &skiffv1.GetImageRequest{Name: ref})
	return err != nil && isNotFound(a.fromDaemon(err))
}

// createContainer creates the container, pulling its image first as
// --pull says (docker: "Unable to find image … locally", progress on
// stderr, then create again).
func (a *app) createContainer(ctx context.Context, c *clients, cfg *skiffv1.ContainerConfig, o *containerFlags) (*skiffv1.Container, error) {
	pullOpts := pullOptions{platform: o.platform, forRun: true}
	if o.pull == "always" {
		if _, err := a.pull(ctx, c, cfg.GetImage(), a.env.Stderr, pullOpts); err != nil {
			return nil, err
		}
	}
	resp, err := c.containers.Create(ctx, &skiffv1.CreateContainerRequest{Config: cfg})
	if err != nil {
		err = a.fromDaemon(err)
		if !isNotFound(err) || o.pull != "missing" || !a.imageMissing(ctx, c, cfg.GetImage()) {
			return nil, err
		}
		fmt.Fprintf(a.env.Stderr, "Unable to find image '%s' locally\n", familiarWithTag(cfg.GetImage()))
		if _, err := a.pull(ctx, c, cfg.GetImage(), a.env.Stderr, pullOpts); err != nil {
			return nil, err
		}
		resp, err = c.containers.Create(ctx, &skiffv1.CreateContainerRequest{Config: cfg})
		if err != nil {
			return nil, a.fromDaemon(err)
		}
	}
	for _, w := range resp.GetWarnings() {
		fmt.Fprintf(a.env.Stderr, "WARNING: %s\n", w)
	}
	return resp.GetContainer(), nil
}

// runContainer is docker's run: create (pulling if needed), then either
// start and print the id (-d), or attach, start, stream and exit with the
// container's code.
func (a *app) runContainer(ctx context.Context, o *containerFlags, changed func(string) bool, args []string) error {
	cfg, err := o.toConfig(args[0], args[1:], changed, a.env.lookupEnv)
	if err != nil {
		return err
	}
	if o.detach && o.rm && cfg.GetRestartPolicy() != nil && cfg.GetRestartPolicy().GetName() != "no" {
		return invalid("conflicting options: cannot specify both --restart and --rm")
	}
	if !o.detach && o.interactive && o.tty {
		if _, tty := isTerminal(a.env.Stdin); !tty {
			return &statusError{code: exitGeneral, msg: "the input device is not a TTY"}
		}
	}
	ctx, c, err := a.connect(ctx)
	if err != nil {
		return err
	}
	ctr, err := a.createContainer(ctx, c, cfg, o)
	if err != nil {
		return err
	}
	id := ctr.GetId()
	start := func(ctx context.Context) error {
		_, err := c.containers.Start(ctx, &skiffv1.StartContainerRequest{Id: id})
		return a.fromDaemon(err)
	}
	if o.detach {
		if err := start(ctx); err != nil {
			return err
		}
		fmt.Fprintln(a.env.Stdout, id)
		return nil
	}
	code, err := a.attachAndStart(ctx, c, id, attachOptions{
		stdin:    o.interactive,
		tty:      o.tty,
		sigProxy: o.sigProxy && !o.tty,
	}, start)
	if err != nil {
		return err
	}
	if o.rm {
		// The daemon removes it; wait so that `ps -a` no longer shows it.
		if _, err := c.containers.Wait(ctx, &skiffv1.WaitContainerRequest{Id: id, Condition: "removed"}); err != nil {
			if err := a.fromDaemon(err); !isNotFound(err) {
				a.debugf("wait for removal of %s: %v", id, err)
			}
		}
	}
	if code != 0 {
		return &statusError{code: code}
	}
	return nil
}

func (a *app) startCommand() *cobra.Command {
	var attach, interactive bool
	cmd := &cobra.Command{
		Use:   "start [OPTIONS] CONTAINER [CONTAINER...]",
		Short: "Start one or more stopped containers",
		Args:  minArgs(1),
		PreRunE: func(cmd *cobra.Command, args []string) error {
			a.engineExit = true
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx, c, err := a.connect(cmd.Context())
			if err != nil {
				return err
			}
			if attach || interactive {
				if len(args) > 1 {
					return &statusError{code: exitGeneral, msg: "you cannot start and attach multiple containers at once"}
				}
				ctr, err := c.containers.Inspect(ctx, &skiffv1.InspectContainerRequest{Id: args[0]})
				if err != nil {
					return a.fromDaemon(err)
				}
				cfg := ctr.GetConfig()
				stdin := interactive && cfg.GetOpenStdin()
				if stdin && cfg.GetTty() {
					if _, tty := isTerminal(a.env.Stdin); !tty {
						return &statusError{code: exitGeneral, msg: "the input device is not a TTY"}
					}
				}
				id := ctr.GetId()
				code, err := a.attachAndStart(ctx, c, id, attachOptions{stdin: stdin, tty: cfg.GetTty(), sigProxy: !cfg.GetTty()},
					func(ctx context.Context) error {
						_, err := c.containers.Start(ctx, &skiffv1.StartContainerRequest{Id: id})
						return a.fromDaemon(err)
					})
				if err != nil {
					return err
				}
				if code != 0 {
					return &statusError{code: code}
				}
				return nil
			}
			var failed []string
			for _, id := range args {
				if _, err := c.containers.Start(ctx, &skiffv1.StartContainerRequest{Id: id}); err != nil {
					err = a.fromDaemon(err)
					var ce *connectError
					if errors.As(err, &ce) || len(args) == 1 {
						return err
					}
					fmt.Fprintln(a.env.Stderr, err.Error())
					failed = append(failed, id)
					continue
				}
				fmt.Fprintln(a.env.Stdout, id)
			}
			if len(failed) > 0 {
				return fmt.Errorf("failed to start containers: %s", strings.Join(failed, ", "))
			}
			return nil
		},
	}
	cmd.Flags().BoolVarP(&attach, "attach", "a", false, "Attach STDOUT/STDERR and forward signals")
	cmd.Flags().BoolVarP(&interactive, "interactive", "i", false, "Attach container's STDIN")
	a.detachKeysFlag(cmd)
	return cmd
}

// timeoutFlag registers docker's -t/--timeout (alias --time) and returns
// the value to send: negative (the container's default) unless set.
func timeoutFlag(cmd *cobra.Command) func() int32 {
	var t int
	cmd.Flags().IntVarP(&t, "timeout", "t", 0, "Seconds to wait before killing the container")
	cmd.Flags().IntVar(&t, "time", 0, "Seconds to wait before killing the container (deprecated)")
	cmd.Flags().MarkHidden("time")
	return func() int32 {
		if cmd.Flags().Changed("timeout") || cmd.Flags().Changed("time") {
			return int32(t)
		}
		return -1
	}
}

func (a *app) stopCommand() *cobra.Command {
	var signal string
	cmd := &cobra.Command{
		Use:   "stop [OPTIONS] CONTAINER [CONTAINER...]",
		Short: "Stop one or more running containers",
		Args:  minArgs(1),
	}
	timeout := timeoutFlag(cmd)
	cmd.Flags().StringVarP(&signal, "signal", "s", "", "Signal to send instead of the container's stop signal")
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		ctx, c, err := a.connect(cmd.Context())
		if err != nil {
			return err
		}
		return a.eachArg(args, func(id string) error {
			if _, err := c.containers.Stop(ctx, &skiffv1.StopContainerRequest{Id: id, Timeout: timeout(), Signal: signal}); err != nil {
				return a.fromDaemon(err)
			}
			fmt.Fprintln(a.env.Stdout, id)
			return nil
		})
	}
	return cmd
}

func (a *app) restartCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "restart [OPTIONS] CONTAINER [CONTAINER...]",
		Short: "Restart one or more containers",
		Args:  minArgs(1),
	}
	timeout := timeoutFlag(cmd)
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		ctx, c, err := a.connect(cmd.Context())
		if err != nil {
			return err
		}
		return a.eachArg(args, func(id string) error {
			if _, err := c.containers.Restart(ctx, &skiffv1.RestartContainerRequest{Id: id, Timeout: timeout()}); err != nil {
				return a.fromDaemon(err)
			}
			fmt.Fprintln(a.env.Stdout, id)
			return nil
		})
	}
	return cmd
}

func (a *app) killCommand() *cobra.Command {
	var signal string
	cmd := &cobra.Command{
		Use:   "kill [OPTIONS] CONTAINER [CONTAINER...]",
		Short: "Kill one or more running containers",
		Args:  minArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			sig := "SIGKILL"
			if signal != "" {
				s, err := parseSignal(signal)
				if err != nil {
					return &statusError{code: exitGeneral, msg: "Error: " + err.Error()}
				}
				sig = s
			}
			ctx, c, err := a.connect(cmd.Context())
			if err != nil {
				return err
			}
			return a.eachArg(args, func(id string) error {
				if _, err := c.containers.Kill(ctx, &skiffv1.KillContainerRequest{Id: id, Signal: sig}); err != nil {
					return a.fromDaemon(err)
				}
				fmt.Fprintln(a.env.Stdout, id)
				return nil
			})
		},
	}
	cmd.Flags().StringVarP(&signal, "signal", "s", "", "Signal to send to the container (default KILL)")
	return cmd
}

func (a *app) rmCommand() *cobra.Command {
	var force, volumes bool
	cmd := &cobra.Command{
		Use:     "rm [OPTIONS] CONTAINER [CONTAINER...]",
		Aliases: []string{"remove"},
		Short:   "Remove one or more containers",
		Args:    minArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx, c, err := a.connect(cmd.Context())
			if err != nil {
				return err
			}
			return a.eachArg(args, func(id string) error {
				if _, err := c.containers.Remove(ctx, &skiffv1.RemoveContainerRequest{Id: id, Force: force, RemoveVolumes: volumes}); err != nil {
					return a.fromDaemon(err)
				}
				fmt.Fprintln(a.env.Stdout, id)
				return nil
			})
		},
	}
	cmd.Flags().BoolVarP(&force, "force", "f", false, "Force the removal of a running container (uses SIGKILL)")
	cmd.Flags().BoolVarP(&volumes, "volumes", "v", false, "Remove anonymous volumes associated with the container")
	return cmd
}

func (a *app) waitCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "wait CONTAINER [CONTAINER...]",
		Short: "Block until one or more containers stop, then print their exit codes",
		Args:  minArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx, c, err := a.connect(cmd.Context())
			if err != nil {
				return err
			}
			return a.eachArg(args, func(id string) error {
				resp, err := c.containers.Wait(ctx, &skiffv1.WaitContainerRequest{Id: id, Condition: "not-running"})
				if err != nil {
					return a.fromDaemon(err)
				}
				fmt.Fprintln(a.env.Stdout, resp.GetExitCode())
				return nil
			})
		},
	}
}

// containerRow is one line of `ps`; its methods are docker's --format
// fields.
type containerRow struct {
	c     *skiffv1.Container
	now   time.Time
	trunc bool
}

func (r containerRow) ID() string {
	if r.trunc {
		return shortID(r.c.GetId())
	}
	return r.c.GetId()
}
func (r containerRow) Names() string { return strings.TrimPrefix(r.c.GetName(), "/") }
func (r containerRow) Image() string {
	img := r.c.GetConfig().GetImage()
	if img == "" {
		img = familiarRef(r.c.GetImage())
	}
	if strings.HasPrefix(img, "sha256:") && r.trunc {
		img = shortID(img)
	}
	return img
}
func (r containerRow) Command() string {
	// As dockerd: arguments with spaces in single quotes.
	parts := []string{}
	if r.c.GetPath() != "" {
		parts = append(parts, r.c.GetPath())
	}
	for _, arg := range r.c.GetArgs() {
		if strings.Contains(arg, " ") {
			arg = "'" + arg + "'"
		}
		parts = append(parts, arg)
	}
	cmd := strings.Join(parts, " ")
	if r.trunc {
		cmd = ellipsis(cmd, 20)
	}
	return strconv.Quote(cmd)
}
func (r containerRow) CreatedAt() string {
	return unixNano(r.c.GetCreated()).Format("2006-01-02 15:04:05 -0700 MST")
}
func (r containerRow) RunningFor() string { return ago(r.now, unixNano(r.c.GetCreated())) }
func (r containerRow) Ports() string      { return formatPorts(r.c) }
func (r containerRow) State() string      { return r.c.GetStatus() }
func (r containerRow) Status() string     { return containerStatus(r.c, r.now) }
func (r containerRow) Size() string       { return "N/A" }
func (r containerRow) Mounts() string     { return mountNames(r.c, r.trunc) }
func (r containerRow) Networks() string   { return r.c.GetConfig().GetNetworkMode() }
func (r containerRow) LocalVolumes() string {
	return "0"
}
func (r containerRow) Labels() string {
	labels := r.labels()
	keys := make([]string, 0, len(labels))
	for k := range labels {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	parts := make([]string, 0, len(keys))
	for _, k := range keys {
		parts = append(parts, k+"="+labels[k])
	}
	return strings.Join(parts, ",")
}
func (r containerRow) Label(name string) string { return r.labels()[name] }
func (r containerRow) labels() map[string]string {
	if l := r.c.GetLabels(); len(l) > 0 {
		return l
	}
	return r.c.GetConfig().GetLabels()
}
func (r containerRow) jsonFields() map[string]any {
	return map[string]any{
		"ID": r.ID(), "Names": r.Names(), "Image": r.Image(), "Command": r.Command(),
		"CreatedAt": r.CreatedAt(), "RunningFor": r.RunningFor(), "Ports": r.Ports(),
		"State": r.State(), "Status": r.Status(), "Size": r.Size(), "Labels": r.Labels(),
		"Mounts": r.Mounts(), "Networks": r.Networks(), "LocalVolumes": r.LocalVolumes(),
	}
}

func containerHeaders() map[string]string {
	return map[string]string{
		"ID": "CONTAINER ID", "Names": "NAMES", "Image": "IMAGE", "Command": "COMMAND",
		"CreatedAt": "CREATED AT", "RunningFor": "CREATED", "Ports": "PORTS", "State": "STATE",
		"Status": "STATUS", "Size": "SIZE", "Labels": "LABELS", "Mounts": "MOUNTS",
		"Networks": "NETWORKS", "LocalVolumes": "LOCAL VOLUMES",
	}
}

// containerStatus is docker's STATUS column.
func containerStatus(c *skiffv1.Container, now time.Time) string {
	started, finished := unixNano(c.GetStarted()), unixNano(c.GetFinished())
	since := func(t time.Time) string {
		if t.IsZero() {
			return ""
		}
		return " " + humanDuration(now.Sub(t)) + " ago"
	}
	switch c.GetStatus() {
	case "created":
		return "Created"
	case "running":
		return "Up " + humanDuration(now.Sub(started))
	case "paused":
		return "Up " + humanDuration(now.Sub(started)) + " (Paused)"
	case "restarting":
		return fmt.Sprintf("Restarting (%d)%s", c.GetExitCode(), since(finished))
	case "exited":
		return fmt.Sprintf("Exited (%d)%s", c.GetExitCode(), since(finished))
	case "dead":
		return "Dead"
	case "removing":
		return "Removal In Progress"
	}
	if c.GetStatus() == "" {
		return ""
	}
	return strings.ToUpper(c.GetStatus()[:1]) + c.GetStatus()[1:]
}

type psOptions struct {
	all, quiet, noTrunc, latest bool
	last                        int
	format                      string
	filters                     []string
}

// psFilter is docker's -f key=value for the keys skiff supports.
func psFilter(c *skiffv1.Container, filters []string) (bool, error) {
	for _, f := range filters {
		k, v, ok := strings.Cut(f, "=")
		if !ok {
			return false, &statusError{code: exitGeneral, msg: fmt.Sprintf("Error: bad format of filter (expected name=value): %s", f)}
		}
		row := containerRow{c: c}
		switch k {
		case "id":
			if !strings.HasPrefix(c.GetId(), v) {
				return false, nil
			}
		case "name":
			if !strings.Contains(row.Names(), v) {
				return false, nil
			}
		case "status":
			if c.GetStatus() != v {
				return false, nil
			}
		case "label":
			lk, lv, hasV := strings.Cut(v, "=")
			got, has := row.labels()[lk]
			if !has || hasV && got != lv {
				return false, nil
			}
		case "ancestor":
			if familiarWithTag(c.GetImage()) != familiarWithTag(v) && c.GetImageId() != v && !strings.HasPrefix(strings.TrimPrefix(c.GetImageId(), "sha256:"), v) {
				return false, nil
			}
		default:
			return false, &statusError{code: exitGeneral, msg: fmt.Sprintf("Error response from daemon: invalid filter '%s'", k)}
		}
	}
	return true, nil
}

// writeContainers renders `ps` output.
func writeContainers(w io.Writer, ctrs []*skiffv1.Container, now time.Time, o psOptions) error {
	sort.SliceStable(ctrs, func(i, j int) bool { return ctrs[i].GetCreated() > ctrs[j].GetCreated() })
	var kept []*skiffv1.Container
	for _, c := range ctrs {
		ok, err := psFilter(c, o.filters)
		if err != nil {
			return err
		}
		if ok {
			kept = append(kept, c)
		}
	}
	if o.latest && len(kept) > 1 {
		kept = kept[:1]
	}
	if o.last > 0 && len(kept) > o.last {
		kept = kept[:o.last]
	}
	if o.quiet {
		for _, c := range kept {
			fmt.Fprintln(w, containerRow{c: c, trunc: !o.noTrunc}.ID())
		}
		return nil
	}
	rows := make([]row, 0, len(kept))
	for _, c := range kept {
		rows = append(rows, containerRow{c: c, now: now, trunc: !o.noTrunc})
	}
	return formatter{
		format:       o.format,
		headers:      containerHeaders(),
		defaultTable: "{{.ID}}\t{{.Image}}\t{{.Command}}\t{{.RunningFor}}\t{{.Status}}\t{{.Ports}}\t{{.Names}}",
	}.render(w, rows)
}

func (a *app) psCommand(use string, aliases ...string) *cobra.Command {
	var o psOptions
	cmd := &cobra.Command{
		Use:     use + " [OPTIONS]",
		Aliases: aliases,
		Short:   "List containers",
		Args:    exactArgs(0),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx, c, err := a.connect(cmd.Context())
			if err != nil {
				return err
			}
			all := o.all || o.latest || o.last > 0
			resp, err := c.containers.List(ctx, &skiffv1.ListContainersRequest{All: all})
			if err != nil {
				return a.fromDaemon(err)
			}
			return writeContainers(a.env.Stdout, resp.GetContainers(), time.Now(), o)
		},
	}
	f := cmd.Flags()
	f.BoolVarP(&o.all, "all", "a", false, "Show all containers (default shows just running)")
	f.BoolVarP(&o.quiet, "quiet", "q", false, "Only display container IDs")
	f.BoolVar(&o.noTrunc, "no-trunc", false, "Don't truncate output")
	f.BoolVarP(&o.latest, "latest", "l", false, "Show the latest created container (includes all states)")
	f.IntVar(&o.last, "last", -1, "Show n last created containers (includes all states); docker's -n is skiff's --namespace")
	f.StringVar(&o.format, "format", "", "Format output using a Go template, 'table' or 'json'")
	f.StringArrayVarP(&o.filters, "filter", "f", nil, "Filter output based on conditions provided (id, name, status, label, ancestor)")
	f.BoolP("size", "s", false, "Display total file sizes (not supported)")
	return cmd
}

// parseTimestamp is docker's --since/--until value: a duration before now
// ("10m"), an RFC 3339 time or date, or Unix seconds[.nanoseconds]. It
// returns Unix nanoseconds.
func parseTimestamp(value string, now time.Time) (int64, error) {
	if value == "" {
		return 0, nil
	}
	// "0" is the epoch, not a zero duration (docker's GetTimestamp).
	if d, err := time.ParseDuration(value); err == nil && value != "0" {
		return now.Add(-d).UnixNano(), nil
	}
	if sec, frac, ok := strings.Cut(value, "."); !strings.ContainsAny(value, "-:TZ") {
		s, err := strconv.ParseInt(sec, 10, 64)
		if err == nil {
			ns := int64(0)
			if ok {
				frac = (frac + "000000000")[:9]
				if ns, err = strconv.ParseInt(frac, 10, 64); err != nil {
					return 0, invalid("invalid timestamp %q", value)
				}
			}
			return s*int64(time.Second) + ns, nil
		}
	}
	for _, layout := range []string{time.RFC3339Nano, time.RFC3339, "2006-01-02T15:04:05.999999999", "2006-01-02T15:04:05", "2006-01-02T15:04", "2006-01-02T15", "2006-01-02Z07:00", "2006-01-02"} {
		if t, err := time.ParseInLocation(layout, value, time.Local); err == nil {
			return t.UnixNano(), nil
		}
	}
	return 0, invalid("invalid value for timestamp %q", value)
}

func (a *app) logsCommand() *cobra.Command {
	var follow, timestamps bool
	var tail, since, until string
	cmd := &cobra.Command{
		Use:   "logs [OPTIONS] CONTAINER",
		Short: "Fetch the logs of a container",
		Args:  exactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			req := &skiffv1.LogsRequest{Id: args[0], Follow: follow, Tail: -1}
			if tail != "" && tail != "all" {
				n, err := strconv.ParseInt(tail, 10, 64)
				if err != nil {
					return &statusError{code: exitGeneral, msg: fmt.Sprintf("Error: invalid value for tail: %q", tail)}
				}
				req.Tail = n
			}
			now := time.Now()
			var err error
			if req.Since, err = parseTimestamp(since, now); err != nil {
				return err
			}
			if req.Until, err = parseTimestamp(until, now); err != nil {
				return err
			}
			ctx, c, err := a.connect(cmd.Context())
			if err != nil {
				return err
			}
			stream, err := c.containers.Logs(ctx, req)
			if err != nil {
				return a.fromDaemon(err)
			}
			for {
				e, err := stream.Recv()
				if errors.Is(err, io.EOF) {
					return nil
				}
				if err != nil {
					return a.fromDaemon(err)
				}
				w := a.env.Stdout
				if e.GetStream() == skiffv1.Stream_STREAM_STDERR {
					w = a.env.Stderr
				}
				if timestamps {
					fmt.Fprint(w, unixNano(e.GetTime()).UTC().Format("2006-01-02T15:04:05.000000000Z07:00")+" ")
				}
				if _, err := w.Write(e.GetData()); err != nil {
					return err
				}
			}
		},
	}
	f := cmd.Flags()
	f.BoolVarP(&follow, "follow", "f", false, "Follow log output")
	f.BoolVarP(&timestamps, "timestamps", "t", false, "Show timestamps")
	f.StringVar(&tail, "tail", "all", "Number of lines to show from the end of the logs (docker's -n is skiff's --namespace)")
	f.StringVar(&since, "since", "", "Show logs since timestamp (e.g. \"2013-01-02T13:23:37Z\") or relative (e.g. \"42m\" for 42 minutes)")
	f.StringVar(&until, "until", "", "Show logs before a timestamp (e.g. \"2013-01-02T13:23:37Z\") or relative (e.g. \"42m\" for 42 minutes)")
	f.Bool("details", false, "Accepted for docker compatibility")
	return cmd
}

// containerInspect is docker's container inspect JSON (the fields skiff
// has).
type containerInspect struct {
	ID           string   `json:"Id"`
	Created      string   `json:"Created"`
	Path         string   `json:"Path"`
	Args         []string `json:"Args"`
	State        inspectState
	Image        string `json:"Image"`
	LogPath      string `json:"LogPath"`
	Name         string `json:"Name"`
	RestartCount int32  `json:"RestartCount"`
	Platform     string `json:"Platform"`
	HostConfig   inspectHostConfig
	Mounts       []inspectMount `json:"Mounts"`
	Config       inspectConfig
	// NetworkSettings is network.go's.
	NetworkSettings inspectNetworkSettings
}

type inspectState struct {
	Status     string `json:"Status"`
	Running    bool   `json:"Running"`
	Paused     bool   `json:"Paused"`
	Restarting bool   `json:"Restarting"`
	OOMKilled  bool   `json:"OOMKilled"`
	Dead       bool   `json:"Dead"`
	Pid        int32  `json:"Pid"`
	ExitCode   int32  `json:"ExitCode"`
	Error      string `json:"Error"`
	StartedAt  string `json:"StartedAt"`
	FinishedAt string `json:"FinishedAt"`
}

type inspectHostConfig struct {
	AutoRemove     bool   `json:"AutoRemove"`
	Runtime        string `json:"Runtime"`
	NetworkMode    string `json:"NetworkMode"`
	ReadonlyRootfs bool   `json:"ReadonlyRootfs"`
	RestartPolicy  struct {
		Name              string `json:"Name"`
		MaximumRetryCount int32  `json:"MaximumRetryCount"`
	} `json:"RestartPolicy"`

	inspectSecurity // resources and security (secflags.go)
}

type inspectConfig struct {
	Hostname     string            `json:"Hostname"`
	Domainname   string            `json:"Domainname"`
	User         string            `json:"User"`
	AttachStdin  bool              `json:"AttachStdin"`
	AttachStdout bool              `json:"AttachStdout"`
	AttachStderr bool              `json:"AttachStderr"`
	Tty          bool              `json:"Tty"`
	OpenStdin    bool              `json:"OpenStdin"`
	StdinOnce    bool              `json:"StdinOnce"`
	Env          []string          `json:"Env"`
	Cmd          []string          `json:"Cmd"`
	Image        string            `json:"Image"`
	WorkingDir   string            `json:"WorkingDir"`
	Entrypoint   []string          `json:"Entrypoint"`
	Labels       map[string]string `json:"Labels"`
	StopSignal   string            `json:"StopSignal,omitempty"`
	StopTimeout  *int32            `json:"StopTimeout,omitempty"`
}

// toContainerInspect builds docker's inspect JSON of c.
func toContainerInspect(c *skiffv1.Container) containerInspect {
	cfg := c.GetConfig()
	out := containerInspect{
		ID:           c.GetId(),
		Created:      rfc3339(unixNano(c.GetCreated())),
		Path:         c.GetPath(),
		Args:         append([]string{}, c.GetArgs()...),
		Image:        c.GetImageId(),
		LogPath:      c.GetLogPath(),
		Name:         "/" + strings.TrimPrefix(c.GetName(), "/"),
		RestartCount: c.GetRestartCount(),
		Platform:     "linux",
	}
	st := c.GetStatus()
	out.State = inspectState{
		Status:     st,
		Running:    st == "running" || st == "paused" || st == "restarting",
		Paused:     st == "paused",
		Restarting: st == "restarting",
		Dead:       st == "dead",
		Pid:        c.GetPid(),
		ExitCode:   c.GetExitCode(),
		Error:      c.GetError(),
		StartedAt:  rfc3339(unixNano(c.GetStarted())),
		FinishedAt: rfc3339(unixNano(c.GetFinished())),
	}
	rt := c.GetRuntime()
	if rt == "" {
		rt = cfg.GetRuntime()
	}
	nm := cfg.GetNetworkMode()
	if nm == "" {
		nm = "none"
	}
	out.HostConfig = inspectHostConfig{AutoRemove: cfg.GetAutoRemove(), Runtime: rt, NetworkMode: nm, ReadonlyRootfs: cfg.GetReadOnly()}
	out.HostConfig.inspectSecurity = toInspectSecurity(cfg)
	out.HostConfig.RestartPolicy.Name = "no"
	if rp := cfg.GetRestartPolicy(); rp != nil && rp.GetName() != "" {
		out.HostConfig.RestartPolicy.Name = rp.GetName()
		out.HostConfig.RestartPolicy.MaximumRetryCount = rp.GetMaxRetries()
	}
	labels := c.GetLabels()
	if len(labels) == 0 {
		labels = cfg.GetLabels()
	}
	if labels == nil {
		labels = map[string]string{}
	}
	out.Config = inspectConfig{
		Hostname:     cfg.GetHostname(),
		User:         cfg.GetUser(),
		AttachStdin:  cfg.GetOpenStdin(),
		AttachStdout: true,
		AttachStderr: true,
		Tty:          cfg.GetTty(),
		OpenStdin:    cfg.GetOpenStdin(),
		StdinOnce:    cfg.GetOpenStdin(),
		Env:          cfg.GetEnv(),
		Cmd:          cfg.GetCmd(),
		Image:        cfg.GetImage(),
		WorkingDir:   cfg.GetWorkingDir(),
		Labels:       labels,
		StopSignal:   cfg.GetStopSignal(),
	}
	if cfg.GetEntrypointSet() {
		out.Config.Entrypoint = cfg.GetEntrypoint()
	}
	if cfg.GetStopTimeout() >= 0 && cfg != nil {
		t := cfg.GetStopTimeout()
		out.Config.StopTimeout = &t
	}
	// The runtime spec knows the effective process (image config merged).
	var spec struct {
		Hostname string `json:"hostname"`
		Process  *struct {
			Args []string `json:"args"`
			Env  []string `json:"env"`
			Cwd  string   `json:"cwd"`
		} `json:"process"`
	}
	if len(c.GetSpecJson()) > 0 && json.Unmarshal(c.GetSpecJson(), &spec) == nil {
		if spec.Hostname != "" && out.Config.Hostname == "" {
			out.Config.Hostname = spec.Hostname
		}
		if spec.Process != nil {
			if len(spec.Process.Env) > 0 {
				out.Config.Env = spec.Process.Env
			}
			if out.Config.WorkingDir == "" {
				out.Config.WorkingDir = spec.Process.Cwd
			}
			if out.Path == "" && len(spec.Process.Args) > 0 {
				out.Path, out.Args = spec.Process.Args[0], append([]string{}, spec.Process.Args[1:]...)
			}
		}
	}
	if out.Config.Env == nil {
		out.Config.Env = []string{}
	}
	return out
}

func (a *app) inspectContainer(ctx context.Context, c *clients, id string) (any, error) {
	ctr, err := c.containers.Inspect(ctx, &skiffv1.InspectContainerRequest{Id: id})
	if err != nil {
		return nil, a.fromDaemon(err)
	}
	out := toContainerInspect(ctr)
	out.Mounts = a.containerMounts(ctx, ctr)
	out.NetworkSettings = toInspectNetworkSettings(ctr)
	return out, nil
}

func (a *app) containerInspectCommand() *cobra.Command {
	var format string
	cmd := &cobra.Command{
		Use:   "inspect [OPTIONS] CONTAINER [CONTAINER...]",
		Short: "Display detailed information on one or more containers",
		Args:  minArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx, c, err := a.connect(cmd.Context())
			if err != nil {
				return err
			}
			return a.inspectEach(args, format, func(id string) (any, error) {
				v, err := a.inspectContainer(ctx, c, id)
				if isNotFound(err) {
					return nil, &statusError{code: exitGeneral, msg: "Error: No such container: " + id}
				}
				return v, err
			})
		},
	}
	cmd.Flags().StringVarP(&format, "format", "f", "", "Format output using a Go template")
	cmd.Flags().BoolP("size", "s", false, "Accepted for docker compatibility")
	return cmd
}

// inspectCommand is `skiff inspect`: containers first, then images.
func (a *app) inspectCommand() *cobra.Command {
	var format, typ string
	cmd := &cobra.Command{
		Use:   "inspect [OPTIONS] NAME|ID [NAME|ID...]",
		Short: "Return low-level information on containers or images",
		Args:  minArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			switch typ {
			case "", "container", "image":
			default:
				return &statusError{code: exitGeneral, msg: fmt.Sprintf("Error: %q is not a valid value for --type", typ)}
			}
			ctx, c, err := a.connect(cmd.Context())
			if err != nil {
				return err
			}
			return a.inspectEach(args, format, func(name string) (any, error) {
				if typ != "image" {
					v, err := a.inspectContainer(ctx, c, name)
					if err == nil || !isNotFound(err) {
						return v, err
					}
				}
				if typ != "container" {
					v, err := a.inspectImage(ctx, c, name)
					if err == nil || !isNotFound(err) {
						return v, err
					}
				}
				return nil, &statusError{code: exitGeneral, msg: "Error: No such object: " + name}
			})
		},
	}
	cmd.Flags().StringVarP(&format, "format", "f", "", "Format output using a Go template")
	cmd.Flags().StringVar(&typ, "type", "", "Return JSON for specified type (container, image)")
	cmd.Flags().BoolP("size", "s", false, "Accepted for docker compatibility")
	return cmd
}
