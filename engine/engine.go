// Package engine assembles skiffd's engine from its parts: it opens the
// metadata database, the content store and the snapshotter under the
// daemon's root, builds the image, volume and container services on them
// (publishing to one event exchange), recovers
// the containers that outlived the previous daemon, and closes it all again.
// It owns the on-disk layout of --root and --state (see DESIGN.md).
//
// It must not hold image or container logic (engine/images and
// engine/containers do) nor know about gRPC (package server does).
package engine

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"

	"github.com/skiff-containers/skiff/engine/containers"
	"github.com/skiff-containers/skiff/engine/events"
	"github.com/skiff-containers/skiff/engine/images"
	"github.com/skiff-containers/skiff/engine/metadata"
	"github.com/skiff-containers/skiff/engine/network"
	"github.com/skiff-containers/skiff/engine/volumes"
	"github.com/skiff-containers/skiff/errdefs"
	"github.com/skiff-containers/skiff/image/content"
	"github.com/skiff-containers/skiff/image/remote"
	"github.com/skiff-containers/skiff/image/snapshot"
)

// Config says where the engine keeps its data and what it runs.
type Config struct {
	// Root holds persistent data: content/, snapshots/, meta.db, container
	// logs (default /var/lib/skiff).
	Root string
	// State holds volatile data: shim state, bundles, rootfs mounts,
	// runtime state (default /run/skiff).
	State string
	// Runtime is the default OCI runtime (a name on PATH or a path).
	Runtime string
	// ShimBinary is the skiff-shim executable.
	ShimBinary string
	// Snapshotter is "overlayfs", "native", or "" for overlayfs where it
	// works.
	Snapshotter string
	// InsecureRegistries may be reached over plain HTTP (loopback always
	// may).
	InsecureRegistries []string
	// DockerConfig is the credentials file of the daemon's own (default
	// ~/.docker/config.json of the daemon's user); "" disables it.
	DockerConfig string
	// CNIBinDirs are where the CNI plugins are (default /usr/lib/cni).
	CNIBinDirs []string
	// DefaultBridge and DefaultSubnet are the bridge device and subnet of
	// the default network "skiff" when it is created (default skiff0,
	// 10.88.0.0/16).
	DefaultBridge, DefaultSubnet string
	Logger                       *slog.Logger
}

// Engine is an open engine.
type Engine struct {
	cfg         Config
	DB          *metadata.DB
	Content     *content.Store
	Snapshotter *snapshot.Snapshotter
	Images      *images.Service
	Containers  *containers.Service
	Volumes     *volumes.Service
	Network     *network.Manager
	// Events is the event exchange the services publish to.
	Events *events.Exchange
}

