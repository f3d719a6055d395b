package network

import (
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"strings"

	"github.com/skiff-containers/skiff/errdefs"
)

// PortMapping is one published port (-p), in the form of the portmap
// plugin's runtimeConfig.portMappings entries.
type PortMapping struct {
	// HostIP is the host address it answers on; "" means all of them.
	HostIP string `json:"hostIP,omitempty"`
	// HostPort 0 asks for a free port, chosen at each start.
	HostPort      int    `json:"hostPort"`
	ContainerPort int    `json:"containerPort"`
	Protocol      string `json:"protocol"`
}

// String is docker's form: 0.0.0.0:8080->80/tcp.
func (p PortMapping) String() string {
	ip := p.HostIP
	if ip == "" {
		ip = "0.0.0.0"
	}
	return fmt.Sprintf("%s:%d->%d/%s", ip, p.HostPort, p.ContainerPort, p.Protocol)
}

// hostString is the host side: 0.0.0.0:8080/tcp.
func (p PortMapping) hostString() string {
	ip := p.HostIP
	if ip == "" {
		ip = "0.0.0.0"
	}
	return net.JoinHostPort(ip, strconv.Itoa(p.HostPort)) + "/" + p.Protocol
}

// ValidatePorts checks and normalises published ports: ports in range,
// protocol tcp, udp or sctp (default tcp), host address an IPv4 address
// ("0.0.0.0" becomes ""), no host port published twice.
func ValidatePorts(ports []PortMapping) ([]PortMapping, error) {
	out := make([]PortMapping, 0, len(ports))
	for _, p := range ports {
		p.Protocol = strings.ToLower(p.Protocol)
		if p.Protocol == "" {
			p.Protocol = "tcp"
		}
		switch p.Protocol {
		case "tcp", "udp", "sctp":
		default:
			return nil, fmt.Errorf("published port %d: unknown protocol %q (use tcp, udp or sctp): %w", p.ContainerPort, p.Protocol, errdefs.ErrInvalidArgument)
		}
		if p.ContainerPort < 1 || p.ContainerPort > 65535 {
			return nil, fmt.Errorf("invalid container port %d: must be 1 to 65535: %w", p.ContainerPort, errdefs.ErrInvalidArgument)
		}
		if p.HostPort < 0 || p.HostPort > 65535 {
			return nil, fmt.Errorf("invalid host port %d: must be 1 to 65535 (or 0 for a free one): %w", p.HostPort, errdefs.ErrInvalidArgument)
		}
		if p.HostIP != "" {
			a, err := netip.ParseAddr(p.HostIP)
			if err != nil || !a.Is4() {
				return nil, fmt.Errorf("invalid host address %q of published port %d: want an IPv4 address: %w", p.HostIP, p.ContainerPort, errdefs.ErrInvalidArgument)
			}
			if a.IsUnspecified() {
				p.HostIP = ""
			} else {
				p.HostIP = a.String()
			}
		}
		for _, q := range out {
			if p.HostPort != 0 && q.HostPort == p.HostPort && q.Protocol == p.Protocol && ipsClash(p.HostIP, q.HostIP) {
				return nil, fmt.Errorf("host port %s is published twice: %w", p.hostString(), errdefs.ErrInvalidArgument)
			}
		}
		out = append(out, p)
	}
	return out, nil
}

// ipsClash reports whether two host addresses ("" = all) share one.
func ipsClash(a, b string) bool { return a == "" || b == "" || a == b }

// clashes reports whether p and q would take the same host port.
func clashes(p, q PortMapping) bool {
	return p.HostPort != 0 && p.HostPort == q.HostPort && p.Protocol == q.Protocol && ipsClash(p.HostIP, q.HostIP)
}

// probePort checks that the host port of p can be taken (nothing on the
// host listens on it) by binding it for a moment; with HostPort 0 it
// returns a free one.
func probePort(p PortMapping) (int, error) {
	addr := net.JoinHostPort(p.HostIP, strconv.Itoa(p.HostPort))
	switch p.Protocol {
	case "udp":
		c, err := net.ListenPacket("udp4", addr)
		if err != nil {
			return 0, err
		}
		defer c.Close()
		return c.LocalAddr().(*net.UDPAddr).Port, nil
	default: // tcp; sctp is probed as tcp (a listener on either blocks docker too)
		l, err := net.Listen("tcp4", addr)
		if err != nil {
			return 0, err
		}
		defer l.Close()
		return l.Addr().(*net.TCPAddr).Port, nil
	}
}

// portTaken is docker's message for a published port that is in use.
func portTaken(p PortMapping, by string) error {
	return fmt.Errorf("bind for %s failed: port is already allocated (%s); publish another host port or stop what uses it: %w", p.hostString(), by, errdefs.ErrAlreadyExists)
}
