package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"golang.org/x/term"

	skiffv1 "github.com/skiff-containers/skiff/api/skiff/v1"
	"github.com/skiff-containers/skiff/cli/progress"
)

// isTerminal reports whether x (a stream of Env) is a terminal, and its fd.
func isTerminal(x any) (int, bool) {
	f, ok := x.(interface{ Fd() uintptr })
	if !ok {
		return -1, false
	}
	fd := int(f.Fd())
	return fd, term.IsTerminal(fd)
}

// pullOptions say how a pull is shown.
type pullOptions struct {
	platform string
	quiet    bool
	// forRun: the implicit pull of run/create (no "Using default tag").
	forRun bool
}

// pull pulls ref, rendering progress on out as docker does, and returns
// the image.
func (a *app) pull(ctx context.Context, c *clients, ref string, out io.Writer, o pullOptions) (*skiffv1.Image, error) {
	auth, err := a.registryAuth(ref)
	if err != nil {
		return nil, err
	}
	name, tag, digest := splitRef(ref)
	if !o.quiet {
		if !o.forRun && tag == "" && digest == "" {
			fmt.Fprintln(out, "Using default tag: latest")
		}
		label := tag
		if digest != "" {
			label = digest
		} else if label == "" {
			label = defaultTag
		}
		_, path := splitDomain(name)
		fmt.Fprintf(out, "%s: Pulling from %s\n", label, path)
	}
	stream, err := c.images.Pull(ctx, &skiffv1.PullRequest{Ref: ref, Platform: o.platform, Auth: auth})
	if err != nil {
		return nil, a.fromDaemon(err)
	}
	var disp progress.Display
	if !o.quiet {
		_, tty := isTerminal(out)
		disp = progress.New(out, tty)
	}
	var img *skiffv1.Image
	for {
		msg, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			if disp != nil {
				disp.Close()
			}
			return nil, a.fromDaemon(err)
		}
		if msg.GetImage() != nil {
			img = msg.GetImage()
		}
		if disp != nil {
			disp.Update(msg)
		}
	}
	if disp != nil {
		disp.Close()
	}
	if img == nil {
		return nil, &daemonError{err: fmt.Errorf("pull %s: the stream ended without an image", ref)}
	}
	if !o.quiet {
		if img.GetDigest() != "" {
			fmt.Fprintf(out, "Digest: %s\n", img.GetDigest())
		}
		if disp.Downloaded() {
			fmt.Fprintf(out, "Status: Downloaded newer image for %s\n", familiarWithTag(ref))
		} else {
			fmt.Fprintf(out, "Status: Image is up to date for %s\n", familiarWithTag(ref))
		}
	}
	return img, nil
}

func (a *app) pullCommand() *cobra.Command {
	var o pullOptions
	cmd := &cobra.Command{
		Use:   "pull [OPTIONS] NAME[:TAG|@DIGEST]",
		Short: "Download an image from a registry",
		Args:  exactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx, c, err := a.connect(cmd.Context())
			if err != nil {
				return err
			}
			img, err := a.pull(ctx, c, args[0], a.env.Stdout, o)
			if err != nil {
				return err
			}
			name := img.GetName()
			if name == "" {
				name = normalizeRef(args[0])
			}
			fmt.Fprintln(a.env.Stdout, name)
			return nil
		},
	}
	cmd.Flags().StringVar(&o.platform, "platform", "", "Pull for this platform (os/arch[/variant])")
	cmd.Flags().BoolVarP(&o.quiet, "quiet", "q", false, "Suppress verbose output")
	cmd.Flags().BoolP("all-tags", "a", false, "Not supported")
	cmd.Flags().MarkHidden("all-tags")
	return cmd
}

// imageRow is one line of `images`; its methods are the --format fields.
type imageRow struct {
	img   *skiffv1.Image
	now   time.Time
	trunc bool
}

