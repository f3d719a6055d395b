package snapshot

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/skiff-containers/skiff/errdefs"
	"github.com/skiff-containers/skiff/image/archive"
	"github.com/skiff-containers/skiff/internal/testutil"
)

var testTime = time.Date(2021, 5, 6, 7, 8, 9, 0, time.UTC)

// layer builds a tarball: "name" → file with that content; "name/" →
// directory; "name -> target" → symlink; "name => target" → hardlink;
// "c name" → char device 1/3 (major/minor).
func layer(t testing.TB, entries ...string) []byte {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, e := range entries {
		h := &tar.Header{ModTime: testTime, Mode: 0o644, Format: tar.FormatPAX}
		body := ""
		switch {
		case strings.Contains(e, " -> "):
			h.Typeflag, h.Mode = tar.TypeSymlink, 0o777
			h.Name, h.Linkname, _ = strings.Cut(e, " -> ")
		case strings.Contains(e, " => "):
			h.Typeflag = tar.TypeLink
			h.Name, h.Linkname, _ = strings.Cut(e, " => ")
		case strings.HasPrefix(e, "c "):
			h.Typeflag, h.Name, h.Devmajor, h.Devminor = tar.TypeChar, e[2:], 1, 3
		case strings.HasSuffix(e, "/"):
			h.Typeflag, h.Name, h.Mode = tar.TypeDir, e, 0o755
		default:
			var content string
			h.Name, content, _ = strings.Cut(e, "=")
			h.Typeflag, body = tar.TypeReg, content
			h.Size = int64(len(body))
		}
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		io.WriteString(tw, body)
	}
	tw.Close()
	return buf.Bytes()
}

// tree lists the regular files (with content), dirs and symlinks under
// dir, skipping overlayfs whiteouts (0/0 char devices).
func tree(t testing.TB, dir string) []string {
	t.Helper()
	var out []string
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		if rel == "." {
			return nil
		}
		var st unix.Stat_t
		if err := unix.Lstat(p, &st); err != nil {
			return err
		}
		switch st.Mode & unix.S_IFMT {
		case unix.S_IFDIR:
			out = append(out, rel+"/")
		case unix.S_IFREG:
			data, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			out = append(out, rel+"="+string(data))
		case unix.S_IFLNK:
			l, _ := os.Readlink(p)
			out = append(out, rel+" -> "+l)
		case unix.S_IFCHR:
			if st.Rdev == 0 {
				out = append(out, rel+" (whiteout)")
			} else {
				out = append(out, fmt.Sprintf("c %s %d/%d", rel, unix.Major(st.Rdev), unix.Minor(st.Rdev)))
			}
		default:
			out = append(out, fmt.Sprintf("%s mode %o", rel, st.Mode))
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	sort.Strings(out)
	return out
}

// applyLayer prepares key on parent, applies the tarball into it and
// commits it as name.
func applyLayer(t testing.TB, s *Snapshotter, name, parent string, tarball []byte) {
	t.Helper()
	ctx := context.Background()
	key := "extract-" + name
	mounts, err := s.Prepare(ctx, key, parent)
	if err != nil {
		t.Fatal(err)
	}
	dir, overlay, ok := WritableDir(mounts)
	if !ok {
		t.Fatalf("no writable dir in %v", mounts)
	}
	if _, err := archive.Apply(ctx, dir, bytes.NewReader(tarball), archive.ApplyOptions{Overlay: overlay, AllowDevices: true, Name: name}); err != nil {
		t.Fatal(err)
	}
	if err := s.Commit(ctx, name, key); err != nil {
		t.Fatal(err)
	}
}

// mountAt mounts mounts on a new directory and unmounts it when the test
// ends.
func mountAt(t testing.TB, mounts []Mount) string {
	t.Helper()
	target := t.TempDir()
	if err := MountAll(mounts, target); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := Unmount(target); err != nil {
			t.Error(err)
		}
	})
	return target
}

func checkNoMounts(t testing.TB, dir string) {
	t.Helper()
	if m := testutil.MountsUnder(dir); len(m) > 0 {
		t.Errorf("mounts left under %s: %v", dir, m)
	}
}

func isClass(err, class error) bool { return err != nil && errors.Is(err, class) }

