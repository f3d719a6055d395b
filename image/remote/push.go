package remote

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"golang.org/x/sync/errgroup"

	"github.com/skiff-containers/skiff/errdefs"
	"github.com/skiff-containers/skiff/image/content"
	"github.com/skiff-containers/skiff/image/reference"
)

// defaultChunkSize is the size of the PATCH requests of a blob upload: the
// granularity at which a broken upload resumes.
const defaultChunkSize = 16 << 20

// maxMountCandidates bounds the repositories a blob mount is tried from.
const maxMountCandidates = 3

// PushStatus is the state of one blob or manifest in a push.
type PushStatus string

// The states a push goes through. Exists, Mounted and Pushed are final.
const (
	PushWaiting  PushStatus = "waiting"  // queued
	PushPushing  PushStatus = "pushing"  // bytes are being sent
	PushRetrying PushStatus = "retrying" // the upload broke and resumes
	PushExists   PushStatus = "exists"   // the repository has it already
	PushMounted  PushStatus = "mounted"  // mounted from another repository of the registry
	PushPushed   PushStatus = "pushed"   // uploaded and accepted
)

// PushProgress reports on one blob or manifest of a push.
type PushProgress struct {
	Desc   ocispec.Descriptor
	Status PushStatus
	Done   int64 // bytes the registry has accepted (or is receiving)
	Total  int64
}

// PushOptions tunes Push.
type PushOptions struct {
	// Concurrency bounds the blobs uploaded at once (default 3).
	Concurrency int
	// ChunkSize is the size of one PATCH of a blob upload; a broken upload
	// resumes from the last chunk the registry accepted (default 16 MiB).
	ChunkSize int64
	// Progress, if set, is called as blobs progress, from several
	// goroutines at once.
	Progress func(PushProgress)
	// MountFrom are repositories of the same registry that may hold the
	// blobs already (the image's other names): blobs are mounted from
	// them instead of uploaded where the registry allows. Repositories of
	// other registries are ignored.
	MountFrom []reference.Reference
}

// Push uploads the image target (an index or a manifest in store, with
// every blob it references) to ref's repository, and points ref's tag (or
// digest) at it: blobs first, concurrently, each skipped when the
// repository has it, mounted from a MountFrom repository when possible,
// otherwise uploaded in chunks that resume after a broken connection;
// then the manifests of an index by digest, and the target last under the
// tag. An upload that fails is cancelled at the registry.
func (r *Resolver) Push(ctx context.Context, ref reference.Reference, store *content.Store, target ocispec.Descriptor, opts PushOptions) error {
	if err := r.push(ctx, ref, store, target, opts); err != nil {
		return fmt.Errorf("push %s: %w", ref.String(), err)
	}
	return nil
}

