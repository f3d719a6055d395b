package test

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/skiff-containers/skiff/internal/testutil"
	"github.com/skiff-containers/skiff/runtime/seccomp"
)

// probe runs one program in a container, through both runtimes, and
// compares what it prints (after normalize) and its exit status.
type probe struct {
	name string
	args []string
	// mutate changes the bundle's spec (and files) before the runs.
	mutate func(t *testing.T, bundle string, spec *specs.Spec)
	// normalize turns the output into what must be equal; nil: as is.
	normalize func(string) string
	// runArgs are extra flags for `run` (before the id).
	runArgs []string
	// wantExit is the exit status both runtimes must report.
	wantExit int
	// check, if set, validates the oracle's normalised output, so that a
	// probe that sees nothing (both outputs empty) cannot pass.
	check func(t *testing.T, out string)
}

func (p probe) run(t *testing.T) {
	oracle, subject := newRuntimes(t)
	// skiff-runtime starts most inits without a second Go program
	// (runtime/cloneinit); its exec'd Go init must see the same.
	execInit := testutil.NewRuntime(t, runtimeUnderTest+" (exec init)", skiffBin)
	execInit.Env = []string{"SKIFF_RUNTIME_EXEC_INIT=1"}
	bundle, spec := testutil.BusyboxBundle(t, p.args...)
	if p.mutate != nil {
		p.mutate(t, bundle, spec)
	}
	testutil.WriteSpec(t, bundle, spec)
	ctx := testContext(t, 60*time.Second)

	runtimes := []*testutil.Runtime{oracle, subject, execInit}
	outs := make([]string, len(runtimes))
	for i, rt := range runtimes {
		id := testutil.ContainerID(t)
		guard(t, rt, id, bundle)
		args := append(append([]string{"run", "--bundle", bundle}, p.runArgs...), id)
		res := rt.Exec(ctx, testutil.Stdio{}, args...)
		if res.Err != nil {
			t.Fatalf("%s run: %v", rt, res.Err)
		}
		// The ids differ between the runs; what a probe prints about its
		// own id (cgroup paths, hostnames) must compare equal.
		out := strings.ReplaceAll(res.Stdout, id, "<ID>")
		if p.normalize != nil {
			out = p.normalize(out)
		}
		outs[i] = out
		if res.ExitCode != p.wantExit {
			t.Errorf("%s run %q: exit code %d, want %d; stderr: %s", rt, p.args, res.ExitCode, p.wantExit, res.Stderr)
		}
	}
	if p.check != nil {
		p.check(t, outs[0])
	}
	for i, rt := range runtimes[1:] {
		if outs[0] != outs[i+1] {
			t.Errorf("%q sees different things under runc and %s:\n%s", p.args, rt, lineDiff(outs[0], outs[i+1]))
		}
	}
}

// lineDiff lists the lines that only one of a (runc) and b (the runtime
// under test) has.
func lineDiff(a, b string) string {
	count := map[string]int{}
	for _, l := range strings.Split(a, "\n") {
		count[l]++
	}
	for _, l := range strings.Split(b, "\n") {
		count[l]--
	}
	var out []string
	for _, l := range strings.Split(a, "\n") {
		if count[l] > 0 {
			out = append(out, "  runc only:  "+l)
			count[l]--
		}
	}
	for _, l := range strings.Split(b, "\n") {
		if count[l] < 0 {
			out = append(out, "  "+runtimeUnderTest+" only: "+l)
			count[l]++
		}
	}
	if len(out) == 0 {
		return fmt.Sprintf("  (same lines, different order)\n  runc:\n%s\n  %s:\n%s", a, runtimeUnderTest, b)
	}
	return strings.Join(out, "\n")
}

func sortedLines(s string) string {
	lines := nonEmptyLines(s)
	sort.Strings(lines)
	return strings.Join(lines, "\n")
}

func trimSpace(s string) string { return strings.TrimSpace(s) }

