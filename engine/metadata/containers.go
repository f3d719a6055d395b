package metadata

import (
	"encoding/json"
	"fmt"
	"time"

	"github.com/skiff-containers/skiff/errdefs"
)

// RestartPolicy is docker's --restart: Name is "", "no", "always",
// "unless-stopped" or "on-failure"; MaxRetries only applies to on-failure
// (0 = unlimited).
type RestartPolicy struct {
	Name       string `json:"name,omitempty"`
	MaxRetries int    `json:"maxRetries,omitempty"`
}

// ContainerState is the engine's last record of a container's lifecycle:
// what it saw happen (started, exited with a code, being removed), so that
// it survives the engine's restarts and the container's shim. The live
// truth while a container runs belongs to its shim and runtime; the engine
// writes this at each transition.
type ContainerState struct {
	// Status uses docker's words: "created", "running", "paused",
	// "exited", "dead", "removing".
	Status string `json:"status,omitempty"`
	// Pid is the host pid of the container's init while it runs.
	Pid int `json:"pid,omitempty"`
	// ExitCode is the last exit status (128+N when killed by signal N), or
	// docker's 126/127 when the process could not be started.
	ExitCode int `json:"exitCode,omitempty"`
	// ExitKnown is false when the container died unobserved (its shim
	// was gone and left no exit file).
	ExitKnown bool `json:"exitKnown,omitempty"`
	// Error says why the container could not start, if it could not.
	Error        string    `json:"error,omitempty"`
	StartedAt    time.Time `json:"startedAt,omitzero"`
	FinishedAt   time.Time `json:"finishedAt,omitzero"`
	RestartCount int       `json:"restartCount,omitempty"`
	// ManuallyStopped is set when a user stopped (or killed) the
	// container, and cleared when it starts: its restart policy then does
	// not restart it (unless-stopped not even when the engine starts).
	ManuallyStopped bool `json:"manuallyStopped,omitempty"`
}

// Container is a container record. It describes the container and the
// engine's last record of its lifecycle (State); the live running state
// belongs to the runtime and shim, not to this store.
type Container struct {
	// ID is the container id (letters, digits, "._-").
	ID string `json:"id"`
	// Name is the user-facing name, unique within the namespace; empty means
	// unnamed (not indexed).
	Name string `json:"name,omitempty"`
	// Image is the normalised image reference the container was made from.
	Image string `json:"image,omitempty"`
	// SnapshotKey and Snapshotter name the container's rootfs snapshot.
	SnapshotKey string `json:"snapshotKey,omitempty"`
	Snapshotter string `json:"snapshotter,omitempty"`
	// Runtime is the OCI runtime binary name or path.
	Runtime string `json:"runtime,omitempty"`
	// Spec is the OCI runtime spec as raw JSON bytes, stored byte for byte;
	// if set it must be valid JSON.
	Spec      []byte            `json:"spec,omitempty"`
	Labels    map[string]string `json:"labels,omitempty"`
	CreatedAt time.Time         `json:"createdAt"`
	UpdatedAt time.Time         `json:"updatedAt"`

	// Engine fields.
	RestartPolicy RestartPolicy `json:"restartPolicy,omitzero"`
	LogPath       string        `json:"logPath,omitempty"`
	StopSignal    string        `json:"stopSignal,omitempty"`
	// ImageID is the image's config digest (docker's IMAGE ID).
	ImageID string `json:"imageID,omitempty"`
	// Config is the engine's create configuration as raw JSON, stored
	// byte for byte (opaque here); if set it must be valid JSON.
	Config []byte `json:"config,omitempty"`
	// State is the engine's record of the container's lifecycle.
	State ContainerState `json:"state,omitzero"`
	// Mounts are the container's mounts as made; its volume mounts make
	// those volumes in use (VolumeUsers), and must exist at create.
	Mounts []Mount `json:"mounts,omitempty"`
}

const kindContainer = "container"

func validateContainer(ns string, c *Container) error {
	if err := ValidateID(kindContainer, c.ID); err != nil {
		return fmt.Errorf("namespace %q: %w", ns, err)
	}
	fail := func(format string, a ...any) error {
		return recordErr(ns, kindContainer, c.ID, fmt.Errorf(format+": %w", append(a, errdefs.ErrInvalidArgument)...))
	}
	if c.Name != "" {
		if err := checkName("container name", c.Name, MaxIDLen, "._-"); err != nil {
			return recordErr(ns, kindContainer, c.ID, err)
		}
	}
	if c.Image != "" {
		if err := ValidateImageName(c.Image); err != nil {
			return recordErr(ns, kindContainer, c.ID, err)
		}
	}
	if len(c.Spec) > 0 && !json.Valid(c.Spec) {
		return fail("spec is not valid JSON")
	}
	if len(c.Config) > 0 && !json.Valid(c.Config) {
		return fail("config is not valid JSON")
	}
	switch c.RestartPolicy.Name {
	case "", "no", "always", "unless-stopped":
		if c.RestartPolicy.MaxRetries != 0 {
			return fail("restart policy %q takes no retry count", c.RestartPolicy.Name)
		}
	case "on-failure":
		if c.RestartPolicy.MaxRetries < 0 {
			return fail("restart policy on-failure: negative retry count %d", c.RestartPolicy.MaxRetries)
		}
	default:
		return fail("unknown restart policy %q (want no, always, unless-stopped or on-failure)", c.RestartPolicy.Name)
	}
	if err := validateMounts(ns, c.ID, c.Mounts); err != nil {
		return err
	}
	return validateLabels(fmt.Sprintf("namespace %q: container %q", ns, c.ID), c.Labels)
}

