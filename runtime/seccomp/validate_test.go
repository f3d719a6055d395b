package seccomp

import (
	"errors"
	"strings"
	"testing"

	"github.com/opencontainers/runtime-spec/specs-go"

	"github.com/skiff-containers/skiff/errdefs"
)

func uptr(v uint) *uint { return &v }

func TestValidate(t *testing.T) {
	allowAll := func(sc ...specs.LinuxSyscall) *specs.LinuxSeccomp {
		return &specs.LinuxSeccomp{DefaultAction: specs.ActAllow, Syscalls: sc}
	}
	deny := func(names ...string) specs.LinuxSyscall {
		return specs.LinuxSyscall{Names: names, Action: specs.ActErrno}
	}
	tests := []struct {
		name    string
		cfg     *specs.LinuxSeccomp
		wantErr string // "" = valid; else a substring of the message
	}{
		{"nil", nil, ""},
		{"empty means disabled", &specs.LinuxSeccomp{}, ""},
		{"simple", allowAll(deny("mkdir", "getcwd")), ""},
		{"all actions", allowAll(
			specs.LinuxSyscall{Names: []string{"read"}, Action: specs.ActKill},
			specs.LinuxSyscall{Names: []string{"write"}, Action: specs.ActKillProcess},
			specs.LinuxSyscall{Names: []string{"open"}, Action: specs.ActKillThread},
			specs.LinuxSyscall{Names: []string{"close"}, Action: specs.ActTrap},
			specs.LinuxSyscall{Names: []string{"stat"}, Action: specs.ActTrace, ErrnoRet: uptr(5)},
			specs.LinuxSyscall{Names: []string{"fstat"}, Action: specs.ActLog},
			specs.LinuxSyscall{Names: []string{"lstat"}, Action: specs.ActErrno, ErrnoRet: uptr(0)},
		), ""},
		{"rule equal to default is skipped", allowAll(specs.LinuxSyscall{Names: []string{"read"}, Action: specs.ActAllow}), ""},
		{"all flags", &specs.LinuxSeccomp{DefaultAction: specs.ActAllow, Flags: []specs.LinuxSeccompFlag{
			"SECCOMP_FILTER_FLAG_TSYNC", specs.LinuxSeccompFlagLog, specs.LinuxSeccompFlagSpecAllow, specs.LinuxSeccompFlagWaitKillableRecv,
		}, Syscalls: []specs.LinuxSyscall{deny("mkdir")}}, ""},
		{"all arches", &specs.LinuxSeccomp{DefaultAction: specs.ActErrno, Architectures: []specs.Arch{
			specs.ArchX86_64, specs.ArchX86, specs.ArchX32, specs.ArchAARCH64, specs.ArchARM,
			specs.ArchPPC64LE, specs.ArchRISCV64, specs.ArchMIPSEL64,
		}, Syscalls: []specs.LinuxSyscall{{Names: []string{"read", "write"}, Action: specs.ActAllow}}}, ""},
		{"args", allowAll(specs.LinuxSyscall{Names: []string{"personality"}, Action: specs.ActErrno, Args: []specs.LinuxSeccompArg{
			{Index: 0, Value: 0xffffffff, Op: specs.OpEqualTo},
			{Index: 1, Value: 0xff, ValueTwo: 1, Op: specs.OpMaskedEqual},
		}}), ""},
		{"pseudo syscall of another arch", allowAll(deny("_llseek", "socketcall")), ""},
		{"newer than libseccomp but a Linux syscall", allowAll(deny("mseal", "listmount", "lsm_list_modules")), ""},
		{"notify with listener", &specs.LinuxSeccomp{DefaultAction: specs.ActAllow, ListenerPath: "/run/agent.sock", ListenerMetadata: "x",
			Syscalls: []specs.LinuxSyscall{{Names: []string{"mkdir"}, Action: specs.ActNotify}}}, ""},
		{"defaultErrnoRet", &specs.LinuxSeccomp{DefaultAction: specs.ActErrno, DefaultErrnoRet: uptr(38),
			Syscalls: []specs.LinuxSyscall{{Names: []string{"read"}, Action: specs.ActAllow}}}, ""},

		{"bad default action", &specs.LinuxSeccomp{DefaultAction: "SCMP_ACT_NOPE"}, `defaultAction "SCMP_ACT_NOPE" is not a seccomp action`},
		{"missing default action", &specs.LinuxSeccomp{Syscalls: []specs.LinuxSyscall{deny("mkdir")}}, "defaultAction is empty"},
		{"bad rule action", allowAll(specs.LinuxSyscall{Names: []string{"mkdir"}, Action: "SCMP_ACT_DENY"}), `syscalls[0].action "SCMP_ACT_DENY"`},
		{"unknown syscall", allowAll(deny("getpid", "mkdri")), `syscalls[0].names[1] "mkdri" is not a Linux system call`},
		{"empty syscall name", allowAll(deny("")), `names[0] "" is not a Linux system call`},
		{"no names", allowAll(specs.LinuxSyscall{Action: specs.ActErrno}), "syscalls[0] has no names"},
		{"unknown arch", &specs.LinuxSeccomp{DefaultAction: specs.ActAllow, Architectures: []specs.Arch{specs.ArchX86_64, "SCMP_ARCH_VAX"},
			Syscalls: []specs.LinuxSyscall{deny("mkdir")}}, `architectures[1] "SCMP_ARCH_VAX"`},
		{"mixed byte order", &specs.LinuxSeccomp{DefaultAction: specs.ActAllow, Architectures: []specs.Arch{specs.ArchX86_64, specs.ArchS390X},
			Syscalls: []specs.LinuxSyscall{deny("mkdir")}}, "architectures[1] SCMP_ARCH_S390X cannot be added"},
		{"unknown flag", &specs.LinuxSeccomp{DefaultAction: specs.ActAllow, Flags: []specs.LinuxSeccompFlag{"SECCOMP_FILTER_FLAG_FAST"}},
			`flags[0] "SECCOMP_FILTER_FLAG_FAST"`},
		{"bad op", allowAll(specs.LinuxSyscall{Names: []string{"personality"}, Action: specs.ActErrno,
			Args: []specs.LinuxSeccompArg{{Index: 0, Value: 1, Op: "SCMP_CMP_LIKE"}}}), `syscalls[0].args[0].op "SCMP_CMP_LIKE"`},
		{"arg index out of range", allowAll(specs.LinuxSyscall{Names: []string{"personality"}, Action: specs.ActErrno,
			Args: []specs.LinuxSeccompArg{{Index: 6, Value: 1, Op: specs.OpEqualTo}}}), "syscalls[0].args[0].index 6 is out of range"},
		{"errnoRet with allow", &specs.LinuxSeccomp{DefaultAction: specs.ActErrno, Syscalls: []specs.LinuxSyscall{
			{Names: []string{"read"}, Action: specs.ActAllow, ErrnoRet: uptr(1)}}}, "syscalls[0].action SCMP_ACT_ALLOW does not take an errno"},
		{"errnoRet with kill", allowAll(specs.LinuxSyscall{Names: []string{"mkdir"}, Action: specs.ActKill, ErrnoRet: uptr(1)}),
			"SCMP_ACT_KILL does not take an errno"},
		{"defaultErrnoRet with allow", &specs.LinuxSeccomp{DefaultAction: specs.ActAllow, DefaultErrnoRet: uptr(1),
			Syscalls: []specs.LinuxSyscall{deny("mkdir")}}, "defaultAction SCMP_ACT_ALLOW does not take an errno"},
		{"errno out of range", allowAll(specs.LinuxSyscall{Names: []string{"mkdir"}, Action: specs.ActErrno, ErrnoRet: uptr(70000)}),
			"errno 70000 is out of range"},
		{"notify without listenerPath", allowAll(specs.LinuxSyscall{Names: []string{"mkdir"}, Action: specs.ActNotify}),
			"listenerPath is empty"},
		{"notify as default", &specs.LinuxSeccomp{DefaultAction: specs.ActNotify, ListenerPath: "/run/a.sock"}, "defaultAction SCMP_ACT_NOTIFY is not allowed"},
		{"notify on write", &specs.LinuxSeccomp{DefaultAction: specs.ActAllow, ListenerPath: "/run/a.sock",
			Syscalls: []specs.LinuxSyscall{{Names: []string{"write"}, Action: specs.ActNotify}}}, "cannot be used for write"},
		{"metadata without listenerPath", &specs.LinuxSeccomp{DefaultAction: specs.ActAllow, ListenerMetadata: "m",
			Syscalls: []specs.LinuxSyscall{deny("mkdir")}}, "listenerMetadata is set without listenerPath"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := Validate(tc.cfg)
			if tc.wantErr == "" {
				if err != nil {
					t.Fatalf("Validate: %v", err)
				}
				return
			}
			if err == nil {
				t.Fatalf("Validate succeeded, want error containing %q", tc.wantErr)
			}
			if !errors.Is(err, errdefs.ErrInvalidArgument) {
				t.Errorf("error %q is not ErrInvalidArgument", err)
			}
			if !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("error %q does not contain %q", err, tc.wantErr)
			}
		})
	}
}

