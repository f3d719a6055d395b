package archive

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/skiff-containers/skiff/errdefs"
)

func TestPrepareCopy(t *testing.T) {
	for _, tc := range []struct {
		name    string
		src     string
		srcDir  bool
		dst     CopyInfo
		wantDir string
		want    Rebase
		wantErr error
	}{
		{"file into existing dir", "f", false, CopyInfo{Path: "/d", Exists: true, IsDir: true}, "/d", Rebase{}, nil},
		{"dir into existing dir", "src", true, CopyInfo{Path: "/d", Exists: true, IsDir: true}, "/d", Rebase{}, nil},
		{"contents into existing dir", ".", true, CopyInfo{Path: "/d", Exists: true, IsDir: true}, "/d", Rebase{}, nil},
		{"file over existing file", "f", false, CopyInfo{Path: "/d/g", Exists: true}, "/d", Rebase{From: "f", To: "g"}, nil},
		{"file over file of the same name", "f", false, CopyInfo{Path: "/d/f", Exists: true}, "/d", Rebase{}, nil},
		{"dir over existing file", "src", true, CopyInfo{Path: "/d/g", Exists: true}, "", Rebase{}, ErrCannotCopyDir},
		{"dir to new name", "src", true, CopyInfo{Path: "/d/new"}, "/d", Rebase{From: "src", To: "new"}, nil},
		{"dir to new name with slash", "src", true, CopyInfo{Path: "/d/new/"}, "/d", Rebase{From: "src", To: "new"}, nil},
		{"contents to new dir", ".", true, CopyInfo{Path: "/d/new"}, "/d", Rebase{From: ".", To: "new"}, nil},
		{"file to new name", "f", false, CopyInfo{Path: "/d/new"}, "/d", Rebase{From: "f", To: "new"}, nil},
		{"file to missing dir", "f", false, CopyInfo{Path: "/d/new/"}, "", Rebase{}, ErrDirNotExists},
		{"file to missing dir/.", "f", false, CopyInfo{Path: "/d/new/."}, "", Rebase{}, ErrDirNotExists},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir, rb, err := PrepareCopy(tc.src, tc.srcDir, tc.dst)
			if !errors.Is(err, tc.wantErr) || dir != tc.wantDir || rb != tc.want {
				t.Errorf("PrepareCopy(%q, %v, %+v) = %q, %+v, %v; want %q, %+v, %v", tc.src, tc.srcDir, tc.dst, dir, rb, err, tc.wantDir, tc.want, tc.wantErr)
			}
		})
	}
	if !errdefs.IsInvalidArgument(ErrCannotCopyDir) || !errdefs.IsNotFound(ErrDirNotExists) || ErrCannotCopyDir.Error() != "cannot copy directory" {
		t.Errorf("the refusals lost their class or docker's text: %v, %v", ErrCannotCopyDir, ErrDirNotExists)
	}
}

