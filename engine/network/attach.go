package network

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"

	"github.com/containernetworking/cni/libcni"
	"github.com/containernetworking/cni/pkg/types"
	types100 "github.com/containernetworking/cni/pkg/types/100"

	"github.com/skiff-containers/skiff/errdefs"
)

// EndpointRequest asks for one network of a container.
type EndpointRequest struct {
	Network string
	Aliases []string
	// IPv4 is a static address in the network's subnet; "" lets IPAM pick.
	IPv4 string
}

// Endpoint is a container's interface on one network.
type Endpoint struct {
	Network   string       `json:"network"`
	NetworkID string       `json:"networkID,omitempty"`
	IfName    string       `json:"ifName"`
	Aliases   []string     `json:"aliases,omitempty"`
	IPv4      string       `json:"ipv4,omitempty"` // as requested
	IP        netip.Prefix `json:"ip,omitzero"`
	Gateway   netip.Addr   `json:"gateway,omitzero"`
	MAC       string       `json:"mac,omitempty"`
	// Default marks the default network (no name resolution).
	Default bool `json:"default,omitempty"`
	// Added is set once the CNI ADD succeeded; until then the endpoint is
	// an intent, which Teardown deletes all the same.
	Added bool `json:"added,omitempty"`
}

// Attachment is a container's network state while it runs.
type Attachment struct {
	Namespace   string `json:"namespace"`
	ContainerID string `json:"containerID"`
	Name        string `json:"name,omitempty"`
	Hostname    string `json:"hostname,omitempty"`
	// NetNS is the network namespace's path.
	NetNS string `json:"netns"`
	// HostsPath is the container's /etc/hosts on the host ("" if it has
	// none to keep current).
	HostsPath  string        `json:"hostsPath,omitempty"`
	ExtraHosts []string      `json:"extraHosts,omitempty"`
	Ports      []PortMapping `json:"ports,omitempty"` // as bound
	Endpoints  []Endpoint    `json:"endpoints,omitempty"`
}

// SetupRequest is what Setup makes for one container.
type SetupRequest struct {
	Namespace, ContainerID, Name, Hostname string
	// Networks are joined in order (eth0, eth1, ...); the first is the one
	// ports are published on. None: a namespace with loopback only.
	Networks []EndpointRequest
	// Ports are published on the first network (HostPort 0: a free one).
	Ports      []PortMapping
	HostsPath  string
	ExtraHosts []string
}

func (m *Manager) attachPath(id string) string {
	return filepath.Join(m.attachDir(), id+".json")
}

func (m *Manager) readAttachment(id string) (Attachment, bool, error) {
	data, err := os.ReadFile(m.attachPath(id))
	if errors.Is(err, os.ErrNotExist) {
		return Attachment{}, false, nil
	}
	if err != nil {
		return Attachment{}, false, err
	}
	var a Attachment
	if err := json.Unmarshal(data, &a); err != nil {
		return Attachment{}, false, fmt.Errorf("network attachment of container %s: corrupt %s: %w", id, m.attachPath(id), err)
	}
	return a, true, nil
}

func (m *Manager) writeAttachment(a Attachment) error {
	data, err := json.Marshal(a)
	if err != nil {
		return err
	}
	return writeFileAtomic(m.attachPath(a.ContainerID), data, 0o600)
}

func (m *Manager) attachmentsLocked() ([]Attachment, error) {
	entries, err := os.ReadDir(m.attachDir())
	if err != nil {
		return nil, err
	}
	var out []Attachment
	for _, e := range entries {
		id, ok := strings.CutSuffix(e.Name(), ".json")
		if !ok {
			continue
		}
		a, found, err := m.readAttachment(id)
		if err != nil {
			m.log.Warn("skipping an unreadable attachment", "id", id, "err", err)
			continue
		}
		if found {
			out = append(out, a)
		}
	}
	return out, nil
}

