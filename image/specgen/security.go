package specgen

import (
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"math"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/skiff-containers/skiff/errdefs"
	"github.com/skiff-containers/skiff/runtime/seccomp"
)

// Values of Options.Seccomp besides a profile.
const (
	// SeccompDefault is docker's default profile.
	SeccompDefault = ""
	// SeccompBuiltin is docker's name of its default profile.
	SeccompBuiltin = "builtin"
	// SeccompUnconfined is no filter at all.
	SeccompUnconfined = "unconfined"
)

// Device is one --device: the host's device node (or a directory of them)
// at PathOnHost appears at PathInContainer, and the device cgroup allows
// CgroupPermissions ("rwm" or a part of it) on it.
type Device struct {
	PathOnHost, PathInContainer, CgroupPermissions string
}

// Ulimit is one --ulimit: a resource limit of process.rlimits, named as
// docker names it ("nofile"); -1 is unlimited.
type Ulimit struct {
	Name       string
	Soft, Hard int64
}

// ulimitNames returns the names docker's --ulimit knows (go-units).
func ulimitNames() []string {
	return []string{
		"as", "core", "cpu", "data", "fsize", "locks", "memlock", "msgqueue", "nice",
		"nofile", "nproc", "rss", "rtprio", "rttime", "sigpending", "stack",
	}
}

// ValidUlimitName reports whether name is one of docker's --ulimit names.
func ValidUlimitName(name string) bool { return slices.Contains(ulimitNames(), name) }

// rlimits turns --ulimit into process.rlimits ("nofile" is RLIMIT_NOFILE).
// An unknown name, a value below -1, or a soft limit above the hard one is
// ErrInvalidArgument; a later entry for a name replaces an earlier one.
func rlimits(in []Ulimit) ([]specs.POSIXRlimit, error) {
	var out []specs.POSIXRlimit
	limit := func(v int64) uint64 {
		if v == -1 {
			return math.MaxUint64 // RLIM_INFINITY
		}
		return uint64(v)
	}
	for _, u := range in {
		if !ValidUlimitName(u.Name) {
			return nil, fmt.Errorf("--ulimit %s: invalid ulimit type (use one of %s): %w", u.Name, strings.Join(ulimitNames(), ", "), errdefs.ErrInvalidArgument)
		}
		if u.Soft < -1 || u.Hard < -1 {
			return nil, fmt.Errorf("--ulimit %s=%d:%d: a limit must be -1 (unlimited) or more: %w", u.Name, u.Soft, u.Hard, errdefs.ErrInvalidArgument)
		}
		soft, hard := limit(u.Soft), limit(u.Hard)
		if soft > hard {
			return nil, fmt.Errorf("--ulimit %s: ulimit soft limit must be less than or equal to hard limit: %d > %d: %w", u.Name, u.Soft, u.Hard, errdefs.ErrInvalidArgument)
		}
		rl := specs.POSIXRlimit{Type: "RLIMIT_" + strings.ToUpper(u.Name), Soft: soft, Hard: hard}
		out = slices.DeleteFunc(out, func(r specs.POSIXRlimit) bool { return r.Type == rl.Type })
		out = append(out, rl)
	}
	return out, nil
}

// validDeviceMode reports whether mode is a non-empty combination of r, w
// and m, each at most once (docker's validDeviceMode).
func validDeviceMode(mode string) bool {
	if mode == "" {
		return false
	}
	seen := map[rune]bool{}
	for _, c := range mode {
		if !strings.ContainsRune("rwm", c) || seen[c] {
			return false
		}
		seen[c] = true
	}
	return true
}