func TestCopyPathHelpers(t *testing.T) {
	for _, tc := range []struct {
		in, dir, base, source string
		asserts               bool
	}{
		{"/a/b", "/a", "b", "b", false},
		{"/a/b/", "/a", "b", "b", true},
		{"/a/b/.", "/a/b", ".", ".", true},
		{"/", "/", "/", ".", true},
		{"b", ".", "b", "b", false},
		{"/a/./b/../c", "/a", "c", "c", false},
	} {
		dir, base := SplitPathDirEntry(tc.in)
		if dir != tc.dir || base != tc.base {
			t.Errorf("SplitPathDirEntry(%q) = %q, %q; want %q, %q", tc.in, dir, base, tc.dir, tc.base)
		}
		if got := SourceName(tc.in); got != tc.source {
			t.Errorf("SourceName(%q) = %q, want %q", tc.in, got, tc.source)
		}
		if got := AssertsDirectory(tc.in); got != tc.asserts {
			t.Errorf("AssertsDirectory(%q) = %v, want %v", tc.in, got, tc.asserts)
		}
	}
	for _, tc := range []struct{ cleaned, orig, want string }{
		{"/a/b", "a/b/", "/a/b/"},
		{"/a/b", "a/b/.", "/a/b/."},
		{"/a/b", "a/b", "/a/b"},
		{"/", "/.", "/."},
	} {
		if got := PreserveTrailingDotOrSeparator(tc.cleaned, tc.orig); got != tc.want {
			t.Errorf("PreserveTrailingDotOrSeparator(%q, %q) = %q, want %q", tc.cleaned, tc.orig, got, tc.want)
		}
	}
	for _, tc := range []struct {
		rb       Rebase
		in, want string
	}{
		{Rebase{From: "src", To: "dst"}, "src", "dst"},
		{Rebase{From: "src", To: "dst"}, "src/a/b", "dst/a/b"},
		{Rebase{From: "src", To: "dst"}, "srcx/a", "srcx/a"},
		{Rebase{From: ".", To: "dst"}, "./a", "dst/a"},
		{Rebase{From: ".", To: "dst"}, "./", "dst/"},
		{Rebase{}, "./a", "./a"},
	} {
		if got := tc.rb.apply(tc.in); got != tc.want {
			t.Errorf("%+v.apply(%q) = %q, want %q", tc.rb, tc.in, got, tc.want)
		}
	}
}

// hostTree makes, in a temporary directory: d/ (with f), file, link -> d,
// dangling -> nowhere, and returns its path.
func hostTree(t *testing.T) string {
	t.Helper()
	tmp := t.TempDir()
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(os.Mkdir(filepath.Join(tmp, "d"), 0o755))
	must(os.WriteFile(filepath.Join(tmp, "d", "f"), []byte("in d"), 0o644))
	must(os.WriteFile(filepath.Join(tmp, "file"), []byte("a file"), 0o600))
	must(os.Symlink("d", filepath.Join(tmp, "link")))
	must(os.Symlink("nowhere", filepath.Join(tmp, "dangling")))
	must(os.Symlink("file", filepath.Join(tmp, "filelink")))
	return tmp
}

func TestHostDestination(t *testing.T) {
	tmp := hostTree(t)
	for _, tc := range []struct {
		in      string
		want    CopyInfo
		wantErr bool
	}{
		{"d", CopyInfo{Path: "d", Exists: true, IsDir: true}, false},
		{"file", CopyInfo{Path: "file", Exists: true}, false},
		{"link", CopyInfo{Path: "d", Exists: true, IsDir: true}, false},
		{"dangling", CopyInfo{Path: "nowhere"}, false},
		{"new", CopyInfo{Path: "new"}, false},
		{"d/new", CopyInfo{Path: "d/new"}, false},
		{"missing/new", CopyInfo{}, true},
		{"file/new", CopyInfo{}, true},
	} {
		got, err := HostDestination(filepath.Join(tmp, tc.in))
		if tc.wantErr {
			if err == nil {
				t.Errorf("HostDestination(%s) = %+v, want an error", tc.in, got)
			}
			continue
		}
		tc.want.Path = filepath.Join(tmp, tc.want.Path)
		if err != nil || got != tc.want {
			t.Errorf("HostDestination(%s) = %+v, %v; want %+v", tc.in, got, err, tc.want)
		}
	}
}

