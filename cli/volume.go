package cli

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"

	skiffv1 "github.com/skiff-containers/skiff/api/skiff/v1"
)

// volumeCommand is `skiff volume create|ls|inspect|rm|prune`.
func (a *app) volumeCommand() *cobra.Command {
	cmd := &cobra.Command{Use: "volume", Short: "Manage volumes", Args: cobra.ArbitraryArgs, RunE: groupRunE}
	cmd.SetFlagErrorFunc(func(cmd *cobra.Command, err error) error { return usageError(cmd, err) })
	cmd.AddCommand(a.volumeCreateCommand(), a.volumeLsCommand(), a.volumeInspectCommand(), a.volumeRmCommand(), a.volumePruneCommand())
	return cmd
}

func (a *app) volumesClient(ctx context.Context) (context.Context, skiffv1.VolumesClient, error) {
	conn, err := a.dial()
	if err != nil {
		return ctx, nil, err
	}
	return skiffv1.WithNamespace(ctx, a.namespace), skiffv1.NewVolumesClient(conn), nil
}

func (a *app) volumeCreateCommand() *cobra.Command {
	var driver, name string
	var labels, opts []string
	cmd := &cobra.Command{
		Use:   "create [OPTIONS] [VOLUME]",
		Short: "Create a volume",
		Args:  maxArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(args) == 1 {
				if name != "" && name != args[0] {
					return &statusError{code: exitGeneral, msg: "conflicting options: cannot specify a volume-name through both --name and as a positional arg"}
				}
				name = args[0]
			}
			if len(opts) > 0 {
				return &statusError{code: exitGeneral, msg: "Error: the local driver of skiff takes no options (-o)"}
			}
			lbls, err := parseLabels(labels)
			if err != nil {
				return err
			}
			ctx, vc, err := a.volumesClient(cmd.Context())
			if err != nil {
				return err
			}
			v, err := vc.Create(ctx, &skiffv1.CreateVolumeRequest{Name: name, Driver: driver, Labels: lbls})
			if err != nil {
				return a.fromDaemon(err)
			}
			fmt.Fprintln(a.env.Stdout, v.GetName())
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVarP(&driver, "driver", "d", "local", "Specify volume driver name")
	f.StringVar(&name, "name", "", "Specify volume name")
	f.MarkHidden("name")
	f.StringArrayVar(&labels, "label", nil, "Set metadata for a volume")
	f.StringArrayVarP(&opts, "opt", "o", nil, "Set driver specific options")
	return cmd
}

// volumeRow is one line of `volume ls`; its methods are the --format
// fields.
type volumeRow struct{ v *skiffv1.Volume }

func (r volumeRow) Name() string       { return r.v.GetName() }
func (r volumeRow) Driver() string     { return r.v.GetDriver() }
func (r volumeRow) Scope() string      { return "local" }
func (r volumeRow) Mountpoint() string { return r.v.GetMountpoint() }
func (r volumeRow) Size() string       { return "N/A" }
func (r volumeRow) Links() string      { return "N/A" }
func (r volumeRow) Labels() string     { return joinLabels(r.v.GetLabels()) }
func (r volumeRow) Label(name string) string {
	return r.v.GetLabels()[name]
}
func (r volumeRow) jsonFields() map[string]any {
	return map[string]any{
		"Name": r.Name(), "Driver": r.Driver(), "Scope": r.Scope(), "Mountpoint": r.Mountpoint(),
		"Size": r.Size(), "Links": r.Links(), "Labels": r.Labels(), "Availability": "N/A", "Group": "N/A", "Status": "N/A",
	}
}

func joinLabels(m map[string]string) string {
	var parts []string
	for _, k := range slices.Sorted(maps.Keys(m)) {
		parts = append(parts, k+"="+m[k])
	}
	return strings.Join(parts, ",")
}

func volumeHeaders() map[string]string {
	return map[string]string{
		"Name": "VOLUME NAME", "Driver": "DRIVER", "Scope": "SCOPE", "Mountpoint": "MOUNTPOINT",
		"Size": "SIZE", "Links": "LINKS", "Labels": "LABELS",
	}
}

// volumeFilter is docker's `volume ls --filter`: dangling=true|false,
// name=substring, driver=, label=key[=value].
func volumeFilter(v *skiffv1.Volume, filters []string) (bool, error) {
	for _, f := range filters {
		key, val, ok := strings.Cut(f, "=")
		if !ok {
			return false, &statusError{code: exitGeneral, msg: "Error: bad format of filter (expected name=value)"}
		}
		switch key {
		case "dangling":
			want := val == "true" || val == "1"
			if val != "true" && val != "false" && val != "1" && val != "0" {
				return false, &statusError{code: exitGeneral, msg: fmt.Sprintf("Error: invalid filter 'dangling=%s'", val)}
			}
			if (len(v.GetUsedBy()) == 0) != want {
				return false, nil
			}
		case "name":
			if !strings.Contains(v.GetName(), val) {
				return false, nil
			}
		case "driver":
			if v.GetDriver() != val {
				return false, nil
			}
		case "label":
			k, lv, hasVal := strings.Cut(val, "=")
			got, has := v.GetLabels()[k]
			if !has || hasVal && got != lv {
				return false, nil
			}
		default:
			return false, &statusError{code: exitGeneral, msg: fmt.Sprintf("Error: invalid filter '%s'", key)}
		}
	}
	return true, nil
}

func (a *app) volumeLsCommand() *cobra.Command {
	var quiet bool
	var format string
	var filters []string
	cmd := &cobra.Command{
		Use:     "ls [OPTIONS]",
		Aliases: []string{"list"},
		Short:   "List volumes",
		Args:    maxArgs(0),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx, vc, err := a.volumesClient(cmd.Context())
			if err != nil {
				return err
			}
			resp, err := vc.List(ctx, &skiffv1.ListVolumesRequest{})
			if err != nil {
				return a.fromDaemon(err)
			}
			return writeVolumes(a.env.Stdout, resp.GetVolumes(), quiet, format, filters)
		},
	}
	f := cmd.Flags()
	f.BoolVarP(&quiet, "quiet", "q", false, "Only display volume names")
	f.StringVar(&format, "format", "", "Format output using a Go template, 'table' or 'json'")
	f.StringArrayVarP(&filters, "filter", "f", nil, "Provide filter values (e.g. \"dangling=true\")")
	return cmd
}

