package images

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/skiff-containers/skiff/engine/metadata"
	"github.com/skiff-containers/skiff/image/content"
)

// HistoryEntry is one line of `docker history`: a step of the image's
// build, newest first.
type HistoryEntry struct {
	// ID is the image id on the newest entry, "<missing>" on the others
	// (as docker shows pulled images).
	ID        string
	Created   time.Time
	CreatedBy string
	// Size is the unpacked size of the step's layer (its compressed size
	// if it is not unpacked); 0 for steps without a layer.
	Size       int64
	Comment    string
	EmptyLayer bool
}

// History returns the build history of the image nameOrID names in ns, from
// its configuration's history and its layers' sizes, newest first. Layers
// the history does not account for get entries of their own.
func (s *Service) History(ctx context.Context, ns, nameOrID string) ([]HistoryEntry, error) {
	_, p, _, err := s.lookup(ctx, ns, nameOrID)
	if err != nil {
		return nil, fmt.Errorf("history: %w", err)
	}
	layerSize := func(i int) int64 {
		if i < len(p.chainIDs) {
			if u, err := s.snap.Usage(ctx, p.chainIDs[i]); err == nil {
				return u.Size
			}
		}
		return p.manifest.Layers[i].Size
	}
	var out []HistoryEntry
	layer := 0
	for _, h := range p.config.History {
		e := HistoryEntry{CreatedBy: h.CreatedBy, Comment: h.Comment, EmptyLayer: h.EmptyLayer}
		if h.Created != nil {
			e.Created = *h.Created
		}
		if !h.EmptyLayer && layer < len(p.manifest.Layers) {
			e.Size = layerSize(layer)
			layer++
		}
		out = append(out, e)
	}
	for ; layer < len(p.manifest.Layers); layer++ {
		e := HistoryEntry{Size: layerSize(layer)}
		if p.config.Created != nil {
			e.Created = *p.config.Created
		}
		out = append(out, e)
	}
	// Newest first.
	for i, j := 0, len(out)-1; i < j; i, j = i+1, j-1 {
		out[i], out[j] = out[j], out[i]
	}
	for i := range out {
		out[i].ID = "<missing>"
	}
	if len(out) > 0 {
		out[0].ID = p.manifest.Config.Digest.String()
	}
	return out, nil
}

// PruneResult is what Prune removed.
type PruneResult struct {
	// Untagged are the image names removed.
	Untagged []string
	// Deleted are the blobs freed.
	Deleted []digest.Digest
	// SpaceReclaimed is the size of the freed blobs and layer snapshots.
	SpaceReclaimed int64
}

