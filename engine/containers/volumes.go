package containers

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"slices"
	"strings"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/skiff-containers/skiff/engine/metadata"
	"github.com/skiff-containers/skiff/engine/volumes"
	"github.com/skiff-containers/skiff/errdefs"
)

// Mount types of Mount.Type.
const (
	MountBind   = metadata.MountBind
	MountVolume = metadata.MountVolume
	MountTmpfs  = metadata.MountTmpfs
)

// Options of a Mount besides the mount options of the kernel.
const (
	// OptCreateHostPath makes a missing bind source directory (docker's
	// -v does; its --mount refuses a missing source).
	OptCreateHostPath = "create-host-path"
	// OptNonRecursive binds without the mounts below the source
	// (--mount bind-nonrecursive).
	OptNonRecursive = "nonrecursive"
	// OptNoCopy keeps a new volume empty instead of seeding it from the
	// image (-v name:/p:nocopy, --mount volume-nocopy).
	OptNoCopy = "nocopy"
)

// Mount is one -v, --mount or --tmpfs of CreateConfig; it mirrors
// skiff.v1 Mount.
type Mount struct {
	// Type is MountBind, MountVolume or MountTmpfs.
	Type string `json:"type"`
	// Source is the host path of a bind (absolute), the name of a volume
	// ("" for an anonymous one), nothing for a tmpfs.
	Source string `json:"source,omitempty"`
	// Target is the absolute path in the container.
	Target   string `json:"target"`
	ReadOnly bool   `json:"readOnly,omitempty"`
	// Options: a bind's propagation (shared, rshared, slave, rslave,
	// private, rprivate), OptCreateHostPath, OptNonRecursive; a volume's
	// OptNoCopy; a tmpfs's size=, mode=, nr_inodes=, uid=, gid= and
	// flags (exec, noexec, nosuid, …); "z"/"Z" anywhere (SELinux
	// relabelling: accepted, ignored, as this host has no SELinux).
	Options []string `json:"options,omitempty"`
}

// MountPoint is a mount of a Container as it was made.
type MountPoint struct {
	// Type is MountBind, MountVolume or MountTmpfs.
	Type string
	// Name is the volume's name (volumes only).
	Name string
	// Source is the host path: the bind's source or the volume's
	// directory.
	Source      string
	Destination string
	ReadOnly    bool
	Options     []string
}

var propagations = []string{"shared", "rshared", "slave", "rslave", "private", "rprivate"}

// tmpfsFlags are the flag options a tmpfs takes (docker's list).
var tmpfsFlags = []string{
	"ro", "rw", "exec", "noexec", "suid", "nosuid", "dev", "nodev", "sync", "async", "dirsync",
	"atime", "noatime", "diratime", "nodiratime", "relatime", "norelatime", "strictatime", "nostrictatime",
	"mand", "nomand", "remount",
}

var (
	tmpfsSize = regexp.MustCompile(`^[0-9]+[kKmMgG%]?$`)
	tmpfsMode = regexp.MustCompile(`^[0-7]{1,4}$`)
	tmpfsNum  = regexp.MustCompile(`^[0-9]+[kKmMgG]?$`)
)

// validateMounts checks the mounts of a CreateConfig before anything is
// made, in docker's words where docker has some, and returns them with
// clean paths, and warnings for what it accepts and ignores.
func validateMounts(in []Mount) ([]Mount, []string, error) {
	ms := slices.Clone(in)
	warnings, err := checkMounts(ms)
	if err != nil {
		return nil, nil, err
	}
	return ms, warnings, nil
}

