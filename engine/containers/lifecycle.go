package containers

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/skiff-containers/skiff/engine/metadata"
	"github.com/skiff-containers/skiff/errdefs"
	"github.com/skiff-containers/skiff/shim/client"
	"github.com/skiff-containers/skiff/shim/proto"
)

func (s *Service) runtimeOf(ns string, rec metadata.Container) ociCLI {
	rt := rec.Runtime
	if rt == "" {
		rt = s.cfg.DefaultRuntime
	}
	bin, err := s.lookRuntime(rt)
	if err != nil {
		bin = rt // the error shows when it runs
	}
	return ociCLI{bin: bin, root: s.runtimeRoot(rt, ns)}
}

// lookRuntime finds the binary of the OCI runtime name: a path as it is;
// the default runtime's name as the default runtime; else on PATH; else
// next to the default runtime (the binaries skiff installs together).
func (s *Service) lookRuntime(name string) (string, error) {
	if strings.Contains(name, "/") {
		if st, err := os.Stat(name); err != nil || st.IsDir() || st.Mode()&0o111 == 0 {
			return "", fmt.Errorf("runtime %q: not an executable file: %w", name, errdefs.ErrInvalidArgument)
		}
		return name, nil
	}
	if name == filepath.Base(s.cfg.DefaultRuntime) && strings.Contains(s.cfg.DefaultRuntime, "/") {
		return s.cfg.DefaultRuntime, nil
	}
	if p, err := exec.LookPath(name); err == nil {
		return p, nil
	}
	if dir := filepath.Dir(s.cfg.DefaultRuntime); dir != "." {
		p := filepath.Join(dir, name)
		if st, err := os.Stat(p); err == nil && !st.IsDir() && st.Mode()&0o111 != 0 {
			return p, nil
		}
	}
	return "", fmt.Errorf("runtime %q: not found on PATH: install it or give its path (skiffd knows skiff-runtime, runc, crun): %w", name, errdefs.ErrInvalidArgument)
}

// Start starts the container. Starting a running container does nothing
// (docker's answer is "not modified"); starting an exited one creates it
// anew in the runtime with a fresh shim, on the same bundle and snapshot,
// and appends to its log. When the runtime cannot run the container's
// program the error carries docker's exit code (errdefs.ExitCode): 127 if
// it does not exist, 126 if it cannot be executed; the failure is recorded
// (Container.Error, ExitCode) and, with AutoRemove, the container removed.
func (s *Service) Start(ctx context.Context, ns, idOrName string) (Container, error) {
	c, rec, err := s.lock(ns, idOrName)
	if err != nil {
		return Container{}, err
	}
	defer c.op.Unlock()
	if st := status(rec); st == StatusRunning {
		return s.view(ns, rec), nil
	}
	if err := check(idOrName, opStart, status(rec)); err != nil {
		return Container{}, err
	}
	s.resetRestart(c)
	rec, err = s.startLocked(ctx, c, rec, idOrName)
	if err != nil {
		return Container{}, err
	}
	return s.view(ns, rec), nil
}

// startLocked starts c, whose op lock the caller holds.
func (s *Service) startLocked(ctx context.Context, c *ctr, rec metadata.Container, ref string) (metadata.Container, error) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), opTimeout)
	defer cancel()
	cl, err := s.ensureShim(ctx, c, rec)
	startedAt := time.Now().UTC() // before: a quick exit must not precede it
	if err == nil {
		if err = cl.Start(ctx); err != nil {
			if derr := s.dropShim(ctx, c, rec, true); derr != nil {
				s.log.Warn("start failed; delete its shim", "namespace", c.ns, "id", c.id, "err", derr)
			}
		}
	}
	if err != nil {
		return rec, s.startFailed(ctx, c, rec, ref, err)
	}
	pid := 0
	if st, err := cl.State(ctx); err == nil {
		pid = st.Pid
	}
	rec, err = s.updateState(c.ns, c.id, func(st *metadata.ContainerState) {
		st.Status = StatusRunning
		st.Pid = pid
		st.StartedAt = startedAt
		st.FinishedAt = time.Time{}
		st.ExitCode = 0
		st.ExitKnown = false
		st.Error = ""
	})
	if err != nil {
		// The container runs; the watcher records its exit all the same.
		s.log.Error("record a container's start", "namespace", c.ns, "id", c.id, "err", err)
	}
	s.publish(c.ns, c.id, evStart, rec, nil) // before the watcher can publish its die
	s.watch(c, cl)
	s.log.Info("container started", "namespace", c.ns, "id", c.id, "pid", pid)
	return rec, err
}