func TestCompileFlags(t *testing.T) {
	cfg := &specs.LinuxSeccomp{DefaultAction: specs.ActAllow, ListenerPath: "/x",
		Flags:    []specs.LinuxSeccompFlag{"SECCOMP_FILTER_FLAG_TSYNC", specs.LinuxSeccompFlagWaitKillableRecv},
		Syscalls: []specs.LinuxSyscall{{Names: []string{"mkdir"}, Action: specs.ActNotify}}}
	p, err := compile(cfg)
	if err != nil {
		t.Fatal(err)
	}
	const want = 0x1 | 0x8 | 0x10 | 0x20 // TSYNC|NEW_LISTENER|TSYNC_ESRCH|WAIT_KILLABLE_RECV
	if p.flags != want || !p.notify {
		t.Errorf("flags %#x notify %v, want %#x true", p.flags, p.notify, want)
	}
	cfg.Syscalls[0].Action = specs.ActErrno
	if p, err = compile(cfg); err != nil {
		t.Fatal(err)
	}
	if p.flags != 0x1 || p.notify {
		t.Errorf("without notify: flags %#x notify %v, want 0x1 false (WAIT_KILLABLE_RECV dropped)", p.flags, p.notify)
	}
}

func TestEnosysStub(t *testing.T) {
	base := specs.LinuxSeccomp{Architectures: []specs.Arch{specs.ArchX86_64, specs.ArchX86, specs.ArchX32},
		Syscalls: []specs.LinuxSyscall{{Names: []string{"read", "write", "clone3"}, Action: specs.ActAllow}}}
	for _, tc := range []struct {
		name     string
		action   specs.LinuxSeccompAction
		errno    *uint
		wantStub bool
	}{
		{"errno", specs.ActErrno, nil, true},
		{"kill", specs.ActKillProcess, nil, true},
		{"errno enosys", specs.ActErrno, uptr(38), false},
		{"log", specs.ActLog, nil, false},
		{"trace", specs.ActTrace, nil, false},
	} {
		cfg := base
		cfg.DefaultAction, cfg.DefaultErrnoRet = tc.action, tc.errno
		if tc.action == specs.ActLog || tc.action == specs.ActTrace {
			cfg.Syscalls = []specs.LinuxSyscall{{Names: []string{"mkdir"}, Action: specs.ActErrno}}
		}
		defAct, err := parseAction(cfg.DefaultAction, cfg.DefaultErrnoRet, "defaultAction")
		if err != nil {
			t.Fatal(err)
		}
		stub, err := enosysStub(&cfg, defAct)
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		if (len(stub) > 0) != tc.wantStub {
			t.Errorf("%s: stub of %d instructions, want stub %v", tc.name, len(stub), tc.wantStub)
		}
	}
}

