package network

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	mrand "math/rand/v2"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/skiff-containers/skiff/errdefs"
)

// needRoot skips tests that need root and the CNI plugins.
func needRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root")
	}
	if _, err := os.Stat(filepath.Join(DefaultBinDir, "bridge")); err != nil {
		t.Fatalf("the CNI plugins are needed in %s (Debian: containernetworking-plugins): %v", DefaultBinDir, err)
	}
}

// testSubnet returns a random /24 under 10.200.0.0/13 that no host
// interface uses, so that tests run in parallel with others.
func testSubnet(t *testing.T) string {
	t.Helper()
	for range 100 {
		p := netip.PrefixFrom(netip.AddrFrom4([4]byte{10, byte(200 + mrand.IntN(8)), byte(mrand.IntN(256)), 0}), 24)
		m := &Manager{cfg: Config{Root: t.TempDir()}}
		os.MkdirAll(m.confDir(), 0o700)
		if m.overlapLocked(p, "") == nil {
			return p.String()
		}
	}
	t.Fatal("no free test subnet")
	return ""
}

func randHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}

func newTestManager(t *testing.T) *Manager {
	t.Helper()
	base := t.TempDir()
	m, err := New(Config{
		Root: filepath.Join(base, "root"), State: filepath.Join(base, "state"),
		DefaultName: "skiff", DefaultBridge: "skt" + randHex(4), DefaultSubnet: testSubnet(t),
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if n, _, err := m.readNetwork("skiff"); err == nil {
			deleteLink(n.Bridge)
		}
	})
	return m
}

// leftovers lists what container id left on the host.
func leftovers(t *testing.T, m *Manager, id string, ips ...string) []string {
	t.Helper()
	var out []string
	if _, err := os.Stat(m.NetNSPath(id)); err == nil {
		out = append(out, "netns file "+m.NetNSPath(id))
	}
	if mi, _ := os.ReadFile("/proc/self/mountinfo"); strings.Contains(string(mi), m.NetNSPath(id)) {
		out = append(out, "netns mount "+m.NetNSPath(id))
	}
	filepath.Walk(m.ipamDir(), func(p string, fi os.FileInfo, err error) error {
		if err == nil && !fi.IsDir() {
			if b, _ := os.ReadFile(p); strings.Contains(string(b), id) {
				out = append(out, "lease "+p)
			}
		}
		return nil
	})
	for _, table := range []string{"nat", "filter"} {
		rules, _ := exec.Command("iptables", "-w", "-t", table, "-S").CombinedOutput()
		for _, l := range strings.Split(string(rules), "\n") {
			hit := strings.Contains(l, id) || strings.Contains(l, shortID(id))
			for _, ip := range ips {
				hit = hit || strings.Contains(l, ip+"/32")
			}
			if hit {
				out = append(out, "iptables -t "+table+": "+l)
			}
		}
	}
	if _, found, _ := m.readAttachment(id); found {
		out = append(out, "attachment record")
	}
	if entries, _ := os.ReadDir(filepath.Join(m.cacheDir(), "results")); len(entries) > 0 {
		for _, e := range entries {
			if strings.Contains(e.Name(), id) {
				out = append(out, "cni cache "+e.Name())
			}
		}
	}
	return out
}

// vethCount counts the host's veths on bridge br.
func vethsOn(br string) int {
	out, _ := exec.Command("ip", "-o", "link", "show", "master", br).CombinedOutput()
	return strings.Count(string(out), "veth")
}

// listenIn listens on TCP port in the network namespace at nsPath and
// answers every connection with msg.
func listenIn(t *testing.T, nsPath string, port int, msg string) {
	t.Helper()
	errc := make(chan error, 1)
	var l net.Listener
	go func() {
		runtime.LockOSThread() // never unlocked: the thread is discarded
		fd, err := unix.Open(nsPath, unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			errc <- err
			return
		}
		defer unix.Close(fd)
		if err := unix.Setns(fd, unix.CLONE_NEWNET); err != nil {
			errc <- err
			return
		}
		l, err = net.Listen("tcp4", fmt.Sprintf(":%d", port))
		errc <- err
	}()
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			io.WriteString(c, msg)
			c.Close()
		}
	}()
}

func dial(addr string) (string, error) {
	c, err := net.DialTimeout("tcp4", addr, 3*time.Second)
	if err != nil {
		return "", err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(3 * time.Second))
	b, err := io.ReadAll(c)
	return string(b), err
}

