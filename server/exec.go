package server

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"

	skiffv1 "github.com/skiff-containers/skiff/api/skiff/v1"
	"github.com/skiff-containers/skiff/engine/containers"
	"github.com/skiff-containers/skiff/errdefs"
)

// Exec serves the bidi exec stream: the first client message must be an
// ExecStart. The server streams the process's output and ends with a
// frame carrying its exit code; a detached exec ends the stream once the
// process runs. A client that goes away leaves the process running.
func (s *containersServer) Exec(stream skiffv1.Containers_ExecServer) error {
	ctx := stream.Context()
	ns, err := Namespace(ctx)
	if err != nil {
		return err
	}
	first, err := stream.Recv()
	if err != nil {
		return err
	}
	start := first.GetStart()
	if start == nil {
		return fmt.Errorf("exec: the first message must be an ExecStart: %w", errdefs.ErrInvalidArgument)
	}
	if start.GetPrivileged() {
		return fmt.Errorf("exec in container %s: --privileged is not supported for exec: %w", start.GetId(), errdefs.ErrNotImplemented)
	}
	if start.GetWidth() > 0xffff || start.GetHeight() > 0xffff {
		return fmt.Errorf("exec in container %s: terminal size %dx%d is too large: %w", start.GetId(), start.GetWidth(), start.GetHeight(), errdefs.ErrInvalidArgument)
	}
	var mu sync.Mutex
	o := containers.ExecOptions{
		Cmd:        start.GetCmd(),
		Env:        start.GetEnv(),
		User:       start.GetUser(),
		WorkingDir: start.GetWorkingDir(),
		Tty:        start.GetTty(),
		Detach:     start.GetDetach(),
		Width:      uint16(start.GetWidth()),
		Height:     uint16(start.GetHeight()),
		Stdout:     streamWriter{&mu, stream, skiffv1.Stream_STREAM_STDOUT},
		Stderr:     streamWriter{&mu, stream, skiffv1.Stream_STREAM_STDERR},
	}
	var stdinW *io.PipeWriter
	if start.GetStdin() && !start.GetDetach() {
		var r *io.PipeReader
		r, stdinW = io.Pipe()
		o.Stdin = r
		defer stdinW.Close()
	}
	p, err := s.svc.Exec(ctx, ns, start.GetId(), o)
	if err != nil {
		return err
	}
	defer p.Close()
	if start.GetDetach() {
		return nil
	}

	// Input: until the client ends its side or the call ends. The
	// client's going away (or detaching) is not the end of the input: the
	// process's stdin stays open.
	go relayInput(func() (clientInput, error) {
		in, err := stream.Recv()
		return clientInput{in.GetStdin(), in.GetCloseStdin(), in.GetResize()}, err
	}, stdinW, nil, p.Resize)

	exit, err := p.Wait(ctx)
	if err != nil {
		if ctx.Err() != nil {
			return nil // the client went away
		}
		return err
	}
	if exit == nil {
		if ctx.Err() != nil {
			return nil
		}
		return fmt.Errorf("exec in container %s: the stream ended without the process's exit status (its shim went away?)", start.GetId())
	}
	mu.Lock()
	defer mu.Unlock()
	return stream.Send(&skiffv1.AttachOutput{Exit: &skiffv1.AttachExit{ExitCode: int32(exit.Code)}})
}

func (s *containersServer) Pause(ctx context.Context, req *skiffv1.PauseContainerRequest) (*skiffv1.Container, error) {
	ns, err := Namespace(ctx)
	if err != nil {
		return nil, err
	}
	c, err := s.svc.Pause(ctx, ns, req.GetId())
	if err != nil {
		return nil, err
	}
	return apiContainer(c), nil
}

func (s *containersServer) Unpause(ctx context.Context, req *skiffv1.PauseContainerRequest) (*skiffv1.Container, error) {
	ns, err := Namespace(ctx)
	if err != nil {
		return nil, err
	}
	c, err := s.svc.Unpause(ctx, ns, req.GetId())
	if err != nil {
		return nil, err
	}
	return apiContainer(c), nil
}