// Attachment returns the network state of container id, if it has one.
func (m *Manager) Attachment(id string) (Attachment, bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.readAttachment(id)
}

// Attachments returns the network state of every attached container.
func (m *Manager) Attachments() ([]Attachment, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.attachmentsLocked()
}

// Setup makes the network namespace of a container and joins it to its
// networks (CNI ADD), publishing its ports on the first. A published port
// that another container or a process of the host holds is refused. On
// failure everything is undone. What remains of an earlier run of the
// container (a crash) is torn down first.
func (m *Manager) Setup(ctx context.Context, req SetupRequest) (_ Attachment, retErr error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if _, found, _ := m.readAttachment(req.ContainerID); found || isNetNS(m.NetNSPath(req.ContainerID)) {
		if err := m.teardownLocked(ctx, req.ContainerID); err != nil {
			return Attachment{}, fmt.Errorf("tear down what an earlier run left: %w", err)
		}
	}
	a := Attachment{
		Namespace: req.Namespace, ContainerID: req.ContainerID, Name: req.Name, Hostname: req.Hostname,
		NetNS: m.NetNSPath(req.ContainerID), HostsPath: req.HostsPath, ExtraHosts: req.ExtraHosts,
	}
	lists := map[string]*libcni.NetworkConfigList{}
	for i, er := range req.Networks {
		n, list, err := m.getLocked(er.Network)
		if err != nil {
			return Attachment{}, err
		}
		for _, ep := range a.Endpoints {
			if ep.Network == n.Name {
				return Attachment{}, fmt.Errorf("network %s is given twice: %w", n.Name, errdefs.ErrInvalidArgument)
			}
		}
		if er.IPv4 != "" {
			ip, err := netip.ParseAddr(er.IPv4)
			if err != nil || !n.Subnet.Contains(ip) {
				return Attachment{}, fmt.Errorf("address %q is not in subnet %s of network %s: %w", er.IPv4, n.Subnet, n.Name, errdefs.ErrInvalidArgument)
			}
		}
		if err := m.ensureHostRulesLocked(ctx, n); err != nil {
			return Attachment{}, err
		}
		lists[n.Name] = list
		a.Endpoints = append(a.Endpoints, Endpoint{
			Network: n.Name, NetworkID: n.ID, IfName: "eth" + strconv.Itoa(i), Aliases: er.Aliases,
			IPv4: er.IPv4, Default: n.Default,
		})
	}
	if len(req.Ports) > 0 {
		if len(a.Endpoints) == 0 {
			return Attachment{}, fmt.Errorf("published ports need a network (not --network none): %w", errdefs.ErrInvalidArgument)
		}
		ports, err := m.allocatePortsLocked(req.ContainerID, req.Ports)
		if err != nil {
			return Attachment{}, err
		}
		a.Ports = ports
	}
	if err := m.writeAttachment(a); err != nil {
		return Attachment{}, fmt.Errorf("record the network attachment: %w", err)
	}
	defer func() {
		if retErr != nil {
			if err := m.teardownLocked(context.WithoutCancel(ctx), req.ContainerID); err != nil {
				m.log.Error("undo a failed network setup", "id", req.ContainerID, "err", err)
			}
		}
	}()
	if err := newNetNS(a.NetNS); err != nil {
		return Attachment{}, err
	}
	for i := range a.Endpoints {
		ep := &a.Endpoints[i]
		rt := m.runtimeConf(a, i)
		list, err := pluginsFor(lists[ep.Network], rt)
		if err != nil {
			return Attachment{}, fmt.Errorf("join network %s: %w", ep.Network, err)
		}
		res, err := m.cni.AddNetworkList(ctx, list, rt)
		if err != nil {
			return Attachment{}, fmt.Errorf("join network %s: %w", ep.Network, m.pluginError(err))
		}
		if err := fillEndpoint(ep, res); err != nil {
			return Attachment{}, fmt.Errorf("join network %s: %w", ep.Network, err)
		}
		ep.Added = true
		if err := m.writeAttachment(a); err != nil {
			return Attachment{}, fmt.Errorf("record the network attachment: %w", err)
		}
		m.publish(ctx, a.Namespace, evConnect, ep.NetworkID, ep.Network, a.ContainerID)
	}
	m.refreshHostsLocked(a.ContainerID, a.Endpoints)
	m.log.Info("container networked", "id", a.ContainerID, "endpoints", len(a.Endpoints), "ports", len(a.Ports))
	return a, nil
}