// Open opens the engine's stores under cfg.Root and cfg.State, creating
// them if needed, and recovers the containers found in the metadata. On
// error everything opened so far is closed again.
func Open(ctx context.Context, cfg Config) (_ *Engine, retErr error) {
	if cfg.Root == "" || cfg.State == "" {
		return nil, fmt.Errorf("engine: root and state directories must be set: %w", errdefs.ErrInvalidArgument)
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	for _, d := range []string{cfg.Root, cfg.State} {
		if !filepath.IsAbs(d) {
			return nil, fmt.Errorf("engine: directory %q must be absolute: %w", d, errdefs.ErrInvalidArgument)
		}
		if err := os.MkdirAll(d, 0o711); err != nil {
			return nil, fmt.Errorf("engine: create %s: %w", d, err)
		}
	}
	e := &Engine{cfg: cfg, Events: events.New(events.Options{})}
	defer func() {
		if retErr != nil {
			e.Close()
		}
	}()
	var err error
	e.DB, err = metadata.Open(filepath.Join(cfg.Root, "meta.db"), metadata.Options{})
	if err != nil {
		return nil, fmt.Errorf("engine: open metadata (is another skiffd using --root %s?): %w", cfg.Root, err)
	}
	if e.Content, err = content.Open(filepath.Join(cfg.Root, "content")); err != nil {
		return nil, fmt.Errorf("engine: open content store: %w", err)
	}
	if e.Snapshotter, err = snapshot.New(filepath.Join(cfg.Root, "snapshots"), snapshot.Options{Driver: cfg.Snapshotter}); err != nil {
		return nil, fmt.Errorf("engine: open snapshotter: %w", err)
	}
	ropts := remote.Options{Insecure: cfg.InsecureRegistries, UserAgent: "skiffd"}
	if cfg.DockerConfig != "" {
		dc, err := remote.LoadDockerConfig(cfg.DockerConfig)
		if err != nil && !errors.Is(err, os.ErrNotExist) && !errdefs.IsNotFound(err) {
			return nil, fmt.Errorf("engine: read credentials %s: %w", cfg.DockerConfig, err)
		}
		if dc != nil {
			ropts.Credentials = dc
		}
	}
	if e.Images, err = images.New(images.Config{
		DB: e.DB, Content: e.Content, Snapshotter: e.Snapshotter, Remote: ropts,
		Logger: cfg.Logger.With("service", "images"), Events: e.Events,
	}); err != nil {
		return nil, err
	}
	if e.Volumes, err = volumes.New(volumes.Config{
		DB: e.DB, Root: filepath.Join(cfg.Root, "volumes"), Logger: cfg.Logger.With("service", "volumes"),
		Events: e.Events,
	}); err != nil {
		return nil, fmt.Errorf("engine: open volumes: %w", err)
	}
	if e.Network, err = network.New(network.Config{
		Root: cfg.Root, State: cfg.State, BinDirs: cfg.CNIBinDirs,
		DefaultBridge: cfg.DefaultBridge, DefaultSubnet: cfg.DefaultSubnet,
		Logger: cfg.Logger.With("service", "network"), Events: e.Events,
	}); err != nil {
		return nil, fmt.Errorf("engine: open networks: %w", err)
	}
	if e.Containers, err = containers.New(containers.Config{
		DB: e.DB, Snapshotter: e.Snapshotter, Images: imageSource{e.Images},
		Root: cfg.Root, State: cfg.State, ShimBinary: cfg.ShimBinary, DefaultRuntime: cfg.Runtime,
		Volumes: e.Volumes, Network: e.Network, Committer: imageCommitter{e.Images},
		Logger: cfg.Logger.With("service", "containers"), Events: e.Events,
	}); err != nil {
		return nil, err
	}
	if err := e.Containers.Recover(ctx); err != nil {
		return nil, fmt.Errorf("engine: recover containers: %w", err)
	}
	if err := e.Images.GC(ctx); err != nil {
		cfg.Logger.Warn("garbage collection failed", "error", err)
	}
	return e, nil
}

// Config returns the configuration the engine was opened with.
func (e *Engine) Config() Config { return e.cfg }

// Close stops the engine's watchers and closes its stores. Running
// containers keep running under their shims.
func (e *Engine) Close() error {
	var errs []error
	if e.Events != nil {
		e.Events.Close() // ends the subscribers' streams
	}
	if e.Containers != nil {
		errs = append(errs, e.Containers.Close())
	}
	if e.Snapshotter != nil {
		errs = append(errs, e.Snapshotter.Close())
	}
	if e.DB != nil {
		errs = append(errs, e.DB.Close())
	}
	return errors.Join(errs...)
}

// imageSource adapts the image service to what the container service needs.
type imageSource struct{ images *images.Service }

func (s imageSource) ContainerImage(ctx context.Context, ns, ref string) (containers.Image, error) {
	r, err := s.images.Resolve(ctx, ns, ref)
	if err != nil {
		return containers.Image{}, err
	}
	return containers.Image{Name: r.Name, ID: r.ID, Config: r.Config, ChainID: r.ChainID}, nil
}
