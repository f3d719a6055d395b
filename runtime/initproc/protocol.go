package initproc

import (
	"encoding/binary"
	"fmt"
	"io"
	"os"
	"strconv"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/skiff-containers/skiff/runtime/internal/ljson"
	"github.com/skiff-containers/skiff/runtime/seccomp"
)

// Environment variables the parent sets for the init process. Each holds a
// file descriptor number.
const (
	EnvInitFD    = "_SKIFF_INIT_FD"    // the sync socket (also read by runtime/nsenter)
	EnvFifoFD    = "_SKIFF_FIFO_FD"    // the exec fifo, opened read-write
	EnvConsoleFD = "_SKIFF_CONSOLE_FD" // the console socket, with process.terminal
)

// Message kinds of the Go stage of the protocol between the parent and the
// init. Each message is {kind byte, u32 length, payload}.
const (
	MsgConfig byte = 'C' // parent → init: the JSON Config
	MsgReady  byte = 'R' // init → parent: set up, waiting for start
	MsgError  byte = 'E' // init → parent: setup failed; payload is the message
	MsgLog    byte = 'L' // init → parent: a debug line for the runtime's log
	MsgHooks  byte = 'H' // init → parent: mounts done; run prestart and createRuntime hooks
	MsgResume byte = 'h' // parent → init: those hooks succeeded, go on
	// MsgSeccompFd: init → parent: the seccomp notify fd follows, attached
	// (SCM_RIGHTS) to one byte sent right after this message.
	MsgSeccompFd byte = 'S'
	// MsgMountFd: parent → init, right after MsgConfig, once for each
	// index of Config.IDMapTrees in order: the payload is the mount's index
	// in decimal; the detached ID-mapped tree of that mount follows,
	// attached (SCM_RIGHTS) to one byte sent right after this message.
	MsgMountFd byte = 'M'
)

// Config is what the parent tells the init process, as JSON.
type Config struct {
	ID     string `json:"id"`
	Bundle string `json:"bundle"`
	Rootfs string `json:"rootfs"`
	// Spec is the container's spec. It crosses to the init as WireSpec:
	// only the parts the init uses, so that decoding it does not make
	// encoding/json prepare every runtime-spec type (a few hundred KiB,
	// i.e. page faults, at every container start).
	Spec         *specs.Spec       `json:"-"`
	WireSpec     *wireSpec         `json:"spec"`
	NoPivot      bool              `json:"noPivot,omitempty"`
	NoNewKeyring bool              `json:"noNewKeyring,omitempty"`
	PreserveFDs  int               `json:"preserveFds,omitempty"`
	CgroupPaths  map[string]string `json:"cgroupPaths,omitempty"`
	// Namespaces the init lives in, decided by the parent from the spec.
	NewMountNS bool `json:"newMountNs,omitempty"`
	// SharedMountNS: no mount namespace of its own; the root is built on
	// the runtime's bind mount of Rootfs, in the runtime's namespace.
	SharedMountNS bool `json:"sharedMountNs,omitempty"`
	NewUTSNS      bool `json:"newUtsNs,omitempty"`
	NewCgroupNS   bool `json:"newCgroupNs,omitempty"`
	UserNS        bool `json:"userNs,omitempty"`
	// HostMountNS is the runtime's mount namespace (readlink of
	// /proc/self/ns/mnt), which the init must not be in.
	HostMountNS string `json:"hostMountNs,omitempty"`
	// Exec: this is a process exec'd into a running container. It joined
	// the container's namespaces and cgroup; it only sets up itself
	// (Spec.Process) and execs, without waiting for start.
	Exec bool `json:"exec,omitempty"`
	// ExecRoot, for an exec into a container without a mount namespace of
	// its own (which joining the runtime's does not change), is the
	// container's root to chroot into before anything else.
	ExecRoot string `json:"execRoot,omitempty"`
	// Debug: report the time taken by each setup step as MsgLog.
	Debug bool `json:"debug,omitempty"`
	// Pid is the init's pid in the runtime's pid namespace, for the state
	// given to hooks run by the init.
	Pid int `json:"pid,omitempty"`

	// SeccompBPF is linux.seccomp compiled by the runtime
	// (seccomp.Filter.MarshalBinary); the init compiles it itself if empty.
	SeccompBPF []byte `json:"seccompBpf,omitempty"`

	// IDMapFDs maps the index of an ID-mapped mount to the fd (inherited)
	// of a user namespace carrying its mapping.
	IDMapFDs map[int]int `json:"idmapFds,omitempty"`
	// IDMapTrees lists the indices of the ID-mapped mounts whose detached,
	// already ID-mapped trees the parent sends after the Config (one
	// MsgMountFd each, in this order): a container with a user namespace
	// of its own gets its ID-mapped mounts this way (runtime/idmap.OpenTrees).
	IDMapTrees []int `json:"idmapTrees,omitempty"`
	// idmapTreeFDs are the received trees: mount index to fd.
	idmapTreeFDs map[int]int

	// filter is linux.seccomp ready to install.
	filter *seccomp.Filter
}

