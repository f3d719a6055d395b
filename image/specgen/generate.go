package specgen

import (
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"os"
	"path"
	"path/filepath"
	"slices"
	"sort"
	"strings"

	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/skiff-containers/skiff/errdefs"
)

// maxHostnameLen is the kernel's HOST_NAME_MAX.
const maxHostnameLen = 64

// Generate builds the runtime spec of a container of the image whose config
// is img, run with the options o, on the root filesystem at rootfsPath (an
// absolute path to the already mounted snapshot; it becomes root.path). It
// also returns what the engine should record about the container (Info).
// Generate writes nothing; the /etc files come from WriteEtcFiles, whose
// mounts the caller passes in o.ExtraMounts.
//
// The command is docker's merge of the image's Entrypoint and Cmd with
// o.Entrypoint and o.Cmd (see Options). The user is o.User, else the
// image's User, resolved with the /etc/passwd and /etc/group of the root
// filesystem (read inside it, never following a link out of it): a name
// must exist there (else ErrNotFound naming the user and the image), a
// numeric uid or gid is used as is, an explicit group sets the gid, and
// without one the groups of /etc/group that list the user become
// supplementary groups. See the package documentation for the defaults.
//
// Errors are ErrInvalidArgument for a malformed option or image field,
// ErrNotFound for an unknown user or group or a missing root filesystem,
// and ErrNotImplemented for a network mode skiff does not have yet; each
// names the option or field.
func Generate(img ocispec.Image, rootfsPath string, o Options) (*specs.Spec, *Info, error) {
	if img.OS != "" && img.OS != "linux" {
		return nil, nil, fmt.Errorf("image %s is for %s, not linux: %w", imageName(o.ImageRef), img.OS, errdefs.ErrInvalidArgument)
	}
	if err := checkRootfs(rootfsPath); err != nil {
		return nil, nil, err
	}
	hostNet, err := networkMode(&o)
	if err != nil {
		return nil, nil, err
	}
	hostname, err := resolveHostname(&o, hostNet)
	if err != nil {
		return nil, nil, err
	}
	cfg := img.Config
	info, err := recordInfo(cfg, &o, hostname)
	if err != nil {
		return nil, nil, err
	}
	args, err := command(cfg.Entrypoint, cfg.Cmd, &o, o.ImageRef)
	if err != nil {
		return nil, nil, err
	}
	env, err := environment(cfg.Env, o.Env, hostname, o.Tty)
	if err != nil {
		return nil, nil, err
	}
	cwd, err := workingDir(cfg.WorkingDir, o.WorkingDir)
	if err != nil {
		return nil, nil, err
	}
	user, err := resolveUser(rootfsPath, info.User, o.ImageRef)
	if err != nil {
		return nil, nil, err
	}
	if err := addGroups(&user, rootfsPath, o.GroupAdd, o.ImageRef); err != nil {
		return nil, nil, err
	}
	rlimits, err := rlimits(o.Ulimits)
	if err != nil {
		return nil, nil, err
	}
	if err := checkSysctls(o.Sysctls, hostNet); err != nil {
		return nil, nil, err
	}
	capSet, err := capabilities(&o)
	if err != nil {
		return nil, nil, err
	}
	if o.OOMScoreAdj < -1000 || o.OOMScoreAdj > 1000 {
		return nil, nil, fmt.Errorf("--oom-score-adj %d: out of range -1000 to 1000: %w", o.OOMScoreAdj, errdefs.ErrInvalidArgument)
	}
	shmSize := o.ShmSize
	switch {
	case shmSize == 0:
		shmSize = defaultShmSize
	case shmSize < 0:
		return nil, nil, fmt.Errorf("--shm-size %d: must be positive: %w", o.ShmSize, errdefs.ErrInvalidArgument)
	}
	oomScoreAdj := o.OOMScoreAdj

	s := &specs.Spec{
		Version: OCIVersion,
		Process: &specs.Process{
			Terminal: o.Tty,
			User:     user,
			Args:     args,
			Env:      env,
			Cwd:      cwd,
			Capabilities: &specs.LinuxCapabilities{
				Bounding:  slices.Clone(capSet),
				Permitted: slices.Clone(capSet),
				Effective: slices.Clone(capSet),
			},
			NoNewPrivileges: o.NoNewPrivileges,
			OOMScoreAdj:     &oomScoreAdj,
			Rlimits:         rlimits,
		},
		Root:     &specs.Root{Path: rootfsPath, Readonly: o.ReadOnly},
		Hostname: hostname,
		Linux: &specs.Linux{
			CgroupsPath:   o.CgroupsPath,
			MaskedPaths:   defaultMaskedPaths(),
			ReadonlyPaths: defaultReadonlyPaths(),
		},
	}
	if len(o.Annotations) > 0 {
		s.Annotations = maps.Clone(o.Annotations)
	}
	s.Linux.Namespaces = namespaces(hostNet, o.NetNSPath)
	if !hostNet {
		s.Linux.Sysctl = defaultNetSysctls()
	}
	if len(o.Sysctls) > 0 {
		if s.Linux.Sysctl == nil {
			s.Linux.Sysctl = map[string]string{}
		}
		maps.Copy(s.Linux.Sysctl, o.Sysctls)
	}
	if len(s.Linux.Sysctl) == 0 {
		s.Linux.Sysctl = nil
	}
	if err := setResources(s, &o); err != nil {
		return nil, nil, err
	}
	if err := addDevices(s, o.Devices); err != nil {
		return nil, nil, err
	}
	mounts, err := mergeMounts(defaultMounts(shmSize), o.ExtraMounts, o.ReadOnly, o.Privileged)
	if err != nil {
		return nil, nil, err
	}
	s.Mounts = mounts
	if o.Privileged {
		s.Linux.MaskedPaths = nil
		s.Linux.ReadonlyPaths = nil
	} else if s.Linux.Seccomp, err = seccompProfile(o.Seccomp, capSet); err != nil {
		return nil, nil, err
	}
	return s, info, nil
}