// writeVolumes renders `volume ls`, sorted by name as docker does.
func writeVolumes(w io.Writer, vols []*skiffv1.Volume, quiet bool, format string, filters []string) error {
	var rows []row
	slices.SortFunc(vols, func(x, y *skiffv1.Volume) int { return strings.Compare(x.GetName(), y.GetName()) })
	for _, v := range vols {
		ok, err := volumeFilter(v, filters)
		if err != nil {
			return err
		}
		if !ok {
			continue
		}
		if quiet {
			fmt.Fprintln(w, v.GetName())
			continue
		}
		rows = append(rows, volumeRow{v})
	}
	if quiet {
		return nil
	}
	return formatter{format: format, headers: volumeHeaders(), defaultTable: "{{.Driver}}\t{{.Name}}"}.render(w, rows)
}

// volumeInspect is docker's volume inspect JSON.
type volumeInspect struct {
	CreatedAt  string            `json:"CreatedAt"`
	Driver     string            `json:"Driver"`
	Labels     map[string]string `json:"Labels"`
	Mountpoint string            `json:"Mountpoint"`
	Name       string            `json:"Name"`
	Options    map[string]string `json:"Options"`
	Scope      string            `json:"Scope"`
}

func toVolumeInspect(v *skiffv1.Volume) volumeInspect {
	created := ""
	if t := unixNano(v.GetCreated()); !t.IsZero() {
		created = t.UTC().Format(time.RFC3339)
	}
	return volumeInspect{
		CreatedAt: created, Driver: v.GetDriver(), Labels: v.GetLabels(), Mountpoint: v.GetMountpoint(),
		Name: v.GetName(), Scope: "local",
	}
}

func (a *app) volumeInspectCommand() *cobra.Command {
	var format string
	cmd := &cobra.Command{
		Use:   "inspect [OPTIONS] VOLUME [VOLUME...]",
		Short: "Display detailed information on one or more volumes",
		Args:  minArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx, vc, err := a.volumesClient(cmd.Context())
			if err != nil {
				return err
			}
			return a.inspectEach(args, format, func(name string) (any, error) {
				v, err := vc.Inspect(ctx, &skiffv1.InspectVolumeRequest{Name: name})
				if err != nil {
					err = a.fromDaemon(err)
					if isNotFound(err) {
						return nil, &statusError{code: exitGeneral, msg: "Error: No such volume: " + name}
					}
					return nil, err
				}
				return toVolumeInspect(v), nil
			})
		},
	}
	cmd.Flags().StringVarP(&format, "format", "f", "", "Format output using a Go template")
	return cmd
}

func (a *app) volumeRmCommand() *cobra.Command {
	var force bool
	cmd := &cobra.Command{
		Use:     "rm [OPTIONS] VOLUME [VOLUME...]",
		Aliases: []string{"remove"},
		Short:   "Remove one or more volumes",
		Args:    minArgs(1),
		PreRunE: func(cmd *cobra.Command, args []string) error {
			a.engineExit = true // a volume in use (or missing) exits 125
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx, vc, err := a.volumesClient(cmd.Context())
			if err != nil {
				return err
			}
			return a.eachArg(args, func(name string) error {
				if _, err := vc.Remove(ctx, &skiffv1.RemoveVolumeRequest{Name: name, Force: force}); err != nil {
					return a.fromDaemon(err)
				}
				fmt.Fprintln(a.env.Stdout, name)
				return nil
			})
		},
	}
	cmd.Flags().BoolVarP(&force, "force", "f", false, "Force the removal of one or more volumes")
	return cmd
}

