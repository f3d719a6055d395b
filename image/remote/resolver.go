// Package remote talks to OCI and Docker registries over the OCI
// distribution API: it resolves references to manifest descriptors,
// authenticates (bearer tokens from WWW-Authenticate challenges, basic
// auth, credentials from `skiff login` or a docker config.json), fetches
// manifests and blobs with their digests verified while streaming, selects
// a platform from image indexes, and pulls images into a content.Store.
//
// It does not unpack layers or record images: Pull hands verified blobs to
// the content store and returns what it fetched; the engine makes an image
// of it.
//
// Transport: HTTPS by default; plain HTTP for registries on localhost,
// 127.0.0.0/8 or ::1 (as docker allows) and for those listed in
// Options.Insecure. Requests time out (dial, response headers, a stalled
// body) and are retried with backoff on connection errors, 429 and 5xx.
package remote

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"io"
	"mime"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/skiff-containers/skiff/errdefs"
	"github.com/skiff-containers/skiff/image/reference"
)

// Docker's manifest media types (OCI's are in ocispec).
const (
	MediaTypeDockerManifest      = "application/vnd.docker.distribution.manifest.v2+json"
	MediaTypeDockerManifestList  = "application/vnd.docker.distribution.manifest.list.v2+json"
	MediaTypeDockerSchema1       = "application/vnd.docker.distribution.manifest.v1+json"
	MediaTypeDockerSchema1Signed = "application/vnd.docker.distribution.manifest.v1+prettyjws"
	MediaTypeDockerConfig        = "application/vnd.docker.container.image.v1+json"
	MediaTypeDockerLayerGzip     = "application/vnd.docker.image.rootfs.diff.tar.gzip"
	MediaTypeDockerLayerForeign  = "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip"
	MediaTypeDockerPluginConfig  = "application/vnd.docker.plugin.v1+json"
	maxManifestSize              = 4 << 20
	defaultDialTimeout           = 30 * time.Second
	defaultResponseHeaderTimout  = 60 * time.Second
	defaultStallTimeout          = 60 * time.Second
	defaultMaxAttempts           = 4
	defaultRetryBackoff          = 500 * time.Millisecond
	defaultConcurrency           = 3
)

// manifestAccept is the Accept header of manifest requests: OCI index and
// manifest, Docker manifest list and schema 2 manifest.
const manifestAccept = ocispec.MediaTypeImageIndex + ", " + ocispec.MediaTypeImageManifest + ", " +
	MediaTypeDockerManifestList + ", " + MediaTypeDockerManifest

// IsIndex reports whether mt is an image index or manifest list.
func IsIndex(mt string) bool {
	return mt == ocispec.MediaTypeImageIndex || mt == MediaTypeDockerManifestList
}

// IsManifest reports whether mt is a single-platform image manifest.
func IsManifest(mt string) bool {
	return mt == ocispec.MediaTypeImageManifest || mt == MediaTypeDockerManifest
}

// Options configures a Resolver. The zero value is usable: anonymous
// access, default timeouts and retries.
type Options struct {
	// Credentials supplies registry credentials; nil means anonymous.
	Credentials Credentials
	// Insecure lists registries that may be reached over plain HTTP:
	// "host:port", "host" (any port) or a CIDR ("10.0.0.0/8"). Loopback
	// registries are always allowed plain HTTP.
	Insecure []string
	// Transport replaces the HTTP transport (and with it the timeouts
	// below except StallTimeout); for tests and custom TLS settings.
	Transport http.RoundTripper
	// DialTimeout bounds connecting and the TLS handshake (default 30s).
	DialTimeout time.Duration
	// ResponseHeaderTimeout bounds the wait for a response's headers
	// (default 60s).
	ResponseHeaderTimeout time.Duration
	// StallTimeout aborts a response body that delivers no data for this
	// long (default 60s).
	StallTimeout time.Duration
	// MaxAttempts bounds the attempts of one request or blob transfer
	// (default 4).
	MaxAttempts int
	// RetryBackoff is the wait before the first retry; it doubles for
	// each further one (default 500ms).
	RetryBackoff time.Duration
	// UserAgent is sent with every request if set.
	UserAgent string
}

