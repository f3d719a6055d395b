package seccomp

import (
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/opencontainers/runtime-spec/specs-go"

	"github.com/skiff-containers/skiff/errdefs"
)

func TestResolveProfile(t *testing.T) {
	tests := []struct {
		name  string
		data  string
		caps  []string
		check func(t *testing.T, p *specs.LinuxSeccomp)
		err   string
	}{
		{name: "empty is no filter", data: `{}`, check: func(t *testing.T, p *specs.LinuxSeccomp) {
			if p != nil {
				t.Fatalf("got %+v, want nil", p)
			}
		}},
		{name: "OCI section passes through", data: `{"defaultAction":"SCMP_ACT_ERRNO","defaultErrnoRet":38,"architectures":["SCMP_ARCH_X86_64"],"flags":["SECCOMP_FILTER_FLAG_LOG"],"syscalls":[{"names":["read"],"action":"SCMP_ACT_ALLOW"}]}`,
			check: func(t *testing.T, p *specs.LinuxSeccomp) {
				if p.DefaultAction != specs.ActErrno || p.DefaultErrnoRet == nil || *p.DefaultErrnoRet != 38 ||
					!slices.Equal(p.Architectures, []specs.Arch{specs.ArchX86_64}) || !slices.Equal(p.Flags, []specs.LinuxSeccompFlag{specs.LinuxSeccompFlagLog}) ||
					len(p.Syscalls) != 1 || p.Syscalls[0].Names[0] != "read" {
					t.Fatalf("got %+v", p)
				}
			}},
		{name: "capability condition met", caps: []string{"CAP_SYS_ADMIN"},
			data: `{"defaultAction":"SCMP_ACT_ERRNO","syscalls":[{"names":["mount"],"action":"SCMP_ACT_ALLOW","includes":{"caps":["CAP_SYS_ADMIN"]}}]}`,
			check: func(t *testing.T, p *specs.LinuxSeccomp) {
				if len(p.Syscalls) != 1 {
					t.Fatalf("got %+v, want the mount rule", p)
				}
			}},
		{name: "capability condition not met",
			data: `{"defaultAction":"SCMP_ACT_ERRNO","syscalls":[{"name":"mount","action":"SCMP_ACT_ALLOW","includes":{"caps":["CAP_SYS_ADMIN"]}}]}`,
			check: func(t *testing.T, p *specs.LinuxSeccomp) {
				if len(p.Syscalls) != 0 {
					t.Fatalf("got %+v, want no rule", p)
				}
			}},
		{name: "not JSON", data: `[`, err: "decode the profile"},
		{name: "architectures and archMap", data: `{"defaultAction":"SCMP_ACT_ERRNO","architectures":["SCMP_ARCH_X86"],"archMap":[{"architecture":"SCMP_ARCH_X86_64"}]}`, err: "use either 'architectures' or 'archMap'"},
		{name: "name and names", data: `{"defaultAction":"SCMP_ACT_ERRNO","syscalls":[{"name":"read","names":["write"],"action":"SCMP_ACT_ALLOW"}]}`, err: "use either 'name' or 'names'"},
		{name: "bad minKernel", data: `{"defaultAction":"SCMP_ACT_ERRNO","syscalls":[{"names":["read"],"action":"SCMP_ACT_ALLOW","includes":{"minKernel":"x"}}]}`, err: "minKernel"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p, err := ResolveProfile([]byte(tc.data), tc.caps)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) || !errors.Is(err, errdefs.ErrInvalidArgument) {
					t.Fatalf("err %v, want %q (invalid argument)", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			tc.check(t, p)
		})
	}
}
