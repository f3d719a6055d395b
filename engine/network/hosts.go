package network

import (
	"bytes"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"strings"

	"github.com/skiff-containers/skiff/errdefs"
)

// hostGateway is --add-host's special address: the gateway of the
// container's first network.
const hostGateway = "host-gateway"

// ParseExtraHost parses --add-host's "name:ip" (or "name=ip"); ip may be
// host-gateway.
func ParseExtraHost(s string) (name, ip string, err error) {
	sep := strings.IndexAny(s, "=:")
	if sep <= 0 {
		return "", "", fmt.Errorf("invalid extra host %q: want NAME:IP: %w", s, errdefs.ErrInvalidArgument)
	}
	name, ip = strings.TrimSpace(s[:sep]), strings.Trim(strings.TrimSpace(s[sep+1:]), "[]")
	if strings.ContainsAny(name, " \t") || name == "" {
		return "", "", fmt.Errorf("invalid extra host %q: the name must not be empty or contain spaces: %w", s, errdefs.ErrInvalidArgument)
	}
	if ip == hostGateway {
		return name, ip, nil
	}
	a, err := netip.ParseAddr(ip)
	if err != nil {
		return "", "", fmt.Errorf("invalid extra host %q: %q is not an IP address: %w", s, ip, errdefs.ErrInvalidArgument)
	}
	return name, a.String(), nil
}

// Peer is a container that another one resolves by name.
type Peer struct {
	IP    netip.Addr
	Names []string
}

// HostsFile is what a container's /etc/hosts says.
type HostsFile struct {
	Hostname string
	// Own are the container's addresses, each naming its hostname.
	Own []netip.Addr
	// ExtraHosts are --add-host entries (name:ip); Gateway replaces
	// host-gateway.
	ExtraHosts []string
	Gateway    netip.Addr
	// Peers are the other containers on its user-defined networks.
	Peers []Peer
}

// Bytes renders the file as docker does: localhost and the IPv6 lines,
// the extra hosts, the container's own addresses, then the peers.
func (h HostsFile) Bytes() []byte {
	var b bytes.Buffer
	line := func(ip, names string) { fmt.Fprintf(&b, "%s\t%s\n", ip, names) }
	line("127.0.0.1", "localhost")
	line("::1", "localhost ip6-localhost ip6-loopback")
	line("fe00::", "ip6-localnet")
	line("ff00::", "ip6-mcastprefix")
	line("ff02::1", "ip6-allnodes")
	line("ff02::2", "ip6-allrouters")
	for _, e := range h.ExtraHosts {
		name, ip, err := ParseExtraHost(e)
		if err != nil {
			continue
		}
		if ip == hostGateway {
			if !h.Gateway.IsValid() {
				continue
			}
			ip = h.Gateway.String()
		}
		line(ip, name)
	}
	names := h.Hostname
	if short, _, dotted := strings.Cut(h.Hostname, "."); dotted {
		names += " " + short
	}
	for _, a := range h.Own {
		line(a.String(), names)
	}
	for _, p := range h.Peers {
		line(p.IP.String(), strings.Join(p.Names, " "))
	}
	return b.Bytes()
}

// WriteInPlace replaces the contents of path without replacing the file:
// the container's bind mount holds the inode, so a rename would not be
// seen inside. A missing file is left missing.
func WriteInPlace(path string, data []byte) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_TRUNC, 0)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	_, err = f.Write(data)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

// ValidateDNS checks --dns values (IP addresses).
func ValidateDNS(servers []string) error {
	for _, s := range servers {
		if _, err := netip.ParseAddr(s); err != nil {
			return fmt.Errorf("invalid --dns %q: want an IP address: %w", s, errdefs.ErrInvalidArgument)
		}
	}
	return nil
}

// SetNameservers rewrites the resolv.conf at path with servers as its
// only nameservers (--dns), keeping its other lines.
func SetNameservers(path string, servers []string) error {
	if len(servers) == 0 {
		return nil
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	var b bytes.Buffer
	done := false
	for _, l := range strings.SplitAfter(string(data), "\n") {
		if f := strings.Fields(l); len(f) > 0 && f[0] == "nameserver" {
			if !done {
				for _, s := range servers {
					fmt.Fprintf(&b, "nameserver %s\n", s)
				}
				done = true
			}
			continue
		}
		b.WriteString(l)
	}
	if !done {
		for _, s := range servers {
			fmt.Fprintf(&b, "nameserver %s\n", s)
		}
	}
	return WriteInPlace(path, b.Bytes())
}
