// Package cgroups owns creating, configuring, freezing, reading and removing
// a container's cgroup, on cgroup v1 (legacy and hybrid hierarchies) and on
// cgroup v2 (the unified hierarchy). It translates the OCI runtime-spec
// linux.resources into cgroupfs writes the way runc 1.1 does, including runc's
// v1→v2 conversions (cpu shares → cpu.weight, memory+swap → memory.swap.max,
// blkio weight → io.weight).
//
// It must not create processes or namespaces: callers hand it the pid of a
// process that already exists.
//
// Paths follow runc's cgroupfs driver: an absolute linux.cgroupsPath is taken
// from the root of each hierarchy, a relative one (and the container id when
// cgroupsPath is empty) from the runtime's own cgroup in that hierarchy (on a
// pure v2 host, from the parent of the runtime's own cgroup, as runc does).
package cgroups

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/skiff-containers/skiff/errdefs"
)

// DefaultRoot is where cgroupfs is mounted on a normal host.
const DefaultRoot = "/sys/fs/cgroup"

// Mode is the cgroup layout of a host.
type Mode int

const (
	// Legacy is cgroup v1 only.
	Legacy Mode = iota + 1
	// Hybrid is cgroup v1 controllers plus a cgroup2 mount (usually with no
	// controllers) at <root>/unified; the v1 hierarchies do the work.
	Hybrid
	// Unified is cgroup v2 only, mounted at the root.
	Unified
)

func (m Mode) String() string {
	switch m {
	case Legacy:
		return "legacy"
	case Hybrid:
		return "hybrid"
	case Unified:
		return "unified"
	}
	return fmt.Sprintf("Mode(%d)", int(m))
}

// FreezerState is the state of a cgroup's freezer, spelled as runc's.
type FreezerState string

const (
	// Undefined means the freezer is not available (no freezer controller,
	// or no cgroup.freeze on an old v2 kernel).
	Undefined FreezerState = ""
	// Frozen means every process of the cgroup is frozen.
	Frozen FreezerState = "FROZEN"
	// Thawed means the cgroup's processes run (or the cgroup is frozen only
	// because an ancestor is).
	Thawed FreezerState = "THAWED"
)

// Config describes the cgroup of one container.
type Config struct {
	// Root is the cgroupfs root, DefaultRoot normally (empty means DefaultRoot).
	Root string
	// Path is linux.cgroupsPath: absolute, relative, or empty (then ID is used
	// relative to the runtime's own cgroup, as runc does).
	Path string
	// ID is the container id, used for the path when Path is empty.
	ID string
	// Resources are applied at Apply (cpuset and realtime, which must be in
	// place before a process can join) and by Set.
	Resources *specs.LinuxResources
}

// Manager manages one container's cgroup.
type Manager interface {
	// Apply creates the cgroup directories (mkdir -p) and moves pid in.
	Apply(pid int) error
	// Set writes resources; used at create and by `update`. Nil is a no-op.
	Set(r *specs.LinuxResources) error
	// Paths are the cgroup directories: on v1, controller name → absolute
	// directory (plus "" for the unified hierarchy on hybrid hosts); on v2,
	// "" → absolute directory. They are persisted in the container state and
	// fed back to Load.
	Paths() map[string]string
	// Pids lists every process in the cgroup and its descendants.
	Pids() ([]int, error)
	// Freeze freezes the cgroup and waits until it is frozen.
	Freeze() error
	// Thaw thaws the cgroup.
	Thaw() error
	// State reports the freezer state.
	State() (FreezerState, error)
	// Stats reads usage counters, shaped as runc's `events --stats` data.
	Stats() (*Stats, error)
	// OOMKillCount is how many processes of the cgroup the OOM killer has
	// killed (v1 memory.oom_control, v2 memory.events "oom_kill"); 0 when the
	// memory controller is not there.
	OOMKillCount() (uint64, error)
	// Destroy removes the cgroup directories (nested ones first), retrying
	// on EBUSY for a while. It is not an error if they are already gone.
	Destroy() error
	// Mode reports which cgroup layout the manager drives.
	Mode() Mode
}

// New resolves the cgroup path for c on the host and validates c.Resources.
// Nothing is created until Apply.
func New(c Config) (Manager, error) {
	return newManager(c, osHost{})
}

// Load rebuilds a manager from the paths a previous Manager.Paths returned.
func Load(root string, paths map[string]string) (Manager, error) {
	return loadManager(root, paths, osHost{})
}

