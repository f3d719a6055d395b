package containers

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/skiff-containers/skiff/engine/metadata"
	"github.com/skiff-containers/skiff/engine/network"
	"github.com/skiff-containers/skiff/errdefs"
	"github.com/skiff-containers/skiff/image/specgen"
)

// Networking of containers. With a network manager (Config.Network) every
// container but a --network host one gets a network namespace made by the
// engine (engine/network) when it starts, joined to its networks by CNI,
// and torn down (CNI DEL, namespace removed) when it stops: in dropShim,
// which every path that ends a run goes through (the exit watcher, a
// failed start, rm, and Recover for containers that died while skiffd was
// down). The runtime joins the namespace by path (specgen NetNSPath, fixed
// at create: <State>/netns/<id>). Without a manager, the network modes are
// those of before networking: none (the runtime's own namespace) and host.

// EndpointConfig is a network a container joins (docker's
// --network/--network-alias/--ip, `network connect`).
type EndpointConfig struct {
	Network string   `json:"network"`
	Aliases []string `json:"aliases,omitempty"`
	IPv4    string   `json:"ipv4,omitempty"`
}

const containerModePrefix = "container:"

// isNetworkMode reports whether mode names a network (not none, host or
// container:).
func isNetworkMode(mode string) bool {
	return mode != specgen.NetworkNone && mode != specgen.NetworkHost && !strings.HasPrefix(mode, containerModePrefix)
}

// validateNetwork checks and normalises the network options of cfg:
// NetworkMode "" and "default" become "bridge", a network's name or id
// becomes its name, container:REF becomes container:ID; published ports
// are checked (and a fixed host port that is taken is refused now, so
// that nothing is made); --dns and --add-host are checked.
func (s *Service) validateNetwork(ns string, cfg *CreateConfig) ([]string, error) {
	var warnings []string
	m := s.cfg.Network
	if m == nil {
		switch cfg.NetworkMode {
		case "", specgen.NetworkNone, specgen.NetworkHost:
		case specgen.NetworkBridge, "default":
			warnings = append(warnings, fmt.Sprintf("network %q: skiffd runs without networking; the container gets its own network namespace with loopback only", cfg.NetworkMode))
			cfg.NetworkMode = ""
		default:
			return nil, fmt.Errorf("create container: network mode %q is not supported (use none or host): %w", cfg.NetworkMode, errdefs.ErrNotImplemented)
		}
		if len(cfg.PortBindings) > 0 || len(cfg.Networks) > 0 || cfg.PublishAll {
			return nil, fmt.Errorf("create container: skiffd runs without networking: it cannot publish ports nor join networks: %w", errdefs.ErrNotImplemented)
		}
		return warnings, nil
	}
	ctx := context.Background()
	switch mode := cfg.NetworkMode; {
	case mode == "" || m.IsDefault(mode):
		cfg.NetworkMode = specgen.NetworkBridge
	case mode == specgen.NetworkNone || mode == specgen.NetworkHost:
	case strings.HasPrefix(mode, containerModePrefix):
		ref := strings.TrimPrefix(mode, containerModePrefix)
		other, err := s.resolve(ns, ref)
		if err != nil {
			return nil, fmt.Errorf("create container: --network %s: %w", mode, err)
		}
		om := decodeConfig(other).NetworkMode
		if om == specgen.NetworkHost {
			return nil, fmt.Errorf("create container: --network %s: that container uses the host's network; use --network host: %w", mode, errdefs.ErrInvalidArgument)
		}
		if strings.HasPrefix(om, containerModePrefix) {
			cfg.NetworkMode = om // join the namespace it joins
		} else {
			cfg.NetworkMode = containerModePrefix + other.ID
		}
	default:
		n, err := m.Get(ctx, mode)
		if err != nil {
			if errdefs.IsNotFound(err) {
				return nil, fmt.Errorf("create container: network %s not found: create it with `skiff network create %s`: %w", mode, mode, errdefs.ErrNotFound)
			}
			return nil, fmt.Errorf("create container: %w", err)
		}
		cfg.NetworkMode = n.Name
	}
	netMode := isNetworkMode(cfg.NetworkMode)
	if len(cfg.Networks) > 0 && !netMode {
		return nil, fmt.Errorf("create container: --network %s cannot be combined with other networks: %w", cfg.NetworkMode, errdefs.ErrInvalidArgument)
	}
	seen := map[string]bool{s.networkName(cfg.NetworkMode): true}
	for i, ep := range cfg.Networks {
		n, err := m.Get(ctx, ep.Network)
		if err != nil {
			return nil, fmt.Errorf("create container: network %s: %w", ep.Network, err)
		}
		cfg.Networks[i].Network = n.Name
		if seen[n.Name] && n.Name != s.networkName(cfg.NetworkMode) {
			return nil, fmt.Errorf("create container: network %s is given twice: %w", n.Name, errdefs.ErrInvalidArgument)
		}
		seen[n.Name] = true
	}
	if len(cfg.PortBindings) > 0 || cfg.PublishAll {
		switch {
		case cfg.NetworkMode == specgen.NetworkHost:
			warnings = append(warnings, "Published ports are discarded when using host network mode")
			cfg.PortBindings, cfg.PublishAll = nil, false
		case !netMode:
			return nil, fmt.Errorf("create container: conflicting options: port publishing and --network %s: %w", cfg.NetworkMode, errdefs.ErrInvalidArgument)
		}
	}
	ports, err := network.ValidatePorts(cfg.PortBindings)
	if err != nil {
		return nil, fmt.Errorf("create container: %w", err)
	}
	cfg.PortBindings = ports
	if err := m.CheckPorts(ports); err != nil {
		return nil, fmt.Errorf("create container: %w", err)
	}
	if err := network.ValidateDNS(cfg.DNS); err != nil {
		return nil, fmt.Errorf("create container: %w", err)
	}
	for _, h := range cfg.ExtraHosts {
		if _, _, err := network.ParseExtraHost(h); err != nil {
			return nil, fmt.Errorf("create container: --add-host: %w", err)
		}
	}
	return warnings, nil
}

