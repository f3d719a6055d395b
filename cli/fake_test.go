package cli

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	skiffv1 "github.com/skiff-containers/skiff/api/skiff/v1"
	"github.com/skiff-containers/skiff/errdefs"
	"github.com/skiff-containers/skiff/errdefs/errgrpc"
)

// fakeDaemon is an in-process skiff.v1 server for the CLI's tests. Its
// containers run a tiny script instead of a process: each argument of the
// command is "out:TEXT", "err:TEXT", "cat" (echo stdin), "sleep" (until
// killed) or "exit:N". A command "notfound" fails to start with 127.
type fakeDaemon struct {
	skiffv1.UnimplementedImagesServer
	skiffv1.UnimplementedContainersServer
	skiffv1.UnimplementedSystemServer

	mu         sync.Mutex
	registry   map[string]*skiffv1.Image // pullable, by normalised name
	images     map[string]*skiffv1.Image // local, by normalised name
	containers map[string]*fakeContainer
	seq        int

	pulls     []*skiffv1.PullRequest
	creates   []*skiffv1.ContainerConfig
	kills     []string
	namespace []string
}

type fakeContainer struct {
	c       *skiffv1.Container
	out     chan *skiffv1.AttachOutput // set while attached
	stdin   chan []byte
	killed  chan struct{}
	exited  chan struct{}
	removed chan struct{}
	logs    []*skiffv1.LogEntry
}

func newFakeDaemon() *fakeDaemon {
	return &fakeDaemon{
		registry:   map[string]*skiffv1.Image{},
		images:     map[string]*skiffv1.Image{},
		containers: map[string]*fakeContainer{},
	}
}

func fakeImage(name string) *skiffv1.Image {
	return &skiffv1.Image{
		Name:         normalizeRef(name),
		Digest:       "sha256:" + strings.Repeat("d", 64),
		Id:           "sha256:" + strings.Repeat("a", 64),
		Size:         2_000_000,
		UnpackedSize: 4_261_376,
		Created:      time.Now().Add(-2 * time.Hour).UnixNano(),
		Os:           "linux",
		Architecture: "amd64",
		Layers:       []string{"sha256:" + strings.Repeat("1", 64)},
		DiffIds:      []string{"sha256:" + strings.Repeat("2", 64)},
		ConfigJson:   []byte(`{"created":"2024-01-02T03:04:05Z","config":{"Cmd":["sh"],"Env":["PATH=/bin"]}}`),
	}
}

// serve starts d on a temp unix socket and returns its path.
func (d *fakeDaemon) serve(t *testing.T) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "skiffcli")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	sock := filepath.Join(dir, "s.sock")
	lis, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	srv := grpc.NewServer(grpc.UnaryInterceptor(func(ctx context.Context, req any, info *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
		d.mu.Lock()
		d.namespace = append(d.namespace, skiffv1.NamespaceFromIncoming(ctx))
		d.mu.Unlock()
		return h(ctx, req)
	}))
	skiffv1.RegisterImagesServer(srv, d)
	skiffv1.RegisterContainersServer(srv, fakeContainersServer{d})
	skiffv1.RegisterSystemServer(srv, d)
	go srv.Serve(lis)
	t.Cleanup(srv.Stop)
	return sock
}

func clone(c *skiffv1.Container) *skiffv1.Container {
	return proto.Clone(c).(*skiffv1.Container)
}

func notFound(format string, args ...any) error {
	return errgrpc.ToGRPC(fmt.Errorf(format+": %w", append(args, errdefs.ErrNotFound)...))
}

// ---- images

