package images

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"time"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/skiff-containers/skiff/engine/metadata"
	"github.com/skiff-containers/skiff/errdefs"
	"github.com/skiff-containers/skiff/image/reference"
	"github.com/skiff-containers/skiff/image/remote"
)

// emptyLayerDiffID is the digest of an empty tar stream (1024 zero
// bytes): a commit without changes adds no layer, as docker's.
const emptyLayerDiffID = digest.Digest("sha256:5f70bf18a086007016e948b04aed3b82103a36bea41755b6cddfaf10ace3c6ef")

// CommitOptions describe an image Commit makes of a container's changes.
type CommitOptions struct {
	// Base is the image the changes apply to (its id, or a name).
	Base string
	// Layer is the changes as an uncompressed OCI layer tar stream.
	Layer io.Reader
	// Config is the new image's configuration before Changes.
	Config ocispec.ImageConfig
	// Changes are Dockerfile instructions applied to Config (see
	// ParseChanges).
	Changes []string
	// Ref names the image; empty records it under its id (dangling).
	Ref string
	// Author, Comment and CreatedBy fill the new history entry; Author
	// also the config's author.
	Author, Comment, CreatedBy string
}

// Commit makes an image of Base plus the layer read from o.Layer (stored
// gzip-compressed; none if it is empty, as docker does), with o.Config
// and o.Changes, a history entry, and records it in ns under o.Ref (or
// its id), unpacked. The manifest keeps the base's format (docker schema
// 2 or OCI). All or nothing: on error nothing is recorded and what was
// stored is collected.
func (s *Service) Commit(ctx context.Context, ns string, o CommitOptions) (Image, error) {
	if err := metadata.ValidateNamespace(ns); err != nil {
		return Image{}, fmt.Errorf("commit: %w", err)
	}
	name := ""
	if o.Ref != "" {
		pr, err := reference.ParseDockerRef(o.Ref)
		if err != nil {
			return Image{}, fmt.Errorf("commit: %w", err)
		}
		if pr.Digest != "" {
			return Image{}, fmt.Errorf("commit as %q: the name cannot carry a digest; give name[:tag]: %w", o.Ref, errdefs.ErrInvalidArgument)
		}
		name = pr.String()
	}
	cfg, err := ApplyChanges(o.Config, o.Changes)
	if err != nil {
		return Image{}, fmt.Errorf("commit: %w", err)
	}
	s.gate.RLock()
	base, bp, _, err := s.lookup(ctx, ns, o.Base)
	if err != nil {
		s.gate.RUnlock()
		return Image{}, fmt.Errorf("commit: base image: %w", err)
	}
	l, err := s.newLease(ns, "commit")
	if err != nil {
		s.gate.RUnlock()
		return Image{}, fmt.Errorf("commit: %w", err)
	}
	rec, p, err := s.commitImage(ctx, ns, name, base, bp, cfg, o, l)
	s.gate.RUnlock()
	if err != nil {
		s.abandon(ctx, l, "commit")
		return Image{}, fmt.Errorf("commit: %w", err)
	}
	if err := l.release(); err != nil {
		s.log.Warn("cannot remove commit lease", "lease", l.id, "error", err)
	}
	img := s.describe(ctx, rec, p)
	s.log.Info("committed image", "namespace", ns, "image", img.Name, "id", img.ID)
	return img, nil
}

func (s *Service) commitImage(ctx context.Context, ns, name string, base metadata.Image, bp *parts, cfg ocispec.ImageConfig, o CommitOptions, l *lease) (metadata.Image, *parts, error) {
	// The base's blobs are leased too: removing the base meanwhile must
	// not collect what the new image shares with it.
	if err := l.addBlobs(blobsOf(base, bp)...); err != nil {
		return metadata.Image{}, nil, err
	}
	layer, diffID, err := s.importLayer(ctx, o.Layer, l)
	if err != nil {
		return metadata.Image{}, nil, fmt.Errorf("store the layer of changes: %w", err)
	}
	docker := bp.manifestDesc.MediaType == remote.MediaTypeDockerManifest
	manifestType, configType := ocispec.MediaTypeImageManifest, ocispec.MediaTypeImageConfig
	if docker {
		manifestType, configType, layer.MediaType = remote.MediaTypeDockerManifest, remote.MediaTypeDockerConfig, remote.MediaTypeDockerLayerGzip
	}

	now := time.Now().UTC()
	img := bp.config
	img.Created, img.Author, img.Config = &now, o.Author, cfg
	empty := diffID == emptyLayerDiffID
	img.RootFS.DiffIDs = slices.Clone(bp.config.RootFS.DiffIDs)
	layers := slices.Clone(bp.manifest.Layers)
	if !empty {
		img.RootFS.DiffIDs = append(img.RootFS.DiffIDs, diffID)
		layers = append(layers, layer)
	}
	img.History = append(slices.Clone(bp.config.History), ocispec.History{
		Created: &now, CreatedBy: o.CreatedBy, Author: o.Author, Comment: o.Comment, EmptyLayer: empty,
	})
	cdata, err := commitConfigJSON(img, o.Comment)
	if err != nil {
		return metadata.Image{}, nil, err
	}
	return s.storeImage(ctx, ns, name, l, manifestType, configType, cdata, layers)
}

// commitConfigJSON encodes img with docker's top-level "comment" (the
// commit message, which docker's image inspect shows as Comment; the OCI
// config has no such field).
func commitConfigJSON(img ocispec.Image, comment string) ([]byte, error) {
	data, err := json.Marshal(img)
	if err != nil || comment == "" {
		return data, err
	}
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(data, &fields); err != nil {
		return nil, err
	}
	if fields["comment"], err = json.Marshal(comment); err != nil {
		return nil, err
	}
	return json.Marshal(fields)
}
