package containers

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/moby/sys/mountinfo"

	"github.com/skiff-containers/skiff/engine/metadata"
	"github.com/skiff-containers/skiff/errdefs"
	"github.com/skiff-containers/skiff/image/snapshot"
	"github.com/skiff-containers/skiff/image/specgen"
)

// configJSON is the bundle's runtime spec.
const configJSON = "config.json"

// logName is the container log's file name in its persistent directory.
const logName = "container.log"

// validate checks what Create can check before touching anything and
// returns warnings for what it accepts but does not honour.
func (s *Service) validate(ns string, cfg *CreateConfig) ([]string, error) {
	var warnings []string
	if err := metadata.ValidateNamespace(ns); err != nil {
		return nil, err
	}
	if cfg.Name != "" {
		if err := validName(cfg.Name); err != nil {
			return nil, err
		}
		cfg.Name = strings.TrimPrefix(cfg.Name, "/")
	}
	if strings.TrimSpace(cfg.Image) == "" {
		return nil, fmt.Errorf("create container: no image given: %w", errdefs.ErrInvalidArgument)
	}
	nwarn, err := s.validateNetwork(ns, cfg)
	if err != nil {
		return nil, err
	}
	warnings = append(warnings, nwarn...)
	switch cfg.RestartPolicy.Name {
	case "", "no":
	case "always", "on-failure", "unless-stopped":
	default:
		return nil, fmt.Errorf("create container: unknown restart policy %q (want no, always, on-failure or unless-stopped): %w", cfg.RestartPolicy.Name, errdefs.ErrInvalidArgument)
	}
	if cfg.RestartPolicy.MaxRetries < 0 || cfg.RestartPolicy.MaxRetries > 0 && cfg.RestartPolicy.Name != "on-failure" {
		return nil, fmt.Errorf("create container: maximum retry count %d is only valid, and not negative, with the on-failure restart policy: %w", cfg.RestartPolicy.MaxRetries, errdefs.ErrInvalidArgument)
	}
	if cfg.AutoRemove && cfg.RestartPolicy.Name != "" && cfg.RestartPolicy.Name != "no" {
		return nil, fmt.Errorf("create container: conflicting options: --restart %s and --rm: %w", cfg.RestartPolicy.Name, errdefs.ErrInvalidArgument)
	}
	if cfg.StopSignal != "" {
		if _, err := parseSignal(cfg.StopSignal, syscall.SIGTERM); err != nil {
			return nil, fmt.Errorf("create container: --stop-signal: %w", err)
		}
	}
	if cfg.StopTimeout != nil && *cfg.StopTimeout < -1 {
		return nil, fmt.Errorf("create container: stop timeout %d: must be -1 (none) or more: %w", *cfg.StopTimeout, errdefs.ErrInvalidArgument)
	}
	mounts, mwarn, err := validateMounts(cfg.Mounts)
	if err != nil {
		return nil, err
	}
	cfg.Mounts, warnings = mounts, append(warnings, mwarn...)
	swarn, err := validateSecurity(cfg)
	if err != nil {
		return nil, err
	}
	warnings = append(warnings, swarn...)
	if cfg.Runtime == "" {
		cfg.Runtime = s.cfg.DefaultRuntime
	}
	if _, err := s.lookRuntime(cfg.Runtime); err != nil {
		return nil, fmt.Errorf("create container: %w", err)
	}
	return warnings, nil
}

// nameInUse is docker's conflict error.
func nameInUse(name, id string) error {
	return fmt.Errorf("container name %q is already in use by container %q: remove (or rename) that container to be able to reuse that name: %w", "/"+name, id, errdefs.ErrAlreadyExists)
}