func (d *fakeDaemon) Pull(req *skiffv1.PullRequest, stream grpc.ServerStreamingServer[skiffv1.PullProgress]) error {
	d.mu.Lock()
	d.pulls = append(d.pulls, req)
	img, ok := d.registry[normalizeRef(req.GetRef())]
	d.mu.Unlock()
	if !ok {
		return notFound("pull %s: repository does not exist or may require 'docker login'", req.GetRef())
	}
	layer := img.GetLayers()[0]
	for _, p := range []*skiffv1.PullProgress{
		{Id: img.GetDigest(), Kind: "manifest", Status: "resolving"},
		{Id: layer, Kind: "layer", Status: "waiting", Total: 3_400_000},
		{Id: layer, Kind: "layer", Status: "downloading", Current: 1_200_000, Total: 3_400_000},
		{Id: layer, Kind: "layer", Status: "downloading", Current: 3_400_000, Total: 3_400_000},
		{Id: layer, Kind: "layer", Status: "verifying", Current: 3_400_000, Total: 3_400_000},
		{Id: layer, Kind: "layer", Status: "done", Current: 3_400_000, Total: 3_400_000},
		{Id: layer, Kind: "layer", Status: "extracting"},
		{Id: layer, Kind: "layer", Status: "extracted"},
		{Image: img},
	} {
		if err := stream.Send(p); err != nil {
			return err
		}
	}
	d.mu.Lock()
	d.images[img.GetName()] = img
	d.mu.Unlock()
	return nil
}

func (d *fakeDaemon) List(ctx context.Context, _ *skiffv1.ListImagesRequest) (*skiffv1.ListImagesResponse, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	resp := &skiffv1.ListImagesResponse{}
	for _, img := range d.images {
		resp.Images = append(resp.Images, img)
	}
	return resp, nil
}

func (d *fakeDaemon) Get(ctx context.Context, req *skiffv1.GetImageRequest) (*skiffv1.Image, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if img, ok := d.images[normalizeRef(req.GetName())]; ok {
		return img, nil
	}
	return nil, notFound("image %q", req.GetName())
}

func (d *fakeDaemon) Remove(ctx context.Context, req *skiffv1.RemoveImageRequest) (*skiffv1.RemoveImageResponse, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	name := normalizeRef(req.GetName())
	img, ok := d.images[name]
	if !ok {
		return nil, notFound("No such image: %s", req.GetName())
	}
	delete(d.images, name)
	return &skiffv1.RemoveImageResponse{Untagged: []string{name, name + "@" + img.GetDigest()}, Deleted: []string{img.GetId()}}, nil
}

// ---- containers

func (d *fakeDaemon) Create(ctx context.Context, req *skiffv1.CreateContainerRequest) (*skiffv1.CreateContainerResponse, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	cfg := req.GetConfig()
	d.creates = append(d.creates, cfg)
	img, ok := d.images[normalizeRef(cfg.GetImage())]
	if !ok {
		return nil, notFound("create container: image %q", cfg.GetImage())
	}
	d.seq++
	id := fmt.Sprintf("%02d%s", d.seq, strings.Repeat("c", 62))
	name := cfg.GetName()
	if name == "" {
		name = fmt.Sprintf("fake_%d", d.seq)
	}
	fc := &fakeContainer{
		c: &skiffv1.Container{
			Id: id, Name: name, Image: img.GetName(), ImageId: img.GetId(), Config: cfg,
			Status: "created", Created: time.Now().UnixNano(), Path: "sh", Args: cfg.GetCmd(),
		},
		killed:  make(chan struct{}),
		exited:  make(chan struct{}),
		removed: make(chan struct{}),
		stdin:   make(chan []byte, 16),
	}
	d.containers[id] = fc
	return &skiffv1.CreateContainerResponse{Container: clone(fc.c)}, nil
}

func (d *fakeDaemon) find(id string) (*fakeContainer, error) {
	for cid, fc := range d.containers {
		if cid == id || fc.c.GetName() == id || strings.HasPrefix(cid, id) {
			return fc, nil
		}
	}
	return nil, notFound("No such container: %s", id)
}

func (d *fakeDaemon) Start(ctx context.Context, req *skiffv1.StartContainerRequest) (*skiffv1.Container, error) {
	d.mu.Lock()
	fc, err := d.find(req.GetId())
	if err != nil {
		d.mu.Unlock()
		return nil, err
	}
	cmd := fc.c.GetConfig().GetCmd()
	if len(cmd) > 0 && cmd[0] == "notfound" {
		d.mu.Unlock()
		err := fmt.Errorf("exec: %q: executable file not found in $PATH: %w", cmd[0], errdefs.ErrInvalidArgument)
		return nil, errgrpc.ToGRPC(errdefs.WithExitCode(err, 127))
	}
	fc.c.Status = "running"
	fc.c.Started = time.Now().UnixNano()
	out := fc.out
	snap := clone(fc.c)
	d.mu.Unlock()
	go d.runScript(fc, cmd, out)
	return snap, nil
}

