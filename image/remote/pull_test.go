package remote

import (
	"context"
	"crypto/rand"
	"errors"
	"io"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/skiff-containers/skiff/errdefs"
	"github.com/skiff-containers/skiff/image/content"
)

func fastOptions() Options {
	return Options{MaxAttempts: 3, RetryBackoff: 5 * time.Millisecond, StallTimeout: 2 * time.Second}
}

func newStore(t *testing.T, root string) *content.Store {
	t.Helper()
	if root == "" {
		root = t.TempDir()
	}
	s, err := content.Open(filepath.Join(root, "content"))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func randomBytes(t *testing.T, n int) []byte {
	t.Helper()
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return b
}

func hostPlatform() ocispec.Platform {
	return ocispec.Platform{OS: runtime.GOOS, Architecture: runtime.GOARCH}
}

// storeState lists the store's blobs and ingests.
func storeState(t *testing.T, s *content.Store) (blobs []string, ingests []string) {
	t.Helper()
	if err := s.Walk(context.Background(), func(i content.Info) error { blobs = append(blobs, i.Digest.String()); return nil }); err != nil {
		t.Fatal(err)
	}
	ingests, err := s.Ingests(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	sort.Strings(blobs)
	return blobs, ingests
}

// assertStore checks that the store holds exactly want (with correct
// content, as the store verified it) and no ingest.
func assertStore(t *testing.T, s *content.Store, want ...digest.Digest) {
	t.Helper()
	blobs, ingests := storeState(t, s)
	var w []string
	for _, d := range want {
		w = append(w, d.String())
	}
	sort.Strings(w)
	if strings.Join(blobs, " ") != strings.Join(w, " ") {
		t.Errorf("store blobs:\n got %v\nwant %v", blobs, w)
	}
	if len(ingests) > 0 {
		t.Errorf("leftover ingests: %v", ingests)
	}
	for _, d := range want {
		ra, err := s.ReaderAt(context.Background(), ocispec.Descriptor{Digest: d})
		if err != nil {
			t.Errorf("read %s: %v", d, err)
			continue
		}
		got, _ := io.ReadAll(io.NewSectionReader(ra, 0, ra.Size()))
		ra.Close()
		if digest.FromBytes(got) != d {
			t.Errorf("stored blob %s has wrong content", d)
		}
	}
}

func imageDigests(img testImage, extra ...digest.Digest) []digest.Digest {
	ds := []digest.Digest{img.manifest.Digest, img.config.Digest}
	for _, l := range img.layers {
		ds = append(ds, l.Digest)
	}
	return append(ds, extra...)
}

func TestPull(t *testing.T) {
	ctx := context.Background()
	for _, tt := range []struct {
		name   string
		docker bool
		index  bool
	}{
		{"oci manifest", false, false},
		{"oci index", false, true},
		{"docker schema2", true, false},
		{"docker manifest list", true, true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			reg := newFakeRegistry(t)
			img := reg.addImage("team/app", "v1", tt.docker, hostPlatform(), randomBytes(t, 300<<10), randomBytes(t, 10), randomBytes(t, 1<<20))
			want := imageDigests(img)
			target := img.manifest
			if tt.index {
				other := reg.addImage("team/app", "", tt.docker, ocispec.Platform{OS: "linux", Architecture: "s390x"}, randomBytes(t, 100))
				idx := reg.addIndex("team/app", "v1", tt.docker, other.manifest, img.manifest)
				want = append(want, idx.Digest)
				target = idx
			}
			store := newStore(t, "")
			var mu sync.Mutex
			final := map[digest.Digest]Progress{}
			got, err := NewResolver(fastOptions()).Pull(ctx, reg.ref(t, "team/app:v1"), store, PullOptions{
				Progress: func(p Progress) { mu.Lock(); final[p.Desc.Digest] = p; mu.Unlock() },
			})
			if err != nil {
				t.Fatal(err)
			}
			if got.Target.Digest != target.Digest || got.Target.MediaType != target.MediaType || got.Target.Size != target.Size {
				t.Errorf("Target = %+v, want %+v", got.Target, target)
			}
			if got.Manifest.Digest != img.manifest.Digest || got.Config.Digest != img.config.Digest || len(got.Layers) != 3 {
				t.Errorf("got %+v", got)
			}
			if got.Name != reg.domain()+"/team/app:v1" {
				t.Errorf("Name = %q", got.Name)
			}
			if got.Platform.Architecture != runtime.GOARCH || got.Platform.OS != runtime.GOOS {
				t.Errorf("Platform = %+v", got.Platform)
			}
			assertStore(t, store, want...)
			for _, d := range append([]ocispec.Descriptor{img.config}, img.layers...) {
				p := final[d.Digest]
				if p.Status != ProgressDone || p.Done != d.Size || p.Total != d.Size {
					t.Errorf("final progress of %s = %+v", d.Digest, p)
				}
			}

			// A second pull finds everything present and fetches no blob.
			before := reg.count("GET /v2/team/app/blobs/" + img.layers[2].Digest.String())
			final = map[digest.Digest]Progress{}
			if _, err := NewResolver(fastOptions()).Pull(ctx, reg.ref(t, "team/app:v1"), store, PullOptions{
				Progress: func(p Progress) { mu.Lock(); final[p.Desc.Digest] = p; mu.Unlock() },
			}); err != nil {
				t.Fatal(err)
			}
			if after := reg.count("GET /v2/team/app/blobs/" + img.layers[2].Digest.String()); after != before {
				t.Errorf("second pull fetched the layer again")
			}
			if p := final[img.layers[2].Digest]; p.Status != ProgressExists {
				t.Errorf("second pull progress = %+v, want exists", p)
			}
		})
	}
}

func TestPullByDigestAndHeadWithoutDigest(t *testing.T) {
	ctx := context.Background()
	reg := newFakeRegistry(t)
	img := reg.addImage("app", "latest", false, hostPlatform(), randomBytes(t, 1000))
	reg.noHeadDigest = true
	for _, ref := range []string{"app", "app@" + img.manifest.Digest.String(), "app:other@" + img.manifest.Digest.String()} {
		t.Run(ref, func(t *testing.T) {
			store := newStore(t, "")
			got, err := NewResolver(fastOptions()).Pull(ctx, reg.ref(t, ref), store, PullOptions{})
			if err != nil {
				t.Fatal(err)
			}
			if got.Manifest.Digest != img.manifest.Digest {
				t.Errorf("manifest %s, want %s", got.Manifest.Digest, img.manifest.Digest)
			}
			assertStore(t, store, imageDigests(img)...)
		})
	}
	// A digest the repository does not have is "not found".
	_, err := NewResolver(fastOptions()).Pull(ctx, reg.ref(t, "app@"+digest.FromString("nope").String()), newStore(t, ""), PullOptions{})
	if !errdefs.IsNotFound(err) {
		t.Errorf("pull of an unknown digest = %v, want ErrNotFound", err)
	}
}

func TestPullPlatformSelection(t *testing.T) {
	ctx := context.Background()
	reg := newFakeRegistry(t)
	amd := reg.addImage("multi", "", false, ocispec.Platform{OS: "linux", Architecture: "amd64"}, []byte("amd64"))
	arm64 := reg.addImage("multi", "", false, ocispec.Platform{OS: "linux", Architecture: "arm64", Variant: "v8"}, []byte("arm64"))
	armv6 := reg.addImage("multi", "", false, ocispec.Platform{OS: "linux", Architecture: "arm", Variant: "v6"}, []byte("armv6"))
	armv7 := reg.addImage("multi", "", false, ocispec.Platform{OS: "linux", Architecture: "arm", Variant: "v7"}, []byte("armv7"))
	att := reg.addImage("multi", "", false, ocispec.Platform{OS: "unknown", Architecture: "unknown"}, []byte("attestation"))
	reg.addIndex("multi", "latest", false, att.manifest, armv6.manifest, amd.manifest, arm64.manifest, armv7.manifest)
	reg.addIndex("multi", "v6only", false, armv6.manifest)
	for _, tt := range []struct {
		tag, platform string
		want          testImage
		wantErr       string
	}{
		{"latest", "linux/amd64", amd, ""},
		{"latest", "linux/arm64", arm64, ""},
		{"latest", "linux/aarch64", arm64, ""},
		{"latest", "linux/arm/v7", armv7, ""},
		{"latest", "linux/arm/v6", armv6, ""},
		{"v6only", "linux/arm/v7", armv6, ""}, // a v7 host runs v6
		{"v6only", "linux/arm/v5", testImage{}, "no manifest for platform linux/arm/v5 (the image has: linux/arm/v6)"},
		{"latest", "linux/s390x", testImage{}, "no manifest for platform linux/s390x (the image has: linux/arm/v6, linux/amd64, linux/arm64/v8, linux/arm/v7)"},
		{"latest", "windows/amd64", testImage{}, "no manifest for platform windows/amd64"},
	} {
		t.Run(tt.tag+" "+tt.platform, func(t *testing.T) {
			p, err := ParsePlatform(tt.platform)
			if err != nil {
				t.Fatal(err)
			}
			store := newStore(t, "")
			got, err := NewResolver(fastOptions()).Pull(ctx, reg.ref(t, "multi:"+tt.tag), store, PullOptions{Platform: &p})
			if tt.wantErr != "" {
				if !errdefs.IsNotFound(err) || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("error = %v, want ErrNotFound with %q", err, tt.wantErr)
				}
				assertStore(t, store)
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got.Manifest.Digest != tt.want.manifest.Digest {
				t.Errorf("selected %s (%+v), want %s", got.Manifest.Digest, got.Platform, tt.want.manifest.Digest)
			}
		})
	}
}

func TestPullBearerAuth(t *testing.T) {
	ctx := context.Background()
	reg := newFakeRegistry(t)
	reg.bearer = true
	reg.user, reg.pass = "alice", "s3cret"
	reg.private["private/app"] = true
	pub := reg.addImage("public/app", "latest", false, hostPlatform(), randomBytes(t, 100), randomBytes(t, 100))
	priv := reg.addImage("private/app", "latest", false, hostPlatform(), randomBytes(t, 100))

	// Anonymous pull of a public repo: one token for the whole pull.
	store := newStore(t, "")
	r := NewResolver(fastOptions())
	if _, err := r.Pull(ctx, reg.ref(t, "public/app"), store, PullOptions{}); err != nil {
		t.Fatal(err)
	}
	if reg.tokens != 1 {
		t.Errorf("%d tokens fetched for one pull, want 1 (cached per scope)", reg.tokens)
	}
	assertStore(t, store, imageDigests(pub)...)

	cfgDir := t.TempDir()
	credsStoreCfg := filepath.Join(cfgDir, "helper.json")
	os.WriteFile(credsStoreCfg, []byte(`{"auths":{},"credsStore":"desktop"}`), 0o600)
	helper, err := LoadDockerConfig(credsStoreCfg)
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		name    string
		creds   Credentials
		ok      bool
		mention []string
	}{
		{"no credentials", nil, false, []string{"unauthorized", "skiff login " + reg.domain()}},
		{"wrong password", StaticCredentials{reg.domain(): {"alice", "wrong"}}, false, []string{"unauthorized", `user "alice" were refused`, "skiff login " + reg.domain()}},
		{"credential helper", helper, false, []string{"unauthorized", "docker-credential-desktop", "skiff login " + reg.domain()}},
		{"right password", StaticCredentials{reg.domain(): {"alice", "s3cret"}}, true, nil},
	} {
		t.Run(tt.name, func(t *testing.T) {
			opts := fastOptions()
			opts.Credentials = tt.creds
			store := newStore(t, "")
			_, err := NewResolver(opts).Pull(ctx, reg.ref(t, "private/app"), store, PullOptions{})
			if tt.ok {
				if err != nil {
					t.Fatal(err)
				}
				assertStore(t, store, imageDigests(priv)...)
				return
			}
			if !errdefs.IsFailedPrecondition(err) {
				t.Fatalf("error = %v, want ErrFailedPrecondition", err)
			}
			for _, m := range append(tt.mention, "private/app") {
				if !strings.Contains(err.Error(), m) {
					t.Errorf("error %q does not mention %q", err, m)
				}
			}
			assertStore(t, store)
		})
	}
}