// userDevices gathers the device nodes of --device as docker's
// DevicesFromPath does: a symlink on the host is followed; a device node
// maps to PathInContainer; a directory maps every device node under it
// (its path below PathOnHost kept under PathInContainer). A path that is
// neither, or a directory without devices, is ErrInvalidArgument.
func userDevices(in []Device) ([]specs.LinuxDevice, []specs.LinuxDeviceCgroup, error) {
	var devs []specs.LinuxDevice
	var rules []specs.LinuxDeviceCgroup
	for _, d := range in {
		perms := d.CgroupPermissions
		if perms == "" {
			perms = "rwm"
		}
		dst := d.PathInContainer
		if dst == "" {
			dst = d.PathOnHost
		}
		what := fmt.Sprintf("--device %s:%s:%s", d.PathOnHost, dst, perms)
		switch {
		case !filepath.IsAbs(d.PathOnHost):
			return nil, nil, fmt.Errorf("%s: the host path %q is not absolute: %w", what, d.PathOnHost, errdefs.ErrInvalidArgument)
		case !path.IsAbs(dst):
			return nil, nil, fmt.Errorf("%s: %s is not an absolute path: %w", what, dst, errdefs.ErrInvalidArgument)
		case !validDeviceMode(perms):
			return nil, nil, fmt.Errorf("%s: bad mode specified: %s (use a combination of r, w and m): %w", what, perms, errdefs.ErrInvalidArgument)
		}
		dst = path.Clean(dst)
		src := d.PathOnHost
		if resolved, err := filepath.EvalSymlinks(src); err == nil {
			src = resolved
		}
		gather := func(hostPath, ctrPath string) (bool, error) {
			dev, ok, err := deviceNode(hostPath)
			if err != nil || !ok {
				return ok, err
			}
			dev.Path = ctrPath
			devs = slices.DeleteFunc(devs, func(x specs.LinuxDevice) bool { return x.Path == ctrPath })
			devs = append(devs, dev)
			major, minor := dev.Major, dev.Minor
			rules = append(rules, specs.LinuxDeviceCgroup{Allow: true, Type: dev.Type, Major: &major, Minor: &minor, Access: perms})
			return true, nil
		}
		ok, err := gather(src, dst)
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil, nil, fmt.Errorf("error gathering device information while adding custom device %q: no such file or directory (name a device node of the host, e.g. /dev/fuse): %w", d.PathOnHost, errdefs.ErrInvalidArgument)
			}
			return nil, nil, fmt.Errorf("error gathering device information while adding custom device %q: %v: %w", d.PathOnHost, err, errdefs.ErrInvalidArgument)
		}
		if ok {
			continue
		}
		found := false
		if fi, err := os.Stat(src); err == nil && fi.IsDir() {
			err := filepath.WalkDir(src, func(p string, e fs.DirEntry, err error) error {
				if err != nil || e.IsDir() {
					return nil // docker ignores what it cannot read
				}
				rel, err := filepath.Rel(src, p)
				if err != nil {
					return nil
				}
				ok, err := gather(p, path.Join(dst, filepath.ToSlash(rel)))
				found = found || ok
				return err
			})
			if err != nil {
				return nil, nil, fmt.Errorf("error gathering device information while adding custom device %q: %v: %w", d.PathOnHost, err, errdefs.ErrInvalidArgument)
			}
		}
		if !found {
			return nil, nil, fmt.Errorf("error gathering device information while adding custom device %q: not a device node: %w", d.PathOnHost, errdefs.ErrInvalidArgument)
		}
	}
	return devs, rules, nil
}

// deviceNode describes the host's character or block device at p (not
// following a final symlink); ok is false for any other kind of file.
func deviceNode(p string) (dev specs.LinuxDevice, ok bool, err error) {
	var st unix.Stat_t
	if err := unix.Lstat(p, &st); err != nil {
		return dev, false, &fs.PathError{Op: "stat", Path: p, Err: err}
	}
	switch st.Mode & unix.S_IFMT {
	case unix.S_IFCHR:
		dev.Type = "c"
	case unix.S_IFBLK:
		dev.Type = "b"
	default:
		return dev, false, nil
	}
	mode := fs.FileMode(st.Mode & 0o7777)
	uid, gid := st.Uid, st.Gid
	dev.Major, dev.Minor = int64(unix.Major(st.Rdev)), int64(unix.Minor(st.Rdev))
	dev.FileMode, dev.UID, dev.GID = &mode, &uid, &gid
	return dev, true, nil
}