// maxMessage bounds a message so a confused peer cannot make us allocate
// without limit.
const maxMessage = 16 << 20

// WriteMessage writes one framed message.
func WriteMessage(w io.Writer, kind byte, payload []byte) error {
	hdr := make([]byte, 5, 5+len(payload))
	hdr[0] = kind
	binary.LittleEndian.PutUint32(hdr[1:], uint32(len(payload)))
	_, err := w.Write(append(hdr, payload...))
	return err
}

// ReadMessage reads one framed message.
func ReadMessage(r io.Reader) (byte, []byte, error) {
	var hdr [5]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		return 0, nil, err
	}
	n := binary.LittleEndian.Uint32(hdr[1:])
	if n > maxMessage {
		return 0, nil, fmt.Errorf("sync message of %d bytes is too large", n)
	}
	buf := make([]byte, n)
	if _, err := io.ReadFull(r, buf); err != nil {
		return 0, nil, err
	}
	return hdr[0], buf, nil
}

// wireSpec is the part of the spec the init uses.
type wireSpec struct {
	Process     *specs.Process    `json:"process,omitempty"`
	Root        *specs.Root       `json:"root,omitempty"`
	Hostname    string            `json:"hostname,omitempty"`
	Domainname  string            `json:"domainname,omitempty"`
	Mounts      []specs.Mount     `json:"mounts,omitempty"`
	Hooks       *specs.Hooks      `json:"hooks,omitempty"`
	Annotations map[string]string `json:"annotations,omitempty"`
	Linux       *wireLinux        `json:"linux,omitempty"`
}

type wireLinux struct {
	Devices           []specs.LinuxDevice     `json:"devices,omitempty"`
	UIDMappings       []specs.LinuxIDMapping  `json:"uidMappings,omitempty"`
	GIDMappings       []specs.LinuxIDMapping  `json:"gidMappings,omitempty"`
	Personality       *specs.LinuxPersonality `json:"personality,omitempty"`
	RootfsPropagation string                  `json:"rootfsPropagation,omitempty"`
	Sysctl            map[string]string       `json:"sysctl,omitempty"`
	MaskedPaths       []string                `json:"maskedPaths,omitempty"`
	ReadonlyPaths     []string                `json:"readonlyPaths,omitempty"`
	// Seccomp: the filter itself travels compiled (Config.SeccompBPF).
	Seccomp          bool   `json:"seccomp,omitempty"`
	ListenerPath     string `json:"listenerPath,omitempty"`
	ListenerMetadata string `json:"listenerMetadata,omitempty"`
}

func toWire(s *specs.Spec) *wireSpec {
	if s == nil {
		return nil
	}
	w := &wireSpec{Process: s.Process, Root: s.Root, Hostname: s.Hostname, Domainname: s.Domainname,
		Mounts: s.Mounts, Hooks: s.Hooks, Annotations: s.Annotations}
	if l := s.Linux; l != nil {
		w.Linux = &wireLinux{Devices: l.Devices, UIDMappings: l.UIDMappings, GIDMappings: l.GIDMappings,
			Personality: l.Personality, RootfsPropagation: l.RootfsPropagation, Sysctl: l.Sysctl,
			MaskedPaths: l.MaskedPaths, ReadonlyPaths: l.ReadonlyPaths}
		if l.Seccomp != nil {
			w.Linux.Seccomp = true
			w.Linux.ListenerPath, w.Linux.ListenerMetadata = l.Seccomp.ListenerPath, l.Seccomp.ListenerMetadata
		}
	}
	return w
}

