package network

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/containernetworking/cni/libcni"

	"github.com/skiff-containers/skiff/errdefs"
)

// Defaults of the default network (docker's "bridge", skiff's "skiff").
const (
	DefaultNetworkName = "skiff"
	DefaultBridge      = "skiff0"
	DefaultSubnet      = "10.88.0.0/16"
	DefaultBinDir      = "/usr/lib/cni"
	// cniVersion is the CNI spec version of the conflists (Debian 12's
	// plugins, 1.1.1, speak up to 1.0.0).
	cniVersion = "1.0.0"
	// DriverBridge is the only driver.
	DriverBridge = "bridge"
)

// Config configures New.
type Config struct {
	// Root is skiffd's persistent directory: networks live in
	// Root/networks.
	Root string
	// State is skiffd's volatile directory: netns in State/netns, CNI
	// state in State/cni.
	State string
	// BinDirs are where the CNI plugin binaries are (DefaultBinDir if
	// empty).
	BinDirs []string
	// DefaultName, DefaultBridge and DefaultSubnet describe the default
	// network, created on first use (the constants above if empty).
	DefaultName, DefaultBridge, DefaultSubnet string
	Logger                                    *slog.Logger
	// Events receives the manager's events (events.go); nil publishes
	// nothing.
	Events EventPublisher
}

// Network is a network as List and Inspect show it.
type Network struct {
	ID       string            `json:"id"`
	Name     string            `json:"-"`
	Driver   string            `json:"driver"`
	Subnet   netip.Prefix      `json:"subnet"`
	Gateway  netip.Addr        `json:"gateway"`
	Bridge   string            `json:"bridge"`
	Created  time.Time         `json:"created"`
	Labels   map[string]string `json:"labels,omitempty"`
	Internal bool              `json:"internal,omitempty"`
	// Default marks the default network ("bridge").
	Default bool `json:"default,omitempty"`
	// Masquerade: skiffd owns the network's masquerade rule
	// (hostrules.go); false for networks made before it did, whose
	// bridge plugin masquerades per container.
	Masquerade bool `json:"masquerade,omitempty"`
	// Forward: skiffd owns the network's FORWARD rules (hostrules.go);
	// false for networks made before it did, whose firewall plugin adds
	// rules per container.
	Forward bool `json:"forward,omitempty"`
}

// CreateOptions are `network create`'s.
type CreateOptions struct {
	Name   string
	Driver string // "" or "bridge"
	// Subnet and Gateway are optional: a free /24 of 10.89.0.0/16 and its
	// first address are chosen.
	Subnet, Gateway string
	Labels          map[string]string
	Internal        bool
}

// Manager owns the networks and the containers' attachments. It is safe
// for concurrent use.
type Manager struct {
	cfg Config
	log *slog.Logger
	cni *libcni.CNIConfig
	// mu serialises everything: network changes, attachments, port
	// allocation and hosts files.
	mu sync.Mutex
	// ruled maps the networks whose host rules (hostrules.go) this manager
	// made, by name, to their ids.
	ruled map[string]string
}

// New returns a manager over cfg, making its directories.
func New(cfg Config) (*Manager, error) {
	if !filepath.IsAbs(cfg.Root) || !filepath.IsAbs(cfg.State) {
		return nil, fmt.Errorf("network manager: Root %q and State %q must be absolute paths: %w", cfg.Root, cfg.State, errdefs.ErrInvalidArgument)
	}
	if len(cfg.BinDirs) == 0 {
		cfg.BinDirs = []string{DefaultBinDir}
	}
	if cfg.DefaultName == "" {
		cfg.DefaultName = DefaultNetworkName
	}
	if cfg.DefaultBridge == "" {
		cfg.DefaultBridge = DefaultBridge
	}
	if cfg.DefaultSubnet == "" {
		cfg.DefaultSubnet = DefaultSubnet
	}
	if err := validName(cfg.DefaultName); err != nil {
		return nil, fmt.Errorf("default network: %w", err)
	}
	if err := validBridgeName(cfg.DefaultBridge); err != nil {
		return nil, fmt.Errorf("default network: %w", err)
	}
	if _, err := parseSubnet(cfg.DefaultSubnet); err != nil {
		return nil, fmt.Errorf("default network: %w (set another with skiffd --default-subnet)", err)
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	m := &Manager{cfg: cfg, log: cfg.Logger.With("component", "network"), ruled: map[string]string{}}
	for _, d := range []string{m.confDir(), m.netnsDir(), m.cacheDir(), m.ipamDir(), m.attachDir()} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			return nil, fmt.Errorf("network manager: %w", err)
		}
	}
	m.cni = libcni.NewCNIConfigWithCacheDir(cfg.BinDirs, m.cacheDir(), nil)
	return m, nil
}

