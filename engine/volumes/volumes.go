// Package volumes is skiffd's volume service with docker's local driver:
// a volume is a directory <Root>/<ns>/<name>/_data (docker's
// /var/lib/docker/volumes/<name>/_data, one level per namespace because
// namespaces partition everything) and a record in metadata. It creates,
// lists, inspects, removes and prunes volumes, makes the anonymous volumes
// of containers (64-hex names, Volume.Anonymous), and seeds an empty
// volume from an image's content at its mount path.
//
// Which containers use a volume is read from the container records
// (metadata.Container.Mounts): a volume in use is never removed
// (errdefs.ErrFailedPrecondition naming the containers), and a container
// record cannot be written for a volume that was removed meanwhile, since
// both checks happen inside metadata transactions.
//
// It must not run containers or mount anything: the container service
// binds the volume's directory into a container through the OCI spec.
//
// # Failures
//
// A directory is made before its record and removed after its record
// goes; New removes the directories a crash left without a record.
package volumes

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/skiff-containers/skiff/engine/metadata"
	"github.com/skiff-containers/skiff/errdefs"
)

// DriverLocal is the only driver.
const DriverLocal = "local"

// LabelAnonymous is docker's label of an anonymous volume.
const LabelAnonymous = "com.docker.volume.anonymous"

// dataDir is the directory of a volume that containers mount.
const dataDir = "_data"

// Config configures New.
type Config struct {
	DB *metadata.DB
	// Root is the volumes' directory (e.g. /var/lib/skiff/volumes).
	Root string
	// Logger receives the service's log; slog.Default() if nil.
	Logger *slog.Logger
	// Events receives the service's events (events.go); nil publishes
	// nothing.
	Events EventPublisher
}

// Volume is a volume as callers see it; it mirrors skiff.v1 Volume.
type Volume struct {
	Name   string
	Driver string
	// Mountpoint is the host directory containers mount.
	Mountpoint string
	Created    time.Time
	Labels     map[string]string
	Anonymous  bool
	// UsedBy are the ids of the containers that mount it.
	UsedBy []string
}

// Service is the volume service. It is safe for concurrent use.
type Service struct {
	cfg Config
	log *slog.Logger
	// mu serialises the changes of volume directories (create, seed,
	// remove), so that a seed never races a removal or another seed.
	mu sync.Mutex
}

