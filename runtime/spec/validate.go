package spec

import (
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/skiff-containers/skiff/errdefs"
	"github.com/skiff-containers/skiff/runtime/caps"
)

// invalid builds an ErrInvalidArgument error about config.json.
func invalid(format string, args ...any) error {
	return fmt.Errorf("config.json: "+format+": %w", append(args, errdefs.ErrInvalidArgument)...)
}

// Validate checks that s describes a container skiff-runtime can create
// from the bundle at bundle (an absolute path). It returns the first problem
// found, as an error naming the field (with its index in arrays), saying
// what is wrong and what to do; it is ErrInvalidArgument except a missing
// rootfs, which is ErrNotFound.
//
// Validate judges well-formedness and consistency, not policy: it accepts a
// terminal, seccomp, AppArmor and SELinux settings, cgroup resources and
// namespace paths as they are (the callers decide what they support), and it
// does not open namespace paths.
//
// Where runc defines a rule, Validate follows runc 1.1, with these
// deliberate differences, all refusing what runc accepts with at most a
// warning: an unknown capability name (runc drops it), a relative
// mounts[i].destination (runc warns), an effective capability missing from
// permitted (runc fails later, at start, with a bare EPERM), a device path
// outside /dev, and a non-positive hook timeout.
func Validate(s *specs.Spec, bundle string) error {
	if s == nil {
		return invalid("the spec is empty")
	}
	checks := []func(*specs.Spec, string) error{
		validateVersion,
		validateRoot,
		validateProcess,
		validateMounts,
		validateLinux,
		validateHooks,
	}
	for _, check := range checks {
		if err := check(s, bundle); err != nil {
			return err
		}
	}
	return nil
}

func validateVersion(s *specs.Spec, _ string) error {
	if s.Version == "" {
		return invalid("ociVersion is missing; set it to the runtime-spec version the config follows, e.g. %q", specs.Version)
	}
	majorStr, _, _ := strings.Cut(s.Version, ".")
	major, err := strconv.Atoi(majorStr)
	if err != nil {
		return invalid("ociVersion %q is not a version number (expected e.g. %q)", s.Version, specs.Version)
	}
	if major != specs.VersionMajor {
		return invalid("ociVersion %q has major version %d; skiff-runtime supports runtime-spec %d.x", s.Version, major, specs.VersionMajor)
	}
	return nil
}

func validateRoot(s *specs.Spec, bundle string) error {
	if s.Root == nil || s.Root.Path == "" {
		return invalid("root.path is missing; set it to the container's root filesystem (relative to the bundle, e.g. \"rootfs\")")
	}
	rootfs := RootfsPath(s, bundle)
	fi, err := os.Stat(rootfs)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return fmt.Errorf("config.json: root.path: root filesystem %q does not exist; create it or fix root.path: %w", rootfs, errdefs.ErrNotFound)
	case err != nil:
		return fmt.Errorf("config.json: root.path: %w", err)
	case !fi.IsDir():
		return invalid("root.path: root filesystem %q is not a directory", rootfs)
	}
	return nil
}

func validateProcess(s *specs.Spec, _ string) error {
	p := s.Process
	if p == nil {
		return invalid("process is missing; it says what to run in the container (process.args, process.cwd)")
	}
	if len(p.Args) == 0 {
		return invalid("process.args is empty; it must hold at least the program to run")
	}
	if p.Cwd == "" {
		return invalid("process.cwd is missing; set it to an absolute path inside the container, e.g. \"/\"")
	}
	if !filepath.IsAbs(p.Cwd) {
		return invalid("process.cwd %q is not an absolute path", p.Cwd)
	}
	for i, e := range p.Env {
		name, _, ok := strings.Cut(e, "=")
		switch {
		case !ok:
			return invalid("process.env[%d] %q has no '='; entries are NAME=value", i, e)
		case name == "":
			return invalid("process.env[%d] %q has an empty name; entries are NAME=value", i, e)
		case strings.IndexByte(e, 0) >= 0:
			return invalid("process.env[%d] %q contains a NUL byte", i, e)
		}
	}
	for i, a := range p.Args {
		if strings.IndexByte(a, 0) >= 0 {
			return invalid("process.args[%d] %q contains a NUL byte", i, a)
		}
	}
	seen := map[string]int{}
	for i, rl := range p.Rlimits {
		if _, err := Rlimit(rl.Type); err != nil {
			return fmt.Errorf("config.json: process.rlimits[%d].type: %w", i, err)
		}
		if j, dup := seen[rl.Type]; dup {
			return invalid("process.rlimits[%d]: %s is already set by process.rlimits[%d]; give each type once", i, rl.Type, j)
		}
		seen[rl.Type] = i
		if rl.Soft > rl.Hard {
			return invalid("process.rlimits[%d] (%s): soft limit %d is above hard limit %d", i, rl.Type, rl.Soft, rl.Hard)
		}
	}
	if err := validateCapabilities(p.Capabilities); err != nil {
		return err
	}
	if p.OOMScoreAdj != nil && (*p.OOMScoreAdj < -1000 || *p.OOMScoreAdj > 1000) {
		return invalid("process.oomScoreAdj %d is out of range; the kernel accepts -1000 to 1000", *p.OOMScoreAdj)
	}
	return nil
}

