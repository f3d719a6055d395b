// Package snapshot owns the snapshots of image layers and the writable
// layers of containers, in the spirit of containerd's snapshotters: a
// snapshot is prepared (active, writable) on top of a committed parent,
// filled, and committed under a name (the layer's chain ID, chosen by the
// caller); a container's root filesystem is an active snapshot prepared on
// top of its image's top layer, or a read-only view of it.
//
// Two drivers: "overlayfs" stacks the committed layers as overlayfs lower
// directories (any number of them: long lowerdir lists are mounted through
// the new mount API or relative paths), and "native" copies the parent's
// tree into each new snapshot, for hosts where overlayfs is unavailable.
//
// The package neither fetches nor unpacks: callers apply layers with
// image/archive into the directory WritableDir names.
package snapshot

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/sys/unix"

	"github.com/skiff-containers/skiff/errdefs"
)

// Drivers.
const (
	Overlay = "overlayfs"
	Native  = "native"
)

// Kind is the state of a snapshot.
type Kind int

// Kinds of snapshots.
const (
	KindActive    Kind = iota + 1 // writable, from Prepare
	KindView                      // read-only, from View
	KindCommitted                 // immutable, from Commit; may be a parent
)

// String returns "active", "view" or "committed".
func (k Kind) String() string {
	switch k {
	case KindActive:
		return "active"
	case KindView:
		return "view"
	case KindCommitted:
		return "committed"
	}
	return "kind(" + strconv.Itoa(int(k)) + ")"
}

// MarshalText implements encoding.TextMarshaler.
func (k Kind) MarshalText() ([]byte, error) { return []byte(k.String()), nil }

// UnmarshalText implements encoding.TextUnmarshaler.
func (k *Kind) UnmarshalText(b []byte) error {
	for _, c := range []Kind{KindActive, KindView, KindCommitted} {
		if c.String() == string(b) {
			*k = c
			return nil
		}
	}
	return fmt.Errorf("unknown snapshot kind %q", b)
}

// Info describes a snapshot.
type Info struct {
	Name    string            // key of an active or view snapshot, name of a committed one
	Parent  string            // name of the committed parent, "" for none
	Kind    Kind              //
	Created time.Time         //
	Updated time.Time         //
	Labels  map[string]string // the caller's
}

// Usage is the disk space a snapshot's own layer takes (not its parents').
type Usage struct {
	Size   int64 // bytes allocated
	Inodes int64
}

// Opt sets an option of Prepare, View or Commit.
type Opt func(*Info)

// WithLabels sets the snapshot's labels.
func WithLabels(labels map[string]string) Opt {
	return func(i *Info) {
		i.Labels = map[string]string{}
		for k, v := range labels {
			i.Labels[k] = v
		}
	}
}

// Options configures New.
type Options struct {
	// Driver is Overlay, Native, or "" to use overlayfs if a trial mount
	// under the root works and native otherwise.
	Driver string
}

// Snapshotter keeps snapshots under a root directory:
// root/metadata.json, root/snapshots/<id>/fs (and /work for overlayfs).
// Its methods are safe for concurrent use; one process at a time may use a
// root.
type Snapshotter struct {
	root   string
	driver string
	lock   *os.File // flock of root/lock

	mu   sync.Mutex
	meta metadata
}

type record struct {
	ID      string            `json:"id"`
	Kind    Kind              `json:"kind"`
	Parent  string            `json:"parent,omitempty"`
	Created time.Time         `json:"created"`
	Updated time.Time         `json:"updated"`
	Labels  map[string]string `json:"labels,omitempty"`
	Usage   *Usage            `json:"usage,omitempty"` // of committed snapshots
}

type metadata struct {
	Version   int                `json:"version"`
	Driver    string             `json:"driver"`
	NextID    uint64             `json:"next_id"`
	Snapshots map[string]*record `json:"snapshots"`
}

const metadataVersion = 1

