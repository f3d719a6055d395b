package images

import (
	"bufio"
	"compress/bzip2"
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"
	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/skiff-containers/skiff/errdefs"
	"github.com/skiff-containers/skiff/image/archive"
	"github.com/skiff-containers/skiff/image/snapshot"
)

// zstdMaxWindow bounds a zstd decoder's memory (as image/archive does).
const zstdMaxWindow = 1 << 27

// unpack makes sure every layer of p is a committed snapshot named by its
// chain ID, extracting those that are missing. The caller holds the gate
// shared. Committed snapshots are recorded in l (if not nil) before they
// exist. On failure, the temporary snapshot of the failing layer is
// removed; layers committed before stay for the caller's GC.
func (s *Service) unpack(ctx context.Context, p *parts, l *lease, report func(Progress)) error {
	for i, layer := range p.manifest.Layers {
		if err := s.unpackLayer(ctx, p, i, layer, l, report); err != nil {
			report(Progress{ID: layer.Digest.String(), Kind: "layer", Status: "failed", Total: layer.Size})
			return err
		}
	}
	return nil
}

func (s *Service) unpackLayer(ctx context.Context, p *parts, i int, layer ocispec.Descriptor, l *lease, report func(Progress)) (retErr error) {
	chain := p.chainIDs[i]
	parent := ""
	if i > 0 {
		parent = p.chainIDs[i-1]
	}
	id := layer.Digest.String()
	unlock := s.lockChain(chain)
	defer unlock()
	if l != nil {
		if err := l.addSnapshot(chain); err != nil {
			return fmt.Errorf("layer %s: %w", id, err)
		}
	}
	if info, err := s.snap.Stat(ctx, chain); err == nil {
		if info.Kind == snapshot.KindCommitted {
			report(Progress{ID: id, Kind: "layer", Status: "exists", Current: layer.Size, Total: layer.Size})
			return nil
		}
		return fmt.Errorf("layer %s: snapshot %q exists but is %s, not committed: %w", id, chain, info.Kind, errdefs.ErrFailedPrecondition)
	} else if !errdefs.IsNotFound(err) {
		return fmt.Errorf("layer %s: %w", id, err)
	}
	report(Progress{ID: id, Kind: "layer", Status: "extracting", Total: layer.Size})
	key := extractPrefix + randomHex(8) + "/" + chain
	mounts, err := s.snap.Prepare(ctx, key, parent)
	if err != nil {
		return fmt.Errorf("layer %s: %w", id, err)
	}
	dir, overlay, ok := snapshot.WritableDir(mounts)
	committed := false
	defer func() {
		if committed {
			return
		}
		if err := s.removeExtract(context.WithoutCancel(ctx), key, dir); err != nil {
			s.log.Warn("cannot remove temporary snapshot", "snapshot", key, "error", err)
			if retErr == nil {
				retErr = err
			}
		}
	}()
	if !ok {
		return fmt.Errorf("layer %s: snapshot %q has no writable directory", id, key)
	}
	if err := s.applyLayer(ctx, dir, overlay, layer, p.config.RootFS.DiffIDs[i]); err != nil {
		return err
	}
	err = s.snap.Commit(ctx, chain, key)
	if isAlreadyExists(err) {
		// Unpacked concurrently by someone else: theirs is as good.
		report(Progress{ID: id, Kind: "layer", Status: "extracted", Current: layer.Size, Total: layer.Size})
		return nil
	}
	if err != nil {
		return fmt.Errorf("layer %s: %w", id, err)
	}
	committed = true
	report(Progress{ID: id, Kind: "layer", Status: "extracted", Current: layer.Size, Total: layer.Size})
	return nil
}

// removeExtract removes the temporary snapshot key whose writable
// directory is dir. It empties dir first: on a full disk, the snapshotter
// needs the space to record the removal.
func (s *Service) removeExtract(ctx context.Context, key, dir string) error {
	if dir != "" {
		if err := clearDir(dir); err != nil {
			s.log.Warn("cannot empty temporary snapshot", "snapshot", key, "error", err)
		}
	}
	err := s.snap.Remove(ctx, key)
	if errdefs.IsNotFound(err) {
		return nil
	}
	return err
}

// clearDir removes what dir holds (never following symlinks).
func clearDir(dir string) error {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return err
	}
	var first error
	for _, e := range ents {
		if err := os.RemoveAll(filepath.Join(dir, e.Name())); err != nil && first == nil {
			first = err
		}
	}
	return first
}

// applyLayer extracts the layer blob into dir and checks that its
// uncompressed stream hashes to diffID, so that a chain ID always names the
// content it claims.
func (s *Service) applyLayer(ctx context.Context, dir string, overlay bool, layer ocispec.Descriptor, diffID digest.Digest) error {
	id := layer.Digest.String()
	ra, err := s.store.ReaderAt(ctx, layer)
	if err != nil {
		return fmt.Errorf("layer %s: %w", id, err)
	}
	defer ra.Close()
	tarStream, closeFn, err := decompress(io.NewSectionReader(ra, 0, ra.Size()))
	if err != nil {
		return fmt.Errorf("layer %s: %w", id, err)
	}
	defer closeFn()
	verifier := diffID.Algorithm().Digester()
	if !diffID.Algorithm().Available() {
		return fmt.Errorf("layer %s: diff ID %s: unsupported algorithm: %w", id, diffID, errdefs.ErrInvalidArgument)
	}
	_, err = archive.Apply(ctx, dir, io.TeeReader(tarStream, verifier.Hash()), archive.ApplyOptions{
		Name:        id,
		Compression: archive.Uncompressed,
		Overlay:     overlay,
		Warnf: func(format string, args ...any) {
			s.log.Debug(fmt.Sprintf(format, args...), "layer", id)
		},
	})
	if err != nil {
		return fmt.Errorf("unpack layer %s: %w", id, err)
	}
	// Drain what Apply left (padding after the end-of-archive marker).
	if _, err := io.Copy(verifier.Hash(), tarStream); err != nil {
		return fmt.Errorf("unpack layer %s: %w", id, err)
	}
	if got := verifier.Digest(); got != diffID {
		return fmt.Errorf("layer %s: its uncompressed content has digest %s, but the image config gives diff ID %s: refused: %w", id, got, diffID, errdefs.ErrInvalidArgument)
	}
	return nil
}

// decompress returns the tar stream in r, whatever its compression.
func decompress(r io.Reader) (io.Reader, func(), error) {
	br := bufio.NewReaderSize(r, 64<<10)
	head, _ := br.Peek(6)
	c, err := archive.DetectCompression(head)
	if err != nil {
		return nil, nil, err
	}
	switch c {
	case archive.Gzip:
		zr, err := gzip.NewReader(br)
		if err != nil {
			return nil, nil, fmt.Errorf("gzip: %v: %w", err, errdefs.ErrInvalidArgument)
		}
		return zr, func() { zr.Close() }, nil
	case archive.Zstd:
		zr, err := zstd.NewReader(br, zstd.WithDecoderMaxWindow(zstdMaxWindow), zstd.WithDecoderConcurrency(1))
		if err != nil {
			return nil, nil, fmt.Errorf("zstd: %v: %w", err, errdefs.ErrInvalidArgument)
		}
		return zr, zr.Close, nil
	case archive.Bzip2:
		return bzip2.NewReader(br), func() {}, nil
	}
	return br, func() {}, nil
}
