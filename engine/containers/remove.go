package containers

import (
	"context"
	"fmt"
	"os"
	"syscall"

	"github.com/skiff-containers/skiff/engine/metadata"
	"github.com/skiff-containers/skiff/errdefs"
	"github.com/skiff-containers/skiff/image/snapshot"
)

// Remove removes the container: its runtime state and shim, rootfs mount,
// snapshot, directories (the log's too) and record. A running container
// is refused (errdefs.ErrFailedPrecondition) unless force, which kills it
// first. Every step is idempotent, and the record is marked "removing"
// first, so a removal that a crash interrupted is finished by the next
// Remove or by Recover. It returns the container's id.
func (s *Service) Remove(ctx context.Context, ns, idOrName string, force bool) (string, error) {
	return s.RemoveWithOptions(ctx, ns, idOrName, RemoveOptions{Force: force})
}

// RemoveOptions are the options of RemoveWithOptions.
type RemoveOptions struct {
	// Force kills a running container first.
	Force bool
	// Volumes also removes the container's anonymous volumes (rm -v).
	Volumes bool
}

// RemoveWithOptions is Remove with docker's rm options.
func (s *Service) RemoveWithOptions(ctx context.Context, ns, idOrName string, o RemoveOptions) (string, error) {
	force := o.Force
	c, rec, err := s.lock(ns, idOrName)
	if err != nil {
		return "", err
	}
	defer c.op.Unlock()
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), opTimeout)
	defer cancel()
	if s.view(ns, rec).Running() {
		if !force {
			return "", check(idOrName, opRemove, status(rec))
		}
		exited := c.exitChan()
		if cl := c.getShim(); cl != nil {
			if err := cl.Kill(ctx, syscall.SIGKILL, true); err != nil {
				s.log.Warn("remove: kill", "namespace", ns, "id", rec.ID, "err", err)
			}
			select {
			case <-exited:
			case <-ctx.Done():
				return "", fmt.Errorf("remove container %s: waiting for it to die: %w", idOrName, ctx.Err())
			}
		}
	}
	if err := s.removeLockedVolumes(ctx, c, rec, o.Volumes || decodeConfig(rec).AutoRemove); err != nil {
		return "", fmt.Errorf("remove container %s: %w; retry the removal", idOrName, err)
	}
	return rec.ID, nil
}

// removeLocked removes c; the caller holds c.op. The container must not
// run, or its shim is force-deleted (which kills it). An AutoRemove
// container's anonymous volumes go with it.
func (s *Service) removeLocked(ctx context.Context, c *ctr, rec metadata.Container) error {
	return s.removeLockedVolumes(ctx, c, rec, decodeConfig(rec).AutoRemove)
}

// removeLockedVolumes is removeLocked, removing the container's anonymous
// volumes too with removeVolumes.
func (s *Service) removeLockedVolumes(ctx context.Context, c *ctr, rec metadata.Container, removeVolumes bool) error {
	if status(rec) != StatusRemoving {
		var err error
		rec, err = s.updateState(c.ns, c.id, func(st *metadata.ContainerState) { st.Status = StatusRemoving })
		if err != nil {
			return err
		}
	}
	if err := s.dropShim(ctx, c, rec, true); err != nil {
		return fmt.Errorf("delete it in the runtime: %w", err)
	}
	if err := s.runtimeOf(c.ns, rec).forceDelete(ctx, c.id); err != nil {
		return fmt.Errorf("delete it in the runtime: %w", err)
	}
	rootfs := s.rootfsDir(c.ns, c.id)
	if err := snapshot.Unmount(rootfs); err != nil {
		return fmt.Errorf("unmount its root filesystem: %w", err)
	}
	key := rec.SnapshotKey
	if key == "" {
		key = snapshotKey(c.ns, c.id)
	}
	if err := s.cfg.Snapshotter.Remove(ctx, key); err != nil && !errdefs.IsNotFound(err) {
		return fmt.Errorf("remove its writable layer: %w", err)
	}
	for _, d := range []string{s.bundleDir(c.ns, c.id), s.shimDir(c.ns, c.id), s.persistDir(c.ns, c.id)} {
		if err := os.RemoveAll(d); err != nil {
			return fmt.Errorf("remove its directory: %w", err)
		}
	}
	if err := s.cfg.DB.DeleteContainer(c.ns, c.id); err != nil && !errdefs.IsNotFound(err) {
		return fmt.Errorf("delete its record: %w", err)
	}
	s.releaseVolumes(ctx, c.ns, rec, removeVolumes)
	s.publish(c.ns, c.id, evDestroy, rec, nil)
	c.mu.Lock()
	if !c.isRemoved {
		c.isRemoved = true
		close(c.removed)
	}
	c.mu.Unlock()
	s.forget(c)
	s.log.Info("container removed", "namespace", c.ns, "id", c.id)
	return nil
}