// pluginError adds a hint to a CNI plugin's failure.
func (m *Manager) pluginError(err error) error {
	if err == nil {
		return nil
	}
	msg := err.Error()
	if strings.Contains(msg, "failed to find plugin") {
		return fmt.Errorf("%v: install the CNI plugins (Debian: containernetworking-plugins) or point skiffd --cni-bin-dir at them (now %s): %w", err, strings.Join(m.cfg.BinDirs, ":"), errdefs.ErrFailedPrecondition)
	}
	return err
}

// runtimeConf is the CNI runtime configuration of endpoint i of a.
func (m *Manager) runtimeConf(a Attachment, i int) *libcni.RuntimeConf {
	ep := a.Endpoints[i]
	rt := &libcni.RuntimeConf{ContainerID: a.ContainerID, IfName: ep.IfName}
	if isNetNS(a.NetNS) {
		rt.NetNS = a.NetNS
	}
	if ep.IPv4 != "" {
		rt.Args = [][2]string{{"IgnoreUnknown", "1"}, {"IP", ep.IPv4}}
	}
	if i == 0 && len(a.Ports) > 0 {
		rt.CapabilityArgs = map[string]any{"portMappings": a.Ports}
	}
	return rt
}

// fillEndpoint copies the address, gateway and MAC of a CNI result.
func fillEndpoint(ep *Endpoint, res types.Result) error {
	r, err := types100.NewResultFromResult(res)
	if err != nil {
		return err
	}
	for _, ifc := range r.Interfaces {
		if ifc.Sandbox != "" && ifc.Name == ep.IfName {
			ep.MAC = ifc.Mac
		}
	}
	for _, ipc := range r.IPs {
		if a, ok := netip.AddrFromSlice(ipc.Address.IP); ok && a.Unmap().Is4() {
			ones, _ := ipc.Address.Mask.Size()
			ep.IP = netip.PrefixFrom(a.Unmap(), ones)
			if g, ok := netip.AddrFromSlice(ipc.Gateway); ok {
				ep.Gateway = g.Unmap()
			}
			return nil
		}
	}
	return fmt.Errorf("the CNI result has no IPv4 address")
}

// allocatePortsLocked checks ports against every other container's and the
// host's, and picks free ports for HostPort 0.
func (m *Manager) allocatePortsLocked(id string, ports []PortMapping) ([]PortMapping, error) {
	ports, err := ValidatePorts(ports)
	if err != nil {
		return nil, err
	}
	atts, err := m.attachmentsLocked()
	if err != nil {
		return nil, err
	}
	taken := func(p PortMapping) error {
		for _, a := range atts {
			if a.ContainerID == id {
				continue
			}
			for _, q := range a.Ports {
				if clashes(p, q) {
					return portTaken(p, "published by container "+a.Name)
				}
			}
		}
		return nil
	}
	out := make([]PortMapping, 0, len(ports))
	for _, p := range ports {
		if p.HostPort != 0 {
			if err := taken(p); err != nil {
				return nil, err
			}
			if _, err := probePort(p); err != nil {
				return nil, portTaken(p, "in use on the host: "+errString(err))
			}
			out = append(out, p)
			continue
		}
		for try := 0; ; try++ {
			port, err := probePort(p)
			if err != nil {
				return nil, fmt.Errorf("find a free host port for container port %d/%s: %w", p.ContainerPort, p.Protocol, err)
			}
			q := p
			q.HostPort = port
			if taken(q) == nil && !slices.ContainsFunc(out, func(o PortMapping) bool { return clashes(o, q) }) {
				out = append(out, q)
				break
			}
			if try > 50 {
				return nil, fmt.Errorf("find a free host port for container port %d/%s: none found: %w", p.ContainerPort, p.Protocol, errdefs.ErrAlreadyExists)
			}
		}
	}
	return out, nil
}

