// Package content owns skiff's on-disk blob store: content-addressed blobs
// in the OCI image-layout arrangement (blobs/<algorithm>/<hex>) under a
// root directory, written through an ingest area so that a blob becomes
// visible only once complete, verified (size and digest), synced and
// atomically renamed into place.
//
// The store knows nothing about registries or about what a blob means
// (manifest, config, layer): it stores bytes by digest. Higher layers keep
// the references that say which blobs are in use.
//
// Layout of a store rooted at R:
//
//	R/oci-layout                    {"imageLayoutVersion":"1.0.0"}
//	R/blobs/sha256/<hex>            committed blobs, read-only (0444)
//	R/ingest/<key>/                 one in-progress write, locked by its writer
//	R/ingest/<key>/data             the bytes written so far
//	R/ingest/<key>/ref              the writer's ref, for diagnostics
//
// Concurrency: writers are keyed by a caller-chosen ref (for example the
// digest being fetched). A second Writer for a ref that is being written
// waits (flock on the ingest directory, so across processes too) until the
// first one commits or aborts; if the first one committed, it then gets
// ErrAlreadyExists. Two writers with different refs for the same digest
// both write, and the second commit reports ErrAlreadyExists without
// touching the stored blob.
package content

import (
	"context"
	"crypto/sha256"
	_ "crypto/sha512" // registers sha384 and sha512 for go-digest
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"
	"time"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/skiff-containers/skiff/errdefs"
)

// Info describes a committed blob.
type Info struct {
	Digest    digest.Digest
	Size      int64
	CreatedAt time.Time // when the blob was committed (the file's mtime)
}

// ReaderAtCloser reads a committed blob at arbitrary offsets.
type ReaderAtCloser interface {
	io.ReaderAt
	io.Closer
	// Size is the blob's size in bytes.
	Size() int64
}

// Store is a content-addressed blob store rooted at a directory. It is safe
// for concurrent use by goroutines and by several processes sharing the
// root.
type Store struct {
	root string
}

// Open opens the store rooted at root, creating the directory layout if it
// is missing.
func Open(root string) (*Store, error) {
	if root == "" {
		return nil, fmt.Errorf("%w: content store root is empty", errdefs.ErrInvalidArgument)
	}
	abs, err := filepath.Abs(root)
	if err != nil {
		return nil, fmt.Errorf("content store %s: %w", root, err)
	}
	for _, d := range []string{filepath.Join(abs, "blobs", digest.SHA256.String()), filepath.Join(abs, "ingest")} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			return nil, fmt.Errorf("open content store %s: %w", abs, diskErr(err, abs))
		}
	}
	layout := filepath.Join(abs, ocispec.ImageLayoutFile)
	if _, err := os.Stat(layout); errors.Is(err, fs.ErrNotExist) {
		data := []byte(`{"imageLayoutVersion":"` + ocispec.ImageLayoutVersion + `"}`)
		if err := writeFileAtomic(layout, data, 0o644); err != nil {
			return nil, fmt.Errorf("open content store %s: write %s: %w", abs, ocispec.ImageLayoutFile, diskErr(err, abs))
		}
	}
	return &Store{root: abs}, nil
}

// Root returns the store's root directory (absolute).
func (s *Store) Root() string { return s.root }

// BlobPath returns the path where the blob dgst is (or would be) stored. It
// validates the digest, so a malformed one cannot name a path outside the
// store.
func (s *Store) BlobPath(dgst digest.Digest) (string, error) {
	if err := validateDigest(dgst); err != nil {
		return "", err
	}
	return filepath.Join(s.root, "blobs", dgst.Algorithm().String(), dgst.Encoded()), nil
}

func validateDigest(dgst digest.Digest) error {
	if err := dgst.Validate(); err != nil {
		return fmt.Errorf("%w: digest %q: %v", errdefs.ErrInvalidArgument, dgst, err)
	}
	return nil
}

// Info returns the size and commit time of the blob dgst, or an
// ErrNotFound error.
func (s *Store) Info(ctx context.Context, dgst digest.Digest) (Info, error) {
	p, err := s.BlobPath(dgst)
	if err != nil {
		return Info{}, err
	}
	fi, err := os.Stat(p)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return Info{}, fmt.Errorf("blob %s: %w in content store %s", dgst, errdefs.ErrNotFound, s.root)
		}
		return Info{}, fmt.Errorf("blob %s: %w", dgst, err)
	}
	return Info{Digest: dgst, Size: fi.Size(), CreatedAt: fi.ModTime()}, nil
}

// Exists reports whether the blob dgst is committed. An error other than
// not-found (a malformed digest, an unreadable store) is returned as such.
func (s *Store) Exists(ctx context.Context, dgst digest.Digest) (bool, error) {
	_, err := s.Info(ctx, dgst)
	if errdefs.IsNotFound(err) {
		return false, nil
	}
	return err == nil, err
}

type blobReader struct {
	*os.File
	size int64
}

