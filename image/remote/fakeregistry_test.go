package remote

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/skiff-containers/skiff/image/reference"
)

// fakeRegistry is an in-process distribution-API registry whose
// misbehaviour tests choose: bearer or basic auth, flaky 5xx, slow
// headers, stalled, truncated or corrupt blobs, HEAD without digest.
type fakeRegistry struct {
	t   *testing.T
	srv *httptest.Server

	mu        sync.Mutex
	manifests map[string]map[string]digest.Digest // repo → tag → digest
	content   map[digest.Digest]fakeBlob          // manifests and blobs
	requests  map[string]int                      // "METHOD path" → count
	tokens    int                                 // tokens issued

	// Behaviour, set before use.
	bearer       bool              // demand a bearer token from /token
	basic        bool              // demand basic auth on /v2/
	private      map[string]bool   // repos that need the user's credentials
	user, pass   string            // the one account
	flaky        map[string]int    // path → number of 503s still to serve
	tooMany      map[string]int    // path → number of 429s still to serve
	slowHeaders  time.Duration     // delay before any /v2/ response
	stall        map[string]bool   // path → send half the body, then hang
	truncate     map[string]int    // path → number of truncated bodies still to serve
	corrupt      map[string]bool   // path → serve other bytes than the digest's
	noHeadDigest bool              // HEAD answers without Docker-Content-Digest
	extraHeaders map[string]string // added to manifest responses
}

type fakeBlob struct {
	data      []byte
	mediaType string
}

func newFakeRegistry(t *testing.T) *fakeRegistry {
	f := &fakeRegistry{
		t:         t,
		manifests: map[string]map[string]digest.Digest{},
		content:   map[digest.Digest]fakeBlob{},
		requests:  map[string]int{},
		private:   map[string]bool{},
		flaky:     map[string]int{},
		tooMany:   map[string]int{},
		stall:     map[string]bool{},
		truncate:  map[string]int{},
		corrupt:   map[string]bool{},
	}
	f.srv = httptest.NewServer(http.HandlerFunc(f.serve))
	t.Cleanup(f.srv.Close)
	return f
}

// domain is the registry's host:port, as in references.
func (f *fakeRegistry) domain() string { return strings.TrimPrefix(f.srv.URL, "http://") }

func (f *fakeRegistry) ref(t *testing.T, s string) reference.Reference {
	t.Helper()
	r, err := reference.ParseDockerRef(f.domain() + "/" + s)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func (f *fakeRegistry) count(key string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.requests[key]
}

func (f *fakeRegistry) addBlob(b []byte, mt string) ocispec.Descriptor {
	d := ocispec.Descriptor{MediaType: mt, Digest: digest.FromBytes(b), Size: int64(len(b))}
	f.mu.Lock()
	f.content[d.Digest] = fakeBlob{data: b, mediaType: mt}
	f.mu.Unlock()
	return d
}

func (f *fakeRegistry) tag(repo, tag string, d digest.Digest) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.manifests[repo] == nil {
		f.manifests[repo] = map[string]digest.Digest{}
	}
	f.manifests[repo][tag] = d
}

// testImage describes an image the fake registry serves.
type testImage struct {
	manifest ocispec.Descriptor
	config   ocispec.Descriptor
	layers   []ocispec.Descriptor
}

// addImage stores a one-platform image (OCI or docker media types) and
// returns its descriptors; tag it with tag (if not "").
func (f *fakeRegistry) addImage(repo, tag string, docker bool, p ocispec.Platform, layers ...[]byte) testImage {
	f.t.Helper()
	layerMT, configMT, manifestMT := ocispec.MediaTypeImageLayerGzip, ocispec.MediaTypeImageConfig, ocispec.MediaTypeImageManifest
	if docker {
		layerMT, configMT, manifestMT = MediaTypeDockerLayerGzip, MediaTypeDockerConfig, MediaTypeDockerManifest
	}
	var img testImage
	cfg := ocispec.Image{Platform: p, RootFS: ocispec.RootFS{Type: "layers"}}
	for _, l := range layers {
		img.layers = append(img.layers, f.addBlob(l, layerMT))
		cfg.RootFS.DiffIDs = append(cfg.RootFS.DiffIDs, digest.FromBytes(l)) // not real diff ids; unused here
	}
	cb, _ := json.Marshal(cfg)
	img.config = f.addBlob(cb, configMT)
	m := ocispec.Manifest{MediaType: manifestMT, Config: img.config, Layers: img.layers}
	m.SchemaVersion = 2
	mb, _ := json.Marshal(m)
	img.manifest = f.addBlob(mb, manifestMT)
	pp := p
	img.manifest.Platform = &pp
	if tag != "" {
		f.tag(repo, tag, img.manifest.Digest)
	}
	return img
}

// addIndex stores an index of the given manifests under tag.
func (f *fakeRegistry) addIndex(repo, tag string, docker bool, ms ...ocispec.Descriptor) ocispec.Descriptor {
	mt := ocispec.MediaTypeImageIndex
	if docker {
		mt = MediaTypeDockerManifestList
	}
	idx := ocispec.Index{MediaType: mt, Manifests: ms}
	idx.SchemaVersion = 2
	b, _ := json.Marshal(idx)
	d := f.addBlob(b, mt)
	f.tag(repo, tag, d.Digest)
	return d
}

