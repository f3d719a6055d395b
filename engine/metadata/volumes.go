package metadata

import (
	"fmt"
	"path"
	"slices"
	"sort"
	"time"

	"github.com/skiff-containers/skiff/errdefs"
)

// Volume is a volume record: a named directory the engine manages (the
// local driver's <root>/volumes/<ns>/<name>/_data) that containers mount.
// Which containers use it is not stored here: each container record lists
// its mounts (Container.Mounts), and VolumeUsers reads them, so that the
// in-use check and the container records cannot disagree.
type Volume struct {
	// Name is docker's volume name: [a-zA-Z0-9][a-zA-Z0-9_.-]+.
	Name string `json:"name"`
	// Driver is "local".
	Driver string            `json:"driver"`
	Labels map[string]string `json:"labels,omitempty"`
	// Options are the driver's options (none for "local" yet).
	Options map[string]string `json:"options,omitempty"`
	// Anonymous marks a volume made for a container (-v /path, an image
	// VOLUME): removed with its container by rm -v and --rm, and by prune.
	Anonymous bool      `json:"anonymous,omitempty"`
	CreatedAt time.Time `json:"createdAt"`
	UpdatedAt time.Time `json:"updatedAt"`
}

// Mount types of a container's Mount.
const (
	MountBind   = "bind"
	MountVolume = "volume"
	MountTmpfs  = "tmpfs"
)

// Mount is one mount of a container as it was made: a bind of a host path,
// a volume (by name), or a tmpfs.
type Mount struct {
	// Type is MountBind, MountVolume or MountTmpfs.
	Type string `json:"type"`
	// Name is the volume's name (MountVolume only).
	Name string `json:"name,omitempty"`
	// Source is the host path bound (for a volume, its data directory).
	Source string `json:"source,omitempty"`
	// Destination is the absolute path in the container.
	Destination string `json:"destination"`
	ReadOnly    bool   `json:"readOnly,omitempty"`
	// Options are the mount's options (propagation, tmpfs size and mode…).
	Options []string `json:"options,omitempty"`
}

const (
	kindVolume    = "volume"
	bucketVolumes = "volumes"
	// MinVolumeNameLen is docker's: a name has at least two characters.
	MinVolumeNameLen = 2
)

// ValidateVolumeName checks docker's rule for local volume names,
// [a-zA-Z0-9][a-zA-Z0-9_.-]+ (at most MaxIDLen bytes), as
// ErrInvalidArgument.
func ValidateVolumeName(name string) error {
	if err := checkName("volume name", name, MaxIDLen, "_.-"); err != nil {
		return fmt.Errorf("%w; if you meant a host directory, give an absolute path", err)
	}
	if len(name) < MinVolumeNameLen {
		return fmt.Errorf("volume name %q is too short: names have at least %d characters: %w", name, MinVolumeNameLen, errdefs.ErrInvalidArgument)
	}
	return nil
}

func validateVolume(ns string, v *Volume) error {
	if err := ValidateVolumeName(v.Name); err != nil {
		return fmt.Errorf("namespace %q: %w", ns, err)
	}
	if v.Driver == "" {
		return recordErr(ns, kindVolume, v.Name, fmt.Errorf("no driver: %w", errdefs.ErrInvalidArgument))
	}
	return validateLabels(fmt.Sprintf("namespace %q: volume %q", ns, v.Name), v.Labels)
}

// validateMounts checks a container's mounts: known types, absolute
// destinations, valid volume names.
func validateMounts(ns, id string, mounts []Mount) error {
	for i, m := range mounts {
		fail := func(format string, a ...any) error {
			return recordErr(ns, kindContainer, id, fmt.Errorf("mount %d: "+format+": %w", append(append([]any{i}, a...), errdefs.ErrInvalidArgument)...))
		}
		if !path.IsAbs(m.Destination) {
			return fail("destination %q is not an absolute path", m.Destination)
		}
		switch m.Type {
		case MountVolume:
			if err := ValidateVolumeName(m.Name); err != nil {
				return recordErr(ns, kindContainer, id, err)
			}
		case MountBind:
			if !path.IsAbs(m.Source) {
				return fail("bind source %q is not an absolute path", m.Source)
			}
		case MountTmpfs:
		default:
			return fail("unknown type %q (want bind, volume or tmpfs)", m.Type)
		}
	}
	return nil
}

// checkVolumesExist fails with ErrNotFound if a volume that c mounts has
// no record in ns (it was removed while the container was being made).
func (t *Tx) checkVolumesExist(ns string, c *Container) error {
	for _, m := range c.Mounts {
		if m.Type != MountVolume {
			continue
		}
		if _, err := t.GetVolume(ns, m.Name); err != nil {
			return recordErr(ns, kindContainer, c.ID, fmt.Errorf("mount of volume %q: %w", m.Name, err))
		}
	}
	return nil
}