func (d *fakeDaemon) runScript(fc *fakeContainer, cmd []string, out chan *skiffv1.AttachOutput) {
	emit := func(s skiffv1.Stream, data []byte) {
		d.mu.Lock()
		fc.logs = append(fc.logs, &skiffv1.LogEntry{Stream: s, Time: time.Now().UnixNano(), Data: data})
		d.mu.Unlock()
		if out != nil {
			out <- &skiffv1.AttachOutput{Stream: s, Data: data}
		}
	}
	code := 0
	for _, arg := range cmd {
		switch {
		case strings.HasPrefix(arg, "out:"):
			emit(skiffv1.Stream_STREAM_STDOUT, []byte(arg[4:]+"\n"))
		case strings.HasPrefix(arg, "err:"):
			emit(skiffv1.Stream_STREAM_STDERR, []byte(arg[4:]+"\n"))
		case arg == "cat":
			for b := range fc.stdin {
				emit(skiffv1.Stream_STREAM_STDOUT, b)
			}
		case arg == "sleep":
			<-fc.killed
			code = 137
		case strings.HasPrefix(arg, "exit:"):
			code, _ = strconv.Atoi(arg[5:])
		}
	}
	d.mu.Lock()
	fc.c.Status = "exited"
	fc.c.ExitCode = int32(code)
	fc.c.Finished = time.Now().UnixNano()
	autoRemove := fc.c.GetConfig().GetAutoRemove()
	d.mu.Unlock()
	if out != nil {
		out <- &skiffv1.AttachOutput{Exit: &skiffv1.AttachExit{ExitCode: int32(code)}}
		close(out)
	}
	close(fc.exited)
	if autoRemove {
		time.Sleep(20 * time.Millisecond) // removal lags the exit, as in a real daemon
		d.mu.Lock()
		delete(d.containers, fc.c.GetId())
		d.mu.Unlock()
		close(fc.removed)
	}
}

func (d *fakeDaemon) Attach(stream grpc.BidiStreamingServer[skiffv1.AttachInput, skiffv1.AttachOutput]) error {
	first, err := stream.Recv()
	if err != nil {
		return err
	}
	st := first.GetStart()
	if st == nil {
		return errgrpc.ToGRPC(fmt.Errorf("first attach message must be start: %w", errdefs.ErrInvalidArgument))
	}
	d.mu.Lock()
	fc, err := d.find(st.GetId())
	if err != nil {
		d.mu.Unlock()
		return err
	}
	out := make(chan *skiffv1.AttachOutput, 64)
	fc.out = out
	d.mu.Unlock()
	// As skiffd: one empty AttachOutput says the attach is in place.
	if err := stream.Send(&skiffv1.AttachOutput{}); err != nil {
		return err
	}
	go func() {
		for {
			in, err := stream.Recv()
			if err != nil {
				return
			}
			switch m := in.GetMsg().(type) {
			case *skiffv1.AttachInput_Stdin:
				fc.stdin <- m.Stdin
			case *skiffv1.AttachInput_CloseStdin:
				close(fc.stdin)
			}
		}
	}()
	for {
		select {
		case msg, ok := <-out:
			if !ok {
				return nil
			}
			if err := stream.Send(msg); err != nil {
				return err
			}
		case <-stream.Context().Done():
			return stream.Context().Err()
		}
	}
}

func (d *fakeDaemon) Kill(ctx context.Context, req *skiffv1.KillContainerRequest) (*skiffv1.Container, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	fc, err := d.find(req.GetId())
	if err != nil {
		return nil, err
	}
	d.kills = append(d.kills, req.GetSignal())
	select {
	case <-fc.killed:
	default:
		close(fc.killed)
	}
	return clone(fc.c), nil
}