func TestResolveDockerProfile(t *testing.T) {
	has := func(p *specs.LinuxSeccomp, name string, act specs.LinuxSeccompAction) bool {
		for _, sc := range p.Syscalls {
			for _, n := range sc.Names {
				if n == name && sc.Action == act && len(sc.Args) == 0 {
					return true
				}
			}
		}
		return false
	}
	kver := []int{6, 1, 0}
	def, err := resolveDockerProfile(defaultProfileJSON, "amd64", dockerDefaultCaps(), kver)
	if err != nil {
		t.Fatal(err)
	}
	if def.DefaultAction != specs.ActErrno || def.DefaultErrnoRet == nil || *def.DefaultErrnoRet != 1 {
		t.Errorf("default action %s/%v, want SCMP_ACT_ERRNO/1", def.DefaultAction, def.DefaultErrnoRet)
	}
	if got := def.Architectures; len(got) != 3 || got[0] != specs.ArchX86_64 || got[1] != specs.ArchX86 || got[2] != specs.ArchX32 {
		t.Errorf("amd64 architectures %v", got)
	}
	for _, c := range []struct {
		name string
		want bool
	}{
		{"getpid", true}, {"chroot", true}, {"arch_prctl", true}, {"ptrace", true},
		{"unshare", false}, {"keyctl", false}, {"mount", false}, {"reboot", false}, {"s390_runtime_instr", false}, {"clone3", false},
	} {
		if got := has(def, c.name, specs.ActAllow); got != c.want {
			t.Errorf("default caps, amd64: %s allowed = %v, want %v", c.name, got, c.want)
		}
	}
	if !has(def, "clone3", specs.ActErrno) {
		t.Errorf("default caps: clone3 should get ENOSYS (SCMP_ACT_ERRNO 38)")
	}
	old, err := resolveDockerProfile(defaultProfileJSON, "amd64", dockerDefaultCaps(), []int{4, 4, 0})
	if err != nil {
		t.Fatal(err)
	}
	if has(old, "ptrace", specs.ActAllow) {
		t.Errorf("kernel 4.4: ptrace allowed, want only with minKernel 4.8")
	}
	admin, err := resolveDockerProfile(defaultProfileJSON, "arm64", append(dockerDefaultCaps(), "CAP_SYS_ADMIN"), kver)
	if err != nil {
		t.Fatal(err)
	}
	if !has(admin, "unshare", specs.ActAllow) || !has(admin, "mount", specs.ActAllow) || has(admin, "arch_prctl", specs.ActAllow) {
		t.Errorf("CAP_SYS_ADMIN on arm64: want unshare and mount allowed and arch_prctl not")
	}
	if got := admin.Architectures; len(got) != 2 || got[0] != specs.ArchAARCH64 || got[1] != specs.ArchARM {
		t.Errorf("arm64 architectures %v", got)
	}
	if err := Validate(DefaultProfile()); err != nil {
		t.Errorf("Validate(DefaultProfile()): %v", err)
	}
	// Each call returns a fresh value.
	a, b := DefaultProfile(), DefaultProfile()
	a.Syscalls[0].Names[0] = "changed"
	if b.Syscalls[0].Names[0] == "changed" {
		t.Errorf("DefaultProfile values share memory")
	}
}

func TestParseKernelVersion(t *testing.T) {
	for in, want := range map[string][3]int{"6.18.0-1-amd64": {6, 18, 0}, "4.8": {4, 8, 0}, "5.10.205+": {5, 10, 205}} {
		got, err := parseKernelVersion(in)
		if err != nil || [3]int(got) != want {
			t.Errorf("parseKernelVersion(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	if _, err := parseKernelVersion("x"); err == nil {
		t.Errorf("parseKernelVersion(x) succeeded")
	}
}
