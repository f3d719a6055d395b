package containers

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"log/slog"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/skiff-containers/skiff/engine/metadata"
	"github.com/skiff-containers/skiff/engine/volumes"
	"github.com/skiff-containers/skiff/errdefs"
	"github.com/skiff-containers/skiff/shim/client"
)

// Timeouts of the steps that must not be cut short by a caller going away
// (a half-made container is worse than a slow answer).
const (
	opTimeout      = 2 * time.Minute
	defaultStop    = 10 * time.Second
	killWait       = 10 * time.Second
	shimExitWait   = 5 * time.Second
	logPollPeriod  = 100 * time.Millisecond
	watchRetryWait = 200 * time.Millisecond
)

// Service is the container service. It is safe for concurrent use.
type Service struct {
	cfg Config
	log *slog.Logger

	// ctx ends the watchers on Close.
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu   sync.Mutex
	ctrs map[string]*ctr // by ns + "/" + id
}

// ctr is the in-memory side of one container: the lock that serialises its
// lifecycle operations, its shim, and the channels waiters block on.
type ctr struct {
	ns, id string

	// op is held by every lifecycle operation (start, stop, kill, remove,
	// and a watcher's cleanup after an exit); never while waiting for
	// nothing but an exit.
	op sync.Mutex

	mu sync.Mutex // guards the fields below
	// shim holds the container in the runtime; nil when none does.
	shim *client.Client
	// exited is closed (and replaced) each time an exit is recorded.
	exited chan struct{}
	// removed is closed when the container is removed.
	removed     chan struct{}
	isRemoved   bool
	lastExit    int
	hasLastExit bool
	// restartDelay is the restart policy's current backoff (restart.go).
	restartDelay time.Duration
}

// New returns a service over cfg. Call Recover once before serving.
func New(cfg Config) (*Service, error) {
	if cfg.DB == nil || cfg.Snapshotter == nil || cfg.Images == nil {
		return nil, fmt.Errorf("container service: DB, Snapshotter and Images are required: %w", errdefs.ErrInvalidArgument)
	}
	if !filepath.IsAbs(cfg.Root) || !filepath.IsAbs(cfg.State) {
		return nil, fmt.Errorf("container service: Root %q and State %q must be absolute paths: %w", cfg.Root, cfg.State, errdefs.ErrInvalidArgument)
	}
	if cfg.ShimBinary == "" {
		cfg.ShimBinary = "skiff-shim"
	}
	if cfg.DefaultRuntime == "" {
		cfg.DefaultRuntime = "skiff-runtime"
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Volumes == nil {
		vs, err := volumes.New(volumes.Config{DB: cfg.DB, Root: filepath.Join(cfg.Root, "volumes"), Logger: cfg.Logger})
		if err != nil {
			return nil, fmt.Errorf("container service: %w", err)
		}
		cfg.Volumes = vs
	}
	ctx, cancel := context.WithCancel(context.Background())
	return &Service{
		cfg:    cfg,
		log:    cfg.Logger.With("component", "containers"),
		ctx:    ctx,
		cancel: cancel,
		ctrs:   map[string]*ctr{},
	}, nil
}

// Close stops the watchers and waits for them. Containers keep running;
// a later service's Recover picks them up.
func (s *Service) Close() error {
	s.cancel()
	s.wg.Wait()
	return nil
}

// ctr returns the in-memory container ns/id, making it on first use.
func (s *Service) ctr(ns, id string) *ctr {
	s.mu.Lock()
	defer s.mu.Unlock()
	key := ns + "/" + id
	c := s.ctrs[key]
	if c == nil {
		c = &ctr{ns: ns, id: id, exited: make(chan struct{}), removed: make(chan struct{})}
		s.ctrs[key] = c
	}
	return c
}

func (s *Service) forget(c *ctr) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ctrs[c.ns+"/"+c.id] == c {
		delete(s.ctrs, c.ns+"/"+c.id)
	}
}

func (c *ctr) getShim() *client.Client {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.shim
}

func (c *ctr) setShim(cl *client.Client) {
	c.mu.Lock()
	c.shim = cl
	c.mu.Unlock()
}

// exitChan returns the channel closed at the next recorded exit.
func (c *ctr) exitChan() chan struct{} {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.exited
}

// Paths of a container.

func (s *Service) bundleDir(ns, id string) string {
	return filepath.Join(s.cfg.State, "containers", ns, id)
}

func (s *Service) rootfsDir(ns, id string) string {
	return filepath.Join(s.bundleDir(ns, id), "rootfs")
}

func (s *Service) persistDir(ns, id string) string {
	return filepath.Join(s.cfg.Root, "containers", ns, id)
}

