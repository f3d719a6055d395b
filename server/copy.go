package server

import (
	"context"
	"errors"
	"fmt"
	"io"

	"google.golang.org/grpc"

	skiffv1 "github.com/skiff-containers/skiff/api/skiff/v1"
	"github.com/skiff-containers/skiff/engine/containers"
	"github.com/skiff-containers/skiff/errdefs"
)

// copyChunkSize is the size of the chunks of cp and export streams.
const copyChunkSize = 256 << 10

// sendChunks sends what r yields as CopyChunks, the first carrying first
// (the stat of cp's source; nil for none).
func sendChunks(r io.Reader, first *skiffv1.CopyChunk_Stat, stream grpc.ServerStreamingServer[skiffv1.CopyChunk]) error {
	if first != nil {
		if err := stream.Send(&skiffv1.CopyChunk{Stat: first}); err != nil {
			return err
		}
	}
	buf := make([]byte, copyChunkSize)
	for {
		n, rerr := io.ReadFull(r, buf)
		if n > 0 {
			if err := stream.Send(&skiffv1.CopyChunk{Data: append([]byte(nil), buf[:n]...)}); err != nil {
				return err
			}
		}
		if rerr == io.EOF || rerr == io.ErrUnexpectedEOF {
			return nil
		}
		if rerr != nil {
			return rerr
		}
	}
}

// CopyFrom sends the stat of the source, then its tar stream.
func (s *containersServer) CopyFrom(req *skiffv1.CopyFromRequest, stream grpc.ServerStreamingServer[skiffv1.CopyChunk]) error {
	ns, err := Namespace(stream.Context())
	if err != nil {
		return err
	}
	st, rc, err := s.svc.CopyFrom(stream.Context(), ns, req.GetId(), req.GetPath(), req.GetFollowLink())
	if err != nil {
		return err
	}
	defer rc.Close()
	return sendChunks(rc, &skiffv1.CopyChunk_Stat{
		Name:       st.Name,
		Size:       st.Size,
		Mode:       uint32(st.Mode),
		Mtime:      unixNano(st.Mtime),
		LinkTarget: st.LinkTarget,
	}, stream)
}

// Export streams the container's filesystem the container service
// writes, in chunks.
func (s *containersServer) Export(req *skiffv1.ExportContainerRequest, stream grpc.ServerStreamingServer[skiffv1.CopyChunk]) error {
	ns, err := Namespace(stream.Context())
	if err != nil {
		return err
	}
	pr, pw := io.Pipe()
	done := make(chan error, 1)
	go func() {
		err := s.svc.Export(stream.Context(), ns, req.GetId(), pw)
		pw.CloseWithError(err) // nil: EOF
		done <- err
	}()
	if err := sendChunks(pr, nil, stream); err != nil {
		pr.CloseWithError(err)
		if derr := <-done; derr != nil && !errors.Is(derr, err) {
			return derr
		}
		return err
	}
	return <-done
}

// CopyTo takes the destination from the first message and feeds the data
// of all messages through a pipe to the container service.
func (s *containersServer) CopyTo(stream grpc.ClientStreamingServer[skiffv1.CopyToRequest, skiffv1.CopyToResponse]) error {
	ns, err := Namespace(stream.Context())
	if err != nil {
		return err
	}
	first, err := stream.Recv()
	if err == io.EOF {
		return fmt.Errorf("copy: no request was sent: %w", errdefs.ErrInvalidArgument)
	}
	if err != nil {
		return err
	}
	var src *containers.CopySource
	if fs := first.GetSource(); fs != nil {
		src = &containers.CopySource{Name: fs.GetName(), IsDir: fs.GetIsDir()}
	}
	pr, pw := io.Pipe()
	done := make(chan error, 1)
	go func() {
		err := s.svc.CopyTo(stream.Context(), ns, first.GetId(), first.GetPath(), src, first.GetCopyUidGid(), pr)
		pr.CloseWithError(errCopyEnded)
		done <- err
	}()
	if err := pumpUpload(pw, first.GetData(), func() ([]byte, error) { req, err := stream.Recv(); return req.GetData(), err }); err != nil {
		<-done
		return err
	}
	if err := <-done; err != nil {
		return err
	}
	return stream.SendAndClose(&skiffv1.CopyToResponse{})
}

var errCopyEnded = errors.New("the copy ended before the archive did")

// Commit makes an image of the container's changes; the Image returned
// names it (Name, Id).
func (s *containersServer) Commit(ctx context.Context, req *skiffv1.CommitRequest) (*skiffv1.Image, error) {
	ns, err := Namespace(ctx)
	if err != nil {
		return nil, err
	}
	img, err := s.svc.Commit(ctx, ns, req.GetId(), containers.CommitOptions{
		Ref:     req.GetRef(),
		Author:  req.GetAuthor(),
		Message: req.GetMessage(),
		Changes: req.GetChanges(),
		Pause:   req.GetPause(),
	})
	if err != nil {
		return nil, err
	}
	return &skiffv1.Image{Name: img.Name, Id: img.ID.String()}, nil
}
