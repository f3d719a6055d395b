package content

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"
	"time"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/skiff-containers/skiff/errdefs"
)

// Writer writes one blob through the ingest area. Write appends; Commit
// verifies, syncs and publishes the blob; Close without a successful
// Commit aborts and removes everything the write created. Callers should
// always `defer w.Close()`.
//
// A Writer is not safe for concurrent use.
type Writer interface {
	// Write appends p. Writing more bytes than the expected size is an
	// error. After an error the write is aborted (its ingest is removed)
	// and every later call fails.
	Write(p []byte) (int, error)
	// Close aborts the write unless it was committed; it releases the
	// ingest lock. It is safe to call more than once.
	Close() error
	// Digest returns the digest of the bytes written so far.
	Digest() digest.Digest
	// Offset returns the number of bytes written so far.
	Offset() int64
	// Commit checks the size and digest against the expected descriptor
	// (when given), fsyncs, and renames the blob into place. On a
	// mismatch nothing becomes visible and the error is a *VerifyError. If
	// the blob is already stored the error is ErrAlreadyExists, which
	// callers should treat as success.
	Commit(ctx context.Context) error
}

// VerifyError reports a blob whose size or digest is not the expected one.
// It is of the ErrInvalidArgument class: the data came from an untrusted
// source and was refused.
type VerifyError struct {
	Ref      string
	Expected ocispec.Descriptor
	Size     int64         // bytes actually written
	Digest   digest.Digest // digest of the bytes actually written; "" if the size was already wrong
	TooLarge bool          // more bytes were offered than the expected size
}

func (e *VerifyError) Error() string {
	switch {
	case e.TooLarge:
		return fmt.Sprintf("blob %s (ingest %q): more than the expected %d bytes: refused, not stored; the source is sending a different blob than its descriptor says", e.Expected.Digest, e.Ref, e.Expected.Size)
	case e.Size != e.Expected.Size:
		what := e.Expected.Digest.String()
		if what == "" {
			what = "of unknown digest"
		}
		return fmt.Sprintf("blob %s (ingest %q): size mismatch: got %d bytes, expected %d (truncated or wrong content): refused, not stored; retry the transfer", what, e.Ref, e.Size, e.Expected.Size)
	default:
		return fmt.Sprintf("blob %s (ingest %q): digest mismatch: the %d bytes received hash to %s: refused, not stored; the source served corrupt or different content", e.Expected.Digest, e.Ref, e.Size, e.Digest)
	}
}

// Unwrap classifies the error as ErrInvalidArgument.
func (e *VerifyError) Unwrap() error { return errdefs.ErrInvalidArgument }

// Writer starts a write of a blob under ref, a caller-chosen name for the
// write (use the same ref for the same blob, for example its digest, so
// that concurrent writers of one blob serialise instead of duplicating the
// work).
//
// expected.Digest, if set, is the digest the content must have; the size
// is then checked too (expected.Size). Without a digest, expected.Size is
// checked if positive and the digest is whatever the content hashes to
// (sha256).
//
// If the blob is already stored, Writer returns an ErrAlreadyExists error.
// If another writer holds ref, Writer waits for it to finish (or for ctx);
// if that writer committed the blob, the result is ErrAlreadyExists.
func (s *Store) Writer(ctx context.Context, ref string, expected ocispec.Descriptor) (Writer, error) {
	if ref == "" {
		return nil, fmt.Errorf("%w: content writer: empty ingest ref", errdefs.ErrInvalidArgument)
	}
	alg := digest.Canonical
	if expected.Digest != "" {
		if err := validateDigest(expected.Digest); err != nil {
			return nil, fmt.Errorf("write blob: %w", err)
		}
		alg = expected.Digest.Algorithm()
	}
	if expected.Size < 0 {
		return nil, fmt.Errorf("%w: write blob %s: negative size %d", errdefs.ErrInvalidArgument, expected.Digest, expected.Size)
	}
	if err := s.alreadyStored(ctx, expected.Digest); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(filepath.Join(s.root, "blobs", alg.String()), 0o700); err != nil {
		return nil, fmt.Errorf("write blob %s: %w", expected.Digest, diskErr(err, s.root))
	}
	dir := filepath.Join(s.root, "ingest", ingestKey(ref))
	lock, err := acquire(ctx, dir)
	if err != nil {
		return nil, fmt.Errorf("write blob %s (ingest %q): %w", expected.Digest, ref, diskErr(err, s.root))
	}
	w := &writer{s: s, ref: ref, dir: dir, lock: lock, expected: expected, digester: alg.Digester()}
	w.sizeKnown = expected.Digest != "" || expected.Size > 0
	// Checked again under the lock: the writer we waited for may have
	// committed it.
	if err := s.alreadyStored(ctx, expected.Digest); err != nil {
		w.abort()
		return nil, err
	}
	if err := os.WriteFile(filepath.Join(dir, "ref"), []byte(ref), 0o600); err != nil {
		w.abort()
		return nil, fmt.Errorf("write blob %s (ingest %q): %w", expected.Digest, ref, diskErr(err, s.root))
	}
	// O_TRUNC: data left by a process that died mid-write is discarded.
	f, err := os.OpenFile(filepath.Join(dir, "data"), os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		w.abort()
		return nil, fmt.Errorf("write blob %s (ingest %q): %w", expected.Digest, ref, diskErr(err, s.root))
	}
	w.f = f
	return w, nil
}

func (s *Store) alreadyStored(ctx context.Context, dgst digest.Digest) error {
	if dgst == "" {
		return nil
	}
	ok, err := s.Exists(ctx, dgst)
	if err != nil {
		return err
	}
	if ok {
		return fmt.Errorf("blob %s: %w in content store %s", dgst, errdefs.ErrAlreadyExists, s.root)
	}
	return nil
}