func TestSnapshotter(t *testing.T) {
	for _, driver := range []string{Overlay, Native} {
		t.Run(driver, func(t *testing.T) {
			ctx := context.Background()
			root := t.TempDir()
			s, err := New(root, Options{Driver: driver})
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			if s.Driver() != driver {
				t.Fatalf("driver %s, want %s", s.Driver(), driver)
			}

			applyLayer(t, s, "l1", "", layer(t, "etc/", "etc/os=one", "a=a", "b=b", "d/", "d/x=x", "d/y=y", "bin/", "bin/sh=sh", "bin/ash => bin/sh", "sh -> bin/sh"))
			applyLayer(t, s, "l2", "l1", layer(t, ".wh.a", "d/", "d/.wh..wh..opq", "d/z=z", "c=c", "etc/os=two"))

			mounts, err := s.Prepare(ctx, "ctr", "l2", WithLabels(map[string]string{"owner": "test"}))
			if err != nil {
				t.Fatal(err)
			}
			target := mountAt(t, mounts)
			want := []string{"b=b", "bin/", "bin/ash=sh", "bin/sh=sh", "c=c", "d/", "d/z=z", "etc/", "etc/os=two", "sh -> bin/sh"}
			if got := tree(t, target); !equal(got, want) {
				t.Errorf("container's view:\n got %q\nwant %q", got, want)
			}
			// The container writes; the image's layers do not change.
			if err := os.WriteFile(filepath.Join(target, "b"), []byte("changed"), 0o644); err != nil {
				t.Fatal(err)
			}
			if err := os.Remove(filepath.Join(target, "c")); err != nil {
				t.Fatal(err)
			}
			vm, err := s.View(ctx, "view", "l2")
			if err != nil {
				t.Fatal(err)
			}
			view := mountAt(t, vm)
			if got := tree(t, view); !equal(got, want) {
				t.Errorf("view after the container wrote:\n got %q\nwant %q", got, want)
			}
			if err := os.WriteFile(filepath.Join(view, "new"), nil, 0o644); !errors.Is(err, unix.EROFS) {
				t.Errorf("write in a view: %v, want EROFS", err)
			}
			// A second container has its own writable layer.
			m2, err := s.Prepare(ctx, "ctr2", "l2")
			if err != nil {
				t.Fatal(err)
			}
			target2 := mountAt(t, m2)
			if got := tree(t, target2); !equal(got, want) {
				t.Errorf("second container's view:\n got %q\nwant %q", got, want)
			}

			// Refusals.
			for _, c := range []struct {
				name  string
				err   error
				class error
			}{
				{"remove parent", s.Remove(ctx, "l1"), errdefs.ErrFailedPrecondition},
				{"remove parent of containers", s.Remove(ctx, "l2"), errdefs.ErrFailedPrecondition},
				{"remove missing", s.Remove(ctx, "nope"), errdefs.ErrNotFound},
				{"prepare existing", second(s.Prepare(ctx, "ctr", "l2")), errdefs.ErrAlreadyExists},
				{"prepare on committed name", second(s.Prepare(ctx, "l1", "")), errdefs.ErrAlreadyExists},
				{"prepare on missing parent", second(s.Prepare(ctx, "x", "nope")), errdefs.ErrNotFound},
				{"prepare on active parent", second(s.Prepare(ctx, "x", "ctr")), errdefs.ErrFailedPrecondition},
				{"prepare on view parent", second(s.Prepare(ctx, "x", "view")), errdefs.ErrFailedPrecondition},
				{"commit a view", s.Commit(ctx, "x", "view"), errdefs.ErrFailedPrecondition},
				{"commit a committed", s.Commit(ctx, "x", "l1"), errdefs.ErrFailedPrecondition},
				{"commit over existing", s.Commit(ctx, "l1", "ctr2"), errdefs.ErrAlreadyExists},
				{"commit missing", s.Commit(ctx, "x", "nope"), errdefs.ErrNotFound},
				{"mounts of committed", second(s.Mounts(ctx, "l1")), errdefs.ErrFailedPrecondition},
				{"mounts of missing", second(s.Mounts(ctx, "nope")), errdefs.ErrNotFound},
				{"stat missing", second(s.Stat(ctx, "nope")), errdefs.ErrNotFound},
				{"empty key", second(s.Prepare(ctx, "", "")), errdefs.ErrInvalidArgument},
			} {
				if !isClass(c.err, c.class) {
					t.Errorf("%s: error %v, want %v", c.name, c.err, c.class)
				}
			}
			if _, err := os.Stat(filepath.Join(root, "snapshots", "x")); err == nil {
				t.Errorf("failed prepare left a directory")
			}

			// Stat, Walk, Usage, Mounts.
			info, err := s.Stat(ctx, "ctr")
			if err != nil || info.Kind != KindActive || info.Parent != "l2" || info.Labels["owner"] != "test" {
				t.Errorf("Stat(ctr) = %+v, %v", info, err)
			}
			var walked []string
			s.Walk(ctx, func(_ context.Context, i Info) error {
				walked = append(walked, i.Name+":"+i.Kind.String()+":"+i.Parent)
				return nil
			})
			wantWalk := []string{"ctr:active:l2", "ctr2:active:l2", "l1:committed:", "l2:committed:l1", "view:view:l2"}
			if !equal(walked, wantWalk) {
				t.Errorf("Walk: %q, want %q", walked, wantWalk)
			}
			if u, err := s.Usage(ctx, "l1"); err != nil || u.Inodes != 11 {
				// fs, etc, etc/os, a, b, d, d/x, d/y, bin, bin/sh (and ash), sh
				t.Errorf("Usage(l1) = %+v, %v; want 11 inodes", u, err)
			}
			again, err := s.Mounts(ctx, "ctr")
			if err != nil || fmt.Sprint(again) != fmt.Sprint(mounts) {
				t.Errorf("Mounts(ctr) = %v, %v; want %v", again, err, mounts)
			}

			// Reopen: metadata persists, the driver is remembered, the root
			// is locked while open.
			if _, err := New(root, Options{}); !isClass(err, errdefs.ErrFailedPrecondition) {
				t.Errorf("second New on a root in use: %v", err)
			}
			s.Close()
			other := Native
			if driver == Native {
				other = Overlay
			}
			if _, err := New(root, Options{Driver: other}); !isClass(err, errdefs.ErrFailedPrecondition) {
				t.Errorf("New with the other driver: %v", err)
			}
			if s, err = New(root, Options{}); err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			if s.Driver() != driver {
				t.Errorf("reopened with driver %s, want %s", s.Driver(), driver)
			}
			if info, err := s.Stat(ctx, "l2"); err != nil || info.Kind != KindCommitted {
				t.Errorf("after reopen Stat(l2) = %+v, %v", info, err)
			}

			// Remove everything, children first.
			for _, m := range []string{target, view, target2} {
				if err := Unmount(m); err != nil {
					t.Fatal(err)
				}
			}
			for _, k := range []string{"ctr", "view"} {
				if err := s.Remove(ctx, k); err != nil {
					t.Errorf("remove %s: %v", k, err)
				}
			}
			if err := s.Remove(ctx, "l2"); !isClass(err, errdefs.ErrFailedPrecondition) {
				t.Errorf("remove l2 while ctr2 uses it: %v", err)
			}
			for _, k := range []string{"ctr2", "l2", "l1"} {
				if err := s.Remove(ctx, k); err != nil {
					t.Errorf("remove %s: %v", k, err)
				}
			}
			ents, _ := os.ReadDir(filepath.Join(root, "snapshots"))
			if len(ents) != 0 {
				t.Errorf("snapshot directories left: %v", ents)
			}
			n := 0
			s.Walk(ctx, func(context.Context, Info) error { n++; return nil })
			if n != 0 {
				t.Errorf("%d snapshots left in metadata", n)
			}
			checkNoMounts(t, root)
		})
	}
}