// spec rebuilds the parts of the spec the init uses. linux.seccomp keeps
// only the listener: the rules come compiled.
func (w *wireSpec) spec() *specs.Spec {
	s := &specs.Spec{Process: w.Process, Root: w.Root, Hostname: w.Hostname, Domainname: w.Domainname,
		Mounts: w.Mounts, Hooks: w.Hooks, Annotations: w.Annotations}
	if l := w.Linux; l != nil {
		s.Linux = &specs.Linux{Devices: l.Devices, UIDMappings: l.UIDMappings, GIDMappings: l.GIDMappings,
			Personality: l.Personality, RootfsPropagation: l.RootfsPropagation, Sysctl: l.Sysctl,
			MaskedPaths: l.MaskedPaths, ReadonlyPaths: l.ReadonlyPaths}
		if l.Seccomp {
			s.Linux.Seccomp = &specs.LinuxSeccomp{ListenerPath: l.ListenerPath, ListenerMetadata: l.ListenerMetadata}
		}
	}
	return s
}

// ReadConfig decodes the init's Config.
func ReadConfig(payload []byte) (*Config, error) {
	var c Config
	if err := ljson.Unmarshal(payload, &c); err != nil {
		return nil, err
	}
	if c.WireSpec == nil || c.WireSpec.Process == nil {
		return nil, fmt.Errorf("init config has no spec or no process")
	}
	c.Spec = c.WireSpec.spec()
	c.WireSpec = nil
	return &c, nil
}

// WriteConfig sends the init its configuration.
func WriteConfig(w io.Writer, c *Config) error {
	wire := *c
	wire.WireSpec = toWire(c.Spec)
	b, err := ljson.Marshal(&wire)
	if err != nil {
		return err
	}
	return WriteMessage(w, MsgConfig, b)
}

// SendFd sends fd attached to one byte, after a MsgSeccompFd message.
func SendFd(sock *os.File, fd int) error {
	return sendFd(sock, MsgSeccompFd, nil, fd)
}

// SendMountFd sends the detached ID-mapped tree of mounts[index] (fd) to
// the init: a MsgMountFd message naming the index, then the fd attached to
// one byte.
func SendMountFd(sock *os.File, index, fd int) error {
	return sendFd(sock, MsgMountFd, []byte(strconv.Itoa(index)), fd)
}

func sendFd(sock *os.File, kind byte, payload []byte, fd int) error {
	if err := WriteMessage(sock, kind, payload); err != nil {
		return err
	}
	return unix.Sendmsg(int(sock.Fd()), []byte{0}, unix.UnixRights(fd), nil, 0)
}

// receiveMountFds receives the trees the parent sends after the Config
// (SendMountFd), one for each index of c.IDMapTrees, into c.idmapTreeFDs.
// On error the fds received so far are closed.
func receiveMountFds(sock *os.File, c *Config) error {
	fds := make(map[int]int, len(c.IDMapTrees))
	for _, want := range c.IDMapTrees {
		kind, payload, err := ReadMessage(sock)
		if err == nil && (kind != MsgMountFd || string(payload) != strconv.Itoa(want)) {
			err = fmt.Errorf("got message %q %q, want %q for mounts[%d]", kind, payload, MsgMountFd, want)
		}
		var fd int
		if err == nil {
			fd, err = ReceiveFd(sock)
		}
		if err != nil {
			for _, fd := range fds {
				_ = unix.Close(fd)
			}
			return fmt.Errorf("receive the ID-mapped tree of mounts[%d] from the runtime: %w", want, err)
		}
		fds[want] = fd
	}
	c.idmapTreeFDs = fds
	return nil
}

// ReceiveFd receives the fd sent by SendFd once its MsgSeccompFd message
// has been read.
func ReceiveFd(sock *os.File) (int, error) {
	oob := make([]byte, unix.CmsgSpace(4))
	var b [1]byte
	_, oobn, _, _, err := unix.Recvmsg(int(sock.Fd()), b[:], oob, unix.MSG_CMSG_CLOEXEC)
	if err != nil {
		return -1, err
	}
	msgs, err := unix.ParseSocketControlMessage(oob[:oobn])
	if err != nil || len(msgs) != 1 {
		return -1, fmt.Errorf("expected one fd from the init process: %v", err)
	}
	fds, err := unix.ParseUnixRights(&msgs[0])
	if err != nil || len(fds) != 1 {
		for _, f := range fds {
			unix.Close(f)
		}
		return -1, fmt.Errorf("expected one fd from the init process: %v", err)
	}
	return fds[0], nil
}
