package cgroups

import (
	"errors"
	"fmt"
	"os"
)

// oomKills reads the "oom_kill" counter of a key-value file in dir.
func oomKills(dir, file string) (uint64, error) {
	if dir == "" {
		return 0, nil
	}
	kv, err := readKeyValues(dir, file)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			if _, serr := os.Stat(dir); serr != nil {
				return 0, errNotFoundf("read OOM kill count: cgroup %s does not exist", dir)
			}
			return 0, nil
		}
		return 0, fmt.Errorf("read %s/%s: %w", dir, file, err)
	}
	return kv["oom_kill"], nil
}

func (m *v1Manager) OOMKillCount() (uint64, error) {
	return oomKills(m.paths["memory"], "memory.oom_control")
}

func (m *v2Manager) OOMKillCount() (uint64, error) {
	return oomKills(m.dir, "memory.events")
}
