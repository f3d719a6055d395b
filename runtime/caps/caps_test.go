package caps

import (
	"errors"
	"strings"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/skiff-containers/skiff/errdefs"
)

func TestNamesMatchKernelNumbers(t *testing.T) {
	want := map[string]int{
		"CAP_CHOWN": unix.CAP_CHOWN, "CAP_DAC_OVERRIDE": unix.CAP_DAC_OVERRIDE,
		"CAP_DAC_READ_SEARCH": unix.CAP_DAC_READ_SEARCH, "CAP_FOWNER": unix.CAP_FOWNER,
		"CAP_FSETID": unix.CAP_FSETID, "CAP_KILL": unix.CAP_KILL, "CAP_SETGID": unix.CAP_SETGID,
		"CAP_SETUID": unix.CAP_SETUID, "CAP_SETPCAP": unix.CAP_SETPCAP,
		"CAP_LINUX_IMMUTABLE": unix.CAP_LINUX_IMMUTABLE, "CAP_NET_BIND_SERVICE": unix.CAP_NET_BIND_SERVICE,
		"CAP_NET_BROADCAST": unix.CAP_NET_BROADCAST, "CAP_NET_ADMIN": unix.CAP_NET_ADMIN,
		"CAP_NET_RAW": unix.CAP_NET_RAW, "CAP_IPC_LOCK": unix.CAP_IPC_LOCK, "CAP_IPC_OWNER": unix.CAP_IPC_OWNER,
		"CAP_SYS_MODULE": unix.CAP_SYS_MODULE, "CAP_SYS_RAWIO": unix.CAP_SYS_RAWIO,
		"CAP_SYS_CHROOT": unix.CAP_SYS_CHROOT, "CAP_SYS_PTRACE": unix.CAP_SYS_PTRACE,
		"CAP_SYS_PACCT": unix.CAP_SYS_PACCT, "CAP_SYS_ADMIN": unix.CAP_SYS_ADMIN, "CAP_SYS_BOOT": unix.CAP_SYS_BOOT,
		"CAP_SYS_NICE": unix.CAP_SYS_NICE, "CAP_SYS_RESOURCE": unix.CAP_SYS_RESOURCE,
		"CAP_SYS_TIME": unix.CAP_SYS_TIME, "CAP_SYS_TTY_CONFIG": unix.CAP_SYS_TTY_CONFIG,
		"CAP_MKNOD": unix.CAP_MKNOD, "CAP_LEASE": unix.CAP_LEASE, "CAP_AUDIT_WRITE": unix.CAP_AUDIT_WRITE,
		"CAP_AUDIT_CONTROL": unix.CAP_AUDIT_CONTROL, "CAP_SETFCAP": unix.CAP_SETFCAP,
		"CAP_MAC_OVERRIDE": unix.CAP_MAC_OVERRIDE, "CAP_MAC_ADMIN": unix.CAP_MAC_ADMIN,
		"CAP_SYSLOG": unix.CAP_SYSLOG, "CAP_WAKE_ALARM": unix.CAP_WAKE_ALARM,
		"CAP_BLOCK_SUSPEND": unix.CAP_BLOCK_SUSPEND, "CAP_AUDIT_READ": unix.CAP_AUDIT_READ,
		"CAP_PERFMON": unix.CAP_PERFMON, "CAP_BPF": unix.CAP_BPF, "CAP_CHECKPOINT_RESTORE": unix.CAP_CHECKPOINT_RESTORE,
	}
	got := Names()
	if len(got) != unix.CAP_LAST_CAP+1 || len(got) != len(want) {
		t.Fatalf("Names() has %d entries, want %d (CAP_LAST_CAP+1)", len(got), unix.CAP_LAST_CAP+1)
	}
	for i, name := range got {
		if want[name] != i {
			t.Errorf("Names()[%d] = %s, but the kernel number of %s is %d", i, name, name, want[name])
		}
		if n, err := Parse(name); err != nil || n != i {
			t.Errorf("Parse(%q) = %d, %v; want %d", name, n, err, i)
		}
	}
	got[0] = "mutated"
	if Names()[0] != "CAP_CHOWN" {
		t.Error("Names() returned the package's own table; mutating it changed later results")
	}
}

func TestParse(t *testing.T) {
	tests := []struct {
		name    string
		want    int
		errSubs string // empty: no error
	}{
		{"CAP_CHOWN", 0, ""},
		{"CAP_SYS_ADMIN", 21, ""},
		{"CAP_CHECKPOINT_RESTORE", 40, ""},
		{"cap_chown", -1, "did you mean CAP_CHOWN?"},
		{"NET_ADMIN", -1, "did you mean CAP_NET_ADMIN?"},
		{"CAP_FOO", -1, `unknown capability "CAP_FOO"`},
		{"", -1, `unknown capability ""`},
		{"CAP_CHOWN ", -1, "did you mean"},
	}
	for _, tt := range tests {
		got, err := Parse(tt.name)
		if tt.errSubs == "" {
			if err != nil || got != tt.want {
				t.Errorf("Parse(%q) = %d, %v; want %d, nil", tt.name, got, err, tt.want)
			}
			continue
		}
		if err == nil {
			t.Errorf("Parse(%q) = %d, nil; want an error", tt.name, got)
			continue
		}
		if !errors.Is(err, errdefs.ErrInvalidArgument) || !strings.Contains(err.Error(), tt.errSubs) {
			t.Errorf("Parse(%q) error = %v; want ErrInvalidArgument containing %q", tt.name, err, tt.errSubs)
		}
	}
}

