package engine

import (
	"context"

	"github.com/skiff-containers/skiff/engine/containers"
	"github.com/skiff-containers/skiff/engine/images"
)

// imageCommitter adapts the image service to what the container service's
// Commit needs.
type imageCommitter struct{ images *images.Service }

func (c imageCommitter) CommitImage(ctx context.Context, ns string, ic containers.ImageCommit) (containers.CommittedImage, error) {
	img, err := c.images.Commit(ctx, ns, images.CommitOptions{
		Base: ic.Base, Layer: ic.Layer, Config: ic.Config, Changes: ic.Changes,
		Ref: ic.Ref, Author: ic.Author, Comment: ic.Comment, CreatedBy: ic.CreatedBy,
	})
	if err != nil {
		return containers.CommittedImage{}, err
	}
	return containers.CommittedImage{Name: img.Name, ID: img.ID}, nil
}