// New returns a service over cfg, making Root if needed and removing the
// directories that have no record (left by a crash).
func New(cfg Config) (*Service, error) {
	if cfg.DB == nil {
		return nil, fmt.Errorf("volume service: DB is required: %w", errdefs.ErrInvalidArgument)
	}
	if !filepath.IsAbs(cfg.Root) {
		return nil, fmt.Errorf("volume service: Root %q must be an absolute path: %w", cfg.Root, errdefs.ErrInvalidArgument)
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if err := os.MkdirAll(cfg.Root, 0o701); err != nil {
		return nil, fmt.Errorf("volume service: make %s: %w", cfg.Root, err)
	}
	s := &Service{cfg: cfg, log: cfg.Logger.With("component", "volumes")}
	s.sweep()
	return s, nil
}

// sweep removes volume directories without a record.
func (s *Service) sweep() {
	nss, err := os.ReadDir(s.cfg.Root)
	if err != nil {
		s.log.Warn("list volume directories", "err", err)
		return
	}
	for _, nsDir := range nss {
		ns := nsDir.Name()
		if metadata.ValidateNamespace(ns) != nil || !nsDir.IsDir() {
			continue
		}
		vols, err := os.ReadDir(filepath.Join(s.cfg.Root, ns))
		if err != nil {
			continue
		}
		for _, v := range vols {
			if _, err := s.cfg.DB.GetVolume(ns, v.Name()); errdefs.IsNotFound(err) || errdefs.IsInvalidArgument(err) {
				dir := filepath.Join(s.cfg.Root, ns, v.Name())
				s.log.Info("removing a volume directory without a record", "path", dir)
				if err := os.RemoveAll(dir); err != nil {
					s.log.Warn("remove volume directory", "path", dir, "err", err)
				}
			}
		}
	}
}

func (s *Service) dir(ns, name string) string { return filepath.Join(s.cfg.Root, ns, name) }

// Path returns the directory of volume name that containers mount.
func (s *Service) Path(ns, name string) string { return filepath.Join(s.dir(ns, name), dataDir) }

func (s *Service) view(ns string, v metadata.Volume, users []string) Volume {
	return Volume{
		Name: v.Name, Driver: v.Driver, Mountpoint: s.Path(ns, v.Name), Created: v.CreatedAt,
		Labels: v.Labels, Anonymous: v.Anonymous, UsedBy: users,
	}
}

// CreateOptions are the options of Create.
type CreateOptions struct {
	// Driver must be "" or DriverLocal.
	Driver string
	Labels map[string]string
	// Anonymous marks a volume made for one container; its name (which
	// must then be empty) is 64 random hex digits.
	Anonymous bool
}

// Create makes volume name in ns, or returns the one of that name that
// exists (as docker does); created tells which. An empty name gets 64
// random hex digits (docker's `volume create` without a name).
func (s *Service) Create(ctx context.Context, ns, name string, o CreateOptions) (_ Volume, created bool, err error) {
	if err := metadata.ValidateNamespace(ns); err != nil {
		return Volume{}, false, err
	}
	if o.Driver != "" && o.Driver != DriverLocal {
		return Volume{}, false, fmt.Errorf("create volume %s: driver %q is not supported (skiff has the local driver only): %w", name, o.Driver, errdefs.ErrNotImplemented)
	}
	if o.Anonymous && name != "" {
		return Volume{}, false, fmt.Errorf("create volume %s: an anonymous volume takes no name: %w", name, errdefs.ErrInvalidArgument)
	}
	if name == "" {
		name = randomName()
	} else if err := metadata.ValidateVolumeName(name); err != nil {
		return Volume{}, false, fmt.Errorf("create volume %s: %w", name, err)
	}
	labels := o.Labels
	if o.Anonymous {
		labels = map[string]string{LabelAnonymous: ""}
		for k, v := range o.Labels {
			labels[k] = v
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if v, err := s.cfg.DB.GetVolume(ns, name); err == nil {
		if err := os.MkdirAll(s.Path(ns, name), 0o755); err != nil {
			return Volume{}, false, fmt.Errorf("volume %s: make its directory: %w", name, err)
		}
		return s.view(ns, v, nil), false, nil
	} else if !errdefs.IsNotFound(err) {
		return Volume{}, false, fmt.Errorf("create volume %s: %w", name, err)
	}
	dir := s.dir(ns, name)
	if err := os.MkdirAll(filepath.Dir(dir), 0o701); err != nil {
		return Volume{}, false, fmt.Errorf("create volume %s: %w", name, err)
	}
	// A directory without a record is a crash's leftover: start afresh.
	if err := os.RemoveAll(dir); err != nil {
		return Volume{}, false, fmt.Errorf("create volume %s: clear a stale directory: %w", name, err)
	}
	if err := os.Mkdir(dir, 0o701); err != nil {
		return Volume{}, false, fmt.Errorf("create volume %s: %w", name, err)
	}
	if err := os.Mkdir(filepath.Join(dir, dataDir), 0o755); err != nil {
		os.RemoveAll(dir)
		return Volume{}, false, fmt.Errorf("create volume %s: %w", name, err)
	}
	rec, err := s.cfg.DB.CreateVolume(ns, metadata.Volume{Name: name, Driver: DriverLocal, Labels: labels, Anonymous: o.Anonymous})
	if err != nil {
		os.RemoveAll(dir)
		return Volume{}, false, fmt.Errorf("create volume %s: %w", name, err)
	}
	s.log.Info("volume created", "namespace", ns, "name", name, "anonymous", o.Anonymous)
	s.publish(ctx, ns, evCreate, name)
	return s.view(ns, rec, nil), true, nil
}

func randomName() string {
	var b [32]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// Inspect returns volume name of ns.
func (s *Service) Inspect(ctx context.Context, ns, name string) (Volume, error) {
	if err := metadata.ValidateNamespace(ns); err != nil {
		return Volume{}, err
	}
	var out Volume
	err := s.cfg.DB.View(func(tx *metadata.Tx) error {
		v, err := tx.GetVolume(ns, name)
		if err != nil {
			return noSuchVolume(name, err)
		}
		users, err := tx.VolumeUsers(ns)
		if err != nil {
			return err
		}
		out = s.view(ns, v, users[name])
		return nil
	})
	return out, err
}

// noSuchVolume is docker's "no such volume" for a record not found.
func noSuchVolume(name string, err error) error {
	if errdefs.IsNotFound(err) {
		return fmt.Errorf("get %s: no such volume: %w", name, errdefs.ErrNotFound)
	}
	return err
}

// List returns the volumes of ns, sorted by name.
func (s *Service) List(ctx context.Context, ns string) ([]Volume, error) {
	if err := metadata.ValidateNamespace(ns); err != nil {
		return nil, err
	}
	out := []Volume{}
	err := s.cfg.DB.View(func(tx *metadata.Tx) error {
		vs, err := tx.ListVolumes(ns, nil)
		if err != nil {
			return err
		}
		users, err := tx.VolumeUsers(ns)
		if err != nil {
			return err
		}
		for _, v := range vs {
			out = append(out, s.view(ns, v, users[v.Name]))
		}
		return nil
	})
	return out, err
}

// Remove removes volume name of ns: its record, then its directory. A
// volume that containers mount is refused (errdefs.ErrFailedPrecondition,
// naming them); with force a missing volume is no error.
func (s *Service) Remove(ctx context.Context, ns, name string, force bool) error {
	if err := metadata.ValidateNamespace(ns); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	_, err := s.removeLocked(ns, name)
	if errdefs.IsNotFound(err) && force {
		return nil
	}
	return err
}

// removeLocked removes the record, then the directory, and returns the
// bytes its data took. The caller holds s.mu.
func (s *Service) removeLocked(ns, name string) (int64, error) {
	if err := s.cfg.DB.DeleteVolume(ns, name); err != nil {
		if iu := (*metadata.InUseError)(nil); errors.As(err, &iu) {
			return 0, fmt.Errorf("remove volume %s: volume is in use by %s; remove those containers first (skiff rm): %w",
				name, s.describe(ns, iu.Containers), errdefs.ErrFailedPrecondition)
		}
		return 0, fmt.Errorf("remove volume %s: %w", name, noSuchVolume(name, err))
	}
	dir := s.dir(ns, name)
	size := diskUsage(filepath.Join(dir, dataDir))
	if err := os.RemoveAll(dir); err != nil {
		// The record is gone; New removes the directory at the next start.
		s.log.Warn("remove volume directory", "path", dir, "err", err)
	}
	s.log.Info("volume removed", "namespace", ns, "name", name)
	s.publish(context.Background(), ns, evDestroy, name)
	return size, nil
}

// describe names containers by name and short id for messages.
func (s *Service) describe(ns string, ids []string) string {
	var parts []string
	for _, id := range ids {
		short := id
		if len(short) > 12 {
			short = short[:12]
		}
		if c, err := s.cfg.DB.GetContainer(ns, id); err == nil && c.Name != "" {
			parts = append(parts, fmt.Sprintf("%s (%s)", c.Name, short))
		} else {
			parts = append(parts, short)
		}
	}
	return "container(s) " + strings.Join(parts, ", ")
}

// RemoveAnonymous removes name if it is an anonymous volume that no
// container mounts (for rm -v and --rm); it reports whether it did.
func (s *Service) RemoveAnonymous(ctx context.Context, ns, name string) (bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	v, err := s.cfg.DB.GetVolume(ns, name)
	if errdefs.IsNotFound(err) {
		return false, nil
	}
	if err != nil || !v.Anonymous {
		return false, err
	}
	if _, err := s.removeLocked(ns, name); err != nil {
		return false, err
	}
	return true, nil
}

// Prune removes the volumes of ns that no container mounts: the anonymous
// ones, or all with all (docker 23's semantics). It returns the names
// removed and the bytes reclaimed.
func (s *Service) Prune(ctx context.Context, ns string, all bool) ([]string, int64, error) {
	if err := metadata.ValidateNamespace(ns); err != nil {
		return nil, 0, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	vs, err := s.cfg.DB.ListVolumes(ns, func(v metadata.Volume) bool { return all || v.Anonymous })
	if err != nil {
		return nil, 0, fmt.Errorf("prune volumes: %w", err)
	}
	users, err := s.cfg.DB.VolumeUsers(ns)
	if err != nil {
		return nil, 0, fmt.Errorf("prune volumes: %w", err)
	}
	deleted := []string{}
	var reclaimed int64
	var errs []error
	for _, v := range vs {
		if len(users[v.Name]) > 0 {
			continue
		}
		n, err := s.removeLocked(ns, v.Name)
		if errdefs.IsFailedPrecondition(err) || errdefs.IsNotFound(err) {
			continue // taken or removed meanwhile
		}
		if err != nil {
			errs = append(errs, err)
			continue
		}
		deleted = append(deleted, v.Name)
		reclaimed += n
	}
	return deleted, reclaimed, errors.Join(errs...)
}

// diskUsage sums the sizes of the regular files under dir (symlinks not
// followed); errors count as nothing.
func diskUsage(dir string) int64 {
	var n int64
	filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err == nil && d.Type().IsRegular() {
			if fi, err := d.Info(); err == nil {
				n += fi.Size()
			}
		}
		return nil
	})
	return n
}
