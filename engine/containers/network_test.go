package containers

import (
	"reflect"
	"testing"

	"github.com/skiff-containers/skiff/engine/network"
)

func TestPublishedPorts(t *testing.T) {
	for _, tc := range []struct {
		name string
		cfg  CreateConfig
		want []network.PortMapping
	}{
		{"none", CreateConfig{}, nil},
		{"-p only", CreateConfig{PortBindings: []network.PortMapping{{HostPort: 8080, ContainerPort: 80, Protocol: "tcp"}}, ExposedPorts: []string{"443/tcp"}},
			[]network.PortMapping{{HostPort: 8080, ContainerPort: 80, Protocol: "tcp"}}},
		{"-P adds exposed ports -p does not cover", CreateConfig{
			PublishAll:   true,
			PortBindings: []network.PortMapping{{HostPort: 8080, ContainerPort: 80, Protocol: "tcp"}},
			ExposedPorts: []string{"80/tcp", "53/udp", "443", "bad/tcp"},
		}, []network.PortMapping{
			{HostPort: 8080, ContainerPort: 80, Protocol: "tcp"},
			{ContainerPort: 53, Protocol: "udp"},
			{ContainerPort: 443, Protocol: "tcp"},
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := publishedPorts(tc.cfg); !reflect.DeepEqual(got, tc.want) && !(len(got) == 0 && len(tc.want) == 0) {
				t.Fatalf("got %+v, want %+v", got, tc.want)
			}
		})
	}
}

func TestEndpoints(t *testing.T) {
	s := &Service{}
	for _, tc := range []struct {
		name string
		cfg  CreateConfig
		want []network.EndpointRequest
	}{
		{"none", CreateConfig{NetworkMode: "none"}, nil},
		{"host", CreateConfig{NetworkMode: "host"}, nil},
		{"container", CreateConfig{NetworkMode: "container:abc"}, nil},
		{"user with aliases and more", CreateConfig{NetworkMode: "a", Networks: []EndpointConfig{{Network: "a", Aliases: []string{"x"}}, {Network: "b", IPv4: "10.0.0.5"}}},
			[]network.EndpointRequest{{Network: "a", Aliases: []string{"x"}}, {Network: "b", IPv4: "10.0.0.5"}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := s.endpoints(tc.cfg); !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("got %+v, want %+v", got, tc.want)
			}
		})
	}
}
