package cgroups

import (
	"encoding/json"
	"os"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

func jsonUnmarshal(b []byte, v any) error { return json.Unmarshal(b, v) }

func jsonWrite(path string, v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(path, b, 0o644)
}

func TestCleanPath(t *testing.T) {
	for in, want := range map[string]string{
		"": "", "/": "/", "/a/../b": "/b", "a/b": "a/b", "../../a": "a", "a/../../b": "b", "./": "", "/../x": "/x",
	} {
		if got := cleanPath(in); got != want {
			t.Errorf("cleanPath(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestHugePageDirToSize(t *testing.T) {
	for in, want := range map[string]string{"hugepages-2048kB": "2MB", "hugepages-1048576kB": "1GB", "hugepages-64kB": "64KB", "hugepages-32768kB": "32MB"} {
		if got, ok := hugePageDirToSize(in); !ok || got != want {
			t.Errorf("%s → %q, want %q", in, got, want)
		}
	}
	if _, ok := hugePageDirToSize("nr_hugepages"); ok {
		t.Error("accepted a non hugepages dir")
	}
}

func TestDeviceRule(t *testing.T) {
	for _, tc := range []struct {
		d    specs.LinuxDeviceCgroup
		want string
	}{
		{specs.LinuxDeviceCgroup{Access: "rwm"}, "a *:* rwm"},
		{specs.LinuxDeviceCgroup{Type: "c", Major: i64(1), Minor: i64(3)}, "c 1:3 rwm"},
		{specs.LinuxDeviceCgroup{Type: "b", Major: i64(8), Access: "r"}, "b 8:* r"},
		{specs.LinuxDeviceCgroup{Type: "c", Major: i64(136), Minor: i64(-1), Access: "mw"}, "c 136:* mw"},
	} {
		got, err := deviceRule(tc.d)
		if err != nil || got != tc.want {
			t.Errorf("deviceRule(%+v) = %q, %v; want %q", tc.d, got, err, tc.want)
		}
	}
	for _, bad := range []specs.LinuxDeviceCgroup{
		{Type: "u"}, {Type: "c", Access: "rr"}, {Type: "c", Major: i64(-3)}, {Type: "c", Access: "x"},
	} {
		if _, err := deviceRule(bad); err == nil {
			t.Errorf("deviceRule(%+v) accepted", bad)
		}
	}
}

func TestConversions(t *testing.T) {
	for shares, want := range map[uint64]uint64{2: 1, 1024: 39, 512: 20, 262144: 10000, 0: 0} {
		if got := sharesToWeight(shares); got != want {
			t.Errorf("sharesToWeight(%d) = %d, want %d", shares, got, want)
		}
	}
	for w, want := range map[uint16]uint64{10: 1, 1000: 10000, 500: 4950, 0: 0} {
		if got := blkioToIOWeight(w); got != want {
			t.Errorf("blkioToIOWeight(%d) = %d, want %d", w, got, want)
		}
	}
	for _, tc := range []struct{ swap, mem, want int64 }{
		{0, -1, -1}, {-1, 100, -1}, {0, 100, 0}, {300, 100, 200}, {100, 100, 0}, {500, -1, 500},
	} {
		if got, err := swapV2(tc.swap, tc.mem); err != nil || got != tc.want {
			t.Errorf("swapV2(%d, %d) = %d, %v; want %d", tc.swap, tc.mem, got, err, tc.want)
		}
	}
	for _, tc := range []struct{ swap, mem int64 }{{100, 0}, {50, 100}} {
		if _, err := swapV2(tc.swap, tc.mem); err == nil {
			t.Errorf("swapV2(%d, %d) accepted", tc.swap, tc.mem)
		}
	}
}

func TestParseSelfCgroup(t *testing.T) {
	m, err := parseSelfCgroup("12:cpu,cpuacct:/a\n1:name=systemd:/b\n0::/c\n")
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{"cpu": "/a", "cpuacct": "/a", "name=systemd": "/b", "": "/c"}
	for k, v := range want {
		if m[k] != v {
			t.Errorf("%q = %q, want %q", k, m[k], v)
		}
	}
	if _, err := parseSelfCgroup("garbage\n"); err == nil {
		t.Error("accepted garbage")
	}
}