func TestPullBasicAuth(t *testing.T) {
	ctx := context.Background()
	reg := newFakeRegistry(t)
	reg.basic = true
	reg.user, reg.pass = "bob", "pw"
	img := reg.addImage("app", "latest", true, hostPlatform(), randomBytes(t, 100))

	cfgPath := filepath.Join(t.TempDir(), "config.json")
	cfg, err := LoadDockerConfig(cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	cfg.Set(reg.domain(), "bob", "pw")
	if err := cfg.Save(); err != nil {
		t.Fatal(err)
	}
	cfg, err = LoadDockerConfig(cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	opts := fastOptions()
	opts.Credentials = cfg
	store := newStore(t, "")
	if _, err := NewResolver(opts).Pull(ctx, reg.ref(t, "app"), store, PullOptions{}); err != nil {
		t.Fatal(err)
	}
	assertStore(t, store, imageDigests(img)...)

	_, err = NewResolver(fastOptions()).Pull(ctx, reg.ref(t, "app"), newStore(t, ""), PullOptions{})
	if !errdefs.IsFailedPrecondition(err) || !strings.Contains(err.Error(), "skiff login") {
		t.Errorf("anonymous pull from a basic-auth registry = %v", err)
	}
}

// TestPullTransient covers failures that a retry absorbs.
func TestPullTransient(t *testing.T) {
	ctx := context.Background()
	for _, tt := range []struct {
		name  string
		setup func(reg *fakeRegistry, img testImage)
	}{
		{"503 on manifest and blob", func(reg *fakeRegistry, img testImage) {
			reg.flaky["/v2/app/manifests/latest"] = 2
			reg.flaky["/v2/app/blobs/"+img.layers[0].Digest.String()] = 2
		}},
		{"429 with Retry-After", func(reg *fakeRegistry, img testImage) {
			reg.tooMany["/v2/app/blobs/"+img.config.Digest.String()] = 1
		}},
		{"truncated layer once", func(reg *fakeRegistry, img testImage) {
			reg.truncate["/v2/app/blobs/"+img.layers[0].Digest.String()] = 1
		}},
		{"truncated manifest once", func(reg *fakeRegistry, img testImage) {
			reg.truncate["/v2/app/manifests/"+img.manifest.Digest.String()] = 1
		}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			reg := newFakeRegistry(t)
			img := reg.addImage("app", "latest", false, hostPlatform(), randomBytes(t, 200<<10))
			tt.setup(reg, img)
			store := newStore(t, "")
			if _, err := NewResolver(fastOptions()).Pull(ctx, reg.ref(t, "app"), store, PullOptions{}); err != nil {
				t.Fatal(err)
			}
			assertStore(t, store, imageDigests(img)...)
		})
	}
}

// TestPullFailures covers bad input: each gets one clear, classified
// error, and the store keeps nothing partial.
func TestPullFailures(t *testing.T) {
	ctx := context.Background()
	for _, tt := range []struct {
		name    string
		ref     string
		setup   func(reg *fakeRegistry, img testImage, o *Options)
		class   func(error) bool
		mention []string
		keeps   func(img testImage) []digest.Digest // blobs that may (must) remain: complete, verified ones
	}{
		{
			name: "unknown repository", ref: "nosuch",
			class: errdefs.IsNotFound, mention: []string{"nosuch:latest", "not found", "MANIFEST_UNKNOWN", "check the image name and tag"},
		},
		{
			name: "unknown tag", ref: "app:nope",
			class: errdefs.IsNotFound, mention: []string{"app:nope", "not found"},
		},
		{
			name: "corrupt layer", ref: "app",
			setup: func(reg *fakeRegistry, img testImage, o *Options) {
				reg.corrupt["/v2/app/blobs/"+img.layers[0].Digest.String()] = true
			},
			class: errdefs.IsInvalidArgument, mention: []string{"digest mismatch", "refused, not stored"},
			keeps: func(img testImage) []digest.Digest { return []digest.Digest{img.config.Digest} },
		},
		{
			name: "corrupt manifest", ref: "app",
			setup: func(reg *fakeRegistry, img testImage, o *Options) {
				reg.corrupt["/v2/app/manifests/"+img.manifest.Digest.String()] = true
			},
			class: errdefs.IsInvalidArgument, mention: []string{"digest mismatch", img0Manifest},
		},
		{
			name: "layer always truncated", ref: "app",
			setup: func(reg *fakeRegistry, img testImage, o *Options) {
				reg.truncate["/v2/app/blobs/"+img.layers[0].Digest.String()] = 100
			},
			class:   func(err error) bool { return errors.Is(err, io.ErrUnexpectedEOF) },
			mention: []string{"broke off after", "gave up after 3 attempts"},
			keeps:   func(img testImage) []digest.Digest { return []digest.Digest{img.config.Digest} },
		},
		{
			name: "registry always 503", ref: "app",
			setup: func(reg *fakeRegistry, img testImage, o *Options) { reg.flaky["/v2/app/manifests/latest"] = 100 },
			class: func(err error) bool { return err != nil }, mention: []string{"503", "after 3 attempts", "retry later"},
		},
		{
			name: "slow registry", ref: "app",
			setup: func(reg *fakeRegistry, img testImage, o *Options) {
				reg.slowHeaders = 3 * time.Second
				o.ResponseHeaderTimeout = 100 * time.Millisecond
				o.MaxAttempts = 2
			},
			class: func(err error) bool { return err != nil }, mention: []string{"timed out", "after 2 attempts"},
		},
		{
			name: "stalled layer", ref: "app",
			setup: func(reg *fakeRegistry, img testImage, o *Options) {
				reg.stall["/v2/app/blobs/"+img.layers[0].Digest.String()] = true
				o.StallTimeout = 200 * time.Millisecond
				o.MaxAttempts = 2
			},
			class: func(err error) bool { return err != nil }, mention: []string{"timed out", "no data received for 200ms", "gave up after 2 attempts"},
			keeps: func(img testImage) []digest.Digest { return []digest.Digest{img.config.Digest} },
		},
	} {
		t.Run(tt.name, func(t *testing.T) {
			reg := newFakeRegistry(t)
			img := reg.addImage("app", "latest", false, hostPlatform(), randomBytes(t, 64<<10))
			opts := fastOptions()
			if tt.setup != nil {
				tt.setup(reg, img, &opts)
			}
			store := newStore(t, "")
			start := time.Now()
			_, err := NewResolver(opts).Pull(ctx, reg.ref(t, tt.ref), store, PullOptions{Concurrency: 1})
			if err == nil {
				t.Fatal("pull succeeded, want an error")
			}
			t.Logf("error: %v", err)
			if time.Since(start) > 15*time.Second {
				t.Errorf("failure took %v", time.Since(start))
			}
			if !tt.class(err) {
				t.Errorf("error %v has the wrong class", err)
			}
			for _, m := range append(tt.mention, reg.domain()) {
				if m == img0Manifest {
					m = img.manifest.Digest.String()
				}
				if !strings.Contains(err.Error(), m) {
					t.Errorf("error %q does not mention %q", err, m)
				}
			}
			// Only complete, verified blobs may remain; with Concurrency 1
			// the config is fetched before the layers.
			blobs, ingests := storeState(t, store)
			var keep []digest.Digest
			if tt.keeps != nil {
				keep = tt.keeps(img)
			}
			if len(blobs) != len(keep) || len(ingests) != 0 {
				t.Errorf("after failure: blobs %v (want %v), ingests %v", blobs, keep, ingests)
			}
		})
	}
}

// img0Manifest in a mention list stands for the test image's manifest
// digest.
const img0Manifest = "<manifest digest>"

func TestPullRegistryDown(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	r := NewResolver(fastOptions())
	ref := mustRef(t, addr+"/app")
	store := newStore(t, "")
	_, err = r.Pull(context.Background(), ref, store, PullOptions{})
	if err == nil || !errors.Is(err, syscall.ECONNREFUSED) {
		t.Fatalf("pull from a closed port = %v, want ECONNREFUSED", err)
	}
	for _, m := range []string{addr, "refused the connection", "is it running", "after 3 attempts"} {
		if !strings.Contains(err.Error(), m) {
			t.Errorf("error %q does not mention %q", err, m)
		}
	}
	assertStore(t, store)
}

// TestConcurrentPullsOfOneImage: two pulls of the same image into one
// store at once: both succeed, each blob is fetched once and stored once.
func TestConcurrentPullsOfOneImage(t *testing.T) {
	ctx := context.Background()
	reg := newFakeRegistry(t)
	img := reg.addImage("app", "latest", false, hostPlatform(), randomBytes(t, 2<<20), randomBytes(t, 1<<20))
	store := newStore(t, "")
	var wg sync.WaitGroup
	errs := make([]error, 4)
	for i := range errs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, errs[i] = NewResolver(fastOptions()).Pull(ctx, reg.ref(t, "app"), store, PullOptions{})
		}()
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("pull %d: %v", i, err)
		}
	}
	assertStore(t, store, imageDigests(img)...)
	for _, l := range append(img.layers, img.config) {
		if n := reg.count("GET /v2/app/blobs/" + l.Digest.String()); n != 1 {
			t.Errorf("blob %s fetched %d times, want 1", l.Digest, n)
		}
	}
}

