package images

import (
	"context"
	"encoding/json"
	"fmt"
	"io"

	"github.com/opencontainers/go-digest"

	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/skiff-containers/skiff/engine/metadata"
	"github.com/skiff-containers/skiff/errdefs"
	"github.com/skiff-containers/skiff/image/imagearchive"
	"github.com/skiff-containers/skiff/image/reference"
)

// Load imports an OCI archive or a `docker save` tarball read from r,
// unpacks its images and records them in ns: under the names the archive
// gives, or under their id ("sha256:…") for unnamed ones. It is all or
// nothing: on error no image is recorded and what the load stored is
// collected.
func (s *Service) Load(ctx context.Context, ns string, r io.Reader) ([]Image, error) {
	if err := metadata.ValidateNamespace(ns); err != nil {
		return nil, fmt.Errorf("load images: %w", err)
	}
	s.gate.RLock()
	l, err := s.newLease(ns, "load")
	if err != nil {
		s.gate.RUnlock()
		return nil, fmt.Errorf("load images: %w", err)
	}
	recs, ps, err := s.load(ctx, ns, r, l)
	s.gate.RUnlock()
	if err != nil {
		s.abandon(ctx, l, "load")
		return nil, fmt.Errorf("load images: %w", err)
	}
	if err := l.release(); err != nil {
		s.log.Warn("cannot remove load lease", "lease", l.id, "error", err)
	}
	out := make([]Image, len(recs))
	for i := range recs {
		out[i] = s.describe(ctx, recs[i], ps[i])
		s.log.Info("loaded image", "namespace", ns, "image", out[i].Name, "id", out[i].ID)
		s.publish(ctx, ns, evLoad, out[i].ID.String(), familiar(out[i].Name), out[i].Labels)
	}
	return out, nil
}

func (s *Service) load(ctx context.Context, ns string, r io.Reader, l *lease) ([]metadata.Image, []*parts, error) {
	// Import writes blobs as it reads them; GC cannot run meanwhile (we
	// hold the gate), and they are leased below before the gate is
	// released.
	imgs, err := imagearchive.Import(ctx, r, s.store)
	if err != nil {
		return nil, nil, err
	}
	if len(imgs) == 0 {
		return nil, nil, fmt.Errorf("the archive holds no image: %w", errdefs.ErrInvalidArgument)
	}
	recs := make([]metadata.Image, 0, len(imgs))
	ps := make([]*parts, 0, len(imgs))
	for _, im := range imgs {
		p, err := s.loadParts(ctx, im.Target, "")
		if err != nil {
			return nil, nil, fmt.Errorf("image %q: %w", im.Name, err)
		}
		rec := metadata.Image{Name: p.manifest.Config.Digest.String(), Target: plainDesc(im.Target)}
		if im.Name != "" {
			ref, err := reference.ParseDockerRef(im.Name)
			if err != nil {
				return nil, nil, fmt.Errorf("image %q: %w", im.Name, err)
			}
			rec.Name = ref.String()
		}
		if im.Target.Digest != p.manifestDesc.Digest {
			rec.Labels = map[string]string{labelManifest: p.manifestDesc.Digest.String()}
		}
		if err := l.addBlobs(blobsOf(rec, p)...); err != nil {
			return nil, nil, err
		}
		recs = append(recs, rec)
		ps = append(ps, p)
	}
	for i, p := range ps {
		if err := s.unpack(ctx, p, l, func(Progress) {}); err != nil {
			return nil, nil, fmt.Errorf("image %q: %w", recs[i].Name, err)
		}
	}
	if err := ctx.Err(); err != nil {
		return nil, nil, err
	}
	err = s.db.Update(func(tx *metadata.Tx) error {
		for i := range recs {
			var err error
			if recs[i], err = recordImage(tx, ns, recs[i]); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return nil, nil, err
	}
	return recs, ps, nil
}

// Save writes the images names name (names or ids) in ns to w as one OCI
// archive. An image pulled for one platform of a multi-platform index is
// saved as that platform's manifest.
func (s *Service) Save(ctx context.Context, ns string, names []string, w io.Writer) error {
	if len(names) == 0 {
		return fmt.Errorf("save images: no image given: %w", errdefs.ErrInvalidArgument)
	}
	var out []imagearchive.Image
	var saved []func() // the save events, sent once the archive is written
	for _, n := range names {
		rec, p, _, err := s.lookup(ctx, ns, n)
		if err != nil {
			return fmt.Errorf("save images: %w", err)
		}
		name := rec.Name
		if _, idLike := isIDLike(name); idLike {
			name = "" // unnamed: saved without a name
		}
		// An image pulled for one platform of an index is that platform's
		// manifest; so is one whose index is incomplete.
		target := rec.Target
		if target.Digest != p.manifestDesc.Digest && (rec.Labels[labelManifest] != "" || !s.complete(ctx, target)) {
			target = plainDesc(p.manifestDesc)
		}
		out = append(out, imagearchive.Image{Name: name, Target: target})
		saved = append(saved, func() {
			s.publish(ctx, ns, evSave, p.manifest.Config.Digest.String(), familiar(rec.Name), p.config.Config.Labels)
		})
	}
	if err := imagearchive.Export(ctx, w, s.store, out); err != nil {
		return fmt.Errorf("save images: %w", err)
	}
	for _, publish := range saved {
		publish()
	}
	return nil
}

// complete reports whether every blob reachable from desc is stored.
func (s *Service) complete(ctx context.Context, desc ocispec.Descriptor) bool {
	blobs := map[digest.Digest]bool{}
	s.markBlobs(ctx, desc, "", blobs, nil)
	for d := range blobs {
		if ok, _ := s.store.Exists(ctx, d); !ok {
			return false
		}
	}
	// markBlobs only follows manifests that are present; check the
	// index's entries too.
	data, err := s.readBlob(ctx, desc, maxManifestSize)
	if err != nil {
		return false
	}
	var idx ocispec.Index
	if json.Unmarshal(data, &idx) != nil {
		return false
	}
	for _, m := range idx.Manifests {
		if ok, _ := s.store.Exists(ctx, m.Digest); !ok {
			return false
		}
	}
	return true
}
