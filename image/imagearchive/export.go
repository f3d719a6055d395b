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
// name has a tag, org.opencontainers.image.ref.name), every blob
// reachable from the targets, and docker's manifest.json for the images
// whose target is a manifest, so that `docker load` reads it too. A blob missing from the store is an
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
	docker := []dockerEntry{}
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
		var repoTag string
		if img.Name != "" {
			ref, err := reference.ParseDockerRef(img.Name)
			if err != nil {
				return invalid("export: image name %q: %v", img.Name, err)
			}
			t.Annotations = map[string]string{AnnotationContainerdImageName: ref.String()}
			if ref.Tag != "" {
				t.Annotations[ocispec.AnnotationRefName] = ref.Tag
				if ref.Digest == "" {
					repoTag = ref.Familiar()
				}
			}
		} else {
			t.Annotations = nil
		}
		idx.Manifests = append(idx.Manifests, t)
		if isManifestType(t.MediaType) {
			e, err := dockerEntryOf(ctx, store, t, repoTag)
			if err != nil {
				return fmt.Errorf("export: image %q: %w", img.Name, err)
			}
			docker = mergeDockerEntry(docker, e)
		}
	}
	layout, err := json.Marshal(ocispec.ImageLayout{Version: ocispec.ImageLayoutVersion})
	if err != nil {
		return err
	}
	index, err := json.Marshal(idx)
	if err != nil {
		return err
	}
	dockerManifest, err := json.Marshal(docker)
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
	}{{ocispec.ImageLayoutFile, layout}, {ocispec.ImageIndexFile, index}, {"manifest.json", dockerManifest}} {
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

// dockerEntry is one image of a `docker save` manifest.json. Its paths
// point into the OCI layout's blobs, as docker 25 and later write them, so
// one archive serves both `docker load` and OCI tools.
type dockerEntry struct {
	Config   string   `json:"Config"`
	RepoTags []string `json:"RepoTags"`
	Layers   []string `json:"Layers"`
}

func blobPath(d digest.Digest) string { return "blobs/" + d.Algorithm().String() + "/" + d.Encoded() }

func dockerEntryOf(ctx context.Context, store *content.Store, desc ocispec.Descriptor, repoTag string) (dockerEntry, error) {
	b, err := readBlob(ctx, store, desc)
	if err != nil {
		return dockerEntry{}, err
	}
	var m ocispec.Manifest
	if err := json.Unmarshal(b, &m); err != nil {
		return dockerEntry{}, invalid("manifest %s: %v", desc.Digest, err)
	}
	e := dockerEntry{Config: blobPath(m.Config.Digest), RepoTags: []string{}, Layers: []string{}}
	if repoTag != "" {
		e.RepoTags = append(e.RepoTags, repoTag)
	}
	for _, l := range m.Layers {
		e.Layers = append(e.Layers, blobPath(l.Digest))
	}
	return e, nil
}

// mergeDockerEntry adds e, joining the tags of an entry with the same
// config and layers (one image saved under several names).
func mergeDockerEntry(entries []dockerEntry, e dockerEntry) []dockerEntry {
	for i, o := range entries {
		if o.Config == e.Config && fmt.Sprint(o.Layers) == fmt.Sprint(e.Layers) {
			entries[i].RepoTags = append(entries[i].RepoTags, e.RepoTags...)
			return entries
		}
	}
	return append(entries, e)
}

func exportBlob(ctx context.Context, tw *tar.Writer, store *content.Store, d ocispec.Descriptor, mtime time.Time) error {
	ra, err := store.ReaderAt(ctx, d)
	if err != nil {
		return fmt.Errorf("export: %w", err)
	}
	defer ra.Close()
	name := blobPath(d.Digest)
	if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: name, Mode: 0o644, Size: ra.Size(), ModTime: mtime, Format: tar.FormatPAX}); err != nil {
		return err
	}
	if _, err := io.Copy(tw, ctxReader{ctx, io.NewSectionReader(ra, 0, ra.Size())}); err != nil {
		return fmt.Errorf("export: blob %s: %w", d.Digest, err)
	}
	return nil
}