// TestPullDiskFull pulls into a store on a 1 MiB tmpfs an image with a
// 2 MiB layer: the error names the full disk, and no partial blob, ingest
// or manifest remains.
func TestPullDiskFull(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Fatal("this test mounts a tmpfs and needs root (the test suite runs as root)")
	}
	mnt := t.TempDir()
	if err := syscall.Mount("tmpfs", mnt, "tmpfs", 0, "size=1m"); err != nil {
		t.Fatalf("mount tmpfs: %v", err)
	}
	t.Cleanup(func() {
		if err := syscall.Unmount(mnt, 0); err != nil {
			t.Errorf("unmount %s: %v", mnt, err)
		}
	})
	reg := newFakeRegistry(t)
	img := reg.addImage("big", "latest", false, hostPlatform(), randomBytes(t, 2<<20))
	store := newStore(t, mnt)
	_, err := NewResolver(fastOptions()).Pull(context.Background(), reg.ref(t, "big"), store, PullOptions{})
	if !errors.Is(err, syscall.ENOSPC) {
		t.Fatalf("pull = %v, want ENOSPC", err)
	}
	t.Logf("error: %v", err)
	for _, m := range []string{"disk full", mnt, img.layers[0].Digest.String(), "big:latest"} {
		if !strings.Contains(err.Error(), m) {
			t.Errorf("error %q does not mention %q", err, m)
		}
	}
	if n := reg.count("GET /v2/big/blobs/" + img.layers[0].Digest.String()); n != 1 {
		t.Errorf("a full disk was retried: layer fetched %d times", n)
	}
	blobs, ingests := storeState(t, store)
	if len(ingests) != 0 {
		t.Errorf("leftover ingests %v", ingests)
	}
	for _, b := range blobs {
		if b != img.config.Digest.String() {
			t.Errorf("blob %s remains (only the complete config may)", b)
		}
	}
}