// addDevices puts the --device nodes into the spec: each replaces a
// device of the same container path (a privileged container's host
// devices), and its allow rule follows the default rules.
func addDevices(s *specs.Spec, in []Device) error {
	if len(in) == 0 {
		return nil
	}
	devs, rules, err := userDevices(in)
	if err != nil {
		return err
	}
	s.Linux.Devices = slices.DeleteFunc(s.Linux.Devices, func(x specs.LinuxDevice) bool {
		return slices.ContainsFunc(devs, func(d specs.LinuxDevice) bool { return d.Path == x.Path })
	})
	s.Linux.Devices = append(s.Linux.Devices, devs...)
	s.Linux.Resources.Devices = append(s.Linux.Resources.Devices, rules...)
	return nil
}

// addGroups appends the --group-add groups to the user's additional gids,
// as docker does: a name of the image's /etc/group, else a number.
func addGroups(u *specs.User, rootfs string, groups []string, image string) error {
	if len(groups) == 0 {
		return nil
	}
	data, _, err := readRootfsFile(rootfs, "/etc/group")
	if err != nil {
		return fmt.Errorf("--group-add: %w", err)
	}
	entries := parseGroup(data)
	for _, g := range groups {
		gid := -1
		for _, e := range entries {
			if e.name == g {
				gid = e.gid
				break
			}
		}
		if gid < 0 {
			n, isNum, err := parseID("--group-add: gid", g)
			if err != nil {
				return err
			}
			if !isNum {
				return fmt.Errorf("--group-add %q: unable to find group %s in the /etc/group of image %s (use a group the image defines, or a numeric gid): %w",
					g, g, imageName(image), errdefs.ErrNotFound)
			}
			gid = n
		}
		if gid < 0 || gid > maxID {
			return fmt.Errorf("--group-add %q: the image's /etc/group gives gid %d, out of range 0-%d: %w", g, gid, maxID, errdefs.ErrInvalidArgument)
		}
		if !slices.Contains(u.AdditionalGids, uint32(gid)) {
			u.AdditionalGids = append(u.AdditionalGids, uint32(gid))
		}
	}
	return nil
}

// seccompProfile returns the linux.seccomp section for --security-opt
// seccomp=… (Options.Seccomp) and the bounding set capSet: docker's
// default profile, none (unconfined), or the given Docker-format profile,
// checked by compiling it.
func seccompProfile(profile string, capSet []string) (*specs.LinuxSeccomp, error) {
	switch profile {
	case SeccompDefault, SeccompBuiltin:
		return seccomp.DefaultProfileWithCaps(capSet), nil
	case SeccompUnconfined:
		return nil, nil
	}
	p, err := seccomp.ResolveProfile([]byte(profile), capSet)
	if err != nil {
		return nil, fmt.Errorf("--security-opt seccomp: %w", err)
	}
	if err := seccomp.Validate(p); err != nil {
		return nil, fmt.Errorf("--security-opt seccomp: the profile is not usable: %w", err)
	}
	return p, nil
}

// checkSysctls refuses, as runc does, a network sysctl for a container
// that shares the host's network namespace: it would change the host's.
func checkSysctls(sysctls map[string]string, hostNet bool) error {
	if !hostNet {
		return nil
	}
	for _, k := range slices.Sorted(maps.Keys(sysctls)) {
		if strings.HasPrefix(k, "net.") {
			return fmt.Errorf("--sysctl: sysctl %q not allowed in host network namespace (drop it or use another network): %w", k, errdefs.ErrInvalidArgument)
		}
	}
	return nil
}