func (m *Manager) confDir() string   { return filepath.Join(m.cfg.Root, "networks") }
func (m *Manager) netnsDir() string  { return filepath.Join(m.cfg.State, "netns") }
func (m *Manager) cacheDir() string  { return filepath.Join(m.cfg.State, "cni", "cache") }
func (m *Manager) ipamDir() string   { return filepath.Join(m.cfg.State, "cni", "ipam") }
func (m *Manager) attachDir() string { return filepath.Join(m.cfg.State, "cni", "attachments") }
func (m *Manager) confPath(name string) string {
	return filepath.Join(m.confDir(), name+".conflist")
}

// NetNSPath is where the network namespace of container id is mounted.
func (m *Manager) NetNSPath(id string) string { return filepath.Join(m.netnsDir(), id) }

// DefaultName is the default network's name.
func (m *Manager) DefaultName() string { return m.cfg.DefaultName }

// IsDefault reports whether name means the default network ("bridge",
// "default", or its own name).
func (m *Manager) IsDefault(name string) bool {
	return name == "bridge" || name == "default" || name == m.cfg.DefaultName
}

// reserved are network names docker reserves for its modes.
var reserved = map[string]bool{"bridge": true, "host": true, "none": true, "default": true}

var nameRE = regexp.MustCompile(`^[a-zA-Z0-9][a-zA-Z0-9_.-]*$`)

func validName(name string) error {
	if len(name) > 64 || !nameRE.MatchString(name) {
		return fmt.Errorf("network name %q: use 1 to 64 letters, digits and '_.-', starting with a letter or digit: %w", name, errdefs.ErrInvalidArgument)
	}
	return nil
}

func validBridgeName(name string) error {
	if name == "" || len(name) > 15 || strings.ContainsAny(name, "/ \t\n:") || name == "." || name == ".." {
		return fmt.Errorf("bridge name %q: an interface name has 1 to 15 characters and no '/', ':' or space: %w", name, errdefs.ErrInvalidArgument)
	}
	return nil
}

// parseSubnet parses an IPv4 subnet in CIDR form and refuses what cannot
// be a network of containers.
func parseSubnet(s string) (netip.Prefix, error) {
	p, err := netip.ParsePrefix(strings.TrimSpace(s))
	if err != nil {
		return netip.Prefix{}, fmt.Errorf("invalid subnet %q: want an IPv4 network in CIDR form, such as 10.90.0.0/24: %w", s, errdefs.ErrInvalidArgument)
	}
	if !p.Addr().Is4() {
		return netip.Prefix{}, fmt.Errorf("invalid subnet %q: only IPv4 subnets are supported: %w", s, errdefs.ErrInvalidArgument)
	}
	if p.Masked() != p {
		return netip.Prefix{}, fmt.Errorf("invalid subnet %q: host bits are set; did you mean %s? %w", s, p.Masked(), errdefs.ErrInvalidArgument)
	}
	if p.Bits() < 8 || p.Bits() > 30 {
		return netip.Prefix{}, fmt.Errorf("invalid subnet %q: the prefix length must be between /8 and /30: %w", s, errdefs.ErrInvalidArgument)
	}
	for _, bad := range []string{"0.0.0.0/8", "127.0.0.0/8", "169.254.0.0/16", "224.0.0.0/3"} {
		if Overlaps(p, netip.MustParsePrefix(bad)) {
			return netip.Prefix{}, fmt.Errorf("invalid subnet %q: overlaps the reserved range %s: %w", s, bad, errdefs.ErrInvalidArgument)
		}
	}
	return p, nil
}

