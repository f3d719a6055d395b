package imagearchive

import (
	"archive/tar"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"time"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/skiff-containers/skiff/image/content"
	"github.com/skiff-containers/skiff/image/reference"
)

// Export writes images as an OCI archive to w: oci-layout, index.json
// (one entry per image, named with io.containerd.image.name and, when the
// name has a tag, org.opencontainers.image.ref.name) and every blob
// reachable from the targets. A blob missing from the store is an
// ErrNotFound error, returned before anything is written. The archive is
// deterministic: the same images give the same bytes.
func Export(ctx context.Context, w io.Writer, store *content.Store, images []Image) error {
	if store == nil {
		return invalid("export: no content store")
	}
	if len(images) == 0 {
		return invalid("export: no image to export")
	}
	idx := ocispec.Index{MediaType: ocispec.MediaTypeImageIndex, Manifests: []ocispec.Descriptor{}}
	idx.SchemaVersion = 2
	var blobs []ocispec.Descriptor
	seen := map[digest.Digest]bool{}
	for _, img := range images {
		t := img.Target
		if !isManifestType(t.MediaType) && !isIndexType(t.MediaType) {
			return invalid("export: image %q: target %s has media type %q, not an image manifest or index", img.Name, t.Digest, t.MediaType)
		}
		err := walk(ctx, store, t, 0, func(d ocispec.Descriptor) error {
			info, err := store.Info(ctx, d.Digest)
			if err != nil {
				return err
			}
			if info.Size != d.Size {
				return invalid("blob %s is %d bytes in the store but its descriptor says %d", d.Digest, info.Size, d.Size)
			}
			if !seen[d.Digest] {
				seen[d.Digest] = true
				blobs = append(blobs, d)
			}
			return nil
		})
		if err != nil {
			return fmt.Errorf("export: image %q: %w", img.Name, err)
		}
		if img.Name != "" {
			ref, err := reference.ParseDockerRef(img.Name)
			if err != nil {
				return invalid("export: image name %q: %v", img.Name, err)
			}
			t.Annotations = map[string]string{AnnotationContainerdImageName: ref.String()}
			if ref.Tag != "" {
				t.Annotations[ocispec.AnnotationRefName] = ref.Tag
			}
		} else {
			t.Annotations = nil
		}
		idx.Manifests = append(idx.Manifests, t)
	}
	layout, err := json.Marshal(ocispec.ImageLayout{Version: ocispec.ImageLayoutVersion})
	if err != nil {
		return err
	}
	index, err := json.Marshal(idx)
	if err != nil {
		return err
	}
	tw := tar.NewWriter(w)
	mtime := time.Unix(0, 0)
	for _, dir := range []string{"blobs/", "blobs/" + string(digest.SHA256) + "/"} {
		if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: dir, Mode: 0o755, ModTime: mtime, Format: tar.FormatPAX}); err != nil {
			return err
		}
	}
	for _, f := range []struct {
		name string
		data []byte
	}{{ocispec.ImageLayoutFile, layout}, {ocispec.ImageIndexFile, index}} {
		if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: f.name, Mode: 0o644, Size: int64(len(f.data)), ModTime: mtime, Format: tar.FormatPAX}); err != nil {
			return err
		}
		if _, err := tw.Write(f.data); err != nil {
			return err
		}
	}
	for _, d := range blobs {
		if err := exportBlob(ctx, tw, store, d, mtime); err != nil {
			return err
		}
	}
	return tw.Close()
}

func exportBlob(ctx context.Context, tw *tar.Writer, store *content.Store, d ocispec.Descriptor, mtime time.Time) error {
	ra, err := store.ReaderAt(ctx, d)
	if err != nil {
		return fmt.Errorf("export: %w", err)
	}
	defer ra.Close()
	name := "blobs/" + d.Digest.Algorithm().String() + "/" + d.Digest.Encoded()
	if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: name, Mode: 0o644, Size: ra.Size(), ModTime: mtime, Format: tar.FormatPAX}); err != nil {
		return err
	}
	if _, err := io.Copy(tw, ctxReader{ctx, io.NewSectionReader(ra, 0, ra.Size())}); err != nil {
		return fmt.Errorf("export: blob %s: %w", d.Digest, err)
	}
	return nil
}
