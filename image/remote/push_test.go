package remote

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/skiff-containers/skiff/errdefs"
	"github.com/skiff-containers/skiff/image/content"
	"github.com/skiff-containers/skiff/image/reference"
	"github.com/skiff-containers/skiff/image/remote/remotetest"
	"github.com/skiff-containers/skiff/internal/imagebuild"
)

// storeBlobs puts blobs into a fresh content store.
func storeBlobs(t *testing.T, blobs ...imagebuild.Blob) *content.Store {
	t.Helper()
	store, err := content.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	for _, b := range blobs {
		if err := putBytes(context.Background(), store, b.Descriptor, b.Data); err != nil {
			t.Fatal(err)
		}
	}
	return store
}

// statusLog records the final status of each blob of a push.
type statusLog struct {
	mu  sync.Mutex
	got map[digest.Digest][]PushStatus
}

func (l *statusLog) progress(p PushProgress) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.got == nil {
		l.got = map[digest.Digest][]PushStatus{}
	}
	s := l.got[p.Desc.Digest]
	if len(s) == 0 || s[len(s)-1] != p.Status {
		l.got[p.Desc.Digest] = append(s, p.Status)
	}
}

func (l *statusLog) final(d digest.Digest) PushStatus {
	l.mu.Lock()
	defer l.mu.Unlock()
	s := l.got[d]
	if len(s) == 0 {
		return ""
	}
	return s[len(s)-1]
}

func (l *statusLog) saw(d digest.Digest, st PushStatus) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, s := range l.got[d] {
		if s == st {
			return true
		}
	}
	return false
}

// uploadsLeft lists the live upload sessions the registry keeps for repo
// (a cancelled one of distribution 2.8 leaves an empty hashstates
// directory, but neither its data nor its startedat file).
func uploadsLeft(t *testing.T, reg *remotetest.Registry, repo string) []string {
	t.Helper()
	dir := filepath.Join(reg.Root, "docker/registry/v2/repositories", repo, "_uploads")
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil
	}
	var out []string
	for _, e := range ents {
		for _, f := range []string{"data", "startedat"} {
			if _, err := os.Stat(filepath.Join(dir, e.Name(), f)); err == nil {
				out = append(out, e.Name()+"/"+f)
			}
		}
	}
	return out
}