// startFailed records why c could not start, removes it if it has
// AutoRemove, and returns the error for the caller, with docker's exit
// code.
func (s *Service) startFailed(ctx context.Context, c *ctr, rec metadata.Container, ref string, cause error) error {
	err, code, why := startError("start", ref, cause)
	recorded := code
	if recorded == 0 {
		recorded = ExitUnknown
	}
	if _, uerr := s.updateState(c.ns, c.id, func(st *metadata.ContainerState) {
		st.Error = why
		st.ExitCode = recorded
		st.ExitKnown = code != 0
		st.Pid = 0
	}); uerr != nil {
		s.log.Warn("record a failed start", "namespace", c.ns, "id", c.id, "err", uerr)
	}
	c.recordLastExit(recorded)
	if decodeConfig(rec).AutoRemove {
		if rerr := s.removeLocked(ctx, c, rec); rerr != nil {
			return fmt.Errorf("%w (and removing it failed: %v)", err, rerr)
		}
	}
	return err
}

// startError is the error of a failed start (or create in the runtime):
// when the runtime could not run the container's program, docker's exit
// code (127 or 126), its class (invalid argument) and a short message;
// else cause as it is. why is what to record as the container's error.
func startError(op, ref string, cause error) (err error, code int, why string) {
	code = startExitCode(cause)
	if code == 0 {
		return fmt.Errorf("%s container %s: %w", op, ref, cause), 0, cause.Error()
	}
	why = programError(cause.Error())
	return errdefs.WithExitCode(fmt.Errorf("%s container %s: cannot run its program: %s: %w", op, ref, why, errdefs.ErrInvalidArgument), code), code, why
}

func (c *ctr) recordLastExit(code int) {
	c.mu.Lock()
	c.lastExit, c.hasLastExit = code, true
	c.mu.Unlock()
}

// ensureShim returns the shim that holds c created in the runtime,
// spawning one (the runtime's create) if none does. The caller holds c.op.
func (s *Service) ensureShim(ctx context.Context, c *ctr, rec metadata.Container) (*client.Client, error) {
	if cl := c.getShim(); cl != nil {
		st, err := cl.State(ctx)
		if err == nil && st.Status == proto.StatusCreated {
			return cl, nil
		}
		// Left from an earlier run (its watcher has not cleaned up yet),
		// or dead: delete it first.
		if err := s.dropShim(ctx, c, rec, false); err != nil {
			return nil, fmt.Errorf("delete the shim of its last run: %w", err)
		}
	}
	if err := s.ensureBundle(ctx, c.ns, rec); err != nil {
		return nil, err
	}
	rt := s.runtimeOf(c.ns, rec)
	// State a crash may have left in the runtime or the shim's directory.
	if err := rt.forceDelete(ctx, c.id); err != nil {
		return nil, fmt.Errorf("delete what the runtime kept of an earlier run: %w", err)
	}
	shimDir := s.shimDir(c.ns, c.id)
	if err := os.RemoveAll(shimDir); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(rt.root, 0o700); err != nil {
		return nil, err
	}
	netUndo, err := s.setupNetwork(ctx, c, rec)
	if err != nil {
		return nil, err
	}
	cc := decodeConfig(rec)
	cl, ready, err := client.Spawn(ctx, client.Options{
		Binary:      s.cfg.ShimBinary,
		ID:          c.id,
		Bundle:      s.bundleDir(c.ns, c.id),
		Runtime:     rt.bin,
		RuntimeRoot: rt.root,
		StateDir:    shimDir,
		LogPath:     rec.LogPath,
		Terminal:    cc.Tty,
		Stdin:       cc.OpenStdin,
	})
	if err != nil {
		os.RemoveAll(shimDir)
		netUndo()
		return nil, err
	}
	s.log.Debug("shim spawned", "namespace", c.ns, "id", c.id, "shim_pid", ready.ShimPid, "pid", ready.Pid)
	c.setShim(cl)
	return cl, nil
}