// Resolver resolves references and fetches content from registries. It
// caches tokens and authentication challenges per registry, and is safe
// for concurrent use.
type Resolver struct {
	opts   Options
	client *http.Client

	mu     sync.Mutex
	auth   map[string]authState // by API host
	tokens map[tokenKey]token
}

// NewResolver returns a Resolver with opts, defaults filled in.
func NewResolver(opts Options) *Resolver {
	if opts.DialTimeout <= 0 {
		opts.DialTimeout = defaultDialTimeout
	}
	if opts.ResponseHeaderTimeout <= 0 {
		opts.ResponseHeaderTimeout = defaultResponseHeaderTimout
	}
	if opts.StallTimeout <= 0 {
		opts.StallTimeout = defaultStallTimeout
	}
	if opts.MaxAttempts <= 0 {
		opts.MaxAttempts = defaultMaxAttempts
	}
	if opts.RetryBackoff <= 0 {
		opts.RetryBackoff = defaultRetryBackoff
	}
	return &Resolver{
		opts:   opts,
		client: newClient(opts),
		auth:   map[string]authState{},
		tokens: map[tokenKey]token{},
	}
}

// request sends method on path of ref's registry, authenticating as the
// registry asks (one challenge round per call), with retries. It returns
// the response whatever its status, unless it is 401 (an error).
func (r *Resolver) request(ctx context.Context, ref reference.Reference, method, path, accept string) (*http.Response, int, endpoint, error) {
	e := r.endpointFor(ref.Domain)
	return r.requestScope(ctx, e, "repository:"+ref.Path+":pull", method, path, accept)
}

// requestScope is request for an endpoint and a token scope ("" for
// none, as for the /v2/ ping).
func (r *Resolver) requestScope(ctx context.Context, e endpoint, scope, method, path, accept string) (*http.Response, int, endpoint, error) {
	challenged := false
	for {
		hdr := http.Header{}
		authz, err := r.authorization(ctx, e, scope)
		if err != nil {
			return nil, 0, e, err
		}
		if authz != "" {
			hdr.Set("Authorization", authz)
		}
		if accept != "" {
			hdr.Set("Accept", accept)
		}
		resp, attempts, err := r.send(ctx, func(ctx context.Context) (*http.Request, error) {
			req, err := http.NewRequestWithContext(ctx, method, e.url(path), nil)
			if err != nil {
				return nil, fmt.Errorf("%w: %s %s: %v", errdefs.ErrInvalidArgument, method, path, err)
			}
			for k, v := range hdr {
				req.Header[k] = v
			}
			return req, nil
		})
		if err != nil {
			return nil, attempts, e, transportError(e, err)
		}
		if resp.StatusCode != http.StatusUnauthorized {
			return resp, attempts, e, nil
		}
		if !challenged && r.handleChallenge(e, resp) {
			drain(resp)
			challenged = true
			continue
		}
		msg := registryMessage(resp)
		drain(resp)
		user, _, note, _ := r.credentials(ctx, e.domain)
		return nil, attempts, e, unauthorizedError(e, "HTTP 401"+msg, user, note)
	}
}

func drain(resp *http.Response) {
	io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	resp.Body.Close()
}

// statusError explains a response that is not the expected success. what
// names the object ("manifest latest of docker.io/library/busybox").
func statusError(e endpoint, resp *http.Response, attempts int, what string) error {
	msg := registryMessage(resp)
	tries := ""
	if attempts > 1 {
		tries = fmt.Sprintf(" (after %d attempts)", attempts)
	}
	switch code := resp.StatusCode; {
	case code == http.StatusNotFound:
		return fmt.Errorf("%s: %w in registry %s%s: check the image name and tag", what, errdefs.ErrNotFound, e.host, msg)
	case code == http.StatusForbidden:
		return fmt.Errorf("%s: registry %s denied access (HTTP 403%s): check that your account may pull it ('skiff login %s'): %w", what, e.host, msg, e.domain, errdefs.ErrFailedPrecondition)
	case code == http.StatusTooManyRequests:
		return fmt.Errorf("%s: registry %s is rate limiting (HTTP 429%s)%s: wait and retry, or log in for a higher limit", what, e.host, msg, tries)
	case code >= 500:
		return fmt.Errorf("%s: registry %s failed with HTTP %s%s%s: the registry has a problem; retry later", what, e.host, resp.Status, msg, tries)
	}
	return fmt.Errorf("%s: registry %s answered HTTP %s%s", what, e.host, resp.Status, msg)
}

