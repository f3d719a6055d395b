package archive

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

	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"
	"golang.org/x/sys/unix"

	"github.com/skiff-containers/skiff/errdefs"
)

var testTime = time.Date(2020, 1, 2, 3, 4, 5, 0, time.UTC)

// tent is one entry of a test tarball. "$OUT" in its name or link target
// is replaced by the test's outside directory.
type tent struct {
	hdr  tar.Header
	body string
}

func hdrOf(typ byte, name string, mode int64) tar.Header {
	return tar.Header{Typeflag: typ, Name: name, Mode: mode, ModTime: testTime, Format: tar.FormatPAX}
}

func file(name, body string, mode int64) tent {
	h := hdrOf(tar.TypeReg, name, mode)
	h.Size = int64(len(body))
	return tent{hdr: h, body: body}
}

func dir(name string, mode int64) tent { return tent{hdr: hdrOf(tar.TypeDir, name, mode)} }

func symlink(name, target string) tent {
	h := hdrOf(tar.TypeSymlink, name, 0o777)
	h.Linkname = target
	return tent{hdr: h}
}

func hardlink(name, target string) tent {
	h := hdrOf(tar.TypeLink, name, 0o644)
	h.Linkname = target
	return tent{hdr: h}
}

func device(typ byte, name string, major, minor int64) tent {
	h := hdrOf(typ, name, 0o666)
	h.Devmajor, h.Devminor = major, minor
	return tent{hdr: h}
}

func with(e tent, f func(h *tar.Header)) tent {
	f(&e.hdr)
	return e
}

