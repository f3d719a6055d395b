package containers

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"path"
	"slices"
	"strconv"
	"strings"

	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/skiff-containers/skiff/engine/metadata"
	"github.com/skiff-containers/skiff/errdefs"
	"github.com/skiff-containers/skiff/image/archive"
	"github.com/skiff-containers/skiff/image/snapshot"
)

// ImageCommitter records an image made of a container's changes (the
// wiring adapts engine/images to it).
type ImageCommitter interface {
	// CommitImage stores Layer as a new layer on top of the image Base,
	// with Config (Changes applied) and a history entry, and records the
	// image under Ref (dangling if empty). It reads Layer to its end
	// unless it fails.
	CommitImage(ctx context.Context, ns string, c ImageCommit) (CommittedImage, error)
}

// ImageCommit is a container's changes to be made an image.
type ImageCommit struct {
	// Base is the id (config digest) of the container's image.
	Base string
	// Layer is the uncompressed tar of the changes: an OCI layer, with
	// whiteouts for what was deleted.
	Layer io.Reader
	// Config is the container's configuration (docker's: its image's with
	// what create changed), before Changes.
	Config ocispec.ImageConfig
	// Changes are Dockerfile instructions applied to Config (commit -c).
	Changes []string
	// Ref names the image ("" for a dangling one).
	Ref string
	// Author and Comment (commit -a, -m) and CreatedBy (the container's
	// command) go into the history entry.
	Author, Comment, CreatedBy string
}

// CommittedImage is the image Commit made.
type CommittedImage struct {
	// Name is the image's normalised name, or its id if dangling.
	Name string
	// ID is the image's config digest.
	ID digest.Digest
}

// CommitOptions are `skiff commit`'s flags.
type CommitOptions struct {
	Ref     string
	Author  string
	Message string
	Changes []string
	// Pause freezes a running container while its changes are read
	// (docker's default).
	Pause bool
}

// Commit makes an image of the container's changes (docker commit): the
// diff of its writable layer against its image, as a new layer on top of
// that image, with the container's configuration and opts.Changes. The
// container may run; with opts.Pause it is frozen while its changes are
// read. It needs the overlayfs snapshotter, whose upper directory is the
// diff; with the native one it is refused (errdefs.ErrNotImplemented).
func (s *Service) Commit(ctx context.Context, ns, idOrName string, opts CommitOptions) (CommittedImage, error) {
	what := "commit container " + idOrName
	if s.cfg.Committer == nil {
		return CommittedImage{}, fmt.Errorf("%s: this engine was built without an image store to commit into: %w", what, errdefs.ErrNotImplemented)
	}
	c, rec, err := s.lock(ns, idOrName)
	if err != nil {
		return CommittedImage{}, err
	}
	defer c.op.Unlock()
	st := status(rec)
	if st == StatusRemoving {
		return CommittedImage{}, &StateError{ID: idOrName, Op: "commit", Status: st}
	}
	mounts, err := s.cfg.Snapshotter.Mounts(ctx, rec.SnapshotKey)
	if err != nil {
		return CommittedImage{}, fmt.Errorf("%s: its writable layer: %w", what, err)
	}
	upper, overlay, ok := snapshot.WritableDir(mounts)
	if !ok || !overlay {
		return CommittedImage{}, fmt.Errorf("%s: its writable layer is kept by the %s snapshotter, which keeps no separate layer of changes to commit; run skiffd with --snapshotter overlayfs: %w",
			what, s.cfg.Snapshotter.Driver(), errdefs.ErrNotImplemented)
	}
	img, err := s.cfg.Images.ContainerImage(ctx, ns, rec.ImageID)
	if err != nil {
		return CommittedImage{}, fmt.Errorf("%s: its image %s (%s) is needed as the base of the new one: %w", what, rec.Image, rec.ImageID, err)
	}
	cfg := commitConfig(img.Config.Config, decodeConfig(rec))
	skip, err := runtimeMountPoints(rec.Spec)
	if err != nil {
		return CommittedImage{}, fmt.Errorf("%s: %w", what, err)
	}

	if opts.Pause && st == StatusRunning {
		thaw, err := s.freeze(ctx, c, rec)
		if err != nil {
			return CommittedImage{}, fmt.Errorf("%s: pause it: %w", what, err)
		}
		defer thaw()
	}

	fd, err := unix.Open(upper, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return CommittedImage{}, fmt.Errorf("%s: open its writable layer %s: %w", what, upper, err)
	}
	dir := os.NewFile(uintptr(fd), upper)
	defer dir.Close()
	pr, pw := io.Pipe()
	diffDone := make(chan error, 1)
	go func() {
		err := archive.WriteTree(ctx, pw, dir, ".", "", archive.WriteOptions{OverlayDiff: true, SkipEmpty: skip})
		pw.CloseWithError(err)
		diffDone <- err
	}()
	res, err := s.cfg.Committer.CommitImage(ctx, ns, ImageCommit{
		Base:      rec.ImageID,
		Layer:     pr,
		Config:    cfg,
		Changes:   opts.Changes,
		Ref:       opts.Ref,
		Author:    opts.Author,
		Comment:   opts.Message,
		CreatedBy: strings.Join(cfg.Cmd, " "),
	})
	pr.CloseWithError(errCommitEnded) // stops the diff if the commit did not read it all
	derr := <-diffDone
	if err != nil {
		if derr != nil && !errors.Is(derr, errCommitEnded) {
			return CommittedImage{}, fmt.Errorf("%s: read its changes: %w", what, derr)
		}
		return CommittedImage{}, fmt.Errorf("%s: %w", what, err)
	}
	s.log.Info("container committed", "namespace", ns, "id", rec.ID, "image", res.Name, "imageID", res.ID)
	s.publish(ns, rec.ID, "commit", rec, map[string]string{"comment": opts.Message, "imageID": res.ID.String(), "imageRef": res.Name}) // docker's
	return res, nil
}

