package seccomp

import (
	_ "embed"
	"encoding/json"
	"fmt"
	"runtime"
	"slices"
	"strconv"
	"strings"

	"github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/skiff-containers/skiff/errdefs"
)

// defaultProfileJSON is Docker's default seccomp profile, the data file
// seccomp/default.json of github.com/moby/profiles (Apache-2.0), unchanged.
// It is in Docker's profile format (archMap, includes/excludes), which
// DefaultProfileWithCaps resolves into an OCI linux.seccomp section.
//
//go:embed default.json
var defaultProfileJSON []byte

// dockerProfile is Docker's seccomp profile format: an OCI section whose
// rules may depend on the architecture, the capabilities and the kernel.
type dockerProfile struct {
	DefaultAction   specs.LinuxSeccompAction `json:"defaultAction"`
	DefaultErrnoRet *uint                    `json:"defaultErrnoRet,omitempty"`
	Architectures   []specs.Arch             `json:"architectures,omitempty"`
	ArchMap         []struct {
		Arch      specs.Arch   `json:"architecture"`
		SubArches []specs.Arch `json:"subArchitectures"`
	} `json:"archMap,omitempty"`
	Syscalls         []dockerSyscall          `json:"syscalls"`
	Flags            []specs.LinuxSeccompFlag `json:"flags,omitempty"`
	ListenerPath     string                   `json:"listenerPath,omitempty"`
	ListenerMetadata string                   `json:"listenerMetadata,omitempty"`
}

// dockerSyscall is one rule of a Docker profile.
type dockerSyscall struct {
	Name     string                   `json:"name,omitempty"`
	Names    []string                 `json:"names,omitempty"`
	Action   specs.LinuxSeccompAction `json:"action"`
	ErrnoRet *uint                    `json:"errnoRet,omitempty"`
	Args     []specs.LinuxSeccompArg  `json:"args"`
	Includes *dockerFilter            `json:"includes,omitempty"`
	Excludes *dockerFilter            `json:"excludes,omitempty"`
}

// dockerFilter is the includes/excludes condition of a Docker profile rule.
type dockerFilter struct {
	Arches    []string `json:"arches,omitempty"`
	Caps      []string `json:"caps,omitempty"`
	MinKernel string   `json:"minKernel,omitempty"`
}

// dockerDefaultCaps is Docker's default capability set (moby
// oci/caps/defaults.go), which DefaultProfile resolves the profile for.
func dockerDefaultCaps() []string {
	return []string{
		"CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FSETID", "CAP_FOWNER", "CAP_MKNOD",
		"CAP_NET_RAW", "CAP_SETGID", "CAP_SETUID", "CAP_SETFCAP", "CAP_SETPCAP",
		"CAP_NET_BIND_SERVICE", "CAP_SYS_CHROOT", "CAP_KILL", "CAP_AUDIT_WRITE",
	}
}

// DefaultProfile returns Docker's default seccomp profile for the host
// architecture with the capability-conditional rules resolved for Docker's
// default capability set. Each call returns a new value the caller may
// change.
func DefaultProfile() *specs.LinuxSeccomp {
	return DefaultProfileWithCaps(dockerDefaultCaps())
}

// DefaultProfileWithCaps returns Docker's default seccomp profile for the
// host architecture resolved for a container whose bounding set is caps
// (names like "CAP_SYS_ADMIN"), as docker does for --cap-add/--cap-drop and
// --privileged-less containers: a rule is kept only if the host arch, caps
// and running kernel satisfy its includes and none of its excludes.
func DefaultProfileWithCaps(caps []string) *specs.LinuxSeccomp {
	p, err := resolveDockerProfile(defaultProfileJSON, runtime.GOARCH, caps, kernelVersion())
	if err != nil {
		// The profile is embedded data checked by the tests.
		panic(err)
	}
	return p
}

// ResolveProfile turns data, a seccomp profile in Docker's format (as
// `docker run --security-opt seccomp=profile.json` takes it: archMap,
// includes/excludes by arch, capability and kernel), into an OCI
// linux.seccomp section for the host architecture, the running kernel and
// a container whose bounding set is caps, as docker's LoadProfile does. A
// plain OCI section is a Docker profile without conditions and passes
// through. A profile with neither defaultAction nor syscalls means no
// filter: the result is nil. Errors wrap errdefs.ErrInvalidArgument; the
// result is not compiled (see Validate).
func ResolveProfile(data []byte, caps []string) (*specs.LinuxSeccomp, error) {
	var dp dockerProfile
	if err := json.Unmarshal(data, &dp); err != nil {
		return nil, fmt.Errorf("seccomp: decode the profile (want Docker's JSON profile format): %v: %w", err, errdefs.ErrInvalidArgument)
	}
	if dp.DefaultAction == "" && len(dp.Syscalls) == 0 {
		return nil, nil
	}
	if len(dp.Architectures) > 0 && len(dp.ArchMap) > 0 {
		return nil, fmt.Errorf("seccomp: both 'architectures' and 'archMap' are specified in the seccomp profile, use either 'architectures' or 'archMap': %w", errdefs.ErrInvalidArgument)
	}
	for i, sc := range dp.Syscalls {
		if sc.Name != "" && len(sc.Names) > 0 {
			return nil, fmt.Errorf("seccomp: syscalls[%d]: both 'name' and 'names' were specified in the seccomp profile, use either 'name' or 'names': %w", i, errdefs.ErrInvalidArgument)
		}
	}
	out, err := resolveDockerProfile(data, runtime.GOARCH, caps, kernelVersion())
	if err != nil {
		return nil, fmt.Errorf("%v: %w", err, errdefs.ErrInvalidArgument)
	}
	return out, nil
}

