package server

import (
	"testing"

	"google.golang.org/protobuf/proto"

	skiffv1 "github.com/skiff-containers/skiff/api/skiff/v1"
	"github.com/skiff-containers/skiff/engine/containers"
)

// TestSecurityConfigRoundTrip: the resource and security settings survive
// API → engine → API.
func TestSecurityConfigRoundTrip(t *testing.T) {
	in := &skiffv1.ContainerConfig{
		Resources: &skiffv1.Resources{Memory: 64 << 20, MemorySwap: 128 << 20, MemoryReservation: 32 << 20, NanoCpus: 5e8, CpuShares: 512,
			CpuPeriod: 100000, CpuQuota: 50000, CpusetCpus: "0-1", CpusetMems: "0", PidsLimit: -1},
		Privileged: true, CapAdd: []string{"NET_ADMIN"}, CapDrop: []string{"ALL"},
		SecurityOpt: []string{"no-new-privileges", `seccomp={"defaultAction":"SCMP_ACT_ALLOW"}`},
		Devices:     []string{"/dev/fuse:/dev/fuse:rwm", "/dev/kmsg:/dev/k:r"}, ShmSize: 1 << 20,
		Sysctls: map[string]string{"net.ipv4.ip_forward": "1"}, GroupAdd: []string{"audio", "10"},
		Ulimits: []*skiffv1.Ulimit{{Name: "nofile", Soft: 1024, Hard: 2048}}, OomScoreAdj: -10,
	}
	var cc containers.CreateConfig
	secCreateConfig(&cc, in)
	if cc.Devices[1] != (containers.DeviceMapping{PathOnHost: "/dev/kmsg", PathInContainer: "/dev/k", CgroupPermissions: "r"}) || cc.Resources.PidsLimit != -1 {
		t.Fatalf("engine config %+v", cc)
	}
	out := &skiffv1.ContainerConfig{}
	secAPIConfig(out, cc)
	if !proto.Equal(in, out) {
		t.Fatalf("round trip:\n in %v\nout %v", in, out)
	}

	// Nothing set: no resources message.
	var empty containers.CreateConfig
	secCreateConfig(&empty, &skiffv1.ContainerConfig{})
	out = &skiffv1.ContainerConfig{}
	secAPIConfig(out, empty)
	if out.Resources != nil || out.Devices != nil || out.Ulimits != nil {
		t.Fatalf("empty config maps to %v", out)
	}
}
