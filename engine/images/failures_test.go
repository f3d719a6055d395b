package images

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/skiff-containers/skiff/errdefs"
	"github.com/skiff-containers/skiff/image/remote/remotetest"
)

// TestPullFailures pulls busybox through a registry that misbehaves: each
// pull fails with a useful error and leaves no image, no snapshot, no
// lease and no blob behind, while an image pulled before stays intact.
func TestPullFailures(t *testing.T) {
	reg := remotetest.Start(t)
	bb := busybox(t)
	bb.push(t, reg, "skiff/busybox", "latest")
	keep := multiLayer(t, "keep")
	keep.push(t, reg, "skiff/keep", "1")
	// A good first layer, then a layer that tries to escape.
	slip := makeImage(t, [][]entry{{{"ok/", ""}, {"ok/f", "f"}}, {{"fine", "1"}}, {{"../../escaped-" + randomHex(4), "x"}}}, "slip", nil)
	slip.push(t, reg, "skiff/slip", "1")
	layerPath := "/v2/skiff/busybox/blobs/" + bb.layers[0].desc.Digest.String()
	layerSize := bb.layers[0].desc.Size

	serveHalf := func(w http.ResponseWriter, r *http.Request, upstream http.Handler) {
		rec := fetchUpstream(r, upstream)
		body := rec.Body.Bytes()
		w.Header().Set("Content-Length", strconv.Itoa(len(body)))
		w.Header().Set("Content-Type", "application/octet-stream")
		w.WriteHeader(http.StatusOK)
		w.Write(body[:len(body)/2])
		w.(http.Flusher).Flush()
	}

	for _, tt := range []struct {
		name     string
		ref      string // repo:tag; busybox if empty
		hook     func(w http.ResponseWriter, r *http.Request, upstream http.Handler) bool
		auth     *Auth
		cancelAt string // cancel the pull at this progress status of the layer
		class    error
		mention  string
	}{
		{
			name: "digest mismatch",
			hook: func(w http.ResponseWriter, r *http.Request, upstream http.Handler) bool {
				if r.Method != http.MethodGet || r.URL.Path != layerPath {
					return false
				}
				rec := fetchUpstream(r, upstream)
				body := rec.Body.Bytes()
				body[len(body)/2] ^= 0xff
				w.Header().Set("Content-Length", strconv.Itoa(len(body)))
				w.WriteHeader(http.StatusOK)
				w.Write(body)
				return true
			},
			class: errdefs.ErrInvalidArgument, mention: "digest mismatch",
		},
		{
			name: "truncated layer",
			hook: func(w http.ResponseWriter, r *http.Request, upstream http.Handler) bool {
				if r.Method != http.MethodGet || r.URL.Path != layerPath {
					return false
				}
				serveHalf(w, r, upstream)
				return true
			},
			mention: "broke off",
		},
		{
			name: "unauthorized",
			hook: func(w http.ResponseWriter, r *http.Request, upstream http.Handler) bool {
				w.Header().Set("WWW-Authenticate", `Basic realm="skiff-test"`)
				w.WriteHeader(http.StatusUnauthorized)
				return true
			},
			class: errdefs.ErrFailedPrecondition, mention: "unauthorized",
		},
		{
			name:  "wrong password",
			hook:  requireBasic("user", "secret"),
			auth:  &Auth{Username: "user", Password: "wrong"},
			class: errdefs.ErrFailedPrecondition, mention: "unauthorized",
		},
		{
			name: "manifest not found", ref: "skiff/busybox:nosuch",
			class: errdefs.ErrNotFound, mention: "MANIFEST_UNKNOWN",
		},
		{
			name: "blob not found",
			hook: func(w http.ResponseWriter, r *http.Request, upstream http.Handler) bool {
				if r.URL.Path != layerPath {
					return false
				}
				w.Header().Set("Content-Type", "application/json")
				w.WriteHeader(http.StatusNotFound)
				fmt.Fprint(w, `{"errors":[{"code":"BLOB_UNKNOWN","message":"blob unknown to registry"}]}`)
				return true
			},
			class: errdefs.ErrNotFound,
		},
		{
			name:    "stalled registry",
			hook:    stallLayer(layerPath, serveHalf),
			mention: layerDigestPrefix(bb),
		},
		{
			name: "cancelled mid-download", cancelAt: "downloading",
			hook:  stallLayer(layerPath, serveHalf),
			class: context.Canceled,
		},
		{
			name: "cancelled while extracting", cancelAt: "extracting",
			class: context.Canceled,
		},
		{
			name: "layer escapes", ref: "skiff/slip:1",
			class: errdefs.ErrInvalidArgument, mention: "escaped",
		},
	} {
		t.Run(tt.name, func(t *testing.T) {
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			e := newEnv(t, "")
			if _, err := e.svc.Pull(ctx, "default", reg.Domain+"/skiff/keep:1", "", nil, nil); err != nil {
				t.Fatal(err)
			}
			p := newProxy(t, reg, tt.hook)
			ref := tt.ref
			if ref == "" {
				ref = "skiff/busybox:latest"
			}
			progress := func(m Progress) {
				if tt.cancelAt != "" && m.Kind == "layer" && m.Status == tt.cancelAt {
					cancel()
				}
			}
			start := time.Now()
			_, err := e.svc.Pull(ctx, "default", p.Domain+"/"+ref, "", tt.auth, progress)
			t.Logf("pull failed after %v: %v", time.Since(start), err)
			if err == nil {
				t.Fatal("pull succeeded")
			}
			if tt.class != nil && !errors.Is(err, tt.class) {
				t.Errorf("error %v is not of class %v", err, tt.class)
			}
			if !strings.Contains(err.Error(), p.Domain) && !errors.Is(err, context.Canceled) {
				t.Errorf("error %q does not name the image", err)
			}
			if !strings.Contains(err.Error(), tt.mention) {
				t.Errorf("error %q does not mention %q", err, tt.mention)
			}
			e.checkState(t, map[string][]*testImage{"default": {keep}})
			if _, err := e.svc.Get(context.Background(), "default", p.Domain+"/"+ref); !errdefs.IsNotFound(err) {
				t.Errorf("Get after a failed pull = %v", err)
			}
		})
	}
	_ = layerSize

	t.Run("credentials for one pull", func(t *testing.T) {
		e := newEnv(t, "")
		p := newProxy(t, reg, requireBasic("user", "secret"))
		img, err := e.svc.Pull(context.Background(), "default", p.Domain+"/skiff/busybox", "", &Auth{Username: "user", Password: "secret"}, nil)
		if err != nil {
			t.Fatal(err)
		}
		if img.ID != bb.id() {
			t.Errorf("pulled %s, want %s", img.ID, bb.id())
		}
		// Not kept for later pulls.
		if _, err := e.svc.Pull(context.Background(), "default", p.Domain+"/skiff/busybox:latest", "", nil, nil); !errdefs.IsFailedPrecondition(err) {
			t.Errorf("pull without credentials = %v", err)
		}
		e.checkState(t, map[string][]*testImage{"default": {bb}})
	})
}