// dropShim deletes the container in the runtime through its shim (which
// then exits), or directly through the runtime if the shim is gone, and
// removes the shim's state directory. force kills a running container.
// The caller holds c.op.
func (s *Service) dropShim(ctx context.Context, c *ctr, rec metadata.Container, force bool) error {
	cl := c.getShim()
	if cl == nil {
		cl = client.New(c.id, s.shimDir(c.ns, c.id))
	}
	st, err := cl.State(ctx)
	switch {
	case err == nil:
		if _, err := cl.Delete(ctx, force || st.Status != proto.StatusStopped); err != nil && !client.ErrGone(err) {
			return err
		}
		if !waitGone(st.ShimPid, shimExitWait) {
			s.log.Warn("shim still running after delete", "namespace", c.ns, "id", c.id, "shim_pid", st.ShimPid)
		}
	case client.ErrGone(err):
		if err := s.runtimeOf(c.ns, rec).forceDelete(ctx, c.id); err != nil {
			return err
		}
	default:
		return err
	}
	c.setShim(nil)
	if err := os.RemoveAll(s.shimDir(c.ns, c.id)); err != nil {
		return err
	}
	return s.teardownNetwork(ctx, c)
}

// watch starts the watcher of c's run held by cl: it waits for the exit,
// records it, deletes the container in the runtime, and removes an
// AutoRemove container.
func (s *Service) watch(c *ctr, cl *client.Client) {
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		exit, known := s.waitExit(c, cl)
		if s.ctx.Err() != nil {
			return // closing: the next service's Recover takes over
		}
		s.recordExit(c, exit, known, "")
		c.op.Lock()
		defer c.op.Unlock()
		if c.getShim() != cl {
			return // another operation dealt with it meanwhile
		}
		ctx, cancel := context.WithTimeout(context.Background(), opTimeout)
		defer cancel()
		rec, err := s.cfg.DB.GetContainer(c.ns, c.id)
		if err != nil {
			if !errdefs.IsNotFound(err) {
				s.log.Error("after exit: read record", "namespace", c.ns, "id", c.id, "err", err)
			}
			return
		}
		if err := s.dropShim(ctx, c, rec, false); err != nil {
			s.log.Error("after exit: delete the container in the runtime", "namespace", c.ns, "id", c.id, "err", err)
		}
		if decodeConfig(rec).AutoRemove {
			if err := s.removeLocked(ctx, c, rec); err != nil {
				s.log.Error("after exit: remove (--rm)", "namespace", c.ns, "id", c.id, "err", err)
			}
		} else {
			s.applyRestartPolicy(c, rec, exit)
		}
	}()
}

// waitExit waits through cl for the container's exit. known is false when
// the shim died without recording it.
func (s *Service) waitExit(c *ctr, cl *client.Client) (ExitStatus, bool) {
	for {
		exit, err := cl.Wait(s.ctx)
		if err == nil {
			return exitStatus(exit), true
		}
		if s.ctx.Err() != nil {
			return ExitStatus{}, false
		}
		if client.ErrGone(err) {
			if exit, err := cl.ReadExit(); err == nil {
				return exitStatus(exit), true
			}
			s.log.Warn("shim died without recording an exit", "namespace", c.ns, "id", c.id)
			return s.reapUnwatched(c), false
		}
		s.log.Warn("wait for a container's exit", "namespace", c.ns, "id", c.id, "err", err)
		select {
		case <-time.After(watchRetryWait):
		case <-s.ctx.Done():
			return ExitStatus{}, false
		}
	}
}

// reapUnwatched kills and deletes, through the runtime, a container whose
// shim died before it (nobody reads its output nor records its exit).
func (s *Service) reapUnwatched(c *ctr) ExitStatus {
	ctx, cancel := context.WithTimeout(context.Background(), opTimeout)
	defer cancel()
	rec, err := s.cfg.DB.GetContainer(c.ns, c.id)
	if err == nil {
		rt := s.runtimeOf(c.ns, rec)
		if st, err := rt.state(ctx, c.id); err == nil && st != "stopped" {
			rt.run(ctx, "kill", c.id, "KILL")
		}
		if err := rt.forceDelete(ctx, c.id); err != nil {
			s.log.Warn("delete a container whose shim died", "namespace", c.ns, "id", c.id, "err", err)
		}
	}
	return ExitStatus{Code: ExitUnknown, At: time.Now().UTC()}
}