func (r *blobReader) Size() int64 { return r.size }

// ReaderAt opens the committed blob desc.Digest for reading. If desc.Size
// is set (non-zero) it must match the stored size, else the error is
// ErrFailedPrecondition: the descriptor and the store disagree.
func (s *Store) ReaderAt(ctx context.Context, desc ocispec.Descriptor) (ReaderAtCloser, error) {
	p, err := s.BlobPath(desc.Digest)
	if err != nil {
		return nil, err
	}
	f, err := os.Open(p)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("blob %s: %w in content store %s", desc.Digest, errdefs.ErrNotFound, s.root)
		}
		return nil, fmt.Errorf("blob %s: %w", desc.Digest, err)
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("blob %s: %w", desc.Digest, err)
	}
	if desc.Size != 0 && fi.Size() != desc.Size {
		f.Close()
		return nil, fmt.Errorf("%w: blob %s is %d bytes in the store but the descriptor says %d", errdefs.ErrFailedPrecondition, desc.Digest, fi.Size(), desc.Size)
	}
	return &blobReader{File: f, size: fi.Size()}, nil
}

// Delete removes the committed blob dgst, or returns an ErrNotFound error.
// Readers that have it open keep reading the old content.
func (s *Store) Delete(ctx context.Context, dgst digest.Digest) error {
	p, err := s.BlobPath(dgst)
	if err != nil {
		return err
	}
	if err := os.Remove(p); err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("delete blob %s: %w in content store %s", dgst, errdefs.ErrNotFound, s.root)
		}
		return fmt.Errorf("delete blob %s: %w", dgst, err)
	}
	return nil
}

// Walk calls fn for each committed blob, in no particular order, until fn
// returns an error (which Walk returns) or the blobs are exhausted. Files
// under blobs/ that are not valid blobs of a known algorithm are skipped.
func (s *Store) Walk(ctx context.Context, fn func(Info) error) error {
	blobs := filepath.Join(s.root, "blobs")
	algs, err := os.ReadDir(blobs)
	if err != nil {
		return fmt.Errorf("walk content store %s: %w", s.root, err)
	}
	for _, a := range algs {
		alg := digest.Algorithm(a.Name())
		if !a.IsDir() || !alg.Available() {
			continue
		}
		ents, err := os.ReadDir(filepath.Join(blobs, a.Name()))
		if err != nil {
			return fmt.Errorf("walk content store %s: %w", s.root, err)
		}
		for _, e := range ents {
			if err := ctx.Err(); err != nil {
				return err
			}
			d := digest.NewDigestFromEncoded(alg, e.Name())
			if !e.Type().IsRegular() || d.Validate() != nil {
				continue
			}
			fi, err := e.Info()
			if err != nil {
				if errors.Is(err, fs.ErrNotExist) {
					continue // deleted meanwhile
				}
				return fmt.Errorf("walk content store %s: %w", s.root, err)
			}
			if err := fn(Info{Digest: d, Size: fi.Size(), CreatedAt: fi.ModTime()}); err != nil {
				return err
			}
		}
	}
	return nil
}

// Ingests returns the refs of the writes in progress (or left behind by a
// process that died mid-write).
func (s *Store) Ingests(ctx context.Context) ([]string, error) {
	dir := filepath.Join(s.root, "ingest")
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("list ingests of content store %s: %w", s.root, err)
	}
	var refs []string
	for _, e := range ents {
		ref, err := os.ReadFile(filepath.Join(dir, e.Name(), "ref"))
		if err != nil {
			ref = []byte(e.Name())
		}
		refs = append(refs, string(ref))
	}
	return refs, nil
}

// ingestKey maps a caller's ref (any string) to a safe directory name.
func ingestKey(ref string) string {
	sum := sha256.Sum256([]byte(ref))
	return hex.EncodeToString(sum[:])
}

// diskErr turns ENOSPC and EDQUOT into an error that says what to do, while
// keeping the errno in the chain for errors.Is.
func diskErr(err error, root string) error {
	switch {
	case errors.Is(err, syscall.ENOSPC):
		return fmt.Errorf("disk full (%w) on the filesystem of %s: free space there and retry", syscall.ENOSPC, root)
	case errors.Is(err, syscall.EDQUOT):
		return fmt.Errorf("disk quota exceeded (%w) on the filesystem of %s: free space or raise the quota and retry", syscall.EDQUOT, root)
	}
	return err
}

// writeFileAtomic writes data to path through a temporary file in the same
// directory, synced and renamed.
func writeFileAtomic(path string, data []byte, perm os.FileMode) error {
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp*")
	if err != nil {
		return err
	}
	tmp := f.Name()
	_, err = f.Write(data)
	if err == nil {
		err = f.Chmod(perm)
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		os.Remove(tmp)
		return err
	}
	return syncDir(filepath.Dir(path))
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	if err := d.Sync(); err != nil && !errors.Is(err, syscall.EINVAL) {
		return err
	}
	return nil
}
