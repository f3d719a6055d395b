package metadata

import (
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	bolt "go.etcd.io/bbolt"

	"github.com/skiff-containers/skiff/errdefs"
)

// testClock returns a clock that advances one second per call, from a fixed
// start, so timestamps are deterministic and distinct.
func testClock() func() time.Time {
	var n atomic.Int64
	start := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	return func() time.Time { return start.Add(time.Duration(n.Add(1)) * time.Second) }
}

func openTest(t *testing.T) (*DB, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "meta.db")
	db, err := Open(path, Options{LockTimeout: 2 * time.Second, Now: testClock()})
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { db.Close() })
	return db, path
}

func testImage(name string) Image {
	return Image{
		Name: name,
		Target: ocispec.Descriptor{
			MediaType: ocispec.MediaTypeImageManifest,
			Digest:    digest.FromString(name),
			Size:      int64(len(name)),
		},
		Labels: map[string]string{"a": "1"},
	}
}

func testContainer(id, name string) Container {
	return Container{
		ID:            id,
		Name:          name,
		Image:         "docker.io/library/busybox:latest",
		SnapshotKey:   "default/" + id,
		Snapshotter:   "overlayfs",
		Runtime:       "skiff-runtime",
		Spec:          []byte(`{"ociVersion": "1.2.0",  "process": {"args": ["sh"]}}`),
		Labels:        map[string]string{"app": "web"},
		RestartPolicy: RestartPolicy{Name: "on-failure", MaxRetries: 3},
		LogPath:       "/var/lib/skiff/containers/" + id + "/log",
		StopSignal:    "SIGTERM",
	}
}

func testLease(id string) Lease {
	return Lease{
		ID:        id,
		Labels:    map[string]string{"gc.expire": "2026-01-01T00:00:00Z"},
		Resources: []LeaseResource{{Type: "content", ID: digest.FromString(id).String()}, {Type: "snapshots/overlayfs", ID: "k1"}},
	}
}

func wantErr(t *testing.T, err, class error, contains ...string) {
	t.Helper()
	if err == nil {
		t.Fatalf("got nil error, want %v", class)
	}
	if !errors.Is(err, class) {
		t.Fatalf("error %q is not %v", err, class)
	}
	for _, s := range contains {
		if !strings.Contains(err.Error(), s) {
			t.Fatalf("error %q does not mention %q", err, s)
		}
	}
}

func TestValidateNames(t *testing.T) {
	long := strings.Repeat("a", MaxIDLen+1)
	tests := []struct {
		name  string
		check func(string) error
		in    string
		ok    bool
	}{
		{"ns default", ValidateNamespace, "default", true},
		{"ns k8s.io", ValidateNamespace, "k8s.io", true},
		{"ns with _-", ValidateNamespace, "a_b-c.d", true},
		{"ns empty", ValidateNamespace, "", false},
		{"ns leading dot", ValidateNamespace, ".hidden", false},
		{"ns slash", ValidateNamespace, "a/b", false},
		{"ns dotdot", ValidateNamespace, "..", false},
		{"ns space", ValidateNamespace, "a b", false},
		{"ns nul", ValidateNamespace, "a\x00", false},
		{"ns max", ValidateNamespace, strings.Repeat("n", MaxNamespaceLen), true},
		{"ns too long", ValidateNamespace, strings.Repeat("n", MaxNamespaceLen+1), false},
		{"id hex", func(s string) error { return ValidateID("container", s) }, strings.Repeat("f", 64), true},
		{"id max", func(s string) error { return ValidateID("container", s) }, long[1:], true},
		{"id too long", func(s string) error { return ValidateID("container", s) }, long, false},
		{"id colon", func(s string) error { return ValidateID("container", s) }, "a:b", false},
		{"id unicode", func(s string) error { return ValidateID("container", s) }, "caf\u00e9", false},
		{"image ref", ValidateImageName, "docker.io/library/busybox:latest", true},
		{"image digest", ValidateImageName, "localhost:5000/a/b@sha256:" + strings.Repeat("0", 64), true},
		{"image space", ValidateImageName, "busy box", false},
		{"image leading slash", ValidateImageName, "/busybox", false},
		{"image too long", ValidateImageName, strings.Repeat("a", MaxImageNameLen+1), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.check(tt.in)
			if tt.ok && err != nil {
				t.Fatalf("%q: unexpected error %v", tt.in, err)
			}
			if !tt.ok {
				wantErr(t, err, errdefs.ErrInvalidArgument)
			}
		})
	}
}

