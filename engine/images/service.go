package images

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/skiff-containers/skiff/engine/metadata"
	"github.com/skiff-containers/skiff/errdefs"
	"github.com/skiff-containers/skiff/image/content"
	"github.com/skiff-containers/skiff/image/remote"
	"github.com/skiff-containers/skiff/image/snapshot"
)

// Config is what New needs.
type Config struct {
	DB          *metadata.DB
	Content     *content.Store
	Snapshotter *snapshot.Snapshotter
	// Remote configures the resolver: insecure registries, the daemon's
	// credentials, timeouts and retries.
	Remote remote.Options
	// Logger receives the service's logs; nil discards them.
	Logger *slog.Logger
	// Events receives the service's events (events.go); nil publishes
	// nothing.
	Events EventPublisher
}

// Image describes a recorded image: the name, what it points at and what
// its configuration says (for the selected platform's manifest).
type Image struct {
	// Name is the normalised reference ("docker.io/library/busybox:latest").
	// An image loaded from an archive that did not name it is recorded under
	// its id ("sha256:…").
	Name string
	// Target is the manifest or index the name points at (the repo digest).
	Target ocispec.Descriptor
	// Manifest is the selected platform's manifest.
	Manifest ocispec.Descriptor
	// ID is the config digest (docker's IMAGE ID).
	ID digest.Digest
	// Size is the size of the manifest, config and layer blobs.
	Size int64
	// UnpackedSize is the disk usage of the unpacked layers (0 if they are
	// not unpacked).
	UnpackedSize int64
	// Created is the configuration's "created" (zero if absent).
	Created time.Time
	// Recorded is when this name was last pointed at its target.
	Recorded time.Time

	OS, Architecture, Variant string
	// Labels are the image configuration's labels.
	Labels map[string]string
	// Layers are the layer blob digests, DiffIDs the uncompressed ones,
	// base first.
	Layers  []digest.Digest
	DiffIDs []digest.Digest
	// ChainID is the name of the committed snapshot of the top layer (""
	// for an image without layers).
	ChainID string
	// ConfigJSON and ManifestJSON are the raw documents.
	ConfigJSON   []byte
	ManifestJSON []byte
}

// Progress reports on one step of a pull or of unpacking.
type Progress struct {
	// ID is the blob's digest, or "" for the whole image.
	ID string
	// Kind: "index", "manifest", "config" or "layer" ("" for the image).
	Kind string
	// Status: "resolving", "waiting", "downloading", "done", "exists",
	// "extracting", "extracted", "failed".
	Status  string
	Current int64
	Total   int64
}

// Auth is the registry credentials given with one pull; they replace the
// daemon's for the image's registry.
type Auth struct {
	Username string
	Password string
	// IdentityToken is an OAuth2 refresh token; not supported yet.
	IdentityToken string
}

// Resolved is a local image ready to be a container's root filesystem.
type Resolved struct {
	Name string
	// ID is the config digest.
	ID     digest.Digest
	Target ocispec.Descriptor
	Config ocispec.Image
	// ChainID is the committed snapshot of the top layer: the parent of a
	// container's snapshot. "" for an image without layers.
	ChainID string
}

// RemoveResult is what Remove did.
type RemoveResult struct {
	// Untagged are the names removed.
	Untagged []string
	// Deleted are the digests of the image's blobs that were freed.
	Deleted []digest.Digest
}

// Labels and names the service uses.
const (
	// labelManifest on an image record names the manifest chosen from an
	// index target (the platform that was pulled).
	labelManifest = "skiff.images/manifest"
	// labelLeaseOwner marks the leases of this service.
	labelLeaseOwner = "skiff.images/owner"
	// extractPrefix starts the keys of temporary snapshots being filled.
	extractPrefix = "images/extract/"
	// resourceContent is the lease resource type of blobs.
	resourceContent = "content"
	// resourceSnapshotsPrefix starts lease resource types of snapshots.
	resourceSnapshotsPrefix = "snapshots"
)

