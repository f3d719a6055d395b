package idmap

import (
	"errors"
	"fmt"
	"math"
	"os"
	"slices"
	"strconv"
	"syscall"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/skiff-containers/skiff/errdefs"
	"github.com/skiff-containers/skiff/runtime/spec"
)

// maxExtents is the kernel's limit on the lines of a uid_map or gid_map.
const maxExtents = 340

// holderArgv0 names the throwaway child in ps while it exists (a few
// milliseconds): it never runs any code of its own.
const holderArgv0 = "skiff-idmap-userns"

// UsernsFD returns an open fd (O_RDONLY, close-on-exec) on a new user
// namespace whose uid_map and gid_map are uid and gid: what mount_setattr(2)
// takes as MOUNT_ATTR_IDMAP's userns_fd. Both lists must be non-empty, at
// most 340 entries each, with non-zero sizes, no overflow and no
// overlapping ranges on either side; mappings that break these rules, or that
// the kernel refuses, are ErrInvalidArgument naming them. setgroups is denied
// in the namespace. The caller owns (and must close) the file; no process or
// other resource stays behind. It needs CAP_SETUID and CAP_SETGID (root) for
// mappings other than the caller's own ids.
func UsernsFD(uid, gid []specs.LinuxIDMapping) (*os.File, error) {
	if err := checkMappings("uid", uid); err != nil {
		return nil, err
	}
	if err := checkMappings("gid", gid); err != nil {
		return nil, err
	}
	proc, err := os.StartProcess("/proc/self/exe", []string{holderArgv0}, &os.ProcAttr{
		Files: []*os.File{}, // no stdio: the child never runs
		Sys: &syscall.SysProcAttr{
			Cloneflags:                 syscall.CLONE_NEWUSER,
			UidMappings:                sysMappings(uid),
			GidMappings:                sysMappings(gid),
			GidMappingsEnableSetgroups: false,
			// Stop at the execve: the child never runs /proc/self/exe.
			Ptrace: true,
			// Die with us should we be killed between start and reap.
			Pdeathsig: syscall.SIGKILL,
		},
	})
	if err != nil {
		if errors.Is(err, syscall.EINVAL) || errors.Is(err, syscall.EPERM) {
			return nil, fmt.Errorf("%w: the kernel refused the user namespace mappings uid %s gid %s: %w",
				errdefs.ErrInvalidArgument, Format(uid), Format(gid), err)
		}
		return nil, fmt.Errorf("start a process in a new user namespace (mappings uid %s gid %s): %w", Format(uid), Format(gid), err)
	}
	ns, openErr := os.OpenFile("/proc/"+strconv.Itoa(proc.Pid)+"/ns/user", os.O_RDONLY|syscall.O_CLOEXEC, 0)
	// The child is stopped (SIGTRAP at execve) or about to be: SIGKILL ends
	// a traced, stopped process too.
	killErr := proc.Kill()
	_, waitErr := proc.Wait()
	if openErr != nil {
		return nil, fmt.Errorf("open the user namespace of the holder process %d: %w", proc.Pid, openErr)
	}
	if err := errors.Join(killErr, waitErr); err != nil {
		ns.Close()
		return nil, fmt.Errorf("reap the user namespace holder process %d: %w", proc.Pid, err)
	}
	return ns, nil
}

// checkMappings applies the kernel's rules for one map, so the error can say
// which entry is wrong.
func checkMappings(kind string, maps []specs.LinuxIDMapping) error {
	if len(maps) == 0 {
		return fmt.Errorf("%w: an ID-mapped mount needs %s mappings, none were given", errdefs.ErrInvalidArgument, kind)
	}
	if len(maps) > maxExtents {
		return fmt.Errorf("%w: %d %s mappings, the kernel takes at most %d", errdefs.ErrInvalidArgument, len(maps), kind, maxExtents)
	}
	for i, m := range maps {
		if m.Size == 0 {
			return fmt.Errorf("%w: %s mapping %s has size 0", errdefs.ErrInvalidArgument, kind, format(m))
		}
		if uint64(m.ContainerID)+uint64(m.Size) > math.MaxUint32 || uint64(m.HostID)+uint64(m.Size) > math.MaxUint32 {
			return fmt.Errorf("%w: %s mapping %s goes past ID 4294967294", errdefs.ErrInvalidArgument, kind, format(m))
		}
		for _, o := range maps[:i] {
			if overlap(m.ContainerID, o.ContainerID, m.Size, o.Size) || overlap(m.HostID, o.HostID, m.Size, o.Size) {
				return fmt.Errorf("%w: %s mappings %s and %s overlap", errdefs.ErrInvalidArgument, kind, format(o), format(m))
			}
		}
	}
	return nil
}

func overlap(a, b, asize, bsize uint32) bool {
	return uint64(a) < uint64(b)+uint64(bsize) && uint64(b) < uint64(a)+uint64(asize)
}

