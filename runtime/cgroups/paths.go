package cgroups

import (
	"fmt"
	"path/filepath"
	"strings"

	"github.com/skiff-containers/skiff/errdefs"
)

// v1Subsystems are the v1 controllers a container joins, in runc's order
// (which is also the order Set writes them in: cpuset before memory etc.).
func v1Subsystems() []string {
	return []string{
		"cpuset", "devices", "memory", "cpu", "cpuacct", "pids", "blkio", "hugetlb",
		"net_cls", "net_prio", "perf_event", "freezer", "rdma", "name=systemd",
	}
}

// parseSelfCgroup parses /proc/self/cgroup into controller → cgroup path.
// The v2 entry ("0::/path") is returned under the key "".
func parseSelfCgroup(content string) (map[string]string, error) {
	out := map[string]string{}
	for _, line := range strings.Split(content, "\n") {
		if line == "" {
			continue
		}
		parts := strings.SplitN(line, ":", 3)
		if len(parts) != 3 {
			return nil, fmt.Errorf("parse /proc/self/cgroup: bad line %q", line)
		}
		if parts[1] == "" {
			if parts[0] == "0" {
				out[""] = parts[2]
			}
			continue
		}
		for _, c := range strings.Split(parts[1], ",") {
			out[c] = parts[2]
		}
	}
	return out, nil
}

// v1Paths resolves the directory of the cgroup inner (already cleaned) in
// each mounted v1 hierarchy under root, as runc's cgroupfs driver does: an
// absolute inner path is joined to each mountpoint, a relative one to the
// runtime's own cgroup in that hierarchy. On a hybrid host the unified
// hierarchy gets the key "".
func v1Paths(h host, root, inner string, mode Mode) (map[string]string, error) {
	mounts, err := h.cgroupMounts(root)
	if err != nil {
		return nil, fmt.Errorf("find cgroup v1 mounts under %s: %w", root, err)
	}
	byCtrl := map[string]cgroupMount{}
	for _, m := range mounts {
		for _, c := range m.controllers {
			if _, dup := byCtrl[c]; !dup {
				byCtrl[c] = m
			}
		}
	}
	if len(byCtrl) == 0 {
		return nil, fmt.Errorf("no cgroup v1 hierarchy is mounted under %s; mount the controllers (or use a cgroup v2 host): %w", root, errdefs.ErrFailedPrecondition)
	}
	var own map[string]string
	if !filepath.IsAbs(inner) {
		s, err := h.selfCgroup()
		if err != nil {
			return nil, fmt.Errorf("read the runtime's own cgroup (/proc/self/cgroup): %w", err)
		}
		if own, err = parseSelfCgroup(s); err != nil {
			return nil, err
		}
	}
	paths := map[string]string{}
	for _, name := range v1Subsystems() {
		m, ok := byCtrl[name]
		if !ok {
			continue
		}
		if filepath.IsAbs(inner) {
			paths[name] = filepath.Join(m.mountpoint, inner)
			continue
		}
		mine, ok := own[name]
		if !ok {
			return nil, fmt.Errorf("cgroup path %q is relative but /proc/self/cgroup has no %s entry: %w", inner, name, errdefs.ErrFailedPrecondition)
		}
		rel, err := filepath.Rel(m.root, mine)
		if err != nil || rel == ".." || hasDotDotPrefix(rel) {
			return nil, fmt.Errorf("cgroup path %q is relative but the runtime's own %s cgroup %s is outside the mounted hierarchy %s (root %s); use an absolute cgroupsPath: %w", inner, name, mine, m.mountpoint, m.root, errdefs.ErrFailedPrecondition)
		}
		paths[name] = filepath.Join(m.mountpoint, rel, inner)
	}
	if mode == Hybrid {
		u := filepath.Join(root, "unified")
		if filepath.IsAbs(inner) {
			paths[""] = filepath.Join(u, inner)
		} else {
			mine, ok := own[""]
			if !ok {
				mine = "/"
			}
			paths[""] = filepath.Join(u, mine, inner)
		}
	}
	return paths, nil
}

// v2Path resolves the directory of the cgroup inner on a unified host, as
// runc's fs2 driver: absolute → under root; relative → under the parent of
// the runtime's own cgroup (its own one most probably has processes, so no
// controllers could be enabled below it).
func v2Path(h host, root, inner string) (string, error) {
	if filepath.IsAbs(inner) {
		return filepath.Join(root, inner), nil
	}
	s, err := h.selfCgroup()
	if err != nil {
		return "", fmt.Errorf("read the runtime's own cgroup (/proc/self/cgroup): %w", err)
	}
	own, err := parseSelfCgroup(s)
	if err != nil {
		return "", err
	}
	mine, ok := own[""]
	if !ok {
		return "", fmt.Errorf("cgroup path %q is relative but /proc/self/cgroup has no cgroup v2 (0::) entry: %w", inner, errdefs.ErrFailedPrecondition)
	}
	return filepath.Join(root, filepath.Dir(cleanPath(mine)), inner), nil
}
