package containers

import (
	"context"
	"fmt"

	"github.com/skiff-containers/skiff/errdefs"
	"github.com/skiff-containers/skiff/shim/client"
)

// Attachment is a live attach to a container's stdio.
type Attachment struct {
	a   *client.Attachment
	cl  *client.Client
	ref string
}

// Attach streams the container's output from now on (earlier output is in
// its log) to o.Stdout and o.Stderr and, if o.Stdin is set, sends input
// (the container must have been created with OpenStdin). A created
// container can be attached to before it starts: its shim is spawned (the
// runtime's create), so that nothing it writes is missed; a failure to
// create it is returned as Start would (with docker's exit code). An
// exited container is an errdefs.ErrFailedPrecondition.
func (s *Service) Attach(ctx context.Context, ns, idOrName string, o AttachOptions) (*Attachment, error) {
	c, rec, err := s.lock(ns, idOrName)
	if err != nil {
		return nil, err
	}
	defer c.op.Unlock()
	if err := check(idOrName, opAttach, status(rec)); err != nil {
		return nil, err
	}
	cc := decodeConfig(rec)
	if o.Stdin != nil && !cc.OpenStdin {
		return nil, fmt.Errorf("attach to container %s: stdin requested but the container was created without -i (OpenStdin): %w", idOrName, errdefs.ErrFailedPrecondition)
	}
	cl := c.getShim()
	if cl == nil {
		if status(rec) != StatusCreated {
			return nil, fmt.Errorf("attach to container %s: no shim holds it; restart skiffd to recover it", idOrName)
		}
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), opTimeout)
		cl, err = s.ensureShim(sctx, c, rec)
		cancel()
		if err != nil {
			err, _, _ = startError("attach to", idOrName, err)
			return nil, err
		}
	}
	a, err := cl.Attach(ctx, client.AttachOptions{
		Stdin:           o.Stdin,
		CloseStdinOnEOF: o.CloseStdinOnEOF,
		Stdout:          o.Stdout,
		Stderr:          o.Stderr,
	})
	if err != nil {
		return nil, fmt.Errorf("attach to container %s: %w", idOrName, err)
	}
	s.publish(ns, rec.ID, evAttach, rec, nil)
	return &Attachment{a: a, cl: cl, ref: idOrName}, nil
}

// Resize sets the container's terminal size.
func (a *Attachment) Resize(width, height uint16) error { return a.a.Resize(width, height) }

// CloseStdin closes the container's stdin (with a terminal: sends ^D).
func (a *Attachment) CloseStdin(ctx context.Context) error {
	if err := a.cl.CloseStdin(ctx); err != nil {
		return fmt.Errorf("close the stdin of container %s: %w", a.ref, err)
	}
	return nil
}

// Wait blocks until the stream ends. It returns the exit status if the
// container exited while attached, nil if the stream ended otherwise
// (Close, or the shim went away).
func (a *Attachment) Wait(ctx context.Context) (*ExitStatus, error) {
	e, err := a.a.Wait(ctx)
	if err != nil {
		return nil, fmt.Errorf("attach to container %s: %w", a.ref, err)
	}
	if e == nil {
		return nil, nil
	}
	st := exitStatus(e)
	return &st, nil
}

// Close ends the stream; the container is not affected.
func (a *Attachment) Close() error { return a.a.Close() }
