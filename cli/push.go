package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"

	skiffv1 "github.com/skiff-containers/skiff/api/skiff/v1"
	"github.com/skiff-containers/skiff/cli/progress"
)

// pushCommand is `push [-q] NAME[:TAG]`, with docker's output:
// "The push refers to repository [...]", a line (or bar) per layer, and
// "<tag>: digest: sha256:… size: N".
func (a *app) pushCommand() *cobra.Command {
	var quiet bool
	cmd := &cobra.Command{
		Use:   "push [OPTIONS] NAME[:TAG]",
		Short: "Upload an image to a registry",
		Args:  exactArgs(1),
		PreRunE: func(cmd *cobra.Command, args []string) error {
			a.engineExit = true // a refused push (no rights) exits 125
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			ref := args[0]
			auth, err := a.registryAuth(ref)
			if err != nil {
				return err
			}
			ctx, c, err := a.connect(cmd.Context())
			if err != nil {
				return err
			}
			out := a.env.Stdout
			name, tag, _ := splitRef(normalizeRef(ref))
			if !quiet {
				fmt.Fprintf(out, "The push refers to repository [%s]\n", name)
			}
			stream, err := c.images.Push(ctx, &skiffv1.PushRequest{Ref: ref, Auth: auth})
			if err != nil {
				return a.fromDaemon(err)
			}
			var disp progress.PushDisplay
			if !quiet {
				_, tty := isTerminal(out)
				disp = progress.NewPush(out, tty)
			}
			var last *skiffv1.PushProgress
			for {
				msg, err := stream.Recv()
				if errors.Is(err, io.EOF) {
					break
				}
				if err != nil {
					if disp != nil {
						disp.Close()
					}
					return a.fromDaemon(err)
				}
				if msg.GetDigest() != "" {
					last = msg
				}
				if disp != nil {
					disp.Update(msg)
				}
			}
			if disp != nil {
				disp.Close()
			}
			if last == nil {
				return &daemonError{err: fmt.Errorf("push %s: the stream ended without the pushed digest", ref)}
			}
			if quiet {
				fmt.Fprintln(out, familiarRef(normalizeRef(ref)))
				return nil
			}
			if tag == "" {
				tag = defaultTag
			}
			fmt.Fprintf(out, "%s: digest: %s size: %d\n", tag, last.GetDigest(), last.GetSize())
			return nil
		},
	}
	cmd.Flags().BoolVarP(&quiet, "quiet", "q", false, "Suppress verbose output")
	cmd.Flags().BoolP("all-tags", "a", false, "Not supported")
	cmd.Flags().MarkHidden("all-tags")
	cmd.Flags().Bool("disable-content-trust", true, "Accepted for docker compatibility")
	cmd.Flags().MarkHidden("disable-content-trust")
	return cmd
}

// historyRow is one line of `history`.
type historyRow struct {
	e     *skiffv1.HistoryResponse_Entry
	now   time.Time
	trunc bool
}

func (r historyRow) ID() string {
	if r.trunc && r.e.GetId() != "<missing>" {
		return shortID(r.e.GetId())
	}
	return r.e.GetId()
}
func (r historyRow) CreatedSince() string { return ago(r.now, unixNano(r.e.GetCreated())) }
func (r historyRow) CreatedAt() string    { return rfc3339(unixNano(r.e.GetCreated())) }
func (r historyRow) CreatedBy() string {
	s := strings.ReplaceAll(r.e.GetCreatedBy(), "\t", " ")
	if r.trunc {
		return ellipsis(s, 45)
	}
	return s
}
func (r historyRow) Size() string    { return humanSize(float64(r.e.GetSize())) }
func (r historyRow) Comment() string { return r.e.GetComment() }
func (r historyRow) jsonFields() map[string]any {
	return map[string]any{"ID": r.ID(), "CreatedSince": r.CreatedSince(), "CreatedAt": r.CreatedAt(),
		"CreatedBy": r.CreatedBy(), "Size": r.Size(), "Comment": r.Comment()}
}

