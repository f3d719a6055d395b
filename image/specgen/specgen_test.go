package specgen

import (
	"errors"
	"net/netip"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"

	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/skiff-containers/skiff/errdefs"
	"github.com/skiff-containers/skiff/internal/testutil"
	"github.com/skiff-containers/skiff/runtime/caps"
	rtspec "github.com/skiff-containers/skiff/runtime/spec"
)

const testID = "0123456789abcdef0123456789abcdef"

const testPasswd = `root:x:0:0:root:/root:/bin/sh
app:x:1000:1000:app:/home/app:/bin/sh
# a comment
multi:x:1001:1001::/:/bin/sh
`

const testGroup = `root:x:0:
wheel:x:10:multi,app
audio:x:29:multi
app:x:1000:
staff:x:50:
`

// fakeRootfs makes a root filesystem holding only /etc/passwd and
// /etc/group (nil data: no file).
func fakeRootfs(t *testing.T, passwd, group *string) string {
	t.Helper()
	dir := t.TempDir()
	if err := os.MkdirAll(filepath.Join(dir, "etc"), 0o755); err != nil {
		t.Fatal(err)
	}
	for name, data := range map[string]*string{"passwd": passwd, "group": group} {
		if data == nil {
			continue
		}
		if err := os.WriteFile(filepath.Join(dir, "etc", name), []byte(*data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func ptr[T any](v T) *T { return &v }

func image(entrypoint, cmd, env []string) ocispec.Image {
	return ocispec.Image{
		Platform: ocispec.Platform{OS: "linux", Architecture: "amd64"},
		Config:   ocispec.ImageConfig{Entrypoint: entrypoint, Cmd: cmd, Env: env},
	}
}

func mustGenerate(t *testing.T, img ocispec.Image, rootfs string, o Options) (*specs.Spec, *Info) {
	t.Helper()
	s, info, err := Generate(img, rootfs, o)
	if err != nil {
		t.Fatalf("Generate: %v", err)
	}
	return s, info
}

func wantClass(t *testing.T, err, class error) {
	t.Helper()
	if err == nil {
		t.Fatalf("got no error, want %v", class)
	}
	if !errors.Is(err, class) {
		t.Fatalf("error %q is not %v", err, class)
	}
}

func TestCommand(t *testing.T) {
	rootfs := fakeRootfs(t, ptr(testPasswd), ptr(testGroup))
	tests := []struct {
		name           string
		imgEP, imgCmd  []string
		ep             []string
		epSet          bool
		cmd            []string
		want           []string
		wantInvalidArg bool
	}{
		{name: "image cmd only", imgCmd: []string{"sh"}, want: []string{"sh"}},
		{name: "image entrypoint and cmd", imgEP: []string{"/ep", "-x"}, imgCmd: []string{"a", "b"}, want: []string{"/ep", "-x", "a", "b"}},
		{name: "args replace cmd", imgEP: []string{"/ep"}, imgCmd: []string{"a"}, cmd: []string{"z"}, want: []string{"/ep", "z"}},
		{name: "args without entrypoint", imgCmd: []string{"a"}, cmd: []string{"echo", "hi"}, want: []string{"echo", "hi"}},
		{name: "entrypoint drops image cmd", imgEP: []string{"/ep"}, imgCmd: []string{"a"}, ep: []string{"/bin/x"}, epSet: true, want: []string{"/bin/x"}},
		{name: "entrypoint with args", imgEP: []string{"/ep"}, imgCmd: []string{"a"}, ep: []string{"/bin/x"}, epSet: true, cmd: []string{"1"}, want: []string{"/bin/x", "1"}},
		{name: "empty entrypoint with args", imgEP: []string{"/ep"}, imgCmd: []string{"a"}, epSet: true, cmd: []string{"ls"}, want: []string{"ls"}},
		{name: "entrypoint [\"\"] with args", imgEP: []string{"/ep"}, ep: []string{""}, epSet: true, cmd: []string{"ls", "-l"}, want: []string{"ls", "-l"}},
		{name: "empty entrypoint drops image cmd", imgEP: []string{"/ep"}, imgCmd: []string{"a"}, epSet: true, wantInvalidArg: true},
		{name: "nothing at all", wantInvalidArg: true},
		{name: "NUL in argument", cmd: []string{"a\x00b"}, wantInvalidArg: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			o := Options{ID: testID, ImageRef: "example:1", Entrypoint: tc.ep, EntrypointSet: tc.epSet, Cmd: tc.cmd}
			s, _, err := Generate(image(tc.imgEP, tc.imgCmd, nil), rootfs, o)
			if tc.wantInvalidArg {
				wantClass(t, err, errdefs.ErrInvalidArgument)
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(s.Process.Args, tc.want) {
				t.Fatalf("args %q, want %q", s.Process.Args, tc.want)
			}
		})
	}
}

func TestEnvironment(t *testing.T) {
	rootfs := fakeRootfs(t, ptr(testPasswd), ptr(testGroup))
	defPath := "PATH=" + defaultPathEnv
	tests := []struct {
		name     string
		imgEnv   []string
		userEnv  []string
		tty      bool
		hostname string
		want     []string
		wantErr  bool
	}{
		{name: "defaults", want: []string{defPath, "HOSTNAME=0123456789ab"}},
		{name: "tty", tty: true, want: []string{defPath, "HOSTNAME=0123456789ab", "TERM=xterm"}},
		{name: "hostname", hostname: "web", want: []string{defPath, "HOSTNAME=web"}},
		{name: "image PATH replaces default", imgEnv: []string{"PATH=/opt/bin", "A=1"},
			want: []string{"PATH=/opt/bin", "HOSTNAME=0123456789ab", "A=1"}},
		{name: "user overrides image by name, user first", imgEnv: []string{"A=1", "B=2"}, userEnv: []string{"B=3", "C=4"},
			want: []string{defPath, "HOSTNAME=0123456789ab", "B=3", "C=4", "A=1"}},
		{name: "user overrides TERM", tty: true, userEnv: []string{"TERM=dumb"},
			want: []string{defPath, "HOSTNAME=0123456789ab", "TERM=dumb"}},
		{name: "bare name unsets", imgEnv: []string{"A=1"}, userEnv: []string{"A", "HOSTNAME"},
			want: []string{defPath}},
		{name: "empty value kept", userEnv: []string{"E="}, want: []string{defPath, "HOSTNAME=0123456789ab", "E="}},
		{name: "empty name refused", userEnv: []string{"=x"}, wantErr: true},
		{name: "NUL refused", userEnv: []string{"A=\x00"}, wantErr: true},
		{name: "empty image name refused", imgEnv: []string{"=x"}, wantErr: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			o := Options{ID: testID, Env: tc.userEnv, Tty: tc.tty, Hostname: tc.hostname}
			s, _, err := Generate(image(nil, []string{"sh"}, tc.imgEnv), rootfs, o)
			if tc.wantErr {
				wantClass(t, err, errdefs.ErrInvalidArgument)
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(s.Process.Env, tc.want) {
				t.Fatalf("env %q, want %q", s.Process.Env, tc.want)
			}
			if s.Process.Terminal != tc.tty {
				t.Fatalf("terminal %v, want %v", s.Process.Terminal, tc.tty)
			}
		})
	}
}

func TestUser(t *testing.T) {
	rootfs := fakeRootfs(t, ptr(testPasswd), ptr(testGroup))
	noFiles := fakeRootfs(t, nil, nil)
	tests := []struct {
		name, user, imgUser string
		rootfs              string
		uid, gid            uint32
		gids                []uint32
		class               error
	}{
		{name: "default root", uid: 0, gid: 0, gids: []uint32{0}},
		{name: "root by name", user: "root", gids: []uint32{0}},
		{name: "name with groups", user: "app", uid: 1000, gid: 1000, gids: []uint32{1000, 10}},
		{name: "name in two groups", user: "multi", uid: 1001, gid: 1001, gids: []uint32{1001, 10, 29}},
		{name: "uid in passwd gets its groups", user: "1000", uid: 1000, gid: 1000, gids: []uint32{1000, 10}},
		{name: "uid not in passwd", user: "4242", uid: 4242, gid: 0, gids: []uint32{0}},
		{name: "uid:gid not in files", user: "4242:4343", uid: 4242, gid: 4343, gids: []uint32{4343}},
		{name: "name:group", user: "app:staff", uid: 1000, gid: 50, gids: []uint32{50}},
		{name: "name:gid", user: "multi:29", uid: 1001, gid: 29, gids: []uint32{29}},
		{name: "name:unknown gid", user: "app:9999", uid: 1000, gid: 9999, gids: []uint32{9999}},
		{name: "image user", imgUser: "app", uid: 1000, gid: 1000, gids: []uint32{1000, 10}},
		{name: "-u over image user", imgUser: "app", user: "multi:audio", uid: 1001, gid: 29, gids: []uint32{29}},
		{name: "numeric without files", rootfs: noFiles, user: "7:8", uid: 7, gid: 8, gids: []uint32{8}},
		{name: "root without files", rootfs: noFiles, gids: []uint32{0}},
		{name: "unknown user", user: "nobody", class: errdefs.ErrNotFound},
		{name: "unknown image user", imgUser: "ghost", class: errdefs.ErrNotFound},
		{name: "unknown group", user: "app:nogroup", class: errdefs.ErrNotFound},
		{name: "name without files", rootfs: noFiles, user: "app", class: errdefs.ErrNotFound},
		{name: "negative uid", user: "-1", class: errdefs.ErrInvalidArgument},
		{name: "uid too large", user: "2147483648", class: errdefs.ErrInvalidArgument},
		{name: "gid overflow", user: "1:99999999999999999999", class: errdefs.ErrInvalidArgument},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			img := image(nil, []string{"sh"}, nil)
			img.Config.User = tc.imgUser
			root := rootfs
			if tc.rootfs != "" {
				root = tc.rootfs
			}
			s, info, err := Generate(img, root, Options{ID: testID, ImageRef: "example/img:2", User: tc.user})
			if tc.class != nil {
				wantClass(t, err, tc.class)
				if tc.class == errdefs.ErrNotFound {
					name := tc.user
					if name == "" {
						name = tc.imgUser
					}
					name, _, _ = strings.Cut(name, ":")
					if !strings.Contains(err.Error(), name) || !strings.Contains(err.Error(), "example/img:2") {
						t.Fatalf("error %q does not name the user and the image", err)
					}
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			want := specs.User{UID: tc.uid, GID: tc.gid, AdditionalGids: tc.gids}
			if !reflect.DeepEqual(s.Process.User, want) {
				t.Fatalf("user %+v, want %+v", s.Process.User, want)
			}
			wantSpec := tc.user
			if wantSpec == "" {
				wantSpec = tc.imgUser
			}
			if info.User != wantSpec {
				t.Fatalf("Info.User %q, want %q", info.User, wantSpec)
			}
		})
	}
}

// TestUserFilesStayInRootfs: /etc/passwd and /etc/group are resolved inside
// the root filesystem, so symlinks pointing at host files never read them.
func TestUserFilesStayInRootfs(t *testing.T) {
	hostDir := t.TempDir()
	hostPasswd := filepath.Join(hostDir, "passwd")
	hostGroup := filepath.Join(hostDir, "group")
	if err := os.WriteFile(hostPasswd, []byte("escapee:x:4242:4242::/:/bin/sh\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(hostGroup, []byte("hostgrp:x:4343:escapee\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	img := image(nil, []string{"sh"}, nil)

	link := func(t *testing.T, rootfs, name, target string) {
		t.Helper()
		if err := os.Symlink(target, filepath.Join(rootfs, "etc", name)); err != nil {
			t.Fatal(err)
		}
	}
	for _, tc := range []struct{ name, passwdTarget, groupTarget string }{
		{"absolute", hostPasswd, hostGroup},
		{"dotdot", "../../../../../../../../../.." + hostPasswd, "../../../../../../../../../.." + hostGroup},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rootfs := fakeRootfs(t, nil, nil)
			link(t, rootfs, "passwd", tc.passwdTarget)
			link(t, rootfs, "group", tc.groupTarget)
			_, _, err := Generate(img, rootfs, Options{ID: testID, User: "escapee"})
			wantClass(t, err, errdefs.ErrNotFound)
			_, _, err = Generate(img, rootfs, Options{ID: testID, User: "0:hostgrp"})
			wantClass(t, err, errdefs.ErrNotFound)
			s, _ := mustGenerate(t, img, rootfs, Options{ID: testID, User: "4242"})
			if want := []uint32{0}; !reflect.DeepEqual(s.Process.User.AdditionalGids, want) || s.Process.User.GID != 0 {
				t.Fatalf("user %+v: got the host's entries", s.Process.User)
			}
		})
	}

	t.Run("link resolved inside the rootfs", func(t *testing.T) {
		// The same absolute link, with a file at its target inside the
		// rootfs: that file is read, not the host's.
		rootfs := fakeRootfs(t, nil, nil)
		link(t, rootfs, "passwd", hostPasswd)
		inside := filepath.Join(rootfs, hostPasswd)
		if err := os.MkdirAll(filepath.Dir(inside), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(inside, []byte("escapee:x:7:8::/:/bin/sh\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		s, _ := mustGenerate(t, img, rootfs, Options{ID: testID, User: "escapee"})
		if s.Process.User.UID != 7 || s.Process.User.GID != 8 {
			t.Fatalf("user %+v, want uid 7 gid 8 from the rootfs's file", s.Process.User)
		}
	})

	t.Run("fifo refused", func(t *testing.T) {
		rootfs := fakeRootfs(t, nil, nil)
		if err := unix.Mkfifo(filepath.Join(rootfs, "etc", "passwd"), 0o644); err != nil {
			t.Fatal(err)
		}
		_, _, err := Generate(img, rootfs, Options{ID: testID, User: "app"})
		wantClass(t, err, errdefs.ErrInvalidArgument)
	})
}

func TestWorkingDir(t *testing.T) {
	rootfs := fakeRootfs(t, ptr(testPasswd), ptr(testGroup))
	tests := []struct {
		name, img, flag, want string
		wantErr               bool
	}{
		{name: "default", want: "/"},
		{name: "image", img: "/srv/app", want: "/srv/app"},
		{name: "flag over image", img: "/srv/app", flag: "/tmp", want: "/tmp"},
		{name: "cleaned", flag: "/a//b/../c/", want: "/a/c"},
		{name: "relative flag", flag: "tmp", wantErr: true},
		{name: "relative image", img: "srv", wantErr: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			img := image(nil, []string{"sh"}, nil)
			img.Config.WorkingDir = tc.img
			s, _, err := Generate(img, rootfs, Options{ID: testID, WorkingDir: tc.flag})
			if tc.wantErr {
				wantClass(t, err, errdefs.ErrInvalidArgument)
				if !strings.Contains(err.Error(), "absolute") {
					t.Fatalf("error %q does not say why", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if s.Process.Cwd != tc.want {
				t.Fatalf("cwd %q, want %q", s.Process.Cwd, tc.want)
			}
		})
	}
}

func mountDests(ms []specs.Mount) []string {
	var out []string
	for _, m := range ms {
		out = append(out, m.Destination)
	}
	return out
}

func findMount(t *testing.T, s *specs.Spec, dest string) specs.Mount {
	t.Helper()
	for _, m := range s.Mounts {
		if m.Destination == dest {
			return m
		}
	}
	t.Fatalf("no mount at %s in %v", dest, mountDests(s.Mounts))
	return specs.Mount{}
}

func nsTypes(s *specs.Spec) []specs.LinuxNamespaceType {
	var out []specs.LinuxNamespaceType
	for _, n := range s.Linux.Namespaces {
		out = append(out, n.Type)
	}
	return out
}

// allowedSyscalls lists the syscalls an SCMP_ACT_ALLOW rule of the profile
// names.
func allowedSyscalls(p *specs.LinuxSeccomp) []string {
	var out []string
	for _, r := range p.Syscalls {
		if r.Action == specs.ActAllow {
			out = append(out, r.Names...)
		}
	}
	return out
}

func TestDefaults(t *testing.T) {
	rootfs := fakeRootfs(t, ptr(testPasswd), ptr(testGroup))
	s, info := mustGenerate(t, image(nil, []string{"sh"}, nil), rootfs, Options{ID: testID})

	if s.Version != OCIVersion || s.Root.Path != rootfs || s.Root.Readonly {
		t.Fatalf("version %q root %+v", s.Version, s.Root)
	}
	if s.Hostname != "0123456789ab" || info.Hostname != "0123456789ab" {
		t.Fatalf("hostname %q / %q, want the id's first 12 characters", s.Hostname, info.Hostname)
	}
	p := s.Process
	c := p.Capabilities
	want := DefaultCapabilities()
	if len(want) != 14 || !reflect.DeepEqual(c.Bounding, want) || !reflect.DeepEqual(c.Permitted, want) || !reflect.DeepEqual(c.Effective, want) {
		t.Fatalf("capabilities %+v, want docker's 14 in bounding, permitted and effective", c)
	}
	if len(c.Inheritable) != 0 || len(c.Ambient) != 0 {
		t.Fatalf("inheritable %v ambient %v, want none", c.Inheritable, c.Ambient)
	}
	if p.NoNewPrivileges || p.Rlimits != nil || p.OOMScoreAdj == nil || *p.OOMScoreAdj != 0 || p.Terminal || p.Cwd != "/" {
		t.Fatalf("process %+v: want no_new_privs false, no rlimits, oomScoreAdj 0, no terminal, cwd /", p)
	}

	wantMounts := []string{"/proc", "/dev", "/dev/pts", "/sys", "/sys/fs/cgroup", "/dev/mqueue", "/dev/shm"}
	if got := mountDests(s.Mounts); !reflect.DeepEqual(got, wantMounts) {
		t.Fatalf("mounts %v, want %v", got, wantMounts)
	}
	if shm := findMount(t, s, "/dev/shm"); !slices.Contains(shm.Options, "size=67108864") || shm.Type != "tmpfs" {
		t.Fatalf("/dev/shm %+v, want a 64 MiB tmpfs", shm)
	}
	for _, ro := range []string{"/sys", "/sys/fs/cgroup"} {
		if m := findMount(t, s, ro); !slices.Contains(m.Options, "ro") {
			t.Fatalf("%s %+v is not read-only", ro, m)
		}
	}
	if m := findMount(t, s, "/proc"); slices.Contains(m.Options, "ro") {
		t.Fatalf("/proc %+v is read-only", m)
	}

	for _, masked := range []string{"/proc/acpi", "/proc/asound", "/proc/interrupts", "/proc/kcore", "/proc/keys",
		"/proc/latency_stats", "/proc/sched_debug", "/proc/scsi", "/proc/timer_list", "/proc/timer_stats",
		"/sys/devices/virtual/powercap", "/sys/firmware"} {
		if !slices.Contains(s.Linux.MaskedPaths, masked) {
			t.Errorf("%s not masked", masked)
		}
	}
	for _, extra := range s.Linux.MaskedPaths[12:] {
		if !strings.HasPrefix(extra, "/sys/devices/system/cpu/cpu") || !strings.HasSuffix(extra, "/thermal_throttle") {
			t.Errorf("unexpected masked path %s", extra)
		}
	}
	if want := []string{"/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"}; !reflect.DeepEqual(s.Linux.ReadonlyPaths, want) {
		t.Fatalf("readonly paths %v, want %v", s.Linux.ReadonlyPaths, want)
	}

	wantNS := []specs.LinuxNamespaceType{specs.MountNamespace, specs.NetworkNamespace, specs.UTSNamespace, specs.PIDNamespace, specs.IPCNamespace}
	if cgroup2Host() {
		wantNS = append(wantNS, specs.CgroupNamespace)
	}
	if got := nsTypes(s); !reflect.DeepEqual(got, wantNS) {
		t.Fatalf("namespaces %v, want %v", got, wantNS)
	}
	for _, n := range s.Linux.Namespaces {
		if n.Path != "" {
			t.Fatalf("namespace %+v joins a path", n)
		}
	}

	if s.Linux.Seccomp == nil || s.Linux.Seccomp.DefaultAction != specs.ActErrno {
		t.Fatalf("seccomp %+v, want docker's default profile", s.Linux.Seccomp)
	}
	if allowed := allowedSyscalls(s.Linux.Seccomp); !slices.Contains(allowed, "read") || slices.Contains(allowed, "mount") {
		t.Fatalf("seccomp profile is not docker's default for its caps (read allowed: %v, mount allowed: %v)",
			slices.Contains(allowed, "read"), slices.Contains(allowed, "mount"))
	}

	rules := s.Linux.Resources.Devices
	if len(rules) != 8 || rules[0].Allow || rules[0].Access != "rwm" || rules[0].Type != "" {
		t.Fatalf("device rules %+v, want docker's 8 starting with deny all", rules)
	}
	var allowed []string
	for _, r := range rules[1:] {
		if r.Allow {
			allowed = append(allowed, r.Type+" "+strconv.FormatInt(*r.Major, 10)+":"+strconv.FormatInt(*r.Minor, 10))
		}
	}
	if want := []string{"c 1:5", "c 1:3", "c 1:9", "c 1:8", "c 5:0", "c 5:1"}; !reflect.DeepEqual(allowed, want) {
		t.Fatalf("allowed devices %v, want %v", allowed, want)
	}
	if len(s.Linux.Devices) != 0 {
		t.Fatalf("devices %+v, want only the runtime's defaults", s.Linux.Devices)
	}
	for key, val := range map[string]string{"net.ipv4.ping_group_range": "0 2147483647", "net.ipv4.ip_unprivileged_port_start": "0"} {
		if _, err := os.Stat("/proc/sys/" + strings.ReplaceAll(key, ".", "/")); err == nil && s.Linux.Sysctl[key] != val {
			t.Errorf("sysctl %s = %q, want %q", key, s.Linux.Sysctl[key], val)
		}
	}
	if info.StopSignal != syscall.SIGTERM || info.StopSignalName != "SIGTERM" {
		t.Fatalf("stop signal %v %q, want SIGTERM", info.StopSignal, info.StopSignalName)
	}
}

func TestNetworkModes(t *testing.T) {
	rootfs := fakeRootfs(t, ptr(testPasswd), ptr(testGroup))
	host, err := os.Hostname()
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name, mode, netns string
		wantNetNS         bool
		wantPath          string
		wantHostname      string
		class             error
	}{
		{name: "default", wantNetNS: true, wantHostname: "0123456789ab"},
		{name: "bridge", mode: "bridge", wantNetNS: true, wantHostname: "0123456789ab"},
		{name: "none", mode: "none", wantNetNS: true, wantHostname: "0123456789ab"},
		{name: "host", mode: "host", wantHostname: host},
		{name: "joined", netns: "/run/skiff/netns/x", wantNetNS: true, wantPath: "/run/skiff/netns/x", wantHostname: "0123456789ab"},
		{name: "container mode", mode: "container:web", class: errdefs.ErrNotImplemented},
		{name: "user network", mode: "mynet", class: errdefs.ErrNotImplemented},
		{name: "host with netns", mode: "host", netns: "/run/x", class: errdefs.ErrInvalidArgument},
		{name: "relative netns", netns: "run/x", class: errdefs.ErrInvalidArgument},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s, info, err := Generate(image(nil, []string{"sh"}, nil), rootfs, Options{ID: testID, NetworkMode: tc.mode, NetNSPath: tc.netns})
			if tc.class != nil {
				wantClass(t, err, tc.class)
				if !strings.Contains(err.Error(), "--network") && !strings.Contains(err.Error(), "network namespace") {
					t.Fatalf("error %q does not name the option", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			var found *specs.LinuxNamespace
			for i, n := range s.Linux.Namespaces {
				if n.Type == specs.NetworkNamespace {
					found = &s.Linux.Namespaces[i]
				}
			}
			if (found != nil) != tc.wantNetNS {
				t.Fatalf("network namespace %+v, want present=%v", found, tc.wantNetNS)
			}
			if found != nil && found.Path != tc.wantPath {
				t.Fatalf("network namespace path %q, want %q", found.Path, tc.wantPath)
			}
			if s.Hostname != tc.wantHostname || info.Hostname != tc.wantHostname {
				t.Fatalf("hostname %q, want %q", s.Hostname, tc.wantHostname)
			}
			_, hasSysctl := s.Linux.Sysctl["net.ipv4.ip_unprivileged_port_start"]
			if !tc.wantNetNS && hasSysctl {
				t.Fatalf("host network with network sysctls %v", s.Linux.Sysctl)
			}
		})
	}
}

func TestHostname(t *testing.T) {
	rootfs := fakeRootfs(t, ptr(testPasswd), ptr(testGroup))
	img := image(nil, []string{"sh"}, nil)
	s, _ := mustGenerate(t, img, rootfs, Options{ID: "short", Hostname: ""})
	if s.Hostname != "short" {
		t.Fatalf("hostname %q, want the whole short id", s.Hostname)
	}
	s, _ = mustGenerate(t, img, rootfs, Options{ID: testID, Hostname: "web.example.com"})
	if s.Hostname != "web.example.com" {
		t.Fatalf("hostname %q", s.Hostname)
	}
	for _, bad := range []Options{
		{},
		{Hostname: strings.Repeat("a", 65)},
		{Hostname: "a b"},
		{Hostname: "a\n127.0.0.1 evil"},
		{Hostname: "a/b"},
	} {
		_, _, err := Generate(img, rootfs, bad)
		wantClass(t, err, errdefs.ErrInvalidArgument)
		if !strings.Contains(err.Error(), "hostname") {
			t.Fatalf("error %q does not name the option", err)
		}
	}
}

func TestReadOnly(t *testing.T) {
	rootfs := fakeRootfs(t, ptr(testPasswd), ptr(testGroup))
	etc := t.TempDir()
	o := Options{ID: testID, ReadOnly: true, HostResolvConf: "/nonexistent"}
	etcMounts, err := WriteEtcFiles(etc, o)
	if err != nil {
		t.Fatal(err)
	}
	o.ExtraMounts = append(etcMounts, specs.Mount{Destination: "/data", Type: "bind", Source: etc, Options: []string{"rbind"}})
	s, _ := mustGenerate(t, image(nil, []string{"sh"}, nil), rootfs, o)
	if !s.Root.Readonly {
		t.Fatal("root is not read-only")
	}
	for _, m := range s.Mounts {
		isRO := slices.Contains(m.Options, "ro")
		switch m.Destination {
		case "/proc", "/dev", "/dev/pts", "/dev/shm", "/dev/mqueue", "/data":
			if isRO {
				t.Errorf("%s is read-only: %v", m.Destination, m.Options)
			}
		default:
			if !isRO {
				t.Errorf("%s is writable: %v", m.Destination, m.Options)
			}
		}
	}
}

func TestPrivileged(t *testing.T) {
	rootfs := fakeRootfs(t, ptr(testPasswd), ptr(testGroup))
	s, _ := mustGenerate(t, image(nil, []string{"sh"}, nil), rootfs, Options{ID: testID, Privileged: true, ReadOnly: true})
	data, err := os.ReadFile("/proc/sys/kernel/cap_last_cap")
	if err != nil {
		t.Fatal(err)
	}
	last, _ := strconv.Atoi(strings.TrimSpace(string(data)))
	// Every capability of the kernel that this process's bounding set
	// holds (docker's "available in the current environment").
	var want []string
	for n := 0; n <= last; n++ {
		if in, err := unix.PrctlRetInt(unix.PR_CAPBSET_READ, uintptr(n), 0, 0, 0); err == nil && in == 1 {
			want = append(want, caps.Names()[n])
		}
	}
	c := s.Process.Capabilities
	if !reflect.DeepEqual(c.Bounding, want) || !reflect.DeepEqual(c.Effective, c.Bounding) || !reflect.DeepEqual(c.Permitted, c.Bounding) {
		t.Fatalf("capabilities %+v, want the %d of the kernel in the bounding set: %v", c, len(want), want)
	}
	if !slices.Contains(c.Bounding, "CAP_SYS_ADMIN") {
		t.Fatal("no CAP_SYS_ADMIN")
	}
	if s.Linux.Seccomp != nil {
		t.Fatal("privileged container has a seccomp profile")
	}
	if s.Linux.MaskedPaths != nil || s.Linux.ReadonlyPaths != nil {
		t.Fatalf("masked %v readonly %v, want none", s.Linux.MaskedPaths, s.Linux.ReadonlyPaths)
	}
	for _, dest := range []string{"/sys", "/sys/fs/cgroup"} {
		if m := findMount(t, s, dest); slices.Contains(m.Options, "ro") {
			t.Fatalf("%s %v is read-only", dest, m.Options)
		}
	}
	if rules := s.Linux.Resources.Devices; len(rules) != 1 || !rules[0].Allow || rules[0].Access != "rwm" {
		t.Fatalf("device rules %+v, want allow all", rules)
	}
	var null *specs.LinuxDevice
	for i, d := range s.Linux.Devices {
		if d.Path == "/dev/null" {
			null = &s.Linux.Devices[i]
		}
		if strings.HasPrefix(d.Path, "/dev/pts/") || d.Path == "/dev/console" {
			t.Fatalf("host device %s passed", d.Path)
		}
	}
	if null == nil || null.Type != "c" || null.Major != 1 || null.Minor != 3 {
		t.Fatalf("/dev/null device %+v", null)
	}
}

func TestCapAddDrop(t *testing.T) {
	rootfs := fakeRootfs(t, ptr(testPasswd), ptr(testGroup))
	def := DefaultCapabilities()
	without := func(drop ...string) []string {
		return slices.DeleteFunc(DefaultCapabilities(), func(c string) bool { return slices.Contains(drop, c) })
	}
	all := allCapabilities()
	tests := []struct {
		name      string
		add, drop []string
		want      []string
		wantErr   bool
	}{
		{name: "add", add: []string{"NET_ADMIN"}, want: append(slices.Clone(def), "CAP_NET_ADMIN")},
		{name: "add lower case with prefix", add: []string{"cap_sys_admin"}, want: append(slices.Clone(def), "CAP_SYS_ADMIN")},
		{name: "add present", add: []string{"CHOWN"}, want: def},
		{name: "drop", drop: []string{"chown", "CAP_KILL"}, want: without("CAP_CHOWN", "CAP_KILL")},
		{name: "drop all", drop: []string{"ALL"}, want: nil},
		{name: "drop all add one", drop: []string{"all"}, add: []string{"NET_BIND_SERVICE"}, want: []string{"CAP_NET_BIND_SERVICE"}},
		{name: "add all", add: []string{"ALL"}, want: all},
		{name: "add all drop one", add: []string{"ALL"}, drop: []string{"SYS_ADMIN"}, want: slices.DeleteFunc(slices.Clone(all), func(c string) bool { return c == "CAP_SYS_ADMIN" })},
		{name: "unknown add", add: []string{"FLY"}, wantErr: true},
		{name: "unknown drop", drop: []string{"CAP_NOPE"}, wantErr: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s, _, err := Generate(image(nil, []string{"sh"}, nil), rootfs, Options{ID: testID, CapAdd: tc.add, CapDrop: tc.drop})
			if tc.wantErr {
				wantClass(t, err, errdefs.ErrInvalidArgument)
				if !strings.Contains(err.Error(), "--cap-") {
					t.Fatalf("error %q does not name the flag", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			c := s.Process.Capabilities
			if !reflect.DeepEqual(c.Bounding, tc.want) || !reflect.DeepEqual(c.Effective, tc.want) || !reflect.DeepEqual(c.Permitted, tc.want) {
				t.Fatalf("capabilities %+v, want %v", c, tc.want)
			}
			if s.Linux.Seccomp == nil {
				t.Fatal("no seccomp profile")
			}
			sysAdmin := slices.Contains(tc.want, "CAP_SYS_ADMIN")
			if got := slices.Contains(allowedSyscalls(s.Linux.Seccomp), "mount"); got != sysAdmin {
				t.Fatalf("seccomp allows mount: %v, want %v (profile resolved for the capabilities)", got, sysAdmin)
			}
		})
	}
}

func TestExtraMounts(t *testing.T) {
	rootfs := fakeRootfs(t, ptr(testPasswd), ptr(testGroup))
	img := image(nil, []string{"sh"}, nil)
	shm := specs.Mount{Destination: "/dev/shm/", Type: "tmpfs", Source: "shm", Options: []string{"size=1m"}}
	deep := specs.Mount{Destination: "/a/b/c", Type: "bind", Source: "/tmp", Options: []string{"rbind"}}
	shallow := specs.Mount{Destination: "/a", Type: "tmpfs", Source: "tmpfs"}
	s, _ := mustGenerate(t, img, rootfs, Options{ID: testID, ExtraMounts: []specs.Mount{deep, shm, shallow}})
	want := []string{"/proc", "/dev", "/dev/pts", "/sys", "/sys/fs/cgroup", "/dev/mqueue", "/a", "/dev/shm", "/a/b/c"}
	if got := mountDests(s.Mounts); !reflect.DeepEqual(got, want) {
		t.Fatalf("mounts %v, want %v", got, want)
	}
	if m := findMount(t, s, "/dev/shm"); !reflect.DeepEqual(m.Options, []string{"size=1m"}) {
		t.Fatalf("/dev/shm %+v, want the caller's", m)
	}

	dev := specs.Mount{Destination: "/dev", Type: "bind", Source: "/dev", Options: []string{"rbind"}}
	s, _ = mustGenerate(t, img, rootfs, Options{ID: testID, ExtraMounts: []specs.Mount{dev}})
	if got, want := mountDests(s.Mounts), []string{"/proc", "/sys", "/sys/fs/cgroup", "/dev"}; !reflect.DeepEqual(got, want) {
		t.Fatalf("mounts %v, want %v", got, want)
	}

	_, _, err := Generate(img, rootfs, Options{ID: testID, ExtraMounts: []specs.Mount{{Destination: "data", Source: "/x"}}})
	wantClass(t, err, errdefs.ErrInvalidArgument)

	s, _ = mustGenerate(t, img, rootfs, Options{ID: testID, ShmSize: 1 << 20})
	if m := findMount(t, s, "/dev/shm"); !slices.Contains(m.Options, "size=1048576") {
		t.Fatalf("/dev/shm %+v, want size=1048576", m)
	}
}

func TestOtherOptions(t *testing.T) {
	rootfs := fakeRootfs(t, ptr(testPasswd), ptr(testGroup))
	img := image(nil, []string{"sh"}, nil)
	pids := int64(100)
	o := Options{
		ID:              testID,
		NoNewPrivileges: true,
		OOMScoreAdj:     500,
		Sysctls:         map[string]string{"net.ipv4.ip_unprivileged_port_start": "1024", "kernel.msgmax": "8192"},
		Annotations:     map[string]string{"a": "b"},
		CgroupsPath:     "/skiff/x",
		Resources:       &specs.LinuxResources{Pids: &specs.LinuxPids{Limit: &pids}, Devices: []specs.LinuxDeviceCgroup{{Allow: true, Type: "c", Access: "r"}}},
	}
	s, _ := mustGenerate(t, img, rootfs, o)
	if !s.Process.NoNewPrivileges || *s.Process.OOMScoreAdj != 500 {
		t.Fatalf("process %+v", s.Process)
	}
	if s.Linux.Sysctl["net.ipv4.ip_unprivileged_port_start"] != "1024" || s.Linux.Sysctl["kernel.msgmax"] != "8192" {
		t.Fatalf("sysctls %v", s.Linux.Sysctl)
	}
	if s.Annotations["a"] != "b" || s.Linux.CgroupsPath != "/skiff/x" {
		t.Fatalf("annotations %v cgroupsPath %q", s.Annotations, s.Linux.CgroupsPath)
	}
	r := s.Linux.Resources
	if r.Pids == nil || *r.Pids.Limit != 100 || len(r.Devices) != 9 || r.Devices[8].Access != "r" {
		t.Fatalf("resources %+v", r)
	}
	if len(o.Resources.Devices) != 1 {
		t.Fatal("Generate changed the caller's resources")
	}
	for _, bad := range []Options{{ID: testID, OOMScoreAdj: 1001}, {ID: testID, ShmSize: -1}} {
		_, _, err := Generate(img, rootfs, bad)
		wantClass(t, err, errdefs.ErrInvalidArgument)
	}
	_, _, err := Generate(img, filepath.Join(rootfs, "missing"), Options{ID: testID})
	wantClass(t, err, errdefs.ErrNotFound)
	_, _, err = Generate(img, "relative/rootfs", Options{ID: testID})
	wantClass(t, err, errdefs.ErrInvalidArgument)
	win := img
	win.OS = "windows"
	_, _, err = Generate(win, rootfs, Options{ID: testID})
	wantClass(t, err, errdefs.ErrInvalidArgument)
}

func TestInfo(t *testing.T) {
	rootfs := fakeRootfs(t, ptr(testPasswd), ptr(testGroup))
	img := image(nil, []string{"sh"}, nil)
	img.Config.ExposedPorts = map[string]struct{}{"443/tcp": {}, "53/udp": {}, "80/tcp": {}}
	img.Config.Volumes = map[string]struct{}{"/var/lib/db": {}, "/data": {}}
	img.Config.Labels = map[string]string{"a": "image", "b": "image"}
	img.Config.StopSignal = "SIGQUIT"
	_, info := mustGenerate(t, img, rootfs, Options{ID: testID, Labels: map[string]string{"b": "user", "c": "user"}})
	if want := []string{"443/tcp", "53/udp", "80/tcp"}; !reflect.DeepEqual(info.ExposedPorts, want) {
		t.Fatalf("ports %v, want %v", info.ExposedPorts, want)
	}
	if want := []string{"/data", "/var/lib/db"}; !reflect.DeepEqual(info.Volumes, want) {
		t.Fatalf("volumes %v, want %v", info.Volumes, want)
	}
	if want := map[string]string{"a": "image", "b": "user", "c": "user"}; !reflect.DeepEqual(info.Labels, want) {
		t.Fatalf("labels %v, want %v", info.Labels, want)
	}
	if info.StopSignal != syscall.SIGQUIT || info.StopSignalName != "SIGQUIT" {
		t.Fatalf("stop signal %v %q", info.StopSignal, info.StopSignalName)
	}
	_, info = mustGenerate(t, img, rootfs, Options{ID: testID, StopSignal: "usr1"})
	if info.StopSignal != syscall.SIGUSR1 {
		t.Fatalf("stop signal %v, want SIGUSR1 from --stop-signal", info.StopSignal)
	}
	img.Config.StopSignal = "SIGBOGUS"
	_, _, err := Generate(img, rootfs, Options{ID: testID})
	wantClass(t, err, errdefs.ErrInvalidArgument)
	if !strings.Contains(err.Error(), "StopSignal") {
		t.Fatalf("error %q does not name the field", err)
	}
}

func TestParseSignal(t *testing.T) {
	tests := []struct {
		in   string
		sig  syscall.Signal
		name string
	}{
		{"SIGTERM", syscall.SIGTERM, "SIGTERM"},
		{"term", syscall.SIGTERM, "SIGTERM"},
		{"9", syscall.SIGKILL, "SIGKILL"},
		{"SIGRTMIN+3", 37, "SIGRTMIN+3"},
		{"rtmax-1", 63, "SIGRTMAX-1"},
		{"RTMIN", 34, "SIGRTMIN"},
		{"64", 64, "SIGRTMAX"},
		{"SIGWINCH", syscall.SIGWINCH, "SIGWINCH"},
	}
	for _, tc := range tests {
		sig, name, err := parseSignal("--stop-signal", tc.in)
		if err != nil || sig != tc.sig || name != tc.name {
			t.Errorf("parseSignal(%q) = %v %q %v, want %v %q", tc.in, sig, name, err, tc.sig, tc.name)
		}
	}
	for _, bad := range []string{"", "0", "65", "-1", "SIGNOPE", "RTMIN+31", "RTMIN+-1", "RTMAX-x"} {
		if _, _, err := parseSignal("--stop-signal", bad); !errors.Is(err, errdefs.ErrInvalidArgument) {
			t.Errorf("parseSignal(%q): error %v, want invalid argument", bad, err)
		}
	}
}

func TestWriteEtcFiles(t *testing.T) {
	hostDir := t.TempDir()
	write := func(name, data string) string {
		p := filepath.Join(hostDir, name)
		if err := os.WriteFile(p, []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	mixed := write("mixed.conf", "# host comment\nnameserver 127.0.0.1\nnameserver ::1\nnameserver 10.0.0.2\nnameserver 2001:db8::1\nnameserver bogus\ndomain old\nsearch a.example b.example\noptions ndots:2\noptions edns0\nsortlist 10.0.0.0\n")
	loopback := write("loopback.conf", "nameserver 127.0.0.53\nsearch lan\n")
	hostHosts := write("hosts", "127.0.0.1 localhost\n10.1.1.1 build-host\n")
	header := resolvConfHeader + "\n\n"
	dockerHosts := "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\nfe00::\tip6-localnet\nff00::\tip6-mcastprefix\nff02::1\tip6-allnodes\nff02::2\tip6-allrouters\n"

	tests := []struct {
		name      string
		o         Options
		resolv    string
		hosts     string // "" means no hosts mount
		hostname  string
		wantError error
	}{
		{
			name:   "legacy network filters loopback and IPv6",
			o:      Options{ID: testID, HostResolvConf: mixed},
			resolv: header + "nameserver 10.0.0.2\nsearch a.example b.example\noptions ndots:2 edns0\nsortlist 10.0.0.0\n\n# Based on host file: '" + mixed + "' (legacy)\n# Invalid nameservers: [bogus]\n# Overrides: []\n# Option ndots from: host\n",
			hosts:  dockerHosts, hostname: "0123456789ab\n",
		},
		{
			name:   "only loopback falls back to Google DNS",
			o:      Options{ID: testID, NetworkMode: "none", HostResolvConf: loopback, Hostname: "db.example.com", Addresses: []netip.Addr{netip.MustParseAddr("10.88.0.5")}},
			resolv: header + "nameserver 8.8.8.8\nnameserver 8.8.4.4\nsearch lan\n\n# Based on host file: '" + loopback + "' (legacy)\n# Used default nameservers.\n# Overrides: []\n",
			hosts:  dockerHosts + "10.88.0.5\tdb.example.com db\n", hostname: "db.example.com\n",
		},
		{
			name:   "missing host file",
			o:      Options{ID: testID, HostResolvConf: filepath.Join(hostDir, "absent")},
			resolv: header + "nameserver 8.8.8.8\nnameserver 8.8.4.4\n\n# Based on host file: '" + filepath.Join(hostDir, "absent") + "' (legacy)\n# Used default nameservers.\n# Overrides: []\n",
			hosts:  dockerHosts, hostname: "0123456789ab\n",
		},
		{
			name:   "host network keeps everything",
			o:      Options{NetworkMode: "host", Hostname: "h1", HostResolvConf: loopback, HostHosts: hostHosts},
			resolv: header + "nameserver 127.0.0.53\nsearch lan\n\n# Based on host file: '" + loopback + "'\n# Overrides: []\n",
			hosts:  "127.0.0.1 localhost\n10.1.1.1 build-host\n", hostname: "h1\n",
		},
		{
			name:     "host network without hosts file",
			o:        Options{NetworkMode: "host", Hostname: "h1", HostResolvConf: loopback, HostHosts: filepath.Join(hostDir, "nohosts")},
			resolv:   header + "nameserver 127.0.0.53\nsearch lan\n\n# Based on host file: '" + loopback + "'\n# Overrides: []\n",
			hostname: "h1\n",
		},
		{name: "bad hostname", o: Options{Hostname: "a\nb"}, wantError: errdefs.ErrInvalidArgument},
		{name: "bad network", o: Options{ID: testID, NetworkMode: "container:x"}, wantError: errdefs.ErrNotImplemented},
	}
	for _, tc := range tests {
		for _, ro := range []bool{false, true} {
			t.Run(tc.name+"/readonly="+strconv.FormatBool(ro), func(t *testing.T) {
				dir := filepath.Join(t.TempDir(), "etc")
				o := tc.o
				o.ReadOnly = ro
				mounts, err := WriteEtcFiles(dir, o)
				if tc.wantError != nil {
					wantClass(t, err, tc.wantError)
					return
				}
				if err != nil {
					t.Fatal(err)
				}
				want := map[string]string{"/etc/resolv.conf": tc.resolv, "/etc/hostname": tc.hostname}
				wantDests := []string{"/etc/resolv.conf", "/etc/hostname"}
				if tc.hosts != "" {
					want["/etc/hosts"] = tc.hosts
					wantDests = append(wantDests, "/etc/hosts")
				}
				if got := mountDests(mounts); !reflect.DeepEqual(got, wantDests) {
					t.Fatalf("mounts %v, want %v", got, wantDests)
				}
				wantOpts := []string{"rbind", "rprivate"}
				if ro {
					wantOpts = []string{"rbind", "ro", "rprivate"}
				}
				for _, m := range mounts {
					if m.Type != "bind" || filepath.Dir(m.Source) != dir || !reflect.DeepEqual(m.Options, wantOpts) {
						t.Fatalf("mount %+v, want a bind from %s with %v", m, dir, wantOpts)
					}
					data, err := os.ReadFile(m.Source)
					if err != nil {
						t.Fatal(err)
					}
					if string(data) != want[m.Destination] {
						t.Errorf("%s:\n%s\nwant:\n%s", m.Destination, data, want[m.Destination])
					}
					fi, err := os.Stat(m.Source)
					if err != nil || fi.Mode().Perm() != 0o644 {
						t.Errorf("%s: mode %v %v, want 0644", m.Source, fi.Mode(), err)
					}
				}
				// Writing again replaces the files (a restart).
				if _, err := WriteEtcFiles(dir, o); err != nil {
					t.Fatal(err)
				}
				entries, _ := os.ReadDir(dir)
				if len(entries) != len(wantDests) {
					t.Fatalf("%d files in %s, want %d (temporary files left?)", len(entries), dir, len(wantDests))
				}
			})
		}
	}
}

// TestSpecValidates writes generated specs into bundles with a busybox
// rootfs and checks them with skiff-runtime's validation.
func TestSpecValidates(t *testing.T) {
	bundle, _ := testutil.BusyboxBundle(t)
	rootfs := filepath.Join(bundle, "rootfs")
	img := image([]string{"/bin/sh", "-c"}, []string{"id"}, []string{"PATH=/bin"})
	img.Config.User = "app"
	tests := []struct {
		name string
		o    Options
	}{
		{"defaults", Options{}},
		{"tty readonly", Options{Tty: true, ReadOnly: true}},
		{"host network", Options{NetworkMode: "host"}},
		{"none network", Options{NetworkMode: "none"}},
		{"privileged", Options{Privileged: true}},
		{"caps", Options{CapAdd: []string{"ALL"}, CapDrop: []string{"SYS_ADMIN"}}},
		{"root user", Options{User: "root:root", WorkingDir: "/tmp"}},
		{"numeric user", Options{User: "4242:4242"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			o := tc.o
			o.ID = testutil.ContainerID(t)
			o.HostResolvConf = "/nonexistent"
			etc, err := WriteEtcFiles(t.TempDir(), o)
			if err != nil {
				t.Fatal(err)
			}
			o.ExtraMounts = etc
			s, _ := mustGenerate(t, img, rootfs, o)
			testutil.WriteSpec(t, bundle, s)
			loaded, err := rtspec.Load(bundle)
			if err != nil {
				t.Fatal(err)
			}
			if err := rtspec.Validate(loaded, bundle); err != nil {
				t.Fatalf("generated spec does not validate: %v", err)
			}
			if !reflect.DeepEqual(loaded.Process, s.Process) {
				t.Fatalf("process changed through config.json:\n%+v\n%+v", loaded.Process, s.Process)
			}
		})
	}
}
