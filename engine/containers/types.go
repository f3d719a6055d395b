package containers

import (
	"context"
	"io"
	"log/slog"
	"time"

	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/skiff-containers/skiff/engine/metadata"
	"github.com/skiff-containers/skiff/engine/network"
	"github.com/skiff-containers/skiff/engine/volumes"
	"github.com/skiff-containers/skiff/image/snapshot"
)

// ImageSource is what the service needs from the image service (the
// wiring adapts engine/images to it).
type ImageSource interface {
	// ContainerImage resolves ref in ns to a local, unpacked image;
	// errdefs.ErrNotFound if not present locally.
	ContainerImage(ctx context.Context, ns, ref string) (Image, error)
}

// Image is a local image whose layers are unpacked into committed
// snapshots.
type Image struct {
	// Name is the normalised reference (docker.io/library/busybox:latest).
	Name string
	// ID is the digest of the image's config (docker's IMAGE ID).
	ID digest.Digest
	// Config is the image's configuration.
	Config ocispec.Image
	// ChainID is the committed snapshot name of the top layer: the parent
	// of the container's writable snapshot.
	ChainID string
}

// Config configures New.
type Config struct {
	DB          *metadata.DB
	Snapshotter *snapshot.Snapshotter
	Images      ImageSource
	// Root is the persistent directory (e.g. /var/lib/skiff): container
	// logs and /etc files under Root/containers/<ns>/<id>/.
	Root string
	// State is the volatile directory (e.g. /run/skiff): shim state,
	// bundles, rootfs mounts, runtime roots.
	State string
	// ShimBinary is skiff-shim (a path, or a name on PATH).
	ShimBinary string
	// DefaultRuntime is the OCI runtime of containers that name none
	// (a name on PATH or a path); "skiff-runtime" if empty.
	DefaultRuntime string
	// Volumes is the volume service; if nil, New makes one over DB in
	// Root/volumes.
	Volumes *volumes.Service
	// Network is the network manager (network.go); nil runs containers
	// without networking (none and host only).
	Network *network.Manager
	// Committer records the images Commit makes (commit.go); nil refuses
	// Commit.
	Committer ImageCommitter
	// Events receives the service's events (events.go); nil publishes
	// nothing.
	Events EventPublisher
	// Logger receives the service's log; slog.Default() if nil.
	Logger *slog.Logger
}

// RestartPolicy is docker's --restart, applied when the container exits
// and when the engine starts (restart.go).
type RestartPolicy struct {
	Name       string // "", "no", "always", "on-failure", "unless-stopped"
	MaxRetries int
}

// CreateConfig is what `skiff create/run` asks for (docker's flags); it
// mirrors skiff.v1 ContainerConfig.
type CreateConfig struct {
	Name  string `json:"name,omitempty"`
	Image string `json:"image"`
	// Cmd replaces the image's Cmd when not empty.
	Cmd []string `json:"cmd,omitempty"`
	// Entrypoint replaces the image's when EntrypointSet (even with none).
	Entrypoint    []string `json:"entrypoint,omitempty"`
	EntrypointSet bool     `json:"entrypointSet,omitempty"`
	// Env: NAME=value entries; a bare NAME unsets it.
	Env        []string `json:"env,omitempty"`
	WorkingDir string   `json:"workingDir,omitempty"`
	User       string   `json:"user,omitempty"`
	Tty        bool     `json:"tty,omitempty"`
	// OpenStdin (-i) keeps stdin open for attach.
	OpenStdin bool `json:"openStdin,omitempty"`
	// Runtime is the OCI runtime (name on PATH or path); empty is the
	// service's default.
	Runtime  string `json:"runtime,omitempty"`
	Hostname string `json:"hostname,omitempty"`
	ReadOnly bool   `json:"readOnly,omitempty"`
	// NetworkMode: "bridge" (the default network; "" and "default" mean
	// it), "none" (own namespace, loopback only), "host", a network's name,
	// or "container:<id>" (network.go). Without a network manager: "" or
	// "none", and "host".
	NetworkMode string            `json:"networkMode,omitempty"`
	Labels      map[string]string `json:"labels,omitempty"`
	// AutoRemove (--rm) removes the container when it exits.
	AutoRemove bool   `json:"autoRemove,omitempty"`
	StopSignal string `json:"stopSignal,omitempty"`
	// StopTimeout is the default for Stop, in seconds; nil means 10.
	StopTimeout   *int          `json:"stopTimeout,omitempty"`
	RestartPolicy RestartPolicy `json:"restartPolicy,omitzero"`
	// Mounts are -v, --mount and --tmpfs, in the order given (volumes.go).
	Mounts []Mount `json:"mounts,omitempty"`

	// Networking (network.go). Networks are further networks (an entry for
	// the NetworkMode network gives its aliases); PortBindings are -p,
	// PublishAll -P; ExposedPorts are the image's ("80/tcp"), recorded at
	// create for -P.
	Networks     []EndpointConfig      `json:"networks,omitempty"`
	PortBindings []network.PortMapping `json:"portBindings,omitempty"`
	PublishAll   bool                  `json:"publishAll,omitempty"`
	DNS          []string              `json:"dns,omitempty"`
	ExtraHosts   []string              `json:"extraHosts,omitempty"`
	ExposedPorts []string              `json:"exposedPorts,omitempty"`

	// Resources and security (security.go): --memory, --cpus, ...,
	// --privileged, --cap-add/--cap-drop, --security-opt (seccomp=<profile>
	// holds the profile's JSON, as docker keeps it), --device, --shm-size
	// (recorded with docker's default), --sysctl, --group-add, --ulimit,
	// --oom-score-adj.
	Resources   Resources         `json:"resources,omitzero"`
	Privileged  bool              `json:"privileged,omitempty"`
	CapAdd      []string          `json:"capAdd,omitempty"`
	CapDrop     []string          `json:"capDrop,omitempty"`
	SecurityOpt []string          `json:"securityOpt,omitempty"`
	Devices     []DeviceMapping   `json:"devices,omitempty"`
	ShmSize     int64             `json:"shmSize,omitempty"`
	Sysctls     map[string]string `json:"sysctls,omitempty"`
	GroupAdd    []string          `json:"groupAdd,omitempty"`
	Ulimits     []Ulimit          `json:"ulimits,omitempty"`
	OOMScoreAdj int               `json:"oomScoreAdj,omitempty"`
}