// Resolve finds the manifest (or index) that ref names and returns its
// descriptor. A reference with a digest resolves to that digest; a tag is
// looked up with HEAD, falling back to GET for registries that do not give
// the digest on HEAD.
func (r *Resolver) Resolve(ctx context.Context, ref reference.Reference) (ocispec.Descriptor, error) {
	d, err := r.resolve(ctx, ref)
	if err != nil {
		return d, fmt.Errorf("resolve %s: %w", ref.String(), err)
	}
	return d, nil
}

func (r *Resolver) resolve(ctx context.Context, ref reference.Reference) (ocispec.Descriptor, error) {
	obj := ref.Object()
	if ref.IsZero() || obj == "" {
		return ocispec.Descriptor{}, fmt.Errorf("%w: the reference has neither tag nor digest", errdefs.ErrInvalidArgument)
	}
	what := "manifest " + obj
	path := "/v2/" + ref.Path + "/manifests/" + obj
	resp, attempts, e, err := r.request(ctx, ref, http.MethodHead, path, manifestAccept)
	if err != nil {
		return ocispec.Descriptor{}, fmt.Errorf("%s: %w", what, err)
	}
	drain(resp)
	switch resp.StatusCode {
	case http.StatusOK:
		mt := contentType(resp.Header.Get("Content-Type"))
		dg := digest.Digest(resp.Header.Get("Docker-Content-Digest"))
		if ref.Digest != "" {
			dg = ref.Digest
		}
		if (IsIndex(mt) || IsManifest(mt)) && dg.Validate() == nil && resp.ContentLength > 0 && resp.ContentLength <= maxManifestSize {
			return ocispec.Descriptor{MediaType: mt, Digest: dg, Size: resp.ContentLength}, nil
		}
	case http.StatusTooManyRequests:
		return ocispec.Descriptor{}, statusError(e, resp, attempts, what)
	}
	if resp.StatusCode >= 500 {
		return ocispec.Descriptor{}, statusError(e, resp, attempts, what)
	}
	// HEAD was not conclusive, or failed without saying why (a HEAD
	// response has no body): GET the manifest and hash it.
	body, mt, err := r.getManifest(ctx, ref, obj, ocispec.Descriptor{Digest: ref.Digest}, what)
	if err != nil {
		return ocispec.Descriptor{}, err
	}
	alg := digest.Canonical
	if ref.Digest != "" {
		alg = ref.Digest.Algorithm()
	}
	return ocispec.Descriptor{MediaType: mt, Digest: alg.FromBytes(body), Size: int64(len(body))}, nil
}

// contentType returns the media type of a Content-Type header, without
// parameters.
func contentType(v string) string {
	mt, _, err := mime.ParseMediaType(v)
	if err != nil {
		return strings.TrimSpace(v)
	}
	return mt
}

// FetchManifest fetches the manifest or index desc of ref's repository and
// verifies its size and digest. Its media type, if desc does not say, is
// taken from the response or the document.
func (r *Resolver) FetchManifest(ctx context.Context, ref reference.Reference, desc ocispec.Descriptor) ([]byte, ocispec.Descriptor, error) {
	if err := desc.Digest.Validate(); err != nil {
		return nil, desc, fmt.Errorf("%w: manifest of %s: digest %q: %v", errdefs.ErrInvalidArgument, ref.String(), desc.Digest, err)
	}
	body, mt, err := r.getManifest(ctx, ref, desc.Digest.String(), desc, "manifest "+desc.Digest.String())
	if err != nil {
		return nil, desc, err
	}
	if desc.MediaType == "" {
		desc.MediaType = mt
	}
	if desc.Size == 0 {
		desc.Size = int64(len(body))
	}
	return body, desc, nil
}

