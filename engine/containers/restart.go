package containers

import (
	"context"
	"fmt"
	"syscall"
	"time"

	"github.com/skiff-containers/skiff/engine/metadata"
	"github.com/skiff-containers/skiff/errdefs"
)

// Docker's restart backoff (moby restartmanager): the first restart after
// 100ms, each next one after twice the last delay, at most a minute; a
// container that ran for 10 seconds or more starts again from 100ms.
const (
	restartDelayMin   = 100 * time.Millisecond
	restartDelayMax   = time.Minute
	restartResetAfter = 10 * time.Second
)

// Restart policy names.
const (
	policyNo            = "no"
	policyAlways        = "always"
	policyOnFailure     = "on-failure"
	policyUnlessStopped = "unless-stopped"
)

// validatePolicy checks a restart policy (create and update) against
// docker's rules.
func validatePolicy(what string, p RestartPolicy, autoRemove bool) error {
	switch p.Name {
	case "", policyNo, policyAlways, policyOnFailure, policyUnlessStopped:
	default:
		return fmt.Errorf("%s: unknown restart policy %q (want no, always, on-failure or unless-stopped): %w", what, p.Name, errdefs.ErrInvalidArgument)
	}
	if p.MaxRetries < 0 || p.MaxRetries > 0 && p.Name != policyOnFailure {
		return fmt.Errorf("%s: maximum retry count %d is only valid, and not negative, with the on-failure restart policy: %w", what, p.MaxRetries, errdefs.ErrInvalidArgument)
	}
	if autoRemove && p.Name != "" && p.Name != policyNo {
		return fmt.Errorf("%s: conflicting options: --restart %s and --rm (AutoRemove): %w", what, p.Name, errdefs.ErrInvalidArgument)
	}
	return nil
}

// shouldRestart decides, as docker's restart manager, whether a container
// that exited with code after count restarts is restarted by policy p.
// A container a user stopped is not.
func shouldRestart(p metadata.RestartPolicy, code, count int, manuallyStopped bool) bool {
	if manuallyStopped {
		return false
	}
	switch p.Name {
	case policyAlways, policyUnlessStopped:
		return true
	case policyOnFailure:
		return code != 0 && (p.MaxRetries == 0 || count < p.MaxRetries)
	}
	return false
}

// shouldRestartAtStart decides whether the engine, starting, starts a
// container that is not running: always does even after a user's stop
// (docker's rule), unless-stopped unless a user stopped it, on-failure as
// after an exit.
func shouldRestartAtStart(p metadata.RestartPolicy, code, count int, manuallyStopped bool) bool {
	if p.Name == policyAlways {
		return true
	}
	return shouldRestart(p, code, count, manuallyStopped)
}

// nextRestartDelay returns the delay before the next restart of a
// container that ran for ran, and remembers it.
func (c *ctr) nextRestartDelay(ran time.Duration) time.Duration {
	c.mu.Lock()
	defer c.mu.Unlock()
	if ran >= restartResetAfter {
		c.restartDelay = 0
	}
	switch {
	case c.restartDelay == 0:
		c.restartDelay = restartDelayMin
	case c.restartDelay < restartDelayMax:
		c.restartDelay *= 2
	}
	c.restartDelay = min(c.restartDelay, restartDelayMax)
	return c.restartDelay
}

func (c *ctr) resetRestartDelay() {
	c.mu.Lock()
	c.restartDelay = 0
	c.mu.Unlock()
}

// applyRestartPolicy is called by the watcher, holding c.op, once an exit
// of c is recorded and the container deleted in the runtime: if its
// policy says so, the container becomes "restarting" and is started again
// after the backoff delay.
func (s *Service) applyRestartPolicy(c *ctr, rec metadata.Container, exit ExitStatus) {
	if s.ctx.Err() != nil {
		return // closing: Recover applies the policy at the next start
	}
	st := rec.State
	if status(rec) != StatusExited || !shouldRestart(rec.RestartPolicy, st.ExitCode, st.RestartCount, st.ManuallyStopped) {
		c.resetRestartDelay()
		return
	}
	ran := exit.At.Sub(st.StartedAt)
	if st.StartedAt.IsZero() || exit.At.IsZero() {
		ran = 0
	}
	delay := c.nextRestartDelay(ran)
	if _, err := s.updateState(c.ns, c.id, func(st *metadata.ContainerState) { st.Status = StatusRestarting }); err != nil {
		s.log.Error("restart policy: record the restarting status", "namespace", c.ns, "id", c.id, "err", err)
		return
	}
	s.log.Info("restart policy: restarting the container", "namespace", c.ns, "id", c.id, "policy", rec.RestartPolicy.Name,
		"exit_code", st.ExitCode, "restarts", st.RestartCount, "delay", delay)
	s.scheduleRestart(c, delay, true)
}