func TestHostSource(t *testing.T) {
	tmp := hostTree(t)
	for _, tc := range []struct {
		in               string
		follow           bool
		dir, base, name  string
		isDir, wantError bool
	}{
		{in: "file", dir: ".", base: "file", name: "file"},
		{in: "d", dir: ".", base: "d", name: "d", isDir: true},
		{in: "d/", dir: ".", base: "d", name: "d", isDir: true},
		{in: "d/.", dir: "d", base: ".", name: ".", isDir: true},
		{in: "link", dir: ".", base: "link", name: "link"},
		{in: "link", follow: true, dir: ".", base: "d", name: "link", isDir: true},
		{in: "link/", dir: ".", base: "d", name: "link", isDir: true},
		{in: "filelink", follow: true, dir: ".", base: "file", name: "filelink"},
		{in: "link/f", dir: "d", base: "f", name: "f"},
		{in: "file/", wantError: true},
		{in: "missing", wantError: true},
		{in: "dangling", follow: true, wantError: true},
	} {
		dir, base, name, isDir, err := HostSource(tmp+"/"+tc.in, tc.follow)
		if tc.wantError {
			if err == nil {
				dir.Close()
				t.Errorf("HostSource(%s, %v) succeeded, want an error", tc.in, tc.follow)
			}
			continue
		}
		if err != nil {
			t.Errorf("HostSource(%s, %v): %v", tc.in, tc.follow, err)
			continue
		}
		if want := filepath.Join(tmp, tc.dir); dir.Name() != want || base != tc.base || name != tc.name || isDir != tc.isDir {
			t.Errorf("HostSource(%s, %v) = %s, %q, %q, %v; want %s, %q, %q, %v", tc.in, tc.follow, dir.Name(), base, name, isDir, want, tc.base, tc.name, tc.isDir)
		}
		dir.Close()
	}
}

// tarNames lists the entries of a tar stream: name, type, and link target.
func tarNames(t *testing.T, data []byte) []string {
	t.Helper()
	var out []string
	tr := tar.NewReader(bytes.NewReader(data))
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return out
		}
		if err != nil {
			t.Fatal(err)
		}
		s := h.Name + " " + string(h.Typeflag)
		if h.Linkname != "" {
			s += " -> " + h.Linkname
		}
		out = append(out, s)
	}
}

