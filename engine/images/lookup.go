package images

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"sort"
	"strings"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/skiff-containers/skiff/engine/metadata"
	"github.com/skiff-containers/skiff/errdefs"
	"github.com/skiff-containers/skiff/image/reference"
	"github.com/skiff-containers/skiff/image/remote"
)

// Bounds on documents read back from the content store.
const (
	maxManifestSize = 4 << 20
	maxConfigSize   = 32 << 20
	maxIndexDepth   = 4
)

// parts are an image's documents for its selected platform.
type parts struct {
	manifestDesc ocispec.Descriptor
	manifest     ocispec.Manifest
	manifestJSON []byte
	config       ocispec.Image
	configJSON   []byte
	chainIDs     []string
}

func (p *parts) topChain() string {
	if len(p.chainIDs) == 0 {
		return ""
	}
	return p.chainIDs[len(p.chainIDs)-1]
}

// readBlob reads a whole blob of at most max bytes.
func (s *Service) readBlob(ctx context.Context, desc ocispec.Descriptor, max int64) ([]byte, error) {
	if desc.Size > max {
		return nil, fmt.Errorf("blob %s: %d bytes, more than the %d allowed: %w", desc.Digest, desc.Size, max, errdefs.ErrInvalidArgument)
	}
	ra, err := s.store.ReaderAt(ctx, desc)
	if err != nil {
		return nil, err
	}
	defer ra.Close()
	if ra.Size() > max {
		return nil, fmt.Errorf("blob %s: %d bytes, more than the %d allowed: %w", desc.Digest, ra.Size(), max, errdefs.ErrInvalidArgument)
	}
	return io.ReadAll(io.NewSectionReader(ra, 0, ra.Size()))
}

// chainIDs computes the chain IDs of diffIDs (OCI image-spec: ChainID(L0) =
// DiffID(L0), ChainID(Ln) = sha256(ChainID(Ln-1) + " " + DiffID(Ln))).
func chainIDs(diffIDs []digest.Digest) []string {
	out := make([]string, len(diffIDs))
	var prev digest.Digest
	for i, d := range diffIDs {
		if i == 0 {
			prev = d
		} else {
			prev = digest.FromString(prev.String() + " " + d.String())
		}
		out[i] = prev.String()
	}
	return out
}

// selectManifest finds the manifest of target: target itself, or the entry
// of an index named by want (a digest) or, if want is empty, the host
// platform's.
func (s *Service) selectManifest(ctx context.Context, target ocispec.Descriptor, want digest.Digest, depth int) (ocispec.Descriptor, []byte, error) {
	if depth > maxIndexDepth {
		return ocispec.Descriptor{}, nil, fmt.Errorf("index %s: nested more than %d deep: %w", target.Digest, maxIndexDepth, errdefs.ErrInvalidArgument)
	}
	data, err := s.readBlob(ctx, target, maxManifestSize)
	if err != nil {
		return ocispec.Descriptor{}, nil, err
	}
	mt := target.MediaType
	if !remote.IsIndex(mt) && !remote.IsManifest(mt) {
		var probe struct {
			MediaType string            `json:"mediaType"`
			Manifests []json.RawMessage `json:"manifests"`
		}
		if json.Unmarshal(data, &probe) == nil {
			switch {
			case probe.MediaType != "":
				mt = probe.MediaType
			case probe.Manifests != nil:
				mt = ocispec.MediaTypeImageIndex
			default:
				mt = ocispec.MediaTypeImageManifest
			}
		}
	}
	if remote.IsManifest(mt) {
		target.MediaType = mt
		return target, data, nil
	}
	if !remote.IsIndex(mt) {
		return ocispec.Descriptor{}, nil, fmt.Errorf("%s has media type %q, not an image manifest or index: %w", target.Digest, mt, errdefs.ErrNotImplemented)
	}
	var idx ocispec.Index
	if err := json.Unmarshal(data, &idx); err != nil {
		return ocispec.Descriptor{}, nil, fmt.Errorf("index %s is malformed: %v: %w", target.Digest, err, errdefs.ErrInvalidArgument)
	}
	if want != "" {
		for _, d := range idx.Manifests {
			if d.Digest == want {
				return s.selectManifest(ctx, d, "", depth+1)
			}
		}
	}
	sel, err := remote.SelectManifest(idx.Manifests, remote.DefaultPlatform())
	if err != nil && len(idx.Manifests) > 0 {
		// An index without platforms (an archive's): take the only,
		// or the first present, manifest.
		for _, d := range idx.Manifests {
			if d.Platform == nil {
				if ok, _ := s.store.Exists(ctx, d.Digest); ok {
					sel, err = d, nil
					break
				}
			}
		}
	}
	if err != nil {
		return ocispec.Descriptor{}, nil, fmt.Errorf("index %s: %w", target.Digest, err)
	}
	return s.selectManifest(ctx, sel, "", depth+1)
}