func validateCapabilities(c *specs.LinuxCapabilities) error {
	if c == nil {
		return nil
	}
	sets := []struct {
		field string
		names []string
	}{
		{"bounding", c.Bounding},
		{"effective", c.Effective},
		{"permitted", c.Permitted},
		{"inheritable", c.Inheritable},
		{"ambient", c.Ambient},
	}
	for _, set := range sets {
		for i, name := range set.names {
			if _, err := caps.Parse(name); err != nil {
				return fmt.Errorf("config.json: process.capabilities.%s[%d]: %w", set.field, i, err)
			}
		}
	}
	for i, name := range c.Effective {
		if !slices.Contains(c.Permitted, name) {
			return invalid("process.capabilities.effective[%d] %s is not in process.capabilities.permitted; only permitted capabilities can be effective", i, name)
		}
	}
	return nil
}

func validateMounts(s *specs.Spec, _ string) error {
	for i, m := range s.Mounts {
		if m.Destination == "" {
			return invalid("mounts[%d].destination is missing; set it to an absolute path inside the container", i)
		}
		if !filepath.IsAbs(m.Destination) {
			return invalid("mounts[%d].destination %q is not an absolute path", i, m.Destination)
		}
		for _, f := range [...]struct{ name, value string }{{"destination", m.Destination}, {"source", m.Source}, {"type", m.Type}} {
			if strings.IndexByte(f.value, 0) >= 0 {
				return invalid("mounts[%d].%s %q contains a NUL byte", i, f.name, f.value)
			}
		}
		if _, err := ParseMountOptions(m.Options); err != nil {
			return fmt.Errorf("config.json: mounts[%d].options: %w", i, err)
		}
		if err := validateIDMappings(fmt.Sprintf("mounts[%d].uidMappings", i), m.UIDMappings); err != nil {
			return err
		}
		if err := validateIDMappings(fmt.Sprintf("mounts[%d].gidMappings", i), m.GIDMappings); err != nil {
			return err
		}
	}
	return nil
}

// namespaceTypes lists the namespace types of the runtime-spec. Never
// mutated.
var namespaceTypes = []specs.LinuxNamespaceType{
	specs.PIDNamespace, specs.NetworkNamespace, specs.MountNamespace, specs.IPCNamespace,
	specs.UTSNamespace, specs.UserNamespace, specs.CgroupNamespace, specs.TimeNamespace,
}