// TestPushToDistributionRegistry pushes a manifest and a two-platform
// index into a real registry (chunked, concurrently), pulls them back with
// the same digests, then pushes again (every blob exists) and to another
// repository (blobs mounted).
func TestPushToDistributionRegistry(t *testing.T) {
	ctx := context.Background()
	reg := remotetest.Start(t)
	host, err := imagebuild.Build(imagebuild.Options{Architecture: runtime.GOARCH})
	if err != nil {
		t.Fatal(err)
	}
	other, err := imagebuild.Build(imagebuild.Options{Architecture: "s390x"})
	if err != nil {
		t.Fatal(err)
	}
	withPlatform := func(img *imagebuild.Image, arch string) ocispec.Descriptor {
		d := img.Manifest.Descriptor
		d.Platform = &ocispec.Platform{OS: "linux", Architecture: arch}
		return d
	}
	idx := ocispec.Index{MediaType: ocispec.MediaTypeImageIndex, Manifests: []ocispec.Descriptor{withPlatform(host, runtime.GOARCH), withPlatform(other, "s390x")}}
	idx.SchemaVersion = 2
	idxData, _ := json.Marshal(idx)
	idxBlob := imagebuild.Blob{Descriptor: ocispec.Descriptor{MediaType: ocispec.MediaTypeImageIndex, Digest: digest.FromBytes(idxData), Size: int64(len(idxData))}, Data: idxData}
	store := storeBlobs(t, append(append(host.Blobs(), other.Blobs()...), idxBlob)...)

	for _, tt := range []struct {
		name, ref string
		target    ocispec.Descriptor
		opts      PushOptions
		// want is the final status of the host layer.
		want PushStatus
	}{
		{name: "manifest, chunked", ref: "skiff/one:v1", target: host.Manifest.Descriptor, opts: PushOptions{ChunkSize: 64 << 10}, want: PushPushed},
		{name: "again: exists", ref: "skiff/one:v2", target: host.Manifest.Descriptor, want: PushExists},
		{name: "index, one chunk", ref: "skiff/multi:latest", target: idxBlob.Descriptor, opts: PushOptions{Concurrency: 1}, want: PushPushed},
		{name: "mounted", ref: "skiff/two:latest", target: host.Manifest.Descriptor, opts: PushOptions{MountFrom: []reference.Reference{mustRef(t, "other.example/skiff/one"), mustRef(t, reg.Domain+"/skiff/two"), mustRef(t, reg.Domain+"/skiff/one")}}, want: PushMounted},
		{name: "by digest", ref: "skiff/three@" + host.Manifest.Descriptor.Digest.String(), target: host.Manifest.Descriptor, want: PushPushed},
	} {
		t.Run(tt.name, func(t *testing.T) {
			var log statusLog
			tt.opts.Progress = log.progress
			ref := mustRef(t, reg.Domain+"/"+tt.ref)
			if err := NewResolver(Options{}).Push(ctx, ref, store, tt.target, tt.opts); err != nil {
				t.Fatal(err)
			}
			if got := log.final(host.Layer.Descriptor.Digest); got != tt.want {
				t.Errorf("layer status %q, want %q (all: %v)", got, tt.want, log.got)
			}
			if got := log.final(tt.target.Digest); got != PushPushed {
				t.Errorf("target status %q, want pushed", got)
			}
			got, err := NewResolver(Options{}).Resolve(ctx, ref)
			if err != nil {
				t.Fatal(err)
			}
			if got.Digest != tt.target.Digest || got.MediaType != tt.target.MediaType {
				t.Errorf("resolved %+v, want %+v", got, tt.target)
			}
			pulled, err := content.Open(t.TempDir())
			if err != nil {
				t.Fatal(err)
			}
			img, err := NewResolver(Options{}).Pull(ctx, ref, pulled, PullOptions{})
			if err != nil {
				t.Fatal(err)
			}
			if img.Target.Digest != tt.target.Digest || img.Manifest.Digest != host.Manifest.Descriptor.Digest {
				t.Errorf("pulled %s / %s, want %s / %s", img.Target.Digest, img.Manifest.Digest, tt.target.Digest, host.Manifest.Descriptor.Digest)
			}
			if left := uploadsLeft(t, reg, strings.SplitN(tt.ref, ":", 2)[0]); len(left) > 0 {
				t.Errorf("upload sessions left in the registry: %v", left)
			}
		})
	}

	// An index whose other platform is not stored cannot be pushed.
	partial := storeBlobs(t, append(host.Blobs(), idxBlob)...)
	err = NewResolver(Options{}).Push(ctx, mustRef(t, reg.Domain+"/skiff/partial:latest"), partial, idxBlob.Descriptor, PushOptions{})
	if !errdefs.IsFailedPrecondition(err) || !strings.Contains(err.Error(), other.Manifest.Descriptor.Digest.String()) {
		t.Errorf("push of an incomplete index = %v, want a refusal naming the missing manifest", err)
	}
}

// faultProxy stands in front of the registry and misbehaves on uploads.
type faultProxy struct {
	t      *testing.T
	target *url.URL
	mode   string // "break-patch", "5xx-patch", "corrupt", "auth"
	chunk  int64  // break the second PATCH after this many bytes

	patches, posts, deletes atomic.Int32
	broken                  atomic.Bool
	sent                    atomic.Int64 // PATCH/PUT body bytes forwarded
}