func exitStatus(e *proto.Exit) ExitStatus {
	return ExitStatus{Code: e.Code, Signal: e.Signal, At: e.ExitedAt.UTC()}
}

// recordExit stores an exit of c and wakes its waiters. A container being
// removed keeps its status.
func (s *Service) recordExit(c *ctr, e ExitStatus, known bool, why string) {
	if e.At.IsZero() {
		e.At = time.Now().UTC()
	}
	if !known && why == "" {
		why = "the container's shim died before it and left no exit status; it was killed and deleted through the runtime"
	}
	rec, err := s.updateState(c.ns, c.id, func(st *metadata.ContainerState) {
		if st.Status != StatusRemoving {
			st.Status = StatusExited
		}
		st.Pid = 0
		st.ExitCode = e.Code
		st.ExitKnown = known
		st.FinishedAt = e.At
		if !known {
			st.Error = why
		}
	})
	if err != nil && !errdefs.IsNotFound(err) {
		s.log.Error("record a container's exit", "namespace", c.ns, "id", c.id, "err", err)
	}
	s.publishDie(c.ns, c.id, rec, e)
	c.mu.Lock()
	c.lastExit, c.hasLastExit = e.Code, true
	close(c.exited)
	c.exited = make(chan struct{})
	c.mu.Unlock()
	s.log.Info("container exited", "namespace", c.ns, "id", c.id, "code", e.Code, "known", known)
}

// stopTimeout is the container's default stop timeout.
func stopTimeout(cc CreateConfig) time.Duration {
	if cc.StopTimeout != nil && *cc.StopTimeout >= 0 {
		return time.Duration(*cc.StopTimeout) * time.Second
	}
	return defaultStop
}

// Stop sends the container's stop signal, waits up to timeout (negative:
// the container's default, else 10s) for it to exit, then kills it.
// Stopping a container that does not run does nothing, as docker's stop.
func (s *Service) Stop(ctx context.Context, ns, idOrName string, timeout time.Duration) (Container, error) {
	return s.StopWithSignal(ctx, ns, idOrName, timeout, "")
}

// StopWithSignal is Stop with signal (a name or number) sent instead of
// the container's stop signal; "" means the container's (docker stop -s).
func (s *Service) StopWithSignal(ctx context.Context, ns, idOrName string, timeout time.Duration, signal string) (Container, error) {
	if signal != "" {
		if _, err := parseSignal(signal, syscall.SIGTERM); err != nil {
			return Container{}, fmt.Errorf("stop container %s: %w", idOrName, err)
		}
	}
	c, rec, err := s.lock(ns, idOrName)
	if err != nil {
		return Container{}, err
	}
	defer c.op.Unlock()
	rec = s.stopRestarting(c, rec)
	if !s.view(ns, rec).Running() {
		return s.view(ns, rec), nil
	}
	if err := check(idOrName, opStop, status(rec)); err != nil {
		return Container{}, err
	}
	rec, err = s.stopLocked(ctx, c, rec, idOrName, timeout, signal)
	if err != nil {
		return Container{}, err
	}
	return s.view(ns, rec), nil
}

func (s *Service) stopLocked(ctx context.Context, c *ctr, rec metadata.Container, ref string, timeout time.Duration, signal string) (metadata.Container, error) {
	if signal == "" {
		signal = rec.StopSignal
	}
	sig, err := parseSignal(signal, syscall.SIGTERM)
	if err != nil {
		sig = syscall.SIGTERM
	}
	if timeout < 0 {
		timeout = stopTimeout(decodeConfig(rec))
	}
	exited := c.exitChan()
	if cur, err := s.cfg.DB.GetContainer(c.ns, c.id); err != nil || !s.view(c.ns, cur).Running() {
		return cur, err
	}
	cl := c.getShim()
	if cl == nil {
		return rec, fmt.Errorf("stop container %s: no shim holds it; restart skiffd to recover it", ref)
	}
	s.markManualStop(c)
	// Each kill event goes out before its signal: published after, it could
	// follow the die event of the exit the signal caused.
	s.publishKill(c.ns, rec, sig)
	if err := cl.Kill(ctx, sig, false); err != nil && !client.ErrGone(err) {
		s.log.Warn("stop: send the stop signal", "namespace", c.ns, "id", c.id, "signal", sig, "err", err)
	}
	select {
	case <-exited:
	case <-time.After(timeout):
		s.log.Info("stop: timed out; killing", "namespace", c.ns, "id", c.id, "timeout", timeout)
		s.publishKill(c.ns, rec, syscall.SIGKILL) // docker's kill event of the escalation
		if err := cl.Kill(ctx, syscall.SIGKILL, true); err != nil && !client.ErrGone(err) {
			s.log.Warn("stop: SIGKILL", "namespace", c.ns, "id", c.id, "err", err)
		}
		select {
		case <-exited:
		case <-ctx.Done():
			return rec, fmt.Errorf("stop container %s: %w", ref, ctx.Err())
		}
	case <-ctx.Done():
		return rec, fmt.Errorf("stop container %s: %w", ref, ctx.Err())
	}
	s.publish(c.ns, c.id, evStop, rec, nil)
	return s.cfg.DB.GetContainer(c.ns, c.id)
}

