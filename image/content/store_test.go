package content

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/skiff-containers/skiff/errdefs"
)

func newStore(t *testing.T) *Store {
	t.Helper()
	s, err := Open(filepath.Join(t.TempDir(), "content"))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func randomBytes(t *testing.T, n int) []byte {
	t.Helper()
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return b
}

func descOf(b []byte) ocispec.Descriptor {
	return ocispec.Descriptor{MediaType: "application/octet-stream", Digest: digest.FromBytes(b), Size: int64(len(b))}
}

// writeBlob writes b in chunks under ref with the given expectation.
func writeBlob(ctx context.Context, s *Store, ref string, expected ocispec.Descriptor, b []byte) error {
	w, err := s.Writer(ctx, ref, expected)
	if err != nil {
		return err
	}
	defer w.Close()
	for len(b) > 0 {
		n := min(len(b), 4096)
		if _, err := w.Write(b[:n]); err != nil {
			return err
		}
		b = b[n:]
	}
	return w.Commit(ctx)
}

// assertClean fails if the store has ingests or blobs other than want.
func assertClean(t *testing.T, s *Store, want ...digest.Digest) {
	t.Helper()
	ents, err := os.ReadDir(filepath.Join(s.Root(), "ingest"))
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		t.Errorf("leftover ingest %s", e.Name())
	}
	var got []string
	if err := s.Walk(context.Background(), func(i Info) error { got = append(got, i.Digest.String()); return nil }); err != nil {
		t.Fatal(err)
	}
	var w []string
	for _, d := range want {
		w = append(w, d.String())
	}
	sort.Strings(got)
	sort.Strings(w)
	if strings.Join(got, ",") != strings.Join(w, ",") {
		t.Errorf("blobs = %v, want %v", got, w)
	}
	// No stray temporaries anywhere under blobs/.
	filepath.WalkDir(filepath.Join(s.Root(), "blobs"), func(p string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() && strings.HasPrefix(d.Name(), ".") {
			t.Errorf("stray file %s", p)
		}
		return nil
	})
}

func TestOpenLayout(t *testing.T) {
	s := newStore(t)
	b, err := os.ReadFile(filepath.Join(s.Root(), "oci-layout"))
	if err != nil {
		t.Fatal(err)
	}
	if string(b) != `{"imageLayoutVersion":"1.0.0"}` {
		t.Errorf("oci-layout = %s", b)
	}
	// Re-opening an existing store works and keeps blobs.
	data := []byte("hello")
	if err := writeBlob(context.Background(), s, "r", descOf(data), data); err != nil {
		t.Fatal(err)
	}
	s2, err := Open(s.Root())
	if err != nil {
		t.Fatal(err)
	}
	if ok, err := s2.Exists(context.Background(), digest.FromBytes(data)); !ok || err != nil {
		t.Errorf("Exists after reopen = %v, %v", ok, err)
	}
	if _, err := Open(""); !errdefs.IsInvalidArgument(err) {
		t.Errorf("Open(\"\") = %v, want ErrInvalidArgument", err)
	}
}