func (p *faultProxy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if p.mode == "auth" {
		if u, pw, ok := r.BasicAuth(); !ok || u != "alice" || pw != "s3cret" {
			w.Header().Set("WWW-Authenticate", `Basic realm="skiff-test"`)
			http.Error(w, `{"errors":[{"code":"UNAUTHORIZED","message":"authentication required"}]}`, http.StatusUnauthorized)
			return
		}
	}
	isUpload := strings.Contains(r.URL.Path, "/blobs/uploads/")
	switch {
	case isUpload && r.Method == http.MethodPost:
		p.posts.Add(1)
	case isUpload && r.Method == http.MethodDelete:
		p.deletes.Add(1)
	}
	var body []byte
	if r.Body != nil {
		var err error
		if isUpload && r.Method == http.MethodPatch && p.patches.Add(1) == 2 && !p.broken.Load() {
			switch p.mode {
			case "break-patch": // the connection drops mid-PATCH
				p.broken.Store(true)
				io.CopyN(io.Discard, r.Body, p.chunk/2)
				if hj, ok := w.(http.Hijacker); ok {
					if c, _, err := hj.Hijack(); err == nil {
						c.Close()
						return
					}
				}
				panic(http.ErrAbortHandler)
			case "5xx-patch":
				p.broken.Store(true)
				io.Copy(io.Discard, r.Body)
				http.Error(w, "overloaded", http.StatusServiceUnavailable)
				return
			}
		}
		body, err = io.ReadAll(r.Body)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadGateway)
			return
		}
		if isUpload && p.mode == "corrupt" && len(body) > 100 {
			body[len(body)/2] ^= 0xff
		}
		if isUpload {
			p.sent.Add(int64(len(body)))
		}
	}
	out, err := http.NewRequestWithContext(r.Context(), r.Method, p.target.Scheme+"://"+p.target.Host+r.URL.RequestURI(), bytes.NewReader(body))
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadGateway)
		return
	}
	out.Header = r.Header.Clone()
	out.Header.Del("Authorization")
	out.Host = r.Host // Locations point back at the proxy
	out.ContentLength = int64(len(body))
	resp, err := http.DefaultTransport.RoundTrip(out)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadGateway)
		return
	}
	defer resp.Body.Close()
	for k, v := range resp.Header {
		w.Header()[k] = v
	}
	w.WriteHeader(resp.StatusCode)
	io.Copy(w, resp.Body)
}