// statusFields keeps the lines of /proc/self/status about identity,
// namespaces and privileges.
func statusFields(s string) string {
	keep := map[string]bool{
		"NSpid": true, "NStgid": true, "NSsid": true, "NSpgid": true,
		"Uid": true, "Gid": true, "Groups": true,
		"CapInh": true, "CapEff": true, "CapPrm": true, "CapBnd": true, "CapAmb": true,
		"NoNewPrivs": true, "Seccomp": true, "Seccomp_filters": true, "Umask": true,
	}
	var out []string
	for _, l := range nonEmptyLines(s) {
		k, v, ok := strings.Cut(l, ":")
		if ok && keep[k] {
			out = append(out, k+":"+strings.Join(strings.Fields(v), " "))
		}
	}
	return strings.Join(out, "\n")
}

// mountTable normalises a mountinfo file to "mountpoint fstype options",
// sorted, where options are the per-mount flags that matter (ro/rw,
// nosuid, nodev, noexec) and the superblock options that shape /dev (mode,
// size, gid, ptmxmode). Mount ids, device numbers and sources are dropped.
func mountTable(s string) string {
	mounts, err := testutil.ParseMountInfo(strings.NewReader(s))
	if err != nil {
		return "unparsable mountinfo: " + err.Error() + "\n" + s
	}
	var out []string
	for _, m := range mounts {
		var opts []string
		for _, o := range strings.Split(m.Options, ",") {
			switch o {
			case "ro", "rw", "nosuid", "nodev", "noexec":
				opts = append(opts, o)
			}
		}
		for _, o := range strings.Split(m.SuperOptions, ",") {
			k, _, _ := strings.Cut(o, "=")
			switch k {
			case "mode", "size", "gid", "ptmxmode":
				opts = append(opts, o)
			}
		}
		out = append(out, fmt.Sprintf("%s %s %s", m.MountPoint, m.FSType, strings.Join(opts, ",")))
	}
	sort.Strings(out)
	return strings.Join(out, "\n")
}

// propagation reduces a mountinfo file to "mountpoint propagation" lines,
// the propagation being the kinds of the optional fields (shared, master,
// ...) without their peer group numbers, or "private".
func propagation(s string) string {
	mounts, err := testutil.ParseMountInfo(strings.NewReader(s))
	if err != nil {
		return "unparsable mountinfo: " + err.Error()
	}
	var out []string
	for _, m := range mounts {
		var kinds []string
		for _, o := range m.Optional {
			k, _, _ := strings.Cut(o, ":")
			kinds = append(kinds, k)
		}
		if len(kinds) == 0 {
			kinds = []string{"private"}
		}
		out = append(out, m.MountPoint+" "+strings.Join(kinds, ","))
	}
	sort.Strings(out)
	return strings.Join(out, "\n")
}

// lsLine matches busybox `ls -la` lines: mode, links, owner, group, then
// size or "major, minor", date (3 fields), name.
var lsLine = regexp.MustCompile(`^([-a-zA-Z]{10})\s+\d+\s+(\S+)\s+(\S+)\s+(\d+,\s*\d+|\d+)\s+\S+\s+\S+\s+\S+\s+(.*)$`)

// devListing normalises `ls -la /dev` to "mode owner group [major,minor]
// name [-> target]", dropping sizes of regular files and directories, link
// counts and dates.
func devListing(s string) string {
	var out []string
	for _, l := range nonEmptyLines(s) {
		m := lsLine.FindStringSubmatch(l)
		if m == nil {
			if strings.HasPrefix(l, "total") {
				continue
			}
			out = append(out, "unparsed: "+l)
			continue
		}
		mode, owner, group, sz, name := m[1], m[2], m[3], m[4], m[5]
		if mode[0] == 'c' || mode[0] == 'b' {
			out = append(out, fmt.Sprintf("%s %s %s %s %s", mode, owner, group, strings.Join(strings.Fields(sz), ""), name))
		} else {
			out = append(out, fmt.Sprintf("%s %s %s %s", mode, owner, group, name))
		}
	}
	sort.Strings(out)
	return strings.Join(out, "\n")
}