// claimName indexes name for id in ns, failing with ErrAlreadyExists if
// another container holds it.
func (t *Tx) claimName(ns, id, name string) error {
	if name == "" {
		return nil
	}
	idx, err := t.kindBucket(ns, bucketContainerNames, true)
	if err != nil {
		return err
	}
	if owner := idx.Get([]byte(name)); owner != nil && string(owner) != id {
		return recordErr(ns, kindContainer, id, fmt.Errorf("name %q is already in use by container %q: %w", name, owner, errdefs.ErrAlreadyExists))
	}
	return idx.Put([]byte(name), []byte(id))
}

func (t *Tx) releaseName(ns, name string) error {
	if name == "" {
		return nil
	}
	idx, err := t.kindBucket(ns, bucketContainerNames, false)
	if err != nil || idx == nil {
		return err
	}
	return idx.Delete([]byte(name))
}

// CreateContainer stores a new container, setting CreatedAt and UpdatedAt.
// It fails with ErrAlreadyExists if the id, or the non-empty name, is taken
// in ns.
func (t *Tx) CreateContainer(ns string, c Container) (Container, error) {
	if err := validateContainer(ns, &c); err != nil {
		return Container{}, err
	}
	if err := t.writable(fmt.Sprintf("create container %q", c.ID)); err != nil {
		return Container{}, err
	}
	b, err := t.kindBucket(ns, bucketContainers, true)
	if err != nil {
		return Container{}, err
	}
	if b.Get([]byte(c.ID)) != nil {
		return Container{}, recordErr(ns, kindContainer, c.ID, errdefs.ErrAlreadyExists)
	}
	if err := t.claimName(ns, c.ID, c.Name); err != nil {
		return Container{}, err
	}
	if err := t.checkVolumesExist(ns, &c); err != nil {
		return Container{}, err
	}
	c.CreatedAt, c.UpdatedAt = t.now, t.now
	data, err := putRecord(b, c.ID, &c)
	if err != nil {
		return Container{}, recordErr(ns, kindContainer, c.ID, err)
	}
	return roundTrip[Container](data)
}

// GetContainer returns the container with id in ns, or ErrNotFound.
func (t *Tx) GetContainer(ns, id string) (Container, error) {
	if err := ValidateID(kindContainer, id); err != nil {
		return Container{}, fmt.Errorf("namespace %q: %w", ns, err)
	}
	b, err := t.kindBucket(ns, bucketContainers, false)
	if err != nil {
		return Container{}, err
	}
	var c Container
	found, err := getRecord(b, id, &c)
	if err != nil {
		return Container{}, recordErr(ns, kindContainer, id, err)
	}
	if !found {
		return Container{}, recordErr(ns, kindContainer, id, errdefs.ErrNotFound)
	}
	return c, nil
}

// GetContainerByName returns the container called name in ns, or
// ErrNotFound.
func (t *Tx) GetContainerByName(ns, name string) (Container, error) {
	if err := checkName("container name", name, MaxIDLen, "._-"); err != nil {
		return Container{}, fmt.Errorf("namespace %q: %w", ns, err)
	}
	idx, err := t.kindBucket(ns, bucketContainerNames, false)
	if err != nil {
		return Container{}, err
	}
	var id []byte
	if idx != nil {
		id = idx.Get([]byte(name))
	}
	if id == nil {
		return Container{}, fmt.Errorf("namespace %q: container named %q: %w", ns, name, errdefs.ErrNotFound)
	}
	return t.GetContainer(ns, string(id))
}

// ListContainers returns the containers of ns sorted by id, those filter
// accepts (all if filter is nil).
func (t *Tx) ListContainers(ns string, filter func(Container) bool) ([]Container, error) {
	b, err := t.kindBucket(ns, bucketContainers, false)
	if err != nil {
		return nil, err
	}
	out, err := listRecords(b, filter)
	if err != nil {
		return nil, fmt.Errorf("namespace %q: list containers: %w", ns, err)
	}
	return out, nil
}