// acquire creates (if needed) and exclusively locks the ingest directory
// dir, waiting for another holder. It guards against the holder removing
// the directory between our open and our lock by comparing inodes.
func acquire(ctx context.Context, dir string) (*os.File, error) {
	wait := 5 * time.Millisecond
	for {
		if err := os.Mkdir(dir, 0o700); err != nil && !errors.Is(err, fs.ErrExist) {
			return nil, err
		}
		d, err := os.Open(dir)
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				continue // removed by the previous holder; recreate
			}
			return nil, err
		}
		err = syscall.Flock(int(d.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
		if err == nil {
			if sameFile(d, dir) {
				return d, nil
			}
			// We locked a directory that its holder removed after we
			// opened it; start again on the new one.
			d.Close()
			continue
		}
		d.Close()
		if !errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, fmt.Errorf("lock ingest %s: %w", dir, err)
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("waiting for another writer of the same blob: %w", ctx.Err())
		case <-time.After(wait):
		}
		if wait < 100*time.Millisecond {
			wait *= 2
		}
	}
}

func sameFile(f *os.File, path string) bool {
	a, err := f.Stat()
	if err != nil {
		return false
	}
	b, err := os.Stat(path)
	if err != nil {
		return false
	}
	return os.SameFile(a, b)
}

type writer struct {
	s         *Store
	ref       string
	dir       string
	lock      *os.File
	f         *os.File
	expected  ocispec.Descriptor
	sizeKnown bool
	digester  digest.Digester
	offset    int64
	err       error // sticky: set once the write failed, was committed or closed
}

func (w *writer) Digest() digest.Digest { return w.digester.Digest() }
func (w *writer) Offset() int64         { return w.offset }

func (w *writer) Write(p []byte) (int, error) {
	if w.err != nil {
		return 0, w.err
	}
	if w.sizeKnown && w.offset+int64(len(p)) > w.expected.Size {
		w.fail(&VerifyError{Ref: w.ref, Expected: w.expected, Size: w.offset + int64(len(p)), TooLarge: true})
		return 0, w.err
	}
	n, err := w.f.Write(p)
	w.digester.Hash().Write(p[:n])
	w.offset += int64(n)
	if err != nil {
		w.fail(fmt.Errorf("write blob %s (ingest %q) at offset %d: %w", w.expected.Digest, w.ref, w.offset, diskErr(err, w.s.root)))
		return n, w.err
	}
	return n, nil
}

func (w *writer) Commit(ctx context.Context) error {
	if w.err != nil {
		return w.err
	}
	if err := ctx.Err(); err != nil {
		w.fail(fmt.Errorf("commit blob %s (ingest %q): %w", w.expected.Digest, w.ref, err))
		return w.err
	}
	if w.sizeKnown && w.offset != w.expected.Size {
		w.fail(&VerifyError{Ref: w.ref, Expected: w.expected, Size: w.offset})
		return w.err
	}
	dgst := w.digester.Digest()
	if w.expected.Digest != "" && dgst != w.expected.Digest {
		w.fail(&VerifyError{Ref: w.ref, Expected: w.expected, Size: w.offset, Digest: dgst})
		return w.err
	}
	fail := func(step string, err error) error {
		w.fail(fmt.Errorf("commit blob %s (ingest %q): %s: %w", dgst, w.ref, step, diskErr(err, w.s.root)))
		return w.err
	}
	if err := w.f.Chmod(0o444); err != nil {
		return fail("chmod", err)
	}
	if err := w.f.Sync(); err != nil {
		return fail("fsync", err)
	}
	err := w.f.Close()
	w.f = nil
	if err != nil {
		return fail("close", err)
	}
	target, err := w.s.BlobPath(dgst)
	if err != nil {
		return fail("target", err)
	}
	// link(2) publishes atomically and never replaces: if another writer
	// (under another ref) got there first, its identical blob stays.
	if err := os.Link(filepath.Join(w.dir, "data"), target); err != nil {
		if errors.Is(err, fs.ErrExist) {
			w.fail(fmt.Errorf("blob %s: %w in content store %s", dgst, errdefs.ErrAlreadyExists, w.s.root))
			return w.err
		}
		return fail("publish", err)
	}
	if err := syncDir(filepath.Dir(target)); err != nil {
		os.Remove(target)
		return fail("fsync directory", err)
	}
	w.release()
	w.err = fmt.Errorf("%w: blob %s already committed", errdefs.ErrFailedPrecondition, dgst)
	return nil
}

func (w *writer) Close() error {
	if w.err == nil {
		w.err = fmt.Errorf("%w: content writer for %q already closed", errdefs.ErrFailedPrecondition, w.ref)
	}
	w.abort()
	return nil
}

// fail records err as the write's final error and removes the ingest.
func (w *writer) fail(err error) {
	w.err = err
	w.abort()
}

// abort removes the ingest and releases the lock; it is idempotent.
func (w *writer) abort() {
	if w.f != nil {
		w.f.Close()
		w.f = nil
	}
	w.release()
}

// release removes the ingest directory while still holding its lock, then
// unlocks: a waiter that opened the old directory notices the inode change.
func (w *writer) release() {
	if w.lock == nil {
		return
	}
	os.Remove(filepath.Join(w.dir, "data"))
	os.Remove(filepath.Join(w.dir, "ref"))
	os.Remove(w.dir)
	w.lock.Close() // closing the last descriptor drops the flock
	w.lock = nil
}