// checkNoMountsLater checks, once the test's mounts are undone, that none
// is left under dir.
func checkNoMountsLater(t *testing.T, dir string) {
	t.Cleanup(func() { checkNoMounts(t, dir) })
}

func second[T any](_ T, err error) error { return err }

func equal(a, b []string) bool { return strings.Join(a, "\n") == strings.Join(b, "\n") }

func TestAutoDetectsOverlay(t *testing.T) {
	root := t.TempDir()
	s, err := New(root, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if s.Driver() != Overlay {
		t.Errorf("driver %s on a host where overlayfs works", s.Driver())
	}
	ents, _ := os.ReadDir(root)
	for _, e := range ents {
		if strings.HasPrefix(e.Name(), "check-overlay-") {
			t.Errorf("trial mount left %s", e.Name())
		}
	}
	checkNoMounts(t, root)
}

func TestNewCleansLeftovers(t *testing.T) {
	root := t.TempDir()
	s, err := New(root, Options{Driver: Overlay})
	if err != nil {
		t.Fatal(err)
	}
	applyLayer(t, s, "l1", "", layer(t, "f=1"))
	s.Close()
	for _, d := range []string{"snapshots/999/fs", "snapshots/rm-1/fs", "check-overlay-123/m"} {
		if err := os.MkdirAll(filepath.Join(root, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if s, err = New(root, Options{}); err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	for _, d := range []string{"snapshots/999", "snapshots/rm-1", "check-overlay-123"} {
		if _, err := os.Stat(filepath.Join(root, d)); err == nil {
			t.Errorf("%s not cleaned up", d)
		}
	}
	if _, err := s.Stat(context.Background(), "l1"); err != nil {
		t.Errorf("cleanup removed a live snapshot: %v", err)
	}
}

func TestFailedPrepareLeavesNothing(t *testing.T) {
	ctx := context.Background()
	root := t.TempDir()
	s, err := New(root, Options{Driver: Native})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	applyLayer(t, s, "l1", "", layer(t, "f=1"))
	before, _ := os.ReadDir(filepath.Join(root, "snapshots"))
	// Break the parent behind the snapshotter's back: the copy fails.
	s.mu.Lock()
	id := s.meta.Snapshots["l1"].ID
	s.mu.Unlock()
	if err := os.RemoveAll(filepath.Join(root, "snapshots", id, "fs")); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Prepare(ctx, "child", "l1"); err == nil {
		t.Fatal("Prepare on a broken parent succeeded")
	}
	after, _ := os.ReadDir(filepath.Join(root, "snapshots"))
	if len(after) != len(before) {
		t.Errorf("failed Prepare left directories: before %v, after %v", before, after)
	}
	if _, err := s.Stat(ctx, "child"); !isClass(err, errdefs.ErrNotFound) {
		t.Errorf("failed Prepare left metadata: %v", err)
	}
}

func TestNativeCopyPreserves(t *testing.T) {
	ctx := context.Background()
	root := t.TempDir()
	s, err := New(root, Options{Driver: Native})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, h := range []*tar.Header{
		{Typeflag: tar.TypeDir, Name: "tmp", Mode: 0o1777, ModTime: testTime},
		{Typeflag: tar.TypeReg, Name: "tmp/suid", Mode: 0o4755, Uid: 1000, Gid: 2000, Size: 3, ModTime: testTime,
			PAXRecords: map[string]string{"SCHILY.xattr.user.k": "v", "SCHILY.xattr.trusted.t": "w"}},
		{Typeflag: tar.TypeLink, Name: "link", Linkname: "tmp/suid"},
		{Typeflag: tar.TypeSymlink, Name: "sym", Linkname: "/nowhere", Uid: 5, ModTime: testTime},
		{Typeflag: tar.TypeChar, Name: "null", Mode: 0o666, Devmajor: 1, Devminor: 3, ModTime: testTime},
		{Typeflag: tar.TypeBlock, Name: "blk", Mode: 0o600, Devmajor: 7, Devminor: 1, ModTime: testTime},
		{Typeflag: tar.TypeFifo, Name: "fifo", Mode: 0o640, ModTime: testTime},
	} {
		h.Format = tar.FormatPAX
		tw.WriteHeader(h)
		if h.Size > 0 {
			io.WriteString(tw, "abc")
		}
	}
	tw.Close()
	applyLayer(t, s, "l1", "", buf.Bytes())
	if _, err := s.Prepare(ctx, "child", "l1"); err != nil {
		t.Fatal(err)
	}
	s.mu.Lock()
	src := filepath.Join(root, "snapshots", s.meta.Snapshots["l1"].ID, "fs")
	dst := filepath.Join(root, "snapshots", s.meta.Snapshots["child"].ID, "fs")
	s.mu.Unlock()
	if a, b := statTree(t, src), statTree(t, dst); !equal(a, b) {
		t.Errorf("copy differs:\n src %q\n dst %q", a, b)
	}
	var st1, st2 unix.Stat_t
	unix.Lstat(filepath.Join(dst, "tmp/suid"), &st1)
	unix.Lstat(filepath.Join(dst, "link"), &st2)
	if st1.Ino != st2.Ino || st1.Nlink != 2 {
		t.Errorf("hardlink not kept: inodes %d %d, nlink %d", st1.Ino, st2.Ino, st1.Nlink)
	}
	for _, x := range []string{"user.k", "trusted.t"} {
		v, err := getXattr(filepath.Join(dst, "tmp/suid"), x)
		if err != nil || len(v) != 1 {
			t.Errorf("xattr %s: %q %v", x, v, err)
		}
	}
}

// statTree describes every entry's type, mode, owner, size, device and
// mtime.
func statTree(t testing.TB, dir string) []string {
	var out []string
	filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			t.Fatal(err)
		}
		rel, _ := filepath.Rel(dir, p)
		var st unix.Stat_t
		unix.Lstat(p, &st)
		out = append(out, fmt.Sprintf("%s %o %d:%d size=%d rdev=%d mtime=%d", rel, st.Mode, st.Uid, st.Gid, st.Size, st.Rdev, st.Mtim.Nano()))
		return nil
	})
	return out
}

func TestOverlayManyLayers(t *testing.T) {
	const layers = 70
	ctx := context.Background()
	// A long root makes the lowerdir list far exceed a page.
	root := filepath.Join(t.TempDir(), strings.Repeat("a-rather-long-directory-name-", 3))
	s, err := New(root, Options{Driver: Overlay})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	parent := ""
	for i := range layers {
		name := fmt.Sprintf("sha256:%064d", i)
		entries := []string{fmt.Sprintf("layer-%02d=%d", i, i), fmt.Sprintf("top=%d", i)}
		if i > 0 {
			entries = append(entries, fmt.Sprintf(".wh.layer-%02d", i-1))
		}
		applyLayer(t, s, name, parent, layer(t, entries...))
		parent = name
	}
	mounts, err := s.Prepare(ctx, "ctr", parent)
	if err != nil {
		t.Fatal(err)
	}
	_, data := parseOptions(mounts[0].Options)
	if n := len(strings.Join(data, ",")); n <= maxMountData() {
		t.Fatalf("mount data is %d bytes: the test must exceed the page limit", n)
	}
	want := []string{fmt.Sprintf("layer-%02d=%d", layers-1, layers-1), fmt.Sprintf("top=%d", layers-1)}
	for _, c := range []struct {
		name  string
		mount func(target string) error
	}{
		{"MountAll", func(target string) error { return MountAll(mounts, target) }},
		{"fsconfig", func(target string) error { return mountOverlayFsconfig("overlay", target, 0, data) }},
		{"relative", func(target string) error { return mountOverlayRelative("overlay", target, 0, data) }},
	} {
		t.Run(c.name, func(t *testing.T) {
			target := t.TempDir()
			if err := c.mount(target); err != nil {
				t.Fatal(err)
			}
			got := tree(t, target)
			if err := Unmount(target); err != nil {
				t.Fatal(err)
			}
			if !equal(got, want) {
				t.Errorf("merged view of %d layers: %q, want %q", layers, got, want)
			}
		})
	}
	vm, err := s.View(ctx, "view", parent)
	if err != nil {
		t.Fatal(err)
	}
	if got := tree(t, mountAt(t, vm)); !equal(got, want) {
		t.Errorf("view of %d layers: %q, want %q", layers, got, want)
	}
	checkNoMountsLater(t, filepath.Dir(root))
}

func TestCommonParent(t *testing.T) {
	for _, c := range []struct {
		in   []string
		want string
	}{
		{[]string{"/r/s/1/fs", "/r/s/2/fs", "/r/s/3/work"}, "/r/s"},
		{[]string{"/r/s/1/fs"}, "/r/s/1"},
		{[]string{"/a/x", "/b/y"}, ""},
		{[]string{"/r/s/1/fs", "/r/s10/fs"}, "/r"},
	} {
		if got := commonParent(c.in); got != c.want {
			t.Errorf("commonParent(%q) = %q, want %q", c.in, got, c.want)
		}
	}
}

func TestWritableDir(t *testing.T) {
	for _, c := range []struct {
		mounts  []Mount
		dir     string
		overlay bool
		ok      bool
	}{
		{[]Mount{{Type: "overlay", Source: "overlay", Options: []string{"workdir=/w", "upperdir=/u", "lowerdir=/l"}}}, "/u", true, true},
		{[]Mount{{Type: "bind", Source: "/s", Options: []string{"rbind", "rw"}}}, "/s", false, true},
		{[]Mount{{Type: "bind", Source: "/s", Options: []string{"rbind", "ro"}}}, "", false, false},
		{[]Mount{{Type: "overlay", Source: "overlay", Options: []string{"lowerdir=/a:/b"}}}, "", false, false},
		{nil, "", false, false},
	} {
		dir, overlay, ok := WritableDir(c.mounts)
		if dir != c.dir || overlay != c.overlay || ok != c.ok {
			t.Errorf("WritableDir(%v) = %q %v %v, want %q %v %v", c.mounts, dir, overlay, ok, c.dir, c.overlay, c.ok)
		}
	}
}
