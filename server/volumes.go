package server

import (
	"context"

	skiffv1 "github.com/skiff-containers/skiff/api/skiff/v1"
	"github.com/skiff-containers/skiff/engine/containers"
	"github.com/skiff-containers/skiff/engine/volumes"
)

// volumesServer adapts engine/volumes to skiff.v1 Volumes.
type volumesServer struct {
	skiffv1.UnimplementedVolumesServer
	svc *volumes.Service
}

// NewVolumes returns the skiff.v1 Volumes service over svc.
func NewVolumes(svc *volumes.Service) skiffv1.VolumesServer {
	return &volumesServer{svc: svc}
}

func apiVolume(v volumes.Volume) *skiffv1.Volume {
	return &skiffv1.Volume{
		Name:       v.Name,
		Driver:     v.Driver,
		Mountpoint: v.Mountpoint,
		Created:    unixNano(v.Created),
		Labels:     v.Labels,
		Anonymous:  v.Anonymous,
		UsedBy:     v.UsedBy,
	}
}

func (s *volumesServer) Create(ctx context.Context, req *skiffv1.CreateVolumeRequest) (*skiffv1.Volume, error) {
	ns, err := Namespace(ctx)
	if err != nil {
		return nil, err
	}
	v, _, err := s.svc.Create(ctx, ns, req.GetName(), volumes.CreateOptions{Driver: req.GetDriver(), Labels: req.GetLabels()})
	if err != nil {
		return nil, err
	}
	return apiVolume(v), nil
}

func (s *volumesServer) List(ctx context.Context, req *skiffv1.ListVolumesRequest) (*skiffv1.ListVolumesResponse, error) {
	ns, err := Namespace(ctx)
	if err != nil {
		return nil, err
	}
	list, err := s.svc.List(ctx, ns)
	if err != nil {
		return nil, err
	}
	out := &skiffv1.ListVolumesResponse{}
	for _, v := range list {
		out.Volumes = append(out.Volumes, apiVolume(v))
	}
	return out, nil
}

func (s *volumesServer) Inspect(ctx context.Context, req *skiffv1.InspectVolumeRequest) (*skiffv1.Volume, error) {
	ns, err := Namespace(ctx)
	if err != nil {
		return nil, err
	}
	v, err := s.svc.Inspect(ctx, ns, req.GetName())
	if err != nil {
		return nil, err
	}
	return apiVolume(v), nil
}

func (s *volumesServer) Remove(ctx context.Context, req *skiffv1.RemoveVolumeRequest) (*skiffv1.RemoveVolumeResponse, error) {
	ns, err := Namespace(ctx)
	if err != nil {
		return nil, err
	}
	if err := s.svc.Remove(ctx, ns, req.GetName(), req.GetForce()); err != nil {
		return nil, err
	}
	return &skiffv1.RemoveVolumeResponse{}, nil
}

func (s *volumesServer) Prune(ctx context.Context, req *skiffv1.PruneVolumesRequest) (*skiffv1.PruneVolumesResponse, error) {
	ns, err := Namespace(ctx)
	if err != nil {
		return nil, err
	}
	deleted, reclaimed, err := s.svc.Prune(ctx, ns, req.GetAll())
	if err != nil {
		return nil, err
	}
	return &skiffv1.PruneVolumesResponse{Deleted: deleted, SpaceReclaimed: reclaimed}, nil
}

// createMounts converts the API's mounts of a create request.
func createMounts(ms []*skiffv1.Mount) []containers.Mount {
	var out []containers.Mount
	for _, m := range ms {
		out = append(out, containers.Mount{
			Type: m.GetType(), Source: m.GetSource(), Target: m.GetTarget(),
			ReadOnly: m.GetReadOnly(), Options: m.GetOptions(),
		})
	}
	return out
}

// apiMounts converts a CreateConfig's mounts back.
func apiMounts(ms []containers.Mount) []*skiffv1.Mount {
	var out []*skiffv1.Mount
	for _, m := range ms {
		out = append(out, &skiffv1.Mount{
			Type: m.Type, Source: m.Source, Target: m.Target, ReadOnly: m.ReadOnly, Options: m.Options,
		})
	}
	return out
}

// apiMountPoints converts a Container's mounts as made: a volume's source
// is its name (Volumes.Inspect gives its directory), a bind's the host
// path.
func apiMountPoints(ms []containers.MountPoint) []*skiffv1.Mount {
	var out []*skiffv1.Mount
	for _, m := range ms {
		src := m.Source
		if m.Type == containers.MountVolume {
			src = m.Name
		}
		out = append(out, &skiffv1.Mount{
			Type: m.Type, Source: src, Target: m.Destination, ReadOnly: m.ReadOnly, Options: m.Options,
		})
	}
	return out
}