// New opens (creating if needed) the snapshotter at root. It removes what
// an interrupted operation left behind.
func New(root string, opts Options) (*Snapshotter, error) {
	root, err := filepath.Abs(root)
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(filepath.Join(root, "snapshots"), 0o700); err != nil {
		return nil, fmt.Errorf("snapshotter %s: %w", root, err)
	}
	lf, err := os.OpenFile(filepath.Join(root, "lock"), os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("snapshotter %s: %w", root, err)
	}
	if err := unix.Flock(int(lf.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		lf.Close()
		return nil, fmt.Errorf("snapshotter %s: %w: another process uses this root (%v); stop it or choose another root", root, errdefs.ErrFailedPrecondition, err)
	}
	s := &Snapshotter{root: root, lock: lf}
	ok := false
	defer func() {
		if !ok {
			lf.Close()
		}
	}()
	if err := s.load(); err != nil {
		return nil, err
	}
	driver := opts.Driver
	switch {
	case s.meta.Driver != "" && driver != "" && driver != s.meta.Driver:
		return nil, fmt.Errorf("snapshotter %s: %w: its snapshots were made by the %s driver, not %s; use another root", root, errdefs.ErrFailedPrecondition, s.meta.Driver, driver)
	case s.meta.Driver != "":
		driver = s.meta.Driver
	case driver == "":
		driver = Native
		if err := checkOverlay(root); err == nil {
			driver = Overlay
		}
	}
	switch driver {
	case Overlay:
		if strings.ContainsAny(root, ",:") {
			return nil, fmt.Errorf("snapshotter %s: %w: overlayfs cannot take directories whose path holds ',' or ':'", root, errdefs.ErrInvalidArgument)
		}
	case Native:
	default:
		return nil, fmt.Errorf("snapshotter %s: %w: unknown driver %q (want %q or %q)", root, errdefs.ErrInvalidArgument, driver, Overlay, Native)
	}
	s.driver = driver
	if s.meta.Driver == "" {
		s.meta.Driver = driver
		if err := s.save(); err != nil {
			return nil, err
		}
	}
	if err := s.cleanup(); err != nil {
		return nil, err
	}
	ok = true
	return s, nil
}

// checkOverlay tries an overlayfs mount with two lower directories under
// root.
func checkOverlay(root string) error {
	dir, err := os.MkdirTemp(root, "check-overlay-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	for _, d := range []string{"l1", "l2", "u", "w", "m"} {
		if err := os.Mkdir(filepath.Join(dir, d), 0o700); err != nil {
			return err
		}
	}
	m := Mount{Type: "overlay", Source: "overlay", Options: []string{
		"index=off",
		"lowerdir=" + filepath.Join(dir, "l1") + ":" + filepath.Join(dir, "l2"),
		"upperdir=" + filepath.Join(dir, "u"), "workdir=" + filepath.Join(dir, "w"),
	}}
	if err := m.Mount(filepath.Join(dir, "m")); err != nil {
		return err
	}
	return Unmount(filepath.Join(dir, "m"))
}

// Driver returns Overlay or Native.
func (s *Snapshotter) Driver() string { return s.driver }

// Close releases the root. The snapshots stay.
func (s *Snapshotter) Close() error { return s.lock.Close() }

func (s *Snapshotter) metaPath() string { return filepath.Join(s.root, "metadata.json") }

func (s *Snapshotter) dir(id string) string { return filepath.Join(s.root, "snapshots", id) }

func (s *Snapshotter) load() error {
	data, err := os.ReadFile(s.metaPath())
	if errors.Is(err, os.ErrNotExist) {
		s.meta = metadata{Version: metadataVersion, NextID: 1, Snapshots: map[string]*record{}}
		return nil
	}
	if err != nil {
		return fmt.Errorf("snapshotter %s: read metadata: %w", s.root, err)
	}
	if err := json.Unmarshal(data, &s.meta); err != nil {
		return fmt.Errorf("snapshotter %s: metadata %s is corrupt: %v; move it away to start afresh", s.root, s.metaPath(), err)
	}
	if s.meta.Version != metadataVersion {
		return fmt.Errorf("snapshotter %s: %w: metadata version %d, this build reads %d", s.root, errdefs.ErrFailedPrecondition, s.meta.Version, metadataVersion)
	}
	if s.meta.Snapshots == nil {
		s.meta.Snapshots = map[string]*record{}
	}
	return nil
}

// save writes the metadata atomically: temporary file, fsync, rename,
// fsync of the directory.
func (s *Snapshotter) save() error {
	data, err := json.MarshalIndent(&s.meta, "", "\t")
	if err != nil {
		return err
	}
	tmp := s.metaPath() + ".tmp"
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return fmt.Errorf("snapshotter %s: write metadata: %w", s.root, err)
	}
	_, err = f.Write(data)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, s.metaPath())
	}
	if err != nil {
		os.Remove(tmp)
		return fmt.Errorf("snapshotter %s: write metadata: %w", s.root, err)
	}
	if d, err := os.Open(s.root); err == nil {
		d.Sync()
		d.Close()
	}
	return nil
}

