package initproc

import (
	"bytes"
	"encoding/binary"
	"os"
	"reflect"
	"strings"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

func TestMessageFraming(t *testing.T) {
	var buf bytes.Buffer
	msgs := []struct {
		kind    byte
		payload string
	}{{MsgReady, ""}, {MsgError, "boom"}, {MsgLog, "init: step"}}
	for _, m := range msgs {
		if err := WriteMessage(&buf, m.kind, []byte(m.payload)); err != nil {
			t.Fatal(err)
		}
	}
	for _, m := range msgs {
		kind, payload, err := ReadMessage(&buf)
		if err != nil || kind != m.kind || string(payload) != m.payload {
			t.Fatalf("read %q %q %v, want %q %q", kind, payload, err, m.kind, m.payload)
		}
	}
	if _, _, err := ReadMessage(&buf); err == nil {
		t.Fatal("read past the end: no error")
	}
}

func TestMessageTooLarge(t *testing.T) {
	hdr := make([]byte, 5)
	hdr[0] = MsgConfig
	binary.LittleEndian.PutUint32(hdr[1:], maxMessage+1)
	if _, _, err := ReadMessage(bytes.NewReader(hdr)); err == nil {
		t.Fatal("a message over the limit was accepted")
	}
}

// TestConfigRoundTrip checks that every part of the spec the init uses
// crosses the wire, and that seccomp crosses only as its listener.
func TestConfigRoundTrip(t *testing.T) {
	umask := uint32(0o027)
	oom := 100
	s := &specs.Spec{
		Version:    "1.3.0",
		Hostname:   "h",
		Domainname: "d",
		Root:       &specs.Root{Path: "rootfs", Readonly: true},
		Process: &specs.Process{
			Args: []string{"sh"}, Env: []string{"A=1"}, Cwd: "/w",
			User:        specs.User{UID: 1, GID: 2, AdditionalGids: []uint32{3}, Umask: &umask},
			Rlimits:     []specs.POSIXRlimit{{Type: "RLIMIT_NOFILE", Hard: 9, Soft: 8}},
			OOMScoreAdj: &oom, NoNewPrivileges: true,
			Capabilities: &specs.LinuxCapabilities{Bounding: []string{"CAP_KILL"}},
		},
		Mounts:      []specs.Mount{{Destination: "/proc", Type: "proc", Source: "proc"}},
		Hooks:       &specs.Hooks{StartContainer: []specs.Hook{{Path: "/bin/true"}}},
		Annotations: map[string]string{"a": "b"},
		Linux: &specs.Linux{
			Devices:           []specs.LinuxDevice{{Path: "/dev/x", Type: "c", Major: 1, Minor: 3}},
			UIDMappings:       []specs.LinuxIDMapping{{ContainerID: 0, HostID: 1000, Size: 1}},
			GIDMappings:       []specs.LinuxIDMapping{{ContainerID: 0, HostID: 1000, Size: 1}},
			Personality:       &specs.LinuxPersonality{Domain: specs.PerLinux32},
			RootfsPropagation: "rslave",
			Sysctl:            map[string]string{"net.ipv4.ip_forward": "1"},
			MaskedPaths:       []string{"/proc/kcore"},
			ReadonlyPaths:     []string{"/proc/sys"},
			Seccomp: &specs.LinuxSeccomp{DefaultAction: specs.ActErrno, ListenerPath: "/run/agent.sock",
				ListenerMetadata: "m", Syscalls: []specs.LinuxSyscall{{Names: []string{"mkdir"}, Action: specs.ActAllow}}},
			Resources: &specs.LinuxResources{Pids: &specs.LinuxPids{}},
		},
	}
	var buf bytes.Buffer
	if err := WriteConfig(&buf, &Config{ID: "c1", Spec: s, SeccompBPF: []byte{1}}); err != nil {
		t.Fatal(err)
	}
	kind, payload, err := ReadMessage(&buf)
	if err != nil || kind != MsgConfig {
		t.Fatalf("read config: %q %v", kind, err)
	}
	c, err := ReadConfig(payload)
	if err != nil {
		t.Fatal(err)
	}
	got := c.Spec
	if !reflect.DeepEqual(got.Process, s.Process) || !reflect.DeepEqual(got.Mounts, s.Mounts) ||
		!reflect.DeepEqual(got.Root, s.Root) || !reflect.DeepEqual(got.Hooks, s.Hooks) ||
		got.Hostname != "h" || got.Domainname != "d" || !reflect.DeepEqual(got.Annotations, s.Annotations) {
		t.Errorf("process, mounts, root, hooks, names or annotations changed on the wire:\n%+v", got)
	}
	l := got.Linux
	if !reflect.DeepEqual(l.Devices, s.Linux.Devices) || !reflect.DeepEqual(l.UIDMappings, s.Linux.UIDMappings) ||
		!reflect.DeepEqual(l.GIDMappings, s.Linux.GIDMappings) || !reflect.DeepEqual(l.Personality, s.Linux.Personality) ||
		l.RootfsPropagation != "rslave" || !reflect.DeepEqual(l.Sysctl, s.Linux.Sysctl) ||
		!reflect.DeepEqual(l.MaskedPaths, s.Linux.MaskedPaths) || !reflect.DeepEqual(l.ReadonlyPaths, s.Linux.ReadonlyPaths) {
		t.Errorf("linux fields changed on the wire: %+v", l)
	}
	if l.Seccomp == nil || l.Seccomp.ListenerPath != "/run/agent.sock" || l.Seccomp.ListenerMetadata != "m" || len(l.Seccomp.Syscalls) != 0 {
		t.Errorf("seccomp on the wire = %+v, want only the listener", l.Seccomp)
	}
	if l.Resources != nil {
		t.Errorf("resources crossed the wire; the init never uses them")
	}
	if c.ID != "c1" || len(c.SeccompBPF) != 1 {
		t.Errorf("config fields lost: %+v", c)
	}
}

func TestReadConfigRefusesNoProcess(t *testing.T) {
	if _, err := ReadConfig([]byte(`{"spec":{}}`)); err == nil {
		t.Fatal("a config without a process was accepted")
	}
}

func TestSendReceiveFd(t *testing.T) {
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	a, b := os.NewFile(uintptr(fds[0]), "a"), os.NewFile(uintptr(fds[1]), "b")
	defer a.Close()
	defer b.Close()
	f, err := os.Open("/dev/null")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := SendFd(a, int(f.Fd())); err != nil {
		t.Fatal(err)
	}
	kind, _, err := ReadMessage(b)
	if err != nil || kind != MsgSeccompFd {
		t.Fatalf("header %q %v", kind, err)
	}
	got, err := ReceiveFd(b)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(got)
	var st1, st2 unix.Stat_t
	if unix.Fstat(got, &st1) != nil || unix.Fstat(int(f.Fd()), &st2) != nil || st1.Rdev != st2.Rdev {
		t.Fatal("the received fd is not /dev/null")
	}
}

// TestMountFds sends trees as the runtime does after the Config and
// receives them as the init does: in order, each checked against its index;
// a mismatch fails and leaves nothing open.
func TestMountFds(t *testing.T) {
	tests := []struct {
		name    string
		sent    []int // indices the parent sends, in order
		want    []int // Config.IDMapTrees
		wantErr string
	}{
		{"none", nil, nil, ""},
		{"two", []int{2, 5}, []int{2, 5}, ""},
		{"wrong index", []int{3}, []int{2}, "mounts[2]"},
		{"missing", []int{2}, []int{2, 5}, "mounts[5]"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
			if err != nil {
				t.Fatal(err)
			}
			a, b := os.NewFile(uintptr(fds[0]), "a"), os.NewFile(uintptr(fds[1]), "b")
			defer b.Close()
			f, err := os.Open("/dev/null")
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			for _, i := range tt.sent {
				if err := SendMountFd(a, i, int(f.Fd())); err != nil {
					t.Fatal(err)
				}
			}
			a.Close() // the parent is gone after sending
			c := &Config{IDMapTrees: tt.want}
			err = receiveMountFds(b, c)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) || c.idmapTreeFDs != nil {
					t.Fatalf("error %v, fds %v: want an error naming %s and no fds", err, c.idmapTreeFDs, tt.wantErr)
				}
				return
			}
			if err != nil || len(c.idmapTreeFDs) != len(tt.want) {
				t.Fatalf("fds %v, %v: want one for each of %v", c.idmapTreeFDs, err, tt.want)
			}
			for _, i := range tt.want {
				fd, ok := c.idmapTreeFDs[i]
				var st1, st2 unix.Stat_t
				if !ok || unix.Fstat(fd, &st1) != nil || unix.Fstat(int(f.Fd()), &st2) != nil || st1.Rdev != st2.Rdev {
					t.Errorf("mounts[%d]: fd %d is not the one sent", i, fd)
				}
				if flags, err := unix.FcntlInt(uintptr(fd), unix.F_GETFD, 0); err != nil || flags&unix.FD_CLOEXEC == 0 {
					t.Errorf("mounts[%d]: fd flags %#x, %v: want close-on-exec", i, flags, err)
				}
				unix.Close(fd)
			}
		})
	}
}
