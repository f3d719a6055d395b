package containers

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/skiff-containers/skiff/engine/metadata"
	"github.com/skiff-containers/skiff/shim/client"
	"github.com/skiff-containers/skiff/shim/proto"
)

// Recover rebuilds the service's view after the engine (re)starts: for
// every container of every namespace it reconnects to the shim and watches
// a running container again; records the exit of one that exited while no
// engine watched (from the shim, or its exit file); kills and deletes
// through the runtime one whose shim died first, recording its exit as
// unknown (ExitKnown false, code 255); finishes interrupted removals; and
// removes AutoRemove containers that have exited. A container it cannot
// recover is logged and skipped (a later Start, Stop or Remove retries);
// only a failure to read the records is returned, so that one broken
// container does not keep the daemon from starting.
func (s *Service) Recover(ctx context.Context) error {
	nss, err := s.cfg.DB.Namespaces()
	if err != nil {
		return fmt.Errorf("recover containers: %w", err)
	}
	var errs []error
	for _, ns := range nss {
		recs, err := s.cfg.DB.ListContainers(ns, nil)
		if err != nil {
			errs = append(errs, fmt.Errorf("recover containers of namespace %s: %w", ns, err))
			continue
		}
		for _, rec := range recs {
			if err := s.recoverOne(ctx, ns, rec); err != nil {
				s.log.Error("could not recover a container; a later start, stop or remove retries", "namespace", ns, "id", rec.ID, "err", err)
			}
		}
	}
	s.restartAtStart(nss)
	return errors.Join(errs...)
}

func (s *Service) recoverOne(ctx context.Context, ns string, rec metadata.Container) error {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), opTimeout)
	defer cancel()
	c := s.ctr(ns, rec.ID)
	c.op.Lock()
	defer c.op.Unlock()
	log := s.log.With("namespace", ns, "id", rec.ID)
	if status(rec) == StatusRemoving {
		log.Info("finishing an interrupted removal")
		return s.removeLocked(ctx, c, rec)
	}
	cl := client.New(rec.ID, s.shimDir(ns, rec.ID))
	st, err := cl.State(ctx)
	switch {
	case err == nil:
		c.setShim(cl)
		switch st.Status {
		case proto.StatusRunning, proto.StatusPaused:
			if want := runningStatus(st.Status); status(rec) != want {
				if _, err := s.updateState(ns, rec.ID, func(cs *metadata.ContainerState) {
					cs.Status, cs.Pid = want, st.Pid
					if cs.StartedAt.IsZero() {
						cs.StartedAt = time.Now().UTC()
					}
				}); err != nil {
					return err
				}
			}
			log.Info("reconnected to a running container", "pid", st.Pid)
			s.watch(c, cl)
			return nil
		case proto.StatusCreated:
			// Created in the runtime (an attach before start, or a crash
			// between create and start): keep it for Start.
			if status(rec) != StatusCreated && status(rec) != StatusExited {
				_, err := s.updateState(ns, rec.ID, func(cs *metadata.ContainerState) { cs.Status = StatusCreated })
				return err
			}
			return nil
		default: // stopped
			if st.Exit != nil && status(rec) == StatusRunning {
				s.recordExit(c, exitStatus(st.Exit), true, "")
			}
			if err := s.dropShim(ctx, c, rec, false); err != nil {
				return err
			}
		}
	case client.ErrGone(err):
		if status(rec) == StatusRunning || status(rec) == StatusPaused {
			if exit, err := cl.ReadExit(); err == nil {
				log.Info("the container exited while skiffd was down", "code", exit.Code)
				s.recordExit(c, exitStatus(exit), true, "")
			} else {
				log.Warn("the container's shim died and left no exit status; killing it through the runtime")
				s.recordExit(c, s.reapUnwatched(c), false, "")
			}
		}
		if err := s.dropShim(ctx, c, rec, true); err != nil {
			return err
		}
	default:
		return err
	}
	rec, err = s.cfg.DB.GetContainer(ns, rec.ID)
	if err != nil {
		return err
	}
	if decodeConfig(rec).AutoRemove && status(rec) == StatusExited {
		log.Info("removing an exited --rm container")
		return s.removeLocked(ctx, c, rec)
	}
	return nil
}