func (r imageRow) ID() string {
	if r.trunc {
		return shortID(r.img.GetId())
	}
	return r.img.GetId()
}
func (r imageRow) Repository() string { repo, _, _ := repoAndTag(r.img.GetName()); return repo }
func (r imageRow) Tag() string        { _, tag, _ := repoAndTag(r.img.GetName()); return tag }
func (r imageRow) Digest() string {
	if d := r.img.GetDigest(); d != "" {
		return d
	}
	if _, _, d := repoAndTag(r.img.GetName()); d != "" {
		return d
	}
	return "<none>"
}
func (r imageRow) CreatedSince() string { return ago(r.now, unixNano(r.img.GetCreated())) }
func (r imageRow) CreatedAt() string {
	t := unixNano(r.img.GetCreated())
	if t.IsZero() {
		return ""
	}
	return t.Format("2006-01-02 15:04:05 -0700 MST")
}
func (r imageRow) Size() string { return humanSize(float64(imageSize(r.img))) }
func (r imageRow) jsonFields() map[string]any {
	return map[string]any{
		"ID": r.ID(), "Repository": r.Repository(), "Tag": r.Tag(), "Digest": r.Digest(),
		"CreatedSince": r.CreatedSince(), "CreatedAt": r.CreatedAt(), "Size": r.Size(),
		"Containers": "N/A", "SharedSize": "N/A", "UniqueSize": "N/A", "VirtualSize": r.Size(),
	}
}

// imageSize is what docker shows as SIZE: the unpacked size when known.
func imageSize(img *skiffv1.Image) int64 {
	if img.GetUnpackedSize() > 0 {
		return img.GetUnpackedSize()
	}
	return img.GetSize()
}

func imageHeaders() map[string]string {
	return map[string]string{
		"ID": "IMAGE ID", "Repository": "REPOSITORY", "Tag": "TAG", "Digest": "DIGEST",
		"CreatedSince": "CREATED", "CreatedAt": "CREATED AT", "Size": "SIZE",
		"Containers": "CONTAINERS", "SharedSize": "SHARED SIZE", "UniqueSize": "UNIQUE SIZE", "VirtualSize": "SIZE",
	}
}

type imagesOptions struct {
	quiet, digests, noTrunc bool
	format                  string
}

// writeImages renders `images` output for imgs at time now.
func writeImages(w io.Writer, imgs []*skiffv1.Image, now time.Time, o imagesOptions) error {
	sort.SliceStable(imgs, func(i, j int) bool {
		if imgs[i].GetCreated() != imgs[j].GetCreated() {
			return imgs[i].GetCreated() > imgs[j].GetCreated()
		}
		return imgs[i].GetName() < imgs[j].GetName()
	})
	if o.quiet {
		seen := map[string]bool{}
		for _, img := range imgs {
			id := imageRow{img: img, trunc: !o.noTrunc}.ID()
			if !seen[id] {
				seen[id] = true
				fmt.Fprintln(w, id)
			}
		}
		return nil
	}
	rows := make([]row, 0, len(imgs))
	for _, img := range imgs {
		rows = append(rows, imageRow{img: img, now: now, trunc: !o.noTrunc})
	}
	def := "{{.Repository}}\t{{.Tag}}\t{{.ID}}\t{{.CreatedSince}}\t{{.Size}}"
	if o.digests {
		def = "{{.Repository}}\t{{.Tag}}\t{{.Digest}}\t{{.ID}}\t{{.CreatedSince}}\t{{.Size}}"
	}
	return formatter{format: o.format, headers: imageHeaders(), defaultTable: def}.render(w, rows)
}

// matchImage is the REPOSITORY[:TAG] argument of `images`.
func matchImage(img *skiffv1.Image, arg string) bool {
	repo, tag, _ := repoAndTag(img.GetName())
	n, t, _ := splitRef(arg)
	if familiarRef(n) != repo {
		return false
	}
	return t == "" || t == tag
}

func (a *app) imagesCommand(use string, aliases ...string) *cobra.Command {
	var o imagesOptions
	cmd := &cobra.Command{
		Use:     use + " [OPTIONS] [REPOSITORY[:TAG]]",
		Aliases: aliases,
		Short:   "List images",
		Args:    maxArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx, c, err := a.connect(cmd.Context())
			if err != nil {
				return err
			}
			resp, err := c.images.List(ctx, &skiffv1.ListImagesRequest{})
			if err != nil {
				return a.fromDaemon(err)
			}
			imgs := resp.GetImages()
			if len(args) == 1 {
				var kept []*skiffv1.Image
				for _, img := range imgs {
					if matchImage(img, args[0]) {
						kept = append(kept, img)
					}
				}
				imgs = kept
			}
			return writeImages(a.env.Stdout, imgs, time.Now(), o)
		},
	}
	f := cmd.Flags()
	f.BoolVarP(&o.quiet, "quiet", "q", false, "Only show image IDs")
	f.BoolVar(&o.digests, "digests", false, "Show digests")
	f.BoolVar(&o.noTrunc, "no-trunc", false, "Don't truncate output")
	f.StringVar(&o.format, "format", "", "Format output using a Go template, 'table' or 'json'")
	f.BoolP("all", "a", false, "Show all images (no intermediate images exist in skiff)")
	return cmd
}

