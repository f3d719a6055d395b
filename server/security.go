package server

import (
	"strings"

	skiffv1 "github.com/skiff-containers/skiff/api/skiff/v1"
	"github.com/skiff-containers/skiff/engine/containers"
)

// engineResources maps the API's resources (nil: none) to the engine's.
func engineResources(r *skiffv1.Resources) containers.Resources {
	return containers.Resources{
		Memory:            r.GetMemory(),
		MemorySwap:        r.GetMemorySwap(),
		MemoryReservation: r.GetMemoryReservation(),
		NanoCPUs:          r.GetNanoCpus(),
		CPUShares:         r.GetCpuShares(),
		CPUPeriod:         r.GetCpuPeriod(),
		CPUQuota:          r.GetCpuQuota(),
		CpusetCpus:        r.GetCpusetCpus(),
		CpusetMems:        r.GetCpusetMems(),
		PidsLimit:         r.GetPidsLimit(),
	}
}

// apiResources maps the engine's resources back; nil when none is set.
func apiResources(r containers.Resources) *skiffv1.Resources {
	if r.IsZero() {
		return nil
	}
	return &skiffv1.Resources{
		Memory:            r.Memory,
		MemorySwap:        r.MemorySwap,
		MemoryReservation: r.MemoryReservation,
		NanoCpus:          r.NanoCPUs,
		CpuShares:         r.CPUShares,
		CpuPeriod:         r.CPUPeriod,
		CpuQuota:          r.CPUQuota,
		CpusetCpus:        r.CpusetCpus,
		CpusetMems:        r.CpusetMems,
		PidsLimit:         r.PidsLimit,
	}
}

// secCreateConfig copies the resource and security settings of c into cc.
// A device is "host[:container[:permissions]]" (docker's --device; the
// container path defaults to the host's, the permissions to rwm).
func secCreateConfig(cc *containers.CreateConfig, c *skiffv1.ContainerConfig) {
	cc.Resources = engineResources(c.GetResources())
	cc.Privileged = c.GetPrivileged()
	cc.CapAdd = c.GetCapAdd()
	cc.CapDrop = c.GetCapDrop()
	cc.SecurityOpt = c.GetSecurityOpt()
	cc.ShmSize = c.GetShmSize()
	cc.Sysctls = c.GetSysctls()
	cc.GroupAdd = c.GetGroupAdd()
	cc.OOMScoreAdj = int(c.GetOomScoreAdj())
	for _, d := range c.GetDevices() {
		host, rest, _ := strings.Cut(d, ":")
		ctr, perms, _ := strings.Cut(rest, ":")
		cc.Devices = append(cc.Devices, containers.DeviceMapping{PathOnHost: host, PathInContainer: ctr, CgroupPermissions: perms})
	}
	for _, u := range c.GetUlimits() {
		cc.Ulimits = append(cc.Ulimits, containers.Ulimit{Name: u.GetName(), Soft: u.GetSoft(), Hard: u.GetHard()})
	}
}

// secAPIConfig copies the resource and security settings of cc into out.
func secAPIConfig(out *skiffv1.ContainerConfig, cc containers.CreateConfig) {
	out.Resources = apiResources(cc.Resources)
	out.Privileged = cc.Privileged
	out.CapAdd = cc.CapAdd
	out.CapDrop = cc.CapDrop
	out.SecurityOpt = cc.SecurityOpt
	out.ShmSize = cc.ShmSize
	out.Sysctls = cc.Sysctls
	out.GroupAdd = cc.GroupAdd
	out.OomScoreAdj = int32(cc.OOMScoreAdj)
	for _, d := range cc.Devices {
		out.Devices = append(out.Devices, d.PathOnHost+":"+d.PathInContainer+":"+d.CgroupPermissions)
	}
	for _, u := range cc.Ulimits {
		out.Ulimits = append(out.Ulimits, &skiffv1.Ulimit{Name: u.Name, Soft: u.Soft, Hard: u.Hard})
	}
}