// TestPushFaults: an upload broken mid-PATCH resumes from the offset the
// registry has (no byte of the first chunk is sent twice, no second
// upload session); a 503 is resumed too; corrupt content is refused by
// the registry and the upload cancelled; a push without rights names
// the registry, repository and user and starts nothing.
func TestPushFaults(t *testing.T) {
	ctx := context.Background()
	reg := remotetest.Start(t)
	target, _ := url.Parse(reg.URL)
	img, err := imagebuild.Build(imagebuild.Options{})
	if err != nil {
		t.Fatal(err)
	}
	store := storeBlobs(t, img.Blobs()...)
	layer := img.Layer.Descriptor
	const chunk = 64 << 10
	if layer.Size < 3*chunk {
		t.Fatalf("the test layer (%d bytes) is too small for chunked uploads", layer.Size)
	}

	for _, tt := range []struct {
		mode, repo string
		creds      Credentials
		wantErr    string
		check      func(t *testing.T, p *faultProxy, log *statusLog)
	}{
		{mode: "break-patch", repo: "skiff/broken", check: func(t *testing.T, p *faultProxy, log *statusLog) {
			if !p.broken.Load() {
				t.Fatal("the connection was never broken")
			}
			if n := p.posts.Load(); n != 2 { // layer and config, each once
				t.Errorf("%d upload sessions started, want 2 (a resume, not a restart)", n)
			}
			cfg := img.Config.Descriptor.Size
			if sent := p.sent.Load(); sent != layer.Size+cfg {
				t.Errorf("%d bytes forwarded to the registry, want exactly %d", sent, layer.Size+cfg)
			}
			if !log.saw(layer.Digest, PushRetrying) {
				t.Errorf("no retrying status: %v", log.got[layer.Digest])
			}
		}},
		{mode: "5xx-patch", repo: "skiff/overloaded", check: func(t *testing.T, p *faultProxy, log *statusLog) {
			if !p.broken.Load() || p.posts.Load() != 2 {
				t.Errorf("broken %v, %d upload sessions: want a resumed upload", p.broken.Load(), p.posts.Load())
			}
		}},
		{mode: "corrupt", repo: "skiff/corrupt", wantErr: "does not match digest", check: func(t *testing.T, p *faultProxy, log *statusLog) {
			if p.deletes.Load() == 0 {
				t.Error("the failed upload was not cancelled (no DELETE)")
			}
		}},
		{mode: "auth", repo: "skiff/private", creds: StaticCredentials{}, wantErr: "anonymously"},
		{mode: "auth", repo: "skiff/private", creds: StaticCredentials{"PROXY": {"bob", "nope"}}, wantErr: `as user "bob"`},
		{mode: "auth", repo: "skiff/private", creds: StaticCredentials{"PROXY": {"alice", "s3cret"}}},
	} {
		t.Run(tt.mode+" "+tt.wantErr, func(t *testing.T) {
			p := &faultProxy{t: t, target: target, mode: tt.mode, chunk: chunk}
			srv := httptest.NewServer(p)
			defer srv.Close()
			domain := strings.TrimPrefix(srv.URL, "http://")
			opts := Options{RetryBackoff: 10 * time.Millisecond}
			if sc, ok := tt.creds.(StaticCredentials); ok {
				fixed := StaticCredentials{}
				for k, v := range sc {
					fixed[strings.ReplaceAll(k, "PROXY", domain)] = v
				}
				opts.Credentials = fixed
			}
			var log statusLog
			ref := mustRef(t, domain+"/"+tt.repo+":latest")
			err := NewResolver(opts).Push(ctx, ref, store, img.Manifest.Descriptor, PushOptions{ChunkSize: chunk, Concurrency: 1, Progress: log.progress})
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("push = %v, want an error saying %q", err, tt.wantErr)
				}
				if tt.mode == "auth" {
					if !errdefs.IsFailedPrecondition(err) || !strings.Contains(err.Error(), domain) || !strings.Contains(err.Error(), tt.repo) || !strings.Contains(err.Error(), "skiff login") {
						t.Errorf("want a FailedPrecondition naming registry, repository and 'skiff login': %v", err)
					}
				}
				if _, err := NewResolver(Options{}).Resolve(ctx, mustRef(t, reg.Domain+"/"+tt.repo+":latest")); !errdefs.IsNotFound(err) {
					t.Errorf("the failed push left a manifest: %v", err)
				}
			} else {
				if err != nil {
					t.Fatal(err)
				}
				pulled, _ := content.Open(t.TempDir())
				got, err := NewResolver(Options{}).Pull(ctx, mustRef(t, reg.Domain+"/"+tt.repo+":latest"), pulled, PullOptions{})
				if err != nil {
					t.Fatal(err)
				}
				if got.Target.Digest != img.Manifest.Descriptor.Digest {
					t.Errorf("pulled %s, want %s", got.Target.Digest, img.Manifest.Descriptor.Digest)
				}
			}
			if left := uploadsLeft(t, reg, tt.repo); len(left) > 0 {
				t.Errorf("upload sessions left in the registry: %v", left)
			}
			if tt.check != nil {
				tt.check(t, p, &log)
			}
		})
	}
}

func TestRangeEnd(t *testing.T) {
	for _, tt := range []struct {
		in   string
		end  int64
		good bool
	}{
		{"0-0", 0, true},
		{"0-65535", 65535, true},
		{"bytes=0-10", 10, true},
		{"", 0, false},
		{"5-10", 0, false},
		{"0-x", 0, false},
		{"0--1", 0, false},
	} {
		end, ok := rangeEnd(tt.in)
		if end != tt.end || ok != tt.good {
			t.Errorf("rangeEnd(%q) = %d, %v; want %d, %v", tt.in, end, ok, tt.end, tt.good)
		}
	}
}