func hostAddr(t *testing.T) string {
	t.Helper()
	ifaces, _ := net.Interfaces()
	for _, ifc := range ifaces {
		if ifc.Flags&net.FlagLoopback != 0 || ifc.Flags&net.FlagUp == 0 {
			continue
		}
		addrs, _ := ifc.Addrs()
		for _, a := range addrs {
			if ipn, ok := a.(*net.IPNet); ok && ipn.IP.To4() != nil && !strings.HasPrefix(ifc.Name, "skt") && !strings.HasPrefix(ifc.Name, "br-") {
				return ipn.IP.String()
			}
		}
	}
	t.Skip("no non-loopback IPv4 address on this host")
	return ""
}

func TestSetupTeardown(t *testing.T) {
	needRoot(t)
	ctx := context.Background()
	m := newTestManager(t)
	id := randHex(32)
	a, err := m.Setup(ctx, SetupRequest{
		Namespace: "default", ContainerID: id, Name: "web", Hostname: "web",
		Networks: []EndpointRequest{{Network: "bridge"}},
		Ports:    []PortMapping{{HostPort: 0, ContainerPort: 8080}},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Teardown(context.Background(), id) })
	if len(a.Endpoints) != 1 || !a.Endpoints[0].IP.IsValid() || a.Endpoints[0].Gateway.String() == "" || len(a.Ports) != 1 || a.Ports[0].HostPort == 0 {
		t.Fatalf("attachment: %+v", a)
	}
	def, _ := m.Get(ctx, "bridge")
	if !def.Subnet.Contains(a.Endpoints[0].IP.Addr()) {
		t.Fatalf("address %s not in %s", a.Endpoints[0].IP, def.Subnet)
	}
	if n := vethsOn(def.Bridge); n != 1 {
		t.Fatalf("%d veths on %s, want 1", n, def.Bridge)
	}
	if l := leftovers(t, m, id); len(l) == 0 {
		t.Fatal("the leftover check sees nothing of a set-up container; it is blind")
	}
	listenIn(t, a.NetNS, 8080, "hello")
	port := a.Ports[0].HostPort
	for _, host := range []string{"127.0.0.1", hostAddr(t)} {
		got, err := dial(fmt.Sprintf("%s:%d", host, port))
		if err != nil || got != "hello" {
			t.Errorf("published port on %s:%d: %q, %v", host, port, got, err)
		}
	}
	// The same host port again is refused, naming the holder.
	_, err = m.Setup(ctx, SetupRequest{ContainerID: randHex(32), Name: "other",
		Networks: []EndpointRequest{{Network: "bridge"}}, Ports: []PortMapping{{HostPort: port, ContainerPort: 80}}})
	if !errdefs.IsAlreadyExists(err) || !strings.Contains(err.Error(), "already allocated") || !strings.Contains(err.Error(), "web") {
		t.Fatalf("second publish of port %d: %v", port, err)
	}
	if err := m.Teardown(ctx, id); err != nil {
		t.Fatal(err)
	}
	if l := leftovers(t, m, id, a.Endpoints[0].IP.Addr().String()); len(l) > 0 {
		t.Fatalf("left after teardown:\n%s", strings.Join(l, "\n"))
	}
	if n := vethsOn(def.Bridge); n != 0 {
		t.Fatalf("%d veths left on %s", n, def.Bridge)
	}
	if err := m.Teardown(ctx, id); err != nil {
		t.Fatalf("second teardown: %v", err)
	}
}