func layerDigestPrefix(img *testImage) string { return img.layers[0].desc.Digest.String() }

// requireBasic answers 401 unless the request carries user:pass.
func requireBasic(user, pass string) func(w http.ResponseWriter, r *http.Request, upstream http.Handler) bool {
	return func(w http.ResponseWriter, r *http.Request, upstream http.Handler) bool {
		if u, p, ok := r.BasicAuth(); ok && u == user && p == pass {
			r.Header.Del("Authorization")
			return false
		}
		w.Header().Set("WWW-Authenticate", `Basic realm="skiff-test"`)
		w.WriteHeader(http.StatusUnauthorized)
		return true
	}
}

// stallLayer sends half the layer and then nothing until the client gives
// up.
func stallLayer(path string, half func(w http.ResponseWriter, r *http.Request, upstream http.Handler)) func(w http.ResponseWriter, r *http.Request, upstream http.Handler) bool {
	return func(w http.ResponseWriter, r *http.Request, upstream http.Handler) bool {
		if r.Method != http.MethodGet || r.URL.Path != path {
			return false
		}
		half(w, r, upstream)
		select {
		case <-r.Context().Done():
		case <-time.After(30 * time.Second):
		}
		return true
	}
}

// TestPullDiskFull pulls busybox onto a small tmpfs that fills up while
// the layer is downloaded or unpacked.
func TestPullDiskFull(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to mount a tmpfs")
	}
	reg := remotetest.Start(t)
	bb := busybox(t)
	bb.push(t, reg, "skiff/busybox", "latest")
	size := bb.layers[0].desc.Size
	for _, tt := range []struct {
		name  string
		bytes int64
	}{
		{"while downloading", size / 2},
		{"while unpacking", size + 512<<10},
	} {
		t.Run(tt.name, func(t *testing.T) {
			root := t.TempDir()
			opts := fmt.Sprintf("size=%d", tt.bytes)
			if err := unix.Mount("tmpfs", root, "tmpfs", 0, opts); err != nil {
				t.Fatalf("mount tmpfs: %v", err)
			}
			t.Cleanup(func() {
				if err := unix.Unmount(root, unix.MNT_DETACH); err != nil {
					t.Errorf("unmount %s: %v", root, err)
				}
			})
			e := newEnvAt(t, root, "", testOptions())
			_, err := e.svc.Pull(context.Background(), "default", reg.Domain+"/skiff/busybox", "", nil, nil)
			t.Logf("pull: %v", err)
			if err == nil {
				t.Fatal("pull onto a full disk succeeded")
			}
			if !strings.Contains(err.Error(), "no space left") {
				t.Errorf("error %q does not say the disk is full", err)
			}
			e.checkState(t, nil)
			// Unpacked space is back: only the store's and db's files remain.
			var used int64
			filepath.Walk(filepath.Join(root, "snapshots", "snapshots"), func(_ string, fi os.FileInfo, err error) error {
				if err == nil && fi.Mode().IsRegular() {
					used += fi.Size()
				}
				return nil
			})
			if used != 0 {
				t.Errorf("%d bytes of snapshot files left", used)
			}
		})
	}
}