// update applies change to the metadata and saves it; if either fails the
// metadata is as before.
func (s *Snapshotter) update(change func() error) error {
	before, err := json.Marshal(&s.meta)
	if err != nil {
		return err
	}
	restore := func() {
		var m metadata
		if json.Unmarshal(before, &m) == nil {
			s.meta = m
		}
	}
	if err := change(); err != nil {
		restore()
		return err
	}
	if err := s.save(); err != nil {
		restore()
		return err
	}
	return nil
}

// cleanup removes snapshot directories no metadata names: those of an
// interrupted Prepare or Remove.
func (s *Snapshotter) cleanup() error {
	ents, err := os.ReadDir(filepath.Join(s.root, "snapshots"))
	if err != nil {
		return err
	}
	ids := map[string]bool{}
	for _, r := range s.meta.Snapshots {
		ids[r.ID] = true
	}
	for _, e := range ents {
		if !ids[e.Name()] {
			if err := os.RemoveAll(filepath.Join(s.root, "snapshots", e.Name())); err != nil {
				return fmt.Errorf("snapshotter %s: remove leftover %s: %w", s.root, e.Name(), err)
			}
		}
	}
	ents, err = os.ReadDir(s.root)
	if err != nil {
		return err
	}
	for _, e := range ents {
		if strings.HasPrefix(e.Name(), "check-overlay-") {
			p := filepath.Join(s.root, e.Name())
			Unmount(filepath.Join(p, "m"))
			os.RemoveAll(p)
		}
	}
	return nil
}

func (s *Snapshotter) get(key string) (*record, error) {
	r, ok := s.meta.Snapshots[key]
	if !ok {
		return nil, fmt.Errorf("snapshot %q: %w", key, errdefs.ErrNotFound)
	}
	return r, nil
}

// Prepare creates an active (writable) snapshot key on top of the
// committed snapshot parent ("" for none) and returns its mounts.
func (s *Snapshotter) Prepare(ctx context.Context, key, parent string, opts ...Opt) ([]Mount, error) {
	return s.create(ctx, KindActive, key, parent, opts)
}

// View creates a read-only snapshot key of the committed snapshot parent
// and returns its mounts.
func (s *Snapshotter) View(ctx context.Context, key, parent string, opts ...Opt) ([]Mount, error) {
	return s.create(ctx, KindView, key, parent, opts)
}

