package container

import (
	specs "github.com/opencontainers/runtime-spec/specs-go"
)

func devRule(typ string, major, minor int64, access string) specs.LinuxDeviceCgroup {
	r := specs.LinuxDeviceCgroup{Allow: true, Type: typ, Access: access}
	if major >= 0 {
		r.Major = &major
	}
	if minor >= 0 {
		r.Minor = &minor
	}
	return r
}

// defaultAllowedDevices are the devices every container may use whatever its
// device rules say, as with runc: mknod of anything (access is still
// governed by the rules), the standard nodes, ptys and tun.
func defaultAllowedDevices() []specs.LinuxDeviceCgroup {
	return []specs.LinuxDeviceCgroup{
		devRule("c", -1, -1, "m"),
		devRule("b", -1, -1, "m"),
		devRule("c", 1, 3, "rwm"),    // null
		devRule("c", 1, 8, "rwm"),    // random
		devRule("c", 1, 7, "rwm"),    // full
		devRule("c", 5, 0, "rwm"),    // tty
		devRule("c", 1, 5, "rwm"),    // zero
		devRule("c", 1, 9, "rwm"),    // urandom
		devRule("c", 136, -1, "rwm"), // /dev/pts/*
		devRule("c", 5, 2, "rwm"),    // ptmx
		devRule("c", 10, 200, "rwm"), // tun
	}
}

// effectiveResources returns the resources to apply to the container's
// cgroup: the spec's, with the device rules completed as runc completes
// them: the spec's rules, then the default devices, then every device node
// of linux.devices. The spec itself is not changed.
func effectiveResources(l *specs.Linux) *specs.LinuxResources {
	var r specs.LinuxResources
	if l.Resources != nil {
		r = *l.Resources
	}
	devs := append([]specs.LinuxDeviceCgroup(nil), r.Devices...)
	devs = append(devs, defaultAllowedDevices()...)
	for _, d := range l.Devices {
		typ := d.Type
		if typ == "p" {
			continue // the device cgroup governs char and block devices only
		}
		if typ == "u" {
			typ = "c"
		}
		devs = append(devs, devRule(typ, d.Major, d.Minor, "rwm"))
	}
	r.Devices = devs
	return &r
}
