package specgen

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/skiff-containers/skiff/errdefs"
	"github.com/skiff-containers/skiff/runtime/caps"
)

// allCaps is the keyword of --cap-add/--cap-drop for every capability.
const allCaps = "ALL"

// allCapabilities returns every capability this build knows that the
// running kernel knows too (up to /proc/sys/kernel/cap_last_cap; all known
// names if that cannot be read) and that the calling process's bounding set
// holds: as docker's GetAllCapabilities, the capabilities "available in the
// current environment", which privileged containers get and --cap-add may
// name. A runtime cannot grant a capability its own bounding set lacks.
func allCapabilities() []string {
	names := caps.Names()
	if data, err := os.ReadFile("/proc/sys/kernel/cap_last_cap"); err == nil {
		if last, err := strconv.Atoi(strings.TrimSpace(string(data))); err == nil && last >= 0 && last+1 < len(names) {
			names = names[:last+1]
		}
	}
	return slices.DeleteFunc(slices.Clone(names), func(name string) bool { return !inBoundingSet(name) })
}

// inBoundingSet reports whether the calling thread's bounding set holds
// the capability name; true when the kernel cannot tell.
func inBoundingSet(name string) bool {
	n, err := caps.Parse(name)
	if err != nil {
		return false
	}
	in, err := unix.PrctlRetInt(unix.PR_CAPBSET_READ, uintptr(n), 0, 0, 0)
	return err != nil || in == 1
}

// normalizeCaps upper-cases the names of --cap-add or --cap-drop (flag),
// adds the CAP_ prefix, keeps "ALL", and refuses unknown names.
func normalizeCaps(flag string, in []string) ([]string, error) {
	var out []string
	for _, c := range in {
		name := strings.ToUpper(strings.TrimSpace(c))
		if name == allCaps {
			out = append(out, name)
			continue
		}
		if !strings.HasPrefix(name, "CAP_") {
			name = "CAP_" + name
		}
		if _, err := caps.Parse(name); err != nil {
			return nil, fmt.Errorf("%s %q: unknown capability (use a name from capabilities(7), e.g. NET_ADMIN, or ALL): %w", flag, c, errdefs.ErrInvalidArgument)
		}
		if flag == "--cap-add" && !slices.Contains(allCapabilities(), name) {
			return nil, fmt.Errorf("%s %q: capability not supported by your kernel or not available in the current environment (skiffd's bounding set lacks it): %w", flag, c, errdefs.ErrInvalidArgument)
		}
		out = append(out, name)
	}
	return out, nil
}

// capabilities computes the container's capability set as docker's
// TweakCapabilities does: every capability when privileged; else the
// defaults minus --cap-drop plus --cap-add, where --cap-add ALL means every
// capability but those dropped, and --cap-drop ALL means only those added.
func capabilities(o *Options) ([]string, error) {
	if o.Privileged {
		return allCapabilities(), nil
	}
	if len(o.CapAdd) == 0 && len(o.CapDrop) == 0 {
		return DefaultCapabilities(), nil
	}
	drop, err := normalizeCaps("--cap-drop", o.CapDrop)
	if err != nil {
		return nil, err
	}
	add, err := normalizeCaps("--cap-add", o.CapAdd)
	if err != nil {
		return nil, err
	}
	var out []string
	switch {
	case slices.Contains(add, allCaps):
		for _, c := range allCapabilities() {
			if !slices.Contains(drop, c) {
				out = append(out, c)
			}
		}
	case slices.Contains(drop, allCaps):
		out = add
	default:
		for _, c := range DefaultCapabilities() {
			if !slices.Contains(drop, c) {
				out = append(out, c)
			}
		}
		for _, c := range add {
			if !slices.Contains(out, c) {
				out = append(out, c)
			}
		}
	}
	return out, nil
}

// hostDevices lists the device nodes under /dev of the host for a
// privileged container, as containerd's HostDevices does for docker: it
// skips /dev/pts, /dev/shm, /dev/fd, /dev/mqueue, LXC's and udev's private
// directories, /dev/console, FIFOs, and nodes that vanish while it walks.
func hostDevices() ([]specs.LinuxDevice, error) {
	return devicesUnder("/dev")
}

func devicesUnder(dir string) ([]specs.LinuxDevice, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("privileged: list host devices in %s: %w", dir, err)
	}
	var out []specs.LinuxDevice
	for _, e := range entries {
		p := filepath.Join(dir, e.Name())
		if e.IsDir() {
			switch e.Name() {
			case "pts", "shm", "fd", "mqueue", ".lxc", ".lxd-mounts", ".udev":
				continue
			}
			sub, err := devicesUnder(p)
			if err != nil {
				return nil, err
			}
			out = append(out, sub...)
			continue
		}
		if e.Name() == "console" {
			continue
		}
		var st unix.Stat_t
		if err := unix.Lstat(p, &st); err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				continue
			}
			return nil, fmt.Errorf("privileged: stat host device %s: %w", p, err)
		}
		var typ string
		switch st.Mode & unix.S_IFMT {
		case unix.S_IFCHR:
			typ = "c"
		case unix.S_IFBLK:
			typ = "b"
		default:
			continue
		}
		mode := fs.FileMode(st.Mode &^ unix.S_IFMT)
		uid, gid := st.Uid, st.Gid
		out = append(out, specs.LinuxDevice{
			Path:     p,
			Type:     typ,
			Major:    int64(unix.Major(st.Rdev)),
			Minor:    int64(unix.Minor(st.Rdev)),
			FileMode: &mode,
			UID:      &uid,
			GID:      &gid,
		})
	}
	return out, nil
}
