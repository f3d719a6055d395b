package idmap

import (
	"errors"
	"os"
	"os/exec"
	"strings"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/skiff-containers/skiff/errdefs"
)

func requireRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Fatal("this test needs root (go test ./... runs as root in CI)")
	}
}

// nsRead prints file as seen from inside the user namespace ns.
func nsRead(t *testing.T, ns *os.File, file string) string {
	t.Helper()
	cmd := exec.Command("nsenter", "--user=/proc/self/fd/3", "--preserve-credentials", "cat", file)
	cmd.ExtraFiles = []*os.File{ns}
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("nsenter cat %s: %v\n%s", file, err, out)
	}
	return strings.Join(strings.Fields(string(out)), " ")
}

// assertNoChildren fails if this process has a child left (running or
// unreaped).
func assertNoChildren(t *testing.T) {
	t.Helper()
	var ws unix.WaitStatus
	pid, err := unix.Wait4(-1, &ws, unix.WNOHANG|unix.WALL, nil)
	if !errors.Is(err, unix.ECHILD) {
		t.Errorf("a child process is left behind: wait4 = %d, %v", pid, err)
	}
}

func TestUsernsFD(t *testing.T) {
	requireRoot(t)
	uid := []specs.LinuxIDMapping{{ContainerID: 0, HostID: 1000, Size: 1}, {ContainerID: 1, HostID: 200000, Size: 10}}
	gid := []specs.LinuxIDMapping{{ContainerID: 0, HostID: 2000, Size: 5}}
	ns, err := UsernsFD(uid, gid)
	if err != nil {
		t.Fatal(err)
	}
	defer ns.Close()
	assertNoChildren(t)

	typ, err := unix.IoctlRetInt(int(ns.Fd()), unix.NS_GET_NSTYPE)
	if err != nil || typ != unix.CLONE_NEWUSER {
		t.Fatalf("NS_GET_NSTYPE = %#x, %v; want CLONE_NEWUSER", typ, err)
	}
	var got, self unix.Stat_t
	if err := unix.Fstat(int(ns.Fd()), &got); err != nil {
		t.Fatal(err)
	}
	if err := unix.Stat("/proc/self/ns/user", &self); err != nil {
		t.Fatal(err)
	}
	if got.Ino == self.Ino {
		t.Fatal("UsernsFD returned the caller's own user namespace")
	}
	if flags, err := unix.FcntlInt(ns.Fd(), unix.F_GETFD, 0); err != nil || flags&unix.FD_CLOEXEC == 0 {
		t.Errorf("fd flags %#x, %v: want close-on-exec", flags, err)
	}
	if m := nsRead(t, ns, "/proc/self/uid_map"); m != "0 1000 1 1 200000 10" {
		t.Errorf("uid_map %q", m)
	}
	if m := nsRead(t, ns, "/proc/self/gid_map"); m != "0 2000 5" {
		t.Errorf("gid_map %q", m)
	}
	if m := nsRead(t, ns, "/proc/self/setgroups"); m != "deny" {
		t.Errorf("setgroups %q, want deny", m)
	}
	assertNoChildren(t)
}

func TestUsernsFDInvalid(t *testing.T) {
	requireRoot(t)
	one := []specs.LinuxIDMapping{{ContainerID: 0, HostID: 1000, Size: 1}}
	many := make([]specs.LinuxIDMapping, 341)
	for i := range many {
		many[i] = specs.LinuxIDMapping{ContainerID: uint32(i), HostID: uint32(1000 + i), Size: 1}
	}
	tests := []struct {
		name     string
		uid, gid []specs.LinuxIDMapping
		want     string
	}{
		{"no uid mappings", nil, one, "uid mappings, none"},
		{"no gid mappings", one, nil, "gid mappings, none"},
		{"size 0", []specs.LinuxIDMapping{{ContainerID: 0, HostID: 1, Size: 0}}, one, "{containerID 0, hostID 1, size 0} has size 0"},
		{"overflow", one, []specs.LinuxIDMapping{{ContainerID: 0, HostID: 4294967290, Size: 10}}, "goes past"},
		{"container side overlap", []specs.LinuxIDMapping{{ContainerID: 0, HostID: 1000, Size: 10}, {ContainerID: 5, HostID: 5000, Size: 1}}, one, "overlap"},
		{"host side overlap", one, []specs.LinuxIDMapping{{ContainerID: 0, HostID: 1000, Size: 10}, {ContainerID: 50, HostID: 1009, Size: 1}}, "gid mappings {containerID 0, hostID 1000, size 10} and {containerID 50, hostID 1009, size 1} overlap"},
		{"too many", many, one, "at most 340"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f, err := UsernsFD(tt.uid, tt.gid)
			if err == nil {
				f.Close()
				t.Fatal("no error")
			}
			if !errors.Is(err, errdefs.ErrInvalidArgument) || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %q: want ErrInvalidArgument mentioning %q", err, tt.want)
			}
		})
	}
	assertNoChildren(t)
}