// shimDir is short: the shim's socket path must fit a unix address.
func (s *Service) shimDir(ns, id string) string {
	sum := sha256.Sum256([]byte(ns + "/" + id))
	return filepath.Join(s.cfg.State, "s", hex.EncodeToString(sum[:16]))
}

func (s *Service) runtimeRoot(runtime, ns string) string {
	return filepath.Join(s.cfg.State, "runtime", filepath.Base(runtime), ns)
}

func snapshotKey(ns, id string) string { return "ctr/" + ns + "/" + id }

func cgroupsPath(ns, id string) string { return "/skiff/" + ns + "/" + id }

// resolve finds the container idOrName names in ns: an exact id, an exact
// name, or a unique id prefix.
func (s *Service) resolve(ns, ref string) (metadata.Container, error) {
	if err := metadata.ValidateNamespace(ns); err != nil {
		return metadata.Container{}, err
	}
	name := strings.TrimPrefix(ref, "/")
	if name == "" {
		return metadata.Container{}, fmt.Errorf("no container named: give a container id or name: %w", errdefs.ErrInvalidArgument)
	}
	var out metadata.Container
	err := s.cfg.DB.View(func(tx *metadata.Tx) error {
		if metadata.ValidateID("container", name) != nil {
			return fmt.Errorf("no such container: %s: %w", ref, errdefs.ErrNotFound)
		}
		if c, err := tx.GetContainer(ns, name); err == nil {
			out = c
			return nil
		} else if !errdefs.IsNotFound(err) {
			return err
		}
		if c, err := tx.GetContainerByName(ns, name); err == nil {
			out = c
			return nil
		} else if !errdefs.IsNotFound(err) && !errdefs.IsInvalidArgument(err) {
			return err
		}
		if isHex(name) {
			matches, err := tx.ListContainers(ns, func(c metadata.Container) bool { return strings.HasPrefix(c.ID, name) })
			if err != nil {
				return err
			}
			switch len(matches) {
			case 1:
				out = matches[0]
				return nil
			case 0:
			default:
				return fmt.Errorf("container id prefix %q matches %d containers; give more of the id: %w", ref, len(matches), errdefs.ErrInvalidArgument)
			}
		}
		return fmt.Errorf("no such container: %s: %w", ref, errdefs.ErrNotFound)
	})
	return out, err
}

// lock resolves ref, takes the container's operation lock and re-reads its
// record (it may have been removed meanwhile). The caller unlocks c.op.
func (s *Service) lock(ns, ref string) (*ctr, metadata.Container, error) {
	rec, err := s.resolve(ns, ref)
	if err != nil {
		return nil, rec, err
	}
	c := s.ctr(ns, rec.ID)
	c.op.Lock()
	rec, err = s.cfg.DB.GetContainer(ns, rec.ID)
	if err != nil {
		c.op.Unlock()
		if errdefs.IsNotFound(err) {
			return nil, rec, fmt.Errorf("no such container: %s: %w", ref, errdefs.ErrNotFound)
		}
		return nil, rec, err
	}
	return c, rec, nil
}

// updateState applies fn to the stored state of the container in one
// transaction and returns the new record.
func (s *Service) updateState(ns, id string, fn func(*metadata.ContainerState)) (metadata.Container, error) {
	var out metadata.Container
	err := s.cfg.DB.Update(func(tx *metadata.Tx) error {
		cur, err := tx.GetContainer(ns, id)
		if err != nil {
			return err
		}
		fn(&cur.State)
		out, err = tx.UpdateContainer(ns, cur, "state")
		return err
	})
	return out, err
}

func status(rec metadata.Container) string {
	if rec.State.Status == "" {
		return StatusCreated
	}
	return rec.State.Status
}

func decodeConfig(rec metadata.Container) CreateConfig {
	var cc CreateConfig
	if len(rec.Config) > 0 {
		json.Unmarshal(rec.Config, &cc)
	}
	return cc
}