func TestWriteCommit(t *testing.T) {
	ctx := context.Background()
	good := []byte("the quick brown fox")
	other := []byte("the quick brown cat")
	tests := []struct {
		name     string
		expected ocispec.Descriptor
		data     []byte
		wantErr  func(error) bool
		mention  string
		stored   bool
	}{
		{name: "digest and size", expected: descOf(good), data: good, stored: true},
		{name: "no expectation", expected: ocispec.Descriptor{}, data: good, stored: true},
		{name: "size only", expected: ocispec.Descriptor{Size: int64(len(good))}, data: good, stored: true},
		{name: "empty blob", expected: descOf(nil), data: nil, stored: true},
		{name: "digest mismatch", expected: ocispec.Descriptor{Digest: digest.FromBytes(good), Size: int64(len(other))}, data: other,
			wantErr: errdefs.IsInvalidArgument, mention: "digest mismatch"},
		{name: "truncated", expected: descOf(good), data: good[:5],
			wantErr: errdefs.IsInvalidArgument, mention: "size mismatch: got 5 bytes, expected 19"},
		{name: "too long", expected: ocispec.Descriptor{Digest: digest.FromBytes(good), Size: 5}, data: good,
			wantErr: errdefs.IsInvalidArgument, mention: "more than the expected 5 bytes"},
		{name: "size only mismatch", expected: ocispec.Descriptor{Size: 100}, data: good,
			wantErr: errdefs.IsInvalidArgument, mention: "size mismatch"},
		{name: "malformed digest", expected: ocispec.Descriptor{Digest: "sha256:../../etc", Size: 1}, data: good,
			wantErr: errdefs.IsInvalidArgument, mention: "sha256:../../etc"},
		{name: "unknown algorithm", expected: ocispec.Descriptor{Digest: "md5:d41d8cd98f00b204e9800998ecf8427e", Size: 0}, data: nil,
			wantErr: errdefs.IsInvalidArgument, mention: "md5"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newStore(t)
			err := writeBlob(ctx, s, "ref-"+tt.name, tt.expected, tt.data)
			if tt.wantErr == nil {
				if err != nil {
					t.Fatalf("write: %v", err)
				}
			} else {
				if err == nil || !tt.wantErr(err) {
					t.Fatalf("write error = %v, want a classified error", err)
				}
				if !strings.Contains(err.Error(), tt.mention) {
					t.Errorf("error %q does not mention %q", err, tt.mention)
				}
				var ve *VerifyError
				if strings.Contains(tt.mention, "mismatch") && !errors.As(err, &ve) {
					t.Errorf("error %v is not a *VerifyError", err)
				}
			}
			dgst := digest.FromBytes(tt.data)
			if !tt.stored {
				assertClean(t, s)
				if ok, _ := s.Exists(ctx, dgst); ok {
					t.Errorf("refused blob %s is visible", dgst)
				}
				return
			}
			assertClean(t, s, dgst)
			ra, err := s.ReaderAt(ctx, descOf(tt.data))
			if err != nil {
				t.Fatal(err)
			}
			defer ra.Close()
			got, err := io.ReadAll(io.NewSectionReader(ra, 0, ra.Size()))
			if err != nil || !bytes.Equal(got, tt.data) {
				t.Errorf("read back %q, %v; want %q", got, err, tt.data)
			}
			info, err := s.Info(ctx, dgst)
			if err != nil || info.Size != int64(len(tt.data)) || info.Digest != dgst {
				t.Errorf("Info = %+v, %v", info, err)
			}
			fi, err := os.Stat(filepath.Join(s.Root(), "blobs", "sha256", dgst.Encoded()))
			if err != nil || fi.Mode().Perm() != 0o444 {
				t.Errorf("blob file mode %v, %v; want 0444", fi.Mode(), err)
			}
		})
	}
}

func TestWriterAlreadyExists(t *testing.T) {
	ctx := context.Background()
	s := newStore(t)
	data := []byte("content")
	if err := writeBlob(ctx, s, "a", descOf(data), data); err != nil {
		t.Fatal(err)
	}
	// Known up front.
	if _, err := s.Writer(ctx, "b", descOf(data)); !errdefs.IsAlreadyExists(err) {
		t.Errorf("Writer for a stored blob = %v, want ErrAlreadyExists", err)
	}
	// Found only at commit (no digest given up front).
	err := writeBlob(ctx, s, "c", ocispec.Descriptor{}, data)
	if !errdefs.IsAlreadyExists(err) {
		t.Errorf("Commit of a stored blob = %v, want ErrAlreadyExists", err)
	}
	assertClean(t, s, digest.FromBytes(data))
}

