package remote

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"golang.org/x/sync/errgroup"

	"github.com/skiff-containers/skiff/errdefs"
	"github.com/skiff-containers/skiff/image/content"
	"github.com/skiff-containers/skiff/image/reference"
)

// Limits on untrusted manifests.
const (
	maxConfigSize = 32 << 20
	maxLayers     = 500
)

// Image is what Pull fetched: the descriptors of the image's parts, all of
// them stored in the content store.
type Image struct {
	// Name is the canonical reference pulled
	// ("docker.io/library/busybox:latest").
	Name string
	// Target is what the reference resolved to: an index (manifest list)
	// or a manifest. Its digest is the image's repo digest.
	Target ocispec.Descriptor
	// Manifest is the manifest for the selected platform (equal to Target
	// if the reference named a manifest).
	Manifest ocispec.Descriptor
	// Config is the image configuration blob.
	Config ocispec.Descriptor
	// Layers are the layer blobs, base first.
	Layers []ocispec.Descriptor
	// Platform is the platform the image's configuration declares.
	Platform ocispec.Platform
}

// ProgressStatus is the state of one blob in a pull.
type ProgressStatus string

// The states a blob goes through. Exists and Done are final.
const (
	ProgressWaiting     ProgressStatus = "waiting"     // queued, or waiting for another pull of the same blob
	ProgressDownloading ProgressStatus = "downloading" // bytes are arriving
	ProgressRetrying    ProgressStatus = "retrying"    // the transfer failed and will be restarted
	ProgressExists      ProgressStatus = "exists"      // already in the store
	ProgressDone        ProgressStatus = "done"        // downloaded, verified and stored
)

// Progress reports on one blob of a pull.
type Progress struct {
	Desc   ocispec.Descriptor
	Status ProgressStatus
	Done   int64 // bytes received so far (of this attempt)
	Total  int64 // the blob's size
}

// PullOptions tunes Pull.
type PullOptions struct {
	// Platform selects the manifest from an index; nil means this host's
	// (DefaultPlatform).
	Platform *ocispec.Platform
	// Concurrency bounds the blobs fetched at once (default 3).
	Concurrency int
	// Progress, if set, is called as blobs progress. It is called from
	// several goroutines at once and must be safe for that.
	Progress func(Progress)
}

// Pull fetches the image ref names into store: it resolves ref, selects
// the platform's manifest from an index, fetches config and layers
// concurrently (each verified before it becomes visible in the store),
// then stores the manifest and the index. Blobs already in the store are
// not fetched again. Stored children before parents: once a manifest is
// in the store, so are its config and layers.
//
// On failure, blobs that were completely fetched and verified stay in the
// store (a retry reuses them; garbage collection removes them if no image
// refers to them); nothing partial does.
func (r *Resolver) Pull(ctx context.Context, ref reference.Reference, store *content.Store, opts PullOptions) (Image, error) {
	img, err := r.pull(ctx, ref, store, opts)
	if err != nil {
		return Image{}, fmt.Errorf("pull %s: %w", ref.String(), err)
	}
	return img, nil
}

