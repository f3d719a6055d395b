package caps

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

// helperEnv switches the test binary into helper mode (see TestMain): it
// then behaves like a container's init for capabilities only.
const helperEnv = "SKIFF_CAPS_TEST_HELPER"

type helperConfig struct {
	Caps *specs.LinuxCapabilities
	UID  uint32
	GID  uint32
	// Exec: exec busybox cat /proc/self/status at the end (what runc's init
	// does with the container's process); otherwise print the thread's
	// status right after Apply.
	Exec bool
}

func TestMain(m *testing.M) {
	if cfg := os.Getenv(helperEnv); cfg != "" {
		if err := helper(cfg); err != nil {
			fmt.Fprintln(os.Stderr, "helper:", err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// helper runs the sequence a container init runs: drop the bounding set,
// keep caps across the uid/gid switch, apply the sets, then exec.
func helper(cfgJSON string) error {
	var cfg helperConfig
	if err := json.Unmarshal([]byte(cfgJSON), &cfg); err != nil {
		return err
	}
	runtime.LockOSThread() // never unlocked: this thread's credentials change
	s, err := FromSpec(cfg.Caps)
	if err != nil {
		return err
	}
	if err := s.DropBounding(); err != nil {
		return err
	}
	if err := unix.Prctl(unix.PR_SET_KEEPCAPS, 1, 0, 0, 0); err != nil {
		return err
	}
	// Raw syscalls: only this thread switches, as in a single-threaded init.
	if _, _, e := unix.RawSyscall(unix.SYS_SETGROUPS, 0, 0, 0); e != 0 {
		return fmt.Errorf("setgroups: %w", e)
	}
	if _, _, e := unix.RawSyscall(unix.SYS_SETRESGID, uintptr(cfg.GID), uintptr(cfg.GID), uintptr(cfg.GID)); e != 0 {
		return fmt.Errorf("setresgid: %w", e)
	}
	if _, _, e := unix.RawSyscall(unix.SYS_SETRESUID, uintptr(cfg.UID), uintptr(cfg.UID), uintptr(cfg.UID)); e != 0 {
		return fmt.Errorf("setresuid: %w", e)
	}
	if err := unix.Prctl(unix.PR_SET_KEEPCAPS, 0, 0, 0, 0); err != nil {
		return err
	}
	if err := s.Apply(); err != nil {
		return err
	}
	if cfg.Exec {
		return syscall.Exec("/bin/busybox", []string{"cat", "/proc/self/status"}, []string{"PATH=/bin"})
	}
	b, err := os.ReadFile("/proc/thread-self/status")
	if err != nil {
		return err
	}
	_, err = os.Stdout.Write(b)
	return err
}

// statusCaps extracts the five Cap* lines of a /proc/<pid>/status.
func statusCaps(t *testing.T, status []byte) map[string]uint64 {
	t.Helper()
	out := map[string]uint64{}
	for _, line := range strings.Split(string(status), "\n") {
		k, v, ok := strings.Cut(line, ":")
		if !ok || !strings.HasPrefix(k, "Cap") {
			continue
		}
		n, err := strconv.ParseUint(strings.TrimSpace(v), 16, 64)
		if err != nil {
			t.Fatalf("status line %q: %v", line, err)
		}
		out[k] = n
	}
	if len(out) != 5 {
		t.Fatalf("found %d Cap lines in status, want 5:\n%s", len(out), status)
	}
	return out
}

// runHelper runs the helper and returns the Cap* values of the status it
// prints, or, when it fails, its stderr.
func runHelper(t *testing.T, cfg helperConfig) (map[string]uint64, string) {
	t.Helper()
	b, err := json.Marshal(cfg)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), helperEnv+"="+string(b))
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		if stderr.Len() == 0 {
			t.Fatalf("helper %s: %v with no message", b, err)
		}
		return nil, stderr.String()
	}
	return statusCaps(t, out), ""
}

var applyCases = []struct {
	name string
	caps *specs.LinuxCapabilities
	uid  uint32
	// wantErr: Apply must fail with an error containing this, and runc
	// must refuse the same configuration.
	wantErr string
}{
	{"runc default as root", runcDefaultCaps(), 0, ""},
	{"runc default as uid 1000", runcDefaultCaps(), 1000, ""},
	{"no capabilities block", nil, 0, ""},
	{"every capability held as root", heldCaps(), 0, ""},
	{"every capability held as uid 1000", heldCaps(), 1000, ""},
	{"ambient needs permitted and inheritable", &specs.LinuxCapabilities{
		Bounding:    []string{"CAP_KILL", "CAP_SYS_ADMIN", "CAP_CHOWN", "CAP_NET_BIND_SERVICE"},
		Effective:   []string{"CAP_KILL"},
		Permitted:   []string{"CAP_KILL", "CAP_CHOWN", "CAP_NET_BIND_SERVICE"},
		Inheritable: []string{"CAP_KILL", "CAP_SYS_ADMIN", "CAP_NET_BIND_SERVICE"},
		Ambient:     []string{"CAP_KILL", "CAP_SYS_ADMIN", "CAP_CHOWN", "CAP_NET_BIND_SERVICE"},
	}, 1000, ""},
	{"permitted wider than bounding", &specs.LinuxCapabilities{
		Bounding:  []string{"CAP_CHOWN"},
		Effective: []string{"CAP_CHOWN"},
		Permitted: []string{"CAP_CHOWN", "CAP_NET_RAW"},
	}, 0, ""},
	{"inheritable wider than bounding", &specs.LinuxCapabilities{
		Bounding:    []string{"CAP_CHOWN"},
		Effective:   []string{"CAP_CHOWN", "CAP_NET_RAW"},
		Permitted:   []string{"CAP_CHOWN", "CAP_NET_RAW"},
		Inheritable: []string{"CAP_NET_RAW"},
	}, 0, "inheritable [CAP_NET_RAW] not in the bounding set"},
}

func runcDefaultCaps() *specs.LinuxCapabilities {
	d := []string{"CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"}
	return &specs.LinuxCapabilities{Bounding: d, Effective: d, Permitted: d, Ambient: d}
}

// heldCaps lists, in every set, each capability the test process holds (the
// machine may withhold some, e.g. CAP_SYS_RESOURCE in some sandboxes).
func heldCaps() *specs.LinuxCapabilities {
	hdr := unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}
	var cur [2]unix.CapUserData
	if err := unix.Capget(&hdr, &cur[0]); err != nil {
		panic(err)
	}
	perm := uint64(cur[0].Permitted) | uint64(cur[1].Permitted)<<32
	n := maskNames(perm & (1<<uint(len(names)) - 1))
	return &specs.LinuxCapabilities{Bounding: n, Effective: n, Permitted: n, Inheritable: n, Ambient: n}
}

func requireRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root to change capabilities and uids (the suite runs as root)")
	}
}

// TestApplyThreadState checks the thread's sets right after Apply: they must
// be exactly what the Set says, ambient being limited to permitted and
// inheritable.
func TestApplyThreadState(t *testing.T) {
	requireRoot(t)
	last, err := lastCap()
	if err != nil {
		t.Fatal(err)
	}
	known := uint64(1)<<uint(last+1) - 1
	for _, tc := range applyCases {
		t.Run(tc.name, func(t *testing.T) {
			s, err := FromSpec(tc.caps)
			if err != nil {
				t.Fatal(err)
			}
			got, errMsg := runHelper(t, helperConfig{Caps: tc.caps, UID: tc.uid, GID: tc.uid})
			if tc.wantErr != "" {
				if !strings.Contains(errMsg, tc.wantErr) {
					t.Fatalf("helper error = %q, want one containing %q", errMsg, tc.wantErr)
				}
				return
			}
			if errMsg != "" {
				t.Fatalf("helper failed: %s", errMsg)
			}
			want := map[string]uint64{
				"CapInh": s.Inheritable,
				"CapPrm": s.Permitted,
				"CapEff": s.Effective,
				"CapBnd": s.Bounding & known,
				"CapAmb": s.Ambient & s.Permitted & s.Inheritable,
			}
			for k, w := range want {
				if got[k] != w {
					t.Errorf("%s = %016x, want %016x", k, got[k], w)
				}
			}
		})
	}
}