func (a *app) rmiCommand(use string, aliases ...string) *cobra.Command {
	var force bool
	cmd := &cobra.Command{
		Use:     use + " [OPTIONS] IMAGE [IMAGE...]",
		Aliases: aliases,
		Short:   "Remove one or more images",
		Args:    minArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx, c, err := a.connect(cmd.Context())
			if err != nil {
				return err
			}
			return a.eachArg(args, func(name string) error {
				resp, err := c.images.Remove(ctx, &skiffv1.RemoveImageRequest{Name: name, Force: force})
				if err != nil {
					return a.fromDaemon(err)
				}
				for _, u := range resp.GetUntagged() {
					fmt.Fprintf(a.env.Stdout, "Untagged: %s\n", familiarRef(u))
				}
				for _, d := range resp.GetDeleted() {
					fmt.Fprintf(a.env.Stdout, "Deleted: %s\n", d)
				}
				return nil
			})
		},
	}
	cmd.Flags().BoolVarP(&force, "force", "f", false, "Force removal of the image")
	cmd.Flags().Bool("no-prune", false, "Accepted for docker compatibility")
	return cmd
}

func (a *app) loadCommand() *cobra.Command {
	var input string
	var quiet bool
	cmd := &cobra.Command{
		Use:   "load [OPTIONS]",
		Short: "Load an image from a tar archive or STDIN",
		Args:  exactArgs(0),
		RunE: func(cmd *cobra.Command, args []string) error {
			var in io.Reader = a.env.Stdin
			if input != "" {
				f, err := os.Open(input)
				if err != nil {
					return err
				}
				defer f.Close()
				in = f
			} else if _, tty := isTerminal(a.env.Stdin); tty || in == nil {
				return &statusError{code: exitGeneral, msg: "requested load from stdin, but stdin is empty"}
			}
			ctx, c, err := a.connect(cmd.Context())
			if err != nil {
				return err
			}
			stream, err := c.images.Load(ctx)
			if err != nil {
				return a.fromDaemon(err)
			}
			buf := make([]byte, 1<<20)
			for {
				n, rerr := in.Read(buf)
				if n > 0 {
					if err := stream.Send(&skiffv1.LoadRequest{Data: append([]byte(nil), buf[:n]...)}); err != nil {
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
					return fmt.Errorf("read %s: %w", orStdin(input), rerr)
				}
			}
			resp, err := stream.CloseAndRecv()
			if err != nil {
				return a.fromDaemon(err)
			}
			for _, img := range resp.GetImages() {
				if img.GetName() != "" {
					fmt.Fprintf(a.env.Stdout, "Loaded image: %s\n", familiarRef(img.GetName()))
				} else {
					fmt.Fprintf(a.env.Stdout, "Loaded image ID: %s\n", img.GetId())
				}
			}
			return nil
		},
	}
	cmd.Flags().StringVarP(&input, "input", "i", "", "Read from tar archive file, instead of STDIN")
	cmd.Flags().BoolVarP(&quiet, "quiet", "q", false, "Suppress the load output")
	return cmd
}

func orStdin(path string) string {
	if path == "" {
		return "stdin"
	}
	return path
}

func (a *app) saveCommand() *cobra.Command {
	var output string
	cmd := &cobra.Command{
		Use:   "save [OPTIONS] IMAGE [IMAGE...]",
		Short: "Save one or more images to a tar archive (streamed to STDOUT by default)",
		Args:  minArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := a.refuseTerminal(output); err != nil {
				return err
			}
			ctx, c, err := a.connect(cmd.Context())
			if err != nil {
				return err
			}
			stream, err := c.images.Save(ctx, &skiffv1.SaveRequest{Names: args})
			if err != nil {
				return a.fromDaemon(err)
			}
			return a.writeArchive(output, "failed to save image", func(w io.Writer) error {
				for {
					chunk, err := stream.Recv()
					if errors.Is(err, io.EOF) {
						return nil
					}
					if err != nil {
						return a.fromDaemon(err)
					}
					if _, err := w.Write(chunk.GetData()); err != nil {
						return err
					}
				}
			})
		},
	}
	cmd.Flags().StringVarP(&output, "output", "o", "", "Write to a file, instead of STDOUT")
	return cmd
}