// checkRootfs requires an absolute path to an existing directory.
func checkRootfs(rootfs string) error {
	if !filepath.IsAbs(rootfs) {
		return fmt.Errorf("root filesystem %q: not an absolute path: %w", rootfs, errdefs.ErrInvalidArgument)
	}
	fi, err := os.Stat(rootfs)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return fmt.Errorf("root filesystem %q does not exist (mount the container's snapshot first): %w", rootfs, errdefs.ErrNotFound)
	case err != nil:
		return fmt.Errorf("root filesystem %q: %w", rootfs, err)
	case !fi.IsDir():
		return fmt.Errorf("root filesystem %q is not a directory: %w", rootfs, errdefs.ErrInvalidArgument)
	}
	return nil
}

// networkMode checks o.NetworkMode and o.NetNSPath and reports whether the
// container shares the host's network namespace.
func networkMode(o *Options) (host bool, err error) {
	switch o.NetworkMode {
	case NetworkDefault, NetworkBridge, "default", NetworkNone:
	case NetworkHost:
		host = true
	default:
		return false, fmt.Errorf("--network %q: skiff supports only bridge (for now loopback only), none and host: %w", o.NetworkMode, errdefs.ErrNotImplemented)
	}
	if o.NetNSPath != "" {
		if host {
			return false, fmt.Errorf("--network host: cannot also join the network namespace %q: %w", o.NetNSPath, errdefs.ErrInvalidArgument)
		}
		if !filepath.IsAbs(o.NetNSPath) {
			return false, fmt.Errorf("network namespace path %q: not an absolute path: %w", o.NetNSPath, errdefs.ErrInvalidArgument)
		}
	}
	return host, nil
}

// resolveHostname returns --hostname, else docker's default: the host's
// name with --network host, else the first 12 characters of the id.
func resolveHostname(o *Options, hostNet bool) (string, error) {
	h := o.Hostname
	switch {
	case h != "":
	case hostNet:
		name, err := os.Hostname()
		if err != nil {
			return "", fmt.Errorf("--network host: read the host's name for the container's hostname: %w", err)
		}
		h = name
	case o.ID != "":
		h = o.ID
		if len(h) > 12 {
			h = h[:12]
		}
	default:
		return "", fmt.Errorf("hostname: neither --hostname nor a container id is set: %w", errdefs.ErrInvalidArgument)
	}
	if len(h) > maxHostnameLen {
		return "", fmt.Errorf("--hostname %q: longer than %d bytes: %w", h, maxHostnameLen, errdefs.ErrInvalidArgument)
	}
	for _, r := range h {
		if r <= ' ' || r == 0x7f || r == '/' {
			return "", fmt.Errorf("--hostname %q: contains a space, control character or '/': %w", h, errdefs.ErrInvalidArgument)
		}
	}
	return h, nil
}

