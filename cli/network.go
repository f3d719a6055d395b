package cli

import (
	"context"
	"fmt"
	"net/netip"
	"sort"
	"strconv"
	"strings"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	skiffv1 "github.com/skiff-containers/skiff/api/skiff/v1"
)

// networkFlags are the network flags of run and create.
type networkFlags struct {
	publish    []string
	publishAll bool
	dns        []string
	addHost    []string
	aliases    []string
	ip         string
}

func addNetworkFlags(f *pflag.FlagSet, o *networkFlags) {
	f.StringArrayVarP(&o.publish, "publish", "p", nil, "Publish a container's port(s) to the host ([ip:][hostPort:]containerPort[/proto])")
	f.BoolVarP(&o.publishAll, "publish-all", "P", false, "Publish all exposed ports to random ports")
	f.StringArrayVar(&o.dns, "dns", nil, "Set custom DNS servers")
	f.StringArrayVar(&o.addHost, "add-host", nil, "Add a custom host-to-IP mapping (host:ip)")
	f.StringArrayVar(&o.aliases, "network-alias", nil, "Add network-scoped alias for the container")
	f.StringVar(&o.ip, "ip", "", "IPv4 address (e.g., 172.30.100.104)")
}

// apply puts the flags into c; mode is --network.
func (o *networkFlags) apply(c *skiffv1.ContainerConfig, mode string) error {
	for _, spec := range o.publish {
		ports, err := parsePublish(spec)
		if err != nil {
			return err
		}
		c.PortBindings = append(c.PortBindings, ports...)
	}
	c.PublishAll = o.publishAll
	for _, d := range o.dns {
		if _, err := netip.ParseAddr(d); err != nil {
			return invalid("%s is not an ip address", d)
		}
	}
	c.Dns = o.dns
	for _, h := range o.addHost {
		name, ip, ok := strings.Cut(h, ":")
		if !ok {
			name, ip, ok = strings.Cut(h, "=")
		}
		if !ok || name == "" {
			return invalid("bad format for add-host: %q", h)
		}
		if ip != "host-gateway" {
			if _, err := netip.ParseAddr(strings.Trim(ip, "[]")); err != nil {
				return invalid("invalid IP address in add-host: %q", ip)
			}
		}
	}
	c.ExtraHosts = o.addHost
	if len(o.aliases) > 0 || o.ip != "" {
		net := mode
		if net == "" {
			net = "bridge"
		}
		if o.ip != "" {
			if a, err := netip.ParseAddr(o.ip); err != nil || !a.Is4() {
				return invalid("invalid IPv4 address: %s", o.ip)
			}
		}
		c.Networks = append(c.Networks, &skiffv1.EndpointConfig{Network: net, Aliases: o.aliases, Ipv4Address: o.ip})
	}
	return nil
}

// parsePublish parses docker's -p: [ip:][hostPort:]containerPort[/proto],
// where the ports may be equal-length ranges (8000-8001:80-81).
func parsePublish(spec string) ([]*skiffv1.PortBinding, error) {
	rest, proto, _ := strings.Cut(spec, "/")
	if proto == "" {
		proto = "tcp"
	}
	proto = strings.ToLower(proto)
	switch proto {
	case "tcp", "udp", "sctp":
	default:
		return nil, invalid("invalid proto: %s", proto)
	}
	if strings.HasPrefix(rest, "[") {
		return nil, invalid("invalid publish spec %q: IPv6 host addresses are not supported", spec)
	}
	var hostIP, hostPart, ctrPart string
	parts := strings.Split(rest, ":")
	switch len(parts) {
	case 1:
		ctrPart = parts[0]
	case 2:
		hostPart, ctrPart = parts[0], parts[1]
	case 3:
		hostIP, hostPart, ctrPart = parts[0], parts[1], parts[2]
		if a, err := netip.ParseAddr(hostIP); err != nil || !a.Is4() {
			return nil, invalid("invalid IP address: %s", hostIP)
		}
	default:
		return nil, invalid("invalid publish spec %q: want [ip:][hostPort:]containerPort[/proto]", spec)
	}
	if ctrPart == "" {
		return nil, invalid("no port specified: %s<empty>", spec)
	}
	cLo, cHi, err := parsePortRange(ctrPart)
	if err != nil {
		return nil, invalid("invalid containerPort: %s", ctrPart)
	}
	hLo, hHi := 0, 0
	if hostPart != "" {
		if hLo, hHi, err = parsePortRange(hostPart); err != nil {
			return nil, invalid("invalid hostPort: %s", hostPart)
		}
		if hHi-hLo != cHi-cLo {
			return nil, invalid("invalid ranges specified for container and host ports: %s", spec)
		}
	}
	var out []*skiffv1.PortBinding
	for i := 0; i <= cHi-cLo; i++ {
		b := &skiffv1.PortBinding{HostIp: hostIP, ContainerPort: uint32(cLo + i), Protocol: proto}
		if hostPart != "" {
			b.HostPort = uint32(hLo + i)
		}
		out = append(out, b)
	}
	return out, nil
}