func (a *app) volumePruneCommand() *cobra.Command {
	var all, force bool
	cmd := &cobra.Command{
		Use:   "prune [OPTIONS]",
		Short: "Remove unused local volumes",
		Args:  maxArgs(0),
		RunE: func(cmd *cobra.Command, args []string) error {
			if !force {
				warning := "WARNING! This will remove anonymous local volumes not used by at least one container.\n"
				if all {
					warning = "WARNING! This will remove all local volumes not used by at least one container.\n"
				}
				if err := a.confirmPrune("volume", warning); err != nil {
					return err
				}
			}
			ctx, vc, err := a.volumesClient(cmd.Context())
			if err != nil {
				return err
			}
			resp, err := vc.Prune(ctx, &skiffv1.PruneVolumesRequest{All: all})
			if err != nil {
				return a.fromDaemon(err)
			}
			a.printDeleted("Volumes", resp.GetDeleted())
			fmt.Fprintf(a.env.Stdout, "Total reclaimed space: %s\n", humanSize(float64(resp.GetSpaceReclaimed())))
			return nil
		},
	}
	cmd.Flags().BoolVarP(&all, "all", "a", false, "Remove all unused volumes, not just anonymous ones")
	cmd.Flags().BoolVarP(&force, "force", "f", false, "Do not prompt for confirmation")
	return cmd
}

// confirmed reads a y/yes answer from in.
// confirmPrune asks, as docker's prune commands do, whether to go on after
// warning (which ends with a newline); a no is the error to return.
func (a *app) confirmPrune(what, warning string) error {
	fmt.Fprint(a.env.Stdout, warning+"Are you sure you want to continue? [y/N] ")
	if !confirmed(a.env.Stdin) {
		return &statusError{code: exitGeneral, msg: "Error: " + what + " prune has been cancelled"}
	}
	return nil
}

// printDeleted prints docker's "Deleted WHAT:" block of a prune, if
// anything was.
func (a *app) printDeleted(what string, names []string) {
	if len(names) == 0 {
		return
	}
	fmt.Fprintln(a.env.Stdout, "Deleted "+what+":")
	for _, n := range names {
		fmt.Fprintln(a.env.Stdout, n)
	}
	fmt.Fprintln(a.env.Stdout)
}

func confirmed(in io.Reader) bool {
	if in == nil {
		return false
	}
	line, _ := bufio.NewReader(in).ReadString('\n')
	ans := strings.ToLower(strings.TrimSpace(line))
	return ans == "y" || ans == "yes"
}

// inspectMount is one entry of docker's container inspect Mounts.
type inspectMount struct {
	Type        string `json:"Type"`
	Name        string `json:"Name,omitempty"`
	Source      string `json:"Source"`
	Destination string `json:"Destination"`
	Driver      string `json:"Driver,omitempty"`
	Mode        string `json:"Mode"`
	RW          bool   `json:"RW"`
	Propagation string `json:"Propagation"`
}

// containerMounts is docker's Mounts of container inspect; a volume's
// directory is asked of the daemon (a volume that is gone keeps its name
// only).
func (a *app) containerMounts(ctx context.Context, c *skiffv1.Container) []inspectMount {
	out := []inspectMount{}
	var vc skiffv1.VolumesClient
	for _, m := range c.GetMounts() {
		im := inspectMount{Type: m.GetType(), Source: m.GetSource(), Destination: m.GetTarget(), RW: !m.GetReadOnly()}
		for _, o := range m.GetOptions() {
			switch {
			case slices.Contains(propagationModes, o):
				im.Propagation = o
			case o == "z" || o == "Z":
				im.Mode = o
			}
		}
		if m.GetType() == "volume" {
			im.Name, im.Source, im.Driver, im.Propagation = m.GetSource(), "", "local", ""
			if vc == nil {
				_, vc, _ = a.volumesClient(ctx)
			}
			if vc != nil {
				if v, err := vc.Inspect(ctx, &skiffv1.InspectVolumeRequest{Name: im.Name}); err == nil {
					im.Source, im.Driver = v.GetMountpoint(), v.GetDriver()
				}
			}
		}
		out = append(out, im)
	}
	return out
}

// mountNames is the MOUNTS column of ps: volume names, else sources.
func mountNames(c *skiffv1.Container, trunc bool) string {
	var names []string
	for _, m := range c.GetMounts() {
		n := m.GetSource()
		if n == "" {
			continue
		}
		if trunc {
			n = ellipsis(n, 15)
		}
		names = append(names, n)
	}
	return strings.Join(names, ",")
}