func TestFetcherVerifies(t *testing.T) {
	ctx := context.Background()
	reg := newFakeRegistry(t)
	img := reg.addImage("app", "latest", false, hostPlatform(), randomBytes(t, 100<<10))
	reg.corrupt["/v2/app/blobs/"+img.layers[0].Digest.String()] = true
	f := NewResolver(fastOptions()).Fetcher(reg.ref(t, "app"))

	rc, err := f.Fetch(ctx, img.config)
	if err != nil {
		t.Fatal(err)
	}
	b, err := io.ReadAll(rc)
	rc.Close()
	if err != nil || digest.FromBytes(b) != img.config.Digest {
		t.Errorf("config fetch: %v", err)
	}
	rc, err = f.Fetch(ctx, img.manifest)
	if err != nil {
		t.Fatal(err)
	}
	b, _ = io.ReadAll(rc)
	if digest.FromBytes(b) != img.manifest.Digest {
		t.Errorf("manifest fetch returned other content")
	}
	rc, err = f.Fetch(ctx, img.layers[0])
	if err != nil {
		t.Fatal(err)
	}
	_, err = io.ReadAll(rc)
	rc.Close()
	if !errdefs.IsInvalidArgument(err) || !strings.Contains(err.Error(), "digest mismatch") {
		t.Errorf("reading a corrupt blob to the end = %v, want a digest mismatch", err)
	}
	// A descriptor whose size disagrees with the registry's is refused up front.
	wrong := img.config
	wrong.Size++
	if _, err := f.Fetch(ctx, wrong); !errdefs.IsInvalidArgument(err) {
		t.Errorf("size disagreement = %v", err)
	}
}