// Prune removes the dangling images of ns (recorded under their id
// "sha256:…", as unnamed loads and imports are), or with all every image
// that no container of ns uses, then frees what nothing references.
func (s *Service) Prune(ctx context.Context, ns string, all bool) (PruneResult, error) {
	if err := metadata.ValidateNamespace(ns); err != nil {
		return PruneResult{}, fmt.Errorf("prune images: %w", err)
	}
	recs, err := s.db.ListImages(ns, nil)
	if err != nil {
		return PruneResult{}, fmt.Errorf("prune images: %w", err)
	}
	used, err := s.usedImages(ctx, ns, recs)
	if err != nil {
		return PruneResult{}, fmt.Errorf("prune images: %w", err)
	}
	var doomed []string
	chains := map[string]int64{} // of the doomed images, with their usage
	for _, rec := range recs {
		if !all && !strings.HasPrefix(rec.Name, "sha256:") {
			continue
		}
		p, err := s.recordParts(ctx, rec)
		if err == nil && used[p.manifest.Config.Digest] {
			continue
		}
		doomed = append(doomed, rec.Name)
		if err == nil {
			for _, c := range p.chainIDs {
				if u, err := s.snap.Usage(ctx, c); err == nil {
					chains[c] = u.Size
				}
			}
		}
	}
	if len(doomed) == 0 {
		return PruneResult{}, nil
	}
	sizes := map[digest.Digest]int64{}
	if err := s.store.Walk(ctx, func(i content.Info) error { sizes[i.Digest] = i.Size; return nil }); err != nil {
		return PruneResult{}, fmt.Errorf("prune images: %w", err)
	}
	err = s.db.Update(func(tx *metadata.Tx) error {
		for _, n := range doomed {
			if err := tx.DeleteImage(ns, n); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return PruneResult{}, fmt.Errorf("prune images: %w", err)
	}
	s.log.Info("pruned images", "namespace", ns, "names", doomed)
	res := PruneResult{Untagged: doomed}
	deleted, err := s.gc(ctx, "")
	res.Deleted = deleted
	for _, d := range deleted {
		res.SpaceReclaimed += sizes[d]
	}
	for c, size := range chains {
		if _, serr := s.snap.Stat(ctx, c); serr != nil {
			res.SpaceReclaimed += size
		}
	}
	if err != nil {
		return res, fmt.Errorf("prune images: untagged %d images, but freeing their content failed: %w", len(doomed), err)
	}
	return res, nil
}

// usedImages returns the ids of the images containers of ns use (by name
// or by id).
func (s *Service) usedImages(ctx context.Context, ns string, recs []metadata.Image) (map[digest.Digest]bool, error) {
	ctrs, err := s.db.ListContainers(ns, nil)
	if err != nil {
		return nil, err
	}
	byName := map[string]metadata.Image{}
	for _, r := range recs {
		byName[r.Name] = r
	}
	used := map[digest.Digest]bool{}
	for _, c := range ctrs {
		if c.ImageID != "" {
			used[digest.Digest(c.ImageID)] = true
		}
		if r, ok := byName[c.Image]; ok {
			if p, err := s.recordParts(ctx, r); err == nil {
				used[p.manifest.Config.Digest] = true
			}
		} else if strings.HasPrefix(c.Image, "sha256:") {
			used[digest.Digest(c.Image)] = true
		}
	}
	return used, nil
}

// DiskUsage is the space the images of a namespace take (docker's
// `system df` line "Images").
type DiskUsage struct {
	// Total is the number of images (distinct ids), Active those a
	// container uses.
	Total, Active int
	// Size is the size of the images' layers, each shared layer counted
	// once: unpacked where unpacked, compressed otherwise.
	Size int64
	// Reclaimable is the part of Size no container's image needs.
	Reclaimable int64
}

// DiskUsage measures the images of ns.
func (s *Service) DiskUsage(ctx context.Context, ns string) (DiskUsage, error) {
	if err := metadata.ValidateNamespace(ns); err != nil {
		return DiskUsage{}, fmt.Errorf("disk usage: %w", err)
	}
	recs, err := s.db.ListImages(ns, nil)
	if err != nil {
		return DiskUsage{}, fmt.Errorf("disk usage: %w", err)
	}
	used, err := s.usedImages(ctx, ns, recs)
	if err != nil {
		return DiskUsage{}, fmt.Errorf("disk usage: %w", err)
	}
	var du DiskUsage
	ids := map[digest.Digest]bool{}
	size := map[string]int64{}  // by chain ID (or layer digest)
	needed := map[string]bool{} // chains of active images
	for _, rec := range recs {
		p, err := s.recordParts(ctx, rec)
		if err != nil {
			continue
		}
		id := p.manifest.Config.Digest
		if !ids[id] {
			ids[id] = true
			du.Total++
			if used[id] {
				du.Active++
			}
		}
		for i, l := range p.manifest.Layers {
			key := l.Digest.String()
			if i < len(p.chainIDs) {
				key = p.chainIDs[i]
			}
			if _, ok := size[key]; !ok {
				size[key] = l.Size
				if u, err := s.snap.Usage(ctx, key); err == nil {
					size[key] = u.Size
				}
			}
			if used[id] {
				needed[key] = true
			}
		}
	}
	for k, n := range size {
		du.Size += n
		if !needed[k] {
			du.Reclaimable += n
		}
	}
	return du, nil
}
