package specgen

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/skiff-containers/skiff/internal/testutil"
)

func TestMain(m *testing.M) {
	code := m.Run()
	testutil.RemoveBuilds()
	os.Exit(code)
}

// maskedProcFiles are docker's masked /proc files; the containers print
// the size of each that exists, which must be 0.
const maskedProcFiles = "/proc/kcore /proc/keys /proc/timer_list /proc/interrupts /proc/sched_debug /proc/latency_stats /proc/timer_stats"

// runScript is what the end-to-end containers run: identity, hostname,
// capabilities, network interfaces, cwd, the /etc files, and the sizes of
// the masked /proc files (after a "masked:" line).
const runScript = `id
cat /etc/hostname
echo "HOSTNAME=$HOSTNAME"
grep CapEff /proc/self/status
ls /sys/class/net
pwd
cat /etc/hosts
grep -c nameserver /etc/resolv.conf
echo masked:
for f in ` + maskedProcFiles + `; do
	if [ -e "$f" ]; then echo "$f $(wc -c < "$f")"; fi
done`

// checkMasked checks the masked-file sizes a container printed: every
// masked /proc file that exists (and is not empty) on the host must exist
// and read empty in the container.
func checkMasked(t *testing.T, runtime, stdout string) {
	t.Helper()
	_, masked, ok := strings.Cut(stdout, "masked:\n")
	if !ok {
		t.Fatalf("%s: no masked-file section in\n%s", runtime, stdout)
	}
	seen := map[string]string{}
	for _, line := range strings.Split(strings.TrimSpace(masked), "\n") {
		if f, size, ok := strings.Cut(line, " "); ok {
			seen[f] = size
		}
	}
	checked := 0
	for _, f := range strings.Fields(maskedProcFiles) {
		data, err := os.ReadFile(f)
		if err != nil || len(data) == 0 {
			continue // not on this kernel, or empty anyway
		}
		checked++
		if seen[f] != "0" {
			t.Errorf("%s: %s is not masked: size %q in the container, %d bytes on the host", runtime, f, seen[f], len(data))
		}
	}
	if checked == 0 {
		t.Fatalf("none of %s is readable on the host: the masking check would prove nothing", maskedProcFiles)
	}
}

// TestRunBusybox generates specs for a busybox rootfs, runs them with the
// built skiff-runtime and with runc, and checks what the container sees:
// the user and groups, the hostname, docker's effective capabilities,
// docker's masked /proc files (/proc/kcore where the kernel has it), a
// loopback-only network namespace. Both runtimes must
// print the same.
func TestRunBusybox(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Fatal("this test creates containers and needs root")
	}
	runc, err := exec.LookPath("runc")
	if err != nil {
		t.Fatalf("runc, the oracle, is not installed: %v", err)
	}
	skiff := testutil.MustBuild(t, "./cmd/skiff-runtime")

	img := image([]string{"/bin/sh", "-c"}, []string{runScript}, []string{"PATH=/bin"})
	tests := []struct {
		name string
		o    Options
		want []string // the first lines of the output
	}{
		{
			name: "root",
			o:    Options{Hostname: "skiff-e2e"},
			want: []string{"uid=0(root) gid=0(root) groups=0(root)", "skiff-e2e", "HOSTNAME=skiff-e2e",
				"CapEff:\t00000000a80425fb", "lo", "/"},
		},
		{
			name: "app",
			o:    Options{User: "app", WorkingDir: "/home/app", Hostname: "app-host"},
			want: []string{"uid=1000(app) gid=1000(app) groups=1000(app)", "app-host", "HOSTNAME=app-host",
				"CapEff:\t0000000000000000", "lo", "/home/app"},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			outputs := map[string]string{}
			for _, rt := range []*testutil.Runtime{
				testutil.NewRuntime(t, "skiff-runtime", skiff),
				testutil.NewRuntime(t, "runc", runc),
			} {
				id := testutil.ContainerID(t)
				bundle, _ := testutil.BusyboxBundle(t)
				etcDir := filepath.Join(t.TempDir(), "etc")
				o := tc.o
				o.ID = id
				mounts, err := WriteEtcFiles(etcDir, o)
				if err != nil {
					t.Fatal(err)
				}
				o.ExtraMounts = mounts
				s, _, err := Generate(img, filepath.Join(bundle, "rootfs"), o)
				if err != nil {
					t.Fatal(err)
				}
				testutil.WriteSpec(t, bundle, s)
				testutil.CheckNoLeftovers(t, testutil.Leftovers{
					StateRoot: rt.Root, Dirs: []string{bundle, etcDir}, CgroupNames: []string{id}, Runtime: rt, IDs: []string{id},
				})

				ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
				stdout, stderr, code := rt.Run(ctx, "run", "--bundle", bundle, id)
				cancel()
				if code != 0 {
					t.Fatalf("%s run: exit %d\nstdout:\n%s\nstderr:\n%s", rt, code, stdout, stderr)
				}
				outputs[rt.Name] = stdout
				lines := strings.Split(stdout, "\n")
				want := tc.want
				if len(lines) < len(want) {
					t.Fatalf("%s: output\n%s\nwant at least %d lines", rt, stdout, len(want))
				}
				for i, w := range want {
					if lines[i] != w {
						t.Errorf("%s: line %d %q, want %q\nwhole output:\n%s", rt, i+1, lines[i], w, stdout)
					}
				}
				if !strings.Contains(stdout, "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n") {
					t.Errorf("%s: /etc/hosts is not docker's:\n%s", rt, stdout)
				}
				checkMasked(t, rt.Name, stdout)
			}
			if outputs["skiff-runtime"] != outputs["runc"] {
				t.Errorf("skiff-runtime and runc differ:\nskiff-runtime:\n%s\nrunc:\n%s", outputs["skiff-runtime"], outputs["runc"])
			}
		})
	}
}