// refuseTerminal refuses to write an archive to stdout (no -o) when it is
// a terminal, as docker does.
func (a *app) refuseTerminal(output string) error {
	if output == "" {
		if _, tty := isTerminal(a.env.Stdout); tty {
			return &statusError{code: exitGeneral, msg: "Error: cowardly refusing to save to a terminal. Use the -o flag or redirect"}
		}
	}
	return nil
}

// writeArchive runs fill on stdout or, with output set, on a file made next
// to output and renamed onto it at the end, as docker does, so that a
// failure leaves no partial file. Errors other than the daemon's are
// prefixed with failed ("failed to save image").
func (a *app) writeArchive(output, failed string, fill func(io.Writer) error) error {
	w := a.env.Stdout
	var tmp *os.File
	if output != "" {
		var err error
		if tmp, err = os.CreateTemp(filepath.Dir(output), ".skiff-archive-*"); err != nil {
			return fmt.Errorf("%s: %w", failed, err)
		}
		defer func() {
			tmp.Close()
			os.Remove(tmp.Name())
		}()
		w = tmp
	}
	if err := fill(w); err != nil {
		var de *daemonError
		var ce *connectError
		if errors.As(err, &de) || errors.As(err, &ce) {
			return err
		}
		return fmt.Errorf("%s: %w", failed, err)
	}
	if tmp == nil {
		return nil
	}
	if err := tmp.Chmod(0o644); err != nil {
		return err
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("%s: %w", failed, err)
	}
	if err := os.Rename(tmp.Name(), output); err != nil {
		return fmt.Errorf("%s: %w", failed, err)
	}
	return nil
}

func (a *app) tagCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "tag SOURCE_IMAGE[:TAG] TARGET_IMAGE[:TAG]",
		Short: "Create a tag TARGET_IMAGE that refers to SOURCE_IMAGE",
		Args:  exactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx, c, err := a.connect(cmd.Context())
			if err != nil {
				return err
			}
			_, err = c.images.Tag(ctx, &skiffv1.TagImageRequest{Source: args[0], Target: args[1]})
			return a.fromDaemon(err)
		},
	}
}

// imageInspect is docker's image inspect JSON (the fields skiff has).
type imageInspect struct {
	ID            string          `json:"Id"`
	RepoTags      []string        `json:"RepoTags"`
	RepoDigests   []string        `json:"RepoDigests"`
	Parent        string          `json:"Parent"`
	Comment       string          `json:"Comment"`
	Created       string          `json:"Created"`
	DockerVersion string          `json:"DockerVersion"`
	Author        string          `json:"Author"`
	Config        json.RawMessage `json:"Config"`
	Architecture  string          `json:"Architecture"`
	Variant       string          `json:"Variant,omitempty"`
	Os            string          `json:"Os"`
	Size          int64           `json:"Size"`
	RootFS        struct {
		Type   string   `json:"Type"`
		Layers []string `json:"Layers"`
	} `json:"RootFS"`
	Metadata struct {
		LastTagTime string `json:"LastTagTime"`
	} `json:"Metadata"`
}