func (d *fakeDaemon) Wait(ctx context.Context, req *skiffv1.WaitContainerRequest) (*skiffv1.WaitContainerResponse, error) {
	d.mu.Lock()
	fc, err := d.find(req.GetId())
	d.mu.Unlock()
	if err != nil {
		return nil, err
	}
	ch := fc.exited
	if req.GetCondition() == "removed" {
		ch = fc.removed
	}
	select {
	case <-ch:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	return &skiffv1.WaitContainerResponse{ExitCode: fc.c.GetExitCode()}, nil
}

func (d *fakeDaemon) Inspect(ctx context.Context, req *skiffv1.InspectContainerRequest) (*skiffv1.Container, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	fc, err := d.find(req.GetId())
	if err != nil {
		return nil, err
	}
	return clone(fc.c), nil
}

func (d *fakeDaemon) ListContainers(all bool) []*skiffv1.Container {
	d.mu.Lock()
	defer d.mu.Unlock()
	var out []*skiffv1.Container
	for _, fc := range d.containers {
		if all || fc.c.GetStatus() == "running" {
			out = append(out, clone(fc.c))
		}
	}
	return out
}

func (d *fakeDaemon) Logs(req *skiffv1.LogsRequest, stream grpc.ServerStreamingServer[skiffv1.LogEntry]) error {
	d.mu.Lock()
	fc, err := d.find(req.GetId())
	var logs []*skiffv1.LogEntry
	if err == nil {
		logs = append(logs, fc.logs...)
	}
	d.mu.Unlock()
	if err != nil {
		return err
	}
	if req.GetTail() >= 0 && int64(len(logs)) > req.GetTail() {
		logs = logs[int64(len(logs))-req.GetTail():]
	}
	for _, e := range logs {
		if err := stream.Send(e); err != nil {
			return err
		}
	}
	return nil
}

// ---- system

func (d *fakeDaemon) Version(ctx context.Context, _ *skiffv1.VersionRequest) (*skiffv1.VersionResponse, error) {
	return &skiffv1.VersionResponse{Version: "9.9.9", ApiVersion: "v1", GoVersion: "go1.26", Os: "linux", Arch: "amd64", Kernel: "6.1.0"}, nil
}

// fakeContainersList adapts the Containers List method (named List on both
// services, so the fake's method set needs a wrapper type).
type fakeContainersServer struct {
	*fakeDaemon
}

func (s fakeContainersServer) List(ctx context.Context, req *skiffv1.ListContainersRequest) (*skiffv1.ListContainersResponse, error) {
	return &skiffv1.ListContainersResponse{Containers: s.ListContainers(req.GetAll())}, nil
}

func (s fakeContainersServer) Remove(ctx context.Context, req *skiffv1.RemoveContainerRequest) (*skiffv1.RemoveContainerResponse, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	fc, err := s.find(req.GetId())
	if err != nil {
		return nil, err
	}
	if fc.c.GetStatus() == "running" && !req.GetForce() {
		return nil, errgrpc.ToGRPC(fmt.Errorf("cannot remove container %s: container is running: stop the container before removing or force remove: %w", req.GetId(), errdefs.ErrFailedPrecondition))
	}
	delete(s.containers, fc.c.GetId())
	return &skiffv1.RemoveContainerResponse{Id: fc.c.GetId()}, nil
}

// cliResult is what one CLI run produced.
type cliResult struct {
	stdout, stderr string
	code           int
}

// runCLI runs the CLI in-process against socket with stdin and env.
func runCLI(t *testing.T, socket, stdin string, env map[string]string, args ...string) cliResult {
	t.Helper()
	var out, errb bytes.Buffer
	home := t.TempDir()
	e := &Env{
		Stdin:  strings.NewReader(stdin),
		Stdout: &out,
		Stderr: &errb,
		Home:   home,
		LookupEnv: func(k string) (string, bool) {
			v, ok := env[k]
			return v, ok
		},
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	code := Run(ctx, e, append([]string{"--socket", socket}, args...))
	return cliResult{stdout: out.String(), stderr: errb.String(), code: code}
}

// Login accepts alice/s3cret and bob/pw, as a registry would check them.
func (d *fakeDaemon) Login(_ context.Context, req *skiffv1.LoginRequest) (*skiffv1.LoginResponse, error) {
	a := req.GetAuth()
	if (a.GetUsername() == "alice" && a.GetPassword() == "s3cret") || (a.GetUsername() == "bob" && a.GetPassword() == "pw") {
		return &skiffv1.LoginResponse{Status: "Login Succeeded"}, nil
	}
	return nil, status.Errorf(codes.FailedPrecondition, "login to %s as %s: unauthorized: incorrect username or password", req.GetServer(), a.GetUsername())
}