// getManifest GETs manifests/<obj>, bounded in size, verifying desc's size
// and digest when given, with retries of truncated transfers. what names
// the object in errors.
func (r *Resolver) getManifest(ctx context.Context, ref reference.Reference, obj string, desc ocispec.Descriptor, what string) ([]byte, string, error) {
	if desc.Size > maxManifestSize {
		return nil, "", fmt.Errorf("%w: %s: %d bytes is larger than the %d a manifest may have: refused", errdefs.ErrInvalidArgument, what, desc.Size, maxManifestSize)
	}
	for attempt := 1; ; attempt++ {
		resp, attempts, e, err := r.request(ctx, ref, http.MethodGet, "/v2/"+ref.Path+"/manifests/"+obj, manifestAccept)
		if err != nil {
			return nil, "", fmt.Errorf("%s: %w", what, err)
		}
		if resp.StatusCode != http.StatusOK {
			err := statusError(e, resp, attempts, what)
			drain(resp)
			return nil, "", err
		}
		body, err := io.ReadAll(io.LimitReader(resp.Body, maxManifestSize+1))
		resp.Body.Close()
		if err == nil && len(body) > maxManifestSize {
			return nil, "", fmt.Errorf("%w: %s: larger than the %d bytes a manifest may have: refused", errdefs.ErrInvalidArgument, what, maxManifestSize)
		}
		if err == nil {
			err = verifyBytes(body, desc)
			if err == nil {
				return body, detectMediaType(contentType(resp.Header.Get("Content-Type")), body), nil
			}
			if !isShort(err) {
				return nil, "", fmt.Errorf("%s from registry %s: %w", what, e.host, err)
			}
		}
		if !retryable(ctx, err) && !isShort(err) || attempt >= r.opts.MaxAttempts {
			return nil, "", fmt.Errorf("%s: %w", what, transportError(e, err))
		}
		if berr := r.backoff(ctx, attempt, 0); berr != nil {
			return nil, "", fmt.Errorf("%s: %w (after %v)", what, berr, err)
		}
	}
}

// shortError is a body that ended before its descriptor's size.
type shortError struct {
	got, want int64
}

func (e *shortError) Error() string {
	return fmt.Sprintf("truncated: got %d of %d bytes", e.got, e.want)
}

func isShort(err error) bool {
	var s *shortError
	return errors.As(err, &s)
}

// verifyBytes checks b against desc's size (if non-zero) and digest (if
// set).
func verifyBytes(b []byte, desc ocispec.Descriptor) error {
	if desc.Size > 0 && int64(len(b)) < desc.Size {
		return &shortError{got: int64(len(b)), want: desc.Size}
	}
	if desc.Size > 0 && int64(len(b)) != desc.Size {
		return fmt.Errorf("%w: size mismatch: got %d bytes, the descriptor says %d: refused", errdefs.ErrInvalidArgument, len(b), desc.Size)
	}
	if desc.Digest != "" {
		if got := desc.Digest.Algorithm().FromBytes(b); got != desc.Digest {
			return fmt.Errorf("%w: digest mismatch: content hashes to %s, not %s: refused, not stored; the registry served corrupt or different content", errdefs.ErrInvalidArgument, got, desc.Digest)
		}
	}
	return nil
}

// manifestProbe has the fields that tell manifest kinds apart.
type manifestProbe struct {
	SchemaVersion int               `json:"schemaVersion"`
	MediaType     string            `json:"mediaType"`
	Manifests     json.RawMessage   `json:"manifests"`
	Config        json.RawMessage   `json:"config"`
	FSLayers      json.RawMessage   `json:"fsLayers"`
	Layers        []json.RawMessage `json:"layers"`
}

// detectMediaType names a manifest's type from the document's mediaType
// field, the Content-Type header, or the document's shape.
func detectMediaType(ct string, body []byte) string {
	var p manifestProbe
	if json.Unmarshal(body, &p) != nil {
		return ct
	}
	if p.MediaType != "" {
		return p.MediaType
	}
	if IsIndex(ct) || IsManifest(ct) || ct == MediaTypeDockerSchema1 || ct == MediaTypeDockerSchema1Signed {
		return ct
	}
	switch {
	case p.Manifests != nil:
		return ocispec.MediaTypeImageIndex
	case p.Config != nil:
		return ocispec.MediaTypeImageManifest
	case p.FSLayers != nil || p.SchemaVersion == 1:
		return MediaTypeDockerSchema1Signed
	}
	return ct
}