// networkName is the network a network mode names ("bridge": the
// default network's name).
func (s *Service) networkName(mode string) string {
	if s.cfg.Network != nil && s.cfg.Network.IsDefault(mode) {
		return s.cfg.Network.DefaultName()
	}
	return mode
}

// networkSpec sets the network options of the container's spec: the path
// of the namespace it joins, unless it uses the host's.
func (s *Service) networkSpec(opts *specgen.Options, cfg CreateConfig, id string) {
	m := s.cfg.Network
	if m == nil || cfg.NetworkMode == specgen.NetworkHost {
		return
	}
	opts.NetworkMode = specgen.NetworkDefault
	if other, ok := strings.CutPrefix(cfg.NetworkMode, containerModePrefix); ok {
		opts.NetNSPath = m.NetNSPath(other)
		return
	}
	opts.NetNSPath = m.NetNSPath(id)
}

// writeNetworkEtc applies --dns and --add-host to the /etc files that
// specgen wrote into dir, and records the image's exposed ports for -P.
func (s *Service) writeNetworkEtc(dir string, cfg *CreateConfig, info *specgen.Info) error {
	cfg.ExposedPorts = info.ExposedPorts
	hostname := info.Hostname
	if err := network.SetNameservers(filepath.Join(dir, "resolv.conf"), cfg.DNS); err != nil {
		return fmt.Errorf("write its /etc/resolv.conf: %w", err)
	}
	if len(cfg.ExtraHosts) == 0 {
		return nil
	}
	hosts := filepath.Join(dir, "hosts")
	if cfg.NetworkMode == specgen.NetworkHost {
		data, err := os.ReadFile(hosts)
		if err != nil {
			return nil
		}
		for _, e := range cfg.ExtraHosts {
			if name, ip, err := network.ParseExtraHost(e); err == nil && ip != "host-gateway" {
				data = append(data, []byte(ip+"\t"+name+"\n")...)
			}
		}
		return network.WriteInPlace(hosts, data)
	}
	return network.WriteInPlace(hosts, network.HostsFile{Hostname: hostname, ExtraHosts: cfg.ExtraHosts}.Bytes())
}

// specHostname is the hostname in a container's spec.
func specHostname(rec metadata.Container) string {
	var spec struct {
		Hostname string `json:"hostname"`
	}
	json.Unmarshal(rec.Spec, &spec)
	if spec.Hostname == "" && len(rec.ID) >= 12 {
		return rec.ID[:12]
	}
	return spec.Hostname
}

// publishedPorts are the ports to publish: -p, then -P's exposed ports
// that -p does not cover, on free host ports.
func publishedPorts(cfg CreateConfig) []network.PortMapping {
	out := slices.Clone(cfg.PortBindings)
	if !cfg.PublishAll {
		return out
	}
	for _, e := range cfg.ExposedPorts {
		port, proto, _ := strings.Cut(e, "/")
		if proto == "" {
			proto = "tcp"
		}
		n, err := strconv.Atoi(port)
		if err != nil || n < 1 || n > 65535 {
			continue
		}
		if slices.ContainsFunc(out, func(p network.PortMapping) bool { return p.ContainerPort == n && p.Protocol == proto }) {
			continue
		}
		out = append(out, network.PortMapping{ContainerPort: n, Protocol: proto})
	}
	return out
}