// toImageInspect builds the inspect JSON of img; all are the images known
// (for the other names of the same id).
func toImageInspect(img *skiffv1.Image, all []*skiffv1.Image) imageInspect {
	out := imageInspect{
		ID:           img.GetId(),
		RepoTags:     []string{},
		RepoDigests:  []string{},
		Architecture: img.GetArchitecture(),
		Variant:      img.GetVariant(),
		Os:           img.GetOs(),
		Size:         imageSize(img),
		Config:       json.RawMessage("null"),
	}
	seen := map[string]bool{}
	add := func(i *skiffv1.Image) {
		n, t, d := splitRef(i.GetName())
		repo := familiarRef(n)
		if t != "" && !seen["t"+repo+":"+t] {
			seen["t"+repo+":"+t] = true
			out.RepoTags = append(out.RepoTags, repo+":"+t)
		}
		if d == "" {
			d = i.GetDigest()
		}
		if d != "" && !seen["d"+repo+"@"+d] {
			seen["d"+repo+"@"+d] = true
			out.RepoDigests = append(out.RepoDigests, repo+"@"+d)
		}
	}
	add(img)
	for _, i := range all {
		if i.GetId() == img.GetId() {
			add(i)
		}
	}
	var cfg struct {
		Created string          `json:"created"`
		Author  string          `json:"author"`
		Comment string          `json:"comment"`
		Config  json.RawMessage `json:"config"`
	}
	if len(img.GetConfigJson()) > 0 && json.Unmarshal(img.GetConfigJson(), &cfg) == nil {
		out.Author, out.Comment = cfg.Author, cfg.Comment
		if len(cfg.Config) > 0 {
			out.Config = cfg.Config
		}
		out.Created = cfg.Created
	}
	if out.Created == "" {
		out.Created = rfc3339(unixNano(img.GetCreated()))
	}
	out.RootFS.Type = "layers"
	out.RootFS.Layers = append([]string{}, img.GetDiffIds()...)
	if t := unixNano(img.GetRecorded()); !t.IsZero() {
		out.Metadata.LastTagTime = rfc3339(t)
	} else {
		out.Metadata.LastTagTime = rfc3339(time.Time{})
	}
	return out
}

// inspectImage returns the inspect JSON of name, or the daemon's error.
func (a *app) inspectImage(ctx context.Context, c *clients, name string) (any, error) {
	img, err := c.images.Get(ctx, &skiffv1.GetImageRequest{Name: name})
	if err != nil {
		return nil, a.fromDaemon(err)
	}
	var all []*skiffv1.Image
	if resp, err := c.images.List(ctx, &skiffv1.ListImagesRequest{}); err == nil {
		all = resp.GetImages()
	}
	return toImageInspect(img, all), nil
}

func (a *app) imageInspectCommand() *cobra.Command {
	var format string
	cmd := &cobra.Command{
		Use:   "inspect [OPTIONS] IMAGE [IMAGE...]",
		Short: "Display detailed information on one or more images",
		Args:  minArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx, c, err := a.connect(cmd.Context())
			if err != nil {
				return err
			}
			return a.inspectEach(args, format, func(name string) (any, error) {
				v, err := a.inspectImage(ctx, c, name)
				if isNotFound(err) {
					return nil, &statusError{code: exitGeneral, msg: "Error: No such image: " + name}
				}
				return v, err
			})
		},
	}
	cmd.Flags().StringVarP(&format, "format", "f", "", "Format output using a Go template")
	return cmd
}

// inspectEach prints the JSON array (or the --format template per object)
// of the objects found; failures are printed after, and exit 1.
func (a *app) inspectEach(args []string, format string, get func(string) (any, error)) error {
	var objs []any
	var errs []error
	for _, arg := range args {
		v, err := get(arg)
		if err != nil {
			var ce *connectError
			if errors.As(err, &ce) {
				return err
			}
			errs = append(errs, err)
			continue
		}
		objs = append(objs, v)
	}
	if format != "" {
		if err := renderInspectFormat(a.env.Stdout, format, objs); err != nil {
			return err
		}
	} else {
		if objs == nil {
			objs = []any{}
		}
		if err := printJSON(a.env.Stdout, objs); err != nil {
			return err
		}
	}
	if len(errs) == 0 {
		return nil
	}
	for _, err := range errs {
		var se *statusError
		if errors.As(err, &se) {
			fmt.Fprintln(a.env.Stderr, se.msg)
		} else {
			fmt.Fprintln(a.env.Stderr, err.Error())
		}
	}
	return &statusError{code: exitGeneral}
}

// renderInspectFormat runs a --format template over each object's JSON
// form (docker templates see the JSON field names: {{.State.Status}}).
func renderInspectFormat(w io.Writer, format string, objs []any) error {
	if format == "json" {
		format = "{{json .}}"
	}
	tmpl, err := newTemplate(format)
	if err != nil {
		return err
	}
	for _, o := range objs {
		b, err := json.Marshal(o)
		if err != nil {
			return err
		}
		var generic any
		if err := json.Unmarshal(b, &generic); err != nil {
			return err
		}
		var sb strings.Builder
		if err := tmpl.Execute(&sb, generic); err != nil {
			return &statusError{code: exitGeneral, msg: fmt.Sprintf("template: %v", err)}
		}
		fmt.Fprintln(w, sb.String())
	}
	return nil
}