// UpdateContainer updates the stored container c.ID. With no fieldPaths every
// field but ID and CreatedAt is replaced by c's; otherwise only the listed
// ones: "name", "image", "snapshotkey", "snapshotter", "runtime", "spec",
// "restartpolicy", "logpath", "stopsignal", "imageid", "config", "state",
// "mounts", "labels", "labels.<key>" (an empty or absent value deletes that key).
// Renaming keeps names unique (ErrAlreadyExists). UpdatedAt is set.
func (t *Tx) UpdateContainer(ns string, c Container, fieldPaths ...string) (Container, error) {
	if err := ValidateID(kindContainer, c.ID); err != nil {
		return Container{}, fmt.Errorf("namespace %q: %w", ns, err)
	}
	if err := t.writable(fmt.Sprintf("update container %q", c.ID)); err != nil {
		return Container{}, err
	}
	cur, err := t.GetContainer(ns, c.ID)
	if err != nil {
		return Container{}, err
	}
	next := cur
	if len(fieldPaths) == 0 {
		next = c
		next.Labels = copyLabels(c.Labels)
		next.CreatedAt = cur.CreatedAt
	}
	for _, p := range fieldPaths {
		switch p {
		case "name":
			next.Name = c.Name
		case "image":
			next.Image = c.Image
		case "snapshotkey":
			next.SnapshotKey = c.SnapshotKey
		case "snapshotter":
			next.Snapshotter = c.Snapshotter
		case "runtime":
			next.Runtime = c.Runtime
		case "spec":
			next.Spec = c.Spec
		case "restartpolicy":
			next.RestartPolicy = c.RestartPolicy
		case "logpath":
			next.LogPath = c.LogPath
		case "stopsignal":
			next.StopSignal = c.StopSignal
		case "imageid":
			next.ImageID = c.ImageID
		case "config":
			next.Config = c.Config
		case "state":
			next.State = c.State
		case "mounts":
			next.Mounts = c.Mounts
		default:
			if !applyLabelPaths(p, &next.Labels, c.Labels) {
				return Container{}, recordErr(ns, kindContainer, c.ID, fmt.Errorf("cannot update field %q: %w", p, errdefs.ErrInvalidArgument))
			}
		}
	}
	if err := validateContainer(ns, &next); err != nil {
		return Container{}, err
	}
	if next.Name != cur.Name {
		if err := t.claimName(ns, next.ID, next.Name); err != nil {
			return Container{}, err
		}
		if err := t.releaseName(ns, cur.Name); err != nil {
			return Container{}, recordErr(ns, kindContainer, c.ID, err)
		}
	}
	next.UpdatedAt = t.now
	b, err := t.kindBucket(ns, bucketContainers, false)
	if err != nil {
		return Container{}, err
	}
	data, err := putRecord(b, next.ID, &next)
	if err != nil {
		return Container{}, recordErr(ns, kindContainer, c.ID, err)
	}
	return roundTrip[Container](data)
}

// DeleteContainer removes the container with id from ns and frees its name,
// or fails with ErrNotFound.
func (t *Tx) DeleteContainer(ns, id string) error {
	if err := t.writable(fmt.Sprintf("delete container %q", id)); err != nil {
		return err
	}
	cur, err := t.GetContainer(ns, id)
	if err != nil {
		return err
	}
	if err := t.releaseName(ns, cur.Name); err != nil {
		return recordErr(ns, kindContainer, id, err)
	}
	b, err := t.kindBucket(ns, bucketContainers, false)
	if err != nil {
		return err
	}
	if err := b.Delete([]byte(id)); err != nil {
		return recordErr(ns, kindContainer, id, err)
	}
	return nil
}

// CreateContainer: see Tx.CreateContainer.
func (db *DB) CreateContainer(ns string, c Container) (out Container, err error) {
	err = db.Update(func(t *Tx) error { out, err = t.CreateContainer(ns, c); return err })
	return out, err
}

// GetContainer: see Tx.GetContainer.
func (db *DB) GetContainer(ns, id string) (out Container, err error) {
	err = db.View(func(t *Tx) error { out, err = t.GetContainer(ns, id); return err })
	return out, err
}

// GetContainerByName: see Tx.GetContainerByName.
func (db *DB) GetContainerByName(ns, name string) (out Container, err error) {
	err = db.View(func(t *Tx) error { out, err = t.GetContainerByName(ns, name); return err })
	return out, err
}

// ListContainers: see Tx.ListContainers.
func (db *DB) ListContainers(ns string, filter func(Container) bool) (out []Container, err error) {
	err = db.View(func(t *Tx) error { out, err = t.ListContainers(ns, filter); return err })
	return out, err
}

// UpdateContainer: see Tx.UpdateContainer.
func (db *DB) UpdateContainer(ns string, c Container, fieldPaths ...string) (out Container, err error) {
	err = db.Update(func(t *Tx) error { out, err = t.UpdateContainer(ns, c, fieldPaths...); return err })
	return out, err
}

// DeleteContainer: see Tx.DeleteContainer.
func (db *DB) DeleteContainer(ns, id string) error {
	return db.Update(func(t *Tx) error { return t.DeleteContainer(ns, id) })
}
