package seccomp

import (
	"bytes"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/skiff-containers/skiff/errdefs"
)

func TestFilterBinaryRoundTrip(t *testing.T) {
	for _, cfg := range []*specs.LinuxSeccomp{nil, DefaultProfile()} {
		f, err := Compile(cfg)
		if err != nil {
			t.Fatal(err)
		}
		b, err := f.MarshalBinary()
		if err != nil {
			t.Fatal(err)
		}
		var g Filter
		if err := g.UnmarshalBinary(b); err != nil {
			t.Fatal(err)
		}
		b2, _ := g.MarshalBinary()
		if !bytes.Equal(b, b2) {
			t.Fatalf("round trip changed the program")
		}
		if (cfg == nil) != (g.prog == nil) {
			t.Fatalf("disabled filter: %v, got program %v", cfg == nil, g.prog != nil)
		}
	}
}

func TestFilterBinaryRefusesGarbage(t *testing.T) {
	good, _ := (&Filter{prog: &program{insns: make([]unix.SockFilter, 2)}}).MarshalBinary()
	for _, b := range [][]byte{nil, []byte("nope"), good[:len(good)-3], append(append([]byte(nil), good...), 0)} {
		var f Filter
		if err := f.UnmarshalBinary(b); !errdefs.IsInvalidArgument(err) {
			t.Errorf("UnmarshalBinary(%q) = %v, want an invalid-argument error", b, err)
		}
	}
}

func TestCacheKey(t *testing.T) {
	a, err := CacheKey(DefaultProfile())
	if err != nil {
		t.Fatal(err)
	}
	p := DefaultProfile()
	p.DefaultErrnoRet = new(uint)
	b, _ := CacheKey(p)
	a2, _ := CacheKey(DefaultProfile())
	if a != a2 || a == b {
		t.Fatalf("keys: same profile %q/%q, changed profile %q", a, a2, b)
	}
}