func parsePortRange(s string) (lo, hi int, err error) {
	a, b, isRange := strings.Cut(s, "-")
	if lo, err = strconv.Atoi(a); err != nil || lo < 1 || lo > 65535 {
		return 0, 0, fmt.Errorf("bad port")
	}
	hi = lo
	if isRange {
		if hi, err = strconv.Atoi(b); err != nil || hi < lo || hi > 65535 {
			return 0, 0, fmt.Errorf("bad range")
		}
	}
	return lo, hi, nil
}

// formatPorts is docker's PORTS column: "0.0.0.0:8080->80/tcp, ...".
func formatPorts(c *skiffv1.Container) string {
	var out []string
	for _, p := range sortedPorts(c.GetNetworkSettings().GetPorts()) {
		ip := p.GetHostIp()
		if ip == "" {
			ip = "0.0.0.0"
		}
		out = append(out, fmt.Sprintf("%s:%d->%d/%s", ip, p.GetHostPort(), p.GetContainerPort(), p.GetProtocol()))
	}
	return strings.Join(out, ", ")
}

func sortedPorts(ports []*skiffv1.PortBinding) []*skiffv1.PortBinding {
	out := append([]*skiffv1.PortBinding(nil), ports...)
	sort.SliceStable(out, func(i, j int) bool {
		if out[i].GetContainerPort() != out[j].GetContainerPort() {
			return out[i].GetContainerPort() < out[j].GetContainerPort()
		}
		return out[i].GetProtocol() < out[j].GetProtocol()
	})
	return out
}

// portCommand is `skiff port CONTAINER [PRIVATE_PORT[/PROTO]]`.
func (a *app) portCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "port CONTAINER [PRIVATE_PORT[/PROTO]]",
		Short: "List port mappings or a specific mapping for the container",
		Args:  func(cmd *cobra.Command, args []string) error { return rangeArgs(cmd, args, 1, 2) },
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx, c, err := a.connect(cmd.Context())
			if err != nil {
				return err
			}
			ctr, err := c.containers.Inspect(ctx, &skiffv1.InspectContainerRequest{Id: args[0]})
			if err != nil {
				return a.fromDaemon(err)
			}
			ports := sortedPorts(ctr.GetNetworkSettings().GetPorts())
			if len(args) == 2 {
				port, proto, _ := strings.Cut(args[1], "/")
				if proto == "" {
					proto = "tcp"
				}
				found := false
				for _, p := range ports {
					if strconv.Itoa(int(p.GetContainerPort())) == port && p.GetProtocol() == proto {
						fmt.Fprintln(a.env.Stdout, hostSide(p))
						found = true
					}
				}
				if !found {
					return &statusError{code: exitGeneral, msg: fmt.Sprintf("Error: No public port '%s/%s' published for %s", port, proto, args[0])}
				}
				return nil
			}
			for _, p := range ports {
				fmt.Fprintf(a.env.Stdout, "%d/%s -> %s\n", p.GetContainerPort(), p.GetProtocol(), hostSide(p))
			}
			return nil
		},
	}
}

func hostSide(p *skiffv1.PortBinding) string {
	ip := p.GetHostIp()
	if ip == "" {
		ip = "0.0.0.0"
	}
	return fmt.Sprintf("%s:%d", ip, p.GetHostPort())
}