func errString(err error) string {
	msg := err.Error()
	if i := strings.LastIndex(msg, ": "); i >= 0 {
		return msg[i+2:]
	}
	return msg
}

// CheckPorts tells, before a container is made, whether its published
// ports with a fixed host port are free.
func (m *Manager) CheckPorts(ports []PortMapping) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	_, err := m.allocatePortsLocked("", ports)
	return err
}

// Teardown deletes the container's endpoints (CNI DEL), its network
// namespace and its record. It is idempotent: a container without network
// state is fine. When a DEL fails the record is kept for a retry.
func (m *Manager) Teardown(ctx context.Context, id string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.teardownLocked(ctx, id)
}

func (m *Manager) teardownLocked(ctx context.Context, id string) error {
	a, found, err := m.readAttachment(id)
	if err != nil {
		return err
	}
	if !found {
		return removeNetNS(m.NetNSPath(id))
	}
	var errs []error
	var kept []Endpoint
	for i := len(a.Endpoints) - 1; i >= 0; i-- {
		if err := m.delEndpoint(ctx, a, i); err != nil {
			errs = append(errs, fmt.Errorf("leave network %s: %w", a.Endpoints[i].Network, err))
			kept = append([]Endpoint{a.Endpoints[i]}, kept...)
		}
	}
	if len(errs) > 0 {
		a.Endpoints = kept
		if err := m.writeAttachment(a); err != nil {
			errs = append(errs, err)
		}
		return fmt.Errorf("tear down the network of container %s: %w", id, errors.Join(errs...))
	}
	if err := removeNetNS(a.NetNS); err != nil {
		return err
	}
	if err := os.Remove(m.attachPath(id)); err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	m.refreshHostsLocked(id, a.Endpoints)
	for i := len(a.Endpoints) - 1; i >= 0; i-- {
		if ep := a.Endpoints[i]; ep.Added {
			m.publish(ctx, a.Namespace, evDisconnect, ep.NetworkID, ep.Network, id)
		}
	}
	m.log.Info("container network torn down", "id", id)
	return nil
}

// delEndpoint runs CNI DEL for endpoint i of a, with the network's current
// conflist, or the cached one if the network is gone.
func (m *Manager) delEndpoint(ctx context.Context, a Attachment, i int) error {
	ep := a.Endpoints[i]
	rt := m.runtimeConf(a, i)
	_, list, err := m.readNetwork(ep.Network)
	if err != nil {
		data, _, cerr := m.cni.GetNetworkListCachedConfig(&libcni.NetworkConfigList{Name: ep.Network, CNIVersion: cniVersion}, rt)
		if cerr != nil || len(data) == 0 {
			if errdefs.IsNotFound(err) {
				return nil // nothing known of it: nothing to delete
			}
			return err
		}
		if list, err = libcni.ConfListFromBytes(data); err != nil {
			return err
		}
	}
	if list, err = pluginsFor(list, rt); err != nil {
		return err
	}
	return m.pluginError(m.cni.DelNetworkList(ctx, list, rt))
}