func (r *Resolver) pull(ctx context.Context, ref reference.Reference, store *content.Store, opts PullOptions) (Image, error) {
	if store == nil {
		return Image{}, fmt.Errorf("%w: no content store", errdefs.ErrInvalidArgument)
	}
	want := DefaultPlatform()
	if opts.Platform != nil {
		want = NormalizePlatform(*opts.Platform)
	}
	if opts.Concurrency <= 0 {
		opts.Concurrency = defaultConcurrency
	}
	report := func(p Progress) {}
	if opts.Progress != nil {
		report = opts.Progress
	}

	target, err := r.resolve(ctx, ref)
	if err != nil {
		return Image{}, err
	}
	img := Image{Name: ref.String(), Target: target}
	type pending struct {
		desc ocispec.Descriptor
		data []byte
	}
	var manifests []pending // stored last, children first

	mdesc := target
	body, mdesc, err := r.FetchManifest(ctx, ref, mdesc)
	if err != nil {
		return Image{}, err
	}
	mdesc.MediaType = checkedMediaType(mdesc.MediaType, body)
	if IsIndex(mdesc.MediaType) {
		var idx ocispec.Index
		if err := json.Unmarshal(body, &idx); err != nil {
			return Image{}, fmt.Errorf("%w: index %s is malformed: %v", errdefs.ErrInvalidArgument, mdesc.Digest, err)
		}
		sel, err := SelectManifest(idx.Manifests, want)
		if err != nil {
			return Image{}, fmt.Errorf("index %s: %w", mdesc.Digest, err)
		}
		if !IsManifest(sel.MediaType) {
			return Image{}, fmt.Errorf("%w: index %s: the entry for %s is a %q, not an image manifest (nested indexes are not supported)", errdefs.ErrNotImplemented, mdesc.Digest, FormatPlatform(want), sel.MediaType)
		}
		img.Target.MediaType = mdesc.MediaType
		manifests = append(manifests, pending{img.Target, body})
		body, mdesc, err = r.FetchManifest(ctx, ref, sel)
		if err != nil {
			return Image{}, err
		}
		mdesc.MediaType = checkedMediaType(mdesc.MediaType, body)
	} else {
		img.Target.MediaType = mdesc.MediaType
	}
	if !IsManifest(mdesc.MediaType) {
		return Image{}, unsupported(mdesc)
	}
	img.Manifest = ocispec.Descriptor{MediaType: mdesc.MediaType, Digest: mdesc.Digest, Size: mdesc.Size, Platform: mdesc.Platform}
	manifests = append(manifests, pending{img.Manifest, body})
	var m ocispec.Manifest
	if err := json.Unmarshal(body, &m); err != nil {
		return Image{}, fmt.Errorf("%w: manifest %s is malformed: %v", errdefs.ErrInvalidArgument, mdesc.Digest, err)
	}
	if err := checkManifest(mdesc, m); err != nil {
		return Image{}, err
	}
	img.Config, img.Layers = m.Config, m.Layers

	// Config and layers, concurrently, each once.
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(opts.Concurrency)
	seen := map[digest.Digest]bool{}
	for _, d := range append([]ocispec.Descriptor{m.Config}, m.Layers...) {
		if seen[d.Digest] {
			continue
		}
		seen[d.Digest] = true
		report(Progress{Desc: d, Status: ProgressWaiting, Total: d.Size})
		g.Go(func() error { return r.fetchToStore(gctx, ref, d, store, report) })
	}
	if err := g.Wait(); err != nil {
		return Image{}, err
	}
	p, err := readPlatform(ctx, store, m.Config)
	if err != nil {
		return Image{}, err
	}
	img.Platform = p

	for i := len(manifests) - 1; i >= 0; i-- {
		if err := putBytes(ctx, store, manifests[i].desc, manifests[i].data); err != nil {
			return Image{}, err
		}
	}
	return img, nil
}

// checkedMediaType prefers the document's own mediaType over what the
// descriptor or server claimed.
func checkedMediaType(claimed string, body []byte) string {
	if mt := detectMediaType(claimed, body); mt != "" {
		return mt
	}
	return claimed
}

func unsupported(d ocispec.Descriptor) error {
	switch d.MediaType {
	case MediaTypeDockerSchema1, MediaTypeDockerSchema1Signed:
		return fmt.Errorf("%w: manifest %s is Docker image manifest schema 1, which is deprecated and not supported: re-push the image with a current docker, buildah or skopeo", errdefs.ErrNotImplemented, d.Digest)
	}
	return fmt.Errorf("%w: manifest %s has media type %q, which is not an image manifest or index skiff can pull", errdefs.ErrNotImplemented, d.Digest, d.MediaType)
}

// checkManifest refuses manifests that are not container images or are
// absurd.
func checkManifest(desc ocispec.Descriptor, m ocispec.Manifest) error {
	bad := func(format string, a ...any) error {
		return fmt.Errorf("%w: manifest %s: %s", errdefs.ErrInvalidArgument, desc.Digest, fmt.Sprintf(format, a...))
	}
	if m.SchemaVersion != 2 {
		return bad("schemaVersion %d, want 2", m.SchemaVersion)
	}
	switch m.Config.MediaType {
	case ocispec.MediaTypeImageConfig, MediaTypeDockerConfig:
	default:
		return fmt.Errorf("%w: manifest %s: config of media type %q: this is not a container image (an artifact such as a chart or signature?)", errdefs.ErrNotImplemented, desc.Digest, m.Config.MediaType)
	}
	if err := m.Config.Digest.Validate(); err != nil {
		return bad("config digest %q: %v", m.Config.Digest, err)
	}
	if m.Config.Size <= 0 || m.Config.Size > maxConfigSize {
		return bad("config size %d is out of range (1..%d)", m.Config.Size, maxConfigSize)
	}
	if len(m.Layers) > maxLayers {
		return bad("%d layers, more than the %d skiff accepts", len(m.Layers), maxLayers)
	}
	for i, l := range m.Layers {
		if err := l.Digest.Validate(); err != nil {
			return bad("layer %d: digest %q: %v", i, l.Digest, err)
		}
		if l.Size < 0 {
			return bad("layer %d (%s): negative size %d", i, l.Digest, l.Size)
		}
		switch l.MediaType {
		case ocispec.MediaTypeImageLayer, ocispec.MediaTypeImageLayerGzip, ocispec.MediaTypeImageLayerZstd,
			ocispec.MediaTypeImageLayerNonDistributable, ocispec.MediaTypeImageLayerNonDistributableGzip, ocispec.MediaTypeImageLayerNonDistributableZstd, //nolint:staticcheck // still met in the wild
			MediaTypeDockerLayerGzip, MediaTypeDockerLayerForeign:
		default:
			return fmt.Errorf("%w: manifest %s: layer %d (%s) has media type %q, which is not a container image layer", errdefs.ErrNotImplemented, desc.Digest, i, l.Digest, l.MediaType)
		}
	}
	return nil
}

