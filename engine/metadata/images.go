package metadata

import (
	"fmt"
	"time"

	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/skiff-containers/skiff/errdefs"
)

// Image is an image record: a normalised name pointing at a manifest or index
// in the content store.
type Image struct {
	// Name is the normalised reference, e.g. docker.io/library/busybox:latest.
	Name string `json:"name"`
	// Target is the descriptor of the manifest or index; MediaType, Digest
	// and Size are required.
	Target    ocispec.Descriptor `json:"target"`
	Labels    map[string]string  `json:"labels,omitempty"`
	CreatedAt time.Time          `json:"createdAt"`
	UpdatedAt time.Time          `json:"updatedAt"`
}

const kindImage = "image"

func validateImage(ns string, img *Image) error {
	if err := ValidateImageName(img.Name); err != nil {
		return fmt.Errorf("namespace %q: %w", ns, err)
	}
	fail := func(msg string) error {
		return recordErr(ns, kindImage, img.Name, fmt.Errorf("%s: %w", msg, errdefs.ErrInvalidArgument))
	}
	if img.Target.MediaType == "" {
		return fail("target has no media type")
	}
	if err := img.Target.Digest.Validate(); err != nil {
		return fail(fmt.Sprintf("target digest %q: %v", img.Target.Digest, err))
	}
	if img.Target.Size < 0 {
		return fail(fmt.Sprintf("target size %d is negative", img.Target.Size))
	}
	if err := validateLabels(fmt.Sprintf("namespace %q: image %q", ns, img.Name), img.Labels); err != nil {
		return err
	}
	return nil
}

// CreateImage stores a new image, setting CreatedAt and UpdatedAt. It fails
// with ErrAlreadyExists if the name is taken in ns.
func (t *Tx) CreateImage(ns string, img Image) (Image, error) {
	if err := validateImage(ns, &img); err != nil {
		return Image{}, err
	}
	if err := t.writable(fmt.Sprintf("create image %q", img.Name)); err != nil {
		return Image{}, err
	}
	b, err := t.kindBucket(ns, bucketImages, true)
	if err != nil {
		return Image{}, err
	}
	if b.Get([]byte(img.Name)) != nil {
		return Image{}, recordErr(ns, kindImage, img.Name, errdefs.ErrAlreadyExists)
	}
	img.CreatedAt, img.UpdatedAt = t.now, t.now
	data, err := putRecord(b, img.Name, &img)
	if err != nil {
		return Image{}, recordErr(ns, kindImage, img.Name, err)
	}
	return roundTrip[Image](data)
}

// GetImage returns the image called name in ns, or ErrNotFound.
func (t *Tx) GetImage(ns, name string) (Image, error) {
	if err := ValidateImageName(name); err != nil {
		return Image{}, fmt.Errorf("namespace %q: %w", ns, err)
	}
	b, err := t.kindBucket(ns, bucketImages, false)
	if err != nil {
		return Image{}, err
	}
	var img Image
	found, err := getRecord(b, name, &img)
	if err != nil {
		return Image{}, recordErr(ns, kindImage, name, err)
	}
	if !found {
		return Image{}, recordErr(ns, kindImage, name, errdefs.ErrNotFound)
	}
	return img, nil
}

// ListImages returns the images of ns sorted by name, those filter accepts
// (all if filter is nil). An unknown namespace has no images.
func (t *Tx) ListImages(ns string, filter func(Image) bool) ([]Image, error) {
	b, err := t.kindBucket(ns, bucketImages, false)
	if err != nil {
		return nil, err
	}
	out, err := listRecords(b, filter)
	if err != nil {
		return nil, fmt.Errorf("namespace %q: list images: %w", ns, err)
	}
	return out, nil
}

// UpdateImage updates the stored image called img.Name. With no fieldPaths
// every mutable field (Target, Labels) is replaced by img's; otherwise only
// the listed ones: "target", "labels", "labels.<key>" (an empty or absent
// value deletes that key). CreatedAt is kept, UpdatedAt set. Unknown paths
// are ErrInvalidArgument, a missing image ErrNotFound.
func (t *Tx) UpdateImage(ns string, img Image, fieldPaths ...string) (Image, error) {
	if err := ValidateImageName(img.Name); err != nil {
		return Image{}, fmt.Errorf("namespace %q: %w", ns, err)
	}
	if err := t.writable(fmt.Sprintf("update image %q", img.Name)); err != nil {
		return Image{}, err
	}
	cur, err := t.GetImage(ns, img.Name)
	if err != nil {
		return Image{}, err
	}
	next := cur
	if len(fieldPaths) == 0 {
		next.Target = img.Target
		next.Labels = copyLabels(img.Labels)
	}
	for _, p := range fieldPaths {
		switch {
		case p == "target":
			next.Target = img.Target
		case applyLabelPaths(p, &next.Labels, img.Labels):
		default:
			return Image{}, recordErr(ns, kindImage, img.Name, fmt.Errorf("cannot update field %q (updatable: target, labels, labels.<key>): %w", p, errdefs.ErrInvalidArgument))
		}
	}
	if err := validateImage(ns, &next); err != nil {
		return Image{}, err
	}
	next.UpdatedAt = t.now
	b, err := t.kindBucket(ns, bucketImages, false)
	if err != nil {
		return Image{}, err
	}
	data, err := putRecord(b, next.Name, &next)
	if err != nil {
		return Image{}, recordErr(ns, kindImage, img.Name, err)
	}
	return roundTrip[Image](data)
}

// DeleteImage removes the image called name from ns, or fails with
// ErrNotFound. The content it points at is left to garbage collection.
func (t *Tx) DeleteImage(ns, name string) error {
	if err := ValidateImageName(name); err != nil {
		return fmt.Errorf("namespace %q: %w", ns, err)
	}
	if err := t.writable(fmt.Sprintf("delete image %q", name)); err != nil {
		return err
	}
	b, err := t.kindBucket(ns, bucketImages, false)
	if err != nil {
		return err
	}
	if b == nil || b.Get([]byte(name)) == nil {
		return recordErr(ns, kindImage, name, errdefs.ErrNotFound)
	}
	if err := b.Delete([]byte(name)); err != nil {
		return recordErr(ns, kindImage, name, err)
	}
	return nil
}

// CreateImage: see Tx.CreateImage.
func (db *DB) CreateImage(ns string, img Image) (out Image, err error) {
	err = db.Update(func(t *Tx) error { out, err = t.CreateImage(ns, img); return err })
	return out, err
}

// GetImage: see Tx.GetImage.
func (db *DB) GetImage(ns, name string) (out Image, err error) {
	err = db.View(func(t *Tx) error { out, err = t.GetImage(ns, name); return err })
	return out, err
}

// ListImages: see Tx.ListImages.
func (db *DB) ListImages(ns string, filter func(Image) bool) (out []Image, err error) {
	err = db.View(func(t *Tx) error { out, err = t.ListImages(ns, filter); return err })
	return out, err
}

// UpdateImage: see Tx.UpdateImage.
func (db *DB) UpdateImage(ns string, img Image, fieldPaths ...string) (out Image, err error) {
	err = db.Update(func(t *Tx) error { out, err = t.UpdateImage(ns, img, fieldPaths...); return err })
	return out, err
}

// DeleteImage: see Tx.DeleteImage.
func (db *DB) DeleteImage(ns, name string) error {
	return db.Update(func(t *Tx) error { return t.DeleteImage(ns, name) })
}