func sysMappings(maps []specs.LinuxIDMapping) []syscall.SysProcIDMap {
	out := make([]syscall.SysProcIDMap, len(maps))
	for i, m := range maps {
		out[i] = syscall.SysProcIDMap{ContainerID: int(m.ContainerID), HostID: int(m.HostID), Size: int(m.Size)}
	}
	return out
}

func format(m specs.LinuxIDMapping) string {
	return fmt.Sprintf("{containerID %d, hostID %d, size %d}", m.ContainerID, m.HostID, m.Size)
}

// Format renders mappings for messages: [{containerID 0, hostID 1000,
// size 1} ...].
func Format(maps []specs.LinuxIDMapping) string {
	s := "["
	for i, m := range maps {
		if i > 0 {
			s += " "
		}
		s += format(m)
	}
	return s + "]"
}

// MountMappings says whether spec.mounts[i] is to be ID-mapped and with which
// mappings, following runc 1.2: a mount is ID-mapped when it has the "idmap"
// or "ridmap" option or its own uidMappings/gidMappings; it then uses its own
// mappings (both must be given), else the container's linux.uidMappings and
// linux.gidMappings. Only bind mounts (an option "bind" or "rbind", or type
// "bind") can be ID-mapped. Anything else is ErrInvalidArgument: a non-bind
// ID-mapped mount, one list without the other, or "idmap" with no mappings
// anywhere.
func MountMappings(s *specs.Spec, i int) (uid, gid []specs.LinuxIDMapping, mapped bool, err error) {
	if s == nil || i < 0 || i >= len(s.Mounts) {
		return nil, nil, false, fmt.Errorf("%w: no mounts[%d] in the spec", errdefs.ErrInvalidArgument, i)
	}
	m := s.Mounts[i]
	opts, err := spec.ParseMountOptions(m.Options)
	if err != nil {
		return nil, nil, false, fmt.Errorf("mounts[%d] (destination %q): %w", i, m.Destination, err)
	}
	own := len(m.UIDMappings) > 0 || len(m.GIDMappings) > 0
	if !opts.IDMap && !own {
		return nil, nil, false, nil
	}
	name := fmt.Sprintf("mounts[%d] (destination %q)", i, m.Destination)
	if opts.Flags&syscall.MS_BIND == 0 && m.Type != "bind" {
		return nil, nil, false, fmt.Errorf("%w: %s: only bind mounts can be ID-mapped (idmap, ridmap, uidMappings, gidMappings), this one has type %q and no bind or rbind option",
			errdefs.ErrInvalidArgument, name, m.Type)
	}
	if own {
		if len(m.UIDMappings) == 0 || len(m.GIDMappings) == 0 {
			return nil, nil, false, fmt.Errorf("%w: %s: uidMappings and gidMappings must be given together", errdefs.ErrInvalidArgument, name)
		}
		return slices.Clone(m.UIDMappings), slices.Clone(m.GIDMappings), true, nil
	}
	if s.Linux == nil || len(s.Linux.UIDMappings) == 0 || len(s.Linux.GIDMappings) == 0 {
		return nil, nil, false, fmt.Errorf("%w: %s asks for an ID-mapped mount (idmap/ridmap) but has no uidMappings/gidMappings of its own and the container has no user namespace mappings (linux.uidMappings, linux.gidMappings) to use instead",
			errdefs.ErrInvalidArgument, name)
	}
	return slices.Clone(s.Linux.UIDMappings), slices.Clone(s.Linux.GIDMappings), true, nil
}

// ForMounts opens one user namespace fd for every ID-mapped mount of s (see
// MountMappings), keyed by the mount's index in s.Mounts; mounts with the
// same mappings share one *os.File (and one namespace), so close each
// distinct file once — CloseAll does. On error nothing stays open.
func ForMounts(s *specs.Spec) (map[int]*os.File, error) {
	if s == nil {
		return nil, fmt.Errorf("%w: no spec", errdefs.ErrInvalidArgument)
	}
	files := map[int]*os.File{}
	type key struct{ uid, gid string }
	byMapping := map[key]*os.File{}
	for i := range s.Mounts {
		uid, gid, mapped, err := MountMappings(s, i)
		if err != nil {
			CloseAll(files)
			return nil, err
		}
		if !mapped {
			continue
		}
		k := key{Format(uid), Format(gid)}
		f := byMapping[k]
		if f == nil {
			if f, err = UsernsFD(uid, gid); err != nil {
				CloseAll(files)
				return nil, fmt.Errorf("mounts[%d] (destination %q): %w", i, s.Mounts[i].Destination, err)
			}
			byMapping[k] = f
		}
		files[i] = f
	}
	return files, nil
}

// CloseAll closes each distinct file of a ForMounts map once.
func CloseAll(files map[int]*os.File) {
	seen := map[*os.File]bool{}
	for _, f := range files {
		if !seen[f] {
			seen[f] = true
			f.Close()
		}
	}
}