func validateLinux(s *specs.Spec, _ string) error {
	l := s.Linux
	if l == nil {
		l = &specs.Linux{}
	}
	// ns maps each namespace type in the config to its path ("" for new).
	ns := map[specs.LinuxNamespaceType]string{}
	for i, n := range l.Namespaces {
		if !slices.Contains(namespaceTypes, n.Type) {
			return invalid("linux.namespaces[%d].type %q is not a namespace type (use pid, network, mount, ipc, uts, user, cgroup or time)", i, n.Type)
		}
		if _, dup := ns[n.Type]; dup {
			return invalid("linux.namespaces[%d]: the %s namespace is listed twice; list each type once", i, n.Type)
		}
		if n.Path != "" && !filepath.IsAbs(n.Path) {
			return invalid("linux.namespaces[%d].path %q is not an absolute path (use e.g. /proc/<pid>/ns/%s or a bind-mounted namespace file)", i, n.Path, nsFile(n.Type))
		}
		ns[n.Type] = n.Path
	}
	has := func(t specs.LinuxNamespaceType) bool { _, ok := ns[t]; return ok }

	userPath, hasUser := ns[specs.UserNamespace]
	switch {
	case hasUser && userPath == "" && (len(l.UIDMappings) == 0 || len(l.GIDMappings) == 0):
		return invalid("linux.namespaces asks for a new user namespace but linux.uidMappings or linux.gidMappings is empty; give both mappings")
	case !hasUser && len(l.UIDMappings) > 0:
		return invalid("linux.uidMappings is set but linux.namespaces has no user namespace; add {\"type\": \"user\"} or remove the mappings")
	case !hasUser && len(l.GIDMappings) > 0:
		return invalid("linux.gidMappings is set but linux.namespaces has no user namespace; add {\"type\": \"user\"} or remove the mappings")
	}
	if err := validateIDMappings("linux.uidMappings", l.UIDMappings); err != nil {
		return err
	}
	if err := validateIDMappings("linux.gidMappings", l.GIDMappings); err != nil {
		return err
	}

	// runc allows hostname and domainname with a joined uts namespace too
	// (CRI runtimes set them on every container of a pod), so any uts
	// entry will do.
	if s.Hostname != "" && !has(specs.UTSNamespace) {
		return invalid("hostname %q is set but linux.namespaces has no uts namespace; add {\"type\": \"uts\"} or remove hostname (it would change the host's name)", s.Hostname)
	}
	if s.Domainname != "" && !has(specs.UTSNamespace) {
		return invalid("domainname %q is set but linux.namespaces has no uts namespace; add {\"type\": \"uts\"} or remove domainname (it would change the host's)", s.Domainname)
	}

	for i, p := range l.MaskedPaths {
		if !filepath.IsAbs(p) {
			return invalid("linux.maskedPaths[%d] %q is not an absolute path", i, p)
		}
	}
	for i, p := range l.ReadonlyPaths {
		if !filepath.IsAbs(p) {
			return invalid("linux.readonlyPaths[%d] %q is not an absolute path", i, p)
		}
	}
	if err := validateDevices(l); err != nil {
		return err
	}
	for _, key := range slices.Sorted(maps.Keys(l.Sysctl)) {
		if err := validateSysctl(key, has); err != nil {
			return err
		}
	}
	if l.RootfsPropagation != "" {
		if _, err := PropagationFlag(l.RootfsPropagation); err != nil {
			return fmt.Errorf("config.json: linux.rootfsPropagation: %w", err)
		}
	}
	if len(l.TimeOffsets) > 0 {
		if p, ok := ns[specs.TimeNamespace]; !ok || p != "" {
			return invalid("linux.timeOffsets is set but linux.namespaces has no new time namespace; add {\"type\": \"time\"} (without a path) or remove the offsets")
		}
		for clock := range l.TimeOffsets {
			if clock != "boottime" && clock != "monotonic" {
				return invalid("linux.timeOffsets has the clock %q; only \"boottime\" and \"monotonic\" can be offset", clock)
			}
		}
	}
	if l.Personality != nil && l.Personality.Domain != specs.PerLinux && l.Personality.Domain != specs.PerLinux32 {
		return invalid("linux.personality.domain %q is not %q or %q", l.Personality.Domain, specs.PerLinux, specs.PerLinux32)
	}
	return nil
}

func nsFile(t specs.LinuxNamespaceType) string {
	switch t {
	case specs.NetworkNamespace:
		return "net"
	case specs.MountNamespace:
		return "mnt"
	}
	return string(t)
}

func validateIDMappings(field string, maps []specs.LinuxIDMapping) error {
	for i, m := range maps {
		if m.Size == 0 {
			return invalid("%s[%d].size is 0; a mapping must cover at least one id", field, i)
		}
		if uint64(m.ContainerID)+uint64(m.Size) > math.MaxUint32+1 || uint64(m.HostID)+uint64(m.Size) > math.MaxUint32+1 {
			return invalid("%s[%d]: containerID %d / hostID %d plus size %d runs past the largest id %d", field, i, m.ContainerID, m.HostID, m.Size, uint32(math.MaxUint32))
		}
	}
	return nil
}