func TestWriterMisuse(t *testing.T) {
	ctx := context.Background()
	s := newStore(t)
	if _, err := s.Writer(ctx, "", ocispec.Descriptor{}); !errdefs.IsInvalidArgument(err) {
		t.Errorf("empty ref: %v", err)
	}
	if _, err := s.Writer(ctx, "x", ocispec.Descriptor{Size: -1}); !errdefs.IsInvalidArgument(err) {
		t.Errorf("negative size: %v", err)
	}
	data := []byte("x")
	w, err := s.Writer(ctx, "x", descOf(data))
	if err != nil {
		t.Fatal(err)
	}
	w.Write(data)
	if err := w.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write(data); !errdefs.IsFailedPrecondition(err) {
		t.Errorf("Write after Commit = %v, want ErrFailedPrecondition", err)
	}
	if err := w.Close(); err != nil {
		t.Errorf("Close after Commit = %v", err)
	}
	// The committed blob survives Close.
	assertClean(t, s, digest.FromBytes(data))

	// Close without Commit aborts.
	w, err = s.Writer(ctx, "y", ocispec.Descriptor{})
	if err != nil {
		t.Fatal(err)
	}
	w.Write([]byte("partial"))
	if w.Offset() != 7 || w.Digest() != digest.FromString("partial") {
		t.Errorf("Offset %d Digest %s", w.Offset(), w.Digest())
	}
	if refs, _ := s.Ingests(ctx); len(refs) != 1 || refs[0] != "y" {
		t.Errorf("Ingests during write = %v, want [y]", refs)
	}
	w.Close()
	w.Close()
	if err := w.Commit(ctx); !errdefs.IsFailedPrecondition(err) {
		t.Errorf("Commit after Close = %v", err)
	}
	assertClean(t, s, digest.FromBytes(data))
}

func TestDeleteInfoReaderAt(t *testing.T) {
	ctx := context.Background()
	s := newStore(t)
	data := []byte("abc")
	d := digest.FromBytes(data)
	if _, err := s.Info(ctx, d); !errdefs.IsNotFound(err) {
		t.Errorf("Info missing = %v", err)
	}
	if _, err := s.ReaderAt(ctx, descOf(data)); !errdefs.IsNotFound(err) {
		t.Errorf("ReaderAt missing = %v", err)
	}
	if err := s.Delete(ctx, d); !errdefs.IsNotFound(err) {
		t.Errorf("Delete missing = %v", err)
	}
	if _, err := s.Info(ctx, "sha256:zz"); !errdefs.IsInvalidArgument(err) {
		t.Errorf("Info malformed = %v", err)
	}
	if err := writeBlob(ctx, s, "r", descOf(data), data); err != nil {
		t.Fatal(err)
	}
	if _, err := s.ReaderAt(ctx, ocispec.Descriptor{Digest: d, Size: 99}); !errdefs.IsFailedPrecondition(err) {
		t.Errorf("ReaderAt wrong size = %v", err)
	}
	if err := s.Delete(ctx, d); err != nil {
		t.Fatal(err)
	}
	assertClean(t, s)
}

func TestWalkStops(t *testing.T) {
	ctx := context.Background()
	s := newStore(t)
	for _, b := range []string{"1", "2", "3"} {
		if err := writeBlob(ctx, s, b, descOf([]byte(b)), []byte(b)); err != nil {
			t.Fatal(err)
		}
	}
	stop := errors.New("stop")
	n := 0
	err := s.Walk(ctx, func(Info) error { n++; return stop })
	if err != stop || n != 1 {
		t.Errorf("Walk = %v after %d calls, want stop after 1", err, n)
	}
}

// TestConcurrentWritersSameBlob has many goroutines write the same blob,
// under the same ref (they serialise) and under different refs (they race
// to publish): exactly one correct blob results, every writer sees success
// or ErrAlreadyExists, and no ingest remains.
func TestConcurrentWritersSameBlob(t *testing.T) {
	for _, sameRef := range []bool{true, false} {
		name := "different refs"
		if sameRef {
			name = "same ref"
		}
		t.Run(name, func(t *testing.T) {
			ctx := context.Background()
			s := newStore(t)
			data := randomBytes(t, 1<<20)
			desc := descOf(data)
			const n = 16
			var wg sync.WaitGroup
			errs := make([]error, n)
			for i := range n {
				wg.Add(1)
				go func() {
					defer wg.Done()
					ref := "blob-" + desc.Digest.String()
					if !sameRef {
						ref += string(rune('a' + i))
					}
					// Different refs: give no digest up front so that all of
					// them really write and race at commit.
					exp := desc
					if !sameRef {
						exp = ocispec.Descriptor{Size: desc.Size}
					}
					errs[i] = writeBlob(ctx, s, ref, exp, data)
				}()
			}
			wg.Wait()
			wins := 0
			for i, err := range errs {
				switch {
				case err == nil:
					wins++
				case errdefs.IsAlreadyExists(err):
				default:
					t.Errorf("writer %d: %v", i, err)
				}
			}
			if wins != 1 {
				t.Errorf("%d writers committed, want exactly 1", wins)
			}
			assertClean(t, s, desc.Digest)
			got, err := os.ReadFile(filepath.Join(s.Root(), "blobs", "sha256", desc.Digest.Encoded()))
			if err != nil || !bytes.Equal(got, data) {
				t.Errorf("stored blob differs from the data (%v)", err)
			}
		})
	}
}

