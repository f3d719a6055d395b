package containers

import (
	"context"
	"fmt"

	"github.com/skiff-containers/skiff/engine/metadata"
	"github.com/skiff-containers/skiff/shim/proto"
)

// Operations on a container's processes, checked against its status.
const (
	opExec    = "exec"
	opPause   = "pause"
	opUnpause = "unpause"
	opTop     = "top"
)

// allowedProcess is allowed for exec, pause and unpause.
func allowedProcess(op, status string) (bool, string) {
	switch op {
	case opExec, opPause:
		return status == StatusRunning, ""
	case opUnpause:
		return status == StatusPaused, ""
	}
	return false, ""
}

// processMessage is docker's wording for a refused exec, pause or
// unpause.
func (e *StateError) processMessage() (string, bool) {
	switch e.Op {
	case opExec:
		if e.Status == StatusPaused {
			return fmt.Sprintf("container %s is paused, unpause the container before exec", e.ID), true
		}
		return fmt.Sprintf("container %s is not running", e.ID), true
	case opPause:
		if e.Status == StatusPaused {
			return fmt.Sprintf("container %s is already paused", e.ID), true
		}
		return fmt.Sprintf("container %s is not running", e.ID), true
	case opUnpause:
		return fmt.Sprintf("container %s is not paused", e.ID), true
	case opTop:
		return fmt.Sprintf("container %s is not running", e.ID), true
	}
	return "", false
}

// runningStatus is the container status of a shim's status of a
// container that runs: paused or running.
func runningStatus(shimStatus string) string {
	if shimStatus == proto.StatusPaused {
		return StatusPaused
	}
	return StatusRunning
}

// Pause freezes every process of the running container (the runtime's
// pause, through its shim); its status becomes paused. A container that
// does not run, or is paused already, is an errdefs.ErrFailedPrecondition.
func (s *Service) Pause(ctx context.Context, ns, idOrName string) (Container, error) {
	return s.setPaused(ctx, ns, idOrName, true)
}

// Unpause thaws a paused container; its status becomes running again.
func (s *Service) Unpause(ctx context.Context, ns, idOrName string) (Container, error) {
	return s.setPaused(ctx, ns, idOrName, false)
}

func (s *Service) setPaused(ctx context.Context, ns, idOrName string, pause bool) (Container, error) {
	op, verb, want := opUnpause, "unpause", StatusRunning
	if pause {
		op, verb, want = opPause, "pause", StatusPaused
	}
	c, rec, err := s.lock(ns, idOrName)
	if err != nil {
		return Container{}, err
	}
	defer c.op.Unlock()
	if err := check(idOrName, op, status(rec)); err != nil {
		return Container{}, err
	}
	cl := c.getShim()
	if cl == nil {
		return Container{}, fmt.Errorf("%s container %s: no shim holds it; restart skiffd to recover it", verb, idOrName)
	}
	if pause {
		err = cl.Pause(ctx)
	} else {
		err = cl.Resume(ctx)
	}
	if err != nil {
		return Container{}, fmt.Errorf("%s container %s: %w", verb, idOrName, err)
	}
	rec, err = s.updateState(ns, rec.ID, func(st *metadata.ContainerState) {
		if st.Status == StatusRunning || st.Status == StatusPaused {
			st.Status = want
		}
	})
	if err != nil {
		return Container{}, fmt.Errorf("%s container %s: record its status: %w", verb, idOrName, err)
	}
	s.log.Info("container "+verb+"d", "namespace", ns, "id", rec.ID)
	s.publish(ns, rec.ID, verb, rec, nil) // docker's pause and unpause events
	return s.view(ns, rec), nil
}