// loadParts reads the manifest and config of target for the platform that
// want (a manifest digest, or "") names.
func (s *Service) loadParts(ctx context.Context, target ocispec.Descriptor, want digest.Digest) (*parts, error) {
	mdesc, mdata, err := s.selectManifest(ctx, target, want, 0)
	if err != nil {
		return nil, err
	}
	p := &parts{manifestDesc: mdesc, manifestJSON: mdata}
	if err := json.Unmarshal(mdata, &p.manifest); err != nil {
		return nil, fmt.Errorf("manifest %s is malformed: %v: %w", mdesc.Digest, err, errdefs.ErrInvalidArgument)
	}
	if p.configJSON, err = s.readBlob(ctx, p.manifest.Config, maxConfigSize); err != nil {
		return nil, fmt.Errorf("config of manifest %s: %w", mdesc.Digest, err)
	}
	if err := json.Unmarshal(p.configJSON, &p.config); err != nil {
		return nil, fmt.Errorf("image config %s is malformed: %v: %w", p.manifest.Config.Digest, err, errdefs.ErrInvalidArgument)
	}
	if n, m := len(p.config.RootFS.DiffIDs), len(p.manifest.Layers); n != m {
		return nil, fmt.Errorf("image config %s lists %d diff IDs for the %d layers of manifest %s: %w", p.manifest.Config.Digest, n, m, mdesc.Digest, errdefs.ErrInvalidArgument)
	}
	for i, d := range p.config.RootFS.DiffIDs {
		if err := d.Validate(); err != nil {
			return nil, fmt.Errorf("image config %s: diff ID %d %q: %v: %w", p.manifest.Config.Digest, i, d, err, errdefs.ErrInvalidArgument)
		}
	}
	p.chainIDs = chainIDs(p.config.RootFS.DiffIDs)
	return p, nil
}

func (s *Service) recordParts(ctx context.Context, rec metadata.Image) (*parts, error) {
	p, err := s.loadParts(ctx, rec.Target, digest.Digest(rec.Labels[labelManifest]))
	if err != nil {
		return nil, fmt.Errorf("image %q: %w", rec.Name, err)
	}
	return p, nil
}

// describe makes the Image of a record.
func (s *Service) describe(ctx context.Context, rec metadata.Image, p *parts) Image {
	img := Image{
		Name:         rec.Name,
		Target:       rec.Target,
		Manifest:     p.manifestDesc,
		ID:           p.manifest.Config.Digest,
		Size:         p.manifestDesc.Size + p.manifest.Config.Size,
		Recorded:     rec.UpdatedAt,
		OS:           p.config.OS,
		Architecture: p.config.Architecture,
		Variant:      p.config.Variant,
		Labels:       p.config.Config.Labels,
		DiffIDs:      p.config.RootFS.DiffIDs,
		ChainID:      p.topChain(),
		ConfigJSON:   p.configJSON,
		ManifestJSON: p.manifestJSON,
	}
	if p.config.Created != nil {
		img.Created = *p.config.Created
	}
	for _, l := range p.manifest.Layers {
		img.Size += l.Size
		img.Layers = append(img.Layers, l.Digest)
	}
	for _, c := range p.chainIDs {
		u, err := s.snap.Usage(ctx, c)
		if err != nil {
			img.UnpackedSize = 0
			break
		}
		img.UnpackedSize += u.Size
	}
	return img
}

// List returns the images of ns, sorted by name. An image whose documents
// cannot be read is logged and left out.
func (s *Service) List(ctx context.Context, ns string) ([]Image, error) {
	recs, err := s.db.ListImages(ns, nil)
	if err != nil {
		return nil, fmt.Errorf("list images: %w", err)
	}
	out := make([]Image, 0, len(recs))
	for _, rec := range recs {
		p, err := s.recordParts(ctx, rec)
		if err != nil {
			s.log.Warn("image unreadable", "namespace", ns, "image", rec.Name, "error", err)
			continue
		}
		out = append(out, s.describe(ctx, rec, p))
	}
	return out, nil
}

// Get returns the image nameOrID names in ns: a full or short name
// ("busybox" is docker.io/library/busybox:latest), or an image id (the
// config digest, "sha256:<hex>", or a unique prefix of its hex).
func (s *Service) Get(ctx context.Context, ns, nameOrID string) (Image, error) {
	rec, p, _, err := s.lookup(ctx, ns, nameOrID)
	if err != nil {
		return Image{}, err
	}
	return s.describe(ctx, rec, p), nil
}

// isIDLike reports whether s can be an image id or a prefix of one, and
// returns its hex.
func isIDLike(s string) (string, bool) {
	h := strings.TrimPrefix(s, "sha256:")
	if h == "" || len(h) > 64 {
		return "", false
	}
	for i := 0; i < len(h); i++ {
		if c := h[i]; !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return "", false
		}
	}
	return h, true
}