// Overlaps reports whether two prefixes share an address.
func Overlaps(a, b netip.Prefix) bool {
	return a.Overlaps(b)
}

// gatewayFor checks gw (or defaults it to the subnet's first address).
func gatewayFor(subnet netip.Prefix, gw string) (netip.Addr, error) {
	if gw == "" {
		return subnet.Addr().Next(), nil
	}
	a, err := netip.ParseAddr(strings.TrimSpace(gw))
	if err != nil || !a.Is4() {
		return netip.Addr{}, fmt.Errorf("invalid gateway %q: want an IPv4 address: %w", gw, errdefs.ErrInvalidArgument)
	}
	if !subnet.Contains(a) || a == subnet.Addr() || a == lastAddr(subnet) {
		return netip.Addr{}, fmt.Errorf("invalid gateway %s: not a host address of subnet %s: %w", a, subnet, errdefs.ErrInvalidArgument)
	}
	return a, nil
}

// lastAddr is the subnet's broadcast address.
func lastAddr(p netip.Prefix) netip.Addr {
	b := p.Addr().As4()
	host := uint32(1)<<(32-p.Bits()) - 1
	v := uint32(b[0])<<24 | uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3])
	v |= host
	return netip.AddrFrom4([4]byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)})
}

// conflist is a network's file: a CNI conflist plus skiff's record.
type conflist struct {
	CNIVersion string            `json:"cniVersion"`
	Name       string            `json:"name"`
	Plugins    []json.RawMessage `json:"plugins"`
	Skiff      Network           `json:"skiff"`
}

// Conflist returns the CNI configuration list of n: bridge (with
// host-local IPAM whose leases live in ipamDir; a gateway unless internal,
// and the plugin's per-container masquerade only for networks made before
// skiffd owned one rule per network, hostrules.go), portmap (with SNAT, so
// that published ports answer on the host's loopback too) and, for networks
// made before skiffd owned their FORWARD rules, firewall (iptables).
func Conflist(n Network, ipamDir string) ([]byte, error) {
	ipam := map[string]any{
		"type":    "host-local",
		"ranges":  [][]map[string]string{{{"subnet": n.Subnet.String(), "gateway": n.Gateway.String()}}},
		"dataDir": ipamDir,
	}
	if !n.Internal {
		ipam["routes"] = []map[string]string{{"dst": "0.0.0.0/0"}}
	}
	bridge := map[string]any{
		"type":        "bridge",
		"bridge":      n.Bridge,
		"isGateway":   !n.Internal,
		"ipMasq":      !n.Internal && !n.Masquerade,
		"hairpinMode": true,
		"ipam":        ipam,
	}
	plugins := []any{bridge}
	if !n.Internal {
		plugins = append(plugins, map[string]any{
			"type": "portmap", "capabilities": map[string]bool{"portMappings": true}, "snat": true,
		})
	}
	if !n.Forward {
		plugins = append(plugins, map[string]any{"type": "firewall", "backend": "iptables"})
	}
	raw := make([]json.RawMessage, 0, len(plugins))
	for _, p := range plugins {
		b, err := json.Marshal(p)
		if err != nil {
			return nil, err
		}
		raw = append(raw, b)
	}
	return json.MarshalIndent(conflist{CNIVersion: cniVersion, Name: n.Name, Plugins: raw, Skiff: n}, "", "  ")
}