// nsIdentity turns `ls -l /proc/self/ns` into "name new|host", comparing
// each namespace of the container with the test process's.
func nsIdentity(s string) string {
	var out []string
	for _, l := range nonEmptyLines(s) {
		f := strings.Fields(l)
		if len(f) < 3 || f[len(f)-2] != "->" {
			continue
		}
		name, target := f[len(f)-3], f[len(f)-1]
		host, err := os.Readlink("/proc/self/ns/" + name)
		where := "new"
		if err == nil && host == target {
			where = "host"
		}
		out = append(out, name+" "+where)
	}
	sort.Strings(out)
	return strings.Join(out, "\n")
}

func wantContains(subs ...string) func(t *testing.T, out string) {
	return func(t *testing.T, out string) {
		t.Helper()
		for _, s := range subs {
			if !strings.Contains(out, s) {
				t.Errorf("runc's output lacks %q (the probe is broken):\n%s", s, out)
			}
		}
	}
}

func ptr[T any](v T) *T { return &v }

var dockerCaps = []string{
	"CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FSETID", "CAP_FOWNER", "CAP_MKNOD",
	"CAP_NET_RAW", "CAP_SETGID", "CAP_SETUID", "CAP_SETFCAP", "CAP_SETPCAP",
	"CAP_NET_BIND_SERVICE", "CAP_SYS_CHROOT", "CAP_KILL", "CAP_AUDIT_WRITE",
}