// TestApplyMatchesRunc runs the same capabilities and user through runc and
// through the helper, both exec'ing busybox cat /proc/self/status, and
// compares the five sets the process ends up with.
func TestApplyMatchesRunc(t *testing.T) {
	requireRoot(t)
	runc, err := exec.LookPath("runc")
	if err != nil {
		t.Fatalf("runc (the oracle) is not installed: %v", err)
	}
	if _, err := os.Stat("/bin/busybox"); err != nil {
		t.Fatalf("need a static /bin/busybox for the container's rootfs: %v", err)
	}
	for i, tc := range applyCases {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			bundle := filepath.Join(dir, "bundle")
			for _, d := range []string{"rootfs/bin", "rootfs/proc", "rootfs/dev", "rootfs/sys"} {
				if err := os.MkdirAll(filepath.Join(bundle, d), 0o755); err != nil {
					t.Fatal(err)
				}
			}
			bb, err := os.ReadFile("/bin/busybox")
			if err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(bundle, "rootfs/bin/busybox"), bb, 0o755); err != nil {
				t.Fatal(err)
			}
			config := runcConfig(tc.caps, tc.uid)
			if err := os.WriteFile(filepath.Join(bundle, "config.json"), config, 0o644); err != nil {
				t.Fatal(err)
			}
			id := fmt.Sprintf("skiff-caps-test-%d-%d", os.Getpid(), i)
			cmd := exec.Command(runc, "--root", filepath.Join(dir, "state"), "run", "--bundle", bundle, id)
			var stderr bytes.Buffer
			cmd.Stderr = &stderr
			out, err := cmd.Output()
			got, errMsg := runHelper(t, helperConfig{Caps: tc.caps, UID: tc.uid, GID: tc.uid, Exec: true})
			if tc.wantErr != "" {
				if err == nil {
					t.Errorf("runc accepted the configuration; this case expects it to fail")
				}
				if errMsg == "" {
					t.Errorf("the helper accepted the configuration, runc refused it: %s", stderr.Bytes())
				}
				return
			}
			if err != nil {
				t.Fatalf("runc run: %v\n%s", err, stderr.Bytes())
			}
			if errMsg != "" {
				t.Fatalf("helper failed: %s", errMsg)
			}
			want := statusCaps(t, out)
			for _, k := range []string{"CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb"} {
				if got[k] != want[k] {
					t.Errorf("%s = %016x, runc gives %016x", k, got[k], want[k])
				}
			}
		})
	}
}

// runcConfig is a minimal config.json for runc that runs
// busybox cat /proc/self/status with the given capabilities and user.
func runcConfig(c *specs.LinuxCapabilities, uid uint32) []byte {
	s := specs.Spec{
		Version: "1.0.2",
		Process: &specs.Process{
			User:         specs.User{UID: uid, GID: uid},
			Args:         []string{"/bin/busybox", "cat", "/proc/self/status"},
			Env:          []string{"PATH=/bin"},
			Cwd:          "/",
			Capabilities: c,
		},
		Root:   &specs.Root{Path: "rootfs", Readonly: true},
		Mounts: []specs.Mount{{Destination: "/proc", Type: "proc", Source: "proc"}},
		Linux: &specs.Linux{
			Namespaces: []specs.LinuxNamespace{{Type: "pid"}, {Type: "mount"}, {Type: "ipc"}, {Type: "uts"}, {Type: "network"}},
		},
	}
	b, err := json.Marshal(s)
	if err != nil {
		panic(err)
	}
	return b
}