// recordInfo collects what the engine records: labels, ports, volumes,
// stop signal, the user spec.
func recordInfo(cfg ocispec.ImageConfig, o *Options, hostname string) (*Info, error) {
	info := &Info{Hostname: hostname, User: o.User}
	if info.User == "" {
		info.User = cfg.User
	}
	sig, what := o.StopSignal, "--stop-signal"
	if sig == "" {
		sig, what = cfg.StopSignal, "image config StopSignal"
	}
	if sig == "" {
		sig = "SIGTERM"
	}
	var err error
	if info.StopSignal, info.StopSignalName, err = parseSignal(what, sig); err != nil {
		return nil, err
	}
	info.ExposedPorts = slices.Sorted(maps.Keys(cfg.ExposedPorts))
	info.Volumes = slices.Sorted(maps.Keys(cfg.Volumes))
	info.Labels = map[string]string{}
	maps.Copy(info.Labels, cfg.Labels)
	maps.Copy(info.Labels, o.Labels)
	return info, nil
}

// namespaces returns docker's namespaces in docker's order: mount,
// network (joined at netnsPath if set; absent with host networking), uts,
// pid, ipc, and cgroup on a cgroup v2 host.
func namespaces(hostNet bool, netnsPath string) []specs.LinuxNamespace {
	ns := []specs.LinuxNamespace{{Type: specs.MountNamespace}}
	if !hostNet {
		ns = append(ns, specs.LinuxNamespace{Type: specs.NetworkNamespace, Path: netnsPath})
	}
	ns = append(ns,
		specs.LinuxNamespace{Type: specs.UTSNamespace},
		specs.LinuxNamespace{Type: specs.PIDNamespace},
		specs.LinuxNamespace{Type: specs.IPCNamespace},
	)
	if cgroup2Host() {
		ns = append(ns, specs.LinuxNamespace{Type: specs.CgroupNamespace})
	}
	return ns
}

// setResources copies o.Resources into linux.resources with docker's
// device rules first (or, privileged, the host's devices and an allow-all
// rule).
func setResources(s *specs.Spec, o *Options) error {
	res := &specs.LinuxResources{}
	if o.Resources != nil {
		copied := *o.Resources
		res = &copied
	}
	rules := defaultDeviceRules()
	if o.Privileged {
		devs, err := hostDevices()
		if err != nil {
			return err
		}
		s.Linux.Devices = devs
		rules = []specs.LinuxDeviceCgroup{{Allow: true, Access: "rwm"}}
	}
	res.Devices = append(rules, res.Devices...)
	s.Linux.Resources = res
	return nil
}

// mergeMounts combines docker's default mounts with the container's
// (daemon/oci_linux.go withMounts): the container's are sorted parents
// first; a default mount is dropped when one of them has the same
// destination, and every default under /dev when one of them is /dev. With
// a read-only root every default but /proc, /dev and its children gets
// "ro"; a privileged container gets /sys and the cgroup mount read-write.
func mergeMounts(defaults, extra []specs.Mount, readOnly, privileged bool) ([]specs.Mount, error) {
	user := make([]specs.Mount, len(extra))
	dests := map[string]bool{}
	for i, m := range extra {
		if m.Destination == "" || !path.IsAbs(m.Destination) {
			return nil, fmt.Errorf("mount %d (source %q): destination %q is not an absolute path: %w", i, m.Source, m.Destination, errdefs.ErrInvalidArgument)
		}
		m.Destination = path.Clean(m.Destination)
		m.Options = slices.Clone(m.Options)
		user[i] = m
		dests[m.Destination] = true
	}
	// docker's sortMounts: fewer path components first, stable.
	sort.SliceStable(user, func(i, j int) bool {
		return depth(user[i].Destination) < depth(user[j].Destination)
	})

	var out []specs.Mount
	for _, m := range defaults {
		if dests[m.Destination] || (dests["/dev"] && strings.HasPrefix(m.Destination, "/dev/")) {
			continue
		}
		switch m.Destination {
		case "/proc", "/dev", "/dev/pts", "/dev/shm", "/dev/mqueue":
		default:
			if readOnly && !slices.Contains(m.Options, "ro") {
				m.Options = append(m.Options, "ro")
			}
		}
		if privileged && (m.Destination == "/sys" || m.Type == "cgroup") {
			m.Options = slices.DeleteFunc(m.Options, func(o string) bool { return o == "ro" })
		}
		out = append(out, m)
	}
	return append(out, user...), nil
}

// depth counts the components of a clean absolute path ("/" is 0).
func depth(p string) int {
	if p == "/" {
		return 0
	}
	return strings.Count(p, "/")
}

// OCIVersion is the ociVersion the generated specs declare. Every field
// they use exists in runtime-spec 1.0.2, and older runtimes refuse a newer
// version than they know (crun 1.8 rejects 1.3.0), so they claim 1.0.2-dev
// as runc 1.1's `runc spec` does.
const OCIVersion = "1.0.2-dev"