func (f *fakeRegistry) serve(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	f.requests[r.Method+" "+r.URL.Path]++
	f.mu.Unlock()
	if r.URL.Path == "/token" {
		f.serveToken(w, r)
		return
	}
	if !strings.HasPrefix(r.URL.Path, "/v2/") {
		http.NotFound(w, r)
		return
	}
	if f.slowHeaders > 0 {
		select {
		case <-time.After(f.slowHeaders):
		case <-r.Context().Done():
			return
		}
	}
	rest := strings.TrimPrefix(r.URL.Path, "/v2/")
	var repo, kind, obj string
	for _, k := range []string{"/manifests/", "/blobs/"} {
		if i := strings.LastIndex(rest, k); i > 0 {
			repo, kind, obj = rest[:i], strings.Trim(k, "/"), rest[i+len(k):]
		}
	}
	if !f.authorized(w, r, repo) {
		return
	}
	if rest == "" {
		w.WriteHeader(http.StatusOK)
		return
	}
	f.mu.Lock()
	if n := f.flaky[r.URL.Path]; n > 0 {
		f.flaky[r.URL.Path] = n - 1
		f.mu.Unlock()
		http.Error(w, "try again", http.StatusServiceUnavailable)
		return
	}
	if n := f.tooMany[r.URL.Path]; n > 0 {
		f.tooMany[r.URL.Path] = n - 1
		f.mu.Unlock()
		w.Header().Set("Retry-After", "0")
		w.WriteHeader(http.StatusTooManyRequests)
		return
	}
	var d digest.Digest
	if kind == "manifests" {
		d = f.manifests[repo][obj]
		if d == "" {
			if _, ok := f.manifests[repo]; ok {
				d = digest.Digest(obj)
			}
		}
	} else if _, ok := f.manifests[repo]; ok {
		d = digest.Digest(obj)
	}
	b, ok := f.content[d]
	stall, corrupt := f.stall[r.URL.Path], f.corrupt[r.URL.Path]
	truncate := f.truncate[r.URL.Path] > 0
	if truncate {
		f.truncate[r.URL.Path]--
	}
	f.mu.Unlock()
	if !ok {
		code := "BLOB_UNKNOWN"
		if kind == "manifests" {
			code = "MANIFEST_UNKNOWN"
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusNotFound)
		fmt.Fprintf(w, `{"errors":[{"code":%q,"message":"unknown %s %s"}]}`, code, kind, obj)
		return
	}
	data := b.data
	if corrupt {
		data = bytes.Clone(data)
		for i := range data {
			data[i] ^= 0x55 // same length, other content
		}
	}
	h := w.Header()
	if kind == "manifests" {
		h.Set("Content-Type", b.mediaType)
		if !(r.Method == http.MethodHead && f.noHeadDigest) {
			h.Set("Docker-Content-Digest", d.String())
		}
		for k, v := range f.extraHeaders {
			h.Set(k, v)
		}
	} else {
		h.Set("Content-Type", "application/octet-stream")
	}
	h.Set("Content-Length", strconv.Itoa(len(data)))
	if r.Method == http.MethodHead {
		return
	}
	switch {
	case stall:
		w.Write(data[:len(data)/2])
		w.(http.Flusher).Flush()
		<-r.Context().Done()
	case truncate:
		// Declares the full length, sends half, ends the response: the
		// server closes the connection, the client sees a short body.
		w.Write(data[:len(data)/2])
	default:
		w.Write(data)
	}
}

func (f *fakeRegistry) authorized(w http.ResponseWriter, r *http.Request, repo string) bool {
	switch {
	case f.bearer:
		a := r.Header.Get("Authorization")
		ok := strings.HasPrefix(a, "Bearer user-") || strings.HasPrefix(a, "Bearer anon-") && !f.private[repo]
		if ok && repo != "" && !strings.HasSuffix(a, "repository:"+repo+":pull") {
			ok = false // a token for another scope
		}
		if !ok {
			scope := ""
			if repo != "" {
				scope = fmt.Sprintf(`,scope="repository:%s:pull"`, repo)
			}
			w.Header().Set("WWW-Authenticate", fmt.Sprintf(`Bearer realm="%s/token",service="fake-registry"%s`, f.srv.URL, scope))
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusUnauthorized)
			fmt.Fprint(w, `{"errors":[{"code":"UNAUTHORIZED","message":"authentication required"}]}`)
			return false
		}
	case f.basic:
		u, p, ok := r.BasicAuth()
		if !ok || u != f.user || p != f.pass {
			w.Header().Set("WWW-Authenticate", `Basic realm="fake-registry"`)
			w.WriteHeader(http.StatusUnauthorized)
			return false
		}
	}
	return true
}

func (f *fakeRegistry) serveToken(w http.ResponseWriter, r *http.Request) {
	if r.URL.Query().Get("service") != "fake-registry" {
		http.Error(w, "bad service", http.StatusBadRequest)
		return
	}
	scope := r.URL.Query().Get("scope")
	kind := "anon-"
	if u, p, ok := r.BasicAuth(); ok {
		if u != f.user || p != f.pass {
			w.WriteHeader(http.StatusUnauthorized)
			fmt.Fprint(w, `{"details":"incorrect username or password"}`)
			return
		}
		kind = "user-"
	}
	f.mu.Lock()
	f.tokens++
	f.mu.Unlock()
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(map[string]any{"token": kind + scope, "expires_in": 300})
}