// DetectMode reports the cgroup layout under root, as runc does: root itself
// being a cgroup2 filesystem means Unified; otherwise a cgroup2 filesystem at
// root/unified means Hybrid; otherwise Legacy.
func DetectMode(root string) (Mode, error) {
	return detectMode(osHost{}, root)
}

func detectMode(h host, root string) (Mode, error) {
	if root == "" {
		root = DefaultRoot
	}
	t, err := h.statfs(root)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return 0, fmt.Errorf("detect cgroup mode: cgroupfs root %s does not exist; mount cgroupfs there or pass the right root: %w", root, errdefs.ErrNotFound)
		}
		return 0, fmt.Errorf("detect cgroup mode: statfs %s: %w", root, err)
	}
	if t == cgroup2Magic {
		return Unified, nil
	}
	ut, err := h.statfs(filepath.Join(root, "unified"))
	if err == nil && ut == cgroup2Magic {
		return Hybrid, nil
	}
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return 0, fmt.Errorf("detect cgroup mode: statfs %s: %w", filepath.Join(root, "unified"), err)
	}
	return Legacy, nil
}

func newManager(c Config, h host) (Manager, error) {
	if c.Root == "" {
		c.Root = DefaultRoot
	}
	c.Root = filepath.Clean(c.Root)
	mode, err := detectMode(h, c.Root)
	if err != nil {
		return nil, err
	}
	inner := cleanPath(c.Path)
	if inner == "" {
		id := cleanPath(c.ID)
		if id == "" || id == "/" {
			return nil, fmt.Errorf("cgroup config: neither cgroupsPath nor a container id given; set linux.cgroupsPath or the id: %w", errdefs.ErrInvalidArgument)
		}
		// As runc: the id is a name relative to the runtime's own cgroup.
		inner = id
	}
	if inner == "/" {
		return nil, fmt.Errorf("cgroup config: cgroupsPath %q is the root cgroup; a container needs its own cgroup: %w", c.Path, errdefs.ErrInvalidArgument)
	}
	if err := validateResources(c.Resources, mode); err != nil {
		return nil, err
	}
	if mode == Unified {
		m, err := newV2(c, inner, h)
		if err != nil {
			return nil, err
		}
		return m, nil
	}
	m, err := newV1(c, inner, mode, h)
	if err != nil {
		return nil, err
	}
	return m, nil
}

func loadManager(root string, paths map[string]string, h host) (Manager, error) {
	if root == "" {
		root = DefaultRoot
	}
	root = filepath.Clean(root)
	if len(paths) == 0 {
		return nil, fmt.Errorf("load cgroup: no cgroup paths recorded in the container state: %w", errdefs.ErrInvalidArgument)
	}
	for k, p := range paths {
		if !filepath.IsAbs(p) || !isUnder(root, p) {
			return nil, fmt.Errorf("load cgroup: recorded path %q for %q is not under the cgroupfs root %s: %w", p, k, root, errdefs.ErrInvalidArgument)
		}
	}
	if len(paths) == 1 {
		if p, ok := paths[""]; ok && !isUnder(filepath.Join(root, "unified"), p) {
			return &v2Manager{root: root, dir: p, h: h}, nil
		}
	}
	m := &v1Manager{root: root, paths: map[string]string{}, h: h, mode: Legacy}
	for k, p := range paths {
		m.paths[k] = p
	}
	if _, ok := paths[""]; ok {
		m.mode = Hybrid
	}
	return m, nil
}

// isUnder reports whether p is dir or inside it (both cleaned, absolute).
func isUnder(dir, p string) bool {
	rel, err := filepath.Rel(dir, p)
	if err != nil {
		return false
	}
	return rel == "." || (rel != ".." && !filepath.IsAbs(rel) && !hasDotDotPrefix(rel))
}

func hasDotDotPrefix(rel string) bool {
	return len(rel) >= 3 && rel[:3] == "../"
}

// cleanPath makes p safe to join under a root, as runc's CleanPath: an
// absolute path is cleaned lexically; a relative one is cleaned as if rooted,
// so that it can never climb out with "..".
func cleanPath(p string) string {
	if p == "" {
		return ""
	}
	p = filepath.Clean(p)
	if !filepath.IsAbs(p) {
		p = filepath.Clean(string(os.PathSeparator) + p)
		p, _ = filepath.Rel(string(os.PathSeparator), p)
		if p == "." {
			return ""
		}
	}
	return p
}
