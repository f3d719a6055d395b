package server

import (
	"context"

	skiffv1 "github.com/skiff-containers/skiff/api/skiff/v1"
	"github.com/skiff-containers/skiff/engine/containers"
	"github.com/skiff-containers/skiff/engine/network"
)

// networksServer adapts engine/network (and, for what involves
// containers, engine/containers) to skiff.v1 Networks. Networks are
// global: they belong to no namespace, as CNI's do.
type networksServer struct {
	skiffv1.UnimplementedNetworksServer
	mgr *network.Manager
	ctr *containers.Service
}

// NewNetworks returns the skiff.v1 Networks service.
func NewNetworks(mgr *network.Manager, ctr *containers.Service) skiffv1.NetworksServer {
	return &networksServer{mgr: mgr, ctr: ctr}
}

func (s *networksServer) apiNetwork(n network.Network) *skiffv1.Network {
	users, _ := s.mgr.Users(n.Name)
	return &skiffv1.Network{
		Id: n.ID, Name: n.Name, Driver: n.Driver, Subnet: n.Subnet.String(), Gateway: n.Gateway.String(),
		Bridge: n.Bridge, Created: unixNano(n.Created), Labels: n.Labels, Containers: users, Internal: n.Internal,
	}
}

func (s *networksServer) Create(ctx context.Context, req *skiffv1.CreateNetworkRequest) (*skiffv1.Network, error) {
	n, err := s.mgr.Create(ctx, network.CreateOptions{
		Name: req.GetName(), Driver: req.GetDriver(), Subnet: req.GetSubnet(), Gateway: req.GetGateway(),
		Labels: req.GetLabels(), Internal: req.GetInternal(),
	})
	if err != nil {
		return nil, err
	}
	return s.apiNetwork(n), nil
}

func (s *networksServer) List(ctx context.Context, req *skiffv1.ListNetworksRequest) (*skiffv1.ListNetworksResponse, error) {
	nets, err := s.mgr.List(ctx)
	if err != nil {
		return nil, err
	}
	out := &skiffv1.ListNetworksResponse{}
	for _, n := range nets {
		out.Networks = append(out.Networks, s.apiNetwork(n))
	}
	return out, nil
}

func (s *networksServer) Inspect(ctx context.Context, req *skiffv1.InspectNetworkRequest) (*skiffv1.Network, error) {
	n, err := s.mgr.Get(ctx, req.GetName())
	if err != nil {
		return nil, err
	}
	return s.apiNetwork(n), nil
}

func (s *networksServer) Remove(ctx context.Context, req *skiffv1.RemoveNetworkRequest) (*skiffv1.RemoveNetworkResponse, error) {
	if err := s.ctr.RemoveNetwork(ctx, req.GetName()); err != nil {
		return nil, err
	}
	return &skiffv1.RemoveNetworkResponse{}, nil
}

func (s *networksServer) Prune(ctx context.Context, req *skiffv1.PruneNetworksRequest) (*skiffv1.PruneNetworksResponse, error) {
	deleted, err := s.ctr.PruneNetworks(ctx)
	if err != nil {
		return nil, err
	}
	return &skiffv1.PruneNetworksResponse{Deleted: deleted}, nil
}

func (s *networksServer) Connect(ctx context.Context, req *skiffv1.ConnectNetworkRequest) (*skiffv1.ConnectNetworkResponse, error) {
	ns, err := Namespace(ctx)
	if err != nil {
		return nil, err
	}
	ep := containers.EndpointConfig{Aliases: req.GetEndpoint().GetAliases(), IPv4: req.GetEndpoint().GetIpv4Address()}
	if err := s.ctr.ConnectNetwork(ctx, ns, req.GetNetwork(), req.GetContainer(), ep); err != nil {
		return nil, err
	}
	return &skiffv1.ConnectNetworkResponse{}, nil
}

func (s *networksServer) Disconnect(ctx context.Context, req *skiffv1.DisconnectNetworkRequest) (*skiffv1.DisconnectNetworkResponse, error) {
	ns, err := Namespace(ctx)
	if err != nil {
		return nil, err
	}
	if err := s.ctr.DisconnectNetwork(ctx, ns, req.GetNetwork(), req.GetContainer(), req.GetForce()); err != nil {
		return nil, err
	}
	return &skiffv1.DisconnectNetworkResponse{}, nil
}

// netCreateConfig copies the network options of an API config into cc.
func netCreateConfig(cc *containers.CreateConfig, c *skiffv1.ContainerConfig) {
	for _, ep := range c.GetNetworks() {
		cc.Networks = append(cc.Networks, containers.EndpointConfig{Network: ep.GetNetwork(), Aliases: ep.GetAliases(), IPv4: ep.GetIpv4Address()})
	}
	for _, p := range c.GetPortBindings() {
		cc.PortBindings = append(cc.PortBindings, network.PortMapping{
			HostIP: p.GetHostIp(), HostPort: int(p.GetHostPort()), ContainerPort: int(p.GetContainerPort()), Protocol: p.GetProtocol(),
		})
	}
	cc.PublishAll = c.GetPublishAll()
	cc.DNS = c.GetDns()
	cc.ExtraHosts = c.GetExtraHosts()
}

// netAPIConfig copies the network options of cc into an API config.
func netAPIConfig(out *skiffv1.ContainerConfig, cc containers.CreateConfig) {
	for _, ep := range cc.Networks {
		out.Networks = append(out.Networks, &skiffv1.EndpointConfig{Network: ep.Network, Aliases: ep.Aliases, Ipv4Address: ep.IPv4})
	}
	out.PortBindings = apiPorts(cc.PortBindings)
	out.PublishAll = cc.PublishAll
	out.Dns = cc.DNS
	out.ExtraHosts = cc.ExtraHosts
}

func apiPorts(ports []network.PortMapping) []*skiffv1.PortBinding {
	var out []*skiffv1.PortBinding
	for _, p := range ports {
		out = append(out, &skiffv1.PortBinding{HostIp: p.HostIP, HostPort: uint32(p.HostPort), ContainerPort: uint32(p.ContainerPort), Protocol: p.Protocol})
	}
	return out
}

// apiNetworkSettings is a running container's network state (nil when it
// has none).
func apiNetworkSettings(a *network.Attachment) *skiffv1.NetworkSettings {
	if a == nil {
		return nil
	}
	out := &skiffv1.NetworkSettings{Ports: apiPorts(a.Ports), SandboxKey: a.NetNS}
	for _, ep := range a.Endpoints {
		e := &skiffv1.NetworkSettings_Endpoint{Network: ep.Network, MacAddress: ep.MAC, Aliases: ep.Aliases}
		if ep.IP.IsValid() {
			e.IpAddress, e.PrefixLen = ep.IP.Addr().String(), int32(ep.IP.Bits())
		}
		if ep.Gateway.IsValid() {
			e.Gateway = ep.Gateway.String()
		}
		out.Endpoints = append(out.Endpoints, e)
	}
	return out
}