func (s *Snapshotter) create(ctx context.Context, kind Kind, key, parent string, opts []Opt) (_ []Mount, retErr error) {
	op := "prepare"
	if kind == KindView {
		op = "view"
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if key == "" {
		return nil, fmt.Errorf("%s snapshot: %w: empty key", op, errdefs.ErrInvalidArgument)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.meta.Snapshots[key]; ok {
		return nil, fmt.Errorf("%s snapshot %q: %w; remove it first or use another key", op, key, errdefs.ErrAlreadyExists)
	}
	var p *record
	if parent != "" {
		var err error
		if p, err = s.get(parent); err != nil {
			return nil, fmt.Errorf("%s snapshot %q: parent: %w", op, key, err)
		}
		if p.Kind != KindCommitted {
			return nil, fmt.Errorf("%s snapshot %q: %w: parent %q is %s, not committed; commit it first", op, key, errdefs.ErrFailedPrecondition, parent, p.Kind)
		}
	}
	id := strconv.FormatUint(s.meta.NextID, 10)
	dir := s.dir(id)
	if err := os.Mkdir(dir, 0o700); err != nil {
		return nil, fmt.Errorf("%s snapshot %q: %w", op, key, err)
	}
	defer func() {
		if retErr != nil {
			os.RemoveAll(dir)
		}
	}()
	if err := os.Mkdir(filepath.Join(dir, "fs"), 0o755); err != nil {
		return nil, fmt.Errorf("%s snapshot %q: %w", op, key, err)
	}
	if s.driver == Overlay {
		if err := os.Mkdir(filepath.Join(dir, "work"), 0o700); err != nil {
			return nil, fmt.Errorf("%s snapshot %q: %w", op, key, err)
		}
	} else if p != nil {
		if err := copyTree(filepath.Join(s.dir(p.ID), "fs"), filepath.Join(dir, "fs")); err != nil {
			return nil, fmt.Errorf("%s snapshot %q: copy parent %q: %w", op, key, parent, err)
		}
	}
	t := now()
	info := Info{Created: t, Updated: t}
	for _, o := range opts {
		o(&info)
	}
	r := &record{ID: id, Kind: kind, Parent: parent, Created: t, Updated: t, Labels: info.Labels}
	if err := s.update(func() error {
		s.meta.NextID++
		s.meta.Snapshots[key] = r
		return nil
	}); err != nil {
		return nil, fmt.Errorf("%s snapshot %q: %w", op, key, err)
	}
	return s.mounts(r), nil
}

// Commit turns the active snapshot key into the committed snapshot name,
// which can then be a parent. key no longer exists afterwards.
func (s *Snapshotter) Commit(ctx context.Context, name, key string, opts ...Opt) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if name == "" {
		return fmt.Errorf("commit snapshot %q: %w: empty name", key, errdefs.ErrInvalidArgument)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	r, err := s.get(key)
	if err != nil {
		return fmt.Errorf("commit snapshot: %w", err)
	}
	if r.Kind != KindActive {
		return fmt.Errorf("commit snapshot %q: %w: it is %s, only active snapshots can be committed", key, errdefs.ErrFailedPrecondition, r.Kind)
	}
	if _, ok := s.meta.Snapshots[name]; ok {
		return fmt.Errorf("commit snapshot %q as %q: %w; remove it first", key, name, errdefs.ErrAlreadyExists)
	}
	u, err := diskUsage(filepath.Join(s.dir(r.ID), "fs"))
	if err != nil {
		return fmt.Errorf("commit snapshot %q: measure usage: %w", key, err)
	}
	info := Info{Labels: r.Labels}
	for _, o := range opts {
		o(&info)
	}
	if err := s.update(func() error {
		delete(s.meta.Snapshots, key)
		c := *r
		c.Kind, c.Updated, c.Usage, c.Labels = KindCommitted, now(), &u, info.Labels
		s.meta.Snapshots[name] = &c
		return nil
	}); err != nil {
		return fmt.Errorf("commit snapshot %q: %w", key, err)
	}
	return nil
}

// Mounts returns the mounts of the active or view snapshot key.
func (s *Snapshotter) Mounts(ctx context.Context, key string) ([]Mount, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	r, err := s.get(key)
	if err != nil {
		return nil, fmt.Errorf("mounts: %w", err)
	}
	if r.Kind == KindCommitted {
		return nil, fmt.Errorf("mounts of snapshot %q: %w: it is committed; Prepare or View a snapshot on top of it", key, errdefs.ErrFailedPrecondition)
	}
	return s.mounts(r), nil
}

// parentFS returns the fs directories of r's ancestors, nearest first.
func (s *Snapshotter) parentFS(r *record) []string {
	var dirs []string
	for p := r.Parent; p != ""; {
		pr, ok := s.meta.Snapshots[p]
		if !ok {
			break
		}
		dirs = append(dirs, filepath.Join(s.dir(pr.ID), "fs"))
		p = pr.Parent
	}
	return dirs
}

func (s *Snapshotter) mounts(r *record) []Mount {
	fsDir := filepath.Join(s.dir(r.ID), "fs")
	ro := "rw"
	if r.Kind == KindView {
		ro = "ro"
	}
	if s.driver == Native {
		return []Mount{{Type: "bind", Source: fsDir, Options: []string{"rbind", ro}}}
	}
	lowers := s.parentFS(r)
	switch {
	case len(lowers) == 0:
		return []Mount{{Type: "bind", Source: fsDir, Options: []string{"rbind", ro}}}
	case r.Kind == KindView && len(lowers) == 1:
		return []Mount{{Type: "bind", Source: lowers[0], Options: []string{"rbind", "ro"}}}
	case r.Kind == KindView:
		return []Mount{{Type: "overlay", Source: "overlay", Options: []string{
			"index=off", "lowerdir=" + strings.Join(lowers, ":"),
		}}}
	}
	return []Mount{{Type: "overlay", Source: "overlay", Options: []string{
		"index=off",
		"workdir=" + filepath.Join(s.dir(r.ID), "work"),
		"upperdir=" + fsDir,
		"lowerdir=" + strings.Join(lowers, ":"),
	}}}
}

// WritableDir returns the directory into which a layer is applied for an
// active snapshot with these mounts, without mounting them, and whether
// whiteouts must be written in overlayfs form there (image/archive's
// ApplyOptions.Overlay): the upper directory of an overlay mount, or the
// source of a read-write bind mount. ok is false for read-only mounts.
func WritableDir(mounts []Mount) (dir string, overlay bool, ok bool) {
	if len(mounts) != 1 {
		return "", false, false
	}
	m := mounts[0]
	for _, o := range m.Options {
		if o == "ro" {
			return "", false, false
		}
	}
	if m.Type == "overlay" {
		for _, o := range m.Options {
			if v, found := strings.CutPrefix(o, "upperdir="); found {
				return v, true, true
			}
		}
		return "", false, false
	}
	return m.Source, false, true
}

// Remove deletes the snapshot key and its directory. A committed snapshot
// that is the parent of another cannot be removed. Mounts of the snapshot
// must be unmounted first.
func (s *Snapshotter) Remove(ctx context.Context, key string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	r, err := s.get(key)
	if err != nil {
		return fmt.Errorf("remove snapshot: %w", err)
	}
	var children []string
	for n, c := range s.meta.Snapshots {
		if c.Parent == key {
			children = append(children, n)
		}
	}
	if len(children) > 0 {
		sort.Strings(children)
		return fmt.Errorf("remove snapshot %q: %w: it is the parent of %q; remove those first", key, errdefs.ErrFailedPrecondition, children)
	}
	// Rename the directory away first, so that a failure leaves either
	// the whole snapshot or a directory cleanup removes.
	dir := s.dir(r.ID)
	gone := filepath.Join(s.root, "snapshots", "rm-"+r.ID)
	if err := os.Rename(dir, gone); err != nil {
		return fmt.Errorf("remove snapshot %q: %w", key, err)
	}
	if err := s.update(func() error {
		delete(s.meta.Snapshots, key)
		return nil
	}); err != nil {
		os.Rename(gone, dir)
		return fmt.Errorf("remove snapshot %q: %w", key, err)
	}
	if err := os.RemoveAll(gone); err != nil {
		return fmt.Errorf("remove snapshot %q: delete its files (%s): %w; is it still mounted?", key, gone, err)
	}
	return nil
}

func (r *record) info(name string) Info {
	i := Info{Name: name, Parent: r.Parent, Kind: r.Kind, Created: r.Created, Updated: r.Updated}
	if r.Labels != nil {
		i.Labels = map[string]string{}
		for k, v := range r.Labels {
			i.Labels[k] = v
		}
	}
	return i
}

// Stat returns the Info of snapshot key.
func (s *Snapshotter) Stat(ctx context.Context, key string) (Info, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	r, err := s.get(key)
	if err != nil {
		return Info{}, fmt.Errorf("stat: %w", err)
	}
	return r.info(key), nil
}

// Walk calls fn for every snapshot, in name order, and stops at its first
// error. fn must not call the Snapshotter.
func (s *Snapshotter) Walk(ctx context.Context, fn func(context.Context, Info) error) error {
	s.mu.Lock()
	infos := make([]Info, 0, len(s.meta.Snapshots))
	for n, r := range s.meta.Snapshots {
		infos = append(infos, r.info(n))
	}
	s.mu.Unlock()
	sort.Slice(infos, func(i, j int) bool { return infos[i].Name < infos[j].Name })
	for _, i := range infos {
		if err := ctx.Err(); err != nil {
			return err
		}
		if err := fn(ctx, i); err != nil {
			return err
		}
	}
	return nil
}

// Usage returns the disk usage of snapshot key's own layer: measured at
// Commit for a committed snapshot, now for an active one.
func (s *Snapshotter) Usage(ctx context.Context, key string) (Usage, error) {
	s.mu.Lock()
	r, err := s.get(key)
	var dir string
	if err == nil {
		dir = filepath.Join(s.dir(r.ID), "fs")
		if r.Usage != nil {
			u := *r.Usage
			s.mu.Unlock()
			return u, nil
		}
	}
	s.mu.Unlock()
	if err != nil {
		return Usage{}, fmt.Errorf("usage: %w", err)
	}
	u, err := diskUsage(dir)
	if err != nil {
		return Usage{}, fmt.Errorf("usage of snapshot %q: %w", key, err)
	}
	return u, nil
}