func newID() string {
	b := make([]byte, 32)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// readNetwork reads the network called name.
func (m *Manager) readNetwork(name string) (Network, *libcni.NetworkConfigList, error) {
	data, err := os.ReadFile(m.confPath(name))
	if errors.Is(err, os.ErrNotExist) {
		return Network{}, nil, fmt.Errorf("network %s not found: %w", name, errdefs.ErrNotFound)
	}
	if err != nil {
		return Network{}, nil, fmt.Errorf("network %s: %w", name, err)
	}
	var cl conflist
	if err := json.Unmarshal(data, &cl); err != nil {
		return Network{}, nil, fmt.Errorf("network %s: corrupt file %s: %v: %w", name, m.confPath(name), err, errdefs.ErrFailedPrecondition)
	}
	list, err := libcni.ConfListFromBytes(data)
	if err != nil {
		return Network{}, nil, fmt.Errorf("network %s: corrupt file %s: %v: %w", name, m.confPath(name), err, errdefs.ErrFailedPrecondition)
	}
	n := cl.Skiff
	n.Name = cl.Name
	return n, list, nil
}

func (m *Manager) listLocked() ([]Network, error) {
	entries, err := os.ReadDir(m.confDir())
	if err != nil {
		return nil, fmt.Errorf("list networks: %w", err)
	}
	var out []Network
	for _, e := range entries {
		name, ok := strings.CutSuffix(e.Name(), ".conflist")
		if !ok || e.IsDir() {
			continue
		}
		n, _, err := m.readNetwork(name)
		if err != nil {
			m.log.Warn("skipping an unreadable network", "name", name, "err", err)
			continue
		}
		out = append(out, n)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

// List returns the networks, by name. The default network is there once
// it has been used (or asked for by name).
func (m *Manager) List(ctx context.Context) ([]Network, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if _, err := m.ensureDefaultLocked(); err != nil {
		m.log.Warn("cannot create the default network", "err", err)
	}
	return m.listLocked()
}

// Get returns the network called nameOrID (a name, an id, or a unique id
// prefix; "bridge" and "default" name the default network, which is
// created on first use).
func (m *Manager) Get(ctx context.Context, nameOrID string) (Network, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	n, _, err := m.getLocked(nameOrID)
	return n, err
}

func (m *Manager) getLocked(nameOrID string) (Network, *libcni.NetworkConfigList, error) {
	if nameOrID == "" {
		return Network{}, nil, fmt.Errorf("no network named: give a network name or id: %w", errdefs.ErrInvalidArgument)
	}
	if m.IsDefault(nameOrID) {
		if _, err := m.ensureDefaultLocked(); err != nil {
			return Network{}, nil, err
		}
		return m.readNetwork(m.cfg.DefaultName)
	}
	if validName(nameOrID) == nil {
		n, list, err := m.readNetwork(nameOrID)
		if err == nil || !errdefs.IsNotFound(err) {
			return n, list, err
		}
	}
	all, err := m.listLocked()
	if err != nil {
		return Network{}, nil, err
	}
	var found []Network
	for _, n := range all {
		if n.ID == nameOrID || len(nameOrID) >= 3 && strings.HasPrefix(n.ID, nameOrID) {
			found = append(found, n)
		}
	}
	switch len(found) {
	case 0:
		return Network{}, nil, fmt.Errorf("network %s not found: %w", nameOrID, errdefs.ErrNotFound)
	case 1:
		return m.readNetwork(found[0].Name)
	}
	return Network{}, nil, fmt.Errorf("network id prefix %q matches %d networks; give more of the id: %w", nameOrID, len(found), errdefs.ErrInvalidArgument)
}

// EnsureDefault creates the default network if it does not exist yet.
func (m *Manager) EnsureDefault(ctx context.Context) (Network, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.ensureDefaultLocked()
}

func (m *Manager) ensureDefaultLocked() (Network, error) {
	n, _, err := m.readNetwork(m.cfg.DefaultName)
	if err == nil || !errdefs.IsNotFound(err) {
		return n, err
	}
	subnet, _ := parseSubnet(m.cfg.DefaultSubnet)
	n, err = m.createLocked(Network{
		Name: m.cfg.DefaultName, Driver: DriverBridge, Subnet: subnet, Gateway: subnet.Addr().Next(),
		Bridge: m.cfg.DefaultBridge, Default: true,
	})
	if err != nil {
		return Network{}, fmt.Errorf("create the default network %s: %w (skiffd's --default-subnet and --default-bridge choose others)", m.cfg.DefaultName, err)
	}
	m.log.Info("default network created", "name", n.Name, "subnet", n.Subnet, "bridge", n.Bridge)
	return n, nil
}

// Create makes a network. A name in use, a reserved name, an invalid
// subnet or gateway, or a subnet that overlaps another network's or an
// address of the host is refused; nothing is left of a refused network.
func (m *Manager) Create(ctx context.Context, o CreateOptions) (Network, error) {
	what := "create network " + o.Name
	if err := validName(o.Name); err != nil {
		return Network{}, fmt.Errorf("%s: %w", what, err)
	}
	if reserved[o.Name] || o.Name == m.cfg.DefaultName {
		return Network{}, fmt.Errorf("%s: %s is a pre-defined network name; choose another: %w", what, o.Name, errdefs.ErrInvalidArgument)
	}
	switch o.Driver {
	case "", DriverBridge:
	default:
		return Network{}, fmt.Errorf("%s: driver %q is not supported (use bridge): %w", what, o.Driver, errdefs.ErrNotImplemented)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if _, _, err := m.readNetwork(o.Name); err == nil {
		return Network{}, fmt.Errorf("%s: network with name %s already exists: %w", what, o.Name, errdefs.ErrAlreadyExists)
	}
	n := Network{Name: o.Name, Driver: DriverBridge, Labels: o.Labels, Internal: o.Internal, ID: newID()}
	n.Bridge = "br-" + n.ID[:12]
	if o.Subnet != "" {
		p, err := parseSubnet(o.Subnet)
		if err != nil {
			return Network{}, fmt.Errorf("%s: %w", what, err)
		}
		n.Subnet = p
	} else {
		if o.Gateway != "" {
			return Network{}, fmt.Errorf("%s: a gateway needs a subnet (--subnet): %w", what, errdefs.ErrInvalidArgument)
		}
		p, err := m.freeSubnet()
		if err != nil {
			return Network{}, fmt.Errorf("%s: %w", what, err)
		}
		n.Subnet = p
	}
	gw, err := gatewayFor(n.Subnet, o.Gateway)
	if err != nil {
		return Network{}, fmt.Errorf("%s: %w", what, err)
	}
	n.Gateway = gw
	n, err = m.createLocked(n)
	if err != nil {
		return Network{}, fmt.Errorf("%s: %w", what, err)
	}
	m.log.Info("network created", "name", n.Name, "id", n.ID, "subnet", n.Subnet, "bridge", n.Bridge)
	// Here, not in createLocked: the default network made on first use
	// is not announced (docker's exists before anyone listens).
	m.publish(ctx, "", evCreate, n.ID, n.Name, "")
	return n, nil
}

// freeSubnet picks the first /24 of 10.89.0.0/16 that overlaps nothing.
func (m *Manager) freeSubnet() (netip.Prefix, error) {
	for i := 0; i < 256; i++ {
		p := netip.PrefixFrom(netip.AddrFrom4([4]byte{10, 89, byte(i), 0}), 24)
		if m.overlapLocked(p, "") == nil {
			return p, nil
		}
	}
	return netip.Prefix{}, fmt.Errorf("no free subnet left in 10.89.0.0/16; give one with --subnet: %w", errdefs.ErrFailedPrecondition)
}

// overlapLocked returns an error naming what p overlaps: another network,
// or an address of a host interface other than ownBridge.
func (m *Manager) overlapLocked(p netip.Prefix, ownBridge string) error {
	nets, err := m.listLocked()
	if err != nil {
		return err
	}
	for _, n := range nets {
		if Overlaps(p, n.Subnet) {
			return fmt.Errorf("subnet %s overlaps subnet %s of network %s: choose a subnet that does not overlap: %w", p, n.Subnet, n.Name, errdefs.ErrAlreadyExists)
		}
	}
	ifaces, err := net.Interfaces()
	if err != nil {
		return fmt.Errorf("list the host's interfaces: %w", err)
	}
	for _, ifc := range ifaces {
		if ifc.Name == ownBridge {
			continue
		}
		addrs, err := ifc.Addrs()
		if err != nil {
			continue
		}
		for _, a := range addrs {
			ipn, ok := a.(*net.IPNet)
			if !ok {
				continue
			}
			hp, err := netip.ParsePrefix(ipn.String())
			if err != nil || !hp.Addr().Is4() || hp.Addr().IsLoopback() {
				continue
			}
			if Overlaps(p, hp.Masked()) {
				return fmt.Errorf("subnet %s overlaps %s of the host's interface %s: choose a subnet that does not overlap: %w", p, hp.Masked(), ifc.Name, errdefs.ErrAlreadyExists)
			}
		}
	}
	return nil
}

// createLocked checks n against the others and writes its file.
func (m *Manager) createLocked(n Network) (Network, error) {
	if err := m.overlapLocked(n.Subnet, n.Bridge); err != nil {
		return Network{}, err
	}
	nets, err := m.listLocked()
	if err != nil {
		return Network{}, err
	}
	for _, o := range nets {
		if o.Bridge == n.Bridge {
			return Network{}, fmt.Errorf("bridge %s is used by network %s: %w", n.Bridge, o.Name, errdefs.ErrAlreadyExists)
		}
	}
	if n.ID == "" {
		n.ID = newID()
	}
	if n.Driver == "" {
		n.Driver = DriverBridge
	}
	n.Created = time.Now().UTC()
	n.Masquerade = !n.Internal
	n.Forward = !n.Internal
	data, err := Conflist(n, m.ipamDir())
	if err != nil {
		return Network{}, err
	}
	if _, err := libcni.ConfListFromBytes(data); err != nil {
		return Network{}, fmt.Errorf("generated an invalid conflist: %w", err)
	}
	if err := writeFileAtomic(m.confPath(n.Name), data, 0o600); err != nil {
		return Network{}, fmt.Errorf("write %s: %w", m.confPath(n.Name), err)
	}
	return n, nil
}

// Remove deletes the network nameOrID and its bridge device. The default
// network cannot be removed; one that a running container is attached to
// is refused (the caller refuses one that containers are configured
// with).
func (m *Manager) Remove(ctx context.Context, nameOrID string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	n, _, err := m.getLocked(nameOrID)
	if err != nil {
		return err
	}
	if n.Default {
		return fmt.Errorf("remove network %s: it is the default network and cannot be removed: %w", n.Name, errdefs.ErrFailedPrecondition)
	}
	atts, err := m.attachmentsLocked()
	if err != nil {
		return err
	}
	for _, a := range atts {
		for _, ep := range a.Endpoints {
			if ep.Network == n.Name {
				return fmt.Errorf("remove network %s: container %s (%s) is attached to it: stop or disconnect it first: %w", n.Name, a.Name, a.ContainerID, errdefs.ErrFailedPrecondition)
			}
		}
	}
	if err := m.removeHostRulesLocked(ctx, n); err != nil {
		return fmt.Errorf("remove network %s: %w", n.Name, err)
	}
	if err := deleteLink(n.Bridge); err != nil {
		return fmt.Errorf("remove network %s: delete its bridge %s: %w", n.Name, n.Bridge, err)
	}
	if err := os.Remove(m.confPath(n.Name)); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("remove network %s: %w", n.Name, err)
	}
	// Leases are per network name in host-local's dataDir.
	os.RemoveAll(filepath.Join(m.ipamDir(), n.Name))
	m.log.Info("network removed", "name", n.Name, "id", n.ID)
	m.publish(ctx, "", evDestroy, n.ID, n.Name, "")
	return nil
}

// writeFileAtomic writes data to path through a temporary file and rename.
func writeFileAtomic(path string, data []byte, mode os.FileMode) error {
	tmp := path + ".tmp"
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, mode)
	if err != nil {
		return err
	}
	_, err = f.Write(data)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		os.Remove(tmp)
	}
	return err
}
