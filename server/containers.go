package server

import (
	"context"
	"fmt"
	"io"
	"sync"
	"time"

	skiffv1 "github.com/skiff-containers/skiff/api/skiff/v1"
	"github.com/skiff-containers/skiff/engine/containers"
	"github.com/skiff-containers/skiff/errdefs"
)

// containersServer adapts engine/containers to skiff.v1 Containers.
type containersServer struct {
	skiffv1.UnimplementedContainersServer
	svc *containers.Service
}

// NewContainers returns the skiff.v1 Containers service over svc.
func NewContainers(svc *containers.Service) skiffv1.ContainersServer {
	return &containersServer{svc: svc}
}

func createConfig(c *skiffv1.ContainerConfig) containers.CreateConfig {
	cc := containers.CreateConfig{
		Name:          c.GetName(),
		Image:         c.GetImage(),
		Cmd:           c.GetCmd(),
		Entrypoint:    c.GetEntrypoint(),
		EntrypointSet: c.GetEntrypointSet(),
		Env:           c.GetEnv(),
		WorkingDir:    c.GetWorkingDir(),
		User:          c.GetUser(),
		Tty:           c.GetTty(),
		OpenStdin:     c.GetOpenStdin(),
		Runtime:       c.GetRuntime(),
		Hostname:      c.GetHostname(),
		ReadOnly:      c.GetReadOnly(),
		NetworkMode:   c.GetNetworkMode(),
		Labels:        c.GetLabels(),
		AutoRemove:    c.GetAutoRemove(),
		StopSignal:    c.GetStopSignal(),
		RestartPolicy: containers.RestartPolicy{
			Name:       c.GetRestartPolicy().GetName(),
			MaxRetries: int(c.GetRestartPolicy().GetMaxRetries()),
		},
		Mounts: createMounts(c.GetMounts()),
	}
	if t := c.GetStopTimeout(); t >= 0 {
		v := int(t)
		cc.StopTimeout = &v
	}
	netCreateConfig(&cc, c)
	secCreateConfig(&cc, c)
	return cc
}

func apiConfig(cc containers.CreateConfig) *skiffv1.ContainerConfig {
	out := &skiffv1.ContainerConfig{
		Name:          cc.Name,
		Image:         cc.Image,
		Cmd:           cc.Cmd,
		Entrypoint:    cc.Entrypoint,
		EntrypointSet: cc.EntrypointSet,
		Env:           cc.Env,
		WorkingDir:    cc.WorkingDir,
		User:          cc.User,
		Tty:           cc.Tty,
		OpenStdin:     cc.OpenStdin,
		Runtime:       cc.Runtime,
		Hostname:      cc.Hostname,
		ReadOnly:      cc.ReadOnly,
		NetworkMode:   cc.NetworkMode,
		Labels:        cc.Labels,
		AutoRemove:    cc.AutoRemove,
		StopSignal:    cc.StopSignal,
		StopTimeout:   -1,
		Mounts:        apiMounts(cc.Mounts),
	}
	if cc.StopTimeout != nil {
		out.StopTimeout = int32(*cc.StopTimeout)
	}
	netAPIConfig(out, cc)
	secAPIConfig(out, cc)
	if cc.RestartPolicy.Name != "" || cc.RestartPolicy.MaxRetries != 0 {
		out.RestartPolicy = &skiffv1.RestartPolicy{Name: cc.RestartPolicy.Name, MaxRetries: int32(cc.RestartPolicy.MaxRetries)}
	}
	return out
}

func unixNano(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixNano()
}

func apiContainer(c containers.Container) *skiffv1.Container {
	return &skiffv1.Container{
		Id:              c.ID,
		Name:            c.Name,
		Image:           c.Image,
		ImageId:         c.ImageID,
		Config:          apiConfig(c.Config),
		Status:          c.Status,
		Pid:             int32(c.Pid),
		ExitCode:        int32(c.ExitCode),
		Error:           c.Error,
		Created:         unixNano(c.Created),
		Started:         unixNano(c.Started),
		Finished:        unixNano(c.Finished),
		Runtime:         c.Runtime,
		LogPath:         c.LogPath,
		Path:            c.Path,
		Args:            c.Args,
		ExitKnown:       c.ExitKnown,
		RestartCount:    int32(c.RestartCount),
		Bundle:          c.Bundle,
		SpecJson:        c.Spec,
		Labels:          c.Labels,
		Mounts:          apiMountPoints(c.Mounts),
		NetworkSettings: apiNetworkSettings(c.Network),
	}
}

