package rootfs

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/moby/sys/mountinfo"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/skiff-containers/skiff/errdefs"
)

func TestParseMountOptions(t *testing.T) {
	tests := []struct {
		name    string
		options []string
		want    mountOptions
	}{
		{name: "none", want: mountOptions{}},
		{
			name:    "flags and data in order",
			options: []string{"nosuid", "strictatime", "mode=755", "size=65536k"},
			want:    mountOptions{flags: unix.MS_NOSUID | unix.MS_STRICTATIME, data: "mode=755,size=65536k"},
		},
		{
			name:    "later options clear earlier ones",
			options: []string{"ro", "nosuid", "rw", "suid", "nodev"},
			want:    mountOptions{flags: unix.MS_NODEV},
		},
		{
			name:    "rbind",
			options: []string{"rbind", "ro"},
			want:    mountOptions{flags: unix.MS_BIND | unix.MS_REC | unix.MS_RDONLY},
		},
		{
			name:    "propagation kept in order",
			options: []string{"bind", "rslave", "shared"},
			want:    mountOptions{flags: unix.MS_BIND, propagation: []uintptr{unix.MS_SLAVE | unix.MS_REC, unix.MS_SHARED}},
		},
		{
			name:    "recursive attributes",
			options: []string{"rbind", "rro", "rnosuid", "rrelatime"},
			want: mountOptions{flags: unix.MS_BIND | unix.MS_REC, recAttr: &unix.MountAttr{
				Attr_set: unix.MOUNT_ATTR_RDONLY | unix.MOUNT_ATTR_NOSUID | unix.MOUNT_ATTR_RELATIME,
				Attr_clr: unix.MOUNT_ATTR__ATIME,
			}},
		},
		{
			name:    "recursive clear",
			options: []string{"rro", "rrw"},
			want:    mountOptions{recAttr: &unix.MountAttr{Attr_clr: unix.MOUNT_ATTR_RDONLY}},
		},
		{
			name:    "tmpcopyup is an extension, not data",
			options: []string{"tmpcopyup", "size=1m"},
			want:    mountOptions{tmpcopyup: true, data: "size=1m"},
		},
		{
			name:    "ridmap",
			options: []string{"rbind", "ridmap", "ro"},
			want:    mountOptions{flags: unix.MS_BIND | unix.MS_REC | unix.MS_RDONLY, idmap: true, idmapRecursive: true},
		},
		{
			name:    "defaults is nothing",
			options: []string{"defaults"},
			want:    mountOptions{},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got, err := parseMountOptions(tt.options); err != nil || !reflect.DeepEqual(got, tt.want) {
				t.Errorf("parseMountOptions(%q) = %+v, want %+v", tt.options, got, tt.want)
			}
		})
	}
}

func TestNewMountEntry(t *testing.T) {
	tests := []struct {
		name       string
		m          specs.Mount
		wantType   string
		wantSource string
		wantBind   bool
	}{
		{"relative bind source is the bundle's", specs.Mount{Destination: "/d", Type: "none", Source: "data", Options: []string{"bind"}}, "bind", "/bundle/data", true},
		{"absolute bind source kept", specs.Mount{Destination: "/d", Source: "/srv", Options: []string{"rbind"}}, "bind", "/srv", true},
		{"type bind alone binds", specs.Mount{Destination: "/d", Type: "bind", Source: "/srv"}, "bind", "/srv", true},
		{"other types keep their source", specs.Mount{Destination: "/proc", Type: "proc", Source: "proc"}, "proc", "proc", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e, err := newMountEntry(3, tt.m, "/bundle")
			if err != nil {
				t.Fatal(err)
			}
			if e.fstype != tt.wantType || e.source != tt.wantSource || e.isBind() != tt.wantBind {
				t.Errorf("got type %q source %q bind %v, want %q %q %v", e.fstype, e.source, e.isBind(), tt.wantType, tt.wantSource, tt.wantBind)
			}
			if !strings.Contains(e.name(), "mounts[3]") || !strings.Contains(e.name(), tt.m.Destination) {
				t.Errorf("name %q does not identify the mount", e.name())
			}
		})
	}
}

