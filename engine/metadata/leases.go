package metadata

import (
	"fmt"
	"time"
	"unicode/utf8"

	"github.com/skiff-containers/skiff/errdefs"
)

// LeaseResource names one resource a lease holds, e.g. {Type: "content", ID:
// "sha256:…"} or {Type: "snapshots/overlayfs", ID: "<key>"}.
type LeaseResource struct {
	Type string `json:"type"`
	ID   string `json:"id"`
}

// Lease is a garbage-collection root: while it exists, the resources it names
// are kept (during a pull, before the image record exists, for example).
type Lease struct {
	ID        string            `json:"id"`
	Labels    map[string]string `json:"labels,omitempty"`
	CreatedAt time.Time         `json:"createdAt"`
	Resources []LeaseResource   `json:"resources,omitempty"`
}

const (
	kindLease = "lease"
	// maxResourceField bounds LeaseResource.Type and ID.
	maxResourceField = 1024
)

func validateLease(ns string, l *Lease) error {
	if err := ValidateID(kindLease, l.ID); err != nil {
		return fmt.Errorf("namespace %q: %w", ns, err)
	}
	for i, r := range l.Resources {
		for _, f := range [...]struct{ name, v string }{{"type", r.Type}, {"id", r.ID}} {
			if f.v == "" || len(f.v) > maxResourceField || !utf8.ValidString(f.v) {
				return recordErr(ns, kindLease, l.ID, fmt.Errorf("resource %d: %s must be 1..%d bytes of UTF-8: %w", i, f.name, maxResourceField, errdefs.ErrInvalidArgument))
			}
		}
	}
	return validateLabels(fmt.Sprintf("namespace %q: lease %q", ns, l.ID), l.Labels)
}

// CreateLease stores a new lease, setting CreatedAt. It fails with
// ErrAlreadyExists if the id is taken in ns.
func (t *Tx) CreateLease(ns string, l Lease) (Lease, error) {
	if err := validateLease(ns, &l); err != nil {
		return Lease{}, err
	}
	if err := t.writable(fmt.Sprintf("create lease %q", l.ID)); err != nil {
		return Lease{}, err
	}
	b, err := t.kindBucket(ns, bucketLeases, true)
	if err != nil {
		return Lease{}, err
	}
	if b.Get([]byte(l.ID)) != nil {
		return Lease{}, recordErr(ns, kindLease, l.ID, errdefs.ErrAlreadyExists)
	}
	l.CreatedAt = t.now
	data, err := putRecord(b, l.ID, &l)
	if err != nil {
		return Lease{}, recordErr(ns, kindLease, l.ID, err)
	}
	return roundTrip[Lease](data)
}

// GetLease returns the lease with id in ns, or ErrNotFound.
func (t *Tx) GetLease(ns, id string) (Lease, error) {
	if err := ValidateID(kindLease, id); err != nil {
		return Lease{}, fmt.Errorf("namespace %q: %w", ns, err)
	}
	b, err := t.kindBucket(ns, bucketLeases, false)
	if err != nil {
		return Lease{}, err
	}
	var l Lease
	found, err := getRecord(b, id, &l)
	if err != nil {
		return Lease{}, recordErr(ns, kindLease, id, err)
	}
	if !found {
		return Lease{}, recordErr(ns, kindLease, id, errdefs.ErrNotFound)
	}
	return l, nil
}

// ListLeases returns the leases of ns sorted by id, those filter accepts (all
// if filter is nil).
func (t *Tx) ListLeases(ns string, filter func(Lease) bool) ([]Lease, error) {
	b, err := t.kindBucket(ns, bucketLeases, false)
	if err != nil {
		return nil, err
	}
	out, err := listRecords(b, filter)
	if err != nil {
		return nil, fmt.Errorf("namespace %q: list leases: %w", ns, err)
	}
	return out, nil
}

// UpdateLease updates the stored lease l.ID. With no fieldPaths Labels and
// Resources are replaced by l's; otherwise only the listed ones: "resources",
// "labels", "labels.<key>" (an empty or absent value deletes that key).
func (t *Tx) UpdateLease(ns string, l Lease, fieldPaths ...string) (Lease, error) {
	if err := ValidateID(kindLease, l.ID); err != nil {
		return Lease{}, fmt.Errorf("namespace %q: %w", ns, err)
	}
	if err := t.writable(fmt.Sprintf("update lease %q", l.ID)); err != nil {
		return Lease{}, err
	}
	cur, err := t.GetLease(ns, l.ID)
	if err != nil {
		return Lease{}, err
	}
	next := cur
	if len(fieldPaths) == 0 {
		next.Labels = copyLabels(l.Labels)
		next.Resources = l.Resources
	}
	for _, p := range fieldPaths {
		switch {
		case p == "resources":
			next.Resources = l.Resources
		case applyLabelPaths(p, &next.Labels, l.Labels):
		default:
			return Lease{}, recordErr(ns, kindLease, l.ID, fmt.Errorf("cannot update field %q (updatable: resources, labels, labels.<key>): %w", p, errdefs.ErrInvalidArgument))
		}
	}
	if err := validateLease(ns, &next); err != nil {
		return Lease{}, err
	}
	b, err := t.kindBucket(ns, bucketLeases, false)
	if err != nil {
		return Lease{}, err
	}
	data, err := putRecord(b, next.ID, &next)
	if err != nil {
		return Lease{}, recordErr(ns, kindLease, l.ID, err)
	}
	return roundTrip[Lease](data)
}

// DeleteLease removes the lease with id from ns, or fails with ErrNotFound.
// The resources it held become collectable.
func (t *Tx) DeleteLease(ns, id string) error {
	if err := ValidateID(kindLease, id); err != nil {
		return fmt.Errorf("namespace %q: %w", ns, err)
	}
	if err := t.writable(fmt.Sprintf("delete lease %q", id)); err != nil {
		return err
	}
	b, err := t.kindBucket(ns, bucketLeases, false)
	if err != nil {
		return err
	}
	if b == nil || b.Get([]byte(id)) == nil {
		return recordErr(ns, kindLease, id, errdefs.ErrNotFound)
	}
	if err := b.Delete([]byte(id)); err != nil {
		return recordErr(ns, kindLease, id, err)
	}
	return nil
}

// CreateLease: see Tx.CreateLease.
func (db *DB) CreateLease(ns string, l Lease) (out Lease, err error) {
	err = db.Update(func(t *Tx) error { out, err = t.CreateLease(ns, l); return err })
	return out, err
}

// GetLease: see Tx.GetLease.
func (db *DB) GetLease(ns, id string) (out Lease, err error) {
	err = db.View(func(t *Tx) error { out, err = t.GetLease(ns, id); return err })
	return out, err
}

// ListLeases: see Tx.ListLeases.
func (db *DB) ListLeases(ns string, filter func(Lease) bool) (out []Lease, err error) {
	err = db.View(func(t *Tx) error { out, err = t.ListLeases(ns, filter); return err })
	return out, err
}

// UpdateLease: see Tx.UpdateLease.
func (db *DB) UpdateLease(ns string, l Lease, fieldPaths ...string) (out Lease, err error) {
	err = db.Update(func(t *Tx) error { out, err = t.UpdateLease(ns, l, fieldPaths...); return err })
	return out, err
}

// DeleteLease: see Tx.DeleteLease.
func (db *DB) DeleteLease(ns, id string) error {
	return db.Update(func(t *Tx) error { return t.DeleteLease(ns, id) })
}