// TestCompare runs probes through runc and skiff-runtime and compares what
// the container sees.
func TestCompare(t *testing.T) {
	t.Parallel()
	probes := []probe{
		{name: "hostname", args: []string{"hostname"},
			mutate:    func(t *testing.T, b string, s *specs.Spec) { s.Hostname = "skiff-probe" },
			normalize: trimSpace, check: wantContains("skiff-probe")},
		{name: "status-default", args: []string{"cat", "/proc/self/status"},
			normalize: statusFields, check: wantContains("NSpid:1", "NoNewPrivs:1", "CapEff:")},
		{name: "status-docker-caps-newprivs", args: []string{"cat", "/proc/self/status"},
			mutate: func(t *testing.T, b string, s *specs.Spec) {
				s.Process.NoNewPrivileges = false
				s.Process.Capabilities = &specs.LinuxCapabilities{
					Bounding: dockerCaps, Effective: dockerCaps, Permitted: dockerCaps,
				}
			},
			normalize: statusFields, check: wantContains("NoNewPrivs:0", "CapAmb:0000000000000000")},
		{name: "status-app-user", args: []string{"cat", "/proc/self/status"},
			mutate: func(t *testing.T, b string, s *specs.Spec) {
				s.Process.User = specs.User{UID: 1000, GID: 1000, AdditionalGids: []uint32{5, 65534}}
			},
			normalize: statusFields, check: wantContains("Uid:1000 1000 1000 1000", "Groups:")},
		{name: "mountinfo", args: []string{"cat", "/proc/self/mountinfo"},
			normalize: mountTable, check: wantContains("/proc proc", "/dev/pts devpts", "/sys sysfs ro")},
		{name: "mountinfo-bind-rw-rootfs", args: []string{"cat", "/proc/self/mountinfo"},
			mutate: func(t *testing.T, b string, s *specs.Spec) {
				s.Root.Readonly = false
				s.Mounts = append(s.Mounts,
					specs.Mount{Destination: "/data", Type: "bind", Source: sharedDir(t), Options: []string{"rbind", "ro", "nosuid"}},
					specs.Mount{Destination: "/scratch", Type: "tmpfs", Source: "tmpfs", Options: []string{"nodev", "size=1m", "mode=700"}})
			},
			normalize: mountTable, check: wantContains("/data ", "/scratch tmpfs")},
		{name: "env", args: []string{"env"},
			mutate: func(t *testing.T, b string, s *specs.Spec) {
				s.Process.Env = append(s.Process.Env, "FOO=bar baz", "EMPTY=", "MULTI=a=b")
			},
			normalize: sortedLines, check: wantContains("FOO=bar baz", "MULTI=a=b", "PATH=")},
		{name: "env-app-home", args: []string{"env"},
			mutate: func(t *testing.T, b string, s *specs.Spec) {
				s.Process.User = specs.User{UID: 1000, GID: 1000}
			},
			normalize: sortedLines, check: wantContains("PATH=")},
		{name: "cwd", args: []string{"pwd"},
			mutate:    func(t *testing.T, b string, s *specs.Spec) { s.Process.Cwd = "/tmp" },
			normalize: trimSpace, check: wantContains("/tmp")},
		{name: "cwd-missing", args: []string{"pwd"},
			mutate: func(t *testing.T, b string, s *specs.Spec) {
				s.Root.Readonly = false
				s.Process.Cwd = "/var/lib/app"
			},
			normalize: trimSpace, check: wantContains("/var/lib/app")},
		{name: "limits", args: []string{"cat", "/proc/self/limits"},
			mutate: func(t *testing.T, b string, s *specs.Spec) {
				s.Process.Rlimits = append(s.Process.Rlimits,
					specs.POSIXRlimit{Type: "RLIMIT_NPROC", Hard: 4096, Soft: 2048},
					specs.POSIXRlimit{Type: "RLIMIT_CORE", Hard: 0, Soft: 0})
			},
			check: wantContains("Max open files            1024")},
		{name: "ulimit-n", args: []string{"sh", "-c", "ulimit -n; ulimit -Hn"},
			mutate: func(t *testing.T, b string, s *specs.Spec) {
				s.Process.Rlimits = []specs.POSIXRlimit{{Type: "RLIMIT_NOFILE", Hard: 2000, Soft: 1500}}
			},
			check: wantContains("1500\n2000")},
		{name: "id-root", args: []string{"id"}, check: wantContains("uid=0(root)")},
		{name: "id-app", args: []string{"id"},
			mutate: func(t *testing.T, b string, s *specs.Spec) {
				s.Process.User = specs.User{UID: 1000, GID: 1000, AdditionalGids: []uint32{5}}
			},
			check: wantContains("uid=1000(app)", "5(tty)")},
		{name: "id-unknown-uid", args: []string{"id"},
			mutate: func(t *testing.T, b string, s *specs.Spec) { s.Process.User = specs.User{UID: 4242, GID: 4343} },
			check:  wantContains("uid=4242")},
		{name: "umask-default", args: []string{"sh", "-c", "umask"}, check: wantContains("0022")},
		{name: "umask-set", args: []string{"sh", "-c", "umask"},
			mutate: func(t *testing.T, b string, s *specs.Spec) { s.Process.User.Umask = ptr(uint32(0o027)) },
			check:  wantContains("0027")},
		{name: "dev", args: []string{"ls", "-la", "/dev"},
			normalize: devListing, check: wantContains("crw-rw-rw- root root 1,3 null", "ptmx", "pts")},
		{name: "dev-extra-device", args: []string{"ls", "-la", "/dev"},
			mutate: func(t *testing.T, b string, s *specs.Spec) {
				s.Linux.Devices = append(s.Linux.Devices, specs.LinuxDevice{
					Path: "/dev/fuse", Type: "c", Major: 10, Minor: 229, FileMode: ptr(os.FileMode(0o660)),
					UID: ptr(uint32(0)), GID: ptr(uint32(5)),
				})
			},
			normalize: devListing, check: wantContains("crw-rw---- root tty 10,229 fuse")},
		{name: "namespaces", args: []string{"ls", "-l", "/proc/self/ns"},
			normalize: nsIdentity, check: wantContains("pid new", "net new", "mnt new", "uts new", "ipc new", "user host")},
		{name: "readonly-rootfs", args: []string{"sh", "-c", "touch /x 2>/dev/null; echo $?; touch /tmp/x 2>/dev/null; echo $?"},
			check: wantContains("1\n1")},
		{name: "oom-score-adj", args: []string{"cat", "/proc/self/oom_score_adj"},
			mutate:    func(t *testing.T, b string, s *specs.Spec) { s.Process.OOMScoreAdj = ptr(123) },
			normalize: trimSpace, check: wantContains("123")},
		{name: "masked-readonly-paths", args: []string{"sh", "-c",
			"cat /proc/kcore | wc -c; ls /sys/firmware | wc -l; echo 1 > /proc/sys/kernel/ns_last_pid; echo $?"},
			check: wantContains("0\n0\n")},
		{name: "sysctl", args: []string{"cat", "/proc/sys/net/ipv4/ip_forward", "/proc/sys/kernel/msgmax"},
			mutate: func(t *testing.T, b string, s *specs.Spec) {
				s.Linux.Sysctl = map[string]string{"net.ipv4.ip_forward": "1", "kernel.msgmax": "12345"}
			},
			check: wantContains("1\n12345")},
		{name: "seccomp-docker-default", args: []string{"sh", "-c",
			"grep -E '^(Seccomp|NoNewPrivs):' /proc/self/status; unshare -U true 2>&1; echo $?; unshare -n true 2>&1; echo $?; " +
				"chroot / true; echo $?; hostname probe 2>&1; echo $?; ls /proc/self/ns >/dev/null; echo $?"},
			mutate: func(t *testing.T, b string, s *specs.Spec) {
				s.Process.Capabilities = &specs.LinuxCapabilities{Bounding: dockerCaps, Effective: dockerCaps, Permitted: dockerCaps}
				s.Linux.Seccomp = seccomp.DefaultProfile()
			},
			check: wantContains("Seccomp:\t2", "Operation not permitted")},
		{name: "seccomp-errno", args: []string{"sh", "-c", "mkdir /tmp/x 2>&1; echo $?; uname -s"},
			mutate: func(t *testing.T, b string, s *specs.Spec) {
				s.Root.Readonly = false
				s.Linux.Seccomp = &specs.LinuxSeccomp{
					DefaultAction: specs.ActAllow,
					Syscalls: []specs.LinuxSyscall{
						{Names: []string{"mkdir", "mkdirat"}, Action: specs.ActErrno, ErrnoRet: ptr(uint(38))},
					},
				}
			},
			check: wantContains("Function not implemented", "1\nLinux")},
		{name: "no-pivot", args: []string{"sh", "-c", "cat /proc/self/mountinfo; ls /"}, runArgs: []string{"--no-pivot"},
			normalize: func(s string) string {
				mi, rest, _ := strings.Cut(s, "\nbin\n")
				return mountTable(mi) + "\n--\nbin\n" + rest
			},
			check: wantContains("/proc proc", "bin\ndev\netc")},
		// The session keyring is not observable from inside (/proc/keys is
		// masked); this checks that the flag is accepted.
		{name: "no-new-keyring", args: []string{"echo", "ok"}, runArgs: []string{"--no-new-keyring"},
			check: wantContains("ok")},
		{name: "bind-files", args: []string{"sh", "-c", "cat /etc/hosts /etc/resolv.conf; grep -E ' /etc/(hosts|resolv.conf) ' /proc/self/mountinfo | cut -d' ' -f5,6"},
			mutate: func(t *testing.T, b string, s *specs.Spec) {
				dir := sharedDir(t)
				for name, content := range map[string]string{"hosts": "10.0.0.1 probe-host\n", "resolv.conf": "nameserver 10.0.0.53\n"} {
					if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
						t.Fatal(err)
					}
					s.Mounts = append(s.Mounts, specs.Mount{Destination: "/etc/" + name, Type: "bind",
						Source: filepath.Join(dir, name), Options: []string{"rbind", "ro", "nosuid", "nodev"}})
				}
			},
			check: wantContains("probe-host", "10.0.0.53", "/etc/resolv.conf ro,nosuid,nodev")},
		// Not compared: rootfsPropagation "rshared", where runc 1.1 leaves
		// every mount but the cgroup ones private when the host's / is
		// private (as here), and skiff-runtime makes them all shared.
		{name: "propagation-default", args: []string{"cat", "/proc/self/mountinfo"},
			normalize: propagation, check: wantContains("/proc private")},
		{name: "exit-code", args: []string{"sh", "-c", "exit 3"}, wantExit: 3},
		{name: "exit-code-255", args: []string{"sh", "-c", "exit 255"}, wantExit: 255},
	}
	for _, p := range probes {
		p := p
		t.Run(p.name, func(t *testing.T) {
			t.Parallel()
			p.run(t)
		})
	}
}