// Create makes a container from cfg: its record, writable snapshot, rootfs
// mount, /etc files and bundle. It does not start it. On failure nothing
// of it remains. An image that is not present locally is an
// errdefs.ErrNotFound (so that the caller can pull and retry).
func (s *Service) Create(ctx context.Context, ns string, cfg CreateConfig) (_ Container, warnings []string, retErr error) {
	warnings, err := s.validate(ns, &cfg)
	if err != nil {
		return Container{}, nil, err
	}
	what := "create container"
	if cfg.Name != "" {
		what += " " + cfg.Name
		if c, err := s.cfg.DB.GetContainerByName(ns, cfg.Name); err == nil {
			return Container{}, nil, nameInUse(cfg.Name, c.ID)
		}
	}
	img, err := s.cfg.Images.ContainerImage(ctx, ns, cfg.Image)
	if err != nil {
		return Container{}, nil, fmt.Errorf("%s: image %q: %w", what, cfg.Image, err)
	}
	// What follows must not be cut short by a caller going away.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), opTimeout)
	defer cancel()

	id := newID()
	if cfg.Name == "" {
		for try := 0; ; try++ {
			cfg.Name = randomName(try)
			if _, err := s.cfg.DB.GetContainerByName(ns, cfg.Name); errdefs.IsNotFound(err) {
				break
			}
			if try > 20 {
				return Container{}, nil, fmt.Errorf("%s: could not pick a free random name: %w", what, errdefs.ErrAlreadyExists)
			}
		}
	}

	var undo []func()
	defer func() {
		if retErr != nil {
			for i := len(undo) - 1; i >= 0; i-- {
				undo[i]()
			}
		}
	}()
	fail := func(step string, err error) (Container, []string, error) {
		return Container{}, nil, fmt.Errorf("%s: %s: %w", what, step, err)
	}

	bundle, rootfs, persist := s.bundleDir(ns, id), s.rootfsDir(ns, id), s.persistDir(ns, id)
	for _, d := range []string{bundle, persist} {
		if err := os.MkdirAll(d, 0o711); err != nil {
			return fail("make its directories", err)
		}
	}
	undo = append(undo, func() { os.RemoveAll(bundle); os.RemoveAll(persist) })
	if err := os.Mkdir(rootfs, 0o755); err != nil {
		return fail("make its rootfs directory", err)
	}

	key := snapshotKey(ns, id)
	mounts, err := s.cfg.Snapshotter.Prepare(ctx, key, img.ChainID)
	if err != nil {
		if errdefs.IsNotFound(err) {
			// Not "image not found": the image is there, its layers are not.
			err = fmt.Errorf("the layers of image %s are not unpacked (%v); pull it again: %w", img.Name, err, errdefs.ErrFailedPrecondition)
		}
		return fail("prepare its writable layer", err)
	}
	undo = append(undo, func() {
		if err := s.cfg.Snapshotter.Remove(context.Background(), key); err != nil {
			s.log.Warn("undo create: remove snapshot", "key", key, "err", err)
		}
	})
	if err := snapshot.MountAll(mounts, rootfs); err != nil {
		return fail("mount its root filesystem", err)
	}
	undo = append(undo, func() {
		if err := snapshot.Unmount(rootfs); err != nil {
			s.log.Warn("undo create: unmount rootfs", "path", rootfs, "err", err)
		}
	})

	mm, err := s.makeMounts(ctx, ns, cfg, img, rootfs)
	if err != nil {
		return Container{}, nil, err
	}
	undo = append(undo, mm.rollback)

	opts := specgen.Options{
		ID:            id,
		ImageRef:      img.Name,
		Hostname:      cfg.Hostname,
		Env:           cfg.Env,
		Entrypoint:    cfg.Entrypoint,
		EntrypointSet: cfg.EntrypointSet,
		Cmd:           cfg.Cmd,
		WorkingDir:    cfg.WorkingDir,
		User:          cfg.User,
		Tty:           cfg.Tty,
		ReadOnly:      cfg.ReadOnly,
		NetworkMode:   cfg.NetworkMode,
		Labels:        cfg.Labels,
		StopSignal:    cfg.StopSignal,
		CgroupsPath:   cgroupsPath(ns, id),
	}
	s.networkSpec(&opts, cfg, id)
	if err := securitySpec(&opts, cfg); err != nil {
		return fail("its security options", err)
	}
	etc, err := specgen.WriteEtcFiles(persist, opts)
	if err != nil {
		return fail("write its /etc files", err)
	}
	opts.ExtraMounts = mm.extraMounts(etc)
	spec, info, err := specgen.Generate(img.Config, rootfs, opts)
	if err != nil {
		return fail("generate its runtime spec", err)
	}
	if err := s.writeNetworkEtc(persist, &cfg, info); err != nil {
		return fail("write its /etc files", err)
	}
	specJSON, err := json.Marshal(spec)
	if err != nil {
		return fail("encode its runtime spec", err)
	}
	if err := writeFileAtomic(filepath.Join(bundle, configJSON), specJSON); err != nil {
		return fail("write its bundle", err)
	}
	cfgJSON, err := json.Marshal(cfg)
	if err != nil {
		return fail("encode its config", err)
	}
	rec, err := s.cfg.DB.CreateContainer(ns, metadata.Container{
		ID:            id,
		Name:          cfg.Name,
		Image:         img.Name,
		ImageID:       img.ID.String(),
		SnapshotKey:   key,
		Snapshotter:   s.cfg.Snapshotter.Driver(),
		Runtime:       cfg.Runtime,
		Spec:          specJSON,
		Config:        cfgJSON,
		Labels:        info.Labels,
		RestartPolicy: metadata.RestartPolicy(cfg.RestartPolicy),
		LogPath:       filepath.Join(persist, logName),
		StopSignal:    info.StopSignalName,
		State:         metadata.ContainerState{Status: StatusCreated},
		Mounts:        mm.records,
	})
	if err != nil {
		if errdefs.IsAlreadyExists(err) {
			if c, gerr := s.cfg.DB.GetContainerByName(ns, cfg.Name); gerr == nil {
				return Container{}, nil, nameInUse(cfg.Name, c.ID)
			}
		}
		return fail("record it", err)
	}
	s.log.Info("container created", "namespace", ns, "id", id, "name", cfg.Name, "image", img.Name)
	s.publish(ns, id, evCreate, rec, nil)
	return s.view(ns, rec), warnings, nil
}