func TestInvalidArgumentsRefused(t *testing.T) {
	db, _ := openTest(t)
	badTarget := testImage("docker.io/library/x:1")
	badTarget.Target.Digest = "sha256:nothex"
	noMedia := testImage("docker.io/library/x:1")
	noMedia.Target.MediaType = ""
	badSpec := testContainer("c1", "n1")
	badSpec.Spec = []byte(`{"oops"`)
	badRestart := testContainer("c1", "n1")
	badRestart.RestartPolicy = RestartPolicy{Name: "sometimes"}
	retriesOnAlways := testContainer("c1", "n1")
	retriesOnAlways.RestartPolicy = RestartPolicy{Name: "always", MaxRetries: 2}
	badName := testContainer("c1", "bad name")
	badLabel := testContainer("c1", "n1")
	badLabel.Labels = map[string]string{"": "x"}
	bigLabel := testContainer("c1", "n1")
	bigLabel.Labels = map[string]string{"k": strings.Repeat("v", MaxLabelLen)}
	badRes := testLease("l1")
	badRes.Resources = append(badRes.Resources, LeaseResource{Type: "content"})

	tests := []struct {
		name string
		op   func() error
	}{
		{"bad namespace", func() error { _, err := db.CreateImage("bad/ns", testImage("a")); return err }},
		{"empty namespace get", func() error { _, err := db.GetContainer("", "c1"); return err }},
		{"empty namespace list", func() error { _, err := db.ListLeases("", nil); return err }},
		{"bad image name", func() error { _, err := db.CreateImage("default", testImage("a b")); return err }},
		{"bad target digest", func() error { _, err := db.CreateImage("default", badTarget); return err }},
		{"no media type", func() error { _, err := db.CreateImage("default", noMedia); return err }},
		{"bad container id", func() error { _, err := db.CreateContainer("default", testContainer("../x", "n")); return err }},
		{"bad container name", func() error { _, err := db.CreateContainer("default", badName); return err }},
		{"bad spec json", func() error { _, err := db.CreateContainer("default", badSpec); return err }},
		{"bad restart policy", func() error { _, err := db.CreateContainer("default", badRestart); return err }},
		{"retries on always", func() error { _, err := db.CreateContainer("default", retriesOnAlways); return err }},
		{"empty label key", func() error { _, err := db.CreateContainer("default", badLabel); return err }},
		{"label too big", func() error { _, err := db.CreateContainer("default", bigLabel); return err }},
		{"bad lease id", func() error { _, err := db.CreateLease("default", testLease("")); return err }},
		{"bad lease resource", func() error { _, err := db.CreateLease("default", badRes); return err }},
		{"bad delete id", func() error { return db.DeleteContainer("default", "a\nb") }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			wantErr(t, tt.op(), errdefs.ErrInvalidArgument)
		})
	}
	// Nothing was written by the refused calls.
	if ns, err := db.Namespaces(); err != nil || len(ns) != 0 {
		t.Fatalf("Namespaces after refused calls = %v, %v; want none", ns, err)
	}
}