// fetchToStore fetches blob desc into store unless it is there already.
// A transfer that breaks off (truncated body, stalled, reset) is restarted
// up to MaxAttempts times; a digest mismatch is not retried.
func (r *Resolver) fetchToStore(ctx context.Context, ref reference.Reference, desc ocispec.Descriptor, store *content.Store, report func(Progress)) error {
	ingest := "remote-" + desc.Digest.String()
	for attempt := 1; ; attempt++ {
		w, err := store.Writer(ctx, ingest, ocispec.Descriptor{MediaType: desc.MediaType, Digest: desc.Digest, Size: desc.Size})
		if errdefs.IsAlreadyExists(err) {
			report(Progress{Desc: desc, Status: ProgressExists, Done: desc.Size, Total: desc.Size})
			return nil
		}
		if err != nil {
			return err // names the blob and the store
		}
		retry, err := r.transfer(ctx, ref, desc, w, report)
		if err == nil {
			err = w.Commit(ctx)
			if errdefs.IsAlreadyExists(err) {
				err = nil
			}
			var ve *content.VerifyError
			if errors.As(err, &ve) && !ve.TooLarge && ve.Size < desc.Size {
				retry = true // the body ended early without an error
			}
		}
		w.Close()
		if err == nil {
			report(Progress{Desc: desc, Status: ProgressDone, Done: desc.Size, Total: desc.Size})
			return nil
		}
		if !retry || attempt >= r.opts.MaxAttempts || ctx.Err() != nil {
			if retry && attempt > 1 {
				return fmt.Errorf("%w (gave up after %d attempts)", err, attempt)
			}
			return err
		}
		report(Progress{Desc: desc, Status: ProgressRetrying, Total: desc.Size})
		if berr := r.backoff(ctx, attempt, 0); berr != nil {
			return fmt.Errorf("blob %s: %w (after %v)", desc.Digest, berr, err)
		}
	}
}

// transfer copies the blob's body into w. It reports whether a failure is
// worth restarting the transfer for (a broken body, not a refusal or a
// full disk).
func (r *Resolver) transfer(ctx context.Context, ref reference.Reference, desc ocispec.Descriptor, w content.Writer, report func(Progress)) (retry bool, err error) {
	rc, e, err := r.openBlob(ctx, ref, desc)
	if err != nil {
		return false, err // send already retried what was worth it
	}
	defer rc.Close()
	buf := make([]byte, 128<<10)
	var done int64
	for {
		n, rerr := rc.Read(buf)
		if n > 0 {
			if _, werr := w.Write(buf[:n]); werr != nil {
				return false, werr // names the blob and the store
			}
			done += int64(n)
			report(Progress{Desc: desc, Status: ProgressDownloading, Done: done, Total: desc.Size})
		}
		if rerr == io.EOF {
			return false, nil
		}
		if rerr != nil {
			what := fmt.Sprintf("blob %s: transfer broke off after %d of %d bytes", desc.Digest, done, desc.Size)
			return retryable(ctx, rerr), fmt.Errorf("%s: %w", what, transportError(e, rerr))
		}
	}
}

// putBytes stores b as blob desc (already verified by the caller).
func putBytes(ctx context.Context, store *content.Store, desc ocispec.Descriptor, b []byte) error {
	w, err := store.Writer(ctx, "remote-"+desc.Digest.String(), ocispec.Descriptor{Digest: desc.Digest, Size: int64(len(b))})
	if errdefs.IsAlreadyExists(err) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("store %s: %w", desc.Digest, err)
	}
	defer w.Close()
	if _, err := w.Write(b); err != nil {
		return fmt.Errorf("store %s: %w", desc.Digest, err)
	}
	if err := w.Commit(ctx); err != nil && !errdefs.IsAlreadyExists(err) {
		return fmt.Errorf("store %s: %w", desc.Digest, err)
	}
	return nil
}

// readPlatform reads the platform an image configuration declares.
func readPlatform(ctx context.Context, store *content.Store, desc ocispec.Descriptor) (ocispec.Platform, error) {
	ra, err := store.ReaderAt(ctx, desc)
	if err != nil {
		return ocispec.Platform{}, err
	}
	defer ra.Close()
	var c ocispec.Image
	if err := json.NewDecoder(io.NewSectionReader(ra, 0, ra.Size())).Decode(&c); err != nil {
		return ocispec.Platform{}, fmt.Errorf("%w: image config %s is malformed: %v", errdefs.ErrInvalidArgument, desc.Digest, err)
	}
	return c.Platform, nil
}
