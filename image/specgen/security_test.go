package specgen

import (
	"math"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/skiff-containers/skiff/errdefs"
)

func TestUlimits(t *testing.T) {
	rootfs := fakeRootfs(t, ptr(testPasswd), ptr(testGroup))
	inf := uint64(math.MaxUint64)
	tests := []struct {
		name string
		in   []Ulimit
		want []specs.POSIXRlimit
		err  string
	}{
		{name: "none"},
		{name: "nofile", in: []Ulimit{{"nofile", 1024, 2048}}, want: []specs.POSIXRlimit{{Type: "RLIMIT_NOFILE", Soft: 1024, Hard: 2048}}},
		{name: "unlimited", in: []Ulimit{{"core", -1, -1}}, want: []specs.POSIXRlimit{{Type: "RLIMIT_CORE", Soft: inf, Hard: inf}}},
		{name: "soft below unlimited hard", in: []Ulimit{{"nproc", 10, -1}}, want: []specs.POSIXRlimit{{Type: "RLIMIT_NPROC", Soft: 10, Hard: inf}}},
		{name: "last wins", in: []Ulimit{{"nofile", 1, 2}, {"stack", 8, 8}, {"nofile", 3, 4}},
			want: []specs.POSIXRlimit{{Type: "RLIMIT_STACK", Soft: 8, Hard: 8}, {Type: "RLIMIT_NOFILE", Soft: 3, Hard: 4}}},
		{name: "unknown", in: []Ulimit{{"files", 1, 1}}, err: "invalid ulimit type"},
		{name: "soft above hard", in: []Ulimit{{"nofile", 10, 5}}, err: "soft limit must be less than or equal to hard limit: 10 > 5"},
		{name: "unlimited soft above hard", in: []Ulimit{{"nofile", -1, 5}}, err: "soft limit must be less than or equal"},
		{name: "negative", in: []Ulimit{{"nofile", -2, 5}}, err: "must be -1 (unlimited) or more"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s, _, err := Generate(image(nil, []string{"sh"}, nil), rootfs, Options{ID: testID, Ulimits: tc.in})
			if tc.err != "" {
				wantClass(t, err, errdefs.ErrInvalidArgument)
				if !strings.Contains(err.Error(), tc.err) || !strings.Contains(err.Error(), "--ulimit") {
					t.Fatalf("error %q, want %q naming --ulimit", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(s.Process.Rlimits, tc.want) {
				t.Fatalf("rlimits %+v, want %+v", s.Process.Rlimits, tc.want)
			}
		})
	}
}

// devDir makes a directory of device nodes: a (1:3), sub/b (1:5), a
// regular file and a symlink to /dev/null.
func devDir(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	if err := os.Mkdir(filepath.Join(dir, "sub"), 0o755); err != nil {
		t.Fatal(err)
	}
	for name, dev := range map[string]int{"a": int(unix.Mkdev(1, 3)), "sub/b": int(unix.Mkdev(1, 5))} {
		if err := unix.Mknod(filepath.Join(dir, name), unix.S_IFCHR|0o640, dev); err != nil {
			t.Fatalf("mknod: %v", err)
		}
	}
	if err := os.WriteFile(filepath.Join(dir, "plain"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("/dev/null", filepath.Join(dir, "link")); err != nil {
		t.Fatal(err)
	}
	return dir
}

func TestDevices(t *testing.T) {
	rootfs := fakeRootfs(t, ptr(testPasswd), ptr(testGroup))
	dir := devDir(t)
	type dev struct {
		path         string
		typ          string
		major, minor int64
		mode         os.FileMode
	}
	tests := []struct {
		name       string
		in         []Device
		privileged bool
		want       []dev
		access     []string
		err        string
	}{
		{name: "same path", in: []Device{{PathOnHost: "/dev/null"}}, want: []dev{{"/dev/null", "c", 1, 3, 0o666}}, access: []string{"rwm"}},
		{name: "renamed, read only", in: []Device{{"/dev/null", "/dev/mynull", "r"}}, want: []dev{{"/dev/mynull", "c", 1, 3, 0o666}}, access: []string{"r"}},
		{name: "symlink followed", in: []Device{{filepath.Join(dir, "link"), "/dev/l", "rw"}}, want: []dev{{"/dev/l", "c", 1, 3, 0o666}}, access: []string{"rw"}},
		{name: "unclean container path", in: []Device{{filepath.Join(dir, "a"), "/dev//x/../y", "rwm"}}, want: []dev{{"/dev/y", "c", 1, 3, 0o640}}, access: []string{"rwm"}},
		{name: "directory", in: []Device{{dir, "/dev/d", "rwm"}},
			// as docker's walk: nodes only, links inside not followed
			want:   []dev{{"/dev/d/a", "c", 1, 3, 0o640}, {"/dev/d/sub/b", "c", 1, 5, 0o640}},
			access: []string{"rwm", "rwm"}},
		{name: "missing", in: []Device{{PathOnHost: "/dev/nonexistent"}}, err: `adding custom device "/dev/nonexistent": no such file or directory`},
		{name: "not a device", in: []Device{{PathOnHost: filepath.Join(dir, "plain")}}, err: "not a device node"},
		{name: "empty directory", in: []Device{{PathOnHost: t.TempDir()}}, err: "not a device node"},
		{name: "relative host path", in: []Device{{PathOnHost: "dev/null"}}, err: "is not absolute"},
		{name: "relative container path", in: []Device{{"/dev/null", "null", "rwm"}}, err: "null is not an absolute path"},
		{name: "bad mode", in: []Device{{"/dev/null", "/dev/null", "rwx"}}, err: "bad mode specified: rwx"},
		{name: "repeated mode letter", in: []Device{{"/dev/null", "/dev/null", "rr"}}, err: "bad mode specified: rr"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s, _, err := Generate(image(nil, []string{"sh"}, nil), rootfs, Options{ID: testID, Devices: tc.in, Privileged: tc.privileged})
			if tc.err != "" {
				wantClass(t, err, errdefs.ErrInvalidArgument)
				if !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("error %q, want %q", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			var got []dev
			for _, d := range s.Linux.Devices {
				got = append(got, dev{d.Path, d.Type, d.Major, d.Minor, *d.FileMode})
				if *d.UID != 0 || *d.GID != 0 {
					t.Errorf("device %s owned by %d:%d, want the host's 0:0", d.Path, *d.UID, *d.GID)
				}
			}
			slices.SortFunc(got, func(a, b dev) int { return strings.Compare(a.path, b.path) })
			if !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("devices %+v, want %+v", got, tc.want)
			}
			// docker's default rules first, then one allow rule per device.
			rules := s.Linux.Resources.Devices
			def := defaultDeviceRules()
			if !reflect.DeepEqual(rules[:len(def)], def) {
				t.Fatalf("rules %+v do not start with the default ones", rules)
			}
			extra := rules[len(def):]
			if len(extra) != len(tc.access) {
				t.Fatalf("extra rules %+v, want %d", extra, len(tc.access))
			}
			for i, r := range extra {
				if !r.Allow || r.Type != "c" || r.Access != tc.access[i] || r.Major == nil || r.Minor == nil {
					t.Fatalf("rule %+v, want allow c with %q", r, tc.access[i])
				}
			}
		})
	}

	t.Run("privileged replaces the host's node", func(t *testing.T) {
		s := mustGenerateSpec(t, rootfs, Options{ID: testID, Privileged: true, Devices: []Device{{"/dev/zero", "/dev/null", "r"}}})
		n := 0
		for _, d := range s.Linux.Devices {
			if d.Path == "/dev/null" {
				n++
				if d.Minor != 5 {
					t.Errorf("/dev/null is %d:%d, want the --device's 1:5", d.Major, d.Minor)
				}
			}
		}
		if n != 1 {
			t.Fatalf("%d devices at /dev/null, want 1", n)
		}
	})
}

func mustGenerateSpec(t *testing.T, rootfs string, o Options) *specs.Spec {
	t.Helper()
	s, _ := mustGenerate(t, image(nil, []string{"sh"}, nil), rootfs, o)
	return s
}

func TestGroupAdd(t *testing.T) {
	rootfs := fakeRootfs(t, ptr(testPasswd), ptr(testGroup))
	tests := []struct {
		name  string
		user  string
		add   []string
		want  []uint32
		class error
	}{
		{name: "name", add: []string{"audio"}, want: []uint32{0, 29}},
		{name: "number", add: []string{"1234"}, want: []uint32{0, 1234}},
		{name: "numeric name of a group", add: []string{"50"}, want: []uint32{0, 50}},
		{name: "after the user's groups, no duplicates", user: "app", add: []string{"staff", "wheel", "7", "7"}, want: []uint32{1000, 10, 50, 7}},
		{name: "explicit group", user: "app:audio", add: []string{"staff"}, want: []uint32{29, 50}},
		{name: "unknown name", add: []string{"nosuch"}, class: errdefs.ErrNotFound},
		{name: "out of range", add: []string{"4294967296"}, class: errdefs.ErrInvalidArgument},
		{name: "negative", add: []string{"-1"}, class: errdefs.ErrInvalidArgument},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s, _, err := Generate(image(nil, []string{"sh"}, nil), rootfs, Options{ID: testID, User: tc.user, GroupAdd: tc.add})
			if tc.class != nil {
				wantClass(t, err, tc.class)
				if !strings.Contains(err.Error(), "--group-add") {
					t.Fatalf("error %q does not name --group-add", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got := s.Process.User.AdditionalGids; !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("additionalGids %v, want %v", got, tc.want)
			}
		})
	}
	t.Run("image without /etc/group", func(t *testing.T) {
		bare := fakeRootfs(t, ptr(testPasswd), nil)
		if s := mustGenerateSpec(t, bare, Options{ID: testID, GroupAdd: []string{"42"}}); !slices.Contains(s.Process.User.AdditionalGids, 42) {
			t.Fatalf("additionalGids %v, want 42 in it", s.Process.User.AdditionalGids)
		}
		_, _, err := Generate(image(nil, []string{"sh"}, nil), bare, Options{ID: testID, GroupAdd: []string{"audio"}})
		wantClass(t, err, errdefs.ErrNotFound)
	})
}

// testProfile is a Docker-format profile: deny by default, allow a few
// calls, and mount only with CAP_SYS_ADMIN.
const testProfile = `{
  "defaultAction": "SCMP_ACT_ERRNO",
  "archMap": [
    {"architecture": "SCMP_ARCH_X86_64", "subArchitectures": ["SCMP_ARCH_X86", "SCMP_ARCH_X32"]},
    {"architecture": "SCMP_ARCH_AARCH64", "subArchitectures": ["SCMP_ARCH_ARM"]}
  ],
  "syscalls": [
    {"names": ["read", "write", "exit_group", "execve"], "action": "SCMP_ACT_ALLOW"},
    {"names": ["mount"], "action": "SCMP_ACT_ALLOW", "includes": {"caps": ["CAP_SYS_ADMIN"]}}
  ]
}`

func TestSeccompOption(t *testing.T) {
	rootfs := fakeRootfs(t, ptr(testPasswd), ptr(testGroup))
	def := mustGenerateSpec(t, rootfs, Options{ID: testID}).Linux.Seccomp
	tests := []struct {
		name       string
		profile    string
		capAdd     []string
		privileged bool
		check      func(t *testing.T, p *specs.LinuxSeccomp)
		err        string
	}{
		{name: "builtin", profile: SeccompBuiltin, check: func(t *testing.T, p *specs.LinuxSeccomp) {
			if !reflect.DeepEqual(p, def) {
				t.Fatal("builtin is not the default profile")
			}
		}},
		{name: "unconfined", profile: SeccompUnconfined, check: func(t *testing.T, p *specs.LinuxSeccomp) {
			if p != nil {
				t.Fatalf("unconfined has a profile: %+v", p)
			}
		}},
		{name: "custom", profile: testProfile, check: func(t *testing.T, p *specs.LinuxSeccomp) {
			if p.DefaultAction != specs.ActErrno || !slices.Contains(allowedSyscalls(p), "read") || slices.Contains(allowedSyscalls(p), "mount") {
				t.Fatalf("profile %+v: want errno by default, read allowed, mount not (no CAP_SYS_ADMIN)", p)
			}
		}},
		{name: "custom with the capability", profile: testProfile, capAdd: []string{"SYS_ADMIN"}, check: func(t *testing.T, p *specs.LinuxSeccomp) {
			if !slices.Contains(allowedSyscalls(p), "mount") {
				t.Fatalf("profile %+v: mount not allowed with CAP_SYS_ADMIN", p)
			}
		}},
		{name: "custom ignored when privileged", profile: testProfile, privileged: true, check: func(t *testing.T, p *specs.LinuxSeccomp) {
			if p != nil {
				t.Fatalf("privileged container has a profile: %+v", p)
			}
		}},
		{name: "empty profile is no filter", profile: `{}`, check: func(t *testing.T, p *specs.LinuxSeccomp) {
			if p != nil {
				t.Fatalf("profile %+v, want none", p)
			}
		}},
		{name: "not JSON", profile: `{"defaultAction": `, err: "decode the profile"},
		{name: "unknown action", profile: `{"defaultAction": "SCMP_ACT_MAYBE"}`, err: "not usable"},
		{name: "unknown syscall", profile: `{"defaultAction": "SCMP_ACT_ERRNO", "syscalls": [{"names": ["nosuchcall"], "action": "SCMP_ACT_ALLOW"}]}`, err: "nosuchcall"},
		{name: "architectures and archMap", profile: `{"defaultAction": "SCMP_ACT_ERRNO", "architectures": ["SCMP_ARCH_X86_64"], "archMap": [{"architecture": "SCMP_ARCH_X86_64"}]}`, err: "use either 'architectures' or 'archMap'"},
		{name: "name and names", profile: `{"defaultAction": "SCMP_ACT_ERRNO", "syscalls": [{"name": "read", "names": ["write"], "action": "SCMP_ACT_ALLOW"}]}`, err: "use either 'name' or 'names'"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s, _, err := Generate(image(nil, []string{"sh"}, nil), rootfs, Options{ID: testID, Seccomp: tc.profile, CapAdd: tc.capAdd, Privileged: tc.privileged})
			if tc.err != "" {
				wantClass(t, err, errdefs.ErrInvalidArgument)
				if !strings.Contains(err.Error(), tc.err) || !strings.Contains(err.Error(), "--security-opt seccomp") {
					t.Fatalf("error %q, want %q naming --security-opt seccomp", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			tc.check(t, s.Linux.Seccomp)
		})
	}
}

func TestSysctlsHostNetwork(t *testing.T) {
	rootfs := fakeRootfs(t, ptr(testPasswd), ptr(testGroup))
	tests := []struct {
		name    string
		network string
		sysctls map[string]string
		err     bool
	}{
		{name: "net in own namespace", network: NetworkNone, sysctls: map[string]string{"net.ipv4.ip_forward": "1"}},
		{name: "ipc with host network", network: NetworkHost, sysctls: map[string]string{"kernel.shmmax": "1024"}},
		{name: "net with host network", network: NetworkHost, sysctls: map[string]string{"kernel.shmmax": "1024", "net.core.somaxconn": "1024"}, err: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s, _, err := Generate(image(nil, []string{"sh"}, nil), rootfs, Options{ID: testID, NetworkMode: tc.network, Sysctls: tc.sysctls})
			if tc.err {
				wantClass(t, err, errdefs.ErrInvalidArgument)
				if !strings.Contains(err.Error(), `sysctl "net.core.somaxconn" not allowed in host network namespace`) {
					t.Fatalf("error %q, want runc's message", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			for k, v := range tc.sysctls {
				if s.Linux.Sysctl[k] != v {
					t.Fatalf("sysctl %s = %q, want %q", k, s.Linux.Sysctl[k], v)
				}
			}
		})
	}
}