func (a *app) historyCommand() *cobra.Command {
	var noTrunc, quiet bool
	var format string
	cmd := &cobra.Command{
		Use:   "history [OPTIONS] IMAGE",
		Short: "Show the history of an image",
		Args:  exactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx, c, err := a.connect(cmd.Context())
			if err != nil {
				return err
			}
			resp, err := c.images.History(ctx, &skiffv1.HistoryRequest{Name: args[0]})
			if err != nil {
				return a.fromDaemon(err)
			}
			now := time.Now()
			if quiet {
				for _, e := range resp.GetEntries() {
					fmt.Fprintln(a.env.Stdout, historyRow{e: e, trunc: !noTrunc}.ID())
				}
				return nil
			}
			rows := make([]row, 0, len(resp.GetEntries()))
			for _, e := range resp.GetEntries() {
				rows = append(rows, historyRow{e: e, now: now, trunc: !noTrunc})
			}
			headers := map[string]string{"ID": "IMAGE", "CreatedSince": "CREATED", "CreatedAt": "CREATED AT",
				"CreatedBy": "CREATED BY", "Size": "SIZE", "Comment": "COMMENT"}
			return formatter{format: format, headers: headers,
				defaultTable: "{{.ID}}\t{{.CreatedSince}}\t{{.CreatedBy}}\t{{.Size}}\t{{.Comment}}"}.render(a.env.Stdout, rows)
		},
	}
	f := cmd.Flags()
	f.BoolVar(&noTrunc, "no-trunc", false, "Don't truncate output")
	f.BoolVarP(&quiet, "quiet", "q", false, "Only show image IDs")
	f.StringVar(&format, "format", "", "Format output using a Go template, 'table' or 'json'")
	f.BoolP("human", "H", true, "Print sizes and dates in human readable format")
	return cmd
}

func (a *app) imagePruneCommand() *cobra.Command {
	var all, force bool
	cmd := &cobra.Command{
		Use:   "prune [OPTIONS]",
		Short: "Remove unused images",
		Args:  exactArgs(0),
		RunE: func(cmd *cobra.Command, args []string) error {
			if !force {
				warning := "WARNING! This will remove all dangling images.\n"
				if all {
					warning = "WARNING! This will remove all images without at least one container associated to them.\n"
				}
				if err := a.confirmPrune("image", warning); err != nil {
					return err
				}
			}
			ctx, c, err := a.connect(cmd.Context())
			if err != nil {
				return err
			}
			space, err := a.pruneImages(ctx, c, all)
			if err != nil {
				return err
			}
			fmt.Fprintf(a.env.Stdout, "Total reclaimed space: %s\n", humanSize(float64(space)))
			return nil
		},
	}
	cmd.Flags().BoolVarP(&all, "all", "a", false, "Remove all unused images, not just dangling ones")
	cmd.Flags().BoolVarP(&force, "force", "f", false, "Do not prompt for confirmation")
	return cmd
}

// pruneImages prunes and prints docker's "Deleted Images:" block; it
// returns the space reclaimed.
func (a *app) pruneImages(ctx context.Context, c *clients, all bool) (int64, error) {
	resp, err := c.images.Prune(ctx, &skiffv1.PruneImagesRequest{All: all})
	if err != nil {
		return 0, a.fromDaemon(err)
	}
	if len(resp.GetUntagged())+len(resp.GetDeleted()) > 0 {
		fmt.Fprintln(a.env.Stdout, "Deleted Images:")
		for _, u := range resp.GetUntagged() {
			if strings.HasPrefix(u, "sha256:") {
				continue // unnamed: its blobs follow
			}
			fmt.Fprintf(a.env.Stdout, "untagged: %s\n", familiarRef(u))
		}
		for _, d := range resp.GetDeleted() {
			fmt.Fprintf(a.env.Stdout, "deleted: %s\n", d)
		}
		fmt.Fprintln(a.env.Stdout)
	}
	return resp.GetSpaceReclaimed(), nil
}

