package network

import (
	"encoding/json"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/containernetworking/cni/libcni"

	"github.com/skiff-containers/skiff/errdefs"
)

func TestParseSubnet(t *testing.T) {
	for _, tc := range []struct {
		in      string
		wantErr string
	}{
		{"10.90.0.0/24", ""},
		{"172.30.0.0/16", ""},
		{"10.90.0.1/24", "did you mean 10.90.0.0/24"},
		{"10.90.0.0", "CIDR"},
		{"nonsense", "CIDR"},
		{"fd00::/64", "only IPv4"},
		{"10.0.0.0/31", "between /8 and /30"},
		{"16.0.0.0/4", "between /8 and /30"},
		{"127.1.0.0/16", "reserved"},
		{"224.1.0.0/16", "reserved"},
	} {
		t.Run(tc.in, func(t *testing.T) {
			_, err := parseSubnet(tc.in)
			if tc.wantErr == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) || !errdefs.IsInvalidArgument(err) {
				t.Fatalf("got %v, want an invalid argument saying %q", err, tc.wantErr)
			}
		})
	}
}

func TestOverlaps(t *testing.T) {
	for _, tc := range []struct {
		a, b string
		want bool
	}{
		{"10.1.0.0/16", "10.1.2.0/24", true},
		{"10.1.2.0/24", "10.1.0.0/16", true},
		{"10.1.2.0/24", "10.1.3.0/24", false},
		{"10.0.0.0/8", "11.0.0.0/8", false},
		{"10.1.2.0/24", "10.1.2.0/24", true},
	} {
		if got := Overlaps(netip.MustParsePrefix(tc.a), netip.MustParsePrefix(tc.b)); got != tc.want {
			t.Errorf("Overlaps(%s, %s) = %v, want %v", tc.a, tc.b, got, tc.want)
		}
	}
}

func TestGatewayFor(t *testing.T) {
	sub := netip.MustParsePrefix("10.90.1.0/24")
	for _, tc := range []struct {
		gw, want, wantErr string
	}{
		{"", "10.90.1.1", ""},
		{"10.90.1.254", "10.90.1.254", ""},
		{"10.90.1.0", "", "not a host address"},
		{"10.90.1.255", "", "not a host address"},
		{"10.90.2.1", "", "not a host address"},
		{"x", "", "IPv4"},
	} {
		got, err := gatewayFor(sub, tc.gw)
		if tc.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("gateway %q: got %v, want error %q", tc.gw, err, tc.wantErr)
			}
			continue
		}
		if err != nil || got.String() != tc.want {
			t.Errorf("gateway %q: got %v, %v; want %s", tc.gw, got, err, tc.want)
		}
	}
}

func TestValidatePorts(t *testing.T) {
	for _, tc := range []struct {
		name    string
		in      []PortMapping
		want    []PortMapping
		wantErr string
	}{
		{"default tcp", []PortMapping{{HostPort: 8080, ContainerPort: 80}}, []PortMapping{{HostPort: 8080, ContainerPort: 80, Protocol: "tcp"}}, ""},
		{"udp and ip", []PortMapping{{HostIP: "127.0.0.1", HostPort: 53, ContainerPort: 53, Protocol: "UDP"}}, []PortMapping{{HostIP: "127.0.0.1", HostPort: 53, ContainerPort: 53, Protocol: "udp"}}, ""},
		{"any address", []PortMapping{{HostIP: "0.0.0.0", ContainerPort: 80}}, []PortMapping{{ContainerPort: 80, Protocol: "tcp"}}, ""},
		{"same port tcp and udp", []PortMapping{{HostPort: 53, ContainerPort: 53}, {HostPort: 53, ContainerPort: 53, Protocol: "udp"}}, []PortMapping{{HostPort: 53, ContainerPort: 53, Protocol: "tcp"}, {HostPort: 53, ContainerPort: 53, Protocol: "udp"}}, ""},
		{"twice", []PortMapping{{HostPort: 80, ContainerPort: 80}, {HostIP: "127.0.0.1", HostPort: 80, ContainerPort: 81}}, nil, "published twice"},
		{"bad protocol", []PortMapping{{HostPort: 80, ContainerPort: 80, Protocol: "icmp"}}, nil, "unknown protocol"},
		{"bad container port", []PortMapping{{HostPort: 80}}, nil, "invalid container port"},
		{"bad host port", []PortMapping{{HostPort: 70000, ContainerPort: 80}}, nil, "invalid host port"},
		{"ipv6 host", []PortMapping{{HostIP: "::1", HostPort: 80, ContainerPort: 80}}, nil, "IPv4"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ValidatePorts(tc.in)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) || !errdefs.IsInvalidArgument(err) {
					t.Fatalf("got %v, want invalid argument %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != len(tc.want) {
				t.Fatalf("got %v, want %v", got, tc.want)
			}
			for i := range got {
				if got[i] != tc.want[i] {
					t.Fatalf("got %v, want %v", got, tc.want)
				}
			}
		})
	}
}

