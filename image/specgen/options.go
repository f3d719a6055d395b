package specgen

import (
	"net/netip"
	"syscall"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// Network modes of Options.NetworkMode.
const (
	// NetworkDefault is docker's default network. Until skiff has
	// networking it is a new network namespace with loopback only, as
	// NetworkNone.
	NetworkDefault = ""
	// NetworkBridge is docker's name of the default network; the same as
	// NetworkDefault.
	NetworkBridge = "bridge"
	// NetworkNone is a new network namespace with loopback only.
	NetworkNone = "none"
	// NetworkHost shares the host's network namespace.
	NetworkHost = "host"
)

// Options are the docker-style run options of one container. The zero value
// (plus an ID or a Hostname) gives docker's defaults for the image.
type Options struct {
	// ID is the container's id. The default hostname is its first 12
	// characters, as docker's. Either ID or Hostname must be set, except
	// with NetworkHost, where the default is the host's name.
	ID string
	// ImageRef names the image in error messages ("busybox:latest").
	ImageRef string
	// Hostname is --hostname.
	Hostname string

	// Env is -e, after the caller has merged --env-file (files first, then
	// -e, as docker's CLI does) and resolved bare "NAME" entries from its
	// own environment. An entry without "=" that is still here unsets NAME
	// (docker's daemon semantics). It overrides the image's Env by name.
	Env []string
	// Entrypoint is --entrypoint when EntrypointSet. Setting it, even to
	// nothing (--entrypoint ""), discards the image's Cmd as well as its
	// Entrypoint, as docker does.
	Entrypoint    []string
	EntrypointSet bool
	// Cmd are the arguments after the image name; when not empty they
	// replace the image's Cmd.
	Cmd []string
	// WorkingDir is -w; it must be absolute.
	WorkingDir string
	// User is -u: name|uid[:group|gid]. Empty means the image's user.
	User string
	// Tty is -t: process.terminal and TERM=xterm. (-i, --rm, -d, --name
	// and --runtime do not change the spec; the engine and the shim own
	// them.)
	Tty bool
	// ReadOnly is --read-only: a read-only root and read-only /etc files.
	ReadOnly bool

	// NetworkMode is --network: NetworkDefault, NetworkBridge, NetworkNone
	// or NetworkHost.
	NetworkMode string
	// NetNSPath, if set, is a network namespace the engine prepared (CNI)
	// for the container to join instead of creating one. Not allowed with
	// NetworkHost.
	NetNSPath string
	// Addresses are the container's interface addresses, written into
	// /etc/hosts with its hostname, as docker does for its networks. None
	// until skiff has networking.
	Addresses []netip.Addr

	// Privileged is --privileged.
	Privileged bool
	// CapAdd and CapDrop are --cap-add and --cap-drop: names with or
	// without the CAP_ prefix, any case, or "ALL".
	CapAdd, CapDrop []string
	// NoNewPrivileges is --security-opt no-new-privileges.
	NoNewPrivileges bool
	// OOMScoreAdj is --oom-score-adj (-1000..1000).
	OOMScoreAdj int
	// ShmSize is --shm-size in bytes; 0 means docker's 64 MiB.
	ShmSize int64
	// Sysctls is --sysctl; it overrides docker's default sysctls. A net.*
	// sysctl with NetworkHost is ErrInvalidArgument.
	Sysctls map[string]string
	// Seccomp is --security-opt seccomp=: SeccompDefault, SeccompBuiltin,
	// SeccompUnconfined, or a profile in Docker's JSON format. A
	// privileged container has no filter whatever it says.
	Seccomp string
	// Devices are --device: host device nodes made in the container, each
	// with a device cgroup allow rule (security.go).
	Devices []Device
	// Ulimits are --ulimit: process.rlimits.
	Ulimits []Ulimit
	// GroupAdd are --group-add: group names of the image's /etc/group, or
	// numeric gids, added to process.user.additionalGids.
	GroupAdd []string
	// StopSignal is --stop-signal; empty means the image's, else SIGTERM.
	StopSignal string

	// Annotations become the spec's annotations (--annotation).
	Annotations map[string]string
	// Labels are --label; merged over the image's labels into Info.Labels.
	// They do not go into the spec.
	Labels map[string]string

	// CgroupsPath is linux.cgroupsPath; empty lets the runtime choose.
	CgroupsPath string
	// Resources (--memory, --cpus, --pids-limit, ...) become
	// linux.resources; docker's device rules are added to its Devices.
	Resources *specs.LinuxResources
	// ExtraMounts are the container's mounts (volumes, binds, tmpfs, and
	// the /etc files from WriteEtcFiles). Each replaces a default mount
	// with the same destination.
	ExtraMounts []specs.Mount

	// HostHosts and HostResolvConf are the host files WriteEtcFiles
	// starts from; empty means docker's choice (see WriteEtcFiles).
	HostHosts, HostResolvConf string
}

// Info are the facts of a container that the engine records besides the
// spec.
type Info struct {
	// Hostname is the container's hostname, defaulted as docker does.
	Hostname string
	// User is the user spec that was resolved (-u, else the image's).
	User string
	// StopSignal is the signal that stops the container (--stop-signal,
	// else the image's StopSignal, else SIGTERM), and StopSignalName its
	// name ("SIGTERM", "SIGRTMIN+3").
	StopSignal     syscall.Signal
	StopSignalName string
	// ExposedPorts are the image's exposed ports ("80/tcp"), sorted.
	ExposedPorts []string
	// Volumes are the image's volume paths, sorted: the engine creates an
	// anonymous volume for each one that no mount covers.
	Volumes []string
	// Labels are the image's labels with Options.Labels over them.
	Labels map[string]string
}