// timeout converts an API timeout in seconds (negative: the container's
// default).
func timeout(sec int32) time.Duration {
	if sec < 0 {
		return -1
	}
	return time.Duration(sec) * time.Second
}

func (s *containersServer) Create(ctx context.Context, req *skiffv1.CreateContainerRequest) (*skiffv1.CreateContainerResponse, error) {
	ns, err := Namespace(ctx)
	if err != nil {
		return nil, err
	}
	if req.GetConfig() == nil {
		return nil, fmt.Errorf("create container: no config: %w", errdefs.ErrInvalidArgument)
	}
	c, warnings, err := s.svc.Create(ctx, ns, createConfig(req.GetConfig()))
	if err != nil {
		return nil, err
	}
	return &skiffv1.CreateContainerResponse{Container: apiContainer(c), Warnings: warnings}, nil
}

func (s *containersServer) Start(ctx context.Context, req *skiffv1.StartContainerRequest) (*skiffv1.Container, error) {
	ns, err := Namespace(ctx)
	if err != nil {
		return nil, err
	}
	c, err := s.svc.Start(ctx, ns, req.GetId())
	if err != nil {
		return nil, err
	}
	return apiContainer(c), nil
}

func (s *containersServer) Stop(ctx context.Context, req *skiffv1.StopContainerRequest) (*skiffv1.Container, error) {
	ns, err := Namespace(ctx)
	if err != nil {
		return nil, err
	}
	c, err := s.svc.StopWithSignal(ctx, ns, req.GetId(), timeout(req.GetTimeout()), req.GetSignal())
	if err != nil {
		return nil, err
	}
	return apiContainer(c), nil
}

func (s *containersServer) Kill(ctx context.Context, req *skiffv1.KillContainerRequest) (*skiffv1.Container, error) {
	ns, err := Namespace(ctx)
	if err != nil {
		return nil, err
	}
	c, err := s.svc.Kill(ctx, ns, req.GetId(), req.GetSignal())
	if err != nil {
		return nil, err
	}
	return apiContainer(c), nil
}

func (s *containersServer) Restart(ctx context.Context, req *skiffv1.RestartContainerRequest) (*skiffv1.Container, error) {
	ns, err := Namespace(ctx)
	if err != nil {
		return nil, err
	}
	c, err := s.svc.Restart(ctx, ns, req.GetId(), timeout(req.GetTimeout()))
	if err != nil {
		return nil, err
	}
	return apiContainer(c), nil
}

func (s *containersServer) Remove(ctx context.Context, req *skiffv1.RemoveContainerRequest) (*skiffv1.RemoveContainerResponse, error) {
	ns, err := Namespace(ctx)
	if err != nil {
		return nil, err
	}
	id, err := s.svc.RemoveWithOptions(ctx, ns, req.GetId(), containers.RemoveOptions{Force: req.GetForce(), Volumes: req.GetRemoveVolumes()})
	if err != nil {
		return nil, err
	}
	return &skiffv1.RemoveContainerResponse{Id: id}, nil
}

func (s *containersServer) List(ctx context.Context, req *skiffv1.ListContainersRequest) (*skiffv1.ListContainersResponse, error) {
	ns, err := Namespace(ctx)
	if err != nil {
		return nil, err
	}
	list, err := s.svc.List(ctx, ns, req.GetAll())
	if err != nil {
		return nil, err
	}
	out := &skiffv1.ListContainersResponse{}
	for _, c := range list {
		out.Containers = append(out.Containers, apiContainer(c))
	}
	return out, nil
}

func (s *containersServer) Inspect(ctx context.Context, req *skiffv1.InspectContainerRequest) (*skiffv1.Container, error) {
	ns, err := Namespace(ctx)
	if err != nil {
		return nil, err
	}
	c, err := s.svc.Inspect(ctx, ns, req.GetId())
	if err != nil {
		return nil, err
	}
	return apiContainer(c), nil
}

func (s *containersServer) Wait(ctx context.Context, req *skiffv1.WaitContainerRequest) (*skiffv1.WaitContainerResponse, error) {
	ns, err := Namespace(ctx)
	if err != nil {
		return nil, err
	}
	code, err := s.svc.Wait(ctx, ns, req.GetId(), req.GetCondition())
	if err != nil {
		return nil, err
	}
	resp := &skiffv1.WaitContainerResponse{ExitCode: int32(code)}
	// The container may be gone (removed), so its error is best effort.
	if c, err := s.svc.Inspect(ctx, ns, req.GetId()); err == nil {
		resp.Error = c.Error
	}
	return resp, nil
}

