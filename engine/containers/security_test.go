package containers

import (
	"errors"
	"reflect"
	"strings"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/skiff-containers/skiff/errdefs"
	"github.com/skiff-containers/skiff/image/specgen"
)

func TestParseSecurityOpts(t *testing.T) {
	tests := []struct {
		in   []string
		want securityOptions
		err  string
	}{
		{in: nil},
		{in: []string{"no-new-privileges"}, want: securityOptions{noNewPrivileges: true}},
		{in: []string{"no-new-privileges=true", "no-new-privileges:false"}, want: securityOptions{}},
		{in: []string{"seccomp=unconfined"}, want: securityOptions{seccomp: specgen.SeccompUnconfined}},
		{in: []string{"seccomp:builtin"}, want: securityOptions{seccomp: specgen.SeccompBuiltin}},
		{in: []string{`seccomp={"defaultAction":"SCMP_ACT_ALLOW"}`}, want: securityOptions{seccomp: `{"defaultAction":"SCMP_ACT_ALLOW"}`}},
		{in: []string{"label=disable", "label:disable", "apparmor=unconfined", "disable"}},
		{in: []string{"seccomp=/etc/profile.json"}, err: "not JSON"},
		{in: []string{"no-new-privileges=maybe"}, err: `invalid --security-opt "no-new-privileges=maybe"`},
		{in: []string{"bogus=1"}, err: `invalid --security-opt "bogus=1"`},
		{in: []string{"nonsense"}, err: `invalid --security-opt "nonsense"`},
	}
	for _, tc := range tests {
		got, err := parseSecurityOpts(tc.in)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) || !errdefs.IsInvalidArgument(err) {
				t.Errorf("%q: err %v, want %q", tc.in, err, tc.err)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("%q: %+v, %v; want %+v", tc.in, got, err, tc.want)
		}
	}
	// A label or an AppArmor profile is ignored where docker ignores it
	// (a host without SELinux or AppArmor), else refused: skiff applies
	// neither.
	for _, tc := range []struct {
		opt     string
		hostHas bool
	}{
		{"label=type:svirt_t", selinuxEnabled()},
		{"label:level:s0:c100,c200", selinuxEnabled()},
		{"apparmor=docker-default", apparmorEnabled()},
	} {
		_, err := parseSecurityOpts([]string{tc.opt})
		if tc.hostHas != errors.Is(err, errdefs.ErrNotImplemented) || !tc.hostHas && err != nil {
			t.Errorf("%q (host has it: %v): %v", tc.opt, tc.hostHas, err)
		}
	}
}

