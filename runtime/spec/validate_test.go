package spec

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/skiff-containers/skiff/errdefs"
)

func ptr[T any](v T) *T { return &v }

// validBundle makes a bundle directory with an empty rootfs and a file next
// to it.
func validBundle(t *testing.T) string {
	t.Helper()
	bundle := t.TempDir()
	if err := os.Mkdir(filepath.Join(bundle, "rootfs"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(bundle, "file"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	return bundle
}

func withUserNS(s *specs.Spec) {
	s.Linux.Namespaces = append(s.Linux.Namespaces, specs.LinuxNamespace{Type: specs.UserNamespace})
	s.Linux.UIDMappings = []specs.LinuxIDMapping{{ContainerID: 0, HostID: 100000, Size: 65536}}
	s.Linux.GIDMappings = []specs.LinuxIDMapping{{ContainerID: 0, HostID: 100000, Size: 65536}}
}

func dropNS(s *specs.Spec, t specs.LinuxNamespaceType) {
	var keep []specs.LinuxNamespace
	for _, n := range s.Linux.Namespaces {
		if n.Type != t {
			keep = append(keep, n)
		}
	}
	s.Linux.Namespaces = keep
}

func setNSPath(s *specs.Spec, t specs.LinuxNamespaceType, path string) {
	for i := range s.Linux.Namespaces {
		if s.Linux.Namespaces[i].Type == t {
			s.Linux.Namespaces[i].Path = path
		}
	}
}

func TestValidateAccepts(t *testing.T) {
	tests := []struct {
		name   string
		mutate func(s *specs.Spec, bundle string)
	}{
		{"runc's default", func(*specs.Spec, string) {}},
		{"ociVersion 1.3.0", func(s *specs.Spec, _ string) { s.Version = "1.3.0" }},
		{"ociVersion 1.0.0-rc5", func(s *specs.Spec, _ string) { s.Version = "1.0.0-rc5" }},
		{"absolute root.path", func(s *specs.Spec, b string) { s.Root.Path = filepath.Join(b, "rootfs") }},
		{"root.path through ..", func(s *specs.Spec, b string) { s.Root.Path = "rootfs/../rootfs" }},
		{"no linux section and no hostname", func(s *specs.Spec, _ string) { s.Linux = nil; s.Hostname = "" }},
		{"no capabilities", func(s *specs.Spec, _ string) { s.Process.Capabilities = nil }},
		{"env value with '='", func(s *specs.Spec, _ string) { s.Process.Env = append(s.Process.Env, "A=b=c", "EMPTY=") }},
		{"terminal and seccomp are policy, not validity", func(s *specs.Spec, _ string) {
			s.Process.Terminal = true
			s.Linux.Seccomp = &specs.LinuxSeccomp{DefaultAction: "SCMP_ACT_WEIRD"}
		}},
		{"umask", func(s *specs.Spec, _ string) { s.Process.User.Umask = ptr(uint32(0o77)) }},
		{"new user namespace with mappings", func(s *specs.Spec, _ string) { withUserNS(s) }},
		{"joined user namespace without mappings", func(s *specs.Spec, _ string) {
			s.Linux.Namespaces = append(s.Linux.Namespaces, specs.LinuxNamespace{Type: specs.UserNamespace, Path: "/proc/1/ns/user"})
		}},
		{"joined uts namespace with hostname (as CRI runtimes do)", func(s *specs.Spec, _ string) {
			setNSPath(s, specs.UTSNamespace, "/proc/1/ns/uts")
		}},
		{"domainname", func(s *specs.Spec, _ string) { s.Domainname = "example.org" }},
		{"all namespace types", func(s *specs.Spec, _ string) {
			withUserNS(s)
			s.Linux.Namespaces = append(s.Linux.Namespaces, specs.LinuxNamespace{Type: specs.CgroupNamespace}, specs.LinuxNamespace{Type: specs.TimeNamespace})
			s.Linux.TimeOffsets = map[string]specs.LinuxTimeOffset{"monotonic": {Secs: 10}, "boottime": {Secs: 5}}
		}},
		{"namespaced sysctls", func(s *specs.Spec, _ string) {
			s.Linux.Sysctl = map[string]string{
				"net.ipv4.ip_forward": "1", "net/ipv4/conf/eth0.100/forwarding": "1",
				"kernel.msgmax": "8192", "kernel.shmmax": "1", "kernel.sem": "250 32000 32 128",
				"kernel.shm_rmid_forced": "1", "fs.mqueue.msg_max": "10", "kernel.domainname": "x",
			}
		}},
		{"net sysctl with a joined network namespace", func(s *specs.Spec, _ string) {
			setNSPath(s, specs.NetworkNamespace, "/var/run/netns/x")
			s.Linux.Sysctl = map[string]string{"net.core.somaxconn": "1024"}
		}},
		{"devices", func(s *specs.Spec, _ string) {
			s.Linux.Devices = []specs.LinuxDevice{
				{Path: "/dev/fuse", Type: "c", Major: 10, Minor: 229},
				{Path: "/dev/loop0", Type: "b", Major: 7, Minor: 0},
				{Path: "/dev/x/tty", Type: "u", Major: 5, Minor: 0},
				{Path: "/dev/myfifo", Type: "p"},
			}
		}},
		{"device cgroup rules", func(s *specs.Spec, _ string) {
			s.Linux.Resources.Devices = append(s.Linux.Resources.Devices,
				specs.LinuxDeviceCgroup{Allow: true, Type: "c", Major: ptr(int64(1)), Minor: ptr(int64(3)), Access: "rwm"},
				specs.LinuxDeviceCgroup{Allow: true, Type: "a", Access: "m"},
				specs.LinuxDeviceCgroup{Allow: true, Type: "b", Access: "r"})
		}},
		{"rlimits", func(s *specs.Spec, _ string) {
			s.Process.Rlimits = append(s.Process.Rlimits, specs.POSIXRlimit{Type: "RLIMIT_CORE", Soft: 0, Hard: 0},
				specs.POSIXRlimit{Type: "RLIMIT_NPROC", Soft: 10, Hard: ^uint64(0)})
		}},
		{"hooks", func(s *specs.Spec, _ string) {
			s.Hooks = &specs.Hooks{
				CreateRuntime: []specs.Hook{{Path: "/usr/bin/hook", Timeout: ptr(5)}},
				Poststop:      []specs.Hook{{Path: "/bin/true"}},
			}
		}},
		{"bind mount with relative source and options", func(s *specs.Spec, _ string) {
			s.Mounts = append(s.Mounts, specs.Mount{Destination: "/data", Source: "data", Options: []string{"rbind", "rro", "rprivate"}})
		}},
		{"rootfsPropagation", func(s *specs.Spec, _ string) { s.Linux.RootfsPropagation = "rslave" }},
		{"oomScoreAdj bounds", func(s *specs.Spec, _ string) { s.Process.OOMScoreAdj = ptr(-1000) }},
		{"personality", func(s *specs.Spec, _ string) {
			s.Linux.Personality = &specs.LinuxPersonality{Domain: specs.PerLinux32}
		}},
		{"id mapping reaching the top id", func(s *specs.Spec, _ string) {
			withUserNS(s)
			s.Linux.UIDMappings = []specs.LinuxIDMapping{{ContainerID: 0, HostID: 1, Size: 4294967295}}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			bundle := validBundle(t)
			s := Default()
			tt.mutate(s, bundle)
			if err := Validate(s, bundle); err != nil {
				t.Errorf("Validate = %v, want nil", err)
			}
		})
	}
}

func TestValidateRejects(t *testing.T) {
	tests := []struct {
		name    string
		mutate  func(s *specs.Spec, bundle string)
		wantErr error // nil means ErrInvalidArgument
		subs    []string
	}{
		{"ociVersion missing", func(s *specs.Spec, _ string) { s.Version = "" }, nil, []string{"ociVersion is missing"}},
		{"ociVersion 2", func(s *specs.Spec, _ string) { s.Version = "2.0.0" }, nil, []string{`ociVersion "2.0.0" has major version 2`}},
		{"ociVersion 0.5", func(s *specs.Spec, _ string) { s.Version = "0.5.0" }, nil, []string{"major version 0"}},
		{"ociVersion garbage", func(s *specs.Spec, _ string) { s.Version = "v1" }, nil, []string{`ociVersion "v1" is not a version number`}},
		{"root missing", func(s *specs.Spec, _ string) { s.Root = nil }, nil, []string{"root.path is missing"}},
		{"root.path empty", func(s *specs.Spec, _ string) { s.Root.Path = "" }, nil, []string{"root.path is missing"}},
		{"rootfs does not exist", func(s *specs.Spec, _ string) { s.Root.Path = "nope" }, errdefs.ErrNotFound, []string{"root.path", "/nope", "does not exist"}},
		{"rootfs is a file", func(s *specs.Spec, _ string) { s.Root.Path = "file" }, nil, []string{"root.path", "is not a directory"}},
		{"process missing", func(s *specs.Spec, _ string) { s.Process = nil }, nil, []string{"process is missing"}},
		{"args empty", func(s *specs.Spec, _ string) { s.Process.Args = nil }, nil, []string{"process.args is empty"}},
		{"arg with NUL", func(s *specs.Spec, _ string) { s.Process.Args = []string{"sh", "a\x00b"} }, nil, []string{"process.args[1]", "NUL"}},
		{"cwd missing", func(s *specs.Spec, _ string) { s.Process.Cwd = "" }, nil, []string{"process.cwd is missing"}},
		{"cwd relative", func(s *specs.Spec, _ string) { s.Process.Cwd = "home" }, nil, []string{`process.cwd "home" is not an absolute path`}},
		{"env without =", func(s *specs.Spec, _ string) { s.Process.Env = append(s.Process.Env, "FOO") }, nil, []string{`process.env[2] "FOO" has no '='`}},
		{"env empty name", func(s *specs.Spec, _ string) { s.Process.Env = []string{"=x"} }, nil, []string{`process.env[0] "=x" has an empty name`}},
		{"env NUL", func(s *specs.Spec, _ string) { s.Process.Env = []string{"A=\x00"} }, nil, []string{"process.env[0]", "NUL"}},
		{"rlimit unknown", func(s *specs.Spec, _ string) {
			s.Process.Rlimits = append(s.Process.Rlimits, specs.POSIXRlimit{Type: "RLIMIT_FOO"})
		}, nil, []string{"process.rlimits[1].type", `"RLIMIT_FOO"`}},
		{"rlimit duplicate", func(s *specs.Spec, _ string) {
			s.Process.Rlimits = append(s.Process.Rlimits, specs.POSIXRlimit{Type: "RLIMIT_NOFILE", Soft: 1, Hard: 1})
		}, nil, []string{"process.rlimits[1]: RLIMIT_NOFILE is already set by process.rlimits[0]"}},
		{"rlimit soft above hard", func(s *specs.Spec, _ string) {
			s.Process.Rlimits[0].Soft = 2048
		}, nil, []string{"process.rlimits[0] (RLIMIT_NOFILE): soft limit 2048 is above hard limit 1024"}},
		{"unknown capability in bounding", func(s *specs.Spec, _ string) {
			s.Process.Capabilities.Bounding = append(s.Process.Capabilities.Bounding, "CAP_FOO")
		}, nil, []string{"process.capabilities.bounding[3]", `"CAP_FOO"`}},
		{"unknown capability in ambient", func(s *specs.Spec, _ string) {
			s.Process.Capabilities.Ambient = []string{"cap_kill"}
		}, nil, []string{"process.capabilities.ambient[0]", `"cap_kill"`, "did you mean CAP_KILL?"}},
		{"unknown capability in inheritable", func(s *specs.Spec, _ string) {
			s.Process.Capabilities.Inheritable = []string{"CAP_KILL", "KILL"}
		}, nil, []string{"process.capabilities.inheritable[1]", `"KILL"`}},
		{"effective not permitted", func(s *specs.Spec, _ string) {
			s.Process.Capabilities.Effective = append(s.Process.Capabilities.Effective, "CAP_SYS_ADMIN")
		}, nil, []string{"process.capabilities.effective[3] CAP_SYS_ADMIN is not in process.capabilities.permitted"}},
		{"oomScoreAdj out of range", func(s *specs.Spec, _ string) { s.Process.OOMScoreAdj = ptr(1001) }, nil, []string{"process.oomScoreAdj 1001"}},
		{"mount destination relative", func(s *specs.Spec, _ string) {
			s.Mounts = append(s.Mounts, specs.Mount{Destination: "data", Type: "tmpfs", Source: "tmpfs"})
		}, nil, []string{`mounts[7].destination "data" is not an absolute path`}},
		{"mount destination empty", func(s *specs.Spec, _ string) { s.Mounts[2].Destination = "" }, nil, []string{"mounts[2].destination is missing"}},
		{"mount source NUL", func(s *specs.Spec, _ string) { s.Mounts[0].Source = "pr\x00oc" }, nil, []string{"mounts[0].source", "NUL"}},
		{"mount option NUL", func(s *specs.Spec, _ string) { s.Mounts[1].Options = []string{"mode=7\x0055"} }, nil, []string{"mounts[1].options", "NUL"}},
		{"mount idmapping size 0", func(s *specs.Spec, _ string) {
			s.Mounts = append(s.Mounts, specs.Mount{Destination: "/d", Source: "/d", Options: []string{"bind", "idmap"},
				UIDMappings: []specs.LinuxIDMapping{{Size: 0}}})
		}, nil, []string{"mounts[7].uidMappings[0].size is 0"}},
		{"namespace unknown type", func(s *specs.Spec, _ string) {
			s.Linux.Namespaces = append(s.Linux.Namespaces, specs.LinuxNamespace{Type: "net"})
		}, nil, []string{`linux.namespaces[5].type "net" is not a namespace type`}},
		{"namespace duplicate", func(s *specs.Spec, _ string) {
			s.Linux.Namespaces = append(s.Linux.Namespaces, specs.LinuxNamespace{Type: "pid", Path: "/proc/1/ns/pid"})
		}, nil, []string{"linux.namespaces[5]: the pid namespace is listed twice"}},
		{"namespace relative path", func(s *specs.Spec, _ string) {
			setNSPath(s, specs.NetworkNamespace, "netns/x")
		}, nil, []string{`linux.namespaces[1].path "netns/x" is not an absolute path`, "/proc/<pid>/ns/net"}},
		{"new user namespace without mappings", func(s *specs.Spec, _ string) {
			s.Linux.Namespaces = append(s.Linux.Namespaces, specs.LinuxNamespace{Type: specs.UserNamespace})
		}, nil, []string{"new user namespace but linux.uidMappings or linux.gidMappings is empty"}},
		{"new user namespace without gid mappings", func(s *specs.Spec, _ string) {
			withUserNS(s)
			s.Linux.GIDMappings = nil
		}, nil, []string{"linux.gidMappings is empty"}},
		{"uid mappings without user namespace", func(s *specs.Spec, _ string) {
			s.Linux.UIDMappings = []specs.LinuxIDMapping{{Size: 1}}
		}, nil, []string{"linux.uidMappings is set but linux.namespaces has no user namespace"}},
		{"gid mappings without user namespace", func(s *specs.Spec, _ string) {
			s.Linux.GIDMappings = []specs.LinuxIDMapping{{Size: 1}}
		}, nil, []string{"linux.gidMappings is set but linux.namespaces has no user namespace"}},
		{"mapping of size 0", func(s *specs.Spec, _ string) {
			withUserNS(s)
			s.Linux.GIDMappings = append(s.Linux.GIDMappings, specs.LinuxIDMapping{ContainerID: 70000, HostID: 1})
		}, nil, []string{"linux.gidMappings[1].size is 0"}},
		{"mapping overflowing", func(s *specs.Spec, _ string) {
			withUserNS(s)
			s.Linux.UIDMappings = []specs.LinuxIDMapping{{ContainerID: 0, HostID: 4294967295, Size: 2}}
		}, nil, []string{"linux.uidMappings[0]", "runs past the largest id"}},
		{"hostname without uts namespace", func(s *specs.Spec, _ string) { dropNS(s, specs.UTSNamespace) }, nil,
			[]string{`hostname "runc" is set but linux.namespaces has no uts namespace`}},
		{"hostname without linux section", func(s *specs.Spec, _ string) { s.Linux = nil }, nil, []string{`hostname "runc"`}},
		{"domainname without uts namespace", func(s *specs.Spec, _ string) {
			dropNS(s, specs.UTSNamespace)
			s.Hostname = ""
			s.Domainname = "example.org"
		}, nil, []string{`domainname "example.org" is set but linux.namespaces has no uts namespace`}},
		{"maskedPaths relative", func(s *specs.Spec, _ string) { s.Linux.MaskedPaths[3] = "proc/keys" }, nil,
			[]string{`linux.maskedPaths[3] "proc/keys" is not an absolute path`}},
		{"readonlyPaths relative", func(s *specs.Spec, _ string) { s.Linux.ReadonlyPaths = []string{"sys"} }, nil,
			[]string{`linux.readonlyPaths[0] "sys" is not an absolute path`}},
		{"device bad type", func(s *specs.Spec, _ string) {
			s.Linux.Devices = []specs.LinuxDevice{{Path: "/dev/x", Type: "x"}}
		}, nil, []string{`linux.devices[0].type "x" is not a device type`}},
		{"device empty type", func(s *specs.Spec, _ string) {
			s.Linux.Devices = []specs.LinuxDevice{{Path: "/dev/x", Type: "c"}, {Path: "/dev/y"}}
		}, nil, []string{`linux.devices[1].type ""`}},
		{"device relative path", func(s *specs.Spec, _ string) {
			s.Linux.Devices = []specs.LinuxDevice{{Path: "dev/x", Type: "c"}}
		}, nil, []string{`linux.devices[0].path "dev/x" is not an absolute path`}},
		{"device outside /dev", func(s *specs.Spec, _ string) {
			s.Linux.Devices = []specs.LinuxDevice{{Path: "/etc/x", Type: "c"}}
		}, nil, []string{`linux.devices[0].path "/etc/x" is not under /dev`}},
		{"device escaping /dev", func(s *specs.Spec, _ string) {
			s.Linux.Devices = []specs.LinuxDevice{{Path: "/dev/../etc/shadow", Type: "c"}}
		}, nil, []string{"is not under /dev"}},
		{"device /dev itself", func(s *specs.Spec, _ string) {
			s.Linux.Devices = []specs.LinuxDevice{{Path: "/dev", Type: "c"}}
		}, nil, []string{"is not under /dev"}},
		{"device negative major", func(s *specs.Spec, _ string) {
			s.Linux.Devices = []specs.LinuxDevice{{Path: "/dev/x", Type: "c", Major: -1}}
		}, nil, []string{"linux.devices[0] /dev/x: major -1"}},
		{"device rule bad type", func(s *specs.Spec, _ string) {
			s.Linux.Resources.Devices = append(s.Linux.Resources.Devices, specs.LinuxDeviceCgroup{Type: "u", Access: "r"})
		}, nil, []string{`linux.resources.devices[1].type "u"`}},
		{"device rule no access", func(s *specs.Spec, _ string) {
			s.Linux.Resources.Devices[0].Access = ""
		}, nil, []string{"linux.resources.devices[0].access is empty"}},
		{"device rule bad access", func(s *specs.Spec, _ string) {
			s.Linux.Resources.Devices[0].Access = "rwx"
		}, nil, []string{`linux.resources.devices[0].access "rwx"`}},
		{"net sysctl without network namespace", func(s *specs.Spec, _ string) {
			dropNS(s, specs.NetworkNamespace)
			s.Linux.Sysctl = map[string]string{"net.ipv4.ip_forward": "1"}
		}, nil, []string{`linux.sysctl "net.ipv4.ip_forward" needs a network namespace`}},
		{"ipc sysctl without ipc namespace", func(s *specs.Spec, _ string) {
			dropNS(s, specs.IPCNamespace)
			s.Linux.Sysctl = map[string]string{"kernel.shmmax": "1"}
		}, nil, []string{`linux.sysctl "kernel.shmmax" needs an ipc namespace`}},
		{"mqueue sysctl without ipc namespace", func(s *specs.Spec, _ string) {
			dropNS(s, specs.IPCNamespace)
			s.Linux.Sysctl = map[string]string{"fs.mqueue.queues_max": "1"}
		}, nil, []string{`"fs.mqueue.queues_max" needs an ipc namespace`}},
		{"domainname sysctl without uts namespace", func(s *specs.Spec, _ string) {
			dropNS(s, specs.UTSNamespace)
			s.Hostname = ""
			s.Linux.Sysctl = map[string]string{"kernel.domainname": "x"}
		}, nil, []string{`"kernel.domainname" needs a uts namespace`}},
		{"hostname sysctl", func(s *specs.Spec, _ string) {
			s.Linux.Sysctl = map[string]string{"kernel.hostname": "x"}
		}, nil, []string{`"kernel.hostname" conflicts with the hostname field`}},
		{"host-wide sysctl", func(s *specs.Spec, _ string) {
			s.Linux.Sysctl = map[string]string{"vm.max_map_count": "262144"}
		}, nil, []string{`linux.sysctl "vm.max_map_count" is not isolated by any namespace`}},
		{"host-wide kernel sysctl", func(s *specs.Spec, _ string) {
			s.Linux.Sysctl = map[string]string{"kernel.pid_max": "1"}
		}, nil, []string{`"kernel.pid_max" is not isolated`}},
		{"sysctl traversal", func(s *specs.Spec, _ string) {
			s.Linux.Sysctl = map[string]string{"net/../../etc/passwd": "x"}
		}, nil, []string{`linux.sysctl key "net/../../etc/passwd" is malformed`}},
		{"sysctl empty component", func(s *specs.Spec, _ string) {
			s.Linux.Sysctl = map[string]string{"net..ipv4": "x"}
		}, nil, []string{`"net..ipv4" is malformed`}},
		{"sysctl errors come in key order", func(s *specs.Spec, _ string) {
			s.Linux.Sysctl = map[string]string{"vm.b": "1", "vm.a": "1", "vm.c": "1"}
		}, nil, []string{`"vm.a"`}},
		{"rootfsPropagation unknown", func(s *specs.Spec, _ string) { s.Linux.RootfsPropagation = "rslaves" }, nil,
			[]string{"linux.rootfsPropagation", `"rslaves"`}},
		{"timeOffsets without time namespace", func(s *specs.Spec, _ string) {
			s.Linux.TimeOffsets = map[string]specs.LinuxTimeOffset{"monotonic": {Secs: 1}}
		}, nil, []string{"linux.timeOffsets is set but linux.namespaces has no new time namespace"}},
		{"timeOffsets bad clock", func(s *specs.Spec, _ string) {
			s.Linux.Namespaces = append(s.Linux.Namespaces, specs.LinuxNamespace{Type: specs.TimeNamespace})
			s.Linux.TimeOffsets = map[string]specs.LinuxTimeOffset{"realtime": {Secs: 1}}
		}, nil, []string{`clock "realtime"`}},
		{"personality", func(s *specs.Spec, _ string) {
			s.Linux.Personality = &specs.LinuxPersonality{Domain: "BSD"}
		}, nil, []string{`linux.personality.domain "BSD"`}},
		{"hook relative path", func(s *specs.Spec, _ string) {
			s.Hooks = &specs.Hooks{Poststart: []specs.Hook{{Path: "/bin/true"}, {Path: "hook.sh"}}}
		}, nil, []string{`hooks.poststart[1].path "hook.sh" is not an absolute path`}},
		{"prestart hook relative path", func(s *specs.Spec, _ string) {
			s.Hooks = &specs.Hooks{Prestart: []specs.Hook{{Path: ""}}} //nolint:staticcheck // still honoured
		}, nil, []string{`hooks.prestart[0].path ""`}},
		{"every hook kind is checked", func(s *specs.Spec, _ string) {
			s.Hooks = &specs.Hooks{StartContainer: []specs.Hook{{Path: "x"}}}
		}, nil, []string{"hooks.startContainer[0].path"}},
		{"hook zero timeout", func(s *specs.Spec, _ string) {
			s.Hooks = &specs.Hooks{CreateContainer: []specs.Hook{{Path: "/bin/true", Timeout: ptr(0)}}}
		}, nil, []string{"hooks.createContainer[0].timeout 0 must be a positive number"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			bundle := validBundle(t)
			s := Default()
			tt.mutate(s, bundle)
			err := Validate(s, bundle)
			if err == nil {
				t.Fatal("Validate = nil, want an error")
			}
			want := tt.wantErr
			if want == nil {
				want = errdefs.ErrInvalidArgument
			}
			if !errors.Is(err, want) {
				t.Errorf("error %q is not %v", err, want)
			}
			for _, sub := range tt.subs {
				if !strings.Contains(err.Error(), sub) {
					t.Errorf("error %q does not contain %q", err, sub)
				}
			}
			if !strings.HasPrefix(err.Error(), "config.json: ") {
				t.Errorf("error %q does not say it is about config.json", err)
			}
		})
	}
}

func TestValidateNil(t *testing.T) {
	if err := Validate(nil, "/"); !errors.Is(err, errdefs.ErrInvalidArgument) {
		t.Errorf("Validate(nil) = %v, want ErrInvalidArgument", err)
	}
}
