package test

import (
	"strconv"
	"strings"
	"testing"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/skiff-containers/skiff/internal/testutil"
)

// TestTimeNamespace checks a new time namespace with linux.timeOffsets: the
// container's boot-time and monotonic clocks are shifted by the offsets,
// which the kernel reports in /proc/self/timens_offsets. runc 1.1, the
// oracle, has no time namespaces, so only the runtime under test is run.
func TestTimeNamespace(t *testing.T) {
	t.Parallel()
	const shift = 5 * 86400 // five days: far beyond this machine's uptime jitter
	rt := testutil.NewRuntime(t, runtimeUnderTest, skiffBin)
	bundle, spec := testutil.BusyboxBundle(t, "sh", "-c", "cat /proc/self/timens_offsets; cut -d' ' -f1 /proc/uptime")
	spec.Linux.Namespaces = append(spec.Linux.Namespaces, specs.LinuxNamespace{Type: specs.TimeNamespace})
	spec.Linux.TimeOffsets = map[string]specs.LinuxTimeOffset{
		"boottime":  {Secs: shift},
		"monotonic": {Secs: 2 * shift},
	}
	testutil.WriteSpec(t, bundle, spec)
	id := testutil.ContainerID(t)
	guard(t, rt, id, bundle)
	stdout, stderr, code := rt.Run(testContext(t, 60*time.Second), "run", "--bundle", bundle, id)
	if code != 0 {
		t.Fatalf("run: exit %d: %s", code, stderr)
	}
	lines := strings.Split(strings.TrimSpace(stdout), "\n")
	if len(lines) != 3 {
		t.Fatalf("unexpected output %q", stdout)
	}
	offsets := map[string]string{}
	for _, l := range lines[:2] {
		f := strings.Fields(l)
		if len(f) == 3 {
			offsets[f[0]] = f[1]
		}
	}
	if offsets["boottime"] != strconv.Itoa(shift) || offsets["monotonic"] != strconv.Itoa(2*shift) {
		t.Errorf("timens_offsets %q, want boottime %d and monotonic %d", lines[:2], shift, 2*shift)
	}
	up, err := strconv.ParseFloat(lines[2], 64)
	if err != nil {
		t.Fatal(err)
	}
	if up < shift {
		t.Errorf("uptime in the container is %.0fs: the boottime offset of %ds was not applied", up, shift)
	}
}
