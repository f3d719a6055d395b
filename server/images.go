package server

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	skiffv1 "github.com/skiff-containers/skiff/api/skiff/v1"
	"github.com/skiff-containers/skiff/engine/images"
	"github.com/skiff-containers/skiff/errdefs"
	"google.golang.org/grpc"
)

// saveChunkSize is the size of the chunks Save streams.
const saveChunkSize = 256 << 10

type imagesServer struct {
	skiffv1.UnimplementedImagesServer
	svc *images.Service
}

// NewImages returns the skiff.v1 Images service over the engine's image
// service.
func NewImages(svc *images.Service) skiffv1.ImagesServer {
	return &imagesServer{svc: svc}
}

func imageTime(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixNano()
}

func apiImage(img images.Image) *skiffv1.Image {
	out := &skiffv1.Image{
		Name:         img.Name,
		Digest:       img.Target.Digest.String(),
		MediaType:    img.Target.MediaType,
		Id:           img.ID.String(),
		Size:         img.Size,
		UnpackedSize: img.UnpackedSize,
		Created:      imageTime(img.Created),
		Recorded:     imageTime(img.Recorded),
		Os:           img.OS,
		Architecture: img.Architecture,
		Variant:      img.Variant,
		Labels:       img.Labels,
		ConfigJson:   img.ConfigJSON,
		ManifestJson: img.ManifestJSON,
	}
	for _, l := range img.Layers {
		out.Layers = append(out.Layers, l.String())
	}
	for _, d := range img.DiffIDs {
		out.DiffIds = append(out.DiffIds, d.String())
	}
	return out
}

func (s *imagesServer) Pull(req *skiffv1.PullRequest, stream grpc.ServerStreamingServer[skiffv1.PullProgress]) error {
	ns, err := Namespace(stream.Context())
	if err != nil {
		return err
	}
	var auth *images.Auth
	if a := req.GetAuth(); a != nil {
		auth = &images.Auth{Username: a.GetUsername(), Password: a.GetPassword(), IdentityToken: a.GetIdentityToken()}
	}
	ctx, cancel := context.WithCancel(stream.Context())
	defer cancel()
	var sendErr error
	progress := func(p images.Progress) {
		if sendErr != nil {
			return
		}
		sendErr = stream.Send(&skiffv1.PullProgress{Id: p.ID, Kind: p.Kind, Status: p.Status, Current: p.Current, Total: p.Total})
		if sendErr != nil {
			cancel() // the client is gone: stop pulling
		}
	}
	img, err := s.svc.Pull(ctx, ns, req.GetRef(), req.GetPlatform(), auth, progress)
	if err != nil {
		return err
	}
	if sendErr != nil {
		return sendErr
	}
	return stream.Send(&skiffv1.PullProgress{Status: "done", Image: apiImage(img)})
}

func (s *imagesServer) List(ctx context.Context, _ *skiffv1.ListImagesRequest) (*skiffv1.ListImagesResponse, error) {
	ns, err := Namespace(ctx)
	if err != nil {
		return nil, err
	}
	imgs, err := s.svc.List(ctx, ns)
	if err != nil {
		return nil, err
	}
	resp := &skiffv1.ListImagesResponse{}
	for _, img := range imgs {
		resp.Images = append(resp.Images, apiImage(img))
	}
	return resp, nil
}

func (s *imagesServer) Get(ctx context.Context, req *skiffv1.GetImageRequest) (*skiffv1.Image, error) {
	ns, err := Namespace(ctx)
	if err != nil {
		return nil, err
	}
	img, err := s.svc.Get(ctx, ns, req.GetName())
	if err != nil {
		return nil, err
	}
	return apiImage(img), nil
}