func (r *Resolver) push(ctx context.Context, ref reference.Reference, store *content.Store, target ocispec.Descriptor, opts PushOptions) error {
	if store == nil {
		return fmt.Errorf("%w: no content store", errdefs.ErrInvalidArgument)
	}
	if ref.IsZero() || ref.Object() == "" {
		return fmt.Errorf("%w: the reference has neither tag nor digest", errdefs.ErrInvalidArgument)
	}
	if err := target.Digest.Validate(); err != nil {
		return fmt.Errorf("%w: target digest %q: %v", errdefs.ErrInvalidArgument, target.Digest, err)
	}
	if ref.Digest != "" && ref.Tag == "" && ref.Digest != target.Digest {
		return fmt.Errorf("%w: the reference names digest %s but the image is %s", errdefs.ErrInvalidArgument, ref.Digest, target.Digest)
	}
	if opts.Concurrency <= 0 {
		opts.Concurrency = defaultConcurrency
	}
	if opts.ChunkSize <= 0 {
		opts.ChunkSize = defaultChunkSize
	}
	report := func(PushProgress) {}
	if opts.Progress != nil {
		report = opts.Progress
	}
	p := &pusher{
		r: r, ref: ref, e: r.endpointFor(ref.Domain), store: store, opts: opts, report: report,
		scope: "repository:" + ref.Path + ":pull,push",
	}
	for _, m := range opts.MountFrom {
		if m.Domain == ref.Domain && m.Path != ref.Path && len(p.mountFrom) < maxMountCandidates && !containsPath(p.mountFrom, m.Path) {
			p.mountFrom = append(p.mountFrom, m.Path)
		}
	}

	manifests, blobs, err := p.walk(ctx, target)
	if err != nil {
		return err
	}
	for _, b := range blobs {
		report(PushProgress{Desc: b, Status: PushWaiting, Total: b.Size})
	}
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(opts.Concurrency)
	for _, b := range blobs {
		g.Go(func() error { return p.pushBlob(gctx, b) })
	}
	if err := g.Wait(); err != nil {
		return err
	}
	// Children before parents; the target last, under the tag.
	for i, m := range manifests {
		obj := m.desc.Digest.String()
		if i == len(manifests)-1 && ref.Tag != "" {
			obj = ref.Tag
		}
		if err := p.putManifest(ctx, obj, m.desc, m.data); err != nil {
			return err
		}
	}
	return nil
}

func containsPath(paths []string, p string) bool {
	for _, x := range paths {
		if x == p {
			return true
		}
	}
	return false
}

// pusher is one push in progress.
type pusher struct {
	r         *Resolver
	ref       reference.Reference
	e         endpoint
	scope     string
	mountFrom []string
	store     *content.Store
	opts      PushOptions
	report    func(PushProgress)
}

type manifestDoc struct {
	desc ocispec.Descriptor
	data []byte
}

// walk reads target and what it references from the store: the manifests
// in push order (children first, target last) and the blobs, each once.
func (p *pusher) walk(ctx context.Context, target ocispec.Descriptor) ([]manifestDoc, []ocispec.Descriptor, error) {
	var manifests []manifestDoc
	var blobs []ocispec.Descriptor
	seen := map[digest.Digest]bool{}
	addBlob := func(d ocispec.Descriptor) {
		if !seen[d.Digest] {
			seen[d.Digest] = true
			blobs = append(blobs, ocispec.Descriptor{MediaType: d.MediaType, Digest: d.Digest, Size: d.Size})
		}
	}
	var visit func(desc ocispec.Descriptor, depth int, parent string) error
	visit = func(desc ocispec.Descriptor, depth int, parent string) error {
		if seen[desc.Digest] {
			return nil
		}
		seen[desc.Digest] = true
		if depth > 4 {
			return fmt.Errorf("%w: index %s is nested more than 4 deep", errdefs.ErrInvalidArgument, desc.Digest)
		}
		data, err := readAll(ctx, p.store, desc, maxManifestSize)
		if err != nil {
			if errdefs.IsNotFound(err) && parent != "" {
				return fmt.Errorf("%w: index %s lists manifest %s, which is not stored locally (only one platform was pulled?): push that platform's manifest instead", errdefs.ErrFailedPrecondition, parent, desc.Digest)
			}
			return err
		}
		mt := checkedMediaType(desc.MediaType, data)
		d := ocispec.Descriptor{MediaType: mt, Digest: desc.Digest, Size: int64(len(data))}
		switch {
		case IsIndex(mt):
			var idx ocispec.Index
			if err := json.Unmarshal(data, &idx); err != nil {
				return fmt.Errorf("%w: index %s is malformed: %v", errdefs.ErrInvalidArgument, desc.Digest, err)
			}
			for _, m := range idx.Manifests {
				if err := visit(m, depth+1, desc.Digest.String()); err != nil {
					return err
				}
			}
		case IsManifest(mt):
			var m ocispec.Manifest
			if err := json.Unmarshal(data, &m); err != nil {
				return fmt.Errorf("%w: manifest %s is malformed: %v", errdefs.ErrInvalidArgument, desc.Digest, err)
			}
			if err := m.Config.Digest.Validate(); err != nil {
				return fmt.Errorf("%w: manifest %s: config digest %q: %v", errdefs.ErrInvalidArgument, desc.Digest, m.Config.Digest, err)
			}
			addBlob(m.Config)
			for _, l := range m.Layers {
				if err := l.Digest.Validate(); err != nil {
					return fmt.Errorf("%w: manifest %s: layer digest %q: %v", errdefs.ErrInvalidArgument, desc.Digest, l.Digest, err)
				}
				if len(l.URLs) > 0 {
					continue // foreign layers stay where they are
				}
				addBlob(l)
			}
		default:
			return unsupported(d)
		}
		manifests = append(manifests, manifestDoc{d, data})
		return nil
	}
	if err := visit(target, 0, ""); err != nil {
		return nil, nil, err
	}
	return manifests, blobs, nil
}