// mkTar writes the entries as a tarball.
func mkTar(t testing.TB, entries []tent, out string) []byte {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, e := range entries {
		h := e.hdr
		h.Name = strings.ReplaceAll(h.Name, "$OUT", out)
		h.Linkname = strings.ReplaceAll(h.Linkname, "$OUT", out)
		if err := tw.WriteHeader(&h); err != nil {
			t.Fatalf("write header %q: %v", h.Name, err)
		}
		if _, err := io.WriteString(tw, e.body); err != nil {
			t.Fatal(err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func gzipped(t testing.TB, data []byte) []byte {
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	zw.Write(data)
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func zstded(t testing.TB, data []byte) []byte {
	var buf bytes.Buffer
	zw, err := zstd.NewWriter(&buf)
	if err != nil {
		t.Fatal(err)
	}
	zw.Write(data)
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// describe returns one line per entry below root: type, mode, owner and
// content or target, for comparison.
func describe(t testing.TB, root string) map[string]string {
	t.Helper()
	out := map[string]string{}
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		if rel == "." {
			return nil
		}
		var st unix.Stat_t
		if err := unix.Lstat(p, &st); err != nil {
			return err
		}
		own := fmt.Sprintf("%d:%d", st.Uid, st.Gid)
		perm := fmt.Sprintf("%04o", st.Mode&0o7777)
		switch st.Mode & unix.S_IFMT {
		case unix.S_IFDIR:
			out[rel] = "dir " + perm + " " + own
		case unix.S_IFREG:
			data, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			out[rel] = "file " + perm + " " + own + " " + string(data)
		case unix.S_IFLNK:
			target, err := os.Readlink(p)
			if err != nil {
				return err
			}
			out[rel] = "symlink " + own + " -> " + target
		case unix.S_IFCHR, unix.S_IFBLK:
			kind := "char"
			if st.Mode&unix.S_IFMT == unix.S_IFBLK {
				kind = "block"
			}
			out[rel] = fmt.Sprintf("%s %s %s %d/%d", kind, perm, own, unix.Major(st.Rdev), unix.Minor(st.Rdev))
		case unix.S_IFIFO:
			out[rel] = "fifo " + perm + " " + own
		default:
			out[rel] = fmt.Sprintf("mode %o", st.Mode)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func sortedKeys(m map[string]string) []string {
	var keys []string
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

func diffTrees(want, got map[string]string) string {
	var b strings.Builder
	for _, k := range sortedKeys(want) {
		if got[k] != want[k] {
			fmt.Fprintf(&b, "  %s: got %q, want %q\n", k, got[k], want[k])
		}
	}
	for _, k := range sortedKeys(got) {
		if _, ok := want[k]; !ok {
			fmt.Fprintf(&b, "  %s: unexpected %q\n", k, got[k])
		}
	}
	return b.String()
}

// sandbox makes tmp/root (the target) and tmp/outside (which no apply may
// touch); check verifies that tmp holds nothing else and outside is as it
// was.
type sandbox struct {
	tmp, root, outside string
	before             map[string]string
}

func newSandbox(t testing.TB) *sandbox {
	t.Helper()
	tmp := t.TempDir()
	s := &sandbox{tmp: tmp, root: filepath.Join(tmp, "root"), outside: filepath.Join(tmp, "outside")}
	for _, d := range []string{s.root, s.outside, filepath.Join(s.outside, "sub")} {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(s.outside, "secret"), []byte("s3cret"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(s.outside, "sub", "x"), []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	s.before = describe(t, s.outside)
	return s
}

func (s *sandbox) check(t testing.TB) {
	t.Helper()
	ents, err := os.ReadDir(s.tmp)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		if e.Name() != "root" && e.Name() != "outside" {
			t.Errorf("apply created %s outside the target directory", filepath.Join(s.tmp, e.Name()))
		}
	}
	if d := diffTrees(s.before, describe(t, s.outside)); d != "" {
		t.Errorf("apply changed the outside directory:\n%s", d)
	}
	var st unix.Stat_t
	if err := unix.Lstat(filepath.Join(s.outside, "secret"), &st); err != nil || st.Nlink != 1 {
		t.Errorf("outside/secret: nlink %d, err %v (a hardlink escaped)", st.Nlink, err)
	}
}

func TestApply(t *testing.T) {
	root0 := os.Geteuid() == 0
	if !root0 {
		t.Fatal("these tests need root (ownership, devices, trusted xattrs)")
	}
	longName := strings.Repeat("long-directory-name/", 12) + "file"
	cases := []struct {
		name    string
		lower   []tent // applied first, with Overlay false
		entries []tent
		opts    ApplyOptions
		want    map[string]string // the whole tree, if not nil
		wantErr error             // errdefs class
		errText string
		check   func(t *testing.T, root string)
	}{
		{
			name: "files dirs symlinks modes owners",
			entries: []tent{
				dir("etc/", 0o755),
				file("etc/passwd", "root:x:0:0", 0o644),
				with(file("bin/su", "ELF", 0o4755), func(h *tar.Header) { h.Uid, h.Gid = 0, 0 }),
				with(dir("tmp", 0o1777), func(h *tar.Header) {}),
				with(file("home/app/notes", "hi", 0o600), func(h *tar.Header) { h.Uid, h.Gid = 1234, 5678 }),
				with(symlink("home/app/link", "notes"), func(h *tar.Header) { h.Uid, h.Gid = 1234, 5678 }),
				symlink("abs", "/etc/passwd"),
				with(dir("g", 0o2750), func(h *tar.Header) { h.Gid = 42 }),
				file("./dot/./slash//name", "x", 0o640),
			},
			want: map[string]string{
				"etc":            "dir 0755 0:0",
				"etc/passwd":     "file 0644 0:0 root:x:0:0",
				"bin":            "dir 0755 0:0",
				"bin/su":         "file 4755 0:0 ELF",
				"tmp":            "dir 1777 0:0",
				"home":           "dir 0755 0:0",
				"home/app":       "dir 0755 0:0",
				"home/app/notes": "file 0600 1234:5678 hi",
				"home/app/link":  "symlink 1234:5678 -> notes",
				"abs":            "symlink 0:0 -> /etc/passwd",
				"g":              "dir 2750 0:42",
				"dot":            "dir 0755 0:0",
				"dot/slash":      "dir 0755 0:0",
				"dot/slash/name": "file 0640 0:0 x",
			},
		},
		{
			name: "hardlinks share the inode",
			entries: []tent{
				file("a", "data", 0o755),
				hardlink("b", "a"),
				hardlink("dir/c", "./a"),
				symlink("s", "a"),
				hardlink("s2", "s"),
			},
			check: func(t *testing.T, root string) {
				var a, b, c, s, s2 unix.Stat_t
				for p, st := range map[string]*unix.Stat_t{"a": &a, "b": &b, "dir/c": &c, "s": &s, "s2": &s2} {
					if err := unix.Lstat(filepath.Join(root, p), st); err != nil {
						t.Fatal(err)
					}
				}
				if a.Ino != b.Ino || a.Ino != c.Ino || a.Nlink != 3 {
					t.Errorf("a, b, dir/c: inodes %d %d %d nlink %d; want one inode, 3 links", a.Ino, b.Ino, c.Ino, a.Nlink)
				}
				if s.Ino != s2.Ino || s.Mode&unix.S_IFMT != unix.S_IFLNK {
					t.Errorf("hardlink to a symlink must link the symlink itself")
				}
			},
		},
		{
			name: "devices and fifos",
			opts: ApplyOptions{AllowDevices: true},
			entries: []tent{
				device(tar.TypeChar, "dev/null", 1, 3),
				device(tar.TypeBlock, "dev/loop9", 7, 9),
				device(tar.TypeFifo, "run/fifo", 0, 0),
			},
			want: map[string]string{
				"dev": "dir 0755 0:0", "run": "dir 0755 0:0",
				"dev/null":  "char 0666 0:0 1/3",
				"dev/loop9": "block 0666 0:0 7/9",
				"run/fifo":  "fifo 0666 0:0",
			},
		},
		{
			name:    "devices refused unless allowed",
			entries: []tent{device(tar.TypeChar, "dev/mem", 1, 1)},
			wantErr: errdefs.ErrInvalidArgument, errText: `"dev/mem"`,
		},
		{
			name:    "fifo allowed without devices",
			entries: []tent{device(tar.TypeFifo, "fifo", 0, 0)},
			want:    map[string]string{"fifo": "fifo 0666 0:0"},
		},
		{
			name: "xattrs",
			entries: []tent{
				with(file("f", "x", 0o644), func(h *tar.Header) {
					h.PAXRecords = map[string]string{
						"SCHILY.xattr.user.color":             "blue",
						"SCHILY.xattr.trusted.skiff":          "t",
						"SCHILY.xattr.security.capability":    "\x01\x00\x00\x02\x00\x04\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00",
						"SCHILY.xattr.trusted.overlay.opaque": "y",
					}
				}),
				with(dir("d", 0o755), func(h *tar.Header) {
					h.PAXRecords = map[string]string{"SCHILY.xattr.user.dir": "yes"}
				}),
			},
			check: func(t *testing.T, root string) {
				for _, c := range []struct{ path, attr, want string }{
					{"f", "user.color", "blue"},
					{"f", "trusted.skiff", "t"},
					{"d", "user.dir", "yes"},
				} {
					buf := make([]byte, 256)
					n, err := unix.Lgetxattr(filepath.Join(root, c.path), c.attr, buf)
					if err != nil || string(buf[:n]) != c.want {
						t.Errorf("%s %s = %q, %v; want %q", c.path, c.attr, buf[:max(n, 0)], err, c.want)
					}
				}
				if _, err := unix.Lgetxattr(filepath.Join(root, "f"), "security.capability", nil); err != nil {
					t.Errorf("security.capability not set: %v", err)
				}
				if _, err := unix.Lgetxattr(filepath.Join(root, "f"), "trusted.overlay.opaque", nil); err == nil {
					t.Errorf("trusted.overlay.opaque taken from the tarball")
				}
			},
		},
		{
			name: "mtimes including directories after their contents",
			entries: []tent{
				dir("d", 0o755),
				with(file("d/f", "x", 0o644), func(h *tar.Header) { h.ModTime = testTime.Add(time.Hour) }),
				with(symlink("d/l", "f"), func(h *tar.Header) { h.ModTime = testTime.Add(2 * time.Hour) }),
				dir("d/sub", 0o755),
				file("d/sub/g", "y", 0o644),
			},
			check: func(t *testing.T, root string) {
				for p, want := range map[string]time.Time{
					"d": testTime, "d/f": testTime.Add(time.Hour), "d/l": testTime.Add(2 * time.Hour), "d/sub": testTime,
				} {
					var st unix.Stat_t
					if err := unix.Lstat(filepath.Join(root, p), &st); err != nil {
						t.Fatal(err)
					}
					if got := time.Unix(st.Mtim.Unix()); !got.Equal(want) {
						t.Errorf("%s mtime %v, want %v", p, got, want)
					}
				}
			},
		},
		{
			name: "long names pax and gnu",
			entries: []tent{
				file(longName, "pax", 0o644),
				with(file(longName+"2", "gnu", 0o644), func(h *tar.Header) { h.Format = tar.FormatGNU }),
				with(symlink("short", longName), func(h *tar.Header) { h.Format = tar.FormatGNU }),
			},
			check: func(t *testing.T, root string) {
				if data, err := os.ReadFile(filepath.Join(root, "short")); err != nil || string(data) != "pax" {
					t.Errorf("read through long symlink: %q %v", data, err)
				}
				if data, err := os.ReadFile(filepath.Join(root, longName+"2")); err != nil || string(data) != "gnu" {
					t.Errorf("gnu long name: %q %v", data, err)
				}
			},
		},
		{
			name:  "entries replace what is there",
			lower: []tent{file("a", "old", 0o644), dir("b/c", 0o755), file("b/c/d", "x", 0o644), symlink("e", "a"), dir("f", 0o700)},
			entries: []tent{
				dir("a", 0o755),
				file("b", "now a file", 0o644),
				file("e", "not through the link", 0o644),
				with(dir("f", 0o750), func(h *tar.Header) { h.Uid = 7 }),
			},
			want: map[string]string{
				"a": "dir 0755 0:0", "b": "file 0644 0:0 now a file",
				"e": "file 0644 0:0 not through the link", "f": "dir 0750 7:0",
			},
		},
		{
			name:  "whiteouts delete when not overlay",
			lower: []tent{file("a/keep", "k", 0o644), file("a/gone", "g", 0o644), file("b/old", "o", 0o644), file("b/sub/old", "o", 0o644), file("c/x", "x", 0o644)},
			entries: []tent{
				file("a/.wh.gone", "", 0o644),
				dir("b", 0o755),
				file("b/new", "n", 0o644),
				dir("b/sub", 0o755),
				file("b/sub/new", "n", 0o644),
				file("b/.wh..wh..opq", "", 0o644),
				file(".wh.c", "", 0o644),
				file(".wh.missing", "", 0o644),
				file("nodir/.wh.missing", "", 0o644),
			},
			want: map[string]string{
				"a": "dir 0755 0:0", "a/keep": "file 0644 0:0 k",
				"b": "dir 0755 0:0", "b/new": "file 0644 0:0 n",
				"b/sub": "dir 0755 0:0", "b/sub/new": "file 0644 0:0 n",
			},
		},
		{
			name: "whiteouts become overlay form",
			opts: ApplyOptions{Overlay: true},
			entries: []tent{
				file("a/.wh.gone", "", 0o644),
				dir("b", 0o755),
				file("b/new", "n", 0o644),
				file("b/.wh..wh..opq", "", 0o644),
				file(".wh.c", "", 0o644),
				file("same", "s", 0o644),
				file(".wh.same", "", 0o644),
			},
			want: map[string]string{
				"a": "dir 0755 0:0", "a/gone": "char 0000 0:0 0/0",
				"b": "dir 0755 0:0", "b/new": "file 0644 0:0 n",
				"c": "char 0000 0:0 0/0", "same": "file 0644 0:0 s",
			},
			check: func(t *testing.T, root string) {
				buf := make([]byte, 8)
				n, err := unix.Lgetxattr(filepath.Join(root, "b"), overlayOpaqueXattr, buf)
				if err != nil || string(buf[:n]) != "y" {
					t.Errorf("b: %s = %q, %v; want y", overlayOpaqueXattr, buf[:max(n, 0)], err)
				}
			},
		},
		{
			name: "aufs metadata skipped and plnk hardlinks resolved",
			entries: []tent{
				dir(".wh..wh.aufs", 0o700),
				dir(".wh..wh.orph", 0o700),
				dir(".wh..wh.plnk", 0o700),
				file(".wh..wh.plnk/1234.5678", "linked", 0o644),
				hardlink("bin/tool", ".wh..wh.plnk/1234.5678"),
			},
			want: map[string]string{"bin": "dir 0755 0:0", "bin/tool": "file 0644 0:0 linked"},
		},
		// Escapes.
		{
			name:    "dotdot refused",
			entries: []tent{file("../outside/pwned", "x", 0o644)},
			wantErr: errdefs.ErrInvalidArgument, errText: `"../outside/pwned"`,
		},
		{
			name:    "dotdot in the middle refused",
			entries: []tent{file("a/../../outside/pwned", "x", 0o644)},
			wantErr: errdefs.ErrInvalidArgument,
		},
		{
			name:    "dotdot staying inside is cleaned",
			entries: []tent{file("a/../b", "x", 0o644)},
			want:    map[string]string{"b": "file 0644 0:0 x"},
		},
		{
			name:    "absolute name taken relative to the root",
			entries: []tent{file("$OUT/pwned", "x", 0o644), file("/etc/skiff-test", "y", 0o644)},
			check: func(t *testing.T, root string) {
				if _, err := os.Stat("/etc/skiff-test"); err == nil {
					t.Errorf("wrote /etc/skiff-test on the host")
				}
				if _, err := os.Stat(filepath.Join(root, "etc/skiff-test")); err != nil {
					t.Errorf("absolute name not placed inside root: %v", err)
				}
			},
		},
		{
			name:    "write through absolute symlink stays inside",
			entries: []tent{symlink("link", "$OUT"), dir("link", 0o755)},
			want:    map[string]string{"link": "dir 0755 0:0"},
		},
		{
			name:    "write through dangling absolute symlink refused",
			entries: []tent{symlink("etc", "/etc"), file("etc/skiff-test", "x", 0o644)},
			wantErr: errdefs.ErrInvalidArgument, errText: `"etc/skiff-test"`,
		},
		{
			name:    "write through absolute symlink resolves inside",
			entries: []tent{dir("etc", 0o755), symlink("link", "/etc"), file("link/skiff-test", "x", 0o644)},
			check: func(t *testing.T, root string) {
				if _, err := os.Stat("/etc/skiff-test"); err == nil {
					t.Errorf("wrote /etc/skiff-test on the host")
				}
				if _, err := os.Stat(filepath.Join(root, "etc/skiff-test")); err != nil {
					t.Errorf("not written inside the root: %v", err)
				}
			},
		},
		{
			name:    "write through symlink to outside dir refused",
			entries: []tent{symlink("o", "$OUT/sub"), file("o/x", "overwritten", 0o644)},
			wantErr: errdefs.ErrInvalidArgument,
		},
		{
			name:    "write through dangling relative symlink climbing out refused",
			entries: []tent{dir("d", 0o755), symlink("d/up", "../../outside"), file("d/up/secret", "pwned", 0o644)},
			wantErr: errdefs.ErrInvalidArgument,
		},
		{
			name:    "write through relative symlink climbing out stays inside",
			entries: []tent{dir("outside/sub", 0o755), dir("d", 0o755), symlink("d/up", "../../outside"), file("d/up/secret", "pwned", 0o644), file("d/up/sub/x", "pwned", 0o644)},
			check: func(t *testing.T, root string) {
				// ../.. resolves to the root itself.
				if data, err := os.ReadFile(filepath.Join(root, "outside", "secret")); err != nil || string(data) != "pwned" {
					t.Errorf("root/outside/secret: %q %v", data, err)
				}
			},
		},
		{
			name: "symlink chain",
			entries: []tent{
				symlink("a", "b"), symlink("b", "c/../../.."), dir("c", 0o755),
				file("a/outside/secret", "pwned", 0o644),
				symlink("loop1", "loop2"), symlink("loop2", "loop1"),
			},
			check: func(t *testing.T, root string) {
				if _, err := os.Stat(filepath.Join(root, "outside", "secret")); err != nil {
					t.Errorf("write through chain not placed inside root: %v", err)
				}
			},
		},
		{
			name:    "symlink loop as parent fails cleanly",
			entries: []tent{symlink("loop1", "loop2"), symlink("loop2", "loop1"), file("loop1/x", "x", 0o644)},
			errText: `"loop1/x"`,
		},
		{
			name:    "file replaces symlink instead of writing through it",
			entries: []tent{symlink("s", "$OUT/secret"), file("s", "pwned", 0o600), symlink("r", "../outside/secret"), file("r", "pwned", 0o600)},
			want:    map[string]string{"s": "file 0600 0:0 pwned", "r": "file 0600 0:0 pwned"},
		},
		{
			name:    "hardlink out by dotdot refused",
			entries: []tent{hardlink("h", "../outside/secret")},
			wantErr: errdefs.ErrInvalidArgument, errText: `"h"`,
		},
		{
			name:    "hardlink to absolute host path refused",
			entries: []tent{hardlink("h", "$OUT/secret")},
			wantErr: errdefs.ErrInvalidArgument, errText: "does not exist",
		},
		{
			name:    "hardlink through symlink out refused",
			entries: []tent{symlink("o", "$OUT"), hardlink("h", "o/secret")},
			wantErr: errdefs.ErrInvalidArgument,
		},
		{
			name:    "hardlink through relative symlink out refused",
			entries: []tent{symlink("o", "../outside"), hardlink("h", "o/secret")},
			wantErr: errdefs.ErrInvalidArgument,
		},
		{
			name:    "hardlink to directory refused",
			entries: []tent{dir("d", 0o755), hardlink("h", "d")},
			wantErr: errdefs.ErrInvalidArgument,
		},
		{
			name:    "whiteout through symlink out stays inside",
			entries: []tent{symlink("o", "$OUT"), symlink("r", "../outside"), file("o/.wh.secret", "", 0o644), file("r/.wh.secret", "", 0o644), file("r/.wh..wh..opq", "", 0o644), file("o/sub/.wh..wh..opq", "", 0o644)},
		},
		{
			name:    "overlay whiteout through symlink out stays inside",
			opts:    ApplyOptions{Overlay: true},
			entries: []tent{dir("outside", 0o755), symlink("r", "../outside"), file("r/.wh.secret", "", 0o644), file("r/sub/.wh..wh..opq", "", 0o644)},
			want: map[string]string{
				"r": "symlink 0:0 -> ../outside", "outside": "dir 0755 0:0", "outside/secret": "char 0000 0:0 0/0", "outside/sub": "dir 0755 0:0",
			},
		},
		{
			name:    "whiteout of dotdot refused",
			entries: []tent{file("a/.wh...", "", 0o644)},
			wantErr: errdefs.ErrInvalidArgument,
		},
		{
			name:    "unsupported entry type refused",
			entries: []tent{{hdr: hdrOf('Z', "weird", 0o644)}},
			wantErr: errdefs.ErrInvalidArgument, errText: "unsupported entry type",
		},
		{
			name:    "size limit",
			opts:    ApplyOptions{MaxSize: 4096},
			entries: []tent{file("big", strings.Repeat("x", 10000), 0o644)},
			wantErr: errdefs.ErrInvalidArgument, errText: "larger than the limit",
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s := newSandbox(t)
			ctx := context.Background()
			if tc.lower != nil {
				if _, err := Apply(ctx, s.root, bytes.NewReader(mkTar(t, tc.lower, s.outside)), ApplyOptions{}); err != nil {
					t.Fatalf("apply lower: %v", err)
				}
			}
			opts := tc.opts
			opts.Name = "sha256:test"
			var warnings []string
			opts.Warnf = func(f string, args ...any) { warnings = append(warnings, fmt.Sprintf(f, args...)) }
			data := mkTar(t, tc.entries, s.outside)
			n, err := Apply(ctx, s.root, bytes.NewReader(data), opts)
			s.check(t)
			if tc.wantErr != nil || (tc.errText != "" && tc.want == nil && tc.check == nil) {
				if err == nil {
					t.Fatalf("Apply succeeded, want an error")
				}
				if tc.wantErr != nil && !errors.Is(err, tc.wantErr) {
					t.Errorf("error %v, want class %v", err, tc.wantErr)
				}
				if !strings.Contains(err.Error(), tc.errText) || !strings.Contains(err.Error(), "sha256:test") {
					t.Errorf("error %q should contain %q and the layer name", err, tc.errText)
				}
				return
			}
			if err != nil {
				t.Fatalf("Apply: %v", err)
			}
			if n != int64(len(data)) {
				t.Errorf("size %d, want %d", n, len(data))
			}
			if tc.want != nil {
				if d := diffTrees(tc.want, describe(t, s.root)); d != "" {
					t.Errorf("tree differs:\n%s", d)
				}
			}
			if tc.check != nil {
				tc.check(t, s.root)
			}
			t.Logf("warnings: %q", warnings)
		})
	}
}

func TestApplyCompression(t *testing.T) {
	entries := []tent{dir("d", 0o755), file("d/f", strings.Repeat("hello ", 1000), 0o644)}
	plain := mkTar(t, entries, "")
	gz := gzipped(t, plain)
	zs := zstded(t, plain)
	truncated := gz[:len(gz)/2]
	corrupt := append([]byte(nil), gz...)
	for i := 20; i < 40; i++ {
		corrupt[i] ^= 0xff
	}
	badCRC := append([]byte(nil), gz...)
	badCRC[len(badCRC)-6] ^= 0xff
	cases := []struct {
		name    string
		data    []byte
		comp    Compression
		wantErr error
		errText string
	}{
		{name: "uncompressed auto", data: plain},
		{name: "gzip auto", data: gz},
		{name: "zstd auto", data: zs},
		{name: "gzip told", data: gz, comp: Gzip},
		{name: "zstd told", data: zs, comp: Zstd},
		{name: "uncompressed told", data: plain, comp: Uncompressed},
		{name: "concatenated gzip members", data: append(gzipped(t, plain[:512]), gzipped(t, plain[512:])...)},
		{name: "told gzip but plain", data: plain, comp: Gzip, wantErr: errdefs.ErrInvalidArgument, errText: "gzip"},
		{name: "truncated gzip", data: truncated, wantErr: errdefs.ErrInvalidArgument, errText: "truncated or corrupt"},
		{name: "corrupt gzip", data: corrupt, wantErr: errdefs.ErrInvalidArgument, errText: "truncated or corrupt"},
		{name: "gzip checksum", data: badCRC, wantErr: errdefs.ErrInvalidArgument, errText: "truncated or corrupt"},
		{name: "truncated zstd", data: zs[:len(zs)-10], wantErr: errdefs.ErrInvalidArgument, errText: "truncated or corrupt"},
		{name: "truncated tar", data: plain[:700], wantErr: errdefs.ErrInvalidArgument, errText: "truncated or corrupt"},
		{name: "xz", data: []byte{0xfd, '7', 'z', 'X', 'Z', 0, 1, 2, 3}, wantErr: errdefs.ErrNotImplemented, errText: "xz"},
		{name: "garbage", data: bytes.Repeat([]byte("garbage!"), 100), wantErr: errdefs.ErrInvalidArgument},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s := newSandbox(t)
			n, err := Apply(context.Background(), s.root, bytes.NewReader(tc.data), ApplyOptions{Compression: tc.comp})
			s.check(t)
			if tc.wantErr != nil {
				if !errors.Is(err, tc.wantErr) || !strings.Contains(err.Error(), tc.errText) {
					t.Fatalf("error %v, want class %v containing %q", err, tc.wantErr, tc.errText)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if n != int64(len(plain)) {
				t.Errorf("size %d, want %d", n, len(plain))
			}
			data, err := os.ReadFile(filepath.Join(s.root, "d/f"))
			if err != nil || string(data) != strings.Repeat("hello ", 1000) {
				t.Errorf("d/f: %d bytes, %v", len(data), err)
			}
		})
	}
}

// failingReader returns data then a non-EOF error, as a network would.
type failingReader struct {
	data []byte
	err  error
}

func (f *failingReader) Read(p []byte) (int, error) {
	if len(f.data) == 0 {
		return 0, f.err
	}
	n := copy(p, f.data)
	f.data = f.data[n:]
	return n, nil
}

func TestApplySourceErrorPassesThrough(t *testing.T) {
	s := newSandbox(t)
	plain := mkTar(t, []tent{file("f", strings.Repeat("x", 5000), 0o644)}, "")
	netErr := errors.New("connection reset")
	_, err := Apply(context.Background(), s.root, &failingReader{data: gzipped(t, plain)[:100], err: netErr}, ApplyOptions{})
	if !errors.Is(err, netErr) || errors.Is(err, errdefs.ErrInvalidArgument) {
		t.Fatalf("error %v: want the source's error, not classed invalid", err)
	}
}

func TestApplyCanceled(t *testing.T) {
	s := newSandbox(t)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err := Apply(ctx, s.root, bytes.NewReader(mkTar(t, []tent{file("f", "x", 0o644)}, "")), ApplyOptions{})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("error %v, want context.Canceled", err)
	}
}

func TestApplySparse(t *testing.T) {
	// A GNU sparse entry declaring a huge size: holes must not be written
	// out as zeros, and absurd sizes are refused.
	cases := []struct {
		name    string
		size    int64
		opts    ApplyOptions
		wantErr error
	}{
		{name: "1 GiB of holes", size: 1 << 30},
		{name: "1 TiB refused", size: 1 << 40, wantErr: errdefs.ErrInvalidArgument},
		{name: "over MaxSize refused", size: 1 << 30, opts: ApplyOptions{MaxSize: 1 << 20}, wantErr: errdefs.ErrInvalidArgument},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s := newSandbox(t)
			_, err := Apply(context.Background(), s.root, bytes.NewReader(sparseTar(t, tc.size)), tc.opts)
			s.check(t)
			if tc.wantErr != nil {
				if !errors.Is(err, tc.wantErr) {
					t.Fatalf("error %v, want %v", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			var st unix.Stat_t
			if err := unix.Stat(filepath.Join(s.root, "sparse"), &st); err != nil {
				t.Fatal(err)
			}
			if st.Size != tc.size || st.Blocks*512 > 1<<20 {
				t.Errorf("sparse file: size %d, %d bytes allocated", st.Size, st.Blocks*512)
			}
			f, err := os.Open(filepath.Join(s.root, "sparse"))
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			head := make([]byte, 5)
			if _, err := io.ReadFull(f, head); err != nil || string(head) != "hello" {
				t.Errorf("data fragment: %q %v", head, err)
			}
		})
	}
}

// sparseTar returns a tarball holding "sparse": "hello" then a hole up to
// size. archive/tar cannot write sparse entries: the PAX header (GNU sparse
// format 1.0, whose map starts the data) is written as a plain entry whose
// type flag is then patched.
func sparseTar(t testing.TB, size int64) []byte {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	var recs string
	for _, kv := range [][2]string{
		{"GNU.sparse.major", "1"}, {"GNU.sparse.minor", "0"},
		{"GNU.sparse.name", "sparse"}, {"GNU.sparse.realsize", fmt.Sprint(size)},
	} {
		recs += paxRecord(kv[0], kv[1])
	}
	if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: "pax", Size: int64(len(recs)), Format: tar.FormatUSTAR}); err != nil {
		t.Fatal(err)
	}
	io.WriteString(tw, recs)
	tw.Flush()
	setTypeflag(buf.Bytes()[:512], tar.TypeXHeader)
	sparseMap := "1\n0\n5\n"
	data := sparseMap + strings.Repeat("\x00", 512-len(sparseMap)) + "hello"
	if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: "GNUSparseFile.0/sparse", Mode: 0o644, Size: int64(len(data)), ModTime: testTime, Format: tar.FormatUSTAR}); err != nil {
		t.Fatal(err)
	}
	io.WriteString(tw, data)
	tw.Close()
	return buf.Bytes()
}

// paxRecord formats one PAX record ("len key=value\n").
func paxRecord(k, v string) string {
	size := len(k) + len(v) + 3
	for {
		r := fmt.Sprintf("%d %s=%s\n", size, k, v)
		if len(r) == size {
			return r
		}
		size = len(r)
	}
}

// setTypeflag changes a ustar header's type flag and fixes its checksum.
func setTypeflag(h []byte, typ byte) {
	h[156] = typ
	copy(h[148:156], "        ")
	sum := 0
	for _, b := range h {
		sum += int(b)
	}
	copy(h[148:156], fmt.Sprintf("%06o\x00 ", sum))
}

func TestCleanName(t *testing.T) {
	for _, c := range []struct{ in, want string }{
		{"a/b", "a/b"}, {"./a//b/", "a/b"}, {"/etc/passwd", "etc/passwd"}, {"a/../b", "b"},
		{".", ""}, {"/", ""}, {"a/..", ""}, {"../a", "!"}, {"a/../../b", "!"}, {"..", "!"}, {"/../a", "!"},
	} {
		got, err := CleanName(c.in)
		if err != nil {
			got = "!"
		}
		if got != c.want {
			t.Errorf("CleanName(%q) = %q, %v; want %q", c.in, got, err, c.want)
		}
	}
}