// TestSecondWriterWaits checks that a writer of a busy ref waits, and
// proceeds once the first aborts; and that its ctx bounds the wait.
func TestSecondWriterWaits(t *testing.T) {
	ctx := context.Background()
	s := newStore(t)
	data := []byte("payload")
	w1, err := s.Writer(ctx, "same", descOf(data))
	if err != nil {
		t.Fatal(err)
	}
	short, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
	defer cancel()
	if _, err := s.Writer(short, "same", descOf(data)); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("second writer with short ctx = %v, want DeadlineExceeded", err)
	}
	done := make(chan error, 1)
	go func() { done <- writeBlob(ctx, s, "same", descOf(data), data) }()
	select {
	case err := <-done:
		t.Fatalf("second writer finished while the first held the ref: %v", err)
	case <-time.After(100 * time.Millisecond):
	}
	w1.Write([]byte("garbage"))
	w1.Close() // abort: the waiter takes over and writes the real content
	if err := <-done; err != nil {
		t.Fatalf("second writer after abort: %v", err)
	}
	assertClean(t, s, descOf(data).Digest)
}

// TestStaleIngestIsReplaced simulates a process that died mid-write.
func TestStaleIngestIsReplaced(t *testing.T) {
	ctx := context.Background()
	s := newStore(t)
	dir := filepath.Join(s.Root(), "ingest", ingestKey("r"))
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(dir, "data"), []byte("stale stale stale"), 0o600)
	data := []byte("fresh")
	if err := writeBlob(ctx, s, "r", descOf(data), data); err != nil {
		t.Fatal(err)
	}
	assertClean(t, s, descOf(data).Digest)
}

// TestDiskFull writes into a store on a 1 MiB tmpfs until it fills up: the
// error names the condition, and neither a partial blob nor an ingest
// remains.
func TestDiskFull(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Fatal("this test mounts a tmpfs and needs root (the test suite runs as root)")
	}
	mnt := t.TempDir()
	if err := syscall.Mount("tmpfs", mnt, "tmpfs", 0, "size=1m"); err != nil {
		t.Fatalf("mount tmpfs: %v", err)
	}
	t.Cleanup(func() {
		if err := syscall.Unmount(mnt, 0); err != nil {
			t.Errorf("unmount %s: %v", mnt, err)
		}
	})
	s, err := Open(filepath.Join(mnt, "content"))
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	small := randomBytes(t, 100<<10)
	if err := writeBlob(ctx, s, "small", descOf(small), small); err != nil {
		t.Fatalf("a 100 KiB blob should fit: %v", err)
	}
	for _, tt := range []struct {
		name string
		exp  ocispec.Descriptor
	}{{"known digest", ocispec.Descriptor{}}, {"unknown digest", ocispec.Descriptor{}}} {
		t.Run(tt.name, func(t *testing.T) {
			big := randomBytes(t, 2<<20)
			exp := tt.exp
			if tt.name == "known digest" {
				exp = descOf(big)
			}
			err := writeBlob(ctx, s, "big", exp, big)
			if !errors.Is(err, syscall.ENOSPC) {
				t.Fatalf("write 2 MiB into 1 MiB = %v, want ENOSPC", err)
			}
			if !strings.Contains(err.Error(), "disk full") || !strings.Contains(err.Error(), mnt) {
				t.Errorf("error %q should say the disk is full and where", err)
			}
			assertClean(t, s, descOf(small).Digest)
		})
	}
	// The space is usable again afterwards.
	again := randomBytes(t, 200<<10)
	if err := writeBlob(ctx, s, "again", descOf(again), again); err != nil {
		t.Errorf("write after the failed one: %v", err)
	}
}