func TestMountMappings(t *testing.T) {
	own := []specs.LinuxIDMapping{{ContainerID: 0, HostID: 1000, Size: 1}}
	ctr := []specs.LinuxIDMapping{{ContainerID: 0, HostID: 100000, Size: 65536}}
	withUserns := func(m ...specs.Mount) *specs.Spec {
		return &specs.Spec{Mounts: m, Linux: &specs.Linux{UIDMappings: ctr, GIDMappings: ctr}}
	}
	noUserns := func(m ...specs.Mount) *specs.Spec { return &specs.Spec{Mounts: m} }
	tests := []struct {
		name    string
		spec    *specs.Spec
		mapped  bool
		uid     []specs.LinuxIDMapping
		wantErr string
	}{
		{"plain bind", withUserns(specs.Mount{Destination: "/d", Source: "/s", Options: []string{"bind"}}), false, nil, ""},
		{"own mappings", noUserns(specs.Mount{Destination: "/d", Source: "/s", Options: []string{"rbind"}, UIDMappings: own, GIDMappings: own}), true, own, ""},
		{"own mappings win", withUserns(specs.Mount{Destination: "/d", Source: "/s", Options: []string{"bind", "idmap"}, UIDMappings: own, GIDMappings: own}), true, own, ""},
		{"idmap uses the container's", withUserns(specs.Mount{Destination: "/d", Source: "/s", Options: []string{"bind", "idmap"}}), true, ctr, ""},
		{"ridmap with type bind", withUserns(specs.Mount{Destination: "/d", Type: "bind", Source: "/s", Options: []string{"ridmap"}}), true, ctr, ""},
		{"idmap without any mappings", noUserns(specs.Mount{Destination: "/d", Source: "/s", Options: []string{"bind", "idmap"}}), false, nil, "no user namespace mappings"},
		{"uid without gid", noUserns(specs.Mount{Destination: "/d", Source: "/s", Options: []string{"bind"}, UIDMappings: own}), false, nil, "must be given together"},
		{"not a bind", withUserns(specs.Mount{Destination: "/d", Type: "tmpfs", Source: "tmpfs", Options: []string{"idmap"}}), false, nil, "only bind mounts"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			uid, gid, mapped, err := MountMappings(tt.spec, 0)
			if tt.wantErr != "" {
				if !errors.Is(err, errdefs.ErrInvalidArgument) || !strings.Contains(err.Error(), tt.wantErr) || !strings.Contains(err.Error(), "mounts[0]") {
					t.Errorf("error %v: want ErrInvalidArgument naming mounts[0] and mentioning %q", err, tt.wantErr)
				}
				return
			}
			if err != nil || mapped != tt.mapped || Format(uid) != Format(tt.uid) || Format(gid) != Format(tt.uid) {
				t.Errorf("= %v %v %v %v; want %v %v", uid, gid, mapped, err, tt.uid, tt.mapped)
			}
		})
	}
}

func TestForMounts(t *testing.T) {
	requireRoot(t)
	own := []specs.LinuxIDMapping{{ContainerID: 0, HostID: 1000, Size: 1}}
	ctr := []specs.LinuxIDMapping{{ContainerID: 0, HostID: 100000, Size: 65536}}
	s := &specs.Spec{
		Linux: &specs.Linux{UIDMappings: ctr, GIDMappings: ctr},
		Mounts: []specs.Mount{
			{Destination: "/proc", Type: "proc", Source: "proc"},
			{Destination: "/a", Source: "/a", Options: []string{"bind", "idmap"}},
			{Destination: "/b", Source: "/b", Options: []string{"rbind", "ridmap"}},
			{Destination: "/c", Source: "/c", Options: []string{"bind"}, UIDMappings: own, GIDMappings: own},
		},
	}
	files, err := ForMounts(s)
	if err != nil {
		t.Fatal(err)
	}
	defer CloseAll(files)
	if len(files) != 3 || files[1] == nil || files[1] != files[2] || files[3] == nil || files[3] == files[1] {
		t.Fatalf("files %v: want mounts 1 and 2 sharing one namespace, 3 its own", files)
	}
	if m := nsRead(t, files[1], "/proc/self/uid_map"); m != "0 100000 65536" {
		t.Errorf("mounts[1] uid_map %q", m)
	}
	if m := nsRead(t, files[3], "/proc/self/gid_map"); m != "0 1000 1" {
		t.Errorf("mounts[3] gid_map %q", m)
	}
	s.Mounts = append(s.Mounts, specs.Mount{Destination: "/e", Source: "/e", Options: []string{"bind"}, GIDMappings: own})
	if files, err := ForMounts(s); err == nil || !errors.Is(err, errdefs.ErrInvalidArgument) || !strings.Contains(err.Error(), "mounts[4]") {
		CloseAll(files)
		t.Errorf("error %v: want ErrInvalidArgument naming mounts[4]", err)
	}
	assertNoChildren(t)
}