// endpoints are the networks a container joins, its primary first.
func (s *Service) endpoints(cfg CreateConfig) []network.EndpointRequest {
	if !isNetworkMode(cfg.NetworkMode) {
		return nil
	}
	primary := network.EndpointRequest{Network: s.networkName(cfg.NetworkMode)}
	out := []network.EndpointRequest{primary}
	for _, ep := range cfg.Networks {
		if s.networkName(ep.Network) == primary.Network {
			out[0].Aliases = append(out[0].Aliases, ep.Aliases...)
			out[0].IPv4 = ep.IPv4
			continue
		}
		out = append(out, network.EndpointRequest{Network: ep.Network, Aliases: ep.Aliases, IPv4: ep.IPv4})
	}
	return out
}

// setupNetwork makes the container's network namespace and joins its
// networks before the runtime creates it; the caller undoes it if the
// runtime fails. A --network container:X container needs X running.
func (s *Service) setupNetwork(ctx context.Context, c *ctr, rec metadata.Container) (undo func(), err error) {
	undo = func() {}
	m := s.cfg.Network
	cfg := decodeConfig(rec)
	if m == nil || cfg.NetworkMode == specgen.NetworkHost || cfg.NetworkMode == "" {
		return undo, nil
	}
	if other, ok := strings.CutPrefix(cfg.NetworkMode, containerModePrefix); ok {
		if _, found, _ := m.Attachment(other); !found {
			return undo, fmt.Errorf("join the network namespace of container %s: it is not running: start it first: %w", shortID(other), errdefs.ErrFailedPrecondition)
		}
		return undo, nil
	}
	hosts := filepath.Join(s.persistDir(c.ns, c.id), "hosts")
	if _, err := os.Stat(hosts); err != nil {
		hosts = ""
	}
	_, err = m.Setup(ctx, network.SetupRequest{
		Namespace: c.ns, ContainerID: c.id, Name: rec.Name, Hostname: specHostname(rec),
		Networks: s.endpoints(cfg), Ports: publishedPorts(cfg), HostsPath: hosts, ExtraHosts: cfg.ExtraHosts,
	})
	if err != nil {
		return undo, fmt.Errorf("set up its network: %w", err)
	}
	return func() {
		if err := m.Teardown(context.WithoutCancel(ctx), c.id); err != nil {
			s.log.Error("undo a container's network setup", "namespace", c.ns, "id", c.id, "err", err)
		}
	}, nil
}

// teardownNetwork releases the container's network (CNI DEL, namespace);
// nothing to do is fine.
func (s *Service) teardownNetwork(ctx context.Context, c *ctr) error {
	if s.cfg.Network == nil {
		return nil
	}
	if err := s.cfg.Network.Teardown(ctx, c.id); err != nil {
		return fmt.Errorf("release its network: %w", err)
	}
	return nil
}

// networkOf is the network state of a running container, or nil.
func (s *Service) networkOf(id string) *network.Attachment {
	if s.cfg.Network == nil {
		return nil
	}
	a, found, err := s.cfg.Network.Attachment(id)
	if err != nil || !found {
		return nil
	}
	return &a
}

func shortID(id string) string {
	if len(id) > 12 {
		return id[:12]
	}
	return id
}

// updateConfig rewrites the stored create configuration of a container.
func (s *Service) updateConfig(ns, id string, fn func(*CreateConfig)) error {
	return s.cfg.DB.Update(func(tx *metadata.Tx) error {
		cur, err := tx.GetContainer(ns, id)
		if err != nil {
			return err
		}
		cc := decodeConfig(cur)
		fn(&cc)
		if cur.Config, err = json.Marshal(cc); err != nil {
			return err
		}
		_, err = tx.UpdateContainer(ns, cur, "config")
		return err
	})
}

// ConnectNetwork connects a container to one more network (`network
// connect`): recorded in its configuration, and joined at once if it runs.
func (s *Service) ConnectNetwork(ctx context.Context, ns, netName, ref string, ep EndpointConfig) error {
	m := s.cfg.Network
	if m == nil {
		return fmt.Errorf("connect container %s: skiffd runs without networking: %w", ref, errdefs.ErrNotImplemented)
	}
	n, err := m.Get(ctx, netName)
	if err != nil {
		return err
	}
	c, rec, err := s.lock(ns, ref)
	if err != nil {
		return err
	}
	defer c.op.Unlock()
	cfg := decodeConfig(rec)
	if !isNetworkMode(cfg.NetworkMode) && cfg.NetworkMode != specgen.NetworkNone {
		return fmt.Errorf("connect container %s to network %s: it uses --network %s, which cannot join networks: %w", ref, n.Name, cfg.NetworkMode, errdefs.ErrFailedPrecondition)
	}
	for _, e := range s.endpoints(cfg) {
		if e.Network == n.Name {
			return fmt.Errorf("connect container %s to network %s: it is already connected: %w", ref, n.Name, errdefs.ErrAlreadyExists)
		}
	}
	ep.Network = n.Name
	if s.networkOf(rec.ID) != nil {
		if _, err := m.Connect(ctx, rec.ID, network.EndpointRequest{Network: n.Name, Aliases: ep.Aliases, IPv4: ep.IPv4}); err != nil {
			return fmt.Errorf("connect container %s: %w", ref, err)
		}
	}
	err = s.updateConfig(ns, rec.ID, func(cc *CreateConfig) {
		if cc.NetworkMode == specgen.NetworkNone {
			cc.NetworkMode = n.Name
			if len(ep.Aliases) > 0 || ep.IPv4 != "" {
				cc.Networks = append(cc.Networks, ep)
			}
			return
		}
		cc.Networks = append(cc.Networks, ep)
	})
	if err != nil {
		return fmt.Errorf("connect container %s to network %s: record it: %w", ref, n.Name, err)
	}
	return nil
}