func rangeArgs(cmd *cobra.Command, args []string, lo, hi int) error {
	if len(args) < lo || len(args) > hi {
		return usageError(cmd, fmt.Errorf("%q requires at least %d and at most %d arguments.", cmd.CommandPath(), lo, hi))
	}
	return nil
}

// inspectNetworkSettings is docker's NetworkSettings of container inspect.
type inspectNetworkSettings struct {
	SandboxKey  string                            `json:"SandboxKey"`
	IPAddress   string                            `json:"IPAddress"`
	IPPrefixLen int32                             `json:"IPPrefixLen"`
	Gateway     string                            `json:"Gateway"`
	MacAddress  string                            `json:"MacAddress"`
	Ports       map[string][]inspectPortBinding   `json:"Ports"`
	Networks    map[string]inspectEndpointSetting `json:"Networks"`
}

type inspectPortBinding struct {
	HostIP   string `json:"HostIp"`
	HostPort string `json:"HostPort"`
}

type inspectEndpointSetting struct {
	Aliases     []string `json:"Aliases"`
	IPAddress   string   `json:"IPAddress"`
	IPPrefixLen int32    `json:"IPPrefixLen"`
	Gateway     string   `json:"Gateway"`
	MacAddress  string   `json:"MacAddress"`
}

func toInspectNetworkSettings(c *skiffv1.Container) inspectNetworkSettings {
	ns := c.GetNetworkSettings()
	out := inspectNetworkSettings{SandboxKey: ns.GetSandboxKey(), Ports: map[string][]inspectPortBinding{}, Networks: map[string]inspectEndpointSetting{}}
	for _, p := range ns.GetPorts() {
		key := fmt.Sprintf("%d/%s", p.GetContainerPort(), p.GetProtocol())
		ip := p.GetHostIp()
		if ip == "" {
			ip = "0.0.0.0"
		}
		out.Ports[key] = append(out.Ports[key], inspectPortBinding{HostIP: ip, HostPort: strconv.Itoa(int(p.GetHostPort()))})
	}
	for i, ep := range ns.GetEndpoints() {
		out.Networks[ep.GetNetwork()] = inspectEndpointSetting{
			Aliases: ep.GetAliases(), IPAddress: ep.GetIpAddress(), IPPrefixLen: ep.GetPrefixLen(), Gateway: ep.GetGateway(), MacAddress: ep.GetMacAddress(),
		}
		if i == 0 {
			out.IPAddress, out.IPPrefixLen, out.Gateway, out.MacAddress = ep.GetIpAddress(), ep.GetPrefixLen(), ep.GetGateway(), ep.GetMacAddress()
		}
	}
	return out
}

// networkCommand is `skiff network`.
func (a *app) networkCommand() *cobra.Command {
	cmd := &cobra.Command{Use: "network", Short: "Manage networks", Args: cobra.ArbitraryArgs, RunE: groupRunE}
	cmd.SetFlagErrorFunc(func(cmd *cobra.Command, err error) error { return usageError(cmd, err) })
	cmd.AddCommand(a.networkCreateCommand(), a.networkLsCommand(), a.networkInspectCommand(),
		a.networkRmCommand(), a.networkConnectCommand(), a.networkDisconnectCommand(), a.networkPruneCommand())
	return cmd
}

func (a *app) networks(ctx context.Context) (context.Context, skiffv1.NetworksClient, error) {
	ctx, _, err := a.connect(ctx)
	if err != nil {
		return ctx, nil, err
	}
	return ctx, skiffv1.NewNetworksClient(a.conn), nil
}