// pluginsFor is list without its portmap plugin when the endpoint publishes
// no port: the plugin would only start and exit on ADD, and on DEL run
// iptables to delete chains that were never made. ADD and DEL of an
// endpoint both go through here, so they run the same plugins.
func pluginsFor(list *libcni.NetworkConfigList, rt *libcni.RuntimeConf) (*libcni.NetworkConfigList, error) {
	if _, ok := rt.CapabilityArgs["portMappings"]; ok {
		return list, nil
	}
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(list.Bytes, &raw); err != nil {
		return nil, fmt.Errorf("network %s: read its conflist: %w", list.Name, err)
	}
	var plugins []json.RawMessage
	if err := json.Unmarshal(raw["plugins"], &plugins); err != nil {
		return nil, fmt.Errorf("network %s: read its conflist's plugins: %w", list.Name, err)
	}
	if len(plugins) != len(list.Plugins) {
		return list, nil
	}
	kept := plugins[:0]
	for i, p := range plugins {
		if list.Plugins[i].Network.Type != "portmap" {
			kept = append(kept, p)
		}
	}
	if len(kept) == len(list.Plugins) {
		return list, nil
	}
	b, err := json.Marshal(kept)
	if err != nil {
		return nil, err
	}
	raw["plugins"] = b
	data, err := json.Marshal(raw)
	if err != nil {
		return nil, err
	}
	return libcni.ConfListFromBytes(data)
}

// Connect joins a running container (one with an attachment) to one more
// network.
func (m *Manager) Connect(ctx context.Context, id string, er EndpointRequest) (_ Attachment, retErr error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	a, found, err := m.readAttachment(id)
	if err != nil {
		return Attachment{}, err
	}
	if !found || !isNetNS(a.NetNS) {
		return Attachment{}, fmt.Errorf("container %s has no network namespace of skiff's (is it running with a network?): %w", id, errdefs.ErrFailedPrecondition)
	}
	n, list, err := m.getLocked(er.Network)
	if err != nil {
		return Attachment{}, err
	}
	if err := m.ensureHostRulesLocked(ctx, n); err != nil {
		return Attachment{}, err
	}
	used := map[string]bool{}
	for _, ep := range a.Endpoints {
		if ep.Network == n.Name {
			return Attachment{}, fmt.Errorf("container %s is already connected to network %s: %w", id, n.Name, errdefs.ErrAlreadyExists)
		}
		used[ep.IfName] = true
	}
	ifname := ""
	for i := 0; ; i++ {
		if ifname = "eth" + strconv.Itoa(i); !used[ifname] {
			break
		}
	}
	a.Endpoints = append(a.Endpoints, Endpoint{Network: n.Name, NetworkID: n.ID, IfName: ifname, Aliases: er.Aliases, IPv4: er.IPv4, Default: n.Default})
	i := len(a.Endpoints) - 1
	if err := m.writeAttachment(a); err != nil {
		return Attachment{}, err
	}
	rt := m.runtimeConf(a, i)
	addList, err := pluginsFor(list, rt)
	if err != nil {
		return Attachment{}, fmt.Errorf("connect container %s to network %s: %w", id, n.Name, err)
	}
	res, err := m.cni.AddNetworkList(ctx, addList, rt)
	if err != nil {
		derr := m.delEndpoint(context.WithoutCancel(ctx), a, i)
		if derr == nil {
			a.Endpoints = a.Endpoints[:i]
			m.writeAttachment(a)
		}
		return Attachment{}, fmt.Errorf("connect container %s to network %s: %w", id, n.Name, m.pluginError(err))
	}
	if err := fillEndpoint(&a.Endpoints[i], res); err != nil {
		return Attachment{}, err
	}
	a.Endpoints[i].Added = true
	if err := m.writeAttachment(a); err != nil {
		return Attachment{}, err
	}
	m.publish(ctx, a.Namespace, evConnect, n.ID, n.Name, id)
	m.refreshHostsLocked(id, a.Endpoints)
	return a, nil
}