func TestImageCRUD(t *testing.T) {
	db, _ := openTest(t)
	const ns = "default"
	img := testImage("docker.io/library/busybox:latest")
	created, err := db.CreateImage(ns, img)
	if err != nil {
		t.Fatal(err)
	}
	if created.CreatedAt.IsZero() || !created.CreatedAt.Equal(created.UpdatedAt) {
		t.Fatalf("timestamps not set: %+v", created)
	}
	wantErr(t, func() error { _, err := db.CreateImage(ns, img); return err }(), errdefs.ErrAlreadyExists, ns, img.Name)

	got, err := db.GetImage(ns, img.Name)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, created) {
		t.Fatalf("Get = %+v, want %+v", got, created)
	}
	_, err = db.GetImage(ns, "docker.io/library/nope:latest")
	wantErr(t, err, errdefs.ErrNotFound, "nope")

	if _, err := db.CreateImage(ns, testImage("docker.io/library/alpine:3")); err != nil {
		t.Fatal(err)
	}
	all, err := db.ListImages(ns, nil)
	if err != nil || len(all) != 2 || all[0].Name != "docker.io/library/alpine:3" {
		t.Fatalf("ListImages = %+v, %v; want 2 sorted by name", all, err)
	}
	some, err := db.ListImages(ns, func(i Image) bool { return strings.Contains(i.Name, "busybox") })
	if err != nil || len(some) != 1 || some[0].Name != img.Name {
		t.Fatalf("filtered ListImages = %+v, %v", some, err)
	}

	tests := []struct {
		name   string
		in     func() Image
		paths  []string
		check  func(Image) error
		errIs  error
		errHas string
	}{
		{
			name:  "label key set",
			in:    func() Image { i := img; i.Labels = map[string]string{"b": "2"}; return i },
			paths: []string{"labels.b"},
			check: func(i Image) error {
				return eq(i.Labels, map[string]string{"a": "1", "b": "2"})
			},
		},
		{
			name:  "label key delete",
			in:    func() Image { i := img; i.Labels = nil; return i },
			paths: []string{"labels.a"},
			check: func(i Image) error { return eq(i.Labels, map[string]string{"b": "2"}) },
		},
		{
			name: "target only leaves labels",
			in: func() Image {
				i := img
				i.Labels = nil
				i.Target.Digest = digest.FromString("new")
				return i
			},
			paths: []string{"target"},
			check: func(i Image) error {
				if i.Target.Digest != digest.FromString("new") {
					return fmt.Errorf("target not updated: %v", i.Target.Digest)
				}
				return eq(i.Labels, map[string]string{"b": "2"})
			},
		},
		{
			name:  "whole record",
			in:    func() Image { i := img; i.Labels = map[string]string{"z": "9"}; return i },
			check: func(i Image) error { return eq(i.Labels, map[string]string{"z": "9"}) },
		},
		{
			name:   "unknown path",
			in:     func() Image { return img },
			paths:  []string{"createdat"},
			errIs:  errdefs.ErrInvalidArgument,
			errHas: "createdat",
		},
		{
			name:  "invalid result refused",
			in:    func() Image { i := img; i.Target.MediaType = ""; return i },
			paths: []string{"target"},
			errIs: errdefs.ErrInvalidArgument,
		},
		{
			name:   "missing image",
			in:     func() Image { return testImage("docker.io/library/ghost:1") },
			errIs:  errdefs.ErrNotFound,
			errHas: "ghost",
		},
	}
	for _, tt := range tests {
		t.Run("update "+tt.name, func(t *testing.T) {
			before, _ := db.GetImage(ns, img.Name)
			out, err := db.UpdateImage(ns, tt.in(), tt.paths...)
			if tt.errIs != nil {
				wantErr(t, err, tt.errIs, tt.errHas)
				after, _ := db.GetImage(ns, img.Name)
				if !reflect.DeepEqual(before, after) {
					t.Fatalf("failed update changed the record: %+v -> %+v", before, after)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if err := tt.check(out); err != nil {
				t.Fatal(err)
			}
			if !out.CreatedAt.Equal(created.CreatedAt) || !out.UpdatedAt.After(before.UpdatedAt) {
				t.Fatalf("timestamps: created %v (want %v), updated %v (want after %v)", out.CreatedAt, created.CreatedAt, out.UpdatedAt, before.UpdatedAt)
			}
			stored, err := db.GetImage(ns, img.Name)
			if err != nil || !reflect.DeepEqual(stored, out) {
				t.Fatalf("stored %+v, %v; Update returned %+v", stored, err, out)
			}
		})
	}

	if err := db.DeleteImage(ns, img.Name); err != nil {
		t.Fatal(err)
	}
	wantErr(t, db.DeleteImage(ns, img.Name), errdefs.ErrNotFound, img.Name)
	_, err = db.GetImage(ns, img.Name)
	wantErr(t, err, errdefs.ErrNotFound)
	wantErr(t, db.DeleteImage("other", img.Name), errdefs.ErrNotFound, "other")
}

func eq(got, want any) error {
	if !reflect.DeepEqual(got, want) {
		return fmt.Errorf("got %#v, want %#v", got, want)
	}
	return nil
}

func TestContainerCRUD(t *testing.T) {
	db, _ := openTest(t)
	const ns = "default"
	c := testContainer("c1", "web")
	created, err := db.CreateContainer(ns, c)
	if err != nil {
		t.Fatal(err)
	}
	if string(created.Spec) != string(c.Spec) {
		t.Fatalf("spec not stored byte for byte: %q", created.Spec)
	}
	got, err := db.GetContainer(ns, "c1")
	if err != nil || !reflect.DeepEqual(got, created) {
		t.Fatalf("Get = %+v, %v; want %+v", got, err, created)
	}
	byName, err := db.GetContainerByName(ns, "web")
	if err != nil || byName.ID != "c1" {
		t.Fatalf("GetContainerByName = %+v, %v", byName, err)
	}

	_, err = db.CreateContainer(ns, testContainer("c1", "other"))
	wantErr(t, err, errdefs.ErrAlreadyExists, `"c1"`)
	_, err = db.CreateContainer(ns, testContainer("c2", "web"))
	wantErr(t, err, errdefs.ErrAlreadyExists, `"web"`, `"c1"`)
	// The refused create left nothing behind.
	_, err = db.GetContainer(ns, "c2")
	wantErr(t, err, errdefs.ErrNotFound)

	// Unnamed containers do not collide.
	for _, id := range []string{"u1", "u2"} {
		if _, err := db.CreateContainer(ns, testContainer(id, "")); err != nil {
			t.Fatalf("unnamed %s: %v", id, err)
		}
	}
	list, err := db.ListContainers(ns, func(c Container) bool { return c.Name == "" })
	if err != nil || len(list) != 2 || list[0].ID != "u1" || list[1].ID != "u2" {
		t.Fatalf("ListContainers(unnamed) = %+v, %v", list, err)
	}

	// Field updates.
	upd := Container{ID: "c1", LogPath: "/new/log", Labels: map[string]string{"tier": "front"}, RestartPolicy: RestartPolicy{Name: "always"}}
	out, err := db.UpdateContainer(ns, upd, "logpath", "labels.tier", "restartpolicy")
	if err != nil {
		t.Fatal(err)
	}
	if out.LogPath != "/new/log" || out.Image != c.Image || out.Runtime != c.Runtime || out.RestartPolicy.Name != "always" {
		t.Fatalf("field update wrong: %+v", out)
	}
	if err := eq(out.Labels, map[string]string{"app": "web", "tier": "front"}); err != nil {
		t.Fatal(err)
	}
	_, err = db.UpdateContainer(ns, upd, "id")
	wantErr(t, err, errdefs.ErrInvalidArgument, `"id"`)
	_, err = db.UpdateContainer(ns, Container{ID: "nope"}, "logpath")
	wantErr(t, err, errdefs.ErrNotFound, "nope")

	// Rename: to a taken name fails, to a free one moves the index.
	if _, err := db.CreateContainer(ns, testContainer("c3", "db")); err != nil {
		t.Fatal(err)
	}
	_, err = db.UpdateContainer(ns, Container{ID: "c1", Name: "db"}, "name")
	wantErr(t, err, errdefs.ErrAlreadyExists, `"db"`)
	if _, err := db.UpdateContainer(ns, Container{ID: "c1", Name: "frontend"}, "name"); err != nil {
		t.Fatal(err)
	}
	_, err = db.GetContainerByName(ns, "web")
	wantErr(t, err, errdefs.ErrNotFound, "web")
	if got, err := db.GetContainerByName(ns, "frontend"); err != nil || got.ID != "c1" {
		t.Fatalf("after rename: %+v, %v", got, err)
	}
	if _, err := db.CreateContainer(ns, testContainer("c4", "web")); err != nil {
		t.Fatalf("old name not freed by rename: %v", err)
	}

	// Whole-record update keeps CreatedAt and ID.
	whole := testContainer("c1", "frontend")
	whole.Runtime = "runc"
	whole.CreatedAt = time.Unix(1, 0)
	out, err = db.UpdateContainer(ns, whole)
	if err != nil {
		t.Fatal(err)
	}
	if out.Runtime != "runc" || !out.CreatedAt.Equal(created.CreatedAt) {
		t.Fatalf("whole update: %+v", out)
	}

	// Delete frees the name.
	if err := db.DeleteContainer(ns, "c3"); err != nil {
		t.Fatal(err)
	}
	wantErr(t, db.DeleteContainer(ns, "c3"), errdefs.ErrNotFound, "c3")
	_, err = db.GetContainerByName(ns, "db")
	wantErr(t, err, errdefs.ErrNotFound)
	if _, err := db.CreateContainer(ns, testContainer("c5", "db")); err != nil {
		t.Fatalf("name not freed by delete: %v", err)
	}
}

func TestLeaseCRUD(t *testing.T) {
	db, _ := openTest(t)
	const ns = "k8s.io"
	l := testLease("pull-1")
	created, err := db.CreateLease(ns, l)
	if err != nil {
		t.Fatal(err)
	}
	if created.CreatedAt.IsZero() || !reflect.DeepEqual(created.Resources, l.Resources) {
		t.Fatalf("created = %+v", created)
	}
	_, err = db.CreateLease(ns, l)
	wantErr(t, err, errdefs.ErrAlreadyExists, "pull-1", ns)

	add := created
	add.Resources = append(add.Resources, LeaseResource{Type: "image", ID: "docker.io/library/busybox:latest"})
	out, err := db.UpdateLease(ns, add, "resources")
	if err != nil || len(out.Resources) != 3 || !out.CreatedAt.Equal(created.CreatedAt) {
		t.Fatalf("UpdateLease = %+v, %v", out, err)
	}
	_, err = db.UpdateLease(ns, add, "createdat")
	wantErr(t, err, errdefs.ErrInvalidArgument)

	if _, err := db.CreateLease(ns, Lease{ID: "empty"}); err != nil {
		t.Fatal(err)
	}
	held, err := db.ListLeases(ns, func(l Lease) bool { return len(l.Resources) > 0 })
	if err != nil || len(held) != 1 || held[0].ID != "pull-1" {
		t.Fatalf("ListLeases = %+v, %v", held, err)
	}
	if err := db.DeleteLease(ns, "pull-1"); err != nil {
		t.Fatal(err)
	}
	_, err = db.GetLease(ns, "pull-1")
	wantErr(t, err, errdefs.ErrNotFound, "pull-1")
	wantErr(t, db.DeleteLease(ns, "pull-1"), errdefs.ErrNotFound)
}

func TestNamespaces(t *testing.T) {
	db, _ := openTest(t)
	// The same ids and names live independently in two namespaces.
	for _, ns := range []string{"default", "k8s.io"} {
		if _, err := db.CreateContainer(ns, testContainer("c1", "web")); err != nil {
			t.Fatalf("%s: %v", ns, err)
		}
		if _, err := db.CreateImage(ns, testImage("docker.io/library/busybox:latest")); err != nil {
			t.Fatalf("%s: %v", ns, err)
		}
	}
	if _, err := db.CreateLease("k8s.io", testLease("l1")); err != nil {
		t.Fatal(err)
	}
	if _, err := db.UpdateContainer("k8s.io", Container{ID: "c1", LogPath: "/k8s"}, "logpath"); err != nil {
		t.Fatal(err)
	}
	if c, _ := db.GetContainer("default", "c1"); c.LogPath == "/k8s" {
		t.Fatal("update in k8s.io changed default's container")
	}
	if l, err := db.ListLeases("default", nil); err != nil || len(l) != 0 {
		t.Fatalf("default leases = %+v, %v; want none", l, err)
	}
	if _, err := db.GetLease("default", "l1"); !errors.Is(err, errdefs.ErrNotFound) {
		t.Fatalf("lease visible across namespaces: %v", err)
	}
	if err := db.CreateNamespace("empty"); err != nil {
		t.Fatal(err)
	}
	wantErr(t, db.CreateNamespace("empty"), errdefs.ErrAlreadyExists, "empty")

	got, err := db.Namespaces()
	if e := eq(got, []string{"default", "empty", "k8s.io"}); e != nil || err != nil {
		t.Fatalf("Namespaces: %v, %v", e, err)
	}

	wantErr(t, db.DeleteNamespace("k8s.io"), errdefs.ErrFailedPrecondition, "k8s.io", "images", "containers", "leases")
	wantErr(t, db.DeleteNamespace("missing"), errdefs.ErrNotFound, "missing")
	if err := db.DeleteNamespace("empty"); err != nil {
		t.Fatal(err)
	}

	// Emptying a namespace allows deleting it; the other one is untouched.
	if err := db.Update(func(tx *Tx) error {
		if err := tx.DeleteContainer("k8s.io", "c1"); err != nil {
			return err
		}
		if err := tx.DeleteImage("k8s.io", "docker.io/library/busybox:latest"); err != nil {
			return err
		}
		return tx.DeleteLease("k8s.io", "l1")
	}); err != nil {
		t.Fatal(err)
	}
	if err := db.DeleteNamespace("k8s.io"); err != nil {
		t.Fatal(err)
	}
	got, err = db.Namespaces()
	if e := eq(got, []string{"default"}); e != nil || err != nil {
		t.Fatalf("Namespaces after delete: %v, %v", e, err)
	}
	if _, err := db.GetContainerByName("default", "web"); err != nil {
		t.Fatal(err)
	}
	// A recreated namespace starts empty: the old name index is gone.
	if _, err := db.CreateContainer("k8s.io", testContainer("c9", "web")); err != nil {
		t.Fatal(err)
	}
}

func TestTransactions(t *testing.T) {
	db, _ := openTest(t)
	const ns = "default"
	boom := errors.New("boom")
	err := db.Update(func(tx *Tx) error {
		if _, err := tx.CreateImage(ns, testImage("docker.io/library/a:1")); err != nil {
			return err
		}
		if _, err := tx.CreateContainer(ns, testContainer("c1", "web")); err != nil {
			return err
		}
		// Visible inside the transaction.
		if _, err := tx.GetContainerByName(ns, "web"); err != nil {
			return err
		}
		return boom
	})
	if !errors.Is(err, boom) {
		t.Fatalf("Update returned %v, want boom", err)
	}
	if _, err := db.GetImage(ns, "docker.io/library/a:1"); !errors.Is(err, errdefs.ErrNotFound) {
		t.Fatalf("rolled-back image visible: %v", err)
	}
	if _, err := db.GetContainerByName(ns, "web"); !errors.Is(err, errdefs.ErrNotFound) {
		t.Fatalf("rolled-back name index visible: %v", err)
	}
	if ns, _ := db.Namespaces(); len(ns) != 0 {
		t.Fatalf("rolled-back namespace visible: %v", ns)
	}

	err = db.Update(func(tx *Tx) error {
		if _, err := tx.CreateImage(ns, testImage("docker.io/library/a:1")); err != nil {
			return err
		}
		_, err := tx.CreateLease(ns, testLease("l1"))
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	err = db.View(func(tx *Tx) error {
		if _, err := tx.GetImage(ns, "docker.io/library/a:1"); err != nil {
			return err
		}
		_, err := tx.GetLease(ns, "l1")
		return err
	})
	if err != nil {
		t.Fatalf("committed records: %v", err)
	}

	writes := map[string]func(*Tx) error{
		"create image":     func(tx *Tx) error { _, err := tx.CreateImage(ns, testImage("docker.io/library/b:1")); return err },
		"update image":     func(tx *Tx) error { _, err := tx.UpdateImage(ns, testImage("docker.io/library/a:1")); return err },
		"delete image":     func(tx *Tx) error { return tx.DeleteImage(ns, "docker.io/library/a:1") },
		"create container": func(tx *Tx) error { _, err := tx.CreateContainer(ns, testContainer("c2", "")); return err },
		"delete lease":     func(tx *Tx) error { return tx.DeleteLease(ns, "l1") },
		"create namespace": func(tx *Tx) error { return tx.CreateNamespace("x") },
		"delete namespace": func(tx *Tx) error { return tx.DeleteNamespace(ns) },
	}
	for name, w := range writes {
		t.Run("view refuses "+name, func(t *testing.T) {
			wantErr(t, db.View(w), errdefs.ErrFailedPrecondition, "read-only")
		})
	}
}

func TestConcurrentCreates(t *testing.T) {
	db, _ := openTest(t)
	const n = 32
	run := func(mk func(i int) Container) (ok int, errs []error) {
		var mu sync.Mutex
		var wg sync.WaitGroup
		start := make(chan struct{})
		for i := range n {
			wg.Add(1)
			go func() {
				defer wg.Done()
				<-start
				_, err := db.CreateContainer("default", mk(i))
				mu.Lock()
				defer mu.Unlock()
				if err == nil {
					ok++
				} else {
					errs = append(errs, err)
				}
			}()
		}
		close(start)
		wg.Wait()
		return ok, errs
	}
	tests := []struct {
		name   string
		mk     func(i int) Container
		wantOK int
	}{
		{"distinct ids and names", func(i int) Container { return testContainer(fmt.Sprintf("d%d", i), fmt.Sprintf("dn%d", i)) }, n},
		{"distinct ids same name", func(i int) Container { return testContainer(fmt.Sprintf("s%d", i), "same") }, 1},
		{"same id distinct names", func(i int) Container { return testContainer("one", fmt.Sprintf("on%d", i)) }, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ok, errs := run(tt.mk)
			if ok != tt.wantOK {
				t.Fatalf("%d creates succeeded, want %d (errors: %v)", ok, tt.wantOK, errs)
			}
			for _, err := range errs {
				wantErr(t, err, errdefs.ErrAlreadyExists)
			}
		})
	}
	// The index and the records agree: one container holds "same", and every
	// "on%d" name but the winner's is free.
	winner, err := db.GetContainerByName("default", "same")
	if err != nil {
		t.Fatal(err)
	}
	if got, err := db.GetContainer("default", winner.ID); err != nil || got.Name != "same" {
		t.Fatalf("winner record %+v, %v", got, err)
	}
	one, err := db.GetContainer("default", "one")
	if err != nil {
		t.Fatal(err)
	}
	all, err := db.ListContainers("default", nil)
	if err != nil || len(all) != n+2 {
		t.Fatalf("%d containers, %v; want %d", len(all), err, n+2)
	}
	for i := range n {
		name := fmt.Sprintf("on%d", i)
		_, err := db.GetContainerByName("default", name)
		if name == one.Name && err != nil {
			t.Fatalf("winner's name %s not indexed: %v", name, err)
		}
		if name != one.Name && !errors.Is(err, errdefs.ErrNotFound) {
			t.Fatalf("loser's name %s indexed: %v", name, err)
		}
	}
}

func TestReopenPersists(t *testing.T) {
	path := filepath.Join(t.TempDir(), "meta.db")
	db, err := Open(path, Options{Now: testClock()})
	if err != nil {
		t.Fatal(err)
	}
	img, err1 := db.CreateImage("default", testImage("docker.io/library/busybox:latest"))
	ctr, err2 := db.CreateContainer("default", testContainer("c1", "web"))
	lease, err3 := db.CreateLease("k8s.io", testLease("l1"))
	if err := errors.Join(err1, err2, err3); err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(path); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("db file: %v, %v; want mode 0600", fi, err)
	}

	db, err = Open(path, Options{})
	if err != nil {
		t.Fatalf("reopen: %v", err)
	}
	defer db.Close()
	gotImg, err1 := db.GetImage("default", img.Name)
	gotCtr, err2 := db.GetContainerByName("default", "web")
	gotLease, err3 := db.GetLease("k8s.io", "l1")
	if err := errors.Join(err1, err2, err3); err != nil {
		t.Fatal(err)
	}
	for _, e := range []error{eq(gotImg, img), eq(gotCtr, ctr), eq(gotLease, lease)} {
		if e != nil {
			t.Error(e)
		}
	}
	if ns, err := db.Namespaces(); eq(ns, []string{"default", "k8s.io"}) != nil || err != nil {
		t.Fatalf("Namespaces after reopen = %v, %v", ns, err)
	}
}

func TestOpenLockedByAnother(t *testing.T) {
	db, path := openTest(t)
	const timeout = 300 * time.Millisecond
	start := time.Now()
	second, err := Open(path, Options{LockTimeout: timeout})
	elapsed := time.Since(start)
	if err == nil {
		second.Close()
		t.Fatal("second Open of a held db succeeded")
	}
	wantErr(t, err, errdefs.ErrFailedPrecondition, "another skiffd uses "+path)
	// bbolt polls the lock every 50ms and gives up one poll early.
	if elapsed < timeout/2 || elapsed > timeout+5*time.Second {
		t.Fatalf("second Open failed after %v, want about %v", elapsed, timeout)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	third, err := Open(path, Options{LockTimeout: timeout})
	if err != nil {
		t.Fatalf("Open after the holder closed: %v", err)
	}
	third.Close()
}

func TestOpenSchemaVersion(t *testing.T) {
	path := filepath.Join(t.TempDir(), "meta.db")
	db, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	db.Close()

	readVersion := func() uint32 {
		t.Helper()
		bdb, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: time.Second, ReadOnly: true})
		if err != nil {
			t.Fatal(err)
		}
		defer bdb.Close()
		var v uint32
		bdb.View(func(tx *bolt.Tx) error {
			if b := tx.Bucket([]byte(bucketMeta)); b != nil {
				if raw := b.Get([]byte(keySchema)); len(raw) == 4 {
					v = binary.BigEndian.Uint32(raw)
				}
			}
			return nil
		})
		return v
	}
	if v := readVersion(); v != SchemaVersion {
		t.Fatalf("stored schema version %d, want %d", v, SchemaVersion)
	}

	writeVersion := func(raw []byte) {
		t.Helper()
		bdb, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: time.Second})
		if err != nil {
			t.Fatal(err)
		}
		defer bdb.Close()
		if err := bdb.Update(func(tx *bolt.Tx) error {
			return tx.Bucket([]byte(bucketMeta)).Put([]byte(keySchema), raw)
		}); err != nil {
			t.Fatal(err)
		}
	}
	tests := []struct {
		name string
		raw  []byte
		has  string
	}{
		{"newer version", binary.BigEndian.AppendUint32(nil, SchemaVersion+1), fmt.Sprintf("schema version %d, newer than the %d", SchemaVersion+1, SchemaVersion)},
		{"corrupt version", []byte{1}, "corrupt schema version"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			writeVersion(tt.raw)
			db, err := Open(path, Options{LockTimeout: time.Second})
			if err == nil {
				db.Close()
				t.Fatal("Open succeeded")
			}
			wantErr(t, err, errdefs.ErrFailedPrecondition, path, tt.has)
			if got := readVersion(); got == SchemaVersion {
				t.Fatal("refused Open rewrote the schema version")
			}
		})
	}
}

func TestOpenBadPaths(t *testing.T) {
	dir := t.TempDir()
	missing := filepath.Join(dir, "no", "such", "dir", "meta.db")
	if db, err := Open(missing, Options{}); err == nil {
		db.Close()
		t.Fatal("Open under a missing directory succeeded")
	}
	if _, err := os.Stat(filepath.Join(dir, "no")); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("Open created directories: %v", err)
	}
	notDB := filepath.Join(dir, "junk")
	if err := os.WriteFile(notDB, []byte(strings.Repeat("not a bolt file ", 512)), 0o600); err != nil {
		t.Fatal(err)
	}
	if db, err := Open(notDB, Options{}); err == nil {
		db.Close()
		t.Fatal("Open of a non-bbolt file succeeded")
	} else if !strings.Contains(err.Error(), notDB) {
		t.Fatalf("error %q does not name the file", err)
	}
	_, err := Open("", Options{})
	wantErr(t, err, errdefs.ErrInvalidArgument)
	_, err = Open(filepath.Join(dir, "x.db"), Options{LockTimeout: -time.Second})
	wantErr(t, err, errdefs.ErrInvalidArgument)
}