func validateDevices(l *specs.Linux) error {
	for i, d := range l.Devices {
		switch d.Type {
		case "c", "b", "u", "p":
		default:
			return invalid("linux.devices[%d].type %q is not a device type (use c or u for character, b for block, p for a FIFO)", i, d.Type)
		}
		if !filepath.IsAbs(d.Path) {
			return invalid("linux.devices[%d].path %q is not an absolute path", i, d.Path)
		}
		if clean := filepath.Clean(d.Path); !strings.HasPrefix(clean, "/dev/") {
			return invalid("linux.devices[%d].path %q is not under /dev", i, d.Path)
		}
		if d.Major < 0 || d.Major > math.MaxUint32 || d.Minor < 0 || d.Minor > math.MaxUint32 {
			return invalid("linux.devices[%d] %s: major %d / minor %d out of range", i, d.Path, d.Major, d.Minor)
		}
	}
	if l.Resources == nil {
		return nil
	}
	for i, d := range l.Resources.Devices {
		switch d.Type {
		case "", "a", "b", "c":
		default:
			return invalid("linux.resources.devices[%d].type %q is not a device rule type (use a for all, b, c, or leave it out)", i, d.Type)
		}
		if d.Access == "" {
			return invalid("linux.resources.devices[%d].access is empty; give any of r, w and m", i)
		}
		if strings.Trim(d.Access, "rwm") != "" {
			return invalid("linux.resources.devices[%d].access %q has letters other than r, w and m", i, d.Access)
		}
	}
	return nil
}

// validateSysctl checks that a linux.sysctl key is one the container's own
// namespaces isolate, so setting it does not change the host. The rule is
// runc's: IPC keys (kernel.msg*, kernel.sem*, kernel.shm*, fs.mqueue.*)
// need an ipc namespace, net.* a network namespace, kernel.domainname a uts
// namespace; kernel.hostname is refused in favour of the hostname field;
// anything else is not namespaced and refused. Joined namespaces count
// (runc additionally refuses a net path that is the host's own namespace;
// that needs the kernel and is left to the caller). Keys may use '.' or '/'
// as separator ("net/ipv4/conf/eth0.100/forwarding").
func validateSysctl(key string, has func(specs.LinuxNamespaceType) bool) error {
	sep := "."
	if strings.Contains(key, "/") {
		sep = "/"
	}
	for _, part := range strings.Split(key, sep) {
		if part == "" || part == "." || part == ".." {
			return invalid("linux.sysctl key %q is malformed; write it as in sysctl(8), e.g. net.ipv4.ip_forward", key)
		}
	}
	dotted := strings.ReplaceAll(key, "/", ".")
	switch {
	case strings.HasPrefix(dotted, "kernel.msg"), strings.HasPrefix(dotted, "kernel.sem"),
		strings.HasPrefix(dotted, "kernel.shm"), strings.HasPrefix(dotted, "fs.mqueue."):
		if !has(specs.IPCNamespace) {
			return invalid("linux.sysctl %q needs an ipc namespace (it would change the host's); add {\"type\": \"ipc\"} to linux.namespaces", key)
		}
	case strings.HasPrefix(dotted, "net."):
		if !has(specs.NetworkNamespace) {
			return invalid("linux.sysctl %q needs a network namespace (it would change the host's); add {\"type\": \"network\"} to linux.namespaces", key)
		}
	case dotted == "kernel.domainname":
		if !has(specs.UTSNamespace) {
			return invalid("linux.sysctl %q needs a uts namespace (it would change the host's); add {\"type\": \"uts\"} to linux.namespaces", key)
		}
	case dotted == "kernel.hostname":
		return invalid("linux.sysctl %q conflicts with the hostname field; set hostname instead", key)
	default:
		return invalid("linux.sysctl %q is not isolated by any namespace, so a container cannot set it; set it on the host instead", key)
	}
	return nil
}

// hookKinds lists the hook lists of a spec in the order they run.
func hookKinds(h *specs.Hooks) []struct {
	name  string
	hooks []specs.Hook
} {
	return []struct {
		name  string
		hooks []specs.Hook
	}{
		{"prestart", h.Prestart}, //nolint:staticcheck // deprecated by the spec but still honoured
		{"createRuntime", h.CreateRuntime},
		{"createContainer", h.CreateContainer},
		{"startContainer", h.StartContainer},
		{"poststart", h.Poststart},
		{"poststop", h.Poststop},
	}
}

func validateHooks(s *specs.Spec, _ string) error {
	if s.Hooks == nil {
		return nil
	}
	for _, kind := range hookKinds(s.Hooks) {
		for i, h := range kind.hooks {
			if !filepath.IsAbs(h.Path) {
				return invalid("hooks.%s[%d].path %q is not an absolute path", kind.name, i, h.Path)
			}
			if h.Timeout != nil && *h.Timeout <= 0 {
				return invalid("hooks.%s[%d].timeout %d must be a positive number of seconds (or left out for none)", kind.name, i, *h.Timeout)
			}
		}
	}
	return nil
}
