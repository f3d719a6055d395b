package images

import (
	"context"
	"encoding/json"
	"fmt"
	"sort"
	"strings"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/skiff-containers/skiff/engine/metadata"
	"github.com/skiff-containers/skiff/errdefs"
	"github.com/skiff-containers/skiff/image/content"
	"github.com/skiff-containers/skiff/image/remote"
	"github.com/skiff-containers/skiff/image/snapshot"
)

// GC removes the blobs and committed snapshots that no image (of any
// namespace), no lease and no other snapshot references. A committed
// snapshot that is an ancestor of a snapshot GC did not make (a container's)
// is kept. It waits for running pulls and loads.
func (s *Service) GC(ctx context.Context) error {
	_, err := s.gc(ctx, "")
	return err
}

// gc is GC; skipLease ("ns/id") is a lease to ignore. It returns the
// digests of the blobs it deleted.
func (s *Service) gc(ctx context.Context, skipLease string) ([]digest.Digest, error) {
	s.gate.Lock()
	defer s.gate.Unlock()

	blobs := map[digest.Digest]bool{}
	snaps := map[string]bool{}
	var targets []metadata.Image
	err := s.db.View(func(tx *metadata.Tx) error {
		nss, err := tx.Namespaces()
		if err != nil {
			return err
		}
		for _, ns := range nss {
			imgs, err := tx.ListImages(ns, nil)
			if err != nil {
				return err
			}
			for _, img := range imgs {
				targets = append(targets, img)
			}
			leases, err := tx.ListLeases(ns, nil)
			if err != nil {
				return err
			}
			for _, l := range leases {
				if ns+"/"+l.ID == skipLease {
					continue
				}
				for _, r := range l.Resources {
					switch {
					case r.Type == resourceContent:
						blobs[digest.Digest(r.ID)] = true
					case strings.HasPrefix(r.Type, resourceSnapshotsPrefix):
						snaps[r.ID] = true
					}
				}
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("garbage collection: read metadata: %w", err)
	}
	for _, t := range targets {
		s.markBlobs(ctx, t.Target, digest.Digest(t.Labels[labelManifest]), blobs, snaps)
	}

	// No extraction runs while we hold the gate: temporary snapshots are
	// leftovers.
	if err := s.removeExtractSnapshots(ctx); err != nil {
		return nil, fmt.Errorf("garbage collection: %w", err)
	}
	if err := s.sweepSnapshots(ctx, snaps); err != nil {
		return nil, fmt.Errorf("garbage collection: %w", err)
	}

	var unused []digest.Digest
	err = s.store.Walk(ctx, func(i content.Info) error {
		if !blobs[i.Digest] {
			unused = append(unused, i.Digest)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("garbage collection: walk content: %w", err)
	}
	sort.Slice(unused, func(i, j int) bool { return unused[i] < unused[j] })
	var deleted []digest.Digest
	for _, d := range unused {
		if err := s.store.Delete(ctx, d); err != nil && !errdefs.IsNotFound(err) {
			return deleted, fmt.Errorf("garbage collection: delete blob %s: %w", d, err)
		}
		deleted = append(deleted, d)
	}
	if len(deleted) > 0 {
		s.log.Info("garbage collection deleted blobs", "count", len(deleted))
	}
	return deleted, nil
}

// sweepSnapshots removes committed snapshots that keep does not name and
// that no kept or uncommitted snapshot descends from, children first.
func (s *Service) sweepSnapshots(ctx context.Context, keep map[string]bool) error {
	infos := map[string]snapshot.Info{}
	err := s.snap.Walk(ctx, func(_ context.Context, i snapshot.Info) error {
		infos[i.Name] = i
		return nil
	})
	if err != nil {
		return err
	}
	kept := map[string]bool{}
	var keepChain func(name string)
	keepChain = func(name string) {
		for name != "" && !kept[name] {
			kept[name] = true
			name = infos[name].Parent
		}
	}
	for name, i := range infos {
		if i.Kind != snapshot.KindCommitted || keep[name] {
			keepChain(name)
		}
	}
	depth := func(name string) int {
		n := 0
		for p := infos[name].Parent; p != "" && n < len(infos); p = infos[p].Parent {
			n++
		}
		return n
	}
	var doomed []string
	for name := range infos {
		if !kept[name] {
			doomed = append(doomed, name)
		}
	}
	sort.Slice(doomed, func(i, j int) bool {
		di, dj := depth(doomed[i]), depth(doomed[j])
		if di != dj {
			return di > dj
		}
		return doomed[i] < doomed[j]
	})
	for _, name := range doomed {
		err := s.snap.Remove(ctx, name)
		switch {
		case err == nil:
			s.log.Debug("garbage collection removed snapshot", "snapshot", name)
		case errdefs.IsNotFound(err):
		case errdefs.IsFailedPrecondition(err):
			s.log.Debug("garbage collection keeps a snapshot still in use", "snapshot", name, "reason", err)
		default:
			return err
		}
	}
	return nil
}

// markBlobs adds to blobs the digests reachable from desc (index →
// manifests present in the store → config and layers), and to snaps (if
// not nil) the chain IDs of the manifests' layers. Unreadable documents
// are logged and their children left unmarked.
//
// only, if set, is the one manifest of an index target to follow (the
// platform a pull chose); the index's other entries are not the image's.
func (s *Service) markBlobs(ctx context.Context, desc ocispec.Descriptor, only digest.Digest, blobs map[digest.Digest]bool, snaps map[string]bool) {
	s.mark(ctx, desc, only, blobs, snaps, map[digest.Digest]bool{}, 0)
}

func (s *Service) mark(ctx context.Context, desc ocispec.Descriptor, only digest.Digest, blobs map[digest.Digest]bool, snaps map[string]bool, visited map[digest.Digest]bool, depth int) {
	if visited[desc.Digest] {
		return
	}
	visited[desc.Digest] = true
	blobs[desc.Digest] = true
	if depth > maxIndexDepth {
		return
	}
	if ok, _ := s.store.Exists(ctx, desc.Digest); !ok {
		return
	}
	data, err := s.readBlob(ctx, desc, maxManifestSize)
	if err != nil {
		s.log.Warn("garbage collection cannot read an image's document", "digest", desc.Digest, "error", err)
		return
	}
	var doc struct {
		MediaType string               `json:"mediaType"`
		Manifests []ocispec.Descriptor `json:"manifests"`
		Config    *ocispec.Descriptor  `json:"config"`
		Layers    []ocispec.Descriptor `json:"layers"`
	}
	if err := json.Unmarshal(data, &doc); err != nil {
		s.log.Warn("garbage collection: malformed image document", "digest", desc.Digest, "error", err)
		return
	}
	if remote.IsIndex(desc.MediaType) || remote.IsIndex(doc.MediaType) || doc.Manifests != nil {
		for _, m := range doc.Manifests {
			if only != "" && m.Digest != only {
				continue
			}
			if ok, _ := s.store.Exists(ctx, m.Digest); ok {
				s.mark(ctx, m, "", blobs, snaps, visited, depth+1)
			}
		}
		return
	}
	if doc.Config == nil {
		return
	}
	blobs[doc.Config.Digest] = true
	for _, l := range doc.Layers {
		blobs[l.Digest] = true
	}
	if snaps == nil {
		return
	}
	cdata, err := s.readBlob(ctx, *doc.Config, maxConfigSize)
	if err != nil {
		return
	}
	var cfg ocispec.Image
	if json.Unmarshal(cdata, &cfg) != nil {
		return
	}
	for _, c := range chainIDs(cfg.RootFS.DiffIDs) {
		snaps[c] = true
	}
}