// byRepoDigest finds a record of ref's repository whose target has ref's
// digest.
func (s *Service) byRepoDigest(ns string, ref reference.Reference) (metadata.Image, bool, error) {
	recs, err := s.db.ListImages(ns, func(r metadata.Image) bool { return r.Target.Digest == ref.Digest })
	if err != nil {
		return metadata.Image{}, false, err
	}
	for _, r := range recs {
		if rr, err := reference.ParseDockerRef(r.Name); err == nil && rr.Name() == ref.Name() {
			return r, true, nil
		}
	}
	return metadata.Image{}, false, nil
}

// lookup finds the record nameOrID names; byID reports whether it was
// found as an image id.
func (s *Service) lookup(ctx context.Context, ns, nameOrID string) (rec metadata.Image, p *parts, byID bool, err error) {
	if err := metadata.ValidateNamespace(ns); err != nil {
		return metadata.Image{}, nil, false, err
	}
	ref, perr := reference.ParseDockerRef(nameOrID)
	display := nameOrID
	if perr == nil {
		display = ref.String()
		rec, err = s.db.GetImage(ns, ref.String())
		if err == nil {
			p, err = s.recordParts(ctx, rec)
			return rec, p, false, err
		}
		if !errdefs.IsNotFound(err) {
			return metadata.Image{}, nil, false, err
		}
		if ref.Digest != "" {
			// name@digest: an image of that repository pulled by tag
			// whose manifest (or index) has that digest, as docker finds it.
			if rec, ok, err := s.byRepoDigest(ns, ref); err != nil || ok {
				if err != nil {
					return metadata.Image{}, nil, false, err
				}
				p, err = s.recordParts(ctx, rec)
				return rec, p, false, err
			}
		}
	}
	hexID, idLike := isIDLike(nameOrID)
	if !idLike {
		if perr != nil {
			return metadata.Image{}, nil, false, perr
		}
		return metadata.Image{}, nil, false, notFound(display)
	}
	// Records under their id ("sha256:<hex>", unnamed loads).
	if len(hexID) == 64 {
		if r, err := s.db.GetImage(ns, "sha256:"+hexID); err == nil {
			p, err := s.recordParts(ctx, r)
			return r, p, true, err
		}
	}
	recs, err := s.db.ListImages(ns, nil)
	if err != nil {
		return metadata.Image{}, nil, false, err
	}
	type match struct {
		rec metadata.Image
		p   *parts
	}
	byIDs := map[digest.Digest]match{}
	for _, r := range recs {
		rp, err := s.recordParts(ctx, r)
		if err != nil {
			continue
		}
		id := rp.manifest.Config.Digest
		if id.Algorithm() == digest.SHA256 && strings.HasPrefix(id.Encoded(), hexID) {
			if _, ok := byIDs[id]; !ok {
				byIDs[id] = match{r, rp} // recs are sorted: the first name
			}
		}
	}
	switch len(byIDs) {
	case 0:
		if perr == nil {
			return metadata.Image{}, nil, false, fmt.Errorf("image %q: not found locally (neither as a name nor as an image id); pull it first: %w", display, errdefs.ErrNotFound)
		}
		return metadata.Image{}, nil, false, fmt.Errorf("image id %q: no such image: %w", nameOrID, errdefs.ErrNotFound)
	case 1:
		for _, m := range byIDs {
			return m.rec, m.p, true, nil
		}
	}
	ids := make([]string, 0, len(byIDs))
	for id := range byIDs {
		ids = append(ids, id.Encoded()[:12])
	}
	sort.Strings(ids)
	return metadata.Image{}, nil, false, fmt.Errorf("image id prefix %q is ambiguous: it matches images %s; give more digits: %w", nameOrID, strings.Join(ids, ", "), errdefs.ErrInvalidArgument)
}

func notFound(name string) error {
	return fmt.Errorf("image %q: not found locally; pull it first: %w", name, errdefs.ErrNotFound)
}

// namesOfID returns the names in ns whose image id is id, sorted.
func (s *Service) namesOfID(ctx context.Context, ns string, id digest.Digest) ([]metadata.Image, error) {
	recs, err := s.db.ListImages(ns, nil)
	if err != nil {
		return nil, err
	}
	var out []metadata.Image
	for _, r := range recs {
		p, err := s.recordParts(ctx, r)
		if err != nil {
			continue
		}
		if p.manifest.Config.Digest == id {
			out = append(out, r)
		}
	}
	return out, nil
}

// record stores name → target in ns, replacing an existing record of the
// name, within tx.
func recordImage(tx *metadata.Tx, ns string, img metadata.Image) (metadata.Image, error) {
	if _, err := tx.GetImage(ns, img.Name); err == nil {
		return tx.UpdateImage(ns, img, "target", "labels")
	} else if !errdefs.IsNotFound(err) {
		return metadata.Image{}, err
	}
	return tx.CreateImage(ns, img)
}