// importCommand is `import FILE|- [REPOSITORY[:TAG]]`.
func (a *app) importCommand() *cobra.Command {
	var changes []string
	var message, platform string
	cmd := &cobra.Command{
		Use:   "import [OPTIONS] file|URL|- [REPOSITORY[:TAG]]",
		Short: "Import the contents from a tarball to create a filesystem image",
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) < 1 || len(args) > 2 {
				return usageError(cmd, fmt.Errorf("%q requires at least 1 and at most 2 arguments.", cmd.CommandPath()))
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			src := args[0]
			var in io.Reader
			switch {
			case src == "-":
				if _, tty := isTerminal(a.env.Stdin); tty || a.env.Stdin == nil {
					return &statusError{code: exitGeneral, msg: "Error: requested import from stdin, but stdin is a terminal or empty"}
				}
				in = a.env.Stdin
			case strings.HasPrefix(src, "http://") || strings.HasPrefix(src, "https://"):
				return &statusError{code: exitGeneral, msg: "Error: importing from a URL is not supported by skiff: download the tarball and import the file"}
			default:
				f, err := os.Open(src)
				if err != nil {
					return fmt.Errorf("import: %w", err)
				}
				defer f.Close()
				in = f
			}
			if platform != "" {
				return &statusError{code: exitGeneral, msg: "Error: --platform is not supported by skiff import: the image gets the host's platform"}
			}
			ref := ""
			if len(args) == 2 {
				ref = args[1]
			}
			ctx, c, err := a.connect(cmd.Context())
			if err != nil {
				return err
			}
			stream, err := c.images.Import(ctx)
			if err != nil {
				return a.fromDaemon(err)
			}
			first := &skiffv1.ImportRequest{Ref: ref, Changes: changes, Message: message}
			buf := make([]byte, 1<<20)
			for {
				n, rerr := in.Read(buf)
				if n > 0 || first != nil {
					msg := first
					if msg == nil {
						msg = &skiffv1.ImportRequest{}
					}
					first = nil
					msg.Data = append([]byte(nil), buf[:n]...)
					if err := stream.Send(msg); err != nil {
						if errors.Is(err, io.EOF) {
							break // the server ended the stream: CloseAndRecv has its error
						}
						return a.fromDaemon(err)
					}
				}
				if errors.Is(rerr, io.EOF) {
					break
				}
				if rerr != nil {
					return fmt.Errorf("import: read %s: %w", src, rerr)
				}
			}
			img, err := stream.CloseAndRecv()
			if err != nil {
				return a.fromDaemon(err)
			}
			fmt.Fprintln(a.env.Stdout, img.GetId())
			return nil
		},
	}
	f := cmd.Flags()
	f.StringArrayVarP(&changes, "change", "c", nil, "Apply Dockerfile instruction to the created image")
	f.StringVarP(&message, "message", "m", "", "Set commit message for imported image")
	f.StringVar(&platform, "platform", "", "Not supported: the image gets the host's platform")
	return cmd
}

// systemCommand is the `system` group: df, prune, and docker's aliases
// info and version live at the top level too.
func (a *app) systemCommand() *cobra.Command {
	cmd := &cobra.Command{Use: "system", Short: "Manage skiff", Args: cobra.ArbitraryArgs, RunE: groupRunE}
	cmd.AddCommand(a.systemDfCommand(), a.systemPruneCommand(), a.infoCommand(), a.versionCommand(), a.eventsCommand())
	cmd.SetFlagErrorFunc(func(cmd *cobra.Command, err error) error { return usageError(cmd, err) })
	return cmd
}

type dfRow struct {
	k *skiffv1.DiskUsageResponse_Kind
}

func (r dfRow) Type() string { return r.k.GetType() }
func (r dfRow) TotalCount() string {
	return fmt.Sprint(r.k.GetTotal())
}
func (r dfRow) Active() string { return fmt.Sprint(r.k.GetActive()) }
func (r dfRow) Size() string   { return humanSize(float64(r.k.GetSize())) }
func (r dfRow) Reclaimable() string {
	s := humanSize(float64(r.k.GetReclaimable()))
	if r.k.GetSize() > 0 {
		s += fmt.Sprintf(" (%d%%)", r.k.GetReclaimable()*100/r.k.GetSize())
	}
	return s
}
func (r dfRow) jsonFields() map[string]any {
	return map[string]any{"Type": r.Type(), "TotalCount": r.TotalCount(), "Active": r.Active(), "Size": r.Size(), "Reclaimable": r.Reclaimable()}
}