func checkMounts(ms []Mount) ([]string, error) {
	var warnings []string
	seen := map[string]bool{}
	for i := range ms {
		m := &ms[i]
		fail := func(format string, a ...any) error {
			return fmt.Errorf("create container: invalid mount config for type %q: "+format+": %w", append([]any{m.Type}, append(a, errdefs.ErrInvalidArgument)...)...)
		}
		switch m.Type {
		case MountBind, MountVolume, MountTmpfs:
		case "":
			return nil, fmt.Errorf("create container: mount %d (target %q): no type: give bind, volume or tmpfs: %w", i, m.Target, errdefs.ErrInvalidArgument)
		default:
			return nil, fmt.Errorf("create container: mount type %q is not supported (want bind, volume or tmpfs): %w", m.Type, errdefs.ErrInvalidArgument)
		}
		if m.Target == "" {
			return nil, fail("field Target must not be empty")
		}
		if !path.IsAbs(m.Target) {
			return nil, fail("invalid mount path: '%s' mount path must be absolute", m.Target)
		}
		m.Target = path.Clean(m.Target)
		if m.Target == "/" {
			return nil, fail("invalid specification: destination can't be '/'")
		}
		if seen[m.Target] {
			return nil, fmt.Errorf("create container: duplicate mount point: %s: %w", m.Target, errdefs.ErrInvalidArgument)
		}
		seen[m.Target] = true
		switch m.Type {
		case MountBind:
			if m.Source == "" {
				return nil, fail("field Source must not be empty")
			}
			if !filepath.IsAbs(m.Source) {
				return nil, fail("invalid mount path: '%s' mount path must be absolute (give the host directory's absolute path)", m.Source)
			}
			m.Source = filepath.Clean(m.Source)
		case MountVolume:
			if m.Source != "" {
				if err := metadata.ValidateVolumeName(m.Source); err != nil {
					return nil, fmt.Errorf("create container: mount of %s: %w", m.Target, err)
				}
			}
		case MountTmpfs:
			if m.Source != "" {
				return nil, fail("field Source must be empty (a tmpfs has no source)")
			}
		}
		prop, label := false, false
		for _, o := range m.Options {
			switch {
			case o == "z" || o == "Z":
				if !label {
					warnings = append(warnings, fmt.Sprintf("mount %s: SELinux relabelling (%q) is ignored: this host has no SELinux", m.Target, o))
				}
				label = true
			case o == "ro" || o == "rw":
				if m.Type != MountTmpfs {
					m.ReadOnly = m.ReadOnly || o == "ro"
				}
			case m.Type == MountBind && slices.Contains(propagations, o):
				if prop {
					return nil, fail("more than one propagation mode in %q", strings.Join(m.Options, ","))
				}
				prop = true
			case m.Type == MountBind && (o == OptCreateHostPath || o == OptNonRecursive):
			case m.Type == MountVolume && o == OptNoCopy:
			case m.Type == MountTmpfs && slices.Contains(tmpfsFlags, o):
			case m.Type == MountTmpfs && strings.Contains(o, "="):
				if err := checkTmpfsOption(o); err != nil {
					return nil, fail("%v", err)
				}
			default:
				return nil, fail("invalid option %q for %s", o, m.Target)
			}
		}
	}
	return warnings, nil
}

func checkTmpfsOption(o string) error {
	k, v, _ := strings.Cut(o, "=")
	var re *regexp.Regexp
	switch k {
	case "size":
		re = tmpfsSize
	case "mode":
		re = tmpfsMode
	case "nr_inodes", "nr_blocks":
		re = tmpfsNum
	case "uid", "gid":
		re = regexp.MustCompile(`^[0-9]+$`)
	default:
		return fmt.Errorf("unknown tmpfs option %q (known: size, mode, nr_inodes, nr_blocks, uid, gid and the mount flags)", k)
	}
	if !re.MatchString(v) {
		return fmt.Errorf("invalid tmpfs option %q", o)
	}
	return nil
}

// madeMounts are the mounts Create made for a container.
type madeMounts struct {
	records []metadata.Mount
	spec    []specs.Mount
	// undo removes what was made: volumes created and host directories.
	undo []func()
}