func apiStream(st containers.Stream) skiffv1.Stream {
	switch st {
	case containers.Stdout:
		return skiffv1.Stream_STREAM_STDOUT
	case containers.Stderr:
		return skiffv1.Stream_STREAM_STDERR
	}
	return skiffv1.Stream_STREAM_UNSPECIFIED
}

func fromUnixNano(n int64) time.Time {
	if n == 0 {
		return time.Time{}
	}
	return time.Unix(0, n)
}

func (s *containersServer) Logs(req *skiffv1.LogsRequest, stream skiffv1.Containers_LogsServer) error {
	ctx := stream.Context()
	ns, err := Namespace(ctx)
	if err != nil {
		return err
	}
	o := containers.LogsOptions{
		Follow: req.GetFollow(),
		Tail:   req.GetTail(),
		Since:  fromUnixNano(req.GetSince()),
		Until:  fromUnixNano(req.GetUntil()),
	}
	return s.svc.Logs(ctx, ns, req.GetId(), o, func(e containers.LogEntry) error {
		return stream.Send(&skiffv1.LogEntry{Stream: apiStream(e.Stream), Time: e.Time.UnixNano(), Data: e.Data})
	})
}

func (s *containersServer) Resize(ctx context.Context, req *skiffv1.ResizeRequest) (*skiffv1.ResizeResponse, error) {
	ns, err := Namespace(ctx)
	if err != nil {
		return nil, err
	}
	if req.GetWidth() > 0xffff || req.GetHeight() > 0xffff {
		return nil, fmt.Errorf("resize container %s: %dx%d is too large: %w", req.GetId(), req.GetWidth(), req.GetHeight(), errdefs.ErrInvalidArgument)
	}
	if err := s.svc.Resize(ctx, ns, req.GetId(), uint16(req.GetWidth()), uint16(req.GetHeight())); err != nil {
		return nil, err
	}
	return &skiffv1.ResizeResponse{}, nil
}

// outputSender is the sending side of the attach and exec streams.
type outputSender interface {
	Send(*skiffv1.AttachOutput) error
}

// streamWriter sends what is written to it as output frames of one stream
// of an attach or an exec; mu serialises the frames of both streams.
type streamWriter struct {
	mu     *sync.Mutex
	stream outputSender
	which  skiffv1.Stream
}

func (w streamWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	data := append([]byte(nil), p...)
	if err := w.stream.Send(&skiffv1.AttachOutput{Stream: w.which, Data: data}); err != nil {
		return 0, err
	}
	return len(p), nil
}

// Attach serves the bidi attach stream: the first client message must be
// an AttachStart. Once attached, the server sends one empty AttachOutput
// (no stream, no data) so that the client knows it may start the
// container without missing output; then output frames, and last, if the
// container exited while attached, a frame carrying exit.
func (s *containersServer) Attach(stream skiffv1.Containers_AttachServer) error {
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
		return fmt.Errorf("attach: the first message must be an AttachStart: %w", errdefs.ErrInvalidArgument)
	}
	var mu sync.Mutex
	o := containers.AttachOptions{CloseStdinOnEOF: start.GetCloseStdinOnEof()}
	if start.GetStdout() {
		o.Stdout = streamWriter{&mu, stream, skiffv1.Stream_STREAM_STDOUT}
	}
	if start.GetStderr() {
		o.Stderr = streamWriter{&mu, stream, skiffv1.Stream_STREAM_STDERR}
	}
	var stdinW *io.PipeWriter
	if start.GetStdin() {
		var r *io.PipeReader
		r, stdinW = io.Pipe()
		o.Stdin = r
		defer stdinW.Close()
	}
	a, err := s.svc.Attach(ctx, ns, start.GetId(), o)
	if err != nil {
		return err
	}
	defer a.Close()
	mu.Lock()
	err = stream.Send(&skiffv1.AttachOutput{})
	mu.Unlock()
	if err != nil {
		return err
	}

	// Input: until the client ends its side or the call ends.
	go relayInput(func() (clientInput, error) {
		in, err := stream.Recv()
		return clientInput{in.GetStdin(), in.GetCloseStdin(), in.GetResize()}, err
	}, stdinW, func() {
		if !start.GetCloseStdinOnEof() {
			a.CloseStdin(ctx)
		}
	}, a.Resize)

	exit, err := a.Wait(ctx)
	if err != nil {
		if ctx.Err() != nil {
			return nil // the client went away
		}
		return err
	}
	if exit == nil {
		return nil
	}
	mu.Lock()
	defer mu.Unlock()
	return stream.Send(&skiffv1.AttachOutput{Exit: &skiffv1.AttachExit{ExitCode: int32(exit.Code)}})
}
