package cgroups

import (
	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/skiff-containers/skiff/runtime/cgroups/devices"
)

// setDevices installs the device rules as an eBPF filter on the cgroup
// (cgroup v2 has no devices.allow/deny). No rules leaves the cgroup as it is.
func (m *v2Manager) setDevices(rules []specs.LinuxDeviceCgroup) error {
	if len(rules) == 0 {
		return nil
	}
	p, err := devices.Compile(rules)
	if err != nil {
		return err
	}
	return m.h.attachDeviceFilter(m.dir, p)
}