// Kill sends signal (a name such as "KILL" or "SIGTERM", or a number; ""
// is SIGKILL) to the container's process. With SIGKILL it waits, briefly,
// for the exit to be recorded. A container that does not run is an
// errdefs.ErrFailedPrecondition.
func (s *Service) Kill(ctx context.Context, ns, idOrName, signal string) (Container, error) {
	sig, err := parseSignal(signal, syscall.SIGKILL)
	if err != nil {
		return Container{}, fmt.Errorf("kill container %s: %w", idOrName, err)
	}
	c, rec, err := s.lock(ns, idOrName)
	if err != nil {
		return Container{}, err
	}
	defer c.op.Unlock()
	exited := c.exitChan()
	if err := check(idOrName, opKill, status(rec)); err != nil {
		return Container{}, err
	}
	cl := c.getShim()
	if cl == nil {
		return Container{}, fmt.Errorf("kill container %s: no shim holds it; restart skiffd to recover it", idOrName)
	}
	if isManualKill(sig, rec) {
		s.markManualStop(c)
	}
	// Before the signal, so that it precedes the die event of the exit it
	// causes (docker's order).
	s.publishKill(ns, rec, sig)
	if err := cl.Kill(ctx, sig, false); err != nil {
		if client.ErrGone(err) {
			return Container{}, &StateError{ID: idOrName, Op: opKill, Status: StatusExited}
		}
		return Container{}, fmt.Errorf("kill container %s: %w", idOrName, err)
	}
	if sig == syscall.SIGKILL {
		select {
		case <-exited:
		case <-time.After(killWait):
		case <-ctx.Done():
		}
	}
	rec, err = s.cfg.DB.GetContainer(ns, rec.ID)
	if err != nil {
		return Container{}, err
	}
	return s.view(ns, rec), nil
}

// Restart stops the container if it runs (as Stop, with timeout) and
// starts it.
func (s *Service) Restart(ctx context.Context, ns, idOrName string, timeout time.Duration) (Container, error) {
	c, rec, err := s.lock(ns, idOrName)
	if err != nil {
		return Container{}, err
	}
	defer c.op.Unlock()
	if status(rec) == StatusRunning {
		if rec, err = s.stopLocked(ctx, c, rec, idOrName, timeout, ""); err != nil {
			return Container{}, err
		}
	}
	if err := check(idOrName, opStart, status(rec)); err != nil {
		return Container{}, err
	}
	s.resetRestart(c)
	rec, err = s.startLocked(ctx, c, rec, idOrName)
	if err != nil {
		return Container{}, err
	}
	s.publish(ns, rec.ID, evRestart, rec, nil)
	return s.view(ns, rec), nil
}

// Resize sets the size of the container's terminal.
func (s *Service) Resize(ctx context.Context, ns, idOrName string, w, h uint16) error {
	rec, err := s.resolve(ns, idOrName)
	if err != nil {
		return err
	}
	if err := check(idOrName, opResize, status(rec)); err != nil {
		return err
	}
	cl := s.ctr(ns, rec.ID).getShim()
	if cl == nil {
		return &StateError{ID: idOrName, Op: opResize, Status: status(rec)}
	}
	if err := cl.Resize(ctx, w, h); err != nil {
		return fmt.Errorf("resize container %s: %w", idOrName, err)
	}
	return nil
}