// Disconnect takes a running container off a network (CNI DEL). A
// container not attached to it is errdefs.ErrNotFound.
func (m *Manager) Disconnect(ctx context.Context, id, network string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	a, found, err := m.readAttachment(id)
	if err != nil {
		return err
	}
	name := network
	if m.IsDefault(network) {
		name = m.cfg.DefaultName
	} else if n, _, err := m.getLocked(network); err == nil {
		name = n.Name
	}
	i := -1
	if found {
		i = slices.IndexFunc(a.Endpoints, func(ep Endpoint) bool { return ep.Network == name })
	}
	if i < 0 {
		return fmt.Errorf("container %s is not connected to network %s: %w", id, network, errdefs.ErrNotFound)
	}
	if err := m.delEndpoint(ctx, a, i); err != nil {
		return fmt.Errorf("disconnect container %s from network %s: %w", id, name, err)
	}
	gone := a.Endpoints[i]
	a.Endpoints = slices.Delete(a.Endpoints, i, i+1)
	if i == 0 {
		a.Ports = nil // they were published on it
	}
	if err := m.writeAttachment(a); err != nil {
		return err
	}
	if gone.Added {
		m.publish(ctx, a.Namespace, evDisconnect, gone.NetworkID, gone.Network, id)
	}
	m.refreshHostsLocked(id, append(a.Endpoints, gone))
	return nil
}

// refreshHostsLocked rewrites the hosts files of container id and of every
// container sharing a user-defined network with endpoints.
func (m *Manager) refreshHostsLocked(id string, endpoints []Endpoint) {
	atts, err := m.attachmentsLocked()
	if err != nil {
		m.log.Warn("refresh hosts files", "err", err)
		return
	}
	touched := map[string]bool{}
	for _, ep := range endpoints {
		if !ep.Default {
			touched[ep.Network] = true
		}
	}
	for _, a := range atts {
		if a.HostsPath == "" {
			continue
		}
		relevant := a.ContainerID == id
		for _, ep := range a.Endpoints {
			relevant = relevant || touched[ep.Network]
		}
		if !relevant {
			continue
		}
		if err := WriteInPlace(a.HostsPath, hostsOf(a, atts).Bytes()); err != nil {
			m.log.Warn("rewrite a container's /etc/hosts", "id", a.ContainerID, "path", a.HostsPath, "err", err)
		}
	}
}

// hostsOf is a's hosts file among atts.
func hostsOf(a Attachment, atts []Attachment) HostsFile {
	h := HostsFile{Hostname: a.Hostname, ExtraHosts: a.ExtraHosts}
	for i, ep := range a.Endpoints {
		if ep.IP.IsValid() {
			h.Own = append(h.Own, ep.IP.Addr())
		}
		if i == 0 {
			h.Gateway = ep.Gateway
		}
	}
	seen := map[string]bool{}
	for _, ep := range a.Endpoints {
		if ep.Default {
			continue
		}
		for _, b := range atts {
			if b.ContainerID == a.ContainerID {
				continue
			}
			for _, f := range b.Endpoints {
				if f.Network != ep.Network || !f.IP.IsValid() {
					continue
				}
				var names []string
				for _, n := range append(append([]string{b.Name}, f.Aliases...), shortID(b.ContainerID)) {
					key := f.IP.Addr().String() + " " + n
					if n != "" && !seen[key] {
						seen[key] = true
						names = append(names, n)
					}
				}
				if len(names) > 0 {
					h.Peers = append(h.Peers, Peer{IP: f.IP.Addr(), Names: names})
				}
			}
		}
	}
	sort.SliceStable(h.Peers, func(i, j int) bool { return h.Peers[i].Names[0] < h.Peers[j].Names[0] })
	return h
}

func shortID(id string) string {
	if len(id) > 12 {
		return id[:12]
	}
	return id
}

// Users returns the ids of the containers attached to network name.
func (m *Manager) Users(name string) ([]string, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	atts, err := m.attachmentsLocked()
	if err != nil {
		return nil, err
	}
	var ids []string
	for _, a := range atts {
		for _, ep := range a.Endpoints {
			if ep.Network == name {
				ids = append(ids, a.ContainerID)
			}
		}
	}
	return ids, nil
}