// scheduleRestart starts c after delay if it is still "restarting" then
// (a stop or a removal meanwhile cancels it), counting the restart in its
// RestartCount if count.
func (s *Service) scheduleRestart(c *ctr, delay time.Duration, count bool) {
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		t := time.NewTimer(delay)
		select {
		case <-t.C:
		case <-s.ctx.Done():
			t.Stop()
			return // the record stays "restarting": the next Recover restarts it
		}
		c.op.Lock()
		defer c.op.Unlock()
		rec, err := s.cfg.DB.GetContainer(c.ns, c.id)
		if err != nil || status(rec) != StatusRestarting {
			return
		}
		rec, err = s.updateState(c.ns, c.id, func(st *metadata.ContainerState) {
			if count {
				st.RestartCount++
			}
			st.ManuallyStopped = false
		})
		if err != nil {
			s.log.Error("restart policy: record the restart", "namespace", c.ns, "id", c.id, "err", err)
			return
		}
		ctx, cancel := context.WithTimeout(s.ctx, opTimeout)
		defer cancel()
		if _, err := s.startLocked(ctx, c, rec, c.id); err != nil {
			s.log.Error("restart policy: the restart failed; the container stays exited", "namespace", c.ns, "id", c.id, "err", err)
			if _, uerr := s.updateState(c.ns, c.id, func(st *metadata.ContainerState) {
				if st.Status == StatusRestarting {
					st.Status = StatusExited
				}
			}); uerr != nil && !errdefs.IsNotFound(uerr) {
				s.log.Error("restart policy: record the failed restart", "namespace", c.ns, "id", c.id, "err", uerr)
			}
		}
	}()
}

// markManualStop records that a user stopped c (stop, or kill with
// SIGKILL or its stop signal), so that its restart policy leaves it
// stopped. The caller holds c.op.
func (s *Service) markManualStop(c *ctr) {
	if _, err := s.updateState(c.ns, c.id, func(st *metadata.ContainerState) { st.ManuallyStopped = true }); err != nil {
		s.log.Warn("record a user's stop", "namespace", c.ns, "id", c.id, "err", err)
	}
}

// isManualKill reports whether a kill with sig counts as a user's stop:
// SIGKILL or the container's stop signal, as docker's.
func isManualKill(sig syscall.Signal, rec metadata.Container) bool {
	stop, err := parseSignal(rec.StopSignal, syscall.SIGTERM)
	return sig == syscall.SIGKILL || err == nil && sig == stop
}

// resetRestart is a user's start or restart of c: the restart count and
// backoff start again, and the user's earlier stop is forgotten (docker's
// ResetRestartManager). The caller holds c.op.
func (s *Service) resetRestart(c *ctr) {
	c.resetRestartDelay()
	if _, err := s.updateState(c.ns, c.id, func(st *metadata.ContainerState) {
		st.RestartCount = 0
		st.ManuallyStopped = false
	}); err != nil {
		s.log.Warn("reset the restart count", "namespace", c.ns, "id", c.id, "err", err)
	}
}

// stopRestarting is a user's stop of a container waiting to be restarted
// by its policy: it stays exited. It returns the record as it is then.
// The caller holds c.op.
func (s *Service) stopRestarting(c *ctr, rec metadata.Container) metadata.Container {
	if status(rec) != StatusRestarting {
		return rec
	}
	out, err := s.updateState(c.ns, c.id, func(st *metadata.ContainerState) {
		st.Status = StatusExited
		st.ManuallyStopped = true
	})
	if err != nil {
		s.log.Warn("cancel a pending restart", "namespace", c.ns, "id", c.id, "err", err)
		return rec
	}
	c.resetRestartDelay()
	return out
}

// restartAtStart applies the restart policies when the engine starts
// (after Recover has recorded what happened while it was down): every
// container of namespaces nss that is not running, or was waiting to be
// restarted, and whose policy says so is started, in the background. One
// that exited by itself counts a restart.
func (s *Service) restartAtStart(nss []string) {
	for _, ns := range nss {
		recs, err := s.cfg.DB.ListContainers(ns, func(r metadata.Container) bool {
			return status(r) == StatusExited || status(r) == StatusRestarting
		})
		if err != nil {
			s.log.Error("restart policies at start: list containers", "namespace", ns, "err", err)
			continue
		}
		for _, rec := range recs {
			st := rec.State
			if !shouldRestartAtStart(rec.RestartPolicy, st.ExitCode, st.RestartCount, st.ManuallyStopped) {
				continue
			}
			c := s.ctr(ns, rec.ID)
			c.op.Lock()
			_, err := s.updateState(ns, rec.ID, func(st *metadata.ContainerState) { st.Status = StatusRestarting })
			c.op.Unlock()
			if err != nil {
				s.log.Error("restart policies at start: record the restarting status", "namespace", ns, "id", rec.ID, "err", err)
				continue
			}
			s.log.Info("restart policy: starting the container as the engine starts", "namespace", ns, "id", rec.ID, "policy", rec.RestartPolicy.Name)
			s.scheduleRestart(c, 0, !st.ManuallyStopped)
		}
	}
}
