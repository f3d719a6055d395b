package volumes_test

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/skiff-containers/skiff/engine/metadata"
	"github.com/skiff-containers/skiff/engine/volumes"
	"github.com/skiff-containers/skiff/errdefs"
)

const ns = "default"

func newService(t *testing.T) (*volumes.Service, *metadata.DB, string) {
	t.Helper()
	dir := t.TempDir()
	db, err := metadata.Open(filepath.Join(dir, "meta.db"), metadata.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	root := filepath.Join(dir, "volumes")
	s, err := volumes.New(volumes.Config{DB: db, Root: root})
	if err != nil {
		t.Fatal(err)
	}
	return s, db, root
}

func TestCreateInspectListRemove(t *testing.T) {
	ctx := context.Background()
	s, db, root := newService(t)
	v, created, err := s.Create(ctx, ns, "data", volumes.CreateOptions{Labels: map[string]string{"k": "v"}})
	if err != nil || !created {
		t.Fatalf("Create = %+v, %v, %v", v, created, err)
	}
	if want := filepath.Join(root, ns, "data", "_data"); v.Mountpoint != want || v.Driver != "local" {
		t.Errorf("volume %+v: want mountpoint %s, driver local", v, want)
	}
	if fi, err := os.Stat(v.Mountpoint); err != nil || !fi.IsDir() {
		t.Errorf("mountpoint: %v", err)
	}
	// Creating it again returns the same volume, as docker does.
	if v2, created, err := s.Create(ctx, ns, "data", volumes.CreateOptions{}); err != nil || created || v2.Name != "data" {
		t.Errorf("second Create = %+v, %v, %v", v2, created, err)
	}
	anon, _, err := s.Create(ctx, ns, "", volumes.CreateOptions{Anonymous: true})
	if err != nil || len(anon.Name) != 64 || !anon.Anonymous {
		t.Fatalf("anonymous Create = %+v, %v", anon, err)
	}
	if _, ok := anon.Labels[volumes.LabelAnonymous]; !ok {
		t.Errorf("anonymous volume lacks the label %s: %v", volumes.LabelAnonymous, anon.Labels)
	}
	for _, tc := range []struct {
		name string
		o    volumes.CreateOptions
		is   func(error) bool
	}{
		{"a", volumes.CreateOptions{}, errdefs.IsInvalidArgument},
		{"a/b", volumes.CreateOptions{}, errdefs.IsInvalidArgument},
		{"x1", volumes.CreateOptions{Driver: "nfs"}, errdefs.IsNotImplemented},
		{"x2", volumes.CreateOptions{Anonymous: true}, errdefs.IsInvalidArgument},
	} {
		if _, _, err := s.Create(ctx, ns, tc.name, tc.o); !tc.is(err) {
			t.Errorf("Create(%q, %+v): wrong error class: %v", tc.name, tc.o, err)
		}
	}
	list, err := s.List(ctx, ns)
	if err != nil || len(list) != 2 {
		t.Fatalf("List = %+v, %v", list, err)
	}
	// In use by a container record: refused, naming it.
	if _, err := db.CreateContainer(ns, metadata.Container{ID: "c1", Name: "web", Mounts: []metadata.Mount{
		{Type: metadata.MountVolume, Name: "data", Source: v.Mountpoint, Destination: "/data"},
	}}); err != nil {
		t.Fatal(err)
	}
	if got, err := s.Inspect(ctx, ns, "data"); err != nil || !slices.Equal(got.UsedBy, []string{"c1"}) {
		t.Errorf("Inspect = %+v, %v; want used by c1", got, err)
	}
	err = s.Remove(ctx, ns, "data", false)
	if !errdefs.IsFailedPrecondition(err) || !strings.Contains(err.Error(), "web") {
		t.Errorf("Remove in use: %v, want failed precondition naming web", err)
	}
	if _, err := os.Stat(v.Mountpoint); err != nil {
		t.Errorf("refused removal touched the directory: %v", err)
	}
	if err := db.DeleteContainer(ns, "c1"); err != nil {
		t.Fatal(err)
	}
	if err := s.Remove(ctx, ns, "data", false); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(root, ns, "data")); !os.IsNotExist(err) {
		t.Errorf("volume directory left: %v", err)
	}
	if err := s.Remove(ctx, ns, "data", false); !errdefs.IsNotFound(err) {
		t.Errorf("Remove missing: %v, want not found", err)
	}
	if err := s.Remove(ctx, ns, "data", true); err != nil {
		t.Errorf("Remove -f missing: %v", err)
	}
	if _, err := s.Inspect(ctx, ns, "data"); !errdefs.IsNotFound(err) {
		t.Errorf("Inspect removed: %v", err)
	}
}

