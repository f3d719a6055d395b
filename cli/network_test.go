package cli

import (
	"strings"
	"testing"

	skiffv1 "github.com/skiff-containers/skiff/api/skiff/v1"
)

func TestParsePublish(t *testing.T) {
	pb := func(ip string, host, ctr uint32, proto string) string {
		return (&skiffv1.PortBinding{HostIp: ip, HostPort: host, ContainerPort: ctr, Protocol: proto}).String()
	}
	for _, tc := range []struct {
		spec    string
		want    []string
		wantErr string
	}{
		{"80", []string{pb("", 0, 80, "tcp")}, ""},
		{"8080:80", []string{pb("", 8080, 80, "tcp")}, ""},
		{"8080:80/udp", []string{pb("", 8080, 80, "udp")}, ""},
		{"127.0.0.1:8080:80", []string{pb("127.0.0.1", 8080, 80, "tcp")}, ""},
		{"127.0.0.1::80", []string{pb("127.0.0.1", 0, 80, "tcp")}, ""},
		{"8000-8001:80-81", []string{pb("", 8000, 80, "tcp"), pb("", 8001, 81, "tcp")}, ""},
		{"80-81", []string{pb("", 0, 80, "tcp"), pb("", 0, 81, "tcp")}, ""},
		{"8000-8002:80-81", nil, "invalid ranges"},
		{"80/icmp", nil, "invalid proto"},
		{"x:80", nil, "invalid hostPort"},
		{"8080:0", nil, "invalid containerPort"},
		{"99999", nil, "invalid containerPort"},
		{"300.1.1.1:80:80", nil, "invalid IP address"},
		{"[::1]:80:80", nil, "IPv6"},
		{"8080:", nil, "no port specified"},
	} {
		t.Run(tc.spec, func(t *testing.T) {
			got, err := parsePublish(tc.spec)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("got %v, want error %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			var s []string
			for _, b := range got {
				s = append(s, b.String())
			}
			if strings.Join(s, "|") != strings.Join(tc.want, "|") {
				t.Fatalf("got %v, want %v", s, tc.want)
			}
		})
	}
}

func TestFormatPorts(t *testing.T) {
	c := &skiffv1.Container{NetworkSettings: &skiffv1.NetworkSettings{Ports: []*skiffv1.PortBinding{
		{HostPort: 8443, ContainerPort: 443, Protocol: "tcp"},
		{HostIp: "127.0.0.1", HostPort: 8080, ContainerPort: 80, Protocol: "tcp"},
	}}}
	if got := formatPorts(c); got != "127.0.0.1:8080->80/tcp, 0.0.0.0:8443->443/tcp" {
		t.Fatalf("got %q", got)
	}
	if got := formatPorts(&skiffv1.Container{}); got != "" {
		t.Fatalf("no ports: %q", got)
	}
}