func (s *containersServer) Rename(ctx context.Context, req *skiffv1.RenameContainerRequest) (*skiffv1.Container, error) {
	ns, err := Namespace(ctx)
	if err != nil {
		return nil, err
	}
	c, err := s.svc.Rename(ctx, ns, req.GetId(), req.GetName())
	if err != nil {
		return nil, err
	}
	return apiContainer(c), nil
}

func (s *containersServer) Update(ctx context.Context, req *skiffv1.UpdateContainerRequest) (*skiffv1.Container, error) {
	ns, err := Namespace(ctx)
	if err != nil {
		return nil, err
	}
	var o containers.UpdateOptions
	if r := req.GetResources(); r != nil {
		res := engineResources(r)
		o.Resources = &res
	}
	if p := req.GetRestartPolicy(); p != nil {
		o.RestartPolicy = &containers.RestartPolicy{Name: p.GetName(), MaxRetries: int(p.GetMaxRetries())}
	}
	c, err := s.svc.Update(ctx, ns, req.GetId(), o)
	if err != nil {
		return nil, err
	}
	return apiContainer(c), nil
}

func (s *containersServer) Top(ctx context.Context, req *skiffv1.TopRequest) (*skiffv1.TopResponse, error) {
	ns, err := Namespace(ctx)
	if err != nil {
		return nil, err
	}
	titles, rows, err := s.svc.Top(ctx, ns, req.GetId(), req.GetPsArgs())
	if err != nil {
		return nil, err
	}
	out := &skiffv1.TopResponse{Titles: titles}
	for _, r := range rows {
		out.Processes = append(out.Processes, &skiffv1.TopResponse_Row{Fields: r})
	}
	return out, nil
}

func (s *containersServer) Stats(req *skiffv1.StatsRequest, stream skiffv1.Containers_StatsServer) error {
	ctx := stream.Context()
	ns, err := Namespace(ctx)
	if err != nil {
		return err
	}
	return s.svc.Stats(ctx, ns, req.GetId(), req.GetStream(), func(st containers.Stats) error {
		return stream.Send(&skiffv1.ContainerStats{
			Id:          st.ID,
			Name:        st.Name,
			Read:        unixNano(st.Read),
			CpuUsageNs:  st.CPUUsage,
			SystemCpuNs: st.SystemCPU,
			OnlineCpus:  st.OnlineCPUs,
			MemoryUsage: st.MemoryUsage,
			MemoryLimit: st.MemoryLimit,
			Pids:        st.Pids,
			NetRx:       st.NetRx,
			NetTx:       st.NetTx,
			BlockRead:   st.BlockRead,
			BlockWrite:  st.BlockWrite,
		})
	})
}

// clientInput is one message of an attach or exec input stream: stdin
// data, the closing of stdin, or a terminal resize.
type clientInput struct {
	stdin      []byte
	closeStdin bool
	resize     *skiffv1.ResizeRequest
}

// relayInput copies the client's input, read by recv, until the stream
// ends: stdin into stdinW (nil: the process takes none; at the stream's
// end it is closed, with the error if it failed), closing stdin through
// stdinW and then onCloseStdin (if set), and resizes to resize.
func relayInput(recv func() (clientInput, error), stdinW *io.PipeWriter, onCloseStdin func(), resize func(width, height uint16) error) {
	for {
		in, err := recv()
		if err != nil {
			if stdinW != nil {
				if errors.Is(err, io.EOF) {
					stdinW.Close()
				} else {
					stdinW.CloseWithError(err)
				}
			}
			return
		}
		switch {
		case in.stdin != nil:
			if stdinW != nil {
				stdinW.Write(in.stdin)
			}
		case in.closeStdin:
			if stdinW != nil {
				stdinW.Close()
			}
			if onCloseStdin != nil {
				onCloseStdin()
			}
		case in.resize != nil:
			if r := in.resize; r.GetWidth() <= 0xffff && r.GetHeight() <= 0xffff {
				resize(uint16(r.GetWidth()), uint16(r.GetHeight()))
			}
		}
	}
}