func TestPrune(t *testing.T) {
	ctx := context.Background()
	s, db, _ := newService(t)
	mk := func(name string, anon bool) volumes.Volume {
		v, _, err := s.Create(ctx, ns, name, volumes.CreateOptions{Anonymous: anon})
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	named, anonFree, anonUsed := mk("named", false), mk("", true), mk("", true)
	os.WriteFile(filepath.Join(anonFree.Mountpoint, "f"), make([]byte, 1000), 0o644)
	if _, err := db.CreateContainer(ns, metadata.Container{ID: "c1", Mounts: []metadata.Mount{
		{Type: metadata.MountVolume, Name: anonUsed.Name, Source: anonUsed.Mountpoint, Destination: "/d"},
	}}); err != nil {
		t.Fatal(err)
	}
	deleted, reclaimed, err := s.Prune(ctx, ns, false)
	if err != nil || !slices.Equal(deleted, []string{anonFree.Name}) || reclaimed != 1000 {
		t.Errorf("Prune = %v, %d, %v; want [%s], 1000", deleted, reclaimed, err, anonFree.Name)
	}
	deleted, _, err = s.Prune(ctx, ns, true)
	if err != nil || !slices.Equal(deleted, []string{named.Name}) {
		t.Errorf("Prune all = %v, %v; want [named]", deleted, err)
	}
	if list, _ := s.List(ctx, ns); len(list) != 1 || list[0].Name != anonUsed.Name {
		t.Errorf("left: %+v, want only the volume in use", list)
	}
	// RemoveAnonymous leaves named volumes alone.
	mk("kept", false)
	if ok, err := s.RemoveAnonymous(ctx, ns, "kept"); ok || err != nil {
		t.Errorf("RemoveAnonymous(named) = %v, %v", ok, err)
	}
}

// TestSweep: a directory without a record (a crash between the two) is
// removed by the next New.
func TestSweep(t *testing.T) {
	s, db, root := newService(t)
	stale := filepath.Join(root, ns, "stale", "_data")
	if err := os.MkdirAll(stale, 0o755); err != nil {
		t.Fatal(err)
	}
	if _, _, err := s.Create(context.Background(), ns, "kept", volumes.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := volumes.New(volumes.Config{DB: db, Root: root}); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Dir(stale)); !os.IsNotExist(err) {
		t.Errorf("stale volume directory not removed: %v", err)
	}
	if _, err := os.Stat(filepath.Join(root, ns, "kept", "_data")); err != nil {
		t.Errorf("recorded volume directory removed: %v", err)
	}
}

// TestSeed copies an image tree into a volume with owners, modes,
// symlinks, hard links, device nodes and xattrs, refuses to follow links
// out of the root, and copies only into an empty volume.
func TestSeed(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("seeding keeps ownership and makes device nodes: needs root")
	}
	ctx := context.Background()
	s, _, _ := newService(t)
	rootfs := t.TempDir()
	outside := t.TempDir()
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	src := filepath.Join(rootfs, "srv", "app")
	must(os.MkdirAll(filepath.Join(src, "sub"), 0o755))
	must(os.WriteFile(filepath.Join(src, "file"), []byte("hello"), 0o640))
	must(os.Chown(filepath.Join(src, "file"), 1000, 1001))
	must(unix.Chmod(filepath.Join(src, "sub"), 0o1777))
	must(os.Chown(src, 33, 33))
	must(os.Chmod(src, 0o750))
	must(os.Link(filepath.Join(src, "file"), filepath.Join(src, "sub", "hard")))
	must(os.Symlink("/etc/shadow", filepath.Join(src, "abs-link")))
	must(os.Symlink("../file", filepath.Join(src, "sub", "rel-link")))
	must(unix.Mknod(filepath.Join(src, "null"), unix.S_IFCHR|0o666, int(unix.Mkdev(1, 3))))
	must(unix.Mkfifo(filepath.Join(src, "fifo"), 0o600))
	xattrOK := unix.Setxattr(filepath.Join(src, "file"), "user.skiff", []byte("v"), 0) == nil
	// A link in the image that climbs out: resolved inside rootfs.
	must(os.WriteFile(filepath.Join(outside, "secret"), []byte("x"), 0o600))
	must(os.Symlink(outside, filepath.Join(rootfs, "escape")))
	must(os.Symlink("../../srv/app", filepath.Join(rootfs, "via-link")))

	vol := func(name string) volumes.Volume {
		v, _, err := s.Create(ctx, ns, name, volumes.CreateOptions{})
		must(err)
		return v
	}
	v := vol("seeded")
	copied, err := s.Seed(ctx, ns, "seeded", rootfs, "/srv/app")
	if err != nil || !copied {
		t.Fatalf("Seed = %v, %v", copied, err)
	}
	dst := v.Mountpoint
	check := func(rel string, mode os.FileMode, uid, gid uint32) {
		t.Helper()
		var st unix.Stat_t
		if err := unix.Lstat(filepath.Join(dst, rel), &st); err != nil {
			t.Errorf("%s: %v", rel, err)
			return
		}
		if os.FileMode(st.Mode&0o7777) != mode || st.Uid != uid || st.Gid != gid {
			t.Errorf("%s: mode %o owner %d:%d, want %o %d:%d", rel, st.Mode&0o7777, st.Uid, st.Gid, mode, uid, gid)
		}
	}
	check(".", 0o750, 33, 33)
	check("file", 0o640, 1000, 1001)
	check("sub", 0o1777, 0, 0)
	if b, _ := os.ReadFile(filepath.Join(dst, "file")); string(b) != "hello" {
		t.Errorf("file content %q", b)
	}
	var a, b unix.Stat_t
	unix.Stat(filepath.Join(dst, "file"), &a)
	unix.Stat(filepath.Join(dst, "sub", "hard"), &b)
	if a.Ino != b.Ino {
		t.Errorf("hard link not kept")
	}
	if l, _ := os.Readlink(filepath.Join(dst, "abs-link")); l != "/etc/shadow" {
		t.Errorf("abs-link -> %q", l)
	}
	if l, _ := os.Readlink(filepath.Join(dst, "sub", "rel-link")); l != "../file" {
		t.Errorf("rel-link -> %q", l)
	}
	var st unix.Stat_t
	if err := unix.Lstat(filepath.Join(dst, "null"), &st); err != nil || st.Mode&unix.S_IFMT != unix.S_IFCHR || st.Rdev != unix.Mkdev(1, 3) {
		t.Errorf("device node: %v %+v", err, st)
	}
	if err := unix.Lstat(filepath.Join(dst, "fifo"), &st); err != nil || st.Mode&unix.S_IFMT != unix.S_IFIFO {
		t.Errorf("fifo: %v", err)
	}
	if xattrOK {
		buf := make([]byte, 8)
		if n, err := unix.Getxattr(filepath.Join(dst, "file"), "user.skiff", buf); err != nil || string(buf[:n]) != "v" {
			t.Errorf("xattr: %v %q", err, buf[:n])
		}
	}

	// Not empty any more: a second seed copies nothing.
	must(os.WriteFile(filepath.Join(dst, "file"), []byte("changed"), 0o644))
	if copied, err := s.Seed(ctx, ns, "seeded", rootfs, "/srv/app"); err != nil || copied {
		t.Errorf("second Seed = %v, %v; want no copy", copied, err)
	}
	if b, _ := os.ReadFile(filepath.Join(dst, "file")); string(b) != "changed" {
		t.Errorf("second seed overwrote the volume: %q", b)
	}

	// A target through a symlink leaving the root resolves inside it.
	e := vol("escape")
	if copied, err := s.Seed(ctx, ns, "escape", rootfs, "/escape"); err != nil || copied {
		t.Errorf("Seed through an escaping link = %v, %v; want nothing copied", copied, err)
	}
	if entries, _ := os.ReadDir(e.Mountpoint); len(entries) != 0 {
		t.Errorf("copied from outside the root: %v", entries)
	}
	// A target through a link inside the root is followed within it.
	l := vol("vialink")
	if copied, err := s.Seed(ctx, ns, "vialink", rootfs, "/via-link"); err != nil || !copied {
		t.Errorf("Seed via an inner link = %v, %v", copied, err)
	}
	if _, err := os.Stat(filepath.Join(l.Mountpoint, "file")); err != nil {
		t.Errorf("via-link content: %v", err)
	}
	// Missing targets and files copy nothing.
	m := vol("missing")
	for _, target := range []string{"/nope", "/srv/app/file"} {
		if copied, err := s.Seed(ctx, ns, "missing", rootfs, target); err != nil || copied {
			t.Errorf("Seed(%s) = %v, %v", target, copied, err)
		}
	}
	if entries, _ := os.ReadDir(m.Mountpoint); len(entries) != 0 {
		t.Errorf("copied something: %v", entries)
	}
	if _, err := s.Seed(ctx, ns, "nosuchvol", rootfs, "/srv"); !errdefs.IsNotFound(err) {
		t.Errorf("Seed of a missing volume: %v", err)
	}
}