// TestRunSignalExit checks that `run` reports 128+N when the container's
// init is killed by signal N.
func TestRunSignalExit(t *testing.T) {
	t.Parallel()
	for _, sig := range []struct {
		name string
		num  syscall.Signal
	}{
		{"KILL", syscall.SIGKILL},
		// The kernel drops TERM to a pid 1 without a handler, so this case
		// runs without a pid namespace, where sleep is not pid 1.
		{"TERM", syscall.SIGTERM},
	} {
		sig := sig
		t.Run(sig.name, func(t *testing.T) {
			t.Parallel()
			forEachRuntime(t, func(t *testing.T, rt *testutil.Runtime) {
				bundle, spec := testutil.BusyboxBundle(t, "sleep", "60")
				if sig.num == syscall.SIGTERM {
					var ns []specs.LinuxNamespace
					for _, n := range spec.Linux.Namespaces {
						if n.Type != specs.PIDNamespace {
							ns = append(ns, n)
						}
					}
					spec.Linux.Namespaces = ns
					testutil.WriteSpec(t, bundle, spec)
				}
				id := testutil.ContainerID(t)
				guard(t, rt, id, bundle)
				ctx := testContext(t, 60*time.Second)
				done := make(chan testutil.Result, 1)
				go func() { done <- rt.Exec(ctx, testutil.Stdio{}, "run", "--bundle", bundle, id) }()
				if _, err := rt.WaitStatus(ctx, id, "running", 10*time.Second); err != nil {
					t.Fatal(err)
				}
				if err := rt.Kill(ctx, id, sig.name); err != nil {
					t.Fatal(err)
				}
				res := <-done
				if want := 128 + int(sig.num); res.ExitCode != want {
					t.Errorf("run killed by SIG%s: exit code %d, want %d; stderr: %s", sig.name, res.ExitCode, want, res.Stderr)
				}
				if _, stderr, code := rt.Run(ctx, "state", id); code == 0 {
					t.Errorf("container still exists after run returned: %s", stderr)
				}
			})
		})
	}
}