// extraMounts returns the spec's mounts: the /etc files that no mount of
// the container replaces (docker skips its own then), then the container's.
func (mm *madeMounts) extraMounts(etc []specs.Mount) []specs.Mount {
	var out []specs.Mount
	for _, e := range etc {
		if !slices.ContainsFunc(mm.spec, func(m specs.Mount) bool { return m.Destination == path.Clean(e.Destination) }) {
			out = append(out, e)
		}
	}
	return append(out, mm.spec...)
}

func (mm *madeMounts) rollback() {
	for i := len(mm.undo) - 1; i >= 0; i-- {
		mm.undo[i]()
	}
}

// makeMounts makes the mounts of cfg (validated) and of the image's
// VOLUMEs that none covers: named volumes created if missing, anonymous
// volumes, both seeded from the image (mounted at rootfs) when new, bind
// sources checked (or made, with OptCreateHostPath). On failure what it
// made is undone; otherwise the caller runs rollback if it fails later.
func (s *Service) makeMounts(ctx context.Context, ns string, cfg CreateConfig, img Image, rootfs string) (_ *madeMounts, retErr error) {
	mm := &madeMounts{}
	defer func() {
		if retErr != nil {
			mm.rollback()
		}
	}()
	all := slices.Clone(cfg.Mounts)
	for _, v := range slices.Sorted(maps.Keys(img.Config.Config.Volumes)) {
		if !path.IsAbs(v) {
			return nil, fmt.Errorf("image %s: VOLUME %q is not an absolute path: %w", img.Name, v, errdefs.ErrInvalidArgument)
		}
		v = path.Clean(v)
		if v == "/" || slices.ContainsFunc(all, func(m Mount) bool { return m.Target == v }) {
			continue
		}
		all = append(all, Mount{Type: MountVolume, Target: v})
	}
	for _, m := range all {
		rec := metadata.Mount{Type: m.Type, Destination: m.Target, ReadOnly: m.ReadOnly}
		sm := specs.Mount{Destination: m.Target}
		switch m.Type {
		case MountBind, MountVolume:
			if m.Type == MountBind {
				if err := s.bindSource(m, mm); err != nil {
					return nil, err
				}
				rec.Source = m.Source
			} else {
				name, err := s.volume(ctx, ns, m, img, rootfs, mm)
				if err != nil {
					return nil, err
				}
				rec.Name, rec.Source = name, s.cfg.Volumes.Path(ns, name)
			}
			bind, prop := "rbind", "rprivate"
			for _, o := range m.Options {
				switch {
				case o == OptNonRecursive:
					bind = "bind"
				case slices.Contains(propagations, o):
					prop = o
				}
			}
			sm.Type, sm.Source = "bind", rec.Source
			sm.Options = []string{bind, prop}
			rec.Options = []string{prop}
			if bind == "bind" {
				rec.Options = append(rec.Options, OptNonRecursive)
			}
		case MountTmpfs:
			sm.Type, sm.Source = "tmpfs", "tmpfs"
			sm.Options = tmpfsOptions(m.Options)
			rec.Options = sm.Options
		}
		if m.ReadOnly {
			sm.Options = append(sm.Options, "ro")
		}
		mm.records = append(mm.records, rec)
		mm.spec = append(mm.spec, sm)
	}
	return mm, nil
}

// tmpfsOptions are docker's: noexec, nosuid, nodev, then the user's, a
// later option replacing an earlier one of the same kind.
func tmpfsOptions(user []string) []string {
	opposite := map[string]string{
		"exec": "noexec", "suid": "nosuid", "dev": "nodev", "ro": "rw", "atime": "noatime",
		"diratime": "nodiratime", "relatime": "norelatime", "strictatime": "nostrictatime", "mand": "nomand", "sync": "async",
	}
	for k, v := range opposite {
		opposite[v] = k
	}
	out := []string{"noexec", "nosuid", "nodev"}
	for _, o := range user {
		if o == "z" || o == "Z" {
			continue
		}
		key, _, isData := strings.Cut(o, "=")
		out = slices.DeleteFunc(out, func(e string) bool {
			if isData {
				k, _, _ := strings.Cut(e, "=")
				return k == key
			}
			return e == o || e == opposite[o]
		})
		out = append(out, o)
	}
	return out
}