// Fetcher streams the content of descriptors of one repository.
type Fetcher interface {
	// Fetch returns desc's content. The reader verifies size and digest
	// as it goes: its final Read returns an error instead of io.EOF if
	// the content does not match, so a consumer must not trust the data
	// before reading to EOF without error.
	Fetch(ctx context.Context, desc ocispec.Descriptor) (io.ReadCloser, error)
}

// Fetcher returns a Fetcher for ref's repository.
func (r *Resolver) Fetcher(ref reference.Reference) Fetcher {
	return &fetcher{r: r, ref: ref}
}

type fetcher struct {
	r   *Resolver
	ref reference.Reference
}

func (f *fetcher) Fetch(ctx context.Context, desc ocispec.Descriptor) (io.ReadCloser, error) {
	if IsIndex(desc.MediaType) || IsManifest(desc.MediaType) {
		b, _, err := f.r.FetchManifest(ctx, f.ref, desc)
		if err != nil {
			return nil, err
		}
		return io.NopCloser(bytes.NewReader(b)), nil
	}
	rc, _, err := f.r.openBlob(ctx, f.ref, desc)
	if err != nil {
		return nil, err
	}
	return newVerifier(rc, desc), nil
}

// openBlob GETs blobs/<digest> and returns its body (not verified).
func (r *Resolver) openBlob(ctx context.Context, ref reference.Reference, desc ocispec.Descriptor) (io.ReadCloser, endpoint, error) {
	what := "blob " + desc.Digest.String()
	if err := desc.Digest.Validate(); err != nil {
		return nil, endpoint{}, fmt.Errorf("%w: %s: %v", errdefs.ErrInvalidArgument, what, err)
	}
	resp, attempts, e, err := r.request(ctx, ref, http.MethodGet, "/v2/"+ref.Path+"/blobs/"+desc.Digest.String(), "")
	if err != nil {
		return nil, e, fmt.Errorf("%s: %w", what, err)
	}
	if resp.StatusCode != http.StatusOK {
		err := statusError(e, resp, attempts, what)
		drain(resp)
		return nil, e, err
	}
	if resp.ContentLength >= 0 && desc.Size > 0 && resp.ContentLength != desc.Size {
		resp.Body.Close()
		return nil, e, fmt.Errorf("%w: %s: registry %s sends %d bytes but the descriptor says %d: refused", errdefs.ErrInvalidArgument, what, e.host, resp.ContentLength, desc.Size)
	}
	return resp.Body, e, nil
}

// verifier checks size and digest of a stream as it is read.
type verifier struct {
	rc   io.ReadCloser
	desc ocispec.Descriptor
	h    hash.Hash
	n    int64
}

func newVerifier(rc io.ReadCloser, desc ocispec.Descriptor) *verifier {
	return &verifier{rc: rc, desc: desc, h: desc.Digest.Algorithm().Hash()}
}

func (v *verifier) Read(p []byte) (int, error) {
	if v.desc.Size >= 0 && int64(len(p)) > v.desc.Size-v.n+1 {
		p = p[:v.desc.Size-v.n+1] // read at most one byte too many, to notice
	}
	n, err := v.rc.Read(p)
	v.h.Write(p[:n])
	v.n += int64(n)
	if v.n > v.desc.Size {
		return n, fmt.Errorf("%w: blob %s: more than the expected %d bytes: refused", errdefs.ErrInvalidArgument, v.desc.Digest, v.desc.Size)
	}
	if err == io.EOF {
		if v.n < v.desc.Size {
			return n, fmt.Errorf("blob %s: %w: %w", v.desc.Digest, &shortError{got: v.n, want: v.desc.Size}, io.ErrUnexpectedEOF)
		}
		if got := digest.NewDigest(v.desc.Digest.Algorithm(), v.h); got != v.desc.Digest {
			return n, fmt.Errorf("%w: blob %s: digest mismatch: content hashes to %s: refused", errdefs.ErrInvalidArgument, v.desc.Digest, got)
		}
	}
	return n, err
}

func (v *verifier) Close() error { return v.rc.Close() }