// Status values of a container, docker's words.
const (
	StatusCreated    = "created"
	StatusRunning    = "running"
	StatusPaused     = "paused"
	StatusRestarting = "restarting"
	StatusExited     = "exited"
	StatusDead       = "dead"
	StatusRemoving   = "removing"
)

// ExitUnknown is the exit code recorded for a container that died while
// nobody watched (Container.ExitKnown false).
const ExitUnknown = 255

// Container is a container as List and Inspect show it; it mirrors
// skiff.v1 Container.
type Container struct {
	ID   string
	Name string
	// Image is the normalised reference; ImageID the config digest.
	Image   string
	ImageID string
	Config  CreateConfig
	// Status is one of the Status constants.
	Status   string
	Pid      int
	ExitCode int
	// ExitKnown is false when the container died unobserved.
	ExitKnown bool
	// Error is why the container could not start, if it couldn't.
	Error        string
	Created      time.Time
	Started      time.Time
	Finished     time.Time
	Runtime      string
	LogPath      string
	Path         string
	Args         []string
	RestartCount int
	Bundle       string
	// Spec is the OCI runtime spec, raw JSON.
	Spec   []byte
	Labels map[string]string
	// StopSignal is the signal Stop sends first ("SIGTERM").
	StopSignal string
	// Mounts are the container's mounts as made (its image's VOLUMEs too).
	Mounts []MountPoint
	// Network is the container's network state while it runs (nil
	// otherwise).
	Network *network.Attachment
}

// Running reports whether the container's process runs (or is paused).
func (c Container) Running() bool { return c.Status == StatusRunning || c.Status == StatusPaused }

// LogsOptions select what Logs sends.
type LogsOptions struct {
	// Follow keeps sending new entries until the container exits.
	Follow bool
	// Tail sends only the last Tail lines; negative means all.
	Tail int64
	// Since and Until bound the entries' times; zero means unbounded.
	Since, Until time.Time
}

// Stream names an output stream.
type Stream string

// Streams of a LogEntry.
const (
	Stdout Stream = "stdout"
	Stderr Stream = "stderr"
)

// LogEntry is one line of a container's output.
type LogEntry struct {
	Stream Stream
	Time   time.Time
	// Data is the line with its newline; a line the log split (longer than
	// 16 KiB) is joined again.
	Data []byte
}

// AttachOptions say which streams to attach.
type AttachOptions struct {
	// Stdin, if not nil, is copied to the container's stdin (the
	// container must have OpenStdin).
	Stdin io.Reader
	// CloseStdinOnEOF closes the container's stdin when Stdin ends.
	CloseStdinOnEOF bool
	// Stdout and Stderr receive the output (nil: discarded). With a
	// terminal everything comes on Stdout.
	Stdout, Stderr io.Writer
}

// ExitStatus is how a container's process ended.
type ExitStatus struct {
	// Code is the exit status, 128+N when killed by signal N.
	Code int
	// Signal is the signal that killed it, if one did.
	Signal int
	At     time.Time
}