// bindSource checks that a bind's source exists; with OptCreateHostPath
// it makes a missing directory (removed again by rollback).
func (s *Service) bindSource(m Mount, mm *madeMounts) error {
	if _, err := os.Stat(m.Source); err == nil {
		return nil
	} else if !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("create container: bind source %s: %w", m.Source, err)
	}
	if !slices.Contains(m.Options, OptCreateHostPath) {
		return fmt.Errorf("create container: invalid mount config for type \"bind\": bind source path does not exist: %s (create it first, or use -v, which creates it): %w", m.Source, errdefs.ErrInvalidArgument)
	}
	var missing []string
	for p := m.Source; ; p = filepath.Dir(p) {
		if _, err := os.Lstat(p); err == nil || p == "/" {
			break
		}
		missing = append(missing, p)
	}
	if err := os.MkdirAll(m.Source, 0o755); err != nil {
		for _, p := range missing {
			os.Remove(p)
		}
		return fmt.Errorf("create container: make the bind source directory %s: %w", m.Source, err)
	}
	s.log.Info("made a missing bind source directory", "path", m.Source)
	mm.undo = append(mm.undo, func() {
		for _, p := range missing { // deepest first; only empty ones go
			os.Remove(p)
		}
	})
	return nil
}

// volume gets or creates the volume of m (anonymous without a source)
// and seeds it from the image unless OptNoCopy; it returns its name.
func (s *Service) volume(ctx context.Context, ns string, m Mount, img Image, rootfs string, mm *madeMounts) (string, error) {
	v, created, err := s.cfg.Volumes.Create(ctx, ns, m.Source, volumes.CreateOptions{Anonymous: m.Source == ""})
	if err != nil {
		return "", fmt.Errorf("create container: volume for %s: %w", m.Target, err)
	}
	if created {
		mm.undo = append(mm.undo, func() {
			if err := s.cfg.Volumes.Remove(context.Background(), ns, v.Name, true); err != nil && !errdefs.IsFailedPrecondition(err) {
				s.log.Warn("undo create: remove volume", "namespace", ns, "volume", v.Name, "err", err)
			}
		})
	}
	if !slices.Contains(m.Options, OptNoCopy) {
		if _, err := s.cfg.Volumes.Seed(ctx, ns, v.Name, rootfs, m.Target); err != nil {
			return "", fmt.Errorf("create container: %w", err)
		}
	}
	return v.Name, nil
}

// releaseVolumes is called once the container's record is gone: with
// removeAnonymous (rm -v, --rm) its anonymous volumes are removed, unless
// another container mounts them too (then, as docker, they stay).
func (s *Service) releaseVolumes(ctx context.Context, ns string, rec metadata.Container, removeAnonymous bool) {
	if !removeAnonymous {
		return
	}
	for _, m := range rec.Mounts {
		if m.Type != MountVolume {
			continue
		}
		removed, err := s.cfg.Volumes.RemoveAnonymous(ctx, ns, m.Name)
		switch {
		case err != nil:
			s.log.Warn("remove an anonymous volume of a removed container", "namespace", ns, "id", rec.ID, "volume", m.Name, "err", err)
		case removed:
			s.log.Debug("removed an anonymous volume with its container", "namespace", ns, "id", rec.ID, "volume", m.Name)
		}
	}
}

// mountPoints turns a record's mounts into the Container's.
func mountPoints(ms []metadata.Mount) []MountPoint {
	var out []MountPoint
	for _, m := range ms {
		out = append(out, MountPoint{
			Type: m.Type, Name: m.Name, Source: m.Source, Destination: m.Destination,
			ReadOnly: m.ReadOnly, Options: slices.Clone(m.Options),
		})
	}
	return out
}
