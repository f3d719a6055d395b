package peers

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/moby/sys/mountinfo"
	"golang.org/x/sys/unix"
)

func TestUnmountUnder(t *testing.T) {
	dir := t.TempDir()
	// "b c": mountinfo escapes the space (\040); it must still be found.
	inner := filepath.Join(dir, "a", "b c")
	if err := os.MkdirAll(inner, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := unix.Mount("tmpfs", filepath.Join(dir, "a"), "tmpfs", 0, ""); err != nil {
		t.Fatalf("mount tmpfs (needs root): %v", err)
	}
	if err := os.MkdirAll(inner, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := unix.Mount("tmpfs", inner, "tmpfs", 0, ""); err != nil {
		t.Fatal(err)
	}
	if err := UnmountUnder(dir); err != nil {
		t.Fatal(err)
	}
	left, err := mountinfo.GetMounts(mountinfo.PrefixFilter(dir))
	if err != nil {
		t.Fatal(err)
	}
	if len(left) != 0 {
		t.Errorf("mounts left under %s: %d", dir, len(left))
	}
}