func (a *app) networkCreateCommand() *cobra.Command {
	var driver, subnet, gateway string
	var labels []string
	var internal bool
	cmd := &cobra.Command{
		Use:   "create [OPTIONS] NETWORK",
		Short: "Create a network",
		Args:  exactArgs(1),
		PreRunE: func(cmd *cobra.Command, args []string) error {
			a.engineExit = true
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			lm, err := parseLabels(labels)
			if err != nil {
				return err
			}
			ctx, nc, err := a.networks(cmd.Context())
			if err != nil {
				return err
			}
			n, err := nc.Create(ctx, &skiffv1.CreateNetworkRequest{Name: args[0], Driver: driver, Subnet: subnet, Gateway: gateway, Labels: lm, Internal: internal})
			if err != nil {
				return a.fromDaemon(err)
			}
			fmt.Fprintln(a.env.Stdout, n.GetId())
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVarP(&driver, "driver", "d", "bridge", "Driver to manage the Network")
	f.StringVar(&subnet, "subnet", "", "Subnet in CIDR format that represents a network segment")
	f.StringVar(&gateway, "gateway", "", "IPv4 Gateway for the master subnet")
	f.StringArrayVar(&labels, "label", nil, "Set metadata on a network")
	f.BoolVar(&internal, "internal", false, "Restrict external access to the network")
	return cmd
}

type networkRow struct {
	n     *skiffv1.Network
	trunc bool
}

func (r networkRow) ID() string {
	if r.trunc && len(r.n.GetId()) > 12 {
		return r.n.GetId()[:12]
	}
	return r.n.GetId()
}
func (r networkRow) Name() string     { return r.n.GetName() }
func (r networkRow) Driver() string   { return r.n.GetDriver() }
func (r networkRow) Scope() string    { return "local" }
func (r networkRow) Subnet() string   { return r.n.GetSubnet() }
func (r networkRow) Internal() string { return strconv.FormatBool(r.n.GetInternal()) }
func (r networkRow) jsonFields() map[string]any {
	return map[string]any{"ID": r.ID(), "Name": r.Name(), "Driver": r.Driver(), "Scope": r.Scope(), "Internal": r.Internal()}
}

func (a *app) networkLsCommand() *cobra.Command {
	var quiet, noTrunc bool
	var format string
	cmd := &cobra.Command{
		Use:     "ls [OPTIONS]",
		Aliases: []string{"list"},
		Short:   "List networks",
		Args:    exactArgs(0),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx, nc, err := a.networks(cmd.Context())
			if err != nil {
				return err
			}
			resp, err := nc.List(ctx, &skiffv1.ListNetworksRequest{})
			if err != nil {
				return a.fromDaemon(err)
			}
			var rows []row
			for _, n := range resp.GetNetworks() {
				r := networkRow{n: n, trunc: !noTrunc}
				if quiet {
					fmt.Fprintln(a.env.Stdout, r.ID())
					continue
				}
				rows = append(rows, r)
			}
			if quiet {
				return nil
			}
			return formatter{
				format:       format,
				headers:      map[string]string{"ID": "NETWORK ID", "Name": "NAME", "Driver": "DRIVER", "Scope": "SCOPE", "Subnet": "SUBNET", "Internal": "INTERNAL"},
				defaultTable: "{{.ID}}\t{{.Name}}\t{{.Driver}}\t{{.Scope}}",
			}.render(a.env.Stdout, rows)
		},
	}
	f := cmd.Flags()
	f.BoolVarP(&quiet, "quiet", "q", false, "Only display network IDs")
	f.BoolVar(&noTrunc, "no-trunc", false, "Do not truncate the output")
	f.StringVar(&format, "format", "", "Format output using a Go template, 'table' or 'json'")
	return cmd
}

// networkInspect is docker's network inspect JSON (the fields skiff has).
type networkInspect struct {
	Name       string            `json:"Name"`
	ID         string            `json:"Id"`
	Created    string            `json:"Created"`
	Scope      string            `json:"Scope"`
	Driver     string            `json:"Driver"`
	IPAM       networkIPAM       `json:"IPAM"`
	Internal   bool              `json:"Internal"`
	Containers map[string]any    `json:"Containers"`
	Options    map[string]string `json:"Options"`
	Labels     map[string]string `json:"Labels"`
}

type networkIPAM struct {
	Driver string              `json:"Driver"`
	Config []map[string]string `json:"Config"`
}

func toNetworkInspect(n *skiffv1.Network) networkInspect {
	out := networkInspect{
		Name: n.GetName(), ID: n.GetId(), Created: rfc3339(unixNano(n.GetCreated())), Scope: "local", Driver: n.GetDriver(),
		IPAM:     networkIPAM{Driver: "default", Config: []map[string]string{{"Subnet": n.GetSubnet(), "Gateway": n.GetGateway()}}},
		Internal: n.GetInternal(), Containers: map[string]any{},
		Options: map[string]string{"com.docker.network.bridge.name": n.GetBridge()}, Labels: n.GetLabels(),
	}
	if out.Labels == nil {
		out.Labels = map[string]string{}
	}
	for _, id := range n.GetContainers() {
		out.Containers[id] = map[string]any{}
	}
	return out
}

func (a *app) networkInspectCommand() *cobra.Command {
	var format string
	cmd := &cobra.Command{
		Use:   "inspect [OPTIONS] NETWORK [NETWORK...]",
		Short: "Display detailed information on one or more networks",
		Args:  minArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx, nc, err := a.networks(cmd.Context())
			if err != nil {
				return err
			}
			return a.inspectEach(args, format, func(name string) (any, error) {
				n, err := nc.Inspect(ctx, &skiffv1.InspectNetworkRequest{Name: name})
				if err != nil {
					if err := a.fromDaemon(err); isNotFound(err) {
						return nil, &statusError{code: exitGeneral, msg: "Error: No such network: " + name}
					}
					return nil, a.fromDaemon(err)
				}
				return toNetworkInspect(n), nil
			})
		},
	}
	cmd.Flags().StringVarP(&format, "format", "f", "", "Format output using a Go template")
	return cmd
}