func TestSetupFailureLeavesNothing(t *testing.T) {
	needRoot(t)
	ctx := context.Background()
	m := newTestManager(t)
	l, err := net.Listen("tcp4", ":0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	busy := l.Addr().(*net.TCPAddr).Port
	id := randHex(32)
	_, err = m.Setup(ctx, SetupRequest{ContainerID: id, Networks: []EndpointRequest{{Network: "bridge"}}, Ports: []PortMapping{{HostPort: busy, ContainerPort: 80}}})
	if !errdefs.IsAlreadyExists(err) || !strings.Contains(err.Error(), "in use on the host") {
		t.Fatalf("publishing a busy port: %v", err)
	}
	// A network that does not exist, after the first one was added.
	_, err = m.Setup(ctx, SetupRequest{ContainerID: id, Networks: []EndpointRequest{{Network: "bridge"}, {Network: "nosuch"}}})
	if !errdefs.IsNotFound(err) {
		t.Fatalf("unknown network: %v", err)
	}
	// A plugin that fails (a static address outside the IPAM range) after
	// the netns was made.
	n, err := m.Create(ctx, CreateOptions{Name: "u" + randHex(4), Subnet: testSubnet(t)})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Remove(ctx, n.Name)
	bad := n.Gateway.String() // the gateway's own address: host-local refuses it
	_, err = m.Setup(ctx, SetupRequest{ContainerID: id, Networks: []EndpointRequest{{Network: "bridge"}, {Network: n.Name, IPv4: bad}}})
	if err == nil {
		t.Fatal("a static address equal to the gateway was accepted")
	}
	if l := leftovers(t, m, id); len(l) > 0 {
		t.Fatalf("left after failed setups:\n%s", strings.Join(l, "\n"))
	}
}

func TestUserNetworkHostsAndConnect(t *testing.T) {
	needRoot(t)
	ctx := context.Background()
	m := newTestManager(t)
	name := "u" + randHex(4)
	n, err := m.Create(ctx, CreateOptions{Name: name, Subnet: testSubnet(t)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Remove(context.Background(), name) })
	if _, err := m.Create(ctx, CreateOptions{Name: name + "x", Subnet: n.Subnet.String()}); !errdefs.IsAlreadyExists(err) || !strings.Contains(err.Error(), "overlaps") {
		t.Fatalf("overlapping subnet: %v", err)
	}
	if _, err := m.Create(ctx, CreateOptions{Name: name}); !errdefs.IsAlreadyExists(err) {
		t.Fatalf("same name: %v", err)
	}
	dir := t.TempDir()
	var ids []string
	for _, who := range []string{"alpha", "beta"} {
		id := randHex(32)
		hosts := filepath.Join(dir, who)
		os.WriteFile(hosts, nil, 0o644)
		if _, err := m.Setup(ctx, SetupRequest{ContainerID: id, Name: who, Hostname: who, HostsPath: hosts,
			Networks: []EndpointRequest{{Network: name, Aliases: []string{who + "-alias"}}}}); err != nil {
			t.Fatal(err)
		}
		ids = append(ids, id)
		t.Cleanup(func() { m.Teardown(context.Background(), id) })
	}
	a, _ := os.ReadFile(filepath.Join(dir, "alpha"))
	if !strings.Contains(string(a), "beta beta-alias "+shortID(ids[1])) {
		t.Fatalf("alpha's hosts does not name beta:\n%s", a)
	}
	if err := m.Remove(ctx, name); !errdefs.IsFailedPrecondition(err) {
		t.Fatalf("removing a network in use: %v", err)
	}
	// Connect alpha to the default network as well, then disconnect.
	att, err := m.Connect(ctx, ids[0], EndpointRequest{Network: "bridge"})
	if err != nil || len(att.Endpoints) != 2 || att.Endpoints[1].IfName != "eth1" {
		t.Fatalf("connect: %+v %v", att, err)
	}
	if err := m.Disconnect(ctx, ids[0], "bridge"); err != nil {
		t.Fatal(err)
	}
	if err := m.Disconnect(ctx, ids[0], "bridge"); !errdefs.IsNotFound(err) {
		t.Fatalf("second disconnect: %v", err)
	}
	if err := m.Teardown(ctx, ids[1]); err != nil {
		t.Fatal(err)
	}
	a, _ = os.ReadFile(filepath.Join(dir, "alpha"))
	if strings.Contains(string(a), "beta") {
		t.Fatalf("alpha's hosts still names beta after it left:\n%s", a)
	}
	for _, id := range ids {
		m.Teardown(ctx, id)
		if l := leftovers(t, m, id); len(l) > 0 {
			t.Fatalf("left:\n%s", strings.Join(l, "\n"))
		}
	}
	if err := m.Remove(ctx, name); err != nil {
		t.Fatal(err)
	}
	if _, err := net.InterfaceByName(n.Bridge); err == nil {
		t.Fatalf("bridge %s left after network rm", n.Bridge)
	}
}

func TestNetNSUndo(t *testing.T) {
	needRoot(t)
	p := filepath.Join(t.TempDir(), "ns")
	if err := newNetNS(p); err != nil {
		t.Fatal(err)
	}
	if !isNetNS(p) {
		t.Fatal("not a netns")
	}
	if err := newNetNS(p); err == nil {
		t.Fatal("made a netns over an existing one")
	}
	if !isNetNS(p) {
		t.Fatal("a failed second newNetNS undid the first")
	}
	if err := removeNetNS(p); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(p); !os.IsNotExist(err) {
		t.Fatal("netns file left")
	}
	if err := removeNetNS(p); err != nil {
		t.Fatal(err)
	}
}