// readAll reads a stored blob of at most max bytes.
func readAll(ctx context.Context, store *content.Store, desc ocispec.Descriptor, max int64) ([]byte, error) {
	ra, err := store.ReaderAt(ctx, desc)
	if err != nil {
		return nil, err
	}
	defer ra.Close()
	if ra.Size() > max {
		return nil, fmt.Errorf("%w: %s: %d bytes is more than the %d allowed", errdefs.ErrInvalidArgument, desc.Digest, ra.Size(), max)
	}
	return io.ReadAll(io.NewSectionReader(ra, 0, ra.Size()))
}

// bodyFunc makes a fresh request body (for retries and auth rounds).
type bodyFunc func() io.Reader

// do sends method to u (a URL of the registry) with the push's
// authorization, answering one authentication challenge. With retry,
// connection errors, 429 and 5xx are retried (send); without, a single
// attempt is made, for requests that move the upload's offset.
func (p *pusher) do(ctx context.Context, scope, method string, u *url.URL, hdr http.Header, body bodyFunc, size int64, retry bool) (*http.Response, int, error) {
	r := p.r
	challenged := false
	for {
		authz, err := r.authorization(ctx, p.e, scope)
		if err != nil {
			return nil, 0, err
		}
		newReq := func(ctx context.Context) (*http.Request, error) {
			var rd io.Reader
			if body != nil {
				rd = body()
			}
			req, err := http.NewRequestWithContext(ctx, method, u.String(), rd)
			if err != nil {
				return nil, fmt.Errorf("%w: %s %s: %v", errdefs.ErrInvalidArgument, method, u.Path, err)
			}
			for k, v := range hdr {
				req.Header[k] = v
			}
			if authz != "" {
				req.Header.Set("Authorization", authz)
			}
			if body != nil {
				req.ContentLength = size
				req.GetBody = func() (io.ReadCloser, error) { return io.NopCloser(body()), nil }
				if size == 0 {
					req.Body = http.NoBody
				}
			}
			return req, nil
		}
		var resp *http.Response
		attempts := 1
		if retry {
			resp, attempts, err = r.send(ctx, newReq)
		} else {
			var req *http.Request
			req, err = newReq(ctx)
			if err != nil {
				return nil, 1, err
			}
			if r.opts.UserAgent != "" {
				req.Header.Set("User-Agent", r.opts.UserAgent)
			}
			resp, err = r.client.Do(req)
		}
		if err != nil {
			return nil, attempts, err
		}
		if resp.StatusCode != http.StatusUnauthorized {
			return resp, attempts, nil
		}
		if !challenged && r.handleChallenge(p.e, resp) {
			drain(resp)
			challenged = true
			continue
		}
		return resp, attempts, nil
	}
}

