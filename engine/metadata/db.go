// Package metadata owns the engine's persistent records — images, containers,
// leases and volumes — in a single bbolt database (by default /var/lib/skiff/meta.db),
// partitioned by namespace as in containerd: `default` for the CLI, `k8s.io`
// for CRI. Every operation takes the namespace as a required argument.
//
// The package only stores records: it must not touch the filesystem beyond its
// db file, and it must not run containers, pull images or mount snapshots.
//
// Layout of the database:
//
//	meta/schema                      -> big-endian uint32 schema version
//	ns/<namespace>/images/<name>     -> JSON Image
//	ns/<namespace>/containers/<id>   -> JSON Container
//	ns/<namespace>/containernames/<name> -> container id (unique name index)
//	ns/<namespace>/leases/<id>       -> JSON Lease
//	ns/<namespace>/volumes/<name>    -> JSON Volume
//
// Multi-record changes go through DB.Update (one atomic read-write
// transaction) and consistent reads through DB.View; the DB methods of the
// same names as the Tx methods are single-operation shortcuts.
package metadata

import (
	"encoding/binary"
	"errors"
	"fmt"
	"sort"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/skiff-containers/skiff/errdefs"
)

// SchemaVersion is the version of the on-disk layout this package writes.
// A database carrying a newer version is refused by Open.
const SchemaVersion = 1

// DefaultLockTimeout is how long Open waits for the file lock when
// Options.LockTimeout is zero.
const DefaultLockTimeout = 5 * time.Second

const (
	bucketMeta           = "meta"
	keySchema            = "schema"
	bucketNamespaces     = "ns"
	bucketImages         = "images"
	bucketContainers     = "containers"
	bucketContainerNames = "containernames"
	bucketLeases         = "leases"
)

// recordBuckets are the record buckets of a namespace (named as their kind),
// checked when deleting a namespace.
func recordBuckets() []string {
	return []string{bucketImages, bucketContainers, bucketLeases, bucketVolumes}
}

// Options tunes Open. The zero value is usable.
type Options struct {
	// LockTimeout bounds the wait for the exclusive file lock; another
	// process (another skiffd) holding it makes Open fail after this long.
	// Zero means DefaultLockTimeout; negative is invalid.
	LockTimeout time.Duration
	// Now returns the current time for CreatedAt/UpdatedAt; nil means
	// time.Now. Times are stored in UTC.
	Now func() time.Time
}

// DB is an open metadata database. It is safe for concurrent use.
type DB struct {
	path string
	bdb  *bolt.DB
	now  func() time.Time
}

// Open opens (creating if needed, mode 0600) the bbolt database at path. The
// parent directory must exist. If another process holds the database, Open
// fails after opts.LockTimeout with an error saying another skiffd uses it.
// A database written by a newer schema version is refused.
func Open(path string, opts Options) (*DB, error) {
	if path == "" {
		return nil, fmt.Errorf("open metadata db: empty path: %w", errdefs.ErrInvalidArgument)
	}
	if opts.LockTimeout < 0 {
		return nil, fmt.Errorf("open metadata db %s: negative lock timeout %v: %w", path, opts.LockTimeout, errdefs.ErrInvalidArgument)
	}
	timeout := opts.LockTimeout
	if timeout == 0 {
		timeout = DefaultLockTimeout
	}
	bdb, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: timeout})
	if err != nil {
		if errors.Is(err, bolt.ErrTimeout) {
			return nil, fmt.Errorf("open metadata db %s: another skiffd uses %s (file lock not acquired within %v); stop it or use another --root: %w",
				path, path, timeout, errdefs.ErrFailedPrecondition)
		}
		return nil, fmt.Errorf("open metadata db %s: %w", path, err)
	}
	now := opts.Now
	if now == nil {
		now = time.Now
	}
	db := &DB{path: path, bdb: bdb, now: now}
	if err := db.initSchema(); err != nil {
		bdb.Close()
		return nil, err
	}
	return db, nil
}

func (db *DB) initSchema() error {
	return db.bdb.Update(func(tx *bolt.Tx) error {
		meta, err := tx.CreateBucketIfNotExists([]byte(bucketMeta))
		if err != nil {
			return fmt.Errorf("metadata db %s: %w", db.path, err)
		}
		if v := meta.Get([]byte(keySchema)); v != nil {
			if len(v) != 4 {
				return fmt.Errorf("metadata db %s: corrupt schema version (%d bytes): %w", db.path, len(v), errdefs.ErrFailedPrecondition)
			}
			got := binary.BigEndian.Uint32(v)
			if got > SchemaVersion {
				return fmt.Errorf("metadata db %s has schema version %d, newer than the %d this skiffd supports; use a newer skiffd: %w",
					db.path, got, SchemaVersion, errdefs.ErrFailedPrecondition)
			}
			// Older versions would be migrated here; version 1 is the first.
		}
		var buf [4]byte
		binary.BigEndian.PutUint32(buf[:], SchemaVersion)
		if err := meta.Put([]byte(keySchema), buf[:]); err != nil {
			return fmt.Errorf("metadata db %s: write schema version: %w", db.path, err)
		}
		if _, err := tx.CreateBucketIfNotExists([]byte(bucketNamespaces)); err != nil {
			return fmt.Errorf("metadata db %s: %w", db.path, err)
		}
		return nil
	})
}