// TestMissingProgram checks that a user program that does not exist makes
// both runtimes fail with the same exit code and a message naming it.
func TestMissingProgram(t *testing.T) {
	t.Parallel()
	for _, args := range [][]string{{"/bin/no-such-program"}, {"no-such-program", "arg"}, {"/etc/passwd"}} {
		args := args
		t.Run(strings.Trim(strings.ReplaceAll(args[0], "/", "_"), "_"), func(t *testing.T) {
			t.Parallel()
			var codes []int
			for _, cmd := range []string{"run", "create"} {
				oracle, subject := newRuntimes(t)
				bundle, _ := testutil.BusyboxBundle(t, args...)
				ctx := testContext(t, 60*time.Second)
				for _, rt := range []*testutil.Runtime{oracle, subject} {
					id := testutil.ContainerID(t)
					guard(t, rt, id, bundle)
					_, stderr, code := rt.Run(ctx, cmd, "--bundle", bundle, id)
					codes = append(codes, code)
					if code == 0 {
						t.Errorf("%s %s of %q succeeded", rt, cmd, args)
						rt.Delete(ctx, id, true)
					}
					if !mentions(stderr, filepath.Base(args[0])) {
						t.Errorf("%s %s of %q: stderr does not name the program: %q", rt, cmd, args, stderr)
					}
				}
			}
			if codes[0] != codes[1] || codes[2] != codes[3] {
				t.Errorf("exit codes (runc run, %[2]s run, runc create, %[2]s create) = %[1]v", codes, runtimeUnderTest)
			}
		})
	}
}