func bit(names ...string) uint64 {
	var m uint64
	for _, n := range names {
		i, err := Parse(n)
		if err != nil {
			panic(err)
		}
		m |= 1 << uint(i)
	}
	return m
}

func TestFromSpec(t *testing.T) {
	runcDefault := []string{"CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"}
	tests := []struct {
		name    string
		in      *specs.LinuxCapabilities
		last    int
		want    Set
		errSubs []string
	}{
		{name: "nil block means no capabilities", in: nil, last: 40, want: Set{}},
		{name: "empty block", in: &specs.LinuxCapabilities{}, last: 40, want: Set{}},
		{
			name: "runc default",
			in:   &specs.LinuxCapabilities{Bounding: runcDefault, Effective: runcDefault, Permitted: runcDefault, Ambient: runcDefault},
			last: 40,
			want: Set{Bounding: 0x20000420, Effective: 0x20000420, Permitted: 0x20000420, Ambient: 0x20000420},
		},
		{
			name: "each set separately, duplicates are harmless",
			in: &specs.LinuxCapabilities{
				Bounding:    []string{"CAP_SYS_ADMIN", "CAP_CHOWN", "CAP_CHOWN"},
				Effective:   []string{"CAP_CHOWN"},
				Permitted:   []string{"CAP_CHOWN", "CAP_SETUID"},
				Inheritable: []string{"CAP_BPF"},
				Ambient:     []string{"CAP_SETUID"},
			},
			last: 40,
			want: Set{
				Bounding: bit("CAP_SYS_ADMIN", "CAP_CHOWN"), Effective: bit("CAP_CHOWN"),
				Permitted: bit("CAP_CHOWN", "CAP_SETUID"), Inheritable: bit("CAP_BPF"), Ambient: bit("CAP_SETUID"),
			},
		},
		{
			name: "known capabilities past the kernel's last are ignored",
			in: &specs.LinuxCapabilities{
				Bounding:  []string{"CAP_AUDIT_READ", "CAP_PERFMON", "CAP_BPF", "CAP_CHECKPOINT_RESTORE"},
				Effective: []string{"CAP_BPF"},
			},
			last: 37,
			want: Set{Bounding: bit("CAP_AUDIT_READ")},
		},
		{
			name:    "unknown name in ambient",
			in:      &specs.LinuxCapabilities{Bounding: runcDefault, Ambient: []string{"CAP_KILL", "CAP_FOO"}},
			last:    40,
			errSubs: []string{"process.capabilities.ambient", `"CAP_FOO"`},
		},
		{
			name:    "unknown name in bounding",
			in:      &specs.LinuxCapabilities{Bounding: []string{"CAP_NET_ADMIN", "CAP_NETADMIN"}},
			last:    40,
			errSubs: []string{"process.capabilities.bounding", `"CAP_NETADMIN"`},
		},
		{
			name:    "lower case name in inheritable",
			in:      &specs.LinuxCapabilities{Inheritable: []string{"cap_kill"}},
			last:    40,
			errSubs: []string{"process.capabilities.inheritable", "did you mean CAP_KILL?"},
		},
		{
			name:    "effective beyond permitted",
			in:      &specs.LinuxCapabilities{Effective: []string{"CAP_KILL", "CAP_SYS_ADMIN", "CAP_CHOWN"}, Permitted: []string{"CAP_KILL"}},
			last:    40,
			errSubs: []string{"process.capabilities.effective", "CAP_CHOWN, CAP_SYS_ADMIN not in process.capabilities.permitted"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := fromSpec(tt.in, tt.last)
			if tt.errSubs != nil {
				if err == nil {
					t.Fatalf("fromSpec = %+v, nil; want an error", got)
				}
				if !errors.Is(err, errdefs.ErrInvalidArgument) {
					t.Errorf("error %v is not ErrInvalidArgument", err)
				}
				for _, s := range tt.errSubs {
					if !strings.Contains(err.Error(), s) {
						t.Errorf("error %q does not contain %q", err, s)
					}
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if *got != tt.want {
				t.Errorf("fromSpec = %+v, want %+v", *got, tt.want)
			}
		})
	}
}

func TestFromSpecUsesRunningKernel(t *testing.T) {
	last, err := lastCap()
	if err != nil {
		t.Fatal(err)
	}
	if last < unix.CAP_AUDIT_READ { // 3.16, far older than anything skiff supports
		t.Fatalf("lastCap() = %d, implausibly low", last)
	}
	all := Names()
	s, err := FromSpec(&specs.LinuxCapabilities{Bounding: all, Effective: all, Permitted: all})
	if err != nil {
		t.Fatal(err)
	}
	want := uint64(1)<<uint(min(last, len(all)-1)+1) - 1
	if s.Bounding != want || s.Effective != want || s.Permitted != want {
		t.Errorf("FromSpec(all names) = %+v, want every set %#x (capabilities 0..%d)", *s, want, last)
	}
}