func TestPortMappingString(t *testing.T) {
	if got := (PortMapping{HostPort: 8080, ContainerPort: 80, Protocol: "tcp"}).String(); got != "0.0.0.0:8080->80/tcp" {
		t.Errorf("got %q", got)
	}
	if got := (PortMapping{HostIP: "127.0.0.1", HostPort: 53, ContainerPort: 53, Protocol: "udp"}).String(); got != "127.0.0.1:53->53/udp" {
		t.Errorf("got %q", got)
	}
}

// conflistOf renders n's conflist, parses it as libcni does, and lists its
// plugin types ("bridge,portmap").
func conflistOf(t *testing.T, n Network) (*libcni.NetworkConfigList, string) {
	t.Helper()
	data, err := Conflist(n, "/run/x/ipam")
	if err != nil {
		t.Fatal(err)
	}
	list, err := libcni.ConfListFromBytes(data)
	if err != nil {
		t.Fatalf("libcni refuses the conflist: %v\n%s", err, data)
	}
	return list, pluginTypes(list)
}

func pluginTypes(l *libcni.NetworkConfigList) string {
	var ts []string
	for _, p := range l.Plugins {
		ts = append(ts, p.Network.Type)
	}
	return strings.Join(ts, ",")
}

// TestConflistOwnedRules: a network whose FORWARD rules skiffd owns has no
// firewall plugin, and one whose masquerade rule it owns no ipMasq.
func TestConflistOwnedRules(t *testing.T) {
	n := Network{ID: "abc", Name: "web", Driver: DriverBridge, Subnet: netip.MustParsePrefix("10.90.0.0/24"),
		Gateway: netip.MustParseAddr("10.90.0.1"), Bridge: "br-abc", Masquerade: true, Forward: true}
	list, got := conflistOf(t, n)
	if got != "bridge,portmap" {
		t.Errorf("plugins %s, want bridge,portmap", got)
	}
	if strings.Contains(string(list.Plugins[0].Bytes), `"ipMasq":true`) {
		t.Errorf("bridge plugin masquerades: %s", list.Plugins[0].Bytes)
	}
	var specs []string
	for _, r := range hostRules(n) {
		specs = append(specs, r.table+" "+r.chain+" "+strings.Join(r.spec, " "))
	}
	want := []string{
		`nat POSTROUTING -s 10.90.0.0/24 ! -o br-abc -m comment --comment skiff network web abc -j MASQUERADE`,
		`filter FORWARD -o br-abc -m conntrack --ctstate RELATED,ESTABLISHED -m comment --comment skiff network web abc -j ACCEPT`,
		`filter FORWARD -i br-abc -m comment --comment skiff network web abc -j ACCEPT`,
	}
	if strings.Join(specs, "\n") != strings.Join(want, "\n") {
		t.Errorf("host rules:\n%s\nwant:\n%s", strings.Join(specs, "\n"), strings.Join(want, "\n"))
	}
	n.Internal = true
	if r := hostRules(n); len(r) != 0 {
		t.Errorf("an internal network has host rules: %v", r)
	}
}

func TestPluginsFor(t *testing.T) {
	n := Network{ID: "abc", Name: "web", Driver: DriverBridge, Subnet: netip.MustParsePrefix("10.90.0.0/24"),
		Gateway: netip.MustParseAddr("10.90.0.1"), Bridge: "br-abc"}
	list, _ := conflistOf(t, n)
	types := pluginTypes
	got, err := pluginsFor(list, &libcni.RuntimeConf{})
	if err != nil || types(got) != "bridge,firewall" || got.Name != "web" {
		t.Fatalf("without ports: %s (%v), want bridge,firewall", types(got), err)
	}
	again, err := libcni.ConfListFromBytes(got.Bytes)
	if err != nil || types(again) != "bridge,firewall" {
		t.Errorf("the list's bytes (what libcni caches) are not the list: %s, %v", types(again), err)
	}
	ports := &libcni.RuntimeConf{CapabilityArgs: map[string]any{"portMappings": []PortMapping{{HostPort: 80, ContainerPort: 80, Protocol: "tcp"}}}}
	if got, err := pluginsFor(list, ports); err != nil || got != list {
		t.Errorf("with ports: %s, %v; want the list as it is", types(got), err)
	}
}

