// Package containerstest gives tests of the container service (and of what
// wires it) a local busybox image without an image service: the image of
// internal/imagebuild, its layer applied into a committed snapshot, served
// by a fake containers.ImageSource. It is imported only by tests.
package containerstest

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"

	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/skiff-containers/skiff/engine/containers"
	"github.com/skiff-containers/skiff/errdefs"
	"github.com/skiff-containers/skiff/image/archive"
	"github.com/skiff-containers/skiff/image/snapshot"
	"github.com/skiff-containers/skiff/internal/imagebuild"
)

// Images is a containers.ImageSource holding one image, under its full
// name and the short name "busybox".
type Images struct {
	Image containers.Image
}

// ContainerImage implements containers.ImageSource.
func (f *Images) ContainerImage(ctx context.Context, ns, ref string) (containers.Image, error) {
	if ref == "busybox" || ref == "busybox:latest" || ref == f.Image.Name {
		return f.Image, nil
	}
	return containers.Image{}, fmt.Errorf("image %q: not present locally: %w", ref, errdefs.ErrNotFound)
}

// Busybox builds the busybox image from the host's static busybox and
// unpacks its layer into sn as the committed snapshot named by its chain
// ID (the layer's diff ID), unless it exists already.
func Busybox(ctx context.Context, sn *snapshot.Snapshotter) (*Images, error) {
	if err := imagebuild.Available(); err != nil {
		return nil, err
	}
	img, err := imagebuild.Build(imagebuild.Options{})
	if err != nil {
		return nil, err
	}
	var cfg ocispec.Image
	if err := json.Unmarshal(img.Config.Data, &cfg); err != nil {
		return nil, err
	}
	chainID := img.DiffID.String()
	if _, err := sn.Stat(ctx, chainID); err != nil {
		key := "extract-" + img.DiffID.Encoded()
		mounts, err := sn.Prepare(ctx, key, "")
		if err != nil {
			return nil, err
		}
		dir, overlay, ok := snapshot.WritableDir(mounts)
		if !ok {
			sn.Remove(ctx, key)
			return nil, fmt.Errorf("snapshot %s has no writable directory", key)
		}
		if _, err := archive.Apply(ctx, dir, bytes.NewReader(img.Layer.Data), archive.ApplyOptions{Overlay: overlay, Name: img.Layer.Descriptor.Digest.String()}); err != nil {
			sn.Remove(ctx, key)
			return nil, err
		}
		if err := sn.Commit(ctx, chainID, key); err != nil {
			sn.Remove(ctx, key)
			return nil, err
		}
	}
	return &Images{Image: containers.Image{
		Name:    img.Name,
		ID:      img.Config.Descriptor.Digest,
		Config:  cfg,
		ChainID: chainID,
	}}, nil
}