// CreateVolume stores a new volume, setting CreatedAt and UpdatedAt. It
// fails with ErrAlreadyExists if the name is taken in ns.
func (t *Tx) CreateVolume(ns string, v Volume) (Volume, error) {
	if err := validateVolume(ns, &v); err != nil {
		return Volume{}, err
	}
	if err := t.writable(fmt.Sprintf("create volume %q", v.Name)); err != nil {
		return Volume{}, err
	}
	b, err := t.kindBucket(ns, bucketVolumes, true)
	if err != nil {
		return Volume{}, err
	}
	if b.Get([]byte(v.Name)) != nil {
		return Volume{}, recordErr(ns, kindVolume, v.Name, errdefs.ErrAlreadyExists)
	}
	v.CreatedAt, v.UpdatedAt = t.now, t.now
	data, err := putRecord(b, v.Name, &v)
	if err != nil {
		return Volume{}, recordErr(ns, kindVolume, v.Name, err)
	}
	return roundTrip[Volume](data)
}

// GetVolume returns the volume called name in ns, or ErrNotFound.
func (t *Tx) GetVolume(ns, name string) (Volume, error) {
	if err := ValidateVolumeName(name); err != nil {
		return Volume{}, fmt.Errorf("namespace %q: %w", ns, err)
	}
	b, err := t.kindBucket(ns, bucketVolumes, false)
	if err != nil {
		return Volume{}, err
	}
	var v Volume
	found, err := getRecord(b, name, &v)
	if err != nil {
		return Volume{}, recordErr(ns, kindVolume, name, err)
	}
	if !found {
		return Volume{}, recordErr(ns, kindVolume, name, errdefs.ErrNotFound)
	}
	return v, nil
}

// ListVolumes returns the volumes of ns sorted by name, those filter
// accepts (all if filter is nil).
func (t *Tx) ListVolumes(ns string, filter func(Volume) bool) ([]Volume, error) {
	b, err := t.kindBucket(ns, bucketVolumes, false)
	if err != nil {
		return nil, err
	}
	out, err := listRecords(b, filter)
	if err != nil {
		return nil, fmt.Errorf("namespace %q: list volumes: %w", ns, err)
	}
	return out, nil
}

// VolumeUsers returns, for every volume of ns that containers mount, the
// ids of those containers, sorted.
func (t *Tx) VolumeUsers(ns string) (map[string][]string, error) {
	ctrs, err := t.ListContainers(ns, nil)
	if err != nil {
		return nil, err
	}
	out := map[string][]string{}
	for _, c := range ctrs {
		for _, m := range c.Mounts {
			if m.Type == MountVolume && !slices.Contains(out[m.Name], c.ID) {
				out[m.Name] = append(out[m.Name], c.ID)
			}
		}
	}
	for _, ids := range out {
		sort.Strings(ids)
	}
	return out, nil
}

// DeleteVolume removes the volume called name from ns. It fails with
// ErrNotFound if there is none, and with ErrFailedPrecondition, naming
// them, if containers mount it. The volume's directory is the caller's.
func (t *Tx) DeleteVolume(ns, name string) error {
	if err := ValidateVolumeName(name); err != nil {
		return fmt.Errorf("namespace %q: %w", ns, err)
	}
	if err := t.writable(fmt.Sprintf("delete volume %q", name)); err != nil {
		return err
	}
	b, err := t.kindBucket(ns, bucketVolumes, false)
	if err != nil {
		return err
	}
	if b == nil || b.Get([]byte(name)) == nil {
		return recordErr(ns, kindVolume, name, errdefs.ErrNotFound)
	}
	users, err := t.VolumeUsers(ns)
	if err != nil {
		return err
	}
	if ids := users[name]; len(ids) > 0 {
		return &InUseError{Volume: name, Containers: ids}
	}
	if err := b.Delete([]byte(name)); err != nil {
		return recordErr(ns, kindVolume, name, err)
	}
	return nil
}

// InUseError is DeleteVolume's refusal of a volume that containers mount;
// its class is errdefs.ErrFailedPrecondition.
type InUseError struct {
	Volume     string
	Containers []string // ids
}

func (e *InUseError) Error() string {
	return fmt.Sprintf("volume %q is in use by container(s) %v; remove them first", e.Volume, e.Containers)
}

func (e *InUseError) Unwrap() error { return errdefs.ErrFailedPrecondition }

// CreateVolume: see Tx.CreateVolume.
func (db *DB) CreateVolume(ns string, v Volume) (out Volume, err error) {
	err = db.Update(func(t *Tx) error { out, err = t.CreateVolume(ns, v); return err })
	return out, err
}

// GetVolume: see Tx.GetVolume.
func (db *DB) GetVolume(ns, name string) (out Volume, err error) {
	err = db.View(func(t *Tx) error { out, err = t.GetVolume(ns, name); return err })
	return out, err
}

// ListVolumes: see Tx.ListVolumes.
func (db *DB) ListVolumes(ns string, filter func(Volume) bool) (out []Volume, err error) {
	err = db.View(func(t *Tx) error { out, err = t.ListVolumes(ns, filter); return err })
	return out, err
}

// VolumeUsers: see Tx.VolumeUsers.
func (db *DB) VolumeUsers(ns string) (out map[string][]string, err error) {
	err = db.View(func(t *Tx) error { out, err = t.VolumeUsers(ns); return err })
	return out, err
}

// DeleteVolume: see Tx.DeleteVolume.
func (db *DB) DeleteVolume(ns, name string) error {
	return db.Update(func(t *Tx) error { return t.DeleteVolume(ns, name) })
}