// refused explains a 401 or 403 of a push: which registry, repository and
// user, and what to do.
func (p *pusher) refused(ctx context.Context, resp *http.Response, what string) error {
	msg := registryMessage(resp)
	user, _, note, _ := p.r.credentials(ctx, p.e.domain)
	who := "anonymously (no credentials were sent)"
	switch {
	case note != nil:
		who = fmt.Sprintf("anonymously (skiff could not read your stored credentials: %v)", note)
	case user != "":
		who = fmt.Sprintf("as user %q", user)
	}
	return fmt.Errorf("%s: %w: registry %s refused to let you push to repository %s (HTTP %d%s) %s: log in as a user who may push there ('skiff login %s'), or check the repository name",
		what, errdefs.ErrFailedPrecondition, p.e.host, p.ref.Path, resp.StatusCode, msg, who, p.e.domain)
}

// fail turns an unexpected response into an error naming the object.
func (p *pusher) fail(ctx context.Context, resp *http.Response, attempts int, what string) error {
	defer drain(resp)
	switch resp.StatusCode {
	case http.StatusUnauthorized, http.StatusForbidden:
		return p.refused(ctx, resp, what)
	case http.StatusNotFound:
		msg := registryMessage(resp)
		return fmt.Errorf("%s: %w: registry %s has no repository %s or does not allow creating it (HTTP 404%s)", what, errdefs.ErrNotFound, p.e.host, p.ref.Path, msg)
	}
	return statusError(p.e, resp, attempts, what)
}

func (p *pusher) blobURL(d digest.Digest) *url.URL {
	u, _ := url.Parse(p.e.url("/v2/" + p.ref.Path + "/blobs/" + d.String()))
	return u
}

// pushBlob makes sure the repository has blob desc.
func (p *pusher) pushBlob(ctx context.Context, desc ocispec.Descriptor) error {
	what := "blob " + desc.Digest.String()
	done := func(s PushStatus) { p.report(PushProgress{Desc: desc, Status: s, Done: desc.Size, Total: desc.Size}) }

	exists, err := p.exists(ctx, desc)
	if err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	if exists {
		done(PushExists)
		return nil
	}
	up, mounted, err := p.startUpload(ctx, desc, true)
	if err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	if mounted {
		done(PushMounted)
		return nil
	}
	ra, err := p.store.ReaderAt(ctx, desc)
	if err != nil {
		p.cancelUpload(ctx, up)
		return fmt.Errorf("%s: %w", what, err)
	}
	defer ra.Close()
	if ra.Size() != desc.Size {
		p.cancelUpload(ctx, up)
		return fmt.Errorf("%w: %s: the stored blob has %d bytes, the manifest says %d", errdefs.ErrInvalidArgument, what, ra.Size(), desc.Size)
	}
	for attempt := 1; ; attempt++ {
		err = p.upload(ctx, up, ra, desc)
		if err == nil {
			done(PushPushed)
			return nil
		}
		var ue *uploadError
		resumable := errors.As(err, &ue) && ue.resume
		if !resumable || attempt >= p.r.opts.MaxAttempts || ctx.Err() != nil {
			p.cancelUpload(ctx, up)
			if resumable && attempt > 1 {
				return fmt.Errorf("%s: %w (gave up after %d attempts)", what, err, attempt)
			}
			return fmt.Errorf("%s: %w", what, err)
		}
		p.report(PushProgress{Desc: desc, Status: PushRetrying, Done: up.offset, Total: desc.Size})
		if berr := p.r.backoff(ctx, attempt, 0); berr != nil {
			p.cancelUpload(ctx, up)
			return fmt.Errorf("%s: %w (after %v)", what, berr, err)
		}
		// Where is the registry? Resume there, or start over if it lost
		// the upload.
		if serr := p.uploadStatus(ctx, up); serr != nil {
			p.cancelUpload(ctx, up)
			nu, _, err := p.startUpload(ctx, desc, false)
			if err != nil {
				return fmt.Errorf("%s: restart the upload after %v: %w", what, serr, err)
			}
			up = nu
		}
	}
}