// DisconnectNetwork takes a container off a network (`network
// disconnect`); a container left without networks has --network none.
func (s *Service) DisconnectNetwork(ctx context.Context, ns, netName, ref string, force bool) error {
	m := s.cfg.Network
	if m == nil {
		return fmt.Errorf("disconnect container %s: skiffd runs without networking: %w", ref, errdefs.ErrNotImplemented)
	}
	name := netName
	if n, err := m.Get(ctx, netName); err == nil {
		name = n.Name
	} else if !force {
		return err
	}
	c, rec, err := s.lock(ns, ref)
	if err != nil {
		return err
	}
	defer c.op.Unlock()
	cfg := decodeConfig(rec)
	if !slices.ContainsFunc(s.endpoints(cfg), func(e network.EndpointRequest) bool { return e.Network == name }) {
		return fmt.Errorf("container %s is not connected to network %s: %w", ref, name, errdefs.ErrNotFound)
	}
	if s.networkOf(rec.ID) != nil {
		if err := m.Disconnect(ctx, rec.ID, name); err != nil && !errdefs.IsNotFound(err) {
			return err
		}
	}
	return s.updateConfig(ns, rec.ID, func(cc *CreateConfig) {
		cc.Networks = slices.DeleteFunc(cc.Networks, func(e EndpointConfig) bool { return s.networkName(e.Network) == name })
		if s.networkName(cc.NetworkMode) == name {
			if len(cc.Networks) > 0 {
				cc.NetworkMode = cc.Networks[0].Network
			} else {
				cc.NetworkMode = specgen.NetworkNone
			}
			cc.PortBindings, cc.PublishAll = nil, false
		}
	})
}

// RemoveNetwork removes a network that no container (of any namespace) is
// configured to join.
func (s *Service) RemoveNetwork(ctx context.Context, netName string) error {
	m := s.cfg.Network
	if m == nil {
		return fmt.Errorf("remove network %s: skiffd runs without networking: %w", netName, errdefs.ErrNotImplemented)
	}
	n, err := m.Get(ctx, netName)
	if err != nil {
		return err
	}
	nss, err := s.cfg.DB.Namespaces()
	if err != nil {
		return err
	}
	for _, ns := range nss {
		recs, err := s.cfg.DB.ListContainers(ns, nil)
		if err != nil {
			return err
		}
		for _, rec := range recs {
			for _, e := range s.endpoints(decodeConfig(rec)) {
				if e.Network == n.Name {
					return fmt.Errorf("remove network %s: container %s (%s) uses it: remove the container or disconnect it first: %w", n.Name, rec.Name, shortID(rec.ID), errdefs.ErrFailedPrecondition)
				}
			}
		}
	}
	return m.Remove(ctx, n.Name)
}

// PruneNetworks removes every network but the default one that no
// container of any namespace uses, as RemoveNetwork would one by one, and
// returns the names removed. A network that gained a user meanwhile is
// kept.
func (s *Service) PruneNetworks(ctx context.Context) ([]string, error) {
	m := s.cfg.Network
	if m == nil {
		return nil, fmt.Errorf("prune networks: skiffd runs without networking: %w", errdefs.ErrNotImplemented)
	}
	nets, err := m.List(ctx)
	if err != nil {
		return nil, fmt.Errorf("prune networks: %w", err)
	}
	var removed []string
	for _, n := range nets {
		if m.IsDefault(n.Name) {
			continue
		}
		switch err := s.RemoveNetwork(ctx, n.Name); {
		case err == nil:
			removed = append(removed, n.Name)
		case errors.Is(err, errdefs.ErrFailedPrecondition), errors.Is(err, errdefs.ErrNotFound):
		default:
			return removed, fmt.Errorf("prune networks: %w", err)
		}
	}
	return removed, nil
}