// Service is the image service. It is safe for concurrent use.
type Service struct {
	db       *metadata.DB
	store    *content.Store
	snap     *snapshot.Snapshotter
	ropts    remote.Options
	resolver *remote.Resolver
	log      *slog.Logger
	events   EventPublisher

	// gate: pull, load and unpack hold it shared; GC exclusively.
	gate sync.RWMutex

	chainMu    sync.Mutex
	chainLocks map[string]*chainLock
}

type chainLock struct {
	mu   sync.Mutex
	refs int
}

// New returns the image service over cfg's stores. It removes the leases
// and temporary snapshots of pulls that a previous process left unfinished
// (their content is then reclaimed by the next GC).
func New(cfg Config) (*Service, error) {
	if cfg.DB == nil || cfg.Content == nil || cfg.Snapshotter == nil {
		return nil, fmt.Errorf("image service: %w: a metadata db, content store and snapshotter are all required", errdefs.ErrInvalidArgument)
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	s := &Service{
		db:         cfg.DB,
		store:      cfg.Content,
		snap:       cfg.Snapshotter,
		ropts:      cfg.Remote,
		resolver:   remote.NewResolver(cfg.Remote),
		log:        log,
		events:     cfg.Events,
		chainLocks: map[string]*chainLock{},
	}
	if err := s.cleanupStale(context.Background()); err != nil {
		return nil, fmt.Errorf("image service: remove what an interrupted pull left: %w", err)
	}
	return s, nil
}

// cleanupStale removes this service's leases and temporary snapshots: at
// New, no pull of this process is running, so they are from a dead one.
func (s *Service) cleanupStale(ctx context.Context) error {
	var stale []struct{ ns, id string }
	err := s.db.View(func(tx *metadata.Tx) error {
		nss, err := tx.Namespaces()
		if err != nil {
			return err
		}
		for _, ns := range nss {
			ls, err := tx.ListLeases(ns, func(l metadata.Lease) bool { return l.Labels[labelLeaseOwner] != "" })
			if err != nil {
				return err
			}
			for _, l := range ls {
				stale = append(stale, struct{ ns, id string }{ns, l.ID})
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	for _, l := range stale {
		s.log.Info("removing lease of an interrupted pull", "namespace", l.ns, "lease", l.id)
		if err := s.db.DeleteLease(l.ns, l.id); err != nil && !errdefs.IsNotFound(err) {
			return err
		}
	}
	return s.removeExtractSnapshots(ctx)
}

// removeExtractSnapshots removes temporary extraction snapshots. The caller
// makes sure no extraction is running.
func (s *Service) removeExtractSnapshots(ctx context.Context) error {
	var keys []string
	err := s.snap.Walk(ctx, func(_ context.Context, i snapshot.Info) error {
		if i.Kind != snapshot.KindCommitted && strings.HasPrefix(i.Name, extractPrefix) {
			keys = append(keys, i.Name)
		}
		return nil
	})
	if err != nil {
		return err
	}
	for _, k := range keys {
		s.log.Info("removing snapshot of an interrupted unpack", "snapshot", k)
		dir := ""
		if mounts, err := s.snap.Mounts(ctx, k); err == nil {
			dir, _, _ = snapshot.WritableDir(mounts)
		}
		if err := s.removeExtract(ctx, k, dir); err != nil {
			return err
		}
	}
	return nil
}

// lockChain serialises the unpacking of one chain ID within the process.
func (s *Service) lockChain(id string) func() {
	s.chainMu.Lock()
	l := s.chainLocks[id]
	if l == nil {
		l = &chainLock{}
		s.chainLocks[id] = l
	}
	l.refs++
	s.chainMu.Unlock()
	l.mu.Lock()
	return func() {
		l.mu.Unlock()
		s.chainMu.Lock()
		l.refs--
		if l.refs == 0 {
			delete(s.chainLocks, id)
		}
		s.chainMu.Unlock()
	}
}

func randomHex(n int) string {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		panic(err) // crypto/rand does not fail on Linux
	}
	return hex.EncodeToString(b)
}

// lease is a metadata lease held while a pull or load runs.
type lease struct {
	s   *Service
	ns  string
	id  string
	mu  sync.Mutex
	res map[metadata.LeaseResource]bool
}

func (s *Service) newLease(ns, op string) (*lease, error) {
	l := &lease{s: s, ns: ns, id: "images-" + op + "-" + randomHex(8), res: map[metadata.LeaseResource]bool{}}
	if _, err := s.db.CreateLease(ns, metadata.Lease{ID: l.id, Labels: map[string]string{labelLeaseOwner: op}}); err != nil {
		return nil, fmt.Errorf("%s: create lease: %w", op, err)
	}
	return l, nil
}

// add records resources in the lease.
func (l *lease) add(rs ...metadata.LeaseResource) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	changed := false
	for _, r := range rs {
		if !l.res[r] {
			l.res[r] = true
			changed = true
		}
	}
	if !changed {
		return nil
	}
	all := make([]metadata.LeaseResource, 0, len(l.res))
	for r := range l.res {
		all = append(all, r)
	}
	_, err := l.s.db.UpdateLease(l.ns, metadata.Lease{ID: l.id, Resources: all}, "resources")
	return err
}

func (l *lease) addBlobs(ds ...digest.Digest) error {
	rs := make([]metadata.LeaseResource, len(ds))
	for i, d := range ds {
		rs[i] = metadata.LeaseResource{Type: resourceContent, ID: d.String()}
	}
	return l.add(rs...)
}

func (l *lease) addSnapshot(name string) error {
	return l.add(metadata.LeaseResource{Type: resourceSnapshotsPrefix + "/" + l.s.snap.Driver(), ID: name})
}

// release deletes the lease.
func (l *lease) release() error {
	err := l.s.db.DeleteLease(l.ns, l.id)
	if errdefs.IsNotFound(err) {
		return nil
	}
	return err
}

// abandon is the failure path of a pull or load: it drops the lease and
// collects what nothing references. The caller must not hold the gate.
func (s *Service) abandon(ctx context.Context, l *lease, what string) {
	ctx = context.WithoutCancel(ctx)
	relErr := l.release()
	skip := ""
	if relErr != nil {
		// A full disk may refuse even this write: collect without the
		// lease, which frees space, then try again.
		skip = l.ns + "/" + l.id
	}
	if _, err := s.gc(ctx, skip); err != nil {
		s.log.Warn("garbage collection after a failed "+what+" failed", "error", err)
	}
	if relErr != nil {
		if err := l.release(); err != nil {
			s.log.Warn("cannot remove the lease of a failed "+what, "namespace", l.ns, "lease", l.id, "error", err)
		}
	}
}

// progressFunc serialises calls to the caller's progress function.
func progressFunc(f func(Progress)) func(Progress) {
	if f == nil {
		return func(Progress) {}
	}
	var mu sync.Mutex
	return func(p Progress) {
		mu.Lock()
		defer mu.Unlock()
		f(p)
	}
}

func isAlreadyExists(err error) bool { return errors.Is(err, errdefs.ErrAlreadyExists) }

// CheckLogin verifies credentials against a registry as `docker login`
// does. server is host[:port] or a URL (https://index.docker.io/v1/);
// empty means Docker Hub. A refusal is of class ErrFailedPrecondition.
func (s *Service) CheckLogin(ctx context.Context, server string, auth Auth) error {
	domain := registryDomain(server)
	if auth.Username == "" || auth.Password == "" {
		return fmt.Errorf("login to %s: a username and a password are required: %w", domain, errdefs.ErrInvalidArgument)
	}
	return s.resolver.CheckLogin(ctx, domain, auth.Username, auth.Password)
}

// registryDomain turns what `docker login` accepts into a registry host.
func registryDomain(server string) string {
	d := strings.TrimSpace(server)
	d = strings.TrimPrefix(strings.TrimPrefix(d, "https://"), "http://")
	if i := strings.IndexByte(d, '/'); i >= 0 {
		d = d[:i]
	}
	switch d {
	case "", "index.docker.io", "registry-1.docker.io", "docker.io":
		return "docker.io"
	}
	return d
}
