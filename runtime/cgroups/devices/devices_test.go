package devices

import (
	"bufio"
	"crypto/rand"
	"encoding/hex"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/skiff-containers/skiff/errdefs"
)

func i64(v int64) *int64 { return &v }

// run interprets p the way the kernel would for one device access.
func run(t *testing.T, p Program, typ, access, major, minor uint32) bool {
	t.Helper()
	var r [11]uint64
	ctx := [3]uint32{typ | access<<16, major, minor}
	for pc := 0; pc < len(p); pc++ {
		in := p[pc]
		dst, src := in.Regs&0xf, in.Regs>>4
		switch in.Code {
		case opLdxW:
			if src != r1 || in.Off%4 != 0 || in.Off < 0 || in.Off > 8 {
				t.Fatalf("pc %d: bad load %+v", pc, in)
			}
			r[dst] = uint64(ctx[in.Off/4])
		case opMovImm:
			r[dst] = uint64(int64(in.Imm))
		case opMovReg:
			r[dst] = r[src]
		case opAndImm:
			r[dst] &= uint64(int64(in.Imm))
		case opRshImm:
			r[dst] >>= uint(in.Imm)
		case opJneImm:
			if r[dst] != uint64(int64(in.Imm)) {
				pc += int(in.Off)
			}
		case opExit:
			return r[0] == 1
		default:
			t.Fatalf("pc %d: unknown opcode %#x", pc, in.Code)
		}
	}
	t.Fatal("program ran off its end")
	return false
}

func TestCompileSemantics(t *testing.T) {
	allowlist := []specs.LinuxDeviceCgroup{
		{Allow: false, Access: "rwm"},
		{Allow: true, Type: "c", Major: i64(1), Minor: i64(3), Access: "rwm"}, // null
		{Allow: true, Type: "c", Major: i64(1), Minor: i64(5), Access: "r"},   // zero, read only
		{Allow: true, Type: "c", Major: i64(136), Access: "rw"},               // pts/*
		{Allow: true, Type: "b", Major: i64(8), Minor: i64(-1), Access: "m"},  // sd* mknod
		{Allow: true, Type: "c", Major: i64(10), Minor: i64(200), Access: "rwm"},
		{Allow: false, Type: "c", Major: i64(10), Minor: i64(200), Access: "w"}, // later rule wins
	}
	type req struct {
		typ, acc, maj, min uint32
		want               bool
	}
	for _, tc := range []struct {
		name  string
		rules []specs.LinuxDeviceCgroup
		reqs  []req
	}{
		{"allowlist", allowlist, []req{
			{TypeChar, AccRead, 1, 3, true}, {TypeChar, AccWrite, 1, 3, true}, {TypeChar, AccMknod, 1, 3, true},
			{TypeChar, AccRead, 1, 5, true}, {TypeChar, AccWrite, 1, 5, false},
			{TypeChar, AccRead, 136, 7, true}, {TypeChar, AccMknod, 136, 7, false},
			{TypeBlock, AccMknod, 8, 16, true}, {TypeBlock, AccRead, 8, 16, false}, {TypeChar, AccMknod, 8, 16, false},
			{TypeChar, AccRead, 10, 200, true}, {TypeChar, AccWrite, 10, 200, false},
			{TypeChar, AccRead, 1, 8, false}, {TypeBlock, AccRead, 1, 3, false},
		}},
		{"denylist on a default-allow cgroup", []specs.LinuxDeviceCgroup{
			{Allow: false, Type: "c", Major: i64(1), Minor: i64(5)},
		}, []req{{TypeChar, AccRead, 1, 5, false}, {TypeChar, AccRead, 1, 3, true}, {TypeBlock, AccRead, 1, 5, true}}},
		{"allow all after deny all", []specs.LinuxDeviceCgroup{
			{Allow: false, Access: "rwm"}, {Allow: true, Type: "a"},
		}, []req{{TypeChar, AccRead, 4, 1, true}, {TypeBlock, AccMknod, 8, 0, true}}},
		{"no rules", nil, []req{{TypeChar, AccRead, 4, 1, true}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p, err := Compile(tc.rules)
			if err != nil {
				t.Fatal(err)
			}
			for _, r := range tc.reqs {
				if got := run(t, p, r.typ, r.acc, r.maj, r.min); got != r.want {
					t.Errorf("type %d access %d %d:%d: allowed=%v, want %v", r.typ, r.acc, r.maj, r.min, got, r.want)
				}
			}
		})
	}
}