func TestConflist(t *testing.T) {
	for _, internal := range []bool{false, true} {
		n := Network{ID: "abc", Name: "web", Driver: DriverBridge, Subnet: netip.MustParsePrefix("10.90.0.0/24"),
			Gateway: netip.MustParseAddr("10.90.0.1"), Bridge: "br-abc", Internal: internal}
		list, got := conflistOf(t, n)
		want := "bridge,portmap,firewall"
		if internal {
			want = "bridge,firewall"
		}
		if got != want || list.Name != "web" || list.CNIVersion != cniVersion {
			t.Fatalf("internal=%v: plugins %s name %s version %s; want %s", internal, got, list.Name, list.CNIVersion, want)
		}
		var br struct {
			Bridge    string `json:"bridge"`
			IsGateway bool   `json:"isGateway"`
			IPMasq    bool   `json:"ipMasq"`
			IPAM      struct {
				Type    string                `json:"type"`
				DataDir string                `json:"dataDir"`
				Ranges  [][]map[string]string `json:"ranges"`
			} `json:"ipam"`
		}
		if err := json.Unmarshal(list.Plugins[0].Bytes, &br); err != nil {
			t.Fatal(err)
		}
		if br.Bridge != "br-abc" || br.IsGateway == internal || br.IPMasq == internal || br.IPAM.Type != "host-local" ||
			br.IPAM.DataDir != "/run/x/ipam" || br.IPAM.Ranges[0][0]["subnet"] != "10.90.0.0/24" || br.IPAM.Ranges[0][0]["gateway"] != "10.90.0.1" {
			t.Fatalf("bridge plugin config: %+v", br)
		}
		var back conflist
		if err := json.Unmarshal(list.Bytes, &back); err != nil || back.Skiff.Subnet != n.Subnet || back.Skiff.ID != "abc" {
			t.Fatalf("skiff record does not round-trip: %v %+v", err, back.Skiff)
		}
	}
}

func TestHostsFile(t *testing.T) {
	h := HostsFile{
		Hostname:   "web.example",
		Own:        []netip.Addr{netip.MustParseAddr("10.90.0.2")},
		ExtraHosts: []string{"db:10.1.1.1", "gw:host-gateway", "bad"},
		Gateway:    netip.MustParseAddr("10.90.0.1"),
		Peers:      []Peer{{IP: netip.MustParseAddr("10.90.0.3"), Names: []string{"api", "api-alias", "0123456789ab"}}},
	}
	got := string(h.Bytes())
	for _, want := range []string{
		"127.0.0.1\tlocalhost\n", "10.1.1.1\tdb\n", "10.90.0.1\tgw\n",
		"10.90.0.2\tweb.example web\n", "10.90.0.3\tapi api-alias 0123456789ab\n",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("hosts file lacks %q:\n%s", want, got)
		}
	}
	if strings.Contains(got, "bad") {
		t.Errorf("an invalid extra host was written:\n%s", got)
	}
}

func TestHostsOfPeers(t *testing.T) {
	ip := func(s string) netip.Prefix { return netip.MustParsePrefix(s) }
	a := Attachment{ContainerID: "aaaaaaaaaaaaaaaa", Name: "a", Hostname: "a", Endpoints: []Endpoint{
		{Network: "skiff", Default: true, IP: ip("10.88.0.2/16")},
		{Network: "user", IP: ip("10.90.0.2/24")},
	}}
	b := Attachment{ContainerID: "bbbbbbbbbbbbbbbb", Name: "b", Endpoints: []Endpoint{{Network: "user", IP: ip("10.90.0.3/24"), Aliases: []string{"bee"}}}}
	c := Attachment{ContainerID: "cccccccccccccccc", Name: "c", Endpoints: []Endpoint{{Network: "skiff", Default: true, IP: ip("10.88.0.3/16")}}}
	h := hostsOf(a, []Attachment{a, b, c})
	if len(h.Peers) != 1 || h.Peers[0].IP.String() != "10.90.0.3" || strings.Join(h.Peers[0].Names, " ") != "b bee bbbbbbbbbbbb" {
		t.Fatalf("peers: %+v (the default network must not resolve names)", h.Peers)
	}
	if len(h.Own) != 2 {
		t.Fatalf("own addresses: %v", h.Own)
	}
}

func TestExtraHostAndDNS(t *testing.T) {
	for _, tc := range []struct{ in, name, ip, err string }{
		{"db:10.0.0.1", "db", "10.0.0.1", ""},
		{"db=10.0.0.1", "db", "10.0.0.1", ""},
		{"h:host-gateway", "h", "host-gateway", ""},
		{"v6:[::1]", "v6", "::1", ""},
		{"noip", "", "", "want NAME:IP"},
		{"x:notanip", "", "", "not an IP"},
	} {
		name, ip, err := ParseExtraHost(tc.in)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("%q: got %v, want %q", tc.in, err, tc.err)
			}
			continue
		}
		if err != nil || name != tc.name || ip != tc.ip {
			t.Errorf("%q: got %q %q %v", tc.in, name, ip, err)
		}
	}
	if err := ValidateDNS([]string{"1.1.1.1", "x"}); err == nil {
		t.Error("ValidateDNS accepted x")
	}
	path := filepath.Join(t.TempDir(), "resolv.conf")
	os.WriteFile(path, []byte("# head\nnameserver 8.8.8.8\nsearch example\nnameserver 8.8.4.4\n"), 0o644)
	if err := SetNameservers(path, []string{"1.1.1.1", "9.9.9.9"}); err != nil {
		t.Fatal(err)
	}
	got, _ := os.ReadFile(path)
	if string(got) != "# head\nnameserver 1.1.1.1\nnameserver 9.9.9.9\nsearch example\n" {
		t.Fatalf("resolv.conf:\n%s", got)
	}
}
