package rootfs

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"testing"

	"golang.org/x/sys/unix"
)

func testRoot(t *testing.T) *inRoot {
	t.Helper()
	dir := t.TempDir()
	f, err := os.OpenFile(dir, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return &inRoot{path: dir, root: f}
}

func TestOpenCreatesInsideTheRoot(t *testing.T) {
	r := testRoot(t)
	if err := os.MkdirAll(filepath.Join(r.path, "exists"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(r.path, "file"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	// An absolute symlink resolves from the root, not from the host's /.
	if err := os.Symlink("/exists", filepath.Join(r.path, "link")); err != nil {
		t.Fatal(err)
	}

	f, resolved, err := r.open("/exists/a/b/c", createDir)
	if err != nil {
		t.Fatal(err)
	}
	f.Close()
	if fi, err := os.Stat(filepath.Join(r.path, "exists/a/b/c")); err != nil || !fi.IsDir() || resolved != "/exists/a/b/c" {
		t.Fatalf("createDir: resolved %q, stat %v %v", resolved, fi, err)
	}

	f, resolved, err = r.open("/link/d/dev-null", createFile)
	if err != nil {
		t.Fatal(err)
	}
	f.Close()
	if fi, err := os.Lstat(filepath.Join(r.path, "exists/d/dev-null")); err != nil || !fi.Mode().IsRegular() || resolved != "/exists/d/dev-null" {
		t.Fatalf("createFile through a symlink: resolved %q, stat %v %v", resolved, fi, err)
	}

	if _, _, err := r.open("/missing", createNone); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("createNone on a missing path: %v, want not exist", err)
	}
	if _, _, err := r.open("/file/sub", createDir); !errors.Is(err, unix.ENOTDIR) {
		t.Errorf("createDir below a file: %v, want ENOTDIR", err)
	}
}

// A component swapped for a symlink after the path was resolved is not
// followed by mkdirAll.
func TestMkdirAllDoesNotFollowSymlinks(t *testing.T) {
	r := testRoot(t)
	outside := t.TempDir()
	if err := os.Symlink(outside, filepath.Join(r.path, "evil")); err != nil {
		t.Fatal(err)
	}
	// As if resolveInRoot had seen no "evil" yet: create below it.
	if f, err := r.mkdirAll("/evil/x"); err == nil {
		f.Close()
		t.Fatal("mkdirAll went through a symlink")
	}
	if _, err := os.Stat(filepath.Join(outside, "x")); err == nil {
		t.Fatal("mkdirAll created a directory outside the root")
	}
}