func TestCompileRefuses(t *testing.T) {
	for _, d := range []specs.LinuxDeviceCgroup{
		{Type: "u"}, {Type: "c", Access: "rr"}, {Type: "c", Access: "x"}, {Type: "c", Major: i64(-2)}, {Type: "b", Minor: i64(1 << 40)},
	} {
		if _, err := Compile([]specs.LinuxDeviceCgroup{d}); !errdefs.IsInvalidArgument(err) {
			t.Errorf("Compile(%+v) = %v, want invalid argument", d, err)
		}
	}
}

// cgroup2Mount finds a cgroup2 mount (the hybrid unified one, or the root).
func cgroup2Mount(t *testing.T) string {
	t.Helper()
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fs := strings.Fields(sc.Text())
		for i, x := range fs {
			if x == "-" && i+1 < len(fs) && fs[i+1] == "cgroup2" {
				return fs[4]
			}
		}
	}
	t.Fatal("no cgroup2 mount on this host: the device filter needs one")
	return ""
}

// TestAttachReal attaches filters to a real cgroup2 directory and checks
// what a process inside may open.
func TestAttachReal(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Fatal("needs root")
	}
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	dir := filepath.Join(cgroup2Mount(t), "skiff-test-"+hex.EncodeToString(b))
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		for i := 0; i < 50; i++ {
			if err := unix.Rmdir(dir); err == nil || os.IsNotExist(err) {
				return
			}
			time.Sleep(20 * time.Millisecond)
		}
		t.Errorf("could not remove %s", dir)
	})
	probe := func(rules []specs.LinuxDeviceCgroup) (nullOK, zeroOK bool) {
		t.Helper()
		cmd := exec.Command("sh", "-c", "read x; r=0; echo hi >/dev/null 2>&1 || r=$((r+1)); head -c1 /dev/zero >/dev/null 2>&1 || r=$((r+2)); exit $r")
		in, err := cmd.StdinPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		defer func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }()
		if err := os.WriteFile(filepath.Join(dir, "cgroup.procs"), []byte(strconv.Itoa(cmd.Process.Pid)), 0); err != nil {
			t.Fatal(err)
		}
		p, err := Compile(rules)
		if err != nil {
			t.Fatal(err)
		}
		if err := Attach(dir, p); err != nil {
			t.Fatal(err)
		}
		if n, err := Attached(dir); err != nil || n != 1 {
			t.Fatalf("%d programs attached (%v), want exactly 1", n, err)
		}
		_, _ = in.Write([]byte("go\n"))
		err = cmd.Wait()
		code := 0
		if ee, ok := err.(*exec.ExitError); ok {
			code = ee.ExitCode()
		} else if err != nil {
			t.Fatal(err)
		}
		return code&1 == 0, code&2 == 0
	}
	onlyNull := []specs.LinuxDeviceCgroup{{Allow: false, Access: "rwm"}, {Allow: true, Type: "c", Major: i64(1), Minor: i64(3), Access: "rw"}}
	if null, zero := probe(onlyNull); !null || zero {
		t.Fatalf("allow only null: null=%v zero=%v", null, zero)
	}
	// Replacing the filter (as `update` would) takes effect and leaves one.
	both := append(onlyNull, specs.LinuxDeviceCgroup{Allow: true, Type: "c", Major: i64(1), Minor: i64(5), Access: "r"})
	if null, zero := probe(both); !null || !zero {
		t.Fatalf("allow null and zero: null=%v zero=%v", null, zero)
	}
	// Attaching to something that is not a cgroup v2 directory fails clearly.
	if err := Attach(t.TempDir(), Program{{Code: opMovImm, Imm: 1}, {Code: opExit}}); err == nil {
		t.Fatal("attached to a plain directory")
	}
}