// ensureBundle makes sure the bundle is complete before the runtime's
// create: the rootfs mounted (a reboot or an unmount loses it) and
// config.json present (rewritten from the record).
func (s *Service) ensureBundle(ctx context.Context, ns string, rec metadata.Container) error {
	rootfs := s.rootfsDir(ns, rec.ID)
	if err := os.MkdirAll(rootfs, 0o755); err != nil {
		return err
	}
	mounted, err := mountinfo.Mounted(rootfs)
	if err != nil {
		return fmt.Errorf("check the mount of %s: %w", rootfs, err)
	}
	if !mounted {
		mounts, err := s.cfg.Snapshotter.Mounts(ctx, rec.SnapshotKey)
		if err != nil {
			return fmt.Errorf("its writable layer: %w", err)
		}
		if err := snapshot.MountAll(mounts, rootfs); err != nil {
			return fmt.Errorf("mount its root filesystem: %w", err)
		}
		s.log.Info("re-mounted a container's root filesystem", "namespace", ns, "id", rec.ID)
	}
	path := filepath.Join(s.bundleDir(ns, rec.ID), configJSON)
	if _, err := os.Stat(path); errors.Is(err, os.ErrNotExist) {
		if err := writeFileAtomic(path, rec.Spec); err != nil {
			return fmt.Errorf("rewrite its bundle: %w", err)
		}
	}
	return nil
}

// writeFileAtomic writes data to path through a temporary file and rename.
func writeFileAtomic(path string, data []byte) error {
	tmp := path + ".tmp"
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return err
	}
	_, err = f.Write(data)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		os.Remove(tmp)
	}
	return err
}
