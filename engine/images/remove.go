package images

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/opencontainers/go-digest"

	"github.com/skiff-containers/skiff/engine/metadata"
	"github.com/skiff-containers/skiff/errdefs"
	"github.com/skiff-containers/skiff/image/reference"
)

// Remove untags the image nameOrID names in ns and frees the blobs and
// layer snapshots nothing else uses, as `docker rmi` does:
//   - an image that a container of ns uses is refused (ErrFailedPrecondition,
//     naming the container) unless force; the container keeps its snapshot;
//   - by name, only that name is removed;
//   - by id, every name of the image is removed; when there are several,
//     only with force.
func (s *Service) Remove(ctx context.Context, ns, nameOrID string, force bool) (RemoveResult, error) {
	rec, p, byID, err := s.lookup(ctx, ns, nameOrID)
	if err != nil {
		return RemoveResult{}, fmt.Errorf("remove image: %w", err)
	}
	id := p.manifest.Config.Digest
	recs := []metadata.Image{rec}
	if byID {
		if recs, err = s.namesOfID(ctx, ns, id); err != nil {
			return RemoveResult{}, fmt.Errorf("remove image %s: %w", shortID(id), err)
		}
		if len(recs) > 1 && !force {
			names := make([]string, len(recs))
			for i, r := range recs {
				names[i] = r.Name
			}
			return RemoveResult{}, fmt.Errorf("remove image %s: it has %d names (%s); remove them one by one or use force: %w",
				shortID(id), len(recs), strings.Join(names, ", "), errdefs.ErrFailedPrecondition)
		}
	}
	names := make([]string, len(recs))
	for i, r := range recs {
		names[i] = r.Name
	}
	if !force {
		users, err := s.db.ListContainers(ns, func(c metadata.Container) bool {
			return slices.Contains(names, c.Image) || c.Image == id.String()
		})
		if err != nil {
			return RemoveResult{}, fmt.Errorf("remove image %q: %w", rec.Name, err)
		}
		if len(users) > 0 {
			c := users[0]
			who := c.ID
			if c.Name != "" {
				who = fmt.Sprintf("%s (%s)", c.Name, c.ID)
			}
			return RemoveResult{}, fmt.Errorf("remove image %q: container %s uses it (and %d more); remove the container first or use force: %w",
				rec.Name, who, len(users)-1, errdefs.ErrFailedPrecondition)
		}
	}
	// The image's own blobs, to report which of them are freed.
	mine := map[digest.Digest]bool{}
	for _, r := range recs {
		s.markBlobs(ctx, r.Target, digest.Digest(r.Labels[labelManifest]), mine, nil)
	}
	err = s.db.Update(func(tx *metadata.Tx) error {
		for _, n := range names {
			if err := tx.DeleteImage(ns, n); err != nil && !errdefs.IsNotFound(err) {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return RemoveResult{}, fmt.Errorf("remove image %q: %w", rec.Name, err)
	}
	s.log.Info("untagged image", "namespace", ns, "names", names, "id", id)
	s.publishRemoved(ctx, ns, id, names, p.config.Config.Labels)
	res := RemoveResult{Untagged: names}
	deleted, err := s.gc(ctx, "")
	for _, d := range deleted {
		if mine[d] {
			res.Deleted = append(res.Deleted, d)
		}
	}
	if err != nil {
		return res, fmt.Errorf("remove image %q: untagged, but freeing its content failed: %w", rec.Name, err)
	}
	return res, nil
}

func shortID(id digest.Digest) string {
	if e := id.Encoded(); len(e) > 12 {
		return e[:12]
	}
	return id.String()
}

// Tag gives the image source names (name or id) the name target in ns,
// replacing what target named before.
func (s *Service) Tag(ctx context.Context, ns, source, target string) (Image, error) {
	rec, p, _, err := s.lookup(ctx, ns, source)
	if err != nil {
		return Image{}, fmt.Errorf("tag: %w", err)
	}
	tr, err := reference.ParseDockerRef(target)
	if err != nil {
		return Image{}, fmt.Errorf("tag %q: %w", source, err)
	}
	if tr.Digest != "" {
		return Image{}, fmt.Errorf("tag %q as %q: a tag cannot carry a digest; give name:tag: %w", source, target, errdefs.ErrInvalidArgument)
	}
	next := metadata.Image{Name: tr.String(), Target: rec.Target, Labels: rec.Labels}
	err = s.db.Update(func(tx *metadata.Tx) error {
		var err error
		next, err = recordImage(tx, ns, next)
		return err
	})
	if err != nil {
		return Image{}, fmt.Errorf("tag %q as %q: %w", source, tr.String(), err)
	}
	s.log.Info("tagged image", "namespace", ns, "source", rec.Name, "target", next.Name)
	s.publish(ctx, ns, evTag, p.manifest.Config.Digest.String(), familiar(next.Name), p.config.Config.Labels)
	return s.describe(ctx, next, p), nil
}