// exists asks whether the repository has the blob (HEAD).
func (p *pusher) exists(ctx context.Context, desc ocispec.Descriptor) (bool, error) {
	resp, attempts, err := p.do(ctx, p.scope, http.MethodHead, p.blobURL(desc.Digest), nil, nil, 0, true)
	if err != nil {
		return false, transportError(p.e, err)
	}
	switch resp.StatusCode {
	case http.StatusOK:
		drain(resp)
		return true, nil
	case http.StatusNotFound:
		drain(resp)
		return false, nil
	}
	return false, p.fail(ctx, resp, attempts, "check whether the repository has it")
}

// upload is a blob upload session at the registry.
type upload struct {
	loc    *url.URL // where the next request goes
	offset int64    // bytes the registry has
}

// startUpload starts an upload session, first trying to mount the blob
// from the MountFrom repositories. mounted means the blob is there.
func (p *pusher) startUpload(ctx context.Context, desc ocispec.Descriptor, mount bool) (*upload, bool, error) {
	base, _ := url.Parse(p.e.url("/v2/" + p.ref.Path + "/blobs/uploads/"))
	if mount {
		for i, from := range p.mountFrom {
			u := *base
			q := url.Values{}
			q.Set("mount", desc.Digest.String())
			q.Set("from", from)
			u.RawQuery = q.Encode()
			scope := p.scope + " repository:" + from + ":pull"
			resp, attempts, err := p.do(ctx, scope, http.MethodPost, &u, nil, emptyBody, 0, true)
			if err != nil {
				return nil, false, transportError(p.e, err)
			}
			switch resp.StatusCode {
			case http.StatusCreated:
				drain(resp)
				return nil, true, nil
			case http.StatusAccepted:
				up, err := p.uploadFromResponse(resp, 0)
				drain(resp)
				if err != nil {
					return nil, false, err
				}
				if i == len(p.mountFrom)-1 {
					return up, false, nil
				}
				p.cancelUpload(ctx, up) // try the next repository
				continue
			}
			if resp.StatusCode == http.StatusUnauthorized || resp.StatusCode == http.StatusForbidden {
				// No pull rights on the source: upload instead.
				drain(resp)
				continue
			}
			return nil, false, p.fail(ctx, resp, attempts, "mount from repository "+from)
		}
	}
	resp, attempts, err := p.do(ctx, p.scope, http.MethodPost, base, nil, emptyBody, 0, true)
	if err != nil {
		return nil, false, transportError(p.e, err)
	}
	if resp.StatusCode != http.StatusAccepted {
		return nil, false, p.fail(ctx, resp, attempts, "start upload")
	}
	defer drain(resp)
	up, err := p.uploadFromResponse(resp, 0)
	return up, false, err
}

func emptyBody() io.Reader { return http.NoBody }

// uploadFromResponse reads the Location of an upload response.
func (p *pusher) uploadFromResponse(resp *http.Response, offset int64) (*upload, error) {
	loc := resp.Header.Get("Location")
	u, err := url.Parse(loc)
	if loc == "" || err != nil {
		return nil, fmt.Errorf("registry %s answered an upload request without a usable Location (%q)", p.e.host, loc)
	}
	u = resp.Request.URL.ResolveReference(u)
	if u.Scheme != "http" && u.Scheme != "https" {
		return nil, fmt.Errorf("registry %s gave an upload Location with scheme %q", p.e.host, u.Scheme)
	}
	return &upload{loc: u, offset: offset}, nil
}

// uploadError is a failed upload request; resume says whether asking
// the registry for the upload's offset and going on is worth it.
type uploadError struct {
	err    error
	resume bool
}

func (e *uploadError) Error() string { return e.err.Error() }
func (e *uploadError) Unwrap() error { return e.err }