func (s *imagesServer) Remove(ctx context.Context, req *skiffv1.RemoveImageRequest) (*skiffv1.RemoveImageResponse, error) {
	ns, err := Namespace(ctx)
	if err != nil {
		return nil, err
	}
	res, err := s.svc.Remove(ctx, ns, req.GetName(), req.GetForce())
	if err != nil {
		return nil, err
	}
	resp := &skiffv1.RemoveImageResponse{Untagged: res.Untagged}
	for _, d := range res.Deleted {
		resp.Deleted = append(resp.Deleted, d.String())
	}
	return resp, nil
}

func (s *imagesServer) Tag(ctx context.Context, req *skiffv1.TagImageRequest) (*skiffv1.Image, error) {
	ns, err := Namespace(ctx)
	if err != nil {
		return nil, err
	}
	img, err := s.svc.Tag(ctx, ns, req.GetSource(), req.GetTarget())
	if err != nil {
		return nil, err
	}
	return apiImage(img), nil
}

// Load feeds the received chunks through a pipe to the image service; the
// handler's goroutine keeps receiving, the service reads in another.
func (s *imagesServer) Load(stream grpc.ClientStreamingServer[skiffv1.LoadRequest, skiffv1.LoadResponse]) error {
	ns, err := Namespace(stream.Context())
	if err != nil {
		return err
	}
	pr, pw := io.Pipe()
	type result struct {
		imgs []images.Image
		err  error
	}
	done := make(chan result, 1)
	go func() {
		imgs, err := s.svc.Load(stream.Context(), ns, pr)
		pr.CloseWithError(errLoadEnded) // unblock the receiver if Load stopped early
		done <- result{imgs, err}
	}()
	if err := pumpUpload(pw, nil, func() ([]byte, error) { req, err := stream.Recv(); return req.GetData(), err }); err != nil {
		<-done
		return err
	}
	res := <-done
	if res.err != nil {
		return res.err
	}
	resp := &skiffv1.LoadResponse{}
	for _, img := range res.imgs {
		resp.Images = append(resp.Images, apiImage(img))
	}
	return stream.SendAndClose(resp)
}

var errLoadEnded = errors.New("load ended before the archive did")

// pumpUpload writes data, then the data of every message recv returns, to
// pw until the client's stream ends (pw is then closed) or the consumer
// reading pw stops (its own result says why). A failed stream closes pw
// with its error and returns it.
func pumpUpload(pw *io.PipeWriter, data []byte, recv func() ([]byte, error)) error {
	for {
		if len(data) > 0 {
			if _, err := pw.Write(data); err != nil {
				return nil
			}
		}
		var err error
		data, err = recv()
		if err == io.EOF {
			pw.Close()
			return nil
		}
		if err != nil {
			pw.CloseWithError(err)
			return err
		}
	}
}

// Save streams the archive the image service writes, in chunks.
func (s *imagesServer) Save(req *skiffv1.SaveRequest, stream grpc.ServerStreamingServer[skiffv1.SaveChunk]) error {
	ns, err := Namespace(stream.Context())
	if err != nil {
		return err
	}
	pr, pw := io.Pipe()
	done := make(chan error, 1)
	go func() {
		err := s.svc.Save(stream.Context(), ns, req.GetNames(), pw)
		pw.CloseWithError(err) // nil: EOF
		done <- err
	}()
	buf := make([]byte, saveChunkSize)
	for {
		n, rerr := io.ReadFull(pr, buf)
		if n > 0 {
			if err := stream.Send(&skiffv1.SaveChunk{Data: append([]byte(nil), buf[:n]...)}); err != nil {
				pr.CloseWithError(err)
				<-done
				return err
			}
		}
		if rerr == io.EOF || rerr == io.ErrUnexpectedEOF {
			break
		}
		if rerr != nil {
			<-done
			return rerr
		}
	}
	return <-done
}

func (s *imagesServer) Login(ctx context.Context, req *skiffv1.LoginRequest) (*skiffv1.LoginResponse, error) {
	a := req.GetAuth()
	if err := s.svc.CheckLogin(ctx, req.GetServer(), images.Auth{Username: a.GetUsername(), Password: a.GetPassword()}); err != nil {
		return nil, err
	}
	return &skiffv1.LoginResponse{Status: "Login Succeeded"}, nil
}