// view turns a record of namespace ns into the Container callers see.
func (s *Service) view(ns string, rec metadata.Container) Container {
	cc := decodeConfig(rec)
	out := Container{
		ID:           rec.ID,
		Name:         rec.Name,
		Image:        rec.Image,
		ImageID:      rec.ImageID,
		Config:       cc,
		Status:       status(rec),
		Pid:          rec.State.Pid,
		ExitCode:     rec.State.ExitCode,
		ExitKnown:    rec.State.ExitKnown,
		Error:        rec.State.Error,
		Created:      rec.CreatedAt,
		Started:      rec.State.StartedAt,
		Finished:     rec.State.FinishedAt,
		Runtime:      rec.Runtime,
		LogPath:      rec.LogPath,
		RestartCount: rec.State.RestartCount,
		Bundle:       s.bundleDir(ns, rec.ID),
		Spec:         rec.Spec,
		Labels:       rec.Labels,
		StopSignal:   rec.StopSignal,
		Mounts:       mountPoints(rec.Mounts),
		Network:      s.networkOf(rec.ID),
	}
	var spec struct {
		Process *struct {
			Args []string `json:"args"`
		} `json:"process"`
	}
	if json.Unmarshal(rec.Spec, &spec) == nil && spec.Process != nil && len(spec.Process.Args) > 0 {
		out.Path, out.Args = spec.Process.Args[0], spec.Process.Args[1:]
	}
	return out
}

// Inspect returns the container idOrName names.
func (s *Service) Inspect(ctx context.Context, ns, idOrName string) (Container, error) {
	rec, err := s.resolve(ns, idOrName)
	if err != nil {
		return Container{}, err
	}
	return s.view(ns, rec), nil
}

// List returns the containers of ns, newest first: all of them, or only
// those running (or paused, or restarting) unless all.
func (s *Service) List(ctx context.Context, ns string, all bool) ([]Container, error) {
	if err := metadata.ValidateNamespace(ns); err != nil {
		return nil, err
	}
	recs, err := s.cfg.DB.ListContainers(ns, nil)
	if err != nil {
		return nil, err
	}
	out := []Container{}
	for _, rec := range recs {
		v := s.view(ns, rec)
		if all || v.Running() || v.Status == StatusRestarting { // docker lists restarting ones too
			out = append(out, v)
		}
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].Created.After(out[j].Created) })
	return out, nil
}

// Counts returns how many containers ns has: in all, running, paused, and
// stopped (every other status), for Info.
func (s *Service) Counts(ctx context.Context, ns string) (total, running, paused, stopped int, err error) {
	list, err := s.List(ctx, ns, true)
	if err != nil {
		return 0, 0, 0, 0, err
	}
	for _, c := range list {
		total++
		switch c.Status {
		case StatusRunning:
			running++
		case StatusPaused:
			paused++
		default:
			stopped++
		}
	}
	return total, running, paused, stopped, nil
}

// Wait blocks until the container reaches condition: "not-running" (the
// default: returns at once unless it runs), "next-exit" (its next exit,
// even if it is not running now), or "removed". It returns the exit code.
func (s *Service) Wait(ctx context.Context, ns, idOrName, condition string) (int, error) {
	switch condition {
	case "", "not-running", "next-exit", "removed":
	default:
		return 0, fmt.Errorf("wait: unknown condition %q (want not-running, next-exit or removed): %w", condition, errdefs.ErrInvalidArgument)
	}
	rec, err := s.resolve(ns, idOrName)
	if err != nil {
		return 0, err
	}
	c := s.ctr(ns, rec.ID)
	exited := c.exitChan()
	c.mu.Lock()
	removed := c.removed
	c.mu.Unlock()
	// Re-read after taking the channels: an exit recorded in between is
	// then seen either in the record or as a closed channel.
	rec, err = s.cfg.DB.GetContainer(ns, rec.ID)
	gone := errdefs.IsNotFound(err)
	if err != nil && !gone {
		return 0, err
	}
	switch condition {
	case "", "not-running":
		if gone {
			return c.exitCode(rec), nil
		}
		if !s.view(ns, rec).Running() {
			return rec.State.ExitCode, nil
		}
		fallthrough
	case "next-exit":
		if gone {
			return 0, fmt.Errorf("wait for container %s: it was removed: %w", idOrName, errdefs.ErrNotFound)
		}
		select {
		case <-exited:
		case <-removed:
		case <-ctx.Done():
			return 0, fmt.Errorf("wait for container %s: %w", idOrName, ctx.Err())
		}
	case "removed":
		if !gone {
			select {
			case <-removed:
			case <-ctx.Done():
				return 0, fmt.Errorf("wait for container %s: %w", idOrName, ctx.Err())
			}
		}
	}
	rec, err = s.cfg.DB.GetContainer(ns, rec.ID)
	if err == nil {
		return rec.State.ExitCode, nil
	}
	if errdefs.IsNotFound(err) {
		return c.exitCode(rec), nil
	}
	return 0, err
}

// exitCode is the last exit recorded in memory (for a container removed
// since), else rec's.
func (c *ctr) exitCode(rec metadata.Container) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.hasLastExit {
		return c.lastExit
	}
	return rec.State.ExitCode
}