// upload sends the blob from up.offset: chunks with PATCH, the last one
// with the closing PUT ?digest=.
func (p *pusher) upload(ctx context.Context, up *upload, ra content.ReaderAtCloser, desc ocispec.Descriptor) error {
	size := desc.Size
	for {
		// Data goes in PATCHes; the closing PUT carries none, as docker
		// does: the registry then always has a Location whose state
		// matches what it holds, to resume from or to cancel.
		n := min(size-up.offset, p.opts.ChunkSize)
		last := n == 0
		method := http.MethodPatch
		u := *up.loc
		if last {
			method = http.MethodPut
			q := u.Query()
			q.Set("digest", desc.Digest.String())
			u.RawQuery = q.Encode()
		}
		start := up.offset
		body := func() io.Reader {
			return &progressReader{r: io.NewSectionReader(ra, start, n), report: func(sent int64) {
				p.report(PushProgress{Desc: desc, Status: PushPushing, Done: start + sent, Total: size})
			}}
		}
		hdr := http.Header{}
		hdr.Set("Content-Type", "application/octet-stream")
		if n > 0 {
			hdr.Set("Content-Range", fmt.Sprintf("%d-%d", start, start+n-1))
		}
		resp, _, err := p.do(ctx, p.scope, method, &u, hdr, body, n, false)
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			return &uploadError{err: transportError(p.e, err), resume: retryable(ctx, err)}
		}
		want := http.StatusAccepted
		if last {
			want = http.StatusCreated
		}
		if resp.StatusCode != want {
			return p.uploadFailed(ctx, resp, desc, up)
		}
		if last {
			drain(resp)
			if got := resp.Header.Get("Docker-Content-Digest"); got != "" && got != desc.Digest.String() {
				return fmt.Errorf("%w: registry %s stored the blob as %s, not %s: refused", errdefs.ErrInvalidArgument, p.e.host, got, desc.Digest)
			}
			up.offset = size
			return nil
		}
		next, err := p.uploadFromResponse(resp, start+n)
		drain(resp)
		if err != nil {
			return err
		}
		if end, ok := rangeEnd(resp.Header.Get("Range")); ok && end+1 != start+n {
			// The registry has a different amount than sent: go on
			// from where it is.
			next.offset = end + 1
			if end+1 > size {
				return fmt.Errorf("%w: registry %s claims %d bytes of a %d-byte blob", errdefs.ErrInvalidArgument, p.e.host, end+1, size)
			}
		}
		*up = *next
	}
}

// uploadFailed explains an upload request the registry refused.
func (p *pusher) uploadFailed(ctx context.Context, resp *http.Response, desc ocispec.Descriptor, up *upload) error {
	code := resp.StatusCode
	switch {
	case code == http.StatusBadRequest:
		msg := registryMessage(resp)
		drain(resp)
		if strings.Contains(msg, "DIGEST_INVALID") || strings.Contains(msg, "SIZE_INVALID") {
			return fmt.Errorf("%w: registry %s says the uploaded content does not match digest %s%s: refused; the local blob may be corrupt", errdefs.ErrInvalidArgument, p.e.host, desc.Digest, msg)
		}
		return fmt.Errorf("registry %s refused the upload at offset %d (HTTP 400%s)", p.e.host, up.offset, msg)
	case code == http.StatusRequestedRangeNotSatisfiable:
		drain(resp)
		return &uploadError{err: fmt.Errorf("registry %s did not accept data at offset %d (HTTP 416)", p.e.host, up.offset), resume: true}
	case code == http.StatusTooManyRequests || code >= 500:
		err := statusError(p.e, resp, 1, "upload")
		drain(resp)
		return &uploadError{err: err, resume: true}
	}
	return p.fail(ctx, resp, 1, fmt.Sprintf("upload at offset %d", up.offset))
}

