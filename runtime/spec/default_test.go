package spec

import (
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

func marshalDefault(t *testing.T) []byte {
	t.Helper()
	b, err := json.MarshalIndent(Default(), "", "\t")
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestDefaultMatchesGolden compares with the config.json runc 1.1.5 wrote,
// kept in testdata so the check holds on machines without runc.
func TestDefaultMatchesGolden(t *testing.T) {
	want, err := os.ReadFile("testdata/runc-1.1.5-spec.json")
	if err != nil {
		t.Fatal(err)
	}
	if got := marshalDefault(t); !bytes.Equal(got, want) {
		t.Errorf("Default() marshals to\n%s\nwant (runc 1.1.5's)\n%s", got, want)
	}
}

// TestDefaultMatchesRunc compares with what the installed runc writes.
func TestDefaultMatchesRunc(t *testing.T) {
	runc, err := exec.LookPath("runc")
	if err != nil {
		t.Fatalf("runc (the oracle) is not installed: %v", err)
	}
	dir := t.TempDir()
	cmd := exec.Command(runc, "spec")
	cmd.Dir = dir
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("runc spec: %v\n%s", err, out)
	}
	want, err := os.ReadFile(filepath.Join(dir, "config.json"))
	if err != nil {
		t.Fatal(err)
	}
	if got := marshalDefault(t); !bytes.Equal(got, want) {
		t.Errorf("Default() marshals to\n%s\n`runc spec` writes\n%s", got, want)
	}
}

func TestDefaultIsFreshAndValid(t *testing.T) {
	a := Default()
	a.Process.Args[0] = "changed"
	a.Process.Capabilities.Bounding[0] = "changed"
	a.Mounts[1].Options[0] = "changed"
	if b := Default(); b.Process.Args[0] != "sh" || b.Process.Capabilities.Bounding[0] != "CAP_AUDIT_WRITE" || b.Mounts[1].Options[0] != "nosuid" {
		t.Error("Default() shares state between calls")
	}
	if b := Default(); &b.Process.Capabilities.Bounding[0] == &b.Process.Capabilities.Effective[0] {
		t.Error("Default() shares one slice between capability sets")
	}
	bundle := t.TempDir()
	if err := os.Mkdir(filepath.Join(bundle, "rootfs"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := Validate(Default(), bundle); err != nil {
		t.Errorf("Validate(Default()) = %v", err)
	}
}