// goarchToSeccomp maps GOARCH to the name Docker profiles use in
// includes.arches and to the OCI architecture of archMap.
func goarchToSeccomp(goarch string) (string, specs.Arch) {
	switch goarch {
	case "386":
		return "x86", specs.ArchX86
	case "amd64":
		return "amd64", specs.ArchX86_64
	case "arm":
		return "arm", specs.ArchARM
	case "arm64":
		return "arm64", specs.ArchAARCH64
	case "loong64":
		return "loongarch64", specs.ArchLOONGARCH64
	case "mips64":
		return "mips64", specs.ArchMIPS64
	case "mips64le":
		return "mipsel64", specs.ArchMIPSEL64
	case "mipsle":
		return "mipsel", specs.ArchMIPSEL
	case "ppc64":
		return "ppc64", specs.ArchPPC64
	case "ppc64le":
		return "ppc64le", specs.ArchPPC64LE
	case "riscv64":
		return "riscv64", specs.ArchRISCV64
	case "s390x":
		return "s390x", specs.ArchS390X
	}
	return goarch, ""
}

// resolveDockerProfile turns a Docker profile into an OCI section for
// goarch, the capability set caps and the kernel version kver ([3]int, or
// nil when unknown, in which case minKernel conditions count as met).
func resolveDockerProfile(data []byte, goarch string, caps []string, kver []int) (*specs.LinuxSeccomp, error) {
	var dp dockerProfile
	if err := json.Unmarshal(data, &dp); err != nil {
		return nil, fmt.Errorf("seccomp: parse Docker seccomp profile: %w", err)
	}
	arch, ociArch := goarchToSeccomp(goarch)
	out := &specs.LinuxSeccomp{
		DefaultAction:    dp.DefaultAction,
		DefaultErrnoRet:  dp.DefaultErrnoRet,
		Architectures:    slices.Clone(dp.Architectures),
		Flags:            slices.Clone(dp.Flags),
		ListenerPath:     dp.ListenerPath,
		ListenerMetadata: dp.ListenerMetadata,
	}
	for _, m := range dp.ArchMap {
		if m.Arch == ociArch {
			out.Architectures = append(out.Architectures, m.Arch)
			out.Architectures = append(out.Architectures, m.SubArches...)
			break
		}
	}
	for i, sc := range dp.Syscalls {
		names := sc.Names
		if sc.Name != "" {
			names = append([]string{sc.Name}, names...)
		}
		if ex := sc.Excludes; ex != nil {
			if slices.Contains(ex.Arches, arch) {
				continue
			}
			if slices.ContainsFunc(ex.Caps, func(c string) bool { return slices.Contains(caps, c) }) {
				continue
			}
			if ex.MinKernel != "" {
				ok, err := kernelAtLeast(kver, ex.MinKernel)
				if err != nil {
					return nil, fmt.Errorf("seccomp: Docker profile syscalls[%d].excludes: %w", i, err)
				}
				if ok {
					continue
				}
			}
		}
		if in := sc.Includes; in != nil {
			if len(in.Arches) > 0 && !slices.Contains(in.Arches, arch) {
				continue
			}
			if slices.ContainsFunc(in.Caps, func(c string) bool { return !slices.Contains(caps, c) }) {
				continue
			}
			if in.MinKernel != "" {
				ok, err := kernelAtLeast(kver, in.MinKernel)
				if err != nil {
					return nil, fmt.Errorf("seccomp: Docker profile syscalls[%d].includes: %w", i, err)
				}
				if !ok {
					continue
				}
			}
		}
		out.Syscalls = append(out.Syscalls, specs.LinuxSyscall{
			Names:    slices.Clone(names),
			Action:   sc.Action,
			ErrnoRet: sc.ErrnoRet,
			Args:     slices.Clone(sc.Args),
		})
	}
	return out, nil
}

// kernelAtLeast reports whether kver is at least the "major.minor" min; an
// unknown kver (nil) counts as new enough.
func kernelAtLeast(kver []int, min string) (bool, error) {
	want, err := parseKernelVersion(min)
	if err != nil {
		return false, fmt.Errorf("minKernel %q: %w", min, err)
	}
	if kver == nil {
		return true, nil
	}
	return slices.Compare(kver, want) >= 0, nil
}

// parseKernelVersion parses the leading "major.minor[.patch]" of a kernel
// release string into three numbers.
func parseKernelVersion(s string) ([]int, error) {
	if i := strings.IndexFunc(s, func(r rune) bool { return r != '.' && (r < '0' || r > '9') }); i >= 0 {
		s = s[:i]
	}
	parts := strings.Split(strings.TrimSuffix(s, "."), ".")
	if len(parts) < 2 || len(parts) > 3 {
		return nil, fmt.Errorf("not a kernel version (want major.minor)")
	}
	v := make([]int, 3)
	for i, p := range parts {
		n, err := strconv.Atoi(p)
		if err != nil {
			return nil, fmt.Errorf("not a kernel version: %v", err)
		}
		v[i] = n
	}
	return v, nil
}

// kernelVersion returns the running kernel's version, nil if unknown.
func kernelVersion() []int {
	var u unix.Utsname
	if err := unix.Uname(&u); err != nil {
		return nil
	}
	v, err := parseKernelVersion(unix.ByteSliceToString(u.Release[:]))
	if err != nil {
		return nil
	}
	return v
}