var errCommitEnded = errors.New("the commit ended before the diff did")

// freeze pauses the running container c (whose op lock the caller holds)
// and returns what thaws it again.
func (s *Service) freeze(ctx context.Context, c *ctr, rec metadata.Container) (func(), error) {
	cl := c.getShim()
	if cl == nil {
		return nil, fmt.Errorf("no shim holds it; restart skiffd to recover it")
	}
	if err := cl.Pause(ctx); err != nil {
		return nil, err
	}
	setStatus := func(from, to string) {
		if _, err := s.updateState(c.ns, rec.ID, func(st *metadata.ContainerState) {
			if st.Status == from {
				st.Status = to
			}
		}); err != nil {
			s.log.Warn("record the status of a container paused for commit", "id", rec.ID, "status", to, "err", err)
		}
	}
	setStatus(StatusRunning, StatusPaused)
	return func() {
		if err := cl.Resume(context.WithoutCancel(ctx)); err != nil {
			s.log.Warn("unpause a container after commit", "namespace", c.ns, "id", rec.ID, "err", err)
			return
		}
		setStatus(StatusPaused, StatusRunning)
	}, nil
}

// runtimeMountPoints are the destinations of a container's mounts: an
// OCI runtime makes those missing in the writable layer (empty
// directories and files), which are not the container's changes.
func runtimeMountPoints(spec []byte) ([]string, error) {
	var sp specs.Spec
	if err := json.Unmarshal(spec, &sp); err != nil {
		return nil, fmt.Errorf("read its runtime spec: %w", err)
	}
	var out []string
	for _, m := range sp.Mounts {
		if d := strings.Trim(path.Clean("/"+m.Destination), "/"); d != "" {
			out = append(out, d)
		}
	}
	return out, nil
}

// commitConfig is the configuration docker records for a container (its
// image's, merged at create with the container's options), which commit
// writes into the new image.
func commitConfig(img ocispec.ImageConfig, cc CreateConfig) ocispec.ImageConfig {
	out := img
	out.Cmd = slices.Clone(img.Cmd)
	out.Entrypoint = slices.Clone(img.Entrypoint)
	if cc.EntrypointSet {
		out.Entrypoint = slices.Clone(cc.Entrypoint)
		if len(out.Entrypoint) == 1 && out.Entrypoint[0] == "" {
			out.Entrypoint = nil
		}
		out.Cmd = nil
	}
	if len(cc.Cmd) > 0 {
		out.Cmd = slices.Clone(cc.Cmd)
	}
	out.Env = mergeEnv(img.Env, cc.Env)
	if cc.WorkingDir != "" {
		out.WorkingDir = path.Clean(cc.WorkingDir)
	}
	if cc.User != "" {
		out.User = cc.User
	}
	if cc.StopSignal != "" {
		out.StopSignal = cc.StopSignal
	}
	if len(img.Labels) > 0 || len(cc.Labels) > 0 {
		out.Labels = maps.Clone(img.Labels)
		if out.Labels == nil {
			out.Labels = map[string]string{}
		}
		maps.Copy(out.Labels, cc.Labels)
	}
	ports := maps.Clone(img.ExposedPorts)
	add := func(p string) {
		if ports == nil {
			ports = map[string]struct{}{}
		}
		ports[p] = struct{}{}
	}
	for _, p := range cc.PortBindings {
		proto := p.Protocol
		if proto == "" {
			proto = "tcp"
		}
		add(strconv.Itoa(p.ContainerPort) + "/" + proto)
	}
	out.ExposedPorts = ports
	vols := maps.Clone(img.Volumes)
	for _, m := range cc.Mounts {
		if m.Type == MountVolume && m.Source == "" { // -v /path: docker records it as a VOLUME
			if vols == nil {
				vols = map[string]struct{}{}
			}
			vols[m.Target] = struct{}{}
		}
	}
	out.Volumes = vols
	return out
}

// mergeEnv is docker's merge of a container's -e entries with its
// image's: the user's first, then the image's they do not name; a bare
// NAME of the user's removes the image's entry.
func mergeEnv(img, user []string) []string {
	var out []string
	named := map[string]bool{}
	for _, e := range user {
		name, _, hasValue := strings.Cut(e, "=")
		named[name] = true
		if hasValue {
			out = append(out, e)
		}
	}
	for _, e := range img {
		name, _, _ := strings.Cut(e, "=")
		if !named[name] {
			out = append(out, e)
		}
	}
	return out
}