func TestValidateSecurity(t *testing.T) {
	tests := []struct {
		name  string
		cfg   CreateConfig
		check func(t *testing.T, cfg CreateConfig)
		err   string
	}{
		{name: "defaults", check: func(t *testing.T, cfg CreateConfig) {
			if cfg.ShmSize != 64<<20 || !cfg.Resources.IsZero() {
				t.Fatalf("shm %d resources %+v", cfg.ShmSize, cfg.Resources)
			}
		}},
		{name: "swap defaults to twice the memory", cfg: CreateConfig{Resources: Resources{Memory: 64 << 20}, ShmSize: 1 << 20},
			check: func(t *testing.T, cfg CreateConfig) {
				if cfg.ShmSize != 1<<20 {
					t.Fatalf("shm %d", cfg.ShmSize)
				}
				want := int64(128 << 20) // docker: twice the memory
				if !swapLimitSupported() {
					want = 0 // with a warning
				}
				if cfg.Resources.MemorySwap != want {
					t.Fatalf("memory swap %d, want %d", cfg.Resources.MemorySwap, want)
				}
			}},
		{name: "swap kept", cfg: CreateConfig{Resources: Resources{Memory: 64 << 20, MemorySwap: -1}}, check: func(t *testing.T, cfg CreateConfig) {
			if want := map[bool]int64{true: -1, false: 0}[swapLimitSupported()]; cfg.Resources.MemorySwap != want {
				t.Fatalf("memory swap %d, want %d", cfg.Resources.MemorySwap, want)
			}
		}},
		{name: "namespaced sysctls", cfg: CreateConfig{Sysctls: map[string]string{"net.core.somaxconn": "1024", "kernel.shmmax": "1", "fs.mqueue.msg_max": "2"}}},
		{name: "ipc sysctl with host network", cfg: CreateConfig{NetworkMode: "host", Sysctls: map[string]string{"kernel.sem": "1 2 3 4"}}},
		{name: "memory too small", cfg: CreateConfig{Resources: Resources{Memory: 1 << 10}}, err: "minimum memory limit allowed is 6MB"},
		{name: "swap without memory", cfg: CreateConfig{Resources: Resources{MemorySwap: 64 << 20}}, err: "always set the Memory limit"},
		{name: "swap below memory", cfg: CreateConfig{Resources: Resources{Memory: 64 << 20, MemorySwap: 32 << 20}}, err: "memoryswap limit should be larger"},
		{name: "reservation above memory", cfg: CreateConfig{Resources: Resources{Memory: 64 << 20, MemoryReservation: 128 << 20}}, err: "less than memory reservation"},
		{name: "reservation too small", cfg: CreateConfig{Resources: Resources{MemoryReservation: 1 << 20}}, err: "minimum memory reservation allowed is 6MB"},
		{name: "cpus and quota", cfg: CreateConfig{Resources: Resources{NanoCPUs: 1e9, CPUQuota: 50000}}, err: "Nano CPUs and CPU Period/Quota"},
		{name: "bad cpuset", cfg: CreateConfig{Resources: Resources{CpusetCpus: "0-x"}}, err: "invalid value 0-x for cpuset cpus"},
		{name: "cpuset unavailable", cfg: CreateConfig{Resources: Resources{CpusetCpus: "100000"}}, err: "requested CPUs are not available"},
		{name: "negative shm", cfg: CreateConfig{ShmSize: -1}, err: "SHM size can not be less than 0"},
		{name: "oom score", cfg: CreateConfig{OOMScoreAdj: -1001}, err: "range for oom score adj is [-1000, 1000]"},
		{name: "sysctl not namespaced", cfg: CreateConfig{Sysctls: map[string]string{"kernel.foo": "1"}}, err: "sysctl 'kernel.foo=1' is not allowed"},
		{name: "net sysctl with host network", cfg: CreateConfig{NetworkMode: "host", Sysctls: map[string]string{"net.ipv4.ip_forward": "1"}}, err: "not allowed in host network namespace"},
		{name: "ulimit name", cfg: CreateConfig{Ulimits: []Ulimit{{Name: "files", Soft: 1, Hard: 1}}}, err: "invalid ulimit type: files"},
		{name: "security opt", cfg: CreateConfig{SecurityOpt: []string{"x=y"}}, err: `invalid --security-opt "x=y"`},
		{name: "group", cfg: CreateConfig{GroupAdd: []string{"a:b"}}, err: `--group-add "a:b"`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cfg := tc.cfg
			_, err := validateSecurity(&cfg)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) || !errdefs.IsInvalidArgument(err) {
					t.Fatalf("err %v, want %q (invalid argument)", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if tc.check != nil {
				tc.check(t, cfg)
			}
		})
	}
}