func (a *app) systemDfCommand() *cobra.Command {
	var format string
	cmd := &cobra.Command{
		Use:   "df [OPTIONS]",
		Short: "Show skiff disk usage",
		Args:  exactArgs(0),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx, c, err := a.connect(cmd.Context())
			if err != nil {
				return err
			}
			resp, err := c.system.DiskUsage(ctx, &skiffv1.DiskUsageRequest{})
			if err != nil {
				return a.fromDaemon(err)
			}
			rows := make([]row, 0, len(resp.GetKinds()))
			for _, k := range resp.GetKinds() {
				rows = append(rows, dfRow{k})
			}
			headers := map[string]string{"Type": "TYPE", "TotalCount": "TOTAL", "Active": "ACTIVE", "Size": "SIZE", "Reclaimable": "RECLAIMABLE"}
			return formatter{format: format, headers: headers,
				defaultTable: "{{.Type}}\t{{.TotalCount}}\t{{.Active}}\t{{.Size}}\t{{.Reclaimable}}"}.render(a.env.Stdout, rows)
		},
	}
	cmd.Flags().StringVar(&format, "format", "", "Format output using a Go template, 'table' or 'json'")
	cmd.Flags().BoolP("verbose", "v", false, "Not supported")
	cmd.Flags().MarkHidden("verbose")
	return cmd
}

// systemPruneCommand removes stopped containers, dangling (with -a all
// unused) images and, with --volumes, unused anonymous volumes.
func (a *app) systemPruneCommand() *cobra.Command {
	var all, force, volumes bool
	cmd := &cobra.Command{
		Use:   "prune [OPTIONS]",
		Short: "Remove unused data",
		Args:  exactArgs(0),
		RunE: func(cmd *cobra.Command, args []string) error {
			if !force {
				w := "WARNING! This will remove:\n  - all stopped containers\n"
				if volumes {
					w += "  - all anonymous volumes not used by at least one container\n"
				}
				if all {
					w += "  - all images without at least one container associated to them\n"
				} else {
					w += "  - all dangling images\n"
				}
				if err := a.confirmPrune("system", w+"\n"); err != nil {
					return err
				}
			}
			ctx, c, err := a.connect(cmd.Context())
			if err != nil {
				return err
			}
			list, err := c.containers.List(ctx, &skiffv1.ListContainersRequest{All: true})
			if err != nil {
				return a.fromDaemon(err)
			}
			var removed []string
			for _, ct := range list.GetContainers() {
				switch ct.GetStatus() {
				case "created", "exited", "dead":
				default:
					continue
				}
				if _, err := c.containers.Remove(ctx, &skiffv1.RemoveContainerRequest{Id: ct.GetId()}); err != nil {
					fmt.Fprintln(a.env.Stderr, a.fromDaemon(err).Error())
					continue
				}
				removed = append(removed, ct.GetId())
			}
			a.printDeleted("Containers", removed)
			var space int64
			if volumes {
				conn, err := a.dial()
				if err != nil {
					return err
				}
				resp, err := skiffv1.NewVolumesClient(conn).Prune(ctx, &skiffv1.PruneVolumesRequest{})
				if err != nil {
					return a.fromDaemon(err)
				}
				a.printDeleted("Volumes", resp.GetDeleted())
				space += resp.GetSpaceReclaimed()
			}
			n, err := a.pruneImages(ctx, c, all)
			if err != nil {
				return err
			}
			space += n
			fmt.Fprintf(a.env.Stdout, "Total reclaimed space: %s\n", humanSize(float64(space)))
			return nil
		},
	}
	cmd.Flags().BoolVarP(&all, "all", "a", false, "Remove all unused images not just dangling ones")
	cmd.Flags().BoolVarP(&force, "force", "f", false, "Do not prompt for confirmation")
	cmd.Flags().BoolVar(&volumes, "volumes", false, "Prune anonymous volumes")
	return cmd
}