// Path returns the file the database was opened from.
func (db *DB) Path() string { return db.path }

// Close releases the database and its file lock.
func (db *DB) Close() error {
	if err := db.bdb.Close(); err != nil {
		return fmt.Errorf("close metadata db %s: %w", db.path, err)
	}
	return nil
}

// Tx is a metadata transaction handed to the function given to DB.View or
// DB.Update. It must not be used after that function returns. Write methods
// on a read-only Tx fail with ErrFailedPrecondition.
type Tx struct {
	tx  *bolt.Tx
	now time.Time
}

// View runs fn in a read-only transaction with a consistent snapshot.
func (db *DB) View(fn func(*Tx) error) error {
	return db.bdb.View(func(tx *bolt.Tx) error {
		return fn(&Tx{tx: tx, now: db.now().UTC()})
	})
}

// Update runs fn in a read-write transaction; all its changes are committed
// atomically if fn returns nil and discarded otherwise. Writers are
// serialised.
func (db *DB) Update(fn func(*Tx) error) error {
	return db.bdb.Update(func(tx *bolt.Tx) error {
		return fn(&Tx{tx: tx, now: db.now().UTC()})
	})
}

func (t *Tx) writable(op string) error {
	if !t.tx.Writable() {
		return fmt.Errorf("%s: read-only transaction: %w", op, errdefs.ErrFailedPrecondition)
	}
	return nil
}

func (t *Tx) namespaces() *bolt.Bucket {
	return t.tx.Bucket([]byte(bucketNamespaces))
}

// nsBucket returns the namespace's bucket, creating it when create is set
// (the transaction must then be writable). It returns nil, nil when the
// namespace does not exist and create is false.
func (t *Tx) nsBucket(ns string, create bool) (*bolt.Bucket, error) {
	if err := ValidateNamespace(ns); err != nil {
		return nil, err
	}
	root := t.namespaces()
	if b := root.Bucket([]byte(ns)); b != nil || !create {
		return b, nil
	}
	b, err := root.CreateBucket([]byte(ns))
	if err != nil {
		return nil, fmt.Errorf("namespace %q: create: %w", ns, err)
	}
	return b, nil
}

// kindBucket returns the namespace's bucket of one kind, see nsBucket.
func (t *Tx) kindBucket(ns, kind string, create bool) (*bolt.Bucket, error) {
	nb, err := t.nsBucket(ns, create)
	if err != nil || nb == nil {
		return nil, err
	}
	if b := nb.Bucket([]byte(kind)); b != nil || !create {
		return b, nil
	}
	b, err := nb.CreateBucket([]byte(kind))
	if err != nil {
		return nil, fmt.Errorf("namespace %q: create %s bucket: %w", ns, kind, err)
	}
	return b, nil
}

// Namespaces lists the namespaces that exist, sorted.
func (t *Tx) Namespaces() ([]string, error) {
	var out []string
	err := t.namespaces().ForEachBucket(func(k []byte) error {
		out = append(out, string(k))
		return nil
	})
	sort.Strings(out)
	return out, err
}

// CreateNamespace creates an empty namespace. Namespaces are also created
// implicitly by the first record created in them.
func (t *Tx) CreateNamespace(ns string) error {
	if err := ValidateNamespace(ns); err != nil {
		return err
	}
	if err := t.writable(fmt.Sprintf("create namespace %q", ns)); err != nil {
		return err
	}
	if t.namespaces().Bucket([]byte(ns)) != nil {
		return fmt.Errorf("namespace %q: %w", ns, errdefs.ErrAlreadyExists)
	}
	_, err := t.nsBucket(ns, true)
	return err
}

// DeleteNamespace removes an empty namespace. A namespace still holding
// images, containers or leases is refused with ErrFailedPrecondition.
func (t *Tx) DeleteNamespace(ns string) error {
	if err := ValidateNamespace(ns); err != nil {
		return err
	}
	if err := t.writable(fmt.Sprintf("delete namespace %q", ns)); err != nil {
		return err
	}
	nb := t.namespaces().Bucket([]byte(ns))
	if nb == nil {
		return fmt.Errorf("namespace %q: %w", ns, errdefs.ErrNotFound)
	}
	var held []string
	for _, kind := range recordBuckets() {
		if b := nb.Bucket([]byte(kind)); b != nil {
			if k, _ := b.Cursor().First(); k != nil {
				held = append(held, kind)
			}
		}
	}
	if len(held) > 0 {
		return fmt.Errorf("delete namespace %q: it still holds %v; remove them first: %w", ns, held, errdefs.ErrFailedPrecondition)
	}
	if err := t.namespaces().DeleteBucket([]byte(ns)); err != nil {
		return fmt.Errorf("delete namespace %q: %w", ns, err)
	}
	return nil
}

// Namespaces lists the namespaces that exist, sorted.
func (db *DB) Namespaces() (out []string, err error) {
	err = db.View(func(t *Tx) error { out, err = t.Namespaces(); return err })
	return out, err
}

// CreateNamespace: see Tx.CreateNamespace.
func (db *DB) CreateNamespace(ns string) error {
	return db.Update(func(t *Tx) error { return t.CreateNamespace(ns) })
}

// DeleteNamespace: see Tx.DeleteNamespace.
func (db *DB) DeleteNamespace(ns string) error {
	return db.Update(func(t *Tx) error { return t.DeleteNamespace(ns) })
}