func TestSecuritySpec(t *testing.T) {
	cfg := CreateConfig{
		Resources:   Resources{Memory: 64 << 20, MemorySwap: 128 << 20, PidsLimit: 10},
		Privileged:  true,
		CapAdd:      []string{"NET_ADMIN"},
		CapDrop:     []string{"MKNOD"},
		SecurityOpt: []string{"no-new-privileges", "seccomp=unconfined"},
		Devices:     []DeviceMapping{{"/dev/null", "/dev/n", "r"}},
		ShmSize:     1 << 20,
		Sysctls:     map[string]string{"net.ipv4.ip_forward": "1"},
		GroupAdd:    []string{"audio"},
		Ulimits:     []Ulimit{{"nofile", 1024, 2048}},
		OOMScoreAdj: 100,
	}
	var o specgen.Options
	if err := securitySpec(&o, cfg); err != nil {
		t.Fatal(err)
	}
	limit, swap, pids := int64(64<<20), int64(128<<20), int64(10)
	want := specgen.Options{
		Resources:       &specs.LinuxResources{Memory: &specs.LinuxMemory{Limit: &limit, Swap: &swap}, Pids: &specs.LinuxPids{Limit: &pids}},
		Privileged:      true,
		CapAdd:          []string{"NET_ADMIN"},
		CapDrop:         []string{"MKNOD"},
		NoNewPrivileges: true,
		Seccomp:         specgen.SeccompUnconfined,
		Devices:         []specgen.Device{{PathOnHost: "/dev/null", PathInContainer: "/dev/n", CgroupPermissions: "r"}},
		ShmSize:         1 << 20,
		Sysctls:         map[string]string{"net.ipv4.ip_forward": "1"},
		GroupAdd:        []string{"audio"},
		Ulimits:         []specgen.Ulimit{{Name: "nofile", Soft: 1024, Hard: 2048}},
		OOMScoreAdj:     100,
	}
	if !reflect.DeepEqual(o, want) {
		t.Fatalf("options %+v\nwant %+v", o, want)
	}
	var none specgen.Options
	if err := securitySpec(&none, CreateConfig{}); err != nil || none.Resources != nil {
		t.Fatalf("no flags: resources %+v, %v", none.Resources, err)
	}
}

func TestCheckUpdate(t *testing.T) {
	i64 := func(v int64) *int64 { return &v }
	withSwap := &specs.LinuxResources{Memory: &specs.LinuxMemory{Limit: i64(64 << 20), Swap: i64(128 << 20)}}
	tests := []struct {
		name string
		cur  *specs.LinuxResources
		had  Resources
		r    Resources
		err  string
	}{
		{name: "memory below swap", cur: withSwap, r: Resources{Memory: 100 << 20}},
		{name: "memory above swap", cur: withSwap, r: Resources{Memory: 200 << 20}, err: "smaller than already set memoryswap limit"},
		{name: "memory above swap with swap", cur: withSwap, r: Resources{Memory: 200 << 20, MemorySwap: 400 << 20}},
		{name: "memory without a swap limit", cur: &specs.LinuxResources{}, r: Resources{Memory: 1 << 30}},
		{name: "cpus after quota", cur: &specs.LinuxResources{}, had: Resources{CPUQuota: 50000}, r: Resources{NanoCPUs: 1e9}, err: "CPU Quota has already been set"},
		{name: "period after cpus", cur: &specs.LinuxResources{}, had: Resources{NanoCPUs: 1e9}, r: Resources{CPUPeriod: 50000}, err: "NanoCPUs has already been set"},
		{name: "cpus after cpus", cur: &specs.LinuxResources{}, had: Resources{NanoCPUs: 1e9}, r: Resources{NanoCPUs: 2e9}},
	}
	for _, tc := range tests {
		err := checkUpdate(tc.cur, tc.had, tc.r)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) || !errors.Is(err, errdefs.ErrFailedPrecondition) {
				t.Errorf("%s: err %v, want %q", tc.name, err, tc.err)
			}
			continue
		}
		if err != nil {
			t.Errorf("%s: %v", tc.name, err)
		}
	}
	had := Resources{Memory: 64 << 20, MemorySwap: 128 << 20, CpusetCpus: "0"}
	mergeResources(&had, Resources{Memory: 100 << 20, PidsLimit: -1, CpusetMems: "0"})
	if want := (Resources{Memory: 100 << 20, MemorySwap: 128 << 20, CpusetCpus: "0", CpusetMems: "0", PidsLimit: -1}); had != want {
		t.Errorf("merged %+v, want %+v", had, want)
	}
}