func (a *app) networkRmCommand() *cobra.Command {
	return &cobra.Command{
		Use:     "rm NETWORK [NETWORK...]",
		Aliases: []string{"remove"},
		Short:   "Remove one or more networks",
		Args:    minArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx, nc, err := a.networks(cmd.Context())
			if err != nil {
				return err
			}
			return a.eachArg(args, func(name string) error {
				if _, err := nc.Remove(ctx, &skiffv1.RemoveNetworkRequest{Name: name}); err != nil {
					return a.fromDaemon(err)
				}
				fmt.Fprintln(a.env.Stdout, name)
				return nil
			})
		},
	}
}

func (a *app) networkPruneCommand() *cobra.Command {
	var force bool
	cmd := &cobra.Command{
		Use:   "prune [OPTIONS]",
		Short: "Remove all unused networks",
		Args:  maxArgs(0),
		RunE: func(cmd *cobra.Command, args []string) error {
			if !force {
				if err := a.confirmPrune("network", "WARNING! This will remove all custom networks not used by at least one container.\n"); err != nil {
					return err
				}
			}
			ctx, nc, err := a.networks(cmd.Context())
			if err != nil {
				return err
			}
			resp, err := nc.Prune(ctx, &skiffv1.PruneNetworksRequest{})
			if err != nil {
				return a.fromDaemon(err)
			}
			a.printDeleted("Networks", resp.GetDeleted())
			return nil
		},
	}
	cmd.Flags().BoolVarP(&force, "force", "f", false, "Do not prompt for confirmation")
	return cmd
}

func (a *app) networkConnectCommand() *cobra.Command {
	var aliases []string
	var ip string
	cmd := &cobra.Command{
		Use:   "connect [OPTIONS] NETWORK CONTAINER",
		Short: "Connect a container to a network",
		Args:  exactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx, nc, err := a.networks(cmd.Context())
			if err != nil {
				return err
			}
			_, err = nc.Connect(ctx, &skiffv1.ConnectNetworkRequest{Network: args[0], Container: args[1],
				Endpoint: &skiffv1.EndpointConfig{Network: args[0], Aliases: aliases, Ipv4Address: ip}})
			return a.fromDaemon(err)
		},
	}
	cmd.Flags().StringArrayVar(&aliases, "alias", nil, "Add network-scoped alias for the container")
	cmd.Flags().StringVar(&ip, "ip", "", "IPv4 address (e.g., 172.30.100.104)")
	return cmd
}

func (a *app) networkDisconnectCommand() *cobra.Command {
	var force bool
	cmd := &cobra.Command{
		Use:   "disconnect [OPTIONS] NETWORK CONTAINER",
		Short: "Disconnect a container from a network",
		Args:  exactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx, nc, err := a.networks(cmd.Context())
			if err != nil {
				return err
			}
			_, err = nc.Disconnect(ctx, &skiffv1.DisconnectNetworkRequest{Network: args[0], Container: args[1], Force: force})
			return a.fromDaemon(err)
		},
	}
	cmd.Flags().BoolVarP(&force, "force", "f", false, "Force the container to disconnect from a network")
	return cmd
}
