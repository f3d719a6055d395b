package test

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/skiff-containers/skiff/internal/testutil"
)

// badInput is a bundle or command line that every runtime must refuse.
type badInput struct {
	name string
	// setup breaks the bundle. It may return a different bundle path to
	// pass to --bundle, and the container id to use ("" for a fresh one);
	// it returns keepID true to use the returned id even if it is "".
	setup func(t *testing.T, bundle string, spec *specs.Spec) (bundlePath, id string, keepID bool)
	// mentions are words the error message must contain (case-insensitive).
	mentions []string
	// runcMentions replace mentions for runc, whose wording is not ours to
	// choose; nil means the same as mentions.
	runcMentions []string
	// onlySubject: runc accepts this input (or scopes it safely); only the
	// runtime under test runs it, and must refuse it.
	onlySubject bool
}

func setRaw(t *testing.T, bundle string, spec *specs.Spec, edit func(m map[string]any)) {
	m := testutil.SpecJSON(t, spec)
	edit(m)
	data, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	testutil.WriteRawSpec(t, bundle, data)
}

func badInputs() []badInput {
	unchanged := func(id string) func(t *testing.T, b string, s *specs.Spec) (string, string, bool) {
		return func(t *testing.T, b string, s *specs.Spec) (string, string, bool) { return b, id, true }
	}
	return []badInput{
		{name: "missing-bundle",
			setup: func(t *testing.T, b string, s *specs.Spec) (string, string, bool) {
				return filepath.Join(b, "no-such-bundle"), "", false
			},
			mentions: []string{"no-such-bundle"}},
		{name: "missing-rootfs",
			setup: func(t *testing.T, b string, s *specs.Spec) (string, string, bool) {
				s.Root.Path = "no-such-rootfs"
				testutil.WriteSpec(t, b, s)
				return b, "", false
			},
			mentions: []string{"no-such-rootfs"}},
		{name: "missing-config",
			setup: func(t *testing.T, b string, s *specs.Spec) (string, string, bool) {
				os.Remove(filepath.Join(b, "config.json"))
				return b, "", false
			},
			mentions: []string{"config.json"}},
		{name: "invalid-json",
			setup: func(t *testing.T, b string, s *specs.Spec) (string, string, bool) {
				testutil.WriteRawSpec(t, b, []byte(`{"ociVersion": "1.0.2", "process": {`))
				return b, "", false
			},
			// runc says only "unexpected EOF".
			mentions: []string{"config.json"}, runcMentions: []string{}},
		{name: "wrong-type-args",
			setup: func(t *testing.T, b string, s *specs.Spec) (string, string, bool) {
				setRaw(t, b, s, func(m map[string]any) { m["process"].(map[string]any)["args"] = "sh" })
				return b, "", false
			},
			mentions: []string{"args"}},
		{name: "wrong-type-uid",
			setup: func(t *testing.T, b string, s *specs.Spec) (string, string, bool) {
				setRaw(t, b, s, func(m map[string]any) {
					m["process"].(map[string]any)["user"].(map[string]any)["uid"] = "root"
				})
				return b, "", false
			},
			mentions: []string{"uid"}},
		{name: "relative-cwd",
			setup: func(t *testing.T, b string, s *specs.Spec) (string, string, bool) {
				s.Process.Cwd = "tmp"
				testutil.WriteSpec(t, b, s)
				return b, "", false
			},
			mentions: []string{"cwd"}},
		{name: "relative-mount-destination",
			setup: func(t *testing.T, b string, s *specs.Spec) (string, string, bool) {
				s.Mounts = append(s.Mounts, specs.Mount{Destination: "relative/dest", Type: "tmpfs", Source: "tmpfs"})
				testutil.WriteSpec(t, b, s)
				return b, "", false
			},
			// runtime-spec 1.1+ deprecates but allows relative destinations
			// and runc accepts them; skiff refuses them (DESIGN.md: refuse
			// untrusted input with a clear error).
			mentions: []string{"relative/dest"}, onlySubject: true},
		{name: "mount-destination-symlink-escape",
			setup: func(t *testing.T, b string, s *specs.Spec) (string, string, bool) {
				// rootfs/escape -> ../../<outside>, outside the rootfs; a
				// runtime that follows it mounts onto the host.
				outside := filepath.Join(b, "outside")
				if err := os.Mkdir(outside, 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.Symlink("../../../../../../../../"+strings.TrimPrefix(outside, "/"), filepath.Join(b, "rootfs", "escape")); err != nil {
					t.Fatal(err)
				}
				s.Root.Readonly = false
				s.Mounts = append(s.Mounts, specs.Mount{Destination: "/escape/sub", Type: "tmpfs", Source: "tmpfs"})
				testutil.WriteSpec(t, b, s)
				return b, "", false
			},
			mentions: []string{"/escape/sub"}, onlySubject: true},
		{name: "bind-source-missing",
			setup: func(t *testing.T, b string, s *specs.Spec) (string, string, bool) {
				s.Mounts = append(s.Mounts, specs.Mount{Destination: "/data", Type: "bind", Source: filepath.Join(b, "no-such-source"), Options: []string{"rbind"}})
				testutil.WriteSpec(t, b, s)
				return b, "", false
			},
			mentions: []string{"no-such-source"}},
		{name: "hostname-without-uts",
			setup: func(t *testing.T, b string, s *specs.Spec) (string, string, bool) {
				var ns []specs.LinuxNamespace
				for _, n := range s.Linux.Namespaces {
					if n.Type != specs.UTSNamespace {
						ns = append(ns, n)
					}
				}
				s.Linux.Namespaces = ns
				testutil.WriteSpec(t, b, s)
				return b, "", false
			},
			mentions: []string{"hostname", "uts"}},
		{name: "unknown-namespace",
			setup: func(t *testing.T, b string, s *specs.Spec) (string, string, bool) {
				s.Linux.Namespaces = append(s.Linux.Namespaces, specs.LinuxNamespace{Type: "frobnicate"})
				testutil.WriteSpec(t, b, s)
				return b, "", false
			},
			mentions: []string{"frobnicate"}},
		{name: "missing-program",
			setup: func(t *testing.T, b string, s *specs.Spec) (string, string, bool) {
				s.Process.Args = []string{"/bin/no-such-program"}
				testutil.WriteSpec(t, b, s)
				return b, "", false
			},
			mentions: []string{"/bin/no-such-program"}},
		{name: "no-args",
			setup: func(t *testing.T, b string, s *specs.Spec) (string, string, bool) {
				s.Process.Args = nil
				testutil.WriteSpec(t, b, s)
				return b, "", false
			},
			mentions: []string{"args"}},
		{name: "uid-mapping-overlap",
			setup: func(t *testing.T, b string, s *specs.Spec) (string, string, bool) {
				s.Linux.Namespaces = append(s.Linux.Namespaces, specs.LinuxNamespace{Type: specs.UserNamespace})
				s.Linux.UIDMappings = []specs.LinuxIDMapping{
					{ContainerID: 0, HostID: 100000, Size: 1000},
					{ContainerID: 500, HostID: 300000, Size: 1000},
				}
				s.Linux.GIDMappings = []specs.LinuxIDMapping{{ContainerID: 0, HostID: 100000, Size: 65536}}
				testutil.WriteSpec(t, b, s)
				return b, "", false
			},
			mentions: []string{"uid"}, runcMentions: []string{"map"}},
		{name: "unknown-rlimit",
			setup: func(t *testing.T, b string, s *specs.Spec) (string, string, bool) {
				s.Process.Rlimits = append(s.Process.Rlimits, specs.POSIXRlimit{Type: "RLIMIT_FROB", Hard: 1, Soft: 1})
				testutil.WriteSpec(t, b, s)
				return b, "", false
			},
			mentions: []string{"RLIMIT_FROB"}},
		{name: "sysctl-not-namespaced",
			setup: func(t *testing.T, b string, s *specs.Spec) (string, string, bool) {
				s.Linux.Sysctl = map[string]string{"vm.swappiness": "10"}
				testutil.WriteSpec(t, b, s)
				return b, "", false
			},
			mentions: []string{"vm.swappiness"}},
		{name: "sysctl-net-on-host-network",
			setup: func(t *testing.T, b string, s *specs.Spec) (string, string, bool) {
				var ns []specs.LinuxNamespace
				for _, n := range s.Linux.Namespaces {
					if n.Type != specs.NetworkNamespace {
						ns = append(ns, n)
					}
				}
				s.Linux.Namespaces = ns
				s.Linux.Sysctl = map[string]string{"net.ipv4.ip_forward": "1"}
				testutil.WriteSpec(t, b, s)
				return b, "", false
			},
			mentions: []string{"net.ipv4.ip_forward"}},
		{name: "unknown-capability",
			setup: func(t *testing.T, b string, s *specs.Spec) (string, string, bool) {
				s.Process.Capabilities.Bounding = append(s.Process.Capabilities.Bounding, "CAP_FROBNICATE")
				testutil.WriteSpec(t, b, s)
				return b, "", false
			},
			// runc 1.1 only warns about unknown capabilities and runs.
			mentions: []string{"CAP_FROBNICATE"}, onlySubject: true},
		{name: "unknown-mount-type",
			setup: func(t *testing.T, b string, s *specs.Spec) (string, string, bool) {
				s.Mounts = append(s.Mounts, specs.Mount{Destination: "/mnt", Type: "nosuchfs", Source: "none"})
				testutil.WriteSpec(t, b, s)
				return b, "", false
			},
			mentions: []string{"/mnt"}, runcMentions: []string{"no such device"}},
		{name: "netns-path-missing",
			setup: func(t *testing.T, b string, s *specs.Spec) (string, string, bool) {
				for i, n := range s.Linux.Namespaces {
					if n.Type == specs.NetworkNamespace {
						s.Linux.Namespaces[i].Path = filepath.Join(b, "no-such-netns")
					}
				}
				testutil.WriteSpec(t, b, s)
				return b, "", false
			},
			mentions: []string{"no-such-netns"}},
		{name: "netns-path-not-a-namespace",
			setup: func(t *testing.T, b string, s *specs.Spec) (string, string, bool) {
				for i, n := range s.Linux.Namespaces {
					if n.Type == specs.NetworkNamespace {
						s.Linux.Namespaces[i].Path = filepath.Join(b, "config.json")
					}
				}
				testutil.WriteSpec(t, b, s)
				return b, "", false
			},
			mentions: []string{"config.json"}, runcMentions: []string{}},
		{name: "id-dotdot", setup: unchanged("../x"), mentions: []string{"../x"}, runcMentions: []string{"id"}},
		{name: "id-slash", setup: unchanged("a/b"), mentions: []string{"a/b"}, runcMentions: []string{"id"}},
		{name: "id-empty", setup: unchanged(""), mentions: []string{"id"}},
		{name: "id-300-chars", setup: unchanged(strings.Repeat("x", 300)), mentions: []string{"id"}},
	}
}

// TestBadInput checks that each bad bundle or id is refused by create and
// by run with exit code 1, a one-line error on stderr that names what is
// wrong, and no leftovers.
func TestBadInput(t *testing.T) {
	t.Parallel()
	for _, bi := range badInputs() {
		bi := bi
		t.Run(bi.name, func(t *testing.T) {
			t.Parallel()
			for _, cmd := range []string{"create", "run"} {
				cmd := cmd
				t.Run(cmd, func(t *testing.T) {
					t.Parallel()
					bins := runtimeBins()
					if bi.onlySubject {
						bins = bins[1:]
					}
					forRuntimes(t, bins, func(t *testing.T, rt *testutil.Runtime) {
						isRunc := rt.Name == "runc"
						bundle, spec := testutil.BusyboxBundle(t, "true")
						path, id, keep := bi.setup(t, bundle, spec)
						if id == "" && !keep {
							id = testutil.ContainerID(t)
						}
						guard(t, rt, id, bundle)
						ctx := testContext(t, 60*time.Second)
						_, stderr, code := rt.Run(ctx, cmd, "--bundle", path, id)
						if code == 0 {
							t.Errorf("%s %s succeeded, want a refusal", rt, cmd)
							if id != "" {
								rt.Delete(ctx, id, true)
							}
							return
						}
						if code != 1 {
							t.Errorf("%s %s: exit code %d, want 1; stderr: %s", rt, cmd, code, stderr)
						}
						want := bi.mentions
						if isRunc && bi.runcMentions != nil {
							want = bi.runcMentions
						}
						if !mentions(stderr, want...) {
							t.Errorf("%s %s: error %q does not mention %q", rt, cmd, stderr, want)
						}
						// runc logs the failures of its helper processes
						// too; ours must say it once.
						if lines := nonEmptyLines(stderr); !isRunc && len(lines) != 1 {
							t.Errorf("%s %s: want one error line on stderr, got %d: %q", rt, cmd, len(lines), stderr)
						}
					})
				})
			}
		})
	}
}