func openDir(t *testing.T, p string) *os.File {
	t.Helper()
	fd, err := unix.Open(p, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	f := os.NewFile(uintptr(fd), p)
	t.Cleanup(func() { f.Close() })
	return f
}

func TestWriteTreeNames(t *testing.T) {
	tmp := t.TempDir()
	src := filepath.Join(tmp, "src")
	os.MkdirAll(filepath.Join(src, "sub"), 0o755)
	os.WriteFile(filepath.Join(src, "sub", "a"), []byte("a"), 0o644)
	os.Link(filepath.Join(src, "sub", "a"), filepath.Join(src, "b"))
	os.Symlink("/etc/passwd", filepath.Join(src, "abs"))
	unix.Mkfifo(filepath.Join(src, "fifo"), 0o600)
	for _, tc := range []struct {
		base, name string
		want       []string
	}{
		{"src", "src", []string{"src/ 5", "src/abs 2 -> /etc/passwd", "src/b 0", "src/fifo 6", "src/sub/ 5", "src/sub/a 1 -> src/b"}},
		{"src", "renamed", []string{"renamed/ 5", "renamed/abs 2 -> /etc/passwd", "renamed/b 0", "renamed/fifo 6", "renamed/sub/ 5", "renamed/sub/a 1 -> renamed/b"}},
		{"src", "", []string{"abs 2 -> /etc/passwd", "b 0", "fifo 6", "sub/ 5", "sub/a 1 -> b"}},
		{"src/abs", "abs", []string{"abs 2 -> /etc/passwd"}},
	} {
		var buf bytes.Buffer
		if err := WriteTree(context.Background(), &buf, openDir(t, tmp), tc.base, tc.name, WriteOptions{}); err != nil {
			t.Fatalf("WriteTree(%s, %q): %v", tc.base, tc.name, err)
		}
		if got := strings.Join(tarNames(t, buf.Bytes()), "\n"); got != strings.Join(tc.want, "\n") {
			t.Errorf("WriteTree(%s, %q) entries:\n%s\nwant:\n%s", tc.base, tc.name, got, strings.Join(tc.want, "\n"))
		}
	}
	var buf bytes.Buffer
	if err := WriteTree(context.Background(), &buf, openDir(t, src), ".", ".", WriteOptions{}); err != nil {
		t.Fatal(err)
	}
	if got := tarNames(t, buf.Bytes()); len(got) == 0 || got[0] != "./ 5" || got[1] != "./abs 2 -> /etc/passwd" {
		t.Errorf("WriteTree of a directory's contents: %q", got)
	}
}

// TestCopyRoundTrip archives a tree and extracts it elsewhere in Plain
// mode under another name: the same files, modes and links.
func TestCopyRoundTrip(t *testing.T) {
	tmp := t.TempDir()
	src := filepath.Join(tmp, "src")
	os.MkdirAll(filepath.Join(src, "sub"), 0o750)
	os.WriteFile(filepath.Join(src, "sub", "a"), []byte("a"), 0o640)
	os.WriteFile(filepath.Join(src, ".wh.kept"), []byte("not a whiteout here"), 0o644)
	os.Symlink("../sub/a", filepath.Join(src, "rel"))
	os.Chown(filepath.Join(src, "sub", "a"), 1234, 5678)
	var buf bytes.Buffer
	if err := WriteTree(context.Background(), &buf, openDir(t, tmp), "src", "src", WriteOptions{}); err != nil {
		t.Fatal(err)
	}
	for _, owners := range []bool{true, false} {
		dst := filepath.Join(tmp, "dst"+map[bool]string{true: "-a", false: ""}[owners])
		os.Mkdir(dst, 0o755)
		_, err := ApplyAt(context.Background(), openDir(t, dst), bytes.NewReader(buf.Bytes()), ApplyOptions{
			Plain: true, Rebase: Rebase{From: "src", To: "copy"}, IgnoreOwnership: !owners, NoOverwriteDirNonDir: true,
		})
		if err != nil {
			t.Fatal(err)
		}
		want := describe(t, src)
		if !owners && os.Geteuid() == 0 {
			want["sub/a"] = strings.Replace(want["sub/a"], "1234:5678", "0:0", 1)
		}
		if d := diffTrees(want, describe(t, filepath.Join(dst, "copy"))); d != "" {
			t.Errorf("round trip (keep owners %v) differs:\n%s", owners, d)
		}
	}
}

func TestApplyPlainRefusals(t *testing.T) {
	s := newSandbox(t)
	os.Mkdir(filepath.Join(s.root, "d"), 0o755)
	os.WriteFile(filepath.Join(s.root, "f"), []byte("f"), 0o644)
	os.Symlink(s.outside, filepath.Join(s.root, "escape"))
	for _, tc := range []struct {
		name    string
		entries []tent
	}{
		{"file over directory", []tent{file("d", "x", 0o644)}},
		{"directory over file", []tent{dir("f", 0o755)}},
		{"dot-dot", []tent{file("../outside/secret", "pwned", 0o644)}},
		{"through a symlink", []tent{file("escape/secret", "pwned", 0o644)}}, // resolves inside the root, where it leads nowhere
		{"hardlink out", []tent{hardlink("h", "../outside/secret")}},
	} {
		_, err := ApplyAt(context.Background(), openDir(t, s.root), bytes.NewReader(mkTar(t, tc.entries, s.outside)), ApplyOptions{Plain: true, NoOverwriteDirNonDir: true})
		if err == nil {
			t.Errorf("%s: extracted, want a refusal", tc.name)
		}
	}
	s.check(t)
	if b, err := os.ReadFile(filepath.Join(s.root, "escape")); err == nil {
		t.Errorf("root/escape became a file: %q", b)
	}
	if fi, err := os.Stat(filepath.Join(s.root, "d")); err != nil || !fi.IsDir() {
		t.Errorf("root/d was replaced: %v", err)
	}
}

func TestWriteOverlayDiff(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Fatal("needs root (whiteout devices, trusted xattrs)")
	}
	upper := t.TempDir()
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(unix.Mknod(filepath.Join(upper, "gone"), unix.S_IFCHR, 0))
	must(os.Mkdir(filepath.Join(upper, "opq"), 0o755))
	must(unix.Setxattr(filepath.Join(upper, "opq"), "trusted.overlay.opaque", []byte("y"), 0))
	must(os.WriteFile(filepath.Join(upper, "opq", "kept"), []byte("k"), 0o644))
	must(os.Mkdir(filepath.Join(upper, "etc"), 0o755))
	must(os.WriteFile(filepath.Join(upper, "etc", "hosts"), nil, 0o644))
	must(unix.Mknod(filepath.Join(upper, "etc", "shadow"), unix.S_IFCHR, 0))
	must(os.Mkdir(filepath.Join(upper, "proc"), 0o555))
	must(os.Mkdir(filepath.Join(upper, "data"), 0o755))
	must(os.WriteFile(filepath.Join(upper, "data", "x"), []byte("x"), 0o644))
	must(os.WriteFile(filepath.Join(upper, "new"), []byte("new"), 0o644))
	must(unix.Mknod(filepath.Join(upper, "null"), unix.S_IFCHR|0o666, int(unix.Mkdev(1, 3))))

	var buf bytes.Buffer
	err := WriteTree(context.Background(), &buf, openDir(t, upper), ".", "", WriteOptions{OverlayDiff: true, SkipEmpty: []string{"/etc/hosts", "proc", "data"}})
	if err != nil {
		t.Fatal(err)
	}
	want := []string{
		"data/ 5", "data/x 0", // not empty: kept
		"etc/ 5", "etc/.wh.shadow 0", // etc/hosts: an empty mount point, left out
		".wh.gone 0",
		"new 0",
		"null 3",
		"opq/ 5", "opq/.wh..wh..opq 0", "opq/kept 0",
	}
	got := tarNames(t, buf.Bytes())
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("diff entries:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	tr := tar.NewReader(bytes.NewReader(buf.Bytes()))
	for {
		h, err := tr.Next()
		if err != nil {
			break
		}
		for k := range h.PAXRecords {
			if strings.Contains(k, "overlay") {
				t.Errorf("entry %s carries %s", h.Name, k)
			}
		}
	}

	// The diff applied on a lower tree does what overlayfs showed.
	lower := t.TempDir()
	must(os.WriteFile(filepath.Join(lower, "gone"), []byte("g"), 0o644))
	must(os.MkdirAll(filepath.Join(lower, "opq", "hidden"), 0o755))
	must(os.MkdirAll(filepath.Join(lower, "etc"), 0o755))
	must(os.WriteFile(filepath.Join(lower, "etc", "shadow"), []byte("s"), 0o600))
	if _, err := Apply(context.Background(), lower, bytes.NewReader(buf.Bytes()), ApplyOptions{AllowDevices: true}); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{"gone", "opq/hidden", "etc/shadow"} {
		if _, err := os.Lstat(filepath.Join(lower, p)); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("%s survived the whiteout: %v", p, err)
		}
	}
	if b, err := os.ReadFile(filepath.Join(lower, "opq", "kept")); err != nil || string(b) != "k" {
		t.Errorf("opq/kept: %q, %v", b, err)
	}

	must(unix.Setxattr(filepath.Join(upper, "opq"), "trusted.overlay.redirect", []byte("/elsewhere"), 0))
	err = WriteTree(context.Background(), io.Discard, openDir(t, upper), ".", "", WriteOptions{OverlayDiff: true})
	if !errdefs.IsNotImplemented(err) || !strings.Contains(err.Error(), "trusted.overlay.redirect") {
		t.Errorf("diff of a redirected directory: %v, want a not-implemented refusal naming the xattr", err)
	}
}