// Push streams the push's progress; the last message carries the pushed
// digest and size.
func (s *imagesServer) Push(req *skiffv1.PushRequest, stream grpc.ServerStreamingServer[skiffv1.PushProgress]) error {
	ns, err := Namespace(stream.Context())
	if err != nil {
		return err
	}
	var auth *images.Auth
	if a := req.GetAuth(); a != nil {
		auth = &images.Auth{Username: a.GetUsername(), Password: a.GetPassword(), IdentityToken: a.GetIdentityToken()}
	}
	ctx, cancel := context.WithCancel(stream.Context())
	defer cancel()
	var sendErr error
	progress := func(p images.Progress) {
		if sendErr != nil {
			return
		}
		sendErr = stream.Send(&skiffv1.PushProgress{Id: p.ID, Kind: p.Kind, Status: p.Status, Current: p.Current, Total: p.Total})
		if sendErr != nil {
			cancel() // the client is gone: stop pushing
		}
	}
	res, err := s.svc.Push(ctx, ns, req.GetRef(), auth, progress)
	if err != nil {
		return err
	}
	if sendErr != nil {
		return sendErr
	}
	return stream.Send(&skiffv1.PushProgress{Status: "done", Digest: res.Target.Digest.String(), Size: res.Target.Size})
}

func (s *imagesServer) History(ctx context.Context, req *skiffv1.HistoryRequest) (*skiffv1.HistoryResponse, error) {
	ns, err := Namespace(ctx)
	if err != nil {
		return nil, err
	}
	hist, err := s.svc.History(ctx, ns, req.GetName())
	if err != nil {
		return nil, err
	}
	resp := &skiffv1.HistoryResponse{}
	for _, h := range hist {
		resp.Entries = append(resp.Entries, &skiffv1.HistoryResponse_Entry{
			Id: h.ID, Created: imageTime(h.Created), CreatedBy: h.CreatedBy, Size: h.Size, Comment: h.Comment, EmptyLayer: h.EmptyLayer,
		})
	}
	return resp, nil
}

func (s *imagesServer) Prune(ctx context.Context, req *skiffv1.PruneImagesRequest) (*skiffv1.PruneImagesResponse, error) {
	ns, err := Namespace(ctx)
	if err != nil {
		return nil, err
	}
	res, err := s.svc.Prune(ctx, ns, req.GetAll())
	if err != nil {
		return nil, err
	}
	resp := &skiffv1.PruneImagesResponse{Untagged: res.Untagged, SpaceReclaimed: res.SpaceReclaimed}
	for _, d := range res.Deleted {
		resp.Deleted = append(resp.Deleted, d.String())
	}
	return resp, nil
}

// Import takes the options from the first message and feeds the data of
// all messages through a pipe to the image service (as Load does).
func (s *imagesServer) Import(stream grpc.ClientStreamingServer[skiffv1.ImportRequest, skiffv1.Image]) error {
	ns, err := Namespace(stream.Context())
	if err != nil {
		return err
	}
	first, err := stream.Recv()
	if err == io.EOF {
		return fmt.Errorf("import: no tarball was sent: %w", errdefs.ErrInvalidArgument)
	}
	if err != nil {
		return err
	}
	pr, pw := io.Pipe()
	type result struct {
		img images.Image
		err error
	}
	done := make(chan result, 1)
	go func() {
		img, err := s.svc.Import(stream.Context(), ns, pr, first.GetRef(), first.GetChanges(), first.GetMessage())
		pr.CloseWithError(errImportEnded)
		done <- result{img, err}
	}()
	if err := pumpUpload(pw, first.GetData(), func() ([]byte, error) { req, err := stream.Recv(); return req.GetData(), err }); err != nil {
		<-done
		return err
	}
	res := <-done
	if res.err != nil {
		return res.err
	}
	return stream.SendAndClose(apiImage(res.img))
}

var errImportEnded = errors.New("import ended before the tarball did")
