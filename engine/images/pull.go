package images

import (
	"context"
	"fmt"
	"strings"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/skiff-containers/skiff/engine/metadata"
	"github.com/skiff-containers/skiff/image/reference"
	"github.com/skiff-containers/skiff/image/remote"
)

// Pull fetches ref (a docker-style name, normalised) from its registry,
// unpacks its layers, and records it in ns under its normalised name. The
// platform is "os/arch[/variant]", "" for the host's. auth, if not nil,
// replaces the daemon's credentials for this pull. progress, if not nil,
// receives progress (never concurrently). Nothing is recorded unless
// everything succeeds; on failure what the pull made is removed.
func (s *Service) Pull(ctx context.Context, ns, ref, platform string, auth *Auth, progress func(Progress)) (Image, error) {
	if err := metadata.ValidateNamespace(ns); err != nil {
		return Image{}, fmt.Errorf("pull %q: %w", ref, err)
	}
	r, err := reference.ParseDockerRef(ref)
	if err != nil {
		return Image{}, fmt.Errorf("pull: %w", err)
	}
	name := r.String()
	var popts remote.PullOptions
	if platform != "" {
		pl, err := remote.ParsePlatform(platform)
		if err != nil {
			return Image{}, fmt.Errorf("pull %s: platform %q: %w", name, platform, err)
		}
		popts.Platform = &pl
	}
	resolver, err := s.resolverFor(r.Domain, auth, "pulls")
	if err != nil {
		return Image{}, fmt.Errorf("pull %s: %w", name, err)
	}
	report := progressFunc(progress)
	log := s.log.With("namespace", ns, "image", name)
	log.Info("pulling image")

	s.gate.RLock()
	l, err := s.newLease(ns, "pull")
	if err != nil {
		s.gate.RUnlock()
		return Image{}, fmt.Errorf("pull %s: %w", name, err)
	}
	rec, p, err := s.pull(ctx, ns, r, resolver, popts, l, report)
	s.gate.RUnlock()
	if err != nil {
		log.Info("pull failed", "error", err)
		s.abandon(ctx, l, "pull")
		if strings.HasPrefix(err.Error(), "pull "+name+":") {
			return Image{}, err // the resolver's error names the image
		}
		return Image{}, fmt.Errorf("pull %s: %w", name, err)
	}
	if err := l.release(); err != nil {
		log.Warn("cannot remove pull lease", "lease", l.id, "error", err)
	}
	img := s.describe(ctx, rec, p)
	log.Info("pulled image", "id", img.ID, "digest", img.Target.Digest)
	s.publish(ctx, ns, evPull, familiar(name), familiar(name), img.Labels)
	return img, nil
}

func (s *Service) pull(ctx context.Context, ns string, r reference.Reference, resolver *remote.Resolver, popts remote.PullOptions, l *lease, report func(Progress)) (metadata.Image, *parts, error) {
	report(Progress{Status: "resolving"})
	var leaseErr error
	popts.Progress = func(rp remote.Progress) {
		status := string(rp.Status)
		switch rp.Status {
		case remote.ProgressWaiting:
			// Called before the blob is fetched: lease it first.
			if err := l.addBlobs(rp.Desc.Digest); err != nil && leaseErr == nil {
				leaseErr = err
			}
		case remote.ProgressRetrying:
			status = "waiting"
		}
		report(Progress{ID: rp.Desc.Digest.String(), Kind: kindOf(rp.Desc.MediaType), Status: status, Current: rp.Done, Total: rp.Total})
	}
	rimg, err := resolver.Pull(ctx, r, s.store, popts)
	if err != nil {
		return metadata.Image{}, nil, err
	}
	if leaseErr != nil {
		return metadata.Image{}, nil, leaseErr
	}
	if err := l.addBlobs(rimg.Target.Digest, rimg.Manifest.Digest); err != nil {
		return metadata.Image{}, nil, err
	}
	p, err := s.loadParts(ctx, rimg.Target, rimg.Manifest.Digest)
	if err != nil {
		return metadata.Image{}, nil, err
	}
	if err := s.unpack(ctx, p, l, report); err != nil {
		return metadata.Image{}, nil, err
	}
	rec := metadata.Image{Name: r.String(), Target: plainDesc(rimg.Target)}
	if rimg.Target.Digest != rimg.Manifest.Digest {
		rec.Labels = map[string]string{labelManifest: rimg.Manifest.Digest.String()}
	}
	if err := ctx.Err(); err != nil {
		return metadata.Image{}, nil, err
	}
	err = s.db.Update(func(tx *metadata.Tx) error {
		var err error
		rec, err = recordImage(tx, ns, rec)
		return err
	})
	if err != nil {
		return metadata.Image{}, nil, err
	}
	return rec, p, nil
}

// plainDesc keeps a descriptor's media type, digest and size.
func plainDesc(d ocispec.Descriptor) ocispec.Descriptor {
	return ocispec.Descriptor{MediaType: d.MediaType, Digest: d.Digest, Size: d.Size}
}

// kindOf names what a blob of media type mt is.
func kindOf(mt string) string {
	switch {
	case remote.IsIndex(mt):
		return "index"
	case remote.IsManifest(mt):
		return "manifest"
	case mt == ocispec.MediaTypeImageConfig || mt == remote.MediaTypeDockerConfig || strings.HasSuffix(mt, "config.v1+json"):
		return "config"
	}
	return "layer"
}

// Resolve returns the local image ref names (as Get does), ready to be a
// container's root filesystem: its layers unpacked (now, if a snapshot is
// missing), its config parsed, and ChainID the committed snapshot of its
// top layer. An image that is not local is an ErrNotFound error saying to
// pull it.
func (s *Service) Resolve(ctx context.Context, ns, ref string) (Resolved, error) {
	rec, p, _, err := s.lookup(ctx, ns, ref)
	if err != nil {
		return Resolved{}, err
	}
	res := Resolved{Name: rec.Name, ID: p.manifest.Config.Digest, Target: rec.Target, Config: p.config, ChainID: p.topChain()}
	if res.ChainID == "" {
		return res, nil
	}
	if _, err := s.snap.Stat(ctx, res.ChainID); err == nil {
		return res, nil
	}
	s.gate.RLock()
	l, err := s.newLease(ns, "unpack")
	if err != nil {
		s.gate.RUnlock()
		return Resolved{}, fmt.Errorf("image %q: %w", rec.Name, err)
	}
	if err := l.addBlobs(blobsOf(rec, p)...); err != nil {
		s.gate.RUnlock()
		s.abandon(ctx, l, "unpack")
		return Resolved{}, fmt.Errorf("image %q: %w", rec.Name, err)
	}
	err = s.unpack(ctx, p, l, func(Progress) {})
	s.gate.RUnlock()
	if err != nil {
		s.abandon(ctx, l, "unpack")
		return Resolved{}, fmt.Errorf("image %q: unpack: %w", rec.Name, err)
	}
	if err := l.release(); err != nil {
		s.log.Warn("cannot remove unpack lease", "lease", l.id, "error", err)
	}
	return res, nil
}

// blobsOf lists the digests of an image's target, manifest, config and
// layers.
func blobsOf(rec metadata.Image, p *parts) []digest.Digest {
	out := []digest.Digest{rec.Target.Digest, p.manifestDesc.Digest, p.manifest.Config.Digest}
	for _, l := range p.manifest.Layers {
		out = append(out, l.Digest)
	}
	return out
}