// uploadStatus asks the registry how much of the upload it has, and
// updates up.
func (p *pusher) uploadStatus(ctx context.Context, up *upload) error {
	resp, attempts, err := p.do(ctx, p.scope, http.MethodGet, up.loc, nil, nil, 0, true)
	if err != nil {
		return transportError(p.e, err)
	}
	if resp.StatusCode != http.StatusNoContent && resp.StatusCode != http.StatusOK {
		return p.fail(ctx, resp, attempts, "upload status")
	}
	defer drain(resp)
	end, ok := rangeEnd(resp.Header.Get("Range"))
	if !ok {
		return fmt.Errorf("registry %s gave no Range for the upload", p.e.host)
	}
	next, err := p.uploadFromResponse(resp, end+1)
	if err != nil {
		return err
	}
	if end == 0 {
		// "0-0" is what the distribution registry says for an empty
		// upload (and for one of one byte): resend from the start.
		next.offset = 0
	}
	*up = *next
	return nil
}

// rangeEnd parses an upload's Range header, "0-<last byte>".
func rangeEnd(v string) (int64, bool) {
	v = strings.TrimPrefix(strings.TrimSpace(v), "bytes=")
	s, e, ok := strings.Cut(v, "-")
	if !ok || s != "0" {
		return 0, false
	}
	end, err := strconv.ParseInt(e, 10, 64)
	if err != nil || end < 0 {
		return 0, false
	}
	return end, true
}

// cancelUpload deletes an unfinished upload session at the registry, so
// that a failed push leaves nothing half-made there (best effort).
func (p *pusher) cancelUpload(ctx context.Context, up *upload) {
	if up == nil || up.loc == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	resp, _, err := p.do(ctx, p.scope, http.MethodDelete, up.loc, nil, nil, 0, false)
	if err == nil {
		drain(resp)
	}
}

// putManifest PUTs a manifest or index under obj (a tag or its digest).
func (p *pusher) putManifest(ctx context.Context, obj string, desc ocispec.Descriptor, data []byte) error {
	what := "manifest " + desc.Digest.String()
	if obj != desc.Digest.String() {
		what += " as " + obj
	}
	p.report(PushProgress{Desc: desc, Status: PushPushing, Total: desc.Size})
	u, _ := url.Parse(p.e.url("/v2/" + p.ref.Path + "/manifests/" + obj))
	hdr := http.Header{}
	hdr.Set("Content-Type", desc.MediaType)
	body := func() io.Reader { return strings.NewReader(string(data)) }
	resp, attempts, err := p.do(ctx, p.scope, http.MethodPut, u, hdr, body, int64(len(data)), true)
	if err != nil {
		return fmt.Errorf("%s: %w", what, transportError(p.e, err))
	}
	if resp.StatusCode != http.StatusCreated && resp.StatusCode != http.StatusOK {
		if resp.StatusCode == http.StatusBadRequest {
			msg := registryMessage(resp)
			drain(resp)
			return fmt.Errorf("%s: %w: registry %s refused it (HTTP 400%s)", what, errdefs.ErrInvalidArgument, p.e.host, msg)
		}
		return p.fail(ctx, resp, attempts, what)
	}
	drain(resp)
	if got := resp.Header.Get("Docker-Content-Digest"); got != "" && got != desc.Digest.String() {
		return fmt.Errorf("%s: %w: registry %s computed digest %s for it: refused", what, errdefs.ErrInvalidArgument, p.e.host, got)
	}
	p.report(PushProgress{Desc: desc, Status: PushPushed, Done: desc.Size, Total: desc.Size})
	return nil
}

// progressReader reports the bytes read through it, at most every 256 KiB
// and at the end.
type progressReader struct {
	r       io.Reader
	n, last int64
	report  func(int64)
}

func (r *progressReader) Read(b []byte) (int, error) {
	n, err := r.r.Read(b)
	r.n += int64(n)
	if r.n-r.last >= 256<<10 || (err == io.EOF && r.n != r.last) {
		r.last = r.n
		r.report(r.n)
	}
	return n, err
}
