package archive

import (
	"archive/tar"
	"bytes"
	"context"
	"os"
	"path/filepath"
	"testing"

	"golang.org/x/sys/unix"
)

// fuzzPwned is where the seeds aim through absolute symlinks: the host's
// /tmp, outside any apply's target.
const fuzzPwned = "/tmp/skiff-fuzz-apply-pwned"

// FuzzApply feeds Apply hostile tarballs (raw, gzip and zstd) and checks
// that nothing is ever created or changed outside the target directory,
// whether or not Apply succeeds.
func FuzzApply(f *testing.F) {
	seeds := [][]tent{
		{file("../outside/pwned", "x", 0o644)},
		{file("a/../../outside/pwned", "x", 0o644)},
		{file("/tmp/skiff-fuzz-apply-pwned", "x", 0o644)},
		{symlink("t", "/tmp"), file("t/skiff-fuzz-apply-pwned", "x", 0o644)},
		{dir("tmp", 0o755), symlink("t", "/tmp"), file("t/skiff-fuzz-apply-pwned", "x", 0o644)},
		{symlink("up", "../outside"), file("up/pwned", "x", 0o644), file("up/secret", "x", 0o644)},
		{dir("outside", 0o755), symlink("up", "../outside"), file("up/secret", "x", 0o644)},
		{symlink("a", "b"), symlink("b", "../.."), file("a/outside/pwned", "x", 0o644)},
		{symlink("s", "../outside/secret"), file("s", "x", 0o644)},
		{hardlink("h", "../outside/secret")},
		{symlink("o", "../outside"), hardlink("h", "o/secret")},
		{symlink("o", "../outside"), file("o/.wh.secret", "", 0o644), file("o/.wh..wh..opq", "", 0o644), file("o/sub/.wh..wh..opq", "", 0o644)},
		{file(".wh...", "", 0o644), file(".wh..", "", 0o644)},
		{dir(".wh..wh.plnk", 0o700), file(".wh..wh.plnk/1", "x", 0o644), hardlink("l", ".wh..wh.plnk/1"), hardlink("m", ".wh..wh.plnk/../../outside/secret")},
		{device(tar.TypeChar, "null", 1, 3), device(tar.TypeBlock, "b", 7, 0), device(tar.TypeFifo, "p", 0, 0), file("null", "x", 0o644)},
		{with(file("x", "y", 0o4755), func(h *tar.Header) {
			h.PAXRecords = map[string]string{"SCHILY.xattr.user.a": "b", "SCHILY.xattr.trusted.overlay.redirect": "/etc"}
		})},
		{dir("d", 0o000), file("d/f", "x", 0o000), dir("d", 0o755)},
	}
	for _, s := range seeds {
		data := mkTar(f, s, "")
		f.Add(data, false)
		f.Add(data, true)
		f.Add(gzipped(f, data), false)
		f.Add(zstded(f, data), true)
	}
	f.Add(sparseTar(f, 1<<40), false)
	f.Fuzz(func(t *testing.T, data []byte, overlay bool) {
		s := newSandbox(t)
		opts := ApplyOptions{Overlay: overlay, AllowDevices: true, MaxSize: 8 << 20}
		Apply(context.Background(), s.root, bytes.NewReader(data), opts)
		s.check(t)
		var st unix.Stat_t
		if err := unix.Lstat(fuzzPwned, &st); err == nil {
			os.Remove(fuzzPwned)
			t.Fatalf("apply created %s on the host", fuzzPwned)
		}
		if err := unix.Lstat(filepath.Join(filepath.Dir(s.tmp), "pwned"), &st); err == nil {
			t.Fatalf("apply created a file next to the sandbox")
		}
	})
}