func TestResolveInRoot(t *testing.T) {
	root := t.TempDir()
	for _, d := range []string{"etc", "run", "a/b", "usr/lib"} {
		if err := os.MkdirAll(filepath.Join(root, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	links := map[string]string{
		"var/run":      "/run",            // absolute: from the rootfs's top
		"lib":          "usr/lib",         // relative, inside
		"a/up":         "../etc",          // relative, inside
		"a/b/top":      "../../../etc",    // climbs above the top
		"evil":         "../../../../tmp", // the classic
		"abs-dotdot":   "/../../etc",      // absolute: ".." stops at the top
		"loop":         "loop",
		"chain1":       "/a/b/chain2",
		"a/b/chain2":   "../../..",
		"etc/resolv":   "../run/resolv.conf", // dangling, inside
		"etc/dangling": "../../nowhere",      // dangling, outside
	}
	for l, target := range links {
		if err := os.MkdirAll(filepath.Dir(filepath.Join(root, l)), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.Symlink(target, filepath.Join(root, l)); err != nil {
			t.Fatal(err)
		}
	}
	tests := []struct {
		path    string
		want    string
		wantErr string // substring; the class is ErrInvalidArgument
	}{
		{path: "/", want: "/"},
		{path: "/etc/passwd", want: "/etc/passwd"},
		{path: "etc//./x/", want: "/etc/x"},
		{path: "/../../etc", want: "/etc"},
		{path: "/var/run/foo", want: "/run/foo"},
		{path: "/lib/x", want: "/usr/lib/x"},
		{path: "/a/up/x", want: "/etc/x"},
		{path: "/abs-dotdot/x", want: "/etc/x"},
		{path: "/etc/resolv", want: "/run/resolv.conf"},
		{path: "/missing/../etc", want: "/etc"},
		{path: "/a/b/top/x", wantErr: `"/a/b/top" -> "../../../etc"`},
		{path: "/evil", wantErr: `"/evil" -> "../../../../tmp"`},
		{path: "/evil/x/y", wantErr: `"/evil" -> "../../../../tmp"`},
		{path: "/chain1/x", wantErr: `"/a/b/chain2" -> "../../.."`},
		{path: "/etc/dangling", wantErr: `"/etc/dangling" -> "../../nowhere"`},
		{path: "/loop/x", wantErr: "too many levels"},
	}
	for _, tt := range tests {
		t.Run(tt.path, func(t *testing.T) {
			got, err := resolveInRoot(root, tt.path)
			if tt.wantErr != "" {
				if !errors.Is(err, errdefs.ErrInvalidArgument) || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("resolveInRoot(%q) = %q, %v; want ErrInvalidArgument mentioning %s", tt.path, got, err, tt.wantErr)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("resolveInRoot(%q) = %q, %v; want %q", tt.path, got, err, tt.want)
			}
		})
	}
}

func TestCheckProcMount(t *testing.T) {
	tests := []struct {
		resolved, source string
		sourceIsPath     bool
		ok               bool
	}{
		{"/etc", "x", true, true},
		{"/procfoo", "x", true, true},
		{"/proc", "/proc", true, true}, // the host's procfs is a procfs
		{"/proc", "/etc", true, false},
		{"/proc", "tmpfs", false, false},
		{"/proc/cpuinfo", "/var/lib/lxcfs/proc/cpuinfo", true, true},
		{"/proc/sys/kernel/ns_last_pid", "/x", true, true},
		{"/proc/version", "/dev/null", true, false},
		{"/proc/sys/kernel", "/x", true, false},
	}
	for _, tt := range tests {
		t.Run(tt.resolved+"<-"+tt.source, func(t *testing.T) {
			err := checkProcMount(tt.resolved, tt.source, tt.sourceIsPath)
			if tt.ok != (err == nil) {
				t.Fatalf("checkProcMount(%q, %q) = %v, want ok=%v", tt.resolved, tt.source, err, tt.ok)
			}
			if err != nil && !errors.Is(err, errdefs.ErrInvalidArgument) {
				t.Fatalf("error class: %v", err)
			}
		})
	}
}

func TestCgroupV1Hierarchies(t *testing.T) {
	procCgroup, err := parseProcCgroup(strings.NewReader("12:cpu,cpuacct:/user.slice\n3:memory:/docker/abc\n1:name=systemd:/init.scope\n0::/init.scope\n"))
	if err != nil {
		t.Fatal(err)
	}
	if procCgroup[""] != "/init.scope" || procCgroup["cpu,cpuacct"] != "/user.slice" {
		t.Fatalf("parseProcCgroup: %v", procCgroup)
	}
	mounts := []*mountinfo.Info{
		{Mountpoint: "/sys/fs/cgroup/systemd", FSType: "cgroup", Root: "/", VFSOptions: "rw,xattr,name=systemd"},
		{Mountpoint: "/sys/fs/cgroup/cpu,cpuacct", FSType: "cgroup", Root: "/", VFSOptions: "rw,cpu,cpuacct"},
		{Mountpoint: "/sys/fs/cgroup/memory", FSType: "cgroup", Root: "/docker", VFSOptions: "rw,memory"},
		{Mountpoint: "/elsewhere/memory", FSType: "cgroup", Root: "/", VFSOptions: "rw,memory"}, // a second mount of it
		{Mountpoint: "/sys/fs/cgroup/unified", FSType: "cgroup2", Root: "/", VFSOptions: "rw"},
	}
	hs := cgroupV1Hierarchies(mounts, procCgroup)
	var got []string
	for _, h := range hs {
		got = append(got, h.dirName()+"="+strings.Join(h.subsystems, "+"))
	}
	want := []string{"systemd=name=systemd", "cpu,cpuacct=cpu+cpuacct", "memory=memory"}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("hierarchies %v, want %v", got, want)
	}

	tests := []struct {
		name   string
		h      *cgroupHierarchy
		paths  map[string]string
		want   string
		wantOK bool
	}{
		{"given path by controller", hs[1], map[string]string{"cpuacct": "/sys/fs/cgroup/cpu,cpuacct/c1"}, "/sys/fs/cgroup/cpu,cpuacct/c1", true},
		{"given path by name=", hs[0], map[string]string{"name=systemd": "/sys/fs/cgroup/systemd/c1"}, "/sys/fs/cgroup/systemd/c1", true},
		{"given path by bare name", hs[0], map[string]string{"systemd": "/sys/fs/cgroup/systemd/c2"}, "/sys/fs/cgroup/systemd/c2", true},
		{"own cgroup", hs[1], nil, "/sys/fs/cgroup/cpu,cpuacct/user.slice", true},
		{"own cgroup below the mount's root", hs[2], nil, "/sys/fs/cgroup/memory/abc", true},
		{"own cgroup outside the mount", &cgroupHierarchy{subsystems: []string{"pids"}, mountpoint: "/x", root: "/a", own: "/b"}, nil, "", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, ok := cgroupSource(tt.h, tt.paths)
			if got != tt.want || ok != tt.wantOK {
				t.Errorf("cgroupSource = %q, %v; want %q, %v", got, ok, tt.want, tt.wantOK)
			}
		})
	}
}

func TestDevices(t *testing.T) {
	mode := func(m os.FileMode) *os.FileMode { return &m }
	modeTests := []struct {
		d       specs.LinuxDevice
		want    uint32
		wantErr bool
	}{
		{specs.LinuxDevice{Type: "c"}, unix.S_IFCHR | 0o666, false},
		{specs.LinuxDevice{Type: "u", FileMode: mode(0o600)}, unix.S_IFCHR | 0o600, false},
		{specs.LinuxDevice{Type: "b", FileMode: mode(0o660 | os.ModeSetgid)}, unix.S_IFBLK | 0o2660, false},
		{specs.LinuxDevice{Type: "p", FileMode: mode(0o644)}, unix.S_IFIFO | 0o644, false},
		{specs.LinuxDevice{Type: "s"}, 0, true},
	}
	for _, tt := range modeTests {
		got, err := deviceMode(&tt.d)
		if (err != nil) != tt.wantErr || got != tt.want {
			t.Errorf("deviceMode(%+v) = %o, %v; want %o, err %v", tt.d, got, err, tt.want, tt.wantErr)
		}
	}

	spec := &specs.Spec{Linux: &specs.Linux{Devices: []specs.LinuxDevice{{Path: "/dev/null", Type: "c", Major: 1, Minor: 3}, {Path: "/dev/fuse", Type: "c", Major: 10, Minor: 229}}}}
	var paths []string
	for _, d := range containerDevices(spec) {
		paths = append(paths, d.Path)
	}
	want := []string{"/dev/null", "/dev/fuse", "/dev/zero", "/dev/full", "/dev/random", "/dev/urandom", "/dev/tty"}
	if !reflect.DeepEqual(paths, want) {
		t.Errorf("containerDevices = %v, want %v", paths, want)
	}

	setupTests := []struct {
		mounts []specs.Mount
		want   bool
	}{
		{nil, true},
		{[]specs.Mount{{Destination: "/dev", Type: "tmpfs"}}, true},
		{[]specs.Mount{{Destination: "/dev/", Source: "/dev", Options: []string{"rbind"}}}, false},
		{[]specs.Mount{{Destination: "/dev", Type: "bind", Source: "/dev"}}, false},
	}
	for _, tt := range setupTests {
		if got := needsDevSetup(&specs.Spec{Mounts: tt.mounts}); got != tt.want {
			t.Errorf("needsDevSetup(%+v) = %v, want %v", tt.mounts, got, tt.want)
		}
	}
}

func TestPropagationFlag(t *testing.T) {
	for s, want := range map[string]uintptr{"rslave": unix.MS_SLAVE | unix.MS_REC, "private": unix.MS_PRIVATE, "rshared": unix.MS_SHARED | unix.MS_REC} {
		if got, err := propagationFlag(s); err != nil || got != want {
			t.Errorf("propagationFlag(%q) = %#x, %v; want %#x", s, got, err, want)
		}
	}
	if _, err := propagationFlag("bogus"); !errors.Is(err, errdefs.ErrInvalidArgument) {
		t.Errorf("propagationFlag(bogus) = %v, want ErrInvalidArgument", err)
	}
}
